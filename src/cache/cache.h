/*
 * cache.h — the page caches that front the zone, behind one interface.
 *
 * A cache holds free blocks of 1..2^opt.cache_order pages, in size classes
 * by page count (powers of two only unless opt.cache_exact).  Blocks carry
 * their size in pd->npages.  Process-context
 * callers use cache_alloc/cache_free; signal-handler callers under the
 * "trylock" policy use the _irq variants, which never wait: they return
 * NULL/false and the caller goes to the zone.  Every design reports the same
 * counters (struct cache_counters), so tables compare like with like.
 */
#ifndef MAGPAGE_CACHE_H
#define MAGPAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct page_desc;

#define CACHE_CLASSES 16   /* 1..16 pages */

/*
 * Per cache, per size class, one list (X-macro) in report order: it
 * generates struct cache_counters, the sums over caches (cache_counters_add),
 * the columns of the text report's table, the JSON report's members
 * (stats.c) and the live segment (stats/live.h).  Written under the cache's
 * lock, or per CPU.  X(name, kind, text width, text header); kind count is
 * a uint64_t summed over caches, kind range a pair name_min, name_max of
 * uint32_t extremes (pages per batch), never summed:
 *   allocs        blocks handed out
 *   hits          ... without a refill
 *   frees         blocks taken back
 *   refills       batches moved zone -> cache
 *   refill_pages  pages in them
 *   refill        pages per refill, extremes
 *   drains        batches moved cache -> zone
 *   drain_pages   pages in them
 *   drain         pages per drain, extremes
 *   irq_hits      handler-context trylocks that succeeded
 *   irq_misses    handler-context trylocks that failed
 */
#define CACHE_COUNTERS(X) \
	X(allocs, count, 10, "allocs") X(hits, count, 10, "hits") \
	X(frees, count, 10, "frees") X(refills, count, 8, "refills") \
	X(refill_pages, count, 9, "pages") X(refill, range, 7, "min-max") \
	X(drains, count, 8, "drains") X(drain_pages, count, 9, "pages") \
	X(drain, range, 7, "min-max") X(irq_hits, count, 8, "irq-hit") \
	X(irq_misses, count, 8, "irq-miss")

#define CACHE_FIELD_count(n) uint64_t n;
#define CACHE_FIELD_range(n) uint32_t n##_min, n##_max;
struct cache_counters {
#define X(n, kind, w, h) CACHE_FIELD_##kind(n)
	CACHE_COUNTERS(X)
#undef X
};

/* t += c for every count (ranges are per cache, not summed). */
#define CACHE_ADD_count(n) t->n += c->n;
#define CACHE_ADD_range(n)
static inline void cache_counters_add(struct cache_counters *t, const struct cache_counters *c)
{
#define X(n, kind, w, h) CACHE_ADD_##kind(n)
	CACHE_COUNTERS(X)
#undef X
}

/* What the statistics report shows of one cache. */
struct cache_view {
	uint32_t id;
	uint32_t nr_pages;                 /* pages held now */
	uint32_t nr_blocks[CACHE_CLASSES]; /* blocks held now, per class */
	uint64_t lock_acquired, lock_contended, lock_wait_ns;
	uint64_t trylock_failed;           /* trylocks that failed */
	uint64_t restarts;                 /* pcp-rseq: critical sections restarted */
	struct cache_counters c[CACHE_CLASSES];   /* c[n - 1]: blocks of n pages */
	/* A row that is not one cache: the counts of gone threads that exited
	 * (bonwick's per-thread arrays: merged == gone), or, past the rows the
	 * statistics have room for, the sum of merged caches, the last row
	 * (cache_views).  Both 0 for a row that is one cache. */
	uint32_t merged, gone;
};

/*
 * One design: what the allocator calls, and what the statistics ask of it.
 * Every design has its own file; cache_init copies the chosen design's
 * table into `cache` (a switch would pick the same function; the one-hop
 * path of internal.h, which malloc and free take first, calls bonwick's
 * inline fast path and no table at all).
 */
