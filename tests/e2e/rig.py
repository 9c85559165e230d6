#!/usr/bin/env python3
"""rig.py: run a scenario inside the nested test host and collect its results.

This machine's /dev/kvm cannot run a stock kernel, so end-to-end tests boot a "test
host": qemu-system-x86_64 under TCG (-cpu max exposes AMD SVM) running Debian's
kernel with kvm-amd loaded. The scenario (a shell script) runs inside it and can start
kestrel or QEMU with -accel kvm; tests/e2e/rig-lib.sh gives it helpers (run_vmm, ...).

  rig.py run --scenario FILE [--kestrel PATH] [--timeout S] [--mem 3G] [--out DIR]
             [--env KEY=VALUE]... [--file SRC:DEST]... [--drive FILE]... [--interactive]
             [--arch x86_64|arm64]

--drive attaches FILE to the test host as a raw virtio-blk disk (/dev/vda, /dev/vdb, ...
in order): the way in for images too big for the per-run initramfs. The host writes to
FILE, so pass a per-run copy.

--arch arm64 boots the nested arm64 test host instead (qemu-system-aarch64 -M virt with
virtualization=on, Debian's arm64 kernel, KVM in VHE mode); --kestrel is then an aarch64
binary (arch/arm64/cross-build.sh makes a static one). Its images live in OUT/arm64.

Results land in DIR (default guest-images/out/runs/<time>): console.log (test host
serial console), results.raw (second serial port), records/<name>/{status,time,stdout,
stderr}, and summary.json. Exit status: 0 when the scenario ran to its end, 3 when the
host timed out or died first, 2 on usage errors. Stdlib only.
"""
import argparse
import base64
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

E2E_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(E2E_DIR))
GI_DIR = os.path.join(REPO, "guest-images")
OUT = os.environ.get("KESTREL_IMAGES_OUT", os.path.join(GI_DIR, "out"))
# panic=-1: a host panic ends QEMU (-no-reboot). tsc=reliable: TCG keeps the vCPU TSCs in
# step, and without it the host falls back to HPET, which makes every clock read (KVM
# reads the clock on each guest exit) an emulated MMIO access. mitigations=off: no
# retpolines/RSB filling on the nested VM-exit path; nothing here needs them.
HOST_CMDLINE = "console=ttyS0 panic=-1 reboot=k tsc=reliable mitigations=off"
# The arm64 host's console is -M virt's PL011.
HOST_CMDLINE_ARM64 = "console=ttyAMA0 panic=-1 mitigations=off"


def log(msg):
    print("[rig] " + msg, file=sys.stderr, flush=True)


def images_out(arch):
    """Where the images of this architecture live (guest-images/lib.sh's OUT)."""
    return os.path.join(OUT, "arm64") if arch == "arm64" else OUT


