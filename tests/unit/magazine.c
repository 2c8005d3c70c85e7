/*
 * magazine.c — unit tests for src/cache/magazine.c (and the pagealloc layer
 * that sits on it), driven directly: kernel-design-notes §7 items 4-7, 9, 11.
 *
 * Every test initialises its own zone and magazines with the RFC's numbers
 * (2 magazines, limit 1024, refill 16..384, drain 16..64) and the default
 * size classes (1..8 pages, cache_exact) plus whatever it overrides;
 * Criterion runs each test in its own process.  Tests that need
 * to know which magazine a thread prefers pin the thread with
 * sched_setaffinity.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "cache/magazine.h"

#define ZONE_BYTES ((uint64_t)64 << 20)   /* 16384 pages */

TestSuite(magazine, .timeout = 120);

static void setup_opts(void)
{
	options_defaults(&opt);
	opt.cache = CACHE_MAGAZINE;     /* the RFC's design, not the default */
	opt.magazines = 2;
	opt.mag_limit = 1024;
	opt.refill_max = 384;
	opt.refill_min = 16;
	opt.drain_max = 64;
	opt.drain_min = 16;
}

static void start(uint64_t bytes)
{
	cpu_init();
	cr_assert_eq(zone_init(bytes), 0);
	cache_init();
	pa_init();
	cr_assert(cache_enabled);
	cr_assert_eq(cache_count(), opt.magazines ? opt.magazines : cache_count());
}

static void setup(void)
{
	setup_opts();
	start(ZONE_BYTES);
}

static void validate(uint64_t used, const char *when)
{
	char why[256] = "";
	int rc = zone_validate(used, why, sizeof(why));
	cr_assert_eq(rc, 0, "zone_validate(used=%lu) %s: %s", (unsigned long)used, when, why);
}

static struct cache_view view(unsigned i)
{
	struct cache_view v;
	cache_view(i, &v);
	return v;
}

static uint64_t cached_pages(void)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < cache_count(); i++)
		n += view(i).nr_pages;
	return n;
}

/* Refills of the size class of npages pages, over every magazine. */
static uint64_t sum_refills(size_t npages)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < cache_count(); i++)
		n += view(i).c[npages - 1].refills;
	return n;
}

/* Pins the calling thread to cpu; false if the CPU is not available. */
static bool pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		return false;
	cr_assert_eq(sched_getcpu(), cpu, "pinned to %d but running on %d", cpu, sched_getcpu());
	return true;
}

static bool cpu_allowed(int cpu)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return false;
	return CPU_ISSET(cpu, &set);
}

/* ---- refill (§7.6) ------------------------------------------------------- */

static void refills_for(unsigned n)
{
	struct page_desc **pds = calloc(n, sizeof(*pds));
	for (unsigned i = 0; i < n; i++) {
		pds[i] = cache.alloc(1);
		cr_assert_not_null(pds[i], "mag_alloc %u of %u", i, n);
		cr_assert_eq(pds[i]->npages, 1);
	}
	uint64_t want = (n + 383) / 384;
	cr_assert_eq(sum_refills(1), want, "%u allocations: %lu refills, want ceil(%u/384) = %lu", n,
		     (unsigned long)sum_refills(1), n, (unsigned long)want);
	for (unsigned i = 0; i < cache_count(); i++) {
		struct cache_view v = view(i);
		if (!v.c[0].refills)
			continue;
		cr_assert_geq(v.c[0].refill_min, opt.refill_min);
		cr_assert_leq(v.c[0].refill_max, opt.refill_max);
		cr_assert_eq(v.c[0].refill_pages, v.c[0].refills * 384,
			     "uncontended refills take refill_max pages each");
	}
	/* Every page handed out once: distinct, and the zone agrees. */
	uint8_t *seen = calloc(zg.pages, 1);
	for (unsigned i = 0; i < n; i++) {
		uint64_t pfn = desc_pfn(pds[i]);
		cr_assert_eq(seen[pfn], 0, "pfn %lu handed out twice", (unsigned long)pfn);
		seen[pfn] = 1;
	}
	validate(n + cached_pages(), "after the refills");
	free(seen);
	free(pds);
}

Test(magazine, refills_exactly_ceil_n_over_384_1000) { setup(); refills_for(1000); }
Test(magazine, refills_exactly_ceil_n_over_384_384) { setup(); refills_for(384); }
Test(magazine, refills_exactly_ceil_n_over_384_385) { setup(); refills_for(385); }
Test(magazine, refills_exactly_ceil_n_over_384_5000) { setup(); refills_for(5000); }
Test(magazine, refills_exactly_ceil_n_over_384_1) { setup(); refills_for(1); }

