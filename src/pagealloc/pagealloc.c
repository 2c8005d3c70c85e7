/*
 * pagealloc.c — alloc_pages / free_pages: the cache or the zone.
 *
 * The choice depends on the order and on the context, as in the RFC:
 *   - blocks of orders 0..cache_order, in process context, use the page
 *     cache (magazines by default);
 *   - in handler context ("interrupt"), the bypass policy sends everything
 *     to the zone, whose lock is signal-safe; the trylock policy (Linux
 *     6.2) tries the preferred cache once and falls back to the zone;
 *   - larger blocks always use the zone.
 * A request of n pages that is not a power of two takes a block of the next
 * order and gives its unused tail back at once (alloc_pages_exact), so
 * malloc(12 KiB) holds 3 pages, not 4.  The caches keep such blocks whole,
 * in size classes by page count (cache_exact), so they are reused as they
 * are.
 * When the zone is empty, process-context callers drain every cache and try
 * once more; handler-context callers never wait on a cache, so they fail.
 * Before the zone carves fresh space for a request the caches do not
 * serve, the caches may be drained too (pa_zone_alloc).
 */
#include <string.h>

#include "internal.h"

static unsigned cache_max_pages;   /* 2^cache_order, or 0 with no cache */

uint8_t pa_onehop[MAX_BLOCK_PAGES + 1];
uint8_t pa_freehop[MAX_BLOCK_PAGES + 1];
uint8_t pa_fit_most[CACHE_CLASSES + 1];
uint64_t pa_freehop_span;
uint32_t pa_live_max;
struct pa_carve_stats pa_carve_stats;

/* Does a cache keep blocks of npages pages? */
static inline bool cacheable(size_t npages)
{
	return npages <= cache_max_pages && (opt.cache_exact || is_pow2(npages));
}

bool pa_cached_size(size_t npages)
{
	return cacheable(npages);
}

void pa_init(void)
{
	unsigned order = opt.cache_order < cache.max_order ? opt.cache_order : cache.max_order;
	cache_max_pages = cache_enabled ? 1u << order : 0;
	memset(pa_onehop, PA_NO_ONEHOP, sizeof(pa_onehop));
	/* bonwick's one-hop sections take the rseq offset the build recorded
	 * (platform/rseq.h): under another glibc, its sizes take the table */
	bool bw_hop = cache_kind == CACHE_BONWICK && rseq_offset_is_built();
	for (size_t n = 0; n <= CACHE_CLASSES; n++)
		pa_onehop[n] = !n || !cacheable(n) || mp_stats_on ? PA_NO_ONEHOP
			       : bw_hop			      ? (uint8_t)(n - 1)
			       : cache_kind == CACHE_PCP_RSEQ ? PA_ONEHOP_PCPR
							      : PA_ONEHOP_TABLE;
	for (size_t n = 0; n <= CACHE_CLASSES; n++) {
		pa_fit_most[n] = (uint8_t)n;
		for (size_t m = n + 1; n && opt.cache_borrow && cache.alloc_fit && cacheable(n) &&
				       m <= cache_max_pages; m++)
			if (cacheable(m) && (m - n) * 100 <= m * opt.waste_max)
				pa_fit_most[n] = (uint8_t)m;
	}
	/* Several nodes: frees take the table hop, which checks the node. */
	memcpy(pa_freehop, pa_onehop, sizeof(pa_freehop));
	if (numa_multi)
		for (size_t n = 0; n <= MAX_BLOCK_PAGES; n++)
			if (pa_freehop[n] != PA_NO_ONEHOP)
				pa_freehop[n] = PA_ONEHOP_NUMA;
	pa_freehop_span = 0;
	while (pa_freehop_span < CACHE_CLASSES &&
	       pa_freehop[pa_freehop_span + 1] == pa_freehop_span)
		pa_freehop_span++;
	pa_live_max = pa_freehop_span ? LIVE_BLOCK_MAX : 0;
}

/* Several nodes: is the block of the calling thread's node?  A remote one
 * is counted on its node. */
static NOINLINE bool pa_local(const struct page_desc *pd)
{
	unsigned node = zone_node_of_pfn(desc_pfn(pd));
	if (node == numa_local_node())
		return true;
	__atomic_add_fetch(&numa_stats[node].remote_frees, 1, __ATOMIC_RELAXED);
	return false;
}

/* Frees a block of pd->npages pages through the cache when allowed. */
static void pa_release_block(struct page_desc *pd, bool irq)
{
	/* A handler while a fork is prepared: the zone would only defer it. */
	if (unlikely(irq) && zone_fork_pending() && reserve_put(pd))
		return;
	/* A CPU's cache holds only its own node's pages: a block of another
	 * node goes straight back to its zone (Linux frees a remote page to
	 * its own zone too). */
	if (unlikely(numa_multi) && !pa_local(pd))
		goto to_zone;
	if (cacheable(pd->npages) && cache_free(pd, irq))
		return;
to_zone:
	zone_free_range(desc_pfn(pd), pd->npages);
}

