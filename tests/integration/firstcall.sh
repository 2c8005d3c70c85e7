#!/bin/bash
# firstcall.sh — first allocator calls reach an uninitialised libmagpage.
#
# Usage: firstcall.sh LIBMAGPAGE FIRSTCALL_EXE FIRSTCALL_LIB HELLO_EXE
#
# Proves: (1) a program whose first allocator calls, made by constructors
# before main, are free(NULL), malloc_usable_size(NULL), malloc(8192) runs
# correctly under the preload (firstcall.c checks the results) — and, from
# LD_DEBUG, that the library constructor making them ran before
# libmagpage's, so the test really covers "before initialisation";
# (2) a C++ iostream hello world prints its line, gets its page-sized
# objects from the zone and exits 0.
set -u
lib=$1 firstcall=$2 firstcall_lib=$3 hello=$4
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

# (1) C: first calls before any constructor of libmagpage.
LD_PRELOAD=$lib LD_DEBUG=files LD_DEBUG_OUTPUT=$tmp/ld \
	"$firstcall" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || fail "firstcall exited $rc: $(cat "$tmp/out" "$tmp/err")"
grep -qx 'firstcall ok' "$tmp/out" || fail "firstcall printed: $(cat "$tmp/out")"
[ -s "$tmp/err" ] && fail "firstcall wrote to stderr: $(cat "$tmp/err")"
inits=$(cat "$tmp"/ld.* | grep 'calling init:')
n_first=$(printf '%s\n' "$inits" | grep -n "calling init: .*$(basename "$firstcall_lib")" | cut -d: -f1)
n_mag=$(printf '%s\n' "$inits" | grep -n 'calling init: .*libmagpage' | cut -d: -f1)
if [ -z "$n_first" ] || [ -z "$n_mag" ]; then
	fail "LD_DEBUG shows no init of $(basename "$firstcall_lib") or libmagpage: $inits"
elif [ "$n_first" -ge "$n_mag" ]; then
	fail "libmagpage was initialised before the first-call library: $inits"
fi

# (2) C++: iostream hello world.
LD_PRELOAD=$lib "$hello" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || fail "hello exited $rc: $(cat "$tmp/out" "$tmp/err")"
grep -qx 'hello from C++ under libmagpage' "$tmp/out" || fail "hello printed: $(cat "$tmp/out")"
grep -qx 'owned 1 1' "$tmp/out" || fail "C++ page-sized objects not from the zone: $(cat "$tmp/out")"
[ -s "$tmp/err" ] && fail "hello wrote to stderr: $(cat "$tmp/err")"

[ $status -eq 0 ] && echo "firstcall.sh: all checks passed"
exit $status
