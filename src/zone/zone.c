/*
 * zone.c — the region, its page descriptors and the buddy allocator.
 *
 * The region is one anonymous MAP_NORESERVE mapping, aligned to the largest
 * block (order 10, 4 MiB), so that a block of order k always starts at a pfn
 * that is a multiple of 2^k, and a block's buddy is pfn ^ (1 << k).
 *
 * Nothing is touched at start-up.  The zone keeps a frontier: pages below it
 * have been handed out at least once and live on the free lists or with
 * their owners; pages at and above it have never been used, are not on any
 * list, and are known to be zero.  When the free lists run dry, the next
 * order-10 block is carved off the frontier.  A process that allocates one
 * page faults in one data page and one descriptor page, no more: a kernel
 * build starts thousands of processes.
 *
 * Free pages = sum over order of nr_free[order] * 2^order
 *            + (pages - frontier)                    [never used]
 *
 * Under a finite RLIMIT_AS or RLIMIT_DATA the region must not eat the
 * program's budget (zone_region_bytes sizes it), and two more things hold:
 * the region is reserved PROT_NONE, which RLIMIT_DATA does not count, and
 * opened (made writable) 4 MiB at a time just ahead of the frontier
 * (__zone_open), so it costs the data limit only what has been carved; and
 * when glibc runs out, the never-used tail above the frontier is unmapped
 * (zone_give_back), so the program has at least the address space it would
 * have had without us.  Unlimited, the whole region is writable from the
 * start and neither happens.
 *
 * Free blocks are dirty (the process touched them) or clean (PG_ZERO:
 * never used or purged with MADV_DONTNEED; PG_ADVISED: purged with
 * MADV_FREE).  Each order has two lists: the dirty blocks, the most
 * recently freed at the head, and the clean ones.  Allocation takes the
 * dirty head first (the warmest memory, already resident), else a clean
 * block.  Each dirty block carries the time it was freed (freed_ns, from
 * the coarse clock read once per lock hold that frees), and a block joins
 * its list at the head with a stamp no older than the head's, so every
 * dirty list is in time order and its tail is its oldest block: the decay
 * purge (zone_purge_aged) finds the oldest block of the zone by comparing
 * eleven tails, never by scanning.  A merge keeps the younger stamp of
 * the two halves (the freed block's), a split gives both halves the
 * parent's: a block is never purged before it has been free for the delay.
 *
 *   dirty pages (nr_dirty_pages) = sum of 2^order over the dirty lists
 *
 * Locking: everything below is guarded by z.lock, taken "irqsave": while
 * a thread holds it, a signal that arrives for that thread is held back
 * and delivered at unlock (zone_irqsave:defer, the default, no system
 * call; zone_irqsave:sigmask blocks every signal instead), so a handler can
 * never interrupt its own thread inside the zone.  Functions
 * named __zone_* expect the lock held.  No system call is made under the
 * lock: a purge detaches blocks, unlocks, madvises, relocks.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

struct free_area {
	struct page_desc *head;   /* dirty blocks of this order, newest first */
	struct page_desc *tail;   /* ... and the oldest, purged first */
	struct page_desc *clean;  /* clean blocks (PG_ZERO or PG_ADVISED) */
	uint64_t nr_free;         /* blocks on both lists */
};

static struct zone {
	struct mp_lock lock;      /* the zone lock */
	struct free_area free_area[MAX_ORDER];
	uint64_t frontier;        /* first never-used pfn, a multiple of 1024 */
	uint64_t opened;          /* pfns below are writable; frontier <= opened
				     <= zg.pages, a multiple of 1024 */
	uint32_t openers;         /* atomic: threads in __zone_open with the lock
				     dropped; each opens [o, o + 1024) for an
				     o <= opened, so opened + 1024 covers them all */
	uint64_t limit;           /* os.mem_limit() at zone_init; UINT64_MAX:
				     unlimited, else the region opens step by
				     step and gives its tail back */
	uint64_t given_back;      /* pages unmapped by zone_give_back */
	uint64_t nr_free_pages;   /* pages on the free lists */
	uint64_t allocs, frees;   /* blocks handed out / taken back */
	uint64_t batches, batch_blocks, batch_breaks;
	uint64_t splits, merges, carved, purged_pages;
	uint64_t nr_dirty_pages;  /* pages on the dirty lists */
	uint64_t now;             /* coarse clock for this hold's frees; 0 =
				     not read yet (reset by each zone_lock) */
	struct page_desc *isolated;  /* blocks off the lists while a purge
				     madvises them, linked through next */
	struct page_desc **isolated_end;  /* the last next link of that list */
	uint64_t isolated_pages;  /* pages in them */
	bool purging;             /* a purge is in flight (one at a time) */
	uint64_t purge_runs, purge_calls;
	uint64_t floor;           /* pfns below it were abandoned in a child of
				     _Fork (see zone_fork_recover); 0 normally */
	uint64_t abandoned_pages; /* pages freed below the floor, not reused */
} z cacheline_aligned;

struct zone_geom zg;
uint64_t zone_tick_at = UINT64_MAX;
uint32_t zone_tick_pending;

/* ---- the reservation -------------------------------------------------- */

static void *reserve_aligned(size_t bytes, size_t align, int prot)
{
	size_t len = bytes + align;
	char *p = os.mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uintptr_t start = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	size_t head = start - (uintptr_t)p, tail = len - head - bytes;
	if (head)
		os.munmap(p, head);
	if (tail)
		os.munmap((char *)start + bytes, tail);
	return (void *)start;
}

/*
 * The region's share of a finite limit L (the tighter of RLIMIT_AS and
 * RLIMIT_DATA): the default region and its descriptors together take at
 * most L / ZONE_LIMIT_SHARE.  Below one 4 MiB block there is no region, and
 * every request goes to glibc.  A configured size is used as given: whoever
 * sets region_size under a limit has chosen; zone_init still halves it until
 * it fits, and zone_give_back still applies.
 */
