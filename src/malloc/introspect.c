/*
 * introspect.c — mallinfo2, malloc_stats, malloc_info, malloc_trim and the
 * public magpage_* calls, answered from libmagpage's own counters plus the
 * fallback allocator's.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "malloc/fallback.h"
#include "magpage.h"

/* Pages of the zone in each state.  touched = handed out at least once. */
struct page_census {
	uint64_t touched, listed_free, cached, held;
};

uint64_t mp_cached_beyond_arrays(const struct runs_stats *rs)
{
	/* a run with no live object (all free, or in CPU caches) is cached
	 * memory; a run with a live object is the program's */
	return cache_depot_pages() + reserve_pages() + rs->idle_pages;
}

/* sum: every cache summed, for a caller that wants their counters too.
 * The caches are read before the zone (zone_held_pages). */
static void census_sum(struct page_census *pc, struct zone_info *zi, struct cache_view *sum)
{
	struct runs_stats rs;

	cache_sum(sum);
	runs_stats(&rs);
	pc->cached = sum->nr_pages + mp_cached_beyond_arrays(&rs);
	zone_info(zi);
	pc->touched = zi->pages - zi->untouched_pages;
	pc->listed_free = zi->free_pages - zi->untouched_pages;
	pc->held = zone_held_pages(zi, pc->cached);
}

static void census(struct page_census *pc, struct zone_info *zi)
{
	struct cache_view sum;
	census_sum(pc, zi, &sum);
}

struct mallinfo2 mp_mallinfo2(void)
{
	struct mallinfo2 mi = fb_mallinfo2();
	struct page_census pc;
	struct zone_info zi;

	mp_ensure_init();
	census(&pc, &zi);
	mi.arena += pc.touched << PAGE_SHIFT;
	mi.uordblks += pc.held << PAGE_SHIFT;
	mi.fordblks += (pc.listed_free + pc.cached) << PAGE_SHIFT;
	for (unsigned o = 0; o < MAX_ORDER; o++)
		mi.ordblks += zi.nr_free[o];
	return mi;
}

int mp_trim(size_t pad)
{
	mp_ensure_init();
	/* the spare runs first: their pages go through the caches */
	size_t drained = runs_drain();
	drained += pa_drain_all();
	size_t purged = zg.bytes ? zone_purge(0) : 0;
	int fb = fb_trim(pad);
	return (drained || purged || fb) ? 1 : 0;
}

void mp_malloc_stats(void)
{
	mp_ensure_init();
	stats_print(2, false);
	fb_malloc_stats();
}

int mp_malloc_info(int options, FILE *fp)
{
	struct page_census pc;
	struct zone_info zi;
	struct mallinfo2 g = fb_mallinfo2();

	if (options != 0)
		return EINVAL;      /* as glibc's: the value, errno untouched */
	mp_ensure_init();
	census(&pc, &zi);
	fprintf(fp, "<malloc version=\"libmagpage-1\">\n");
	fprintf(fp, "<zone pages=\"%lu\" touched=\"%lu\" held=\"%lu\" cached=\"%lu\" free=\"%lu\">\n",
		(unsigned long)zi.pages, (unsigned long)pc.touched, (unsigned long)pc.held,
		(unsigned long)pc.cached, (unsigned long)zi.free_pages);
	for (unsigned o = 0; o < MAX_ORDER; o++)
		fprintf(fp, "<free order=\"%u\" blocks=\"%lu\"/>\n", o, (unsigned long)zi.nr_free[o]);
	fprintf(fp, "</zone>\n");
	fprintf(fp, "<cache type=\"%s\" count=\"%u\"/>\n", cache_name(), cache_count());
	fprintf(fp, "<fallback allocator=\"glibc\" arena=\"%zu\" allocated=\"%zu\" free=\"%zu\" mmap=\"%zu\"/>\n",
		g.arena, g.uordblks, g.fordblks, g.hblkhd);
	fprintf(fp, "</malloc>\n");
	return 0;
}

/* ---- the public API (include/magpage.h) ------------------------------- */

int magpage_get_stats(struct magpage_stats *st)
{
	struct page_census pc;
	struct zone_info zi;
	struct malloc_stats ms;

	if (!st)
		return -1;
	mp_ensure_init();
	memset(st, 0, sizeof(*st));
	struct cache_view sum;
	census_sum(&pc, &zi, &sum);
	malloc_stats_read(&ms);
	st->region_bytes = zg.bytes;
	st->zone_pages = zi.pages;
	st->zone_free_pages = zi.free_pages;
	st->cached_pages = pc.cached;
	st->held_pages = pc.held;
	st->zone_allocs = ms.zone_allocs;
	st->zone_frees = ms.zone_frees;
	struct cache_counters all = { 0 };
	for (unsigned o = 0; o < CACHE_CLASSES; o++)
		cache_counters_add(&all, &sum.c[o]);
	st->cache_allocs = all.allocs;
	st->cache_hits = all.hits;
	st->cache_refills = all.refills;
	st->cache_drains = all.drains;
	st->zone_lock_acquired = zi.lock_acquired;
	st->zone_lock_contended = zi.lock_contended;
	st->fallback_calls = ms.fb_small + ms.fb_large + ms.fb_waste + ms.fb_foreign +
			    ms.fb_exhausted + ms.fb_align;
	st->signal_calls = ms.sig_malloc + ms.sig_free;
	st->invalid_frees = ms.invalid_frees;
	for (unsigned o = 0; o < MAX_ORDER; o++)
		st->buddy_free[o] = zi.nr_free[o];
	return 0;
}

void magpage_free_bulk(void **ptrs, size_t n)
{
	if (ptrs)
		mp_free_bulk(ptrs, n);
}

size_t magpage_drain(void)
{
	mp_ensure_init();
	size_t pages = runs_drain();     /* first: its pages go through the caches */
	return pages + pa_drain_all();
}

void magpage_print_config(int fd)
{
	mp_ensure_init();
	options_print(&opt, fd);
}

void magpage_print_stats(int fd, int json)
{
	mp_ensure_init();
	stats_print(fd, json != 0);
}

int magpage_owns(const void *p)
{
	return zone_owns(p);
}

/* The node is derived from the address: each node's part of the region is
 * contiguous (zone.h, zone_node_of_pfn). */
int magpage_node_of(const void *p)
{
	if (!zone_owns(p))
		return -1;
	return numa_node_id(zone_node_of_pfn(addr_to_pfn(p)));
}
