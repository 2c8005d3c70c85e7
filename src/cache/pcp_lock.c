/*
 * pcp_lock.c — Linux 6.x's per-CPU page lists, the design the RFC's
 * magazines would meet today: one list per CPU (the magazines of
 * magazine.h, one per CPU), its lock only ever trylocked by the local CPU.
 * A failed trylock (a handler interrupted the owner, a remote drain holds
 * it) sends the request to the zone: no round-robin, no waiting.  pcp_high
 * is the limit a free drains at, pcp_batch the refill and drain batch.
 * Remote drains (drain_all) simply take the lock.
 *
 * As in magazine.c the locks are "IRQ-unsafe": a handler comes here only
 * through the _irq entry points (signal:trylock), else it uses the zone.
 */
#include "cache/magazine.h"

static bool pcpl_init(void)
{
	unsigned n = 1;

	while (n < (unsigned)os.ncpus() && n < MAX_CACHES)
		n <<= 1;
	mag_configure(n, 0, opt.pcp_high, opt.pcp_batch, opt.pcp_batch, opt.pcp_batch,
		      opt.pcp_batch);
	return true;
}

/* The local list was empty: a batch from the zone, filed under the local
 * lock if it can be had; if not (a remote drain holds it), one block for
 * the caller and the rest straight back. */
static NOINLINE struct page_desc *pcpl_refill(unsigned pref, unsigned cls)
{
	struct magazine *m = &mags[pref];
	struct page_desc *head, *tail;
	unsigned n = mag_take_batch(m, cls, &head, &tail);

	if (n == 0) {
		cs_leave();
		return NULL;
	}
	if (!mag_trylock(m)) {
		__atomic_add_fetch(&m->trylock_failed, 1, __ATOMIC_RELAXED);
		cs_leave();
		if (head->next)
			zone_free_list(head->next);
		return head;
	}
	return mag_fill(m, cls, head, tail, n);
}

static struct page_desc *pcpl_alloc(size_t npages)
{
	unsigned pref = mag_preferred(), cls = (unsigned)npages - 1;
	struct magazine *m = &mags[pref];

	cs_enter();
	struct page_desc *pd = mag_take_local(m, cls);
	if (likely(pd))
		return pd;
	if (mp_lock_is_held(&m->lock)) {
		cs_leave();       /* a failed trylock means the zone */
		return NULL;
	}
	return pcpl_refill(pref, cls);
}

static bool pcpl_free(struct page_desc *pd)
{
	unsigned pref = mag_preferred(), cls = pd->npages - 1;
	struct magazine *m = &mags[pref];
	struct page_desc *chain = NULL;

	cs_enter();
	if (!mag_trylock(m)) {
		__atomic_add_fetch(&m->trylock_failed, 1, __ATOMIC_RELAXED);
		cs_leave();
		return false;               /* the caller frees it to the zone */
	}
	mark_cached(pd, pref);
	mag_put(m, pd, cls, &chain);
	mag_unlock(m);
	cs_leave();
	if (chain)
		zone_free_list(chain);
	return true;
}

const struct cache_ops cache_pcp_lock_ops = {
	.name = "pcp-lock",
	.max_order = 3,
	.init = pcpl_init,
	.alloc = pcpl_alloc,
	.free = pcpl_free,
	MAG_SHARED_OPS,
};
