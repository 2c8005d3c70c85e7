/*
 * numa.c — unit tests for src/zone/numa.c and the per-node zones: the
 * zonelists under each memory policy (injected topologies and policies),
 * the sysfs parsing, numa:auto on a made-up two-node machine (sysfs,
 * get_mempolicy and mbind stubbed through the OS hooks), mbind refused,
 * numa:fake=N placement, fallback and counters, and the validator on
 * every node.
 *
 * The machine has one node, so the real policy paths cannot run here: the
 * hooks give numa_init the answers a two-node machine under numactl would.
 * Placement tests pin the thread with sched_setaffinity (CPUs 0 and 1).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/mempolicy.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "zone/zone_impl.h"

static struct os_hooks saved_hooks;

static void save_hooks(void)
{
	saved_hooks = os;
}

static void restore_hooks(void)
{
	os = saved_hooks;
}

TestSuite(numa, .init = save_hooks, .fini = restore_hooks, .timeout = 120);

/* ---- the zonelists, from injected topologies ---------------------------- */

/* Four nodes in a ring: 0-1 and 2-3 near (15), 1-2 and 3-0 far (25),
 * 0-2 and 1-3 farthest (30). */
static void ring4(struct numa_topo *t)
{
	static const uint8_t d[4][4] = {
		{ 10, 15, 30, 25 }, { 15, 10, 25, 30 }, { 30, 25, 10, 15 }, { 25, 30, 15, 10 },
	};
	memset(t, 0, sizeof(*t));
	t->nr = 4;
	for (unsigned i = 0; i < 4; i++) {
		t->id[i] = (int)i;
		memcpy(t->dist[i], d[i], 4);
	}
}

static void expect_list(const struct numa_lists *l, unsigned local, const char *want)
{
	char got[NUMA_MAX_NODES + 1];
	for (unsigned i = 0; i < l->len[local]; i++)
		got[i] = (char)('0' + l->zl[local][i]);
	got[l->len[local]] = '\0';
	cr_assert_str_eq(got, want, "zonelist of node %u: %s, expected %s", local, got, want);
}

Test(numa, default_policy_orders_by_distance)
{
	struct numa_topo t;
	struct numa_lists l;

	ring4(&t);
	numa_build_lists(&t, MPOL_DEFAULT, 0, &l);
	expect_list(&l, 0, "0132");
	expect_list(&l, 1, "1023");
	expect_list(&l, 2, "2310");
	expect_list(&l, 3, "3201");
	cr_assert_eq(l.il_len, 0);
	numa_build_lists(&t, MPOL_LOCAL, 0, &l);
	expect_list(&l, 2, "2310");
}

Test(numa, bind_never_leaves_the_set)
{
	struct numa_topo t;
	struct numa_lists l;

	ring4(&t);
	numa_build_lists(&t, MPOL_BIND, (1u << 2) | (1u << 3), &l);
	expect_list(&l, 0, "32");    /* the nearest allowed node first */
	expect_list(&l, 1, "23");
	expect_list(&l, 2, "23");
	expect_list(&l, 3, "32");
}

Test(numa, preferred_first_then_by_its_distance)
{
	struct numa_topo t;
	struct numa_lists l;

	ring4(&t);
	numa_build_lists(&t, MPOL_PREFERRED, 1u << 2, &l);
	for (unsigned local = 0; local < 4; local++)
		expect_list(&l, local, "2310");
}

Test(numa, preferred_many_set_first_then_the_rest)
{
	struct numa_topo t;
	struct numa_lists l;

	ring4(&t);
	numa_build_lists(&t, MPOL_PREFERRED_MANY, (1u << 1) | (1u << 2), &l);
	expect_list(&l, 0, "1203");
	expect_list(&l, 3, "2130");
}

Test(numa, interleave_rotates_over_the_set)
{
	struct numa_topo t;
	struct numa_lists l;

	ring4(&t);
	numa_build_lists(&t, MPOL_INTERLEAVE, (1u << 0) | (1u << 2) | (1u << 3), &l);
	cr_assert_eq(l.il_len, 3);
	const uint8_t want[6] = { 0, 2, 3, 0, 2, 3 };
	cr_assert_arr_eq(l.il, want, 6, "interleave list, twice over");
}

Test(numa, empty_or_foreign_set_is_the_default)
{
	struct numa_topo t;
	struct numa_lists l;

	ring4(&t);
	numa_build_lists(&t, MPOL_BIND, 0, &l);
	expect_list(&l, 1, "1023");
	numa_build_lists(&t, MPOL_BIND, 1u << 9, &l);    /* no such node */
	expect_list(&l, 1, "1023");
}

