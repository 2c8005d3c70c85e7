/*
 * sigstress.c — signal handlers allocate while the threads they interrupt
 * allocate too.  Bounded and watchdog-guarded; a stress test, not a
 * benchmark (it reports counts, never speed).
 *
 *   sigstress [plain|nodefer|altstack|longjmp|fork] [-t threads] [-d seconds]
 *             [-p period_us] [-w watchdog_s] [-q]
 *
 * N threads allocate, fill with a pattern, verify and free blocks of mixed
 * sizes: page-sized, odd page multiples (3, 5 pages), page plus a header
 * (4104: an object of a run, a zone page in a handler), just under a multiple (8032), and small (16..2000 B).  Each thread
 * has two POSIX timers of its own (SIGEV_THREAD_ID, CLOCK_MONOTONIC), one
 * sending SIGALRM and one SIGRTMIN, together one signal per period
 * (100 us: 10 kHz per thread).  The handlers malloc / calloc / realloc /
 * posix_memalign / free page-sized and small blocks, check them, leave some
 * in a lock-free stash that the threads free later, and free blocks that the
 * threads left in another stash: cross-context frees both ways, across
 * threads too.
 *
 * Variants:
 *   plain     the two signals nest in each other (empty sa_mask)
 *   nodefer   SA_NODEFER, and handlers raise() the other signal: nesting
 *             deeper than the library records frames for
 *   altstack  a sigaltstack per thread and SA_ONSTACK; handlers check that
 *             they run on it
 *   longjmp   every 4th handler that interrupts the fill/verify phase
 *             siglongjmps out of it (never out of a library call: that
 *             would be undefined behaviour in any allocator)
 *   fork      the main thread forks while signals fly (every few ms, and
 *             at least 10 times: past the run time on a loaded machine, up
 *             to half the watchdog's margin, or the run fails), under a
 *             timer too; children allocate, run the handler, _exit(0)
 *             under alarm(5).  No handler allocation may fail while a fork
 *             is prepared: memory is plentiful (issue 8, defect 5).
 *
 * Exit status: 0 pass; 1 setup or too few signals; 2 corruption;
 * 3 hang (watchdog); 4 an allocation failed; 5 the library's counters
 * break the policy's promise; 6 a forked child crashed.
 *
 * It runs under any allocator (scripts/sigpeers.sh uses that).  When
 * libmagpage is preloaded (magpage_print_stats found with dlsym) it reads
 * the JSON report and checks that every handler-context call took the path
 * its policy promises:
 *   bypass:  caches irq_hits == 0 and irq_misses == 0 (no handler touched a
 *            magazine), signal.malloc > 0
 *   trylock: irq_hits > 0
 *   always:  signal.handler_entries > 1000, invalid_frees == 0,
 *            deferred_drained == deferred once an ordinary call has run,
 *            and for longjmp stale_frames > 0
 * signal.malloc and invalid_frees are malloc-layer counters, kept only with
 * MAGPAGE_CONF=stats:json (or stats:1); stats_file:/dev/null keeps the exit
 * report quiet.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "sigtest.h"

enum variant { V_PLAIN, V_NODEFER, V_ALTSTACK, V_LONGJMP, V_FORK };
static const char *const variant_names[] = { "plain", "nodefer", "altstack", "longjmp", "fork", NULL };

enum { EX_OK, EX_SETUP, EX_CORRUPT, EX_HANG, EX_NOMEM, EX_COUNTERS, EX_CHILD };

#define MAX_THREADS   64
#define WORKSET       8           /* blocks a thread fills and checks per round */
#define STASH_SLOTS   256
#define ALT_SIZE      (256 * 1024)
#define WORK_DEPTH    6           /* deeper handlers only count */
#define RAISE_DEPTH   4           /* nodefer: raise() the other signal below this */
#define JUMP_EVERY    4           /* longjmp: every 4th armed handler jumps */

static struct {
	enum variant variant;
	int threads;
	double seconds;
	long period_us;
	int watchdog_s;
	bool quiet;
} cfg = { V_PLAIN, 4, 3.0, 100, 30, false };

/* ---- per-thread state ---------------------------------------------------------- */

