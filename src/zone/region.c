/*
 * region.c — the zone's region: reserving it, laying it out in one zone per
 * node, and, under a finite RLIMIT_AS or RLIMIT_DATA, opening it 4 MiB at a
 * time and giving its unused tail back.
 *
 * The region is one anonymous MAP_NORESERVE mapping, aligned to the largest
 * block (order 10, 4 MiB), so that a block of order k always starts at a pfn
 * that is a multiple of 2^k, and a block's buddy is pfn ^ (1 << k).  Its
 * descriptors are a second NORESERVE mapping, one per page, at a place
 * fixed by the region's: a page's descriptor is at DESC_VMEMMAP plus its
 * address / 64 (both 64 bytes per 4 KiB), as the kernel's vmemmap puts
 * struct page at a fixed virtual address, so that free finds one with a
 * shift and an add, no load (addr_to_desc).  A third mapping holds the
 * one-hop live bytes, a byte per page, likewise at a fixed place
 * (addr_to_live).  Nothing of any of them is touched here.
 *
 * Under a finite limit the region must not eat the program's budget
 * (zone_region_bytes sizes it), and two more things hold: the region is
 * reserved PROT_NONE, which RLIMIT_DATA does not count, and opened (made
 * writable) 4 MiB at a time just ahead of the frontier (__zone_open), so it
 * costs the data limit only what has been carved; and when glibc runs out,
 * the never-used tail above the frontier is unmapped (zone_give_back), so
 * the program has at least the address space it would have had without us.
 * Unlimited, the whole region is writable from the start and neither
 * happens.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "zone/zone_impl.h"

static void *reserve_aligned(void *hint, size_t bytes, size_t align, int prot)
{
	size_t len = bytes + align;
	char *p = os.mmap(hint, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uintptr_t start = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	size_t head = start - (uintptr_t)p, tail = len - head - bytes;
	if (head)
		os.munmap(p, head);
	if (tail)
		os.munmap((char *)start + bytes, tail);
	return (void *)start;
}

/* The pages of live bytes of the region part [lo, hi), rounded out to
 * whole pages (a page of them covers 16 MiB: another region's bytes can
 * share an end page, and mapping it then fails, EEXIST, which makes
 * reserve_with_descs move on). */
static void live_span(uintptr_t lo, uintptr_t hi, uintptr_t *start, size_t *len)
{
	*start = (uintptr_t)addr_to_live((void *)lo) & ~(uintptr_t)(PAGE_SIZE - 1);
	*len = (((uintptr_t)addr_to_live((void *)hi) + PAGE_SIZE - 1) & ~(uintptr_t)(PAGE_SIZE - 1)) -
	       *start;
}

/* len bytes at want exactly: 0, or the errno (EEXIST where something
 * holds the place, or where the kernel put them elsewhere). */
