/*
 * zone_purge.c — giving free memory back to the OS: the decay purge
 * (zone_purge_aged, oldest dirty blocks first), malloc_trim's full purge
 * (zone_purge), and the dirty-page counts the purge driver reads.
 *
 * A purge takes blocks off a zone's lists (isolates them, flags 0 so that
 * nothing merges into them), drops the lock for the madvise calls, and
 * puts them back as the calls left them, ZONE_PURGE_BATCH pages at a time.
 * With a zone per node the zones are purged one after the other, one lock
 * at a time.  Split from zone.c (the buddy allocator) for its size.
 */
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>

#include "zone/zone_impl.h"

/* The oldest dirty block of at least min_order freed at or before cutoff:
 * the oldest of the tails. */
static struct page_desc *__zone_oldest(struct zone *z, uint64_t cutoff, unsigned min_order,
				       unsigned *order)
{
	struct page_desc *best = NULL;

	for (unsigned o = min_order; o < MAX_ORDER; o++) {
		struct page_desc *t = z->free_area[o].tail;
		if (t && t->freed_ns <= cutoff && (!best || t->freed_ns < best->freed_ns)) {
			best = t;
			*order = o;
		}
	}
	return best;
}

/* A PG_ADVISED block of at least min_order (malloc_trim redoes them). */
static struct page_desc *__zone_advised(struct zone *z, unsigned min_order, unsigned *order)
{
	for (unsigned o = min_order; o < MAX_ORDER; o++)
		for (struct page_desc *pd = z->free_area[o].clean; pd; pd = pd->next)
			if (pd->flags & PG_ADVISED) {
				*order = o;
				return pd;
			}
	return NULL;
}

/* Off the lists for the system call: flags 0, so that no free merges into
 * it meanwhile. */
static void __zone_isolate(struct zone *z, struct page_desc *pd, unsigned o)
{
	list_del(z, &z->free_area[o], pd);
	z->nr_free_pages -= (size_t)1 << o;
	pd->flags = 0;
	pd->next = NULL;            /* appended: madvised oldest first */
	if (!z->isolated)
		z->isolated_end = &z->isolated;
	*z->isolated_end = pd;
	z->isolated_end = &pd->next;
	z->isolated_pages += (size_t)1 << o;
}

/* Back on the lists, as the system call left each block (its flags say:
 * PG_ZERO or PG_ADVISED, without PG_BUDDY so that nothing merges yet; 0 if
 * the call failed: dirty again, as of now).  Returns the pages purged. */
size_t __zone_putback(struct zone *z)
{
	size_t pages = 0;

	while (z->isolated) {
		struct page_desc *pd = z->isolated, *next = pd->next;
		uint8_t clean = pd->flags & PG_CLEAN;
		size_t n = (size_t)1 << pd->order;
		pd->flags = 0;
		z->isolated = next;
		z->isolated_pages -= n;
		if (clean)
			pages += n;
		__zone_free_one(z, desc_pfn(pd), pd->order, clean, clean ? 0 : __zone_now(z));
	}
	return pages;
}

/* MADV_FREE needs Linux 4.5; where it is refused, DONTNEED from then on. */
static int madv_free_refused;

/* Without the lock: madvise each isolated block, leaving the outcome in
 * its flags for __zone_putback.  Returns the system calls made. */
static uint64_t purge_isolated(struct page_desc *pd, int advice)
{
	uint64_t calls = 0;

	for (; pd; pd = pd->next) {
		void *addr = desc_to_addr(pd);
		size_t len = (size_t)PAGE_SIZE << pd->order;
		uint8_t clean = PG_ZERO;
		int rc;
		calls++;
		if (advice == MADV_FREE && !__atomic_load_n(&madv_free_refused, __ATOMIC_RELAXED)) {
			rc = os.madvise(addr, len, MADV_FREE);
			clean = PG_ADVISED;
			if (rc != 0 && errno == EINVAL) {
				__atomic_store_n(&madv_free_refused, 1, __ATOMIC_RELAXED);
				rc = os.madvise(addr, len, MADV_DONTNEED);
				clean = PG_ZERO;
				calls++;
			}
		} else {
			rc = os.madvise(addr, len, MADV_DONTNEED);
		}
		__atomic_store_n(&pd->flags, rc == 0 ? clean : 0, __ATOMIC_RELAXED);
	}
	return calls;
}

