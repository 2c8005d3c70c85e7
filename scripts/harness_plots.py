"""PNG plots for scripts/compare.py, drawn by gnuplot (Debian gnuplot-nox).

Two kinds of plot spec come from harness_benches:
  "pagealloc"  cycles per page against batch size (log x), three panels
               (alloc, free, total), one line per allocator
  "lines"      one line per allocator, y against x (faults/sec against
               tasks, throughput against signal rate, RSS against time;
               "points": False draws plain lines, for dense series)
Each plot leaves NAME.dat (the numbers) and NAME.gp (the script) next to
NAME.png, so a plot can be redrawn or read without gnuplot.
"""

import os
import shutil
import subprocess


def _quote(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_blocks(path, blocks):
    """gnuplot data file: one index block (two blank lines apart) per series."""
    with open(path, "w") as f:
        for name, pts in blocks:
            f.write(f"# {name}\n")
            for x, y in pts:
                f.write(f"{x} {y}\n")
            f.write("\n\n")


def _script_pagealloc(spec, dat, png):
    cols = spec["columns"]
    blocks, lines = [], []
    lines.append("set terminal pngcairo size 1500,500 noenhanced font ',10'")
    lines.append(f"set output {_quote(png)}")
    lines.append(f"set multiplot layout 1,3 title {_quote(spec['title'])}")
    lines.append("set logscale x 2")
    lines.append("set logscale y")
    lines.append("set xlabel 'batch (blocks)'")
    lines.append("set ylabel 'TSC cycles per block'")
    lines.append("set key top right")
    lines.append("set grid")
    for panel in ("alloc", "free", "total"):
        plot = []
        for a in cols:
            pts = spec["series"].get((panel, a), [])
            if not pts:
                continue
            plot.append(f"{_quote(dat)} index {len(blocks)} with linespoints "
                        f"title {_quote(a)}")
            blocks.append((f"{panel} {a}", pts))
        lines.append(f"set title {_quote(panel)}")
        if plot:
            lines.append("plot " + ", \\\n     ".join(plot))
    lines.append("unset multiplot")
    return blocks, lines


def _script_lines(spec, dat, png):
    blocks, lines, plot = [], [], []
    lines.append("set terminal pngcairo size 900,560 noenhanced font ',10'")
    lines.append(f"set output {_quote(png)}")
    lines.append(f"set title {_quote(spec['title'])}")
    lines.append(f"set xlabel {_quote(spec['xlabel'])}")
    lines.append(f"set ylabel {_quote(spec['ylabel'])}")
    if spec.get("logx"):
        lines.append("set logscale x 2")
    lines.append("set key outside right")
    lines.append("set grid")
    xs = sorted({x for pts in spec["series"].values() for x, _ in pts})
    if xs and all(float(x).is_integer() for x in xs) and len(xs) <= 16 and \
            spec.get("points", True):
        lines.append("set xtics (" + ", ".join(f"'{x}' {x}" for x in xs) + ")")
        if len(xs) > 1:
            pad = (xs[-1] - xs[0]) * 0.05
            lines.append(f"set xrange [{xs[0] - pad}:{xs[-1] + pad}]")
        else:
            lines.append(f"set xrange [{xs[0] - 1}:{xs[0] + 1}]")
    style = "linespoints" if spec.get("points", True) else "lines lw 2"
    for a, pts in spec["series"].items():
        if pts:
            plot.append(f"{_quote(dat)} index {len(blocks)} with {style} "
                        f"title {_quote(a)}")
            blocks.append((a, pts))
    if plot:
        lines.append("plot " + ", \\\n     ".join(plot))
    return blocks, lines


def draw(specs, outdir, say):
    """Draws every spec into outdir; returns the PNG paths written."""
    if not specs:
        return []
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        say("no plots: gnuplot is not installed (apt install gnuplot-nox; "
            "scripts/install-deps.sh bench)")
        return []
    os.makedirs(outdir, exist_ok=True)
    done = []
    for spec in specs:
        base = os.path.join(outdir, spec["name"])
        dat, gp, png = base + ".dat", base + ".gp", base + ".png"
        build = _script_pagealloc if spec["kind"] == "pagealloc" else _script_lines
        blocks, lines = build(spec, os.path.basename(dat), os.path.basename(png))
        if not blocks:
            say(f"plot {spec['name']}: no data, skipped")
            continue
        _write_blocks(dat, blocks)
        with open(gp, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run([gnuplot, os.path.basename(gp)], cwd=outdir,
                           capture_output=True, text=True, check=False)
        if r.returncode != 0 or not os.path.exists(png):
            say(f"plot {spec['name']}: gnuplot failed: {r.stderr.strip()[-300:]}")
            continue
        done.append(png)
    return done


if __name__ == "__main__":
    import sys
    print("usage: a module of scripts/compare.py, imported, not run "
          "(scripts/compare.py --help)\n")
    print(__doc__)
    sys.exit(0)
