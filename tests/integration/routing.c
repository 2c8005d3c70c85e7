/*
 * routing.c — which requests the zone serves, what they hold, and that
 * their contents survive, under LD_PRELOAD=libmagpage.so.
 *
 * Proves (DESIGN.md "Size routing"):
 *   - requests of 4096 .. 4 MiB bytes come from the zone (magpage_owns),
 *     page aligned; smaller and larger ones go to glibc;
 *   - malloc_usable_size is the pages actually held: a 3-page request holds
 *     3 pages, not the 4 of its buddy block (the tail goes back at once),
 *     and the value never changes while the block lives; with cache_borrow
 *     (the default design) a size whose class is out of blocks may hold a
 *     cached block of a larger class instead, at most 25% (waste_max) of
 *     it unused, which goes back to its own class when freed
 *     (integration.semantics.exact runs these with cache_borrow:0);
 *   - contents survive other allocations, and realloc keeps the prefix when
 *     it moves a block between glibc and the zone, grows it, or shrinks it
 *     in place (same pointer, fewer pages), or to half or less into a
 *     block of its size;
 *   - a loop that keeps one block live, freed as a page after a shrink or
 *     an over-aligned allocation, reuses its memory: the zone carves a few
 *     4 MiB blocks, not one per round;
 *   - a failed realloc leaves the block intact and freeable.
 */
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "mp_test.h"

TestSuite(routing, .init = mp_api_load);

/* The most pages a block for n pages may hold: n, or with cache_borrow, a
 * cached block of a larger class up to 16 pages that leaves at most 25%
 * of it unused (3 -> 4, 9 -> 12, 13 -> 16). */
static size_t most_pages(size_t n)
{
	static int borrow = -1;
	if (borrow < 0)
		borrow = mp_conf_has("cache:bonwick") && mp_conf_has("cache_borrow:1") &&
			 mp_conf_has("waste_max:25") && mp_conf_has("cache_order:4") &&
			 mp_conf_has("cache_exact:1");
	size_t most = n;
	for (size_t m = n + 1; borrow && m <= 16; m++)
		if ((m - n) * 100 <= m * 25)
			most = m;
	return most;
}

/* The usable size of a block for want bytes: the pages it holds, from
 * want's to most_pages'. */
static void assert_pages_held(const void *p, size_t want)
{
	size_t u = malloc_usable_size((void *)p), pages = (want + PAGE - 1) / PAGE;
	cr_assert(u % PAGE == 0 && u >= pages * PAGE && u <= most_pages(pages) * PAGE,
		  "malloc(%zu): usable %zu, expected %zu pages (up to %zu)", want, u, pages,
		  most_pages(pages));
}
TestSuite(contents, .init = mp_api_load);
TestSuite(realloc, .init = mp_api_load);

static const size_t zone_sizes[] = {
	4096, 8000, 8032, 8168, 8192, 12288, 16384, 27392, 65536, 1 * MiB + 100 * KiB,
	MAX_ZONE_BLOCK,
};

Test(routing, page_sized_requests_come_from_the_zone)
{
	for (size_t i = 0; i < sizeof(zone_sizes) / sizeof(zone_sizes[0]); i++) {
		size_t s = zone_sizes[i];
		void *p = malloc(s);
		cr_assert_not_null(p, "malloc(%zu)", s);
		cr_assert(mp.owns(p), "malloc(%zu) = %p is not in the zone", s, p);
		cr_assert_aligned(p, PAGE);
		memset(p, 0x5a, s);
		free(p);
	}
}

Test(routing, other_sizes_go_to_glibc)
{
	static const size_t sizes[] = { 0, 1, 16, 100, 1000, 4095, MAX_ZONE_BLOCK + 1, 16 * MiB };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t s = sizes[i];
		void *p = malloc(s);
		cr_assert_not_null(p, "malloc(%zu)", s);
		cr_assert_not(mp.owns(p), "malloc(%zu) = %p came from the zone", s, p);
		cr_assert_geq(malloc_usable_size(p), s);
		memset(p, 0x5a, s);
		free(p);
	}
}

struct usable_case {
	size_t request, usable;
};

