/*
 * fork_storm.c — fork while other threads allocate, under
 * LD_PRELOAD=libmagpage.so.  Bounded; NOT a benchmark.
 *
 *   fork_storm [seconds=3] [max_forks=300] [fork|_Fork]
 *
 * Four threads hammer page-sized malloc/free (every lock of the allocator
 * is taken all the time), while the main thread forks repeatedly.  Each
 * child — the copy of one thread of a process whose other threads may have
 * held any allocator lock at the fork — checks the blocks it inherited from
 * the main thread, frees half of them, allocates and frees page blocks and
 * small blocks, verifies their contents and _exit(0)s.  A child arms
 * alarm(5): death by SIGALRM means it hung (a lock left held across fork).
 * The parent waits for each child with its own deadline, kills a child that
 * outlives it, and counts it as a hang.  A watchdog ends the whole run with
 * a message after seconds + 30 s.
 *
 * With _Fork (glibc 2.34's fork without atfork handlers) no handler takes
 * the allocator's locks before the fork, so the child inherits every lock a
 * parent thread held at that instant, held by a thread it does not have:
 * the allocator must find them and abandon what they guarded.  Every 16th
 * round of its ring (every round with _Fork) a hammer also allocates and
 * frees a burst of BURST 4 KiB blocks, more than a CPU's array holds, so
 * that the depot's locks (and the magazines' zone refills and drains) are
 * held at forks too.  With _Fork the child's rounds pause, so that the
 * purge driver's ticks (and the caches' decay, which reads the depots) run
 * in it.
 *
 * Exit status 0 only if every child exited 0 and no corruption was seen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stress_util.h"

#define HAMMERS 4
#define RING 32
#define INHERITED 64
#define CHILD_ALARM_S 5
#define CHILD_DEADLINE_S 10.0
#define BURST 600

extern pid_t _Fork(void);

static atomic_int stop;
static int use_Fork;
static atomic_int finished;



static uint64_t rnd(uint64_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return *st;
}

static const size_t page_sizes[] = { 4096, 8192, 12288, 16384, 4104, 8032, 32768, 65536 };
#define NSIZES (sizeof(page_sizes) / sizeof(page_sizes[0]))

/* One word per 512 bytes, derived from the address and a tag. */
static void fill(void *p, size_t s, uint64_t tag)
{
	for (size_t off = 0; off + 8 < s; off += 512)
		*(uint64_t *)((char *)p + off) = ((uintptr_t)p + off) ^ tag;
	*(volatile char *)((char *)p + s - 1) = (char)tag;
}

static int verify(const void *p, size_t s, uint64_t tag)
{
	for (size_t off = 0; off + 8 < s; off += 512)
		if (*(const uint64_t *)((const char *)p + off) != (((uintptr_t)p + off) ^ tag))
			return 0;
	return *((const char *)p + s - 1) == (char)tag;
}

/* ---- the threads that keep every lock busy ------------------------------- */

struct ring_entry {
	void *p;
	size_t s;
	uint64_t tag;
};

static void *hammer(void *arg)
{
	uint64_t st = 0x2545f4914f6cdd1dull * (uint64_t)((intptr_t)arg + 1);
	struct ring_entry ring[RING] = { 0 };
	static void *burst[HAMMERS][BURST];
	void **b = burst[(intptr_t)arg];
	unsigned i = 0;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (i % ((use_Fork ? 1 : 16) * RING) == 0) {
			for (unsigned k = 0; k < BURST; k++) {
				b[k] = malloc(4096);
				if (!b[k]) {
					say("fork_storm: malloc(4096) failed in a parent thread\n");
					_exit(1);
				}
				*(volatile char *)b[k] = (char)k;
			}
			for (unsigned k = 0; k < BURST; k++)
				free(b[k]);
		}
		struct ring_entry *e = &ring[i++ % RING];
		if (e->p) {
			if (!verify(e->p, e->s, e->tag)) {
				say("fork_storm: CORRUPTION in a parent thread: block %p size %zu\n", e->p,
				    e->s);
				_exit(1);
			}
			free(e->p);
		}
		e->s = page_sizes[rnd(&st) % NSIZES];
		e->tag = rnd(&st);
		e->p = rnd(&st) % 4 ? malloc(e->s) : calloc(1, e->s);
		if (!e->p) {
			say("fork_storm: malloc(%zu) failed in a parent thread\n", e->s);
			_exit(1);
		}
		fill(e->p, e->s, e->tag);
	}
	for (unsigned k = 0; k < RING; k++)
		free(ring[k].p);
	return NULL;
}

/* ---- the child ------------------------------------------------------------ */

static struct ring_entry inherited[INHERITED];

