/*
 * numa.c — nodes: the machine's NUMA topology, the process's memory policy,
 * and the zonelists built from them (Linux's pg_data_t and node_zonelists).
 *
 * The region is split into one zone per node (zone.c lays it out); a
 * thread allocates from its CPU's node first and falls back through the
 * other nodes in order of distance.  With one node nothing of this is on a
 * path: numa_route answers {0} at once, and the free fast path is the same
 * code as before (pagealloc's pa_freehop table).
 *
 * Where the topology comes from.  The kernel publishes it in sysfs, which
 * is what libnuma itself reads: /sys/devices/system/node/online (the node
 * numbers), nodeN/cpulist and nodeN/distance.  libmagpage reads those
 * files itself with open/read into stack buffers, and makes the two system
 * calls it needs (get_mempolicy, mbind) raw, instead of linking or
 * dlopen()ing libnuma, because:
 *  - it is preloaded into any program and must load where libnuma1 is not
 *    installed (tests/integration/exports.sh: libc is its only NEEDED);
 *  - dlopen() at start-up would run inside the program's first malloc:
 *    maybe inside a signal handler, or on a thread that holds our init lock
 *    while another thread, inside dlopen() with the loader lock held,
 *    mallocs and waits for that init lock (a deadlock); and libnuma's
 *    constructor allocates;
 *  - three files and two system calls are all of libnuma it would use.
 * (numactl and libnuma-dev stay installed for the benchmarks' pinning.)
 * Missing pieces (no sysfs, a machine with more than NUMA_MAX_NODES nodes,
 * mbind refused) leave one zone, said in one line under verbose:1.
 *
 * numa:fake=N makes the topology up, as the kernel's numa=fake does: CPU c
 * belongs to node c * N / ncpus, distances 10 and 20, and the region is
 * split in N parts that are bound to nothing.  The process's memory policy
 * is read for numa:auto only (under fake it would name real nodes).
 */
#include <linux/mempolicy.h>
#include <string.h>

#include "internal.h"

struct numa_stats numa_stats[NUMA_MAX_NODES];
bool numa_multi;

static struct numa_topo topo = { .nr = 1 };
static struct numa_lists lists = { .len = { 1 } };
static bool fake;
static uint32_t il_next;          /* atomic: the interleave cursor */

/* ---- the zonelists ------------------------------------------------------ */

/* Appends the nodes of mask not yet in out[], nearest to from first (ties:
 * the lower index). */
static unsigned add_by_distance(const struct numa_topo *t, unsigned from, uint64_t mask,
				uint8_t *out, unsigned n)
{
	for (;;) {
		unsigned best = NUMA_MAX_NODES;
		for (unsigned i = 0; i < t->nr; i++) {
			bool taken = false;
			for (unsigned k = 0; k < n; k++)
				taken |= out[k] == i;
			if (taken || !(mask & (1ull << i)))
				continue;
			if (best == NUMA_MAX_NODES || t->dist[from][i] < t->dist[from][best] ||
			    (i == from && t->dist[from][i] == t->dist[from][best]))
				best = i;
		}
		if (best == NUMA_MAX_NODES)
			return n;
		out[n++] = (uint8_t)best;
	}
}

void numa_build_lists(const struct numa_topo *t, int mode, uint64_t mask, struct numa_lists *out)
{
	uint64_t all = t->nr >= 64 ? ~0ull : (1ull << t->nr) - 1;

	memset(out, 0, sizeof(*out));
	mask &= all;
	if (!mask)
		mode = MPOL_DEFAULT;
	for (unsigned local = 0; local < t->nr; local++) {
		uint8_t *zl = out->zl[local];
		unsigned n = 0, first = local;
		switch (mode) {
		case MPOL_BIND:
			n = add_by_distance(t, local, mask, zl, 0);
			break;
		case MPOL_PREFERRED:
			first = (unsigned)__builtin_ctzll(mask);
			zl[n++] = (uint8_t)first;
			n = add_by_distance(t, first, all, zl, n);
			break;
		case MPOL_PREFERRED_MANY:
			n = add_by_distance(t, local, mask, zl, 0);
			n = add_by_distance(t, local, all, zl, n);
			break;
		default:              /* default, local; interleave below */
			n = add_by_distance(t, local, all, zl, 0);
			break;
		}
		out->len[local] = (uint8_t)n;
	}
	if (mode == MPOL_INTERLEAVE || mode == 6 /* MPOL_WEIGHTED_INTERLEAVE */) {
		unsigned n = 0;
		for (unsigned i = 0; i < t->nr; i++)
			if (mask & (1ull << i))
				out->il[n++] = (uint8_t)i;
		memcpy(out->il + n, out->il, n);
		out->il_len = (uint8_t)n;
	}
}

