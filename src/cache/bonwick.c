/*
 * bonwick.c — the default page cache: Bonwick and Adams' magazines
 * ("Magazines and Vmem", USENIX 2001) per CPU on restartable sequences, with
 * a depot behind them.
 *
 * Per CPU and size class (1..16 pages) an array of block pfns with a count
 * and a capacity, high.  Bonwick's loaded and previous magazines are the two
 * halves of that array: a CPU whose array runs empty takes a full magazine's
 * worth (high / 2) from the depot, one whose array fills gives half of it
 * to the depot (its oldest half, the newest staying on top for the next
 * allocations; free_slow_held), so a CPU that alternates allocations and
 * frees around the boundary never goes to the depot twice in a row, which
 * is what the loaded/previous pair buys.  Push and pop are one restartable
 * sequence each on glibc's rseq area (platform/rseq.h): no lock, no atomic
 * instruction, a write of one array slot and one word (the count and a copy
 * of the top slot).  A signal handler
 * that interrupts one makes it restart, so handlers use these arrays too.
 *
 *   per CPU   per class a line with [count|top|high], then its array; then the counters
 *   depot     per class: a stack of pfns under a lock, at most depot_pages
 *             pages; beyond it batches go to the zone.  Sharded, one shard
 *             per 4 CPUs (up to 16), each its share of the room and its
 *             own locks: a CPU spills into its own shard and refills from
 *             it first, then from the others; eight producer-consumer pairs
 *             on 16 CPUs queued on one lock per class
 *
 * The depot lock is taken with signals held back (in_cache, as the RFC
 * magazine's lock), so a handler never interrupts its own thread holding it;
 * handlers only ever try it, since the forking thread holds it across fork.
 *
 * Capacity is tuned per CPU and class, the way Linux 6.7 tunes the per-CPU
 * lists' high: a CPU that goes to the depot for the same reason twice in a
 * row (empty, empty, or full, full), having turned from a run of two or
 * more trips for the other reason within its last 8, doubles its high, up
 * to 2 MiB of blocks per class; a global drain (exhaustion, magpage_drain,
 * malloc_trim) resets it.  Traffic one way only (a CPU that frees what
 * others allocate) does not grow it: a consumer parked up to 2 MiB per
 * class for nothing (bench_pagealloc -m remote -t 2: peak RSS 12.2 MiB for
 * 8 MiB in flight, 10.7 without).  The growth of all a CPU's classes
 * together is bounded by BW_GROW_PAGES (see tune): one class may grow to
 * its whole array, as a batch of one size needs, but a CPU cycling many
 * sizes, each drifting past its capacity now and then, does not grow them
 * all (that held 16 x 2 MiB per CPU, half of
 * it idle: 58 MiB peak RSS for 18 MiB live in bench_xthread -m random -t 2).
 * Cached memory per CPU is therefore at most start_pages + BW_GROW_PAGES
 * (7.6 + 2 MiB), and the depot holds at most depot_pages pages per class
 * (by default 16384 per CPU: 64 MiB of 1-page blocks per CPU, see
 * depot_limit).
 *
 * What others do to these arrays and the depot (drains, the decay,
 * statistics, fork) is in bonwick_remote.c; what the two files share, in
 * bonwick_impl.h.
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
#include "cache/bonwick_impl.h"
#include "platform/rseq.h"

/* The same in process context, whose stack is the thread's: a refill or a
 * spill of a grown array (high 496) is one depot trip, not four (batch
 * 1024 made 32 trips per round with 64). */
#define BW_MAXBUF_PROC 256
/* A spill in process context that leaves at most this many blocks gives
 * the depot the array's oldest blocks and keeps the newest (free_slow_held);
 * a larger remainder is spilled from the top, as handlers always do. */
#define BW_KEEP_HOT 64
/* Pages a CPU's capacities may grow by, all classes together: room for one
 * class to grow from its start to its whole array (128 -> 496 pages). */
#define BW_GROW_PAGES 512
/* depot_pages:0, the default: room per CPU, and at most (as depot_pages). */
#define DEPOT_PAGES_PER_CPU 16384
#define DEPOT_PAGES_MAX     (1u << 22)

