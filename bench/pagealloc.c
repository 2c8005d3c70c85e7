/*
 * pagealloc — the 2013 RFC's "pagealloc" microbenchmark, in user space.
 *
 * The kernel version (mmtests, config-global-dhp__pagealloc-performance)
 * timed with rdtsc the allocation of a batch of pages and then their
 * freeing, 10 outer x 100 inner iterations per batch size, and reported
 * TSC cycles per page.  Here a "page" is a malloc(S) block: the program
 * only calls malloc/free, so it measures whichever allocator is preloaded
 * (LD_PRELOAD=libmagpage.so, libjemalloc.so.2, ... or none for glibc).
 *
 *   -b LIST    batch sizes, e.g. 1,64,4096 (default 1,2,4..16384, capped
 *              like the RFC at batch x size < 128 MiB)
 *   -t T       threads, thread i pinned to the (i % nproc)-th allowed CPU
 *   -s SIZE    block size, suffixes k/m/g (default 4096)
 *   -r R       outer samples (default 10)
 *   -i I       inner iterations per sample (default 100; reduced for big
 *              batches so that one sample stays under ~50 ms)
 *   -p SIZE,N  before anything, each thread allocates N blocks of SIZE,
 *              touches and frees them (untimed): a program that moves from
 *              one block size to another (-p 64k,1000 -s 48k: a cache
 *              that lends its idle 64 KiB blocks to 48 KiB requests)
 *   -m MODE    local (default): each thread allocates and frees its batch;
 *              remote: threads pair up (0,1), (2,3)...; the first allocates
 *              a batch, hands it over, the second frees it — the RFC's
 *              cross-CPU free, where cache lines and cached pages bounce.
 *
 * Differences from the 2013 run, on purpose: a batch is exactly n blocks
 * (the kernel module allocated n+1, inflating batch 1 by 2x); every block
 * is touched between the two timed loops (so first-touch faults are not
 * timed, unless the allocator itself writes into fresh memory, as glibc's
 * chunk headers do); two untimed warm-up iterations precede each batch and
 * one untimed checked iteration precedes each sample.  The cost of the two
 * counter reads (printed in the header) is included, divided by n.  Each
 * timed loop starts after a random wait (bench_dither): where the counter
 * moves in steps (24 or 25 cycles on this project's Zen VM), a loop started
 * at a fixed phase of a step reads whole steps, and batch 1's cycles came
 * out a step more or less depending on the code's layout; started at a
 * random phase, they average to the loop's real length.
 *
 * Output: '#' lines (parameters, column names, checksum), then one CSV line
 * per batch.  Each value is a trimmed mean over the R samples dropping the
 * single largest (mmtests' calc_trimoutlier_mean), computed separately for
 * alloc, free and total; the stddevs are over the kept samples.  With T > 1
 * a sample is the mean over threads (remote: over pairs) of their
 * per-block cycles.
 *
 * This is a benchmark, not a test: it never judges the times.  It does
 * check the allocator's answers — a distinct pattern at both ends of every
 * block, checked before the free, and a sort-based overlap check of each
 * batch — and exits 1 loudly on NULL, misalignment, overlap or corruption.
 * Its own bookkeeping comes from mmap, never from the allocator measured.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BATCHES     64
#define SAMPLE_BUDGET_S 0.050           /* one outer sample stays under this */
#define RFC_BATCH_BYTES (128u << 20)    /* default list: batch x size below */

enum mode { MODE_LOCAL, MODE_REMOTE };
enum role { ROLE_LOCAL, ROLE_PRODUCER, ROLE_CONSUMER };

static struct {
	size_t batch[MAX_BATCHES];
	int nbatch;
	int threads;
	size_t size;
	int outer;
	int inner;
	enum mode mode;
	size_t prior_size, prior_n;     /* -p: the untimed phase before */
} opt = { .threads = 1, .size = 4096, .outer = 10, .inner = 100 };