/* The zone said no: it is empty, or (to a handler) a fork is prepared.
 * Process context drains every cache and tries once more; a handler must
 * not wait on the caches, and takes a block from the reserve instead: one
 * of *npages pages, or the whole 2^order-page block when the alignment asks
 * for more (then *npages says so). */
static NOINLINE struct page_desc *pa_alloc_exhausted(unsigned order, size_t *npages, bool irq)
{
	struct page_desc *pd = NULL;

	if (cache_drain_all(irq))
		pd = zone_alloc(order, *npages);
	/* A refusal can outlive the fork: the forker lets go of the zone
	 * between the zone's answer and the reserve's (which then carves
	 * nothing).  Once it has, the zone is worth asking again. */
	for (unsigned tries = 0; !pd && irq && tries < 3; tries++) {
		size_t want = order == ilog2_ceil(*npages) ? *npages : (size_t)1 << order;
		pd = reserve_take(&want);
		if (pd)
			*npages = want;
		else if (zone_fork_held())
			break;
		else
			pd = zone_alloc(order, *npages);
	}
	return pd;
}

/*
 * Draining before carving.  A cached block pins its buddies: one page in a
 * cache keeps the 4 MiB block around it from forming again.  A request the
 * caches do not serve (more than cache_order's pages, or a stricter
 * alignment) then finds no block on the zone's lists though most of the
 * old one is free, and the zone carves a fresh 4 MiB off the frontier.  A
 * loop that allocates 1 MiB, shrinks it to a page with realloc and frees
 * it leaves one cached page behind per MiB, and so walked the whole region:
 * 473 MiB of RSS, most of it descriptors, for one live block.
 *
 * The kernel drains its per-CPU lists when a high-order allocation fails
 * (drain_all_pages in the slow path).  The frontier stands for that
 * failure here: such a request asks the lists alone first; when they have
 * no block for it, every cache is drained into the zone, where the
 * buddies merge, and the request is made again, carving only if it must.
 * A drain empties the caches, which then refill from the zone, so it may
 * run again only once this path has taken blocks of max(gap, what it gave
 * back) pages since (2^order each: the alignment's block for an aligned
 * request): the pages a drain moves are paid for by as many taken from the
 * zone, whose page faults cost more.  gap is 1024 (4 MiB) after a drain
 * that spared the carve, and doubles after each that did not, up to 16
 * times that (a heap that grows: a drain per 64 MiB, whose fences cost
 * microseconds).  The drainer moves the gate on by 1024 pages with its
 * CAS, so that the others carve meanwhile, and then to where the drain
 * says: a thread that never gets there (a handler's siglongjmp, a fork's
 * child) leaves a gate that opens again.  The shared words are written
 * only here, once per such request.
 */
#define PA_DRAIN_GAP_SHIFT_MAX 4
static uint64_t pa_zone_pages;   /* atomic: pages of the blocks this path took */
static uint64_t pa_drain_at = MAX_BLOCK_PAGES;   /* atomic: pa_zone_pages at which a
						   drain may run */
static unsigned pa_drain_shift;  /* atomic: gap = 1024 << this */

/* A drain is due and the zone has no block listed: drains every cache and
 * asks again; NULL if another thread is draining, or still no block. */
