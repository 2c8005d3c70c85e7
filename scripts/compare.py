#!/usr/bin/env python3
"""The comparison harness: any set of benchmarks under any set of allocators.

    scripts/compare.py --bench pagealloc,pft,xthread,kernbench,uring,apps,sigbench,burst \\
        --alloc jemalloc,glibc,magpage-rfc2013,magpage --reps 5 \\
        --out results/DIR [--quick]

Runs are interleaved (for each repetition: for each benchmark: for each
allocator) so that drift of the machine hits every allocator alike.  Prints
mmtests-style tables (value, then the percent difference from the baseline
column, positive meaning better; the RFC's format, scripts/mmtests_table.py)
each followed by its spread over repetitions, and writes into DIR:
    tables.txt      the tables as printed
    summary.md      the same rows in Markdown: median [min..max] of the
                    values behind each cell, the best median in bold
    results.json    machine, versions, allocators and their environment,
                    options, every sample, failures, wall time per part
                    (rewritten after every run, "complete": false until the
                    end: an interrupted comparison keeps what it measured,
                    and --from-json prints its tables)
    results.csv     every sample, one per line
    raw/            each run's own output
    snapshot/       the libmagpage.so and bench_* programs that ran (copied
                    at the start, so a rebuild cannot change them mid-run)
    plots/*.png     cycles per page vs batch, faults/sec vs tasks,
                    throughput vs signal rate, RSS over time of the burst
                    benchmark (gnuplot; skipped without it)
Every benchmark's table is followed by BENCH-rss: the peak RSS of each
program it ran (/usr/bin/time %M); the apps have theirs in apps-memory.
The burst benchmark (bench_burst: a burst of page-sized values freed, then
idle) shows when memory goes back; to compare a libmagpage purge setting,
add it as a variant, e.g. --magpage-conf purge=purge_thread:1,purge_delay_ms:1000
--alloc glibc,jemalloc,mimalloc,tcmalloc,magpage,magpage-purge (a key the
library does not know makes it print an error line, so none is on by default).
Allocators: see scripts/harness_allocs.py (glibc, jemalloc, mimalloc,
tcmalloc, magpage, magpage-NAME with --magpage-conf NAME=CONF).  Missing
ones are skipped with a message.  Benchmarks: scripts/harness_benches.py.

--quick shrinks every benchmark (pagealloc to 12 batch sizes, pft to
256 MiB, xthread to 0.5 s per mode, uring to 64 MiB, apps to short runs)
and leaves out kernbench.
Exit status: 0; 1 if any run crashed, hung or failed its own checks (each
is printed as FAILED as it happens and again at the end); 2 on bad usage.
"""

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness_allocs  # noqa: E402
import harness_benches  # noqa: E402
import harness_plots  # noqa: E402
from harness_benches import BENCHES, RunFailed, Skip  # noqa: E402
from mmtests_table import (LOWER, format_markdown, format_spread, format_table,  # noqa: E402
                           mean)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def say(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run benchmarks under several allocators, interleaved, and "
                    "print mmtests-style comparison tables.")
    p.add_argument("--bench", default="pagealloc,pft",
                   help=f"comma list of {','.join(BENCHES)} (default pagealloc,pft)")
    p.add_argument("--alloc", default="jemalloc,glibc,magpage-rfc2013,magpage",
                   help="comma list of allocators (default jemalloc,glibc,"
                        "magpage-rfc2013,magpage)")
    p.add_argument("--baseline", default="jemalloc",
                   help="the column percentages are relative to (default jemalloc; "
                        "falls back to the first allocator if it is skipped)")
    p.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    p.add_argument("--bench-reps", default="", metavar="BENCH=N,...",
                   help="fewer repetitions for some benchmarks, e.g. kernbench=3 "
                        "(they take part in the first N rounds)")
    p.add_argument("--out", required=True, help="results directory (created)")
    p.add_argument("--from-json", action="store_true",
                   help="run nothing: print the tables and draw the plots again "
                        "from OUT/results.json")
    p.add_argument("--markdown", action="store_true",
                   help="with --from-json: print the Markdown summary (the "
                        "command, the machine, every table as median [min..max]) "
                        "to stdout and write nothing; scripts/docs.py puts it "
                        "into docs/results/README.md")
    p.add_argument("--quick", action="store_true",
                   help="shorter runs of everything; no kernbench")
    p.add_argument("--build", default=os.path.join(REPO, "build"),
                   help="build directory holding libmagpage.so, magpage-conf and "
                        "bench/ (default build/)")
    p.add_argument("--lib", help="libmagpage.so (default BUILD/libmagpage.so)")
    p.add_argument("--magpage-conf", action="append", default=[], metavar="NAME=CONF",
                   help="defines allocator magpage-NAME as libmagpage with "
                        "MAGPAGE_CONF=CONF (repeatable; built in: rfc2013, none, "
                        "vanilla39, linux6)")
    p.add_argument("--lib-path", action="append", default=[], metavar="NAME=PATH",
                   help="use PATH as peer NAME's library (jemalloc, mimalloc, "
                        "tcmalloc) instead of the installed one (repeatable)")
    p.add_argument("--jemalloc-conf", default=os.environ.get("MALLOC_CONF"),
                   help="MALLOC_CONF for jemalloc (default: the caller's, else unset)")
    p.add_argument("--threads", help="thread/task counts for pagealloc, pft and "
                                     "xthread (default 1..nproc)")
    p.add_argument("--pagealloc-batches", help="bench_pagealloc -b list "
                                               "(default: all, 1..16384)")
    p.add_argument("--pagealloc-args", help="extra bench_pagealloc options, "
                                            "e.g. '-s 8k' or '-m remote'")
    p.add_argument("--xthread-modes",
                   help="bench_xthread modes, a comma list of server,prodcons,"
                        "random and remote (bench_pagealloc -m remote) "
                        "(default all)")
    p.add_argument("--xthread-seconds", type=float,
                   help="bench_xthread -d, timed seconds per mode (default 2; "
                        "--quick 0.5)")
    p.add_argument("--xthread-args", help="extra bench_xthread options, e.g. '-q 256'")
    p.add_argument("--xthread-remote-batches",
                   help="bench_pagealloc -m remote -b list (default 1,64,1024)")
    p.add_argument("--pft-mem", help="bench_pft -m (default MemTotal/5; --quick 256m)")
    p.add_argument("--pft-iters", type=int, help="bench_pft -r (default 5; --quick 3)")
    p.add_argument("--pft-modes", help="threads,processes (default both; --quick threads)")
    p.add_argument("--uring-mem", help="bench_uring -m (default 512m; --quick 64m)")
    p.add_argument("--apps", help="comma list of redis,postgres,git,python,gcc,sqlite,pybytes "
                        "(default all)")
    p.add_argument("--sigbench-args", help="bench_sigbench options (default its own)")
    p.add_argument("--burst-args", help="bench_burst options (default -m 512 -i 15; "
                                        "--quick -m 128 -i 4)")
    p.add_argument("--kernbench-cache", default=os.path.join(REPO, "results", "kernbench-src"),
                   help="where linux-source is unpacked once (default results/kernbench-src)")
    a = p.parse_args(argv)
    a.bench = [b for b in a.bench.split(",") if b]
    unknown = [b for b in a.bench if b not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s) {','.join(unknown)}; known: {','.join(BENCHES)}")
    a.alloc = [x for x in a.alloc.split(",") if x]
    reps = {}
    for item in [x for x in a.bench_reps.split(",") if x]:
        name, sep, n = item.partition("=")
        if not sep or name not in BENCHES or not n.isdigit() or int(n) < 1:
            p.error(f"--bench-reps wants BENCH=N with a known benchmark, not '{item}'")
        reps[name] = int(n)
    a.bench_reps = reps
    if a.reps < 1:
        p.error("--reps must be at least 1")
    confs = {}
    for item in a.magpage_conf:
        name, sep, conf = item.partition("=")
        if not sep or not name:
            p.error(f"--magpage-conf wants NAME=CONF, not '{item}'")
        confs[name] = conf
    a.magpage_conf = confs
    paths = {}
    for item in a.lib_path:
        name, sep, path = item.partition("=")
        if not sep or name not in harness_allocs.PEERS:
            p.error(f"--lib-path wants NAME=PATH with NAME one of "
                    f"{','.join(harness_allocs.PEERS)}, not '{item}'")
        paths[name] = os.path.abspath(path)
    a.lib_path = paths
    a.threads = [int(t) for t in a.threads.split(",")] if a.threads else \
        list(range(1, len(os.sched_getaffinity(0)) + 1))
    a.pft_modes = a.pft_modes.split(",") if a.pft_modes else None
    a.xthread_modes = a.xthread_modes.split(",") if a.xthread_modes else None
    if a.xthread_seconds is not None and not 0 < a.xthread_seconds <= 600:
        p.error("--xthread-seconds takes a duration in (0, 600]")
    a.apps = a.apps.split(",") if a.apps else None
    a.build = os.path.abspath(a.build)
    a.lib = os.path.abspath(a.lib or os.path.join(a.build, "libmagpage.so"))
    return a


