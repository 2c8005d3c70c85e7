/*
 * zone.c — unit tests for src/zone: the region, the descriptors and the
 * buddy allocator, driven directly (kernel-design-notes §7 items 1 and 2).
 *
 * zone_init() sets process globals, so every test initialises its own small
 * zone; Criterion runs each test in a process of its own.  The OS hooks
 * (struct os_hooks os) are stubbed to make the reservation fail and to count
 * madvise calls, and restored by the fixture after every test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#include "internal.h"

#define ZONE_BYTES ((uint64_t)64 << 20)    /* 16 order-10 blocks */

static struct os_hooks saved_hooks;

static void save_hooks(void)
{
	saved_hooks = os;
}

static void restore_hooks(void)
{
	os = saved_hooks;
}

TestSuite(zone, .init = save_hooks, .fini = restore_hooks, .timeout = 120);

static void setup_zone(uint64_t bytes)
{
	options_defaults(&opt);
	cpu_init();
	cr_assert_eq(zone_init(bytes), 0, "zone_init(%lu) failed", (unsigned long)bytes);
	cr_assert_eq(zg.bytes, bytes);
	cr_assert_eq(zg.pages, bytes >> PAGE_SHIFT);
	cr_assert_eq(zg.base % MAX_BLOCK_BYTES, 0, "region not 4 MiB aligned");
}

static void validate(uint64_t used, const char *when)
{
	char why[256] = "";
	int rc = zone_validate(used, why, sizeof(why));
	cr_assert_eq(rc, 0, "zone_validate(used=%lu) %s: %s", (unsigned long)used, when, why);
}

/* deterministic xorshift64* */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t pattern(uint64_t pfn, uint64_t id)
{
	return (pfn * 0x9e3779b97f4a7c15ull) ^ (id << 1) ^ 0x5a5a5a5a5a5a5a5aull;
}

/* Writes a word at the start and end of every page of the allocation. */
static void fill(uint64_t pfn, size_t npages, uint64_t id)
{
	for (size_t i = 0; i < npages; i++) {
		uint64_t *w = (uint64_t *)desc_to_addr(pfn_to_desc(pfn + i));
		w[0] = pattern(pfn + i, id);
		w[PAGE_SIZE / 8 - 1] = ~pattern(pfn + i, id);
	}
}

static void check(uint64_t pfn, size_t npages, uint64_t id)
{
	for (size_t i = 0; i < npages; i++) {
		uint64_t *w = (uint64_t *)desc_to_addr(pfn_to_desc(pfn + i));
		cr_assert_eq(w[0], pattern(pfn + i, id), "page %lu of allocation %lu overwritten",
			     (unsigned long)(pfn + i), (unsigned long)id);
		cr_assert_eq(w[PAGE_SIZE / 8 - 1], ~pattern(pfn + i, id),
			     "page %lu (tail) of allocation %lu overwritten",
			     (unsigned long)(pfn + i), (unsigned long)id);
	}
}

/* ---- geometry ---------------------------------------------------------- */

Test(zone, init_is_lazy_and_all_free)
{
	struct zone_info zi;

	setup_zone(ZONE_BYTES);
	zone_info(&zi);
	cr_assert_eq(zi.pages, ZONE_BYTES >> PAGE_SHIFT);
	cr_assert_eq(zi.free_pages, zi.pages);
	cr_assert_eq(zi.untouched_pages, zi.pages, "nothing is carved at start-up");
	for (unsigned o = 0; o < MAX_ORDER; o++)
		cr_assert_eq(zi.nr_free[o], 0, "order %u list not empty at start", o);
	validate(0, "after init");
}

Test(zone, init_rounds_down_to_4mib)
{
	options_defaults(&opt);
	cr_assert_eq(zone_init(ZONE_BYTES + 12345), 0);
	cr_assert_eq(zg.bytes, ZONE_BYTES);
}

Test(zone, init_below_one_block_fails)
{
	options_defaults(&opt);
	cr_assert_eq(zone_init(MAX_BLOCK_BYTES - 1), -1);
}

/* §7.1: once every block has been carved and returned, order-10 nr_free x
 * 1024 = total pages, and only 4 MiB-aligned descriptors are BUDDY. */