static struct page_desc *pa_carve_drain(unsigned order, size_t npages, uint64_t at,
					uint64_t out)
{
	if (!__atomic_compare_exchange_n(&pa_drain_at, &at, out + MAX_BLOCK_PAGES, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return NULL;
	size_t drained = cache_drain_all(false);
	struct page_desc *pd = zone_alloc_listed(order, npages);
	unsigned shift = __atomic_load_n(&pa_drain_shift, __ATOMIC_RELAXED);
	shift = pd ? 0 : shift < PA_DRAIN_GAP_SHIFT_MAX ? shift + 1 : shift;
	__atomic_store_n(&pa_drain_shift, shift, __ATOMIC_RELAXED);
	uint64_t gap = (uint64_t)MAX_BLOCK_PAGES << shift;
	if (gap < drained)
		gap = drained;
	__atomic_store_n(&pa_drain_at, __atomic_load_n(&pa_zone_pages, __ATOMIC_RELAXED) + gap,
			 __ATOMIC_RELAXED);
	__atomic_add_fetch(&pa_carve_stats.drains, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&pa_carve_stats.pages, drained, __ATOMIC_RELAXED);
	if (pd)
		__atomic_add_fetch(&pa_carve_stats.spared, 1, __ATOMIC_RELAXED);
	return pd;
}

static NOINLINE struct page_desc *pa_zone_alloc_drain(unsigned order, size_t npages)
{
	uint64_t at = __atomic_load_n(&pa_drain_at, __ATOMIC_RELAXED);
	uint64_t out = __atomic_load_n(&pa_zone_pages, __ATOMIC_RELAXED);
	struct page_desc *pd = NULL;

	if (out >= at && !(pd = zone_alloc_listed(order, npages)))
		pd = pa_carve_drain(order, npages, at, out);
	if (!pd)
		pd = zone_alloc(order, npages);
	if (pd)
		__atomic_add_fetch(&pa_zone_pages, (uint64_t)1 << order, __ATOMIC_RELAXED);
	return pd;
}

/* The zone's block for a request the caches did not serve: process
 * context with a cache drains first when it must (above); handlers and
 * cache:none go straight to the zone. */
static inline struct page_desc *pa_zone_alloc(unsigned order, size_t npages, bool irq)
{
	if (unlikely(irq) || !cache_max_pages)
		return zone_alloc(order, npages);
	return pa_zone_alloc_drain(order, npages);
}

/* The one-hop path (internal.h) has been tried first by malloc and free;
 * everything else comes here.  A cached block may have up to most pages. */
static ALWAYS_INLINE struct page_desc *alloc_block(size_t npages, size_t most,
						    unsigned align_order)
{
	unsigned order = ilog2_ceil(npages), block_order = order;
	struct page_desc *pd = NULL;
	bool irq = sigctx_in_irq();

	/* Cached blocks of n pages start on a 2^ceil(log2 n) boundary; a
	 * stricter alignment goes to the zone.  A larger block's boundary is
	 * at least as strict. */
	if (likely(align_order <= order) && cacheable(npages)) {
		if (most == npages) {
			pd = cache_alloc(npages, irq);
		} else if ((pd = cache_alloc_fit(npages, most, irq)) && pd->npages > npages) {
			npages = pd->npages;
			block_order = ilog2_ceil(npages);
		}
	}
	if (align_order > order)
		order = align_order;
	if (!pd)
		pd = pa_zone_alloc(order, npages, irq);
	if (unlikely(!pd)) {
		pd = pa_alloc_exhausted(order, &npages, irq);
		if (!pd)
			return NULL;
		block_order = ilog2_ceil(npages);
	}
	/* Blocks from a cache carry PG_CACHED (maybe PG_ZERO: not bonwick's,
	 * whose refill drops it), from the zone nothing but PG_ZERO: keep only
	 * the zero bit.  order: what the
	 * block's npages make it, whatever alignment it was taken for, so
	 * that the one-hop paths' tracepoints find it there (pa_shrink keeps
	 * it too). */
	uint8_t was = pd->flags;
	pd->npages = (uint32_t)npages;
	pd->order = (uint8_t)block_order;
	pd->flags = PG_ALLOC | (was & PG_ZERO);
	/* off the one-hop paths: the address and source cost instructions */
	if (MP_PROBE_ENABLED(mm_page_alloc))
		MP_PROBE4(mm_page_alloc, desc_to_addr(pd), (uint8_t)block_order,
			  (was & PG_CACHED) ? PROBE_FROM_CACHE : PROBE_FROM_ZONE, -1);
	return pd;
}

struct page_desc *pa_alloc(size_t npages, unsigned align_order)
{
	return alloc_block(npages, npages, align_order);
}

struct page_desc *pa_alloc_fit(size_t npages, size_t most, unsigned align_order)
{
	return alloc_block(npages, most, align_order);
}

void pa_free(struct page_desc *pd)
{
	pa_release_block(pd, sigctx_in_irq());
}

void pa_shrink(struct page_desc *pd, size_t keep)
{
	size_t npages = pd->npages;

	pd->npages = (uint32_t)keep;
	pd->order = (uint8_t)ilog2_ceil(keep);
	/* to the zone, never a cache: there it merges with its free
	 * neighbours, and the block, freed later, with it.  Filed in a cache
	 * (a tail of a cached size, aligned for it), it kept the 17- to
	 * 25-page blocks threads shrank from merging again, and RSS grew with
	 * the run (session 27). */
	zone_free_range(desc_pfn(pd) + keep, npages - keep);
}

/* Bulk free: cacheable blocks share one cache lock hold; the rest are
 * freed one by one.  The chain is linked through next; callers have
 * cleared PG_ALLOC. */
void pa_free_chain(struct page_desc *pd)
{
	struct page_desc *cached = NULL;
	bool irq = sigctx_in_irq();

	while (pd) {
		struct page_desc *next = pd->next;
		if (irq || !cacheable(pd->npages) || unlikely(numa_multi)) {
			pa_release_block(pd, irq);   /* several nodes: its check */
		} else {
			pd->next = cached;
			cached = pd;
		}
		pd = next;
	}
	if (cached)
		cache_free_chain(cached);
}

void pa_free_bulk(struct page_desc **pds, size_t n)
{
	pa_free_chain(desc_chain(pds, n));
}

size_t pa_drain_all(void)
{
	return cache_drain_all(sigctx_in_irq());
}
