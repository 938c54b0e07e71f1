#!/usr/bin/env bash
# Side-by-side driver: v1 (a865f17), v2 with AUTH_CACHE=false, v2 with the
# default AUTH_CACHE=true, all three running at once on PostgreSQL (one
# database each), scenarios interleaved round by round so every ratio comes
# from back-to-back runs.  Same settings as bench/run.sh.
#   drive.sh OUT PHASE...   (phases: start seed me pw mixed page stop)
set -euo pipefail
OUT=${OUT:?}
mkdir -p "$OUT"
export BENCH_DIR=/work/shared/peer/bench
export BENCH_PASSWORD=bench-passphrase-42
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
declare -A BIN=([v1]=/tmp/bench-sbs/bin/lkb-v1 [v2nc]=/tmp/bench-sbs/bin/lkb-v2 [v2c]=/tmp/bench-sbs/bin/lkb-v2)  # copies of the two release builds
declare -A PORT=([v1]=18601 [v2nc]=18602 [v2c]=18603)
declare -A CACHE=([v1]=true [v2nc]=false [v2c]=true)
PG=postgres://postgres@127.0.0.1:5432

pid_of() { cat "$OUT/$1.pid"; }
base() { echo "http://127.0.0.1:${PORT[$1]}"; }

start() {
  for s in v1 v2nc v2c; do
    [ "${KEEP_DB:-0}" = 1 ] || { psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS lkb_$s" && psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE lkb_$s"; }
    local work; work=$(mktemp -d /tmp/bench-sbs/work-$s.XXXX)
    (cd "$work" && exec env -i PATH="$PATH" BIND=127.0.0.1:${PORT[$s]} DATABASE_URL=$PG/lkb_$s \
      SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 BCRYPT_COST=12 \
      THROTTLE_AUTH_PER_IP=0 THROTTLE_LOGIN_FAILURES=0 ROTATE_REFRESH_TOKENS=false \
      DATABASE_POOL_SIZE=8 AUTH_CACHE=${CACHE[$s]} RUST_LOG=warn \
      "${BIN[$s]}" serve) </dev/null >"$OUT/$s.log" 2>&1 &
    echo $! >"$OUT/$s.pid"
  done
  for s in v1 v2nc v2c; do
    for _ in $(seq 1 150); do curl -fsS "$(base $s)/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fsS "$(base $s)/healthz" >/dev/null && echo "[drive] $s up, pid $(pid_of $s)"
  done
}

stop() {
  local s
  for s in v1 v2nc v2c; do
    [ -f "$OUT/$s.pid" ] || continue
    grep -E 'VmHWM|VmRSS' /proc/"$(pid_of $s)"/status >"$OUT/$s.final-status.txt" 2>/dev/null || true
    kill "$(pid_of $s)" 2>/dev/null || true
  done
  sleep 1
  for s in v1 v2nc v2c; do psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS lkb_$s" || true; done
}

seed() { # seed SERVER NAME
  local s=$1 name=$2
  python3 "$BENCH_DIR/seed.py" "$(base $s)" --prefix "${s}${name}" --count 32 --concurrency 8 \
    --password "$BENCH_PASSWORD" --out "$OUT/seed-$s-$name.lua" >"$OUT/seed-$s-$name.report.json"
}

topup() { # topup SERVER : 1,000 rows in users (copies of a seeded hash; no bcrypt)
  psql "$PG/lkb_$1" -qc "INSERT INTO users (email, password_hash, created_at, updated_at, tokens_valid_after)
    SELECT 'fill' || g || '@b.io', (SELECT password_hash FROM users LIMIT 1), now(), now(), now()
    FROM generate_series(1, 1000 - (SELECT count(*) FROM users)) g"
  psql "$PG/lkb_$1" -Atc "SELECT count(*) FROM users"
}

run() { # run SERVER SCENARIO SCRIPT SEED TAG [CONNS] [THREADS]
  local s=$1 scen=$2 script=$3 seedf=$4 tag=$5 conns=${6:-32} threads=${7:-2}
  local f="$OUT/$scen-$s-$tag"
  python3 "$BENCH_DIR/rss_sampler.py" --out "$f.mem.json" "server=$(pid_of $s)" & local sampler=$!
  sleep 0.3
  SEED_LUA=$seedf WRK_JSON=$f.json SCENARIO=$scen REG_TAG="$s$tag" \
    wrk -t"$threads" -c"$conns" -d"$DURATION" --timeout 30s --latency -s "$script" "$(base $s)" >"$f.txt" 2>&1
  kill -TERM "$sampler"; wait "$sampler" || true
  jq -r --slurpfile m "$f.mem.json" '"[drive] \(.scenario) '"$s $tag"': \(.rps|floor) req/s p50 \(.latency_us.p50/1000) p99 \(.latency_us.p99/1000) ms non2xx \(.non2xx) rss \($m[0].server.peak_rss_kb) kB"' "$f.json"
}

