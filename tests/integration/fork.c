/*
 * fork.c — fork while other threads allocate (pitfall 4 of the notes).
 *
 * Proves, under LD_PRELOAD: while 3 threads malloc and free page blocks
 * (and glibc-sized ones) as fast as they can, the main thread forks 200
 * times; every child can allocate, fill, verify and free page blocks of
 * every cached and uncached order, then exits 0 — within 5 s (alarm), so
 * a lock left held by a thread that does not exist in the child shows as
 * a SIGALRM death, not a hung test.  The parent's blocks are intact after.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "mp_test.h"

enum { HAMMERS = 3, FORKS = 200 };

static volatile int stop;

static void *hammer(void *arg)
{
	unsigned x = (unsigned)(uintptr_t)arg * 7919 + 1;
	void *keep[8] = { 0 };
	while (!stop) {
		x = x * 1103515245 + 12345;
		unsigned k = (x >> 8) % 8;
		free(keep[k]);
		size_t s = (x >> 12) % 5 == 0 ? 64 + (x >> 16) % 3000 : 4096 * (1 + (x >> 16) % 20);
		keep[k] = malloc(s);
		if (keep[k])
			memset(keep[k], (int)k, 64);
	}
	for (unsigned k = 0; k < 8; k++)
		free(keep[k]);
	return NULL;
}

/* What a child does: every order from 0 to 10, plus small requests. */
static int child(void)
{
	alarm(5);
	void *blk[24];
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 24; i++) {
			size_t s = i < 11 ? (size_t)4096 << i : i < 20 ? 4096 * (size_t)(i - 8) + 8 : 100;
			blk[i] = malloc(s);
			if (!blk[i])
				return 3;
			fill(blk[i], s < 65536 ? s : 65536, (uint64_t)i);
		}
		for (int i = 0; i < 24; i++) {
			size_t s = i < 11 ? (size_t)4096 << i : i < 20 ? 4096 * (size_t)(i - 8) + 8 : 100;
			if (check(blk[i], s < 65536 ? s : 65536, (uint64_t)i) != -1)
				return 4;
			free(blk[i]);
		}
	}
	return 0;
}

TestSuite(fork, .init = mp_api_load);

Test(fork, children_allocate_while_parent_threads_allocate, .timeout = 60)
{
	pthread_t t[HAMMERS];
	char *mine = malloc(5 * PAGE);
	cr_assert_not_null(mine);
	fill(mine, 5 * PAGE, 42);

	for (uintptr_t i = 0; i < HAMMERS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
	for (int f = 0; f < FORKS; f++) {
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0)
			_exit(child());
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(!WIFSIGNALED(st) || WTERMSIG(st) != SIGALRM,
			  "fork %d: the child hung (killed by its 5 s alarm)", f);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child status 0x%x", f, st);
	}
	stop = 1;
	for (int i = 0; i < HAMMERS; i++)
		pthread_join(t[i], NULL);
	cr_assert_pattern(mine, 5 * PAGE, 42);
	free(mine);
}
