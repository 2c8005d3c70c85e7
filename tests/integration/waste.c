/*
 * waste.c — the page-plus-header policy (waste_max), under
 * LD_PRELOAD=libmagpage.so, in whatever MAGPAGE_CONF the ctest entry sets.
 *
 * Proves (README "Which requests it serves"):
 *   - a request of n > 1 pages' worth of bytes is served by the zone as
 *     whole pages only if n * 4096 - size <= waste_max% of n * 4096; else
 *     (runs:1, the default) by an object of the run class that fits it,
 *     exactly that class's bytes, 64-byte aligned, or by glibc where no
 *     class fits; every size from 4096 to 40 KiB, through malloc (fast path
 *     and slow path alike), calloc, realloc (from glibc and from the zone),
 *     and whole pages or glibc for aligned_alloc, posix_memalign, memalign
 *     and valloc (an alignment above 16 never gets a run object);
 *   - the boundaries, written out for waste_max 0, 10, 25 and 100 (the
 *     sizes on each side of them);
 *   - a signal handler gets zone pages for every size (glibc is not
 *     signal-safe), whatever waste_max says;
 *   - with stats on, the policy's counters: requests and bytes sent to
 *     glibc, objects the runs served, and the rounding waste kept in the
 *     zone.
 */
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>

#include "mp_test.h"

TestSuite(waste, .init = mp_api_load);

/* The effective value of a numeric key ("key:N" in magpage_print_config). */
static unsigned long conf_number(const char *key)
{
	char buf[4096];
	int fd = memfd_create("mp_conf", 0);
	cr_assert_geq(fd, 0);
	mp.print_config(fd);
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	char want[64];
	snprintf(want, sizeof(want), "%s:", key);
	for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, want, strlen(want)) == 0)
			return strtoul(line + strlen(want), NULL, 10);
	cr_assert_fail("no %s in the configuration", key);
	return 0;
}

/* What the README promises for a process-context request. */
static bool zone_expected(size_t size, unsigned long waste_max, size_t threshold)
{
	if (size < threshold || size > MAX_ZONE_BLOCK)
		return false;
	size_t held = (size + PAGE - 1) / PAGE * PAGE;
	return size <= PAGE || (held - size) * 100 <= waste_max * held;
}

/* The run object for size, as the README gives it: k pages (1 or 2) plus
 * what is left rounded up to 64 bytes, unless that is a whole page; 0 for
 * other sizes. */
static size_t run_bytes_for(size_t size)
{
	if (size <= PAGE || size > 3 * PAGE)
		return 0;
	size_t k = (size - 1) / PAGE, h = (size - k * PAGE + 63) / 64 * 64;
	return h < PAGE ? k * PAGE + h : 0;
}

enum home { GLIBC, PAGES, RUN };
static const char *const home_name[] = { "glibc", "whole pages", "a run object" };

/* Where malloc must put size bytes in process context. */
static enum home home_expected(size_t size, unsigned long waste_max, size_t threshold)
{
	if (zone_expected(size, waste_max, threshold))
		return PAGES;
	if (conf_number("runs") && size >= threshold && size <= MAX_ZONE_BLOCK && run_bytes_for(size))
		return RUN;
	return GLIBC;
}

/* Where p is: a run object is the zone's and not whole pages (object 0
 * of a run is page aligned, but its usable size is not pages). */
static enum home home_of(void *p)
{
	if (!mp.owns(p))
		return GLIBC;
	return ((uintptr_t)p % PAGE == 0 && malloc_usable_size(p) % PAGE == 0) ? PAGES : RUN;
}

/* p, from a request of size bytes, is where the README says, and a run
 * object is its class's bytes, 64-byte aligned. */
static void assert_home(void *p, size_t size, enum home want, const char *what)
{
	cr_assert_not_null(p, "%s(%zu) failed", what, size);
	enum home got = home_of(p);
	cr_assert_eq(got, want, "%s(%zu): %s, not %s", what, size, home_name[got], home_name[want]);
	if (got == RUN) {
		cr_assert_eq(malloc_usable_size(p), run_bytes_for(size),
			     "%s(%zu): usable size %zu of a run object", what, size, malloc_usable_size(p));
		cr_assert_aligned(p, 64);
	}
}