Test(zone, all_order10_after_full_cycle)
{
	struct zone_info zi;
	uint64_t pages = ZONE_BYTES >> PAGE_SHIFT;
	struct page_desc **held = calloc(pages + 1, sizeof(*held));

	setup_zone(ZONE_BYTES);
	for (uint64_t i = 0; i < pages; i++) {
		held[i] = zone_alloc(0, 1);
		cr_assert_not_null(held[i], "order-0 allocation %lu of %lu failed",
				   (unsigned long)i, (unsigned long)pages);
	}
	cr_assert_null(zone_alloc(0, 1), "zone handed out more pages than it has");
	validate(pages, "full");
	for (uint64_t i = 0; i < pages; i++)
		zone_free_block(held[i], 0);
	validate(0, "after freeing every page");
	zone_info(&zi);
	cr_assert_eq(zi.free_pages, pages);
	cr_assert_eq(zi.untouched_pages, 0);
	for (unsigned o = 0; o < MAX_ORDER - 1; o++)
		cr_assert_eq(zi.nr_free[o], 0, "order %u has %lu blocks: not coalesced", o,
			     (unsigned long)zi.nr_free[o]);
	cr_assert_eq(zi.nr_free[MAX_ORDER - 1] * MAX_BLOCK_PAGES, pages);
	for (uint64_t pfn = 0; pfn < pages; pfn++) {
		bool buddy = pfn_to_desc(pfn)->flags & PG_BUDDY;
		cr_assert_eq(buddy, pfn % MAX_BLOCK_PAGES == 0, "pfn %lu: PG_BUDDY is %d",
			     (unsigned long)pfn, buddy);
	}
	free(held);
}

/* ---- random sequences (§7.2) ------------------------------------------ */

struct live {
	struct page_desc *pd;
	uint64_t pfn;
	uint32_t npages;
	uint8_t order;
	bool exact;     /* freed with zone_free_range, else zone_free_block */
	uint64_t id;
};

static unsigned random_order(void)
{
	/* Mostly small orders, as the program traffic is, some large ones. */
	uint64_t r = rnd() % 100;
	if (r < 40)
		return 0;
	if (r < 60)
		return 1;
	if (r < 72)
		return 2;
	if (r < 82)
		return 3;
	return 4 + (unsigned)(rnd() % 7);    /* 4..10 */
}

Test(zone, random_ops_validate)
{
	const uint64_t pages = ZONE_BYTES >> PAGE_SHIFT;
	const unsigned nops = 1000000, every = 1000;
	size_t cap = pages, nlive = 0;
	struct live *live = calloc(cap, sizeof(*live));
	uint8_t *owned = calloc(pages, 1);   /* 1: the test holds this page */
	uint64_t used = 0, next_id = 1, failed = 0;

	setup_zone(ZONE_BYTES);
	for (unsigned op = 1; op <= nops; op++) {
		bool do_alloc = nlive == 0 || (used < pages * 3 / 4 ? rnd() % 100 < 55 : rnd() % 100 < 30);
		if (do_alloc) {
			unsigned order = random_order();
			size_t block = (size_t)1 << order;
			bool exact = order > 0 && rnd() % 2;
			size_t npages = exact ? 1 + rnd() % block : block;
			exact = npages != block;
			struct page_desc *pd = zone_alloc(order, npages);
			if (!pd) {
				failed++;
				continue;
			}
			uint64_t pfn = desc_pfn(pd);
			cr_assert_lt(pfn + npages, pages + 1, "allocation beyond the zone");
			cr_assert_eq(pfn & (block - 1), 0, "order-%u block at pfn %lu misaligned", order,
				     (unsigned long)pfn);
			cr_assert_not(pd->flags & (PG_BUDDY | PG_CACHED), "allocated block flagged free");
			for (size_t i = 0; i < npages; i++)
				cr_assert_eq(owned[pfn + i], 0,
					     "pfn %lu handed out twice (order %u, npages %zu)",
					     (unsigned long)(pfn + i), order, npages);
			cr_assert_lt(nlive, cap);
			struct live *l = &live[nlive];
			*l = (struct live){ pd, pfn, (uint32_t)npages, (uint8_t)order, exact, next_id++ };
			memset(owned + pfn, 1, npages);
			fill(pfn, npages, l->id);
			nlive++;
			used += npages;
		} else {
			size_t k = rnd() % nlive;
			struct live l = live[k];
			check(l.pfn, l.npages, l.id);
			memset(owned + l.pfn, 0, l.npages);
			if (l.exact || rnd() % 4 == 0)
				zone_free_range(l.pfn, l.npages);
			else
				zone_free_block(l.pd, l.order);
			used -= l.npages;
			live[k] = live[--nlive];
		}
		if (op % every == 0) {
			char when[64];
			snprintf(when, sizeof(when), "after op %u", op);
			validate(used, when);
		}
	}
	cr_log_info("%u ops, %lu allocations refused (zone full)", nops, (unsigned long)failed);
	for (size_t k = 0; k < nlive; k++)
		check(live[k].pfn, live[k].npages, live[k].id);
	while (nlive) {
		struct live *l = &live[--nlive];
		if (l->exact)
			zone_free_range(l->pfn, l->npages);
		else
			zone_free_block(l->pd, l->order);
		used -= l->npages;
	}
	validate(0, "after freeing everything");

	struct zone_info zi;
	zone_info(&zi);
	cr_assert_eq(zi.free_pages, zi.pages);
	for (unsigned o = 0; o < MAX_ORDER - 1; o++)
		cr_assert_eq(zi.nr_free[o], 0, "order %u: %lu blocks left unmerged", o,
			     (unsigned long)zi.nr_free[o]);
	cr_assert_eq(zi.nr_free[MAX_ORDER - 1] * MAX_BLOCK_PAGES + zi.untouched_pages, zi.pages);
	free(live);
	free(owned);
}

