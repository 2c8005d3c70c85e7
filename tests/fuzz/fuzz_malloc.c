/*
 * fuzz_malloc.c — libFuzzer target: the input is a program of malloc-family
 * calls on the core (src/malloc/malloc.c), checked against a shadow table of
 * what must be live.
 *
 * Each operation is an opcode byte, a slot byte and the operands it needs;
 * a short input reads zeros past its end.  Sizes are drawn where the
 * allocator has edges: tiny and sub-page (glibc), k pages +- 16 bytes,
 * powers of two, both sides of 4 MiB, above it (glibc again), and sizes
 * over PTRDIFF_MAX that must fail.  Alignments run from 1 to 8 MiB, plus
 * values that are not powers of two.
 *
 * The shadow keeps each live block's pointer, size and fill seed.  Checked:
 * every returned block is aligned as asked, does not overlap a live one,
 * has a usable size of at least its size (exactly the whole pages for a zone
 * block, exactly its object for a run's), and a zone block only ever serves
 * a size the zone serves (a run object, a size of its run class); calloc
 * memory is zero; a pattern written into each block (both ends and two
 * words on each of up to 33 pages) is intact when the block is freed or
 * moved by realloc;
 * realloc keeps the first min(old, new) bytes; failing calls fail with the
 * errno the API documents and leave the block alone.
 *
 * Bad pointers (interior pointers, a free or realloc right after the block
 * was freed, wild pointers into the region, duplicates in a bulk free) are
 * sent only for zone pointers, and the library runs with on_invalid:report:
 * each must be reported once (the invalid_frees counter and one line on fd
 * 2), leave errno alone for free, and change nothing.  glibc's pointers are
 * never sent bad: glibc would abort, which is not ours to test.
 *
 * At the end of every input all blocks are freed, the caches drained, and
 * zone_validate must find every page back on the free lists.  The region is
 * 64 MiB, so inputs with a few dozen 4 MiB blocks also run the zone dry and
 * take the fallback path.  MAGPAGE_CONF from the environment is honoured
 * (with on_invalid forced to report), so other cache designs can be fuzzed
 * by hand: MAGPAGE_CONF=preset:vanilla39 ./fuzz_malloc corpus/
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "malloc/malloc_impl.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void *__wrap___libc_memalign(size_t align, size_t size);
void __sanitizer_set_report_fd(void *fd);

#define SLOTS 48                 /* live blocks at most: 48 x 5 MiB fits the RSS limit */
#define REGION "region_size:64m"

/* ---- glibc's memalign ----------------------------------------------------
 * ASan defines __libc_memalign itself (to track memory the loader allocates
 * for dynamic TLS), so in an ASan binary the core's fallback would get ASan
 * blocks and then hand them to glibc's __libc_free and malloc_usable_size.
 * The build links with --wrap=__libc_memalign, which sends the core's calls
 * here, to glibc's own; every other fallback call already reaches glibc. */
static void *(*glibc_memalign)(size_t, size_t);

void *__wrap___libc_memalign(size_t align, size_t size)
{
	return glibc_memalign(align, size);
}

/* ---- failures ------------------------------------------------------------ */

static int real_stderr = -1;    /* fd 2 as the fuzzer started, kept for reports */
static int capture = -1;        /* a memfd that stands in for fd 2 around bad frees */

static __attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	dprintf(real_stderr, "fuzz_malloc: ");
	(void)!write(real_stderr, line, (size_t)n);
	abort();
}

#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (!(cond))                                                      \
			fail(__VA_ARGS__);                                        \
	} while (0)

/* ---- the input ----------------------------------------------------------- */

struct input {
	const uint8_t *d;
	size_t n;
};

/* The next bytes as a big-endian number; zeros once the input is spent. */
static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;
	while (bytes--) {
		v <<= 8;
		if (in->n) {
			v |= *in->d++;
			in->n--;
		}
	}
	return v;
}