struct tstate {
	int id;
	pid_t tid;
	timer_t timer[2];                 /* SIGALRM, SIGRTMIN */
	bool have_timer[2];
	void *blk[WORKSET];               /* the working set of this round */
	size_t blk_size[WORKSET];
	uint64_t rng;                     /* thread code only */
	uint64_t hrng;                    /* handlers only */
	uintptr_t alt_lo, alt_hi;         /* the altstack, when there is one */
	sigjmp_buf jb;                    /* longjmp: where a handler lands */
	volatile sig_atomic_t jmp_armed;  /* the thread is in fill/verify, no library call */
	volatile sig_atomic_t hdepth;     /* handler nesting, as the program sees it */
	volatile const char *phase;       /* for the watchdog's report */
	_Atomic uint64_t ops;             /* thread allocations */
	_Atomic uint64_t hcalls;          /* handler runs */
	_Atomic uint64_t hallocs;         /* handler allocations */
	_Atomic uint64_t t2h_freed;       /* thread blocks freed by handlers */
	_Atomic uint64_t h2t_freed;       /* handler blocks freed by threads */
	_Atomic uint64_t jumps, landings;
	_Atomic int max_depth;
	char pad[64];
};

static struct tstate *states;
static struct tstate main_state;      /* fork: the main thread takes signals too */
static __thread struct tstate *self;
static atomic_bool stop;
static _Atomic uint64_t seed_next = 1;
#define MIN_FORKS 10
static _Atomic uint64_t forks, fork_fail_hang, fork_fail_crash, fork_fail_code, fork_fail_nomem;
static struct timespec t_start;

/* ---- failure reports (async-signal-safe) ------------------------------------- */

static void fail(int code, const char *what, const void *p, uint64_t a, uint64_t b)
{
	struct say_buf s = { .n = 0 };
	say_str(&s, "sigstress: FAIL: ");
	say_str(&s, what);
	if (p) {
		say_str(&s, " block ");
		say_hex(&s, (uintptr_t)p);
	}
	say_str(&s, " (");
	say_u64(&s, a);
	say_str(&s, ", ");
	say_u64(&s, b);
	say_str(&s, ") variant ");
	say_str(&s, variant_names[cfg.variant]);
	if (self) {
		say_str(&s, " thread ");
		say_u64(&s, (uint64_t)self->id);
		say_str(&s, self->hdepth ? " in a handler" : " in thread code");
	}
	say_str(&s, "\n");
	say_flush(&s, 2);
	_exit(code);
}

static void *xcheck_alloc(void *p, size_t size, const char *what)
{
	if (!p)
		fail(EX_NOMEM, what, NULL, size, 0);
	return p;
}

static void verify(const void *p, size_t size, const char *what)
{
	size_t at = blk_check(p, size);
	if (at)
		fail(EX_CORRUPT, what, p, at - 1, size);
}

/* ---- sizes and seeds ----------------------------------------------------------- */

static inline uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static inline uint64_t new_seed(void)
{
	return atomic_fetch_add_explicit(&seed_next, 1, memory_order_relaxed) * 0x100000001b3ull;
}

/* The shapes DESIGN.md measured in real programs, plus small requests. */
static size_t pick_size(uint64_t *rng)
{
	uint64_t r = xorshift(rng);
	switch (r % 20) {
	case 0: case 1: case 2: case 3: case 4: case 5: case 6:
		return 16 + (size_t)((r >> 8) % 1985);         /* small: 16..2000 */
	case 7: case 8: case 9: case 10:
		return 4096;
	case 11: case 12:
		return 8192;
	case 13:
		return 3 * 4096;
	case 14:
		return 5 * 4096;
	case 15:
		return 4104;
	case 16:
		return 8032;
	case 17:
		return 16384;
	case 18:
		return 2 * 4096 + 1 + (size_t)((r >> 8) % 4000);
	default:
		return 4096 - 8;
	}
}

/* ---- the stashes --------------------------------------------------------------
 * Fixed arrays of atomic slots.  Putting is a CAS of an empty slot, taking an
 * exchange with NULL: lock-free, safe in a handler and across threads.  A
 * block carries its own seed and size, so the taker can check it.
 */
struct stash {
	_Atomic(void *) slot[STASH_SLOTS];
};
static struct stash h2t;   /* blocks handlers allocated; threads free them */
static struct stash t2h;   /* blocks threads allocated; handlers free them */

static bool stash_put(struct stash *s, void *p, uint64_t *rng)
{
	for (int k = 0; k < 4; k++) {
		void *expect = NULL;
		size_t i = (size_t)(xorshift(rng) % STASH_SLOTS);
		if (atomic_compare_exchange_strong(&s->slot[i], &expect, p))
			return true;
	}
	return false;
}

static void *stash_take(struct stash *s, uint64_t *rng)
{
	for (int k = 0; k < 4; k++) {
		size_t i = (size_t)(xorshift(rng) % STASH_SLOTS);
		if (atomic_load_explicit(&s->slot[i], memory_order_relaxed)) {
			void *p = atomic_exchange(&s->slot[i], NULL);
			if (p)
				return p;
		}
	}
	return NULL;
}

