/*
 * zone.h — the zone: one reserved region of 4 KiB pages, a descriptor per
 * page (the struct page analogue) and the buddy free areas.
 */
#ifndef MAGPAGE_ZONE_H
#define MAGPAGE_ZONE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Page descriptor flags.  Only the head (first page) of a block carries
 * them; every other descriptor of the block is stale and ignored.
 *   PG_BUDDY   free block on the zone's free_area[order] list
 *   PG_CACHED  free block held by a page cache, or one the one-hop malloc
 *              handed out (its live byte set: below)
 *   PG_ALLOC   first page of a live allocation of npages pages that a
 *              path other than the one-hop malloc handed out
 *   PG_ZERO    with any of the above: the block's contents are known zero
 *              (never used, or purged with MADV_DONTNEED)
 *   PG_ADVISED with PG_BUDDY: purged with MADV_FREE: not resident once the
 *              kernel has reclaimed it, but it may read back its old
 *              contents, so not known zero
 *   PG_RUN     a page where an object of a run starts (malloc/runs.c),
 *              the run's first page included: the run is a held block
 *              whose head never carries PG_ALLOC
 *   PG_RUN_LIVE with PG_RUN: the object that starts in this page is the
 *              program's (not free in its run, nor in a CPU's cache of
 *              objects): free's check, as PG_ALLOC is for blocks, where
 *              the page's live byte does not say so (below)
 * A free block with PG_ZERO or PG_ADVISED is "clean": nothing to purge.
 * The others on the free lists are "dirty": they hold memory the process
 * touched and may give back (the decay purge, zone_purge_aged).
 * Invariant: a descriptor heads a live allocation iff it carries PG_ALLOC
 * or its page's live byte is a block's (never both); a live run object
 * starts in its page iff it carries PG_RUN_LIVE or the byte is a run
 * object's (never both): which is what lets free() reject interior and
 * double frees. */
enum {
	PG_BUDDY = 1,
	PG_CACHED = 2,
	PG_ALLOC = 4,
	PG_ZERO = 8,
	PG_ADVISED = 16,
	PG_RUN = 32,
	PG_RUN_LIVE = 64,
	PG_CLEAN = PG_ZERO | PG_ADVISED,
};

struct page_desc {
	struct page_desc *next;  /* free list or cache list; guarded by its lock */
	struct page_desc *prev;  /* ditto (NULL at the head of a list) */
	uint32_t npages;         /* PG_ALLOC: pages held; PG_CACHED: block size */
	uint8_t order;           /* PG_BUDDY: order of the free block;
				    PG_ALLOC, PG_CACHED: ceil(log2(npages)),
				    kept by pagealloc for the tracepoints */
	uint8_t flags;           /* PG_*; PG_ALLOC is cleared atomically by free */
	uint16_t owner;          /* PG_CACHED: which cache holds it */
	uint64_t req_bytes;      /* PG_ALLOC: bytes the program asked for */
	uint32_t pcp_next;       /* pcp-rseq lists: pfn of the next block */
	uint32_t reserved32;
	uint64_t freed_ns;       /* PG_BUDDY, dirty: when it was freed (coarse
				    clock); never decreases from the tail of
				    its dirty list to the head; zone lock */
	uint64_t reserved[2];    /* keeps one descriptor per cache line, as
				    struct page is: CPUs that share pages
				    bounce these lines, as in the kernel */
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct page_desc) == 64, "one descriptor per cache line");

/* Read-mostly geometry, written by zone_init; bytes and pages only ever
 * shrink after that, under the zone lock, to no less than the frontier
 * (zone_give_back), so the answer of zone_owns never changes for a pointer
 * the zone has handed out. */
struct zone_geom {
	uintptr_t base;            /* first byte of the region, 4 MiB aligned */
	uintptr_t bytes;           /* region size; 0 when there is no region */
	struct page_desc *descs;   /* descriptor array, one per page */
	uint64_t pages;            /* bytes >> PAGE_SHIFT, a multiple of 1024 */
	uint64_t node_pages;       /* pages of each node's part but the last
				      (which runs to the end); a multiple of
				      1024; 0 with one zone */
	uint32_t nodes;            /* zones, one per node: 1..NUMA_MAX_NODES */
} __attribute__((aligned(64)));
extern struct zone_geom zg;