static size_t draw_size(struct input *in)
{
	unsigned cls = (unsigned)take(in, 1) % 8;
	size_t r = (size_t)take(in, 2);
	size_t k;

	switch (cls) {
	case 0:                                    /* tiny: glibc */
		return r % 64;
	case 1:                                    /* below a page: glibc */
		return 64 + r % (PAGE_SIZE - 64);
	case 2:                                    /* 1..16 pages +- 16: the cached orders */
		k = 1 + (r >> 5) % 16;
		return k * PAGE_SIZE + (r & 31) - 16;
	case 3:                                    /* 1..1024 pages +- 16 */
		k = 1 + (r >> 5) % MAX_BLOCK_PAGES;
		return k * PAGE_SIZE + (r & 31) - 16;
	case 4:                                    /* 2^0..2^10 pages exactly */
		return PAGE_SIZE << (r % MAX_ORDER);
	case 5:                                    /* both sides of 4 MiB */
		return MAX_BLOCK_BYTES - 2 * PAGE_SIZE + r % (4 * PAGE_SIZE);
	case 6:                                    /* above 4 MiB: glibc */
		return MAX_BLOCK_BYTES + 1 + (r << 4);
	default:
		if (r % 8 == 0)                    /* must fail: over PTRDIFF_MAX */
			return r & 1 ? SIZE_MAX - (r >> 1) : (size_t)PTRDIFF_MAX + 1 + r;
		return (r << 6) % (MAX_BLOCK_BYTES + 1);   /* anywhere up to 4 MiB */
	}
}

/* Powers of two 1..8 MiB mostly; sometimes any value below 16 MiB. */
static size_t draw_align(struct input *in)
{
	unsigned a = (unsigned)take(in, 1);
	if (a < 224)
		return (size_t)1 << (a % 24);
	return (size_t)take(in, 3);
}

/* ---- the shadow ---------------------------------------------------------- */

/* The loops that write and compare fill patterns run over every page of
 * every block: with libFuzzer's comparison tracing they took 60% of the
 * time and taught it nothing about the allocator.  They are left out of
 * the coverage instrumentation (ASan still checks them), and not inlined,
 * which would bring the instrumentation back. */
#define NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))

struct shadow {
	unsigned char *p;   /* NULL: slot empty */
	size_t size;        /* bytes asked for (pvalloc: rounded up) */
	uint32_t seed;      /* of the fill pattern */
};
static struct shadow live[SLOTS];
static uint32_t next_seed;

static inline NO_COVERAGE uint8_t pat(uint32_t seed, size_t i)
{
	return (uint8_t)(seed * 0x9du + i * 131u + (i >> PAGE_SHIFT));
}

/* Fills, or checks, bytes [lo, hi) below top.  Returns the first wrong
 * offset, or SIZE_MAX. */
static NO_COVERAGE size_t span(unsigned char *p, size_t lo, size_t hi, size_t top, uint32_t seed, bool fill)
{
	if (hi > top)
		hi = top;
	for (size_t i = lo; i < hi; i++) {
		if (fill)
			p[i] = pat(seed, i);
		else if (p[i] != pat(seed, i))
			return i;
	}
	return SIZE_MAX;
}

/* Fills, or checks, the sampled bytes of a block of size bytes that lie
 * below lim: the first and last 64 bytes, and the first and last 8 bytes of
 * its pages: every page of a block of up to 32, else 32 pages spread evenly
 * plus the last.  Enough to see a page shared by two blocks, zeroed or
 * purged under its owner, or lost by realloc, without faulting in 4 MiB per
 * call (page faults were half the run time).  Returns the first wrong
 * offset, or SIZE_MAX. */
