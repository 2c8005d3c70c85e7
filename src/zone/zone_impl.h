/*
 * zone_impl.h — the zone's private structures, shared by the files of
 * src/zone only (zone.c, region.c, zone_fork.c, zone_purge.c, validate.c,
 * numa.c).  Everyone else goes through zone.h.
 *
 * The region is split into one zone per NUMA node (Linux's pg_data_t, see
 * numa.c): zone i covers the pfns [start, end), the parts tile the region
 * in node order, and every boundary is a multiple of 1024 pages, so that a
 * buddy pair never straddles two zones.  With one node (numa:auto on a
 * one-node machine, numa:off, or a finite RLIMIT_AS/DATA) there is one zone
 * covering the whole region, exactly as before zones were per node.
 */
#ifndef MAGPAGE_ZONE_IMPL_H
#define MAGPAGE_ZONE_IMPL_H

#include "internal.h"

struct free_area {
	struct page_desc *head;   /* dirty blocks of this order, newest first */
	struct page_desc *tail;   /* ... and the oldest, purged first */
	struct page_desc *clean;  /* clean blocks (PG_ZERO or PG_ADVISED) */
	uint64_t nr_free;         /* blocks on both lists */
};

/* Every field but start, end and deferred is guarded by lock.
 * Free pages of a zone = sum nr_free[order] * 2^order + (end - frontier). */
struct zone {
	struct mp_lock lock;      /* the zone lock */
	struct free_area free_area[MAX_ORDER];
	uint64_t frontier;        /* first never-used pfn, a multiple of 1024;
				     start <= frontier <= end */
	uint64_t opened;          /* pfns below are writable; frontier <= opened
				     <= end, a multiple of 1024 */
	uint32_t openers;         /* atomic: threads in __zone_open with the lock
				     dropped; each opens [o, o + 1024) for an
				     o <= opened, so opened + 1024 covers them all */
	uint64_t limit;           /* os.mem_limit() at zone_init, lowered by
				     zone_limit_changed (atomic); UINT64_MAX:
				     unlimited; else the tail goes back on
				     glibc's ENOMEM; at zone_init, also the
				     region opens step by step (one zone) */
	uint64_t given_back;      /* pages unmapped by zone_give_back */
	uint64_t nr_free_pages;   /* pages on the free lists */
#define X(field, json) uint64_t field;   /* events: see ZONE_COUNTERS */
	ZONE_COUNTERS(X)
#undef X
	uint64_t nr_dirty_pages;  /* pages on the dirty lists */
	uint64_t now;             /* coarse clock for this hold's frees; 0 =
				     not read yet (reset by each zone_lock) */
	struct page_desc *isolated;  /* blocks off the lists while a purge
				     madvises them, linked through next */
	struct page_desc **isolated_end;  /* the last next link of that list */
	uint64_t isolated_pages;  /* pages in them */
	bool purging;             /* a purge is in flight (one at a time) */
	uint64_t floor;           /* pfns below it were abandoned in a child of
				     _Fork (see zone_fork_recover); 0 normally */
	uint64_t abandoned_pages; /* pages freed below the floor, not reused */
	/* per node (zones tile the region): */
	uint64_t start, end;      /* this zone's pfns, multiples of 1024; set
				     by zone_init, end lowered only by
				     zone_give_back (one zone) */
	struct page_desc *deferred;  /* atomic: frees a handler could not make
				     during a fork, next-linked, npages each;
				     the next holder of this zone's lock frees
				     them */
} cacheline_aligned;

extern struct zone zones[NUMA_MAX_NODES];
extern unsigned nr_zones;         /* 1..NUMA_MAX_NODES, set by zone_init */

/* Takes (and releases) every zone's lock, in node order, as one irqsave
 * section: the validator, and fork. */
void zone_lock_all(struct zone_irq *irq);
void zone_unlock_all(struct zone_irq *irq);

/* ---- shared by zone.c and zone_purge.c (the lock, the lists) ---------- */

