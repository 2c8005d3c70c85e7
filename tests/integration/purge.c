/*
 * purge.c — the decay purge under LD_PRELOAD, as a program sees it.
 *
 * Registered once per configuration (CMakeLists.txt): purge_delay_ms:1
 * without the thread, the same with purge_advice:free, and with
 * purge_thread:1, and (unused_cpu_cache_decays_while_busy) 200 ms with the
 * thread; cache_decay_ms_sets_the_decay_interval once with cache_decay_ms:5
 * and once with 60000.  A delay of 1 ms makes the purge due as soon as the test
 * sleeps; nothing here asserts on time: each wait is a bounded poll (the
 * watchdog), and a result that never comes fails the test when the poll
 * gives up.
 */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include "mp_test.h"

#define BLOCKS 2048          /* 8 MiB of 4 KiB blocks */

static void load(void)
{
	mp_api_load();
}

TestSuite(purge, .init = load, .timeout = 60);

static bool thread_mode(void)
{
	return mp_conf_has("purge_thread:1");
}

static bool advice_free(void)
{
	return mp_conf_has("purge_advice:free");
}

/* The idle checks below are moot when the machine kept the test off its
 * CPU for most of a delay: said on stderr, not with cr_log_warn, which
 * makes Criterion 2.4 exit 1 with every test passed (a loaded runner failed
 * integration.purge.decay that way). */
static void moot_note(const char *what, long gap_ms)
{
	fprintf(stderr, "note: a gap of %ld ms between two %s: the idle check is moot\n",
		gap_ms, what);
}

static uint64_t purge_counter(const char *name)
{
	return mp_report_counter("purge", name);
}