static NO_COVERAGE size_t sample(unsigned char *p, size_t size, uint32_t seed, size_t lim, bool fill)
{
	size_t edge = size < 64 ? size : 64, top = size < lim ? size : lim, bad;
	size_t npages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT;
	size_t stride = npages <= 32 ? 1 : npages / 32;

	if ((bad = span(p, 0, edge, top, seed, fill)) != SIZE_MAX ||
	    (bad = span(p, size - edge, size, top, seed, fill)) != SIZE_MAX)
		return bad;
	for (size_t i = 0; npages && i < npages + stride; i += stride) {
		size_t pg = (i < npages ? i : npages - 1) << PAGE_SHIFT;   /* then the last */
		if ((bad = span(p, pg, pg + 8, top, seed, fill)) != SIZE_MAX ||
		    (bad = span(p, pg + PAGE_SIZE - 8, pg + PAGE_SIZE, top, seed, fill)) != SIZE_MAX)
			return bad;
	}
	return SIZE_MAX;
}

static size_t zone_bytes_of(size_t size)
{
	return size ? (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) : PAGE_SIZE;
}

/* The run class of the object p starts, or -1 (a page block, glibc's). */
static int run_cls(const unsigned char *p)
{
	if (!zone_owns(p))
		return -1;
	struct page_desc *pd = pfn_to_desc(addr_to_pfn(p));
	if (!(pd->flags & PG_RUN))
		return -1;
	const char *why;
	return run_class_of_object((void *)p, pd, &why);
}

/* Bytes the zone block at p holds: its run object's, or the pages its
 * descriptor says (check_usable bounds them). */
static size_t zone_block_bytes(const unsigned char *p)
{
	int c = run_cls(p);
	return c >= 0 ? run_object_size(c)
		      : (size_t)pfn_to_desc(addr_to_pfn(p))->npages << PAGE_SHIFT;
}

/* Bytes the block covers: whole pages or a run object in the zone, else
 * what was asked. */
static size_t extent(const unsigned char *p, size_t size)
{
	if (zone_owns(p))
		return zone_block_bytes(p);
	return size ? size : 1;
}

static void verify(unsigned s, const char *when)
{
	struct shadow *b = &live[s];
	size_t bad = sample(b->p, b->size, b->seed, SIZE_MAX, false);
	CHECK(bad == SIZE_MAX, "%s: block %p (%zu bytes, %s) changed at offset %zu", when,
	      (void *)b->p, b->size, zone_owns(b->p) ? "zone" : "glibc", bad);
}

static void check_usable(const unsigned char *p, size_t size, const char *what)
{
	size_t u = mp_usable_size((void *)p);
	int c = run_cls(p);
	if (c >= 0) {
		CHECK(run_size(size) == c, "%s(%zu): an object of run class %d (%zu bytes)",
		      what, size, c, run_object_size(c));
		CHECK(u == run_object_size(c) && u >= size, "%s(%zu): usable size %zu, the object has %zu",
		      what, size, u, run_object_size(c));
	} else if (zone_owns(p)) {
		CHECK(size >= opt.threshold && size <= MAX_BLOCK_BYTES,
		      "%s(%zu): a zone block for a size the zone does not serve", what, size);
		CHECK(((uintptr_t)p & (PAGE_SIZE - 1)) == 0, "%s(%zu): zone block %p not page aligned",
		      what, size, (const void *)p);
		/* whole pages, or (cache_borrow) a cached block of a larger
		 * class that leaves at most waste_max percent unused */
		size_t pages = zone_bytes_of(size) >> PAGE_SHIFT;
		size_t most = pages <= CACHE_CLASSES ? pa_fit_most[pages] : pages;
		CHECK(u == zone_block_bytes(p) && u >= pages << PAGE_SHIFT &&
		      u <= most << PAGE_SHIFT && u % PAGE_SIZE == 0,
		      "%s(%zu): usable size %zu, the block has %zu, may have %zu to %zu pages",
		      what, size, u, zone_block_bytes(p), pages, most);
	} else {
		CHECK(u >= size, "%s(%zu): usable size %zu", what, size, u);
	}
}

/* A new block from a call that must have succeeded: check it, fill it and
 * record it in slot s (empty). */
