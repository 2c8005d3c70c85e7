#!/usr/bin/env bash
# The README's main command: install what is missing, build Release into
# build/ (the library, magpage-conf and the benchmark programs it runs;
# scripts/test.sh builds and runs the tests), then the short default
# comparison (scripts/compare.py --quick):
# libmagpage under preset:rfc2013 and under its default configuration,
# against jemalloc (the baseline column), glibc and the fastest peers,
# tcmalloc and mimalloc, interleaved, 3 rounds (the compile 2):
#   - pagealloc (the RFC's microbenchmark) at 12 batch sizes, 1..nproc threads
#   - pft (page-fault test) at 256 MiB, 1..nproc threads
#   - one real program: gcc -O2 -c of a generated kernel-style file (cc1
#     makes ~8.8 M malloc-family calls, ~173 K page-sized, mostly 8032 bytes
#     as in a kernel build); its object must be byte-identical under every
#     allocator
# printing the mmtests-style tables and the paths of the plots.  The timed
# runs do not collect libmagpage statistics (they cost time); one more,
# untimed, compile does, and its cc1 report is summarised at the end.
#
# usage: scripts/main.sh            (no arguments; --help: this text)
#
# Environment: MAIN_REPS (3), MAIN_APP_REPS (2: rounds of the compile, at
# most MAIN_REPS), MAIN_FUNCS (1000: size of the generated file),
# MAIN_BUILD (build: the build directory), MAIN_BUILD_ALL (1: build every
# target, tests included).  Under 6 minutes (5 min 40 s) on 2 idle cores, from a
# fresh clone, build included (much more on a busy machine).  Results land in results/main/ (tables.txt,
# summary.md, results.json, results.csv, plots/*.png).
# Exits non-zero if the build fails, any run crashes, hangs or fails its
# own checks (a corrupted block, a different object file), or the stats
# run fails.
set -euo pipefail

case "${1:-}" in
-h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
'') ;;
*) echo "main: no arguments (settings come from the environment; --help)" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
reps=${MAIN_REPS:-3}
app_reps=${MAIN_APP_REPS:-2}
funcs=${MAIN_FUNCS:-1000}
results=results
out=$results/main
stats_dir=$results/main-stats
build=${MAIN_BUILD:-build}
lib=$repo/$build/libmagpage.so

say() { printf '\n== %s\n' "$*"; }

say "dependencies (scripts/install-deps.sh main)"
scripts/install-deps.sh main

say "build: Release into $build/"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
# Only what the comparison runs: the whole tree (tests, sanitizer and fuzz
# builds) would take most of the job's time.
targets=(--target magpage magpage-conf bench_pagealloc bench_pft)
[ "${MAIN_BUILD_ALL:-0}" = 1 ] && targets=()
cmake --build "$build" -j"$(nproc)" "${targets[@]}"
[ -f "$lib" ] || { echo "main: the build did not produce $lib" >&2; exit 1; }

say "comparison: pagealloc, pft, gcc -O2 ($funcs functions); $reps interleaved rounds ($app_reps of gcc)"
fail=0
APPS_GCC_FUNCS=$funcs python3 scripts/compare.py --quick \
	--bench pagealloc,pft,apps --apps gcc \
	--alloc jemalloc,glibc,tcmalloc,mimalloc,magpage-rfc2013,magpage \
	--baseline jemalloc \
	--reps "$reps" --bench-reps "apps=$app_reps" \
	--build "$build" --out "$out" || fail=1

say "libmagpage statistics: one more gcc run, untimed, stats on"
rm -rf "$stats_dir"
mkdir -p "$stats_dir"
stats_file=$stats_dir/stats.json
python3 bench/gen-cc1-tu.py "$funcs" >"$stats_dir/tu.c"
# The unpreloaded reference compiles on the other core meanwhile (untimed).
gcc -O2 -c "$stats_dir/tu.c" -o "$stats_dir/reference.o" &
ref_pid=$!
rc=0
env LD_PRELOAD="$lib" MAGPAGE_CONF="stats:json,stats_file:$stats_file" \
	gcc -O2 -c "$stats_dir/tu.c" -o "$stats_dir/stats.o" 2>"$stats_dir/gcc.err" || rc=$?
ref_rc=0
wait "$ref_pid" || ref_rc=$?
if [ "$ref_rc" -ne 0 ]; then
	echo "main: FAILED: the unpreloaded reference compile (exit $ref_rc)" >&2
	fail=1
elif [ "$rc" -ne 0 ] || [ -s "$stats_dir/gcc.err" ]; then
	echo "main: FAILED: gcc under libmagpage with stats on (exit $rc):" >&2
	tail -20 "$stats_dir/gcc.err" | sed 's/^/    /' >&2
	fail=1
elif ! cmp -s "$stats_dir/stats.o" "$stats_dir/reference.o"; then
	echo "main: FAILED: gcc under libmagpage with stats on produced a different object" >&2
	fail=1
elif [ ! -s "$stats_file" ]; then
	echo "main: FAILED: libmagpage wrote no statistics to $stats_file; was it preloaded?" >&2
	fail=1
else
	echo "(every preloaded process — gcc, cc1, as — appended its report to $stats_file)"
	python3 scripts/stats-summary.py "$stats_file" cc1 | tee "$stats_dir/summary.txt" || fail=1
fi
rm -f "$stats_dir/stats.o" "$stats_dir/reference.o" "$stats_dir/tu.c"

say "results"
echo "tables:                $repo/$out/tables.txt"
echo "data:                  $repo/$out/results.json, $repo/$out/results.csv"
for p in "$out"/plots/*.png; do
	[ -e "$p" ] && echo "plot:                  $repo/$p"
done
echo "libmagpage statistics: $repo/$stats_file (summary: $repo/$stats_dir/summary.txt)"
exit "$fail"
