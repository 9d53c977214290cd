#!/usr/bin/env python3
"""Retrieve frames, bulk data and instances with the independent dicomweb-client.

Usage: dicomweb_retrieve_check.py BASE_URL USER PASSWORD CALLS_JSON

CALLS_JSON is a JSON list of calls; each is one of
  {"op": "frames", "study": ..., "series": ..., "sop": ..., "frames": [1, 2],
   "media_types": null | ["image/jp2", ["application/octet-stream", "1.2.840.10008.1.2.1"]]}
  {"op": "bulk", "url": ..., "media_types": ...}
  {"op": "instance", "study": ..., "series": ..., "sop": ..., "media_types": ...}
  {"op": "search_instances", "study": ..., "limit": N}   (get_remaining: pages with offset)
  {"op": "search_all"}   (cross-study series and instance searches)
  {"op": "pydicom_frames", "path": LOCAL_FILE}   (pydicom's own decoding, for reference)
  {"op": "pydicom_pixels", "path": LOCAL_FILE}   (all frames decoded, as one)
  {"op": "pydicom_encapsulated", "path": LOCAL_FILE}   (pydicom's frame split)
  {"op": "pydicom_file", "path": LOCAL_FILE}   (as "instance", from a local file)

Prints one JSON list, a result per call: for frames and bulk the length and
SHA-256 of each part dicomweb-client returned; for an instance the transfer
syntax pydicom read and the SHA-256 of its Pixel Data (decoded frames'
bytes for pydicom_frames); {"error": "..."} when the call failed.
"""
import hashlib
import json
import sys

import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_auth
from requests.auth import HTTPBasicAuth


def media(value):
    if value is None:
        return None
    return tuple(v if isinstance(v, str) else tuple(v) for v in value)


def parts(items):
    return [{"len": len(p), "sha256": hashlib.sha256(p).hexdigest()} for p in items]


def describe(ds):
    return {
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "photometric": str(ds.get("PhotometricInterpretation", "")),
        "pixel_len": len(ds.PixelData) if "PixelData" in ds else None,
        "pixel_sha256": hashlib.sha256(ds.PixelData).hexdigest() if "PixelData" in ds else None,
    }


def run(client, call):
    op = call["op"]
    if op == "frames":
        return parts(
            client.retrieve_instance_frames(
                study_instance_uid=call["study"],
                series_instance_uid=call["series"],
                sop_instance_uid=call["sop"],
                frame_numbers=call["frames"],
                media_types=media(call.get("media_types")),
            )
        )
    if op == "bulk":
        return parts(
            client.retrieve_bulkdata(call["url"], media_types=media(call.get("media_types")))
        )
    if op == "instance":
        ds = client.retrieve_instance(
            study_instance_uid=call["study"],
            series_instance_uid=call["series"],
            sop_instance_uid=call["sop"],
            media_types=media(call.get("media_types")),
        )
        return describe(ds)
    if op == "search_instances":
        found = client.search_for_instances(
            study_instance_uid=call["study"], limit=call["limit"], get_remaining=True
        )
        return sorted(i["00080018"]["Value"][0] for i in found)
    if op == "search_all":
        series = client.search_for_series()
        instances = client.search_for_instances()
        return {
            "series": sorted(x["0020000E"]["Value"][0] for x in series),
            "instances": sorted(x["00080018"]["Value"][0] for x in instances),
        }
    if op == "pydicom_file":
        import pydicom

        return describe(pydicom.dcmread(call["path"]))
    if op == "pydicom_encapsulated":
        import pydicom
        from pydicom.encaps import generate_frames

        ds = pydicom.dcmread(call["path"])
        n = int(ds.get("NumberOfFrames", 1) or 1)
        return parts(list(generate_frames(ds.PixelData, number_of_frames=n)))
    if op == "pydicom_pixels":
        import pydicom

        arr = pydicom.dcmread(call["path"]).pixel_array
        return parts([arr.astype(arr.dtype.newbyteorder("<")).tobytes()])[0]
    if op == "pydicom_frames":
        import pydicom

        ds = pydicom.dcmread(call["path"])
        arr = ds.pixel_array
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames == 1:
            arr = arr[None, ...]
        return parts([arr[i].astype(arr.dtype.newbyteorder("<")).tobytes() for i in range(frames)])
    raise ValueError(f"unknown op {op}")


def main() -> int:
    base, user, password, calls = sys.argv[1:5]
    session = create_session_from_auth(HTTPBasicAuth(user, password))
    client = DICOMwebClient(url=base, session=session)
    out = []
    for call in json.loads(calls):
        try:
            out.append(run(client, call))
        except requests.HTTPError as e:
            out.append({"error": f"HTTP {e.response.status_code}"})
        except Exception as e:  # noqa: BLE001 - reported to the test
            out.append({"error": f"{type(e).__name__}: {e}"})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
