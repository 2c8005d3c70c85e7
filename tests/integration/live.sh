#!/usr/bin/env bash
# Live statistics (MAGPAGE_CONF=live:1) and magpage-top, as scripts use it:
#   - a program whose counters change publishes; two --json snapshots a
#     second apart have every field, and the counters moved;
#   - live:counted adds the malloc layer's counts (hits, waste, handler calls);
#   - without rseq, the row that holds the counts of threads that exited says
#     so (JSON merged and gone; the screen's line for it);
#   - the list mode (--once) shows the program; a fork child publishes its
#     own segment and the parent's stays its own;
#   - clear one-line messages and exit 1 for a pid that does not exist, one
#     that does not publish, one that belongs to another user;
#   - after the program is killed nothing is left: no process, no file in
#     /dev/shm or /tmp, and the list no longer shows it;
#   - a bad live value gets the usual one-line message; --doc lists the key.
# Bounded: every program runs under timeout; the whole test in ~15 s.
#   live.sh LIBMAGPAGE LIVE_PROG MAGPAGE_TOP MAGPAGE_CONF_TOOL
set -uo pipefail
lib=$1 prog=$2 top=$3 conftool=$4
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "live: FAIL: $*" >&2; exit 1; }

# start NAME CONF ARGS...: runs live_prog under the preload; sets $pid
# (and $child with "fork") once it has printed "ready".
start() {
	local name=$1 conf=$2; shift 2
	MAGPAGE_CONF=$conf LD_PRELOAD=$lib timeout 60 "$prog" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pids+=($!)
	for _ in $(seq 100); do
		grep -q '^ready' "$tmp/$name.out" 2>/dev/null && break
		sleep 0.1
	done
	pid=$(awk '/^ready/ {print $2}' "$tmp/$name.out")
	child=$(awk '/^child/ {print $2}' "$tmp/$name.out")
	[ -n "$pid" ] || fail "$name did not start: $(cat "$tmp/$name.err")"
	pids+=($pid ${child:-})
}

ls /dev/shm /tmp 2>/dev/null | grep -i magpage | sort >"$tmp/shm.before"

# later A B EXPR: takes snapshot B of $pid until the Python expression EXPR
# over a and b (A's and B's JSON) holds, 10 s at most (a loaded machine
# runs the program slowly); the assertions after it say what did not move.
later() {
	local a=$1 b=$2 expr=$3
	for _ in $(seq 40); do
		sleep 0.25
		timeout 10 "$top" --json "$pid" >"$b" || fail "--json $pid: exit $?"
		python3 -c "import json, sys
a, b = json.load(open('$a')), json.load(open('$b'))
sys.exit(0 if ($expr) else 1)" && return 0
	done
	return 0
}

# ---- two snapshots, counters moving ------------------------------------------
start plain live:1 30
timeout 10 "$top" --json "$pid" >"$tmp/a.json" || fail "--json $pid: exit $?"
# (run(1) before "ready" can last a few milliseconds when it starts late in a
# second, and the first snapshot can predate its first run object)
moved='(b["publishes"] > a["publishes"]
 and b["signal"]["handler_entries"] > a["signal"]["handler_entries"]
 and b["caches"]["refills"] + b["caches"]["drains"] > a["caches"]["refills"] + a["caches"]["drains"]
 and b["runs"]["allocs"] > a["runs"]["allocs"] and b["runs"]["held"] > 0)'
later "$tmp/a.json" "$tmp/b.json" "$moved"
python3 - "$tmp/a.json" "$tmp/b.json" "$pid" <<'EOF' || fail "plain: snapshots"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
pid = int(sys.argv[3])
for d in (a, b):
    assert d["pid"] == pid and d["program"] == "live_prog", d["pid"]
    assert d["publisher"] == "running" and d["period_ms"] == 250
    for k in ("zone", "caches", "malloc", "signal", "purge", "runs"):
        assert k in d, k
    for k in ("live", "live_bytes", "held", "pages", "idle_pages", "allocs", "frees",
              "made", "released", "deferred"):
        assert k in d["runs"], k
    z = d["zone"]
    for k in ("pages", "free_pages", "held_pages", "lock", "allocs", "frees", "batches",
              "splits", "merges", "purged_pages", "purge_runs", "buddyinfo"):
        assert k in z, k
    assert len(z["buddyinfo"]) == 11
    for k in ("allocs", "hits", "refills", "refill_pages", "drains", "drain_pages", "list"):
        assert k in d["caches"], k
    assert d["caches"]["count"] == len(d["caches"]["list"]) > 0
    assert "held_back" in d["signal"] and "handler_entries" in d["signal"]
    # live:1 alone: the default cache's fast path counts nothing
    assert d["counted"] is False and d["cache_hit_pct"] is None
