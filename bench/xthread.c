/*
 * xthread — page-sized blocks that cross threads (issue 9's three
 * cross-thread patterns), under whatever allocator is preloaded.
 *
 *   -m server    T workers, each in a loop: free what other workers handed
 *                it (up to -D blocks from its inbound queue), allocate a
 *                random 4-16 KiB block (page multiples; 1 in 8 a
 *                page-plus-header size, k pages + 8..64 bytes), touch it,
 *                and hand it (-x percent, default 90) to another worker's
 *                queue, to be freed there — a request passed to a response
 *                thread; the rest replace a random one of -k blocks the
 *                worker keeps (its connections' state).  A full queue makes
 *                the sender wait, freeing its own inbound blocks
 *                meanwhile.  One op: one malloc (its free comes later,
 *                here or on the receiver).
 *   -m prodcons  T - T/2 producers allocate -s byte objects (default 4 KiB),
 *                touch them and push them into one shared queue; T/2
 *                consumers pop, check and free them (T >= 2).  A producer
 *                facing a full queue spins.  One op: one object produced
 *                and consumed.
 *   -m random    each worker keeps -k slots (filled before the clock
 *                starts); each step picks a random slot, frees what is
 *                there — or, -x percent of the time (default 10), hands it
 *                to another worker's queue to be freed there — and
 *                allocates a random 4-64 KiB block into it (page multiples;
 *                1 in 4 a page-plus-header size).  Workers also free what
 *                they were handed.  One op: one slot replaced.
 *
 * Common options: -t T threads (worker i pinned to the i-th allowed CPU
 * unless -u), -d SECONDS of timed running (default 1), -q queue capacity
 * (blocks, a power of two; default server 256, prodcons 1024, random 64),
 * -S seed.  The capacities keep the blocks in flight to a few MiB (about
 * 2.5, 4 and 2 MiB per queue), so that a receiver that loses its CPU for a
 * while (a busy machine) makes the sender wait rather than the requested
 * memory grow by an amount that depends on the allocator's speed: peak RSS
 * then compares allocators on about the same live memory.  The queues are
 * Dmitry Vyukov's bounded MPMC ring (a sequence number per cell, one CAS
 * per push or pop), allocated with mmap like all of this program's
 * bookkeeping: only the measured blocks reach malloc.
 *
 * Output: '#' lines (parameters, column names, checksum) and one CSV line:
 *   mode,threads,seconds,ops,mops_per_s,maxrss_kib,live_peak_kib,minflt,handed_pct
 * mops_per_s is ops / seconds / 1e6; maxrss_kib the process's peak RSS
 * (VmHWM: ru_maxrss would also count the RSS of the parent it was forked
 * from, python's 20 MiB under compare.py; one mode per process, so the
 * modes do not mix); live_peak_kib the largest
 * number of requested bytes live at once, as sampled every 10 ms (what an
 * ideal allocator would need); minflt the minor page faults; handed_pct the
 * share of frees that happened on another thread than the malloc.
 *
 * This is a benchmark, not a test: it never judges the times.  It checks
 * the allocator's answers: NULL and 16-byte alignment at every malloc, and
 * a stamp unique to each block (its tag at the start of every page, the
 * tag's complement in its last 8 bytes) verified just before every free,
 * which catches blocks handed out twice, overlapping or scribbled on.  It
 * exits 1 loudly on any of them, and prints "all blocks verified" only
 * after every block it allocated was checked and freed.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#define PAGE            4096u
#define SAMPLE_NS       10000000u       /* live-bytes sampling period */
#define MAX_THREADS     256

enum mode { MODE_SERVER, MODE_PRODCONS, MODE_RANDOM };
static const char *const mode_name[] = { "server", "prodcons", "random" };

static struct {
	enum mode mode;
	int threads;
	double seconds;
	size_t queue;           /* cells per queue, a power of two */
	size_t keep;            /* -k: blocks kept per worker (server, random) */
	int handoff_pct;        /* -x: blocks handed to another worker */
	int drain;              /* -D: server: inbound blocks freed per step */
	size_t size;            /* -s: prodcons object size */
	uint64_t seed;
	int pin;
} opt = { .threads = 2, .seconds = 1.0, .queue = 0, .keep = 0,
	  .handoff_pct = -1, .drain = 4, .size = PAGE, .seed = 1, .pin = 1 };

