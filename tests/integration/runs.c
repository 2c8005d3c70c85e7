/*
 * runs.c — the page-plus-header sizes as objects of runs (src/malloc/runs.c),
 * under LD_PRELOAD=libmagpage.so.
 *
 * Proves (README "Which requests it serves"):
 *   - objects of classes across the range, many at once, never overlap,
 *     keep what was written into all their usable bytes (k pages plus the
 *     rest rounded up to 64 bytes), and are aligned to 64 bytes;
 *   - a run is taken from the zone once per N objects (65 pages for 64
 *     objects of 4160 bytes): held pages grow by the run, not per object;
 *     when every object is free one run per class is kept (cached, not
 *     held) and a second goes back; magpage_drain gives back the one kept,
 *     and so does the decay for a class left idle, while a class that
 *     cycles one object keeps its run through the decays;
 *   - a fork child finds its parent's objects intact and can free them and
 *     allocate more;
 *   - threads freeing each other's objects, and a signal handler freeing
 *     objects while another thread works the same class, lose nothing:
 *     afterwards no object is live and no page is held; the frees a
 *     handler had to defer go back at the next malloc of the size;
 *   - with rseq, a freed object goes to this CPU's cache of its size and
 *     comes back newest first; magpage_drain empties the caches, and so
 *     does a size that finds the zone full (region_size:4m variant);
 *   - a full cache's spills go to the class's depot, up to 4 MiB of
 *     objects, and the next refills take them from there, not from the
 *     runs; magpage_drain and the decay of an idle class empty it;
 *   - the statistics report's runs object counts what happened.
 * With runs:0 each test checks that these sizes went to glibc instead.
 */
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "mp_test.h"

TestSuite(runs, .init = mp_api_load, .timeout = 60);

static bool runs_on(void)
{
	return mp_conf_has("runs:1") && mp_conf_has("waste_max:25") &&
	       mp_conf_has("threshold:4096");
}

/* Class edges across the range: the smallest and largest size of a class,
 * and sqlite's page-cache entry (4368). */