static int map_fixed(uintptr_t want, size_t len)
{
	void *d = os.mmap((void *)want, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (d == (void *)want)
		return 0;
	if (d == MAP_FAILED)
		return errno;
	os.munmap(d, len);
	return EEXIST;
}

/*
 * A region of bytes with its descriptors at its address / 64 and its live
 * bytes at its address / 4096.  Where something else holds either place
 * (the kernel answers EEXIST, or, before Linux 4.17, another address), the
 * next try asks for a region far from the first (a hint 2^43 lower each
 * time, 8 TiB: its descriptors 128 GiB away), the failed ones kept
 * reserved meanwhile, then given back.  Any other error (ENOMEM: a limit,
 * overcommit, the map count) ends the tries at once: the caller halves the
 * size.  NULL when no try worked.
 */
#define DESC_TRIES 8
#define DESC_TRY_STEP ((uintptr_t)1 << 43)

static void *reserve_with_descs(size_t bytes, int prot)
{
	size_t dbytes = (bytes >> PAGE_SHIFT) * sizeof(struct page_desc), lbytes;
	void *failed[DESC_TRIES], *base = NULL;
	unsigned n = 0;
	uintptr_t live;

	while (n < DESC_TRIES) {
		void *hint = n ? (void *)(((uintptr_t)1 << 47) - n * DESC_TRY_STEP) : NULL;
		void *r = reserve_aligned(hint, bytes, MAX_BLOCK_BYTES, prot);
		if (!r)
			break;
		live_span((uintptr_t)r, (uintptr_t)r + bytes, &live, &lbytes);
		int err = map_fixed((uintptr_t)addr_to_desc(r), dbytes);
		if (!err) {
			err = map_fixed(live, lbytes);
			if (!err) {
				base = r;
				break;
			}
			os.munmap(addr_to_desc(r), dbytes);
		}
		failed[n++] = r;
		if (err != EEXIST)
			break;
	}
	while (n)
		os.munmap(failed[--n], bytes);
	return base;
}

/*
 * The region's share of a finite limit L (the tighter of RLIMIT_AS and
 * RLIMIT_DATA): the default region and its descriptors together take at
 * most L / ZONE_LIMIT_SHARE.  Below one 4 MiB block there is no region, and
 * every request goes to glibc.  A configured size is used as given: whoever
 * sets region_size under a limit has chosen; zone_init still halves it until
 * it fits, and zone_give_back still applies.
 */
#define ZONE_LIMIT_SHARE 8

uint64_t zone_region_bytes(uint64_t configured)
{
	if (configured)
		return configured;
	uint64_t bytes = os.phys_bytes();
	uint64_t cap = (uint64_t)64 << 30;
	if (bytes == 0)
		bytes = (uint64_t)1 << 30;
	if (bytes > cap)
		bytes = cap;
	uint64_t limit = os.mem_limit();
	if (limit != UINT64_MAX) {
		/* pages with their descriptors and live bytes that fit in the
		 * share */
		uint64_t fit = limit / ZONE_LIMIT_SHARE / (PAGE_SIZE + sizeof(struct page_desc) + 1);
		if (bytes > fit << PAGE_SHIFT)
			bytes = fit << PAGE_SHIFT;
	}
	return bytes & ~(uint64_t)(MAX_BLOCK_BYTES - 1);
}

/* The region split into nodes' parts: zone i gets [i * node_pages,
 * (i + 1) * node_pages), the last one the rest; one zone when the region
 * is too small to give each node a 4 MiB block. */
static void zones_lay_out(uint64_t pages, uint64_t limit)
{
	unsigned nodes = numa_nodes();
	uint64_t node_pages = (pages / nodes) & ~(uint64_t)(MAX_BLOCK_PAGES - 1);

	if (nodes > 1 && limit != UINT64_MAX)
		nodes = numa_collapse("a finite RLIMIT_AS or RLIMIT_DATA (the region opens as one zone)");
	else if (nodes > 1 && node_pages < MAX_BLOCK_PAGES)
		nodes = numa_collapse("the region is too small for a 4 MiB block per node");
	else if (nodes > 1 && numa_bind_parts(zg.base, node_pages, pages, nodes) != 0)
		nodes = numa_collapse("mbind refused");
	if (nodes == 1)
		node_pages = 0;
	nr_zones = nodes;
	zg.nodes = nodes;
	zg.node_pages = node_pages;
	for (unsigned i = 0; i < nodes; i++) {
		struct zone *z = &zones[i];
		z->limit = limit;
		z->start = i * node_pages;
		z->end = i + 1 < nodes ? (i + 1) * node_pages : pages;
		z->frontier = z->start;
		z->opened = limit != UINT64_MAX ? 0 : z->end;
	}
}

int zone_init(uint64_t bytes)
{
	uint64_t limit = os.mem_limit();

	memset(zones, 0, sizeof(zones));
	nr_zones = 1;
	zg.nodes = 1;
	zg.node_pages = 0;
	zones[0].limit = limit;
	bytes &= ~(uint64_t)(MAX_BLOCK_BYTES - 1);
	/* Halve until the reservation fits (ulimit -v, RLIMIT_DATA,
	 * overcommit_memory=2); with no region at all every request goes to
	 * the fallback allocator. */
	for (; bytes >= MAX_BLOCK_BYTES; bytes = (bytes / 2) & ~(uint64_t)(MAX_BLOCK_BYTES - 1)) {
		uint64_t pages = bytes >> PAGE_SHIFT;
		void *base = reserve_with_descs(bytes, limit != UINT64_MAX ? PROT_NONE
									 : PROT_READ | PROT_WRITE);
		if (!base)
			continue;
		zg.descs = addr_to_desc(base);
		zg.pages = pages;
		zg.base = (uintptr_t)base;
		zones_lay_out(pages, limit);
		__atomic_store_n(&zg.bytes, bytes, __ATOMIC_RELEASE);
		return 0;
	}
	return -1;
}

/* ---- opening the region under a limit ---------------------------------- */

/*
 * The free lists are empty and the frontier has reached z->opened, below the
 * end of the region: make the next 4 MiB writable.  mprotect is a system
 * call, so the lock is dropped around it, as zone_purge does; threads that
 * meet here at once open the same block, which mprotect does not mind.
 * Returns 1 with the lock held and z->opened advanced, 0 with the lock held
 * if mprotect failed (RLIMIT_DATA reached: the zone is full), -1 without
 * the lock if a handler could not take it back (a fork in progress).
 */
NOINLINE int __zone_open(struct zone *z, struct zone_irq *irq)
{
	uint64_t at = z->opened;

	__atomic_add_fetch(&z->openers, 1, __ATOMIC_RELAXED);
	zone_unlock(z, irq);
	int rc = os.mprotect((void *)(zg.base + (at << PAGE_SHIFT)), MAX_BLOCK_BYTES,
			     PROT_READ | PROT_WRITE);
	bool locked = zone_lock_or_refuse(z, irq);
	/* After the system call, so zone_give_back cannot see 0 while it runs. */
	__atomic_sub_fetch(&z->openers, 1, __ATOMIC_RELEASE);
	if (!locked)
		return -1;
	if (rc != 0)
		return 0;
	if (z->opened < at + MAX_BLOCK_PAGES)
		z->opened = at + MAX_BLOCK_PAGES;
	return 1;
}

/* The pfn below which zone z may hold something: its frontier, or where
 * a thread opening a block with the lock dropped may still open one
 * (below opened + 1024); its start if it has carved nothing. */
static uint64_t zone_top(const struct zone *z)
{
	uint64_t top = z->frontier;
	if (__atomic_load_n(&z->openers, __ATOMIC_ACQUIRE))
		top = z->opened + MAX_BLOCK_PAGES < z->end ? z->opened + MAX_BLOCK_PAGES : z->end;
	return top;
}

/* The region's tail above every zone's top, or above floor if that is
 * higher (pages, a multiple of 1024), unmapped with its descriptors and
 * live bytes.  Under a limit set before start-up there is one zone
 * (zones_lay_out); a limit set later may find several, the nodes' parts:
 * those above the cut become empty, the one it falls in ends there. */
static size_t give_back_above(uint64_t floor)
{
	struct zone_irq saved;

	zone_lock_all(&saved);
	uint64_t old = zg.pages, keep = floor;
	for (unsigned i = 0; i < nr_zones; i++) {
		uint64_t top = zone_top(&zones[i]);
		if (top > zones[i].start && top > keep)
			keep = top;
	}
	if (keep >= old) {
		zone_unlock_all(&saved);
		return 0;
	}
	/* Nothing live is at or above keep (every zone's top or beyond), so
	 * zone_owns may change its answer for those addresses only: they are
	 * not ours once unmapped, and glibc may map them next. */
	__atomic_store_n(&zg.pages, keep, __ATOMIC_RELAXED);
	__atomic_store_n(&zg.bytes, keep << PAGE_SHIFT, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < nr_zones; i++) {
		struct zone *z = &zones[i];
		if (z->end > keep)
			z->end = keep > z->start ? keep : z->start;
		if (z->opened > z->end)
			z->opened = z->end;
	}
	zones[nr_zones - 1].given_back += old - keep;
	zone_unlock_all(&saved);

	/* keep and old are multiples of 1024 pages, so the descriptors' cut
	 * (64 KiB per 1024) falls on a page boundary. */
	os.munmap((void *)(zg.base + (keep << PAGE_SHIFT)), (old - keep) << PAGE_SHIFT);
	os.munmap(zg.descs + keep, (old - keep) * sizeof(struct page_desc));
	/* the live bytes' whole pages above the kept part */
	uintptr_t live, live_keep;
	size_t lbytes, lkeep;
	live_span(zg.base, zg.base + (old << PAGE_SHIFT), &live, &lbytes);
	live_span(zg.base, zg.base + (keep << PAGE_SHIFT), &live_keep, &lkeep);
	if (lkeep < lbytes)
		os.munmap((void *)(live + lkeep), lbytes - lkeep);
	return (old - keep) << PAGE_SHIFT;
}

size_t zone_give_back(size_t want)
{
	uint64_t limit = __atomic_load_n(&zones[0].limit, __ATOMIC_ACQUIRE);

	/* The limit is written by zone_init (0 before it) and by
	 * zone_limit_changed, which the interposed setrlimit and prlimit
	 * call.  One set around them (a raw prlimit64 system call, or
	 * prlimit --pid from another process) is found here, when glibc
	 * runs out: read again, unless this is a vfork child, whose limit
	 * is not its parent's region's. */
	size_t given = 0;
	if (__atomic_load_n(&zg.bytes, __ATOMIC_RELAXED) && !os_vm_shared_child()) {
		uint64_t now = os.mem_limit();
		if (now != limit) {
			/* what this gives back counts: the caller asks glibc
			 * again only if something was */
			uint64_t pages = __atomic_load_n(&zg.pages, __ATOMIC_RELAXED);
			zone_limit_changed(now);
			pages -= __atomic_load_n(&zg.pages, __ATOMIC_RELAXED);
			given = pages << PAGE_SHIFT;
			limit = now;
		}
	}
	/* A request larger than the whole limit fails whatever we give:
	 * keep the zone. */
	if (limit == UINT64_MAX || want >= limit || !__atomic_load_n(&zg.bytes, __ATOMIC_RELAXED))
		return given;
	return given + give_back_above(0);
}

/*
 * The program set RLIMIT_AS or RLIMIT_DATA after start-up (setrlimit,
 * prlimit), the tighter now being limit.  A region reserved for an
 * unlimited process would count against a finite one whole and leave
 * glibc no room (python3 setting a 2 GiB limit got MemoryError at once):
 * the default region keeps the share a process started under that limit
 * would get (zone_region_bytes) or what it has used, whichever is more,
 * and the rest goes back at once.  A region_size the user set is kept, as
 * at start-up.  Either way glibc's ENOMEM gives back more (zone_give_back)
 * while the limit is finite.
 */
void zone_limit_changed(uint64_t limit)
{
	if (!__atomic_load_n(&zg.bytes, __ATOMIC_ACQUIRE))
		return;
	for (unsigned i = 0; i < nr_zones; i++)
		__atomic_store_n(&zones[i].limit, limit, __ATOMIC_RELEASE);
	if (limit == UINT64_MAX || opt.region_size)
		return;
	uint64_t share = zone_region_bytes(0) >> PAGE_SHIFT;
	if (share < __atomic_load_n(&zg.pages, __ATOMIC_RELAXED))
		give_back_above(share);
}

bool zone_limited(void)
{
	return __atomic_load_n(&zones[0].limit, __ATOMIC_ACQUIRE) != UINT64_MAX &&
	       __atomic_load_n(&zg.bytes, __ATOMIC_RELAXED) != 0;
}
