/*
 * Shared pieces of the benchmarks in bench/ (see bench.h).  The benchmarks
 * run under whatever allocator is preloaded, so nothing here may call
 * malloc: memory comes from mmap, sorting is a local heapsort (glibc's
 * qsort may allocate), the square root is Newton's (no libm).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <unistd.h>
#include <time.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

const char *bench_name = "bench";

void bench_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	/* stderr is unbuffered: vfprintf formats into a stack buffer. */
	fprintf(stderr, "%s: FATAL: ", bench_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Bookkeeping memory: mmap, so that only the measured calls reach malloc. */
void *bench_map(size_t bytes)
{
	void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die("mmap(%zu) for bookkeeping: %s", bytes, strerror(errno));
	return p;
}

void bench_unmap(void *p, size_t bytes)
{
	munmap(p, bytes ? bytes : 1);
}

static uint64_t mono_raw_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* TSC ticks per second against CLOCK_MONOTONIC_RAW, over ~100 ms. */
double bench_tsc_hz(void)
{
#if defined(__x86_64__) || defined(__i386__)
	uint64_t c0 = bench_cycles(), n0 = mono_raw_ns(), c1 = bench_cycles();
	uint64_t c2, n1, c3;

	do {
		c2 = bench_cycles();
		n1 = mono_raw_ns();
		c3 = bench_cycles();
	} while (n1 - n0 < 100000000u);
	/* Midpoints of the counter reads bracketing each clock read. */
	return ((double)(c2 + c3) / 2 - (double)(c0 + c1) / 2) * 1e9 /
	       (double)(n1 - n0);
#else
	return 1e9;
#endif
}

/* The counter's step, as far as two reads in a row can tell: the smallest
 * non-zero difference, without fences.  Where the counter moves every
 * cycle this is the cost of a read (some 20-40 cycles), not the step; it
 * is the step where that is larger (24 or 25 on the Zen VM here, where the
 * counter moves every 10 ns, and reads 24, 25 or 49 apart).  0 without a
 * TSC. */
uint64_t bench_tsc_step(void)
{
#if defined(__x86_64__) || defined(__i386__)
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 10000; i++) {
		uint64_t a = __builtin_ia32_rdtsc(), b = __builtin_ia32_rdtsc();

		if (b != a && b - a < best)
			best = b - a;
	}
	return best == UINT64_MAX ? 0 : best;
#else
	return 0;
#endif
}

/* Cycles between two back-to-back reads: what every timed loop pays. */
uint64_t bench_timer_overhead(void)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 10000; i++) {
		uint64_t t0 = bench_cycles(), t1 = bench_cycles();

		if (t1 - t0 < best)
			best = t1 - t0;
	}
	return best;
}

/* Spin until *flag == want; yield now and then in case the partner thread
 * shares this CPU (more threads than CPUs). */
void bench_wait_eq(_Atomic unsigned *flag, unsigned want)
{
	unsigned spins = 0;

	while (atomic_load_explicit(flag, memory_order_acquire) != want) {
		bench_relax();
		if (++spins % 4096 == 0)
			sched_yield();
	}
}

void bench_wait_ne(_Atomic unsigned *flag, unsigned old)
{
	unsigned spins = 0;

	while (atomic_load_explicit(flag, memory_order_acquire) == old) {
		bench_relax();
		if (++spins % 4096 == 0)
			sched_yield();
	}
}

void bench_barrier_wait(struct bench_barrier *b)
{
	/* Read the generation before arriving, or the last arrival's bump
	 * could be missed and this thread would wait a round too long. */
	unsigned gen = atomic_load_explicit(&b->generation, memory_order_acquire);

	if (atomic_fetch_add(&b->arrived, 1) + 1 == b->parties) {
		atomic_store(&b->arrived, 0);
		atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
		return;
	}
	bench_wait_ne(&b->generation, gen);
}

/* Newton's square root from above; x >= 0. */
static double sqrt_pos(double x)
{
	double r = x > 1 ? x : 1;

	if (x <= 0)
		return 0;
	for (int i = 0; i < 200; i++) {
		double next = 0.5 * (r + x / r);

		if (next >= r)
			break;
		r = next;
	}
	return r;
}

/*
 * mmtests' calc_trimoutlier_mean: drop the single largest sample, average
 * the rest.  *sd is the sample standard deviation of the kept ones.
 */
void bench_trimmed_mean(const double *x, int n, double *mean, double *sd)
{
	int drop = -1, kept = 0;
	double sum = 0, sq = 0;

	if (n > 1) {
		drop = 0;
		for (int i = 1; i < n; i++)
			if (x[i] > x[drop])
				drop = i;
	}
	for (int i = 0; i < n; i++)
		if (i != drop)
			sum += x[i], kept++;
	*mean = sum / kept;
	for (int i = 0; i < n; i++)
		if (i != drop)
			sq += (x[i] - *mean) * (x[i] - *mean);
	*sd = kept > 1 ? sqrt_pos(sq / (kept - 1)) : 0;
}

/* "4096", "8k", "2m", "1g" -> bytes (binary multiples). */
size_t bench_parse_size(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		bench_die("bad %s '%s'", what, s);
	switch (*end) {
	case 'k': case 'K': v <<= 10, end++; break;
	case 'm': case 'M': v <<= 20, end++; break;
	case 'g': case 'G': v <<= 30, end++; break;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		bench_die("bad %s '%s': use a number with an optional k, m or g",
			  what, s);
	return (size_t)v;
}

/* The k-th CPU this process may run on, k taken modulo their count. */
int bench_nth_cpu(int k, int *nproc)
{
	cpu_set_t set;
	int seen = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		bench_die("sched_getaffinity: %s", strerror(errno));
	*nproc = CPU_COUNT(&set);
	k %= *nproc;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set) && seen++ == k)
			return cpu;
	return 0;
}

static void sift_down(uintptr_t *a, size_t root, size_t n)
{
	for (;;) {
		size_t c = 2 * root + 1;
		uintptr_t t;

		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (a[root] >= a[c])
			return;
		t = a[root], a[root] = a[c], a[c] = t;
		root = c;
	}
}

/* In-place heapsort, ascending. */
void bench_sort_addrs(uintptr_t *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(a, i, n);
	for (size_t end = n; end-- > 1;) {
		uintptr_t t = a[0];

		a[0] = a[end], a[end] = t;
		sift_down(a, 0, end);
	}
}

double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_rss_mib(void)
{
	char buf[128];
	long pages = 0;
	int fd = open("/proc/self/statm", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%*s %ld", &pages) != 1)
		return -1;
	return (double)pages * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}
