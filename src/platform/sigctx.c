/*
 * sigctx.c — signal handlers are interrupts.
 *
 * The trampoline (preload/signals.c) calls sigctx_enter/sigctx_leave around
 * every handler the program installed, so a live handler on the thread means
 * "interrupt context": the in_interrupt() of the design.
 *
 * siglongjmp out of a handler skips sigctx_leave, at any nesting depth, and
 * a nested handler may jump out of the bookkeeping of the one it interrupted.
 * So the truth is not a count but two stack addresses: the trampoline frame
 * of the outermost live handler on the thread's own stack (outer_sp), and
 * the same on its sigaltstack (outer_alt_sp).  On one stack, handler frames
 * nest downwards, so code still inside the outermost handler runs below its
 * frame, and the thread found at or above it has left every handler on that
 * stack, however deep they were nested.  Once on the altstack, every deeper
 * handler is on it too; a thread running off the altstack has left all of
 * them.  depth (entered minus left) is only the fast path's hint: non-zero
 * sends the caller here, where the two records decide, and a stale family is
 * cleared together with depth.
 *
 * Every record is one aligned store, and each step re-reads what it depends
 * on, so a nested handler that interrupts this bookkeeping and jumps out
 * leaves at worst a stale record, which the next check clears.  When the
 * stacks cannot be compared a record is kept: a wrong "still inside" only
 * costs speed (the zone path), a wrong "gone" could deadlock.
 *
 * No handler the trampoline runs ever interrupts the zone or a page-cache
 * critical section (they are held back, see sigctx_defer_signal), so a jump
 * out of a handler never abandons one: in_zone and in_cache need no
 * recovery.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

__thread struct mp_tls mp_tls __attribute__((tls_model("initial-exec")));
struct sig_stats sig_stats;
struct mp_lock sigctx_act_lock;

static bool on_altstack(uintptr_t sp)
{
	return sp - mp_tls.alt_lo < mp_tls.alt_size;
}

/* Clears the handler families the thread provably left, seen from sp. */
static void prune_stale(uintptr_t sp, bool cur_alt)
{
	uintptr_t alt = mp_tls.outer_alt_sp, main = mp_tls.outer_sp;

	if (alt && (!cur_alt || sp >= alt))
		mp_tls.outer_alt_sp = 0;
	if (main && !cur_alt && sp >= main)
		mp_tls.outer_sp = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (mp_tls.outer_sp || mp_tls.outer_alt_sp)
		return;
	uint32_t levels = mp_tls.depth;
	if (levels) {
		mp_tls.depth = 0;
		__atomic_add_fetch(&sig_stats.stale_frames, levels, __ATOMIC_RELAXED);
	}
}

bool sigctx_in_irq_slow(void)
{
	if (mp_tls.depth) {
		/* A child of _Fork called from a handler: a new process. */
		if (unlikely(os_forked()))
			return mp_tls.in_cache != 0;
		uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
		prune_stale(sp, on_altstack(sp));
	}
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

uintptr_t sigctx_enter(uintptr_t sp, bool may_be_on_altstack)
{
	bool alt = on_altstack(sp);

	if (!alt && may_be_on_altstack) {
		stack_t ss;
		if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK)) {
			/* an altstack of 4 GiB or more is taken as its top
			 * 4 GiB, where its handlers' frames are */
			size_t size = ss.ss_size > UINT32_MAX ? UINT32_MAX : ss.ss_size;
			mp_tls.alt_size = 0;
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			mp_tls.alt_lo = (uintptr_t)ss.ss_sp + ss.ss_size - size;
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			mp_tls.alt_size = (uint32_t)size;
			alt = true;
		}
	}
	prune_stale(sp, alt);
	if (alt) {
		if (!mp_tls.outer_alt_sp)
			mp_tls.outer_alt_sp = sp;
	} else if (!mp_tls.outer_sp) {
		mp_tls.outer_sp = sp;
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	mp_tls.depth++;
	/* free()'s glibc way tests only this: the handler's frees of glibc
	 * pointers take the slow path (deferred), and the first free after it
	 * in process context opens the way again (malloc.c, free_other). */
	mp_tls.free_below = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_add_fetch(&sig_stats.handler_entries, 1, __ATOMIC_RELAXED);
	return sp | alt;
}

void sigctx_leave(uintptr_t frame)
{
	uintptr_t sp = frame & ~(uintptr_t)1;

	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (mp_tls.depth == 0)
		return;            /* cleared: a fork child, or found stale */
	if (frame & 1) {
		if (mp_tls.outer_alt_sp == sp)
			mp_tls.outer_alt_sp = 0;
	} else if (mp_tls.outer_sp == sp) {
		mp_tls.outer_sp = 0;
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (!mp_tls.outer_sp && !mp_tls.outer_alt_sp)
		mp_tls.depth = 0;
	else if (mp_tls.depth > 1)
		mp_tls.depth--;
}

void sigctx_fork_child(void)
{
	/* Held with every signal blocked, so never by this thread: another
	 * thread's, which does not exist here. */
	mp_lock_reset(&sigctx_act_lock);
	mp_tls.depth = 0;
	mp_tls.outer_sp = mp_tls.outer_alt_sp = 0;
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

/*
 * The masks below are the kernel's: bit sig-1 of one word for signals
 * 1..64, the first word of glibc's sigset_t.  The 128-byte sigset_t lives
 * only in this out-of-line frame, so the paths a handler takes (zone lock,
 * trampoline) stay small on a 4 KiB alternate stack.
 */
static NOINLINE void mask_change(int how, uint64_t bits, uint64_t *old)
{
	sigset_t set, prev;

	sigemptyset(&set);
	memcpy(&set, &bits, sizeof(bits));
	os.set_sigmask(how, &set, old ? &prev : NULL);
	if (old)
		memcpy(old, &prev, sizeof(*old));
}

void sigctx_zone_enter(struct zone_irq *z)
{
	if (opt.zone_irqsave == IRQSAVE_SIGMASK)
		mask_change(SIG_BLOCK, ~0ull, &z->saved);
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
		mask_change(SIG_SETMASK, z->saved, NULL);
		return;
	}
	if (unlikely(mp_tls.deferred) && !mp_tls.in_cache)
		sigctx_release_deferred();
}

/* Unblocking delivers what was held back, with its siginfo. */
void sigctx_release_deferred(void)
{
	mask_change(SIG_UNBLOCK, __atomic_exchange_n(&mp_tls.deferred, 0, __ATOMIC_RELAXED), NULL);
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
	if (likely(!mp_tls.in_zone && !mp_tls.in_cache) || synchronous_fault(sig, si) ||
	    sig < 1 || sig > 64)
		return false;
	/* Keep it blocked after the handler returns (uc_sigmask is restored by
	 * sigreturn), block it now too in case of SA_NODEFER, and queue it
	 * again to this very thread with its original siginfo. */
	mask_change(SIG_BLOCK, 1ull << (sig - 1), NULL);
	if (uc)
		sigaddset(&((ucontext_t *)uc)->uc_sigmask, sig);
	mp_tls.deferred |= 1ull << (sig - 1);
	os_signal_self(sig, si);
	__atomic_add_fetch(&sig_stats.deferred_signals, 1, __ATOMIC_RELAXED);
	MP_PROBE2(signal_deferred, sig, mp_tls.in_zone ? PROBE_IN_ZONE : PROBE_IN_CACHE);
	return true;
}
