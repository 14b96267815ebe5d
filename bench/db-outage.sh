#!/usr/bin/env bash
# PostgreSQL stopped with `pg_ctl stop -m immediate` under 8 RegisterSubject writers, for 3 s and
# for 12 s, then started again, with the production timeouts (10 s request timeout, 5 s to get
# a pooled connection) on an optimised build. Each outage runs on its own durable throwaway
# cluster. Prints per outage what the callers saw (count and slowest answer per status), how
# soon readiness went NOT_SERVING and came back SERVING (target: within 1 s), how many calls
# could not be audited, and checks that every unacknowledged call, retried with its
# request_id, registered its person exactly once.
#
#   bench/db-outage.sh
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release -p zvv-e2e --test e2e -- --ignored --exact \
  outage::outages_with_production_timeouts --nocapture >"$log" 2>&1 || status=$?
sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(3|12) s outage|^test result|panicked' || true
exit "$status"
