/*
 * threads.c — many threads, blocks handed from one thread to another.
 *
 * Proves, under LD_PRELOAD: 4 threads x 20000 iterations of page-sized
 * malloc / fill / verify / free, with about a third of the blocks freed by
 * a different thread than the one that allocated them (through a shared
 * ring, as a producer/consumer program or an I/O completion does), never
 * hand out one page twice and never lose a byte: every block is checked
 * in full before it is freed, and when all is freed the allocator holds
 * exactly the pages it held before.  Bounded: it fails rather than runs
 * past its deadline.  Not a benchmark.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "mp_test.h"

enum { THREADS = 4, ITERS = 20000, LOCAL = 32, RING = 256 };
#define DEADLINE_S 40

/* A block starts with its own description, then a pattern of words. */
struct hdr {
	uint64_t seed;
	uint64_t size;
};

static const size_t size_mix[] = {
	4096, 4096, 4104, 8032, 8192, 8192, 8224, 12288, 16384, 16384, 20480, 27392,
	32768, 5120, 65536, 100, 2000,
};

static void block_fill(void *p, size_t size, uint64_t seed)
{
	struct hdr *h = p;
	h->seed = seed;
	h->size = size;
	uint64_t *w = (uint64_t *)(h + 1);
	size_t n = (size - sizeof(*h)) / 8;
	for (size_t i = 0; i < n; i++)
		w[i] = seed ^ (i * 0x9E3779B97F4A7C15ull);
}

/* 0 if intact, else 1 + the index of the first wrong word. */
static size_t block_check(const void *p)
{
	const struct hdr *h = p;
	const uint64_t *w = (const uint64_t *)(h + 1);
	size_t n = (h->size - sizeof(*h)) / 8;
	for (size_t i = 0; i < n; i++)
		if (w[i] != (h->seed ^ (i * 0x9E3779B97F4A7C15ull)))
			return i + 1;
	return 0;
}

static struct {
	pthread_mutex_t lock;
	void *slot[RING];
	unsigned head, count;
} ring = { .lock = PTHREAD_MUTEX_INITIALIZER };

static bool ring_put(void *p)
{
	bool ok = false;
	pthread_mutex_lock(&ring.lock);
	if (ring.count < RING) {
		ring.slot[(ring.head + ring.count++) % RING] = p;
		ok = true;
	}
	pthread_mutex_unlock(&ring.lock);
	return ok;
}

static void *ring_get(void)
{
	void *p = NULL;
	pthread_mutex_lock(&ring.lock);
	if (ring.count) {
		p = ring.slot[ring.head];
		ring.head = (ring.head + 1) % RING;
		ring.count--;
	}
	pthread_mutex_unlock(&ring.lock);
	return p;
}

struct worker {
	pthread_t tid;
	unsigned id;
	uint64_t handed, taken, verified;
	const char *error;       /* NULL, or what went wrong */
	void *bad;               /* the block it went wrong in */
	size_t bad_word;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double deadline;

static bool verify_and_free(struct worker *w, void *p)
{
	size_t at = block_check(p);
	if (at) {
		w->error = "block contents changed while it was live";
		w->bad = p;
		w->bad_word = at - 1;
		return false;
	}
	w->verified++;
	free(p);
	return true;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	void *mine[LOCAL] = { 0 };
	uint64_t x = 0x1234567 + w->id * 0x9E3779B9ull;

	for (unsigned it = 0; it < ITERS; it++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		unsigned k = (unsigned)(x % LOCAL), action = (unsigned)(x >> 32) % 8;

		if ((it & 1023) == 0 && now_s() > deadline) {
			w->error = "deadline passed";
			break;
		}
		if (!mine[k]) {
			size_t size = size_mix[(x >> 40) % (sizeof(size_mix) / sizeof(size_mix[0]))];
			void *p = malloc(size);
			if (!p) {
				w->error = "malloc returned NULL";
				break;
			}
			block_fill(p, size, x | 1);
			mine[k] = p;
		} else if (action < 3) {
			/* hand it to whichever thread looks next */
			if (ring_put(mine[k])) {
				mine[k] = NULL;
				w->handed++;
			}
		} else if (action < 6) {
			void *p = ring_get();
			if (p) {
				w->taken++;
				if (!verify_and_free(w, p))
					break;
			}
		} else {
			if (!verify_and_free(w, mine[k]))
				break;
			mine[k] = NULL;
		}
	}
	for (unsigned k = 0; k < LOCAL; k++)
		if (mine[k] && !w->error)
			verify_and_free(w, mine[k]);
	return NULL;
}

TestSuite(threads, .init = mp_api_load);

Test(threads, cross_thread_handoff_keeps_contents, .timeout = 60)
{
	struct worker w[THREADS];
	struct magpage_stats s0 = mp_stats();

	deadline = now_s() + DEADLINE_S;
	for (unsigned i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].id = i;
		cr_assert_eq(pthread_create(&w[i].tid, NULL, work, &w[i]), 0);
	}
	uint64_t handed = 0, taken = 0, verified = 0;
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(w[i].tid, NULL);
		cr_assert_null(w[i].error, "thread %u: %s (block %p, word %zu)", i, w[i].error,
			       w[i].bad, w[i].bad_word);
		handed += w[i].handed;
		taken += w[i].taken;
		verified += w[i].verified;
	}
	for (void *p; (p = ring_get());) {
		cr_assert_eq(block_check(p), 0, "block %p in the ring changed", p);
		free(p);
	}
	cr_assert_gt(handed, ITERS / 4, "only %lu blocks changed threads", (unsigned long)handed);
	cr_assert_gt(taken, ITERS / 4);
	cr_assert_gt(verified, ITERS);

	struct magpage_stats s1 = mp_stats();
	cr_assert_eq(s1.held_pages, s0.held_pages, "held pages %lu before, %lu after",
		     (unsigned long)s0.held_pages, (unsigned long)s1.held_pages);
	cr_assert_eq(s1.invalid_frees, s0.invalid_frees);
}
