#!/usr/bin/env bash
# dbt parity: builds the shipped models with magpie and with dbt-duckdb on copies of the same
# demo warehouse, then compares every mart table row for row (EXCEPT ALL both ways), and
# prints both tools' wall times (both built from scratch); then new listening arrives in both
# copies, each tool runs its incremental models' is_incremental() branch, and the marts are
# compared again, with each other and with a full refresh.
#   usage: [RUNS=N] [DBT_MEMORY_LIMIT=57MB] scripts/dbt-parity.sh [PLAYS]   (default 350000 plays, 1 run)
# With RUNS=N each tool builds N times, each time on a fresh copy, and the medians are
# compared (this 2-core machine's timings vary by ±15 % run to run). dbt-duckdb runs with
# DuckDB's defaults (no memory limit to speak of) unless DBT_MEMORY_LIMIT gives it one:
# 57MB is what magpie gives DuckDB at its default 160 MB budget, for a like-for-like run.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYS="${1:-350000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
export DBT_SEND_ANONYMOUS_USAGE_STATS=False
WORK="${PARITY_DIR:-/tmp/magpie-parity}"
mkdir -p "$WORK"
cargo build --release -q -p magpie
BIN="$CARGO_TARGET_DIR/release/magpie"

if [ ! -x "$WORK/venv/bin/dbt" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q 'dbt-duckdb' 'dbt-core<1.12' 'duckdb==2.0.0'
fi

# One demo warehouse (imported, with the demo's enrichment answers, built once so that
# raw.tz_offsets exists); both tools then rebuild every model on their own copy.
rm -rf "$WORK/base" "$WORK/magpie" "$WORK/dbt"
"$BIN" --data-dir "$WORK/base" demo --no-serve --plays "$PLAYS" --years 20 --seed 42 --end 2026-06-30 >/dev/null 2>&1
RUNS="${RUNS:-1}"
# Bash's own clock: no process started inside the timed interval.
now() { echo "$EPOCHREALTIME"; }
median() { python3 -c "import statistics, sys; print(round(statistics.median(map(float, sys.argv[1:])), 2))" "$@"; }
# The copy is flushed to disk before the clock starts: otherwise the first fsync of either
# tool writes the copy's 70+ MB back, and the timing includes the harness's cp.
fresh() { rm -rf "$WORK/$1" && mkdir -p "$WORK/$1" && cp "$WORK/base/magpie.duckdb" "$WORK/$1/magpie.duckdb" && sync; }

cat > "$WORK/profiles.yml" <<YML
magpie:
  target: copy
  outputs:
    copy:
      type: duckdb
      path: "$WORK/dbt/magpie.duckdb"
      schema: main
      threads: 2
YML
if [ -n "${DBT_MEMORY_LIMIT:-}" ]; then
  printf '      settings:\n        memory_limit: "%s"\n' "$DBT_MEMORY_LIMIT" >> "$WORK/profiles.yml"
fi
magpie_times=(); dbt_times=(); dbt_failures=0
for _ in $(seq "$RUNS"); do
  fresh magpie
  start=$(now)
  "$BIN" --data-dir "$WORK/magpie" build --full-refresh > "$WORK/magpie-build.log"
  magpie_times+=("$(python3 -c "print(round($(now) - $start, 2))")")

  # Within a memory limit, dbt-duckdb can run out of memory (it builds two models at once and
  # does not retry): such a run is counted, and built again.
  for attempt in 1 2 3; do
    fresh dbt
    start=$(now)
    if "$WORK/venv/bin/dbt" build --full-refresh --project-dir models --profiles-dir "$WORK" --target-path "$WORK/dbt-target" --log-path "$WORK" > "$WORK/dbt-build.log"; then
      dbt_times+=("$(python3 -c "print(round($(now) - $start, 2))")")
      break
    fi
    tail -40 "$WORK/dbt-build.log"
    if [ -z "${DBT_MEMORY_LIMIT:-}" ] || [ "$attempt" = 3 ]; then exit 1; fi
    dbt_failures=$((dbt_failures + 1))
  done
done
magpie_s=$(median "${magpie_times[@]}")
dbt_s=$(median "${dbt_times[@]}")

# Every mart table of two warehouses compared row for row (EXCEPT ALL both ways).
compare() {
  "$WORK/venv/bin/python" - "$1" "$2" "$3" "$4" <<'PY'
import sys, duckdb
con = duckdb.connect()
con.execute(f"ATTACH '{sys.argv[1]}' AS m (READ_ONLY)")
con.execute(f"ATTACH '{sys.argv[2]}' AS d (READ_ONLY)")
a, b = sys.argv[3], sys.argv[4]
tables = [r[0] for r in con.execute(
    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'm' AND schema_name = 'marts' ORDER BY 1").fetchall()]
bad = 0
for t in tables:
    only_m = con.execute(f"SELECT count(*) FROM (SELECT * FROM m.marts.{t} EXCEPT ALL SELECT * FROM d.marts.{t})").fetchone()[0]
    only_d = con.execute(f"SELECT count(*) FROM (SELECT * FROM d.marts.{t} EXCEPT ALL SELECT * FROM m.marts.{t})").fetchone()[0]
    n = con.execute(f"SELECT count(*) FROM m.marts.{t}").fetchone()[0]
    status = "same" if only_m == 0 and only_d == 0 else "DIFFERENT"
    bad += status != "same"
    print(f"{status:9} marts.{t}: {n} rows, {only_m} only in {a}'s, {only_d} only in {b}'s")
print(f"parity ({a} / {b}): {len(tables) - bad} of {len(tables)} mart tables identical")
sys.exit(1 if bad else 0)
PY
}
compare "$WORK/magpie/magpie.duckdb" "$WORK/dbt/magpie.duckdb" magpie dbt
[ "$RUNS" -gt 1 ] && echo "runs: magpie ${magpie_times[*]} s; dbt ${dbt_times[*]} s"
[ "$dbt_failures" -gt 0 ] && echo "dbt runs that failed (out of memory) and were built again: $dbt_failures"
echo "magpie build: ${magpie_s}s; dbt build: ${dbt_s}s; ratio: $(python3 -c "print(round($dbt_s / $magpie_s, 1))")x"

# Incremental runs: new listening arrives in both built copies (a later export of the demo's
# kind, and real Last.fm scrobbles whose lengths are estimated from other plays), each tool
# runs its models' is_incremental() branch, and the marts must equal each other's and a full
# refresh's.
echo "== incremental runs"
rm -rf "$WORK/later" "$WORK/full"
"$BIN" --data-dir "$WORK/later" demo --no-serve --plays 3000 --years 1 --seed 7 --end 2026-09-30 >/dev/null 2>&1
NEW=("$WORK/later/demo-export")
LASTFM="${REALDATA_DIR:-$(realpath -m ../shared/realdata)}/lastfm/krishkumar/lastfm_scrobbles.csv"
[ -f "$LASTFM" ] && NEW+=("$LASTFM")
"$BIN" --data-dir "$WORK/magpie" import "${NEW[@]}" > "$WORK/import-magpie.log"
# The same rows into dbt's copy (an import of its own would number the events otherwise: ids
# come from a sequence in whatever order DuckDB's threads insert a file's rows).
"$WORK/venv/bin/python" - "$WORK/magpie/magpie.duckdb" "$WORK/dbt/magpie.duckdb" <<'PY'
import sys, duckdb
con = duckdb.connect(sys.argv[2])
con.execute(f"ATTACH '{sys.argv[1]}' AS m (READ_ONLY)")
for table, key in [("listen_events", "event_id"), ("import_batches", "batch_id")]:
    con.execute(f"INSERT INTO raw.{table} SELECT * FROM m.raw.{table} WHERE {key} > (SELECT coalesce(max({key}), 0) FROM raw.{table})")
PY
"$BIN" --data-dir "$WORK/magpie" build > "$WORK/magpie-incremental.log"
grep -q "full refresh" "$WORK/magpie-incremental.log" && { echo "magpie rebuilt an incremental model in full" >&2; cat "$WORK/magpie-incremental.log" >&2; exit 1; }
"$WORK/venv/bin/dbt" build --project-dir models --profiles-dir "$WORK" --target-path "$WORK/dbt-target" --log-path "$WORK" > "$WORK/dbt-incremental.log" \
  || { tail -40 "$WORK/dbt-incremental.log"; exit 1; }
compare "$WORK/magpie/magpie.duckdb" "$WORK/dbt/magpie.duckdb" "magpie incremental" "dbt incremental"
mkdir -p "$WORK/full" && cp "$WORK/magpie/magpie.duckdb" "$WORK/full/"
"$BIN" --data-dir "$WORK/full" build --full-refresh > "$WORK/magpie-full.log"
compare "$WORK/magpie/magpie.duckdb" "$WORK/full/magpie.duckdb" "magpie incremental" "magpie full refresh"
