/*
 * bonwick_remote.c — what is done to the default cache's arrays and depot
 * from outside their CPU's own path (bonwick.c): the global drain (zone
 * exhausted, magpage_drain, malloc_trim), the decay purge's hook, the
 * statistics' view, and fork.
 *
 * A remote drain reaches other CPUs' arrays as pcp_rseq.c does: set the
 * stopped bit of each count, fence the CPU with membarrier
 * (cache_stop_cpu), then empty the array.
 */
#include <pthread.h>
#include <string.h>

#include "internal.h"
#include "cache/bonwick_impl.h"
#include "platform/rseq.h"

/* ---- global drain ------------------------------------------------------ */

#if MP_HAVE_RSEQ
/* The IPI: stop every array of cpu, fence it, then they are ours. */
static size_t drain_cpu(unsigned cpu)
{
	struct bw_cpu *c = bw_cpu_of(cpu);
	size_t pages = 0;
	bool any = false;

	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		any |= __atomic_load_n(&c->cls[k].h.count, __ATOMIC_RELAXED) != 0;
	if (!any)
		return 0;
	if (!cache_stop_cpu(cpu, &c->cls[0].h.count, sizeof(c->cls[0]), CACHE_CLASSES, 32,
			    BW_STOPPED, &bw_fenced))
		return 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint32_t n = __atomic_load_n(&c->cls[k].h.count, __ATOMIC_ACQUIRE) & ~BW_STOPPED;
		/* Empty but still stopped while its blocks go to the zone: a
		 * child of _Fork taken meanwhile must not free them again. */
		__atomic_store_n(&c->cls[k].h.count, BW_STOPPED, __ATOMIC_RELEASE);
		bw_free_pfns(c->cls[k].slots, n, k);
		pages += (size_t)n * (k + 1);
		if (n)
			MP_PROBE3(cache_drain, (int)cpu, k + 1, n * (k + 1));
		c->cls[k].h.high = 2 * bw_batch[k];
		c->c[k].tune = (struct cache_tune){ 0 };
		__atomic_store_n(&c->cls[k].h.count, 0, __ATOMIC_RELEASE);
	}
	return pages;
}
#endif

/* What a CPU's arrays have done: any refill, spill or change of count
 * since the last look changes it (the fast paths count nothing, but
 * move the counts). */
static uint64_t traffic_of(const struct bw_cpu *c)
{
	uint64_t h = 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		h = h * 31 + c->c[k].refills + (c->c[k].spills << 20);
		h = h * 31 + __atomic_load_n(&c->cls[k].h.count, __ATOMIC_RELAXED);
	}
	return h;
}

/* Bonwick and Adams' depot working set: the blocks at the bottom of a
 * class's stack that no allocation reached since the last decay (low of
 * them) were not needed in that interval; they go to the zone, the oldest
 * first, and the zone purges them once they have aged there.  A class in
 * steady use keeps what it cycles through; an idle one empties. */
static size_t depot_reap(struct bw_depot *d, unsigned k)
{
	uint32_t buf[BW_MAXBUF];
	size_t pages = 0;
	uint8_t was;

	for (;;) {
		unsigned n = 0;
		if (!bw_depot_lock(d, false, &was))
			break;
		if (d->low) {
			n = d->low < BW_MAXBUF ? d->low : BW_MAXBUF;
			memcpy(buf, d->pfns, n * sizeof(uint32_t));
			memmove(d->pfns, d->pfns + n, (d->nr - n) * sizeof(uint32_t));
			d->nr -= n;
			d->low -= n;
			d->out += n;
		} else {
			d->low = d->nr;         /* the next interval starts */
		}
		bw_depot_unlock(d, was);
		if (!n)
			break;
		bw_free_pfns(buf, n, k);
		pages += (size_t)n * (k + 1);
	}
	return pages;
}