static const size_t sizes[] = { 4097, 4160, 4161, 4368, 4415, 5000, 6143, 8193, 8256, 8257,
				9215 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
static const size_t object_bytes[NSIZES] = { 4160, 4160, 4224, 4416, 4416, 5056, 6144, 8256,
					     8256, 8320, 9216 };

static int by_address(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* magpage_drain empties the caches of objects and gives back every run
 * beyond the held0 the test started with; the runs it released, by the
 * runs' released counter, not by the pages it returns, since a decay
 * running meanwhile (the purge thread, or a tick) may take runs the drain
 * freed off the orphans' list and count their pages itself. */
static unsigned long long drain_all_runs(unsigned long long held0)
{
	unsigned long long released = mp_report_counter("runs", "released");
	mp.drain();
	cr_assert_eq(mp_report_counter("runs", "cached"), 0, "objects cached after magpage_drain");
	cr_assert_eq(mp_report_counter("runs", "held"), held0);
	return mp_report_counter("runs", "released") - released;
}

Test(runs, objects_are_distinct_aligned_and_keep_their_contents)
{
	enum { PER = 40 };
	static uintptr_t all[NSIZES * PER];
	static unsigned char *p[NSIZES][PER];
	bool on = runs_on();
	size_t n = 0;

	for (unsigned r = 0; r < PER; r++)
		for (unsigned s = 0; s < NSIZES; s++) {
			unsigned char *q = malloc(sizes[s]);
			cr_assert_not_null(q);
			p[s][r] = q;
			if (!on) {
				cr_assert_not(mp.owns(q), "runs off: malloc(%zu) is the zone's", sizes[s]);
				continue;
			}
			cr_assert(mp.owns(q), "malloc(%zu) is not the zone's", sizes[s]);
			cr_assert_eq(malloc_usable_size(q), object_bytes[s], "malloc(%zu): usable %zu",
				     sizes[s], malloc_usable_size(q));
			cr_assert_aligned(q, 64);
			fill(q, object_bytes[s], s * 1000 + r);
			all[n++] = (uintptr_t)q;
		}
	if (!on)
		goto out;
	qsort(all, n, sizeof(all[0]), by_address);
	for (size_t i = 0; i + 1 < n; i++)
		cr_assert_leq(all[i] + malloc_usable_size((void *)all[i]), all[i + 1],
			      "objects %p and %p overlap", (void *)all[i], (void *)all[i + 1]);
	for (unsigned s = 0; s < NSIZES; s++)
		for (unsigned r = 0; r < PER; r++)
			cr_assert_pattern(p[s][r], object_bytes[s], s * 1000 + r);
out:
	/* every other one, then the rest: runs become partial, then free */
	for (unsigned r = 0; r < PER; r += 2)
		for (unsigned s = 0; s < NSIZES; s++)
			free(p[s][r]);
	for (unsigned r = 1; r < PER; r += 2)
		for (unsigned s = 0; s < NSIZES; s++) {
			if (on)
				cr_assert_pattern(p[s][r], object_bytes[s], s * 1000 + r);
			free(p[s][r]);
		}
}

Test(runs, a_run_per_n_objects_one_kept_when_free_drain_gives_it_back)
{
	if (!runs_on())
		cr_skip_test("runs off, or another waste_max or threshold");
	void *o[65];
	mp.drain();
	struct magpage_stats s0 = mp_stats();
	/* the test harness's own objects, if it has any, stay as they are */
	unsigned long long live0 = mp_report_counter("runs", "live");
	unsigned long long held0 = mp_report_counter("runs", "held");
	for (int i = 0; i < 64; i++)
		o[i] = malloc(4101);            /* 4096 + 64: 64 in a run of 65 pages */
	struct magpage_stats s1 = mp_stats();
	cr_assert_eq(s1.held_pages - s0.held_pages, 65, "64 objects hold %lu pages",
		     (unsigned long)(s1.held_pages - s0.held_pages));
	o[64] = malloc(4150);               /* the same class */
	struct magpage_stats s2 = mp_stats();
	cr_assert_eq(s2.held_pages - s1.held_pages, 65, "the 65th object: %lu more pages",
		     (unsigned long)(s2.held_pages - s1.held_pages));
	for (int i = 0; i < 65; i++)
		free(o[i]);
	/* A run none of whose objects is live is cached memory, whether its
	 * objects went back to it or sit in this CPU's cache of objects. */
	struct magpage_stats s3 = mp_stats();
	cr_assert_eq(s3.held_pages, s0.held_pages, "all freed, yet %lu pages held (%lu before)",
		     (unsigned long)s3.held_pages, (unsigned long)s0.held_pages);
	cr_assert_eq(mp_report_counter("runs", "live"), live0);
	cr_assert_geq(s3.cached_pages, s0.cached_pages + 65, "the kept run is cached");
	if (!mp_report_counter("runs", "cache_cpus")) {
		/* the bin alone: the first run wholly free is kept, the
		 * second goes back */
		cr_assert_eq(mp_report_counter("runs", "held"), held0 + 1, "one run kept");
		cr_assert_geq(mp_report_counter("runs", "released"), 1, "the second run went back");
	} else {
		/* objects in this CPU's cache keep their runs: at most both */
		cr_assert_leq(mp_report_counter("runs", "held"), held0 + 2);
		cr_assert_gt(mp_report_counter("runs", "cached"), 0, "nothing in the CPU cache");
	}
	cr_assert_geq(drain_all_runs(held0), 1, "magpage_drain gave no run back");
	/* and the class works again from nothing */
	void *x = malloc(4101);
	cr_assert_eq(malloc_usable_size(x), 4160);
	free(x);
}

/* The tests of one CPU's cache of objects: skipped without runs or their
 * CPU caches; pinned to the CPU this thread runs on, the caches drained. */
static void one_cpus_cache(void)
{
	if (!runs_on())
		cr_skip_test("runs off, or another waste_max or threshold");
	if (!mp_report_counter("runs", "cache_cpus"))
		cr_skip_test("no CPU caches of objects (no rseq)");
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	mp.drain();
	cr_assert_eq(mp_report_counter("runs", "cached"), 0, "objects cached after magpage_drain");
}

/* With rseq, a freed object goes to this CPU's cache of its size, the next
 * malloc of the size takes it back from there (the newest first), and
 * magpage_drain empties the caches into the runs. */
Test(runs, this_cpus_cache_takes_frees_back_and_the_drain_empties_it)
{
	enum { N = 20 };
	one_cpus_cache();
	unsigned long long live0 = mp_report_counter("runs", "live");
	unsigned long long held0 = mp_report_counter("runs", "held");
	void *p[N], *q[N];
	for (int i = 0; i < N; i++)
		p[i] = malloc(4101);
	cr_assert_eq(mp_report_counter("runs", "live"), live0 + N);
	for (int i = 0; i < N; i++)
		free(p[i]);
	unsigned long long cached = mp_report_counter("runs", "cached");
	cr_assert_geq(cached, N, "%llu objects cached after %d frees", cached, N);
	cr_assert_eq(mp_report_counter("runs", "live"), live0);
	/* the newest first: the last one freed comes back first */
	for (int i = 0; i < N; i++)
		q[i] = malloc(4101);
	cr_assert_eq(q[0], p[N - 1], "malloc after free: %p, the last freed was %p", q[0], p[N - 1]);
	for (int i = 0; i < N; i++)
		cr_assert_eq(q[i], p[N - 1 - i], "object %d: %p, not %p", i, q[i], p[N - 1 - i]);
	for (int i = 0; i < N; i++)
		free(q[i]);
	cr_assert_geq(drain_all_runs(held0), 1, "the run of 65 pages did not go back");
	cr_assert_geq(mp_report_counter("runs", "cache_drained"), N);
}

/* n objects of 4101 bytes, then their frees. */
static void malloc_then_free(void **p, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = malloc(4101);
	for (int i = 0; i < n; i++)
		free(p[i]);
}

/* A batch larger than this CPU's array (30 objects of 4160 bytes at the
 * start, 504 at most): the array's spills go to the class's depot, not to
 * the runs, so that the next batch's refills take them from there and no
 * object from a run; magpage_drain gives the depot's back.  Beyond the
 * depot's room (4 MiB of objects: 1008 of these) the spills go back to the
 * runs.  The decay gives back a depot that did not move in an interval
 * (cache_decay_ms, 80 ms by default), which a loaded machine can stretch a
 * batch past: a try in which it drained anything (cache_drained moved) is
 * made again. */
Test(runs, the_depot_takes_a_full_arrays_spill_and_gives_it_back)
{
	enum { N = 200, BIG = 3000, ROOM = (4 << 20) / 4160, ARRAY = 504, TRIES = 5 };
	static void *p[BIG];
	one_cpus_cache();
	unsigned long long held0 = mp_report_counter("runs", "held");
	int t;
	for (t = 0; t < TRIES; t++) {
		unsigned long long drained = mp_report_counter("runs", "cache_drained");
		malloc_then_free(p, N);
		/* every object freed, and what the last refill took beyond the
		 * batch (half the array at most, less the object it handed out) */
		unsigned long long cached = mp_report_counter("runs", "cached");
		unsigned long long taken = mp_report_counter("runs", "allocs");
		for (int i = 0; i < N; i++) {
			p[i] = malloc(4101);
			cr_assert(mp.owns(p[i]));
			memset(p[i], i, 4101);
		}
		unsigned long long runs_took = mp_report_counter("runs", "allocs") - taken;
		for (int i = 0; i < N; i++) {
			cr_assert_eq(((unsigned char *)p[i])[4100], (unsigned char)i);
			free(p[i]);
		}
		bool decayed = mp_report_counter("runs", "cache_drained") != drained;
		unsigned long long released = drain_all_runs(held0);
		if (decayed)
			continue;
		cr_assert(cached >= N && cached <= N + ARRAY / 2,
			  "after %d frees the array and the depot hold %llu objects", N, cached);
		cr_assert_eq(runs_took, 0,
			     "the second batch took %llu objects from the runs, not the depot",
			     runs_took);
		cr_assert_geq(released, N / 64, "%llu of the batch's %d runs went back", released,
			      N / 64);
		break;
	}
	if (t == TRIES)
		cr_skip_test("the decay drained a depot in each of %d tries", TRIES);

	/* the depot's bound */
	for (t = 0; t < TRIES; t++) {
		unsigned long long drained = mp_report_counter("runs", "cache_drained");
		malloc_then_free(p, BIG);
		unsigned long long cached = mp_report_counter("runs", "cached");
		bool decayed = mp_report_counter("runs", "cache_drained") != drained;
		drain_all_runs(held0);
		if (decayed)
			continue;
		cr_assert_leq(cached, ROOM + ARRAY, "%llu objects cached, the depot holds %d", cached,
			      ROOM);
		cr_assert_geq(cached, ROOM, "%llu objects cached, the depot holds %d", cached, ROOM);
		return;
	}
	cr_skip_test("the decay drained a depot in each of %d tries", TRIES);
}

/* One round of a batch of n objects of size bytes, each written and
 * checked before its free. */
static void batch_round_of(void **p, int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		p[i] = malloc(size);
		cr_assert(mp.owns(p[i]));
		memset(p[i], i, size);
	}
	for (int i = 0; i < n; i++) {
		cr_assert_eq(((unsigned char *)p[i])[size - 1], (unsigned char)i);
		free(p[i]);
	}
}

static void batch_round(void **p, int n)
{
	batch_round_of(p, n, 4101);
}

/* An array that keeps turning (empty on the batch's mallocs, full on its
 * frees) grows, as the page caches' arrays do, until the batch fits: a
 * batch of 64 objects (30 fit at the start) then no longer goes to the
 * depot.  magpage_drain puts the capacity back, and the next batch goes to
 * the depot again. */
Test(runs, an_array_that_turns_grows_until_the_batch_fits)
{
	enum { B = 64, ROUNDS = 8, TRIES = 5 };
	void *p[B];
	unsigned long long moves;
	bool grew = false;
	one_cpus_cache();
	/* a try in which the decay drained the array (and so put its
	 * capacity back) is made again */
	for (int t = 0; t < TRIES && !grew; t++) {
		unsigned long long drained = mp_report_counter("runs", "cache_drained");
		for (int r = 0; r < ROUNDS; r++)
			batch_round(p, B);
		moves = mp_report_counter("runs", "depot_moves");
		for (int r = 0; r < ROUNDS; r++)
			batch_round(p, B);
		grew = mp_report_counter("runs", "depot_moves") == moves;
		if (!grew && mp_report_counter("runs", "cache_drained") == drained)
			break;
		mp.drain();
	}
	cr_assert(grew, "the array did not grow to hold a batch of %d", B);
	mp.drain();
	moves = mp_report_counter("runs", "depot_moves");
	batch_round(p, B);
	cr_assert_gt(mp_report_counter("runs", "depot_moves"), moves,
		     "the drain left the array's grown capacity");
	mp.drain();
}

/* All of a CPU's arrays together grow by at most 1 MiB: one class (4160-
 * byte objects) grows from 30 objects to 240, 873,600 bytes, and holds a
 * batch of 200 without the depot; a second (4224 bytes) finds room for 41
 * more objects only and keeps going to the depot.  The decay can empty an
 * idle array meanwhile, which gives its growth back: a try in which it
 * drained anything (cache_drained moved) is made again. */
Test(runs, a_cpus_arrays_grow_by_at_most_a_mib_together)
{
	enum { B = 200, ROUNDS = 12, TRIES = 5 };
	static const size_t first = 4101, second = 4165;
	static void *p[B];
	one_cpus_cache();
	for (int t = 0; t < TRIES; t++) {
		unsigned long long drained = mp_report_counter("runs", "cache_drained");
		for (int r = 0; r < ROUNDS; r++)
			batch_round_of(p, B, first);
		unsigned long long moves = mp_report_counter("runs", "depot_moves");
		batch_round_of(p, B, first);
		bool stuck = mp_report_counter("runs", "depot_moves") != moves;
		for (int r = 0; r < ROUNDS; r++)
			batch_round_of(p, B, second);
		moves = mp_report_counter("runs", "depot_moves");
		batch_round_of(p, B, second);
		bool moved = mp_report_counter("runs", "depot_moves") > moves;
		bool decayed = mp_report_counter("runs", "cache_drained") != drained;
		mp.drain();
		if (decayed)
			continue;
		cr_assert(!stuck, "the array of %zu-byte requests did not grow to hold %d", first,
			  B);
		cr_assert(moved, "a second class grew past the CPU's 1 MiB");
		return;
	}
	cr_skip_test("the decay drained an array in each of %d tries", TRIES);
}

/* calloc zeroes a run object up to its usable size, as glibc's calloc
 * zeroes its chunk: a program may use what malloc_usable_size says.  The
 * objects are dirtied and freed first, so that calloc reuses them. */
Test(runs, calloc_zeroes_the_usable_size)
{
	enum { N = 64 };
	void *p[N];
	if (!runs_on())
		cr_skip_test("runs off, or another waste_max or threshold");
	for (size_t k = 0; k < NSIZES; k++) {
		for (int i = 0; i < N; i++) {
			p[i] = malloc(sizes[k]);
			memset(p[i], 0xAA, malloc_usable_size(p[i]));
		}
		for (int i = 0; i < N; i++)
			free(p[i]);
		unsigned char *c = calloc(1, sizes[k]);
		cr_assert(mp.owns(c));
		size_t u = malloc_usable_size(c);
		cr_assert_geq(u, sizes[k]);
		for (size_t i = 0; i < u; i++)
			cr_assert_eq(c[i], 0, "calloc(1, %zu): byte %zu of %zu usable is %#x", sizes[k],
				     i, u, c[i]);
		free(c);
	}
}

/* Objects that two CPUs take for their arrays come from different runs,
 * so that their live bytes (zone.h: a byte per page, written by every
 * malloc and free) lie in different cache lines: two threads on two CPUs
 * each cycling an object of one size would otherwise bounce one line
 * between the CPUs on every call (batch 1 on two threads: 24% of the
 * cycles).  The first malloc on CPU 0 makes a run and takes from it, the
 * one on CPU 1 finds that run taken and makes another. */
static void *taken_on(int cpu, size_t size)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	cr_assert_eq(sched_setaffinity(0, sizeof(s), &s), 0);
	void *p = malloc(size);
	cr_assert(mp.owns(p));
	return p;
}

