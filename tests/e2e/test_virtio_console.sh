#!/usr/bin/env bash
# virtio-console checks with Debian's stock kernel, inside the nested test host.
#
#   test_virtio_console.sh [--kestrel PATH] [--stamp PATH]
#
# One kestrel boot: `--console virtio --serial-port name=org.kestrel.test,socket=...`.
# The guest's rdinit (/hvcinit) loads virtio_pci + virtio_console, reopens its stdio on
# /dev/hvc0 (init's stdout is not hvc0 before the module is loaded), prints a marker and
# /proc/consoles. Checks:
#   console  the marker reaches kestrel's stdout; /proc/consoles lists hvc0, not ttyS0
#   port     /sys/class/virtio-ports/*/name holds the name, /dev/vportNpM exists
#   h2g      4 MiB from a socat client on the host socket -> guest, same md5
#   g2h      4 MiB of guest random data -> a socat client on the host socket, same md5
# The host cannot watch the guest console live, so the two directions are sequenced by
# retries: the sender connects once the socket exists; the guest reads until it has
# 4 MiB (a read returns 0 while no client is connected); then the guest writes (its
# write blocks until a client is connected), and the host reader reconnects until it
# has read 4 MiB or kestrel has ended.
# Prints PASS/FAIL lines and "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build/kestrel
STAMP=
LIMIT=${E2E_VMM_TIMEOUT:-300}
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        *) echo "usage: $0 [--kestrel PATH] [--stamp PATH]" >&2; exit 2 ;;
    esac
done
[ -x "$KESTREL_BIN" ] || { echo "FAIL: no kestrel binary at $KESTREL_BIN"; echo "0 passed, 1 failed"; exit 1; }

scenario=$(mktemp "${TMPDIR:-/tmp}/kestrel-console.XXXXXX")
trap 'rm -f "$scenario"' EXIT
{
    echo "L=$LIMIT"
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
modload virtio_pci virtio_console
n=0
while [ ! -c /dev/hvc0 ] && [ $n -lt 100 ]; do usleep 100000; n=$((n + 1)); done
exec </dev/hvc0 >/dev/hvc0 2>&1
echo KESTREL-HVC-INIT-OK
echo "CONSOLES $(awk '{printf "%s,", $1}' /proc/consoles)"
cat /proc/consoles
sh /scenario.sh
echo "KESTREL-HVC-SCENARIO-EXIT $?"
reboot -f
sleep 10
EOF
chmod 755 "$RIG_WORK/hvcinit"
export GUEST_FILES="$RIG_WORK/hvcinit:/hvcinit"

G=$(guest_initrd port <<'EOF'
md5() { md5sum | cut -d' ' -f1; }
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
# Let kestrel move the last buffers to the socket before the reset.
sleep 3
exec 3>&-
EOF
)

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
run_vmm -t $L console $VMM --console virtio --kernel $VMLINUZ --initrd $G \
    --cmdline 'console=hvc0 reboot=k panic=1 quiet rdinit=/hvcinit' \
    --serial-port name=$NAME,socket=$SOCK
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
} > "$RIG_WORK/host-side"
rig_put host-side "$RIG_WORK/host-side"
SCENARIO
} > "$scenario"

echo "# test_virtio_console"
if ! rig_run "$scenario" --timeout $((LIMIT + 200)) --kestrel "$KESTREL_BIN" ${STAMP:+--stamp "$STAMP"}; then
    fail "test host ran the scenario to its end (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"

consoles_ok() {
    local c; c=$(val console CONSOLES)
    echo "  /proc/consoles: $c" >&2
    [[ ",$c" == *",hvc0,"* ]] && [[ ",$c" != *",ttyS0,"* ]]
}

check_rec console "--console virtio: the guest's hvc0 output reaches kestrel's stdout, exit 0" \
    all "expect_out console KESTREL-HVC-INIT-OK" "expect_out console 'KESTREL-HVC-SCENARIO-EXIT 0'" \
        "expect_status console 0"
check_rec console "/proc/consoles lists hvc0 and not ttyS0" consoles_ok
check_rec console "named port: /sys/class/virtio-ports/*/name = org.kestrel.test, /dev/vportNpM exists" \
    all "[ -n \"\$(val console PORT)\" ]" "eq \"\$(val console PORT-DEV)\" \"/dev/\$(val console PORT)\""
check_rec console "host -> guest: 4 MiB through the port socket, same md5" \
    all "eq \"\$(val console H2G-BYTES)\" 4194304" "eq \"\$(val console H2G-MD5)\" \"\$(val host-side h2g-md5)\"" \
        "eq \"\$(val host-side h2g-socat)\" 0"
check_rec console "guest -> host: 4 MiB through the port socket, same md5" \
    all "eq \"\$(val console G2H-WRITE)\" ok" "eq \"\$(val host-side g2h-bytes)\" 4194304" \
        "eq \"\$(val host-side g2h-md5)\" \"\$(val console G2H-MD5)\""
finish
