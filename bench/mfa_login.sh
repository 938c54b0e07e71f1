#!/usr/bin/env bash
# A TOTP login against a password login (issue 22, docs/benchmarks.md "Second
# factor"): builds latchkey (release), starts it on PostgreSQL as bench/run.sh
# does (BCRYPT_COST=12, throttling off, pool of 8), then bench/mfa_login.py:
# N password users and N TOTP users set up through the API, then interleaved
# rounds of sequential logins (one of each kind per round, the order
# alternating), with the server's CPU per login from /proc/PID/stat.
#
#   bench/mfa_login.sh [OUTDIR]      (default target/bench/mfa-<date>)
#
# Needs python3, curl and a PostgreSQL on 127.0.0.1:5432, user postgres (a
# database latchkey_bench_mfa is created and dropped). Environment: USERS
# (120), PASSES (2), WORKERS (3, set-up only), WARMUP (4), PORT (18520),
# POOL_SIZE (8). Writes OUTDIR/{rounds,summary}.json, uptime-{before,after}.txt,
# latchkey.log and commit.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${1:-target/bench/mfa-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PORT=${PORT:-18520}
BASE=http://127.0.0.1:$PORT
PG=postgres://postgres@127.0.0.1:5432
db=latchkey_bench_mfa

echo "[mfa-login] building (release)"
cargo build --release --quiet -p latchkey-server --bin latchkey
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/latchkey
{ git rev-parse HEAD; git status --short --untracked-files=no; } >"$OUT/commit.txt"

uptime | tee "$OUT/uptime-before.txt"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" -qc "CREATE DATABASE $db"
work=$(mktemp -d)
# As bench/run.sh: throttling off (every request comes from one address and
# the per-account counter would only add noise), rotation off.
(cd "$work" && BIND=127.0.0.1:$PORT DATABASE_URL=$PG/$db \
  SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 BCRYPT_COST=12 \
  THROTTLE_AUTH_PER_IP=0 THROTTLE_LOGIN_FAILURES=0 ROTATE_REFRESH_TOKENS=false \
  DATABASE_POOL_SIZE=${POOL_SIZE:-8} RUST_LOG=${RUST_LOG:-warn} exec "$BIN" serve >"$OUT/latchkey.log" 2>&1) &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$BASE/healthz" >/dev/null

python3 bench/mfa_login.py "$BASE" "$pid" "$OUT" --users "${USERS:-120}" --passes "${PASSES:-2}" \
  --workers "${WORKERS:-3}" --warmup "${WARMUP:-4}"
uptime | tee "$OUT/uptime-after.txt"
echo "[mfa-login] raw files in $OUT"
