/*
 * stats_numa.c — the per-node part of the report: each node's zone (pages,
 * free pages) and its numastat counters (zone/numa.c), in text and JSON.
 * Kept apart from stats.c so the node counters stay their own struct.
 */
#include "internal.h"

static unsigned long ul(uint64_t v)
{
	return (unsigned long)v;
}

static const char *numa_mode(char *buf, size_t cap)
{
	if (opt.numa == NUMA_AUTO)
		return "auto";
	if (opt.numa == NUMA_OFF)
		return "off";
	fmt_snprintf(buf, cap, "fake=%u", opt.numa);
	return buf;
}

void stats_numa_text(struct fmt_buf *b)
{
	char mode[16];
	struct zone_info zi;

	fmt_printf(b, "numa (%s): %u node%s\n", numa_mode(mode, sizeof(mode)), zg.nodes,
		   zg.nodes == 1 ? "" : "s");
	for (unsigned i = 0; zone_node_info(i, &zi); i++) {
		const struct numa_stats *s = &numa_stats[i];
		fmt_printf(b, "  node %d: pages %lu, free %lu; numa_hit %lu numa_miss %lu "
			   "numa_foreign %lu local_node %lu other_node %lu; remote_frees %lu\n",
			   numa_node_id(i), ul(zi.pages), ul(zi.free_pages),
			   ul(__atomic_load_n(&s->numa_hit, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->numa_miss, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->numa_foreign, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->local_node, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->other_node, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->remote_frees, __ATOMIC_RELAXED)));
	}
}

void stats_numa_json(struct fmt_buf *b)
{
	char mode[16];
	struct zone_info zi;

	fmt_printf(b, "\"numa\":{\"mode\":\"%s\",\"nodes\":[", numa_mode(mode, sizeof(mode)));
	for (unsigned i = 0; zone_node_info(i, &zi); i++) {
		const struct numa_stats *s = &numa_stats[i];
		fmt_printf(b, "%s{\"node\":%d,\"pages\":%lu,\"free_pages\":%lu,\"numa_hit\":%lu,"
			   "\"numa_miss\":%lu,\"numa_foreign\":%lu,\"local_node\":%lu,"
			   "\"other_node\":%lu,\"remote_frees\":%lu}",
			   i ? "," : "", numa_node_id(i), ul(zi.pages), ul(zi.free_pages),
			   ul(__atomic_load_n(&s->numa_hit, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->numa_miss, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->numa_foreign, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->local_node, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->other_node, __ATOMIC_RELAXED)),
			   ul(__atomic_load_n(&s->remote_frees, __ATOMIC_RELAXED)));
	}
	fmt_printf(b, "]},");
}