char *bw_base;                          /* bw_ncpus strides (rseq front end) */
uint64_t bw_base_less1;
unsigned bw_nr_cpus;                    /* 0 = the per-thread front end */
unsigned bw_ncpus;
bool bw_rseq;
unsigned bw_shards = 1;
struct bw_depot bw_depots[BW_SHARDS_MAX][CACHE_CLASSES];
uint32_t bw_batch[CACHE_CLASSES];
static uint32_t max_high[CACHE_CLASSES];
static uint32_t start_pages;            /* Σ 2 x bw_batch[k] x (k + 1): a CPU's
					   capacity in pages before tuning */
struct cache_fences bw_fenced;
uint64_t bw_decayed;
pthread_key_t bw_thread_key;
struct mp_lock bw_threads_lock;
struct bw_thread *bw_threads;
struct bw_counts bw_gone[CACHE_CLASSES];
uint32_t bw_gone_threads;

static void thread_exit(void *arg);

static void init_cpu(struct bw_cpu *c)
{
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		c->cls[k].h.count = 0;
		c->cls[k].h.high = 2 * bw_batch[k];
	}
}

/*
 * Pages each class's depot may hold: depot_pages, or by default
 * DEPOT_PAGES_PER_CPU per CPU.  The depot is what every CPU's batches
 * beyond its arrays go through, so the room it needs grows with the CPUs
 * freeing at once: with a fixed 16384, 16 threads each cycling a batch of
 * 16384 pages sent 3 of every 4 pages through the zone lock, at 540-760 ns
 * a pair against 46-51 with room for all (16-core device, docs/results/
 * issue9/session7.md).  What the depot holds but does not use goes back
 * to the zone at the next decay (depot_reap), so the room costs memory
 * only for the interval after a burst.
 */
static uint32_t depot_limit(void)
{
	if (opt.depot_pages)
		return opt.depot_pages;
	uint64_t pages = (uint64_t)DEPOT_PAGES_PER_CPU * bw_ncpus;
	return pages < DEPOT_PAGES_MAX ? (uint32_t)pages : DEPOT_PAGES_MAX;
}

/* The classes by how much a clash would cost, the most first: the
 * power-of-two sizes (4 KiB to 64 KiB), then the rest from the smallest. */
_Static_assert(CACHE_CLASSES == 16, "class_rank names every class");
static const uint8_t class_rank[CACHE_CLASSES] = { 0, 1, 3, 7, 15, 2, 4, 5, 6, 8, 9, 10, 11,
						    12, 13, 14 };

/*
 * Where CPU 0's structure starts in its mapping (a multiple of 64 below a
 * page).  Every push and pop stores to its class's header line, class k's
 * at the start + k x 2,304 bytes: 16 page offsets, 256 bytes apart.  A
 * load whose address has the low 12 bits of a store still in flight waits
 * for it (4K aliasing), and the one-hop path loads its globals
 * (mp_onehop_reads) right after the previous call's stores: a global at
 * the same page offset as a header line costs every call of that class;
 * and a page's first and last lines are the program's (mp_span_hot).
 * Linked 0x38000, malloc's globals cost batch 64 on one thread 44 cycles a
 * pair against 36 at 0x37800 (the same code with 1 KiB less of depot
 * shards before them).  The 16 header lines fill every page offset 256
 * bytes apart from the start, so a few hot lines may leave no start clear
 * for all: the structure starts where the classes that clash are the
 * cheapest (class_rank), the first such start.
 */
size_t bw_header_offset(const struct mp_span *hot, unsigned n)
{
	_Static_assert(CACHE_CLASSES <= 32, "a clash set in 32 bits");
	size_t best = 0;
	uint32_t best_cost = UINT32_MAX;
	for (size_t off = 0; off < PAGE_SIZE && best_cost; off += 64) {
		uint32_t cost = 0;      /* bit 31 - r: the class of rank r clashes */
		for (unsigned r = 0; r < CACHE_CLASSES; r++) {
			unsigned k = class_rank[r];
			if (mp_span_hot(hot, n, (off + BW_KOFF(k)) & (PAGE_SIZE - 1), k))
				cost |= 1u << (31 - r);
		}
		if (cost < best_cost) {
			best = off;
			best_cost = cost;
		}
	}
	return best;
}

