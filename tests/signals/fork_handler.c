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
 */
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

int main(int argc, char **argv)
{
	struct sigaction sa;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;

	rx_prog = "fork_handler";
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || (strcmp(argv[1], "fork") && strcmp(argv[1], "_Fork")) || rounds < 1) {
		fprintf(stderr, "usage: fork_handler fork|_Fork [ROUNDS]\n");
		return RX_SETUP;
	}
	use_Fork = strcmp(argv[1], "_Fork") == 0;
	rx_watchdog(30);

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
