#!/usr/bin/env bash
# A real Debian 12 system under kestrel, booted the way a user boots it, inside the nested
# test host: Debian's kernel and its own initramfs-tools initrd, the mmdebstrap root of
# guest-images/build-debian.sh (systemd, udev, networkd) on a virtio-blk disk, a NIC on a
# tap. The image reaches the test host as a raw virtio-blk disk of its own (rig.py
# --drive, a per-run copy), which the scenario hands to kestrel as --disk path=/dev/vda.
# One test-host boot, two kestrel runs, 1 GiB of guest RAM each:
#   pci   every device on virtio-pci: `systemctl is-system-running` = running, no failed
#         units, the NIC has 10.78.0.2/24 and answers the test host's ping (tap kd0 at
#         10.78.0.1), then the guest's `systemctl poweroff` ends kestrel with status 0
#   mmio  the same with --transport mmio (disk and NIC found through ACPI), except that
#         the system is shut down from outside: SIGTERM to kestrel presses the ACPI power
#         button, and kestrel exits 0 before --shutdown-timeout
# Each run's shutdown-mark unit writes a line with the run's token (and, for mmio, the job
# poweroff.target the power button started) to /var/lib/kestrel-test/shutdown.log on the
# image, read with debugfs on the build machine afterwards; the ext4 must be clean.
# (A third boot, SIGTERM on PCI, added ~2.5 min to CI for no path the two do not cover: the
# ACPI power button and S5 do not depend on the transport.)
#   test_debian.sh [--kestrel PATH] [--stamp PATH]
# Prints PASS/FAIL lines, per-run wall times and "N passed, M failed"; non-zero on failure.
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build/kestrel
STAMP=
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --stamp) STAMP=$2; shift 2 ;;
        *) echo "usage: $0 [--kestrel PATH] [--stamp PATH]" >&2; exit 2 ;;
    esac
done
[ -x "$KESTREL_BIN" ] || { echo "FAIL: no kestrel binary at $KESTREL_BIN"; echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-debian.XXXXXX")
trap 'rm -rf "$work"' EXIT
debian_image "$work" || { echo "FAIL: building the Debian image"; echo "0 passed, 1 failed"; exit 1; }
disk=$DEB_DISK
tok=$$-$(date +%s)

cat > "$work/scenario.sh" <<EOF
TOK=$tok
EOF
cat >> "$work/scenario.sh" <<'EOF'
K=/files/debian-vmlinuz
I=/files/debian-initrd.img
CMD="console=ttyS0 root=/dev/vda ro quiet"
L=420   # per run: a boot takes 1-2 minutes of nested-TCG time, a shutdown well under one
wait_for 30 test -b /dev/vda || { echo "H: NO-VDA: the image disk (rig.py --drive) is missing"; exit 1; }

# boot NAME TEST [kestrel options...]: start kestrel on the image, bring the tap up and
# wait for the report unit's state line; "H: NAME-RUNNING <s since launch>".
boot() {
    local name=$1 test=$2 t0; shift 2
    host_settle
    t0=$(stamp now)
    start_vmm "$name" kestrel --kernel $K --initrd $I --memory 1G --disk path=/dev/vda \
        --net tap=kd0 "$@" --cmdline "$CMD kestrel.test=$test kestrel.token=$name-$TOK"
    host_tap kd0 10.78.0.1
    wait_console "$name" "KDEB: STATE" $L &&
        echo "H: $name-RUNNING $(awk "BEGIN{printf \"%.1f\", $(stamp now) - $t0}")"
    wait_for 30 ping -c 1 -W 1 10.78.0.2
    ping -c 3 -W 5 10.78.0.2 > /dev/null 2>&1 && echo "H: $name-PING-OK" || echo "H: $name-PING-FAIL"
}

boot pci poweroff --transport pci
wait $VP
# The default --shutdown-timeout (30 s) is the one users get.
boot mmio wait --transport mmio
wait_console mmio "KDEB: WAITING" 60
t0=$(stamp now)
kill -TERM "$KP"
wait $VP
echo "H: mmio-DOWN $(awk "BEGIN{printf \"%.1f\", $(stamp now) - $t0}")"
sync
EOF

t0=$(date +%s)
rig_run "$work/scenario.sh" --kestrel "$KESTREL_BIN" ${STAMP:+--stamp "$STAMP"} \
    "${DEB_RIG_ARGS[@]}" --timeout 1500
echo "test host run: $(( $(date +%s) - t0 )) s"
console=$RUN_DIR/console.log
host() { tr -d '\r' < "$console" | awk -v k="H: $1" 'index($0, k) == 1 {sub(/^H: [^ ]+ ?/, ""); print; exit}'; }
# kdeb NAME KEY: the rest of the guest's first "KDEB: KEY ..." line in run NAME's console
# (anywhere in a line: a getty prompt may come first). Reads to the end, never SIGPIPEs.
kdeb() {
    rec_out "$1" | tr -d '\r' |
        awk -v k="KDEB: $2 " '!done && (i = index($0, k)) {print substr($0, i + length(k)); done = 1}'
}
# has TEXT: stdin contains TEXT (reads to the end, unlike grep -q: see e2e-lib.sh).
has() { grep -F -- "$1" > /dev/null; }

for run in pci mmio; do
    check_rec $run "$run: the system is running with no failed units" \
        all "kdeb $run STATE | grep '^running ' > /dev/null" "eq 0 \"\$(kdeb $run FAILED)\""
    check_rec $run "$run: the NIC has 10.78.0.2/24 and answers the test host's ping" \
        all "kdeb $run ADDR | has 10.78.0.2/24" "grep -q 'H: $run-PING-OK' '$console'"
    echo "  $run: running $(host $run-RUNNING) s after launch; kestrel exited after $(rec_time $run) s;" \
        "$(kdeb $run TIMES)"
done
check_rec pci "pci: systemctl poweroff ends kestrel with status 0 (ACPI S5)" \
    all "expect_status pci 0" "expect_out pci 'KDEB: POWEROFF'" "rec_err pci | has 'ACPI S5'"
check_rec mmio "mmio: SIGTERM presses the power button and kestrel exits 0 before the timeout" \
    all "expect_status mmio 0" "rec_err mmio | has 'pressed the power button'" \
    "rec_err mmio | has 'guest powered off (ACPI S5)'"
echo "  mmio: SIGTERM to exit $(host mmio-DOWN) s"

# The shutdown marks, read from the image on this machine (debugfs: no mount needed).
marks=$(debugfs -R 'cat /var/lib/kestrel-test/shutdown.log' "$disk" 2> /dev/null)
echo "$marks" | sed 's/^/  shutdown.log: /'
check "mmio: after SIGTERM the shutdown unit's line (this run's token, poweroff.target) is on the disk" \
    grep -q "token=mmio-$tok job=poweroff.target" <<< "$marks"
check "pci: its shutdown line is on the disk too" grep -q "token=pci-$tok " <<< "$marks"
check "the root file system was unmounted cleanly (no journal to recover)" \
    all "dumpe2fs -h '$disk' 2> /dev/null | grep '^Filesystem state: *clean$' > /dev/null" \
    "! dumpe2fs -h '$disk' 2> /dev/null | grep needs_recovery > /dev/null"
finish
