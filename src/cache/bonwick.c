/*
 * bonwick.c — the default page cache: Bonwick and Adams' magazines
 * ("Magazines and Vmem", USENIX 2001) per CPU on restartable sequences, with
 * a depot behind them.
 *
 * Per CPU and size class (1..16 pages) an array of block pfns with a count
 * and a capacity, high.  Bonwick's loaded and previous magazines are the two
 * halves of that array: a CPU whose array runs empty takes a full magazine's
 * worth (high / 2) from the depot, one whose array fills gives its top half
 * to the depot, so a CPU that alternates allocations and frees around the
 * boundary never goes to the depot twice in a row, which is what the
 * loaded/previous pair buys.  Push and pop are one restartable sequence each
 * on glibc's rseq area (platform/rseq.h): no lock, no atomic instruction, a
 * write of one array slot and one count.  A signal handler that interrupts
 * one makes it restart, so handlers use these arrays too.
 *
 *   per CPU   per class a line with [count|high], then its array; then the counters
 *   depot     per class: a stack of pfns under a lock, at most depot_cap
 *             blocks; beyond it batches go to the zone
 *
 * The depot lock is taken with signals held back (in_cache, as the RFC
 * magazine's lock), so a handler never interrupts its own thread holding it;
 * handlers only ever try it, since the forking thread holds it across fork.
 *
 * Capacity is tuned per CPU and class, the way Linux 6.7 tunes the per-CPU
 * lists' high: a CPU that goes to the depot for the same reason twice in a
 * row (empty, empty, or full, full), having gone for the other reason within
 * its last 8 trips, doubles its high, up to 2 MiB of blocks per class; a
 * global drain (exhaustion, magpage_drain, malloc_trim) resets it.  Traffic
 * one way only (a CPU that frees what others allocate) does not grow it: a
 * consumer parked up to 2 MiB per class for nothing (bench_pagealloc -m
 * remote -t 2: peak RSS 12.9 MiB for 8 MiB in flight, 10.8 without).  The growth of all a CPU's classes together is bounded by BW_GROW_PAGES
 * (see tune): one class may grow to its whole array, as a batch of one size
 * needs, but a CPU cycling many sizes, each drifting past its capacity now
 * and then, does not grow them all (that held 16 x 2 MiB per CPU, half of
 * it idle: 58 MiB peak RSS for 18 MiB live in bench_xthread -m random -t 2).
 * Cached memory per CPU is therefore at most start_pages + BW_GROW_PAGES
 * (7.6 + 2 MiB), and the depot holds at most depot_pages pages per class
 * (64 MiB by default).
 *
 * drain_all reaches other CPUs' arrays as pcp_rseq.c does: set the stopped
 * bit of each count, fence the CPU with membarrier (cache_stop_cpu), then
 * empty the array.
 *
 * Without rseq (no glibc registration, or under valgrind) each thread gets
 * the same structure for itself, allocated on its first use, and signal
 * handlers leave it alone (they use the zone, as with bypass); a thread's
 * array is emptied into the depot when the thread exits.
 *
 * Counters are per CPU (or thread), plain increments outside the sections
 * on a line the CPU already holds (a preemption between the commit and the
 * increment can lose one); hits = allocations - refills.  The one-hop path
 * (pagealloc) counts nothing: with MAGPAGE_CONF stats on, malloc and free
 * take the counting path instead, which comes through bw_alloc/bw_free.
 */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "platform/rseq.h"

/* Blocks moved per depot or zone trip: the buffer is on the stack of the
 * slow path, which handlers on a small sigaltstack also run (256 bytes). */
#define BW_MAXBUF 64
/* The same in process context, whose stack is the thread's: a refill or a
 * spill of a grown array (high 496) is one depot trip, not four (batch
 * 1024 made 32 trips per round with 64). */
#define BW_MAXBUF_PROC 256
/* Pages a CPU's capacities may grow by, all classes together: room for one
 * class to grow from its start to its whole array (128 -> 496 pages). */
#define BW_GROW_PAGES 512

struct bw_depot {
	struct mp_lock lock;
	uint32_t nr;            /* blocks on the stack */
	uint32_t low;           /* the fewest since the last decay: the bottom
				   low blocks sat unused all that time */
	uint32_t cap;           /* at most */
	uint32_t *pfns;         /* cap entries */
	uint64_t in, out, overflow;   /* blocks taken in, given out, sent to the zone */
} cacheline_aligned;

