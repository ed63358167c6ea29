#!/usr/bin/env bash
# Market ingest: `magpie market run` against the fake Deribit (its own process) serving the
# recorded instrument lists grown to 774 options per currency (1,548, as in production) plus
# the perpetuals; once every channel is subscribed the fake sends MESSAGES notifications per
# data connection at full speed (half quotes, half tickers built from a recorded ticker).
# Prints messages/s (wall, and per CPU-second of the whole magpie process), peak RSS from
# /usr/bin/time -v, and bytes per row on disk per dataset.
#
#   scripts/bench-market.sh [MESSAGES_PER_CONNECTION]    (default 500000; 2 data connections)
#   RATE=N scripts/bench-market.sh ...                    (N messages a second per connection)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
CAPTURE="${CAPTURE:-$ROOT/../shared/realdata/deribit/cryptofeed_2021-07-22}"
MESSAGES="${1:-500000}"
RATE="${RATE:-0}"   # messages a second per connection; 0 = as fast as magpie reads
cargo build --release --quiet -p magpie -p magpie-fakes --example fake_deribit
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"; echo "work folder $WORK" >&2
trap 'kill $FAKE $MAGPIE 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
"$BIN/examples/fake_deribit" "$CAPTURE" --per-currency 774 --messages "$MESSAGES" --rate "$RATE" >"$WORK/fake.log" 2>&1 &
FAKE=$!
until grep -q '^url ' "$WORK/fake.log"; do sleep 0.1; done
URL=$(awk '/^url / {print $2}' "$WORK/fake.log")
cat >"$WORK/magpie.toml" <<TOML
[market]
url = "$URL"
connections = 2
subscribes_per_second = 10
${EXTRA_TOML:-}
TOML
${MALLOC_ENV:-} /usr/bin/time -v "$BIN/magpie" --data-dir "$WORK/data" --config "$WORK/magpie.toml" \
  market run >"$WORK/magpie.out" 2>"$WORK/time.txt" &
MAGPIE=$!
until grep -q '^subscribed ' "$WORK/fake.log"; do sleep 0.05; done
PID=$(pgrep -P $MAGPIE)
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
t0=$(ticks); rss0=$(rss_kb); peak=$rss0
until grep -q '^sent ' "$WORK/fake.log"; do
  kill -0 $MAGPIE 2>/dev/null || { cat "$WORK/magpie.out" "$WORK/time.txt"; exit 1; }
  r=$(rss_kb); [ "$r" -gt "$peak" ] && peak=$r
  [ -n "${TRACE:-}" ] && echo "rss $r kB $(grep -E '^(Anonymous|Rss_File|Rss_Anon):' /proc/$PID/smaps_rollup | tr -s ' ' | tr '\n' ' ')" >&2
  sleep 0.05
done
sleep 1  # let the writer drain the queue
[ -n "${TRACE:-}" ] && awk '/^[0-9a-f]+-[0-9a-f]+ / {name=$6; range=$1} /^Rss:/ {if ($2 > 2000) print $2, "kB", range, name}' /proc/$PID/smaps >&2
r=$(rss_kb); [ "$r" -gt "$peak" ] && peak=$r
t1=$(ticks)
pkill -TERM -P $MAGPIE  # magpie itself, the child of /usr/bin/time
wait $MAGPIE || true
grep -E '^(instruments|subscribed|sent) ' "$WORK/fake.log"
grep '^stopped' "$WORK/magpie.out"
cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u + s}' "$WORK/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
messages=$(sed -n 's/^stopped: \([0-9]*\) market messages.*/\1/p' "$WORK/magpie.out")
hz=$(getconf CLK_TCK)
echo "during the replay: $(python3 -c "print(round(($t1 - $t0) / $hz, 2))") s CPU for ${messages} messages = $(python3 -c "print(round($messages * $hz / max($t1 - $t0, 1)))") messages per CPU-second; RSS $((rss0 / 1024)) MB before, peak $((peak / 1024)) MB"
echo "whole run incl. start-up (instrument lists, 1,550 instruments written): ${cpu} s CPU; peak RSS $((rss / 1024)) MB (/usr/bin/time -v)"
for dataset in tickers quotes trades; do
  [ -d "$WORK/data/market/$dataset" ] || continue
  bytes=$(find "$WORK/data/market/$dataset" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  rows=$(sed -n "s/.* \([0-9]*\) ${dataset}[,;].*/\1/p" "$WORK/magpie.out")
  [ -n "$rows" ] && [ "$rows" -gt 0 ] && echo "$dataset: $rows rows, $bytes bytes on disk = $(python3 -c "print(round($bytes / $rows, 1))") bytes/row"
done
