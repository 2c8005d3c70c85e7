/*
 * drain.c — the cost of a global drain with every per-CPU list full
 * (the RFC's "IPI overhead for global drains").  One thread per CPU, pinned,
 * fills its CPU's cache by freeing `fill` page blocks; then the main thread
 * times magpage_drain() (pcp-rseq: a membarrier fence per CPU; magazines and
 * pcp-lock: a lock per cache).  Repeats and prints min / median / max.
 * Run under LD_PRELOAD=libmagpage.so with the MAGPAGE_CONF to measure.
 *
 *   drain [-f pages-per-cpu] [-r reps]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fill = 150;
static pthread_barrier_t filled, go;

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void *filler(void *arg)
{
	int cpu = (int)(long)arg;
	cpu_set_t set;
	void **blocks = malloc(sizeof(void *) * (size_t)fill);

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
	for (;;) {
		for (int i = 0; i < fill; i++) {
			blocks[i] = malloc(4096);
			memset(blocks[i], i, 64);
		}
		for (int i = 0; i < fill; i++)
			free(blocks[i]);
		pthread_barrier_wait(&filled);
		pthread_barrier_wait(&go);
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int reps = 50, opt;
	while ((opt = getopt(argc, argv, "f:r:")) != -1) {
		if (opt == 'f')
			fill = atoi(optarg);
		else if (opt == 'r')
			reps = atoi(optarg);
		else {
			fprintf(stderr, "usage: %s [-f pages-per-cpu] [-r reps]\n", argv[0]);
			return 2;
		}
	}
	size_t (*drain)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "magpage_drain");
	if (!drain) {
		fprintf(stderr, "drain: run under LD_PRELOAD=libmagpage.so\n");
		return 1;
	}
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	pthread_barrier_init(&filled, NULL, (unsigned)ncpu + 1);
	pthread_barrier_init(&go, NULL, (unsigned)ncpu + 1);
	for (long c = 0; c < ncpu; c++) {
		pthread_t t;
		pthread_create(&t, NULL, filler, (void *)c);
	}
	double *us = malloc(sizeof(double) * (size_t)reps);
	size_t pages = 0;
	for (int r = 0; r < reps; r++) {
		pthread_barrier_wait(&filled);
		double t0 = now_us();
		pages = drain();
		us[r] = now_us() - t0;
		pthread_barrier_wait(&go);
	}
	qsort(us, (size_t)reps, sizeof(double), cmp);
	const char *conf = getenv("MAGPAGE_CONF");
	printf("# drain: %d CPUs, %d pages freed per CPU before each drain, %d reps, MAGPAGE_CONF=%s\n",
	       ncpu, fill, reps, conf ? conf : "");
	printf("drain_all: %zu pages, min %.1f us, median %.1f us, max %.1f us\n", pages, us[0],
	       us[reps / 2], us[reps - 1]);
	return 0;
}
