#!/usr/bin/env bash
# numa_cost.sh — the cost of per-node zones on a one-node machine, as
# ratios measured in one run: main's library against this branch's under
# numa:auto (one node here: one zone), numa:off and numa:fake=2, the
# default design and cache:none (every call takes the zone), interleaved,
# REPS rounds.  Prints the median of each configuration and its ratio to
# main's.  Timings are noisy on a shared machine: read ratios, not values.
#
#   numa_cost.sh MAIN_BUILD BRANCH_BUILD [REPS]
set -euo pipefail
main=$1 branch=$2 reps=${3:-7}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
configs=("main|$main|" "auto|$branch|numa:auto" "off|$branch|numa:off" "fake2|$branch|numa:fake=2"
	 "main-none|$main|cache:none" "auto-none|$branch|cache:none" "off-none|$branch|numa:off,cache:none")
for r in $(seq "$reps"); do
	for c in "${configs[@]}"; do
		IFS='|' read -r name build conf <<<"$c"
		# pagealloc: total cycles per block at batch 1, 16, 256 (one thread)
		MAGPAGE_CONF=$conf LD_PRELOAD=$build/libmagpage.so $build/bench/bench_pagealloc \
			-b 1,16,256 -t 1 -r 5 | grep -v '^#' | cut -d, -f1,6 >>"$out/pa.$name"
		# pft, 2 threads, 64 MiB each: pages per wall second
		MAGPAGE_CONF=$conf LD_PRELOAD=$build/libmagpage.so $build/bench/bench_pft \
			-t 2 -m 64m -r 1 | grep -v '^#' | cut -d, -f14 >>"$out/pft.$name"
	done
done
python3 - "$out" <<'PY'
import os, statistics, sys
d = sys.argv[1]
names = ["main", "auto", "off", "fake2", "main-none", "auto-none", "off-none"]
def pa(name):
    rows = {}
    for line in open(os.path.join(d, "pa." + name)):
        b, v = line.strip().split(",")
        rows.setdefault(int(b), []).append(float(v))
    return {b: statistics.median(v) for b, v in rows.items()}
def pft(name):
    return statistics.median(float(l) for l in open(os.path.join(d, "pft." + name)))
print("pagealloc total cycles per block (median), ratio to main's same design; pft pages/s (median), ratio")
for n in names:
    base = "main-none" if n.endswith("-none") else "main"
    p, pb = pa(n), pa(base)
    cells = "  ".join(f"b{b}: {p[b]:7.1f} ({p[b] / pb[b]:.3f})" for b in sorted(p))
    print(f"{n:10s} {cells}  pft: {pft(n):10.0f} ({pft(n) / pft(base):.3f})")
PY
