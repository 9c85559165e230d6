#!/usr/bin/env bash
# Boot checks for a VMM with kestrel's command line, inside the nested test host.
#
#   test_boot.sh [--arch x86_64|arm64] [--vmm kestrel|qemu] [--kestrel PATH] [--stamp PATH]
#                [--checks LIST]
#
# --vmm qemu runs the same checks against qemu-kestrel (QEMU behind kestrel's CLI): a
# self-test of the rig and of the checks. --arch arm64 runs them in the nested arm64 test
# host, with the cross-built kestrel (arm64_kestrel) unless --kestrel names one. LIST is a
# comma list of:
#   bzimage  boot Debian's kernel (x86: the bzImage; arm64: the Image), the guest prints
#            KESTREL-GUEST-INIT-OK, exit 0; on x86 kestrel says (-v) that it decompressed
#            the bzImage's xz payload itself
#   guestunpack  (x86, kestrel) the bzImage with --kernel-unpack guest: the kernel
#            decompresses itself, boots to init, exit 0
#   elf      the same from the ELF vmlinux (x86 only)
#   kcache   (x86, kestrel) two boots of the bzImage with a fresh KESTREL_CACHE_DIR: the
#            first is a cache miss (-v: "...; cache miss)", "kernel cache: stored"), the
#            second a hit ("xz payload from the cache"); both boot to init, exit 0
#   gzimage  the same from the Image gzip-compressed in the test host (arm64 only)
#   reboot   guest `reboot -f` -> exit status 0
#   poweroff guest `poweroff -f` (ACPI S5 on x86, PSCI SYSTEM_OFF on arm64) -> exit status 0
#   cpus     --cpus 2 -> the guest counts 2 processors; x86: its timer is "lapic-deadline"
#   memory   --memory 512M -> MemTotal within 2% of QEMU (x86: -m 512M; arm64: -M virt
#            -m 512M) on the same kernel
#   debugexit  guest writes 5 to the debug-exit device (x86 port 0xf4, arm64 MMIO
#            0x09040000) -> exit status (5<<1)|1 = 11 (kestrel only on arm64: QEMU's virt
#            machine has no such device)
#   panic    a kernel that panics (no init, no root) with panic=1 ends the VMM, exit 0
#   sigterm  (arm64, kestrel) SIGTERM to kestrel presses the PL061 gpio-keys power key: the
#            guest's gpio-keys driver takes the key's interrupt, the guest powers off -> 0
# All listed checks share one boot of the test host. Prints PASS/FAIL lines and
# "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

VMM=kestrel
KESTREL_BIN=
CHECKS=
STAMP=
LIMIT=${E2E_VMM_TIMEOUT:-120}   # seconds per VMM run inside the test host
while [ $# -gt 0 ]; do
    case $1 in
        --arch) set_arch "$2"; shift 2 ;;
        --vmm) VMM=$2; shift 2 ;;
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --checks) CHECKS=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        *) echo "usage: $0 [--arch x86_64|arm64] [--vmm kestrel|qemu] [--kestrel PATH] [--stamp PATH] [--checks LIST]" >&2; exit 2 ;;
    esac
done
if [ "$ARCH" = arm64 ]; then
    CHECKS=${CHECKS:-bzimage,gzimage,reboot,poweroff,cpus,memory,rss,debugexit,panic,sigterm}
    [[ ",$CHECKS," == *,elf,* ]] && { echo "--checks elf: x86 only (arm64 boots the Image)" >&2; exit 2; }
    # No debug-exit device in QEMU's virt machine.
    [ "$VMM" = qemu ] && CHECKS=$(echo ",$CHECKS," | sed 's/,rss,/,/; s/,debugexit,/,/; s/,sigterm,/,/; s/^,//; s/,$//')
else
    CHECKS=${CHECKS:-bzimage,guestunpack,kcache,elf,reboot,poweroff,cpus,memory,rss,debugexit,panic}
    # QEMU has no such choice: it always leaves the bzImage to decompress itself.
    [ "$VMM" = qemu ] && CHECKS=$(echo ",$CHECKS," | sed 's/,guestunpack,/,/; s/,kcache,/,/; s/,rss,/,/; s/^,//; s/,$//')
