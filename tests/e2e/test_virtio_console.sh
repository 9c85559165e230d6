#!/usr/bin/env bash
# virtio-console checks with Debian's stock kernel, inside the nested test host.
#
#   test_virtio_console.sh [--arch x86_64|arm64] [--kestrel PATH] [--stamp PATH]
#                          [--transport pci|mmio|mix[,...]]
#
# One kestrel boot per transport: `--console virtio --serial-port name=org.kestrel.test,
# socket=...`, the console (and its ports) on virtio-pci (pci, the default) or virtio-mmio
# (mmio; mix: the console on virtio-mmio and an 8 MiB disk on virtio-pci beside it, which
# the guest reads back: "mix" record names end in -mix, mmio's in -mmio).
# --arch arm64 runs in the nested arm64 test host, with the cross-built kestrel
# (default_kestrel) unless --kestrel names one; there pci is two boots: MSI-X through the
# GIC ITS, and INTx only (kestrel's --its off; record names end in -pci-intx).
# The guest's rdinit (/hvcinit) loads the transport's driver(s) + virtio_console, reopens its stdio on
# /dev/hvc0 (init's stdout is not hvc0 before the module is loaded), prints a marker and
# /proc/consoles. Checks:
#   console  the marker reaches kestrel's stdout; /proc/consoles lists hvc0, not ttyS0
#   port     /sys/class/virtio-ports/*/name holds the name, /dev/vportNpM exists
#   h2g      4 MiB from a socat client on the host socket -> guest, same md5
#   g2h      4 MiB of guest random data -> a socat client on the host socket, same md5
#   bus      (mmio, mix) the console is a virtio-mmio device; (mix) the PCI disk reads the
#            test host's md5; (arm64) the virtio-mmio device comes from the device tree
#            (compatible "virtio,mmio")
#   irq      (arm64) the console's interrupts fired through the expected path: ITS-MSI
#            (pci), GICv3 level lines (mmio, mix, pci-intx; pci-intx: no MSI in the guest)
# The host cannot watch the guest console live, so the two directions are sequenced by
# retries: the sender connects once the socket exists; the guest reads until it has
# 4 MiB (a read returns 0 while no client is connected); then the guest writes (its
# write blocks until a client is connected), and the host reader reconnects until it
# has read 4 MiB or kestrel has ended.
# Prints PASS/FAIL lines and "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=
STAMP=
LIMIT=${E2E_VMM_TIMEOUT:-300}
TRANSPORTS=pci
while [ $# -gt 0 ]; do
    case $1 in
        --arch) set_arch "$2"; shift 2 ;;
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --transport) TRANSPORTS=$2; shift 2 ;;
        *) echo "usage: $0 [--arch x86_64|arm64] [--kestrel PATH] [--stamp PATH] [--transport pci|mmio|mix[,...]]" >&2; exit 2 ;;
    esac
