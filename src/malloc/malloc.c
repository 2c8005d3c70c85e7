/*
 * malloc.c — C allocation semantics on top of alloc_pages.
 *
 * Size routing: a request of at least opt.threshold bytes (one page by
 * default) and at most 4 MiB is served by the zone as whole pages, page
 * aligned; anything else goes to glibc.  The waste policy makes one
 * exception: a request of more than a page whose rounding up to whole
 * pages would waste more than opt.waste_max percent of them (a page plus a
 * header: 4101, 8224 bytes) gets an object of a run instead (runs.c), or
 * glibc's where no run class fits or with runs:0 (waste_ok).  Ownership is
 * decided by address: a pointer inside the region is ours, anything else
 * is glibc's, so every block goes back to whoever served it.
 *
 * In a signal handler glibc must not be called at all (it is not
 * async-signal-safe): small requests then get a whole page from the zone,
 * and frees of glibc pointers are deferred (fallback.c).
 *
 * Invalid frees are caught from the live bytes and the page descriptors: a
 * pointer inside the region must be the first page of a live allocation
 * (its live byte set, for a block the one-hop malloc handed out, else
 * PG_ALLOC in its descriptor: zone.h), and free clears the byte or the
 * flag, so a second free of the same block fails the check instead of
 * corrupting the free lists; or the start of a live run object (PG_RUN on
 * its page, its bit in the run's bitmap, runs.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "malloc/malloc_impl.h"

size_t zone_lo, zone_span;    /* malloc_impl.h */
/* The same for the sizes the one-hop path may serve (up to CACHE_CLASSES
 * pages), so that one compare also bounds its table index. */
static size_t onehop_span;
size_t waste_max = 100;
/*
 * The fast path's size -> class table, the waste policy folded in: a
 * request of s bytes in 1..CACHE_CLASSES pages looks up
 * route[(s - 1) >> ROUTE_SHIFT], the one-hop class of its page count
 * (pa_onehop) as the offset of its array in a CPU's cache (BW_KOFF: the
 * section adds it as it is), or ROUTE_NONE when the one-hop path does not
 * serve that count or when some size of the 512-byte slot is one the
 * policy sends to glibc.  Those take malloc_slow, which decides exactly
 * (zone_size); so the policy costs the fast path nothing: the same shift
 * and load as pa_onehop's.  All ROUTE_NONE until init.
 */
#define ROUTE_SHIFT 9
#define ROUTE_SLOTS (CACHE_CLASSES << (PAGE_SHIFT - ROUTE_SHIFT))
#define ROUTE_NONE 0xffff
/* Every size of the slot is one the waste policy turns away: malloc_slow
 * sends it to a run or glibc first thing (it fails the fast path's compare
 * as ROUTE_NONE does). */
#define ROUTE_GLIBC 0xfffe
/* Every size of the slot goes to another design's own alloc (pa_onehop's
 * PA_ONEHOP_TABLE): malloc_table_hop, straight from mp_malloc. */
#define ROUTE_TABLE 0xfffd
/* A ROUTE_GLIBC slot whose every size is a run class the hop serves as it
 * is (run_route_ok): malloc_run_routed, which tests no class. */
#define ROUTE_RUN 0xfffc
_Static_assert(BW_KOFF(CACHE_CLASSES - 1) < ROUTE_TABLE, "route[] holds every class's offset");
static uint16_t route[ROUTE_SLOTS] = { [0 ... ROUTE_SLOTS - 1] = ROUTE_NONE };

/* A slot of sizes the waste policy turns away, whichever hop serves it. */
static inline bool route_waste(uint16_t r)
{
	return r == ROUTE_GLIBC || r == ROUTE_RUN;
}
/* Requests below mp_glibc_below go straight to glibc: zone_lo; 0 while
 * frees deferred by a handler wait (fb_defer_free), so that the next small
 * malloc takes the slow path and drains them; 0 for good with statistics
 * on (every call takes the counting way) or under a finite RLIMIT_AS/DATA
 * (glibc's ENOMEM is retried after the zone gives back its unused tail,
 * fb_malloc).  glibc_below is what it returns to once drained. */
size_t mp_glibc_below;
size_t glibc_below;
/* The fast path's copy of onehop_span: 0 while the purge trap is armed
 * (malloc_trap_arm), so that page-sized requests miss the fast path too. */
size_t mp_onehop_span;
static int trap_armed;     /* atomic */
/* What free_other opens mp_tls.free_below to: the region's base (every
 * pointer below it is glibc's), UINTPTR_MAX without a region, 0 with
 * statistics on (every free takes the counting way) and until init. */
