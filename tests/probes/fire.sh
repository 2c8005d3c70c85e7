#!/bin/bash
# fire.sh — one tracepoint fires and is counted (ctest probes.fire).
#
# Usage: fire.sh LIB DRIVER [N]
#
# Starts DRIVER (tests/probes/probe_driver) under LD_PRELOAD=LIB (and the
# environment's MAGPAGE_CONF: ctest runs it once per design), attaches
# bpftrace to LIB's magpage:mm_page_alloc and magpage:mm_page_free (for
# that pid only: the probes are attached to the library file, so every
# process mapping it fires them), lets the driver make N malloc+free pairs
# of 4096 bytes and N of 12288 bytes, and checks that at least N
# allocations and N frees were counted at order 0 and at order 2, with
# the order argument right (4096: 0; 12288, three pages: 2).
#
# Exit status: 0 counted, 1 wrong counts or a hang (each step is bounded
# by timeout), 2 usage error, 77 skipped (not root, no bpftrace, BPF or
# uprobes not allowed here), saying why.
set -u
export LC_ALL=C

case "${1:-}" in
-h|--help) sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
esac
[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: fire.sh LIB DRIVER [N] (--help)" >&2; exit 2; }
lib=$(readlink -f "$1") driver=$2 n=${3:-1000}
[ -r "$lib" ] || { echo "fire: no library '$1'" >&2; exit 2; }
[ -x "$driver" ] || { echo "fire: no driver '$driver'" >&2; exit 2; }

skip() { echo "probes.fire: SKIP: $*"; exit 77; }
fail() { echo "probes.fire: FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "not root: attaching uprobes needs root (CAP_BPF and CAP_PERFMON)"
command -v bpftrace >/dev/null || skip "bpftrace is not installed (scripts/install-deps.sh)"
[ -d /sys/bus/event_source/devices/uprobe ] || skip "this kernel has no uprobe event source"
why=$(timeout 30 bpftrace -e 'BEGIN { exit(); }' 2>&1 >/dev/null) ||
	skip "bpftrace cannot load a BPF program here: $(printf '%s' "$why" | grep -v RLIMIT | tail -1)"

tmp=$(mktemp -d) || fail "mktemp"
dpid='' tpid=''
cleanup() {
	[ -z "$tpid" ] || kill -INT "$tpid" 2>/dev/null
	[ -z "$dpid" ] || kill "$dpid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
mkfifo "$tmp/go" || fail "mkfifo"

# waitfor FILE PATTERN SECONDS: true once FILE has a line matching PATTERN.
waitfor() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

env LD_PRELOAD="$lib" timeout 60 "$driver" "$n" <"$tmp/go" >"$tmp/driver.out" 2>&1 &
dpid=$!
exec 3>"$tmp/go"          # opens once the driver has opened its end
waitfor "$tmp/driver.out" '^ready ' 20 || fail "the driver did not start: $(cat "$tmp/driver.out")"
pid=$(sed -n 's/^ready //p' "$tmp/driver.out")

cat >"$tmp/count.bt" <<BT
usdt:$lib:magpage:mm_page_alloc /pid == $pid/ { @alloc[arg1] = count(); }
usdt:$lib:magpage:mm_page_free /pid == $pid/ { @free[arg1] = count(); }
BT
timeout -s INT 90 bpftrace "$tmp/count.bt" >"$tmp/trace.out" 2>"$tmp/trace.err" &
tpid=$!
if ! waitfor "$tmp/trace.out" '^Attaching' 60; then
	skip "bpftrace could not attach to $lib: $(grep -v 'RLIMIT' "$tmp/trace.err" | tail -1)"
fi
sleep 1                   # "Attaching" comes before the last probe is in
echo go >&3
exec 3>&-
wait "$dpid"
rc=$? dpid=''
[ "$rc" -eq 0 ] || fail "the driver exited with $rc (124: it hung): $(cat "$tmp/driver.out")"
kill -INT "$tpid"
for ((i = 0; i < 300; i++)); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$tpid" 2>/dev/null && fail "bpftrace did not stop after SIGINT"
wait "$tpid" 2>/dev/null
tpid=''

# "@alloc[0]: 1003" -> the count, or 0.
get() { sed -n "s/^@$1\[$2\]: //p" "$tmp/trace.out"; }
a0=$(get alloc 0) a2=$(get alloc 2) f0=$(get free 0) f2=$(get free 2)
echo "probes.fire: driver pid $pid, $n pairs per size; mm_page_alloc order 0: ${a0:-0}," \
     "order 2: ${a2:-0}; mm_page_free order 0: ${f0:-0}, order 2: ${f2:-0}"
ok=1
for v in "${a0:-0}" "${a2:-0}" "${f0:-0}" "${f2:-0}"; do
	[ "$v" -ge "$n" ] || ok=0
done
if [ $ok = 0 ]; then
	echo "--- bpftrace output:"; cat "$tmp/trace.out"
	echo "--- bpftrace errors:"; grep -v 'RLIMIT\|uprobe_events\|failed to detach' "$tmp/trace.err"
	fail "expected at least $n of each"
fi
echo "probes.fire: ok"
