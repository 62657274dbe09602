#!/usr/bin/env bash
# The fault tests at full length, as a nightly job would run them: the longest outages last
# QUOTAPROXY_FAULT_SECONDS (default 60: PostgreSQL down a minute) instead of the suite's 5 s, and every
# fault, exactness and reconciliation test runs ROUNDS times (default 3), so that a rare interleaving shows.
#   bash scripts/faults.sh            # 3 rounds, 60 s outages
#   ROUNDS=1 bash scripts/faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export QUOTAPROXY_FAULT_SECONDS="${QUOTAPROXY_FAULT_SECONDS:-60}"
rounds="${ROUNDS:-3}"
for round in $(seq "$rounds"); do
  echo "== fault tests, round $round of $rounds (outages of ${QUOTAPROXY_FAULT_SECONDS} s)"
  bash scripts/test.sh --filter "FullyQualifiedName~StoreFaultTests|FullyQualifiedName~StoreOutageTests|FullyQualifiedName~LedgerReconciliationTests|FullyQualifiedName~ExactnessTests|FullyQualifiedName~StoreBaselinesTests"
done
