#!/usr/bin/env bash
# The benchmark, in one command: builds latchkey (release), starts it on
# PostgreSQL, and runs the Django peer's wrk scenarios against it (login, me,
# me_cookie, refresh, list, register) plus: the bare route as the ceiling,
# GET /list/?page_size=1000 of 1,000 users, a mixed run (a login storm with
# GET /list/<id>/ alongside), peak RSS, time to the first 200, and the bcrypt
# cost of this machine. With WITH_DJANGO=1 it also sets up and measures the
# Django peer in the same invocation, so every figure can be a ratio.
#
#   bench/run.sh [OUTDIR]        (default target/bench/<date>)
#
# Needs wrk, jq, curl, python3 and a PostgreSQL on 127.0.0.1:5432 (the
# machine's; a database latchkey_bench is created and dropped). Environment:
# DURATION (10s), RUNS (2), CONNECTIONS (32), PEER_DIR (../shared/peer),
# DJANGO_FROM (an earlier OUTDIR whose django/ results the report compares with).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PEER_DIR=${PEER_DIR:-$ROOT/../shared/peer}
PEER_DIR=$(cd "$PEER_DIR" && pwd)
OUT=${1:-target/bench/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
export DURATION=${DURATION:-10s} RUNS=${RUNS:-2} CONNECTIONS=${CONNECTIONS:-32} THREADS=${THREADS:-2}
export BENCH_DIR=$PEER_DIR/bench
# A password the validators accept (the peer's default is refused as too similar).
export BENCH_PASSWORD=${BENCH_PASSWORD:-bench-passphrase-42}
PORT=${PORT:-18500}
BASE=http://127.0.0.1:$PORT

for tool in wrk jq curl; do
  command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk jq curl >/dev/null; break; }
done

echo "[latchkey-bench] building (release)"
cargo build --release --quiet -p latchkey-server --bin latchkey
cargo build --release --quiet -p latchkey-auth --example bcrypt_time
BIN=$ROOT/target/release/latchkey

echo "[latchkey-bench] time to the first 200 (SQLite)"
python3 bench/first_200.py "$BIN" --runs 5 | tee "$OUT/first_200.json"

echo "[latchkey-bench] bcrypt cost 12 on this machine"
"$ROOT/target/release/examples/bcrypt_time" 12 10 | tee "$OUT/bcrypt.json"

db=latchkey_bench
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" && psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
work=$(mktemp -d)
# Throttling off (the load comes from one address) and rotation off, as the
# Django peer runs (ROTATE_REFRESH_TOKENS False): the refresh scenario
# presents the same token again and again.
(cd "$work" && BIND=127.0.0.1:$PORT DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db \
  SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 BCRYPT_COST=12 \
  THROTTLE_AUTH_PER_IP=0 THROTTLE_LOGIN_FAILURES=0 ROTATE_REFRESH_TOKENS=false \
  DATABASE_POOL_SIZE=${POOL_SIZE:-8} RUST_LOG=warn exec "$BIN" serve >"$OUT/latchkey.log" 2>&1) &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

NOTE="latchkey release, PostgreSQL 15, bcrypt 12, rotation off" \
  bash "$BENCH_DIR/bench.sh" "$BASE" "$OUT/latchkey" "$pid"

wrk_json() { # wrk_json NAME SCRIPT SEED [CONNECTIONS] -> $OUT/NAME.json (with peak RSS)
  local name=$1 script=$2 seed=$3 conns=${4:-$CONNECTIONS}
  python3 "$BENCH_DIR/rss_sampler.py" --out "$OUT/$name.mem.json" "server=$pid" & local sampler=$!
  sleep 0.3
  SEED_LUA=$seed WRK_JSON=$OUT/$name.json SCENARIO=$name \
    wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout 30s --latency -s "$script" "$BASE" >"$OUT/$name.txt"
  kill -TERM "$sampler"; wait "$sampler" || true
}

echo "[latchkey-bench] bare route (GET /healthz)"
wrk_json bare bench/scenarios/bare.lua ""
echo "[latchkey-bench] GET /list/?page_size=1000 (1,000 users)"
wrk_json list_page bench/scenarios/list_page.lua "$OUT/latchkey/seed-list.lua"

echo "[latchkey-bench] mixed: login storm + GET /list/<id>/"
python3 "$BENCH_DIR/rss_sampler.py" --out "$OUT/mixed.mem.json" "server=$pid" & sampler=$!
SEED_LUA=$OUT/latchkey/seed-login.lua WRK_JSON=$OUT/mixed-login.json SCENARIO=login \
  wrk -t1 -c32 -d"$DURATION" --timeout 30s --latency -s "$BENCH_DIR/scenarios/login.lua" "$BASE" >"$OUT/mixed-login.txt" &
storm=$!
sleep 1
SEED_LUA=$OUT/latchkey/seed-me.lua WRK_JSON=$OUT/mixed-me.json SCENARIO=me \
  wrk -t1 -c8 -d"$(( ${DURATION%s} - 2 ))s" --timeout 30s --latency -s "$BENCH_DIR/scenarios/me.lua" "$BASE" >"$OUT/mixed-me.txt"
wait "$storm"
kill -TERM "$sampler"; wait "$sampler" || true

jq -n --slurpfile bare "$OUT/bare.json" --slurpfile bare_mem "$OUT/bare.mem.json" \
  --slurpfile page "$OUT/list_page.json" --slurpfile page_mem "$OUT/list_page.mem.json" \
  --slurpfile login "$OUT/mixed-login.json" --slurpfile me "$OUT/mixed-me.json" --slurpfile mixed_mem "$OUT/mixed.mem.json" \
  --slurpfile start "$OUT/first_200.json" --slurpfile bcrypt "$OUT/bcrypt.json" \
  '{bare: ($bare[0] + {peak_rss_kb: $bare_mem[0].server.peak_rss_kb}),
    list_page: ($page[0] + {peak_rss_kb: $page_mem[0].server.peak_rss_kb}),
    mixed: {login: $login[0], me: $me[0], peak_rss_kb: $mixed_mem[0].server.peak_rss_kb},
    first_200: $start[0], bcrypt: $bcrypt[0]}' >"$OUT/latchkey-extra.json"

kill "$pid"; wait "$pid" 2>/dev/null || true
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db"

if [ "${WITH_DJANGO:-0}" = 1 ]; then
  echo "[latchkey-bench] the Django peer, same machine, same scenarios"
  (cd "$PEER_DIR/django_seed" && ./setup.sh >"$OUT/django-setup.log" 2>&1)
  (cd "$PEER_DIR/django_seed" && ./reset_db.sh >/dev/null 2>&1 || true)
  (cd "$PEER_DIR/django_seed" && PASSWORD_HASHER=bcrypt DB_CONN_MAX_AGE=60 ./run.sh 8001)
  sleep 3
  django_pid=$(cat "${PEER_STATE:-/tmp/latchkey-peer}/logs/gunicorn-8001.pid")
  BENCH_PASSWORD=benchpass1 NOTE="Django peer, bcrypt, persistent connections" \
    bash "$BENCH_DIR/bench.sh" http://127.0.0.1:8001 "$OUT/django" "$django_pid"
  (cd "$PEER_DIR/django_seed" && ./stop.sh 8001)
fi

python3 bench/report.py "$OUT" ${DJANGO_FROM:-}