static uintptr_t free_below;

/* ---- counters ----------------------------------------------------------- */

struct mstat_shard mshard[MSTAT_SHARDS];
bool mp_stats_on;        /* set at start-up (startup.c): the malloc layer counts */

void malloc_stats_read(struct malloc_stats *out)
{
	uint64_t sum[MC_COUNT] = { 0 };
	for (unsigned s = 0; s < MSTAT_SHARDS; s++)
		for (unsigned i = 0; i < MC_COUNT; i++)
			sum[i] += __atomic_load_n(&mshard[s].c[i], __ATOMIC_RELAXED);
#define X(n) out->n = sum[MC_##n];
	MALLOC_COUNTERS(X)
#undef X
	out->live_requested = (int64_t)sum[MC_live_requested];
	out->live_held = (int64_t)sum[MC_live_held];
}

/* ---- initialisation ----------------------------------------------------- */

/* After pa_init: route[] from pa_onehop and the policy.  Waste falls as
 * the size grows within a page count, so a slot is all-zone when its
 * smallest size the zone can see is. */
static void route_init(void)
{
	for (size_t i = 0; i < ROUTE_SLOTS; i++) {
		size_t lo = (i << ROUTE_SHIFT) + 1;
		size_t pages = (i >> (PAGE_SHIFT - ROUTE_SHIFT)) + 1;
		if (lo < zone_lo)
			lo = zone_lo;
		size_t hi = (i + 1) << ROUTE_SHIFT;
		uint8_t cls = pa_onehop[pages];
		if (waste_ok(lo))
			route[i] = cls < CACHE_CLASSES ? (uint16_t)BW_KOFF(cls) :
				   pa_hop_table(cls) ? ROUTE_TABLE : ROUTE_NONE;
		else if (zone_range(lo) && !waste_ok(hi) && !stats_on)
			route[i] = runs_on && run_route_ok(lo, hi) ? ROUTE_RUN : ROUTE_GLIBC;
		else
			route[i] = ROUTE_NONE;
	}
}

/* The globals mp_malloc and mp_free read on every one-hop call, with what
 * they inline (platform/rseq.h's sections, the default cache's bases). */
unsigned mp_onehop_reads(struct mp_span *out, unsigned max)
{
	const struct mp_span all[] = {
		{ &mp_glibc_below, sizeof(mp_glibc_below), 0 },
		{ &mp_onehop_span, sizeof(mp_onehop_span), 0 },
		{ &zone_lo, sizeof(zone_lo), 0 },
		/* a class's sizes: its page count's 4096 >> ROUTE_SHIFT slots */
		{ route, sizeof(route), sizeof(route) / CACHE_CLASSES },
		{ &zg, sizeof(zg), 0 },
		{ &mp_rseq_offset, sizeof(mp_rseq_offset), 0 },
		{ &bw_base, sizeof(bw_base), 0 },
		{ &bw_base_less1, sizeof(bw_base_less1), 0 },
		{ &bw_nr_cpus, sizeof(bw_nr_cpus), 0 },
		{ &pa_freehop_span, sizeof(pa_freehop_span), 0 },
		{ &pa_live_max, sizeof(pa_live_max), 0 },
	};
	unsigned n = sizeof(all) / sizeof(all[0]) < max ? sizeof(all) / sizeof(all[0]) : max;
	memcpy(out, all, n * sizeof(all[0]));
	return n;
}

bool mp_span_hot(const struct mp_span *hot, unsigned n, size_t po, unsigned k)
{
	if (po == 0 || po == PAGE_SIZE - 64)
		return true;
	for (unsigned i = 0; i < n; i++) {
		uintptr_t lo = (uintptr_t)hot[i].p, hi = lo + hot[i].size;
		if (hot[i].per_class) {
			lo += k * hot[i].per_class;
			hi = lo + hot[i].per_class;
		}
		for (uintptr_t a = lo & ~(uintptr_t)63; a < hi; a += 64)
			if ((a & (PAGE_SIZE - 1)) == po)
				return true;
	}
	return false;
}

/* After zone_init, cache_init and pa_init (startup.c): opens the size
 * routes (zone_ok: a region was reserved) and sets the glibc bound. */
void malloc_init(bool zone_ok)
{
	runs_init(zone_ok);
	if (zone_ok) {
		zone_lo = opt.threshold;
		zone_span = MAX_BLOCK_BYTES - opt.threshold + 1;
		waste_max = opt.waste_max;
		route_init();
		if (opt.threshold <= (size_t)CACHE_CLASSES << PAGE_SHIFT)
			onehop_span = ((size_t)CACHE_CLASSES << PAGE_SHIFT) - opt.threshold + 1;
		mp_onehop_span = onehop_span;
	}
	glibc_below = stats_on || zone_limited() ? 0 : opt.threshold;
	mp_glibc_below = glibc_below;
	free_below = stats_on ? 0 : zone_ok ? zg.base : UINTPTR_MAX;
}

