#!/bin/bash
# conf.sh — MAGPAGE_CONF errors and the at-exit statistics report.
#
# Usage: conf.sh LIBMAGPAGE MP_HELPER
#
# Proves (DESIGN.md "Configuration, statistics"; notes §6 P0.19):
#   - an unknown key gets exactly one line on stderr naming it and listing
#     the accepted keys, and the program runs normally (exit 0);
#   - a bad value gets one line naming the key, the value and what is
#     accepted ("power of two" for magazines:3);
#   - strict:1 with a bad key aborts before the program runs;
#   - stats:1 prints the text report ("=== libmagpage stats: pid N") at exit;
#   - stats:json with stats_file:DIR/s.%p.json writes one file per process,
#     each holding exactly one JSON object (python3 json.load) with the keys
#     pid (matching the file name), program, caches, zone and malloc;
#   - a bad item is skipped: magazines:8,magazines:x keeps 8, and says so;
#   - control characters from MAGPAGE_CONF are echoed escaped (\x1b);
#   - stats_file is not turned against the process: a symbolic link there,
#     a regular file of another user or with a second hard link is refused
#     with one line and left untouched (the report goes to stderr); a new
#     file is created 0600; /dev/null works, also for a user who does not
#     own it; a FIFO nothing reads is an error, not a hang at exit; a quote
#     in the path still gives valid JSON; a long %p expansion is not cut.
set -u
lib=$1 helper=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