/* ---- free path (§7.7) ---------------------------------------------------- */

Test(magazine, free_is_lifo)
{
	setup();
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	struct page_desc *a = cache.alloc(1), *b = cache.alloc(1);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cache.free(a);
	cr_assert_eq(cache.alloc(1), a, "free then alloc must return the same page");
	cache.free(b);
	cache.free(a);
	cr_assert_eq(cache.alloc(1), a);
	cr_assert_eq(cache.alloc(1), b);

	/* Through pagealloc too, for every cached size. */
	for (size_t np = 1; np <= MAG_CLASSES; np++) {
		struct page_desc *c = pa_alloc(np, 0);
		cr_assert_not_null(c);
		c->flags &= ~PG_ALLOC;
		pa_free(c);
		struct page_desc *d = pa_alloc(np, 0);
		cr_assert_eq(d, c, "%zu pages: free then alloc must return the same block", np);
		cr_assert_eq(d->npages, np);
	}
}

/* Drains start only when a magazine reaches mag_limit, and move between
 * drain_min and drain_max pages each. */
Test(magazine, drains_only_at_limit)
{
	const unsigned n = 3000;
	struct page_desc **pds = calloc(n, sizeof(*pds));

	setup();
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	unsigned me = mag_preferred_of_cpu(0);
	for (unsigned i = 0; i < n; i++) {
		pds[i] = cache.alloc(1);
		cr_assert_not_null(pds[i]);
	}
	uint64_t drains = 0;
	for (unsigned i = 0; i < n; i++) {
		struct cache_view before = view(me);
		cache.free(pds[i]);
		struct cache_view after = view(me);
		bool reached = before.nr_pages + 1 >= opt.mag_limit;
		uint64_t dd = after.c[0].drains - before.c[0].drains;
		uint64_t dp = after.c[0].drain_pages - before.c[0].drain_pages;
		cr_assert_eq(dd, reached ? 1 : 0,
			     "free %u: magazine had %u pages, limit %u, drains rose by %lu", i,
			     before.nr_pages, opt.mag_limit, (unsigned long)dd);
		if (dd) {
			cr_assert_geq(dp, opt.drain_min);
			cr_assert_leq(dp, opt.drain_max);
			cr_assert_eq(after.nr_pages, before.nr_pages + 1 - dp);
			drains++;
		} else {
			cr_assert_eq(after.nr_pages, before.nr_pages + 1);
		}
		cr_assert_lt(after.nr_pages, opt.mag_limit);
		cr_assert_eq(after.c[0].frees, before.c[0].frees + 1);
	}
	cr_assert_gt(drains, 0, "3000 frees into one magazine never drained");
	struct cache_view v = view(me);
	cr_assert_geq(v.c[0].drain_min, opt.drain_min);
	cr_assert_leq(v.c[0].drain_max, opt.drain_max);
	validate(cached_pages(), "after the frees");
	free(pds);
}

/* ---- quiescence under random traffic (§7.4) ------------------------------ */

struct worker_arg {
	unsigned seed, ops;
	uint64_t held_pages;        /* out: pages still held at the end */
	struct page_desc **held;    /* out */
	unsigned nheld;
};

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random pa_alloc/pa_free of 1..8 pages (every size class), contents
 * checked on free. */
static void *worker(void *p)
{
	struct worker_arg *a = p;
	uint64_t s = a->seed * 0x9e3779b97f4a7c15ull + 1;
	enum { CAP = 2048 };
	struct page_desc **held = calloc(CAP, sizeof(*held));
	unsigned n = 0;

	for (unsigned op = 0; op < a->ops; op++) {
		if (n < CAP && (n == 0 || xs(&s) % 2)) {
			size_t np = 1 + xs(&s) % 8;
			struct page_desc *pd = pa_alloc(np, 0);
			if (!pd)
				continue;
			uint64_t *w = desc_to_addr(pd);
			for (size_t i = 0; i < np; i++)
				w[i * PAGE_SIZE / 8] = (uintptr_t)pd + i;
			held[n++] = pd;
		} else {
			unsigned k = xs(&s) % n;
			struct page_desc *pd = held[k];
			uint64_t *w = desc_to_addr(pd);
			for (size_t i = 0; i < pd->npages; i++)
				if (w[i * PAGE_SIZE / 8] != (uintptr_t)pd + i)
					return (void *)"page contents overwritten";
			pd->flags &= ~PG_ALLOC;
			pa_free(pd);
			held[k] = held[--n];
		}
	}
	a->held = held;
	a->nheld = n;
	a->held_pages = 0;
	for (unsigned i = 0; i < n; i++)
		a->held_pages += held[i]->npages;
	return NULL;
}

