#!/usr/bin/env bash
# Boot the default guest (Debian's kernel + the busybox initramfs) with kestrel, to an
# interactive shell on the serial console. Installs its dependencies (Debian 12, root),
# builds kestrel and the guest images first.
#
# This machine's /dev/kvm cannot run a stock kernel, so kestrel runs inside the nested
# test host (QEMU/TCG with kvm-amd, see tests/e2e/rig.py), whose serial console is this
# terminal; kestrel's own serial console is in turn the test host's. Keys: Ctrl-A X
# quits the outer QEMU, Ctrl-A Ctrl-A sends a Ctrl-A inward.
#   guest-images/boot-default.sh [extra kestrel options, e.g. --cpus 2 --memory 1G]
set -euo pipefail
cd "$(dirname "$0")/.."
. guest-images/lib.sh

need_pkgs meson ninja-build pkg-config gcc libc6-dev libfdt-dev libcriterion-dev liburing-dev \
    libseccomp-dev zlib1g-dev liblzma-dev qemu-system-x86 busybox-static e2fsprogs cpio socat strace python3 xz-utils
B=${KESTREL_BUILD_DIR:-build}   # meson build dir
[ -f "$B/build.ninja" ] || meson setup "$B" >&2
ninja -C "$B" >&2
bash guest-images/build-testhost.sh >/dev/null

# A host whose CPU exposes VT-x or AMD-V runs a stock kernel under KVM: boot it directly.
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then
    bash guest-images/build-guest.sh >/dev/null
    echo "boot-default: booting the default guest with kestrel (Ctrl-A x quits)"
    exec build/kestrel --kernel guest-images/out/vmlinuz \
        --initrd guest-images/out/guest-initramfs.cpio.gz "$@"
fi

scenario=$(mktemp /tmp/kestrel-boot-default.XXXXXX)
trap 'rm -f "$scenario"' EXIT
{
    echo 'echo "test host: starting kestrel on the default guest (the kernel log is slow here: every byte is a nested VM exit)"'
    printf 'kestrel --kernel $VMLINUZ --initrd $GUEST_INITRD'
    [ $# -gt 0 ] && printf ' %q' "$@"
    echo
    echo 'echo "test host: kestrel exited with status $?; powering off"'
} > "$scenario"

echo "boot-default: /dev/kvm here cannot run a stock kernel, so kestrel runs inside a nested test host (QEMU TCG + kvm-amd) whose console is this terminal; Ctrl-A X quits."
python3 tests/e2e/rig.py run --interactive --kestrel "$B/kestrel" --stamp "$B/tests/e2e/stamp" \
    --scenario "$scenario" --out guest-images/out/runs/boot-default
