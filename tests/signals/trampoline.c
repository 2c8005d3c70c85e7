/*
 * trampoline.c — the sigaction/signal interposition is invisible to the
 * program, and the handler depth it keeps (the in_interrupt() of the design)
 * is right: nested, on the altstack, and after siglongjmp out of a handler.
 * DESIGN.md, "Signal handlers are interrupts"; issue 3, point 1.
 *
 * Runs under LD_PRELOAD=libmagpage.so with stats:json (the malloc layer only
 * counts with stats on), once per signal policy; the library's API and
 * counters are reached with dlsym, never by linking it.  Every test runs in
 * its own Criterion worker process, so counters and handlers start fresh.
 */
#include <setjmp.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "sigcrit.h"

sighandler_t bsd_signal(int sig, sighandler_t h);
sighandler_t sysv_signal(int sig, sighandler_t h);
sighandler_t sigset(int sig, sighandler_t h);

/* sigset is obsolescent, and interposed all the same */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

TestSuite(trampoline, .init = load_api);

/* ---- handlers ----------------------------------------------------------------- */

static volatile sig_atomic_t plain_calls, plain2_calls, info_calls, info_bad;

static void h_plain(int sig)
{
	(void)sig;
	plain_calls++;
}

static void h_plain2(int sig)
{
	(void)sig;
	plain2_calls++;
}

static void h_info(int sig, siginfo_t *si, void *uc)
{
	if (!si || !uc || si->si_signo != sig)
		info_bad++;
	info_calls++;
}

static void reset_counts(void)
{
	plain_calls = plain2_calls = info_calls = info_bad = 0;
}

static void set_dfl(int sig)
{
	struct sigaction a;
	memset(&a, 0, sizeof(a));
	a.sa_handler = SIG_DFL;
	cr_assert_eq(sigaction(sig, &a, NULL), 0);
}

/* h_plain on SIGUSR1 with these flags and an empty mask. */
static void install_plain(int flags)
{
	struct sigaction a;
	memset(&a, 0, sizeof(a));
	a.sa_handler = h_plain;
	a.sa_flags = flags;
	sigemptyset(&a.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &a, NULL), 0);
}

#define FLAGS_SEEN ((int)(SA_SIGINFO | SA_RESTART | SA_NODEFER | SA_ONSTACK | SA_RESETHAND))

static void assert_same_mask(const sigset_t *want, const sigset_t *got, const char *what)
{
	for (int s = 1; s <= SIGRTMAX; s++) {
		if (s == SIGKILL || s == SIGSTOP || s == 32 || s == 33)
			continue;   /* unblockable, or glibc's internal signals */
		cr_assert_eq(sigismember(got, s), sigismember(want, s),
			     "%s: sa_mask differs at signal %d", what, s);
	}
}

/* ---- 1. what sigaction reports ---------------------------------------------- */

Test(trampoline, sigaction_reports_program_handler_flags_and_mask)
{
	static const int flagsets[] = {
		0, SA_RESTART, SA_NODEFER, SA_ONSTACK, SA_RESETHAND,
		SA_RESTART | SA_NODEFER | SA_ONSTACK | SA_RESETHAND,
	};

	for (int info = 0; info < 2; info++) {
		for (size_t k = 0; k < sizeof(flagsets) / sizeof(flagsets[0]); k++) {
			struct sigaction act, old;
			memset(&act, 0, sizeof(act));
			sigemptyset(&act.sa_mask);
			sigaddset(&act.sa_mask, SIGUSR2);
			sigaddset(&act.sa_mask, SIGTERM);
			sigaddset(&act.sa_mask, SIGRTMIN + 3);
			if (k & 1)
				sigaddset(&act.sa_mask, SIGCHLD);
			if (info) {
				act.sa_sigaction = h_info;
				act.sa_flags = flagsets[k] | SA_SIGINFO;
			} else {
				act.sa_handler = h_plain;
				act.sa_flags = flagsets[k];
			}
			cr_assert_eq(sigaction(SIGUSR1, &act, NULL), 0);
			memset(&old, 0xa5, sizeof(old));
			cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
			if (info)
				cr_assert_eq((void *)old.sa_sigaction, (void *)h_info,
					     "SA_SIGINFO handler not reported (flags %#x)", flagsets[k]);
			else
				cr_assert_eq((void *)old.sa_handler, (void *)h_plain,
					     "plain handler not reported (flags %#x)", flagsets[k]);
			cr_assert_eq(old.sa_flags & FLAGS_SEEN, act.sa_flags,
				     "flags %#x reported as %#x", act.sa_flags,
				     old.sa_flags & FLAGS_SEEN);
			assert_same_mask(&act.sa_mask, &old.sa_mask, "query");
		}
	}
	set_dfl(SIGUSR1);
}