static void stash_drain(struct stash *s, const char *what)
{
	for (size_t i = 0; i < STASH_SLOTS; i++) {
		void *p = atomic_exchange(&s->slot[i], NULL);
		if (p) {
			verify(p, 0, what);
			free(p);
		}
	}
}

/* ---- the handler ------------------------------------------------------------------ */

/*
 * While a fork is being prepared a handler must not wait for the forking
 * thread (it holds the zone lock and may be waiting for a glibc lock held by
 * the very thread the handler interrupted), but memory is plentiful, so a
 * handler allocation must not fail either: issue 8, defect 5.  The fork
 * variant counts the NULLs (and posix_memalign's ENOMEM) instead of failing
 * at once, so that the report says how many, and fails at the end if there
 * was any; a child counts its own and exits EX_NOMEM.
 */
static _Atomic uint64_t fork_refusals;

static bool refused_in_fork(void *p)
{
	if (p || cfg.variant != V_FORK)
		return false;
	if (errno != ENOMEM)
		fail(EX_NOMEM, "handler allocation failed without ENOMEM", NULL, (uint64_t)errno, 0);
	atomic_fetch_add_explicit(&fork_refusals, 1, memory_order_relaxed);
	return true;
}

static void handler_work(struct tstate *t)
{
	uint64_t *r = &t->hrng;

	/* malloc, fill, check */
	size_t s1 = pick_size(r);
	void *a0 = malloc(s1);
	if (refused_in_fork(a0))
		return;
	void *a = xcheck_alloc(a0, s1, "malloc in a handler returned NULL");
	uint64_t seed1 = new_seed();
	blk_fill(a, s1, seed1);

	/* calloc: zeroed, then ours */
	size_t s2 = pick_size(r);
	void *b0 = calloc(1, s2);
	if (refused_in_fork(b0)) {
		free(a);
		return;
	}
	void *b = xcheck_alloc(b0, s2, "calloc in a handler returned NULL");
	size_t z = blk_zero_check(b, s2);
	if (z)
		fail(EX_CORRUPT, "calloc in a handler: block not zeroed", b, z - 1, s2);
	blk_fill(b, s2, new_seed());

	/* realloc keeps the prefix */
	size_t s3 = pick_size(r);
	void *c0 = realloc(a, s3);
	if (refused_in_fork(c0)) {
		free(a);     /* a failed realloc leaves the block as it was */
		free(b);
		return;
	}
	void *c = xcheck_alloc(c0, s3, "realloc in a handler returned NULL");
	size_t keep = s1 < s3 ? s1 : s3;
	size_t at = blk_check_prefix(c, keep);
	if (at || ((struct blk_hdr *)c)->seed != seed1)
		fail(EX_CORRUPT, "realloc in a handler lost the contents", c, at ? at - 1 : 0, keep);
	blk_fill(c, s3, new_seed());

	/* posix_memalign, small or page alignment */
	static const size_t aligns[] = { 64, 4096, 8192 };
	size_t al = aligns[xorshift(r) % 3], s4 = pick_size(r);
	void *d = NULL;
	int prc = posix_memalign(&d, al, s4);
	if (prc == ENOMEM && cfg.variant == V_FORK) {
		atomic_fetch_add_explicit(&fork_refusals, 1, memory_order_relaxed);
		free(b);
		free(c);
		return;
	}
	if (prc != 0 || !d)
		fail(EX_NOMEM, "posix_memalign in a handler failed", NULL, al, s4);
	if ((uintptr_t)d % al)
		fail(EX_CORRUPT, "posix_memalign in a handler: misaligned", d, al, s4);
	blk_fill(d, s4, new_seed());
	atomic_fetch_add_explicit(&t->hallocs, 4, memory_order_relaxed);

	verify(b, s2, "handler block (calloc)");
	verify(c, s3, "handler block (realloc)");
	verify(d, s4, "handler block (posix_memalign)");

	/* one block goes to the threads, the rest is freed here */
	if (!stash_put(&h2t, c, r))
		free(c);
	free(b);
	free(d);

	/* a block a thread allocated: check and free it here */
	void *e = stash_take(&t2h, r);
	if (e) {
		verify(e, 0, "thread block taken by a handler");
		free(e);
		atomic_fetch_add_explicit(&t->t2h_freed, 1, memory_order_relaxed);
	}
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	struct tstate *t = self;
	int saved_errno = errno;
	char here;

	(void)uc;
	if (!t)
		return;
	if (si && si->si_signo != sig)
		fail(EX_CORRUPT, "siginfo names another signal", NULL, (uint64_t)si->si_signo,
		     (uint64_t)sig);
	int lvl = ++t->hdepth;
	if (lvl > atomic_load_explicit(&t->max_depth, memory_order_relaxed))
		atomic_store_explicit(&t->max_depth, lvl, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->hcalls, 1, memory_order_relaxed);
	if (t->alt_hi && ((uintptr_t)&here < t->alt_lo || (uintptr_t)&here >= t->alt_hi))
		fail(EX_CORRUPT, "SA_ONSTACK handler is not on the sigaltstack", &here, 0, 0);

	if (lvl <= WORK_DEPTH)
		handler_work(t);
	if (cfg.variant == V_NODEFER && lvl < RAISE_DEPTH && (xorshift(&t->hrng) & 1))
		raise(sig == SIGALRM ? SIGRTMIN : SIGALRM);

	t->hdepth--;
	errno = saved_errno;
	if (cfg.variant == V_LONGJMP && t->jmp_armed &&
	    atomic_load_explicit(&t->hcalls, memory_order_relaxed) % JUMP_EVERY == 0) {
		t->jmp_armed = 0;
		atomic_fetch_add_explicit(&t->jumps, 1, memory_order_relaxed);
		siglongjmp(t->jb, 1);
	}
}

