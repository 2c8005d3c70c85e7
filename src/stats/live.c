/*
 * live.c — live statistics: with MAGPAGE_CONF=live:1 the process publishes
 * its counters in a shared memfd that magpage-top reads (layout: live.h).
 *
 * Who writes, and when: one thread, started by the library's constructor,
 * wakes every LIVE_PERIOD_MS, gathers the counters the layers already keep
 * (zone_info, the cache views, the malloc layer's shards, the signal and
 * purge counters) into a private copy, and copies it into the segment
 * under the sequence lock.  Nothing is added to any allocation path: the
 * fast paths neither count nor publish, and the thread does the same work
 * whether the program is busy or idle, so what a viewer sees is never
 * older than one period (plus the zone lock's wait) while the process
 * runs.  The cost is one wake-up and one zone lock acquisition per period.
 *
 * If the thread cannot start (RLIMIT_NPROC, a sandbox), the segment says so
 * (thread = LIVE_THREAD_FAILED) and holds what start-up published.
 *
 * Fork: the segment is not mapped in the child (MADV_DONTFORK) and the
 * thread does not exist there; the child's atfork handler closes the
 * inherited descriptor and publishes its own segment, with its own thread.
 * The parent's segment is never touched by the child.  The child of _Fork
 * (no atfork handler) only closes the descriptor: it publishes nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "stats/live.h"

#define SEG_BYTES ((sizeof(struct live_seg) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))

static struct live_seg *seg;    /* the shared mapping; NULL: not publishing */
static int seg_fd = -1;         /* kept open: /proc/PID/fd/N is how viewers find it */
static struct live_seg snap;    /* the publisher's private copy */

/* Everything the layers keep, into s's body. */
static void collect(struct live_seg *s)
{
	struct zone_info zi;
	struct live_zone *z = &s->zone;

	malloc_stats_read(&s->malloc);
	s->sig = sig_stats;
	s->purge = purge_stats;
	runs_stats(&s->runs);

	/* the last row sums the caches past LIVE_CACHES - 1; static, as snap:
	 * one publisher at a time */
	static struct cache_view views[LIVE_CACHES];
	unsigned n = zg.bytes ? cache_views(views, LIVE_CACHES) : 0;
	s->ncaches = n;
	uint64_t cached = zg.bytes ? mp_cached_beyond_arrays(&s->runs) : 0;
	for (unsigned i = 0; i < n; i++) {
		const struct cache_view v = views[i];
		struct cache_counters all = { 0 };
		struct live_cache *lc = &s->caches[i];
		for (unsigned o = 0; o < CACHE_CLASSES; o++)
			cache_counters_add(&all, &v.c[o]);
		lc->nr_pages = v.nr_pages;
		lc->lock_acquired = v.lock_acquired;
		lc->lock_contended = v.lock_contended;
		lc->merged = v.merged;
		lc->gone = v.gone;
#define LIVE_COPY_count(f) lc->f = all.f;
#define LIVE_COPY_range(f)
#define X(f, kind, w, h) LIVE_COPY_##kind(f)
		CACHE_COUNTERS(X)
#undef X
		cached += v.nr_pages;
	}
	s->cached_pages = cached;

	zone_info(&zi);               /* after the caches: zone_held_pages */
	z->pages = zi.pages;
	z->free_pages = zi.free_pages;
	z->untouched_pages = zi.untouched_pages;
	z->dirty_pages = zi.dirty_pages;
	z->lock_acquired = zi.lock_acquired;
	z->lock_contended = zi.lock_contended;
	z->lock_wait_ns = zi.lock_wait_ns;
	for (unsigned o = 0; o < LIVE_ORDERS; o++)
		z->nr_free[o] = zi.nr_free[o];
#define X(field, json) z->field = zi.field;
	ZONE_COUNTERS(X)
#undef X
	z->held_pages = zone_held_pages(&zi, cached);
}

