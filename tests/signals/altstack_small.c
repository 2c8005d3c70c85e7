/*
 * altstack_small.c — handlers on a small alternate signal stack (issue 8,
 * defect 6).
 *
 *   altstack_small
 *
 * Four parts, each in a child process so that an overflow is a reported
 * failure and not a crashed test runner:
 *
 *   alloc   a 4096-byte sigaltstack (above this CPU's MINSIGSTKSZ) with a
 *           PROT_NONE guard page below it; an SA_ONSTACK handler that
 *           mallocs 8 KiB and 100 bytes, writes them and frees them, run
 *           1000 times by raise() and about 2000 times by a 100 us timer.
 *           Overflowing the 4 KiB is a SIGSEGV on the guard page.
 *   empty   the same stack and signals, a handler that does nothing.
 *   measure a 64 KiB altstack filled with a pattern: how many bytes lie
 *           between the kernel's signal frame and the program's handler
 *           (the trampoline's share) and how deep malloc(8192) +
 *           malloc(100) + free go below the handler (the allocation
 *           path's).  Reported always; the test asks for less than 1 KiB
 *           in all, the budget.
 *   runfree the same measure for a handler's free of a 4101-byte run
 *           object into a full per-CPU cache (libmagpage only), held to
 *           640 bytes: 384 now, 880 when that free went through the
 *           process-context spill's frame.
 *
 * The program binds malloc and free before any handler runs (warm_up): a
 * lazy PLT binding inside the handler saves the vector registers on the
 * stack and alone overflows 4 KiB, under glibc too.  The 4 KiB parts are
 * skipped where the kernel's signal frame leaves under 1 KiB of the 4.
 *
 * On a 2952-byte frame (AT_MINSIGSTKSZ 3376), a53d7f8 touches 712 bytes
 * below the frame (904 under vanilla39 on the first run), glibc 180: both
 * pass.  The 4864 bytes are what a program that did not bind malloc
 * first needs (4752 here; glibc 4496, which crashes as well).
 */
#include <dlfcn.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <unistd.h>

#include "sigregress.h"

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

#define SMALL_STACK 4096
#define MEASURE_STACK (64 * 1024)
#define BUDGET 1024
/* runfree: the trampoline (185 bytes here) and the free's path to the run;
 * rc_spill's frame alone is 568 bytes, which no handler may reach */
#define RUNFREE_BUDGET 640
#define PATTERN 0xa5

static uintptr_t alt_lo, alt_hi;
static volatile sig_atomic_t calls, off_stack, alloc_bad, do_alloc;
static void *volatile to_free;       /* runfree: the object the handler frees */
static volatile uintptr_t frame_lo, handler_sp;   /* measure: per run */

static void h_alt(int sig, siginfo_t *si, void *uc)
{
	char here;

	(void)sig;
	(void)si;
	calls++;
	if ((uintptr_t)&here < alt_lo || (uintptr_t)&here >= alt_hi)
		off_stack++;
	/* rt_sigframe starts with the return address, just below uc */
	frame_lo = (uintptr_t)uc - sizeof(void *);
	handler_sp = (uintptr_t)&here;
	if (to_free) {
		free(to_free);
		to_free = NULL;
	}
	if (!do_alloc)
		return;
	char *volatile a = malloc(8192);
	char *volatile b = malloc(100);
	if (!a || !b)
		alloc_bad++;
	else {
		a[0] = a[8191] = 1;
		b[0] = b[99] = 2;
	}
	free(a);
	free(b);
}

/* The program's own first calls of malloc and free bind them (lazy PLT
 * binding saves the whole vector state on the stack, over 1 KiB): that is
 * the program's cost, not the allocator's, so it is paid here, outside the
 * handler.  What the library binds lazily on its handler path still counts. */
static void warm_up(void)
{
	void *volatile a = malloc(8192), *volatile b = malloc(100);
	free(a);
	free(b);
}

/* An alternate stack of `size` bytes with a PROT_NONE page below it. */
static void alt_install(size_t size)
{
	size_t map = size + RX_PAGE;
	char *m = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || mprotect(m, RX_PAGE, PROT_NONE) != 0)
		_exit(RX_SETUP);
	stack_t ss = { .ss_sp = m + RX_PAGE, .ss_size = size, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) != 0)
		_exit(RX_SETUP);
	alt_lo = (uintptr_t)ss.ss_sp;
	alt_hi = alt_lo + size;

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = h_alt;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGALRM, &sa, NULL))
		_exit(RX_SETUP);
}

