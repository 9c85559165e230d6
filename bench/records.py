#!/usr/bin/env python3
"""Reads the records of one tests/e2e/bench_*.sh run (RUN_DIR/records/NAME/stdout, and the
test host's console.log), prints that script's table and, with --csv, writes every sample
(bench/summarize.py's CSV) for bench/run.sh.

  records.py boot|startup|blk|net|debian RUN_DIR --runs N [--csv FILE]
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import Samples, median  # noqa: E402


class Run:
    def __init__(self, run_dir):
        self.dir = run_dir

    def read(self, name, what="stdout"):
        """A record's file as text ("" when missing), without the serial console's \\r."""
        try:
            with open(os.path.join(self.dir, "records", name, what), "rb") as f:
                return f.read().decode("latin-1").replace("\r", "")
        except OSError:
            return ""

    def console(self):
        try:
            with open(os.path.join(self.dir, "console.log"), "rb") as f:
                return f.read().decode("latin-1").replace("\r", "")
        except OSError:
            return ""


def num(text, pattern):
    """The first group of the first match of pattern (multi-line) as a float, or None."""
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else None


# ---- bench_boot.sh: records strace-log-VMM-I (strace -ttt) and stamp-VMM-I (stamp) ----

def first_kvm_run(run, vmm, i):
    """ms from execve to the first KVM_RUN, from strace -ttt lines 'PID TIME call'."""
    t_exec = t_run = None
    for line in run.read("strace-log-%s-%d" % (vmm, i)).splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        if " execve(" in " " + parts[2] and t_exec is None:
            t_exec = float(parts[1])
        elif "KVM_RUN" in parts[2] and t_run is None:
            t_run = float(parts[1])
    return (t_run - t_exec) * 1000 if t_exec is not None and t_run is not None else None


def init_line(run, vmm, i):
    """s from launch to KESTREL-GUEST-INIT-OK, from stamp's 'SECONDS line' output."""
    return num(run.read("stamp-%s-%d" % (vmm, i)), r"^([0-9.]+) .*KESTREL-GUEST-INIT-OK")


def guest_uptime(run, vmm, i):
    """The guest's own uptime (s) printed right after KESTREL-GUEST-INIT-OK."""
    return num(run.read("stamp-%s-%d" % (vmm, i)), r"KESTREL-GUEST-UPTIME ([0-9.]+)")


def mem_field(key, scale=1.0 / 1024):
    """A number (KiB, shown in MiB) from the record mem-VMM-I, bench_boot.sh's smaps summary."""
    def get(run, vmm, i):
        v = num(run.read("mem-%s-%d" % (vmm, i)), r"^%s:?\s+([0-9]+)" % key)
        return None if v is None else v * scale
    return get


def mem_peak(run, vmm, i):
    """MiB: VmHWM minus guest RAM's Rss, a lower bound of the peak RSS outside guest RAM, or the
    RSS outside guest RAM now when bigger (VmHWM lags: the kernel syncs each thread's RSS
    counters lazily, while smaps counts pages exactly)."""
    hwm, guest = mem_field("VmHWM")(run, vmm, i), mem_field("guest_ram_rss_kib")(run, vmm, i)
    other = mem_field("other_rss_kib")(run, vmm, i)
    return None if None in (hwm, guest, other) else max(hwm - guest, other)


def vmm_rows(run, a, samples, group, rows):
    """Samples and the printed table of rows (label, unit, fn, format, kestrel's record
    name): the kestrel column's records are "kestrel" (the defaults) or a variant such as
    "kguest" (--kernel-unpack guest); the QEMU column is the same QEMU runs either way."""
    table = []
    for label, unit, fn, f, kvmm in rows:
        if kvmm != "kestrel" and not (run.read("stamp-%s-1" % kvmm) or
                                      run.read("strace-log-%s-1" % kvmm)):
            continue  # the script ran no such variant (arm64, --image vmlinux)
        cells, meds = [], []
        for vmm in ("kestrel", "qemu"):
            vals = [fn(run, kvmm if vmm == "kestrel" else vmm, i) for i in range(1, a.runs + 1)]
            samples.add(group, label, unit, "lower", vmm, vals)
            print("#   %-7s %-50s runs: %s" % (vmm, label, ", ".join("n/a" if s is None else f % s for s in vals)))
            m, n = median(vals), sum(v is not None for v in vals)
            meds.append(m)
            cells.append(("n/a" if m is None else (f % m) + " " + unit) + ("" if n in (0, a.runs) else " (%d/%d)" % (n, a.runs)))
        ratio = "%.2f" % (meds[0] / meds[1]) if None not in meds and meds[1] else "n/a"
        table.append("%-52s %14s %14s %9s" % (label, cells[0], cells[1], ratio))
    print("%-52s %14s %14s %9s" % ("median of %d runs" % a.runs, "kestrel", "qemu", "kestrel/qemu"))
    print("\n".join(table))


