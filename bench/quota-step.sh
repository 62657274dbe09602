#!/usr/bin/env bash
# The quota step alone (identify + price + decide in-process + headers), timed and its allocations counted
# by BenchmarkDotNet: bench/QuotaStep. "Metered" minus "Unmetered" is the step's own cost per request.
# Usage: bench/quota-step.sh [extra BenchmarkDotNet arguments, default: --job short]
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(--job short)
dotnet run -c Release --project bench/QuotaStep -- --filter '*' --artifacts /tmp/quotaproxy-quota-step "${args[@]}" | sed -n '/^| Method/,/^$/p'