/* ---- bad frees ---------------------------------------------------------- */

/* Is the page inside a free block, on the zone's lists or in a cache?  A
 * freed block may have merged into its buddy, so look at every block that
 * could contain it: the aligned heads of orders 0..10.  Diagnostics only:
 * racy, and never on a fast path. */
static bool inside_free_block(uint64_t pfn)
{
	for (unsigned o = 0; o < MAX_ORDER; o++) {
		uint64_t head = pfn & ~(((uint64_t)1 << o) - 1);
		const struct page_desc *h = pfn_to_desc(head);
		uint8_t f = __atomic_load_n(&h->flags, __ATOMIC_RELAXED);
		if ((f & PG_BUDDY) && pfn - head < ((uint64_t)1 << h->order))
			return true;
		/* a cached block whose live byte is set is the program's */
		if ((f & PG_CACHED) && pfn - head < h->npages && !*addr_to_live(desc_to_addr(h)))
			return true;
	}
	return false;
}

coldpath void bad_pointer(const char *fn, void *p, const struct page_desc *pd)
{
	(void)pd;
	bad_pointer_why(fn, p,
			((uintptr_t)p & (PAGE_SIZE - 1)) == 0 && inside_free_block(addr_to_pfn(p))
				? "double free, or a pointer into freed memory: the page is free"
				: "not the start of a live allocation");
}

coldpath void bad_pointer_why(const char *fn, void *p, const char *why)
{
	int saved = errno;
	__atomic_add_fetch(&mshard[0].c[MC_invalid_frees], 1, __ATOMIC_RELAXED);
	if (opt.on_invalid == INVALID_ABORT)
		mp_fatal("%s(): invalid pointer %p (%s)", fn, p, why);
	mp_log("%s(): invalid pointer %p (%s); call ignored", fn, p, why);
	errno = saved;
}

/* ---- the purge trap ------------------------------------------------------ */

/* The bounds a fired trap gives back.  mp_glibc_below stays 0 while frees
 * deferred by a handler wait (drain_deferred restores it): stored, then the
 * list read, as fb_defer_free pushes, then stores 0. */
static void trap_open_bounds(void)
{
	__atomic_store_n(&mp_onehop_span, onehop_span, __ATOMIC_SEQ_CST);
	__atomic_store_n(&mp_glibc_below, glibc_below, __ATOMIC_SEQ_CST);
	if (unlikely(__atomic_load_n(&fb_deferred_head, __ATOMIC_SEQ_CST) != NULL))
		__atomic_store_n(&mp_glibc_below, 0, __ATOMIC_SEQ_CST);
}

/* The flag first, then the bounds.  A malloc that fires the trap between
 * the stores (a handler's on this thread, or another thread's slow path:
 * both find the flag) opens the bounds before these close them; the flag
 * read again afterwards says so, and the bounds open again.  Otherwise the
 * trap would be off with the fast paths closed until the next arming. */
void malloc_trap_arm(void)
{
	__atomic_store_n(&trap_armed, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&mp_onehop_span, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&mp_glibc_below, 0, __ATOMIC_SEQ_CST);
	if (unlikely(!__atomic_load_n(&trap_armed, __ATOMIC_SEQ_CST)))
		trap_open_bounds();
}

/* A malloc found the trap armed: bounds back first, then the driver (see
 * purge.c for why in this order). */
static NOINLINE void malloc_trap_fire(void)
{
	if (!__atomic_exchange_n(&trap_armed, 0, __ATOMIC_SEQ_CST))
		return;          /* another thread fired it */
	trap_open_bounds();
	purge_trip();
}

static inline void trap_check(void)
{
	if (unlikely(__atomic_load_n(&trap_armed, __ATOMIC_RELAXED)))
		malloc_trap_fire();
}

/* The store, then the flag: an arming whose close came before the store
 * is fired here (a call of the family is not idle), and its fire opens
 * the bounds again.  Opening the small bound without it left an armed
 * trap that small mallocs went past: calloc, realloc and the aligned
 * allocations reopened it, and the purge took a busy program for idle. */
void malloc_bound_reopen(void)
{
	__atomic_store_n(&mp_glibc_below, glibc_below, __ATOMIC_SEQ_CST);
	if (unlikely(__atomic_load_n(&trap_armed, __ATOMIC_SEQ_CST)))
		malloc_trap_fire();
}