Test(magazine, quiescent_magazines_within_limit)
{
	struct worker_arg args[2] = { { .seed = 1, .ops = 200000 }, { .seed = 2, .ops = 200000 } };
	pthread_t t[2];

	setup();
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, worker, &args[i]), 0);
	for (int i = 0; i < 2; i++) {
		void *r;
		pthread_join(t[i], &r);
		cr_assert_null(r, "worker %d: %s", i, (const char *)r);
	}
	uint64_t held = args[0].held_pages + args[1].held_pages;
	for (unsigned i = 0; i < cache_count(); i++) {
		struct cache_view v = view(i);
		/* Frees never leave a magazine above the limit, but refills of
		 * the other classes may add up to one batch each on top (the
		 * strict bound is quiescent_within_limit_after_refills_...). */
		cr_assert_leq(v.nr_pages, opt.mag_limit + CACHE_CLASSES * opt.refill_max,
			      "magazine %u holds %u pages", i, v.nr_pages);
		uint32_t sum = 0;
		for (unsigned c = 0; c < CACHE_CLASSES; c++)
			sum += v.nr_blocks[c] * (c + 1);
		cr_assert_eq(sum, v.nr_pages, "magazine %u: nr_pages disagrees with its lists", i);
		for (unsigned o = 0; o < CACHE_CLASSES; o++) {
			if (v.c[o].refills) {
				/* Whole blocks: floor(refill_min / size) of them at least
				 * (that this can be below refill_min pages is tested by
				 * contended_refill_at_least_refill_min_3). */
				cr_assert_geq(v.c[o].refill_min, opt.refill_min / (o + 1) * (o + 1),
					      "magazine %u class %u: a refill of %u pages", i, o + 1,
					      v.c[o].refill_min);
				cr_assert_leq(v.c[o].refill_max, opt.refill_max);
			}
			if (v.c[o].drains) {
				cr_assert_geq(v.c[o].drain_min, opt.drain_min,
					      "magazine %u class %u: a drain of %u pages", i, o + 1,
					      v.c[o].drain_min);
				cr_assert_leq(v.c[o].drain_max, opt.drain_max);
			}
		}
	}
	validate(held + cached_pages(), "at quiescence");
	cr_assert_gt(cache.drain_all(), 0);
	cr_assert_eq(cached_pages(), 0);
	validate(held, "after mag_drain_all");
	for (int i = 0; i < 2; i++) {
		for (unsigned k = 0; k < args[i].nheld; k++) {
			args[i].held[k]->flags &= ~PG_ALLOC;
			pa_free(args[i].held[k]);
		}
		free(args[i].held);
	}
	cache.drain_all();
	validate(0, "everything freed and drained");
}

/* §7.4 at quiescence, with the default size classes: one allocation of
 * each size 1..8 refills one magazine eight times; nothing is freed, so
 * nothing drains, yet the magazine must not be left above mag_limit. */
Test(magazine, quiescent_within_limit_after_refills_of_each_class)
{
	setup();
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	for (size_t np = 1; np <= MAG_CLASSES; np++)
		cr_assert_not_null(pa_alloc(np, 0));
	for (unsigned i = 0; i < cache_count(); i++) {
		struct cache_view v = view(i);
		cr_assert_leq(v.nr_pages, opt.mag_limit,
			      "magazine %u holds %u pages at quiescence, above mag_limit %u "
			      "(blocks of 1..8 pages: %u %u %u %u %u %u %u %u)",
			      i, v.nr_pages, opt.mag_limit, v.nr_blocks[0], v.nr_blocks[1],
			      v.nr_blocks[2], v.nr_blocks[3], v.nr_blocks[4], v.nr_blocks[5],
			      v.nr_blocks[6], v.nr_blocks[7]);
	}
}

/* The same with the RFC's single cached order: never above the limit. */
Test(magazine, quiescent_within_limit_rfc2013)
{
	setup_opts();
	opt.cache_order = 0;
	opt.cache_exact = 0;
	start(ZONE_BYTES);
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	enum { N = 5000 };
	static struct page_desc *pds[N];
	for (unsigned i = 0; i < N; i++)
		cr_assert_not_null(pds[i] = pa_alloc(1, 0));
	for (unsigned i = 0; i < N; i += 3) {
		pds[i]->flags &= ~PG_ALLOC;
		pa_free(pds[i]);
		for (unsigned k = 0; k < cache_count(); k++)
			cr_assert_leq(view(k).nr_pages, opt.mag_limit);
	}
}

