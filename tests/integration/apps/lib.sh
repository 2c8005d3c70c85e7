# The real-program drivers in this folder share these helpers.  Sourced, not
# run.  Each APP.sh is the one driver of its program, used two ways:
#
#   APP.sh /abs/path/libmagpage.so [scratch-dir]     check mode (ctest, label apps)
#   APP.sh --prepare WORK                            measure mode's inputs, once,
#                                                    unpreloaded
#   APP.sh --measure WORK OUT [VAR=VALUE ...]         measure mode (scripts/apps.sh,
#                                                    for scripts/compare.py)
#
# Either way the driver prepares its inputs (app_prepare) and the
# unpreloaded references to check against (app_reference) into $WORK, runs
# the measured program (app_run) and checks its output.  Check mode then checks the library's JSON statistics
# (check_stats); measure mode writes "key value" lines to OUT:
#   figure NAME VALUE higher|lower UNIT
#   rss_kib N      peak RSS of the largest measured process (/usr/bin/time %M)
#   minflt N       minor faults of every measured process (%R)
#   check TEXT     what was verified
# Exit status 0; 1 when the program fails or its output is wrong; 77 when
# the program is not installed (ctest SKIP); 2 on bad usage.
#
# A driver defines app_prepare, app_reference and app_run (the first two
# may be no-ops: `app_prepare() { :; }`), sets APP_STATS (check_stats's
# arguments), and ends with `apps_main "$@"`.  They see:
#   MODE       check or measure (prepare runs app_prepare only)
#   SCALE      test (check mode), quick or full (APPS_SCALE, measure mode)
#   LIB        the library (check mode)
#   WORK       the prepared inputs
#   DIR        a fresh scratch directory for this run
#   PY         a python3 that is NOT preloaded, for generators and checkers
#   MEASURED   the environment of the measured program: LD_PRELOAD and the
#              MAGPAGE_CONF that appends one JSON stats object per process to
#              $DIR/stats.<pid>.json (check), or the VAR=VALUE given (measure)
# Helpers:
#   need_prog P...       exit 77 (ctest SKIP) unless every program P exists
#   w SECS CMD...        watchdog: run CMD, fail if it takes over SECS seconds
#   m SECS CMD...        the measured program: CMD with $MEASURED under the
#                        watchdog (and /usr/bin/time, in measure mode)
#   since T0             seconds since T0=$(now)
#   prepared             wait for app_reference (check mode runs it beside app_run)
#   figure NAME VALUE higher|lower UNIT, checked TEXT: the results
#   check_stats ARGS...  tests/integration/apps/check_stats.py over $DIR
#   free_port            print a free TCP port on 127.0.0.1
#   on_exit CMD          queue a cleanup command (run in reverse order on exit)
#   fail MSG             print MSG and exit 1
#
# MAGPAGE_APPS_CONF, if set, is prepended to MAGPAGE_CONF in check mode, so
# one script can be registered several times with different configurations.
# MAGPAGE_APPS_NO_STATS=1 lets check_stats pass when no stats file was
# written: only for running these scripts against another allocator (for
# example libjemalloc) while developing them.

set -euo pipefail

APPS_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APPS_REPO=$(cd "$APPS_SRC/../../.." && pwd)
APPS_NAME=$(basename "$0" .sh)
APPS_T0=$SECONDS
MODE=check
SCALE=test
MEASURED=()
APP_STATS=()
TIMEF='%e %U %S %M %R'   # elapsed user system maxrss(KiB) minflt

msg()  { printf '%s: %s\n' "$APPS_NAME" "$*" >&2; }
fail() { msg "FAIL: $*"; exit 1; }
skip() { msg "SKIP: $*"; exit 77; }

need_prog() {
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || [ -x "$p" ] || skip "$p is not installed"
	done
}

