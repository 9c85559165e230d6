#!/usr/bin/env bash
# Build kestrel and run every test suite (unit, then the e2e suites, which boot real
# guests in a nested test host and take minutes). Installs what it needs with apt-get
# on a fresh Debian 12 machine (run as root). Exits non-zero on any failure.
#   tests/run-all.sh [extra `meson test` arguments, e.g. --suite unit]
set -euo pipefail
cd "$(dirname "$0")/.."

DEPS=(meson ninja-build pkg-config gcc libc6-dev libfdt-dev libcriterion-dev liburing-dev
      libseccomp-dev zlib1g-dev qemu-system-x86 busybox-static e2fsprogs cpio socat strace python3
      xz-utils gzip acpica-tools device-tree-compiler gnuplot-nox)
bash tests/install-deps.sh "${DEPS[@]}"

[ -f build/build.ninja ] || meson setup build
ninja -C build
# Unit tests are defined first and run in parallel; the e2e tests (is_parallel: false)
# run one at a time after them.
status=0
meson test -C build --print-errorlogs "$@" || status=$?
# One plain closing line with the counts, read from meson's own log.
python3 - build/meson-logs/testlog.json <<'PY' || true
import json, sys
res = [json.loads(l)["result"] for l in open(sys.argv[1]) if l.strip()]
ok = sum(r in ("OK", "EXPECTEDFAIL") for r in res)
skip = sum(r == "SKIP" for r in res)
print("%d passed, %d failed, %d skipped" % (ok, len(res) - ok - skip, skip))
PY
exit $status
