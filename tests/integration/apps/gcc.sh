#!/usr/bin/env bash
# gcc -O2 under the allocator, on bench/gen-cc1-tu.py's kernel-style file
# (the main job's real program).
#
# Proves: the gcc driver and the programs it execs (cc1, as) run preloaded;
# cc1, whose obstacks and GC pages ask malloc for 8032/8168-byte and other
# near-page blocks millions of times in a kernel build, produces an object
# file byte-identical to the one gcc produces without the preload; and (check
# mode) those requests were served by the page caches, mostly from hits.
# Figure: seconds of the compile.  Size: 200 functions in check mode, else
# APPS_GCC_FUNCS (default 1500).
. "$(dirname "$0")/lib.sh"

need_prog gcc cmp
APP_STATS=(--min-allocs 100 --expect-program cc1)

funcs() { if [ "$SCALE" = test ]; then echo 200; else echo "${APPS_GCC_FUNCS:-1500}"; fi; }

# Inputs and references are named after their size, so runs of several
# sizes can share WORK.
app_prepare() {
	local n
	n=$(funcs)
	[ ! -e "$WORK/gcc/tu-$n.c" ] || return 0
	mkdir -p "$WORK/gcc"
	"$PY" "$APPS_REPO/bench/gen-cc1-tu.py" "$n" >"$WORK/gcc/tu-$n.tmp"
	mv "$WORK/gcc/tu-$n.tmp" "$WORK/gcc/tu-$n.c"
}

app_reference() {
	local n
	n=$(funcs)
	[ ! -e "$WORK/gcc/reference-$n.o" ] || return 0
	w 300 gcc -O2 -c "$WORK/gcc/tu-$n.c" -o "$WORK/gcc/reference-$n.tmp.o" \
		|| fail "gcc without the preload failed"
	mv "$WORK/gcc/reference-$n.tmp.o" "$WORK/gcc/reference-$n.o"
}

app_run() {
	local t0 n
	n=$(funcs)
	t0=$(now)
	m 900 gcc -O2 -c "$WORK/gcc/tu-$n.c" -o "$DIR/tu.o" 2>"$DIR/gcc.err" \
		|| { cat "$DIR/gcc.err" >&2; fail "gcc failed"; }
	figure gcc_O2_s "$(since "$t0")" lower s
	prepared
	[ ! -s "$DIR/gcc.err" ] || { cat "$DIR/gcc.err" >&2; fail "gcc printed diagnostics (a failed preload?)"; }
	cmp -s "$DIR/tu.o" "$WORK/gcc/reference-$n.o" || fail "the object differs from the unpreloaded reference"
	checked "object ($(stat -c %s "$DIR/tu.o") bytes, $n functions) identical to the reference"
	rm -f "$DIR/tu.o"
}

apps_main "$@"
