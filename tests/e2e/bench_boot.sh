#!/usr/bin/env bash
# Boot benchmark: kestrel vs QEMU booting the same bzImage + initramfs, in ONE run of the
# nested test host so both see the same conditions. For each VMM, RUNS times (median):
#   1. execve -> first KVM_RUN ioctl, from `strace -f -ttt -e trace=execve,ioctl`
#   2. launch -> the guest's KESTREL-GUEST-INIT-OK line, from tests/e2e/stamp (no strace)
# Prints a table with the ratio kestrel/QEMU (bench/records.py); --csv FILE: every sample
# there too (bench/summarize.py's format, for bench/run.sh). Never fails on the numbers; a
# VMM that does not boot shows n/a. Not part of `meson test`: run by hand and by .ci/run.
#
#   bench_boot.sh [--arch x86_64|arm64] [--kestrel PATH] [--stamp PATH] [--runs N]
#                 [--cmdline STR] [--memory SIZE] [--csv FILE]
# --arch arm64: the cross-built kestrel (unless --kestrel) against QEMU -M virt in the
# nested arm64 test host, booting Debian's arm64 Image (QEMU's console is its PL011).
#
# Absolute numbers are for a guest nested under a TCG-emulated host: every guest exit
# is expensive here, so only the kestrel/QEMU ratio carries over to real hardware.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=
STAMP=
RUNS=3
# quiet: measure the VMM and the boot path, not the cost of printing the kernel log.
BCMD="console=ttyS0 reboot=k panic=1 quiet"
MEM=512M
CSV=
while [ $# -gt 0 ]; do
    case $1 in
        --arch) set_arch "$2"; shift 2 ;;
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --cmdline) BCMD=$2; shift 2 ;;
        --memory) MEM=$2; shift 2 ;;
        --csv) CSV=$2; shift 2 ;;
        *) sed -n '2,16p' "$0" >&2; exit 2 ;;
    esac
done
[ -n "$KESTREL_BIN" ] || KESTREL_BIN=$(default_kestrel)
rig_args=(--timeout $((RUNS * 2 * 200 + 60)) ${STAMP:+--stamp "$STAMP"})
if [ -x "$KESTREL_BIN" ]; then
    rig_args+=(--kestrel "$KESTREL_BIN")
else
    echo "bench_boot: no kestrel binary at $KESTREL_BIN; measuring QEMU only" >&2
fi

scenario=$(mktemp "${TMPDIR:-/tmp}/kestrel-bench.XXXXXX")
trap 'rm -f "$scenario"' EXIT
cat > "$scenario" <<EOF
C='$BCMD'
QC=\$(echo "\$C" | sed "s/console=ttyS0/console=\$QEMU_CONSOLE/")
# The guest reboots as soon as /init has printed its line, so each run ends by itself.
G=\$(echo 'true' | guest_initrd nop)
K="kestrel --memory $MEM --kernel \$VMLINUZ --initrd \$G --cmdline"
Q="\$QEMU_KVM -m $MEM -kernel \$VMLINUZ -initrd \$G -append"
for i in \$(seq $RUNS); do
    for v in kestrel qemu; do
        if [ \$v = kestrel ]; then cmd=\$K c=\$C; [ -x \$KESTREL ] || continue; else cmd=\$Q c=\$QC; fi
        # 1: first KVM_RUN under strace (the VMM is killed right after it).
        first_kvm_run strace-log-\$v-\$i \$cmd "\$c"
        # 2: wall time to the init line, every output line stamped from launch.
        run_vmm -t 120 stamp-\$v-\$i stamp \$cmd "\$c"
    done
done
EOF

echo "# bench_boot: $ARCH, $RUNS runs per VMM, cmdline \"$BCMD\", memory $MEM"
if ! rig_run "$scenario" "${rig_args[@]}"; then
    echo "bench_boot: the test host did not finish the scenario (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"

python3 "$REPO_ROOT/bench/records.py" boot "$RUN_DIR" --runs "$RUNS" ${CSV:+--csv "$CSV"}
exit 0
