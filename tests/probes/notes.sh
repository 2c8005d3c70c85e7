#!/bin/bash
# notes.sh — every tracepoint is in the library's ELF notes with its
# argument format (ctest probes.notes).
#
# Usage: notes.sh LIB
#
# Reads LIB's .note.stapsdt with readelf -n and checks, for each probe of
# src/platform/probes.h: provider "magpage", the name, at least one site,
# a semaphore, and on every site the argument format: the size and sign
# of each argument as <sys/sdt.h> writes them before the "@" ("8" an
# unsigned 64-bit value such as an address, "1" an unsigned byte, "-4" a
# signed int, "4" an unsigned int); where each value lives (a register,
# memory, a constant) is the compiler's choice and is not checked.  It
# also checks that nothing else is there, and that each site's
# instruction is a nop (objdump), which is all a probe costs untraced.
#
# Exit status: 0 all there, 1 something missing or different, 2 usage.
set -u
export LC_ALL=C

case "${1:-}" in
-h|--help) sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
esac
[ $# -eq 1 ] || { echo "usage: notes.sh LIB (--help)" >&2; exit 2; }
lib=$1
[ -r "$lib" ] || { echo "notes: no library '$lib'" >&2; exit 2; }

# name -> argument format (sizes and signs, in order)
declare -A want=(
	[mm_page_alloc]="8 1 -4 -4"
	[mm_page_free]="8 1"
	[mm_page_alloc_zone_locked]="8 1 -4"
	[mm_page_pcpu_drain]="8 1 -4"
	[cache_refill]="-4 4 4"
	[cache_drain]="-4 4 4"
	[zone_lock_wait]="8"
	[purge]="8"
	[signal_deferred]="-4 -4"
)

# One line per site: provider name location semaphore formats...
sites=$(readelf -n --wide "$lib" | awk '
	/Provider:/ { prov = $NF }
	/Name:/ { name = $2 }
	/Location:/ { loc = $2; sub(/,$/, "", loc); sem = $NF }
	/Arguments:/ {
		line = prov " " name " " loc " " sem
		for (i = 2; i <= NF; i++) { f = $i; sub(/@.*/, "", f); line = line " " f }
		print line
	}')
[ -n "$sites" ] || { echo "probes.notes: FAIL: no stapsdt notes in $lib (built without <sys/sdt.h>?)"; exit 1; }

fail=0
bad() { echo "probes.notes: FAIL: $*"; fail=1; }
for name in $(printf "%s\n" "${!want[@]}" | sort); do
	mine=$(printf '%s\n' "$sites" | awk -v n="$name" '$2 == n')
	if [ -z "$mine" ]; then
		bad "no probe magpage:$name"
		continue
	fi
	count=$(printf '%s\n' "$mine" | wc -l)
	while read -r prov _ loc sem fmt; do
		[ "$prov" = magpage ] || bad "$name at $loc: provider '$prov', not magpage"
		[ "$fmt" = "${want[$name]}" ] ||
			bad "$name at $loc: arguments '$fmt', expected '${want[$name]}'"
		[ "$((sem))" -ne 0 ] || bad "$name at $loc: no semaphore"
		insn=$(objdump -d --no-show-raw-insn --start-address="$loc" \
			--stop-address=$((loc + 1)) "$lib" | awk -F'\t' '/^ *[0-9a-f]+:/ { print $2; exit }')
		[ "${insn%% *}" = nop ] || bad "$name at $loc: the site is '$insn', not a nop"
	done <<<"$mine"
	echo "probes.notes: magpage:$name ($count site(s)): arguments ${want[$name]}"
done
others=$(printf '%s\n' "$sites" | awk '{ print $1 ":" $2 }' | sort -u |
	grep -vxF -f <(for n in "${!want[@]}"; do echo "magpage:$n"; done))
[ -z "$others" ] || bad "unexpected probes: $(echo $others)"
[ $fail = 0 ] && echo "probes.notes: ok"
exit $fail