Test(numa, parse_list)
{
	uint64_t m;

	cr_assert(numa_parse_list("0-1\n", &m, 64));
	cr_assert_eq(m, 3);
	cr_assert(numa_parse_list("0,2-4,7", &m, 64));
	cr_assert_eq(m, 0x9d);
	cr_assert(numa_parse_list("", &m, 64));
	cr_assert_eq(m, 0);
	cr_assert(numa_parse_list("62-70", &m, 64));
	cr_assert_eq(m, 3ull << 62, "bits past nbits are ignored");
	cr_assert_not(numa_parse_list("0-", &m, 64));
	cr_assert_not(numa_parse_list("a", &m, 64));
	cr_assert_not(numa_parse_list("3-1", &m, 64));
	cr_assert_not(numa_parse_list("1 2", &m, 64));
}

/* ---- a made-up two-node machine ------------------------------------------ */

static int fake_mode = MPOL_DEFAULT;
static unsigned long fake_mask;
static int mbind_errno;           /* 0: mbind succeeds */
static unsigned mbind_calls, mbind_preferred;
static bool sysfs_missing;

/* Nodes 0 and 1 (the kernel's numbers 0 and 2, to check the mapping), CPU
 * 0 on the first and CPU 1 on the second. */
static long stub_read_text(const char *path, char *buf, size_t cap)
{
	const char *text = NULL;

	if (sysfs_missing)
		return -1;
	if (strstr(path, "node/online"))
		text = "0,2\n";
	else if (strstr(path, "node0/cpulist"))
		text = "0\n";
	else if (strstr(path, "node2/cpulist"))
		text = "1\n";
	else if (strstr(path, "node0/distance"))
		text = "10 21\n";
	else if (strstr(path, "node2/distance"))
		text = "21 10\n";
	if (!text)
		return -1;
	size_t n = strlen(text) < cap - 1 ? strlen(text) : cap - 1;
	memcpy(buf, text, n);
	buf[n] = '\0';
	return (long)n;
}

static long stub_get_mempolicy(int *mode, unsigned long *mask, unsigned long maxnode)
{
	(void)maxnode;
	*mode = fake_mode;
	mask[0] = fake_mask;
	return 0;
}

static long stub_mbind(void *addr, unsigned long len, int mode, const unsigned long *mask,
		       unsigned long maxnode, unsigned flags)
{
	(void)addr; (void)len; (void)mask; (void)maxnode; (void)flags;
	mbind_calls++;
	if (mode == MPOL_PREFERRED)
		mbind_preferred++;
	if (mbind_errno) {
		errno = mbind_errno;
		return -1;
	}
	return 0;
}

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	cr_assert_eq(sched_setaffinity(0, sizeof(s), &s), 0, "cannot pin to CPU %d", cpu);
	sched_yield();
}

/* numa_init and zone_init as the library runs them, under MAGPAGE_CONF
 * numa (conf), on the stubbed machine. */
static void setup(const char *conf, uint64_t bytes)
{
	options_defaults(&opt);
	cr_assert_eq(options_parse(&opt, conf, 2), 0, "MAGPAGE_CONF %s", conf);
	os.read_text = stub_read_text;
	os.get_mempolicy = stub_get_mempolicy;
	os.mbind = stub_mbind;
	os.ncpus = saved_hooks.ncpus;
	cpu_init();
	numa_init();
	cr_assert_eq(zone_init(bytes), 0);
}

static void validate(uint64_t used, const char *when)
{
	char why[256] = "";
	cr_assert_eq(zone_validate(used, why, sizeof(why)), 0, "zone_validate %s: %s", when, why);
}

static unsigned node_of(const struct page_desc *pd)
{
	return zone_node_of_pfn(desc_pfn(pd));
}

Test(numa, auto_two_nodes_binds_each_part)
{
	setup("numa:auto", 16u << 20);
	cr_assert_eq(zg.nodes, 2);
	cr_assert_eq(zg.node_pages, (8u << 20) >> PAGE_SHIFT);
	cr_assert_eq(mbind_calls, 2, "one mbind per node's part");
	cr_assert_eq(mbind_preferred, 2);
	cr_assert_eq(numa_node_id(1), 2, "the kernel's node number");
	pin(1);
	struct page_desc *pd = zone_alloc(0, 1);
	cr_assert_eq(node_of(pd), 1, "CPU 1 allocates from its own node");
	pin(0);
	pd = zone_alloc(0, 1);
	cr_assert_eq(node_of(pd), 0);
	validate(2, "two blocks out");
}

/* zone_alloc_listed walks the zonelist as zone_alloc does, and stops
 * where zone_alloc would carve: CPU 1's node has nothing listed but room
 * to carve, so node 0's listed pages are not handed to it. */
