#!/usr/bin/env python3
"""Split an HL7 v2 ER7 message with two independent parsers from PyPI.

Usage: hl7_split_check.py FILE

Prints one JSON object: for each of `hl7` (python-hl7) and `hl7apy`, either
{"segments": [segment IDs in order], "obx5": [raw OBX-5 of each OBX]} or
{"error": "<exception class>"} when the parser refuses the message. Both
follow HL7 v2.5.1 §2.5: the segment terminator is the carriage return, so a
line feed inside a field is data. Exits 0 unless the file cannot be read.
"""
import json
import sys

import hl7
from hl7apy.parser import parse_message


def with_hl7(text: str) -> dict:
    try:
        message = hl7.parse(text)
        return {
            "segments": [str(s[0]) for s in message],
            "obx5": [str(s[5]) for s in message if str(s[0]) == "OBX"],
        }
    except Exception as e:  # noqa: BLE001 - report any refusal
        return {"error": type(e).__name__}


def with_hl7apy(text: str) -> dict:
    try:
        message = parse_message(text, find_groups=False)
        return {
            "segments": [c.name for c in message.children],
            "obx5": [s.obx_5.to_er7() for s in message.children if s.name == "OBX"],
        }
    except Exception as e:  # noqa: BLE001 - report any refusal
        return {"error": type(e).__name__}


def main() -> int:
    with open(sys.argv[1], encoding="utf-8", newline="") as f:
        text = f.read()
    print(json.dumps({"hl7": with_hl7(text), "hl7apy": with_hl7apy(text)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
