#!/usr/bin/env bash
# virtio-blk checks with Debian's stock kernel, inside the nested test host.
#
#   test_virtio_blk.sh [--arch x86_64|arm64] [--kestrel PATH] [--stamp PATH]
#                      [--modes msi,nomsi] [--transport pci|mmio|mix[,...]]
#
# --arch arm64 runs it in the nested arm64 test host, with the cross-built kestrel
# (arm64_kestrel) unless --kestrel names one. Each transport and mode boots kestrel twice
# with three disks:
#   vda  guest-images/out/[arm64/]guest-root.ext4 (build-rootdisk.sh): the ROOT filesystem. An
#        initramfs script (rdinit=/rootswitch) loads the transport's driver(s) (virtio_pci,
#        virtio_mmio or both), virtio_blk and ext4, mounts
#        /dev/vda, copies its /scenario.sh onto it and switch_roots to the disk's /sbin/init.
#        On x86 kestrel gets it as the test host's block device /dev/vda (rig.py --drive),
#        read and written through the io_uring ring; every other image is on tmpfs, read and
#        written inline (-v names each disk's way; checked).
#   vdb  a copy of guest-disk.ext4 attached with readonly=on
#   vdc  an 8 MiB raw image of random data (the device-reset check)
# Boot 1 ("main"): root on vda (marker, /proc/mounts, md5 of /data/testfile), vda..vdc in
# /proc/partitions, each disk's interrupts (virtio-pci: PCI-MSI, or a level IO-APIC line
# with pci=nomsi; virtio-mmio: always a level IO-APIC line), writes 4 MiB to
# /data/written-MODE + sync, read-only vdb (ro flag, mount rw fails, dd fails, image md5
# in the test host unchanged), unbind/bind of vdc through its driver (virtio-pci, or the
# virtio-mmio platform driver), then vdc reads back the test host's checksum and a write
# after the reset lands in the image.
# Boot 2 ("reread"): a second kestrel on the same root image reads /data/written-MODE.
# Mode msi uses the default cmdline; nomsi adds pci=nomsi (INTx through the IOAPIC).
# Boot 3 ("shared", pci transport, mode nomsi only): enough raw disks on PCI that two
# functions' INTx pins share a line (x86: 9, IO-APIC pin 16 + slot % 8; arm64: 5, SPI
# slot % 4): every disk is read concurrently with O_DIRECT 4 KiB requests (an interrupt
# each); all reads finish with the test host's checksums, and vda and the last disk take
# their interrupts on one line (kestrel ORs the functions' levels on it).
# Transports (default pci): pci puts every disk on virtio-pci; mmio every disk on
# virtio-mmio (found through ACPI); mix vda and vdb on virtio-mmio, vdc on virtio-pci.
# Default modes: msi,nomsi on pci and mix; msi on mmio (pci=nomsi changes nothing there).
# On arm64 the interrupts are GIC ones: virtio-pci MSI-X vectors are ITS-MSI, mode nomsi
# is kestrel's --its off (no ITS: PCI INTx on level GICv3 SPIs), virtio-mmio devices are
# level GICv3 SPIs and are found through the device tree (each mmio disk's platform device
# is a virtio,mmio DT node, ADDR.virtio_mmio), with no ACPI and no IO-APIC.
# Prints PASS/FAIL lines and "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=
STAMP=
MODES=
TRANSPORTS=pci
LIMIT=${E2E_VMM_TIMEOUT:-300}   # seconds per VMM run inside the test host
while [ $# -gt 0 ]; do
    case $1 in
        --arch) set_arch "$2"; shift 2 ;;
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --modes) MODES=$2; shift 2 ;;
        --transport) TRANSPORTS=$2; shift 2 ;;
        *) echo "usage: $0 [--arch x86_64|arm64] [--kestrel PATH] [--stamp PATH] [--modes msi,nomsi] [--transport pci|mmio|mix[,...]]" >&2; exit 2 ;;
    esac