/* §7.4: "refill sizes within [16, 384]" (refill_min is documented as the
 * pages a refill takes before it may stop on zone-lock contention) — for
 * every size class, also when the zone lock is contended.  Another thread
 * keeps taking the zone lock while this one refills 3-page blocks and gives
 * them straight back to the zone. */
static atomic_int contend_stop;

static void *zone_lock_hog(void *arg)
{
	(void)arg;
	struct zone_info zi;
	while (!atomic_load_explicit(&contend_stop, memory_order_relaxed))
		zone_info(&zi);
	return NULL;
}

static void contended_refills(size_t np)
{
	pthread_t t;
	struct zone_info zi;
	unsigned breaks = 0;

	setup();
	cr_assert_eq(pthread_create(&t, NULL, zone_lock_hog, NULL), 0);
	uint64_t t0 = os_now_ns();
	while (os_now_ns() - t0 < 3000000000ull) {
		for (unsigned i = 0; i < 64; i++) {
			struct page_desc *pd = cache.alloc(np);
			cr_assert_not_null(pd);
			zone_free_range(desc_pfn(pd), np);
		}
		zone_info(&zi);
		breaks = (unsigned)zi.batch_breaks;
		if (breaks >= 200)
			break;
	}
	atomic_store(&contend_stop, 1);
	pthread_join(t, NULL);
	if (breaks == 0)
		cr_skip_test("no refill ever met a contended zone lock");
	for (unsigned i = 0; i < cache_count(); i++) {
		struct cache_view v = view(i);
		if (!v.c[np - 1].refills)
			continue;
		cr_assert_geq(v.c[np - 1].refill_min, opt.refill_min,
			      "%zu-page class: a refill stopped on contention after %u pages, "
			      "below refill_min %u (%u early stops in %lu refills)",
			      np, v.c[np - 1].refill_min, opt.refill_min, breaks,
			      (unsigned long)v.c[np - 1].refills);
		cr_assert_leq(v.c[np - 1].refill_max, opt.refill_max);
	}
}

Test(magazine, contended_refill_at_least_refill_min_1) { contended_refills(1); }
Test(magazine, contended_refill_at_least_refill_min_3) { contended_refills(3); }
Test(magazine, contended_refill_at_least_refill_min_8) { contended_refills(8); }

/* ---- preferred magazine (§7.5) ------------------------------------------- */

Test(magazine, preferred_map_pair)
{
	setup_opts();
	opt.mag_map = MAP_PAIR;
	start(ZONE_BYTES);
	static const unsigned want[8] = { 0, 0, 1, 1, 0, 0, 1, 1 };
	for (int c = 0; c < 8; c++)
		cr_assert_eq(mag_preferred_of_cpu(c), want[c], "pair map: cpu %d -> %u", c,
			     mag_preferred_of_cpu(c));
}

Test(magazine, preferred_map_cpu)
{
	setup_opts();
	opt.mag_map = MAP_CPU;
	start(ZONE_BYTES);
	for (int c = 0; c < 64; c++)
		cr_assert_eq(mag_preferred_of_cpu(c), (unsigned)c & 1);
}

Test(magazine, preferred_map_cpu_4)
{
	setup_opts();
	opt.magazines = 4;
	start(ZONE_BYTES);
	cr_assert_eq(cache_count(), 4);
	for (int c = 0; c < 64; c++)
		cr_assert_eq(mag_preferred_of_cpu(c), (unsigned)c & 3);
}

Test(magazine, auto_count_is_pow2_at_least_2)
{
	setup_opts();
	opt.magazines = 0;
	start(ZONE_BYTES);
	unsigned n = cache_count();
	cr_assert(is_pow2(n) && n >= 2 && n <= MAX_CACHES, "auto magazine count %u", n);
	cr_assert_geq(n, (unsigned)os.ncpus() < MAX_CACHES ? (unsigned)os.ncpus() : MAX_CACHES);
}

struct pin_arg {
	int cpu;
	const char *err;
};

/* On CPU cpu: allocate 500 pages, then free them all; every free must be
 * counted by the preferred magazine of cpu. */
static void *pinned_frees(void *p)
{
	struct pin_arg *a = p;
	enum { N = 500 };
	struct page_desc *pds[N];
	uint64_t before[MAX_CACHES];

	if (!pin(a->cpu)) {
		a->err = "cannot pin";
		return NULL;
	}
	for (unsigned i = 0; i < N; i++)
		if (!(pds[i] = cache.alloc(1))) {
			a->err = "mag_alloc failed";
			return NULL;
		}
	for (unsigned i = 0; i < cache_count(); i++)
		before[i] = view(i).c[0].frees;
	for (unsigned i = 0; i < N; i++)
		cache.free(pds[i]);
	unsigned want = mag_preferred_of_cpu(a->cpu);
	for (unsigned i = 0; i < cache_count(); i++) {
		uint64_t d = view(i).c[0].frees - before[i];
		if (d != (i == want ? N : 0)) {
			a->err = i == want ? "the preferred magazine missed frees"
					   : "a non-preferred magazine took frees";
			return NULL;
		}
	}
	return NULL;
}

