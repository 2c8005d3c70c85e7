#!/usr/bin/env bash
# Scalability run on the 16-core device: pagealloc at 1..16 threads, pft,
# and the global-drain cost, under each allocator.  Prepared here (by
# scripts/devbench-prepare.sh, which copies this file to devbench/run.sh),
# run there.
# usage: OUT=DIR bash devbench/run.sh     (results in DIR, default /tmp/out)
case "${1:-}" in -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -u
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
L=$PWD/lib
export LD_LIBRARY_PATH=$L
nproc > "$OUT/machine.txt"; grep -m1 'model name' /proc/cpuinfo >> "$OUT/machine.txt"; uname -r >> "$OUT/machine.txt"; ldd --version | head -1 >> "$OUT/machine.txt"
allocs=("jemalloc|$L/libjemalloc.so.2|" "tcmalloc|$L/libtcmalloc.so.4|" "glibc||" \
        "rfc2013|$L/libmagpage.so|preset:rfc2013" "magpage|$L/libmagpage.so|" \
        "vanilla39|$L/libmagpage.so|preset:vanilla39" "linux6|$L/libmagpage.so|preset:linux6" \
        "none|$L/libmagpage.so|cache:none")
run() { # name pre conf cmd...
	local n=$1 p=$2 c=$3; shift 3
	env ${p:+LD_PRELOAD=$p} ${c:+MAGPAGE_CONF=$c} timeout 60 "$@"
}
: > "$OUT/pagealloc.csv"
for rep in $(seq 1 ${REPS:-3}); do
 for t in ${THREADS:-1 2 4 8 16}; do
  for a in "${allocs[@]}"; do
	IFS='|' read -r n p c <<<"$a"
	run "$n" "$p" "$c" ./bench_pagealloc -b 1,16,64,1024 -t $t -r 5 -i 500 2>/dev/null | grep -v '^#' | sed "s/^/$n,$rep,/" >> "$OUT/pagealloc.csv"
  done
 done
done
: > "$OUT/pft.csv"
for t in ${PFT_THREADS:-1 4 8 16}; do
  for a in "${allocs[@]}"; do
	IFS='|' read -r n p c <<<"$a"
	run "$n" "$p" "$c" ./bench_pft -t $t -m $((512<<20)) -r 3 2>/dev/null | grep -v '^#' | sed "s/^/$n,/" >> "$OUT/pft.csv"
  done
done
: > "$OUT/drain.txt"
for c in preset:vanilla39 preset:linux6 preset:rfc2013 magazines:16; do
	run x "$L/libmagpage.so" "$c" ./drain -f 180 -r 100 >> "$OUT/drain.txt" 2>&1
done
echo done