struct bw_thread {
	struct bw_cpu cache;    /* first: bw_mine points here */
	struct bw_thread *next, *prev;
};

char *bw_base;                          /* nr_cpus strides (rseq front end) */
unsigned bw_nr_cpus;                    /* 0 = the per-thread front end */
static unsigned nr_cpus;
static bool bw_rseq;                    /* per-CPU front end; else per thread */
static struct bw_depot depot[CACHE_CLASSES];
static uint32_t batch[CACHE_CLASSES], max_high[CACHE_CLASSES];
static uint32_t start_pages;            /* Σ 2 x batch[k] x (k + 1): a CPU's
					   capacity in pages before tuning */
static struct cache_fences fenced;
static uint64_t decayed_pages;          /* atomic: given to the zone by bw_decay */
static pthread_key_t thread_key;        /* per-thread front end: flush at exit */
static struct mp_lock threads_lock;     /* guards the thread list */
static struct bw_thread *threads;       /* per-thread front ends, for the stats */

#define my_cache ((struct bw_thread *)bw_mine)

static void thread_exit(void *arg);

static void init_cpu(struct bw_cpu *c)
{
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		c->cls[k].h.count = 0;
		c->cls[k].h.high = 2 * batch[k];
	}
}

static bool bw_init(void)
{
	nr_cpus = (unsigned)os.ncpus();
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint32_t pages = k + 1;
		batch[k] = 64 / pages >= 4 ? 64 / pages : 4;
		max_high[k] = BW_SLOTS / pages >= 2 * batch[k] ? BW_SLOTS / pages : 2 * batch[k];
		start_pages += 2 * batch[k] * pages;
	}
	size_t dbytes = 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		/* Several nodes: no depot, which every CPU shares (it would mix
		 * the nodes' pages); batches go to their own zones. */
		depot[k].cap = numa_multi ? 0 : opt.depot_pages / (k + 1);
		dbytes += depot[k].cap * sizeof(uint32_t);
	}
	char *mem = os.mmap(NULL, dbytes + PAGE_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		mp_log("cache:bonwick: cannot map its depot; using magazine");
		return false;
	}
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		depot[k].pfns = (uint32_t *)mem;
		mem += depot[k].cap * sizeof(uint32_t);
	}
#if MP_HAVE_RSEQ
	if (cpu_rseq_ok && cache_fence_register()) {
		size_t bytes = (size_t)nr_cpus << BW_STRIDE_SHIFT;
		void *cpus = os.mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (cpus != MAP_FAILED) {
			bw_base = cpus;
			for (unsigned c = 0; c < nr_cpus; c++)
				init_cpu(bw_cpu_of(c));
			bw_rseq = true;
			bw_nr_cpus = nr_cpus;
			return true;
		}
	}
#endif
	/* Per-thread front end: the destructor empties a thread's array. */
	if (pthread_key_create(&thread_key, thread_exit) != 0) {
		mp_log("cache:bonwick: no rseq and no thread key; using magazine");
		return false;
	}
	if (opt.verbose)
		mp_log("cache:bonwick: no rseq here; using one array set per thread");
	return true;
}

static unsigned bw_count(void)
{
	if (bw_rseq)
		return nr_cpus;
	unsigned n = 0;
	uint8_t was = sigctx_hold();
	mp_lock(&threads_lock);
	for (struct bw_thread *t = threads; t; t = t->next)
		n++;
	mp_unlock(&threads_lock);
	sigctx_unhold(was);
	return n;
}

/* This thread's CPU as its rseq area says, -1 if unusable: the sections
 * compare against that very field, so no other source will do (a thread
 * without a registration would abort them for ever). */
static inline int rseq_cpu(void)
{
#if MP_HAVE_RSEQ
	unsigned cpu = __atomic_load_n(&rseq_area()->cpu_id, __ATOMIC_RELAXED);
	return cpu < nr_cpus ? (int)cpu : -1;
#else
	return -1;
#endif
}

/* ---- the depot --------------------------------------------------------- */

/* Locks class k's depot with signals held back; a handler only tries.
 * False: not taken.  *was: for depot_unlock. */
static bool depot_lock(unsigned k, bool irq, uint8_t *was)
{
	*was = sigctx_hold();
	if (irq ? mp_trylock(&depot[k].lock) : (mp_lock(&depot[k].lock), true))
		return true;
	sigctx_unhold(*was);
	return false;
}

