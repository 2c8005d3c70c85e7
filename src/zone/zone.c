/*
 * zone.c — the region, its page descriptors and the buddy allocator.
 *
 * The region (region.c) is one mapping aligned to the largest block (order
 * 10, 4 MiB), so that a block of order k always starts at a pfn that is a
 * multiple of 2^k, and a block's buddy is pfn ^ (1 << k).
 *
 * Nothing is touched at start-up.  The zone keeps a frontier: pages below it
 * have been handed out at least once and live on the free lists or with
 * their owners; pages at and above it have never been used, are not on any
 * list, and are known to be zero.  When the free lists run dry, the next
 * order-10 block is carved off the frontier.  A process that allocates one
 * page faults in one data page, one descriptor page and one page of live
 * bytes (zone.h), no more: a kernel build starts thousands of processes.
 *
 * Free pages = sum over order of nr_free[order] * 2^order
 *            + (pages - frontier)                    [never used]
 *
 * Under a finite RLIMIT_AS or RLIMIT_DATA the region opens 4 MiB at a time
 * just ahead of the frontier (__zone_open, region.c).
 *
 * Free blocks are dirty (the process touched them) or clean (PG_ZERO:
 * never used or purged with MADV_DONTNEED; PG_ADVISED: purged with
 * MADV_FREE).  Each order has two lists: the dirty blocks, the most
 * recently freed at the head, and the clean ones.  Allocation takes the
 * dirty head first (the warmest memory, already resident), else a clean
 * block.  Each dirty block carries the time it was freed (freed_ns, from
 * the coarse clock read once per lock hold that frees), and a block joins
 * its list at the head with a stamp no older than the head's, so every
 * dirty list is in time order and its tail is its oldest block: the decay
 * purge (zone_purge_aged) finds the oldest block of the zone by comparing
 * eleven tails, never by scanning.  A merge keeps the younger stamp of
 * the two halves (the freed block's), a split gives both halves the
 * parent's: a block is never purged before it has been free for the delay.
 *
 *   dirty pages (nr_dirty_pages) = sum of 2^order over the dirty lists
 *
 * NUMA: the region is split into one zone per node (zone_impl.h, numa.c),
 * each with its own lock, lists, frontier and counters; everything above
 * holds per zone.  Allocation walks the thread's zonelist; a free goes to
 * the zone whose part holds the block (zone_of: derived from the address).
 * With one node there is one zone, the whole region, as before.
 *
 * Locking: everything of a zone is guarded by z->lock, taken "irqsave":
 * while a thread holds it, a signal that arrives for that thread is held
 * back and delivered at unlock (zone_irqsave:defer, the default, no system
 * call; zone_irqsave:sigmask blocks every signal instead), so a handler can
 * never interrupt its own thread inside the zone.  Functions named
 * __zone_* expect the lock held.  One zone lock at a time, except in
 * zone_lock_all (fork, zone_fork.c; the validator), which takes them in
 * node order.  No
 * system call is made under the lock: a purge (zone_purge.c) detaches
 * blocks, unlocks, madvises, relocks.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include "zone/zone_impl.h"

struct zone_geom zg;
struct zone zones[NUMA_MAX_NODES];
unsigned nr_zones = 1;
uint64_t zone_tick_at = UINT64_MAX;
uint32_t zone_tick_pending;

/* ---- irqsave locking -------------------------------------------------- */

/* A handler that found the lock refused during a fork (zone_fork.c): its
 * frees deferred, its allocations refused. */
static uint64_t deferred_count, refused_allocs;   /* atomic */

static void __zone_free_range(struct zone *z, uint64_t pfn, size_t npages, uint8_t clean,
			      uint64_t stamp);

/* The zone whose part of the region holds pfn. */
static inline struct zone *zone_of(uint64_t pfn)
{
	return &zones[zone_node_of_pfn(pfn)];
}

NOINLINE void __zone_free_deferred(struct zone *z)
{
	struct page_desc *pd = __atomic_exchange_n(&z->deferred, NULL, __ATOMIC_ACQUIRE);
	while (pd) {
		struct page_desc *next = pd->next;
		__zone_free_range(z, desc_pfn(pd), pd->npages, 0, __zone_now(z));
		pd = next;
	}
}