static void admit(unsigned s, void *ptr, size_t size, size_t align, const char *what)
{
	unsigned char *p = ptr;

	CHECK(p, "%s(%zu, align %zu) failed (errno %d)", what, size, align, errno);
	CHECK((uintptr_t)p % align == 0, "%s(%zu): %p not aligned to %zu", what, size, ptr, align);
	check_usable(p, size, what);
	size_t ext = extent(p, size);
	for (unsigned i = 0; i < SLOTS; i++) {
		const struct shadow *o = &live[i];
		if (o->p && p < o->p + extent(o->p, o->size) && o->p < p + ext)
			fail("%s(%zu) = %p overlaps live block %p of %zu bytes", what, size, ptr,
			     (void *)o->p, o->size);
	}
	live[s] = (struct shadow){ p, size, ++next_seed };
	sample(p, size, live[s].seed, SIZE_MAX, true);
}

static void expect_fail(void *p, int err, const char *what, size_t size)
{
	CHECK(!p, "%s(%zu) succeeded; it must fail", what, size);
	CHECK(errno == err, "%s(%zu) failed with errno %d, not %d", what, size, errno, err);
}

static void release(unsigned s)
{
	if (!live[s].p)
		return;
	verify(s, "free");
	mp_free(live[s].p);
	live[s].p = NULL;
}

/* Pages of live zone blocks, as the shadow sees them: each block's pages,
 * and each run with a live object once. */
static uint64_t live_zone_pages(void)
{
	const struct page_desc *runs[SLOTS];
	unsigned nruns = 0;
	uint64_t n = 0;
	for (unsigned i = 0; i < SLOTS; i++) {
		if (!live[i].p || !zone_owns(live[i].p))
			continue;
		if (run_cls(live[i].p) < 0) {
			n += zone_block_bytes(live[i].p) >> PAGE_SHIFT;
			continue;
		}
		const struct page_desc *pd = pfn_to_desc(addr_to_pfn(live[i].p));
		const struct page_desc *h = pd - pd->reserved32;
		unsigned j = 0;
		while (j < nruns && runs[j] != h)
			j++;
		if (j == nruns) {
			runs[nruns++] = h;
			n += h->npages;
		}
	}
	return n;
}

static uint64_t cached_pages(void)
{
	struct cache_view sum;
	cache_sum(&sum);
	uint64_t n = sum.nr_pages;
	struct runs_stats rs;
	runs_stats(&rs);
	/* the runs with no live object, and the default cache's depot,
	 * where a full array spills (corpus/malloc/depot-spill failed here
	 * while this count lacked it) */
	return n + rs.idle_pages + cache_depot_pages();
}

/* Pages not free in the zone are live blocks or cached ones, nothing else.
 * (The handlers' reserve, pagealloc/reserve.c, is filled only once the
 * process has run a signal handler, which this one never does; if that
 * changes, its pages must be counted here too.) */
static void validate(const char *when)
{
	char why[256] = "";
	uint64_t live_pages = live_zone_pages(), cached = cached_pages();
	if (zone_validate(live_pages + cached, why, sizeof(why)) != 0)
		fail("zone_validate %s (%lu pages live, %lu cached): %s", when,
		     (unsigned long)live_pages, (unsigned long)cached, why);
	if (runs_validate(why, sizeof(why)) != 0)
		fail("runs_validate %s: %s", when, why);
}

/* ---- bad pointers -------------------------------------------------------- */

static uint64_t invalid_count(void)
{
	struct malloc_stats ms;
	malloc_stats_read(&ms);
	return ms.invalid_frees;
}

/* The report lines of calls that must be refused go to a memfd instead of
 * fd 2: thousands of them would drown the test log, and reading them back
 * checks that each refusal says so in one line.  Everything else the library
 * writes (an unexpected report, mp_fatal's reason) still reaches fd 2. */
struct refusal {
	uint64_t before;
	char text[2048];
};

static void refusal_begin(struct refusal *r)
{
	r->before = invalid_count();
	if (ftruncate(capture, 0) != 0 || lseek(capture, 0, SEEK_SET) != 0 || dup2(capture, 2) != 2)
		fail("cannot redirect fd 2: %s", strerror(errno));
}