/* alloc / empty: raise 1000 times, then a 100 us timer for 0.2 s while the
 * thread spins (no allocation of its own, so that under glibc the handler
 * never interrupts glibc's malloc). */
static int child_small(bool alloc)
{
	warm_up();
	alt_install(SMALL_STACK);
	do_alloc = alloc;
	for (int i = 0; i < 1000; i++)
		raise(SIGUSR1);
	struct itimerval it = { { 0, 100 }, { 0, 100 } };
	setitimer(ITIMER_REAL, &it, NULL);
	double t0 = rx_now();
	while (rx_now() - t0 < 0.2)
		;
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	if (off_stack) {
		rx_fail_n("handler runs not on the alternate stack: ", off_stack);
		return RX_FAIL;
	}
	if (alloc_bad) {
		rx_fail_n("malloc(8192)/malloc(100) in the handler returned NULL, times: ", alloc_bad);
		return RX_FAIL;
	}
	if (calls < 1100) {
		rx_fail_n("too few handler runs: ", calls);
		return RX_SETUP;
	}
	return RX_OK;
}

/* The stack below the kernel's frame that handler runs touched: a 64 KiB
 * altstack filled with a pattern before the runs, scanned after. */
static size_t measure_runs(int runs, size_t *tramp)
{
	memset((void *)alt_lo, PATTERN, MEASURE_STACK);
	for (int i = 0; i < runs; i++)
		raise(SIGUSR1);
	uintptr_t low = alt_lo;
	while (low < alt_hi && *(unsigned char *)low == PATTERN)
		low++;
	*tramp = frame_lo > handler_sp ? frame_lo - handler_sp : 0;
	return frame_lo > low ? frame_lo - low : 0;
}

static int child_measure(void)
{
	size_t tramp_cold, tramp_warm;

	warm_up();
	alt_install(MEASURE_STACK);
	do_alloc = 1;
	size_t cold = measure_runs(1, &tramp_cold);   /* the first run: first use of each path */
	size_t warm = measure_runs(2000, &tramp_warm);   /* refills and drains too */
	printf("altstack_small: kernel signal frame %zu bytes (AT_MINSIGSTKSZ %lu); below it, a "
	       "handler that mallocs 8192 and 100 bytes and frees them touched %zu bytes on its "
	       "first run and %zu at most over the next 2000 (between the frame and the handler: %zu)\n",
	       (size_t)(alt_hi - frame_lo), getauxval(AT_MINSIGSTKSZ), cold, warm, tramp_warm);
	if (alloc_bad) {
		rx_fail("malloc in the handler returned NULL");
		return RX_FAIL;
	}
	size_t worst = cold > warm ? cold : warm;
	if (worst > BUDGET) {
		rx_fail_n("a handler that allocates uses over 1 KiB of stack below the kernel's "
			  "signal frame (the trampoline and the allocation path): bytes ", worst);
		return RX_FAIL;
	}
	return RX_OK;
}

/*
 * A handler's free of a page-plus-header object (4101 bytes: a run's
 * object) whose size's cache on this CPU is full: the free misses the push
 * and goes on to the object's run, which must not pass through the spill
 * of a full array (its buffer, 452 bytes, is process context's).  After
 * magpage_drain the cache of 4160-byte objects holds 30 (its starting
 * capacity): the thread frees 30, the handler the 31st.  Skipped without
 * libmagpage (no magpage_drain).
 */
static int child_measure_runfree(void)
{
	enum { N = 30, ROUNDS = 20 };
	void *p[N + 1];
	size_t (*drain)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "magpage_drain");
	if (!drain) {
		printf("altstack_small: SKIP the run object's free: no magpage_drain (not "
		       "libmagpage)\n");
		return RX_OK;
	}
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	if (sched_setaffinity(0, sizeof(one), &one) != 0)
		return RX_SETUP;
	warm_up();
	alt_install(MEASURE_STACK);
	do_alloc = 0;
	size_t worst = 0, tramp;
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i <= N; i++)
			if (!(p[i] = malloc(4101)))
				return RX_SETUP;
		drain();
		for (int i = 0; i < N; i++)
			free(p[i]);
		to_free = p[N];
		size_t used = measure_runs(1, &tramp);
		if (to_free) {
			rx_fail("the handler did not run");
			return RX_FAIL;
		}
		if (used > worst)
			worst = used;
	}
	printf("altstack_small: a handler that frees a 4101-byte object into a full cache "
	       "touched %zu bytes at most over %d runs\n", worst, ROUNDS);
	if (worst > RUNFREE_BUDGET) {
		rx_fail_n("a handler's free of a run object uses over 640 bytes of stack below the "
			  "kernel's signal frame (the process-context spill's frame?): bytes ", worst);
		return RX_FAIL;
	}
	return RX_OK;
}

