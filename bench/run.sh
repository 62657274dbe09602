#!/usr/bin/env bash
# Throughput and latency, side by side in one run, on this machine's loopback:
#   vendor   wrk -> nginx (the stand-in vendor: a fixed 200 JSON answer)
#   yarp     wrk -> the QuotaProxy host with the quota step off (Quota:Enabled=false) -> nginx
#   quota    wrk -> QuotaProxy on Redis, every request metered and admitted -> nginx
# and the Redis commands per metered request (INFO commandstats over the quota arm).
# Usage: bench/run.sh [seconds per arm, default 15] [connections, default 64]
# Needs: nginx, wrk, redis-server (apt-get install nginx wrk redis-server), the .NET SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNECTIONS=${2:-64}
THREADS=2
for tool in nginx wrk redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install nginx wrk redis-server)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/quotaproxy-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$@" && return 0; sleep 0.1; done; echo "bench: $* never answered" >&2; exit 1; }

dotnet build src/Proxy/Proxy.csproj -c Release -nologo -v quiet >/dev/null
PROXY_DLL=$(pwd)/src/Proxy/bin/Release/net10.0/QuotaProxy.dll

NGINX_PORT=$(free_port)
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type application/json; return 200 '{"vendor":"ok"}'; }
  }
}
NGINX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" & pids+=($!)

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null & pids+=($!)

start_proxy() { # $1 = port, rest = extra config
  local port=$1; shift
  (cd "$work" && exec dotnet "$PROXY_DLL" --config "$OLDPWD/bench/proxy.json" --urls "http://127.0.0.1:$port" \
      --ReverseProxy:Clusters:vendor:Destinations:nginx:Address="http://127.0.0.1:$NGINX_PORT/" \
      --Quota:Store:Redis="127.0.0.1:$REDIS_PORT" "$@" >"$work/proxy-$port.log" 2>&1) & pids+=($!)
}
YARP_PORT=$(free_port); start_proxy "$YARP_PORT" --Quota:Enabled=false
QUOTA_PORT=$(free_port); start_proxy "$QUOTA_PORT"
wait_http "http://127.0.0.1:$NGINX_PORT/metered/x"
wait_http "http://127.0.0.1:$YARP_PORT/metered/x"
wait_http -H "X-Api-Key: bench-key" "http://127.0.0.1:$QUOTA_PORT/metered/x"

# wrk: requests/s, p50 and p99 (ms) from --latency; warm each arm first (JIT, connection pools).
run_arm() { # $1 = name, $2 = url, rest = wrk args
  local name=$1 url=$2; shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d3s "$@" "$url" >/dev/null
  [ "$name" = quota ] && redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" > "$work/$name.txt"
  [ "$name" = quota ] && redis-cli -p "$REDIS_PORT" INFO commandstats > "$work/commandstats.txt"
  true
}
run_arm vendor "http://127.0.0.1:$NGINX_PORT/metered/x"
run_arm yarp "http://127.0.0.1:$YARP_PORT/metered/x"
run_arm quota "http://127.0.0.1:$QUOTA_PORT/metered/x" -H "X-Api-Key: bench-key"

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}'; }
rps() { awk '/^Requests\/sec/ {print $2}' "$work/$1.txt"; }
pct() { awk -v p="$2" '$1 == p {print $2}' "$work/$1.txt" | to_ms; }
total() { awk '/requests in/ {print $1}' "$work/$1.txt"; }
non2xx() { awk '/Non-2xx/ {print $5}' "$work/$1.txt"; }

echo "QuotaProxy benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s per arm, keep-alive, loopback; one metered route of cost 1"
echo
printf '| arm | requests/s | p50 ms | p99 ms | non-2xx |\n|---|---:|---:|---:|---:|\n'
for arm in vendor yarp quota; do
  printf '| %s | %s | %s | %s | %s |\n' "$arm" "$(rps $arm)" "$(pct $arm 50%)" "$(pct $arm 99%)" "$(non2xx $arm)"
done
echo
awk -v q="$(rps quota)" -v y="$(rps yarp)" -v v="$(rps vendor)" 'BEGIN {
  printf "QuotaProxy / plain YARP throughput: %.2f\nplain YARP / vendor direct throughput: %.2f\n", q / y, y / v }'
requests=$(total quota)
awk -F'[:=,]' -v n="$requests" '
  /^cmdstat_/ { name = substr($1, 9); calls[name] = $3; if (name == "eval" || name == "evalsha") top += $3; else inner += $3 }
  END {
    printf "Redis, quota arm: %d requests, %d EVAL/EVALSHA calls = %.3f round trips per metered request\n", n, top, top / n
    printf "  commands run inside the script per request: %.2f (", inner / n
    sep = ""; for (c in calls) if (c != "eval" && c != "evalsha") { printf "%s%s %.2f", sep, c, calls[c] / n; sep = ", " }
    print ")"
  }' "$work/commandstats.txt"
