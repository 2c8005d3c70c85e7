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
#     pid (matching the file name), program, caches, zone and malloc.
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

[ $status -eq 0 ] && echo "conf.sh: all checks passed"
exit $status