/* ---- the zone side ------------------------------------------------------ */

/* Why glibc serves a process-context request of size bytes. */
void count_fallback(size_t size)
{
	if (likely(!stats_on))
		return;
	if (size < zone_lo) {
		COUNT(fb_small);
	} else if (zone_range(size)) {
		COUNT(fb_waste);
		count(MC_fb_waste_bytes, size);
	} else {
		COUNT(fb_large);
	}
}

static NOINLINE void *page_exhausted(size_t size, size_t align)
{
	COUNT(fb_exhausted);
	if (sigctx_in_irq() || opt.on_exhausted == EXHAUSTED_NULL) {
		errno = ENOMEM;
		return NULL;
	}
	return align > 16 ? fb_memalign(align, size) : fb_malloc(size);
}

/* npages: the block's, a larger class's when it borrowed one (held
 * counts it); the waste policy's count is the rounding it allowed, the
 * size's own pages, whatever block the cache had. */
static NOINLINE void account_alloc(size_t size, size_t npages)
{
	COUNT(zone_allocs);
	if (size > PAGE_SIZE && (size & (PAGE_SIZE - 1))) {
		COUNT(waste_kept);
		count(MC_waste_kept_bytes, (pages_of(size) << PAGE_SHIFT) - size);
	}
	count(MC_bytes_requested, size);
	count(MC_bytes_held, npages << PAGE_SHIFT);
	count(MC_live_requested, size);
	count(MC_live_held, npages << PAGE_SHIFT);
}

/* size bytes as whole pages, aligned to align (a power of two): 16 for
 * the plain calls, whose blocks are page aligned anyway.  When the zone
 * has none, glibc gets the caller's alignment, not the page's: a malloc
 * of 4 KiB served by memalign(4096) cost glibc a page more (under
 * ulimit -v 1000000, 545 MiB of 4 KiB blocks against glibc's 970). */
void *page_alloc(size_t size, size_t align, bool zero)
{
	size_t npages = pages_of(size);
	unsigned align_order = align > PAGE_SIZE ? ilog2_floor(align) - PAGE_SHIFT : 0;
	/* calloc, memalign & co. reuse cached blocks too: not idle */
	trap_check();
	/* calloc's blocks are their own pages only: a borrowed block's tail
	 * would need zeroing too, as its usable size says */
	size_t most = !zero && npages <= CACHE_CLASSES ? pa_fit_most[npages] : npages;
	struct page_desc *pd = pa_alloc_fit(npages, most, align_order);
	tick_check();

	if (unlikely(!pd)) {
		void *p = page_exhausted(size, align);
		if (p && zero) {             /* all of it, as glibc's calloc */
			size_t usable = fb_usable_size(p);
			memset(p, 0, usable > size ? usable : size);
		}
		return p;
	}
	/* pd->flags is PG_ALLOC, plus PG_ZERO if the pages were never used:
	 * left as it is, free() overwrites it. */
	pd->req_bytes = size;
	void *p = desc_to_addr(pd);
	if (zero) {
		if (!(pd->flags & PG_ZERO))
			memset(p, 0, npages << PAGE_SHIFT);
		else
			COUNT(calloc_memset_skipped);
	}
	if (unlikely(stats_on))
		account_alloc(size, pd->npages);
	return p;
}

NOINLINE void account_free(const struct page_desc *pd)
{
	COUNT(zone_frees);
	count(MC_live_requested, -pd->req_bytes);
	count(MC_live_held, -((uint64_t)pd->npages << PAGE_SHIFT));
}

static void page_release(struct page_desc *pd);

static inline void page_free(void *p, const char *fn)
{
	struct page_desc *pd = pfn_to_desc(addr_to_pfn(p));
	live_claim(p, pd);

	/* Always on, release builds too: the check that keeps a bad free from
	 * corrupting the free lists.  A plain load and store, not an atomic
	 * RMW (which alone would cost a third of the fast path): every
	 * double free is caught once the first free has returned; two threads
	 * freeing the same block at the same instant race, as with glibc. */
	uint8_t f = pd->flags;
	if (unlikely(((uintptr_t)p & (PAGE_SIZE - 1)) || !(f & PG_ALLOC))) {
		if (f & PG_RUN)
			run_free(p, pd, fn);
		else
			bad_pointer(fn, p, pd);
		return;
	}
	pd->flags = f & (uint8_t)~PG_ALLOC;
	if (unlikely(stats_on))
		account_free(pd);
	page_release(pd);
}

/* A live block whose checks are made and whose PG_ALLOC is cleared: the
 * other designs' hop, else pa_free; the purge hears of both. */