/* ---- sysfs --------------------------------------------------------------- */

/* Walks a sysfs list ("0-3,8,10-11"), calling each(lo, hi, arg) per range;
 * false if malformed. */
static bool walk_list(const char *s, void (*each)(unsigned long, unsigned long, void *), void *arg)
{
	while (*s && *s != '\n') {
		unsigned long lo = 0, hi;
		if (*s < '0' || *s > '9')
			return false;
		while (*s >= '0' && *s <= '9')
			lo = lo * 10 + (unsigned long)(*s++ - '0');
		hi = lo;
		if (*s == '-') {
			s++;
			if (*s < '0' || *s > '9')
				return false;
			hi = 0;
			while (*s >= '0' && *s <= '9')
				hi = hi * 10 + (unsigned long)(*s++ - '0');
		}
		if (hi < lo || hi > 1u << 20)
			return false;
		each(lo, hi, arg);
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return false;
	}
	return true;
}

struct mask_arg {
	uint64_t *mask;
	unsigned nbits;
};

static void set_bits(unsigned long lo, unsigned long hi, void *arg)
{
	struct mask_arg *m = arg;
	for (unsigned long i = lo; i <= hi && i < m->nbits; i++)
		*m->mask |= 1ull << i;
}

bool numa_parse_list(const char *s, uint64_t *mask, unsigned nbits)
{
	struct mask_arg m = { mask, nbits };
	*mask = 0;
	return walk_list(s, set_bits, &m);
}

struct cpus_arg {
	uint8_t node;
	uint8_t *cpu_node;
};

static void set_cpus(unsigned long lo, unsigned long hi, void *arg)
{
	struct cpus_arg *c = arg;
	for (unsigned long i = lo; i <= hi && i < NUMA_MAX_CPUS; i++)
		c->cpu_node[i] = c->node;
}

/* CPUs of a cpulist into cpu_node[] (beyond NUMA_MAX_CPUS: ignored). */
static bool parse_cpulist(const char *s, uint8_t node, uint8_t *cpu_node)
{
	struct cpus_arg c = { node, cpu_node };
	return walk_list(s, set_cpus, &c);
}

#define SYS_NODE "/sys/devices/system/node/"

/* The machine's nodes; NULL, or why not, in *why. */
static bool read_topology(struct numa_topo *t, const char **why)
{
	char buf[1024], path[96];
	uint64_t online;

	memset(t, 0, sizeof(*t));
	if (os.read_text(SYS_NODE "online", buf, sizeof(buf)) <= 0 ||
	    !numa_parse_list(buf, &online, 64)) {
		*why = "cannot read " SYS_NODE "online";
		return false;
	}
	if (__builtin_popcountll(online) > NUMA_MAX_NODES) {
		*why = "more nodes than libmagpage keeps zones for (16)";
		return false;
	}
	for (unsigned id = 0; id < 64; id++)
		if (online & (1ull << id))
			t->id[t->nr++] = (int)id;
	if (t->nr == 1)
		return true;    /* one node: every CPU is its, nothing more to read */
	for (unsigned i = 0; i < t->nr; i++) {
		fmt_snprintf(path, sizeof(path), SYS_NODE "node%d/cpulist", t->id[i]);
		if (os.read_text(path, buf, sizeof(buf)) < 0 ||
		    !parse_cpulist(buf, (uint8_t)i, t->cpu_node)) {
			*why = "cannot read a node's cpulist";
			return false;
		}
		/* "10 21 21 10": one entry per online node, in node order */
		fmt_snprintf(path, sizeof(path), SYS_NODE "node%d/distance", t->id[i]);
		if (os.read_text(path, buf, sizeof(buf)) < 0) {
			*why = "cannot read a node's distances";
			return false;
		}
		const char *s = buf;
		for (unsigned j = 0; j < t->nr; j++) {
			unsigned d = 0;
			while (*s == ' ')
				s++;
			if (*s < '0' || *s > '9') {
				*why = "malformed node distances";
				return false;
			}
			while (*s >= '0' && *s <= '9')
				d = d * 10 + (unsigned)(*s++ - '0');
			t->dist[i][j] = (uint8_t)(d > 255 ? 255 : d);
		}
	}
	return true;
}

