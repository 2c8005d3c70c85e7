#!/usr/bin/env python3
"""Condenses libmagpage's JSON statistics into one line per report of the
named process.

usage: stats-summary.py STATS_FILE [PROCESS]     (PROCESS defaults to cc1)

STATS_FILE holds what MAGPAGE_CONF=stats:json,stats_file:STATS_FILE wrote:
one JSON object per line, one per preloaded process that exited.  Each
report of PROCESS (its "program") becomes a line: how many malloc-family
calls the zone served, what rounding to pages cost, the page caches' hit
rate, and the cache and zone lock acquisitions and contentions.  Lines that
are not JSON objects are counted and skipped.  Exit status 0; 1 when the
file holds no report of PROCESS; 2 on bad usage.
"""
import argparse
import json
import sys


def reports(path):
    """The JSON objects in path, and how many lines were not one."""
    got, bad = [], 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(obj, dict) and "libmagpage" in obj:
                got.append(obj)
            else:
                bad += 1
    return got, bad


def one_line(r):
    m, c, z = r["malloc"], r["caches"], r["zone"]
    calls = sum(m["calls"][k] for k in ("malloc", "calloc", "realloc", "memalign"))
    zone = m["zone_allocs"]
    held = m["bytes_held"]
    waste = 100.0 * (held - m["bytes_requested"]) / held if held else 0.0
    locks = [x["lock"] for x in c.get("list", []) if "lock" in x]
    acq = sum(x["acquired"] for x in locks)
    cont = sum(x["contended"] for x in locks)
    return (f"page-sized {zone} of {calls} calls ({100 * zone / max(calls, 1):.1f}%), "
            f"rounding waste {waste:.1f}%, cache ({c['type']}) hits {c['hits']}/{c['allocs']} "
            f"({100 * c['hits'] / max(c['allocs'], 1):.1f}%), cache locks "
            f"{acq} acquired/{cont} contended, zone lock "
            f"{z['lock']['acquired']}/{z['lock']['contended']}")


def main(argv):
    p = argparse.ArgumentParser(
        usage="stats-summary.py STATS_FILE [PROCESS]",
        description="One line per libmagpage JSON report (stats:json) of PROCESS.")
    p.add_argument("stats_file")
    p.add_argument("process", nargs="?", default="cc1")
    a = p.parse_args(argv)
    got, bad = reports(a.stats_file)
    mine = [r for r in got if r.get("program") == a.process]
    if bad:
        print(f"({bad} lines of {a.stats_file} are not libmagpage JSON reports; skipped)")
    if not mine:
        names = sorted({r.get("program", "?") for r in got})
        print(f"no report from a process named {a.process} "
              f"(reports from: {', '.join(names) or 'none'})")
        return 1
    for i, r in enumerate(mine, 1):
        print(f"{a.process} #{i} (pid {r['pid']}): {one_line(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
