#!/usr/bin/env bash
# Issue #3's sibling-count benchmark: decision latency through the Redis store with 4 siblings under one
# parent vs 10,000, alternating rounds, on a private redis-server. The ratio should be close to 1: a
# decision reads running aggregates per parent, never the siblings.
# Usage: bench/siblings.sh [decisions per round, default 20000] [rounds, default 3]. Needs redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "bench: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
work=$(mktemp -d /tmp/quotaproxy-siblings.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null & redis_pid=$!
trap 'kill $redis_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
dotnet build bench/Siblings -c Release -nologo -v quiet >/dev/null
echo "QuotaProxy sibling benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, redis $(redis-server --version | awk '{print $3}')"
dotnet bench/Siblings/bin/Release/net10.0/QuotaProxy.Bench.Siblings.dll "127.0.0.1:$port" "${1:-20000}" "${2:-3}"