Test(runs, two_cpus_take_objects_from_different_runs)
{
	if (!runs_on())
		cr_skip_test("runs off, or another waste_max or threshold");
	if (!mp_report_counter("runs", "cache_cpus"))
		cr_skip_test("no CPU caches of objects (no rseq)");
	cpu_set_t all;
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	if (!CPU_ISSET(0, &all) || !CPU_ISSET(1, &all))
		cr_skip_test("needs CPUs 0 and 1");
	mp.drain();                      /* no depot to take from, no takers */
	for (size_t k = 0; k < 2; k++) {
		size_t size = k ? 8224 : 4101;
		void *p = taken_on(0, size), *q = taken_on(1, size);
		/* a run's first page is aligned to 128 pages (256 for 2-page
		 * objects): its live bytes fill one line (two), 64 pages each */
		cr_assert_neq((uintptr_t)p >> 18, (uintptr_t)q >> 18,
			      "%zu bytes: CPU 0's %p and CPU 1's %p have their live bytes "
			      "in one line", size, p, q);
		free(p);
		free(q);
	}
}

/* With the zone full of runs that objects in this CPU's cache keep
 * (object 0 of each, freed first, sits at the bottom of the array), a size
 * that needs a run of its own still gets one: the CPUs' caches give their
 * objects back first (refill's drain), and the runs go back to the zone.
 * Needs a small region: integration.runs.zone_full (region_size:4m). */