static inline bool zone_owns(const void *p)
{
	return (uintptr_t)p - zg.base < zg.bytes;
}
static inline uint64_t addr_to_pfn(const void *p)
{
	return ((uintptr_t)p - zg.base) >> 12;
}
static inline struct page_desc *pfn_to_desc(uint64_t pfn)
{
	return zg.descs + pfn;
}
/*
 * Where the descriptors live: a page's at DESC_VMEMMAP + its address / 64
 * (region.c maps them there), as the kernel's vmemmap puts struct page at
 * a fixed virtual address.  User addresses are below 2^47, so the
 * descriptors fall in [2^44, 2^44 + 2^41): far from where mmap places
 * things (top down from 2^47), and, for a region above 128 GiB (where
 * mmap puts it), above AddressSanitizer's shadow, which ends just past
 * 2^44 (region.c takes another region where something holds the place).
 */
#define DESC_VMEMMAP ((uintptr_t)1 << 44)

/* p page aligned and inside the region (the caller has checked both): a
 * shift and an add of a constant, no load, where pfn_to_desc(addr_to_pfn())
 * takes four steps and a load. */
static inline struct page_desc *addr_to_desc(const void *p)
{
	_Static_assert(sizeof(struct page_desc) << (PAGE_SHIFT - 6) == PAGE_SIZE,
		       "a descriptor per page: 64 bytes for 4 KiB");
	return (struct page_desc *)(((uintptr_t)p >> (PAGE_SHIFT - 6)) + DESC_VMEMMAP);
}
/*
 * The one-hop live bytes: a byte per page at LIVE_VMEMMAP + its address /
 * 4096 (region.c maps them beside the descriptors, in [2^44 + 2^42,
 * + 2^35)), dense where the descriptors take a cache line a page, so that
 * the one-hop path's malloc and free touch no descriptor.  From 1 to
 * LIVE_BLOCK_MAX: the page heads a block that bonwick's one-hop malloc
 * handed out and nothing has freed since, the byte being the offset of the
 * array it came from (BW_KOFF, a multiple of 256) / 256 + 1; its
 * descriptor still says PG_CACHED, as when it sat in the array.  LIVE_RUN
 * and up (internal.h): a live object of a run starts in the page, the
 * byte being LIVE_RUN + its class (malloc/runs.c); the descriptor says
 * PG_RUN alone.  Zero for every other page: a block any other path handed
 * out carries PG_ALLOC in its descriptor instead (an object,
 * PG_RUN_LIVE).  So a live zone block is one with its live byte set or its
 * PG_ALLOC; free clears the byte and pushes the block back to that array,
 * and the slow paths that take a block or object on (realloc,
 * malloc_usable_size, free_bulk, a bad free's checks) first turn the byte
 * into the flag (live_claim).  64 pages' bytes share a cache line: CPUs
 * that take and free neighbouring pages share it, where each page had a
 * descriptor line.
 */
#define LIVE_VMEMMAP (DESC_VMEMMAP + ((uintptr_t)1 << 42))

static inline uint8_t *addr_to_live(const void *p)
{
	return (uint8_t *)(((uintptr_t)p >> PAGE_SHIFT) + LIVE_VMEMMAP);
}

static inline uint64_t desc_pfn(const struct page_desc *pd)
{
	return (uint64_t)(pd - zg.descs);
}
static inline void *desc_to_addr(const struct page_desc *pd)
{
	return (void *)(zg.base + (desc_pfn(pd) << 12));
}

/* The node (zone index) whose part of the region holds pfn: the parts are
 * contiguous, so it is derived from the address (slow paths only). */
static inline unsigned zone_node_of_pfn(uint64_t pfn)
{
	if (__builtin_expect(zg.nodes <= 1, 1))
		return 0;
	uint64_t n = pfn / zg.node_pages;
	return n < zg.nodes ? (unsigned)n : zg.nodes - 1;
}

/* Links an array of descriptors into a chain through next (bulk frees). */
static inline struct page_desc *desc_chain(struct page_desc **pds, size_t n)
{
	struct page_desc *chain = NULL;
	while (n--) {
		pds[n]->next = chain;
		chain = pds[n];
	}
	return chain;
}

