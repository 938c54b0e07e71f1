#!/usr/bin/env python3
"""A TOTP login against a password login (issue 22), sequential and interleaved.

    bench/mfa_login.py BASE_URL SERVER_PID OUTDIR [--users N] [--passes P]
                       [--workers W] [--warmup K]

Set-up (W parallel workers, not measured): N + K password users (`POST
/register/`) and N + K TOTP users (register, then `POST /auth/mfa/totp/` with
`current_password` and `POST /auth/mfa/totp/confirm/` with a code computed
here from the returned base32 secret: RFC 6238, SHA-1, 6 digits, 30 s).

Measurement, one request at a time, each kind on its own keep-alive
connection: round r logs in password user i (`POST /auth/`, 200) and TOTP user
i (`POST /auth/` answering 401 `mfa_required`, then `POST /auth/mfa/verify/`
with the current code, 200), the kind that goes first alternating round by
round. K warm-up rounds (their own users) come first and are not counted.
A TOTP step is accepted once per user (replay rule): before a TOTP user's
login, if the current step is not past the last one used for them, the client
sleeps (outside the timed region) until the next step; N users per pass keeps
each user's logins more than a step apart.

Per round: wall time (perf_counter, request sent to body read) of the password
login, of the TOTP login (both requests) and of verify/ alone; the server's CPU
(utime + stime of /proc/PID/stat, clock ticks) and, finer, the sum of
sum_exec_runtime over its threads (/proc/PID/task/*/schedstat, ns) around each
login and around verify/. Written to OUTDIR/rounds.json (raw) and
OUTDIR/summary.json; the summary is also printed.

Python 3 standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import statistics
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

PASSWORD = "bench-passphrase-42"
STEP = 30
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- TOTP (RFC 6238 over RFC 4226), the client's own ---------------------------------


def b32decode(secret):
    s = secret.strip().replace(" ", "").upper()
    return base64.b32decode(s + "=" * (-len(s) % 8))


def totp(key, step):
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 1_000_000)


# RFC 6238 Appendix B (SHA-1, its 8-digit codes' last 6 digits).
assert totp(b"12345678901234567890", 59 // 30) == "287082"
assert totp(b"12345678901234567890", 1111111109 // 30) == "081804"


def current_step():
    return int(time.time()) // STEP


# --- HTTP --------------------------------------------------------------------------


class Client:
    """One keep-alive connection; reconnects if the server closed it."""

    def __init__(self, base):
        u = urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.conn = None
        self.reconnects = 0

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.conn.connect()

    def post(self, path, body, token=None):
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        for attempt in (1, 2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request("POST", path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                self.reconnects += 1
                if attempt == 2:
                    raise
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return resp.status, payload


def expect(status, payload, want, what):
    if status != want:
        raise SystemExit(f"{what}: expected {want}, got {status}: {payload}")


# --- the server's CPU --------------------------------------------------------------


class Cpu:
    def __init__(self, pid):
        self.pid = pid
        self.stat_path = f"/proc/{pid}/stat"
        self.task_dir = f"/proc/{pid}/task"

    def ticks(self):
        with open(self.stat_path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is state (field 3); utime is field 14, stime field 15.
        return int(fields[11]) + int(fields[12])

    def ns(self):
        total = 0
        for tid in os.listdir(self.task_dir):
            try:
                with open(f"{self.task_dir}/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass  # a thread that ended meanwhile
        return total

    def sample(self):
        return self.ticks(), self.ns()


def cpu_delta(a, b):
    """(ms from utime+stime ticks, ms from schedstat)."""
    return (b[0] - a[0]) * 1000.0 / CLK_TCK, (b[1] - a[1]) / 1e6


# --- set-up ------------------------------------------------------------------------


_local = threading.local()


def client_for(base):
    if getattr(_local, "client", None) is None:
        _local.client = Client(base)
    return _local.client


def make_password_user(base, email):
    c = client_for(base)
    status, body = c.post("/register/", {"email": email, "password": PASSWORD})
    expect(status, body, 201, f"register {email}")
    return {"email": email}


def make_totp_user(base, email):
    c = client_for(base)
    status, body = c.post("/register/", {"email": email, "password": PASSWORD})
    expect(status, body, 201, f"register {email}")
    access = body["token"]["access"]
    status, body = c.post("/auth/mfa/totp/", {"current_password": PASSWORD}, token=access)
    expect(status, body, 200, f"enrol {email}")
    secret = body["secret"]
    key = b32decode(secret)
    step = current_step()
    status, body = c.post("/auth/mfa/totp/confirm/", {"code": totp(key, step)}, token=access)
    expect(status, body, 200, f"confirm {email}")
    assert len(body["recovery_codes"]) == 10
    return {"email": email, "key": key, "last_step": step}


# --- measurement -------------------------------------------------------------------


def password_login(c, cpu, user):
    c0 = cpu.sample()
    t0 = time.perf_counter()
    status, body = c.post("/auth/", {"email": user["email"], "password": PASSWORD})
    t1 = time.perf_counter()
    c1 = cpu.sample()
    expect(status, body, 200, f"password login {user['email']}")
    assert body["token"]["access"] and body["token"]["refresh"]
    ticks, ns = cpu_delta(c0, c1)
    return {"ms": (t1 - t0) * 1e3, "cpu_ms": ticks, "cpu_sched_ms": ns}


def wait_for_step_after(last_step):
    """Sleeps (untimed) until the current step is past `last_step`."""
    waited = 0.0
    while current_step() <= last_step:
        pause = (last_step + 1) * STEP - time.time() + 0.02
        if pause > 0:
            time.sleep(pause)
            waited += pause
    return waited


def totp_login(c, cpu, user):
    waited = wait_for_step_after(user["last_step"])
    c0 = cpu.sample()
    t0 = time.perf_counter()
    status, body = c.post("/auth/", {"email": user["email"], "password": PASSWORD})
    t1 = time.perf_counter()
    c1 = cpu.sample()
    expect(status, body, 401, f"first step {user['email']}")
    if body.get("code") != "mfa_required":
        raise SystemExit(f"first step {user['email']}: not mfa_required: {body}")
    mfa_token = body["mfa_token"]
    # The code of the step now (after the first request, still in the timed
    # region: computing it costs microseconds, as an authenticator app's would
    # be typed beforehand).
    step = current_step()
    code = totp(user["key"], step)
    c2 = cpu.sample()
    t2 = time.perf_counter()
    status, body = c.post("/auth/mfa/verify/", {"mfa_token": mfa_token, "code": code})
    t3 = time.perf_counter()
    c3 = cpu.sample()
    expect(status, body, 200, f"verify {user['email']}")
    assert body["token"]["access"] and body["token"]["refresh"]
    user["last_step"] = step
    first_ticks, first_ns = cpu_delta(c0, c1)
    verify_ticks, verify_ns = cpu_delta(c2, c3)
    all_ticks, all_ns = cpu_delta(c0, c3)
    return {
        "ms": (t3 - t0) * 1e3,
        "first_ms": (t1 - t0) * 1e3,
        "verify_ms": (t3 - t2) * 1e3,
        "cpu_ms": all_ticks,
        "cpu_sched_ms": all_ns,
        "first_cpu_ms": first_ticks,
        "first_cpu_sched_ms": first_ns,
        "verify_cpu_ms": verify_ticks,
        "verify_cpu_sched_ms": verify_ns,
        "step": step,
        "waited_s": round(waited, 3),
    }


# --- statistics ---------------------------------------------------------------------


def pct(values, p):
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def describe(values):
    return {
        "n": len(values),
        "median": pct(values, 0.5),
        "p90": pct(values, 0.9),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def bootstrap_ratio(num, den, n=2000, seed=22):
    """95 % interval of median(num) / median(den), rounds resampled as pairs."""
    rng = random.Random(seed)
    pairs = list(zip(num, den))
    ratios = []
    for _ in range(n):
        sample = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        ratios.append(statistics.median(a for a, _ in sample) / statistics.median(b for _, b in sample))
    return pct(ratios, 0.025), pct(ratios, 0.975)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def r(x, nd=2):
    return None if x is None else round(x, nd)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("pid", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--users", type=int, default=120, help="N users of each kind (default 120)")
    ap.add_argument("--passes", type=int, default=2, help="passes over the N users (default 2)")
    ap.add_argument("--workers", type=int, default=3, help="set-up workers (default 3)")
    ap.add_argument("--warmup", type=int, default=4, help="warm-up rounds, own users, not counted")
    ap.add_argument("--tag", default=time.strftime("%Y%m%d%H%M%S"), help="email prefix")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    cpu = Cpu(args.pid)
    total = args.users + args.warmup

    started = time.time()
    load_before = loadavg()
    print(f"[mfa-login] set-up: {total} password and {total} TOTP users, {args.workers} workers"
          f" (load {' '.join(load_before)})", flush=True)
    with ThreadPoolExecutor(args.workers) as pool:
        pw_f = [pool.submit(make_password_user, args.base, f"mfa-bench-{args.tag}-pw{i}@example.com")
                for i in range(total)]
        totp_f = [pool.submit(make_totp_user, args.base, f"mfa-bench-{args.tag}-totp{i}@example.com")
                  for i in range(total)]
        pw_users = [f.result() for f in pw_f]
        totp_users = [f.result() for f in totp_f]
    setup_s = time.time() - started
    print(f"[mfa-login] set-up done in {setup_s:.0f} s", flush=True)
    # Every enrolment used its step: start past the last one (the outbox's
    # notices drain meanwhile).
    wait_for_step_after(max(u["last_step"] for u in totp_users))
    time.sleep(1.0)

    pw_client, totp_client = Client(args.base), Client(args.base)
    rounds = []
    n_round = 0
    plan = [("warmup", 0, args.users + j) for j in range(args.warmup)]
    plan += [("measure", p, i) for p in range(args.passes) for i in range(args.users)]
    measure_started = None
    load_measure_before = None
    for phase, pass_no, i in plan:
        if phase == "measure" and measure_started is None:
            measure_started = time.time()
            load_measure_before = loadavg()
            print(f"[mfa-login] measuring: {args.passes} x {args.users} rounds (load {' '.join(load_measure_before)})",
                  flush=True)
        totp_first = n_round % 2 == 1
        if totp_first:
            t = totp_login(totp_client, cpu, totp_users[i])
            p = password_login(pw_client, cpu, pw_users[i])
        else:
            p = password_login(pw_client, cpu, pw_users[i])
            t = totp_login(totp_client, cpu, totp_users[i])
        rounds.append({
            "round": n_round, "phase": phase, "pass": pass_no, "user": i,
            "first": "totp" if totp_first else "password",
            "password": {k: r(v, 3) for k, v in p.items()},
            "totp": {k: (r(v, 3) if isinstance(v, float) else v) for k, v in t.items()},
            "load1": float(loadavg()[0]), "at": round(time.time(), 3),
        })
        n_round += 1
        if phase == "measure" and (n_round - args.warmup) % 40 == 0:
            m = [x for x in rounds if x["phase"] == "measure"]
            print(f"[mfa-login]   {len(m)} rounds: password median {statistics.median(x['password']['ms'] for x in m):.1f} ms, "
                  f"totp median {statistics.median(x['totp']['ms'] for x in m):.1f} ms (load {loadavg()[0]})", flush=True)
    measure_s = time.time() - measure_started
    load_after = loadavg()

    m = [x for x in rounds if x["phase"] == "measure"]
    pw_ms = [x["password"]["ms"] for x in m]
    totp_ms = [x["totp"]["ms"] for x in m]
    lo, hi = bootstrap_ratio(totp_ms, pw_ms)
    by_order = {}
    for first in ("password", "totp"):
        sub = [x for x in m if x["first"] == first]
        by_order[first + "_first"] = {
            "rounds": len(sub),
            "password_median_ms": r(statistics.median(x["password"]["ms"] for x in sub)),
            "totp_median_ms": r(statistics.median(x["totp"]["ms"] for x in sub)),
        }
        by_order[first + "_first"]["ratio"] = r(by_order[first + "_first"]["totp_median_ms"]
                                                / by_order[first + "_first"]["password_median_ms"], 4)

    def rounded(d):
        return {k: (r(v, 3) if isinstance(v, float) else v) for k, v in d.items()}

    summary = {
        "what": "TOTP login (POST /auth/ -> 401 mfa_required, POST /auth/mfa/verify/) vs password login (POST /auth/)",
        "users_per_kind": args.users, "passes": args.passes, "rounds": len(m), "warmup_rounds": args.warmup,
        "setup_workers": args.workers, "setup_s": round(setup_s, 1), "measure_s": round(measure_s, 1),
        "clk_tck": CLK_TCK,
        "load_before_setup": load_before, "load_before_measure": load_measure_before, "load_after": load_after,
        "load1_during": rounded(describe([x["load1"] for x in m])),
        "reconnects": pw_client.reconnects + totp_client.reconnects,
        "password_ms": rounded(describe(pw_ms)),
        "totp_ms": rounded(describe(totp_ms)),
        "totp_first_step_ms": rounded(describe([x["totp"]["first_ms"] for x in m])),
        "verify_ms": rounded(describe([x["totp"]["verify_ms"] for x in m])),
        "ratio_of_medians": r(statistics.median(totp_ms) / statistics.median(pw_ms), 4),
        "ratio_of_medians_95ci": [r(lo, 4), r(hi, 4)],
        "median_of_paired_ratios": r(statistics.median(t / p for t, p in zip(totp_ms, pw_ms)), 4),
        "median_of_paired_differences_ms": r(statistics.median(t - p for t, p in zip(totp_ms, pw_ms)), 2),
        "by_order": by_order,
        "cpu_ms_per_login": {
            "password_ticks": rounded(describe([x["password"]["cpu_ms"] for x in m])),
            "totp_ticks": rounded(describe([x["totp"]["cpu_ms"] for x in m])),
            "verify_ticks": rounded(describe([x["totp"]["verify_cpu_ms"] for x in m])),
            "password_sched": rounded(describe([x["password"]["cpu_sched_ms"] for x in m])),
            "totp_sched": rounded(describe([x["totp"]["cpu_sched_ms"] for x in m])),
            "totp_first_step_sched": rounded(describe([x["totp"]["first_cpu_sched_ms"] for x in m])),
            "verify_sched": rounded(describe([x["totp"]["verify_cpu_sched_ms"] for x in m])),
        },
        "step_waits_s": sum(x["totp"]["waited_s"] for x in m),
    }
    with open(os.path.join(args.outdir, "rounds.json"), "w") as f:
        json.dump(rounds, f, indent=1)
        f.write("\n")
    with open(os.path.join(args.outdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(json.dumps(summary, indent=2))
    ratio = summary["ratio_of_medians"]
    print(f"[mfa-login] password {summary['password_ms']['median']:.1f} ms, TOTP {summary['totp_ms']['median']:.1f} ms "
          f"(verify/ {summary['verify_ms']['median']:.2f} ms): ratio {ratio:.4f} "
          f"(95 % {summary['ratio_of_medians_95ci'][0]}-{summary['ratio_of_medians_95ci'][1]}) "
          f"load {' '.join(load_measure_before)} -> {' '.join(load_after)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
