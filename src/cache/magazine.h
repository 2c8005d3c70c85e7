/*
 * magazine.h — what the lock-based designs share: the magazine (a lock and
 * one list of free blocks per size class) and the list operations under its
 * lock.  magazine.c runs them as the 2013 RFC's shared magazines,
 * pcp_lock.c as Linux 6.x's per-CPU lists.
 */
#ifndef MAGPAGE_MAGAZINE_H
#define MAGPAGE_MAGAZINE_H

#include "internal.h"

/* Blocks of 1..8 pages: the lock designs stop at order 3 (max_order), so
 * their structures, drains and views cover these classes only. */
#define MAG_CLASSES 8

struct mag_list {
	struct page_desc *head;   /* hottest block; pop and push here */
	struct page_desc *tail;   /* coldest block; drains take from here */
	uint32_t nr;              /* blocks on the list; read unlocked as a hint */
	uint32_t reserved;
};

/* Per class, written under the lock on every operation. */
struct mag_hot_counts {
	uint64_t allocs;          /* blocks handed out, refills included */
	uint64_t frees;           /* blocks taken back */
};

/* Per class, written under the lock on the rare paths. */
struct mag_cold_counts {
	uint64_t refills, refill_pages, drains, drain_pages;
	uint64_t irq_hits, irq_misses;     /* irq_misses: atomic */
	uint32_t refill_min, refill_max, drain_min, drain_max;
};

/*
 * Layout: a one-page allocation or free touches line 0 (lock, page count,
 * the 1-page list) and line 1 (the per-op counters of the small classes).
 *
 *   line 0   lock | nr_pages | list[class 0]
 *   line 1-2 hot[0..7]
 *   line 3+  list[1..7] | trylock_failed | drain_next | holder | cold[0..7]
 *
 * The holder's mark is a word (mp_self_mark) that line 0 has no room for:
 * its two stores a lock hold go to a line of the same magazine, which the
 * CPU that holds the lock has just written or soon writes (list[1..7]).
 */
struct magazine {
	struct mp_lock lock;              /* guards everything below; taken with
					     mag_lock or mag_trylock */
	uint32_t nr_pages;                /* sum of nr * pages over the lists */
	struct mag_list list0;            /* class 0: one page */
	struct mag_hot_counts hot[MAG_CLASSES] cacheline_aligned;
	struct mag_list list_hi[MAG_CLASSES - 1];   /* classes 1..7 */
	uint64_t trylock_failed;          /* atomic: failed pass-1 trylocks */
	uint32_t drain_next;              /* class the next drain starts at */
	uintptr_t holder;                 /* mp_self_mark() of the thread holding
					     lock, 0 while free: what a child of
					     _Fork abandons (mag_fork_recover) */
	struct mag_cold_counts cold[MAG_CLASSES];
} cacheline_aligned;
_Static_assert(offsetof(struct magazine, hot) == CACHELINE, "lock and 1-page list share line 0");

extern struct magazine mags[MAX_CACHES];
extern unsigned nr_mags, mag_mask, mag_shift;
/* pages: the limit a free drains at, and the refill and drain batches */
extern uint32_t mag_limit, mag_refill_max, mag_refill_min, mag_drain_max, mag_drain_min;

/* The magazine lock, with its holder's mark (fork_prepare and the fork
 * handlers take it bare: no _Fork child inherits those holds). */
static inline void mag_lock(struct magazine *m)
{
	mp_lock(&m->lock);
	mp_set_holder(&m->holder, mp_self_mark());
}

static inline bool mag_trylock(struct magazine *m)
{
	if (!mp_trylock(&m->lock))
		return false;
	mp_set_holder(&m->holder, mp_self_mark());
	return true;
}

static inline void mag_unlock(struct magazine *m)
{
	mp_set_holder(&m->holder, 0);
	mp_unlock(&m->lock);
}

static inline struct mag_list *mag_list(struct magazine *m, unsigned cls)
{
	return cls ? &m->list_hi[cls - 1] : &m->list0;
}

/* ---- critical-section marker ------------------------------------------ */

/*
 * A critical section holds signals back (the trampoline re-queues them and
 * they arrive at cs_leave), as the zone lock does: a handler that ran here
 * and left by siglongjmp would abandon the section with the lock held by
 * this very thread, which would then wait on itself.  Handlers still never
 * wait on a magazine lock: in_cache also turns a re-entry from a handler the
 * trampoline never saw into a zone-path call.
 */
