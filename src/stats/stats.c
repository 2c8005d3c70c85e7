/*
 * stats.c — the statistics report, as text or as one JSON object.
 *
 * Written without malloc into a private mapping and sent with one write(),
 * so that the reports of many processes appending to one stats_file
 * (make, PostgreSQL) never interleave.  Each report names its process.
 *
 * stats_file is opened as a root process may meet it in /tmp, planted by
 * another user: a symbolic link there is refused (O_NOFOLLOW), a new file
 * is created 0600, and an existing one is used only if it cannot be a way
 * into someone else's file: a regular file or FIFO owned by this process's
 * effective user (a regular file with one link only), or any character
 * device (/dev/null, a terminal: only root can make those).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define REPORT_BYTES (512u << 10)

/* The program's name, copied at start-up: some programs (PostgreSQL) write
 * their process title over argv[0], where program_invocation_short_name
 * points, long before the report is written at exit. */
static char stats_program[64];

void stats_init(void)
{
	size_t n = 0;
	for (const char *s = program_invocation_short_name; s && s[n] && n < sizeof(stats_program) - 1; n++)
		stats_program[n] = s[n];
	stats_program[n] = '\0';
}

struct report {
	struct zone_info zi;
	struct malloc_stats ms;
	struct runs_stats rs;
	struct cache_view views[MAX_CACHES];
	struct cache_counters total[CACHE_CLASSES];   /* summed over caches */
	uint64_t cached_pages;
	unsigned ncaches;
};

static void collect(struct report *r)
{
	memset(r, 0, sizeof(*r));
	zone_info(&r->zi);
	malloc_stats_read(&r->ms);
	runs_stats(&r->rs);
	r->ncaches = cache_views(r->views, MAX_CACHES);   /* the last row sums the rest */
	r->cached_pages = cache_depot_pages();
	for (unsigned i = 0; i < r->ncaches; i++) {
		r->cached_pages += r->views[i].nr_pages;
		for (unsigned o = 0; o < CACHE_CLASSES; o++)
			cache_counters_add(&r->total[o], &r->views[i].c[o]);
	}
}

static unsigned long ul(uint64_t v)
{
	return (unsigned long)v;
}

/* Percentage with one decimal, as "12.3". */
static void pct(struct fmt_buf *b, uint64_t part, uint64_t whole)
{
	uint64_t t = whole ? part * 1000 / whole : 0;
	fmt_printf(b, "%lu.%lu", ul(t / 10), ul(t % 10));
}

/* ---- text ----------------------------------------------------------------- */

/* A column of the caches' table, from CACHE_COUNTERS. */
#define TEXT_count(b, w, c, n) fmt_printf(b, " %*lu", w, ul((c)->n))
#define TEXT_range(b, w, c, n) do { \
		char range[24]; \
		fmt_snprintf(range, sizeof(range), "%u-%u", (c)->n##_min, (c)->n##_max); \
		fmt_printf(b, " %*s", w, range); \
	} while (0)