/*
 * The zone's event counters, one list (X-macro): it generates the fields of
 * struct zone (zone.c, under the zone lock) and of struct zone_info, the
 * copy zone_info makes, the reset in a fork child, the JSON report's
 * members (stats.c) and the live segment (stats/live.h).  X(field, json):
 *   allocs        blocks handed out, any path
 *   frees         blocks taken back, any path
 *   batches       refills served (zone_take_batch)
 *   batch_blocks  blocks in them
 *   batch_breaks  refills stopped early because the lock was contended
 *   splits        blocks split on allocation (expand)
 *   merges        buddies merged on free
 *   carved        4 MiB blocks carved off the frontier
 *   purged_pages  pages given back to the OS
 * ZONE_PURGE_COUNTERS, JSON members of "purge":
 *   purge_runs    zone_purge_aged calls that purged something
 *   purge_calls   madvise system calls they made
 */
#define ZONE_EVENT_COUNTERS(X) \
	X(allocs, "allocs") X(frees, "frees") X(batches, "batches") \
	X(batch_blocks, "batch_blocks") X(batch_breaks, "batch_breaks") \
	X(splits, "splits") X(merges, "merges") X(carved, "carved") \
	X(purged_pages, "purged_pages")
#define ZONE_PURGE_COUNTERS(X) \
	X(purge_runs, "runs") X(purge_calls, "madvise_calls")
#define ZONE_COUNTERS(X) ZONE_EVENT_COUNTERS(X) ZONE_PURGE_COUNTERS(X)

struct zone_info {
	uint64_t pages;             /* total pages in the zone */
	uint64_t free_pages;        /* on free lists, being purged, or never used */
	uint64_t untouched_pages;   /* above the frontier: never used at all */
	uint64_t nr_free[11];       /* blocks per order on the free lists */
	uint64_t lock_acquired, lock_contended, lock_wait_ns;
#define X(field, json) uint64_t field;   /* see ZONE_COUNTERS */
	ZONE_COUNTERS(X)
#undef X
	uint64_t dirty_pages;       /* free pages the process touched, not purged */
	uint64_t fork_deferred_frees;   /* handler frees deferred during a fork */
	uint64_t fork_refused_allocs;   /* handler allocations refused during a fork */
	uint64_t abandoned_pages;       /* _Fork child: pages freed below the floor */
	uint64_t fork_carved;           /* 4 MiB blocks handlers took during a fork */
	uint64_t given_back_pages;      /* never-used tail unmapped under a limit */
};

/* ---- region.c ---- */
/* The region size to reserve for a configured region_size (0 = default):
 * the default is the machine's memory, at most 64 GiB, and under a finite
 * RLIMIT_AS or RLIMIT_DATA at most 1/8 of the limit with the descriptors,
 * or 0 (no region) when that is under 4 MiB.  A configured size is kept. */
uint64_t zone_region_bytes(uint64_t configured);
/* Reserves the region (halving on failure); 0 on success, -1 if none.
 * Under a finite limit it is reserved PROT_NONE and opened 4 MiB at a time
 * as the frontier advances. */
int zone_init(uint64_t bytes);
/* Under a finite limit, when another allocator has run out asking for want
 * bytes: unmaps the region's never-used tail above the frontier, and its
 * descriptors, with the zone lock dropped.  Returns the bytes given back;
 * 0 when unlimited, when want alone exceeds the limit, or when nothing is
 * left to give. */
size_t zone_give_back(size_t want);
/* The program changed RLIMIT_AS or RLIMIT_DATA after start-up, the
 * tighter now being limit (UINT64_MAX: none): under a finite one the
 * default region gives back all but the share zone_region_bytes gives such
 * a limit (or what it has used), and later ENOMEMs of glibc give back
 * more.  Process context, not in a vfork child. */
void zone_limit_changed(uint64_t limit);
/* A finite RLIMIT_AS or RLIMIT_DATA shaped the region: glibc's ENOMEM is
 * worth a retry after zone_give_back. */
bool zone_limited(void);
/* ---- zone.c ---- */
/* A block of 2^order pages of which the first npages are kept and the
 * tail goes back to the free areas at once.  NULL if the zone is empty. */
struct page_desc *zone_alloc(unsigned order, size_t npages);
/* zone_alloc from the free lists alone: NULL where zone_alloc would carve
 * a block off the frontier (or open more of the region) for it. */
struct page_desc *zone_alloc_listed(unsigned order, size_t npages);
/* Refill: up to max blocks of npages pages each (exact: each a block of the
 * next order with its tail given back), stopping after min if the zone lock
 * is contended.  Returns the count; blocks are linked through next/prev and
 * carry npages. */