assert b["publishes"] > a["publishes"], (a["publishes"], b["publishes"])
moved = lambda d: d["zone"]["lock"]["acquired"] + d["caches"]["refills"] + d["caches"]["drains"]
assert moved(b) > moved(a), "zone lock, refills and drains did not move"
assert b["signal"]["handler_entries"] > a["signal"]["handler_entries"], "handler entries"
# its 4196- and 8292-byte blocks are run objects (counted with live:1 too)
assert b["runs"]["allocs"] > a["runs"]["allocs"], (a["runs"], b["runs"])
assert b["runs"]["held"] > 0 and b["runs"]["pages"] > 0
print(f"live: plain: publishes {a['publishes']} -> {b['publishes']}, "
      f"lock+refills+drains {moved(a)} -> {moved(b)}")
EOF
plain=$pid

# ---- live:counted -------------------------------------------------------------
start counted live:counted 30
timeout 10 "$top" --json "$pid" >"$tmp/c.json" || fail "--json counted: exit $?"
later "$tmp/c.json" "$tmp/d.json" 'b["malloc"]["malloc_calls"] > a["malloc"]["malloc_calls"] > 0 and b["malloc"]["sig_malloc"] > 0'
python3 - "$tmp/c.json" "$tmp/d.json" <<'EOF' || fail "counted: snapshots"
import json, sys
c, d = (json.load(open(p)) for p in sys.argv[1:3])
assert d["counted"] is True and d["hits_counted"] is True
assert d["malloc"]["malloc_calls"] > c["malloc"]["malloc_calls"] > 0
assert d["caches"]["allocs"] > c["caches"]["allocs"] and d["caches"]["hits"] > 0
assert 0 < d["cache_hit_pct"] <= 100 and d["rounding_waste_pct"] > 0
assert d["malloc"]["sig_malloc"] > 0 and d["malloc"]["waste_kept_bytes"] > 0
print(f"live: counted: hit rate {d['cache_hit_pct']}%, rounding waste {d['rounding_waste_pct']}%, "
      f"handler allocations {d['malloc']['sig_malloc']}")
EOF
counted=$pid

# ---- threads gone, without rseq ---------------------------------------------------
# The default cache keeps one set of arrays per thread then: the 80 that
# came and went are one row, which says so in the JSON and on the screen.
GLIBC_TUNABLES=glibc.pthread.rseq=0 start threads live:1 30 threads
timeout 10 "$top" --json "$pid" >"$tmp/t0.json" || fail "--json threads: exit $?"
# the segment may predate the threads by up to a period
later "$tmp/t0.json" "$tmp/t.json" 'sum(r["gone"] for r in b["caches"]["list"]) >= 80'
timeout 10 "$top" --once "$pid" >"$tmp/t.screen" || fail "--once threads: exit $?"
python3 - "$tmp/t.json" <<'EOF2' || fail "threads: $(cat "$tmp/t.json")"
import json, sys
d = json.load(open(sys.argv[1]))
rows = d["caches"]["list"]
assert all("merged" in r and "gone" in r for r in rows)
gone = [r for r in rows if r["gone"]]
assert len(gone) == 1 and gone[0]["gone"] >= 80 and gone[0]["merged"] >= gone[0]["gone"], gone
assert all(r["merged"] == 0 for r in rows if not r["gone"])
row = gone[0]
print(f"live: threads: row {row['id']} holds the counts of {row['gone']} threads that exited")
EOF2
grep -Eq "the counts of [0-9]+ threads that exited" "$tmp/t.screen" ||
	fail "threads: the screen does not say which row holds the exited threads: $(cat "$tmp/t.screen")"

