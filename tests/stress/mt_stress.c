/*
 * mt_stress.c — bounded multi-threaded stress of the malloc family under
 * LD_PRELOAD=libmagpage.so.  NOT a benchmark: it never looks at time except
 * to stop, and it reports no rates.
 *
 *   mt_stress [seconds=3] [threads=4] [--no-cache]
 *
 * Every thread runs random malloc / calloc / realloc / posix_memalign /
 * aligned_alloc / free of mixed sizes: mostly page-ish (exact multiples of
 * 4 KiB, a multiple plus a small header, just under a multiple), some small,
 * a few up to 1 MiB.  Each block carries its size and a pattern derived from
 * its address and size; it is checked before every free, the kept prefix is
 * checked after every realloc, calloc memory must read zero.  Blocks also
 * change threads through an exchange array (atomic swaps), so frees and
 * reallocs happen on threads other than the allocating one.  Now and then a
 * thread drains every page cache (magpage_drain), returns free memory to the
 * OS (malloc_trim) or frees a batch at once (magpage_free_bulk) while the
 * others keep going.
 *
 * A watchdog thread ends the process with a message if the run exceeds its
 * duration + 30 s (a deadlock).  Exit status 0 only if nothing was corrupt
 * and the library's counters (magpage_get_stats, found with dlsym) show the
 * page caches in use (unless --no-cache: then they must be unused) and no
 * invalid frees.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "magpage.h"

#include "stress_util.h"

#define LOCAL_SLOTS 192
#define XCHG_SLOTS 64
#define MAX_THREADS 64
#define MAGIC 0x6d61677061676521ull   /* "magpage!" */

static double run_seconds = 3.0;
static int nthreads = 4;
static atomic_int stop;
static atomic_int finished;
static _Atomic(void *) xchg[XCHG_SLOTS];
/* The library's own calls, found with dlsym (see main). */
static void (*lib_free_bulk)(void **, size_t);
static size_t (*lib_drain)(void);

struct tstats {
	uint64_t ops, mallocs, callocs, reallocs, memaligns, frees, swaps, verified_bytes;
	uint64_t bulk_frees, drains, trims;
};



static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* The content of word w of a block at a of size s. */
static inline uint64_t word_of(uintptr_t a, size_t s, size_t w)
{
	if (w == 0)
		return s;
	if (w == 1)
		return MAGIC ^ a ^ s;
	return mix(a ^ ((uint64_t)s << 24) ^ w);
}

static void fill(void *p, size_t s)
{
	uint64_t *w = p;
	size_t nw = s / 8;
	for (size_t i = 0; i < nw; i++)
		w[i] = word_of((uintptr_t)p, s, i);
	uint64_t last = word_of((uintptr_t)p, s, nw);
	memcpy((char *)p + nw * 8, &last, s % 8);
}

static void corrupt(const char *what, const void *p, size_t s, size_t off, uint64_t want,
		    uint64_t got)
{
	say("mt_stress: CORRUPTION (%s): block %p size %zu, offset %zu: want %016llx got %016llx\n",
	    what, p, s, off, (unsigned long long)want, (unsigned long long)got);
	_exit(1);
}

/* Checks the first n bytes of a block whose content was written for
 * address a and size s (n <= s). */
static void check_prefix(const void *p, uintptr_t a, size_t s, size_t n, const char *what)
{
	const uint64_t *w = p;
	size_t nw = n / 8;
	for (size_t i = 0; i < nw; i++) {
		uint64_t want = word_of(a, s, i);
		if (w[i] != want)
			corrupt(what, p, s, i * 8, want, w[i]);
	}
	if (n % 8) {
		uint64_t want = word_of(a, s, nw), got = 0;
		size_t k = n % 8;
		memcpy(&got, (const char *)p + nw * 8, k);
		want &= k == 8 ? ~0ull : ((1ull << (k * 8)) - 1);
		if (got != want)
			corrupt(what, p, s, nw * 8, want, got);
	}
}

