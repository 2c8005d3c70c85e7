/*
 * validate.c — zone_validate: the whole-structure check that tests call
 * after random operation sequences (STYLE: three levels of checking).
 *
 * Every zone (one per node) is checked under its lock, all of them held at
 * once so that the totals add up: its lists, flags, alignment and counts,
 * that its blocks lie inside its own part of the region, and that no page
 * is in two free blocks.  The failure path never allocates: the reason goes
 * to the caller's buffer.
 */
#include <sys/mman.h>

#include "zone/zone_impl.h"

#define FAIL(...) do { fmt_snprintf(why, cap, __VA_ARGS__); return -1; } while (0)

/* Zone z's lists; seen marks the pages of free blocks (region-wide);
 * *listed gets the pages on its lists. */
static int __validate_zone(const struct zone *z, unsigned node, uint8_t *seen, uint64_t *listed_out,
			   char *why, size_t cap)
{
	uint64_t listed = 0, dirty_pages = 0;

	if (z->frontier % MAX_BLOCK_PAGES || z->frontier < z->start || z->frontier > z->opened)
		FAIL("node %u: frontier %lu not a multiple of 1024 within [%lu, %lu open)", node,
		     (unsigned long)z->frontier, (unsigned long)z->start, (unsigned long)z->opened);
	if (z->opened % MAX_BLOCK_PAGES || z->opened > z->end)
		FAIL("node %u: open pages %lu not a multiple of 1024 within %lu pages", node,
		     (unsigned long)z->opened, (unsigned long)z->end);
	if (z->start % MAX_BLOCK_PAGES || z->end % MAX_BLOCK_PAGES || z->start > z->end)
		FAIL("node %u: part [%lu, %lu) not on 1024-page boundaries", node,
		     (unsigned long)z->start, (unsigned long)z->end);
	for (unsigned o = 0; o < MAX_ORDER; o++) {
		uint64_t n = 0;
		for (int dirty = 1; dirty >= 0; dirty--) {
			const struct page_desc *prev = NULL;
			const struct page_desc *head = dirty ? z->free_area[o].head : z->free_area[o].clean;
			for (const struct page_desc *pd = head; pd; pd = pd->next) {
				uint64_t pfn = desc_pfn(pd);
				if (pd->prev != prev)
					FAIL("order %u: broken back link at pfn %lu", o, (unsigned long)pfn);
				if (!(pd->flags & PG_BUDDY) || (pd->flags & (PG_ALLOC | PG_CACHED)))
					FAIL("order %u: pfn %lu on free list with flags %x", o,
					     (unsigned long)pfn, pd->flags);
				if (dirty && (pd->flags & PG_CLEAN))
					FAIL("order %u: clean pfn %lu (flags %x) on the dirty list", o,
					     (unsigned long)pfn, pd->flags);
				if (!dirty && (!(pd->flags & PG_CLEAN) || (pd->flags & PG_CLEAN) == PG_CLEAN))
					FAIL("order %u: pfn %lu with flags %x on the clean list", o,
					     (unsigned long)pfn, pd->flags);
				if (dirty && prev && pd->freed_ns > prev->freed_ns)
					FAIL("order %u: dirty list out of time order at pfn %lu", o,
					     (unsigned long)pfn);
				if (pd->order != o)
					FAIL("pfn %lu on order-%u list says order %u", (unsigned long)pfn, o, pd->order);
				if (pfn & (((uint64_t)1 << o) - 1))
					FAIL("pfn %lu misaligned for order %u", (unsigned long)pfn, o);
				if (pfn < z->start || zone_node_of_pfn(pfn) != node)
					FAIL("node %u: pfn %lu order %u belongs to node %u", node,
					     (unsigned long)pfn, o, zone_node_of_pfn(pfn));
				if (pfn + ((uint64_t)1 << o) > z->frontier)
					FAIL("pfn %lu order %u beyond the frontier", (unsigned long)pfn, o);
				for (uint64_t i = pfn; i < pfn + ((uint64_t)1 << o); i++) {
					if (seen[i / 8] & (1u << (i % 8)))
						FAIL("page %lu is in two free blocks", (unsigned long)i);
					seen[i / 8] |= (uint8_t)(1u << (i % 8));
				}
				if (o < MAX_ORDER - 1) {
					const struct page_desc *b = pfn_to_desc(pfn ^ ((uint64_t)1 << o));
					if ((b->flags & PG_BUDDY) && b->order == o)
						FAIL("pfn %lu order %u and its buddy are both free: not coalesced",
						     (unsigned long)pfn, o);
				}
				prev = pd;
				n++;
				if (dirty)
					dirty_pages += (uint64_t)1 << o;
				listed += (uint64_t)1 << o;
			}
			if (dirty && z->free_area[o].tail != prev)
				FAIL("order %u: the tail is not the last dirty block", o);
		}
		if (n != z->free_area[o].nr_free)
			FAIL("order %u: nr_free %lu but %lu listed", o,
			     (unsigned long)z->free_area[o].nr_free, (unsigned long)n);
	}
	if (listed != z->nr_free_pages)
		FAIL("node %u: nr_free_pages %lu but %lu pages listed", node,
		     (unsigned long)z->nr_free_pages, (unsigned long)listed);
	if (dirty_pages != z->nr_dirty_pages)
		FAIL("node %u: nr_dirty_pages %lu but %lu dirty pages listed", node,
		     (unsigned long)z->nr_dirty_pages, (unsigned long)dirty_pages);
	/* Every PG_BUDDY head between the floor and the frontier must be on
	 * a list. */
	uint64_t from = z->floor > z->start ? z->floor : z->start;
	for (uint64_t pfn = from; pfn < z->frontier; pfn++) {
		const struct page_desc *pd = pfn_to_desc(pfn);
		if ((pd->flags & PG_BUDDY) && !(seen[pfn / 8] & (1u << (pfn % 8))))
			FAIL("pfn %lu marked free but on no list", (unsigned long)pfn);
	}
	*listed_out = listed;
	return 0;
}

