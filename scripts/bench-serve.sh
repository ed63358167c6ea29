#!/usr/bin/env bash
# Dashboard latency and memory: p50/p95 server latency of every page on a built warehouse,
# cold (the first request of each (page, range): a query-cache miss, 16 ranges per page) and
# warm (wrk on loopback, cache hit), and the peak RSS of the whole `magpie serve` process
# (/usr/bin/time -v) over the run.
#
#   [LISTENER=name|everyone] scripts/bench-serve.sh DATA_DIR [WARM_SECONDS]
#
# LISTENER measures that listener's pages (`?listener=`); `everyone` measures the everyone view
# of the pages that have one.
#
# Build a warehouse first, e.g. `magpie --data-dir /tmp/b demo --plays 350000 --years 20 --no-serve`.
# Needs curl, wrk and python3 (for the percentiles).
set -euo pipefail
DATA="${1:?usage: bench-serve.sh DATA_DIR [WARM_SECONDS]}"
WARM="${2:-5}"
Q="${LISTENER:+&listener=$LISTENER}"
BIN="${MAGPIE_BIN:-${CARGO_TARGET_DIR:-target}/release/magpie}"
unset MAGPIE_BIN # magpie reads MAGPIE_* variables as config and would reject this one
PORT="${PORT:-18089}"
BASE="http://127.0.0.1:$PORT"
OUT="$(mktemp -d)"
# PID is /usr/bin/time: stop magpie, its child, too (a server left running would answer the
# next run's requests from its warm cache).
trap 'pkill -INT -P "$PID" 2>/dev/null || true; kill "$PID" 2>/dev/null || true; rm -rf "$OUT"' EXIT

/usr/bin/time -v -o "$OUT/time.log" "$BIN" --data-dir "$DATA" serve --bind 127.0.0.1 --port "$PORT" >"$OUT/serve.log" 2>&1 &
PID=$!
START=$(date +%s.%N)
until curl -sf "$BASE/health" >/dev/null; do
  kill -0 "$PID" 2>/dev/null || { echo "magpie serve exited:" >&2; cat "$OUT/serve.log" >&2; exit 1; }
  sleep 0.02
done
printf 'start to serving: %.2f s\n' "$(echo "$(date +%s.%N) - $START" | bc)"

json() { curl -sf "$BASE$1$Q" | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"; }
# Ids for the detail pages, asked over a range none of the measured ones equals.
WIDE="range=custom&from=1900-01-01&to=2100-12-31"
LAST_YEAR=$(json "/?format=json&$WIDE" "d['frame']['bounds']['last'][:4]")
ARTIST=$(json "/top/artists?format=json&$WIDE" "d['rows'][0]['id']")
TRACK=$(json "/top/tracks?format=json&$WIDE" "d['rows'][0]['id']")
ALBUM=$(json "/top/albums?format=json&$WIDE" "d['rows'][0]['id']")
PAGES=(/ /top/artists /top/tracks /top/albums /timeline /patterns /genres /map /discoveries /streaks
       "/year/$LAST_YEAR" "/artist/$ARTIST" "/album/$ALBUM" "/track/$TRACK")
if [[ "${LISTENER:-}" == everyone ]]; then
  PAGES=(/ /top/artists /top/tracks /top/albums /timeline /genres /map)
fi
RANGES=(all 365d 90d 30d 7d year)
for y in $(seq $((LAST_YEAR - 9)) "$LAST_YEAR"); do RANGES+=("$y"); done

cat >"$OUT/p95.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("%.2f %.2f %.0f\n", latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    summary.requests / (summary.duration / 1e6)))
end
LUA

printf '%-34s %10s %10s %10s %10s %10s %9s\n' page cold_p50 cold_p95 cold_max warm_p50 warm_p95 warm_rps
for page in "${PAGES[@]}"; do
  : >"$OUT/cold"
  urls=()
  if [[ "$page" == /year/* ]]; then
    for y in $(seq $((LAST_YEAR - 9)) "$LAST_YEAR"); do urls+=("$BASE/year/$y?${Q#&}"); done
  else
    for range in "${RANGES[@]}"; do urls+=("$BASE$page?range=$range$Q"); done
  fi
  for url in "${urls[@]}"; do
    code_time=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$url")
    [[ "${code_time%% *}" == 200 ]] || { echo "$url -> ${code_time%% *}" >&2; exit 1; }
    echo "${code_time#* }" >>"$OUT/cold"
  done
  read -r c50 c95 cmax < <(python3 -c "
import sys
xs = sorted(float(x) * 1000 for x in open('$OUT/cold'))
q = lambda p: xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]
print(f'{q(50):.1f} {q(95):.1f} {xs[-1]:.1f}')")
  read -r w50 w95 rps < <(wrk -t1 -c4 -d"${WARM}s" -s "$OUT/p95.lua" "$BASE$page?${Q#&}" | tail -1)
  printf '%-34s %7s ms %7s ms %7s ms %7s ms %7s ms %9s\n' "${page:0:34}" "$c50" "$c95" "$cmax" "$w50" "$w95" "$rps"
done
pkill -INT -P "$PID"  # magpie, the child of time: a graceful shutdown
wait "$PID" || true
grep -E "Maximum resident set size" "$OUT/time.log" | awk '{printf "peak RSS of magpie serve: %.1f MB\n", $6 / 1024}'
