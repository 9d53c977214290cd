#!/usr/bin/env python3
"""Validate an OpenAPI document with openapi-spec-validator (PyPI), an
implementation independent of utoipa's: the OpenAPI 3.1 schema, and the
rules the schema cannot say (path parameters declared for every template
variable, unique operation ids, resolvable $refs).

Usage: validate_openapi.py FILE

Prints "valid OpenAPI <version>, <n> operations" and exits 0, or the first
error and exits 1.
"""
import json
import sys

from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    try:
        validate(spec)
    except OpenAPIValidationError as e:
        print(f"invalid: {e}")
        return 1
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    n = sum(1 for item in spec["paths"].values() for m in item if m in methods)
    print(f"valid OpenAPI {spec['openapi']}, {n} operations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
