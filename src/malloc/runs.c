/*
 * runs.c — the page-plus-header sizes in runs.
 *
 * A request of a page or two plus a header (4101, 8224 bytes) would waste
 * up to half its pages as whole pages, so the waste policy turns it away
 * (waste_ok).  Rather than glibc, it gets an object in a run: N objects of
 * k pages + h bytes, k = 1 or 2 and the header room h a multiple of 64, in
 * kN + 1 pages, N = 4096 / h.  Object i starts in page i*k of the
 * run, at offset i*h (N*h <= 4096), so that every object starts in a page
 * of its own, and the descriptor of that page says which object it is:
 *
 *   a size of k pages + d bytes (0 < d <= 4096, k = 1, 2) has h = d
 *   rounded up to 64: 4101 -> 4096 + 64 (64 in 65 pages), sqlite's 4368
 *   -> 4096 + 320 (12 in 13 pages), 5000 -> 4096 + 960 (4 in 5),
 *   8224 -> 8192 + 64 (64 in 129)
 *
 * so an object wastes less than 64 bytes, and a run less than a page
 * (N objects of 4096 + h leave 4096 - N*h of the last page).  16 objects
 * of 4160 bytes in 17 pages would hold 6% more than the objects need:
 * python's 4101-byte bytes objects took 7 MiB more than under glibc.
 * That is 63 classes per k (index (k - 1) * 64 + h / 64 - 1; h = 4096
 * would be whole pages: the last 63 bytes below a page multiple, which
 * only waste_max below 2 turns away, go to glibc).  Only the
 * sizes the policy turns away come here (with the default waste_max 25:
 * 4097..6143 and 8193..9215 bytes); three pages and more go to glibc when
 * the policy turns them away (waste_max below 25), as before.
 *
 * Descriptors (zone.h).  The run is one block of kN + 1 pages held from
 * the zone.  Every page where an object starts carries PG_RUN, its class in
 * owner and in reserved32 its distance in pages from the run's first page;
 * the other pages of the run carry no flag.  The first page also heads the
 * run: its free objects as a bitmap in req_bytes, their count in
 * pcp_next, and next/prev link it on its class's list.  PG_ALLOC is never
 * set, so a free of object 0 (page aligned) cannot free the run's pages;
 * mp_free finds PG_RUN on its slow path (page_free).
 *
 * Per class a bin under a lock, taken with this thread's signals held back
 * (as the depot's): the runs with free objects (partial), and one run with
 * every object free kept for the next allocation (spare), so that a class
 * cycling one object does not make and break a run each time; a second
 * wholly free run goes back to the zone.  The lock also makes the
 * double-free check exact: a free finds the object's bit already set.
 *
 * Signal handlers: a handler's request of these sizes gets whole pages, as
 * every handler request does (handler_alloc); a handler's free of an
 * object only tries the lock, and if another thread holds it, pushes the
 * object on a stack the next process-context call drains (the object's
 * first word is the link).
 */
#include <string.h>

#include "malloc/malloc_impl.h"

struct run_class {
	uint32_t size;          /* object bytes: k pages + 4096 / N */
	uint16_t k;             /* pages per object, rounded down */
	uint16_t n;             /* objects per run */
};

#define RUN_STEP   64           /* header room granularity, and object alignment */
#define RUN_MAX_N  64           /* objects per run (4096 / 64): a bitmap in one word */
/* Filled by runs_init from the rule above. */
static struct run_class rclass[RUN_CLASSES];

struct run_bin {
	struct mp_lock lock;
	struct page_desc *partial;   /* runs with free and live objects */
	struct page_desc *spare;     /* a run whose objects are all free */
	uint64_t allocs, frees;      /* objects (live: the difference); under the lock */
	uint64_t made, released;     /* runs */
	uint64_t runs;               /* runs held now */
	uint64_t peak;               /* the most runs held at once */
	uint64_t decay_seen;         /* allocs at the last runs_decay */
} cacheline_aligned;

static struct run_bin bins[RUN_CLASSES];
static void *deferred;               /* handler frees that found a bin locked */
static uint64_t deferred_count;      /* atomic */
bool runs_on;                        /* opt.runs and a region */