Test(numa, a_listed_allocation_stops_where_zone_alloc_would_carve)
{
	setup("numa:auto", 16u << 20);
	pin(0);
	struct page_desc *here = zone_alloc(0, 1);
	cr_assert_eq(node_of(here), 0);
	pin(1);
	cr_assert_null(zone_alloc_listed(0, 1), "CPU 1 was listed a page of node 0 before "
		       "its own node carved");
	struct page_desc *mine = zone_alloc(0, 1);
	cr_assert_eq(node_of(mine), 1);
	struct page_desc *listed = zone_alloc_listed(0, 1);
	cr_assert_not_null(listed);
	cr_assert_eq(node_of(listed), 1, "a listed page of node %u on CPU 1", node_of(listed));
	validate(3, "three pages out");
}

Test(numa, mbind_refused_gives_one_zone)
{
	int pipefd[2], saved_err = dup(2);
	char line[512] = "";

	cr_assert_eq(pipe(pipefd), 0);
	dup2(pipefd[1], 2);
	mbind_errno = EPERM;
	setup("numa:auto,verbose:1", 16u << 20);
	dup2(saved_err, 2);
	close(pipefd[1]);
	ssize_t n = read(pipefd[0], line, sizeof(line) - 1);
	line[n > 0 ? n : 0] = '\0';
	cr_assert_eq(zg.nodes, 1);
	cr_assert_eq(zg.node_pages, 0);
	cr_assert_not(numa_multi);
	cr_assert_str_eq(line, "libmagpage: numa: 2 nodes, one zone: mbind refused\n",
			 "the one line under verbose:1");
	pin(1);
	cr_assert_eq(node_of(zone_alloc(0, 1)), 0);
	validate(1, "one zone");
}

Test(numa, no_sysfs_gives_one_zone)
{
	sysfs_missing = true;
	setup("numa:auto", 16u << 20);
	cr_assert_eq(zg.nodes, 1);
	cr_assert_eq(mbind_calls, 0);
}

Test(numa, off_is_one_zone)
{
	setup("numa:off", 16u << 20);
	cr_assert_eq(zg.nodes, 1);
	cr_assert_eq(mbind_calls, 0);
	cr_assert_not(numa_multi);
}

Test(numa, membind_never_falls_back_outside)
{
	fake_mode = MPOL_BIND | MPOL_F_STATIC_NODES;
	fake_mask = 1ul << 2;                      /* the kernel's node 2: index 1 */
	setup("numa:auto", 8u << 20);              /* 1024 pages per node */
	pin(0);
	unsigned n = 0;
	struct page_desc *pd;
	while ((pd = zone_alloc(0, 1)) != NULL) {
		cr_assert_eq(node_of(pd), 1, "block %u from node %u outside the set", n, node_of(pd));
		n++;
	}
	cr_assert_eq(n, 1024, "the set's node is used up, and nothing more");
	cr_assert_eq(numa_stats[1].numa_hit, 1024);
	cr_assert_eq(numa_stats[1].other_node, 1024, "CPU 0 is on the other node");
	cr_assert_eq(numa_stats[0].numa_hit + numa_stats[0].numa_miss, 0);
	validate(1024, "set exhausted");
}

Test(numa, preferred_node_first)
{
	fake_mode = MPOL_PREFERRED;
	fake_mask = 1ul << 2;
	setup("numa:auto", 8u << 20);
	pin(0);
	cr_assert_eq(node_of(zone_alloc(0, 1)), 1);
	struct page_desc *head, *tail;
	cr_assert_gt(zone_take_batch(1, 16, 16, &head, &tail), 0);
	cr_assert_eq(node_of(head), 1);
}

Test(numa, interleave_alternates)
{
	fake_mode = MPOL_INTERLEAVE;
	fake_mask = (1ul << 0) | (1ul << 2);
	setup("numa:auto", 16u << 20);
	pin(0);
	unsigned seen[2] = { 0, 0 };
	unsigned prev = 2;
	for (unsigned i = 0; i < 64; i++) {
		unsigned node = node_of(zone_alloc(0, 1));
		cr_assert_neq(node, prev, "allocation %u: node %u twice in a row", i, node);
		seen[node]++;
		prev = node;
	}
	cr_assert_eq(seen[0], 32);
	cr_assert_eq(seen[1], 32);
}

/* ---- numa:fake=N ------------------------------------------------------------ */