Test(trampoline, sigaction_old_action_is_the_previous_one)
{
	struct sigaction a1, a2, old;

	memset(&a1, 0, sizeof(a1));
	a1.sa_sigaction = h_info;
	a1.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&a1.sa_mask);
	sigaddset(&a1.sa_mask, SIGUSR2);
	memset(&a2, 0, sizeof(a2));
	a2.sa_handler = h_plain;
	a2.sa_flags = SA_NODEFER;
	sigemptyset(&a2.sa_mask);

	set_dfl(SIGUSR1);
	cr_assert_eq(sigaction(SIGUSR1, &a1, &old), 0);
	cr_assert_eq((void *)old.sa_handler, (void *)SIG_DFL);
	cr_assert_eq(sigaction(SIGUSR1, &a2, &old), 0);
	cr_assert_eq((void *)old.sa_sigaction, (void *)h_info);
	cr_assert_eq(old.sa_flags & FLAGS_SEEN, SA_SIGINFO | SA_RESTART);
	assert_same_mask(&a1.sa_mask, &old.sa_mask, "old action");

	/* act and old the same object: old is written after act is read */
	struct sigaction both = a1;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
	cr_assert_eq(sigaction(SIGUSR1, &both, &both), 0);
#pragma GCC diagnostic pop
	cr_assert_eq((void *)both.sa_handler, (void *)h_plain);
	cr_assert_eq(both.sa_flags & FLAGS_SEEN, SA_NODEFER);
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert_eq((void *)old.sa_sigaction, (void *)h_info);

	/* the kernel-only signals pass through untouched */
	cr_assert_eq(sigaction(SIGKILL, &a2, NULL), -1);
	cr_assert_eq(errno, EINVAL);
	set_dfl(SIGUSR1);
}

/* ---- 2. signal() and its relatives ------------------------------------------ */

Test(trampoline, signal_returns_the_previous_handler)
{
	struct sigaction a, old;

	reset_counts();
	set_dfl(SIGUSR1);
	cr_assert_eq((void *)signal(SIGUSR1, h_plain), (void *)SIG_DFL);
	cr_assert_eq((void *)signal(SIGUSR1, h_plain2), (void *)h_plain);
	raise(SIGUSR1);
	cr_assert_eq(plain_calls, 0);
	cr_assert_eq(plain2_calls, 1);
	/* glibc's signal(): BSD semantics, restart and the signal masked */
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert_eq((void *)old.sa_handler, (void *)h_plain2);
	cr_assert(old.sa_flags & SA_RESTART);
	cr_assert(!(old.sa_flags & (SA_SIGINFO | SA_RESETHAND | SA_NODEFER)));
	cr_assert(sigismember(&old.sa_mask, SIGUSR1));
	cr_assert_eq((void *)signal(SIGUSR1, SIG_IGN), (void *)h_plain2);
	cr_assert_eq((void *)signal(SIGUSR1, SIG_DFL), (void *)SIG_IGN);

	/* a SA_SIGINFO handler installed with sigaction comes back from signal() */
	memset(&a, 0, sizeof(a));
	a.sa_sigaction = h_info;
	a.sa_flags = SA_SIGINFO;
	sigemptyset(&a.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &a, NULL), 0);
	cr_assert_eq((void *)signal(SIGUSR1, SIG_DFL), (void *)h_info);

	cr_assert_eq((void *)bsd_signal(SIGUSR1, h_plain), (void *)SIG_DFL);
	cr_assert_eq((void *)bsd_signal(SIGUSR1, SIG_DFL), (void *)h_plain);
	cr_assert_eq((void *)signal(0, h_plain), (void *)SIG_ERR);
	cr_assert_eq((void *)signal(SIGKILL, h_plain), (void *)SIG_ERR);

	/* SIG_ERR is no handler: refused, the handler in place kept (it was
	 * once installed, and the next signal jumped to address -1) */
	cr_assert_eq((void *)signal(SIGUSR1, h_plain), (void *)SIG_DFL);
	errno = 0;
	cr_assert_eq((void *)signal(SIGUSR1, SIG_ERR), (void *)SIG_ERR);
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_eq((void *)bsd_signal(SIGUSR1, SIG_ERR), (void *)SIG_ERR);
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_eq((void *)sysv_signal(SIGUSR1, SIG_ERR), (void *)SIG_ERR);
	cr_assert_eq(errno, EINVAL);
	reset_counts();
	raise(SIGUSR1);
	cr_assert_eq(plain_calls, 1);
	cr_assert_eq((void *)signal(SIGUSR1, SIG_DFL), (void *)h_plain);
}

Test(trampoline, sysv_signal_is_one_shot)
{
	struct sigaction old;

	reset_counts();
	set_dfl(SIGUSR1);
	cr_assert_eq((void *)sysv_signal(SIGUSR1, h_plain), (void *)SIG_DFL);
	raise(SIGUSR1);
	cr_assert_eq(plain_calls, 1);
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert_eq((void *)old.sa_handler, (void *)SIG_DFL, "sysv_signal handler not reset after delivery");
	cr_assert(!(old.sa_flags & SA_SIGINFO), "the trampoline's SA_SIGINFO reported after the reset");
}

Test(trampoline, sigset_hold_and_install)
{
	sigset_t cur;

	reset_counts();
	set_dfl(SIGUSR1);
	cr_assert_eq((void *)sigset(SIGUSR1, h_plain), (void *)SIG_DFL);
	cr_assert_eq((void *)sigset(SIGUSR1, SIG_HOLD), (void *)h_plain);
	raise(SIGUSR1);
	cr_assert_eq(plain_calls, 0, "SIG_HOLD did not block the signal");
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	cr_assert(sigismember(&cur, SIGUSR1));
	/* installing unblocks: the pending signal arrives */
	cr_assert_eq((void *)sigset(SIGUSR1, h_plain2), (void *)SIG_HOLD);
	cr_assert_eq(plain2_calls, 1);
	set_dfl(SIGUSR1);
}