/* ------------------------------------------------------------- blocks */

/* A block in flight or kept: where, how big, the tag its stamp carries. */
struct block {
	char *p;
	size_t size;
	uint64_t tag;
};

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9u;
	x ^= x >> 29;
	x *= 0x94d049bb133111ebu;
	return x ^ (x >> 32);
}

/* xorshift64*: cheap, and good enough to pick sizes and slots. */
static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1du;
}

/* The tag at the start of every page (xor the page's index), ~tag at the
 * end; a block shorter than a page plus 16 bytes has only the two ends. */
static inline void block_stamp(const struct block *b)
{
	uint64_t inv = ~b->tag;

	for (size_t off = 0, i = 0; off + 16 <= b->size; off += PAGE, i++) {
		uint64_t v = b->tag ^ i;

		memcpy(b->p + off, &v, sizeof(v));
	}
	memcpy(b->p + b->size - sizeof(inv), &inv, sizeof(inv));
}

/* Dies if the stamp is not intact; returns a value for the checksum. */
static inline uint64_t block_check(const struct block *b)
{
	uint64_t v = 0, inv;

	for (size_t off = 0, i = 0; off + 16 <= b->size; off += PAGE, i++) {
		memcpy(&v, b->p + off, sizeof(v));
		if (v != (b->tag ^ i))
			bench_die("block %p (%zu bytes) corrupted while live: word "
				  "at +%zu is %016llx, want %016llx (handed out "
				  "twice, overlapping another, or scribbled on)",
				  (void *)b->p, b->size, off, (unsigned long long)v,
				  (unsigned long long)(b->tag ^ i));
	}
	memcpy(&inv, b->p + b->size - sizeof(inv), sizeof(inv));
	if (inv != ~b->tag)
		bench_die("block %p (%zu bytes) corrupted while live: last word "
			  "%016llx, want %016llx", (void *)b->p, b->size,
			  (unsigned long long)inv, (unsigned long long)~b->tag);
	return v * 3 + inv;
}

/* ------------------------------------------------------------- queues */

/* Vyukov's bounded MPMC queue: cell i is free for the push at position p
 * when its seq == p, full for the pop at position p when seq == p + 1. */
struct cell {
	_Atomic size_t seq;
	struct block b;
};

struct queue {
	_Alignas(CACHELINE) _Atomic size_t push_pos;    /* next push */
	_Alignas(CACHELINE) _Atomic size_t pop_pos;     /* next pop */
	_Alignas(CACHELINE) struct cell *cells;         /* opt.queue of them */
	size_t mask;                                    /* opt.queue - 1 */
};

static void queue_init(struct queue *q, size_t cap)
{
	q->cells = bench_map(cap * sizeof(struct cell));
	q->mask = cap - 1;
	for (size_t i = 0; i < cap; i++)
		atomic_store_explicit(&q->cells[i].seq, i, memory_order_relaxed);
	atomic_store(&q->push_pos, 0);
	atomic_store(&q->pop_pos, 0);
}

/* Claims the next cell for a push (ready: seq == pos) or a pop (ready:
 * seq == pos + 1), advancing *pos_var; NULL when the queue is full or
 * empty.  *pos gets the position claimed. */
static struct cell *queue_claim(struct queue *q, _Atomic size_t *pos_var, size_t ready,
				size_t *pos_out)
{
	size_t pos = atomic_load_explicit(pos_var, memory_order_relaxed);

	for (;;) {
		struct cell *c = &q->cells[pos & q->mask];
		size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		intptr_t dif = (intptr_t)seq - (intptr_t)(pos + ready);

		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(pos_var, &pos, pos + 1,
					memory_order_relaxed, memory_order_relaxed)) {
				*pos_out = pos;
				return c;
			}
		} else if (dif < 0) {
			return NULL;
		} else {
			pos = atomic_load_explicit(pos_var, memory_order_relaxed);
		}
	}
}

/* Returns 0 when the queue is full. */
static int queue_push(struct queue *q, const struct block *b)
{
	size_t pos;
	struct cell *c = queue_claim(q, &q->push_pos, 0, &pos);

	if (!c)
		return 0;
	c->b = *b;
	atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
	return 1;
}