class Context:
    """What every benchmark needs to know (see harness_benches.Bench)."""

    def __init__(self, args, out):
        self.repo = REPO
        self.quick = args.quick
        self.build_dir = args.build
        self.bench_dir = os.path.join(args.build, "bench")
        self.threads = args.threads
        self.pagealloc_batches = args.pagealloc_batches
        self.pagealloc_args = args.pagealloc_args
        self.pft_mem = args.pft_mem
        self.pft_iters = args.pft_iters
        self.pft_modes = args.pft_modes
        self.xthread_modes = args.xthread_modes
        self.xthread_seconds = args.xthread_seconds
        self.xthread_args = args.xthread_args
        self.xthread_remote_batches = args.xthread_remote_batches
        self.uring_mem = args.uring_mem
        self.apps = args.apps
        self.sigbench_args = args.sigbench_args
        self.burst_args = args.burst_args
        self.kernbench_cache = os.path.abspath(args.kernbench_cache)
        self.raw = os.path.join(out, "raw")
        self.tmp = tempfile.mkdtemp(prefix="magpage-compare.")
        os.chmod(self.tmp, 0o755)   # servers run as other users (postgres)
        self.say = say


def snapshot(args, ctx, out):
    """Copies libmagpage.so and the benchmark programs into OUT/snapshot and
    points the run at the copies: rebuilding the tree during a long
    comparison (ld.so: "file too short") cannot touch what is measured."""
    snap = os.path.join(out, "snapshot")
    os.makedirs(os.path.join(snap, "bench"), exist_ok=True)
    os.chmod(snap, 0o755)
    if os.path.exists(args.lib):
        dst = os.path.join(snap, os.path.basename(args.lib))
        shutil.copy2(args.lib, dst)         # follows the .so -> .so.0 links
        args.lib = dst
    if os.path.isdir(ctx.bench_dir):
        for name in sorted(os.listdir(ctx.bench_dir)):
            src = os.path.join(ctx.bench_dir, name)
            if name.startswith("bench_") and os.path.isfile(src) and os.access(src, os.X_OK):
                shutil.copy2(src, os.path.join(snap, "bench", name))
        ctx.bench_dir = os.path.join(snap, "bench")


