/* cache.c — choosing the page cache design at start-up. */
#include "internal.h"

bool cache_enabled;
bool cache_irq_safe;
unsigned cache_kind;

void cache_init(void)
{
	if (opt.cache == CACHE_PCP_RSEQ && !pcpr_init())
		opt.cache = CACHE_PCP_LOCK;   /* said why, once */
	if (opt.cache == CACHE_BONWICK && !bw_init()) {
		mp_log("cache:bonwick: cannot map its arrays; using magazine");
		opt.cache = CACHE_MAGAZINE;
	}
	cache_kind = opt.cache;
	cache_enabled = opt.cache != CACHE_NONE;
	/* bonwick: its per-CPU arrays restart under a handler; its per-thread
	 * arrays (no rseq) turn handlers away themselves. */
	cache_irq_safe = opt.cache == CACHE_PCP_RSEQ || opt.cache == CACHE_BONWICK;
	if (cache_enabled && !cache_irq_safe)
		mag_init();
}

const char *cache_name(void)
{
	return options_enum_name("cache", cache_kind);
}

unsigned cache_count(void)
{
	if (!cache_enabled)
		return 0;
	switch (cache_kind) {
	case CACHE_BONWICK: return bw_count();
	case CACHE_PCP_RSEQ: return pcpr_count();
	default: return mag_count();
	}
}

void cache_view(unsigned i, struct cache_view *v)
{
	if (cache_kind == CACHE_BONWICK)
		bw_view(i, v);
	else if (cache_kind == CACHE_PCP_RSEQ)
		pcpr_view(i, v);
	else
		mag_view(i, v);
}

void cache_free_chain(struct page_desc *pd)
{
	if (cache_kind == CACHE_BONWICK) {
		bw_free_chain(pd);
		return;
	}
	if (cache_kind != CACHE_PCP_RSEQ) {
		mag_free_chain(pd);
		return;
	}
	while (pd) {                      /* no lock to keep across the list */
		struct page_desc *next = pd->next;
		if (!pcpr_free(pd))
			zone_free_range(desc_pfn(pd), pd->npages);
		pd = next;
	}
}

uint64_t cache_depot_pages(void)
{
	uint64_t pages = 0;
	if (cache_kind != CACHE_BONWICK)
		return 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint64_t nr, in, out, overflow;
		bw_depot_view(k, &nr, &in, &out, &overflow);
		pages += nr * (k + 1);
	}
	return pages;
}

size_t cache_drain_all(void)
{
	if (!cache_enabled)
		return 0;
	switch (cache_kind) {
	case CACHE_BONWICK: return bw_drain_all();
	case CACHE_PCP_RSEQ: return pcpr_drain_all();
	default: return mag_drain_all();
	}
}

void cache_fork_prepare(void)
{
	if (cache_kind == CACHE_BONWICK)
		bw_fork_prepare();
	else if (cache_kind == CACHE_PCP_RSEQ)
		pcpr_fork_prepare();
	else if (cache_enabled)
		mag_fork_prepare();
}

void cache_fork_parent(void)
{
	if (cache_kind == CACHE_BONWICK)
		bw_fork_parent();
	else if (cache_kind == CACHE_PCP_RSEQ)
		pcpr_fork_parent();
	else if (cache_enabled)
		mag_fork_parent();
}

void cache_fork_child(void)
{
	if (cache_kind == CACHE_BONWICK)
		bw_fork_child();
	else if (cache_kind == CACHE_PCP_RSEQ)
		pcpr_fork_child();
	else if (cache_enabled)
		mag_fork_child();
}

/* A child of _Fork: locks held by threads that do not exist here. */
void cache_fork_recover(void)
{
	if (cache_kind == CACHE_BONWICK)
		bw_fork_recover();
	else if (cache_kind == CACHE_PCP_RSEQ)
		pcpr_fork_recover();
	else if (cache_enabled)
		mag_fork_recover();
}
