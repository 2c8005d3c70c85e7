/*
 * fallback.h — glibc's allocator, which serves what the zone does not:
 * small and huge requests, and every pointer outside the region.
 */
#ifndef MAGPAGE_FALLBACK_H
#define MAGPAGE_FALLBACK_H

#include <malloc.h>
#include <stddef.h>
#include <stdio.h>

/* Exported by glibc under these names: calling them needs no dlsym, and
 * libmagpage deliberately does not export them itself, so they always mean
 * glibc. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
/* malloc.c: the glibc fast path's size limit; 0 makes it poll (drain). */
extern size_t mp_glibc_below;
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

/*
 * glibc's allocator, asked once more when it fails under a finite RLIMIT_AS
 * or RLIMIT_DATA: the zone gives back its never-used tail first
 * (zone_give_back), so a program never has less room than it would have
 * had without the preload.  Process context only (glibc is never called
 * from a handler).  The test after the call is the only cost when glibc
 * succeeds.
 */
enum fb_call { FB_MALLOC, FB_CALLOC, FB_REALLOC, FB_MEMALIGN };
/* fn with arguments (p, a, b) as in the fb_* wrappers below. */
coldpath void *fb_retry_enomem(enum fb_call fn, void *p, size_t a, size_t b);

/* fb_malloc out of line, so that malloc's fast path is a leaf. */

static inline void *fb_malloc(size_t size)
{
	void *r = __libc_malloc(size);
	return __builtin_expect(r != NULL, 1) ? r : fb_retry_enomem(FB_MALLOC, NULL, size, 0);
}

static inline void *fb_calloc(size_t n, size_t m)
{
	void *r = __libc_calloc(n, m);
	return __builtin_expect(r != NULL, 1) ? r : fb_retry_enomem(FB_CALLOC, NULL, n, m);
}

static inline void *fb_realloc(void *p, size_t size)
{
	void *r = __libc_realloc(p, size);
	return __builtin_expect(r != NULL, 1) ? r : fb_retry_enomem(FB_REALLOC, p, size, 0);
}

static inline void *fb_memalign(size_t align, size_t size)
{
	void *r = __libc_memalign(align, size);
	return __builtin_expect(r != NULL, 1) ? r : fb_retry_enomem(FB_MEMALIGN, NULL, align, size);
}

/* glibc's functions without a __libc_ name, looked up in libc.so.6 at
 * start-up (fb_init). */
void fb_init(void);
/* glibc's definition of name, looked up in libc.so.6 once and kept in
 * *slot; NULL if it has none. */
void *fb_libc_sym(void **slot, const char *name);
size_t fb_usable_size(void *p);
struct mallinfo2 fb_mallinfo2(void);
int fb_trim(size_t pad);
void fb_malloc_stats(void);
int fb_malloc_info(int options, FILE *fp);

/* Frees of glibc-owned pointers made in a signal handler cannot call glibc
 * (not async-signal-safe): they are pushed on a lock-free list, threaded
 * through the blocks themselves, that the next ordinary call drains. */
void fb_defer_free(void *p);
extern void *fb_deferred_head;
size_t fb_drain_deferred(void);   /* returns how many */

#endif
