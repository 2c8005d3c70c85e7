#!/usr/bin/env bash
# python3 under libmagpage, byte-compiling a copy of its standard library.
#
# Proves: Debian's python3 (whose object allocator asks malloc for 8 KiB-ish
# and 4-5 KiB blocks) runs compileall preloaded, in parallel worker processes,
# at the three optimisation levels, and exits 0; every .py got its three .pyc
# files; and every .pyc holds exactly the code object that an unpreloaded
# python3 compiles from the same source (marshal-loaded and compared, since
# .pyc bytes themselves depend on reference counts).  The page-sized requests
# were served by the page caches, mostly from hits.
#
# compileall runs as `compileall.main()` with the multiprocessing start
# method set to "spawn", which is `python3 -m compileall` except for how the
# workers start: forked workers leave through os._exit(), which skips every
# exit handler, so their statistics would never be written; spawned workers
# are fresh interpreters that exit normally.
#
# usage: python.sh /abs/path/libmagpage.so [scratch-dir]
. "$(dirname "$0")/lib.sh"

PYBIN=/usr/bin/python3 # Debian's, not a pyenv shim
need_prog "$PYBIN"
apps_init "$@"

STDLIB=$("$PYBIN" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
[ -d "$STDLIB" ] || fail "python3's standard library $STDLIB is missing"
# Sources only: no installed packages, no test suite, no binaries, no caches.
mkdir "$DIR/lib"
tar -C "$STDLIB" --exclude=./site-packages --exclude=./dist-packages \
	--exclude=./test --exclude='./config-*' --exclude=./lib-dynload \
	--exclude=__pycache__ -cf - . | tar -C "$DIR/lib" -xf -
npy=$(find "$DIR/lib" -name '*.py' | wc -l)
[ "$npy" -gt 300 ] || fail "only $npy .py files copied from $STDLIB"
msg "compiling $npy modules from $STDLIB (copy in $DIR/lib)"

w 90 preload "$PYBIN" -c '
import compileall, multiprocessing, sys
multiprocessing.set_start_method("spawn")
sys.exit(not compileall.main())' -q -f -o 0 -o 1 -o 2 -j 0 "$DIR/lib" \
	>"$DIR/compileall.log" 2>&1 \
	|| { tail -30 "$DIR/compileall.log" >&2; fail "compileall failed"; }
[ ! -s "$DIR/compileall.log" ] || { tail -30 "$DIR/compileall.log" >&2; fail "compileall printed errors"; }

# Unpreloaded: every .py has a .pyc per level, with the right header and
# the same code object as a fresh compile.
w 90 "$PYBIN" - "$DIR/lib" <<'EOF' || fail "the .pyc files are missing or wrong"
import importlib.util, marshal, os, sys
top = sys.argv[1]
bad = checked = 0
for d, _, names in sorted(os.walk(top)):
    for n in sorted(names):
        if not n.endswith(".py"):
            continue
        src = os.path.join(d, n)
        with open(src, "rb") as f:
            source = f.read()
        st = os.stat(src)
        for opt in (0, 1, 2):
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
EOF

check_stats --min-allocs 100 --expect-program python3
