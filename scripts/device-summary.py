#!/usr/bin/env python3
"""Summarise a devbench run (docs/results/device/pagealloc.csv): ns per
malloc+free, median of the repetitions [min..max], per batch and thread count,
one column per allocator, as Markdown tables.

usage: scripts/device-summary.py DIR     (DIR/pagealloc.csv, from devbench/run.sh)
"""
import argparse
import collections
import csv
import statistics

ap = argparse.ArgumentParser(usage="scripts/device-summary.py DIR",
                             description="Markdown tables of a devbench run's pagealloc.csv.")
ap.add_argument("dir")
args = ap.parse_args()
d = collections.defaultdict(list)
order = []
with open(f"{args.dir}/pagealloc.csv") as f:
    for r in csv.reader(f):
        name, batch, threads, ns = r[0], int(r[2]), int(r[3]), float(r[8])
        d[(name, batch, threads)].append(ns)
        if name not in order:
            order.append(name)
batches = sorted({k[1] for k in d})
threads = sorted({k[2] for k in d})
for b in batches:
    print(f"\nbatch {b}: ns per malloc+free of a 4 KiB block, median of "
          f"{len(d[(order[0], b, threads[0])])} runs [min..max]\n")
    print("| threads | " + " | ".join(order) + " |")
    print("|---:|" + "---:|" * len(order))
    for t in threads:
        cells = []
        for n in order:
            v = d.get((n, b, t))
            cells.append(f"{statistics.median(v):.0f} [{min(v):.0f}..{max(v):.0f}]" if v else "-")
        print(f"| {t} | " + " | ".join(cells) + " |")
