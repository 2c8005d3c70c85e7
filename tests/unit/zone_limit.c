/*
 * zone_limit.c — unit tests for the zone under a finite RLIMIT_AS or
 * RLIMIT_DATA (src/zone/zone.c: zone_region_bytes, __zone_open,
 * zone_give_back), driven directly with the OS hooks stubbed: the limit
 * and the machine's memory are made up, and mprotect and munmap are
 * counted (and checked never to run under the zone lock) before the real
 * calls are made.
 *
 * zone_init() sets process globals; Criterion runs each test in a process
 * of its own, and the fixture restores the hooks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define ZONE_BYTES (64 * MiB)    /* 16 order-10 blocks */

static struct os_hooks saved_hooks;
static uint64_t stub_limit = UINT64_MAX, stub_phys;

static uint64_t mem_limit_stub(void) { return stub_limit; }
static uint64_t phys_bytes_stub(void) { return stub_phys; }

static void save_hooks(void)
{
	saved_hooks = os;
	os.mem_limit = mem_limit_stub;
	os.phys_bytes = phys_bytes_stub;
}

static void restore_hooks(void)
{
	os = saved_hooks;
}

TestSuite(zone_limit, .init = save_hooks, .fini = restore_hooks, .timeout = 120);

static void validate(uint64_t used, const char *when)
{
	char why[256] = "";
	int rc = zone_validate(used, why, sizeof(why));
	cr_assert_eq(rc, 0, "zone_validate(used=%lu) %s: %s", (unsigned long)used, when, why);
}

/* ---- the size rule ------------------------------------------------------- */

/* What the README promises: unlimited, the machine's memory up to 64 GiB;
 * under a limit L, the largest multiple of 4 MiB whose pages and 64-byte
 * descriptors fit in L / 8, and no region below 4 MiB; a configured
 * region_size as given. */
Test(zone_limit, region_size_rule)
{
	static const struct {
		uint64_t phys, limit, configured, want;
	} cases[] = {
		{ 16 * GiB, UINT64_MAX, 0, 16 * GiB },      /* unlimited: memory */
		{ 256 * GiB, UINT64_MAX, 0, 64 * GiB },     /* ... at most 64 GiB */
		{ 0, UINT64_MAX, 0, 1 * GiB },              /* memory unknown */
		{ 23 * GiB, 2 * GiB, 0, 252 * MiB },        /* ulimit -v 2097152 */
		{ 23 * GiB, 200 * MiB, 0, 24 * MiB },       /* ulimit -v 204800 */
		{ 23 * GiB, 33 * MiB, 0, 4 * MiB },         /* one block fits */
		{ 23 * GiB, 32 * MiB, 0, 0 },               /* 4 MiB + descriptors do not */
		{ 23 * GiB, 1 * MiB, 0, 0 },
		{ 23 * GiB, 0, 0, 0 },
		{ 1 * GiB, 64 * GiB, 0, 1 * GiB },          /* memory below the share */
		{ 23 * GiB, 2 * GiB, 1 * GiB, 1 * GiB },    /* configured: kept */
		{ 23 * GiB, UINT64_MAX, 8 * MiB, 8 * MiB },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		stub_phys = cases[i].phys;
		stub_limit = cases[i].limit;
		uint64_t got = zone_region_bytes(cases[i].configured);
		cr_assert_eq(got, cases[i].want, "case %zu: %lu bytes, want %lu", i,
			     (unsigned long)got, (unsigned long)cases[i].want);
		if (cases[i].limit == UINT64_MAX || cases[i].configured || cases[i].phys < GiB * 2)
			continue;
		/* The share holds the region, its descriptors and its live
		 * bytes, and one more block would not fit. */
		uint64_t share = cases[i].limit / 8, cost = got + got / PAGE_SIZE * 65;
		uint64_t more = (got + MAX_BLOCK_BYTES) + (got + MAX_BLOCK_BYTES) / PAGE_SIZE * 65;
		cr_assert_leq(cost, share, "case %zu: %lu bytes over the share %lu", i,
			      (unsigned long)cost, (unsigned long)share);
		cr_assert_gt(more, share, "case %zu: another block would fit", i);
	}
}

/* ---- opening the region as the frontier advances --------------------------- */

static unsigned mprotect_calls, mprotect_fail_after = ~0u;
static uintptr_t mprotect_last;

static int mprotect_counting(void *addr, size_t len, int prot)
{
	cr_assert_eq(mp_tls.in_zone, 0, "mprotect under the zone lock");
	cr_assert_eq(len, MAX_BLOCK_BYTES);
	cr_assert_eq(prot, PROT_READ | PROT_WRITE);
	cr_assert_eq(((uintptr_t)addr - zg.base) % MAX_BLOCK_BYTES, 0);
	mprotect_last = (uintptr_t)addr;
	if (++mprotect_calls > mprotect_fail_after) {
		errno = ENOMEM;     /* what RLIMIT_DATA answers */
		return -1;
	}
	return saved_hooks.mprotect(addr, len, prot);
}

