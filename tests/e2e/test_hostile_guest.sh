#!/usr/bin/env bash
# The hostile-guest test (issue 7): a hostile driver inside Debian's stock kernel attacks
# kestrel through the virtio-pci or virtio-mmio registers and rings, inside the nested test host.
#
#   test_hostile_guest.sh [--kestrel PATH] [--hostile PATH] [--stamp PATH] [--attacks LIST]
#                         [--transport pci|mmio] (of the attacked devices; default pci)
#                         [--records RUN_DIR]   (re-check an earlier run kept with E2E_KEEP=1)
#
# One test-host boot; one kestrel run per attack (--cpus 2 --memory 256M), each with
#   the attacked disk: 1 MiB, sector 0 holds "kestrel-hostile-sector0\n" repeated
#   the untouched disk: 8 MiB of random data on virtio-pci, read through Linux's virtio-blk
#   the attacked NIC: --net tap=kt0 (vhost=on for status-net and msix, off otherwise)
# pci: the attacked disk is vda, the untouched one vdb, the NIC eth0; the guest runs
# `hostile ATTACK blk=BDF-of-vda net=BDF-of-eth0` (tests/e2e/hostile.c: it unbinds virtio-pci,
# maps the BAR from sysfs and drives the device from pinned memory).
# mmio: the attacked disk and NIC have transport=mmio; the guest never loads virtio_mmio (so
# the windows stay unclaimed, as /dev/mem under STRICT_DEVMEM needs), the untouched disk is its
# vda, and it runs `hostile ATTACK blk=mmio net=mmio` (windows found through the LNRO0005
# resources in /proc/iomem, mapped from /dev/mem). Then the guest reads the untouched disk's
# md5 and reboots. LIST is a comma list of mrg,status-blk,status-net,isr,reset,msix,sweep
# (default: all of them; on mmio all but msix; the attacks are described in hostile.c;
# NAME-blk/NAME-net run NAME on one device only; for mrg the test host sends 1400-byte frames
# to the guest's MAC). Checks per attack:
#   - kestrel stays up: the guest finishes, kestrel exits 0 on the guest's reboot within the
#     time bound, and its stderr has no crash or sanitizer report
#   - each attacked device ends in DEVICE_NEEDS_RESET or keeps working (after a reset and a
#     clean bring-up, blk reads sector 0 back, net transmits a frame)
#   - the untouched disk vdb reads the md5 the test host computed
# and for mrg: queue_size 1024 is not taken as is (mmio: QueueReady reads 0 or NEEDS_RESET);
# for reset: no round leaves a live, enabled queue that serves nothing; for msix: completions
# on a masked vector set the pending bit (blk, net with vhost), and 10000 writes to port 0xf5
# leave fewer than 100 lines on stderr; on mmio, for isr: the device raised interrupts the
# racing vCPUs saw; for sweep: writes to read-only registers leave the device's identity.
# Prints PASS/FAIL lines and "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build/kestrel
HOSTILE=
STAMP=
ATTACKS=
TRANSPORT=pci
REUSE=
LIMIT=${E2E_VMM_TIMEOUT:-80}   # seconds per kestrel run; a deadlock ends as status 143/137
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --hostile) HOSTILE=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --attacks) ATTACKS=$2; shift 2 ;;
        --transport) TRANSPORT=$2; shift 2 ;;
        --records) REUSE=$2; shift 2 ;;
        *) sed -n '2,36p' "$0" >&2; exit 2 ;;
    esac
done
case $TRANSPORT in
    pci) : "${ATTACKS:=mrg,status-blk,status-net,isr,reset,msix,sweep}" ;;
    mmio) : "${ATTACKS:=mrg,status-blk,status-net,isr,reset,sweep}" ;;
    *) echo "usage: --transport pci|mmio" >&2; exit 2 ;;
esac
[ -x "$KESTREL_BIN" ] || { echo "FAIL: no kestrel binary at $KESTREL_BIN"; echo "0 passed, 1 failed"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-hostile.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ -z "$HOSTILE" ]; then
    HOSTILE=$tmp/hostile
    cc -std=gnu11 -O2 -static -pthread -o "$HOSTILE" "$E2E_DIR"/hostile*.c ||
        { echo "FAIL: cannot build hostile"; echo "0 passed, 1 failed"; exit 1; }
fi

