/*
 * purge.c — the decay purge's driver: when free memory goes back to the OS.
 *
 * The zone knows how old each dirty free block is and purges the oldest
 * (zone_purge_aged).  This file decides when, without a clock on the fast
 * paths, which cannot afford one:
 *
 * - Ticks.  A zone call that freed pages reads the coarse clock once for
 *   its stamps; after unlocking, if the driver's next tick is due
 *   (zone_tick_at, at most one every PERIOD = delay / 16), it sets
 *   zone_tick_pending, and the malloc layer, back outside every lock, runs
 *   purge_tick: purge what has been free for the delay, then arm the trap.
 *   A program whose frees reach the zone thus purges as it goes.  Every
 *   cache decay interval (cache_decay_ms: four delays by default) a tick
 *   first lets the caches give the zone what they did not use in it.
 *
 * - The trap: the page-table "accessed" bit, in the allocator.  Arming
 *   zeroes the two bounds mp_malloc's fast paths compare a size with, so
 *   the next malloc of any size misses them and takes malloc_slow, which
 *   restores the bounds and calls purge_trip.  armed_at says when it was
 *   armed; a trip clears it.  Still set after the delay means no malloc at
 *   all meanwhile: the process is idle, its caches are not being reused,
 *   and everything can go (idle_purge: cache_drain_all, then every dirty
 *   block).  Cost to a busy program: one slow-path trip per arming, at most
 *   TRIP_BUDGET re-armings per PERIOD, and only while there is dirty memory
 *   to purge (purgeable); nothing on the fast paths.
 *
 * - Without the thread, the trap is what turns "a single malloc after an
 *   idle spell" into a purge: the trip finds armed_at older than the delay.
 *   A trip less than the delay after the arming re-arms (the program is
 *   not idle yet, but may be about to be), up to TRIP_BUDGET times in a
 *   row within one PERIOD; past that, a program making mallocs in a tight
 *   loop runs with the trap off until its next tick, or until a free
 *   misses the fast path (purge_free_slow): frees that a page cache
 *   absorbs reach no zone call, and the last of a burst must leave the
 *   trap armed.
 *
 * - purge_thread:1: a detached thread, started by the first tick, sleeps
 *   on a futex until the oldest dirty block is old enough or the trap has
 *   stayed armed for the delay, purges, re-arms, sleeps again; with nothing
 *   dirty and the caches drained it sleeps until a zone call wakes it
 *   (zone_tick_at 0).  All signals blocked: no handler ever runs on it.
 *   It holds no lock while asleep.  Fork: the child has no thread and
 *   starts its own on its first tick.  Exit does not wait for it.
 *
 * Never in a signal handler: the trap's state changes there (a malloc
 * happened), but purging waits for process context.  One driver runs at a
 * time (busy); the others skip, since the one running does their work.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define MS               1000000ull
#define TRIP_BUDGET      64           /* dense re-armings per PERIOD */
#define CALL_BUDGET      8            /* madvise calls between two looks at the clock */
#define IDLE_PURGE_NS    (10 * MS)    /* an idle purge on an allocator call stops past this */

struct purge_stats purge_stats;

static struct {
	bool on;                  /* purge_delay_ms != 0 and a region */
	bool thread;              /* purge_thread:1 and the thread could start */
	int advice;               /* MADV_DONTNEED or MADV_FREE */
	uint64_t delay;           /* ns */
	uint64_t period;          /* delay / 16, at least 1 ms: tick spacing */
	uint32_t busy;            /* atomic: a driver is running */
	uint64_t armed_at;        /* atomic: coarse time the trap was armed; 0 = not */
	uint64_t next_purge;      /* no aged purge before (rate limit); under busy */
	uint64_t decay_every;     /* ns: cache_decay_ms, or CACHE_DECAY_DELAYS delays */
	uint64_t next_decay;      /* no cache decay before; under busy */
	uint64_t idle_left;       /* an idle purge's cutoff, its budget spent
				     before its blocks: 0 = none; under busy */
	uint64_t last_trip;       /* coarse time of the last trip; under busy */
	uint32_t trips_left;      /* re-armings left in this PERIOD; under busy */
	uint32_t thread_state;    /* atomic: THREAD_* */
	uint32_t wake;            /* atomic futex word: bumped to wake the thread */
	bool cache_dirty;         /* atomic: frees went to the caches since the
				     last idle purge (they may hold dirty memory) */
} P;

