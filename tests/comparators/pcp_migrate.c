/*
 * pcp_migrate.c — stress for the per-CPU comparators (not a benchmark).
 *
 * Threads allocate, fill, verify and free page-sized blocks while each one
 * moves itself between CPUs with sched_setaffinity in a loop (so their
 * pcp-rseq critical sections are cut by migrations), a per-thread timer
 * storm delivers signals whose handlers allocate and free pages too (rseq
 * restarts, pcp-lock trylock failures), and a drainer thread calls
 * magpage_drain() over and over (the membarrier fence of pcp-rseq, the
 * remote lock of pcp-lock).  Runs for a fixed time; a watchdog turns a
 * hang into a failure; exits 0 only if every block held its pattern.
 *
 *   pcp_migrate [seconds]      run under LD_PRELOAD with MAGPAGE_CONF set
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define THREADS 3
#define SLOTS 32

static atomic_int stop;
static atomic_long handler_calls, drains, iterations;
static int ncpu;

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i += 512)
		p[i] = (unsigned char)(seed + i / 512);
	p[n - 1] = (unsigned char)~seed;
}

static void check(const unsigned char *p, size_t n, unsigned seed, const char *who)
{
	for (size_t i = 0; i < n; i += 512)
		if (p[i] != (unsigned char)(seed + i / 512)) {
			fprintf(stderr, "pcp_migrate: %s: block %p corrupted at offset %zu\n", who, (void *)p, i);
			_exit(1);
		}
	if (p[n - 1] != (unsigned char)~seed) {
		fprintf(stderr, "pcp_migrate: %s: block %p corrupted at its end\n", who, (void *)p);
		_exit(1);
	}
}

static void on_timer(int sig)
{
	(void)sig;
	unsigned char *p = malloc(4096), *q = malloc(8192);
	if (!p || !q)
		_exit(3);
	fill(p, 4096, 7);
	fill(q, 8192, 9);
	check(p, 4096, 7, "handler");
	check(q, 8192, 9, "handler");
	free(q);
	free(p);
	atomic_fetch_add(&handler_calls, 1);
}

static void *worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg, seed = id * 131;
	unsigned char *blk[SLOTS] = { 0 };
	size_t len[SLOTS] = { 0 };
	timer_t t;
	struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGALRM };
	ev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	struct itimerspec its = { { 0, 200000 }, { 0, 200000 } };   /* 5 kHz */
	if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0 || timer_settime(t, 0, &its, NULL) != 0)
		_exit(4);

	for (unsigned long it = 0; !atomic_load(&stop); it++) {
		if (it % 64 == 0) {          /* move to another CPU */
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET((int)((it / 64 + id) % (unsigned)ncpu), &set);
			sched_setaffinity(0, sizeof(set), &set);
		}
		unsigned s = (unsigned)(it * 7 + id) % SLOTS;
		if (blk[s]) {
			check(blk[s], len[s], seed + s, "worker");
			free(blk[s]);
		}
		len[s] = 4096 * (1 + (it % 3 == 0));
		blk[s] = malloc(len[s]);
		if (!blk[s])
			_exit(3);
		fill(blk[s], len[s], seed + s);
		atomic_fetch_add(&iterations, 1);
	}
	timer_delete(t);
	for (unsigned s = 0; s < SLOTS; s++)
		if (blk[s]) {
			check(blk[s], len[s], seed + s, "worker at exit");
			free(blk[s]);
		}
	return NULL;
}

static void *drainer(void *arg)
{
	size_t (*drain)(void) = (size_t (*)(void))arg;
	while (!atomic_load(&stop)) {
		drain();
		atomic_fetch_add(&drains, 1);
		usleep(200);
	}
	return NULL;
}

static void on_watchdog(int sig)
{
	(void)sig;
	static const char msg[] = "pcp_migrate: watchdog: no progress before the deadline (hang)\n";
	write(2, msg, sizeof(msg) - 1);
	_exit(2);
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 3;
	size_t (*drain)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "magpage_drain");
	pthread_t w[THREADS], d;

	if (!drain) {
		fprintf(stderr, "pcp_migrate: magpage_drain not found: run under LD_PRELOAD=libmagpage.so\n");
		return 1;
	}
	ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	signal(SIGALRM, on_timer);
	struct sigaction wd = { .sa_handler = on_watchdog };
	sigaction(SIGVTALRM, &wd, NULL);
	/* The watchdog counts wall time on its own timer signal. */
	timer_t wt;
	struct sigevent wev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGVTALRM };
	struct itimerspec wits = { { 0, 0 }, { seconds + 30, 0 } };
	timer_create(CLOCK_MONOTONIC, &wev, &wt);
	timer_settime(wt, 0, &wits, NULL);

	for (uintptr_t i = 0; i < THREADS; i++)
		pthread_create(&w[i], NULL, worker, (void *)i);
	pthread_create(&d, NULL, drainer, (void *)drain);
	sleep((unsigned)seconds);
	atomic_store(&stop, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_join(w[i], NULL);
	pthread_join(d, NULL);
	/* Under pcp-rseq the drains must have fenced other CPUs: read the
	 * report (JSON) back and look. */
	void (*print_stats)(int, int) = (void (*)(int, int))dlsym(RTLD_DEFAULT, "magpage_print_stats");
	int fd = memfd_create("stats", 0);
	static char report[1 << 19];
	ssize_t n = 0;
	if (print_stats && fd >= 0) {
		print_stats(fd, 1);
		n = pread(fd, report, sizeof(report) - 1, 0);
	}
	report[n > 0 ? n : 0] = '\0';
	if (strstr(report, "\"cache\":\"pcp-rseq\"")) {
		const char *f = strstr(report, "\"fences\":");
		long fences = f ? atol(f + 9) : 0, restarts = 0;
		for (const char *r = report; (r = strstr(r, "\"restarts\":")); r += 11)
			restarts += atol(r + 11);
		printf("pcp_migrate: pcp-rseq: %ld membarrier fences, %ld critical sections restarted\n",
		       fences, restarts);
		if (fences == 0) {
			fprintf(stderr, "pcp_migrate: drain_all never fenced a CPU under pcp-rseq\n");
			return 1;
		}
	}
	printf("pcp_migrate: %ld iterations, %ld handler calls, %ld drains, no corruption\n",
	       atomic_load(&iterations), atomic_load(&handler_calls), atomic_load(&drains));
	if (atomic_load(&iterations) == 0 || atomic_load(&handler_calls) == 0 || atomic_load(&drains) == 0) {
		fprintf(stderr, "pcp_migrate: something never ran\n");
		return 1;
	}
	return 0;
}
