#!/usr/bin/env bash
# virtio-blk benchmark with fio: kestrel vs QEMU on the same raw image, in ONE run of the
# nested test host so both see the same conditions. The image (SIZE MiB of random data) lives
# on the test host's tmpfs; every VM gets a fresh copy of it (the writes of one run never
# reach the next). Both VMMs use their default cache mode, the host page cache (kestrel:
# buffered io_uring; QEMU: cache=writeback, aio=threads). In the inner guest (512 MiB,
# 1 vCPU, stock Debian kernel) one fio run (Debian's fio, its shared libraries and the
# dynamic loader copied into the busybox initramfs) does, one job after the other, each
# SECS seconds, direct=1, ioengine=libaio, on /dev/vda:
#   seq-read / seq-write            1 MiB requests, QD 1: MiB/s
#   rand-read / rand-write QD 1     4 KiB: IOPS and the p99 completion latency (us)
#   rand-read / rand-write QD 32    4 KiB: IOPS
# RUNS rounds (default 3), alternating kestrel and QEMU; the table shows the medians and
# the ratio kestrel/QEMU (bench/records.py parses fio's JSON; --csv FILE: every sample there
# too, for bench/run.sh). Never fails on the numbers; a VMM that does not run shows n/a.
# kestrel runs with -v (its per-queue kicks/interrupts counters in the record's stderr); the
# guest prints its virtio lines of /proc/interrupts before and after fio. Not part of `meson test`.
#
#   bench_blk.sh [--kestrel PATH] [--stamp PATH] [--runs N] [--size MiB] [--secs N]
#                [--fio PATH] [--csv FILE]
#
# Absolute numbers are for a guest nested under a TCG-emulated host (every guest exit is
# expensive here): only the kestrel/QEMU ratio says something about real hardware.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build/kestrel
FIO=
STAMP=
RUNS=3
SIZE=256
SECS=5
CSV=
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --fio) FIO=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --csv) CSV=$2; shift 2 ;;
        *) sed -n '2,23p' "$0" >&2; exit 2 ;;
    esac
done

if [ -z "$FIO" ]; then
    command -v fio > /dev/null || bash "$REPO_ROOT/tests/install-deps.sh" fio >&2
    FIO=$(command -v fio) || { echo "bench_blk: no fio" >&2; exit 1; }
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-bench-blk.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The jobs, one after the other (stonewall); the names are what records.py looks for.
cat > "$work/bench.fio" <<EOF
[global]
filename=/dev/vda
direct=1
ioengine=libaio
time_based=1
runtime=$SECS
norandommap=1
randrepeat=0
percentile_list=50:99
stonewall
[seq-read]
rw=read
bs=1M
iodepth=1
[rand-read-qd1]
rw=randread
bs=4k
iodepth=1
[rand-read-qd32]
rw=randread
bs=4k
iodepth=32
[seq-write]
rw=write
bs=1M
iodepth=1
[rand-write-qd1]
rw=randwrite
bs=4k
iodepth=1
[rand-write-qd32]
rw=randwrite
bs=4k
iodepth=32
EOF

# fio, every library ldd names and the loader (its PT_INTERP path), at their own paths in
# the guest (so the loader finds them as on this machine), under /files/fio-root in the host.
rig_args=(--timeout $((RUNS * 2 * 300 + 300)) --file "$work/bench.fio:/files/bench.fio"
    --file "$FIO:/files/fio-root/usr/bin/fio" ${STAMP:+--stamp "$STAMP"})
interp=$(readelf -l "$FIO" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ -n "$interp" ] && rig_args+=(--file "$interp:/files/fio-root$interp")
for lib in $(ldd "$FIO" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}' | sort -u); do
    [ "$lib" = "$interp" ] || rig_args+=(--file "$lib:/files/fio-root$lib")
done
if [ -x "$KESTREL_BIN" ]; then
    rig_args+=(--kestrel "$KESTREL_BIN")
else
    echo "bench_blk: no kestrel binary at $KESTREL_BIN; measuring QEMU only" >&2
fi

scenario=$work/scenario.sh
cat > "$scenario" <<EOF
RUNS=$RUNS SIZE=$SIZE
EOF
cat >> "$scenario" <<'EOF'
C="console=ttyS0 reboot=k panic=1 quiet"
BASE=/tmp/base.img IMG=/tmp/bench.img
# Real data in every block (tmpfs would serve holes without touching memory).
head -c 1048576 /dev/urandom > /tmp/chunk
i=0
while [ $i -lt $SIZE ]; do cat /tmp/chunk; i=$((i + 1)); done > $BASE
rm -f /tmp/chunk
GUEST_FILES=/files/bench.fio:/etc/bench.fio
for f in $(cd /files/fio-root && find . -type f); do
    GUEST_FILES="$GUEST_FILES /files/fio-root/${f#./}:/${f#./}"
done
LIBDIRS=$(cd /files/fio-root && find . -name '*.so*' | sed 's|^\.||; s|/[^/]*$||' | sort -u | tr '\n' :)
# ~85 MB of fio libraries: an uncompressed archive (gzip would cost minutes under TCG).
export GUEST_FILES GUEST_CPIO_FILTER=cat
G=$(guest_initrd bench <<GEOF
modload virtio_pci virtio_blk
n=0
while [ ! -b /dev/vda ] && [ \$n -lt 100 ]; do usleep 100000; n=\$((n + 1)); done
grep virtio /proc/interrupts > /tmp/irq0
# --eta=never: no progress lines on the serial console (each byte is a guest exit).
LD_LIBRARY_PATH=$LIBDIRS fio --eta=never --output-format=json --output=/tmp/fio.json /etc/bench.fio
echo "FIO-STATUS \$?"
echo FIO-JSON-BEGIN
cat /tmp/fio.json
echo FIO-JSON-END
echo "virtio interrupts before fio:"; cat /tmp/irq0
echo "virtio interrupts after fio:"; grep virtio /proc/interrupts
GEOF
)
for i in $(seq $RUNS); do
    if [ -x "$KESTREL" ]; then
        cp $BASE $IMG
        run_vmm -t 300 kestrel-$i kestrel -v --memory 512M --kernel $VMLINUZ --initrd $G \
            --cmdline "$C" --disk path=$IMG
    fi
    cp $BASE $IMG
    run_vmm -t 300 qemu-$i qemu-system-x86_64 -accel kvm -cpu host -m 512M -nodefaults \
        -nographic -serial stdio -no-reboot -L /usr/share/qemu -kernel $VMLINUZ -initrd $G \
        -append "$C" -drive file=$IMG,if=virtio,format=raw
done
EOF

echo "# bench_blk: fio, $RUNS rounds per VMM, ${SIZE} MiB raw image on the test host's tmpfs, ${SECS} s per job"
if ! rig_run "$scenario" "${rig_args[@]}"; then
    echo "bench_blk: the test host did not finish the scenario (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"

python3 "$REPO_ROOT/bench/records.py" blk "$RUN_DIR" --runs "$RUNS" ${CSV:+--csv "$CSV"}
