#!/usr/bin/env bash
# virtio-blk benchmark: kestrel vs QEMU on the same raw image, in ONE run of the nested
# test host so both see the same conditions. The image (SIZE, default 256 MiB of random
# data) lives on the test host's tmpfs; both VMMs use their default cache mode (the host
# page cache). In the inner guest (512 MiB, 1 vCPU, stock Debian kernel):
#   blkbench seq /dev/vda            sequential O_DIRECT read of the whole disk, 1 MiB requests
#   blkbench rand /dev/vda QD SECS   4 KiB O_DIRECT random reads, QD in flight, SECS seconds
# RUNS rounds (default 3), alternating kestrel and QEMU; the table shows the medians and
# the ratio kestrel/QEMU (bench/records.py; --csv FILE: every sample there too, for
# bench/run.sh). Never fails on the numbers; a VMM that does not run shows n/a.
# Not part of `meson test`.
#
#   bench_blk.sh [--kestrel PATH] [--blkbench PATH] [--stamp PATH] [--runs N] [--size MiB]
#                [--qd N] [--secs N] [--csv FILE]
#
# Absolute numbers are for a guest nested under a TCG-emulated host (every guest exit is
# expensive here): only the kestrel/QEMU ratio says something about real hardware.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build/kestrel
BLKBENCH=$REPO_ROOT/build/tests/e2e/blkbench
STAMP=
RUNS=3
SIZE=256
QD=16
SECS=10
CSV=
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --blkbench) BLKBENCH=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --qd) QD=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --csv) CSV=$2; shift 2 ;;
        *) sed -n '2,17p' "$0" >&2; exit 2 ;;
    esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-bench-blk.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ ! -x "$BLKBENCH" ]; then
    # Not built by meson (yet): build it here, static so it runs in the busybox guest.
    echo "bench_blk: no blkbench at $BLKBENCH; compiling tests/e2e/blkbench.c" >&2
    BLKBENCH=$work/blkbench
    cc -std=gnu11 -O2 -Wall -static -pthread -o "$BLKBENCH" "$E2E_DIR/blkbench.c" || exit 1
fi
rig_args=(--timeout $((RUNS * 2 * 300 + 300)) --file "$BLKBENCH:/files/blkbench" ${STAMP:+--stamp "$STAMP"})
if [ -x "$KESTREL_BIN" ]; then
    rig_args+=(--kestrel "$KESTREL_BIN")
else
    echo "bench_blk: no kestrel binary at $KESTREL_BIN; measuring QEMU only" >&2
fi

scenario=$work/scenario.sh
cat > "$scenario" <<EOF
RUNS=$RUNS SIZE=$SIZE QD=$QD SECS=$SECS
EOF
cat >> "$scenario" <<'EOF'
C="console=ttyS0 reboot=k panic=1 quiet"
IMG=/tmp/bench.img
# Real data in every block (tmpfs would serve holes without touching memory).
head -c 1048576 /dev/urandom > /tmp/chunk
i=0
while [ $i -lt $SIZE ]; do cat /tmp/chunk; i=$((i + 1)); done > $IMG
rm -f /tmp/chunk
export GUEST_FILES="/files/blkbench:/bin/blkbench"
G=$(guest_initrd bench <<GEOF
modload virtio_pci virtio_blk
n=0
while [ ! -b /dev/vda ] && [ \$n -lt 100 ]; do usleep 100000; n=\$((n + 1)); done
blkbench seq /dev/vda
blkbench rand /dev/vda $QD $SECS
GEOF
)
for i in $(seq $RUNS); do
    if [ -x "$KESTREL" ]; then
        run_vmm -t 300 kestrel-$i kestrel --memory 512M --kernel $VMLINUZ --initrd $G \
            --cmdline "$C" --disk path=$IMG
    fi
    run_vmm -t 300 qemu-$i qemu-system-x86_64 -accel kvm -cpu host -m 512M -nodefaults \
        -nographic -serial stdio -no-reboot -L /usr/share/qemu -kernel $VMLINUZ -initrd $G \
        -append "$C" -drive file=$IMG,if=virtio,format=raw
done
EOF

echo "# bench_blk: $RUNS rounds per VMM, ${SIZE} MiB raw image on the test host's tmpfs, rand QD $QD for ${SECS}s"
if ! rig_run "$scenario" "${rig_args[@]}"; then
    echo "bench_blk: the test host did not finish the scenario (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"

python3 "$REPO_ROOT/bench/records.py" blk "$RUN_DIR" --runs "$RUNS" --qd "$QD" ${CSV:+--csv "$CSV"}