static void depot_unlock(unsigned k, uint8_t was)
{
	mp_unlock(&depot[k].lock);
	sigctx_unhold(was);
}

/* Up to want blocks from the depot into buf. */
static unsigned depot_take(unsigned k, uint32_t *buf, unsigned want, bool irq)
{
	struct bw_depot *d = &depot[k];
	uint8_t was;
	if (!__atomic_load_n(&d->nr, __ATOMIC_RELAXED) || !depot_lock(k, irq, &was))
		return 0;
	unsigned n = d->nr < want ? d->nr : want;
	d->nr -= n;
	if (d->nr < d->low)
		d->low = d->nr;
	memcpy(buf, d->pfns + d->nr, n * sizeof(uint32_t));
	d->out += n;
	depot_unlock(k, was);
	return n;
}

/* Gives n blocks to the depot; what does not fit goes to the zone. */
static void depot_put(unsigned k, const uint32_t *buf, unsigned n, bool irq)
{
	struct bw_depot *d = &depot[k];
	unsigned kept = 0;
	uint8_t was;

	if (depot_lock(k, irq, &was)) {
		kept = d->cap - d->nr < n ? d->cap - d->nr : n;
		memcpy(d->pfns + d->nr, buf, kept * sizeof(uint32_t));
		d->nr += kept;
		d->in += kept;
		d->overflow += n - kept;
		depot_unlock(k, was);
	}
	if (kept == n)
		return;
	struct page_desc *head = NULL;
	for (unsigned i = kept; i < n; i++) {
		struct page_desc *pd = pfn_to_desc(buf[i]);
		pd->flags = 0;
		pd->npages = k + 1;
		pd->next = head;
		head = pd;
	}
	zone_free_list(head);
}

/* ---- the front end: this CPU's arrays, or this thread's ------------------ */

/* Signals held back throughout: a handler leaving by siglongjmp must not
 * strand threads_lock, nor leave a half-made cache. */
static NOINLINE struct bw_cpu *thread_cache_create(void)
{
	uint8_t was = sigctx_hold();
	struct bw_thread *t = os.mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED) {
		sigctx_unhold(was);
		return NULL;
	}
	init_cpu(&t->cache);
	mp_lock(&threads_lock);
	t->next = threads;
	if (threads)
		threads->prev = t;
	threads = t;
	mp_unlock(&threads_lock);
	bw_mine = &t->cache;
	pthread_setspecific(thread_key, t);
	sigctx_unhold(was);
	return &t->cache;
}

/* The per-thread front end; NULL in a handler (it would race with the
 * interrupted code on the same arrays) or if none can be made. */
static inline struct bw_cpu *thread_cache(void)
{
	if (unlikely(sigctx_in_irq()))
		return NULL;
	if (likely(my_cache != NULL))
		return &my_cache->cache;
	return thread_cache_create();
}

static void flush_array(struct bw_cpu *c, unsigned k)
{
	uint32_t n = c->cls[k].h.count & ~BW_STOPPED;
	if (n)
		depot_put(k, c->cls[k].slots, n, false);
	c->cls[k].h.count = 0;
}

static void thread_exit(void *arg)
{
	struct bw_thread *t = arg;
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		flush_array(&t->cache, k);
	uint8_t was = sigctx_hold();
	mp_lock(&threads_lock);
	if (t->prev)
		t->prev->next = t->next;
	else
		threads = t->next;
	if (t->next)
		t->next->prev = t->prev;
	mp_unlock(&threads_lock);
	sigctx_unhold(was);
	bw_mine = NULL;
	os.munmap(t, sizeof(*t));
}

/* ---- allocation -------------------------------------------------------- */

/* Capacity of all c's classes, in pages: start_pages plus what tune gave. */
static uint32_t high_pages(const struct bw_cpu *c)
{
	uint32_t pages = 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		pages += __atomic_load_n(&c->cls[k].h.high, __ATOMIC_RELAXED) * (k + 1);
	return pages;
}

/* A CPU (or thread) went to the depot for the same reason twice in a row:
 * its working set is larger than its array; let it hold more, within the
 * CPU's growth budget (BW_GROW_PAGES).  Sixteen loads, once per depot
 * trip, not per block. */
