/*
 * fork_handler.c — a child forked from inside a signal handler, that never
 * returns from it, is process context (issue 8, defect 7).
 *
 *   fork_handler fork|_Fork [ROUNDS]
 *
 * A SIGUSR1 handler forks (fork, or _Fork, which runs no atfork handler);
 * the child, still inside the handler, as PostgreSQL's postmaster children
 * are for their whole life, checks that it is not treated as a signal
 * handler: malloc(100) is not a whole page, malloc(6 MiB) succeeds (a tuple
 * sort asks for that), glibc frees are not deferred (sigregress.h); then
 * _exit(0), or 1 with a message.  The parent waits at most 5 s per child.
 * The parent is single-threaded apart from the watchdog, which never
 * allocates, so a child may call glibc.  On a53d7f8 the child gets a page
 * for malloc(100) and NULL for malloc(6 MiB).
 *
 *   fork_handler during [ROUNDS]
 *
 * The main thread forks ROUNDS times while a second thread sends it
 * SIGUSR1 during each fork, and the handler forks too.  A signal that came
 * while the library's fork handlers held their locks was let in with
 * init_lock still held, and the handler's fork waited for that lock for
 * ever (a soak helper's test; on e97a1be the watchdog fires).  Without the
 * library it hangs too: glibc holds its atfork lock across the system
 * call, where the library holds such a signal back (docs/signals.md).
 */
#include <sys/wait.h>
#include <unistd.h>

#include "sigregress.h"

#define CHILD_BIG ((size_t)6 << 20)

static bool use_Fork;
static volatile pid_t child_pid;

static int child_checks(void)
{
	int bad = rx_check_process_context(use_Fork ? "_Fork() from a signal handler, in the child"
						    : "fork() from a signal handler, in the child");
	char *volatile b = malloc(CHILD_BIG);
	if (!b) {
		rx_fail("in the child, malloc(6 MiB) returned NULL");
		bad++;
	} else {
		for (size_t o = 0; o < CHILD_BIG; o += RX_PAGE)
			b[o] = 1;
		free(b);
	}
	/* the child goes on living: ordinary work, small and page-sized */
	for (int i = 0; i < 2000; i++) {
		void *volatile p = malloc(100), *volatile q = malloc(8192);
		if (!p || !q) {
			rx_fail("in the child, malloc(100)/malloc(8192) returned NULL");
			return bad + 1;
		}
		if (i == 0 && malloc_usable_size(p) >= RX_PAGE) {
			rx_fail("in the child, malloc(100) keeps coming back as a whole page");
			bad++;
		}
		free(p);
		free(q);
	}
	return bad;
}

static void h_fork(int sig)
{
	(void)sig;
	pid_t pid = use_Fork ? _Fork() : fork();
	if (pid == 0)
		_exit(child_checks() ? RX_FAIL : RX_OK);   /* never returns from the handler */
	child_pid = pid;
}

/* ---- during: a handler forks while its thread is in fork ---------------- */

static pthread_t main_thread;
static volatile int in_fork, sender_stop;
static volatile unsigned long handler_forks;

static void h_fork_and_wait(int sig)
{
	(void)sig;
	int saved = errno;
	pid_t pid = fork();
	if (pid == 0)
		_exit(RX_OK);
	if (pid > 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		handler_forks++;
	}
	errno = saved;
}

/* Sends SIGUSR1 to the main thread a few times, 20 us apart, while it is
 * in each fork (in_fork: the round), not more: the handler's forks would
 * otherwise keep the main thread's from ever returning. */
static void *sender(void *arg)
{
	(void)arg;
	int last = 0;
	while (!sender_stop) {
		int round = in_fork;
		if (!round || round == last) {
			sched_yield();
			continue;
		}
		last = round;
		for (int k = 0; k < 4 && in_fork == round; k++) {
			pthread_kill(main_thread, SIGUSR1);
			double t0 = rx_now();
			while (rx_now() - t0 < 20e-6)
				;
		}
	}
	return NULL;
}

static int during(int rounds)
{
	struct sigaction sa;
	pthread_t t;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h_fork_and_wait;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return RX_SETUP;
	main_thread = pthread_self();
	if (pthread_create(&t, NULL, sender, NULL) != 0)
		return RX_SETUP;
	for (int r = 0; r < rounds; r++) {
		rx_stage = "forking while a thread sends SIGUSR1 (whose handler forks)";
		in_fork = r + 1;
		pid_t pid = fork();
		if (pid == 0)
			_exit(RX_OK);
		in_fork = 0;
		if (pid < 0) {
			rx_fail("fork failed");
			return RX_SETUP;
		}
		rx_stage = "waiting for the child";
		if (rx_wait_child(pid, 5.0, NULL) != RX_OK) {
			rx_fail_n("the main thread's child did not exit 0, round ", r + 1);
			return RX_FAIL;
		}
	}
	sender_stop = 1;
	pthread_join(t, NULL);
	if (!handler_forks) {
		rx_fail("no signal came during a fork: nothing was tested");
		return RX_FAIL;
	}
	printf("fork_handler: %d forks while a thread sent SIGUSR1, %lu forks from the "
	       "handler\n", rounds, handler_forks);
	return RX_OK;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;

	rx_prog = "fork_handler";
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || (strcmp(argv[1], "fork") && strcmp(argv[1], "_Fork") &&
			 strcmp(argv[1], "during")) || rounds < 1) {
		fprintf(stderr, "usage: fork_handler fork|_Fork|during [ROUNDS]\n");
		return RX_SETUP;
	}
	rx_watchdog(30);
	if (strcmp(argv[1], "during") == 0)
		return during(rounds);
	use_Fork = strcmp(argv[1], "_Fork") == 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h_fork;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return RX_SETUP;

	for (int r = 0; r < rounds; r++) {
		rx_stage = "fork from the handler";
		rx_glibc_blocks_get();
		child_pid = -1;
		raise(SIGUSR1);
		if (child_pid < 0) {
			rx_fail("fork in the handler failed");
			return RX_SETUP;
		}
		/* the parent's copies: freed here, in process context */
		for (int i = 0; i < RX_GLIBC_BLOCKS; i++)
			free(rx_glibc_blocks[i]);
		rx_stage = "waiting for the child";
		int st, rc = rx_wait_child(child_pid, 5.0, &st);
		if (rc == RX_HANG) {
			rx_fail_n("the child hung (killed after 5 s), round ", r + 1);
			return RX_HANG;
		}
		if (rc == RX_CRASH) {
			rx_fail_n("the child was killed by signal ", WTERMSIG(st));
			return RX_CRASH;
		}
		if (rc != RX_OK) {
			rx_fail_n("the child's checks failed, round ", r + 1);
			return RX_FAIL;
		}
	}
	printf("fork_handler: %s from a SIGUSR1 handler, %d children: each was process context\n",
	       argv[1], rounds);
	return RX_OK;
}
