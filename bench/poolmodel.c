/*
 * poolmodel.c — how much memory per-size pools hold on bench_xthread's
 * random pattern, against one pool for every size (docs/results/issue9/
 * session9.md).  A model, not a benchmark: it allocates nothing it
 * measures.
 *
 *   build/bench/bench_poolmodel HORIZON OPS [FOLD]
 *
 * The pattern, as bench/xthread.c -m random -t 1 runs it: 256 slots, each
 * step replaces a random slot's block with a new one of 1..16 pages (one
 * in four a page-plus-header size of 1..15 pages, which takes one page
 * more from 4 pages on and goes to glibc below that, counted as 0 pages).
 *
 * A pool that gives back only what it did not use within the last HORIZON
 * steps (the depot's decay, every cache_decay_ms: 80 ms, about 400,000
 * steps at 5 M/s; 20 ms, as the zone's purge delay, until session 18)
 * holds, for each size, the most blocks of that size live at any step of
 * the horizon.  Per-size pools (the page caches' classes) hold the
 * sum over sizes of those maxima; one pool for every size (a coalescing
 * allocator) holds the maximum of the sum.  Printed: the mean and the peak
 * over the run of live + pooled pages, both ways, in pages and MiB.
 * FOLD 1 rounds 9..16-page blocks up to an even count, FOLD 2 to 12 or 16
 * (fewer, coarser classes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define SLOTS 256
#define SIZES 18        /* pages 0 (glibc) .. 17 */

static uint64_t state = 88172645463325252ull;

static uint64_t rnd(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

static int fold;

static int pages_of(uint64_t r)
{
	int header = (r & 3) == 0;
	int k = 1 + (int)((rnd() >> 8) % (header ? 15 : 16));
	int p = header ? (k >= 4 ? k + 1 : 0) : k;
	if (fold == 1 && p > 8)
		p = (p + 1) & ~1;
	else if (fold == 2 && p > 8)
		p = p <= 12 ? 12 : 16;
	return p;
}

/* A sliding-window maximum: a deque of (step, value), values falling. */
struct window {
	long *step, *val;
	long head, tail;
};

static long window_push(struct window *w, long t, long v, long horizon)
{
	while (w->tail > w->head && w->val[w->tail - 1] <= v)
		w->tail--;
	w->step[w->tail] = t;
	w->val[w->tail++] = v;
	while (w->step[w->head] <= t - horizon)
		w->head++;
	return w->val[w->head];
}

static void window_init(struct window *w, long n)
{
	w->step = malloc(n * sizeof(long));
	w->val = malloc(n * sizeof(long));
	w->head = w->tail = 0;
	if (!w->step || !w->val) {
		perror("malloc");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3 || argv[1][0] == '-') {
		bool help = argc > 1 && strcmp(argv[1], "--help") == 0;
		fprintf(help ? stdout : stderr,
			"usage: %s HORIZON OPS [FOLD]\n"
			"  live + pooled pages of bench_xthread -m random -t 1's pattern over\n"
			"  OPS steps, with pools that keep what they used in the last\n"
			"  HORIZON steps: per size, and one for every size; FOLD 1 rounds\n"
			"  9..16 pages up to even counts, FOLD 2 to 12 or 16\n", argv[0]);
		return help ? 0 : 2;
	}
	long horizon = atol(argv[1]), n = atol(argv[2]);
	fold = argc > 3 ? atoi(argv[3]) : 0;
	if (horizon < 1 || n <= horizon) {
		fprintf(stderr, "poolmodel: need 1 <= HORIZON < OPS\n");
		return 2;
	}
	int slot[SLOTS];
	long live[SIZES] = { 0 }, total = 0;
	struct window per[SIZES], all;
	for (int s = 0; s < SIZES; s++)
		window_init(&per[s], n);
	window_init(&all, n);
	for (int i = 0; i < SLOTS; i++) {
		slot[i] = pages_of(rnd());
		live[slot[i]]++;
		total += slot[i];
	}
	double sum_per = 0, sum_all = 0;
	long peak_per = 0, peak_all = 0;
	for (long t = 0; t < n; t++) {
		uint64_t r = rnd();
		int i = (int)((r >> 32) % SLOTS);
		live[slot[i]]--;
		total -= slot[i];
		slot[i] = pages_of(r);
		live[slot[i]]++;
		total += slot[i];
		long pooled = 0;
		for (int s = 1; s < SIZES; s++)
			pooled += window_push(&per[s], t, live[s], horizon) * s;
		long one = window_push(&all, t, total, horizon);
		if (t < horizon)
			continue;
		sum_per += pooled;
		sum_all += one;
		if (pooled > peak_per)
			peak_per = pooled;
		if (one > peak_all)
			peak_all = one;
	}
	long m = n - horizon;
	printf("horizon %ld steps, fold %d: live + pooled pages: per size mean %.0f peak %ld "
	       "(%.1f MiB); one pool mean %.0f peak %ld (%.1f MiB); live now %ld pages\n",
	       horizon, fold, sum_per / m, peak_per, peak_per / 256.0, sum_all / m, peak_all,
	       peak_all / 256.0, total);
	return 0;
}
