#!/usr/bin/env bash
# ResolveSubject over gRPC against the same SQL run directly by pgbench, in one run, on one
# throwaway suite (`zvv up` with a fresh data folder and its own PostgreSQL cluster).
#
#   bench/resolve-subject.sh [--concurrency 32] [--connections 4] [--duration 20] [--subjects 2000]
#
# Prints both results and their ratio; the last line is one JSON object.
set -euo pipefail

concurrency=32 connections=4 duration=20 subjects=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --concurrency) concurrency=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --subjects) subjects=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v pgbench >/dev/null || { echo "pgbench not found: install the PostgreSQL client (apt-get install postgresql-client)" >&2; exit 1; }

cargo build --release -q -p zvv
zvv=$root/target/release/zvv

work=$(mktemp -d /tmp/zvv-bench.XXXXXX)
chmod 755 "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$work/up.log
# as many database connections as pgbench gets below, so both sides have the same resources
env -u DATABASE_URL ZVV_DB_MAX_CONNECTIONS="$concurrency" "$zvv" up --data-dir "$work/data" --intake-listen "127.0.0.1:$port" --signalling-listen 127.0.0.1:0 >"$log" 2>&1 &
up_pid=$!
cleanup() {
  kill -TERM "$up_pid" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 120); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$up_pid" 2>/dev/null; then cat "$log" >&2; exit 1; fi
  sleep 0.5
done

token=$("$zvv" token --data-dir "$work/data" --org zvv-bench --org-type SUITE --role SERVICE --sub zvv-bench-dev | tail -n1)
echo "== gRPC: zvv bench resolve (concurrency $concurrency, $connections connections, ${duration}s)"
grpc_json=$("$zvv" bench resolve --intake-addr "http://127.0.0.1:$port" --token "$token" \
  --concurrency "$concurrency" --connections "$connections" --subjects "$subjects" --duration "$duration" --json | tee /dev/stderr | tail -n1)

pg_port=$(cat "$work/data/pg/zvv-port")
export PGHOST=127.0.0.1 PGPORT=$pg_port PGUSER=postgres PGDATABASE=zvv
run_psql() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- psql -h 127.0.0.1 -p "$pg_port" -d zvv "$@"; else psql "$@"; fi; }
run_pgbench() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- pgbench -h 127.0.0.1 -p "$pg_port" "$@" zvv; else pgbench "$@"; fi; }

run_psql -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE SCHEMA zvv_bench;
CREATE TABLE zvv_bench.lookups AS SELECT row_number() OVER (ORDER BY subject_id) AS n, bsn_lookup FROM intake.subjects;
ALTER TABLE zvv_bench.lookups ADD PRIMARY KEY (n);
CREATE TABLE zvv_bench.audit_log (LIKE intake.audit_log INCLUDING ALL);
INSERT INTO zvv_bench.audit_log SELECT 0, now(), 'genesis', '{}', 'OK', '', '', '', '', '', '', '', '\x00', '\x00';
CREATE TABLE zvv_bench.audit_unchained (LIKE intake.audit_log INCLUDING ALL);
CREATE SEQUENCE zvv_bench.audit_seq;
SQL
n=$(run_psql -tAc 'SELECT count(*) FROM zvv_bench.lookups')
cp bench/resolve-subject.sql bench/resolve-subject-unchained.sql "$work/"
chmod 644 "$work"/*.sql
mkdir -p "$work/pglog" && chmod 777 "$work/pglog"
echo "== pgbench: the same SQL (concurrency $concurrency, ${duration}s, $n subjects)"
(cd "$work/pglog" && run_pgbench -n -M prepared -c "$concurrency" -j 2 -T "$duration" -D subjects="$n" \
  -f "$work/resolve-subject.sql" --log --log-prefix="$work/pglog/tx") | tee "$work/pgbench.out" | grep -E "tps|latency|transactions" || true
pg_tps=$(grep -E '^tps' "$work/pgbench.out" | head -n1 | sed -E 's/^tps = ([0-9.]+).*/\1/')
# per-transaction log: column 3 is the latency in microseconds
read -r pg_p50 pg_p99 < <(cat "$work"/pglog/tx* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {i50=int((NR-1)*0.50+0.5)+1; i99=int((NR-1)*0.99+0.5)+1; printf "%.2f %.2f\n", a[i50]/1000, a[i99]/1000}')

echo "== pgbench: the same SQL without the audit hash chain (for comparison)"
run_pgbench -n -M prepared -c "$concurrency" -j 2 -T "$duration" -D subjects="$n" \
  -f "$work/resolve-subject-unchained.sql" | tee "$work/pgbench-unchained.out" | grep -E "^tps|latency" || true
unchained_tps=$(grep -E '^tps' "$work/pgbench-unchained.out" | head -n1 | sed -E 's/^tps = ([0-9.]+).*/\1/')

python3 - "$grpc_json" "$pg_tps" "$pg_p50" "$pg_p99" "${unchained_tps:-0}" <<'PY'
import json, sys
g = json.loads(sys.argv[1]); pg_tps, p50, p99, unchained = map(float, sys.argv[2:6])
ratio = g["calls_per_second"] / pg_tps if pg_tps else 0.0
print(f"gRPC ResolveSubject: {g['calls_per_second']:.0f}/s p50 {g['p50_ms']:.2f} ms p99 {g['p99_ms']:.2f} ms")
print(f"pgbench same SQL:    {pg_tps:.0f}/s p50 {p50:.2f} ms p99 {p99:.2f} ms")
print(f"ratio gRPC/pgbench throughput: {ratio:.2f}")
print(f"pgbench without the audit chain: {unchained:.0f}/s (what the chain's serialisation costs)")
print(json.dumps({"grpc": g, "pgbench": {"tps": pg_tps, "p50_ms": p50, "p99_ms": p99}, "ratio": round(ratio, 3),
                  "pgbench_unchained_tps": unchained}))
PY
