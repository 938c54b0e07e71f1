#!/usr/bin/env bash
# Measures `latchkey import-django` of USERS generated users (default
# 100,000) and TOKENS outstanding tokens (default 10,000) into latchkey on
# SQLite and on PostgreSQL: wall time and peak RSS (/usr/bin/time -v), with
# the release binary. The Django database is made by the test project's
# migrations (tests/django: the seed's user app) and filled by bench/import_fill.py.
#
#   bench/import_django.sh [OUTDIR]     (default target/bench/import-<date>)
#
# Needs a PostgreSQL on 127.0.0.1:5432 (a database latchkey_import_bench is
# created and dropped); the Django venv is made by tests/django/setup.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
USERS=${USERS:-100000}
TOKENS=${TOKENS:-10000}
bash tests/django/setup.sh
PYTHON=${LATCHKEY_DJANGO_VENV:-/tmp/latchkey-django-venv}/bin/python
PG=${PG:-postgres://postgres@127.0.0.1:5432}
OUT=${1:-target/bench/import-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)

cargo build --release --quiet -p latchkey-server --bin latchkey
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/latchkey

DJANGO=$OUT/django.sqlite3
rm -f "$DJANGO"*
"$PYTHON" tests/django/make_django_db.py --sqlite "$DJANGO" --migrate-only >/dev/null
python3 bench/import_fill.py "$DJANGO" "$USERS" "$TOKENS"

measure() { # NAME DATABASE_URL
  local name=$1 url=$2
  (cd "$OUT" && DATABASE_URL=$url RUST_LOG=warn /usr/bin/time -v "$BIN" import-django \
     --from "sqlite://$DJANGO" >"$name.stdout" 2>"$name.stderr")
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$OUT/$name.stderr" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$OUT/$name.stderr" | awk '{print $NF}')
  echo "$name: $(tail -n 1 "$OUT/$name.stdout") | wall $wall | peak RSS $((rss / 1024)) MiB" | tee -a "$OUT/summary.txt"
}

rm -f "$OUT"/latchkey.sqlite3*
measure sqlite "sqlite://$OUT/latchkey.sqlite3"
measure sqlite-rerun "sqlite://$OUT/latchkey.sqlite3"

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS latchkey_import_bench" -qc "CREATE DATABASE latchkey_import_bench"
measure postgres "$PG/latchkey_import_bench"
measure postgres-rerun "$PG/latchkey_import_bench"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS latchkey_import_bench"
echo "results in $OUT/summary.txt"
