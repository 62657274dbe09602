#!/usr/bin/env bash
# The ledger benchmark of issue #4, in one run on this machine's loopback:
#   1. throughput, alternating rounds: QuotaProxy on Redis with the ledger off vs on (events appended by
#      the debit script and flushed to PostgreSQL by the proxy's own flusher), wrk -> proxy -> nginx;
#   2. flush lag p99 over the ledger-on rounds: recorded_at - occurred_at of every event in PostgreSQL;
#   3. flusher capacity (events/s) against the proxy's peak admitted rate from 1: cold, a backlog of EVENTS
#      events drained by a proxy that starts with it; warm, EVENTS more given to that same proxy.
# Usage: bench/ledger.sh [seconds per round, default 10] [connections, default 64]   (env ROUNDS, WARMUP, EVENTS)
# WARMUP (seconds of load per proxy before the rounds, default 15): the flusher runs a few batches a second,
# so tiered JIT needs several seconds of load to finish compiling it; rounds before that measure the JIT.
# Needs: nginx, wrk, redis-server, PostgreSQL's initdb/pg_ctl (run as the postgres user when root), the .NET SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-64}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-15}
EVENTS=${EVENTS:-200000}
for tool in nginx wrk redis-server redis-cli initdb pg_ctl psql; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d /tmp/quotaproxy-ledger-bench.XXXXXX)
chmod 755 "$work"
pids=()
source bench/lib.sh
trap cleanup_work EXIT
build_proxy
start_nginx_vendor
start_redis

start_postgres

start_proxy() { # $1 = port, $2 = key prefix, $3 = ledger database or "" for off
  local port=$1 prefix=$2 ledger=()
  [ -n "$3" ] && ledger=(--Quota:Ledger:ConnectionString="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=$3")
  (mkdir -p "$work/home" && cd "$work/home" && exec dotnet "$PROXY_DLL" --config "$OLDPWD/bench/proxy.json" --urls "http://127.0.0.1:$port" \
      --ReverseProxy:Clusters:vendor:Destinations:nginx:Address="http://127.0.0.1:$NGINX_PORT/" \
      --Quota:Store:Redis="127.0.0.1:$REDIS_PORT" --Quota:Store:KeyPrefix="$prefix" "${ledger[@]}" >"$work/proxy-$port.log" 2>&1) & pids+=($!)
  for _ in $(seq 1 200); do curl -fs -o /dev/null -H "X-Api-Key: bench-key" "http://127.0.0.1:$port/metered/x" && return 0; sleep 0.1; done
  echo "bench: proxy on $port never answered" >&2; cat "$work/proxy-$port.log" >&2; exit 1
}

psql_q postgres "CREATE DATABASE ledger_throughput" >/dev/null
OFF_PORT=$(free_port); start_proxy "$OFF_PORT" "off:" ""; OFF_PID=${pids[-1]}
ON_PORT=$(free_port); start_proxy "$ON_PORT" "on:" "ledger_throughput"; ON_PID=${pids[-1]}
cpu_us() { for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | awk -v t="$(getconf CLK_TCK)" '{s += $14 + $15} END {printf "%.0f", s * 1e6 / t}'; }
redis_cpu_us() { redis-cli -p "$REDIS_PORT" INFO cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.0f", s * 1e6}'; }
# One wrk round against a proxy; appends "cpu <proxy> <redis-server> <PostgreSQL>" in µs to its output.
round() { # $1 = port, $2 = proxy pid, $3 = output file
  local p0 r0 g0
  p0=$(cpu_us "$2"); r0=$(redis_cpu_us); g0=$(cpu_us $(pgrep -u postgres))
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H "X-Api-Key: bench-key" "http://127.0.0.1:$1/metered/x" > "$3"
  echo "cpu $(( $(cpu_us "$2") - p0 )) $(( $(redis_cpu_us) - r0 )) $(( $(cpu_us $(pgrep -u postgres)) - g0 ))" >> "$3"
}
# CPU per request of the proxy, redis-server and PostgreSQL over a round: "a / b / c".
cpu_split() { awk '/requests in/ {n = $1} /^cpu / {printf "%.1f / %.1f / %.1f", $2 / n, $3 / n, $4 / n}' "$1"; }
rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
for port in "$OFF_PORT" "$ON_PORT"; do
  wrk -t2 -c"$CONNECTIONS" -d"${WARMUP}s" -H "X-Api-Key: bench-key" "http://127.0.0.1:$port/metered/x" >/dev/null
done
psql_q ledger_throughput "TRUNCATE usage_events, usage_daily" >/dev/null
ratios=(); peak=0
echo "QuotaProxy ledger benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)"
echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s per round after ${WARMUP}s of warm-up per proxy, $ROUNDS alternating rounds, one metered route of cost 1"
echo
printf '| round | ledger off requests/s | ledger on requests/s | on / off | CPU µs/request off: proxy / redis / PostgreSQL | on: proxy / redis / PostgreSQL |\n'
printf '|---:|---:|---:|---:|---|---|\n'
for round in $(seq 1 "$ROUNDS"); do
  round "$OFF_PORT" "$OFF_PID" "$work/off.$round"
  round "$ON_PORT" "$ON_PID" "$work/on.$round"
  off=$(rps "$work/off.$round"); on=$(rps "$work/on.$round")
  ratio=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}'); ratios+=("$ratio")
  peak=$(awk -v a="$peak" -v b="$off" -v c="$on" 'BEGIN {m = a; if (b > m) m = b; if (c > m) m = c; printf "%.0f", m}')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$round" "$off" "$on" "$ratio" "$(cpu_split "$work/off.$round")" "$(cpu_split "$work/on.$round")"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