done
# One kestrel boot per run; on arm64 each pci run has an INTx twin (--its off).
RUNS=${TRANSPORTS//,/ }
[ "$ARCH" = arm64 ] && RUNS=$(echo " $RUNS " | sed 's/ pci / pci pci-intx /g; s/^ //; s/ $//')
[ -n "$KESTREL_BIN" ] || KESTREL_BIN=$(default_kestrel) ||
    { echo "FAIL: building the $ARCH kestrel"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$KESTREL_BIN" ] || { echo "FAIL: no kestrel binary at $KESTREL_BIN"; echo "0 passed, 1 failed"; exit 1; }

scenario=$(mktemp "${TMPDIR:-/tmp}/kestrel-console.XXXXXX")
trap 'rm -f "$scenario"' EXIT
{
    echo "L=$LIMIT"
    echo "RUNS='$RUNS'"
    cat <<'SCENARIO'
NAME=org.kestrel.test
SOCK=/tmp/port.sock
cat > "$RIG_WORK/hvcinit" <<'EOF'
#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp
modload @TRANSPORT_MODULES@ virtio_console
n=0
# Wait until hvc0 opens, not just exists: the hvc driver makes its nodes before hvc0's port
# is registered, and a failed `exec` redirection would end init (seen once on arm64).
while ! (: </dev/hvc0) 2>/dev/null && [ $n -lt 100 ]; do usleep 100000; n=$((n + 1)); done
exec </dev/hvc0 >/dev/hvc0 2>&1
echo KESTREL-HVC-INIT-OK
echo "CONSOLES $(awk '{printf "%s,", $1}' /proc/consoles)"
cat /proc/consoles
sh /scenario.sh
echo "KESTREL-HVC-SCENARIO-EXIT $?"
reboot -f
sleep 10
EOF
# One rdinit per transport: only the drivers of the buses the devices are on.
for t in pci pci-intx mmio mix; do
    case $t in pci*) mods=virtio_pci ;; mmio) mods=virtio_mmio ;; mix) mods="virtio_mmio virtio_pci virtio_blk" ;; esac
    sed "s/@TRANSPORT_MODULES@/$mods/" "$RIG_WORK/hvcinit" > "$RIG_WORK/hvcinit-$t"
    chmod 755 "$RIG_WORK/hvcinit-$t"
done
head -c 8388608 /dev/urandom > /tmp/mix-disk.img

cat > "$RIG_WORK/guest-port.sh" <<'EOF'
md5() { md5sum | cut -d' ' -f1; }
# The transport under the console device (the parent of virtioN: a PCI function or a
# LNRO0005 platform device) and, under mix, the PCI disk beside it.
# On a device-tree machine (arm64) the transport's firmware node: its compatible.
vdev=
for d in /sys/class/virtio-ports/*; do
    vdev=$(basename "$(readlink -f "$d/device")")
    echo "CONSOLE-DRIVER $(basename "$(readlink -f "$d/device/../driver")")"
    [ -e "$d/device/../of_node/compatible" ] &&
        echo "CONSOLE-OF $(tr '\0' ' ' < "$d/device/../of_node/compatible")"
    break
done
if [ -e /sys/block/vda ]; then
    echo "DISK-DRIVER $(basename "$(readlink -f /sys/block/vda/device/../driver)")"
    echo "DISK-MD5 $(md5 < /dev/vda)"
fi
port=
for d in /sys/class/virtio-ports/*; do
    echo "VPORT ${d##*/} $(cat $d/name 2>/dev/null)"
    [ "$(cat $d/name 2>/dev/null)" = org.kestrel.test ] && port=${d##*/}
done
echo "PORT $port"
[ -n "$port" ] || exit 1
n=0
while [ ! -c /dev/$port ] && [ $n -lt 50 ]; do usleep 100000; n=$((n + 1)); done
[ -c /dev/$port ] && echo "PORT-DEV /dev/$port"
# Keep the port open throughout (data that arrives for a closed port is dropped).
exec 3<>/dev/$port
: > /tmp/got
n=0
while [ $(wc -c < /tmp/got) -lt 4194304 ] && [ $n -lt 900 ]; do
    cat <&3 >> /tmp/got
    usleep 200000; n=$((n + 1))
done
echo "H2G-BYTES $(wc -c < /tmp/got)"
echo "H2G-MD5 $(md5 < /tmp/got)"
rm -f /tmp/got
head -c 4194304 /dev/urandom > /tmp/out
echo "G2H-MD5 $(md5 < /tmp/out)"
cat /tmp/out >&3 && echo "G2H-WRITE ok"
# The console device's interrupt lines after the transfers: "IRQ <count on all CPUs> <chip...>
# <name>" (names virtioN, or virtioN-<queue> with MSI-X), and how many MSI lines there are.
awk -v d="$vdev" '$NF == d || index($NF, d "-") == 1 {
    s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i
    r = "IRQ " s; for (; i <= NF; i++) r = r " " $i; print r }' /proc/interrupts