def boot(run, a, samples):
    vmm_rows(run, a, samples, "boot", [
        ("execve -> first KVM_RUN", "ms", first_kvm_run, "%.1f", "kestrel"),
        ("launch -> KESTREL-GUEST-INIT-OK", "s", init_line, "%.3f", "kestrel"),
        ("guest uptime at KESTREL-GUEST-INIT-OK", "s", guest_uptime, "%.2f", "kestrel"),
        ("VMM RSS outside guest RAM", "MiB", mem_field("other_rss_kib"), "%.2f", "kestrel"),
        ("VMM peak RSS outside guest RAM", "MiB", mem_peak, "%.2f", "kestrel"),
        ("unpack guest: first KVM_RUN", "ms", first_kvm_run, "%.1f", "kguest"),
        ("unpack guest: launch -> init", "s", init_line, "%.3f", "kguest"),
        ("unpack guest: uptime at init", "s", guest_uptime, "%.2f", "kguest")])


# ---- bench_startup.sh: records strace-log-VMM-I, on the machine's own /dev/kvm ----

def startup(run, a, samples):
    vmm_rows(run, a, samples, "startup", [
        ("machine's KVM: execve -> first KVM_RUN", "ms", first_kvm_run, "%.1f", "kestrel"),
        ("machine's KVM, unpack guest: first KVM_RUN", "ms", first_kvm_run, "%.1f", "kguest")])


# ---- bench_blk.sh: records kestrel-I and qemu-I, fio's JSON in the guest's output ----

BLK_ROWS = [  # CSV metric, unit, better, fio job, direction, what
    ("seq read, 1 MiB, QD1", "MiB/s", "higher", "seq-read", "read", "mib"),
    ("seq write, 1 MiB, QD1", "MiB/s", "higher", "seq-write", "write", "mib"),
    ("4 KiB rand read, QD1", "IOPS", "higher", "rand-read-qd1", "read", "iops"),
    ("4 KiB rand write, QD1", "IOPS", "higher", "rand-write-qd1", "write", "iops"),
    ("4 KiB rand read, QD32", "IOPS", "higher", "rand-read-qd32", "read", "iops"),
    ("4 KiB rand write, QD32", "IOPS", "higher", "rand-write-qd32", "write", "iops"),
    ("4 KiB rand read, QD1, p99 latency", "us", "lower", "rand-read-qd1", "read", "p99"),
    ("4 KiB rand write, QD1, p99 latency", "us", "lower", "rand-write-qd1", "write", "p99"),
]


def fio_jobs(text):
    """{job name: job dict} from the fio JSON between FIO-JSON-BEGIN and FIO-JSON-END in a
    guest's console output ({} when missing or unreadable). Lines outside the JSON that a
    kernel printed in between (they start with '[') are dropped before a second try."""
    m = re.search(r"^FIO-JSON-BEGIN\n(.*?)^FIO-JSON-END$", text, re.M | re.S)
    if not m:
        return {}
    body = m.group(1)
    for attempt in (body, "\n".join(l for l in body.splitlines() if not re.match(r"\[\s*\d+\.\d+\]", l))):
        try:
            data = json.loads(attempt[attempt.find("{"):])
            break
        except ValueError:
            data = None
    if not isinstance(data, dict):
        return {}
    return {j.get("jobname"): j for j in data.get("jobs", []) if isinstance(j, dict)}


def fio_value(jobs, job, rw, what):
    """One figure of one fio job, or None when the job is missing, failed or did no I/O."""
    j = jobs.get(job)
    try:
        if j is None or j.get("error", 0) != 0 or j[rw]["io_bytes"] <= 0:
            return None
        if what == "mib":
            return j[rw]["bw_bytes"] / 1048576.0
        if what == "iops":
            return float(j[rw]["iops"])
        return j[rw]["clat_ns"]["percentile"]["99.000000"] / 1000.0
    except (KeyError, TypeError, ValueError):
        return None


