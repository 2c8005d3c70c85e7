/*
 * lock.h — the spinlock used for the zone and for every page cache.
 *
 * A test-and-test-and-set lock with a waiter count, so that the RFC's
 * "stop the batch early if someone is waiting" (spin_is_contended) can be
 * asked.  A ticket lock would give the same answer but hands the lock in
 * FIFO order, which turns a preempted waiter into a stall for everyone on a
 * machine with more threads than CPUs; user space has no preempt_disable.
 *
 * Waiters spin briefly with pause, then sleep on a futex, so that a holder
 * preempted by more threads than CPUs gets a CPU back.  Unlock stays a plain
 * store followed by a read of the sleeper count on the same line; a sleeper
 * whose wake-up raced with that read is bounded by its futex timeout.
 *
 * The counters are written by the holder only, so they need no atomics;
 * trylock failures are counted by the caller, which knows what it tried.
 */
#ifndef MAGPAGE_LOCK_H
#define MAGPAGE_LOCK_H

#include <stdbool.h>
#include <stdint.h>

struct mp_lock {
	uint32_t locked;     /* 0 free, 1 held; atomic */
	uint32_t waiters;    /* low 16 bits: threads in mp_lock_slow (spinning or
				sleeping); high 16: those asleep on the futex */
	uint64_t acquired;   /* acquisitions; written by the holder */
	uint64_t contended;  /* acquisitions that had to wait; by the holder */
	uint64_t wait_ns;    /* time spent waiting, summed; by the holder */
};

/* Waits for the lock; returns the ns waited (what wait_ns adds). */
uint64_t mp_lock_slow(struct mp_lock *l);
void mp_lock_wake(struct mp_lock *l);
#define MP_LOCK_SLEEPER (1u << 16)

static inline bool mp_trylock(struct mp_lock *l)
{
	/* Read before writing: a failed exchange would still pull the line
	 * exclusive (Andi Kleen's remark on the RFC's round-robin trylock). */
	if (__atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0 ||
	    __atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE) != 0)
		return false;
	l->acquired++;
	return true;
}

/* mp_lock's uncontended attempt: false, and the caller takes
 * mp_lock_slow (zone.c does, to report the wait). */
static inline bool mp_lock_fast(struct mp_lock *l)
{
	if (__builtin_expect(__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE) == 0, 1)) {
		l->acquired++;
		return true;
	}
	return false;
}

static inline void mp_lock(struct mp_lock *l)
{
	if (!mp_lock_fast(l))
		mp_lock_slow(l);
}

static inline void mp_unlock(struct mp_lock *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
	if (__builtin_expect(__atomic_load_n(&l->waiters, __ATOMIC_RELAXED) >= MP_LOCK_SLEEPER, 0))
		mp_lock_wake(l);
}

static inline bool mp_lock_is_contended(const struct mp_lock *l)
{
	return __atomic_load_n(&l->waiters, __ATOMIC_RELAXED) != 0;
}

static inline bool mp_lock_is_held(const struct mp_lock *l)
{
	return __atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0;
}

/* After fork, in the child: whoever held it no longer exists. */
static inline void mp_lock_reset(struct mp_lock *l)
{
	l->locked = 0;
	l->waiters = 0;
}

#endif
