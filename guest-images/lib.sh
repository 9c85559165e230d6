# Shared helpers for the guest-image and test-host builders. Sourced, not run.
# shellcheck shell=bash

GI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$GI_DIR/.." && pwd)
OUT=${KESTREL_IMAGES_OUT:-$GI_DIR/out}
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

# The concrete kernel package behind the linux-image-amd64 meta package, and its version.
# Falls back to whatever was extracted before when apt cannot answer.
kernel_pkg_resolve() {
    KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    if [ -z "$KPKG" ] && [ "$(id -u)" = 0 ] && ! ls -d "$OUT"/pkg/linux-image-*/ >/dev/null 2>&1; then
        # A fresh machine may have no package lists yet.
        apt-get update -q >&2 || true
        KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    fi
    if [ -n "$KPKG" ]; then
        KVER_PKG=$(apt-cache policy "$KPKG" | awk '/Candidate:/{print $2}')
    fi
    if [ -z "${KPKG:-}" ] || [ -z "${KVER_PKG:-}" ] || [ "$KVER_PKG" = "(none)" ]; then
        local d
        d=$(ls -d "$OUT"/pkg/linux-image-*/ 2>/dev/null | sort -V | tail -1)
        [ -n "$d" ] || die "cannot resolve linux-image-amd64 (run apt-get update?)"
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
    (cd "$tmp" && apt-get download -q "$KPKG=$KVER_PKG" >&2) || die "apt-get download $KPKG failed"
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
    [ -n "$f" ] || die "kernel module $1 not found in $KPKG"
    case $f in *.xz|*.zst|*.gz) die "compressed module $f: add decompression here";; esac
    deps=$(tr '\0' '\n' < "$f" | sed -n 's/^depends=//p' | head -1)
    for d in ${deps//,/ }; do _mod_visit "$d"; done
    echo "$f"
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

# Pack a staging folder into a newc cpio archive (owner root, as the kernel expects).
pack_cpio() {
    local root=$1 out=$2
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out.tmp"
    mv "$out.tmp" "$out"
}

# Make-style check: true when $1 is missing or older than any of the other files.
stale() {
    local target=$1 f; shift
    [ -e "$target" ] || return 0
    for f in "$@"; do [ "$f" -nt "$target" ] && return 0; done
    return 1
}