/*
 * The decay purge's hook, about every cache_decay_ms: a CPU whose arrays
 * saw no traffic since the last call is drained remotely, as drain_all
 * would, which also puts its high back to two batches; each depot class
 * gives back what it did not use in the interval (depot_reap).  A busy CPU
 * whose count happens to read the same twice is drained too, and refills:
 * a cost of one batch.  Per-thread arrays (no rseq) decay only when their
 * thread exits.
 */
size_t bw_decay(void)
{
	size_t pages = 0;
	uint8_t was;

	if (!cache_drain_begin(false, &was))
		return 0;
#if MP_HAVE_RSEQ
	for (unsigned cpu = 0; bw_rseq && cpu < bw_ncpus; cpu++) {
		struct bw_cpu *c = bw_cpu_of(cpu);
		uint64_t seen = traffic_of(c);
		if (seen == c->decay_seen)
			pages += drain_cpu(cpu);
		c->decay_seen = traffic_of(c);
	}
#endif
	for (unsigned sh = 0; sh < bw_shards; sh++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++)
			pages += depot_reap(&bw_depots[sh][k], k);
	cache_drain_end(was);
	__atomic_add_fetch(&bw_decayed, pages, __ATOMIC_RELAXED);
	return pages;
}

size_t bw_drain_all(void)
{
	size_t pages = 0;
	bool irq = sigctx_in_irq();
	uint8_t was;

	if (!cache_drain_begin(irq, &was))
		return 0;
#if MP_HAVE_RSEQ
	if (bw_rseq)
		for (unsigned c = 0; c < bw_ncpus; c++)
			pages += drain_cpu(c);
#endif
	if (!bw_rseq && my_cache && !irq) {
		/* Other threads' arrays are theirs alone: only this one. */
		for (unsigned k = 0; k < CACHE_CLASSES; k++) {
			uint32_t n = my_cache->cache.cls[k].h.count;
			bw_free_pfns(my_cache->cache.cls[k].slots, n, k);
			pages += (size_t)n * (k + 1);
			if (n)
				MP_PROBE3(cache_drain, -1, k + 1, n * (k + 1));
			my_cache->cache.cls[k].h.count = 0;
		}
	}
	for (unsigned sh = 0; sh < bw_shards; sh++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++) {
			uint32_t buf[BW_MAXBUF];
			unsigned n;
			while ((n = bw_depot_take(&bw_depots[sh][k], buf, BW_MAXBUF, irq,
						  false)) != 0) {
				bw_free_pfns(buf, n, k);
				pages += (size_t)n * (k + 1);
			}
		}
	cache_drain_end(was);
	return pages;
}

/* ---- statistics and fork ----------------------------------------------- */

/* Adds counters of every class (a CPU's, or the exited threads') to v. */
static void view_add_counts(struct cache_view *v, const struct bw_counts s[CACHE_CLASSES])
{
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		struct cache_counters c = {
			.allocs = s[k].allocs, .frees = s[k].frees,
			.hits = s[k].allocs > s[k].refills + s[k].borrowed
					? s[k].allocs - s[k].refills - s[k].borrowed : 0,
			.refills = s[k].refills, .refill_pages = s[k].refill_blocks * (k + 1),
			.drains = s[k].spills, .drain_pages = s[k].spill_blocks * (k + 1),
		};
		cache_counters_add(&v->c[k], &c);
	}
}

/* Adds a CPU's (or thread's) arrays and counters to v. */
static void view_add(struct cache_view *v, const struct bw_cpu *c)
{
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint32_t n = __atomic_load_n(&c->cls[k].h.count, __ATOMIC_RELAXED) & ~BW_STOPPED;
		v->nr_blocks[k] += n;
		v->nr_pages += n * (k + 1);
	}
	view_add_counts(v, c->c);
	v->restarts += c->restarts;
}

/* Per-thread front end: the live threads; under bw_threads_lock. */
static unsigned live_threads(void)
{
	unsigned n = 0;
	for (struct bw_thread *t = bw_threads; t; t = t->next)
		n++;
	return n;
}

