/*
 * bonwick.c — unit tests for the default page cache (cache/bonwick.c),
 * driven through pa_* directly.
 *
 * The test pins itself to CPU 0 first, so "this CPU's arrays" are view 0
 * (or, without rseq, this thread's).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>

#include "internal.h"
#include "cache/bonwick_impl.h"

#define ZONE_BYTES ((uint64_t)256 << 20)

TestSuite(bonwick, .timeout = 120);

/* depot_pages: 0 = the default room, 16384 per CPU. */
static void start_depot(uint32_t depot_pages)
{
	cpu_set_t set;

	options_defaults(&opt);
	opt.cache = CACHE_BONWICK;
	opt.depot_pages = depot_pages;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0);
	cpu_init();
	cr_assert_eq(zone_init(ZONE_BYTES), 0);
	cache_init();
	pa_init();
	cr_assert_eq(cache_kind, CACHE_BONWICK);
}

static void start(void)
{
	start_depot(64);            /* the smallest: spills reach the zone */
}

static void validate(uint64_t used)
{
	char why[256] = "";
	cr_assert_eq(zone_validate(used, why, sizeof(why)), 0, "%s", why);
	/* the rseq sections' pop returns the header's copy of the top slot:
	 * whatever wrote a count last kept it (platform/rseq.h) */
	for (unsigned cpu = 0; bw_rseq && cpu < bw_nr_cpus; cpu++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++) {
			const struct bw_class *c = &bw_cpu_of(cpu)->cls[k];
			uint32_t n = c->h.count;
			if (n && !(n & BW_STOPPED))
				cr_assert_eq(c->h.top, c->slots[n - 1],
					     "CPU %u, %u pages: top %u, slot %u holds %u", cpu, k + 1,
					     c->h.top, n - 1, c->slots[n - 1]);
		}
}

/*
 * Batches of every size class, each larger than a whole array, make every
 * class go to the depot for the same reason again and again: each would
 * grow to its whole array (496 pages, 31 MiB for the sixteen).  Together
 * they may grow by BW_GROW_PAGES only, so what one CPU's arrays hold stays
 * within the starting capacities (two batches of 64 pages' worth of blocks,
 * at least 4 blocks, per class) plus 512 pages.
 */
Test(bonwick, growth_bounded_per_cpu)
{
	enum { ROUNDS = 4, MAX_N = 1100 };
	static struct page_desc *pds[MAX_N];
	uint64_t start_pages = 0, most = 0;

	start();
	for (unsigned p = 1; p <= CACHE_CLASSES; p++)
		start_pages += 2 * (64 / p >= 4 ? 64 / p : 4) * p;
	for (int r = 0; r < ROUNDS; r++)
		for (unsigned p = 1; p <= CACHE_CLASSES; p++) {
			unsigned n = 1024 / p + 64;
			for (unsigned i = 0; i < n; i++) {
				pds[i] = pa_alloc(p, 0);
				cr_assert_not_null(pds[i]);
				pds[i]->flags &= (uint8_t)~PG_ALLOC;  /* as free() does */
			}
			for (unsigned i = 0; i < n; i++)
				pa_free(pds[i]);
			struct cache_view v;
			cache_view(0, &v);
			if (v.nr_pages > most)
				most = v.nr_pages;
		}
	cr_assert_leq(most, start_pages + 512,
		      "CPU 0's arrays held %lu pages; the bound is %lu + 512",
		      (unsigned long)most, (unsigned long)start_pages);
	pa_drain_all();
	validate(0);
}

/* Blocks of one page straight from the zone, live as pa_alloc leaves them
 * (a page another CPU's array handed out, as far as CPU 0 knows). */
static void take_from_zone(struct page_desc **pds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		pds[i] = zone_alloc(0, 1);
		cr_assert_not_null(pds[i]);
		pds[i]->npages = 1;
		pds[i]->order = 0;
		pds[i]->flags = PG_ALLOC;
	}
}

/* The most single pages CPU 0's array held while n of them were freed. */
static uint32_t free_all_watching(struct page_desc **pds, unsigned n)
{
	uint32_t most = 0;
	for (unsigned i = 0; i < n; i++) {
		pds[i]->flags &= (uint8_t)~PG_ALLOC;   /* as free() does */
		pa_free(pds[i]);
		struct cache_view v;
		cache_view(0, &v);
		if (v.nr_blocks[0] > most)
			most = v.nr_blocks[0];
	}
	return most;
}

