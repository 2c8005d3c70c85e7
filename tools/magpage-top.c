/*
 * magpage-top — watch libmagpage inside running processes, like top.
 *
 *   magpage-top              the processes publishing (MAGPAGE_CONF=live:1),
 *                            one line each, refreshed every second
 *   magpage-top PID          one process, full screen, refreshed every second
 *   magpage-top --json PID   one snapshot as JSON, then exit
 *   magpage-top --json       every publishing process, a JSON array
 *   --once                   one plain frame, then exit (scripts)
 *
 * On a terminal the screen views use the alternate screen, plain ANSI
 * escapes and a raw (no echo, no line buffering) terminal, restored on
 * exit, on q, and on SIGINT, SIGTERM and SIGHUP.  Not on a terminal, each
 * frame is printed as plain text.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "top.h"

#define MAX_PROCS 512

static volatile sig_atomic_t stop;
static struct termios saved_tio;
static bool raw_on, screen_on;
static int rows = 24, cols = 80;

/* ---- the frame: built in memory, written at once -------------------------- */

static char frame[1 << 16];
static size_t flen;
static int fline;

/* One line of the frame; cut at the terminal's width and height. */
static void __attribute__((format(printf, 1, 2))) line(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (screen_on && fline >= rows)
		return;
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (screen_on && n > cols)
		n = cols;
	if (flen + (size_t)n + 8 >= sizeof(frame))
		return;
	memcpy(frame + flen, buf, (size_t)n);
	flen += (size_t)n;
	/* the last row ends without a newline, which would scroll the screen */
	const char *end = !screen_on ? "\n" : fline == rows - 1 ? "\033[K" : "\033[K\r\n";
	flen += (size_t)snprintf(frame + flen, sizeof(frame) - flen, "%s", end);
	fline++;
}

static void frame_begin(void)
{
	struct winsize ws;
	if (screen_on && ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		rows = ws.ws_row;
		cols = ws.ws_col;
	}
	flen = 0;
	fline = 0;
	if (screen_on)
		flen = (size_t)snprintf(frame, sizeof(frame), "\033[H");
}

static void frame_end(void)
{
	if (screen_on)
		flen += (size_t)snprintf(frame + flen, sizeof(frame) - flen, "\033[J");
	else
		frame[flen++] = '\n';
	for (size_t off = 0; off < flen;) {
		ssize_t w = write(1, frame + off, flen - off);
		if (w <= 0 && errno != EINTR)
			break;
		off += w > 0 ? (size_t)w : 0;
	}
}

/* ---- the terminal ----------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void term_restore(void)
{
	if (screen_on) {
		ssize_t r = write(1, "\033[?25h\033[?1049l", 14);
		(void)r;
		screen_on = false;
	}
	if (raw_on) {
		tcsetattr(0, TCSAFLUSH, &saved_tio);
		raw_on = false;
	}
}

static void term_setup(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (isatty(0) && tcgetattr(0, &saved_tio) == 0) {
		struct termios t = saved_tio;
		t.c_lflag &= (tcflag_t)~(ICANON | ECHO);
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(0, TCSAFLUSH, &t) == 0)
			raw_on = true;
	}
	if (isatty(1)) {
		ssize_t r = write(1, "\033[?1049h\033[?25l", 14);
		(void)r;
		screen_on = true;
	}
	atexit(term_restore);
}

/* Waits a second for a key; true when it is time to leave. */
static bool wait_tick(void)
{
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	uint64_t until = top_now_ns() + 1000000000ull;

	while (!stop) {
		uint64_t now = top_now_ns();
		if (now >= until)
			return false;
		int ms = (int)((until - now) / 1000000) + 1;
		if (!raw_on) {
			poll(NULL, 0, ms);
			continue;
		}
		if (poll(&pfd, 1, ms) > 0) {
			char c;
			if (read(0, &c, 1) == 1 && (c == 'q' || c == 'Q'))
				return true;
			if (pfd.revents & (POLLHUP | POLLERR))
				pfd.fd = -1;      /* no more input: keep refreshing */
		}
	}
	return true;
}

/* ---- numbers ---------------------------------------------------------------- */

static const char *pct(long pm, char *buf, size_t cap)
{
	if (pm < 0)
		snprintf(buf, cap, "-");
	else
		snprintf(buf, cap, "%ld.%ld%%", pm / 10, pm % 10);
	return buf;
}

