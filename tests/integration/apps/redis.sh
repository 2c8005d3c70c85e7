#!/usr/bin/env bash
# redis-server under libmagpage, driven by redis-benchmark with 4090-byte
# values (its query buffers, replies and values are just under, at, and just
# over one page).
#
# Proves: a preloaded redis-server (which is linked against jemalloc, so the
# preload must win the symbol lookup for malloc/free/malloc_usable_size)
# serves 40,000 SET/GET requests without a crash or hang; stores and returns
# page-sized values byte for byte, including values grown in place by APPEND
# (realloc across page boundaries); shuts down cleanly; and its page-sized
# requests were served by the page caches, mostly from hits.
#
# The server listens on 127.0.0.1 only, on a free high port; redis-benchmark
# and redis-cli are not preloaded.
#
# usage: redis.sh /abs/path/libmagpage.so [scratch-dir]
. "$(dirname "$0")/lib.sh"

need_prog redis-server redis-cli redis-benchmark
apps_init "$@"

# RPID is the `timeout` that runs the server: TERM to it reaches redis-server.
RPID='' PORT=''
redis_stop() {
	[ -n "$RPID" ] || return 0
	redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1
	kill "$RPID" 2>/dev/null
	wait "$RPID" 2>/dev/null
}
on_exit redis_stop

# Start the server on a free port; retry only if another process took the
# port between the probe and the bind.
for attempt in 1 2 3; do
	PORT=$(free_port)
	# `timeout` bounds the server's life even if this script is killed.
	timeout -k 5 100 env LD_PRELOAD="$LIB" MAGPAGE_CONF="$MP_CONF" \
		redis-server --bind 127.0.0.1 --port "$PORT" --save '' \
		--appendonly no --dir "$DIR" --daemonize no --protected-mode yes \
		--logfile "$DIR/redis.log" &
	RPID=$!
	for i in $(seq 50); do
		redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG && break 2
		kill -0 "$RPID" 2>/dev/null || break
		sleep 0.1
	done
	kill "$RPID" 2>/dev/null || true
	rc=0; wait "$RPID" 2>/dev/null || rc=$?
	RPID=
	[ ! -f "$DIR/redis.log" ] || tail -5 "$DIR/redis.log" >&2
	grep -q 'Address already in use' "$DIR/redis.log" 2>/dev/null && [ "$attempt" -lt 3 ] && continue
	[ "$rc" -le 128 ] || fail "redis-server died of signal $((rc - 128)) during start-up"
	fail "redis-server did not start (exit status $rc)"
done
msg "redis-server up on 127.0.0.1:$PORT (pid $RPID)"
cli() { w 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

w 60 redis-benchmark -h 127.0.0.1 -p "$PORT" -d 4090 -t set,get -n 20000 -q \
	>"$DIR/benchmark.log" 2>&1 \
	|| { cat "$DIR/benchmark.log" >&2; fail "redis-benchmark failed"; }
tr '\r' '\n' <"$DIR/benchmark.log" | grep -E '^(SET|GET): [0-9.]+ requests per second' >&2 \
	|| { cat "$DIR/benchmark.log" >&2; fail "redis-benchmark printed no SET/GET results"; }
[ "$(tr '\r' '\n' <"$DIR/benchmark.log" | grep -cE '^(SET|GET): [0-9.]+ requests per second')" -eq 2 ] \
	|| fail "redis-benchmark did not finish both SET and GET"

# Known values: 4090 bytes each (plus a few sizes around page multiples),
# every one different, written with SET and read back exactly.
mkdir "$DIR/values"
"$PY" - "$DIR/values" <<'EOF'
import random, sys
rng = random.Random(4090)
alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
sizes = [4090] * 40 + [4095, 4096, 4097, 8191, 8192, 8193, 16384, 65536]
for i, n in enumerate(sizes):
    with open(f"{sys.argv[1]}/{i:03d}", "w") as f:
        f.write("".join(rng.choice(alphabet) for _ in range(n)))
EOF
nvals=0
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
# APPEND grows each value in place: 4090 -> 8180 -> 12270 bytes (realloc
# of page-sized blocks to larger page-sized blocks).
for f in "$DIR"/values/00[0-9]; do
	k=magpage:$(basename "$f")
	cli -x append "$k" <"$f" >/dev/null
	cli -x append "$k" <"$f" >/dev/null
	cli --raw get "$k" | head -c -1 | cmp -s - <(cat "$f" "$f" "$f") \
		|| fail "GET $k after APPEND returned a different value"
done
msg "$nvals values written and read back exactly"

# Clean shutdown: redis exits through exit(), writing its statistics.
cli shutdown nosave >/dev/null 2>&1 || true
rc=0; wait "$RPID" || rc=$?
RPID=
[ "$rc" -eq 0 ] || { tail -20 "$DIR/redis.log" >&2; fail "redis-server exited with status $rc"; }

check_stats --min-allocs 1000 --expect-program redis-server
