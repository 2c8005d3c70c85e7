#!/usr/bin/env bash
# sigpeers.sh — the signal stress program (tests/signals/sigstress.c) under
# each allocator, counting honestly how each run ended.  Optional: not part
# of the test command.
#
# usage: scripts/sigpeers.sh [-b build-dir] [-n runs] [-d seconds] [-t threads]
#                       [-w watchdog-seconds] [-v "plain nodefer"]
#
# Allocators: glibc (no preload), jemalloc, mimalloc, tcmalloc (each if its
# Debian library is installed) and libmagpage under signal:bypass and
# signal:trylock.  Every run is bounded twice: sigstress's own watchdog
# (exit 3), and an outer `timeout -s KILL` in case even that cannot run.
#
# How a run ended:
#   passed     exit 0 (under libmagpage: the counter checks passed too)
#   hung       the watchdog fired (exit 3), or the outer timeout killed it
#   crashed    killed by a signal (SEGV, ABRT, ...)
#   corrupted  a block's pattern, zeroing, alignment or realloc copy was
#              wrong (exit 2)
#   other      setup failure, an allocation returned NULL (4), or
#              libmagpage's counters broke the policy's promise (5)
# Prints a Markdown table; the logs of every run stay in a directory named at
# the end.
set -u
case "${1:-}" in -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac

here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build"
runs=5
seconds=1
threads=4
watchdog=5
variants="plain nodefer"

while getopts "b:n:d:t:w:v:h" o; do
	case $o in
	b) build=$OPTARG ;;
	n) runs=$OPTARG ;;
	d) seconds=$OPTARG ;;
	t) threads=$OPTARG ;;
	w) watchdog=$OPTARG ;;
	v) variants=$OPTARG ;;
	h) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
	esac
done

find_one() {   # name: the first file (or link) of that name under $build
	find "$build" -name "$1" \( -type f -o -type l \) 2>/dev/null | sort | head -n 1
}
stress=$(find_one sigstress)
magpage=$(find_one libmagpage.so)
if [ -z "$stress" ] || [ ! -x "$stress" ]; then
	echo "sigpeers: no sigstress under $build (build the tests first, or pass -b)" >&2
	exit 2
fi

libdir=/usr/lib/x86_64-linux-gnu
# name|preload|MAGPAGE_CONF
allocators=("glibc||")
[ -e "$libdir/libjemalloc.so.2" ] && allocators+=("jemalloc|$libdir/libjemalloc.so.2|")
[ -e "$libdir/libmimalloc.so.2" ] && allocators+=("mimalloc|$libdir/libmimalloc.so.2|")
if [ -e "$libdir/libtcmalloc.so.4" ]; then
	allocators+=("tcmalloc|$libdir/libtcmalloc.so.4|")
elif [ -e "$libdir/libtcmalloc_minimal.so.4" ]; then
	allocators+=("tcmalloc (minimal)|$libdir/libtcmalloc_minimal.so.4|")
fi
if [ -n "$magpage" ]; then
	allocators+=("libmagpage signal:bypass|$magpage|signal:bypass,stats:json,stats_file:/dev/null")
	allocators+=("libmagpage signal:trylock|$magpage|signal:trylock,stats:json,stats_file:/dev/null")
else
	echo "sigpeers: no libmagpage.so under $build; peers only" >&2
fi

logs=$(mktemp -d /tmp/sigpeers.XXXXXX)
outer=$(awk -v d="$seconds" -v w="$watchdog" 'BEGIN { printf "%d", d + w + 15 }')
table=()

for entry in "${allocators[@]}"; do
	IFS='|' read -r name preload conf <<<"$entry"
	for v in $variants; do
		pass=0 hung=0 crash=0 corrupt=0 other=0 sigs="" notes=""
		for ((i = 1; i <= runs; i++)); do
			log="$logs/$(echo "$name" | tr ' :()' '____')-$v-$i.log"
			# in a command substitution, so that the shell's own
			# "Segmentation fault" notice goes nowhere
			rc=$( { env ${preload:+LD_PRELOAD="$preload"} ${conf:+MAGPAGE_CONF="$conf"} \
				timeout -s KILL "$outer" "$stress" "$v" -t "$threads" -d "$seconds" \
				-w "$watchdog" >"$log" 2>&1; echo $?; } 2>/dev/null )
			case $rc in
			0) pass=$((pass + 1)) ;;
			3) hung=$((hung + 1)) ;;
			137) hung=$((hung + 1)); notes="$notes outer-timeout" ;;
			2) corrupt=$((corrupt + 1)) ;;
			*)
				if [ "$rc" -gt 128 ]; then
					crash=$((crash + 1))
					sigs="$sigs $(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
				else
					other=$((other + 1))
					notes="$notes exit-$rc"
				fi
				;;
			esac
		done
		c="$crash"
		[ -n "$sigs" ] && c="$crash ($(echo $sigs | tr ' ' '\n' | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }'))"
		o="$other"
		[ -n "$notes" ] && o="$other ($(echo $notes | tr ' ' '\n' | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }'))"
		table+=("| $name | $v | $runs | $pass | $hung | $c | $corrupt | $o |")
		echo "sigpeers: $name $v: $pass/$runs passed" >&2
	done
done

echo
echo "sigstress under each allocator: $threads threads, one timer signal per 100 us per thread (armed), ${seconds} s per run, watchdog ${watchdog} s; $(uname -sr), $(nproc) CPUs, $(date -u +%Y-%m-%d)"
echo
echo "| allocator | variant | runs | passed | hung | crashed | corrupted | other |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${table[@]}"
echo
echo "logs: $logs"