Test(numa, fake2_places_by_cpu_and_falls_back)
{
	setup("numa:fake=2", 8u << 20);
	cr_assert_eq(zg.nodes, 2);
	cr_assert_eq(mbind_calls, 0, "fake binds nothing");
	pin(0);
	for (unsigned i = 0; i < 1024; i++)
		cr_assert_eq(node_of(zone_alloc(0, 1)), 0, "block %u", i);
	/* node 0 is used up: the next comes from node 1, a miss */
	cr_assert_eq(node_of(zone_alloc(0, 1)), 1);
	cr_assert_eq(numa_stats[0].numa_hit, 1024);
	cr_assert_eq(numa_stats[0].local_node, 1024);
	cr_assert_eq(numa_stats[1].numa_miss, 1);
	cr_assert_eq(numa_stats[1].other_node, 1);
	cr_assert_eq(numa_stats[0].numa_foreign, 1);
	validate(1025, "node 0 full, one block of node 1 out");
}

Test(numa, fake_cpu_to_node_map)
{
	setup("numa:fake=4", 32u << 20);
	cr_assert_eq(zg.nodes, 4);
	/* 2 CPUs: c * 4 / 2 = node 0 and node 2 */
	pin(0);
	cr_assert_eq(numa_local_node(), 0);
	pin(1);
	cr_assert_eq(numa_local_node(), 2);
	cr_assert_eq(node_of(zone_alloc(0, 1)), 2);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(numa_node_id(i), (int)i);
}

Test(numa, region_too_small_for_the_nodes)
{
	setup("numa:fake=4", 8u << 20);     /* two 4 MiB blocks for four nodes */
	cr_assert_eq(zg.nodes, 1);
	cr_assert_not(numa_multi);
}

/* deterministic xorshift64* */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Random allocations and frees from both CPUs on three fake nodes (CPU 0
 * on node 0, CPU 1 on node 1), each node's part small enough to run dry,
 * so that fallback happens and reaches node 2, which no CPU is on: the
 * validator checks every node as it goes, and at the end all is back. */
Test(numa, validator_on_every_node_after_random_ops)
{
	enum { SLOTS = 512 };
	static struct page_desc *held[SLOTS];
	static size_t held_pages[SLOTS];
	uint64_t used = 0;
	unsigned nodes_seen = 0;

	setup("numa:fake=3", 12u << 20);     /* 1024 pages per node */
	for (unsigned step = 0; step < 4000; step++) {
		if (step % 500 == 0)
			pin((int)((step / 500) & 1));
		unsigned i = (unsigned)(rnd() % SLOTS);
		if (held[i]) {
			if (rnd() & 1) {
				zone_free_range(desc_pfn(held[i]), held_pages[i]);
			} else {
				held[i]->next = NULL;
				held[i]->npages = (uint32_t)held_pages[i];
				zone_free_list(held[i]);
			}
			used -= held_pages[i];
			held[i] = NULL;
		} else {
			size_t npages = 1 + (size_t)(rnd() % 16);
			struct page_desc *pd = zone_alloc(ilog2_ceil(npages), npages);
			if (!pd)
				continue;
			nodes_seen |= 1u << node_of(pd);
			held[i] = pd;
			held_pages[i] = npages;
			used += npages;
		}
		if (step % 100 == 0)
			validate(used, "during random operations");
	}
	cr_assert_eq(nodes_seen, 0x7, "every node served (fallback reached node 2): %x",
		     nodes_seen);
	for (unsigned i = 0; i < SLOTS; i++)
		if (held[i])
			zone_free_range(desc_pfn(held[i]), held_pages[i]);
	validate(0, "everything freed");
	struct zone_info zi;
	for (unsigned n = 0; n < 3; n++) {
		cr_assert(zone_node_info(n, &zi));
		cr_assert_eq(zi.free_pages, zi.pages, "node %u: every page back", n);
	}
	cr_assert_not(zone_node_info(3, &zi));
}

/* The validator notices a block filed on another node's lists. */
Test(numa, validator_catches_a_block_on_the_wrong_node)
{
	char why[256] = "";

	setup("numa:fake=2", 8u << 20);
	pin(1);
	struct page_desc *b = zone_alloc(0, 1);
	cr_assert_eq(node_of(b), 1);
	validate(1, "one block of node 1 out");
	/* file node 1's block on node 0's clean order-0 list by hand */
	struct zone *z0 = &zones[0];
	b->flags = PG_BUDDY | PG_ZERO;
	b->order = 0;
	b->prev = NULL;
	b->next = z0->free_area[0].clean;
	if (b->next)
		b->next->prev = b;
	z0->free_area[0].clean = b;
	z0->free_area[0].nr_free++;
	z0->nr_free_pages++;
	cr_assert_neq(zone_validate(0, why, sizeof(why)), 0, "a block on the wrong node's list");
	cr_assert(strstr(why, "belongs to node 1") != NULL, "reason: %s", why);
}