static double tsc_hz;
static struct bench_barrier barrier;    /* all worker threads */

/* ------------------------------------------------------ block checking */

/* A distinct 64-bit value per (thread, iteration, block); never 0. */
static inline uint64_t block_tag(uint64_t seq, size_t j)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15u + j + 1;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9u;
	x ^= x >> 29;
	return x | 1;
}

/* Touches the block: its tag at the start, the tag's complement at the end. */
static inline void block_write(char *p, uint64_t tag)
{
	uint64_t inv = ~tag;

	memcpy(p, &tag, sizeof(tag));
	memcpy(p + opt.size - sizeof(inv), &inv, sizeof(inv));
}

static void check_batch_shape(void **p, size_t n, uint64_t seq);

/* Verifies one block's ends; returns a value for the checksum. */
static inline uint64_t block_verify(void **p, size_t n, size_t j, uint64_t tag)
{
	uint64_t head, tail;

	memcpy(&head, p[j], sizeof(head));
	memcpy(&tail, (char *)p[j] + opt.size - sizeof(tail), sizeof(tail));
	if (head != tag || tail != ~tag) {
		check_batch_shape(p, n, 0);     /* name the overlap if there is one */
		bench_die("block %zu of a batch of %zu at %p was corrupted while "
			  "live: head %016llx (want %016llx), tail %016llx "
			  "(want %016llx)", j, n, p[j], (unsigned long long)head,
			  (unsigned long long)tag, (unsigned long long)tail,
			  (unsigned long long)~tag);
	}
	return head * 3 + tail;
}

static _Thread_local uintptr_t *sort_scratch;

/*
 * No NULL, malloc's 16-byte alignment, no two blocks of the batch
 * overlapping.  seq is the batch's tag seed: thread << 40 | iteration.
 */
static void check_batch_shape(void **p, size_t n, uint64_t seq)
{
	uintptr_t *a = sort_scratch;

	for (size_t j = 0; j < n; j++) {
		if (!p[j])
			bench_die("malloc(%zu) returned NULL (thread %llu, "
				  "iteration %llu, block %zu of %zu)", opt.size,
				  (unsigned long long)(seq >> 40),
				  (unsigned long long)(seq & ((1ull << 40) - 1)),
				  j, n);
		if ((uintptr_t)p[j] % 16)
			bench_die("malloc(%zu) returned %p, not 16-byte aligned",
				  opt.size, p[j]);
		a[j] = (uintptr_t)p[j];
	}
	bench_sort_addrs(a, n);
	for (size_t j = 1; j < n; j++)
		if (a[j - 1] + opt.size > a[j])
			bench_die("malloc(%zu) returned overlapping live blocks "
				  "%p and %p (batch of %zu)", opt.size,
				  (void *)a[j - 1], (void *)a[j], n);
}

/* ------------------------------------------------------------- workers */

/* One batch in flight from a producer to its consumer (remote mode). */
struct slot {
	_Alignas(CACHELINE) _Atomic unsigned full;  /* 1: ptrs[] hold a batch */
	uint64_t seq;                               /* tag seed of that batch */
	void **ptrs;                                /* n blocks, bench_map'd */
};

struct worker {
	_Alignas(CACHELINE) int id; /* thread index */
	int cpu;                    /* CPU it is pinned to */
	enum role role;
	struct slot *slots;         /* remote: the pair's two slots */
	void **ptrs;                /* local: the batch being timed */
	uintptr_t *scratch;         /* overlap check's sort buffer */
	double *alloc_cpb;          /* per sample: cycles per block, alloc */
	double *free_cpb;           /* per sample: cycles per block, free */
	uint64_t warm_cycles;       /* cost of one warm-up iteration */
	uint64_t seq;               /* iterations run, seeds the tags */
	uint64_t checksum;          /* sum of patterns read back: defeats DCE */
	uint64_t rng;               /* bench_dither's state */
	pthread_t tid;
};

static struct worker *workers;
static int sample_inner[MAX_BATCHES];   /* inner iterations actually used */

