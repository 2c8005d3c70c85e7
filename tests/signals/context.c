/*
 * context.c — calls made in a handler are "interrupt context" (issue 3,
 * points 3 and 4): small and page-sized requests are served by the zone,
 * never by glibc; a glibc pointer freed or reallocated in a handler is
 * deferred and drained by the next ordinary call; and a handler installed
 * behind the library's back (raw rt_sigaction) that interrupts a magazine
 * critical section is caught by the second line of defence instead of
 * deadlocking.
 *
 * Runs like trampoline.c: under LD_PRELOAD with stats:json, once per policy.
 */
#include <stdatomic.h>

#include "sigcrit.h"

TestSuite(context, .init = load_api);

/* ---- what handler-context requests get ---------------------------------------- */

struct ctx_result {
	void *p;
	int owned;
	const char *what;
};
static struct ctx_result ctx_res[8];
static volatile sig_atomic_t ctx_n, ctx_bad;

static void ctx_note(void *p, const char *what)
{
	ctx_res[ctx_n].p = p;
	ctx_res[ctx_n].owned = p && mp.owns(p);
	ctx_res[ctx_n].what = what;
	ctx_n++;
}

static void h_ctx(int sig)
{
	void *p;
	(void)sig;

	ctx_n = 0;
	p = malloc(100);
	ctx_note(p, "malloc(100)");
	if (p) {
		blk_fill(p, 100, 7);
		void *r = realloc(p, 300);
		ctx_note(r, "realloc(malloc(100), 300)");
		if (r && blk_check_prefix(r, 100))
			ctx_bad++;
		free(r ? r : p);
	}
	p = malloc(8192);
	ctx_note(p, "malloc(8192)");
	free(p);
	p = calloc(1, 100);
	ctx_note(p, "calloc(1, 100)");
	if (p && blk_zero_check(p, 100))
		ctx_bad++;
	free(p);
	p = NULL;
	if (posix_memalign(&p, 64, 100) != 0)
		p = NULL;
	ctx_note(p, "posix_memalign(64, 100)");
	if ((uintptr_t)p % 64)
		ctx_bad++;
	free(p);
	p = realloc(NULL, 200);
	ctx_note(p, "realloc(NULL, 200)");
	free(p);
	p = malloc(1);
	ctx_note(p, "malloc(1)");
	free(p);
}

Test(context, handler_small_and_page_requests_come_from_the_zone)
{
	void *g = malloc(100);
	cr_assert_not_null(g);
	cr_assert(!mp.owns(g), "outside a handler, malloc(100) should be glibc's");
	free(g);

	cr_assert_neq((void *)signal(SIGUSR1, h_ctx), (void *)SIG_ERR);
	struct snap s0 = take_snap();
	raise(SIGUSR1);
	struct snap s1 = take_snap();
	cr_assert_snap(s1);
	cr_assert_eq(ctx_n, 7);
	for (int i = 0; i < ctx_n; i++) {
		cr_assert_not_null(ctx_res[i].p, "%s in a handler returned NULL", ctx_res[i].what);
		cr_assert(ctx_res[i].owned, "%s in a handler returned %p, which is not libmagpage's: "
			  "it came from glibc", ctx_res[i].what, ctx_res[i].p);
	}
	cr_assert_eq(ctx_bad, 0, "contents, zeroing or alignment wrong in the handler");
	cr_assert_geq(s1.small_to_zone - s0.small_to_zone, 4, "small_to_zone grew by %lu",
		      (unsigned long)(s1.small_to_zone - s0.small_to_zone));
	cr_assert_geq(s1.sig_malloc - s0.sig_malloc, 4);
	signal(SIGUSR1, SIG_IGN);
}

static void *def_ptr, *def_new;

static void h_def_free(int sig)
{
	(void)sig;
	free(def_ptr);
}

Test(context, handler_free_of_a_glibc_pointer_is_deferred_then_drained)
{
	def_ptr = malloc(100);
	cr_assert_not_null(def_ptr);
	cr_assert(!mp.owns(def_ptr));
	blk_fill(def_ptr, 100, 42);
	cr_assert_neq((void *)signal(SIGUSR1, h_def_free), (void *)SIG_ERR);

	/* no allocation between the snapshots: only the handler's free */
	struct snap s0 = take_snap();
	raise(SIGUSR1);
	struct snap s1 = take_snap();
	void *x = malloc(50);      /* the next ordinary call drains */
	struct snap s2 = take_snap();
	free(x);

	cr_assert_snap(s0);
	cr_assert_snap(s2);
	cr_assert_eq(s1.deferred - s0.deferred, 1, "the handler's free was not deferred");
	cr_assert_eq(s1.sig_free - s0.sig_free, 1);
	cr_assert_eq(s1.drained, s0.drained, "drained before any ordinary call");
	cr_assert_eq(s2.drained - s1.drained, 1,
		     "an ordinary malloc after the handler did not count the deferred free as drained "
		     "(deferred_drained %lu -> %lu, deferred %lu)", (unsigned long)s1.drained,
		     (unsigned long)s2.drained, (unsigned long)s2.deferred);
	signal(SIGUSR1, SIG_IGN);
}

