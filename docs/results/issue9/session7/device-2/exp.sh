#!/usr/bin/env bash
# one-off experiment on the device: numa layout, depot cap, stats at 16 threads
set -u
cd "$(dirname "$0")"
L=$PWD/lib; export LD_LIBRARY_PATH=$L
O=${OUT:-/tmp/out}; mkdir -p $O
{ nproc; lscpu; ls /sys/devices/system/node/; cat /sys/devices/system/node/online; numactl -H 2>&1 | head; } > $O/machine.txt 2>&1
M=$L/libmagpage.so
r() { local n=$1 p=$2 c=$3; shift 3; env ${p:+LD_PRELOAD=$p} ${c:+MAGPAGE_CONF=$c} timeout 60 "$@" 2>>$O/err.txt | grep -v '^#' | sed "s/^/$n,$rep,/"; }
: > $O/exp.csv; : > $O/remote.csv
for rep in 1 2; do
 for t in 8 16; do
  r magpage $M "" ./bench_pagealloc -b 16,1024,4096,16384 -t $t -r 5 -i 500 >> $O/exp.csv
  r d256k $M depot_pages:262144 ./bench_pagealloc -b 16,1024,4096,16384 -t $t -r 5 -i 500 >> $O/exp.csv
  r mimalloc $L/libmimalloc.so.2 "" ./bench_pagealloc -b 16,1024,4096,16384 -t $t -r 5 -i 500 >> $O/exp.csv
 done
 r magpage $M "" ./bench_pagealloc -m remote -b 1,64,1024 -t 16 -r 5 -i 500 >> $O/remote.csv
 r d256k $M depot_pages:262144 ./bench_pagealloc -m remote -b 1,64,1024 -t 16 -r 5 -i 500 >> $O/remote.csv
 r mimalloc $L/libmimalloc.so.2 "" ./bench_pagealloc -m remote -b 1,64,1024 -t 16 -r 5 -i 500 >> $O/remote.csv
 r magpage4 $M "" ./bench_pagealloc -m remote -b 1,64,1024 -t 4 -r 5 -i 500 >> $O/remote.csv
done
S=$O/stats.txt; : > $S
rep=s
for a in "pagealloc -b 16384 -t 16" "pagealloc -b 4096 -t 16" "pagealloc -m remote -b 1024 -t 16" "pagealloc -m remote -b 64 -t 16" "xthread -m server -t 16" "xthread -m random -t 16"; do
  echo "=== $a" >> $S
  r stats $M "stats:1,stats_file:$S" ./bench_$a >> $S
done
echo done
