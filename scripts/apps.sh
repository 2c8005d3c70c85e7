#!/usr/bin/env bash
# Real applications for scripts/compare.py, each with its own figure of
# merit, peak RSS and page faults, and a check that its output is right.
#
#   scripts/apps.sh prepare WORK [APP ...]           inputs, once, unpreloaded
#                                                    (all apps' by default)
#   scripts/apps.sh run APP WORK OUT [VAR=VALUE ...]
#
# APP is one of
#   redis     redis-server + redis-benchmark -d 4090 -t set,get: requests/s
#             per command; 4090-byte values written and read back exactly
#   postgres  postgres + pgbench (TPC-B-like, 4 clients): transactions/s;
#             bank invariant (every balance sum = sum of history deltas,
#             one history row per committed transaction), no failures
#   git       git gc, then git log -p, over a generated repository with
#             fixed names and dates: seconds each; fsck --strict passes and
#             the log's sha256 equals the one of an unpreloaded run
#   python    python3 -m compileall over a copy of the standard library
#             (quick: its main part): seconds; every code object equals the
#             one an unpreloaded python3 compiles
#   gcc       gcc -O2 -c of bench/gen-cc1-tu.py's file: seconds; the object
#             is byte-identical to the unpreloaded reference
#   sqlite    sqlite3 building the application test's database (100 000
#             rows, blobs of 3..20 KiB, updates, VACUUM): seconds; its
#             check.sql output equals the unpreloaded one
#   pybytes   python3 holding 100 000 bytes of 4096 bytes and 20 000
#             bytearrays of 8100 (issue 10): seconds, peak RSS; checksum
# Only the measured program gets VAR=VALUE (LD_PRELOAD=..., MAGPAGE_CONF=...);
# clients, checkers and the scripts themselves run unpreloaded.  Servers
# listen on 127.0.0.1 (a free port) or a unix socket only, run under
# `timeout`, and are stopped on every exit path.
#
# OUT gets "key value" lines:
#   figure NAME VALUE higher|lower UNIT
#   rss_kib N      peak RSS of the largest measured process (/usr/bin/time %M)
#   minflt N       minor faults of every measured process (%R)
#   check TEXT     what was verified
# Exit status 0; 1 when the program fails or its output is wrong; 77 when
# the program is not installed.  APPS_SCALE=quick makes every run shorter.
#
# Helpers (msg, fail, w, free_port, on_exit) come from the application
# tests, tests/integration/apps/lib.sh.
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/integration/apps/lib.sh
. "$repo/tests/integration/apps/lib.sh"

