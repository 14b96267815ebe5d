# Shared by the benchmark scripts: a throwaway suite (`zvv up` with a fresh data folder and its
# own PostgreSQL cluster), and psql/pgbench against its database. Source it; it sets `root`,
# `zvv`, `work`, `port` (intake), `signalling_port` and `pg_port`, and cleans up on exit.

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
    --intake-listen "127.0.0.1:$port" --signalling-listen "127.0.0.1:$signalling_port" >"$work/up.log" 2>&1 &
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
  kill -TERM "$up_pid" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true
  rm -rf "$work"
}

token() { "$zvv" token --data-dir "$work/data" "$@" | tail -n1; }

run_psql() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- psql -h 127.0.0.1 -p "$pg_port" -d zvv "$@"; else psql -h 127.0.0.1 -p "$pg_port" -U postgres -d zvv "$@"; fi; }
run_pgbench() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- pgbench -h 127.0.0.1 -p "$pg_port" "$@" zvv; else pgbench -h 127.0.0.1 -p "$pg_port" -U postgres "$@" zvv; fi; }

# pgbench_run NAME SCRIPT CONCURRENCY DURATION [pgbench options]: prints "tps p50_ms p99_ms"
pgbench_run() {
  local name=$1 script=$2 concurrency=$3 duration=$4; shift 4
  cp "$script" "$work/$name.sql" && chmod 644 "$work/$name.sql"
  mkdir -p "$work/pglog-$name" && chmod 777 "$work/pglog-$name"
  (cd "$work/pglog-$name" && run_pgbench -n -M prepared -c "$concurrency" -j 2 -T "$duration" "$@" \
    -f "$work/$name.sql" --log --log-prefix="$work/pglog-$name/tx") >"$work/$name.out" 2>&1 || { cat "$work/$name.out" >&2; exit 1; }
  grep -E "^(number of failed|latency average|tps)" "$work/$name.out" >&2
  local tps
  tps=$(grep -E '^tps' "$work/$name.out" | head -n1 | sed -E 's/^tps = ([0-9.]+).*/\1/')
  # per-transaction log: column 3 is the latency in microseconds
  cat "$work/pglog-$name"/tx* | awk '{print $3}' | sort -n |
    awk -v tps="$tps" '{a[NR]=$1} END {i50=int((NR-1)*0.50+0.5)+1; i99=int((NR-1)*0.99+0.5)+1; printf "%s %.2f %.2f\n", tps, a[i50]/1000, a[i99]/1000}'
}

# report GRPC_JSON TPS P50 P99 [EXTRA_NAME EXTRA_TPS]: both results and their ratio; last line JSON
report() {
  python3 - "$@" <<'PY'
import json, sys
g = json.loads(sys.argv[1]); pg_tps, p50, p99 = map(float, sys.argv[2:5])
extra = dict(zip(sys.argv[5::2], map(float, sys.argv[6::2])))
ratio = g["calls_per_second"] / pg_tps if pg_tps else 0.0
print(f"gRPC {g['rpc']}: {g['calls_per_second']:.0f}/s p50 {g['p50_ms']:.2f} ms p99 {g['p99_ms']:.2f} ms")
print(f"pgbench same SQL: {pg_tps:.0f}/s p50 {p50:.2f} ms p99 {p99:.2f} ms")
print(f"ratio gRPC/pgbench throughput: {ratio:.2f}")
for name, tps in extra.items():
    print(f"pgbench {name}: {tps:.0f}/s")
print(json.dumps({"grpc": g, "pgbench": {"tps": pg_tps, "p50_ms": p50, "p99_ms": p99}, "ratio": round(ratio, 3), **extra}))
PY
}