/*
 * A CPU that only frees (a consumer of blocks another CPU allocated) spills
 * a batch per depot trip whatever its capacity: its array keeps the
 * starting two batches (128 single pages) however long it goes on, one
 * allocation before it notwithstanding.  The same
 * CPU allocating and freeing batches larger than its array turns at each
 * end and grows: the rule is the traffic's direction, not its volume.
 */
Test(bonwick, one_way_traffic_does_not_grow)
{
	enum { N = 2000 };
	static struct page_desc *pds[N];

	start();
	/* One malloc first, as a consumer thread makes: its refill is one
	 * trip the other way, not a turn. */
	struct page_desc *one = pa_alloc(1, 0);
	cr_assert_not_null(one);
	struct cache_view v0, v1;
	for (int r = 0; r < 3; r++) {
		if (r == 1)
			cache_view(0, &v0);
		take_from_zone(pds, N);
		uint32_t most = free_all_watching(pds, N);
		cr_assert_leq(most, 128, "round %d: a freeing-only CPU's array held %u pages, "
			      "past its starting 128", r, most);
	}
	/* Its spills, one way, move the whole array (only_spills): 128 blocks a
	 * spill once the run is under way, where half would be 64. */
	cache_view(0, &v1);
	uint64_t spills = v1.c[0].drains - v0.c[0].drains;
	uint64_t spilled = v1.c[0].drain_pages - v0.c[0].drain_pages;
	cr_assert_gt(spills, 0);
	cr_assert_geq(spilled / spills, 120, "a freeing-only CPU spilled %lu pages in %lu trips: "
		      "%lu a trip, not its whole array of 128", (unsigned long)spilled,
		      (unsigned long)spills, (unsigned long)(spilled / spills));
	uint32_t most = 0;
	for (int r = 0; r < 3; r++) {
		for (unsigned i = 0; i < N; i++) {
			pds[i] = pa_alloc(1, 0);
			cr_assert_not_null(pds[i]);
		}
		uint32_t m = free_all_watching(pds, N);
		if (m > most)
			most = m;
	}
	cr_assert_gt(most, 128, "allocating and freeing batches of %d: the array never "
		     "grew past 128 pages", N);
	one->flags &= (uint8_t)~PG_ALLOC;
	pa_free(one);
	pa_drain_all();
	validate(0);
}

/*
 * A spill gives the depot the array's oldest blocks and keeps the newest,
 * the ones the program touched last, for the next allocations
 * (free_slow_held): 128 single pages freed in order fill CPU 0's array;
 * the 129th spills the first 64 freed, and the next 65 allocations hand out
 * the 129th, then the 128th down to the 65th.
 */
Test(bonwick, spill_keeps_the_newest_blocks)
{
	enum { N = 129, SPILL = 64 };
	static struct page_desc *pds[N];

	start_depot(0);
	take_from_zone(pds, N);
	uint32_t most = free_all_watching(pds, N);
	cr_assert_eq(most, N - 1, "the array held %u blocks at most, not %d", most, N - 1);
	cr_assert_eq(bw_depots[0][0].nr, SPILL, "the depot holds %u blocks, not %d",
		     bw_depots[0][0].nr, SPILL);
	for (int i = N - 1; i >= SPILL; i--) {
		struct page_desc *pd = pa_alloc(1, 0);
		int got = -1;
		for (int j = 0; j < N; j++)
			got = pds[j] == pd ? j : got;
		cr_assert_eq(got, i, "allocation %d handed out free number %d (counting from 0; "
			     "-1: none of them), not %d", N - 1 - i, got, i);
	}
	cr_assert_eq(bw_depots[0][0].nr, SPILL, "the depot was reached before the array "
		     "emptied");
	for (int i = SPILL; i < N; i++) {
		pds[i]->flags &= (uint8_t)~PG_ALLOC;   /* as free() does */
		pa_free(pds[i]);
	}
	pa_drain_all();
	validate(0);
}

/* Takes n single pages back on CPU 0 (its array, its depot, the zone). */
static void alloc_all(struct page_desc **pds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		pds[i] = pa_alloc(1, 0);
		cr_assert_not_null(pds[i]);
	}
}

