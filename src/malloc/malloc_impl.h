/*
 * malloc_impl.h — what the malloc front end's two files share: malloc.c
 * (size routing, the fast paths, malloc and free, the zone and glibc
 * sides) and family.c (calloc, realloc, the aligned entry points,
 * malloc_usable_size, magpage_free_bulk).  Private to them; everyone else
 * goes through internal.h.
 */
#ifndef MAGPAGE_MALLOC_IMPL_H
#define MAGPAGE_MALLOC_IMPL_H

#include "internal.h"
#include "malloc/fallback.h"

/* ---- counters (MAGPAGE_CONF stats), per CPU shard ---- */
enum {
#define X(n) MC_##n,
	MALLOC_COUNTERS(X)
#undef X
	MC_live_requested,
	MC_live_held,
	MC_COUNT
};

struct mstat_shard {
	uint64_t c[MC_COUNT];
} cacheline_aligned;

#define MSTAT_SHARDS 16
extern struct mstat_shard mshard[MSTAT_SHARDS];   /* summed by malloc_stats_read */
#define stats_on mp_stats_on

static inline void count(unsigned idx, uint64_t n)
{
	if (unlikely(stats_on))
		__atomic_add_fetch(&mshard[cpu_current() & (MSTAT_SHARDS - 1)].c[idx], n,
				   __ATOMIC_RELAXED);
}
#define COUNT(name) count(MC_##name, 1)

/* ---- size routing (malloc.c sets these at init) ---- */
/* Sizes s with s - zone_lo < zone_span go to the zone.  Both stay 0 until
 * initialisation has reserved a region, so that nothing reaches the zone
 * early, and the first page-sized request takes the slow path into init. */
extern size_t zone_lo, zone_span;
extern size_t waste_max;      /* opt.waste_max, set at init; 100 sends nothing away */
extern size_t glibc_below;    /* what mp_glibc_below returns to once drained */

static inline size_t pages_of(size_t size)
{
	return size ? (size + PAGE_SIZE - 1) >> PAGE_SHIFT : 1;
}

/*
 * The waste policy: a request of n > 1 pages' worth of bytes is served as n
 * whole pages only if what they waste, n * 4096 - size, is at most
 * waste_max percent of them.  With waste_max:25 the smallest sizes kept
 * are 6144 (2 pages), 9216 (3), 12289 (4); one-page requests are
 * threshold's business.
 */
static inline bool waste_ok(size_t size)
{
	size_t held = pages_of(size) << PAGE_SHIFT;
	return size <= PAGE_SIZE || (held - size) * 100 <= waste_max * held;
}

/* In the zone's range: threshold .. 4 MiB, once initialised. */
static inline bool zone_range(size_t size)
{
	return size - zone_lo < zone_span;
}

/* Served by the zone in process context: in range and not sent away by
 * the waste policy.  Handlers take any size in range (handler_alloc). */
static inline bool zone_size(size_t size)
{
	return zone_range(size) && waste_ok(size);
}

/* After a call into pagealloc, outside every lock: a zone call found the
 * purge driver's tick due. */
static inline void tick_check(void)
{
	if (unlikely(__atomic_load_n(&zone_tick_pending, __ATOMIC_RELAXED)))
		purge_tick();
}

/* The small bound found closed (by the purge trap, or by a handler's
 * deferred free): opened, and the trap fired if it is armed. */
void malloc_bound_reopen(void);

/* A process-context call of the malloc family that leaves the fast paths:
 * the frees handlers deferred are made. */
static inline void drain_deferred(void)
{
	/* the bound first, then the list (fb_defer_free pushes, then stores
	 * 0): a block pushed after the look leaves the bound 0 */
	if (unlikely(__atomic_load_n(&mp_glibc_below, __ATOMIC_RELAXED) != glibc_below))
		malloc_bound_reopen();
	if (unlikely(__atomic_load_n(&fb_deferred_head, __ATOMIC_SEQ_CST) != NULL))
		count(MC_sig_deferred_drained, fb_drain_deferred());
}

