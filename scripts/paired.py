#!/usr/bin/env python3
"""Paired rounds: one program under several allocators, turn about, and
each one's ratio to the first, round by round.

    scripts/paired.py --alloc magpage,tcmalloc --rounds 40 \\
        -- build/bench/bench_xthread -m server -t 1 -d 0.5

On a shared, noisy machine the spread of one allocator's runs (this VM's
drift from one second to the next is 10-30%) hides differences of a few
percent, however many repetitions the medians take.  Two runs made back
to back see nearly the same machine, so the ratio of each pair varies far
less than either run: this prints, for every allocator after the first,
the median of the per-round ratios with a 95% bootstrap interval, and in
how many rounds it was ahead.  The order of the allocators turns each
round, so that no one always runs first.

The value of a run is field --field (1-based) of a comma-separated line of
its standard output: the last line not starting with '#', or with --row R
the line whose first field is R (bench_pagealloc: one line per batch;
--row 64 --field 6 --lower is batch 64's cycles a pair).  A run that exits
non-zero or prints no such line stops the script (exit 1).

Allocators: the names compare.py knows (glibc, jemalloc, mimalloc,
tcmalloc, magpage, magpage-NAME with --magpage-conf NAME=CONF), or
NAME=PATH[:CONF] for a libmagpage built elsewhere (an older commit's,
say), preloaded with MAGPAGE_CONF=CONF if given.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness_allocs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def say(msg):
    print(f"paired: {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run a program under several allocators in paired rounds "
                    "and print each one's per-round ratio to the first.",
        epilog="Example: scripts/paired.py --alloc base=/tmp/old.so,magpage "
               "--row 64 --field 6 --lower -- build/bench/bench_pagealloc "
               "-b 64 -s 4160")
    p.add_argument("--alloc", required=True,
                   help="comma list; the first is the reference")
    p.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    p.add_argument("--field", type=int, default=5,
                   help="1-based CSV field holding the value (default 5: "
                        "bench_xthread's M ops/s)")
    p.add_argument("--row", help="the line whose first field is ROW "
                                 "(default: the last data line)")
    p.add_argument("--lower", action="store_true",
                   help="lower values are better (cycles, seconds)")
    p.add_argument("--magpage-conf", action="append", default=[],
                   metavar="NAME=CONF", help="MAGPAGE_CONF of magpage-NAME")
    p.add_argument("--build", default=os.path.join(REPO, "build"),
                   help="build directory (default build)")
    p.add_argument("--timeout", type=float, default=120,
                   help="seconds a run may take (default 120)")
    p.add_argument("--raw", action="store_true", help="print every pair as it comes")
    p.add_argument("cmd", nargs=argparse.REMAINDER,
                   help="-- PROGRAM ARGS: what to run")
    a = p.parse_args(argv)
    if a.cmd and a.cmd[0] == "--":
        a.cmd = a.cmd[1:]
    if not a.cmd:
        p.error("give the program after --")
    if a.rounds < 2 or a.field < 1:
        p.error("--rounds takes 2 or more, --field 1 or more")
    return a


def allocators(a):
    lib = os.path.join(a.build, "libmagpage.so")
    confs = {}
    for nc in a.magpage_conf:
        name, sep, conf = nc.partition("=")
        if not sep:
            sys.exit(f"paired: --magpage-conf takes NAME=CONF, not {nc}")
        confs[name] = conf
    out = []
    for spec in a.alloc.split(","):
        name, sep, rest = spec.partition("=")
        if sep:
            path, _, conf = rest.partition(":")
            if not os.path.exists(path):
                sys.exit(f"paired: {name}: {path} not found")
            problem = harness_allocs.preload_problem(os.path.abspath(path))
            if problem:
                sys.exit(f"paired: {name}: {path} does not preload cleanly: {problem}")
            env = {"MAGPAGE_CONF": conf} if conf else {}
            out.append(harness_allocs.Alloc(name, os.path.abspath(path), env))
            continue
        got = harness_allocs.resolve([name], lib, os.path.join(a.build, "magpage-conf"),
                                     confs, None, say)
        if not got:
            sys.exit(f"paired: no allocator {name}")
        out.extend(got)
    if len(out) < 2:
        sys.exit("paired: give two allocators or more")
    return out


def value(a, alloc):
    r = subprocess.run(a.cmd, env=alloc.environ(), capture_output=True, text=True,
                       timeout=a.timeout, check=False)
    if r.returncode != 0:
        sys.exit(f"paired: {alloc.name}: exit status {r.returncode}: "
                 f"{r.stderr.strip()[-500:]}")
    rows = [ln.split(",") for ln in r.stdout.splitlines()
            if ln.strip() and not ln.startswith("#")]
    if a.row is not None:
        rows = [f for f in rows if f[0] == a.row]
    try:
        return float(rows[-1][a.field - 1])
    except (IndexError, ValueError):
        sys.exit(f"paired: {alloc.name}: no field {a.field} in its output "
                 f"(row {a.row or 'last'}):\n{r.stdout[-800:]}")


def spread(v):
    return f"{statistics.median(v):.3f} [{min(v):.3f}..{max(v):.3f}]"


def main(argv):
    a = parse_args(argv)
    allocs = allocators(a)
    vals = {x.name: [] for x in allocs}
    for r in range(a.rounds):
        k = r % len(allocs)
        for x in allocs[k:] + allocs[:k]:
            vals[x.name].append(value(a, x))
        if a.raw:
            print(" ".join(f"{x.name}={vals[x.name][-1]:g}" for x in allocs), flush=True)
    ref = allocs[0].name
    better = "lower" if a.lower else "higher"
    print(f"# {a.rounds} paired rounds of: {' '.join(a.cmd)}")
    print(f"# value: field {a.field} of row {a.row or 'last'}, {better} is better; "
          f"ratio = allocator / {ref}, per round")
    for x in allocs:
        print(f"{x.name:>16}: median {spread(vals[x.name])}")
    rng = random.Random(1)
    for x in allocs[1:]:
        ratios = [v / w for v, w in zip(vals[x.name], vals[ref]) if w]
        boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios)))
                      for _ in range(2000))
        ahead = sum((q < 1) if a.lower else (q > 1) for q in ratios)
        print(f"{x.name:>16} / {ref}: {statistics.median(ratios):.4f}, 95% interval "
              f"[{boot[50]:.4f}, {boot[1949]:.4f}]; {x.name} ahead in {ahead} of "
              f"{len(ratios)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