static void install_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (cfg.variant == V_NODEFER)
		sa.sa_flags |= SA_NODEFER;
	if (cfg.variant == V_ALTSTACK)
		sa.sa_flags |= SA_ONSTACK;
	if (cfg.variant == V_LONGJMP) {
		/* no nesting: a jump must leave no handler half-way through
		 * a library call */
		sigaddset(&sa.sa_mask, SIGALRM);
		sigaddset(&sa.sa_mask, SIGRTMIN);
	}
	if (sigaction(SIGALRM, &sa, NULL) || sigaction(SIGRTMIN, &sa, NULL)) {
		perror("sigstress: sigaction");
		exit(EX_SETUP);
	}
}

/* ---- timers -------------------------------------------------------------------------- */

static void timers_start(struct tstate *t)
{
	long period_ns = cfg.period_us * 1000 * 2;   /* two timers: one signal per period */

	for (int k = 0; k < 2; k++) {
		struct sigevent sev;
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev.sigev_signo = k ? SIGRTMIN : SIGALRM;
		sev._sigev_un._tid = t->tid;   /* sigev_notify_thread_id */
		if (timer_create(CLOCK_MONOTONIC, &sev, &t->timer[k]) != 0) {
			perror("sigstress: timer_create");
			exit(EX_SETUP);
		}
		t->have_timer[k] = true;
		struct itimerspec its = {
			.it_interval = { period_ns / 1000000000L, period_ns % 1000000000L },
			.it_value = { 0, 1000 + k * (period_ns / 2) + t->id * 7919 },
		};
		if (timer_settime(t->timer[k], 0, &its, NULL) != 0) {
			perror("sigstress: timer_settime");
			exit(EX_SETUP);
		}
	}
}

/* Quiet: signals blocked first, so no handler runs half-way through. */
static void timers_stop(struct tstate *t)
{
	sigset_t both;
	sigemptyset(&both);
	sigaddset(&both, SIGALRM);
	sigaddset(&both, SIGRTMIN);
	pthread_sigmask(SIG_BLOCK, &both, NULL);
	for (int k = 0; k < 2; k++)
		if (t->have_timer[k]) {
			timer_delete(t->timer[k]);
			t->have_timer[k] = false;
		}
}

/* ---- the thread loop ------------------------------------------------------------------ */

/* Pure computation on the working set: no library call, so that a handler
 * may siglongjmp out of it. */
static __attribute__((noinline)) void fill_and_verify(struct tstate *t)
{
	for (int i = 0; i < WORKSET; i++)
		blk_fill(t->blk[i], t->blk_size[i], new_seed());
	for (int i = 0; i < WORKSET; i++) {
		size_t at = blk_check(t->blk[i], t->blk_size[i]);
		if (at)
			fail(EX_CORRUPT, "thread block", t->blk[i], at - 1, t->blk_size[i]);
	}
}