Test(routing, usable_size_is_the_pages_held)
{
	static const struct usable_case cases[] = {
		{ 4096, 4096 },   { 8000, 8192 },    { 8032, 8192 },   { 8192, 8192 },
		{ 12287, 12288 }, { 12288, 12288 },  { 12289, 16384 }, { 20480, 20480 },
		{ 7 * 4096, 7 * 4096 }, { 65536 + 1, 65536 + 4096 },
		{ MAX_ZONE_BLOCK - 4096, MAX_ZONE_BLOCK - 4096 }, { MAX_ZONE_BLOCK, MAX_ZONE_BLOCK },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		void *p = malloc(cases[i].request);
		cr_assert_not_null(p);
		assert_pages_held(p, cases[i].usable);
		/* The whole usable size is ours to write. */
		memset(p, 0xa5, malloc_usable_size(p));
		free(p);
	}
}

/* The exact-allocation tail return, seen from the zone's side: a 3-page
 * block holds 3 pages, a 5-page block 5, a 1023-page block 1023 (or, for
 * up to 16 pages, a borrowed block's, no more than most_pages). */
Test(routing, non_power_of_two_blocks_hold_only_their_pages)
{
	static const size_t pages[] = { 3, 5, 6, 7, 9, 100, 1023 };
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		struct magpage_stats before = mp_stats();
		void *p = malloc(pages[i] * PAGE);
		cr_assert_not_null(p);
		struct magpage_stats during = mp_stats();
		assert_pages_held(p, pages[i] * PAGE);
		cr_assert_eq(during.held_pages - before.held_pages, malloc_usable_size(p) / PAGE,
			     "malloc(%zu pages) holds %lu pages, usable %zu", pages[i],
			     (unsigned long)(during.held_pages - before.held_pages),
			     malloc_usable_size(p));
		free(p);
		struct magpage_stats after = mp_stats();
		cr_assert_eq(after.held_pages, before.held_pages,
			     "free(%zu pages) left %ld pages held", pages[i],
			     (long)(after.held_pages - before.held_pages));
	}
}

/* The report's count of allocations of n pages that borrowed a larger
 * class's block: "borrowed":[1-page, 2-page, ...] of the caches object. */
static unsigned long long borrowed_of(size_t n)
{
	const char *at = strstr(mp_report_json(), "\"borrowed\":[");
	cr_assert_not_null(at, "no borrowed counts in the report");
	at += strlen("\"borrowed\":[");
	for (size_t i = 1; i < n; i++) {
		at = strchr(at, ',');
		cr_assert_not_null(at);
		at++;
	}
	return strtoull(at, NULL, 10);
}

/* One try of the 16-page part of the test below; false when the decay
 * or the idle purge drained the arrays meanwhile (nothing asserted then). */
static bool borrow_from_16_pages(void)
{
	mp.drain();                        /* every class empty, here and in the depot */
	unsigned long long d0 = mp_moved_behind();
	void *big[4];
	for (int i = 0; i < 4; i++) {
		big[i] = malloc(16 * PAGE);
		cr_assert_not_null(big[i]);
		memset(big[i], 0x11 * (i + 1), 16 * PAGE);
	}
	unsigned long long b0 = borrowed_of(13);
	for (int i = 0; i < 4; i++)
		free(big[i]);                  /* 16-page class: big[3] on top */
	void *p = malloc(13 * PAGE);
	cr_assert_not_null(p);
	size_t usable = malloc_usable_size(p);
	memset(p, 0x5a, usable);
	unsigned long long b1 = borrowed_of(13);
	free(p);
	void *q = malloc(16 * PAGE);       /* back home, on top of its class */
	cr_assert_not_null(q);
	free(q);
	/* 9 pages would leave 7 of 16 unused: made of their own pages */
	void *r = malloc(9 * PAGE);
	cr_assert_not_null(r);
	size_t r_usable = malloc_usable_size(r);
	free(r);
	if (mp_moved_behind() != d0)
		return false;
	cr_assert_eq(p, big[3], "malloc(13 pages) = %p, not the 16-page block freed last (%p)",
		     p, big[3]);
	cr_assert_eq(usable, 16 * PAGE);
	cr_assert_eq(b1, b0 + 1, "the borrow is not counted");
	cr_assert_eq(q, big[3], "malloc(16 pages) = %p, not the block lent and freed (%p)", q,
		     big[3]);
	cr_assert_eq(r_usable, 9 * PAGE);
	for (int i = 0; i < 4; i++)
		cr_assert_neq(r, big[i], "malloc(9 pages) took a 16-page block");
	return true;
}

