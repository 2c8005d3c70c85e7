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

/* A node's counters, as "name value" pairs after its pages: text puts
 * "name %lu" with spaces, JSON ""name":%lu" with commas. */
static void node_counters(struct fmt_buf *b, unsigned i, bool json)
{
	const struct numa_stats *s = &numa_stats[i];
	const char *sep = json ? "," : " ";
#define X(field) \
	fmt_printf(b, json ? "%s\"" #field "\":%lu" : "%s" #field " %lu", sep, \
		   ul(__atomic_load_n(&s->field, __ATOMIC_RELAXED)));
	NUMA_STAT_COUNTERS(X)
#undef X
	fmt_printf(b, json ? ",\"remote_frees\":%lu" : "; remote_frees %lu",
		   ul(__atomic_load_n(&s->remote_frees, __ATOMIC_RELAXED)));
}

void stats_numa_text(struct fmt_buf *b)
{
	char mode[16];
	struct zone_info zi;

	fmt_printf(b, "numa (%s): %u node%s\n", numa_mode(mode, sizeof(mode)), zg.nodes,
		   zg.nodes == 1 ? "" : "s");
	for (unsigned i = 0; zone_node_info(i, &zi); i++) {
		fmt_printf(b, "  node %d: pages %lu, free %lu;", numa_node_id(i), ul(zi.pages),
			   ul(zi.free_pages));
		node_counters(b, i, false);
		fmt_printf(b, "\n");
	}
}

void stats_numa_json(struct fmt_buf *b)
{
	char mode[16];
	struct zone_info zi;

	fmt_printf(b, "\"numa\":{\"mode\":\"%s\",\"nodes\":[", numa_mode(mode, sizeof(mode)));
	for (unsigned i = 0; zone_node_info(i, &zi); i++) {
		fmt_printf(b, "%s{\"node\":%d,\"pages\":%lu,\"free_pages\":%lu", i ? "," : "",
			   numa_node_id(i), ul(zi.pages), ul(zi.free_pages));
		node_counters(b, i, true);
		fmt_printf(b, "}");
	}
	fmt_printf(b, "]},");
}
