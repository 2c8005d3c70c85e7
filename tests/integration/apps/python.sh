#!/usr/bin/env bash
# python3 under the allocator, byte-compiling a copy of its standard library
# (without its test suite; check and quick scale also without idlelib,
# tkinter and lib2to3).
#
# Proves: Debian's python3 (whose object allocator asks malloc for 8 KiB-ish
# and 4-5 KiB blocks) runs compileall preloaded, in parallel worker
# processes (one per CPU), and exits 0; every .py got its .pyc (check mode:
# at the three optimisation levels); and every .pyc holds exactly the code
# object that an unpreloaded python3 compiles from the same source
# (marshal-loaded and compared, since .pyc bytes themselves depend on
# reference counts).  Check mode: the page-sized requests were served by the
# page caches, mostly from hits.  Figure: seconds of compileall.
#
# compileall runs as `compileall.main()` with the multiprocessing start
# method set to "spawn", which is `python3 -m compileall` except for how the
# workers start: forked workers leave through os._exit(), which skips every
# exit handler, so their statistics would never be written; spawned workers
# are fresh interpreters that exit normally.
. "$(dirname "$0")/lib.sh"

APP_STATS=(--min-allocs 100 --expect-program python3)

levels() { if [ "$SCALE" = test ]; then echo "0 1 2"; else echo 0; fi; }

app_prepare() {
	local skip=() stdlib dst=$WORK/pylib-$SCALE
	[ ! -e "$dst/.done" ] || return 0
	rm -rf "$dst"
	mkdir -p "$dst/src"
	stdlib=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
	[ -d "$stdlib" ] || fail "python3's standard library $stdlib is missing"
	[ "$SCALE" = full ] || skip=(--exclude=./idlelib --exclude=./tkinter --exclude=./lib2to3)
	# Sources only: no installed packages, no test suite, no binaries, no caches.
	tar -C "$stdlib" --exclude=./site-packages --exclude=./dist-packages \
		--exclude=./test "${skip[@]}" --exclude='./config-*' --exclude=./lib-dynload \
		--exclude=__pycache__ -cf - . | tar -C "$dst/src" -xf -
	[ "$(find "$dst/src" -name '*.py' | wc -l)" -gt 300 ] || fail "too few .py files copied from $stdlib"
	touch "$dst/.done"
}

app_reference() { :; }   # the checker compiles each source afresh

app_run() {
	local t0 opts=() l
	for l in $(levels); do opts+=(-o "$l"); done
	cp -a "$WORK/pylib-$SCALE/src" "$DIR/lib"
	t0=$(now)
	m 600 "$PY" -c '
import compileall, multiprocessing, sys
multiprocessing.set_start_method("spawn")
sys.exit(not compileall.main())' -q -f "${opts[@]}" -j 0 "$DIR/lib" \
		>"$DIR/compileall.log" 2>&1 \
		|| { tail -30 "$DIR/compileall.log" >&2; fail "compileall failed"; }
	figure compileall_s "$(since "$t0")" lower s
	[ ! -s "$DIR/compileall.log" ] || { tail -30 "$DIR/compileall.log" >&2; fail "compileall printed errors"; }
	# Unpreloaded: every .py has a .pyc per level, with the right header and
	# the same code object as a fresh compile.
	w 300 "$PY" - "$DIR/lib" $(levels) <<'PYEOF' >"$DIR/check.log" 2>&1 \
		|| { tail -20 "$DIR/check.log" >&2; fail "the .pyc files are missing or wrong"; }
import importlib.util, marshal, os, sys
top, levels = sys.argv[1], [int(x) for x in sys.argv[2:]]
bad = checked = 0
for d, _, names in sorted(os.walk(top)):
    for n in sorted(names):
        if not n.endswith(".py"):
            continue
        src = os.path.join(d, n)
        with open(src, "rb") as f:
            source = f.read()
        st = os.stat(src)
        for opt in levels:
            pyc = importlib.util.cache_from_source(src, optimization=opt or "")
            try:
                with open(pyc, "rb") as f:
                    data = f.read()
            except OSError as e:
                print(f"missing {pyc}: {e}"); bad += 1; continue
            if (data[:4] != importlib.util.MAGIC_NUMBER or data[4:8] != b"\0\0\0\0"
                    or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
                    or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF):
                print(f"bad header in {pyc}"); bad += 1; continue
            want = compile(source, src, "exec", dont_inherit=True, optimize=opt)
            if marshal.loads(data[16:]) != want:
                print(f"code object in {pyc} differs from a fresh compile"); bad += 1
            checked += 1
print(f"{checked} .pyc files match a fresh compile, {bad} bad")
sys.exit(1 if bad or not checked else 0)
PYEOF
	checked "$(tail -1 "$DIR/check.log")"
	rm -rf "$DIR/lib"
}

apps_main "$@"
