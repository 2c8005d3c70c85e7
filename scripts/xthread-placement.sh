#!/usr/bin/env bash
# The two-thread xthread patterns, each run with the two CPUs' distance
# measured just before and just after it (bench_pingpong: TSC cycles of a
# cache-line round trip), and the results grouped by that distance.  On a
# VM whose host moves its virtual CPUs, two-thread throughput moves 3-4x
# with their placement for every allocator, from one second to the next,
# and a median over repetitions mostly says which placements each
# allocator drew (docs/results/issue9/session22.md).  A run whose two
# readings disagree is counted as "moved".
#
# usage: scripts/xthread-placement.sh [ROUNDS [SECONDS]]     (default 10, 0.5)
#
# Environment: XP_BUILD (build), XP_ALLOCS (jemalloc,mimalloc,tcmalloc,magpage),
# XP_MODES (server,prodcons,random), XP_NEAR (400: a round trip below it is
# "near") and XP_FAR (600: above it "far").  The raw lines go to stdout's
# first part ("round alloc mode before after mops"), the summary after them
# (per placement and pattern: each allocator's runs, median [min..max]).
set -euo pipefail

case "${1:-}" in
-h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
esac
rounds=${1:-10}
secs=${2:-0.5}
build=${XP_BUILD:-build}
allocs=${XP_ALLOCS:-jemalloc,mimalloc,tcmalloc,magpage}
modes=${XP_MODES:-server,prodcons,random}
near=${XP_NEAR:-400}
far=${XP_FAR:-600}
libdir=/usr/lib/x86_64-linux-gnu

lib_of() {
	case "$1" in
	glibc) echo "" ;;
	jemalloc) echo "$libdir/libjemalloc.so.2" ;;
	mimalloc) echo "$libdir/libmimalloc.so.2" ;;
	tcmalloc) echo "$libdir/libtcmalloc.so.4" ;;
	magpage) echo "$PWD/$build/libmagpage.so" ;;
	*) echo "xthread-placement: unknown allocator $1" >&2; exit 2 ;;
	esac
}

for prog in bench_pingpong bench_xthread; do
	[ -x "$build/bench/$prog" ] ||
		{ echo "xthread-placement: build $build/bench/$prog first" >&2; exit 2; }
done
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for r in $(seq "$rounds"); do
	for a in ${allocs//,/ }; do
		lib=$(lib_of "$a")
		for m in ${modes//,/ }; do
			before=$("$build/bench/bench_pingpong")
			mops=$(LD_PRELOAD=$lib "$build/bench/bench_xthread" -m "$m" -t 2 -d "$secs" |
			       grep -v '^#' | cut -d, -f5)
			after=$("$build/bench/bench_pingpong")
			echo "$r $a $m $before $after $mops" | tee -a "$raw"
		done
	done
done
python3 - "$raw" "$near" "$far" "$allocs" "$modes" <<'PY'
import collections, statistics, sys
raw, near, far = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
allocs, modes = sys.argv[4].split(','), sys.argv[5].split(',')
groups = collections.defaultdict(list)
def place(c):
    return 'near' if c < near else 'far' if c > far else 'between'
for line in open(raw):
    _, a, m, before, after, mops = line.split()
    p = place(int(before))
    groups[(p if p == place(int(after)) else 'moved', m, a)].append(float(mops))
print(f"\nM ops/s by placement (near: round trip < {near} cycles, far: > {far}):")
for p in ('near', 'far', 'between', 'moved'):
    if not any(k[0] == p for k in groups):
        continue
    print(f"{p}:")
    for m in modes:
        cells = []
        for a in allocs:
            v = groups.get((p, m, a), [])
            cell = f"{statistics.median(v):.2f} [{min(v):.1f}..{max(v):.1f}]" if v else "-"
            cells.append(f"{a} n={len(v)} {cell}")
        print(f"  {m:9s} " + " | ".join(cells))
PY