/* On the deferred list of the zone that holds the block. */
void zone_defer_free(struct page_desc *pd, size_t npages)
{
	struct zone *z = zone_of(desc_pfn(pd));
	struct page_desc *old = __atomic_load_n(&z->deferred, __ATOMIC_RELAXED);
	pd->npages = (uint32_t)npages;
	do
		pd->next = old;
	while (!__atomic_compare_exchange_n(&z->deferred, &old, pd, true, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED));
	__atomic_add_fetch(&deferred_count, 1, __ATOMIC_RELAXED);
}

/* Contended: wait, and tell a tracer how long (zone_lock_wait). */
NOINLINE void zone_lock_contended(struct zone *z)
{
	uint64_t waited = mp_lock_slow(&z->lock);
	MP_PROBE1(zone_lock_wait, waited);
}

coldpath void zone_reentered(void)
{
	/* The thread already in the zone can only be here again from a handler
	 * installed behind the trampoline's back (a raw rt_sigaction): say so
	 * rather than spin on our own lock for ever. */
	mp_fatal("re-entered the zone from a signal handler libmagpage did not install "
		 "(raw rt_sigaction?); cannot continue without deadlocking");
}

/* A handler waits for the zone lock, but gives up as soon as the forking
 * thread holds it: it keeps it until glibc's arena locks are taken, and the
 * very thread this handler interrupted may hold one of those.  Before that
 * point (fork_pending, the forker still gathering the cache locks) whoever
 * holds the zone lock waits on nothing a handler can hold. */
NOINLINE bool zone_lock_in_handler(struct zone *z, struct zone_irq *irq)
{
	unsigned spins = 0;

	if (unlikely(mp_tls.in_zone))
		zone_reentered();
	sigctx_zone_enter(irq);
	while (!mp_trylock(&z->lock)) {
		if (__atomic_load_n(&fork_held, __ATOMIC_ACQUIRE)) {
			sigctx_zone_leave(irq);
			return false;
		}
		if (++spins < 200)
			cpu_relax();
		else
			sched_yield();
	}
	__zone_locked(z);
	return true;
}

/* Every zone's lock in node order, inside one irqsave section (the
 * validator, fork): nothing else ever holds two zone locks. */
void zone_lock_all(struct zone_irq *irq)
{
	if (unlikely(mp_tls.in_zone))
		zone_reentered();
	sigctx_zone_enter(irq);
	for (unsigned i = 0; i < nr_zones; i++) {
		mp_lock(&zones[i].lock);
		__zone_locked(&zones[i]);
	}
}

void zone_unlock_all(struct zone_irq *irq)
{
	for (unsigned i = nr_zones; i-- > 0;)
		mp_unlock(&zones[i].lock);
	sigctx_zone_leave(irq);
}

/* After unlocking: is the purge driver's tick due?  now is the clock this
 * hold read for its frees, or 0 if it freed nothing. */
static inline void zone_tick(uint64_t now)
{
	if (unlikely(__atomic_load_n(&zone_tick_at, __ATOMIC_RELAXED) <= now) &&
	    !__atomic_load_n(&zone_tick_pending, __ATOMIC_RELAXED))
		__atomic_store_n(&zone_tick_pending, 1, __ATOMIC_RELAXED);
}

/* ---- the buddy algorithm ---------------------------------------------- */

/*
 * expand: the block at pd has order high and the caller wants order low.
 * Split it in halves, keeping the lower half each time and putting the
 * upper half on the free list of the order below.  Halves of a clean block
 * are clean; halves of a dirty one keep its age.
 */
static void __zone_expand(struct zone *z, struct page_desc *pd, unsigned low, unsigned high)
{
	uint8_t clean = pd->flags & PG_CLEAN;

	while (high > low) {
		high--;
		struct page_desc *half = pd + ((size_t)1 << high);
		half->order = (uint8_t)high;
		half->flags = PG_BUDDY | clean;
		half->freed_ns = pd->freed_ns;
		list_add(z, &z->free_area[high], half);
		z->nr_free_pages += (size_t)1 << high;
		z->splits++;
	}
	pd->order = (uint8_t)low;
}

