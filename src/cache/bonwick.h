/*
 * bonwick.h — the default page cache's fast path, inline (see bonwick.c for
 * the design).  Included by cache.h; the one-hop path in pagealloc.h uses
 * bw_pop and bw_push directly.
 *
 * Layout of one CPU's (or, without rseq, one thread's) cache, BW_STRIDE
 * bytes apart so that finding a CPU's is a shift:
 *
 *   per class  a line with count | top | high (rseq.h: count's bit 31 is a
 *              remote drain's stop mark; top a copy of the top slot for
 *              the sections' pop), then slots[496], block pfns, the top of
 *              the array the hottest; 2,304 bytes a class (struct bw_class)
 *   then       counters per class, restarts
 */
#ifndef MAGPAGE_BONWICK_H
#define MAGPAGE_BONWICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BW_SLOTS  496           /* array entries per class */
#define BW_STRIDE_SHIFT 16      /* 64 KiB per CPU */

struct bw_hdr {
	uint32_t count;         /* blocks in the array; BW_STOPPED: a remote drain */
	uint32_t top;           /* slots[count - 1] while count > 0, stored with count
				   by the rseq sections, whose pop returns it (rseq.h):
				   anything else that writes count must store 0,
				   BW_STOPPED, or the count it found with the slots
				   untouched; the per-thread front end neither reads
				   nor keeps it */
	uint32_t high;          /* capacity now, 2 x batch .. max_high */
	uint32_t spare;
};
_Static_assert(offsetof(struct bw_hdr, top) == 4 && offsetof(struct bw_hdr, high) == 8,
	       "rseq.h: count and top in one 8-byte word, high at +8");

struct bw_counts {
	uint64_t allocs;        /* blocks handed out (the fast path's only with
				   stats on) */
	uint64_t frees;         /* blocks taken back (likewise) */
	uint64_t refills;       /* array empty: batches fetched */
	uint64_t refill_blocks;
	uint64_t spills;        /* array full: half given away */
	uint64_t spill_blocks;
	uint64_t depot_hits;    /* refills the depot answered */
	uint64_t zone_refills;  /* refills that went to the zone */
	uint64_t borrowed;      /* allocations given a block of a larger class
				   (cache_borrow; the slow path's are in allocs
				   too, malloc's miss path's are not) */
	struct cache_tune tune; /* the array's trips to the depot (tune) */
};

/*
 * One size class of one CPU: its header line, then its array, so that the
 * sections address the array from the header (one register fewer).  A
 * class is 9 x 256 bytes, not 2 KiB: a class's header line and the
 * first lines of its array (its top while the count is small) then sit at
 * page offsets of their own, 256 bytes from the next class's, instead of
 * 8 classes' sharing the same few of the L1's 64 sets (an 8-way set held 8
 * headers and 8 array tops, each evicting the others, and the program's
 * page-aligned data lands on the same sets).
 * Random 4-64 KiB blocks (bench_xthread -m random, 16 classes in use)
 * ran 3.6% faster; the offset costs free one instruction, a lea.
 */
struct bw_class {
	struct bw_hdr h;                             /* line 0 of the class */
	uint32_t pad[12];
	uint32_t slots[BW_SLOTS];                    /* at h + 64 bytes */
	uint32_t spread[64];                         /* to 9 x 256 bytes: never
							used (4 KiB a CPU) */
};
_Static_assert(offsetof(struct bw_class, slots) == 64, "rseq.h: the array follows the header line");
_Static_assert(offsetof(struct bw_class, pad) + sizeof(((struct bw_class *)0)->pad) == 64,
	       "rseq.h: the line's word at +60, read as the top below slot 0, is padding");
_Static_assert(sizeof(struct bw_class) == 9 * 256,
	       "a lea and a shift from the class, and 16 page offsets for 16 classes");
/* Class k's array as an offset in a CPU's cache: what the one-hop
 * sections add to the CPU's base. */
#define BW_KOFF(k) ((uint64_t)(k) * sizeof(struct bw_class))

struct bw_cpu {
	struct bw_class cls[CACHE_CLASSES];
	struct bw_counts c[CACHE_CLASSES];
	uint64_t restarts;                           /* rseq sections restarted */
	uint64_t decay_seen;                         /* bw_decay: traffic last time */
};
_Static_assert(sizeof(struct bw_cpu) <= (1u << BW_STRIDE_SHIFT), "a CPU's cache fits its stride");

