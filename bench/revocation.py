#!/usr/bin/env python3
"""Revocation latency across instances: how long after a revoking response
from instance A does instance B first refuse the revoked token?

Starts two latchkey instances (the given binary) on one database, then for
each trial: a fresh login through A, B warmed up (its cache holds the user),
a revocation — through A (logout, ending the session by id, logout
everywhere, password change, deactivation by staff, deletion by staff) or by
another process (a SQL UPDATE through psql) — and B polled with the token
until it answers 401. Prints per-kind and overall p50/p99/max in ms as JSON,
and how many trials B refused on the very first request after A's response
(`next_refused`): the contract's "refused from the next request on" holds on
SQLite; on PostgreSQL the revoking response waits until A's own change feed
has heard a marker sent after the commit, so B's listening backend has the
notification queued and only has to be scheduled to write it.

Method: one client per instance, each on one keep-alive connection; the time
runs from the moment A's revoking response has been read (for the SQL kind:
psql has returned) to the moment B's first 401 has been read, B being asked
back to back (no sleep). Kinds rotate per trial, so a kind's p99 over ~30
trials is about its maximum.

    bench/revocation.py BINARY DATABASE_URL [--trials 200] [--out FILE]

Only the standard library; psql for the SQL kind (PostgreSQL) or sqlite3's
module (SQLite).
"""
import argparse
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

PASSWORD = "bench-passphrase-42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(self, method, path, body=None, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        payload = None if body is None else json.dumps(body)
        for attempt in range(2):
            try:
                self.conn.request(method, path, payload, headers)
                response = self.conn.getresponse()
                data = response.read()
                return response.status, (json.loads(data) if data else None)
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt:
                    raise
        raise RuntimeError("unreachable")


def start(binary, database_url, port, workdir):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BIND": f"127.0.0.1:{port}",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
        "BCRYPT_COST": "4",
        "THROTTLE_AUTH_PER_IP": "0",
        "THROTTLE_LOGIN_FAILURES": "0",
        "RUST_LOG": "warn",
    }
    process = subprocess.Popen([binary, "serve"], cwd=workdir, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if Client(port).call("GET", "/readyz")[0] == 200:
                # The change feed connects within a second of start-up.
                time.sleep(1.5)
                return process
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    sys.exit("the server did not start")


def sql(database_url, statement):
    if database_url.startswith("sqlite://"):
        conn = sqlite3.connect(database_url[len("sqlite://"):], timeout=10)
        conn.execute(statement)
        conn.commit()
        conn.close()
    else:
        subprocess.run(["psql", database_url, "-qc", statement], check=True)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("database_url")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--out")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp()
    port_a, port_b = free_port(), free_port()
    a_proc = start(args.binary, args.database_url, port_a, workdir)
    b_proc = start(args.binary, args.database_url, port_b, workdir)
    try:
        a, b = Client(port_a), Client(port_b)
        stamp = int(time.time())
        status, body = a.call("POST", "/register/", {"email": f"staff-{stamp}@example.com", "password": PASSWORD})
        assert status == 201, body
        staff_id = body["user"]["id"]
        sql(args.database_url, f"UPDATE users SET is_staff = true WHERE id = {staff_id}")
        _, staff = a.call("POST", "/auth/", {"email": f"staff-{stamp}@example.com", "password": PASSWORD})
        staff_token = staff["token"]["access"]
        kinds = ["logout", "end_session", "logout_everywhere", "password_change", "deactivation", "deletion", "sql_update"]
        results = {kind: [] for kind in kinds}
        next_refused = {kind: 0 for kind in kinds}
        for trial in range(args.trials):
            kind = kinds[trial % len(kinds)]
            email = f"r{stamp}-{trial}@example.com"
            status, body = a.call("POST", "/register/", {"email": email, "password": PASSWORD})
            assert status == 201, body
            user_id = body["user"]["id"]
            access = body["token"]["access"]
            for _ in range(3):
                status, _ = b.call("GET", "/auth/", token=access)
                assert status == 200, status
            if kind == "logout":
                status, _ = a.call("DELETE", "/auth/", token=access)
            elif kind == "end_session":
                _, sessions = a.call("GET", "/auth/sessions/", token=access)
                sid = sessions["results"][0]["id"]
                # Ended by another session of the same user.
                _, other = a.call("POST", "/auth/", {"email": email, "password": PASSWORD})
                status, _ = a.call("DELETE", f"/auth/sessions/{sid}/", token=other["token"]["access"])
            elif kind == "logout_everywhere":
                status, _ = a.call("DELETE", "/auth/sessions/", token=access)
            elif kind == "password_change":
                status, _ = a.call("POST", "/auth/password/", {"old_password": PASSWORD, "new_password": PASSWORD + "x"}, token=access)
            elif kind == "deactivation":
                status, _ = a.call("PATCH", f"/list/{user_id}/", {"is_active": False}, token=staff_token)
            elif kind == "deletion":
                status, _ = a.call("DELETE", f"/list/{user_id}/", token=staff_token)
            else:
                sql(args.database_url, f"UPDATE users SET is_active = false WHERE id = {user_id}")
                status = 200
            revoked = time.perf_counter()
            assert status in (200, 202, 204), (kind, status)
            first = True
            while True:
                status, _ = b.call("GET", "/auth/", token=access)
                if status == 401:
                    next_refused[kind] += first
                    break
                first = False
                assert status == 200, status
                if time.perf_counter() - revoked > 5:
                    sys.exit(f"{kind}: still accepted 5 s after the revocation")
            results[kind].append((time.perf_counter() - revoked) * 1000)
        everything = [ms for values in results.values() for ms in values]
        report = {
            "trials": len(everything),
            "overall": {
                "p50_ms": percentile(everything, 50), "p99_ms": percentile(everything, 99), "max_ms": max(everything),
                "next_refused": sum(next_refused.values()),
            },
            "kinds": {
                kind: {
                    "n": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "max_ms": max(v),
                    "next_refused": next_refused[kind],
                }
                for kind, v in results.items() if v
            },
        }
        text = json.dumps(report, indent=2)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text + "\n")
    finally:
        for process in (a_proc, b_proc):
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