scenario=$tmp/scenario.sh
{
    echo "L=$LIMIT ATTACKS='${ATTACKS//,/ }' T=$TRANSPORT"
    cat <<'EOF'
head -c 8388608 /dev/urandom > /tmp/victim.img
md5sum < /tmp/victim.img | cut -d' ' -f1 > "$RIG_WORK/victim-md5"
rig_put victim-md5 "$RIG_WORK/victim-md5"
{ yes kestrel-hostile-sector0 | head -c 512; head -c 1048064 /dev/zero; } > /tmp/attack.img
export GUEST_FILES="/usr/local/bin/hostile:/bin/hostile"
MAC=52:54:00:77:00:02

# The guest's side (ATTACK=... T=... is prepended). On mmio, virtio_mmio is never loaded: the
# attacked windows must stay unclaimed for /dev/mem, and the untouched PCI disk becomes vda.
cat > "$RIG_WORK/g-hostile.sh" <<'GEOF'
if [ $T = mmio ]; then
    modload virtio_pci virtio_blk > /dev/null 2>&1 || echo "G: MODLOAD-FAIL"
    VICTIM=/dev/vda NIC=. B=blk=mmio N=net=mmio
else
    modload virtio_pci virtio_blk virtio_net > /dev/null 2>&1 || echo "G: MODLOAD-FAIL"
    VICTIM=/dev/vdb NIC=/sys/class/net/eth0
fi
n=0
while { [ ! -b $VICTIM ] || [ ! -e $NIC ]; } && [ $n -lt 100 ]; do usleep 100000; n=$((n + 1)); done
bdf() { basename "$(readlink -f "$1/device/..")"; }
[ $T = mmio ] || B=blk=$(bdf /sys/block/vda) N=net=$(bdf /sys/class/net/eth0)
case $ATTACK in mrg|*-net) B= ;; isr|reset|*-blk) N= ;; esac
hostile ${ATTACK%-*} $B $N
echo "G: HOSTILE-EXIT $?"
echo 3 > /proc/sys/vm/drop_caches
echo "G: VICTIM-MD5 $(md5sum < $VICTIM | cut -d' ' -f1)"
# What the guest kernel thought of it (quiet hides most of the log).
dmesg | grep -iE 'mce|iommu|nobody cared|hostile|segfault|bug:|oops|virtio' | tail -n 12 | sed 's/^/G: KMSG /'
GEOF

for a in $ATTACKS; do
    vhost=off
    case $a in status-net|msix) vhost=on ;; esac
    G=$({ echo "ATTACK=$a T=$T"; cat "$RIG_WORK/g-hostile.sh"; } | guest_initrd $a)
    set -- kestrel --cpus 2 --memory 256M --kernel $VMLINUZ --initrd $G \
        --cmdline "console=ttyS0 reboot=k panic=1 quiet" \
        --disk path=/tmp/attack.img,transport=$T --disk path=/tmp/victim.img,transport=pci \
        --net tap=kt0,mac=$MAC,vhost=$vhost,transport=$T
    if [ $a != mrg ]; then
        run_vmm -t $L $a "$@"
        continue
    fi
    # mrg: large frames from the tap once the guest's hostile RX queue is posted.
    start_vmm mrg "$@"
    (
        host_tap kt0 10.77.0.1 || exit 1
        wait_console mrg "G: MRG-READY" 60 || exit 1
        arp -i kt0 -s 10.77.0.2 $MAC
        ping -c 40 -i 0.25 -s 1400 -w 12 10.77.0.2
        echo "H: FRAMES-SENT"
    ) > "$RIG_WORK/mrg-host.txt" 2>&1
    wait $VP
    rig_put mrg-host "$RIG_WORK/mrg-host.txt"
done
EOF
} > "$scenario"

echo "# test_hostile_guest: transport=$TRANSPORT attacks=$ATTACKS"
if [ -n "$REUSE" ]; then
    RUN_DIR=$REUSE
elif ! rig_run "$scenario" --timeout "${E2E_HOST_TIMEOUT:-570}" --kestrel "$KESTREL_BIN" \
        ${STAMP:+--stamp "$STAMP"} --file "$HOSTILE:/usr/local/bin/hostile"; then
    fail "test host ran the scenario to its end (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"

