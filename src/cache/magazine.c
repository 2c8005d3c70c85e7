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
 * The magazine and its list operations are shared with pcp_lock.c
 * (magazine.h), which runs them as Linux 6.x's per-CPU lists.
 *
 * Magazine locks are "IRQ-unsafe": taken without keeping signals out.  A
 * signal handler must never wait on one; handler-context callers come here
 * only through the _irq variants (one trylock, else the zone).  While a
 * thread holds a magazine lock mp_tls.in_cache is set, so that a re-entry
 * the trampoline did not see takes the zone path instead of deadlocking.
 */
#include <stddef.h>
#include <string.h>

#include "cache/magazine.h"

struct magazine mags[MAX_CACHES];
unsigned nr_mags = 1, mag_mask, mag_shift;
uint32_t mag_limit, mag_refill_max, mag_refill_min, mag_drain_max, mag_drain_min;

void mag_configure(unsigned n, unsigned shift, uint32_t limit, uint32_t refill_max,
		   uint32_t refill_min, uint32_t drain_max, uint32_t drain_min)
{
	memset(mags, 0, sizeof(mags));
	nr_mags = n;
	mag_mask = n - 1;
	mag_shift = shift;
	mag_limit = limit;
	mag_refill_max = refill_max;
	mag_refill_min = refill_min;
	mag_drain_max = drain_max;
	mag_drain_min = drain_min;
}

static bool magazine_init(void)
{
	unsigned n = opt.magazines;

	if (n == 0) {
		n = 2;            /* at least two magazines */
		while (n < (unsigned)os.ncpus() && n < MAX_CACHES)
			n <<= 1;
	}
	mag_configure(n, opt.mag_map == MAP_PAIR ? 1 : 0, opt.mag_limit, opt.refill_max,
		      opt.refill_min, opt.drain_max, opt.drain_min);
	return true;
}

unsigned mag_count(void)
{
	return nr_mags;
}

/* Detaches up to drain_max pages from the list tails onto *chain,
 * round-robin over the classes; the class that triggered the drain (its
 * newest block was just pushed) only when no other class has any. */
void mag_drain_some(struct magazine *m, unsigned trigger, struct page_desc **chain)
{
	uint32_t pages = 0;
	unsigned c = m->drain_next;

	while (pages < mag_drain_max && m->nr_pages) {
		if (pages >= mag_drain_min && mp_lock_is_contended(&m->lock))
			break;
		bool others = m->nr_pages > mag_list(m, trigger)->nr * (trigger + 1);
		for (unsigned k = 0; k < MAG_CLASSES; k++, c = (c + 1) % MAG_CLASSES)
			if (mag_list(m, c)->nr && (c != trigger || !others))
				break;
		if (pages && pages + c + 1 > mag_drain_max)
			break;      /* a drain never moves more than mag_drain_max */
		chain_for_zone(chain, __mag_take_tail(m, c), c);
		pages += c + 1;
		c = (c + 1) % MAG_CLASSES;
	}
	m->drain_next = c;
	MP_PROBE3(cache_drain, (int)(m - mags), trigger + 1, pages);
	struct mag_cold_counts *cc = &m->cold[trigger];
	cc->drains++;
	cc->drain_pages += pages;
	note_batch(&cc->drain_min, &cc->drain_max, pages);
}


/* ---- allocation -------------------------------------------------------- */

/* find_lock_magazine: trylock round-robin from the preferred one, else
 * wait on the preferred one.  Used to file a refill. */
static struct magazine *mag_lock_any(unsigned pref)
{
	for (unsigned i = 0; i < nr_mags; i++) {
		struct magazine *m = &mags[(pref + i) & mag_mask];
		if (mag_trylock(m))
			return m;
	}
	mag_lock(&mags[pref]);
	return &mags[pref];
}

unsigned mag_take_batch(struct magazine *m, unsigned cls, struct page_desc **head,
			struct page_desc **tail)
{
	unsigned pages = cls + 1;
	uint32_t held = __atomic_load_n(&m->nr_pages, __ATOMIC_RELAXED);
	uint32_t room = held < mag_limit ? mag_limit - held : 0;
	uint32_t want = mag_refill_max < room ? mag_refill_max : room;
	unsigned min = (mag_refill_min + pages - 1) / pages, max = want / pages;
	if (max < min)
		max = min;      /* never below refill_min: a drain makes room */
	unsigned n = zone_take_batch(pages, max ? max : 1, min ? min : 1, head, tail);
	for (struct page_desc *pd = *head; n && pd; pd = pd->next)
		pd->flags = PG_CACHED | (pd->flags & PG_ZERO);
	return n;
}

struct page_desc *mag_fill(struct magazine *m, unsigned cls, struct page_desc *head,
			   struct page_desc *tail, unsigned n)
{
	unsigned pages = cls + 1;
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
	MP_PROBE3(cache_refill, (int)(m - mags), pages, n * pages);
	note_batch(&c->refill_min, &c->refill_max, n * pages);
	/* With several size classes, refills alone can push a magazine over
	 * its limit: bring it back, coldest blocks first, as a free would. */
	struct page_desc *chain = NULL;
	while (m->nr_pages >= mag_limit)
		mag_drain_some(m, cls, &chain);
	mag_unlock(m);
	cs_leave();
	if (chain)
		zone_free_list(chain);
	return head;
}