/*
 * Two kinds of iteration.  A timed one runs bare malloc and free loops
 * between the cycle reads; the blocks get their patterns, the shape check
 * and the verification in between, which catches overlaps within the batch
 * and damage done by other threads' allocator calls.  A checked one (the
 * warm-ups, and one untimed iteration before each sample) writes each
 * block's pattern right after its malloc and verifies each block right
 * before its free, so it also catches an allocator that scribbles on live
 * blocks from inside its own malloc or free.
 */

/* Local: time n mallocs, touch, verify, time n frees.  Adds to sums. */
static void iter_local(struct worker *w, size_t n, int checked,
		       uint64_t *a_sum, uint64_t *f_sum)
{
	void **p = w->ptrs;
	uint64_t seq = ((uint64_t)w->id << 40) | w->seq++;
	uint64_t t0, t1, t2, t3;

	if (checked) {
		for (size_t j = 0; j < n; j++) {
			if (!(p[j] = malloc(opt.size)))
				check_batch_shape(p, j + 1, seq);   /* dies */
			block_write(p[j], block_tag(seq, j));
		}
		check_batch_shape(p, n, seq);
		for (size_t j = 0; j < n; j++) {
			w->checksum += block_verify(p, n, j, block_tag(seq, j));
			free(p[j]);
		}
		return;
	}

	bench_dither(&w->rng);
	t0 = bench_cycles();
	for (size_t j = 0; j < n; j++)
		p[j] = malloc(opt.size);
	t1 = bench_cycles();

	check_batch_shape(p, n, seq);
	for (size_t j = 0; j < n; j++)
		block_write(p[j], block_tag(seq, j));
	for (size_t j = 0; j < n; j++)
		w->checksum += block_verify(p, n, j, block_tag(seq, j));

	bench_dither(&w->rng);
	t2 = bench_cycles();
	for (size_t j = 0; j < n; j++)
		free(p[j]);
	t3 = bench_cycles();

	*a_sum += t1 - t0;
	*f_sum += t3 - t2;
}

/* Remote producer: fill the next free slot and hand it over. */
static void iter_produce(struct worker *w, size_t n, int checked,
			 uint64_t *a_sum)
{
	struct slot *s = &w->slots[w->seq & 1];
	uint64_t seq = ((uint64_t)w->id << 40) | w->seq++;
	uint64_t t0, t1;

	bench_wait_eq(&s->full, 0);
	if (checked) {
		for (size_t j = 0; j < n; j++) {
			if (!(s->ptrs[j] = malloc(opt.size)))
				check_batch_shape(s->ptrs, j + 1, seq);
			block_write(s->ptrs[j], block_tag(seq, j));
		}
		check_batch_shape(s->ptrs, n, seq);
	} else {
		bench_dither(&w->rng);
		t0 = bench_cycles();
		for (size_t j = 0; j < n; j++)
			s->ptrs[j] = malloc(opt.size);
		t1 = bench_cycles();
		*a_sum += t1 - t0;
		check_batch_shape(s->ptrs, n, seq);
		for (size_t j = 0; j < n; j++)
			block_write(s->ptrs[j], block_tag(seq, j));
	}
	s->seq = seq;
	atomic_store_explicit(&s->full, 1, memory_order_release);
}

/* Remote consumer: take the next full slot, verify, free it. */
static void iter_consume(struct worker *w, size_t n, int checked,
			 uint64_t *f_sum)
{
	struct slot *s = &w->slots[w->seq++ & 1];
	uint64_t t0, t1;

	bench_wait_eq(&s->full, 1);
	if (checked) {
		for (size_t j = 0; j < n; j++) {
			w->checksum += block_verify(s->ptrs, n, j,
						    block_tag(s->seq, j));
			free(s->ptrs[j]);
		}
	} else {
		for (size_t j = 0; j < n; j++)
			w->checksum += block_verify(s->ptrs, n, j,
						    block_tag(s->seq, j));
		bench_dither(&w->rng);
		t0 = bench_cycles();
		for (size_t j = 0; j < n; j++)
			free(s->ptrs[j]);
		t1 = bench_cycles();
		*f_sum += t1 - t0;
	}
	atomic_store_explicit(&s->full, 0, memory_order_release);
}

