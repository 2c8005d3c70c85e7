/*
 * semantics.c — the C / glibc malloc contract, under LD_PRELOAD.
 *
 * Proves the semantics table of reference/userspace-allocator-notes.md §2,
 * for page-sized requests (served by the zone) as well as the ones that
 * go to glibc, so a program cannot tell which allocator answered:
 *   malloc(0) is unique and freeable; sizes above PTRDIFF_MAX and calloc /
 *   reallocarray overflow fail with ENOMEM; calloc memory is zero even when
 *   the pages were dirtied and freed just before; realloc(p, 0) frees;
 *   realloc(NULL, n) is malloc; posix_memalign's EINVAL rules and its
 *   untouched *memptr; alignments 16 B .. 4 MiB honoured; aligned_alloc
 *   follows C17 DR460 (non-power-of-two -> EINVAL); memalign rounds up;
 *   valloc / pvalloc; free(NULL); free keeps errno; malloc_usable_size(NULL);
 *   C23 free_sized / free_aligned_sized; foreign (glibc) pointers handled;
 *   and every malloc-family symbol resolves to libmagpage.
 */
#include <malloc.h>
#include <stdlib.h>

#include "mp_test.h"

/* glibc's own allocator, which libmagpage does not export: the way to get
 * a pointer libmagpage never issued. */
