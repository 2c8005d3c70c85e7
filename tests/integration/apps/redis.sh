#!/usr/bin/env bash
# redis-server under the allocator, driven by redis-benchmark with 4090-byte
# values (its query buffers, replies and values are just under, at, and just
# over one page).
#
# Proves: a preloaded redis-server (which is linked against jemalloc, so the
# preload must win the symbol lookup for malloc/free/malloc_usable_size)
# serves SET/GET requests (20,000 each; 100,000 at full scale) without a
# crash or hang; stores and returns page-sized values byte for byte,
# including values grown in place by APPEND (realloc across page
# boundaries); and shuts down cleanly.  Check mode: its page-sized requests
# were served by the page caches, mostly from hits.  Figures: requests per
# second of SET and of GET.
#
# The server listens on 127.0.0.1 only, on a free high port, under
# `timeout`, and is stopped on every exit path; redis-benchmark and
# redis-cli are not preloaded.
. "$(dirname "$0")/lib.sh"

need_prog redis-server redis-cli redis-benchmark
APP_STATS=(--min-allocs 1000 --expect-program redis-server)

app_prepare() { :; }
app_reference() { :; }

# RPID is the process that runs the server (timeout, or /usr/bin/time in
# measure mode): TERM to it reaches redis-server.
RPID='' PORT=''
redis_stop() {
	[ -n "$RPID" ] || return 0
	redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1
	kill "$RPID" 2>/dev/null
	wait "$RPID" 2>/dev/null
}

redis_start() {
	local attempt i rc
	# Retry only if another process took the port between the probe and
	# the bind.
	for attempt in 1 2 3; do
		PORT=$(free_port)
		m 600 redis-server --bind 127.0.0.1 --port "$PORT" --save '' \
			--appendonly no --dir "$DIR" --daemonize no --protected-mode yes \
			--logfile "$DIR/redis.log" &
		RPID=$!
		for i in $(seq 100); do
			redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG && return 0
			kill -0 "$RPID" 2>/dev/null || break
			sleep 0.1
		done
		redis_stop
		rc=0; wait "$RPID" 2>/dev/null || rc=$?
		RPID=
		[ ! -f "$DIR/redis.log" ] || tail -5 "$DIR/redis.log" >&2
		grep -q 'Address already in use' "$DIR/redis.log" 2>/dev/null && [ "$attempt" -lt 3 ] && continue
		[ "$rc" -le 128 ] || fail "redis-server died of signal $((rc - 128)) during start-up"
		fail "redis-server did not start (exit status $rc)"
	done
}

app_run() {
	local n=20000 t rps nvals=0 f k rc
	[ "$SCALE" != full ] || n=100000
	on_exit redis_stop
	redis_start
	msg "redis-server up on 127.0.0.1:$PORT"
	cli() { w 20 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

	w 300 redis-benchmark -h 127.0.0.1 -p "$PORT" -d 4090 -t set,get -n "$n" \
		-c 50 -r 10000 --csv >"$DIR/benchmark.csv" 2>"$DIR/benchmark.err" \
		|| { cat "$DIR/benchmark.err" >&2; fail "redis-benchmark failed"; }
	for t in SET GET; do
		rps=$(awk -F'"' -v t="$t" '$2 == t { print $4 }' "$DIR/benchmark.csv")
		[ -n "$rps" ] || { cat "$DIR/benchmark.csv" >&2; fail "redis-benchmark printed no $t result"; }
		figure "$t" "$rps" higher req/s
	done

	# Known values: 4090 bytes each (plus a few sizes around page
	# multiples), every one different, written with SET and read back.
	mkdir "$DIR/values"
	"$PY" - "$DIR/values" <<-'PYEOF'
	import random, sys
	rng = random.Random(4090)
	alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	sizes = [4090] * 40 + [4095, 4096, 4097, 8191, 8192, 8193, 16384, 65536]
	for i, n in enumerate(sizes):
	    with open(f"{sys.argv[1]}/{i:03d}", "w") as f:
	        f.write("".join(rng.choice(alphabet) for _ in range(n)))
	PYEOF
	for f in "$DIR"/values/*; do
		k=magpage:$(basename "$f")
		[ "$(cli -x set "$k" <"$f")" = OK ] || fail "SET $k failed"
		nvals=$((nvals + 1))
	done
	[ "$(cli dbsize)" -ge "$nvals" ] || fail "DBSIZE below $nvals"
	for f in "$DIR"/values/*; do
		k=magpage:$(basename "$f")
		# --raw adds one newline; strip exactly that one.
		cli --raw get "$k" | head -c -1 | cmp -s - "$f" || fail "GET $k returned a different value"
		[ "$(cli strlen "$k")" = "$(stat -c %s "$f")" ] || fail "STRLEN $k is wrong"
	done
	# APPEND grows each value in place: 4090 -> 8180 -> 12270 bytes
	# (realloc of page-sized blocks to larger page-sized blocks).
	for f in "$DIR"/values/00[0-9]; do
		k=magpage:$(basename "$f")
		cli -x append "$k" <"$f" >/dev/null
		cli -x append "$k" <"$f" >/dev/null
		cli --raw get "$k" | head -c -1 | cmp -s - <(cat "$f" "$f" "$f") \
			|| fail "GET $k after APPEND returned a different value"
	done

	# Clean shutdown: redis exits through exit(), writing its statistics.
	cli shutdown nosave >/dev/null 2>&1 || true
	rc=0; wait "$RPID" || rc=$?
	RPID=
	[ "$rc" -eq 0 ] || { tail -20 "$DIR/redis.log" >&2; fail "redis-server exited with status $rc"; }
	checked "$n SET + $n GET of 4090-byte values; $nvals known values read back exactly, 10 grown by APPEND"
}

apps_main "$@"
