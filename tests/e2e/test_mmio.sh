#!/usr/bin/env bash
# virtio-mmio with Debian's stock kernel, found through kestrel's ACPI tables, inside the
# nested test host. One test-host boot, two kestrel runs:
#   blk  --cpus 4 --transport mmio: vda (8 MiB of random data) on virtio-mmio and, as a mix,
#        vdb (a copy of the same image) with transport=pci. The guest sees 4 CPUs (MADT),
#        vda through LNRO0005 on a level-triggered IO-APIC pin, reads the test host's md5
#        from both disks, writes 1 MiB to vda that lands in the image, and powers off with
#        `poweroff -f`: ACPI S5 ends kestrel with status 0.
#   net  a NIC on virtio-mmio with vhost=on (kicks through the queue ioeventfds, interrupts
#        through kestrel, which sets InterruptStatus): ping both ways on 10.77.0.0/24, the
#        test host's tap kt0 at .1 and the guest at .2; no traffic goes anywhere else.
#        With -v, kestrel's exit report counts reads, kicks, interrupts and requests of both.
#   test_mmio.sh [--kestrel PATH] [--stamp PATH]
# Prints PASS/FAIL lines and "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build/kestrel
STAMP=
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        *) echo "usage: $0 [--kestrel PATH] [--stamp PATH]" >&2; exit 2 ;;
    esac
