#!/usr/bin/env python3
"""Login timing per stored-hash format, and peak memory for argon2 at the bound.

The security review's probes for D4 and D9, against a running release server
(started by bench/hash_bounds.sh, SQLite, BCRYPT_COST=12 by default):

* one account per stored format (Django's defaults, made by Django itself:
  tests/fixtures/django_hashes/vectors.json, key "bench"; latchkey's own
  bcrypt from registration; hashes past the bounds), written straight into
  the users table; then ROUNDS rounds of one wrong-password login per
  account plus one for an unknown email, the accounts in a new random order
  each round. Prints the median, min and max per format.
* first, VmHWM (/proc/PID/status) of the server after the registrations,
  after logins against argon2 hashes past the bound (m = 256 MiB + 1 KiB and
  4 GiB: never computed, so flat), then after logins against one at the
  bound (m = 256 MiB, t=1, p=1: computed, so about +256 MiB).

Usage: hash_bounds.py URL PID DATABASE_FILE [ROUNDS]   (stdlib only)
"""

import base64
import hashlib
import json
import os
import random
import sqlite3
import statistics
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "correct horse battery staple"
WRONG = "correct horse battery stapler"


def post(url, body):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            status = response.status
            response.read()
    except urllib.error.HTTPError as error:
        status = error.code
        error.read()
    return status, (time.perf_counter() - started) * 1000


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise SystemExit("no VmHWM")


def b64(data):
    return base64.b64encode(data).decode().rstrip("=")


def argon2(memory_kib, t=1, p=1):
    # Not a hash of anything: a wrong password is computed against it all
    # the same (the comparison comes last).
    return f"argon2$argon2id$v=19$m={memory_kib},t={t},p={p}${b64(os.urandom(16))}${b64(os.urandom(32))}"


def main():
    url, pid, database = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    with open(os.path.join(ROOT, "tests/fixtures/django_hashes/vectors.json")) as f:
        django = {v["hasher"]: v["encoded"] for v in json.load(f)["bench"]}
    salt = "benchSaltbenchSalt0123"
    md5 = hashlib.md5((salt + PASSWORD).encode()).hexdigest()
    sha1 = hashlib.sha1((salt + PASSWORD).encode()).hexdigest()
    formats = {
        "md5 (Django salted)": django["md5"],
        "sha1 (Django, removed: unknown format)": f"sha1${salt}${sha1}",
        "pbkdf2_sha256 1,000,000 (Django default)": django["pbkdf2_sha256"],
        "argon2 102400 KiB t=2 p=8 (Django default)": django["argon2"],
        "scrypt 2^14·8·5 (Django default)": django["scrypt"],
        "bcrypt$ 12 (Django)": django["bcrypt"],
        "latchkey bcrypt 12 (registered)": None,
        "unusable !": "!" + "x" * 40,
        "past bound: pbkdf2 30,000,000": f"pbkdf2_sha256$30000000${salt}${b64(os.urandom(32))}=",
        "past bound: bcrypt 17": django["bcrypt"].replace("$2b$12$", "$2b$17$"),
        "past bound: scrypt 2^15·1·600": f"scrypt$32768${salt}$1$600${b64(os.urandom(64))}==",
    }
    emails = {}
    for i, name in enumerate(list(formats) + ["argon2 past", "argon2 4GiB", "argon2 at"]):
        email = f"bench{i}@example.com"
        status, _ = post(f"{url}/register/", {"email": email, "password": PASSWORD})
        assert status == 201, (email, status)
        emails[name] = email
    db = sqlite3.connect(database)
    hashes = dict(formats)
    hashes["argon2 past"] = argon2(262_145)
    hashes["argon2 4GiB"] = argon2(4 * 1024 * 1024)
    hashes["argon2 at"] = argon2(262_144)
    for name, stored in hashes.items():
        if stored is not None:
            db.execute("UPDATE users SET password_hash = ? WHERE email = ?", (stored, emails[name]))
    db.commit()
    db.close()

    print("VmHWM of the server (kB), before any other login:\n")
    print("| After | VmHWM | login ms |")
    print("|---|---|---|")
    print(f"| the registrations | {vm_hwm_kib(pid)} | |")
    for name in ["argon2 past", "argon2 4GiB", "argon2 past", "argon2 at", "argon2 at"]:
        status, ms = post(f"{url}/auth/", {"email": emails[name], "password": WRONG})
        label = {
            "argon2 past": "argon2 m=262,145 KiB (past the bound)",
            "argon2 4GiB": "argon2 m=4 GiB (past the bound)",
            "argon2 at": "argon2 m=262,144 KiB t=1 (at the bound)",
        }[name]
        print(f"| {label}: {status} | {vm_hwm_kib(pid)} | {ms:.0f} |")

    samples = {name: [] for name in list(formats) + ["unknown email"]}
    statuses = {name: set() for name in samples}
    for _ in range(rounds):
        order = list(samples)
        random.shuffle(order)
        for name in order:
            email = "nobody@example.com" if name == "unknown email" else emails[name]
            status, ms = post(f"{url}/auth/", {"email": email, "password": WRONG})
            samples[name].append(ms)
            statuses[name].add(status)
    print(f"\nWrong-password login, {rounds} samples each (ms):\n")
    print("| Stored hash | median | min | max | status |")
    print("|---|---|---|---|---|")
    for name, values in samples.items():
        print(
            f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} "
            f"| {','.join(map(str, sorted(statuses[name])))} |"
        )


if __name__ == "__main__":
    main()
