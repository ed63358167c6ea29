#!/usr/bin/env bash
# The server under load: wrk with 50 connections over 8 pages x 16 ranges of a built warehouse
# for DURATION seconds (every (page, range) a cache miss at first), then 20 logins at once
# while pages keep being asked for. Prints errors (non-2xx answers and socket errors), p50 and
# p99 of the page load, the login cost, page latency during the logins, and the peak RSS of the
# whole `magpie serve` process (/usr/bin/time -v).
#
#   scripts/bench-load.sh DATA_DIR [DURATION]
#
# Build a warehouse first, e.g. `magpie --data-dir /tmp/b demo --plays 350000 --years 20 --no-serve`.
# The admin password of DATA_DIR is set to a throwaway one for the login part (in a copy of
# its secrets folder, put back afterwards). Needs curl, wrk and python3.
set -euo pipefail
DATA="${1:?usage: bench-load.sh DATA_DIR [DURATION]}"
DURATION="${2:-10}"
BIN="${MAGPIE_BIN:-${CARGO_TARGET_DIR:-target}/release/magpie}"
unset MAGPIE_BIN # magpie reads MAGPIE_* variables as config and would reject this one
PORT="${PORT:-18090}"
BASE="http://127.0.0.1:$PORT"
OUT="$(mktemp -d)"
SECRETS="$DATA/secrets"
restore_secrets() {
  rm -rf "$SECRETS"
  if [ -d "$OUT/secrets.saved" ]; then mv "$OUT/secrets.saved" "$SECRETS"; fi
}
stop_serve() { pkill -INT -P "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap 'stop_serve; restore_secrets; rm -rf "$OUT"' EXIT
if [ -d "$SECRETS" ]; then cp -a "$SECRETS" "$OUT/secrets.saved"; fi
PASSWORD="bench-load password $RANDOM"
echo "$PASSWORD" | "$BIN" --data-dir "$DATA" admin password >/dev/null

/usr/bin/time -v -o "$OUT/time.log" "$BIN" --data-dir "$DATA" serve --bind 127.0.0.1 --port "$PORT" >"$OUT/serve.log" 2>&1 &
PID=$!
until curl -sf "$BASE/health" >/dev/null; do
  kill -0 "$PID" 2>/dev/null || { echo "magpie serve exited:" >&2; cat "$OUT/serve.log" >&2; exit 1; }
  sleep 0.05
done

LAST_YEAR=$(curl -sf "$BASE/?format=json&range=all" | python3 -c "import json,sys; print(json.load(sys.stdin)['frame']['bounds']['last'][:4])")
PAGES=(/ /top/artists /top/tracks /top/albums /timeline /patterns /genres /map)
RANGES=(all 365d 90d 30d 7d year)
for y in $(seq $((LAST_YEAR - 9)) "$LAST_YEAR"); do RANGES+=("$y"); done
for page in "${PAGES[@]}"; do
  for range in "${RANGES[@]}"; do echo "$page?range=$range"; done
done >"$OUT/paths"
echo "$(wc -l <"$OUT/paths") URLs: ${#PAGES[@]} pages x ${#RANGES[@]} ranges"

cat >"$OUT/load.lua" <<LUA
local paths = {}
for line in io.lines("$OUT/paths") do paths[#paths + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n * 7919) % #paths + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests %d, non-2xx %d, socket errors %d, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
LUA
echo "== load: wrk, 50 connections, ${DURATION} s"
wrk -t2 -c50 -d"${DURATION}s" --timeout 10s -s "$OUT/load.lua" "$BASE" | tail -1
SERVE_PID=$(pgrep -P "$PID" | head -1)
echo "RSS after the load: $(awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$SERVE_PID/status")"

echo "== logins: one alone, then 20 at once while pages are asked for"
login() {
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --data-urlencode "password=$PASSWORD" "$BASE/login"
}
for _ in 1 2 3; do login; done | awk '{ if ($1 != 303) { print "login failed: " $1 > "/dev/stderr"; exit 1 } printf "one login: %.0f ms\n", $2 * 1000 }'
(for _ in $(seq 20); do login & done; wait) >"$OUT/logins" &
LOGINS=$!
: >"$OUT/during"
while kill -0 "$LOGINS" 2>/dev/null; do
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$BASE/top/artists?range=all" >>"$OUT/during"
done
wait "$LOGINS"
python3 - "$OUT/logins" "$OUT/during" <<'PY'
import sys
logins = [l.split() for l in open(sys.argv[1]) if l.strip()]
during = [l.split() for l in open(sys.argv[2]) if l.strip()]
ok = sum(1 for c, _ in logins if c == "303")
times = sorted(float(t) * 1000 for _, t in logins)
print(f"20 logins at once: {ok} succeeded, the last done after {times[-1]:.0f} ms (median {times[len(times) // 2]:.0f} ms)")
pages = sorted(float(t) * 1000 for _, t in during)
bad = sum(1 for c, _ in during if c != "200")
print(f"pages meanwhile: {len(pages)} answered, {bad} not 200, median {pages[len(pages) // 2]:.1f} ms, max {pages[-1]:.1f} ms")
PY
stop_serve
grep -E "Maximum resident set size" "$OUT/time.log" | awk '{printf "peak RSS of magpie serve: %.1f MB\n", $6 / 1024}'
