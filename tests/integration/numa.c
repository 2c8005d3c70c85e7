/*
 * numa.c — NUMA zones under LD_PRELOAD with MAGPAGE_CONF numa:fake=2 on a
 * one-node machine (tests/integration/CMakeLists.txt sets it, with a 16 MiB
 * region: 8 MiB, two 4 MiB blocks, per node).
 *
 * Proves: a thread pinned to CPU 0 gets blocks of node 0 and one pinned to
 * CPU 1 blocks of node 1 (magpage_node_of); magpage_node_of is -1 for
 * glibc's memory, the stack and NULL; a block freed on a CPU of the other
 * node goes back to its own node (remote_frees on that node, and the next
 * block the freeing CPU gets is still of its own node); when a node's zone
 * is used up, allocation falls back to the other node (numa_miss there,
 * numa_foreign here), and when both are, to glibc.  The counters are read
 * from the JSON report's "numa" object.  Needs CPUs 0 and 1; skips
 * otherwise.
 */
#include <sched.h>

#include "mp_test.h"

static int (*node_of)(const void *p);

static void setup(void)
{
	mp_api_load();
	node_of = (int (*)(const void *))mp_sym("magpage_node_of");
}

TestSuite(numa, .init = setup, .timeout = 60);

static bool pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof(s), &s) != 0)
		return false;
	sched_yield();
	return sched_getcpu() == cpu;
}

static void need_two_cpus(void)
{
	if (!pin(1) || !pin(0))
		cr_skip_test("CPUs 0 and 1 are needed");
	cr_assert(mp_conf_has("numa:fake=2"), "run with MAGPAGE_CONF=numa:fake=2");
}

/* Counter key of node in the JSON report's "numa" object. */
static unsigned long long node_counter(int node, const char *key)
{
	char n[32];
	const char *at = strstr(mp_report_json(), "\"numa\":{");

	cr_assert_not_null(at, "no numa object in the report");
	snprintf(n, sizeof(n), "{\"node\":%d,", node);
	at = strstr(at, n);
	cr_assert_not_null(at, "no node %d in the numa object", node);
	return mp_json_number(at, key);
}

Test(numa, each_cpu_gets_its_own_node)
{
	enum { N = 200 };
	static const size_t sizes[] = { 4096, 8192, 12288, 16384, 65536 };
	void *p[N];

	need_two_cpus();
	for (int cpu = 0; cpu < 2; cpu++) {
		cr_assert(pin(cpu));
		for (int i = 0; i < N; i++) {
			size_t size = sizes[i % 5];
			p[i] = malloc(size);
			cr_assert_not_null(p[i]);
			cr_assert_eq(node_of(p[i]), cpu, "CPU %d: block %d of %zu bytes on node %d",
				     cpu, i, size, node_of(p[i]));
			fill(p[i], size, (uint64_t)i);
		}
		for (int i = 0; i < N; i++) {
			cr_assert_pattern(p[i], sizes[i % 5], (uint64_t)i);
			free(p[i]);
		}
	}
	cr_assert_geq(node_counter(1, "local_node"), 1);
	cr_assert_geq(node_counter(0, "numa_hit"), 1);
}

Test(numa, node_of_foreign_memory)
{
	int local;
	void *small = malloc(64);

	cr_assert_eq(node_of(small), -1, "glibc's block");
	cr_assert_eq(node_of(&local), -1, "the stack");
	cr_assert_eq(node_of(NULL), -1);
	free(small);
}

Test(numa, remote_frees_return_to_their_node)
{
	enum { N = 100 };
	void *p[N];

	need_two_cpus();
	/* deltas: the process may have started on CPU 1, and what it
	 * allocated there before the test is node 1's */
	unsigned long long before = node_counter(0, "remote_frees");
	unsigned long long before1 = node_counter(1, "remote_frees");
	cr_assert(pin(0));
	for (int i = 0; i < N; i++) {
		p[i] = malloc(8192);
		cr_assert_eq(node_of(p[i]), 0);
		fill(p[i], 8192, (uint64_t)i);
	}
	cr_assert(pin(1));
	for (int i = 0; i < N; i++) {
		cr_assert_pattern(p[i], 8192, (uint64_t)i);
		free(p[i]);
	}
	cr_assert_eq(node_counter(0, "remote_frees") - before, N,
		     "each block freed on CPU 1 went back to node 0");
	cr_assert_eq(node_counter(1, "remote_frees") - before1, 0,
		     "no node 1 block was freed on CPU 0 during the test");
	/* CPU 1's cache did not take them: it still hands out node 1 */
	for (int i = 0; i < N; i++) {
		p[i] = malloc(8192);
		cr_assert_eq(node_of(p[i]), 1, "block %d", i);
	}
	for (int i = 0; i < N; i++)
		free(p[i]);
}

Test(numa, fallback_when_a_node_is_used_up)
{
	enum { MAXB = 8 };
	const size_t big = 4 * MiB;     /* a whole order-10 block, from the zone */
	void *b[MAXB];
	int n = 0, on0 = 0, on1 = 0;

	need_two_cpus();
	cr_assert(pin(0));
	/* Empty every page cache first: the per-CPU lists of preset:linux6
	 * hold up to 4 MiB each, and what start-up left there (on whichever
	 * CPU the process began) would come back to its node when the
	 * exhausted zone drains the caches, giving node 0 a whole block again
	 * after the fallback (1 run in 60 on a loaded machine). */
	mp.drain();
	unsigned long long miss = node_counter(1, "numa_miss");
	unsigned long long foreign = node_counter(0, "numa_foreign");
	/* node 0's blocks first, then node 1's, then glibc's */
	for (; n < MAXB; n++) {
		b[n] = malloc(big);
		cr_assert_not_null(b[n]);
		int node = node_of(b[n]);
		fill(b[n], big, (uint64_t)n);
		if (node == -1)
			break;
		cr_assert(node == 0 || node == 1);
		cr_assert(node == 0 || on0 > 0, "node 1 before node 0 was used");
		cr_assert(node == 1 || on1 == 0, "node 0 after a fallback to node 1");
		if (node)
			on1++;
		else
			on0++;
	}
	cr_assert_lt(n, MAXB, "the zone never ran out");
	cr_assert_geq(on0, 1);
	cr_assert_geq(on1, 1, "no fallback to node 1");
	cr_assert_eq(node_counter(1, "numa_miss") - miss, (unsigned long long)on1);
	cr_assert_eq(node_counter(0, "numa_foreign") - foreign, (unsigned long long)on1);
	cr_assert_geq(node_counter(1, "other_node"), (unsigned long long)on1);
	for (int i = 0; i <= n && i < MAXB; i++) {
		cr_assert_pattern(b[i], big, (uint64_t)i);
		free(b[i]);
	}
}