static void tune(struct bw_cpu *c, unsigned k, uint8_t why)
{
	struct bw_hdr *h = &c->cls[k].h;
	uint8_t last = c->c[k].last;
	c->c[k].turns = (uint8_t)(c->c[k].turns << 1 | (last && last != why));
	/* Only a class that turned (a refill after a spill, or a spill after
	 * a refill) within its last 8 trips grows: one that only refills (a
	 * producer) or only spills (a consumer of another CPU's blocks) moves
	 * a batch per trip at any capacity, so a larger array would only park
	 * more of its pages (bench_pagealloc -m remote). */
	if (last == why && c->c[k].turns && h->high < max_high[k]) {
		uint32_t nh = h->high * 2 < max_high[k] ? h->high * 2 : max_high[k];
		uint32_t used = high_pages(c), cap = start_pages + BW_GROW_PAGES;
		uint32_t room = used < cap ? (cap - used) / (k + 1) : 0;
		if (nh > h->high + room)
			nh = h->high + room;
		if (nh > h->high)
			__atomic_store_n(&h->high, nh, __ATOMIC_RELAXED);
	}
	c->c[k].last = why;
}

/* Fills buf with up to want blocks of k+1 pages: the depot, else the zone. */
static ALWAYS_INLINE unsigned fetch(unsigned k, uint32_t *buf, unsigned want, bool irq,
				     struct bw_counts *st)
{
	unsigned n = depot_take(k, buf, want, irq);
	if (n) {
		st->depot_hits++;
		return n;
	}
	struct page_desc *head, *tail;
	n = zone_take_batch(k + 1, want, want < 8 ? want : 8, &head, &tail);
	for (unsigned i = 0; head; head = head->next, i++) {
		head->flags = PG_CACHED | (head->flags & PG_ZERO);
		buf[i] = (uint32_t)desc_pfn(head);
	}
	if (n)
		st->zone_refills++;
	return n;
}

/* The array was empty (or stopped): refill it with half its capacity and
 * hand one block out.  NULL sends the caller to the zone path. */
static ALWAYS_INLINE struct page_desc *alloc_slow_held(unsigned k, bool irq, struct bw_cpu *own,
							 uint32_t *buf, unsigned cap)
{
	struct bw_cpu *c = own;
	int cpu = -1;

	if (bw_rseq) {
		cpu = rseq_cpu();
		if ((unsigned)cpu >= nr_cpus)
			return NULL;
		c = bw_cpu_of(cpu);
	} else if (!c) {
		return NULL;
	}
	if (c->cls[k].h.count & BW_STOPPED)
		return NULL;         /* a remote drain owns it: the zone path */
	tune(c, k, 1);
	unsigned want = c->cls[k].h.high / 2;
	if (want > cap)
		want = cap;
	unsigned n = fetch(k, buf, want, irq, &c->c[k]);
	if (n == 0)
		return NULL;
	c->c[k].refills++;
	c->c[k].refill_blocks += n;
	MP_PROBE3(cache_refill, cpu, k + 1, n * (k + 1));
	c->c[k].allocs++;
	uint32_t mine = buf[--n];
	if (n) {
		bool stored = false;
#if MP_HAVE_RSEQ
		if (bw_rseq) {
			for (;;) {
				cpu = rseq_cpu();
				if ((unsigned)cpu >= nr_cpus)
					break;
				enum rseq_result r = rseq_bw_push_n(&bw_cpu_of(cpu)->cls[k].h.count, cpu, buf, n);
				if (r == RSEQ_DONE) {
					stored = true;
					break;
				}
				if (r != RSEQ_ABORTED)
					break;
				bw_cpu_of(cpu)->restarts++;
			}
		}
#endif
		if (!bw_rseq && c->cls[k].h.count + n <= c->cls[k].h.high) {
			memcpy(&c->cls[k].slots[c->cls[k].h.count], buf, n * sizeof(uint32_t));
			c->cls[k].h.count += n;
			stored = true;
		}
		if (!stored)
			depot_put(k, buf, n, irq);
	}
	return pfn_to_desc(mine);
}

static struct page_desc *bw_alloc_slow(unsigned k);

static struct page_desc *bw_alloc(size_t npages)
{
	unsigned k = (unsigned)npages - 1;
	uint64_t pfn;

	if (likely(bw_pop(k, &pfn, true)))
		return pfn_to_desc(pfn);
	return bw_alloc_slow(k);
}

/* The slow paths run with signals held back: a handler leaving by
 * siglongjmp must not abandon the blocks they hold in hand (buf, or a
 * per-thread array cut short).  What needs the handler test is decided
 * before. */
