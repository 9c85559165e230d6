#!/usr/bin/env bash
# The one benchmark command: kestrel beside QEMU on the same kernel, initramfs and images,
# alternating, in the nested test host (tests/e2e/bench_*.sh, one test-host boot per group),
# then every sample in one CSV, a Markdown table and a PNG chart (bench/summarize.py).
#
#   bench/run.sh [--quick] [--out DIR] [--groups boot,startup,blk,net,debian] [--runs N]
#                [--arch x86_64|arm64] [--kestrel PATH] [--stamp PATH] [--title TEXT]
#                [--host-cpu MODEL]
#   bench/run.sh --render CSV [--out DIR] [--title TEXT]     # table + chart again, no runs
#
# Default: every group, 5 runs per VMM. --quick (for CI): boot, startup and blk, 3 runs, a
# 64 MiB disk and 3 s per fio job (net with --groups: 2 runs of 16 MiB / 2 s of UDP).
# startup (x86) times start-up on this machine's own /dev/kvm, not in the test host, and is
# left out where there is none.
# --arch arm64 measures boot only (the other groups have no arm64 test host scenario).
# Writes to DIR (default build/bench/DATE): bench.csv, bench.md, bench.png, chart/ (the
# gnuplot data and script), logs/GROUP.log (each script's own table), csv/GROUP.csv.
# --host-cpu: the x86 test host's QEMU -cpu model, default max,-erms,-fsrm: with erms/fsrm the
# test host's kernel zeroes and copies memory with `rep stosb`/`rep movsb`, which TCG runs one
# byte per iteration: zeroing 24 MB of fresh memory took 67-70 ms there, 11-13 ms without them
# (`rep stosq`), a cost no real CPU has (docs/performance.md, "The test host's string
# instructions"). Both VMMs run in that host.
# Exits 1 when a group produced no CSV or the table/chart could not be made; never on the
# numbers themselves.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
E2E=$REPO_ROOT/tests/e2e

usage() { sed -n '2,24p' "$0" >&2; exit 2; }

QUICK=
OUT=
GROUPS_ARG=
RUNS=
ARCH=x86_64
KESTREL=
STAMP=
TITLE=
RENDER=
HOST_CPU=max,-erms,-fsrm
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        --groups) GROUPS_ARG=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --arch) ARCH=$2; shift 2 ;;
        --kestrel) KESTREL=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --title) TITLE=$2; shift 2 ;;
        --render) RENDER=$2; shift 2 ;;
        --host-cpu) HOST_CPU=$2; shift 2 ;;
        *) usage ;;
    esac
done
[ -n "$OUT" ] || OUT=$REPO_ROOT/build/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)

# render TITLE CSV...: bench.csv, bench.md, bench.png in $OUT.
render() {
    local title=$1; shift
    command -v gnuplot > /dev/null || bash "$REPO_ROOT/tests/install-deps.sh" gnuplot-nox >&2
    python3 "$BENCH_DIR/summarize.py" render "$@" --out "$OUT" --title "$title" || return 1
    echo "bench: $OUT/bench.md, $OUT/bench.png, $OUT/bench.csv"
}

if [ -n "$RENDER" ]; then
    render "${TITLE:-kestrel vs QEMU: $(basename "$RENDER")}" "$RENDER" || exit 1
    cat "$OUT/bench.md"
    exit 0
fi

case $ARCH in
    x86_64) all_groups=boot,startup,blk,net,debian quick_groups=boot,startup,blk ;;
    arm64) all_groups=boot quick_groups=boot ;;
    *) echo "bench: --arch x86_64 or arm64, not '$ARCH'" >&2; exit 2 ;;
esac
# Net boots four VMMs per round: quick mode gives it 2 rounds unless --runs says otherwise.
RUNS_NET=${RUNS:-2}
if [ -n "$QUICK" ]; then
    : "${RUNS:=3}" "${GROUPS_ARG:=$quick_groups}"
else
    : "${RUNS:=5}" "${GROUPS_ARG:=$all_groups}"
    RUNS_NET=$RUNS
fi
IFS=, read -ra groups <<< "$GROUPS_ARG"
for g in "${groups[@]}"; do
    case ",$all_groups," in
        *",$g,"*) ;;
        *) echo "bench: no group '$g' on $ARCH (groups: $all_groups)" >&2; exit 2 ;;
    esac
done

export KESTREL_RIG_CPU=$HOST_CPU # tests/e2e/rig.py (x86 test host only)

# The options each script takes for the common ones and for quick mode.
common=(${KESTREL:+--kestrel "$KESTREL"} ${STAMP:+--stamp "$STAMP"})
group_args() {
    case $1 in
        boot) echo --arch "$ARCH" --runs "$RUNS" ;;
        startup) echo --runs "$RUNS" ;;
        blk) echo --runs "$RUNS" ${QUICK:+--size 64 --secs 3} ;;
        net) echo --runs "$RUNS_NET" ${QUICK:+--size 16 --udp 2} ;;
        debian) echo --rounds "$RUNS" ;;
    esac
}

mkdir -p "$OUT/logs" "$OUT/csv"
rev=$(git -C "$REPO_ROOT" describe --always --dirty 2> /dev/null || echo unknown)
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $rev"
    echo "arch: $ARCH, groups: $GROUPS_ARG, runs per VMM: $RUNS (net: $RUNS_NET)${QUICK:+, quick}"
    [ "$ARCH" = arm64 ] || echo "test host -cpu: $HOST_CPU"
} > "$OUT/meta.txt"

status=0
csvs=()
for g in "${groups[@]}"; do
    if [ "$g" = startup ] && [ ! -w /dev/kvm ]; then
        echo "== bench: startup: no usable /dev/kvm on this machine, left out"
        continue
    fi
    read -ra args <<< "$(group_args "$g")"   # words without spaces
    echo "== bench: $g: tests/e2e/bench_$g.sh ${args[*]} ${common[*]}"
    start=$SECONDS
    rm -f "$OUT/csv/$g.csv"
    bash "$E2E/bench_$g.sh" "${args[@]}" "${common[@]}" --csv "$OUT/csv/$g.csv" 2>&1 | tee "$OUT/logs/$g.log"
    echo "$g: $((SECONDS - start)) s" | tee -a "$OUT/meta.txt"
    if [ -s "$OUT/csv/$g.csv" ]; then
        csvs+=("$OUT/csv/$g.csv")
    else
        echo "bench: $g wrote no samples (see $OUT/logs/$g.log)" >&2
        status=1
    fi
done
[ ${#csvs[@]} -gt 0 ] || exit 1
runs="$RUNS runs per VMM"
[[ ",$GROUPS_ARG," != *,net,* ]] || [ "$RUNS_NET" = "$RUNS" ] || runs="$runs, net $RUNS_NET"
render "${TITLE:-kestrel vs QEMU ($ARCH, $rev, ${QUICK:+quick, }$runs)}" "${csvs[@]}" || status=1
cat "$OUT/bench.md"
exit $status