/* Returns 0 when the queue is empty. */
static int queue_pop(struct queue *q, struct block *b)
{
	size_t pos;
	struct cell *c = queue_claim(q, &q->pop_pos, 1, &pos);

	if (!c)
		return 0;
	*b = c->b;
	atomic_store_explicit(&c->seq, pos + q->mask + 1, memory_order_release);
	return 1;
}

/* ------------------------------------------------------------ workers */

struct worker {
	_Alignas(CACHELINE) int id;     /* worker index */
	int cpu;                        /* pinned CPU, or -1 */
	int producer;                   /* prodcons: 1 producer, 0 consumer */
	struct queue *inbox;            /* server, random: blocks to free here */
	struct block *kept;             /* server, random: opt.keep, bench_map'd */
	uint64_t rng;
	uint64_t seq;                   /* mallocs so far: seeds the tags */
	uint64_t ops;                   /* ops done before stop was seen */
	uint64_t frees;                 /* frees by this worker */
	uint64_t remote_frees;          /* ... of blocks another worker made */
	uint64_t checksum;              /* stamps read back: defeats DCE */
	_Atomic int64_t live;           /* bytes malloc'ed - bytes freed here,
					 * written by the owner only */
	pthread_t tid;
};

static struct worker *workers;
static struct queue *queues;                    /* one per worker, or one */
static struct bench_barrier start_barrier;      /* workers + main */
static struct bench_barrier end_barrier;        /* workers */
static _Alignas(CACHELINE) _Atomic unsigned stop;
static _Alignas(CACHELINE) _Atomic unsigned producers_done;
static int nproducers;

static inline void live_add(struct worker *w, int64_t d)
{
	atomic_store_explicit(&w->live, atomic_load_explicit(&w->live,
			      memory_order_relaxed) + d, memory_order_relaxed);
}

static inline int stopping(void)
{
	return atomic_load_explicit(&stop, memory_order_relaxed) != 0;
}

/* k pages, or (header) k pages plus 8..64 bytes. */
static inline size_t pageish(struct worker *w, unsigned max_pages, int header)
{
	uint64_t r = rnd(&w->rng);
	size_t k = 1 + (r >> 8) % max_pages;

	return header ? k * PAGE + 8 * (1 + (r & 7)) : k * PAGE;
}

static void block_new(struct worker *w, struct block *b, size_t size)
{
	b->size = size;
	b->tag = mix64(((uint64_t)w->id << 48) ^ w->seq++ ^ opt.seed << 56) | 1;
	b->p = malloc(size);
	if (!b->p)
		bench_die("malloc(%zu) returned NULL (worker %d)", size, w->id);
	if ((uintptr_t)b->p % 16)
		bench_die("malloc(%zu) returned %p, not 16-byte aligned", size,
			  (void *)b->p);
	block_stamp(b);
	live_add(w, (int64_t)size);
}

static void block_free(struct worker *w, const struct block *b, int remote)
{
	w->checksum += block_check(b);
	free(b->p);
	live_add(w, -(int64_t)b->size);
	w->frees++;
	w->remote_frees += remote;
}

/* The worker a block goes to: another one when there is another one. */
static inline struct queue *peer_inbox(struct worker *w, uint64_t r)
{
	int T = opt.threads;

	if (T == 1)
		return w->inbox;
	return workers[(w->id + 1 + (int)(r % (uint64_t)(T - 1))) % T].inbox;
}

static void drain_inbox(struct worker *w, int most)
{
	struct block b;

	for (int i = 0; (most < 0 || i < most) && queue_pop(w->inbox, &b); i++)
		block_free(w, &b, opt.threads > 1);
}

/*
 * Hands b to another worker; waits while that worker's queue is full (a
 * receiver that fell behind, or lost its CPU), freeing what this worker
 * was handed meanwhile so that two full queues cannot wait on each other.
 * Returns 0 (the caller frees b) only once stop is set.
 */
static int hand_off(struct worker *w, const struct block *b, uint64_t r)
{
	struct queue *q = peer_inbox(w, r);
	unsigned spins = 0;

	while (!queue_push(q, b)) {
		drain_inbox(w, -1);
		if (stopping())
			return 0;
		bench_relax();
		if (++spins % 256 == 0)
			sched_yield();
	}
	return 1;
}

/* After stop: wait until every worker has stopped pushing, then free what
 * is left here.  Untimed. */
static void finish_local(struct worker *w)
{
	bench_barrier_wait(&end_barrier);
	drain_inbox(w, -1);
	for (size_t i = 0; i < opt.keep; i++)
		if (w->kept[i].p)
			block_free(w, &w->kept[i], 0);
}