/* Frees n single pages taken from the zone on CPU 0, takes them back and
 * frees them again: what its depot shard sent on to the zone in the second
 * round (the first taught it the run to keep: bw_depot_put). */
static uint64_t depot_overflow_of(unsigned n)
{
	static struct page_desc *pds[40000];
	cr_assert_leq(n, 40000);
	take_from_zone(pds, n);
	free_all_watching(pds, n);
	alloc_all(pds, n);
	uint64_t before = bw_depots[0][0].overflow;
	free_all_watching(pds, n);
	return bw_depots[0][0].overflow - before;
}

/*
 * A run of spills that no take has claimed stops at the class's largest
 * array (496 single pages): a CPU that frees pages nothing allocates again
 * gives the rest to the zone, where they merge, not to the depot, counted
 * as unclaimed.  A drain claims nothing, and an emptied depot starts a
 * new run.  Once a refill has claimed a run, the depot keeps runs up to
 * twice as long: the same batch freed again stays whole.
 */
Test(bonwick, a_run_of_spills_nobody_claims_goes_to_the_zone)
{
	enum { N = 4000 };
	static struct page_desc *pds[N];
	const struct bw_depot *d = &bw_depots[0][0];

	start_depot(0);
	cr_assert_geq(d->cap, N);
	take_from_zone(pds, N);
	free_all_watching(pds, N);
	struct cache_view v;
	cache_view(0, &v);
	uint32_t array = v.nr_blocks[0];
	cr_assert_leq(d->nr, BW_SLOTS, "an unclaimed run of %d spilled pages left %u in the "
		      "depot", N - (int)array, d->nr);
	cr_assert_gt(d->unclaimed, 0);
	cr_assert_eq(d->unclaimed, d->overflow, "the depot had room: all it refused was the run");
	cr_assert_eq(d->nr + d->overflow + array, N, "%u in the depot, %lu refused, %u in the "
		     "array: not the %d freed", d->nr, (unsigned long)d->overflow, array, N);

	/* A drain is no claim, and the depot it empties takes a new run as
	 * long as the first (not none: an emptied depot is not stuck). */
	pa_drain_all();
	cr_assert_eq(d->nr, 0);
	cr_assert_eq(d->claimed, 0, "a drain claimed a run of %u", d->claimed);
	take_from_zone(pds, N);
	free_all_watching(pds, N);
	cr_assert(d->nr > 0 && d->nr <= BW_SLOTS, "a second unclaimed run after a drain left "
		  "%u in the depot", d->nr);

	alloc_all(pds, N);            /* a refill's take claims the run */
	cr_assert_gt(d->claimed, N - array - 1);
	uint64_t refused = d->overflow;
	free_all_watching(pds, N);
	cr_assert_eq(d->overflow, refused, "a claimed run of %d pages was refused %lu",
		     N, (unsigned long)(d->overflow - refused));
	cr_assert_geq(d->nr, N - BW_SLOTS);
	pa_drain_all();
	validate(0);
}

/*
 * The depot's room grows with the CPUs that free into it: by default
 * 16384 pages per CPU for each class (a class of k pages, 16384 / k blocks
 * per CPU), up to 4194304 pages, shared out among its shards.  A burst of
 * frees that fits is kept whole (once a take has claimed one as long);
 * the old fixed room (depot_pages:16384,
 * given here) sends the same burst partly to the zone, which is what 16
 * CPUs cycling large batches queued on.
 */
Test(bonwick, depot_room_grows_with_the_cpus)
{
	uint64_t want = (uint64_t)16384 * (unsigned)os.ncpus();
	if (want > (1u << 22))
		want = 1u << 22;
	start_depot(0);
	for (unsigned sh = 0; sh < bw_shards; sh++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++)
			cr_assert_eq(bw_depots[sh][k].cap, want / (k + 1) / bw_shards,
				     "shard %u, class %u: room for %u blocks, want %lu", sh, k + 1,
				     bw_depots[sh][k].cap, (unsigned long)(want / (k + 1) / bw_shards));
	unsigned n = bw_depots[0][0].cap < 40000 ? bw_depots[0][0].cap : 40000;
	cr_assert_eq(depot_overflow_of(n), 0, "%u single pages freed: the depot, room %u, "
		     "sent some to the zone", n, bw_depots[0][0].cap);
	pa_drain_all();
	validate(0);

	start_depot(16384);
	cr_assert_eq(bw_depots[0][0].cap, 16384 / bw_shards);
	cr_assert_gt(depot_overflow_of(20000), 0, "20000 pages into room for %u: "
		     "nothing went to the zone", bw_depots[0][0].cap);
	pa_drain_all();
	validate(0);
}