static void thread_round(struct tstate *t)
{
	t->phase = "alloc";
	for (int i = 0; i < WORKSET; i++) {
		size_t s = pick_size(&t->rng);
		t->blk[i] = xcheck_alloc(malloc(s), s, "malloc in a thread returned NULL");
		t->blk_size[i] = s;
	}
	atomic_fetch_add_explicit(&t->ops, WORKSET, memory_order_relaxed);

	t->phase = "fill";
	if (cfg.variant == V_LONGJMP && sigsetjmp(t->jb, 1))
		atomic_fetch_add_explicit(&t->landings, 1, memory_order_relaxed);
	t->jmp_armed = 1;
	atomic_signal_fence(memory_order_seq_cst);
	fill_and_verify(t);
	atomic_signal_fence(memory_order_seq_cst);
	t->jmp_armed = 0;

	/* realloc one block, check the prefix survived */
	t->phase = "realloc";
	int i = (int)(xorshift(&t->rng) % WORKSET);
	size_t ns = pick_size(&t->rng), keep = ns < t->blk_size[i] ? ns : t->blk_size[i];
	void *q = xcheck_alloc(realloc(t->blk[i], ns), ns, "realloc in a thread returned NULL");
	size_t at = blk_check_prefix(q, keep);
	if (at)
		fail(EX_CORRUPT, "realloc in a thread lost the contents", q, at - 1, keep);
	blk_fill(q, ns, new_seed());
	t->blk[i] = q;
	t->blk_size[i] = ns;

	/* one block to the handlers, the rest freed */
	t->phase = "free";
	int give = (int)(xorshift(&t->rng) % WORKSET);
	for (int k = 0; k < WORKSET; k++) {
		verify(t->blk[k], t->blk_size[k], "thread block before free");
		if (k == give && stash_put(&t2h, t->blk[k], &t->rng)) {
			t->blk[k] = NULL;
			continue;
		}
		free(t->blk[k]);
		t->blk[k] = NULL;
	}

	/* blocks handlers left: check and free them here */
	t->phase = "stash";
	for (int k = 0; k < 2; k++) {
		void *h = stash_take(&h2t, &t->rng);
		if (!h)
			break;
		verify(h, 0, "handler block taken by a thread");
		free(h);
		atomic_fetch_add_explicit(&t->h2t_freed, 1, memory_order_relaxed);
	}
	t->phase = "loop";
}

static void *alt_setup(struct tstate *t)
{
	stack_t ss;
	void *mem = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("sigstress: mmap altstack");
		exit(EX_SETUP);
	}
	ss.ss_sp = mem;
	ss.ss_size = ALT_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) != 0) {
		perror("sigstress: sigaltstack");
		exit(EX_SETUP);
	}
	t->alt_lo = (uintptr_t)mem;
	t->alt_hi = t->alt_lo + ALT_SIZE;
	return mem;
}

static void thread_setup(struct tstate *t)
{
	t->tid = (pid_t)syscall(SYS_gettid);
	t->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)t->id * 0x100000001b3ull) ^ (uint64_t)t->tid;
	t->hrng = ~t->rng | 1;
	t->phase = "start";
	self = t;
	if (cfg.variant == V_ALTSTACK)
		alt_setup(t);
	timers_start(t);
}

static void *thread_main(void *arg)
{
	struct tstate *t = arg;

	thread_setup(t);
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		thread_round(t);
	timers_stop(t);
	t->phase = "done";
	return NULL;
}

/* ---- fork --------------------------------------------------------------------------------- */

static __attribute__((noreturn)) void child_main(void)
{
	struct sigaction dfl;
	uint64_t rng = 0x2545F4914F6CDD1Dull ^ (uint64_t)getpid();

	uint64_t refused0 = atomic_load(&fork_refusals);   /* the parent's, inherited */

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGALRM, &dfl, NULL);   /* so that alarm() kills a hung child */
	alarm(5);
	for (int i = 0; i < 200; i++) {
		size_t s = pick_size(&rng);
		void *p = malloc(s);
		if (!p)
			_exit(EX_NOMEM);
		blk_fill(p, s, new_seed());
		if (blk_check(p, s))
			_exit(EX_CORRUPT);
		free(p);
	}
	/* the handler, in the child, with the parent's stashes */
	for (int i = 0; i < 20; i++)
		raise(SIGRTMIN);
	void *h = stash_take(&h2t, &rng);
	if (h) {
		if (blk_check(h, 0))
			_exit(EX_CORRUPT);
		free(h);
	}
	if (atomic_load(&fork_refusals) != refused0)
		_exit(EX_NOMEM);   /* a handler allocation failed in the child */
	_exit(0);
}

static void fork_once(void)
{
	pid_t pid = fork();
	int st;

	if (pid < 0) {
		perror("sigstress: fork");
		return;
	}
	if (pid == 0)
		child_main();
	atomic_fetch_add(&forks, 1);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			perror("sigstress: waitpid");
			return;
		}
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
		atomic_fetch_add(&fork_fail_hang, 1);
		fprintf(stderr, "sigstress: FAIL: forked child %d hung (alarm(5) fired)\n", (int)pid);
	} else if (WIFSIGNALED(st)) {
		atomic_fetch_add(&fork_fail_crash, 1);
		fprintf(stderr, "sigstress: FAIL: forked child %d killed by signal %d\n", (int)pid,
			WTERMSIG(st));
	} else if (WEXITSTATUS(st) == EX_NOMEM) {
		atomic_fetch_add(&fork_fail_nomem, 1);
		fprintf(stderr, "sigstress: forked child %d: an allocation returned NULL\n", (int)pid);
	} else if (WEXITSTATUS(st) != 0) {
		atomic_fetch_add(&fork_fail_code, 1);
		fprintf(stderr, "sigstress: FAIL: forked child %d exited with %d\n", (int)pid,
			WEXITSTATUS(st));
	}
}

