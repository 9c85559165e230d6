#!/usr/bin/env bash
# virtio-net checks for kestrel, inside the nested test host (issue #4).
#
#   test_net.sh [--arch x86_64|arm64] [--kestrel PATH] [--netbench PATH] [--stamp PATH]
#               [--checks LIST] [--size MIB] [--transport pci|mmio|mix|intx]
#               [--records RUN_DIR]   (re-check an earlier run kept with E2E_KEEP=1)
#
# --arch arm64 runs in the nested arm64 test host with the cross-built kestrel (arm64_kestrel)
# unless --kestrel names one; --netbench is then a static aarch64 netbench (default: built
# with aarch64-linux-gnu-gcc -static).
# The test host's tap kt0 is 10.77.0.1/24 and the guest's eth0 10.77.0.2/24 (kt1 and eth1:
# 10.78.0.x); no traffic goes anywhere else. LIST is a comma list of:
#   off    --net tap=kt0,vhost=off: ping both ways; 200 pings answered one at a time turn
#          the network loop SCHED_OTHER and it goes back to SCHED_BATCH (kestrel -v counts
#          both, vmm/batch_policy.h); SIZE MiB (default 64) of random data
#          each way over TCP arrives with the sender's md5; the guest's `ip link set eth0
#          down/up` and a driver unbind/bind (virtio-pci, or the virtio-mmio platform driver)
#          keep the link working (ping both ways)
#   on     the same with vhost=on; kestrel says it chose vhost-net, and the kernel's worker
#          (vhost-PID) has CPU time during the transfers
#   cpu    (needs off and on) kestrel's own CPU time during the transfers: with vhost-net
#          it must be below 10% of what kestrel spends moving the packets itself
#   mq     --cpus 2 --net tap=kt0,queues=2: the guest has rx-0 rx-1 tx-0 tx-1, ping, the
#          transfers with md5, the resets
#   mtu    --net tap=kt0,mtu=9000: the guest's eth0 comes up with MTU 9000, 8000- and
#          8972-byte pings both ways without IP fragmentation on the guest side
#   two    --net tap=kt0 --net tap=kt1: two NICs, two subnets, pings and a 16 MiB transfer
#          on each at the same time
# --transport (default pci; CHECK@TRANSPORT in LIST for one check, e.g. two@mix):
# pci puts every NIC on virtio-pci; mmio every NIC on virtio-mmio
# (found through ACPI on x86, the device tree on arm64); mix each NIC on virtio-pci beside an
# 8 MiB disk on virtio-mmio that the guest reads back, and under "two" kt0's NIC on
# virtio-mmio, kt1's on virtio-pci; intx (arm64 only) every NIC on virtio-pci with kestrel's
# --its off (no MSI controller: the NICs use the PCI INTx lines).
# Every run checks that each NIC is on the driver of its transport. On arm64 the off, on and
# mq runs also check the kind of eth0's interrupts in the guest's /proc/interrupts: MSI-X
# through the GIC ITS (ITS-MSI, Edge) on pci and mix, a level-triggered GICv3 line on mmio
# and intx, and that they fired.
# All listed checks share one boot of the test host. Prints PASS/FAIL lines and
# "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=
NETBENCH=
STAMP=
CHECKS=off,on,cpu,mq,mtu,two
SIZE=64
REUSE=
TRANSPORT=pci
LIMIT=${E2E_VMM_TIMEOUT:-300}   # seconds per kestrel run inside the test host
while [ $# -gt 0 ]; do
    case $1 in
        --arch) set_arch "$2"; shift 2 ;;
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --netbench) NETBENCH=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --checks) CHECKS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --records) REUSE=$2; shift 2 ;;   # re-check the records of an earlier run (E2E_KEEP=1)
        --transport) TRANSPORT=$2; shift 2 ;;
        *) sed -n '2,38p' "$0" >&2; exit 2 ;;
    esac
