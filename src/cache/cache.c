/*
 * cache.c — choosing the page cache design at start-up, and what the
 * designs share: the global drain lock, the remote fence of the rseq
 * designs, their statistics lines, and the fork sequence around them.
 */
#include <linux/membarrier.h>
#include <string.h>

#include "internal.h"

struct cache_ops cache;
bool cache_enabled;
unsigned cache_kind;

static struct mp_lock drain_lock;

static const struct cache_ops *const designs[] = {
	[CACHE_MAGAZINE] = &cache_magazine_ops,
	[CACHE_NONE] = &cache_none_ops,
	[CACHE_PCP_RSEQ] = &cache_pcp_rseq_ops,
	[CACHE_PCP_LOCK] = &cache_pcp_lock_ops,
	[CACHE_BONWICK] = &cache_bonwick_ops,
};

/* A design whose init fails has said why, and named this stand-in. */
static unsigned fallback_of(unsigned kind)
{
	return kind == CACHE_PCP_RSEQ ? CACHE_PCP_LOCK : CACHE_MAGAZINE;
}

void cache_init(void)
{
	unsigned kind = opt.cache;

	while (designs[kind]->init && !designs[kind]->init())
		kind = fallback_of(kind);
	opt.cache = kind;
	cache_kind = kind;
	cache = *designs[kind];
	cache_enabled = kind != CACHE_NONE;
	if (!cache.irq_safe && opt.signal != SIG_TRYLOCK)
		cache.alloc_irq = NULL, cache.free_irq = NULL;
}

void cache_init_none(void)
{
	opt.cache = CACHE_NONE;
	cache_kind = CACHE_NONE;
	cache = cache_none_ops;
	cache_enabled = false;
}

void cache_free_chain(struct page_desc *pd)
{
	if (cache.free_chain) {
		cache.free_chain(pd);
		return;
	}
	while (pd) {
		struct page_desc *next = pd->next;
		if (!cache.free(pd))
			zone_free_range(desc_pfn(pd), pd->npages);
		pd = next;
	}
}

/* ---- the drain lock ----------------------------------------------------- */

bool cache_drain_begin(bool irq, uint8_t *was)
{
	*was = sigctx_hold();
	if (!irq) {
		mp_lock(&drain_lock);
		return true;
	}
	if (mp_trylock(&drain_lock))
		return true;
	sigctx_unhold(*was);
	return false;
}

void cache_drain_end(uint8_t was)
{
	mp_unlock(&drain_lock);
	sigctx_unhold(was);
}

/* ---- the remote fence ----------------------------------------------------- */

bool cache_fence_register(void)
{
	return os_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0;
}

static void word_or(char *w, unsigned width, uint64_t bits)
{
	if (width == 64)
		__atomic_fetch_or((uint64_t *)w, bits, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_or((uint32_t *)w, (uint32_t)bits, __ATOMIC_SEQ_CST);
}

static void word_and(char *w, unsigned width, uint64_t bits)
{
	if (width == 64)
		__atomic_fetch_and((uint64_t *)w, bits, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and((uint32_t *)w, (uint32_t)bits, __ATOMIC_SEQ_CST);
}

static uint64_t word_load(const char *w, unsigned width)
{
	return width == 64 ? __atomic_load_n((const uint64_t *)w, __ATOMIC_SEQ_CST)
			   : __atomic_load_n((const uint32_t *)w, __ATOMIC_SEQ_CST);
}

/* Where word k is: base + k x stride (cache_stop_cpu), or list[k]
 * (cache_stop_list). */
struct stop_words {
	char *base;
	size_t stride;
	void *const *list;
};

static char *word_at(const struct stop_words *w, unsigned k)
{
	return w->list ? (char *)w->list[k] : w->base + k * w->stride;
}

static bool stop_words(unsigned cpu, const struct stop_words *w, unsigned n, unsigned width,
		       uint64_t stop, struct cache_fences *f)
{
	for (;;) {
		bool all = true;
		for (unsigned k = 0; k < n; k++)
			word_or(word_at(w, k), width, stop);
		uint64_t t0 = os_now_ns();
		int rc = os_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_FLAG_CPU,
				       (int)cpu);
		__atomic_add_fetch(&f->fence_ns, os_now_ns() - t0, __ATOMIC_RELAXED);
		__atomic_add_fetch(&f->fences, 1, __ATOMIC_RELAXED);
		if (rc != 0) {
			/* No fence, no ownership: a section may still commit
			 * there.  Give the words back untouched. */
			for (unsigned k = 0; k < n; k++)
				word_and(word_at(w, k), width, ~stop);
			return false;
		}
		for (unsigned k = 0; k < n; k++)
			all &= (word_load(word_at(w, k), width) & stop) != 0;
		if (all)
			break;
	}
	__atomic_add_fetch(&f->remote_drains, 1, __ATOMIC_RELAXED);
	return true;
}

bool cache_stop_cpu(unsigned cpu, void *words, size_t stride, unsigned n, unsigned width,
		    uint64_t stop, struct cache_fences *f)
{
	const struct stop_words w = { .base = words, .stride = stride };
	return stop_words(cpu, &w, n, width, stop, f);
}

bool cache_stop_list(unsigned cpu, void *const *words, unsigned n, unsigned width,
		     uint64_t stop, struct cache_fences *f)
{
	const struct stop_words w = { .list = words };
	return stop_words(cpu, &w, n, width, stop, f);
}

/* ---- statistics lines ----------------------------------------------------- */

static unsigned long ul(uint64_t v)
{
	return (unsigned long)v;
}

void cache_text_lock(struct fmt_buf *b, unsigned i, const struct cache_view *v)
{
	fmt_printf(b, "  %-4u lock: %lu acquired, %lu contended (%lu us waiting), %lu trylocks failed\n",
		   i, ul(v->lock_acquired), ul(v->lock_contended), ul(v->lock_wait_ns / 1000),
		   ul(v->trylock_failed));
}

void cache_text_restarts(struct fmt_buf *b, unsigned i, const struct cache_view *v)
{
	fmt_printf(b, "  %-4u rseq: %lu critical sections restarted\n", i, ul(v->restarts));
}

void cache_text_merged(struct fmt_buf *b, unsigned i, const struct cache_view *v)
{
	uint32_t caches = v->merged - v->gone;
	if (!v->merged)
		return;
	fmt_printf(b, "  %-4u", i);
	if (caches)
		fmt_printf(b, " sums caches %u to %u%s", i, i + caches - 1, v->gone ? " and" : "");
	if (v->gone)
		fmt_printf(b, " the counts of %u threads that exited", v->gone);
	fmt_printf(b, "\n");
}

/* Adds row w to row v (a row that sums caches). */
static void row_add(struct cache_view *v, const struct cache_view *w)
{
	v->nr_pages += w->nr_pages;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		v->nr_blocks[k] += w->nr_blocks[k];
		cache_counters_add(&v->c[k], &w->c[k]);
	}
	v->lock_acquired += w->lock_acquired;
	v->lock_contended += w->lock_contended;
	v->lock_wait_ns += w->lock_wait_ns;
	v->trylock_failed += w->trylock_failed;
	v->restarts += w->restarts;
	v->merged += w->merged ? w->merged : 1;
	v->gone += w->gone;
}

