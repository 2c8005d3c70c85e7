/*
 * top_read.c — magpage-top's reading side: which processes publish, a
 * consistent copy of one's segment, and the snapshot as JSON.
 *
 * A publishing process holds a memfd named LIVE_MEMFD_NAME; its link in
 * /proc/PID/fd reads "/memfd:magpage-live (deleted)".  Opening that link
 * gives a descriptor of the same memory, which the kernel allows to the
 * process's user and root only (a ptrace read check on /proc/PID/fd, and
 * the memfd's 0600).  The segment's pid must be the process's own: a child
 * of _Fork inherits the descriptor of its parent's segment.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "top.h"

#define LINK_TARGET "/memfd:" LIVE_MEMFD_NAME " (deleted)"

uint64_t top_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool top_alive(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	return access(path, F_OK) == 0;
}

/* Maps the segment behind an open descriptor; TOP_NOTPUB if it is not a
 * live segment of pid. */
static enum top_err map_fd(int fd, int pid, struct top_proc *p)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(struct live_seg))
		return TOP_NOTPUB;
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return TOP_NOTPUB;
	const struct live_seg *s = m;
	if (s->magic != LIVE_MAGIC || s->pid != pid) {
		munmap(m, (size_t)st.st_size);
		return TOP_NOTPUB;
	}
	p->map = s;
	p->len = (size_t)st.st_size;
	p->version = s->version;
	if (s->version != LIVE_VERSION || s->size != sizeof(struct live_seg)) {
		top_close(p);
		return TOP_VERSION;
	}
	return TOP_OK;
}

enum top_err top_open(int pid, struct top_proc *p)
{
	char path[64], link[128];
	struct stat st;
	enum top_err found = TOP_NOTPUB;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d", pid);
	if (pid <= 0 || stat(path, &st) != 0)
		return TOP_NOPROC;
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	DIR *d = opendir(path);
	if (!d)
		return errno == EACCES || errno == EPERM ? TOP_PERM : TOP_NOPROC;
	struct dirent *e;
	while (found != TOP_OK && (e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, LINK_TARGET) != 0)
			continue;
		int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == EACCES || errno == EPERM)
				found = TOP_PERM;
			continue;
		}
		enum top_err r = map_fd(fd, pid, p);
		close(fd);
		if (r == TOP_OK || r == TOP_VERSION)
			found = r;
	}
	closedir(d);
	return found;
}

void top_close(struct top_proc *p)
{
	if (p->map)
		munmap((void *)p->map, p->len);
	p->map = NULL;
}

bool top_read(const struct top_proc *p, struct live_seg *out)
{
	const struct live_seg *s = p->map;
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t a = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		if (!(a & 1)) {
			memcpy(out, s, sizeof(*out));
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) == a)
				return true;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