/* Takes the next order-10 block off the frontier; NULL if none is left
 * that is open (see __zone_open). */
static struct page_desc *__zone_carve(struct zone *z)
{
	if (z->frontier + MAX_BLOCK_PAGES > z->opened)
		return NULL;
	struct page_desc *pd = pfn_to_desc(z->frontier);
	z->frontier += MAX_BLOCK_PAGES;
	pd->order = MAX_ORDER - 1;
	pd->flags = PG_ZERO;
	z->carved++;
	return pd;
}

/* __rmqueue_smallest: the smallest block of at least order, split down;
 * a dirty block of any order before a clean one, the newest of its order.
 * Dirty memory is resident already: taking a clean block while a larger
 * dirty one waits costs page faults now, and raises the peak RSS by what
 * the dirty one holds until the purge gets to it.  The block keeps its
 * clean bits and freed_ns, for the tail its caller gives back; the caller
 * then leaves only PG_ZERO (zone_taken).  With carve false, the lists
 * alone (zone_alloc_listed). */
static struct page_desc *__zone_rmqueue(struct zone *z, unsigned order, bool carve)
{
	struct page_desc *pd = NULL;
	unsigned o = order;

	while (o < MAX_ORDER && !(pd = z->free_area[o].head))
		o++;
	if (!pd) {
		o = order;
		while (o < MAX_ORDER && !(pd = z->free_area[o].clean))
			o++;
	}
	if (pd) {
		list_del(z, &z->free_area[o], pd);
		z->nr_free_pages -= (size_t)1 << o;
		pd->flags &= PG_CLEAN;
		__zone_expand(z, pd, order, o);
		z->allocs++;
		return pd;
	}
	if (!carve)
		return NULL;
	pd = __zone_carve(z);
	if (pd) {
		__zone_expand(z, pd, order, MAX_ORDER - 1);
		z->allocs++;
	}
	return pd;
}

/*
 * __free_one_page: merge the block with its buddy while the buddy is a free
 * block of the same order, then file the result.  The merged block starts at
 * pfn & ~(1 << order), the lower of the two.  It is clean only if both
 * halves were (zero only if both were zero), and a dirty one keeps the
 * younger stamp of its dirty halves.  clean is 0, PG_ZERO or PG_ADVISED;
 * stamp is the block's freed_ns when it is dirty.
 */
void __zone_free_one(struct zone *z, uint64_t pfn, unsigned order, uint8_t clean,
			    uint64_t stamp)
{
	if (unlikely(pfn < z->floor)) {
		z->abandoned_pages += (uint64_t)1 << order;
		return;
	}
	/* fa walks up with order (a pointer, not an index: the loop runs up
	 * to ten times per free of a page) */
	struct free_area *fa = &z->free_area[order];
	while (order < MAX_ORDER - 1) {
		uint64_t bpfn = pfn ^ ((uint64_t)1 << order);
		struct page_desc *buddy = pfn_to_desc(bpfn);
		if (!(buddy->flags & PG_BUDDY) || buddy->order != order)
			break;
		list_del(z, fa, buddy);
		z->nr_free_pages -= (size_t)1 << order;
		uint8_t bclean = buddy->flags & PG_CLEAN;
		if (likely(!(clean | bclean))) {
			/* stamp is the younger: a free's is the clock now, a
			 * tail's (zone_taken) its parent's, whose other parts
			 * are the only buddies it can meet */
		} else if (clean && bclean) {
			clean = (clean & bclean & PG_ZERO) ? PG_ZERO : PG_ADVISED;
		} else {
			if (clean)                      /* the dirty half's age */
				stamp = buddy->freed_ns;
			clean = 0;
		}
		buddy->flags = 0;
		pfn &= ~((uint64_t)1 << order);
		order++;
		fa++;
		z->merges++;
	}
	struct page_desc *pd = pfn_to_desc(pfn);
	pd->order = (uint8_t)order;
	pd->flags = PG_BUDDY | clean;
	pd->freed_ns = stamp;
	list_add(z, fa, pd);
	z->nr_free_pages += (size_t)1 << order;
}

/* Splits [pfn, pfn + npages) into the largest naturally aligned blocks:
 * at each step the block's order is limited both by pfn's alignment and by
 * the pages left, so both an allocation's tail (starting mid-block) and a
 * whole n-page allocation (starting aligned) decompose correctly. */
