#!/usr/bin/env python3
"""Unit tests of bench/summarize.py and bench/records.py on small fixtures (meson test
bench-summarize, suite unit): medians, min-max, ratios and their direction, the Markdown
table, the chart's data, the CSV round trip and the parsing of a bench script's records."""
import csv
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import records  # noqa: E402
import summarize  # noqa: E402

FIXTURE = os.path.join(HERE, "testdata", "samples.csv")


class Tmp(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-test.")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path


class Summary(unittest.TestCase):
    def setUp(self):
        self.summary = {(m["group"], m["metric"]): m
                        for m in summarize.summarise(summarize.read_csv(FIXTURE))}

    def test_order_is_first_seen(self):
        self.assertEqual([k[1] for k in self.summary][:3],
                         ["first KVM_RUN", "launch -> init, quiet", "seq read"])

    def test_median_min_max(self):
        m = self.summary[("boot", "first KVM_RUN")]
        self.assertEqual((m["kestrel"]["median"], m["kestrel"]["min"], m["kestrel"]["max"]), (450, 400, 500))
        self.assertEqual((m["qemu"]["median"], m["qemu"]["min"], m["qemu"]["max"]), (1500, 1000, 2000))
        # An even count: the mean of the middle two.
        self.assertEqual(self.summary[("blk", "seq read")]["qemu"]["median"], 150)

    def test_missing_run_is_left_out_but_counted(self):
        k = self.summary[("boot", "launch -> init, quiet")]["kestrel"]
        self.assertEqual((k["n"], k["runs"], k["median"], k["min"], k["max"]), (3, 4, 12, 10, 16))

    def test_ratio_and_direction(self):
        cases = {("boot", "first KVM_RUN"): (0.3, "better"),          # lower is better, lower
                 ("boot", "launch -> init, quiet"): (1.2, "worse"),   # lower is better, higher
                 ("blk", "seq read"): (200 / 150, "better"),          # higher is better, higher
                 ("blk", "rand read"): (0.8, "worse"),                # higher is better, lower
                 ("blk", "same"): (1.0, "equal")}
        for key, (ratio, verdict) in cases.items():
            self.assertAlmostEqual(self.summary[key]["ratio"], ratio, msg=key)
            self.assertEqual(self.summary[key]["verdict"], verdict, msg=key)

    def test_no_ratio_without_both_medians(self):
        for key in (("net", "vhost worker CPU"), ("net", "tap TCP")):  # QEMU 0; kestrel none
            self.assertIsNone(self.summary[key]["ratio"], key)
            self.assertEqual(self.summary[key]["verdict"], "n/a")

    def test_markdown(self):
        md = summarize.markdown(list(self.summary.values()), "fixture")
        with open(os.path.join(HERE, "testdata", "expected.md")) as f:
            self.assertEqual(md, f.read())
        self.assertIn("| first KVM_RUN | ms | lower | 450 | 400–500 | 1500 | 1000–2000 | 3/3, 3/3 | 0.30 | better |", md)
        self.assertIn("| tap TCP | MB/s | higher | n/a | n/a | 20.2 | 20.2–20.2 | 0/1, 1/1 | n/a | n/a |", md)

    def test_fmt(self):
        self.assertEqual([summarize.fmt(x) for x in (None, 2612.4, 17.58, 0.194)],
                         ["n/a", "2612", "17.6", "0.19"])


class Files(Tmp):
    def test_csv_round_trip(self):
        s = summarize.Samples()
        s.add("g", "m, with a comma", "s", "lower", "kestrel", [1.5, None, 2.25])
        s.add("g", "m, with a comma", "s", "lower", "qemu", [3.0])
        path = os.path.join(self.tmp, "s.csv")
        s.write(path)
        rows = summarize.read_csv(path)
        self.assertEqual([(r["vmm"], r["run"], r["value"]) for r in rows],
                         [("kestrel", 1, 1.5), ("kestrel", 2, None), ("kestrel", 3, 2.25), ("qemu", 1, 3.0)])
        self.assertEqual(rows[0]["metric"], "m, with a comma")

    def test_bad_samples_are_refused(self):
        header = ",".join(summarize.FIELDS) + "\n"
        for text in ("group,metric,vmm,run,value\n",                     # wrong header
                     header + "g,m,s,kestrel,1,1.0,sideways\n",          # no direction
                     header + "g,m,s,firecracker,1,1.0,lower\n",         # unknown VMM
                     header + "g,m,s,kestrel,1,fast,lower\n"):           # not a number
            with self.assertRaises(ValueError, msg=text):
                summarize.read_csv(self.write("bad.csv", text))
        mixed = header + "g,m,s,kestrel,1,1,lower\ng,m,ms,qemu,1,1,lower\n"
        with self.assertRaises(ValueError):
            summarize.summarise(summarize.read_csv(self.write("mixed.csv", mixed)))
        with self.assertRaises(ValueError):
            summarize.Samples().add("g", "m", "s", "faster", "kestrel", [1])

    def test_chart_data(self):
        summary = summarize.summarise(summarize.read_csv(FIXTURE))
        summarize.chart(summary, self.tmp, os.path.join(self.tmp, "x.png"))
        with open(os.path.join(self.tmp, "boot.dat")) as f:
            rows = [line.split("#")[0].split() for line in f if not line.startswith("#")]
        # Everything divided by QEMU's median: kestrel 450 (400-500), QEMU 1500 (1000-2000).
        for got, want in zip(rows[0], [0.3, 400 / 1500, 500 / 1500, 1, 1000 / 1500, 2000 / 1500], strict=True):
            self.assertAlmostEqual(float(got), want, places=5)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "net.dat")))  # no ratio there
        with open(os.path.join(self.tmp, "bench.gp")) as f:
            gp = f.read()
        self.assertIn('"first KVM_RUN\\nms, \u2193 better\\n0.30x" 0', gp)

    @unittest.skipUnless(shutil.which("gnuplot"), "no gnuplot (tests/install-deps.sh gnuplot-nox)")
    def test_render_png(self):
        out = os.path.join(self.tmp, "out")
        self.assertEqual(summarize.main(["render", FIXTURE, "--out", out]), 0)
        with open(os.path.join(out, "bench.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with open(os.path.join(out, "bench.csv")) as f, open(FIXTURE) as g:
            self.assertEqual(list(csv.reader(f))[1:], list(csv.reader(g))[1:])


class Records(Tmp):
    def test_blk(self):
        def fio(bw, iops, p99_ns):
            side = {"io_bytes": 4096, "bw_bytes": bw, "iops": iops,
                    "clat_ns": {"percentile": {"50.000000": 1000, "99.000000": p99_ns}}}
            jobs = [{"jobname": name, "error": 0, "read": side, "write": side}
                    for name in ("seq-read", "rand-read-qd1", "rand-read-qd32", "seq-write",
                                 "rand-write-qd1", "rand-write-qd32")]
            return json.dumps({"fio version": "fio-3.33", "jobs": jobs}, indent=2)

        for name, text in (("kestrel-1", fio(200 * 1048576, 3000, 250000)), ("qemu-1", fio(100 * 1048576, 1000, 500000)),
                           ("kestrel-2", None), ("qemu-2", fio(120 * 1048576, 1500, 400000))):
            out = "boot noise\r\n"
            if text:  # a kernel line inside the JSON, as a serial console may show it
                lines = text.splitlines()
                out += "FIO-JSON-BEGIN\r\n" + "\r\n".join(lines[:5] + ["[   12.5] virtio_blk: noise"] + lines[5:])
                out += "\r\nFIO-JSON-END\r\n"
            self.write("records/%s/stdout" % name, out)
        csv_path = os.path.join(self.tmp, "blk.csv")
        self.assertEqual(records.main(["blk", self.tmp, "--runs", "2", "--csv", csv_path]), 0)
        got = {(r["metric"], r["vmm"], r["run"]): r["value"] for r in summarize.read_csv(csv_path)}
        self.assertEqual(got[("seq read, 1 MiB, QD1", "kestrel", 1)], 200)
        self.assertEqual(got[("4 KiB rand write, QD32", "qemu", 1)], 1000)
        self.assertEqual(got[("4 KiB rand read, QD1, p99 latency", "kestrel", 1)], 250)
        self.assertIsNone(got[("4 KiB rand read, QD1", "kestrel", 2)])
        self.assertEqual(got[("4 KiB rand read, QD1", "qemu", 2)], 1500)

    def test_boot(self):
        self.write("records/strace-log-kestrel-1/stdout",
                   "10 100.000000 execve(\"/usr/local/bin/kestrel\") = 0\n"
                   "10 100.250000 ioctl(3, KVM_CREATE_VM, 0) = 4\n"
                   "11 100.500000 ioctl(7, KVM_RUN, 0) = 0\n"
                   "11 100.900000 ioctl(7, KVM_RUN, 0) = 0\n")
        self.write("records/stamp-kestrel-1/stdout",
                   "0.5 booting\n12.25 KESTREL-GUEST-INIT-OK\n12.26 KESTREL-GUEST-UPTIME 7.45\n")
        self.write("records/mem-kestrel-1/stdout",
                   "guest_ram_rss_kib 102400\nguest_ram_mappings 1\nother_rss_kib 2048\n"
                   "VmHWM:\t  108544 kB\nVmRSS:\t  104448 kB\nThreads:\t4\nmap 1024 8192 rw-p 0-1 [heap]\n")
        csv_path = os.path.join(self.tmp, "boot.csv")
        records.main(["boot", self.tmp, "--runs", "1", "--csv", csv_path])
        got = {(r["metric"], r["vmm"]): r["value"] for r in summarize.read_csv(csv_path)}
        self.assertAlmostEqual(got[("execve -> first KVM_RUN", "kestrel")], 500)
        self.assertEqual(got[("launch -> KESTREL-GUEST-INIT-OK", "kestrel")], 12.25)
        self.assertIsNone(got[("execve -> first KVM_RUN", "qemu")])
        self.assertEqual(got[("guest uptime at KESTREL-GUEST-INIT-OK", "kestrel")], 7.45)
        self.assertEqual(got[("VMM RSS outside guest RAM", "kestrel")], 2.0)
        self.assertEqual(got[("VMM peak RSS outside guest RAM", "kestrel")], 6.0)
        self.assertIsNone(got[("VMM RSS outside guest RAM", "qemu")])
        self.assertNotIn(("unpack guest: first KVM_RUN", "kestrel"), got, "no kguest records")

    def test_startup(self):
        for name, t_run in (("kestrel", "100.025"), ("kguest", "100.015"), ("qemu", "100.100")):
            self.write("records/strace-log-%s-1/stdout" % name,
                       "10 100.000000 execve(\"/x\") = 0\n11 %s000 ioctl(7, KVM_RUN, 0) = 0\n" % t_run)
        csv_path = os.path.join(self.tmp, "startup.csv")
        self.assertEqual(records.main(["startup", self.tmp, "--runs", "1", "--csv", csv_path]), 0)
        got = {(r["metric"], r["vmm"]): r["value"] for r in summarize.read_csv(csv_path)}
        self.assertEqual({r["group"] for r in summarize.read_csv(csv_path)}, {"startup"})
        self.assertAlmostEqual(got[("machine's KVM: execve -> first KVM_RUN", "kestrel")], 25)
        self.assertAlmostEqual(got[("machine's KVM, unpack guest: first KVM_RUN", "kestrel")], 15)
        self.assertAlmostEqual(got[("machine's KVM: execve -> first KVM_RUN", "qemu")], 100)

    def test_net_repeated_phases(self):
        mib64 = 64 * 1048576

        def recv(mbs):
            return "netbench: recv %d bytes in 0.5 s = %.2f MB/s\n" % (mib64, mbs)

        def cpu(vmm, vhost):
            return "netbench: cpu pid=9 proc=1 vmm=%d vcpu=1 vhost=%d\n" % (vmm, vhost)

        def udp(way, rate):
            return "netbench: %s 9 packets in 3.000 s = %d pkt/s (0 errors)\n" % (way, rate)

        def rr(rate):
            return "netbench: rr 10 round trips in 3.001 s = %d rt/s\n" % rate

        # kestrel-vhost-1: every phase three times (bench_net.sh's REPS); the figure is the
        # median, the CPU per pair of TCP transfers, the CPU per GiB over all six.
        self.write("records/kestrel-vhost-1/stdout",
                   recv(90) + recv(130) + recv(120) + udp("udprecv", 20000) + udp("udprecv", 8000)
                   + udp("udprecv", 15000) + udp("udpsend", 3000) + udp("udpsend", 2000) + udp("udpsend", 2500))
        self.write("records/kestrel-vhost-1-host/stdout",
                   cpu(10, 200) + cpu(0, 220) + cpu(20, 180) + recv(50) + cpu(0, 400) + recv(60)
                   + cpu(10, 420) + recv(40) + cpu(20, 380) + udp("udpsend", 40000) + udp("udpsend", 30000)
                   + udp("udpsend", 45000) + udp("udprecv", 1900) + udp("udprecv", 2100) + udp("udprecv", 1000)
                   + rr(900) + rr(1100) + rr(700))
        # qemu-vhost-1: one transfer each way (an older run, or --reps 1)
        self.write("records/qemu-vhost-1/stdout", recv(100))
        self.write("records/qemu-vhost-1-host/stdout", cpu(5, 100) + recv(45) + cpu(5, 300))
        # kestrel-tap-1: a transfer without its CPU line gives no CPU figures
        self.write("records/kestrel-tap-1/stdout", recv(150))
        self.write("records/kestrel-tap-1-host/stdout", cpu(100, 0) + recv(170))
        csv_path = os.path.join(self.tmp, "net.csv")
        self.assertEqual(records.main(["net", self.tmp, "--runs", "1", "--csv", csv_path]), 0)
        got = {(r["metric"], r["vmm"]): r["value"] for r in summarize.read_csv(csv_path)}
        self.assertEqual(got[("vhost TCP host->guest", "kestrel")], 120)
        self.assertEqual(got[("vhost TCP guest->host", "kestrel")], 50)
        self.assertEqual(got[("vhost UDP64 host->guest", "kestrel")], 15000)
        self.assertEqual(got[("vhost UDP64 host sent", "kestrel")], 40000)
        self.assertEqual(got[("vhost UDP64 guest->host", "kestrel")], 1900)
        self.assertEqual(got[("vhost UDP64 guest sent", "kestrel")], 2500)
        self.assertEqual(got[("vhost TCP64 request/response", "kestrel")], 900)
        self.assertEqual(got[("vhost TCP host->guest", "qemu")], 100)
        self.assertEqual(got[("vhost VMM CPU, 2 TCP transfers", "kestrel")], 20)
        self.assertEqual(got[("vhost vhost worker CPU, 2 TCP transfers", "kestrel")], 600)
        self.assertEqual(got[("vhost vhost worker CPU, 2 TCP transfers", "qemu")], 400)
        self.assertAlmostEqual(got[("vhost VMM+vhost CPU per GiB moved", "kestrel")], 1860 / 0.375)
        self.assertEqual(got[("tap TCP guest->host", "kestrel")], 170)
        self.assertIsNone(got[("tap VMM CPU, 2 TCP transfers", "kestrel")])
        self.assertIsNone(got[("tap TCP host->guest", "qemu")])


if __name__ == "__main__":
    unittest.main(verbosity=2)
