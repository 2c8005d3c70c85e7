/*
 * fork.c — _Fork, interposed so that its child is found at once.
 *
 * glibc's _Fork (2.34) runs no atfork handlers: its child inherits every
 * lock another thread of the parent held, held by a thread it does not
 * have.  The library abandons what those locks guard (mp_fork_recover).
 * It used to find such a child by its pid on its first slow path; found
 * here, before it returns from _Fork, the child also has its pid recorded
 * before it can vfork, so that its vfork children are told from it
 * (os_vm_shared_child), and no lock it inherited is taken before the
 * recovery.  fork() calls glibc's own _Fork inside libc, not this one; its
 * child is the atfork handler's.
 */
#include <errno.h>
#include <unistd.h>

#include "internal.h"
#include "malloc/fallback.h"

#define EXPORT __attribute__((visibility("default")))

pid_t _Fork(void);

static void *libc_Fork;

/* From the constructor: a handler's _Fork then never calls dlsym, which
 * takes the loader's lock. */
void fork_init(void)
{
	fb_libc_sym(&libc_Fork, "_Fork");
}

/* Async-signal-safe, as glibc's: the recovery takes no lock. */
EXPORT pid_t _Fork(void)
{
	pid_t (*f)(void) = (pid_t (*)(void))fb_libc_sym(&libc_Fork, "_Fork");

	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	pid_t pid = f();
	if (pid == 0)
		os_fork_found();
	return pid;
}
