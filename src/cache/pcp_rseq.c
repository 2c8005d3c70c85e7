/*
 * pcp_rseq.c — the design the RFC set out to replace: Linux 3.9's per-CPU
 * page lists ("vanilla"), in user space on restartable sequences.
 *
 * One list per CPU and size class, with count, high and batch as 3.9
 * computes them for a large zone (batch 31, high 186).  Push and pop are
 * rseq critical sections on glibc's registered rseq area (platform/rseq.h):
 * no lock, no atomic instruction, and a signal handler that interrupts one
 * makes it restart — so handlers use these lists too, which 3.9 achieved by
 * disabling interrupts.
 *
 * Refill: a batch from the zone (zone lock only), linked privately, one
 * block handed to the caller and the rest published in one commit.
 * Drain, when a free brings the count to high: the whole list is taken in
 * one commit, its hottest count - batch blocks are published again and the
 * batch of coldest ones goes to the zone (a singly linked list can only be
 * cut at its head in a single commit, hence take-all then give back).
 *
 * drain_all (zone exhausted, magpage_drain) reaches other CPUs' lists the way
 * the kernel's IPI did: set the list's stopped bit, fence the CPU with
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) so that any critical
 * section running there restarts and sees the bit, then empty the list
 * directly (cache_stop_cpu, shared with bonwick.c).  Fences are counted and
 * timed: the RFC's complaint about "IPI overhead for global drains" is
 * measurable in the statistics.
 *
 * Counters are per CPU and updated with plain increments outside the
 * critical sections: a thread preempted between two increments by another on
 * the same CPU can lose one.  They are statistics, never state.  malloc and
 * free try one inline pop or push first (pcp_rseq.h), as bonwick's one-hop
 * path does, which counts nothing: with statistics on it is not taken, and
 * every call comes here.
 */
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "platform/rseq.h"

struct pcp_counts {
	struct mag_view_counts {
		uint64_t allocs, frees, refills, refill_pages, drains, drain_pages;
	} c[CACHE_CLASSES];
	uint64_t restarts;                /* critical sections aborted and retried */
} cacheline_aligned;

char *pcpr_lists;                    /* pcp_rseq.h */
unsigned pcpr_nr_cpus;
uint32_t pcpr_high[CACHE_CLASSES];
static struct pcp_cpu *pcps;          /* pcpr_lists: nr_cpus entries */
static struct pcp_counts *pcounts;    /* nr_cpus entries */
static unsigned nr_cpus;
static uint32_t batch[CACHE_CLASSES];   /* in blocks; high: pcpr_high */
static struct cache_fences fenced;

#define NEXT_OFF offsetof(struct page_desc, pcp_next)

static bool pcpr_init(void)
{
#if MP_HAVE_RSEQ
	if (!cpu_rseq_ok) {
		mp_log("cache:pcp-rseq needs glibc's rseq registration (it is off); using pcp-lock");
		return false;
	}
	if (!cache_fence_register()) {
		mp_log("cache:pcp-rseq: membarrier RSEQ registration failed; using pcp-lock");
		return false;
	}
	nr_cpus = (unsigned)os.ncpus();
	size_t bytes = nr_cpus * (sizeof(struct pcp_cpu) + sizeof(struct pcp_counts));
	char *mem = os.mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return false;
	pcps = (struct pcp_cpu *)mem;
	pcounts = (struct pcp_counts *)(mem + nr_cpus * sizeof(struct pcp_cpu));
	for (unsigned c = 0; c < nr_cpus; c++)
		for (unsigned k = 0; k < CACHE_CLASSES; k++)
			pcps[c].word[k] = PCP_EMPTY;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint32_t pages = k + 1;
		pcpr_high[k] = opt.pcp_high / pages ? opt.pcp_high / pages : 1;
		batch[k] = opt.pcp_batch / pages ? opt.pcp_batch / pages : 1;
		if (batch[k] > pcpr_high[k])
			batch[k] = pcpr_high[k];
	}
	pcpr_lists = mem;
	pcpr_nr_cpus = nr_cpus;
	return true;
#else
	mp_log("cache:pcp-rseq is implemented for x86-64 only; using pcp-lock");
	return false;
#endif
}

static unsigned pcpr_count(void)
{
	return nr_cpus;
}

#if MP_HAVE_RSEQ

static inline int this_cpu(void)
{
	int cpu = (int)__atomic_load_n(&rseq_area()->cpu_id, __ATOMIC_RELAXED);
	return cpu >= 0 && (unsigned)cpu < nr_cpus ? cpu : -1;
}