/* One try of the 5-page part: with 5-page blocks cached, 4 pages take one
 * (a fifth unused), and so do 3 pages and a byte (4 pages: the bytes
 * unused in the last page of a request are held whatever block it gets);
 * calloc's blocks do not borrow (they would need zeroing as far as their
 * usable size).  False when the decay or the idle purge drained the arrays
 * meanwhile. */
static bool borrow_from_5_pages(void)
{
	mp.drain();
	unsigned long long d0 = mp_moved_behind();
	void *five[2];
	for (int i = 0; i < 2; i++) {
		five[i] = malloc(5 * PAGE);
		cr_assert_not_null(five[i]);
	}
	free(five[0]);
	free(five[1]);
	void *four = malloc(4 * PAGE);
	void *odd = malloc(3 * PAGE + 1);
	cr_assert(four && odd);
	size_t four_usable = malloc_usable_size(four), odd_usable = malloc_usable_size(odd);
	free(odd);
	free(four);                        /* both home: the 5-page class */
	void *zeroed = calloc(1, 4 * PAGE);
	cr_assert_not_null(zeroed);
	size_t zeroed_usable = malloc_usable_size(zeroed);
	free(zeroed);
	if (mp_moved_behind() != d0)
		return false;
	cr_assert_eq(four, five[1], "malloc(4 pages) = %p, not the 5-page block freed last (%p)",
		     four, five[1]);
	cr_assert_eq(four_usable, 5 * PAGE);
	cr_assert_eq(odd, five[0], "malloc(3 pages + 1) = %p, not the other 5-page block (%p)",
		     odd, five[0]);
	cr_assert_eq(odd_usable, 5 * PAGE);
	cr_assert_eq(zeroed_usable, 4 * PAGE, "calloc(4 pages): usable %zu", zeroed_usable);
	cr_assert(zeroed != five[0] && zeroed != five[1], "calloc(4 pages) took a 5-page block");
	return true;
}

/* cache_borrow: a size whose class has no block on this CPU nor in the
 * depot takes this CPU's cached block of a larger class, the nearest that
 * leaves at most 25% of it unused; the block keeps its size and goes back
 * to its own class when freed.  A class further up is not asked.  malloc
 * borrows on its one-hop path's miss (malloc_borrow_hop), or on its slow
 * path (bonwick's borrow) with statistics on or while the purge trap is
 * armed, which the drain leaves it: integration.semantics.nopurge
 * (purge_delay_ms:0, no trap) takes the first, .stats the second.  A try
 * the decay or the idle purge disturbed (a loaded machine) is made again. */
Test(routing, an_empty_class_borrows_a_larger_cached_block)
{
	if (most_pages(13) != 16)
		cr_skip_test("cache_borrow off, or another design, waste_max or cache_order");
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);   /* one CPU's arrays */
	int tries = 1;
	while (!borrow_from_16_pages())
		cr_assert_lt(tries++, MP_TRIES, "the decay or the idle purge drained every try");
	while (!borrow_from_5_pages())
		cr_assert_lt(tries++, MP_TRIES, "the decay or the idle purge drained every try");
	mp.drain();
}

Test(routing, usable_size_is_stable_for_the_life_of_a_block)
{
	void *p = malloc(3 * PAGE);
	void *q = malloc(8000);
	cr_assert_not_null(p);
	cr_assert_not_null(q);
	size_t up = malloc_usable_size(p), uq = malloc_usable_size(q);
	assert_pages_held(p, 3 * PAGE);
	cr_assert_eq(uq, 2 * PAGE);
	for (int round = 0; round < 50; round++) {
		void *tmp[16];
		for (int i = 0; i < 16; i++)
			tmp[i] = malloc((size_t)(i + 1) * 3000);
		for (int i = 0; i < 16; i++)
			free(tmp[i]);
		if (round % 10 == 0) {
			mp.drain();
			malloc_trim(0);
		}
		cr_assert_eq(malloc_usable_size(p), up, "round %d", round);
		cr_assert_eq(malloc_usable_size(q), uq, "round %d", round);
	}
	free(p);
	free(q);
}

/* malloc_usable_size must not crash on pointers it did not issue, and
 * answers 0 for the inside of a zone block. */