# Cleanups run in reverse order of registration, whatever the outcome.
APPS_CLEANUPS=()
on_exit() { APPS_CLEANUPS+=("$1"); }
apps_exit() {
	local rc=$? i
	# A second ^C or TERM must not cut the cleanups short: they are bounded.
	trap - EXIT
	trap '' INT TERM
	set +e
	for ((i = ${#APPS_CLEANUPS[@]} - 1; i >= 0; i--)); do
		eval "${APPS_CLEANUPS[i]}"
	done
	case $rc in
	0)  [ "$MODE" = measure ] || msg "PASS in $((SECONDS - APPS_T0)) s (scratch: $DIR)" ;;
	77) ;;
	*)  msg "FAILED (exit $rc) after $((SECONDS - APPS_T0)) s; scratch kept in $DIR" ;;
	esac
	exit "$rc"
}

# w SECS CMD...: the watchdog.  A hang becomes a failure that names the
# command; SIGKILL follows 5 s after SIGTERM for programs that ignore it.
w() {
	local secs=$1 rc=0
	shift
	if [ "$1" = preload ]; then
		shift
		set -- env LD_PRELOAD="$LIB" MAGPAGE_CONF="$MP_CONF" "$@"
	fi
	timeout -k 5 "$secs" "$@" || rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		msg "watchdog: '$*' timed out after $secs s (or was killed)"
	fi
	return "$rc"
}

check_stats() {
	"$PY" "$APPS_SRC/check_stats.py" --dir "$DIR" "$@"
}

free_port() {
	"$PY" - <<-'EOF'
	import socket
	s = socket.socket()
	s.bind(("127.0.0.1", 0))
	print(s.getsockname()[1])
	s.close()
	EOF
}

apps_init() {
	[ $# -ge 1 ] || { echo "usage: $0 /path/to/libmagpage.so [scratch-dir]" >&2; exit 2; }
	[ -f "$1" ] || fail "preload library '$1' does not exist"
	LIB=$(readlink -f "$1")

	# A fresh scratch directory.  An existing one is only wiped if it is
	# ours (marker file), so a mistyped argument never deletes anything.
	if [ -n "${2:-}" ]; then
		DIR=$2
		if [ -e "$DIR" ]; then
			[ -e "$DIR/.magpage-apps-scratch" ] || [ -z "$(ls -A "$DIR")" ] \
				|| fail "scratch dir $DIR exists and is not ours; remove it"
			rm -rf "$DIR"
		fi
		mkdir -p "$DIR"
		DIR=$(cd "$DIR" && pwd)
	else
		DIR=$(mktemp -d "/tmp/magpage-$APPS_NAME.XXXXXX")
	fi
	touch "$DIR/.magpage-apps-scratch"
	trap apps_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	# MAGPAGE_CONF separates keys with ',' and values with ':'.
	case $DIR in *[,:]*) fail "scratch path '$DIR' contains ',' or ':'" ;; esac
	MP_CONF="${MAGPAGE_APPS_CONF:+$MAGPAGE_APPS_CONF,}stats:json,stats_file:$DIR/stats.%p.json"

	# ld.so only warns, and runs the program unpreloaded, when the library
	# cannot be loaded; make that a failure here rather than a silent pass.
	local out
	out=$(env LD_PRELOAD="$LIB" /bin/true 2>&1) || fail "'LD_PRELOAD=$LIB /bin/true' failed: $out"
	[ -z "$out" ] || fail "the library does not preload cleanly: $out"
	msg "library $LIB, scratch $DIR"
}

# m SECS CMD...: the measured program.  Every process it starts gets
# $MEASURED, under the watchdog (timeout, with signal $M_SIG if set); in
# measure mode /usr/bin/time appends its elapsed time, peak RSS and minor
# faults to $DIR/measured.time (mem_lines sums them).  M_AS, a command
# prefix (runuser -u postgres --), runs it all as another user.
M_AS=()
M_SIG=TERM
m() {
	local secs=$1 rc=0 time=()
	shift
	[ "$MODE" != measure ] || time=(/usr/bin/time -a -o "$DIR/measured.time" -f "$TIMEF")
	"${M_AS[@]}" "${time[@]}" timeout -s "$M_SIG" -k 5 "$secs" env "${MEASURED[@]}" "$@" || rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		msg "watchdog: '$*' timed out after $secs s (or was killed)"
	fi
	return "$rc"
}