/* A section restarted: counted on the CPU the thread is on now. */
static void count_restart(void)
{
	int cpu = this_cpu();
	if (cpu >= 0)
		pcounts[cpu].restarts++;
}

/* Publishes a private chain on the current CPU; false if the list is
 * stopped (a remote drain) or rseq is unusable: the caller frees it. */
static bool publish(unsigned cls, uint32_t first, uint32_t last, uint32_t n, uint32_t *count)
{
	for (;;) {
		enum rseq_result r = rseq_pcp_push_here(pcpr_list_base(cls), &pcpr_nr_cpus, first,
							&pfn_to_desc(last)->pcp_next, n, count);
		if (r == RSEQ_DONE)
			return true;
		if (r == RSEQ_LIST_STOPPED)
			return false;
		count_restart();
	}
}

/* Turns a pcp_next chain of n blocks of cls+1 pages into a next-linked
 * list for zone_free_list. */
static void free_chain(uint32_t pfn, uint32_t n, unsigned cls)
{
	struct page_desc *head = NULL;
	while (n-- && pfn != PCP_EMPTY) {
		struct page_desc *pd = pfn_to_desc(pfn);
		pfn = pd->pcp_next;
		chain_for_zone(&head, pd, cls);
	}
	if (head)
		zone_free_list(head);
}

static NOINLINE struct page_desc *pcpr_refill(int cpu, unsigned cls)
{
	struct page_desc *head, *tail;
	unsigned n = zone_take_batch(cls + 1, batch[cls], batch[cls], &head, &tail);
	uint32_t count;

	if (n == 0)
		return NULL;
	for (struct page_desc *pd = head; pd; pd = pd->next) {
		pd->flags = PG_CACHED | (pd->flags & PG_ZERO);
		pd->pcp_next = pd->next ? (uint32_t)desc_pfn(pd->next) : PCP_EMPTY;
	}
	struct pcp_counts *st = &pcounts[cpu];
	st->c[cls].allocs++;
	st->c[cls].refills++;
	st->c[cls].refill_pages += (uint64_t)n * (cls + 1);
	MP_PROBE3(cache_refill, cpu, cls + 1, n * (cls + 1));
	if (n > 1 && !publish(cls, (uint32_t)desc_pfn(head->next), (uint32_t)desc_pfn(tail), n - 1,
			      &count))
		free_chain((uint32_t)desc_pfn(head->next), n - 1, cls);
	return head;
}

static struct page_desc *pcpr_alloc(size_t npages)
{
	unsigned cls = (unsigned)npages - 1;
	uint32_t pfn;

	for (;;) {
		enum rseq_result r = rseq_pcp_pop_here(pcpr_list_base(cls), &pcpr_nr_cpus,
						       (uint64_t)zg.descs + NEXT_OFF, &pfn);
		/* the CPU the section ran on, or the one a refill is for: a
		 * migration since only misplaces a count or a refill */
		int cpu = this_cpu();
		if (likely(r == RSEQ_DONE)) {
			if (cpu >= 0)   /* hits = allocs - refills */
				pcounts[cpu].c[cls].allocs++;
			return pfn_to_desc(pfn);
		}
		if (r == RSEQ_ABORTED) {
			count_restart();
			continue;
		}
		return r == RSEQ_LIST_EMPTY && cpu >= 0 ? pcpr_refill(cpu, cls) : NULL;
	}
}

/* count reached high: keep the hottest count - batch, drain the rest. */
NOINLINE void pcpr_drain_local(unsigned cls)
{
	uint64_t word;
	int cpu;

	for (;;) {
		cpu = this_cpu();
		if (cpu < 0)
			return;
		enum rseq_result r = rseq_pcp_take_all(&pcps[cpu].word[cls], cpu, &word);
		if (r == RSEQ_DONE)
			break;
		if (r == RSEQ_LIST_STOPPED)
			return;
		pcounts[cpu].restarts++;
	}
	uint32_t n = PCP_COUNT(word), first = PCP_HEAD(word), count;
	if (n == 0)
		return;
	uint32_t drop = n < batch[cls] ? n : batch[cls], keep = n - drop;
	uint32_t last = first, cold = first;
	if (keep) {
		for (uint32_t i = 1; i < keep; i++)
			last = pfn_to_desc(last)->pcp_next;
		cold = pfn_to_desc(last)->pcp_next;
		if (!publish(cls, first, last, keep, &count)) {
			cold = first;
			drop = n;
		}
	}
	free_chain(cold, drop, cls);
	pcounts[cpu].c[cls].drains++;
	pcounts[cpu].c[cls].drain_pages += (uint64_t)drop * (cls + 1);
	MP_PROBE3(cache_drain, cpu, cls + 1, drop * (cls + 1));
}

