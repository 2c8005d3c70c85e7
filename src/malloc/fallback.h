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
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

/* glibc's functions without a __libc_ name, found with dlsym(RTLD_NEXT) the
 * first time they are needed (never during initialisation). */
void fb_init(void);
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
