"""Resident memory of `fusion serve` through rounds of malformed STOW-RS parts.

A benchmark, not a test: it prints the process's VmRSS at start, after each
round of 100 seeded mutants of the public catalogue files (1 to 12 random
bytes changed each), and 10 s after the last, beside the answers' status
counts, so "memory is not given back" (issue #14, finding 8) can be read as
growth between rounds (a leak) or a plateau (the allocator's high-water
mark). Run from the repository root after `scripts/setup` and a build:

    .venv/bin/python tests/tools/memory_after_bad_input.py [ROUNDS]

Environment: FUSION_BIN (default $CARGO_TARGET_DIR/debug/fusion, else
target/debug/fusion). glibc settings such as MALLOC_ARENA_MAX pass through
to the server. Uses a throw-away SQLite service on 127.0.0.1:18123.
"""

import base64
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

PORT = 18123
BOUNDARY = "memory-bench-boundary-0123456789"


def fusion_bin():
    if os.environ.get("FUSION_BIN"):
        return os.environ["FUSION_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return os.path.join(target, "debug", "fusion")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    data = tempfile.mkdtemp(prefix="fusion-memory-")
    env = dict(os.environ, FUSION_DATA_DIR=data, RUST_LOG="warn", FUSION_WORKERS="0")
    out = subprocess.run(
        [fusion_bin(), "apikey", "create", "--role", "integration", "--name", "bench", "--format", "json"],
        env=env, capture_output=True, text=True, check=True)
    key = json.loads(out.stdout.strip().splitlines()[-1])
    auth = "Basic " + base64.b64encode(f"{key['id']}:{key['secret']}".encode()).decode()
    server = subprocess.Popen([fusion_bin(), "serve", "--bind", f"127.0.0.1:{PORT}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def rss_mb():
        with open(f"/proc/{server.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) // 1024
        return -1

    def stow(body):
        payload = (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").encode() + body \
            + f"\r\n--{BOUNDARY}--\r\n".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{PORT}/dicom-web/studies", data=payload, method="POST",
            headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
                     "Authorization": auth, "Accept": "application/dicom+json"})
        try:
            return urllib.request.urlopen(request, timeout=60).status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError as e:
            return type(e).__name__

    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz")
                break
            except OSError:
                time.sleep(0.2)
        files = [f for f in glob.glob(".test-data/dicom/**/*.dcm", recursive=True)
                 if os.path.getsize(f) < 3_000_000]
        rng = random.Random(14)
        print(f"{len(files)} catalogue files; RSS at start {rss_mb()} MB", flush=True)
        codes = {}
        for r in range(rounds):
            for _ in range(100):
                part = bytearray(open(rng.choice(files), "rb").read())
                for _ in range(rng.randint(1, 12)):
                    part[rng.randrange(len(part))] = rng.randrange(256)
                code = stow(bytes(part))
                codes[code] = codes.get(code, 0) + 1
            time.sleep(2)
            print(f"round {r + 1}: RSS {rss_mb()} MB; answers {codes}", flush=True)
        time.sleep(10)
        print(f"10 s after the last round: RSS {rss_mb()} MB", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