static NOINLINE struct page_desc *magazine_alloc_slow(unsigned pref, unsigned cls)
{
	struct page_desc *head, *tail;

	/* pass 1 after the preferred magazine (tried by magazine_alloc), then
	 * pass 2, waiting */
	for (unsigned pass = 0; pass < 2; pass++) {
		for (unsigned i = pass ? 0 : 1; i < nr_mags; i++) {
			struct magazine *m = &mags[(pref + i) & mag_mask];
			if (mag_try_filled(m, cls, pass == 1)) {
				struct page_desc *pd = mag_hand_out(m, cls);
				mag_unlock(m);
				cs_leave();
				return pd;
			}
		}
	}
	/* refill: a batch of blocks of this class from the zone, no larger
	 * than the room left under the limit in the preferred magazine (with
	 * several size classes a full-size refill could overfill it) */
	unsigned n = mag_take_batch(&mags[pref], cls, &head, &tail);
	if (n == 0) {
		cs_leave();
		return NULL;
	}
	return mag_fill(mag_lock_any(pref), cls, head, tail, n);
}

/*
 * Fast path: the preferred magazine has a block of this size and its lock
 * is free — a load of the CPU id, one read of the list count, one atomic
 * exchange, a pop, a store to release.  Everything else is the slow path.
 */
static struct page_desc *magazine_alloc(size_t npages)
{
	unsigned pref = mag_preferred(), cls = (unsigned)npages - 1;
	struct magazine *m = &mags[pref];

	cs_enter();
	struct page_desc *pd = mag_take_local(m, cls);
	if (likely(pd))
		return pd;
	return magazine_alloc_slow(pref, cls);
}

/* Handler context, "trylock" policy: the preferred magazine or nothing. */
struct page_desc *mag_alloc_irq(size_t npages)
{
	unsigned cls = (unsigned)npages - 1;
	struct magazine *m = &mags[mag_preferred()];

	if (!__atomic_load_n(&mag_list(m, cls)->nr, __ATOMIC_RELAXED) || !mag_trylock(m)) {
		__atomic_add_fetch(&m->cold[cls].irq_misses, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	struct page_desc *pd = NULL;
	if (mag_list(m, cls)->nr) {
		pd = mag_hand_out(m, cls);
		m->cold[cls].irq_hits++;
	} else {
		__atomic_add_fetch(&m->cold[cls].irq_misses, 1, __ATOMIC_RELAXED);
	}
	mag_unlock(m);
	return pd;
}

/* ---- free -------------------------------------------------------------- */

/* The RFC: frees wait for the preferred magazine. */
static bool magazine_free(struct page_desc *pd)
{
	unsigned pref = mag_preferred(), cls = pd->npages - 1;
	struct magazine *m = &mags[pref];
	struct page_desc *chain = NULL;

	cs_enter();
	mag_lock(m);
	mark_cached(pd, pref);
	mag_put(m, pd, cls, &chain);
	mag_unlock(m);
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

	if (!mag_trylock(m)) {
		__atomic_add_fetch(&m->cold[cls].irq_misses, 1, __ATOMIC_RELAXED);
		return false;
	}
	mark_cached(pd, pref);
	mag_put(m, pd, cls, &chain);
	m->cold[cls].irq_hits++;
	mag_unlock(m);
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
	mag_lock(m);
	while (pd) {
		struct page_desc *next = pd->next;   /* the push relinks pd */
		mark_cached(pd, pref);
		mag_put(m, pd, pd->npages - 1, &chain);
		pd = next;
	}
	mag_unlock(m);
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
		mag_lock(m);
		pages += m->nr_pages;
		MP_PROBE3(cache_drain, (int)i, 0u, m->nr_pages);   /* class 0: every class */
		for (unsigned c = 0; c < MAG_CLASSES; c++)
			while (mag_list(m, c)->nr)
				chain_for_zone(&chain, __mag_take_tail(m, c), c);
		mag_unlock(m);
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
	for (unsigned c = 0; c < MAG_CLASSES; c++) {
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

/* Fixed order: magazines by index, then (in the caller) the zone; signals
 * are held back by the caller (cache.c). */
void mag_fork_prepare(void)
{
	for (unsigned i = 0; i < nr_mags; i++)
		mp_lock(&mags[i].lock);
}

void mag_fork_parent(void)
{
	for (unsigned i = nr_mags; i-- > 0;)
		mp_unlock(&mags[i].lock);
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
}

/*
 * A child of _Fork: no atfork handler ran, so a magazine whose lock is held
 * was held by a thread that does not exist here, maybe in the middle of a
 * list update.  Its blocks are abandoned (this process cannot trust the
 * lists) and the lock reset.  One this very thread holds (a handler the
 * trampoline never saw interrupted it and called _Fork) is left to the code
 * that holds it: the holder's mark tells them apart.  in_cache cannot: the
 * recovery runs from mp_lock_slow, in a section waiting for the lock.
 */
void mag_fork_recover(void)
{
	for (unsigned i = 0; i < nr_mags; i++) {
		struct magazine *m = &mags[i];
		if (!mp_lock_is_held(&m->lock) || m->holder == mp_self_mark())
			continue;
		m->holder = 0;
		for (unsigned c = 0; c < MAG_CLASSES; c++)
			*mag_list(m, c) = (struct mag_list){ 0 };
		m->nr_pages = 0;
		mp_lock_reset(&m->lock);
	}
}

const struct cache_ops cache_magazine_ops = {
	.name = "magazine",
	.max_order = 3,
	.init = magazine_init,
	.alloc = magazine_alloc,
	.free = magazine_free,
	MAG_SHARED_OPS,
};
