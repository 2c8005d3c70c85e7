/*
 * pft — the 2013 RFC's page-fault test, in user space.
 *
 * The kernel version (pft v0.12x, run by mmtests with PFT_USE_PROCESSES)
 * had N tasks each first-touch a share of a fresh anonymous mapping, so
 * every touch was a page fault that allocated a zeroed order-0 page, and
 * reported faults per CPU-second (user+sys of all tasks: per-CPU
 * efficiency, which falls under contention) and faults per wall second
 * (aggregate throughput).  Here each task mallocs page-sized blocks
 * totalling its share, writing every page of each block right after its
 * malloc, then (untimed) checks them all, then frees them all: the
 * allocator under test (LD_PRELOAD) decides where the pages come from and
 * whether each first touch faults.
 *
 *   -t N       N threads in one process (default: 1 thread)
 *   -p N       N processes instead (the RFC's mode)
 *   -m BYTES   memory touched per iteration, all tasks together, split
 *              evenly (default 256m; suffixes k/m/g; the RFC used MemTotal/5)
 *   -s SIZE    block size (default 4096)
 *   -r R       iterations (default 5)
 *   -u         reuse: threads mode, every iteration in one child process,
 *              so iterations 1.. reuse the pages the allocator kept from
 *              the one before (no first-touch faults unless it returned
 *              them to the OS: the loop a decay purge must not slow down)
 *
 * Without -u, every iteration runs in a freshly forked process (threads mode: one
 * child that starts the N threads; processes mode: N children), so every
 * iteration starts from the same near-empty heap, as the RFC's fresh
 * mapping did, and memory the allocator kept from the previous iteration
 * cannot hide the faults.  Tasks are pinned one per allowed CPU and start
 * together at a barrier.
 *
 * Two timed phases, malloc+write and free, each started by all tasks
 * together at a barrier; the checks between them are not timed.  Per task,
 * CPU time and minor/major faults come from getrusage(RUSAGE_THREAD) around
 * the two phases (not process or thread start-up); the wall time of each
 * phase runs from its first task's start to its last task's end, and the
 * iteration's wall time is their sum.
 *
 * Output: '#' lines (parameters, columns, checksum), then one CSV line per
 * iteration:
 *   faults_per_cpu = minflt / (user + sys)   kernel-counted faults, as pft
 *   faults_per_sec = minflt / wall
 *   pages_per_sec  = pages / wall            pages written, whether or not
 *   pages_per_cpu  = pages / (user + sys)    the kernel had to fault them
 *   minflt_all     = minor faults of the whole child processes (parent's
 *                    RUSAGE_CHILDREN delta: start-up and stacks included)
 *
 * Not a test: never judges the times.  It checks every block: not NULL,
 * aligned, not overlapping any other live block (of any thread), each
 * page's tag (distinct per task, iteration, block and page) and the
 * block's last 8 bytes intact before the free; it exits 1 loudly on any
 * failure.
 * Bookkeeping memory comes from mmap, never from the allocator measured.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOUCH_STRIDE 4096u      /* one tag per page of each block */
#define MAX_TASKS    1024

static struct {
	int tasks;
	int processes;          /* 1: -p, tasks are processes */
	size_t bytes;           /* all tasks together, per iteration */
	size_t size;            /* block size */
	int iters;
	int reuse;              /* 1: -u, all iterations in one child */
} opt = { .tasks = 1, .bytes = 256u << 20, .size = 4096, .iters = 5 };

/* One task's result, in memory shared with the parent (MAP_SHARED). */
struct task_result {
	_Alignas(CACHELINE) double user_s, sys_s;
	long minflt, majflt;
	uint64_t start_ns[2];   /* CLOCK_MONOTONIC at the start of each timed */
	uint64_t end_ns[2];     /* phase (alloc+write, free) and at its end */
	uint64_t pages;         /* pages written and verified */
	uint64_t checksum;
	int done;               /* 1 once the fields above are final */
};

struct shared {
	struct bench_barrier barrier;       /* all tasks of one iteration */
	struct task_result res[MAX_TASKS];
};

static struct shared *sh;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* A distinct non-zero tag per (task, iteration, block, page). */
static inline uint64_t page_tag(uint64_t seed, size_t block, size_t page)
{
	uint64_t x = seed ^ ((uint64_t)block << 20) ^ page;

	x *= 0x9e3779b97f4a7c15u;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9u;
	x ^= x >> 32;
	return x | 1;
}

static double ru_cpu(const struct rusage *a, const struct rusage *b)
{
	return tv_s(b->ru_utime) - tv_s(a->ru_utime) +
	       tv_s(b->ru_stime) - tv_s(a->ru_stime);
}

/* Threads mode: every task's blocks, for the cross-thread overlap check. */
static void **task_ptrs[MAX_TASKS];