/* Producer and consumer run the same counts, so their slots stay paired. */
static void run_iters(struct worker *w, size_t n, int iters, int checked,
		      uint64_t *a_sum, uint64_t *f_sum)
{
	for (int i = 0; i < iters; i++) {
		switch (w->role) {
		case ROLE_LOCAL:
			iter_local(w, n, checked, a_sum, f_sum);
			break;
		case ROLE_PRODUCER:
			iter_produce(w, n, checked, a_sum);
			break;
		case ROLE_CONSUMER:
			iter_consume(w, n, checked, f_sum);
			break;
		}
	}
}

/* Thread 0, between barriers: fold the threads' samples into one line. */
static void report_batch(size_t n)
{
	int R = opt.outer, T = opt.threads;
	double *a = bench_map(3 * R * sizeof(double)), *f = a + R, *t = f + R;
	double am, asd, fm, fsd, tm, tsd;
	int units = opt.mode == MODE_REMOTE ? T / 2 : T;

	for (int r = 0; r < R; r++) {
		double as = 0, fs = 0;

		for (int i = 0; i < T; i++) {
			/* A producer's free_cpb and a consumer's alloc_cpb are 0. */
			as += workers[i].alloc_cpb[r];
			fs += workers[i].free_cpb[r];
		}
		a[r] = as / units;
		f[r] = fs / units;
		t[r] = a[r] + f[r];
	}
	bench_trimmed_mean(a, R, &am, &asd);
	bench_trimmed_mean(f, R, &fm, &fsd);
	bench_trimmed_mean(t, R, &tm, &tsd);
	printf("%zu,%d,%zu,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f\n", n, T, opt.size,
	       am, fm, tm, tm * 1e9 / tsc_hz, asd, fsd);
	fflush(stdout);
	bench_unmap(a, 3 * R * sizeof(double));
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		bench_die("thread %d: sched_setaffinity(cpu %d): %s", w->id, w->cpu,
		    strerror(errno));
	sort_scratch = w->scratch;
	if (opt.prior_n) {
		void **p = bench_map(opt.prior_n * sizeof(*p));
		for (size_t j = 0; j < opt.prior_n; j++) {
			if (!(p[j] = malloc(opt.prior_size)))
				bench_die("-p: malloc(%zu) failed", opt.prior_size);
			memset(p[j], 0x5a, opt.prior_size);
		}
		for (size_t j = 0; j < opt.prior_n; j++)
			free(p[j]);
		bench_unmap(p, opt.prior_n * sizeof(*p));
	}

	for (int b = 0; b < opt.nbatch; b++) {
		size_t n = opt.batch[b];
		uint64_t a_sum = 0, f_sum = 0, t0, worst = 0;
		int inner;

		/* Warm-up, checked: the first iteration faults memory in, the
		 * second (timed as a whole) tells what an iteration costs. */
		bench_barrier_wait(&barrier);
		run_iters(w, n, 1, 1, &a_sum, &f_sum);
		t0 = bench_cycles();
		run_iters(w, n, 1, 0, &a_sum, &f_sum);
		w->warm_cycles = bench_cycles() - t0;
		bench_barrier_wait(&barrier);
		for (int i = 0; i < opt.threads; i++)
			if (workers[i].warm_cycles > worst)
				worst = workers[i].warm_cycles;
		inner = (int)(SAMPLE_BUDGET_S * tsc_hz / (double)(worst ? worst : 1));
		inner = inner < 1 ? 1 : inner > opt.inner ? opt.inner : inner;

		for (int r = 0; r < opt.outer; r++) {
			bench_barrier_wait(&barrier);
			a_sum = f_sum = 0;
			run_iters(w, n, 1, 1, &a_sum, &f_sum);
			run_iters(w, n, inner, 0, &a_sum, &f_sum);
			w->alloc_cpb[r] = (double)a_sum / ((double)inner * n);
			w->free_cpb[r] = (double)f_sum / ((double)inner * n);
		}
		bench_barrier_wait(&barrier);
		if (w->id == 0) {
			sample_inner[b] = inner;
			report_batch(n);
		}
	}
	return NULL;
}