/* One cache per CPU; without rseq one per live thread, and once threads
 * have exited one more, their counts, so that the totals miss nothing. */
unsigned bw_count(void)
{
	if (bw_rseq)
		return bw_ncpus;
	uint8_t was = sigctx_hold();
	mp_lock(&bw_threads_lock);
	unsigned n = live_threads() + (bw_gone_threads != 0);
	mp_unlock(&bw_threads_lock);
	sigctx_unhold(was);
	return n;
}

/* Cache i as bw_count numbers them: CPU i's arrays; without rseq thread
 * i's, or the exited threads' counts (threads may have come and gone
 * since bw_count: one past the last is empty; bw_views looks once). */
void bw_view(unsigned i, struct cache_view *v)
{
	memset(v, 0, sizeof(*v));
	v->id = i;
	if (bw_rseq) {
		view_add(v, bw_cpu_of(i));
		return;
	}
	uint8_t was = sigctx_hold();
	mp_lock(&bw_threads_lock);
	unsigned j = 0;
	struct bw_thread *t = bw_threads;
	for (; t && j < i; t = t->next)
		j++;
	if (t) {
		view_add(v, &t->cache);
	} else if (j == i && bw_gone_threads) {
		view_add_counts(v, bw_gone);
		v->merged = v->gone = bw_gone_threads;
	}
	mp_unlock(&bw_threads_lock);
	sigctx_unhold(was);
}

/*
 * The rows, as cache_views says: the CPUs', or, without rseq, the live
 * threads' and the exited threads' counts, all under one hold of the
 * thread list's lock, so that a thread made or gone meanwhile shifts no
 * row (and one walk of the list, not one per row).
 */
unsigned bw_views(struct cache_view *out, unsigned max)
{
	if (bw_rseq)
		return cache_fold(out, max, bw_ncpus, bw_view);
	uint8_t was = sigctx_hold();
	mp_lock(&bw_threads_lock);
	unsigned n = live_threads() + (bw_gone_threads != 0);
	unsigned rows = n < max ? n : max, i = 0;
	memset(out, 0, rows * sizeof(*out));
	for (unsigned r = 0; r < rows; r++)
		out[r].id = r;
	/* cache i's row: its own, or past the others the last, a sum */
	for (struct bw_thread *t = bw_threads; t && rows; t = t->next, i++) {
		struct cache_view *v = &out[i < rows ? i : rows - 1];
		view_add(v, &t->cache);
		if (n > max && i >= rows - 1)
			v->merged++;
	}
	if (bw_gone_threads && rows) {
		struct cache_view *v = &out[i < rows ? i : rows - 1];
		view_add_counts(v, bw_gone);
		v->merged += bw_gone_threads;
		v->gone += bw_gone_threads;
	}
	mp_unlock(&bw_threads_lock);
	sigctx_unhold(was);
	return rows;
}

/* After a cache's lines: rseq's restarts (the per-thread arrays have
 * none). */
void bw_text_row(struct fmt_buf *b, unsigned i, const struct cache_view *v)
{
	if (bw_rseq)
		cache_text_restarts(b, i, v);
}

uint64_t bw_depot_pages(void)
{
	uint64_t pages = 0;
	for (unsigned sh = 0; sh < bw_shards; sh++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++)
			pages += __atomic_load_n(&bw_depots[sh][k].nr, __ATOMIC_RELAXED) * (k + 1);
	return pages;
}

/* Class k's depot, all shards together. */
struct depot_sum {
	uint64_t nr, cap, in, out, overflow, unclaimed;
};

static struct depot_sum depot_sum(unsigned k)
{
	struct depot_sum t = { 0 };
	for (unsigned sh = 0; sh < bw_shards; sh++) {
		const struct bw_depot *d = &bw_depots[sh][k];
		t.nr += __atomic_load_n(&d->nr, __ATOMIC_RELAXED);
		t.cap += d->cap;
		t.in += d->in;
		t.out += d->out;
		t.overflow += d->overflow;
		t.unclaimed += d->unclaimed;
	}
	return t;
}