echo
echo "throughput with the ledger on / off, median of rounds: $median (goal >= 0.9)"

# Let the flusher catch up, then the lag of every event written during the ledger-on rounds.
for _ in $(seq 1 600); do
  [ "$(redis-cli -p "$REDIS_PORT" XLEN 'on:{bench}:events')" = 0 ] && break; sleep 0.1
done
psql_q ledger_throughput "SELECT 'flush lag over ' || count(*) || ' events: p50 ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM recorded_at - occurred_at)) * 1000) || ' ms, p99 ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM recorded_at - occurred_at)) * 1000) || ' ms' FROM usage_events"

# Flusher capacity, twice:
#   cold: EVENTS events already waiting in a fresh prefix's stream (in the form debit.lua writes them), then a
#         proxy starts and drains them (a restart after a PostgreSQL outage). Timed from its start, and from its
#         first acknowledged batch (leaving out connections and migrations, not the JIT's warm-up);
#   warm: the same proxy, now running, is given EVENTS more events twice (written as fast as redis-cli can),
#         each timed from the first write to the last acknowledgement; the second pass is its sustained rate.
psql_q postgres "CREATE DATABASE ledger_capacity" >/dev/null
fill() { # $1 = first request number
  awk -v n="$EVENTS" -v f="$1" -v t="$(date +%s%3N)" 'BEGIN { for (i = f; i < f + n; i++) printf "XADD cap:{bench}:events * e \"%d 1 debit 0 4 7 prodmeteredbench-%d\"\r\n", t, i }' \
    | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
}
drained() { # waits for the stream to empty; sets first/first_left (the first acknowledgement seen) and end
  local full=$1 left; first=""; first_left=0
  for _ in $(seq 1 6000); do
    left=$(redis-cli -p "$REDIS_PORT" XLEN 'cap:{bench}:events')
    if [ -z "$first" ] && [ "$left" -lt "$full" ]; then first=$(date +%s%N); first_left=$left; fi
    [ "$left" = 0 ] && break; sleep 0.02
  done
  end=$(date +%s%N)
}
rate() { awk -v n="$1" -v s="$2" -v e="$3" 'BEGIN {printf "%.0f", n / ((e - s) / 1e9)}'; }
seconds() { awk -v s="$1" -v e="$2" 'BEGIN {printf "%.2f", (e - s) / 1e9}'; }

fill 1
[ "$(redis-cli -p "$REDIS_PORT" XLEN 'cap:{bench}:events')" = "$EVENTS" ] || { echo "bench: the capacity stream was not filled" >&2; exit 1; }
CAP_PORT=$(free_port)
start=$(date +%s%N)
start_proxy "$CAP_PORT" "cap:" "ledger_capacity"
CAP_PID=${pids[-1]}
drained "$EVENTS"
# EVENTS, plus the one request start_proxy sends to see that the proxy answers.
rows=$(psql_q ledger_capacity "SELECT count(*) FROM usage_events")
[ "$rows" = "$((EVENTS + 1))" ] || { echo "bench: $rows events in the ledger, $((EVENTS + 1)) expected" >&2; exit 1; }
cold_total=$(rate "$rows" "$start" "$end"); cold_steady=$(rate "$first_left" "$first" "$end")
echo "flusher capacity, cold: $rows events in $(seconds "$start" "$end") s from the proxy's start = $cold_total events/s;"
echo "  after its first acknowledged batch, the last $first_left in $(seconds "$first" "$end") s = $cold_steady events/s"

per_event() { awk -v a="$1" -v b="$2" -v n="$EVENTS" 'BEGIN {printf "%.1f", (b - a) / n}'; }
# Two warm passes: tiered JIT is still recompiling the flusher's code through the first (a third of its CPU
# under perf); the second is the sustained rate.
for pass in 1 2; do
  p0=$(cpu_us "$CAP_PID"); g0=$(cpu_us $(pgrep -u postgres)); r0=$(redis_cpu_us)
  start=$(date +%s%N)
  fill $((pass * EVENTS + 1))
  drained 1
  p1=$(cpu_us "$CAP_PID"); g1=$(cpu_us $(pgrep -u postgres)); r1=$(redis_cpu_us)
  rows=$(psql_q ledger_capacity "SELECT count(*) FROM usage_events")
  [ "$rows" = "$(((pass + 1) * EVENTS + 1))" ] || { echo "bench: $rows events in the ledger, $(((pass + 1) * EVENTS + 1)) expected" >&2; exit 1; }
  warm=$(rate "$EVENTS" "$start" "$end")
  echo "flusher capacity, warm pass $pass: $EVENTS more events, first write to last acknowledgement in $(seconds "$start" "$end") s = $warm events/s;"
  echo "  CPU per event: flusher (the proxy) $(per_event "$p0" "$p1") µs, PostgreSQL $(per_event "$g0" "$g1") µs, redis-server (the writes included) $(per_event "$r0" "$r1") µs"
done
echo "flusher capacity / peak admitted rate ($peak requests/s): warm (pass 2) $(awk -v c="$warm" -v p="$peak" 'BEGIN {printf "%.1f", c / p}')x, cold $(awk -v c="$cold_steady" -v p="$peak" 'BEGIN {printf "%.1f", c / p}')x after the first batch, $(awk -v c="$cold_total" -v p="$peak" 'BEGIN {printf "%.1f", c / p}')x with start-up (goal >= 5x)"