static void pinned_frees_on_each_cpu(void)
{
	int tested = 0;
	for (int cpu = 0; cpu < 2; cpu++) {
		if (!cpu_allowed(cpu))
			continue;
		struct pin_arg a = { .cpu = cpu };
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, pinned_frees, &a), 0);
		pthread_join(t, NULL);
		cr_assert_null(a.err, "cpu %d (preferred magazine %u): %s", cpu,
			       mag_preferred_of_cpu(cpu), a.err);
		tested++;
	}
	if (!tested)
		cr_skip_test("neither CPU 0 nor CPU 1 is available");
}

Test(magazine, pinned_thread_frees_to_preferred_cpu_map)
{
	setup();
	pinned_frees_on_each_cpu();
}

Test(magazine, pinned_thread_frees_to_preferred_pair_map)
{
	setup_opts();
	opt.mag_map = MAP_PAIR;
	start(ZONE_BYTES);
	pinned_frees_on_each_cpu();
}

/* ---- batched free (§7.9) ------------------------------------------------- */

Test(magazine, free_bulk_takes_the_lock_once)
{
	const unsigned n = 1000;      /* <= mag_limit */
	struct page_desc **pds = calloc(n, sizeof(*pds));

	setup();
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	unsigned me = mag_preferred_of_cpu(0);
	for (unsigned i = 0; i < n; i++) {
		pds[i] = cache.alloc(1);
		cr_assert_not_null(pds[i]);
		cr_assert_eq(pds[i]->npages, 1);
	}
	struct cache_view before = view(me);
	cache_free_chain(desc_chain(pds, n));
	struct cache_view after = view(me);
	cr_assert_eq(after.lock_acquired, before.lock_acquired + 1,
		     "mag_free_bulk of %u pages took the magazine lock %lu times", n,
		     (unsigned long)(after.lock_acquired - before.lock_acquired));
	cr_assert_eq(after.c[0].frees, before.c[0].frees + n);
	cr_assert_leq(after.nr_pages, opt.mag_limit);
	validate(cached_pages(), "after the bulk free");
	free(pds);
}

/* The same through pa_free_bulk, the release_pages analogue of §7.9:
 * n <= mag_limit pages, one magazine lock hold. */
Test(magazine, pa_free_bulk_takes_the_lock_once)
{
	const unsigned n = 1000;
	struct page_desc **pds = calloc(n, sizeof(*pds));

	setup();
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	unsigned me = mag_preferred_of_cpu(0);
	for (unsigned i = 0; i < n; i++) {
		pds[i] = pa_alloc(1, 0);
		cr_assert_not_null(pds[i]);
		pds[i]->flags &= ~PG_ALLOC;
	}
	struct cache_view before = view(me);
	pa_free_bulk(pds, n);
	struct cache_view after = view(me);
	cr_assert_eq(after.c[0].frees, before.c[0].frees + n);
	cr_assert_eq(after.lock_acquired, before.lock_acquired + 1,
		     "pa_free_bulk of %u pages (<= mag_limit %u) took the magazine lock %lu times",
		     n, opt.mag_limit, (unsigned long)(after.lock_acquired - before.lock_acquired));
	free(pds);
}

/* ---- drain_all ----------------------------------------------------------- */

Test(magazine, drain_all_empties_every_magazine)
{
	enum { N = 3000 };
	static struct page_desc *pds[N];
	uint64_t held = 0;

	setup();
	for (unsigned i = 0; i < N; i++) {
		pds[i] = pa_alloc(1 + i % 8, 0);
		cr_assert_not_null(pds[i]);
		held += pds[i]->npages;
	}
	for (unsigned i = 0; i < N; i += 2) {
		held -= pds[i]->npages;
		pds[i]->flags &= ~PG_ALLOC;
		pa_free(pds[i]);
	}
	uint64_t cached = cached_pages();
	cr_assert_gt(cached, 0);
	validate(held + cached, "before drain_all");
	cr_assert_eq(cache.drain_all(), cached);
	for (unsigned i = 0; i < cache_count(); i++) {
		struct cache_view v = view(i);
		cr_assert_eq(v.nr_pages, 0, "magazine %u still holds %u pages", i, v.nr_pages);
		for (unsigned c = 0; c < CACHE_CLASSES; c++)
			cr_assert_eq(v.nr_blocks[c], 0);
	}
	validate(held, "after drain_all");
	cr_assert_eq(cache.drain_all(), 0, "a second drain has nothing to move");
}

