#!/usr/bin/env python3
"""Summarise a devbench run (scripts/devbench-run.sh) as Markdown tables,
one column per allocator, median of the repetitions [min..max]:
pagealloc.csv and remote.csv in ns per malloc+free, per batch and thread
count; xthread.csv (when present) in million operations per second and
peak RSS in MiB, per pattern and thread count.

usage: scripts/device-summary.py DIR
"""
import argparse
import collections
import csv
import os
import statistics


def cell(v, fmt):
    if not v:
        return "-"
    return f"{statistics.median(v):{fmt}} [{min(v):{fmt}}..{max(v):{fmt}}]"


def table(title, order, rows, get, fmt):
    print(f"\n{title}\n")
    print("| threads | " + " | ".join(order) + " |")
    print("|---:|" + "---:|" * len(order))
    for t in rows:
        print(f"| {t} | " + " | ".join(cell(get(n, t), fmt) for n in order) + " |")


def pagealloc(path, what):
    d = collections.defaultdict(list)
    order = []
    with open(path) as f:
        for r in csv.reader(f):
            name, batch, threads, ns = r[0], int(r[2]), int(r[3]), float(r[8])
            d[(name, batch, threads)].append(ns)
            if name not in order:
                order.append(name)
    if not d:
        return
    threads = sorted({k[2] for k in d})
    for b in sorted({k[1] for k in d}):
        reps = max(len(v) for k, v in d.items() if k[1] == b)
        table(f"{what}, batch {b}: ns per malloc+free of a 4 KiB block, median of "
              f"{reps} runs [min..max]", order, threads,
              lambda n, t: d.get((n, b, t)), ".0f")


def xthread(path):
    ops = collections.defaultdict(list)
    rss = collections.defaultdict(list)
    order = []
    with open(path) as f:
        for r in csv.reader(f):
            name, mode, threads = r[0], r[2], int(r[3])
            ops[(name, mode, threads)].append(float(r[6]))
            rss[(name, mode, threads)].append(int(r[7]) / 1024)
            if name not in order:
                order.append(name)
    threads = sorted({k[2] for k in ops})
    for m in sorted({k[1] for k in ops}, key=["server", "prodcons", "random"].index):
        table(f"xthread {m}: million operations per second (higher is better)",
              order, threads, lambda n, t: ops.get((n, m, t)), ".2f")
        table(f"xthread {m}: peak RSS, MiB", order, threads,
              lambda n, t: rss.get((n, m, t)), ".1f")


ap = argparse.ArgumentParser(usage="scripts/device-summary.py DIR",
                             description="Markdown tables of a devbench run.")
ap.add_argument("dir")
args = ap.parse_args()
pagealloc(f"{args.dir}/pagealloc.csv", "each thread its own batch")
if os.path.exists(f"{args.dir}/remote.csv"):
    pagealloc(f"{args.dir}/remote.csv", "one thread of each pair allocates, the other frees")
if os.path.exists(f"{args.dir}/xthread.csv"):
    xthread(f"{args.dir}/xthread.csv")
