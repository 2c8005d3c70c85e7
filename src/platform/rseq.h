/*
 * rseq.h — restartable sequences on glibc's registered rseq area, for the
 * pcp-rseq per-CPU lists (Linux 3.9's per-CPU pages, in user space).
 *
 * A per-CPU list is one 64-bit word: the pfn of its first block in the low
 * 32 bits (PCP_EMPTY when empty), the block count above it, and bit 63 set
 * while a remote drain owns the list.  Blocks link through
 * page_desc.pcp_next.  Each primitive is one critical section ending in a
 * single committing store of the word; if the thread is preempted, migrated
 * or takes a signal before that store, the kernel sends it to the abort
 * label and the caller retries, on whatever CPU it is then on.  That is what
 * makes the lists usable from signal handlers without masking anything.
 * x86-64 only; elsewhere pcp-rseq falls back to pcp-lock.
 */
#ifndef MAGPAGE_RSEQ_H
#define MAGPAGE_RSEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/rseq.h>

#define PCP_EMPTY    0xffffffffu
#define PCP_STOPPED  (1ull << 63)
#define PCP_COUNT(w) ((uint32_t)(((w) >> 32) & 0x7fffffffu))
#define PCP_HEAD(w)  ((uint32_t)(w))

enum rseq_result { RSEQ_DONE, RSEQ_ABORTED, RSEQ_LIST_EMPTY, RSEQ_LIST_STOPPED };

#if defined(__x86_64__)
#define MP_HAVE_RSEQ 1

static inline struct rseq *rseq_area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + mp_rseq_offset);
}

/* The critical-section descriptor (start 1f, length to 2f, abort 4f) at
 * 3b, and the abort stub, preceded by glibc's signature as the kernel
 * requires.  RSEQ_CS_DESC arms the descriptor through %rax in the area
 * at %[rs]; the fs-relative forms below arm it through %fs. */
#define RSEQ_CS_TABLE                                                  \
	".pushsection __rseq_cs, \"aw\"\n\t"                           \
	".balign 32\n\t"                                               \
	"3:\n\t"                                                       \
	".long 0x0, 0x0\n\t"                                           \
	".quad 1f, (2f - 1f), 4f\n\t"                                  \
	".popsection\n\t"
#define RSEQ_CS_DESC                                                   \
	RSEQ_CS_TABLE                                                  \
	"leaq 3b(%%rip), %%rax\n\t"                                    \
	"movq %%rax, %c[cs_off](%[rs])\n\t"
#define RSEQ_ABORT_STUB(label)                                         \
	".pushsection __rseq_failure, \"ax\"\n\t"                      \
	".byte 0x0f, 0xb9, 0x3d\n\t"                                   \
	".long 0x53053053\n\t"                                         \
	"4:\n\t"                                                       \
	"jmp %l[" #label "]\n\t"                                       \
	".popsection\n\t"
/* A pop section's exits, after its asm goto names them: restarted, the
 * list empty, or no usable CPU id / the list stopped. */
#define RSEQ_POP_EXITS                                                 \
aborted:                                                               \
	return RSEQ_ABORTED;                                           \
empty:                                                                 \
	return RSEQ_LIST_EMPTY;                                        \
nocpu:                                                                 \
	return RSEQ_LIST_STOPPED
#define RSEQ_COMMON_IN                                                 \
	[rs] "r"(rseq_area()), [cpu] "r"(cpu),                         \
	[cs_off] "i"(offsetof(struct rseq, rseq_cs)),                  \
	[cpu_off] "i"(offsetof(struct rseq, cpu_id))

