#!/usr/bin/env bash
# PostgreSQL 15 server under the allocator, driven by pgbench.
#
# Proves: a preloaded postmaster and its forked backends (fork without exec,
# so they inherit the zone and the magazines) run pgbench's TPC-B-like load
# without a crash, a hang or a failed transaction; the bank invariant holds
# afterwards (every balance column sums to the sum of the history deltas,
# and the history has one row per committed transaction); and the server's
# 8 KiB-ish palloc blocks were served by the page caches, mostly from hits.
#
# Parallel workers: the postmaster forks them from inside its signal handler
# and they never return from it, so they are exactly the "child forked in a
# handler" of issue 8 (defect 7).  At scale 4 pgbench -i builds the
# 400000-row primary key with one parallel worker (the defaults:
# max_parallel_maintenance_workers 2, cut to 1 by maintenance_work_mem
# 64MB), and each participant's tuple sort asks for 6 MiB at once (262144
# SortTuples), over the zone's 4 MiB: a worker taken for a signal handler
# fails "out of memory ... CONTEXT: parallel worker".  A REINDEX at
# client_min_messages debug1 then proves the build asked for workers.
#
# The server runs as the postgres user in a data directory inside the scratch
# directory, with no TCP listener (listen_addresses='') and its unix socket
# in the scratch directory only.  Only the server is preloaded.
#
# Figure: transactions per second of pgbench -c 4 -j 2 (10 s; quick 8 s,
# full 30 s).  Check mode: the server's page-sized requests were served by
# the page caches, mostly from hits.
. "$(dirname "$0")/lib.sh"

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
for p in initdb postgres pg_ctl pgbench psql; do need_prog "$PGBIN/$p"; done
APP_STATS=(--min-allocs 1000 --expect-program postgres)

app_prepare() { :; }
app_reference() { :; }

# postgres refuses to run as root: tests run as root, so switch user.
AS=()
as_pg() { "${AS[@]}" "$@"; }

PGPID=
# Stops the server whatever state it is in: pg_ctl needs the pid file, which
# the postmaster writes a moment after it starts.
pg_stop() {
	local i pm
	[ -n "$PGPID" ] || return 0
	for i in $(seq 50); do
		kill -0 "$PGPID" 2>/dev/null || return 0
		[ -s "$DATA/postmaster.pid" ] && break
		sleep 0.1
	done
	as_pg "$PGBIN/pg_ctl" stop -D "$DATA" -m fast -w -t 20 >/dev/null 2>&1 ||
		as_pg "$PGBIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 10 >/dev/null 2>&1 || {
			pm=$(head -1 "$DATA/postmaster.pid" 2>/dev/null) && kill -KILL "$pm" 2>/dev/null
		}
	wait "$PGPID" 2>/dev/null
}

