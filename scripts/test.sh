#!/usr/bin/env bash
# The whole test suite, from a fresh clone on Debian with the .NET SDK.
# Installs what the tests need when it is missing (redis-server; PostgreSQL for the ledger tests;
# promtool, from the prometheus package, for the metrics and alert rules; chromium for the dashboard),
# then builds and runs every test project. Tests start their own servers on loopback ports;
# set QUOTAPROXY_TEST_REDIS / QUOTAPROXY_TEST_POSTGRES to use servers of your own instead.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# promtool checks the /metrics output and the alert rules (Debian ships it in the prometheus package).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# The dashboard's browser tests drive Debian's chromium (with Playwright).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts installed servers; the tests run their own on free ports.
  $SUDO service redis-server stop >/dev/null 2>&1 || true
  $SUDO service prometheus stop >/dev/null 2>&1 || true
fi

dotnet build QuotaProxy.sln -c Release -nologo -v quiet
# One test project at a time (-m:1): on two cores, two projects' servers and load at once would only make
# the timing of the fault tests depend on the other project's.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
dotnet test QuotaProxy.sln -c Release --no-build -nologo -m:1 --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(awk '$1 == "Passed:" && $2 ~ /^[0-9]+$/ {s += $2} END {print s + 0}' "$log")
failed=$(awk '$1 == "Failed:" && $2 ~ /^[0-9]+$/ {s += $2} END {print s + 0}' "$log")
if [ "$failed" -gt 0 ]; then
  # CI keeps only the end of the output: repeat each failure (name, message, the top of its stack) here.
  echo "failures:"
  awk '/^  Failed [^ ]/ {n = 30} /^  Passed [^ ]/ {n = 0} n > 0 {print; n--}' "$log"
fi
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
