# Shared by the benchmark scripts: a throwaway suite (`zvv up` with a fresh data folder and its
# own PostgreSQL cluster), psql/pgbench against its database, CPU accounting of the service
# process and of PostgreSQL, a sampler of seal lag and lock waits, and the audit checks after a
# run. Source it; it sets `root`, `zvv`, `work`, `port` (intake), `signalling_port`, `pg_port`
# and `up_pid`, and cleans up on exit.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
command -v pgbench >/dev/null || { echo "pgbench not found: install the PostgreSQL client (apt-get install postgresql-client)" >&2; exit 1; }

cargo build --release -q -p zvv
zvv=$root/target/release/zvv

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_suite POOL_SIZE: starts `zvv up` and waits until intake and signalling accept calls
start_suite() {
  work=$(mktemp -d /tmp/zvv-bench.XXXXXX)
  chmod 755 "$work"
  port=$(free_port)
  signalling_port=$(free_port)
  env -u DATABASE_URL ZVV_DB_MAX_CONNECTIONS="$1" "$zvv" up --data-dir "$work/data" \
    --intake-listen "127.0.0.1:$port" --signalling-listen "127.0.0.1:$signalling_port" --notifications-listen "127.0.0.1:0" --reintegration-listen "127.0.0.1:0" >"$work/up.log" 2>&1 &
  up_pid=$!
  trap stop_suite EXIT
  for p in "$port" "$signalling_port"; do
    for _ in $(seq 1 120); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then break; fi
      if ! kill -0 "$up_pid" 2>/dev/null; then cat "$work/up.log" >&2; exit 1; fi
      sleep 0.5
    done
  done
  pg_port=$(cat "$work/data/pg/zvv-port")
}

stop_suite() {
  if [ -n "${sampler_pid:-}" ]; then kill "$sampler_pid" 2>/dev/null || true; fi
  kill -TERM "$up_pid" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true
  rm -rf "$work"
}

token() { "$zvv" token --data-dir "$work/data" "$@" | tail -n1; }

run_psql() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- psql -h 127.0.0.1 -p "$pg_port" -d zvv "$@"; else psql -h 127.0.0.1 -p "$pg_port" -U postgres -d zvv "$@"; fi; }
run_pgbench() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- pgbench -h 127.0.0.1 -p "$pg_port" "$@" zvv; else pgbench -h 127.0.0.1 -p "$pg_port" -U postgres "$@" zvv; fi; }

# pgbench_run NAME SCRIPT CONCURRENCY DURATION [pgbench options]: after a 3 s warm-up, prints
# "tps p50_ms p99_ms"
pgbench_run() {
  local name=$1 script=$2 concurrency=$3 duration=$4; shift 4
  cp "$script" "$work/$name.sql" && chmod 644 "$work/$name.sql"
  mkdir -p "$work/pglog-$name" && chmod 777 "$work/pglog-$name"
  # warm-up, as the gRPC side has: caches, plans and connections, not measured
  (cd "$work/pglog-$name" && run_pgbench -n -M prepared -c "$concurrency" -j 2 -T 3 "$@" \
    -f "$work/$name.sql") >"$work/$name.warmup" 2>&1 || { cat "$work/$name.warmup" >&2; exit 1; }
  (cd "$work/pglog-$name" && run_pgbench -n -M prepared -c "$concurrency" -j 2 -T "$duration" "$@" \
    -f "$work/$name.sql" --log --log-prefix="$work/pglog-$name/tx") >"$work/$name.out" 2>&1 || { cat "$work/$name.out" >&2; exit 1; }
  grep -E "^(number of failed|latency average|tps)" "$work/$name.out" >&2
  local tps
  tps=$(grep -E '^tps' "$work/$name.out" | head -n1 | sed -E 's/^tps = ([0-9.]+).*/\1/')
  # per-transaction log: column 3 is the latency in microseconds
  cat "$work/pglog-$name"/tx* | awk '{print $3}' | sort -n |
    awk -v tps="$tps" '{a[NR]=$1} END {i50=int((NR-1)*0.50+0.5)+1; i99=int((NR-1)*0.99+0.5)+1; printf "%s %.2f %.2f\n", tps, a[i50]/1000, a[i99]/1000}'
}

