/*
 * purge.c — unit tests for the zone's decay purge (src/zone/zone.c):
 * ages on the dirty lists, oldest first, what MADV_DONTNEED and MADV_FREE
 * leave behind, and the known-zero bookkeeping calloc relies on.
 *
 * The coarse clock is stubbed (os.coarse_ns), so time moves only when a
 * test says so; madvise is real unless a test records the calls.  Every
 * test checks the whole zone with zone_validate, which also checks that
 * each dirty list is in time order.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define ZONE_BYTES ((uint64_t)32 << 20)    /* 8 order-10 blocks */
#define SEC 1000000000ull

static struct os_hooks saved_hooks;
static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static void setup(void)
{
	saved_hooks = os;
	os.coarse_ns = fake_clock;
	fake_now = 100 * SEC;
	options_defaults(&opt);
	cpu_init();
	cr_assert_eq(zone_init(ZONE_BYTES), 0);
}

static void teardown(void)
{
	os = saved_hooks;
}

TestSuite(purge, .init = setup, .fini = teardown, .timeout = 60);

static void validate(uint64_t used, const char *when)
{
	char why[256] = "";
	cr_assert_eq(zone_validate(used, why, sizeof(why)), 0, "%s: %s", when, why);
}

/* madvise recorded in call order, and done for real. */
static void *advised[64];
static int advice_seen[64];
static unsigned nadvised;

static int madvise_recording(void *addr, size_t len, int advice)
{
	if (nadvised < 64) {
		advised[nadvised] = addr;
		advice_seen[nadvised] = advice;
	}
	nadvised++;
	return madvise(addr, len, advice);
}

/* A dirty block of 2^order pages filled with byte c. */
static struct page_desc *dirty_block(unsigned order, int c)
{
	struct page_desc *pd = zone_alloc(order, (size_t)1 << order);
	cr_assert_not_null(pd);
	memset(desc_to_addr(pd), c, PAGE_SIZE << order);
	return pd;
}

/* zone_purge_aged without a call budget: it never runs out. */
static bool aged(uint64_t cutoff, int advice, size_t *pages)
{
	bool more;
	bool done = zone_purge_aged(cutoff, advice, UINT64_MAX, pages, &more);
	cr_assert(!more, "an unlimited budget ran out");
	return done;
}

Test(purge, oldest_first_and_only_the_old)
{
	/* Three order-4 blocks, each freed a second after the other, with a
	 * live block between them so that they cannot merge. */
	struct page_desc *b[3], *guard[3];
	for (int i = 0; i < 3; i++) {
		b[i] = dirty_block(4, 0x11 * (i + 1));
		guard[i] = dirty_block(4, 0x77);
	}
	os.madvise = madvise_recording;
	for (int i = 2; i >= 0; i--) {     /* freed in the order b2, b1, b0 */
		zone_free_block(b[i], 4);
		fake_now += SEC;
	}
	validate(3 * 16, "three freed");
	uint64_t oldest, dirty = zone_dirty(&oldest);
	cr_assert_eq(dirty, 3 * 16);
	cr_assert_eq(oldest, 100 * SEC, "the first freed is the oldest");

	/* Cut-off between the second and the third free: two go, b2 first. */
	size_t pages;
	cr_assert(aged(101 * SEC, MADV_DONTNEED, &pages));
	cr_assert_eq(pages, 32);
	cr_assert_eq(nadvised, 2);
	cr_assert_eq(advised[0], desc_to_addr(b[2]), "oldest first");
	cr_assert_eq(advised[1], desc_to_addr(b[1]));
	cr_assert_eq(advice_seen[0], MADV_DONTNEED);
	validate(3 * 16, "after the aged purge");
	dirty = zone_dirty(&oldest);
	cr_assert_eq(dirty, 16, "b0 is younger than the cut-off and stays");
	cr_assert_eq(oldest, 102 * SEC);

	/* Nothing old enough: nothing done. */
	cr_assert(aged(101 * SEC, MADV_DONTNEED, &pages));
	cr_assert_eq(pages, 0);
	cr_assert_eq(nadvised, 2);
	for (int i = 0; i < 3; i++)
		zone_free_block(guard[i], 4);
	validate(0, "all free");
}