/* The protection of the mapping holding addr, from /proc/self/maps
 * ("rw-p", "---p"), or "" if nothing is mapped there. */
static const char *prot_at(uintptr_t addr)
{
	static char perms[8];
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");

	perms[0] = '\0';
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char p[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, p) == 3 && addr >= lo && addr < hi) {
			strcpy(perms, p);
			break;
		}
	}
	fclose(f);
	return perms;
}

static void setup_limited_zone(uint64_t bytes)
{
	options_defaults(&opt);
	cpu_init();
	stub_limit = 1 * GiB;
	os.mprotect = mprotect_counting;
	cr_assert_eq(zone_init(bytes), 0);
	cr_assert_eq(zg.bytes, bytes);
	cr_assert_eq(zg.base % MAX_BLOCK_BYTES, 0);
}

/* Under a limit the region is reserved PROT_NONE (RLIMIT_DATA does not
 * count it) and made writable one 4 MiB block at a time, as carved. */
Test(zone_limit, region_opens_as_carved)
{
	setup_limited_zone(ZONE_BYTES);
	cr_assert_str_eq(prot_at(zg.base), "---p", "the reservation is not PROT_NONE");
	cr_assert_eq(mprotect_calls, 0, "opened before any allocation");

	struct page_desc *pd = zone_alloc(0, 1);
	cr_assert_not_null(pd);
	cr_assert_eq(mprotect_calls, 1);
	cr_assert_eq(mprotect_last, zg.base);
	cr_assert_str_eq(prot_at(zg.base), "rw-p");
	cr_assert_str_eq(prot_at(zg.base + MAX_BLOCK_BYTES), "---p", "opened more than a block");
	memset(desc_to_addr(pd), 0x11, PAGE_SIZE);
	zone_free_block(pd, 0);

	/* Every block, through both entry points: one mprotect each. */
	unsigned n = 0;
	while ((pd = zone_alloc(MAX_ORDER - 1, MAX_BLOCK_PAGES)) != NULL) {
		memset(desc_to_addr(pd), 0x22, MAX_BLOCK_BYTES);
		n++;
		if (n == 8)
			break;
	}
	struct page_desc *head, *tail;
	n += zone_take_batch(MAX_BLOCK_PAGES, 64, 64, &head, &tail);
	cr_assert_eq(n, ZONE_BYTES / MAX_BLOCK_BYTES, "%u blocks", n);
	cr_assert_eq(mprotect_calls, ZONE_BYTES / MAX_BLOCK_BYTES);
	for (struct page_desc *b = head; b; b = b->next)
		memset(desc_to_addr(b), 0x33, MAX_BLOCK_BYTES);
	cr_assert_null(zone_alloc(0, 1));
	cr_assert_eq(mprotect_calls, ZONE_BYTES / MAX_BLOCK_BYTES, "opened past the end");
	validate(ZONE_BYTES / PAGE_SIZE, "full");
	zone_free_list(head);
	validate(8 * MAX_BLOCK_PAGES, "batch freed");
}

/* An unlimited region is writable from the start: no mprotect ever. */
Test(zone_limit, unlimited_region_never_opens)
{
	options_defaults(&opt);
	cpu_init();
	os.mprotect = mprotect_counting;
	cr_assert_eq(zone_init(ZONE_BYTES), 0);
	cr_assert_str_eq(prot_at(zg.base), "rw-p");
	while (zone_alloc(MAX_ORDER - 1, MAX_BLOCK_PAGES))
		;
	cr_assert_eq(mprotect_calls, 0);
	cr_assert_eq(zone_give_back(PAGE_SIZE), 0, "gave back without a limit");
	cr_assert_eq(zg.bytes, ZONE_BYTES);
}

/* RLIMIT_DATA reached: mprotect fails and the zone is full, as if smaller;
 * once the limit allows it again, it goes on. */
Test(zone_limit, open_fails_then_recovers)
{
	setup_limited_zone(ZONE_BYTES);
	mprotect_fail_after = 2;
	struct page_desc *a = zone_alloc(MAX_ORDER - 1, MAX_BLOCK_PAGES);
	struct page_desc *b = zone_alloc(9, 300);
	struct page_desc *c = zone_alloc(9, 512);
	cr_assert(a && b && c);
	cr_assert_null(zone_alloc(MAX_ORDER - 1, MAX_BLOCK_PAGES));
	struct page_desc *head, *tail;
	cr_assert_eq(zone_take_batch(MAX_BLOCK_PAGES, 4, 4, &head, &tail), 0);
	validate(1024 + 300 + 512, "mprotect refused");
	cr_assert_eq(mp_tls.in_zone, 0);

	mprotect_fail_after = ~0u;
	struct page_desc *d = zone_alloc(MAX_ORDER - 1, MAX_BLOCK_PAGES);
	cr_assert_not_null(d);
	memset(desc_to_addr(d), 0x44, MAX_BLOCK_BYTES);
	validate(2 * 1024 + 300 + 512, "opened again");
}