def blk(run, a, samples):
    def fmt(x):
        return "n/a" if x is None else ("%.1f" % x if x < 100 else "%.0f" % x)

    jobs = {v: [fio_jobs(run.read("%s-%d" % (v, i))) for i in range(1, a.runs + 1)] for v in ("kestrel", "qemu")}
    print("%-42s %12s %12s %16s" % ("median of %d rounds" % a.runs, "kestrel", "QEMU", "kestrel/QEMU"))
    for label, unit, better, job, rw, what in BLK_ROWS:
        k, q = ([fio_value(j, job, rw, what) for j in jobs[v]] for v in ("kestrel", "qemu"))
        samples.add("blk", label, unit, better, "kestrel", k)
        samples.add("blk", label, unit, better, "qemu", q)
        mk, mq = median(k), median(q)
        ratio = "n/a" if mk is None or not mq else "%.2f" % (mk / mq)
        print("%-42s %12s %12s %16s" % ("%s (%s)" % (label, unit), fmt(mk), fmt(mq), ratio))
        print("%-42s %12s %12s" % ("  (rounds)", "/".join(fmt(x) for x in k), "/".join(fmt(x) for x in q)))
    print("(fio, direct=1, libaio; p99 = 99th percentile of the completion latency)")


# ---- bench_net.sh: records CFG-I (the guest) and CFG-I-host (netbench on the test host) ----

NET_COLS = [  # key, table label, CSV metric, unit, better, format
    ("tcp_in", "TCP host->guest MB/s", "TCP host->guest", "MB/s", "higher", "%.2f"),
    ("tcp_out", "TCP guest->host MB/s", "TCP guest->host", "MB/s", "higher", "%.2f"),
    ("udp_in", "UDP64 host->guest pkt/s", "UDP64 host->guest", "pkt/s", "higher", "%.0f"),
    ("udp_out", "UDP64 guest->host pkt/s", "UDP64 guest->host", "pkt/s", "higher", "%.0f"),
    ("udp_in_sent", "(host sent pkt/s)", "UDP64 host sent", "pkt/s", "higher", "%.0f"),
    ("udp_out_sent", "(guest sent pkt/s)", "UDP64 guest sent", "pkt/s", "higher", "%.0f"),
    ("rr", "TCP64 req/resp rt/s", "TCP64 request/response", "rt/s", "higher", "%.0f"),
    ("cpu_gib", "VMM+vhost CPU ms/GiB", "VMM+vhost CPU per GiB moved", "ms/GiB", "lower", "%.0f"),
    ("cpu", "VMM CPU ms, 2 TCP xfers", "VMM CPU, 2 TCP transfers", "ms", "lower", "%.0f"),
    ("vhost", "vhost worker CPU ms", "vhost worker CPU, 2 TCP transfers", "ms", "lower", "%.0f"),
]


def net_rate(text, what):
    """The median rate of every "netbench: WHAT N UNITS in S s = RATE" line (bench_net.sh
    runs each phase REPS times), or None when there is none."""
    pattern = r"^netbench: %s \d+ [a-z ]+ in \S+ s = (\S+) " % what
    return median([float(x) for x in re.findall(pattern, text, re.M)])


def net_sample(run, name):
    g, h = run.read(name), run.read(name + "-host")
    cpu = [max(int(x), 0) for x in re.findall(r"^netbench: cpu .* vmm=(-?\d+)", h, re.M)]
    vh = [int(x) for x in re.findall(r"^netbench: cpu .* vhost=(\d+)", h, re.M)]
    moved = [int(x) for t in (g, h) for x in re.findall(r"^netbench: recv (\d+) bytes in", t, re.M)]
    gib = sum(moved) / 2.0 ** 30
    # A VM's CPU figures are per pair of TCP transfers (one each way).
    whole = len(cpu) == len(vh) == len(moved) and len(cpu) >= 2 and len(cpu) % 2 == 0
    pairs = len(cpu) / 2.0
    return {  # each rate as the receiver saw it
        "tcp_in": net_rate(g, "recv"),
        "tcp_out": net_rate(h, "recv"),
        "udp_in": net_rate(g, "udprecv"),
        "udp_out": net_rate(h, "udprecv"),
        "udp_in_sent": net_rate(h, "udpsend"),
        "udp_out_sent": net_rate(g, "udpsend"),
        "rr": net_rate(h, "rr"),
        # the TCP transfers' VMM (non-vCPU) plus vhost-worker CPU over the bytes they moved
        "cpu_gib": (sum(cpu) + sum(vh)) / gib if whole and gib else None,
        "cpu": sum(cpu) / pairs if whole else None,
        "vhost": sum(vh) / pairs if whole else None,
    }


