/*
 * preload.c — the exported malloc family.  Thin: every symbol forwards to
 * the malloc layer, which initialises itself lazily from any entry point
 * (programs call malloc and free(NULL) before any constructor has run).
 *
 * Not exported on purpose: __libc_malloc and friends.  libmagpage calls
 * them to reach glibc's allocator, and a program that calls them directly
 * gets glibc memory, which free() then recognises by its address.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "internal.h"

#define EXPORT __attribute__((visibility("default")))

/* flatten: the fast paths are inlined here, not reached by a jump */
EXPORT __attribute__((flatten)) void *malloc(size_t size) { return mp_malloc(size); }
EXPORT __attribute__((flatten)) void free(void *p) { mp_free(p); }
void cfree(void *p);
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);
EXPORT void cfree(void *p) { mp_free(p); }
EXPORT void *calloc(size_t n, size_t m) { return mp_calloc(n, m); }
EXPORT void *realloc(void *p, size_t size) { return mp_realloc(p, size); }
EXPORT void *reallocarray(void *p, size_t n, size_t m) { return mp_reallocarray(p, n, m); }
EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	return mp_posix_memalign(out, align, size);
}
EXPORT void *aligned_alloc(size_t align, size_t size) { return mp_aligned_alloc(align, size); }
EXPORT void *memalign(size_t align, size_t size) { return mp_memalign(align, size); }
EXPORT void *valloc(size_t size) { return mp_valloc(size); }
EXPORT void *pvalloc(size_t size) { return mp_pvalloc(size); }
EXPORT size_t malloc_usable_size(void *p) { return mp_usable_size(p); }
EXPORT void free_sized(void *p, size_t size) { mp_free_sized(p, size); }
EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
	(void)align;
	mp_free_sized(p, size);
}
EXPORT struct mallinfo2 mallinfo2(void) { return mp_mallinfo2(); }
EXPORT struct mallinfo mallinfo(void)
{
	/* The old interface truncates to int, as glibc's does. */
	struct mallinfo2 m = mp_mallinfo2();
	struct mallinfo r = {
		.arena = (int)m.arena, .ordblks = (int)m.ordblks, .smblks = (int)m.smblks,
		.hblks = (int)m.hblks, .hblkhd = (int)m.hblkhd, .usmblks = (int)m.usmblks,
		.fsmblks = (int)m.fsmblks, .uordblks = (int)m.uordblks,
		.fordblks = (int)m.fordblks, .keepcost = (int)m.keepcost,
	};
	return r;
}
EXPORT void malloc_stats(void) { mp_malloc_stats(); }
EXPORT int malloc_info(int options, FILE *fp) { return mp_malloc_info(options, fp); }
EXPORT int malloc_trim(size_t pad) { return mp_trim(pad); }

/* Initialise at load time too, so the first allocation does not pay for it
 * and a bad MAGPAGE_CONF is reported before the program starts. */
__attribute__((constructor)) static void magpage_preload_init(void)
{
	mp_ensure_init();
	fork_init();
	live_start();            /* live:1: here, where a thread may be started */
}
