#!/usr/bin/env bash
# Boot benchmark: kestrel vs QEMU booting the same bzImage + initramfs, in ONE run of the
# nested test host so both see the same conditions. For each VMM, RUNS times (median):
#   1. execve -> first KVM_RUN ioctl, from `strace -f -ttt -e trace=execve,ioctl`
#   2. launch -> the guest's KESTREL-GUEST-INIT-OK line, from tests/e2e/stamp (no strace)
# Prints a table with the ratio kestrel/QEMU. Never fails on the numbers; a VMM that
# does not boot shows n/a. Not part of `meson test`: run by hand and by .ci/run.
#
#   bench_boot.sh [--arch x86_64|arm64] [--kestrel PATH] [--stamp PATH] [--runs N]
#                 [--cmdline STR] [--memory SIZE]
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
while [ $# -gt 0 ]; do
    case $1 in
        --arch) set_arch "$2"; shift 2 ;;
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --cmdline) BCMD=$2; shift 2 ;;
        --memory) MEM=$2; shift 2 ;;
        *) sed -n '2,15p' "$0" >&2; exit 2 ;;
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

python3 - "$RUN_DIR/records" "$RUNS" <<'EOF'
import os, statistics, sys
rec, runs = sys.argv[1], int(sys.argv[2])

def read(name, f="stdout"):
    try:
        with open(os.path.join(rec, name, f), "rb") as fh:
            return fh.read().decode("latin-1")
    except OSError:
        return None

def first_kvm_run(vmm, i):
    """ms from execve to the first KVM_RUN, from strace -ttt lines 'PID TIME call'."""
    text = read("strace-log-%s-%d" % (vmm, i))
    if not text:
        return None
    t_exec = t_run = None
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        if " execve(" in " " + parts[2] and t_exec is None:
            t_exec = float(parts[1])
        elif "KVM_RUN" in parts[2] and t_run is None:
            t_run = float(parts[1])
    return (t_run - t_exec) * 1000 if t_exec is not None and t_run is not None else None

def init_line(vmm, i):
    """s from launch to KESTREL-GUEST-INIT-OK, from stamp's 'SECONDS line' output."""
    text = read("stamp-%s-%d" % (vmm, i))
    if not text:
        return None
    for line in text.splitlines():
        if "KESTREL-GUEST-INIT-OK" in line:
            return float(line.split()[0])
    return None

def med(vals):
    vals = [v for v in vals if v is not None]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)

rows = [("execve -> first KVM_RUN", "ms", first_kvm_run, "%.1f"),
        ("launch -> KESTREL-GUEST-INIT-OK", "s", init_line, "%.3f")]
table = []
for label, unit, fn, fmt in rows:
    cells, meds = [], []
    for vmm in ("kestrel", "qemu"):
        samples = [fn(vmm, i) for i in range(1, runs + 1)]
        print("#   %-7s %-32s runs: %s" % (vmm, label, ", ".join("n/a" if s is None else fmt % s for s in samples)))
        m, n = med(samples)
        meds.append(m)
        cells.append(("n/a" if m is None else (fmt % m) + " " + unit) + ("" if n in (0, runs) else " (%d/%d)" % (n, runs)))
    ratio = "%.2f" % (meds[0] / meds[1]) if None not in meds and meds[1] else "n/a"
    table.append("%-34s %14s %14s %9s" % (label, cells[0], cells[1], ratio))
print("%-34s %14s %14s %9s" % ("median of %d runs" % runs, "kestrel", "qemu", "kestrel/qemu"))
print("\n".join(table))
EOF
exit 0
