#!/usr/bin/env bash
# virtio-blk benchmark with fio: kestrel vs QEMU on the same raw image, in ONE run of the
# nested test host so both see the same conditions. The image (SIZE MiB of random data) lives
# on the test host's tmpfs; every VM gets a fresh copy of it (the writes of one run never
# reach the next). Both VMMs use their default cache mode, the host page cache (kestrel:
# buffered io_uring; QEMU: cache=writeback, aio=threads). In the inner guest (512 MiB,
# 1 vCPU, stock Debian kernel) one fio run (Debian's fio, its shared libraries and the
# dynamic loader, on a second, read-only ext4 disk made here: ~85 MB that the busybox
# initramfs would have to carry and unpack at TCG speed in every VM, where a disk reads only
# the pages fio touches) does, one job after the other, each SECS seconds, direct=1,
# ioengine=libaio, on the benchmarked disk:
#   seq-read / seq-write            1 MiB requests, QD 1: MiB/s
#   rand-read / rand-write QD 1     4 KiB: IOPS and the p99 completion latency (us)
#   rand-read / rand-write QD 32    4 KiB: IOPS
# RUNS rounds (default 3) of kestrel and QEMU, kestrel first in odd rounds and QEMU first in
# even ones; the table shows the medians and the ratio kestrel/QEMU (bench/records.py parses
# fio's JSON; --csv FILE: every sample there too, for bench/run.sh). Never fails on the
# numbers; a VMM that does not run shows n/a.
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
        *) sed -n '2,25p' "$0" >&2; exit 2 ;;
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

# fio, every library ldd names and the loader (its PT_INTERP path), at their own paths, and
# the job file, on an ext4 image: the test host's /dev/vda (rig.py --drive), every VM's
# second disk, read-only.
stage=$work/fio-root
install -D -m 0755 "$FIO" "$stage/usr/bin/fio" && install -D -m 0644 "$work/bench.fio" "$stage/etc/bench.fio" ||
    exit 1
interp=$(readelf -l "$FIO" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ -n "$interp" ] || { echo "bench_blk: $FIO names no program interpreter" >&2; exit 1; }
for lib in $interp $(ldd "$FIO" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}' | sort -u); do
    [ -e "$stage$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$stage$lib" || exit 1
done
echo "$interp" > "$stage/etc/fio-interp"
(cd "$stage" && find . -name '*.so*' | sed 's|^\.||; s|/[^/]*$||' | sort -u | paste -sd:) > "$stage/etc/fio-libdirs"
mib=$(( $(du -sm "$stage" | cut -f1) * 5 / 4 + 16 ))
mke2fs -q -t ext4 -L fio -d "$stage" "$work/fio.ext4" "${mib}M" || exit 1
rig_args=(--timeout $((RUNS * 2 * 300 + 300)) --drive "$work/fio.ext4" ${STAMP:+--stamp "$STAMP"})
if [ -x "$KESTREL_BIN" ]; then
    rig_args+=(--kestrel "$KESTREL_BIN")
else
    echo "bench_blk: no kestrel binary at $KESTREL_BIN; measuring QEMU only" >&2
fi

scenario=$work/scenario.sh
cat > "$scenario" <<EOF
RUNS=$RUNS SIZE=$SIZE C='$BENCH_CMDLINE'
EOF
cat >> "$scenario" <<'EOF'
BASE=/tmp/base.img IMG=/tmp/bench.img
# Real data in every block (tmpfs would serve holes without touching memory).
head -c 1048576 /dev/urandom > /tmp/chunk
i=0
while [ $i -lt $SIZE ]; do cat /tmp/chunk; i=$((i + 1)); done > $BASE
rm -f /tmp/chunk
wait_for 30 test -b /dev/vda || { echo "H: NO-VDA: the fio disk (rig.py --drive) is missing"; exit 1; }
G=$(guest_initrd bench <<GEOF
modload virtio_pci virtio_blk crc32c_generic ext4
n=0
while [ ! -b /dev/vdb ] && [ \$n -lt 100 ]; do usleep 100000; n=\$((n + 1)); done
# Which disk is which: the fio disk mounts (ext4), the benchmarked one is random data.
mkdir -p /fio
for d in vda vdb; do
    mount -t ext4 -o ro /dev/\$d /fio 2> /dev/null && { FIODEV=\$d; break; }
done
[ -n "\${FIODEV:-}" ] || echo "FIO-STATUS no-fio-disk"
DEV=/dev/vda; [ "\${FIODEV:-}" = vda ] && DEV=/dev/vdb
grep virtio /proc/interrupts > /tmp/irq0
# --eta=never: no progress lines on the serial console (each byte is a guest exit).
sed "s|^filename=.*|filename=\$DEV|" /fio/etc/bench.fio > /tmp/bench.fio
/fio\$(cat /fio/etc/fio-interp) --library-path "\$(sed 's|^|/fio|; s|:|:/fio|g' /fio/etc/fio-libdirs)" \\
    /fio/usr/bin/fio --eta=never --output-format=json --output=/tmp/fio.json /tmp/bench.fio
echo "FIO-STATUS \$?"
echo FIO-JSON-BEGIN
cat /tmp/fio.json
echo FIO-JSON-END
echo "virtio interrupts before fio:"; cat /tmp/irq0
echo "virtio interrupts after fio:"; grep virtio /proc/interrupts
GEOF
)
kvm_kestrel() {
    [ -x "$KESTREL" ] || return 0
    cp $BASE $IMG
    run_vmm -t 300 kestrel-$1 kestrel -v --memory 512M --kernel $VMLINUZ --initrd $G \
        --cmdline "$C" --disk path=$IMG --disk path=/dev/vda,readonly=on
}
kvm_qemu() {
    cp $BASE $IMG
    run_vmm -t 300 qemu-$1 qemu-system-x86_64 -accel kvm -cpu host -m 512M -nodefaults \
        -nographic -serial stdio -no-reboot -L /usr/share/qemu -kernel $VMLINUZ -initrd $G \
        -append "$C" -drive file=$IMG,if=virtio,format=raw \
        -drive file=/dev/vda,if=virtio,format=raw,readonly=on
}
# kestrel first in odd rounds, QEMU first in even ones: neither always follows the other.
for i in $(seq $RUNS); do
    if [ $((i % 2)) = 1 ]; then kvm_kestrel $i; kvm_qemu $i; else kvm_qemu $i; kvm_kestrel $i; fi
done
EOF

echo "# bench_blk: fio, $RUNS rounds per VMM, ${SIZE} MiB raw image on the test host's tmpfs, ${SECS} s per job"
if ! rig_run "$scenario" "${rig_args[@]}"; then
    echo "bench_blk: the test host did not finish the scenario (see $RUN_DIR/console.log)"
fi
echo "# run dir: $RUN_DIR"

python3 "$REPO_ROOT/bench/records.py" blk "$RUN_DIR" --runs "$RUNS" ${CSV:+--csv "$CSV"}