Test(routing, usable_size_of_an_interior_pointer_is_zero)
{
	char *p = malloc(3 * PAGE);
	cr_assert_not_null(p);
	cr_assert_eq(malloc_usable_size(p + PAGE), 0);
	cr_assert_eq(malloc_usable_size(p + 2 * PAGE), 0);
	cr_assert_eq(malloc_usable_size(p + 16), 0);
	free(p);
}

/* ---- contents ------------------------------------------------------------ */

#define NBLOCKS 300

Test(contents, patterns_survive_other_allocations)
{
	static void *blk[NBLOCKS];
	static size_t len[NBLOCKS];
	unsigned seed = 12345;

	for (int i = 0; i < NBLOCKS; i++) {
		seed = seed * 1103515245 + 12345;
		switch (i % 5) {
		case 0: len[i] = 4096 * (1 + seed % 8); break;          /* exact pages */
		case 1: len[i] = 4096 * (1 + seed % 8) + 8 + seed % 200; break;  /* page + header */
		case 2: len[i] = 4096 * (2 + seed % 8) - 8 - seed % 200; break;  /* just under */
		case 3: len[i] = 1 + seed % 4000; break;                /* glibc */
		default: len[i] = 4096 * (16 + seed % 200); break;      /* larger zone blocks */
		}
		blk[i] = malloc(len[i]);
		cr_assert_not_null(blk[i]);
		fill(blk[i], len[i], (uint64_t)i);
	}
	/* Churn: free every third, allocate and scribble over new blocks,
	 * calloc, realloc, drain and trim. */
	for (int i = 0; i < NBLOCKS; i += 3) {
		free(blk[i]);
		blk[i] = NULL;
	}
	for (int r = 0; r < 200; r++) {
		size_t s = 4096 * (1 + r % 9) + (size_t)(r % 3) * 100;
		void *x = (r & 1) ? calloc(1, s) : malloc(s);
		cr_assert_not_null(x);
		memset(x, 0xee, s);
		x = realloc(x, s + 5000);
		cr_assert_not_null(x);
		memset(x, 0xdd, s + 5000);
		free(x);
		if (r == 100) {
			mp.drain();
			malloc_trim(0);
		}
	}
	for (int i = 0; i < NBLOCKS; i++) {
		if (!blk[i])
			continue;
		long at = check(blk[i], len[i], (uint64_t)i);
		cr_assert_eq(at, -1, "block %d (%zu bytes at %p) wrong at offset %ld", i, len[i],
			     blk[i], at);
		free(blk[i]);
	}
}

/* ---- realloc across classes ---------------------------------------------- */

/* realloc(p, to) of a block of from bytes filled with a pattern: the result
 * holds the first min(from, to) bytes, and lands where routing says. */
static void *realloc_checked(size_t from, size_t to, bool want_owned)
{
	char *p = malloc(from);
	cr_assert_not_null(p);
	fill(p, from, from ^ to);
	char *q = realloc(p, to);
	cr_assert_not_null(q, "realloc(%zu -> %zu)", from, to);
	cr_assert_pattern(q, from < to ? from : to, from ^ to);
	cr_assert_eq(!!mp.owns(q), want_owned, "realloc(%zu -> %zu) = %p: owned %d", from, to,
		     (void *)q, mp.owns(q));
	cr_assert_geq(malloc_usable_size(q), to);
	memset(q, 0x11, to);
	return q;
}

Test(realloc, small_to_page)
{
	free(realloc_checked(100, 4096, true));
	free(realloc_checked(4095, 8032, true));
	free(realloc_checked(3000, 3 * PAGE, true));
}

Test(realloc, page_to_small)
{
	free(realloc_checked(4096, 100, false));
	free(realloc_checked(3 * PAGE, 4095, false));
	free(realloc_checked(8000, 1, false));
}

Test(realloc, page_to_bigger_page)
{
	free(realloc_checked(4096, 8192, true));
	free(realloc_checked(8000, 3 * PAGE - 7, true));
	free(realloc_checked(8192, MAX_ZONE_BLOCK, true));
}

Test(realloc, page_to_beyond_the_zone)
{
	free(realloc_checked(8192, MAX_ZONE_BLOCK + 1, false));
	free(realloc_checked(MAX_ZONE_BLOCK, 8 * MiB, false));
}

Test(realloc, beyond_the_zone_to_page)
{
	free(realloc_checked(8 * MiB, 3 * PAGE, true));
}

