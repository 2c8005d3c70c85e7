#!/bin/bash
# fire.sh — the page tracepoints fire and are counted, under every cache
# design (ctest probes.fire).
#
# Usage: fire.sh LIB DRIVER N CONF...
#
# Attaches bpftrace to LIB's magpage:mm_page_alloc and magpage:mm_page_free
# (counted per pid and order), then runs DRIVER
# (tests/probes/probe_driver) under LD_PRELOAD=LIB once per CONF, as its
# MAGPAGE_CONF ("-" for none).  Each run makes N malloc+free pairs of 4096
# bytes and N of 12288 bytes; the test checks that at least N allocations
# and N frees were counted for that run at order 0 and at order 2, which
# also checks the order argument (4096: 0; 12288, three pages: 2).
#
# Exit status: 0 counted, 1 wrong counts or a hang (each step is bounded
# by timeout), 2 usage error, 77 skipped (not root, no bpftrace, BPF or
# uprobes not allowed here), saying why.
set -u
export LC_ALL=C

case "${1:-}" in
-h|--help) sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
esac
[ $# -ge 4 ] || { echo "usage: fire.sh LIB DRIVER N CONF... (--help)" >&2; exit 2; }
lib=$(readlink -f "$1") driver=$2 n=$3
shift 3
[ -r "$lib" ] || { echo "fire: no library '$lib'" >&2; exit 2; }
[ -x "$driver" ] || { echo "fire: no driver '$driver'" >&2; exit 2; }
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "fire: N must be a positive number" >&2; exit 2; }

skip() { echo "probes.fire: SKIP: $*"; exit 77; }
fail() { echo "probes.fire: FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "not root: attaching uprobes needs root (CAP_BPF and CAP_PERFMON)"
command -v bpftrace >/dev/null || skip "bpftrace is not installed (scripts/install-deps.sh)"
[ -d /sys/bus/event_source/devices/uprobe ] || skip "this kernel has no uprobe event source"
why=$(timeout 30 bpftrace -e 'BEGIN { exit(); }' 2>&1 >/dev/null) ||
	skip "bpftrace cannot load a BPF program here: $(printf '%s' "$why" | grep -v RLIMIT | tail -1)"

tmp=$(mktemp -d) || fail "mktemp"
tpid=''
cleanup() {
	[ -z "$tpid" ] || kill -INT "$tpid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# waitfor FILE PATTERN SECONDS: true once FILE has a line matching PATTERN.
waitfor() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# A private copy: uprobes attach to a file (its inode), so tracing the
# build's library would also trap in every other process mapping it
# meanwhile, such as the tests ctest runs beside this one (under valgrind,
# which runs the library's code translated, the trap kills the process).
cp "$lib" "$tmp/libmagpage.so" || fail "cannot copy $lib"
lib=$tmp/libmagpage.so

cat >"$tmp/count.bt" <<BT
usdt:$lib:magpage:mm_page_alloc { @alloc[pid, arg1] = count(); }
usdt:$lib:magpage:mm_page_free { @free[pid, arg1] = count(); }
BT
timeout -s INT 120 bpftrace "$tmp/count.bt" >"$tmp/trace.out" 2>"$tmp/trace.err" &
tpid=$!
if ! waitfor "$tmp/trace.out" '^Attaching' 60; then
	skip "bpftrace could not attach to $lib: $(grep -v 'RLIMIT' "$tmp/trace.err" | tail -1)"
fi
sleep 1                   # "Attaching" comes before the last probe is in

pids=()
for conf in "$@"; do
	[ "$conf" = - ] && conf=''
	echo go | env LD_PRELOAD="$lib" MAGPAGE_CONF="$conf" timeout 60 "$driver" "$n" \
		>"$tmp/driver.out" 2>&1
	rc=$?
	[ "$rc" -eq 0 ] || fail "the driver, MAGPAGE_CONF='$conf', exited with $rc (124: it hung): $(cat "$tmp/driver.out")"
	pids+=("$(sed -n 's/^ready //p' "$tmp/driver.out")")
done
kill -INT "$tpid"
for ((i = 0; i < 300; i++)); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$tpid" 2>/dev/null && fail "bpftrace did not stop after SIGINT"
wait "$tpid" 2>/dev/null
tpid=''

# "@alloc[1234, 0]: 1000" -> the count, or 0.
get() { sed -n "s/^@$1\[$2, $3\]: //p" "$tmp/trace.out"; }
ok=1 i=0
for conf in "$@"; do
	pid=${pids[$i]}
	i=$((i + 1))
	a0=$(get alloc "$pid" 0) a2=$(get alloc "$pid" 2)
	f0=$(get free "$pid" 0) f2=$(get free "$pid" 2)
	line="MAGPAGE_CONF='${conf#-}': mm_page_alloc order 0: ${a0:-0}, order 2: ${a2:-0};"
	line="$line mm_page_free order 0: ${f0:-0}, order 2: ${f2:-0}"
	short=0
	for v in "${a0:-0}" "${a2:-0}" "${f0:-0}" "${f2:-0}"; do
		[ "$v" -ge "$n" ] || short=1
	done
	if [ $short = 1 ]; then
		echo "probes.fire: $line: FEWER THAN $n"
		ok=0
	else
		echo "probes.fire: $line"
	fi
done
if [ $ok = 0 ]; then
	echo "--- bpftrace output:"; cat "$tmp/trace.out"
	echo "--- bpftrace errors:"; grep -v 'RLIMIT\|uprobe_events\|failed to detach' "$tmp/trace.err"
	fail "expected at least $n of each, for each configuration"
fi
echo "probes.fire: ok"