static void run_server(struct worker *w)
{
	while (!stopping()) {
		uint64_t r = rnd(&w->rng);
		struct block b;

		drain_inbox(w, opt.drain);
		/* 4..16 KiB, or 4..12 KiB plus a header: at most 16 KiB. */
		block_new(w, &b, (r & 7) ? pageish(w, 4, 0) : pageish(w, 3, 1));
		if ((int)((r >> 8) % 100) < opt.handoff_pct &&
		    hand_off(w, &b, r >> 16)) {
			w->ops++;
			continue;
		}
		struct block *slot = &w->kept[(r >> 32) % opt.keep];

		if (slot->p)
			block_free(w, slot, 0);
		*slot = b;
		w->ops++;
	}
	finish_local(w);
}

static void run_random(struct worker *w)
{
	for (size_t i = 0; i < opt.keep; i++) {   /* untimed: before the start */
		int header = rnd(&w->rng) % 4 == 0;

		block_new(w, &w->kept[i], pageish(w, header ? 15 : 16, header));
	}
	bench_barrier_wait(&start_barrier);
	while (!stopping()) {
		uint64_t r = rnd(&w->rng);
		struct block *slot = &w->kept[(r >> 32) % opt.keep];

		drain_inbox(w, opt.drain);
		if (!((int)((r >> 8) % 100) < opt.handoff_pct &&
		      hand_off(w, slot, r >> 16)))
			block_free(w, slot, 0);
		block_new(w, slot, pageish(w, (r & 3) ? 16 : 15, (r & 3) == 0));
		w->ops++;
	}
	finish_local(w);
}

static void run_producer(struct worker *w)
{
	unsigned spins = 0;

	while (!stopping()) {
		struct block b;

		block_new(w, &b, opt.size);
		while (!queue_push(queues, &b)) {
			bench_relax();
			if (++spins % 1024 == 0)
				sched_yield();
		}
	}
	atomic_fetch_add_explicit(&producers_done, 1, memory_order_release);
}

static void run_consumer(struct worker *w)
{
	unsigned spins = 0;
	struct block b;

	for (;;) {
		if (queue_pop(queues, &b)) {
			block_free(w, &b, 1);
			if (!stopping())
				w->ops++;
			continue;
		}
		if (atomic_load_explicit(&producers_done, memory_order_acquire) ==
		    (unsigned)nproducers) {
			while (queue_pop(queues, &b))
				block_free(w, &b, 1);
			return;
		}
		bench_relax();
		if (++spins % 1024 == 0)
			sched_yield();
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	if (w->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			bench_die("worker %d: sched_setaffinity(cpu %d): %s", w->id,
				  w->cpu, strerror(errno));
	}
	switch (opt.mode) {
	case MODE_SERVER:
		bench_barrier_wait(&start_barrier);
		run_server(w);
		break;
	case MODE_RANDOM:
		run_random(w);          /* fills its slots, then waits */
		break;
	case MODE_PRODCONS:
		bench_barrier_wait(&start_barrier);
		if (w->producer)
			run_producer(w);
		else
			run_consumer(w);
		break;
	}
	return NULL;
}

/* -------------------------------------------------------------- setup */

static void usage(const char *argv0, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s -m server|prodcons|random [-t threads] [-d seconds]\n"
		"       [-q queue] [-k kept] [-x handoff%%] [-D drain] [-s size]\n"
		"       [-S seed] [-u]\n"
		"  -m server    workers allocate random 4-16 KiB blocks and hand\n"
		"               -x%% (90) of them to other workers to free\n"
		"  -m prodcons  T-T/2 producers allocate -s (4k) objects, T/2\n"
		"               consumers free them, through one queue (T >= 2)\n"
		"  -m random    workers replace random ones of -k slots with\n"
		"               random 4-64 KiB blocks, -x%% (10) freed elsewhere\n"
		"  -t T         threads (default 2); -d timed seconds (default 1)\n"
		"  -q N         queue capacity, a power of two (default server\n"
		"               256, prodcons 1024, random 64)\n"
		"  -k N         blocks kept per worker (server 64, random 256)\n"
		"  -D N         inbound blocks freed per step (default 4)\n"
		"  -u           do not pin worker i to the i-th allowed CPU\n"
		"Prints one CSV line: mode,threads,seconds,ops,mops_per_s,"
		"maxrss_kib,\nlive_peak_kib,minflt,handed_pct.  Run it under the "
		"allocator to measure:\n  LD_PRELOAD=/path/liballoc.so %s -m "
		"server -t 2\n", argv0, argv0);
	exit(status);
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		bench_die("%s takes a whole number in %ld..%ld, not '%s'", what,
			  lo, hi, s);
	return v;
}