/* Per class, the allocations that borrowed a larger block, over every CPU
 * (or thread); their total is returned. */
static uint64_t borrowed_sums(uint64_t out[CACHE_CLASSES])
{
	uint64_t total = 0;
	memset(out, 0, CACHE_CLASSES * sizeof(out[0]));
	if (bw_rseq) {
		for (unsigned i = 0; i < bw_ncpus; i++)
			for (unsigned k = 0; k < CACHE_CLASSES; k++)
				out[k] += bw_cpu_of(i)->c[k].borrowed;
	} else {
		uint8_t was = sigctx_hold();
		mp_lock(&bw_threads_lock);
		for (struct bw_thread *t = bw_threads; t; t = t->next)
			for (unsigned k = 0; k < CACHE_CLASSES; k++)
				out[k] += t->cache.c[k].borrowed;
		for (unsigned k = 0; k < CACHE_CLASSES; k++)
			out[k] += bw_gone[k].borrowed;
		mp_unlock(&bw_threads_lock);
		sigctx_unhold(was);
	}
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		total += out[k];
	return total;
}

void bw_text(struct fmt_buf *b)
{
	cache_text_fences(b, &bw_fenced);
	fmt_printf(b, "  decay: %lu pages of unused arrays and depot classes given to the zone\n",
		   (unsigned long)__atomic_load_n(&bw_decayed, __ATOMIC_RELAXED));
	if (bw_shards > 1)
		fmt_printf(b, "  depot: %u shards of %u CPUs, each its own lock\n", bw_shards,
			   (bw_ncpus + bw_shards - 1) / bw_shards);
	uint64_t borrowed[CACHE_CLASSES];
	if (borrowed_sums(borrowed)) {
		fmt_printf(b, "  borrowed (cache_borrow): a larger cached block for an empty "
			   "class,");
		for (unsigned k = 0; k < CACHE_CLASSES; k++)
			if (borrowed[k])
				fmt_printf(b, " %u-page %lu", k + 1, (unsigned long)borrowed[k]);
		fmt_printf(b, "\n");
	}
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		struct depot_sum d = depot_sum(k);
		if (d.nr || d.in || d.overflow)
			fmt_printf(b, "  depot %u-page: %lu blocks now (room for %lu); %lu taken in, %lu given out, %lu sent to the zone (%lu full, %lu an unclaimed run)\n",
				   k + 1, (unsigned long)d.nr, (unsigned long)d.cap,
				   (unsigned long)d.in, (unsigned long)d.out,
				   (unsigned long)d.overflow,
				   (unsigned long)(d.overflow - d.unclaimed),
				   (unsigned long)d.unclaimed);
	}
}

void bw_json(struct fmt_buf *b)
{
	cache_json_fences(b, &bw_fenced);
	uint64_t borrowed[CACHE_CLASSES];
	borrowed_sums(borrowed);
	fmt_printf(b, ",\"borrowed\":[");
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		fmt_printf(b, "%s%lu", k ? "," : "", (unsigned long)borrowed[k]);
	fmt_printf(b, "],\"decayed_pages\":%lu,\"depot_shards\":%u,\"depot\":[",
		   (unsigned long)__atomic_load_n(&bw_decayed, __ATOMIC_RELAXED), bw_shards);
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		struct depot_sum d = depot_sum(k);
		fmt_printf(b, "%s{\"pages\":%u,\"blocks\":%lu,\"cap\":%lu,\"in\":%lu,\"out\":%lu,\"to_zone\":%lu,\"unclaimed\":%lu}",
			   k ? "," : "", k + 1, (unsigned long)d.nr, (unsigned long)d.cap,
			   (unsigned long)d.in, (unsigned long)d.out, (unsigned long)d.overflow,
			   (unsigned long)d.unclaimed);
	}
	fmt_printf(b, "]");
}

