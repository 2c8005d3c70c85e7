#!/usr/bin/env bash
# The sqlite3 shell under the allocator, building and churning a database of
# 100,000 rows and 25,000 blobs of 3-20 KiB (sqlite-build.sql), then reading
# it back (sqlite-check.sql).
#
# Proves: sqlite3 preloaded (its page cache asks malloc for page + header
# blocks, its blob values for 3-20 KiB ones) creates, fills, indexes,
# updates, deletes from and VACUUMs a database; `PRAGMA integrity_check`
# prints ok; and a set of deterministic aggregates (counts, sums and a SHA3
# over every deterministic column, blob contents included) equals the one
# from the same script run without the preload, both when read by the
# preloaded shell and when the preloaded database is read by a plain one.
# Check mode: the page-sized requests were served by the page caches, mostly
# from hits.  Figure: seconds of the build.
. "$(dirname "$0")/lib.sh"

need_prog sqlite3 cmp
APP_STATS=(--min-allocs 1000 --expect-program sqlite3)

app_prepare() { :; }

app_reference() {
	[ ! -e "$WORK/sqlite/.done" ] || return 0
	rm -rf "$WORK/sqlite"
	mkdir -p "$WORK/sqlite"
	w 300 sqlite3 "$WORK/sqlite/ref.db" <"$APPS_SRC/sqlite-build.sql" >/dev/null \
		|| fail "sqlite3 without the preload failed"
	w 120 sqlite3 "$WORK/sqlite/ref.db" <"$APPS_SRC/sqlite-check.sql" >"$WORK/sqlite/ref.out"
	rm -f "$WORK/sqlite/ref.db"   # ~700 MB
	[ "$(head -1 "$WORK/sqlite/ref.out")" = ok ] && [ "$(wc -l <"$WORK/sqlite/ref.out")" -eq 12 ] \
		|| { cat "$WORK/sqlite/ref.out" >&2; fail "unexpected output from the unpreloaded run"; }
	touch "$WORK/sqlite/.done"
}

app_run() {
	local t0 f
	t0=$(now)
	m 300 sqlite3 "$DIR/t.db" <"$APPS_SRC/sqlite-build.sql" >"$DIR/build.log" 2>&1 \
		|| { tail "$DIR/build.log" >&2; fail "sqlite3 failed"; }
	figure build_s "$(since "$t0")" lower s
	# the only output of sqlite-build.sql is the journal mode it sets
	[ "$(cat "$DIR/build.log")" = off ] || { cat "$DIR/build.log" >&2; fail "the build printed errors"; }
	m 120 sqlite3 "$DIR/t.db" <"$APPS_SRC/sqlite-check.sql" >"$DIR/out.preloaded" 2>&1 \
		|| { tail "$DIR/out.preloaded" >&2; fail "preloaded sqlite3 cannot read its database"; }
	# The plain shell reads the preloaded database too: what was written
	# to disk must be right, not only what the preloaded shell reads back.
	w 120 sqlite3 "$DIR/t.db" <"$APPS_SRC/sqlite-check.sql" >"$DIR/out.plain-on-pre" 2>&1 \
		|| { tail "$DIR/out.plain-on-pre" >&2; fail "plain sqlite3 cannot read the preloaded database"; }
	prepared
	for f in out.preloaded out.plain-on-pre; do
		cmp -s "$DIR/$f" "$WORK/sqlite/ref.out" \
			|| { diff "$WORK/sqlite/ref.out" "$DIR/$f" >&2; fail "$f differs from the unpreloaded run"; }
	done
	checked "integrity_check ok; aggregates and sha3 of every table as unpreloaded, read preloaded and plain"
	rm -f "$DIR/t.db"
}

apps_main "$@"
