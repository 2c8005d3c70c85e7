/*
 * signals.c — every handler the program installs runs in a trampoline.
 *
 * sigaction, signal, bsd_signal, sysv_signal, sigset and siginterrupt are
 * interposed.  The kernel is given the trampoline; the program's handler
 * is kept here and reported back in the old action, with the flags the
 * kernel holds, so the interposition is invisible.  The trampoline marks
 * the thread as "in a handler" for the allocator (sigctx_enter/leave: the
 * in_interrupt() of the design) and keeps errno as the interrupted code
 * left it.
 *
 * The handler a signal will run is one 64-bit word per signal, so a signal
 * that arrives while another thread replaces the handler sees either the
 * old or the new one, whole.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "internal.h"

#define EXPORT __attribute__((visibility("default")))
#define NSIGS 65

extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);
sighandler_t bsd_signal(int sig, sighandler_t h);
sighandler_t sysv_signal(int sig, sighandler_t h);
sighandler_t __sysv_signal(int sig, sighandler_t h);
sighandler_t sigset(int sig, sighandler_t h);
int siginterrupt(int sig, int flag);

/* packed[sig]: the program's handler (or SIG_DFL 0 / SIG_IGN 1) in the low
 * bits, plus the flags the trampoline needs. */
#define PK_SIGINFO   (1ull << 63)
#define PK_RESETHAND (1ull << 62)
#define PK_ONSTACK   (1ull << 61)
#define PK_HANDLER   ((1ull << 57) - 1)
static uint64_t packed[NSIGS];
static struct sigaction user_act[NSIGS];   /* as the program gave it; act_lock */
/* The signals siginterrupt(sig, 1) marked: signal() installs their
 * handlers without SA_RESTART, as glibc's does (its own set is internal). */
static sigset_t intr_set;                  /* act_lock */
#define act_lock sigctx_act_lock           /* platform/sigctx.c: reset in fork children */

static void trampoline(int sig, siginfo_t *si, void *uc);

static bool is_trampoline(const struct sigaction *k)
{
	return (k->sa_flags & SA_SIGINFO) && k->sa_sigaction == trampoline;
}

/* The table says SIG_DFL and the kernel still runs the trampoline: a
 * sigaction in flight on another thread, which act_lock waits out, or a
 * table and kernel that parted some other way (a child that shares this
 * memory and that os_vm_shared_child cannot tell, a raw rt_sigaction
 * system call).  The kernel is given SIG_DFL too where
 * it still has the trampoline, so that the signal raised again gets the
 * default action instead of this function for ever.  act_lock is never
 * held with a signal open (sigaction blocks them all), so a handler may
 * take it.  Out of line: the trampoline's frame stays small for tiny
 * altstacks. */
__attribute__((noinline, cold)) static void default_again(int sig)
{
	struct sigaction k;

	mp_lock(&act_lock);
	if ((__atomic_load_n(&packed[sig], __ATOMIC_RELAXED) & PK_HANDLER) == 0 &&
	    __sigaction(sig, NULL, &k) == 0 && is_trampoline(&k)) {
		memset(&k, 0, sizeof(k));
		k.sa_handler = SIG_DFL;
		__sigaction(sig, &k, NULL);
	}
	mp_unlock(&act_lock);
	raise(sig);
}

static void trampoline(int sig, siginfo_t *si, void *uc)
{
	uint64_t e = __atomic_load_n(&packed[sig], __ATOMIC_ACQUIRE);
	uintptr_t h = (uintptr_t)(e & PK_HANDLER);
	int saved_errno = errno;

	/* This thread holds the zone lock: the handler runs once it is out. */
	if (unlikely(sigctx_defer_signal(sig, si, uc))) {
		errno = saved_errno;
		return;
	}
	uintptr_t frame = sigctx_enter((uintptr_t)__builtin_frame_address(0), e & PK_ONSTACK);
	/* The kernel has reset its copy already; a vfork child's is its own. */
	if ((e & PK_RESETHAND) && !os_vm_shared_child())
		__atomic_compare_exchange_n(&packed[sig], &e, 0, false, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED);
	if (h > 1) {
		if (e & PK_SIGINFO)
			((void (*)(int, siginfo_t *, void *))h)(sig, si, uc);
		else
			((void (*)(int))h)(sig);
	} else if (h == 0) {
		/* SIG_DFL was installed while this signal was in flight: the
		 * kernel has SIG_DFL now; deliver it again to get the default. */
		default_again(sig);
	}
	sigctx_leave(frame);
	errno = saved_errno;
}

