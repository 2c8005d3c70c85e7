/* probes.c — the semaphores of the USDT probes (probes.h): one counter
 * each in .probes, where the probe notes point and tracers count up. */
#include "internal.h"

#if MAGPAGE_HAVE_SDT
#define MP_PROBE_SEMAPHORE_DEF(name) \
	__extension__ unsigned short magpage_##name##_semaphore \
		__attribute__((section(".probes"), used));
MP_PROBE_NAMES(MP_PROBE_SEMAPHORE_DEF)
#endif