idle() { # let the machine settle between runs (the bcrypt queue drains)
  local s t
  for s in v1 v2nc v2c; do
    for _ in $(seq 1 60); do
      t=$(curl -s -o /dev/null -m 30 -w '%{time_total}' "$(base $s)/healthz" || echo 9)
      awk -v t="$t" 'BEGIN { exit !(t < 0.05) }' && break; sleep 0.5
    done
  done
  sleep 2
}

for phase in "$@"; do
  case $phase in
    start) start ;;
    stop) stop ;;
    reseed) # fresh tokens for the existing pools (seed.py logs existing users in)
      for s in v1 v2nc v2c; do seed $s me; done
      for s in v1 v2c; do seed $s login; seed $s refresh; done ;;
    seed)
      for s in v1 v2nc v2c; do seed $s me; seed $s list; topup $s; done
      for s in v1 v2c; do seed $s login; seed $s refresh; done ;;
    me)
      for r in $(seq 1 "$ROUNDS"); do
        for s in v1 v2nc v2c; do
          run $s me $BENCH_DIR/scenarios/me.lua "$OUT/seed-$s-me.lua" "r$r${TAGSUFFIX:-}"; idle
          run $s bare /tmp/bench-v2/bench/scenarios/bare.lua "" "r$r${TAGSUFFIX:-}"; idle
        done
      done ;;
    pw)
      for scen in login refresh register; do
        for r in $(seq 1 "$ROUNDS"); do
          for s in v1 v2c; do
            seedf="$OUT/seed-$s-$scen.lua"; [ $scen = register ] && seedf=""
            run $s $scen $BENCH_DIR/scenarios/$scen.lua "$seedf" "r$r${TAGSUFFIX:-}"; idle ; sleep 3
          done
        done
      done ;;
    mixed)
      for r in $(seq 1 "$ROUNDS"); do
        for s in v1 v2c; do
          f="$OUT/mixed-$s-r$r${TAGSUFFIX:-}"
          python3 "$BENCH_DIR/rss_sampler.py" --out "$f.mem.json" "server=$(pid_of $s)" & sampler=$!
          SEED_LUA=$OUT/seed-$s-login.lua WRK_JSON=$f-login.json SCENARIO=login \
            wrk -t1 -c32 -d"$DURATION" --timeout 30s --latency -s "$BENCH_DIR/scenarios/login.lua" "$(base $s)" >"$f-login.txt" &
          storm=$!
          sleep 1
          SEED_LUA=$OUT/seed-$s-me.lua WRK_JSON=$f-me.json SCENARIO=me \
            wrk -t1 -c8 -d"$(( ${DURATION%s} - 2 ))s" --timeout 30s --latency -s "$BENCH_DIR/scenarios/me.lua" "$(base $s)" >"$f-me.txt"
          wait "$storm"
          kill -TERM "$sampler"; wait "$sampler" || true
          jq -r --slurpfile l "$f-login.json" --slurpfile m "$f.mem.json" '"[drive] mixed '"$s r$r"': me \(.rps|floor) req/s p50 \(.latency_us.p50/1000) p99 \(.latency_us.p99/1000) ms; logins \($l[0].rps) /s; rss \($m[0].server.peak_rss_kb) kB"' "$f-me.json"
          idle
        done
      done ;;
    page)
      for r in $(seq 1 "$ROUNDS"); do
        for s in v1 v2nc v2c; do
          run $s list_page /tmp/bench-v2/bench/scenarios/list_page.lua "$OUT/seed-$s-list.lua" "r$r"; idle
        done
      done ;;
    hwm)
      for s in v1 v2nc v2c; do echo "$s $(grep VmHWM /proc/$(pid_of $s)/status)"; done | tee -a "$OUT/vmhwm.txt" ;;
    *) echo "unknown phase $phase" >&2; exit 1 ;;
  esac
done
