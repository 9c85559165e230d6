#!/usr/bin/env bash
# Network benchmark: kestrel vs QEMU, virtio-net on a tap, with and without vhost-net, in
# ONE run of the nested test host so all four see the same conditions:
#   kestrel tap     --net tap=kt0,vhost=off
#   kestrel vhost   --net tap=kt0,vhost=on
#   QEMU tap        -netdev tap,ifname=kt0,vhost=off -device virtio-net-pci
#   QEMU vhost      the same with vhost=on
# For each: TCP throughput host -> guest and guest -> host (SIZE MiB, default 64, of a
# fixed pattern, timed by the receiver), UDP rate of 64-byte datagrams sent by a tight loop
# each way for UDP seconds (default 3; counted by the receiver), TCP request/response round
# trips per second (64 bytes each way, one at a time, the host asking for UDP seconds), and
# the VMM's own CPU time (all threads but the vCPUs) and the kernel's vhost-net worker's
# during the TCP transfers (per pair of transfers), also as their sum per GiB moved (both
# directions). Each VM runs every phase REPS times (default 3), and its figure is their
# median: the test host's own speed swings within seconds (docs/performance.md, "TCP
# host->guest under vhost at equal test-host speed"). RUNS rounds (default 1) of the four,
# kestrel first in odd rounds and QEMU first in even ones; prints a table of the medians with
# kestrel/QEMU ratios (bench/records.py; --csv FILE: every sample there too, for
# bench/run.sh). Never fails on the numbers; a VMM that does not boot shows n/a. Not part of
# `meson test`.
#
#   bench_net.sh [--kestrel PATH] [--netbench PATH] [--stamp PATH] [--size MIB] [--udp SECS]
#                [--reps N] [--runs N] [--csv FILE] [--records RUN_DIR]
#
# Traffic stays between the test host's tap (10.77.0.1) and the guest (10.77.0.2). Absolute
# numbers are for a guest nested under a TCG-emulated host; only the ratios carry over.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build/kestrel
NETBENCH=
STAMP=
SIZE=64
UDP=3
REPS=3
RUNS=1
CSV=
REUSE=
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --netbench) NETBENCH=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --udp) UDP=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --csv) CSV=$2; shift 2 ;;
        --records) REUSE=$2; shift 2 ;;   # re-print the table of an earlier run (E2E_KEEP=1)
        *) sed -n '2,20p' "$0" >&2; exit 2 ;;
    esac
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-netbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ -z "$NETBENCH" ]; then
    NETBENCH=$tmp/netbench
    cc -std=gnu11 -O2 -static -o "$NETBENCH" "$E2E_DIR/netbench.c" || { echo "bench_net: cannot build netbench" >&2; exit 1; }
fi
rig_args=(--timeout $((RUNS * 1800)) --file "$NETBENCH:/usr/local/bin/netbench" ${STAMP:+--stamp "$STAMP"})
if [ -x "$KESTREL_BIN" ]; then
    rig_args+=(--kestrel "$KESTREL_BIN")
else
    echo "bench_net: no kestrel binary at $KESTREL_BIN; measuring QEMU only" >&2
fi

