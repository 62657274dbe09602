#!/usr/bin/env bash
# The full differential property test of issue #3: random tenant trees and random debits through the Lua
# script on a real Redis and through the in-process store, with every invariant checked after every step.
# CI runs 4 seeds x 5,000 operations; this runs 4 seeds x OPERATIONS_PER_SEED (default 25,000 = 100,000).
# Needs redis-server on PATH (or QUOTAPROXY_TEST_REDIS), like the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export QUOTAPROXY_DIFFERENTIAL_OPERATIONS=${OPERATIONS_PER_SEED:-25000}
dotnet build tests/Proxy.Enforcement.Tests -c Release -nologo -v quiet >/dev/null
dotnet test tests/Proxy.Enforcement.Tests -c Release --no-build -nologo \
  --filter "FullyQualifiedName~TreeDifferentialTests" --logger "console;verbosity=detailed" 2>&1 \
  | grep -E '^ seed|Test Run|Passed:|Failed:|\[FAIL\]|Assert'
