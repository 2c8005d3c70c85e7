#!/usr/bin/env bash
# Every script in scripts/ answers --help: exit status 0 and a usage line
# ("usage:" or "Usage:") on stdout, without doing its job.  bpftrace
# scripts (*.bt) are run by bpftrace, not by hand: skipped.
#
# usage: scripts_help.sh SCRIPTS_DIR
set -u
dir=${1:?usage: scripts_help.sh SCRIPTS_DIR}
bad=0 n=0
for f in "$dir"/*; do
	[ -f "$f" ] || continue
	case $f in *.bt) continue ;; esac
	n=$((n + 1))
	case $f in
	*.py) cmd=(python3 "$f" --help) ;;
	*) cmd=(bash "$f" --help) ;;
	esac
	rc=0
	out=$(timeout 20 env PYTHONDONTWRITEBYTECODE=1 "${cmd[@]}" 2>/dev/null) || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: ${f##*/} --help exited $rc"
		bad=$((bad + 1))
	elif ! grep -qi '^ *usage:' <<<"$out"; then
		echo "FAIL: ${f##*/} --help printed no usage line:"
		head -5 <<<"$out" | sed 's/^/    /'
		bad=$((bad + 1))
	else
		echo "ok: ${f##*/}: $(grep -i -m1 '^ *usage:' <<<"$out" | sed 's/^ *//')"
	fi
done
echo "$n scripts, $bad without a working --help"
[ "$bad" -eq 0 ] && [ "$n" -gt 0 ]