/* Events per second between two snapshots, by the publisher's clock. */
static const char *rate(uint64_t now, uint64_t was, const struct live_seg *a,
			const struct live_seg *b, char *buf, size_t cap)
{
	if (!b || a->publish_ns <= b->publish_ns || now < was) {
		snprintf(buf, cap, "-");
		return buf;
	}
	double r = (double)(now - was) * 1e9 / (double)(a->publish_ns - b->publish_ns);
	snprintf(buf, cap, "%.0f", r);
	return buf;
}

static const char *size_of_order(unsigned o)
{
	static const char *const s[] = { "4K", "8K", "16K", "32K", "64K", "128K", "256K",
					 "512K", "1M", "2M", "4M" };
	return s[o];
}

/* ---- one process, full screen ------------------------------------------------- */

static void show_proc(const struct live_seg *s, const struct live_seg *prev)
{
	const struct live_zone *z = &s->zone;
	struct top_sums t, tp;
	char a[32], b[32], c[32], d[32];
	uint64_t now = top_now_ns();

	top_sum(s, &t);
	if (prev)
		top_sum(prev, &tp);
	line("magpage-top  pid %d (%s)  cache %s x%lu  published every %u ms, %lu ms ago%s",
	     s->pid, s->program, s->cache, (unsigned long)s->ncaches, s->period_ms,
	     (unsigned long)(now > s->publish_ns ? (now - s->publish_ns) / 1000000 : 0),
	     s->thread == LIVE_THREAD_FAILED ? " (publisher failed: not updating)" : "");
	line("pages      held %lu (%lu MiB), cached %lu, free %lu of %lu (%lu never used, %lu dirty)",
	     (unsigned long)z->held_pages, (unsigned long)(z->held_pages >> 8),
	     (unsigned long)s->cached_pages, (unsigned long)z->free_pages,
	     (unsigned long)z->pages, (unsigned long)z->untouched_pages,
	     (unsigned long)z->dirty_pages);
	line("zone lock  %lu acquired (%s/s), %lu contended (%s), %lu us waiting",
	     (unsigned long)z->lock_acquired,
	     rate(z->lock_acquired, prev ? prev->zone.lock_acquired : 0, s, prev, a, sizeof(a)),
	     (unsigned long)z->lock_contended, pct(t.contention_pm, b, sizeof(b)),
	     (unsigned long)(z->lock_wait_ns / 1000));
	line("caches     refills %lu (%s/s), drains %lu (%s/s), hit rate %s%s",
	     (unsigned long)t.all.refills,
	     rate(t.all.refills, prev ? tp.all.refills : 0, s, prev, a, sizeof(a)),
	     (unsigned long)t.all.drains,
	     rate(t.all.drains, prev ? tp.all.drains : 0, s, prev, c, sizeof(c)),
	     pct(t.hit_pm, b, sizeof(b)), s->hits_counted ? "" : " (live:counted counts hits)");
	line("purge      %lu pages purged in %lu runs (%lu madvise calls); ticks %lu, idle purges %lu",
	     (unsigned long)z->purged_pages, (unsigned long)z->purge_runs,
	     (unsigned long)z->purge_calls, (unsigned long)s->purge.ticks,
	     (unsigned long)s->purge.idle_purges);
	if (s->counted)
		line("rounding   %s of the bytes held wasted (%s of those held now, %lu MiB)",
		     pct(t.waste_pm, a, sizeof(a)), pct(t.waste_now_pm, b, sizeof(b)),
		     (unsigned long)(s->malloc.live_held >> 20));
	else
		line("rounding   - (live:counted counts rounding waste)");
	line("runs       %lu objects live (%lu MiB), %lu in CPU caches and depots, in %lu runs of "
	     "%lu pages; %s objects/s taken from runs",
	     (unsigned long)s->runs.live, (unsigned long)(s->runs.live_bytes >> 20),
	     (unsigned long)s->runs.cached, (unsigned long)s->runs.runs,
	     (unsigned long)s->runs.pages,
	     rate(s->runs.allocs, prev ? prev->runs.allocs : 0, s, prev, a, sizeof(a)));
	line("signals    %lu handler entries, %lu held back while in the zone, handler allocations %s",
	     (unsigned long)s->sig.handler_entries, (unsigned long)s->sig.deferred_signals,
	     s->counted ? (snprintf(d, sizeof(d), "%lu", (unsigned long)s->malloc.sig_malloc), d)
			: "- (live:counted)");
	line("%s", "");
	line("free blocks per order (buddyinfo)");
	uint64_t most = 1;
	for (unsigned o = 0; o < LIVE_ORDERS; o++)
		if (z->nr_free[o] > most)
			most = z->nr_free[o];
	int width = cols - 26 > 10 ? cols - 26 : 10;
	char bar[512];
	for (unsigned o = 0; o < LIVE_ORDERS; o++) {
		int n = (int)((double)z->nr_free[o] * width / (double)most);
		if (z->nr_free[o] && n == 0)
			n = 1;
		if (n > (int)sizeof(bar) - 1)
			n = (int)sizeof(bar) - 1;
		memset(bar, '#', (size_t)n);
		bar[n] = '\0';
		line("  %2u %5s %10lu %s", o, size_of_order(o), (unsigned long)z->nr_free[o], bar);
	}
	line("%s", "");
	line("  cpu    pages   allocs/s     hit%%  refills/s  drains/s  lock-acq  lock-cont");
	for (unsigned i = 0; i < s->ncaches && i < LIVE_CACHES; i++) {
		const struct live_cache *lc = &s->caches[i];
		const struct live_cache *pc = prev ? &prev->caches[i] : NULL;
		if (!lc->nr_pages && !lc->allocs && !lc->refills && !lc->drains)
			continue;
		long hit = s->hits_counted && lc->allocs ? (long)(lc->hits * 1000 / lc->allocs) : -1;
		char r1[32], r2[32], r3[32], h[32];
		line("  %3u %8lu %10s %8s %10s %9s %9lu %10lu", i, (unsigned long)lc->nr_pages,
		     s->hits_counted ? rate(lc->allocs, pc ? pc->allocs : 0, s, prev, r1, sizeof(r1)) : "-",
		     pct(hit, h, sizeof(h)),
		     rate(lc->refills, pc ? pc->refills : 0, s, prev, r2, sizeof(r2)),
		     rate(lc->drains, pc ? pc->drains : 0, s, prev, r3, sizeof(r3)),
		     (unsigned long)lc->lock_acquired, (unsigned long)lc->lock_contended);
	}
	/* rows that are not one cache, in the words of the report at exit */
	for (unsigned i = 0; i < s->ncaches && i < LIVE_CACHES; i++) {
		const struct live_cache *lc = &s->caches[i];
		unsigned long caches = (unsigned long)(lc->merged - lc->gone);
		if (!lc->merged || (!lc->nr_pages && !lc->allocs && !lc->refills && !lc->drains))
			continue;       /* one cache, or a row the table left out */
		char sums[64] = "";
		if (caches)
			snprintf(sums, sizeof(sums), " sums caches %u to %lu%s", i, i + caches - 1,
				 lc->gone ? " and" : "");
		if (lc->gone)
			line("  %3u%s the counts of %lu threads that exited", i, sums,
			     (unsigned long)lc->gone);
		else
			line("  %3u%s", i, sums);
	}
	if (screen_on) {
		while (fline < rows - 1)
			line("%s", "");
		line("q quits");
	}
}

