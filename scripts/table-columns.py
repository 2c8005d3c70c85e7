#!/usr/bin/env python3
"""Prints one mmtests-style table of a stored comparison with only some of
its allocators, for a document that wants fewer columns than were run.

usage: table-columns.py RESULTS_DIR TABLE ALLOC,ALLOC,... [--baseline ALLOC]

RESULTS_DIR holds a results.json written by scripts/compare.py; TABLE is a
table's title as compare.py prints it (pagealloc-1t, pft-threads,
apps, apps-memory, BENCH-rss ...); the columns come in the order given, and
the percentages are against --baseline (default: the first column).  The
table is rendered from the samples by the harness's own code, as
compare.py --from-json would, so it always matches the stored data.
Exit status 0; 1 when the table or a column is not in the results; 2 on bad
usage.
"""
import argparse
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402
from harness_benches import BENCHES  # noqa: E402


def main(argv):
    p = argparse.ArgumentParser(
        usage="table-columns.py RESULTS_DIR TABLE ALLOC,ALLOC,... [--baseline ALLOC]",
        description="One table of a stored comparison, some columns only.")
    p.add_argument("results_dir")
    p.add_argument("table")
    p.add_argument("columns")
    p.add_argument("--baseline")
    a = p.parse_args(argv)
    with open(os.path.join(a.results_dir, "results.json")) as f:
        r = json.load(f)
    want = [c for c in a.columns.split(",") if c]
    allocs = {c["name"]: c for c in r["machine"]["allocators"]}
    missing = [c for c in want if c not in allocs]
    if missing or not want:
        print(f"table-columns: no column {','.join(missing) or '(none given)'} in "
              f"{a.results_dir}; there are {','.join(allocs)}", file=sys.stderr)
        return 1
    base = a.baseline or want[0]
    if base not in want:
        print(f"table-columns: the baseline {base} is not among the columns", file=sys.stderr)
        return 2
    ctx = compare.Context(compare.parse_args(["--from-json", "--out", a.results_dir]),
                          a.results_dir)
    try:
        names = list(dict.fromkeys(s["bench"] for s in r["samples"]))
        benches = [BENCHES[n](ctx) for n in names]
        text, _, _ = compare.render(benches, r["samples"], [allocs[c] for c in want], base,
                                    r["machine"], r["reps"], r.get("bench_reps", {}),
                                    r["started"], [], only=a.table)
    finally:
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    if f"\n## {a.table}:" not in text:
        print(f"table-columns: no table {a.table} in {a.results_dir}", file=sys.stderr)
        return 1
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