/* expected: calls refused since refusal_begin; fn: the function the lines
 * must name; double_free: each line must say "double free". */
static void refusal_end(struct refusal *r, unsigned expected, const char *fn, bool double_free)
{
	if (dup2(real_stderr, 2) != 2)
		abort();
	ssize_t n = pread(capture, r->text, sizeof(r->text) - 1, 0);
	r->text[n > 0 ? n : 0] = '\0';
	uint64_t got = invalid_count() - r->before;
	CHECK(got == expected, "%s(): %lu of %u bad pointers refused; reports:\n%s", fn,
	      (unsigned long)got, expected, r->text);
	unsigned lines = 0;
	for (char *line = r->text, *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
		*nl = '\0';
		CHECK(strncmp(line, "libmagpage: ", 12) == 0 && strstr(line, fn) &&
		      strstr(line, "invalid pointer"), "%s(): report line \"%s\"", fn, line);
		CHECK(!double_free || strstr(line, "double free"),
		      "%s(): a double free reported as \"%s\"", fn, line);
	}
	CHECK(lines == expected, "%s(): %u report lines for %u bad pointers:\n%s", fn, lines,
	      expected, r->text);
}

/* Sends x, a zone pointer that is not the start of a live block, to one of
 * the calls that take a block; each must refuse it and change nothing. */
static void send_bad(void *x, unsigned how, bool double_free)
{
	struct refusal r;
	int err = 0;

	switch (how % 4) {
	case 0:
		refusal_begin(&r);
		errno = 4242;
		mp_free(x);
		err = errno;
		refusal_end(&r, 1, "free", double_free);
		CHECK(err == 4242, "free(%p) of a bad pointer changed errno to %d", x, err);
		break;
	case 1: {
		refusal_begin(&r);
		errno = 0;
		void *q = mp_realloc(x, 2 * PAGE_SIZE);
		err = errno;
		refusal_end(&r, 1, "realloc", double_free);
		CHECK(!q && err == EINVAL, "realloc(%p) of a bad pointer gave %p, errno %d", x, q, err);
		break;
	}
	case 2:
		refusal_begin(&r);
		size_t u = mp_usable_size(x);
		refusal_end(&r, 0, "malloc_usable_size", false);
		CHECK(u == 0, "malloc_usable_size(%p) of a bad pointer says %zu", x, u);
		break;
	default:
		refusal_begin(&r);
		mp_free_bulk(&x, 1);
		refusal_end(&r, 1, "magpage_free_bulk", double_free);
		break;
	}
}

/* Is x inside a live block of the shadow? */
static bool inside_live(const unsigned char *x)
{
	for (unsigned i = 0; i < SLOTS; i++)
		if (live[i].p && x >= live[i].p && x < live[i].p + extent(live[i].p, live[i].size))
			return true;
	return false;
}

/* A pointer into live zone block s that is not its start: page aligned
 * (a later page's descriptor) or not. */
static unsigned char *interior(unsigned s, uint64_t r)
{
	size_t bytes = zone_block_bytes(live[s].p), pages = bytes >> PAGE_SHIFT;
	if (r & 1 && pages > 1)
		return live[s].p + PAGE_SIZE * (1 + (r >> 1) % (pages - 1));
	return live[s].p + 1 + (r >> 1) % (bytes - 1);
}

/* ---- the operations ------------------------------------------------------ */

enum {
	OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_REALLOC_CHAIN, OP_POSIX_MEMALIGN,
	OP_ALIGNED_ALLOC, OP_MEMALIGN, OP_VALLOC, OP_PVALLOC, OP_FREE, OP_FREE_BULK,
	OP_USABLE, OP_BAD_INTERIOR, OP_DOUBLE_FREE, OP_BAD_WILD, OP_TRIM, OP_DRAIN,
	OP_VALIDATE, OP_COUNT
};

