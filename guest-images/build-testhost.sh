#!/usr/bin/env bash
# Build the static part of the nested test host into guest-images/out/:
#   host-initramfs.cpio   busybox, KVM/tun/vhost modules, /init, QEMU (+libs, firmware),
#                         strace and socat (+libs), and the inner guest under /images/.
# It is left uncompressed on purpose: the outer QEMU runs under TCG, where gunzipping
# ~150 MB would cost seconds on every boot, while copying it costs almost nothing.
# Per-run parts (the VMM binary under test, the scenario, rig-lib.sh) are separate cpio
# archives that tests/e2e/rig.py appends; the kernel unpacks concatenated archives in turn.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The programs copied into the host, as "package path": amd64 ones are the installed
# ones; arm64 ones come from the arm64 packages (KESTREL_ARCH=arm64, lib.sh's stage_prog),
# whose libraries are named by the native packages of the same programs: install those too.
PROGS=("strace /usr/bin/strace" "socat /usr/bin/socat")
case $GI_ARCH in
amd64)
    need_pkgs busybox-static cpio qemu-system-x86 strace socat
    # virtio_pci + virtio_blk: disks the rig attaches with --drive (the Debian image) show up
    # as /dev/vda...; without a --drive they find no device and cost nothing.
    HOST_MODULES=(kvm ccp irqbypass kvm-amd tun tap vhost_iotlb vhost vhost_net virtio_pci virtio_blk)
    PROGS+=("qemu-system-x86 /usr/bin/qemu-system-x86_64")
    # What `-kernel` boot with -nodefaults reads (found with strace -e openat).
    QEMU_DATA=(/usr/share/seabios/bios-256k.bin /usr/share/qemu/linuxboot_dma.bin
        /usr/share/qemu/kvmvapic.bin /usr/share/qemu/pvh.bin  # pvh.bin: ELF (PVH) -kernel
        /usr/share/qemu/bios-microvm.bin)                     # -M microvm (qboot)
    ;;
arm64)
    need_pkgs busybox-static cpio qemu-system-arm strace socat binutils
    # KVM is built into Debian's arm64 kernel. virtio_mmio + virtio_console first: the
    # rig's results channel is a virtio serial port there (QEMU's virt has one PL011).
    HOST_MODULES=(virtio_mmio virtio_console tun tap vhost_iotlb vhost vhost_net)
    PROGS+=("qemu-system-arm /usr/bin/qemu-system-aarch64")
    QEMU_DATA=()   # -M virt boots -kernel with no firmware
    ;;
esac
bash "$GI_DIR/build-guest.sh" >/dev/null
kernel_pkg_resolve
BUSYBOX=$(target_busybox)

INPUTS=("$KROOT/.stamp" "$GI_DIR/build-testhost.sh" "$GI_DIR/lib.sh" "$GI_DIR/files/host-init"
    "$OUT/vmlinuz" "$OUT/guest-initramfs.cpio.gz" "$OUT/guest-disk.ext4" "$BUSYBOX")
[ "$GI_ARCH" = amd64 ] && INPUTS+=("$OUT/vmlinux" "$(command -v qemu-system-x86_64)"
    "$(command -v strace)" "$(command -v socat)")
[ "$GI_ARCH" = arm64 ] && INPUTS+=("$OUT/debs")   # a new package version adds a folder there

# What goes in, by content: the image is shared by every checkout using this out/ folder,
# and a checkout whose script is older by mtime would otherwise keep another's image.
MANIFEST="modules: ${HOST_MODULES[*]}; qemu data: ${QEMU_DATA[*]}; host-init: $(md5sum < "$GI_DIR/files/host-init")"

if stale "$OUT/host-initramfs.cpio" "${INPUTS[@]}" ||
    [ "$(cat "$OUT/host-initramfs.manifest" 2>/dev/null)" != "$MANIFEST" ]; then
    st=$OUT/stage-host; rm -rf "$st"
    mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,sys,dev,tmp,run,etc,root,images,lib/modules}
    cp "$BUSYBOX" "$st/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ -e "$st/bin/$a" ] || ln -s busybox "$st/bin/$a"
    done
    install -m 0755 "$GI_DIR/files/host-init" "$st/init"
    echo 'root:x:0:0:root:/root:/bin/sh' > "$st/etc/passwd"
    echo 'export PS1="kestrel-testhost:\w# "' > "$st/etc/profile"

    modules_closure "${HOST_MODULES[@]}" > "$st/modules.list"
    : > "$st/etc/host-modules"
    while read -r ko; do
        cp "$ko" "$st/lib/modules/"
        echo "/lib/modules/$(basename "$ko")" >> "$st/etc/host-modules"
    done < "$st/modules.list"
    rm "$st/modules.list"

    # QEMU for comparison runs (and strace, socat), with QEMU's firmware where its default
    # data path (and `-L /usr/share/qemu`) finds it.
    for p in "${PROGS[@]}"; do stage_prog "$st" $p; done
    if [ ${#QEMU_DATA[@]} -gt 0 ]; then
        mkdir -p "$st/usr/share/qemu" "$st/usr/share/seabios"
        for f in "${QEMU_DATA[@]}"; do cp "$f" "$st/usr/share/qemu/"; done
        ln -s ../qemu/bios-256k.bin "$st/usr/share/seabios/bios-256k.bin"
    fi
    # What differs between the architectures inside the host (read by host-init and
    # rig-lib.sh; amd64 keeps their defaults).
    [ "$GI_ARCH" = arm64 ] && cat > "$st/etc/testhost.env" <<'ENV'
# arm64 test host: results and heartbeat on virtio serial ports 1 and 2.
RIG_OUT=/dev/vport0p1
RIG_HEARTBEAT=/dev/vport0p2
VMLINUX=
QEMU_KVM="qemu-system-aarch64 -accel kvm -M virt,gic-version=3 -cpu host -nodefaults -display none -no-reboot -serial stdio"
ENV

    cp "$OUT/vmlinuz" "$OUT/guest-initramfs.cpio.gz" "$OUT/guest-disk.ext4" "$st/images/"
    [ -f "$OUT/vmlinux" ] && [ "$GI_ARCH" = amd64 ] && cp "$OUT/vmlinux" "$st/images/"
    pack_cpio "$st" "$OUT/host-initramfs.cpio"
    echo "$MANIFEST" > "$OUT/host-initramfs.manifest"
    rm -rf "$st"
    log "host-initramfs.cpio ($(du -h "$OUT/host-initramfs.cpio" | cut -f1)) with $KPKG $KVER_PKG"
fi
# The outer host boots the same Debian kernel as the inner guest.
echo "$OUT"
