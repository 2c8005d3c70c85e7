#!/bin/bash
# insn_budget.sh — instructions per malloc+free pair under callgrind, against
# a budget (issue 9: the fast path's instruction guard).
#
# Usage: insn_budget.sh [OPTIONS] DRIVER        (--help for the options)
#
# Runs DRIVER (insn_pairs: W warm-up pairs, then N malloc+free pairs of one
# size, one block live at a time) twice under valgrind --tool=callgrind,
# with N1 and N2 pairs, and reports
#     instructions per pair = (Ir(N2) - Ir(N1)) / (N2 - N1)
# so start-up, warm-up and exit cancel.  Instruction counts do not depend
# on the machine's load, so a budget on them can run in CI.  With --added
# it runs the same pair of runs without the preload (glibc alone) and the
# budget applies to the instructions the preload ADDS per pair: the cost of
# routing a request libmagpage hands to glibc.
#
# What it measures: valgrind answers rseq(2) with ENOSYS, so glibc does not
# register its rseq area, __rseq_size is 0 and libmagpage runs its no-rseq
# fallback for the CPU id (at 4bfaa2c a sched_getcpu() call on each malloc
# and free: 60 of the 342 instructions per pair).  The count is that of the
# fallback path, not of the rseq fast path a program gets outside valgrind;
# the driver's line shows "rseq 0" to say so.  The driver's own loop and PLT jumps (10 per pair,
# shown as "pairs") are included.
#
# The runs are pinned to one CPU (the first this process may use; taskset
# from util-linux): a thread that migrates finds another CPU's magazine
# empty and refills it, which adds a few instructions per pair to one run
# and not the other (342 -> 347 seen under load).  Pinned, the count is the
# same on every run.
#
# Prints one line with the numbers either way (so a ctest log shows them),
# then, with --top K, the K functions with the most self instructions per
# pair.  Exit status: 0 within the budget (or no budget given), 1 above it,
# 2 on a usage or run error (the driver failed, the preload did not load,
# the block was not served by whom --expect-owned says), 77 when valgrind
# is not installed (ctest's SKIP_RETURN_CODE).
set -u
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: insn_budget.sh [OPTIONS] DRIVER

Instructions per malloc+free pair of DRIVER (tests/perf/insn_pairs) under
valgrind --tool=callgrind, from two runs of N1 and N2 pairs.

  -p, --preload LIB    allocator to preload (LD_PRELOAD=LIB); default none:
                       glibc alone
  -c, --conf STRING    MAGPAGE_CONF for the preloaded runs (default: the
                       environment's, so MAGPAGE_CONF=preset:rfc2013
                       insn_budget.sh ... works too)
  -s, --size BYTES     block size (default 4096)
  -K, --kind KIND      what a pair is: malloc (malloc + free, the
                       default), calloc (calloc(1, size) + free) or
                       realloc (realloc(NULL, size) + free)
  -n, --pairs N1,N2    the two run lengths (default 20000,40000)
  -w, --warmup W       warm-up pairs before each run's measured loop
                       (default 1000)
  -a, --added          also measure glibc alone (no preload) and judge the
                       instructions the preload adds per pair
  -b, --budget INSN    exit 1 when the count (or, with --added, the added
                       count) is above INSN; default: report only
  -e, --expect-owned yes|no
                       exit 2 unless libmagpage served (yes) or did not
                       serve (no) the driver's block: a guard that passes
                       because the zone is missing must not pass
  -t, --top K          also list the K functions with the most self
                       instructions per pair (the difference of the runs)
  -f, --by-file        with --top: split each function by the source file
                       its (inlined) instructions come from
  -k, --keep DIR       keep the callgrind output files in DIR
  -h, --help           this text

Exit status: 0 within budget, 1 above, 2 usage or run error, 77 no valgrind.
Under valgrind glibc cannot register rseq, so libmagpage's no-rseq
fallback is what is measured.
EOF
}

