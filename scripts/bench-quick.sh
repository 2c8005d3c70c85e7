#!/usr/bin/env bash
# The speed check: bench_pagealloc at batches 1, 64, 4096 on 1 and 2 threads,
# 4 KiB blocks, under libmagpage (preset:rfc2013 and its default), glibc and
# jemalloc.  The allocators run interleaved (A B C D A B C D ...) for several
# rounds so that machine drift hits all alike; the table gives, per (batch,
# threads), the median ns per block for one malloc + one free across rounds,
# the min..max over rounds, and the ratio to jemalloc (jemalloc = 1.00).
#
#   scripts/bench-quick.sh [path/to/libmagpage.so] [path/to/bench_pagealloc]
#
# Environment: BENCH_ROUNDS (5), BENCH_BATCHES (1,64,4096), BENCH_THREADS
# ("1 2"), BENCH_ARGS (extra bench_pagealloc options, e.g. "-m remote"),
# RESULTS_DIR (results/ at the top of the repository).
# Raw CSVs go to $RESULTS_DIR/bench-quick/, the table to
# $RESULTS_DIR/bench-quick.txt.  Exits 1 if any run failed (a crash, a hang
# past 120 s, or bench_pagealloc finding a corrupted or overlapping block).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
lib=${1:-$repo/build/libmagpage.so}
bench=${2:-$repo/build/bench/bench_pagealloc}
rounds=${BENCH_ROUNDS:-5}
batches=${BENCH_BATCHES:-1,64,4096}
threads=${BENCH_THREADS:-1 2}
extra=${BENCH_ARGS:-}
results=${RESULTS_DIR:-$repo/results}
raw=$results/bench-quick
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2

if [ ! -x "$bench" ]; then
	echo "bench-quick: no benchmark at $bench (build it: cmake --build build)" >&2
	exit 2
fi

# name | LD_PRELOAD | MAGPAGE_CONF ('-' = unset)
allocs=()
if [ -f "$lib" ]; then
	lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
	allocs+=("magpage-rfc2013|$lib|preset:rfc2013" "magpage|$lib|-")
else
	echo "bench-quick: skipping libmagpage: $lib not found" >&2
fi
allocs+=("glibc|-|-")
if [ -f "$jemalloc" ]; then
	allocs+=("jemalloc|$jemalloc|-")
else
	echo "bench-quick: skipping jemalloc: $jemalloc not installed" \
	     "(scripts/install-deps.sh)" >&2
fi

rm -rf "$raw"
mkdir -p "$raw"
failed=()
declare -A dead=()
echo "bench-quick: $rounds rounds x ${#allocs[@]} allocators x threads {$threads}," \
     "batches $batches; raw CSVs in $raw" >&2

for ((r = 1; r <= rounds; r++)); do
	for a in "${allocs[@]}"; do
		IFS='|' read -r name pre conf <<<"$a"
		[ -z "${dead[$name]:-}" ] || continue
		for t in $threads; do
			envs=(env -u LD_PRELOAD -u MAGPAGE_CONF)
			[ "$pre" = - ] || envs+=("LD_PRELOAD=$pre")
			[ "$conf" = - ] || envs+=("MAGPAGE_CONF=$conf")
			f=$raw/$name.t$t.r$r
			rc=0
			# shellcheck disable=SC2086  # BENCH_ARGS is a word list
			timeout 120 "${envs[@]}" "$bench" -b "$batches" -t "$t" \
				$extra >"$f.csv" 2>"$f.err" || rc=$?
			if [ "$rc" -ne 0 ]; then
				echo "bench-quick: FAILED: $name, $t threads, round $r" \
				     "(exit $rc$([ $rc = 124 ] && echo ', timed out after 120 s')):" >&2
				tail -5 "$f.err" | sed 's/^/    /' >&2
				failed+=("$name")
				dead[$name]=1
				rm -f "$f.csv"
				break
			fi
			rm -f "$f.err"
		done
	done
	echo "bench-quick: round $r/$rounds done" >&2
done

python3 - "$raw" "$rounds" "${allocs[@]}" <<'EOF' | tee "$results/bench-quick.txt"
import csv, glob, os, statistics, sys

raw, rounds, allocs = sys.argv[1], int(sys.argv[2]), [a.split('|')[0] for a in sys.argv[3:]]
data = {}          # (alloc, batch, threads) -> [ns per malloc+free, one per round]
hz = {}
for path in sorted(glob.glob(os.path.join(raw, '*.csv'))):
    alloc = os.path.basename(path).split('.')[0]
    with open(path) as f:
        for line in f:
            if line.startswith('#'):
                for tok in line.split():
                    if tok.startswith('tsc_hz='):
                        hz.setdefault(alloc, []).append(float(tok[7:]))
                continue
            row = line.strip().split(',')
            if len(row) >= 7:
                key = (alloc, int(row[0]), int(row[1]))
                data.setdefault(key, []).append(float(row[6]))

keys = sorted({(b, t) for (_, b, t) in data})
shown = [a for a in allocs if any((a, b, t) in data for b, t in keys)]
base = 'jemalloc' if 'jemalloc' in shown else None
all_hz = [h for v in hz.values() for h in v]
print(f"# pagealloc quick check: ns per block for one malloc + one free (4 KiB blocks), "
      f"median of {rounds} interleaved rounds [min..max], x = ratio to "
      f"{base or '(jemalloc missing: no ratio)'}; lower is better")
if all_hz:
    print(f"# TSC {statistics.median(all_hz) / 1e9:.3f} GHz; each round's value is "
          f"bench_pagealloc's trimmed mean of 10 samples")

cells = {}
for b, t in keys:
    ref = statistics.median(data[(base, b, t)]) if base and (base, b, t) in data else None
    for a in shown:
        v = data.get((a, b, t))
        if not v:
            cells[(a, b, t)] = 'n/a'
            continue
        m = statistics.median(v)
        s = f"{m:.1f} [{min(v):.1f}..{max(v):.1f}]"
        if ref:
            s += f" {m / ref:.2f}x"
        if len(v) < rounds:
            s += f" ({len(v)} rounds)"
        cells[(a, b, t)] = s

head = ['batch', 'threads'] + shown
rows = [[str(b), str(t)] + [cells[(a, b, t)] for a in shown] for b, t in keys]
w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
fmt = lambda r: '  '.join(c.rjust(w[i]) for i, c in enumerate(r))
print(fmt(head))
print('  '.join('-' * x for x in w))
for r in rows:
    print(fmt(r))
EOF

if [ ${#failed[@]} -gt 0 ]; then
	echo "bench-quick: FAILED runs: ${failed[*]} (see $raw/*.err)" >&2
	exit 1
fi
