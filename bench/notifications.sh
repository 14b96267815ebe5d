#!/usr/bin/env bash
# Notifications on an optimised build, against a throwaway database: Publish with fan-out to 10
# webhook subscriptions on a loopback receiver, delivered by the service's own workers
# (deliveries/s, target >= 1,000/s including PostgreSQL); commit-to-delivery latency at half that
# load (target p99 <= 1 s); 1,000 concurrent StreamInbox streams (memory and latency; the
# process measured holds the service and the 1,000 clients).
#
#   bench/notifications.sh
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release -p zvv-notifications --test api -- --ignored --exact \
  bench::notifications_benchmark --nocapture >"$log" 2>&1 || status=$?
sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(fan-out|latency|pgbench|streams)|^test result|panicked' || true
exit "$status"