/* ---- 3. SA_RESETHAND, SIG_IGN, SIG_DFL ------------------------------------ */

Test(trampoline, resethand_reports_sig_dfl_after_one_delivery)
{
	for (int info = 0; info < 2; info++) {
		struct sigaction a, old;

		reset_counts();
		memset(&a, 0, sizeof(a));
		if (info)
			a.sa_sigaction = h_info;
		else
			a.sa_handler = h_plain;
		a.sa_flags = SA_RESETHAND | (info ? SA_SIGINFO : 0);
		sigemptyset(&a.sa_mask);
		cr_assert_eq(sigaction(SIGUSR1, &a, NULL), 0);
		cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
		cr_assert(old.sa_flags & SA_RESETHAND);
		raise(SIGUSR1);
		cr_assert_eq(plain_calls + info_calls, 1);
		cr_assert_eq(info_bad, 0);
		cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
		cr_assert_eq((void *)old.sa_handler, (void *)SIG_DFL,
			     "SA_RESETHAND%s: after one delivery sigaction reports %p, not SIG_DFL",
			     info ? "|SA_SIGINFO" : "", (void *)old.sa_handler);
	}
}

Test(trampoline, resethand_second_delivery_is_the_default_action, .signal = SIGUSR1)
{
	install_plain(SA_RESETHAND);
	raise(SIGUSR1);
	cr_assert_eq(plain_calls, 1);
	raise(SIGUSR1);    /* SIG_DFL now: terminates */
	cr_assert_fail("survived a second SIGUSR1 after SA_RESETHAND");
}

Test(trampoline, sig_ign_and_sig_dfl_install_and_report)
{
	struct sigaction a, old;

	reset_counts();
	set_dfl(SIGUSR1);
	memset(&a, 0, sizeof(a));
	a.sa_handler = SIG_IGN;
	sigemptyset(&a.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &a, &old), 0);
	cr_assert_eq((void *)old.sa_handler, (void *)SIG_DFL);
	raise(SIGUSR1);    /* ignored: the test survives */
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert_eq((void *)old.sa_handler, (void *)SIG_IGN);

	a.sa_handler = h_plain;
	cr_assert_eq(sigaction(SIGUSR1, &a, &old), 0);
	cr_assert_eq((void *)old.sa_handler, (void *)SIG_IGN);
	raise(SIGUSR1);
	cr_assert_eq(plain_calls, 1);

	a.sa_handler = SIG_DFL;
	cr_assert_eq(sigaction(SIGUSR1, &a, &old), 0);
	cr_assert_eq((void *)old.sa_handler, (void *)h_plain);
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert_eq((void *)old.sa_handler, (void *)SIG_DFL);

	/* SIG_IGN given with SA_SIGINFO is still SIG_IGN */
	a.sa_sigaction = (void (*)(int, siginfo_t *, void *))(void (*)(void))SIG_IGN;
	a.sa_flags = SA_SIGINFO;
	cr_assert_eq(sigaction(SIGUSR1, &a, NULL), 0);
	raise(SIGUSR1);
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert_eq((void *)old.sa_handler, (void *)SIG_IGN);
	set_dfl(SIGUSR1);
}

Test(trampoline, sig_dfl_after_a_handler_is_the_default_action, .signal = SIGUSR1)
{
	cr_assert_neq((void *)signal(SIGUSR1, h_plain), (void *)SIG_ERR);
	raise(SIGUSR1);
	cr_assert_eq(plain_calls, 1);
	signal(SIGUSR1, SIG_DFL);
	raise(SIGUSR1);
	cr_assert_fail("SIG_DFL reinstalled, yet SIGUSR1 did not terminate");
}

/* ---- a vfork child runs in this memory ------------------------------------- */

/* A vfork child that resets a signal before exec (Python's subprocess does)
 * tells its own kernel, not the table the parent shares with it: the
 * parent's handler still runs (it found SIG_DFL there and raised the signal
 * again for ever).  The child also reads the parent's handler as the old
 * action, and a handler it installs leaves the parent's alone.  The alarm
 * turns the old hang into a failure. */