/* ---- exhaustion (§7.11) -------------------------------------------------- */

Test(magazine, exhaustion_drains_then_succeeds)
{
	const uint64_t bytes = (uint64_t)16 << 20;    /* 4096 pages */
	struct page_desc **pds = calloc(4097, sizeof(*pds));
	uint64_t n = 0;

	setup_opts();
	start(bytes);
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	while ((pds[n] = pa_alloc(1, 0)) != NULL) {
		n++;
		cr_assert_leq(n, zg.pages);
	}
	cr_assert_eq(n, zg.pages, "pa_alloc failed after %lu of %lu pages", (unsigned long)n,
		     (unsigned long)zg.pages);
	cr_assert_eq(cached_pages(), 0);
	validate(n, "zone exhausted");

	/* Give back 1000 pages of one 4 MiB-aligned area: they sit in the
	 * magazines, so the zone itself is still empty. */
	unsigned freed = 0;
	for (uint64_t i = 0; i < n && freed < 1000; i++) {
		if (desc_pfn(pds[i]) < 1024 && desc_pfn(pds[i]) >= 24) {
			pds[i]->flags &= ~PG_ALLOC;
			pa_free(pds[i]);
			pds[i] = NULL;
			freed++;
		}
	}
	cr_assert_eq(freed, 1000);
	cr_assert_eq(cached_pages(), 1000, "the frees should sit in the magazines");
	struct zone_info zi;
	zone_info(&zi);
	cr_assert_eq(zi.free_pages, 0, "nothing may be free in the zone yet");
	validate(n, "1000 pages in the magazines");

	/* Order 8 is never cached: only a drain of the magazines can make it. */
	struct page_desc *big = pa_alloc(256, 0);
	cr_assert_not_null(big, "pa_alloc(order 8) failed although 1000 free pages sit in the magazines");
	cr_assert_eq(desc_pfn(big) % 256, 0);
	cr_assert_eq(cached_pages(), 0, "the magazines were not drained");
	validate(n - 1000 + 256, "after the order-8 allocation");
	free(pds);
}

/* ---- size classes 1..8 --------------------------------------------------- */

Test(magazine, every_size_class)
{
	/* A limit high enough that no free drains: this test is about the
	 * per-class lists (eight refills hold about 3000 pages). */
	setup_opts();
	opt.mag_limit = 1u << 20;
	start(ZONE_BYTES);
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	unsigned me = mag_preferred_of_cpu(0);
	struct page_desc *b[CACHE_CLASSES + 1] = { 0 };
	uint64_t held = 0;

	for (size_t np = 1; np <= MAG_CLASSES; np++) {
		unsigned blocks = opt.refill_max / np;
		b[np] = pa_alloc(np, 0);
		cr_assert_not_null(b[np]);
		size_t align = (size_t)1 << ilog2_ceil(np);
		cr_assert_eq(desc_pfn(b[np]) % align, 0, "%zu-page block misaligned", np);
		cr_assert_eq(b[np]->npages, np);
		cr_assert(b[np]->flags & PG_ALLOC);
		cr_assert_eq(sum_refills(np), 1, "%zu pages: one refill expected", np);
		struct cache_view v = view(me);
		cr_assert_eq(v.c[np - 1].refill_pages, blocks * np,
			     "a %zu-page refill moves %u blocks", np, blocks);
		cr_assert_eq(v.nr_blocks[np - 1], blocks - 1);
		cr_assert_eq(v.c[np - 1].allocs, 1);
		held += np;
		char when[64];
		snprintf(when, sizeof(when), "after the %zu-page refill", np);
		validate(held + cached_pages(), when);
	}
	for (size_t np = 1; np <= MAG_CLASSES; np++) {
		struct cache_view before = view(me);
		b[np]->flags &= ~PG_ALLOC;
		pa_free(b[np]);
		struct cache_view after = view(me);
		cr_assert_eq(after.nr_blocks[np - 1], before.nr_blocks[np - 1] + 1);
		cr_assert_eq(after.c[np - 1].frees, before.c[np - 1].frees + 1);
		cr_assert_eq(after.nr_pages, before.nr_pages + np);
		/* LIFO within the class: the same block comes back. */
		struct page_desc *again = pa_alloc(np, 0);
		cr_assert_eq(again, b[np]);
		again->flags &= ~PG_ALLOC;
		pa_free(again);
	}
	validate(cached_pages(), "all freed");
	cache.drain_all();
	validate(0, "all drained");
	struct zone_info zi;
	zone_info(&zi);
	for (unsigned o = 0; o < MAX_ORDER - 1; o++)
		cr_assert_eq(zi.nr_free[o], 0, "order %u left unmerged", o);
}