/* Exact allocations: the tail goes back at once, so a 3-page request from an
 * order-2 block leaves exactly one page free next to it. */
/* 4 MiB blocks carved so far. */
static uint64_t carved(void)
{
	struct zone_info zi;
	zone_info(&zi);
	return zi.carved;
}

/*
 * zone_alloc_listed (pagealloc's drain before carving) serves only blocks
 * already on the free lists, split as zone_alloc splits them; it never
 * carves, so it fails on a fresh zone and once the lists are empty, and
 * succeeds again when frees have merged a block of the order asked for.
 */
Test(zone, a_listed_allocation_never_carves)
{
	setup_zone(ZONE_BYTES);
	cr_assert_null(zone_alloc_listed(0, 1), "a fresh zone listed a page");
	cr_assert_eq(carved(), 0);

	struct page_desc *a = zone_alloc(8, 256);            /* carves: 768 pages listed */
	cr_assert_not_null(a);
	cr_assert_eq(carved(), 1);
	struct page_desc *b = zone_alloc_listed(8, 256);
	struct page_desc *c = zone_alloc_listed(9, 512);
	cr_assert(b && c, "the carved block's halves were not served from the lists");
	cr_assert_eq(desc_pfn(c) % 512, 0);
	cr_assert_null(zone_alloc_listed(0, 1), "the lists are empty: nothing to list");
	cr_assert_eq(carved(), 1, "a listed allocation carved");
	validate(1024, "the carved block out in three pieces");

	zone_free_range(desc_pfn(a), 256);
	zone_free_range(desc_pfn(b), 256);
	zone_free_range(desc_pfn(c), 512);
	struct page_desc *whole = zone_alloc_listed(MAX_ORDER - 1, MAX_BLOCK_PAGES);
	cr_assert_not_null(whole, "the pieces did not merge into a listed 4 MiB block");
	cr_assert_eq(carved(), 1);
	zone_free_range(desc_pfn(whole), MAX_BLOCK_PAGES);
	validate(0, "all back");
}

Test(zone, exact_allocation_returns_tail)
{
	struct zone_info zi;

	setup_zone(ZONE_BYTES);
	struct page_desc *pd = zone_alloc(2, 3);
	cr_assert_not_null(pd);
	validate(3, "after a 3-of-4 allocation");
	zone_info(&zi);
	cr_assert_eq(zi.nr_free[0], 1, "the tail page should be on the order-0 list");
	cr_assert_eq(zi.free_pages, zi.pages - 3);

	struct page_desc *pd2 = zone_alloc(10, 1000);
	cr_assert_not_null(pd2);
	validate(1003, "after a 1000-of-1024 allocation");
	zone_free_range(desc_pfn(pd2), 1000);
	zone_free_range(desc_pfn(pd), 3);
	validate(0, "after freeing both");
	zone_info(&zi);
	for (unsigned o = 0; o < MAX_ORDER - 1; o++)
		cr_assert_eq(zi.nr_free[o], 0);
	cr_assert_eq(zi.free_pages, zi.pages);
}