/* Process context's slow path, with its big buffer in a frame of its own:
 * a handler's path (bw_alloc_slow's own frame, a 64-block buffer) stays as
 * small as it was (altstack_small: the library's share of a 4 KiB
 * sigaltstack under 1 KiB). */
static NOINLINE struct page_desc *alloc_slow_proc(unsigned k)
{
	uint32_t buf[BW_MAXBUF_PROC];
	struct bw_cpu *mine = bw_rseq ? NULL : thread_cache();
	uint8_t was = sigctx_hold();
	struct page_desc *pd = alloc_slow_held(k, false, mine, buf, BW_MAXBUF_PROC);
	sigctx_unhold(was);
	return pd;
}

static NOINLINE struct page_desc *bw_alloc_slow(unsigned k)
{
	uint32_t buf[BW_MAXBUF];
	bool irq = sigctx_in_irq();
	if (!irq)
		return alloc_slow_proc(k);
	struct bw_cpu *mine = bw_rseq ? NULL : thread_cache();
	uint8_t was = sigctx_hold();
	struct page_desc *pd = alloc_slow_held(k, true, mine, buf, BW_MAXBUF);
	sigctx_unhold(was);
	return pd;
}

/* ---- free -------------------------------------------------------------- */

/* The array was full (or stopped): give its top half to the depot, then
 * keep the block.  False sends the caller to the zone path. */
static ALWAYS_INLINE bool free_slow_held(struct page_desc *pd, bool irq, struct bw_cpu *mine,
					  uint32_t *buf, unsigned cap)
{
	unsigned k = pd->npages - 1;
	struct bw_cpu *c;
	int cpu = -1;

	for (;;) {
		unsigned n = 0;
		if (bw_rseq) {
#if MP_HAVE_RSEQ
			cpu = rseq_cpu();
			if ((unsigned)cpu >= nr_cpus)
				return false;
			c = bw_cpu_of(cpu);
			uint32_t cnt = __atomic_load_n(&c->cls[k].h.count, __ATOMIC_RELAXED);
			if (cnt & BW_STOPPED)
				return false;
			uint32_t high = c->cls[k].h.high;
			if (cnt < high) {
				/* room again (another thread popped): push */
				enum rseq_result r = rseq_bw_push(&c->cls[k].h.count, (uint32_t)cpu,
								  (uint32_t)desc_pfn(pd));
				if (r == RSEQ_DONE) {
					c->c[k].frees++;
					return true;
				}
				if (r == RSEQ_ABORTED)
					c->restarts++;
				continue;
			}
			n = high / 2 < cnt ? high / 2 : cnt;
			if (n > cap)
				n = cap;
			enum rseq_result r = rseq_bw_pop_n(&c->cls[k].h.count, cpu, buf, n);
			if (r == RSEQ_ABORTED) {
				c->restarts++;
				continue;
			}
			if (r != RSEQ_DONE)
				continue;
#endif
		} else {
			if (!(c = mine))
				return false;
			uint32_t cnt = c->cls[k].h.count;
			if (cnt < c->cls[k].h.high) {
				c->cls[k].slots[c->cls[k].h.count++] = (uint32_t)desc_pfn(pd);
				c->c[k].frees++;
				return true;
			}
			n = cnt / 2 < cap ? cnt / 2 : cap;
			c->cls[k].h.count -= n;
			memcpy(buf, &c->cls[k].slots[c->cls[k].h.count], n * sizeof(uint32_t));
		}
		tune(c, k, 2);
		c->c[k].spills++;
		c->c[k].spill_blocks += n;
		MP_PROBE3(cache_drain, cpu, k + 1, n * (k + 1));
		depot_put(k, buf, n, irq);
	}
}

static bool bw_free_slow(struct page_desc *pd);

static bool bw_free(struct page_desc *pd)
{
	pd->flags = PG_CACHED;
	if (likely(bw_push(pd->npages - 1, (uint32_t)desc_pfn(pd), true)))
		return true;
	return bw_free_slow(pd);
}

/* As alloc_slow_proc. */
static NOINLINE bool free_slow_proc(struct page_desc *pd)
{
	uint32_t buf[BW_MAXBUF_PROC];
	struct bw_cpu *mine = bw_rseq ? NULL : thread_cache();
	uint8_t was = sigctx_hold();
	bool kept = free_slow_held(pd, false, mine, buf, BW_MAXBUF_PROC);
	sigctx_unhold(was);
	return kept;
}

