#!/usr/bin/env bash
# Start-up benchmark on THIS machine's own /dev/kvm, not in the nested test host: execve ->
# first KVM_RUN of kestrel (a kernel-cache hit, the defaults), kestrel --kernel-unpack guest,
# and QEMU, alternating, on the same bzImage and initramfs as bench_boot.sh. Each VMM is
# killed at its first KVM_RUN, so the guest never has to run (this machine's KVM cannot run
# a stock kernel; it can create VMs, map memory and enter KVM_RUN). It shows what start-up
# costs where memory is not emulated: inside the test host, zeroing and filling fresh pages
# is emulated too and dominates kestrel's figure (docs/performance.md).
# Timed like bench_boot.sh: `strace -f --seccomp-bpf -ttt -e trace=execve,ioctl`.
# Prints the table (bench/records.py startup); --csv FILE: every sample (bench/run.sh).
# Exits 0 without samples when there is no usable /dev/kvm. Never fails on the numbers.
#
#   bench_startup.sh [--kestrel PATH] [--runs N] [--csv FILE] [--stamp PATH (unused)]
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh"

KESTREL_BIN=$REPO_ROOT/build/kestrel
RUNS=5
CSV=
while [ $# -gt 0 ]; do
    case $1 in
        --kestrel) KESTREL_BIN=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --csv) CSV=$2; shift 2 ;;
        --stamp) shift 2 ;;
        *) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2; exit 2 ;;
    esac
done
if [ ! -w /dev/kvm ]; then
    echo "bench_startup: no usable /dev/kvm on this machine; skipped"
    exit 0
fi
[ -x "$KESTREL_BIN" ] || { echo "bench_startup: no kestrel binary at $KESTREL_BIN" >&2; exit 2; }
command -v strace > /dev/null || bash "$REPO_ROOT/tests/install-deps.sh" strace
command -v qemu-system-x86_64 > /dev/null || bash "$REPO_ROOT/tests/install-deps.sh" qemu-system-x86

images=${KESTREL_IMAGES_OUT:-$REPO_ROOT/guest-images/out}
mkdir -p "$images"
flock "$images/.build.lock" bash "$REPO_ROOT/guest-images/build-testhost.sh" > /dev/null || exit 1
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-startup.XXXXXX")
trap 'rm -rf "$RUN_DIR"' EXIT
export KESTREL_CACHE_DIR=$RUN_DIR/kernel-cache

# rig-lib.sh's first_kvm_run and QEMU_KVM, here on the build machine: its records go to
# RUN_DIR/records (bench/records.py reads NAME/stdout) instead of the test host's serial port.
RIG_WORK=$RUN_DIR/work RIG_OUT=/dev/null
. "$E2E_DIR/rig-lib.sh"
rig_put() { mkdir -p "$RUN_DIR/records/$1" && cp "$2" "$RUN_DIR/records/$1/stdout"; }
command -v usleep > /dev/null || usleep() { sleep "$(awk -v u="$1" 'BEGIN { print u / 1e6 }')"; }

C=$BENCH_CMDLINE
K=("$KESTREL_BIN" --memory 512M --kernel "$images/vmlinuz" --initrd "$images/guest-initramfs.cpio.gz"
    --cmdline "$C")
KG=("$KESTREL_BIN" --kernel-unpack guest "${K[@]:1}")
# QEMU as the test host runs it, but without arch-capabilities: some nested KVMs refuse its
# MSR, and QEMU then aborts before its first KVM_RUN; it has no bearing on start-up.
[[ " $QEMU_KVM " == *" -cpu host "* ]] ||
    { echo "bench_startup: rig-lib.sh's QEMU_KVM has no '-cpu host' to amend" >&2; exit 2; }
read -ra Q <<< "${QEMU_KVM/-cpu host/-cpu host,-arch-capabilities}"
Q+=(-m 512M -kernel "$images/vmlinuz" -initrd "$images/guest-initramfs.cpio.gz" -append "$C")

echo "# bench_startup: this machine's /dev/kvm, $RUNS runs per VMM, memory 512M"
# One unmeasured kestrel start fills the kernel cache (every measured run is a hit).
first_kvm_run cold "${K[@]}"
for i in $(seq "$RUNS"); do
    first_kvm_run "strace-log-kestrel-$i" "${K[@]}"
    first_kvm_run "strace-log-kguest-$i" "${KG[@]}"
    first_kvm_run "strace-log-qemu-$i" "${Q[@]}"
done
python3 "$REPO_ROOT/bench/records.py" startup "$RUN_DIR" --runs "$RUNS" ${CSV:+--csv "$CSV"}
