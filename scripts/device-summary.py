#!/usr/bin/env python3
"""Summarise a devbench run (docs/results/device/pagealloc.csv): ns per
malloc+free, median of the repetitions [min..max], per batch and thread count,
one column per allocator.  Usage: scripts/device-summary.py DIR"""
import collections
import csv
import statistics
import sys

d = collections.defaultdict(list)
order = []
with open(f"{sys.argv[1]}/pagealloc.csv") as f:
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
