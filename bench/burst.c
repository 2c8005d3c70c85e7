/*
 * burst.c — a server taking a burst of large values, then idle: what
 * happens to its RSS (issue 10).  Allocates MIB MiB of page-sized values
 * of mixed sizes (4 KiB, page plus a header, 8 KiB, 12 KiB, 16 KiB + 100,
 * 32 KiB, 64 KiB), writes every byte, frees them all and stays idle for
 * IDLE seconds, sampling its own RSS (/proc/self/statm) every PERIOD ms
 * from the start.  With -c SECS it makes one malloc + free every SECS
 * seconds of the idle phase (the allocator call that a purge driven by
 * allocator calls needs); without it the idle phase calls nothing.
 *
 *   burst [-m MIB] [-i IDLE_S] [-p PERIOD_MS] [-c SECS]
 *
 * Prints "# " comment lines, then one CSV line per sample:
 *   t_s,rss_mib,phase        phase: alloc, free or idle
 * and a last comment line with the peak (getrusage ru_maxrss) and the RSS
 * at the end.  Extra allocator settings come from the environment
 * (MAGPAGE_CONF=purge_delay_ms:1000,...).  Never asserts on time; the
 * checksum of what it wrote keeps the writes alive.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 100000

struct sample {
	double t;           /* seconds since the start */
	double rss_mib;
	const char *phase;
};

static struct sample samples[MAX_SAMPLES];
static unsigned nsamples;
static double t_start, next_sample, period = 0.1;

/* Takes the samples that are due (at most one per call). */
static void tick(const char *phase)
{
	double t = bench_now_s();
	if (t < next_sample || nsamples == MAX_SAMPLES)
		return;
	samples[nsamples++] = (struct sample){ t - t_start, bench_rss_mib(), phase };
	next_sample += period;
	if (next_sample < t)
		next_sample = t + period;
}

static const size_t sizes[] = { 4096, 4101, 8192, 12288, 16484, 32768, 65536, 8224 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

int main(int argc, char **argv)
{
	size_t mib = 512;
	double idle = 10, poke = 0;
	int c;

	while ((c = getopt(argc, argv, "m:i:p:c:")) != -1) {
		switch (c) {
		case 'm': mib = strtoull(optarg, NULL, 10); break;
		case 'i': idle = atof(optarg); break;
		case 'p': period = atof(optarg) / 1000; break;
		case 'c': poke = atof(optarg); break;
		default:
			fprintf(stderr, "usage: burst [-m MIB] [-i IDLE_S] [-p PERIOD_MS] [-c SECS]\n");
			return 2;
		}
	}
	if (!mib || period <= 0 || idle < 0) {
		fprintf(stderr, "burst: bad arguments\n");
		return 2;
	}

	/* The pointer array, before the clock starts (over 4 MiB: glibc's
	 * mmap under every allocator but the peers, which serve it alike). */
	size_t cap = (mib << 20) / 4096 + 1;
	void **blk = malloc(cap * sizeof(void *));
	if (!blk) {
		perror("burst: malloc");
		return 1;
	}
	memset(blk, 0, cap * sizeof(void *));

	t_start = bench_now_s();
	next_sample = t_start;
	tick("alloc");
	size_t n = 0, bytes = 0;
	uint64_t sum = 0;
	while (bytes < (mib << 20) && n < cap) {
		size_t s = sizes[n % NSIZES];
		unsigned char *p = malloc(s);
		if (!p) {
			perror("burst: malloc");
			return 1;
		}
		memset(p, (int)(n & 0xff) | 1, s);
		blk[n++] = p;
		bytes += s;
		if ((n & 63) == 0)
			tick("alloc");
	}
	for (size_t i = 0; i < n; i++) {
		sum += ((unsigned char *)blk[i])[sizes[i % NSIZES] - 1];
		free(blk[i]);
		if ((i & 63) == 0)
			tick("free");
	}
	double idle_start = bench_now_s(), next_poke = idle_start + poke;
	next_sample = idle_start;      /* the first idle sample right away */
	while (bench_now_s() - idle_start < idle) {
		tick("idle");
		if (poke > 0 && bench_now_s() >= next_poke) {
			free(malloc(4096));
			next_poke += poke;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };   /* 10 ms */
		nanosleep(&ts, NULL);
	}
	tick("idle");

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("# burst: %zu MiB in %zu blocks of %zu sizes (4096..65536), freed, idle %.1f s, "
	       "sample every %.0f ms, a malloc+free every %.1f s of idle (0: none)\n",
	       mib, n, NSIZES, idle, period * 1000, poke);
	printf("# t_s,rss_mib,phase\n");
	for (unsigned i = 0; i < nsamples; i++)
		printf("%.3f,%.1f,%s\n", samples[i].t, samples[i].rss_mib, samples[i].phase);
	printf("# peak_rss_mib %.1f end_rss_mib %.1f checksum %llu\n", (double)ru.ru_maxrss / 1024,
	       bench_rss_mib(), (unsigned long long)sum);
	free(blk);
	return 0;
}
