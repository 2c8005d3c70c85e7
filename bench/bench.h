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

/*
 * A wait of a random 1..512 cycles, to run just before a timed region's
 * first bench_cycles().  Some counters tick in steps (the TSC of AMD's
 * Zen, read in a VM here: 24 or 25 cycles, 10 ns): a region timed with
 * them reads as a whole number of steps, and a loop that starts each
 * region at the same phase of a step turns a region a few cycles longer
 * or shorter into a step more or less, every time.  Started at a random
 * phase instead (the wait spans many steps, so every phase is about as
 * likely), a region of L cycles reads L on average, whatever the step.
 * rng: the caller's xorshift state, not 0.
 */
static inline void bench_dither(uint64_t *rng)
{
	uint64_t x = *rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*rng = x;
#if defined(__x86_64__) || defined(__i386__)
	unsigned k = (unsigned)(x >> 55) + 1;   /* 1..512 turns of a 1-cycle loop */

	__asm__ volatile("1:\n\tdec %0\n\tjnz 1b" : "+r"(k) : : "cc");
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
uint64_t bench_tsc_step(void);
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