/* An aligned entry point (alignment above 16): pages or glibc, never a run. */
static enum home aligned_home(size_t size, unsigned long waste_max, size_t threshold)
{
	return zone_expected(size, waste_max, threshold) ? PAGES : GLIBC;
}

#define SWEEP_LO 4096
#define SWEEP_HI (10 * PAGE)

Test(waste, every_size_routed_by_the_formula, .timeout = 60)
{
	unsigned long w = conf_number("waste_max");
	size_t t = conf_number("threshold");
	for (size_t s = SWEEP_LO; s <= SWEEP_HI; s++) {
		enum home want = home_expected(s, w, t);
		void *p = malloc(s);
		assert_home(p, s, want, "malloc");
		((char *)p)[s - 1] = 1;
		/* Again, now that a block of its class may sit in the cache. */
		void *q = malloc(s);
		assert_home(q, s, want, "second malloc");
		cr_assert_neq(p, q);
		free(p);
		free(q);
	}
}

Test(waste, every_entry_point_agrees, .timeout = 60)
{
	unsigned long w = conf_number("waste_max");
	size_t t = conf_number("threshold");
	for (size_t s = SWEEP_LO; s <= SWEEP_HI; s += 7) {
		enum home want = home_expected(s, w, t), aligned = aligned_home(s, w, t);
		void *p = calloc(1, s);
		assert_home(p, s, want, "calloc");
		cr_assert_eq(first_nonzero(p, s), -1, "calloc(1, %zu) not zeroed", s);
		fill(p, s, s);                     /* dirty it for the next calloc */
		free(p);
		p = calloc(s, 1);
		assert_home(p, s, want, "calloc again");
		cr_assert_eq(first_nonzero(p, s), -1, "calloc(%zu, 1) not zeroed", s);
		free(p);

		p = malloc(100);
		fill(p, 100, s);
		p = realloc(p, s);                 /* from glibc */
		assert_home(p, s, want, "realloc(small ->)");
		cr_assert_eq(check(p, 100, s), -1, "realloc(small -> %zu) lost the contents", s);
		free(p);
		p = realloc(malloc(20 * PAGE), s); /* from the zone, shrinking */
		assert_home(p, s, want, "realloc(20 pages ->)");
		fill(p, s, s + 1);
		p = realloc(p, s + 1);             /* same pages or object, or a move */
		assert_home(p, s + 1, home_expected(s + 1, w, t), "realloc(+1 ->)");
		cr_assert_eq(check(p, s, s + 1), -1, "realloc(%zu -> %zu) lost the contents", s, s + 1);
		free(p);

		p = aligned_alloc(64, s);
		assert_home(p, s, aligned, "aligned_alloc(64, )");
		cr_assert_aligned(p, 64);
		free(p);
		cr_assert_eq(posix_memalign(&p, 4096, s), 0);
		assert_home(p, s, aligned, "posix_memalign(4096, )");
		cr_assert_aligned(p, 4096);
		free(p);
		p = memalign(8192, s);
		assert_home(p, s, aligned, "memalign(8192, )");
		cr_assert_aligned(p, 8192);
		free(p);
		p = valloc(s);
		assert_home(p, s, aligned, "valloc");
		cr_assert_aligned(p, 4096);
		free(p);
	}
}

/* The boundaries of each waste_max value these tests run with, written
 * out: the last size whole pages do not serve (a run object's or glibc's)
 * and the first they do. */
struct boundary {
	unsigned long waste_max;
	size_t glibc, zone;
};

static const struct boundary bounds[] = {
	/* 10%: 2 pages keep 8192 - 819 = 7373 and up; 3 pages 11060; 9 pages
	 * 33178; from 10 pages on (at most 4095 of 40960 wasted) all */
	{ 10, 7372, 7373 }, { 10, 11059, 11060 }, { 10, 33177, 33178 },
	{ 10, 4097, 9 * PAGE + 1 },
	/* 25%: 6144 (2 pages), 9216 (3); 4 pages and more keep every size */
	{ 25, 6143, 6144 }, { 25, 9215, 9216 }, { 25, 4101, 12289 },
	/* 0: whole pages only */
	{ 0, 8191, 8192 }, { 0, 4097, 3 * PAGE }, { 0, 4 * PAGE - 1, 4096 },
	/* 100: nothing sent away (4097 wastes 49.99% of its 2 pages) */
	{ 100, 100, 4097 }, { 100, 4095, 8224 },
};