/* The body between two sequence numbers: odd while it is written. */
static void publish(void)
{
	struct live_seg *s = seg;
	if (!s)
		return;
	collect(&snap);
	uint32_t q = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&s->seq, q + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	size_t body = offsetof(struct live_seg, zone);
	memcpy((char *)s + body, (char *)&snap + body, sizeof(*s) - body);
	s->publish_ns = os_now_ns();
	s->publishes++;
	__atomic_store_n(&s->seq, q + 2, __ATOMIC_RELEASE);
}

/* A new segment for this process, its header written and a first publish
 * made; says why in one line if it cannot. */
static void seg_create(void)
{
	int fd = memfd_create(LIVE_MEMFD_NAME, MFD_CLOEXEC);
	if (fd < 0) {
		mp_log("live: cannot create the statistics memfd (errno %d); not publishing", errno);
		return;
	}
	/* Only the owner (and root): /proc/PID/fd already demands as much */
	fchmod(fd, 0600);
	void *p = MAP_FAILED;
	if (ftruncate(fd, (off_t)SEG_BYTES) == 0)
		p = os.mmap(NULL, SEG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		mp_log("live: cannot map the statistics memfd (errno %d); not publishing", errno);
		close(fd);
		return;
	}
	os.madvise(p, SEG_BYTES, MADV_DONTFORK);
	struct live_seg *s = p;
	s->magic = LIVE_MAGIC;
	s->version = LIVE_VERSION;
	s->size = sizeof(*s);
	s->pid = (int32_t)getpid();
	s->start_ns = os_now_ns();
	s->period_ms = LIVE_PERIOD_MS;
	s->counted = mp_stats_on;
	/* the designs with an inline pop and push count nothing there */
	s->hits_counted = mp_stats_on || (zg.bytes && cache_kind != CACHE_BONWICK &&
					  cache_kind != CACHE_PCP_RSEQ);
	size_t n = 0;
	for (const char *c = program_invocation_short_name; c && c[n] && n < sizeof(s->program) - 1; n++)
		s->program[n] = c[n];
	for (n = 0; cache_name() && cache_name()[n] && n < sizeof(s->cache) - 1; n++)
		s->cache[n] = cache_name()[n];
	seg = s;
	seg_fd = fd;
	publish();
}

void live_init(void)
{
	if (opt.live != LIVE_OFF)
		seg_create();
}

static void *live_main(void *arg)
{
	(void)arg;
	/* Named from inside: pthread_setname_np on another thread goes
	 * through /proc/self/task/TID/comm, whose dentries then cost the
	 * kernel a dcache walk when the process exits (3 ms per fork+exit
	 * measured). */
	prctl(PR_SET_NAME, "magpage-live", 0, 0, 0);
	for (;;) {
		struct timespec ts = { 0, LIVE_PERIOD_MS * 1000000L };
		publish();
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	return NULL;
}

/* With every signal blocked, so that no handler ever runs on it. */
void live_start(void)
{
	int rc;

	if (!seg || seg->thread == LIVE_THREAD_RUNNING)
		return;
	rc = os_spawn_helper(live_main);
	if (rc != 0) {
		seg->thread = LIVE_THREAD_FAILED;
		mp_log("live: cannot start the publishing thread (error %d); the numbers stay as at start-up", rc);
		return;
	}
	seg->thread = LIVE_THREAD_RUNNING;
}

/* The parent's descriptor, inherited; its mapping was not (MADV_DONTFORK). */
static void forget_parent(void)
{
	seg = NULL;
	if (seg_fd >= 0)
		close(seg_fd);
	seg_fd = -1;
}

void live_fork_child(bool in_handler)
{
	if (opt.live == LIVE_OFF)
		return;
	forget_parent();
	seg_create();
	/* Forked from a handler, the child goes on inside it, and
	 * pthread_create is no call for a handler: no thread; the segment
	 * keeps what this first publish saw. */
	if (!in_handler)
		live_start();
}

void live_fork_recover(void)
{
	if (opt.live != LIVE_OFF)
		forget_parent();
}