static void h_def_realloc(int sig)
{
	(void)sig;
	def_new = realloc(def_ptr, 300);
}

Test(context, handler_realloc_of_a_glibc_pointer_moves_it_to_the_zone)
{
	def_ptr = malloc(100);
	cr_assert_not_null(def_ptr);
	cr_assert(!mp.owns(def_ptr));
	blk_fill(def_ptr, 100, 43);
	cr_assert_neq((void *)signal(SIGUSR1, h_def_realloc), (void *)SIG_ERR);

	struct snap s0 = take_snap();
	raise(SIGUSR1);
	struct snap s1 = take_snap();
	cr_assert_snap(s1);
	cr_assert_not_null(def_new);
	cr_assert(mp.owns(def_new), "realloc in a handler returned glibc memory");
	cr_assert_eq(blk_check_prefix(def_new, 100), 0, "realloc in a handler lost the contents");
	cr_assert_eq(s1.deferred - s0.deferred, 1, "the old glibc block was not deferred");
	free(def_new);
	signal(SIGUSR1, SIG_IGN);
}

/* ---- the second line of defence ------------------------------------------------
 * A handler installed with the raw system call never passes through the
 * trampoline.  Interrupting the thread inside a magazine critical section,
 * its page-sized malloc must take the zone path (reentry_caught), not spin
 * on the lock its own thread holds.  A 7 us timer, for 1 s and on until
 * one such re-entry is seen (10 s at most).
 */
#if defined(__x86_64__)
struct raw_sigaction {
	void *handler;
	unsigned long flags;
	void (*restorer)(void);
	uint64_t mask;
};
#define RAW_SA_RESTORER 0x04000000
void raw_restore_rt(void);
__asm__(".text\n.globl raw_restore_rt\n.type raw_restore_rt,@function\n"
	"raw_restore_rt:\n\tmov $15, %rax\n\tsyscall\n\thlt\n");

static volatile sig_atomic_t raw_calls, raw_bad;

static void h_raw(int sig)
{
	(void)sig;
	int e = errno;
	void *p = malloc(PAGE);
	if (!p || !mp.owns(p)) {
		raw_bad++;
	} else {
		blk_fill(p, PAGE, (uint64_t)raw_calls);
		if (blk_check(p, PAGE))
			raw_bad++;
		free(p);
	}
	raw_calls++;
	errno = e;
}

Test(context, raw_handler_reentry_is_caught_not_deadlocked)
{
	struct raw_sigaction ka = {
		.handler = (void *)h_raw, .flags = RAW_SA_RESTORER, .restorer = raw_restore_rt, .mask = 0,
	};
	struct timespec t0;
	const char *conf = getenv("MAGPAGE_CONF");

	/* Only the lock-based caches have a critical section a raw handler can
	 * interrupt; the default's pops and pushes restart instead. */
	if (!conf || !(strstr(conf, "cache:magazine") || strstr(conf, "rfc2013") ||
		       strstr(conf, "pcp-lock") || strstr(conf, "linux6")))
		cr_skip_test("the cache in use has no lock a handler could re-enter");
	cr_assert_eq(syscall(SYS_rt_sigaction, SIGUSR2, &ka, NULL, 8), 0);
	struct snap s0 = take_snap();
	timer_t t = thread_timer(SIGUSR2, 7000, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* 1 s, then on until a signal has landed in a critical section (the
	 * odds depend on the machine's speed: a busy 2-CPU host saw none in
	 * 250000 runs now and then), 10 s at most */
	for (unsigned long i = 1;; i++) {
		void *b[8];
		for (int k = 0; k < 8; k++)
			b[k] = malloc(PAGE << (k & 1));
		for (int k = 0; k < 8; k++)
			free(b[k]);
		long ns = ns_since(&t0);
		if (ns >= 10000000000L ||
		    (ns >= 1000000000L && i % 256 == 0 && take_snap().reentry > s0.reentry))
			break;
	}
	timer_delete(t);
	ka.handler = (void *)SIG_IGN;
	syscall(SYS_rt_sigaction, SIGUSR2, &ka, NULL, 8);
	struct snap s1 = take_snap();

	cr_assert_snap(s1);
	cr_assert_eq(raw_bad, 0);
	cr_assert_gt(raw_calls, 1000, "only %d raw signals arrived", (int)raw_calls);
	cr_assert_eq(s1.entries, s0.entries, "the raw handler went through the trampoline?");
	cr_assert_gt(s1.reentry - s0.reentry, 0,
		     "%d raw handler runs, none caught inside a magazine critical section",
		     (int)raw_calls);
	cr_log_info("raw handler: %d runs, %lu re-entries caught", (int)raw_calls,
		    (unsigned long)(s1.reentry - s0.reentry));
}
#endif
