/*
 * pcp.c — unit tests for the comparators of the page-cache interface:
 * pcp-rseq (Linux 3.9 per-CPU lists on restartable sequences, cache/pcp_rseq.c)
 * and pcp-lock (Linux 6.x per-CPU lists with a trylock, cache/magazine.c in
 * per-CPU mode), driven through cache_* and pa_* directly.
 *
 * Each test pins itself to CPU 0 first, so "this CPU's list" is list 0, and
 * checks the bounds the kernel keeps: a refill brings batch blocks, a list
 * never holds more than high after an operation, a drain moves batch, reuse
 * is LIFO, and drain_all empties every list even while other threads
 * allocate on them.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "internal.h"

#define ZONE_BYTES ((uint64_t)64 << 20)

TestSuite(pcp, .timeout = 120);

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0);
}

static void start(unsigned kind, unsigned high, unsigned batch)
{
	options_defaults(&opt);
	opt.cache = kind;
	opt.pcp_high = high;
	opt.pcp_batch = batch;
	opt.cache_order = 0;
	opt.cache_exact = 0;
	pin(0);
	cpu_init();
	cr_assert_eq(zone_init(ZONE_BYTES), 0);
	cache_init();
	pa_init();
	cr_assert_eq(cache_kind, kind, "the design asked for is the one in use");
}

static struct cache_view view(unsigned i)
{
	struct cache_view v;
	cache_view(i, &v);
	return v;
}

static uint64_t all_cached(void)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < cache_count(); i++)
		n += view(i).nr_pages;
	return n;
}

static void validate(uint64_t used)
{
	char why[256] = "";
	cr_assert_eq(zone_validate(used, why, sizeof(why)), 0, "%s", why);
}

static struct page_desc *take(void)
{
	struct page_desc *pd = pa_alloc(1, 0);
	cr_assert_not_null(pd);
	pd->flags &= (uint8_t)~PG_ALLOC;    /* as free() does before pa_free */
	return pd;
}

static void refill_drain_bounds(unsigned kind)
{
	enum { HIGH = 40, BATCH = 8, N = 200 };
	struct page_desc *pds[N];

	start(kind, HIGH, BATCH);
	for (int i = 0; i < N; i++)
		pds[i] = take();
	struct cache_view v = view(0);
	cr_assert_eq(v.c[0].refills, (N + BATCH - 1) / BATCH, "N allocations, batch %d: refills", BATCH);
	cr_assert_eq(v.c[0].refill_pages, v.c[0].refills * BATCH, "each refill brings exactly batch");
	for (int i = 0; i < N; i++) {
		pa_free(pds[i]);
		cr_assert_leq(view(0).nr_blocks[0], HIGH, "count above high after free %d", i);
	}
	v = view(0);
	cr_assert_gt(v.c[0].drains, 0);
	cr_assert_eq(v.c[0].drain_pages, v.c[0].drains * BATCH, "each drain moves exactly batch");
	validate(all_cached());
	cr_assert_eq(pa_drain_all(), v.nr_pages);
	cr_assert_eq(all_cached(), 0);
	validate(0);
}

Test(pcp, rseq_refill_and_drain_bounds) { refill_drain_bounds(CACHE_PCP_RSEQ); }
Test(pcp, lock_refill_and_drain_bounds) { refill_drain_bounds(CACHE_PCP_LOCK); }

static void lifo(unsigned kind)
{
	start(kind, 186, 31);
	struct page_desc *a = take(), *b = take();
	pa_free(a);
	pa_free(b);
	cr_assert_eq(take(), b, "last freed, first reused");
	cr_assert_eq(take(), a);
}

Test(pcp, rseq_lifo_reuse) { lifo(CACHE_PCP_RSEQ); }
Test(pcp, lock_lifo_reuse) { lifo(CACHE_PCP_LOCK); }

/* drain_all empties every list while other threads keep allocating. */
static atomic_int stop;

static void *churn(void *arg)
{
	pin((int)(intptr_t)arg);
	struct page_desc *held[64];
	while (!atomic_load(&stop)) {
		for (int i = 0; i < 64; i++) {
			held[i] = pa_alloc(1, 0);
			cr_assert_not_null(held[i]);
			held[i]->flags &= (uint8_t)~PG_ALLOC;
			*(volatile char *)desc_to_addr(held[i]) = (char)i;
		}
		for (int i = 0; i < 64; i++)
			pa_free(held[i]);
	}
	return NULL;
}

static void drain_all_under_load(unsigned kind)
{
	pthread_t t[2];

	start(kind, 186, 31);
	atomic_store(&stop, 0);
	for (intptr_t i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, churn, (void *)(i % 2)), 0);
	for (int round = 0; round < 200; round++)
		pa_drain_all();
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pa_drain_all();
	cr_assert_eq(all_cached(), 0, "every list empty after drain_all");
	validate(0);
}

Test(pcp, rseq_drain_all_while_allocating) { drain_all_under_load(CACHE_PCP_RSEQ); }
Test(pcp, lock_drain_all_while_allocating) { drain_all_under_load(CACHE_PCP_LOCK); }

/* The design's own JSON statistics: "fences" and "remote_drains". */
static void fence_counts(uint64_t *fences, uint64_t *remote)
{
	char store[4096];
	struct fmt_buf b;
	unsigned long f = 0, r = 0;

	fmt_init(&b, -1, store, sizeof(store));
	cr_assert_not_null(cache.json_design, "pcp-rseq reports its fences");
	cache.json_design(&b);
	store[b.len < sizeof(store) ? b.len : sizeof(store) - 1] = '\0';
	const char *at = strstr(store, "\"fences\":"), *rd = strstr(store, "\"remote_drains\":");
	cr_assert(at && rd, "fences in %s", store);
	sscanf(at, "\"fences\":%lu", &f);
	sscanf(rd, "\"remote_drains\":%lu", &r);
	*fences = f;
	*remote = r;
}

Test(pcp, rseq_drain_all_fences_other_cpus)
{
	start(CACHE_PCP_RSEQ, 186, 31);
	pa_free(take());
	uint64_t fences, remote;
	fence_counts(&fences, &remote);
	cr_assert_eq(fences, 0);
	cr_assert_gt(pa_drain_all(), 0);
	fence_counts(&fences, &remote);
	cr_assert_geq(fences, 1, "a drain of a non-empty list fences its CPU");
	cr_assert_geq(remote, 1);
}

Test(pcp, linux6_preset_is_pcp_lock_with_trylock)
{
	options_defaults(&opt);
	cr_assert_eq(options_parse(&opt, "preset:linux6", -1), 0);
	cr_assert_eq(opt.cache, CACHE_PCP_LOCK);
	cr_assert_eq(opt.signal, SIG_TRYLOCK);
	cr_assert_eq(options_parse(&opt, "preset:vanilla39", -1), 0);
	cr_assert_eq(opt.cache, CACHE_PCP_RSEQ);
	cr_assert_eq(opt.pcp_batch, 31);
	cr_assert_eq(opt.pcp_high, 186);
}
