#!/usr/bin/env python3
"""Time from process start to the first 200 of GET /, on a fresh SQLite data
folder each time (so migrations run too). Prints one JSON object.

    first_200.py BINARY [--runs 5]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def once(binary):
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        env = {"PATH": os.environ.get("PATH", ""), "BIND": f"127.0.0.1:{port}", "RUST_LOG": "error"}
        started = time.perf_counter()
        proc = subprocess.Popen([binary, "serve"], cwd=work, env=env)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                        if r.status == 200:
                            return (time.perf_counter() - started) * 1000
                except OSError:
                    time.sleep(0.002)
                if time.perf_counter() - started > 30:
                    raise SystemExit("no 200 within 30 s")
        finally:
            proc.terminate()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    times = [once(a.binary) for _ in range(a.runs)]
    print(json.dumps({"first_200_ms_median": round(statistics.median(times), 1),
                      "first_200_ms_runs": [round(t, 1) for t in times]}))


if __name__ == "__main__":
    main()