static bool bw_init(void)
{
	bw_ncpus = (unsigned)os.ncpus();
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint32_t pages = k + 1;
		bw_batch[k] = 64 / pages >= 4 ? 64 / pages : 4;
		max_high[k] = BW_SLOTS / pages >= 2 * bw_batch[k] ? BW_SLOTS / pages : 2 * bw_batch[k];
		start_pages += 2 * bw_batch[k] * pages;
	}
	size_t dbytes = 0;
	uint32_t limit = depot_limit();
	bw_shards = opt.depot_shards ? opt.depot_shards
				     : (bw_ncpus + BW_SHARD_CPUS - 1) / BW_SHARD_CPUS;
	if (bw_shards > BW_SHARDS_MAX)
		bw_shards = BW_SHARDS_MAX;
	if (bw_shards < 1)
		bw_shards = 1;
	for (unsigned s = 0; s < bw_shards; s++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++) {
			/* Several nodes: no depot, which every CPU shares (it
			 * would mix the nodes' pages); batches go to their own
			 * zones. */
			bw_depots[s][k].cap = numa_multi ? 0 : limit / (k + 1) / bw_shards;
			dbytes += bw_depots[s][k].cap * sizeof(uint32_t);
		}
	char *mem = os.mmap(NULL, dbytes + PAGE_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		mp_log("cache:bonwick: cannot map its depot; using magazine");
		return false;
	}
	char *depot_mem = mem;
	for (unsigned s = 0; s < bw_shards; s++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++) {
			bw_depots[s][k].pfns = (uint32_t *)mem;
			mem += bw_depots[s][k].cap * sizeof(uint32_t);
		}
#if MP_HAVE_RSEQ
	if (cpu_rseq_ok && cache_fence_register()) {
		size_t bytes = ((size_t)bw_ncpus << BW_STRIDE_SHIFT) + PAGE_SIZE;
		char *cpus = os.mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (cpus != MAP_FAILED) {
			struct mp_span hot[16];
			bw_base = cpus + bw_header_offset(hot, mp_onehop_reads(hot, 16));
			bw_base_less1 = (uint64_t)bw_base - BW_KOFF(1);
			for (unsigned c = 0; c < bw_ncpus; c++)
				init_cpu(bw_cpu_of(c));
			bw_rseq = true;
			bw_nr_cpus = bw_ncpus;
			return true;
		}
	}
#endif
	/* Per-thread front end: the destructor empties a thread's array. */
	if (pthread_key_create(&bw_thread_key, thread_exit) != 0) {
		mp_log("cache:bonwick: no rseq and no thread key; using magazine");
		os.munmap(depot_mem, dbytes + PAGE_SIZE);     /* nothing of it is used */
		memset(bw_depots, 0, sizeof(bw_depots));
		return false;
	}
	if (opt.verbose)
		mp_log("cache:bonwick: no rseq here; using one array set per thread");
	return true;
}

/* This thread's CPU as its rseq area says, -1 if unusable: the sections
 * compare against that very field, so no other source will do (a thread
 * without a registration would abort them for ever). */
static inline int rseq_cpu(void)
{
#if MP_HAVE_RSEQ
	unsigned cpu = __atomic_load_n(&rseq_area()->cpu_id, __ATOMIC_RELAXED);
	return cpu < bw_ncpus ? (int)cpu : -1;
#else
	return -1;
#endif
}

/* ---- the depot --------------------------------------------------------- */

/* Locks depot d with signals held back; a handler only tries.
 * False: not taken.  *was: for bw_depot_unlock. */
bool bw_depot_lock(struct bw_depot *d, bool irq, uint8_t *was)
{
	if (!sigctx_lock(&d->lock, irq, was))
		return false;
	mp_set_holder(&d->holder, mp_self_mark());
	return true;
}

void bw_depot_unlock(struct bw_depot *d, uint8_t was)
{
	mp_set_holder(&d->holder, 0);
	sigctx_unlock(&d->lock, was);
}