static void comm_of(int pid, char *buf, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	snprintf(buf, cap, "?");
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(buf, (int)cap, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

void top_complain(int pid, enum top_err e, const struct top_proc *p)
{
	char comm[64], path[64];
	struct stat st = { 0 };

	comm_of(pid, comm, sizeof(comm));
	switch (e) {
	case TOP_OK:
		break;
	case TOP_NOPROC:
		fprintf(stderr, "magpage-top: no process with pid %d\n", pid);
		break;
	case TOP_PERM:
		snprintf(path, sizeof(path), "/proc/%d", pid);
		stat(path, &st);
		fprintf(stderr, "magpage-top: pid %d (%s) belongs to another user (uid %u); "
			"only that user and root can read its statistics\n", pid, comm,
			(unsigned)st.st_uid);
		break;
	case TOP_NOTPUB:
		fprintf(stderr, "magpage-top: pid %d (%s) is not publishing live statistics; "
			"start it with MAGPAGE_CONF=live:1 and libmagpage preloaded\n", pid, comm);
		break;
	case TOP_VERSION:
		fprintf(stderr, "magpage-top: pid %d (%s) publishes statistics layout version %u; "
			"this magpage-top reads version %u\n", pid, comm, p->version, LIVE_VERSION);
		break;
	}
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int top_scan(int *pids, int max)
{
	int n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *e;
	while (n < max && (e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		struct top_proc p;
		if (top_open((int)pid, &p) == TOP_OK) {
			pids[n++] = (int)pid;
			top_close(&p);
		}
	}
	closedir(d);
	qsort(pids, (size_t)n, sizeof(int), cmp_int);
	return n;
}

/* -1 (shown as "-") when there is nothing to divide by yet. */
static long per_mille(uint64_t part, uint64_t whole)
{
	return whole ? (long)(part * 1000 / whole) : -1;
}

void top_sum(const struct live_seg *s, struct top_sums *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < s->ncaches && i < LIVE_CACHES; i++) {
		const struct live_cache *c = &s->caches[i];
		t->all.nr_pages += c->nr_pages;
		t->all.lock_acquired += c->lock_acquired;
		t->all.lock_contended += c->lock_contended;
#define SUM_count(f) t->all.f += c->f;
#define SUM_range(f)
#define X(f, kind, w, h) SUM_##kind(f)
		CACHE_COUNTERS(X)
#undef X
	}
	t->hit_pm = s->hits_counted ? per_mille(t->all.hits, t->all.allocs) : -1;
	const struct malloc_stats *m = &s->malloc;
	uint64_t held = (uint64_t)m->live_held, req = (uint64_t)m->live_requested;
	t->waste_pm = s->counted ? per_mille(m->bytes_held > m->bytes_requested ?
					    m->bytes_held - m->bytes_requested : 0, m->bytes_held) : -1;
	t->waste_now_pm = s->counted ? per_mille(held > req ? held - req : 0, held) : -1;
	t->contention_pm = per_mille(s->zone.lock_contended, s->zone.lock_acquired);
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s, size_t max)
{
	fputc('"', f);
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c < 0x20 ? c : 0xfffd);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_pm(FILE *f, const char *key, long pm)
{
	if (pm < 0)
		fprintf(f, ",\"%s\":null", key);
	else
		fprintf(f, ",\"%s\":%ld.%ld", key, pm / 10, pm % 10);
}

#define LU(v) ((unsigned long)(v))

/* Names as in the report at exit (stats:json) wherever both have the
 * number; both come from the same lists. */
void top_json(FILE *f, const struct live_seg *s, uint64_t now_ns)
{
	const struct live_zone *z = &s->zone;
	struct top_sums t;

	top_sum(s, &t);
	fprintf(f, "{\"libmagpage_live\":%u,\"pid\":%d,\"program\":", s->version, s->pid);
	json_str(f, s->program, sizeof(s->program));
	fprintf(f, ",\"cache\":");
	json_str(f, s->cache, sizeof(s->cache));
	fprintf(f, ",\"publishes\":%lu,\"period_ms\":%u,\"age_ms\":%lu,\"publisher\":\"%s\","
		"\"counted\":%s,\"hits_counted\":%s",
		LU(s->publishes), s->period_ms,
		LU(now_ns > s->publish_ns ? (now_ns - s->publish_ns) / 1000000 : 0),
		s->thread == LIVE_THREAD_RUNNING ? "running" :
		s->thread == LIVE_THREAD_FAILED ? "failed" : "none",
		s->counted ? "true" : "false", s->hits_counted ? "true" : "false");
	json_pm(f, "cache_hit_pct", t.hit_pm);
	json_pm(f, "rounding_waste_pct", t.waste_pm);
	json_pm(f, "rounding_waste_now_pct", t.waste_now_pm);
	json_pm(f, "zone_lock_contention_pct", t.contention_pm);

	fprintf(f, ",\"zone\":{\"pages\":%lu,\"free_pages\":%lu,\"untouched_pages\":%lu,"
		"\"dirty_pages\":%lu,\"held_pages\":%lu,"
		"\"lock\":{\"acquired\":%lu,\"contended\":%lu,\"wait_ns\":%lu}",
		LU(z->pages), LU(z->free_pages), LU(z->untouched_pages), LU(z->dirty_pages),
		LU(z->held_pages), LU(z->lock_acquired), LU(z->lock_contended), LU(z->lock_wait_ns));
#define X(field, json) fprintf(f, ",\"" #field "\":%lu", LU(z->field));
	ZONE_COUNTERS(X)
#undef X
	fprintf(f, ",\"buddyinfo\":[");
	for (unsigned o = 0; o < LIVE_ORDERS; o++)
		fprintf(f, "%s%lu", o ? "," : "", LU(z->nr_free[o]));
	fprintf(f, "]},\"purge\":{\"ticks\":%lu,\"trips\":%lu,\"idle_purges\":%lu,"
		"\"thread_wakeups\":%lu}", LU(s->purge.ticks), LU(s->purge.trips),
		LU(s->purge.idle_purges), LU(s->purge.wakeups));

	fprintf(f, ",\"malloc\":{");
	const char *sep = "";
#define X(n) fprintf(f, "%s\"" #n "\":%lu", sep, LU(s->malloc.n)); sep = ",";
	MALLOC_COUNTERS(X)
#undef X
	fprintf(f, ",\"live_bytes_requested\":%ld,\"live_bytes_held\":%ld}",
		(long)s->malloc.live_requested, (long)s->malloc.live_held);

	fprintf(f, ",\"runs\":{\"live\":%lu,\"live_bytes\":%lu,\"held\":%lu,\"pages\":%lu,"
		"\"idle_pages\":%lu,\"allocs\":%lu,\"frees\":%lu,\"made\":%lu,\"released\":%lu,"
		"\"deferred\":%lu,\"cached\":%lu,\"cache_drained\":%lu,\"depot_moves\":%lu}",
		LU(s->runs.live),
		LU(s->runs.live_bytes), LU(s->runs.runs),
		LU(s->runs.pages), LU(s->runs.idle_pages), LU(s->runs.allocs), LU(s->runs.frees),
		LU(s->runs.made), LU(s->runs.released), LU(s->runs.deferred), LU(s->runs.cached),
		LU(s->runs.cache_drained), LU(s->runs.depot_moves));

	fprintf(f, ",\"signal\":{\"handler_entries\":%lu,\"held_back\":%lu,\"reentry_caught\":%lu,"
		"\"malloc\":%lu,\"free\":%lu}", LU(s->sig.handler_entries),
		LU(s->sig.deferred_signals), LU(s->sig.reentry_caught), LU(s->malloc.sig_malloc),
		LU(s->malloc.sig_free));

	fprintf(f, ",\"caches\":{\"count\":%lu,\"cached_pages\":%lu", LU(s->ncaches),
		LU(s->cached_pages));
#define JSON_count(c, n) fprintf(f, ",\"" #n "\":%lu", LU((c)->n));
#define JSON_range(c, n)
#define X(n, kind, w, h) JSON_##kind(&t.all, n)
	CACHE_COUNTERS(X)
#undef X
	fprintf(f, ",\"list\":[");
	for (unsigned i = 0; i < s->ncaches && i < LIVE_CACHES; i++) {
		const struct live_cache *c = &s->caches[i];
		fprintf(f, "%s{\"id\":%u,\"nr_pages\":%lu,\"lock\":{\"acquired\":%lu,\"contended\":%lu}"
			",\"merged\":%lu,\"gone\":%lu", i ? "," : "", i, LU(c->nr_pages),
			LU(c->lock_acquired), LU(c->lock_contended), LU(c->merged), LU(c->gone));
#define X(n, kind, w, h) JSON_##kind(c, n)
		CACHE_COUNTERS(X)
#undef X
		fprintf(f, "}");
	}
	fprintf(f, "]}}");
}