/* --------------------------------------------------------------- setup */

static void parse_batches(char *list)
{
	opt.nbatch = 0;
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		if (opt.nbatch == MAX_BATCHES)
			bench_die("at most %d batch sizes", MAX_BATCHES);
		opt.batch[opt.nbatch] = bench_parse_size(tok, "batch");
		if (!opt.batch[opt.nbatch])
			bench_die("batch sizes start at 1");
		opt.nbatch++;
	}
	if (!opt.nbatch)
		bench_die("-b needs a list such as 1,64,4096");
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-b 1,2,..] [-t threads] [-s size] [-r outer] "
		"[-i inner] [-p size,n] [-m local|remote]\n"
		"Run it under the allocator to measure: "
		"LD_PRELOAD=/path/liballoc.so %s ...\n", argv0, argv0);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "b:t:s:r:i:p:m:h")) != -1) {
		switch (c) {
		case 'b': parse_batches(optarg); break;
		case 't': opt.threads = atoi(optarg); break;
		case 's': opt.size = bench_parse_size(optarg, "size"); break;
		case 'r': opt.outer = atoi(optarg); break;
		case 'i': opt.inner = atoi(optarg); break;
		case 'p': {
			const char *comma = strchr(optarg, ',');
			char sz[64];
			if (!comma || (size_t)(comma - optarg) >= sizeof(sz))
				bench_die("-p takes SIZE,N (e.g. 64k,1000), not '%s'", optarg);
			memcpy(sz, optarg, (size_t)(comma - optarg));
			sz[comma - optarg] = '\0';
			opt.prior_size = bench_parse_size(sz, "-p size");
			opt.prior_n = strtoul(comma + 1, NULL, 10);
			if (!opt.prior_size || !opt.prior_n || opt.prior_n > 1000000)
				bench_die("-p takes SIZE,N with N from 1 to 1000000, not '%s'",
					  optarg);
			break;
		}
		case 'm':
			if (!strcmp(optarg, "local"))
				opt.mode = MODE_LOCAL;
			else if (!strcmp(optarg, "remote"))
				opt.mode = MODE_REMOTE;
			else
				bench_die("-m takes local or remote, not '%s'", optarg);
			break;
		default: usage(argv[0]);
		}
	}
	if (optind != argc)
		usage(argv[0]);
	if (opt.threads < 1 || opt.threads > 1024)
		bench_die("-t takes 1..1024 threads");
	if (opt.mode == MODE_REMOTE && opt.threads % 2)
		bench_die("-m remote pairs threads up: -t must be even (2, 4, ...)");
	if (opt.outer < 1 || opt.inner < 1)
		bench_die("-r and -i take a positive count");
	if (opt.size < 16)
		bench_die("-s must be at least 16 bytes (both ends carry a pattern)");
	if (!opt.nbatch) {
		/* The RFC's list: doubling while batch x 4 KiB < 128 MiB. */
		for (size_t n = 1; n <= 16384 && n * opt.size < RFC_BATCH_BYTES; n *= 2)
			opt.batch[opt.nbatch++] = n;
		if (!opt.nbatch)
			opt.batch[opt.nbatch++] = 1;
	}
}

