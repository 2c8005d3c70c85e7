-- sqlite.sh (its check and measure modes): checks it, 12 lines of output.
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
