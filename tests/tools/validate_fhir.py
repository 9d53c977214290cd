#!/usr/bin/env python3
"""Validate FHIR resources with the independent fhir.resources package.

Usage: validate_fhir.py bundle FILE     a Bundle of AuditEvent (JSON)
       validate_fhir.py ndjson FILE     one AuditEvent per line, then Parameters
       validate_fhir.py report FILE     a Bundle of a prediction's report:
                                        DiagnosticReport, Observation, Device

Prints one line: "valid <n> AuditEvent" and exits 0, or prints the
validation error and exits 1. FHIR R4B models are used: AuditEvent and Bundle
are unchanged from R4 there.
"""
import json
import sys

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

REPORT_TYPES = {"DiagnosticReport": DiagnosticReport, "Observation": Observation, "Device": Device}


def main() -> int:
    kind, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        if kind == "bundle":
            bundle = Bundle.model_validate(json.loads(text))
            events = [AuditEvent.model_validate(e.resource.model_dump()) for e in bundle.entry or []]
            if any(e.resource.__resource_type__ != "AuditEvent" for e in bundle.entry or []):
                raise ValueError("a Bundle entry is not an AuditEvent")
            n = len(events)
        elif kind == "report":
            raw = json.loads(text)
            Bundle.model_validate(raw)
            for e in raw.get("entry", []):
                r = e["resource"]
                REPORT_TYPES[r["resourceType"]].model_validate(r)
            n = len(raw.get("entry", []))
            print(f"valid {n} resources")
            return 0
        elif kind == "ndjson":
            lines = [l for l in text.splitlines() if l.strip()]
            for line in lines[:-1]:
                AuditEvent.model_validate(json.loads(line))
            Parameters.model_validate(json.loads(lines[-1]))
            n = len(lines) - 1
        else:
            print(f"unknown kind {kind}", file=sys.stderr)
            return 2
    except Exception as e:  # noqa: BLE001 - report any validation failure
        print(f"invalid: {e}")
        return 1
    print(f"valid {n} AuditEvent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