unsigned zone_take_batch(size_t npages, unsigned max, unsigned min,
			 struct page_desc **head, struct page_desc **tail);
/* Drain: frees blocks linked through next, each of pd->npages pages. */
void zone_free_list(struct page_desc *head);
void zone_free_block(struct page_desc *pd, unsigned order);
/* Frees npages from pfn, split into naturally aligned power-of-two blocks. */
void zone_free_range(uint64_t pfn, size_t npages);
/* ---- zone_purge.c ---- */
/* Returns every dirty free block of at least min_order to the OS with
 * MADV_DONTNEED, and redoes blocks purged with MADV_FREE (malloc_trim),
 * with the zone lock dropped around the system calls.  Returns pages
 * purged. */
size_t zone_purge(unsigned min_order);
/*
 * The decay purge: dirty free blocks freed at or before cutoff_ns (coarse
 * clock), oldest first, go back to the OS with advice (MADV_DONTNEED: they
 * become PG_ZERO; MADV_FREE: PG_ADVISED).  At most ZONE_PURGE_BATCH pages
 * are off the free lists at a time, while the lock is dropped for the
 * system calls.  At most max_calls madvise calls: *more is true when they
 * ran out, with such blocks perhaps left for the next call.  One purge
 * runs at a time: false (and nothing done) if another is in flight.
 * *pages gets the pages purged.
 */
#define ZONE_PURGE_BATCH 4096
bool zone_purge_aged(uint64_t cutoff_ns, int advice, uint64_t max_calls, size_t *pages,
		     bool *more);
/* Dirty pages on the free lists now; *oldest_ns the freed_ns of the
 * oldest dirty block, UINT64_MAX when there is none. */
uint64_t zone_dirty(uint64_t *oldest_ns);
/* The same count without the lock (a hint: it may be a moment stale). */
uint64_t zone_dirty_hint(void);
/* ---- zone.c: the purge driver's tick, the statistics ---- */
/*
 * The purge driver's tick (malloc/purge.c; the zone knows nothing above
 * it).  A zone call that freed pages, as it releases the lock, sets
 * zone_tick_pending if its clock has reached zone_tick_at; any other call
 * only if zone_tick_at is 0.  The malloc layer runs the driver once it is
 * back outside every lock (a cache may call the zone with its own lock
 * held).  zone_tick_at UINT64_MAX: never (no decay purge).
 */
extern uint64_t zone_tick_at;       /* atomic */
extern uint32_t zone_tick_pending;  /* atomic */
void zone_info(struct zone_info *zi);
/* Pages the program holds: handed out at least once (below the frontier)
 * and neither free in the zone nor among the cached pages given.  Read the
 * caches first, then zone_info: a block the purge thread moves from a
 * cache to the zone meanwhile is then counted twice, never shown as held. */
static inline uint64_t zone_held_pages(const struct zone_info *zi, uint64_t cached)
{
	uint64_t touched = zi->pages - zi->untouched_pages;
	uint64_t not_held = zi->free_pages - zi->untouched_pages + cached;
	return touched > not_held ? touched - not_held : 0;
}
/* One node's zone: its pages and free pages (zi->pages, free_pages,
 * untouched_pages, nr_free[], allocs, frees); the rest 0.  False past the
 * last zone. */
bool zone_node_info(unsigned node, struct zone_info *zi);
/* ---- validate.c ---- */
/* Whole-zone check: lists, flags, alignment, no overlap, counts; used_pages
 * (pages not free in the zone), if not UINT64_MAX, must match.  Returns 0,
 * or -1 with the reason in why. */
int zone_validate(uint64_t used_pages, char *why, size_t cap);
/* ---- zone_fork.c ---- */
/* A fork is being prepared: handlers get no zone lock until it is done. */
bool zone_fork_pending(void);
/* ... and the forking thread holds the zone lock now (handlers are refused). */
bool zone_fork_held(void);
/* A handler during a fork: a never-used 4 MiB block (order 10, PG_ZERO)
 * taken off the frontier without the lock, or NULL. */
struct page_desc *zone_carve_in_fork(void);
/* Lock-free: the next holder of the zone lock frees the range. */
void zone_free_range_deferred(uint64_t pfn, size_t npages);
void zone_fork_announce(void);
void zone_fork_prepare(void);
void zone_fork_parent(void);
void zone_fork_child(void);
void zone_fork_recover(void);

#endif
