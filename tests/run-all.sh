#!/usr/bin/env bash
# Build kestrel and run every test suite (unit, then the e2e suites, which boot real
# guests in a nested test host and take minutes). Installs what it needs with apt-get
# on a fresh Debian 12 machine (run as root). Exits non-zero on any failure.
#   tests/run-all.sh [extra `meson test` arguments, e.g. --suite unit]
set -euo pipefail
cd "$(dirname "$0")/.."

DEPS=(meson ninja-build pkg-config gcc libc6-dev libfdt-dev libcriterion-dev liburing-dev
      libseccomp-dev zlib1g-dev liblzma-dev qemu-system-x86 busybox-static e2fsprogs cpio socat strace python3
      xz-utils gzip acpica-tools device-tree-compiler gnuplot-nox)
bash tests/install-deps.sh "${DEPS[@]}"

[ -f build/build.ninja ] || meson setup build
ninja -C build
# With extra arguments, exactly that `meson test` run.
if [ $# -gt 0 ]; then
    exec meson test -C build --print-errorlogs "$@"
fi
status=0
meson test -C build --print-errorlogs --suite unit --logbase testlog-unit || status=$?
# The e2e tests (is_parallel: false) each boot a nested test host that keeps one core busy
# (one TCG vCPU). With two cores or more, the arm64 suite, the rig's own QEMU reference and the
# Debian system test (suite e2e-long) run in a second `meson test` beside the rest of the
# kestrel x86 suite (its own log, printed when it ends; the split makes the two about 27
# minutes each). What it needs first (the cross compiler, the static kestrel-arm64, both test
# hosts' images: apt and image builds) is made before, one at a time, so that only one apt-get
# ever runs (the rig also builds one at a time: a lock).
logs=(build/meson-logs/testlog-unit.json build/meson-logs/testlog.json)
if [ "$(nproc)" -ge 2 ]; then
    bash tests/install-deps.sh gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm
    bash arch/arm64/cross-build.sh "$PWD/build-arm64" > /dev/null
    KESTREL_ARCH=arm64 bash guest-images/build-testhost.sh > /dev/null
    bash guest-images/build-testhost.sh > /dev/null
    side_out=build/meson-logs/e2e-side.out
    meson test -C build --no-rebuild --print-errorlogs --suite e2e-arm64 --suite e2e-rig \
        --suite e2e-long --logbase testlog-side > "$side_out" 2>&1 &
    side=$!
    meson test -C build --no-rebuild --print-errorlogs --no-suite unit --no-suite e2e-arm64 \
        --no-suite e2e-rig --no-suite e2e-long || status=$?
    wait $side || status=$?
    echo "---- suites e2e-arm64, e2e-rig and e2e-long (ran beside the others):"
    cat "$side_out"
    logs+=(build/meson-logs/testlog-side.json)
else
    meson test -C build --no-rebuild --print-errorlogs --no-suite unit || status=$?
fi
# One plain closing line with the counts of every run, read from meson's own logs.
python3 - "${logs[@]}" <<'PY' || true
import json, sys
res = [json.loads(l)["result"] for f in sys.argv[1:] for l in open(f) if l.strip()]
ok = sum(r in ("OK", "EXPECTEDFAIL") for r in res)
skip = sum(r == "SKIP" for r in res)
print("%d passed, %d failed, %d skipped" % (ok, len(res) - ok - skip, skip))
PY
exit $status