static void parse_args(int argc, char **argv)
{
	int c, have_mode = 0;
	char *end;

	while ((c = getopt(argc, argv, "m:t:d:q:k:x:D:s:S:uh")) != -1) {
		switch (c) {
		case 'm':
			for (have_mode = 0; have_mode < 3; have_mode++)
				if (!strcmp(optarg, mode_name[have_mode]))
					break;
			if (have_mode == 3)
				bench_die("-m takes server, prodcons or random, not "
					  "'%s'", optarg);
			opt.mode = (enum mode)have_mode;
			have_mode = 1;
			break;
		case 't':
			opt.threads = (int)parse_long(optarg, "-t", 1, MAX_THREADS);
			break;
		case 'd':
			errno = 0;
			opt.seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(opt.seconds > 0) ||
			    opt.seconds > 3600)
				bench_die("-d takes seconds in (0, 3600], not '%s'",
					  optarg);
			break;
		case 'q': opt.queue = bench_parse_size(optarg, "queue"); break;
		case 'k': opt.keep = bench_parse_size(optarg, "-k"); break;
		case 'x':
			opt.handoff_pct = (int)parse_long(optarg, "-x", 0, 100);
			break;
		case 'D':
			opt.drain = (int)parse_long(optarg, "-D", 1, 1 << 20);
			break;
		case 's': opt.size = bench_parse_size(optarg, "size"); break;
		case 'S':
			opt.seed = (uint64_t)parse_long(optarg, "-S", 0, 1L << 40);
			break;
		case 'u': opt.pin = 0; break;
		case 'h': usage(argv[0], 0); break;
		default: usage(argv[0], 2);
		}
	}
	if (optind != argc || !have_mode)
		usage(argv[0], 2);
	if (!opt.queue)
		opt.queue = opt.mode == MODE_SERVER ? 256 :
			    opt.mode == MODE_RANDOM ? 64 : 1024;
	if (opt.queue < 2 || (opt.queue & (opt.queue - 1)) || opt.queue > (1u << 24))
		bench_die("-q takes a power of two in 2..16M");
	if (opt.mode == MODE_PRODCONS && opt.threads < 2)
		bench_die("-m prodcons needs -t 2 or more (a producer and a consumer)");
	if (opt.size < 16)
		bench_die("-s must be at least 16 bytes (both ends carry a stamp)");
	if (!opt.keep)
		opt.keep = opt.mode == MODE_RANDOM ? 256 : 64;
	if (opt.keep > (1u << 20))
		bench_die("-k takes at most 1M blocks");
	if (opt.handoff_pct < 0)
		opt.handoff_pct = opt.mode == MODE_SERVER ? 90 : 10;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* VmHWM from /proc/self/status in KiB, read without stdio (which would
 * malloc); ru_maxrss where /proc is not mounted. */