/*
 * No two live blocks overlap: sort the addresses, compare neighbours.  In
 * threads mode task 0 checks all the process's blocks together (the others
 * wait at the barrier), since two threads can be handed the same memory.
 */
static void check_overlap(int id, void **p, size_t nblocks)
{
	int from = opt.processes ? id : 0, to = opt.processes ? id + 1 : opt.tasks;
	size_t n = 0, total = nblocks * (size_t)(to - from);
	uintptr_t *a;

	if (!opt.processes && id != 0)
		return;
	a = bench_map(total * sizeof(*a));
	for (int t = from; t < to; t++)
		for (size_t b = 0; b < nblocks; b++)
			a[n++] = (uintptr_t)(opt.processes ? p : task_ptrs[t])[b];
	bench_sort_addrs(a, n);
	for (size_t i = 1; i < n; i++)
		if (a[i - 1] + opt.size > a[i])
			bench_die("malloc(%zu) returned overlapping live blocks %p "
				  "and %p (%zu blocks live in %s)", opt.size,
				  (void *)a[i - 1], (void *)a[i], n,
				  opt.processes ? "this process" : "all threads");
	bench_unmap(a, total * sizeof(*a));
}

/*
 * The work of one task: malloc its share of blocks writing each page as it
 * goes (timed), check them (untimed: overlap check and every tag), free
 * them all (timed).  Tasks start each timed phase together at a barrier.
 */
static void task_run(int id, int iter)
{
	struct task_result *r = &sh->res[id];
	size_t nblocks = opt.bytes / opt.tasks / opt.size;
	size_t per_block = (opt.size + TOUCH_STRIDE - 1) / TOUCH_STRIDE;
	void **p = bench_map(nblocks * sizeof(void *));
	uint64_t seed = ((uint64_t)id << 48) ^ ((uint64_t)iter << 32), sum = 0;
	struct rusage ru0, ru1, ru2, ru3;
	cpu_set_t set;
	int nproc, cpu = bench_nth_cpu(id, &nproc);

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		bench_die("task %d: sched_setaffinity(cpu %d): %s", id, cpu,
			  strerror(errno));
	/* Fault the pointer array in now, outside the measurement. */
	memset(p, 0, nblocks * sizeof(void *));
	task_ptrs[id] = p;

	bench_barrier_wait(&sh->barrier);
	r->start_ns[0] = now_ns();
	getrusage(RUSAGE_THREAD, &ru0);
	for (size_t b = 0; b < nblocks; b++) {
		char *q = malloc(opt.size);
		uint64_t inv = ~page_tag(seed, b, 0);

		if (!q)
			bench_die("task %d: malloc(%zu) returned NULL at block %zu "
				  "of %zu", id, opt.size, b, nblocks);
		if ((uintptr_t)q % 16)
			bench_die("task %d: malloc(%zu) returned %p, not 16-byte "
				  "aligned", id, opt.size, (void *)q);
		p[b] = q;
		for (size_t pg = 0; pg < per_block; pg++) {
			uint64_t tag = page_tag(seed, b, pg);

			memcpy(q + pg * TOUCH_STRIDE, &tag, sizeof(tag));
		}
		/* The block's last bytes too, so both ends are checked. */
		memcpy(q + opt.size - sizeof(inv), &inv, sizeof(inv));
	}
	getrusage(RUSAGE_THREAD, &ru1);
	r->end_ns[0] = now_ns();

	bench_barrier_wait(&sh->barrier);
	check_overlap(id, p, nblocks);
	for (size_t b = 0; b < nblocks; b++) {
		const char *q = p[b];
		uint64_t v, inv;

		for (size_t pg = 0; pg < per_block; pg++) {
			memcpy(&v, q + pg * TOUCH_STRIDE, sizeof(v));
			/* The tail tag may sit on the first page of a small
			 * block; it is checked separately below. */
			if (pg * TOUCH_STRIDE + sizeof(v) <= opt.size - sizeof(v) &&
			    v != page_tag(seed, b, pg))
				bench_die("task %d: block %zu of %zu at %p, page %zu: "
					  "corrupted while live: %016llx, want %016llx",
					  id, b, nblocks, (void *)q, pg,
					  (unsigned long long)v,
					  (unsigned long long)page_tag(seed, b, pg));
			sum += v;
		}
		memcpy(&inv, q + opt.size - sizeof(inv), sizeof(inv));
		if (inv != ~page_tag(seed, b, 0))
			bench_die("task %d: block %zu of %zu at %p: last 8 bytes "
				  "corrupted while live: %016llx, want %016llx", id,
				  b, nblocks, (void *)q, (unsigned long long)inv,
				  (unsigned long long)~page_tag(seed, b, 0));
	}

	bench_barrier_wait(&sh->barrier);
	r->start_ns[1] = now_ns();
	getrusage(RUSAGE_THREAD, &ru2);
	for (size_t b = 0; b < nblocks; b++)
		free(p[b]);
	getrusage(RUSAGE_THREAD, &ru3);
	r->end_ns[1] = now_ns();

	r->user_s = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime) +
		    tv_s(ru3.ru_utime) - tv_s(ru2.ru_utime);
	r->sys_s = ru_cpu(&ru0, &ru1) + ru_cpu(&ru2, &ru3) - r->user_s;
	r->minflt = ru1.ru_minflt - ru0.ru_minflt + ru3.ru_minflt - ru2.ru_minflt;
	r->majflt = ru1.ru_majflt - ru0.ru_majflt + ru3.ru_majflt - ru2.ru_majflt;
	r->pages = nblocks * per_block;
	r->checksum = sum;
	bench_unmap(p, nblocks * sizeof(void *));
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
}