/* A run's bitmap with every object free. */
static inline uint64_t all_free(const struct run_class *rc)
{
	return rc->n == RUN_MAX_N ? ~0ull : (1ull << rc->n) - 1;
}

/* Objects of a bin live now, read without its lock: frees first, so that
 * the difference never goes below 0. */
static uint64_t bin_live(const struct run_bin *b)
{
	uint64_t frees = __atomic_load_n(&b->frees, __ATOMIC_ACQUIRE);
	return __atomic_load_n(&b->allocs, __ATOMIC_RELAXED) - frees;
}

static inline uint32_t run_pages(const struct run_class *rc)
{
	return (uint32_t)rc->k * rc->n + 1;
}

/* The class of a size, or -1: more than one page, at most three less 64
 * bytes (a header room of a whole page would make whole pages). */
int run_class_of(size_t size)
{
	if (!runs_on || size <= PAGE_SIZE || size > 3 * PAGE_SIZE - RUN_STEP)
		return -1;
	size_t k = (size - 1) >> PAGE_SHIFT, d = size - (k << PAGE_SHIFT);
	if (d > PAGE_SIZE - RUN_STEP)
		return -1;
	return (int)((k - 1) * (PAGE_SIZE / RUN_STEP) + (d + RUN_STEP - 1) / RUN_STEP - 1);
}

size_t run_object_size(int cls)
{
	return rclass[cls].size;
}

void runs_init(bool zone_ok)
{
	_Static_assert(RUN_CLASSES == 2 * PAGE_SIZE / RUN_STEP, "64 classes per page count");
	for (unsigned c = 0; c < RUN_CLASSES; c++) {
		unsigned k = 1 + c / (PAGE_SIZE / RUN_STEP);
		unsigned h = (c % (PAGE_SIZE / RUN_STEP) + 1) * RUN_STEP;
		unsigned n = PAGE_SIZE / h < RUN_MAX_N ? PAGE_SIZE / h : RUN_MAX_N;
		rclass[c] = (struct run_class){ .size = (k << PAGE_SHIFT) + h, .k = (uint16_t)k,
						.n = (uint16_t)n };
	}
	runs_on = zone_ok && opt.runs;
}

static void lock_bin(struct run_bin *b, uint8_t *was)
{
	sigctx_lock(&b->lock, false, was);
}

static void unlock_bin(struct run_bin *b, uint8_t was)
{
	sigctx_unlock(&b->lock, was);
}

static void list_add(struct run_bin *b, struct page_desc *h)
{
	h->prev = NULL;
	h->next = b->partial;
	if (b->partial)
		b->partial->prev = h;
	b->partial = h;
}

static void list_del(struct run_bin *b, struct page_desc *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		b->partial = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->next = h->prev = NULL;
}

/* Marks the pages of a new run (its block's head is h): every object's
 * first page PG_RUN, the rest nothing, all objects free. */
static void run_format(struct page_desc *h, unsigned cls)
{
	const struct run_class *rc = &rclass[cls];
	uint32_t pages = run_pages(rc);
	for (uint32_t j = 1; j < pages; j++) {
		h[j].flags = 0;
		if (j % rc->k == 0 && j / rc->k < rc->n) {
			h[j].owner = (uint16_t)cls;
			h[j].reserved32 = j;
			__atomic_store_n(&h[j].flags, (uint8_t)PG_RUN, __ATOMIC_RELEASE);
		}
	}
	h->owner = (uint16_t)cls;
	h->reserved32 = 0;
	h->req_bytes = all_free(rc);
	h->pcp_next = rc->n;
	h->next = h->prev = NULL;
	__atomic_store_n(&h->flags, (uint8_t)PG_RUN, __ATOMIC_RELEASE);
}

/* Under the bin's lock: the run's pages lose their marks, so that nothing
 * in them passes for an object once the zone has them back (owner and
 * reserved32 mean something only beside PG_RUN). */
static void run_unformat(struct page_desc *h, const struct run_class *rc)
{
	uint32_t pages = run_pages(rc);
	for (uint32_t j = 0; j < pages; j++)
		__atomic_store_n(&h[j].flags, (uint8_t)0, __ATOMIC_RELAXED);
}

/* A run's pages back to the zone (the bin's lock not held). */
static void run_release(struct page_desc *h)
{
	pa_free(h);
	tick_check();
	purge_free_slow();
}