[ $# -ge 2 ] || { sed -n '2,42p' "$0" >&2; exit 2; }
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
quick=0
[ "${APPS_SCALE:-full}" != quick ] || quick=1
TIMEF='%e %U %S %M %R'   # elapsed user system maxrss(KiB) minflt
SQL=$repo/tests/integration/apps   # sqlite-build.sql, sqlite-check.sql

# usage: timed TIMEFILE SECS CMD...: CMD (preloaded by its own `env`) under
# /usr/bin/time, which appends to TIMEFILE, and a SECS watchdog.
timed() {
	local f=$1 secs=$2 rc=0
	shift 2
	/usr/bin/time -a -o "$f" -f "$TIMEF" timeout -k 5 "$secs" "$@" || rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		msg "watchdog: '$*' still running after $secs s, killed"
	fi
	return "$rc"
}

# Sums the time files' minflt, takes the largest maxrss, writes to OUT.
mem_lines() {
	awk '{ if ($4 > rss) rss = $4; flt += $5 }
	     END { printf "rss_kib %d\nminflt %d\n", rss, flt }' "$@" >>"$OUT"
}

# -------------------------------------------------------------- prepare

# wants APP: is APP among the applications being prepared?
wants() { [ ${#APPS[@]} -eq 0 ] || [[ " ${APPS[*]} " == *" $1 "* ]]; }

prepare() {
	mkdir -p "$WORK"
	chmod 755 "$WORK"
	# git: a deterministic history of 12 commits over ~800 files (~14 MB).
	if wants git && command -v git >/dev/null && [ ! -e "$WORK/git-template/.done" ]; then
		rm -rf "$WORK/git-template"
		mkdir -p "$WORK/git-template"
		(
			cd "$WORK/git-template"
			export HOME=$WORK GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
				LC_ALL=C TZ=UTC GIT_AUTHOR_NAME='Mag Azine' \
				GIT_AUTHOR_EMAIL=mag@example.org GIT_COMMITTER_NAME='Bud Dy' \
				GIT_COMMITTER_EMAIL=buddy@example.org
			git -c init.defaultBranch=main init -q
			for step in $(seq 0 11); do
				"$PY" - "$step" . <<-'EOF'
				import os, random, sys
				step, top = int(sys.argv[1]), sys.argv[2]
				rng = random.Random(4096 + step)
				words = ("page zone buddy order magazine refill drain cache lock "
				         "spin signal fault frame split merge watermark batch cpu "
				         "free alloc slab arena chunk region map unmap").split()
				def text(n):
				    return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
				                   + f" {rng.randrange(1 << 30):x}\n" for _ in range(n))
				def write(rel, body):
				    os.makedirs(os.path.dirname(os.path.join(top, rel)), exist_ok=True)
				    open(os.path.join(top, rel), "w").write(body)
				if step == 0:
				    for i in range(800):
				        write(f"d{i % 16:02d}/s{i % 7}/f{i:04d}.txt",
				              text(rng.choice([40, 120, 300, 300, 600, 1200])))
				else:
				    fs = sorted(os.path.relpath(os.path.join(d, n), top)
				                for d, ds, ns in os.walk(top) if ".git" not in d for n in ns)
				    for f in rng.sample(fs, 150):
				        lines = open(os.path.join(top, f)).read().splitlines(True)
				        for _ in range(rng.randint(1, 10)):
				            at = rng.randrange(len(lines) + 1)
				            lines[at:at + rng.randint(0, 4)] = text(rng.randint(1, 8)).splitlines(True)
				        open(os.path.join(top, f), "w").write("".join(lines))
				    for i in range(25):
				        write(f"n{step:02d}/g{i:03d}.txt", text(rng.choice([50, 300, 900])))
				EOF
				export GIT_AUTHOR_DATE="@$((1368000000 + step * 3600)) +0000"
				export GIT_COMMITTER_DATE="@$((1368000000 + step * 3600 + 60)) +0000"
				git -c gc.auto=0 add -A
				git -c gc.auto=0 commit -q -m "step $step"
			done
			git -c core.pager=cat log -p | sha256sum | cut -d' ' -f1 >.git/magpage-log-sha256
		)
		touch "$WORK/git-template/.done"
	fi
	# python: most of the standard library, sources only, and the code
	# objects an unpreloaded python3 compiles from them (the reference).
	if wants python && [ ! -e "$WORK/pylib/.done" ]; then
		rm -rf "$WORK/pylib"
		mkdir -p "$WORK/pylib/src"
		stdlib=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
		# Quick: without the test suite and a few big packages (~560
		# modules); full: the whole library, test suite included (~1900).
		local skip=()
		[ "$quick" = 0 ] || skip=(--exclude=./test --exclude=./idlelib \
			--exclude=./tkinter --exclude=./lib2to3)
		tar -C "$stdlib" --exclude=./site-packages --exclude=./dist-packages \
			"${skip[@]}" --exclude='./config-*' --exclude=./lib-dynload \
			--exclude=__pycache__ -cf - . | tar -C "$WORK/pylib/src" -xf -
		"$PY" - "$WORK/pylib/src" "$WORK/pylib/ref.marshal" <<-'EOF'
		import marshal, os, sys
		top, out = sys.argv[1], sys.argv[2]
		ref = {}
		for d, _, names in os.walk(top):
		    for n in names:
		        if n.endswith(".py"):
		            p = os.path.join(d, n)
		            try:
		                ref[os.path.relpath(p, top)] = marshal.dumps(
		                    compile(open(p, "rb").read(), p.replace(top, "SRC", 1), "exec",
		                            dont_inherit=True))
		            except SyntaxError:
		                pass   # compileall reports those too; they are excluded below
		open(out, "wb").write(marshal.dumps(ref))
		EOF
		touch "$WORK/pylib/.done"
	fi
	# gcc: the main job's generated file and its unpreloaded object.
	local funcs=${APPS_GCC_FUNCS:-1500}
	if wants gcc && [ ! -e "$WORK/gcc/.done-$funcs" ]; then
		rm -rf "$WORK/gcc"
		mkdir -p "$WORK/gcc"
		"$PY" "$repo/bench/gen-cc1-tu.py" "$funcs" >"$WORK/gcc/tu.c"
		gcc -O2 -c "$WORK/gcc/tu.c" -o "$WORK/gcc/reference.o"
		touch "$WORK/gcc/.done-$funcs"
	fi
	# sqlite: the reference output of the application test's check.sql
	# over a database built unpreloaded.
	if wants sqlite && command -v sqlite3 >/dev/null && [ ! -e "$WORK/sqlite/.done" ]; then
		rm -rf "$WORK/sqlite"
		mkdir -p "$WORK/sqlite"
		sqlite3 "$WORK/sqlite/ref.db" <"$SQL/sqlite-build.sql" >/dev/null
		sqlite3 "$WORK/sqlite/ref.db" <"$SQL/sqlite-check.sql" >"$WORK/sqlite/ref.out"
		rm -f "$WORK/sqlite/ref.db"
		touch "$WORK/sqlite/.done"
	fi
	msg "inputs ready in $WORK"
}

# ----------------------------------------------------------------- redis

run_redis() {
	need_prog redis-server redis-cli redis-benchmark
	local n=100000 port rpid i
	[ "$quick" = 0 ] || n=20000
	for attempt in 1 2 3; do
		port=$(free_port)
		# $rpid is /usr/bin/time's; the server's own pid is in redis.pid.
		/usr/bin/time -o "$DIR/redis.time" -f "$TIMEF" timeout -k 5 600 \
			env "$@" redis-server --bind 127.0.0.1 --port "$port" --save '' \
			--appendonly no --dir "$DIR" --daemonize no --protected-mode yes \
			--pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" &
		rpid=$!
		for i in $(seq 100); do
			redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break 2
			kill -0 "$rpid" 2>/dev/null || break
			sleep 0.1
		done
		[ ! -s "$DIR/redis.pid" ] || kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
		wait "$rpid" 2>/dev/null || true
		rm -f "$DIR/redis.time"
		grep -q 'Address already in use' "$DIR/redis.log" 2>/dev/null && [ "$attempt" -lt 3 ] && continue
		tail -5 "$DIR/redis.log" >&2 || true
		fail "redis-server did not start"
	done
	on_exit "redis-cli -h 127.0.0.1 -p $port shutdown nosave >/dev/null 2>&1; [ ! -s '$DIR/redis.pid' ] || kill \$(cat '$DIR/redis.pid') 2>/dev/null; wait $rpid 2>/dev/null"
	cli() { w 20 redis-cli -h 127.0.0.1 -p "$port" "$@"; }

	w 300 redis-benchmark -h 127.0.0.1 -p "$port" -d 4090 -t set,get -n "$n" \
		-c 50 -r 10000 --csv >"$DIR/benchmark.csv" 2>"$DIR/benchmark.err" \
		|| { cat "$DIR/benchmark.err" >&2; fail "redis-benchmark failed"; }
	for t in SET GET; do
		rps=$(awk -F'"' -v t="$t" '$2 == t { print $4 }' "$DIR/benchmark.csv")
		[ -n "$rps" ] || { cat "$DIR/benchmark.csv" >&2; fail "redis-benchmark printed no $t result"; }
		echo "figure $t $rps higher req/s" >>"$OUT"
	done
	# Every key redis-benchmark wrote holds a 4090-byte value.
	len=$(cli strlen key:000000000042)
	[ "$len" = 4090 ] || [ "$len" = 0 ] || fail "key:000000000042 holds $len bytes, not 4090"
	# Known values, page-sized and around page multiples, read back exactly.
	mkdir -p "$DIR/values"
	"$PY" - "$DIR/values" <<-'EOF'
	import random, sys
	rng = random.Random(4090)
	for i, n in enumerate([4090] * 24 + [4095, 4096, 4097, 8192, 16384, 65536]):
	    open(f"{sys.argv[1]}/{i:03d}", "wb").write(bytes(rng.randrange(33, 127) for _ in range(n)))
	EOF
	for f in "$DIR"/values/*; do
		[ "$(cli -x set "v:$(basename "$f")" <"$f")" = OK ] || fail "SET of $f failed"
	done
	for f in "$DIR"/values/*; do
		cli --raw get "v:$(basename "$f")" | head -c -1 | cmp -s - "$f" \
			|| fail "GET v:$(basename "$f") returned a different value"
	done
	cli shutdown nosave >/dev/null 2>&1 || true
	rc=0; wait "$rpid" || rc=$?
	[ "$rc" -eq 0 ] || { tail -5 "$DIR/redis.log" >&2; fail "redis-server exited with status $rc"; }
	mem_lines "$DIR/redis.time"
	echo "check $n SET + $n GET of 4090-byte values; 30 known values read back exactly" >>"$OUT"
}

# -------------------------------------------------------------- postgres

run_postgres() {
	local pgbin=${PGBIN:-/usr/lib/postgresql/15/bin} secs=30 p
	[ "$quick" = 0 ] || secs=8
	for p in initdb postgres pg_ctl pgbench psql; do need_prog "$pgbin/$p"; done
	local as=()
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || skip "no postgres user"
		as=(runuser -u postgres --)
		chown postgres: "$DIR"
	fi
	local data=$DIR/data sock=$DIR/sock
	mkdir -p "$sock"
	[ ${#as[@]} -eq 0 ] || chown postgres: "$sock"
	chmod 700 "$sock"
	w 120 "${as[@]}" "$pgbin/initdb" -D "$data" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync >"$DIR/initdb.log" 2>&1 \
		|| { tail -20 "$DIR/initdb.log" >&2; fail "initdb failed"; }
	cat >>"$data/postgresql.conf" <<-EOF
	listen_addresses = ''
	unix_socket_directories = '$sock'
	port = 5432
	fsync = off
	synchronous_commit = off
	full_page_writes = off
	max_connections = 20
	EOF
	"${as[@]}" /usr/bin/time -o "$DIR/pg.time" -f "$TIMEF" timeout -s INT -k 10 600 \
		env "$@" "$pgbin/postgres" -D "$data" >"$DIR/server.log" 2>&1 &
	local pgpid=$!
	on_exit "${as[*]} '$pgbin/pg_ctl' stop -D '$data' -m fast -w -t 20 >/dev/null 2>&1; wait $pgpid 2>/dev/null"
	psql() { "${as[@]}" "$pgbin/psql" -h "$sock" -U postgres -X -v ON_ERROR_STOP=1 -qAt "$@"; }
	for i in $(seq 150); do
		psql -d postgres -c 'select 1' >/dev/null 2>&1 && break
		kill -0 "$pgpid" 2>/dev/null || { tail -20 "$DIR/server.log" >&2; fail "postgres exited during start-up"; }
		[ "$i" -lt 150 ] || fail "postgres did not accept connections in 30 s"
		sleep 0.2
	done
	local pgb=("${as[@]}" "$pgbin/pgbench" -h "$sock" -U postgres)
	w 300 "${pgb[@]}" -i -s 4 -q postgres >"$DIR/pgbench-init.log" 2>&1 \
		|| { tail -20 "$DIR/pgbench-init.log" >&2; fail "pgbench -i failed"; }
	w $((secs + 120)) "${pgb[@]}" -c 4 -j 2 -T "$secs" postgres >"$DIR/pgbench.log" 2>&1 \
		|| { tail -20 "$DIR/pgbench.log" >&2; fail "pgbench failed"; }
	local tps nxact
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$DIR/pgbench.log")
	nxact=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$DIR/pgbench.log")
	[ -n "$tps" ] && [ -n "$nxact" ] && [ "$nxact" -gt 0 ] \
		|| { cat "$DIR/pgbench.log" >&2; fail "pgbench printed no result"; }
	! grep -q '^number of failed transactions: [1-9]' "$DIR/pgbench.log" \
		|| fail "pgbench reports failed transactions"
	local hcount hsum asum tsum bsum
	read -r hcount hsum asum tsum bsum <<<"$(psql -d postgres -F ' ' -c "
		select (select count(*) from pgbench_history),
		       (select coalesce(sum(delta), 0) from pgbench_history),
		       (select sum(abalance) from pgbench_accounts),
		       (select sum(tbalance) from pgbench_tellers),
		       (select sum(bbalance) from pgbench_branches)")"
	[ "$hcount" = "$nxact" ] || fail "history has $hcount rows, pgbench committed $nxact"
	[ "$asum" = "$hsum" ] && [ "$tsum" = "$hsum" ] && [ "$bsum" = "$hsum" ] \
		|| fail "bank invariant broken: history $hsum, accounts $asum, tellers $tsum, branches $bsum"
	w 60 "${as[@]}" "$pgbin/pg_ctl" stop -D "$data" -m fast -w -t 30 >/dev/null \
		|| fail "pg_ctl stop failed"
	rc=0; wait "$pgpid" || rc=$?
	[ "$rc" -eq 0 ] || { tail -20 "$DIR/server.log" >&2; fail "postmaster exited with status $rc"; }
	! grep -E 'PANIC|was terminated by signal' "$DIR/server.log" >&2 \
		|| fail "the server log reports a crashed process"
	echo "figure tps $tps higher tps" >>"$OUT"
	mem_lines "$DIR/pg.time"
	echo "check $nxact transactions, bank invariant holds (sum $hsum), no failures" >>"$OUT"
}

# ------------------------------------------------------------------- git

run_git() {
	need_prog git sha256sum
	[ -e "$WORK/git-template/.done" ] || fail "no git input (run: $0 prepare $WORK)"
	export HOME=$DIR GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
		GIT_PAGER=cat PAGER=cat LC_ALL=C TZ=UTC
	cp -a "$WORK/git-template" "$DIR/repo"
	local t0 t1
	t0=$(date +%s.%N)
	timed "$DIR/gc.time" 600 env "$@" git -C "$DIR/repo" gc -q || fail "git gc failed"
	t1=$(date +%s.%N)
	echo "figure gc_s $(echo "$t1 - $t0" | bc) lower s" >>"$OUT"
	t0=$(date +%s.%N)
	timed "$DIR/log.time" 600 env "$@" git -C "$DIR/repo" log -p >"$DIR/log.txt" \
		|| fail "git log -p failed"
	t1=$(date +%s.%N)
	echo "figure log_p_s $(echo "$t1 - $t0" | bc) lower s" >>"$OUT"
	local want got
	want=$(cat "$WORK/git-template/.git/magpage-log-sha256")
	got=$(sha256sum <"$DIR/log.txt" | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "git log -p has sha256 $got, want $want"
	[ -z "$(find "$DIR/repo/.git/objects" -path '*/objects/[0-9a-f][0-9a-f]/*' -type f)" ] \
		|| fail "git gc left loose objects"
	w 300 git -C "$DIR/repo" fsck --strict --full --no-dangling >"$DIR/fsck.log" 2>&1 \
		|| { cat "$DIR/fsck.log" >&2; fail "git fsck --strict failed after gc"; }
	mem_lines "$DIR/gc.time" "$DIR/log.time"
	echo "check fsck --strict after gc; git log -p ($(wc -c <"$DIR/log.txt") bytes) sha256 $got as unpreloaded" >>"$OUT"
	rm -rf "$DIR/repo" "$DIR/log.txt"
}

# ---------------------------------------------------------------- python

run_python() {
	[ -e "$WORK/pylib/.done" ] || fail "no python input (run: $0 prepare $WORK)"
	cp -a "$WORK/pylib/src" "$DIR/lib"
	local t0 t1
	t0=$(date +%s.%N)
	# -j 0: one worker per CPU (forked), as a build would run it.
	timed "$DIR/py.time" 900 env "$@" "$PY" -m compileall -q -f -j 0 "$DIR/lib" \
		>"$DIR/compileall.log" 2>&1 || true
	t1=$(date +%s.%N)
	echo "figure compileall_s $(echo "$t1 - $t0" | bc) lower s" >>"$OUT"
	# compileall exits 1 for sources with syntax errors (a few test
	# fixtures); the check below wants a .pyc for every compilable source.
	"$PY" - "$DIR/lib" "$WORK/pylib/ref.marshal" <<-'EOF' >"$DIR/check.log" 2>&1 \
		|| { tail -20 "$DIR/check.log" >&2; tail -20 "$DIR/compileall.log" >&2; fail "the .pyc files are missing or wrong"; }
	import importlib.util, marshal, os, sys
	top, ref = sys.argv[1], marshal.loads(open(sys.argv[2], "rb").read())
	bad = 0
	for rel, want in sorted(ref.items()):
	    pyc = importlib.util.cache_from_source(os.path.join(top, rel))
	    try:
	        data = open(pyc, "rb").read()
	    except OSError as e:
	        print(f"missing {pyc}: {e}"); bad += 1; continue
	    # Code objects compare by their code, constants (nested code
	    # included), names and line tables, not by the file name compiled in.
	    if marshal.loads(data[16:]) != marshal.loads(want):
	        print(f"code object in {pyc} differs from the reference"); bad += 1
	print(f"{len(ref)} .pyc checked, {bad} bad")
	sys.exit(1 if bad else 0)
	EOF
	mem_lines "$DIR/py.time"
	echo "check $(tail -1 "$DIR/check.log")" >>"$OUT"
	rm -rf "$DIR/lib"
}

# ------------------------------------------------------------------- gcc

run_gcc() {
	need_prog gcc cmp
	local ref
	ref=$(ls "$WORK"/gcc/.done-* 2>/dev/null | head -1)
	[ -n "$ref" ] || fail "no gcc input (run: $0 prepare $WORK)"
	local t0 t1
	t0=$(date +%s.%N)
	timed "$DIR/gcc.time" 900 env "$@" gcc -O2 -c "$WORK/gcc/tu.c" -o "$DIR/tu.o" \
		2>"$DIR/gcc.err" || { cat "$DIR/gcc.err" >&2; fail "gcc failed"; }
	t1=$(date +%s.%N)
	[ ! -s "$DIR/gcc.err" ] || { cat "$DIR/gcc.err" >&2; fail "gcc printed diagnostics (a failed preload?)"; }
	cmp -s "$DIR/tu.o" "$WORK/gcc/reference.o" || fail "the object differs from the unpreloaded reference"
	echo "figure gcc_O2_s $(echo "$t1 - $t0" | bc) lower s" >>"$OUT"
	mem_lines "$DIR/gcc.time"
	echo "check object ($(stat -c %s "$DIR/tu.o") bytes) identical to the reference" >>"$OUT"
	rm -f "$DIR/tu.o"
}

# ---------------------------------------------------------------- sqlite

run_sqlite() {
	need_prog sqlite3 cmp
	[ -e "$WORK/sqlite/.done" ] || fail "no sqlite reference (run: $0 prepare $WORK)"
	local t0 t1
	t0=$(date +%s.%N)
	timed "$DIR/sqlite.time" 300 env "$@" sqlite3 "$DIR/t.db" <"$SQL/sqlite-build.sql" \
		>"$DIR/build.log" 2>&1 || { tail "$DIR/build.log" >&2; fail "sqlite3 failed"; }
	t1=$(date +%s.%N)
	[ "$(cat "$DIR/build.log")" = off ] || { cat "$DIR/build.log" >&2; fail "build printed errors"; }
	sqlite3 "$DIR/t.db" <"$SQL/sqlite-check.sql" >"$DIR/check.out" 2>&1
	cmp -s "$DIR/check.out" "$WORK/sqlite/ref.out" \
		|| { diff "$WORK/sqlite/ref.out" "$DIR/check.out" >&2; fail "the database differs from the unpreloaded one"; }
	echo "figure build_s $(echo "$t1 - $t0" | bc) lower s" >>"$OUT"
	mem_lines "$DIR/sqlite.time"
	echo "check integrity_check ok; aggregates and sha3 of every table as unpreloaded" >>"$OUT"
	rm -f "$DIR/t.db"
}

# -------------------------------------------------------------- pybytes

# Issue 10's Python workload: 100 000 bytes objects of 4096 bytes (4129-byte
# requests) and 20 000 bytearrays of 8100 bytes, all alive at once.
run_pybytes() {
	local t0 t1 n=100000 m=20000
	[ "$quick" = 0 ] || { n=25000; m=5000; }
	t0=$(date +%s.%N)
	timed "$DIR/py.time" 300 env "$@" "$PY" -c "
import sys
n, m = int(sys.argv[1]), int(sys.argv[2])
a = [bytes([i & 255]) * 4096 for i in range(n)]
b = [bytearray(bytes([i & 255]) * 8100) for i in range(m)]
print(sum(x[0] for x in a) + sum(y[-1] for y in b))" "$n" "$m" \
		>"$DIR/py.out" 2>&1 || { cat "$DIR/py.out" >&2; fail "python3 failed"; }
	t1=$(date +%s.%N)
	local want
	want=$("$PY" -c "import sys; n, m = int(sys.argv[1]), int(sys.argv[2]); print(sum(i & 255 for i in range(n)) + sum(i & 255 for i in range(m)))" "$n" "$m")
	[ "$(cat "$DIR/py.out")" = "$want" ] || fail "python3 printed $(cat "$DIR/py.out"), expected $want"
	echo "figure pybytes_s $(echo "$t1 - $t0" | bc) lower s" >>"$OUT"
	mem_lines "$DIR/py.time"
	echo "check $n bytes of 4096 and $m bytearrays of 8100 bytes, their checksum right" >>"$OUT"
}

# ------------------------------------------------------------------ main

cmd=$1
case $cmd in
prepare)
	WORK=$2
	DIR=$WORK
	APPS=("${@:3}")
	prepare
	;;
run)
	[ $# -ge 4 ] || { echo "usage: $0 run APP WORK OUT [VAR=VALUE ...]" >&2; exit 2; }
	app=$2 WORK=$3 OUT=$4
	shift 4
	for a in "$@"; do
		case $a in *=*) ;; *) fail "'$a' is not VAR=VALUE" ;; esac
	done
	APPS_NAME=apps-$app
	DIR=$(mktemp -d "$WORK/run-$app.XXXXXX")
	chmod 755 "$DIR"
	: >"$OUT"
	trap apps_exit EXIT
	trap 'exit 130' INT TERM
	case $app in
	redis|postgres|git|python|gcc|sqlite|pybytes) "run_$app" "$@" ;;
	*) fail "unknown application '$app' (redis postgres git python gcc sqlite pybytes)" ;;
	esac
	rm -rf "$DIR"
	;;
*)
	echo "usage: $0 prepare WORK [APP ...] | run APP WORK OUT [VAR=VALUE ...]" >&2
	exit 2
	;;
esac
