#!/usr/bin/env bash
# Credit leases as replicas multiply: R simulated replicas (1, 4, 16, 64 by default) drain one hot pool on a
# private redis-server; decisions/s, Redis calls per decision, overshoot (always 0), the credits other
# replicas' leases hold when the first refusal comes, and whether the pool ends spent exactly.
# Usage: bench/lease-simulation.sh [replica counts, default 1,4,16,64] [limit, default 200000] [MaxCredits, default 100] [in flight, default 256]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "bench: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
work=$(mktemp -d /tmp/quotaproxy-leasesim.XXXXXX)
pids=()
source bench/lib.sh
trap cleanup_work EXIT
start_redis
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
dotnet build bench/LeaseSimulation -c Release -nologo -v quiet >/dev/null
echo "QuotaProxy lease simulation — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, redis $(redis-server --version | awk '{print $3}')"
dotnet bench/LeaseSimulation/bin/Release/net10.0/QuotaProxy.Bench.LeaseSimulation.dll "127.0.0.1:$REDIS_PORT" "${1:-1,4,16,64}" "${2:-200000}" "${3:-100}" "${4:-256}"