static int cur_iter;

static void *thread_entry(void *arg)
{
	task_run((int)(intptr_t)arg, cur_iter);
	return NULL;
}

/* Threads mode, inside the iteration's child: start N threads, join them. */
static void run_threads(void)
{
	pthread_t tid[MAX_TASKS];

	for (int i = 0; i < opt.tasks; i++)
		if ((errno = pthread_create(&tid[i], NULL, thread_entry,
					    (void *)(intptr_t)i)))
			bench_die("pthread_create: %s", strerror(errno));
	for (int i = 0; i < opt.tasks; i++)
		pthread_join(tid[i], NULL);
}

/* Waits for one child; any failure of a child is the benchmark's failure. */
static void reap(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		bench_die("waitpid: %s", strerror(errno));
	if (WIFSIGNALED(st))
		bench_die("iteration %d: child %d killed by signal %d (%s)",
			  cur_iter, (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
	if (WEXITSTATUS(st))
		bench_die("iteration %d: child %d exited with status %d",
			  cur_iter, (int)pid, WEXITSTATUS(st));
}

static pid_t fork_or_die(void)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		bench_die("fork: %s", strerror(errno));
	return pid;
}

/* Prints iteration iter's CSV line from sh->res and adds to *checksum;
 * minflt_all is the faults of the whole process(es) meanwhile. */
static void report_iteration(int iter, long minflt_all, uint64_t *checksum)
{
	double user = 0, sys = 0, cpu, wall;
	long minflt = 0, majflt = 0;
	uint64_t pages = 0, start[2] = { UINT64_MAX, UINT64_MAX }, end[2] = { 0, 0 };

	for (int i = 0; i < opt.tasks; i++) {
		struct task_result *r = &sh->res[i];

		if (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE))
			bench_die("iteration %d: task %d exited without a result",
				  iter, i);
		user += r->user_s;
		sys += r->sys_s;
		minflt += r->minflt;
		majflt += r->majflt;
		pages += r->pages;
		*checksum += r->checksum;
		for (int ph = 0; ph < 2; ph++) {
			if (r->start_ns[ph] < start[ph])
				start[ph] = r->start_ns[ph];
			if (r->end_ns[ph] > end[ph])
				end[ph] = r->end_ns[ph];
		}
	}
	/* Each timed phase from its first task's start to its last task's end. */
	wall = (double)(end[0] - start[0] + end[1] - start[1]) / 1e9;
	wall = wall > 0 ? wall : 1e-9;
	cpu = user + sys > 0 ? user + sys : 1e-9;
	printf("%d,%s,%d,%zu,%zu,%llu,%ld,%ld,%.4f,%.4f,%.4f,%.1f,%.1f,%.1f,"
	       "%.1f,%ld\n", iter, opt.processes ? "processes" : "threads",
	       opt.tasks, opt.size, opt.bytes, (unsigned long long)pages, minflt,
	       majflt, user, sys, wall, minflt / cpu, minflt / wall,
	       pages / wall, pages / cpu, minflt_all);
	fflush(stdout);
}

static void reset_results(int iter)
{
	memset(sh, 0, sizeof(*sh));
	sh->barrier.parties = (unsigned)opt.tasks;
	cur_iter = iter;
}

/* One iteration in fresh processes; prints its CSV line and adds to
 * *checksum. */
static void run_iteration(int iter, uint64_t *checksum)
{
	struct rusage c0, c1;
	pid_t pids[MAX_TASKS];

	reset_results(iter);
	getrusage(RUSAGE_CHILDREN, &c0);

	if (opt.processes) {
		for (int i = 0; i < opt.tasks; i++)
			if ((pids[i] = fork_or_die()) == 0) {
				task_run(i, iter);
				_exit(0);
			}
	} else if ((pids[0] = fork_or_die()) == 0) {
		run_threads();
		_exit(0);
	}
	for (int i = 0; i < (opt.processes ? opt.tasks : 1); i++)
		reap(pids[i]);
	getrusage(RUSAGE_CHILDREN, &c1);
	report_iteration(iter, c1.ru_minflt - c0.ru_minflt, checksum);
}

