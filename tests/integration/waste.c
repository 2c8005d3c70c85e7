/*
 * waste.c — the page-plus-header policy (waste_max), under
 * LD_PRELOAD=libmagpage.so, in whatever MAGPAGE_CONF the ctest entry sets.
 *
 * Proves (README "Which requests it serves"):
 *   - a request of n > 1 pages' worth of bytes is served by the zone only
 *     if n * 4096 - size <= waste_max% of n * 4096, else by glibc; every
 *     size from 4096 to 40 KiB, through malloc (fast path and slow path
 *     alike), calloc, realloc (from glibc and from the zone),
 *     aligned_alloc, posix_memalign, memalign and valloc;
 *   - the boundaries, written out for waste_max 0, 10, 25 and 100 (the
 *     sizes on each side of them);
 *   - a signal handler gets zone pages for every size (glibc is not
 *     signal-safe), whatever waste_max says;
 *   - with stats on, the policy's counters: requests and bytes sent to
 *     glibc, and the rounding waste kept in the zone.
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

#define SWEEP_LO 4096
#define SWEEP_HI (10 * PAGE)

Test(waste, every_size_routed_by_the_formula, .timeout = 60)
{
	unsigned long w = conf_number("waste_max");
	size_t t = conf_number("threshold");
	for (size_t s = SWEEP_LO; s <= SWEEP_HI; s++) {
		bool want = zone_expected(s, w, t);
		void *p = malloc(s);
		cr_assert_not_null(p);
		cr_assert_eq(!!mp.owns(p), want, "malloc(%zu) with waste_max %lu: owned %d", s, w,
			     mp.owns(p));
		((char *)p)[s - 1] = 1;
		/* Again, now that a block of its class may sit in the cache. */
		void *q = malloc(s);
		cr_assert_eq(!!mp.owns(q), want, "second malloc(%zu): owned %d", s, mp.owns(q));
		free(p);
		free(q);
	}
}

Test(waste, every_entry_point_agrees, .timeout = 60)
{
	unsigned long w = conf_number("waste_max");
	size_t t = conf_number("threshold");
	for (size_t s = SWEEP_LO; s <= SWEEP_HI; s += 7) {
		bool want = zone_expected(s, w, t);
		void *p = calloc(1, s);
		cr_assert_eq(!!mp.owns(p), want, "calloc(1, %zu)", s);
		cr_assert_eq(first_nonzero(p, s), -1, "calloc(1, %zu) not zeroed", s);
		free(p);

		p = realloc(malloc(100), s);      /* from glibc */
		cr_assert_eq(!!mp.owns(p), want, "realloc(small -> %zu)", s);
		free(p);
		p = realloc(malloc(20 * PAGE), s); /* from the zone, shrinking */
		cr_assert_eq(!!mp.owns(p), want, "realloc(20 pages -> %zu)", s);
		p = realloc(p, s + 1);             /* same pages, or one more */
		cr_assert_eq(!!mp.owns(p), zone_expected(s + 1, w, t), "realloc(%zu -> %zu)", s,
			     s + 1);
		free(p);

		p = aligned_alloc(64, s);
		cr_assert_eq(!!mp.owns(p), want, "aligned_alloc(64, %zu)", s);
		cr_assert_aligned(p, 64);
		free(p);
		cr_assert_eq(posix_memalign(&p, 4096, s), 0);
		cr_assert_eq(!!mp.owns(p), want, "posix_memalign(4096, %zu)", s);
		cr_assert_aligned(p, 4096);
		free(p);
		p = memalign(8192, s);
		cr_assert_eq(!!mp.owns(p), want, "memalign(8192, %zu)", s);
		cr_assert_aligned(p, 8192);
		free(p);
		p = valloc(s);
		cr_assert_eq(!!mp.owns(p), want, "valloc(%zu)", s);
		cr_assert_aligned(p, 4096);
		free(p);
	}
}

/* The boundaries of each waste_max value these tests run with, written
 * out: the last size glibc gets and the first the zone keeps. */
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
		cr_assert_not(mp.owns(g), "waste_max %lu: malloc(%zu) came from the zone", w,
			      bounds[i].glibc);
		cr_assert(mp.owns(z), "waste_max %lu: malloc(%zu) did not come from the zone", w,
			  bounds[i].zone);
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
	cr_assert_eq(!!mp.owns(p), zone_expected(4101, conf_number("waste_max"),
						 conf_number("threshold")));
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
	unsigned long sent = 0, sent_bytes = 0, kept = 0, kept_bytes = 0;

	unsigned long s0 = mp_report_counter("waste", "sent"), b0 = mp_report_counter("waste", "sent_bytes");
	unsigned long k0 = mp_report_counter("waste", "kept"), kb0 = mp_report_counter("waste", "kept_bytes");
	unsigned long f0 = mp_report_counter("fallback", "waste");
	cr_assert_eq(mp_report_counter("waste", "max_pct"), w);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t s = sizes[i], held = (s + PAGE - 1) / PAGE * PAGE;
		void *p = malloc(s);
		if (zone_expected(s, w, t)) {
			kept++;
			kept_bytes += held - s;
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
}