Test(realloc, shrink_within_pages_stays_in_place)
{
	/* Within the same pages: same pointer, same usable size. */
	char *p = malloc(3 * PAGE);
	cr_assert_not_null(p);
	fill(p, 3 * PAGE, 3);
	char *q = realloc(p, 3 * PAGE - 100);
	cr_assert_eq(q, p);
	cr_assert_eq(malloc_usable_size(q), 3 * PAGE);
	cr_assert_pattern(q, 3 * PAGE - 100, 3);
	free(q);

	/* Sizes no cache keeps: in place, the tail back to the zone. */
	p = malloc(64 * PAGE);
	cr_assert_not_null(p);
	fill(p, 64 * PAGE, 64);
	struct magpage_stats before = mp_stats();
	q = realloc(p, 40 * PAGE - 400);
	cr_assert_eq(q, p, "shrink moved the block from %p to %p", (void *)p, (void *)q);
	cr_assert_eq(malloc_usable_size(q), 40 * PAGE);
	cr_assert_pattern(q, 40 * PAGE - 400, 64);
	struct magpage_stats after = mp_stats();
	cr_assert_eq(before.held_pages - after.held_pages, 24,
		     "shrinking 64 -> 40 pages gave back %ld pages",
		     (long)(before.held_pages - after.held_pages));
	free(q);
}

/* The default design's sizes: every page count up to 16 has a cache (the
 * others keep fewer, which changes which shrinks move). */
static bool every_size_cached(void)
{
	return mp_conf_has("cache:bonwick") && mp_conf_has("cache_exact:1") &&
	       mp_conf_has("cache_order:4") && mp_conf_has("waste_max:25") &&
	       mp_conf_has("cache_borrow:1");
}

/* A cached size's block shrunk by at most waste_max percent of its pages
 * (25: 8 pages to 6 or 7), one a malloc of the new size could have been
 * lent (cache_borrow), stays whole: same pointer, same usable size, nothing
 * given back; it goes back to its own size's cache when freed (family.c,
 * realloc_shrink_way).  Without a cache it shrinks in place.  (A malloc
 * may itself get a larger cached block: its usable size says how many
 * pages it holds.) */
Test(realloc, a_small_shrink_keeps_a_cached_block_whole)
{
	if (mp_has_cache() && !every_size_cached())
		cr_skip_test("needs every size up to 16 pages cached (the default)");
	for (int i = 0; i < 3; i++) {
		char *p = malloc(8 * PAGE);
		cr_assert_not_null(p);
		size_t have = malloc_usable_size(p) / PAGE;
		size_t to = i == 0 ? (have - 1) * PAGE : i == 1 ? (have - have / 4 - 1) * PAGE + 1
								: (have - have / 4) * PAGE;
		fill(p, have * PAGE, i);
		struct magpage_stats before = mp_stats();
		char *q = realloc(p, to);
		cr_assert_eq(q, p, "realloc(%zu pages -> %zu) moved", have, to);
		cr_assert_pattern(q, to, i);
		struct magpage_stats after = mp_stats();
		if (mp_has_cache()) {
			cr_assert_eq(malloc_usable_size(q), have * PAGE,
				     "realloc(%zu pages -> %zu)", have, to);
			cr_assert_eq(before.held_pages, after.held_pages,
				     "realloc(%zu pages -> %zu) gave back %ld pages", have, to,
				     (long)(before.held_pages - after.held_pages));
		} else {
			cr_assert_eq(malloc_usable_size(q), (to + PAGE - 1) / PAGE * PAGE);
		}
		free(q);
	}
}

/* A cached size's block shrunk by more than waste_max percent moves to a
 * block of its new size (or one a cache lends it), and the whole old block
 * goes back: 5 pages to 3, 16 to 11, 3 to 2.  Without a cache it stays,
 * shrunk. */
