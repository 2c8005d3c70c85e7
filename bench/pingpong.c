/*
 * pingpong.c — how far apart the host put two CPUs now: two threads,
 * pinned to the first two CPUs (bench_nth_cpu), hand one cache line back
 * and forth; prints the TSC cycles of one round trip (the median of 9
 * samples of 20,000).  On this project's 2-CPU VM it reads about 170-220
 * cycles at times and 850-950 at others, as the host moves the two
 * virtual CPUs closer or further apart, and every allocator's two-thread
 * throughput moves with it (docs/results/issue9/session22.md), so
 * scripts/xthread-placement.sh runs it before and after each measurement.
 *
 *   bench_pingpong            (no arguments; needs two CPUs)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

#define TRIPS   20000
#define SAMPLES 9

static _Alignas(CACHELINE) _Atomic unsigned ball;

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		bench_die("pingpong: cannot pin to CPU %d", cpu);
}

/* Answers each serve: 1 -> 2. */
static void *partner(void *arg)
{
	pin(*(int *)arg);
	for (unsigned i = 0; i < (unsigned)SAMPLES * TRIPS; i++) {
		bench_wait_eq(&ball, 1);
		atomic_store_explicit(&ball, 2, memory_order_release);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int nproc, first, second;
	pthread_t t;
	double cycles[SAMPLES];

	(void)argv;
	if (argc != 1)
		bench_die("usage: bench_pingpong (no arguments)");
	first = bench_nth_cpu(0, &nproc);
	second = bench_nth_cpu(1, &nproc);
	if (nproc < 2)
		bench_die("pingpong: needs two CPUs (%d online)", nproc);
	pin(first);
	if (pthread_create(&t, NULL, partner, &second) != 0)
		bench_die("pingpong: cannot start the partner thread");
	for (int s = 0; s < SAMPLES; s++) {
		uint64_t t0 = bench_cycles();
		for (unsigned i = 0; i < TRIPS; i++) {
			atomic_store_explicit(&ball, 1, memory_order_release);
			bench_wait_eq(&ball, 2);
		}
		cycles[s] = (double)(bench_cycles() - t0) / TRIPS;
	}
	pthread_join(t, NULL);
	qsort(cycles, SAMPLES, sizeof(cycles[0]), cmp_double);
	printf("%.0f\n", cycles[SAMPLES / 2]);
	return 0;
}