/*
 * Frees object i of run h (class cls) under the bin's lock: false if it is
 * free already (a double free), or if the run is gone (its head no longer
 * a run of this class: a free of a stale pointer).
 */
static bool free_locked(struct run_bin *b, struct page_desc *h, unsigned cls, unsigned i,
			struct page_desc **release)
{
	const struct run_class *rc = &rclass[cls];
	*release = NULL;
	if (!(h->flags & PG_RUN) || h->owner != cls || h->reserved32 != 0 ||
	    (h->req_bytes >> i) & 1)
		return false;
	h->req_bytes |= 1ull << i;
	uint32_t nfree = ++h->pcp_next;
	b->frees++;
	if (nfree == 1)
		list_add(b, h);             /* was full */
	if (nfree == rc->n) {
		list_del(b, h);
		if (!b->spare) {
			b->spare = h;
		} else {
			run_unformat(h, rc);
			b->runs--;
			b->released++;
			*release = h;
		}
	}
	return true;
}

static NOINLINE void drain_deferred_slow(void);

/* The frees handlers deferred, if any, outside a handler. */
static inline void drain_deferred_runs(void)
{
	if (unlikely(__atomic_load_n(&deferred, __ATOMIC_RELAXED)) && !sigctx_in_irq())
		drain_deferred_slow();
}

/* One object of class cls, or NULL (the zone has no run to give): the
 * caller falls back to glibc.  Process context only. */
void *run_alloc(int cls, bool zero, size_t size)
{
	const struct run_class *rc = &rclass[cls];
	struct run_bin *b = &bins[cls];
	struct page_desc *h, *fresh = NULL;
	uint8_t was;

	drain_deferred_runs();
	lock_bin(b, &was);
	while (!(h = b->partial) && !(h = b->spare)) {
		if (fresh) {
			run_format(fresh, (unsigned)cls);
			b->made++;
			if (++b->runs > b->peak)
				b->peak = b->runs;
			h = fresh;
			fresh = NULL;
			break;
		}
		unlock_bin(b, was);
		fresh = pa_alloc(run_pages(rc), 0);
		tick_check();
		if (!fresh)
			return NULL;
		lock_bin(b, &was);
	}
	if (h == b->spare)
		b->spare = NULL;
	if (h->pcp_next == rc->n)
		list_add(b, h);             /* the spare, or just made */
	unsigned i = (unsigned)__builtin_ctzll(h->req_bytes);
	h->req_bytes &= ~(1ull << i);
	if (--h->pcp_next == 0)
		list_del(b, h);
	b->allocs++;
	unlock_bin(b, was);
	if (fresh) {                        /* another thread made one meanwhile */
		fresh->flags = 0;
		run_release(fresh);
	}
	void *p = (char *)desc_to_addr(h) + (size_t)i * rc->size;
	if (zero)
		memset(p, 0, size);
	return p;
}

/* The run object p starts (its page's descriptor pd has PG_RUN): its
 * run's head, class and index, or false if p is not an object's start. */
static bool locate(void *p, struct page_desc *pd, struct page_desc **h, unsigned *cls,
		   unsigned *i)
{
	uint32_t back = __atomic_load_n(&pd->reserved32, __ATOMIC_RELAXED);
	unsigned c = __atomic_load_n(&pd->owner, __ATOMIC_RELAXED);
	if (c >= RUN_CLASSES)
		return false;
	const struct run_class *rc = &rclass[c];
	if (back % rc->k || back / rc->k >= rc->n)
		return false;
	*h = pd - back;
	*cls = c;
	*i = back / rc->k;
	return (uintptr_t)p == (uintptr_t)desc_to_addr(*h) + (uintptr_t)*i * rc->size;
}

#define NOT_START "not the start of a live allocation"
#define FREE_ALREADY "double free: the object is already free"

int run_class_of_object(void *p, struct page_desc *pd, const char **why)
{
	struct page_desc *h;
	unsigned c, i;
	if (!locate(p, pd, &h, &c, &i)) {
		*why = NOT_START;
		return -1;
	}
	if ((h->req_bytes >> i) & 1) {
		*why = FREE_ALREADY;
		return -1;
	}
	return (int)c;
}