done
# What differs per arch: how mode nomsi turns MSI off (guest cmdline or kestrel option),
# and how /proc/interrupts names an MSI vector and a level-triggered line (ERE, and words
# for the check names).
if [ "$ARCH" = arm64 ]; then
    NOMSI_CMDLINE= NOMSI_VMM_ARGS="--its off" NOMSI_WORD="--its off" SHARED_DISKS=5
    MSI_RE='ITS-MSI' MSI_WORD=ITS-MSI
    LEVEL_RE='GICv3 [0-9]+ Level' LEVEL_WORD="level GICv3 SPI"
else
    NOMSI_CMDLINE=" pci=nomsi" NOMSI_VMM_ARGS= NOMSI_WORD=pci=nomsi SHARED_DISKS=9
    MSI_RE='PCI-MSI' MSI_WORD=PCI-MSI
    LEVEL_RE='IO-APIC [0-9]*-fasteoi' LEVEL_WORD="level IO-APIC line"
fi
# RUNS: "TRANSPORT:MODE" pairs; records of pci runs keep their old names (main-msi, ...).
RUNS=
for t in ${TRANSPORTS//,/ }; do
    case $t in pci|mix) dm=msi,nomsi ;; mmio) dm=msi ;;
        *) echo "bad --transport $t: expected pci, mmio or mix" >&2; exit 2 ;; esac
    [ $t = mmio ] && [ -z "$MODES" ] && echo "# mmio: mode nomsi ($NOMSI_WORD) not run: it changes only PCI interrupts"
    for m in $(echo "${MODES:-$dm}" | tr , " "); do RUNS="$RUNS $t:$m"; done
