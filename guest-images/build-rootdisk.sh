#!/usr/bin/env bash
# Build an ext4 ROOT filesystem image for the inner guest (virtio-blk root tests):
#   guest-root.ext4   busybox (+ one link per applet), /sbin/init, /data/testfile
#                     (KESTREL_ARCH=arm64: the arm64 busybox, into out/arm64/)
#   guest-root.md5    md5 of /data/testfile (1 MiB of random data)
# The disk's /sbin/init mounts proc/sys/dev, prints KESTREL-ROOTFS-INIT-OK and the root
# line of /proc/mounts, runs /scenario.sh when a test put one on the disk, then reboots.
# The kernel's virtio/ext4 modules are not on the disk: an initramfs loads them and
# switches root (see tests/e2e/test_virtio_blk.sh). Rebuilt only when an input changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_pkgs busybox-static e2fsprogs

IMG=$OUT/guest-root.ext4
MD5=$OUT/guest-root.md5
SIZE=32M   # room for busybox, the 1 MiB test file and the files tests write
BUSYBOX=$(target_busybox)

if stale "$IMG" "$GI_DIR/build-rootdisk.sh" "$GI_DIR/lib.sh" "$BUSYBOX" || [ ! -e "$MD5" ]; then
    st=$OUT/stage-root; rm -rf "$st"
    mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,root,data,mnt}
    cp "$BUSYBOX" "$st/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ -e "$st/bin/$a" ] || ln -s busybox "$st/bin/$a"
    done
    cat > "$st/sbin/init" <<'EOF'
#!/bin/sh
# /sbin/init of the kestrel test root disk (guest-images/build-rootdisk.sh).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
echo KESTREL-ROOTFS-INIT-OK
grep ' / ' /proc/mounts
if [ -f /scenario.sh ]; then
    sh /scenario.sh
    echo "KESTREL-ROOTFS-SCENARIO-EXIT $?"
fi
sync
reboot -f
EOF
    chmod 755 "$st/sbin/init"
    echo 'root:x:0:0:root:/root:/bin/sh' > "$st/etc/passwd"
    head -c 1048576 /dev/urandom > "$st/data/testfile"
    sum=$(md5sum < "$st/data/testfile" | cut -d' ' -f1)
    rm -f "$IMG.tmp"
    mke2fs -q -t ext4 -L kestrel-root -d "$st" "$IMG.tmp" "$SIZE" >/dev/null
    echo "$sum" > "$MD5.tmp"
    mv "$IMG.tmp" "$IMG"
    mv "$MD5.tmp" "$MD5"
    rm -rf "$st"
    log "guest-root.ext4 (testfile md5 $sum)"
fi
echo "$IMG"
