/*
 * startup.c — the allocator's life cycle: start-up (lazy, from whichever
 * entry point comes first), the report at exit, and fork.
 *
 * Start-up parses MAGPAGE_CONF and brings the layers up from the bottom:
 * CPU id, zone, caches, pagealloc, the malloc layer's routes, the purge
 * driver, the fallback allocator.  Until it has finished the malloc
 * layer's bounds are 0, so every request takes a slow path into
 * mp_init_slow or, from init itself (in_init), goes to glibc.
 *
 * Fork takes every lock in one fixed order (init, the caches by index, the
 * zone) so that the child inherits consistent structures; the child of
 * _Fork, which runs no atfork handler, recovers instead (os_fork_hook).
 */
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "malloc/fallback.h"

volatile int mp_initialized;

static struct mp_lock init_lock;

void mp_init_slow(void)
{
	sigset_t saved;

	if (mp_tls.in_init)
		return;        /* a call made by init itself: it goes to glibc */
	/* Signals blocked: a handler on this thread must not find the init
	 * lock held by the code it interrupted. */
	sigctx_block_all(&saved);
	mp_lock(&init_lock);
	if (!mp_initialized) {
		mp_tls.in_init = 1;
		options_defaults(&opt);
		const char *conf = secure_getenv("MAGPAGE_CONF");
		if (options_parse(&opt, conf, 2) && opt.strict)
			mp_fatal("MAGPAGE_CONF has errors and strict:1 is set; aborting");
		mp_stats_on = opt.stats != STATS_OFF || opt.live == LIVE_COUNTED;
		stats_init();
		cpu_init();
		numa_init();
		uint64_t bytes = zone_region_bytes(opt.region_size);   /* the limits' share */
		bool zone_ok = zone_init(bytes) == 0;
		if (zone_ok) {
			cache_init();
			pa_init();
			malloc_init(true);
			purge_init();
		} else {
			if (bytes)    /* 0: a limit too small to share, said in README */
				mp_log("cannot reserve a region of any size; every request goes to glibc");
			cache_init_none();
			malloc_init(false);
		}
		pthread_atfork(mp_fork_prepare, mp_fork_parent, mp_fork_child);
		os_fork_hook = mp_fork_recover;
		__atomic_store_n(&os_pid, (int)getpid(), __ATOMIC_RELEASE);
		os_fork_watch();
		fb_init();
		if (opt.verbose)
			options_print(&opt, 2);
		live_init();
		mp_tls.in_init = 0;
		__atomic_store_n(&mp_initialized, 1, __ATOMIC_RELEASE);
	}
	mp_unlock(&init_lock);
	sigctx_restore(&saved);
}

__attribute__((destructor)) static void mp_fini(void)
{
	if (mp_initialized && opt.stats != STATS_OFF)
		stats_report_at_exit();
}

/* ---- fork --------------------------------------------------------------- */

/*
 * Every lock, in one fixed order: init, the caches by index, the zone.
 * Signals are held back from before the first to after the last is let go
 * (the parent) or reset (the child): a handler that forks takes init_lock
 * first, and one let in while this thread held it waited for ever (a soak
 * helper's test).  glibc runs each atfork handler with its own lock let
 * go, so what was held back is delivered where a handler may fork.
 */
static uint8_t fork_was;

void mp_fork_prepare(void)
{
	reserve_fill();          /* for handlers, while the locks are held */
	zone_fork_announce();
	uint8_t was = sigctx_hold();
	mp_lock(&init_lock);
	fork_was = was;
	runs_fork_prepare();
	cache_fork_prepare();
	zone_fork_prepare();
}

void mp_fork_parent(void)
{
	zone_fork_parent();
	cache_fork_parent();
	runs_fork_parent();
	uint8_t was = fork_was;  /* another fork may store it once unlocked */
	mp_unlock(&init_lock);
	sigctx_unhold(was);
	reserve_fill();
}

void mp_fork_child(void)
{
	bool in_handler = mp_tls.depth != 0;   /* sigctx_fork_child clears it */

	__atomic_store_n(&os_pid, (int)getpid(), __ATOMIC_RELEASE);
	os_fork_rearm();         /* so that its vfork children are told apart */
	sigctx_fork_child();
	zone_fork_child();
	cache_fork_child();
	runs_fork_child();
	purge_fork_child();
	mp_lock_reset(&init_lock);
	malloc_fork_child();
	reserve_fill();          /* before its counters restart with the rest */
	memset(&sig_stats, 0, sizeof(sig_stats));
	memset(&reserve_stats, 0, sizeof(reserve_stats));
	memset(&pa_carve_stats, 0, sizeof(pa_carve_stats));
	live_fork_child(in_handler);   /* what it reads is the child's now */
	sigctx_unhold(fork_was);       /* last: a handler finds the child whole */
}

/*
 * The child of _Fork, found by its pid (os_forked): no atfork handler ran.
 * Only this thread exists, so every lock still held is a ghost's, and the
 * structure it guards is abandoned rather than trusted (zone.c, magazine.c).
 * If _Fork was called from a handler, the child is not in it any more in
 * any sense the allocator cares about.  Must not take any lock.
 */
void mp_fork_recover(void)
{
	zone_fork_recover();
	cache_fork_recover();    /* before the handler context is cleared */
	runs_fork_recover();
	purge_fork_child();
	sigctx_fork_child();
	mp_lock_reset(&init_lock);
	live_fork_recover();
	__atomic_add_fetch(&sig_stats.forks_detected, 1, __ATOMIC_RELAXED);
}
