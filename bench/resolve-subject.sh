#!/usr/bin/env bash
# ResolveSubject over gRPC against the same SQL run directly by pgbench, in one run, on one
# throwaway suite. Also runs the SQL without the audit hash chain, to show what chaining costs.
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
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

# as many database connections as pgbench gets below, so both sides have the same resources
start_suite "$concurrency"
service_token=$(token --org zvv-bench --org-type SUITE --role SERVICE --sub zvv-bench-dev)
echo "== gRPC: zvv bench resolve (concurrency $concurrency, $connections connections, ${duration}s)"
grpc_json=$("$zvv" bench resolve --intake-addr "http://127.0.0.1:$port" --token "$service_token" \
  --concurrency "$concurrency" --connections "$connections" --subjects "$subjects" --duration "$duration" --json | tail -n1)

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
echo "== pgbench: the same SQL (concurrency $concurrency, ${duration}s, $n subjects)"
read -r pg_tps pg_p50 pg_p99 < <(pgbench_run chained bench/resolve-subject.sql "$concurrency" "$duration" -D subjects="$n")
echo "== pgbench: the same SQL without the audit hash chain (for comparison)"
read -r unchained_tps _ _ < <(pgbench_run unchained bench/resolve-subject-unchained.sql "$concurrency" "$duration" -D subjects="$n")
report "$grpc_json" "$pg_tps" "$pg_p50" "$pg_p99" without_audit_chain "$unchained_tps"