Test(purge, dontneed_reads_zero_and_sets_pg_zero)
{
	struct page_desc *pd = dirty_block(3, 0xa5), *keep = dirty_block(3, 0x5a);
	void *addr = desc_to_addr(pd);
	size_t pages;

	zone_free_block(pd, 3);
	fake_now += 10 * SEC;
	cr_assert(aged(fake_now - SEC, MADV_DONTNEED, &pages));
	cr_assert_eq(pages, 8);
	validate(8, "purged");
	const unsigned char *p = addr;
	for (size_t i = 0; i < 8 * PAGE_SIZE; i += 64)
		cr_assert_eq(p[i], 0, "byte %zu not zero after MADV_DONTNEED", i);

	/* Allocated again: the same pages, known zero (calloc skips memset),
	 * usable. */
	struct page_desc *again = zone_alloc(3, 8);
	cr_assert_eq(again, pd, "the purged block is reused");
	cr_assert(again->flags & PG_ZERO, "flags %x: PG_ZERO lost", again->flags);
	memset(addr, 0x3c, 8 * PAGE_SIZE);
	cr_assert_eq(p[8 * PAGE_SIZE - 1], 0x3c);
	validate(16, "reused");

	/* Freed again it is dirty: PG_ZERO must not survive a free. */
	zone_free_block(again, 3);
	struct page_desc *third = zone_alloc(3, 8);
	cr_assert_eq(third, pd);
	cr_assert(!(third->flags & PG_ZERO), "a freed block kept PG_ZERO");
	zone_free_block(third, 3);
	zone_free_block(keep, 3);
	validate(0, "all free");
}

Test(purge, madv_free_is_clean_but_not_zero)
{
	struct page_desc *pd = dirty_block(2, 0xc3), *keep = dirty_block(2, 0x3c);
	const unsigned char *p = desc_to_addr(pd);
	size_t pages;

	os.madvise = madvise_recording;
	zone_free_block(pd, 2);
	fake_now += 10 * SEC;
	cr_assert(aged(fake_now, MADV_FREE, &pages));
	cr_assert_eq(pages, 4);
	validate(4, "advised");
	uint64_t oldest;
	cr_assert_eq(zone_dirty(&oldest), 0, "an advised block is clean");
	cr_assert_eq(zone_purge(0), 4, "malloc_trim redoes it with MADV_DONTNEED");
	cr_assert_eq(advice_seen[nadvised - 1], MADV_DONTNEED);

	/* Once more with MADV_FREE only, then reuse it. */
	struct page_desc *again = zone_alloc(2, 4);
	cr_assert_eq(again, pd);
	memset(desc_to_addr(again), 0xc3, 4 * PAGE_SIZE);
	zone_free_block(again, 2);
	fake_now += 10 * SEC;
	cr_assert(aged(fake_now, MADV_FREE, &pages));
	cr_assert_eq(pages, 4);
	struct page_desc *third = zone_alloc(2, 4);
	cr_assert_eq(third, pd);
	cr_assert(!(third->flags & PG_ZERO), "MADV_FREE pages are not known zero");
	cr_assert(!(third->flags & PG_ADVISED), "PG_ADVISED leaked into a live block");
	/* Each page reads its old contents or zero, nothing else. */
	for (size_t i = 0; i < 4 * PAGE_SIZE; i += 512)
		cr_assert(p[i] == 0xc3 || p[i] == 0, "byte %zu is %#x", i, p[i]);
	zone_free_block(third, 2);
	zone_free_block(keep, 2);
	validate(0, "all free");
}

Test(purge, merge_takes_the_dirty_age)
{
	/* Two buddies: a purged (clean) one and one freed later (dirty). */
	struct page_desc *a = dirty_block(5, 1), *b = dirty_block(5, 2), *keep = dirty_block(6, 3);
	size_t pages;

	cr_assert_eq(desc_pfn(b), desc_pfn(a) ^ 32, "a and b are buddies");
	zone_free_block(a, 5);
	fake_now += 5 * SEC;
	cr_assert(aged(fake_now, MADV_DONTNEED, &pages));
	cr_assert_eq(pages, 32);
	fake_now += 5 * SEC;
	uint64_t freed_b = fake_now;
	zone_free_block(b, 5);            /* merges with the clean a: dirty */
	validate(64, "merged");
	uint64_t oldest;
	cr_assert_eq(zone_dirty(&oldest), 64, "the merged block is dirty");
	cr_assert_eq(oldest, freed_b, "and as old as its dirty half");

	cr_assert(aged(freed_b - 1, MADV_DONTNEED, &pages));
	cr_assert_eq(pages, 0, "not before the dirty half is old");
	cr_assert(aged(freed_b, MADV_DONTNEED, &pages));
	cr_assert_eq(pages, 64);
	validate(64, "merged block purged");

	/* Purged whole, it comes back known zero. */
	struct page_desc *c = zone_alloc(6, 64);
	cr_assert(c->flags & PG_ZERO);
	zone_free_block(keep, 6);
	zone_free_block(c, 6);
	validate(0, "all free");
}