static NOINLINE bool bw_free_slow(struct page_desc *pd)
{
	uint32_t buf[BW_MAXBUF];
	bool irq = sigctx_in_irq();
	if (!irq)
		return free_slow_proc(pd);
	struct bw_cpu *mine = bw_rseq ? NULL : thread_cache();
	uint8_t was = sigctx_hold();
	bool kept = free_slow_held(pd, true, mine, buf, BW_MAXBUF);
	sigctx_unhold(was);
	return kept;
}

/* ---- global drain ------------------------------------------------------ */

static void free_pfns(const uint32_t *pfns, unsigned n, unsigned k)
{
	struct page_desc *head = NULL;
	for (unsigned i = 0; i < n; i++) {
		struct page_desc *pd = pfn_to_desc(pfns[i]);
		pd->flags = 0;
		pd->npages = k + 1;
		pd->next = head;
		head = pd;
	}
	if (head)
		zone_free_list(head);
}

#if MP_HAVE_RSEQ
/* The IPI: stop every array of cpu, fence it, then they are ours. */
static size_t drain_cpu(unsigned cpu)
{
	struct bw_cpu *c = bw_cpu_of(cpu);
	size_t pages = 0;
	bool any = false;

	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		any |= __atomic_load_n(&c->cls[k].h.count, __ATOMIC_RELAXED) != 0;
	if (!any)
		return 0;
	if (!cache_stop_cpu(cpu, &c->cls[0].h.count, sizeof(c->cls[0]), CACHE_CLASSES, 32,
			    BW_STOPPED, &fenced))
		return 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint32_t n = __atomic_load_n(&c->cls[k].h.count, __ATOMIC_ACQUIRE) & ~BW_STOPPED;
		/* Empty but still stopped while its blocks go to the zone: a
		 * child of _Fork taken meanwhile must not free them again. */
		__atomic_store_n(&c->cls[k].h.count, BW_STOPPED, __ATOMIC_RELEASE);
		free_pfns(c->cls[k].slots, n, k);
		pages += (size_t)n * (k + 1);
		if (n)
			MP_PROBE3(cache_drain, (int)cpu, k + 1, n * (k + 1));
		c->cls[k].h.high = 2 * batch[k];
		c->c[k].last = c->c[k].turns = 0;
		__atomic_store_n(&c->cls[k].h.count, 0, __ATOMIC_RELEASE);
	}
	return pages;
}
#endif

/* What a CPU's arrays have done: any refill, spill or change of count
 * since the last look changes it (the fast paths count nothing, but
 * move the counts). */
static uint64_t traffic_of(const struct bw_cpu *c)
{
	uint64_t h = 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		h = h * 31 + c->c[k].refills + (c->c[k].spills << 20);
		h = h * 31 + __atomic_load_n(&c->cls[k].h.count, __ATOMIC_RELAXED);
	}
	return h;
}

/* Bonwick and Adams' depot working set: the blocks at the bottom of a
 * class's stack that no allocation reached since the last decay (low of
 * them) were not needed in that interval; they go to the zone, the oldest
 * first, and the zone purges them once they have aged there.  A class in
 * steady use keeps what it cycles through; an idle one empties. */
static size_t depot_reap(unsigned k)
{
	struct bw_depot *d = &depot[k];
	uint32_t buf[BW_MAXBUF];
	size_t pages = 0;
	uint8_t was;

	for (;;) {
		unsigned n = 0;
		if (!depot_lock(k, false, &was))
			break;
		if (d->low) {
			n = d->low < BW_MAXBUF ? d->low : BW_MAXBUF;
			memcpy(buf, d->pfns, n * sizeof(uint32_t));
			memmove(d->pfns, d->pfns + n, (d->nr - n) * sizeof(uint32_t));
			d->nr -= n;
			d->low -= n;
			d->out += n;
		} else {
			d->low = d->nr;         /* the next interval starts */
		}
		depot_unlock(k, was);
		if (!n)
			break;
		free_pfns(buf, n, k);
		pages += (size_t)n * (k + 1);
	}
	return pages;
}

/*
 * The decay purge's hook, about every purge_delay_ms: a CPU whose arrays
 * saw no traffic since the last call is drained remotely, as drain_all
 * would, which also puts its high back to two batches; each depot class
 * gives back what it did not use in the interval (depot_reap).  A busy CPU
 * whose count happens to read the same twice is drained too, and refills:
 * a cost of one batch.  Per-thread arrays (no rseq) decay only when their
 * thread exits.
 */
