/*
 * os.c — every system call the allocator core makes goes through this
 * table, so unit tests can stub and count them.
 */
#include <fcntl.h>
#include <pthread.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static uint64_t real_phys_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long psz = sysconf(_SC_PAGESIZE);
	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

static uint64_t real_mem_limit(void)
{
	static const int res[] = { RLIMIT_AS, RLIMIT_DATA };
	uint64_t limit = UINT64_MAX;
	for (unsigned i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
		struct rlimit rl;
		if (getrlimit(res[i], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    (uint64_t)rl.rlim_cur < limit)
			limit = rl.rlim_cur;
	}
	return limit;
}

static int real_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);
	return n > 0 ? (int)n : 1;
}

static uint64_t real_coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* NUMA: raw system calls, so that libnuma need not be present. */
static long real_mbind(void *addr, unsigned long len, int mode, const unsigned long *mask,
		       unsigned long maxnode, unsigned flags)
{
	return syscall(SYS_mbind, addr, len, mode, mask, maxnode, flags);
}

static long real_get_mempolicy(int *mode, unsigned long *mask, unsigned long maxnode)
{
	return syscall(SYS_get_mempolicy, mode, mask, maxnode, NULL, 0UL);
}

static long real_read_text(const char *path, char *buf, size_t cap)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	long n = -1;

	if (fd < 0 || cap == 0)
		return -1;
	n = syscall(SYS_read, fd, buf, cap - 1);
	syscall(SYS_close, fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

struct os_hooks os = {
	.mmap = mmap,
	.munmap = munmap,
	.madvise = madvise,
	.set_sigmask = pthread_sigmask,
	.mprotect = mprotect,
	.phys_bytes = real_phys_bytes,
	.mem_limit = real_mem_limit,
	.ncpus = real_ncpus,
	.coarse_ns = real_coarse_ns,
	.mbind = real_mbind,
	.get_mempolicy = real_get_mempolicy,
	.read_text = real_read_text,
};

uint64_t os_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void os_futex_wait(uint32_t *word, uint32_t val, uint64_t timeout_ns)
{
	struct timespec ts = { (time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u) };
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val,
		timeout_ns == UINT64_MAX ? NULL : &ts, NULL, 0);
}

void os_futex_wake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int os_membarrier(int cmd, unsigned flags, int cpu)
{
	return (int)syscall(__NR_membarrier, cmd, flags, cpu);
}

void os_signal_self(int sig, siginfo_t *si)
{
	if (si)
		syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), sig, si);
	else
		syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
}

int os_spawn_helper(void *(*fn)(void *))
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t tid;
	int rc;

	sigfillset(&all);
	os.set_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_attr_init(&attr);
	if (rc == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 128 << 10);
		rc = pthread_create(&tid, &attr, fn, NULL);
		pthread_attr_destroy(&attr);
	}
	os.set_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int os_pid;
void (*os_fork_hook)(void);

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

/* A page the kernel hands a child zeroed (MADV_WIPEONFORK, Linux 4.14):
 * while its word reads non-zero this is the process that armed it, and
 * os_forked needs no system call.  NULL where the kernel refuses. */
static uint32_t *fork_canary;

void os_fork_watch(void)
{
	void *p = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	if (madvise(p, PAGE_SIZE, MADV_WIPEONFORK) != 0) {
		munmap(p, PAGE_SIZE);
		return;
	}
	*(uint32_t *)p = 1;
	__atomic_store_n(&fork_canary, (uint32_t *)p, __ATOMIC_RELEASE);
}

/* A child the atfork handlers did not see: its pid recorded, the hook run
 * once (by whichever thread gets there first), the canary armed again. */
static void fork_found(int now, int seen)
{
	if (__atomic_compare_exchange_n(&os_pid, &seen, now, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE) && os_fork_hook)
		os_fork_hook();
	os_fork_rearm();
}

/* A read of the canary; one getpid system call (glibc no longer caches
 * the pid) where it reads zero, in a child or without a canary: only on
 * paths that are slow already, a handler-context call or a lock about to
 * sleep.  The pid compared re-arms the canary for this process. */
bool os_forked(void)
{
	uint32_t *canary = __atomic_load_n(&fork_canary, __ATOMIC_ACQUIRE);

	if (likely(canary && __atomic_load_n(canary, __ATOMIC_RELAXED)))
		return false;
	int now = (int)syscall(SYS_getpid);
	int seen = __atomic_load_n(&os_pid, __ATOMIC_ACQUIRE);

	if (likely(now == seen || seen == 0)) {
		if (canary && seen)
			__atomic_store_n(canary, 1, __ATOMIC_RELAXED);
		return false;
	}
	/* Fork and _Fork children record their pids at once (the atfork
	 * handler, the _Fork wrapper): this is a copy made by a raw system
	 * call, or a child that runs in its parent's memory (vfork), where a
	 * recovery would reset the parent's locks.  Only a wiped canary says
	 * it is a copy. */
	if (!canary)
		return false;
	fork_found(now, seen);
	return true;
}

void os_fork_found(void)
{
	int seen = __atomic_load_n(&os_pid, __ATOMIC_ACQUIRE);

	if (seen)             /* 0: the library had not started, nothing to recover */
		fork_found((int)syscall(SYS_getpid), seen);
}

/* The kernel keeps the page's wipe-on-fork mark in a child (a grandchild
 * finds it zeroed again): armed anew, the child tells its own vfork
 * children by it. */
void os_fork_rearm(void)
{
	uint32_t *canary = __atomic_load_n(&fork_canary, __ATOMIC_ACQUIRE);

	if (canary)
		__atomic_store_n(canary, 1, __ATOMIC_RELAXED);
}

/*
 * A pid that is not the one recorded: not a fork or _Fork child, which
 * record theirs at once.  Over a canary the kernel did not wipe, its memory
 * is the parent's, lent to a vfork child (or a clone with CLONE_VM), and
 * what it writes here the parent finds when it resumes; over a wiped one it
 * is a copy a raw system call made.  Without a canary it is taken for a
 * vfork child, the common case: such a copy then installs its handlers
 * without the trampoline.
 */
bool os_vm_shared_child(void)
{
	uint32_t *canary = __atomic_load_n(&fork_canary, __ATOMIC_ACQUIRE);
	int seen = __atomic_load_n(&os_pid, __ATOMIC_ACQUIRE);

	if (seen == 0 || (int)syscall(SYS_getpid) == seen)
		return false;
	return !canary || __atomic_load_n(canary, __ATOMIC_RELAXED) != 0;
}
