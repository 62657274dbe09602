#!/usr/bin/env bash
# Throughput and latency, side by side in one run, on this machine's loopback:
#   vendor   wrk -> nginx (the stand-in vendor: a fixed 200 JSON answer)
#   yarp     wrk -> plain YARP as its own minimal app (bench/PlainYarp, no QuotaProxy code) -> nginx
#   host     wrk -> QuotaProxy, a route without quota metadata (the host with the quota step off) -> nginx
#   inproc   wrk -> QuotaProxy on its in-process store, every request metered and admitted -> nginx
#   quota    wrk -> QuotaProxy on Redis (exact mode), every request metered and admitted -> nginx
# and the Redis commands per metered request (INFO commandstats over the quota and lease arms).
# The proxy arms run one after another in each of ROUNDS rounds (default 7) after a warm-up long enough for
# tiered JIT to settle; each ratio quoted is the median of the per-round ratios to plain YARP, since these
# shared machines drift: over a minute the whole machine's throughput moves by 10-25 %, so many short rounds
# (8 s an arm) pair each arm with a plain YARP run close in time, and their median is steadier than that of
# three long ones. ARMS chooses the proxy arms (default "yarp host inproc quota lease"; yarp is always
# run): host is QuotaProxy with the quota step off (an unmetered route), inproc the in-process store, quota
# Redis in exact mode (one atomic decision per request), lease Redis with credit leases (Lease MaxCredits 1000).
# Then each arm's latency at a fixed rate, half of plain YARP's throughput (hey; LATENCY=0 skips it).
# Usage: bench/run.sh [seconds per arm, default 8] [connections, default 64]   (env ROUNDS, WARMUP, ARMS, LATENCY, LATENCY_SECONDS)
# Needs: nginx, wrk, hey, redis-server (apt-get install nginx wrk hey redis-server), the .NET SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-8}
CONNECTIONS=${2:-64}
THREADS=2
ROUNDS=${ROUNDS:-7}
WARMUP=${WARMUP:-10}
for tool in nginx wrk redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install nginx wrk redis-server)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/quotaproxy-bench.XXXXXX)
pids=()

source bench/lib.sh
trap cleanup_work EXIT
wait_http() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$@" && return 0; sleep 0.1; done; echo "bench: $* never answered" >&2; exit 1; }

build_proxy
build_plain_yarp
start_nginx_vendor
start_redis

start_proxy() { # $1 = port, rest = extra config
  local port=$1; shift
  (mkdir -p "$work/home" && cd "$work/home" && exec dotnet "$PROXY_DLL" --config "$OLDPWD/bench/proxy.json" --urls "http://127.0.0.1:$port" \
      --ReverseProxy:Clusters:vendor:Destinations:nginx:Address="http://127.0.0.1:$NGINX_PORT/" \
      --Quota:Store:Redis="127.0.0.1:$REDIS_PORT" "$@" >"$work/proxy-$port.log" 2>&1) & pids+=($!)
  STARTED_PID=$!
}
YARP_PORT=$(free_port)
(mkdir -p "$work/home" && cd "$work/home" && exec dotnet "$PLAIN_YARP_DLL" --urls "http://127.0.0.1:$YARP_PORT" \
    --ReverseProxy:Routes:metered:ClusterId=vendor --ReverseProxy:Routes:metered:Match:Path='/metered/{**rest}' \
    --ReverseProxy:Clusters:vendor:Destinations:nginx:Address="http://127.0.0.1:$NGINX_PORT/" >"$work/plain-yarp.log" 2>&1) & pids+=($!)
YARP_PID=$!
QUOTA_PORT=$(free_port); start_proxy "$QUOTA_PORT"; QUOTA_PID=$STARTED_PID
INPROC_PORT=$(free_port); start_proxy "$INPROC_PORT" --Quota:Store:Kind=InProcess; INPROC_PID=$STARTED_PID
LEASE_PORT=$(free_port); start_proxy "$LEASE_PORT" --Quota:Pools:bench:Lease:MaxCredits=1000 --Quota:Store:KeyPrefix=lease:; LEASE_PID=$STARTED_PID
wait_http "http://127.0.0.1:$NGINX_PORT/metered/x"
wait_http "http://127.0.0.1:$YARP_PORT/metered/x"
wait_http -H "X-Api-Key: bench-key" "http://127.0.0.1:$QUOTA_PORT/metered/x"
wait_http -H "X-Api-Key: bench-key" "http://127.0.0.1:$INPROC_PORT/metered/x"
wait_http -H "X-Api-Key: bench-key" "http://127.0.0.1:$LEASE_PORT/metered/x"

