/*
 * libmagpage public API, for programs that link the library directly.
 *
 * Programs that only preload the library (LD_PRELOAD=libmagpage.so) need
 * none of this: the malloc family is answered transparently.  These calls
 * let a program look inside: a statistics snapshot, a bulk free that keeps
 * one cache lock across many pages (the kernel's release_pages()), an
 * explicit drain of every page cache, and the effective configuration.
 *
 * Every function is safe to call before any allocation has been made.
 */
#ifndef MAGPAGE_H
#define MAGPAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAGPAGE_VERSION_MAJOR 0
#define MAGPAGE_VERSION_MINOR 1

#if defined(__GNUC__)
#define MAGPAGE_API __attribute__((visibility("default")))
#else
#define MAGPAGE_API
#endif

/* A consistent-enough snapshot of the allocator's main counters. */
struct magpage_stats {
	uint64_t region_bytes;       /* size of the reserved zone, 0 if none */
	uint64_t zone_pages;         /* pages the zone manages */
	uint64_t zone_free_pages;    /* free in the buddy lists, being purged, or never used */
	uint64_t cached_pages;       /* free pages sitting in the page caches */
	uint64_t held_pages;         /* pages handed out to the program */
	uint64_t zone_allocs;        /* malloc-family requests served by the zone
					(counted only with MAGPAGE_CONF=stats:1 or json) */
	uint64_t zone_frees;         /* ... and given back (likewise) */
	uint64_t cache_allocs;       /* page requests that went through a cache
					(the default cache counts the ones its
					one-hop path serves only with stats on) */
	uint64_t cache_hits;         /* ... and were served without a refill */
	uint64_t cache_refills;      /* batches moved zone -> cache */
	uint64_t cache_drains;       /* batches moved cache -> zone */
	uint64_t zone_lock_acquired; /* zone lock acquisitions */
	uint64_t zone_lock_contended;/* ... that had to wait */
	uint64_t fallback_calls;     /* calls answered by the fallback allocator (stats on) */
	uint64_t signal_calls;       /* calls made from a signal handler (stats on) */
	uint64_t invalid_frees;      /* invalid or double frees caught (always) */
	uint64_t buddy_free[11];     /* free blocks per order, like /proc/buddyinfo */
};

/* Fills *st.  Returns 0, or -1 if st is NULL. */
MAGPAGE_API int magpage_get_stats(struct magpage_stats *st);

/*
 * Frees n blocks at once.  Blocks the library owns are returned to the
 * preferred page cache under one lock hold, draining once at the end;
 * NULL entries are skipped; pointers the library does not own go to the
 * fallback allocator one by one.
 */
MAGPAGE_API void magpage_free_bulk(void **ptrs, size_t n);

/* Returns every page held by every page cache to the zone.  Returns the
 * number of pages moved (pages that a decay on another thread gives back
 * at the same time are counted there, not here). */
MAGPAGE_API size_t magpage_drain(void);

/* Writes the effective configuration, one "key:value" per line, to fd. */
MAGPAGE_API void magpage_print_config(int fd);

/* Writes the statistics report to fd; json != 0 writes one JSON object. */
MAGPAGE_API void magpage_print_stats(int fd, int json);

/* Non-zero if p lies inside libmagpage's zone. */
MAGPAGE_API int magpage_owns(const void *p);

/* The NUMA node (the kernel's number; with numa:fake=N, 0..N-1) whose part
 * of the zone holds p, for any p inside it (a block the library issued, or
 * any byte of one); -1 for anything else (glibc's memory, NULL). */
MAGPAGE_API int magpage_node_of(const void *p);

#ifdef __cplusplus
}
#endif

#endif /* MAGPAGE_H */