unsigned bw_depot_take(struct bw_depot *d, uint32_t *buf, unsigned want, bool irq, bool claim)
{
	uint8_t was;
	if (!__atomic_load_n(&d->nr, __ATOMIC_RELAXED) || !bw_depot_lock(d, irq, &was))
		return 0;
	unsigned n = d->nr < want ? d->nr : want;
	d->nr -= n;
	if (d->nr < d->low)
		d->low = d->nr;
	if (claim && d->run) {   /* the run is claimed: remember how long it was */
		uint32_t lately = d->claimed - d->claimed / 8;
		d->claimed = d->run > lately ? d->run : lately;
		d->run = 0;
	}
	memcpy(buf, d->pfns + d->nr, n * sizeof(uint32_t));
	d->out += n;
	bw_depot_unlock(d, was);
	return n;
}

/* The shard of a CPU (-1: the one the thread runs on): CPUs in runs of
 * BW_SHARD_CPUS, so that neighbours, which share caches, share a shard. */
static unsigned shard_of(int cpu)
{
	if (bw_shards == 1)
		return 0;
	if (cpu < 0)
		cpu = cpu_current();
	return (unsigned)cpu < bw_ncpus ? (unsigned)cpu * bw_shards / bw_ncpus : 0;
}

/* Has class k's depot no block, in any shard?  A hint, without the locks. */
bool bw_depot_empty(unsigned k)
{
	for (unsigned s = 0; s < bw_shards; s++)
		if (__atomic_load_n(&bw_depots[s][k].nr, __ATOMIC_RELAXED))
			return false;
	return true;
}

/* Up to want blocks of class k for cpu: its own shard first, then the
 * others in turn (a CPU that allocates what CPUs of another shard free). */
static unsigned depot_take(unsigned k, int cpu, uint32_t *buf, unsigned want, bool irq)
{
	unsigned s = shard_of(cpu);
	for (unsigned i = 0; i < bw_shards; i++) {
		unsigned n = bw_depot_take(&bw_depots[s][k], buf, want, irq, true);
		if (n)
			return n;
		s = s + 1 < bw_shards ? s + 1 : 0;
	}
	return 0;
}

/* n blocks of k+1 pages, by pfn, back to the zone. */
void bw_free_pfns(const uint32_t *pfns, unsigned n, unsigned k)
{
	struct page_desc *head = NULL;
	for (unsigned i = 0; i < n; i++)
		chain_for_zone(&head, pfn_to_desc(pfns[i]), k);
	if (head)
		zone_free_list(head);
}

/*
 * How many of n more blocks of class k depot d keeps: what its room allows,
 * and of a run of spills that no take has claimed, no more than the class's
 * largest array (max_high) or twice the longest run a take claimed lately.
 * A batch freed and then allocated again is claimed, so the depot learns
 * to hold it whole after one round; a one-way stream of frees that nothing
 * takes back (a program that frees what it will not allocate again at that
 * size) is not, and goes to the zone, where its blocks merge, instead of
 * filling the depot up to depot_pages (128 MiB a class on 2 CPUs) until
 * the decay.  The kernel's per-CPU lists stop hoarding a run of frees the
 * same way (free_high, Linux 6.7).  A drain's takes claim nothing (drains
 * are not demand), and a depot found empty starts a new run: the decay
 * reaps an unclaimed run's blocks, and the next run may keep as many.
 */
static inline unsigned depot_keeps(const struct bw_depot *d, unsigned k, unsigned n)
{
	uint32_t room = d->cap - d->nr;
	uint64_t most = 2 * (uint64_t)d->claimed > max_high[k] ? 2 * (uint64_t)d->claimed
							       : max_high[k];
	uint64_t left = d->run < most ? most - d->run : 0;
	if (room > left)
		room = left;
	return n < room ? n : room;
}

/* Gives n blocks of k+1 pages to depot d; what it does not keep goes to
 * the zone. */
void bw_depot_put(struct bw_depot *d, unsigned k, const uint32_t *buf, unsigned n, bool irq)
{
	unsigned kept = 0;
	uint8_t was;

	if (bw_depot_lock(d, irq, &was)) {
		if (!d->nr)     /* emptied by a drain, the decay or a fork: anew */
			d->run = 0;
		kept = depot_keeps(d, k, n);
		unsigned fits = d->cap - d->nr < n ? d->cap - d->nr : n;
		d->run = d->run > UINT32_MAX - n ? UINT32_MAX : d->run + n;
		memcpy(d->pfns + d->nr, buf, kept * sizeof(uint32_t));
		d->nr += kept;
		d->in += kept;
		d->overflow += n - kept;
		d->unclaimed += fits - kept;
		bw_depot_unlock(d, was);
	}
	bw_free_pfns(buf + kept, n - kept, k);
}