def net(run, a, samples):
    runs = range(1, a.runs + 1)
    cfgs = {c: [net_sample(run, "%s-%d" % (c, i)) for i in runs]
            for c in ("kestrel-tap", "kestrel-vhost", "qemu-tap", "qemu-vhost")}
    for mode in ("tap", "vhost"):
        for key, _, metric, unit, better, _ in NET_COLS:
            for vmm in ("kestrel", "qemu"):
                samples.add("net", "%s %s" % (mode, metric), unit, better, vmm,
                            [s[key] for s in cfgs["%s-%s" % (vmm, mode)]])

    def fmt(v, f):
        return "n/a" if v is None else f % v

    def ratio(x, y):
        return "n/a" if x is None or y is None or y == 0 else "%.2f" % (x / y)

    w = 26
    print("%-*s %14s %14s %14s %14s %13s %13s" % (w, "median of %d runs" % a.runs, "kestrel tap", "QEMU tap",
                                                 "ratio k/Q", "kestrel vhost", "QEMU vhost", "ratio k/Q"))
    for key, label, _, _, _, f in NET_COLS:
        kt, qt, kv, qv = (median([s[key] for s in cfgs[c]])
                          for c in ("kestrel-tap", "qemu-tap", "kestrel-vhost", "qemu-vhost"))
        print("%-*s %14s %14s %14s %14s %13s %13s" % (w, label, fmt(kt, f), fmt(qt, f), ratio(kt, qt),
                                                     fmt(kv, f), fmt(qv, f), ratio(kv, qv)))
    print("(rates as the receiver measured them, each the median of a VM's repeats; VMM CPU =")
    print(" scheduler CPU time of every VMM thread but the vCPUs; vhost worker = the kernel's")
    print(" vhost-PID thread; both per pair of TCP transfers, one each way)")


# ---- bench_debian.sh: the guest's "KDEB: TIMES" line, the host's "H: BENCH NAME" line ----

DEB_KEYS = [  # key, CSV metric (after the transport), source
    ("run-init", "kernel -> /init (guest clock)"),
    ("systemd", "kernel -> systemd (guest clock)"),
    ("multi-user", "kernel -> multi-user.target (guest clock)"),
    ("mu-wall", "launch -> multi-user.target"),
    ("exit-wall", "launch -> exit after poweroff"),
    ("thp-mib", None),  # the test host's AnonHugePages: in the table, not a kestrel figure
]
DEB_PAIRS = [("pci", "kestrel-pci", "qemu-q35"), ("mmio", "kestrel-mmio", "qemu-microvm")]


def deb_values(run, name, console):
    """KEY=value pairs of record NAME's KDEB: TIMES line and of the host's H: BENCH line."""
    vals = {}
    lines = re.findall(r"KDEB: TIMES (.*)", run.read(name)) + re.findall(r"^H: BENCH %s (.*)" % re.escape(name), console, re.M)
    for line in lines:
        for kv in line.split():
            k, _, v = kv.partition("=")
            try:
                vals[k] = float(v)
            except ValueError:
                vals[k] = None
    return vals


def debian(run, a, samples):
    console = run.console()
    rounds = range(1, a.runs + 1)
    got = {v: [deb_values(run, "%s-%d" % (v, r), console) for r in rounds]
           for _, k, q in DEB_PAIRS for v in (k, q)}
    for mode, k, q in DEB_PAIRS:
        for key, metric in DEB_KEYS:
            if metric:
                for vmm, name in (("kestrel", k), ("qemu", q)):
                    samples.add("debian", "%s %s" % (mode, metric), "s", "lower", vmm,
                                [d.get(key) for d in got[name]])

    def fmt(x):
        return "n/a" if x is None else "%.6g" % x

    print("%-14s %8s %8s %11s %14s %14s %9s %s" % ("vmm", "/init", "systemd", "multi-user", "launch-to-mu",
                                                  "launch-to-exit", "thp-MiB", "exit statuses"))
    every = []
    for _, k, q in DEB_PAIRS:
        for v in (k, q):
            row = []
            for key, _ in DEB_KEYS:
                vals = [d.get(key) for d in got[v]]
                row.append(fmt(median(vals)))
                every.append("%s %s: %s" % (v, key, " ".join("n/a" if x is None else "%.10g" % x for x in vals)))
            sts = " ".join(run.read("%s-%d" % (v, r), "status").strip() or "missing" for r in rounds)
            print("%-14s %8s %8s %11s %14s %14s %9s %s" % tuple([v] + row + [sts]))
    print("# every run:")
    for line in every:
        print("#   " + line)


GROUPS = {"boot": boot, "startup": startup, "blk": blk, "net": net, "debian": debian}


def main(argv):
    ap = argparse.ArgumentParser(description="Table and samples of one bench_*.sh run.")
    ap.add_argument("group", choices=sorted(GROUPS))
    ap.add_argument("run_dir", help="the rig's run directory (records/, console.log)")
    ap.add_argument("--runs", type=int, required=True, help="runs (rounds) per VMM")
    ap.add_argument("--csv", help="write every sample here (bench/summarize.py's format)")
    a = ap.parse_args(argv)
    samples = Samples()
    GROUPS[a.group](Run(a.run_dir), a, samples)
    if a.csv:
        samples.write(a.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
