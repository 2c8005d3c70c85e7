/*
 * bonwick.h — the default page cache's fast path, inline (see bonwick.c for
 * the design).  Included by cache.h; the one-hop path in pagealloc.h uses
 * bw_pop and bw_push directly.
 *
 * Layout of one CPU's (or, without rseq, one thread's) cache, BW_STRIDE
 * bytes apart so that finding a CPU's is a shift:
 *
 *   line 0    hdr[8]: count | high per size class (rseq.h: count's bit 31
 *             is a remote drain's stop mark)
 *   lines 1+  counters per class, restarts
 *   then      slots[8][512]: block pfns, the top of each array is the hottest
 */
#ifndef MAGPAGE_BONWICK_H
#define MAGPAGE_BONWICK_H

#include <stdbool.h>
#include <stdint.h>

#define BW_SLOTS  512           /* array entries per class */
#define BW_STRIDE_SHIFT 15      /* 32 KiB per CPU */

struct bw_hdr {
	uint32_t count;         /* blocks in the array; BW_STOPPED: a remote drain */
	uint32_t high;          /* capacity now, 2 x batch .. max_high */
};

struct bw_counts {
	uint64_t allocs;        /* blocks handed out */
	uint64_t frees;         /* blocks taken back */
	uint64_t refills;       /* array empty: batches fetched */
	uint64_t refill_blocks;
	uint64_t spills;        /* array full: half given away */
	uint64_t spill_blocks;
	uint64_t depot_hits;    /* refills the depot answered */
	uint64_t zone_refills;  /* refills that went to the zone */
	uint8_t last;           /* 1 = the last slow event was a refill, 2 = a spill */
};

struct bw_cpu {
	struct bw_hdr hdr[CACHE_CLASSES];            /* line 0 */
	struct bw_counts c[CACHE_CLASSES];
	uint64_t restarts;                           /* rseq sections restarted */
	uint32_t slots[CACHE_CLASSES][BW_SLOTS] __attribute__((aligned(64)));
};
_Static_assert(sizeof(struct bw_cpu) <= (1u << BW_STRIDE_SHIFT), "a CPU's cache fits its stride");

extern char *bw_base;            /* CPU 0's struct bw_cpu; rseq front end */
extern unsigned bw_nr_cpus;      /* 0 without the rseq front end */
extern __thread struct bw_cpu *bw_mine;   /* per-thread front end */

struct page_desc *bw_alloc_slow(unsigned cls);
bool bw_free_slow(struct page_desc *pd);

static inline struct bw_cpu *bw_cpu_of(unsigned cpu)
{
	return (struct bw_cpu *)(bw_base + ((size_t)cpu << BW_STRIDE_SHIFT));
}

#if MP_HAVE_RSEQ
/* Pops a block of class k from this CPU's array: one restartable
 * sequence.  False: empty, stopped or no usable CPU id: the slow path. */
static inline bool bw_pop_cpu(unsigned k, uint32_t *pfn)
{
	for (;;) {
		struct rseq *rs = rseq_area();
		unsigned cpu = __atomic_load_n(&rs->cpu_id, __ATOMIC_RELAXED);
		if (unlikely(cpu >= bw_nr_cpus))
			return false;
		struct bw_cpu *c = bw_cpu_of(cpu);
		enum rseq_result r = rseq_bw_pop(&c->hdr[k].count, c->slots[k], (int)cpu, pfn);
		if (likely(r == RSEQ_DONE)) {
			c->c[k].allocs++;
			return true;
		}
		if (r != RSEQ_ABORTED)
			return false;
		c->restarts++;
	}
}

static inline bool bw_push_cpu(unsigned k, uint32_t pfn)
{
	for (;;) {
		struct rseq *rs = rseq_area();
		unsigned cpu = __atomic_load_n(&rs->cpu_id, __ATOMIC_RELAXED);
		if (unlikely(cpu >= bw_nr_cpus))
			return false;
		struct bw_cpu *c = bw_cpu_of(cpu);
		enum rseq_result r = rseq_bw_push(&c->hdr[k].count, c->slots[k], (int)cpu, pfn);
		if (likely(r == RSEQ_DONE)) {
			c->c[k].frees++;
			return true;
		}
		if (r != RSEQ_ABORTED)
			return false;
		c->restarts++;
	}
}
#endif

/* This thread's arrays (no rseq): never from a handler, which could have
 * interrupted this very thread in the middle of one. */
static inline struct bw_cpu *bw_thread_cache(void)
{
	if (unlikely((mp_tls.word & 0xffffffffffull) != 0))
		return NULL;
	return bw_mine;
}

/* One block of class k (k + 1 pages), or false: then bw_alloc_slow. */
static inline bool bw_pop(unsigned k, uint32_t *pfn)
{
#if MP_HAVE_RSEQ
	if (likely(bw_nr_cpus))
		return bw_pop_cpu(k, pfn);
#endif
	struct bw_cpu *c = bw_thread_cache();
	if (unlikely(!c) || unlikely(!c->hdr[k].count))
		return false;
	c->c[k].allocs++;
	*pfn = c->slots[k][--c->hdr[k].count];
	return true;
}

/* Takes back a block of class k, or false: then bw_free_slow. */
static inline bool bw_push(unsigned k, uint32_t pfn)
{
#if MP_HAVE_RSEQ
	if (likely(bw_nr_cpus))
		return bw_push_cpu(k, pfn);
#endif
	struct bw_cpu *c = bw_thread_cache();
	if (unlikely(!c) || unlikely(c->hdr[k].count >= c->hdr[k].high))
		return false;
	c->c[k].frees++;
	c->slots[k][c->hdr[k].count++] = pfn;
	return true;
}

#endif