struct fmt_buf;
struct cache_ops {
	const char *name;         /* as MAGPAGE_CONF's cache key spells it */
	bool irq_safe;            /* handlers may call alloc, free and drain_all:
				     their sections restart under a handler */
	unsigned max_order;       /* the highest order it holds, whatever
				     cache_order asks (the lock designs stop at
				     3, as Linux's per-CPU lists do) */
	bool (*init)(void);       /* false: unusable here (cache_init falls back) */
	struct page_desc *(*alloc)(size_t npages);   /* NULL: go to the zone */
	/* Process context: as alloc, but a class the design has run out of
	 * may be answered with a cached block of up to most pages, which
	 * keeps its size (pd->npages).  NULL: the design always uses alloc. */
	struct page_desc *(*alloc_fit)(size_t npages, size_t most);
	bool (*free)(struct page_desc *pd);          /* false: the caller frees
							it to the zone */
	/* Handler context, for designs that are not irq_safe, under the
	 * "trylock" signal policy: one try, never a wait.  Either NULL. */
	struct page_desc *(*alloc_irq)(size_t npages);
	bool (*free_irq)(struct page_desc *pd);
	void (*free_chain)(struct page_desc *chain); /* linked through next; NULL:
							free one by one */
	size_t (*drain_all)(void);                   /* pages given to the zone */
	/* The decay purge, about once per cache_decay_ms, process context:
	 * the parts of the cache that saw no traffic since the last call give
	 * their blocks to the zone and their capacity returns to its start.
	 * Pages given; NULL: the design keeps what it holds. */
	size_t (*decay)(void);
	unsigned (*count)(void);                     /* caches to view, any number */
	void (*view)(unsigned i, struct cache_view *v);
	/* Optional: every row at once, as cache_views, from one look at
	 * caches that come and go (bonwick's per-thread arrays): with count
	 * and view, a thread made between two calls would shift the rows. */
	unsigned (*views)(struct cache_view *out, unsigned max);
	uint64_t (*depot_pages)(void);  /* free pages held outside the per-CPU
					   caches (bonwick's depot); may be NULL */
	/* Its own statistics, after the common ones (each may be NULL): a
	 * line for cache i, text lines for the whole design, and JSON members
	 * of the "caches" object, each starting with a comma. */
	void (*text_cache)(struct fmt_buf *b, unsigned i, const struct cache_view *v);
	void (*text_design)(struct fmt_buf *b);
	void (*json_design)(struct fmt_buf *b);
	/* Locks in a fixed order after the drain lock (cache.c), before the
	 * zone; the child of _Fork (no atfork handler ran) recovers. */
	void (*fork_prepare)(void);
	void (*fork_parent)(void);
	void (*fork_child)(void);
	void (*fork_recover)(void);
};

extern const struct cache_ops cache_magazine_ops;   /* magazine.c: the RFC's */
extern const struct cache_ops cache_pcp_lock_ops;   /* pcp_lock.c: Linux 6.x */
extern const struct cache_ops cache_pcp_rseq_ops;   /* pcp_rseq.c: Linux 3.9 */
extern const struct cache_ops cache_bonwick_ops;    /* bonwick.c (and bonwick_remote.c): the default */
extern const struct cache_ops cache_none_ops;       /* cache.c: the zone only */

extern struct cache_ops cache;   /* the design in use, from cache_init on */
extern bool cache_enabled;       /* false with cache:none */
extern unsigned cache_kind;      /* enum cache_kind in use (the one-hop table) */

void cache_init(void);
/* Without a region: cache:none, so that what reads or drains the caches
 * (malloc_trim, mallinfo2, the statistics) finds a design to ask. */
void cache_init_none(void);

/* The one rule for handlers: an irq_safe design takes them as they are;
 * another gets them through its _irq entry points (cache_init leaves those
 * NULL unless the signal policy is "trylock"); else the zone. */
static inline struct page_desc *cache_alloc(size_t npages, bool irq)
{
	if (likely(!irq) || cache.irq_safe)
		return cache.alloc(npages);
	return cache.alloc_irq ? cache.alloc_irq(npages) : NULL;
}
/* A block of npages..most pages (most > npages: pagealloc's cache_borrow). */
static inline struct page_desc *cache_alloc_fit(size_t npages, size_t most, bool irq)
{
	if (likely(!irq) && cache.alloc_fit)
		return cache.alloc_fit(npages, most);
	return cache_alloc(npages, irq);
}
static inline bool cache_free(struct page_desc *pd, bool irq)
{
	if (likely(!irq) || cache.irq_safe)
		return cache.free(pd);
	return cache.free_irq ? cache.free_irq(pd) : false;
}
/* A handler never waits for another design's locks: 0 pages then. */
static inline size_t cache_drain_all(bool irq)
{
	return !irq || cache.irq_safe ? cache.drain_all() : 0;
}
static inline size_t cache_decay(void)
{
	return cache.decay ? cache.decay() : 0;
}
/* Process context; what the cache does not take goes to the zone. */
void cache_free_chain(struct page_desc *chain);
static inline const char *cache_name(void)
{
	return cache.name;
}
/* The design's caches (any number: pcp-rseq's and bonwick's CPUs on a
 * large machine, bonwick's threads without rseq). */
static inline unsigned cache_count(void)
{
	return cache.count();
}
/* The rows the statistics show, into out[max] (max >= 1): one per cache,
 * and when there are more than max, the last row sums those from max - 1
 * on.  How many rows. */
unsigned cache_views(struct cache_view *out, unsigned max);
/* n caches, view(i) each, into rows as cache_views says. */
unsigned cache_fold(struct cache_view *out, unsigned max, unsigned n,
		    void (*view)(unsigned i, struct cache_view *v));
