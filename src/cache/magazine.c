/*
 * magazine.c — the page cache of the 2013 RFC ("Per-cpu page allocator
 * replacement prototype").
 *
 * The magazines belong to the zone and are shared by every CPU.  Each is a
 * spinlock, one LIFO list of free blocks per size class, and a page count.
 * A thread prefers the magazine its CPU maps to, (cpu >> 1) & (n - 1) in the
 * RFC (SMT siblings share one), cpu & (n - 1) by default, but may use any:
 * every magazine is lock-protected, so a stale CPU id costs locality only.
 *
 * Size classes are page counts 1..8.  The RFC cached order 0 (class 1);
 * Linux since 5.13 caches orders 0..3 (classes 1, 2, 4, 8).  Real programs
 * also ask for 3, 5, 6 and 7 pages (8224-byte Python objects, 27 KiB
 * PostgreSQL buffers); with cache_exact those get lists of their own, so a
 * freed 3-page block is reused as a 3-page block instead of being split into
 * 2 + 1 pieces that overflow the small lists while the 4-page list runs dry.
 *
 * Allocation (find_lock_filled_magazine):
 *   pass 1  round-robin from the preferred magazine, trylock each one whose
 *           list for this class looks non-empty (read before trying);
 *   pass 2  blocking lock on the first non-empty one;
 *   refill  take a batch from the zone (zone lock only), then trylock
 *           round-robin or block on the preferred magazine, splice the
 *           batch in and hand out its first block under the same hold.
 * Free: always a blocking lock on the preferred magazine; push at the head;
 *   when the magazine holds mag_limit pages or more, detach up to drain_max
 *   pages from the list tails (coldest first, round-robin over the classes,
 *   stopping after drain_min if the lock is contended), unlock, and only
 *   then free them to the zone.  The zone lock and a magazine lock are never
 *   held together.
 *
 * The same code, run with mag_percpu, is the pcp-lock comparator (Linux
 * 6.x): one list per CPU, its lock only ever trylocked by the local CPU, a
 * failed trylock (a handler interrupted the owner, a remote drain holds it)
 * sending the request to the zone; no round-robin, no waiting; pcp_high and
 * pcp_batch as the limit and the batches.  Remote drains simply take the lock.
 *
 * Magazine locks are "IRQ-unsafe": taken without keeping signals out.  A
 * signal handler must never wait on one; handler-context callers come here
 * only through the _irq variants (one trylock, else the zone).  While a
 * thread holds a magazine lock mp_tls.in_cache is set, so that a re-entry
 * the trampoline did not see takes the zone path instead of deadlocking.
 */
#include <stddef.h>
#include <string.h>

#include "internal.h"

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
 *   line 0   lock | nr_pages | drain_next | list[class 0]
 *   line 1-2 hot[0..7]
 *   line 3+  list[1..7] | trylock_failed | cold[0..7]
 */
struct magazine {
	struct mp_lock lock;              /* guards everything below */
	uint32_t nr_pages;                /* sum of nr * pages over the lists */
	uint32_t drain_next;              /* class the next drain starts at */
	struct mag_list list0;            /* class 0: one page */
	struct mag_hot_counts hot[CACHE_CLASSES] cacheline_aligned;
	struct mag_list list_hi[CACHE_CLASSES - 1];   /* classes 1..7 */
	uint64_t trylock_failed;          /* atomic: failed pass-1 trylocks */
	struct mag_cold_counts cold[CACHE_CLASSES];
} cacheline_aligned;
_Static_assert(offsetof(struct magazine, hot) == CACHELINE, "lock and 1-page list share line 0");

static struct magazine mags[MAX_CACHES];
static unsigned nr_mags = 1, mag_mask, mag_shift;
static bool mag_percpu;                       /* pcp-lock: trylock own list only */
static uint32_t limit, refill_max, refill_min, drain_max, drain_min;   /* pages */

static inline struct mag_list *mag_list(struct magazine *m, unsigned cls)
{
	return cls ? &m->list_hi[cls - 1] : &m->list0;
}

