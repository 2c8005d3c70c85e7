#!/usr/bin/env bash
# Prepares devbench/ (git-ignored): the built benchmarks, libmagpage and the
# peer allocators with their libraries, plus the run script, so that the
# scalability run (threads 1..16) can be carried to a 16-core machine that
# has none of them installed.  Then, there:  OUT=dir bash devbench/run.sh
# usage: scripts/devbench-prepare.sh [build-dir]
case "${1:-}" in -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
b=${1:-build}
rm -rf devbench && mkdir -p devbench/lib
cp -L "$b/libmagpage.so.0" devbench/lib/libmagpage.so
cp "$b/bench/bench_pagealloc" "$b/bench/bench_pft" "$b/bench/bench_xthread" devbench/
cc -O2 -fno-builtin bench/drain.c -o devbench/drain -lpthread -ldl
for l in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 \
         /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 /lib/x86_64-linux-gnu/libunwind.so.8; do
	[ -e "$l" ] && cp -L "$l" devbench/lib/
done
cp scripts/devbench-run.sh devbench/run.sh
echo "devbench/ ready ($(du -sh devbench | cut -f1))"
