#!/usr/bin/env bash
# A large household warehouse for the scale benchmarks (issues 28 and 29): LISTENERS listeners
# (listener1 … listenerN), each with PLAYS generated plays over YEARS years from their own seed,
# imported with `magpie import --listener` and built once. Export files are generated and
# deleted one listener at a time, so the disk holds one export at a time (~620 MB per million plays).
#
#   usage: scripts/make-big-warehouse.sh DATA_DIR LISTENERS PLAYS [YEARS]
#   e.g.   scripts/make-big-warehouse.sh /tmp/w10m 5 2000000 28     # 10 M plays
#          scripts/make-big-warehouse.sh /tmp/w1750k 5 350000 20    # issue 29's household
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:?usage: make-big-warehouse.sh DATA_DIR LISTENERS PLAYS [YEARS]}"
LISTENERS="${2:?listeners}"
PLAYS="${3:?plays per listener}"
YEARS="${4:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
cargo build --release --locked -q -p magpie
BIN="$CARGO_TARGET_DIR/release/magpie"
mkdir -p "$DATA"
EXPORT="$DATA/export-tmp"
trap 'rm -rf "$EXPORT"' EXIT
for n in $(seq "$LISTENERS"); do
  rm -rf "$EXPORT"
  "$BIN" --data-dir "$DATA" demo generate --plays "$PLAYS" --years "$YEARS" --seed "$((41 + n))" --out "$EXPORT" >/dev/null
  /usr/bin/time -f "listener$n: import %e s, peak RSS %M KB" "$BIN" --data-dir "$DATA" import --listener "listener$n" "$EXPORT" >/dev/null
done
/usr/bin/time -f "build: %e s, peak RSS %M KB" "$BIN" --data-dir "$DATA" build | tail -1
