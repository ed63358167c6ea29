#!/usr/bin/env bash
# ARM64 build (Synology's ARM models, Raspberry Pi): cross-compiles magpie for
# aarch64-unknown-linux-gnu with Debian's cross toolchain, then checks it under
# qemu-user-static: `magpie --version`, `magpie demo --no-serve` (import, build, summary) and,
# with TESTS, test binaries of the workspace run under emulation.
#
#   usage: [TESTS="-p magpie-models --test incremental"] scripts/cross-arm64.sh
#
# Needs: apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
#        qemu-user-static; rustup target add aarch64-unknown-linux-gnu.
# DuckDB's C++ is compiled once more for ARM64 (about 45-60 minutes on two cores), in a target
# folder of its own so the x86-64 build is left alone. Not part of .ci/run, which must finish
# in 90 minutes on a fresh machine; the release workflow builds ARM64 natively.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu
export CARGO_TARGET_DIR="${ARM64_TARGET_DIR:-/var/cache/magpie-ci/target-arm64}"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# Test binaries and the checks below run under emulation, with the cross sysroot's libraries.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
export CARGO_TERM_COLOR=never

start=$(date +%s)
cargo build --release --locked -p magpie --target "$TARGET"
echo "build: $(( $(date +%s) - start )) s"
BIN="$CARGO_TARGET_DIR/$TARGET/release/magpie"
file "$BIN"
ls -l "$BIN"

run() { qemu-aarch64-static -L /usr/aarch64-linux-gnu "$BIN" "$@"; }
run --version
DEMO="$(mktemp -d /tmp/magpie-arm64.XXXXXX)"
trap 'rm -rf "$DEMO"' EXIT
start=$(date +%s)
run --data-dir "$DEMO" demo --no-serve --plays "${PLAYS:-20000}" | tail -4
echo "demo under qemu: $(( $(date +%s) - start )) s"

if [ -n "${TESTS:-}" ]; then
  # shellcheck disable=SC2086 # TESTS is a list of cargo arguments
  cargo test --release --locked --target "$TARGET" $TESTS
fi