extern void *__libc_malloc(size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_calloc(size_t, size_t);

TestSuite(semantics, .init = mp_api_load);

Test(semantics, every_family_symbol_resolves_to_libmagpage)
{
	static const char *const names[] = {
		"malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
		"aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
		"free_sized", "free_aligned_sized", "mallinfo2", "malloc_stats", "malloc_info",
		"malloc_trim",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *f = dlsym(RTLD_DEFAULT, names[i]);
		Dl_info info;
		cr_assert_not_null(f, "%s not found", names[i]);
		cr_assert(dladdr(f, &info), "dladdr(%s)", names[i]);
		cr_assert_not_null(strstr(info.dli_fname, "libmagpage"),
				   "%s resolves to %s, not libmagpage", names[i], info.dli_fname);
	}
}

Test(semantics, malloc_zero_is_unique_and_freeable)
{
	void *a = malloc(0), *b = malloc(0), *c = calloc(0, 0), *d = realloc(NULL, 0);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_not_null(c);
	cr_assert_not_null(d);
	cr_assert_neq(a, b);
	cr_assert_neq(a, c);
	cr_assert_neq(c, d);
	free(a);
	free(b);
	free(c);
	free(d);
}

Test(semantics, sizes_above_ptrdiff_max_fail_with_enomem)
{
	static const size_t sizes[] = { TOO_BIG, SIZE_MAX, SIZE_MAX - 4095 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t s = sizes[i];
		void *m = (void *)0x1;

		errno = 0;
		cr_assert_null(malloc(s), "malloc(%zu)", s);
		cr_assert_eq(errno, ENOMEM, "malloc(%zu): errno %d", s, errno);
		errno = 0;
		cr_assert_null(calloc(1, s));
		cr_assert_eq(errno, ENOMEM);
		errno = 0;
		cr_assert_null(realloc(NULL, s));
		cr_assert_eq(errno, ENOMEM);
		errno = 0;
		cr_assert_null(aligned_alloc(4096, s));
		cr_assert_eq(errno, ENOMEM, "aligned_alloc(4096, %zu): errno %d", s, errno);
		errno = 0;
		cr_assert_null(aligned_alloc(64, s));
		cr_assert_eq(errno, ENOMEM);
		errno = 0;
		cr_assert_null(memalign(8192, s));
		cr_assert_eq(errno, ENOMEM);
		errno = 0;
		cr_assert_null(valloc(s));
		cr_assert_eq(errno, ENOMEM);
		errno = 0;
		cr_assert_null(pvalloc(s));
		cr_assert_eq(errno, ENOMEM, "pvalloc(%zu): errno %d", s, errno);
		cr_assert_eq(posix_memalign(&m, 4096, s), ENOMEM);
		cr_assert_eq(m, (void *)0x1, "posix_memalign touched *memptr on ENOMEM");
	}
}

Test(semantics, calloc_overflow_fails_with_enomem)
{
	errno = 0;
	cr_assert_null(calloc(SIZE_MAX / 2 + 1, 2));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(calloc((size_t)1 << 32, (size_t)1 << 32));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(calloc(2, (size_t)PTRDIFF_MAX / 2 + 1));   /* product > PTRDIFF_MAX */
	cr_assert_eq(errno, ENOMEM);
}

/* calloc of page sizes must zero pages that were dirtied and freed: the
 * page caches and the buddy hand the same pages back at once.  Sizes mix
 * exact blocks and non-power-of-two ones (whose tails go back to the free
 * lists); drains and trims in between exercise the "known zero" shortcut. */
Test(semantics, calloc_zeroes_recycled_pages, .timeout = 30)
{
	static const size_t sizes[] = {
		4096, 8100, 8192, 8032, 12288, 16384, 20480, 7 * 4096, 65536, 100 * 4096 + 1,
		MAX_ZONE_BLOCK - 4096, MAX_ZONE_BLOCK,
	};
	const size_t n = sizeof(sizes) / sizeof(sizes[0]);

	for (int round = 0; round < 40; round++) {
		for (size_t i = 0; i < n; i++) {
			size_t s = sizes[i];
			unsigned char *p = malloc(s);
			cr_assert_not_null(p);
			memset(p, 0xff, malloc_usable_size(p));
			free(p);
			unsigned char *q = calloc(1, s);
			cr_assert_not_null(q);
			long at = first_nonzero(q, s);
			cr_assert_eq(at, -1, "round %d: calloc(1, %zu) = %p has byte 0x%02x at %ld",
				     round, s, (void *)q, at >= 0 ? q[at] : 0, at);
			memset(q, 0xff, s);
			free(q);
		}
		if (round % 8 == 3) {
			mp.drain();
			malloc_trim(0);
		}
	}
}

/* Never-used pages, written through the one-hop path (which writes no
 * descriptor: its blocks keep whatever the descriptor said in the cache)
 * and freed back to it, then calloc'd: the cache must not still think
 * them zero.  Nothing here asks malloc_usable_size, which would hand the
 * block to the slow paths. */
Test(semantics, calloc_zeroes_pages_the_fast_path_dirtied, .timeout = 30)
{
	enum { N = 64 };
	static unsigned char *blk[N];

	for (size_t pages = 1; pages <= 16; pages++) {
		size_t s = pages * 4096;
		for (int i = 0; i < N; i++) {
			blk[i] = malloc(s);
			cr_assert_not_null(blk[i]);
			memset(blk[i], 0xa5, s);
		}
		for (int i = 0; i < N; i++)
			free(blk[i]);
		for (int i = 0; i < N; i++) {
			blk[i] = calloc(1, s);
			cr_assert_not_null(blk[i]);
			long at = first_nonzero(blk[i], s);
			cr_assert_eq(at, -1, "calloc(1, %zu) = %p has byte 0x%02x at %ld", s,
				     (void *)blk[i], at >= 0 ? blk[i][at] : 0, at);
		}
		for (int i = 0; i < N; i++)
			free(blk[i]);
	}
}

/* The same with many blocks dirty at once, freed together, then calloc'd
 * in a different size mix, so that blocks are split and merged between. */
Test(semantics, calloc_zeroes_after_mixed_frees, .timeout = 30)
{
	enum { N = 256 };
	static void *blk[N];
	unsigned seed = 99;

	for (int round = 0; round < 12; round++) {
		for (int i = 0; i < N; i++) {
			seed = seed * 1103515245 + 12345;
			size_t s = 4096 * (1 + (seed >> 8) % 12) + ((seed >> 4) & 1) * 40;
			blk[i] = malloc(s);
			cr_assert_not_null(blk[i]);
			memset(blk[i], 0xff, malloc_usable_size(blk[i]));
		}
		for (int i = 0; i < N; i++)
			free(blk[i]);
		if (round % 4 == 1)
			malloc_trim(0);
		for (int i = 0; i < N; i++) {
			seed = seed * 1103515245 + 12345;
			size_t s = 4096 * (1 + (seed >> 8) % 7) - ((seed >> 4) & 1) * 40;
			unsigned char *q = calloc(s / 8, 8);
			cr_assert_not_null(q);
			long at = first_nonzero(q, s / 8 * 8);
			cr_assert_eq(at, -1, "round %d block %d: calloc(%zu) = %p dirty at %ld",
				     round, i, s / 8 * 8, (void *)q, at);
			blk[i] = q;
		}
		for (int i = 0; i < N; i++) {
			memset(blk[i], 0xff, malloc_usable_size(blk[i]));
			free(blk[i]);
		}
	}
}

Test(semantics, reallocarray_overflow_keeps_the_block)
{
	char *p = malloc(8192);
	cr_assert_not_null(p);
	fill(p, 8192, 7);

	errno = 0;
	cr_assert_null(reallocarray(p, SIZE_MAX / 2, 4));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(reallocarray(p, (size_t)1 << 40, (size_t)1 << 30));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(reallocarray(p, 2, (size_t)PTRDIFF_MAX / 2 + 1));
	cr_assert_eq(errno, ENOMEM);
	cr_assert_pattern(p, 8192, 7);
	cr_assert_eq(malloc_usable_size(p), 8192);

	char *q = reallocarray(p, 3, 4096);
	cr_assert_not_null(q);
	cr_assert_pattern(q, 8192, 7);
	cr_assert_eq(malloc_usable_size(q), 3 * PAGE);
	free(q);

	q = reallocarray(NULL, 5, 4096);
	cr_assert_not_null(q);
	cr_assert(mp.owns(q));
	free(q);
}

Test(semantics, realloc_to_zero_frees_and_returns_null)
{
	struct magpage_stats before = mp_stats();
	void *p = malloc(8192);
	cr_assert_not_null(p);
	cr_assert_eq(mp_stats().held_pages, before.held_pages + 2);
	cr_assert_null(realloc(p, 0));
	cr_assert_eq(mp_stats().held_pages, before.held_pages,
		     "realloc(p, 0) did not free the 2 pages of p");

	void *s = malloc(100);
	cr_assert_not_null(s);
	cr_assert_null(realloc(s, 0));
}

Test(semantics, realloc_of_null_is_malloc)
{
	void *p = realloc(NULL, 8192);
	cr_assert_not_null(p);
	cr_assert(mp.owns(p));
	cr_assert_eq(malloc_usable_size(p), 8192);
	free(p);
	p = realloc(NULL, 100);
	cr_assert_not_null(p);
	cr_assert_not(mp.owns(p));
	free(p);
}

Test(semantics, posix_memalign_rejects_bad_alignments)
{
	static const size_t bad[] = { 0, 1, 2, 3, 4, 6, 12, 24, 48, 100, 4097, 12288, 3 * MiB,
				      SIZE_MAX };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		static const size_t sizes[] = { 1, 4096, 70000 };
		for (size_t j = 0; j < 3; j++) {
			void *m = (void *)0x1234;
			int rc = posix_memalign(&m, bad[i], sizes[j]);
			cr_assert_eq(rc, EINVAL, "posix_memalign(align %zu, %zu) = %d", bad[i],
				     sizes[j], rc);
			cr_assert_eq(m, (void *)0x1234, "posix_memalign touched *memptr on EINVAL");
		}
	}
}

