/*
 * drain_race.c — global drains, trims and zone exhaustion on several threads
 * at once, on a small region, for every page-cache design.  NOT a benchmark.
 *
 *   drain_race [seconds=2] [threads=4]
 *
 * Linked against magpage_core (the allocator without its exported malloc),
 * configured by MAGPAGE_CONF as the preloaded library would be.  Every
 * thread fills its share of an 8 MiB region with 1- to 4-page blocks until
 * the zone is exhausted, stamps each block with its owner and a sequence
 * number, then frees half, and between rounds calls one of pa_drain_all
 * (magpage_drain), mp_trim (malloc_trim) or nothing, so that drains run on
 * several threads at the same moment, also against frees and refills.
 *
 * A block handed to two callers shows up as a stamp overwritten by another
 * thread; a block freed twice by two drainers shows up in zone_validate
 * (more free pages than the zone has, a page in two free blocks) or as a
 * cycle on a free list, which makes zone_purge or the validator spin: the
 * watchdog turns that into a failure.  Exit status 0 only if every stamp
 * held and the zone validates with nothing in use at the end.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "stress_util.h"

#define MAX_THREADS 16
#define SLOTS 1024

struct block {
	uint64_t *p;
	size_t bytes;
	uint64_t stamp;
};

static double run_seconds = 2.0;
static int nthreads = 4;
static atomic_int stop, failed;
static atomic_ulong drains, trims, exhaustions;

static uint64_t stamp_of(int t, uint64_t seq)
{
	return ((uint64_t)(t + 1) << 48) ^ seq ^ 0x5a5a000000000000ull;
}

static void fill(struct block *b)
{
	for (size_t i = 0; i < b->bytes / 8; i += 512)
		b->p[i] = b->stamp;
}

static bool intact(const struct block *b)
{
	for (size_t i = 0; i < b->bytes / 8; i += 512)
		if (b->p[i] != b->stamp)
			return false;
	return true;
}

static void release(struct block *b, int t)
{
	if (!intact(b)) {
		say("drain_race: thread %d: block %p (%zu bytes) was overwritten: "
		    "handed to two callers\n", t, (void *)b->p, b->bytes);
		atomic_store(&failed, 1);
	}
	mp_free(b->p);
	b->p = NULL;
}

static void *worker(void *arg)
{
	int t = (int)(intptr_t)arg;
	struct block *blocks = calloc(SLOTS, sizeof(*blocks));
	uint64_t seq = 0, rng = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);

	while (!atomic_load(&stop) && !atomic_load(&failed)) {
		/* Fill until the zone says no: every thread reaches exhaustion,
		 * and with it the drain of every cache, at about the same time. */
		size_t n = 0;
		for (; n < SLOTS; n++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			size_t bytes = (size_t)(1 + rng % 4) * 4096;
			void *p = mp_malloc(bytes);
			if (!p) {
				atomic_fetch_add(&exhaustions, 1);
				break;
			}
			blocks[n] = (struct block){ p, bytes, stamp_of(t, ++seq) };
			fill(&blocks[n]);
		}
		for (size_t i = 0; i < n; i += 2)
			release(&blocks[i], t);
		switch (rng % 3) {
		case 0:
			pa_drain_all();
			atomic_fetch_add(&drains, 1);
			break;
		case 1:
			mp_trim(0);
			atomic_fetch_add(&trims, 1);
			break;
		}
		for (size_t i = 1; i < n; i += 2)
			release(&blocks[i], t);
	}
	free(blocks);
	return NULL;
}

static void *watchdog(void *arg)
{
	(void)arg;
	double deadline = now() + run_seconds + 30;
	while (now() < deadline) {
		if (atomic_load(&stop) == 2)
			return NULL;
		usleep(100000);
	}
	say("drain_race: watchdog: no progress %.0f s past the run time "
	    "(a cycle on a free list, or a deadlock)\n", 30.0);
	_exit(2);
}

int main(int argc, char **argv)
{
	pthread_t th[MAX_THREADS], wd;
	char why[256] = "";

	if (argc > 1)
		run_seconds = atof(argv[1]);
	if (argc > 2)
		nthreads = atoi(argv[2]);
	if (nthreads < 1 || nthreads > MAX_THREADS || run_seconds <= 0) {
		say("usage: drain_race [seconds] [threads 1..%d]\n", MAX_THREADS);
		return 2;
	}
	mp_init_slow();
	if (!zg.bytes) {
		say("drain_race: no region\n");
		return 1;
	}
	if (opt.on_exhausted != EXHAUSTED_NULL || zg.bytes > (32u << 20)) {
		say("drain_race: needs MAGPAGE_CONF with on_exhausted:null and a small region\n");
		return 2;
	}
	pthread_create(&wd, NULL, watchdog, NULL);
	for (int t = 0; t < nthreads; t++)
		pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
	usleep((useconds_t)(run_seconds * 1e6));
	atomic_store(&stop, 1);
	for (int t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);

	pa_drain_all();
	int rc = zone_validate(0, why, sizeof(why));
	atomic_store(&stop, 2);
	pthread_join(wd, NULL);
	say("drain_race: cache %s, %d threads, %.1f s: %lu exhaustions, %lu drains, %lu trims\n",
	    cache_name(), nthreads, run_seconds, (unsigned long)atomic_load(&exhaustions),
	    (unsigned long)atomic_load(&drains), (unsigned long)atomic_load(&trims));
	if (rc != 0) {
		say("drain_race: zone_validate: %s\n", why);
		return 1;
	}
	if (atomic_load(&failed))
		return 1;
	if (atomic_load(&exhaustions) == 0) {
		say("drain_race: the zone was never exhausted: the test did not test\n");
		return 1;
	}
	return 0;
}