# gval NAME KEY: the rest of the guest's first "G: KEY rest" line.
gval() { rec_out "$1" | tr -d '\r' | sed -n "s/^G: $2 //p" | head -n 1; }
HOST_MD5=$(cat "$RUN_DIR/records/victim-md5/stdout" 2>/dev/null)
no_crash() {
    ! rec_err "$1" | grep -iE 'sanitizer|runtime error|segmentation|abort|assert|core dumped|double free|corrupt' > /dev/null
}
# results_ok NAME: at least one RESULT line, and each says ok.
results_ok() {
    local r; r=$(rec_out "$1" | tr -d '\r' | grep '^G: RESULT ')
    echo "$r" | sed 's/^/    /' >&2
    [ -n "$r" ] && ! echo "$r" | grep -qv ' ok$'
}
pba_set() { eq 1 "$(gval "$1" "$2" | sed -n 's/.*pba=\([0-9]\).*/\1/p')"; }
# size_refused NAME: the oversized RX queue was not taken as is (reads back at most the device's
# maximum, or was not enabled, or the device went to NEEDS_RESET by DRIVER_OK).
size_refused() {
    local l st
    l=$(rec_out "$1" | tr -d '\r' | sed -n 's/^G: MRG max=\([0-9]*\) enable=\([01]\) size-read=\([0-9]*\)$/\1 \2 \3/p')
    st=$(gval "$1" MRG-READY | sed -n 's/^status=//p')
    echo "  max enable size-read: ${l:-none}; status after DRIVER_OK: ${st:-none}" >&2
    set -- $l
    # mmio: QueueNum is write-only (reads 0), so only QueueReady or NEEDS_RESET can tell.
    [ $# -eq 3 ] && { { [ $TRANSPORT = pci ] && [ "$3" -le "$1" ]; } || [ "$2" = 0 ] ||
        [ $((${st:-0} & 0x40)) -ne 0 ]; }
}
# irqs_seen NAME: mmio isr: the racing vCPUs saw InterruptStatus set, requests completed.
irqs_seen() {
    local l; l=$(gval "$1" ISR); echo "  $l" >&2
    [ "$(echo "$l" | sed -n 's/.* seen=\([0-9]*\) .*/\1/p')" -gt 0 ] 2>/dev/null &&
        [ "$(echo "$l" | sed -n 's/.* requests=\([0-9]*\)\/.*/\1/p')" -gt 0 ] 2>/dev/null
}
quiet_stderr() { [ "$(rec_err "$1" | wc -l)" -lt 100 ] || { echo "  $1: $(rec_err "$1" | wc -l) lines of stderr" >&2; return 1; }; }
for a in ${ATTACKS//,/ }; do
    check_rec $a "[$a] kestrel stays up: the guest finishes, exit 0 on its reboot, no crash report on stderr" \
        all "expect_status $a 0" "expect_out $a 'G: HOSTILE-DONE'" "expect_out $a KESTREL-GUEST-SCENARIO-EXIT" \
            "no_crash $a"
    check_rec $a "[$a] the attacked devices end in NEEDS_RESET or keep working after a clean bring-up" \
        results_ok $a
    check_rec $a "[$a] the untouched disk reads the test host's md5 afterwards" \
        eq "$HOST_MD5" "$(gval $a VICTIM-MD5)"
    if [ $a = mrg ]; then
        check_rec $a "[mrg] queue_size 1024 above the device maximum is refused or ends in NEEDS_RESET" \
            size_refused $a
    fi
    if [ $a = reset ]; then
        check_rec $a "[reset] a queue enabled right after a reset through the window serves requests or is refused" \
            eq 0 "$(gval $a RESET | sed -n 's/.* stuck=\([0-9]*\) .*/\1/p')"
    fi
    if [ $a = isr ] && [ $TRANSPORT = mmio ]; then
        check_rec $a "[isr] mmio: both vCPUs raced InterruptStatus/InterruptACK against completions" \
            irqs_seen $a
    fi
    if [ $a = sweep ] && [ $TRANSPORT = mmio ]; then
        check_rec $a "[sweep] mmio: writes to read-only registers leave magic, version and device id" \
            expect_out $a "G: SWEEP mmio read-only writes: magic=0x74726976 version=2 id=2 "
    fi
    if [ $a = msix ]; then
        check_rec $a "[msix] virtio-blk: completions on a masked vector set the pending bit" \
            pba_set $a MSIX-BLK-MASKED
        check_rec $a "[msix] virtio-net with vhost: completions on a masked vector set the pending bit" \
            pba_set $a MSIX-NET-MASKED
        check_rec $a "[msix] 10000 writes to port 0xf5 leave fewer than 100 lines on stderr" quiet_stderr $a
    fi
done
finish
