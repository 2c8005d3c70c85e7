/*
 * sigctx.c — signal handlers are interrupts.
 *
 * The trampoline (preload/signals.c) calls sigctx_enter/sigctx_leave around
 * every handler the program installed, so mp_tls.depth > 0 means "this
 * thread is running a signal handler": the in_interrupt() of the design.
 *
 * siglongjmp out of a handler skips sigctx_leave.  The depth is recovered by
 * comparing stack pointers: the trampoline records its own frame address per
 * level, and code still inside that handler always runs deeper (at a lower
 * address) on the same stack.  Finding the thread above a recorded frame, on
 * the same stack, proves the handler is gone.  A handler on the sigaltstack is
 * gone once the thread runs outside the altstack.  When the stacks cannot be
 * compared the frame is kept: a wrong "still inside" only costs speed (the
 * zone path), a wrong "gone" could deadlock, so every doubt goes that way.
 */
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

__thread struct mp_tls mp_tls __attribute__((tls_model("initial-exec")));
struct sig_stats sig_stats;

static bool on_altstack(uintptr_t sp)
{
	return mp_tls.alt_hi && sp >= mp_tls.alt_lo && sp < mp_tls.alt_hi;
}

/* The record of handler level `level` (0-based): a ring of the last
 * SIGCTX_FRAMES levels, so the innermost ones are always known. */
static inline uintptr_t *frame_slot(uint32_t level)
{
	return &mp_tls.frame_sp[level % SIGCTX_FRAMES];
}

/*
 * Pops every recorded handler level that the thread provably left: on the
 * same stack, code still inside a handler runs strictly below its
 * trampoline's frame, so being at or above it (a new trampoline reusing the
 * very address after a siglongjmp) means the handler is gone.  A level whose
 * record was overwritten by deeper nesting is not judged: the thread stays
 * "in a handler" (the zone path) until a normal return pops it.
 */
static void prune_stale(uintptr_t sp)
{
	while (mp_tls.depth > 0) {
		uintptr_t *slot = frame_slot(mp_tls.depth - 1);
		uintptr_t f = *slot;
		bool f_alt = f & 1, cur_alt = on_altstack(sp);
		uintptr_t fsp = f & ~(uintptr_t)1;
		bool stale;

		if (f == 0)
			break;
		if (f_alt)
			stale = !cur_alt || sp >= fsp;
		else
			stale = !cur_alt && sp >= fsp;
		if (!stale)
			break;
		*slot = 0;
		mp_tls.depth--;
		__atomic_add_fetch(&sig_stats.stale_frames, 1, __ATOMIC_RELAXED);
	}
}

bool sigctx_in_irq_slow(void)
{
	if (mp_tls.depth)
		prune_stale((uintptr_t)__builtin_frame_address(0));
	if (mp_tls.depth)
		return true;
	if (mp_tls.in_cache) {
		/* Re-entered while this thread holds a page-cache lock: a handler
		 * the trampoline never saw.  Take the zone path, never the lock. */
		__atomic_add_fetch(&sig_stats.reentry_caught, 1, __ATOMIC_RELAXED);
		return true;
	}
	return false;
}

void sigctx_enter(uintptr_t sp, bool may_be_on_altstack)
{
	if (may_be_on_altstack) {
		stack_t ss;
		if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK)) {
			mp_tls.alt_lo = (uintptr_t)ss.ss_sp;
			mp_tls.alt_hi = (uintptr_t)ss.ss_sp + ss.ss_size;
			sp |= 1;
		}
	}
	prune_stale(sp & ~(uintptr_t)1);
	*frame_slot(mp_tls.depth) = sp;
	mp_tls.depth++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_add_fetch(&sig_stats.handler_entries, 1, __ATOMIC_RELAXED);
}

void sigctx_leave(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (mp_tls.depth == 0)
		return;
	mp_tls.depth--;
	*frame_slot(mp_tls.depth) = 0;
}

void sigctx_block_all(sigset_t *saved)
{
	sigset_t all;
	sigfillset(&all);
	os.set_sigmask(SIG_BLOCK, &all, saved);
}

void sigctx_restore(const sigset_t *saved)
{
	os.set_sigmask(SIG_SETMASK, saved, NULL);
}

/* ---- the zone lock's irqsave ------------------------------------------- */

void sigctx_zone_enter(struct zone_irq *z)
{
	if (opt.zone_irqsave == IRQSAVE_SIGMASK)
		sigctx_block_all(&z->saved);
	/* A signal arriving while this thread merely spins for the lock is
	 * held back too: its handler could otherwise wait for the lock it
	 * interrupted us acquiring. */
	mp_tls.in_zone = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

void sigctx_zone_leave(struct zone_irq *z)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	mp_tls.in_zone = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (opt.zone_irqsave == IRQSAVE_SIGMASK) {
		sigctx_restore(&z->saved);
		return;
	}
	if (unlikely(mp_tls.deferred)) {
		/* Unblocking delivers what was held back, with its siginfo. */
		sigset_t set;
		uint64_t bits = __atomic_exchange_n(&mp_tls.deferred, 0, __ATOMIC_RELAXED);
		sigemptyset(&set);
		for (int sig = 1; sig <= 64; sig++)
			if (bits & (1ull << (sig - 1)))
				sigaddset(&set, sig);
		os.set_sigmask(SIG_UNBLOCK, &set, NULL);
	}
}

/* Faults raised by an instruction cannot wait: returning would execute the
 * instruction again. */
static bool synchronous_fault(int sig, const siginfo_t *si)
{
	return si && si->si_code > 0 &&
	       (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
		sig == SIGTRAP || sig == SIGSYS);
}

bool sigctx_defer_signal(int sig, siginfo_t *si, void *uc)
{
	if (likely(!mp_tls.in_zone) || synchronous_fault(sig, si) || sig < 1 || sig > 64)
		return false;
	/* Keep it blocked after the handler returns (uc_sigmask is restored by
	 * sigreturn), block it now too in case of SA_NODEFER, and queue it
	 * again to this very thread with its original siginfo. */
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	os.set_sigmask(SIG_BLOCK, &one, NULL);
	if (uc)
		sigaddset(&((ucontext_t *)uc)->uc_sigmask, sig);
	mp_tls.deferred |= 1ull << (sig - 1);
	if (si)
		syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), sig, si);
	else
		syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
	__atomic_add_fetch(&sig_stats.deferred_signals, 1, __ATOMIC_RELAXED);
	return true;
}
