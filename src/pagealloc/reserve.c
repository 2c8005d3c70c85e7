/*
 * reserve.c — blocks for signal handlers while a fork is being prepared.
 *
 * From the moment fork's prepare handler announces itself until the parent
 * or child handler runs, the forking thread holds (or is about to take) the
 * zone lock and every cache lock, and waits for glibc's arena locks: a
 * handler must not wait on any of them (zone.c: zone_lock_in_handler).
 * Without this reserve its allocations would fail with ENOMEM while memory
 * is plentiful.
 *
 * The reserve is a small array of free blocks per size class (1..8 pages),
 * 16 per class to begin with, 128 for a class that ran dry during a fork
 * (at most 128 x 36 pages = 18 MiB of address space, held only by a process
 * whose handlers allocate while it forks, and only the pages used are ever
 * touched); lock-free: a slot is taken by exchanging it with NULL and filled by a
 * compare-and-swap from NULL, so handlers on any thread, nested or not, use
 * it at the same time without an ABA problem.  A block freed by a handler
 * while the zone refuses goes back into the reserve when a slot is empty,
 * so a handler that allocates and frees keeps reusing the same blocks.
 * Process context fills it outside the window, before every fork's prepare
 * and after its parent and child handlers, once the process has run a
 * signal handler at all.  Reserved blocks carry PG_CACHED: to the bad-free
 * check they are free blocks.
 */
#include "internal.h"

#define RESERVE_START 16    /* blocks per class to begin with */
#define RESERVE_SLOTS 128   /* at most, per class: 128 x 36 pages = 18 MiB */
#define RESERVE_CLASSES 8   /* 1..8 pages; larger handler requests in a fork
			       window carve, or fail with ENOMEM */

static struct page_desc *slots[RESERVE_CLASSES][RESERVE_SLOTS];   /* atomic */
static uint32_t target[RESERVE_CLASSES];     /* blocks to keep; 0 = RESERVE_START */
static uint8_t ran_dry[RESERVE_CLASSES];     /* atomic: empty since the last fill */
struct reserve_stats reserve_stats;

/* Tops every class up to its target; a class that ran dry since the last
 * fill raises its target to the most first, so that a process whose handlers allocate
 * a lot during forks settles on a reserve that covers a fork window. */
void reserve_fill(void)
{
	if (!__atomic_load_n(&sig_stats.handler_entries, __ATOMIC_RELAXED) || !zg.bytes)
		return;
	for (unsigned cls = 0; cls < RESERVE_CLASSES; cls++) {
		size_t npages = cls + 1;
		uint32_t want = target[cls] ? target[cls] : RESERVE_START;
		if (__atomic_exchange_n(&ran_dry[cls], 0, __ATOMIC_RELAXED) && want < RESERVE_SLOTS)
			want = RESERVE_SLOTS;
		target[cls] = want;
		for (unsigned i = 0; i < want; i++) {
			if (__atomic_load_n(&slots[cls][i], __ATOMIC_RELAXED))
				continue;
			struct page_desc *pd = zone_alloc(ilog2_ceil(npages), npages);
			if (!pd)
				return;
			pd->npages = (uint32_t)npages;
			pd->flags = PG_CACHED | (pd->flags & PG_ZERO);
			struct page_desc *none = NULL;
			if (!__atomic_compare_exchange_n(&slots[cls][i], &none, pd, false,
							 __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
				zone_free_range(desc_pfn(pd), npages);
				continue;
			}
			__atomic_add_fetch(&reserve_stats.filled, 1, __ATOMIC_RELAXED);
		}
	}
}

static struct page_desc *take_class(unsigned cls)
{
	struct page_desc **row = slots[cls];
	for (unsigned i = 0; i < RESERVE_SLOTS; i++) {
		if (!__atomic_load_n(&row[i], __ATOMIC_RELAXED))
			continue;
		struct page_desc *pd = __atomic_exchange_n(&row[i], NULL, __ATOMIC_ACQUIRE);
		if (pd)
			return pd;
	}
	return NULL;
}

static bool put_slot(struct page_desc **row, struct page_desc *pd)
{
	for (unsigned i = 0; i < RESERVE_SLOTS; i++) {
		struct page_desc *none = NULL;
		if (!__atomic_load_n(&row[i], __ATOMIC_RELAXED) &&
		    __atomic_compare_exchange_n(&row[i], &none, pd, false, __ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			return true;
	}
	return false;
}

/*
 * Dry in the middle of a long fork window: take a never-used 4 MiB block
 * off the frontier (zone_carve_in_fork, lock-free while the forker holds the
 * zone lock), keep one block of n pages for the caller, refill this class's
 * row from the rest, and hand everything else to the zone's deferred list.
 */
static struct page_desc *reserve_carve(size_t n)
{
	struct page_desc *head = zone_carve_in_fork();
	if (!head)
		return NULL;
	uint64_t pfn = desc_pfn(head), end = pfn + MAX_BLOCK_PAGES, at;
	size_t step = (size_t)1 << ilog2_ceil(n);

	head->npages = (uint32_t)n;            /* PG_ZERO: never used */
	zone_free_range_deferred(pfn + n, step - n);
	for (at = pfn + step; at + step <= end; at += step) {
		struct page_desc *pd = pfn_to_desc(at);
		pd->npages = (uint32_t)n;
		pd->flags = PG_CACHED | PG_ZERO;
		if (!put_slot(slots[n - 1], pd))
			break;
		zone_free_range_deferred(at + n, step - n);
		__atomic_add_fetch(&reserve_stats.filled, 1, __ATOMIC_RELAXED);
	}
	zone_free_range_deferred(at, end - at);
	__atomic_add_fetch(&reserve_stats.carved, 1, __ATOMIC_RELAXED);
	return head;
}

/* A block of *npages pages, or of a larger class when that one is empty
 * (a larger block is aligned at least as well: 2^ceil(log2 n) pages);
 * *npages says which. */
struct page_desc *reserve_take(size_t *npages)
{
	size_t n = *npages;
	if (n == 0 || n > RESERVE_CLASSES)
		return NULL;
	for (unsigned cls = (unsigned)n - 1; cls < RESERVE_CLASSES; cls++) {
		struct page_desc *pd = take_class(cls);
		if (pd) {
			*npages = cls + 1;
			__atomic_add_fetch(&reserve_stats.served, 1, __ATOMIC_RELAXED);
			return pd;
		}
		__atomic_store_n(&ran_dry[cls], 1, __ATOMIC_RELAXED);
	}
	struct page_desc *pd = reserve_carve(n);
	if (pd) {
		__atomic_add_fetch(&reserve_stats.served, 1, __ATOMIC_RELAXED);
		return pd;
	}
	__atomic_add_fetch(&reserve_stats.empty, 1, __ATOMIC_RELAXED);
	return NULL;
}

bool reserve_put(struct page_desc *pd)
{
	size_t npages = pd->npages;
	if (npages == 0 || npages > RESERVE_CLASSES)
		return false;
	pd->flags = PG_CACHED;
	if (put_slot(slots[npages - 1], pd)) {
		__atomic_add_fetch(&reserve_stats.returned, 1, __ATOMIC_RELAXED);
		return true;
	}
	pd->flags = 0;
	return false;
}

uint64_t reserve_pages(void)
{
	uint64_t pages = 0;
	for (unsigned cls = 0; cls < RESERVE_CLASSES; cls++)
		for (unsigned i = 0; i < RESERVE_SLOTS; i++)
			if (__atomic_load_n(&slots[cls][i], __ATOMIC_RELAXED))
				pages += cls + 1;
	return pages;
}