static void print_text(struct fmt_buf *b, const struct report *r)
{
	const struct malloc_stats *m = &r->ms;
	const struct zone_info *z = &r->zi;

	fmt_printf(b, "=== libmagpage stats: pid %d (%s), cache %s x%u, region %lu MiB ===\n",
		   (int)getpid(), stats_program, cache_name(), r->ncaches,
		   ul(zg.bytes >> 20));
	fmt_printf(b, "malloc: malloc %lu  calloc %lu  realloc %lu  memalign %lu  free %lu\n",
		   ul(m->malloc_calls), ul(m->calloc_calls), ul(m->realloc_calls),
		   ul(m->memalign_calls), ul(m->free_calls));
	fmt_printf(b, "  zone-served: %lu allocations, %lu frees, %lu realloc in place, %lu calloc memsets skipped\n",
		   ul(m->zone_allocs), ul(m->zone_frees), ul(m->realloc_in_place),
		   ul(m->calloc_memset_skipped));
	fmt_printf(b, "  bytes requested %lu, held %lu (rounding to pages costs ", ul(m->bytes_requested),
		   ul(m->bytes_held));
	pct(b, m->bytes_held - m->bytes_requested, m->bytes_held);
	fmt_printf(b, "%%); live: requested %ld, held %ld\n", (long)m->live_requested, (long)m->live_held);
	fmt_printf(b, "  fallback (glibc): small %lu, large %lu, waste %lu, foreign frees %lu, zone exhausted %lu, aligned %lu\n",
		   ul(m->fb_small), ul(m->fb_large), ul(m->fb_waste), ul(m->fb_foreign),
		   ul(m->fb_exhausted), ul(m->fb_align));
	fmt_printf(b, "  waste policy (waste_max %u%%): %lu requests of %lu bytes sent to glibc; "
		   "kept in the zone: %lu over a page and not whole pages, wasting %lu bytes\n",
		   opt.waste_max, ul(m->fb_waste), ul(m->fb_waste_bytes), ul(m->waste_kept),
		   ul(m->waste_kept_bytes));
	fmt_printf(b, "  runs (%s): %lu objects live (%lu bytes), %lu in CPU caches and depots "
		   "(%s), in %lu runs of %lu pages; %lu objects taken from runs, %lu given back "
		   "(%lu by the caches' drains); %lu runs made, %lu given back; "
		   "%lu depot moves; %lu handler frees deferred; objects malloc'd %lu, "
		   "freed %lu\n",
		   opt.runs ? "on" : "off", ul(r->rs.live), ul(r->rs.live_bytes), ul(r->rs.cached),
		   r->rs.cache_cpus ? "on" : "off",
		   ul(r->rs.runs), ul(r->rs.pages), ul(r->rs.allocs), ul(r->rs.frees),
		   ul(r->rs.cache_drained), ul(r->rs.made), ul(r->rs.released),
		   ul(r->rs.depot_moves), ul(r->rs.deferred), ul(m->run_allocs),
		   ul(m->run_frees));
	runs_text(b);
	fmt_printf(b, "  invalid frees caught: %lu\n", ul(m->invalid_frees));

	fmt_printf(b, "caches (%s): %lu pages held now\n", cache_name(), ul(r->cached_pages));
	fmt_printf(b, "  %-4s %-5s", "id", "pages");
#define X(n, kind, w, h) fmt_printf(b, " %*s", w, h);
	CACHE_COUNTERS(X)
#undef X
	fmt_printf(b, "\n");
	for (unsigned i = 0; i < r->ncaches; i++) {
		const struct cache_view *v = &r->views[i];
		for (unsigned o = 0; o < CACHE_CLASSES; o++) {
			const struct cache_counters *c = &v->c[o];
			if (!c->allocs && !c->frees && !v->nr_blocks[o])
				continue;
			fmt_printf(b, "  %-4u %-5u", i, o + 1);
#define X(n, kind, w, h) TEXT_##kind(b, w, c, n);
			CACHE_COUNTERS(X)
#undef X
			fmt_printf(b, "\n");
		}
		if (cache.text_cache)
			cache.text_cache(b, i, v);
		cache_text_merged(b, i, v);
	}
	if (cache.text_design)
		cache.text_design(b);
	fmt_printf(b, "zone: %lu pages, %lu free (%lu never used); lock %lu acquired, %lu contended (%lu us waiting)\n",
		   ul(z->pages), ul(z->free_pages), ul(z->untouched_pages), ul(z->lock_acquired),
		   ul(z->lock_contended), ul(z->lock_wait_ns / 1000));
	fmt_printf(b, "  blocks out %lu, in %lu; refill batches %lu (%lu blocks, %lu cut short); splits %lu, merges %lu; 4 MiB blocks carved %lu; purged %lu pages\n",
		   ul(z->allocs), ul(z->frees), ul(z->batches), ul(z->batch_blocks), ul(z->batch_breaks),
		   ul(z->splits), ul(z->merges), ul(z->carved), ul(z->purged_pages));
	fmt_printf(b, "  drains before carving: %lu (%lu pages given back), %lu carves spared\n",
		   ul(pa_carve_stats.drains), ul(pa_carve_stats.pages), ul(pa_carve_stats.spared));
	fmt_printf(b, "  purge (delay %u ms, cache decay %u ms, %s%s): %lu dirty free pages now; purged %lu pages (%lu MiB) in %lu runs, %lu madvise calls; ticks %lu, trips %lu, idle purges %lu, thread wakeups %lu\n",
		   opt.purge_delay_ms, purge_cache_decay_ms(),
		   options_enum_name("purge_advice", opt.purge_advice),
		   opt.purge_thread ? ", thread" : "", ul(z->dirty_pages), ul(z->purged_pages),
		   ul(z->purged_pages >> 8), ul(z->purge_runs), ul(z->purge_calls),
		   ul(purge_stats.ticks), ul(purge_stats.trips), ul(purge_stats.idle_purges),
		   ul(purge_stats.wakeups));
	if (z->fork_deferred_frees || z->fork_refused_allocs || reserve_stats.filled)
		fmt_printf(b, "  during fork: %lu handler frees deferred, %lu handler allocations refused by the zone; reserve: %lu blocks put in, %lu served to handlers, %lu taken back, %lu refills from the frontier, %lu times empty\n",
			   ul(z->fork_deferred_frees), ul(z->fork_refused_allocs),
			   ul(reserve_stats.filled), ul(reserve_stats.served),
			   ul(reserve_stats.returned), ul(reserve_stats.carved), ul(reserve_stats.empty));
	if (sig_stats.forks_detected)
		fmt_printf(b, "  child of _Fork: locks held by threads that do not exist here were reset; %lu pages abandoned\n",
			   ul(z->abandoned_pages));
	fmt_printf(b, "  buddyinfo (free blocks per order 0..10):");
	for (unsigned o = 0; o < MAX_ORDER; o++)
		fmt_printf(b, " %lu", ul(z->nr_free[o]));
	fmt_printf(b, "\n");
	stats_numa_text(b);
	fmt_printf(b, "signal (%s, zone_irqsave %s): handler entries %lu, held back while in the zone %lu; malloc-family calls in handlers %lu (free %lu); small requests served as whole pages %lu; glibc frees deferred %lu, drained %lu; re-entries caught %lu; handler levels recovered after siglongjmp %lu\n",
		   options_enum_name("signal", opt.signal),
		   options_enum_name("zone_irqsave", opt.zone_irqsave), ul(sig_stats.handler_entries),
		   ul(sig_stats.deferred_signals),
		   ul(m->sig_malloc + m->sig_free), ul(m->sig_free), ul(m->sig_small_zone),
		   ul(m->sig_deferred), ul(m->sig_deferred_drained), ul(sig_stats.reentry_caught),
		   ul(sig_stats.stale_frames));
}