static void child(unsigned seq)
{
	uint64_t st = 0x9e3779b97f4a7c15ull ^ seq;
	enum { N = 200 };
	struct ring_entry own[N];

	alarm(CHILD_ALARM_S);
	for (unsigned k = 0; k < INHERITED; k++) {
		if (!verify(inherited[k].p, inherited[k].s, inherited[k].tag)) {
			say("fork_storm: child %u: inherited block %p corrupt\n", seq, inherited[k].p);
			_exit(11);
		}
		if (k % 2) {
			free(inherited[k].p);
			inherited[k].p = NULL;
		}
	}
	for (int round = 0; round < 3; round++) {
		for (unsigned k = 0; k < N; k++) {
			own[k].s = k % 4 == 3 ? 16 + rnd(&st) % 2000 : page_sizes[rnd(&st) % NSIZES];
			own[k].tag = rnd(&st);
			own[k].p = k % 5 == 0 ? calloc(1, own[k].s) : malloc(own[k].s);
			if (!own[k].p) {
				say("fork_storm: child %u: malloc(%zu) failed\n", seq, own[k].s);
				_exit(12);
			}
			if (k % 5 == 0)
				for (size_t b = 0; b < own[k].s; b++)
					if (((unsigned char *)own[k].p)[b]) {
						say("fork_storm: child %u: calloc memory not zero\n", seq);
						_exit(13);
					}
			fill(own[k].p, own[k].s, own[k].tag);
		}
		for (unsigned k = 0; k < N; k++) {
			if (!verify(own[k].p, own[k].s, own[k].tag)) {
				say("fork_storm: child %u: block %p size %zu corrupt\n", seq, own[k].p,
				    own[k].s);
				_exit(14);
			}
			free(own[k].p);
		}
		if (use_Fork)
			usleep(2000);
	}
	for (unsigned k = 0; k < INHERITED; k += 2) {
		if (!verify(inherited[k].p, inherited[k].s, inherited[k].tag)) {
			say("fork_storm: child %u: inherited block %p overwritten\n", seq,
			    inherited[k].p);
			_exit(15);
		}
		free(inherited[k].p);
	}
	_exit(0);
}

/* ---- the parent ----------------------------------------------------------- */

static void *watchdog(void *arg)
{
	double limit = *(double *)arg, t0 = now();
	while (!atomic_load(&finished)) {
		if (now() - t0 > limit) {
			say("fork_storm: WATCHDOG: still running %.0f s after start (limit %.0f s): "
			    "deadlock, aborting\n", now() - t0, limit);
			_exit(2);
		}
		usleep(100000);
	}
	return NULL;
}

/* 0 ok, 1 failed, 2 hung */
static int reap(pid_t pid, unsigned seq)
{
	double deadline = now() + CHILD_DEADLINE_S;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			say("fork_storm: waitpid: %s\n", strerror(errno));
			return 1;
		}
		if (now() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			say("fork_storm: child %u (pid %d) still alive after %.0f s: HANG\n", seq,
			    (int)pid, CHILD_DEADLINE_S);
			return 2;
		}
		usleep(200);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
		say("fork_storm: child %u (pid %d) hung: killed by its %d s alarm\n", seq, (int)pid,
		    CHILD_ALARM_S);
		return 2;
	}
	if (WIFSIGNALED(status))
		say("fork_storm: child %u (pid %d) killed by signal %d\n", seq, (int)pid,
		    WTERMSIG(status));
	else
		say("fork_storm: child %u (pid %d) exited with %d\n", seq, (int)pid,
		    WEXITSTATUS(status));
	return 1;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	long max_forks = argc > 2 ? atol(argv[2]) : 300;
	uint64_t st = 12345;

	if (argc > 3 && strcmp(argv[3], "_Fork") == 0)
		use_Fork = 1;
	else if (argc > 3 && strcmp(argv[3], "fork") != 0)
		max_forks = 0;
	if (seconds <= 0 || seconds > 600 || max_forks < 1) {
		fprintf(stderr, "usage: fork_storm [seconds] [max_forks] [fork|_Fork]\n");
		return 2;
	}
	printf("fork_storm: %d allocating threads, up to %ld %ss in %.1f s, MAGPAGE_CONF=\"%s\" "
	       "(a stress test, not a benchmark)\n", HAMMERS, max_forks,
	       use_Fork ? "_Fork" : "fork", seconds,
	       getenv("MAGPAGE_CONF") ? getenv("MAGPAGE_CONF") : "");
	fflush(stdout);

	pthread_t wd, t[HAMMERS];
	double limit = seconds + 30;
	if (pthread_create(&wd, NULL, watchdog, &limit) != 0)
		return 1;
	for (int i = 0; i < HAMMERS; i++)
		if (pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)i) != 0)
			return 1;

	long forks = 0, failed = 0, hung = 0;
	double t0 = now();
	while (forks < max_forks && now() - t0 < seconds) {
		/* Fresh inherited blocks for each child. */
		for (unsigned k = 0; k < INHERITED; k++) {
			inherited[k].s = page_sizes[rnd(&st) % NSIZES];
			inherited[k].tag = rnd(&st);
			inherited[k].p = malloc(inherited[k].s);
			if (!inherited[k].p) {
				fprintf(stderr, "fork_storm: malloc failed\n");
				return 1;
			}
			fill(inherited[k].p, inherited[k].s, inherited[k].tag);
		}
		pid_t pid = use_Fork ? _Fork() : fork();
		if (pid < 0) {
			say("fork_storm: fork: %s\n", strerror(errno));
			failed++;
			break;
		}
		if (pid == 0)
			child((unsigned)forks);
		forks++;
		int r = reap(pid, (unsigned)forks);
		failed += r == 1;
		hung += r == 2;
		for (unsigned k = 0; k < INHERITED; k++) {
			if (!verify(inherited[k].p, inherited[k].s, inherited[k].tag)) {
				say("fork_storm: parent block %p changed while a child ran\n",
				    inherited[k].p);
				failed++;
			}
			free(inherited[k].p);
		}
		if (failed + hung > 5)
			break;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < HAMMERS; i++)
		pthread_join(t[i], NULL);
	atomic_store(&finished, 1);
	pthread_join(wd, NULL);

	printf("fork_storm: %ld %ss, %ld failed, %ld hung\n", forks, use_Fork ? "_Fork" : "fork",
	       failed, hung);
	if (forks == 0 || failed || hung) {
		printf("fork_storm: FAILED\n");
		return 1;
	}
	printf("fork_storm: ok\n");
	return 0;
}
