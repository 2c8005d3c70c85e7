/*
 * rlimit.c — setrlimit and prlimit, interposed so that a limit the program
 * sets after start-up leaves glibc its room.
 *
 * The region is reserved at start-up for the limits then in force.  A
 * process that starts unlimited and then lowers RLIMIT_AS or RLIMIT_DATA
 * (python3's resource.setrlimit, a server capping itself) would find the
 * whole reservation counted against the new limit, and glibc without room
 * for its next mapping.  After the limit is set, the region gives back all
 * but the share that limit would have given it at start-up
 * (zone_limit_changed); a limit raised again, or lifted, is recorded too,
 * for glibc's later ENOMEMs.  The limit is set by the system call itself, as
 * glibc does (prlimit64), so nothing is looked up.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define EXPORT __attribute__((visibility("default")))

/* struct rlimit and struct rlimit64 on LP64: two 64-bit words */
struct mp_rlimit {
	uint64_t cur, max;
};

int mp_setrlimit(int resource, const struct mp_rlimit *rl) __asm__("setrlimit");
int mp_setrlimit64(int resource, const struct mp_rlimit *rl) __asm__("setrlimit64");
int mp_prlimit(pid_t pid, int resource, const struct mp_rlimit *rl, struct mp_rlimit *old)
	__asm__("prlimit");
int mp_prlimit64(pid_t pid, int resource, const struct mp_rlimit *rl, struct mp_rlimit *old)
	__asm__("prlimit64");

/* Not in a handler (the give-back takes the zone locks, which a fork in
 * progress may hold for good), nor in a vfork child, whose region is its
 * parent's. */
static int set_limit(pid_t pid, int resource, const struct mp_rlimit *rl, struct mp_rlimit *old)
{
	long rc = syscall(SYS_prlimit64, (long)pid, (long)resource, rl, old);
	if (rc == 0 && rl && (resource == RLIMIT_AS || resource == RLIMIT_DATA) &&
	    (pid == 0 || pid == getpid() || pid == gettid()) &&
	    __atomic_load_n(&mp_initialized, __ATOMIC_ACQUIRE) && !sigctx_in_irq() &&
	    !os_vm_shared_child())
		zone_limit_changed(os.mem_limit());
	return (int)rc;
}

EXPORT int mp_setrlimit(int resource, const struct mp_rlimit *rl)
{
	return set_limit(0, resource, rl, NULL);
}

EXPORT int mp_setrlimit64(int resource, const struct mp_rlimit *rl)
{
	return set_limit(0, resource, rl, NULL);
}

EXPORT int mp_prlimit(pid_t pid, int resource, const struct mp_rlimit *rl, struct mp_rlimit *old)
{
	return set_limit(pid, resource, rl, old);
}

EXPORT int mp_prlimit64(pid_t pid, int resource, const struct mp_rlimit *rl,
			struct mp_rlimit *old)
{
	return set_limit(pid, resource, rl, old);
}