/* ---- giving the tail back ------------------------------------------------ */

static unsigned munmap_calls;
static uintptr_t munmap_addr[4];
static size_t munmap_len[4];

static int munmap_counting(void *addr, size_t len)
{
	cr_assert_eq(mp_tls.in_zone, 0, "munmap under the zone lock");
	if (munmap_calls < 4) {
		munmap_addr[munmap_calls] = (uintptr_t)addr;
		munmap_len[munmap_calls] = len;
	}
	munmap_calls++;
	return saved_hooks.munmap(addr, len);
}

Test(zone_limit, give_back_unmaps_the_tail)
{
	struct zone_info zi;

	setup_limited_zone(ZONE_BYTES);
	struct page_desc *p1 = zone_alloc(0, 1), *p2 = zone_alloc(3, 5);
	cr_assert(p1 && p2);
	memset(desc_to_addr(p2), 0x55, 5 * PAGE_SIZE);
	uintptr_t base = zg.base;
	struct page_desc *descs = zg.descs;

	/* A request larger than the whole limit gets nothing. */
	os.munmap = munmap_counting;
	cr_assert_eq(zone_give_back(1 * GiB), 0);
	cr_assert_eq(zg.bytes, ZONE_BYTES);

	/* One block carved: the other 15 go, with their descriptors and
	 * the whole pages of their live bytes, and the system calls are
	 * made after the lock is dropped. */
	uintptr_t live = (uintptr_t)addr_to_live((void *)base);
	uintptr_t live_end = (uintptr_t)addr_to_live((void *)(base + ZONE_BYTES));
	uintptr_t live_keep = (uintptr_t)addr_to_live((void *)(base + MAX_BLOCK_BYTES));
	live_keep = (live_keep + PAGE_SIZE - 1) & ~(uintptr_t)(PAGE_SIZE - 1);
	live_end = (live_end + PAGE_SIZE - 1) & ~(uintptr_t)(PAGE_SIZE - 1);
	cr_assert_eq(zone_give_back(5 * MiB), ZONE_BYTES - MAX_BLOCK_BYTES);
	cr_assert_eq(zg.bytes, MAX_BLOCK_BYTES);
	cr_assert_eq(zg.pages, MAX_BLOCK_PAGES);
	cr_assert_eq(munmap_calls, live_keep < live_end ? 3 : 2);
	cr_assert_eq(munmap_addr[0], base + MAX_BLOCK_BYTES);
	cr_assert_eq(munmap_len[0], ZONE_BYTES - MAX_BLOCK_BYTES);
	cr_assert_eq(munmap_addr[1], (uintptr_t)(descs + MAX_BLOCK_PAGES));
	cr_assert_eq(munmap_len[1], (ZONE_BYTES / PAGE_SIZE - MAX_BLOCK_PAGES) * 64);
	if (live_keep < live_end) {
		cr_assert_eq(munmap_addr[2], live_keep);
		cr_assert_eq(munmap_len[2], live_end - live_keep);
		cr_assert_str_eq(prot_at(live_keep), "", "the live bytes' tail is still mapped");
	}
	cr_assert_str_eq(prot_at(base + MAX_BLOCK_BYTES), "", "the tail is still mapped");
	cr_assert_str_eq(prot_at((uintptr_t)(descs + MAX_BLOCK_PAGES)), "");
	/* the kept block's live bytes are still there */
	cr_assert_str_neq(prot_at(live), "", "the kept part's live bytes went too");
	*(volatile uint8_t *)live = 0;

	/* Live blocks stay ours; the tail's addresses do not. */
	cr_assert(zone_owns(desc_to_addr(p1)) && zone_owns(desc_to_addr(p2)));
	cr_assert(!zone_owns((void *)(base + MAX_BLOCK_BYTES)));
	zone_info(&zi);
	cr_assert_eq(zi.pages, MAX_BLOCK_PAGES);
	cr_assert_eq(zi.untouched_pages, 0);
	cr_assert_eq(zi.given_back_pages, ZONE_BYTES / PAGE_SIZE - MAX_BLOCK_PAGES);
	validate(1 + 5, "after give-back");

	/* What is left works, and ends at the new end. */
	unsigned n = 0;
	struct page_desc *pd;
	while ((pd = zone_alloc(0, 1)) != NULL) {
		cr_assert(zone_owns(desc_to_addr(pd)));
		*(volatile char *)desc_to_addr(pd) = 1;
		n++;
	}
	cr_assert_eq(n, MAX_BLOCK_PAGES - 1 - 5);
	cr_assert_eq(mprotect_calls, 1, "opened beyond the end");
	validate(MAX_BLOCK_PAGES, "remainder full");
	zone_free_block(p1, 0);
	zone_free_range(desc_pfn(p2), 5);
	validate(MAX_BLOCK_PAGES - 6, "frees after give-back");

	/* Nothing left to give (zone_validate unmaps its bitmap: count from
	 * here). */
	unsigned before = munmap_calls;
	cr_assert_eq(zone_give_back(5 * MiB), 0);
	cr_assert_eq(munmap_calls, before);
}

