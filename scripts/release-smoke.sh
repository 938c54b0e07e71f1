#!/usr/bin/env bash
# Smoke test of the release binary as a new user runs it: `cargo run --release`
# from the repository root, SQLite under ./data, then register, log in, and
# read the current user with the issued token, so signing and verification
# run through the release build's crypto backend.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${SMOKE_PORT:-18931}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release --quiet
binary=$PWD/target/release/latchkey
(cd "$work" && BIND=127.0.0.1:$port exec "$binary" serve >"$work/server.log" 2>&1) &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
base=http://127.0.0.1:$port
curl -fsS "$base/" | grep -q '"list"'
register=$(curl -fsS -X POST "$base/register/" -H 'content-type: application/json' \
  -d '{"email":"smoke@example.com","password":"correct-horse-battery-9"}')
access=$(printf '%s' "$register" | sed -E 's/.*"access":"([^"]+)".*/\1/')
curl -fsS "$base/auth/" -H "Authorization: Bearer $access" | grep -q '"email":"smoke@example.com"'
login=$(curl -fsS -X POST "$base/auth/" -H 'content-type: application/json' \
  -d '{"email":"smoke@example.com","password":"correct-horse-battery-9"}')
printf '%s' "$login" | grep -q '"message":"login success"'
test -f "$work/data/latchkey.sqlite3"
test "$(stat -c %a "$work/data/secret_key")" = 600
echo "release smoke test passed: register, login and GET /auth/ through target/release/latchkey"