scenario=$tmp/scenario.sh
{
    echo "SIZE=$SIZE UDP=$UDP REPS=$REPS RUNS=$RUNS QCMD='$BENCH_CMDLINE'"
    cat <<'EOF'
export GUEST_FILES="/usr/local/bin/netbench:/bin/netbench"
BYTES=$((SIZE * 1048576))

# The guest: TCP in, TCP out, UDP in, UDP out, in step with the host below.
cat > $RIG_WORK/g-bench.sh <<GEOF
BYTES=$BYTES UDP=$UDP REPS=$REPS
GEOF
net_guest_prelude >> $RIG_WORK/g-bench.sh
cat >> $RIG_WORK/g-bench.sh <<'GEOF'
# Each phase REPS times, each on a port of its own (5002, 5012, ...), so that the tail of one
# UDP window never counts in the next.
R=$(seq 0 $((REPS - 1)))
for x in $R; do netbench recv -q -w 900 $((5002 + 10 * x)); done
for x in $R; do netbench send -n $BYTES -w 900 $P $((5001 + 10 * x)); done
for x in $R; do netbench udprecv -t $UDP -w 120 $((5004 + 10 * x)); done
for x in $R; do sleep 2; netbench udpsend -s 64 -t $((UDP + 2)) $P $((5003 + 10 * x)); done
for x in $R; do netbench rrserve -s 64 -w 120 $((5006 + 10 * x)); done
echo "G: BENCH-DONE"
netbench recv -q -w 60 5005 2> /dev/null
GEOF
G=$(guest_initrd bench $RIG_WORK/g-bench.sh)

# bench NAME PROG CMD...: one VMM, the host's side of the exchanges.
bench() {
    local name=$1 prog=$2 h=$RIG_WORK/$1-host.txt
    shift 2
    run_vmm -t 600 $name "$@" &
    VP=$!
    KP=
    wait_for 30 vmm_pid $prog && KP=$(vmm_pid $prog)
    (
        net_host_up || exit 1
        R=$(seq 0 $((REPS - 1)))
        for x in $R; do netbench send -p $KP -n $BYTES -w 900 10.77.0.2 $((5002 + 10 * x)); done
        for x in $R; do netbench recv -p $KP -q -w 900 $((5001 + 10 * x)); done
        # 2 s idle before each window, as the guest does before each of its own: the window
        # then starts from an idle guest under either VMM, not from however soon the guest
        # finished the step before (docs/performance.md, "vhost UDP64 host->guest: how the
        # test host's sender and vhost worker share its CPU").
        for x in $R; do sleep 2; netbench udpsend -s 64 -t $((UDP + 1)) 10.77.0.2 $((5004 + 10 * x)); done
        for x in $R; do netbench udprecv -t $UDP -w 120 $((5003 + 10 * x)); done
        for x in $R; do netbench rr -s 64 -t $UDP -w 120 10.77.0.2 $((5006 + 10 * x)); done
        wait_console $name "G: BENCH-DONE" 120
        netbench send -n 0 -w 60 10.77.0.2 5005
    ) > $h 2>&1
    wait $VP
    rig_put $name-host $h
}
K="kestrel --memory 512M --kernel $VMLINUZ --initrd $G --cmdline"
# debug-threads=on names QEMU's vCPU threads "CPU N/KVM", so netbench can tell them apart.
Q="$QEMU_KVM -name bench,debug-threads=on -m 512M -kernel $VMLINUZ -initrd $G -append"
QNET=$QEMU_NET_TAP QDEV=$QEMU_NET_DEV
kt() { [ -x "$KESTREL" ] && bench kestrel-tap-$1 kestrel $K "$QCMD" --net tap=kt0,vhost=off; }
kv() { [ -x "$KESTREL" ] && bench kestrel-vhost-$1 kestrel $K "$QCMD" --net tap=kt0,vhost=on; }
qt() { bench qemu-tap-$1 qemu-system-x86_64 $Q "$QCMD" $QNET,vhost=off $QDEV; }
qv() { bench qemu-vhost-$1 qemu-system-x86_64 $Q "$QCMD" $QNET,vhost=on $QDEV; }
# The order reverses every round, so that no VM always follows the same one.
for i in $(seq $RUNS); do
    if [ $((i % 2)) = 1 ]; then kt $i; kv $i; qt $i; qv $i; else qv $i; qt $i; kv $i; kt $i; fi
done
EOF
} > "$scenario"

echo "# bench_net: $RUNS rounds, TCP ${SIZE} MiB each way, UDP 64-byte datagrams for ${UDP} s each way, each $REPS times per VM"
if [ -n "$REUSE" ]; then
    RUN_DIR=$REUSE
elif ! rig_run "$scenario" "${rig_args[@]}"; then
    echo "bench_net: the test host did not finish the scenario (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"

python3 "$REPO_ROOT/bench/records.py" net "$RUN_DIR" --runs "$RUNS" ${CSV:+--csv "$CSV"}
st=$?
[ -n "$REUSE" ] || [ -n "${E2E_KEEP:-}" ] || rm -rf "$RUN_DIR"
exit $st