/* Every power of two from 16 B to 4 MiB, through all three entry points. */
Test(semantics, alignments_up_to_4mib_are_honoured, .timeout = 30)
{
	static const size_t sizes[] = { 1, 4096, 70000 };
	for (size_t a = 16; a <= MAX_ZONE_BLOCK; a <<= 1) {
		for (size_t j = 0; j < 3; j++) {
			size_t s = sizes[j];
			void *p[3] = { NULL, NULL, NULL };
			cr_assert_eq(posix_memalign(&p[0], a, s), 0, "posix_memalign(%zu, %zu)", a, s);
			p[1] = aligned_alloc(a, s);
			p[2] = memalign(a, s);
			for (int k = 0; k < 3; k++) {
				cr_assert_not_null(p[k], "entry %d, align %zu, size %zu", k, a, s);
				cr_assert_aligned(p[k], a);
				cr_assert_geq(malloc_usable_size(p[k]), s);
				if (s >= PAGE)
					cr_assert(mp.owns(p[k]),
						  "entry %d: align %zu size %zu not from the zone", k, a, s);
				fill(p[k], s, a + s + (size_t)k);
			}
			for (int k = 0; k < 3; k++) {
				cr_assert_pattern(p[k], s, a + s + (size_t)k);
				free(p[k]);
			}
		}
	}
}

/* C17 DR460 (and glibc >= 2.38): a non-power-of-two alignment is an error. */
Test(semantics, aligned_alloc_rejects_non_power_of_two)
{
	static const size_t bad[] = { 0, 3, 24, 48, 4097, 12288 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		void *p = aligned_alloc(bad[i], 8192);
		cr_assert_null(p, "aligned_alloc(%zu, 8192) = %p", bad[i], p);
		cr_assert_eq(errno, EINVAL, "aligned_alloc(%zu): errno %d", bad[i], errno);
		errno = 0;
		p = aligned_alloc(bad[i], 100);
		cr_assert_null(p);
		cr_assert_eq(errno, EINVAL);
	}
}

Test(semantics, memalign_rounds_alignment_up)
{
	struct { size_t align, size, expect; } cases[] = {
		{ 24, 100, 32 },     { 24, 8192, 32 },    { 5000, 100, 8192 },
		{ 5000, 8192, 8192 }, { 12288, 4096, 16384 }, { 3 * MiB, 70000, 4 * MiB },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		void *p = memalign(cases[i].align, cases[i].size);
		cr_assert_not_null(p, "memalign(%zu, %zu)", cases[i].align, cases[i].size);
		cr_assert_aligned(p, cases[i].expect);
		cr_assert_geq(malloc_usable_size(p), cases[i].size);
		memset(p, 1, cases[i].size);
		free(p);
	}
}