/* cache_exact:0 keeps powers of two only: 3-page requests use the zone and
 * give their 4th page back to the zone at once. */
Test(magazine, cache_exact_off)
{
	setup_opts();
	opt.cache_exact = 0;
	start(ZONE_BYTES);
	struct page_desc *two = pa_alloc(2, 0), *three = pa_alloc(3, 0), *four = pa_alloc(4, 0);
	cr_assert(two && three && four);
	cr_assert_eq(sum_refills(2), 1);
	cr_assert_eq(sum_refills(3), 0, "3-page blocks are not cached with cache_exact:0");
	cr_assert_eq(sum_refills(4), 1);
	cr_assert_eq(three->npages, 3);
	cr_assert_eq(desc_pfn(three) % 4, 0);
	validate(2 + 3 + 4 + cached_pages(), "after 2-, 3- and 4-page allocations");
	uint64_t cached = cached_pages();
	three->flags &= ~PG_ALLOC;
	pa_free(three);
	cr_assert_eq(cached_pages(), cached, "a 3-page block must go to the zone");
	validate(2 + 4 + cached, "after freeing the 3-page block");
}

/* cache_order 0 (the RFC): only single pages are cached. */
Test(magazine, cache_order_zero_bypasses)
{
	setup_opts();
	opt.cache_order = 0;
	start(ZONE_BYTES);
	struct page_desc *pd = pa_alloc(2, 0);
	cr_assert_not_null(pd);
	cr_assert_eq(sum_refills(2), 0);
	cr_assert_eq(cached_pages(), 0);
	struct page_desc *three = pa_alloc(3, 0);
	cr_assert_not_null(three);
	cr_assert_eq(cached_pages(), 0);
	validate(5, "two zone allocations");
	pd->flags &= ~PG_ALLOC;
	pa_free(pd);
	three->flags &= ~PG_ALLOC;
	pa_free(three);
	cr_assert_eq(cached_pages(), 0);
	validate(0, "freed");
	struct page_desc *one = pa_alloc(1, 0);
	cr_assert_not_null(one);
	cr_assert_eq(sum_refills(1), 1);
}

/* pa_shrink (realloc in place): the tail goes to the zone, never to a
 * cache, even an aligned tail of a cached size: there it merges with its
 * free buddies (filed in a cache, such tails kept the blocks threads
 * shrank from merging again, and RSS grew with the run). */
Test(magazine, shrink_gives_the_tail_back)
{
	setup();
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	unsigned me = mag_preferred_of_cpu(0);
	struct page_desc *pd = pa_alloc(8, 0);
	cr_assert_not_null(pd);
	uint64_t cached = cached_pages();
	validate(8 + cached, "8 pages held");

	struct cache_view before = view(me);
	pa_shrink(pd, 4);            /* the tail: 4 pages at pfn + 4, aligned */
	struct cache_view after = view(me);
	cr_assert_eq(pd->npages, 4);
	cr_assert_eq(after.nr_blocks[3], before.nr_blocks[3], "the 4-page tail was cached");
	cr_assert_eq(cached_pages(), cached, "the tail went into a cache");
	validate(4 + cached, "after shrinking 8 -> 4");

	pa_shrink(pd, 1);            /* 3 pages at pfn + 1 */
	cr_assert_eq(pd->npages, 1);
	cr_assert_eq(cached_pages(), cached, "the tail went into a cache");
	validate(1 + cached, "after shrinking 4 -> 1");
	pd->flags &= ~PG_ALLOC;
	pa_free(pd);
	cache.drain_all();
	validate(0, "all freed and drained");
}

/* The public bulk free (magpage_free_bulk -> mp_free_bulk), documented in
 * include/magpage.h as "returned to the preferred page cache under one lock
 * hold": n <= mag_limit page-sized blocks, one magazine lock acquisition. */