/* The old action as the program knows it: the kernel's, or where the kernel
 * runs the trampoline, the program's handler the table kept.  act_lock. */
static void report_old(const struct sigaction *kold, uint64_t prev_packed,
		       const struct sigaction *prev_user, struct sigaction *old)
{
	int info = prev_user->sa_flags & SA_SIGINFO;
	*old = *kold;
	if (!is_trampoline(kold)) {
		/* SIG_DFL or SIG_IGN with SA_SIGINFO the program never gave:
		 * the trampoline's, left by a kernel that reset the handler
		 * (SA_RESETHAND) */
		if ((uintptr_t)kold->sa_handler <= 1 && !info)
			old->sa_flags &= ~SA_SIGINFO;
		return;
	}
	/* The kernel's flags and mask, which may have changed without this
	 * table (glibc's own siginterrupt, a raw system call), less the
	 * trampoline's SA_SIGINFO; they include SA_RESTORER, as glibc's
	 * sigaction reports it. */
	old->sa_flags = (kold->sa_flags & ~SA_SIGINFO) | info;
	uintptr_t h = (uintptr_t)(prev_packed & PK_HANDLER);
	if (info)
		old->sa_sigaction = (void (*)(int, siginfo_t *, void *))h;
	else
		old->sa_handler = (void (*)(int))h;
}

/*
 * A child that runs in its parent's memory (vfork; Python's subprocess and
 * posix_spawn-like code reset the child's signals there before exec): the
 * table is the parent's, and the parent's kernel still sends its signals
 * to the trampoline, so the child tells its own kernel and writes nothing
 * here.  A handler it installs runs without the trampoline: such a child
 * may only exec or _exit, and exec drops handlers anyway.
 */
static int sigaction_lent_memory(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct sigaction kold, prev_user;
	sigset_t saved;
	int rc = __sigaction(sig, act, &kold);

	if (rc != 0 || !old)
		return rc;
	sigctx_block_all(&saved);
	mp_lock(&act_lock);
	uint64_t prev_packed = packed[sig];
	prev_user = user_act[sig];
	mp_unlock(&act_lock);
	sigctx_restore(&saved);
	report_old(&kold, prev_packed, &prev_user, old);
	return 0;
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (sig <= 0 || sig >= NSIGS || sig == SIGKILL || sig == SIGSTOP)
		return __sigaction(sig, act, old);
	if (unlikely(os_vm_shared_child()))
		return sigaction_lent_memory(sig, act, old);

	struct sigaction want, k, kold, prev_user;
	sigset_t saved;
	int rc;

	if (act)
		want = *act;          /* act and old may be the same object */
	sigctx_block_all(&saved);
	mp_lock(&act_lock);
	uint64_t prev_packed = packed[sig];
	prev_user = user_act[sig];
	if (act) {
		uintptr_t h = (want.sa_flags & SA_SIGINFO) ? (uintptr_t)want.sa_sigaction
							   : (uintptr_t)want.sa_handler;
		uint64_t e = h;
		k = want;
		if (h > 1) {
			k.sa_sigaction = trampoline;
			k.sa_flags |= SA_SIGINFO;
			if (want.sa_flags & SA_SIGINFO)
				e |= PK_SIGINFO;
			if (want.sa_flags & SA_RESETHAND)
				e |= PK_RESETHAND;
			if (want.sa_flags & SA_ONSTACK)
				e |= PK_ONSTACK;
		}
		user_act[sig] = want;
		__atomic_store_n(&packed[sig], e, __ATOMIC_RELEASE);
	}
	rc = __sigaction(sig, act ? &k : NULL, &kold);
	if (rc != 0 && act) {
		__atomic_store_n(&packed[sig], prev_packed, __ATOMIC_RELEASE);
		user_act[sig] = prev_user;
	}
	if (rc == 0 && old)
		report_old(&kold, prev_packed, &prev_user, old);
	mp_unlock(&act_lock);
	sigctx_restore(&saved);
	return rc;
}

