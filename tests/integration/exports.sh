#!/bin/bash
# exports.sh — the shape of libmagpage.so (notes §2 and §6 P0.1, P0.6, P0.11).
#
# Usage: exports.sh LIBMAGPAGE
#
# Proves: nm -D --defined-only lists the whole malloc family, the signal
# interposers and the public magpage_* API; readelf -d NEEDs only libc.so.6
# and ld-linux (ld.so is glibc's, and provides __rseq_offset), and the
# SONAME is libmagpage.so.0; readelf -lW shows a TLS segment of at most
# 64 bytes (initial-exec TLS must fit the static TLS surplus).
set -u
lib=$1
status=0
fail() { echo "FAIL: $*"; status=1; }
for tool in nm readelf; do
	command -v $tool >/dev/null || { echo "FAIL: $tool not found"; exit 1; }
done
[ -f "$lib" ] || { echo "FAIL: no library at $lib"; exit 1; }

defined=$(nm -D --defined-only "$lib" | awk 'NF >= 3 && $2 ~ /^[TWiV]$/ { sub(/@.*/, "", $3); print $3 }')
for sym in malloc free calloc realloc reallocarray posix_memalign aligned_alloc \
	   memalign valloc pvalloc malloc_usable_size free_sized free_aligned_sized \
	   mallinfo2 malloc_stats malloc_info malloc_trim sigaction signal siginterrupt _Fork \
	   setrlimit setrlimit64 prlimit prlimit64 \
	   magpage_get_stats magpage_free_bulk magpage_drain magpage_owns magpage_node_of; do
	printf '%s\n' "$defined" | grep -qx "$sym" || fail "$sym is not exported"
done

needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for n in $needed; do
	case $n in
	libc.so.6 | ld-linux*.so.*) ;;
	*) fail "NEEDED $n: only libc.so.6 and ld-linux are allowed" ;;
	esac
done
printf '%s\n' "$needed" | grep -qx 'libc.so.6' || fail "libc.so.6 is not NEEDED: $needed"

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libmagpage.so.0" ] || fail "SONAME is '$soname', not libmagpage.so.0"

tls=$(readelf -lW "$lib" | awk '$1 == "TLS" { print $6 }')
if [ -n "$tls" ]; then
	[ $((tls)) -le 64 ] || fail "TLS segment is $((tls)) bytes, more than 64"
fi

[ $status -eq 0 ] && echo "exports.sh: all checks passed (TLS ${tls:-none} bytes, NEEDED $(echo $needed))"
exit $status
