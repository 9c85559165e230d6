#!/usr/bin/env bash
# The nested arm64 test host, proved with Debian's arm64 QEMU as the inner VMM (no kestrel):
#   test_arm64_rig.sh [--deps-check PATH]
# One boot of the arm64 test host (qemu-system-aarch64 -M virt,virtualization=on under
# TCG, Debian's arm64 kernel, KVM built in). Inside it:
#   kvm       /dev/kvm, /dev/net/tun and /dev/vhost-net exist; KVM offers a vGICv3 and an
#             ITS (no GICv2 when nested), PSCI 0.2, and KVM_CAP_MAX_VCPUS >= 2
#   boot      qemu-kestrel (QEMU -M virt -accel kvm -cpu host behind kestrel's CLI) boots
#             the inner arm64 guest to KESTREL-GUEST-INIT-OK with --cpus 2 (2 CPUs
#             online through PSCI) and --memory 512M; its reboot ends QEMU with status 0
#   disks     the guest image on virtio-blk over virtio-mmio (vda) and virtio-pci (vdb),
#             both mounted as ext4 and read back
#   deps      with --deps-check (arch/arm64/cross-build.sh's BUILD_DIR/deps-check/
#             deps-check): the static aarch64 program using libfdt, zlib, liburing and
#             libseccomp runs and says ok
# Prints PASS/FAIL lines and "N passed, N failed"; exits non-zero on any failure. The
# launch → init times of the QEMU runs are printed for comparison with kestrel-arm64.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

DEPS_CHECK=
while [ $# -gt 0 ]; do
    case $1 in
        --deps-check) DEPS_CHECK=$2; shift 2 ;;
        *) echo "usage: $0 [--deps-check PATH]" >&2; exit 2 ;;
    esac
done

# kvmcaps, static for the arm64 host (it has no libc), with Debian's cross compiler.
bash "$REPO_ROOT/tests/install-deps.sh" gcc-aarch64-linux-gnu libc6-dev-arm64-cross >&2
tools=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-arm64-tools.XXXXXX")
scenario=$tools/scenario.sh
trap 'rm -rf "$tools"' EXIT
aarch64-linux-gnu-gcc -static -O2 -Wall -Wextra -Werror -o "$tools/kvmcaps" "$E2E_DIR/kvmcaps.c" ||
    { fail "cross-compile kvmcaps.c"; finish; }
set_arch arm64
rig_args=(--timeout 300 --file "$tools/kvmcaps:/usr/local/bin/kvmcaps")
[ -n "$DEPS_CHECK" ] && rig_args+=(--file "$DEPS_CHECK:/usr/local/bin/deps-check")

cat > "$scenario" <<'EOF'
rig_note "test host: $(uname -m) $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPU"
{ ls /dev/kvm /dev/net/tun /dev/vhost-net; dmesg | grep -o 'kvm \[1\]: VHE mode.*'; } > /tmp/kvm.txt 2>&1
run_vmm kvm sh -c 'cat /tmp/kvm.txt; kvmcaps'
[ -x /usr/local/bin/deps-check ] && run_vmm deps deps-check

# The QEMU reference run: 2 CPUs, 512M, the init marker, then the guest's reboot.
G=$(printf '%s\n' 'echo "NCPU=$(grep -c ^processor /proc/cpuinfo)"' 'grep MemTotal /proc/meminfo' |
    guest_initrd boot)
run_vmm -t 120 boot stamp qemu-kestrel --cpus 2 --memory 512M --kernel $VMLINUZ --initrd $G \
    --cmdline "console=ttyS0 panic=1 quiet"

# The same guest image on both virtio transports, mounted and read.
G=$(guest_initrd disks <<'GEOF'
modload virtio_mmio virtio_pci virtio_blk ext4
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vdb ] && break; sleep 0.5; done
# "vdX TRANSPORT TEXT": the driver of the virtio device's parent is the transport's.
for d in vda vdb; do
    t=$(basename "$(readlink /sys/block/$d/device/../driver)")
    mkdir -p /mnt/$d && mount -t ext4 -o ro /dev/$d /mnt/$d && echo "$d $t $(cat /mnt/$d/hello.txt)"
done
GEOF
)
# -device order: the virtio-mmio disk is probed first (vda), the PCI one second (vdb).
run_vmm -t 120 disks stamp $QEMU_KVM -m 512M -kernel $VMLINUZ -initrd $G \
    -append "console=ttyAMA0 panic=1 quiet" \
    -drive file=$GUEST_DISK,if=none,id=d0,format=raw,readonly=on -device virtio-blk-device,drive=d0 \
    -drive file=$GUEST_DISK,if=none,id=d1,format=raw,readonly=on -device virtio-blk-pci,drive=d1
EOF

echo "# test_arm64_rig"
t0=$(date +%s.%N)
if ! rig_run "$scenario" "${rig_args[@]}"; then
    fail "arm64 test host ran the scenario to its end (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR; test host wall $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['wall'])" "$RUN_DIR/summary.json" 2>/dev/null)s"

kv() { val kvm "$1"; }
kvm_ok() {
    echo "  $(rec_out kvm | tr '\n' ' ')"
    expect_out kvm /dev/kvm && expect_out kvm /dev/vhost-net && expect_out kvm "VHE mode" &&
        eq 1 "$(kv dev-arm-vgic-v3)" && eq 1 "$(kv dev-arm-vgic-its)" && eq 0 "$(kv dev-arm-vgic-v2)" &&
        eq 1 "$(kv cap-arm-psci-0.2)" && [ "$(kv cap-max-vcpus)" -ge 2 ] 2>/dev/null
}
check_rec kvm "/dev/kvm (VHE), tun, vhost-net; vGICv3 + ITS, no GICv2, PSCI 0.2, MAX_VCPUS >= 2" kvm_ok
if [ -n "$DEPS_CHECK" ]; then
    check_rec deps "deps-check (static libfdt, zlib, liburing, libseccomp) runs on arm64" \
        all "expect_status deps 0" "expect_out deps 'deps-check: ok'"
fi
# stamp prefixes each line with seconds since launch: the init marker's is launch → init.
init_time() { rec_out "$1" | tr -d '\r' | awk '/KESTREL-GUEST-INIT-OK/{print $1; exit}'; }
check_rec boot "QEMU -M virt (KVM, 2 CPUs, 512M) boots the arm64 guest to init; reboot -> 0" \
    all "expect_out boot KESTREL-GUEST-INIT-OK" "expect_out boot NCPU=2" "expect_out boot MemTotal" \
        "expect_status boot 0"
check_rec disks "virtio-blk on virtio-mmio (vda) and virtio-pci (vdb): ext4 read" \
    all "expect_out disks 'vda virtio-mmio kestrel-disk-test-file'" \
        "expect_out disks 'vdb virtio-pci kestrel-disk-test-file'" "expect_status disks 0"
echo "# QEMU launch -> init: boot $(init_time boot)s, disks $(init_time disks)s;" \
    "$(rec_out boot | tr -d '\r' | grep -o 'MemTotal:.*')"
finish