void mag_init(void)
{
	unsigned n = opt.magazines;

	mag_percpu = opt.cache == CACHE_PCP_LOCK;
	if (n == 0 || mag_percpu) {
		n = mag_percpu ? 1 : 2;   /* one list per CPU, or at least two magazines */
		while (n < (unsigned)os.ncpus() && n < MAX_CACHES)
			n <<= 1;
	}
	memset(mags, 0, sizeof(mags));
	nr_mags = n;
	mag_mask = n - 1;
	mag_shift = opt.mag_map == MAP_PAIR && !mag_percpu ? 1 : 0;
	if (mag_percpu) {
		limit = opt.pcp_high;
		refill_max = refill_min = drain_max = drain_min = opt.pcp_batch;
	} else {
		limit = opt.mag_limit;
		refill_max = opt.refill_max;
		refill_min = opt.refill_min;
		drain_max = opt.drain_max;
		drain_min = opt.drain_min;
	}
}

unsigned mag_count(void)
{
	return nr_mags;
}

unsigned mag_preferred_of_cpu(int cpu)
{
	return ((unsigned)cpu >> mag_shift) & mag_mask;
}

static inline unsigned mag_preferred(void)
{
	return mag_preferred_of_cpu(cpu_current());
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

/* A block leaving for the zone: zone_free_list reads pd->npages. */
static inline void chain_for_zone(struct page_desc **chain, struct page_desc *pd, unsigned cls)
{
	pd->flags = 0;
	pd->npages = cls + 1;
	pd->next = *chain;
	*chain = pd;
}

/* Detaches up to drain_max pages from the list tails onto *chain,
 * round-robin over the classes; the class that triggered the drain (its
 * newest block was just pushed) only when no other class has any. */
static void __mag_drain(struct magazine *m, unsigned trigger, struct page_desc **chain)
{
	uint32_t pages = 0;
	unsigned c = m->drain_next;

	while (pages < drain_max && m->nr_pages) {
		if (pages >= drain_min && mp_lock_is_contended(&m->lock))
			break;
		bool others = m->nr_pages > mag_list(m, trigger)->nr * (trigger + 1);
		for (unsigned k = 0; k < CACHE_CLASSES; k++, c = (c + 1) % CACHE_CLASSES)
			if (mag_list(m, c)->nr && (c != trigger || !others))
				break;
		if (pages && pages + c + 1 > drain_max)
			break;      /* a drain never moves more than drain_max */
		chain_for_zone(chain, __mag_take_tail(m, c), c);
		pages += c + 1;
		c = (c + 1) % CACHE_CLASSES;
	}
	m->drain_next = c;
	struct mag_cold_counts *cc = &m->cold[trigger];
	cc->drains++;
	cc->drain_pages += pages;
	note_batch(&cc->drain_min, &cc->drain_max, pages);
}

/* ---- allocation -------------------------------------------------------- */

static inline struct page_desc *__mag_hand_out(struct magazine *m, unsigned cls)
{
	m->hot[cls].allocs++;
	return __mag_pop(m, cls);
}

/* find_lock_magazine: trylock round-robin from the preferred one, else
 * wait on the preferred one.  Used to file a refill. */
static struct magazine *mag_lock_any(unsigned pref)
{
	for (unsigned i = 0; i < nr_mags; i++) {
		struct magazine *m = &mags[(pref + i) & mag_mask];
		if (mp_trylock(&m->lock))
			return m;
	}
	mp_lock(&mags[pref].lock);
	return &mags[pref];
}

/* Locks magazine m if it has a block of this class; pass 1 only tries. */
static inline bool mag_try_filled(struct magazine *m, unsigned cls, bool wait)
{
	if (!__atomic_load_n(&mag_list(m, cls)->nr, __ATOMIC_RELAXED))
		return false;
	if (wait) {
		mp_lock(&m->lock);
	} else if (!mp_trylock(&m->lock)) {
		__atomic_add_fetch(&m->trylock_failed, 1, __ATOMIC_RELAXED);
		return false;
	}
	if (mag_list(m, cls)->nr)
		return true;
	mp_unlock(&m->lock);
	return false;
}

static NOINLINE struct page_desc *mag_alloc_slow(unsigned pref, unsigned cls)
{
	struct page_desc *pd, *head, *tail;
	struct magazine *m;

	/* pass 1 after the preferred magazine (tried by mag_alloc), pass 2;
	 * a per-CPU list has neither: its owner refills it */
	for (unsigned pass = mag_percpu ? 2 : 0; pass < 2; pass++) {
		for (unsigned i = pass ? 0 : 1; i < nr_mags; i++) {
			m = &mags[(pref + i) & mag_mask];
			if (mag_try_filled(m, cls, pass == 1)) {
				pd = __mag_hand_out(m, cls);
				mp_unlock(&m->lock);
				cs_leave();
				return pd;
			}
		}
	}

	/* refill: a batch of blocks of this class from the zone, no larger
	 * than the room left under the limit in the preferred magazine (with
	 * several size classes a full-size refill could overfill it) */
	unsigned pages = cls + 1;
	uint32_t held = __atomic_load_n(&mags[pref].nr_pages, __ATOMIC_RELAXED);
	uint32_t room = held < limit ? limit - held : 0;
	uint32_t want = refill_max < room ? refill_max : room;
	unsigned min = (refill_min + pages - 1) / pages, max = want / pages;
	if (max < min)
		max = min;      /* never below refill_min: a drain makes room */
	unsigned n = zone_take_batch(pages, max ? max : 1, min ? min : 1, &head, &tail);
	if (n == 0) {
		cs_leave();
		return NULL;
	}
	for (pd = head; pd; pd = pd->next)
		pd->flags = PG_CACHED | (pd->flags & PG_ZERO);
	if (mag_percpu) {
		m = &mags[pref];
		if (!mp_trylock(&m->lock)) {
			/* Busy (a remote drain): keep one block, return the rest. */
			__atomic_add_fetch(&m->trylock_failed, 1, __ATOMIC_RELAXED);
			cs_leave();
			if (head->next)
				zone_free_list(head->next);
			return head;
		}
	} else {
		m = mag_lock_any(pref);
	}
	pd = head;
	if (n > 1) {   /* splice head->next .. tail in front of the list */
		struct mag_list *l = mag_list(m, cls);
		tail->next = l->head;
		if (l->head)
			l->head->prev = tail;
		else
			l->tail = tail;
		l->head = head->next;
		l->nr += n - 1;
		m->nr_pages += (n - 1) * pages;
	}
	m->hot[cls].allocs++;
	struct mag_cold_counts *c = &m->cold[cls];
	c->refills++;
	c->refill_pages += (uint64_t)n * pages;
	note_batch(&c->refill_min, &c->refill_max, n * pages);
	/* With several size classes, refills alone can push a magazine over
	 * its limit: bring it back, coldest blocks first, as a free would. */
	struct page_desc *chain = NULL;
	while (m->nr_pages >= limit)
		__mag_drain(m, cls, &chain);
	mp_unlock(&m->lock);
	cs_leave();
	if (chain)
		zone_free_list(chain);
	return pd;
}

/*
 * Fast path: the preferred magazine has a block of this size and its lock
 * is free — a load of the CPU id, one read of the list count, one atomic
 * exchange, a pop, a store to release.  Everything else is mag_alloc_slow.
 */
struct page_desc *mag_alloc(size_t npages)
{
	unsigned pref = mag_preferred(), cls = (unsigned)npages - 1;
	struct magazine *m = &mags[pref];

	cs_enter();
	if (likely(mag_try_filled(m, cls, false))) {
		struct page_desc *pd = __mag_hand_out(m, cls);
		mp_unlock(&m->lock);
		cs_leave();
		return pd;
	}
	if (mag_percpu && mp_lock_is_held(&m->lock)) {
		cs_leave();       /* pcp-lock: a failed trylock means the zone */
		return NULL;
	}
	return mag_alloc_slow(pref, cls);
}

/* Handler context, "trylock" policy: the preferred magazine or nothing. */
struct page_desc *mag_alloc_irq(size_t npages)
{
	unsigned cls = (unsigned)npages - 1;
	struct magazine *m = &mags[mag_preferred()];

	if (!__atomic_load_n(&mag_list(m, cls)->nr, __ATOMIC_RELAXED) || !mp_trylock(&m->lock)) {
		__atomic_add_fetch(&m->cold[cls].irq_misses, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	struct page_desc *pd = NULL;
	if (mag_list(m, cls)->nr) {
		pd = __mag_hand_out(m, cls);
		m->cold[cls].irq_hits++;
	} else {
		__atomic_add_fetch(&m->cold[cls].irq_misses, 1, __ATOMIC_RELAXED);
	}
	mp_unlock(&m->lock);
	return pd;
}

/* ---- free -------------------------------------------------------------- */

static inline void mark_cached(struct page_desc *pd, unsigned owner)
{
	pd->flags = PG_CACHED;
	pd->owner = (uint16_t)owner;
}

/* Push one block (pd->npages pages) and detach a drain batch if over. */
static inline void __mag_put(struct magazine *m, struct page_desc *pd, unsigned cls,
			     struct page_desc **chain)
{
	__mag_push(m, pd, cls);
	m->hot[cls].frees++;
	if (unlikely(m->nr_pages >= limit))
		__mag_drain(m, cls, chain);
}

bool mag_free(struct page_desc *pd)
{
	unsigned pref = mag_preferred(), cls = pd->npages - 1;
	struct magazine *m = &mags[pref];
	struct page_desc *chain = NULL;

	cs_enter();
	if (!mag_percpu) {
		mp_lock(&m->lock);          /* the RFC: frees wait for the preferred one */
	} else if (!mp_trylock(&m->lock)) {
		__atomic_add_fetch(&m->trylock_failed, 1, __ATOMIC_RELAXED);
		cs_leave();
		return false;               /* pcp-lock: the caller frees to the zone */
	}
	mark_cached(pd, pref);
	__mag_put(m, pd, cls, &chain);
	mp_unlock(&m->lock);
	cs_leave();
	if (chain)
		zone_free_list(chain);
	return true;
}

bool mag_free_irq(struct page_desc *pd)
{
	unsigned pref = mag_preferred(), cls = pd->npages - 1;
	struct magazine *m = &mags[pref];
	struct page_desc *chain = NULL;

	if (!mp_trylock(&m->lock)) {
		__atomic_add_fetch(&m->cold[cls].irq_misses, 1, __ATOMIC_RELAXED);
		return false;
	}
	mark_cached(pd, pref);
	__mag_put(m, pd, cls, &chain);
	m->cold[cls].irq_hits++;
	mp_unlock(&m->lock);
	if (chain)
		zone_free_list(chain);
	return true;
}

/*
 * free_base_page_list (the RFC's patch 20, release_pages): one hold of the
 * preferred magazine for the whole chain (linked through next); what goes
 * over the limit is detached as it happens and freed to the zone once,
 * after unlocking.
 */
void mag_free_chain(struct page_desc *pd)
{
	unsigned pref = mag_preferred();
	struct magazine *m = &mags[pref];
	struct page_desc *chain = NULL;

	cs_enter();
	mp_lock(&m->lock);
	while (pd) {
		struct page_desc *next = pd->next;   /* the push relinks pd */
		mark_cached(pd, pref);
		__mag_put(m, pd, pd->npages - 1, &chain);
		pd = next;
	}
	mp_unlock(&m->lock);
	cs_leave();
	if (chain)
		zone_free_list(chain);
}

void mag_free_bulk(struct page_desc **pds, size_t n)
{
	mag_free_chain(desc_chain(pds, n));
}

/* drain_all_magazines (patch 22): no IPI, just lock each and flush it. */
size_t mag_drain_all(void)
{
	size_t pages = 0;

	for (unsigned i = 0; i < nr_mags; i++) {
		struct magazine *m = &mags[i];
		struct page_desc *chain = NULL;

		if (!__atomic_load_n(&m->nr_pages, __ATOMIC_RELAXED))
			continue;
		cs_enter();
		mp_lock(&m->lock);
		pages += m->nr_pages;
		for (unsigned c = 0; c < CACHE_CLASSES; c++)
			while (mag_list(m, c)->nr)
				chain_for_zone(&chain, __mag_take_tail(m, c), c);
		mp_unlock(&m->lock);
		cs_leave();
		if (chain)
			zone_free_list(chain);
	}
	return pages;
}

/* ---- statistics and fork ---------------------------------------------- */

void mag_view(unsigned i, struct cache_view *v)
{
	struct magazine *m = &mags[i];

	memset(v, 0, sizeof(*v));
	v->id = i;
	v->nr_pages = __atomic_load_n(&m->nr_pages, __ATOMIC_RELAXED);
	for (unsigned c = 0; c < CACHE_CLASSES; c++) {
		const struct mag_cold_counts *cc = &m->cold[c];
		v->nr_blocks[c] = mag_list(m, c)->nr;
		v->c[c] = (struct cache_counters){
			.allocs = m->hot[c].allocs,
			.hits = m->hot[c].allocs - cc->refills,  /* a refill hands out one block */
			.frees = m->hot[c].frees,
			.refills = cc->refills, .refill_pages = cc->refill_pages,
			.drains = cc->drains, .drain_pages = cc->drain_pages,
			.irq_hits = cc->irq_hits, .irq_misses = cc->irq_misses,
			.refill_min = cc->refill_min, .refill_max = cc->refill_max,
			.drain_min = cc->drain_min, .drain_max = cc->drain_max,
		};
	}
	v->lock_acquired = m->lock.acquired;
	v->lock_contended = m->lock.contended;
	v->lock_wait_ns = m->lock.wait_ns;
	v->trylock_failed = __atomic_load_n(&m->trylock_failed, __ATOMIC_RELAXED);
}

/* Fixed order: magazines by index, then (in the caller) the zone. */
void mag_fork_prepare(void)
{
	cs_enter();
	for (unsigned i = 0; i < nr_mags; i++)
		mp_lock(&mags[i].lock);
}

void mag_fork_parent(void)
{
	for (unsigned i = nr_mags; i-- > 0;)
		mp_unlock(&mags[i].lock);
	cs_leave();
}

/* Locks reset; counters restart from zero so each process reports its own
 * events (the lists and page counts are state, and stay). */
void mag_fork_child(void)
{
	for (unsigned i = 0; i < nr_mags; i++) {
		struct magazine *m = &mags[i];
		mp_lock_reset(&m->lock);
		m->lock.acquired = m->lock.contended = m->lock.wait_ns = 0;
		m->trylock_failed = 0;
		memset(m->hot, 0, sizeof(m->hot));
		memset(m->cold, 0, sizeof(m->cold));
	}
	cs_leave();
}

/*
 * A child of _Fork: no atfork handler ran, so a magazine whose lock is held
 * was held by a thread that does not exist here, maybe in the middle of a
 * list update.  Its blocks are abandoned (this process cannot trust the
 * lists) and the lock reset.  If this very thread is inside a cache section
 * (a handler that interrupted it called _Fork) one held lock is its own and
 * cannot be told from the others: then nothing is touched.
 */
void mag_fork_recover(void)
{
	if (mp_tls.in_cache)
		return;
	for (unsigned i = 0; i < nr_mags; i++) {
		struct magazine *m = &mags[i];
		if (!mp_lock_is_held(&m->lock))
			continue;
		for (unsigned c = 0; c < CACHE_CLASSES; c++)
			*mag_list(m, c) = (struct mag_list){ 0 };
		m->nr_pages = 0;
		mp_lock_reset(&m->lock);
	}
}
