#!/usr/bin/env bash
set -euo pipefail
cd /tmp/mfa-strace
rm -f trace.txt
DB=latchkey_bench_mfa_trace
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB"
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB"
BIND=127.0.0.1:18521 DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 BCRYPT_COST=12 THROTTLE_AUTH_PER_IP=0 THROTTLE_LOGIN_FAILURES=0 ROTATE_REFRESH_TOKENS=false DATABASE_POOL_SIZE=8 RUST_LOG=warn /work/main/target/release/latchkey serve > latchkey.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:18521/healthz >/dev/null 2>&1 && break; sleep 0.1; done
echo "threads: $(ls /proc/$pid/task | wc -l)"
strace -f -tt -T -s 300 -e trace=sendto,recvfrom,write,read,writev,sendmsg,recvmsg,poll,ppoll -o trace.txt -p "$(ls /proc/$pid/task | paste -sd,)" 2>strace.err &
spid=$!
sleep 1
python3 /work/main/bench/mfa_login.py http://127.0.0.1:18521 $pid /tmp/mfa-strace/out --users ${USERS:-6} --passes 1 --warmup 1 > run.log 2>&1 || true
kill $spid; wait $spid || true
kill $pid; wait $pid || true
sleep 1
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB"
tail -1 run.log; wc -l trace.txt
