/*
 * fork_threads.c — the child of a _Fork from a signal handler can allocate
 * while the parent's other threads were allocating (issue 8, defect 4).
 *
 *   fork_threads [ROUNDS]
 *
 * Three threads allocate and free page-sized and larger blocks without a
 * pause, so the zone and cache locks are held most of the time.  The main
 * thread raises SIGUSR1, whose handler calls _Fork() (async-signal-safe; no
 * atfork handler runs, so no lock is taken or reset for the child).  The
 * child calls malloc(8192)/free and malloc(100)/free and _exits 0 (1 on a
 * NULL).  The parent gives each child 5 s; a child still running is killed
 * and counted as hung, and the test stops at the first one.  Every worker
 * size is libmagpage's (4 KiB .. 128 KiB), and the main thread allocates
 * nothing while it raises, so no glibc lock is held in the child.  On a53d7f8 children spin for good on
 * the zone lock, which a thread that does not exist in the child held.
 */
#include <stdatomic.h>
#include <unistd.h>

#include "sigregress.h"

#define WORKERS 3
#define BATCH   16

static atomic_bool stop;
static _Atomic unsigned long worker_ops;
static volatile pid_t child_pid;

static void *worker(void *arg)
{
	/* one to eight pages come from the caches, larger ones from the zone */
	static const size_t sizes[] = { 4096, 8192, 12288, 16384, 32768, 65536, 131072, 4104 };
	void *blk[BATCH];
	unsigned long n = 0;
	unsigned k = (unsigned)(uintptr_t)arg;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (int i = 0; i < BATCH; i++) {
			size_t s = sizes[(k++ * 7) % 8];
			blk[i] = malloc(s);
			if (blk[i])
				((char *)blk[i])[s - 1] = 1;
		}
		for (int i = 0; i < BATCH; i++)
			free(blk[i]);
		n += BATCH;
	}
	atomic_fetch_add(&worker_ops, n);
	return NULL;
}

static void h_fork(int sig)
{
	(void)sig;
	pid_t pid = _Fork();
	if (pid == 0) {
		/* the child: one thread, inside the handler */
		void *volatile a = malloc(8192);
		if (!a)
			_exit(1);
		((char *)a)[8191] = 1;
		free(a);
		void *volatile b = malloc(100);
		if (!b)
			_exit(1);
		free(b);
		_exit(0);
	}
	child_pid = pid;
}

int main(int argc, char **argv)
{
	pthread_t th[WORKERS];
	struct sigaction sa;
	int rounds = argc > 1 ? atoi(argv[1]) : 40, ok = 0;

	rx_prog = "fork_threads";
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (rounds < 1)
		return RX_SETUP;
	rx_watchdog(60);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h_fork;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return RX_SETUP;
	/* the workers never take SIGUSR1: only the main thread forks */
	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, &old);
	for (uintptr_t i = 0; i < WORKERS; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i) != 0)
			return RX_SETUP;
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	int result = RX_OK;
	for (int r = 0; r < rounds && result == RX_OK; r++) {
		struct timespec ts = { 0, 2000000 + (r % 5) * 700000 };   /* 2..5 ms */
		nanosleep(&ts, NULL);
		rx_stage = "_Fork from the handler";
		child_pid = -1;
		raise(SIGUSR1);
		if (child_pid < 0) {
			rx_fail("_Fork in the handler failed");
			result = RX_SETUP;
			break;
		}
		rx_stage = "waiting for the child";
		int st, rc = rx_wait_child(child_pid, 5.0, &st);
		if (rc == RX_HANG) {
			rx_fail_n("a _Fork child hung (killed after 5 s): the parent's allocating threads "
				  "held a lock it waits for; round ", r + 1);
			result = RX_HANG;
		} else if (rc == RX_CRASH) {
			rx_fail_n("a _Fork child was killed by signal ", WTERMSIG(st));
			result = RX_CRASH;
		} else if (rc != RX_OK) {
			rx_fail_n("a _Fork child's malloc returned NULL; round ", r + 1);
			result = RX_FAIL;
		} else {
			ok++;
		}
	}
	atomic_store(&stop, true);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(th[i], NULL);
	printf("fork_threads: %d of %d _Fork children allocated and exited; workers made %lu "
	       "allocations meanwhile\n", ok, rounds, (unsigned long)atomic_load(&worker_ops));
	return result;
}