static size_t size_of_block(const void *p)
{
	size_t s = *(const size_t *)p;
	if (((const uint64_t *)p)[1] != (MAGIC ^ (uintptr_t)p ^ s) || s < 16 || s > (8u << 20))
		corrupt("header", p, s, 0, MAGIC ^ (uintptr_t)p ^ s, ((const uint64_t *)p)[1]);
	return s;
}

static void check_block(const void *p, const char *what)
{
	size_t s = size_of_block(p);
	check_prefix(p, (uintptr_t)p, s, s, what);
	size_t us = malloc_usable_size((void *)p);
	if (us < s) {
		say("mt_stress: malloc_usable_size(%p) = %zu < %zu requested\n", p, us, s);
		_exit(1);
	}
}

static uint64_t rnd(uint64_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return *st;
}

static size_t pick_size(uint64_t *st)
{
	uint64_t r = rnd(st) % 1000;
	size_t pages = 1 + rnd(st) % 8;
	if (r < 300)
		return pages * 4096;                          /* exact multiples */
	if (r < 500)
		return pages * 4096 + 8 + rnd(st) % 120;      /* + a small header */
	if (r < 650)
		return pages * 4096 - 8 - rnd(st) % 200;      /* just under */
	if (r < 830)
		return 16 + rnd(st) % 4080;                   /* small: glibc's */
	if (r < 990)
		return 4096 + rnd(st) % (60u << 10);          /* 4 .. 64 KiB */
	return (64u << 10) + rnd(st) % (960u << 10);          /* a few up to 1 MiB */
}

static void *alloc_one(uint64_t *st, struct tstats *ts)
{
	size_t s = pick_size(st);
	void *p = NULL;
	uint64_t r = rnd(st) % 100;

	if (r < 55) {
		p = malloc(s);
		ts->mallocs++;
	} else if (r < 70) {
		size_t n = 1 + rnd(st) % 4, m = (s + n - 1) / n;
		s = n * m;
		p = calloc(n, m);
		ts->callocs++;
		if (p) {
			const unsigned char *c = p;
			for (size_t i = 0; i < s; i++)
				if (c[i]) {
					say("mt_stress: calloc(%zu, %zu) = %p: byte %zu is %u, not 0\n", n, m,
					    p, i, c[i]);
					_exit(1);
				}
		}
	} else if (r < 90) {
		size_t align = (size_t)1 << (3 + rnd(st) % 14);    /* 8 .. 64 KiB */
		int e = posix_memalign(&p, align, s);
		ts->memaligns++;
		if (e)
			p = NULL;
		else if ((uintptr_t)p % align) {
			say("mt_stress: posix_memalign(%zu, %zu) = %p: misaligned\n", align, s, p);
			_exit(1);
		}
	} else {
		size_t align = (size_t)1 << (4 + rnd(st) % 10);    /* 16 .. 8 KiB */
		p = aligned_alloc(align, s);
		ts->memaligns++;
		if (p && (uintptr_t)p % align) {
			say("mt_stress: aligned_alloc(%zu, %zu) = %p: misaligned\n", align, s, p);
			_exit(1);
		}
	}
	if (!p) {
		say("mt_stress: allocation of %zu bytes failed\n", s);
		_exit(1);
	}
	fill(p, s);
	return p;
}

static void free_one(void *p, struct tstats *ts)
{
	check_block(p, "before free");
	ts->verified_bytes += size_of_block(p);
	free(p);
	ts->frees++;
}

