#!/usr/bin/env python3
"""Instructions and simulated L1 data-cache misses per operation of
bench_xthread, per function, under several allocators: counts that do not
depend on the machine's load (this machine has no hardware counters).

usage: cachegrind-ops.py [--build DIR] [--mode server|prodcons|random]
                         [--threads T] [--seconds S] [--top N]
                         [--l2 SIZE,ASSOC,LINE] NAME=LIB[,MAGPAGE_CONF] ...

Each NAME=LIB runs build/bench/bench_xthread -m MODE -t T -d S under
valgrind --tool=cachegrind --cache-sim=yes with LD_PRELOAD=LIB (an empty
LIB: glibc), one allocator after the other.  The benchmark's CSV line says
how many operations it did; every count is divided by that.  Printed: the
totals per operation (Ir, D1mr, D1mw, and the D1 misses' sum; with --l2,
the misses of a second level of that geometry, DLmr and DLmw), then for
each allocator the N functions with the most D1 misses per operation.

What it cannot say: the simulated caches have LRU replacement and
virtual, not physical, indexing; the L1 is the host's geometry, the second
level what --l2 says (valgrind's default "last level" is not this
machine's L2 or L3, so without --l2 only D1 is shown); the benchmark runs some 50 times slower, so a
time-driven pattern (the caches' 80 ms decay, the zone's 20 ms purge
delay) meets fewer operations per interval; valgrind answers rseq(2) with
ENOSYS, so libmagpage takes its per-thread front end, not the per-CPU one.  docs/results/issue9/session8.md
has what it found.  Exit status 0; 1 when a run fails; 2 on bad usage.
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile

EVENTS = ("Ir", "D1mr", "D1mw", "DLmr", "DLmw")


def parse_cachegrind(path):
    """Per-function sums of EVENTS from a cachegrind.out file."""
    events, per_fn, fn = None, collections.Counter(), "???"
    idx = None
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
                idx = [events.index(e) for e in EVENTS]
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line[:1].isdigit() and idx is not None:
                nums = line.split()[1:]
                for e, i in zip(EVENTS, idx):
                    if i < len(nums):
                        per_fn[(fn, e)] += int(nums[i])
    if events is None:
        raise ValueError(f"{path}: no events line")
    return per_fn


def run_one(args, name, lib, conf, workdir):
    out = os.path.join(workdir, f"cg.{name}")
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "MAGPAGE_CONF"):
        env.pop(k, None)
    if lib:
        env["LD_PRELOAD"] = os.path.abspath(lib)
    if conf:
        env["MAGPAGE_CONF"] = conf
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=yes",
           f"--cachegrind-out-file={out}"] + (
               [f"--LL={args.l2}"] if args.l2 else []) + [
           os.path.join(args.build, "bench", "bench_xthread"),
           "-m", args.mode, "-t", str(args.threads), "-d", str(args.seconds)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    ops = None
    for line in r.stdout.splitlines():
        if line.startswith(args.mode + ","):
            ops = int(line.split(",")[3])
    if r.returncode != 0 or not ops:
        sys.stderr.write(f"cachegrind-ops: {name}: run failed (status {r.returncode})\n"
                         f"{r.stderr[-2000:]}")
        return None
    return ops, parse_cachegrind(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--mode", default="random", choices=("server", "prodcons", "random"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--l2", metavar="SIZE,ASSOC,LINE",
                    help="simulate this second level (valgrind --LL), e.g. 1048576,8,64")
    ap.add_argument("allocs", nargs="+", metavar="NAME=LIB[,MAGPAGE_CONF]")
    args = ap.parse_args()
    specs = []
    for a in args.allocs:
        name, sep, rest = a.partition("=")
        if not sep or not name:
            ap.error(f"'{a}': expected NAME=LIB[,MAGPAGE_CONF] (LIB empty for glibc)")
        lib, _, conf = rest.partition(",")
        if lib and not os.path.exists(lib):
            ap.error(f"'{a}': {lib} does not exist")
        specs.append((name, lib, conf))

    results, failed = [], False
    with tempfile.TemporaryDirectory(prefix="cgops.") as wd:
        for name, lib, conf in specs:
            got = run_one(args, name, lib, conf, wd)
            if got is None:
                failed = True
                continue
            results.append((name, *got))

    print(f"# bench_xthread -m {args.mode} -t {args.threads} -d {args.seconds} "
          f"under cachegrind; counts per operation")
    l2 = ["DLmr", "DLmw"] if args.l2 else []
    print(f"{'allocator':<14}{'ops':>10}{'Ir':>9}{'D1mr':>8}{'D1mw':>8}{'D1 miss':>9}"
          + "".join(f"{e:>8}" for e in l2))
    for name, ops, per_fn in results:
        tot = {e: sum(v for (f, ev), v in per_fn.items() if ev == e) / ops for e in EVENTS}
        print(f"{name:<14}{ops:>10}{tot['Ir']:>9.1f}{tot['D1mr']:>8.2f}{tot['D1mw']:>8.2f}"
              f"{tot['D1mr'] + tot['D1mw']:>9.2f}" + "".join(f"{tot[e]:>8.2f}" for e in l2))
    for name, ops, per_fn in results:
        fns = {f for (f, _) in per_fn}
        rows = sorted(fns, key=lambda f: -(per_fn[(f, 'D1mr')] + per_fn[(f, 'D1mw')]))
        print(f"\n## {name}: the {args.top} functions with the most D1 misses")
        print(f"{'function':<40}{'Ir':>9}{'D1mr':>8}{'D1mw':>8}" + "".join(f"{e:>8}" for e in l2))
        for f in rows[:args.top]:
            print(f"{f[:39]:<40}{per_fn[(f, 'Ir')] / ops:>9.1f}"
                  + "".join(f"{per_fn[(f, e)] / ops:>8.2f}" for e in ("D1mr", "D1mw", *l2)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
