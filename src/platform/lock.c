/* lock.c — the slow path of mp_lock: spin, then yield. */
#include <sched.h>

#include "internal.h"

void mp_lock_slow(struct mp_lock *l)
{
	uint64_t t0 = os_now_ns();
	unsigned spins = 0;

	__atomic_add_fetch(&l->waiters, 1, __ATOMIC_RELAXED);
	for (;;) {
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0) {
			if (++spins < 128)
				__builtin_ia32_pause();
			else
				sched_yield();   /* the holder may be preempted */
		}
		if (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE) == 0)
			break;
	}
	__atomic_sub_fetch(&l->waiters, 1, __ATOMIC_RELAXED);
	l->acquired++;
	l->contended++;
	l->wait_ns += os_now_ns() - t0;
}