static void __zone_free_range(struct zone *z, uint64_t pfn, size_t npages, uint8_t clean,
			      uint64_t stamp)
{
	while (npages) {
		unsigned o = ilog2_floor(npages);
		if (pfn) {
			unsigned a = (unsigned)__builtin_ctzl(pfn);
			if (a < o)
				o = a;
		}
		if (o > MAX_ORDER - 1)
			o = MAX_ORDER - 1;
		pfn_to_desc(pfn)->flags = 0;
		__zone_free_one(z, pfn, o, clean, stamp);
		pfn += (uint64_t)1 << o;
		npages -= (size_t)1 << o;
	}
}

/* __zone_rmqueue, opening more of the region when it must (and may
 * carve).  Each pass through __zone_open raises z->opened, so this ends.
 * *locked is false if the lock was lost (then NULL). */
static struct page_desc *__zone_rmqueue_open(struct zone *z, unsigned order, bool carve,
					     struct zone_irq *irq, bool *locked)
{
	struct page_desc *pd = __zone_rmqueue(z, order, carve);
	while (unlikely(!pd) && carve && z->opened < z->end) {
		int r = __zone_open(z, irq);
		if (r <= 0) {
			*locked = r == 0;
			return NULL;
		}
		pd = __zone_rmqueue(z, order, true);
	}
	return pd;
}

/* ---- the zone's interface --------------------------------------------- */

/* A block just taken off the lists for npages of its 2^order pages: the
 * unused tail goes back as it was (clean, or dirty of the same age), and
 * the block keeps only PG_ZERO. */
static inline void __zone_taken(struct zone *z, struct page_desc *pd, unsigned order,
				size_t npages)
{
	if (npages < ((size_t)1 << order))
		__zone_free_range(z, desc_pfn(pd) + npages, ((size_t)1 << order) - npages,
				  pd->flags & PG_CLEAN, pd->freed_ns);
	pd->flags &= PG_ZERO;
}

/*
 * Allocation walks the calling thread's zonelist (numa_route: its own node
 * first, then the others by distance, as the process's memory policy
 * allows) and stops at the first zone that has the block.  The node
 * counters (numa_stats, the numastat meanings) are counted under the lock
 * of the zone that served: hit or miss against the first node of the list,
 * local or other against the thread's node.  With one zone the list is
 * {0} and the walk is one pass.
 */
static inline void __zone_count_node(const struct numa_route *r, unsigned i, unsigned n)
{
	unsigned got = r->list[i];
	struct numa_stats *ns = &numa_stats[got];

	if (likely(i == 0)) {
		ns->numa_hit += n;
	} else {
		ns->numa_miss += n;
		__atomic_add_fetch(&numa_stats[r->list[0]].numa_foreign, n, __ATOMIC_RELAXED);
	}
	if (likely(got == r->local))
		ns->local_node += n;
	else
		ns->other_node += n;
}

/* One zone's try: the block, or NULL (*stop: a handler did not get the
 * lock while a fork is prepared, then no other zone is worth asking; or
 * with carve false, this zone has no block listed but room to carve one,
 * where zone_alloc would carve before it asked the next zone). */
static inline struct page_desc *zone_alloc_in(struct zone *z, const struct numa_route *r,
					      unsigned i, unsigned order, size_t npages,
					      bool carve, bool *stop)
{
	struct zone_irq saved;
	bool locked = true;

	if (!zone_lock_or_refuse(z, &saved)) {
		__atomic_add_fetch(&refused_allocs, 1, __ATOMIC_RELAXED);
		*stop = true;
		return NULL;
	}
	struct page_desc *pd = __zone_rmqueue_open(z, order, carve, &saved, &locked);
	if (!locked) {
		__atomic_add_fetch(&refused_allocs, 1, __ATOMIC_RELAXED);
		*stop = true;
		return NULL;
	}
	if (!pd && !carve && z->frontier + MAX_BLOCK_PAGES <= z->end)
		*stop = true;
	if (pd) {
		__zone_taken(z, pd, order, npages);
		__zone_count_node(r, i, 1);
		if (MP_PROBE_ENABLED(mm_page_alloc_zone_locked))
			MP_PROBE3(mm_page_alloc_zone_locked, desc_to_addr(pd), (uint8_t)order,
				  probe_cpu_id);
	}
	zone_unlock(z, &saved);
	zone_tick(0);
	return pd;
}