Test(runs, a_full_zone_gets_back_the_runs_the_cpu_caches_pin)
{
	enum { MAX = 2048 };
	static void *o[MAX];
	size_t n = 0, runs = 0;
	if (!mp_conf_has("region_size:4194304"))
		cr_skip_test("needs region_size:4m (integration.runs.zone_full)");
	one_cpus_cache();
	while (n < MAX) {                    /* until glibc answers: the zone is full */
		void *p = malloc(4101);
		cr_assert_not_null(p);
		if (!mp.owns(p)) {
			free(p);
			break;
		}
		o[n++] = p;
	}
	cr_assert_lt(n, MAX, "the zone never filled");
	for (size_t i = 0; i < n; i++)       /* object 0 of each run: page aligned */
		if (((uintptr_t)o[i] & (PAGE - 1)) == 0) {
			free(o[i]);
			o[i] = NULL;
			runs++;
		}
	cr_assert_geq(runs, 3, "%zu runs in a 4 MiB region", runs);
	for (size_t i = 0; i < n; i++)
		free(o[i]);
	cr_assert_geq(mp_report_counter("runs", "held"), runs, "the cached objects keep their runs");
	unsigned long long drained0 = mp_report_counter("runs", "cache_drained");
	void *y = malloc(8224);              /* a run of 129 pages */
	cr_assert(mp.owns(y), "malloc(8224) went to glibc: the runs the caches pin stayed");
	cr_assert_gt(mp_report_counter("runs", "cache_drained"), drained0);
	free(y);
	mp.drain();
}