static void page_release(struct page_desc *pd)
{
	if (stats_on || !pa_free_table_hop(pd)) {
		pa_free(pd);
		tick_check();
		purge_free_slow();
		return;
	}
	/* The other designs' hop took it, as bonwick's one-hop path would have
	 * (which tells the purge nothing): their drains reach the zone from
	 * inside the cache, so tick; and one free in 64 says the caches hold
	 * freed memory.  Not every one: each would arm the trap, and each
	 * malloc then fire it, a clock read apiece. */
	tick_check();
	if (unlikely((++mp_tls.hop_frees & 63) == 0))
		purge_free_slow();
}

/* ---- the glibc side ----------------------------------------------------- */

/* A request glibc would serve, made in a signal handler: glibc is not
 * async-signal-safe, so the zone serves it as whole pages, or nothing. */
NOINLINE void *handler_alloc(size_t size, bool zero)
{
	COUNT(sig_malloc);
	if (size > MAX_BLOCK_BYTES || !zg.bytes) {
		errno = ENOMEM;
		return NULL;
	}
	COUNT(sig_small_zone);
	return page_alloc(size, MALLOC_ALIGN, zero);
}

/* Anything that is not a page-sized request in process context. */
static NOINLINE void *malloc_other(size_t size)
{
	mp_ensure_init();
	if (zone_size(size))
		return page_alloc(size, MALLOC_ALIGN, false);
	if (unlikely(size > PTRDIFF_MAX)) {
		errno = ENOMEM;
		return NULL;
	}
	if (unlikely(sigctx_in_irq()))
		return handler_alloc(size, false);
	drain_deferred();
	void *p;
	if (run_try(size, 1, false, &p))
		return p;
	count_fallback(size);
	return fb_malloc(size);
}

/* A run size whose class got no run (the zone had none to give): glibc's
 * (n x m bytes, zeroed if zero), as a whole-page request's is
 * (page_exhausted), or NULL with ENOMEM under on_exhausted:null. */
NOINLINE void *run_exhausted(size_t n, size_t m, bool zero)
{
	COUNT(fb_exhausted);
	if (opt.on_exhausted == EXHAUSTED_NULL) {
		errno = ENOMEM;
		return NULL;
	}
	return zero ? fb_calloc(n, m) : fb_malloc(n);
}

/* ---- the malloc family -------------------------------------------------- */

/* A size of a ROUTE_GLIBC or ROUTE_RUN slot (every size of it one the waste
 * policy turns away, in the zone's range) goes to a run object, or glibc's, at
 * once in process context, unless frees deferred by a handler wait to be
 * drained (mp_glibc_below 0 says so; with statistics on, route[] has no
 * ROUTE_GLIBC). */
static inline bool run_way_open(void)
{
	return likely(__atomic_load_n(&mp_glibc_below, __ATOMIC_RELAXED)) && likely(!mp_tls.word);
}

static inline void *run_or_glibc(size_t size)
{
	int cls = run_class_of(size);
	if (cls < 0)
		return fb_malloc(size);
	void *p = run_alloc(cls, false);
	return likely(p) ? p : run_exhausted(size, 1, false);
}

/* Everything mp_malloc's fast paths leave: counting on, the zone path, the
 * glibc path with its ENOMEM retry, and the rare cases. */
static NOINLINE void *malloc_slow(size_t size)
{
	void *p;

	trap_check();
	/* A page plus a header (redis's 4101 bytes), reached here when the
	 * trap closed malloc_run_hop's way */
	if (size - zone_lo < onehop_span && route_waste(route[(size - 1) >> ROUTE_SHIFT]) &&
	    run_way_open())
		return run_or_glibc(size);
	if (zone_size(size) && pa_alloc_table_hop(size, &p)) {
		tick_check();  /* its refills reach the zone from inside the cache */
		return p;      /* counts nothing: with statistics on it is not taken */
	}
	COUNT(malloc_calls);
	if (zone_size(size))
		return page_alloc(size, MALLOC_ALIGN, false);
	return malloc_other(size);
}

/* Another design's hop for a size route[] sends it (ROUTE_TABLE):
 * malloc_slow's without its tests of the size, which route[] made. */
static NOINLINE void *malloc_design_hop(size_t size)
{
	void *p;
	trap_check();
	if (likely(pa_alloc_table_hop(size, &p))) {
		tick_check();  /* its refills reach the zone from inside the cache */
		return p;
	}
	COUNT(malloc_calls);
	return page_alloc(size, MALLOC_ALIGN, false);
}

