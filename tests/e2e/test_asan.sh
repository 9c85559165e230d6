#!/usr/bin/env bash
# One short run of an AddressSanitizer + UBSan kestrel (build-asan, seccomp on as always)
# inside the nested test host: boot to the init marker, read and write a virtio-blk disk,
# ping both ways and 4 MiB of TCP each way over virtio-net with vhost off. Fails on any
# sanitizer report (ASan, UBSan, LeakSanitizer at exit) and on a seccomp stop.
#
#   test_asan.sh --kestrel build-asan/kestrel --netbench PATH [--stamp PATH]
#
# The tap kt0 is 10.77.0.1/24 in the test host, the guest's eth0 10.77.0.2/24.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build-asan/kestrel
NETBENCH=
STAMP=
LIMIT=${E2E_VMM_TIMEOUT:-400}   # instrumented kestrel is slower: seconds for the one run
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --netbench) NETBENCH=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        *) sed -n '2,9p' "$0" >&2; exit 2 ;;
    esac
done
[ -x "$KESTREL_BIN" ] && [ -x "$NETBENCH" ] ||
    { echo "FAIL: need --kestrel and --netbench executables"; echo "0 passed, 1 failed"; exit 1; }
# An uninstrumented kestrel would pass without proving anything.
if ! ldd "$KESTREL_BIN" | grep -q libasan; then
    echo "FAIL: $KESTREL_BIN is not built with -fsanitize=address"; echo "0 passed, 1 failed"; exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-asan.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
scenario=$tmp/scenario.sh
cat > "$scenario" <<EOF
L=$LIMIT
EOF
cat >> "$scenario" <<'EOF'
# exitcode: an ASan report must not look like a guest's odd debug-exit status.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66:print_summary=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export GUEST_FILES="/usr/local/bin/netbench:/bin/netbench"
cp "$GUEST_DISK" /tmp/asan-disk.img
# Written by the guest at 8 MiB into the disk, checked in the image afterwards.
head -c 1048576 /dev/urandom > /tmp/w1
{ echo "READ-MD5 $(head -c 4194304 /tmp/asan-disk.img | md5sum | cut -d' ' -f1)"
  echo "W1-MD5 $(md5sum < /tmp/w1 | cut -d' ' -f1)"; } > $RIG_WORK/before
rig_put before $RIG_WORK/before
export GUEST_FILES="$GUEST_FILES /tmp/w1:/w1"
G=$(guest_initrd asan <<'GEOF'
say() { echo "G: $*"; }
wait_for() {
    local n=$(($1 * 2)); shift
    while [ $n -gt 0 ]; do "$@" > /dev/null 2>&1 && return 0; usleep 500000; n=$((n - 1)); done
    return 1
}
modload virtio_pci virtio_blk virtio_net > /dev/null 2>&1 || say MODLOAD-FAIL
wait_for 20 test -b /dev/vda || say NO-VDA
say READ-MD5 $(head -c 4194304 /dev/vda | md5sum | cut -d' ' -f1)
dd if=/w1 of=/dev/vda bs=1048576 seek=8 conv=fsync 2> /dev/null && say WRITE-OK
say READBACK-MD5 $(dd if=/dev/vda bs=1048576 skip=8 count=1 iflag=direct 2> /dev/null | md5sum | cut -d' ' -f1)
wait_for 20 test -e /sys/class/net/eth0 || say NO-ETH0
ip addr add 10.77.0.2/24 dev eth0; ip link set eth0 up
wait_for 120 ping -c 1 -W 1 10.77.0.1
ping -c 3 -W 5 10.77.0.1 > /dev/null 2>&1 && say PING-OK || say PING-FAIL
head -c 4194304 /dev/urandom > /tmp/d
say SENT-MD5 $(md5sum < /tmp/d | cut -d' ' -f1)
netbench send -w 300 10.77.0.1 5001 /tmp/d
say RECV-MD5 $(netbench recv -w 300 5002 2> /dev/null | md5sum | cut -d' ' -f1)
say DONE
GEOF
)
run_vmm -t $L asan kestrel --memory 512M --kernel $VMLINUZ --initrd $G \
    --cmdline 'console=ttyS0 reboot=k panic=1 quiet' \
    --disk path=/tmp/asan-disk.img --net tap=kt0,vhost=off &
VP=$!
(
    wait_for 60 ip link show kt0 || { echo "H: no kt0"; exit 1; }
    ip addr add 10.77.0.1/24 dev kt0; ip link set kt0 up
    echo "H: RECV-MD5 $(netbench recv -w 300 5001 2> /dev/null | md5sum | cut -d' ' -f1)"
    ping -c 3 -W 5 10.77.0.2 > /dev/null 2>&1 && echo "H: PING-OK" || echo "H: PING-FAIL"
    head -c 4194304 /dev/urandom > /tmp/hd
    echo "H: SENT-MD5 $(md5sum < /tmp/hd | cut -d' ' -f1)"
    netbench send -w 300 10.77.0.2 5002 /tmp/hd
) > $RIG_WORK/host.txt 2>&1
wait $VP
echo "WRITTEN-MD5 $(dd if=/tmp/asan-disk.img bs=1048576 skip=8 count=1 2> /dev/null | md5sum | cut -d' ' -f1)" >> $RIG_WORK/host.txt
rig_put host $RIG_WORK/host.txt
EOF

echo "# test_asan: $KESTREL_BIN"
rig_args=(--timeout 900 --kestrel "$KESTREL_BIN" --file "$NETBENCH:/usr/local/bin/netbench"
    ${STAMP:+--stamp "$STAMP"})
t0=$(date +%s)
rig_run "$scenario" "${rig_args[@]}" || fail "test host ran the scenario to its end (see $RUN_DIR/console.log)"
echo "# run dir: $RUN_DIR ($(($(date +%s) - t0)) s)"

g() { rec_out asan | tr -d '\r' | sed -n "s/^G: $1 //p" | head -1; }
h() { rec_out host | tr -d '\r' | sed -n "s/^H: $1 //p" | head -1; }
has() { rec_out "$1" | tr -d '\r' | grep -xF -- "$2" > /dev/null || { echo "  $1: no line '$2'" >&2; return 1; }; }
# No sanitizer report and no seccomp stop on kestrel's stderr.
clean_stderr() {
    ! rec_err asan | grep -E 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer|SUMMARY: |forbidden system call' >&2
}

check_rec asan "ASan kestrel boots the guest to its init and ends with status 0" \
    all 'expect_status asan 0' 'expect_out asan KESTREL-GUEST-INIT-OK' 'has asan "G: DONE"'
check_rec asan "no AddressSanitizer, UBSan, LeakSanitizer report or seccomp stop on stderr" \
    clean_stderr
check_rec asan "virtio-blk read: the guest's md5 of the first 4 MiB matches the image" \
    all 'eq "$(val before READ-MD5)" "$(g READ-MD5)"'
check_rec host "virtio-blk write: 1 MiB written by the guest reads back and is in the image" \
    all 'has asan "G: WRITE-OK"' 'eq "$(val before W1-MD5)" "$(g READBACK-MD5)"' \
    'eq "$(val before W1-MD5)" "$(val host WRITTEN-MD5)"'
check_rec host "virtio-net (vhost off): ping both ways" \
    all 'has asan "G: PING-OK"' 'has host "H: PING-OK"'
check_rec host "virtio-net (vhost off): 4 MiB over TCP each way, md5 intact" \
    all 'eq "$(g SENT-MD5)" "$(h RECV-MD5)"' 'eq "$(h SENT-MD5)" "$(g RECV-MD5)"'
finish
