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
cat >"$DIR/build.sql" <<'EOF'
.bail on
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -32768;
CREATE TABLE item(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, grp INTEGER NOT NULL,
                  name TEXT NOT NULL, small BLOB);
CREATE TABLE chunk(id INTEGER PRIMARY KEY, item INTEGER NOT NULL, body BLOB NOT NULL,
                   noise BLOB);
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000)
INSERT INTO item
SELECT i, (i * 2654435761) % 1000003, i % 97, printf('item-%06d-%x', i, i * 40503),
       zeroblob(i % 700)
FROM c;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 25000)
INSERT INTO chunk
SELECT i, i * 4,
       CAST(printf('%.*c', 3072 + (i * 7919) % 17409, char(65 + i % 26)) || printf('%08d', i) AS BLOB),
       CASE WHEN i % 3 = 0 THEN randomblob(3000 + i % 5000) ELSE zeroblob(i % 100) END
FROM c;
COMMIT;
CREATE INDEX item_k ON item(k);
CREATE INDEX item_grp_name ON item(grp, name);
CREATE INDEX chunk_item ON chunk(item);
BEGIN;
UPDATE chunk SET body = body || CAST(printf('%.*c', 1000 + id % 6000, 'u') AS BLOB) WHERE id % 7 = 0;
UPDATE chunk SET body = substr(body, 1, 3000 + id % 1000) WHERE id % 11 = 0;
UPDATE chunk SET noise = randomblob(8192) WHERE id % 5 = 0;
UPDATE item SET name = name || '-renamed', k = k + 17 WHERE k % 3 = 0;
DELETE FROM item WHERE id % 13 = 0;
DELETE FROM chunk WHERE id % 17 = 0 OR item NOT IN (SELECT id FROM item);
COMMIT;
VACUUM;
EOF

cat >"$DIR/check.sql" <<'EOF'
.bail on
PRAGMA integrity_check;
SELECT count(*), sum(k), sum(grp), sum(length(name)), sum(length(small)) FROM item;
SELECT count(*), sum(length(body)), min(length(body)), max(length(body)),
       sum(length(noise)) FROM chunk;
SELECT grp, count(*), sum(k) FROM item GROUP BY grp ORDER BY grp LIMIT 5;
SELECT count(*), sum(length(c.body)) FROM item i JOIN chunk c ON c.item = i.id WHERE i.k < 500000;
SELECT hex(sha3_query('SELECT id, k, grp, name, small FROM item ORDER BY id'));
SELECT hex(sha3_query('SELECT id, item, body, length(noise) FROM chunk ORDER BY id'));
SELECT hex(sha3_query('SELECT name FROM item INDEXED BY item_grp_name WHERE grp = 42 ORDER BY name'));
EOF

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