Test(realloc, a_larger_shrink_moves_to_a_block_of_its_size)
{
	if (mp_has_cache() && !every_size_cached())
		cr_skip_test("needs every size up to 16 pages cached (the default)");
	static const size_t from[] = { 5 * PAGE, 16 * PAGE, 3 * PAGE };
	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		char *p = malloc(from[i]);
		cr_assert_not_null(p);
		size_t have = malloc_usable_size(p) / PAGE, to = (have - have / 4 - 1) * PAGE - 400;
		fill(p, have * PAGE, from[i]);
		char *q = realloc(p, to);
		cr_assert_not_null(q);
		cr_assert_pattern(q, to, from[i]);
		if (mp_has_cache()) {
			cr_assert_neq(q, p, "realloc(%zu pages -> %zu) stayed in place", have, to);
			size_t u = malloc_usable_size(q);
			cr_assert(u >= to && u < have * PAGE,
				  "realloc(%zu pages -> %zu) moved to %zu bytes", have, to, u);
		} else {
			cr_assert_eq(q, p, "realloc(%zu pages -> %zu) moved without a cache", have,
				     to);
			cr_assert_eq(malloc_usable_size(q), (to + PAGE - 1) / PAGE * PAGE);
		}
		free(q);
	}
}

/* A shrink to half the pages or less, to a size a cache keeps, moves
 * there, and the whole old block goes back (family.c, realloc_moves_down);
 * the contents come along.  Without a cache it stays in place. */
Test(realloc, a_shrink_to_half_moves_to_a_block_of_its_size)
{
	static const size_t from[] = { 2 * PAGE, 3 * PAGE, 16 * PAGE, 64 * PAGE, 1 * MiB };
	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		char *p = malloc(from[i]);
		cr_assert_not_null(p);
		fill(p, from[i], from[i]);
		char *q = realloc(p, PAGE);
		cr_assert_not_null(q);
		/* cache:none keeps no size: in place */
		if (mp_has_cache())
			cr_assert_neq(q, p, "realloc(%zu -> %d) stayed in place", from[i], PAGE);
		else
			cr_assert_eq(q, p, "realloc(%zu -> %d) moved without a cache", from[i],
				     PAGE);
		cr_assert_pattern(q, PAGE, from[i]);
		cr_assert_eq(malloc_usable_size(q), PAGE);
		free(q);
	}
}

/* 4 MiB blocks the zone has carved (the JSON report's zone.carved). */
static unsigned long long zone_carved(void)
{
	return mp_report_counter("zone", "carved");
}

/* One block live at a time, freed as one page, for thousands of rounds:
 * the zone reuses what was freed instead of carving fresh 4 MiB blocks.
 * Before, the page each round left in a cache kept its buddies from
 * merging, and every round needed fresh space: one loop walked the whole
 * region (hundreds of MB of RSS). */
#define WALK_ROUNDS 4000
#define WALK_CARVES 4     /* a few blocks for the loop, more than enough */

Test(realloc, shrinks_in_a_loop_reuse_their_memory)
{
	static const size_t from[] = { 64 * KiB, 1 * MiB };
	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		unsigned long long before = zone_carved();
		for (int r = 0; r < WALK_ROUNDS; r++) {
			char *p = malloc(from[i]);
			cr_assert_not_null(p);
			p[0] = (char)r;
			p[from[i] - 1] = 2;
			p = realloc(p, PAGE);
			cr_assert_not_null(p);
			cr_assert_eq(p[0], (char)r);
			free(p);
		}
		unsigned long long carved = zone_carved() - before;
		cr_assert_leq(carved, WALK_CARVES, "%d rounds of malloc(%zu), realloc to a page "
			      "and free carved %llu 4 MiB blocks", WALK_ROUNDS, from[i], carved);
	}
}

/* Threads that malloc 1 to 25 pages' worth of bytes, write them, realloc
 * each to half its bytes and free it, four blocks live at most: the zone
 * reuses what they free.  Shrunk in place, each cached size's block left
 * its head in another size's cache and its tail in the zone, whose lists
 * handed it out again; the depots of the sizes shrunk to filled with such
 * heads, nothing of 32 pages could form, and every round carved more
 * (53 blocks, 159 MiB of RSS, in 16 rounds of 20,000 on 4 threads; 2.8 MiB
 * under glibc).  Now a shrink keeps the block or moves it
 * (family.c, realloc_shrink_way). */
#define SHRINK_THREADS 2
#define SHRINK_ROUNDS 40000
#define SHRINK_CARVES 6

static void *shrink_loop(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (unsigned i = 0; i < SHRINK_ROUNDS; i++) {
		size_t z = 1 + ((size_t)(i + seed) * 7919) % 100000;
		unsigned char *p = malloc(z);
		cr_assert_not_null(p);
		p[0] = (unsigned char)i;
		p[z - 1] = (unsigned char)(i >> 8);
		p = realloc(p, z / 2 + 1);
		cr_assert_not_null(p);
		cr_assert_eq(p[0], (unsigned char)i, "realloc(%zu -> %zu) lost the contents", z,
			     z / 2 + 1);
		free(p);
	}
	return NULL;
}

