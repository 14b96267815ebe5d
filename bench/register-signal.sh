#!/usr/bin/env bash
# RegisterSignal over gRPC (unique subjects and request ids; each call makes one intake call)
# against all the SQL one call causes in both services run directly by pgbench, in one run, on
# one throwaway suite; also the SQL without any audit (the limit), the CPU seconds per call of
# the service process and of PostgreSQL, the seal lag and lock waits during the run, and the
# audit checks after it (one entry per call in each service, `zvv audit verify` passes for every
# service).
#
#   bench/register-signal.sh [--concurrency 32] [--connections 4] [--duration 20] [--subjects 12000]
#
# Prints the results and their ratios; the last line is one JSON object.
set -euo pipefail

concurrency=32 connections=4 duration=20 subjects=12000
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

start_suite "$concurrency"
school=$(token --org zvv-bench --org-type SCHOOL --role PROFESSIONAL)
registrar=$(token --org gm0363 --org-type MUNICIPALITY --role PROFESSIONAL)
echo "== gRPC: zvv bench signal (concurrency $concurrency, $connections connections, ${duration}s after a warm-up)"
cpu_service0=$(cpu_seconds "$up_pid"); cpu_pg0=$(pg_cpu_seconds)
sampler_start
grpc_json=$("$zvv" bench signal --intake-addr "http://127.0.0.1:$port" --signalling-addr "http://127.0.0.1:$signalling_port" \
  --token "$school" --registrar-token "$registrar" \
  --concurrency "$concurrency" --connections "$connections" --subjects "$subjects" --duration "$duration" --json | tail -n1)
read -r max_lag mean_waiters max_waiters samples < <(sampler_stop)
cpu_service1=$(cpu_seconds "$up_pid"); cpu_pg1=$(pg_cpu_seconds)
total=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['total_calls'])" "$grpc_json")
client_cpu=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['client_cpu_s'] or 0)" "$grpc_json")
seeded=$(run_psql -tAc "SELECT count(*) FROM intake.audit_entries WHERE action = 'zvv.intake.v1.SubjectService/RegisterSubject'")
sleep 1   # let the sealers finish the tail
read -r entries audit_ok < <(audit_check zvv.signalling.v1.SignalService/RegisterSignal "$total")
intake_calls=$(run_psql -tAc "SELECT count(*) FROM intake.audit_entries WHERE action = 'zvv.intake.v1.SubjectService/GetSubjectContext'")
[ "$intake_calls" = "$total" ] || { echo "intake calls $intake_calls for $total signals" >&2; audit_ok=no; }
# CPU of the measured calls only: the seeding (RegisterSubject) ran in the same window
per_call() { python3 -c "print(round(($2 - $1) / $3 * 1000, 3))" "$@"; }

run_psql -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE SCHEMA zvv_bench;
CREATE TABLE zvv_bench.subjects AS SELECT row_number() OVER (ORDER BY subject_id) AS n, subject_id FROM intake.subjects;
ALTER TABLE zvv_bench.subjects ADD PRIMARY KEY (n);
CREATE TABLE zvv_bench.intake_audit_entries (LIKE intake.audit_entries INCLUDING ALL);
CREATE TABLE zvv_bench.signalling_audit_entries (LIKE signalling.audit_entries INCLUDING ALL);
SQL
n=$(run_psql -tAc 'SELECT count(*) FROM zvv_bench.subjects')
echo "== pgbench: all SQL of one call in both services (concurrency $concurrency, ${duration}s after a warm-up)"
cpu_pgb0=$(pg_cpu_seconds)
read -r pg_tps pg_p50 pg_p99 < <(pgbench_run audited bench/register-signal.sql "$concurrency" "$duration" -D subjects="$n")
cpu_pgb1=$(pg_cpu_seconds)
pg_calls=$(run_psql -tAc 'SELECT count(*) FROM zvv_bench.signalling_audit_entries')
echo "== pgbench: the same SQL without any audit (the limit)"
read -r unaudited_tps _ _ < <(pgbench_run unaudited bench/register-signal-unaudited.sql "$concurrency" "$duration" -D subjects="$n")
report "$grpc_json" "$pg_tps" "$pg_p50" "$pg_p99" \
  without_audit_tps "$unaudited_tps" \
  suite_cpu_ms_per_call_incl_seeding "$(per_call "$cpu_service0" "$cpu_service1" "$((total + seeded))")" \
  postgres_cpu_ms_per_call_incl_seeding "$(per_call "$cpu_pg0" "$cpu_pg1" "$((total + seeded))")" \
  postgres_cpu_ms_per_pgbench_tx "$(per_call "$cpu_pgb0" "$cpu_pgb1" "$pg_calls")" \
  load_generator_cpu_ms_per_call_incl_seeding "$(per_call 0 "$client_cpu" "$((total + seeded))")" \
  max_seal_lag_s "$max_lag" lock_waiters_mean "$mean_waiters" lock_waiters_max "$max_waiters" samples "$samples" \
  audit_entries "$entries" calls "$total" intake_calls "$intake_calls" audit_verified "$audit_ok"
