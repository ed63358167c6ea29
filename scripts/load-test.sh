#!/usr/bin/env bash
# The server under load while a build runs (issue 27): wrk with 50 connections on every
# built-in page, a public dashboard link and the ListenBrainz submit endpoint, one after the
# other for DURATION seconds each, while the daily-etl flow (the model build) is started again
# and again through the admin's "Run now". Prints per endpoint: requests, errors (non-2xx and
# socket errors), p50/p99 and the peak RSS of `magpie serve` during that endpoint's run; then a
# slow-client and many-idle-connections test (python3 sockets) that measures the answers
# other clients get meanwhile; then the peak RSS of the whole run (/usr/bin/time -v).
#
#   scripts/load-test.sh DATA_DIR [DURATION]        (default 5 s per endpoint)
#
# DATA_DIR holds a built warehouse, e.g.
# `magpie --data-dir /tmp/b350 demo --plays 350000 --years 20 --no-serve`. The admin password
# is set to a throwaway one and a listen token and a share link are made (in a copy of the
# secrets folder, put back afterwards); public links' per-address limit is lifted for the
# test, which comes from one address. Exits non-zero when any request failed.
# Needs curl, wrk and python3. The table goes to stdout and to $OUT_TSV when set.
set -euo pipefail
DATA="${1:?usage: load-test.sh DATA_DIR [DURATION]}"
DURATION="${2:-5}"
BIN="${MAGPIE_BIN:-${CARGO_TARGET_DIR:-target}/release/magpie}"
unset MAGPIE_BIN # magpie reads MAGPIE_* variables as config and would reject this one
PORT="${PORT:-18091}"
BASE="http://127.0.0.1:$PORT"
OUT="$(mktemp -d)"
SECRETS="$DATA/secrets"
restore_secrets() {
  rm -rf "$SECRETS"
  if [ -d "$OUT/secrets.saved" ]; then mv "$OUT/secrets.saved" "$SECRETS"; fi
}
stop_serve() {
  if [ -n "${BUILDER:-}" ]; then kill "$BUILDER" 2>/dev/null || true; fi
  if [ -n "${PID:-}" ]; then
    pkill -INT -P "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
}
trap 'stop_serve; restore_secrets; rm -rf "$OUT"' EXIT
if [ -d "$SECRETS" ]; then cp -a "$SECRETS" "$OUT/secrets.saved"; fi
PASSWORD="load-test password $RANDOM"
echo "$PASSWORD" | "$BIN" --data-dir "$DATA" admin password >/dev/null
TOKEN="$("$BIN" --data-dir "$DATA" listener token create --listener loadtest --label load --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
SHARE_URL="$("$BIN" --data-dir "$DATA" share create --dashboard listening-overview | grep -o '/public/[A-Za-z0-9_-]*' | head -1)"

# Public links allow 120 requests a minute per client address; the test is one address.
export MAGPIE_EXPLORE__PUBLIC_REQUESTS_PER_MINUTE=100000000
/usr/bin/time -v -o "$OUT/time.log" "$BIN" --data-dir "$DATA" serve --bind 127.0.0.1 --port "$PORT" >"$OUT/serve.log" 2>&1 &
PID=$!
until curl -sf "$BASE/health" >/dev/null; do
  kill -0 "$PID" 2>/dev/null || { echo "magpie serve exited:" >&2; cat "$OUT/serve.log" >&2; exit 1; }
  sleep 0.05
done
SERVE_PID=$(pgrep -P "$PID" | head -1)

# The admin session that keeps a build running: log in, read the CSRF token, "Run now".
JAR="$OUT/cookies"
curl -s -o /dev/null -c "$JAR" --data-urlencode "password=$PASSWORD" "$BASE/login"
CSRF="$(curl -s -b "$JAR" "$BASE/flows" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//')"
[ -n "$CSRF" ] || { echo "could not log in as the admin" >&2; exit 1; }
(
  while true; do
    curl -s -o /dev/null -b "$JAR" -H "Origin: $BASE" --data-urlencode "csrf=$CSRF" "$BASE/flows/daily-etl/run"
    sleep 1
  done
) &
BUILDER=$!
STARTED_AT=$(date +%s)