/* Refill and drain interfaces: a batch comes back linked in ascending order,
 * each block carrying its page count, and zone_free_list returns it whole. */
static void batch_round(size_t npages, unsigned max, unsigned min)
{
	struct page_desc *head, *tail;
	size_t align = (size_t)1 << ilog2_ceil(npages);
	char when[64];

	unsigned n = zone_take_batch(npages, max, min, &head, &tail);
	cr_assert_eq(n, max, "%zu-page batch: %u of %u blocks", npages, n, max);
	unsigned count = 0;
	uint64_t prev = 0;
	for (struct page_desc *pd = head; pd; pd = pd->next) {
		if (count)
			cr_assert_gt(desc_pfn(pd), prev, "batch not in ascending pfn order");
		prev = desc_pfn(pd);
		cr_assert_eq(pd->npages, npages);
		cr_assert_eq(desc_pfn(pd) % align, 0, "%zu-page block at pfn %lu misaligned", npages,
			     (unsigned long)desc_pfn(pd));
		cr_assert_not(pd->flags & (PG_BUDDY | PG_CACHED | PG_ALLOC));
		if (!pd->next)
			cr_assert_eq(pd, tail);
		count++;
	}
	cr_assert_eq(count, n);
	snprintf(when, sizeof(when), "after a batch of %u %zu-page blocks", n, npages);
	/* Exact sizes: each block's spare tail went back to the zone at once. */
	validate((uint64_t)n * npages, when);
	zone_free_list(head);
	snprintf(when, sizeof(when), "after freeing the %zu-page batch", npages);
	validate(0, when);
}

Test(zone, take_batch_and_free_list)
{
	struct zone_info zi;

	setup_zone(ZONE_BYTES);
	batch_round(1, 384, 16);
	batch_round(8, 48, 2);
	batch_round(3, 128, 5);
	batch_round(5, 76, 3);
	batch_round(7, 54, 2);
	batch_round(2, 192, 8);
	zone_info(&zi);
	cr_assert_eq(zi.batches, 6);
	cr_assert_eq(zi.batch_blocks, 384 + 48 + 128 + 76 + 54 + 192);
	cr_assert_eq(zi.batch_breaks, 0, "a single thread never contends");
	for (unsigned o = 0; o < MAX_ORDER - 1; o++)
		cr_assert_eq(zi.nr_free[o], 0, "order %u left unmerged", o);
}

Test(zone, take_batch_until_empty)
{
	const uint64_t bytes = (uint64_t)8 << 20;     /* 2048 pages */
	struct page_desc *head, *tail, *all = NULL;
	uint64_t got = 0;

	setup_zone(bytes);
	for (;;) {
		unsigned n = zone_take_batch(3, 100, 10, &head, &tail);
		if (!n)
			break;
		got += n;
		tail->next = all;
		all = head;
	}
	/* 3-page blocks from order-2 blocks: one per 4 pages. */
	cr_assert_eq(got, 2048 / 4);
	validate(got * 3, "all 3-page blocks taken");
	zone_free_list(all);
	validate(0, "all returned");
}

/* ---- exhaustion -------------------------------------------------------- */