done
[ -n "$KESTREL_BIN" ] || KESTREL_BIN=$(default_kestrel) ||
    { echo "FAIL: building the $ARCH kestrel"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$KESTREL_BIN" ] || { echo "FAIL: no kestrel binary at $KESTREL_BIN"; echo "0 passed, 1 failed"; exit 1; }

ROOT_IMG=$(KESTREL_ARCH=${ARCH/x86_64/amd64} bash "$REPO_ROOT/guest-images/build-rootdisk.sh") || {
    echo "FAIL: guest-images/build-rootdisk.sh"; echo "0 passed, 1 failed"; exit 1; }
ROOT_MD5=$(cat "${ROOT_IMG%.ext4}.md5")

work=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-blk.XXXXXX")
trap 'rm -rf "$work"' EXIT
gzip -1 -c "$ROOT_IMG" > "$work/guest-root.ext4.gz"   # mostly empty: small in the host cpio
# x86: the root image reaches the test host as a disk of its own (rig.py --drive), and kestrel
# gets that block device: its reads and writes go through the io_uring ring, where the other
# disks' images, on the test host's tmpfs, are read and written inline (virtio/blk_uring.c).
# The arm64 test host has no virtio_blk driver: there every image is on tmpfs.
DRIVE_ARGS=()
if [ "$ARCH" = x86_64 ]; then
    cp --sparse=always "$ROOT_IMG" "$work/root-drive.ext4" && DRIVE_ARGS=(--drive "$work/root-drive.ext4")
fi
scenario=$work/scenario.sh

{
    echo "L=$LIMIT"
    echo "RUNS='$RUNS'"
    echo "NOMSI_CMDLINE='$NOMSI_CMDLINE' NOMSI_VMM_ARGS='$NOMSI_VMM_ARGS' SHARED_DISKS=$SHARED_DISKS"
    cat <<'SCENARIO'
ROOT=/tmp/root.ext4
if [ -b /dev/vda ]; then ROOT=/dev/vda; else gunzip -c /files/guest-root.ext4.gz > $ROOT; fi
cp "$GUEST_DISK" /tmp/ro.ext4
head -c 1048576 /dev/urandom > /tmp/chunk
for i in 1 2 3 4 5 6 7 8; do cat /tmp/chunk; done > /tmp/data.img
rm -f /tmp/chunk

# rdinit of the switch-root boots: modules from the initramfs, then the disk's /sbin/init.
cat > "$RIG_WORK/rootswitch" <<'EOF'
#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
modload @TRANSPORT_MODULES@ virtio_blk crc32c_generic ext4 || echo ROOTSWITCH-MODLOAD-FAILED
n=0
while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do usleep 100000; n=$((n + 1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    echo ROOTSWITCH-MOUNT-FAILED; cat /proc/partitions; reboot -f; sleep 10
fi
cp /scenario.sh /newroot/scenario.sh
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
EOF
# One rootswitch per transport: only the drivers of the buses the disks are on (virtio_mmio
# first under mix, so the mmio disks probe first and stay vda, vdb).
for t in pci mmio mix; do
    case $t in pci) mods=virtio_pci ;; mmio) mods=virtio_mmio ;; mix) mods="virtio_mmio virtio_pci" ;; esac
    sed "s/@TRANSPORT_MODULES@/$mods/" "$RIG_WORK/rootswitch" > "$RIG_WORK/rootswitch-$t"
    chmod 755 "$RIG_WORK/rootswitch-$t"
done

# Boot 1, run by the root disk's /sbin/init (MODE=... is prepended).
cat > "$RIG_WORK/guest-main.sh" <<'EOF'
md5() { md5sum | cut -d' ' -f1; }
echo "TESTFILE-MD5 $(md5 < /data/testfile)"
echo "PARTITIONS $(awk 'NR > 2 && $4 != "" {printf "%s,", $4}' /proc/partitions)"
for d in vda vdb vdc; do
    echo "DISK $d $(basename "$(readlink -f /sys/block/$d/device)") $(basename "$(readlink -f /sys/block/$d/device/../driver)")"
    # The transport device and its device-tree node's compatible (none with ACPI).
    tdev=$(readlink -f /sys/block/$d/device/..)
    echo "DT $d ${tdev##*/} $(tr '\0' ' ' 2>/dev/null < $tdev/of_node/compatible)"
done
grep virtio /proc/interrupts | tr -s ' ' | sed 's/^/IRQ /'
W=/data/written-$MODE
head -c 4194304 /dev/urandom > $W
sync
echo "WRITTEN-MD5 $(md5 < $W)"
# readonly=on disk: ro flag, no rw mount, readable, writes fail.
echo "VDB-RO $(cat /sys/block/vdb/ro)"
mkdir -p /mnt/ro
if mount -t ext4 -o rw /dev/vdb /mnt/ro 2>/dev/null && grep -q '^/dev/vdb /mnt/ro ext4 rw' /proc/mounts; then
    echo "VDB-MOUNT-RW ok"
else
    echo "VDB-MOUNT-RW failed"
fi
umount /mnt/ro 2>/dev/null
mount -t ext4 -o ro /dev/vdb /mnt/ro && echo "VDB-HELLO $(cat /mnt/ro/hello.txt)"
umount /mnt/ro
head -c 65536 /dev/urandom > /tmp/w64k
if dd if=/tmp/w64k of=/dev/vdb bs=4096 seek=3000 oflag=direct conv=fsync 2>/tmp/dd.err; then
    echo "VDB-DD-WRITE ok"
else
    echo "VDB-DD-WRITE failed"
fi
echo "VDB-DD-ERR $(grep -v records /tmp/dd.err | head -n 1)"
# Device reset: unbind/bind vdc's transport device (a virtio-pci function or a virtio-mmio
# platform device) through its driver, then read and write it again.
echo "VDC-MD5 $(md5 < /dev/vdc)"
pcidev=$(readlink -f /sys/block/vdc/device/..)
addr=${pcidev##*/}
drv=$(readlink -f "$pcidev/driver")
echo "VDC-DEV $addr"
echo "VDC-DRIVER $(basename "$(readlink -f "$pcidev/subsystem")")/${drv##*/}"
echo "$addr" > "$drv/unbind" && echo "UNBIND ok"
[ -e /sys/block/vdc ] && echo "VDC-STILL-THERE"
echo "$addr" > "$drv/bind" && echo "BIND ok"
n=0; dev=
while [ $n -lt 100 ]; do
    dev=$(ls "$pcidev"/virtio*/block 2>/dev/null | head -n 1)
    [ -n "$dev" ] && [ -b "/dev/$dev" ] && break
    usleep 100000; n=$((n + 1))
done
echo "RESET-DEV $dev"
echo 3 > /proc/sys/vm/drop_caches
echo "RESET-READ-MD5 $(md5 < /dev/$dev)"
head -c 1048576 /dev/urandom > /tmp/w1
dd if=/tmp/w1 of=/dev/$dev bs=1048576 seek=4 count=1 conv=fsync 2>/dev/null && echo "RESET-WRITE ok"
echo "RESET-WRITE-MD5 $(md5 < /tmp/w1)"
echo 3 > /proc/sys/vm/drop_caches
echo "RESET-READBACK-MD5 $(dd if=/dev/$dev bs=1048576 skip=4 count=1 iflag=direct 2>/dev/null | md5)"
grep virtio /proc/interrupts | tr -s ' ' | sed 's/^/IRQ-AFTER-RESET /'
EOF

for r in $RUNS; do
    t=${r%%:*}; mm=${r#*:}
    m=$mm; [ $t = pci ] || m=$t-$mm
    export GUEST_FILES="$RIG_WORK/rootswitch-$t:/rootswitch"
    C="console=ttyS0 reboot=k panic=1 quiet rdinit=/rootswitch"
    A=
    [ $mm = nomsi ] && C="$C$NOMSI_CMDLINE" A=$NOMSI_VMM_ARGS
    DISKS="--disk path=$ROOT --disk path=/tmp/ro.ext4,readonly=on --disk path=/tmp/data.img"
    case $t in
        mmio) DISKS="--transport mmio $DISKS" ;;
        mix) DISKS="--transport mmio $DISKS,transport=pci" ;;
    esac
    md5sum /tmp/ro.ext4 /tmp/data.img > "$RIG_WORK/md5-before"
    rig_put md5-before-$m "$RIG_WORK/md5-before"
    G=$({ echo "MODE=$m"; cat "$RIG_WORK/guest-main.sh"; } | guest_initrd main-$m)
    run_vmm -t $L main-$m $VMM -v $A --kernel $VMLINUZ --initrd $G --cmdline "$C" $DISKS
    { md5sum /tmp/ro.ext4; echo "region $(dd if=/tmp/data.img bs=1048576 skip=4 count=1 2>/dev/null | md5sum)"; } > "$RIG_WORK/md5-after"
    rig_put md5-after-$m "$RIG_WORK/md5-after"
    G=$(printf '%s\n' "echo \"REREAD-MD5 \$(md5sum < /data/written-$m | cut -d' ' -f1)\"" \
        "echo \"TESTFILE-MD5 \$(md5sum < /data/testfile | cut -d' ' -f1)\"" | guest_initrd reread-$m)
    run_vmm -t $L reread-$m $VMM $A --kernel $VMLINUZ --initrd $G --cmdline "$C" $DISKS
    [ $t:$mm = pci:nomsi ] || continue
    # Boot 3: disks enough to share an INTx line, all read at once.
    SD= names=
    for i in $(seq 1 $SHARED_DISKS); do
        head -c 2097152 /dev/urandom > /tmp/s$i.img
        SD="$SD --disk path=/tmp/s$i.img"
        names="$names vd$(echo abcdefghijklmnop | cut -c$i)"
    done
    md5sum /tmp/s*.img > "$RIG_WORK/md5-shared"
    rig_put md5-shared "$RIG_WORK/md5-shared"
    GUEST_FILES= G=$(guest_initrd shared <<GEOF
modload virtio_pci virtio_blk > /dev/null 2>&1 || echo SHARED-MODLOAD-FAIL
n=0; while [ ! -b /dev/${names##* } ] && [ \$n -lt 100 ]; do usleep 100000; n=\$((n + 1)); done
for d in $names; do
    echo "SHARED-DEV \$d \$(basename "\$(readlink -f /sys/block/\$d/device)")"
    (for p in 1 2; do dd if=/dev/\$d of=/dev/null bs=4096 iflag=direct 2>/dev/null; done
     echo "SHARED-MD5 \$d \$(dd if=/dev/\$d bs=4096 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)") &
done
wait
grep virtio /proc/interrupts | tr -s ' ' | sed 's/^/SHARED-IRQ /'
GEOF
)
    run_vmm -t $L shared $VMM $A --kernel $VMLINUZ --initrd $G \
        --cmdline "console=ttyS0 reboot=k panic=1 quiet$NOMSI_CMDLINE" $SD
done
SCENARIO
} > "$scenario"

# The whole run takes ~2 min here; stay below meson's 600 s so a hang still gives a FAIL
# line and the records of the runs that finished.
echo "# test_virtio_blk: arch=$ARCH runs (transport:mode)=$RUNS"
if ! rig_run "$scenario" --timeout "${E2E_HOST_TIMEOUT:-570}" --kestrel "$KESTREL_BIN" \
        ${STAMP:+--stamp "$STAMP"} --file "$work/guest-root.ext4.gz:/files/guest-root.ext4.gz" \
        "${DRIVE_ARGS[@]}"; then
    fail "test host ran the scenario to its end (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"


# md5 of a file in the host before/after: "HASH  PATH" lines.
host_md5() { rec_out "$1" | awk -v p="$2" '$2 == p {print $1; exit}'; }
# disk_bus T DISK: the transport a disk is on in transport T.
disk_bus() { case $1 in pci) echo pci ;; mmio) echo mmio ;; mix) [ $2 = vdc ] && echo pci || echo mmio ;; esac; }
# irq_ok: each disk is on its transport's driver, and its interrupts are PCI-MSI vectors
# (virtio-pci without pci=nomsi) or level-triggered IO-APIC lines (fasteoi: virtio-mmio,
# or virtio-pci INTx with pci=nomsi); no virtio interrupt belongs to anything else.
# arm64: ITS-MSI vectors, or level GICv3 lines (virtio-mmio, or INTx with --its off).
irq_ok() {
    local lines d dev drv bus kind own rc=0
    lines=$(rec_out $M | tr -d '\r' | grep '^IRQ ')
    echo "$lines" | sed 's/^/    /' >&2
    [ -n "$lines" ] || return 1
    for d in vda vdb vdc; do
        read -r dev drv < <(rec_out $M | tr -d '\r' | awk -v d=$d '$1 == "DISK" && $2 == d {print $3, $4}')
        bus=$(disk_bus $t $d)
        [ "$drv" = virtio-$bus ] || { echo "  $d: driver '$drv', want virtio-$bus" >&2; rc=1; }
        [ $bus = pci ] && [ $mm = msi ] && kind=msi || kind=ioapic
        own=$(echo "$lines" | awk -v v="$dev" '$NF == v || index($NF, v "-") == 1')
        [ -n "$dev" ] && [ -n "$own" ] || { echo "  $d ($dev): no interrupt line" >&2; rc=1; continue; }
        if [ $kind = msi ]; then
            echo "$own" | grep -Eqv "$MSI_RE" && { echo "  $d: not all $MSI_WORD" >&2; rc=1; }
        else
            echo "$own" | grep -Ev "$LEVEL_RE" | grep -q . &&
                { echo "  $d: not a $LEVEL_WORD" >&2; rc=1; }
        fi
    done
    # Every virtio interrupt belongs to one of the three disks.
    echo "$lines" | awk 'NR == FNR && $1 == "DISK" {d[$3] = 1; next}
        NR != FNR {v = $NF; sub(/-.*/, "", v); if (!(v in d)) {print "  stray: " $0; bad = 1}}
        END {exit bad}' <(rec_out $M | tr -d '\r') - >&2 || rc=1
    return $rc
}