app_run() {
	local secs=10 i
	case $SCALE in quick) secs=8 ;; full) secs=30 ;; esac
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || skip "no postgres user"
		AS=(runuser -u postgres --)
		chown postgres: "$DIR"
		as_pg test -w "$DIR" || fail "user postgres cannot write $DIR (a parent directory is not searchable?)"
		[ -z "${LIB:-}" ] || as_pg test -r "$LIB" || fail "user postgres cannot read $LIB"
	fi
	DATA=$DIR/data
	SOCK=$DIR/sock
	# A unix socket path is limited to 107 bytes; fall back to a short
	# private directory if the scratch path is too deep.
	if [ ${#SOCK} -gt 80 ]; then
		SOCK=$(mktemp -d /tmp/magpage-pg.XXXXXX)
		on_exit "rm -rf '$SOCK'"
	fi
	mkdir -p "$SOCK"
	[ ${#AS[@]} -eq 0 ] || chown postgres: "$SOCK"
	chmod 700 "$SOCK"
	PORT=5432 # names the socket file only: no TCP listener

	w 120 "${AS[@]}" "$PGBIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync >"$DIR/initdb.log" 2>&1 \
		|| { tail -20 "$DIR/initdb.log" >&2; fail "initdb failed"; }
	# Durability is beside the point here; keep the disk out of the timing.
	cat >>"$DATA/postgresql.conf" <<-EOF
	listen_addresses = ''
	unix_socket_directories = '$SOCK'
	port = $PORT
	fsync = off
	synchronous_commit = off
	full_page_writes = off
	max_connections = 20
	EOF

	# The postmaster runs in the foreground under `timeout`, so it cannot
	# outlive the run even if this script is killed; SIGINT is a fast
	# shutdown.
	(M_AS=("${AS[@]}"); M_SIG=INT; m $((secs + 300)) "$PGBIN/postgres" -D "$DATA") >"$DIR/server.log" 2>&1 &
	PGPID=$!
	on_exit pg_stop

	psql() { as_pg "$PGBIN/psql" -h "$SOCK" -p "$PORT" -U postgres -X -v ON_ERROR_STOP=1 -qAt "$@"; }
	for i in $(seq 150); do
		psql -d postgres -c 'select 1' >/dev/null 2>&1 && break
		kill -0 "$PGPID" 2>/dev/null || { tail -20 "$DIR/server.log" >&2; fail "postgres exited during start-up"; }
		[ "$i" -lt 150 ] || { tail -20 "$DIR/server.log" >&2; fail "postgres did not accept connections in 30 s"; }
		sleep 0.2
	done
	msg "server up (pid $PGPID)"

	local pgb=("$PGBIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres)
	local scale=4 # the smallest with margin for a 6 MiB sort request in the parallel worker (3 is borderline)
	w 120 "${AS[@]}" "${pgb[@]}" -i -s "$scale" -q postgres >"$DIR/pgbench-init.log" 2>&1 \
		|| { tail -20 "$DIR/pgbench-init.log" >&2; fail "pgbench -i failed (the primary keys are built by parallel workers)"; }

	# The same build again, where its plan can be seen: it must ask for
	# parallel workers, or this run no longer covers them.
	psql -d postgres -c "set client_min_messages = debug1" \
		-c "reindex index pgbench_accounts_pkey" >"$DIR/reindex.log" 2>&1 \
		|| { tail -20 "$DIR/reindex.log" >&2; fail "reindex of pgbench_accounts_pkey failed (parallel index build)"; }
	grep -q 'building index "pgbench_accounts_pkey" .*with request for [1-9][0-9]* parallel workers' "$DIR/reindex.log" \
		|| { grep 'building index' "$DIR/reindex.log" >&2; fail "the index build asked for no parallel worker"; }
	w $((secs + 120)) "${AS[@]}" "${pgb[@]}" -c 4 -j 2 -T "$secs" postgres >"$DIR/pgbench.log" 2>&1 \
		|| { tail -20 "$DIR/pgbench.log" >&2; fail "pgbench run failed"; }

	local tps nxact
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$DIR/pgbench.log")
	nxact=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$DIR/pgbench.log")
	[ -n "$tps" ] && [ "${nxact:-0}" -gt 0 ] || { cat "$DIR/pgbench.log" >&2; fail "pgbench processed no transactions"; }
	! grep -q '^number of failed transactions: [1-9]' "$DIR/pgbench.log" \
		|| fail "pgbench reports failed transactions"
	figure tps "$tps" higher tps

	# The bank invariant: all balances start at 0 and every transaction
	# adds the same delta to one account, one teller and one branch, and
	# logs it.
	local hcount hsum asum tsum bsum acount
	read -r hcount hsum asum tsum bsum acount <<<"$(psql -d postgres -F ' ' -c "
		select (select count(*) from pgbench_history),
		       (select coalesce(sum(delta), 0) from pgbench_history),
		       (select sum(abalance) from pgbench_accounts),
		       (select sum(tbalance) from pgbench_tellers),
		       (select sum(bbalance) from pgbench_branches),
		       (select count(*) from pgbench_accounts)")"
	[ "$acount" = $((scale * 100000)) ] || fail "pgbench_accounts has $acount rows, expected $((scale * 100000))"
	[ "$hcount" = "$nxact" ] || fail "history has $hcount rows but pgbench committed $nxact transactions"
	[ "$asum" = "$hsum" ] && [ "$tsum" = "$hsum" ] && [ "$bsum" = "$hsum" ] \
		|| fail "bank invariant broken: history $hsum, accounts $asum, tellers $tsum, branches $bsum"

	# Indexes must agree with their heaps after all that churn (amcheck
	# ships with Debian's postgresql-15).
	if [ -f /usr/share/postgresql/15/extension/amcheck.control ]; then
		psql -d postgres -c "create extension if not exists amcheck" \
			-c "select bt_index_check(i.indexrelid, true) from pg_index i
			    where i.indrelid in ('pgbench_accounts'::regclass,
			        'pgbench_branches'::regclass, 'pgbench_tellers'::regclass)" \
			>/dev/null || fail "amcheck found a corrupt index"
	fi

	# Stop now, and wait for the postmaster itself, so every process has
	# written its statistics before they are read.
	w 60 "${AS[@]}" "$PGBIN/pg_ctl" stop -D "$DATA" -m fast -w -t 30 >/dev/null \
		|| fail "pg_ctl stop failed"
	local rc=0
	wait "$PGPID" || rc=$?
	PGPID= # stopped: nothing left for pg_stop
	[ "$rc" -eq 0 ] || { tail -20 "$DIR/server.log" >&2; fail "postmaster exited with status $rc"; }
	if grep -E 'PANIC|was terminated by signal|server process .* exited with exit code [^0]' "$DIR/server.log" >&2; then
		fail "the server log reports a crashed process"
	fi
	checked "$nxact transactions, bank invariant holds (sum $hsum), indexes built by parallel workers, no failures"
}

apps_main "$@"