static void *realloc_one(void *p, uint64_t *st, struct tstats *ts)
{
	check_block(p, "before realloc");
	size_t old = size_of_block(p);
	uintptr_t olda = (uintptr_t)p;
	size_t s = pick_size(st);
	void *q = realloc(p, s);
	ts->reallocs++;
	if (!q) {
		say("mt_stress: realloc(%p, %zu) failed\n", p, s);
		_exit(1);
	}
	check_prefix(q, olda, old, old < s ? old : s, "after realloc");
	fill(q, s);
	return q;
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t st = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1) ^ (uint64_t)time(NULL);
	void *slot[LOCAL_SLOTS] = { 0 };
	struct tstats *ts = calloc(1, sizeof(*ts));

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (int burst = 0; burst < 64; burst++) {
			unsigned k = rnd(&st) % LOCAL_SLOTS;
			ts->ops++;
			if (!slot[k]) {
				slot[k] = alloc_one(&st, ts);
				continue;
			}
			uint64_t r = rnd(&st) % 100;
			if (rnd(&st) % 4096 == 0) {
				/* Now and then: give the caches back, return free
				 * memory to the OS, or free a batch at once, all
				 * while the other threads keep allocating. */
				switch (rnd(&st) % 3) {
				case 0:
					lib_drain();
					ts->drains++;
					break;
				case 1:
					malloc_trim(0);
					ts->trims++;
					break;
				default: {
					void *batch[LOCAL_SLOTS];
					size_t nb = 0;
					for (unsigned j = 0; j < LOCAL_SLOTS; j += 3)
						if (slot[j]) {
							check_block(slot[j], "before bulk free");
							batch[nb++] = slot[j];
							slot[j] = NULL;
						}
					lib_free_bulk(batch, nb);
					ts->bulk_frees += nb;
				}
				}
				continue;
			}
			if (r < 45) {
				free_one(slot[k], ts);
				slot[k] = NULL;
			} else if (r < 70) {
				slot[k] = realloc_one(slot[k], &st, ts);
			} else {
				/* Hand the block to whichever thread swaps this slot
				 * next; take what it left. */
				check_block(slot[k], "before exchange");
				void *got = atomic_exchange(&xchg[rnd(&st) % XCHG_SLOTS], slot[k]);
				if (got)
					check_block(got, "after exchange");
				slot[k] = got;
				ts->swaps++;
			}
		}
	}
	for (unsigned k = 0; k < LOCAL_SLOTS; k++)
		if (slot[k])
			free_one(slot[k], ts);
	return ts;
}

