#!/usr/bin/env bash
# diag_net.sh: per-packet counts for 64-byte UDP guest->host and TCP, kestrel vs QEMU (tap and
# vhost) in one test-host boot: kestrel -v counters, the guest's /proc/interrupts around each
# phase, the test host's KVM counters (debugfs kvm/exits...) and every VMM thread's context
# switches around a UDP window, and with --strace a second UDP window under strace -c -f.
# --rx turns the UDP windows around (host->guest, after a TCP transfer host->guest, as in
# bench_net.sh) and adds the guest's /proc/net/snmp Udp line (RcvbufErrors: frames its
# socket dropped), mergeable RX buffer size and its /proc/stat cpu line and softnet_stat around
# each; every VMM thread also gets its CPU ticks, and the test host its /proc/stat cpu line.
# --kestrel2 PATH adds a second kestrel binary (config k2-tap) for before/after in one run;
# --only REGEX picks configurations (kestrel-tap k2-tap qemu-tap kestrel-vhost qemu-vhost).
# Not a benchmark and not in any suite; see docs/performance.md, Network. E2E_KEEP=1 keeps
# the run dir (records: python3 over results.raw, base64 per =KRIG= FILE).
#   diag_net.sh [--kestrel PATH] [--kestrel2 PATH] [--udp SECS] [--size MIB] [--strace]
#               [--only REGEX] [--rx]
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"
KESTREL_BIN=$REPO_ROOT/build/kestrel K2= UDP=3 SIZE=16 STRACE=0 ONLY=. RX=0
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --kestrel2) K2=$2; shift 2 ;;
        --udp) UDP=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --strace) STRACE=1; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --rx) RX=1; shift ;;
        *) exit 2 ;;
    esac
