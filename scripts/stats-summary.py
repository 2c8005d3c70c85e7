#!/usr/bin/env python3
"""Condenses libmagpage's text statistics (MAGPAGE_CONF=stats:1,stats_file:F)
into one line per report of the named process, then prints the last such
report in full.

usage: stats-summary.py STATS_FILE [PROCESS]     (PROCESS defaults to cc1)

Every preloaded process appends a report that starts with
"=== libmagpage stats: pid N (comm), ...".  If the format is not
recognised, the line says so and the report is still printed.
"""
import re
import sys

path = sys.argv[1]
comm = sys.argv[2] if len(sys.argv) > 2 else "cc1"
with open(path) as f:
    text = f.read()
reports = [r for r in re.split(r"(?m)^(?==== libmagpage stats)", text) if r.strip()]
mine = [r for r in reports
        if re.match(r"=== libmagpage stats: pid \d+ \(" + re.escape(comm) + r"\)", r)]
if not mine:
    print(f"(no report from a process named {comm}; the whole file follows)")
    print(text.rstrip() or "(empty)")
    sys.exit(0)


def one_line(r):
    calls = sum(int(x) for x in re.search(
        r"malloc: malloc (\d+)\s+calloc (\d+)\s+realloc (\d+)\s+memalign (\d+)", r).groups())
    zone = int(re.search(r"zone-served: (\d+) allocations", r).group(1))
    waste = re.search(r"rounding to pages costs ([\d.]+)%", r).group(1)
    # cache rows: id order allocs hits frees refills ...
    rows = re.findall(r"(?m)^\s+\d+\s+\d+\s+(\d+)\s+(\d+)\s+\d+\s+\d+", r)
    allocs = sum(int(a) for a, _ in rows)
    hits = sum(int(h) for _, h in rows)
    mag = re.findall(r"(?m)^\s+\d+\s+lock: (\d+) acquired, (\d+) contended", r)
    zl = re.search(r"(?m)^zone:.*lock (\d+) acquired, (\d+) contended", r).groups()
    return (f"page-sized {zone} of {calls} calls ({100 * zone / max(calls, 1):.1f}%), "
            f"rounding waste {waste}%, cache hits {hits}/{allocs} "
            f"({100 * hits / max(allocs, 1):.1f}%), magazine locks "
            f"{sum(int(a) for a, _ in mag)} acquired/{sum(int(c) for _, c in mag)} contended, "
            f"zone lock {zl[0]}/{zl[1]}")


for i, r in enumerate(mine, 1):
    try:
        line = one_line(r)
    except (AttributeError, ValueError):
        line = "(report format not recognised; see the report)"
    print(f"{comm} #{i}: {line}")
print()
print(mine[-1].rstrip())
