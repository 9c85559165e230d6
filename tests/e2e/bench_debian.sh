#!/usr/bin/env bash
# Boot-time benchmark of the real Debian system (guest-images/build-debian.sh): kestrel vs
# QEMU booting the same vmlinuz, initramfs-tools initrd and root image, in ONE test-host
# boot, alternating, ROUNDS times:
#   kestrel-pci    every device on virtio-pci        qemu-q35      -M q35, virtio-*-pci
#   kestrel-mmio   --transport mmio (found by ACPI)  qemu-microvm  -M microvm,acpi=on,
#                                                                  virtio-*-device (mmio)
# 1 vCPU, 1 GiB, disk /dev/vda (the image, attached to the test host with rig.py --drive),
# a NIC on tap kd0 with vhost-net, kestrel.test=poweroff. Per boot, from the guest's report
# unit (seconds since the kernel started, CLOCK_MONOTONIC):
#   /init         the kernel ran the initramfs's /init ("Run /init as init process")
#   systemd       systemd started in the real root (UserspaceTimestampMonotonic)
#   multi-user    multi-user.target reached (its ActiveEnterTimestampMonotonic)
# and from the test host: launch -> the report's MULTI-USER line (wall, polled every
# 0.2 s) and launch -> VMM exit after the guest's poweroff. Prints medians (bench/records.py;
# --csv FILE: every sample there too, for bench/run.sh); numbers only, never fails on them.
# Not a meson test.
#   bench_debian.sh [--kestrel PATH] [--stamp PATH] [--rounds N] [--csv FILE]
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build/kestrel
STAMP=
ROUNDS=3
CSV=
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --csv) CSV=$2; shift 2 ;;
        *) sed -n '2,18p' "$0" >&2; exit 2 ;;
    esac
done
[ -x "$KESTREL_BIN" ] || { echo "bench_debian: no kestrel binary at $KESTREL_BIN" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-bench-debian.XXXXXX")
trap 'rm -rf "$work"' EXIT
debian_image "$work" || exit 1

cat > "$work/scenario.sh" <<EOF
ROUNDS=$ROUNDS
EOF
cat >> "$work/scenario.sh" <<'EOF'
K=/files/debian-vmlinuz
I=/files/debian-initrd.img
C="console=ttyS0 root=/dev/vda ro quiet kestrel.test=poweroff"
KEST="kestrel --kernel $K --initrd $I --memory 1G --disk path=/dev/vda --net tap=kd0"
# The same machine for QEMU: 1 vCPU, 1 GiB, the disk buffered in the host page cache as
# kestrel's is (cache=writeback), vhost-net as kestrel's vhost=auto picks here.
QDEV="-m 1G -kernel $K -initrd $I -drive file=/dev/vda,format=raw,if=none,id=d0
 -netdev tap,id=n0,ifname=kd0,script=no,downscript=no,vhost=on"
Q35="$QEMU_KVM -M q35 $QDEV -device virtio-blk-pci,drive=d0
 -device virtio-net-pci,netdev=n0,romfile= -append"
MICROVM="$QEMU_KVM -M microvm,acpi=on $QDEV -device virtio-blk-device,drive=d0
 -device virtio-net-device,netdev=n0 -append"
wait_for 30 test -b /dev/vda || { echo "H: NO-VDA: the image disk (rig.py --drive) is missing"; exit 1; }

# one NAME CMD...: boot, time launch -> MULTI-USER line and launch -> exit.
one() {
    local name=$1 t0 mu=n/a thp=n/a n=0; shift
    host_settle
    t0=$(stamp now)
    L=400 start_vmm "$name" "$@"
    host_tap kd0 10.78.0.1 > /dev/null 2>&1
    while kill -0 "$VP" 2> /dev/null && [ $n -lt 2000 ]; do
        if grep -qF "KDEB: MULTI-USER" "$RIG_WORK/$name.out" 2> /dev/null; then
            mu=$(awk "BEGIN{printf \"%.1f\", $(stamp now) - $t0}")
            thp=$(awk '/AnonHugePages/ {print $2 / 1024}' /proc/meminfo); break
        fi
        usleep 200000; n=$((n + 1))
    done
    wait $VP
    echo "H: BENCH $name mu-wall=$mu thp-mib=$thp exit-wall=$(awk "BEGIN{printf \"%.1f\", $(stamp now) - $t0}")"
}
for r in $(seq $ROUNDS); do
    one kestrel-pci-$r $KEST --transport pci --cmdline "$C"
    one qemu-q35-$r $Q35 "$C"
    one kestrel-mmio-$r $KEST --transport mmio --cmdline "$C"
    one qemu-microvm-$r $MICROVM "$C"
done
EOF

echo "# bench_debian: $ROUNDS rounds; seconds; guest times since the kernel started"
rig_run "$work/scenario.sh" --kestrel "$KESTREL_BIN" ${STAMP:+--stamp "$STAMP"} \
    "${DEB_RIG_ARGS[@]}" --timeout $((ROUNDS * 4 * 420 + 120)) ||
    echo "bench_debian: the test host did not finish the scenario (see $RUN_DIR/console.log)"

python3 "$REPO_ROOT/bench/records.py" debian "$RUN_DIR" --runs "$ROUNDS" ${CSV:+--csv "$CSV"}
st=$?
echo "# run dir: $RUN_DIR"
exit $st
