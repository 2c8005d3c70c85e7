/*
 * idle_purge — does an idle process give its freed memory back?
 *
 * Allocates -m bytes (default 512m) in blocks of -s bytes (default 4096),
 * writes every page, frees every block, then stays idle for -d seconds
 * (default 15), printing its RSS (/proc/self/statm) every -i seconds
 * (default 0.5).  With -c T it makes one malloc+free of -S bytes (default:
 * the block size) T seconds into the idle spell: the "single allocator call
 * after an idle spell" that an allocator without a background thread needs
 * to purge; its time is call_ms in the summary.  With -k it frees every
 * other block only, so that no two freed blocks merge and a purge makes a
 * system call for each; with -b N, N threads spin on other CPUs meanwhile
 * (no allocator calls), so that each madvise must shoot down their TLBs.
 * Nothing else calls the allocator after the frees: the pointer array comes
 * from mmap, the output is formatted on the stack and written with
 * write(2).
 *
 * Output: '#' lines, then "t_s,rss_mib" lines, then a summary line:
 *   peak_mib, end_mib, first time RSS fell below a tenth of the peak
 *   (below10_s, -1 if never), call_ms (the -c call, -1 without one).
 *
 * Not a test: it judges nothing.  Run it under the allocator to measure:
 *   LD_PRELOAD=build/libmagpage.so MAGPAGE_CONF=purge_thread:1 build/bench/bench_idle_purge
 */
#define _GNU_SOURCE
#include "bench.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(1, line, (size_t)n) != n)
		exit(1);
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) != 0)
		;
}

static volatile int spinning = 1;

static void *spin(void *arg)
{
	(void)arg;
	while (spinning)
		__asm__ volatile("pause");
	return NULL;
}

int main(int argc, char **argv)
{
	size_t bytes = 512u << 20, size = 4096, call_size = 0;
	double idle = 15, interval = 0.5, call_at = -1, call_ms = -1;
	int c, keep_half = 0, busy = 0;
	pthread_t spinners[64];

	bench_name = "idle_purge";
	while ((c = getopt(argc, argv, "m:s:d:i:c:S:kb:h")) != -1) {
		switch (c) {
		case 'm': bytes = bench_parse_size(optarg, "memory"); break;
		case 's': size = bench_parse_size(optarg, "size"); break;
		case 'd': idle = atof(optarg); break;
		case 'i': interval = atof(optarg); break;
		case 'c': call_at = atof(optarg); break;
		case 'S': call_size = bench_parse_size(optarg, "call size"); break;
		case 'k': keep_half = 1; break;
		case 'b': busy = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-m bytes] [-s size] [-d idle_s] "
				"[-i interval_s] [-c call_at_s] [-S call_size] [-k] [-b threads]\n",
				argv[0]);
			return 2;
		}
	}
	if (busy < 0 || busy > 64)
		bench_die("-b takes 0 to 64 threads");
	for (int i = 0; i < busy; i++)
		if (pthread_create(&spinners[i], NULL, spin, NULL) != 0)
			bench_die("pthread_create failed");
	if (!call_size)
		call_size = size;
	if (size < 16 || bytes < size || interval <= 0 || idle < 0)
		bench_die("bad arguments");

	size_t n = bytes / size;
	char **p = bench_map(n * sizeof(*p));
	const char *pre = getenv("LD_PRELOAD"), *conf = getenv("MAGPAGE_CONF");

	say("# idle_purge bytes=%zu size=%zu idle_s=%.1f call_at_s=%.1f call_size=%zu "
	    "keep_half=%d busy=%d preload=%s magpage_conf=%s\n", bytes, size, idle, call_at,
	    call_size, keep_half, busy, pre && *pre ? pre : "none", conf && *conf ? conf : "unset");
	for (size_t i = 0; i < n; i++) {
		p[i] = malloc(size);
		if (!p[i])
			bench_die("malloc(%zu) failed at block %zu", size, i);
		for (size_t off = 0; off < size; off += 4096)
			p[i][off] = (char)(i | 1);
	}
	double peak = bench_rss_mib();
	if (peak < 0)
		bench_die("cannot read /proc/self/statm");
	for (size_t i = keep_half; i < n; i += 1 + keep_half)
		free(p[i]);

	double t0 = bench_now_s(), below = -1, last = 0;
	int called = call_at < 0;
	say("# peak %.1f MiB after the allocations; t_s,rss_mib from the last free\n", peak);
	for (double next = 0;; next += interval) {
		double t = bench_now_s() - t0;
		if (!called && t >= call_at) {
			double c0 = bench_now_s();
			void *q = malloc(call_size);
			if (!q)
				bench_die("malloc(%zu) failed", call_size);
			*(volatile char *)q = 1;
			free(q);
			call_ms = (bench_now_s() - c0) * 1e3;
			called = 1;
			say("# t=%.2f: one malloc(%zu)+free, %.3f ms\n", t, call_size, call_ms);
		}
		last = bench_rss_mib();
		if (last > peak)
			peak = last;
		if (below < 0 && last < peak / 10)
			below = t;
		say("%.2f,%.1f\n", t, last);
		if (t >= idle)
			break;
		double wake = next + interval;
		if (!called && call_at < wake)
			wake = call_at;
		t = bench_now_s() - t0;
		if (wake > t)
			sleep_s(wake - t);
	}
	say("summary: peak_mib=%.1f end_mib=%.1f below10_s=%.2f call_ms=%.3f\n", peak, last, below,
	    call_ms);
	spinning = 0;
	for (int i = 0; i < busy; i++)
		pthread_join(spinners[i], NULL);
	if (keep_half)
		for (size_t i = 0; i < n; i += 2)
			free(p[i]);
	bench_unmap(p, n * sizeof(*p));
	return 0;
}
