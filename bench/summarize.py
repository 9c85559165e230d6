#!/usr/bin/env python3
"""The benchmark summariser shared by tests/e2e/bench_*.sh (through bench/records.py) and
bench/run.sh: the samples CSV, medians, min-max and kestrel/QEMU ratios, the Markdown
table and the gnuplot chart.

A sample is one measurement of one run:  group,metric,unit,vmm,run,value,better
  vmm     kestrel or qemu (a mode such as tap/vhost or pci/mmio is part of the metric)
  value   empty when the run produced no number (the VMM failed, a line was missing)
  better  higher or lower: which direction is good for kestrel

  summarize.py render CSV [CSV...] --out DIR [--title TEXT]
      DIR/bench.csv (the inputs merged), DIR/bench.md, DIR/bench.png (gnuplot), and the
      chart's data and script in DIR/chart/. Exit 1 when the CSV is bad or the chart fails.
"""
import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import textwrap

FIELDS = ["group", "metric", "unit", "vmm", "run", "value", "better"]
VMMS = ("kestrel", "qemu")
VMM_NAMES = {"kestrel": "kestrel", "qemu": "QEMU"}


class Samples:
    """Samples in the order they were added (the order of the tables and the chart)."""

    def __init__(self):
        self.rows = []

    def add(self, group, metric, unit, better, vmm, values):
        """values: one per run, run 1 first; None for a run without a number."""
        if better not in ("higher", "lower") or vmm not in VMMS:
            raise ValueError("bad sample: better=%r vmm=%r" % (better, vmm))
        for run, value in enumerate(values, 1):
            self.rows.append({"group": group, "metric": metric, "unit": unit, "vmm": vmm,
                              "run": run, "value": value, "better": better})

    def write(self, path):
        write_csv(path, self.rows)


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(dict(r, value="" if r["value"] is None else "%.10g" % r["value"]))


def read_csv(path):
    """The rows of a samples CSV; ValueError naming the line on anything malformed."""
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != FIELDS:
            raise ValueError("%s: header %s, want %s" % (path, reader.fieldnames, ",".join(FIELDS)))
        for r in reader:
            where = "%s:%d" % (path, reader.line_num)
            if r["vmm"] not in VMMS or r["better"] not in ("higher", "lower"):
                raise ValueError("%s: vmm %r, better %r" % (where, r["vmm"], r["better"]))
            try:
                r["run"] = int(r["run"])
                r["value"] = float(r["value"]) if r["value"].strip() else None
            except ValueError:
                raise ValueError("%s: run %r, value %r" % (where, r["run"], r["value"])) from None
            rows.append(r)
    return rows


def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarise(rows):
    """One dict per (group, metric), in first-seen order: unit, better, and per VMM the
    runs' values with their median, min, max; the ratio kestrel/QEMU of the medians and
    the verdict (better/worse/equal/n/a) for kestrel given the metric's direction."""
    out = {}
    for r in rows:
        key = (r["group"], r["metric"])
        m = out.setdefault(key, {"group": r["group"], "metric": r["metric"], "unit": r["unit"],
                                 "better": r["better"], "values": {v: [] for v in VMMS}})
        if (m["unit"], m["better"]) != (r["unit"], r["better"]):
            raise ValueError("%s/%s: unit or direction differs between samples" % key)
        m["values"][r["vmm"]].append(r["value"])
    for m in out.values():
        for vmm in VMMS:
            vals = m["values"][vmm]
            got = [v for v in vals if v is not None]
            m[vmm] = {"median": median(got), "min": min(got, default=None),
                      "max": max(got, default=None), "n": len(got), "runs": len(vals)}
        k, q = m["kestrel"]["median"], m["qemu"]["median"]
        m["ratio"] = k / q if k is not None and q else None
        m["verdict"] = verdict(m["ratio"], m["better"])
    return list(out.values())


def verdict(ratio, better):
    if ratio is None:
        return "n/a"
    if ratio == 1:
        return "equal"
    return "better" if (ratio > 1) == (better == "higher") else "worse"


def fmt(x):
    """A value with about three significant figures, no exponent."""
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        return "%.0f" % x
    return "%.1f" % x if abs(x) >= 10 else "%.2f" % x


def spread(s):
    return "n/a" if s["n"] == 0 else "%s–%s" % (fmt(s["min"]), fmt(s["max"]))


def markdown(summary, title=None):
    """One table per group: medians, min-max, runs with a number, ratio and verdict."""
    lines = ["# " + title, ""] if title else []
    groups = []
    for m in summary:
        if m["group"] not in groups:
            groups.append(m["group"])
    for g in groups:
        lines += ["## " + g, "",
                  "| metric | unit | better | kestrel median | kestrel min–max | QEMU median "
                  "| QEMU min–max | runs k/Q | kestrel/QEMU | kestrel is |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for m in summary:
            if m["group"] != g:
                continue
            k, q = m["kestrel"], m["qemu"]
            ratio = "n/a" if m["ratio"] is None else "%.2f" % m["ratio"]
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %d/%d, %d/%d | %s | %s |" % (
                m["metric"].replace("|", "\\|"), m["unit"], m["better"], fmt(k["median"]),
                spread(k), fmt(q["median"]), spread(q), k["n"], k["runs"], q["n"], q["runs"],
                ratio, m["verdict"]))
        lines.append("")
    return "\n".join(lines)


