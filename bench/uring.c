/*
 * uring — an io_uring workload whose page-sized I/O buffers are malloc'ed
 * by one thread and freed by another.
 *
 * A submitter thread mallocs a buffer per block, fills it with the block's
 * pattern and queues a write of it to a temporary file; a reaper thread,
 * pinned to another CPU, reaps the completions, checks the buffer still
 * holds its pattern and frees it.  Then the same for reads: the submitter
 * mallocs an empty buffer per block and queues a read into it, the reaper
 * checks the block's checksum and frees the buffer.  So every buffer is
 * allocated on one CPU and freed on the other, the remote-free case, at
 * the rate the ring sustains.  I/O is buffered (malloc gives no O_DIRECT
 * alignment), so it runs against the page cache; an untimed fdatasync
 * separates the phases.
 *
 *   -m BYTES   file size, i.e. bytes per phase (default 64m)
 *   -s SIZE    block (buffer) size (default 4096)
 *   -q DEPTH   most I/Os in flight (default 64)
 *   -b N       submit every N queued I/Os (default 8)
 *   -r R       iterations, each a write phase then a read phase (default 3)
 *   -d DIR     where the temporary file goes (default $TMPDIR or /tmp)
 *
 * Output: '#' lines, then one CSV line per phase per iteration: wall time
 * from the first submission to the last completion, MB/s (10^6 bytes),
 * and completion latency percentiles (submission to reaping, microseconds).
 *
 * Exit status: 0; 1 on a failed I/O, a short read or write, or a buffer
 * or block whose contents are wrong (loudly); 77 if the kernel refuses
 * io_uring (ENOSYS, EPERM: disabled by sysctl or seccomp).
 * Bookkeeping memory comes from mmap; only the buffers come from malloc.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LIBURING_VERSION                /* from pkg-config, by CMake */
#define LIBURING_VERSION "unknown"
#endif

static struct {
	size_t bytes;
	size_t size;
	unsigned depth;
	unsigned batch;
	int iters;
	const char *dir;
} opt = { .bytes = 64u << 20, .size = 4096, .depth = 64, .batch = 8,
	  .iters = 3 };

enum phase { PH_WRITE, PH_READ };

static struct io_uring ring;
static int fd;
static size_t nblocks;
static sem_t slots;             /* free places in the ring: depth - in flight */

/* Per block, bench_map'ed. */
static char **bufs;             /* the malloc'ed buffer in flight */
static uint64_t *sub_ns;        /* when its I/O was submitted */
static uint64_t *lat_ns;        /* submission to reaping */
static uint64_t *want_sum;      /* checksum of the block's pattern */

static enum phase cur_phase;
static int cur_iter;
static uint64_t last_done_ns;   /* reaper: when the phase's last I/O was reaped */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int k)
{
	cpu_set_t set;
	int nproc, cpu = bench_nth_cpu(k, &nproc);

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		bench_die("sched_setaffinity(cpu %d): %s", cpu, strerror(errno));
}

/* The pattern of block i in iteration it: xorshift words from a seed. */
static uint64_t fill_block(char *p, size_t i, int it)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15u ^ ((uint64_t)it << 56), sum = 0;
	size_t words = opt.size / 8;

	for (size_t w = 0; w < words; w++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(p + w * 8, &x, 8);
		sum = (sum ^ x) * 0x100000001b3u;
	}
	for (size_t b = words * 8; b < opt.size; b++)       /* odd sizes */
		p[b] = (char)(i + b), sum = (sum ^ (uint8_t)p[b]) * 0x100000001b3u;
	return sum;
}

static uint64_t block_sum(const char *p)
{
	uint64_t sum = 0, x;
	size_t words = opt.size / 8;

	for (size_t w = 0; w < words; w++) {
		memcpy(&x, p + w * 8, 8);
		sum = (sum ^ x) * 0x100000001b3u;
	}
	for (size_t b = words * 8; b < opt.size; b++)
		sum = (sum ^ (uint8_t)p[b]) * 0x100000001b3u;
	return sum;
}

/* ------------------------------------------------------------- reaper */