def prepare_benches(names, ctx):
    """The benchmarks that can run here, prepared; {name: info} beside."""
    benches, prepared = [], {}
    for name in names:
        b = BENCHES[name](ctx)
        t0 = time.time()
        try:
            info = b.prepare()
        except Skip as e:
            say(f"skipping {name}: {e}")
            continue
        prepared[name] = {"info": info, "prepare_s": round(time.time() - t0, 1)}
        say(f"{name}: {info}" if info else name)
        benches.append(b)
    return benches, prepared


def run_interleaved(benches, allocs, args, ctx, checkpoint):
    """for rep: for bench: for alloc.  Returns samples, failures, runs, wall.
    checkpoint(samples, failures, runs, wall) runs after every run, so an
    interrupted comparison leaves what it measured."""
    samples, failures, runs = [], [], []
    wall = {b.name: 0.0 for b in benches}
    dead = set()    # (bench, alloc) not to run again: failed, or skipped
    for rep in range(1, args.reps + 1):
        for b in benches:
            reps = args.bench_reps.get(b.name, args.reps)
            if rep > reps:
                continue
            for a in allocs:
                if (b.name, a.name) in dead:
                    continue
                rawdir = os.path.join(ctx.raw, b.name, f"{a.name}.r{rep}")
                os.makedirs(rawdir, exist_ok=True)
                load = harness_allocs.loadavg()
                t0 = time.time()
                status = "ok"
                harness_benches.RSS_RUNS.clear()
                try:
                    got = b.run(a, rep, rawdir)
                except Skip as e:
                    say(f"skipping {b.name}: {e}")
                    dead.update((b.name, x.name) for x in allocs)
                    got, status = [], "skipped"
                except RunFailed as e:
                    msg = f"{b.name} under {a.name}, repetition {rep}: {e}"
                    print(f"compare: FAILED: {msg}", file=sys.stderr, flush=True)
                    failures.append(msg)
                    if b.stop_after_failure:
                        dead.add((b.name, a.name))
                    got, status = e.samples, "failed"
                secs = time.time() - t0
                wall[b.name] += secs
                runs.append({"bench": b.name, "alloc": a.name, "rep": rep,
                             "status": status, "wall_s": round(secs, 2),
                             "loadavg_before": load})
                got = list(got or []) + [
                    {"metric": "peak_rss_kib", "params": {"run": name}, "value": kib}
                    for name, kib in harness_benches.RSS_RUNS]
                for s in got:
                    s.update(bench=b.name, alloc=a.name, rep=rep)
                samples.extend(got)
                say(f"rep {rep}/{reps} {b.name:9} {a.name:16} {status} "
                    f"{secs:7.1f} s (load {load})")
                checkpoint(samples, failures, runs, wall)
    for b in benches:
        for msg in b.check([s for s in samples if s["bench"] == b.name]):
            print(f"compare: FAILED: {msg}", file=sys.stderr, flush=True)
            failures.append(msg)
    return samples, failures, runs, wall


