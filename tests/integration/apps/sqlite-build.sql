-- sqlite.sh (its check and measure modes): builds the database.
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