# run CONF CMD...: the command under the preload; stdout, stderr and exit
# status land in $tmp/out, $tmp/err and $rc.
run() {
	local conf=$1
	shift
	LD_PRELOAD=$lib MAGPAGE_CONF=$conf "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}
lines() { grep -c '' "$1"; }

# Unknown key.
run bogus:1 /bin/true
[ $rc -eq 0 ] || fail "bogus:1: exit $rc"
[ "$(lines "$tmp/err")" -eq 1 ] || fail "bogus:1: expected one line, got: $(cat "$tmp/err")"
grep -q "'bogus'" "$tmp/err" || fail "bogus:1: the key is not named: $(cat "$tmp/err")"
for key in preset cache magazines mag_map signal stats stats_file strict on_invalid; do
	grep -qw "$key" "$tmp/err" || fail "bogus:1: accepted key '$key' not listed: $(cat "$tmp/err")"
done

# Bad value.
run magazines:3 /bin/true
[ $rc -eq 0 ] || fail "magazines:3: exit $rc"
[ "$(lines "$tmp/err")" -eq 1 ] || fail "magazines:3: expected one line, got: $(cat "$tmp/err")"
grep -q "magazines" "$tmp/err" && grep -q "'3'" "$tmp/err" && grep -q "power of two" "$tmp/err" ||
	fail "magazines:3: message must name the key, the value and 'power of two': $(cat "$tmp/err")"

# Good settings are silent.
run preset:rfc2013,cache:none,signal:trylock,magazines:4 /bin/true
[ $rc -eq 0 ] && [ ! -s "$tmp/err" ] || fail "valid settings: exit $rc, stderr: $(cat "$tmp/err")"

# strict:1 turns a bad key into an abort before main.
run strict:1,bogus:1 /bin/echo main-ran
[ $rc -ne 0 ] || fail "strict:1,bogus:1: exit 0, expected an abort"
[ $rc -eq 134 ] || fail "strict:1,bogus:1: exit $rc, expected 134 (SIGABRT)"
grep -q main-ran "$tmp/out" && fail "strict:1,bogus:1: the program ran"
grep -q "'bogus'" "$tmp/err" || fail "strict:1,bogus:1: no message: $(cat "$tmp/err")"

# stats:1, text report at exit.
run stats:1 /bin/true
[ $rc -eq 0 ] || fail "stats:1: exit $rc"
grep -q "^=== libmagpage stats: pid [0-9]" "$tmp/err" || fail "stats:1: no report: $(head -3 "$tmp/err")"

# stats:json to one file per process: the helper forks 3 children that exit.
mkdir "$tmp/stats"
run "stats:json,stats_file:$tmp/stats/s.%p.json" "$helper" forkexit 3
[ $rc -eq 0 ] || fail "stats:json: helper exit $rc: $(cat "$tmp/out" "$tmp/err")"
[ -s "$tmp/err" ] && fail "stats:json: stderr not empty: $(cat "$tmp/err")"
nfiles=$(ls "$tmp/stats" | wc -l)
[ "$nfiles" -eq 4 ] || fail "stats:json: expected 4 files (parent + 3 children), got $nfiles: $(ls "$tmp/stats")"
PYTHONPATH= python3 - "$tmp/stats" <<'PY' || fail "stats:json: bad report files"
import json, os, sys
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    with open(os.path.join(d, name)) as f:
        obj = json.load(f)          # exactly one JSON object per file
    for key in ("pid", "program", "caches", "zone", "malloc"):
        assert key in obj, f"{name}: no key {key!r}"
    assert f"s.{obj['pid']}.json" == name, f"{name}: pid {obj['pid']}"
    assert obj["program"] == "mp_helper", f"{name}: program {obj['program']!r}"
    assert obj["zone"]["pages"] > 0, f"{name}: zone {obj['zone']}"
    assert obj["malloc"]["calls"]["malloc"] > 0, f"{name}: malloc {obj['malloc']}"
PY

# A repeated key with a bad value: the item is skipped, the last good value
# stays, and the message says which (verbose:1 prints what is in effect).
run magazines:8,magazines:x,verbose:1 /bin/true
[ $rc -eq 0 ] || fail "magazines:8,magazines:x: exit $rc"
grep -q "bad value 'x' for key 'magazines'.*; magazines stays 8$" "$tmp/err" ||
	fail "magazines:8,magazines:x: the message must say magazines stays 8: $(cat "$tmp/err")"
grep -qx "magazines:8" "$tmp/err" || fail "magazines:8,magazines:x: not in effect: $(cat "$tmp/err")"

# Control characters in a bad key or value are echoed escaped.
run $'magazines:\x1b[2J\x01,b\x1bgus:1' /bin/true
[ $rc -eq 0 ] || fail "control characters: exit $rc"
[ "$(lines "$tmp/err")" -eq 2 ] || fail "control characters: expected two lines: $(cat -v "$tmp/err")"
LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$tmp/err" &&
	fail "control characters reach stderr raw: $(cat -v "$tmp/err")"
grep -qF "bad value '\x1b[2J\x01' for key 'magazines'" "$tmp/err" &&
	grep -qF "unknown key 'b\x1bgus'" "$tmp/err" ||
	fail "control characters: not shown as \\xNN: $(cat -v "$tmp/err")"

# stats_file: a symbolic link planted at the path is refused; its target is
# left as it was; the report goes to stderr.
umask 022
mkdir "$tmp/sf"
echo "target, unchanged" >"$tmp/sf/target"
cp "$tmp/sf/target" "$tmp/sf/target.orig"
ln -s "$tmp/sf/target" "$tmp/sf/link"
ln -s "$tmp/sf/absent" "$tmp/sf/dangling"
for name in link dangling; do
	run "stats:1,stats_file:$tmp/sf/$name" /bin/true
	[ $rc -eq 0 ] || fail "symlink $name: exit $rc"
	[ "$(grep -c '^libmagpage: ' "$tmp/err")" -eq 1 ] &&
		grep -qx "libmagpage: stats_file: refusing '$tmp/sf/$name': it is a symbolic link; writing the report to stderr" "$tmp/err" ||
		fail "symlink $name: expected one line refusing it: $(head -3 "$tmp/err")"
	grep -q "^=== libmagpage stats: pid" "$tmp/err" || fail "symlink $name: no report on stderr"
done
cmp -s "$tmp/sf/target" "$tmp/sf/target.orig" || fail "symlink: the target was written to"
[ -e "$tmp/sf/absent" ] && fail "dangling symlink: its target was created"

# A new file is created 0600, whatever the umask lets through ...
run "stats:1,stats_file:$tmp/sf/new" /bin/true
[ $rc -eq 0 ] && [ ! -s "$tmp/err" ] || fail "new stats_file: exit $rc, stderr: $(head -3 "$tmp/err")"
[ "$(stat -c %a "$tmp/sf/new")" = 600 ] || fail "new stats_file: mode $(stat -c %a "$tmp/sf/new"), want 600"
grep -q "^=== libmagpage stats: pid" "$tmp/sf/new" || fail "new stats_file: no report in it"
# ... and an existing one of ours is appended to.
run "stats:1,stats_file:$tmp/sf/new" /bin/true
[ "$(grep -c '^=== libmagpage stats' "$tmp/sf/new")" -eq 2 ] || fail "own stats_file: not appended to"

# A regular file with a second hard link (another name for, say, a file in
# /etc) is refused.
echo "linked, unchanged" >"$tmp/sf/victim"
ln "$tmp/sf/victim" "$tmp/sf/hardlink"
run "stats:1,stats_file:$tmp/sf/hardlink" /bin/true
grep -q "^libmagpage: stats_file: refusing '$tmp/sf/hardlink': a regular file with more than one hard link" "$tmp/err" ||
	fail "hard link: not refused: $(head -3 "$tmp/err")"
[ "$(cat "$tmp/sf/victim")" = "linked, unchanged" ] || fail "hard link: the file was written to"

# Root: a file another user owns is refused (planted in advance, it would
# have root write its report where that user reads it).  Another user:
# /dev/null, owned by root, must still work.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	echo "nobody's, unchanged" >"$tmp/sf/theirs"
	chown nobody "$tmp/sf/theirs"
	run "stats:1,stats_file:$tmp/sf/theirs" /bin/true
	[ $rc -eq 0 ] || fail "other user's file: exit $rc"
	[ "$(grep -c '^libmagpage: ' "$tmp/err")" -eq 1 ] &&
		grep -qx "libmagpage: stats_file: refusing '$tmp/sf/theirs': owned by another user (file uid $(id -u nobody), process euid 0); writing the report to stderr" "$tmp/err" ||
		fail "other user's file: expected one line refusing it: $(head -3 "$tmp/err")"
	[ "$(cat "$tmp/sf/theirs")" = "nobody's, unchanged" ] || fail "other user's file: written to"
	as_nobody=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
	if command -v setpriv >/dev/null && "${as_nobody[@]}" test -r "$lib"; then
		LD_PRELOAD=$lib MAGPAGE_CONF=stats:json,stats_file:/dev/null "${as_nobody[@]}" /bin/true \
			>"$tmp/out" 2>"$tmp/err"
		rc=$?
		[ $rc -eq 0 ] && [ ! -s "$tmp/err" ] ||
			fail "/dev/null as nobody: exit $rc, stderr: $(head -3 "$tmp/err")"
	else
		echo "conf.sh: skipped /dev/null as another user (no setpriv, or nobody cannot read $lib)"
	fi
else
	echo "conf.sh: skipped the other-user checks (not root, or no user nobody)"
fi
run stats:json,stats_file:/dev/null /bin/true
[ $rc -eq 0 ] && [ ! -s "$tmp/err" ] || fail "/dev/null: exit $rc, stderr: $(head -3 "$tmp/err")"

# A FIFO that nothing reads is an error at exit, not a hang.
mkfifo "$tmp/sf/fifo"
timeout -s KILL 10 env LD_PRELOAD="$lib" MAGPAGE_CONF="stats:1,stats_file:$tmp/sf/fifo" /bin/true \
	>"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || fail "unread FIFO: exit $rc (137: the exit hung)"
grep -qx "libmagpage: stats_file: cannot open '$tmp/sf/fifo': a FIFO that nothing reads; writing the report to stderr" "$tmp/err" ||
	fail "unread FIFO: no message: $(head -3 "$tmp/err")"

# A quote, a backslash and a control character in stats_file: the JSON
# report is still valid and names the path.
qdir="$tmp/q\"uo\\te"$'\x01'
mkdir "$qdir"
run "stats:json,stats_file:$qdir/s.%p.json" /bin/true
[ $rc -eq 0 ] && [ ! -s "$tmp/err" ] || fail "quote in stats_file: exit $rc, stderr: $(head -3 "$tmp/err")"
PYTHONPATH= python3 - "$qdir" <<'PY' || fail "quote in stats_file: the report is not valid JSON"
import json, os, sys
d = sys.argv[1]
(name,) = os.listdir(d)
with open(os.path.join(d, name)) as f:
    obj = json.load(f)
assert obj["config"]["stats_file"] == d + "/s.%p.json", obj["config"]["stats_file"]
PY

# %p expanded past 276 bytes, where the path used to be cut silently: the
# file gets its whole name.  A directory pads the path to 190 bytes before
# 30 %p: with a pid of 3 to 8 digits, 280 to 430 bytes.
base="$tmp/sf/"
pad=$((190 - ${#base} - 1))
if [ $pad -gt 0 ]; then
	dir=$base$(printf '%*s' $pad '' | tr ' ' d)
	mkdir "$dir"
	run "stats:1,stats_file:$dir/$(printf '%%p%.0s' $(seq 30))" /bin/true
	[ $rc -eq 0 ] && [ ! -s "$tmp/err" ] || fail "long %p: exit $rc, stderr: $(head -3 "$tmp/err")"
	name=$(ls "$dir")
	pid=$(sed -n 's/^=== libmagpage stats: pid \([0-9]*\) .*/\1/p' "$dir/$name" 2>/dev/null)
	want=$(printf "$pid%.0s" $(seq 30))
	[ -n "$pid" ] && [ "$name" = "$want" ] ||
		fail "long %p: the file is named '$name' (${#name} bytes), want 30 times the pid $pid"
fi

# numa (issue 12): each bad value in one line naming the key, the value and
# what is accepted; good values silent; verbose:1 shows the one in effect;
# the JSON report has one node object per zone.
for v in fake=1 fake=17 fake= fake=x yes 2; do
	run "numa:$v" /bin/true
	[ $rc -eq 0 ] && [ "$(lines "$tmp/err")" -eq 1 ] &&
		grep -qF "bad value '$v' for key 'numa'; accepted: auto, off, or fake=N with N from 2 to 16; numa stays auto" "$tmp/err" ||
		fail "numa:$v: exit $rc, expected one line naming it: $(cat "$tmp/err")"
done
for v in auto off fake=2 fake=16; do
	run "numa:$v" /bin/true
	[ $rc -eq 0 ] && [ ! -s "$tmp/err" ] || fail "numa:$v: exit $rc, stderr: $(cat "$tmp/err")"
done
run numa:fake=2,verbose:1 /bin/true
grep -qx "numa:fake=2" "$tmp/err" || fail "numa:fake=2,verbose:1: not in effect: $(cat "$tmp/err")"
run "numa:fake=2,stats:json,stats_file:$tmp/numa.json" "$helper" 2>/dev/null
python3 - "$tmp/numa.json" <<'PY' || fail "numa:fake=2: the JSON report's numa object"
import json, sys
obj = json.loads(open(sys.argv[1]).readline())
numa = obj["numa"]
assert numa["mode"] == "fake=2", numa
assert [n["node"] for n in numa["nodes"]] == [0, 1], numa
for n in numa["nodes"]:
    for k in ("pages", "free_pages", "numa_hit", "numa_miss", "numa_foreign",
              "local_node", "other_node", "remote_frees"):
        assert isinstance(n[k], int), (k, n)
assert sum(n["pages"] for n in numa["nodes"]) == obj["zone"]["pages"], numa
PY

[ $status -eq 0 ] && echo "conf.sh: all checks passed"
exit $status
