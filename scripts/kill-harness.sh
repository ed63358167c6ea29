#!/usr/bin/env bash
# Random kills (issue 27): runs crates/magpie/tests/kills.rs with ROUNDS kills per command
# (import of a multi-file export, build, spotify poll against a fake Spotify, ListenBrainz
# submissions to serve, market run during a replay, serve during a scheduled daily-etl,
# backup): each kill is a SIGKILL at a random moment of the command's run, then the warehouse
# must open with its schema intact, the command must complete when run again and the counts
# must equal an uninterrupted run's. CI runs the same tests with the default 2 rounds.
#
#   scripts/kill-harness.sh [ROUNDS]          (default 50; KILL_SEED=N replays a run)
#
# Prints one line per command, `kills: COMMAND survived K/N (L lost, D doubled; M of the kills
# landed mid-run)`, and the whole test output to $LOG (default a temporary file). Exits
# non-zero when any round failed. The recorded Deribit session the market test needs is read
# from ../shared/realdata (or REALDATA_DIR); REQUIRE_REALDATA=1 makes its absence a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/magpie-ci/target}"
LOG="${LOG:-$(mktemp /tmp/kill-harness.XXXXXX.log)}"
echo "kill harness: $ROUNDS kills per command; full output in $LOG"
status=0
# magpie-web in the package list keeps cargo's feature resolution the same as the rest of the
# workspace's (without it DuckDB's C++ is built again).
KILL_ROUNDS="$ROUNDS" cargo test --release -p magpie -p magpie-web --test kills \
  -- --nocapture --test-threads=1 >"$LOG" 2>&1 || status=$?
grep -oE 'kills: .* seed [0-9]+' "$LOG" || true
grep -E '^kills: .* survived' "$LOG" || true
grep -E '^test result:' "$LOG" || tail -20 "$LOG"
if [ "$status" -ne 0 ]; then
  grep -E -A6 "^thread '.*' .*panicked" "$LOG" || true
fi
exit "$status"
