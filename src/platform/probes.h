/*
 * probes.h — the library's USDT tracepoints, provider "magpage".
 *
 * Each MP_PROBEn(name, args...) is a <sys/sdt.h> probe: a single nop in
 * the code and a note in .note.stapsdt saying where each argument lives
 * (a register, a memory operand or a constant) when the nop runs.  Nobody
 * tracing: the nop is all that executes.  A tracer (bpftrace, perf,
 * SystemTap) puts a breakpoint on the nop and reads the arguments from
 * there.  On the page paths every argument is a value the code holds at
 * that point anyway, or a field of a descriptor it holds a pointer to (the
 * note names the memory, which the tracer reads): none is computed for the
 * probe, so the fast path keeps its instruction count but for the nop
 * (tests/perf).  Probes whose arguments would cost instructions (the
 * zone's per-block ones: address and CPU under the zone lock; pa_alloc's:
 * address and source; the one-hop path's mm_page_alloc and mm_page_free,
 * whose descriptor that path does not otherwise touch: live bytes, zone.h)
 * test their semaphore first (MP_PROBE_ENABLED).
 *
 * The four mm_page_* probes are named after the kernel's kmem tracepoints;
 * address stands for the kernel's struct page, order is the block's order
 * (ceil(log2(pages)): a 3-page block is order 2, as alloc_pages_exact's).
 *
 *   mm_page_alloc(addr, order, source, cpu)    a block leaves the page
 *       allocator for the program (malloc, calloc, realloc, memalign...):
 *       source 1 a page cache, 0 the zone (or the handlers' reserve
 *       during a fork, carved from it);
 *       cpu the CPU whose per-CPU array served it (bonwick's one-hop path
 *       on rseq), -1 where the path read no CPU id (use bpftrace's cpu)
 *   mm_page_free(addr, order)                  a block the program freed
 *       comes back to the page allocator (free, realloc, free_bulk), fired
 *       before it can be handed out again; a realloc that shrinks a block
 *       in place gives its tail back without a probe
 *   mm_page_alloc_zone_locked(addr, order, cpu)
 *                                              a block taken off the buddy
 *       free lists under the zone lock, for a cache's refill or for one
 *       request; cpu the CPU its caller ran on when it took the lock
 *   mm_page_pcpu_drain(addr, order, cpu)       a block a cache gives back
 *       to the buddy free lists, under the zone lock; cpu as above
 *   cache_refill(cpu, class, count)            a batch of count blocks of
 *       class pages (1..16) moved into a page cache (from the zone, or
 *       bonwick's depot); cpu the per-CPU cache or magazine, -1 a thread's
 *   cache_drain(cpu, class, count)             a batch moved out of one
 *       (to the zone, or bonwick's depot), cpu as for cache_refill
 *   zone_lock_wait(ns)                         a contended zone lock, once
 *       taken: how long the thread waited (the uncontended path fires
 *       nothing and measures nothing; nor does a handler's spin on it)
 *   purge(pages)                               pages returned to the OS by
 *       one purge (decay, idle, malloc_trim)
 *   signal_deferred(signo, where)              a signal held back because
 *       its thread was inside the zone (where 1) or a page-cache section
 *       (where 2); it is delivered when the thread leaves
 *
 * Listing them: readelf -n libmagpage.so, or
 *   bpftrace -l 'usdt:/path/to/libmagpage.so:magpage:*'
 * docs/observability.md has the table; scripts/ has bpftrace scripts (.bt).
 *
 * MAGPAGE_HAVE_SDT (CMake, from the header's presence) 0 compiles every
 * probe away, its arguments still type-checked.
 */
#ifndef MAGPAGE_PROBES_H
#define MAGPAGE_PROBES_H

#include <stddef.h>
#include <stdint.h>

/* Every probe, for the semaphores' declarations and definitions. */
#define MP_PROBE_NAMES(X) \
	X(mm_page_alloc) X(mm_page_free) X(mm_page_alloc_zone_locked) \
	X(mm_page_pcpu_drain) X(cache_refill) X(cache_drain) X(zone_lock_wait) \
	X(purge) X(signal_deferred)

#if MAGPAGE_HAVE_SDT
/*
 * Each probe has a semaphore (probes.c): a counter in .probes that the
 * kernel raises in every process mapping the library while a tracer is
 * attached (uprobes' reference counter; bpftrace and perf use it).  Only
 * probes with costly arguments test it, through MP_PROBE_ENABLED, to skip
 * forming arguments nobody reads: the rest fire unconditionally, a nop
 * each.
 */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#define MP_PROBE_SEMAPHORE(name) \
	extern unsigned short magpage_##name##_semaphore __attribute__((visibility("hidden")));
MP_PROBE_NAMES(MP_PROBE_SEMAPHORE)
#define MP_PROBE_ENABLED(name) \
	__builtin_expect(__atomic_load_n(&magpage_##name##_semaphore, __ATOMIC_RELAXED) != 0, 0)
#define MP_PROBE1(name, a) STAP_PROBE1(magpage, name, a)
#define MP_PROBE2(name, a, b) STAP_PROBE2(magpage, name, a, b)
#define MP_PROBE3(name, a, b, c) STAP_PROBE3(magpage, name, a, b, c)
#define MP_PROBE4(name, a, b, c, d) STAP_PROBE4(magpage, name, a, b, c, d)
#else
#define MP_PROBE_ENABLED(name) 0
#define MP_PROBE_UNUSED(x) ((void)sizeof(x))
#define MP_PROBE1(name, a) MP_PROBE_UNUSED(a)
#define MP_PROBE2(name, a, b) (MP_PROBE_UNUSED(a), MP_PROBE_UNUSED(b))
#define MP_PROBE3(name, a, b, c) (MP_PROBE_UNUSED(a), MP_PROBE_UNUSED(b), MP_PROBE_UNUSED(c))
#define MP_PROBE4(name, a, b, c, d) \
	(MP_PROBE_UNUSED(a), MP_PROBE_UNUSED(b), MP_PROBE_UNUSED(c), MP_PROBE_UNUSED(d))
#endif

/*
 * The calling thread's CPU id where the kernel keeps it, in glibc's rseq
 * area, as memory for a probe argument: the tracer reads it, the code only
 * forms its address (two instructions: the thread pointer, read into a
 * register because tracers cannot read %fs-relative operands, plus the
 * area's offset).  Negative (-1, -2) when glibc did not register rseq.
 * For probes off the fast path (the zone's).
 */
extern ptrdiff_t mp_rseq_offset;    /* platform/cpu.h */
static inline const int32_t *probe_cpu_id_at(void)
{
	char *tp;
#if defined(__x86_64__)
	__asm__("movq %%fs:0, %0" : "=r"(tp));
#else
	tp = __builtin_thread_pointer();
#endif
	return (const int32_t *)(tp + mp_rseq_offset + 4);
}
#define probe_cpu_id (*probe_cpu_id_at())

/* mm_page_alloc's source argument. */
enum { PROBE_FROM_ZONE = 0, PROBE_FROM_CACHE = 1 };
/* signal_deferred's where argument. */
enum { PROBE_IN_ZONE = 1, PROBE_IN_CACHE = 2 };

#endif