/* The descriptor of p (inside the region) if p starts a live zone
 * allocation, else NULL; the caller takes the block on (live_claim). */
static inline struct page_desc *live_desc(void *p)
{
	struct page_desc *pd = pfn_to_desc(addr_to_pfn(p));
	live_claim(p, pd);      /* a run object's too: the caller may look at it */
	if (unlikely((uintptr_t)p & (PAGE_SIZE - 1)))
		return NULL;
	if (unlikely(!(__atomic_load_n(&pd->flags, __ATOMIC_RELAXED) & PG_ALLOC)))
		return NULL;
	return pd;
}

/* ---- malloc.c ---- */
/* What malloc promises (alignof(max_align_t)), and page_alloc's align for
 * the calls that ask for no more. */
#define MALLOC_ALIGN 16
/* size bytes as whole pages, aligned to align (a power of two; the zone's
 * blocks are page aligned whatever it is), zeroed if zero; NULL (errno
 * ENOMEM) or glibc's answer, aligned to align, when the zone is
 * exhausted. */
void *page_alloc(size_t size, size_t align, bool zero);
/* A request glibc would serve, made in a signal handler: the zone's. */
void *handler_alloc(size_t size, bool zero);
/* Why glibc serves a process-context request (statistics). */
void count_fallback(size_t size);
/* An invalid or double free: reported, then abort or ignore (on_invalid). */
void bad_pointer(const char *fn, void *p, const struct page_desc *pd)
	__attribute__((__cold__));
/* A live zone block freed: the statistics' live counts. */
void account_free(const struct page_desc *pd);
/* An invalid or double free, for the reason given. */
void bad_pointer_why(const char *fn, void *p, const char *why) __attribute__((__cold__));

/* ---- runs.c ---- */
extern bool runs_on;             /* opt.runs, and a region */
void runs_init(bool zone_ok);
/* The run class serving size bytes (a size the waste policy turns away),
 * or -1: glibc's. */
int run_class_of(size_t size);
size_t run_object_size(int cls);
/* An object of class cls (all of it zeroed if zero), or NULL:
 * no run to be had.  Process context. */
void *run_alloc(int cls, bool zero);
/* The one-hop path's: an object from this CPU's array into *out, or false
 * (then run_alloc's way).  Statistics off, process context. */
bool run_alloc_hop(size_t size, void **out);
/* May route[] send the sizes lo..hi to run_alloc_routed: the hop for
 * sizes whose class it need not check. */
bool run_route_ok(size_t lo, size_t hi);
bool run_alloc_routed(size_t size, void **out);
/* p, in a page whose descriptor pd has PG_RUN: freed, or reported (fn
 * names the call) if it is not a live object's start. */
void run_free(void *p, struct page_desc *pd, const char *fn);
/* free's try for p, at off (< zg.bytes) in the region, its page's live
 * byte at lv: true if p was a live run object's start, now freed.
 * Statistics off, process context. */
bool run_free_hop(void *p, uintptr_t off, uint8_t *lv);
/* p's object bytes, or 0 if p is not a live object's start. */
size_t run_usable_size(void *p, struct page_desc *pd);
/* p's class, or -1 if p is not a live object's start (why says how). */
int run_class_of_object(void *p, struct page_desc *pd, const char **why);

/* The run class malloc gives a size in process context: a size in the
 * zone's range that the waste policy turns away, if a class fits; else -1
 * (whole pages, or glibc). */
static inline int run_size(size_t size)
{
	return zone_range(size) && !waste_ok(size) ? run_class_of(size) : -1;
}

void *run_exhausted(size_t n, size_t m, bool zero);

/* A size (n x m, checked) the waste policy turns away, as a run object if
 * a class fits: true, *p the object, or run_exhausted's answer where the
 * zone could not make a run.  False: no class fits (glibc's). */
static inline bool run_try(size_t n, size_t m, bool zero, void **p)
{
	int cls = run_size(n * m);
	if (cls < 0)
		return false;
	*p = run_alloc(cls, zero);
	if (unlikely(!*p))
		*p = run_exhausted(n, m, zero);
	return true;
}

#endif
