#!/usr/bin/env bash
# Fuzzes every operation of /openapi.json with schemathesis against a real
# server on the given database: no 5xx, no response that breaks the spec.
#   scripts/schemathesis.sh DATABASE_URL
# The positive_data_acceptance check is left out on purpose: the server
# refuses schema-valid bodies for reasons a JSON schema cannot express
# (a common password, a taken email), and says so with a 400.
set -euo pipefail
cd "$(dirname "$0")/.."
database_url=$1
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.*"
fi
port=${ST_PORT:-18932}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$work" && BIND=127.0.0.1:$port DATABASE_URL=$database_url BCRYPT_COST=4 \
  THROTTLE_AUTH_PER_IP=0 THROTTLE_LOGIN_FAILURES=0 RUST_LOG=warn \
  exec "$OLDPWD/target/debug/latchkey" serve >"$work/server.log" 2>&1) &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
token=$(curl -fsS -X POST "http://127.0.0.1:$port/register/" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","password":"correct-horse-battery-9"}' | sed -E 's/.*"access":"([^"]+)".*/\1/')
"$venv/bin/st" run "http://127.0.0.1:$port/openapi.json" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "${ST_MAX_EXAMPLES:-30}" --seed 1 \
  -H "Authorization: Bearer $token"
if grep -q '" 5[0-9][0-9] ' "$work/server.log"; then
  echo "FAIL: the server answered 5xx during the run" >&2
  exit 1
fi