static void *watchdog(void *arg)
{
	double limit = *(double *)arg, t0 = now();
	while (!atomic_load(&finished)) {
		if (now() - t0 > limit) {
			say("mt_stress: WATCHDOG: still running %.0f s after start (limit %.0f s): "
			    "deadlock or livelock, aborting\n", now() - t0, limit);
			_exit(2);
		}
		usleep(100000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int expect_cache = 1;
	int pos = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-cache") == 0)
			expect_cache = 0;
		else if (pos == 0 && ++pos)
			run_seconds = atof(argv[i]);
		else
			nthreads = atoi(argv[i]);
	}
	if (run_seconds <= 0 || run_seconds > 600 || nthreads < 1 || nthreads > MAX_THREADS) {
		fprintf(stderr, "usage: mt_stress [seconds] [threads] [--no-cache]\n");
		return 2;
	}
	int (*get_stats)(struct magpage_stats *) =
		(int (*)(struct magpage_stats *))dlsym(RTLD_DEFAULT, "magpage_get_stats");
	if (!get_stats) {
		fprintf(stderr, "mt_stress: magpage_get_stats not found: run under "
				"LD_PRELOAD=libmagpage.so\n");
		return 1;
	}
	lib_free_bulk = (void (*)(void **, size_t))dlsym(RTLD_DEFAULT, "magpage_free_bulk");
	lib_drain = (size_t (*)(void))dlsym(RTLD_DEFAULT, "magpage_drain");
	if (!lib_free_bulk || !lib_drain) {
		fprintf(stderr, "mt_stress: magpage_free_bulk or magpage_drain not found\n");
		return 1;
	}
	printf("mt_stress: %d threads for %.1f s, MAGPAGE_CONF=\"%s\" (a stress test, not a "
	       "benchmark)\n", nthreads, run_seconds,
	       getenv("MAGPAGE_CONF") ? getenv("MAGPAGE_CONF") : "");
	fflush(stdout);

	/* Pages held before the run (stdio buffers and the like): the run must
	 * end with exactly as many. */
	struct magpage_stats before;
	get_stats(&before);

	pthread_t wd, t[MAX_THREADS];
	double limit = run_seconds + 30;
	if (pthread_create(&wd, NULL, watchdog, &limit) != 0)
		return 1;
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) != 0) {
			fprintf(stderr, "mt_stress: pthread_create failed\n");
			return 1;
		}
	usleep((useconds_t)(run_seconds * 1e6));
	atomic_store(&stop, 1);

	struct tstats total = { 0 };
	for (int i = 0; i < nthreads; i++) {
		struct tstats *ts;
		pthread_join(t[i], (void **)&ts);
		total.ops += ts->ops;
		total.mallocs += ts->mallocs;
		total.callocs += ts->callocs;
		total.reallocs += ts->reallocs;
		total.memaligns += ts->memaligns;
		total.frees += ts->frees;
		total.swaps += ts->swaps;
		total.verified_bytes += ts->verified_bytes;
		total.bulk_frees += ts->bulk_frees;
		total.drains += ts->drains;
		total.trims += ts->trims;
		free(ts);
	}
	for (unsigned k = 0; k < XCHG_SLOTS; k++) {
		void *p = atomic_exchange(&xchg[k], NULL);
		if (p)
			free_one(p, &total);
	}
	atomic_store(&finished, 1);
	pthread_join(wd, NULL);

	/* The runs keep one wholly free run per class for the next object
	 * (cached, not held); under cache:none nothing else may stay cached. */
	lib_drain();
	struct magpage_stats ms;
	if (get_stats(&ms) != 0) {
		fprintf(stderr, "mt_stress: magpage_get_stats failed\n");
		return 1;
	}
	printf("mt_stress: %llu ops: %llu malloc, %llu calloc, %llu realloc, %llu memalign, "
	       "%llu free (+%llu in bulk), %llu cross-thread swaps, %llu drains, %llu trims, "
	       "%llu MiB verified\n",
	       (unsigned long long)total.ops, (unsigned long long)total.mallocs,
	       (unsigned long long)total.callocs, (unsigned long long)total.reallocs,
	       (unsigned long long)total.memaligns, (unsigned long long)total.frees,
	       (unsigned long long)total.bulk_frees, (unsigned long long)total.swaps,
	       (unsigned long long)total.drains, (unsigned long long)total.trims,
	       (unsigned long long)(total.verified_bytes >> 20));
	printf("mt_stress: library: region %llu MiB, cache allocs %llu, hits %llu, refills %llu, "
	       "drains %llu, zone lock %llu (%llu contended), invalid frees %llu\n",
	       (unsigned long long)(ms.region_bytes >> 20), (unsigned long long)ms.cache_allocs,
	       (unsigned long long)ms.cache_hits, (unsigned long long)ms.cache_refills,
	       (unsigned long long)ms.cache_drains, (unsigned long long)ms.zone_lock_acquired,
	       (unsigned long long)ms.zone_lock_contended, (unsigned long long)ms.invalid_frees);

	int rc = 0;
	if (ms.region_bytes == 0) {
		fprintf(stderr, "mt_stress: FAIL: libmagpage has no region\n");
		rc = 1;
	}
	if (ms.invalid_frees != 0) {
		fprintf(stderr, "mt_stress: FAIL: %llu invalid frees reported\n",
			(unsigned long long)ms.invalid_frees);
		rc = 1;
	}
	if (expect_cache && ms.cache_allocs == 0) {
		fprintf(stderr, "mt_stress: FAIL: the page caches served nothing\n");
		rc = 1;
	}
	if (!expect_cache && (ms.cache_allocs != 0 || ms.cached_pages != 0)) {
		fprintf(stderr, "mt_stress: FAIL: cache:none, yet %llu cache allocations\n",
			(unsigned long long)ms.cache_allocs);
		rc = 1;
	}
	if (ms.held_pages != before.held_pages) {
		fprintf(stderr, "mt_stress: FAIL: every block was freed, yet %llu pages are held "
			"(%llu before the run)\n", (unsigned long long)ms.held_pages,
			(unsigned long long)before.held_pages);
		rc = 1;
	}
	printf("mt_stress: %s\n", rc ? "FAILED" : "ok");
	return rc;
}