#define ZONE_LIMIT_SHARE 8

uint64_t zone_region_bytes(uint64_t configured)
{
	if (configured)
		return configured;
	uint64_t bytes = os.phys_bytes();
	uint64_t cap = (uint64_t)64 << 30;
	if (bytes == 0)
		bytes = (uint64_t)1 << 30;
	if (bytes > cap)
		bytes = cap;
	uint64_t limit = os.mem_limit();
	if (limit != UINT64_MAX) {
		/* pages with their descriptors that fit in the share */
		uint64_t fit = limit / ZONE_LIMIT_SHARE / (PAGE_SIZE + sizeof(struct page_desc));
		if (bytes > fit << PAGE_SHIFT)
			bytes = fit << PAGE_SHIFT;
	}
	return bytes & ~(uint64_t)(MAX_BLOCK_BYTES - 1);
}

int zone_init(uint64_t bytes)
{
	memset(&z, 0, sizeof(z));
	z.limit = os.mem_limit();
	bytes &= ~(uint64_t)(MAX_BLOCK_BYTES - 1);
	/* Halve until the reservation fits (ulimit -v, RLIMIT_DATA,
	 * overcommit_memory=2); with no region at all every request goes to
	 * the fallback allocator. */
	for (; bytes >= MAX_BLOCK_BYTES; bytes = (bytes / 2) & ~(uint64_t)(MAX_BLOCK_BYTES - 1)) {
		uint64_t pages = bytes >> PAGE_SHIFT;
		size_t dbytes = (pages * sizeof(struct page_desc) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		void *descs = os.mmap(NULL, dbytes, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (descs == MAP_FAILED)
			continue;
		void *base = reserve_aligned(bytes, MAX_BLOCK_BYTES,
					     z.limit != UINT64_MAX ? PROT_NONE : PROT_READ | PROT_WRITE);
		if (!base) {
			os.munmap(descs, dbytes);
			continue;
		}
		zg.descs = descs;
		zg.pages = pages;
		zg.base = (uintptr_t)base;
		z.opened = z.limit != UINT64_MAX ? 0 : pages;
		__atomic_store_n(&zg.bytes, bytes, __ATOMIC_RELEASE);
		return 0;
	}
	return -1;
}

/* ---- irqsave locking -------------------------------------------------- */

/*
 * A fork in progress: the forking thread takes the zone lock in its prepare
 * handler and then waits for glibc's arena locks.  A handler running on a
 * thread that holds one of those (it interrupted glibc's malloc) must not
 * wait for the zone lock, or neither can go on.  Such a handler only tries
 * the lock: an allocation fails (ENOMEM), a free is deferred on a lock-free
 * list that the next holder of the lock empties.
 */
static int fork_pending;                    /* atomic */
static int fork_held;        /* atomic: the forking thread holds the lock */
static int fork_carving;     /* atomic: handlers inside zone_carve_in_fork */
static struct page_desc *deferred_frees;    /* atomic; next-linked, npages each */
static uint64_t deferred_count, refused_allocs;   /* atomic */
static uint64_t fork_carved;                      /* atomic: see zone_carve_in_fork */

static void __zone_free_range(uint64_t pfn, size_t npages, uint8_t clean, uint64_t stamp);

/* The coarse clock, read at most once per lock hold: frees stamp their
 * blocks with it, and the caller's tick compares it after unlocking. */
static inline uint64_t __zone_now(void)
{
	if (unlikely(!z.now))
		z.now = os.coarse_ns();
	return z.now;
}

static NOINLINE void __zone_free_deferred(void)
{
	struct page_desc *pd = __atomic_exchange_n(&deferred_frees, NULL, __ATOMIC_ACQUIRE);
	while (pd) {
		struct page_desc *next = pd->next;
		__zone_free_range(desc_pfn(pd), pd->npages, 0, __zone_now());
		pd = next;
	}
}

static void defer_free(struct page_desc *pd, size_t npages)
{
	struct page_desc *old = __atomic_load_n(&deferred_frees, __ATOMIC_RELAXED);
	pd->npages = (uint32_t)npages;
	do
		pd->next = old;
	while (!__atomic_compare_exchange_n(&deferred_frees, &old, pd, true, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED));
	__atomic_add_fetch(&deferred_count, 1, __ATOMIC_RELAXED);
}

static inline void zone_lock(struct zone_irq *irq)
{
	/* The thread already in the zone can only be here again from a handler
	 * installed behind the trampoline's back (a raw rt_sigaction): say so
	 * rather than spin on our own lock for ever. */
	if (unlikely(mp_tls.in_zone))
		mp_fatal("re-entered the zone from a signal handler libmagpage did not install "
			 "(raw rt_sigaction?); cannot continue without deadlocking");
	sigctx_zone_enter(irq);
	mp_lock(&z.lock);
	z.now = 0;
	if (unlikely(__atomic_load_n(&deferred_frees, __ATOMIC_RELAXED) != NULL))
		__zone_free_deferred();
}

/* A handler waits for the zone lock, but gives up as soon as the forking
 * thread holds it: it keeps it until glibc's arena locks are taken, and the
 * very thread this handler interrupted may hold one of those.  Before that
 * point (fork_pending, the forker still gathering the cache locks) whoever
 * holds the zone lock waits on nothing a handler can hold. */
static NOINLINE bool zone_lock_in_handler(struct zone_irq *irq)
{
	unsigned spins = 0;

	if (unlikely(mp_tls.in_zone))
		mp_fatal("re-entered the zone from a signal handler libmagpage did not install "
			 "(raw rt_sigaction?); cannot continue without deadlocking");
	sigctx_zone_enter(irq);
	while (!mp_trylock(&z.lock)) {
		if (__atomic_load_n(&fork_held, __ATOMIC_ACQUIRE)) {
			sigctx_zone_leave(irq);
			return false;
		}
		if (++spins < 200)
			cpu_relax();
		else
			sched_yield();
	}
	z.now = 0;
	if (unlikely(__atomic_load_n(&deferred_frees, __ATOMIC_RELAXED) != NULL))
		__zone_free_deferred();
	return true;
}

/* zone_lock, except that a handler never waits while a fork is prepared. */
static inline bool zone_lock_or_refuse(struct zone_irq *irq)
{
	if (likely(!mp_tls.depth)) {
		zone_lock(irq);
		return true;
	}
	return zone_lock_in_handler(irq);
}

static inline void zone_unlock(struct zone_irq *irq)
{
	mp_unlock(&z.lock);
	sigctx_zone_leave(irq);
}

/* After unlocking: is the purge driver's tick due?  now is the clock this
 * hold read for its frees, or 0 if it freed nothing. */
static inline void zone_tick(uint64_t now)
{
	if (unlikely(__atomic_load_n(&zone_tick_at, __ATOMIC_RELAXED) <= now) &&
	    !__atomic_load_n(&zone_tick_pending, __ATOMIC_RELAXED))
		__atomic_store_n(&zone_tick_pending, 1, __ATOMIC_RELAXED);
}

/* ---- free lists ------------------------------------------------------- */

/* pd's flags say which list: dirty (pd->freed_ns set; raised to the
 * head's if older, which keeps the list in time order) or clean. */
static inline void list_add(struct free_area *fa, struct page_desc *pd)
{
	pd->prev = NULL;
	if (likely(!(pd->flags & PG_CLEAN))) {
		struct page_desc *h = fa->head;
		pd->next = h;
		if (h) {
			h->prev = pd;
			if (unlikely(h->freed_ns > pd->freed_ns))
				pd->freed_ns = h->freed_ns;
		} else {
			fa->tail = pd;
		}
		fa->head = pd;
		z.nr_dirty_pages += (size_t)1 << pd->order;
	} else {
		pd->next = fa->clean;
		if (fa->clean)
			fa->clean->prev = pd;
		fa->clean = pd;
	}
	fa->nr_free++;
}

/* pd's flags must still say which list it is on. */
static inline void list_del(struct free_area *fa, struct page_desc *pd)
{
	struct page_desc *next = pd->next, *prev = pd->prev;

	if (likely(!(pd->flags & PG_CLEAN))) {
		if (prev)
			prev->next = next;
		else
			fa->head = next;
		if (next)
			next->prev = prev;
		else
			fa->tail = prev;
		z.nr_dirty_pages -= (size_t)1 << pd->order;
	} else {
		if (prev)
			prev->next = next;
		else
			fa->clean = next;
		if (next)
			next->prev = prev;
	}
	fa->nr_free--;
}

/* ---- the buddy algorithm ---------------------------------------------- */

/*
 * expand: the block at pd has order high and the caller wants order low.
 * Split it in halves, keeping the lower half each time and putting the
 * upper half on the free list of the order below.  Halves of a clean block
 * are clean; halves of a dirty one keep its age.
 */
static void __zone_expand(struct page_desc *pd, unsigned low, unsigned high)
{
	uint8_t clean = pd->flags & PG_CLEAN;

	while (high > low) {
		high--;
		struct page_desc *half = pd + ((size_t)1 << high);
		half->order = (uint8_t)high;
		half->flags = PG_BUDDY | clean;
		half->freed_ns = pd->freed_ns;
		list_add(&z.free_area[high], half);
		z.nr_free_pages += (size_t)1 << high;
		z.splits++;
	}
	pd->order = (uint8_t)low;
}

/* Takes the next order-10 block off the frontier; NULL if none is left
 * that is open (see __zone_open). */
static struct page_desc *__zone_carve(void)
{
	if (z.frontier + MAX_BLOCK_PAGES > z.opened)
		return NULL;
	struct page_desc *pd = pfn_to_desc(z.frontier);
	z.frontier += MAX_BLOCK_PAGES;
	pd->order = MAX_ORDER - 1;
	pd->flags = PG_ZERO;
	z.carved++;
	return pd;
}

/* __rmqueue_smallest: the first block of at least order, split down; the
 * newest dirty block of an order before a clean one.  The block keeps its
 * clean bits and freed_ns, for the tail its caller gives back; the caller
 * then leaves only PG_ZERO (zone_taken). */
static struct page_desc *__zone_rmqueue(unsigned order)
{
	for (unsigned o = order; o < MAX_ORDER; o++) {
		struct free_area *fa = &z.free_area[o];
		struct page_desc *pd = fa->head ? fa->head : fa->clean;
		if (!pd)
			continue;
		list_del(fa, pd);
		z.nr_free_pages -= (size_t)1 << o;
		pd->flags &= PG_CLEAN;
		__zone_expand(pd, order, o);
		z.allocs++;
		return pd;
	}
	struct page_desc *pd = __zone_carve();
	if (pd) {
		__zone_expand(pd, order, MAX_ORDER - 1);
		z.allocs++;
	}
	return pd;
}

/*
 * __free_one_page: merge the block with its buddy while the buddy is a free
 * block of the same order, then file the result.  The merged block starts at
 * pfn & ~(1 << order), the lower of the two.  It is clean only if both
 * halves were (zero only if both were zero), and a dirty one keeps the
 * younger stamp of its dirty halves.  clean is 0, PG_ZERO or PG_ADVISED;
 * stamp is the block's freed_ns when it is dirty.
 */
static void __zone_free_one(uint64_t pfn, unsigned order, uint8_t clean, uint64_t stamp)
{
	if (unlikely(pfn < z.floor)) {
		z.abandoned_pages += (uint64_t)1 << order;
		return;
	}
	while (order < MAX_ORDER - 1) {
		uint64_t bpfn = pfn ^ ((uint64_t)1 << order);
		struct page_desc *buddy = pfn_to_desc(bpfn);
		if (!(buddy->flags & PG_BUDDY) || buddy->order != order)
			break;
		list_del(&z.free_area[order], buddy);
		z.nr_free_pages -= (size_t)1 << order;
		uint8_t bclean = buddy->flags & PG_CLEAN;
		if (likely(!(clean | bclean))) {
			/* stamp is the younger: a free's is the clock now, a
			 * tail's (zone_taken) its parent's, whose other parts
			 * are the only buddies it can meet */
		} else if (clean && bclean) {
			clean = (clean & bclean & PG_ZERO) ? PG_ZERO : PG_ADVISED;
		} else {
			if (clean)                      /* the dirty half's age */
				stamp = buddy->freed_ns;
			clean = 0;
		}
		buddy->flags = 0;
		pfn &= ~((uint64_t)1 << order);
		order++;
		z.merges++;
	}
	struct page_desc *pd = pfn_to_desc(pfn);
	pd->order = (uint8_t)order;
	pd->flags = PG_BUDDY | clean;
	pd->freed_ns = stamp;
	list_add(&z.free_area[order], pd);
	z.nr_free_pages += (size_t)1 << order;
}

/* Splits [pfn, pfn + npages) into the largest naturally aligned blocks:
 * at each step the block's order is limited both by pfn's alignment and by
 * the pages left, so both an allocation's tail (starting mid-block) and a
 * whole n-page allocation (starting aligned) decompose correctly. */
static void __zone_free_range(uint64_t pfn, size_t npages, uint8_t clean, uint64_t stamp)
{
	while (npages) {
		unsigned o = ilog2_floor(npages);
		if (pfn) {
			unsigned a = (unsigned)__builtin_ctzl(pfn);
			if (a < o)
				o = a;
		}
		if (o > MAX_ORDER - 1)
			o = MAX_ORDER - 1;
		pfn_to_desc(pfn)->flags = 0;
		__zone_free_one(pfn, o, clean, stamp);
		pfn += (uint64_t)1 << o;
		npages -= (size_t)1 << o;
	}
}

/* ---- opening the region under a limit ---------------------------------- */

/*
 * The free lists are empty and the frontier has reached z.opened, below the
 * end of the region: make the next 4 MiB writable.  mprotect is a system
 * call, so the lock is dropped around it, as zone_purge does; threads that
 * meet here at once open the same block, which mprotect does not mind.
 * Returns 1 with the lock held and z.opened advanced, 0 with the lock held
 * if mprotect failed (RLIMIT_DATA reached: the zone is full), -1 without
 * the lock if a handler could not take it back (a fork in progress).
 */
static NOINLINE int __zone_open(struct zone_irq *irq)
{
	uint64_t at = z.opened;

	__atomic_add_fetch(&z.openers, 1, __ATOMIC_RELAXED);
	zone_unlock(irq);
	int rc = os.mprotect((void *)(zg.base + (at << PAGE_SHIFT)), MAX_BLOCK_BYTES,
			     PROT_READ | PROT_WRITE);
	bool locked = zone_lock_or_refuse(irq);
	/* After the system call, so zone_give_back cannot see 0 while it runs. */
	__atomic_sub_fetch(&z.openers, 1, __ATOMIC_RELEASE);
	if (!locked)
		return -1;
	if (rc != 0)
		return 0;
	if (z.opened < at + MAX_BLOCK_PAGES)
		z.opened = at + MAX_BLOCK_PAGES;
	return 1;
}

/* __zone_rmqueue, opening more of the region when it must.  Each pass
 * through __zone_open raises z.opened, so this ends.  *locked is false if
 * the lock was lost (then NULL). */
static struct page_desc *__zone_rmqueue_open(unsigned order, struct zone_irq *irq, bool *locked)
{
	struct page_desc *pd = __zone_rmqueue(order);
	while (unlikely(!pd) && z.opened < zg.pages) {
		int r = __zone_open(irq);
		if (r <= 0) {
			*locked = r == 0;
			return NULL;
		}
		pd = __zone_rmqueue(order);
	}
	return pd;
}

size_t zone_give_back(size_t want)
{
	struct zone_irq saved;

	/* z.limit is written once, by zone_init (0 before it).  A request
	 * larger than the whole limit fails whatever we give: keep the zone. */
	if (z.limit == UINT64_MAX || want >= z.limit || !__atomic_load_n(&zg.bytes, __ATOMIC_RELAXED))
		return 0;
	zone_lock(&saved);
	uint64_t old = zg.pages, keep = z.frontier;
	/* A thread opening a block with the lock dropped opens one below
	 * opened + 1024: leave that alone, it is not the tail's any more. */
	if (__atomic_load_n(&z.openers, __ATOMIC_ACQUIRE))
		keep = z.opened + MAX_BLOCK_PAGES < old ? z.opened + MAX_BLOCK_PAGES : old;
	if (keep >= old) {
		zone_unlock(&saved);
		return 0;
	}
	/* Nothing live is at or above keep (the frontier or beyond), so
	 * zone_owns may change its answer for those addresses only: they are
	 * not ours once unmapped, and glibc may map them next. */
	__atomic_store_n(&zg.pages, keep, __ATOMIC_RELAXED);
	__atomic_store_n(&zg.bytes, keep << PAGE_SHIFT, __ATOMIC_RELEASE);
	if (z.opened > keep)
		z.opened = keep;
	z.given_back += old - keep;
	zone_unlock(&saved);

	/* keep and old are multiples of 1024 pages, so the descriptors' cut
	 * (64 KiB per 1024) falls on a page boundary. */
	os.munmap((void *)(zg.base + (keep << PAGE_SHIFT)), (old - keep) << PAGE_SHIFT);
	os.munmap(zg.descs + keep, (old - keep) * sizeof(struct page_desc));
	return (old - keep) << PAGE_SHIFT;
}

/* ---- the zone's interface --------------------------------------------- */

/* A block just taken off the lists for npages of its 2^order pages: the
 * unused tail goes back as it was (clean, or dirty of the same age), and
 * the block keeps only PG_ZERO. */
static inline void __zone_taken(struct page_desc *pd, unsigned order, size_t npages)
{
	if (npages < ((size_t)1 << order))
		__zone_free_range(desc_pfn(pd) + npages, ((size_t)1 << order) - npages,
				  pd->flags & PG_CLEAN, pd->freed_ns);
	pd->flags &= PG_ZERO;
}

struct page_desc *zone_alloc(unsigned order, size_t npages)
{
	struct zone_irq saved;
	bool locked = true;

	if (!zone_lock_or_refuse(&saved)) {
		__atomic_add_fetch(&refused_allocs, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	struct page_desc *pd = __zone_rmqueue_open(order, &saved, &locked);
	if (!locked) {
		__atomic_add_fetch(&refused_allocs, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	if (pd)
		__zone_taken(pd, order, npages);
	zone_unlock(&saved);
	zone_tick(0);
	return pd;
}

unsigned zone_take_batch(size_t npages, unsigned max, unsigned min,
			 struct page_desc **headp, struct page_desc **tailp)
{
	struct page_desc *head = NULL, *tail = NULL;
	unsigned n = 0, order = ilog2_ceil(npages);
	struct zone_irq saved;
	bool locked = true;

	*headp = *tailp = NULL;
	if (!zone_lock_or_refuse(&saved)) {
		__atomic_add_fetch(&refused_allocs, 1, __ATOMIC_RELAXED);
		return 0;
	}
	while (n < max) {
		if (n >= min && mp_lock_is_contended(&z.lock)) {
			z.batch_breaks++;
			break;
		}
		struct page_desc *pd = __zone_rmqueue_open(order, &saved, &locked);
		if (!pd)
			break;
		__zone_taken(pd, order, npages);
		pd->npages = (uint32_t)npages;
		/* Kept in the order taken: physically ascending after a split,
		 * as rmqueue_bulk returns them. */
		pd->next = NULL;
		pd->prev = tail;
		if (tail)
			tail->next = pd;
		else
			head = pd;
		tail = pd;
		n++;
	}
	if (likely(locked)) {
		z.batches++;
		z.batch_blocks += n;
		zone_unlock(&saved);
		zone_tick(0);
	}
	*headp = head;
	*tailp = tail;
	return n;
}

void zone_free_list(struct page_desc *pd)
{
	struct zone_irq saved;

	if (!zone_lock_or_refuse(&saved)) {
		while (pd) {
			struct page_desc *next = pd->next;
			defer_free(pd, pd->npages);
			pd = next;
		}
		return;
	}
	while (pd) {
		struct page_desc *next = pd->next;
		__zone_free_range(desc_pfn(pd), pd->npages, 0, __zone_now());
		z.frees++;
		pd = next;
	}
	uint64_t now = z.now;
	zone_unlock(&saved);
	zone_tick(now);
}

void zone_free_block(struct page_desc *pd, unsigned order)
{
	struct zone_irq saved;

	if (!zone_lock_or_refuse(&saved)) {
		defer_free(pd, (size_t)1 << order);
		return;
	}
	pd->flags = 0;
	__zone_free_one(desc_pfn(pd), order, 0, __zone_now());
	z.frees++;
	uint64_t now = z.now;
	zone_unlock(&saved);
	zone_tick(now);
}

void zone_free_range(uint64_t pfn, size_t npages)
{
	struct zone_irq saved;

	if (!zone_lock_or_refuse(&saved)) {
		defer_free(pfn_to_desc(pfn), npages);
		return;
	}
	__zone_free_range(pfn, npages, 0, __zone_now());
	z.frees++;
	uint64_t now = z.now;
	zone_unlock(&saved);
	zone_tick(now);
}

/* ---- the purge --------------------------------------------------------- */

/* The oldest dirty block of at least min_order freed at or before cutoff:
 * the oldest of the tails. */
static struct page_desc *__zone_oldest(uint64_t cutoff, unsigned min_order, unsigned *order)
{
	struct page_desc *best = NULL;

	for (unsigned o = min_order; o < MAX_ORDER; o++) {
		struct page_desc *t = z.free_area[o].tail;
		if (t && t->freed_ns <= cutoff && (!best || t->freed_ns < best->freed_ns)) {
			best = t;
			*order = o;
		}
	}
	return best;
}

/* A PG_ADVISED block of at least min_order (malloc_trim redoes them). */
static struct page_desc *__zone_advised(unsigned min_order, unsigned *order)
{
	for (unsigned o = min_order; o < MAX_ORDER; o++)
		for (struct page_desc *pd = z.free_area[o].clean; pd; pd = pd->next)
			if (pd->flags & PG_ADVISED) {
				*order = o;
				return pd;
			}
	return NULL;
}

/* Off the lists for the system call: flags 0, so that no free merges into
 * it meanwhile. */
static void __zone_isolate(struct page_desc *pd, unsigned o)
{
	list_del(&z.free_area[o], pd);
	z.nr_free_pages -= (size_t)1 << o;
	pd->flags = 0;
	pd->next = NULL;            /* appended: madvised oldest first */
	if (!z.isolated)
		z.isolated_end = &z.isolated;
	*z.isolated_end = pd;
	z.isolated_end = &pd->next;
	z.isolated_pages += (size_t)1 << o;
}

/* Back on the lists, as the system call left each block (its flags say:
 * PG_ZERO or PG_ADVISED, without PG_BUDDY so that nothing merges yet; 0 if
 * the call failed: dirty again, as of now).  Returns the pages purged. */
static size_t __zone_putback(void)
{
	size_t pages = 0;

	while (z.isolated) {
		struct page_desc *pd = z.isolated, *next = pd->next;
		uint8_t clean = pd->flags & PG_CLEAN;
		size_t n = (size_t)1 << pd->order;
		pd->flags = 0;
		z.isolated = next;
		z.isolated_pages -= n;
		if (clean)
			pages += n;
		__zone_free_one(desc_pfn(pd), pd->order, clean, clean ? 0 : __zone_now());
	}
	return pages;
}

/* MADV_FREE needs Linux 4.5; where it is refused, DONTNEED from then on. */
static int madv_free_refused;

/* Without the lock: madvise each isolated block, leaving the outcome in
 * its flags for __zone_putback.  Returns the system calls made. */
static uint64_t purge_isolated(struct page_desc *pd, int advice)
{
	uint64_t calls = 0;

	for (; pd; pd = pd->next) {
		void *addr = desc_to_addr(pd);
		size_t len = (size_t)PAGE_SIZE << pd->order;
		uint8_t clean = PG_ZERO;
		int rc;
		calls++;
		if (advice == MADV_FREE && !__atomic_load_n(&madv_free_refused, __ATOMIC_RELAXED)) {
			rc = os.madvise(addr, len, MADV_FREE);
			clean = PG_ADVISED;
			if (rc != 0 && errno == EINVAL) {
				__atomic_store_n(&madv_free_refused, 1, __ATOMIC_RELAXED);
				rc = os.madvise(addr, len, MADV_DONTNEED);
				clean = PG_ZERO;
				calls++;
			}
		} else {
			rc = os.madvise(addr, len, MADV_DONTNEED);
		}
		__atomic_store_n(&pd->flags, rc == 0 ? clean : 0, __ATOMIC_RELAXED);
	}
	return calls;
}

/* Purges, ZONE_PURGE_BATCH pages at a time, the dirty blocks of at least
 * min_order freed at or before cutoff, oldest first, then (redo_advised)
 * every PG_ADVISED block with MADV_DONTNEED.  False if another purge is in
 * flight. */
static bool zone_purge_run(uint64_t cutoff, unsigned min_order, bool redo_advised, int advice,
			   size_t *pagesp)
{
	struct zone_irq saved;
	size_t pages = 0;
	uint64_t calls = 0;
	int errno_saved = errno;

	*pagesp = 0;
	zone_lock(&saved);
	if (z.purging) {
		zone_unlock(&saved);
		return false;
	}
	z.purging = true;
	for (bool advised = false;;) {
		struct page_desc *pd;
		unsigned o;
		size_t batch = 0;
		while (batch < ZONE_PURGE_BATCH) {
			pd = advised ? __zone_advised(min_order, &o) : __zone_oldest(cutoff, min_order, &o);
			if (!pd)
				break;
			__zone_isolate(pd, o);
			batch += (size_t)1 << o;
		}
		if (!batch) {
			if (advised || !redo_advised)
				break;
			advised = true;
			continue;
		}
		zone_unlock(&saved);
		calls += purge_isolated(z.isolated, advised ? MADV_DONTNEED : advice);
		zone_lock(&saved);
		pages += __zone_putback();
	}
	z.purging = false;
	z.purged_pages += pages;
	z.purge_calls += calls;
	if (pages)
		z.purge_runs++;
	zone_unlock(&saved);
	errno = errno_saved;
	*pagesp = pages;
	return true;
}

size_t zone_purge(unsigned min_order)
{
	size_t pages;

	/* malloc_trim waits for a decay purge in flight: it must find
	 * everything purged when it returns. */
	while (!zone_purge_run(UINT64_MAX, min_order, true, MADV_DONTNEED, &pages))
		sched_yield();
	return pages;
}

bool zone_purge_aged(uint64_t cutoff_ns, int advice, size_t *pages)
{
	return zone_purge_run(cutoff_ns, 0, false, advice, pages);
}

uint64_t zone_dirty_hint(void)
{
	return __atomic_load_n(&z.nr_dirty_pages, __ATOMIC_RELAXED);
}

uint64_t zone_dirty(uint64_t *oldest_ns)
{
	struct zone_irq saved;
	unsigned o;

	*oldest_ns = UINT64_MAX;
	if (!zg.bytes)
		return 0;
	zone_lock(&saved);
	uint64_t pages = z.nr_dirty_pages;
	struct page_desc *pd = __zone_oldest(UINT64_MAX, 0, &o);
	if (pd)
		*oldest_ns = pd->freed_ns;
	zone_unlock(&saved);
	return pages;
}

void zone_info(struct zone_info *zi)
{
	struct zone_irq saved;

	memset(zi, 0, sizeof(*zi));
	if (!zg.bytes)
		return;
	zone_lock(&saved);
	zi->pages = zg.pages;
	zi->given_back_pages = z.given_back;
	zi->untouched_pages = zg.pages - z.frontier;
	zi->free_pages = z.nr_free_pages + zi->untouched_pages;
	for (unsigned o = 0; o < MAX_ORDER; o++)
		zi->nr_free[o] = z.free_area[o].nr_free;
	zi->lock_acquired = z.lock.acquired;
	zi->lock_contended = z.lock.contended;
	zi->lock_wait_ns = z.lock.wait_ns;
	zi->allocs = z.allocs;
	zi->frees = z.frees;
	zi->batches = z.batches;
	zi->batch_blocks = z.batch_blocks;
	zi->batch_breaks = z.batch_breaks;
	zi->splits = z.splits;
	zi->merges = z.merges;
	zi->carved = z.carved;
	zi->purged_pages = z.purged_pages;
	zi->dirty_pages = z.nr_dirty_pages;
	zi->purge_runs = z.purge_runs;
	zi->purge_calls = z.purge_calls;
	zi->fork_deferred_frees = __atomic_load_n(&deferred_count, __ATOMIC_RELAXED);
	zi->fork_refused_allocs = __atomic_load_n(&refused_allocs, __ATOMIC_RELAXED);
	zi->abandoned_pages = z.abandoned_pages;
	zi->fork_carved = __atomic_load_n(&fork_carved, __ATOMIC_RELAXED);
	zone_unlock(&saved);
}

/* ---- whole-zone validation (tests) ------------------------------------ */

#define FAIL(...) do { fmt_snprintf(why, cap, __VA_ARGS__); goto out; } while (0)

int zone_validate(uint64_t used_pages, char *why, size_t cap)
{
	int rc = -1;
	struct zone_irq saved;
	uint8_t *seen = NULL;
	size_t seen_bytes = 0;

	if (!zg.bytes) {
		fmt_snprintf(why, cap, "no region");
		return used_pages == 0 || used_pages == UINT64_MAX ? 0 : -1;
	}
	/* The bitmap is mapped before the lock is taken: no system call
	 * under the zone lock, even in a validator. */
	seen_bytes = (__atomic_load_n(&zg.pages, __ATOMIC_RELAXED) + 7) / 8 + 1;   /* only shrinks */
	seen = os.mmap(NULL, seen_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (seen == MAP_FAILED) {
		fmt_snprintf(why, cap, "cannot map the validation bitmap");
		return -1;
	}
	zone_lock(&saved);
	if (z.frontier % MAX_BLOCK_PAGES || z.frontier > z.opened)
		FAIL("frontier %lu not a multiple of 1024 within %lu open pages",
		     (unsigned long)z.frontier, (unsigned long)z.opened);
	if (z.opened % MAX_BLOCK_PAGES || z.opened > zg.pages)
		FAIL("open pages %lu not a multiple of 1024 within %lu pages",
		     (unsigned long)z.opened, (unsigned long)zg.pages);
	if (zg.bytes != zg.pages << PAGE_SHIFT)
		FAIL("region of %lu bytes but %lu pages", (unsigned long)zg.bytes,
		     (unsigned long)zg.pages);

	uint64_t listed = 0, dirty_pages = 0;
	for (unsigned o = 0; o < MAX_ORDER; o++) {
		uint64_t n = 0;
		for (int dirty = 1; dirty >= 0; dirty--) {
			struct page_desc *prev = NULL;
			const struct page_desc *head = dirty ? z.free_area[o].head : z.free_area[o].clean;
			for (struct page_desc *pd = (struct page_desc *)head; pd; pd = pd->next) {
				uint64_t pfn = desc_pfn(pd);
				if (pd->prev != prev)
					FAIL("order %u: broken back link at pfn %lu", o, (unsigned long)pfn);
				if (!(pd->flags & PG_BUDDY) || (pd->flags & (PG_ALLOC | PG_CACHED)))
					FAIL("order %u: pfn %lu on free list with flags %x", o,
					     (unsigned long)pfn, pd->flags);
				if (dirty && (pd->flags & PG_CLEAN))
					FAIL("order %u: clean pfn %lu (flags %x) on the dirty list", o,
					     (unsigned long)pfn, pd->flags);
				if (!dirty && (!(pd->flags & PG_CLEAN) || (pd->flags & PG_CLEAN) == PG_CLEAN))
					FAIL("order %u: pfn %lu with flags %x on the clean list", o,
					     (unsigned long)pfn, pd->flags);
				if (dirty && prev && pd->freed_ns > prev->freed_ns)
					FAIL("order %u: dirty list out of time order at pfn %lu", o,
					     (unsigned long)pfn);
				if (pd->order != o)
					FAIL("pfn %lu on order-%u list says order %u", (unsigned long)pfn, o, pd->order);
				if (pfn & (((uint64_t)1 << o) - 1))
					FAIL("pfn %lu misaligned for order %u", (unsigned long)pfn, o);
				if (pfn + ((uint64_t)1 << o) > z.frontier)
					FAIL("pfn %lu order %u beyond the frontier", (unsigned long)pfn, o);
				for (uint64_t i = pfn; i < pfn + ((uint64_t)1 << o); i++) {
					if (seen[i / 8] & (1u << (i % 8)))
						FAIL("page %lu is in two free blocks", (unsigned long)i);
					seen[i / 8] |= (uint8_t)(1u << (i % 8));
				}
				if (o < MAX_ORDER - 1) {
					struct page_desc *b = pfn_to_desc(pfn ^ ((uint64_t)1 << o));
					if ((b->flags & PG_BUDDY) && b->order == o)
						FAIL("pfn %lu order %u and its buddy are both free: not coalesced",
						     (unsigned long)pfn, o);
				}
				prev = pd;
				n++;
				if (dirty)
					dirty_pages += (uint64_t)1 << o;
				listed += (uint64_t)1 << o;
			}
			if (dirty && z.free_area[o].tail != prev)
				FAIL("order %u: the tail is not the last dirty block", o);
		}
		if (n != z.free_area[o].nr_free)
			FAIL("order %u: nr_free %lu but %lu listed", o,
			     (unsigned long)z.free_area[o].nr_free, (unsigned long)n);
	}
	if (listed != z.nr_free_pages)
		FAIL("nr_free_pages %lu but %lu pages listed", (unsigned long)z.nr_free_pages,
		     (unsigned long)listed);
	if (dirty_pages != z.nr_dirty_pages)
		FAIL("nr_dirty_pages %lu but %lu dirty pages listed",
		     (unsigned long)z.nr_dirty_pages, (unsigned long)dirty_pages);
	/* Every PG_BUDDY head between the floor and the frontier must be on
	 * a list. */
	for (uint64_t pfn = z.floor; pfn < z.frontier; pfn++) {
		struct page_desc *pd = pfn_to_desc(pfn);
		if ((pd->flags & PG_BUDDY) && !(seen[pfn / 8] & (1u << (pfn % 8))))
			FAIL("pfn %lu marked free but on no list", (unsigned long)pfn);
	}
	if (used_pages != UINT64_MAX && !z.floor &&
	    used_pages + z.nr_free_pages + z.isolated_pages != z.frontier)
		FAIL("free %lu + being purged %lu + used %lu != %lu pages in use since start",
		     (unsigned long)z.nr_free_pages, (unsigned long)z.isolated_pages,
		     (unsigned long)used_pages, (unsigned long)z.frontier);
	rc = 0;
out:
	zone_unlock(&saved);
	if (seen)
		os.munmap(seen, seen_bytes);
	return rc;
}

/* ---- fork ------------------------------------------------------------- */

static struct zone_irq fork_saved;

bool zone_fork_pending(void)
{
	return __atomic_load_n(&fork_pending, __ATOMIC_RELAXED) != 0;
}

bool zone_fork_held(void)
{
	return __atomic_load_n(&fork_held, __ATOMIC_ACQUIRE) != 0;
}

/* Called first of all fork preparations, before any lock is taken. */
void zone_fork_announce(void)
{
	__atomic_store_n(&fork_pending, 1, __ATOMIC_RELEASE);
}

/*
 * While the forking thread holds the zone lock it touches nothing in the
 * zone, so a handler may take a never-used 4 MiB block off the frontier
 * without the lock: one compare-and-swap on z.frontier.  fork_carving
 * counts handlers doing so; the forker stops them (fork_held = 0) and waits
 * for the ones already in before it unlocks, after which z.frontier is the
 * lock's again.  The reserve (pagealloc/reserve.c) uses this when it runs
 * dry in a long fork window.
 */
void zone_fork_prepare(void)
{
	zone_lock(&fork_saved);
	__atomic_store_n(&fork_held, 1, __ATOMIC_SEQ_CST);
}

static void fork_stop_carving(void)
{
	__atomic_store_n(&fork_held, 0, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&fork_carving, __ATOMIC_SEQ_CST))
		sched_yield();
}

void zone_fork_parent(void)
{
	fork_stop_carving();
	__atomic_store_n(&fork_pending, 0, __ATOMIC_RELEASE);
	zone_unlock(&fork_saved);
}

/* Signals held back inside: a nested handler would find fork_held cleared
 * and wait for the zone lock, which the forker keeps until this carver has
 * left, and this carver cannot leave until that handler returns. */
struct page_desc *zone_carve_in_fork(void)
{
	struct page_desc *pd = NULL;
	uint8_t was = sigctx_hold();

	__atomic_add_fetch(&fork_carving, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&fork_held, __ATOMIC_SEQ_CST)) {
		uint64_t f = __atomic_load_n(&z.frontier, __ATOMIC_RELAXED);
		while (f + MAX_BLOCK_PAGES <= __atomic_load_n(&z.opened, __ATOMIC_RELAXED)) {
			if (__atomic_compare_exchange_n(&z.frontier, &f, f + MAX_BLOCK_PAGES, false,
							__ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
				pd = pfn_to_desc(f);
				pd->order = MAX_ORDER - 1;
				pd->flags = PG_ZERO;
				__atomic_add_fetch(&fork_carved, 1, __ATOMIC_RELAXED);
				break;
			}
		}
	}
	__atomic_sub_fetch(&fork_carving, 1, __ATOMIC_SEQ_CST);
	sigctx_unhold(was);
	return pd;
}

/* Hands [pfn, pfn + npages) to the zone without its lock: the next holder
 * frees it (the list drained in zone_lock). */
void zone_free_range_deferred(uint64_t pfn, size_t npages)
{
	if (npages)
		defer_free(pfn_to_desc(pfn), npages);
}

/* In the child, events start from zero so that each process reports its
 * own work; the state (free lists, counts) is inherited, of course. */
void zone_fork_child(void)
{
	/* A purge in flight on another thread left its blocks off the lists:
	 * back they go, dirty (whatever the parent's madvise did or not). */
	z.now = 0;
	for (struct page_desc *pd = z.isolated; pd; pd = pd->next)
		pd->flags = 0;
	__zone_putback();
	z.purging = false;
	fork_pending = 0;
	fork_held = fork_carving = 0;
	z.openers = 0;        /* only the forking thread lives on, not opening */
	mp_lock_reset(&z.lock);
	z.lock.acquired = z.lock.contended = z.lock.wait_ns = 0;
	z.allocs = z.frees = z.batches = z.batch_blocks = z.batch_breaks = 0;
	z.splits = z.merges = z.carved = z.purged_pages = 0;
	z.purge_runs = z.purge_calls = 0;
	sigctx_zone_leave(&fork_saved);
}

/*
 * A child of _Fork (no atfork handlers ran): a zone lock still held belongs
 * to a thread that does not exist here, maybe in the middle of a list
 * update, so the lists cannot be trusted.  They are abandoned: the zone goes
 * on from the frontier, whose 4 MiB blocks are whole (a buddy pair never
 * crosses a 1024-page boundary), and a block freed below it is dropped.
 * The child of a fork under a held lock usually execs or exits soon; it
 * must be able to allocate meanwhile.  Called by the only thread.
 */
void zone_fork_recover(void)
{
	__atomic_store_n(&fork_pending, 0, __ATOMIC_RELAXED);
	fork_held = fork_carving = 0;
	z.openers = 0;
	z.purging = false;
	if (!mp_lock_is_held(&z.lock)) {
		/* only this thread: the lists are whole, the lock free */
		z.now = 0;
		for (struct page_desc *pd = z.isolated; pd; pd = pd->next)
			pd->flags = 0;
		__zone_putback();
		return;
	}
	for (unsigned o = 0; o < MAX_ORDER; o++)
		z.free_area[o] = (struct free_area){ 0 };
	z.nr_free_pages = z.nr_dirty_pages = 0;
	z.isolated = NULL;
	z.isolated_pages = 0;
	z.floor = z.frontier;
	mp_lock_reset(&z.lock);
}

bool zone_limited(void)
{
	return z.limit != UINT64_MAX && __atomic_load_n(&zg.bytes, __ATOMIC_RELAXED) != 0;
}