def rss_table(samples, columns):
    """Peak RSS (MiB) of each program a benchmark ran under the allocator,
    one row per run (the raw log's name), or None if it recorded none."""
    runs = list(dict.fromkeys(s["params"]["run"] for s in samples
                              if s["metric"] == "peak_rss_kib"))
    if not runs:
        return None
    bench = samples[0]["bench"]
    rows = [(f"{run} peak RSS MiB",
             {a: [s["value"] / 1024 for s in samples if s["alloc"] == a and
                  s["metric"] == "peak_rss_kib" and s["params"]["run"] == run]
              for a in columns}, LOWER) for run in runs]
    return (f"{bench}-rss", "peak RSS of each program run (/usr/bin/time %M), "
                            "mean over repetitions; lower is better", rows)


def render(benches, samples, allocs, baseline, machine, reps, bench_reps, when,
           failures, only=None):
    """All tables as one text (each followed by its spread, then the failed
    runs that left cells n/a), the same rows in Markdown (median [min..max]
    per cell), and the plot specs.  only: the title of the one table to
    render (BENCH-rss for a benchmark's peak RSS), or None for all."""
    columns = [a["name"] for a in allocs]
    text = [f"# libmagpage comparison, {when}: "
            f"{machine['nproc']} x {machine['cpu_model']}, Linux {machine['kernel']}, "
            f"glibc {machine['glibc']}, libmagpage {machine['libmagpage_commit']}\n"
            f"# {reps} interleaved repetitions"
            + "".join(f", {k} {v}" for k, v in bench_reps.items())
            + f"; baseline column {baseline}; "
            f"percentages: positive = better than {baseline} (mmtests pndiff/pdiff)\n"]
    for a in allocs:
        env = " ".join(([f"LD_PRELOAD={a['preload']}"] if a["preload"] else []) +
                       [f"{k}={v}" for k, v in sorted(a["env"].items())])
        text.append(f"#   {a['name']}: {env or '(no preload)'}\n")
    md = [f"libmagpage comparison, {when}: {machine['nproc']} x "
          f"{machine['cpu_model']}, Linux {machine['kernel']}, glibc "
          f"{machine['glibc']}, libmagpage {machine['libmagpage_commit']}; "
          f"{reps} interleaved repetitions"
          + "".join(f", {k} {v}" for k, v in bench_reps.items()) + ".\n\n"]
    md.extend(f"- {line[4:]}" for line in text[1:])     # the allocators
    plot_specs = []
    for b in benches:
        bs = [s for s in samples if s["bench"] == b.name]
        if not bs:
            continue
        for title, desc, rows, prec in b.tables(bs, columns):
            if not rows or only not in (None, title):
                continue
            printable = [(label, {c: how(v) if v else None for c, v in vals.items()},
                          better) for label, vals, better, how in rows]
            text.append(f"\n## {title}: {desc}\n")
            text.append(format_table(title, columns, printable, baseline, prec))
            if b.spread:
                text.append("\n" + format_spread(
                    title, columns, [(label, vals) for label, vals, _, _ in rows]))
                md.append(f"\n**{title}**: {desc}; median [min..max] of the "
                          f"values behind each cell, best median in bold\n\n")
                md.append(format_markdown(
                    title, columns, [(label, vals, better)
                                     for label, vals, better, _ in rows], prec))
        rss = rss_table(bs, columns)
        if rss and only in (None, rss[0]):
            title, desc, rows = rss
            printable = [(label, {c: mean(v) if v else None for c, v in vals.items()},
                          better) for label, vals, better in rows]
            text.append(f"\n## {title}: {desc}\n")
            text.append(format_table(title, columns, printable, baseline, 1))
            md.append(f"\n**{title}**: {desc}; median [min..max], best median in bold\n\n")
            md.append(format_markdown(title, columns, rows, 1))
        plot_specs.extend(b.plots(bs, columns))
    if failures:
        text.append(f"\n## FAILED runs ({len(failures)}): their cells are n/a or "
                    f"hold fewer values\n")
        text.extend(f"- {m}\n" for m in failures)
        md.append(f"\n**FAILED runs ({len(failures)})**\n\n")
        md.extend(f"- {m}\n" for m in failures)
    return "".join(text), "".join(md), plot_specs


