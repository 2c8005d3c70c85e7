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
 *   PG_CACHED  free block held by a page cache
 *   PG_ALLOC   first page of a live allocation of npages pages
 *   PG_ZERO    with any of the above: the block's contents are known zero
 * Invariant: PG_ALLOC is set on a descriptor iff it heads a live
 * allocation, which is what lets free() reject interior and double frees. */
enum {
	PG_BUDDY = 1,
	PG_CACHED = 2,
	PG_ALLOC = 4,
	PG_ZERO = 8,
};

struct page_desc {
	struct page_desc *next;  /* free list or cache list; guarded by its lock */
	struct page_desc *prev;  /* ditto (NULL at the head of a list) */
	uint32_t npages;         /* PG_ALLOC: pages held; PG_CACHED: block size */
	uint8_t order;           /* PG_BUDDY: order of the free block */
	uint8_t flags;           /* PG_*; PG_ALLOC is cleared atomically by free */
	uint16_t owner;          /* PG_CACHED: which cache holds it */
	uint64_t req_bytes;      /* PG_ALLOC: bytes the program asked for */
	uint32_t pcp_next;       /* pcp-rseq lists: pfn of the next block */
	uint32_t reserved32;
	uint64_t reserved[3];    /* keeps one descriptor per cache line, as
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
static inline uint64_t desc_pfn(const struct page_desc *pd)
{
	return (uint64_t)(pd - zg.descs);
}
static inline void *desc_to_addr(const struct page_desc *pd)
{
	return (void *)(zg.base + (desc_pfn(pd) << 12));
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

struct zone_info {
	uint64_t pages;             /* total pages in the zone */
	uint64_t free_pages;        /* on free lists + never used */
	uint64_t untouched_pages;   /* above the frontier: never used at all */
	uint64_t nr_free[11];       /* blocks per order on the free lists */
	uint64_t lock_acquired, lock_contended, lock_wait_ns;
	uint64_t allocs, frees;     /* blocks taken / given, any path */
	uint64_t batches, batch_blocks;   /* refills served and blocks in them */
	uint64_t batch_breaks;      /* refills stopped early on contention */
	uint64_t splits, merges, carved, purged_pages;
	uint64_t fork_deferred_frees;   /* handler frees deferred during a fork */
	uint64_t fork_refused_allocs;   /* handler allocations refused during a fork */
	uint64_t abandoned_pages;       /* _Fork child: pages freed below the floor */
	uint64_t fork_carved;           /* 4 MiB blocks handlers took during a fork */
	uint64_t given_back_pages;      /* never-used tail unmapped under a limit */
};

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
/* A finite RLIMIT_AS or RLIMIT_DATA shaped the region: glibc's ENOMEM is
 * worth a retry after zone_give_back. */
bool zone_limited(void);
/* A block of 2^order pages of which the first npages are kept and the
 * tail goes back to the free areas at once.  NULL if the zone is empty. */
struct page_desc *zone_alloc(unsigned order, size_t npages);
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
/* Returns free blocks of at least min_order to the OS (MADV_DONTNEED), with
 * the zone lock dropped around the system calls.  Returns pages purged. */
size_t zone_purge(unsigned min_order);
void zone_info(struct zone_info *zi);
/* Whole-zone check: lists, flags, alignment, no overlap, counts; used_pages
 * (pages not free in the zone), if not UINT64_MAX, must match.  Returns 0,
 * or -1 with the reason in why. */
int zone_validate(uint64_t used_pages, char *why, size_t cap);
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
