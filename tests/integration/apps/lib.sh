# Shared helpers for the real-program tests in this folder.  Sourced, not run.
#
# Every test is called as   <name>.sh /abs/path/libmagpage.so [scratch-dir]
# and, after `apps_init "$@"`, has:
#   LIB        the library to preload (absolute path)
#   DIR        a fresh scratch directory (kept after the run, for post-mortems)
#   PY         a python3 that is NOT preloaded, for generators and checkers
#   MP_CONF    the MAGPAGE_CONF that makes every preloaded process append one
#              JSON stats object per line to $DIR/stats.<pid>.json
# Helpers:
#   need_prog P...       exit 77 (ctest SKIP) unless every program P exists
#   w SECS CMD...        watchdog: run CMD, fail if it takes over SECS seconds
#   w SECS preload CMD...  the same, with CMD preloaded and its stats on
#   check_stats ARGS...  tests/integration/apps/check_stats.py over $DIR
#   free_port            print a free TCP port on 127.0.0.1
#   on_exit CMD          queue a cleanup command (run in reverse order on exit)
#   fail MSG             print MSG and exit 1
#
# MAGPAGE_APPS_CONF, if set, is prepended to MAGPAGE_CONF, so one script can be
# registered several times with different configurations.
# MAGPAGE_APPS_NO_STATS=1 lets check_stats pass when no stats file was
# written: only for running these scripts against another allocator (for
# example libjemalloc) while developing them.

set -euo pipefail

APPS_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APPS_NAME=$(basename "$0" .sh)
APPS_T0=$SECONDS

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
	0)  msg "PASS in $((SECONDS - APPS_T0)) s (scratch: $DIR)" ;;
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

	# Debian's python, not a pyenv shim: the checkers must not depend on
	# whatever python3 comes first on PATH.
	PY=/usr/bin/python3
	[ -x "$PY" ] || PY=$(command -v python3) || skip "python3 is not installed"

	# ld.so only warns, and runs the program unpreloaded, when the library
	# cannot be loaded; make that a failure here rather than a silent pass.
	local out
	out=$(env LD_PRELOAD="$LIB" /bin/true 2>&1) || fail "'LD_PRELOAD=$LIB /bin/true' failed: $out"
	[ -z "$out" ] || fail "the library does not preload cleanly: $out"
	msg "library $LIB, scratch $DIR"
}