/* Each part runs in a fresh process (this program again, with the part's
 * name): not a fork, whose child would start with the parent's caches and
 * fork state rather than a program's. */
static int run(const char *name, const char *part)
{
	pid_t pid = fork();
	if (pid < 0)
		return RX_SETUP;
	if (pid == 0) {
		execl("/proc/self/exe", "altstack_small", part, (char *)NULL);
		_exit(RX_SETUP);
	}
	int st, rc = rx_wait_child(pid, 10.0, &st);
	if (rc == RX_FAIL && WEXITSTATUS(st) == RX_SKIP)
		return RX_SKIP;   /* the frame probe's answer, not a failure */
	if (rc == RX_CRASH) {
		struct say_buf s = { .n = 0 };
		say_str(&s, "altstack_small: FAIL: ");
		say_str(&s, name);
		say_str(&s, ": the child was killed by signal ");
		say_u64(&s, (uint64_t)WTERMSIG(st));
		say_str(&s, WTERMSIG(st) == SIGSEGV ? " (SIGSEGV: the handler overflowed its "
				"alternate stack into the guard page)\n" : "\n");
		say_flush(&s, 2);
	} else if (rc == RX_HANG) {
		rx_say("FAIL: hung (killed after 10 s): ", name, 0, false);
	} else if (rc != RX_OK) {
		rx_say("FAIL: ", name, 0, false);
	} else {
		printf("altstack_small: %s: passed\n", name);
	}
	return rc;
}

/* The kernel's signal frame on this machine, measured with an empty handler
 * on a scratch altstack (the frame starts just below uc, whatever runs
 * between it and the handler). */
static size_t kernel_frame(void)
{
	alt_install(MEASURE_STACK);
	do_alloc = 0;
	raise(SIGUSR1);
	return alt_hi - frame_lo;
}

int main(int argc, char **argv)
{
	rx_prog = "altstack_small";
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "alloc") == 0)
		return child_small(true);
	if (argc == 2 && strcmp(argv[1], "empty") == 0)
		return child_small(false);
	if (argc == 2 && strcmp(argv[1], "measure") == 0)
		return child_measure();
	if (argc == 2 && strcmp(argv[1], "runfree") == 0)
		return child_measure_runfree();
	if (argc == 2 && strcmp(argv[1], "frame") == 0)
		return kernel_frame() + BUDGET > SMALL_STACK ? RX_SKIP : RX_OK;
	if (argc != 1) {
		fprintf(stderr, "usage: altstack_small\n");
		return RX_SETUP;
	}
	rx_watchdog(40);

	/* The 4 KiB parts mean "the library stays within its 1 KiB": skipped
	 * where the kernel's frame leaves no room for that. */
	int r1 = RX_OK, r2 = RX_OK, rf = run("probe of the kernel's signal frame", "frame");
	if (rf == RX_SKIP) {
		printf("altstack_small: SKIP the 4 KiB parts: the kernel's signal frame leaves under "
		       "1 KiB of a 4 KiB stack (AT_MINSIGSTKSZ %lu)\n", getauxval(AT_MINSIGSTKSZ));
	} else if (rf != RX_OK) {
		return rf;
	} else {
		r1 = run("handler allocating 8 KiB and 100 B on a 4 KiB altstack", "alloc");
		r2 = run("empty handler on a 4 KiB altstack", "empty");
	}
	int r3 = run("stack use of the trampoline and the handler allocation path", "measure");
	int r4 = run("stack use of a handler's free of a run object", "runfree");
	if (r1 == RX_OK && r2 == RX_OK && r3 == RX_OK && r4 == RX_OK)
		return RX_OK;
	return r1 != RX_OK ? r1 : r2 != RX_OK ? r2 : r3 != RX_OK ? r3 : r4;
}
