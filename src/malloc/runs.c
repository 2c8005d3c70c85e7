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
 * set, so a free of object 0 (page aligned) cannot free the run's pages:
 * mp_free's slow path takes a run object (run_free_hop, or page_free's
 * PG_RUN for a handler, statistics on, or a bad pointer).
 *
 * Per class a bin under a lock, taken with this thread's signals held back
 * (as the depot's): the runs with free objects (partial), and one run with
 * every object free kept for the next allocation (spare), so that a class
 * cycling one object does not make and break a run each time; a second
 * wholly free run goes back to the zone.  The lock also makes the
 * double-free check exact: a free finds the object's bit already set.
 *
 * Per CPU, in front of the bins, a cache of free objects per class (with
 * rseq; off without it): an array of object numbers (the object's offset
 * in the region / 64) pushed and popped by the page caches' restartable
 * sections (platform/rseq.h), so that a malloc and free of these sizes
 * takes no lock.  An empty array takes up to half its capacity from the
 * class's depot, or from one run of the bin (one lock hold), a full one
 * gives the newest half to the depot (below); the capacity starts at 128
 * KiB of objects (4101 bytes: 30) and grows, as the page caches' arrays
 * do, to 2 MiB, at most 560 (rc_tune).  An object is the program's while
 * the live byte of the page it starts in (zone.h) is LIVE_RUN + its class,
 * or while PG_RUN_LIVE is set on that page's descriptor (the mark of the
 * classes past LIVE_RUN_CLASSES, and of an object a slow path took on):
 * set when malloc hands it out, cleared by free, which is how free tells a
 * double free from a first one whether the object went back to its run or
 * to an array.  Free reads the byte and
 * no descriptor (run_free_live): a run's block is aligned to its page
 * count rounded up to a power of two (bin_grow), so the run's first page
 * is the object's page rounded down, the object's index that page's
 * distance from it / k, and the pointer must be that object's start.  The
 * slow paths that take an object on (realloc, malloc_usable_size,
 * magpage_free_bulk, a free in a handler, with statistics on, or a bad
 * one) first turn its byte into PG_RUN_LIVE (live_claim).  In its run's
 * bitmap an object in an array or a depot counts as taken: a bin's
 * allocs - frees is what the program holds plus what the arrays and the
 * depot hold.  What the arrays hold goes back
 * to the runs on malloc_trim, magpage_drain (runs_drain), when the zone
 * has no run to give a class that needs one (refill), and on the decay for
 * a class whose array on a CPU did not move in the interval (runs_decay):
 * the CPU's arrays are stopped and fenced as the page caches' are
 * (cache_stop_cpu), under rc_drain_lock.
 *
 * Signal handlers: a handler's request of these sizes gets whole pages, as
 * every handler request does (handler_alloc); a handler's free of an
 * object goes to its CPU's array (the section restarts if the handler
 * interrupted one), else only tries the bin's lock, and if another thread
 * holds it, pushes the object on a stack the next process-context run
 * malloc drains (the one-hop path leaves it while the stack is not empty;
 * the object's first word is the link), as do a free that goes to the bin,
 * the decay, malloc_trim and magpage_drain.
 */
#include <string.h>
#include <sys/mman.h>

#include "malloc/malloc_impl.h"

struct run_class {
	uint32_t size;          /* object bytes: k pages + 4096 / N */
	uint8_t k;              /* pages per object, rounded down: 1 or 2 */
	uint8_t kshift;         /* log2(k): free divides by k with a shift */
	uint16_t n;             /* objects per run */
	uint64_t run_mask;      /* a run's first pfn is a multiple of mask + 1 */
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
	uint64_t decay_seen;         /* allocs + depot_moves at the last runs_decay */
	struct page_desc *spare_seen; /* the spare at the last runs_decay */
	uint32_t *depot;             /* the class's depot: a page, mapped on first use */
	uint32_t depot_n, depot_cap; /* objects in it, and its room */
	uint64_t depot_moves;        /* depot_put and depot takes */
	uint64_t depot_seen;         /* depot_moves at the last runs_decay */
} cacheline_aligned;

static struct run_bin bins[RUN_CLASSES];

/*
 * A run head's reserved[1]: the CPU that takes objects from it for its
 * array (its id + 1; 0: none yet, or no CPU caches).  Under the bin's
 * lock.  The live bytes of a run's objects share one line (two for 2-page
 * objects: a run is aligned to 128 or 256 pages), which every malloc and
 * free of them writes, so that two CPUs cycling objects of one run would
 * bounce that line between them on every call: a CPU takes from a run it
 * took from before or one no CPU has, else from the spare or a new run
 * (bin_take), sharing only when the zone has no run to give.  A run wholly
 * free loses its taker, and the decay clears every partial run's
 * (give_back_spares), so that a CPU whose threads left does not keep its
 * runs from the others for long.
 */
#define run_taker(h) ((h)->reserved[1])

/*
 * The depot: per class, a stack of object numbers under the bin's lock,
 * between the CPUs' arrays and the runs, as the page caches' depot is
 * between their arrays and the zone.  A full array's spill (rc_spill)
 * lands here, an empty array's refill (bin_take) takes from here first:
 * one lock hold and a copy, where the runs cost a bitmap search and
 * update per object (batches of 64 4160-byte objects: 46-52 -> 36-37
 * cycles a pair, of 1024: 61-65 -> 37-38).  RC_DEPOT_BYTES of objects per
 * class at most (and RC_DEPOT_SLOTS); what finds no room goes back to its
 * runs.  Its objects count as taken in their runs, as the arrays' do;
 * they go back to their runs on
 * malloc_trim and magpage_drain, and on the decay for a class whose depot
 * did not move in the interval (depot_drain).  A class's stack is a page,
 * mapped by its first spill (a process that never spills maps none: an
 * RLIMIT_DATA close to its needs has no room to spare).
 */
#define RC_DEPOT_BYTES (4u << 20)
#define RC_DEPOT_SLOTS (PAGE_SIZE / sizeof(uint32_t))
/* Objects moved per step between an array, the depot and the runs, in a
 * buffer on the stack: refill, rc_spill and depot_drain move up to 280,
 * 281 and 1024 in steps of this many, so that a thread's stack needs 512
 * bytes for them, not 2.2 to 4 KiB (a batch free after an idle spell
 * reached 6.8 KiB below free's caller).  Two runs' worth, so that a take
 * from a run (at most RUN_MAX_N) is one step. */
#define RC_CHUNK 128
static void *deferred;               /* handler frees that found a bin locked */
static uint64_t deferred_count;      /* atomic */
bool runs_on;                        /* opt.runs and a region */
/* run_alloc_hop may pop: the CPU caches are set up, and glibc's rseq
 * offset is the one the build recorded (platform/rseq.h), which its pop
 * takes as a constant */
static bool rc_hop;

/* ---- the per-CPU caches of objects ---- */

/* A class's header line and array, 9 x 256 bytes as the page caches'
 * (cache/bonwick.h: the header lines of 16 classes in a row then sit at
 * page offsets of their own) */
#define RC_CLASS_BYTES 2304
#define RC_SLOTS ((RC_CLASS_BYTES - 64) / 4)
/* The sections find a CPU's array at the CPU's id x 64 KiB (rseq.h), which
 * holds 28 classes of this size: the classes come in groups of 28, group g
 * of every CPU in the g-th stretch of nr_cpus x 64 KiB (rhop's koff). */
#define RC_PER_GROUP ((1u << BW_STRIDE_SHIFT) / RC_CLASS_BYTES)
#define RC_GROUPS ((RUN_CLASSES + RC_PER_GROUP - 1) / RC_PER_GROUP)
/* An array's capacity in bytes of objects: RC_START_BYTES when it opens
 * (and after a drain), growing as the page caches' arrays do
 * (cache_tune_trip) to RC_MAX_BYTES, at most RC_SLOTS objects; all of one
 * CPU's classes together grow by at most RC_GROW_BYTES (rc_tune). */
#define RC_START_BYTES (128u << 10)
#define RC_MAX_BYTES   (2u << 20)
#define RC_GROW_BYTES  (1u << 20)
/* Object numbers are 32 bits: regions up to 256 GiB (larger: no caches). */
#define RC_MAX_REGION (1ull << 38)

/* One class of one CPU: the page caches' layout (cache/bonwick.h), so that
 * their sections serve it: count | top | high, then the array at +64. */
struct rc_class {
	struct bw_hdr h;             /* high: 0 until the array opens (rc_open) */
	uint32_t seen;               /* count at the last decay (rc_drain_lock) */
	struct cache_tune tune;      /* its trips to the depot (rc_tune) */
	uint8_t pad[64 - sizeof(struct bw_hdr) - 4 - sizeof(struct cache_tune)];
	uint32_t slots[RC_SLOTS];
};
_Static_assert(sizeof(struct rc_class) == RC_CLASS_BYTES, "rhop's koff: 28 a stride");
_Static_assert(offsetof(struct rc_class, slots) == 64, "rseq.h: the array follows the header line");
_Static_assert(offsetof(struct rc_class, tune) + sizeof(struct cache_tune) <= 60,
	       "rseq.h: the line's word at +60, read as the top below slot 0, is padding");
_Static_assert(RC_PER_GROUP * RC_CLASS_BYTES <= (1u << BW_STRIDE_SHIFT),
	       "a group of a CPU's classes fits the sections' stride");

static char *rc_base;                /* CPU 0's first group; CPU c's c << 16 on */

/*
 * Per class, what the one-hop free and the pushes and pops read, in one
 * 16-byte entry: the run's page mask, the header room per page of an
 * object (h / k: object i starts i x k pages from its run's first page, at
 * offset i x h in that page, so a page's distance d from the first page
 * gives the offset d x h / k), and the class's array in a CPU's cache
 * (its offset from the CPU's base, rc_of).  Filled by runs_init.
 */
struct run_hop {
	uint32_t mask;               /* run_mask */
	uint32_t hk;                 /* (size % PAGE_SIZE) / k */
	uint64_t koff;               /* the array's offset in a CPU's cache */
};
static struct run_hop rhop[RUN_CLASSES];

static uint32_t rc_nr_cpus;          /* CPUs with caches: 0 = none (no rseq) */
static size_t rc_group_bytes;        /* a group's stretch: nr_cpus x 64 KiB */
/* Each group's stretch: RC_GROUP_RO (read-only, to be tried), RC_GROUP_RW,
 * or RC_GROUP_FAILED (its mprotect failed: no more tries until the next
 * drain, rc_drain) */
enum { RC_GROUP_RO, RC_GROUP_RW, RC_GROUP_FAILED };
static uint8_t rc_group_state[RC_GROUPS];
static uint32_t rc_batch[RUN_CLASSES];   /* half an array's starting capacity */
static uint32_t rc_max[RUN_CLASSES];     /* the most an array may grow to */
/* The classes any CPU's array may hold objects of: [rc_lo, rc_hi), grown
 * before an array first gets a capacity (rc_open). */
static uint32_t rc_lo = RUN_CLASSES, rc_hi;
static struct mp_lock rc_drain_lock; /* remote drains; fork takes it first */
#if MP_HAVE_RSEQ
static struct cache_fences rc_fenced;
#endif
static uint64_t rc_drained;          /* objects the drains gave back to the runs */

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
 * bytes (a header room of a whole page would make whole pages); -1 too
 * while on is false (runs_on, or for the hop rc_hop).  In two steps:
 * 4097..12224 bytes are classes 0..127 in steps of 64, less the last of
 * each page count's 64 (smaller sizes wrap past 127). */
static inline int run_class_if(bool on, size_t size)
{
	size_t cls = (size - PAGE_SIZE - 1) / RUN_STEP;
	if (!on || cls >= RUN_CLASSES || cls % (PAGE_SIZE / RUN_STEP) == PAGE_SIZE / RUN_STEP - 1)
		return -1;
	return (int)cls;
}

static inline int run_class(size_t size)
{
	return run_class_if(runs_on, size);
}

int run_class_of(size_t size)
{
	return run_class(size);
}

size_t run_object_size(int cls)
{
	return rclass[cls].size;
}

#if MP_HAVE_RSEQ
/* Class c's place among a CPU's arrays (28 to a group): the classes of the
 * default waste_max's sizes first, 4097..6143 and 8193..9215 bytes (0..31
 * and 64..79), so that they take two groups, not three (each group a
 * program uses costs it 64 KiB a CPU against RLIMIT_DATA). */
static unsigned rc_place(unsigned c)
{
	unsigned per_k = PAGE_SIZE / RUN_STEP;          /* 64 classes a page count */
	if (c < per_k / 2 || c >= per_k + per_k / 4)
		return c;
	if (c >= per_k)                                 /* 64..79 -> 32..47 */
		return c - per_k / 2;
	return c + per_k / 4;                           /* 32..63 -> 48..79 */
}

/*
 * Where CPU 0's first group starts in its mapping.  Class c's header line
 * is at the start + koff (rhop), 2,304 bytes (9 x 256) from the one before
 * in its group and 64 KiB x nr_cpus from the group's, so the headers take
 * the 16 page offsets 256 bytes apart from the start's.  Page aligned, some
 * would sit at page offset 0, the L1 set every page's first line maps to:
 * the program's page-aligned data (a block's first line, a run's object 0)
 * evicted them all the time (a third of a run malloc's time in
 * bench_xthread -m server went to the count's load, when every eighth
 * class sat there).  So the start is the first line such that no header
 * is at a page's first or last line, none at the default cache's header
 * offsets (256 bytes apart), and the headers of classes 0 and 64 (the
 * common sizes) are clear of the globals a run malloc reads (mp_span_hot).
 */
static size_t rc_base_offset(void)
{
	struct mp_span hot[24];
	unsigned n = mp_onehop_reads(hot, 16);
	const struct mp_span mine[] = {
		{ &rc_hop, sizeof(rc_hop), 0 }, { &deferred, sizeof(deferred), 0 },
		{ &rc_base, sizeof(rc_base), 0 }, { &rc_nr_cpus, sizeof(rc_nr_cpus), 0 },
		{ &rhop[0], sizeof(rhop[0]), 0 }, { &rhop[64], sizeof(rhop[64]), 0 },
	};
	for (unsigned i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		hot[n++] = mine[i];
	size_t bw = bw_base ? (uintptr_t)bw_base % 256 : 256;
	size_t fallback = 0;
	for (size_t off = 64; off < PAGE_SIZE; off += 64) {
		size_t r = off % 256;
		if (r == 0 || r == (PAGE_SIZE - 64) % 256)
			continue;
		if (!fallback)
			fallback = off;
		/* classes 0 and 64: 1 and 2 pages and a header, route[]'s parts
		 * of the 2- and 3-page classes */
		if (r != bw && !mp_span_hot(hot, n, (off + rhop[0].koff) % PAGE_SIZE, 1) &&
		    !mp_span_hot(hot, n, (off + rhop[64].koff) % PAGE_SIZE, 2))
			return off;
	}
	return fallback;
}
#endif

void runs_init(bool zone_ok)
{
	_Static_assert(RUN_CLASSES == 2 * PAGE_SIZE / RUN_STEP, "64 classes per page count");
	for (unsigned c = 0; c < RUN_CLASSES; c++) {
		unsigned k = 1 + c / (PAGE_SIZE / RUN_STEP);
		unsigned h = (c % (PAGE_SIZE / RUN_STEP) + 1) * RUN_STEP;
		unsigned n = PAGE_SIZE / h < RUN_MAX_N ? PAGE_SIZE / h : RUN_MAX_N;
		rclass[c] = (struct run_class){ .size = (k << PAGE_SHIFT) + h, .k = (uint8_t)k,
						.kshift = (uint8_t)(k - 1), .n = (uint16_t)n,
						.run_mask = (1ull << ilog2_ceil(k * n + 1)) - 1 };
		rhop[c] = (struct run_hop){ .mask = (uint32_t)rclass[c].run_mask, .hk = h / k };
	}
	runs_on = zone_ok && opt.runs;
	for (unsigned c = 0; c < RUN_CLASSES; c++) {
		uint32_t cap = RC_START_BYTES / rclass[c].size;
		rc_batch[c] = (cap < RC_SLOTS ? cap : RC_SLOTS) / 2;
		cap = RC_MAX_BYTES / rclass[c].size;
		rc_max[c] = cap < RC_SLOTS ? cap : RC_SLOTS;
		cap = RC_DEPOT_BYTES / rclass[c].size;
		bins[c].depot_cap = cap < RC_DEPOT_SLOTS ? cap : RC_DEPOT_SLOTS;
	}
#if MP_HAVE_RSEQ
	/* The caches need the fence for their remote drains, and object
	 * numbers of 32 bits. */
	if (runs_on && cpu_rseq_ok && zg.bytes <= RC_MAX_REGION && cache_fence_register()) {
		unsigned n = (unsigned)os.ncpus();
		size_t group = (size_t)n << BW_STRIDE_SHIFT;
		for (unsigned c = 0; c < RUN_CLASSES; c++) {
			unsigned at = rc_place(c);
			rhop[c].koff = at / RC_PER_GROUP * group + at % RC_PER_GROUP * RC_CLASS_BYTES;
		}
		/* read-only until a class of the group opens (rc_group_open) */
		void *m = os.mmap(NULL, RC_GROUPS * group + PAGE_SIZE, PROT_READ,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m != MAP_FAILED) {
			rc_group_bytes = group;
			rc_base = (char *)m + rc_base_offset();
			__atomic_store_n(&rc_nr_cpus, n, __ATOMIC_RELEASE);
			rc_hop = rseq_offset_is_built();
		}
	}
#endif
}

static inline struct rc_class *rc_of(unsigned cpu, unsigned cls)
{
	return (struct rc_class *)(rc_base + ((size_t)cpu << BW_STRIDE_SHIFT) + rhop[cls].koff);
}

static inline uint32_t obj_id(const void *p)
{
	return (uint32_t)(((uintptr_t)p - zg.base) >> 6);
}

static inline void *obj_ptr(uint64_t id)
{
	return (void *)(zg.base + (id << 6));
}

/* The descriptor of the page an object starts in. */
static inline struct page_desc *obj_page(const void *p)
{
	return addr_to_desc((const void *)((uintptr_t)p & ~(uintptr_t)(PAGE_SIZE - 1)));
}

/* Object p of class cls is the program's now: its page's live byte,
 * LIVE_RUN + cls (zone.h), which free reads back without the descriptor
 * (object 0, page aligned, takes free's page path first, which leaves
 * bytes above every block's to free_slow); the classes past
 * LIVE_RUN_CLASSES (the largest headers, which only a waste_max below 10
 * sends here), PG_RUN_LIVE on the descriptor instead.  Plain stores: a
 * free object's byte is 0 and its page carries PG_RUN alone (run_format
 * sets it, only a free clears PG_RUN_LIVE). */
static inline void obj_set_live(void *p, int cls)
{
	if (likely(cls < LIVE_RUN_CLASSES))
		*addr_to_live(p) = (uint8_t)(LIVE_RUN + cls);
	else
		__atomic_store_n(&obj_page(p)->flags, (uint8_t)(PG_RUN | PG_RUN_LIVE),
				 __ATOMIC_RELAXED);
}

#if MP_HAVE_RSEQ
/* One try to pop an object of class cls from this CPU's array into *p;
 * built: the section takes the rseq offset as built (run_alloc_hop, only
 * while rc_hop). */
static ALWAYS_INLINE enum rseq_result rc_pop_at(int cls, void **p, bool built)
{
	uint64_t id, base = (uint64_t)rc_base, koff = rhop[cls].koff;
	uint32_t cpu;
	enum rseq_result r = built ? rseq_bw_pop_built(base, koff, &rc_nr_cpus, &id, &cpu)
				   : rseq_bw_pop_here(base, koff, &rc_nr_cpus, &id, &cpu);
	if (likely(r == RSEQ_DONE))
		*p = obj_ptr(id);
	return r;
}

static inline enum rseq_result rc_pop(int cls, void **p)
{
	return rc_pop_at(cls, p, false);
}
#endif

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
	run_taker(h) = 0;
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

/* After pages went back to the zone: the zone's tick, and the purge trap
 * the frees arm.  A drain ticks once, after its last run: a decay the tick
 * started between two of its runs would take the rest off the orphans and
 * count their pages as its own. */
static void runs_released(void)
{
	tick_check();
	purge_free_slow();
}

/* A run's pages back to the zone (the bin's lock not held). */
static void run_release(struct page_desc *h)
{
	pa_free(h);
	runs_released();
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
		run_taker(h) = 0;
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

/* The run of b a CPU (mark: its id + 1, 0 for any) takes from: one it
 * took from before or no CPU has (among the first 8 partial runs), else
 * the spare, else (share) the first partial run; NULL if none.  Under the
 * bin's lock. */
static struct page_desc *bin_pick(struct run_bin *b, uint64_t mark, bool share)
{
	unsigned looked = 0;
	for (struct page_desc *h = b->partial; h && looked < 8; h = h->next, looked++)
		if (!mark || !run_taker(h) || run_taker(h) == mark)
			return h;
	if (b->spare)
		return b->spare;
	return share ? b->partial : NULL;
}

/*
 * Up to want objects of class cls from its depot if it holds any, else
 * from one run of its bin (bin_pick: mark names the CPU taking, share lets
 * it take from another CPU's run), their numbers into ids: how many, 0 if
 * the bin has no run to take from (the caller grows it, bin_grow).  Taking
 * from one run only, a class whose program holds exactly N objects holds
 * one run.
 */
static unsigned bin_take(int cls, uint32_t *ids, unsigned want, uint64_t mark, bool share)
{
	const struct run_class *rc = &rclass[cls];
	struct run_bin *b = &bins[cls];
	struct page_desc *h;
	uint8_t was;

	lock_bin(b, &was);
	if (b->depot_n) {
		unsigned n = want < b->depot_n ? want : b->depot_n;
		b->depot_n -= n;
		memcpy(ids, &b->depot[b->depot_n], n * sizeof(*ids));
		b->depot_moves++;
		unlock_bin(b, was);
		return n;
	}
	if (!(h = bin_pick(b, mark, share))) {
		unlock_bin(b, was);
		return 0;
	}
	if (h == b->spare)
		b->spare = NULL;
	if (h->pcp_next == rc->n)
		list_add(b, h);             /* the spare */
	run_taker(h) = mark;
	const char *base = desc_to_addr(h);
	unsigned n = 0;
	while (n < want && h->pcp_next) {
		unsigned i = (unsigned)__builtin_ctzll(h->req_bytes);
		h->req_bytes &= ~(1ull << i);
		h->pcp_next--;
		ids[n++] = obj_id(base + (size_t)i * rc->size);
	}
	if (h->pcp_next == 0)
		list_del(b, h);
	b->allocs += n;
	unlock_bin(b, was);
	return n;
}

/* A new run for class cls's bin, its spare (or back to the zone if another
 * thread gave the bin one meanwhile): false if the zone has none to give.
 * Process context, no lock held. */
static bool bin_grow(int cls)
{
	const struct run_class *rc = &rclass[cls];
	struct run_bin *b = &bins[cls];
	uint8_t was;

	/* aligned, as every block of its page count is: free finds the run's
	 * first page from an object's with a mask (run_free_hop) */
	struct page_desc *fresh = pa_alloc(run_pages(rc), ilog2_ceil(run_pages(rc)));
	tick_check();
	if (!fresh)
		return false;
	if (unlikely(desc_pfn(fresh) & rc->run_mask)) {
		fresh->flags = 0;
		run_release(fresh);
		return false;
	}
	lock_bin(b, &was);
	bool use = !b->spare;               /* partial runs may be other CPUs' */
	if (use) {
		run_format(fresh, (unsigned)cls);
		b->made++;
		if (++b->runs > b->peak)
			b->peak = b->runs;
		b->spare = fresh;
	}
	unlock_bin(b, was);
	if (!use) {
		fresh->flags = 0;
		run_release(fresh);
	}
	return true;
}

/*
 * Runs that bin_put took off their bins (wholly free beyond the spare,
 * unformatted), linked through next under orphan_lock, waiting to go back
 * to the zone: bin_put runs with signals held back, under which a run's
 * release would take the handlers' way (sigctx_in_irq), so its callers
 * call release_orphans once they let signals in.  A handler that leaves by
 * siglongjmp in between leaves them here for the next call, not lost.
 */
static struct page_desc *orphans;
static struct mp_lock orphan_lock;

/* The orphans back to the zone, one at a time: the pages given back.  The
 * caller ticks (runs_released) once it has given back all it will. */
static size_t orphans_to_zone(void)
{
	size_t pages = 0;

	while (__atomic_load_n(&orphans, __ATOMIC_RELAXED)) {
		uint8_t was = sigctx_hold();
		mp_lock(&orphan_lock);
		struct page_desc *h = orphans;
		if (h)
			orphans = h->next;
		mp_unlock(&orphan_lock);
		sigctx_unhold(was);
		if (!h)
			break;
		pages += h->npages;
		pa_free(h);
	}
	return pages;
}

static void release_orphans(void)
{
	if (orphans_to_zone())
		runs_released();
}

static struct page_desc *cached_head(uint32_t id, unsigned cls);

/* Objects of class cls that nobody holds (in no array, not the program's)
 * back to their runs, under one hold of the bin's lock; the runs that
 * become wholly free beyond the spare go on the orphans.  Process
 * context, with or without signals held back. */
static void bin_put(int cls, const uint32_t *ids, unsigned n)
{
	const struct run_class *rc = &rclass[cls];
	struct run_bin *b = &bins[cls];
	struct page_desc *release, *gone = NULL, *last = NULL;
	void *bad = NULL;
	uint8_t was;

	lock_bin(b, &was);
	for (unsigned j = 0; j < n; j++) {
		struct page_desc *h = cached_head(ids[j], (unsigned)cls);
		struct page_desc *pd = obj_page(obj_ptr(ids[j]));
		if (!h || !free_locked(b, h, (unsigned)cls, pd->reserved32 >> rc->kshift,
					&release)) {
			bad = obj_ptr(ids[j]);  /* a double free that raced its first */
			continue;
		}
		if (release) {              /* unformatted: its link is ours */
			release->next = gone;
			gone = release;
			if (!last)
				last = release;
		}
	}
	if (gone) {
		mp_lock(&orphan_lock);
		last->next = orphans;
		orphans = gone;
		mp_unlock(&orphan_lock);
	}
	unlock_bin(b, was);
	if (bad)
		bad_pointer_why("free", bad, "double free: the object is already free");
}

#if MP_HAVE_RSEQ
/* Objects of class cls that nobody holds into its depot, as many as it has
 * room for, under one hold of the bin's lock: how many (the caller gives
 * the rest, from ids + that, to bin_put; all of them if the depot's page
 * cannot be mapped).  Process context (rc_spill, the only filler). */
static unsigned depot_put(int cls, const uint32_t *ids, unsigned n)
{
	struct run_bin *b = &bins[cls];
	uint8_t was;

	if (unlikely(!__atomic_load_n(&b->depot, __ATOMIC_ACQUIRE))) {
		void *m = os.mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return 0;
		uint32_t *none = NULL;
		if (!__atomic_compare_exchange_n(&b->depot, &none, (uint32_t *)m, false,
						 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			os.munmap(m, PAGE_SIZE);     /* another thread's came first */
	}
	lock_bin(b, &was);
	unsigned room = b->depot_cap - b->depot_n, k = n < room ? n : room;
	memcpy(&b->depot[b->depot_n], ids, k * sizeof(*ids));
	b->depot_n += k;
	b->depot_moves += k != 0;
	unlock_bin(b, was);
	return k;
}
#endif

/* Every class's depot (all), or those that did not move since the last
 * decay, back to the runs; not in a handler, which must not wait for the
 * bins' locks.  The runs freed wait on the orphans.  Objects given back. */
static size_t depot_drain(bool all)
{
	uint32_t ids[RC_CHUNK];
	size_t objs = 0;

	if (sigctx_in_irq())
		return 0;
	/* signals held back while ids holds objects that are neither in the
	 * depot nor in their runs (a handler leaving by siglongjmp would strand
	 * them), and rc_drain_lock, so that idle_pages counts each once */
	uint8_t held = sigctx_hold();
	mp_lock(&rc_drain_lock);
	for (int c = 0; c < RUN_CLASSES; c++) {
		struct run_bin *b = &bins[c];
		uint8_t was;
		if (!__atomic_load_n(&b->depot_n, __ATOMIC_RELAXED))
			continue;            /* an empty one: nothing to give, idle or not */
		lock_bin(b, &was);
		bool idle = b->depot_moves == b->depot_seen;
		b->depot_seen = b->depot_moves;
		unsigned left = all || idle ? b->depot_n : 0;
		/* RC_CHUNK at a time from the top, as many as it held */
		while (left) {
			unsigned n = left < RC_CHUNK ? left : RC_CHUNK;
			if (n > b->depot_n)
				n = b->depot_n;   /* a refill took some meanwhile */
			if (!n)
				break;
			b->depot_n -= n;
			left -= n;
			memcpy(ids, &b->depot[b->depot_n], n * sizeof(*ids));
			unlock_bin(b, was);
			bin_put(c, ids, n);   /* another lock hold: ids are ours meanwhile */
			objs += n;
			lock_bin(b, &was);
		}
		unlock_bin(b, was);
	}
	mp_unlock(&rc_drain_lock);
	sigctx_unhold(held);
	__atomic_add_fetch(&rc_drained, objs, __ATOMIC_RELAXED);
	return objs;
}

#if MP_HAVE_RSEQ
/*
 * The stretch of class cls's group made writable, for every CPU, once:
 * the caches are mapped read-only (MAP_NORESERVE), so that the groups no
 * class of which a program uses cost it nothing against RLIMIT_DATA, which
 * counts writable private mappings (five groups of 64 KiB a CPU, where the
 * arrays of the default sizes take one or two).  A pop or push on a class
 * of a group still read-only finds a count and a capacity of 0 (empty and
 * full) and writes nothing; nothing else writes a class that never opened.
 * False: the class stays closed, its objects going to the runs: the
 * mprotect failed (the limit), now or since the last drain, which lets the
 * next use try again (a class that cannot open is reached on every malloc
 * and free of its sizes: a failing system call on each was 13 times the
 * cost of a pair).  Two threads may both mprotect.
 */
static bool rc_group_open(unsigned cls)
{
	unsigned g = rc_place(cls) / RC_PER_GROUP;
	uint8_t st = __atomic_load_n(&rc_group_state[g], __ATOMIC_ACQUIRE);
	if (likely(st == RC_GROUP_RW))
		return true;
	if (st == RC_GROUP_FAILED)
		return false;
	uintptr_t lo = (uintptr_t)rc_base + g * rc_group_bytes;
	uintptr_t hi = lo + rc_group_bytes;
	lo &= ~(uintptr_t)(PAGE_SIZE - 1);
	hi = (hi + PAGE_SIZE - 1) & ~(uintptr_t)(PAGE_SIZE - 1);
	st = os.mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE) == 0 ? RC_GROUP_RW
									 : RC_GROUP_FAILED;
	__atomic_store_n(&rc_group_state[g], st, __ATOMIC_RELEASE);
	return st == RC_GROUP_RW;
}

/* The groups whose mprotect failed may be tried again (rc_drain). */
static void rc_group_rearm(void)
{
	for (unsigned g = 0; g < RC_GROUPS; g++) {
		uint8_t failed = RC_GROUP_FAILED;
		__atomic_compare_exchange_n(&rc_group_state[g], &failed, RC_GROUP_RO, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
}

/* cpu's array of class cls gets its capacity on first use (the classes any
 * array may hold widen first, for the drains): true if it had none.  A
 * class whose group cannot be made writable stays without (false). */
static bool rc_open(struct rc_class *c, unsigned cls)
{
	if (likely(__atomic_load_n(&c->h.high, __ATOMIC_RELAXED)))
		return false;
	if (!rc_group_open(cls))
		return false;
	uint32_t v = __atomic_load_n(&rc_lo, __ATOMIC_RELAXED);
	while (cls < v && !__atomic_compare_exchange_n(&rc_lo, &v, cls, false, __ATOMIC_SEQ_CST,
							__ATOMIC_RELAXED))
		;
	v = __atomic_load_n(&rc_hi, __ATOMIC_RELAXED);
	while (cls + 1 > v && !__atomic_compare_exchange_n(&rc_hi, &v, cls + 1, false,
							   __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		;
	__atomic_store_n(&c->h.high, 2 * rc_batch[cls], __ATOMIC_RELEASE);
	return true;
}

/*
 * cpu's array of class cls went to the depot (why): it grows as the page
 * caches' arrays do (cache_tune_trip: the same reason twice in a row,
 * having turned within the last 8 trips), doubling up to rc_max[cls],
 * within RC_GROW_BYTES for all of the CPU's classes together: the growth
 * of the classes any array has opened, [rc_lo, rc_hi), a load each, once
 * per trip.  A batch of 256 4160-byte objects, 30 at the start, no longer
 * goes to the depot at all once its array holds 282 (240, and what is left
 * of the CPU's 1 MiB).  Plain stores, from
 * whichever thread runs on the CPU (and the drains' rc_reset): a thread
 * moved to another CPU meanwhile tunes that CPU's array once, and a store
 * that lands after a drain's reset keeps the grown capacity until the next
 * drain or decay; either way within rc_max and the budget's bound on
 * what the sum read.
 */
static void rc_tune(unsigned cpu, struct rc_class *c, unsigned cls, uint8_t why)
{
	uint32_t high = __atomic_load_n(&c->h.high, __ATOMIC_RELAXED);
	/* a closed class first: its line may be read-only (rc_group_open) */
	if (!high || !cache_tune_trip(&c->tune, why) || high >= rc_max[cls])
		return;
	uint64_t grown = 0;
	unsigned lo = __atomic_load_n(&rc_lo, __ATOMIC_RELAXED);
	unsigned hi = __atomic_load_n(&rc_hi, __ATOMIC_RELAXED);
	for (unsigned k = lo; k < hi; k++) {
		uint32_t h = __atomic_load_n(&rc_of(cpu, k)->h.high, __ATOMIC_RELAXED);
		if (h > 2 * rc_batch[k])
			grown += (uint64_t)(h - 2 * rc_batch[k]) * rclass[k].size;
	}
	uint64_t room = grown < RC_GROW_BYTES ? (RC_GROW_BYTES - grown) / rclass[cls].size : 0;
	uint32_t nh = cache_tune_grown(high, rc_max[cls], (uint32_t)room);
	if (nh > high)
		__atomic_store_n(&c->h.high, nh, __ATOMIC_RELAXED);
}

/* Objects taken for the array of the CPU this thread runs on: in, or back
 * to their runs if the array has no room (or is being drained). */
static void rc_stash(int cls, uint32_t *ids, unsigned n)
{
	for (int tries = 0; tries < 4; tries++) {
		uint32_t cpu = rseq_cpu_id();
		if (cpu >= rc_nr_cpus)
			break;
		struct rc_class *c = rc_of(cpu, (unsigned)cls);
		rc_open(c, (unsigned)cls);
		enum rseq_result r = rseq_bw_push_n(&c->h.count, (int)cpu, ids, n);
		if (r == RSEQ_DONE)
			return;
		if (r != RSEQ_ABORTED)
			break;
	}
	bin_put(cls, ids, n);
}
#endif

static size_t rc_drain(bool all);

/*
 * One object of class cls from its bin (its depot first), and, with the
 * CPU caches, up to half a capacity more for this CPU's array: the bin
 * grows by a run when it has none, and if the zone has none to give, the
 * CPUs' caches and the depots give their objects back once first.  NULL:
 * nothing to be had (glibc serves the request).  The objects taken stay
 * reachable with signals held back until they are in the array (a
 * handler that left by siglongjmp could strand them otherwise).
 * Process context only.
 */
static NOINLINE void *refill(int cls)
{
	uint32_t ids[RC_CHUNK];
	unsigned want = 1;
	bool drained = false;
	uint64_t mark = 0;                  /* this CPU's runs first (run_taker) */

#if MP_HAVE_RSEQ
	/* half the array's capacity, as the page caches refill */
	uint32_t cpu = rseq_cpu_id();
	if (cpu < __atomic_load_n(&rc_nr_cpus, __ATOMIC_RELAXED)) {
		struct rc_class *c = rc_of(cpu, (unsigned)cls);
		rc_open(c, (unsigned)cls);
		/* a pop that missed because a remote drain stopped the array
		 * is no trip of its own */
		if (!(__atomic_load_n(&c->h.count, __ATOMIC_RELAXED) & BW_STOPPED))
			rc_tune(cpu, c, (unsigned)cls, TUNE_REFILL);
		want = __atomic_load_n(&c->h.high, __ATOMIC_RELAXED) / 2;
		if (!want)
			want = 1;
		mark = cpu + 1;
	}
#endif
	bool share = !mark;
	/* bounded: other threads may empty each new run first */
	for (int round = 0; round < 8; round++) {
		uint8_t was = sigctx_hold();
		unsigned n = bin_take(cls, ids, want < RC_CHUNK ? want : RC_CHUNK, mark, share);
#if MP_HAVE_RSEQ
		if (n > 1)
			rc_stash(cls, ids + 1, n - 1);
#endif
		sigctx_unhold(was);
		if (n) {
			void *p = obj_ptr(ids[0]);
#if MP_HAVE_RSEQ
			/* the rest of want from the depot, RC_CHUNK at a time (a
			 * run gives less than a chunk: one run per refill) */
			for (unsigned got = n; n == RC_CHUNK && got < want; got += n) {
				unsigned k = want - got < RC_CHUNK ? want - got : RC_CHUNK;
				was = sigctx_hold();
				n = bin_take(cls, ids, k, mark, share);
				if (n)
					rc_stash(cls, ids, n);
				sigctx_unhold(was);
			}
#endif
			release_orphans();
			return p;
		}
		if (bin_grow(cls))
			continue;
		if (!share) {                   /* no new run: another CPU's */
			share = true;
			continue;
		}
		if (drained || !(rc_drain(true) + depot_drain(true)))
			return NULL;
		release_orphans();
		drained = true;
	}
	return NULL;
}

#if MP_HAVE_RSEQ
/* This CPU's array of the class was full (or had no capacity yet): its
 * newest half and object id go to the depot, or what finds no room there
 * back to their runs; false if that could not
 * be done here (a handler, which must not wait for the bin's lock; the
 * section restarted), and the caller frees id alone. */
static NOINLINE bool rc_spill(unsigned cls, uint32_t id)
{
	uint32_t buf[RC_CHUNK + 1];
	if (sigctx_in_irq())
		return false;
	uint32_t cpu = rseq_cpu_id();
	if (cpu >= rc_nr_cpus)
		return false;
	struct rc_class *c = rc_of(cpu, cls);
	if (rc_open(c, cls) && rseq_bw_push_here((uint64_t)rc_base, rhop[cls].koff, &rc_nr_cpus,
						 id) == RSEQ_DONE)
		return true;
	unsigned n = __atomic_load_n(&c->h.high, __ATOMIC_RELAXED) / 2;
	if (!n)                             /* closed (rc_group_open): its line
					       may be read-only */
		return false;
	uint8_t was = sigctx_hold();        /* buf stays reachable, as refill's */
	/* the newest n, RC_CHUNK at a time, id with the first; a later step
	 * that restarts or finds the array changed ends the spill early */
	for (unsigned k, m, first = 1; n; n -= k, first = 0) {
		k = n < RC_CHUNK ? n : RC_CHUNK;
		if (rseq_bw_pop_n(&c->h.count, (int)cpu, buf, k) != RSEQ_DONE) {
			if (!first)
				break;
			sigctx_unhold(was);
			return false;
		}
		m = k;
		if (first)
			buf[m++] = id;
		unsigned kept = depot_put((int)cls, buf, m);
		if (kept < m)
			bin_put((int)cls, buf + kept, m - kept);
	}
	sigctx_unhold(was);
	rc_tune(cpu, c, cls, TUNE_SPILL);
	release_orphans();
	return true;
}
#endif

/* One object of class cls, or NULL (the zone has no run to give): the
 * caller falls back to glibc.  Process context only. */
void *run_alloc(int cls, bool zero)
{
	void *p = NULL;

	drain_deferred_runs();
#if MP_HAVE_RSEQ
	/* a restart is not an empty array: once more */
	if (rc_pop(cls, &p) == RSEQ_ABORTED)
		rc_pop(cls, &p);
#endif
	if (!p && !(p = refill(cls)))
		return NULL;
	obj_set_live(p, cls);
	COUNT(run_allocs);
	if (zero)                    /* all of it, as malloc_usable_size says
					and glibc's calloc does */
		memset(p, 0, rclass[cls].size);
	return p;
}

/* The hops' pop of an object of class cls (none if cls < 0) from this
 * CPU's array, and its live mark: false if handler frees wait (run_alloc
 * drains them), the array is empty or the section restarted.  routed: cls
 * is a class route[] vouched for (run_route_ok), whose objects carry their
 * live byte. */
static ALWAYS_INLINE bool run_pop_hop(int cls, void **out, bool routed)
{
#if MP_HAVE_RSEQ
	if ((!routed && cls < 0) || unlikely(__atomic_load_n(&deferred, __ATOMIC_RELAXED)) ||
	    rc_pop_at(cls, out, true) != RSEQ_DONE)
		return false;
	if (routed)
		*addr_to_live(*out) = (uint8_t)(LIVE_RUN + cls);
	else
		obj_set_live(*out, cls);
	return true;
#else
	(void)cls;
	(void)out;
	(void)routed;
	return false;
#endif
}

/*
 * The one-hop path's run object (malloc_run_hop; statistics off, process
 * context, not in a cache section): one pop from this CPU's array of
 * size's class, and the live mark (obj_set_live).  False for
 * anything else (not a run size, no arrays, empty, a restart, or handler
 * frees deferred): run_alloc then, which drains those first.
 */
bool run_alloc_hop(size_t size, void **out)
{
	return run_pop_hop(run_class_if(rc_hop, size), out, false);
}

/*
 * May route[] send every size from lo to hi straight to run_alloc_routed
 * (malloc's ROUTE_RUN)?  Only where the hop may pop (rc_hop) and every
 * size has a class whose objects carry their live byte (below
 * LIVE_RUN_CLASSES): then the hop tests neither.  A slot of route[] lies
 * within one page count, whose classes run up by size, and the only one
 * run_class_if turns away there is its last (a header room of a whole
 * page): lo's and hi's classes answer for every size between.
 */
bool run_route_ok(size_t lo, size_t hi)
{
	int a = run_class_if(rc_hop, lo), b = run_class_if(rc_hop, hi);
	return a >= 0 && b >= 0 && b < LIVE_RUN_CLASSES;
}

/* run_alloc_hop for a size route[] vouched for (run_route_ok). */
bool run_alloc_routed(size_t size, void **out)
{
	return run_pop_hop((int)((size - PAGE_SIZE - 1) / RUN_STEP), out, true);
}

/* The run object p starts (its page's descriptor pd has PG_RUN): its
 * run's head, class and index, or false if p is not an object's start. */
static ALWAYS_INLINE bool locate(void *p, struct page_desc *pd, struct page_desc **h, unsigned *cls,
		   unsigned *i)
{
	uint32_t back = __atomic_load_n(&pd->reserved32, __ATOMIC_RELAXED);
	unsigned c = __atomic_load_n(&pd->owner, __ATOMIC_RELAXED);
	if (c >= RUN_CLASSES)
		return false;
	const struct run_class *rc = &rclass[c];
	if ((back & (rc->k - 1u)) || (back >> rc->kshift) >= rc->n)
		return false;
	*h = pd - back;
	*cls = c;
	*i = back >> rc->kshift;
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
	if (!(__atomic_load_n(&pd->flags, __ATOMIC_RELAXED) & PG_RUN_LIVE)) {
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

/* Object i of run h (class c), no longer the program's, back to its run:
 * a handler only tries the bin's lock, and defers the free if another
 * thread holds it. */
static void obj_to_bin(void *p, struct page_desc *h, unsigned c, unsigned i, const char *fn)
{
	struct run_bin *b = &bins[c];
	struct page_desc *release;
	bool irq = sigctx_in_irq();
	uint8_t was;

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

/* Run object p (object i of run h, class c), its live mark cleared, back
 * to this CPU's array (tries: pushes to try, 0 after one that found it full
 * or stopped), or, that full, with the array's newest half to the bin; no
 * CPU arrays: to the bin. */
static NOINLINE void run_free_marked(void *p, struct page_desc *h, unsigned c, unsigned i,
				     const char *fn, int tries)
{
#if MP_HAVE_RSEQ
	while (tries-- > 0) {                        /* a restart is not a full array */
		enum rseq_result r = rseq_bw_push_here((uint64_t)rc_base, rhop[c].koff,
						       &rc_nr_cpus, obj_id(p));
		if (likely(r == RSEQ_DONE))
			return;
		if (r != RSEQ_ABORTED)
			break;
	}
	/* a handler never spills: tested here, before rc_spill's frame (its
	 * buffer, 2,244 bytes) lands on a small sigaltstack */
	if (rc_nr_cpus && !sigctx_in_irq() && rc_spill(c, obj_id(p)))
		return;
#endif
	obj_to_bin(p, h, c, i, fn);
}

/* Frees run object p (pd: its page's descriptor, PG_RUN seen); fn names
 * the call in a report of a bad pointer. */
void run_free(void *p, struct page_desc *pd, const char *fn)
{
	struct page_desc *h;
	unsigned c, i;
	uint8_t f = __atomic_load_n(&pd->flags, __ATOMIC_RELAXED);

	if (!locate(p, pd, &h, &c, &i)) {
		bad_pointer_why(fn, p, NOT_START);
		return;
	}
	if (!(f & PG_RUN_LIVE)) {
		bad_pointer_why(fn, p, FREE_ALREADY);
		return;
	}
	/* a plain load and store, as page_free's check: two threads freeing
	 * the same object at the same instant race, as with glibc */
	__atomic_store_n(&pd->flags, (uint8_t)(f & ~PG_RUN_LIVE), __ATOMIC_RELAXED);
	COUNT(run_frees);
	run_free_marked(p, h, c, i, fn, 2);
}

/* Is p the start of an object of class rc, and which: its run's first pfn
 * and its index. */
static ALWAYS_INLINE bool obj_start(const void *p, const struct run_class *rc, uint64_t *first,
				     unsigned *i)
{
	uint64_t pfn = addr_to_pfn(p);
	*first = pfn & ~rc->run_mask;
	*i = (unsigned)((pfn - *first) >> rc->kshift);
	return (uintptr_t)p == zg.base + (*first << PAGE_SHIFT) + (uintptr_t)*i * rc->size;
}

/* obj_push missed (tries: 1 after a restart, 0 with the array full or
 * stopped): run_free_marked, with the run and index found again from p, so
 * that the push itself keeps no more than p and c in registers. */
static NOINLINE void obj_push_missed(void *p, unsigned c, int tries)
{
	uint64_t first;
	unsigned i;
	(void)obj_start(p, &rclass[c], &first, &i);   /* the callers checked it */
	run_free_marked(p, pfn_to_desc(first), c, i, "free", tries);
}

/* Run object p (at off in the region, of class c, the start of an object
 * of its run): its live mark cleared (the byte at mark set to clear), then
 * one push to this CPU's array, obj_push_missed if that misses.  The mark
 * goes first, so that a second free finds it clear, and after the loads
 * the push needs: a byte store may alias anything, so that the compiler
 * would load them again after it. */
static ALWAYS_INLINE void obj_push(void *p, uintptr_t off, unsigned c, uint8_t *mark,
				   uint8_t clear)
{
	int tries = 2;
#if MP_HAVE_RSEQ
	uint64_t base = (uint64_t)rc_base, koff = rhop[c].koff;
	uint32_t id = (uint32_t)(off >> 6);           /* obj_id */
	bool hop = rc_hop;
#endif
	__atomic_store_n(mark, clear, __ATOMIC_RELAXED);
#if MP_HAVE_RSEQ
	/* the rseq offset as built where the running glibc's is that one
	 * (rc_hop), as run_alloc_hop's pop takes it */
	enum rseq_result r = likely(hop) ? rseq_bw_push_built(base, koff, &rc_nr_cpus, id)
					 : rseq_bw_push_here(base, koff, &rc_nr_cpus, id);
	if (likely(r == RSEQ_DONE))
		return;
	tries = r == RSEQ_ABORTED;           /* a restart: once more; full: none */
#endif
	obj_push_missed(p, c, tries);
}

/* Does the object of class c that starts in the page at off in the region
 * start at off?  Known to start there (its live byte says so), object i
 * starts i x k pages from its run's first page, which is aligned to
 * run_mask + 1 pages (bin_grow), at offset i x h in its page, h being its
 * size less its whole pages: the page's distance d from the run's first
 * page is i x k, and the offset d x (h / k) (h is a multiple of 64, k 1 or
 * 2).  obj_start's test, with the page's part of it left out, one multiply
 * and no shift by k. */
static ALWAYS_INLINE bool obj_starts_at(uintptr_t off, const struct run_hop *e)
{
	uint32_t d = (uint32_t)(off >> PAGE_SHIFT) & e->mask;
	return (off & (PAGE_SIZE - 1)) == (uintptr_t)(d * e->hk);
}

static bool run_free_desc(void *p);

/* A live run object of class c starts in p's page (its live byte, at
 * lv): if p is its start, the byte cleared and one push to this CPU's array
 * (run_free_marked if that misses).  No descriptor is read: the run's first
 * page is p's page rounded down to the run's alignment (bin_grow), the
 * object's index that page's distance from it / k, and p must be that
 * object's start (obj_starts_at).  False, nothing done: p is not its
 * start. */
static ALWAYS_INLINE bool run_free_live(void *p, uintptr_t off, uint8_t *lv, unsigned c)
{
	if (unlikely(!obj_starts_at(off, &rhop[c])))
		return false;
	obj_push(p, off, c, lv, 0);
	return true;
}

bool run_live_start(const void *p, unsigned cls)
{
	uint64_t first;
	unsigned i;
	return obj_start(p, &rclass[cls], &first, &i);
}

/* free's one-hop try for a pointer in the region that free's fast path
 * did not take (statistics off), at off in the region, its page's live
 * byte at lv: a live run object's start goes back with one push to this
 * CPU's array (run_free_marked if that misses).  False, nothing done: not
 * a live object's start (free's slow path takes it). */
bool run_free_hop(void *p, uintptr_t off, uint8_t *lv)
{
	unsigned v = __atomic_load_n(lv, __ATOMIC_RELAXED);
	if (likely(v >= LIVE_RUN))
		return run_free_live(p, off, lv, v - LIVE_RUN);
	return run_free_desc(p);
}

/* A run object of the classes without a live byte (PG_RUN_LIVE on its
 * page's descriptor): run_free_hop's second way. */
static NOINLINE bool run_free_desc(void *p)
{
	struct page_desc *pd = obj_page(p), *h;
	unsigned c, i;
	if (__atomic_load_n(&pd->flags, __ATOMIC_RELAXED) != (PG_RUN | PG_RUN_LIVE) ||
	    !locate(p, pd, &h, &c, &i))
		return false;
	obj_push(p, (uintptr_t)p - zg.base, c, &pd->flags, PG_RUN);
	return true;
}

/* Process context: the frees handlers deferred (their objects' live marks
 * are cleared already). */
static NOINLINE void drain_deferred_slow(void)
{
	void *p = __atomic_exchange_n(&deferred, NULL, __ATOMIC_ACQUIRE);
	while (p) {
		void *next = *(void **)p;
		struct page_desc *h;
		unsigned c, i;
		if (locate(p, obj_page(p), &h, &c, &i))
			obj_to_bin(p, h, c, i, "free");
		p = next;
	}
}

#if MP_HAVE_RSEQ
/* A drained array's capacity back to its start, as the page caches'
 * drains put theirs.  The owner's rc_tune may store its grown capacity
 * after this (kept until the next drain or decay); for an array reset
 * without being stopped (empty), the owner may push past the new high
 * meanwhile, which its next push takes as full. */
static void rc_reset(struct rc_class *c, unsigned cls)
{
	__atomic_store_n(&c->h.high, 2 * rc_batch[cls], __ATOMIC_RELAXED);
	c->tune = (struct cache_tune){ 0 };
}

/*
 * cpu's arrays of classes [lo, hi) back to the runs: every object (all), or
 * those of the classes whose count has not moved since the last decay (a
 * class in use whose count happens to read the same twice is emptied too,
 * and refills: a cost of one batch).  The arrays taken are stopped and cpu
 * fenced first, once for them all whatever their groups, as the page
 * caches' remote drains do.  A drained array's capacity, and an empty
 * one's (all; or, for the decay, one that was empty at the last decay
 * too), go back to their start (rc_reset).  A class never opened reads 0
 * and is written nothing (rc_group_open).  rc_drain_lock held (signals
 * held back), process context.  Returns the objects given back; the runs
 * they free go on the orphans.
 */
static size_t rc_drain_cpu(unsigned cpu, unsigned lo, unsigned hi, bool all)
{
	void *words[RUN_CLASSES];
	uint8_t cls[RUN_CLASSES];
	unsigned taken = 0;
	size_t objs = 0;

	for (unsigned k = lo; k < hi; k++) {
		struct rc_class *c = rc_of(cpu, k);
		uint32_t n = __atomic_load_n(&c->h.count, __ATOMIC_RELAXED);
		if (n && (all || n == c->seen)) {
			cls[taken] = (uint8_t)k;
			words[taken++] = &c->h.count;
		} else if (!n && (all || !c->seen) && c->h.high > 2 * rc_batch[k]) {
			rc_reset(c, k);     /* empty now and at the last decay */
		}
		if (c->seen != n)
			c->seen = n;
	}
	if (!taken || !cache_stop_list(cpu, words, taken, 32, BW_STOPPED, &rc_fenced))
		return 0;
	for (unsigned i = 0; i < taken; i++) {
		struct rc_class *c = rc_of(cpu, cls[i]);
		uint32_t n = __atomic_load_n(&c->h.count, __ATOMIC_ACQUIRE) & ~BW_STOPPED;
		/* Empty but still stopped while its objects go back: a child
		 * of _Fork taken meanwhile must not free them again. */
		__atomic_store_n(&c->h.count, BW_STOPPED, __ATOMIC_RELEASE);
		bin_put(cls[i], c->slots, n);
		objs += n;
		c->seen = 0;
		rc_reset(c, cls[i]);
		__atomic_store_n(&c->h.count, 0, __ATOMIC_RELEASE);
	}
	return objs;
}
#endif

/* Every CPU's arrays (all), or their classes idle since the last decay,
 * back to the runs; not in a handler, which must not wait for the locks.
 * rc_drain_lock is taken with signals held back, as fork takes it; the
 * runs freed wait on the orphans for the caller's release_orphans.  The
 * groups that could not be made writable may be tried again after it
 * (rc_group_open). */
static size_t rc_drain(bool all)
{
	size_t objs = 0;
#if MP_HAVE_RSEQ
	if (!__atomic_load_n(&rc_nr_cpus, __ATOMIC_ACQUIRE) || sigctx_in_irq())
		return 0;
	rc_group_rearm();
	uint8_t was = sigctx_hold();
	mp_lock(&rc_drain_lock);
	unsigned lo = __atomic_load_n(&rc_lo, __ATOMIC_ACQUIRE);
	unsigned hi = __atomic_load_n(&rc_hi, __ATOMIC_ACQUIRE);
	for (unsigned cpu = 0; lo < hi && cpu < rc_nr_cpus; cpu++)
		objs += rc_drain_cpu(cpu, lo, hi, all);
	__atomic_add_fetch(&rc_drained, objs, __ATOMIC_RELAXED);
	mp_unlock(&rc_drain_lock);
	sigctx_unhold(was);
#else
	(void)all;
#endif
	return objs;
}

/* Objects of class cls in the CPUs' arrays and its depot now (racy:
 * statistics). */
static uint64_t rc_cached(unsigned cls)
{
	uint64_t n = __atomic_load_n(&bins[cls].depot_n, __ATOMIC_RELAXED);
	if (cls < __atomic_load_n(&rc_lo, __ATOMIC_RELAXED) ||
	    cls >= __atomic_load_n(&rc_hi, __ATOMIC_RELAXED))
		return n;
	for (unsigned cpu = 0; cpu < __atomic_load_n(&rc_nr_cpus, __ATOMIC_ACQUIRE); cpu++)
		n += __atomic_load_n(&rc_of(cpu, cls)->h.count, __ATOMIC_RELAXED) & ~BW_STOPPED;
	return n;
}

/* The head of the run whose object id sits in a cache of class cls, or
 * NULL if the descriptors do not say so (read racily: the statistics). */
static struct page_desc *cached_head(uint32_t id, unsigned cls)
{
	uint64_t pfn = id >> (PAGE_SHIFT - 6);
	if (pfn >= zg.pages)
		return NULL;
	struct page_desc *pd = pfn_to_desc(pfn);
	uint32_t back = __atomic_load_n(&pd->reserved32, __ATOMIC_RELAXED);
	if (!(__atomic_load_n(&pd->flags, __ATOMIC_RELAXED) & PG_RUN) || pd->owner != cls ||
	    back > pfn)
		return NULL;
	struct page_desc *h = pd - back;
	if (!(__atomic_load_n(&h->flags, __ATOMIC_RELAXED) & PG_RUN) || h->owner != cls ||
	    h->reserved32)
		return NULL;
	return h;
}

/* Calls fn(head, cls, arg) for each object in the CPUs' caches and the
 * depots (rc_drain_lock held; each bin's lock taken for its depot). */
static void each_cached(void (*fn)(struct page_desc *, unsigned, void *), void *arg)
{
	for (int k = 0; k < RUN_CLASSES; k++) {
		struct run_bin *b = &bins[k];
		uint8_t was;
		if (!__atomic_load_n(&b->depot_n, __ATOMIC_RELAXED))
			continue;
		lock_bin(b, &was);
		for (uint32_t j = 0; j < b->depot_n; j++) {
			struct page_desc *h = cached_head(b->depot[j], (unsigned)k);
			if (h)
				fn(h, (unsigned)k, arg);
		}
		unlock_bin(b, was);
	}
	unsigned lo = __atomic_load_n(&rc_lo, __ATOMIC_ACQUIRE);
	unsigned hi = __atomic_load_n(&rc_hi, __ATOMIC_ACQUIRE);
	for (unsigned cpu = 0; cpu < __atomic_load_n(&rc_nr_cpus, __ATOMIC_ACQUIRE); cpu++)
		for (unsigned k = lo; k < hi; k++) {
			const struct rc_class *c = rc_of(cpu, k);
			uint32_t n = __atomic_load_n(&c->h.count, __ATOMIC_RELAXED) & ~BW_STOPPED;
			for (uint32_t j = 0; j < n && j < RC_SLOTS; j++) {
				struct page_desc *h = cached_head(c->slots[j], k);
				if (h)
					fn(h, k, arg);
			}
		}
}

/* A run head's reserved[0] is this count's scratch (nobody else uses it). */
static void tally_zero(struct page_desc *h, unsigned cls, void *arg)
{
	(void)cls, (void)arg;
	h->reserved[0] = 0;
}

static void tally_one(struct page_desc *h, unsigned cls, void *arg)
{
	(void)cls, (void)arg;
	if (h->reserved[0] != UINT64_MAX)
		h->reserved[0]++;
}

/* A run whose taken objects (n less its free count) all sit in caches. */
static void tally_idle(struct page_desc *h, unsigned cls, void *arg)
{
	const struct run_class *rc = &rclass[cls];
	uint32_t nfree = __atomic_load_n(&h->pcp_next, __ATOMIC_RELAXED);
	if (h->reserved[0] != UINT64_MAX && nfree < rc->n && rc->n - nfree == h->reserved[0])
		*(uint64_t *)arg += run_pages(rc);
	h->reserved[0] = UINT64_MAX;       /* counted once */
}

/* Pages of the runs none of whose objects the program holds: the spare
 * runs, and those whose taken objects all sit in the CPUs' caches (exact
 * when the process is quiet; a handler, which must not wait for
 * rc_drain_lock, counts the spares only). */
static uint64_t idle_pages(void)
{
	uint64_t pages = 0;
	for (int c = 0; c < RUN_CLASSES; c++)
		if (__atomic_load_n(&bins[c].spare, __ATOMIC_RELAXED))
			pages += run_pages(&rclass[c]);
	if (!__atomic_load_n(&rc_nr_cpus, __ATOMIC_ACQUIRE) || sigctx_in_irq())
		return pages;
	uint8_t was = sigctx_hold();
	mp_lock(&rc_drain_lock);            /* no drain moves objects meanwhile */
	each_cached(tally_zero, NULL);
	each_cached(tally_one, NULL);
	each_cached(tally_idle, &pages);
	mp_unlock(&rc_drain_lock);
	sigctx_unhold(was);
	return pages;
}

/* The spare runs back to the zone: every class's (all), or those of the
 * classes that allocated nothing since the last call (the decay); the
 * pages given back.  A handler only tries each lock. */
static size_t give_back_spares(bool all)
{
	size_t pages = 0;
	bool irq = sigctx_in_irq();

	drain_deferred_runs();              /* their runs may be wholly free now */
	rc_drain(all);                      /* likewise */
	depot_drain(all);
	pages += orphans_to_zone();         /* the runs that freed */
	for (int c = 0; c < RUN_CLASSES; c++) {
		struct run_bin *b = &bins[c];
		struct page_desc *h;
		uint8_t was;
		/* the partial runs' takers forgotten (run_taker) */
		if (__atomic_load_n(&b->partial, __ATOMIC_RELAXED) && sigctx_lock(&b->lock, irq, &was)) {
			for (h = b->partial; h; h = h->next)
				run_taker(h) = 0;
			unlock_bin(b, was);
		}
		/* objects taken from its runs or its depot */
		uint64_t allocs = __atomic_load_n(&b->allocs, __ATOMIC_RELAXED) +
				  __atomic_load_n(&b->depot_moves, __ATOMIC_RELAXED);
		struct page_desc *spare = __atomic_load_n(&b->spare, __ATOMIC_RELAXED);
		bool idle = allocs == b->decay_seen && spare == b->spare_seen;
		if (!all) {
			b->decay_seen = allocs;
			b->spare_seen = spare;
		}
		if (!spare || (!all && !idle))
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
			pa_free(h);
			pages += run_pages(&rclass[c]);
		}
	}
	if (pages)
		runs_released();
	return pages;
}

/* malloc_trim, magpage_drain, an idle process's purge: the CPUs' arrays
 * too. */
size_t runs_drain(void)
{
	return give_back_spares(true);
}

/* The decay purge, every cache_decay_ms while the process works: a CPU's
 * array that did not move in the interval gives its objects back to their
 * runs, and a class that allocated nothing in the interval and had the
 * same spare at the last decay gives it back, so that a size used once
 * does not keep its run.  A spare this pass's drain made stays until the
 * next: an array cycling one object reads the same count at each decay
 * and is drained each time, and its class, which took from its array and
 * not its bin, would lose the run and make a new one every interval. */
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
		uint64_t cached = rc_cached((unsigned)c), out = bin_live(bin);
		fmt_printf(b, "    %5u-byte objects, %2u in %2u pages: %lu live, %lu in CPU caches "
			   "and depots, in %lu runs (at most %lu at once); %lu taken from runs\n",
			   (unsigned)rc->size,
			   (unsigned)rc->n, (unsigned)run_pages(rc),
			   (unsigned long)(out > cached ? out - cached : 0), (unsigned long)cached,
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
		uint64_t cached = rc_cached((unsigned)c), taken = bin_live(b);
		uint64_t live = taken > cached ? taken - cached : 0;
		out->live += live;
		out->cached += cached;
		uint64_t runs = __atomic_load_n(&b->runs, __ATOMIC_RELAXED);
		out->runs += runs;
		out->pages += runs * run_pages(&rclass[c]);
		out->live_bytes += live * rclass[c].size;
		out->depot_moves += __atomic_load_n(&b->depot_moves, __ATOMIC_RELAXED);
	}
	out->idle_pages = idle_pages();
	out->deferred = __atomic_load_n(&deferred_count, __ATOMIC_RELAXED);
	out->cache_drained = __atomic_load_n(&rc_drained, __ATOMIC_RELAXED);
	out->cache_cpus = __atomic_load_n(&rc_nr_cpus, __ATOMIC_RELAXED);
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
	mp_lock(&rc_drain_lock);              /* first, as a drain takes it first */
	for (int c = 0; c < RUN_CLASSES; c++)
		mp_lock(&bins[c].lock);
	mp_lock(&orphan_lock);
}

void runs_fork_parent(void)
{
	mp_unlock(&orphan_lock);
	for (int c = RUN_CLASSES - 1; c >= 0; c--)
		mp_unlock(&bins[c].lock);
	mp_unlock(&rc_drain_lock);
	sigctx_unhold(fork_was);
}

void runs_fork_child(void)
{
	for (int c = 0; c < RUN_CLASSES; c++)
		mp_lock_reset(&bins[c].lock);
	mp_lock_reset(&rc_drain_lock);
	mp_lock_reset(&orphan_lock);
	sigctx_unhold(fork_was);
}

/* The child of _Fork (no atfork handler ran): a bin whose lock a vanished
 * thread held may be half updated; it is abandoned (its runs stay with the
 * objects the program holds, and their frees still find them). */
void runs_fork_recover(void)
{
	/* A drain cut short: its arrays stay stopped with the objects not yet
	 * given back (count keeps them) or none (count is BW_STOPPED). */
	if (mp_lock_is_held(&rc_drain_lock)) {
		unsigned lo = rc_lo, hi = rc_hi;
		for (unsigned cpu = 0; cpu < rc_nr_cpus; cpu++)
			for (unsigned k = lo; k < hi; k++)
				if (rc_of(cpu, k)->h.count & BW_STOPPED)   /* opened */
					rc_of(cpu, k)->h.count &= ~BW_STOPPED;
		mp_lock_reset(&rc_drain_lock);
	}
	/* orphans: a push or pop is two stores, the list whole after each */
	mp_lock_reset(&orphan_lock);
	for (int c = 0; c < RUN_CLASSES; c++) {
		struct run_bin *b = &bins[c];
		if (mp_lock_is_held(&b->lock)) {
			b->partial = b->spare = NULL;
			b->depot_n = 0;
			mp_lock_reset(&b->lock);
		}
	}
}