static void op_malloc(unsigned s, size_t size)
{
	release(s);
	errno = 0;
	void *p = mp_malloc(size);
	if (size > PTRDIFF_MAX)
		expect_fail(p, ENOMEM, "malloc", size);
	else
		admit(s, p, size, 16, "malloc");
}

static NO_COVERAGE size_t first_nonzero(const unsigned char *p, size_t n)
{
	static const unsigned char zero[PAGE_SIZE];
	for (size_t at = 0; at < n; at += PAGE_SIZE) {
		size_t len = n - at < PAGE_SIZE ? n - at : PAGE_SIZE;
		if (memcmp(p + at, zero, len) == 0)
			continue;
		for (size_t i = at;; i++)
			if (p[i])
				return i;
	}
	return SIZE_MAX;
}

static void op_calloc(unsigned s, struct input *in)
{
	size_t n = 1 + (size_t)take(in, 1) % 16, size = draw_size(in), total;
	/* n blocks of size / n bytes; a size that must fail is kept whole, so
	 * that n * m still must: between PTRDIFF_MAX / 16 and PTRDIFF_MAX
	 * glibc may fail or not. */
	size_t m = size > PTRDIFF_MAX ? size : size / n;
	if (take(in, 1) == 0xff) {          /* n * m overflows */
		n = SIZE_MAX / 3 + 1 + (size & 0xffff);
		m = 3;
	}
	release(s);
	errno = 0;
	unsigned char *p = mp_calloc(n, m);
	if (__builtin_mul_overflow(n, m, &total) || total > PTRDIFF_MAX) {
		expect_fail(p, ENOMEM, "calloc", total);
		return;
	}
	CHECK(p, "calloc(%zu, %zu) failed", n, m);
	size_t bad = first_nonzero(p, total);
	CHECK(bad == SIZE_MAX, "calloc(%zu, %zu) = %p (%s): byte %zu not zero", n, m, (void *)p,
	      zone_owns(p) ? "zone" : "glibc", bad);
	admit(s, p, total, 16, "calloc");
}

static void op_realloc(unsigned s, size_t size)
{
	struct shadow old = live[s];

	if (old.p)
		verify(s, "before realloc");
	errno = 0;
	unsigned char *q = mp_realloc(old.p, size);
	if (size > PTRDIFF_MAX) {
		expect_fail(q, ENOMEM, "realloc", size);
		if (old.p)
			verify(s, "after a failed realloc");
		return;
	}
	if (old.p && size == 0) {            /* glibc: free and return NULL */
		CHECK(!q, "realloc(%p, 0) returned %p", (void *)old.p, (void *)q);
		live[s].p = NULL;
		return;
	}
	CHECK(q, "realloc(%p, %zu) failed (errno %d)", (void *)old.p, size, errno);
	live[s].p = NULL;
	if (old.p) {
		size_t keep = old.size < size ? old.size : size;
		size_t bad = sample(q, old.size, old.seed, keep, false);
		CHECK(bad == SIZE_MAX, "realloc(%p [%zu bytes], %zu) = %p lost byte %zu", (void *)old.p,
		      old.size, size, (void *)q, bad);
	}
	admit(s, q, size, 16, "realloc");
}