Test(realloc, threads_shrinking_blocks_in_a_loop_reuse_their_memory, .timeout = 120)
{
	pthread_t t[SHRINK_THREADS];
	unsigned long long before = zone_carved();
	for (uintptr_t i = 0; i < SHRINK_THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, shrink_loop, (void *)(i * 1000)), 0);
	for (int i = 0; i < SHRINK_THREADS; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	unsigned long long carved = zone_carved() - before;
	cr_log_info("%d threads of %d rounds carved %llu 4 MiB blocks", SHRINK_THREADS,
		    SHRINK_ROUNDS, carved);
	cr_assert_leq(carved, SHRINK_CARVES, "%d threads of %d rounds of malloc, realloc to half "
		      "and free carved %llu 4 MiB blocks", SHRINK_THREADS, SHRINK_ROUNDS, carved);
}

/* The same with over-aligned pages, which the caches do not serve but take
 * back when freed: the zone drains the caches before it carves
 * (pagealloc.c, pa_zone_alloc), and the report counts the drains. */
Test(routing, aligned_pages_in_a_loop_reuse_their_memory)
{
	unsigned long long before = zone_carved();
	unsigned long long drains = mp_report_counter("carve_drains", "drains");
	for (int r = 0; r < WALK_ROUNDS; r++) {
		void *p;
		cr_assert_eq(posix_memalign(&p, MiB, PAGE), 0);
		cr_assert_eq((uintptr_t)p % MiB, 0);
		memset(p, r, PAGE);
		free(p);
	}
	unsigned long long carved = zone_carved() - before;
	cr_assert_leq(carved, WALK_CARVES, "%d rounds of posix_memalign(1 MiB, a page) and free "
		      "carved %llu 4 MiB blocks", WALK_ROUNDS, carved);
	if (mp_has_cache())
		cr_assert_gt(mp_report_counter("carve_drains", "drains"), drains,
			     "the caches were never drained before a carve");
}

/* A heap that grows carves because it must: the drains that spare nothing
 * back off (gap doubling to 16 x 4 MiB), so 128 MiB of 1 MiB blocks,
 * 32 carves, drain the caches a handful of times, not once per carve. */
Test(routing, a_growing_heap_drains_the_caches_rarely)
{
	enum { N = 128 };
	static void *p[N];
	unsigned long long drains = mp_report_counter("carve_drains", "drains");
	unsigned long long before = zone_carved();
	for (int i = 0; i < N; i++) {
		p[i] = malloc(MiB);
		cr_assert_not_null(p[i]);
	}
	unsigned long long carved = zone_carved() - before;
	drains = mp_report_counter("carve_drains", "drains") - drains;
	for (int i = 0; i < N; i++)
		free(p[i]);
	cr_assert_geq(carved, N / 4 - 1, "%d MiB carved only %llu 4 MiB blocks", N, carved);
	cr_assert_leq(drains, 8, "%llu carves of a growing heap drained the caches %llu times",
		      carved, drains);
	if (mp_has_cache())
		cr_assert_geq(drains, 1, "%llu carves and no drain before one", carved);
}

Test(realloc, failure_leaves_the_block_intact)
{
	static const size_t sizes[] = { 100, 8192, 3 * PAGE, 8 * MiB };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t s = sizes[i];
		char *p = malloc(s);
		cr_assert_not_null(p);
		fill(p, s, s);
		size_t usable = malloc_usable_size(p);

		errno = 0;
		cr_assert_null(realloc(p, TOO_BIG));
		cr_assert_eq(errno, ENOMEM, "realloc(%zu -> PTRDIFF_MAX + 1): errno %d", s, errno);
		errno = 0;
		cr_assert_null(realloc(p, SIZE_MAX));
		cr_assert_eq(errno, ENOMEM);

		cr_assert_pattern(p, s, s);
		cr_assert_eq(malloc_usable_size(p), usable);
		/* Still a live block: it can grow, and be freed. */
		char *q = realloc(p, s + 4096);
		cr_assert_not_null(q);
		cr_assert_pattern(q, s, s);
		free(q);
	}
}