enum { THREAD_NONE, THREAD_STARTING, THREAD_RUNNING, THREAD_FAILED };

static bool try_busy(void)
{
	return __atomic_exchange_n(&P.busy, 1, __ATOMIC_ACQUIRE) == 0;
}

static void unbusy(void)
{
	__atomic_store_n(&P.busy, 0, __ATOMIC_RELEASE);
}

static void add(uint64_t *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

/* armed_at first, then the bounds; a trip restores the bounds first, then
 * clears armed_at.  Every interleaving either leaves both armed or clears
 * armed_at: a lost race counts as a malloc, never as idleness. */
static void arm(uint64_t now)
{
	__atomic_store_n(&P.armed_at, now, __ATOMIC_SEQ_CST);
	malloc_trap_arm();
}

/* Is there anything the trap could help purge?  Clean memory (never used,
 * or purged) is not worth a trip. */
static bool purgeable(void)
{
	return __atomic_load_n(&P.cache_dirty, __ATOMIC_RELAXED) || zone_dirty_hint();
}

/* Dirty blocks freed at or before cutoff go, CALL_BUDGET madvise calls at
 * a time until limit_ns has passed on an allocator call, which the program
 * is waiting for (on this VM a call takes 8 us, and 50 us when threads run
 * on other CPUs and take a TLB shootdown: 32,768 scattered pages once held
 * one malloc for 1.5 s); all on the thread, which nobody waits for.  True
 * if some may be left: the next tick or trip goes on. */
static bool purge_upto(uint64_t cutoff, uint64_t limit_ns)
{
	size_t pages;
	bool more;

	if (P.thread) {
		zone_purge_aged(cutoff, P.advice, UINT64_MAX, &pages, &more);
		return false;
	}
	uint64_t t0 = os_now_ns();
	do {
		if (!zone_purge_aged(cutoff, P.advice, CALL_BUDGET, &pages, &more))
			return false;     /* another purge is running: it goes on */
	} while (more && os_now_ns() - t0 < limit_ns);
	return more;
}

/* Dirty blocks freed at least the delay ago, at most once per PERIOD and
 * for a quarter of it; what the time left, the next tick or trip takes,
 * first what an idle purge left. */
static void purge_old(uint64_t now)
{
	if (now < P.next_purge || now < P.delay)
		return;
	P.next_purge = now + P.period;
	/* a quarter of the period at most: under a backlog of scattered
	 * blocks, the calling thread keeps three quarters of its time */
	if (P.idle_left) {
		if (purge_upto(P.idle_left, P.period / 4))
			return;
		P.idle_left = 0;
	}
	/* what the caches did not use in the decay interval goes to the zone,
	 * where it ages like any free block */
	if (now >= P.next_decay) {
		P.next_decay = now + P.decay_every;
		runs_decay();          /* first: the runs' pages go through the caches */
		cache_decay();
	}
	purge_upto(now - P.delay, P.period / 4);
}

/* No malloc for the delay: nothing in the caches is being reused.  They
 * drain into the zone, and every dirty block goes, however recent. */
static void idle_purge(void)
{
	add(&purge_stats.idle_purges);
	__atomic_store_n(&P.cache_dirty, false, __ATOMIC_RELAXED);
	runs_drain();            /* first: the spare runs' pages go through the caches */
	pa_drain_all();          /* process context: purge_trip turns handlers away */
	uint64_t cutoff = os.coarse_ns();
	P.idle_left = purge_upto(cutoff, IDLE_PURGE_NS) ? cutoff : 0;
	P.next_purge = 0;
}

/* ---- the thread ------------------------------------------------------- */

static void *purge_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint32_t seq = __atomic_load_n(&P.wake, __ATOMIC_ACQUIRE);
		uint64_t now = os.coarse_ns(), oldest, wake_at = UINT64_MAX;

		add(&purge_stats.wakeups);
		if (try_busy()) {
			uint64_t was = __atomic_load_n(&P.armed_at, __ATOMIC_SEQ_CST);
			if (was && now - was >= P.delay &&
			    __atomic_compare_exchange_n(&P.armed_at, &was, 0, false,
							__ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
				idle_purge();
			} else {
				P.next_purge = 0;
				purge_old(now);
				/* armed since was (no malloc yet), or armed now */
				if (!was && purgeable())
					arm(now);
				wake_at = (was ? was : now) + P.delay;
			}
			if (zone_dirty(&oldest) && oldest + P.delay < wake_at)
				wake_at = oldest + P.delay;
			unbusy();
		} else {
			wake_at = now + P.period;    /* a tick is purging: look again soon */
		}
		if (wake_at == UINT64_MAX) {
			/* Nothing dirty, caches drained, trap off: sleep until a
			 * zone call says there is work (zone_tick_at 0).  The 0
			 * first, then one more look: a free into the zone whose
			 * hold came before zone_dirty's is seen there, and one
			 * after it finds the 0 (the zone lock orders the two); a
			 * free a cache absorbed sets cache_dirty before it tries
			 * to wake this thread (purge_free_slow). */
			__atomic_store_n(&zone_tick_at, 0, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&P.cache_dirty, __ATOMIC_SEQ_CST) || zone_dirty(&oldest))
				continue;
			os_futex_wait(&P.wake, seq, UINT64_MAX);
			continue;
		}
		__atomic_store_n(&zone_tick_at, UINT64_MAX, __ATOMIC_RELAXED);
		now = os.coarse_ns();
		if (wake_at < now + P.period)
			wake_at = now + P.period;
		os_futex_wait(&P.wake, seq, wake_at - now);
	}
	return NULL;
}

