/*
 * sigcrit.h — what the Criterion signal tests (trampoline.c, context.c)
 * share: the library's API found with dlsym, counter snapshots, "is this
 * thread process context again?", and a per-thread timer.
 *
 * Counter snapshots are taken before any assertion: a Criterion assertion
 * may allocate, and an ordinary allocation drains deferred frees.
 */
#ifndef SIGCRIT_H
#define SIGCRIT_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>

#include <criterion/criterion.h>

#include "magpage.h"
#include "sigtest.h"

#define PAGE 4096

static struct {
	int (*owns)(const void *p);
	int (*get_stats)(struct magpage_stats *st);
	print_stats_fn print_stats;
} mp;

static inline void load_api(void)
{
	mp.owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "magpage_owns");
	mp.get_stats = (int (*)(struct magpage_stats *))dlsym(RTLD_DEFAULT, "magpage_get_stats");
	mp.print_stats = sig_print_stats_fn();
	cr_assert(mp.owns && mp.get_stats && mp.print_stats,
		  "libmagpage's API not found: is LD_PRELOAD=libmagpage.so set?");
}

/* ---- counter snapshots ------------------------------------------------------ */

struct snap {
	bool ok;                   /* every field below was found */
	uint64_t cache_allocs;     /* magpage_get_stats */
	uint64_t irq_hits, irq_misses, entries, stale, reentry;
	uint64_t sig_malloc, sig_free, small_to_zone, deferred, drained;
};

static char json_buf[1 << 20];

static inline struct snap take_snap(void)
{
	struct snap s = { 0 };
	struct magpage_stats st;
	const char *js;

	if (mp.get_stats(&st) != 0)
		return s;
	s.cache_allocs = st.cache_allocs;
	js = sig_stats_json(mp.print_stats, json_buf, sizeof(json_buf));
	if (!js)
		return s;
	s.ok = json_u64(js, SIG_SECTION, "cache_irq_hits", &s.irq_hits) &&
	       json_u64(js, SIG_SECTION, "cache_irq_misses", &s.irq_misses) &&
	       json_u64(js, SIG_SECTION, "handler_entries", &s.entries) &&
	       json_u64(js, SIG_SECTION, "stale_frames", &s.stale) &&
	       json_u64(js, SIG_SECTION, "reentry_caught", &s.reentry) &&
	       json_u64(js, SIG_SECTION, "malloc", &s.sig_malloc) &&
	       json_u64(js, SIG_SECTION, "free", &s.sig_free) &&
	       json_u64(js, SIG_SECTION, "small_to_zone", &s.small_to_zone) &&
	       json_u64(js, SIG_SECTION, "deferred", &s.deferred) &&
	       json_u64(js, SIG_SECTION, "deferred_drained", &s.drained);
	return s;
}

#define cr_assert_snap(s) cr_assert((s).ok, "cannot read the stats JSON (\"signal\" section)")

/* n page-sized malloc/fill/free pairs outside any handler. */
static inline void page_round_trips(int n)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(PAGE);
		if (!p)
			abort();
		blk_fill(p, PAGE, (uint64_t)i);
		if (blk_check(p, PAGE))
			abort();
		free(p);
	}
}

/*
 * After handlers have run (and maybe been left by siglongjmp), ordinary
 * page-sized calls must be process context again: they go through the
 * magazines, and no cache is touched by the interrupt path.
 */
static inline void assert_process_context_again(const char *after)
{
	struct snap a = take_snap();
	page_round_trips(1000);
	struct snap b = take_snap();

	cr_assert_snap(a);
	cr_assert_snap(b);
	cr_assert_geq(b.cache_allocs - a.cache_allocs, 1000,
		      "after %s, 1000 page-sized malloc/free outside any handler made only %lu "
		      "magazine allocations: the thread still counts as in a handler",
		      after, (unsigned long)(b.cache_allocs - a.cache_allocs));
	cr_assert_eq(b.irq_hits + b.irq_misses, a.irq_hits + a.irq_misses,
		     "after %s, ordinary calls took the handler-context (_irq) path", after);
}

/* A POSIX timer that sends sig to the calling thread every period_ns: the
 * kernel delivers it on the thread's own CPU, however busy the machine. */
static inline timer_t thread_timer(int sig, long period_ns, int value)
{
	struct sigevent sev;
	timer_t t;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = sig;
	sev.sigev_value.sival_int = value;
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);   /* sigev_notify_thread_id */
	cr_assert_eq(timer_create(CLOCK_MONOTONIC, &sev, &t), 0);
	struct itimerspec its = { { 0, period_ns }, { 0, period_ns } };
	cr_assert_eq(timer_settime(t, 0, &its, NULL), 0);
	return t;
}

static inline long ns_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

#endif /* SIGCRIT_H */
