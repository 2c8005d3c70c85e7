/*
 * magazine.c — the page cache of the 2013 RFC ("Per-cpu page allocator
 * replacement prototype").
 *
 * The magazines belong to the zone and are shared by every CPU.  Each is a
 * spinlock, one LIFO list of free blocks per cached order, and a page count.
 * A thread prefers the magazine its CPU maps to, (cpu >> 1) & (n - 1) in the
 * RFC (SMT siblings share one), cpu & (n - 1) by default, but may use any:
 * every magazine is lock-protected, so a stale CPU id costs locality only.
 *
 * Allocation (find_lock_filled_magazine):
 *   pass 1  round-robin from the preferred magazine, trylock each one whose
 *           list for this order looks non-empty (read before trying);
 *   pass 2  blocking lock on the first non-empty one;
 *   refill  take a batch from the zone (zone lock only), then trylock
 *           round-robin or block on the preferred magazine, splice the
 *           batch in and hand out its first block under the same hold.
 * Free: always a blocking lock on the preferred magazine; push at the head;
 *   when the magazine holds mag_limit pages or more, detach up to drain_max
 *   pages from the list tails (coldest first, round-robin over the orders,
 *   stopping after drain_min if the lock is contended), unlock, and only
 *   then free them to the zone.  The zone lock and a magazine lock are never
 *   held together.
 *
 * Magazine locks are "IRQ-unsafe": taken without blocking signals.  A signal
 * handler must never wait on one; handler-context callers come here only
 * through the _irq variants (one trylock, else the zone).  While a thread
 * holds a magazine lock mp_tls.in_cache is set, so that a re-entry the
 * trampoline did not see takes the zone path instead of deadlocking.
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

/* Per order, written under the lock on every operation. */
struct mag_hot_counts {
	uint64_t allocs;          /* blocks handed out, refills included */
	uint64_t frees;           /* blocks taken back */
};

/* Per order, written under the lock on the rare paths. */
struct mag_cold_counts {
	uint64_t refills, refill_pages, drains, drain_pages;
	uint64_t irq_hits, irq_misses;     /* irq_misses: atomic */
	uint32_t refill_min, refill_max, drain_min, drain_max;
};

/*
 * Layout: an order-0 allocation or free touches line 0 (lock, page count,
 * order-0 list) and line 1 (the per-op counters), nothing else; the other
 * orders' lists and the rare-path counters follow.
 *
 *   line 0   lock | nr_pages | drain_next | list[0]
 *   line 1   hot[0..3]
 *   line 2+  list[1..3] | trylock_failed | cold[0..3]
 */
struct magazine {
	struct mp_lock lock;              /* guards everything below */
	uint32_t nr_pages;                /* sum of nr << order over the lists */
	uint32_t drain_next;              /* order the next drain starts at */
	struct mag_list list0;            /* order 0 */
	struct mag_hot_counts hot[CACHE_ORDERS] cacheline_aligned;
	struct mag_list list_hi[CACHE_ORDERS - 1];   /* orders 1..3 */
	uint64_t trylock_failed;          /* atomic: failed pass-1 trylocks */
	struct mag_cold_counts cold[CACHE_ORDERS];
} cacheline_aligned;
_Static_assert(offsetof(struct magazine, hot) == CACHELINE, "lock and order-0 list share line 0");

static inline struct mag_list *mag_list(struct magazine *m, unsigned order)
{
	return order ? &m->list_hi[order - 1] : &m->list0;
}

static struct magazine mags[MAX_CACHES];
static unsigned nr_mags = 1, mag_mask, mag_shift;

