#!/usr/bin/env python3
"""Search and retrieve from the service with the independent dicomweb-client.

Usage: dicomweb_client_check.py BASE_URL USER PASSWORD STUDY_UID

Prints one JSON object: the studies found, the study's series, and the SOP
Instance UIDs of the retrieved instances with the SHA-256 of each instance's
bytes as dicomweb-client received them (re-encoded by pydicom, so the test
compares UIDs and pixel bytes, not whole files).
"""
import hashlib
import json
import sys

import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_auth
from requests.auth import HTTPBasicAuth


def main() -> int:
    base, user, password, study = sys.argv[1:5]
    session = create_session_from_auth(HTTPBasicAuth(user, password))
    client = DICOMwebClient(url=base, session=session)
    studies = client.search_for_studies(search_filters={"StudyInstanceUID": study})
    series = client.search_for_series(study_instance_uid=study)
    instances = client.retrieve_study(study_instance_uid=study)
    out = {
        "studies": [s["0020000D"]["Value"][0] for s in studies],
        "series": [s["0020000E"]["Value"][0] for s in series],
        "instances": sorted(
            (
                {
                    "sop_instance_uid": str(ds.SOPInstanceUID),
                    "pixel_sha256": hashlib.sha256(ds.PixelData).hexdigest()
                    if "PixelData" in ds
                    else None,
                }
                for ds in instances
            ),
            key=lambda i: i["sop_instance_uid"],
        ),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except requests.HTTPError as e:
        print(f"HTTP error: {e}", file=sys.stderr)
        sys.exit(1)