Test(trampoline, vfork_child_sig_dfl_leaves_the_parents_handler)
{
	alarm(10);
	reset_counts();
	cr_assert_neq((void *)signal(SIGUSR1, h_plain), (void *)SIG_ERR);
	cr_assert_neq((void *)signal(SIGUSR2, h_plain), (void *)SIG_ERR);

	pid_t pid = vfork();
	if (pid == 0) {
		struct sigaction a, old;
		memset(&a, 0, sizeof(a));
		a.sa_handler = h_plain2;
		if (sigaction(SIGUSR2, &a, &old) != 0 || old.sa_handler != h_plain)
			_exit(2);
		_exit(signal(SIGUSR1, SIG_DFL) == h_plain ? 0 : 3);
	}
	cr_assert_gt(pid, 0);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child read another old action (status %#x)", status);

	struct sigaction cur;
	cr_assert_eq(sigaction(SIGUSR1, NULL, &cur), 0);
	cr_assert_eq((void *)cur.sa_handler, (void *)h_plain);
	cr_assert_eq(sigaction(SIGUSR2, NULL, &cur), 0);
	cr_assert_eq((void *)cur.sa_handler, (void *)h_plain);
	raise(SIGUSR1);
	raise(SIGUSR2);
	cr_assert_eq(plain_calls, 2);
	cr_assert_eq(plain2_calls, 0);
	alarm(0);
	set_dfl(SIGUSR1);
	set_dfl(SIGUSR2);
}

/* The same in a child of fork and of _Fork, where the canary was wiped:
 * the child's vfork child wrote the child's table (and, with the trampoline
 * that gives the kernel SIG_DFL, the child died of its own SIGUSR1).  The
 * child runs the case and reports in its exit status. */
static int vfork_case(void)
{
	int status;
	pid_t pid = vfork();

	if (pid == 0)
		_exit(signal(SIGUSR1, SIG_DFL) == h_plain ? 0 : 3);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return 4;
	if (signal(SIGUSR1, h_plain) != h_plain)
		return 5;
	raise(SIGUSR1);
	return plain_calls == 1 ? 0 : 6;
}

extern pid_t _Fork(void);

__attribute__((noreturn)) static void vfork_case_and_exit(void)
{
	_exit(vfork_case());
}

/* Forks (fork or _Fork), runs child() in the child, which never returns,
 * and expects the child's exit status 0. */
static void vfork_in_a_child(bool underscore, void (*child)(void))
{
	alarm(10);
	reset_counts();
	cr_assert_neq((void *)signal(SIGUSR1, h_plain), (void *)SIG_ERR);
	free(malloc(PAGE));           /* the library is up: its pid is recorded */
	pid_t pid = underscore ? _Fork() : fork();
	if (pid == 0)
		child();
	cr_assert_gt(pid, 0);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "the %s child died of signal %d", underscore ? "_Fork" : "fork",
		  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	cr_assert_eq(WEXITSTATUS(status), 0, "the %s child's case failed at step %d",
		     underscore ? "_Fork" : "fork", WEXITSTATUS(status));
	alarm(0);
	set_dfl(SIGUSR1);
}

Test(trampoline, vfork_child_of_a_fork_child_leaves_its_handler)
{
	vfork_in_a_child(false, vfork_case_and_exit);
}

Test(trampoline, vfork_child_of_a__Fork_child_leaves_its_handler)
{
	vfork_in_a_child(true, vfork_case_and_exit);
}

/* The kernel's own struct sigaction (x86-64 and most 64-bit ports). */
struct kernel_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

/* The table says SIG_DFL while the kernel still runs the trampoline (what
 * the vfork child above used to leave): the signal gets the default action
 * once, not the trampoline raising it again for ever.  Made here by giving
 * the kernel back, by system call, the action the interposer replaced. */
Test(trampoline, table_sig_dfl_under_a_kernel_trampoline_is_the_default_action,
     .signal = SIGUSR1)
{
	struct kernel_sigaction k;

	alarm(10);
	cr_assert_neq((void *)signal(SIGUSR1, h_plain), (void *)SIG_ERR);
	cr_assert_eq(syscall(SYS_rt_sigaction, SIGUSR1, NULL, &k, sizeof(k.mask)), 0);
	cr_assert_neq(k.handler, (void *)h_plain, "the kernel runs the program's handler");
	set_dfl(SIGUSR1);
	cr_assert_eq(syscall(SYS_rt_sigaction, SIGUSR1, &k, NULL, sizeof(k.mask)), 0);
	raise(SIGUSR1);
	cr_assert_fail("SIGUSR1 with SIG_DFL in the table did not terminate");
}

/* The same from a thread of a fork or _Fork child whose main thread has
 * exited: the child's parent-facing pid is then a zombie's, which a check
 * by kcmp against the parent took for a process with memory of its own. */
static void *vfork_after_the_leader(void *arg)
{
	(void)arg;
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	nanosleep(&ts, NULL);        /* the main thread is gone by now */
	vfork_case_and_exit();
}

/* The child's main thread starts the thread that vforks, and exits. */
static void vfork_from_a_thread_and_exit(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, vfork_after_the_leader, NULL) != 0)
		_exit(7);
	pthread_exit(NULL);
}

Test(trampoline, vfork_from_a_thread_whose_main_thread_exited)
{
	vfork_in_a_child(false, vfork_from_a_thread_and_exit);
	vfork_in_a_child(true, vfork_from_a_thread_and_exit);
}

/* A _Fork made while another thread is inside sigaction (holding the
 * handler table's lock): the child's vfork child must not wait on that
 * lock.  The _Fork child is recovered at once (the interposed _Fork), and
 * the lock with it. */
static atomic_bool installer_stop;

static void *install_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&installer_stop))
		signal(SIGUSR2, h_plain2);
	return NULL;
}

Test(trampoline, vfork_child_of_a__Fork_child_while_a_thread_installs)
{
	pthread_t t;

	alarm(20);
	cr_assert_eq(pthread_create(&t, NULL, install_loop, NULL), 0);
	for (int i = 0; i < 100; i++) {
		pid_t pid = _Fork();
		if (pid == 0) {
			struct sigaction old;
			alarm(5);                    /* a hang: death by SIGALRM */
			pid_t v = vfork();
			if (v == 0) {
				alarm(5);
				_exit(sigaction(SIGUSR2, NULL, &old) == 0 ? 0 : 3);
			}
			int st;
			_exit(v > 0 && waitpid(v, &st, 0) == v && WIFEXITED(st) ? WEXITSTATUS(st)
										 : 4);
		}
		cr_assert_gt(pid, 0);
		int status;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "round %d: status %#x", i, status);
	}
	atomic_store(&installer_stop, true);
	pthread_join(t, NULL);
	alarm(0);
	set_dfl(SIGUSR2);
}