/* -u: every iteration in one child, which prints the lines itself; the
 * checksum comes back through the shared page. */
static void run_reuse(uint64_t *checksum)
{
	static uint64_t *shared_sum;
	pid_t pid;

	shared_sum = bench_map(sizeof(*shared_sum));
	if ((pid = fork_or_die()) == 0) {
		uint64_t sum = 0;

		for (int i = 0; i < opt.iters; i++) {
			struct rusage s0, s1;

			reset_results(i);
			getrusage(RUSAGE_SELF, &s0);
			run_threads();
			getrusage(RUSAGE_SELF, &s1);
			report_iteration(i, s1.ru_minflt - s0.ru_minflt, &sum);
		}
		*shared_sum = sum;
		_exit(0);
	}
	reap(pid);
	*checksum += *shared_sum;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-t threads | -p processes] [-m bytes] [-s size] "
		"[-r iterations] [-u]\n"
		"Run it under the allocator to measure: "
		"LD_PRELOAD=/path/liballoc.so %s ...\n", argv0, argv0);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	int c, saw_t = 0;

	while ((c = getopt(argc, argv, "t:p:m:s:r:uh")) != -1) {
		switch (c) {
		case 't': opt.tasks = atoi(optarg); opt.processes = 0; saw_t = 1; break;
		case 'p': opt.tasks = atoi(optarg); opt.processes = 1; break;
		case 'm': opt.bytes = bench_parse_size(optarg, "memory"); break;
		case 's': opt.size = bench_parse_size(optarg, "size"); break;
		case 'r': opt.iters = atoi(optarg); break;
		case 'u': opt.reuse = 1; break;
		default: usage(argv[0]);
		}
	}
	if (optind != argc)
		usage(argv[0]);
	if (saw_t && opt.processes)
		bench_die("-t and -p exclude each other");
	if (opt.reuse && opt.processes)
		bench_die("-u runs threads in one process: not with -p");
	if (opt.tasks < 1 || opt.tasks > MAX_TASKS)
		bench_die("-t/-p take 1..%d tasks", MAX_TASKS);
	if (opt.iters < 1)
		bench_die("-r takes a positive count");
	if (opt.size < 16)
		bench_die("-s must be at least 16 bytes");
	if (opt.bytes / opt.tasks / opt.size < 1)
		bench_die("-m %zu is less than one %zu-byte block per task",
			  opt.bytes, opt.size);
}

int main(int argc, char **argv)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	const char *pre = getenv("LD_PRELOAD"), *conf = getenv("MAGPAGE_CONF");
	uint64_t checksum = 0;
	int nproc;

	bench_name = "pft";
	parse_args(argc, argv);
	if (pages > 0 && psz > 0 && opt.bytes > (size_t)pages * (size_t)psz / 2)
		bench_die("-m %zu MiB is more than half of RAM", opt.bytes >> 20);
	bench_nth_cpu(0, &nproc);

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		bench_die("mmap(MAP_SHARED) for results: %s", strerror(errno));

	printf("# pft mode=%s tasks=%d cpus=%d bytes=%zu size=%zu "
	       "blocks_per_task=%zu iterations=%d preload=%s magpage_conf=%s | "
	       "%s; timed phases, started "
	       "together: malloc every block writing each of its pages, then "
	       "(after untimed checks) free all; cpu and faults from "
	       "getrusage(RUSAGE_THREAD) around the phases, wall = sum over "
	       "phases of first start to last end\n",
	       opt.processes ? "processes" : "threads", opt.tasks, nproc,
	       opt.bytes, opt.size, opt.bytes / opt.tasks / opt.size, opt.iters,
	       pre && *pre ? pre : "none", conf && *conf ? conf : "unset",
	       opt.reuse ? "reuse: every iteration in one process, pages reused"
			 : "each iteration in fresh processes");
	printf("# iter,mode,tasks,size,bytes,pages,minflt,majflt,user_s,sys_s,"
	       "wall_s,faults_per_cpu,faults_per_sec,pages_per_sec,"
	       "pages_per_cpu,minflt_all\n");
	fflush(stdout);

	if (opt.reuse)
		run_reuse(&checksum);
	else
		for (int i = 0; i < opt.iters; i++)
			run_iteration(i, &checksum);
	printf("# checksum=%016llx (all pages verified)\n",
	       (unsigned long long)checksum);
	return 0;
}
