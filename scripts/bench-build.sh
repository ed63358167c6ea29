#!/usr/bin/env bash
# Build benchmark (issue 4 target: <= 5 s, <= 150 MB peak RSS on the 350,000-play demo).
# Needs the warehouse scripts/bench-import.sh leaves in $BENCH_DIR/data; times `magpie build`
# (seeds, the shipped models, data tests) with /usr/bin/time -v on the whole process.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
cargo build --release -q -p magpie
BIN="$CARGO_TARGET_DIR/release/magpie"
WORK="${BENCH_DIR:-/tmp/magpie-bench}"
[ -f "$WORK/data/magpie.duckdb" ] || scripts/bench-import.sh
/usr/bin/time -v "$BIN" --data-dir "$WORK/data" build > "$WORK/build.log" 2> "$WORK/build-time.log"
tail -1 "$WORK/build.log"
grep -E "Elapsed \(wall|Maximum resident" "$WORK/build-time.log"