/* Purges, ZONE_PURGE_BATCH pages at a time, the dirty blocks of at least
 * min_order freed at or before cutoff, oldest first, then (redo_advised)
 * every PG_ADVISED block with MADV_DONTNEED, with at most *budget madvise
 * calls (the calls made come off it; *budget 0 on return: it ran out,
 * with blocks perhaps left).  False if another purge is in flight. */
static bool zone_purge_one(struct zone *z, uint64_t cutoff, unsigned min_order,
			   bool redo_advised, int advice, size_t *pagesp, uint64_t *budget)
{
	struct zone_irq saved;
	size_t pages = 0;
	uint64_t calls = 0;
	int errno_saved = errno;

	*pagesp = 0;
	zone_lock(z, &saved);
	if (z->purging) {
		zone_unlock(z, &saved);
		return false;
	}
	z->purging = true;
	for (bool advised = false; calls < *budget;) {
		struct page_desc *pd;
		unsigned o;
		size_t batch = 0;
		uint64_t blocks = 0;
		/* a block is a call or two (MADV_FREE refused: DONTNEED too) */
		while (batch < ZONE_PURGE_BATCH && blocks < *budget - calls) {
			pd = advised ? __zone_advised(z, min_order, &o)
				     : __zone_oldest(z, cutoff, min_order, &o);
			if (!pd)
				break;
			__zone_isolate(z, pd, o);
			batch += (size_t)1 << o;
			blocks++;
		}
		if (!batch) {
			if (advised || !redo_advised)
				break;
			advised = true;
			continue;
		}
		zone_unlock(z, &saved);
		calls += purge_isolated(z->isolated, advised ? MADV_DONTNEED : advice);
		zone_lock(z, &saved);
		pages += __zone_putback(z);
	}
	z->purging = false;
	z->purged_pages += pages;
	z->purge_calls += calls;
	if (pages)
		z->purge_runs++;
	zone_unlock(z, &saved);
	if (pages)
		MP_PROBE1(purge, pages);
	errno = errno_saved;
	*pagesp = pages;
	*budget = calls < *budget ? *budget - calls : 0;
	return true;
}

/* Each zone in turn, one lock at a time, while the budget lasts; false
 * (and the zones after it untouched) if a purge is in flight on one of
 * them. */
static bool zone_purge_run(uint64_t cutoff, unsigned min_order, bool redo_advised, int advice,
			   size_t *pagesp, uint64_t *budget)
{
	*pagesp = 0;
	for (unsigned i = 0; i < nr_zones && *budget; i++) {
		size_t pages;
		bool done = zone_purge_one(&zones[i], cutoff, min_order, redo_advised, advice, &pages,
					   budget);
		*pagesp += pages;
		if (!done)
			return false;
	}
	return true;
}

size_t zone_purge(unsigned min_order)
{
	size_t pages;

	/* malloc_trim waits for a decay purge in flight: it must find
	 * everything purged when it returns. */
	for (;;) {
		uint64_t budget = UINT64_MAX;
		if (zone_purge_run(UINT64_MAX, min_order, true, MADV_DONTNEED, &pages, &budget))
			return pages;
		sched_yield();
	}
}

bool zone_purge_aged(uint64_t cutoff_ns, int advice, uint64_t max_calls, size_t *pages,
		     bool *more)
{
	uint64_t budget = max_calls;
	bool done = zone_purge_run(cutoff_ns, 0, false, advice, pages, &budget);
	*more = done && budget == 0;
	return done;
}

uint64_t zone_dirty_hint(void)
{
	uint64_t pages = 0;
	for (unsigned i = 0; i < nr_zones; i++)
		pages += __atomic_load_n(&zones[i].nr_dirty_pages, __ATOMIC_RELAXED);
	return pages;
}

uint64_t zone_dirty(uint64_t *oldest_ns)
{
	uint64_t pages = 0;

	*oldest_ns = UINT64_MAX;
	if (!zg.bytes)
		return 0;
	for (unsigned i = 0; i < nr_zones; i++) {
		struct zone *z = &zones[i];
		struct zone_irq saved;
		unsigned o;
		zone_lock(z, &saved);
		pages += z->nr_dirty_pages;
		struct page_desc *pd = __zone_oldest(z, UINT64_MAX, 0, &o);
		if (pd && pd->freed_ns < *oldest_ns)
			*oldest_ns = pd->freed_ns;
		zone_unlock(z, &saved);
	}
	return pages;
}