/* route[] says ROUTE_GLIBC: run_or_glibc without malloc_slow's tests of
 * the size (the trap, when armed, closes the way here: mp_onehop_span). */
static NOINLINE void *malloc_run_missed(size_t size)
{
	if (likely(run_way_open()))
		return run_or_glibc(size);
	return malloc_slow(size);
}

/* A leaf with tail calls only, as mp_malloc: the pop's miss and the way
 * closed (the trap armed, a handler) go on in malloc_run_missed. */
static NOINLINE void *malloc_run_hop(size_t size)
{
	void *p;
	if (likely(run_way_open()) && likely(run_alloc_hop(size, &p)))
		return p;
	return malloc_run_missed(size);
}

/* route[] says ROUTE_RUN: malloc_run_hop without the tests of the class
 * that route[] made. */
static NOINLINE void *malloc_run_routed(size_t size)
{
	void *p;
	if (likely(run_way_open()) && likely(run_alloc_routed(size, &p)))
		return p;
	return malloc_run_missed(size);
}

/* route[] says ROUTE_TABLE: for pcp-rseq, one try of its inline pop
 * first, which, like bonwick's one-hop path, leaves the trap to
 * malloc_slow (an armed trap closes mp_onehop_span, so that this is not
 * reached) and counts nothing (with statistics on, route[] sends nothing
 * here); otherwise, or if that missed, the design's hop. */
static NOINLINE void *malloc_table_hop(size_t size)
{
#if MP_HAVE_RSEQ
	size_t pages = ((size - 1) >> PAGE_SHIFT) + 1;    /* size >= 1 */
	uint32_t pfn;
	if (pa_onehop[pages] == PA_ONEHOP_PCPR && likely(pcpr_pop_once(pages - 1, &pfn))) {
		struct page_desc *pd = pfn_to_desc(pfn);
		void *p = desc_to_addr(pd);
		pd->npages = (uint32_t)pages;
		pd->flags = PG_ALLOC;       /* no live byte: only bonwick's */
		MP_PROBE4(mm_page_alloc, p, pd->order, PROBE_FROM_CACHE, -1);
		return p;
	}
#endif
	return malloc_design_hop(size);
}

/*
 * route[] gave class k (its array's offset), whose array on this CPU was
 * empty: with cache_borrow and its depot empty too, a block of a larger
 * class from this CPU's arrays, the nearest first (pa_fit_most), as the
 * one-hop path pops (bonwick's
 * borrow does the same with the depot too, on the slow path).  Without
 * it a size whose class a larger one lends to (a program that moved from
 * 64 KiB blocks to 48 KiB ones) would take the slow path on every call,
 * its blocks going home to the larger class at each free: 218 cycles a
 * pair against 35 in a loop.
 */
static NOINLINE void *malloc_borrow_hop(size_t size, uint64_t koff)
{
	size_t pages = koff / BW_KOFF(1) + 1, most = pa_fit_most[pages];
	void *p;
	/* its own depot first, as the slow path's refill takes it */
	if (most == pages || !bw_depot_empty((unsigned)pages - 1))
		return malloc_slow(size);
	for (size_t m = pages + 1; m <= most; m++)
		if (!bw_empty_here((unsigned)m - 1) && pa_alloc_onehop(BW_KOFF(m - 1), &p)) {
			bw_count_borrowed((unsigned)pages - 1);
			return p;
		}
	return malloc_slow(size);
}

/* Larger than the zone's largest block, in process context, with nothing
 * for the slow path to do (mp_glibc_below set: initialised, statistics
 * off, no deferred frees, no trap, no limit): glibc's, with its ENOMEM
 * retry, as malloc_other would end after its tests. */
static NOINLINE void *malloc_large(size_t size)
{
	return fb_malloc(size);
}

/*
 * The fast paths, a leaf with tail calls only:
 *   page-sized: one-hop, size class from a table, one pop, one live byte
 *               written (pa_alloc_onehop); another design's sizes
 *               (ROUTE_TABLE), malloc_table_hop; the waste policy's,
 *               malloc_run_routed (ROUTE_RUN: a run class the hop takes
 *               as it is) or malloc_run_hop (ROUTE_GLIBC); anything
 *               else, malloc_slow;
 *   smaller:    straight to glibc (a compare, and one with this thread's
 *               handler word) unless mp_glibc_below says otherwise;
 *   larger than 4 MiB: glibc's, through malloc_large for the retry, under
 *               the same two tests.
 * mp_onehop_span and mp_glibc_below are 0 until init and while the purge
 * trap is armed (malloc_slow fires it); with statistics on the
 * one-hop table is empty and mp_glibc_below 0, so that everything goes the
 * counting way, malloc_slow.  Sizes the waste policy sends to glibc find
 * ROUTE_GLIBC in route[] (ROUTE_NONE where a slot holds sizes of both
 * kinds) and go there through malloc_slow.
 */