/* on_exhausted:null holds for the run sizes as for whole pages: with the
 * zone full, malloc, calloc and a realloc into a run size fail with
 * ENOMEM (they once quietly took glibc's blocks), the block a realloc
 * failed to move is kept, and small requests still go to glibc.  Once the
 * zone has room again, the run sizes get their objects.  Needs
 * region_size:4m,on_exhausted:null (integration.runs.exhausted_null). */
Test(runs, an_exhausted_zone_under_on_exhausted_null_fails_run_sizes)
{
	enum { MAX = 2048 };
	static void *o[MAX];
	size_t n = 0;
	if (!mp_conf_has("region_size:4194304") || !mp_conf_has("on_exhausted:null") || !runs_on())
		cr_skip_test("needs region_size:4m,on_exhausted:null and runs on "
			     "(integration.runs.exhausted_null)");
	void *keep = malloc(4096);
	cr_assert(keep && mp.owns(keep));
	memset(keep, 0x5a, 4096);
	while (n < MAX && (o[n] = malloc(4096)) != NULL)
		n++;
	cr_assert_lt(n, MAX, "the zone never filled");
	cr_assert_eq(errno, ENOMEM);
	static const size_t run_sizes[] = { 4097, 4160, 6143, 8193, 9215 };
	for (size_t i = 0; i < sizeof(run_sizes) / sizeof(run_sizes[0]); i++) {
		size_t s = run_sizes[i];
		errno = 0;
		void *p = malloc(s);
		cr_assert_null(p, "malloc(%zu) with the zone full gave %p (owned %d)", s, p,
			       p ? mp.owns(p) : 0);
		cr_assert_eq(errno, ENOMEM, "malloc(%zu): errno %d", s, errno);
		errno = 0;
		p = calloc(1, s);
		cr_assert_null(p, "calloc(1, %zu) with the zone full gave %p", s, p);
		cr_assert_eq(errno, ENOMEM, "calloc(1, %zu): errno %d", s, errno);
		errno = 0;
		cr_assert_null(realloc(keep, s), "realloc(4096 -> %zu) with the zone full", s);
		cr_assert_eq(errno, ENOMEM, "realloc(4096 -> %zu): errno %d", s, errno);
	}
	for (size_t i = 0; i < 4096; i++)
		cr_assert_eq(((unsigned char *)keep)[i], 0x5a, "the block realloc kept changed");
	void *small = malloc(100);
	cr_assert_not_null(small, "a small request failed with the zone full");
	free(small);
	for (size_t i = 0; i < n; i++)
		free(o[i]);
	mp.drain();
	void *r = malloc(4160);
	cr_assert(r && mp.owns(r), "malloc(4160) with room in the zone: %p", r);
	free(r);
	free(keep);
}

/* With the zone full, page-sized requests go to glibc with the alignment
 * their call asked for: malloc's 16 bytes (a page-aligned memalign cost
 * glibc a page each: 56% of glibc's 4 KiB blocks under ulimit -v), the
 * aligned calls' own.  Needs region_size:4m (integration.runs.zone_full). */
