#!/usr/bin/env bash
# magpage-top as a person uses it, on a real terminal (tmux): start a
# program with live:1, run `magpage-top PID` in a tmux pane, capture the
# screen twice, check its fields and that the numbers move, press q and
# check it exited with status 0 and left the alternate screen; then the
# same with Ctrl-C, and the list mode (`magpage-top`) with q.
# Skipped (77) without tmux.  Bounded: ~5 s, every wait polls with a limit.
#   live_tmux.sh LIBMAGPAGE LIVE_PROG MAGPAGE_TOP
set -uo pipefail
lib=$1 prog=$2 top=$3
command -v tmux >/dev/null || { echo "live_tmux: SKIPPED: tmux is not installed (scripts/install-deps.sh)"; exit 77; }
tmp=$(mktemp -d)
sock=magpage-live-test-$$
T() { tmux -L "$sock" -f /dev/null "$@"; }
cleanup() { T kill-server 2>/dev/null; [ -n "${prog_pid:-}" ] && kill -9 "$prog_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "live_tmux: FAIL: $*" >&2; [ -f "$tmp/cap1" ] && cat "$tmp/cap1" >&2; exit 1; }

MAGPAGE_CONF=live:1 LD_PRELOAD=$lib timeout 60 "$prog" 40 >"$tmp/prog.out" 2>&1 &
for _ in $(seq 100); do grep -q '^ready' "$tmp/prog.out" && break; sleep 0.1; done
prog_pid=$(awk '/^ready/ {print $2}' "$tmp/prog.out")
[ -n "$prog_pid" ] || fail "live_prog did not start"

# open WINDOW ARGS...: magpage-top ARGS in a new 120x50 window; a shell
# around it writes its exit status to $tmp/WINDOW.status when it ends
# (tmux's own pane_dead_status is not always recorded).
open() {
	local w=$1; shift
	T new-session -d -s "$w" -x 120 -y 50 "$top $*; echo \$? >$tmp/$w.status" ||
		fail "tmux new-session"
	T set-option -t "$w" remain-on-exit on >/dev/null   # the screen after exit
}
capture() { T capture-pane -p -t "$1" >"$2"; }
# gone WINDOW WHAT: waits for the program to exit after WHAT; checks status 0.
gone() {
	for _ in $(seq 50); do
		[ -s "$tmp/$1.status" ] && break
		sleep 0.1
	done
	[ -s "$tmp/$1.status" ] || fail "$1: still running after $2"
	local st; st=$(cat "$tmp/$1.status")
	[ "$st" = 0 ] || fail "$1: exit status $st after $2"
}

# ---- one process, full screen ----------------------------------------------------
# Waits are polls with a limit, not fixed sleeps: a loaded machine may draw
# the first frames late.
counters() { grep -E '^(zone lock|caches|signals)' "$1"; }
open one "$prog_pid"
for _ in $(seq 100); do
	capture one "$tmp/cap1"
	grep -q '^ *0 *4K' "$tmp/cap1" && grep -Eq '^ +[0-9]+ +[0-9]+ +[-0-9]+ +[-0-9.%]+ +[0-9]+ +[0-9]+' "$tmp/cap1" && break
	sleep 0.1
done
moved=no
for _ in $(seq 100); do
	sleep 0.1
	capture one "$tmp/cap2"
	[ "$(counters "$tmp/cap1")" != "$(counters "$tmp/cap2")" ] && { moved=yes; break; }
done
for want in "magpage-top  pid $prog_pid (live_prog)" "cache bonwick" "pages      held" \
	    "zone lock" "refills" "drains" "hit rate" "purge" "rounding" "signals" \
	    "handler entries" "held back while in the zone" \
	    "free blocks per order (buddyinfo)" "cpu    pages" "q quits"; do
	grep -qF "$want" "$tmp/cap1" || fail "screen lacks '$want'"
done
grep -Eq '^ +0 +4K +[0-9]+' "$tmp/cap1" || fail "no order-0 row in the bar chart"
grep -Eq '^ +10 +4M +[0-9]+' "$tmp/cap1" || fail "no order-10 row in the bar chart"
grep -Eq '^ +[0-9]+ +[0-9]+ +- +- +[0-9]+ +[0-9]+' "$tmp/cap1" || fail "no CPU row with refills/s and drains/s"
# numbers move: the zone lock, caches and signals lines (counters and rates)
[ $moved = yes ] || fail "the counters did not move in 10 s: $(counters "$tmp/cap1")"
echo "live_tmux: first capture:"; counters "$tmp/cap1" | sed 's/^/    /'
echo "live_tmux: a later capture:"; counters "$tmp/cap2" | sed 's/^/    /'
T send-keys -t one q
gone one "q"
capture one "$tmp/after"
grep -qF "free blocks per order" "$tmp/after" && fail "the full screen is still shown after q (alternate screen not left)"

# ---- Ctrl-C restores the terminal too ---------------------------------------------
open two "$prog_pid"
for _ in $(seq 100); do capture two "$tmp/two"; grep -q "q quits" "$tmp/two" && break; sleep 0.1; done
T send-keys -t two C-c
gone two "Ctrl-C"

# ---- the list ------------------------------------------------------------------------
open three
for _ in $(seq 100); do
	capture three "$tmp/list"
	grep -Eq "^ +$prog_pid +live_prog " "$tmp/list" && break
	sleep 0.1
done
grep -qF "PAGES-HELD" "$tmp/list" || fail "list: no header"
grep -Eq "^ +$prog_pid +live_prog " "$tmp/list" || fail "list: no line for $prog_pid: $(cat "$tmp/list")"
T send-keys -t three q
gone three "q (list)"
echo "live_tmux: PASS"