# dt_ok (arm64): each disk on virtio-mmio hangs off a platform device the kernel made from
# a device-tree node (named ADDR.virtio_mmio, of_node compatible "virtio,mmio").
dt_ok() {
    local d name compat rc=0
    for d in vda vdb vdc; do
        [ "$(disk_bus $t $d)" = mmio ] || continue
        read -r name compat < <(rec_out $M | tr -d '\r' | awk -v d=$d '$1 == "DT" && $2 == d {print $3, $4}')
        echo "    $d: ${name:-?} ${compat:-no of_node}" >&2
        [[ "$name" =~ ^[0-9a-f]+\.virtio_mmio$ ]] && [ "$compat" = virtio,mmio ] || rc=1
    done
    return $rc
}

for r in $RUNS; do
    t=${r%%:*}; mm=${r#*:}
    m=$mm; [ $t = pci ] || m=$t-$mm
    M=main-$m R=reread-$m
    tag="[$m]"
    case $t in
        pci) [ $mm = msi ] && irqdesc="virtio interrupts are $MSI_WORD vectors" ||
                irqdesc="$NOMSI_WORD: virtio interrupts are ${LEVEL_WORD}s, no $MSI_WORD" ;;
        mmio) irqdesc="every disk on the virtio-mmio driver, its interrupt a $LEVEL_WORD" ;;
        mix) [ $mm = msi ] && irqdesc="vda, vdb on virtio-mmio (${LEVEL_WORD}s), vdc on virtio-pci ($MSI_WORD)" ||
                irqdesc="$NOMSI_WORD: vda, vdb on virtio-mmio, vdc on virtio-pci, all on ${LEVEL_WORD}s" ;;
    esac
    bus=$(disk_bus $t vdc)
    check_rec $M "$tag root filesystem on virtio-blk: init from /dev/vda (ext4), /data/testfile md5 as built" \
        all "expect_status $M 0" "expect_out $M KESTREL-ROOTFS-INIT-OK" "expect_out $M '/dev/vda / ext4 rw'" \
            "eq \"\$(val $M TESTFILE-MD5)\" $ROOT_MD5" "expect_out $M 'KESTREL-ROOTFS-SCENARIO-EXIT 0'"
    check_rec $M "$tag three disks show up as vda, vdb, vdc in /proc/partitions" \
        all "eq \"\$(val $M PARTITIONS)\" vda,vdb,vdc,"
    [ ${#DRIVE_ARGS[@]} -gt 0 ] && [ "${VMM:-kestrel}" = kestrel ] &&
        check_rec $M "$tag engines: root on a block device through io_uring, vdc's tmpfs image on the sync engine" \
            all "expect_err $M 'kestrel: vda on /dev/vda: io_uring I/O'" \
                "expect_err $M 'kestrel: vdc on /tmp/data.img: sync (image in memory) I/O'"
    check_rec $M "$tag $irqdesc" irq_ok
    [ "$ARCH" = arm64 ] && [ $t != pci ] &&
        check_rec $M "$tag device tree: each virtio-mmio disk's device is a virtio,mmio node (ADDR.virtio_mmio)" dt_ok
    check_rec $R "$tag 4 MiB written + synced in boot 1 reads back in a second kestrel boot (same md5)" \
        all "expect_status $R 0" "expect_out $R KESTREL-ROOTFS-INIT-OK" \
            "eq \"\$(val $R REREAD-MD5)\" \"\$(val $M WRITTEN-MD5)\"" \
            "eq \"\$(val $R TESTFILE-MD5)\" $ROOT_MD5"
    check_rec $M "$tag readonly=on: /sys/block/vdb/ro is 1, rw mount and dd fail, contents readable" \
        all "eq \"\$(val $M VDB-RO)\" 1" "eq \"\$(val $M VDB-MOUNT-RW)\" failed" \
            "eq \"\$(val $M VDB-DD-WRITE)\" failed" "eq \"\$(val $M VDB-HELLO)\" kestrel-disk-test-file"
    check_rec md5-after-$m "$tag readonly=on: the image's md5 in the test host is unchanged" \
        all "eq \"\$(host_md5 md5-after-$m /tmp/ro.ext4)\" \"\$(host_md5 md5-before-$m /tmp/ro.ext4)\""
    check_rec $M "$tag before reset: vdc reads the test host's checksum" \
        all "eq \"\$(val $M VDC-MD5)\" \"\$(host_md5 md5-before-$m /tmp/data.img)\""
    check_rec $M "$tag device reset (virtio-$bus unbind/bind of vdc): reads the same checksum again" \
        all "eq \"\$(val $M VDC-DRIVER)\" $([ $bus = pci ] && echo pci || echo platform)/virtio-$bus" \
            "eq \"\$(val $M UNBIND)\" ok" "eq \"\$(val $M BIND)\" ok" "! expect_out $M VDC-STILL-THERE 2>/dev/null" \
            "eq \"\$(val $M RESET-READ-MD5)\" \"\$(host_md5 md5-before-$m /tmp/data.img)\""
    check_rec $M "$tag after reset: a 1 MiB write reads back in the guest (O_DIRECT) and lands in the image" \
        all "eq \"\$(val $M RESET-WRITE)\" ok" \
            "eq \"\$(val $M RESET-READBACK-MD5)\" \"\$(val $M RESET-WRITE-MD5)\"" \
            "eq \"\$(val md5-after-$m region)\" \"\$(val $M RESET-WRITE-MD5)  -\""
done

# shared_ok: every disk read back its image's checksum, and one line's interrupts are vda's
# and the last disk's together, counted.
shared_ok() {
    local i d want got dev0 devn line rc=0
    for i in $(seq 1 $SHARED_DISKS); do
        d=vd$(echo abcdefghijklmnop | cut -c$i)
        want=$(host_md5 md5-shared /tmp/s$i.img)
        got=$(rec_out shared | tr -d '\r' | awk -v d=$d '$1 == "SHARED-MD5" && $2 == d {print $3}')
        eq "$got" "$want" || { echo "  $d: read md5 '$got', image '$want'" >&2; rc=1; }
    done
    dev0=$(rec_out shared | tr -d '\r' | awk '$1 == "SHARED-DEV" && $2 == "vda" {print $3}')
    devn=$(rec_out shared | tr -d '\r' | awk -v d="$d" '$1 == "SHARED-DEV" && $2 == d {print $3}')
    rec_out shared | tr -d '\r' | grep '^SHARED-IRQ ' | sed 's/^/    /' >&2
    line=$(rec_out shared | tr -d '\r' | grep '^SHARED-IRQ ' | grep -E "[ ,]$dev0(,|$)" |
        grep -E "[ ,]$devn(,|$)")
    [ -n "$dev0" ] && [ -n "$devn" ] && [ -n "$line" ] ||
        { echo "  no line shared by vda ($dev0) and $d ($devn)" >&2; return 1; }
    echo "$line" | grep -Eq "$LEVEL_RE" || { echo "  the shared line is not a $LEVEL_WORD" >&2; rc=1; }
    echo "$line" | awk '{s = 0; for (i = 3; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; exit !(s > 0)}' ||
        { echo "  the shared line took no interrupts" >&2; rc=1; }
    return $rc
}
if [[ " $RUNS " == *" pci:nomsi "* ]]; then
    check_rec shared "[shared] $SHARED_DISKS disks on PCI INTx ($NOMSI_WORD), vda and the last on one $LEVEL_WORD: all read at once to their checksums" \
        all "expect_status shared 0" "expect_out shared KESTREL-GUEST-INIT-OK" \
            "! expect_out shared SHARED-MODLOAD-FAIL 2>/dev/null" shared_ok
fi
finish