Test(purge, split_keeps_the_age)
{
	struct page_desc *big = dirty_block(6, 9), *keep = dirty_block(6, 8);
	size_t pages;

	zone_free_block(big, 6);
	uint64_t freed = fake_now;
	fake_now += 60 * SEC;
	/* Take one page of it: the rest goes back split, as old as before. */
	struct page_desc *one = zone_alloc(0, 1);
	cr_assert_eq(one, big, "the newest dirty block is split first");
	uint64_t oldest;
	cr_assert_eq(zone_dirty(&oldest), 63);
	cr_assert_eq(oldest, freed);
	validate(65, "split");
	cr_assert(aged(freed, MADV_DONTNEED, &pages));
	cr_assert_eq(pages, 63);
	validate(65, "split purged");
	zone_free_block(one, 0);
	zone_free_block(keep, 6);
	validate(0, "all free");
}

/* Random allocations and frees while time moves, aged purges between
 * them: the lists stay in time order and the counts add up. */
Test(purge, random_operations_keep_the_zone_valid)
{
	enum { N = 512 };
	struct page_desc *live[N] = { 0 };
	unsigned ord[N];
	uint64_t used = 0, x = 0x9e3779b97f4a7c15ull;

	for (unsigned step = 0; step < 20000; step++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		uint64_t r = x * 0x2545f4914f6cdd1dull;
		unsigned i = (unsigned)(r % N);
		if (live[i]) {
			zone_free_block(live[i], ord[i]);
			used -= (uint64_t)1 << ord[i];
			live[i] = NULL;
		} else {
			ord[i] = (unsigned)((r >> 20) % 6);
			live[i] = zone_alloc(ord[i], (size_t)1 << ord[i]);
			if (live[i]) {
				used += (uint64_t)1 << ord[i];
				*(volatile char *)desc_to_addr(live[i]) = 1;
			}
		}
		fake_now += (r >> 40) % (50 * 1000000ull);     /* up to 50 ms */
		if (step % 500 == 0) {
			size_t pages;
			int advice = (step / 500) % 3 == 0 ? MADV_FREE : MADV_DONTNEED;
			cr_assert(aged(fake_now - 2 * SEC, advice, &pages));
			validate(used, "after an aged purge");
		}
	}
	validate(used, "end");
	for (unsigned i = 0; i < N; i++)
		if (live[i])
			zone_free_block(live[i], ord[i]);
	validate(0, "all free");
	zone_purge(0);
	uint64_t oldest;
	cr_assert_eq(zone_dirty(&oldest), 0);
	cr_assert_eq(oldest, UINT64_MAX);
}

/* A purge's madvise calls stop at its budget, oldest first, and *more says
 * so; the next call goes on where it stopped, until nothing is left. */
Test(purge, the_call_budget_stops_a_purge_and_the_next_goes_on)
{
	enum { N = 7, BUDGET = 3 };
	struct page_desc *b[N], *guard[N];
	for (int i = 0; i < N; i++) {
		b[i] = dirty_block(2, 0x10 + i);
		guard[i] = dirty_block(2, 0x77);     /* so that no two merge */
	}
	os.madvise = madvise_recording;
	for (int i = 0; i < N; i++) {
		zone_free_block(b[i], 2);
		fake_now += SEC;
	}
	size_t pages, total = 0;
	bool more = true;
	int rounds = 0;
	while (more) {
		unsigned before = nadvised;
		cr_assert(zone_purge_aged(fake_now, MADV_DONTNEED, BUDGET, &pages, &more));
		cr_assert_leq(nadvised - before, BUDGET, "%u calls on a budget of %d",
			      nadvised - before, BUDGET);
		cr_assert_eq(more, nadvised - before == BUDGET, "more %d after %u calls", more,
			     nadvised - before);
		total += pages;
		validate(N * 4, "between two purges");
		cr_assert_lt(++rounds, 10, "the purge does not end");
	}
	cr_assert_eq(rounds, (N + BUDGET) / BUDGET, "%d rounds for %d blocks", rounds, N);
	cr_assert_eq(total, (size_t)N * 4);
	cr_assert_eq(nadvised, N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(advised[i], desc_to_addr(b[i]), "call %d: not the oldest block left", i);
	uint64_t oldest;
	cr_assert_eq(zone_dirty(&oldest), 0);
	for (int i = 0; i < N; i++)
		zone_free_block(guard[i], 2);
	validate(0, "all free");
}