/* Takes the whole list: *taken gets the old word, the list is left empty. */
static inline enum rseq_result rseq_pcp_take_all(uint64_t *w, int cpu, uint64_t *taken)
{
	uint64_t word;
	__asm__ goto(
		RSEQ_CS_DESC
		"1:\n\t"
		"cmpl %[cpu], %c[cpu_off](%[rs])\n\t"
		"jnz %l[aborted]\n\t"
		"movq (%[w]), %[word]\n\t"
		"btq $63, %[word]\n\t"
		"jc %l[stopped]\n\t"
		"movl $-1, %%eax\n\t"
		"movq %%rax, (%[w])\n\t"
		"2:\n\t"
		RSEQ_ABORT_STUB(aborted)
		: [word] "=&r"(word)
		: [w] "r"(w), RSEQ_COMMON_IN
		: "rax", "memory", "cc"
		: aborted, stopped);
	*taken = word;
	return RSEQ_DONE;
aborted:
	return RSEQ_ABORTED;
stopped:
	return RSEQ_LIST_STOPPED;
}

/*
 * The bonwick cache's per-CPU arrays (cache/bonwick.c), and the runs' per-CPU
 * caches of objects (malloc/runs.c), laid out alike: per CPU and size class
 * a header of 32-bit words, count, top and high, and an array of pfns (or
 * object numbers).  top is a copy of slots[count - 1] while count > 0, so
 * that a pop's result waits for one load, the header's, and not for the
 * count's and then the slot's (batch 1, 1 thread: malloc 85 -> 77 cycles).
 * count has bit 31 set while a remote drain owns the array, which makes it
 * negative (pop sees "empty") and larger than any high (push sees "full"),
 * so both primitives send the caller to the slow path.  Each section ends
 * in the single 8-byte store of count and top together; whatever else
 * writes count (a drain: 0, BW_STOPPED, or the count it found, the slots
 * untouched) leaves top right.
 */
#define BW_STOPPED 0x80000000u

/*
 * The single pop and push (rseq_bw_pop_here, rseq_bw_push_here below),
 * the one-hop path's and the slow paths' alike, address the rseq
 * area through %fs (the thread pointer is %fs's base, the area sits at
 * __rseq_offset from it), which spares the load of the thread pointer at
 * the head of the fast path's chain of dependent loads, and a register.
 */
#if defined(__SEG_FS)
#define RSEQ_FS_AREA(off) (*(volatile __seg_fs const uint32_t *)(uintptr_t)(mp_rseq_offset + (off)))
/* This thread's cpu_id, as the sections compare it; >= any CPU count when
 * the thread has no registration (RSEQ_CPU_ID_UNINITIALIZED and
 * RSEQ_CPU_ID_REGISTRATION_FAILED are negative). */
static inline uint32_t rseq_cpu_id(void)
{
	return RSEQ_FS_AREA(offsetof(struct rseq, cpu_id));
}
#else
static inline uint32_t rseq_cpu_id(void)
{
	return __atomic_load_n(&rseq_area()->cpu_id, __ATOMIC_RELAXED);
}
#endif

/* Armed through the named output register (any: it is written again
 * inside the section). */
#define RSEQ_CS_DESC_FS_VIA(reg)                                       \
	RSEQ_CS_TABLE                                                  \
	"leaq 3b(%%rip), %[" #reg "]\n\t"                              \
	"movq %[" #reg "], %%fs:%c[cs_off](%[rso])\n\t"


/* The start of both sections: this CPU's id into %[reg] (zero-extended),
 * out to nocpu at nr or past; then RSEQ_BW_HEADER turns the id in %[hreg]
 * into the address of the array's header. */
#define RSEQ_BW_HERE(reg)                                              \
	"1:\n\t"                                                       \
	"movl %%fs:%c[cpu_off](%[rso]), %k[" #reg "]\n\t"              \
	"cmpl %[nr], %k[" #reg "]\n\t"                                 \
	"jae %l[nocpu]\n\t"
#define RSEQ_BW_HEADER(hreg)                                           \
	"shlq $16, %[" #hreg "]\n\t"                                   \
	"addq %[basek], %[" #hreg "]\n\t"