Test(waste, boundaries_written_out)
{
	unsigned long w = conf_number("waste_max");
	if (conf_number("threshold") != 4096)
		cr_skip_test("threshold is not 4096");
	int checked = 0;
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		if (bounds[i].waste_max != w)
			continue;
		void *g = malloc(bounds[i].glibc), *z = malloc(bounds[i].zone);
		cr_assert_neq(home_of(g), PAGES, "waste_max %lu: malloc(%zu) got whole pages", w,
			      bounds[i].glibc);
		assert_home(g, bounds[i].glibc, home_expected(bounds[i].glibc, w, 4096), "malloc");
		cr_assert_eq(home_of(z), PAGES, "waste_max %lu: malloc(%zu) did not get whole pages",
			     w, bounds[i].zone);
		free(g);
		free(z);
		checked++;
	}
	if (!checked)
		cr_skip_test("no boundaries written out for waste_max %lu", w);
}

/* ---- handlers ------------------------------------------------------------ */

static volatile sig_atomic_t in_handler_owned, in_handler_done;

static void handler(int sig)
{
	(void)sig;
	int owned = 1;
	/* Page plus header sizes, whatever waste_max says: zone pages. */
	static const size_t sizes[] = { 4097, 4101, 4104, 4129, 4368, 8224, 8248, 6000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *p = malloc(sizes[i]);
		void *q = calloc(1, sizes[i]);
		owned &= p && q && mp.owns(p) && mp.owns(q);
		free(p);
		free(q);
	}
	in_handler_owned = owned;
	in_handler_done = 1;
}

Test(waste, handlers_get_zone_pages_for_every_size)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	cr_assert_eq(sigaction(SIGUSR1, &sa, &old), 0);
	in_handler_done = 0;
	raise(SIGUSR1);
	cr_assert(in_handler_done);
	cr_assert(in_handler_owned, "a handler's page-plus-header request did not get zone pages");
	sigaction(SIGUSR1, &old, NULL);
	/* Process context again: the policy applies. */
	void *p = malloc(4101);
	assert_home(p, 4101, home_expected(4101, conf_number("waste_max"), conf_number("threshold")),
		    "malloc after the handler");
	free(p);
}

/* ---- counters ------------------------------------------------------------ */

Test(waste, counters)
{
	if (!mp_conf_has("stats:json") && !mp_conf_has("stats:1"))
		cr_skip_test("stats off: the malloc layer does not count");
	unsigned long w = conf_number("waste_max");
	size_t t = conf_number("threshold");
	static const size_t sizes[] = { 4101, 4104, 4129, 4368, 8224, 8248, 6000, 7000,
					8000, 12000, 9 * PAGE + 100 };
	unsigned long sent = 0, sent_bytes = 0, kept = 0, kept_bytes = 0, in_runs = 0;

	unsigned long s0 = mp_report_counter("waste", "sent"), b0 = mp_report_counter("waste", "sent_bytes");
	unsigned long k0 = mp_report_counter("waste", "kept"), kb0 = mp_report_counter("waste", "kept_bytes");
	unsigned long f0 = mp_report_counter("fallback", "waste");
	unsigned long r0 = mp_report_counter("runs", "object_mallocs");
	cr_assert_eq(mp_report_counter("waste", "max_pct"), w);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t s = sizes[i], held = (s + PAGE - 1) / PAGE * PAGE;
		void *p = malloc(s);
		enum home h = home_expected(s, w, t);
		assert_home(p, s, h, "malloc");
		if (h == PAGES) {
			kept++;
			kept_bytes += held - s;
		} else if (h == RUN) {
			in_runs++;
		} else {
			sent++;
			sent_bytes += s;
		}
		free(p);
	}
	/* Whole pages waste nothing and are not counted as kept. */
	free(malloc(3 * PAGE));
	cr_assert_eq(mp_report_counter("waste", "sent") - s0, sent);
	cr_assert_eq(mp_report_counter("waste", "sent_bytes") - b0, sent_bytes);
	cr_assert_eq(mp_report_counter("fallback", "waste") - f0, sent);
	cr_assert_eq(mp_report_counter("waste", "kept") - k0, kept);
	cr_assert_eq(mp_report_counter("waste", "kept_bytes") - kb0, kept_bytes);
	cr_assert_eq(mp_report_counter("runs", "object_mallocs") - r0, in_runs);
}
