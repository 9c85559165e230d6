#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, replays the seed corpus and the regression inputs,
# then fuzzes each target for a bounded time. Any crash, leak, hang or sanitizer report fails.
#   tests/fuzz/run.sh BUILD_DIR [--seconds N] [--only-regressions] [--skip-regressions]
# Installs clang and libclang-rt-14-dev with apt-get when missing (run as root on Debian 12).
set -euo pipefail
cd "$(dirname "$0")/../.."

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [--seconds N] [--only-regressions] [--skip-regressions]" >&2; exit 2; }
build=$1
shift
seconds=60
fuzz=1
regressions=1
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --only-regressions) fuzz=0; shift ;;
    --skip-regressions) regressions=0; shift ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

TARGETS=(fuzz_virtio_pci fuzz_virtio_mmio fuzz_virtio_blk fuzz_virtio_net fuzz_virtio_console)
# A hang is an input slower than this; RSS beyond the limit is a leak or unbounded growth.
FLAGS=(-timeout=10 -rss_limit_mb=2048 -detect_leaks=1 -max_len=65536)

bash tests/install-deps.sh clang libclang-rt-14-dev meson ninja-build pkg-config liburing-dev libseccomp-dev libfdt-dev zlib1g-dev liblzma-dev libcriterion-dev

[ -f "$build/build.ninja" ] || CC=clang meson setup "$build" -Dfuzzing=true
ninja -C "$build" "${TARGETS[@]/#/tests/fuzz/}"

status=0
# Replays every file of a folder, one process per file so one crash does not hide the next.
replay() { # target folder
    local f
    [ -d "$2" ] || return 0
    for f in "$2"/*; do
        [ -f "$f" ] || continue
        if ! "$build/tests/fuzz/$1" "${FLAGS[@]}" "$f" >"$build/fuzz-replay.log" 2>&1; then
            echo "FAIL $1 $f"
            grep -E 'fuzz harness:|ERROR:|SUMMARY:' "$build/fuzz-replay.log" | head -3
            status=1
        fi
    done
}

for t in "${TARGETS[@]}"; do
    replay "$t" "tests/fuzz/corpus/$t"
    [ $regressions = 1 ] && replay "$t" "tests/fuzz/regressions/$t"
done
# The device targets' seeds once more with their device behind virtio-mmio (harness.c).
for t in fuzz_virtio_blk fuzz_virtio_net fuzz_virtio_console; do
    FUZZ_TRANSPORT=mmio replay "$t" "tests/fuzz/corpus/$t"
done
echo "fuzz: replay $( [ $status = 0 ] && echo passed || echo FAILED )"

if [ $fuzz = 1 ]; then
    for t in "${TARGETS[@]}"; do
        # New inputs go to a scratch corpus; the seeds in git stay as generated.
        work="$build/fuzz-corpus/$t"
        mkdir -p "$work" "$build/fuzz-artifacts"
        log="$build/fuzz-$t.log"
        if "$build/tests/fuzz/$t" "${FLAGS[@]}" -max_total_time="$seconds" -print_final_stats=1 \
            -artifact_prefix="$build/fuzz-artifacts/$t-" "$work" "tests/fuzz/corpus/$t" \
            >"$log" 2>&1; then
            res=ok
        else
            res=FAILED
            status=1
        fi
        stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 || true)
        execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        echo "fuzz: $t $res: ${stats:-no stats} (average exec/s ${execs:-?})"
        [ $res = ok ] || grep -E 'fuzz harness:|ERROR:|SUMMARY:|Test unit written' "$log" | head -4
    done
fi
exit $status
