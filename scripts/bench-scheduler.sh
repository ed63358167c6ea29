#!/usr/bin/env bash
# Scheduler overhead: CPU time and RSS of `magpie serve` over a demo warehouse with its flows
# scheduled (spotify-ingest every 30m, enrich every 10m, daily-etl at 03:00), idle for a while.
#
#   scripts/bench-scheduler.sh [SECONDS]    (default 600)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
BIN="${MAGPIE_BIN:-$CARGO_TARGET_DIR/release/magpie}"
unset MAGPIE_BIN # magpie reads MAGPIE_* variables as config and would reject this one
SECS="${1:-600}"
PORT="${PORT:-18790}"
DATA="$(mktemp -d)"
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
"$BIN" --data-dir "$DATA" demo --no-serve --plays 60000 >/dev/null 2>&1
"$BIN" --data-dir "$DATA" serve --port "$PORT" >"$DATA/serve.log" 2>&1 &
PID=$!
sleep 5
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); r0=$(rss)
min=$r0; max=$r0
for _ in $(seq 1 "$SECS"); do
  sleep 1
  r=$(rss); [ "$r" -lt "$min" ] && min=$r; [ "$r" -gt "$max" ] && max=$r
done
t1=$(ticks)
cpu=$(python3 -c "print(round(($t1 - $t0) / $hz, 2))")
pct=$(python3 -c "print(round(($t1 - $t0) / $hz / $SECS * 100, 3))")
echo "serve, $SECS s with the flows scheduled: CPU ${cpu} s (${pct} % of one core); RSS ${min}-${max} kB (start ${r0} kB)"
echo "VmHWM (peak RSS since start): $(awk '/VmHWM/ {print $2}' "/proc/$PID/status") kB"
curl -s "http://127.0.0.1:$PORT/flows?format=json" | python3 -c "
import json, sys
d = json.load(sys.stdin)
for r in d['runs']:
    print(f\"run {r['run_id']}: {r['flow']} {r['state']} {r['trigger']} {(r['duration_ms'] or 0) / 1000:.2f} s\")
"