#define RSEQ_BW_IN_AT(off)                                             \
	[rso] "r"(off), [nr] "m"(*nr),                                 \
	[cs_off] "i"(offsetof(struct rseq, rseq_cs)),                  \
	[cpu_off] "i"(offsetof(struct rseq, cpu_id))

/*
 * The area's offset.  The sections take it as an operand: the slow paths
 * pass mp_rseq_offset (RSEQ_AT_OFFSET, a load), and bonwick's one-hop pop
 * and push (cache/bonwick.h) and the runs' one-hop pop the value the build
 * recorded from glibc's __rseq_offset (MAGPAGE_RSEQ_OFFSET_BUILT,
 * CMakeLists.txt), a constant, so that the section's first load, the CPU
 * id's, waits for no load: batch 1, 1 thread, about 3 cycles a pair.
 * Those run only where this process's glibc agrees (rseq_offset_is_built):
 * otherwise pa_init sends the one-hop sizes through the cache table, whose
 * sections take the load, and runs_init leaves rc_hop off.  Without a
 * recorded value, both are the load.
 */
#define RSEQ_AT_OFFSET(fn, ...) fn(mp_rseq_offset, __VA_ARGS__)
#ifdef MAGPAGE_RSEQ_OFFSET_BUILT
#define RSEQ_AT_BUILT(fn, ...) fn((ptrdiff_t)MAGPAGE_RSEQ_OFFSET_BUILT, __VA_ARGS__)
static inline bool rseq_offset_is_built(void)
{
	return mp_rseq_offset == (ptrdiff_t)MAGPAGE_RSEQ_OFFSET_BUILT;
}
#else
#define RSEQ_AT_BUILT RSEQ_AT_OFFSET
static inline bool rseq_offset_is_built(void)
{
	return true;
}
#endif

/*
 * The one-hop path's pop and push: the section reads this thread's CPU id
 * itself, after its descriptor is armed, and finds the CPU's array from it
 * (basek + cpu * 64 KiB + koff, basek being the CPU caches' base, koff the
 * class's offset, added in the header load's addressing, so that the
 * address waits for the later of the two): a migration after that read is
 * a preemption, which restarts the section, so no compare with an id read
 * before is needed, and nothing is read outside it.  A CPU id at or above
 * nr (no registration: the kernel never writes it, and glibc leaves a
 * negative value) leaves the section at once: RSEQ_LIST_STOPPED with
 * *cpu unset.  On RSEQ_DONE *cpu is the CPU whose array was used.
 * Only after cpu_init: the descriptor is stored before anything is
 * checked, at %fs + rso, which is glibc's area only once set, and only if
 * rso is glibc's offset (every caller is reached through bounds that init
 * opens, the _built ones only where rseq_offset_is_built).
 */
static ALWAYS_INLINE enum rseq_result rseq_bw_pop_at(ptrdiff_t rso, uint64_t basek,
						     uint64_t koff, const uint32_t *nr,
						     uint64_t *pfn, uint32_t *cpu)
{
	uint64_t c, h, n, v, t;
	/* the result is the header's top; the next top, slots[count - 2], is
	 * read at 56 + 4 x count before the decrement (for count 1 the header
	 * line's last word, padding: a top no pop reads).  The class's offset
	 * is added in the header load's addressing, as the push does: malloc's
	 * comes from the size's table, a load that may end after the CPU id's */
	__asm__ __volatile__ goto(
		RSEQ_CS_DESC_FS_VIA(c)
		RSEQ_BW_HERE(c)
		"movq %[c], %[h]\n\t"
		RSEQ_BW_HEADER(h)
		"movq (%[h], %[k]), %[v]\n\t"
		"movl %k[v], %k[n]\n\t"
		"testl %k[n], %k[n]\n\t"
		"jle %l[empty]\n\t"
		"addq %[k], %[h]\n\t"
		"shrq $32, %[v]\n\t"
		"movl 56(%[h], %[n], 4), %k[t]\n\t"
		"decl %k[n]\n\t"
		"shlq $32, %[t]\n\t"
		"orq %[n], %[t]\n\t"
		"movq %[t], (%[h])\n\t"
		"2:\n\t"
		RSEQ_ABORT_STUB(aborted)
		: [c] "=&r"(c), [h] "=&r"(h), [n] "=&r"(n), [v] "=&r"(v), [t] "=&r"(t)
		: [k] "r"(koff), [basek] "rm"(basek), RSEQ_BW_IN_AT(rso)
		: "memory", "cc"
		: aborted, empty, nocpu);
	*pfn = v;
	*cpu = (uint32_t)c;
	return RSEQ_DONE;
	RSEQ_POP_EXITS;
}
#define rseq_bw_pop_here(...) RSEQ_AT_OFFSET(rseq_bw_pop_at, __VA_ARGS__)
#define rseq_bw_pop_built(...) RSEQ_AT_BUILT(rseq_bw_pop_at, __VA_ARGS__)