echo "MSI-IRQS $(grep -c MSI /proc/interrupts)"
# Let kestrel move the last buffers to the socket before the reset.
sleep 3
exec 3>&-
EOF

for t in $RUNS; do
    sfx=-$t ct=,transport=$t extra=
    [ $t = pci ] && sfx= ct=
    [ $t = pci-intx ] && ct= extra="--its off"
    [ $t = mix ] && ct=,transport=mmio extra="--disk path=/tmp/mix-disk.img,transport=pci"
    export GUEST_FILES="$RIG_WORK/hvcinit-$t:/hvcinit"
    G=$(guest_initrd port$sfx "$RIG_WORK/guest-port.sh")
    head -c 4194304 /dev/urandom > /tmp/h2g.bin
    rm -f $SOCK /tmp/g2h.bin /tmp/stop /tmp/h2g.status
    (
        n=0
        while [ ! -S $SOCK ] && [ $n -lt 1200 ] && [ ! -e /tmp/stop ]; do usleep 100000; n=$((n + 1)); done
        socat -u FILE:/tmp/h2g.bin UNIX-CONNECT:$SOCK
        echo "h2g-socat $?" > /tmp/h2g.status
        while [ ! -e /tmp/stop ]; do
            usleep 500000
            socat -u UNIX-CONNECT:$SOCK STDOUT 2>/dev/null | head -c 4194304 > /tmp/g2h.part
            if [ $(wc -c < /tmp/g2h.part) -gt 0 ]; then mv /tmp/g2h.part /tmp/g2h.bin; break; fi
        done
    ) &
    bg=$!
    run_vmm -t $L console$sfx $VMM --console virtio$ct --kernel $VMLINUZ --initrd $G \
        --cmdline 'console=hvc0 reboot=k panic=1 quiet rdinit=/hvcinit' \
        --serial-port name=$NAME,socket=$SOCK $extra
    touch /tmp/stop
    n=0
    while kill -0 $bg 2>/dev/null && [ $n -lt 100 ]; do usleep 100000; n=$((n + 1)); done
    kill $bg 2>/dev/null
    {
        cat /tmp/h2g.status 2>/dev/null
        echo "h2g-md5 $(md5sum < /tmp/h2g.bin | cut -d' ' -f1)"
        [ -f /tmp/g2h.bin ] || : > /tmp/g2h.bin
        echo "g2h-bytes $(wc -c < /tmp/g2h.bin)"
        echo "g2h-md5 $(md5sum < /tmp/g2h.bin | cut -d' ' -f1)"
        echo "disk-md5 $(md5sum < /tmp/mix-disk.img | cut -d' ' -f1)"
    } > "$RIG_WORK/host-side"
    rig_put host-side$sfx "$RIG_WORK/host-side"
done
SCENARIO
} > "$scenario"