/* Before anything is carved the whole region goes: no region at all. */
Test(zone_limit, give_back_everything)
{
	setup_limited_zone(ZONE_BYTES);
	cr_assert_eq(zone_give_back(5 * MiB), ZONE_BYTES);
	cr_assert_eq(zg.bytes, 0);
	cr_assert_null(zone_alloc(0, 1));
	cr_assert_eq(mprotect_calls, 0);
	cr_assert(!zone_owns((void *)zg.base));
	char why[64];
	cr_assert_eq(zone_validate(0, why, sizeof(why)), 0);
}

/* A give-back while another thread has the lock dropped to open the next
 * block: that block is not unmapped under it.  The stub runs the give-back
 * from inside mprotect, where the opener waits with the lock dropped. */
static int mprotect_giving_back(void *addr, size_t len, int prot)
{
	if (mprotect_calls == 0) {
		size_t got = zone_give_back(5 * MiB);
		cr_assert_eq(got, ZONE_BYTES - MAX_BLOCK_BYTES, "gave back %zu", got);
		cr_assert_eq(zg.bytes, MAX_BLOCK_BYTES, "unmapped the block being opened");
	}
	return mprotect_counting(addr, len, prot);
}

Test(zone_limit, give_back_spares_a_block_being_opened)
{
	setup_limited_zone(ZONE_BYTES);
	os.mprotect = mprotect_giving_back;
	struct page_desc *pd = zone_alloc(2, 4);
	cr_assert_not_null(pd);
	cr_assert_eq(desc_pfn(pd), 0);
	memset(desc_to_addr(pd), 0x66, 4 * PAGE_SIZE);
	cr_assert_eq(mprotect_calls, 1);
	validate(4, "opened during a give-back");
	while (zone_alloc(2, 4))
		;
	validate(MAX_BLOCK_PAGES, "the kept block, full");
	cr_assert_eq(mprotect_calls, 1);
}

/* Threads carving, writing and freeing while the main thread gives the
 * tail back: nothing they hold is unmapped (a write would fault) and the
 * zone stays consistent.  Bounded: a fixed number of operations. */
#define RACE_THREADS 3
#define RACE_OPS 20000

static unsigned race_started;

static void *race_worker(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
	struct page_desc *held[16] = { 0 };
	unsigned order[16];

	for (unsigned i = 0; i < RACE_OPS; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		unsigned slot = x % 16;
		if (held[slot]) {
			zone_free_block(held[slot], order[slot]);
			held[slot] = NULL;
		} else {
			order[slot] = (unsigned)(x >> 8) % 6;
			held[slot] = zone_alloc(order[slot], (size_t)1 << order[slot]);
			if (held[slot]) {
				cr_assert(zone_owns(desc_to_addr(held[slot])));
				memset(desc_to_addr(held[slot]), (int)i, PAGE_SIZE << order[slot]);
			}
		}
		if (i == 1000)
			__atomic_add_fetch(&race_started, 1, __ATOMIC_RELEASE);
	}
	for (unsigned s = 0; s < 16; s++)
		if (held[s])
			zone_free_block(held[s], order[s]);
	return NULL;
}

Test(zone_limit, give_back_races_with_carving)
{
	pthread_t t[RACE_THREADS];

	setup_limited_zone(ZONE_BYTES);
	for (uintptr_t i = 0; i < RACE_THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, race_worker, (void *)(i + 1)), 0);
	while (__atomic_load_n(&race_started, __ATOMIC_ACQUIRE) < RACE_THREADS)
		sched_yield();
	zone_give_back(5 * MiB);
	for (unsigned i = 0; i < RACE_THREADS; i++)
		pthread_join(t[i], NULL);
	validate(0, "after the race");
	cr_assert_gt(zg.bytes, 0, "the carved part was given back");
}
