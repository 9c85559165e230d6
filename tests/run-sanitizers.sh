#!/usr/bin/env bash
# The unit tests under AddressSanitizer + UBSan (any report fails the test), then one short
# end-to-end run (boot, disk, network) of the instrumented kestrel in the nested test host.
#   tests/run-sanitizers.sh [--unit-only | --e2e-only | --build-only]
set -euo pipefail
cd "$(dirname "$0")/.."

# -fno-sanitize-recover: a UBSan report ends the program, so the test fails.
[ -f build-asan/build.ninja ] ||
    meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fno-sanitize-recover=undefined
ninja -C build-asan
[ "${1:-}" = --build-only ] && exit 0
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:print_summary=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
[ "${1:-}" = --e2e-only ] || meson test -C build-asan --print-errorlogs --suite unit
[ "${1:-}" = --unit-only ] && exit 0
meson test -C build-asan --print-errorlogs --suite e2e-asan