static void complete(size_t i, int res, uint64_t t)
{
	char *p = bufs[i];

	if (res < 0)
		bench_die("iteration %d: %s of block %zu failed: %s", cur_iter,
			  cur_phase == PH_WRITE ? "write" : "read", i,
			  strerror(-res));
	if ((size_t)res != opt.size)
		bench_die("iteration %d: short %s of block %zu: %d of %zu bytes",
			  cur_iter, cur_phase == PH_WRITE ? "write" : "read", i,
			  res, opt.size);
	/* Write: the buffer must still hold what was written from it.
	 * Read: the block must hold what the write phase put there. */
	if (block_sum(p) != want_sum[i])
		bench_die("iteration %d: %s buffer of block %zu at %p has the "
			  "wrong contents at completion (checksum %016llx, want "
			  "%016llx)%s", cur_iter,
			  cur_phase == PH_WRITE ? "write" : "read", i, (void *)p,
			  (unsigned long long)block_sum(p),
			  (unsigned long long)want_sum[i],
			  cur_phase == PH_WRITE ? ": corrupted while in flight"
						: ": the file or the buffer was corrupted");
	lat_ns[i] = t - sub_ns[i];
	free(p);
	bufs[i] = NULL;
	sem_post(&slots);
}

static void *reaper_main(void *arg)
{
	size_t done = 0;

	(void)arg;
	pin(1);
	while (done < nblocks) {
		struct io_uring_cqe *cqe, *cqes[64];
		int rc = io_uring_wait_cqe(&ring, &cqe);
		unsigned n;
		uint64_t t = now_ns();

		if (rc == -EINTR)
			continue;
		if (rc < 0)
			bench_die("io_uring_wait_cqe: %s", strerror(-rc));
		n = io_uring_peek_batch_cqe(&ring, cqes, 64);
		for (unsigned k = 0; k < n; k++)
			complete((size_t)io_uring_cqe_get_data64(cqes[k]),
				 cqes[k]->res, t);
		io_uring_cq_advance(&ring, n);
		done += n;
	}
	last_done_ns = now_ns();
	return NULL;
}

/* ---------------------------------------------------------- submitter */

static void submit_all(unsigned pending, size_t first)
{
	uint64_t t = now_ns();
	int rc;

	for (size_t j = first; j < first + pending; j++)
		sub_ns[j] = t;
	do
		rc = io_uring_submit(&ring);
	while (rc == -EINTR || rc == -EAGAIN);
	if (rc < 0)
		bench_die("io_uring_submit: %s", strerror(-rc));
}

/* One phase: queue every block, the reaper frees; returns wall seconds. */
static double run_phase(enum phase ph, int it)
{
	pthread_t reaper;
	unsigned pending = 0;
	size_t first = 0;
	uint64_t t0;

	cur_phase = ph;
	cur_iter = it;
	if ((errno = pthread_create(&reaper, NULL, reaper_main, NULL)))
		bench_die("pthread_create: %s", strerror(errno));

	t0 = now_ns();
	for (size_t i = 0; i < nblocks; i++) {
		struct io_uring_sqe *sqe;
		char *p;

		while (sem_wait(&slots))
			;
		p = malloc(opt.size);
		if (!p)
			bench_die("malloc(%zu) returned NULL (block %zu)", opt.size, i);
		bufs[i] = p;
		if (ph == PH_WRITE)
			want_sum[i] = fill_block(p, i, it);
		sqe = io_uring_get_sqe(&ring);
		if (!sqe)       /* the semaphore keeps the ring from filling */
			bench_die("no free submission entry with %u in flight",
				  opt.depth);
		if (ph == PH_WRITE)
			io_uring_prep_write(sqe, fd, p, (unsigned)opt.size,
					    (__u64)i * opt.size);
		else
			io_uring_prep_read(sqe, fd, p, (unsigned)opt.size,
					   (__u64)i * opt.size);
		io_uring_sqe_set_data64(sqe, i);
		if (++pending == opt.batch || i + 1 == nblocks) {
			submit_all(pending, first);
			first = i + 1;
			pending = 0;
		}
	}
	pthread_join(reaper, NULL);
	return (double)(last_done_ns - t0) / 1e9;
}

static double pct(const uint64_t *sorted, size_t n, double p)
{
	size_t k = (size_t)((double)(n - 1) * p / 100.0 + 0.5);

	return (double)sorted[k] / 1e3;
}

