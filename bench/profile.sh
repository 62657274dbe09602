#!/usr/bin/env bash
# Where the proxy's CPU goes under load: one QuotaProxy arm under wrk while dotnet-trace samples it, then the
# methods longest on the stack, inclusive and exclusive (dotnet-trace report topN).
# Usage: bench/profile.sh [arm: quota|inproc|lease|host, default quota] [seconds, default 10] [connections, default 64]
# Needs what bench/run.sh needs, plus dotnet-trace (dotnet tool install -g dotnet-trace).
set -euo pipefail
cd "$(dirname "$0")/.."
ARM=${1:-quota}
DURATION=${2:-10}
CONNECTIONS=${3:-64}
TRACE=${TRACE:-$HOME/.dotnet/tools/dotnet-trace}
command -v "$TRACE" >/dev/null || { echo "profile: dotnet-trace is missing (dotnet tool install -g dotnet-trace)" >&2; exit 1; }

work=$(mktemp -d /tmp/quotaproxy-profile.XXXXXX)
pids=()
source bench/lib.sh
trap cleanup_work EXIT

build_proxy
start_nginx_vendor
start_redis
PORT=$(free_port)
extra=(); path=/metered/x
case "$ARM" in
  inproc) extra=(--Quota:Store:Kind=InProcess) ;;
  lease) extra=(--Quota:Pools:bench:Lease:MaxCredits=1000) ;;
  host) path=/open/x ;;
esac
(mkdir -p "$work/home" && cd "$work/home" && exec dotnet "$PROXY_DLL" --config "$OLDPWD/bench/proxy.json" --urls "http://127.0.0.1:$PORT" \
    --ReverseProxy:Clusters:vendor:Destinations:nginx:Address="http://127.0.0.1:$NGINX_PORT/" \
    --Quota:Store:Redis="127.0.0.1:$REDIS_PORT" "${extra[@]}" >"$work/proxy.log" 2>&1) & pids+=($!)
PROXY_PID=$!
for _ in $(seq 1 200); do curl -fs -o /dev/null -H "X-Api-Key: bench-key" "http://127.0.0.1:$PORT$path" && break; sleep 0.1; done
wrk -t2 -c"$CONNECTIONS" -d10s -H "X-Api-Key: bench-key" "http://127.0.0.1:$PORT$path" >/dev/null # warm-up: tiered JIT settles
wrk -t2 -c"$CONNECTIONS" -d"$((DURATION + 4))s" -H "X-Api-Key: bench-key" "http://127.0.0.1:$PORT$path" > "$work/wrk.txt" &
sleep 2
"$TRACE" collect -p "$PROXY_PID" --profile dotnet-sampled-thread-time --duration "00:00:00:$(printf '%02d' "$DURATION")" -o "$work/trace.nettrace" >/dev/null
wait $!
grep -E "Requests/sec" "$work/wrk.txt"
"$TRACE" report "$work/trace.nettrace" topN -n "${TOP:-40}"
"$TRACE" report "$work/trace.nettrace" topN -n "${TOP:-40}" --inclusive
