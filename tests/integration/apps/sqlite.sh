#!/usr/bin/env bash
# The sqlite3 shell under libmagpage, building and churning a database of
# 100,000 rows and 25,000 blobs of 3-20 KiB.
#
# Proves: sqlite3 preloaded (its page cache asks malloc for page + header
# blocks, its blob values for 3-20 KiB ones) creates, fills, indexes,
# updates, deletes from and VACUUMs a database; `PRAGMA integrity_check`
# prints ok; and a set of deterministic aggregates (counts, sums and a SHA3
# over every deterministic column, blob contents included) equals the one
# from the same script run without the preload, both when read by the
# preloaded shell and when the preloaded database is read by a plain one.
# The page-sized requests were served by the page caches, mostly from hits.
#
# usage: sqlite.sh /abs/path/libmagpage.so [scratch-dir]
. "$(dirname "$0")/lib.sh"

need_prog sqlite3
apps_init "$@"

# Row i of chunk holds a deterministic blob of 3072..20480 bytes; `noise`
# is random (randomblob) and only its length enters the aggregates.
cp "$(dirname "$0")/sqlite-build.sql" "$DIR/build.sql"

cp "$(dirname "$0")/sqlite-check.sql" "$DIR/check.sql"

# The preloaded and the plain builds run at the same time (two cores).
# build [preload] DB: runs build.sql then check.sql on DB; check.sql's
# output goes to stdout, build.sql's to DB.build.log.
build() {
	local with=()
	[ "$1" != preload ] || { with=(preload); shift; }
	w 90 "${with[@]}" sqlite3 "$1" <"$DIR/build.sql" >"$1.build.log" 2>&1 &&
		w 60 "${with[@]}" sqlite3 "$1" <"$DIR/check.sql"
}
build preload "$DIR/pre.db" >"$DIR/out.preloaded" 2>&1 & pre=$!
build "$DIR/plain.db" >"$DIR/out.plain" 2>&1 & plain=$!
rc_pre=0; wait "$pre" || rc_pre=$?
rc_plain=0; wait "$plain" || rc_plain=$?
[ "$rc_plain" -eq 0 ] || { tail "$DIR/plain.db.build.log" "$DIR/out.plain" >&2; fail "sqlite3 without the preload failed"; }
[ "$rc_pre" -eq 0 ] || { tail "$DIR/pre.db.build.log" "$DIR/out.preloaded" >&2; fail "preloaded sqlite3 failed (exit $rc_pre)"; }
for f in pre plain; do
	# the only output of build.sql is the journal mode it sets
	[ "$(cat "$DIR/$f.db.build.log")" = off ] || { cat "$DIR/$f.db.build.log" >&2; fail "build.sql printed errors ($f)"; }
done

# The plain shell reads the preloaded database too: what was written to
# disk must be right, not only what the preloaded shell reads back.
w 60 sqlite3 "$DIR/pre.db" <"$DIR/check.sql" >"$DIR/out.plain-on-pre" 2>&1 \
	|| { tail "$DIR/out.plain-on-pre" >&2; fail "plain sqlite3 cannot read the preloaded database"; }

for f in out.preloaded out.plain out.plain-on-pre; do
	[ "$(head -1 "$DIR/$f")" = ok ] || { head "$DIR/$f" >&2; fail "PRAGMA integrity_check in $f is not ok"; }
done
[ "$(wc -l <"$DIR/out.plain")" -eq 12 ] || { cat "$DIR/out.plain" >&2; fail "unexpected output from the plain run"; }
cmp "$DIR/out.plain" "$DIR/out.preloaded" \
	|| { diff "$DIR/out.plain" "$DIR/out.preloaded" >&2; fail "preloaded aggregates differ from plain ones"; }
cmp "$DIR/out.plain" "$DIR/out.plain-on-pre" \
	|| { diff "$DIR/out.plain" "$DIR/out.plain-on-pre" >&2; fail "the preloaded database differs from the plain one"; }
msg "integrity ok, aggregates identical 3 ways; chunk: $(sed -n 3p "$DIR/out.plain")"

check_stats --min-allocs 1000 --expect-program sqlite3
rm -f "$DIR"/*.db # ~700 MB; the outputs and logs stay