Test(runs, a_full_zone_sends_page_sizes_to_glibc_aligned_as_asked)
{
	enum { MAX = 4096 };
	static void *o[MAX];
	size_t n = 0;
	if (!mp_conf_has("region_size:4194304"))
		cr_skip_test("needs region_size:4m (integration.runs.zone_full)");
	while (n < MAX) {                    /* until glibc answers: the zone is full */
		void *p = malloc(8192);
		cr_assert_not_null(p);
		o[n++] = p;
		if (!mp.owns(p))
			break;
	}
	cr_assert(n < MAX && !mp.owns(o[n - 1]), "the zone never filled");
	static const size_t aligns[] = { 4096, 8192, 65536, 1 << 20 };
	for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		void *p = aligned_alloc(aligns[i], 8192), *q = NULL;
		cr_assert_not_null(p);
		cr_assert_eq((uintptr_t)p % aligns[i], 0, "aligned_alloc(%zu) from glibc gave %p",
			     aligns[i], p);
		cr_assert_eq(posix_memalign(&q, aligns[i], 4096), 0);
		cr_assert_eq((uintptr_t)q % aligns[i], 0);
		memset(p, 1, 8192);
		memset(q, 2, 4096);
		free(p);
		free(q);
	}
	void *c = calloc(1, 12288);
	cr_assert_not_null(c);
	cr_assert_eq((uintptr_t)c % 16, 0);
	for (size_t i = 0; i < 12288; i++)
		cr_assert_eq(((unsigned char *)c)[i], 0);
	free(c);
	while (n)
		free(o[--n]);
}

Test(runs, the_decay_gives_back_an_idle_classs_run)
{
	if (!runs_on())
		cr_skip_test("runs off, or another waste_max or threshold");
	if (mp_conf_has("purge_delay_ms:0"))
		cr_skip_test("no decay");
	mp.drain();
	unsigned long long held0 = mp_report_counter("runs", "held");
	free(malloc(5000));                  /* 4096 + 960: 4 in a run of 5 pages */
	cr_assert_eq(mp_report_counter("runs", "held"), held0 + 1, "the run is kept");
	/* Another size keeps the process busy past two decays (80 ms each);
	 * a 20-page block freed each time is a zone call, which drives the
	 * purge's ticks.  The idle size's run goes back, the busy one's
	 * stays (bounded: 5 s). */
	unsigned long long released0 = mp_report_counter("runs", "released");
	for (int i = 0; i < 5000 && mp_report_counter("runs", "released") == released0; i++) {
		free(malloc(4101));
		free(malloc(20 * PAGE));
		usleep(1000);
	}
	cr_assert_gt(mp_report_counter("runs", "released"), released0,
		     "the 5000-byte size's run was not given back");
	cr_assert_eq(mp_report_counter("runs", "held"), held0 + 1,
		     "the busy 4101-byte size's run should stay, the idle one's go");
}

/* A class that cycles one object keeps its run through the decays.  Its
 * array reads the same count at each decay, so the decay empties it back
 * into the run, which is then wholly free: the spare.  That spare must
 * not go back to the zone in the same pass because the class took
 * nothing from its bin in the interval (it took from its array): the
 * next malloc would make a new run from the zone at every decay.  The
 * thread stays on one CPU: one that moves takes from a run of its own
 * (run_taker), a second one (bounded: eight decays or 5 s). */
Test(runs, the_decay_keeps_the_run_of_a_class_that_cycles_one_object)
{
	cpu_set_t one;
	if (!runs_on() || !mp_report_counter("runs", "cache_cpus"))
		cr_skip_test("runs or their CPU caches off");
	if (mp_conf_has("purge_delay_ms:0"))
		cr_skip_test("no decay");
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	mp.drain();
	free(malloc(4101));
	unsigned long long made0 = mp_report_counter("runs", "made");
	unsigned long long drained = mp_report_counter("runs", "cache_drained");
	int decays = 0;
	for (int i = 0; i < 5000 && decays < 8; i++) {
		free(malloc(4101));
		free(malloc(20 * PAGE));     /* a zone call: the purge's ticks */
		usleep(1000);
		unsigned long long now = mp_report_counter("runs", "cache_drained");
		decays += now != drained;
		drained = now;
	}
	if (decays < 2)
		cr_skip_test("the decay drained the array %d times in 5 s", decays);
	cr_assert_leq(mp_report_counter("runs", "made") - made0, 1,
		      "%llu runs made for one object cycled across %d decays",
		      mp_report_counter("runs", "made") - made0, decays);
}

/* A class's depot that did not move in a decay interval goes back to the
 * runs, as an idle array does (bounded: 5 s). */