/* posix_memalign, aligned_alloc, memalign: what is valid differs. */
static void op_aligned(unsigned op, unsigned s, size_t align, size_t size)
{
	release(s);
	errno = 0;
	if (op == OP_POSIX_MEMALIGN) {
		void *out = (void *)&live[s];
		int rc = mp_posix_memalign(&out, align, size);
		if (align < sizeof(void *) || !is_pow2(align)) {
			CHECK(rc == EINVAL && out == (void *)&live[s],
			      "posix_memalign(align %zu): rc %d", align, rc);
		} else if (size > PTRDIFF_MAX) {
			CHECK(rc == ENOMEM && out == (void *)&live[s],
			      "posix_memalign(%zu, align %zu): rc %d", size, align, rc);
		} else {
			CHECK(rc == 0, "posix_memalign(%zu, align %zu): rc %d", size, align, rc);
			admit(s, out, size, align, "posix_memalign");
		}
		return;
	}
	if (op == OP_ALIGNED_ALLOC) {
		void *p = mp_aligned_alloc(align, size);
		if (!is_pow2(align))
			expect_fail(p, EINVAL, "aligned_alloc (align not a power of two)", size);
		else if (size > PTRDIFF_MAX)
			expect_fail(p, ENOMEM, "aligned_alloc", size);
		else
			admit(s, p, size, align, "aligned_alloc");
		return;
	}
	void *p = mp_memalign(align, size);    /* any alignment, rounded up */
	size_t want = align <= 1 ? 1 : (size_t)1 << ilog2_ceil(align);
	if (size > PTRDIFF_MAX)
		expect_fail(p, ENOMEM, "memalign", size);
	else
		admit(s, p, size, want, "memalign");
}

static void op_valloc(unsigned s, size_t size, bool pvalloc)
{
	release(s);
	errno = 0;
	void *p = pvalloc ? mp_pvalloc(size) : mp_valloc(size);
	const char *what = pvalloc ? "pvalloc" : "valloc";
	if (size > PTRDIFF_MAX) {
		expect_fail(p, ENOMEM, what, size);
		return;
	}
	if (pvalloc)           /* the whole pages are the caller's */
		size = zone_bytes_of(size);
	admit(s, p, size, PAGE_SIZE, what);
}

/* Frees up to 12 slots in one call, with duplicates and interior pointers
 * of zone blocks mixed in when the input asks. */
static void op_free_bulk(struct input *in)
{
	void *ptrs[2 * SLOTS + 1];
	bool chosen[SLOTS] = { false };
	size_t n = 0;
	unsigned k = 1 + (unsigned)take(in, 1) % 12, bad = 0;

	while (k--) {
		unsigned s = (unsigned)take(in, 1) % SLOTS;
		if (live[s].p && !chosen[s]) {
			verify(s, "free_bulk");
			chosen[s] = true;
			ptrs[n++] = live[s].p;
		}
	}
	unsigned flags = (unsigned)take(in, 1);
	if (flags & 1) {                 /* a duplicate after the first: a double free */
		for (size_t i = 0, m = n; i < m; i++)
			if (zone_owns(ptrs[i])) {
				ptrs[n++] = ptrs[i];
				bad++;
				break;
			}
	}
	if (flags & 2) {                 /* an interior pointer, anywhere in the array */
		unsigned s = (unsigned)take(in, 1) % SLOTS;
		if (live[s].p && zone_owns(live[s].p)) {
			size_t at = (flags >> 2) % (n + 1);
			if (at < n)
				ptrs[n] = ptrs[at];
			ptrs[at] = interior(s, take(in, 3));
			n++;
			bad++;
		}
	}
	if (bad) {
		struct refusal r;
		refusal_begin(&r);
		mp_free_bulk(ptrs, n);
		refusal_end(&r, bad, "magpage_free_bulk", false);
	} else {
		mp_free_bulk(ptrs, n);
	}
	for (unsigned s = 0; s < SLOTS; s++)
		if (chosen[s])
			live[s].p = NULL;
}

