# e2e-lib.sh: helpers for e2e test scripts on the build machine (bash). Sourced.
# A test writes a scenario for the nested test host, runs it with rig_run, then checks
# the records the scenario sent back (see rig-lib.sh for the scenario side).
# shellcheck shell=bash

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)
PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }

# check DESCRIPTION CMD...: PASS when CMD succeeds.
check() {
    local desc=$1; shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# rig_run SCENARIO_FILE [rig options...]: boot the test host; sets RUN_DIR.
# Returns the rig's status (0: the scenario ran to its end).
rig_run() {
    local scenario=$1; shift
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kestrel-e2e.XXXXXX")
    python3 "$E2E_DIR/rig.py" run --scenario "$scenario" --out "$RUN_DIR" "${RIG_ARCH_ARGS[@]}" "$@" >/dev/null
}

# The benchmarks' kernel command line (bench_*.sh, diag_net.sh). quiet: they measure the VMM
# and the device or boot path, not the cost of printing the kernel log.
BENCH_CMDLINE="console=ttyS0 reboot=k panic=1 quiet"

# The test host's architecture (a test's --arch x86_64|arm64). On arm64 the kestrel under
# test is the cross-built static binary (arm64_kestrel); RIG_ARCH_ARGS goes to rig_run.
ARCH=x86_64
RIG_ARCH_ARGS=()
# set_arch ARCH: validate and apply --arch (exits 2 on anything else).
set_arch() {
    case $1 in
        x86_64) ARCH=x86_64; RIG_ARCH_ARGS=() ;;
        arm64) ARCH=arm64; RIG_ARCH_ARGS=(--arch arm64) ;;
        *) echo "bad --arch '$1': expected x86_64 or arm64" >&2; exit 2 ;;
    esac
}
# arm64_kestrel: build (incrementally) the static aarch64 kestrel with arch/arm64/cross-build.sh
# in $KESTREL_ARM64_BUILD (default build-arm64 in the repo) and print its path.
arm64_kestrel() {
    local dir=${KESTREL_ARM64_BUILD:-$REPO_ROOT/build-arm64}
    bash "$REPO_ROOT/arch/arm64/cross-build.sh" "$dir" >&2 || return 1
    echo "$dir/kestrel"
}
# default_kestrel: the kestrel a test uses without --kestrel (the native build on x86_64).
default_kestrel() {
    if [ "$ARCH" = arm64 ]; then arm64_kestrel; else echo "$REPO_ROOT/build/kestrel"; fi
}

# debian_image WORKDIR: build or reuse the Debian system (guest-images/build-debian.sh) and
# put a per-run copy of its root image in WORKDIR (reflink or sparse: the runs write to it,
# the cached image stays as built). Sets DEB_DISK (the copy) and DEB_RIG_ARGS, the rig.py
# options that hand the test host its kernel and initrd (/files/debian-vmlinuz,
# /files/debian-initrd.img) and the copy as its /dev/vda.
debian_image() {
    local images=${KESTREL_IMAGES_OUT:-$REPO_ROOT/guest-images/out}
    # One image builder at a time (rig.py's build_images takes the same lock).
    mkdir -p "$images"
    flock "$images/.build.lock" bash "$REPO_ROOT/guest-images/build-debian.sh" > /dev/null || return 1
    DEB_DISK=$1/debian-root.ext4
    cp --reflink=auto --sparse=always "$images/debian-root.ext4" "$DEB_DISK" || return 1
    DEB_RIG_ARGS=(--file "$images/debian-vmlinuz:/files/debian-vmlinuz"
        --file "$images/debian-initrd.img:/files/debian-initrd.img" --drive "$DEB_DISK")
}

# Record accessors: rec_status NAME, rec_out NAME (stdout), rec_err NAME, rec_time NAME.
rec_dir() { echo "$RUN_DIR/records/$1"; }
has_rec() { [ -f "$RUN_DIR/records/$1/status" ]; }
rec_status() { cat "$RUN_DIR/records/$1/status" 2>/dev/null || echo missing; }
rec_time() { cat "$RUN_DIR/records/$1/time" 2>/dev/null || echo missing; }
rec_out() { cat "$RUN_DIR/records/$1/stdout" 2>/dev/null; }
rec_err() { cat "$RUN_DIR/records/$1/stderr" 2>/dev/null; }

# expect_status NAME WANT: the record exists and its exit status is WANT.
expect_status() {
    local got; got=$(rec_status "$1")
    [ "$got" = "$2" ] || { echo "  $1: exit status $got, want $2" >&2; return 1; }
}
# expect_out NAME TEXT: the record's stdout contains TEXT (a fixed string).
expect_out() {
    # grep reads to the end (no -q): an early exit would SIGPIPE the writer, and with
    # pipefail a large record would then fail a check that matched.
    rec_out "$1" | tr -d '\r' | grep -F -- "$2" > /dev/null || { echo "  $1: no '$2' in stdout" >&2; return 1; }
}

expect_err() {
    rec_err "$1" | tr -d '\r' | grep -F -- "$2" > /dev/null || { echo "  $1: no '$2' in stderr" >&2; return 1; }
}

# show_rec NAME: the tail of a record, for failure diagnosis.
show_rec() {
    echo "---- $1: status $(rec_status "$1"), $(rec_time "$1")s; last lines of stdout:"
    rec_out "$1" | tr -d '\r' | tail -n 15 | sed 's/^/    /'
    echo "---- $1: stderr:"
    rec_err "$1" | tail -n 10 | sed 's/^/    /'
}

# check_rec NAME DESCRIPTION CONDITION...: PASS/FAIL, and the record's tail on failure.
check_rec() {
    local name=$1 desc=$2; shift 2
    if ! has_rec "$name"; then fail "$desc (no record: VMM run did not finish)"; return; fi
    if "$@"; then pass "$desc ($(rec_time "$name")s)"; else fail "$desc"; show_rec "$name"; fi
}
# all 'CMD ARGS' ...: every quoted command succeeds (each is eval'ed).
all() { local c; for c in "$@"; do eval "$c" || return 1; done; }
# val NAME KEY: the rest of the first stdout line "KEY rest" of record NAME.
val() { rec_out "$1" | tr -d '\r' | awk -v k="$2" '$1 == k {sub(/^[^ ]+ /, ""); print; exit}'; }
# eq A B: B is non-empty and equal to A.
eq() { [ -n "$2" ] && [ "$1" = "$2" ] || { echo "  '$1' != '$2'" >&2; return 1; }; }

# finish: the closing summary line and the exit status.
finish() {
    echo "$PASSED passed, $FAILED failed"
    # Keep the run's logs for diagnosis only when something failed.
    if [ "$FAILED" -eq 0 ] && [ -n "${RUN_DIR:-}" ] && [ -z "${E2E_KEEP:-}" ]; then rm -rf "$RUN_DIR"; fi
    [ "$FAILED" -eq 0 ]
    exit
}
