#!/usr/bin/env bash
# diag_net.sh: per-packet counts for 64-byte UDP guest->host and TCP, kestrel vs QEMU (tap and
# vhost) in one test-host boot: kestrel -v counters, the guest's /proc/interrupts around each
# phase, the test host's KVM counters (debugfs kvm/exits...) and every VMM thread's context
# switches around a UDP window, and with --strace a second UDP window under strace -c -f.
# --kestrel2 PATH adds a second kestrel binary (config k2-tap) for before/after in one run;
# --only REGEX picks configurations (kestrel-tap k2-tap qemu-tap kestrel-vhost qemu-vhost).
# Not a benchmark and not in any suite; see docs/performance.md, Network. E2E_KEEP=1 keeps
# the run dir (records: python3 over results.raw, base64 per =KRIG= FILE).
#   diag_net.sh [--kestrel PATH] [--kestrel2 PATH] [--udp SECS] [--size MIB] [--strace]
#               [--only REGEX]
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"
KESTREL_BIN=$REPO_ROOT/build/kestrel K2= UDP=3 SIZE=16 STRACE=0 ONLY=.
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --kestrel2) K2=$2; shift 2 ;;
        --udp) UDP=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --strace) STRACE=1; shift ;;
        --only) ONLY=$2; shift 2 ;;
        *) exit 2 ;;
    esac
done
tmp=$(mktemp -d)
cc -std=gnu11 -O2 -static -o "$tmp/netbench" "$E2E_DIR/netbench.c" || exit 1
scenario=$tmp/scenario.sh
{
    echo "UDP=$UDP SIZE=$SIZE STRACE=$STRACE ONLY='$ONLY'"
    cat <<'EOF'
QCMD='console=ttyS0 reboot=k panic=1 quiet'
export GUEST_FILES="/usr/local/bin/netbench:/bin/netbench"
BYTES=$((SIZE * 1048576))
cat > $RIG_WORK/g.sh <<GEOF
BYTES=$BYTES UDP=$UDP
GEOF
net_guest_prelude >> $RIG_WORK/g.sh
cat >> $RIG_WORK/g.sh <<'GEOF'
irq() { echo "G: IRQ $1"; grep -i virtio /proc/interrupts | sed 's/^/G: /'; }
cat /sys/class/net/eth0/device/features 2>/dev/null | sed 's/^/G: features /'
irq udp0
netbench udpsend -s 64 -t $((UDP + 2)) $P 5003
irq udp1
sleep 1
netbench udpsend -s 64 -t $((UDP + 2)) $P 5007
netbench send -n $BYTES -w 900 $P 5001
irq tcpout
netbench recv -q -w 900 5002
irq tcpin
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
        ctx() { for t in /proc/$KP/task/*; do echo "H: CTX $1 $(cat $t/comm | tr ' ' _) $(grep ctxt $t/status | awk '{printf "%s ", $2}')"; done; }
        ctx before
        mount -t debugfs none /sys/kernel/debug 2>/dev/null
        kv() { for f in exits mmio_exits io_exits irq_exits halt_exits irq_injections nmi_injections signal_exits request_irq_exits irq_window_exits host_state_reload; do echo "H: KVM $1 $f $(cat /sys/kernel/debug/kvm/$f 2>/dev/null)"; done; }
        kv before
        netbench udprecv -t $UDP -w 120 5003
        ctx after
        kv after
        if [ $STRACE = 1 ]; then strace -c -f -p $KP -o $RIG_WORK/$name-strace.txt & SP=$!; fi
        netbench udprecv -t $UDP -w 120 5007
        [ $STRACE = 1 ] && { kill -INT $SP; wait $SP; cat $RIG_WORK/$name-strace.txt; }
        netbench recv -p $KP -q -w 900 5001
        netbench send -p $KP -n $BYTES -w 900 10.77.0.2 5002
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