/* From a tick: process context, no lock held.  The thread starts with every
 * signal blocked (it inherits the mask), so no handler runs on it. */
static void thread_start(void)
{
	uint32_t expect = THREAD_NONE;
	int rc;

	if (!__atomic_compare_exchange_n(&P.thread_state, &expect, THREAD_STARTING, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return;
	rc = os_spawn_helper(purge_main);
	if (rc != 0) {
		/* EAGAIN under RLIMIT_NPROC, a sandbox: allocator calls drive
		 * the purge instead. */
		__atomic_store_n(&P.thread_state, THREAD_FAILED, __ATOMIC_RELEASE);
		P.thread = false;
		if (opt.verbose)
			mp_log("purge_thread: cannot start the thread (error %d); purging on allocator calls", rc);
		return;
	}
	add(&purge_stats.thread_starts);
	__atomic_store_n(&P.thread_state, THREAD_RUNNING, __ATOMIC_RELEASE);
}

/* ---- the driver's entry points ---------------------------------------- */

void purge_tick(void)
{
	if (sigctx_in_irq() || mp_tls.in_init || !try_busy())
		return;
	__atomic_store_n(&zone_tick_pending, 0, __ATOMIC_RELAXED);
	if (!P.on) {
		unbusy();
		return;
	}
	uint64_t now = os.coarse_ns();
	__atomic_store_n(&zone_tick_at, now + P.period, __ATOMIC_RELAXED);
	add(&purge_stats.ticks);
	if (P.thread) {
		/* The thread keeps its own time; start it, or wake it from
		 * its sleep without a deadline. */
		__atomic_store_n(&zone_tick_at, UINT64_MAX, __ATOMIC_RELAXED);
		if (__atomic_load_n(&P.thread_state, __ATOMIC_ACQUIRE) == THREAD_NONE) {
			thread_start();
		} else {
			__atomic_add_fetch(&P.wake, 1, __ATOMIC_RELEASE);
			os_futex_wake(&P.wake);
		}
		if (P.thread) {
			unbusy();
			return;
		}
	}
	purge_old(now);
	P.trips_left = TRIP_BUDGET;
	P.last_trip = now;
	if (purgeable())
		arm(now);
	unbusy();
}

void purge_trip(void)
{
	uint64_t was = __atomic_exchange_n(&P.armed_at, 0, __ATOMIC_SEQ_CST);

	if (!P.on || P.thread || sigctx_in_irq() || !try_busy())
		return;
	uint64_t now = os.coarse_ns();
	add(&purge_stats.trips);
	if (was && now - was >= P.delay) {
		idle_purge();
		/* The next zone call, of any kind, ticks and re-arms.  With
		 * blocks left, so does the next malloc: a program whose calls
		 * the caches serve makes no zone call. */
		__atomic_store_n(&zone_tick_at, 0, __ATOMIC_RELAXED);
		if (P.idle_left)
			arm(now);
		unbusy();
		return;
	}
	purge_old(now);
	/* Not idle yet.  Sparse mallocs keep the trap armed for ever; a dense
	 * run of them spends the budget and turns it off until a tick. */
	if (now - P.last_trip >= P.period)
		P.trips_left = TRIP_BUDGET;
	P.last_trip = now;
	if (P.trips_left && purgeable()) {
		P.trips_left--;
		arm(now);
	}
	unbusy();
}

/*
 * A free that missed the fast path (a page cache's array was full), in
 * process context: the caches may be about to hold memory that only an
 * idle purge can reach, so arm the trap if it is off.  Frees do not trip
 * it, so this costs at most one trip per such free (one in a few hundred
 * frees with the default cache), and no budget.
 */
void purge_free_slow(void)
{
	static uint32_t counted;

	if (!P.on || !cache_enabled || sigctx_in_irq())
		return;
	if (!__atomic_load_n(&P.cache_dirty, __ATOMIC_RELAXED))
		__atomic_store_n(&P.cache_dirty, true, __ATOMIC_RELAXED);
	if (P.thread) {
		/* asleep without a deadline: this is work for it */
		uint64_t at = 0;
		if (__atomic_compare_exchange_n(&zone_tick_at, &at, UINT64_MAX, false,
						__ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
			__atomic_add_fetch(&P.wake, 1, __ATOMIC_RELEASE);
			os_futex_wake(&P.wake);
		}
		return;
	}
	if (__atomic_load_n(&P.armed_at, __ATOMIC_RELAXED))
		return;
	/* With statistics on, every free comes here: one in 64 looks. */
	if (mp_stats_on && (__atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED) & 63))
		return;
	arm(os.coarse_ns());
}

uint32_t purge_cache_decay_ms(void)
{
	return P.on ? (uint32_t)(P.decay_every / MS) : 0;
}

void purge_init(void)
{
	if (!opt.purge_delay_ms || !zg.bytes)
		return;
	P.delay = (uint64_t)opt.purge_delay_ms * MS;
	P.period = P.delay / 16 > MS ? P.delay / 16 : MS;
	/* Not every delay: in a busy process the decay's depot reaping sent
	 * blocks to the zone that were purged and faulted in again (the
	 * random pattern on two threads: 3,030 pages decayed and 351 madvise
	 * calls a second at one delay, 4% of throughput; cc1's peak RSS the
	 * same at four; issue 9, session 18). */
	P.decay_every = opt.cache_decay_ms ? (uint64_t)opt.cache_decay_ms * MS
					   : CACHE_DECAY_DELAYS * P.delay;
	P.advice = opt.purge_advice == ADVICE_FREE ? MADV_FREE : MADV_DONTNEED;
	P.thread = opt.purge_thread != 0;
	P.on = true;
	__atomic_store_n(&zone_tick_at, 0, __ATOMIC_RELEASE);   /* the first zone call ticks */
}

/* The child has one thread, this one: the purge thread (if any) stayed in
 * the parent, and whatever it held is the parent's.  The next zone call
 * ticks, which starts the child's own thread when it is asked for. */
void purge_fork_child(void)
{
	memset(&purge_stats, 0, sizeof(purge_stats));
	if (!P.on)
		return;
	P.busy = 0;
	P.wake = 0;
	P.armed_at = 0;
	P.next_purge = 0;
	P.cache_dirty = true;    /* whatever the parent's caches held */
	P.thread = opt.purge_thread != 0;
	P.thread_state = THREAD_NONE;
	zone_tick_at = 0;
}