/* zone.c */
void __zone_free_deferred(struct zone *z);
void zone_reentered(void) __attribute__((__cold__, __noreturn__));
/* The zone lock was taken: wait for it (zone_lock_wait probe). */
void zone_lock_contended(struct zone *z);
void __zone_free_one(struct zone *z, uint64_t pfn, unsigned order, uint8_t clean,
		     uint64_t stamp);
/* A handler's wait for the lock, refused while a fork holds it. */
bool zone_lock_in_handler(struct zone *z, struct zone_irq *irq);
/* A free the lock refused: the next holder of pd's zone's lock makes it. */
void zone_defer_free(struct page_desc *pd, size_t npages);
/* zone_purge.c: puts a purge's isolated blocks back (fork uses it too). */
size_t __zone_putback(struct zone *z);
/* region.c: makes the next 4 MiB of z writable, the lock dropped around
 * the mprotect; 1 done, 0 refused (the lock held), -1 the lock lost. */
int __zone_open(struct zone *z, struct zone_irq *irq);
/* zone_fork.c: a fork in progress (see there); atomic. */
extern int fork_pending;      /* the forker is gathering its locks */
extern int fork_held;         /* the forker holds every zone lock */
extern uint64_t fork_carved;  /* 4 MiB blocks handlers carved meanwhile */

/* The coarse clock, read at most once per lock hold: frees stamp their
 * blocks with it, and the caller's tick compares it after unlocking. */
static inline uint64_t __zone_now(struct zone *z)
{
	if (unlikely(!z->now))
		z->now = os.coarse_ns();
	return z->now;
}

/* The lock is held: what handlers deferred goes in first. */
static inline void __zone_locked(struct zone *z)
{
	z->now = 0;
	if (unlikely(__atomic_load_n(&z->deferred, __ATOMIC_RELAXED) != NULL))
		__zone_free_deferred(z);
}

static inline void zone_lock(struct zone *z, struct zone_irq *irq)
{
	if (unlikely(mp_tls.in_zone))
		zone_reentered();
	sigctx_zone_enter(irq);
	if (unlikely(!mp_lock_fast(&z->lock)))
		zone_lock_contended(z);
	__zone_locked(z);
}

static inline void zone_unlock(struct zone *z, struct zone_irq *irq)
{
	mp_unlock(&z->lock);
	sigctx_zone_leave(irq);
}

/* zone_lock, except that a handler never waits while a fork is prepared. */
static inline bool zone_lock_or_refuse(struct zone *z, struct zone_irq *irq)
{
	if (likely(!mp_tls.depth)) {
		zone_lock(z, irq);
		return true;
	}
	return zone_lock_in_handler(z, irq);
}

/* ---- free lists ------------------------------------------------------- */

/* pd's flags say which list: dirty (pd->freed_ns set; raised to the
 * head's if older, which keeps the list in time order) or clean. */
static inline void list_add(struct zone *z, struct free_area *fa, struct page_desc *pd)
{
	pd->prev = NULL;
	if (likely(!(pd->flags & PG_CLEAN))) {
		struct page_desc *h = fa->head;
		pd->next = h;
		if (h) {
			h->prev = pd;
			if (unlikely(h->freed_ns > pd->freed_ns))
				pd->freed_ns = h->freed_ns;
		} else {
			fa->tail = pd;
		}
		fa->head = pd;
		z->nr_dirty_pages += (size_t)1 << pd->order;
	} else {
		pd->next = fa->clean;
		if (fa->clean)
			fa->clean->prev = pd;
		fa->clean = pd;
	}
	fa->nr_free++;
}

/* pd's flags must still say which list it is on. */
static inline void list_del(struct zone *z, struct free_area *fa, struct page_desc *pd)
{
	struct page_desc *next = pd->next, *prev = pd->prev;

	if (likely(!(pd->flags & PG_CLEAN))) {
		if (prev)
			prev->next = next;
		else
			fa->head = next;
		if (next)
			next->prev = prev;
		else
			fa->tail = prev;
		z->nr_dirty_pages -= (size_t)1 << pd->order;
	} else {
		if (prev)
			prev->next = next;
		else
			fa->clean = next;
		if (next)
			next->prev = prev;
	}
	fa->nr_free--;
}

#endif