/* The process's memory policy, as a mode and a mask over node indices. */
static int read_policy(const struct numa_topo *t, uint64_t *mask)
{
	unsigned long kmask[1024 / (8 * sizeof(unsigned long))] = { 0 };
	int mode = MPOL_DEFAULT;

	*mask = 0;
	if (os.get_mempolicy(&mode, kmask, 1024) != 0)
		return MPOL_DEFAULT;
	mode &= ~(MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING);
	for (unsigned i = 0; i < t->nr; i++) {
		unsigned id = (unsigned)t->id[i];
		if (kmask[id / (8 * sizeof(unsigned long))] & (1ul << (id % (8 * sizeof(unsigned long)))))
			*mask |= 1ull << i;
	}
	return mode;
}

/* ---- set-up -------------------------------------------------------------- */

static void one_node(void)
{
	memset(&topo, 0, sizeof(topo));
	topo.nr = 1;
	topo.dist[0][0] = 10;
	numa_build_lists(&topo, MPOL_DEFAULT, 0, &lists);
	numa_multi = false;
	fake = false;
}

unsigned numa_collapse(const char *why)
{
	unsigned had = topo.nr;

	one_node();
	if (opt.verbose && why)
		mp_log("numa: %u nodes, one zone: %s", had, why);
	return 1;
}

void numa_init(void)
{
	const char *why = NULL;

	one_node();
	memset(numa_stats, 0, sizeof(numa_stats));
	if (opt.numa == NUMA_OFF)
		return;
	if (opt.numa >= 2) {
		unsigned n = opt.numa > NUMA_MAX_NODES ? NUMA_MAX_NODES : opt.numa;
		unsigned ncpus = (unsigned)os.ncpus();
		topo.nr = n;
		for (unsigned i = 0; i < n; i++) {
			topo.id[i] = (int)i;
			for (unsigned j = 0; j < n; j++)
				topo.dist[i][j] = i == j ? 10 : 20;
		}
		for (unsigned c = 0; c < NUMA_MAX_CPUS; c++)
			topo.cpu_node[c] = c < ncpus ? (uint8_t)((uint64_t)c * n / ncpus) : 0;
		numa_build_lists(&topo, MPOL_DEFAULT, 0, &lists);
		fake = true;
		numa_multi = true;
		return;
	}
	struct numa_topo t;
	if (!read_topology(&t, &why)) {
		if (opt.verbose)
			mp_log("numa: one zone: %s", why);
		return;
	}
	if (t.nr <= 1)
		return;         /* one node: exactly as without nodes */
	uint64_t mask;
	int mode = read_policy(&t, &mask);
	topo = t;
	numa_build_lists(&topo, mode, mask, &lists);
	numa_multi = true;
}

unsigned numa_nodes(void)
{
	return topo.nr;
}

int numa_node_id(unsigned i)
{
	return i < topo.nr ? topo.id[i] : -1;
}

int numa_bind_parts(uintptr_t base, uint64_t node_pages, uint64_t pages, unsigned nodes)
{
	if (fake)
		return 0;
	for (unsigned i = 0; i < nodes; i++) {
		unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };
		unsigned id = (unsigned)topo.id[i];
		uint64_t from = i * node_pages, to = i + 1 < nodes ? from + node_pages : pages;
		mask[id / (8 * sizeof(unsigned long))] = 1ul << (id % (8 * sizeof(unsigned long)));
		/* Preferred, not bind: the node's part prefers it, and a node
		 * out of physical memory takes pages elsewhere instead of
		 * failing the fault (SIGBUS); the zones' own fallback handles a
		 * part that is used up. */
		if (os.mbind((void *)(base + (from << PAGE_SHIFT)), (to - from) << PAGE_SHIFT,
			     MPOL_PREFERRED, mask, 1024, 0) != 0) {
			if (i)
				os.mbind((void *)base, from << PAGE_SHIFT, MPOL_DEFAULT, NULL, 0, 0);
			return -1;
		}
	}
	return 0;
}

/* ---- the fast side -------------------------------------------------------- */

unsigned numa_local_node(void)
{
	if (likely(!numa_multi))
		return 0;
	int cpu = cpu_current();
	return cpu < NUMA_MAX_CPUS ? topo.cpu_node[cpu] : 0;
}

void numa_route_multi(struct numa_route *r)
{
	unsigned local = numa_local_node();
	r->local = local;
	if (unlikely(lists.il_len)) {
		unsigned k = __atomic_fetch_add(&il_next, 1, __ATOMIC_RELAXED) % lists.il_len;
		r->list = lists.il + k;
		r->len = lists.il_len;
		return;
	}
	r->list = lists.zl[local];
	r->len = lists.len[local];
}