Test(runs, the_decay_empties_an_idle_classs_depot)
{
	enum { N = 100 };
	void *p[N];
	if (!runs_on() || !mp_report_counter("runs", "cache_cpus"))
		cr_skip_test("runs or their CPU caches off");
	if (mp_conf_has("purge_delay_ms:0"))
		cr_skip_test("no decay");
	mp.drain();
	for (int i = 0; i < N; i++)
		p[i] = malloc(5000);         /* 24 in an array: the rest spill */
	for (int i = 0; i < N; i++)
		free(p[i]);
	cr_assert_geq(mp_report_counter("runs", "cached"), N / 2);
	for (int i = 0; i < 5000 && mp_report_counter("runs", "cached") >= N / 2; i++) {
		free(malloc(4101));
		free(malloc(20 * PAGE));
		usleep(1000);
	}
	cr_assert_lt(mp_report_counter("runs", "cached"), N / 2,
		     "the idle 5000-byte class's depot kept its objects");
}

Test(runs, a_fork_child_uses_its_parents_objects)
{
	enum { N = 50 };
	unsigned char *p[N];
	for (int i = 0; i < N; i++) {
		size_t s = sizes[i % NSIZES];
		p[i] = malloc(s);
		fill(p[i], s, (uint64_t)i);
	}
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		for (int i = 0; i < N; i++) {
			size_t s = sizes[i % NSIZES];
			if (check(p[i], s, (uint64_t)i) != -1)
				_exit(10);
			free(p[i]);
			p[i] = malloc(s);
			if (!p[i])
				_exit(11);
			memset(p[i], i, s);
		}
		for (int i = 0; i < N; i++)
			free(p[i]);
		_exit(0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	for (int i = 0; i < N; i++) {
		cr_assert_pattern(p[i], sizes[i % NSIZES], (uint64_t)i);
		free(p[i]);
	}
}

/* ---- threads ------------------------------------------------------------- */

#define RING 256
static _Atomic(void *) ring[RING];
static atomic_int stop;

static atomic_long corrupt;

static void *worker(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
	while (!atomic_load(&stop)) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t s = sizes[x % NSIZES];
		unsigned char *p = malloc(s);
		if (!p)
			abort();
		/* its size at the start, a tag at the end */
		memcpy(p, &s, sizeof(s));
		p[s - 1] = (unsigned char)(s * 7);
		/* swap it into a random slot: whoever held the old one frees it */
		unsigned char *old = atomic_exchange(&ring[(x >> 32) % RING], p);
		if (old) {
			size_t os;
			memcpy(&os, old, sizeof(os));
			if (os > malloc_usable_size(old) || old[os - 1] != (unsigned char)(os * 7))
				atomic_fetch_add(&corrupt, 1);
			free(old);
		}
	}
	return NULL;
}

Test(runs, threads_free_each_others_objects)
{
	enum { T = 4 };
	pthread_t t[T];
	mp.drain();
	struct magpage_stats s0 = mp_stats();
	unsigned long long live0 = mp_report_counter("runs", "live");
	atomic_store(&stop, 0);
	for (int i = 0; i < T; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)), 0);
	usleep(700 * 1000);
	atomic_store(&stop, 1);
	for (int i = 0; i < T; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < RING; i++)
		free(atomic_exchange(&ring[i], NULL));
	mp.drain();
	struct magpage_stats s1 = mp_stats();
	cr_assert_eq(s1.held_pages, s0.held_pages, "%lu pages held after, %lu before",
		     (unsigned long)s1.held_pages, (unsigned long)s0.held_pages);
	cr_assert_eq(mp_report_counter("runs", "live"), live0);
	cr_assert_eq(s1.invalid_frees, 0);
	cr_assert_eq(atomic_load(&corrupt), 0, "objects changed while they were live");
	if (runs_on())           /* objects taken from runs, batches with the CPU caches */
		cr_assert_gt(mp_report_counter("runs", "allocs"), 0);
}

/* A handler frees objects from its own stash while another thread takes
 * and gives back objects of the same class: a handler that finds the
 * class's lock held defers its free, and the next call drains it. */
#define STASH 4096
static void *stash[STASH];
static atomic_int stash_top;
static atomic_long handler_frees;

static void on_alarm(int sig)
{
	(void)sig;
	int n = atomic_load(&stash_top);
	for (int k = 0; k < 8 && n > 0; k++) {
		if (atomic_compare_exchange_strong(&stash_top, &n, n - 1)) {
			free(stash[n - 1]);
			atomic_fetch_add(&handler_frees, 1);
			n--;
		}
	}
}

static void *churn(void *arg)
{
	sigset_t m;
	(void)arg;
	sigemptyset(&m);
	sigaddset(&m, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &m, NULL);   /* the handler runs on the main thread */
	while (!atomic_load(&stop))
		free(malloc(4101));
	return NULL;
}

