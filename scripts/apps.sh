#!/usr/bin/env bash
# Real applications for scripts/compare.py (benchmark "apps"), each with its
# own figure of merit, peak RSS and page faults, and a check that its output
# is right.  Each application has one driver, tests/integration/apps/APP.sh,
# which the tests run in check mode (ctest -L apps) and this script runs in
# measure mode; see tests/integration/apps/lib.sh for both.
#
# usage: scripts/apps.sh prepare WORK [APP ...]         inputs and references,
#                                                       once, unpreloaded (all
#                                                       apps' by default)
#        scripts/apps.sh run APP WORK OUT [VAR=VALUE ...]
#
# APP is one of redis, postgres, git, python, gcc, sqlite, pybytes (each
# driver's header says what it runs, checks and reports).  Only the measured
# program gets VAR=VALUE (LD_PRELOAD=..., MAGPAGE_CONF=...).  OUT gets
# "figure NAME VALUE higher|lower UNIT", "rss_kib N", "minflt N" and
# "check TEXT" lines.  APPS_SCALE=quick makes every run shorter;
# APPS_GCC_FUNCS sizes gcc's input.  Exit status 0; 1 when the program fails
# or its output is wrong; 77 when it is not installed; 2 on bad usage.
set -euo pipefail
drivers=$(cd "$(dirname "$0")/../tests/integration/apps" && pwd)
apps=(redis postgres git python gcc sqlite pybytes)

usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }
known() { [[ " ${apps[*]} " == *" $1 "* ]] || { echo "apps: unknown application '$1' (${apps[*]})" >&2; exit 2; }; }

case ${1:-} in
-h|--help) usage; exit 0 ;;
prepare)
	[ $# -ge 2 ] || { usage >&2; exit 2; }
	work=$2
	shift 2
	[ $# -gt 0 ] || set -- "${apps[@]}"
	for app in "$@"; do
		known "$app"
		rc=0
		bash "$drivers/$app.sh" --prepare "$work" || rc=$?
		# Not installed: its runs will say so (exit 77).
		[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || exit "$rc"
	done
	echo "apps: inputs ready in $work" >&2
	;;
run)
	[ $# -ge 4 ] || { usage >&2; exit 2; }
	known "$2"
	exec bash "$drivers/$2.sh" --measure "$3" "$4" "${@:5}"
	;;
*) usage >&2; exit 2 ;;
esac
