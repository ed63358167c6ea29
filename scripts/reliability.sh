#!/usr/bin/env bash
# Regenerates the figures of docs/RELIABILITY.md: runs every fault harness at its long setting
# here and rewrites the part of the document between its `figures` markers.
#
#   scripts/reliability.sh            (about an hour on 2 cores)
#
# Settings (environment): STAGES (a subset of "fuzz props kills load disk" measures those again
# and keeps the other figures), FUZZ_SECS per cargo-fuzz target (300; 0 reuses the last run's), PROPTEST_CASES per property
# (20000), KILL_ROUNDS per command (30), LOAD_SECS per endpoint (5), LOAD_DATA (a 350,000-play
# demo warehouse, made when missing). Needs what the harnesses need: nightly Rust and
# cargo-fuzz, wrk, curl, python3, root for the disk tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
FUZZ_SECS="${FUZZ_SECS:-300}"
CASES="${PROPTEST_CASES:-20000}"
ROUNDS="${KILL_ROUNDS:-30}"
LOAD_SECS="${LOAD_SECS:-5}"
LOAD_DATA="${LOAD_DATA:-/var/cache/magpie-ci/reliability-350k}"
# Each stage's results stay here, so STAGES can measure one again and keep the others.
STAGES="${STAGES:-fuzz props kills load disk}"
WORK="${RESULTS:-$(dirname "$CARGO_TARGET_DIR")/reliability}"
mkdir -p "$WORK"
stage() { [[ " $STAGES " == *" $1 "* ]]; }
status=0
BIN="$CARGO_TARGET_DIR/release/magpie"

cargo build --release --locked -p magpie
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo), $(uname -m)"

# The corpora are kept between runs (they grow); FUZZ_SECS=0 takes the last run's figures.
FUZZ_WORK="${FUZZ_WORK:-$(dirname "$CARGO_TARGET_DIR")/fuzz}"
if stage fuzz; then
  if [ "$FUZZ_SECS" != 0 ]; then
    echo "== cargo-fuzz: $FUZZ_SECS s per target"
    FUZZ_WORK="$FUZZ_WORK" scripts/fuzz.sh "$FUZZ_SECS" || status=1
  fi
  cp "$FUZZ_WORK/figures.tsv" "$WORK/fuzz.tsv" 2>/dev/null || true
fi

if stage props; then
  echo "== property tests: $CASES cases per property"
  : >"$WORK/props.tsv"
  for file in crates/*/tests/fuzz_*.rs; do
    crate="$(basename "$(dirname "$(dirname "$file")")")"
    test="$(basename "$file" .rs)"
    start=$(date +%s)
    PROPTEST_CASES="$CASES" cargo test --release -p "$crate" -p magpie-web --test "$test" 2>&1 | tee "$WORK/$test.log" | tail -2 || status=1
    passed="$(awk '/^test result:/ { p += $4 } END { print p + 0 }' "$WORK/$test.log")"
    failed="$(awk '/^test result:/ { f += $6 } END { print f + 0 }' "$WORK/$test.log")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$crate/$test" "$passed" "$failed" "$CASES" "$(($(date +%s) - start))" >>"$WORK/props.tsv"
  done
fi

if stage kills; then
  echo "== random kills: $ROUNDS per command"
  scripts/kill-harness.sh "$ROUNDS" | tee "$WORK/kills.log" || status=1
fi

if stage load; then
  echo "== load"
  if [ ! -f "$LOAD_DATA/magpie.duckdb" ]; then
    "$BIN" --data-dir "$LOAD_DATA" demo --plays 350000 --years 20 --no-serve >/dev/null 2>&1
  fi
  OUT_TSV="$WORK/load.tsv" scripts/load-test.sh "$LOAD_DATA" "$LOAD_SECS" | tee "$WORK/load.log" || status=1
fi

if stage disk; then
  echo "== full and read-only disks"
  cargo test --release -p magpie -p magpie-web --test disk -- --nocapture --test-threads=1 2>&1 \
    | tee "$WORK/disk.log" | grep -E '^(disk:|test |test result)' || status=1
fi

python3 - "$WORK" "$machine" "$FUZZ_SECS" "$(git rev-parse --short HEAD)" <<'PY'
import re, sys, datetime, pathlib
work, machine, fuzz_secs, commit = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def rows(name):
    p = work / name
    return [l.rstrip("\n").split("\t") for l in p.read_text().splitlines() if l.strip()] if p.exists() else []
out = [f"Measured {datetime.date.today()} at commit `{commit}` on this project's build machine ({machine}) by `scripts/reliability.sh`.", ""]
out += ["### Fuzzing (cargo-fuzz, libFuzzer + AddressSanitizer)", "",
        "| target | seconds | executions | corpus | crashes |", "|---|---:|---:|---:|---:|"]
for r in rows("fuzz.tsv")[1:]:
    out.append(f"| `{r[0]}` | {r[1]} | {int(r[2]):,} | {r[3]} | {r[4]} |")
out += ["", "### Property tests (proptest, the CI share run long)", "",
        "| test file | tests passed | failed | cases per property | seconds |", "|---|---:|---:|---:|---:|"]
for r in rows("props.tsv"):
    out.append(f"| `{r[0]}` | {r[1]} | {r[2]} | {int(r[3]):,} | {r[4]} |")
out += ["", "### Random kills (SIGKILL at a random moment, then the same command again)", ""]
kills = [l for l in (work / "kills.log").read_text().splitlines() if l.startswith("kills:") and "survived" in l] if (work / "kills.log").exists() else []
out += [f"- {l[len('kills:'):].strip()}" for l in kills] or ["- (no results)"]
out += ["", "### Load (350,000 plays; 50 connections per endpoint while daily-etl (enrich, build, snapshot, backup) runs back to back)", "",
        "| endpoint | requests | non-2xx | socket errors | p50 ms | p99 ms | peak RSS MB |", "|---|---:|---:|---:|---:|---:|---:|"]
for r in rows("load.tsv")[1:]:
    out.append("| " + " | ".join(r) + " |")
log = (work / "load.log").read_text() if (work / "load.log").exists() else ""
for l in log.splitlines():
    if l.startswith(("other client meanwhile", "daily-etl builds", "peak RSS of magpie serve", "errors in all")):
        out.append(f"- {l}")
out += ["", "### Full and read-only disks", ""]
disk = (work / "disk.log").read_text().splitlines() if (work / "disk.log").exists() else []
for l in disk:
    m = re.match(r"^test (\w+) \.\.\. (\w+)", l)
    if m:
        out.append(f"- `{m.group(1)}`: {m.group(2)}")
out += [f"- {l}" for l in disk if l.startswith("test result")] or ["- (no results)"]
doc = pathlib.Path("docs/RELIABILITY.md")
text = doc.read_text()
begin, end = "<!-- figures:begin -->", "<!-- figures:end -->"
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
doc.write_text(head + begin + "\n" + "\n".join(out) + "\n" + end + tail)
print("docs/RELIABILITY.md: figures rewritten")
PY
exit "$status"
