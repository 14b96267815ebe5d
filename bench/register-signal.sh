#!/usr/bin/env bash
# RegisterSignal over gRPC (with unique subjects and request ids; each call also asks intake
# about the child) against signalling's own SQL for it run directly by pgbench, in one run, on
# one throwaway suite.
#
#   bench/register-signal.sh [--concurrency 32] [--connections 4] [--duration 20] [--subjects 12000]
#
# Prints both results and their ratio; the last line is one JSON object.
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
echo "== gRPC: zvv bench signal (concurrency $concurrency, $connections connections, ${duration}s)"
grpc_json=$("$zvv" bench signal --intake-addr "http://127.0.0.1:$port" --signalling-addr "http://127.0.0.1:$signalling_port" \
  --token "$school" --registrar-token "$registrar" \
  --concurrency "$concurrency" --connections "$connections" --subjects "$subjects" --duration "$duration" --json | tail -n1)

run_psql -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE SCHEMA zvv_bench;
CREATE TABLE zvv_bench.audit_log (LIKE signalling.audit_log INCLUDING ALL);
INSERT INTO zvv_bench.audit_log SELECT 0, now(), 'genesis', '{}', 'OK', '', '', '', '', '', '', '', '\x00', '\x00';
SQL
echo "== pgbench: signalling's SQL for RegisterSignal (concurrency $concurrency, ${duration}s)"
read -r pg_tps pg_p50 pg_p99 < <(pgbench_run register bench/register-signal.sql "$concurrency" "$duration")
report "$grpc_json" "$pg_tps" "$pg_p50" "$pg_p99"
