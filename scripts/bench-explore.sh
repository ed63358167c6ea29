#!/usr/bin/env bash
# The explorer and public links on a built warehouse: /api/sql latency of a typical aggregate
# (top artists of a year; 30 runs: p50, p95), p95 of a public dashboard page under 20
# concurrent clients (wrk, loopback, cold then warm), how long a runaway query (a cross join
# of fact_plays with itself) runs before explore.timeout stops it, and the peak RSS of the
# whole `magpie serve` process (/usr/bin/time -v) over all of it.
#
#   scripts/bench-explore.sh DATA_DIR [WRK_SECONDS]
#
# Build a warehouse first, e.g. `magpie --data-dir /tmp/b demo --plays 350000 --years 20 --no-serve`.
# The admin password of DATA_DIR is set to a throwaway one (its secrets folder is put back
# afterwards). Needs curl, wrk and python3.
set -euo pipefail
DATA="${1:?usage: bench-explore.sh DATA_DIR [WRK_SECONDS]}"
SECONDS_WRK="${2:-10}"
BIN="${MAGPIE_BIN:-${CARGO_TARGET_DIR:-target}/release/magpie}"
unset MAGPIE_BIN # magpie reads MAGPIE_* variables as config and would reject this one
PORT="${PORT:-18092}"
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
PASSWORD="bench-explore password $RANDOM"
echo "$PASSWORD" | "$BIN" --data-dir "$DATA" admin password >/dev/null

# The runaway query is stopped after 10 s here (30 s by default); public links unthrottled
# for the load.
MAGPIE_EXPLORE__TIMEOUT=10s MAGPIE_EXPLORE__PUBLIC_REQUESTS_PER_MINUTE=10000000 \
  /usr/bin/time -v -o "$OUT/time.log" "$BIN" --data-dir "$DATA" serve --bind 127.0.0.1 --port "$PORT" >"$OUT/serve.log" 2>&1 &
PID=$!
until curl -sf "$BASE/health" >/dev/null; do
  kill -0 "$PID" 2>/dev/null || { echo "magpie serve exited:" >&2; cat "$OUT/serve.log" >&2; exit 1; }
  sleep 0.05
done
JAR="$OUT/cookies"
curl -s -o /dev/null -c "$JAR" --data-urlencode "password=$PASSWORD" "$BASE/login"
CSRF=$(curl -s -b "$JAR" "$BASE/explore" | sed -n 's/.*data-csrf="\([0-9a-f]*\)".*/\1/p' | head -1)
[ -n "$CSRF" ] || { echo "could not log in" >&2; exit 1; }
api() { curl -s -b "$JAR" -H "X-CSRF-Token: $CSRF" -H 'Content-Type: application/json' -w '\n%{http_code} %{time_total}\n' "$BASE$1" -d "$2"; }

YEAR=$("$BIN" --data-dir "$DATA" sql --format csv "SELECT max(year) - 1 FROM marts.dim_date JOIN marts.fact_plays USING (date_id)" 2>/dev/null | tail -1)
QUERY="SELECT a.artist_name, count(*) AS plays FROM fact_plays f JOIN dim_artist a USING (artist_id) JOIN dim_date d USING (date_id) WHERE d.year = {{year}} GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
BODY=$(python3 -c "import json,sys; print(json.dumps({'sql': sys.argv[1], 'params': {'year': int(sys.argv[2])}, 'variables': {'year': {'type': 'number'}}}))" "$QUERY" "$YEAR")
: >"$OUT/api"
for _ in $(seq 30); do api /api/sql "$BODY" | tail -1 >>"$OUT/api"; done
grep -qv "^200 " "$OUT/api" && { echo "an /api/sql call failed:" >&2; api /api/sql "$BODY" >&2; }
python3 - "$OUT/api" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
bad = [c for c, _ in rows if c != "200"]
xs = sorted(float(t) * 1000 for _, t in rows)
q = lambda p: xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]
print(f"/api/sql, top 10 artists of a year: {len(xs)} runs, {len(bad)} not 200, first {float(rows[0][1]) * 1000:.1f} ms, p50 {q(50):.1f} ms, p95 {q(95):.1f} ms")
PY

# A share link of the built-in overview dashboard, made through the admin page.
SHARE=$(curl -s -b "$JAR" --data-urlencode "csrf=$CSRF" --data-urlencode "target=dashboard:listening-overview" "$BASE/admin/shares" \
  | sed -n 's/.*id="share-url">\([^<]*\)<.*/\1/p' | sed 's/&#x2f;/\//g' | head -1)
[ -n "$SHARE" ] || { echo "no share link was made" >&2; exit 1; }
PUBLIC="/public/${SHARE##*/public/}"
cold=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$BASE$PUBLIC")
echo "public dashboard, first (cold) request: ${cold#* }s (HTTP ${cold%% *})"
cat >"$OUT/p.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("requests %d, non-2xx %d, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n", summary.requests,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
LUA
echo "public dashboard under wrk, 20 connections, ${SECONDS_WRK} s: $(wrk -t2 -c20 -d"${SECONDS_WRK}s" -s "$OUT/p.lua" "$BASE$PUBLIC" | tail -1)"

RUNAWAY='{"sql": "SELECT sum(a.ms_played * b.ms_played) FROM fact_plays a, fact_plays b"}'
out=$(api /api/sql "$RUNAWAY" | tail -1)
echo "runaway cross join: HTTP ${out%% *} after ${out#* }s (explore.timeout 10s)"
SERVE_PID=$(pgrep -P "$PID" | head -1)
echo "RSS at the end: $(awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$SERVE_PID/status")"
stop_serve
grep -E "Maximum resident set size" "$OUT/time.log" | awk '{printf "peak RSS of magpie serve: %.1f MB\n", $6 / 1024}'