static long peak_rss_kib(const struct rusage *ru)
{
	char buf[4096];
	ssize_t n, got = 0;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	const char *hwm;

	if (fd < 0)
		return ru->ru_maxrss;
	while (got < (ssize_t)sizeof(buf) - 1 &&
	       (n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = 0;
	hwm = strstr(buf, "VmHWM:");
	return hwm ? strtol(hwm + 6, NULL, 10) : ru->ru_maxrss;
}

static int64_t live_now(void)
{
	int64_t sum = 0;

	for (int i = 0; i < opt.threads; i++)
		sum += atomic_load_explicit(&workers[i].live, memory_order_relaxed);
	return sum;
}

int main(int argc, char **argv)
{
	int T, nproc = 1;
	uint64_t t0, t1, ops = 0, mallocs = 0, frees = 0, remote = 0, checksum = 0;
	int64_t live_peak = 0;
	struct rusage ru;
	const char *pre = getenv("LD_PRELOAD"), *conf = getenv("MAGPAGE_CONF");

	bench_name = "xthread";
	parse_args(argc, argv);
	T = opt.threads;
	nproducers = T - T / 2;
	workers = bench_map(T * sizeof(*workers));
	queues = bench_map((opt.mode == MODE_PRODCONS ? 1 : T) * sizeof(*queues));
	start_barrier.parties = (unsigned)T + 1;
	end_barrier.parties = (unsigned)T;
	for (int i = 0; i < T; i++) {
		struct worker *w = &workers[i];

		w->id = i;
		w->cpu = opt.pin ? bench_nth_cpu(i, &nproc) : -1;
		w->rng = mix64(opt.seed * 0x9e3779b97f4a7c15u + (uint64_t)i + 1) | 1;
		if (opt.mode == MODE_PRODCONS) {
			w->producer = i < nproducers;
		} else {
			queue_init(&queues[i], opt.queue);
			w->inbox = &queues[i];
			w->kept = bench_map(opt.keep * sizeof(struct block));
		}
	}
	if (opt.mode == MODE_PRODCONS)
		queue_init(queues, opt.queue);
	if (!opt.pin)
		bench_nth_cpu(0, &nproc);

	printf("# xthread mode=%s threads=%d cpus=%d seconds=%.3f queue=%zu "
	       "pinned=%d seed=%llu", mode_name[opt.mode], T, nproc, opt.seconds,
	       opt.queue, opt.pin, (unsigned long long)opt.seed);
	if (opt.mode == MODE_PRODCONS)
		printf(" producers=%d consumers=%d size=%zu | op: one object "
		       "allocated by a producer and freed by a consumer",
		       nproducers, T - nproducers, opt.size);
	else if (opt.mode == MODE_SERVER)
		printf(" kept=%zu handoff=%d%% drain=%d sizes=4-16KiB(1/8 +hdr) | "
		       "op: one malloc, freed here or by the worker it is handed to",
		       opt.keep, opt.handoff_pct, opt.drain);
	else
		printf(" kept=%zu handoff=%d%% drain=%d sizes=4-64KiB(1/4 +hdr) | "
		       "op: one slot replaced (a free here or elsewhere, a malloc)",
		       opt.keep, opt.handoff_pct, opt.drain);
	printf(" | preload=%s magpage_conf=%s\n", pre && *pre ? pre : "none",
	       conf && *conf ? conf : "unset");
	printf("# mode,threads,seconds,ops,mops_per_s,maxrss_kib,live_peak_kib,"
	       "minflt,handed_pct\n");
	fflush(stdout);

	for (int i = 0; i < T; i++)
		if ((errno = pthread_create(&workers[i].tid, NULL, worker_main,
					    &workers[i])))
			bench_die("pthread_create: %s", strerror(errno));
	bench_barrier_wait(&start_barrier);
	t0 = now_ns();
	do {
		struct timespec nap = { 0, SAMPLE_NS };
		int64_t live = live_now();

		if (live > live_peak)
			live_peak = live;
		nanosleep(&nap, NULL);
		t1 = now_ns();
	} while (t1 - t0 < (uint64_t)(opt.seconds * 1e9));
	atomic_store_explicit(&stop, 1, memory_order_relaxed);

	for (int i = 0; i < T; i++) {
		pthread_join(workers[i].tid, NULL);
		ops += workers[i].ops;
		mallocs += workers[i].seq;
		frees += workers[i].frees;
		remote += workers[i].remote_frees;
		checksum += workers[i].checksum;
	}
	if (mallocs != frees || live_now() != 0)
		bench_die("%llu mallocs, %llu frees, %lld bytes live after every "
			  "worker finished (a bookkeeping bug here)",
			  (unsigned long long)mallocs, (unsigned long long)frees,
			  (long long)live_now());
	getrusage(RUSAGE_SELF, &ru);
	printf("%s,%d,%.3f,%llu,%.3f,%ld,%lld,%ld,%.1f\n", mode_name[opt.mode], T,
	       (double)(t1 - t0) / 1e9, (unsigned long long)ops,
	       (double)ops / ((double)(t1 - t0) / 1e3), peak_rss_kib(&ru),
	       (long long)(live_peak >> 10), ru.ru_minflt,
	       frees ? 100.0 * (double)remote / (double)frees : 0.0);
	printf("# checksum=%016llx frees=%llu (all blocks verified)\n",
	       (unsigned long long)checksum, (unsigned long long)frees);
	return 0;
}