size_t run_usable_size(void *p, struct page_desc *pd)
{
	const char *why;
	int c = run_class_of_object(p, pd, &why);
	return c < 0 ? 0 : rclass[c].size;
}

/* Frees run object p (pd: its page's descriptor, PG_RUN seen); fn names
 * the call in a report of a bad pointer. */
void run_free(void *p, struct page_desc *pd, const char *fn)
{
	struct page_desc *h, *release;
	unsigned c, i;
	uint8_t was;

	if (!locate(p, pd, &h, &c, &i)) {
		bad_pointer_why(fn, p, NOT_START);
		return;
	}
	struct run_bin *b = &bins[c];
	bool irq = sigctx_in_irq();
	drain_deferred_runs();
	if (!sigctx_lock(&b->lock, irq, &was)) {
		mp_stack_push(&deferred, p);         /* a handler, the lock held */
		__atomic_add_fetch(&deferred_count, 1, __ATOMIC_RELAXED);
		return;
	}
	if (!free_locked(b, h, c, i, &release)) {
		unlock_bin(b, was);
		bad_pointer_why(fn, p, FREE_ALREADY);
		return;
	}
	unlock_bin(b, was);
	if (release)
		run_release(release);
}

/* Process context: the frees handlers deferred. */
static NOINLINE void drain_deferred_slow(void)
{
	void *p = __atomic_exchange_n(&deferred, NULL, __ATOMIC_ACQUIRE);
	while (p) {
		void *next = *(void **)p;
		run_free(p, pfn_to_desc(addr_to_pfn(p)), "free");
		p = next;
	}
}

/* The spare runs back to the zone: every class's (all), or those of the
 * classes that allocated nothing since the last call (the decay); the
 * pages given back.  A handler only tries each lock. */
static size_t give_back_spares(bool all)
{
	size_t pages = 0;
	bool irq = sigctx_in_irq();

	drain_deferred_runs();              /* their runs may be wholly free now */
	for (int c = 0; c < RUN_CLASSES; c++) {
		struct run_bin *b = &bins[c];
		struct page_desc *h;
		uint8_t was;
		uint64_t allocs = __atomic_load_n(&b->allocs, __ATOMIC_RELAXED);
		bool idle = allocs == b->decay_seen;
		if (!all)
			b->decay_seen = allocs;
		if (!__atomic_load_n(&b->spare, __ATOMIC_RELAXED) || (!all && !idle))
			continue;
		if (!sigctx_lock(&b->lock, irq, &was))
			continue;
		h = b->spare;
		b->spare = NULL;
		if (h) {
			run_unformat(h, &rclass[c]);
			b->runs--;
			b->released++;
		}
		unlock_bin(b, was);
		if (h) {
			run_release(h);
			pages += run_pages(&rclass[c]);
		}
	}
	return pages;
}

/* malloc_trim, magpage_drain, an idle process's purge. */
size_t runs_drain(void)
{
	return give_back_spares(true);
}

/* The decay purge, every purge_delay_ms while the process works: a class
 * that allocated nothing in the interval gives its spare run back, so that
 * a size used once does not keep its run. */
size_t runs_decay(void)
{
	return give_back_spares(false);
}

/* ---- statistics, validation, fork ------------------------------------- */

/* The statistics report's lines per class that served anything. */
void runs_text(struct fmt_buf *b)
{
	for (int c = 0; c < RUN_CLASSES; c++) {
		const struct run_bin *bin = &bins[c];
		const struct run_class *rc = &rclass[c];
		uint64_t allocs = __atomic_load_n(&bin->allocs, __ATOMIC_RELAXED);
		if (!allocs)
			continue;
		fmt_printf(b, "    %5u-byte objects, %2u in %2u pages: %lu live in %lu runs (at most "
			   "%lu at once); %lu allocations\n", (unsigned)rc->size, (unsigned)rc->n,
			   (unsigned)run_pages(rc),
			   (unsigned long)bin_live(bin),
			   (unsigned long)__atomic_load_n(&bin->runs, __ATOMIC_RELAXED),
			   (unsigned long)__atomic_load_n(&bin->peak, __ATOMIC_RELAXED),
			   (unsigned long)allocs);
	}
}

