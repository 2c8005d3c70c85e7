/* cpu.c — set-up and fallback for cpu_current(). */
#include <sched.h>
#include <sys/rseq.h>

#include "internal.h"

bool cpu_rseq_ok;

ptrdiff_t mp_rseq_offset;

void cpu_init(void)
{
	/* __rseq_size is 0 when glibc did not register (old kernel, or
	 * GLIBC_TUNABLES=glibc.pthread.rseq=0): then use sched_getcpu(). */
	cpu_rseq_ok = __rseq_size >= 8;
	mp_rseq_offset = __rseq_offset;
}

int cpu_current_slow(void)
{
	int c = sched_getcpu();
	return c >= 0 ? c : 0;
}
