#!/usr/bin/env python3
"""STOW-RS responses, QIDO-RS includefield, public URLs and rendered resources
with the independent dicomweb-client (and pydicom as the reference).

Usage: dicomweb_conformance_check.py BASE_URL USER PASSWORD CALLS_JSON [HEADERS_JSON]

HEADERS_JSON, if given, is a JSON object of extra request headers (e.g. the
X-Forwarded-* headers a reverse proxy adds).

CALLS_JSON is a JSON list of calls; each is one of
  {"op": "store", "files": [{"path": LOCAL_FILE, "sop_uids_as_un": false,
      "new_sop_uid": null}], "study": null}
      store_instances(); the Store Instances Response as DICOM JSON, or
      {"error": "HTTP 409"}. "sop_uids_as_un" rewrites SOP Class and SOP
      Instance UID as UN elements holding the UID and its NUL padding;
      "new_sop_uid" gives the instance that SOP Instance UID (another
      instance of the same series).
  {"op": "search_studies", "fields": [...], "filters": {...}}
      search_for_studies(); the results as DICOM JSON.
  {"op": "search_instances", "filters": {...}}
  {"op": "instance_metadata", "study": ..., "series": ..., "sop": ...}
  {"op": "get", "url": ...}   a plain GET of a URL the service handed out
      (RetrieveURL, BulkDataURI), with the same session: {"status", "content_type"}
  {"op": "rendered", "level": "instance" | "series" | "study", "study": ...,
      "series": ..., "sop": ..., "media_types": [...] | null, "params": {...} | null}
      retrieve_{level}_rendered() (the study level by hand: dicomweb-client
      0.61 has no retrieve_study_rendered); the body as base64.
  {"op": "pydicom_palette_rgb", "path": LOCAL_FILE, "out": null | NEW_FILE}
      pydicom's apply_color_lut() of the first frame, as SHA-256 of its RGB
      bytes and its shape; with "out", the file's palette is first
      rewritten as Segmented Palette Color LUT Data (PS3.3 C.7.9.2) and
      saved as NEW_FILE, whose rendering is then measured.

Prints one JSON list, a result per call; {"error": "..."} when a call failed.
"""
import base64
import hashlib
import json
import sys

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_auth
from pydicom.dataelem import DataElement
from requests.auth import HTTPBasicAuth


def uids_as_un(ds):
    """SOP Class and Instance UID written as UN with NUL padding (PS3.5 6.2.2)."""
    for tag in (0x00080016, 0x00080018):
        uid = str(ds[tag].value).encode("ascii")
        if len(uid) % 2:
            uid += b"\x00"
        ds[tag] = DataElement(tag, "UN", uid)
    return ds


def segment(channel):
    """A channel's table as segments (PS3.3 C.7.9.2): a discrete segment of
    the first entry, linear segments where the table runs on a straight
    line for three entries or more, discrete segments elsewhere. (Indirect
    segments are covered by the unit tests of services/imaging/src/palette.rs.)"""
    values = list(channel)
    out = [0, 1, values[0]]
    i = 1
    while i < len(values):
        # The longest straight run from values[i - 1].
        j = i
        while j + 1 < len(values) and (values[j + 1] - values[j]) == (values[i] - values[i - 1]):
            j += 1
        n = j - i + 1
        if n >= 3:
            out += [1, n, values[j]]
        else:
            out += [0, n] + values[i : j + 1]
        i = j + 1
    return out


def palette_rgb(call):
    from pydicom.pixels import apply_color_lut

    ds = pydicom.dcmread(call["path"])
    result = {}
    if call.get("out"):
        import numpy as np

        for colour in ("Red", "Green", "Blue"):
            desc = ds[f"{colour}PaletteColorLookupTableDescriptor"].value
            bits = desc[2]
            data = ds[f"{colour}PaletteColorLookupTableData"].value
            dtype = "<u2" if bits > 8 else "u1"
            table = np.frombuffer(data, dtype=dtype).tolist()
            seg = np.array(segment(table), dtype="<u2").tobytes()
            del ds[f"{colour}PaletteColorLookupTableData"]
            keyword = f"Segmented{colour}PaletteColorLookupTableData"
            tag = pydicom.datadict.tag_for_keyword(keyword)
            ds[tag] = DataElement(tag, "OW", seg)
        ds.save_as(call["out"], enforce_file_format=True)
        ds = pydicom.dcmread(call["out"])
    arr = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]
    rgb = apply_color_lut(arr, ds)
    # 16-bit tables keep their high byte, as the service renders.
    if rgb.dtype.itemsize > 1:
        rgb = (rgb >> 8).astype("u1")
    result["shape"] = list(rgb.shape)
    result["sha256"] = hashlib.sha256(rgb.astype("u1").tobytes()).hexdigest()
    return result


def run(client, session, call):
    op = call["op"]
    if op == "store":
        datasets = []
        for f in call["files"]:
            ds = pydicom.dcmread(f["path"])
            if f.get("new_sop_uid"):
                # Another instance of the same series.
                ds.SOPInstanceUID = f["new_sop_uid"]
                ds.file_meta.MediaStorageSOPInstanceUID = f["new_sop_uid"]
            if f.get("sop_uids_as_un"):
                ds = uids_as_un(ds)
            datasets.append(ds)
        response = client.store_instances(datasets=datasets, study_instance_uid=call.get("study"))
        return response.to_json_dict()
    if op == "search_studies":
        return client.search_for_studies(
            fields=call.get("fields"), search_filters=call.get("filters") or {}
        )
    if op == "search_instances":
        return client.search_for_instances(search_filters=call.get("filters") or {})
    if op == "instance_metadata":
        return client.retrieve_instance_metadata(
            study_instance_uid=call["study"],
            series_instance_uid=call["series"],
            sop_instance_uid=call["sop"],
        )
    if op == "get":
        r = session.get(call["url"], headers={"Accept": "*/*"}, timeout=60)
        return {"status": r.status_code, "content_type": r.headers.get("Content-Type", "")}
    if op == "rendered":
        media = call.get("media_types")
        media = tuple(media) if media else None
        level = call["level"]
        if level == "instance":
            body = client.retrieve_instance_rendered(
                study_instance_uid=call["study"],
                series_instance_uid=call["series"],
                sop_instance_uid=call["sop"],
                media_types=media,
                params=call.get("params"),
            )
        elif level == "series":
            body = client.retrieve_series_rendered(
                study_instance_uid=call["study"],
                series_instance_uid=call["series"],
                media_types=media,
                params=call.get("params"),
            )
        else:
            # dicomweb-client 0.61 has no retrieve_study_rendered: the same
            # session, by hand.
            r = session.get(
                f"{client.base_url}/studies/{call['study']}/rendered",
                params=call.get("params"),
                timeout=60,
            )
            r.raise_for_status()
            body = r.content
        return {"base64": base64.b64encode(body).decode("ascii")}
    if op == "pydicom_palette_rgb":
        return palette_rgb(call)
    raise ValueError(f"unknown op {op}")


def main() -> int:
    base, user, password, calls = sys.argv[1:5]
    headers = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    session = create_session_from_auth(HTTPBasicAuth(user, password))
    session.headers.update(headers)
    client = DICOMwebClient(url=base, session=session)
    out = []
    for call in json.loads(calls):
        try:
            out.append(run(client, session, call))
        except requests.HTTPError as e:
            out.append({"error": f"HTTP {e.response.status_code}"})
        except Exception as e:  # noqa: BLE001 - reported to the test
            out.append({"error": f"{type(e).__name__}: {e}"})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
