#!/usr/bin/env bash
# Coverage-guided fuzzing of magpie's parsers with cargo-fuzz (libFuzzer + AddressSanitizer,
# nightly), seeded from the real sample data read in place.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# The targets are in fuzz/fuzz_targets. No target calls DuckDB, but the crates link it, and a
# nightly build would compile its C++ again (45 minutes): the fuzz build links the library the
# release build already compiled (fuzz/duckdb-prebuilt), so run a release build first.
# Corpora, crashes and the figures go to $FUZZ_WORK (outside the clone). Prints one line per
# target: executions, corpus size, crashes; the figures are also written to
# $FUZZ_WORK/figures.tsv. Exits non-zero when a target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SECS="${1:-60}"
shift || true
TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
FUZZ_WORK="${FUZZ_WORK:-$(dirname "$TARGET_DIR")/fuzz}"
REALDATA="${REALDATA_DIR:-$(realpath -m "$ROOT/../shared/realdata")}"
mkdir -p "$FUZZ_WORK"

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }
[ -d "$REALDATA" ] || { echo "no real sample data at $REALDATA (the seed corpora)" >&2; exit 1; }

# The release build's DuckDB: the libduckdb-sys out folder holding the library and bindings.
PREBUILT=""
for out in $(ls -td "$TARGET_DIR"/release/build/libduckdb-sys-*/out 2>/dev/null); do
  if [ -f "$out/libduckdb.a" ] && [ -f "$out/bindgen.rs" ]; then PREBUILT="$out"; break; fi
done
[ -n "$PREBUILT" ] || { echo "no compiled DuckDB under $TARGET_DIR/release: run cargo build --release first" >&2; exit 1; }
export DUCKDB_PREBUILT_DIR="$PREBUILT"

# The stand-in crate: the registry's libduckdb-sys (same version, features and bindings
# module) with a build script that links the prebuilt library.
SYS_SRC="$(cargo metadata --format-version 1 --locked | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in meta["packages"] if p["name"] == "libduckdb-sys"))')"
CRATE="fuzz/duckdb-prebuilt/crate"
# Made again only when it changed (a fresh copy would rebuild every crate above it).
if ! cmp -s "$SYS_SRC/Cargo.toml" "$CRATE/Cargo.toml" || ! cmp -s fuzz/duckdb-prebuilt/build.rs "$CRATE/build.rs"; then
  rm -rf "$CRATE" && mkdir -p "$CRATE"
  cp -a "$SYS_SRC/Cargo.toml" "$SYS_SRC/src" "$CRATE/"
  cp -p fuzz/duckdb-prebuilt/build.rs "$CRATE/build.rs"
fi
# The same versions as the main workspace (the stand-in must match the duckdb crate's pin).
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock

# Seeds: the real files, read in place; Deribit frames are single lines of the capture.
seed_dirs() {
  case "$1" in
    import) echo "$REALDATA/spotify_export $REALDATA/lastfm $REALDATA/listenbrainz $REALDATA/maloja $REALDATA/apple_music $REALDATA/spotify_webapi" ;;
    json_scanner) echo "$REALDATA/spotify_export $REALDATA/maloja $REALDATA/spotify_webapi" ;;
    listenbrainz_submit) echo "$REALDATA/listenbrainz" ;;
    deribit_wire) echo "$FUZZ_WORK/seeds/deribit_wire" ;;
    dbt_project) echo "$ROOT/models" ;;
    question_files) echo "$ROOT/crates/magpie-questions/dashboards" ;;
    *) echo "" ;;
  esac
}
mkdir -p "$FUZZ_WORK/seeds/deribit_wire"
if [ -z "$(ls -A "$FUZZ_WORK/seeds/deribit_wire")" ]; then
  python3 - "$REALDATA/deribit" "$FUZZ_WORK/seeds/deribit_wire" <<'PY'
import hashlib, os, re, sys
src, dst = sys.argv[1], sys.argv[2]
for root, _, files in os.walk(src):
    for name in files:
        with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^[0-9.]+: (\{.*\})\s*$", line)
                if m and len(m.group(1)) < 65536:
                    body = m.group(1).encode()
                    with open(os.path.join(dst, hashlib.sha1(body).hexdigest()), "wb") as out:
                        out.write(body)
PY
fi

TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(import json_scanner deribit_wire listenbrainz_submit lastfm_submit config dbt_project question_files)

echo "== building the fuzz targets (nightly, AddressSanitizer)"
cargo +nightly fuzz build --fuzz-dir fuzz --target-dir "$FUZZ_WORK/target"
TRIPLE="$(rustc +nightly -vV | sed -n 's/^host: //p')"
FIGURES="$FUZZ_WORK/figures.tsv"
printf 'target\tseconds\texecutions\tcorpus\tcrashes\n' > "$FIGURES"
failed=0
for target in "${TARGETS[@]}"; do
  corpus="$FUZZ_WORK/corpus/$target"
  artifacts="$FUZZ_WORK/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  log="$FUZZ_WORK/$target.log"
  # shellcheck disable=SC2046
  # The binaries just built, run directly (`cargo fuzz run` would rebuild when a source changed).
  if "$FUZZ_WORK/target/$TRIPLE/release/$target" "$corpus" $(seed_dirs "$target") \
      -max_total_time="$SECS" -max_len=32768 -rss_limit_mb=1024 -timeout=10 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed=1
  fi
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  crashes="$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)"
  size="$(find "$corpus" -type f | wc -l)"
  printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$SECS" "${runs:-0}" "$size" "$crashes" >> "$FIGURES"
  printf '%-20s %-6s %12s executions  %6s in corpus  %s crash files (log: %s)\n' \
    "$target" "$status" "${runs:-0}" "$size" "$crashes" "$log"
done
exit "$failed"
