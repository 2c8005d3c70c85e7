/*
 * bonwick_impl.h — what the default cache's two files share: bonwick.c (a
 * CPU's own path: init, the depot, allocation and free) and
 * bonwick_remote.c (what is done to the caches from outside: global
 * drains, the decay, statistics, fork).  Private to them; everyone else
 * goes through cache.h and bonwick.h.
 */
#ifndef MAGPAGE_BONWICK_IMPL_H
#define MAGPAGE_BONWICK_IMPL_H

#include <pthread.h>

#include "internal.h"

/* Blocks moved per depot or zone trip: the buffer is on the stack of the
 * slow path, which handlers on a small sigaltstack also run (256 bytes). */
#define BW_MAXBUF 64

/* The depot is sharded: one shard per BW_SHARD_CPUS CPUs, up to
 * BW_SHARDS_MAX (or depot_shards of them), each a depot per size class
 * under its own lock.  A CPU
 * gives its spills to its own shard and refills from it first, then from
 * the others, before the zone. */
#define BW_SHARD_CPUS 4
#define BW_SHARDS_MAX 16

/* One size class's depot in one shard: a stack of block pfns under its lock. */
struct bw_depot {
	struct mp_lock lock;
	uint32_t nr;            /* blocks on the stack */
	uint32_t low;           /* the fewest since the last decay: the bottom
				   low blocks sat unused all that time */
	uint32_t cap;           /* at most */
	uintptr_t holder;       /* mp_self_mark() of the thread holding lock, 0
				   while free (bw_depot_lock) */
	uint32_t *pfns;         /* cap entries */
	uint32_t run;           /* blocks offered since the last take (kept or
				   not): a spill run nobody has claimed */
	uint32_t claimed;       /* the longest run a take ended lately (an
				   eighth less at each take); bw_depot_put */
	uint64_t in, out, overflow;   /* blocks taken in, given out, sent to the zone */
	uint64_t unclaimed;     /* of overflow: refused for a run too long */
} cacheline_aligned;

/* The per-thread front end (no rseq): a thread's arrays, on a list. */
struct bw_thread {
	struct bw_cpu cache;    /* first: bw_mine points here */
	struct bw_thread *next, *prev;
};

extern unsigned bw_ncpus;                   /* os.ncpus() at init */
extern bool bw_rseq;                        /* per-CPU front end; else per thread */
extern unsigned bw_shards;                  /* depot shards in use, 1..BW_SHARDS_MAX */
extern struct bw_depot bw_depots[BW_SHARDS_MAX][CACHE_CLASSES];
extern uint32_t bw_batch[CACHE_CLASSES];    /* blocks per refill; high starts at 2x */
extern struct cache_fences bw_fenced;       /* remote drains' membarrier fences */
extern uint64_t bw_decayed;                 /* atomic: pages bw_decay gave the zone */
extern pthread_key_t bw_thread_key;         /* per-thread front end: flush at exit */
extern struct mp_lock bw_threads_lock;      /* guards the thread list */
extern struct bw_thread *bw_threads;        /* per-thread front ends, for the stats */
/* Per-thread front end: what the threads that exited counted, added as
 * each exits (thread_exit), under bw_threads_lock; for the stats. */
extern struct bw_counts bw_gone[CACHE_CLASSES];
extern uint32_t bw_gone_threads;

#define my_cache ((struct bw_thread *)bw_mine)

/* ---- bonwick.c ---- */
/* Locks a depot with signals held back; a handler only tries.
 * False: not taken.  *was: for bw_depot_unlock. */
bool bw_depot_lock(struct bw_depot *d, bool irq, uint8_t *was);
void bw_depot_unlock(struct bw_depot *d, uint8_t was);
/* Up to want blocks from depot d into buf; how many.  claim: a refill's
 * take, which ends the run of spills (bw_depot_put); a drain's does not. */
unsigned bw_depot_take(struct bw_depot *d, uint32_t *buf, unsigned want, bool irq,
		       bool claim);
/* Gives n blocks of k+1 pages to depot d; what it does not keep (no room,
 * or an unclaimed run: bonwick.c, depot_keeps) goes to the zone. */
void bw_depot_put(struct bw_depot *d, unsigned k, const uint32_t *buf, unsigned n, bool irq);
/* Where CPU 0's arrays start in their mapping: the first multiple of 64
 * below a page where the class header lines that share a page offset with
 * what the n spans in hot (the one-hop path's globals) give their calls to
 * read, or with a page's first or last line, are the cheapest. */
size_t bw_header_offset(const struct mp_span *hot, unsigned n);
/* n blocks of k+1 pages, by pfn, back to the zone. */
void bw_free_pfns(const uint32_t *pfns, unsigned n, unsigned k);

/* ---- bonwick_remote.c: the ops the cache table names ---- */
size_t bw_drain_all(void);
size_t bw_decay(void);
unsigned bw_count(void);
void bw_view(unsigned i, struct cache_view *v);
unsigned bw_views(struct cache_view *out, unsigned max);
void bw_text_row(struct fmt_buf *b, unsigned i, const struct cache_view *v);
uint64_t bw_depot_pages(void);
void bw_text(struct fmt_buf *b);
void bw_json(struct fmt_buf *b);
void bw_fork_prepare(void);
void bw_fork_parent(void);
void bw_fork_child(void);
void bw_fork_recover(void);

#endif