Test(semantics, valloc_and_pvalloc)
{
	static const size_t sizes[] = { 1, 100, 4095, 4096, 5000, 70000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *p = valloc(sizes[i]);
		cr_assert_not_null(p);
		cr_assert_aligned(p, PAGE);
		cr_assert_geq(malloc_usable_size(p), sizes[i]);
		memset(p, 1, sizes[i]);
		free(p);

		size_t whole = (sizes[i] + PAGE - 1) / PAGE * PAGE;
		p = pvalloc(sizes[i]);
		cr_assert_not_null(p);
		cr_assert_aligned(p, PAGE);
		cr_assert_geq(malloc_usable_size(p), whole, "pvalloc(%zu): usable %zu", sizes[i],
			      malloc_usable_size(p));
		memset(p, 1, whole);
		free(p);
	}
	void *p = pvalloc(5000);
	cr_assert_not_null(p);
	cr_assert_geq(malloc_usable_size(p), 8192);
	free(p);
	p = pvalloc(0);
	cr_assert_not_null(p);
	free(p);
}

Test(semantics, free_null_is_a_no_op)
{
	struct magpage_stats before = mp_stats();
	errno = EDOM;
	for (int i = 0; i < 100; i++)
		free(NULL);
	cr_assert_eq(errno, EDOM);
	cr_assert_eq(mp_stats().invalid_frees, before.invalid_frees);
	cr_assert_eq(malloc_usable_size(NULL), 0);
}

Test(semantics, free_preserves_errno)
{
	void *blocks[] = { malloc(4096), malloc(3 * PAGE), malloc(100), malloc(MAX_ZONE_BLOCK),
			   malloc(MAX_ZONE_BLOCK + 1), calloc(1, 8192) };
	for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) {
		cr_assert_not_null(blocks[i]);
		errno = EDOM;
		free(blocks[i]);
		cr_assert_eq(errno, EDOM, "free of block %zu changed errno to %d", i, errno);
	}
	void *p = malloc(8192);
	errno = EDOM;
	cr_assert_null(realloc(p, 0));
	cr_assert_eq(errno, EDOM, "realloc(p, 0) changed errno to %d", errno);
}

Test(semantics, free_sized_and_free_aligned_sized)
{
	void (*fs)(void *, size_t) = (void (*)(void *, size_t))mp_sym("free_sized");
	void (*fas)(void *, size_t, size_t) =
		(void (*)(void *, size_t, size_t))mp_sym("free_aligned_sized");

	struct magpage_stats before = mp_stats();
	void *a = malloc(8192), *b = malloc(100), *c = aligned_alloc(65536, 70000),
	     *d = aligned_alloc(64, 100);
	cr_assert(a && b && c && d);
	cr_assert_eq(mp_stats().held_pages, before.held_pages + 2 + 18);
	fs(a, 8192);
	fs(b, 100);
	fas(c, 65536, 70000);
	fas(d, 64, 100);
	fs(NULL, 0);
	cr_assert_eq(mp_stats().held_pages, before.held_pages,
		     "free_sized / free_aligned_sized did not give the pages back");
}

/* Pointers libmagpage never issued (glibc's own, as a DEEPBIND library
 * or glibc itself may pass): free, realloc and usable_size handle them. */
Test(semantics, foreign_pointers_go_to_glibc)
{
	struct magpage_stats before = mp_stats();
	char *a = __libc_malloc(100);
	char *b = __libc_malloc(8192);
	char *c = __libc_memalign(4096, 3 * PAGE);
	char *d = __libc_calloc(1, 20000);
	cr_assert(a && b && c && d);
	cr_assert_not(mp.owns(a) || mp.owns(b) || mp.owns(c) || mp.owns(d));
	cr_assert_geq(malloc_usable_size(b), 8192);
	cr_assert_geq(malloc_usable_size(c), 3 * PAGE);

	errno = EDOM;
	free(a);
	cr_assert_eq(errno, EDOM);
	fill(b, 8192, 3);
	char *b2 = realloc(b, 16384);           /* moves into the zone */
	cr_assert_not_null(b2);
	cr_assert(mp.owns(b2));
	cr_assert_pattern(b2, 8192, 3);
	free(b2);
	fill(c, 3 * PAGE, 4);
	char *c2 = realloc(c, 100);             /* stays with glibc */
	cr_assert_not_null(c2);
	cr_assert_pattern(c2, 100, 4);
	free(c2);
	cr_assert_eq(first_nonzero(d, 20000), -1);
	free(d);
	cr_assert_eq(mp_stats().invalid_frees, before.invalid_frees);
}