extern char *bw_base;            /* CPU 0's struct bw_cpu; rseq front end */
extern uint64_t bw_base_less1;   /* bw_base - BW_KOFF(1): bw_push_once's base */
extern unsigned bw_nr_cpus;      /* 0 without the rseq front end */
#define bw_mine (*(struct bw_cpu **)&mp_tls.bw_mine)   /* per-thread front end */


static inline struct bw_cpu *bw_cpu_of(unsigned cpu)
{
	return (struct bw_cpu *)(bw_base + ((size_t)cpu << BW_STRIDE_SHIFT));
}

#if MP_HAVE_RSEQ
/*
 * The one-hop path's pop and push: one try of one restartable sequence on
 * this CPU's array of the class at offset koff (BW_KOFF; rseq_bw_pop_at:
 * the section reads the CPU id itself), at the rseq offset the build
 * recorded, which pa_init checked before it let sizes here.  False:
 * empty, full, stopped, restarted, or no usable CPU id (cpu_id is >=
 * bw_nr_cpus without a registration, and bw_nr_cpus is 0 without the rseq
 * front end): the caller tries the per-thread front end, which finds no
 * cache with the rseq one running, then its slow path, whose own sections
 * retry a restart and count it (bw_pop_cpu; a restart here is not
 * counted).  No retry loop here, so that nothing needed only by a retry
 * stays live across the section.
 * *at: the CPU whose array gave the block (the tracepoint's).
 */
static inline bool bw_pop_once(uint64_t koff, uint64_t *pfn, int *at)
{
	uint32_t cpu;
	if (likely(rseq_bw_pop_built((uint64_t)bw_base, koff, &bw_nr_cpus, pfn, &cpu) ==
		   RSEQ_DONE)) {
		*at = (int)cpu;
		return true;
	}
	return false;
}

/* The push takes the class by its page count (class pages - 1): its
 * offset, BW_KOFF(pages) from a base one class lower, is then a lea and a
 * shift of the descriptor's npages, which free loads last. */
static inline bool bw_push_once(uint64_t pages, uint32_t pfn)
{
	return likely(rseq_bw_push_built(bw_base_less1, BW_KOFF(pages), &bw_nr_cpus, pfn) ==
		      RSEQ_DONE);
}

/* The same push by the array's offset (a live byte's, zone.h). */
static inline bool bw_push_koff(uint64_t koff, uint32_t pfn)
{
	return likely(rseq_bw_push_built((uint64_t)bw_base, koff, &bw_nr_cpus, pfn) == RSEQ_DONE);
}

/* The arrays of the CPU this thread is on now, NULL without a usable CPU
 * id (or the rseq front end): for counters and hints, outside any
 * section (a migration may follow at once). */
static inline struct bw_cpu *bw_cpu_here(void)
{
	uint32_t cpu = rseq_cpu_id();
	return cpu < bw_nr_cpus ? bw_cpu_of(cpu) : NULL;
}

/* A section restarted: counted on the CPU the thread is on now. */
static inline void bw_count_restart(void)
{
	struct bw_cpu *c = bw_cpu_here();
	if (c)
		c->restarts++;
}

/* The slow paths' pop: bw_pop_once's section, retrying a restart
 * (counted), and counting the block on the CPU that gave it when count
 * says so. */
static inline bool bw_pop_cpu(unsigned k, uint64_t *pfn, bool count)
{
	for (;;) {
		uint32_t cpu;
		enum rseq_result r = rseq_bw_pop_here((uint64_t)bw_base, BW_KOFF(k), &bw_nr_cpus,
						      pfn, &cpu);
		if (likely(r == RSEQ_DONE)) {
			if (count)
				bw_cpu_of(cpu)->c[k].allocs++;
			return true;
		}
		if (r != RSEQ_ABORTED)
			return false;
		bw_count_restart();
	}
}

/* 1: pushed; 0: full or stopped; -1: no usable CPU id (as bw_pop_cpu).
 * The count goes to the CPU read before the section: a migration between
 * the two miscounts one, as the counters allow. */
