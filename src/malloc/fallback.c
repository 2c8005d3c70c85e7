/* fallback.c — calling glibc's allocator, and frees deferred from handlers. */
#include <dlfcn.h>
#include <errno.h>

#include "internal.h"
#include "malloc/fallback.h"

/* glibc's own definition, looked up in libc.so.6 itself: RTLD_NEXT would
 * find whatever comes next in the search order, which in a program linked
 * with another allocator (Debian's redis-server links jemalloc) is that
 * allocator's malloc_usable_size, wrong for glibc's blocks. */
void *fb_libc_sym(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (!f) {
		void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
		if (libc) {
			f = dlsym(libc, name);
			dlclose(libc);
		}
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	}
	return f;
}

typedef size_t (*usable_fn)(void *);
typedef struct mallinfo2 (*mallinfo2_fn)(void);
typedef int (*trim_fn)(size_t);
typedef void (*stats_fn)(void);
typedef int (*info_fn)(int, FILE *);

#define FB_SYM(type, name) \
	static void *slot_##name; \
	static type sym_##name(void) { return (type)fb_libc_sym(&slot_##name, #name); }

FB_SYM(usable_fn, malloc_usable_size)
FB_SYM(mallinfo2_fn, mallinfo2)
FB_SYM(trim_fn, malloc_trim)
FB_SYM(stats_fn, malloc_stats)
FB_SYM(info_fn, malloc_info)

/* Resolved once at start-up, so that a signal handler (realloc of a glibc
 * block) never has to call dlsym, which takes the loader's lock. */
void fb_init(void)
{
	sym_malloc_usable_size();
	sym_mallinfo2();
	sym_malloc_trim();
	sym_malloc_stats();
	sym_malloc_info();
}

size_t fb_usable_size(void *p)
{
	size_t (*f)(void *) = sym_malloc_usable_size();
	return f && p ? f(p) : 0;
}

struct mallinfo2 fb_mallinfo2(void)
{
	struct mallinfo2 (*f)(void) = sym_mallinfo2();
	struct mallinfo2 mi = { 0 };
	return f ? f() : mi;
}

int fb_trim(size_t pad)
{
	int (*f)(size_t) = sym_malloc_trim();
	return f ? f(pad) : 0;
}

void fb_malloc_stats(void)
{
	void (*f)(void) = sym_malloc_stats();
	if (f)
		f();
}

int fb_malloc_info(int options, FILE *fp)
{
	int (*f)(int, FILE *) = sym_malloc_info();
	return f ? f(options, fp) : 0;
}

/* A failure that the zone's tail cannot help (a bad size, an unlimited
 * process, nothing left to give) returns NULL with glibc's errno.  The
 * sizes were checked for overflow by the caller. */
void *fb_retry_enomem(enum fb_call fn, void *p, size_t a, size_t b)
{
	size_t want = fn == FB_CALLOC ? a * b : fn == FB_MEMALIGN ? a + b : a;

	if (errno != ENOMEM || zone_give_back(want) == 0)
		return NULL;
	switch (fn) {
	case FB_MALLOC:
		return __libc_malloc(a);
	case FB_CALLOC:
		return __libc_calloc(a, b);
	case FB_REALLOC:
		return __libc_realloc(p, a);
	case FB_MEMALIGN:
		return __libc_memalign(a, b);
	}
	return NULL;
}

void *fb_deferred_head;

void fb_defer_free(void *p)
{
	/* The next small malloc, on any thread, takes the slow path and
	 * drains: the fast path's own size test is the poll.  The push first:
	 * whoever opens the bound again (the trap's fire) stores it, then
	 * looks at the list, so that it either sees this block or finds its
	 * store overwritten by this 0. */
	mp_stack_push(&fb_deferred_head, p);
	__atomic_store_n(&mp_glibc_below, 0, __ATOMIC_SEQ_CST);
}

/* Push-only producers and a consumer that takes the whole list at once:
 * no ABA, nothing to lock. */
size_t fb_drain_deferred(void)
{
	void *p = __atomic_exchange_n(&fb_deferred_head, NULL, __ATOMIC_ACQUIRE);
	size_t n = 0;
	while (p) {
		void *next = *(void **)p;
		__libc_free(p);
		p = next;
		n++;
	}
	return n;
}