void runs_stats(struct runs_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int c = 0; c < RUN_CLASSES; c++) {
		const struct run_bin *b = &bins[c];
		out->allocs += __atomic_load_n(&b->allocs, __ATOMIC_RELAXED);
		out->frees += __atomic_load_n(&b->frees, __ATOMIC_RELAXED);
		out->made += __atomic_load_n(&b->made, __ATOMIC_RELAXED);
		out->released += __atomic_load_n(&b->released, __ATOMIC_RELAXED);
		out->live += bin_live(b);
		uint64_t runs = __atomic_load_n(&b->runs, __ATOMIC_RELAXED);
		out->runs += runs;
		out->pages += runs * run_pages(&rclass[c]);
		out->live_bytes += bin_live(b) * rclass[c].size;
		if (__atomic_load_n(&b->spare, __ATOMIC_RELAXED))
			out->spare_pages += run_pages(&rclass[c]);
	}
	out->deferred = __atomic_load_n(&deferred_count, __ATOMIC_RELAXED);
}

/*
 * Every bin's lists against the descriptors: each run on a list heads a
 * run of its class with a free count matching its bitmap, partial runs
 * neither full nor empty, the spare wholly free; the live objects and runs
 * counted add up.  0, or -1 with the first violation in why.
 */
int runs_validate(char *why, size_t cap)
{
	for (int c = 0; c < RUN_CLASSES; c++) {
		struct run_bin *b = &bins[c];
		const struct run_class *rc = &rclass[c];
		uint64_t all = all_free(rc);
		uint64_t free_objs = 0, listed = 0, full;
		uint8_t was;
		int bad = 0;
		lock_bin(b, &was);
		for (struct page_desc *h = b->partial; h && !bad; h = h->next, listed++) {
			if (!(h->flags & PG_RUN) || h->owner != c || h->reserved32 ||
			    h->pcp_next != (uint32_t)__builtin_popcountll(h->req_bytes) ||
			    h->pcp_next == 0 || h->pcp_next >= rc->n || (h->req_bytes & ~all))
				bad = 1;
			free_objs += h->pcp_next;
			if (listed > b->runs)
				bad = 2;
		}
		if (!bad && b->spare && (!(b->spare->flags & PG_RUN) || b->spare->req_bytes != all ||
					 b->spare->pcp_next != rc->n))
			bad = 3;
		/* live objects: every object of the runs on no list (full), and
		 * those of the listed runs that are not free */
		full = b->runs - listed - (b->spare ? 1 : 0);
		if (!bad && (listed + (b->spare ? 1 : 0) > b->runs ||
			     b->allocs - b->frees != full * rc->n + listed * rc->n - free_objs))
			bad = 4;
		unlock_bin(b, was);
		if (bad) {
			fmt_snprintf(why, cap, "runs: class %d (%u-byte objects): %s", c,
				     (unsigned)rc->size,
				     bad == 1 ? "a listed run's descriptor disagrees with its bitmap"
				     : bad == 2 ? "its list is longer than its runs"
				     : bad == 3 ? "its spare run is not wholly free"
						: "its live count disagrees with its runs");
			return -1;
		}
	}
	return 0;
}

static uint8_t fork_was;

void runs_fork_prepare(void)
{
	fork_was = sigctx_hold();
	for (int c = 0; c < RUN_CLASSES; c++)
		mp_lock(&bins[c].lock);
}

void runs_fork_parent(void)
{
	for (int c = RUN_CLASSES - 1; c >= 0; c--)
		mp_unlock(&bins[c].lock);
	sigctx_unhold(fork_was);
}

void runs_fork_child(void)
{
	for (int c = 0; c < RUN_CLASSES; c++)
		mp_lock_reset(&bins[c].lock);
	sigctx_unhold(fork_was);
}

/* The child of _Fork (no atfork handler ran): a bin whose lock a vanished
 * thread held may be half updated; it is abandoned (its runs stay with the
 * objects the program holds, and their frees still find them). */
void runs_fork_recover(void)
{
	for (int c = 0; c < RUN_CLASSES; c++) {
		struct run_bin *b = &bins[c];
		if (mp_lock_is_held(&b->lock)) {
			b->partial = b->spare = NULL;
			mp_lock_reset(&b->lock);
		}
	}
}