/* A spill of cpu (-1: this thread's CPU) goes to its own shard. */
static void depot_put(unsigned k, int cpu, const uint32_t *buf, unsigned n, bool irq)
{
	bw_depot_put(&bw_depots[shard_of(cpu)][k], k, buf, n, irq);
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
	mp_lock(&bw_threads_lock);
	t->next = bw_threads;
	if (bw_threads)
		bw_threads->prev = t;
	bw_threads = t;
	mp_unlock(&bw_threads_lock);
	bw_mine = &t->cache;
	pthread_setspecific(bw_thread_key, t);
	sigctx_unhold(was);
	return &t->cache;
}

/* The per-thread front end; NULL in a handler (it would race with the
 * interrupted code on the same arrays), if none can be made, or once the
 * thread's arrays are gone: a TLS destructor that runs after
 * thread_exit and allocates pages gets them from the zone, rather than
 * making a second set that a later destructor round would count as a
 * second thread gone, or that none would take down (glibc stops after 4
 * rounds), its blocks with it. */
static inline struct bw_cpu *thread_cache(void)
{
	if (unlikely(sigctx_in_irq()))
		return NULL;
	if (likely(my_cache != NULL))
		return &my_cache->cache;
	if (mp_tls.bw_exited)
		return NULL;
	return thread_cache_create();
}

static void flush_array(struct bw_cpu *c, unsigned k)
{
	uint32_t n = c->cls[k].h.count & ~BW_STOPPED;
	if (n)
		depot_put(k, -1, c->cls[k].slots, n, false);
	c->cls[k].h.count = 0;
}

static void thread_exit(void *arg)
{
	struct bw_thread *t = arg;
	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		flush_array(&t->cache, k);
	uint8_t was = sigctx_hold();
	mp_lock(&bw_threads_lock);
	/* its counters stay in the totals (the stats' last row) */
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		const struct bw_counts *c = &t->cache.c[k];
		struct bw_counts *g = &bw_gone[k];
		g->allocs += c->allocs;
		g->frees += c->frees;
		g->refills += c->refills;
		g->refill_blocks += c->refill_blocks;
		g->spills += c->spills;
		g->spill_blocks += c->spill_blocks;
		g->depot_hits += c->depot_hits;
		g->zone_refills += c->zone_refills;
		g->borrowed += c->borrowed;
	}
	bw_gone_threads++;
	if (t->prev)
		t->prev->next = t->next;
	else
		bw_threads = t->next;
	if (t->next)
		t->next->prev = t->prev;
	mp_unlock(&bw_threads_lock);
	sigctx_unhold(was);
	bw_mine = NULL;
	mp_tls.bw_exited = 1;
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

/* A CPU (or thread) went to the depot for the same reason twice in a row,
 * and turned within its last 8 trips (cache_tune_trip): its working set is
 * larger than its array; let it hold more, within the CPU's growth budget
 * (BW_GROW_PAGES).  Only a class that turned grows: one that only refills
 * (a producer) or only spills (a consumer of another CPU's blocks) moves a
 * batch per trip at any capacity, so a larger array would only park more
 * of its pages (bench_pagealloc -m remote).  Sixteen loads, once per depot
 * trip, not per block. */
static void tune(struct bw_cpu *c, unsigned k, uint8_t why)
{
	struct bw_hdr *h = &c->cls[k].h;
	if (cache_tune_trip(&c->c[k].tune, why) && h->high < max_high[k]) {
		uint32_t used = high_pages(c), cap = start_pages + BW_GROW_PAGES;
		uint32_t room = used < cap ? (cap - used) / (k + 1) : 0;
		uint32_t nh = cache_tune_grown(h->high, max_high[k], room);
		if (nh > h->high)
			__atomic_store_n(&h->high, nh, __ATOMIC_RELAXED);
	}
}