def publish(out, tables, md, specs):
    """Prints the tables, writes them (text and Markdown) into OUT, draws
    the plots; returns the plots' paths."""
    print(tables)
    with open(os.path.join(out, "tables.txt"), "w") as f:
        f.write(tables)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(md)
    return harness_plots.draw(specs, os.path.join(out, "plots"), say)


def write_csv(path, samples):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bench", "alloc", "rep", "metric", "params", "value"])
        for s in samples:
            w.writerow([s["bench"], s["alloc"], s["rep"], s["metric"],
                        ";".join(f"{k}={v}" for k, v in sorted(s["params"].items())),
                        s["value"]])


def report_tail(out, pngs, wall, total, runs, nproc, failures):
    print("wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in wall.items())
          + f"; total {total / 60:.1f} min")
    print(f"tables:  {os.path.join(out, 'tables.txt')} (Markdown: "
          f"{os.path.join(out, 'summary.md')})")
    print(f"results: {os.path.join(out, 'results.json')}, {os.path.join(out, 'results.csv')}")
    for p in pngs:
        print(f"plot:    {p}")
    busy = [r for r in runs if r["loadavg_before"] and r["loadavg_before"] > 0.5 * nproc]
    if busy:
        print(f"note: {len(busy)} of {len(runs)} runs started with a load average "
              f"above {0.5 * nproc:.1f}: the machine was busy; "
              f"see results.json runs[].loadavg_before")
    if failures:
        print(f"\nFAILED ({len(failures)}):", file=sys.stderr)
        for m in failures:
            print(f"  {m}", file=sys.stderr)
        return 1
    return 0