# wrk: requests/s, p50 and p99 (ms) from --latency. CPU per request from /proc/<pid>/stat (proxy) and
# INFO cpu (redis-server) over the same interval.
clk_tck=$(getconf CLK_TCK)
proc_cpu_us() { # a process and its children (nginx's worker)
  local p; for p in "$1" $(pgrep -P "$1"); do cat "/proc/$p/stat"; done | awk -v t="$clk_tck" '{s += $14 + $15} END {printf "%.0f", s * 1e6 / t}'
}
redis_cpu_us() { redis-cli -p "$REDIS_PORT" INFO cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.0f", s * 1e6}'; }
declare -A PID_OF=([vendor]=$NGINX_PID [yarp]=$YARP_PID [host]=$QUOTA_PID [inproc]=$INPROC_PID [quota]=$QUOTA_PID [lease]=$LEASE_PID)
declare -A URL_OF=([vendor]="http://127.0.0.1:$NGINX_PORT/metered/x" [yarp]="http://127.0.0.1:$YARP_PORT/metered/x"
  [host]="http://127.0.0.1:$QUOTA_PORT/open/x" [inproc]="http://127.0.0.1:$INPROC_PORT/metered/x" [quota]="http://127.0.0.1:$QUOTA_PORT/metered/x" [lease]="http://127.0.0.1:$LEASE_PORT/metered/x")
ARMS=${ARMS:-yarp host inproc quota lease}
read -r -a PROXY_ARMS <<< "yarp ${ARMS//yarp/}"
hdr_args() { case "$1" in quota|inproc|lease) printf '%s\n' -H "X-Api-Key: bench-key" ;; esac; true; }
run_arm() { # $1 = arm, $2 = output file
  local arm=$1 out=$2 c0 r0 c1 r1
  mapfile -t extra < <(hdr_args "$arm")
  c0=$(proc_cpu_us "${PID_OF[$arm]}"); r0=$(redis_cpu_us)
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${extra[@]}" "${URL_OF[$arm]}" > "$out"
  c1=$(proc_cpu_us "${PID_OF[$arm]}"); r1=$(redis_cpu_us)
  echo "cpu_us $((c1 - c0)) redis_us $((r1 - r0))" >> "$out"
}
for arm in vendor "${PROXY_ARMS[@]}"; do
  mapfile -t extra < <(hdr_args "$arm")
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "${extra[@]}" "${URL_OF[$arm]}" >/dev/null
done
run_arm vendor "$work/vendor.1.txt"
for round in $(seq 1 "$ROUNDS"); do
  for arm in "${PROXY_ARMS[@]}"; do
    # Redis's command counts over the quota and lease arms, each its own.
    case "$arm" in quota|lease) redis-cli -p "$REDIS_PORT" INFO commandstats > "$work/commandstats.before.$arm.$round.txt" ;; esac
    run_arm "$arm" "$work/$arm.$round.txt"
    case "$arm" in quota|lease) redis-cli -p "$REDIS_PORT" INFO commandstats > "$work/commandstats.after.$arm.$round.txt" ;; esac
  done
done

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}'; }
rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
pct() { awk -v p="$2" '$1 == p {print $2}' "$1" | to_ms; }
total() { awk '/requests in/ {print $1}' "$1"; }
non2xx() { awk '/Non-2xx/ {print $5}' "$1"; }
cpu_per_req() { awk -v f="$2" '/requests in/ {n = $1} /^cpu_us/ {c = $2; r = $4} END {printf "%.1f", (f == "redis" ? r : c) / n}' "$1"; }

