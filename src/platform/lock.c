/* lock.c — the slow path of mp_lock: spin, then sleep on a futex. */
#include "internal.h"

#define SPINS 200                 /* pause iterations before sleeping */
#define SLEEP_NS 200000           /* futex timeout: bounds a missed wake-up */

uint64_t mp_lock_slow(struct mp_lock *l)
{
	uint64_t t0 = os_now_ns();
	unsigned spins = 0;

	__atomic_add_fetch(&l->waiters, 1, __ATOMIC_RELAXED);
	for (;;) {
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0) {
			if (++spins < SPINS) {
				cpu_relax();
				continue;
			}
			/* The holder is probably not running: give it the CPU.
			 * Unless it does not exist: in a child of _Fork the
			 * hook resets every lock (waiter counts too). */
			if (unlikely(os_forked())) {
				__atomic_add_fetch(&l->waiters, 1, __ATOMIC_RELAXED);
				spins = 0;
				continue;
			}
			__atomic_add_fetch(&l->waiters, MP_LOCK_SLEEPER, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0)
				os_futex_wait(&l->locked, 1, SLEEP_NS);
			__atomic_sub_fetch(&l->waiters, MP_LOCK_SLEEPER, __ATOMIC_RELAXED);
			spins = SPINS / 2;
		}
		if (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE) == 0)
			break;
	}
	__atomic_sub_fetch(&l->waiters, 1, __ATOMIC_RELAXED);
	uint64_t waited = os_now_ns() - t0;
	l->acquired++;
	l->contended++;
	l->wait_ns += waited;
	return waited;
}

void mp_lock_wake(struct mp_lock *l)
{
	os_futex_wake(&l->locked);
}