/* The push takes the class's offset apart from the base (basek: the
 * caches' base less any bias the caller folded into koff; a register or
 * memory, which spares free a register), and adds it in the loads'
 * addressing: free's offset comes from the descriptor, at the end of its
 * chain of dependent loads, so that it then waits for the address
 * generation alone. */
static ALWAYS_INLINE enum rseq_result rseq_bw_push_at(ptrdiff_t rso, uint64_t basek,
						      uint64_t koff, const uint32_t *nr,
						      uint32_t pfn)
{
	uint64_t h, n, t;
	__asm__ __volatile__ goto(
		RSEQ_CS_DESC_FS_VIA(h)
		RSEQ_BW_HERE(h)
		RSEQ_BW_HEADER(h)
		"movl (%[h], %[k]), %k[n]\n\t"
		"cmpl 8(%[h], %[k]), %k[n]\n\t"
		"jae %l[nocpu]\n\t"
		"addq %[k], %[h]\n\t"
		"movl %k[pfn], 64(%[h], %[n], 4)\n\t"
		"incl %k[n]\n\t"
		"movl %k[pfn], %k[t]\n\t"
		"shlq $32, %[t]\n\t"
		"orq %[n], %[t]\n\t"
		"movq %[t], (%[h])\n\t"
		"2:\n\t"
		RSEQ_ABORT_STUB(aborted)
		: [h] "=&r"(h), [n] "=&r"(n), [t] "=&r"(t)
		: [pfn] "r"(pfn), [k] "r"(koff), [basek] "rm"(basek), RSEQ_BW_IN_AT(rso)
		: "memory", "cc"
		: aborted, nocpu);
	return RSEQ_DONE;
aborted:
	return RSEQ_ABORTED;
nocpu:                       /* no CPU id, or the array full or stopped */
	return RSEQ_LIST_STOPPED;
}
#define rseq_bw_push_here(...) RSEQ_AT_OFFSET(rseq_bw_push_at, __VA_ARGS__)
#define rseq_bw_push_built(...) RSEQ_AT_BUILT(rseq_bw_push_at, __VA_ARGS__)

/*
 * pcp-rseq's pop and push (cache/pcp_rseq.c: its slow paths, and the
 * one-hop path's pcpr_pop_once and pcpr_push_once), which read the CPU id
 * inside the section as the two above do: this CPU's list is the word at
 * basek + cpu * 128 (struct pcp_cpu; basek is the lists' base plus the
 * class's word).  A block's link is its descriptor's pcp_next, at
 * descs_next + pfn * 64.  RSEQ_LIST_STOPPED: no usable CPU id (at or above
 * nr), or a remote drain owns the list.
 */
#define PCP_CPU_SHIFT 7

/* Both sections' start: arm, this CPU's list word's address into %[l]
 * (out to nocpu without a usable CPU id), the word into %[w], out to
 * nocpu if a remote drain owns the list. */
