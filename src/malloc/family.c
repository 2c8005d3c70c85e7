/*
 * family.c — the rest of the malloc family over malloc.c's routing: calloc
 * (fresh zone pages are not cleared again), realloc (in place when the
 * pages suffice, the tail given back), the aligned entry points (zone
 * blocks aligned up to 4 MiB), malloc_usable_size and magpage_free_bulk.
 * Ownership is by address, as in malloc.c.
 */
#include <errno.h>
#include <string.h>

#include "malloc/malloc_impl.h"

/* Everything mp_calloc's fast path leaves: counting on, the zone, an
 * overflow, a handler, frees a handler deferred, the ENOMEM retry. */
static NOINLINE void *calloc_slow(size_t n, size_t m)
{
	size_t size;

	COUNT(calloc_calls);
	if (unlikely(__builtin_mul_overflow(n, m, &size) || size > PTRDIFF_MAX)) {
		errno = ENOMEM;
		return NULL;
	}
	mp_ensure_init();
	if (zone_size(size))
		return page_alloc(size, MALLOC_ALIGN, true);
	if (unlikely(sigctx_in_irq()))
		return handler_alloc(size, true);
	drain_deferred();
	void *p;
	if (run_try(n, m, true, &p))
		return p;
	count_fallback(size);
	return fb_calloc(n, m);
}

/* A small calloc goes to glibc after mp_malloc's two tests (the size
 * against mp_glibc_below, which is 0 whenever the slow path has work: no
 * init yet, statistics on, deferred frees, a limited address space, the
 * purge trap; and this thread's handler word): a compiler's hash tables
 * and bitmaps call it as often as malloc.  The product may have wrapped:
 * glibc makes the same test and fails with ENOMEM, as calloc_slow does. */
void *mp_calloc(size_t n, size_t m)
{
	if (likely(n * m < mp_glibc_below && !mp_tls.word))
		return __libc_calloc(n, m);
	return calloc_slow(n, m);
}

/* Moves a block to a new home: allocate, copy, free.  On failure the old
 * block is untouched.  zone_only: a new home glibc gave (a full zone) is
 * a failure too. */
static void *realloc_move_to(void *p, size_t old_usable, size_t size, bool zone_only)
{
	void *q = mp_malloc(size);
	if (!q)
		return NULL;
	if (zone_only && !zone_owns(q)) {
		mp_free(q);
		return NULL;
	}
	memcpy(q, p, old_usable < size ? old_usable : size);
	mp_free(p);
	return q;
}

static void *realloc_move(void *p, size_t old_usable, size_t size)
{
	return realloc_move_to(p, old_usable, size, false);
}

/*
 * What realloc does with a zone block shrunk from have to want pages
 * (want < have), when want is a size a cache keeps (pa_cached_size: 16
 * pages at most by default):
 *   - SHRINK_KEEP: the block is one a malloc of the new size could have
 *     been given (cache_borrow: a cached block that leaves at most
 *     waste_max percent of its pages unused, 8 pages for 6 or 7 by
 *     default, pa_fit_most): it stays whole, its usable size unchanged,
 *     and goes back to its own size's cache when freed;
 *   - SHRINK_MOVE: otherwise, to a size a cache keeps, it moves there (a
 *     copy of 60 KiB at most), and the old block goes back whole.
 * Shrunk in place, a cached size's block becomes a block of another size
 * with its tail in the zone: the head, freed into its new size's cache,
 * keeps the tail from merging, and that cache gets frees it never served.
 * A loop of malloc(64 KiB), realloc to a page and free left one page per
 * round in the depot, 289 MiB of RSS for one live block; threads that
 * malloc 1 to 25 pages and realloc each to half its bytes filled the
 * depots of the sizes they shrank to with blocks whose tails the zone had
 * handed out again: nothing of 32 pages could form, the zone kept
 * carving, and RSS grew with the run (159 MiB on 4 threads after 16
 * rounds of 20,000, glibc 2.8, jemalloc 10).  tcmalloc also keeps a block
 * shrunk by less than half and moves one shrunk by more.
 *   - SHRINK_IN_PLACE: a size no cache keeps (the tail goes to the zone,
 *     and so will the head), in a handler, where no cache is asked, and
 *     when the move finds no zone memory.
 */