int main(int argc, char **argv)
{
	size_t maxn = 0, live;
	struct slot *slots;
	uint64_t checksum = 0;
	int nproc = 1;
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	const char *pre = getenv("LD_PRELOAD"), *conf = getenv("MAGPAGE_CONF");

	bench_name = "pagealloc";
	parse_args(argc, argv);
	barrier.parties = (unsigned)opt.threads;
	for (int b = 0; b < opt.nbatch; b++)
		if (opt.batch[b] > maxn)
			maxn = opt.batch[b];
	/* Remote pairs hold up to two batches: T/2 pairs x 2n = T x n blocks. */
	live = (size_t)opt.threads * maxn * opt.size;
	if (pages > 0 && psz > 0 && live / 2 > (size_t)pages * (size_t)psz / 4)
		bench_die("threads x batch x size = %zu MiB live at once is more "
			  "than half of RAM; use smaller -b, -s or -t", live >> 20);

	tsc_hz = bench_tsc_hz();
	workers = bench_map(opt.threads * sizeof(*workers));
	slots = bench_map(opt.threads * sizeof(*slots));
	for (int i = 0; i < opt.threads; i++) {
		struct worker *w = &workers[i];

		w->id = i;
		w->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
		w->cpu = bench_nth_cpu(i, &nproc);
		w->scratch = bench_map(maxn * sizeof(uintptr_t));
		w->alloc_cpb = bench_map(2 * opt.outer * sizeof(double));
		w->free_cpb = w->alloc_cpb + opt.outer;
		if (opt.mode == MODE_LOCAL) {
			w->role = ROLE_LOCAL;
			w->ptrs = bench_map(maxn * sizeof(void *));
		} else {
			/* Pair (2k, 2k+1) shares slots[2k], slots[2k+1]. */
			w->role = i % 2 ? ROLE_CONSUMER : ROLE_PRODUCER;
			w->slots = &slots[i & ~1];
			slots[i].ptrs = bench_map(maxn * sizeof(void *));
		}
	}

	printf("# pagealloc mode=%s threads=%d cpus=%d size=%zu outer=%d "
	       "inner=%d (cut per batch to keep a sample under %.0f ms) "
	       "tsc_hz=%.0f preload=%s magpage_conf=%s | unit: TSC cycles per "
	       "block (rdtsc, lfence-serialised; the timer's own %llu cycles per "
	       "loop are included, /n; two reads in a row differ by %llu or more, "
	       "the counter's step where it moves in steps, so each timed loop "
	       "starts after a random 1..512-cycle wait), exactly n "
	       "blocks per batch | "
	       "summary: trimmed mean of %d samples dropping the single largest "
	       "(mmtests calc_trimoutlier_mean), stddev over the kept samples\n",
	       opt.mode == MODE_REMOTE ? "remote" : "local", opt.threads, nproc,
	       opt.size, opt.outer, opt.inner, SAMPLE_BUDGET_S * 1e3, tsc_hz,
	       pre && *pre ? pre : "none", conf && *conf ? conf : "unset",
	       (unsigned long long)bench_timer_overhead(),
	       (unsigned long long)bench_tsc_step(), opt.outer);
	if (opt.prior_n)
		printf("# prior: each thread allocated, touched and freed %zu blocks of %zu bytes "
		       "first (-p)\n", opt.prior_n, opt.prior_size);
	printf("# batch,threads,size,alloc_cycles,free_cycles,total_cycles,"
	       "total_ns,alloc_stddev,free_stddev\n");
	fflush(stdout);

	for (int i = 0; i < opt.threads; i++)
		if ((errno = pthread_create(&workers[i].tid, NULL, worker_main,
					    &workers[i])))
			bench_die("pthread_create: %s", strerror(errno));
	for (int i = 0; i < opt.threads; i++) {
		pthread_join(workers[i].tid, NULL);
		checksum += workers[i].checksum;
	}

	printf("# inner iterations used per batch:");
	for (int b = 0; b < opt.nbatch; b++)
		printf(" %zu:%d", opt.batch[b], sample_inner[b]);
	printf("\n# checksum=%016llx (all blocks verified)\n",
	       (unsigned long long)checksum);
	return 0;
}
