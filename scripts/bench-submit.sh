#!/usr/bin/env bash
# Listens submitted to `magpie serve` over loopback: ListenBrainz single listens (wrk, 8
# connections, every request a different listen) and 1,000-listen import batches (4
# connections), for DURATION seconds each. Prints requests and listens per second, errors, p50
# and p99, the listens stored (counted with SQL afterwards), the RSS of `magpie serve` after
# each phase and its peak (/usr/bin/time -v), and how long a submitted listen takes to reach the
# overview after the next build (`magpie build`, then the page).
#
#   scripts/bench-submit.sh DATA_DIR [DURATION]
#
# DATA_DIR is a built warehouse, e.g. `magpie --data-dir /tmp/b demo --plays 350000 --years 20
# --no-serve`; the listens go to the listener `bench` (delete them after with
# `DELETE FROM raw.listen_events WHERE source_kind = 'listenbrainz_api'`, or use a copy).
# Needs curl, wrk and python3.
set -euo pipefail
DATA="${1:?usage: bench-submit.sh DATA_DIR [DURATION]}"
DURATION="${2:-10}"
BIN="${MAGPIE_BIN:-${CARGO_TARGET_DIR:-target}/release/magpie}"
unset MAGPIE_BIN # magpie reads MAGPIE_* variables as config and would reject this one
PORT="${PORT:-18091}"
BASE="http://127.0.0.1:$PORT"
OUT="$(mktemp -d)"
stop_serve() { pkill -INT -P "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap 'stop_serve; rm -rf "$OUT"' EXIT

TOKEN_JSON=$("$BIN" --data-dir "$DATA" listener token create --listener bench --label bench-submit --json)
TOKEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$TOKEN_JSON")
TOKEN_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$TOKEN_JSON")

/usr/bin/time -v -o "$OUT/time.log" "$BIN" --data-dir "$DATA" serve --bind 127.0.0.1 --port "$PORT" >"$OUT/serve.log" 2>&1 &
PID=$!
until curl -sf "$BASE/health" >/dev/null; do
  kill -0 "$PID" 2>/dev/null || { echo "magpie serve exited:" >&2; cat "$OUT/serve.log" >&2; exit 1; }
  sleep 0.05
done
SERVE_PID=$(pgrep -P "$PID" | head -1)
rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$SERVE_PID/status"; }
echo "RSS before: $(rss)"

# Each request its own listens: a per-thread counter makes the times and titles differ.
cat >"$OUT/submit.lua" <<LUA
local batch = tonumber(os.getenv("BATCH") or "1")
local counter = 0
local thread_id = 0
local threads = {}
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end
request = function()
  local parts = {}
  for i = 1, batch do
    counter = counter + 1
    local ts = 1500000000 + tid * 100000000 + counter * 30
    parts[i] = string.format('{"listened_at": %d, "track_metadata": {"artist_name": "Bench Artist %d", "track_name": "Bench Track %d-%d", "additional_info": {"duration_ms": 200000, "submission_client": "bench-submit"}}}', ts, counter % 97, tid, counter)
  end
  local kind = batch == 1 and "single" or "import"
  local body = '{"listen_type": "' .. kind .. '", "payload": [' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/1/submit-listens", {["Authorization"] = "Token $TOKEN"}, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format("requests %d (%.0f/s), listens %.0f/s, non-2xx %d, socket errors %d, p50 %.1f ms, p99 %.1f ms\n",
    summary.requests, summary.requests / secs, summary.requests * batch / secs, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
echo "== single listens: wrk, 8 connections, ${DURATION} s"
BATCH=1 wrk -t2 -c8 -d"${DURATION}s" --timeout 10s -s "$OUT/submit.lua" "$BASE" | tail -1
echo "RSS after: $(rss)"
echo "== import batches of 1,000 listens: wrk, 4 connections, ${DURATION} s"
BATCH=1000 wrk -t2 -c4 -d"${DURATION}s" --timeout 30s -s "$OUT/submit.lua" "$BASE" | tail -1
echo "RSS after: $(rss)"

# A listen just played by the pages' listener, then the build, then the overview.
DEFAULT_JSON=$("$BIN" --data-dir "$DATA" listener token create --listener default --label bench-submit --json)
DEFAULT_TOKEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$DEFAULT_JSON")
DEFAULT_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$DEFAULT_JSON")
NOW=$(date +%s)
curl -sf -H "Authorization: Token $DEFAULT_TOKEN" --data "{\"listen_type\": \"single\", \"payload\": [{\"listened_at\": $NOW, \"track_metadata\": {\"artist_name\": \"Freshly Played\", \"track_name\": \"Just Now\", \"additional_info\": {\"duration_ms\": 200000}}}]}" "$BASE/1/submit-listens" >/dev/null
stop_serve
echo "peak RSS of magpie serve: $(awk -F': ' '/Maximum resident/ {printf "%.1f MB", $2 / 1024}' "$OUT/time.log")"
"$BIN" --data-dir "$DATA" sql --format csv "SELECT count(*) AS stored FROM raw.listen_events e JOIN raw.import_batches b USING (batch_id) WHERE b.source_path = 'token:$TOKEN_ID'"
START=$(date +%s.%N)
"$BIN" --data-dir "$DATA" build >"$OUT/build.log" 2>&1
END=$(date +%s.%N)
"$BIN" --data-dir "$DATA" serve --bind 127.0.0.1 --port "$PORT" >"$OUT/serve2.log" 2>&1 &
PID=$!
until curl -sf "$BASE/health" >/dev/null; do sleep 0.02; done
TODAY=$(date -u +%Y-%m-%d)
curl -sf "$BASE/?range=7d&format=json" | python3 -c "
import json, sys
page = json.load(sys.stdin)
last = page['frame']['bounds']['last']
print(f'the overview after the build: last day with plays {last}, plays in the last 7 days {page[\"totals\"][\"plays\"]}')
sys.exit(0 if last[:10] >= '$TODAY'[:10] or page['totals']['plays'] >= 1 else 1)"
python3 -c "print(f'from submission to the overview: the next build, {float($END) - float($START):.1f} s wall (magpie build, which publishes the pages\' snapshot)')"
"$BIN" --data-dir "$DATA" listener token revoke "$TOKEN_ID" >/dev/null
"$BIN" --data-dir "$DATA" listener token revoke "$DEFAULT_ID" >/dev/null