enum shrink_way { SHRINK_IN_PLACE, SHRINK_KEEP, SHRINK_MOVE };

static inline enum shrink_way realloc_shrink_way(size_t have, size_t want)
{
	if (!pa_cached_size(want) || sigctx_in_irq())
		return SHRINK_IN_PLACE;
	return have <= pa_fit_most[want] ? SHRINK_KEEP : SHRINK_MOVE;
}

/* A run object resized: in place if malloc would give the new size an
 * object of the same class, else moved. */
static void *realloc_run(void *p, struct page_desc *pd, size_t size)
{
	const char *why;
	int cls = run_class_of_object(p, pd, &why);
	if (cls < 0) {
		bad_pointer_why("realloc", p, why);
		errno = EINVAL;
		return NULL;
	}
	if (run_size(size) == cls && !sigctx_in_irq()) {
		COUNT(realloc_in_place);
		return p;
	}
	return realloc_move(p, run_object_size(cls), size);
}

/* Everything mp_realloc's fast path leaves. */
static NOINLINE void *realloc_slow(void *p, size_t size)
{
	COUNT(realloc_calls);
	if (!p)
		return mp_malloc(size);
	if (size == 0) {             /* glibc: free and return NULL */
		mp_free(p);
		return NULL;
	}
	if (unlikely(size > PTRDIFF_MAX)) {
		errno = ENOMEM;
		return NULL;
	}
	if (zone_owns(p)) {
		struct page_desc *pd = live_desc(p), *page = pfn_to_desc(addr_to_pfn(p));
		if (!pd && (page->flags & PG_RUN))
			return realloc_run(p, page, size);
		if (!pd) {
			bad_pointer("realloc", p, page);
			errno = EINVAL;
			return NULL;
		}
		size_t have = pd->npages, want = pages_of(size);
		/* A size the policy sends away moves to glibc, except in a
		 * handler, where glibc cannot serve it. */
		if (want <= have && (zone_size(size) || (zone_range(size) && sigctx_in_irq()))) {
			enum shrink_way way = want < have ? realloc_shrink_way(have, want)
							  : SHRINK_KEEP;
			if (way == SHRINK_MOVE) {
				/* a zone block, or none: a full zone's glibc
				 * block would not be worth the copy */
				int saved = errno;
				void *q = realloc_move_to(p, have << PAGE_SHIFT, size, true);
				if (q)
					return q;
				errno = saved;
				way = SHRINK_IN_PLACE;
			}
			/* Same pages, or fewer: stay, whole or giving the
			 * tail back. */
			if (way == SHRINK_KEEP)
				want = have;
			if (stats_on) {
				count(MC_live_requested, size - pd->req_bytes);
				count(MC_live_held, -((have - want) << PAGE_SHIFT));
			}
			pd->req_bytes = size;
			if (want < have) {
				pa_shrink(pd, want);
				tick_check();
			}
			COUNT(realloc_in_place);
			return p;
		}
		return realloc_move(p, have << PAGE_SHIFT, size);
	}
	mp_ensure_init();
	if (unlikely(sigctx_in_irq()) || zone_size(size) || run_size(size) >= 0)
		return realloc_move(p, fb_usable_size(p), size);
	drain_deferred();
	count_fallback(size);
	return fb_realloc(p, size);
}

/* A glibc block (or NULL) grown or shrunk above the zone's largest block,
 * with nothing for the slow path to do (mp_glibc_below set): glibc's
 * realloc, with its ENOMEM retry, as realloc_slow would end. */
static NOINLINE void *realloc_large(void *p, size_t size)
{
	return fb_realloc(p, size);
}

/* A glibc block (or NULL) resized to a size glibc keeps goes to glibc
 * after free's and malloc's tests: the pointer below this thread's
 * free_below (the region's base; 0 in a handler or a cache section, and
 * until this thread's first free), the size below mp_glibc_below, or above
 * 4 MiB with mp_glibc_below set (realloc_large).  glibc's realloc(p, 0)
 * frees and returns NULL, as the slow path does. */