static sighandler_t install(int sig, sighandler_t h, int flags, bool mask_self)
{
	struct sigaction sa, old;

	if (h == SIG_ERR) {     /* glibc's signal family refuses it too */
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (mask_self && sig > 0 && sig < NSIGS)
		sigaddset(&sa.sa_mask, sig);
	if (sigaction(sig, &sa, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* BSD semantics, as glibc's signal(): restart unless siginterrupt said
 * otherwise, the signal masked while its handler runs. */
static sighandler_t install_bsd(int sig, sighandler_t h)
{
	sigset_t saved;
	sigctx_block_all(&saved);
	mp_lock(&act_lock);
	int intr = sig > 0 && sig < NSIGS && sigismember(&intr_set, sig) == 1;
	mp_unlock(&act_lock);
	sigctx_restore(&saved);
	return install(sig, h, intr ? 0 : SA_RESTART, true);
}

EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	return install_bsd(sig, h);
}

EXPORT sighandler_t bsd_signal(int sig, sighandler_t h)
{
	return install_bsd(sig, h);
}

/* glibc's siginterrupt changes the kernel's action through its internal
 * sigaction, which would leave this table's copy behind; this one goes
 * through the interposed sigaction, and remembers the choice for
 * signal(). */
EXPORT int siginterrupt(int sig, int flag)
{
	struct sigaction a;
	sigset_t saved;

	if (sig <= 0 || sig >= NSIGS) {
		errno = EINVAL;
		return -1;
	}
	if (sigaction(sig, NULL, &a) < 0)
		return -1;
	if (!os_vm_shared_child()) {    /* a vfork child's table is its parent's */
		sigctx_block_all(&saved);
		mp_lock(&act_lock);
		if (flag)
			sigaddset(&intr_set, sig);
		else
			sigdelset(&intr_set, sig);
		mp_unlock(&act_lock);
		sigctx_restore(&saved);
	}
	if (flag)
		a.sa_flags &= ~SA_RESTART;
	else
		a.sa_flags |= SA_RESTART;
	return sigaction(sig, &a, NULL);
}

/* System V semantics: one-shot, not masked. */
EXPORT sighandler_t sysv_signal(int sig, sighandler_t h)
{
	return install(sig, h, SA_RESETHAND | SA_NODEFER, false);
}

EXPORT sighandler_t __sysv_signal(int sig, sighandler_t h)
{
	return sysv_signal(sig, h);
}

/* sigset: SIG_HOLD blocks the signal; anything else installs it and
 * unblocks.  Returns SIG_HOLD if the signal was blocked before. */
EXPORT sighandler_t sigset(int sig, sighandler_t h)
{
	sigset_t one, prev;

	if (sig <= 0 || sig >= NSIGS) {
		errno = EINVAL;
		return SIG_ERR;
	}
	sigemptyset(&one);
	sigaddset(&one, sig);
	if (h == SIG_HOLD) {
		struct sigaction cur;
		if (sigaction(sig, NULL, &cur) < 0 || sigprocmask(SIG_BLOCK, &one, &prev) < 0)
			return SIG_ERR;
		return sigismember(&prev, sig) ? SIG_HOLD : cur.sa_handler;
	}
	sighandler_t old = install(sig, h, 0, false);
	if (old == SIG_ERR || sigprocmask(SIG_UNBLOCK, &one, &prev) < 0)
		return SIG_ERR;
	return sigismember(&prev, sig) ? SIG_HOLD : old;
}
