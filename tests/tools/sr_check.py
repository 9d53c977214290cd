#!/usr/bin/env python3
"""Read a DICOM SR made by the fusion service back with pydicom (an
independent reader) and print what it says as one JSON object.

Usage: sr_check.py FILE

Output: {"sop_class", "verification_flag", "completion_flag", "modality",
"patient_id", "patient_name", "study_instance_uid", "series_instance_uid",
"sop_instance_uid", "verifying_observer", "predecessor", "evidence",
"image_library", "summary", "observations": {CODE: {"probability",
"uncertainty", "belief", "disbelief", "base_rate", "conflict",
"conformal_set", "abstention", "review_decision", "algorithms"}}}
Exits 1 with the error when the file cannot be read.
"""
import json
import sys

import pydicom


def code(item, seq="ConceptNameCodeSequence"):
    s = getattr(item, seq, None)
    return s[0].CodeValue if s else None


def children(item):
    return list(getattr(item, "ContentSequence", []) or [])


def num(item):
    return float(item.MeasuredValueSequence[0].NumericValue)


NUMS = {
    "PROB": "probability",
    "UNCERTAINTY": "uncertainty",
    "BELIEF": "belief",
    "DISBELIEF": "disbelief",
    "BASERATE": "base_rate",
    "CONFLICT": "conflict",
    "IMAGEPROB": "image_probability",
    "TEXTPROB": "text_probability",
}


def group(g):
    out = {"conformal_set": [], "algorithms": []}
    finding = None
    for it in children(g):
        c = code(it)
        if c == "121071":
            finding = code(it, "ConceptCodeSequence")
        elif c in NUMS:
            out[NUMS[c]] = num(it)
        elif c == "CONFORMALSET":
            out["conformal_set"].append(code(it, "ConceptCodeSequence"))
        elif c == "ABSTENTION":
            out["abstention"] = it.ConceptCodeSequence[0].CodeMeaning
        elif c == "REVIEWDECISION":
            out["review_decision"] = code(it, "ConceptCodeSequence")
        elif c == "111001":
            out["algorithms"].append(it.TextValue)
    return finding, out


def main() -> int:
    try:
        ds = pydicom.dcmread(sys.argv[1])
    except Exception as e:  # noqa: BLE001 - report any read failure
        print(f"unreadable: {e}")
        return 1
    result = {
        "sop_class": str(ds.SOPClassUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "modality": ds.Modality,
        "verification_flag": ds.VerificationFlag,
        "completion_flag": ds.CompletionFlag,
        "patient_id": str(ds.get("PatientID", "")),
        "patient_name": str(ds.get("PatientName", "")),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "root": code(ds),
        "verifying_observer": None,
        "predecessor": None,
        "evidence": [],
        "image_library": [],
        "observations": {},
        "summary": None,
    }
    if "VerifyingObserverSequence" in ds:
        result["verifying_observer"] = str(ds.VerifyingObserverSequence[0].VerifyingObserverName)
    if "PredecessorDocumentsSequence" in ds:
        p = ds.PredecessorDocumentsSequence[0]
        result["predecessor"] = str(
            p.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        )
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
        for series in study.ReferencedSeriesSequence:
            for sop in series.ReferencedSOPSequence:
                result["evidence"].append(str(sop.ReferencedSOPInstanceUID))
    for it in children(ds):
        c = code(it)
        if c == "111028":
            for grp in children(it):
                for img in children(grp):
                    result["image_library"].append(
                        str(img.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                    )
        elif c == "126010":
            for g in children(it):
                finding, values = group(g)
                result["observations"][finding] = values
        elif c == "C0034375":
            for e in children(it):
                if code(e) == "121111":
                    result["summary"] = e.TextValue
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