void *mp_realloc(void *p, size_t size)
{
	if (likely((uintptr_t)p < mp_tls.free_below)) {
		if (likely(size < mp_glibc_below))
			return __libc_realloc(p, size);
		if (size > MAX_BLOCK_BYTES &&
		    likely(__atomic_load_n(&mp_glibc_below, __ATOMIC_RELAXED)))
			return realloc_large(p, size);
	}
	return realloc_slow(p, size);
}

void *mp_reallocarray(void *p, size_t n, size_t m)
{
	size_t size;
	if (__builtin_mul_overflow(n, m, &size)) {
		errno = ENOMEM;
		return NULL;
	}
	return mp_realloc(p, size);
}

/* Every aligned entry point ends here; align is a power of two. */
static void *aligned_impl(size_t align, size_t size)
{
	COUNT(memalign_calls);
	if (unlikely(size > PTRDIFF_MAX)) {
		errno = ENOMEM;
		return NULL;
	}
	if (align <= 16)
		return mp_malloc(size);
	mp_ensure_init();
	bool irq = sigctx_in_irq();
	if (align <= MAX_BLOCK_BYTES && (zone_size(size) || (irq && zg.bytes && size <= MAX_BLOCK_BYTES))) {
		/* The block must fit a 4 MiB block (page_alloc aligns it). */
		if (pages_of(size) <= MAX_BLOCK_PAGES)
			return page_alloc(size, align, false);
	}
	if (irq) {
		errno = ENOMEM;
		return NULL;
	}
	drain_deferred();
	COUNT(fb_align);
	return fb_memalign(align, size);
}

int mp_posix_memalign(void **out, size_t align, size_t size)
{
	if (align < sizeof(void *) || !is_pow2(align))
		return EINVAL;
	int saved = errno;
	void *p = aligned_impl(align, size);
	if (!p) {
		errno = saved;
		return ENOMEM;
	}
	*out = p;
	return 0;
}

/* C17 (DR 460): a non-power-of-two alignment is an error.  glibc 2.36
 * rounds it up instead; 2.38 and later agree with this. */
void *mp_aligned_alloc(size_t align, size_t size)
{
	if (!is_pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return aligned_impl(align, size);
}

/* glibc's memalign: round the alignment up to a power of two. */
void *mp_memalign(size_t align, size_t size)
{
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (!is_pow2(align))
		align = align ? (size_t)1 << ilog2_ceil(align) : 1;
	return aligned_impl(align, size);
}

void *mp_valloc(size_t size)
{
	return aligned_impl(PAGE_SIZE, size);
}

void *mp_pvalloc(size_t size)
{
	size_t rounded;
	if (__builtin_add_overflow(size, PAGE_SIZE - 1, &rounded)) {
		errno = ENOMEM;
		return NULL;
	}
	rounded &= ~(PAGE_SIZE - 1);
	return aligned_impl(PAGE_SIZE, rounded ? rounded : PAGE_SIZE);
}

size_t mp_usable_size(void *p)
{
	if (!p)
		return 0;
	if (zone_owns(p)) {
		struct page_desc *pd = live_desc(p), *page = pfn_to_desc(addr_to_pfn(p));
		if (!pd && (page->flags & PG_RUN))
			return run_usable_size(p, page);
		return pd ? (size_t)pd->npages << PAGE_SHIFT : 0;
	}
	return fb_usable_size(p);
}

void mp_free_bulk(void **ptrs, size_t n)
{
	struct page_desc *chain = NULL;

	for (size_t i = 0; i < n; i++) {
		void *p = ptrs[i];
		if (!zone_owns(p)) {
			mp_free(p);
			continue;
		}
		COUNT(free_calls);
		struct page_desc *pd = pfn_to_desc(addr_to_pfn(p));
		live_claim(p, pd);
		uint8_t f = pd->flags;
		if (((uintptr_t)p & (PAGE_SIZE - 1)) || !(f & PG_ALLOC)) {
			if (f & PG_RUN)
				run_free(p, pd, "magpage_free_bulk");
			else
				bad_pointer("magpage_free_bulk", p, pd);
			continue;
		}
		MP_PROBE2(mm_page_free, p, pd->order);
		pd->flags = f & (uint8_t)~PG_ALLOC;
		if (stats_on)
			account_free(pd);
		pd->next = chain;       /* the descriptor is ours again: link it */
		chain = pd;
	}
	if (chain) {
		pa_free_chain(chain);
		tick_check();
	}
}
