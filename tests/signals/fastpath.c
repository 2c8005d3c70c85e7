/*
 * fastpath.c — handlers against the fast paths (issue 9): with statistics
 * off, malloc and free take their one-compare ways to glibc and their
 * one-hop page path, which the other signal suites (stats:json, which
 * closes those ways) never reach.  A handler must still never call glibc,
 * and an ordinary call after it must find the fast ways open again.
 *
 * How "never calls glibc" is seen: this program defines __libc_malloc and
 * __libc_free itself and exports them (ENABLE_EXPORTS), so libmagpage's
 * references to glibc's entry points bind here first (the executable comes
 * first in the lookup order); each counts the calls made while this thread
 * runs one of the test's handlers, then forwards to glibc's.
 *
 * The same way, syscall() counts the getpid system calls made in a test
 * handler: none where the kernel gives a wipe-on-fork page (Linux 4.14),
 * which is how a handler-context call asks "is this a child of _Fork?".
 *
 * Runs under LD_PRELOAD=libmagpage.so with MAGPAGE_CONF naming a cache and
 * no statistics (CMakeLists.txt).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/time.h>

#include "sigcrit.h"

/* ---- glibc's entry points, counted ------------------------------------------ */

static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static __thread volatile sig_atomic_t in_handler;  /* this thread runs a test handler */
static atomic_ulong glibc_calls_in_handler;         /* must stay 0 */
static atomic_ulong glibc_frees;                    /* every __libc_free */
static void *watched;                               /* a glibc block to follow */
static atomic_ulong watched_frees;                  /* __libc_free(watched) calls */

/* On first use: libmagpage's start-up calls glibc before this program's
 * constructors run.  A successful dlsym does not allocate. */
static void resolve_glibc(void)
{
	if (!real_malloc)
		real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "__libc_malloc");
	if (!real_free)
		real_free = (void (*)(void *))dlsym(RTLD_NEXT, "__libc_free");
}

void *__libc_malloc(size_t size)
{
	if (in_handler)
		atomic_fetch_add(&glibc_calls_in_handler, 1);
	if (!real_malloc)
		resolve_glibc();
	return real_malloc(size);
}

void __libc_free(void *p)
{
	if (in_handler)
		atomic_fetch_add(&glibc_calls_in_handler, 1);
	if (!real_free)
		resolve_glibc();
	atomic_fetch_add(&glibc_frees, 1);
	if (p && p == watched)
		atomic_fetch_add(&watched_frees, 1);
	real_free(p);
}

/* ---- syscall, counted ---------------------------------------------------------- */

static long (*real_syscall)(long, ...);
static atomic_ulong getpid_in_handler;              /* must stay 0 with the canary */
static bool wipeonfork;                             /* the kernel gives the page */

long syscall(long nr, ...)
{
	va_list ap;
	long a[6];
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);      /* as many as any system call takes */
	va_end(ap);
	if (nr == SYS_getpid && in_handler)
		atomic_fetch_add(&getpid_in_handler, 1);
	if (!real_syscall)
		real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static bool kernel_wipes_on_fork(void)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return false;
	bool ok = madvise(p, PAGE, 18 /* MADV_WIPEONFORK */) == 0;
	munmap(p, PAGE);
	return ok;
}

/* A handler's calls asked the kernel for the pid: each is a system call on
 * every call in a handler, which a loaded machine turns into a handler
 * storm that starves the thread it interrupts. */
static void assert_no_getpid_in_handler(unsigned long before)
{
	if (!wipeonfork)
		return;
	unsigned long n = atomic_load(&getpid_in_handler) - before;
	cr_assert_eq(n, 0, "handler-context calls made %lu getpid system calls", n);
}

static void setup(void)
{
	load_api();
	resolve_glibc();
	wipeonfork = kernel_wipes_on_fork();
	cr_assert(real_malloc && real_free, "glibc's __libc_malloc/__libc_free not found");
	/* libmagpage must have bound its calls into glibc to this program's
	 * definitions, or nothing below is seen */
	unsigned long before = atomic_load(&glibc_frees);
	void *g = malloc(64);
	cr_assert_not_null(g);
	cr_assert(!mp.owns(g), "malloc(64) should be glibc's");
	free(g);
	cr_assert_eq(atomic_load(&glibc_frees), before + 1,
		     "free of a glibc block did not reach this program's __libc_free");
}

TestSuite(fastpath, .init = setup);

/* ---- one handler, one call --------------------------------------------------- */

static void *h_small, *h_page;
static volatile sig_atomic_t h_bad;

static void h_free_watched(int sig)
{
	(void)sig;
	in_handler = 1;
	free(watched);
	in_handler = 0;
}

Test(fastpath, handler_free_of_a_glibc_pointer_waits_for_process_context)
{
	/* opens this thread's fast way to glibc's free, if it was not open */
	free(malloc(64));
	watched = malloc(100);
	cr_assert_not_null(watched);
	cr_assert(!mp.owns(watched));
	cr_assert_neq((void *)signal(SIGUSR1, h_free_watched), (void *)SIG_ERR);

	unsigned long in_h = atomic_load(&glibc_calls_in_handler);
	raise(SIGUSR1);
	unsigned long after_handler = atomic_load(&watched_frees);
	void *x = malloc(50);      /* an ordinary malloc drains deferred frees */
	unsigned long after_malloc = atomic_load(&watched_frees);
	free(x);

	cr_assert_eq(atomic_load(&glibc_calls_in_handler), in_h,
		     "the handler's free called glibc from the handler");
	cr_assert_eq(after_handler, 0, "glibc freed the block before the handler returned");
	cr_assert_eq(after_malloc, 1, "the next ordinary malloc did not hand the deferred "
		     "block to glibc (%lu frees of it)", after_malloc);
	watched = NULL;
	signal(SIGUSR1, SIG_IGN);
}