static inline int bw_push_cpu(unsigned k, uint32_t pfn, bool count)
{
	for (;;) {
		uint32_t cpu = rseq_cpu_id();
		if (unlikely(cpu >= bw_nr_cpus))
			return -1;
		enum rseq_result r = rseq_bw_push_here((uint64_t)bw_base, BW_KOFF(k), &bw_nr_cpus,
						       pfn);
		if (likely(r == RSEQ_DONE)) {
			if (count)
				bw_cpu_of(cpu)->c[k].frees++;
			return 1;
		}
		if (r != RSEQ_ABORTED)
			return 0;
		bw_count_restart();
	}
}
#endif

/* This thread's arrays (no rseq): never from a handler, which could have
 * interrupted this very thread in the middle of one. */
static inline struct bw_cpu *bw_thread_cache(void)
{
	if (unlikely(mp_tls.word != 0))
		return NULL;
	return bw_mine;
}

/* One block of the class whose array is at koff (BW_KOFF) in c, a
 * thread's arrays, or false.  The offset, as the one-hop path has it: the
 * array's slots are then one addressing mode away. */
static ALWAYS_INLINE bool bw_pop_array(struct bw_cpu *c, uint64_t koff, uint64_t *pfn,
					bool count)
{
	struct bw_class *cl = (struct bw_class *)((char *)c + koff);
	uint32_t n = cl->h.count;
	if (unlikely(!n))
		return false;
	if (count)
		c->c[koff / BW_KOFF(1)].allocs++;
	cl->h.count = --n;
	*pfn = cl->slots[n];
	return true;
}

/* The per-thread front end (no rseq): this thread's arrays, never from a
 * handler (bw_thread_cache). */
static ALWAYS_INLINE bool bw_pop_thread(uint64_t koff, uint64_t *pfn, bool count)
{
	struct bw_cpu *c = bw_thread_cache();
	if (unlikely(!c))
		return false;
	return bw_pop_array(c, koff, pfn, count);
}

static ALWAYS_INLINE bool bw_push_thread(uint64_t koff, uint32_t pfn, bool count)
{
	struct bw_cpu *c = bw_thread_cache();
	if (unlikely(!c))
		return false;
	struct bw_class *cl = (struct bw_class *)((char *)c + koff);
	uint32_t n = cl->h.count;
	if (unlikely(n >= cl->h.high))
		return false;
	if (count)
		c->c[koff / BW_KOFF(1)].frees++;
	cl->slots[n] = pfn;
	cl->h.count = n + 1;
	return true;
}

/* A hint, without a section: is class k's array on this CPU empty (or
 * stopped)?  False when it cannot tell (the per-thread front end). */
static inline bool bw_empty_here(unsigned k)
{
#if MP_HAVE_RSEQ
	struct bw_cpu *c = bw_cpu_here();
	if (c)
		return (int32_t)__atomic_load_n(&c->cls[k].h.count, __ATOMIC_RELAXED) <= 0;
#endif
	(void)k;
	return false;
}

/* Has class k's depot no block (bonwick.c)?  A hint, without its locks. */
bool bw_depot_empty(unsigned k);

/* An allocation of class k given a larger class's block (cache_borrow):
 * counted on this CPU, or thread (a migration miscounts one). */
static inline void bw_count_borrowed(unsigned k)
{
	struct bw_cpu *c = NULL;
#if MP_HAVE_RSEQ
	c = bw_cpu_here();
#endif
	if (!c)
		c = bw_thread_cache();
	if (c)
		c->c[k].borrowed++;
}

/*
 * One block of class k (k + 1 pages), or false: then the slow path
 * (bonwick.c).  count: add it to the statistics (the fast paths count only
 * with MAGPAGE_CONF stats on, and then they are not taken).  Both front
 * ends are tried, without a test of which one runs: the rseq one's CPU-id
 * bound fails when bw_nr_cpus is 0, and the per-thread one has no cache
 * (bw_mine NULL) while the rseq one runs.
 */
static inline bool bw_pop(unsigned k, uint64_t *pfn, bool count)
{
#if MP_HAVE_RSEQ
	if (likely(bw_pop_cpu(k, pfn, count)))
		return true;
#endif
	return bw_pop_thread(BW_KOFF(k), pfn, count);
}

/* Takes back a block of class k, or false: then the slow path (bonwick.c). */
static inline bool bw_push(unsigned k, uint32_t pfn, bool count)
{
#if MP_HAVE_RSEQ
	int r = bw_push_cpu(k, pfn, count);
	if (likely(r >= 0))
		return r;
#endif
	return bw_push_thread(BW_KOFF(k), pfn, count);
}

#endif
