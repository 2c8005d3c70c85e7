/*
 * sigregress.h — what the signal regression programs share (issue 8,
 * defects 2, 4, 6, 7): a watchdog, a bounded wait for a child, and the one
 * check they all end with, "this thread is process context again".
 *
 * Each program is plain C with an exit status (no Criterion: several of them
 * fork from inside a handler, or expect a child to crash).  Exit status:
 *   0 pass, 1 the check failed, 2 setup, 3 hang (watchdog or a hung child),
 *   4 a child crashed, 77 skipped.
 *
 * Like the other signal tests they run under LD_PRELOAD=libmagpage.so with
 * stats:json and reach the library only with dlsym; without it the counter
 * checks are skipped, never faked, so the same binaries run under glibc to
 * show what a correct allocator does.
 *
 * Messages go through sigtest.h's say_* (write(2) alone): a check may run in
 * a child forked from a handler, or after the allocator broke.
 */
#ifndef SIGREGRESS_H
#define SIGREGRESS_H

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

#include "sigtest.h"

enum { RX_OK, RX_FAIL, RX_SETUP, RX_HANG, RX_CRASH, RX_SKIP = 77 };

#define RX_PAGE     4096
#define RX_BIG      ((size_t)5 << 20)   /* over the zone's 4 MiB: glibc's */

static const char *rx_prog = "sigregress";

static inline void rx_say(const char *a, const char *b, uint64_t n, bool with_n)
{
	struct say_buf s = { .n = 0 };
	say_str(&s, rx_prog);
	say_str(&s, ": ");
	say_str(&s, a);
	if (b)
		say_str(&s, b);
	if (with_n)
		say_u64(&s, n);
	say_str(&s, "\n");
	say_flush(&s, 2);
}

#define rx_fail(what)         rx_say("FAIL: ", what, 0, false)
#define rx_fail_n(what, n)    rx_say("FAIL: ", what, (uint64_t)(n), true)

static inline double rx_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- the watchdog ------------------------------------------------------------
 * A thread with every signal blocked, so no test signal lands on it; when the
 * deadline passes it reports with write(2) and ends the process, so a hang
 * anywhere (even inside the allocator) becomes a failure that says so.
 * Start it before installing handlers.  A forked child has no watchdog: its
 * parent bounds it with rx_wait_child. */
static int rx_watchdog_s;
static const char *volatile rx_stage = "start";

static void *rx_watchdog_main(void *arg)
{
	(void)arg;
	struct timespec d;
	clock_gettime(CLOCK_MONOTONIC, &d);
	d.tv_sec += rx_watchdog_s;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL) == EINTR)
		;
	struct say_buf s = { .n = 0 };
	say_str(&s, rx_prog);
	say_str(&s, ": FAIL: watchdog: no result after ");
	say_u64(&s, (uint64_t)rx_watchdog_s);
	say_str(&s, " s (hang) at stage: ");
	say_str(&s, rx_stage);
	say_str(&s, "\n");
	say_flush(&s, 2);
	_exit(RX_HANG);
}

static inline void rx_watchdog(int seconds)
{
	pthread_t t;
	sigset_t all, old;

	rx_watchdog_s = seconds;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, NULL, rx_watchdog_main, NULL) != 0) {
		rx_fail("cannot start the watchdog thread");
		_exit(RX_SETUP);
	}
	pthread_detach(t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- children -------------------------------------------------------------------
 * Waits up to timeout_s for pid; a child still running then is killed
 * (SIGKILL) and reported as hung.  Returns RX_OK, RX_FAIL (exited non-zero),
 * RX_HANG or RX_CRASH (killed by a signal); *status gets the wait status. */
static inline int rx_wait_child(pid_t pid, double timeout_s, int *status)
{
	double t0 = rx_now();
	int st = 0;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			rx_fail("waitpid failed");
			return RX_SETUP;
		}
		if (rx_now() - t0 > timeout_s) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			if (status)
				*status = st;
			return RX_HANG;
		}
		struct timespec ts = { 0, 1000000 };   /* 1 ms */
		nanosleep(&ts, NULL);
	}
	if (status)
		*status = st;
	if (WIFSIGNALED(st))
		return RX_CRASH;
	return WEXITSTATUS(st) == 0 ? RX_OK : RX_FAIL;
}

/* ---- the library's counters -------------------------------------------------- */

static char rx_json[1 << 20];

