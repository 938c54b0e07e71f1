#!/usr/bin/env python3
"""Native sign-in with a provider against a password login, sequential and
interleaved (docs/benchmarks.md, "Sign in with a provider").

    bench/social_login.py BASE_URL SERVER_PID OP_CONTROL_URL ISSUER CLIENT_ID OUTDIR
                          [--users N] [--passes P] [--workers W] [--warmup K]
                          [--provider NAME]

Set-up (W parallel workers, not measured): N + K password users (`POST
/register/`), and N + K provider identities logged in once through
`POST /auth/social/NAME/token/` (each a new user, linked): the returning
users.

Measurement, one request at a time, each kind on its own keep-alive
connection. Before each pass, outside the timed part, the OP's control port
signs (`POST /__control/sign`) every ID token the pass will present: iss =
ISSUER, aud = CLIENT_ID, sub, email, email_verified true, iat now, exp now +
600, a fresh nonce and jti (so no two tokens are alike; each is accepted
once). Round i of a pass makes three logins, in one of the six orders
(cycling round by round):

- `password`: `POST /auth/` for password user i (200);
- `first`: `POST /auth/social/NAME/token/` `{"id_token", "nonce"}` for a
  subject never seen (200, a new user with the token's email, linked);
- `returning`: the same route for returning identity i (200, its user).

K warm-up rounds (their own users and identities) come first and are not
counted. Per login: wall time (perf_counter, request sent to body read) and
the server's CPU around it (utime + stime of /proc/PID/stat, clock ticks,
and the sum of its threads' schedstat run time, ns). The OP's request log is
emptied before the measured rounds and read after them: a login that made
latchkey fetch discovery or keys again would show there. Written to
OUTDIR/rounds.json (raw) and OUTDIR/summary.json; the summary is also
printed.

Python 3 standard library only.
"""

import argparse
import http.client
import itertools
import json
import os
import secrets
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

PASSWORD = "bench-passphrase-42"
CLK_TCK = os.sysconf("SC_CLK_TCK")
KINDS = ("password", "first", "returning")
ORDERS = list(itertools.permutations(KINDS))


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

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=data, headers=headers)
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

    def post(self, path, body):
        return self.request("POST", path, body)


def expect(status, payload, want, what):
    if status != want:
        raise SystemExit(f"{what}: expected {want}, got {status}: {payload}")


# --- the server's CPU --------------------------------------------------------------


class Cpu:
    def __init__(self, pid):
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


# --- the provider's tokens ---------------------------------------------------------


class Op:
    def __init__(self, control, issuer, client_id):
        self.control = Client(control)
        self.issuer = issuer
        self.client_id = client_id

    def id_token(self, sub, email):
        """A fresh ID token for `sub` and the nonce it carries."""
        nonce = secrets.token_urlsafe(16)
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.client_id, "sub": sub,
            "email": email, "email_verified": True,
            "iat": now, "exp": now + 600, "nonce": nonce, "jti": secrets.token_hex(12),
        }
        status, body = self.control.post("/__control/sign", {"claims": claims})
        expect(status, body, 200, "sign")
        return {"id_token": body["token"], "nonce": nonce, "sub": sub, "email": email}

    def requests(self):
        status, body = self.control.request("GET", "/__control/requests")
        expect(status, body, 200, "OP request log")
        return body

    def clear_requests(self):
        status, body = self.control.request("DELETE", "/__control/requests")
        if status not in (200, 204):
            raise SystemExit(f"emptying the OP's request log: {status} {body}")


# --- set-up ------------------------------------------------------------------------


_local = threading.local()


def client_for(base):
    if getattr(_local, "client", None) is None:
        _local.client = Client(base)
    return _local.client


def make_password_user(base, email):
    status, body = client_for(base).post("/register/", {"email": email, "password": PASSWORD})
    expect(status, body, 201, f"register {email}")
    return {"email": email, "id": body["user"]["id"] if isinstance(body.get("user"), dict) else None}


def make_linked_user(base, path, token):
    status, body = client_for(base).post(path, {"id_token": token["id_token"], "nonce": token["nonce"]})
    expect(status, body, 200, f"first login {token['sub']}")
    return {"sub": token["sub"], "email": token["email"], "id": body["user"]["id"]}


# --- measurement -------------------------------------------------------------------