static NOINLINE struct page_desc *zone_alloc_multi(unsigned order, size_t npages, bool carve)
{
	struct numa_route r;
	bool stop = false;

	numa_route(&r);
	for (unsigned i = 0; i < r.len && !stop; i++) {
		struct page_desc *pd = zone_alloc_in(&zones[r.list[i]], &r, i, order, npages,
							       carve, &stop);
		if (pd)
			return pd;
	}
	return NULL;
}

static inline struct page_desc *zone_alloc_carve(unsigned order, size_t npages, bool carve)
{
	static const uint8_t node0[1];
	static const struct numa_route one = { .list = node0, .len = 1 };
	bool stop;

	if (unlikely(numa_multi))
		return zone_alloc_multi(order, npages, carve);
	return zone_alloc_in(&zones[0], &one, 0, order, npages, carve, &stop);
}

struct page_desc *zone_alloc(unsigned order, size_t npages)
{
	return zone_alloc_carve(order, npages, true);
}

struct page_desc *zone_alloc_listed(unsigned order, size_t npages)
{
	return zone_alloc_carve(order, npages, false);
}

/* One zone's part of a refill; false if a handler lost the lock. */
static bool zone_take_from(struct zone *z, const struct numa_route *r, unsigned i,
			   size_t npages, unsigned max, unsigned min, unsigned *np,
			   struct page_desc **headp, struct page_desc **tailp)
{
	struct page_desc *head = *headp, *tail = *tailp;
	unsigned n = *np, got = 0, order = ilog2_ceil(npages);
	struct zone_irq saved;
	bool locked = true;

	if (!zone_lock_or_refuse(z, &saved)) {
		__atomic_add_fetch(&refused_allocs, 1, __ATOMIC_RELAXED);
		return false;
	}
	while (n < max) {
		if (n >= min && mp_lock_is_contended(&z->lock)) {
			z->batch_breaks++;
			break;
		}
		struct page_desc *pd = __zone_rmqueue_open(z, order, true, &saved, &locked);
		if (!pd)
			break;
		__zone_taken(z, pd, order, npages);
		pd->npages = (uint32_t)npages;
		if (MP_PROBE_ENABLED(mm_page_alloc_zone_locked))
			MP_PROBE3(mm_page_alloc_zone_locked, desc_to_addr(pd), (uint8_t)order,
				  probe_cpu_id);
		/* Kept in the order taken: physically ascending after a split,
		 * as rmqueue_bulk returns them. */
		pd->next = NULL;
		pd->prev = tail;
		if (tail)
			tail->next = pd;
		else
			head = pd;
		tail = pd;
		n++;
		got++;
	}
	*headp = head;
	*tailp = tail;
	*np = n;
	if (unlikely(!locked))
		return false;
	z->batches++;
	z->batch_blocks += got;
	if (got)
		__zone_count_node(r, i, got);
	zone_unlock(z, &saved);
	zone_tick(0);
	return true;
}

/* A refill: from the first zone of the list that has blocks; the next
 * ones only when it ran dry before giving any. */
unsigned zone_take_batch(size_t npages, unsigned max, unsigned min,
			 struct page_desc **headp, struct page_desc **tailp)
{
	struct numa_route r;
	unsigned n = 0;

	*headp = *tailp = NULL;
	numa_route(&r);
	for (unsigned i = 0; i < r.len && !n; i++)
		if (!zone_take_from(&zones[r.list[i]], &r, i, npages, max, min, &n, headp, tailp))
			break;
	return n;
}

/* Blocks of several nodes (a drain of a cache that mixes them) go back
 * zone by zone, one lock hold per run of blocks of the same node. */