PANEL_H = 380     # pixels per group panel, tick labels included
METRIC_W = 120    # pixels per metric (two bars and a wrapped label)
MARGIN_W = 170    # the y axis and its label
MIN_METRICS = 3   # a panel is at least this many metrics wide


def chart(summary, outdir, png, title=None):
    """A PNG with one panel per group: per metric, kestrel's bar beside QEMU's, both
    divided by QEMU's median (so metrics of any scale share a panel and QEMU sits at 1),
    min-max as error bars; the tick label carries the unit, the direction and the ratio.
    A panel's width follows its number of metrics, so bars have one width everywhere.
    Metrics without a ratio are left out (the table shows them). Returns gnuplot's status."""
    os.makedirs(outdir, exist_ok=True)
    groups = {}
    for m in summary:
        if m["ratio"] is not None:
            groups.setdefault(m["group"], []).append(m)
    if not groups:
        print("summarize: nothing to chart (no metric has both medians)", file=sys.stderr)
        return 1
    width = MARGIN_W + METRIC_W * max([MIN_METRICS] + [len(ms) for ms in groups.values()])
    top = 30 if title else 0
    height = PANEL_H * len(groups) + top
    gp = ['set terminal pngcairo size %d,%d font "sans,9" noenhanced' % (width, height),
          "set output '%s'" % png.replace("'", "''"),
          "set multiplot%s" % (' title "%s"' % gp_str(title) if title else ""),
          "set style data histograms",
          "set style histogram errorbars gap 1 lw 1",
          "set style fill solid 0.85 border -1",
          "set yrange [0:*]",
          "set grid ytics",
          "set xtics nomirror",
          "set bmargin 6",  # the tick labels' lines
          "set key outside top right horizontal",
          'set ylabel "median / QEMU median"',
          "set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#444444'"]
    for n, (group, ms) in enumerate(groups.items()):
        dat = os.path.join(outdir, re.sub(r"[^A-Za-z0-9_.-]", "_", group) + ".dat")
        with open(dat, "w") as f:
            f.write("# %s: kestrel median min max, QEMU median min max, all / QEMU median\n" % group)
            for m in ms:
                q = m["qemu"]["median"]
                f.write(" ".join("%.6g" % (m[v][s] / q) for v in VMMS for s in ("median", "min", "max")))
                f.write("  # %s\n" % m["metric"])
        # Histogram clusters sit at x = 0, 1, ...: label each in the script, where \n wraps.
        tics = ", ".join('"%s" %d' % (gp_str(tick_label(m)).replace("\n", "\\n"), x) for x, m in enumerate(ms))
        w = (MARGIN_W + METRIC_W * max(MIN_METRICS, len(ms))) / width
        gp += ["set size %.4f,%.4f" % (w, PANEL_H / height),
               "set origin 0,%.4f" % ((len(groups) - 1 - n) * PANEL_H / height),
               "set xtics (%s)" % tics,
               'set title "%s" offset 0,-0.5' % gp_str(group),
               "plot '%s' using 1:2:3 title 'kestrel' lc rgb '#1f6fb4', \\" % dat.replace("'", "''"),
               "     '' using 4:5:6 title 'QEMU' lc rgb '#b0b0b0'"]
    gp.append("unset multiplot")
    script = os.path.join(outdir, "bench.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    if not shutil.which("gnuplot"):
        print("summarize: no gnuplot (bash tests/install-deps.sh gnuplot-nox): no %s" % png,
              file=sys.stderr)
        return 1
    return subprocess.call(["gnuplot", script])


def tick_label(m):
    """The metric wrapped to the bar pair's width, its unit and direction, the ratio."""
    arrow = "\u2191" if m["better"] == "higher" else "\u2193"
    lines = textwrap.wrap(m["metric"], 17) + ["%s, %s better" % (m["unit"], arrow), "%.2fx" % m["ratio"]]
    return "\n".join(lines)


def gp_str(s):
    """s inside a gnuplot double-quoted string."""
    return s.replace("\\", "\\\\").replace('"', '\\"')


def render(paths, out, title=None):
    rows = []
    for p in paths:
        rows += read_csv(p)
    if not rows:
        raise ValueError("no samples in %s" % " ".join(paths))
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, "bench.csv"), rows)
    summary = summarise(rows)
    with open(os.path.join(out, "bench.md"), "w") as f:
        f.write(markdown(summary, title))
    return chart(summary, os.path.join(out, "chart"), os.path.join(out, "bench.png"), title)


def main(argv):
    ap = argparse.ArgumentParser(description="Summarise kestrel/QEMU benchmark samples.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="CSV(s) -> bench.csv, bench.md, bench.png in --out")
    r.add_argument("csv", nargs="+")
    r.add_argument("--out", required=True)
    r.add_argument("--title")
    a = ap.parse_args(argv)
    try:
        status = render(a.csv, a.out, a.title)
    except (OSError, ValueError) as e:
        print("summarize: %s" % e, file=sys.stderr)
        return 1
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