/* ---- JSON ------------------------------------------------------------------ */

/* The JSON members of one struct cache_counters, from its list. */
#define JSON_count(b, sep, c, n) fmt_printf(b, "%s\"" #n "\":%lu", sep, ul((c)->n))
#define JSON_range(b, sep, c, n) \
	fmt_printf(b, "%s\"" #n "_min\":%u,\"" #n "_max\":%u", sep, (c)->n##_min, (c)->n##_max)

static void json_counters(struct fmt_buf *b, const struct cache_counters *c)
{
	const char *sep = "";
#define X(n, kind, w, h) JSON_##kind(b, sep, c, n); sep = ",";
	CACHE_COUNTERS(X)
#undef X
}

static void print_json(struct fmt_buf *b, const struct report *r)
{
	const struct malloc_stats *m = &r->ms;
	const struct zone_info *z = &r->zi;
	struct cache_counters all = { 0 };

	for (unsigned o = 0; o < CACHE_CLASSES; o++)
		cache_counters_add(&all, &r->total[o]);
	fmt_printf(b, "{\"libmagpage\":1,\"pid\":%d,\"program\":", (int)getpid());
	fmt_json_string(b, stats_program);
	fmt_printf(b, ",\"cache\":\"%s\",\"config\":{", cache_name());
	options_print_json(b, &opt);
	fmt_printf(b, "},\"region_bytes\":%lu,", ul(zg.bytes));

	fmt_printf(b, "\"malloc\":{\"calls\":{\"malloc\":%lu,\"calloc\":%lu,\"realloc\":%lu,"
		   "\"memalign\":%lu,\"free\":%lu},", ul(m->malloc_calls), ul(m->calloc_calls),
		   ul(m->realloc_calls), ul(m->memalign_calls), ul(m->free_calls));
	fmt_printf(b, "\"zone_allocs\":%lu,\"zone_frees\":%lu,\"realloc_in_place\":%lu,"
		   "\"calloc_memset_skipped\":%lu,\"bytes_requested\":%lu,\"bytes_held\":%lu,"
		   "\"live_bytes_requested\":%ld,\"live_bytes_held\":%ld,",
		   ul(m->zone_allocs), ul(m->zone_frees), ul(m->realloc_in_place),
		   ul(m->calloc_memset_skipped), ul(m->bytes_requested), ul(m->bytes_held),
		   (long)m->live_requested, (long)m->live_held);
	fmt_printf(b, "\"fallback\":{\"small\":%lu,\"large\":%lu,\"waste\":%lu,\"foreign_free\":%lu,"
		   "\"exhausted\":%lu,\"aligned\":%lu},",
		   ul(m->fb_small), ul(m->fb_large), ul(m->fb_waste), ul(m->fb_foreign),
		   ul(m->fb_exhausted), ul(m->fb_align));
	fmt_printf(b, "\"waste\":{\"max_pct\":%u,\"sent\":%lu,\"sent_bytes\":%lu,"
		   "\"kept\":%lu,\"kept_bytes\":%lu},",
		   opt.waste_max, ul(m->fb_waste), ul(m->fb_waste_bytes), ul(m->waste_kept),
		   ul(m->waste_kept_bytes));
	fmt_printf(b, "\"runs\":{\"on\":%s,\"live\":%lu,\"live_bytes\":%lu,\"held\":%lu,"
		   "\"pages\":%lu,\"allocs\":%lu,\"frees\":%lu,\"made\":%lu,\"released\":%lu,"
		   "\"deferred\":%lu,\"cache_cpus\":%lu,\"cached\":%lu,\"cache_drained\":%lu,"
		   "\"depot_moves\":%lu,"
		   "\"object_mallocs\":%lu,\"object_frees\":%lu},"
		   "\"invalid_frees\":%lu},", opt.runs ? "true" : "false",
		   ul(r->rs.live), ul(r->rs.live_bytes), ul(r->rs.runs), ul(r->rs.pages),
		   ul(r->rs.allocs), ul(r->rs.frees), ul(r->rs.made), ul(r->rs.released),
		   ul(r->rs.deferred), ul(r->rs.cache_cpus), ul(r->rs.cached),
		   ul(r->rs.cache_drained), ul(r->rs.depot_moves), ul(m->run_allocs),
		   ul(m->run_frees), ul(m->invalid_frees));

	fmt_printf(b, "\"caches\":{\"type\":\"%s\",\"count\":%u,\"cached_pages\":%lu,", cache_name(),
		   r->ncaches, ul(r->cached_pages));
	json_counters(b, &all);
	fmt_printf(b, ",\"sizes\":[");
	for (unsigned o = 0; o < CACHE_CLASSES; o++) {
		fmt_printf(b, "%s{\"pages\":%u,", o ? "," : "", o + 1);
		json_counters(b, &r->total[o]);
		fmt_printf(b, "}");
	}
	fmt_printf(b, "]");
	if (cache.json_design)
		cache.json_design(b);
	fmt_printf(b, ",\"list\":[");
	for (unsigned i = 0; i < r->ncaches; i++) {
		const struct cache_view *v = &r->views[i];
		fmt_printf(b, "%s{\"id\":%u,\"merged\":%u,\"gone\":%u,\"nr_pages\":%u,"
			   "\"lock\":{\"acquired\":%lu,\"contended\":%lu,\"wait_ns\":%lu,"
			   "\"trylock_failed\":%lu},\"restarts\":%lu,\"sizes\":[", i ? "," : "", i,
			   v->merged, v->gone, v->nr_pages, ul(v->lock_acquired),
			   ul(v->lock_contended), ul(v->lock_wait_ns), ul(v->trylock_failed),
			   ul(v->restarts));
		for (unsigned o = 0; o < CACHE_CLASSES; o++) {
			fmt_printf(b, "%s{\"pages\":%u,\"nr_blocks\":%u,", o ? "," : "", o + 1, v->nr_blocks[o]);
			json_counters(b, &v->c[o]);
			fmt_printf(b, "}");
		}
		fmt_printf(b, "]}");
	}
	fmt_printf(b, "]},");

	fmt_printf(b, "\"zone\":{\"pages\":%lu,\"free_pages\":%lu,\"untouched_pages\":%lu,"
		   "\"lock\":{\"acquired\":%lu,\"contended\":%lu,\"wait_ns\":%lu},",
		   ul(z->pages), ul(z->free_pages), ul(z->untouched_pages), ul(z->lock_acquired),
		   ul(z->lock_contended), ul(z->lock_wait_ns));
#define X(field, json) fmt_printf(b, "\"" json "\":%lu,", ul(z->field));
	ZONE_EVENT_COUNTERS(X)
#undef X
	fmt_printf(b, "\"carve_drains\":{\"drains\":%lu,\"pages\":%lu,\"spared\":%lu},",
		   ul(pa_carve_stats.drains), ul(pa_carve_stats.pages), ul(pa_carve_stats.spared));
	fmt_printf(b, "\"fork_deferred_frees\":%lu,\"fork_refused_allocs\":%lu,"
		   "\"fork_reserve\":{\"filled\":%lu,\"served\":%lu,\"returned\":%lu,\"carved\":%lu,\"empty\":%lu},"
		   "\"forks_detected\":%lu,\"abandoned_pages\":%lu,\"buddyinfo\":[",
		   ul(z->fork_deferred_frees), ul(z->fork_refused_allocs), ul(reserve_stats.filled),
		   ul(reserve_stats.served), ul(reserve_stats.returned), ul(reserve_stats.carved),
		   ul(reserve_stats.empty), ul(sig_stats.forks_detected), ul(z->abandoned_pages));
	for (unsigned o = 0; o < MAX_ORDER; o++)
		fmt_printf(b, "%s%lu", o ? "," : "", ul(z->nr_free[o]));
	fmt_printf(b, "],\"purge\":{\"delay_ms\":%u,\"cache_decay_ms\":%u,\"dirty_pages\":%lu,"
		   "\"purged_pages\":%lu,\"purged_bytes\":%lu,", opt.purge_delay_ms,
		   purge_cache_decay_ms(), ul(z->dirty_pages),
		   ul(z->purged_pages), ul(z->purged_pages << PAGE_SHIFT));
#define X(field, json) fmt_printf(b, "\"" json "\":%lu,", ul(z->field));
	ZONE_PURGE_COUNTERS(X)
#undef X
	fmt_printf(b, "\"ticks\":%lu,\"trips\":%lu,\"idle_purges\":%lu,\"thread_wakeups\":%lu}},",
		   ul(purge_stats.ticks), ul(purge_stats.trips), ul(purge_stats.idle_purges),
		   ul(purge_stats.wakeups));

	stats_numa_json(b);
	fmt_printf(b, "\"signal\":{\"zone_irqsave\":\"%s\",\"held_back\":%lu,",
		   options_enum_name("zone_irqsave", opt.zone_irqsave), ul(sig_stats.deferred_signals));
	fmt_printf(b, "\"policy\":\"%s\",\"handler_entries\":%lu,\"malloc\":%lu,\"free\":%lu,"
		   "\"small_to_zone\":%lu,\"deferred\":%lu,\"deferred_drained\":%lu,"
		   "\"reentry_caught\":%lu,\"stale_frames\":%lu,\"cache_irq_hits\":%lu,"
		   "\"cache_irq_misses\":%lu}}\n",
		   options_enum_name("signal", opt.signal), ul(sig_stats.handler_entries),
		   ul(m->sig_malloc), ul(m->sig_free), ul(m->sig_small_zone), ul(m->sig_deferred),
		   ul(m->sig_deferred_drained), ul(sig_stats.reentry_caught), ul(sig_stats.stale_frames),
		   ul(all.irq_hits), ul(all.irq_misses));
}

void stats_print(int fd, bool json)
{
	static struct report r;   /* large; reports are rare and made one at a time */
	static struct mp_lock report_lock;
	int saved = errno;

	/* The whole report in one buffer, so that it is one write (processes
	 * that append to one file do not mix their lines).  Without room for
	 * it (a process that used all its RLIMIT_AS printed no report), a
	 * page of its own, flushed as it fills. */
	static char spare[PAGE_SIZE];
	char *mem = os.mmap(NULL, REPORT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mp_lock(&report_lock);
	struct fmt_buf b;
	fmt_init(&b, fd, mem != MAP_FAILED ? mem : spare,
		 mem != MAP_FAILED ? REPORT_BYTES : sizeof(spare));
	collect(&r);
	if (json)
		print_json(&b, &r);
	else
		print_text(&b, &r);
	fmt_flush(&b);
	mp_unlock(&report_lock);
	if (mem != MAP_FAILED)
		os.munmap(mem, REPORT_BYTES);
	errno = saved;
}

int stats_path_expand(char *dst, size_t cap, const char *tmpl, int pid)
{
	size_t n = 0;

	if (cap == 0)
		return -1;
	for (const char *s = tmpl; *s; s++) {    /* n < cap here */
		if (s[0] == '%' && s[1] == 'p') {
			n += fmt_snprintf(dst + n, cap - n, "%d", pid);
			s++;
		} else {
			dst[n++] = *s;
		}
		if (n >= cap)
			return -1;
	}
	dst[n] = '\0';
	return (int)n;
}

/* Why an existing file must not get the report, or NULL if it may. */
static const char *refusal(const struct stat *st)
{
	if (S_ISCHR(st->st_mode))
		return NULL;
	if (!S_ISREG(st->st_mode) && !S_ISFIFO(st->st_mode))
		return "not a regular file, FIFO or character device";
	if (st->st_uid != geteuid())
		return "owned by another user";
	if (S_ISREG(st->st_mode) && st->st_nlink != 1)
		return "a regular file with more than one hard link";
	return NULL;
}

int stats_file_open(const char *tmpl)
{
	static char path[PATH_MAX];   /* not on the stack: exit may run on a small one */
	char shown[160];
	struct stat st = { 0 };

	fmt_escape(shown, sizeof(shown), tmpl, strlen(tmpl));
	if (stats_path_expand(path, sizeof(path), tmpl, (int)getpid()) < 0) {
		mp_log("stats_file: '%s' is %d bytes or longer once %%p is expanded; "
		       "writing the report to stderr", shown, PATH_MAX);
		return -1;
	}
	fmt_escape(shown, sizeof(shown), path, strlen(path));
	/* A file this call creates is ours whoever the file system says owns
	 * it (NFS root_squash); one that exists is checked once open, on the
	 * descriptor, so that nothing can be swapped in between.  O_NONBLOCK:
	 * a FIFO without a reader fails (ENXIO) instead of blocking the exit
	 * for ever; cleared below. */
	int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
	int fd = -1, err = 0;
	for (int tries = 0; tries < 3; tries++) {
		fd = open(path, flags | O_CREAT | O_EXCL, 0600);
		if (fd >= 0) {
			fcntl(fd, F_SETFL, O_APPEND);
			return fd;
		}
		if ((err = errno) != EEXIST)
			break;
		fd = open(path, flags);
		if (fd >= 0 || (err = errno) != ENOENT)
			break;               /* ENOENT: removed in between, try again */
	}
	if (fd < 0) {
		if (err == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			mp_log("stats_file: refusing '%s': it is a symbolic link; "
			       "writing the report to stderr", shown);
		else if (err == ENXIO)
			mp_log("stats_file: cannot open '%s': a FIFO that nothing reads; "
			       "writing the report to stderr", shown);
		else
			mp_log("stats_file: cannot open '%s' (errno %d); writing the report to stderr",
			       shown, err);
		return -1;
	}
	const char *why = fstat(fd, &st) == 0 ? refusal(&st) : "fstat failed";
	if (why) {
		mp_log("stats_file: refusing '%s': %s (file uid %u, process euid %u); "
		       "writing the report to stderr", shown, why, (unsigned)st.st_uid,
		       (unsigned)geteuid());
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_APPEND);
	return fd;
}

void stats_report_at_exit(void)
{
	int fd = opt.stats_file[0] ? stats_file_open(opt.stats_file) : -1;
	stats_print(fd >= 0 ? fd : 2, opt.stats == STATS_JSON);
	if (fd >= 0)
		close(fd);
}