/* A _Fork child whose parent has died (reparented) still installs through
 * the trampoline: the kernel's handler is not the program's own. */
Test(trampoline, orphaned__Fork_child_installs_through_the_trampoline)
{
	int fds[2];

	alarm(10);
	free(malloc(PAGE));
	cr_assert_eq(pipe(fds), 0);
	pid_t mid = fork();
	if (mid == 0) {
		pid_t pid = _Fork();
		if (pid != 0)
			_exit(pid > 0 ? 0 : 1);      /* the child is orphaned */
		pid_t was = getppid();
		for (int i = 0; i < 500 && getppid() == was; i++)
			usleep(1000);
		struct kernel_sigaction k;
		char verdict = 'x';
		if (signal(SIGUSR1, h_plain) != SIG_ERR &&
		    syscall(SYS_rt_sigaction, SIGUSR1, NULL, &k, sizeof(k.mask)) == 0)
			verdict = k.handler == (void *)h_plain ? 'd' : 't';
		(void)!write(fds[1], &verdict, 1);
		_exit(0);
	}
	close(fds[1]);
	char verdict = 0;
	cr_assert_eq(read(fds[0], &verdict, 1), 1, "the orphan wrote nothing");
	cr_assert_eq(verdict, 't', "the orphan's handler went to the kernel directly ('%c')",
		     verdict);
	waitpid(mid, NULL, 0);
	alarm(0);
}

/* ---- SA_RESTART reaches the kernel --------------------------------------- */

static pid_t main_tid;
static int restart_pipe[2];

/* 'S' once the thread sleeps in a system call. */
static char task_state(pid_t tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' ? rp[2] : '?';
}

static void *restart_poker(void *arg)
{
	pthread_t target = *(pthread_t *)arg;
	for (int i = 0; i < 2000 && task_state(main_tid) != 'S'; i++)
		usleep(1000);
	usleep(2000);
	pthread_kill(target, SIGUSR1);
	usleep(20000);
	if (write(restart_pipe[1], "x", 1) != 1)
		abort();
	return NULL;
}

/* read() interrupted by SIGUSR1's handler as installed: 1 if restarted,
 * -1 with EINTR if not. */
static ssize_t read_interrupted(void)
{
	pthread_t self = pthread_self(), th;
	char c;

	cr_assert_eq(pipe(restart_pipe), 0);
	main_tid = (pid_t)syscall(SYS_gettid);
	pthread_create(&th, NULL, restart_poker, &self);
	ssize_t n = read(restart_pipe[0], &c, 1);
	int e = errno;
	pthread_join(th, NULL);
	close(restart_pipe[0]);
	close(restart_pipe[1]);
	errno = e;
	return n;
}

static ssize_t interrupted_read(int flags)
{
	install_plain(flags);
	return read_interrupted();
}

Test(trampoline, sa_restart_reaches_the_kernel)
{
	reset_counts();
	ssize_t n = interrupted_read(SA_RESTART);
	cr_assert_eq(n, 1, "SA_RESTART: read() returned %zd (errno %d)", n, errno);
	cr_assert_eq(plain_calls, 1);
	n = interrupted_read(0);
	cr_assert_eq(n, -1, "no SA_RESTART: read() was restarted");
	cr_assert_eq(errno, EINTR);
	cr_assert_eq(plain_calls, 2);
	set_dfl(SIGUSR1);
}

/* siginterrupt(sig, 1): no SA_RESTART in what sigaction reports or in the
 * kernel, and signal() keeps it off afterwards, as glibc's does; a save and
 * restore of the action keeps it off too (the table once kept a stale copy
 * with SA_RESTART, and restoring it made an alarm-bounded read hang). */
Test(trampoline, siginterrupt_reaches_the_kernel_and_signal_keeps_it)
{
	struct sigaction old;

	reset_counts();
	set_dfl(SIGUSR1);
	cr_assert_eq((void *)signal(SIGUSR1, h_plain), (void *)SIG_DFL);
	cr_assert_eq(siginterrupt(SIGUSR1, 1), 0);
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert(!(old.sa_flags & SA_RESTART), "siginterrupt(1): SA_RESTART still reported");
	cr_assert_eq((void *)old.sa_handler, (void *)h_plain);
	cr_assert_eq(sigaction(SIGUSR1, &old, NULL), 0);     /* save and restore */
	ssize_t n = read_interrupted();
	cr_assert_eq(n, -1, "siginterrupt(1): read() was restarted");
	cr_assert_eq(errno, EINTR);
	cr_assert_eq(plain_calls, 1);

	cr_assert_eq((void *)signal(SIGUSR1, h_plain), (void *)h_plain);
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert(!(old.sa_flags & SA_RESTART), "signal() after siginterrupt(1) set SA_RESTART");

	cr_assert_eq(siginterrupt(SIGUSR1, 0), 0);
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert(old.sa_flags & SA_RESTART, "siginterrupt(0): no SA_RESTART");
	n = read_interrupted();
	cr_assert_eq(n, 1, "siginterrupt(0): read() returned %zd (errno %d)", n, errno);
	cr_assert_eq(plain_calls, 2);
	cr_assert_eq((void *)signal(SIGUSR1, SIG_DFL), (void *)h_plain);
	cr_assert_eq(sigaction(SIGUSR1, NULL, &old), 0);
	cr_assert(old.sa_flags & SA_RESTART);
	cr_assert_eq(siginterrupt(0, 1), -1);
	cr_assert_eq(errno, EINVAL);
}