static inline void cs_enter(void)
{
	mp_tls.in_cache = 1;
	mp_tls.free_below = 0;     /* a re-entered free takes the slow way */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void cs_leave(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	mp_tls.in_cache = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (unlikely(mp_tls.deferred))
		sigctx_release_deferred();
}

/* ---- lists (magazine lock held) --------------------------------------- */

/*
 * The lists are doubly linked so that drains can take from the tail, but a
 * pop does not clear the new head's prev: that would write a second
 * descriptor, likely dirtied by another CPU.  Every node's prev is exact
 * except the head's, and the head's is never read: take_tail reads prev only
 * when the tail is not also the head.
 */
static inline void __mag_push(struct magazine *m, struct page_desc *pd, unsigned cls)
{
	struct mag_list *l = mag_list(m, cls);
	pd->next = l->head;
	if (l->head)
		l->head->prev = pd;
	else
		l->tail = pd;
	l->head = pd;
	l->nr++;
	m->nr_pages += cls + 1;
}

static inline struct page_desc *__mag_pop(struct magazine *m, unsigned cls)
{
	struct mag_list *l = mag_list(m, cls);
	struct page_desc *pd = l->head;
	l->head = pd->next;
	if (!l->head)
		l->tail = NULL;
	l->nr--;
	m->nr_pages -= cls + 1;
	return pd;
}

static inline struct page_desc *__mag_take_tail(struct magazine *m, unsigned cls)
{
	struct mag_list *l = mag_list(m, cls);
	struct page_desc *pd = l->tail;
	if (l->nr == 1) {
		l->head = l->tail = NULL;
	} else {
		l->tail = pd->prev;
		l->tail->next = NULL;
	}
	l->nr--;
	m->nr_pages -= cls + 1;
	return pd;
}

static inline void note_batch(uint32_t *lo, uint32_t *hi, uint32_t pages)
{
	if (*lo == 0 || pages < *lo)
		*lo = pages;
	if (pages > *hi)
		*hi = pages;
}

/* The magazine a CPU prefers, and this thread's CPU. */
static inline unsigned mag_preferred_of_cpu(int cpu)
{
	return ((unsigned)cpu >> mag_shift) & mag_mask;
}
static inline unsigned mag_preferred(void)
{
	return mag_preferred_of_cpu(cpu_current());
}

/* Detaches a drain batch from m's list tails onto *chain (magazine.c). */
void mag_drain_some(struct magazine *m, unsigned trigger, struct page_desc **chain);

static inline struct page_desc *mag_hand_out(struct magazine *m, unsigned cls)
{
	m->hot[cls].allocs++;
	return __mag_pop(m, cls);
}

static inline void mark_cached(struct page_desc *pd, unsigned owner)
{
	pd->flags = PG_CACHED;
	pd->owner = (uint16_t)owner;
}

/* Push one block (pd->npages pages) and detach a drain batch if over. */
static inline void mag_put(struct magazine *m, struct page_desc *pd, unsigned cls,
			   struct page_desc **chain)
{
	__mag_push(m, pd, cls);
	m->hot[cls].frees++;
	if (unlikely(m->nr_pages >= mag_limit))
		mag_drain_some(m, cls, chain);
}

/* Locks magazine m if it has a block of this class; wait or only try. */
static inline bool mag_try_filled(struct magazine *m, unsigned cls, bool wait)
{
	if (!__atomic_load_n(&mag_list(m, cls)->nr, __ATOMIC_RELAXED))
		return false;
	if (wait) {
		mag_lock(m);
	} else if (!mag_trylock(m)) {
		__atomic_add_fetch(&m->trylock_failed, 1, __ATOMIC_RELAXED);
		return false;
	}
	if (mag_list(m, cls)->nr)
		return true;
	mag_unlock(m);
	return false;
}

/* The fast path of both designs, inside cs_enter: a block from m when it
 * has one of this class and its lock is free (then cs_leave), else NULL. */
static inline struct page_desc *mag_take_local(struct magazine *m, unsigned cls)
{
	if (!mag_try_filled(m, cls, false))
		return NULL;
	struct page_desc *pd = mag_hand_out(m, cls);
	mag_unlock(m);
	cs_leave();
	return pd;
}

/* The rest of a refill, m locked inside cs_enter: splice the batch
 * head..tail (n blocks, PG_CACHED) in, hand out head, drain what went over
 * the limit; unlocks and leaves. */
struct page_desc *mag_fill(struct magazine *m, unsigned cls, struct page_desc *head,
			   struct page_desc *tail, unsigned n);
/* Up to the room under the limit in m, a batch of class cls from the zone
 * (refill_min at least); 0 if the zone has none. */
unsigned mag_take_batch(struct magazine *m, unsigned cls, struct page_desc **head,
			struct page_desc **tail);

/* Shared entry points (magazine.c), in both designs' tables. */
void mag_configure(unsigned n, unsigned shift, uint32_t limit, uint32_t refill_max,
		   uint32_t refill_min, uint32_t drain_max, uint32_t drain_min);
struct page_desc *mag_alloc_irq(size_t npages);
bool mag_free_irq(struct page_desc *pd);
void mag_free_chain(struct page_desc *chain);
size_t mag_drain_all(void);
unsigned mag_count(void);
void mag_view(unsigned i, struct cache_view *v);
void mag_fork_prepare(void);
void mag_fork_parent(void);
void mag_fork_child(void);
void mag_fork_recover(void);

/* The operations both designs' tables share. */
#define MAG_SHARED_OPS \
	.alloc_irq = mag_alloc_irq, .free_irq = mag_free_irq, .free_chain = mag_free_chain, \
	.drain_all = mag_drain_all, .count = mag_count, .view = mag_view, \
	.text_cache = cache_text_lock, .fork_prepare = mag_fork_prepare, \
	.fork_parent = mag_fork_parent, .fork_child = mag_fork_child, \
	.fork_recover = mag_fork_recover

#endif