void *mp_malloc(size_t size)
{
	if (likely(size < mp_glibc_below)) {
		if (likely(!mp_tls.word))
			return __libc_malloc(size);
		return malloc_slow(size);
	}
	if (likely(size - zone_lo < mp_onehop_span)) {
		/* threshold <= size <= CACHE_CLASSES pages; threshold >= 1 */
		void *p;
		uint64_t koff = route[(size - 1) >> ROUTE_SHIFT];
		if (likely(pa_alloc_onehop(koff, &p)))
			return p;
		if (koff == ROUTE_RUN)
			return malloc_run_routed(size);
		if (koff < ROUTE_TABLE)
			return malloc_borrow_hop(size, koff);
		if (koff == ROUTE_TABLE)
			return malloc_table_hop(size);
		if (koff == ROUTE_GLIBC)
			return malloc_run_hop(size);
	}
	/* an atomic load, so that the small path's compare keeps its memory
	 * operand (a load into a register shared with this test cost it one
	 * instruction) */
	if (likely(size > MAX_BLOCK_BYTES) &&
	    likely(__atomic_load_n(&mp_glibc_below, __ATOMIC_RELAXED)) && likely(!mp_tls.word))
		return malloc_large(size);
	return malloc_slow(size);
}

static NOINLINE void free_other_slow(void *p)
{
	if (!p)
		return;
	if (unlikely(sigctx_in_irq())) {
		COUNT(sig_free);
		COUNT(sig_deferred);
		fb_defer_free(p);
		return;
	}
	drain_deferred();
	COUNT(fb_foreign);
	__libc_free(p);
}

static inline void free_other(void *p)
{
	if (likely(!mp_tls.word)) {
		/* In process context, outside every cache section: mp_free may
		 * send this thread's pointers below the region to glibc at
		 * once again (sigctx_enter and sigctx_hold close the way). */
		mp_tls.free_below = free_below;
		COUNT(fb_foreign);
		__libc_free(p);     /* free(NULL) included: glibc returns at once */
		return;
	}
	free_other_slow(p);
}

static NOINLINE void free_checked(void *p)
{
	COUNT(free_calls);
	if (likely(zone_owns(p))) {
		/* free() preserves errno: nothing on this path sets it (the
		 * zone's signal masking cannot fail), except bad_pointer. */
		page_free(p, "free");
		return;
	}
	free_other(p);
}

/* mp_free's pointer off a page boundary (or out of the region): a run
 * object but its run's first, mostly; with statistics off, free's slow
 * path is mostly theirs, the rest is free_checked's.  rot: its offset in
 * the region rotated right by a page, as mp_free worked it out (mp_free
 * keeps no copy of the offset, which would cost its page path a move).
 * A leaf with tail calls, as mp_free. */
static NOINLINE void free_unaligned(void *p, uint64_t rot)
{
	uintptr_t off = (rot << PAGE_SHIFT) | (rot >> (64 - PAGE_SHIFT));
	if (likely(off < zg.bytes) && likely(!stats_on) && !mp_tls.word &&
	    likely(run_free_hop(p, off, addr_to_live(p))))
		return;
	free_checked(p);
}

/* Any other pointer free did not take: free_unaligned's way (the run
 * object 0 of a run, page aligned, comes here), which reaches the run hop
 * from one place, so that it stays inline there. */
static NOINLINE void free_slow(void *p)
{
	uintptr_t off = (uintptr_t)p - zg.base;
	free_unaligned(p, (off >> PAGE_SHIFT) | (off << (64 - PAGE_SHIFT)));
}

/* A pcp-rseq push left its list at the high mark: the drain, which
 * reaches the zone from inside the cache, hence the tick, and tells the
 * purge that the caches hold freed memory, as page_release does. */
static NOINLINE void free_hop_drain(unsigned cls)
{
	pcpr_drain_local(cls);
	tick_check();
	purge_free_slow();
}

/* A valid free that bonwick's one-hop path did not take: another design's
 * (pcp-rseq's inline push first, then its hop: mp_free made page_free's
 * checks), a full array, or statistics on (free_slow counts it).  Its
 * PG_ZERO, if any, was stale. */