static void run_op(struct input *in)
{
	unsigned op = (unsigned)take(in, 1) % OP_COUNT;
	unsigned s = (unsigned)take(in, 1) % SLOTS;

	switch (op) {
	case OP_MALLOC:
		op_malloc(s, draw_size(in));
		break;
	case OP_CALLOC:
		op_calloc(s, in);
		break;
	case OP_REALLOC:
		op_realloc(s, draw_size(in));
		break;
	case OP_REALLOC_CHAIN:
		for (unsigned k = 1 + (unsigned)take(in, 1) % 8; k; k--)
			op_realloc(s, draw_size(in));
		break;
	case OP_POSIX_MEMALIGN:
	case OP_ALIGNED_ALLOC:
	case OP_MEMALIGN: {
		size_t align = draw_align(in);
		op_aligned(op, s, align, draw_size(in));
		break;
	}
	case OP_VALLOC:
	case OP_PVALLOC:
		op_valloc(s, draw_size(in), op == OP_PVALLOC);
		break;
	case OP_FREE:
		if (live[s].p)
			release(s);
		else
			mp_free(NULL);
		break;
	case OP_FREE_BULK:
		op_free_bulk(in);
		break;
	case OP_USABLE:
		if (live[s].p) {
			check_usable(live[s].p, live[s].size, "malloc_usable_size");
			verify(s, "malloc_usable_size");
		}
		break;
	case OP_BAD_INTERIOR: {
		uint64_t r = take(in, 3);
		unsigned how = (unsigned)take(in, 1);
		if (!live[s].p || !zone_owns(live[s].p))
			break;
		size_t usable = mp_usable_size(live[s].p);
		send_bad(interior(s, r), how, false);
		CHECK(mp_usable_size(live[s].p) == usable, "a bad pointer changed its block's size");
		verify(s, "after an interior pointer was refused");
		break;
	}
	case OP_DOUBLE_FREE: {
		unsigned how = (unsigned)take(in, 1);
		if (!live[s].p || !zone_owns(live[s].p))
			break;
		void *p = live[s].p;
		release(s);
		send_bad(p, how, true);
		break;
	}
	case OP_BAD_WILD: {
		uint64_t r = take(in, 4);
		unsigned how = (unsigned)take(in, 1);
		unsigned char *x = (unsigned char *)zg.base + (r % zg.pages) * PAGE_SIZE;
		if (how & 4)
			x += (r >> 32) % PAGE_SIZE;
		if (!inside_live(x))
			send_bad(x, how, false);
		break;
	}
	case OP_TRIM:
		mp_trim((size_t)take(in, 2) << 4);
		break;
	case OP_DRAIN:
		pa_drain_all();
		break;
	default:
		for (unsigned i = 0; i < SLOTS; i++)
			if (live[i].p)
				verify(i, "a full check");
		validate("in the middle of the sequence");
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char conf[1024];
	const char *user = getenv("MAGPAGE_CONF");

	(void)argc;
	(void)argv;
	glibc_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "__libc_memalign");
	real_stderr = dup(2);
	capture = memfd_create("fuzz_malloc-reports", MFD_CLOEXEC);
	if (!glibc_memalign || real_stderr < 0 || capture < 0) {
		perror("fuzz_malloc: setup");
		abort();
	}
	/* A crash inside a refusal window must still be reported. */
	__sanitizer_set_report_fd((void *)(uintptr_t)real_stderr);

	/* The user's keys after the region size, so they may change it;
	 * on_invalid last, because the bad pointers need it. */
	snprintf(conf, sizeof(conf), REGION ",%s,on_invalid:report", user ? user : "");
	setenv("MAGPAGE_CONF", conf, 1);
	mp_init_slow();
	CHECK(opt.on_invalid == INVALID_REPORT && zg.bytes,
	      "MAGPAGE_CONF=%s: no region or not on_invalid:report", conf);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };

	while (in.n)
		run_op(&in);

	/* The end of every sequence: nothing may stay behind in the zone. */
	if (size && data[size - 1] & 1) {
		void *all[SLOTS];
		size_t n = 0;
		for (unsigned i = 0; i < SLOTS; i++)
			if (live[i].p) {
				verify(i, "the final free_bulk");
				all[n++] = live[i].p;
				live[i].p = NULL;
			}
		mp_free_bulk(all, n);
	} else {
		for (unsigned i = 0; i < SLOTS; i++)
			release(i);
	}
	runs_drain();            /* first: the spare runs' pages go through the caches */
	pa_drain_all();
	uint64_t cached = cached_pages();
	CHECK(cached == 0, "%lu pages still cached after pa_drain_all and runs_drain",
	      (unsigned long)cached);
	validate("after freeing everything and draining");
	return 0;
}
