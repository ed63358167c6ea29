#!/usr/bin/env bash
# Import benchmark (issue 3 target: <= 5 s, <= 150 MB peak RSS for 350,000 plays).
# Generates a 350k-play demo export once, then times `magpie import` of it into a fresh
# warehouse with /usr/bin/time -v (whole process), and prints the warehouse size.
#   usage: scripts/bench-import.sh [PLAYS]
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYS="${1:-350000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
cargo build --release -q -p magpie
BIN="$CARGO_TARGET_DIR/release/magpie"
WORK="${BENCH_DIR:-/tmp/magpie-bench}"
EXPORT="$WORK/export-$PLAYS"
mkdir -p "$WORK"
if [ ! -d "$EXPORT" ]; then
  "$BIN" demo generate --plays "$PLAYS" --years 20 --seed 42 --end 2026-06-30 --out "$EXPORT"
fi
rm -rf "$WORK/data"
/usr/bin/time -v "$BIN" --data-dir "$WORK/data" import "$EXPORT" > "$WORK/import.log" 2> "$WORK/time.log"
tail -1 "$WORK/import.log"
grep -E "Elapsed \(wall|Maximum resident" "$WORK/time.log"
echo "export size: $(du -sh "$EXPORT" | cut -f1)"
echo "warehouse size: $(du -sh "$WORK/data/magpie.duckdb" | cut -f1)"
