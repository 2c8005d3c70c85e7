/*
 * Shared pieces of the benchmarks in bench/: cycle counting, spin waits,
 * bookkeeping memory that bypasses the allocator being measured, summary
 * statistics and argument parsing.  Nothing here calls malloc.
 */
#ifndef MAGPAGE_BENCH_H
#define MAGPAGE_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CACHELINE 64

/*
 * A reading of the cycle counter that neither earlier nor later
 * instructions can cross: lfence before waits for everything older to
 * finish, lfence after keeps the timed code from starting early.
 */
static inline uint64_t bench_cycles(void)
{
#if defined(__x86_64__) || defined(__i386__)
	uint32_t lo, hi;

	__asm__ volatile("lfence\n\trdtsc\n\tlfence"
			 : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
#else
	struct timespec ts;     /* no TSC: nanoseconds; bench_tsc_hz() = 1e9 */

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

static inline void bench_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* A generation-counting spin barrier; initialise with { .parties = n }. */
struct bench_barrier {
	_Alignas(CACHELINE) _Atomic unsigned arrived;   /* 0..parties-1 */
	_Alignas(CACHELINE) _Atomic unsigned generation; /* bumped per round */
	unsigned parties;                               /* threads per round */
};

/* bench.c */
extern const char *bench_name;          /* prefix of bench_die() messages */
void bench_die(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));
void *bench_map(size_t bytes);
void bench_unmap(void *p, size_t bytes);
double bench_tsc_hz(void);
uint64_t bench_timer_overhead(void);
void bench_wait_eq(_Atomic unsigned *flag, unsigned want);
void bench_wait_ne(_Atomic unsigned *flag, unsigned old);
void bench_barrier_wait(struct bench_barrier *b);
void bench_trimmed_mean(const double *x, int n, double *mean, double *sd);
size_t bench_parse_size(const char *s, const char *what);
int bench_nth_cpu(int k, int *nproc);
void bench_sort_addrs(uintptr_t *a, size_t n);
/* CLOCK_MONOTONIC in seconds. */
double bench_now_s(void);
/* Resident MiB, from /proc/self/statm (no malloc); -1 if unreadable. */
double bench_rss_mib(void);

#endif /* MAGPAGE_BENCH_H */