static size_t rss_bytes(void)
{
	char buf[128];
	long pages = 0;
	int fd = open("/proc/self/statm", O_RDONLY);

	cr_assert_geq(fd, 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_assert_eq(sscanf(buf, "%*s %ld", &pages), 1);
	return (size_t)pages * PAGE;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* BLOCKS page blocks, written, then freed: dirty memory in the caches and
 * the zone.  Returns the RSS with every block written and none freed yet:
 * no purge can have reached them then.  Read after the frees, it could
 * already miss some: with a 1 ms delay the purge thread may take the
 * first blocks drained to the zone while the frees go on. */
static size_t burst(uint64_t seed)
{
	static void *p[BLOCKS];
	for (int i = 0; i < BLOCKS; i++) {
		p[i] = malloc(PAGE);
		cr_assert_not_null(p[i]);
		fill(p[i], PAGE, seed + (uint64_t)i);
	}
	size_t rss = rss_bytes();
	for (int i = 0; i < BLOCKS; i++)
		free(p[i]);
	return rss;
}

/* Waits (a bounded poll, the watchdog) until the purge has returned at
 * least want pages; in the allocator-driven mode each round makes one
 * malloc+free, the call that lets it look at the clock. */
static uint64_t wait_purged(uint64_t want, bool calls)
{
	uint64_t purged = 0;
	for (int round = 0; round < 2000; round++) {
		nap_ms(5);
		if (calls) {
			void *q = malloc(PAGE);
			cr_assert_not_null(q);
			free(q);
		}
		purged = purge_counter("purged_pages");
		if (purged >= want)
			break;
	}
	return purged;
}

Test(purge, calloc_after_trim_is_zero)
{
	burst(1);
	malloc_trim(0);
	cr_assert_geq(purge_counter("purged_pages"), BLOCKS / 2);
	for (int i = 0; i < BLOCKS; i++) {
		unsigned char *q = calloc(1, PAGE);
		cr_assert_not_null(q);
		cr_assert_eq(first_nonzero(q, PAGE), -1, "calloc block %d not zero", i);
		q[0] = 1;     /* kept: each calloc gets another block */
	}
}

/* No allocator call during the idle spell; then one malloc+free (or, with
 * the thread, none at all) returns the burst, caches included. */
Test(purge, idle_then_one_call)
{
	bool thread = thread_mode();
	size_t before, after;

	before = burst(2);
	nap_ms(20);       /* well past the 1 ms delay */
	uint64_t purged = wait_purged(BLOCKS, !thread);
	cr_assert_geq(purged, BLOCKS, "purged %lu pages of a %d-page burst",
		      (unsigned long)purged, BLOCKS);
	cr_assert_geq(purge_counter("runs"), 1);
	if (thread)
		cr_assert_geq(purge_counter("thread_wakeups"), 1);
	else
		cr_assert_geq(purge_counter("trips"), 1);
	after = rss_bytes();
	/* MADV_FREE leaves RSS alone until the kernel needs the memory. */
	if (!advice_free())
		cr_assert_lt(after + (size_t)BLOCKS * PAGE / 2, before,
			     "RSS %zu -> %zu: the purge gave nothing back", before, after);

	/* The purged pages serve again: calloc's zeroes are right, and a
	 * malloc'd block reads zero (DONTNEED) or old contents (FREE) before
	 * it is written, and keeps what is written. */
	for (int i = 0; i < BLOCKS; i++) {
		unsigned char *q = calloc(1, PAGE);
		cr_assert_not_null(q);
		cr_assert_eq(first_nonzero(q, PAGE), -1, "calloc block %d not zero", i);
		fill(q, PAGE, 99);
		cr_assert_pattern(q, PAGE, 99);
		free(q);
	}
}

/* Every other block of a burst freed: none merges, and the purge makes a
 * system call for each.  A purge on an allocator call stops after a
 * millisecond or so (10 after an idle spell), so it may take several calls;
 * they, or the thread, give back every one. */
Test(purge, scattered_blocks_all_go_back_over_the_next_calls)
{
	enum { N = 2 * BLOCKS };
	static void *p[N];
	bool thread = thread_mode();
	for (int i = 0; i < N; i++) {
		p[i] = malloc(PAGE);
		cr_assert_not_null(p[i]);
		fill(p[i], PAGE, (uint64_t)i);
	}
	malloc_trim(0);                    /* nothing dirty but what follows */
	uint64_t purged0 = purge_counter("purged_pages");
	uint64_t calls0 = purge_counter("madvise_calls");
	size_t before = rss_bytes();
	for (int i = 1; i < N; i += 2)
		free(p[i]);
	nap_ms(20);
	uint64_t purged = wait_purged(purged0 + N / 2, !thread) - purged0;
	cr_assert_geq(purged, N / 2, "purged %lu of %d scattered pages", (unsigned long)purged,
		      N / 2);
	uint64_t calls = purge_counter("madvise_calls") - calls0;
	cr_assert_geq(calls, N / 2 - 64, "%lu madvise calls for %d scattered pages: they merged",
		      (unsigned long)calls, N / 2);
	if (!advice_free())
		cr_assert_lt(rss_bytes() + (size_t)N / 4 * PAGE, before,
			     "RSS %zu -> %zu: the purge gave nothing back", before, rss_bytes());
	for (int i = 0; i < N; i += 2) {
		cr_assert_pattern(p[i], PAGE, (uint64_t)i);
		free(p[i]);
	}
}

/* The child of a fork has no purge thread: it starts its own on demand,
 * and purges its own memory; the parent's keeps working. */
Test(purge, thread_across_fork)
{
	if (!thread_mode())
		cr_skip_test("purge_thread:1 only");
	burst(3);
	cr_assert_geq(wait_purged(BLOCKS, false), BLOCKS, "parent: no purge");
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* counters restart in the child: anything here is its own */
		burst(4);
		uint64_t purged = 0;
		for (int round = 0; round < 2000 && purged < BLOCKS; round++) {
			nap_ms(5);
			purged = purge_counter("purged_pages");
		}
		_exit(purged >= BLOCKS && purge_counter("thread_wakeups") >= 1 ? 0 : 1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	uint64_t had = purge_counter("purged_pages");
	burst(5);
	cr_assert_geq(wait_purged(had + BLOCKS, false), had + BLOCKS,
		      "parent: no purge after the fork");
}

/* exit does not wait for the thread, asleep or not. */
Test(purge, exit_with_the_thread_asleep)
{
	if (!thread_mode())
		cr_skip_test("purge_thread:1 only");
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		burst(6);
		for (int round = 0; round < 2000 && purge_counter("purged_pages") < BLOCKS; round++)
			nap_ms(5);
		exit(0);      /* atexit handlers, destructors, then exit_group */
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);   /* the suite's timeout is the watchdog */
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}

static bool pin_to(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) == 0;
}

static void *fill_cpu1_cache(void *arg)
{
	(void)arg;
	if (!pin_to(1))
		return (void *)1;
	static void *p[256];
	for (int i = 0; i < 256; i++) {
		p[i] = malloc(PAGE);
		cr_assert_not_null(p[i]);
		fill(p[i], PAGE, (uint64_t)i);
	}
	for (int i = 0; i < 256; i++)
		free(p[i]);
	return NULL;
}

/* CPU 1's cache filled by a thread there; false if it cannot run there. */
static bool fill_cpu1(void)
{
	pthread_t t;
	void *rc;
	cr_assert_eq(pthread_create(&t, NULL, fill_cpu1_cache, NULL), 0);
	pthread_join(t, &rc);
	return !rc;
}

/* A busy process whose other CPU's cache went unused: the decay gives that
 * cache's blocks to the zone (issue 10: caches decay when unused), while
 * the process never goes idle (a malloc every millisecond, so the trap
 * never finds a delay without one).  Registered with a 200 ms delay. */
Test(purge, unused_cpu_cache_decays_while_busy)
{
	if (!mp_conf_has("purge_delay_ms:200") || mp_conf_has("cache:") ||
	    mp_conf_has("preset:"))
		cr_skip_test("for the default cache with purge_delay_ms:200");
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || !pin_to(0))
		cr_skip_test("needs two CPUs");
	if (!fill_cpu1())
		cr_skip_test("cannot pin to CPU 1");
	uint64_t decayed = 0;
	long longest = 0;       /* ms: the longest gap between two mallocs */
	struct timespec was, now;
	clock_gettime(CLOCK_MONOTONIC, &was);
	for (int round = 0; round < 10000 && !decayed; round++) {
		nap_ms(1);
		void *q = malloc(PAGE), *s = malloc(64);
		cr_assert(q && s);
		clock_gettime(CLOCK_MONOTONIC, &now);
		long gap = (now.tv_sec - was.tv_sec) * 1000 + (now.tv_nsec - was.tv_nsec) / 1000000;
		if (gap > longest)
			longest = gap;
		was = now;
		free(q);
		free(s);
		decayed = mp_report_counter("caches", "decayed_pages");
	}
	cr_assert_geq(decayed, 1, "no cache decayed in 10000 busy milliseconds");
	/* Never idle, unless the machine kept this thread off its CPU for
	 * most of a delay (a loaded CI runner: the purge thread then rightly
	 * finds the process idle); the decay above is asserted either way. */
	if (longest < 100)
		cr_assert_eq(purge_counter("idle_purges"), 0, "the process was never idle "
			     "(longest gap between its mallocs %ld ms)", longest);
	else
		moot_note("mallocs", longest);
}