Test(magazine, public_free_bulk_takes_the_lock_once)
{
	enum { N = 1000 };
	static void *ptrs[N];

	/* mp_malloc initialises from MAGPAGE_CONF: keep the zone small. */
	setenv("MAGPAGE_CONF", "region_size:64m,cache:magazine,magazines:2", 1);
	if (!pin(0))
		cr_skip_test("cannot pin to CPU 0");
	for (unsigned i = 0; i < N; i++) {
		ptrs[i] = mp_malloc(PAGE_SIZE);
		cr_assert(ptrs[i] && zone_owns(ptrs[i]), "malloc(4096) not served by the zone");
	}
	cr_assert_eq(opt.mag_limit, 1024);
	unsigned me = mag_preferred_of_cpu(0);
	struct cache_view before = view(me);
	mp_free_bulk(ptrs, N);
	struct cache_view after = view(me);
	cr_assert_eq(after.c[0].frees, before.c[0].frees + N);
	cr_assert_eq(after.lock_acquired, before.lock_acquired + 1,
		     "mp_free_bulk of %u pages (<= mag_limit %u) took the magazine lock %lu times",
		     N, opt.mag_limit, (unsigned long)(after.lock_acquired - before.lock_acquired));
}

/*
 * The child of _Fork (mag_fork_recover): a magazine whose lock a thread held
 * that the child does not have is abandoned (lists emptied, lock reset) even
 * while this thread is inside a section, as it is when the recovery runs
 * from its wait for that lock (mp_lock_slow: the idle purge's drain of
 * preset:linux6 waited there for ever); one this thread holds is left to it.
 */
static void *hold_and_vanish(void *arg)
{
	mag_lock(arg);
	return NULL;            /* gone with the lock held, as at a _Fork */
}

Test(magazine, fork_recover_abandons_a_vanished_holders_magazine)
{
	setup();
	struct magazine *ghost = &mags[0], *own = &mags[1];
	pthread_t t;

	for (unsigned i = 0; i < 2; i++) {
		/* a block in each magazine's 1-page list */
		struct page_desc *pd = pa_alloc(1, 0);
		cr_assert_not_null(pd);
		mark_cached(pd, i);
		mag_lock(&mags[i]);
		__mag_push(&mags[i], pd, 0);
		mag_unlock(&mags[i]);
	}
	cr_assert_eq(pthread_create(&t, NULL, hold_and_vanish, ghost), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert(mp_lock_is_held(&ghost->lock));

	uint32_t own_nr = mag_list(own, 0)->nr, own_pages = own->nr_pages;
	cr_assert_gt(mag_list(ghost, 0)->nr, 0);
	cs_enter();
	mag_lock(own);
	mag_fork_recover();
	cr_assert(!mp_lock_is_held(&ghost->lock), "the vanished holder's lock is still held");
	cr_assert_eq(ghost->nr_pages, 0);
	cr_assert_eq(mag_list(ghost, 0)->nr, 0);
	cr_assert(mp_lock_is_held(&own->lock), "this thread's own lock was reset");
	cr_assert_eq(mag_list(own, 0)->nr, own_nr);
	cr_assert_eq(own->nr_pages, own_pages);
	mag_unlock(own);
	cs_leave();
}

/*
 * The holder's mark is the whole address of the thread-locals: a thread
 * whose stack (where glibc puts a thread's thread-locals) lies exactly
 * 128 GiB below a vanished holder's is told apart from it.  The 32-bit
 * mark of session 20 kept address bits 6-36 only, took the vanished
 * thread's hold for this thread's, and the child of _Fork waited for ever.
 */
#define MARK_STACK (1u << 20)

static void *recover_in_section(void *arg)
{
	(void)arg;
	cs_enter();
	mag_fork_recover();
	cs_leave();
	return NULL;
}

static void run_on_stack(void *(*fn)(void *), void *arg, void *stack)
{
	pthread_attr_t a;
	pthread_t t;

	cr_assert_eq(pthread_attr_init(&a), 0);
	cr_assert_eq(pthread_attr_setstack(&a, stack, MARK_STACK), 0);
	cr_assert_eq(pthread_create(&t, &a, fn, arg), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&a);
}

Test(magazine, fork_recover_tells_holders_128_gib_apart)
{
	setup();
	char *a = mmap(NULL, MARK_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	cr_assert_neq(a, MAP_FAILED);
	uintptr_t want = (uintptr_t)a - (1ull << 37);
	char *b = (uintptr_t)a > (1ull << 37)
		  ? mmap((void *)want, MARK_STACK, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
		  : MAP_FAILED;
	if (b != (char *)want)
		cr_skip_test("no room for a stack 128 GiB below %p", (void *)a);

	run_on_stack(hold_and_vanish, &mags[0], a);
	cr_assert(mp_lock_is_held(&mags[0].lock));
	run_on_stack(recover_in_section, NULL, b);
	cr_assert(!mp_lock_is_held(&mags[0].lock),
		  "a thread 128 GiB away took the vanished holder's lock for its own");
	munmap(a, MARK_STACK);
	munmap(b, MARK_STACK);
}