static size_t bw_decay(void)
{
	size_t pages = 0;
	uint8_t was;

	if (!cache_drain_begin(false, &was))
		return 0;
#if MP_HAVE_RSEQ
	for (unsigned cpu = 0; bw_rseq && cpu < nr_cpus; cpu++) {
		struct bw_cpu *c = bw_cpu_of(cpu);
		uint64_t seen = traffic_of(c);
		if (seen == c->decay_seen)
			pages += drain_cpu(cpu);
		c->decay_seen = traffic_of(c);
	}
#endif
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		pages += depot_reap(k);
	cache_drain_end(was);
	__atomic_add_fetch(&decayed_pages, pages, __ATOMIC_RELAXED);
	return pages;
}

static size_t bw_drain_all(void)
{
	size_t pages = 0;
	bool irq = sigctx_in_irq();
	uint8_t was;

	if (!cache_drain_begin(irq, &was))
		return 0;
#if MP_HAVE_RSEQ
	if (bw_rseq)
		for (unsigned c = 0; c < nr_cpus; c++)
			pages += drain_cpu(c);
#endif
	if (!bw_rseq && my_cache && !irq) {
		/* Other threads' arrays are theirs alone: only this one. */
		for (unsigned k = 0; k < CACHE_CLASSES; k++) {
			uint32_t n = my_cache->cache.cls[k].h.count;
			free_pfns(my_cache->cache.cls[k].slots, n, k);
			pages += (size_t)n * (k + 1);
			if (n)
				MP_PROBE3(cache_drain, -1, k + 1, n * (k + 1));
			my_cache->cache.cls[k].h.count = 0;
		}
	}
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint32_t buf[BW_MAXBUF];
		unsigned n;
		while ((n = depot_take(k, buf, BW_MAXBUF, irq)) != 0) {
			free_pfns(buf, n, k);
			pages += (size_t)n * (k + 1);
		}
	}
	cache_drain_end(was);
	return pages;
}

/* ---- statistics and fork ----------------------------------------------- */

static void view_of(const struct bw_cpu *c, unsigned id, struct cache_view *v)
{
	memset(v, 0, sizeof(*v));
	v->id = id;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint32_t n = __atomic_load_n(&c->cls[k].h.count, __ATOMIC_RELAXED) & ~BW_STOPPED;
		const struct bw_counts *s = &c->c[k];
		v->nr_blocks[k] = n;
		v->nr_pages += n * (k + 1);
		v->c[k] = (struct cache_counters){
			.allocs = s->allocs, .frees = s->frees,
			.hits = s->allocs > s->refills ? s->allocs - s->refills : 0,
			.refills = s->refills, .refill_pages = s->refill_blocks * (k + 1),
			.drains = s->spills, .drain_pages = s->spill_blocks * (k + 1),
		};
	}
	v->restarts = c->restarts;
}

static void bw_view(unsigned i, struct cache_view *v)
{
	if (bw_rseq) {
		view_of(bw_cpu_of(i), i, v);
		return;
	}
	memset(v, 0, sizeof(*v));
	uint8_t was = sigctx_hold();
	mp_lock(&threads_lock);
	unsigned j = 0;
	for (struct bw_thread *t = threads; t; t = t->next, j++)
		if (j == i) {
			view_of(&t->cache, i, v);
			break;
		}
	mp_unlock(&threads_lock);
	sigctx_unhold(was);
}

static uint64_t bw_depot_pages(void)
{
	uint64_t pages = 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		pages += __atomic_load_n(&depot[k].nr, __ATOMIC_RELAXED) * (k + 1);
	return pages;
}

static void bw_text(struct fmt_buf *b)
{
	cache_text_fences(b, &fenced);
	fmt_printf(b, "  decay: %lu pages of unused arrays and depot classes given to the zone\n",
		   (unsigned long)__atomic_load_n(&decayed_pages, __ATOMIC_RELAXED));
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		const struct bw_depot *d = &depot[k];
		uint64_t nr = __atomic_load_n(&d->nr, __ATOMIC_RELAXED);
		if (nr || d->in || d->overflow)
			fmt_printf(b, "  depot %u-page: %lu blocks now; %lu taken in, %lu given out, %lu sent to the zone (full)\n",
				   k + 1, (unsigned long)nr, (unsigned long)d->in,
				   (unsigned long)d->out, (unsigned long)d->overflow);
	}
}