echo "QuotaProxy benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s per arm, keep-alive, loopback; one metered route of cost 1;"
echo "${WARMUP}s warm-up per arm, then $ROUNDS rounds of: ${PROXY_ARMS[*]}"
echo
printf '| arm | round | requests/s | p50 ms | p99 ms | non-2xx | server CPU µs/request | redis-server CPU µs/request |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
row() { printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(rps "$3")" "$(pct "$3" 50%)" "$(pct "$3" 99%)" "$(non2xx "$3")" "$(cpu_per_req "$3" proc)" "$(cpu_per_req "$3" redis)"; }
row vendor 1 "$work/vendor.1.txt"
for round in $(seq 1 "$ROUNDS"); do
  for arm in "${PROXY_ARMS[@]}"; do row "$arm" "$round" "$work/$arm.$round.txt"; done
done
echo
for arm in "${PROXY_ARMS[@]}"; do
  [ "$arm" = yarp ] && continue
  ratios=()
  for round in $(seq 1 "$ROUNDS"); do
    ratios+=("$(awk -v q="$(rps "$work/$arm.$round.txt")" -v y="$(rps "$work/yarp.$round.txt")" 'BEGIN {printf "%.3f", q / y}')")
  done
  median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  echo "$arm / plain YARP throughput per round: ${ratios[*]}; median: $median"
done
awk -v y="$(rps "$work/yarp.1.txt")" -v v="$(rps "$work/vendor.1.txt")" 'BEGIN {printf "plain YARP / vendor direct throughput (round 1): %.2f\n", y / v}'
# Latency at a fixed rate: half of plain YARP's median throughput, from hey (32 workers, each at its share
# of the rate), for every arm in turn; "added" is the arm's p50/p99 less plain YARP's in the same pass.
if [ "${LATENCY:-1}" = 1 ] && command -v hey >/dev/null; then
  yarp_median=$(for round in $(seq 1 "$ROUNDS"); do rps "$work/yarp.$round.txt"; done | sort -n | awk '{a[NR] = $1} END {printf "%d", a[int((NR + 1) / 2)]}')
  rate=$((yarp_median / 2)); workers=32
  echo
  echo "Latency at a fixed $rate requests/s (half of plain YARP's median throughput): hey -z ${LATENCY_SECONDS:-10}s -c $workers -q $((rate / workers))"
  echo
  printf '| arm | p50 ms | p99 ms | added p50 ms | added p99 ms |\n|---|---:|---:|---:|---:|\n'
  hey_pct() { awk -v p="$2" '$1 == p"%" && $2 == "in" {printf "%.3f", $3 * 1000}' "$1"; }
  for arm in vendor "${PROXY_ARMS[@]}"; do
    mapfile -t extra < <(hdr_args "$arm")
    hey -z "${LATENCY_SECONDS:-10}s" -c "$workers" -q "$((rate / workers))" "${extra[@]}" "${URL_OF[$arm]}" > "$work/$arm.latency.txt"
  done
  for arm in vendor "${PROXY_ARMS[@]}"; do
    p50=$(hey_pct "$work/$arm.latency.txt" 50); p99=$(hey_pct "$work/$arm.latency.txt" 99)
    y50=$(hey_pct "$work/yarp.latency.txt" 50); y99=$(hey_pct "$work/yarp.latency.txt" 99)
    if [ "$arm" = vendor ] || [ "$arm" = yarp ]; then added50=—; added99=—; else
      added50=$(awk -v a="$p50" -v b="$y50" 'BEGIN {printf "%.3f", a - b}'); added99=$(awk -v a="$p99" -v b="$y99" 'BEGIN {printf "%.3f", a - b}'); fi
    printf '| %s | %s | %s | %s | %s |\n' "$arm" "$p50" "$p99" "$added50" "$added99"
  done
fi

for arm in quota lease; do
  case " ${PROXY_ARMS[*]} " in *" $arm "*) ;; *) continue ;; esac
  requests=0
  for round in $(seq 1 "$ROUNDS"); do requests=$((requests + $(total "$work/$arm.$round.txt"))); done
  # Counted: the commands run over the arm's runs (after minus before). Not counted: the INFO calls of
  # this script and the client's PING heartbeats.
  cat "$work"/commandstats.before."$arm".*.txt | sed 's/^/before /' > "$work/commandstats.$arm.txt"
  cat "$work"/commandstats.after."$arm".*.txt | sed 's/^/after /' >> "$work/commandstats.$arm.txt"
  awk -F'[:=,]' -v n="$requests" -v arm="$arm" '
    { split($1, w, " "); sign = (w[1] == "after") ? 1 : -1; $1 = w[2] }
    /cmdstat_/ { name = substr($1, 9); if (name ~ /^(info|ping|config\||client\||cluster\||echo|subscribe|script\|)/) next
                  calls[name] += sign * $3; if (name == "eval" || name == "evalsha") top += sign * $3; else inner += sign * $3 }
    END {
      printf "Redis, %s arm: %d requests, %d EVAL/EVALSHA calls = %.3f round trips per metered request\n", arm, n, top, top / n
      printf "  commands run inside the scripts per request: %.3f (", inner / n
      sep = ""; for (c in calls) if (c != "eval" && c != "evalsha") { printf "%s%s %.3f", sep, c, calls[c] / n; sep = ", " }
      print ")"
    }' "$work/commandstats.$arm.txt"
done