static int sixteen_cpus(void)
{
	return 16;
}

/*
 * Sixteen CPUs (os.ncpus stubbed; the test runs on CPU 0) make four depot
 * shards of four CPUs, each with its own lock and a quarter of the room.
 * CPU 0 spills into its own shard only; with its shard empty, its refill
 * takes what another shard holds before it goes to the zone; a global
 * drain empties every shard.
 */
Test(bonwick, depot_shards_per_four_cpus)
{
	enum { N = 1000, PUT = 200 };
	static struct page_desc *pds[N];

	os.ncpus = sixteen_cpus;
	start_depot(0);
	cr_assert_eq(bw_shards, 4);
	cr_assert_eq(bw_depots[3][0].cap, 16384 * 16 / 4);

	/* Blocks freed on CPUs 12-15 wait in shard 3. */
	uint32_t pfns[PUT];
	take_from_zone(pds, PUT);
	for (unsigned i = 0; i < PUT; i++) {
		pds[i]->flags = PG_CACHED;
		pfns[i] = (uint32_t)desc_pfn(pds[i]);
	}
	bw_depot_put(&bw_depots[3][0], 0, pfns, PUT, false);
	cr_assert_eq(bw_depots[3][0].nr, PUT);

	/* CPU 0's array and shard are empty: its refill takes from shard 3. */
	struct page_desc *one = pa_alloc(1, 0);
	cr_assert_not_null(one);
	bool theirs = false;
	for (unsigned i = 0; i < PUT; i++)
		theirs |= one == pds[i];
	cr_assert(theirs, "CPU 0's block did not come from shard 3");
	cr_assert_lt(bw_depots[3][0].nr, PUT, "shard 3 still holds all %u blocks", PUT);
	cr_assert_eq(bw_depots[3][0].out, PUT - bw_depots[3][0].nr);

	/* CPU 0's spills go to shard 0, none to the others. */
	take_from_zone(pds, N);
	free_all_watching(pds, N);
	cr_assert_gt(bw_depots[0][0].in, 0);
	for (unsigned sh = 1; sh < 4; sh++)
		cr_assert_eq(bw_depots[sh][0].in, sh == 3 ? PUT : 0, "shard %u took in %lu blocks",
			     sh, (unsigned long)bw_depots[sh][0].in);

	one->flags &= (uint8_t)~PG_ALLOC;
	pa_free(one);
	pa_drain_all();
	for (unsigned sh = 0; sh < 4; sh++)
		cr_assert_eq(bw_depots[sh][0].nr, 0, "shard %u kept %u blocks after a drain", sh,
			     bw_depots[sh][0].nr);
	validate(0);
}

static int one_cpu(void)
{
	return 1;
}

/*
 * A thread on a CPU the arrays are not for (here CPU 1, with os.ncpus
 * stubbed to one: a CPU brought online after start-up) pops nothing and
 * pushes nothing, whichever class, and the zone serves it: the sections
 * bound the CPU id by the CPUs the arrays were made for, and never index
 * past them.
 */
