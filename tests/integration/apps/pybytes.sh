#!/usr/bin/env bash
# python3 holding many page-plus-header blocks at once (issue 10's
# workload): 100,000 bytes objects of 4096 bytes (4129-byte requests) and
# 20,000 bytearrays of 8100 bytes, all alive together (a quarter of that in
# check and quick mode).
#
# Proves: the page-plus-header policy's sizes (sent to glibc, or kept in the
# zone as 2-page blocks) come back intact: python3 prints the checksum of
# every object's first or last byte, as computed without the preload.
# Check mode: the page-sized requests were served by the page caches,
# mostly from hits.  Figure: seconds; its peak RSS is the point.
. "$(dirname "$0")/lib.sh"

APP_STATS=(--min-allocs 100 --expect-program python3)

app_prepare() { :; }
app_reference() { :; }

app_run() {
	local t0 n=100000 k=20000 want
	[ "$SCALE" = full ] || { n=25000; k=5000; }
	t0=$(now)
	m 300 "$PY" -c "
import sys
n, k = int(sys.argv[1]), int(sys.argv[2])
a = [bytes([i & 255]) * 4096 for i in range(n)]
b = [bytearray(bytes([i & 255]) * 8100) for i in range(k)]
print(sum(x[0] for x in a) + sum(y[-1] for y in b))" "$n" "$k" \
		>"$DIR/py.out" 2>&1 || { cat "$DIR/py.out" >&2; fail "python3 failed"; }
	figure pybytes_s "$(since "$t0")" lower s
	want=$("$PY" -c "import sys; n, k = int(sys.argv[1]), int(sys.argv[2]); print(sum(i & 255 for i in range(n)) + sum(i & 255 for i in range(k)))" "$n" "$k")
	[ "$(cat "$DIR/py.out")" = "$want" ] || fail "python3 printed $(cat "$DIR/py.out"), expected $want"
	checked "$n bytes of 4096 and $k bytearrays of 8100 bytes, their checksum right"
}

apps_main "$@"