Test(zone, exhaustion_and_recovery)
{
	const uint64_t pages = ZONE_BYTES >> PAGE_SHIFT;
	struct page_desc **held = calloc(pages + 1, sizeof(*held));
	uint64_t n = 0;

	setup_zone(ZONE_BYTES);
	while ((held[n] = zone_alloc(0, 1)) != NULL) {
		n++;
		cr_assert_leq(n, pages);
	}
	cr_assert_eq(n, pages, "only %lu of %lu pages before NULL", (unsigned long)n,
		     (unsigned long)pages);
	validate(pages, "exhausted");
	cr_assert_null(zone_alloc(0, 1));
	cr_assert_null(zone_alloc(3, 5));

	/* Free every other page: nothing can merge, order-1 still fails. */
	for (uint64_t i = 0; i < n; i += 2)
		zone_free_block(held[i], 0);
	validate(pages / 2, "after freeing every other page");
	cr_assert_null(zone_alloc(1, 2), "an order-1 block from a fully fragmented zone");

	uint64_t again = 0;
	for (uint64_t i = 0; i < n; i += 2) {
		held[i] = zone_alloc(0, 1);
		cr_assert_not_null(held[i], "re-allocation %lu failed", (unsigned long)again);
		again++;
	}
	cr_assert_null(zone_alloc(0, 1));
	cr_assert_eq(again, pages / 2);
	validate(pages, "exhausted again");
	for (uint64_t i = 0; i < n; i++)
		zone_free_block(held[i], 0);
	validate(0, "all freed");

	/* Now the largest blocks: exactly pages / 1024 of them. */
	uint64_t big = 0;
	while ((held[big] = zone_alloc(MAX_ORDER - 1, MAX_BLOCK_PAGES)) != NULL)
		big++;
	cr_assert_eq(big, pages / MAX_BLOCK_PAGES);
	validate(pages, "exhausted with order-10 blocks");
	for (uint64_t i = 0; i < big; i++)
		zone_free_block(held[i], MAX_ORDER - 1);
	validate(0, "order-10 blocks freed");
	free(held);
}

/* ---- reservation: halving on failure ------------------------------------ */

static size_t mmap_limit;
static unsigned mmap_calls, mmap_refused;

static void *mmap_bounded(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	mmap_calls++;
	if (len > mmap_limit) {
		mmap_refused++;
		return MAP_FAILED;
	}
	return mmap(addr, len, prot, flags, fd, off);
}

static void *mmap_never(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	(void)addr, (void)len, (void)prot, (void)flags, (void)fd, (void)off;
	mmap_calls++;
	return MAP_FAILED;
}

Test(zone, init_halves_when_mmap_fails)
{
	options_defaults(&opt);
	/* The reservation asks for bytes + 4 MiB (for the alignment): 64 MiB
	 * and 32 MiB fail, 16 MiB (20 MiB asked) fits. */
	mmap_limit = (size_t)20 << 20;
	os.mmap = mmap_bounded;
	cr_assert_eq(zone_init(ZONE_BYTES), 0);
	cr_assert_eq(zg.bytes, (uint64_t)16 << 20, "got %lu bytes", (unsigned long)zg.bytes);
	cr_assert_eq(zg.pages, (uint64_t)4096);
	cr_assert_eq(zg.base % MAX_BLOCK_BYTES, 0);
	cr_assert_geq(mmap_refused, 2);

	/* The smaller zone works: fill it exactly. */
	uint64_t n = 0;
	struct page_desc *pd;
	while ((pd = zone_alloc(MAX_ORDER - 1, MAX_BLOCK_PAGES)) != NULL) {
		memset(desc_to_addr(pd), 0xab, MAX_BLOCK_BYTES);
		n++;
	}
	cr_assert_eq(n, 4);
	validate(4096, "halved zone, full");
}

Test(zone, init_fails_when_mmap_always_fails)
{
	options_defaults(&opt);
	os.mmap = mmap_never;
	cr_assert_eq(zone_init(ZONE_BYTES), -1);
	cr_assert_eq(zg.bytes, 0);
	cr_assert_gt(mmap_calls, 0);
	cr_assert_eq(zone_owns((void *)&mmap_calls), 0);
}

/* ---- the descriptors' fixed place --------------------------------------- */

Test(zone, descriptors_sit_at_the_fixed_map)
{
	setup_zone(ZONE_BYTES);
	cr_assert_eq((uintptr_t)zg.descs, DESC_VMEMMAP + zg.base / 64);
	for (uint64_t pfn = 0; pfn < zg.pages; pfn += 1023) {
		void *p = (void *)(zg.base + (pfn << PAGE_SHIFT));
		cr_assert_eq(addr_to_desc(p), pfn_to_desc(pfn), "pfn %lu", (unsigned long)pfn);
		cr_assert_eq(desc_pfn(addr_to_desc(p)), pfn);
	}
	/* every descriptor is writable, first and last included */
	zg.descs[0].reserved32 = 1;
	zg.descs[zg.pages - 1].reserved32 = 1;
}

/* A region's descriptors' place taken: refused (EEXIST), or, as kernels
 * before 4.17 did, granted somewhere else; the first `taken` tries. */
