#!/usr/bin/env bash
# A day of the worked example, drawn from the ledger: docs/usage-day.svg.
#
# Runs the real proxy with config/vendor-250-per-day.json (250 calls shared by prod, test, dev and e2e) on
# a Redis and a PostgreSQL of its own, sends a day's traffic through it, reads the ledger's rows back
# (usage_events) and draws each environment's credits used over the day against its allocation, with the
# pool's limit and every 429 the proxy answered. So that a real run takes one minute rather than a day, the
# pool's window is one minute (Window=1m) and each 2.5 s of it stands for an hour; nothing else is changed.
# The day: e2e runs its nightly suite (01:00-03:00: 16 calls, lowest priority, it gets its allocation of 10);
# test works through the morning (08:00-12:00: 40 calls, 10 above its allocation, borrowed from dev's idle
# share); dev is quiet (8 calls in the afternoon, inside its guarantee); prod serves 10 an hour from 07:00 and
# spikes 18:00-21:00 (120 calls): it borrows past its allocation of 180 up to what is left, short of the 2
# credits of dev's guarantee that dev has not used, which nobody else may take.
# Usage: bash scripts/usage-picture.sh [output, default docs/usage-day.svg]
# Needs: redis-server, PostgreSQL's initdb/pg_ctl and psql, curl, awk, the .NET SDK.
set -euo pipefail
[ -n "${TRACE:-}" ] && set -x
cd "$(dirname "$0")/.."
out=${1:-docs/usage-day.svg}
for tool in redis-server redis-cli initdb pg_ctl psql curl awk; do
  command -v "$tool" >/dev/null || { echo "usage-picture: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d /tmp/quotaproxy-usage-picture.XXXXXX)
chmod 755 "$work"
pids=()
source bench/lib.sh
trap cleanup_work EXIT
build_proxy
start_redis
start_postgres
psql_q postgres "CREATE DATABASE ledger" >/dev/null

PORT=$(free_port); VENDOR_PORT=$(free_port)
(mkdir -p "$work/home" && cd "$work/home" && VENDOR_AUTHORIZATION='Bearer example' exec dotnet "$PROXY_DLL" \
    --config "$OLDPWD/config/vendor-250-per-day.json" --Urls="http://127.0.0.1:$PORT" \
    --StandInVendor:Url="http://127.0.0.1:$VENDOR_PORT" --ReverseProxy:Clusters:vendor:Destinations:api:Address="http://127.0.0.1:$VENDOR_PORT/" \
    --Quota:Store:Redis="127.0.0.1:$REDIS_PORT" --Quota:Ledger:ConnectionString="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=ledger" \
    --Quota:Pools:vendor-daily:Window=1m >"$work/proxy.log" 2>&1) & pids+=($!)
for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.1; done
curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" || { echo "usage-picture: the proxy never became ready" >&2; cat "$work/proxy.log" >&2; exit 1; }

# Calls per hour, by environment: "tenant first-hour last-hour calls-per-hour".
schedule='e2e 1 2 8
prod 7 17 10
test 8 11 10
dev 14 15 4
prod 18 20 40'
calls_in_hour() { awk -v h="$1" -v t="$2" '$1 == t && h >= $2 && h <= $3 {n += $4} END {print n + 0}' <<<"$schedule"; }

# The day starts at the next minute (the window's start: Redis and this script read the same clock).
now=$(date +%s.%N)
start=$(awk -v n="$now" 'BEGIN {printf "%d", (int(n / 60) + 1) * 60}')
echo "usage-picture: the day starts at $(date -u -d "@$start" +%H:%M:%S) UTC (in $(awk -v s="$start" -v n="$now" 'BEGIN {printf "%.0f", s - n}') s) and lasts 60 s"
sleep "$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN {printf "%.3f", s - n}')"
: >"$work/calls"
for hour in $(seq 0 23); do
  # The hour's calls, the environments interleaved, spread over its 2.5 s.
  queue=()
  for tenant in prod test dev e2e; do
    for _ in $(seq 1 "$(calls_in_hour "$hour" "$tenant")"); do queue+=("$tenant"); done
  done
  mapfile -t queue < <(printf '%s\n' "${queue[@]}" | awk 'NF' | shuf --random-source=<(yes "$hour"))
  for i in "${!queue[@]}"; do
    at=$(awk -v s="$start" -v h="$hour" -v i="$i" -v n="${#queue[@]}" 'BEGIN {printf "%.3f", s + (h + i / n) * 2.5}')
    wait_for=$(awk -v a="$at" -v n="$(date +%s.%N)" 'BEGIN {d = a - n; printf "%.3f", (d > 0 ? d : 0)}')
    sleep "$wait_for"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Api-Key: example-${queue[$i]}-key" "http://127.0.0.1:$PORT/v1/downloads/report.csv")
    echo "$(date +%s.%N) ${queue[$i]} $code" >>"$work/calls"
  done
done
sleep "$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN {d = s + 60 - n; printf "%.3f", (d > 0 ? d : 0)}')"

admitted=$(awk '$3 == 200' "$work/calls" | wc -l)
if awk '$3 != 200 && $3 != 429 {bad = 1} END {exit !bad}' "$work/calls"; then
  echo "usage-picture: a call got neither 200 nor 429:" >&2; awk '$3 != 200 && $3 != 429' "$work/calls" >&2; exit 1
fi
# The ledger has every admitted call once the flusher has caught up.
sql="SELECT count(*) FROM usage_events WHERE pool = 'vendor-daily' AND kind = 'debit'"
for _ in $(seq 1 100); do [ "$(psql_q ledger "$sql")" = "$admitted" ] && break; sleep 0.2; done
billed=$(psql_q ledger "$sql")
[ "$billed" = "$admitted" ] || { echo "usage-picture: the ledger holds $billed debits for $admitted admitted calls" >&2; exit 1; }
psql_q ledger "SELECT extract(epoch FROM occurred_at), tenant, credits FROM usage_events WHERE pool = 'vendor-daily' ORDER BY occurred_at, event_id" | tr '|' ' ' >"$work/ledger"

echo "usage-picture: per environment, calls sent / admitted (ledger) / 429:"
for tenant in prod test dev e2e; do
  printf '  %-5s %4d / %4d / %4d\n' "$tenant" "$(awk -v t="$tenant" '$2 == t' "$work/calls" | wc -l)" \
    "$(awk -v t="$tenant" '$2 == t {s += $3} END {print s + 0}' "$work/ledger")" "$(awk -v t="$tenant" '$2 == t && $3 == 429' "$work/calls" | wc -l)"
done

# The picture: credits used over the day per environment (steps), allocations dashed, the pool's total and
# limit in black, each 429 as a tick under the axis in its environment's colour.
awk -v start="$start" -v generated="$(date -u +%Y-%m-%dT%H:%MZ)" '
  BEGIN {
    W = 960; H = 520; L = 70; R = 190; T = 60; B = 80; ymax = 260
    split("prod test dev e2e", names, " ")
    colour["prod"] = "#1f5fa8"; colour["test"] = "#d9730d"; colour["dev"] = "#2e8540"; colour["e2e"] = "#b3261e"
    allocation["prod"] = 180; allocation["test"] = 30; allocation["dev"] = 30; allocation["e2e"] = 10
  }
  function x(hour) { return L + hour / 24 * (W - L - R) }
  function y(credits) { return H - B - credits / ymax * (H - T - B) }
  function hour_of(t) { h = (t - start) / 60 * 24; return h < 0 ? 0 : (h > 24 ? 24 : h) }
  FILENAME == ARGV[1] { t = hour_of($1); used[$2] += $3; total += $3; n[$2]++; px[$2, n[$2]] = t; py[$2, n[$2]] = used[$2]
                        m++; tx[m] = t; ty[m] = total; next }
  $3 == 429 { r++; rx[r] = hour_of($1); rt[r] = $2; rejected[$2]++ }
  END {
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"13\" role=\"img\" aria-labelledby=\"title\">\n", W, H, W, H
    printf "<title id=\"title\">A day of the worked example: credits used per environment against allocations, from the ledger</title>\n"
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
    printf "<text x=\"%d\" y=\"28\" font-size=\"17\" font-weight=\"bold\">250 vendor calls a day, shared by four environments</text>\n", L
    printf "<text x=\"%d\" y=\"46\" fill=\"#555\">credits used since the window opened, from the ledger (usage_events); black: the pool; dashed: the pool limit and each allocation</text>\n", L
    for (c = 0; c <= 250; c += 50) {
      printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>\n", L, W - R, y(c), y(c)
      printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%d</text>\n", L - 8, y(c) + 4, c
    }
    for (h = 0; h <= 24; h += 3) {
      printf "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#e6e6e6\"/>\n", x(h), x(h), T, H - B
      printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%02d:00</text>\n", x(h), H - B + 36, h
    }
    printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", L, W - R, y(0), y(0)
    printf "<text x=\"%d\" y=\"%d\" fill=\"#555\">429 answers (one tick each)</text>\n", L, H - B + 56
    printf "<text x=\"%d\" y=\"%d\" fill=\"#777\" font-size=\"11\">scripts/usage-picture.sh, %s: one real run with the pool window at 1 minute, 2.5 s standing for an hour</text>\n", L, H - 8, generated
    # The pool: its limit and everything used.
    printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" stroke-dasharray=\"6 4\"/>\n", L, W - R, y(250), y(250)
    path = sprintf("M%.1f %.1f", x(0), y(0)); last = 0
    for (i = 1; i <= m; i++) { path = path sprintf(" H%.1f V%.1f", x(tx[i]), y(ty[i])) }
    printf "<path d=\"%s H%.1f\" fill=\"none\" stroke=\"#000\" stroke-width=\"1.5\"/>\n", path, x(24)
    printf "<text x=\"%d\" y=\"%.1f\" font-weight=\"bold\">pool: %d of 250</text>\n", W - R + 10, y(250) + 4, total
    for (k = 1; k <= 4; k++) {
      t = names[k]; c = colour[t]
      printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"3 4\" opacity=\"0.8\"/>\n", L, W - R, y(allocation[t]), y(allocation[t]), c
      path = sprintf("M%.1f %.1f", x(0), y(0))
      for (i = 1; i <= n[t]; i++) { path = path sprintf(" H%.1f V%.1f", x(px[t, i]), y(py[t, i])) }
      printf "<path d=\"%s H%.1f\" fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"/>\n", path, x(24), c
      label_y[k] = y(used[t] + 0)
    }
    # Labels at the right edge, from the lowest line up, nudged apart where lines end close together.
    for (k = 1; k <= 4; k++) order[k] = k
    for (a = 1; a <= 4; a++) for (b = a + 1; b <= 4; b++) if (label_y[order[b]] > label_y[order[a]]) { s = order[a]; order[a] = order[b]; order[b] = s }
    previous = y(0) + 16
    for (a = 1; a <= 4; a++) {
      k = order[a]; t = names[k]; ly = label_y[k] > previous - 30 ? previous - 30 : label_y[k]; previous = ly
      printf "<text x=\"%d\" y=\"%.1f\" fill=\"%s\" font-weight=\"bold\">%s: %d</text>\n", W - R + 10, ly + 4, colour[t], t, used[t]
      printf "<text x=\"%d\" y=\"%.1f\" fill=\"%s\" font-size=\"11\">allocation %d, %d × 429</text>\n", W - R + 10, ly + 17, colour[t], allocation[t], rejected[t]
    }
    for (i = 1; i <= r; i++) {
      row = (rt[i] == "prod" ? 0 : rt[i] == "test" ? 1 : rt[i] == "dev" ? 2 : 3)
      printf "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>\n", x(rx[i]), x(rx[i]), y(0) + 6 + row * 4, y(0) + 9 + row * 4, colour[rt[i]]
    }
    printf "</svg>\n"
  }' "$work/ledger" "$work/calls" >"$out"
echo "usage-picture: wrote $out"