#define RSEQ_PCP_HERE                                                  \
	RSEQ_CS_DESC_FS_VIA(l)                                         \
	RSEQ_BW_HERE(l)                                                \
	"shlq %[shift], %[l]\n\t"                                      \
	"addq %[basek], %[l]\n\t"                                      \
	"movq (%[l]), %[w]\n\t"                                        \
	"btq $63, %[w]\n\t"                                            \
	"jc %l[nocpu]\n\t"
#define RSEQ_PCP_IN                                                    \
	[basek] "r"(basek), [shift] "i"(PCP_CPU_SHIFT), RSEQ_BW_IN_AT(rso)

/* Pops the first block of this CPU's list into *pfn. */
static ALWAYS_INLINE enum rseq_result rseq_pcp_pop_at(ptrdiff_t rso, uint64_t basek,
						      const uint32_t *nr, uint64_t descs_next,
						      uint32_t *pfn)
{
	uint64_t l, w, h, t;
	__asm__ __volatile__ goto(
		RSEQ_PCP_HERE
		"movl %k[w], %k[h]\n\t"
		"cmpl $-1, %k[h]\n\t"
		"je %l[empty]\n\t"
		"movq %[h], %[t]\n\t"
		"shlq $6, %[t]\n\t"
		"movl (%[t], %[dn]), %k[t]\n\t"
		"shrq $32, %[w]\n\t"
		"decq %[w]\n\t"
		"shlq $32, %[w]\n\t"
		"orq %[t], %[w]\n\t"
		"movq %[w], (%[l])\n\t"
		"2:\n\t"
		RSEQ_ABORT_STUB(aborted)
		: [l] "=&r"(l), [w] "=&r"(w), [h] "=&r"(h), [t] "=&r"(t)
		: [dn] "r"(descs_next), RSEQ_PCP_IN
		: "memory", "cc"
		: aborted, empty, nocpu);
	*pfn = (uint32_t)h;
	return RSEQ_DONE;
	RSEQ_POP_EXITS;
}
#define rseq_pcp_pop_here(...) RSEQ_AT_OFFSET(rseq_pcp_pop_at, __VA_ARGS__)

/* Pushes the private chain first..last (n blocks linked by pcp_next;
 * lastp: &last's pcp_next) in front of this CPU's list; *count gets the
 * list's new count. */
static ALWAYS_INLINE enum rseq_result rseq_pcp_push_at(ptrdiff_t rso, uint64_t basek,
						       const uint32_t *nr, uint32_t first,
						       uint32_t *lastp, uint64_t n,
						       uint32_t *count)
{
	uint64_t l, w;
	__asm__ __volatile__ goto(
		RSEQ_PCP_HERE
		"movl %k[w], (%[lastp])\n\t"
		"shrq $32, %[w]\n\t"
		"addq %[n], %[w]\n\t"
		"shlq $32, %[w]\n\t"
		"orq %q[first], %[w]\n\t"
		"movq %[w], (%[l])\n\t"
		"2:\n\t"
		RSEQ_ABORT_STUB(aborted)
		: [l] "=&r"(l), [w] "=&r"(w)
		: [first] "r"((uint64_t)first), [lastp] "r"(lastp), [n] "ri"(n), RSEQ_PCP_IN
		: "memory", "cc"
		: aborted, nocpu);
	*count = PCP_COUNT(w);
	return RSEQ_DONE;
aborted:
	return RSEQ_ABORTED;
nocpu:
	return RSEQ_LIST_STOPPED;
}
#define rseq_pcp_push_here(...) RSEQ_AT_OFFSET(rseq_pcp_push_at, __VA_ARGS__)

/* Moves the top k pfns of this CPU's array (k <= count) into buf; the new
 * top with the new count. */
