/*
 * pcp_rseq.h — pcp-rseq's (vanilla39's) one-hop pop and push, inline (see
 * pcp_rseq.c for the design).  Included by cache.h; malloc's and free's
 * design hops (malloc.c: malloc_table_hop, free_hop_missed) try these
 * first, so that this design, like bonwick, reaches its lists without the
 * cache table's indirect call, retry loop and counters.
 *
 * Layout: one struct pcp_cpu per CPU, 1 << PCP_CPU_SHIFT bytes apart, a
 * 64-bit word per size class (rseq.h: head pfn, count, stop bit).
 */
#ifndef MAGPAGE_PCP_RSEQ_H
#define MAGPAGE_PCP_RSEQ_H

#include <stdbool.h>
#include <stdint.h>

struct pcp_cpu {
	uint64_t word[CACHE_CLASSES];     /* the lists; see rseq.h for the layout */
} cacheline_aligned;

extern char *pcpr_lists;             /* CPU 0's struct pcp_cpu */
extern unsigned pcpr_nr_cpus;        /* 0 unless pcp-rseq runs */
extern uint32_t pcpr_high[CACHE_CLASSES];
/* The list of class cls on this CPU reached its high mark: keep the
 * hottest count - batch blocks, give the batch of coldest to the zone. */
void pcpr_drain_local(unsigned cls);

#if MP_HAVE_RSEQ
_Static_assert(sizeof(struct pcp_cpu) == 1u << PCP_CPU_SHIFT, "rseq.h finds a CPU's lists by a shift");

static inline uint64_t pcpr_list_base(unsigned cls)
{
	return (uint64_t)pcpr_lists + cls * sizeof(uint64_t);
}

/* One try of one pop on this CPU's list of class cls (cls + 1 pages);
 * false: empty, stopped, restarted, or no usable CPU id (the caller takes
 * the design's own alloc, which retries, refills and counts). */
static inline bool pcpr_pop_once(unsigned cls, uint32_t *pfn)
{
	return rseq_pcp_pop_here(pcpr_list_base(cls), &pcpr_nr_cpus,
				 (uint64_t)zg.descs + offsetof(struct page_desc, pcp_next),
				 pfn) == RSEQ_DONE;
}

/* One try of one push of the live block pd (pfn, class cls), whose checks
 * the caller has made: 0, not taken (its flags say PG_CACHED: the caller
 * sets them again); 1, pushed; 2, pushed and the list is at its high
 * mark: the caller calls pcpr_drain_local. */
static inline int pcpr_push_once(struct page_desc *pd, uint32_t pfn, unsigned cls)
{
	uint32_t count;
	pd->flags = PG_CACHED;
	if (rseq_pcp_push_here(pcpr_list_base(cls), &pcpr_nr_cpus, pfn, &pd->pcp_next, 1,
			       &count) != RSEQ_DONE)
		return 0;
	return count >= pcpr_high[cls] ? 2 : 1;
}
#endif

#endif
