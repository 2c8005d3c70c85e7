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

#define CACHE_CLASSES 8    /* 1..8 pages */

/* Per cache, per size class.  Written under the cache's lock. */
struct cache_counters {
	uint64_t allocs;        /* blocks handed out */
	uint64_t hits;          /* ... without a refill */
	uint64_t frees;         /* blocks taken back */
	uint64_t refills;       /* batches moved zone -> cache */
	uint64_t refill_pages;  /* pages in them */
	uint64_t drains;        /* batches moved cache -> zone */
	uint64_t drain_pages;   /* pages in them */
	uint64_t irq_hits;      /* handler-context trylock that succeeded */
	uint64_t irq_misses;    /* handler-context trylock that failed */
	uint32_t refill_min, refill_max;   /* pages per refill, extremes */
	uint32_t drain_min, drain_max;     /* pages per drain, extremes */
};

/* What the statistics report shows of one cache. */
struct cache_view {
	uint32_t id;
	uint32_t nr_pages;                 /* pages held now */
	uint32_t nr_blocks[CACHE_CLASSES]; /* blocks held now, per class */
	uint64_t lock_acquired, lock_contended, lock_wait_ns;
	uint64_t trylock_failed;           /* trylocks that failed */
	uint64_t restarts;                 /* pcp-rseq: critical sections restarted */
	struct cache_counters c[CACHE_CLASSES];   /* c[n - 1]: blocks of n pages */
};

extern bool cache_enabled;    /* false with cache:none */
extern bool cache_irq_safe;   /* pcp-rseq: signal handlers may use it too */
extern unsigned cache_kind;   /* enum cache_kind actually in use */

void cache_init(void);
const char *cache_name(void);
unsigned cache_count(void);
void cache_view(unsigned i, struct cache_view *v);

/* cache/magazine.c */
void mag_init(void);
struct page_desc *mag_alloc(size_t npages);
struct page_desc *mag_alloc_irq(size_t npages);
bool mag_free(struct page_desc *pd);      /* false: give it to the zone */
bool mag_free_irq(struct page_desc *pd);
void mag_free_bulk(struct page_desc **pds, size_t n);
void mag_free_chain(struct page_desc *chain);   /* linked through next */
size_t mag_drain_all(void);
unsigned mag_count(void);
unsigned mag_preferred_of_cpu(int cpu);
void mag_view(unsigned i, struct cache_view *v);
void mag_fork_prepare(void);
void mag_fork_parent(void);
void mag_fork_child(void);
void mag_fork_recover(void);

/* cache/pcp_rseq.c */
bool pcpr_init(void);
unsigned pcpr_count(void);
struct page_desc *pcpr_alloc(size_t npages);
bool pcpr_free(struct page_desc *pd);
size_t pcpr_drain_all(void);
void pcpr_view(unsigned cpu, struct cache_view *v);
void pcpr_global(uint64_t *fences, uint64_t *fence_ns, uint64_t *remote_drains);
void pcpr_fork_prepare(void);
void pcpr_fork_parent(void);
void pcpr_fork_child(void);
void pcpr_fork_recover(void);

/* cache/bonwick.c, fast path in bonwick.h */
#include "platform/rseq.h"
#include "cache/bonwick.h"
bool bw_init(void);
unsigned bw_count(void);
struct page_desc *bw_alloc(size_t npages);
bool bw_free(struct page_desc *pd);
void bw_free_chain(struct page_desc *chain);
size_t bw_drain_all(void);
void bw_view(unsigned i, struct cache_view *v);
void bw_depot_view(unsigned cls, uint64_t *nr, uint64_t *in, uint64_t *out, uint64_t *overflow);
void bw_global(uint64_t *fences, uint64_t *fence_ns, uint64_t *remote_drains);
void bw_fork_prepare(void);
void bw_fork_parent(void);
void bw_fork_child(void);
void bw_fork_recover(void);

/* The dispatch, on the design fixed at start-up; magazine and pcp-lock
 * share magazine.c.  bonwick and pcp-rseq take handlers as they are. */
static inline struct page_desc *cache_alloc(size_t npages)
{
	switch (cache_kind) {
	case CACHE_BONWICK: return bw_alloc(npages);
	case CACHE_PCP_RSEQ: return pcpr_alloc(npages);
	default: return mag_alloc(npages);
	}
}
static inline struct page_desc *cache_alloc_irq(size_t npages)
{
	switch (cache_kind) {
	case CACHE_BONWICK: return bw_alloc(npages);
	case CACHE_PCP_RSEQ: return pcpr_alloc(npages);
	default: return mag_alloc_irq(npages);
	}
}
/* false: the cache did not take it, the caller frees it to the zone */
static inline bool cache_free(struct page_desc *pd)
{
	switch (cache_kind) {
	case CACHE_BONWICK: return bw_free(pd);
	case CACHE_PCP_RSEQ: return pcpr_free(pd);
	default: return mag_free(pd);
	}
}
static inline bool cache_free_irq(struct page_desc *pd)
{
	switch (cache_kind) {
	case CACHE_BONWICK: return bw_free(pd);
	case CACHE_PCP_RSEQ: return pcpr_free(pd);
	default: return mag_free_irq(pd);
	}
}
void cache_free_chain(struct page_desc *chain);  /* one lock hold; linked through next */
size_t cache_drain_all(void);
/* Free pages a design holds outside its per-CPU caches (bonwick's depot). */
uint64_t cache_depot_pages(void);
void cache_fork_prepare(void);
void cache_fork_parent(void);
void cache_fork_child(void);
void cache_fork_recover(void);

#endif
