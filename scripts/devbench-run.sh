#!/usr/bin/env bash
# Scalability run on the 16-core device, under each allocator:
#   pagealloc.csv  bench_pagealloc, each thread allocating and freeing its
#                  own batch, threads 1..16, batches 1..16384;
#   remote.csv     bench_pagealloc -m remote: one thread of each pair
#                  allocates, the other frees;
#   xthread.csv    bench_xthread's server, prodcons and random patterns;
#   pft.csv, drain.txt (only with PFT=1 / DRAIN=1) the page-fault and
#                  global-drain runs of the first device run.
# Each file grows line by line, so a run cut short still reports what it
# measured; past DEADLINE seconds (default 480) the remaining parts are
# skipped.  Prepared here (scripts/devbench-prepare.sh copies this file to
# devbench/run.sh), run there.
# usage: OUT=DIR bash devbench/run.sh     (results in DIR, default /tmp/out)
#   REPS (3), THREADS ("1 2 4 8 16"), BATCHES (1,16,64,1024,4096,16384),
#   REMOTE_THREADS ("2 16"), XTHREAD_THREADS ("16"), DEADLINE (480), EXTRA, SKIP
case "${1:-}" in -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -u
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
L=$PWD/lib
export LD_LIBRARY_PATH=$L
REPS=${REPS:-3}
DEADLINE=${DEADLINE:-480}
start=$SECONDS
{ nproc; grep -m1 'model name' /proc/cpuinfo; uname -r; ldd --version | head -1; } > "$OUT/machine.txt"
peers=("jemalloc|$L/libjemalloc.so.2|" "tcmalloc|$L/libtcmalloc.so.4|" \
       "mimalloc|$L/libmimalloc.so.2|" "glibc||")
designs=("magpage|$L/libmagpage.so|" "vanilla39|$L/libmagpage.so|preset:vanilla39" \
         "linux6|$L/libmagpage.so|preset:linux6" "rfc2013|$L/libmagpage.so|preset:rfc2013" \
         "none|$L/libmagpage.so|cache:none")
run() { # pre conf cmd...
	local p=$1 c=$2; shift 2
	env ${p:+LD_PRELOAD=$p} ${c:+MAGPAGE_CONF=$c} timeout 60 "$@"
}
late() { # part: true (and says so) once the deadline has passed
	if (( SECONDS - start > DEADLINE )); then
		echo "deadline: $1 skipped at $((SECONDS - start)) s" | tee -a "$OUT/log.txt"
		return 0
	fi
	return 1
}
each() { # csv allocs-array-name cmd...: one line per result, prefixed name,rep,
	local csv=$1 arr=$2[@]; shift 2
	local a n p c
	for a in "${!arr}"; do
		IFS='|' read -r n p c <<<"$a"
		run "$p" "$c" "$@" 2>>"$OUT/log.txt" | grep -v '^#' | sed "s/^/$n,$rep,/" >> "$OUT/$csv"
	done
}
# EXTRA: more columns, "name|library|conf;...", a library relative to this
# directory (a build from before a change, say), run with the peers and the
# default in every part.
extra=()
IFS=';' read -r -a extra <<<"${EXTRA:-}"
for i in "${!extra[@]}"; do extra[i]=$(sed "s#|lib/#|$PWD/lib/#" <<<"${extra[i]}"); done
all=("${peers[@]}" "${designs[0]}" "${extra[@]}" "${designs[@]:1}")
fast=("${peers[@]}" "${designs[0]}" "${extra[@]}" "${designs[@]:1:2}")
# SKIP: names left out of every part ("rfc2013 none", say)
for s in ${SKIP:-}; do
	for i in "${!all[@]}"; do [[ ${all[i]} == "$s|"* ]] && unset 'all[i]'; done
	for i in "${!fast[@]}"; do [[ ${fast[i]} == "$s|"* ]] && unset 'fast[i]'; done
done
: > "$OUT/log.txt"; : > "$OUT/pagealloc.csv"; : > "$OUT/remote.csv"; : > "$OUT/xthread.csv"
for rep in $(seq 1 "$REPS"); do
	for t in ${THREADS:-1 2 4 8 16}; do
		late "pagealloc rep $rep t $t" && break 2
		each pagealloc.csv all ./bench_pagealloc -b "${BATCHES:-1,16,64,1024,4096,16384}" -t "$t" -r 5 -i 500
	done
	echo "pagealloc rep $rep done at $((SECONDS - start)) s" >> "$OUT/log.txt"
done
for rep in $(seq 1 "$REPS"); do
	for t in ${REMOTE_THREADS:-2 16}; do
		late "remote rep $rep t $t" && break 2
		each remote.csv fast ./bench_pagealloc -m remote -b 1,64,1024 -t "$t" -r 5 -i 500
	done
done
for rep in $(seq 1 "$REPS"); do
	for t in ${XTHREAD_THREADS:-16}; do
		for m in server prodcons random; do
			late "xthread rep $rep $m t $t" && break 3
			each xthread.csv fast ./bench_xthread -m "$m" -t "$t" -d 1
		done
	done
done
if [ "${PFT:-0}" = 1 ]; then
	: > "$OUT/pft.csv"
	for t in ${PFT_THREADS:-1 4 8 16}; do
		rep=1; each pft.csv all ./bench_pft -t "$t" -m $((512<<20)) -r 3
	done
fi
if [ "${DRAIN:-0}" = 1 ]; then
	: > "$OUT/drain.txt"
	for c in preset:vanilla39 preset:linux6 preset:rfc2013 magazines:16; do
		run "$L/libmagpage.so" "$c" ./drain -f 180 -r 100 >> "$OUT/drain.txt" 2>&1
	done
fi
echo "done in $((SECONDS - start)) s" | tee -a "$OUT/log.txt"