def build_images(arch):
    """Build/refresh the guest and test-host images (make-style, cheap when current)."""
    env = dict(os.environ, KESTREL_ARCH="arm64" if arch == "arm64" else "amd64")
    out = images_out(arch)
    os.makedirs(out, exist_ok=True)
    # Suites that run side by side (tests/run-all.sh) each check the images: on a cold cache
    # two builders would extract the same package at once and break each other's files. One
    # at a time (e2e-lib.sh's debian_image takes the same lock).
    with open(os.path.join(out, ".build.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["bash", os.path.join(GI_DIR, "build-testhost.sh")], check=True,
                       stdout=subprocess.DEVNULL, env=env)
    kernels = sorted(p for p in os.listdir(os.path.join(out, "pkg"))
                     if p.startswith("linux-image-"))
    # The outer host runs the same Debian kernel the inner guest does.
    return os.path.join(out, "vmlinuz"), os.path.join(out, "host-initramfs.cpio"), kernels[-1]


def build_stamp(arch):
    """stamp.c compiled for the test host (meson builds it too; this keeps the rig
    standalone). For arm64 with Debian's cross gcc, static (the host has no libc)."""
    src = os.path.join(E2E_DIR, "stamp.c")
    exe = os.path.join(images_out(arch), "stamp")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        cc = ["cc"]
        if arch == "arm64":
            subprocess.run(["bash", os.path.join(REPO, "tests", "install-deps.sh"),
                            "gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"], check=True)
            cc = ["aarch64-linux-gnu-gcc", "-static"]
        subprocess.run(cc + ["-std=gnu11", "-O2", "-Wall", "-o", exe, src], check=True)
    return exe


def ldd_libs(prog):
    # ldd prints nothing useful for a static or foreign (arm64) binary: no libraries.
    out = subprocess.run(["ldd", prog], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        for tok in line.split():
            if tok.startswith("/") and os.path.exists(tok):
                libs.append(tok)
    return libs


def install(stage, src, dest):
    """Copy src to stage/dest (dest absolute inside the host), following symlinks."""
    target = os.path.join(stage, dest.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(os.path.realpath(src), target)
    os.chmod(target, 0o755)


def make_run_cpio(run_dir, scenario, kestrel, stamp, envs, extra_files=()):
    """The per-run archive: scenario, rig-lib.sh, VMM under test (+ libs), tools, and
    the test's own files (SRC:DEST pairs from --file)."""
    stage = os.path.join(run_dir, "stage")
    shutil.rmtree(stage, ignore_errors=True)
    for pair in extra_files:
        src, _, dest = pair.partition(":")
        install(stage, src, dest or "/files/" + os.path.basename(src))
    install(stage, scenario, "/scenario.sh")
    install(stage, os.path.join(E2E_DIR, "rig-lib.sh"), "/rig-lib.sh")
    install(stage, os.path.join(E2E_DIR, "qemu-kestrel"), "/usr/local/bin/qemu-kestrel")
    for prog, dest in ((stamp, "/usr/local/bin/stamp"), (kestrel, "/usr/local/bin/kestrel")):
        if not prog:
            continue
        install(stage, prog, dest)
        for lib in ldd_libs(prog):  # same paths inside the host, so the loader finds them
            install(stage, lib, lib)
    os.makedirs(os.path.join(stage, "etc"), exist_ok=True)
    with open(os.path.join(stage, "etc", "rig.env"), "w") as f:
        for kv in envs:
            k, _, v = kv.partition("=")
            f.write("%s='%s'\n" % (k, v.replace("'", "'\\''")))
    files = subprocess.run("find . -mindepth 1 | LC_ALL=C sort", shell=True, cwd=stage,
                           capture_output=True, text=True, check=True).stdout
    cpio = os.path.join(run_dir, "run.cpio")
    with open(cpio, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"], cwd=stage,
                       input=files.encode(), stdout=f, check=True)
    shutil.rmtree(stage)
    return cpio


def parse_results(raw_path, rec_dir):
    """Split results.raw into records/<name>/ files; return the summary dict."""
    summary = {"done": False, "scenario_exit": None, "notes": [], "records": {}}
    if not os.path.exists(raw_path):
        return summary
    cur = None      # record being read
    field = None    # "stdout"/"stderr" while reading base64 lines
    chunks = {}
    with open(raw_path, "rb") as f:
        for raw in f:
            line = raw.decode("latin-1").rstrip("\r\n")
            if line.startswith("=KRIG= "):
                words = line[7:].split(" ", 1)
                key, arg = words[0], (words[1] if len(words) > 1 else "")
                field = None
                if key == "BEGIN":
                    cur = {"name": arg, "status": None, "time": None}
                    chunks = {"stdout": [], "stderr": []}
                elif key == "STATUS" and cur is not None:
                    cur["status"] = int(arg)
                elif key == "TIME" and cur is not None:
                    cur["time"] = float(arg)
                elif key == "FILE" and cur is not None:
                    field = arg
                elif key == "END" and cur is not None:
                    d = os.path.join(rec_dir, cur["name"])
                    os.makedirs(d, exist_ok=True)
                    for name, parts in chunks.items():
                        data = base64.b64decode("".join(parts)) if parts else b""
                        with open(os.path.join(d, name), "wb") as out:
                            out.write(data)
                    for name in ("status", "time"):
                        with open(os.path.join(d, name), "w") as out:
                            out.write("%s\n" % cur[name])
                    summary["records"][cur["name"]] = {"status": cur["status"],
                                                       "time": cur["time"]}
                    cur = None
                elif key == "NOTE":
                    summary["notes"].append(arg)
                elif key == "SCENARIO-EXIT":
                    summary["scenario_exit"] = int(arg)
                elif key == "DONE":
                    summary["done"] = True
            elif field and cur is not None:
                chunks[field].append(line.strip())
    return summary


def heartbeat(sock_path, proc):
    """Send a byte to the test host's third serial port every 0.5 s (see host-init:
    an interrupt now and then rescues the host from a lost timer interrupt)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while proc.poll() is None:
        try:
            s.connect(sock_path)
            break
        except OSError:
            time.sleep(0.1)
    s.setblocking(False)
    while proc.poll() is None:
        try:
            s.send(b"\n")
        except BlockingIOError:
            pass  # the host does not read it yet: fine
        except OSError:
            break
        time.sleep(0.5)
    s.close()


def cmd_run(a):
    if not os.path.isfile(a.scenario):
        log("no such scenario: %s" % a.scenario)
        return 2
    for drive in a.drive:
        if not os.path.isfile(drive) or not os.access(drive, os.R_OK | os.W_OK):
            log("--drive: not a readable and writable file: %s" % drive)
            return 2
    if a.kestrel and not os.access(a.kestrel, os.X_OK):
        log("kestrel binary not found or not executable: %s" % a.kestrel)
        return 2
    kernel, host_cpio, kpkg = build_images(a.arch)
    stamp = a.stamp or build_stamp(a.arch)
    run_dir = a.out or os.path.join(OUT, "runs", time.strftime("%Y%m%d-%H%M%S-") + str(os.getpid()))
    os.makedirs(run_dir, exist_ok=True)
    rec_dir = os.path.join(run_dir, "records")
    shutil.rmtree(rec_dir, ignore_errors=True)
    run_cpio = make_run_cpio(run_dir, a.scenario, a.kestrel, stamp, a.env, a.file)
    # QEMU takes one -initrd: the big cached archive followed by this run's archive.
    initrd = os.path.join(run_dir, "initrd.cpio")
    with open(initrd, "wb") as out:
        for part in (host_cpio, run_cpio):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    console = os.path.join(run_dir, "console.log")
    raw = os.path.join(run_dir, "results.raw")
    for p in (console, raw):
        if os.path.exists(p):
            os.remove(p)
    hb_sock = os.path.join(run_dir, "heartbeat.sock")
    if os.path.exists(hb_sock):
        os.remove(hb_sock)
    # Interactive: the test host's console is this terminal (Ctrl-A X quits QEMU).
    console_out = "mon:stdio" if a.interactive else "file:" + console
    if a.arch == "arm64":
        qemu = ["qemu-system-aarch64", "-accel", "tcg",
                "-M", "virt,virtualization=on,gic-version=3",
                # pauth-impdef: the architected pointer-auth algorithm costs 3x under TCG.
                "-cpu", "max,pauth-impdef=on", "-smp", str(a.smp), "-m", a.mem,
                "-nodefaults", "-nic", "none", "-no-reboot", "-display", "none",
                "-kernel", kernel, "-initrd", initrd, "-append", HOST_CMDLINE_ARM64,
                "-serial", console_out,
                # virt has a single PL011 (the console): results and heartbeat travel on
                # virtio serial ports 1 and 2 (/dev/vport0p1, /dev/vport0p2 in the host).
                "-device", "virtio-serial-device,id=vser",
                "-chardev", "file,id=rigout,path=" + raw,
                "-device", "virtserialport,bus=vser.0,nr=1,chardev=rigout,name=kestrel.results",
                "-chardev", "socket,id=righb,path=%s,server=on,wait=off" % hb_sock,
                "-device", "virtserialport,bus=vser.0,nr=2,chardev=righb,name=kestrel.heartbeat"]
    else:
        # KESTREL_RIG_CPU: another -cpu model (bench/run.sh --host-cpu sets it; e2e tests do not).
        cpu = os.environ.get("KESTREL_RIG_CPU") or "max"
        qemu = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", cpu, "-smp", str(a.smp),
                "-m", a.mem, "-nodefaults", "-nic", "none", "-no-reboot", "-display", "none",
                "-kernel", kernel, "-initrd", initrd, "-append", HOST_CMDLINE,
                "-serial", console_out, "-serial", "file:" + raw,
                "-serial", "unix:%s,server=on,wait=off" % hb_sock]
    for i, drive in enumerate(a.drive):
        # cache=unsafe: the file is a per-run copy, and the test host's flushes would
        # otherwise each cost a host fsync. (-M virt has a PCI host too.)
        qemu += ["-drive", "file=%s,format=raw,if=none,id=drive%d,cache=unsafe" % (drive, i),
                 "-device", "virtio-blk-pci,drive=drive%d" % i]
    log("test host: %s, -cpu %s; run dir %s" % (kpkg, qemu[qemu.index("-cpu") + 1], run_dir))
    t0 = time.monotonic()
    stdin = None if a.interactive else subprocess.DEVNULL
    proc = subprocess.Popen(qemu, stdin=stdin)
    threading.Thread(target=heartbeat, args=(hb_sock, proc), daemon=True).start()
    timed_out = False
    try:
        proc.wait(timeout=None if a.interactive else a.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    wall = time.monotonic() - t0
    os.remove(initrd)  # 150 MB copy; rebuilt each run
    os.remove(run_cpio)
    summary = parse_results(raw, rec_dir)
    summary.update({"timed_out": timed_out, "qemu_status": proc.returncode,
                    "wall": round(wall, 3), "run_dir": run_dir})
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    for name, r in summary["records"].items():
        log("record %-24s status %-4s %6.2fs" % (name, r["status"], r["time"] or 0))
    if timed_out:
        log("TIMEOUT after %ds: test host killed (see %s)" % (a.timeout, console))
    elif not summary["done"]:
        log("test host ended before the scenario finished (see %s)" % console)
    else:
        log("scenario exit %s; host wall time %.1fs" % (summary["scenario_exit"], wall))
    print(run_dir)
    return 0 if summary["done"] else 3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="boot the test host and run a scenario in it")
    r.add_argument("--scenario", required=True, help="shell script run inside the test host")
    r.add_argument("--kestrel", help="kestrel binary to copy in as /usr/local/bin/kestrel")
    r.add_argument("--stamp", help="stamp binary (default: build tests/e2e/stamp.c)")
    r.add_argument("--timeout", type=int, default=300, help="seconds before the host is killed")
    r.add_argument("--mem", default="3G", help="test host memory")
    # One vCPU: measured faster than two here (MTTCG's cross-vCPU TLB flushes on every
    # nested world switch cost more than the parallelism gains), and it leaves a core free.
    r.add_argument("--smp", type=int, default=1, help="test host vCPUs")
    r.add_argument("--out", help="run directory (default guest-images/out/runs/<time>)")
    r.add_argument("--file", action="append", default=[], metavar="SRC:DEST",
                   help="copy SRC into the test host at DEST (default /files/NAME)")
    r.add_argument("--drive", action="append", default=[], metavar="FILE",
                   help="attach FILE as a raw virtio-blk disk of the test host (vda, vdb, ...)")
    r.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="variable for the scenario (in /etc/rig.env)")
    r.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64",
                   help="test host architecture (arm64: qemu-system-aarch64 -M virt, TCG)")
    r.add_argument("--interactive", action="store_true",
                   help="attach the test host console to this terminal")
    a = ap.parse_args()
    return cmd_run(a)


if __name__ == "__main__":
    sys.exit(main())