/* ---- 4. replacing the handler while a storm is in flight ----------------- */

#define STORM_MAGIC 0x5157
static atomic_bool storm_stop;
static atomic_ulong storm_sent;   /* receiver loop turns */
static volatile sig_atomic_t storm_bad, storm_plain, storm_info, storm_info2;

static void st_plain(int sig)
{
	if (sig != SIGUSR1)
		storm_bad++;
	storm_plain++;
}

static bool storm_info_ok(int sig, const siginfo_t *si, const void *uc)
{
	return sig == SIGUSR1 && si && uc && si->si_signo == SIGUSR1 &&
	       si->si_code == SI_TIMER && si->si_value.sival_int == STORM_MAGIC;
}

static void st_info(int sig, siginfo_t *si, void *uc)
{
	if (!storm_info_ok(sig, si, uc))
		storm_bad++;
	void *p = malloc(2 * PAGE);
	if (!p || !mp.owns(p))
		storm_bad++;
	else
		free(p);
	storm_info++;
}

static void st_info2(int sig, siginfo_t *si, void *uc)
{
	if (!storm_info_ok(sig, si, uc))
		storm_bad++;
	storm_info2++;
}

/* The storm's target: a thread whose own timer fires every 100 us (10 kHz).
 * Faster storms with SA_NODEFER handlers that allocate nest without bound:
 * a signal held back while the thread is in the zone costs a few system
 * calls to re-queue, so such a handler can outlast a 10 us period and the
 * stack overflows (seen at 100 kHz; see the README's limits). */
static void *storm_receiver(void *arg)
{
	sigset_t usr1;
	(void)arg;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);   /* the creator blocks it */
	timer_t t = thread_timer(SIGUSR1, 100000, STORM_MAGIC);
	while (!atomic_load(&storm_stop))
		atomic_fetch_add_explicit(&storm_sent, 1, memory_order_relaxed);
	timer_delete(t);
	return NULL;
}

Test(trampoline, handler_replaced_during_a_storm_never_gets_the_wrong_arity)
{
	struct sigaction acts[5];
	pthread_t th;
	unsigned long mismatch = 0, swaps = 0;
	struct timespec t0;
	sigset_t usr1, prev;

	memset(acts, 0, sizeof(acts));
	for (int i = 0; i < 5; i++)
		sigemptyset(&acts[i].sa_mask);
	acts[0].sa_handler = st_plain;
	acts[1].sa_sigaction = st_info;
	acts[1].sa_flags = SA_SIGINFO;
	acts[2].sa_handler = SIG_IGN;
	acts[3].sa_sigaction = st_info2;
	acts[3].sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
	acts[4].sa_handler = st_plain;
	acts[4].sa_flags = SA_RESTART;

	cr_assert_eq(sigaction(SIGUSR1, &acts[0], NULL), 0);
	/* only the receiver takes SIGUSR1: this thread just replaces handlers */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, &prev);
	pthread_create(&th, NULL, storm_receiver, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int k = 0; k < 64; k++, swaps++) {
			struct sigaction old;
			const struct sigaction *want = &acts[(swaps + 1) % 5], *was = &acts[swaps % 5];
			if (sigaction(SIGUSR1, want, &old) != 0)
				mismatch++;
			else if ((void *)old.sa_handler != (void *)was->sa_handler ||
				 (old.sa_flags & FLAGS_SEEN) != was->sa_flags)
				mismatch++;
		}
	} while (ns_since(&t0) < 500000000L ||
		 (ns_since(&t0) < 5000000000L && (!storm_plain || !storm_info || !storm_info2)));
	atomic_store(&storm_stop, true);
	pthread_join(th, NULL);
	signal(SIGUSR1, SIG_IGN);
	pthread_sigmask(SIG_SETMASK, &prev, NULL);

	cr_assert_eq(storm_bad, 0, "%d handler calls with a bad signal number, siginfo or ucontext",
		     (int)storm_bad);
	cr_assert_eq(mismatch, 0, "%lu of %lu sigaction calls reported the wrong old action",
		     mismatch, swaps);
	cr_assert_gt(storm_plain, 0);
	cr_assert_gt(storm_info, 0);
	cr_assert_gt(storm_info2, 0);
	cr_log_info("storm: %lu swaps; plain %d, info %d, info2 %d handler runs", swaps,
		    (int)storm_plain, (int)storm_info, (int)storm_info2);
}

/* ---- 5. errno ------------------------------------------------------------ */

static volatile sig_atomic_t errno_calls;

static void h_errno(int sig)
{
	(void)sig;
	errno = EIO;
	void *p = malloc(2 * PAGE);
	free(p);
	errno = EIO;
	errno_calls++;
}

static void h_errno_info(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	h_errno(sig);
}

