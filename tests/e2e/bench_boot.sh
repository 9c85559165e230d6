#!/usr/bin/env bash
# Boot benchmark: kestrel vs QEMU booting the same bzImage + initramfs, in ONE run of the
# nested test host so both see the same conditions. For each VMM, RUNS times (median):
#   1. execve -> first KVM_RUN ioctl, from `strace -f --seccomp-bpf -ttt -e trace=execve,ioctl`
#   2. launch -> the guest's KESTREL-GUEST-INIT-OK line, from tests/e2e/stamp (no strace),
#      and the guest's own uptime there (its /init's next step prints /proc/uptime)
#   3. the VMM's memory overhead with a disk, a NIC (tap, vhost=off) and the serial console:
#      once the guest has its virtio drivers up (eth0 up, /dev/vda there), the host reads
#      /proc/PID/smaps: the Rss of every mapping except guest RAM (the anonymous mappings at
#      least as big as --memory), and the peak, VmHWM minus guest RAM's Rss (VmHWM only
#      grows and guest RAM's Rss only grows, so this is a lower bound of the peak overhead).
#      The record mem-VMM-I also lists the 40 biggest other mappings, for diagnosis.
# kestrel keeps the kernels it unpacked on the host in a cache (KESTREL_CACHE_DIR, here an
# empty directory on the test host's tmpfs): one unmeasured kestrel boot (record
# coldboot-kestrel, the first boot of this kernel: a cache miss that pays the decode) comes
# before the measured runs, so every measured kestrel run is a cache hit, the case of a
# kernel booted again; that first boot's launch -> init and -v line are printed after the
# table. (QEMU has no such cache: its guest decompresses itself every boot.)
# On x86 a third VMM line, kguest, boots the bzImage with kestrel --kernel-unpack guest (the
# guest decompresses itself, as under QEMU); its rows are marked "unpack guest".
# Before each timed run (first KVM_RUN, launch -> init) `stamp scrub` faults in and frees
# guest RAM + 128 MiB: under the emulated test host, the first write to pages an earlier VM
# ran code from costs ~2 s in all (the emulator drops its translations of them), and the VMM
# that gets those pages first would pay it inside its timed start-up (docs/performance.md,
# "A VM's pages cost the next VM").
# Prints a table with the ratio kestrel/QEMU (bench/records.py); --csv FILE: every sample
# there too (bench/summarize.py's format, for bench/run.sh). Never fails on the numbers; a
# VMM that does not boot shows n/a. Not part of `meson test`: run by hand and by .ci/run.
#
#   bench_boot.sh [--arch x86_64|arm64] [--kestrel PATH] [--stamp PATH] [--runs N]
#                 [--cmdline STR] [--memory SIZE] [--csv FILE] [--image vmlinuz|vmlinux]
# --image vmlinux: both VMMs boot the uncompressed ELF vmlinux (PVH entry) instead of the
# bzImage, to measure what decompressing in the guest costs.
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
BCMD=$BENCH_CMDLINE
MEM=512M
CSV=
KIMG=VMLINUZ
while [ $# -gt 0 ]; do
    case $1 in
        --arch) set_arch "$2"; shift 2 ;;
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --cmdline) BCMD=$2; shift 2 ;;
        --memory) MEM=$2; shift 2 ;;
        --csv) CSV=$2; shift 2 ;;
        --image)
            case $2 in
                vmlinuz) KIMG=VMLINUZ ;;
                vmlinux) KIMG=VMLINUX ;;
                *) echo "bench_boot: --image vmlinuz or vmlinux, not '$2'" >&2; exit 2 ;;
            esac
            shift 2 ;;
        *) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2; exit 2 ;;
    esac
done
[ -n "$KESTREL_BIN" ] || KESTREL_BIN=$(default_kestrel)
rig_args=(--timeout $((RUNS * 2 * 200 + 60)) ${STAMP:+--stamp "$STAMP"})
if [ -x "$KESTREL_BIN" ]; then
    rig_args+=(--kestrel "$KESTREL_BIN")
else
    echo "bench_boot: no kestrel binary at $KESTREL_BIN; measuring QEMU only" >&2
fi

# Guest RAM in KiB, for telling its mappings apart in smaps.
case $MEM in
    *G) MEM_KIB=$((${MEM%G} * 1048576)) ;;
    *M) MEM_KIB=$((${MEM%M} * 1024)) ;;
    *) echo "bench_boot: --memory takes NM or NG" >&2; exit 2 ;;
esac
# Scrub a little more than one VM's memory: freed pages are reused newest first.
SCRUB_MB=$((MEM_KIB / 1024 + 128))
# kestrel's arguments for the timed runs, with and without --kernel-unpack guest.
KARGS="--memory $MEM --kernel \$$KIMG --initrd \$G --cmdline"
# The bzImage again with --kernel-unpack guest (x86 only; an ELF has nothing to unpack).
KGUEST=
[ "$ARCH" = x86_64 ] && [ "$KIMG" = VMLINUZ ] && KGUEST=kguest