void zone_free_list(struct page_desc *pd)
{
	while (pd) {
		struct zone *z = zone_of(desc_pfn(pd));
		struct zone_irq saved;

		if (!zone_lock_or_refuse(z, &saved)) {
			while (pd) {
				struct page_desc *next = pd->next;
				zone_defer_free(pd, pd->npages);
				pd = next;
			}
			return;
		}
		do {
			struct page_desc *next = pd->next;
			/* every caller is a cache giving blocks back: the
			 * kernel's free_pcppages_bulk */
			if (MP_PROBE_ENABLED(mm_page_pcpu_drain))
				MP_PROBE3(mm_page_pcpu_drain, desc_to_addr(pd), pd->order,
					  probe_cpu_id);
			__zone_free_range(z, desc_pfn(pd), pd->npages, 0, __zone_now(z));
			z->frees++;
			pd = next;
		} while (pd && zone_of(desc_pfn(pd)) == z);
		uint64_t now = z->now;
		zone_unlock(z, &saved);
		zone_tick(now);
	}
}

void zone_free_block(struct page_desc *pd, unsigned order)
{
	struct zone *z = zone_of(desc_pfn(pd));
	struct zone_irq saved;

	if (!zone_lock_or_refuse(z, &saved)) {
		zone_defer_free(pd, (size_t)1 << order);
		return;
	}
	pd->flags = 0;
	__zone_free_one(z, desc_pfn(pd), order, 0, __zone_now(z));
	z->frees++;
	uint64_t now = z->now;
	zone_unlock(z, &saved);
	zone_tick(now);
}

/* A range lies in one zone: it is (part of) a block, and blocks never
 * straddle a boundary. */
static inline __attribute__((always_inline)) void zone_free_range_in(struct zone *z, uint64_t pfn,
								    size_t npages)
{
	struct zone_irq saved;

	if (!zone_lock_or_refuse(z, &saved)) {
		zone_defer_free(pfn_to_desc(pfn), npages);
		return;
	}
	__zone_free_range(z, pfn, npages, 0, __zone_now(z));
	z->frees++;
	uint64_t now = z->now;
	zone_unlock(z, &saved);
	zone_tick(now);
}

/* One node: the zone is a constant, as it was before zones were per node. */
void zone_free_range(uint64_t pfn, size_t npages)
{
	if (likely(!numa_multi))
		zone_free_range_in(&zones[0], pfn, npages);
	else
		zone_free_range_in(zone_of(pfn), pfn, npages);
}

/* Adds zone z's pages and events to zi, under its lock. */
static void zone_info_add(struct zone *z, struct zone_info *zi)
{
	struct zone_irq saved;

	zone_lock(z, &saved);
	zi->pages += z->end - z->start;
	zi->given_back_pages += z->given_back;
	zi->untouched_pages += z->end - z->frontier;
	/* Blocks a purge has off the lists for its madvise are free too: left
	 * out, the program seemed to hold them (held = touched - free -
	 * cached) for as long as the system calls took. */
	zi->free_pages += z->nr_free_pages + z->isolated_pages + (z->end - z->frontier);
	for (unsigned o = 0; o < MAX_ORDER; o++)
		zi->nr_free[o] += z->free_area[o].nr_free;
	zi->lock_acquired += z->lock.acquired;
	zi->lock_contended += z->lock.contended;
	zi->lock_wait_ns += z->lock.wait_ns;
#define X(field, json) zi->field += z->field;
	ZONE_COUNTERS(X)
#undef X
	zi->dirty_pages += z->nr_dirty_pages;
	zi->abandoned_pages += z->abandoned_pages;
	zone_unlock(z, &saved);
}

void zone_info(struct zone_info *zi)
{
	memset(zi, 0, sizeof(*zi));
	if (!zg.bytes)
		return;
	for (unsigned i = 0; i < nr_zones; i++)
		zone_info_add(&zones[i], zi);
	zi->fork_deferred_frees = __atomic_load_n(&deferred_count, __ATOMIC_RELAXED);
	zi->fork_refused_allocs = __atomic_load_n(&refused_allocs, __ATOMIC_RELAXED);
	zi->fork_carved = __atomic_load_n(&fork_carved, __ATOMIC_RELAXED);
}

bool zone_node_info(unsigned node, struct zone_info *zi)
{
	memset(zi, 0, sizeof(*zi));
	if (node >= nr_zones || !zg.bytes)
		return false;
	zone_info_add(&zones[node], zi);
	return true;
}