static unsigned fixed_tries, fixed_taken;
static bool fixed_elsewhere;
static int fixed_errno = EEXIST;
static uintptr_t refused_region[16], granted_elsewhere;

static void *mmap_desc_taken(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!(flags & MAP_FIXED_NOREPLACE) || fixed_tries >= fixed_taken)
		return mmap(addr, len, prot, flags, fd, off);
	refused_region[fixed_tries++ % 16] = ((uintptr_t)addr - DESC_VMEMMAP) * 64;
	if (fixed_elsewhere) {
		void *p = mmap(NULL, len, prot, flags & ~MAP_FIXED_NOREPLACE, fd, off);
		granted_elsewhere = (uintptr_t)p;
		return p;
	}
	errno = fixed_errno;
	return MAP_FAILED;
}

/* The same for the live bytes' place alone: the try's descriptors map,
 * its live bytes do not. */
static void *mmap_live_taken(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!(flags & MAP_FIXED_NOREPLACE) || (uintptr_t)addr < LIVE_VMEMMAP ||
	    fixed_tries >= fixed_taken)
		return mmap(addr, len, prot, flags, fd, off);
	/* the region whose live bytes start in this page (rounded down) */
	refused_region[fixed_tries++ % 16] = ((uintptr_t)addr - LIVE_VMEMMAP) << PAGE_SHIFT;
	errno = fixed_errno;
	return MAP_FAILED;
}

static bool mapped(uintptr_t a)
{
	unsigned char v;
	return mincore((void *)a, PAGE_SIZE, &v) == 0;
}

static void check_moved(unsigned refused)
{
	cr_assert_eq(fixed_tries, refused);
	cr_assert_eq(zg.bytes, ZONE_BYTES, "the size is kept: another place, not a smaller region");
	cr_assert_eq((uintptr_t)zg.descs, DESC_VMEMMAP + zg.base / 64);
	for (unsigned i = 0; i < refused; i++) {
		cr_assert_neq(refused_region[i], zg.base);
		cr_assert(!mapped(refused_region[i]), "refused region %#lx still mapped",
			  (unsigned long)refused_region[i]);
	}
	/* each try far from the one before: a blocker of a few GiB in the
	 * descriptors' window cannot catch them all */
	uintptr_t prev = refused ? refused_region[0] : 0;
	for (unsigned i = 1; i <= refused && i < 16; i++) {
		uintptr_t next = i < refused ? refused_region[i] : zg.base;
		uintptr_t gap = next > prev ? next - prev : prev - next;
		cr_assert_geq(gap, (uintptr_t)1 << 42, "tries %u and %u only %#lx apart", i - 1, i,
			      (unsigned long)gap);
		prev = next;
	}
	/* the new place works */
	struct page_desc *pd = zone_alloc(0, 1);
	cr_assert_not_null(pd);
	memset(desc_to_addr(pd), 0x5a, PAGE_SIZE);
	cr_assert_eq(addr_to_desc(desc_to_addr(pd)), pd);
	zone_free_block(pd, 0);
	validate(0, "after a moved reservation");
}

Test(zone, init_moves_the_region_when_its_descriptors_place_is_taken)
{
	options_defaults(&opt);
	os.mmap = mmap_desc_taken;
	fixed_taken = 3;
	cr_assert_eq(zone_init(ZONE_BYTES), 0);
	check_moved(3);
}

Test(zone, init_frees_descriptors_granted_elsewhere)
{
	options_defaults(&opt);
	os.mmap = mmap_desc_taken;
	fixed_taken = 1;
	fixed_elsewhere = true;
	cr_assert_eq(zone_init(ZONE_BYTES), 0);
	check_moved(1);
	cr_assert(!mapped(granted_elsewhere), "descriptors mapped at the wrong place were kept");
}