scenario=$(mktemp "${TMPDIR:-/tmp}/kestrel-bench.XXXXXX")
trap 'rm -f "$scenario"' EXIT
cat > "$scenario" <<EOF
C='$BCMD'
QC=\$(echo "\$C" | sed "s/console=ttyS0/console=\$QEMU_CONSOLE/")
# The guest reboots as soon as /init has printed its line (and its uptime), so each run
# ends by itself.
G=\$(echo 'echo "KESTREL-GUEST-UPTIME \$(cut -d" " -f1 /proc/uptime)"' | guest_initrd nop)
# 3: a guest that brings its disk and NIC up, then waits for the host to read smaps.
GM=\$(guest_initrd mem <<'GEOF'
modload virtio_pci virtio_blk virtio_net > /dev/null 2>&1
n=0
while { [ ! -b /dev/vda ] || [ ! -e /sys/class/net/eth0 ]; } && [ \$n -lt 200 ]; do usleep 100000; n=\$((n + 1)); done
ip link set eth0 up
echo KESTREL-BENCH-MEM-READY
sleep 120
GEOF
)
head -c 16777216 /dev/zero > /tmp/mem.img
# mem_sample NAME CMD...: run the VMM until the guest is ready, then record its smaps
# summary (KiB) and stop it (SIGINT: both VMMs end at once).
mem_sample() {
    local name=\$1 f=\$RIG_WORK/\$1.mem
    shift
    L=180
    start_vmm \$name "\$@"
    : > \$f
    if [ -n "\$KP" ] && wait_console \$name KESTREL-BENCH-MEM-READY 150; then
        smaps_summary \$KP $MEM_KIB > \$f 2> \$f.maps
        grep -E '^(VmHWM|VmRSS|Threads):' /proc/\$KP/status >> \$f
        sort -k2 -n -r \$f.maps | head -40 >> \$f
    fi
    [ -n "\$KP" ] && kill -INT \$KP
    wait \$VP
    rig_put \$name \$f
}
QDISK="-drive file=/tmp/mem.img,if=none,id=d0,format=raw -device virtio-blk-pci,drive=d0"
QNET="-netdev tap,id=n0,ifname=km0,script=no,downscript=no,vhost=off -device virtio-net-pci,netdev=n0,romfile="
K="kestrel $KARGS"
KG="kestrel --kernel-unpack guest $KARGS"
Q="\$QEMU_KVM -m $MEM -kernel \$$KIMG -initrd \$G -append"
# The cache, empty; one unmeasured first boot fills it (every measured kestrel run: a hit).
export KESTREL_CACHE_DIR=\$RIG_WORK/kernel-cache
rm -rf \$KESTREL_CACHE_DIR
[ -x \$KESTREL ] && run_vmm -t 120 coldboot-kestrel stamp kestrel -v $KARGS "\$C"
for i in \$(seq $RUNS); do
    for v in kestrel $KGUEST qemu; do
        case \$v in
            kestrel) cmd=\$K c=\$C ;;
            kguest) cmd=\$KG c=\$C ;;
            qemu) cmd=\$Q c=\$QC ;;
        esac
        [ \$v = qemu ] || [ -x \$KESTREL ] || continue
        # 1: first KVM_RUN under strace (the VMM is killed right after it). Each timed run
        # starts on scrubbed memory (the header).
        stamp scrub $SCRUB_MB > /dev/null
        first_kvm_run strace-log-\$v-\$i \$cmd "\$c"
        # 2: wall time to the init line, every output line stamped from launch.
        stamp scrub $SCRUB_MB > /dev/null
        run_vmm -t 120 stamp-\$v-\$i stamp \$cmd "\$c"
    done
    # 3: memory, the same devices on both.
    if [ -x \$KESTREL ]; then
        mem_sample mem-kestrel-\$i kestrel --memory $MEM --kernel \$$KIMG --initrd \$GM \\
            --cmdline "\$C" --disk path=/tmp/mem.img --net tap=km0,vhost=off
    fi
    mem_sample mem-qemu-\$i \$QEMU_KVM -m $MEM -kernel \$$KIMG -initrd \$GM \\
        -append "\$QC" \$QDISK \$QNET
done
EOF

echo "# bench_boot: $ARCH, $RUNS runs per VMM, cmdline \"$BCMD\", memory $MEM, kernel \$$KIMG"
if ! rig_run "$scenario" "${rig_args[@]}"; then
    echo "bench_boot: the test host did not finish the scenario (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"

python3 "$REPO_ROOT/bench/records.py" boot "$RUN_DIR" --runs "$RUNS" ${CSV:+--csv "$CSV"}
if has_rec coldboot-kestrel; then
    t=$(rec_out coldboot-kestrel | awk '/KESTREL-GUEST-INIT-OK/ { print $1; exit }')
    echo "kestrel first boot (cache miss, unmeasured warm-up): launch -> init ${t:-n/a} s"
    rec_err coldboot-kestrel | grep -E '^kestrel: kernel' | sed 's/^/  /'
fi
exit 0
