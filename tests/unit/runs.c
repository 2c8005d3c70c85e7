/*
 * runs.c — unit tests for the CPU caches of run objects (malloc/runs.c),
 * driven through mp_malloc and mp_free.
 *
 * The caches are mapped read-only, in groups of 28 classes; a group is made
 * writable (mprotect) when the first class of it opens, once.  os.mprotect
 * is a hook: the tests count the calls made outside the zone's region (the
 * zone opens its own parts with it too), and make them fail, which is what
 * a program close to its RLIMIT_DATA sees.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "malloc/malloc_impl.h"

static struct os_hooks saved_hooks;
static unsigned outside;             /* mprotect calls outside the region */
static bool refuse;                  /* fail them */

static bool in_region(const void *p)
{
	return zg.bytes && (uintptr_t)p - zg.base < zg.bytes;
}

static int mprotect_watched(void *addr, size_t len, int prot)
{
	if (in_region(addr))
		return saved_hooks.mprotect(addr, len, prot);
	outside++;
	if (refuse) {
		errno = ENOMEM;
		return -1;
	}
	return saved_hooks.mprotect(addr, len, prot);
}

/* Starts the allocator (MAGPAGE_CONF read on the first call), then watches
 * mprotect. */
static void setup(void)
{
	setenv("MAGPAGE_CONF", "region_size:64m,purge_delay_ms:0", 1);   /* no decay */
	saved_hooks = os;
	void *p = mp_malloc(PAGE_SIZE);
	cr_assert(p && zone_owns(p), "malloc(4096) not served by the zone");
	mp_free(p);
	os.mprotect = mprotect_watched;
}

static void teardown(void)
{
	os = saved_hooks;
}

TestSuite(runs, .init = setup, .fini = teardown, .timeout = 60);

static bool have_caches(void)
{
	struct runs_stats rs;
	runs_stats(&rs);
	return runs_on && rs.cache_cpus > 0;
}

/* n objects of size bytes, each filled and checked before its free. */
static void round_of(void **p, int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		p[i] = mp_malloc(size);
		cr_assert(p[i] && zone_owns(p[i]), "malloc(%zu) #%d not served by a run", size, i);
		memset(p[i], i, size);
	}
	for (int i = 0; i < n; i++) {
		const unsigned char *b = p[i];
		cr_assert(b[0] == (unsigned char)i && b[size - 1] == (unsigned char)i,
			  "object %d of %zu bytes changed while live", i, size);
		mp_free(p[i]);
	}
}

/* A group is made writable when its first class opens, and once: a second
 * class of group 0 (4165 bytes: 4224-byte objects) costs no call, 8193
 * bytes (class 64) one more, for group 1, which 6000 bytes (class 29)
 * shares: the default waste_max's sizes take two groups.  The arrays hold
 * objects after the frees. */
Test(runs, a_group_opens_once_with_its_first_class)
{
	enum { N = 300 };
	static void *p[N];
	if (!have_caches())
		cr_skip_test("no CPU caches of run objects (no rseq or no membarrier)");
	round_of(p, N, 4101);
	cr_assert_eq(outside, 1, "%u mprotect calls for class 0's group", outside);
	struct runs_stats rs;
	runs_stats(&rs);
	cr_assert_gt(rs.cached, 0, "the open array held none of the %d objects freed", N);
	round_of(p, N, 4165);
	cr_assert_eq(outside, 1, "a second class of group 0 made %u calls in all", outside);
	round_of(p, N, 8193);
	cr_assert_eq(outside, 2, "class 64 (group 1) made %u calls in all", outside);
	round_of(p, N, 6000);
	cr_assert_eq(outside, 2, "class 29 (group 1, with class 64) made %u calls in all",
		     outside);
}

/* A group that cannot be made writable keeps its classes closed: every
 * object still goes out and comes back whole, none stays in an array or a
 * depot (the frees go to the runs), and the mprotect is not tried again
 * (each try is a failing system call) until a drain, after which the next
 * use tries and, the limit gone, opens the group. */
Test(runs, a_group_that_cannot_open_leaves_its_classes_to_the_runs)
{
	enum { N = 300, ROUNDS = 3 };
	static void *p[N];
	if (!have_caches())
		cr_skip_test("no CPU caches of run objects (no rseq or no membarrier)");
	refuse = true;
	struct runs_stats before, rs;
	runs_stats(&before);
	for (int r = 0; r < ROUNDS; r++)
		round_of(p, N, 4101);
	runs_stats(&rs);
	cr_assert_eq(outside, 1, "%u mprotect calls for %d pairs of a class that cannot open",
		     outside, N * ROUNDS);
	cr_assert_eq(rs.allocs - before.allocs, (uint64_t)N * ROUNDS);
	cr_assert_eq(rs.frees - before.frees, (uint64_t)N * ROUNDS);
	cr_assert_eq(rs.live, 0);
	cr_assert_eq(rs.cached, 0, "%llu objects cached by a closed class",
		     (unsigned long long)rs.cached);
	/* the limit gone, the group opens after a drain */
	refuse = false;
	round_of(p, N, 4101);
	cr_assert_eq(outside, 1, "a try before any drain");
	runs_drain();
	round_of(p, N, 4101);
	cr_assert_eq(outside, 2, "the group was not tried once after the drain");
	runs_stats(&rs);
	cr_assert_gt(rs.cached, 0, "the opened array held none of the %d objects freed", N);
}