/* A process busy with small callocs, reallocs and aligned allocations
 * beside its small mallocs is not idle either.  Those calls reopened the
 * small bound the armed trap had closed without firing the trap, the
 * mallocs after them went past it to glibc, and the purge thread took the
 * process for idle within a delay (a review helper's test: 1 idle purge in
 * 1 s of calloc and malloc).  Registered with a 200 ms delay. */
Test(purge, small_callocs_keep_the_process_busy)
{
	if (!mp_conf_has("purge_delay_ms:200") || !thread_mode())
		cr_skip_test("for purge_delay_ms:200 with the purge thread");
	static void *cached[256];
	for (int i = 0; i < 256; i++) {
		cached[i] = malloc(PAGE);
		cr_assert_not_null(cached[i]);
		memset(cached[i], 1, PAGE);
	}
	for (int i = 0; i < 256; i++)
		free(cached[i]);

	uint64_t idle0 = purge_counter("idle_purges");
	long longest = 0;       /* ms: the longest gap between two rounds */
	struct timespec start, was, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	was = start;
	for (unsigned long round = 0;; round++) {
		char *c = calloc(1, 32), *m = malloc(32), *r = realloc(NULL, 48);
		void *a = NULL;
		cr_assert(c && m && r && posix_memalign(&a, 64, 32) == 0);
		cr_assert_eq(c[31], 0);
		m[0] = r[0] = 1;
		free(c);
		free(m);
		free(r);
		free(a);
		if (round % 64)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long gap = (now.tv_sec - was.tv_sec) * 1000 + (now.tv_nsec - was.tv_nsec) / 1000000;
		if (gap > longest)
			longest = gap;
		was = now;
		if (now.tv_sec - start.tv_sec >= 2)
			break;
	}
	if (longest < 100)
		cr_assert_eq(purge_counter("idle_purges"), idle0, "the process was never idle "
			     "(longest gap between its rounds %ld ms)", longest);
	else
		moot_note("rounds", longest);
}