echo "# test_virtio_console: arch=$ARCH transports $TRANSPORTS"
set -- $RUNS
if ! rig_run "$scenario" --timeout $((LIMIT * $# + 200)) --kestrel "$KESTREL_BIN" ${STAMP:+--stamp "$STAMP"}; then
    fail "test host ran the scenario to its end (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"

# irqs_on REC ERE: the console's interrupt lines (guest "IRQ" lines) exist, all match ERE
# (the interrupt chip and trigger), and fired at least once.
irqs_on() {
    local lines; lines=$(rec_out $1 | tr -d '\r' | grep '^IRQ ')
    echo "$lines" | sed 's/^/  /' >&2
    [ -n "$lines" ] && ! echo "$lines" | grep -qvE "$2" &&
        echo "$lines" | awk '{ s += $2 } END { exit !(s > 0) }'
}
# The arm64 equivalents of the x86 checks: device tree instead of ACPI, GIC/ITS interrupts.
mmio_fw="found through ACPI" mix_fw=
[ $ARCH = arm64 ] && mmio_fw="found through the device tree" mix_fw=" ($mmio_fw)"
mmio_fw_ok() {
    [ $ARCH = arm64 ] || return 0
    [[ " $(val $1 CONSOLE-OF) " == *" virtio,mmio "* ]] ||
        { echo "  CONSOLE-OF '$(val $1 CONSOLE-OF)' lacks virtio,mmio" >&2; return 1; }
}
GIC_LEVEL='^IRQ [0-9]+ GICv3 [0-9]+ Level virtio[0-9]+$'
ITS_MSI='^IRQ [0-9]+ ITS-MSI [0-9]+ Edge virtio[0-9]+-'

for t in $RUNS; do
    C=console H=host-side tag=
    [ $t = pci ] || C=console-$t H=host-side-$t tag="[$t] "
    [ $ARCH = arm64 ] && [ $t = pci ] && tag="[pci] "
    consoles_ok() {
        local c; c=$(val $C CONSOLES)
        echo "  /proc/consoles: $c" >&2
        [[ ",$c" == *",hvc0,"* ]] && [[ ",$c" != *",ttyS0,"* ]]
    }
    check_rec $C "$tag--console virtio: the guest's hvc0 output reaches kestrel's stdout, exit 0" \
        all "expect_out $C KESTREL-HVC-INIT-OK" "expect_out $C 'KESTREL-HVC-SCENARIO-EXIT 0'" \
            "expect_status $C 0"
    check_rec $C "$tag/proc/consoles lists hvc0 and not ttyS0" consoles_ok
    check_rec $C "${tag}named port: /sys/class/virtio-ports/*/name = org.kestrel.test, /dev/vportNpM exists" \
        all "[ -n \"\$(val $C PORT)\" ]" "eq \"\$(val $C PORT-DEV)\" \"/dev/\$(val $C PORT)\""
    check_rec $C "${tag}host -> guest: 4 MiB through the port socket, same md5" \
        all "eq \"\$(val $C H2G-BYTES)\" 4194304" "eq \"\$(val $C H2G-MD5)\" \"\$(val $H h2g-md5)\"" \
            "eq \"\$(val $H h2g-socat)\" 0"
    check_rec $C "${tag}guest -> host: 4 MiB through the port socket, same md5" \
        all "eq \"\$(val $C G2H-WRITE)\" ok" "eq \"\$(val $H g2h-bytes)\" 4194304" \
            "eq \"\$(val $H g2h-md5)\" \"\$(val $C G2H-MD5)\""
    case $t in
        pci*) check_rec $C "${tag}the console is a virtio-pci device" eq virtio-pci "$(val $C CONSOLE-DRIVER)" ;;
        mmio) check_rec $C "${tag}the console is a virtio-mmio device ($mmio_fw)" \
            all "eq virtio-mmio \"\$(val $C CONSOLE-DRIVER)\"" "mmio_fw_ok $C" ;;
        mix) check_rec $C "${tag}the console is on virtio-mmio$mix_fw, the disk beside it on virtio-pci and reads the test host's md5" \
            all "eq virtio-mmio \"\$(val $C CONSOLE-DRIVER)\"" "mmio_fw_ok $C" \
                "eq virtio-pci \"\$(val $C DISK-DRIVER)\"" "eq \"\$(val $H disk-md5)\" \"\$(val $C DISK-MD5)\"" ;;
    esac
    [ $ARCH = arm64 ] || continue
    case $t in
        pci) check_rec $C "${tag}the console's interrupts are MSI-X through the GIC ITS (ITS-MSI, fired)" \
            irqs_on $C "$ITS_MSI" ;;
        pci-intx) check_rec $C "${tag}--its off: the console's interrupt is a GICv3 level line (INTx, fired), no MSI in the guest" \
            all "irqs_on $C '$GIC_LEVEL'" "eq 0 \"\$(val $C MSI-IRQS)\"" ;;
        *) check_rec $C "${tag}the console's interrupt is a GICv3 level line (fired)" irqs_on $C "$GIC_LEVEL" ;;
    esac
done
finish
