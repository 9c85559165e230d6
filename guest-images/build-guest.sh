#!/usr/bin/env bash
# Build the default inner guest from Debian packages into guest-images/out/:
#   vmlinuz                  Debian's bzImage (linux-image-amd64); with KESTREL_ARCH=arm64
#                            (into out/arm64/) the arm64 Image (linux-image-arm64)
#   vmlinux                  the ELF kernel unpacked from that bzImage (amd64 only)
#   guest-initramfs.cpio.gz  busybox + /init + virtio/ext4 modules (loaded on demand)
#   guest-disk.ext4          a small ext4 image holding a known test file
# Outputs are rebuilt only when the kernel package version or an input file changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_pkgs busybox-static e2fsprogs cpio xz-utils gzip
kernel_pkg_fetch

# Modules the guest will want for virtio devices and an ext4 disk (not loaded at boot).
GUEST_MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mmio
    virtio_blk virtio_console failover net_failover virtio_net
    crc16 crc32c_generic mbcache jbd2 ext4)
# arm64: kestrel's power key is a gpio-keys line on its PL061 (SIGTERM presses it).
[ "$GI_ARCH" = arm64 ] && GUEST_MODULES+=(gpio_keys)

KSTAMP=$KROOT/.stamp
BUSYBOX=$(target_busybox)
INPUTS=("$KSTAMP" "$GI_DIR/build-guest.sh" "$GI_DIR/lib.sh" "$GI_DIR"/files/guest-init
    "$GI_DIR"/files/modload "$GI_DIR"/files/debug-exit "$BUSYBOX")

# --- vmlinuz / vmlinux ------------------------------------------------------------
if [ "$GI_ARCH" = arm64 ] && stale "$OUT/vmlinuz" "$KSTAMP" "$GI_DIR/build-guest.sh"; then
    # Debian's arm64 vmlinuz is the raw Image (gzip in some versions: QEMU and kestrel
    # read both), booted as it is; there is no separate ELF to extract.
    cp "$KROOT"/boot/vmlinuz-* "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
    log "vmlinuz ($(file -b "$OUT/vmlinuz" | cut -d, -f1)) from $KPKG $KVER_PKG"
fi
if [ "$GI_ARCH" = amd64 ] && stale "$OUT/vmlinux" "$KSTAMP" "$GI_DIR/build-guest.sh"; then
    bz=$(ls "$KROOT"/boot/vmlinuz-*)
    cp "$bz" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
    # Boot protocol: protected-mode code starts at (setup_sects+1)*512 (setup_sects at
    # 0x1f1, 0 means 4); payload_offset/length (0x248/0x24c) locate the compressed
    # vmlinux inside it. Debian builds with CONFIG_KERNEL_XZ; accept the others too.
    setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
    [ "$setup_sects" = 0 ] && setup_sects=4
    pay_off=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
    pay_len=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
    start=$(( (setup_sects + 1) * 512 + pay_off ))
    payload() { tail -c +$((start + 1)) "$bz" | head -c "$pay_len"; }
    magic=$(od -An -tx1 -j "$start" -N6 "$bz" | tr -d ' \n')
    case $magic in
        fd377a585a00*) unpack=(xz -dc --single-stream) ;;   # the kernel appends its size: ignore trailing bytes
        28b52ffd*)     unpack=(zstd -dc) ;;
        1f8b*)         unpack=(gzip -dc) ;;
        *) die "unknown bzImage payload compression (magic $magic)" ;;
    esac
    payload | "${unpack[@]}" > "$OUT/vmlinux.tmp" 2>/dev/null || true   # gzip warns about trailing bytes
    [ "$(head -c 4 "$OUT/vmlinux.tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] ||
        die "unpacked payload is not an ELF file"
    mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
    log "vmlinuz + vmlinux from $KPKG $KVER_PKG"
fi

# --- initramfs ----------------------------------------------------------------------
if stale "$OUT/guest-initramfs.cpio.gz" "${INPUTS[@]}"; then
    st=$OUT/stage-guest; rm -rf "$st"
    mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,root,lib/modules}
    cp "$BUSYBOX" "$st/bin/busybox"
    # One link per applet so scripts and the interactive shell find every command.
    for a in $(/bin/busybox --list); do
        [ -e "$st/bin/$a" ] || ln -s busybox "$st/bin/$a"
    done
    install -m 0755 "$GI_DIR/files/guest-init" "$st/init"
    install -m 0755 "$GI_DIR/files/modload" "$st/bin/modload"
    install -m 0755 "$GI_DIR/files/debug-exit" "$st/bin/debug-exit"
    echo 'root:x:0:0:root:/root:/bin/sh' > "$st/etc/passwd"
    echo 'export PS1="kestrel-guest:\w# "' > "$st/etc/profile"
    # Modules go flat into /lib/modules with a small deps list for /bin/modload.
    : > "$st/lib/modules/deps.txt"
    modules_closure "${GUEST_MODULES[@]}" > "$st/modules.list"   # a file, so errors stop the build
    while read -r ko; do
        n=$(basename "$ko" .ko); n=${n//-/_}
        cp "$ko" "$st/lib/modules/"
        deps=$(mod_deps "$ko" | sed 's/ *$//; s/ /,/g')
        # ext4 checksums need crc32c at mount time; it is only a soft dependency.
        [ "$n" = ext4 ] && deps=${deps:+$deps,}crc32c_generic
        echo "$n /lib/modules/$(basename "$ko") $deps" >> "$st/lib/modules/deps.txt"
    done < "$st/modules.list"
    rm "$st/modules.list"
    pack_cpio "$st" "$OUT/guest-initramfs.cpio"
    gzip -9n < "$OUT/guest-initramfs.cpio" > "$OUT/guest-initramfs.cpio.gz.tmp"
    mv "$OUT/guest-initramfs.cpio.gz.tmp" "$OUT/guest-initramfs.cpio.gz"
    rm -rf "$st" "$OUT/guest-initramfs.cpio"
    log "guest-initramfs.cpio.gz ($(du -h "$OUT/guest-initramfs.cpio.gz" | cut -f1))"
fi

# --- disk image ---------------------------------------------------------------------
if stale "$OUT/guest-disk.ext4" "$GI_DIR/build-guest.sh"; then
    d=$OUT/stage-disk; rm -rf "$d"; mkdir -p "$d"
    echo "kestrel-disk-test-file" > "$d/hello.txt"
    rm -f "$OUT/guest-disk.ext4.tmp"
    mke2fs -q -t ext4 -L kestrel-test -d "$d" "$OUT/guest-disk.ext4.tmp" 16M >/dev/null
    mv "$OUT/guest-disk.ext4.tmp" "$OUT/guest-disk.ext4"
    rm -rf "$d"
    log "guest-disk.ext4"
fi

echo "$OUT"