# prepared: waits until app_reference has finished (check mode runs it in
# the background, beside the measured program).
APPS_PREP=
prepared() {
	[ -n "$APPS_PREP" ] || return 0
	local rc=0
	wait "$APPS_PREP" || rc=$?
	APPS_PREP=
	[ "$rc" -eq 0 ] || { cat "$DIR/reference.log" >&2; fail "the unpreloaded reference failed (exit $rc)"; }
}

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# figure NAME VALUE higher|lower UNIT: a figure of merit.
figure() {
	if [ "$MODE" = measure ]; then echo "figure $*" >>"$OUT"; else msg "$1: $2 $4"; fi
}

# checked TEXT: what the run verified.
checked() {
	if [ "$MODE" = measure ]; then echo "check $*" >>"$OUT"; else msg "$*"; fi
}

# Peak RSS (largest process) and minor faults (all) of the measured programs.
mem_lines() {
	[ -s "$DIR/measured.time" ] || fail "no measured process finished (nothing in $DIR/measured.time)"
	awk 'NF == 5 { if ($4 > rss) rss = $4; flt += $5 }
	     END { printf "rss_kib %d\nminflt %d\n", rss, flt }' "$DIR/measured.time" >>"$OUT"
}

apps_usage() {
	cat <<-EOF
	usage: $0 /abs/path/libmagpage.so [scratch-dir]     check mode (ctest)
	       $0 --prepare WORK                            inputs, unpreloaded, once
	       $0 --measure WORK OUT [VAR=VALUE ...]         one measured run
	EOF
}

# apps_main "$@": the end of every driver.
apps_main() {
	PY=/usr/bin/python3
	[ -x "$PY" ] || PY=$(command -v python3) || skip "python3 is not installed"
	case ${1:-} in
	-h|--help)
		sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"
		apps_usage
		exit 0
		;;
	--prepare)
		[ $# -eq 2 ] || { apps_usage >&2; exit 2; }
		MODE=prepare SCALE=${APPS_SCALE:-full} WORK=$2 DIR=$2
		mkdir -p "$WORK"
		chmod 755 "$WORK"
		app_prepare
		app_reference
		;;
	--measure)
		[ $# -ge 3 ] || { apps_usage >&2; exit 2; }
		MODE=measure SCALE=${APPS_SCALE:-full} WORK=$2 OUT=$3
		shift 3
		local a
		for a in "$@"; do
			case $a in *=*) ;; *) echo "$APPS_NAME: '$a' is not VAR=VALUE" >&2; exit 2 ;; esac
		done
		MEASURED=("$@")
		DIR=$(mktemp -d "$WORK/run-$APPS_NAME.XXXXXX")
		chmod 755 "$DIR"
		: >"$OUT"
		trap apps_exit EXIT
		trap 'exit 130' INT TERM
		app_prepare
		app_reference
		app_run
		mem_lines
		rm -rf "$DIR"
		;;
	*)
		apps_init "$@"
		WORK=$DIR/work
		mkdir -p "$WORK"
		MEASURED=(LD_PRELOAD="$LIB" MAGPAGE_CONF="$MP_CONF")
		# The unpreloaded reference is made beside the measured run (two
		# cores); app_run calls `prepared` before it uses it.
		app_prepare
		app_reference >"$DIR/reference.log" 2>&1 &
		APPS_PREP=$!
		app_run
		prepared
		check_stats "${APP_STATS[@]}"
		;;
	esac
}