static inline enum rseq_result rseq_bw_pop_n(uint32_t *hdr, int cpu, uint32_t *buf, uint64_t k)
{
	uint64_t n, i, v;
	__asm__ __volatile__ goto(
		RSEQ_CS_DESC
		"1:\n\t"
		"cmpl %[cpu], %c[cpu_off](%[rs])\n\t"
		"jnz %l[aborted]\n\t"
		"movl (%[hdr]), %k[n]\n\t"
		"testl %k[n], %k[n]\n\t"
		"js %l[few]\n\t"
		"cmpq %[k], %[n]\n\t"
		"jb %l[few]\n\t"
		"subq %[k], %[n]\n\t"
		"xorl %k[i], %k[i]\n\t"
		"5:\n\t"
		"cmpq %[k], %[i]\n\t"
		"jae 6f\n\t"
		"leaq (%[n], %[i]), %[v]\n\t"
		"movl 64(%[hdr], %[v], 4), %k[v]\n\t"
		"movl %k[v], (%[buf], %[i], 4)\n\t"
		"incq %[i]\n\t"
		"jmp 5b\n\t"
		"6:\n\t"
		"movl 60(%[hdr], %[n], 4), %k[v]\n\t"
		"shlq $32, %[v]\n\t"
		"orq %[n], %[v]\n\t"
		"movq %[v], (%[hdr])\n\t"
		"2:\n\t"
		RSEQ_ABORT_STUB(aborted)
		: [n] "=&r"(n), [i] "=&r"(i), [v] "=&r"(v)
		: [hdr] "r"(hdr), [buf] "r"(buf), [k] "r"(k), RSEQ_COMMON_IN
		: "rax", "memory", "cc"
		: aborted, few);
	return RSEQ_DONE;
aborted:
	return RSEQ_ABORTED;
few:
	return RSEQ_LIST_EMPTY;
}

/* Appends k pfns from buf to this CPU's array if count + k <= high; the
 * last one is the new top. */
static inline enum rseq_result rseq_bw_push_n(uint32_t *hdr, int cpu, const uint32_t *buf,
					      uint64_t k)
{
	uint64_t n, i, v;
	__asm__ __volatile__ goto(
		RSEQ_CS_DESC
		"1:\n\t"
		"cmpl %[cpu], %c[cpu_off](%[rs])\n\t"
		"jnz %l[aborted]\n\t"
		"movl (%[hdr]), %k[n]\n\t"
		"movl 8(%[hdr]), %k[v]\n\t"
		"subq %[k], %[v]\n\t"
		"jb %l[full]\n\t"
		"cmpq %[v], %[n]\n\t"
		"ja %l[full]\n\t"
		"xorl %k[i], %k[i]\n\t"
		"5:\n\t"
		"cmpq %[k], %[i]\n\t"
		"jae 6f\n\t"
		"movl (%[buf], %[i], 4), %k[v]\n\t"
		"movl %k[v], 64(%[hdr], %[n], 4)\n\t"
		"incq %[n]\n\t"
		"incq %[i]\n\t"
		"jmp 5b\n\t"
		"6:\n\t"
		"movl 60(%[hdr], %[n], 4), %k[v]\n\t"
		"shlq $32, %[v]\n\t"
		"orq %[n], %[v]\n\t"
		"movq %[v], (%[hdr])\n\t"
		"2:\n\t"
		RSEQ_ABORT_STUB(aborted)
		: [n] "=&r"(n), [i] "=&r"(i), [v] "=&r"(v)
		: [hdr] "r"(hdr), [buf] "r"(buf), [k] "r"(k), RSEQ_COMMON_IN
		: "rax", "memory", "cc"
		: aborted, full);
	return RSEQ_DONE;
aborted:
	return RSEQ_ABORTED;
full:
	return RSEQ_LIST_STOPPED;
}

#else
#define MP_HAVE_RSEQ 0
static inline bool rseq_offset_is_built(void)
{
	return true;           /* no sections to address the area */
}
#endif

#endif