/*
 * The last trip to the depot was a spill too and none of the last 8
 * turned: the class's traffic runs one way.  A spill of such a CPU, one
 * that only frees what others allocate, gives the depot its whole array,
 * not half of it: keeping the other half for allocations is what the
 * loaded and previous magazines are for, and none come.  Each of its depot
 * lock holds then moves twice the blocks; eight producer and consumer
 * pairs on the 16-core device queued on that lock (bench_pagealloc -m
 * remote -t 16).  Refills stay at half the array: filling it whole would
 * make a CPU hold more, and classes in random traffic look one-way for a
 * few trips (bench_xthread -m random -t 1: peak RSS 23.6 MiB against 22.7).
 */
static inline bool only_spills(const struct bw_cpu *c, unsigned k)
{
	return cache_tune_only_spills(&c->c[k].tune);
}

/* Fills buf with up to want blocks of k+1 pages from the zone. */
static ALWAYS_INLINE unsigned fetch_zone(unsigned k, uint32_t *buf, unsigned want,
					  struct bw_counts *st)
{
	struct page_desc *head, *tail;
	unsigned n = zone_take_batch(k + 1, want, want < 8 ? want : 8, &head, &tail);
	/* PG_ZERO dropped: the one-hop malloc hands blocks out without a
	 * descriptor write (zone.h's live bytes), so that a never-used block
	 * would come back from the program still saying so */
	for (unsigned i = 0; head; head = head->next, i++) {
		head->flags = PG_CACHED;
		buf[i] = (uint32_t)desc_pfn(head);
	}
	if (n)
		st->zone_refills++;
	return n;
}

/* n blocks of class k in hand go on top of the array of the CPU this runs
 * on (rseq; the per-thread front end: own's), else, full or stopped, to
 * the depot. */
static ALWAYS_INLINE void stash(unsigned k, struct bw_cpu *own, const uint32_t *buf, unsigned n,
				bool irq)
{
	int cpu = -1;
	if (bw_rseq) {
#if MP_HAVE_RSEQ
		for (;;) {
			cpu = rseq_cpu();
			if ((unsigned)cpu >= bw_ncpus)
				break;
			enum rseq_result r = rseq_bw_push_n(&bw_cpu_of(cpu)->cls[k].h.count, cpu, buf, n);
			if (r == RSEQ_DONE)
				return;
			if (r != RSEQ_ABORTED)
				break;
			bw_cpu_of(cpu)->restarts++;
		}
#endif
	} else if (own->cls[k].h.count + n <= own->cls[k].h.high) {
		memcpy(&own->cls[k].slots[own->cls[k].h.count], buf, n * sizeof(uint32_t));
		own->cls[k].h.count += n;
		return;
	}
	depot_put(k, cpu, buf, n, irq);
}

/*
 * Class k is out of blocks on this CPU (c) and in the depot: one cached
 * block of a larger class, up to class most, the nearest first, from this
 * CPU's arrays (a restartable pop, no lock) or, refilling the larger
 * class's array on the way as its own refill would, the depot.  The block
 * keeps its size and goes back to its own class when freed.  Of a random
 * mix of 1- to 16-page sizes each class otherwise keeps the blocks of its
 * own busiest moment, idle while the others are busy (bench_xthread -m
 * random -t 1: 21.3 MiB peak RSS, 16.9 borrowing, at the same speed;
 * docs/results/issue9/session11.md).  Process context, signals held back
 * (so that the per-thread front end's arrays are popped with bw_pop_array:
 * bw_pop's own way to them is closed while signals are held).
 */
static NOINLINE struct page_desc *borrow(unsigned k, unsigned most, int cpu, struct bw_cpu *c,
					  uint32_t *buf, unsigned cap)
{
	for (unsigned j = k + 1; j <= most; j++) {
		uint64_t pfn;
		bool got = bw_rseq ? bw_pop(j, &pfn, false)
				   : bw_pop_array(c, BW_KOFF(j), &pfn, false);
		if (!got) {
			unsigned want = c->cls[j].h.high / 2;
			unsigned n = depot_take(j, cpu, buf, want < cap ? want : cap, false);
			if (!n)
				continue;
			/* the lender's refill, counted and tuned as its own
			 * would be: a lender whose blocks keep coming back to
			 * be lent again grows its array */
			tune(c, j, TUNE_REFILL);
			c->c[j].depot_hits++;
			c->c[j].refills++;
			c->c[j].refill_blocks += n;
			MP_PROBE3(cache_refill, cpu, j + 1, n * (j + 1));
			pfn = buf[--n];
			if (n)
				stash(j, c, buf, n, false);
		}
		c->c[k].allocs++;
		c->c[k].borrowed++;
		return pfn_to_desc(pfn);
	}
	return NULL;
}