Test(zone, init_moves_the_region_when_its_live_bytes_place_is_taken)
{
	options_defaults(&opt);
	os.mmap = mmap_live_taken;
	fixed_taken = 2;
	cr_assert_eq(zone_init(ZONE_BYTES), 0);
	cr_assert_eq(fixed_tries, 2);
	cr_assert_eq(zg.bytes, ZONE_BYTES);
	cr_assert_eq((uintptr_t)zg.descs, DESC_VMEMMAP + zg.base / 64);
	for (unsigned i = 0; i < 2; i++) {
		/* the refused try's region (its 16 MiB window) and descriptors
		 * went back; the region is 4 MiB aligned inside that window */
		uintptr_t lo = refused_region[i], hi = lo + ((uintptr_t)PAGE_SIZE << PAGE_SHIFT);
		for (uintptr_t a = lo; a < hi; a += MAX_BLOCK_BYTES) {
			if (a == zg.base)
				continue;
			cr_assert(!mapped((uintptr_t)addr_to_desc((void *)a)),
				  "descriptors of a refused try still mapped");
		}
	}
	cr_assert(mapped((uintptr_t)addr_to_live((void *)zg.base) & ~(uintptr_t)(PAGE_SIZE - 1)));
	/* the live bytes work: a one-hop block's byte is read and written */
	uint8_t *lv = addr_to_live((void *)(zg.base + ZONE_BYTES - PAGE_SIZE));
	*lv = 7;
	cr_assert_eq(*lv, 7);
	*lv = 0;
}

/* ENOMEM for the descriptors or the live bytes is not a place taken, and
 * another region would not help: one try at each size, 64 MiB down to
 * 4 MiB, every refused region given back. */
static void check_halves_at_once(void *(*hook)(void *, size_t, int, int, int, off_t))
{
	options_defaults(&opt);
	os.mmap = hook;
	fixed_taken = UINT32_MAX;
	fixed_errno = ENOMEM;
	cr_assert_eq(zone_init(ZONE_BYTES), -1);
	cr_assert_eq(zg.bytes, 0);
	cr_assert_eq(fixed_tries, 5);
	for (unsigned i = 0; hook == mmap_desc_taken && i < 5; i++)
		cr_assert(!mapped(refused_region[i]), "a refused region is still mapped");
}

Test(zone, init_halves_at_once_when_the_live_bytes_find_no_memory)
{
	check_halves_at_once(mmap_live_taken);
}

Test(zone, init_halves_at_once_when_the_descriptors_find_no_memory)
{
	check_halves_at_once(mmap_desc_taken);
}

Test(zone, init_gives_up_when_no_place_is_free)
{
	options_defaults(&opt);
	os.mmap = mmap_desc_taken;
	fixed_taken = UINT32_MAX;
	cr_assert_eq(zone_init(ZONE_BYTES), -1);
	cr_assert_eq(zg.bytes, 0);
	/* 8 tries at each size, 64 MiB down to 4 MiB */
	cr_assert_eq(fixed_tries, 8 * 5);
	for (unsigned i = 0; i < 16; i++)
		cr_assert(!mapped(refused_region[i]), "a refused region is still mapped");
}

/* ---- returning memory to the OS ------------------------------------------ */

static unsigned madvise_calls;
static size_t madvise_bytes;

static int madvise_counting(void *addr, size_t len, int advice)
{
	madvise_calls++;
	madvise_bytes += len;
	cr_assert_eq(advice, MADV_DONTNEED);
	cr_assert_eq((uintptr_t)addr % PAGE_SIZE, 0);
	cr_assert(zone_owns(addr) && zone_owns((char *)addr + len - 1), "madvise outside the zone");
	return saved_hooks.madvise(addr, len, advice);
}

