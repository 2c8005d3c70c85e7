/*
 * zone_fork.c — the zones across fork.
 *
 * The forking thread takes every zone lock in its prepare handler and then
 * waits for glibc's arena locks.  A handler running on a thread that holds
 * one of those (it interrupted glibc's malloc) must not wait for the zone
 * lock, or neither can go on.  Such a handler only tries the lock
 * (zone_lock_in_handler): an allocation fails (ENOMEM) or carves a block
 * off a frontier (zone_carve_in_fork), a free is deferred on a lock-free
 * list that the next holder of the lock empties (zone_defer_free).  In the
 * child the zones start their counters afresh; a child of _Fork, whose
 * atfork handlers did not run, abandons the lists a dead thread may have
 * been changing (zone_fork_recover).
 */
#include <sched.h>
#include <string.h>

#include "zone/zone_impl.h"

int fork_pending;
int fork_held;
static int fork_carving;     /* atomic: handlers inside zone_carve_in_fork */
uint64_t fork_carved;
static struct zone_irq fork_saved;

bool zone_fork_pending(void)
{
	return __atomic_load_n(&fork_pending, __ATOMIC_RELAXED) != 0;
}

bool zone_fork_held(void)
{
	return __atomic_load_n(&fork_held, __ATOMIC_ACQUIRE) != 0;
}

/* Called first of all fork preparations, before any lock is taken. */
void zone_fork_announce(void)
{
	__atomic_store_n(&fork_pending, 1, __ATOMIC_RELEASE);
}

/*
 * While the forking thread holds the zone locks (every node's) it touches
 * nothing in the zones, so a handler may take a never-used 4 MiB block off
 * a frontier without the lock: one compare-and-swap on z->frontier, its own
 * node's zone first.  fork_carving counts handlers doing so; the forker
 * stops them (fork_held = 0) and waits for the ones already in before it
 * unlocks, after which each z->frontier is its lock's again.  The reserve (pagealloc/reserve.c) uses this when it runs
 * dry in a long fork window.
 */
void zone_fork_prepare(void)
{
	zone_lock_all(&fork_saved);
	__atomic_store_n(&fork_held, 1, __ATOMIC_SEQ_CST);
}

static void fork_stop_carving(void)
{
	__atomic_store_n(&fork_held, 0, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&fork_carving, __ATOMIC_SEQ_CST))
		sched_yield();
}

void zone_fork_parent(void)
{
	fork_stop_carving();
	__atomic_store_n(&fork_pending, 0, __ATOMIC_RELEASE);
	zone_unlock_all(&fork_saved);
}

/* One 4 MiB block off the frontier of zone z, or NULL. */
static struct page_desc *zone_carve_one(struct zone *z)
{
	uint64_t f = __atomic_load_n(&z->frontier, __ATOMIC_RELAXED);
	while (f + MAX_BLOCK_PAGES <= __atomic_load_n(&z->opened, __ATOMIC_RELAXED)) {
		if (__atomic_compare_exchange_n(&z->frontier, &f, f + MAX_BLOCK_PAGES, false,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
			struct page_desc *pd = pfn_to_desc(f);
			pd->order = MAX_ORDER - 1;
			pd->flags = PG_ZERO;
			__atomic_add_fetch(&fork_carved, 1, __ATOMIC_RELAXED);
			return pd;
		}
	}
	return NULL;
}

/* Signals held back inside: a nested handler would find fork_held cleared
 * and wait for the zone lock, which the forker keeps until this carver has
 * left, and this carver cannot leave until that handler returns. */
struct page_desc *zone_carve_in_fork(void)
{
	struct page_desc *pd = NULL;
	uint8_t was = sigctx_hold();

	__atomic_add_fetch(&fork_carving, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&fork_held, __ATOMIC_SEQ_CST)) {
		/* the thread's own node first, then the others by distance */
		struct numa_route r;
		numa_route(&r);
		for (unsigned i = 0; !pd && i < r.len; i++)
			pd = zone_carve_one(&zones[r.list[i]]);
	}
	__atomic_sub_fetch(&fork_carving, 1, __ATOMIC_SEQ_CST);
	sigctx_unhold(was);
	return pd;
}

/* Hands [pfn, pfn + npages) to the zone without its lock: the next holder
 * frees it (the list drained in zone_lock). */
void zone_free_range_deferred(uint64_t pfn, size_t npages)
{
	if (npages)
		zone_defer_free(pfn_to_desc(pfn), npages);
}

/* In the child, events start from zero so that each process reports its
 * own work; the state (free lists, counts) is inherited, of course. */
void zone_fork_child(void)
{
	for (unsigned i = 0; i < nr_zones; i++) {
		struct zone *z = &zones[i];
		/* A purge in flight on another thread left its blocks off the
		 * lists: back they go, dirty (whatever the parent's madvise
		 * did or not). */
		z->now = 0;
		for (struct page_desc *pd = z->isolated; pd; pd = pd->next)
			pd->flags = 0;
		__zone_putback(z);
		z->purging = false;
		z->openers = 0;        /* only the forking thread lives on, not opening */
		mp_lock_reset(&z->lock);
		z->lock.acquired = z->lock.contended = z->lock.wait_ns = 0;
#define X(field, json) z->field = 0;
		ZONE_COUNTERS(X)
#undef X
	}
	memset(numa_stats, 0, sizeof(numa_stats));
	fork_pending = 0;
	fork_held = fork_carving = 0;
	sigctx_zone_leave(&fork_saved);
}

/*
 * A child of _Fork (no atfork handlers ran): a zone lock still held belongs
 * to a thread that does not exist here, maybe in the middle of a list
 * update, so the lists cannot be trusted.  They are abandoned: the zone goes
 * on from the frontier, whose 4 MiB blocks are whole (a buddy pair never
 * crosses a 1024-page boundary), and a block freed below it is dropped.
 * The child of a fork under a held lock usually execs or exits soon; it
 * must be able to allocate meanwhile.  Called by the only thread.
 */
void zone_fork_recover(void)
{
	__atomic_store_n(&fork_pending, 0, __ATOMIC_RELAXED);
	fork_held = fork_carving = 0;
	for (unsigned i = 0; i < nr_zones; i++) {
		struct zone *z = &zones[i];
		z->openers = 0;
		z->purging = false;
		if (!mp_lock_is_held(&z->lock)) {
			/* only this thread: the lists are whole, the lock free */
			z->now = 0;
			for (struct page_desc *pd = z->isolated; pd; pd = pd->next)
				pd->flags = 0;
			__zone_putback(z);
			continue;
		}
		for (unsigned o = 0; o < MAX_ORDER; o++)
			z->free_area[o] = (struct free_area){ 0 };
		z->nr_free_pages = z->nr_dirty_pages = 0;
		z->isolated = NULL;
		z->isolated_pages = 0;
		z->floor = z->frontier;
		mp_lock_reset(&z->lock);
	}
}