/* Blocks of the 1-page class in the default cache's depot (the first
 * "blocks" of its "depot" array in the JSON report). */
static unsigned long long depot_blocks_1page(void)
{
	const char *at = strstr(mp_report_json(), "\"depot\":[");
	cr_assert_not_null(at, "no depot in the report");
	return mp_json_number(at, "blocks");
}

/* The depot keeps its working set, not its high-water mark (Bonwick and
 * Adams' reaping): a class in steady use that once overflowed into the
 * depot gives back, each decay interval, the blocks no allocation reached
 * in that interval, while the depot keeps seeing traffic every cycle (so
 * the rule for idle classes does not apply).  Registered with a 200 ms
 * delay and the purge thread. */
Test(purge, depot_gives_back_what_its_working_set_does_not_use)
{
	enum { FILL = 4096, CYCLE = 1024 };
	static void *p[FILL];

	if (!mp_conf_has("purge_delay_ms:200") || mp_conf_has("cache:") ||
	    mp_conf_has("preset:") || mp_conf_has("numa:fake"))
		cr_skip_test("for the default cache with purge_delay_ms:200");
	if (!pin_to(0))
		cr_skip_test("cannot pin to CPU 0");
	for (int i = 0; i < FILL; i++) {
		p[i] = malloc(PAGE);
		cr_assert_not_null(p[i]);
		fill(p[i], PAGE, (uint64_t)i);
	}
	for (int i = 0; i < FILL; i++)
		free(p[i]);
	unsigned long long full = depot_blocks_1page(), now = full;
	if (full < FILL / 2)
		cr_skip_test("the depot took only %llu blocks (no rseq?)", full);
	/* Each cycle empties the CPU's array and takes from the depot, then
	 * fills the array and gives to the depot again. */
	for (int round = 0; round < 5000 && now > full / 2; round++) {
		for (int i = 0; i < CYCLE; i++) {
			p[i] = malloc(PAGE);
			cr_assert_not_null(p[i]);
			fill(p[i], PAGE, (uint64_t)i + 7);
		}
		for (int i = 0; i < CYCLE; i++) {
			cr_assert_eq(check(p[i], PAGE, (uint64_t)i + 7), -1, "block %d changed", i);
			free(p[i]);
		}
		nap_ms(1);
		now = depot_blocks_1page();
	}
	cr_assert_leq(now, full / 2, "the depot still holds %llu of its %llu blocks", now, full);
	cr_assert_geq(mp_report_counter("caches", "decayed_pages"), full / 2);
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* One zone call that frees pages, which ticks the driver when its period
 * (a sixteenth of the delay) has passed: 32 pages are above every cached
 * class. */
static void zone_round_trip(void)
{
	char *p = malloc(32 * PAGE);
	cr_assert_not_null(p);
	p[0] = 1;
	free(p);
}

/* cache_decay_ms sets how often the caches give back what they did not
 * use, apart from the purge delay.  The caches hold CPU 1's unused blocks
 * (its arrays, and the depot it spilled into), and this thread makes
 * zone calls, each a tick once a sixteenth of the delay has passed:
 * - cache_decay_ms:5 with a delay of 1 s (ticks every 62 ms): the caches
 *   decay within 2 s, where the default (4 s) would give nothing;
 * - cache_decay_ms:60000 with a delay of 50 ms (ticks every 3 ms): nothing
 *   decays in 1 s, where the default (200 ms) would have decayed twice
 *   (the first decay, at the first tick, only takes its first look).
 * An idle purge (this thread kept off its CPU for the delay) drains the
 * caches without a decay: the fast case fills CPU 1's again.  Registered
 * once with each (CMakeLists.txt). */
Test(purge, cache_decay_ms_sets_the_decay_interval)
{
	bool slow = mp_conf_has("cache_decay_ms:60000");
	if (!slow && !mp_conf_has("cache_decay_ms:5"))
		cr_skip_test("for cache_decay_ms:5 and cache_decay_ms:60000");
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || !pin_to(0))
		cr_skip_test("needs two CPUs");
	zone_round_trip();                 /* ticks: the first decay is behind us */
	if (!fill_cpu1())
		cr_skip_test("cannot pin to CPU 1");
	unsigned long long d0 = mp_report_counter("caches", "decayed_pages");
	unsigned long long ticks0 = purge_counter("ticks");
	unsigned long long idle0 = purge_counter("idle_purges");
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long waited;
	bool decayed = false;
	while ((waited = ms_since(&t0)) < (slow ? 1000 : 2000) && !(decayed && !slow)) {
		zone_round_trip();
		decayed = mp_report_counter("caches", "decayed_pages") != d0;
		unsigned long long idle = purge_counter("idle_purges");
		if (!slow && !decayed && idle != idle0) {
			idle0 = idle;
			cr_assert(fill_cpu1());
		}
	}
	unsigned long long ticks = purge_counter("ticks") - ticks0;
	if (slow) {
		cr_assert_geq(ticks, 2, "%llu ticks in %ld ms: nothing could decay", ticks, waited);
		cr_assert_not(decayed, "the caches decayed within %ld ms (%llu ticks) at "
			      "cache_decay_ms:60000", waited, ticks);
	} else {
		cr_assert(decayed, "no cache decayed in %ld ms (%llu ticks) at cache_decay_ms:5",
			  waited, ticks);
	}
}