static NOINLINE void free_hop_missed(void *p, struct page_desc *pd)
{
	if (unlikely(stats_on)) {
		pd->flags = PG_ALLOC;     /* live again: free_slow decides */
		return free_slow(p);
	}
#if MP_HAVE_RSEQ
	uint32_t pages = pd->npages;
	if (pa_freehop[pages] == PA_ONEHOP_PCPR) {
		int r = pcpr_push_once(pd, (uint32_t)addr_to_pfn(p), pages - 1);
		if (likely(r == 1))
			return;
		if (r == 2)
			return free_hop_drain(pages - 1);
	}
#endif
	pd->flags = 0;
	page_release(pd);
}

/* A page-aligned free whose live byte is set but is not one the one-hop
 * free pushes: a run object's page (its run's first object, one free in N,
 * or a bad pointer: free_slow frees or reports it), or a block of several
 * nodes' zones.  The byte is read again (passing it would cost the fast
 * path registers): a run object's may have been cleared meanwhile by its
 * owner's free, so a block is one whose descriptor says PG_CACHED, as a
 * one-hop block's does. */
static NOINLINE void free_live_missed(void *p)
{
	uint8_t *lv = addr_to_live(p);
	unsigned v = __atomic_load_n(lv, __ATOMIC_RELAXED);
	if (v) {
		if (v >= LIVE_RUN)
			return free_slow(p);
		if (MP_PROBE_ENABLED(mm_page_free))
			MP_PROBE2(mm_page_free, p, addr_to_desc(p)->order);
		*lv = 0;
	}
	struct page_desc *pd = addr_to_desc(p);
	if (unlikely(!(pd->flags & PG_CACHED)))
		return free_slow(p);
	free_hop_missed(p, pd);
}

/*
 * The fast paths, a leaf with tail calls only: a pointer below
 * mp_tls.free_below goes to glibc after that one compare (free(NULL)
 * included): the threshold is the region's base, and 0 while this thread
 * runs a handler or holds a cache section, so the compare is the handler
 * test as well; glibc's pointers above the region (rare: mmap fills from
 * the top down, and the region is reserved at start-up) find their way
 * through free_slow.  A zone block whose live byte is set (the one-hop
 * malloc's: the always-on double-free check) goes back to the array the
 * byte names with one byte written and one push; one whose descriptor says
 * PG_ALLOC and whose size the one-hop path caches, with one descriptor
 * write and one push.  Everything else, free_slow.
 */
void mp_free(void *p)
{
	if (likely((uintptr_t)p < mp_tls.free_below))
		return __libc_free(p);
	/* The offset rotated right by a page: the pfn when p is page
	 * aligned, and above every pfn when it is not, so one compare with
	 * the region's page count checks both */
	uintptr_t off = (uintptr_t)p - zg.base;
	uint64_t pfn = (off >> PAGE_SHIFT) | (off << (64 - PAGE_SHIFT));
	if (unlikely(pfn >= zg.pages))
		return free_unaligned(p, pfn);
	/* from p, not pfn: a shift and an add of a constant, no load */
	uint8_t *lv = addr_to_live(p);
	unsigned v1 = *lv - 1u;            /* a clear byte wraps: one compare */
	if (likely(v1 < pa_live_max)) {
		/* the one-hop malloc's block: its live byte says so and which
		 * array it came from; its descriptor is not read (the probe's
		 * order is formed only while a tracer is attached) */
		if (MP_PROBE_ENABLED(mm_page_free))
			MP_PROBE2(mm_page_free, p, addr_to_desc(p)->order);
		if (likely(pa_free_live(lv, v1, pfn)))
			return;
		return free_hop_missed(p, addr_to_desc(p));   /* the array full */
	}
	/* set, but not a byte the one-hop free pushes: a run object's (its
	 * first object is page aligned), or a block's with several nodes */
	if (unlikely(v1 != ~0u))
		return free_live_missed(p);
	struct page_desc *pd = addr_to_desc(p);
	if (likely(pd->flags & PG_ALLOC)) {
		/* Every valid free of a zone block fires here, whichever path
		 * takes it next (free_slow does not), and before the block can
		 * be handed out again, as the kernel's does. */
		MP_PROBE2(mm_page_free, p, pd->order);
		if (likely(pa_free_onehop(pd, pfn)))
			return;
		return free_hop_missed(p, pd);
	}
	free_slow(p);
}

void mp_free_sized(void *p, size_t size)
{
	(void)size;   /* the descriptors know the size; glibc ignores it too */
	mp_free(p);
}

/* ---- fork ------------------------------------------------------------- */

/* In a fork child: event counters restart; the live byte counts are state. */
void malloc_fork_child(void)
{
	for (unsigned s = 0; s < MSTAT_SHARDS; s++)
		for (unsigned i = 0; i < MC_live_requested; i++)
			mshard[s].c[i] = 0;
}