lib='' conf_set=0 conf='' size=4096 kind=malloc n1=20000 n2=40000 warm=1000 added=0
budget='' expect='' top=0 byfile=0 keep=''
die() { echo "insn_budget: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "$1 needs a value (--help)"; }
while [ $# -gt 0 ]; do
	case $1 in
	-h|--help) usage; exit 0 ;;
	-p|--preload) need "$@"; lib=$2; shift ;;
	-c|--conf) need "$@"; conf=$2; conf_set=1; shift ;;
	-s|--size) need "$@"; size=$2; shift ;;
	-K|--kind) need "$@"; kind=$2; shift ;;
	-n|--pairs) need "$@"; n1=${2%%,*}; n2=${2#*,}; shift ;;
	-w|--warmup) need "$@"; warm=$2; shift ;;
	-a|--added) added=1 ;;
	-b|--budget) need "$@"; budget=$2; shift ;;
	-e|--expect-owned) need "$@"; expect=$2; shift ;;
	-t|--top) need "$@"; top=$2; shift ;;
	-f|--by-file) byfile=1 ;;
	-k|--keep) need "$@"; keep=$2; shift ;;
	--) shift; break ;;
	-*) die "unknown option $1 (--help)" ;;
	*) break ;;
	esac
	shift
done
[ $# -eq 1 ] || { usage >&2; exit 2; }
driver=$1
isnum() { [[ $1 =~ ^[0-9]+$ ]]; }
if ! { isnum "$size" && isnum "$n1" && isnum "$n2" && isnum "$warm" && isnum "$top"; }; then
	die "size, pairs, warmup and top are whole numbers"
fi
[ "$n2" -gt "$n1" ] || die "--pairs N1,N2 needs N2 > N1"
case $kind in malloc|calloc|realloc) ;; *) die "--kind takes malloc, calloc or realloc" ;; esac
[ -z "$budget" ] || [[ $budget =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad budget '$budget'"
case $expect in ''|yes|no) ;; *) die "--expect-owned takes yes or no" ;; esac
[ -x "$driver" ] || die "no driver program '$driver'"
[ -z "$lib" ] || [ -r "$lib" ] || die "no library '$lib'"
name=glibc
[ -z "$lib" ] || name=$(basename "$lib")
# ld.so takes a name without a slash from its search path, not from here.
[ -z "$lib" ] || lib=$(readlink -f "$lib")
[ "$added" = 0 ] || [ -n "$lib" ] || die "--added needs --preload"
[ -z "$expect" ] || [ -n "$lib" ] || die "--expect-owned needs --preload"

if ! command -v valgrind >/dev/null; then
	echo "insn_budget: SKIP: valgrind is not installed (scripts/install-deps.sh)"
	exit 77
fi

if [ -n "$keep" ]; then
	mkdir -p "$keep" || die "cannot create $keep"
	out=$keep
else
	out=$(mktemp -d) || die "mktemp failed"
	trap 'rm -rf "$out"' EXIT
fi

pin=()
cpu=$(awk '/^Cpus_allowed_list:/ { split($2, c, /[-,]/); print c[1] }' /proc/self/status 2>/dev/null)
if [ -n "$cpu" ] && command -v taskset >/dev/null; then
	pin=(taskset -c "$cpu")
fi

# run TAG PRELOAD N: callgrind over DRIVER SIZE N WARM into $out/TAG.N.out;
# the driver's stdout into $out/TAG.N.txt.  Strings and positions are not
# compressed, so that selfcost below reads the file with no name tables.
run() {
	local tag=$1 pre=$2 n=$3 rc
	local envs=(-u LD_PRELOAD)
	[ -z "$pre" ] || envs=(LD_PRELOAD="$pre")
	[ "$conf_set" = 0 ] || envs+=(MAGPAGE_CONF="$conf")
	env "${envs[@]}" "${pin[@]}" valgrind --tool=callgrind \
		--callgrind-out-file="$out/$tag.$n.out" \
		--compress-strings=no --compress-pos=no \
		"$driver" "$size" "$n" "$warm" "$kind" >"$out/$tag.$n.txt" 2>"$out/$tag.$n.err"
	rc=$?
	if [ $rc -ne 0 ] || ! grep -q '^insn_pairs:' "$out/$tag.$n.txt"; then
		echo "insn_budget: the driver failed under valgrind (exit $rc):" >&2
		cat "$out/$tag.$n.txt" "$out/$tag.$n.err" >&2
		exit 2
	fi
}

# total FILE: the run's total Ir (the "totals:" line, or "summary:").
total() {
	awk '/^(totals|summary):/ { print $2; exit }' "$1"
}

