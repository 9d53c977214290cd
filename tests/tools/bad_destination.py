#!/usr/bin/env python3
"""A DICOMweb (STOW-RS) and FHIR destination that misbehaves on request,
for the outbox tests.

Usage: bad_destination.py PORT_FILE
Listens on 127.0.0.1, a free port, written to PORT_FILE.

  POST /mode/<mode>      ok | 409 | 500 | garbage | slow: how to answer from now on
  POST /dicom-web/studies  STOW-RS. ok: reads each part with pydicom and answers
                         200 application/dicom+json with the Referenced SOP
                         Sequence; 409 and 500: that status and a text body;
                         garbage: 200 with a body that is not JSON; slow: 200,
                         then the body one byte a second.
  POST /fhir             a transaction Bundle, answered the same way (ok:
                         a transaction-response Bundle).
  GET /received          {"stow": [SOP Instance UIDs stored], "fhir": [bundles],
                         "requests": n}
"""
import io
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom

STATE = {"mode": "ok", "stow": [], "fhir": [], "requests": 0}
LOCK = threading.Lock()


def parts(content_type, body):
    boundary = None
    for p in content_type.split(";"):
        p = p.strip()
        if p.startswith("boundary="):
            boundary = p[len("boundary="):].strip('"')
    out = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        out.append(data[:-2] if data.endswith(b"\r\n") else data)
    return out


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if STATE["mode"] == "slow" and status == 200:
                for b in body:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(1)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting, as it should

    def do_GET(self):
        if self.path == "/received":
            with LOCK:
                body = json.dumps(STATE).encode()
            self.answer(200, body)
        else:
            self.answer(404, b"{}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path.startswith("/mode/"):
            STATE["mode"] = self.path[len("/mode/"):]
            self.answer(200, b"{}")
            return
        with LOCK:
            STATE["requests"] += 1
        mode = STATE["mode"]
        if mode == "409":
            self.answer(409, b"conflict: this destination refuses the request", "text/plain")
            return
        if mode == "500":
            self.answer(500, b"internal error at the destination", "text/plain")
            return
        if mode == "garbage":
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"\x00garbage!")
            return
        if self.path.startswith("/dicom-web/studies"):
            items = []
            for data in parts(self.headers["Content-Type"], body):
                ds = pydicom.dcmread(io.BytesIO(data))
                uid = str(ds.SOPInstanceUID)
                with LOCK:
                    if mode == "ok":
                        STATE["stow"].append(uid)
                items.append({
                    "00081150": {"vr": "UI", "Value": [str(ds.SOPClassUID)]},
                    "00081155": {"vr": "UI", "Value": [uid]},
                })
            answer = {"00081199": {"vr": "SQ", "Value": items}}
            self.answer(200, json.dumps(answer).encode(), "application/dicom+json")
        elif self.path.startswith("/fhir"):
            bundle = json.loads(body)
            with LOCK:
                if mode == "ok":
                    STATE["fhir"].append(bundle)
            answer = {
                "resourceType": "Bundle",
                "type": "transaction-response",
                "entry": [{"response": {"status": "200 OK"}} for _ in bundle.get("entry", [])],
            }
            self.answer(200, json.dumps(answer).encode(), "application/fhir+json")
        else:
            self.answer(404, b"{}")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