/* The array was empty (or stopped): refill it with half its capacity and
 * hand one block out; with the depot empty too, a block of a class up to
 * most first (borrow; most == k: none).  NULL sends the caller to the zone
 * path. */
static ALWAYS_INLINE struct page_desc *alloc_slow_held(unsigned k, unsigned most, bool irq,
							 struct bw_cpu *own, uint32_t *buf,
							 unsigned cap)
{
	struct bw_cpu *c = own;
	int cpu = -1;

	if (bw_rseq) {
		cpu = rseq_cpu();
		if ((unsigned)cpu >= bw_ncpus)
			return NULL;
		c = bw_cpu_of(cpu);
	} else if (!c) {
		return NULL;
	}
	if (c->cls[k].h.count & BW_STOPPED)
		return NULL;         /* a remote drain owns it: the zone path */
	tune(c, k, TUNE_REFILL);
	unsigned want = c->cls[k].h.high / 2;
	if (want > cap)
		want = cap;
	unsigned n = depot_take(k, cpu, buf, want, irq);
	if (n) {
		c->c[k].depot_hits++;
	} else {
		struct page_desc *pd = most > k ? borrow(k, most, cpu, c, buf, cap) : NULL;
		if (pd)
			return pd;
		n = fetch_zone(k, buf, want, &c->c[k]);
	}
	if (n == 0)
		return NULL;
	c->c[k].refills++;
	c->c[k].refill_blocks += n;
	MP_PROBE3(cache_refill, cpu, k + 1, n * (k + 1));
	c->c[k].allocs++;
	uint32_t mine = buf[--n];
	if (n)
		stash(k, c, buf, n, irq);
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
static NOINLINE struct page_desc *alloc_slow_proc(unsigned k, unsigned most)
{
	uint32_t buf[BW_MAXBUF_PROC];
	struct bw_cpu *mine = bw_rseq ? NULL : thread_cache();
	uint8_t was = sigctx_hold();
	struct page_desc *pd = alloc_slow_held(k, most, false, mine, buf, BW_MAXBUF_PROC);
	sigctx_unhold(was);
	return pd;
}

static NOINLINE struct page_desc *bw_alloc_slow(unsigned k)
{
	uint32_t buf[BW_MAXBUF];
	bool irq = sigctx_in_irq();
	if (!irq)
		return alloc_slow_proc(k, k);
	struct bw_cpu *mine = bw_rseq ? NULL : thread_cache();
	uint8_t was = sigctx_hold();
	struct page_desc *pd = alloc_slow_held(k, k, true, mine, buf, BW_MAXBUF);
	sigctx_unhold(was);
	return pd;
}

/* As bw_alloc, process context; a class out of blocks here and in the
 * depot borrows a cached block of up to most pages before the zone. */
static struct page_desc *bw_alloc_fit(size_t npages, size_t most)
{
	unsigned k = (unsigned)npages - 1;
	uint64_t pfn;

	if (likely(bw_pop(k, &pfn, true)))
		return pfn_to_desc(pfn);
	return alloc_slow_proc(k, (unsigned)most - 1);
}

/* ---- free -------------------------------------------------------------- */

/*
 * The array was full (or stopped): give half of it to the depot (all of
 * it, only_spills), then keep the block.  False sends the caller to the
 * zone path.
 *
 * Which half: the array's top holds the blocks freed last, whose lines the
 * program has just touched and which the next allocations hand out; its
 * bottom, the ones freed longest ago.  With hot (process context) and at
 * most BW_KEEP_HOT blocks staying, the bottom goes and the top stays, as
 * Linux's per-CPU lists give the buddy their cold tail
 * (free_pcppages_bulk).  Under rseq the array cannot be shifted down in one
 * section (one restarted halfway would leave it half moved), so the top is
 * set aside (one section), the blocks below it taken (another) and the top
 * put back (a third; the depot if the array changed meanwhile): copies
 * that cost a batch of 1024 blocks 3-4 cycles a pair with 248 kept, hence
 * the bound.  Otherwise (a handler, whose frame has no room for a second
 * buffer, or a grown array) the top half goes.
 */
static ALWAYS_INLINE bool free_slow_held(struct page_desc *pd, bool irq, struct bw_cpu *mine,
					  uint32_t *buf, uint32_t *hot, unsigned cap)
{
	unsigned k = pd->npages - 1;
	struct bw_cpu *c;
	int cpu = -1;

	for (;;) {
		unsigned n = 0;
		if (bw_rseq) {
#if MP_HAVE_RSEQ
			cpu = rseq_cpu();
			if ((unsigned)cpu >= bw_ncpus)
				return false;
			c = bw_cpu_of(cpu);
			uint32_t cnt = __atomic_load_n(&c->cls[k].h.count, __ATOMIC_RELAXED);
			if (cnt & BW_STOPPED)
				return false;
			uint32_t high = c->cls[k].h.high;
			if (cnt < high) {
				/* room again (another thread popped): push */
				enum rseq_result r = rseq_bw_push_here((uint64_t)bw_base, BW_KOFF(k),
								       &bw_nr_cpus,
								       (uint32_t)desc_pfn(pd));
				if (r == RSEQ_DONE) {
					c->c[k].frees++;
					return true;
				}
				if (r == RSEQ_ABORTED)
					c->restarts++;
				continue;
			}
			n = only_spills(c, k) || high / 2 > cnt ? cnt : high / 2;
			if (n > cap)
				n = cap;
			uint32_t keep = hot && cnt - n <= BW_KEEP_HOT ? cnt - n : 0;
			enum rseq_result r = keep ? rseq_bw_pop_n(&c->cls[k].h.count, cpu, hot, keep)
						  : RSEQ_DONE;
			if (r == RSEQ_DONE) {
				r = rseq_bw_pop_n(&c->cls[k].h.count, cpu, buf, n);
				if (keep)       /* set aside: back on top */
					stash(k, c, hot, keep, irq);
			}
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
			n = only_spills(c, k) ? cnt : cnt / 2;
			if (n > cap)
				n = cap;
			uint32_t keep = cnt - n, *slots = c->cls[k].slots;
			c->cls[k].h.count = keep;
			if (hot && keep <= BW_KEEP_HOT) {
				memcpy(buf, slots, n * sizeof(uint32_t));
				memmove(slots, slots + n, keep * sizeof(uint32_t));
			} else {
				memcpy(buf, slots + keep, n * sizeof(uint32_t));
			}
		}
		tune(c, k, TUNE_SPILL);
		c->c[k].spills++;
		c->c[k].spill_blocks += n;
		MP_PROBE3(cache_drain, cpu, k + 1, n * (k + 1));
		depot_put(k, cpu, buf, n, irq);
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
	uint32_t buf[BW_MAXBUF_PROC], hot[BW_KEEP_HOT];
	struct bw_cpu *mine = bw_rseq ? NULL : thread_cache();
	uint8_t was = sigctx_hold();
	bool kept = free_slow_held(pd, false, mine, buf, hot, BW_MAXBUF_PROC);
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
	bool kept = free_slow_held(pd, true, mine, buf, NULL, BW_MAXBUF);
	sigctx_unhold(was);
	return kept;
}

const struct cache_ops cache_bonwick_ops = {
	.name = "bonwick",
	.max_order = 4,
	/* its per-CPU arrays restart under a handler; its per-thread arrays
	 * (no rseq) turn handlers away themselves */
	.irq_safe = true,
	.init = bw_init,
	.alloc = bw_alloc,
	.alloc_fit = bw_alloc_fit,
	.free = bw_free,
	.drain_all = bw_drain_all,
	.decay = bw_decay,
	.count = bw_count,
	.view = bw_view,
	.views = bw_views,
	.depot_pages = bw_depot_pages,
	.text_cache = bw_text_row,
	.text_design = bw_text,
	.json_design = bw_json,
	.fork_prepare = bw_fork_prepare,
	.fork_parent = bw_fork_parent,
	.fork_child = bw_fork_child,
	.fork_recover = bw_fork_recover,
};
