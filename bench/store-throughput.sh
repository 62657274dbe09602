#!/usr/bin/env bash
# Exact mode's capacity on one Redis: decisions per second on one hot pool with 1, 2, 4 and 8 simulated
# replicas (group commit per replica), Redis calls and CPU per decision, latency; on a private redis-server.
# Usage: bench/store-throughput.sh [replica counts, default 1,2,4,8] [decisions in flight, default 256] [seconds, default 8] [ledger: the ledger on]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "bench: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
work=$(mktemp -d /tmp/quotaproxy-throughput.XXXXXX)
pids=()
source bench/lib.sh
trap cleanup_work EXIT
start_redis
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
dotnet build bench/StoreThroughput -c Release -nologo -v quiet >/dev/null
echo "QuotaProxy store throughput — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, redis $(redis-server --version | awk '{print $3}')"
dotnet bench/StoreThroughput/bin/Release/net10.0/QuotaProxy.Bench.StoreThroughput.dll "127.0.0.1:$REDIS_PORT" "${1:-1,2,4,8}" "${2:-256}" "${3:-8}" ${4:+"$4"}