# cpu_seconds PID: user + system CPU seconds of a process so far
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# pg_cpu_seconds: CPU seconds of the whole PostgreSQL cluster so far (the postmaster, the
# backends it has reaped, and the ones still running)
pg_cpu_seconds() {
  local master hz total
  master=$(head -n1 "$work/data/pg/postmaster.pid")
  hz=$(getconf CLK_TCK)
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$master/stat")
  for child in $(pgrep -P "$master"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0)))
  done
  awk -v t="$total" -v hz="$hz" 'BEGIN {print t / hz}'
}

# sampler_start: every 0.5 s, the seal lag of each service (age of the oldest unsealed audit
# entry) and the sessions waiting on a lock, appended to $work/samples
sampler_start() {
  : >"$work/samples"
  (
    while :; do
      run_psql -tA -F ' ' -c "
        SELECT (SELECT coalesce(extract(epoch FROM clock_timestamp() - min(written_at)), 0)
                  FROM intake.audit_entries e
                 WHERE NOT EXISTS (SELECT 1 FROM intake.audit_seals s WHERE s.entry_id = e.entry_id)),
               (SELECT coalesce(extract(epoch FROM clock_timestamp() - min(written_at)), 0)
                  FROM signalling.audit_entries e
                 WHERE NOT EXISTS (SELECT 1 FROM signalling.audit_seals s WHERE s.entry_id = e.entry_id)),
               (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'),
               (SELECT coalesce(string_agg(wait_event, ','), '-') FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock')" >>"$work/samples" 2>/dev/null || true
      sleep 0.5
    done
  ) &
  sampler_pid=$!
}

# sampler_stop: prints "max_seal_lag_s mean_lock_waiters max_lock_waiters samples"
sampler_stop() {
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  awk '{lag = ($1 > $2 ? $1 : $2); if (lag > m) m = lag; w += $3; if ($3 > mw) mw = $3; n++}
       END {printf "%.3f %.2f %d %d\n", m, (n ? w / n : 0), mw, n}' "$work/samples"
}

# audit_check ACTION EXPECTED: audit entries of ACTION (in any service) must number EXPECTED, and
# `zvv audit verify` must pass for every service; prints "entries verified"
audit_check() {
  local action=$1 expected=$2 entries ok=yes
  entries=$(run_psql -tAc "SELECT (SELECT count(*) FROM intake.audit_entries WHERE action = '$action')
                                + (SELECT count(*) FROM signalling.audit_entries WHERE action = '$action')")
  for service in intake signalling; do
    if ! "$zvv" audit verify --service "$service" --data-dir "$work/data" >"$work/verify-$service.out" 2>&1; then
      ok=no
      cat "$work/verify-$service.out" >&2
    fi
    grep -E "entries|seal lag" "$work/verify-$service.out" >&2 || true
  done
  if [ "$entries" != "$expected" ]; then
    echo "audit entries of $action: $entries, calls: $expected" >&2
    ok=no
  fi
  echo "$entries $ok"
}

# report GRPC_JSON TPS P50 P99 [NAME VALUE]...: both results, their ratios against the targets,
# and the extra figures; the last line is one JSON object
report() {
  python3 - "$@" <<'PY'
import json, sys
g = json.loads(sys.argv[1]); pg_tps, p50, p99 = map(float, sys.argv[2:5])
extra = dict(zip(sys.argv[5::2], sys.argv[6::2]))
def num(v):
    try:
        return float(v)
    except ValueError:
        return v
extra = {k: num(v) for k, v in extra.items()}
ratio = g["calls_per_second"] / pg_tps if pg_tps else 0.0
p99_ratio = g["p99_ms"] / p99 if p99 else 0.0
print(f"gRPC {g['rpc']}: {g['calls_per_second']:.0f}/s p50 {g['p50_ms']:.2f} ms p99 {g['p99_ms']:.2f} ms")
print(f"pgbench same SQL: {pg_tps:.0f}/s p50 {p50:.2f} ms p99 {p99:.2f} ms")
print(f"throughput gRPC/pgbench: {ratio:.2f} (target >= 0.85); p99 gRPC/pgbench: {p99_ratio:.2f} (target <= 3)")
for name, value in extra.items():
    print(f"{name}: {value}")
print(json.dumps({"grpc": g, "pgbench": {"tps": pg_tps, "p50_ms": p50, "p99_ms": p99},
                  "ratio": round(ratio, 3), "p99_ratio": round(p99_ratio, 3), **extra}))
PY
}