/* Every cache summed into one row (zeros if there are none). */
void cache_sum(struct cache_view *sum);
/* The design's cache i alone (the tests' look at one CPU's arrays). */
static inline void cache_view(unsigned i, struct cache_view *v)
{
	cache.view(i, v);
}
static inline uint64_t cache_depot_pages(void)
{
	return cache.depot_pages ? cache.depot_pages() : 0;
}
void cache_fork_prepare(void);
void cache_fork_parent(void);
void cache_fork_child(void);
void cache_fork_recover(void);

/* ---- shared by the designs (cache.c) ----------------------------------- */

/* One global drain at a time: two drainers of an rseq design would both
 * stop and fence a CPU, read the same array and free its blocks twice.
 * Process context waits; a handler only tries (it may have interrupted the
 * holder).  Signals are held back inside, so that a jump out of a handler
 * cannot strand the lock.  False: not taken (a handler, lock busy). */
bool cache_drain_begin(bool irq, uint8_t *was);
void cache_drain_end(uint8_t was);

/* The kernel's IPI for the rseq designs: sets stop in each of the n words
 * of one CPU (stride bytes apart; 32 or 64 bits wide), fences that CPU with
 * membarrier so that a critical section running there restarts and sees
 * the bit, and goes round again while a section that committed in between
 * stored a word without it.  True: the words are the caller's until it
 * clears the bits.  False: no fence (membarrier failed); the bits are
 * cleared again and nothing may be touched. */
struct cache_fences {
	uint64_t fences, fence_ns, remote_drains;    /* atomic */
};
bool cache_stop_cpu(unsigned cpu, void *words, size_t stride, unsigned n, unsigned width,
		    uint64_t stop, struct cache_fences *f);
/* The same for n words anywhere (words[k]: the k-th's address), one fence
 * for them all. */
bool cache_stop_list(unsigned cpu, void *const *words, unsigned n, unsigned width,
		     uint64_t stop, struct cache_fences *f);
/* Register for the fences above; false if the kernel will not. */
bool cache_fence_register(void);

/*
 * An array's trips to its depot, for the capacity tuning that the page
 * caches' arrays (bonwick) and the runs' object arrays share, the way
 * Linux 6.7 tunes the per-CPU lists' high: an array that goes to the depot
 * for the same reason twice in a row (empty, empty, or full, full), having
 * turned from a run of two or more trips for the other reason within its
 * last 8, should hold more.  Traffic one way only (a CPU that frees what
 * others allocate) moves a batch per trip at any capacity, so it does not
 * grow; nor does a lone trip the other way (a consumer's one malloc).
 */
struct cache_tune {
	uint8_t last;           /* 1 = the last trip was a refill, 2 = a spill */
	uint8_t turns;          /* the last 8 trips, newest in bit 0: 1 where
				   the reason changed after a run of 2 or more */
	uint8_t run;            /* trips in a row for the reason last says
				   (saturates at 255) */
};
enum { TUNE_REFILL = 1, TUNE_SPILL = 2 };

/* Records a trip (why: TUNE_REFILL or TUNE_SPILL); true if the array
 * should grow. */
static inline bool cache_tune_trip(struct cache_tune *t, uint8_t why)
{
	uint8_t last = t->last, run = t->run;
	bool turned = last && last != why && run >= 2;
	t->turns = (uint8_t)(t->turns << 1 | turned);
	t->run = last == why ? (uint8_t)(run + (run < 255)) : 1;
	t->last = why;
	return last == why && t->turns;
}

/* The capacity of an array that should grow: twice high, at most max,
 * and at most room more (what the CPU's growth budget has left). */
static inline uint32_t cache_tune_grown(uint32_t high, uint32_t max, uint32_t room)
{
	uint32_t nh = high * 2 < max ? high * 2 : max;
	return nh > high + room ? high + room : nh;
}

/* The last trip was a spill, and none of the last 8 turned: traffic one
 * way (a consumer of another CPU's blocks). */
static inline bool cache_tune_only_spills(const struct cache_tune *t)
{
	return t->last == TUNE_SPILL && !t->turns;
}

/* A block of class cls leaving a cache for the zone, onto *chain (for
 * zone_free_list, which reads pd->npages). */
static inline void chain_for_zone(struct page_desc **chain, struct page_desc *pd, unsigned cls)
{
	pd->flags = 0;
	pd->npages = cls + 1;
	pd->next = *chain;
	*chain = pd;
}

/* Statistics lines shared by designs of one family. */
void cache_text_lock(struct fmt_buf *b, unsigned i, const struct cache_view *v);
void cache_text_restarts(struct fmt_buf *b, unsigned i, const struct cache_view *v);
/* What a row that is not one cache holds (nothing for one that is). */
void cache_text_merged(struct fmt_buf *b, unsigned i, const struct cache_view *v);
void cache_text_fences(struct fmt_buf *b, const struct cache_fences *f);
void cache_json_fences(struct fmt_buf *b, const struct cache_fences *f);

/* bonwick's fast path, inline for the one-hop path (internal.h), and
 * pcp-rseq's for the design hops (malloc.c). */
#include "platform/rseq.h"
#include "cache/bonwick.h"
#include "cache/pcp_rseq.h"

#endif