void mag_init(void)
{
	unsigned n = opt.magazines;
	if (n == 0) {
		n = 2;
		while (n < (unsigned)os.ncpus() && n < MAX_CACHES)
			n <<= 1;
	}
	memset(mags, 0, sizeof(mags));
	nr_mags = n;
	mag_mask = n - 1;
	mag_shift = opt.mag_map == MAP_PAIR ? 1 : 0;
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

static inline void cs_enter(void)
{
	mp_tls.in_cache = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void cs_leave(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	mp_tls.in_cache = 0;
}

/* ---- lists (magazine lock held) --------------------------------------- */

/*
 * The lists are doubly linked so that drains can take from the tail, but a
 * pop does not clear the new head's prev: that would write a second
 * descriptor, likely dirtied by another CPU.  Every node's prev is exact
 * except the head's, and the head's is never read: take_tail reads prev only
 * when the tail is not also the head.
 */
static inline void __mag_push(struct magazine *m, struct page_desc *pd, unsigned order)
{
	struct mag_list *l = mag_list(m, order);
	pd->next = l->head;
	if (l->head)
		l->head->prev = pd;
	else
		l->tail = pd;
	l->head = pd;
	l->nr++;
	m->nr_pages += 1u << order;
}

static inline struct page_desc *__mag_pop(struct magazine *m, unsigned order)
{
	struct mag_list *l = mag_list(m, order);
	struct page_desc *pd = l->head;
	l->head = pd->next;
	if (!l->head)
		l->tail = NULL;
	l->nr--;
	m->nr_pages -= 1u << order;
	return pd;
}

static inline struct page_desc *__mag_take_tail(struct magazine *m, unsigned order)
{
	struct mag_list *l = mag_list(m, order);
	struct page_desc *pd = l->tail;
	if (l->nr == 1) {
		l->head = l->tail = NULL;
	} else {
		l->tail = pd->prev;
		l->tail->next = NULL;
	}
	l->nr--;
	m->nr_pages -= 1u << order;
	return pd;
}

static inline void note_batch(uint32_t *lo, uint32_t *hi, uint32_t pages)
{
	if (*lo == 0 || pages < *lo)
		*lo = pages;
	if (pages > *hi)
		*hi = pages;
}

/* Detaches up to drain_max pages from the list tails onto *chain. */
static void __mag_drain(struct magazine *m, unsigned trigger_order, struct page_desc **chain)
{
	uint32_t pages = 0;
	unsigned o = m->drain_next;

	while (pages < opt.drain_max && m->nr_pages) {
		if (pages >= opt.drain_min && mp_lock_is_contended(&m->lock))
			break;
		for (unsigned k = 0; k < CACHE_ORDERS && !mag_list(m, o)->nr; k++)
			o = (o + 1) % CACHE_ORDERS;
		if (pages && pages + (1u << o) > opt.drain_max)
			break;      /* a drain never moves more than drain_max */
		struct page_desc *pd = __mag_take_tail(m, o);
		pd->flags = 0;
		pd->order = (uint8_t)o;
		pd->next = *chain;
		*chain = pd;
		pages += 1u << o;
		o = (o + 1) % CACHE_ORDERS;
	}
	m->drain_next = o;
	struct mag_cold_counts *c = &m->cold[trigger_order];
	c->drains++;
	c->drain_pages += pages;
	note_batch(&c->drain_min, &c->drain_max, pages);
}

/* ---- allocation -------------------------------------------------------- */

static inline struct page_desc *__mag_hand_out(struct magazine *m, unsigned order)
{
	m->hot[order].allocs++;
	return __mag_pop(m, order);
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

static NOINLINE struct page_desc *mag_alloc_slow(unsigned pref, unsigned order)
{
	struct page_desc *pd, *head, *tail;

	/* pass 1, after the preferred magazine (tried by mag_alloc) */
	for (unsigned i = 1; i < nr_mags; i++) {
		struct magazine *m = &mags[(pref + i) & mag_mask];
		if (!__atomic_load_n(&mag_list(m, order)->nr, __ATOMIC_RELAXED))
			continue;
		if (!mp_trylock(&m->lock)) {
			__atomic_add_fetch(&m->trylock_failed, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (mag_list(m, order)->nr) {
			pd = __mag_hand_out(m, order);
			mp_unlock(&m->lock);
			cs_leave();
			return pd;
		}
		mp_unlock(&m->lock);
	}

	/* pass 2: wait on the first non-empty magazine */
	for (unsigned i = 0; i < nr_mags; i++) {
		struct magazine *m = &mags[(pref + i) & mag_mask];
		if (!__atomic_load_n(&mag_list(m, order)->nr, __ATOMIC_RELAXED))
			continue;
		mp_lock(&m->lock);
		if (mag_list(m, order)->nr) {
			pd = __mag_hand_out(m, order);
			mp_unlock(&m->lock);
			cs_leave();
			return pd;
		}
		mp_unlock(&m->lock);
	}

	/* refill: a batch from the zone, in blocks of this order */
	unsigned max = opt.refill_max >> order, min = opt.refill_min >> order;
	unsigned n = zone_take_batch(order, max ? max : 1, min ? min : 1, &head, &tail);
	if (n == 0) {
		cs_leave();
		return NULL;
	}
	for (pd = head; pd; pd = pd->next) {
		pd->flags = PG_CACHED | (pd->flags & PG_ZERO);
		pd->order = (uint8_t)order;
	}
	struct magazine *m = mag_lock_any(pref);
	pd = head;
	if (n > 1) {   /* splice head->next .. tail in front of the list */
		struct mag_list *l = mag_list(m, order);
		struct page_desc *first = head->next;
		first->prev = NULL;
		tail->next = l->head;
		if (l->head)
			l->head->prev = tail;
		else
			l->tail = tail;
		l->head = first;
		l->nr += n - 1;
		m->nr_pages += (n - 1) << order;
	}
	m->hot[order].allocs++;
	struct mag_cold_counts *c = &m->cold[order];
	c->refills++;
	c->refill_pages += (uint64_t)n << order;
	note_batch(&c->refill_min, &c->refill_max, n << order);
	mp_unlock(&m->lock);
	cs_leave();
	return pd;
}

/*
 * Fast path: the preferred magazine has a block of this order and its lock
 * is free — a load of the CPU id, one read of the list count, one atomic
 * exchange, a pop, a store to release.  Everything else is mag_alloc_slow.
 */
struct page_desc *mag_alloc(unsigned order)
{
	unsigned pref = mag_preferred();

	struct magazine *m = &mags[pref];

	cs_enter();
	if (likely(__atomic_load_n(&mag_list(m, order)->nr, __ATOMIC_RELAXED))) {
		if (likely(mp_trylock(&m->lock))) {
			if (likely(mag_list(m, order)->nr)) {
				struct page_desc *pd = __mag_hand_out(m, order);
				mp_unlock(&m->lock);
				cs_leave();
				return pd;
			}
			mp_unlock(&m->lock);
		} else {
			__atomic_add_fetch(&m->trylock_failed, 1, __ATOMIC_RELAXED);
		}
	}
	return mag_alloc_slow(pref, order);
}

/* Handler context, "trylock" policy: the preferred magazine or nothing. */
struct page_desc *mag_alloc_irq(unsigned order)
{
	struct magazine *m = &mags[mag_preferred()];

	if (!__atomic_load_n(&mag_list(m, order)->nr, __ATOMIC_RELAXED) || !mp_trylock(&m->lock)) {
		__atomic_add_fetch(&m->cold[order].irq_misses, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	struct page_desc *pd = NULL;
	if (mag_list(m, order)->nr) {
		pd = __mag_hand_out(m, order);
		m->cold[order].irq_hits++;
	} else {
		__atomic_add_fetch(&m->cold[order].irq_misses, 1, __ATOMIC_RELAXED);
	}
	mp_unlock(&m->lock);
	return pd;
}

/* ---- free -------------------------------------------------------------- */

static inline void mark_cached(struct page_desc *pd, unsigned order, unsigned owner)
{
	pd->flags = PG_CACHED;
	pd->order = (uint8_t)order;
	pd->owner = (uint16_t)owner;
}

void mag_free(struct page_desc *pd, unsigned order)
{
	unsigned pref = mag_preferred();
	struct magazine *m = &mags[pref];
	struct page_desc *chain = NULL;

	mark_cached(pd, order, pref);
	cs_enter();
	mp_lock(&m->lock);
	__mag_push(m, pd, order);
	m->hot[order].frees++;
	if (unlikely(m->nr_pages >= opt.mag_limit))
		__mag_drain(m, order, &chain);
	mp_unlock(&m->lock);
	cs_leave();
	if (chain)
		zone_free_list(chain);
}

bool mag_free_irq(struct page_desc *pd, unsigned order)
{
	unsigned pref = mag_preferred();
	struct magazine *m = &mags[pref];
	struct page_desc *chain = NULL;

	if (!mp_trylock(&m->lock)) {
		__atomic_add_fetch(&m->cold[order].irq_misses, 1, __ATOMIC_RELAXED);
		return false;
	}
	mark_cached(pd, order, pref);
	__mag_push(m, pd, order);
	m->hot[order].frees++;
	m->cold[order].irq_hits++;
	if (m->nr_pages >= opt.mag_limit)
		__mag_drain(m, order, &chain);
	mp_unlock(&m->lock);
	if (chain)
		zone_free_list(chain);
	return true;
}

/*
 * free_base_page_list (the RFC's patch 20, release_pages): one hold of the
 * preferred magazine for the whole list; what goes over the limit is
 * detached as it happens and freed to the zone once, after unlocking.
 * Each pd carries its order in pd->order.
 */
void mag_free_bulk(struct page_desc **pds, size_t n)
{
	unsigned pref = mag_preferred();
	struct magazine *m = &mags[pref];
	struct page_desc *chain = NULL;

	cs_enter();
	mp_lock(&m->lock);
	for (size_t i = 0; i < n; i++) {
		unsigned order = pds[i]->order;
		mark_cached(pds[i], order, pref);
		__mag_push(m, pds[i], order);
		m->hot[order].frees++;
		if (m->nr_pages >= opt.mag_limit)
			__mag_drain(m, order, &chain);
	}
	mp_unlock(&m->lock);
	cs_leave();
	if (chain)
		zone_free_list(chain);
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
		for (unsigned o = 0; o < CACHE_ORDERS; o++) {
			while (mag_list(m, o)->nr) {
				struct page_desc *pd = __mag_take_tail(m, o);
				pd->flags = 0;
				pd->order = (uint8_t)o;
				pd->next = chain;
				chain = pd;
				pages += 1u << o;
			}
		}
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
	for (unsigned o = 0; o < CACHE_ORDERS; o++) {
		const struct mag_cold_counts *c = &m->cold[o];
		v->nr_blocks[o] = mag_list(m, o)->nr;
		v->c[o] = (struct cache_counters){
			.allocs = m->hot[o].allocs,
			.hits = m->hot[o].allocs - c->refills,  /* each refill hands out one block */
			.frees = m->hot[o].frees,
			.refills = c->refills, .refill_pages = c->refill_pages,
			.drains = c->drains, .drain_pages = c->drain_pages,
			.irq_hits = c->irq_hits, .irq_misses = c->irq_misses,
			.refill_min = c->refill_min, .refill_max = c->refill_max,
			.drain_min = c->drain_min, .drain_max = c->drain_max,
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