static int watch(int pid, bool once)
{
	struct top_proc p;
	static struct live_seg cur, prev;
	bool have_prev = false;

	enum top_err e = top_open(pid, &p);
	if (e != TOP_OK) {
		top_complain(pid, e, &p);
		return 1;
	}
	if (!once)
		term_setup();
	for (;;) {
		if (!top_alive(pid)) {
			term_restore();
			fprintf(stderr, "magpage-top: pid %d exited\n", pid);
			return 0;
		}
		if (top_read(&p, &cur)) {
			frame_begin();
			show_proc(&cur, have_prev ? &prev : NULL);
			frame_end();
			/* rates over about a second: keep the older copy while the
			 * publisher has not moved */
			if (!have_prev || cur.publish_ns != prev.publish_ns) {
				prev = cur;
				have_prev = true;
			}
		}
		if (once || wait_tick())
			break;
	}
	term_restore();
	top_close(&p);
	return 0;
}

/* ---- the list ------------------------------------------------------------------ */

static void show_list(void)
{
	int pids[MAX_PROCS];
	int n = top_scan(pids, MAX_PROCS);
	char a[32], b[32], c[32];

	line("magpage-top  %d process%s publishing live statistics (MAGPAGE_CONF=live:1)",
	     n, n == 1 ? "" : "es");
	line("%s", "");
	line("%7s  %-16s %10s %7s %7s %10s  %s", "PID", "PROGRAM", "PAGES-HELD", "HIT%",
	     "WASTE%", "LOCK-CONT%", "CACHE");
	for (int i = 0; i < n; i++) {
		struct top_proc p;
		static struct live_seg s;
		struct top_sums t;
		if (top_open(pids[i], &p) != TOP_OK)
			continue;
		bool ok = top_read(&p, &s);
		top_close(&p);
		if (!ok)
			continue;
		top_sum(&s, &t);
		line("%7d  %-16.16s %10lu %7s %7s %10s  %s", s.pid, s.program,
		     (unsigned long)s.zone.held_pages, pct(t.hit_pm, a, sizeof(a)),
		     pct(t.waste_pm, b, sizeof(b)), pct(t.contention_pm, c, sizeof(c)), s.cache);
	}
	if (screen_on) {
		while (fline < rows - 1)
			line("%s", "");
		line("q quits");
	}
}

