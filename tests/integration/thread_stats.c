/*
 * thread_stats.c — the statistics keep every thread's counts.
 *
 * Proves, under LD_PRELOAD with stats on (every page allocation counted):
 * with THREADS threads alive at once, each having made PAIRS malloc+free
 * pairs of 8 KiB, the cache totals count them all, and the report's totals
 * agree with magpage_get_stats's although the report has room for 64 cache
 * rows only; once the threads have exited their counts are still there.
 * Without rseq (integration.thread_stats.norseq) the default cache keeps
 * one set of arrays per thread: more threads than rows, whose last row
 * sums the rest ("merged") and the threads that exited ("gone").
 * A TLS destructor that allocates after the library's makes no second set
 * of arrays.  Bounded: the threads only wait on each other, and ctest's
 * timeout ends a hang.  Not a benchmark.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <time.h>

#include "mp_test.h"

enum { THREADS = 80, PAIRS = 50, ROWS = 64, SIZE = 8192 };

static pthread_barrier_t done, leave;

static void *worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < PAIRS; i++) {
		unsigned char *p = malloc(SIZE);
		if (!p)
			return (void *)1;
		p[0] = p[SIZE - 1] = (unsigned char)i;
		free(p);
	}
	pthread_barrier_wait(&done);     /* all alive at once */
	pthread_barrier_wait(&leave);
	return NULL;
}

/* The last row of the report's cache list: its "merged" and "gone". */
static void last_row(const char *json, unsigned long long *merged, unsigned long long *gone)
{
	const char *at = strstr(json, "\"list\":[");
	const char *row = NULL;
	cr_assert_not_null(at, "no cache list in the report");
	while ((at = strstr(at, "{\"id\":")) != NULL)
		row = at++;
	cr_assert_not_null(row, "an empty cache list");
	*merged = mp_json_number(row, "merged");
	*gone = mp_json_number(row, "gone");
}

/* The report's totals and magpage_get_stats's, read with no allocation
 * between them: the same count, at least want more than base. */
static void assert_totals(unsigned long long base, unsigned long long want)
{
	struct magpage_stats st = mp_stats();
	unsigned long long json = mp_report_counter("caches", "allocs");
	cr_assert_eq(json, st.cache_allocs, "report %llu allocs, magpage_get_stats %llu", json,
		     (unsigned long long)st.cache_allocs);
	cr_assert_geq(st.cache_allocs - base, want, "%llu allocations counted of %llu",
		      (unsigned long long)st.cache_allocs - base, want);
	cr_assert_leq(mp_report_counter("caches", "count"), ROWS);
}

Test(thread_stats, every_thread_stays_counted, .init = mp_api_load, .timeout = 60)
{
	pthread_t t[THREADS];
	bool per_thread = __rseq_size == 0;    /* glibc registered no rseq area */
	unsigned long long merged, gone;

	cr_assert(mp_conf_has("stats:1"), "run with MAGPAGE_CONF=stats:1");
	cr_assert(mp_conf_has("cache:bonwick"));
	unsigned long long base = mp_stats().cache_allocs;
	pthread_barrier_init(&done, NULL, THREADS + 1);
	pthread_barrier_init(&leave, NULL, THREADS + 1);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, worker, NULL), 0);

	pthread_barrier_wait(&done);
	assert_totals(base, THREADS * PAIRS);
	last_row(mp_report_json(), &merged, &gone);
	if (per_thread) {
		/* 63 threads a row each, the last row the other 17 or more */
		cr_assert_eq(mp_report_counter("caches", "count"), ROWS);
		cr_assert_geq(merged, THREADS - (ROWS - 1), "last row merged %llu", merged);
	}

	pthread_barrier_wait(&leave);
	for (int i = 0; i < THREADS; i++) {
		void *r;
		cr_assert_eq(pthread_join(t[i], &r), 0);
		cr_assert_null(r, "a worker's malloc failed");
	}
	assert_totals(base, THREADS * PAIRS);
	last_row(mp_report_json(), &merged, &gone);
	if (per_thread)
		cr_assert_geq(gone, THREADS, "last row: %llu threads gone", gone);
}