def timed(cpu, call):
    c0 = cpu.sample()
    t0 = time.perf_counter()
    status, body = call()
    t1 = time.perf_counter()
    c1 = cpu.sample()
    return status, body, {
        "ms": (t1 - t0) * 1e3,
        "cpu_ms": (c1[0] - c0[0]) * 1000.0 / CLK_TCK,
        "cpu_sched_ms": (c1[1] - c0[1]) / 1e6,
    }


def password_login(c, cpu, user):
    status, body, m = timed(cpu, lambda: c.post("/auth/", {"email": user["email"], "password": PASSWORD}))
    expect(status, body, 200, f"password login {user['email']}")
    assert body["token"]["access"] and body["token"]["refresh"]
    return m


def native_login(c, cpu, path, token, want_user=None):
    status, body, m = timed(cpu, lambda: c.post(path, {"id_token": token["id_token"], "nonce": token["nonce"]}))
    expect(status, body, 200, f"native login {token['sub']}")
    assert body["token"]["access"] and body["token"]["refresh"]
    assert body["user"]["email"] == token["email"], body["user"]
    if want_user is not None and body["user"]["id"] != want_user:
        raise SystemExit(f"returning login {token['sub']}: user {body['user']['id']}, expected {want_user}")
    m["user"] = body["user"]["id"]
    return m


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


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def r(x, nd=3):
    return round(x, nd) if isinstance(x, float) else x