Test(trampoline, errno_is_preserved_across_the_handler)
{
	for (int info = 0; info < 2; info++) {
		struct sigaction a;
		volatile int *e = &errno;
		unsigned long wrong = 0;
		struct timespec t0;

		memset(&a, 0, sizeof(a));
		if (info) {
			a.sa_sigaction = h_errno_info;
			a.sa_flags = SA_SIGINFO;
		} else {
			a.sa_handler = h_errno;
		}
		sigemptyset(&a.sa_mask);
		cr_assert_eq(sigaction(SIGUSR1, &a, NULL), 0);

		*e = ERANGE;
		raise(SIGUSR1);
		int after = *e;
		cr_assert_eq(after, ERANGE, "errno %d after a synchronous signal, want ERANGE", after);

		errno_calls = 0;
		timer_t t = thread_timer(SIGUSR1, 20000, 0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 1; errno_calls < 5000 && ns_since(&t0) < 3000000000L; i++) {
			int v = 1000 + (i & 0xffff);
			*e = v;
			for (int k = 0; k < 64; k++)
				if (*e != v)
					wrong++;
		}
		timer_delete(t);
		cr_assert_eq(wrong, 0, "errno changed under the interrupted code %lu times", wrong);
		cr_assert_gt(errno_calls, 1000, "only %d signals arrived", (int)errno_calls);
	}
	signal(SIGUSR1, SIG_IGN);
}

/* ---- 6. SA_ONSTACK with sigaltstack --------------------------------------- */

#define ALT_SIZE (256 * 1024)
static uintptr_t alt_lo, alt_hi;
static volatile sig_atomic_t alt_calls, alt_off_stack, alt_bad, alt_nest;
static sigjmp_buf alt_env;
static volatile sig_atomic_t alt_jump;

static void h_alt(int sig, siginfo_t *si, void *uc)
{
	char local;
	uintptr_t at = (uintptr_t)&local;
	static const size_t sizes[] = { 100, PAGE, 2 * PAGE, 3 * PAGE, 8192 + 100 };
	void *p[5];

	(void)si;
	(void)uc;
	alt_calls++;
	if (at < alt_lo || at >= alt_hi)
		alt_off_stack++;
	for (int i = 0; i < 5; i++) {
		p[i] = malloc(sizes[i]);
		if (!p[i] || !mp.owns(p[i])) {
			alt_bad++;
			p[i] = NULL;
			continue;
		}
		blk_fill(p[i], sizes[i], (uint64_t)alt_calls * 8 + (uint64_t)i);
	}
	if (alt_nest && alt_nest-- > 0)
		raise(sig);    /* SA_NODEFER: nested, still on the altstack */
	for (int i = 0; i < 5; i++) {
		if (!p[i])
			continue;
		if (blk_check(p[i], sizes[i]))
			alt_bad++;
		free(p[i]);
	}
	if (alt_jump)
		siglongjmp(alt_env, 1);
}

static void *alt_setup(void)
{
	stack_t ss;
	void *mem = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(mem, MAP_FAILED);
	ss.ss_sp = mem;
	ss.ss_size = ALT_SIZE;
	ss.ss_flags = 0;
	cr_assert_eq(sigaltstack(&ss, NULL), 0);
	alt_lo = (uintptr_t)mem;
	alt_hi = alt_lo + ALT_SIZE;

	struct sigaction a;
	memset(&a, 0, sizeof(a));
	a.sa_sigaction = h_alt;
	a.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&a.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &a, NULL), 0);
	return mem;
}

static void alt_teardown(void *mem)
{
	stack_t ss = { .ss_flags = SS_DISABLE };
	signal(SIGUSR1, SIG_IGN);
	cr_assert_eq(sigaltstack(&ss, NULL), 0);
	munmap(mem, ALT_SIZE);
}

Test(trampoline, onstack_handler_runs_on_the_altstack_and_allocates)
{
	void *mem = alt_setup();
	char here;

	cr_assert((uintptr_t)&here < alt_lo || (uintptr_t)&here >= alt_hi);
	for (int i = 0; i < 200; i++) {
		alt_nest = (i & 1) ? 3 : 0;
		raise(SIGUSR1);
	}
	cr_assert_eq(alt_off_stack, 0, "%d of %d handler runs were not on the altstack",
		     (int)alt_off_stack, (int)alt_calls);
	cr_assert_eq(alt_bad, 0, "%d failed or foreign allocations, or corrupted blocks, on the altstack",
		     (int)alt_bad);
	cr_assert_eq(alt_calls, 200 + 100 * 3);
	assert_process_context_again("SA_ONSTACK handlers");
	alt_teardown(mem);
}

Test(trampoline, siglongjmp_out_of_an_altstack_handler_recovers_the_depth)
{
	void *mem = alt_setup();
	volatile int i;
	struct snap s0 = take_snap();

	alt_jump = 1;
	for (i = 0; i < 2000; i++) {
		alt_nest = (i % 3 == 0) ? 2 : 0;
		if (sigsetjmp(alt_env, 1) == 0) {
			raise(SIGUSR1);
			alt_bad++;   /* never reached: the handler jumps */
		}
	}
	alt_jump = 0;
	struct snap s1 = take_snap();
	cr_assert_snap(s1);
	cr_assert_eq(alt_bad, 0);
	cr_assert_eq(alt_off_stack, 0);
	cr_assert_gt(s1.stale - s0.stale, 0, "no stale handler frame was recovered");
	assert_process_context_again("2000 siglongjmps out of altstack handlers");
	alt_teardown(mem);
}

/* ---- 7. nested signals --------------------------------------------------- */

#define NEST_DEPTH 8      /* twice the frames the library records */
static volatile sig_atomic_t nest_level, nest_max, nest_bad, usr2_calls;

