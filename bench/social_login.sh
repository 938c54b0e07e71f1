#!/usr/bin/env bash
# Native sign-in with a provider against a password login (docs/benchmarks.md,
# "Sign in with a provider"): builds latchkey (release), starts the local
# OpenID Provider (tests/oidc/provider.mjs) and latchkey with it as provider
# `op` (BCRYPT_COST=12, throttling off, pool of 8, as bench/run.sh), then
# bench/social_login.py: interleaved rounds of sequential logins (a password
# login, a provider user's first login, a linked user's returning login), with
# the server's CPU per login from /proc/PID/stat.
#
#   bench/social_login.sh [OUTDIR]      (default target/bench/social-<date>)
#
# Needs python3, curl, node (20.12+) and, for BACKEND=postgres (the default),
# a PostgreSQL on 127.0.0.1:5432, user postgres (a database
# latchkey_bench_social is created and dropped); BACKEND=sqlite uses a file in
# a temporary directory. Environment: USERS (120 rounds per pass), PASSES (2),
# WORKERS (3, set-up only), WARMUP (6), PORT (18530), POOL_SIZE (8), OP_ALG
# (RS256: the OP's signing key; ES256 works too). Writes
# OUTDIR/{rounds,summary}.json, uptime-{before,after}.txt, latchkey.log,
# provider.log, op-config.json and commit.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${1:-target/bench/social-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PORT=${PORT:-18530}
BASE=http://127.0.0.1:$PORT
BACKEND=${BACKEND:-postgres}
PG=postgres://postgres@127.0.0.1:5432
db=latchkey_bench_social
CLIENT_ID=latchkey-bench
CLIENT_SECRET=bench-client-secret

echo "[social-login] building (release)"
cargo build --release --quiet -p latchkey-server --bin latchkey
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/latchkey
{ git rev-parse HEAD; git status --short --untracked-files=no; } >"$OUT/commit.txt"
[ -d tests/oidc/node_modules/oidc-provider ] || (cd tests/oidc && npm ci --no-audit --no-fund)

uptime | tee "$OUT/uptime-before.txt"
work=$(mktemp -d)
op_pid=
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [ -n "$op_pid" ] && { kill "$op_pid" 2>/dev/null || true; wait "$op_pid" 2>/dev/null || true; }
  [ "$BACKEND" = postgres ] && { psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# The OP: one confidential client (its redirect URI is latchkey's callback,
# unused here), one generated signing key, no accounts (the ID tokens are
# signed through the control port).
cat >"$OUT/op-config.json" <<EOF
{
  "clients": [{"client_id": "$CLIENT_ID", "client_secret": "$CLIENT_SECRET",
               "redirect_uris": ["$BASE/auth/social/op/callback/"],
               "token_endpoint_auth_method": "client_secret_basic"}],
  "accounts": [],
  "keys": [{"kid": "bench-1", "alg": "${OP_ALG:-RS256}"}]
}
EOF
node tests/oidc/provider.mjs "$OUT/op-config.json" >"$work/op.out" 2>"$OUT/provider.log" &
op_pid=$!
for _ in $(seq 1 100); do [ -s "$work/op.out" ] && break; sleep 0.1; done
read -r ISSUER CONTROL < <(python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); print(d["issuer"], "http://127.0.0.1:%d" % d["control_port"])' "$work/op.out")
echo "[social-login] OP at $ISSUER (control $CONTROL)"

case $BACKEND in
  postgres)
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" -qc "CREATE DATABASE $db"
    DATABASE_URL=$PG/$db ;;
  sqlite) DATABASE_URL=sqlite://$work/latchkey.sqlite3 ;;
  *) echo "BACKEND is postgres or sqlite" >&2; exit 2 ;;
esac
# As bench/run.sh: throttling off (every request comes from one address),
# rotation off.
(cd "$work" && BIND=127.0.0.1:$PORT DATABASE_URL=$DATABASE_URL LATCHKEY_DATA_DIR=$work \
  SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 BCRYPT_COST=12 \
  THROTTLE_AUTH_PER_IP=0 THROTTLE_LOGIN_FAILURES=0 ROTATE_REFRESH_TOKENS=false \
  DATABASE_POOL_SIZE=${POOL_SIZE:-8} RUST_LOG=${RUST_LOG:-warn} \
  SOCIAL_PROVIDERS=op SOCIAL_OP_CLIENT_ID=$CLIENT_ID SOCIAL_OP_CLIENT_SECRET=$CLIENT_SECRET \
  SOCIAL_OP_ISSUER=$ISSUER exec "$BIN" serve >"$OUT/latchkey.log" 2>&1) &
pid=$!
for _ in $(seq 1 100); do curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$BASE/healthz" >/dev/null

python3 bench/social_login.py "$BASE" "$pid" "$CONTROL" "$ISSUER" "$CLIENT_ID" "$OUT" \
  --users "${USERS:-120}" --passes "${PASSES:-2}" --workers "${WORKERS:-3}" --warmup "${WARMUP:-6}"
uptime | tee "$OUT/uptime-after.txt"
echo "[social-login] raw files in $OUT"
