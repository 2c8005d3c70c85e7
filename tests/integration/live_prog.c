/*
 * live_prog — a program whose allocator counters keep changing, for the
 * live statistics tests (live.sh, live_tmux.sh).  Not a benchmark.
 *
 *   live_prog SECONDS [fork|threads]
 *
 * Allocates and frees page-sized blocks in bursts of varying size (so that
 * the caches refill from and drain to the zone), some of them a page plus a
 * header (rounding waste), with a timer signal whose handler allocates too;
 * sleeps a little between bursts.  Prints "ready PID" once running; with
 * "fork" it forks first and the child, which does the same, prints
 * "child PID"; with "threads" it first runs THREADS threads one after
 * another, each a burst.  Exits after SECONDS.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BURST 512
#define THREADS 80

static void on_alarm(int sig)
{
	(void)sig;
	/* handler allocations: libmagpage serves both, the small one as a
	 * whole page (glibc is not async-signal-safe) */
	void *p = malloc(8192), *q = malloc(200);
	if (p)
		memset(p, 0, 64);
	free(q);
	free(p);
}

static void run(int seconds)
{
	static void *blocks[BURST];
	time_t end = time(NULL) + seconds;
	unsigned r = (unsigned)getpid();

	while (time(NULL) < end) {
		r = r * 1103515245u + 12345u;
		unsigned n = 1 + (r >> 8) % BURST;
		for (unsigned i = 0; i < n; i++) {
			r = r * 1103515245u + 12345u;
			size_t pages = 1 + (r >> 12) % 6;
			size_t size = pages * 4096 + ((r >> 20) % 3 == 0 ? 100 : 0);
			blocks[i] = malloc(size);
			if (blocks[i])
				memset(blocks[i], 1, 64);
		}
		for (unsigned i = 0; i < n; i++)
			free(blocks[i]);
		struct timespec ts = { 0, 5 * 1000000 };
		nanosleep(&ts, NULL);
	}
}

static void *one_burst(void *arg)
{
	(void)arg;
	void *p[8];
	for (int i = 0; i < 8; i++)
		p[i] = malloc(8192);
	for (int i = 0; i < 8; i++)
		free(p[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	int do_fork = argc > 2 && strcmp(argv[2], "fork") == 0;
	int do_threads = argc > 2 && strcmp(argv[2], "threads") == 0;

	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 50000 }, { 0, 50000 } };
	setitimer(ITIMER_REAL, &it, NULL);

	run(1);
	for (int i = 0; do_threads && i < THREADS; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, one_burst, NULL) == 0)
			pthread_join(t, NULL);
	}
	if (do_fork) {
		pid_t c = fork();
		if (c == 0) {
			setitimer(ITIMER_REAL, &it, NULL);
			printf("child %d\n", (int)getpid());
			fflush(stdout);
			run(seconds);
			_exit(0);
		}
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	run(seconds);
	return 0;
}
