# Shared helpers for the guest-image and test-host builders. Sourced, not run.
# shellcheck shell=bash

GI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$GI_DIR/.." && pwd)
# The images' architecture: amd64 (the default; this machine's own) or arm64
# (KESTREL_ARCH=arm64: the nested arm64 test host, built from Debian's arm64 packages,
# which are downloaded and unpacked, never installed). arm64 images go to OUT/arm64.
GI_ARCH=${KESTREL_ARCH:-amd64}
OUT=${KESTREL_IMAGES_OUT:-$GI_DIR/out}
case $GI_ARCH in
    amd64) APT_ARCH= ;;
    arm64) APT_ARCH=:arm64; OUT=$OUT/arm64 ;;
    *) echo "KESTREL_ARCH=$GI_ARCH: want amd64 or arm64" >&2; exit 1 ;;
esac
mkdir -p "$OUT"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Install Debian packages that are missing (non-interactive; we run as root on CI).
need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "need root to apt-get install ${missing[*]}"
    # An old or empty package list makes installs fail; refresh once if so.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
        { DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

# apt_cached CMD...: CMD's output (an apt-cache query), remembered per state of apt's package
# lists and architectures, which are all its answer depends on. This machine's apt keeps no
# binary cache (Dir::Cache::pkgcache ""), so every apt-cache call parses every list again:
# 2 to 14 s each, four of them per test-host boot check before this. (APT_LISTS: for tests.)
apt_cached() {
    local key f
    key=$({ ls -l --time-style=+%s "${APT_LISTS:-/var/lib/apt/lists}/" 2> /dev/null
            dpkg --print-foreign-architectures; printf '%s\n' "$@"; } | sha256sum | cut -c1-32)
    f=$OUT/.apt-cache/$key
    if [ ! -f "$f" ]; then
        mkdir -p "$OUT/.apt-cache"
        "$@" > "$f.$$" 2> /dev/null || { rm -f "$f.$$"; return 1; }
        mv "$f.$$" "$f"
    fi
    cat "$f"
}

# The concrete kernel package behind the linux-image-$GI_ARCH meta package, and its
# version. Falls back to whatever was extracted before when apt cannot answer.
_kernel_pkg_name() {
    apt_cached apt-cache depends "linux-image-$GI_ARCH$APT_ARCH" |
        awk '/Depends: linux-image-[0-9]/{sub(/:.*/, "", $2); print $2; exit}'
}
kernel_pkg_resolve() {
    KPKG=$(_kernel_pkg_name)
    if [ -z "$KPKG" ] && [ "$(id -u)" = 0 ] && ! ls -d "$OUT"/pkg/linux-image-*/ >/dev/null 2>&1; then
        # A fresh machine may have no package lists yet (or no arm64 ones).
        foreign_arch_ready
        apt-get update -q >&2 || true
        KPKG=$(_kernel_pkg_name)
    fi
    if [ -n "$KPKG" ]; then
        KVER_PKG=$(apt_cached apt-cache policy "$KPKG$APT_ARCH" | awk '/Candidate:/{print $2}')
    fi
    if [ -z "${KPKG:-}" ] || [ -z "${KVER_PKG:-}" ] || [ "$KVER_PKG" = "(none)" ]; then
        local d
        d=$(ls -d "$OUT"/pkg/linux-image-*/ 2>/dev/null | sort -V | tail -1)
        [ -n "$d" ] || die "cannot resolve linux-image-$GI_ARCH (run apt-get update?)"
        KPKG=$(basename "$d" | sed 's/_.*//'); KVER_PKG=$(basename "$d" | sed 's/^[^_]*_//')
    fi
    KREL=${KPKG#linux-image-}            # e.g. 6.1.0-56-amd64 (the modules folder name)
    KROOT=$OUT/pkg/${KPKG}_${KVER_PKG}   # extracted package tree
    KMODDIR=$KROOT/lib/modules/$KREL
}

# Download and extract the kernel package once per package version (never installed).
kernel_pkg_fetch() {
    kernel_pkg_resolve
    [ -f "$KROOT/.stamp" ] && return 0
    log "fetching $KPKG $KVER_PKG"
    local tmp; tmp=$(mktemp -d "$OUT/.dl.XXXXXX")
    # apt's sandbox user cannot write into our tree: download from a world-writable dir.
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download -q "$KPKG$APT_ARCH=$KVER_PKG" >&2) || die "apt-get download $KPKG failed"
    rm -rf "$KROOT"; mkdir -p "$KROOT"
    dpkg-deb -x "$tmp"/*.deb "$KROOT"
    rm -rf "$tmp"
    # Drop older extracted versions so out/ does not grow forever.
    find "$OUT/pkg" -mindepth 1 -maxdepth 1 -name 'linux-image-*' ! -path "$KROOT" -exec rm -rf {} +
    touch "$KROOT/.stamp"
}

# Print the .ko paths for the given module names plus their dependencies, dependency
# first. The package ships no modules.dep (depmod runs at install time), so read each
# module's own "depends=" entry from its .modinfo strings.
declare -A _MOD_PATH=() _MOD_SEEN=()
_mod_index() {
    [ ${#_MOD_PATH[@]} -gt 0 ] && return 0
    local f n
    while IFS= read -r f; do
        n=$(basename "$f"); n=${n%%.ko*}; n=${n//-/_}
        _MOD_PATH[$n]=$f
    done < <(find "$KMODDIR/kernel" -name '*.ko*')
}
_mod_visit() {
    local n=${1//-/_} d deps f
    [ -n "${_MOD_SEEN[$n]:-}" ] && return 0
    _MOD_SEEN[$n]=1
    f=${_MOD_PATH[$n]:-}
    if [ -z "$f" ]; then
        # Built into the kernel (arm64 builds in some that amd64 has as modules): nothing to load.
        tr - _ < "$KMODDIR/modules.builtin" | grep "/$n\.ko\$" > /dev/null && return 0
        die "kernel module $1 not found in $KPKG"
    fi
    case $f in *.xz|*.zst|*.gz) die "compressed module $f: add decompression here";; esac
    for d in $(mod_deps "$f"); do _mod_visit "$d"; done
    echo "$f"
}
# mod_deps KO: the modules KO depends on (its "depends=" entry), less those built into
# the kernel; space-separated.
mod_deps() {
    local d
    _mod_index
    for d in $(tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | head -1 | tr ',' ' '); do
        [ -n "${_MOD_PATH[${d//-/_}]:-}" ] && echo "${d//-/_}"
    done | tr '\n' ' '
}
modules_closure() {
    _mod_index
    _MOD_SEEN=()
    local m
    for m in "$@"; do _mod_visit "$m"; done
}

# Copy a dynamically linked program and the libraries ldd lists into a staging root,
# each at the same absolute path (so the loader and rpaths just work).
copy_with_libs() {
    local root=$1 prog=$2 lib
    install -D -m 0755 "$prog" "$root$prog"
    for lib in $(ldd "$prog" 2>/dev/null | grep -o '/[^ ]*'); do
        [ -e "$root$lib" ] && continue
        install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
}

# --- arm64 programs from Debian's arm64 packages (downloaded and unpacked only) -------

# foreign_arch_ready: for arm64 images, let apt download arm64 packages (dpkg's
# architecture list; adding it installs nothing) and have arm64 package lists.
foreign_arch_ready() {
    [ -n "$APT_ARCH" ] || return 0
    [ -n "${_FOREIGN_READY:-}" ] && return 0
    if ! dpkg --print-foreign-architectures | grep -qx "$GI_ARCH"; then
        [ "$(id -u)" = 0 ] || die "need root for dpkg --add-architecture $GI_ARCH"
        log "dpkg --add-architecture $GI_ARCH"
        dpkg --add-architecture "$GI_ARCH"
    fi
    if ! apt_cached apt-cache policy "libc6$APT_ARCH" | grep -q 'Candidate: [0-9]'; then
        apt-get update -q >&2 || true   # an unreachable extra source must not stop us
    fi
    _FOREIGN_READY=1
}

# deb_unpack PKG: unpack the candidate version of PKG (for $GI_ARCH) once into
# $OUT/debs/PKG_VERSION/ and print that folder.
deb_unpack() {
    local pkg=$1 ver dir tmp
    foreign_arch_ready
    ver=$(apt_cached apt-cache policy "$pkg$APT_ARCH" | awk '/Candidate:/{print $2}')
    [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no package $pkg$APT_ARCH (apt-get update?)"
    dir=$OUT/debs/${pkg}_${ver//:/%}
    if [ ! -f "$dir/.stamp" ]; then
        log "unpacking $pkg$APT_ARCH $ver"
        tmp=$(mktemp -d "$OUT/.dl.XXXXXX"); chmod 777 "$tmp"   # apt's sandbox user writes here
        (cd "$tmp" && apt-get download -q "$pkg$APT_ARCH=$ver" >&2) || die "apt-get download $pkg failed"
        rm -rf "$dir"; mkdir -p "$dir"
        dpkg-deb -x "$tmp"/*.deb "$dir"
        rm -rf "$tmp"
        touch "$dir/.stamp"
    fi
    echo "$dir"
}

# soname_pkg SONAME: the package shipping SONAME, asked of this machine's own (amd64)
# packages: the arm64 package of the same name ships the same soname. So the native
# counterpart of what is copied (e.g. qemu-system-x86 for qemu-system-arm) must be installed.
soname_pkg() {
    case $1 in ld-linux-*) echo libc6; return ;; esac   # the loader (libc.so.6 names it)
    # One of the two paths is always unknown to dpkg (status 1): not an error here.
    { dpkg -S "/lib/x86_64-linux-gnu/$1" "/usr/lib/x86_64-linux-gnu/$1" 2>/dev/null || true; } |
        head -1 | sed 's/[:,].*//'
}

# _foreign_lib ROOT SONAME: copy SONAME (and, in turn, what it needs) into ROOT.
declare -A _FOREIGN_DONE=()
_foreign_lib() {
    local root=$1 so=$2 pkg dir d
    [ -n "${_FOREIGN_DONE[$root/$so]:-}" ] && return 0
    _FOREIGN_DONE[$root/$so]=1
    pkg=$(soname_pkg "$so")
    [ -n "$pkg" ] || die "no installed package ships $so: install its amd64 package, so its name is known"
    dir=$(deb_unpack "$pkg")
    for d in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu; do
        [ -e "$dir/$d/$so" ] || continue
        install -D -m 0755 "$(readlink -f "$dir/$d/$so")" "$root/$d/$so"
        _foreign_needs "$root" "$root/$d/$so"
        return 0
    done
    die "$so not found in $pkg$APT_ARCH"
}
_foreign_needs() {
    local root=$1 elf=$2 so
    for so in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        _foreign_lib "$root" "$so"
    done
}

# stage_prog ROOT PKG PATH: put program PATH of package PKG into staging root ROOT with
# its libraries. amd64: the installed program (need_pkgs PKG first) through ldd; arm64:
# from the unpacked arm64 package, its libraries found through its ELF NEEDED entries
# (ldd cannot run an arm64 program here), plus the loader /lib/ld-linux-aarch64.so.1.
stage_prog() {
    local root=$1 pkg=$2 prog=$3 dir interp
    if [ -z "$APT_ARCH" ]; then copy_with_libs "$root" "$prog"; return; fi
    dir=$(deb_unpack "$pkg")
    [ -f "$dir$prog" ] || die "$prog not in $pkg$APT_ARCH"
    install -D -m 0755 "$dir$prog" "$root$prog"
    interp=$(readelf -l "$dir$prog" | sed -n 's/.*program interpreter: \(.*\)\]/\1/p')
    [ -z "$interp" ] && return 0   # static
    _foreign_needs "$root" "$dir$prog"
    if [ ! -e "$root$interp" ]; then
        dir=$(deb_unpack libc6)
        install -D -m 0755 "$(readlink -f "$dir$interp")" "$root$interp"
    fi
}

# target_busybox: the path of a static busybox for $GI_ARCH. Its applet list is the
# native one's (`/bin/busybox --list`): same Debian version and configuration.
target_busybox() {
    if [ -z "$APT_ARCH" ]; then echo /bin/busybox; return; fi
    echo "$(deb_unpack busybox-static)/bin/busybox"
}

# Pack a staging folder into a newc cpio archive (owner root, as the kernel expects).
pack_cpio() {
    local root=$1 out=$2
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out.tmp"
    mv "$out.tmp" "$out"
}

# inputs_digest FILE...: one hash of the inputs' contents (a folder: its list of names), not
# of their paths or times, so another checkout of the same sources gives the same digest.
inputs_digest() {
    local f
    for f in "$@"; do
        if [ -d "$f" ]; then echo "D $(ls -1A "$f" | sha256sum)"
        elif [ -e "$f" ]; then echo "F $(sha256sum < "$f")"
        else echo "M"; fi
    done | sha256sum | cut -d' ' -f1
}

# stale TARGET INPUT...: true when TARGET must be rebuilt: it is missing, or it is older than
# an input and was not made from inputs of the same contents. TARGET.inputs keeps the digest
# of the inputs it was found fresh with: a fresh clone (every file newer than a cached image)
# then reuses the image as long as the contents are the same.
stale() {
    local target=$1 d f; shift
    [ -e "$target" ] || return 0
    d=$(inputs_digest "$@")
    [ "$(cat "$target.inputs" 2>/dev/null)" = "$d" ] && return 1
    for f in "$@"; do [ "$f" -nt "$target" ] && return 0; done
    echo "$d" > "$target.inputs"
    return 1
}