fi
rig_args=(--timeout 580 ${STAMP:+--stamp "$STAMP"})
case $VMM in
    kestrel)
        [ -n "$KESTREL_BIN" ] || KESTREL_BIN=$(default_kestrel) ||
            { echo "FAIL: building the $ARCH kestrel"; echo "0 passed, 1 failed"; exit 1; }
        [ -x "$KESTREL_BIN" ] || { echo "FAIL: no kestrel binary at $KESTREL_BIN"; echo "0 passed, 1 failed"; exit 1; }
        rig_args+=(--kestrel "$KESTREL_BIN" --env VMM=kestrel) ;;
    qemu) rig_args+=(--env VMM=qemu-kestrel) ;;
    *) echo "unknown --vmm $VMM" >&2; exit 2 ;;
esac
want() { [[ ",$CHECKS," == *",$1,"* ]]; }

# The default cmdline is used where the check is about booting; elsewhere `quiet`
# saves time (every console byte is a VM exit, and nested exits are slow here).
CMD="console=ttyS0 reboot=k panic=1"
QCMD="$CMD quiet"

scenario=$(mktemp "${TMPDIR:-/tmp}/kestrel-scenario.XXXXXX")
trap 'rm -f "$scenario"' EXIT
{
    echo "L=$LIMIT"
    echo "rig_note \"VMM under test: \$VMM\""
    # A guest scenario that does nothing: the guest's /init reboots after it.
    echo 'G_NOP=$(echo "echo nothing to do" | guest_initrd nop)'
    # kestrel's cache of unpacked kernels: on the test host's tmpfs, empty at first (so the
    # bzimage check's boot is the first, a miss; later boots of the bzImage are hits).
    echo 'export KESTREL_CACHE_DIR=$RIG_WORK/kernel-cache; rm -rf $KESTREL_CACHE_DIR'
    want bzimage && echo "run_vmm -t \$L bzimage \$VMM -v --kernel \$VMLINUZ --initrd \$G_NOP --cmdline '$CMD'"
    want guestunpack && echo "run_vmm -t \$L guestunpack \$VMM -v --kernel-unpack guest --kernel \$VMLINUZ --initrd \$G_NOP --cmdline '$CMD'"
    want kcache && cat <<EOF
export KESTREL_CACHE_DIR=\$RIG_WORK/kcache-check; rm -rf \$KESTREL_CACHE_DIR
run_vmm -t \$L kcache-miss \$VMM -v --kernel \$VMLINUZ --initrd \$G_NOP --cmdline '$QCMD'
run_vmm -t \$L kcache-hit \$VMM -v --kernel \$VMLINUZ --initrd \$G_NOP --cmdline '$QCMD'
ls -l \$KESTREL_CACHE_DIR
export KESTREL_CACHE_DIR=\$RIG_WORK/kernel-cache
EOF
    want gzimage && cat <<EOF
gzip -1 -c \$VMLINUZ > \$RIG_WORK/Image.gz
run_vmm -t \$L gzimage \$VMM --kernel \$RIG_WORK/Image.gz --initrd \$G_NOP --cmdline '$CMD'
EOF
    want elf && echo "run_vmm -t \$L elf \$VMM --kernel \$VMLINUX --initrd \$G_NOP --cmdline '$CMD'"
    want reboot && cat <<EOF
G=\$(echo 'echo rebooting-now; reboot -f; sleep 30' | guest_initrd reboot)
run_vmm -t \$L reboot \$VMM --kernel \$VMLINUZ --initrd \$G --cmdline '$QCMD'
EOF
    want poweroff && cat <<EOF
G=\$(echo 'echo powering-off-now; poweroff -f; sleep 30' | guest_initrd poweroff)
run_vmm -t \$L poweroff \$VMM --kernel \$VMLINUZ --initrd \$G --cmdline '$QCMD'
EOF
    want cpus && cat <<EOF
G=\$(echo 'echo "NCPU=\$(grep -c ^processor /proc/cpuinfo) CLOCKEVENT=\$(cat /sys/devices/system/clockevents/clockevent0/current_device)"' | guest_initrd cpus)
run_vmm -t \$L cpus \$VMM --cpus 2 --kernel \$VMLINUZ --initrd \$G --cmdline '$QCMD'
EOF
    want memory && cat <<EOF
G=\$(echo 'grep MemTotal /proc/meminfo' | guest_initrd mem)
run_vmm -t \$L memory \$VMM --memory 512M --kernel \$VMLINUZ --initrd \$G --cmdline '$QCMD'
run_vmm -t \$L memory-qemu \$QEMU_KVM -m 512M -kernel \$VMLINUZ -initrd \$G \\
    -append "\$(echo '$QCMD' | sed "s/console=ttyS0/console=\$QEMU_CONSOLE/")"
EOF
    # kestrel's memory outside guest RAM with a disk, a NIC and the console, once the guest
    # runs (smaps_summary; the test host's kernel has transparent huge pages "always").
    want rss && cat <<EOF
G=\$(echo 'echo rss-ready; sleep 5' | guest_initrd rss)
head -c 1048576 /dev/zero > \$RIG_WORK/rss.img
start_vmm rss \$VMM --memory 256M --kernel \$VMLINUZ --initrd \$G --cmdline '$QCMD' \\
    --disk path=\$RIG_WORK/rss.img --net tap=krss0,vhost=off
wait_console rss rss-ready 60 && smaps_summary \$KP 262144 > \$RIG_WORK/rss-smaps 2> /dev/null
wait \$VP
# After the VMM's own record: two records written at once would interleave.
[ -s \$RIG_WORK/rss-smaps ] && rig_put rss-smaps \$RIG_WORK/rss-smaps
EOF
    want debugexit && cat <<EOF
G=\$(echo 'echo writing-debug-exit; debug-exit 5; sleep 30' | guest_initrd dbgexit)
run_vmm -t \$L debugexit \$VMM --kernel \$VMLINUZ --initrd \$G --cmdline '$QCMD'
EOF
    # With rdinit= pointing nowhere the kernel tries to mount a root fs, finds none and
    # panics; panic=1 then reboots through the keyboard controller (reboot=k).
    want panic && echo "run_vmm -t \$L panic \$VMM --kernel \$VMLINUZ --initrd \$G_NOP --cmdline '$QCMD rdinit=/nonexistent'"
    # The guest's gpio-keys driver counts the key's interrupts in /proc/interrupts (its line
    # is the key's label); the guest powers off once the count moves. (No evdev in the
    # busybox guest: the count is the kernel's own proof that the key was pressed.)
    want sigterm && cat <<EOF
cat > \$RIG_WORK/sigterm-guest.sh <<'GEOF'
key() { awk '/GPIO Key Poweroff/ {s = 0; for (i = 2; i <= NF && \$i ~ /^[0-9]+\$/; i++) s += \$i; print s}' /proc/interrupts; }
modload gpio_keys
for i in 1 2 3 4 5 6 7 8 9 10; do [ -n "\$(key)" ] && break; sleep 0.5; done
echo "power-key-irq \$(grep 'GPIO Key Poweroff' /proc/interrupts | tr -s ' ')"
echo waiting-for-power-key
n=0; while [ "\$(key)" = 0 ] && [ \$n -lt 300 ]; do sleep 0.2; n=\$((n + 1)); done
[ "\$(key)" -gt 0 ] 2> /dev/null && echo power-key-pressed
poweroff -f
GEOF
G=\$(guest_initrd sigterm \$RIG_WORK/sigterm-guest.sh)
start_vmm sigterm \$VMM --kernel \$VMLINUZ --initrd \$G --cmdline '$QCMD'
wait_console sigterm waiting-for-power-key 60 && kill -TERM "\$KP"
wait \$VP
EOF
} > "$scenario"