/* ---- the watchdog ------------------------------------------------------------------------ */

static double elapsed(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t_start.tv_sec) + (double)(t.tv_nsec - t_start.tv_nsec) * 1e-9;
}

static void report_thread(struct say_buf *s, const struct tstate *t)
{
	say_str(s, "  thread ");
	say_u64(s, (uint64_t)t->id);
	say_str(s, ": phase ");
	say_str(s, t->phase ? (const char *)t->phase : "?");
	say_str(s, ", handler depth ");
	say_u64(s, (uint64_t)t->hdepth);
	say_str(s, ", ops ");
	say_u64(s, atomic_load(&t->ops));
	say_str(s, ", handler runs ");
	say_u64(s, atomic_load(&t->hcalls));
	say_str(s, "\n");
	say_flush(s, 2);
}

/* All signals blocked (inherited from main at creation): never interrupted,
 * and it reports with write(2) alone, so a hang anywhere cannot stop it. */
static void *watchdog_main(void *arg)
{
	(void)arg;
	struct timespec deadline = t_start;
	deadline.tv_sec += (time_t)(cfg.seconds + 0.999) + cfg.watchdog_s;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR)
		;
	struct say_buf s = { .n = 0 };
	say_str(&s, "sigstress: FAIL: watchdog: variant ");
	say_str(&s, variant_names[cfg.variant]);
	say_str(&s, " did not finish within ");
	say_u64(&s, (uint64_t)((int)(cfg.seconds + 0.999) + cfg.watchdog_s));
	say_str(&s, " s: hang (deadlock or livelock); progress so far:\n");
	say_flush(&s, 2);
	for (int i = 0; i < cfg.threads; i++)
		report_thread(&s, &states[i]);
	if (cfg.variant == V_FORK)
		report_thread(&s, &main_state);
	if (getenv("SIGSTRESS_ABORT_ON_HANG"))
		abort();   /* for a core file */
	_exit(EX_HANG);
}

/* ---- the library's counters ---------------------------------------------------------------- */

static char json_buf[1 << 20];