/* Fixed order: (cache.c) the drain lock, the depots by class, then (the
 * caller) the zone; signals held back by cache.c.  The per-CPU arrays need
 * no lock: the child's copy of an array is whatever its last committed
 * count says. */
static bool fork_in_handler;    /* the forking thread was in a handler */

void bw_fork_prepare(void)
{
	fork_in_handler = mp_tls.depth != 0;
	for (unsigned sh = 0; sh < bw_shards; sh++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++)
			mp_lock(&bw_depots[sh][k].lock);
}

void bw_fork_parent(void)
{
	for (unsigned sh = bw_shards; sh-- > 0;)
		for (unsigned k = CACHE_CLASSES; k-- > 0;)
			mp_unlock(&bw_depots[sh][k].lock);
}

void bw_fork_child(void)
{
	for (unsigned sh = 0; sh < bw_shards; sh++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++) {
			struct bw_depot *d = &bw_depots[sh][k];
			mp_lock_reset(&d->lock);
			d->in = d->out = d->overflow = d->unclaimed = 0;
		}
	mp_lock_reset(&bw_threads_lock);
	memset(&bw_fenced, 0, sizeof(bw_fenced));
	bw_decayed = 0;
	if (bw_rseq)
		for (unsigned c = 0; c < bw_ncpus; c++) {
			memset(bw_cpu_of(c)->c, 0, sizeof(bw_cpu_of(c)->c));
			bw_cpu_of(c)->restarts = 0;
		}
	/* Per-thread front end: only this thread lives on; the others'
	 * arrays are unreachable here (their blocks stay with them).  Forked
	 * from a handler, the child keeps running that handler, which may
	 * have interrupted this thread in the middle of an array update that
	 * will complete when it returns: the arrays are abandoned (their
	 * blocks leak) rather than shared by two updates. */
	if (!bw_rseq && fork_in_handler && bw_mine) {
		bw_mine = NULL;
		pthread_setspecific(bw_thread_key, NULL);   /* no flush at exit either */
	}
	if (!bw_rseq) {
		bw_threads = my_cache;
		if (bw_threads) {
			bw_threads->next = bw_threads->prev = NULL;
			memset(bw_threads->cache.c, 0, sizeof(bw_threads->cache.c));
		}
		memset(bw_gone, 0, sizeof(bw_gone));
		bw_gone_threads = 0;
	}
}

/* A child of _Fork: a depot whose lock a vanished thread held is
 * abandoned (its blocks dropped), as the zone's lists are; one this
 * thread's own interrupted code holds (a handler the trampoline never saw
 * called _Fork) is left to it.  The holder's mark tells them apart: this
 * thread may be in a section, waiting for the very lock (in_cache says
 * nothing here; the recovery runs from that wait, mp_lock_slow). */
void bw_fork_recover(void)
{
	if (!bw_rseq && mp_tls.depth && bw_mine) {
		bw_mine = NULL;         /* see bw_fork_child */
		pthread_setspecific(bw_thread_key, NULL);
	}
	if (!bw_rseq) {
		bw_threads = my_cache;     /* the only thread here */
		if (bw_threads)
			bw_threads->next = bw_threads->prev = NULL;
	}
	/* A remote drain cut short: its arrays stay stopped with the blocks
	 * not yet freed (count keeps them) or none (count is BW_STOPPED). */
	for (unsigned c = 0; bw_rseq && c < bw_ncpus; c++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++)
			bw_cpu_of(c)->cls[k].h.count &= ~BW_STOPPED;
	for (unsigned sh = 0; sh < bw_shards; sh++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++) {
			struct bw_depot *d = &bw_depots[sh][k];
			if (mp_lock_is_held(&d->lock) && d->holder != mp_self_mark()) {
				d->nr = d->low = 0;   /* depot_reap takes low of nr */
				d->holder = 0;
				mp_lock_reset(&d->lock);
			}
		}
	mp_lock_reset(&bw_threads_lock);
}

