#!/usr/bin/env bash
# ResolveSubject over gRPC against the same SQL run directly by pgbench, in one run, on one
# throwaway suite; also the SQL without any audit (the limit), the CPU seconds per call of the
# service process and of PostgreSQL, the seal lag and lock waits during the run, and the audit
# checks after it (one entry per call, `zvv audit verify` passes for every service).
#
#   bench/resolve-subject.sh [--concurrency 32] [--connections 4] [--duration 20] [--subjects 2000]
#
# Prints the results and their ratios; the last line is one JSON object.
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
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

# as many database connections as pgbench gets below, so both sides have the same resources
start_suite "$concurrency"
service_token=$(token --org zvv-bench --org-type SUITE --role SERVICE --for-service intake --sub zvv-bench-dev)
echo "== gRPC: zvv bench resolve (concurrency $concurrency, $connections connections, ${duration}s after a warm-up)"
cpu_service0=$(cpu_seconds "$up_pid"); cpu_pg0=$(pg_cpu_seconds)
sampler_start
grpc_json=$("$zvv" bench resolve --intake-addr "http://127.0.0.1:$port" --token "$service_token" \
  --concurrency "$concurrency" --connections "$connections" --subjects "$subjects" --duration "$duration" --json | tail -n1)
read -r max_lag mean_waiters max_waiters samples < <(sampler_stop)
cpu_service1=$(cpu_seconds "$up_pid"); cpu_pg1=$(pg_cpu_seconds)
total=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['total_calls'])" "$grpc_json")
client_cpu=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['client_cpu_s'] or 0)" "$grpc_json")
sleep 1   # let the sealer finish the tail
read -r entries audit_ok < <(audit_check zvv.intake.v1.SubjectService/ResolveSubject "$total")
per_call() { python3 -c "print(round(($2 - $1) / $3 * 1000, 3))" "$@"; }

run_psql -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE SCHEMA zvv_bench;
CREATE TABLE zvv_bench.lookups AS SELECT row_number() OVER (ORDER BY subject_id) AS n, bsn_lookup FROM intake.subjects;
ALTER TABLE zvv_bench.lookups ADD PRIMARY KEY (n);
CREATE TABLE zvv_bench.audit_entries (LIKE intake.audit_entries INCLUDING ALL);
SQL
n=$(run_psql -tAc 'SELECT count(*) FROM zvv_bench.lookups')
echo "== pgbench: the same SQL (concurrency $concurrency, ${duration}s after a warm-up, $n subjects)"
cpu_pgb0=$(pg_cpu_seconds)
read -r pg_tps pg_p50 pg_p99 < <(pgbench_run audited bench/resolve-subject.sql "$concurrency" "$duration" -D subjects="$n")
cpu_pgb1=$(pg_cpu_seconds)
pg_calls=$(run_psql -tAc 'SELECT count(*) FROM zvv_bench.audit_entries')
echo "== pgbench: the same SQL without any audit (the limit)"
read -r unaudited_tps _ _ < <(pgbench_run unaudited bench/resolve-subject-unaudited.sql "$concurrency" "$duration" -D subjects="$n")
report "$grpc_json" "$pg_tps" "$pg_p50" "$pg_p99" \
  without_audit_tps "$unaudited_tps" \
  service_cpu_ms_per_call "$(per_call "$cpu_service0" "$cpu_service1" "$total")" \
  postgres_cpu_ms_per_call "$(per_call "$cpu_pg0" "$cpu_pg1" "$total")" \
  postgres_cpu_ms_per_pgbench_tx "$(per_call "$cpu_pgb0" "$cpu_pgb1" "$pg_calls")" \
  load_generator_cpu_ms_per_call "$(per_call 0 "$client_cpu" "$total")" \
  max_seal_lag_s "$max_lag" lock_waiters_mean "$mean_waiters" lock_waiters_max "$max_waiters" samples "$samples" \
  audit_entries "$entries" calls "$total" audit_verified "$audit_ok"