done
# tp T: a transport's NT, BUS (the key on each NIC, its bus; NT0, BUS0: "two"'s kt0), the
# guest's MODS, XOPTS (more kestrel options: mix's mmio disk, intx's --its off) and IRQ (the
# kind of interrupt of a NIC on BUS, checked on arm64: msi or line).
tp() {
    case $1 in
        pci) NT='' NT0='' BUS=pci BUS0=pci MODS=virtio_pci XOPTS='' IRQ=msi ;;
        mmio) NT=,transport=mmio NT0=,transport=mmio BUS=mmio BUS0=mmio MODS=virtio_mmio XOPTS='' IRQ=line ;;
        mix) NT=,transport=pci NT0=,transport=mmio BUS=pci BUS0=mmio MODS="virtio_mmio virtio_pci virtio_blk"
            XOPTS="--disk path=/tmp/mix-disk.img,transport=mmio" IRQ=msi ;;
        intx) [ "$ARCH" = arm64 ] || { echo "transport intx: arm64 only (kestrel's --its off)" >&2; exit 2; }
            NT='' NT0='' BUS=pci BUS0=pci MODS=virtio_pci XOPTS='--its off' IRQ=line ;;
        *) echo "bad transport $1: expected pci, mmio, mix or intx" >&2; exit 2 ;;
    esac
}
want() { [[ ",$CHECKS," == *",$1,"* ]]; }
# items: "CHECK:TRANSPORT:RECORD" per item CHECK[@TRANSPORT] of LIST; the record is named
# CHECK, or CHECK-TRANSPORT when an item overrides --transport.
items() {
    local c n t
    for c in ${CHECKS//,/ }; do
        n=${c%@*} t=$TRANSPORT
        [[ $c == *@* ]] && t=${c#*@}
        tp $t
        echo "$n:$t:$n$([ $t = $TRANSPORT ] || echo -$t)"
    done
}
items > /dev/null
[ -n "$KESTREL_BIN" ] || KESTREL_BIN=$(default_kestrel) ||
    { echo "FAIL: building the $ARCH kestrel"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$KESTREL_BIN" ] || { echo "FAIL: no kestrel binary at $KESTREL_BIN"; echo "0 passed, 1 failed"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-net.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# netbench (tests/e2e/netbench.c) runs in the test host and in the guest: build it static,
# for the test host's architecture.
CC=cc ELF_MACHINE='3e 00'   # e_machine: EM_X86_64, EM_AARCH64
[ "$ARCH" = arm64 ] && CC=aarch64-linux-gnu-gcc ELF_MACHINE='b7 00'
if [ -z "$NETBENCH" ]; then
    NETBENCH=$tmp/netbench
    $CC -std=gnu11 -O2 -static -o "$NETBENCH" "$E2E_DIR/netbench.c" ||
        { echo "FAIL: cannot build netbench with $CC"; echo "0 passed, 1 failed"; exit 1; }
fi
[ "$(od -An -tx1 -j18 -N2 "$NETBENCH" 2> /dev/null | xargs)" = "$ELF_MACHINE" ] ||
    { echo "FAIL: $NETBENCH is not an $ARCH executable"; echo "0 passed, 1 failed"; exit 1; }
rig_args=(--timeout 1500 --kestrel "$KESTREL_BIN" --file "$NETBENCH:/usr/local/bin/netbench"
    ${STAMP:+--stamp "$STAMP"})

scenario=$tmp/scenario.sh
{
    echo "L=$LIMIT SIZE=$SIZE"
    cat <<'EOF'
QCMD='console=ttyS0 reboot=k panic=1 quiet'
head -c 8388608 /dev/urandom > /tmp/mix-disk.img
echo "H: DISK-MD5 $(md5sum < /tmp/mix-disk.img | cut -d' ' -f1)" > $RIG_WORK/disk-md5
rig_put disk-md5 $RIG_WORK/disk-md5
NB=/usr/local/bin/netbench
export GUEST_FILES="$NB:/bin/netbench"

frags() { awk '/^Ip:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print "reasm=" $c["ReasmReqds"] " frag=" $c["FragCreates"] }' /proc/net/snmp; }
# pings DESC ADDR [ping options]: print "H: DESC-OK" or "H: DESC-FAIL".
pings() { local d=$1 a=$2; shift 2; ping -c 3 -W 5 "$@" "$a" > /dev/null 2>&1 && echo "H: $d-OK" || echo "H: $d-FAIL"; }

# --- the guest's side ---------------------------------------------------------------
cat > $RIG_WORK/g-common.sh <<'GEOF'
A=10.77.0.2 P=10.77.0.1
say() { echo "G: $*"; }
wait_for() {
    local n=$(($1 * 2)); shift
    while [ $n -gt 0 ]; do "$@" > /dev/null 2>&1 && return 0; usleep 500000; n=$((n - 1)); done
    return 1
}
pings() { local d=$1 a=$2; shift 2; ping -c 3 -W 5 "$@" "$a" > /dev/null 2>&1 && say "$d-OK" || say "$d-FAIL"; }
frags() { awk '/^Ip:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print "reasm=" $c["ReasmReqds"] " frag=" $c["FragCreates"] }' /proc/net/snmp; }
modload $MODS virtio_net > /dev/null 2>&1 || say MODLOAD-FAIL
wait_for 20 test -e /sys/class/net/eth0 || say NO-ETH0
# The driver under each NIC (virtio-pci or virtio-mmio), and mix's mmio disk.
say_buses() {
    local d
    for d in /sys/class/net/eth*; do say BUS ${d##*/} $(basename "$(readlink -f $d/device/../driver)"); done
}
say_buses
if [ -e /sys/block/vda ]; then
    say DISK-DRIVER $(basename "$(readlink -f /sys/block/vda/device/../driver)")
    say DISK-MD5 $(md5sum < /dev/vda | cut -d' ' -f1)
fi
GEOF

# full: ping, transfers each way with md5, link down/up, driver unbind/bind.
{ cat $RIG_WORK/g-common.sh; echo "S=$SIZE"; cat <<'GEOF'
ip addr add $A/24 dev eth0; ip link set eth0 up
wait_for 120 ping -c 1 -W 1 $P
pings PING $P
say QUEUES $(ls /sys/class/net/eth0/queues | tr '\n' ' ')
head -c $((S * 1048576)) /dev/urandom > /tmp/d
say SENT-MD5 $(md5sum < /tmp/d)
say READY-RX
md=$(netbench recv -w 900 5002 2> /tmp/e | md5sum); cat /tmp/e
say RECV-MD5 $md
netbench send -w 900 $P 5001 /tmp/d
rm -f /tmp/d
grep virtio /proc/interrupts | awk '{ s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print "G: IRQ", $NF, s }'
# eth0's own interrupts: "G: NICIRQ NAME COUNT CHIP..." (the columns between the counts and the name).
v=$(basename "$(readlink -f /sys/class/net/eth0/device)")
awk -v v=$v '$NF ~ "^" v "(-|$)" { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i
    c = ""; for (; i < NF; i++) c = c " " $i; print "G: NICIRQ", $NF, s c }' /proc/interrupts
ip link set eth0 down; ip link set eth0 up
wait_for 30 ping -c 1 -W 1 $P && say LINKCYCLE-PING-OK || say LINKCYCLE-PING-FAIL
# Through the driver of eth0's transport device: virtio-pci, or the virtio-mmio platform driver.
dev=$(readlink -f /sys/class/net/eth0/device/..)
drv=$(readlink -f $dev/driver)
say DEV ${dev##*/} ${drv##*/}
echo ${dev##*/} > $drv/unbind
wait_for 10 sh -c '! test -e /sys/class/net/eth0'
echo ${dev##*/} > $drv/bind
wait_for 20 test -e /sys/class/net/eth0 || say NO-ETH0-AFTER-BIND
ip addr add $A/24 dev eth0; ip link set eth0 up
wait_for 30 ping -c 1 -W 1 $P && say REBIND-PING-OK || say REBIND-PING-FAIL
say RESET-DONE
netbench recv -q -w 120 5003 2> /dev/null
GEOF
} > $RIG_WORK/g-full.sh

# mtu: eth0 at 9000, large pings without fragmenting.
{ cat $RIG_WORK/g-common.sh; cat <<'GEOF'
say MTU-INITIAL $(cat /sys/class/net/eth0/mtu)
ip link set eth0 mtu 9000 || say MTU-SET-FAIL
ip addr add $A/24 dev eth0; ip link set eth0 up
wait_for 120 ping -c 1 -W 1 $P
say MTU $(cat /sys/class/net/eth0/mtu)
say FRAGS-BEFORE $(frags)
pings BIGPING $P -s 8000
pings MAXPING $P -s 8972
say FRAGS-AFTER $(frags)
say MTU-DONE
netbench recv -q -w 120 5003 2> /dev/null
GEOF
} > $RIG_WORK/g-mtu.sh

# two: eth0/eth1 found by MAC, one per subnet, used at the same time.
{ cat $RIG_WORK/g-common.sh; cat <<'GEOF'
wait_for 20 test -e /sys/class/net/eth1 || say NO-ETH1
say_buses
for d in /sys/class/net/eth*; do
    case $(cat $d/address) in
        52:54:00:77:00:02) I0=${d##*/} ;;
        52:54:00:78:00:02) I1=${d##*/} ;;
    esac
done
say NICS kt0=${I0:-none} kt1=${I1:-none}
ip addr add 10.77.0.2/24 dev $I0; ip link set $I0 up
ip addr add 10.78.0.2/24 dev $I1; ip link set $I1 up
wait_for 120 ping -c 1 -W 1 10.77.0.1
wait_for 30 ping -c 1 -W 1 10.78.0.1
pings PING0 10.77.0.1 & pings PING1 10.78.0.1 & wait
netbench send -n 16777216 -w 600 10.77.0.1 5001 2> /tmp/e0 &
netbench send -n 16777216 -w 600 10.78.0.1 5011 2> /tmp/e1 &
wait
sed 's/^/G: NIC0 /' /tmp/e0; sed 's/^/G: NIC1 /' /tmp/e1
say TWO-DONE
netbench recv -q -w 120 5003 2> /dev/null
GEOF
} > $RIG_WORK/g-two.sh

# --- the test host's side -------------------------------------------------------------
# net_full NAME KESTREL-NET-ARGS...: one guest running g-full.sh.
net_full() {
    local name=$1 h=$RIG_WORK/$1-host.txt
    shift
    start_vmm $name kestrel --memory 512M --kernel $VMLINUZ --initrd $G_FULL --cmdline "$QCMD" -v "$@" $XOPTS
    (
        host_tap kt0 10.77.0.1 || exit 1
        wait_for 240 ping -c 1 -W 1 10.77.0.2 || { echo "H: guest never answered"; exit 1; }
        pings PING 10.77.0.2
        # 200 echo requests, each answered on its own: one frame per transmit pass.
        ping -c 200 -i 0.01 -W 5 -q 10.77.0.2 > /dev/null 2>&1 && echo "H: PINGS-OK" || echo "H: PINGS-FAIL"
        head -c $((SIZE * 1048576)) /dev/urandom > /tmp/hd
        echo "H: SENT-MD5 $(md5sum < /tmp/hd)"
        wait_console $name "G: READY-RX" 300 || exit 1
        netbench send -p $KP -w 900 10.77.0.2 5002 /tmp/hd
        rm -f /tmp/hd
        echo "H: RECV-MD5 $(netbench recv -p $KP -w 900 5001 | md5sum)"
        wait_console $name "G: RESET-DONE" 180 || exit 1
        pings RESET-PING 10.77.0.2
        netbench send -n 0 -w 60 10.77.0.2 5003
    ) > $h 2>&1
    wait $VP
    rig_put $name-host $h
}

# net_mtu NAME NIC-KEYS: one guest running g-mtu.sh.
net_mtu() {
    local name=$1 h=$RIG_WORK/$1-host.txt
    start_vmm $name kestrel --memory 512M --kernel $VMLINUZ --initrd $G_MTU --cmdline "$QCMD" --net tap=kt0,mtu=9000$2 $XOPTS
    (
        host_tap kt0 10.77.0.1 9000 || exit 1
        echo "H: MTU $(cat /sys/class/net/kt0/mtu)"
        wait_for 240 ping -c 1 -W 1 10.77.0.2 || { echo "H: guest never answered"; exit 1; }
        echo "H: FRAGS-BEFORE $(frags)"
        pings BIGPING 10.77.0.2 -s 8000
        pings MAXPING 10.77.0.2 -s 8972
        echo "H: FRAGS-AFTER $(frags)"
        wait_console $name "G: MTU-DONE" 120 || exit 1
        netbench send -n 0 -w 60 10.77.0.2 5003
    ) > $h 2>&1
    wait $VP
    rig_put $name-host $h
}

# net_two NAME KT0-KEYS KT1-KEYS: one guest running g-two.sh.
net_two() {
    local name=$1 h=$RIG_WORK/$1-host.txt
    start_vmm $name kestrel --memory 512M --kernel $VMLINUZ --initrd $G_TWO --cmdline "$QCMD" \
        --net tap=kt0,mac=52:54:00:77:00:02$2 --net tap=kt1,mac=52:54:00:78:00:02$3 $XOPTS
    (
        host_tap kt0 10.77.0.1 || exit 1
        host_tap kt1 10.78.0.1 || exit 1
        netbench recv -q -w 600 5001 2> $RIG_WORK/two-r0 &
        netbench recv -q -w 600 5011 2> $RIG_WORK/two-r1 &
        wait_for 240 ping -c 1 -W 1 10.77.0.2 || echo "H: guest never answered on kt0"
        wait_for 30 ping -c 1 -W 1 10.78.0.2 || echo "H: guest never answered on kt1"
        pings PING0 10.77.0.2 & p0=$!
        pings PING1 10.78.0.2 & p1=$!
        wait $p0 $p1
        wait_console $name "G: TWO-DONE" 300
        wait
        sed 's/^/H: NIC0 /' $RIG_WORK/two-r0; sed 's/^/H: NIC1 /' $RIG_WORK/two-r1
        netbench send -n 0 -w 60 10.77.0.2 5003
    ) > $h 2>&1
    wait $VP
    rig_put $name-host $h
}

# use T MODS XOPTS: the guest initramfs images (modules MODS) and the more kestrel options for transport T.
use() {
    local g
    XOPTS=$3
    for g in full mtu two; do
        [ -f $RIG_WORK/guest-$g-$1.cpio.gz ] ||
            { echo "MODS='$2'"; cat $RIG_WORK/g-$g.sh; } | guest_initrd $g-$1 > /dev/null
    done
    G_FULL=$RIG_WORK/guest-full-$1.cpio.gz G_MTU=$RIG_WORK/guest-mtu-$1.cpio.gz G_TWO=$RIG_WORK/guest-two-$1.cpio.gz
}
EOF
    for it in $(items); do
        IFS=: read -r c t n <<< "$it"
        tp $t
        echo "use $t '$MODS' '$XOPTS'"
        case $c in
            off) echo "net_full $n --net tap=kt0,vhost=off$NT" ;;
            on) echo "net_full $n --net tap=kt0,vhost=on$NT" ;;
            mq) echo "net_full $n --cpus 2 --net tap=kt0,queues=2$NT" ;;
            mtu) echo "net_mtu $n '$NT'" ;;
            two) echo "net_two $n '$NT0' '$NT'" ;;
        esac
    done
} > "$scenario"

echo "# test_net: checks=$CHECKS size=${SIZE}MiB transport=$TRANSPORT"
t0=$(date +%s)
if [ -n "$REUSE" ]; then
    RUN_DIR=$REUSE
elif ! rig_run "$scenario" "${rig_args[@]}"; then
    fail "test host ran the scenario to its end (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR ($(($(date +%s) - t0)) s)"

# Console lines of the guest (G: ...) and the host side (H: ..., netbench: ...).
gout() { rec_out "$1" | tr -d '\r'; }
hout() { rec_out "$1-host" | tr -d '\r'; }
gval() { gout "$1" | sed -n "s/^G: $2 //p" | head -1 | awk '{print $1}'; }
hval() { hout "$1" | sed -n "s/^H: $2 //p" | head -1 | awk '{print $1}'; }
has_g() { gout "$1" | grep -xF "G: $2" > /dev/null || { echo "  $1: guest did not print '$2'" >&2; return 1; }; }
has_h() { hout "$1" | grep -xF "H: $2" > /dev/null || { echo "  $1: host did not print '$2'" >&2; return 1; }; }
EMPTY_MD5=d41d8cd98f00b204e9800998ecf8427e
# same_md5 DESC A B: two non-empty, equal md5s that are not the md5 of nothing.
same_md5() {
    echo "  $1: sent $2, received $3"
    [ -n "$2" ] && [ "$2" = "$3" ] && [ "$2" != "$EMPTY_MD5" ]
}
# nb_bytes TEXT MODE: the byte count of a "netbench: MODE N bytes ..." line.
nb_line() { grep -m1 "^netbench: $2 " <<< "$1"; }
nb_bytes() { nb_line "$1" "$2" | awk '{print $3}'; }
nb_rate() { nb_line "$1" "$2" | awk '{print $9}'; }

# expect_err_has NAME TEXT: kestrel's stderr has the line TEXT.
expect_err_has() { rec_err "$1" | tr -d '\r' | grep -xF -- "$2" > /dev/null || { echo "  $1: no line '$2' on stderr" >&2; return 1; }; }
# loop_switched_both_ways NAME: kestrel -v counted switches of the network loop each way.
loop_switched_both_ways() {
    rec_err "$1" | tr -d '\r' | grep -E '^kestrel: network loop: [1-9][0-9]* switches to SCHED_OTHER, [1-9][0-9]* back to SCHED_BATCH$' > /dev/null
}
# check_rec as in e2e-lib.sh, but a single CONDITION is eval'ed and a failure also shows the
# host side's record (NAME-host).
check_rec() {
    local name=$1 desc=$2; shift 2
    if ! has_rec "$name"; then fail "$desc (no record: VMM run did not finish)"; return; fi
    local ok=0
    if [ $# -eq 1 ]; then eval "$1" || ok=1; else "$@" || ok=1; fi
    if [ $ok = 0 ]; then pass "$desc"; else fail "$desc"; show_rec "$name"; has_rec "$name-host" && { echo "---- $name-host:"; hout "$name" | tail -n 15 | sed 's/^/    /'; }; fi
}

BYTES=$((SIZE * 1048576))
# check_full NAME DESC: the checks of one net_full run.
check_full() {
    local n=$1 d=$2
    check_rec $n "$d: kestrel ran the guest to its end (exit 0, $(rec_time $n)s)" \
        all "expect_status $n 0" "expect_out $n KESTREL-GUEST-SCENARIO-EXIT"
    check_rec $n "$d: ping guest -> host and host -> guest" all "has_g $n PING-OK" "has_h $n PING-OK"
    local g h
    g=$(gout $n); h=$(hout $n)
    echo "  $n: host->guest $(nb_rate "$h" send) MB/s, guest->host $(nb_rate "$g" send) MB/s"
    check_rec $n "$d: $SIZE MiB host -> guest over TCP, md5 matches" \
        all "same_md5 host-to-guest '$(hval $n SENT-MD5)' '$(gval $n RECV-MD5)'" \
            "[ '$(nb_bytes "$g" recv)' = $BYTES ]"
    check_rec $n "$d: $SIZE MiB guest -> host over TCP, md5 matches" \
        all "same_md5 guest-to-host '$(gval $n SENT-MD5)' '$(hval $n RECV-MD5)'" \
            "[ '$(nb_bytes "$h" recv)' = $BYTES ]"
    check_rec $n "$d: guest ip link down/up, then ping" "has_g $n LINKCYCLE-PING-OK"
    check_rec $n "$d: guest driver unbind/bind ($(gout $n | sed -n 's/^G: DEV //p' | head -1)), then ping both ways" \
        all "has_g $n REBIND-PING-OK" "has_h $n RESET-PING-OK"
    check_bus $n "$d" eth0=$BUS
    [ "$ARCH" = arm64 ] && check_irq $n "$d"
}
# check_irq NAME DESC (arm64): eth0's interrupts in the guest's /proc/interrupts are of the
# transport's kind and its queues' interrupts fired: IRQ=msi, MSI-X through the GIC ITS
# (every vector "ITS-MSI HWIRQ Edge", the config vector and at least one queue vector);
# IRQ=line, the one level-triggered GICv3 line of virtio-mmio or PCI INTx.
check_irq() {
    local n=$1 d=$2 want
    case $IRQ in
        msi) want='MSI-X vectors through the GIC ITS' ;;
        line) want='one level-triggered GICv3 line' ;;
    esac
    check_rec $n "$d: eth0's interrupts are $want and fired ($(gout $n | awk '$2 == "NICIRQ" {
        printf "%s%s=%s %s %s", n++ ? ", " : "", $3, $4, $5, $7 }'))" irq_ok $n
}
irq_ok() {
    gout $1 | awk -v k=$IRQ '$2 == "NICIRQ" {
            n++; if ($3 !~ /-config$/) { q++; s += $4 }
            if (k == "msi" ? $5 != "ITS-MSI" || $7 != "Edge" : $5 != "GICv3" || $7 != "Level") bad++
        }
        END { exit !(!bad && s > 0 && (k == "msi" ? n >= 2 && q < n : n == 1)) }'
}
# check_bus NAME DESC IF=BUS...: each interface is on virtio-BUS's driver; under mix the
# mmio disk beside the NICs reads the test host's md5.
check_bus() {
    local n=$1 d=$2 c=() ib; shift 2
    for ib in "$@"; do c+=("eq virtio-${ib#*=} \"\$(gout $n | awk '\$2 == \"BUS\" && \$3 == \"${ib%%=*}\" {print \$4; exit}')\""); done
    [ $t = mix ] && c+=("eq virtio-mmio \"\$(gval $n DISK-DRIVER)\"" "eq \"\$(rec_out disk-md5 | sed -n 's/^H: DISK-MD5 //p')\" \"\$(gval $n DISK-MD5)\"")
    check_rec $n "$d: $*$([ $t = mix ] && echo '; a virtio-mmio disk beside it reads the test host md5')" all "${c[@]}"
}
# cpu_ms NAME FIELD: the sum of FIELD (proc, vmm, vcpu, vhost) over the host's two cpu lines.
cpu_ms() { hout "$1" | sed -n "s/^netbench: cpu .* $2=\([0-9]*\).*/\1/p" | awk '{s += $1} END {print s + 0}'; }