LAST_YEAR=$(curl -sf "$BASE/?format=json&range=all" | python3 -c "import json,sys; print(json.load(sys.stdin)['frame']['bounds']['last'][:4])")
ARTIST=$(curl -sf "$BASE/top/artists?format=json&range=all" | python3 -c "
import json, sys
doc = json.load(sys.stdin)
def find(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k in ('artist_id', 'id') and isinstance(x, str): return x
            r = find(x)
            if r: return r
    if isinstance(v, list):
        for x in v:
            r = find(x)
            if r: return r
print(find(doc) or '')")
RANGES=(all 365d 90d 30d 7d year)
for y in $(seq $((LAST_YEAR - 9)) "$LAST_YEAR"); do RANGES+=("$y"); done

ENDPOINTS=(/ /top/artists /top/tracks /top/albums /timeline /patterns /genres /map /discoveries
  /streaks /year /completeness /enrichment /flows /status /market /questions /dashboards
  /d/listening-overview "$SHARE_URL")
[ -n "$ARTIST" ] && ENDPOINTS+=("/artist/$ARTIST")

cat >"$OUT/get.lua" <<'LUA'
local paths = {}
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n * 7919) % #paths + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("%d\t%d\t%d\t%.1f\t%.1f\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
cat >"$OUT/submit.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"listen_type":"single","payload":[{"listened_at":%d,"track_metadata":{"artist_name":"Load Test","track_name":"Track %d"}}]}', 1700000000 + n * 7, n)
  return wrk.format("POST", "/1/submit-listens", {["Authorization"] = "Token $TOKEN", ["Content-Type"] = "application/json"}, body)
end
LUA
sed -n '/^done = /,$p' "$OUT/get.lua" >>"$OUT/submit.lua"

# Peak RSS of the server while one endpoint is loaded (sampled every 50 ms).
sample_rss() {
  local peak=0 rss
  while [ -e "$OUT/sampling" ]; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVE_PID/status" 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    sleep 0.05
  done
  echo "$peak" >"$OUT/peak"
}

run_wrk() { # NAME SCRIPT
  touch "$OUT/sampling"
  sample_rss &
  local sampler=$!
  local line
  line=$(PATHS="$OUT/paths" wrk -t2 -c50 -d"${DURATION}s" --timeout 10s -s "$2" "$BASE" | tail -1)
  rm -f "$OUT/sampling"
  wait "$sampler"
  printf '%s\t%s\t%.1f\n' "$1" "$line" "$(awk '{print $1 / 1024}' "$OUT/peak")" | tee -a "$OUT/table"
}

echo "== load: wrk, 50 connections, ${DURATION} s per endpoint, daily-etl (enrich, build, snapshot, backup) run back to back meanwhile"
printf 'endpoint\trequests\tnon_2xx\tsocket_errors\tp50_ms\tp99_ms\tpeak_rss_mb\n' | tee "$OUT/table"
for endpoint in "${ENDPOINTS[@]}"; do
  case "$endpoint" in
    /|/top/*|/timeline|/patterns|/genres|/map|/discoveries|/streaks|/artist/*)
      for r in "${RANGES[@]}"; do echo "$endpoint?range=$r"; done >"$OUT/paths" ;;
    *) echo "$endpoint" >"$OUT/paths" ;;
  esac
  run_wrk "${endpoint/#\/public\/*//public/TOKEN}" "$OUT/get.lua"
done
run_wrk "POST /1/submit-listens" "$OUT/submit.lua"
kill "$BUILDER" 2>/dev/null || true
BUILDER=""

echo "== slow clients and idle connections: 300 idle sockets and 50 sending a header byte a second, while another client asks for pages"
SLOW_OK=1
if python3 - "$PORT" <<'PY'
import socket, sys, threading, time, urllib.request
port = int(sys.argv[1])
idle, slow = [], []
for _ in range(300):
    s = socket.create_connection(("127.0.0.1", port)); idle.append(s)
for _ in range(50):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n"); slow.append(s)
stop = False
def drip():
    while not stop:
        for s in slow:
            try: s.sendall(b"X")
            except OSError: pass
        time.sleep(1)
threading.Thread(target=drip, daemon=True).start()
times, bad = [], 0
end = time.time() + 8
while time.time() < end:
    t = time.time()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/top/artists?range=90d", timeout=10) as r:
            bad += r.status != 200; r.read()
    except Exception:
        bad += 1
    times.append((time.time() - t) * 1000)
stop = True
times.sort()
print(f"other client meanwhile: {len(times)} requests, {bad} failed, median {times[len(times)//2]:.1f} ms, max {times[-1]:.1f} ms")
sys.exit(1 if bad else 0)
PY
then SLOW_OK=0; fi
STARTED="$(date -u -d "@$STARTED_AT" '+%Y-%m-%d %H:%M:%S')"
stop_serve
PID=""
"$BIN" --data-dir "$DATA" runs --flow daily-etl --limit 1000 2>/dev/null >"$OUT/runs" || true
echo "daily-etl builds completed during the load: $(awk -v s="$STARTED" '$2 == "daily-etl" && $3 == "Completed" && ($5" "$6) >= s' "$OUT/runs" | wc -l) (the others were skipped: a second trigger while one runs)"
PEAK=$(awk '/Maximum resident set size/ {printf "%.1f", $6 / 1024}' "$OUT/time.log")
echo "peak RSS of magpie serve over the whole test: $PEAK MB"
if [ -n "${OUT_TSV:-}" ]; then cp "$OUT/table" "$OUT_TSV"; fi
ERRORS=$(awk -F'\t' 'NR > 1 { e += $3 + $4 } END { print e + 0 }' "$OUT/table")
echo "errors in all: $ERRORS"
[ "$ERRORS" = 0 ] && [ "$SLOW_OK" = 0 ]