def rounded(d):
    return {k: r(v) for k, v in d.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("pid", type=int)
    ap.add_argument("op_control")
    ap.add_argument("issuer")
    ap.add_argument("client_id")
    ap.add_argument("outdir")
    ap.add_argument("--provider", default="op")
    ap.add_argument("--users", type=int, default=120, help="rounds per pass (default 120)")
    ap.add_argument("--passes", type=int, default=2, help="passes (default 2)")
    ap.add_argument("--workers", type=int, default=3, help="set-up workers (default 3)")
    ap.add_argument("--warmup", type=int, default=6, help="warm-up rounds, own users, not counted")
    ap.add_argument("--tag", default=time.strftime("%Y%m%d%H%M%S"), help="email and subject prefix")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    cpu = Cpu(args.pid)
    op = Op(args.op_control, args.issuer, args.client_id)
    path = f"/auth/social/{args.provider}/token/"
    total = args.users + args.warmup
    tag = args.tag

    started = time.time()
    load_before = loadavg()
    print(f"[social-login] set-up: {total} password users, {total} linked provider users, {args.workers} workers"
          f" (load {' '.join(load_before)})", flush=True)
    setup_tokens = [op.id_token(f"ret-{tag}-{i}", f"social-bench-{tag}-ret{i}@example.com") for i in range(total)]
    with ThreadPoolExecutor(args.workers) as pool:
        pw_f = [pool.submit(make_password_user, args.base, f"social-bench-{tag}-pw{i}@example.com")
                for i in range(total)]
        ret_f = [pool.submit(make_linked_user, args.base, path, t) for t in setup_tokens]
        pw_users = [f.result() for f in pw_f]
        ret_users = [f.result() for f in ret_f]
    setup_s = time.time() - started
    print(f"[social-login] set-up done in {setup_s:.0f} s", flush=True)
    time.sleep(1.0)

    clients = {kind: Client(args.base) for kind in KINDS}
    rounds = []
    n_round = 0
    passes = [("warmup", 0, [args.users + j for j in range(args.warmup)])]
    passes += [("measure", p, list(range(args.users))) for p in range(args.passes)]
    measure_started = None
    load_measure_before = None
    mint_s = 0.0
    op_requests = []
    for phase, pass_no, users in passes:
        # Every token of the pass, signed now, outside the timed part.
        m0 = time.time()
        first_tokens = {i: op.id_token(f"new-{tag}-p{pass_no}-{phase}-{i}",
                                       f"social-bench-{tag}-new-{phase}{pass_no}-{i}@example.com") for i in users}
        ret_tokens = {i: op.id_token(ret_users[i]["sub"], ret_users[i]["email"]) for i in users}
        if measure_started is not None:
            mint_s += time.time() - m0
        if phase == "measure" and measure_started is None:
            op_requests_before = op.requests()
            op.clear_requests()
            measure_started = time.time()
            load_measure_before = loadavg()
            print(f"[social-login] measuring: {args.passes} x {args.users} rounds (load {' '.join(load_measure_before)})",
                  flush=True)
        for i in users:
            order = ORDERS[n_round % len(ORDERS)]
            row = {"round": n_round, "phase": phase, "pass": pass_no, "user": i, "order": list(order)}
            for kind in order:
                c = clients[kind]
                if kind == "password":
                    row[kind] = password_login(c, cpu, pw_users[i])
                elif kind == "first":
                    row[kind] = native_login(c, cpu, path, first_tokens[i])
                else:
                    row[kind] = native_login(c, cpu, path, ret_tokens[i], want_user=ret_users[i]["id"])
            for kind in KINDS:
                row[kind] = rounded(row[kind])
            row["load1"] = float(loadavg()[0])
            row["at"] = round(time.time(), 3)
            rounds.append(row)
            n_round += 1
            if phase == "measure" and (n_round - args.warmup) % 40 == 0:
                m = [x for x in rounds if x["phase"] == "measure"]
                print(f"[social-login]   {len(m)} rounds: medians password "
                      f"{statistics.median(x['password']['ms'] for x in m):.1f} ms, first "
                      f"{statistics.median(x['first']['ms'] for x in m):.2f} ms, returning "
                      f"{statistics.median(x['returning']['ms'] for x in m):.2f} ms (load {loadavg()[0]})", flush=True)
        if phase == "measure":
            op_requests += op.requests()
            op.clear_requests()
    measure_s = time.time() - measure_started - mint_s
    load_after = loadavg()

    m = [x for x in rounds if x["phase"] == "measure"]
    by_order = {}
    for order in ORDERS:
        sub = [x for x in m if tuple(x["order"]) == order]
        by_order[">".join(order)] = {
            "rounds": len(sub),
            **{f"{kind}_median_ms": r(statistics.median(x[kind]["ms"] for x in sub), 2) for kind in KINDS},
        }
    by_position = {}
    for kind in KINDS:
        by_position[kind] = {
            str(pos): r(statistics.median(x[kind]["ms"] for x in m if x["order"].index(kind) == pos), 2)
            for pos in range(3)
        }
    summary = {
        "what": "sequential logins: password (POST /auth/) vs native provider sign-in "
                f"(POST {path}) of a new identity (first) and of a linked one (returning)",
        "rounds_per_pass": args.users, "passes": args.passes, "rounds": len(m), "warmup_rounds": args.warmup,
        "setup_workers": args.workers, "setup_s": round(setup_s, 1), "measure_s": round(measure_s, 1),
        "mint_s_outside_timing": round(mint_s, 1),
        "clk_tck": CLK_TCK,
        "load_before_setup": load_before, "load_before_measure": load_measure_before, "load_after": load_after,
        "load1_during": rounded(describe([x["load1"] for x in m])),
        "reconnects": sum(c.reconnects for c in clients.values()),
        "op_requests_during_setup_and_warmup": [f"{q.get('method')} {q.get('path')}" for q in op_requests_before],
        "op_requests_during_measurement": [f"{q.get('method')} {q.get('path')}" for q in op_requests],
        **{f"{kind}_ms": rounded(describe([x[kind]["ms"] for x in m])) for kind in KINDS},
        "median_ratio_to_password": {
            kind: r(statistics.median(x[kind]["ms"] for x in m) / statistics.median(x["password"]["ms"] for x in m), 4)
            for kind in ("first", "returning")
        },
        "median_of_paired_differences_ms": {
            "first_minus_returning": r(statistics.median(x["first"]["ms"] - x["returning"]["ms"] for x in m), 3),
        },
        "by_order_median_ms": by_order,
        "by_position_median_ms": by_position,
        "cpu_ms_per_login": {
            **{f"{kind}_ticks": rounded(describe([x[kind]["cpu_ms"] for x in m])) for kind in KINDS},
            **{f"{kind}_sched": rounded(describe([x[kind]["cpu_sched_ms"] for x in m])) for kind in KINDS},
        },
    }
    with open(os.path.join(args.outdir, "rounds.json"), "w") as f:
        json.dump(rounds, f, indent=1)
        f.write("\n")
    with open(os.path.join(args.outdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(json.dumps(summary, indent=2))
    print(f"[social-login] medians: password {summary['password_ms']['median']:.1f} ms, "
          f"first {summary['first_ms']['median']:.2f} ms (p90 {summary['first_ms']['p90']:.2f}), "
          f"returning {summary['returning_ms']['median']:.2f} ms (p90 {summary['returning_ms']['p90']:.2f}); "
          f"OP requests while measuring: {len(op_requests)}; "
          f"load {' '.join(load_measure_before)} -> {' '.join(load_after)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