/* While the purge thread madvises a batch, that batch is off the free
 * lists: it is still free, and the statistics must say so.  They counted
 * it as neither free nor cached, so held_pages (and mallinfo2's
 * uordblks) showed up to 16 MiB the program did not hold for as long as
 * the system calls took (a soak helper's test: 142-204 samples in 20000,
 * in every run with the thread).  The program here holds no more than
 * before while it reads, and reads until the purge has given back what it
 * freed. */
Test(purge, held_pages_stay_zero_while_a_purge_runs)
{
	if (!thread_mode())
		cr_skip_test("for the purge thread");
	enum { N = 1024, SIZE = 16 * PAGE };       /* 64 MiB */
	static void *p[N];
	mp.drain();
	uint64_t base = mp_stats().held_pages;     /* the test runner's own */
	for (int i = 0; i < N; i++) {
		p[i] = malloc(SIZE);
		cr_assert_not_null(p[i]);
		memset(p[i], 1, SIZE);
	}
	uint64_t purged0 = purge_counter("purged_pages");
	for (int i = 0; i < N; i++)
		free(p[i]);
	mp.drain();
	uint64_t samples = 0, held = 0, worst = 0, purged = 0;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ms_since(&t0) < 5000) {
		struct magpage_stats st = mp_stats();
		samples++;
		if (st.held_pages > base) {
			held++;
			worst = st.held_pages - base > worst ? st.held_pages - base : worst;
		}
		if (samples % 256 == 0 &&
		    (purged = purge_counter("purged_pages") - purged0) >= (uint64_t)N * 16)
			break;
	}
	cr_assert_geq(purged, (uint64_t)N * 16, "the purge gave back %lu of %d pages in 5 s: "
		      "it never ran while the stats were read", (unsigned long)purged, N * 16);
	cr_assert_eq(held, 0, "%lu of %lu samples showed more held pages (up to %lu) than "
		     "the program holds", (unsigned long)held, (unsigned long)samples,
		     (unsigned long)worst);
}