# selfcost FILE: "object<TAB>function<TAB>self Ir" for every function
# (with --by-file the function is "function@source file", the file its
# inlined code came from: fi=/fe= name it, fl= the function's own).  Cost
# lines are "LINE IR"; the line after "calls=" is the inclusive cost of a
# call and not the caller's own.
selfcost() {
	awk -v OFS='\t' -v byfile="$byfile" '
	function base(f) { sub(/.*\//, "", f); return f }
	/^ob=/ { obj = substr($0, 4); next }
	/^fl=/ { fl = src = base(substr($0, 4)); next }
	/^f[ie]=/ { src = base(substr($0, 4)); next }
	/^fn=/ { fn = substr($0, 4); src = fl; next }
	/^calls=/ { skip = 1; next }
	/^[0-9]/ {
		if (skip) { skip = 0; next }
		k = byfile ? fn "@" src : fn
		if (NF >= 2) self[obj OFS k] += $2
	}
	END { for (k in self) print k, self[k] }' "$1"
}

# measure TAG PRELOAD: sets per_pair (one decimal) and info (the driver's
# owned/rseq words) from the two runs.
measure() {
	local tag=$1 pre=$2 a b
	run "$tag" "$pre" "$n1"
	run "$tag" "$pre" "$n2"
	a=$(total "$out/$tag.$n1.out") b=$(total "$out/$tag.$n2.out")
	if ! { isnum "$a" && isnum "$b"; }; then
		die "no instruction total in $out/$tag.*.out"
	fi
	per_pair=$(awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" \
		'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }')
	info=$(sed -n 's/^insn_pairs: .* owned \([^ ]*\) rseq \([0-9]*\).*/owned \1, rseq \2/p' \
		"$out/$tag.$n2.txt")
	if [ -n "$pre" ]; then
		# ld.so only warns when a preload is missing; make sure it ran.
		grep -qF "$pre" "$out/$tag.$n2.out" \
			|| die "$pre was not loaded in the measured run"
	fi
}

measure lib "$lib"
lib_pair=$per_pair lib_info=$info
label="$name size $size"
[ "$kind" = malloc ] || label="$label $kind"
if [ "${lib_info#owned -}" = "$lib_info" ]; then
	# libmagpage answered: say which configuration was measured.
	if [ "$conf_set" = 1 ]; then c=$conf; else c=${MAGPAGE_CONF:-}; fi
	label="$label conf '${c:-default}'"
fi
value=$lib_pair
if [ "$added" = 1 ]; then
	measure glibc ""
	value=$(awk -v a="$per_pair" -v b="$lib_pair" 'BEGIN { printf "%.1f", b - a }')
	line="$label: $lib_pair instructions per pair, glibc alone $per_pair, added $value"
else
	line="$label: $lib_pair instructions per pair"
fi
line="$line ($lib_info; pairs $n1,$n2"

status=0
if [ -n "$expect" ] && [ "${lib_info#owned "$expect",}" = "$lib_info" ]; then
	# Not the path this guard is about (no zone, a changed threshold...).
	line="$line): WRONG PATH, expected owned $expect"
	status=2
elif [ -n "$budget" ]; then
	if awk -v v="$value" -v b="$budget" 'BEGIN { exit !(v > b) }'; then
		line="$line; budget $budget): ABOVE BUDGET"
		status=1
	else
		line="$line; budget $budget): ok"
	fi
else
	line="$line)"
fi
echo "insn_budget: $line"

if [ "$top" -gt 0 ]; then
	echo "insn_budget: top $top functions, self instructions per pair ($name):"
	# Joined on "object<US>function" (US, \037, is in no symbol name).
	tab=$(printf '\t')
	keyed() { selfcost "$1" | awk -F'\t' '{ print $1 "\037" $2 "\t" $3 }' | sort -t "$tab" -k1,1; }
	join -t "$tab" -a 2 -e 0 -o '0,1.2,2.2' \
		<(keyed "$out/lib.$n1.out") <(keyed "$out/lib.$n2.out") |
	awk -F'\t' -v d=$((n2 - n1)) '{
		v = ($3 - $2) / d
		if (v < 0.05) next
		split($1, k, "\037"); n = split(k[1], p, "/")
		printf "%8.1f  %s (%s)\n", v, k[2], p[n] }' |
	sort -k1,1nr | head -n "$top"
fi

exit $status