# ---- the list, and fork ---------------------------------------------------------
start forked live:1 30 fork
[ -n "$child" ] || fail "fork: no child pid: $(cat "$tmp/forked.out")"
timeout 10 "$top" --once >"$tmp/list" || fail "--once: exit $?"
for p in "$plain" "$counted" "$pid" "$child"; do
	grep -Eq "^ +$p +live_prog " "$tmp/list" || fail "list: no line for $p: $(cat "$tmp/list")"
done
grep -q "PAGES-HELD" "$tmp/list" || fail "list: no header"
timeout 10 "$top" --json "$child" >"$tmp/child.json" || fail "--json child: exit $?"
timeout 10 "$top" --json "$pid" >"$tmp/parent.json" || fail "--json parent: exit $?"
timeout 10 "$top" --json >"$tmp/all.json" || fail "--json (all): exit $?"
python3 - "$tmp/child.json" "$tmp/parent.json" "$child" "$pid" "$tmp/all.json" <<'EOF' || fail "fork"
import json, sys
c, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert c["pid"] == int(sys.argv[3]) and p["pid"] == int(sys.argv[4])
assert c["publisher"] == "running" and p["publisher"] == "running"
pids = [d["pid"] for d in json.load(open(sys.argv[5]))]
assert c["pid"] in pids and p["pid"] in pids, pids
EOF
echo "live: list and fork: parent $pid and child $child each publish their own"

# ---- messages -----------------------------------------------------------------
runas=()     # a command that runs magpage-top as another user, or nothing
expect() {   # expect WHAT REGEX ARGS...: exit 1 and one line matching REGEX
	local what=$1 re=$2; shift 2
	timeout 10 "${runas[@]}" "$top" "$@" >"$tmp/msg.out" 2>"$tmp/msg.err"
	local rc=$?
	[ $rc -eq 1 ] || fail "$what: exit $rc, wanted 1"
	[ "$(wc -l <"$tmp/msg.err")" -eq 1 ] || fail "$what: not one line: $(cat "$tmp/msg.err")"
	grep -Eq "$re" "$tmp/msg.err" || fail "$what: '$(cat "$tmp/msg.err")' does not match '$re'"
	echo "live: $what: $(cat "$tmp/msg.err")"
}
sleep 30 & quiet=$!; pids+=($quiet)
true & gone=$!; wait $gone
expect "no such pid" "^magpage-top: no process with pid $gone\$" --json "$gone"
expect "no such pid (screen)" "no process with pid $gone" --once "$gone"
expect "not publishing" "^magpage-top: pid $quiet \(sleep\) is not publishing live statistics.*live:1" --json "$quiet"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	# magpage-top as nobody, the program root's
	runas=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	expect "another user" "^magpage-top: pid $plain \(live_prog\) belongs to another user \(uid 0\)" \
		--json "$plain"
	runas=()
elif [ -r /proc/1/fd ]; then
	echo "live: another user: SKIPPED (pid 1's descriptors are readable here and we are not root)"
else
	expect "another user" "belongs to another user" --json 1
fi
timeout 10 "$top" --json abc >/dev/null 2>&1; [ $? -eq 2 ] || fail "a pid that is not a number: exit not 2"

# ---- exit and crash leave nothing ------------------------------------------------
kill -9 "$plain"     # a crash: no exit handler runs
for _ in $(seq 50); do [ -e "/proc/$plain" ] || break; sleep 0.1; done
[ -e "/proc/$plain" ] && fail "pid $plain still there after SIGKILL"
expect "after a crash" "^magpage-top: no process with pid $plain\$" --json "$plain"
timeout 10 "$top" --once >"$tmp/list2"
grep -Eq "^ +$plain " "$tmp/list2" && fail "list still shows the killed $plain"
ls /dev/shm /tmp 2>/dev/null | grep -i magpage | sort >"$tmp/shm.after"
diff "$tmp/shm.before" "$tmp/shm.after" >/dev/null || fail "files left: $(diff "$tmp/shm.before" "$tmp/shm.after")"

# ---- configuration --------------------------------------------------------------
msg=$("$conftool" live:2 2>&1 >/dev/null)
[ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] || fail "live:2: not one line: $msg"
printf '%s' "$msg" | grep -q "live" && printf '%s' "$msg" | grep -q "counted" \
	|| fail "live:2: message does not name the key and its values: $msg"
"$conftool" --doc | grep -q '^| `live` | `0` | one of 0, 1, counted |' \
	|| fail "--doc does not list live"
echo "live: PASS"