Test(zone, purge_dirty_blocks)
{
	struct page_desc *held[64];
	struct zone_info zi;

	setup_zone(ZONE_BYTES);
	os.madvise = madvise_counting;

	/* Untouched and never-dirtied blocks are PG_ZERO: nothing to purge. */
	cr_assert_eq(zone_purge(0), 0);
	cr_assert_eq(madvise_calls, 0);

	/* Dirty two order-10 blocks' worth of pages and give them back. */
	for (unsigned i = 0; i < 64; i++) {
		held[i] = zone_alloc(5, 32);
		cr_assert_not_null(held[i]);
		memset(desc_to_addr(held[i]), 0x5c, 32 * PAGE_SIZE);
	}
	for (unsigned i = 0; i < 64; i++)
		zone_free_block(held[i], 5);
	validate(0, "dirty blocks freed");

	size_t purged = zone_purge(0);
	cr_assert_eq(purged, 2 * MAX_BLOCK_PAGES, "purged %zu pages", purged);
	cr_assert_gt(madvise_calls, 0);
	cr_assert_eq(madvise_bytes, purged * PAGE_SIZE);
	validate(0, "after purge");
	zone_info(&zi);
	cr_assert_eq(zi.purged_pages, purged);
	for (unsigned o = 0; o < MAX_ORDER - 1; o++)
		cr_assert_eq(zi.nr_free[o], 0, "purge left order %u split", o);

	/* The pages really are zero now, and a second purge has nothing to do. */
	struct page_desc *pd = zone_alloc(10, MAX_BLOCK_PAGES);
	cr_assert_not_null(pd);
	const unsigned char *p = desc_to_addr(pd);
	for (size_t i = 0; i < MAX_BLOCK_BYTES; i += 512)
		cr_assert_eq(p[i], 0, "byte %zu not zero after MADV_DONTNEED", i);
	zone_free_block(pd, 10);     /* freed blocks count as dirty again */
	cr_assert_eq(zone_purge(0), MAX_BLOCK_PAGES);
	unsigned before = madvise_calls;
	cr_assert_eq(zone_purge(0), 0);
	cr_assert_eq(madvise_calls, before);

	/* min_order skips smaller blocks. */
	pd = zone_alloc(0, 1);
	struct page_desc *keep = zone_alloc(0, 1);
	*(volatile char *)desc_to_addr(pd) = 1;
	zone_free_block(pd, 0);      /* a dirty order-0 block next to a held page */
	validate(1, "one page held");
	cr_assert_eq(zone_purge(1), 0, "min_order 1 must skip the order-0 block");
	cr_assert_eq(madvise_calls, before);
	cr_assert_eq(zone_purge(0), 1);
	cr_assert_eq(madvise_calls, before + 1);
	zone_free_block(keep, 0);
	validate(0, "after min_order purge");
}

/* ---- the zone lock's irqsave (§7.3) --------------------------------------- */

static unsigned sigmask_calls, sigmask_full_blocks;

static int sigmask_counting(int how, const sigset_t *set, sigset_t *old)
{
	sigmask_calls++;
	if (how == SIG_BLOCK && set && sigismember(set, SIGALRM) && sigismember(set, SIGUSR1) &&
	    sigismember(set, SIGINT))
		sigmask_full_blocks++;
	return saved_hooks.set_sigmask(how, set, old);
}

/* zone_irqsave:sigmask: every acquisition blocks every signal and restores
 * the caller's mask after unlocking. */
Test(zone, irqsave_sigmask_blocks_signals)
{
	sigset_t before, after;

	setup_zone(ZONE_BYTES);
	opt.zone_irqsave = IRQSAVE_SIGMASK;
	os.set_sigmask = sigmask_counting;
	sigemptyset(&before);
	sigaddset(&before, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &before, NULL);

	struct page_desc *pd = zone_alloc(0, 1);
	cr_assert_not_null(pd);
	cr_assert_eq(sigmask_full_blocks, 1, "zone_alloc did not block signals");
	cr_assert_eq(sigmask_calls, 2, "block + restore, nothing more");
	zone_free_block(pd, 0);
	cr_assert_eq(sigmask_full_blocks, 2);
	cr_assert_eq(sigmask_calls, 4);
	pthread_sigmask(SIG_SETMASK, NULL, &after);
	cr_assert(sigismember(&after, SIGUSR2) && !sigismember(&after, SIGALRM),
		  "the caller's signal mask was not restored");
	cr_assert_eq(mp_tls.in_zone, 0);
}

/* zone_irqsave:defer (the default): no system call per acquisition. */
Test(zone, irqsave_defer_makes_no_syscall)
{
	setup_zone(ZONE_BYTES);
	cr_assert_eq(opt.zone_irqsave, IRQSAVE_DEFER);
	os.set_sigmask = sigmask_counting;
	for (int i = 0; i < 100; i++) {
		struct page_desc *pd = zone_alloc(1, 2);
		cr_assert_not_null(pd);
		cr_assert_eq(mp_tls.in_zone, 0, "in_zone left set after zone_alloc");
		zone_free_range(desc_pfn(pd), 2);
	}
	cr_assert_eq(sigmask_calls, 0, "%u sigmask calls in defer mode", sigmask_calls);
	validate(0, "after the loop");
}