static int check_counters(void)
{
	print_stats_fn ps = sig_print_stats_fn();
	const char *js;
	char policy[32] = "", stats_mode[16] = "";
	uint64_t entries = 0, sig_malloc = 0, sig_free = 0, small = 0, deferred = 0, drained = 0;
	uint64_t hits = 0, misses = 0, stale = 0, reentry = 0, invalid = 0;
	int bad = 0;

	if (!ps) {
		if (!cfg.quiet)
			printf("sigstress: libmagpage not preloaded; no counters to check\n");
		return 0;
	}
	/* an ordinary small call drains what handlers deferred */
	void *volatile one = malloc(16);
	free(one);
	js = sig_stats_json(ps, json_buf, sizeof(json_buf));
	if (!js || !json_str(js, SIG_SECTION, "policy", policy, sizeof(policy)) ||
	    !json_u64(js, SIG_SECTION, "handler_entries", &entries) ||
	    !json_u64(js, SIG_SECTION, "malloc", &sig_malloc) ||
	    !json_u64(js, SIG_SECTION, "free", &sig_free) ||
	    !json_u64(js, SIG_SECTION, "small_to_zone", &small) ||
	    !json_u64(js, SIG_SECTION, "deferred", &deferred) ||
	    !json_u64(js, SIG_SECTION, "deferred_drained", &drained) ||
	    !json_u64(js, SIG_SECTION, "reentry_caught", &reentry) ||
	    !json_u64(js, SIG_SECTION, "stale_frames", &stale) ||
	    !json_u64(js, CACHES_SECTION, "irq_hits", &hits) ||
	    !json_u64(js, CACHES_SECTION, "irq_misses", &misses) ||
	    !json_u64(js, MALLOC_SECTION, "invalid_frees", &invalid)) {
		fprintf(stderr, "sigstress: FAIL: cannot parse libmagpage's JSON report\n");
		return EX_COUNTERS;
	}
	json_str(js, "\"config\":{", "stats", stats_mode, sizeof(stats_mode));
	bool counting = strcmp(stats_mode, "0") != 0;

	printf("sigstress: libmagpage signal:%s: handler_entries %lu, handler malloc %lu, free %lu, "
	       "small_to_zone %lu, deferred %lu (drained %lu), cache irq_hits %lu irq_misses %lu, "
	       "stale_frames %lu, reentry_caught %lu, invalid_frees %lu\n",
	       policy, (unsigned long)entries, (unsigned long)sig_malloc, (unsigned long)sig_free,
	       (unsigned long)small, (unsigned long)deferred, (unsigned long)drained,
	       (unsigned long)hits, (unsigned long)misses, (unsigned long)stale,
	       (unsigned long)reentry, (unsigned long)invalid);

#define EXPECT(cond, ...) do { \
		if (!(cond)) { \
			fprintf(stderr, "sigstress: FAIL: counters: " __VA_ARGS__); \
			fputc('\n', stderr); \
			bad = 1; \
		} \
	} while (0)

	EXPECT(entries > 1000, "signal.handler_entries %lu <= 1000", (unsigned long)entries);
	EXPECT(invalid == 0, "malloc.invalid_frees %lu != 0", (unsigned long)invalid);
	if (counting)
		EXPECT(drained == deferred, "signal.deferred %lu, but deferred_drained %lu after an "
		       "ordinary call: deferred frees lost", (unsigned long)deferred,
		       (unsigned long)drained);
	char cache_type[32] = "";
	json_str(js, CACHES_SECTION, "type", cache_type, sizeof(cache_type));
	if (strcmp(cache_type, "bonwick") == 0 || strcmp(cache_type, "pcp-rseq") == 0) {
		/* handlers use these caches directly (restartable): no _irq path */
		EXPECT(hits == 0 && misses == 0, "cache %s: the _irq path was taken: irq_hits %lu, "
		       "irq_misses %lu", cache_type, (unsigned long)hits, (unsigned long)misses);
	} else if (strcmp(policy, "bypass") == 0) {
		EXPECT(hits == 0 && misses == 0,
		       "signal:bypass, yet handlers touched a magazine: irq_hits %lu, irq_misses %lu",
		       (unsigned long)hits, (unsigned long)misses);
		if (counting)
			EXPECT(sig_malloc > 0, "signal:bypass: signal.malloc is 0");
	} else if (strcmp(policy, "trylock") == 0) {
		EXPECT(hits > 0, "signal:trylock: no handler allocation or free hit a magazine "
		       "(irq_hits 0, irq_misses %lu)", (unsigned long)misses);
	} else {
		EXPECT(0, "unknown signal policy \"%s\"", policy);
	}
	if (cfg.variant == V_LONGJMP)
		EXPECT(stale > 0, "longjmp variant: stale_frames is 0");
	if (!counting && !cfg.quiet)
		printf("sigstress: note: MAGPAGE_CONF has no stats:json; signal.malloc not checked\n");
#undef EXPECT
	return bad ? EX_COUNTERS : 0;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: sigstress [plain|nodefer|altstack|longjmp|fork] [-t threads] "
		"[-d seconds] [-p period_us] [-w watchdog_s] [-q]\n");
	exit(EX_SETUP);
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-') {
			int v;
			for (v = 0; variant_names[v]; v++)
				if (strcmp(a, variant_names[v]) == 0)
					break;
			if (!variant_names[v])
				usage();
			cfg.variant = (enum variant)v;
		} else if (strcmp(a, "-q") == 0) {
			cfg.quiet = true;
		} else if (i + 1 < argc && strcmp(a, "-t") == 0) {
			cfg.threads = atoi(argv[++i]);
		} else if (i + 1 < argc && strcmp(a, "-d") == 0) {
			cfg.seconds = atof(argv[++i]);
		} else if (i + 1 < argc && strcmp(a, "-p") == 0) {
			cfg.period_us = atol(argv[++i]);
		} else if (i + 1 < argc && strcmp(a, "-w") == 0) {
			cfg.watchdog_s = atoi(argv[++i]);
		} else {
			usage();
		}
	}
	if (cfg.threads < 1 || cfg.threads > MAX_THREADS || cfg.seconds <= 0 ||
	    cfg.seconds > 3600 || cfg.period_us < 5 || cfg.watchdog_s < 1)
		usage();
}

static void sleep_until(double when)
{
	double left;
	while ((left = when - elapsed()) > 0) {
		struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
		nanosleep(&ts, NULL);   /* EINTR (fork variant): loop */
	}
}