static bool pcpr_free(struct page_desc *pd)
{
	unsigned cls = pd->npages - 1;
	uint32_t pfn = (uint32_t)desc_pfn(pd), count;

	pd->flags = PG_CACHED;
	if (unlikely(!publish(cls, pfn, pfn, 1, &count)))
		return false;
	int cpu = this_cpu();
	if (cpu >= 0)
		pcounts[cpu].c[cls].frees++;
	if (unlikely(count >= pcpr_high[cls]))
		pcpr_drain_local(cls);
	return true;
}

/* The IPI: stop every list of cpu, fence it, then they are ours. */
static size_t pcpr_drain_cpu(unsigned cpu)
{
	struct pcp_cpu *p = &pcps[cpu];
	size_t pages = 0;
	bool any = false;

	for (unsigned k = 0; k < CACHE_CLASSES; k++)
		any |= PCP_COUNT(__atomic_load_n(&p->word[k], __ATOMIC_RELAXED)) != 0;
	if (!any)
		return 0;
	if (!cache_stop_cpu(cpu, p->word, sizeof(p->word[0]), CACHE_CLASSES, 64, PCP_STOPPED,
			    &fenced))
		return 0;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint64_t w = __atomic_load_n(&p->word[k], __ATOMIC_ACQUIRE);
		uint32_t n = PCP_COUNT(w);
		if (n) {
			free_chain(PCP_HEAD(w), n, k);
			pages += (size_t)n * (k + 1);
			pcounts[cpu].c[k].drains++;
			pcounts[cpu].c[k].drain_pages += (uint64_t)n * (k + 1);
			MP_PROBE3(cache_drain, (int)cpu, k + 1, n * (k + 1));
		}
		__atomic_store_n(&p->word[k], (uint64_t)PCP_EMPTY, __ATOMIC_RELEASE);
	}
	return pages;
}

static size_t pcpr_drain_all(void)
{
	size_t pages = 0;
	uint8_t was;

	if (!cache_drain_begin(mp_tls.depth != 0, &was))
		return 0;
	for (unsigned c = 0; c < nr_cpus; c++)
		pages += pcpr_drain_cpu(c);
	cache_drain_end(was);
	return pages;
}

#else  /* !MP_HAVE_RSEQ: pcpr_init() said no, nothing below is reached */

static struct page_desc *pcpr_alloc(size_t npages) { (void)npages; return NULL; }
void pcpr_drain_local(unsigned cls) { (void)cls; }
static bool pcpr_free(struct page_desc *pd) { (void)pd; return false; }
static size_t pcpr_drain_all(void) { return 0; }

#endif

static void pcpr_view(unsigned cpu, struct cache_view *v)
{
	memset(v, 0, sizeof(*v));
	v->id = cpu;
	for (unsigned k = 0; k < CACHE_CLASSES; k++) {
		uint64_t w = __atomic_load_n(&pcps[cpu].word[k], __ATOMIC_RELAXED);
		const struct mag_view_counts *c = &pcounts[cpu].c[k];
		v->nr_blocks[k] = PCP_COUNT(w);
		v->nr_pages += PCP_COUNT(w) * (k + 1);
		v->c[k] = (struct cache_counters){
			.allocs = c->allocs, .hits = c->allocs - c->refills, .frees = c->frees,
			.refills = c->refills, .refill_pages = c->refill_pages,
			.drains = c->drains, .drain_pages = c->drain_pages,
		};
	}
	v->restarts = pcounts[cpu].restarts;
}

static void pcpr_text(struct fmt_buf *b)
{
	cache_text_fences(b, &fenced);
}

static void pcpr_json(struct fmt_buf *b)
{
	cache_json_fences(b, &fenced);
}

/* In a child, counting restarts from zero like everywhere else.  A child
 * of _Fork in which a drain was cut short keeps those lists stopped (their
 * blocks abandoned; the rest of the design works around them). */
static void pcpr_fork_child(void)
{
	if (pcounts)
		memset(pcounts, 0, nr_cpus * sizeof(*pcounts));
	memset(&fenced, 0, sizeof(fenced));
}

const struct cache_ops cache_pcp_rseq_ops = {
	.name = "pcp-rseq",
	.max_order = 3,
	.irq_safe = true,
	.init = pcpr_init,
	.alloc = pcpr_alloc,
	.free = pcpr_free,
	.drain_all = pcpr_drain_all,
	.count = pcpr_count,
	.view = pcpr_view,
	.text_cache = cache_text_restarts,
	.text_design = pcpr_text,
	.json_design = pcpr_json,
	.fork_child = pcpr_fork_child,
};