echo "# test_boot: arch=$ARCH vmm=$VMM checks=$CHECKS"
if ! rig_run "$scenario" "${rig_args[@]}"; then
    fail "test host ran the scenario to its end (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"


want bzimage && check_rec bzimage "Debian's kernel (x86: bzImage, arm64: Image) boots to init, exit 0" \
    all "expect_out bzimage KESTREL-GUEST-INIT-OK" "expect_status bzimage 0"
if want bzimage && [ "$ARCH" != arm64 ] && [ "$VMM" = kestrel ]; then
    unpacked() { rec_err bzimage | grep -E '^kestrel: kernel: xz payload unpacked on the host \([0-9.]+ MB in [0-9]+ ms'; }
    check_rec bzimage "kestrel decompressed the bzImage's xz payload on the host (-v line)" unpacked
fi
# x86: with the MTRRs off, Linux 6.1 skips its PAT setup too and the guest has no
# write-combining mappings; firmware (and so QEMU) leaves them on.
if want bzimage && [ "$ARCH" = x86_64 ]; then
    check_rec bzimage "x86: MTRRs on, the guest's PAT has write-combining (WB WC UC- UC WB WP UC- WT)" \
        all "expect_out bzimage 'x86/PAT: Configuration [0-7]: WB  WC  UC- UC  WB  WP  UC- WT'"
fi
want guestunpack && check_rec guestunpack "--kernel-unpack guest: the bzImage decompresses itself, boots to init, exit 0" \
    all "expect_out guestunpack KESTREL-GUEST-INIT-OK" "expect_status guestunpack 0" \
        "rec_err guestunpack | grep -F 'kernel: decompressed by the guest (--kernel-unpack guest)' > /dev/null"