unsigned cache_fold(struct cache_view *out, unsigned max, unsigned n,
		    void (*view)(unsigned i, struct cache_view *v))
{
	if (n <= max) {
		for (unsigned i = 0; i < n; i++)
			view(i, &out[i]);
		return n;
	}
	for (unsigned i = 0; i < max - 1; i++)
		view(i, &out[i]);
	struct cache_view *last = &out[max - 1];
	memset(last, 0, sizeof(*last));
	last->id = max - 1;
	for (unsigned i = max - 1; i < n; i++) {
		struct cache_view w;
		view(i, &w);
		row_add(last, &w);
	}
	return max;
}

unsigned cache_views(struct cache_view *out, unsigned max)
{
	if (cache.views)
		return cache.views(out, max);
	return cache_fold(out, max, cache.count(), cache.view);
}

void cache_sum(struct cache_view *sum)
{
	memset(sum, 0, sizeof(*sum));
	cache_views(sum, 1);
}

void cache_text_fences(struct fmt_buf *b, const struct cache_fences *f)
{
	uint64_t n = __atomic_load_n(&f->fences, __ATOMIC_RELAXED);
	uint64_t ns = __atomic_load_n(&f->fence_ns, __ATOMIC_RELAXED);
	fmt_printf(b, "  drain_all: %lu remote CPU drains, %lu membarrier fences (%lu us, %lu ns each)\n",
		   ul(__atomic_load_n(&f->remote_drains, __ATOMIC_RELAXED)), ul(n), ul(ns / 1000),
		   ul(n ? ns / n : 0));
}

void cache_json_fences(struct fmt_buf *b, const struct cache_fences *f)
{
	fmt_printf(b, ",\"remote_drains\":%lu,\"fences\":%lu,\"fence_ns\":%lu",
		   ul(__atomic_load_n(&f->remote_drains, __ATOMIC_RELAXED)),
		   ul(__atomic_load_n(&f->fences, __ATOMIC_RELAXED)),
		   ul(__atomic_load_n(&f->fence_ns, __ATOMIC_RELAXED)));
}

/* ---- fork ------------------------------------------------------------------ */

/* Fixed order: the drain lock, the design's locks, then (the caller) the
 * zone.  Signals are held back throughout, in the parent until its handler
 * and in the child until its own. */
static uint8_t fork_was;

void cache_fork_prepare(void)
{
	fork_was = sigctx_hold();
	mp_lock(&drain_lock);
	if (cache.fork_prepare)
		cache.fork_prepare();
}

void cache_fork_parent(void)
{
	if (cache.fork_parent)
		cache.fork_parent();
	mp_unlock(&drain_lock);
	sigctx_unhold(fork_was);
}

void cache_fork_child(void)
{
	if (cache.fork_child)
		cache.fork_child();
	mp_lock_reset(&drain_lock);
	sigctx_unhold(fork_was);
}

/* A child of _Fork: locks held by threads that do not exist here. */
void cache_fork_recover(void)
{
	if (cache.fork_recover)
		cache.fork_recover();
	mp_lock_reset(&drain_lock);
}

/* ---- cache:none ------------------------------------------------------------ */

static struct page_desc *none_alloc(size_t npages)
{
	(void)npages;
	return NULL;
}

static bool none_free(struct page_desc *pd)
{
	(void)pd;
	return false;
}

static size_t none_drain_all(void)
{
	return 0;
}

static unsigned none_count(void)
{
	return 0;
}

static void none_view(unsigned i, struct cache_view *v)
{
	(void)i;
	(void)v;
}

const struct cache_ops cache_none_ops = {
	.name = "none",
	.irq_safe = true,         /* nothing to protect: handlers get NULL too */
	.alloc = none_alloc,
	.free = none_free,
	.drain_all = none_drain_all,
	.count = none_count,
	.view = none_view,
};