done
[ -x "$KESTREL_BIN" ] || { echo "FAIL: no kestrel binary at $KESTREL_BIN"; echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-mmio.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat > "$work/guest-blk.sh" <<'EOF'
modload virtio_mmio virtio_pci virtio_blk > /dev/null 2>&1
wait_for() { local i=0; while ! [ -b "$1" ]; do i=$((i + 1)); [ $i -gt 100 ] && return 1; sleep 0.1; done; }
wait_for /dev/vda; wait_for /dev/vdb
echo "CPUS $(grep -c ^processor /proc/cpuinfo)"
echo "MMIODEV $(ls /sys/bus/platform/devices | grep -c LNRO0005)"
echo "VDA-BUS $(basename "$(readlink -f /sys/block/vda/device/..)")"
echo "VDB-BUS $(basename "$(readlink -f /sys/block/vdb/device/..)")"
echo "IRQ $(grep virtio /proc/interrupts | grep -c fasteoi)"
echo "VDA-MD5 $(md5sum /dev/vda | cut -d' ' -f1)"
echo "VDB-MD5 $(md5sum /dev/vdb | cut -d' ' -f1)"
dd if=/dev/zero bs=1M count=1 2>/dev/null | tr '\0' 'k' > /tmp/k
dd if=/tmp/k of=/dev/vda bs=1M seek=1 conv=fsync 2>/dev/null
echo "WROTE $(md5sum /tmp/k | cut -d' ' -f1)"
poweroff -f
EOF

cat > "$work/guest-net.sh" <<'EOF'
modload virtio_mmio virtio_net > /dev/null 2>&1
i=0; while ! ip link show eth0 > /dev/null 2>&1; do i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.1; done
ip addr add 10.77.0.2/24 dev eth0; ip link set eth0 up
i=0; until ping -c 1 -W 1 10.77.0.1 > /dev/null 2>&1; do i=$((i + 1)); [ $i -gt 60 ] && break; done
ping -c 3 -W 5 10.77.0.1 > /dev/null 2>&1 && echo "G: PING-OK" || echo "G: PING-FAIL"
echo "G: HOST-PING-WAIT"
sleep 8
poweroff -f
EOF

cat > "$work/scenario.sh" <<'EOF'
L=240
head -c 8388608 /dev/urandom > /tmp/vda.img
cp /tmp/vda.img /tmp/vdb.img
echo "H: HOST-MD5 $(md5sum /tmp/vda.img | cut -d' ' -f1)"
initrd=$(guest_initrd blk /files/guest-blk.sh)
run_vmm -t $L blk $KESTREL -v --kernel $VMLINUZ --initrd $initrd --memory 256M --cpus 4 \
    --transport mmio --disk path=/tmp/vda.img --disk path=/tmp/vdb.img,transport=pci \
    --cmdline "console=ttyS0 reboot=k panic=1 quiet"
echo "H: IMAGE-WRITE $(dd if=/tmp/vda.img bs=1M skip=1 count=1 2>/dev/null | md5sum | cut -d' ' -f1)"

initrd=$(guest_initrd net /files/guest-net.sh)
start_vmm net kestrel --kernel $VMLINUZ --initrd $initrd --memory 256M \
    --net tap=kt0,vhost=on,transport=mmio --cmdline "console=ttyS0 reboot=k panic=1 quiet"
host_tap kt0 10.77.0.1
wait_for 120 ping -c 1 -W 1 10.77.0.2
ping -c 3 -W 5 10.77.0.2 > /dev/null 2>&1 && echo "H: HOSTPING-OK" || echo "H: HOSTPING-FAIL"
wait $VP
EOF

rig_run "$work/scenario.sh" --kestrel "$KESTREL_BIN" ${STAMP:+--stamp "$STAMP"} \
    --file "$work/guest-blk.sh:/files/guest-blk.sh" --file "$work/guest-net.sh:/files/guest-net.sh" \
    --timeout 600
console=$RUN_DIR/console.log
host() { tr -d '\r' < "$console" | awk -v k="H: $1" 'index($0, k) == 1 {sub(/^H: [^ ]+ ?/, ""); print; exit}'; }
hmd5=$(host HOST-MD5)

check_rec blk "disk on mmio: the guest powers off through ACPI S5 and kestrel exits 0" \
    all 'expect_status blk 0' 'rec_err blk | grep "ACPI S5" > /dev/null'
check_rec blk "4 vCPUs seen through the MADT" eq 4 "$(val blk CPUS)"
check_rec blk "the virtio-mmio disk is found through ACPI (LNRO0005) on a level IO-APIC pin" \
    all 'eq 1 "$(val blk MMIODEV)"' '[ "$(val blk IRQ)" -ge 1 ]'
check_rec blk "mix: vda is on the platform bus (mmio), vdb on PCI" \
    all 'val blk VDA-BUS | grep -q LNRO0005' 'val blk VDB-BUS | grep -q "^0000:"'
check_rec blk "both disks read the test host's md5" \
    all 'eq "$hmd5" "$(val blk VDA-MD5)"' 'eq "$hmd5" "$(val blk VDB-MD5)"'
check_rec blk "a write to the mmio disk lands in the image" eq "$(val blk WROTE)" "$(host IMAGE-WRITE)"
check_rec blk "kestrel -v reports each device and queue: reads, kicks, exit-kicks, interrupts, batches, requests" \
    all 'rec_err blk | grep -E "stats virtio-blk vda \(mmio\): reads [1-9]" > /dev/null' \
    'rec_err blk | grep -E "stats virtio-blk vda q0: kicks [1-9][0-9]* exit-kicks [0-9]+ interrupts [1-9][0-9]* batches [1-9][0-9]* requests [1-9][0-9]* bytes-read [1-9]" > /dev/null' \
    'rec_err blk | grep -E "stats virtio-blk vdb \(pci\): reads [1-9]" > /dev/null' \
    'rec_err blk | grep -E "stats virtio-blk vdb q0: kicks [1-9][0-9]* exit-kicks [0-9]+ interrupts [1-9]" > /dev/null'
check_rec net "NIC on mmio with vhost=on: kestrel exits 0 on the guest's poweroff" \
    all 'expect_status net 0' 'rec_err net | grep "vhost-net" > /dev/null'
check_rec net "ping guest -> host and host -> guest" \
    all 'expect_out net "G: PING-OK"' 'grep -q "H: HOSTPING-OK" "$console"'
finish