static void h_usr2(int sig)
{
	(void)sig;
	void *p = malloc(PAGE), *q = malloc(64);
	if (!p || !q || !mp.owns(p) || !mp.owns(q))
		nest_bad++;
	free(q);
	free(p);
	usr2_calls++;
}

static void h_nest(int sig, siginfo_t *si, void *uc)
{
	int lvl = ++nest_level;
	uint64_t seed = (uint64_t)lvl << 32 | (uint64_t)usr2_calls;

	(void)uc;
	if (!si || si->si_signo != sig)
		nest_bad++;
	if (lvl > nest_max)
		nest_max = lvl;
	void *p = malloc(2 * PAGE), *q = malloc(100);
	if (!p || !q || !mp.owns(p) || !mp.owns(q)) {
		nest_bad++;
		nest_level--;
		return;
	}
	blk_fill(p, 2 * PAGE, seed);
	blk_fill(q, 100, ~seed);
	if (lvl < NEST_DEPTH)
		raise(SIGUSR1);     /* SA_NODEFER: the same handler, one level down */
	else
		raise(SIGUSR2);     /* a second signal, its own handler */
	if (blk_check(p, 2 * PAGE) || blk_check(q, 100))
		nest_bad++;
	free(q);
	free(p);
	nest_level--;
}

Test(trampoline, nested_signals_nodefer_and_a_second_signal)
{
	struct sigaction a;

	memset(&a, 0, sizeof(a));
	a.sa_sigaction = h_nest;
	a.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&a.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &a, NULL), 0);
	cr_assert_neq((void *)signal(SIGUSR2, h_usr2), (void *)SIG_ERR);

	struct snap s0 = take_snap();
	for (int i = 0; i < 50; i++)
		raise(SIGUSR1);
	struct snap s1 = take_snap();

	cr_assert_snap(s1);
	cr_assert_eq(nest_bad, 0, "%d bad allocations or corrupted blocks in nested handlers",
		     (int)nest_bad);
	cr_assert_eq(nest_max, NEST_DEPTH);
	cr_assert_eq(nest_level, 0);
	cr_assert_eq(usr2_calls, 50);
	cr_assert_eq(s1.entries - s0.entries, 50 * NEST_DEPTH + 50,
		     "handler_entries grew by %lu, want %d", (unsigned long)(s1.entries - s0.entries),
		     50 * NEST_DEPTH + 50);
	assert_process_context_again("nested handlers 8 deep");
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
}

/* ---- 8. siglongjmp out of a handler --------------------------------------- */

static sigjmp_buf lj_env;
static volatile sig_atomic_t lj_bad, lj_calls;

static void h_longjmp(int sig)
{
	(void)sig;
	void *p = malloc(2 * PAGE);
	if (!p || !mp.owns(p)) {
		lj_bad++;
	} else {
		blk_fill(p, 2 * PAGE, (uint64_t)lj_calls);
		if (blk_check(p, 2 * PAGE))
			lj_bad++;
		free(p);
	}
	lj_calls++;
	siglongjmp(lj_env, 1);
}

static void install_longjmp_handler(void)
{
	struct sigaction a;
	memset(&a, 0, sizeof(a));
	a.sa_handler = h_longjmp;
	sigemptyset(&a.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &a, NULL), 0);
}

/* The loop the brief describes: nothing but raise between the jumps, so
 * every handler frame lands at the same address as the one abandoned
 * before it. */
Test(trampoline, siglongjmp_out_of_handler_in_a_loop_recovers_the_depth)
{
	volatile int i;

	install_longjmp_handler();
	struct snap s0 = take_snap();
	for (i = 0; i < 10000; i++) {
		if (sigsetjmp(lj_env, 1) == 0) {
			raise(SIGUSR1);
			lj_bad++;   /* never reached */
		}
	}
	struct snap s1 = take_snap();
	cr_assert_snap(s0);
	cr_assert_snap(s1);
	cr_assert_eq(lj_bad, 0);
	cr_assert_eq(lj_calls, 10000);
	cr_assert_eq(s1.entries - s0.entries, 10000);
	assert_process_context_again("10000 siglongjmps out of a handler");
	struct snap s2 = take_snap();
	cr_assert_gt(s2.stale, s0.stale, "stats report no stale frame recovered (stale_frames %lu)",
		     (unsigned long)s2.stale);
	signal(SIGUSR1, SIG_IGN);
}

/* The same with ordinary allocations between the jumps, as a real program
 * (an interpreter's timeout, say) would make them. */
Test(trampoline, siglongjmp_out_of_handler_between_allocations_recovers_the_depth)
{
	volatile int i;

	install_longjmp_handler();
	struct snap s0 = take_snap();
	for (i = 0; i < 10000; i++) {
		if (sigsetjmp(lj_env, 1) == 0) {
			void *p = malloc(PAGE);
			free(p);
			raise(SIGUSR1);
			lj_bad++;
		}
	}
	cr_assert_eq(lj_bad, 0);
	assert_process_context_again("10000 siglongjmps between allocations");
	struct snap s1 = take_snap();
	cr_assert_snap(s1);
	cr_assert_geq(s1.stale - s0.stale, 9000, "stale_frames grew by only %lu",
		      (unsigned long)(s1.stale - s0.stale));
	signal(SIGUSR1, SIG_IGN);
}