static int list(bool once)
{
	if (!once)
		term_setup();
	do {
		frame_begin();
		show_list();
		frame_end();
	} while (!once && !wait_tick());
	term_restore();
	return 0;
}

/* ---- JSON ------------------------------------------------------------------------ */

static int json_one(int pid)
{
	struct top_proc p;
	static struct live_seg s;

	enum top_err e = top_open(pid, &p);
	if (e != TOP_OK) {
		top_complain(pid, e, &p);
		return 1;
	}
	bool ok = top_read(&p, &s);
	top_close(&p);
	if (!ok) {
		fprintf(stderr, "magpage-top: pid %d: no consistent snapshot (the publisher kept it busy)\n", pid);
		return 1;
	}
	top_json(stdout, &s, top_now_ns());
	fputc('\n', stdout);
	return 0;
}

static int json_all(void)
{
	int pids[MAX_PROCS];
	int n = top_scan(pids, MAX_PROCS);
	const char *sep = "";

	fputc('[', stdout);
	for (int i = 0; i < n; i++) {
		struct top_proc p;
		static struct live_seg s;
		if (top_open(pids[i], &p) != TOP_OK)
			continue;
		if (top_read(&p, &s)) {
			fputs(sep, stdout);
			top_json(stdout, &s, top_now_ns());
			sep = ",";
		}
		top_close(&p);
	}
	fputs("]\n", stdout);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: magpage-top [--once] [PID]\n"
		"       magpage-top --json [PID]\n"
		"\n"
		"Shows the live statistics of processes running with libmagpage and\n"
		"MAGPAGE_CONF=live:1 (or live:counted, which also counts cache hits,\n"
		"rounding waste and handler allocations).  Only your own processes are\n"
		"shown (root sees all).\n"
		"\n"
		"  (no PID)     the processes publishing, one line each: pid, program,\n"
		"               pages held, cache hit rate, rounding waste, zone lock\n"
		"               contention; refreshed every second\n"
		"  PID          one process, full screen, refreshed every second: free\n"
		"               blocks per order, each CPU's cache, the zone lock, refills\n"
		"               and drains per second, purge, rounding waste, signals\n"
		"  --json       one snapshot as JSON (a JSON array without PID), then exit\n"
		"  --once       one plain-text frame, then exit\n"
		"  -h, --help   this text\n"
		"\n"
		"Keys: q quits.  '-' marks a number the process does not count.\n"
		"Exit status: 0; 1 when PID does not exist, is not publishing, or\n"
		"belongs to another user; 2 on a usage error.\n");
}

int main(int argc, char **argv)
{
	bool json = false, once = false;
	int pid = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--json") == 0) {
			json = true;
		} else if (strcmp(a, "--once") == 0) {
			once = true;
		} else {
			char *end;
			long v = strtol(a, &end, 10);
			if (*a == '\0' || *end || v <= 0 || v > 0x7fffffff || pid) {
				fprintf(stderr, "magpage-top: '%s' is not a process id (a positive number); "
					"see magpage-top --help\n", a);
				return 2;
			}
			pid = (int)v;
		}
	}
	if (json)
		return pid ? json_one(pid) : json_all();
	return pid ? watch(pid, once) : list(once);
}
