#!/usr/bin/env bash
# Build a real Debian 12 system, booted the way a user boots one, into guest-images/out/:
#   debian-root.ext4     the root file system (1 GiB, sparse): mmdebstrap minbase + systemd,
#                        udev, systemd-networkd (static 10.78.0.2/24 on the NIC), dbus, the
#                        test kernel package (KPKG) and initramfs-tools; no docs/man/locales
#   debian-vmlinuz       /boot/vmlinuz-KREL from that root (the same kernel as the tests)
#   debian-initrd.img    /boot/initrd.img-KREL: Debian's own initramfs-tools initrd
# Boot it with root=/dev/vda ro on a virtio-blk disk (PCI or MMIO). Two test units from
# files/debian/: kestrel-report (state, failed units, network and boot times on the
# console as "KDEB: ..." lines, then `systemctl poweroff` when the command line has
# kestrel.test=poweroff) and kestrel-shutdown-mark (on the way down, appends
# kestrel.token= to /var/lib/kestrel-test/shutdown.log). Rebuilt only when an input or
# the kernel package version changes. Needs root (mmdebstrap's root mode, chroot).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_pkgs mmdebstrap e2fsprogs
kernel_pkg_resolve

IMG=$OUT/debian-root.ext4
KERNEL=$OUT/debian-vmlinuz
INITRD=$OUT/debian-initrd.img
VERSION=$OUT/debian-root.version   # the kernel package the image holds
SIZE=1G
FILES=$GI_DIR/files/debian
INPUTS=("$GI_DIR/build-debian.sh" "$GI_DIR/lib.sh" "$FILES"/*)

if stale "$IMG" "${INPUTS[@]}" || [ ! -e "$KERNEL" ] || [ ! -e "$INITRD" ] ||
    [ "$(cat "$VERSION" 2>/dev/null)" != "$KPKG $KVER_PKG" ]; then
    t0=$(date +%s)
    root=$OUT/stage-debian; rm -rf "$root"
    # mmdebstrap takes the host's own apt sources as its "mirrors" (same suite, same
    # mirror, and the kernel version apt resolved above); nothing here names a mirror.
    sources=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -s "$f" ] && sources+=("$f")
    done
    [ ${#sources[@]} -gt 0 ] || die "no apt sources on this machine"
    suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
    # The fstab is in place before the kernel package runs update-initramfs, so the
    # initrd's fsck hook sees an ext4 root; one initrd build, no second pass.
    fstab='LABEL=debian-root / ext4 defaults,errors=remount-ro 0 1'
    log "mmdebstrap $suite ($KPKG) from ${sources[*]}"
    mmdebstrap --variant=minbase --mode=root --quiet \
        --include="systemd,systemd-sysv,udev,dbus,iproute2,iputils-ping,e2fsprogs,kmod,initramfs-tools,$KPKG" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --essential-hook="echo '$fstab' > \"\$1/etc/fstab\"" \
        "$suite" "$root" "${sources[@]}" >&2
    [ -f "$root/boot/vmlinuz-$KREL" ] && [ -f "$root/boot/initrd.img-$KREL" ] ||
        die "no /boot/vmlinuz-$KREL or initrd.img-$KREL in the chroot"

    echo kestrel-debian > "$root/etc/hostname"
    # A fixed machine id: an "uninitialized" one makes every boot of a fresh copy a
    # first boot (systemd-firstboot and friends), which is not what is measured here.
    tr -d '-' < /proc/sys/kernel/random/uuid > "$root/etc/machine-id"
    install -m 0644 "$FILES/10-kestrel-nic.network" "$root/etc/systemd/network/"
    install -m 0755 "$FILES/kestrel-report" "$FILES/kestrel-shutdown-mark" "$root/usr/local/sbin/"
    install -m 0644 "$FILES/kestrel-report.service" "$FILES/kestrel-shutdown-mark.service" \
        "$root/etc/systemd/system/"
    chroot "$root" systemctl enable --quiet systemd-networkd kestrel-report kestrel-shutdown-mark

    cp "$root/boot/vmlinuz-$KREL" "$KERNEL.tmp"
    cp "$root/boot/initrd.img-$KREL" "$INITRD.tmp"
    rm -f "$IMG.tmp"
    mke2fs -q -t ext4 -L debian-root -d "$root" "$IMG.tmp" "$SIZE"
    mv "$KERNEL.tmp" "$KERNEL"; mv "$INITRD.tmp" "$INITRD"; mv "$IMG.tmp" "$IMG"
    echo "$KPKG $KVER_PKG" > "$VERSION"
    used=$(du -sm "$root" | cut -f1)
    rm -rf "$root"
    log "debian-root.ext4: ${used} MiB used of $SIZE, initrd $(du -h "$INITRD" | cut -f1), $(( $(date +%s) - t0 )) s"
fi
echo "$IMG"
