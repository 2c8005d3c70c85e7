/*
 * cpu.h — the CPU this thread runs on, read from glibc's rseq area.
 *
 * glibc >= 2.35 registers one rseq area per thread and exports its offset
 * from the thread pointer; the kernel keeps cpu_id (at offset 4) current on
 * every return to user space.  One load, no syscall.  The value may be stale
 * by the time it is used: callers need it for locality only, never for
 * correctness.
 */
#ifndef MAGPAGE_CPU_H
#define MAGPAGE_CPU_H

#include <stddef.h>
#include <stdint.h>

extern const ptrdiff_t __rseq_offset;
/* __rseq_offset, copied by cpu_init: one load instead of two through the
 * GOT on every fast path. */
extern ptrdiff_t mp_rseq_offset;

/* The spin-wait hint: pause on x86, a compiler barrier elsewhere. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

static inline int cpu_current(void)
{
	if (__builtin_expect(cpu_rseq_ok, 1)) {
		int32_t c = *(volatile int32_t *)((char *)__builtin_thread_pointer() +
						  mp_rseq_offset + 4);
		if (__builtin_expect(c >= 0, 1))
			return c;
	}
	return cpu_current_slow();
}

#endif