# One block of checks per item; L labels the descriptions of non-pci transports.
for it in $(items); do
    IFS=: read -r c t n <<< "$it"
    tp $t
    L=; [ $t = pci ] || L="[$t] "
    case $c in
        off)
            check_full $n "${L}vhost=off"
            check_rec $n "${L}vhost=off: kestrel moves the packets itself" expect_err_has $n 'kestrel: net0 on kt0: tap'
            check_rec $n "${L}vhost=off: 200 pings answered one at a time turned the network loop SCHED_OTHER, and it went back to SCHED_BATCH ($(rec_err $n | tr -d '\r' | sed -n 's/^kestrel: network loop: //p'))" \
                all "has_h $n PINGS-OK" "loop_switched_both_ways $n"
            ;;
        on)
            check_full $n "${L}vhost=on"
            check_rec $n "${L}vhost=on: kestrel says it chose vhost-net" expect_err_has $n 'kestrel: net0 on kt0: vhost-net'
            # The claim alone proves nothing: the kernel's worker (vhost-PID) must have done the work.
            check_rec $n "${L}vhost=on: the kernel's vhost-net worker moved the data ($(cpu_ms $n vhost) ms of CPU in vhost-$(hout $n | sed -n 's/^netbench: cpu pid=\([0-9]*\).*/\1/p' | head -1) during the transfers)" \
                "[ \"\$(hout $n | grep -c '^netbench: cpu .* vhost=')\" = 2 ] && [ $(cpu_ms $n vhost) -gt 0 ]"
            ;;
        mq)
            check_rec $n "${L}queues=2: the guest has rx-0 rx-1 tx-0 tx-1" \
                eval "[ \"\$(gout $n | sed -n 's/^G: QUEUES //p' | tr -s ' ' | sed 's/ *\$//')\" = 'rx-0 rx-1 tx-0 tx-1' ] || { gout $n | grep '^G: QUEUES' >&2; false; }"
            check_full $n "${L}queues=2"
            gout $n | grep '^G: IRQ' | sed "s/^/  $n: /"
            ;;
        mtu)
            echo "  $n: guest eth0 initial $(gval $n MTU-INITIAL), after set $(gval $n MTU); host kt0 $(hval $n MTU); guest IP counters before $(gout $n | sed -n 's/^G: FRAGS-BEFORE //p'), after $(gout $n | sed -n 's/^G: FRAGS-AFTER //p')"
            check_rec $n "${L}mtu=9000: kestrel ran the guest to its end (exit 0, $(rec_time $n)s)" \
                all "expect_status $n 0" "expect_out $n KESTREL-GUEST-SCENARIO-EXIT"
            check_rec $n "${L}mtu=9000: the guest's eth0 comes up with MTU 9000 (offered by kestrel)" \
                "[ '$(gval $n MTU-INITIAL)' = 9000 ] && [ '$(gval $n MTU)' = 9000 ] && [ '$(hval $n MTU)' = 9000 ]"
            check_rec $n "${L}mtu=9000: 8000- and 8972-byte pings guest -> host" all "has_g $n BIGPING-OK" "has_g $n MAXPING-OK"
            check_rec $n "${L}mtu=9000: 8000- and 8972-byte pings host -> guest" all "has_h $n BIGPING-OK" "has_h $n MAXPING-OK"
            check_bus $n "${L}mtu=9000" eth0=$BUS
            check_rec $n "${L}mtu=9000: the guest neither fragmented nor reassembled" \
                "[ -n '$(gout $n | sed -n 's/^G: FRAGS-BEFORE //p')' ] && [ '$(gout $n | sed -n 's/^G: FRAGS-BEFORE //p')' = '$(gout $n | sed -n 's/^G: FRAGS-AFTER //p')' ]"
            ;;
        two)
            echo "  $n: $(gout $n | grep '^G: NICS')"
            check_rec $n "${L}two NICs: kestrel ran the guest to its end (exit 0, $(rec_time $n)s)" \
                all "expect_status $n 0" "expect_out $n KESTREL-GUEST-SCENARIO-EXIT"
            check_rec $n "${L}two NICs: ping on kt0 and kt1 at once, both ways" \
                all "has_g $n PING0-OK" "has_g $n PING1-OK" "has_h $n PING0-OK" "has_h $n PING1-OK"
            check_rec $n "${L}two NICs: 16 MiB on each at once, all bytes arrive" \
                "[ \"\$(hout $n | sed -n 's/^H: NIC0 netbench: recv \([0-9]*\) .*/\1/p')\" = 16777216 ] && [ \"\$(hout $n | sed -n 's/^H: NIC1 netbench: recv \([0-9]*\) .*/\1/p')\" = 16777216 ]"
            nics=$(gout $n | sed -n 's/^G: NICS //p' | head -1)
            i0=$(echo "$nics" | sed -n 's/.*kt0=\([^ ]*\).*/\1/p'); i1=$(echo "$nics" | sed -n 's/.*kt1=\([^ ]*\).*/\1/p')
            check_bus $n "${L}two NICs" "${i0:-kt0}=$BUS0" "${i1:-kt1}=$BUS"
            ;;
    esac
done
if want cpu && want off && want on; then
    for n in off on; do
        echo "  kestrel CPU during the 2x$SIZE MiB transfers, vhost=$n: CPU time (all threads) $(cpu_ms $n proc) ms; vCPU threads $(cpu_ms $n vcpu) ms; the rest (event loop, main): $(cpu_ms $n vmm) ms; kernel vhost worker $(cpu_ms $n vhost) ms"
    done
    cpu_ok() {
        local a b; a=$(cpu_ms off vmm); b=$(cpu_ms on vmm)
        [ "$(hout off | grep -c '^netbench: cpu')" = 2 ] && [ "$(hout on | grep -c '^netbench: cpu')" = 2 ] &&
            [ "$a" -gt 0 ] && [ $((b * 10)) -lt "$a" ]
    }
    check_rec on "vhost=on: kestrel's own CPU time ($(cpu_ms on vmm) ms) < 10% of vhost=off's ($(cpu_ms off vmm) ms)" cpu_ok
fi
finish