Test(runs, a_handler_frees_objects_while_another_thread_works_the_class)
{
	pthread_t t;
	struct sigaction sa, old;
	struct itimerval it = { { 0, 200 }, { 0, 200 } }, off = { { 0, 0 }, { 0, 0 } };

	mp.drain();
	struct magpage_stats s0 = mp_stats();
	unsigned long long live0 = mp_report_counter("runs", "live");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	cr_assert_eq(sigaction(SIGALRM, &sa, &old), 0);
	atomic_store(&stop, 0);
	cr_assert_eq(pthread_create(&t, NULL, churn, NULL), 0);
	for (int round = 0; round < 20; round++) {
		/* refill the stash (the handler only takes from it) */
		sigset_t m, was;
		sigemptyset(&m);
		sigaddset(&m, SIGALRM);
		pthread_sigmask(SIG_BLOCK, &m, &was);
		while (atomic_load(&stash_top) < STASH) {
			void *p = malloc(4101);
			cr_assert_not_null(p);
			stash[atomic_load(&stash_top)] = p;
			atomic_fetch_add(&stash_top, 1);
		}
		pthread_sigmask(SIG_SETMASK, &was, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
		while (atomic_load(&stash_top) > 0)
			free(malloc(4101));      /* process-context calls drain */
		setitimer(ITIMER_REAL, &off, NULL);
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	sigaction(SIGALRM, &old, NULL);
	/* the next run malloc drains what is still deferred (the one-hop
	 * path steps aside for it), before any drain of the caches */
	free(malloc(4101));
	unsigned long long live1 = mp_report_counter("runs", "live");
	mp.drain();
	struct magpage_stats s1 = mp_stats();
	cr_assert_eq(atomic_load(&handler_frees), 20 * STASH);
	cr_assert_eq(live1, live0, "objects still live after a malloc (deferred %llu)",
		     mp_report_counter("runs", "deferred"));
	cr_assert_eq(mp_report_counter("runs", "live"), live0, "objects still live (deferred %llu)",
		     mp_report_counter("runs", "deferred"));
	cr_assert_eq(s1.held_pages, s0.held_pages);
	cr_assert_eq(s1.invalid_frees, 0);
}

/* A handler free that finds this CPU's array full and the bin's lock held
 * by another thread is deferred; the next run malloc must free it, even
 * one the array could serve at once.  With the purge on, an armed trap may
 * send that malloc the slow way, which drains anyway: the ctest variant
 * integration.runs.deferred runs it with purge_delay_ms:0. */
enum { POOL = 2000, SPILLS = 8000 };
static void *pool[POOL], *spill[SPILLS];
static volatile int pool_n;
static atomic_int spilled;

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static void on_usr1(int sig)
{
	(void)sig;
	if (pool_n)
		free(pool[--pool_n]);
}

static void *spiller(void *arg)
{
	(void)arg;
	pin(1);
	for (int i = 0; i < SPILLS; i++)
		free(spill[i]);          /* its CPU's array spills: the bin's lock */
	atomic_store(&spilled, 1);
	return NULL;
}

Test(runs, the_next_malloc_frees_what_a_handler_deferred)
{
	pthread_t t;
	void *f[64], *g[16];

	if (!runs_on())
		cr_skip_test("runs off, or another waste_max or threshold");
	if (!mp_report_counter("runs", "cache_cpus"))
		cr_skip_test("no CPU caches of objects (no rseq)");
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("one CPU: no other thread holds the lock meanwhile");
	pin(0);
	mp.drain();
	unsigned long long live0 = mp_report_counter("runs", "live");
	unsigned long long deferred0 = mp_report_counter("runs", "deferred");
	for (pool_n = 0; pool_n < POOL; pool_n++)
		cr_assert_not_null(pool[pool_n] = malloc(4101));
	for (int i = 0; i < 16; i++)
		cr_assert_not_null(g[i] = malloc(4101));
	for (int i = 0; i < 64; i++)             /* this CPU's array: full */
		cr_assert_not_null(f[i] = malloc(4101));
	for (int i = 0; i < 64; i++)
		free(f[i]);
	for (int i = 0; i < SPILLS; i++)
		cr_assert_not_null(spill[i] = malloc(4101));
	cr_assert_eq(signal(SIGUSR1, on_usr1) == SIG_ERR, 0);
	atomic_store(&spilled, 0);
	cr_assert_eq(pthread_create(&t, NULL, spiller, NULL), 0);
	while (pool_n && !atomic_load(&spilled))
		raise(SIGUSR1);                  /* each a handler's free */
	pthread_join(t, NULL);
	while (pool_n)
		free(pool[--pool_n]);
	unsigned long long deferred = mp_report_counter("runs", "deferred") - deferred0;
	if (!deferred)
		cr_skip_test("no handler free found the bin's lock held");
	/* objects in this CPU's array (the decay may have emptied it
	 * meanwhile), so that the next malloc could take one at once */
	for (int i = 0; i < 16; i++)
		free(g[i]);
	char *volatile p = malloc(4101);
	p[0] = 1;
	free(p);
	cr_assert_eq(mp_report_counter("runs", "live"), live0,
		     "%llu objects still live after a malloc (%llu handler frees deferred)",
		     mp_report_counter("runs", "live") - live0, deferred);
}