struct rx_counts {
	bool ok;               /* libmagpage is preloaded and the report parsed */
	uint64_t deferred;     /* signal.deferred: glibc frees put off */
	uint64_t drained;      /* signal.deferred_drained */
	uint64_t small;        /* signal.small_to_zone: small requests served as pages */
};

static inline struct rx_counts rx_counts(void)
{
	struct rx_counts c = { .ok = false };
	const char *js = sig_stats_json(sig_print_stats_fn(), rx_json, sizeof(rx_json));

	if (js)
		c.ok = json_u64(js, SIG_SECTION, "deferred", &c.deferred) &&
		       json_u64(js, SIG_SECTION, "deferred_drained", &c.drained) &&
		       json_u64(js, SIG_SECTION, "small_to_zone", &c.small);
	return c;
}

/* ---- "process context again" --------------------------------------------------
 * What a thread that is not in a signal handler gets from the malloc family,
 * whatever the handlers before did:
 *   - a small request is glibc's, not a whole zone page
 *     (malloc_usable_size(malloc(16)) < 4096; libmagpage serves small
 *     requests as pages only in a handler);
 *   - a request over 4 MiB succeeds (only glibc can serve it, and a handler
 *     must not call glibc, so in a handler it fails with ENOMEM);
 *   - a glibc block freed is freed now, not deferred for "the next ordinary
 *     call" that never comes: signal.deferred does not grow over
 *     RX_GLIBC_BLOCKS frees, and every deferred free is drained.
 * The glibc blocks are allocated by rx_glibc_blocks_get beforehand, in plain
 * process context.  Returns the number of failed checks, each reported with
 * `after` (what happened before the check). */
#define RX_GLIBC_BLOCKS 64
static void *rx_glibc_blocks[RX_GLIBC_BLOCKS];

static inline void rx_glibc_blocks_get(void)
{
	for (int i = 0; i < RX_GLIBC_BLOCKS; i++) {
		rx_glibc_blocks[i] = malloc(64 + (size_t)i * 8);
		if (!rx_glibc_blocks[i]) {
			rx_fail("malloc(64..) in process context returned NULL before the test");
			_exit(RX_SETUP);
		}
		memset(rx_glibc_blocks[i], 0x5a, 64);
	}
}

static inline int rx_check_process_context(const char *after)
{
	int bad = 0;

	/* small */
	void *volatile s = malloc(16);
	size_t us = s ? malloc_usable_size(s) : 0;
	if (!s) {
		rx_say("FAIL: malloc(16) returned NULL after ", after, 0, false);
		bad++;
	} else if (us >= RX_PAGE) {
		rx_say("FAIL: malloc(16) is a whole page (the thread still counts as in a signal "
		       "handler) after ", after, 0, false);
		rx_fail_n("  malloc_usable_size(malloc(16)) = ", us);
		bad++;
	}
	free(s);

	/* large */
	errno = 0;
	char *volatile b = malloc(RX_BIG);
	if (!b) {
		int e = errno;
		rx_say("FAIL: malloc(5 MiB) returned NULL (only glibc serves it; a handler may not "
		       "call glibc) after ", after, 0, false);
		rx_fail_n("  errno = ", e);
		bad++;
	} else {
		for (size_t o = 0; o < RX_BIG; o += RX_PAGE)
			b[o] = 1;
		free(b);
	}

	/* glibc frees really happen */
	struct rx_counts c0 = rx_counts();
	for (int i = 0; i < RX_GLIBC_BLOCKS; i++) {
		free(rx_glibc_blocks[i]);
		rx_glibc_blocks[i] = NULL;
	}
	void *volatile one = malloc(16);   /* an ordinary call: drains what is deferred */
	free(one);
	struct rx_counts c1 = rx_counts();
	if (c0.ok && c1.ok) {
		if (c1.deferred != c0.deferred) {
			rx_say("FAIL: free of a glibc block in process context was deferred (as in a "
			       "handler) after ", after, 0, false);
			rx_fail_n("  signal.deferred grew by ", c1.deferred - c0.deferred);
			bad++;
		}
		if (c1.drained != c1.deferred) {
			rx_say("FAIL: deferred glibc frees are never drained after ", after, 0, false);
			rx_fail_n("  signal.deferred - deferred_drained = ", c1.deferred - c1.drained);
			bad++;
		}
	}
	return bad;
}

#endif /* SIGREGRESS_H */
