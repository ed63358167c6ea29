#!/usr/bin/env bash
# Incremental builds (issue 28): on a copy of a built warehouse, ROUNDS times: a poll's worth of
# new plays (PLAYS, default 50: the newest export file's last records played again after the
# history's end) imported, then `magpie build`. Prints the build time the build reports, the
# wall time and peak RSS of the whole process (/usr/bin/time -v), and then the same for a
# `magpie build --full-refresh` for comparison.
#
#   usage: [PLAYS=50] scripts/bench-incremental.sh DATA_DIR [ROUNDS]
#   e.g.   magpie --data-dir /tmp/w350 demo --no-serve --plays 350000 --years 20
#          scripts/bench-incremental.sh /tmp/w350 5
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="${1:?usage: bench-incremental.sh DATA_DIR [ROUNDS]}"
ROUNDS="${2:-5}"
PLAYS="${PLAYS:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
cargo build --release --locked -q -p magpie
BIN="$CARGO_TARGET_DIR/release/magpie"
WORK="${BENCH_DIR:-/tmp/magpie-bench-incremental}"
rm -rf "$WORK" && mkdir -p "$WORK/data"
cp "$SRC/magpie.duckdb" "$WORK/data/"
NEWEST="$(ls "$SRC"/demo-export/Streaming_History_Audio_*.json | sort -t_ -k5 -n | tail -1)"
sync
# One build first, so that the copy's incremental state is this binary's.
"$BIN" --data-dir "$WORK/data" build > "$WORK/first.log"

# `magpie build` once, timed: "<build's own seconds> <wall seconds> <peak RSS MB> <full refreshes>".
timed_build() {
  /usr/bin/time -v -o "$WORK/time.log" "$BIN" --data-dir "$WORK/data" build "$@" > "$WORK/build.log"
  local own wall rss full
  own=$(sed -n 's/^build [0-9]*: .* in \([0-9.]*\)s$/\1/p' "$WORK/build.log")
  wall=$(awk -F': ' '/Elapsed \(wall/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$WORK/time.log")
  rss=$(awk -F': ' '/Maximum resident/ { printf "%.0f", $2 / 1024 }' "$WORK/time.log")
  full=$(grep -c "full refresh" "$WORK/build.log" || true)
  echo "$own $wall $rss $full"
}

results=()
for round in $(seq "$ROUNDS"); do
  python3 - "$NEWEST" "$WORK/poll_$round.json" "$PLAYS" "$round" "$WORK/data/magpie.duckdb" <<'PY'
import json, sys, datetime
src, out, n, round_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
records = [r for r in json.load(open(src)) if r.get("master_metadata_track_name")][-n:]
last = max(datetime.datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) for r in records)
# Played again a week per round after the export's end, four minutes apart; an export that
# ends about now is played again in the last days instead (imports refuse plays after tomorrow).
start = last + datetime.timedelta(days=7 * round_)
now = datetime.datetime.now(datetime.timezone.utc)
if start > now - datetime.timedelta(days=1):
    start = now - datetime.timedelta(days=3) + datetime.timedelta(hours=4 * round_)
for i, r in enumerate(records):
    r["ts"] = (start + datetime.timedelta(minutes=4 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump(records, open(out, "w"))
PY
  "$BIN" --data-dir "$WORK/data" import "$WORK/poll_$round.json" > "$WORK/import.log"
  r=$(timed_build)
  results+=("$r")
  echo "round $round: +$PLAYS plays: build ${r%% *} s (own figure); wall, peak RSS MB, full refreshes: ${r#* }"
done
full=$(timed_build --full-refresh)
echo "full refresh: build ${full%% *} s (own figure); wall, peak RSS MB: $(echo "$full" | cut -d' ' -f2-3)"
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
print(f"incremental, median of {len(rows)}: build {med(0):.2f} s, wall {med(1):.2f} s, peak RSS {med(2):.0f} MB; models built in full: {sum(r[3] for r in rows):.0f}")
'
grep -E "model \(incremental\)|model \(full" "$WORK/build.log" | head -5 || true