done
tmp=$(mktemp -d)
cc -std=gnu11 -O2 -static -o "$tmp/netbench" "$E2E_DIR/netbench.c" || exit 1
scenario=$tmp/scenario.sh
{
    echo "UDP=$UDP SIZE=$SIZE STRACE=$STRACE ONLY='$ONLY' RX=$RX QCMD='$BENCH_CMDLINE'"
    cat <<'EOF'
export GUEST_FILES="/usr/local/bin/netbench:/bin/netbench"
BYTES=$((SIZE * 1048576))
cat > $RIG_WORK/g.sh <<GEOF
BYTES=$BYTES UDP=$UDP RX=$RX
GEOF
net_guest_prelude >> $RIG_WORK/g.sh
cat >> $RIG_WORK/g.sh <<'GEOF'
irq() { echo "G: IRQ $1"; grep -i virtio /proc/interrupts | sed 's/^/G: /'; }
cat /sys/class/net/eth0/device/features 2>/dev/null | sed 's/^/G: features /'
snmp() {
    grep '^Udp:' /proc/net/snmp | tail -n 1 | sed "s/^/G: SNMP $1 /"
    echo "G: MRGBUF $1 $(cat /sys/class/net/eth0/queues/rx-0/virtio_net/mergeable_rx_buffer_size)"
    echo "G: CPU $1 $(grep '^cpu ' /proc/stat) $(grep -c . /proc/net/softnet_stat) $(awk '{print $1, $2, $3}' /proc/net/softnet_stat | head -n 1)"
}
if [ $RX = 1 ]; then
    netbench recv -q -w 900 5002
    irq rx0; snmp rx0
    netbench udprecv -t $UDP -w 120 5004
    irq rx1; snmp rx1
    netbench udprecv -t $UDP -w 120 5008
    irq rx2; snmp rx2
else
    irq udp0
    netbench udpsend -s 64 -t $((UDP + 2)) $P 5003
    irq udp1
    sleep 1
    netbench udpsend -s 64 -t $((UDP + 2)) $P 5007
    netbench send -n $BYTES -w 900 $P 5001
    irq tcpout
    netbench recv -q -w 900 5002
    irq tcpin
fi
echo "G: BENCH-DONE"
netbench recv -q -w 60 5005 2> /dev/null
GEOF
G=$(guest_initrd bench $RIG_WORK/g.sh)
bench() {
    local name=$1 prog=$2 h=$RIG_WORK/$1-host.txt
    shift 2
    echo "$name" | grep -Eq "$ONLY" || return 0
    run_vmm -t 600 $name "$@" &
    VP=$!
    KP=
    wait_for 30 vmm_pid $prog && KP=$(vmm_pid $prog)
    (
        net_host_up || exit 1
        [ $RX = 1 ] && netbench send -p $KP -n $BYTES -w 900 10.77.0.2 5002
        # per thread: voluntary, involuntary switches, then utime+stime ticks; the host's cpu line
        ctx() {
            for t in /proc/$KP/task/*; do echo "H: CTX $1 $(cat $t/comm | tr ' ' _) $(grep ctxt $t/status | awk '{printf "%s ", $2}') $(sed 's/.*) //' $t/stat | awk '{print $12 + $13}')"; done
            echo "H: CPU $1 $(grep '^cpu ' /proc/stat)"
        }
        ctx before
        mount -t debugfs none /sys/kernel/debug 2>/dev/null
        kv() { for f in exits mmio_exits io_exits irq_exits halt_exits irq_injections nmi_injections signal_exits request_irq_exits irq_window_exits host_state_reload; do echo "H: KVM $1 $f $(cat /sys/kernel/debug/kvm/$f 2>/dev/null)"; done; }
        kv before
        # One UDP window counted, a second one under strace if asked.
        window() {
            if [ $RX = 1 ]; then netbench udpsend -s 64 -t $((UDP + 1)) 10.77.0.2 $1
            else netbench udprecv -t $UDP -w 120 $2; fi
        }
        window 5004 5003
        ctx after
        kv after
        [ $RX = 1 ] && sleep 1
        if [ $STRACE = 1 ]; then strace -c -f -p $KP -o $RIG_WORK/$name-strace.txt & SP=$!; fi
        window 5008 5007
        [ $STRACE = 1 ] && { kill -INT $SP; wait $SP; cat $RIG_WORK/$name-strace.txt; }
        if [ $RX = 0 ]; then
            netbench recv -p $KP -q -w 900 5001
            netbench send -p $KP -n $BYTES -w 900 10.77.0.2 5002
        fi
        wait_console $name "G: BENCH-DONE" 120
        netbench send -n 0 -w 60 10.77.0.2 5005
    ) > $h 2>&1
    wait $VP
    rig_put $name-host $h
}
K="kestrel -v --memory 512M --kernel $VMLINUZ --initrd $G --cmdline"
Q="$QEMU_KVM -name bench,debug-threads=on -m 512M -kernel $VMLINUZ -initrd $G -append"
QNET=$QEMU_NET_TAP QDEV=$QEMU_NET_DEV
bench kestrel-tap kestrel $K "$QCMD" --net tap=kt0,vhost=off
[ -x /usr/local/bin/kestrel2 ] && bench k2-tap kestrel2 kestrel2 ${K#kestrel } "$QCMD" --net tap=kt0,vhost=off
bench qemu-tap qemu-system-x86_64 $Q "$QCMD" $QNET,vhost=off $QDEV
bench kestrel-vhost kestrel $K "$QCMD" --net tap=kt0,vhost=on
bench qemu-vhost qemu-system-x86_64 $Q "$QCMD" $QNET,vhost=on $QDEV
EOF
} > "$scenario"
rig_run "$scenario" --timeout 3000 --file "$tmp/netbench:/usr/local/bin/netbench" ${K2:+--file "$K2:/usr/local/bin/kestrel2"} --kestrel "$KESTREL_BIN" || echo "diag: scenario failed"
echo "run dir: $RUN_DIR"
