#!/usr/bin/env bash
# D4/D9 probes (docs/benchmarks.md, "Stored-hash bounds and the wrong-password
# floor"): the release server on a fresh SQLite database at BCRYPT_COST
# (default 12), the throttles off so every attempt is hashed; then
# bench/hash_bounds.py: the wrong-password login median per stored format and
# for an unknown email, and the server's VmHWM around argon2 logins past and
# at the memory bound.
#
#   bench/hash_bounds.sh [OUTDIR]    (default target/bench/hash-bounds-<date>)
#   ROUNDS=8 BCRYPT_COST=12 PORT=18390
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-8}
PORT=${PORT:-18390}
OUT=${1:-target/bench/hash-bounds-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)

cargo build --release --quiet -p latchkey-server --bin latchkey
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/latchkey

rm -f "$OUT"/latchkey.sqlite3*
(cd "$OUT" && LATCHKEY_DATA_DIR="$OUT" DATABASE_URL="sqlite://$OUT/latchkey.sqlite3" \
  BIND="127.0.0.1:$PORT" SECRET_KEY="$(head -c 48 /dev/urandom | base64)" \
  BCRYPT_COST="${BCRYPT_COST:-12}" THROTTLE_AUTH_PER_IP=0 THROTTLE_LOGIN_FAILURES=0 \
  RUST_LOG=warn exec "$BIN" serve >"$OUT/latchkey.log" 2>&1) &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.1
done
python3 bench/hash_bounds.py "http://127.0.0.1:$PORT" "$SERVER" "$OUT/latchkey.sqlite3" "$ROUNDS" \
  | tee "$OUT/summary.md"
echo "server log (one line per unusable hash expected): $OUT/latchkey.log"