static void h_alloc(int sig)
{
	(void)sig;
	in_handler = 1;
	h_small = malloc(100);
	h_page = malloc(PAGE);
	if (h_small)
		blk_fill(h_small, 100, 11);
	if (h_page)
		blk_fill(h_page, PAGE, 12);
	if (h_small && blk_check(h_small, 0))
		h_bad = 1;
	if (h_page && blk_check(h_page, 0))
		h_bad = 1;
	in_handler = 0;
}

Test(fastpath, handler_requests_come_from_the_zone_and_ordinary_ones_from_glibc_after)
{
	free(malloc(64));
	cr_assert_neq((void *)signal(SIGUSR1, h_alloc), (void *)SIG_ERR);
	unsigned long in_h = atomic_load(&glibc_calls_in_handler);
	unsigned long getpids = atomic_load(&getpid_in_handler);
	raise(SIGUSR1);
	cr_assert_eq(atomic_load(&glibc_calls_in_handler), in_h,
		     "a handler's malloc called glibc");
	assert_no_getpid_in_handler(getpids);
	cr_assert_not_null(h_small);
	cr_assert_not_null(h_page);
	cr_assert(mp.owns(h_small) && mp.owns(h_page), "handler blocks %p, %p are not the zone's",
		  h_small, h_page);
	cr_assert_eq(h_bad, 0, "a handler block did not keep its contents");
	cr_assert_eq(blk_check(h_small, 0), 0);
	cr_assert_eq(blk_check(h_page, 0), 0);
	free(h_small);
	free(h_page);

	/* after the handler: small blocks are glibc's again, and their frees
	 * reach glibc at once */
	void *g = malloc(64);
	cr_assert(!mp.owns(g), "after the handler malloc(64) should be glibc's again");
	watched = g;
	free(g);
	cr_assert_eq(atomic_load(&watched_frees), 1, "a free after the handler did not reach glibc");
	watched = NULL;
	atomic_store(&watched_frees, 0);
	signal(SIGUSR1, SIG_IGN);
}

/* ---- a timer storm over the fast paths ---------------------------------------- */

#define SLOTS 64
static void *h_slots[SLOTS];
static volatile sig_atomic_t h_ticks;

/* Each tick: replace one slot with a small or a page-sized block, check
 * what was there, write the new one. */
static void h_storm(int sig)
{
	(void)sig;
	in_handler = 1;
	unsigned t = (unsigned)h_ticks++;
	unsigned i = t % SLOTS;
	size_t size = (t & 1) ? PAGE * (1 + t % 3) : 24 + t % 200;
	if (h_slots[i]) {
		if (blk_check(h_slots[i], 0))
			h_bad = 1;
		free(h_slots[i]);
	}
	h_slots[i] = malloc(size);
	if (!h_slots[i] || !mp.owns(h_slots[i]))
		h_bad = 1;
	else
		blk_fill(h_slots[i], size, 1000 + t);
	in_handler = 0;
}

Test(fastpath, a_timer_storm_over_ordinary_fast_path_calls, .timeout = 30)
{
	struct sigaction sa = { .sa_handler = h_storm };
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
	struct itimerval it = { .it_interval = { 0, 50 }, .it_value = { 0, 50 } };
	unsigned long in_h = atomic_load(&glibc_calls_in_handler);
	unsigned long getpids = atomic_load(&getpid_in_handler);
	cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);

	/* ordinary calls, both sizes, contents checked: one second */
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	void *mine[16] = { 0 };
	uint64_t seed = 1u << 20, bad = 0, n = 0;
	do {
		for (unsigned i = 0; i < 16; i++, n++) {
			size_t size = (n % 3) ? 16 + n % 500 : PAGE * (1 + n % 4);
			if (mine[i]) {
				bad += blk_check(mine[i], 0) != 0;
				free(mine[i]);
			}
			mine[i] = malloc(size);
			if (!mine[i]) {
				bad++;
				continue;
			}
			blk_fill(mine[i], size, seed++);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 1 || (t.tv_sec - t0.tv_sec == 1 && t.tv_nsec < t0.tv_nsec));

	struct itimerval off = { 0 };
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_IGN);
	for (unsigned i = 0; i < 16; i++) {
		if (mine[i])
			bad += blk_check(mine[i], 0) != 0;
		free(mine[i]);
	}
	for (unsigned i = 0; i < SLOTS; i++) {
		if (h_slots[i] && blk_check(h_slots[i], 0))
			h_bad = 1;
		free(h_slots[i]);
	}
	cr_assert_gt(h_ticks, 100, "only %d timer ticks in a second", (int)h_ticks);
	cr_assert_eq(atomic_load(&glibc_calls_in_handler), in_h,
		     "handlers called glibc %lu times", atomic_load(&glibc_calls_in_handler) - in_h);
	cr_assert_eq(h_bad, 0, "a handler block was not the zone's or lost its contents");
	cr_assert_eq(bad, 0, "%lu ordinary blocks lost their contents", (unsigned long)bad);
	assert_no_getpid_in_handler(getpids);
}