if want kcache; then
    check_rec kcache-miss "kernel cache, first boot: a miss, the entry stored (its zero runs as holes), boots to init, exit 0" \
        all "expect_out kcache-miss KESTREL-GUEST-INIT-OK" "expect_status kcache-miss 0" \
        "rec_err kcache-miss | grep -E '^kestrel: kernel: xz payload unpacked on the host \(.*; cache miss\)'" \
        "rec_err kcache-miss | grep -E 'kestrel: kernel cache: stored .* \\([1-9][0-9.]* MB of zeros as holes\\)'"
    check_rec kcache-hit "kernel cache, second boot: a hit (no decoder), boots to init, exit 0" \
        all "expect_out kcache-hit KESTREL-GUEST-INIT-OK" "expect_status kcache-hit 0" \
        "rec_err kcache-hit | grep -E '^kestrel: kernel: xz payload from the cache \([0-9.]+ MB in [0-9]+ ms\)'"
fi
want gzimage && check_rec gzimage "the gzip-compressed Image boots to init, exit 0" \
    all "expect_out gzimage KESTREL-GUEST-INIT-OK" "expect_status gzimage 0"
want elf && check_rec elf "ELF vmlinux boots to init, exit 0" \
    all "expect_out elf KESTREL-GUEST-INIT-OK" "expect_status elf 0"
want reboot && check_rec reboot "guest reboot -f ends the VMM with status 0" \
    all "expect_out reboot rebooting-now" "expect_status reboot 0"
want poweroff && check_rec poweroff "guest poweroff -f ends the VMM with status 0" \
    all "expect_out poweroff powering-off-now" "expect_status poweroff 0"
want cpus && check_rec cpus "--cpus 2: the guest sees 2 processors" \
    all "expect_out cpus NCPU=2" "expect_status cpus 0"
# x86: KVM emulates the TSC-deadline timer but leaves it out of its supported CPUID; the VMM
# offers it (QEMU does), and Linux then arms its timer by deadline ("lapic-deadline").
if want cpus && [ "$ARCH" = x86_64 ]; then
    check_rec cpus "x86: the guest's timer is the LAPIC's TSC-deadline mode (lapic-deadline)" \
        all "expect_out cpus CLOCKEVENT=lapic-deadline"
fi
if want memory; then
    mem_ok() {
        local a b
        a=$(rec_out memory | tr -d '\r' | awk '/^MemTotal:/{print $2; exit}')
        b=$(rec_out memory-qemu | tr -d '\r' | awk '/^MemTotal:/{print $2; exit}')
        echo "  MemTotal: $VMM ${a:-?} kB, QEMU -m 512M ${b:-?} kB"
        [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" 'BEGIN{d=a-b; if(d<0)d=-d; exit !(d <= 0.02*b)}'
    }
    has_rec memory-qemu || fail "QEMU reference run for the memory check finished"
    check_rec memory "--memory 512M: MemTotal within 2% of QEMU -m 512M" mem_ok
fi
if want rss; then
    # Thread stacks on huge pages once cost 2 MiB each (docs/performance.md, "Memory").
    small() {
        local rss huge
        rss=$(rec_out rss-smaps | awk '/^other_rss_kib/ {print $2}')
        huge=$(rec_out rss-smaps | awk '/^other_anon_huge_kib/ {print $2}')
        echo "  outside guest RAM: ${rss:-?} KiB resident, ${huge:-?} KiB of it on huge pages"
        [ -n "$rss" ] && [ "$rss" -lt 4096 ] && [ "$huge" = 0 ]
    }
    check_rec rss-smaps "disk, NIC and console: under 4 MiB resident outside guest RAM, none on huge pages" small
fi
want debugexit && check_rec debugexit "guest byte 5 to the debug-exit device -> exit status 11" \
    all "expect_out debugexit writing-debug-exit" "expect_status debugexit 11"
want panic && check_rec panic "kernel panic with panic=1 ends the VMM (exit 0, no hang)" \
    all "expect_out panic 'Kernel panic'" "expect_status panic 0"
want sigterm && check_rec sigterm "SIGTERM presses the gpio-keys power key; the guest powers off, exit 0" \
    all "expect_out sigterm 'GPIO Key Poweroff'" "expect_out sigterm power-key-pressed" "expect_status sigterm 0" \
        "rec_err sigterm | grep -F 'pressed the power button' > /dev/null"
finish
