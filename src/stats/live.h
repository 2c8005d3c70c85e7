/*
 * live.h — the live statistics segment (MAGPAGE_CONF=live:1): its layout,
 * shared by the library, which writes it (stats/live.c), and magpage-top,
 * which reads it (tools/magpage-top.c).
 *
 * The segment is a memfd named LIVE_MEMFD_NAME, mode 0600, mapped shared by
 * the process that publishes.  Another process reaches it only through
 * /proc/PID/fd/N, which the kernel opens to the same user (and root) only;
 * when the process ends, however it ends, the last reference goes and the
 * memory with it: nothing is left in /dev/shm.  The mapping is not
 * inherited across fork (MADV_DONTFORK): a child makes its own.
 *
 * Consistent reads (a sequence lock): the publisher makes seq odd, writes
 * the body, makes seq even.  A reader copies the whole segment between two
 * reads of an even seq that agree, and tries again otherwise.
 *
 * The counters come from the lists that also make the report at exit
 * (ZONE_COUNTERS, CACHE_COUNTERS, MALLOC_COUNTERS), so the two can never
 * disagree on a name.  A change of layout bumps LIVE_VERSION; the first
 * five fields (magic .. pid) keep their places in every version, so that
 * a reader can say which version it found.
 */
#ifndef MAGPAGE_LIVE_H
#define MAGPAGE_LIVE_H

#include <stdint.h>

#include "internal.h"

#define LIVE_MAGIC      0x3145564c4750414dull   /* "MAPGLVE1", little-endian */
#define LIVE_VERSION    5                       /* 2: runs; 3: their CPU caches;
						   4: merged and gone;
						   5: runs' depot_moves */
#define LIVE_MEMFD_NAME "magpage-live"          /* /proc/PID/fd/N ->
						   "/memfd:magpage-live (deleted)" */
#define LIVE_CACHES     64                      /* caches published: MAX_CACHES */
#define LIVE_ORDERS     11                      /* MAX_ORDER */
#define LIVE_PERIOD_MS  250                     /* the publisher's period */

/* One page cache (a CPU's arrays, a magazine, a thread's arrays): its
 * counters summed over the size classes. */
struct live_cache {
	uint64_t nr_pages;                 /* pages it holds now */
	uint64_t lock_acquired;            /* its lock (the lock designs) */
	uint64_t lock_contended;
	/* A row that is not one cache (struct cache_view): merged counts the
	 * caches summed into it (itself included) and the threads that exited
	 * whose counts it holds, gone those threads alone; both 0 for a row
	 * that is one cache. */
	uint64_t merged, gone;
#define LIVE_CACHE_count(n) uint64_t n;
#define LIVE_CACHE_range(n)
#define X(n, kind, w, h) LIVE_CACHE_##kind(n)
	CACHE_COUNTERS(X)
#undef X
};

struct live_zone {
	uint64_t pages;                    /* pages the zone manages */
	uint64_t free_pages;               /* on the free lists, or never used */
	uint64_t untouched_pages;          /* never used at all */
	uint64_t dirty_pages;              /* free, touched, not purged */
	uint64_t held_pages;               /* handed out to the program now */
	uint64_t lock_acquired, lock_contended, lock_wait_ns;
	uint64_t nr_free[LIVE_ORDERS];     /* free blocks per order (buddyinfo) */
#define X(field, json) uint64_t field;
	ZONE_COUNTERS(X)
#undef X
};

enum live_thread { LIVE_THREAD_NONE, LIVE_THREAD_RUNNING, LIVE_THREAD_FAILED };

struct live_seg {
	/* ---- header: written once, except seq, publish_ns and publishes -- */
	uint64_t magic;                    /* LIVE_MAGIC */
	uint32_t version;                  /* LIVE_VERSION */
	uint32_t size;                     /* sizeof(struct live_seg) */
	uint32_t seq;                      /* odd while the body is written */
	int32_t pid;                       /* the publishing process */
	uint64_t start_ns;                 /* CLOCK_MONOTONIC at start-up */
	uint64_t publish_ns;               /* ... at the last publish */
	uint64_t publishes;                /* publishes so far */
	uint32_t period_ms;                /* the publisher's period */
	uint32_t thread;                   /* enum live_thread: the publisher */
	uint32_t counted;                  /* 1: the malloc layer counts every call
					      (live:counted or stats on): allocs,
					      hits, waste and handler calls are
					      complete; 0: the default cache's
					      fast path counts nothing */
	uint32_t hits_counted;             /* 1: the caches' allocs and hits are
					      complete (counted, or a design
					      that counts them itself: not
					      bonwick, not pcp-rseq, whose
					      inline pop and push do not) */
	char program[64];                  /* NUL-terminated, as at start-up */
	char cache[16];                    /* the design's name */
	/* ---- body: rewritten by each publish ------------------------------ */
	struct live_zone zone;
	uint64_t cached_pages;             /* in every cache, depots included */
	uint64_t ncaches;                  /* entries of caches[] in use */
	struct malloc_stats malloc;        /* MALLOC_COUNTERS: complete when counted */
	struct sig_stats sig;              /* handler entries, signals held back */
	struct purge_stats purge;          /* the purge driver's ticks and trips */
	struct runs_stats runs;            /* the page-plus-header runs (always counted) */
	struct live_cache caches[LIVE_CACHES];
};

#endif