static void bw_json(struct fmt_buf *b)
{
	cache_json_fences(b, &fenced);
	fmt_printf(b, ",\"decayed_pages\":%lu,\"depot\":[",
		   (unsigned long)__atomic_load_n(&decayed_pages, __ATOMIC_RELAXED));
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		const struct bw_depot *d = &depot[k];
		fmt_printf(b, "%s{\"pages\":%u,\"blocks\":%lu,\"in\":%lu,\"out\":%lu,\"to_zone\":%lu}",
			   k ? "," : "", k + 1,
			   (unsigned long)__atomic_load_n(&d->nr, __ATOMIC_RELAXED),
			   (unsigned long)d->in, (unsigned long)d->out, (unsigned long)d->overflow);
	}
	fmt_printf(b, "]");
}

/* Fixed order: (cache.c) the drain lock, the depots by class, then (the
 * caller) the zone; signals held back by cache.c.  The per-CPU arrays need
 * no lock: the child's copy of an array is whatever its last committed
 * count says. */
static bool fork_in_handler;    /* the forking thread was in a handler */

static void bw_fork_prepare(void)
{
	fork_in_handler = mp_tls.depth != 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		mp_lock(&depot[k].lock);
}

static void bw_fork_parent(void)
{
	for (unsigned k = CACHE_CLASSES; k-- > 0;)
		mp_unlock(&depot[k].lock);
}

static void bw_fork_child(void)
{
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		mp_lock_reset(&depot[k].lock);
		depot[k].in = depot[k].out = depot[k].overflow = 0;
	}
	mp_lock_reset(&threads_lock);
	memset(&fenced, 0, sizeof(fenced));
	decayed_pages = 0;
	if (bw_rseq)
		for (unsigned c = 0; c < nr_cpus; c++) {
			memset(bw_cpu_of(c)->c, 0, sizeof(bw_cpu_of(c)->c));
			bw_cpu_of(c)->restarts = 0;
		}
	/* Per-thread front end: only this thread lives on; the others'
	 * arrays are unreachable here (their blocks stay with them).  Forked
	 * from a handler, the child keeps running that handler, which may
	 * have interrupted this thread in the middle of an array update that
	 * will complete when it returns: the arrays are abandoned (their
	 * blocks leak) rather than shared by two updates. */
	if (!bw_rseq && fork_in_handler && bw_mine) {
		bw_mine = NULL;
		pthread_setspecific(thread_key, NULL);   /* no flush at exit either */
	}
	if (!bw_rseq) {
		threads = my_cache;
		if (threads)
			threads->next = threads->prev = NULL;
	}
}

/* A child of _Fork: a depot whose lock a vanished thread held is
 * abandoned (its blocks dropped), as the zone's lists are. */
static void bw_fork_recover(void)
{
	if (!bw_rseq && mp_tls.depth && bw_mine) {
		bw_mine = NULL;         /* see bw_fork_child */
		pthread_setspecific(thread_key, NULL);
	}
	if (!bw_rseq) {
		threads = my_cache;     /* the only thread here */
		if (threads)
			threads->next = threads->prev = NULL;
	}
	/* A remote drain cut short: its arrays stay stopped with the blocks
	 * not yet freed (count keeps them) or none (count is BW_STOPPED). */
	for (unsigned c = 0; bw_rseq && c < nr_cpus; c++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++)
			bw_cpu_of(c)->cls[k].h.count &= ~BW_STOPPED;
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		if (mp_lock_is_held(&depot[k].lock) && !mp_tls.in_cache) {
			depot[k].nr = 0;
			mp_lock_reset(&depot[k].lock);
		}
	mp_lock_reset(&threads_lock);
}

const struct cache_ops cache_bonwick_ops = {
	.name = "bonwick",
	.max_order = 4,
	/* its per-CPU arrays restart under a handler; its per-thread arrays
	 * (no rseq) turn handlers away themselves */
	.irq_safe = true,
	.init = bw_init,
	.alloc = bw_alloc,
	.free = bw_free,
	.drain_all = bw_drain_all,
	.decay = bw_decay,
	.count = bw_count,
	.view = bw_view,
	.depot_pages = bw_depot_pages,
	.text_cache = cache_text_restarts,
	.text_design = bw_text,
	.json_design = bw_json,
	.fork_prepare = bw_fork_prepare,
	.fork_parent = bw_fork_parent,
	.fork_child = bw_fork_child,
	.fork_recover = bw_fork_recover,
};