/* With every zone locked: the zones tile the region, each is whole, and
 * the pages add up. */
static int __validate(uint64_t used_pages, uint8_t *seen, char *why, size_t cap)
{
	uint64_t free_pages = 0, isolated = 0, since_start = 0;
	bool floor = false;

	if (zg.bytes != zg.pages << PAGE_SHIFT)
		FAIL("region of %lu bytes but %lu pages", (unsigned long)zg.bytes,
		     (unsigned long)zg.pages);
	if (nr_zones != zg.nodes || nr_zones < 1 || nr_zones > NUMA_MAX_NODES)
		FAIL("%u zones but %u nodes", nr_zones, zg.nodes);
	for (unsigned i = 0; i < nr_zones; i++) {
		const struct zone *z = &zones[i];
		uint64_t listed = 0;
		if (z->start != (i ? zones[i - 1].end : 0))
			FAIL("node %u starts at pfn %lu, not where node %u ends", i,
			     (unsigned long)z->start, i ? i - 1 : 0);
		if (__validate_zone(z, i, seen, &listed, why, cap))
			return -1;
		free_pages += listed;
		isolated += z->isolated_pages;
		since_start += z->frontier - z->start;
		floor |= z->floor != 0;
	}
	if (zones[nr_zones - 1].end != zg.pages)
		FAIL("the last node ends at pfn %lu, the region at %lu",
		     (unsigned long)zones[nr_zones - 1].end, (unsigned long)zg.pages);
	if (used_pages != UINT64_MAX && !floor && used_pages + free_pages + isolated != since_start)
		FAIL("free %lu + being purged %lu + used %lu != %lu pages in use since start",
		     (unsigned long)free_pages, (unsigned long)isolated, (unsigned long)used_pages,
		     (unsigned long)since_start);
	return 0;
}

int zone_validate(uint64_t used_pages, char *why, size_t cap)
{
	struct zone_irq saved;

	if (!zg.bytes) {
		fmt_snprintf(why, cap, "no region");
		return used_pages == 0 || used_pages == UINT64_MAX ? 0 : -1;
	}
	/* The bitmap is mapped before the locks are taken: no system call
	 * under a zone lock, even in a validator. */
	size_t seen_bytes = (__atomic_load_n(&zg.pages, __ATOMIC_RELAXED) + 7) / 8 + 1;   /* only shrinks */
	uint8_t *seen = os.mmap(NULL, seen_bytes, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (seen == MAP_FAILED) {
		fmt_snprintf(why, cap, "cannot map the validation bitmap");
		return -1;
	}
	zone_lock_all(&saved);
	int rc = __validate(used_pages, seen, why, cap);
	zone_unlock_all(&saved);
	os.munmap(seen, seen_bytes);
	return rc;
}