Test(bonwick, a_cpu_past_the_arrays_finds_none)
{
	cpu_set_t set;
	void *p;

	os.ncpus = one_cpu;
	start();
	if (!bw_rseq)
		cr_skip_test("no rseq front end here");
	cr_assert_eq(bw_ncpus, 1);
	CPU_ZERO(&set);
	CPU_SET(1, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		cr_skip_test("no CPU 1 here");
	cr_assert_eq(rseq_cpu_id(), 1);
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		cr_assert_not(pa_alloc_onehop(BW_KOFF(k), &p), "class %u popped on CPU 1", k);

	struct page_desc *pd = pa_alloc(1, 0);     /* from the zone */
	cr_assert_not_null(pd);
	pd->npages = 1;
	cr_assert_not(pa_free_onehop(pd, desc_pfn(pd)), "a push on CPU 1 found room");
	pd->flags = 0;
	pa_free(pd);
	pa_drain_all();
	validate(0);
}

static int hundred_cpus(void)
{
	return 100;
}

/*
 * The statistics have room for MAX_CACHES rows: with 100 CPUs (os.ncpus
 * stubbed) the last row sums CPUs 63 to 99, and the sum of all rows is
 * every CPU's, counters and pages held alike (CPU 70's counters set by
 * hand: the test runs on CPU 0).
 */
Test(bonwick, rows_past_max_caches_are_summed)
{
	static struct cache_view v[MAX_CACHES];
	struct cache_view sum;

	os.ncpus = hundred_cpus;
	start();
	if (!bw_rseq)
		cr_skip_test("no rseq front end here");
	struct page_desc *pd = pa_alloc(1, 0);
	cr_assert_not_null(pd);
	pd->flags &= (uint8_t)~PG_ALLOC;
	pa_free(pd);                        /* CPU 0 holds it now */
	bw_cpu_of(70)->c[0].allocs = 5;
	bw_cpu_of(70)->c[0].frees = 7;

	cr_assert_eq(cache_count(), 100);
	cr_assert_eq(cache_views(v, MAX_CACHES), MAX_CACHES);
	cr_assert_eq(v[0].merged, 0);
	cr_assert_gt(v[0].nr_pages, 0);
	cr_assert_eq(v[MAX_CACHES - 2].merged, 0);
	cr_assert_eq(v[MAX_CACHES - 1].merged, 100 - (MAX_CACHES - 1));
	cr_assert_eq(v[MAX_CACHES - 1].c[0].allocs, 5);
	cr_assert_eq(v[MAX_CACHES - 1].c[0].frees, 7);
	cache_sum(&sum);
	cr_assert_eq(sum.merged, 100);
	cr_assert_eq(sum.nr_pages, v[0].nr_pages);
	cr_assert_eq(sum.c[0].frees, v[0].c[0].frees + 7);
	bw_cpu_of(70)->c[0].allocs = bw_cpu_of(70)->c[0].frees = 0;
	pa_drain_all();
	validate(0);
}

/*
 * The classes' header lines, stored to by every push and pop, share no
 * page offset with a line of the globals the one-hop path loads right
 * after (a load with the low 12 bits of a store in flight waits for it):
 * every class's where a start allows it, else all but the cheapest.
 */
Test(bonwick, header_lines_clear_of_hot_globals)
{
	/* Classes are 0x900 bytes apart: from a start s, header lines at
	 * s + 0x100 x j (mod a page) for every j.  A page's first and last
	 * lines count as hot: with nothing else, the first start whose lines
	 * miss 0x000 and 0xfc0 is 0x040.  Lines at page offsets 0x000 and
	 * 0x840 too: the starts 0x000 and 0x040 clash (classes 0, and 8 at
	 * 0x040 + 8 x 0x900 = 0x4840); every start 0x080 + 0x100 x j is
	 * clear for all 16 classes. */
	static char page[3 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
	struct mp_span two[] = { { page + PAGE_SIZE, 8, 0 }, { page + 0x840, 8, 0 } };
	cr_assert_eq(bw_header_offset(two, 0), 0x040);
	cr_assert_eq(bw_header_offset(two, 2), 0x080);
	/* And a 128-byte table at 0x880: now every start clashes somewhere,
	 * and the first start where the cheapest class alone clashes is
	 * 0x200: class 14 (15 pages) at 0x200 + 14 x 0x900 = 0x8000, a
	 * page's first line. */
	struct mp_span three[] = { two[0], two[1], { page + 2 * PAGE_SIZE + 0x880, 128, 0 } };
	cr_assert_eq(bw_header_offset(three, 3), 0x200);
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		cr_assert_eq((0x200 + BW_KOFF(k)) % PAGE_SIZE == 0, k == 14);
	/* A 256-byte table by class at 0x100 (16 bytes a class, as route[]):
	 * whole, its 4 lines would clash with every start; class k clashes
	 * only with its own line, 0x100 + 16k rounded down, and 0x180 is
	 * clear for all. */
	struct mp_span table[] = { two[1], { page + 0x100, 256, 16 } };
	size_t off = bw_header_offset(table, 2);
	cr_assert_eq(off, 0x180);
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		size_t po = (off + BW_KOFF(k)) % PAGE_SIZE;
		cr_assert(po != ((0x100 + 16 * k) & ~63u) && po != 0x840 && po && po != 0xfc0,
			  "class %u at %#zx", k, po);
	}

	start();
	if (!bw_rseq)
		cr_skip_test("no rseq front end here");
	/* The real globals: at least the power-of-two classes (4 to 64 KiB),
	 * which take most of the traffic, are clear of what their calls
	 * read. */
	struct mp_span hot[16];
	unsigned n = mp_onehop_reads(hot, 16);
	cr_assert_geq(n, 5);
	for (unsigned k = 0; k < CACHE_CLASSES; k = 2 * k + 1) {
		uintptr_t hdr = (uintptr_t)&bw_cpu_of(0)->cls[k].h & (PAGE_SIZE - 1);
		for (unsigned i = 0; i < n; i++)
			for (uintptr_t a = ((uintptr_t)hot[i].p + k * hot[i].per_class) & ~(uintptr_t)63;
			     a < (uintptr_t)hot[i].p + (hot[i].per_class ? (k + 1) * hot[i].per_class
										: hot[i].size); a += 64)
				cr_assert_neq(a & (PAGE_SIZE - 1), hdr,
					      "class %u's header line and global %u (%p) share page "
					      "offset %#lx", k + 1, i, hot[i].p, (unsigned long)hdr);
	}
}

/* One section on CPU 0's array of class k; a restart (a preemption) runs
 * it again. */
#define ON_CPU0(call)                                                   \
	do {                                                            \
		enum rseq_result r_;                                    \
		while ((r_ = (call)) == RSEQ_ABORTED)                   \
			;                                               \
		cr_assert_eq(r_, RSEQ_DONE, "%s: %d", #call, (int)r_);  \
	} while (0)

/* The header's copy of the top slot follows every section that moves
 * count (platform/rseq.h): a pop returns it. */
Test(bonwick, the_header_top_follows_every_section)
{
	enum { K = 5 };
	uint32_t in[4] = { 11, 22, 33, 44 }, out[2];
	uint64_t pfn;
	uint32_t cpu;

	start();                        /* pinned to CPU 0 */
	if (!bw_rseq)
		cr_skip_test("no rseq front end here");
	pa_drain_all();
	struct bw_class *c = &bw_cpu_of(0)->cls[K];
	cr_assert_eq(c->h.count, 0);
	cr_assert_geq(c->h.high, 6);
	ON_CPU0(rseq_bw_push_n(&c->h.count, 0, in, 4));
	cr_assert(c->h.count == 4 && c->h.top == 44, "count %u top %u", c->h.count, c->h.top);
	ON_CPU0(rseq_bw_pop_here((uint64_t)bw_base, BW_KOFF(K), &bw_nr_cpus, &pfn, &cpu));
	cr_assert(pfn == 44 && c->h.count == 3 && c->h.top == 33, "pfn %lu count %u top %u",
		  (unsigned long)pfn, c->h.count, c->h.top);
	ON_CPU0(rseq_bw_push_here((uint64_t)bw_base, BW_KOFF(K), &bw_nr_cpus, 55));
	cr_assert(c->h.count == 4 && c->h.top == 55, "count %u top %u", c->h.count, c->h.top);
	ON_CPU0(rseq_bw_pop_n(&c->h.count, 0, out, 2));
	cr_assert(out[0] == 33 && out[1] == 55, "popped %u %u", out[0], out[1]);
	cr_assert(c->h.count == 2 && c->h.top == 22, "count %u top %u", c->h.count, c->h.top);
	ON_CPU0(rseq_bw_pop_here((uint64_t)bw_base, BW_KOFF(K), &bw_nr_cpus, &pfn, &cpu));
	cr_assert_eq(pfn, 22);
	ON_CPU0(rseq_bw_pop_here((uint64_t)bw_base, BW_KOFF(K), &bw_nr_cpus, &pfn, &cpu));
	cr_assert(pfn == 11 && c->h.count == 0, "pfn %lu count %u", (unsigned long)pfn,
		  c->h.count);
	cr_assert_eq(rseq_bw_pop_here((uint64_t)bw_base, BW_KOFF(K), &bw_nr_cpus, &pfn, &cpu),
		     RSEQ_LIST_EMPTY);
}

/*
 * bonwick's one-hop sections address glibc's rseq area at the offset the
 * build recorded (platform/rseq.h): under a glibc whose __rseq_offset
 * differs, pa_init must send the one-hop sizes through the cache table,
 * whose sections take the offset from mp_rseq_offset, and leave the live
 * bytes' free to the slow way.  Only the tables are built in between: no
 * section runs with the wrong offset.
 */
Test(bonwick, one_hop_only_at_the_built_rseq_offset)
{
	start();
	cr_assert(rseq_offset_is_built());
	cr_assert_eq(pa_onehop[1], 0);
	cr_assert_eq(pa_live_max, LIVE_BLOCK_MAX);
	cr_assert_gt(pa_freehop_span, 0);

	ptrdiff_t real = mp_rseq_offset;
	mp_rseq_offset = real + 64;
#ifdef MAGPAGE_RSEQ_OFFSET_BUILT
	bool other = true;
#else
	bool other = false;        /* nothing recorded: every offset is "built" */
#endif
	cr_assert_eq(rseq_offset_is_built(), !other);
	pa_init();
	mp_rseq_offset = real;
	for (unsigned n = 1; n <= CACHE_CLASSES; n++)
		cr_assert_eq(pa_onehop[n], other ? PA_ONEHOP_TABLE : n - 1, "%u pages: hop %u", n,
			     pa_onehop[n]);
	cr_assert_eq(pa_freehop_span, other ? 0 : CACHE_CLASSES);
	cr_assert_eq(pa_live_max, other ? 0 : LIVE_BLOCK_MAX);

	pa_init();
	cr_assert_eq(pa_onehop[1], 0);
	cr_assert_eq(pa_live_max, LIVE_BLOCK_MAX);
}

/*
 * The child of _Fork (bw_fork_recover): a depot whose lock a thread held
 * that the child does not have is abandoned, its count and its low-water
 * mark both (the decay's reap takes low blocks off the bottom of nr: a low
 * left behind made it move 16 GiB), even while this thread is inside a
 * section, as it is when the recovery runs from its wait for that very lock
 * (mp_lock_slow); a depot this thread holds itself is left to it.  Before
 * the holder's mark the recovery did nothing at all inside a section, and
 * the child waited for ever.
 */
static void *hold_and_vanish(void *arg)
{
	uint8_t was;
	cr_assert(bw_depot_lock(arg, false, &was));
	return NULL;            /* gone with the lock held, as at a _Fork */
}

Test(bonwick, fork_recover_abandons_a_vanished_holders_depot)
{
	enum { N = 8 };
	struct bw_depot *ghost = &bw_depots[0][0], *own = &bw_depots[0][1];
	pthread_t t;
	uint8_t was;

	start_depot(0);
	for (unsigned k = 0; k < 2; k++) {
		uint32_t pfns[N];
		for (unsigned i = 0; i < N; i++) {
			struct page_desc *pd = pa_alloc(k + 1, 0);
			cr_assert_not_null(pd);
			pd->flags = PG_CACHED;
			pfns[i] = (uint32_t)desc_pfn(pd);
		}
		bw_depot_put(&bw_depots[0][k], k, pfns, N, false);
	}
	ghost->low = ghost->nr;     /* as the decay's interval starts */
	own->low = own->nr;
	cr_assert_eq(ghost->nr, N);
	cr_assert_eq(pthread_create(&t, NULL, hold_and_vanish, ghost), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert(mp_lock_is_held(&ghost->lock));

	cr_assert(bw_depot_lock(own, false, &was));
	cr_assert(mp_tls.in_cache);
	bw_fork_recover();
	cr_assert(!mp_lock_is_held(&ghost->lock), "the vanished holder's lock is still held");
	cr_assert_eq(ghost->nr, 0);
	cr_assert_eq(ghost->low, 0, "low %u left over nr 0", ghost->low);
	cr_assert(mp_lock_is_held(&own->lock), "this thread's own lock was reset");
	cr_assert_eq(own->nr, N);
	bw_depot_unlock(own, was);

	uint32_t buf[N];
	cr_assert_eq(bw_depot_take(ghost, buf, N, false, true), 0);
	bw_decay();             /* reaps own's low, and nothing of ghost's */
	cr_assert_eq(own->nr, 0);
	cr_assert_eq(ghost->nr, 0);
}