int main(int argc, char **argv)
{
	pthread_t th[MAX_THREADS], wd;
	sigset_t all, old;

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	states = calloc((size_t)cfg.threads, sizeof(*states));
	if (!states)
		return EX_SETUP;

	/* the watchdog first, with every signal blocked */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&wd, NULL, watchdog_main, NULL) != 0)
		return EX_SETUP;
	pthread_detach(wd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	install_handlers();
	for (int i = 0; i < cfg.threads; i++) {
		states[i].id = i;
		if (pthread_create(&th[i], NULL, thread_main, &states[i]) != 0) {
			perror("sigstress: pthread_create");
			return EX_SETUP;
		}
	}

	if (cfg.variant == V_FORK) {
		main_state.id = cfg.threads;
		thread_setup(&main_state);
		/* At least MIN_FORKS forks: a loaded machine gets more time,
		 * up to half the watchdog's margin, to reach them. */
		while (elapsed() < cfg.seconds ||
		       (atomic_load(&forks) < MIN_FORKS &&
			elapsed() < cfg.seconds + cfg.watchdog_s / 2.0)) {
			fork_once();
			thread_round(&main_state);
			sleep_until(elapsed() + 0.005);
		}
		timers_stop(&main_state);
	} else {
		sleep_until(cfg.seconds);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < cfg.threads; i++)
		pthread_join(th[i], NULL);

	/* with every timer gone: free what the stashes still hold */
	stash_drain(&h2t, "handler block left in the stash");
	stash_drain(&t2h, "thread block left in the stash");

	uint64_t ops = 0, hcalls = 0, hallocs = 0, t2h_freed = 0, h2t_freed = 0, jumps = 0, land = 0;
	int depth = 0;
	int n = cfg.threads + (cfg.variant == V_FORK);
	for (int i = 0; i < n; i++) {
		struct tstate *t = i < cfg.threads ? &states[i] : &main_state;
		ops += atomic_load(&t->ops);
		hcalls += atomic_load(&t->hcalls);
		hallocs += atomic_load(&t->hallocs);
		t2h_freed += atomic_load(&t->t2h_freed);
		h2t_freed += atomic_load(&t->h2t_freed);
		jumps += atomic_load(&t->jumps);
		land += atomic_load(&t->landings);
		if (atomic_load(&t->max_depth) > depth)
			depth = atomic_load(&t->max_depth);
	}
	printf("sigstress: variant %s, %d threads, %.1f s, one signal per %ld us per thread: "
	       "thread allocations %lu, handler runs %lu (%.1f kHz/thread, nesting up to %d), "
	       "handler allocations %lu; freed across contexts: thread->handler %lu, "
	       "handler->thread %lu; siglongjmps %lu (landed %lu); forks %lu\n",
	       variant_names[cfg.variant], cfg.threads, cfg.seconds, cfg.period_us,
	       (unsigned long)ops, (unsigned long)hcalls,
	       (double)hcalls / cfg.seconds / 1000.0 / n, depth, (unsigned long)hallocs,
	       (unsigned long)t2h_freed, (unsigned long)h2t_freed, (unsigned long)jumps,
	       (unsigned long)land, (unsigned long)atomic_load(&forks));

	if (atomic_load(&fork_fail_hang))
		return EX_HANG;
	if (atomic_load(&fork_fail_crash))
		return EX_CHILD;
	if (cfg.variant == V_FORK) {
		uint64_t refused = atomic_load(&fork_refusals), nforks = atomic_load(&forks);
		uint64_t child_nomem = atomic_load(&fork_fail_nomem);
		printf("sigstress: %lu handler allocations failed (NULL, ENOMEM) while forking; "
		       "%lu forks, one per %.0f ms\n", (unsigned long)refused, (unsigned long)nforks,
		       nforks ? cfg.seconds * 1000.0 / (double)nforks : 0.0);
		if (refused || child_nomem) {
			fprintf(stderr, "sigstress: FAIL: %lu handler allocations (malloc, calloc, realloc, "
				"posix_memalign) failed while a fork was prepared, and %lu children "
				"had an allocation fail; memory is plentiful\n", (unsigned long)refused,
				(unsigned long)child_nomem);
			return EX_NOMEM;
		}
		if (nforks < MIN_FORKS) {
			fprintf(stderr, "sigstress: FAIL: only %lu forks in %.1f s: the fork variant must "
				"fork at least %d times\n", (unsigned long)nforks, elapsed(), MIN_FORKS);
			return EX_SETUP;
		}
	}
	if (atomic_load(&fork_fail_code))
		return EX_CORRUPT;
	if (hcalls < 1000) {
		fprintf(stderr, "sigstress: FAIL: only %lu handler runs: the timers did not deliver\n",
			(unsigned long)hcalls);
		return EX_SETUP;
	}
	if (cfg.variant == V_LONGJMP && jumps == 0) {
		fprintf(stderr, "sigstress: FAIL: longjmp variant made no siglongjmp\n");
		return EX_SETUP;
	}
	int rc = check_counters();
	if (rc == 0)
		printf("sigstress: PASS\n");
	fflush(stdout);
	return rc;
}
