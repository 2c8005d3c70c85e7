#!/usr/bin/env python3
"""Checks the statistics that libmagpage wrote for a real-program test.

Every preloaded process appends one JSON object per line to
DIR/stats.<pid>.json (MAGPAGE_CONF=stats:json,stats_file:DIR/stats.%p.json).
This sums the counters over all processes and asserts that page-sized
requests really went through the page caches, and mostly hit:

    sum(caches.allocs)               > --min-allocs
    sum(caches.hits) / sum(allocs)   > --min-hit-ratio   (default 0.5)
    sum(malloc.zone_allocs)          > 0
    sum(malloc.invalid_frees)        = 0   (where reported)
    each --expect-program NAME wrote at least one object

A counter such as "caches.allocs" is looked up either as a flat key or as
the path obj["caches"]["allocs"]; where the path meets a list (one entry per
cache), the entries are summed.

With no stats file at all the check fails, unless MAGPAGE_APPS_NO_STATS=1
(set only while running the tests against another allocator).
Exit status: 0 pass, 1 fail.
"""
import argparse
import glob
import json
import os
import sys

COUNTERS = ("malloc.zone_allocs", "caches.allocs", "caches.hits",
            "malloc.fallback.small")


def lookup(obj, dotted):
    """Returns the counter's value, or None if the object lacks it."""
    if dotted in obj:
        return obj[dotted]
    node = obj
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, list):
            vals = [lookup(e, ".".join(parts[i:])) for e in node
                    if isinstance(e, dict)]
            vals = [v for v in vals if v is not None]
            return sum(vals) if vals else None
        if not isinstance(node, dict):
            return None
        rest = ".".join(parts[i:])
        if rest in node:
            return node[rest]
        if part not in node:
            return None
        node = node[part]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return node
    return None


def load(directory):
    """Returns [(file, line number, object)], exiting on a malformed line."""
    objs = []
    for path in sorted(glob.glob(os.path.join(directory, "stats.*.json"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    sys.exit(f"check_stats: FAIL: {path}:{n} is not one JSON "
                             f"object per line ({e}): {line[:200]!r}")
                if not isinstance(obj, dict):
                    sys.exit(f"check_stats: FAIL: {path}:{n} is not a JSON object")
                objs.append((path, n, obj))
    return objs


def program_name(obj):
    prog = obj.get("program")
    return os.path.basename(str(prog)) if prog else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--min-allocs", type=int, required=True,
                    help="sum of caches.allocs must exceed this")
    ap.add_argument("--min-hit-ratio", type=float, default=0.5)
    ap.add_argument("--expect-program", action="append", default=[],
                    help="a program (basename) that must have written stats")
    args = ap.parse_args()

    objs = load(args.dir)
    if not objs:
        if os.environ.get("MAGPAGE_APPS_NO_STATS") == "1":
            print(f"check_stats: no stats in {args.dir}; "
                  "MAGPAGE_APPS_NO_STATS=1, stats checks skipped")
            return 0
        print(f"check_stats: FAIL: no stats.*.json in {args.dir}: the "
              "preloaded programs wrote no statistics", file=sys.stderr)
        return 1

    missing = {c: 0 for c in COUNTERS}
    totals = {c: 0 for c in COUNTERS}
    per_prog = {}
    for _, _, obj in objs:
        prog = program_name(obj)
        row = per_prog.setdefault(prog, [0] + [0] * len(COUNTERS))
        row[0] += 1
        for i, c in enumerate(COUNTERS):
            v = lookup(obj, c)
            if v is None:
                missing[c] += 1
                continue
            totals[c] += v
            row[i + 1] += v

    print(f"check_stats: {len(objs)} process(es) in {args.dir}")
    hdr = ("program", "procs") + COUNTERS
    print("  %-24s %6s %19s %14s %12s %22s" % hdr)
    for prog, row in sorted(per_prog.items(), key=lambda kv: -kv[1][2]):
        print("  %-24s %6d %19d %14d %12d %22d" % ((prog[:24],) + tuple(row)))
    print("  %-24s %6d %19d %14d %12d %22d" %
          (("TOTAL", len(objs)) + tuple(totals[c] for c in COUNTERS)))

    errors = []
    for c in ("malloc.zone_allocs", "caches.allocs", "caches.hits"):
        if missing[c] == len(objs):
            keys = sorted(objs[0][2].keys())
            errors.append(f"no object has the counter {c!r} "
                          f"(top-level keys of the first: {keys})")
    allocs, hits = totals["caches.allocs"], totals["caches.hits"]
    if allocs <= args.min_allocs:
        errors.append(f"caches.allocs = {allocs}, expected > {args.min_allocs}: "
                      "page-sized requests did not go through the page caches")
    ratio = hits / allocs if allocs else 0.0
    print(f"check_stats: cache hit ratio {hits}/{allocs} = {ratio:.3f}")
    if ratio <= args.min_hit_ratio:
        errors.append(f"cache hit ratio {ratio:.3f}, expected > {args.min_hit_ratio}")
    if totals["malloc.zone_allocs"] <= 0:
        errors.append("malloc.zone_allocs = 0: the zone served no malloc-family request")
    # Optional counter: where the library reports caught invalid or double
    # frees, there must be none.
    bad_frees = sum(lookup(o, "malloc.invalid_frees") or 0 for _, _, o in objs)
    if bad_frees:
        errors.append(f"malloc.invalid_frees = {bad_frees}: the library caught "
                      "invalid or double frees")
    for want in args.expect_program:
        if not any(p == want or p.startswith(want) for p in per_prog):
            errors.append(f"no stats from program {want!r} "
                          f"(programs seen: {sorted(per_prog)})")

    for e in errors:
        print(f"check_stats: FAIL: {e}", file=sys.stderr)
    if not errors:
        print("check_stats: ok")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