def retable(args):
    """--from-json: tables and plots again from a results.json (no runs)."""
    out = os.path.abspath(args.out)
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)
    ctx = Context(args, out)
    names = list(dict.fromkeys(s["bench"] for s in r["samples"]))
    benches = [BENCHES[n](ctx) for n in names]
    # --baseline may pick another column than the run had
    cols = r["machine"]["allocators"]
    names = [c["name"] if isinstance(c, dict) else c for c in cols]
    base = args.baseline if args.baseline in names else r["baseline"]
    tables, md, specs = render(benches, r["samples"], cols,
                               base, r["machine"], r["reps"],
                               r.get("bench_reps", {}), r["started"], r["failures"])
    shutil.rmtree(ctx.tmp, ignore_errors=True)
    if args.markdown:
        cmd = " ".join(r["command"])
        print(f"Command: `{cmd}` ({r['wall_s'] / 60:.1f} min)\n\n{md}", end="")
        return 0
    pngs = publish(out, tables, md, specs)
    return report_tail(out, pngs, r["wall_s_per_bench"], r["wall_s"], r["runs"],
                       r["machine"]["nproc"], r["failures"])


def main(argv):
    args = parse_args(argv)
    if args.markdown and not args.from_json:
        say("--markdown goes with --from-json")
        return 2
    if args.from_json:
        return retable(args)
    t_start = time.time()
    out = os.path.abspath(args.out)
    if os.path.exists(os.path.join(out, "results.json")):
        say(f"{out} holds earlier results: moving them to {out}.old")
        shutil.rmtree(out + ".old", ignore_errors=True)
        os.rename(out, out + ".old")
    os.makedirs(os.path.join(out, "raw"), exist_ok=True)
    ctx = Context(args, out)
    snapshot(args, ctx, out)

    allocs = harness_allocs.resolve(args.alloc, args.lib,
                                    os.path.join(args.build, "magpage-conf"),
                                    args.magpage_conf, args.jemalloc_conf, say,
                                    args.lib_path)
    if not allocs:
        say("no allocator left to run")
        return 1
    columns = [a.name for a in allocs]
    baseline = args.baseline if args.baseline in columns else columns[0]
    if baseline != args.baseline:
        say(f"baseline {args.baseline} is not running: percentages are against {baseline}")
    benches, prepared = prepare_benches(args.bench, ctx)
    machine = harness_allocs.machine_info(REPO, allocs)
    say(f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{(machine['mem_total_kib'] or 0) >> 20} GiB, Linux {machine['kernel']}, "
        f"glibc {machine['glibc']}, libmagpage {machine['libmagpage_commit']}")
    say(f"allocators: {', '.join(columns)} (baseline {baseline}); {args.reps} "
        f"repetitions, interleaved; raw output in {ctx.raw}")

    started = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(t_start))
    result = {
        "command": [os.path.relpath(sys.argv[0], REPO)] + argv,
        "started": started,
        "complete": False,
        "machine": machine,
        "baseline": baseline,
        "reps": args.reps,
        "bench_reps": args.bench_reps,
        "quick": args.quick,
        "benches": prepared,
        "options": {k: v for k, v in vars(args).items()
                    if k not in ("bench", "alloc", "out")},
    }

    def save(samples, failures, runs, wall, **more):
        result.update(wall_s=round(time.time() - t_start, 1),
                      wall_s_per_bench={k: round(v, 1) for k, v in wall.items()},
                      runs=runs, failures=failures, samples=samples, **more)
        tmp = os.path.join(out, "results.json.tmp")
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, os.path.join(out, "results.json"))

    samples, failures, runs, wall = run_interleaved(benches, allocs, args, ctx, save)

    tables, md, specs = render(benches, samples, machine["allocators"], baseline,
                               machine, args.reps, args.bench_reps, started, failures)
    pngs = publish(out, tables, md, specs)
    write_csv(os.path.join(out, "results.csv"), samples)
    total = time.time() - t_start
    save(samples, failures, runs, wall, complete=True,
         plots=[os.path.relpath(p, out) for p in pngs])
    if failures:
        say(f"scratch directories of the failed runs kept in {ctx.tmp}")
    else:
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    return report_tail(out, pngs, wall, total, runs, machine["nproc"], failures)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