static void report(enum phase ph, int it, double wall)
{
	/* lat_ns is reused: sorting in place is fine once the phase is over. */
	bench_sort_addrs((uintptr_t *)lat_ns, nblocks);
	printf("%d,%s,%zu,%zu,%zu,%u,%u,%.4f,%.1f,%.2f,%.2f,%.2f,%.2f\n", it,
	       ph == PH_WRITE ? "write" : "read", nblocks, opt.size,
	       nblocks * opt.size, opt.depth, opt.batch, wall,
	       (double)(nblocks * opt.size) / wall / 1e6,
	       pct(lat_ns, nblocks, 50), pct(lat_ns, nblocks, 99),
	       pct(lat_ns, nblocks, 99.9), pct(lat_ns, nblocks, 100));
	fflush(stdout);
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-m bytes] [-s size] [-q depth] [-b batch] "
		"[-r iterations] [-d dir]\n"
		"Run it under the allocator to measure: "
		"LD_PRELOAD=/path/liballoc.so %s ...\n", argv0, argv0);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "m:s:q:b:r:d:h")) != -1) {
		switch (c) {
		case 'm': opt.bytes = bench_parse_size(optarg, "file size"); break;
		case 's': opt.size = bench_parse_size(optarg, "block size"); break;
		case 'q': opt.depth = (unsigned)atoi(optarg); break;
		case 'b': opt.batch = (unsigned)atoi(optarg); break;
		case 'r': opt.iters = atoi(optarg); break;
		case 'd': opt.dir = optarg; break;
		default: usage(argv[0]);
		}
	}
	if (optind != argc)
		usage(argv[0]);
	if (opt.size < 1 || opt.size > (1u << 30))
		bench_die("-s takes 1 byte .. 1 GiB");
	if (opt.depth < 1 || opt.depth > 4096)
		bench_die("-q takes 1..4096");
	if (opt.batch < 1 || opt.batch > opt.depth)
		bench_die("-b takes 1..depth (%u)", opt.depth);
	if (opt.iters < 1)
		bench_die("-r takes a positive count");
	nblocks = opt.bytes / opt.size;
	if (nblocks < 1)
		bench_die("-m is less than one block");
}

int main(int argc, char **argv)
{
	const char *pre = getenv("LD_PRELOAD"), *conf = getenv("MAGPAGE_CONF");
	char path[4096];
	int rc;

	bench_name = "uring";
	parse_args(argc, argv);
	if (!opt.dir)
		opt.dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR")
								 : "/tmp";
	snprintf(path, sizeof(path), "%s/magpage-uring.XXXXXX", opt.dir);
	fd = mkstemp(path);
	if (fd < 0)
		bench_die("mkstemp(%s): %s", path, strerror(errno));
	unlink(path);   /* gone whatever happens to this process */

	rc = io_uring_queue_init(opt.depth, &ring, 0);
	if (rc == -ENOSYS || rc == -EPERM) {
		fprintf(stderr, "uring: SKIP: the kernel refuses io_uring (%s)\n",
			strerror(-rc));
		return 77;
	}
	if (rc < 0)
		bench_die("io_uring_queue_init(%u): %s", opt.depth, strerror(-rc));
	if (sem_init(&slots, 0, opt.depth))
		bench_die("sem_init: %s", strerror(errno));

	bufs = bench_map(nblocks * sizeof(*bufs));
	sub_ns = bench_map(nblocks * sizeof(*sub_ns));
	lat_ns = bench_map(nblocks * sizeof(*lat_ns));
	want_sum = bench_map(nblocks * sizeof(*want_sum));
	pin(0);

	printf("# uring blocks=%zu size=%zu bytes=%zu depth=%u batch=%u "
	       "iterations=%d file=%s (unlinked) liburing=%s preload=%s "
	       "magpage_conf=%s | buffers malloc'ed by the submitter (cpu "
	       "slot 0) at submission, checked and freed by the reaper (cpu "
	       "slot 1) at completion; buffered I/O; latency = submission to "
	       "reaping\n", nblocks, opt.size, nblocks * opt.size, opt.depth,
	       opt.batch, opt.iters, path, LIBURING_VERSION,
	       pre && *pre ? pre : "none",
	       conf && *conf ? conf : "unset");
	printf("# iter,phase,blocks,size,bytes,depth,batch,wall_s,mb_per_s,"
	       "p50_us,p99_us,p999_us,max_us\n");
	fflush(stdout);

	for (int it = 0; it < opt.iters; it++) {
		double wall = run_phase(PH_WRITE, it);

		report(PH_WRITE, it, wall);
		if (fdatasync(fd))
			bench_die("fdatasync: %s", strerror(errno));
		wall = run_phase(PH_READ, it);
		report(PH_READ, it, wall);
	}
	io_uring_queue_exit(&ring);
	printf("# all %zu blocks verified at every completion, %d iterations\n",
	       nblocks, opt.iters);
	return 0;
}