/* Threads that make one short-lived thread after another, each of which
 * makes a few page-sized pairs. */
static atomic_int churning;

static void *short_lived(void *arg)
{
	(void)arg;
	for (int i = 0; i < 4; i++) {
		unsigned char *p = malloc(SIZE);
		if (p)
			p[0] = 1;
		free(p);
	}
	return NULL;
}

static void *churner(void *arg)
{
	(void)arg;
	while (atomic_load(&churning)) {
		pthread_t t;
		if (pthread_create(&t, NULL, short_lived, NULL) == 0)
			pthread_join(t, NULL);
	}
	return NULL;
}

/*
 * The totals never go back while threads come and go: each look at the
 * caches is one snapshot (without rseq, the thread list under one lock
 * hold), not rows found one by one in a list that shifts meanwhile (a
 * thread counted twice, or the exited threads' row missed).  One second
 * of samples; bounded.
 */
Test(thread_stats, totals_never_go_back_while_threads_come_and_go, .init = mp_api_load,
     .timeout = 60)
{
	enum { CHURNERS = 3 };
	pthread_t t[CHURNERS];
	unsigned long long last = 0, samples = 0, back = 0;
	struct timespec t0, now;

	cr_assert(mp_conf_has("stats:1"), "run with MAGPAGE_CONF=stats:1");
	atomic_store(&churning, 1);
	for (int i = 0; i < CHURNERS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, churner, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		unsigned long long a = mp_stats().cache_allocs;
		back += a < last;
		last = a;
		samples++;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - t0.tv_sec < 1 || now.tv_nsec < t0.tv_nsec);
	atomic_store(&churning, 0);
	for (int i = 0; i < CHURNERS; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	cr_assert_eq(back, 0, "the allocations counted went back in %llu of %llu samples", back,
		     samples);
	cr_assert_gt(last, 0);
}

/* A TLS destructor that runs after the library's (its key comes later) and
 * allocates pages in every round, asking for another round each time. */
static pthread_key_t late_key;

static void late_destructor(void *v)
{
	unsigned char *p = malloc(SIZE);
	if (p)
		p[0] = 1;
	free(p);
	if ((uintptr_t)v < 8)
		pthread_setspecific(late_key, (void *)((uintptr_t)v + 1));
}

static void *late_thread(void *arg)
{
	(void)arg;
	short_lived(NULL);                  /* the thread's arrays */
	pthread_setspecific(late_key, (void *)1);
	return NULL;
}

/*
 * Without rseq: a thread whose arrays are gone makes no second set when a
 * later TLS destructor allocates pages.  Before, each destructor round
 * made one, counted as one more thread gone, and the one made in glibc's
 * last round stayed on the list, a cache row for a dead thread.
 */
Test(thread_stats, a_late_destructor_makes_no_second_cache, .init = mp_api_load, .timeout = 60)
{
	enum { LATE = 8 };
	unsigned long long merged, gone0, gone;

	if (__rseq_size != 0)
		cr_skip_test("per-CPU arrays: no thread has arrays of its own");
	cr_assert_eq(pthread_key_create(&late_key, late_destructor), 0);
	short_lived(NULL);
	unsigned long long rows0 = mp_report_counter("caches", "count");
	last_row(mp_report_json(), &merged, &gone0);
	for (int i = 0; i < LATE; i++) {
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, late_thread, NULL), 0);
		cr_assert_eq(pthread_join(t, NULL), 0);
	}
	last_row(mp_report_json(), &merged, &gone);
	cr_assert_eq(gone - gone0, LATE, "%llu threads gone, %d exited", gone - gone0, LATE);
	/* this thread's row and the gone threads' */
	cr_assert_eq(mp_report_counter("caches", "count"), rows0 + (gone0 == 0),
		     "%llu cache rows after %d threads came and went, %llu before",
		     mp_report_counter("caches", "count"), LATE, rows0);
}
