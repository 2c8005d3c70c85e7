/*
 * internal.h — the map of libmagpage.
 *
 * Every function that one file calls in another is declared here, under the
 * file that defines it, in layer order from the bottom (platform) to the top
 * (malloc).  Each layer knows only the ones below it:
 *
 *   preload/    exported symbols, lazy init, fork and sigaction interposition
 *   malloc/     C allocation semantics, size routing, fallback allocator
 *   pagealloc/  alloc_pages/free_pages: cache or zone, by order and context
 *   cache/      the page caches (bonwick, magazine, pcp-rseq, pcp-lock,
 *               none) behind one interface
 *   zone/       region, page descriptors, buddy free areas
 *   platform/   cpu id, locks, signal context, options, formatter, OS hooks
 *
 * Naming: module prefix plus verb (zone_take_batch, mag_alloc); a leading
 * "__" means the caller already holds the lock that guards the data.
 */
#ifndef MAGPAGE_INTERNAL_H
#define MAGPAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>
#include <signal.h>
#include <sys/types.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define NOINLINE    __attribute__((__noinline__))
#define ALWAYS_INLINE inline __attribute__((__always_inline__))
#define coldpath    __attribute__((__cold__, __noinline__))
#define CACHELINE   64
#define cacheline_aligned __attribute__((aligned(CACHELINE)))

#define PAGE_SHIFT      12
#define PAGE_SIZE       ((size_t)1 << PAGE_SHIFT)
#define MAX_ORDER       11                         /* orders 0..10 */
#define MAX_BLOCK_PAGES ((size_t)1 << (MAX_ORDER - 1))   /* 1024 pages */
#define MAX_BLOCK_BYTES (MAX_BLOCK_PAGES << PAGE_SHIFT)  /* 4 MiB */
#define CACHE_ORDERS    5                          /* caches hold orders 0..4 */
#define MAX_CACHES      64                         /* magazines, or CPUs */

static inline unsigned ilog2_floor(size_t n) { return 63u - (unsigned)__builtin_clzl(n); }
static inline unsigned ilog2_ceil(size_t n) { return n <= 1 ? 0 : ilog2_floor(n - 1) + 1; }
static inline bool is_pow2(size_t n) { return n && !(n & (n - 1)); }

/* ------------------------------------------------------------------------
 * platform/lock.h — spinlock with contention counters (inline, see file)
 * ---------------------------------------------------------------------- */
#include "platform/lock.h"

/* ------------------------------------------------------------------------
 * platform/probes.h — USDT tracepoints, provider magpage (see file)
 * ---------------------------------------------------------------------- */
#include "platform/probes.h"

/* ------------------------------------------------------------------------
 * platform/fmt.c — diagnostics without malloc
 * ---------------------------------------------------------------------- */
#include <stdarg.h>

struct fmt_buf {
	int fd;          /* where fmt_flush writes */
	size_t len;      /* bytes used in buf */
	size_t cap;      /* size of buf; flushed to fd when full */
	char *buf;       /* the caller's storage: stack, or mmap for reports */
};
void fmt_init(struct fmt_buf *b, int fd, char *buf, size_t cap);
/* A formatter with stack storage of the given size. */
#define FMT_ON_STACK(b, fd, size) \
	char b##_store[size]; struct fmt_buf b; fmt_init(&b, fd, b##_store, size)
void fmt_printf(struct fmt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fmt_vprintf(struct fmt_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void fmt_flush(struct fmt_buf *b);
/* src[0..n) made safe to echo in a message: backslash, ' and control
 * characters (C0, DEL, C1) and bytes that are not UTF-8 become \\, \' and
 * \xNN.  Writes whole escapes only, ending in "..." when src does not fit;
 * returns the length written (a NUL follows). */
size_t fmt_escape(char *dst, size_t cap, const char *src, size_t n);
/* s as a JSON string, quotes included; bytes that are not UTF-8 become
 * U+FFFD, so the output is always valid JSON. */
void fmt_json_string(struct fmt_buf *b, const char *s);
/* One line to fd 2, prefixed "libmagpage: " and ending in a newline. */
void mp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* mp_log, then abort(). */
void mp_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* snprintf-like into a caller buffer; returns the length written. */
size_t fmt_snprintf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------------
 * platform/os.c — the OS behind a narrow hook table (tests stub it)
 * ---------------------------------------------------------------------- */
struct os_hooks {
	void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
	int (*munmap)(void *addr, size_t len);
	int (*madvise)(void *addr, size_t len, int advice);
	int (*set_sigmask)(int how, const sigset_t *set, sigset_t *old);
	int (*mprotect)(void *addr, size_t len, int prot);
	uint64_t (*phys_bytes)(void);
	/* The tighter of the soft RLIMIT_AS and RLIMIT_DATA in bytes;
	 * UINT64_MAX when neither is finite. */
	uint64_t (*mem_limit)(void);
	int (*ncpus)(void);
	/* CLOCK_MONOTONIC_COARSE in ns: ages of free blocks (a few ms of
	 * resolution is plenty for delays of seconds, and it is the cheapest
	 * clock); tests stub it to move time by hand. */
	uint64_t (*coarse_ns)(void);
	/* NUMA (zone/numa.c): the two system calls, raw (no libnuma), and
	 * sysfs text: up to cap - 1 bytes of path, NUL-terminated; -1 if
	 * it cannot be read. */
	long (*mbind)(void *addr, unsigned long len, int mode, const unsigned long *mask,
		      unsigned long maxnode, unsigned flags);
	long (*get_mempolicy)(int *mode, unsigned long *mask, unsigned long maxnode);
	long (*read_text)(const char *path, char *buf, size_t cap);
};
extern struct os_hooks os;
uint64_t os_now_ns(void);
/* Sleeps while *word == val, at most timeout_ns (UINT64_MAX: no limit);
 * returns on a wake, a timeout, a signal or a changed word. */
void os_futex_wait(uint32_t *word, uint32_t val, uint64_t timeout_ns);
void os_futex_wake(uint32_t *word);
/* membarrier(2), for the caches' remote fence; returns its result. */
int os_membarrier(int cmd, unsigned flags, int cpu);
/* Queues sig to the calling thread again: with its siginfo when si is
 * given (rt_tgsigqueueinfo), else plain (tgkill).  Async-signal-safe. */
void os_signal_self(int sig, siginfo_t *si);
/* Starts fn(NULL) on a detached thread with a 128 KiB stack and every
 * signal blocked (a library thread never runs the program's handlers);
 * returns pthread_create's result.  The purge and live publishers. */
int os_spawn_helper(void *(*fn)(void *));
/* This process's pid as the library last saw it (start-up, atfork child). */
extern int os_pid;
/* Called once in a process the atfork handlers never saw: the child of
 * _Fork (or of a raw clone), whose locks may be held by threads that do not
 * exist there.  Set by the malloc layer. */
extern void (*os_fork_hook)(void);
/* True, after running os_fork_hook once, if this is such a process: a copy
 * a raw system call made, found by its wiped canary. */
bool os_forked(void);
/* The child of _Fork, from the interposed _Fork (preload/fork.c): its pid
 * recorded and os_fork_hook run at once. */
void os_fork_found(void);
/* preload/fork.c: finds glibc's _Fork, from the library's constructor. */
void fork_init(void);
/* Arms the wipe-on-fork page that spares os_forked its system call; after
 * os_pid is set, at start-up. */
void os_fork_watch(void);
/* Arms the wipe-on-fork page again in a child (the atfork handler's). */
void os_fork_rearm(void);
/* True in a child that runs in its parent's memory (vfork, clone with
 * CLONE_VM): what it writes, the parent reads.  One system call. */
bool os_vm_shared_child(void);

/* ------------------------------------------------------------------------
 * platform/cpu.c — which CPU is this thread on
 * ---------------------------------------------------------------------- */
void cpu_init(void);
int cpu_current_slow(void);
extern bool cpu_rseq_ok;              /* glibc registered an rseq area */
#include "platform/cpu.h"

/* ------------------------------------------------------------------------
 * platform/sigctx.c — "interrupt context": signal-handler depth per thread
 * ---------------------------------------------------------------------- */
struct mp_tls {
	union {
		struct {
			uint32_t depth;     /* signal handlers entered and not left; a
					       hint: outer_sp/outer_alt_sp say whether
					       any is still live (see sigctx.c) */
			uint8_t in_cache;   /* inside a page-cache critical section
					       (signals are held back meanwhile) */
			uint8_t zero[3];    /* never written: the word is 0 exactly
					       when depth and in_cache are */
		};
		uint64_t word;              /* both, for one compare with 0 */
	};
	uintptr_t free_below;      /* malloc.c: free() hands a pointer below it
				      straight to glibc.  The region's base
				      (malloc.c's free_below) once a free on
				      this thread saw word 0; 0 at thread start,
				      and from sigctx_enter, sigctx_hold and the
				      magazines' cs_enter on, so that a handler's
				      free never takes that way */
	uint8_t in_init;           /* this thread is running mp_init */
	uint8_t in_zone;           /* between zone_lock and zone_unlock */
	uint8_t hop_frees;         /* malloc.c: frees the table hop absorbed, to
				      sample (1 in 64) for the purge */
	uint8_t bw_exited;         /* cache/bonwick.c: thread_exit took this
				      thread's arrays down; it makes no more */
	uint32_t alt_size;         /* see alt_lo; 0 before */
	uintptr_t outer_sp;        /* trampoline frame of the outermost live handler on
				      the thread's own stack; 0 if none */
	uintptr_t outer_alt_sp;    /* the same on the sigaltstack */
	uintptr_t alt_lo;          /* this thread's sigaltstack, [alt_lo,
				      alt_lo + alt_size), once seen in use */
	uint64_t deferred;         /* signals (bit sig-1) held back while in_zone
				      or in_cache */
	void *bw_mine;             /* cache/bonwick.c: this thread's arrays when
				      there is no rseq; here so that the fast
				      path finds it with the word above */
};
_Static_assert(sizeof(struct mp_tls) <= 64, "thread-locals stay tiny (tests/integration: the exports test)");
extern __thread struct mp_tls mp_tls;
bool sigctx_in_irq_slow(void);
/* True when the caller must behave as interrupt context: inside a handler,
 * or re-entered while this thread holds a page-cache lock. */
static inline bool sigctx_in_irq(void)
{
	/* depth and in_cache in one compare */
	if (likely(mp_tls.word == 0))
		return false;
	return sigctx_in_irq_slow();
}
/*
 * This thread as the holder of a page-cache lock (bonwick's depots, the
 * magazines), so that the child of _Fork tells a lock its own interrupted
 * code holds from one a vanished thread held (bw_fork_recover,
 * mag_fork_recover): the address of its thread-locals, whole, which no
 * other live thread shares and which is never 0.  The child of _Fork keeps
 * the address of the thread that called it.
 */
static inline uintptr_t mp_self_mark(void)
{
	return (uintptr_t)&mp_tls;
}

/* Stores a holder mark (the holder's own, or 0 as it lets go): atomic, so
 * that the compiler neither drops nor splits it. */
static inline void mp_set_holder(uintptr_t *holder, uintptr_t mark)
{
	__atomic_store_n(holder, mark, __ATOMIC_RELAXED);
}
/* mp_tls.word non-zero: a glibc-bound call must take the slow path (a
 * handler is running, or a cache section is re-entered). */
/* The trampoline's bookkeeping around a handler.  sigctx_enter returns the
 * frame record (sp, bit 0 set on the altstack) that sigctx_leave takes. */
uintptr_t sigctx_enter(uintptr_t sp, bool may_be_on_altstack);
void sigctx_leave(uintptr_t frame);
/* In the only thread of a new process: no handler is running there in any
 * sense the allocator cares about, even if fork was called from one. */
void sigctx_fork_child(void);
/* The sigaction interposition's lock (preload/signals.c), here so that
 * sigctx_fork_child can reset it. */
extern struct mp_lock sigctx_act_lock;
/* Block every signal, remember the old mask (start-up, sigaction). */
void sigctx_block_all(sigset_t *saved);
void sigctx_restore(const sigset_t *saved);
/*
 * The zone lock's irqsave/irqrestore.  With zone_irqsave:defer (default) no
 * system call: the thread is marked in_zone, and the trampoline holds back a
 * signal that arrives meanwhile (blocked and re-queued with its siginfo),
 * releasing it at sigctx_zone_leave.  With zone_irqsave:sigmask every signal
 * is blocked with pthread_sigmask for the duration, as spin_lock_irqsave.
 */
struct zone_irq {
	uint64_t saved;   /* sigmask mode only: the old mask of signals 1..64
			     (8 bytes, not a 128-byte sigset_t: handlers run on
			     small alternate stacks) */
};
void sigctx_zone_enter(struct zone_irq *z);
void sigctx_zone_leave(struct zone_irq *z);
/* Trampoline side: true if the signal was held back for later (the thread
 * is inside the zone or a page-cache critical section). */
bool sigctx_defer_signal(int sig, siginfo_t *si, void *uc);
/* Delivers what was held back; called when mp_tls.deferred is non-zero on
 * leaving the zone or a cache section. */
void sigctx_release_deferred(void);
/*
 * Holds this thread's signals back (the trampoline defers them, in_cache)
 * until the matching sigctx_unhold: around a lock that a handler must never
 * find held by the code it interrupted, and that a siglongjmp out of such a
 * handler would strand.  Nests: sigctx_unhold takes what sigctx_hold gave.
 */
static inline uint8_t sigctx_hold(void)
{
	uint8_t was = mp_tls.in_cache;
	mp_tls.in_cache = 1;
	mp_tls.free_below = 0;     /* a re-entered free takes the slow way */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return was;
}
static inline void sigctx_unhold(uint8_t was)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	mp_tls.in_cache = was;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (!was && unlikely(mp_tls.deferred))
		sigctx_release_deferred();
}

/* A lock a handler must never find held by the code it interrupted, taken
 * with this thread's signals held back; try_only (a handler: the forking
 * thread holds it across fork) only tries it.  False: not taken, nothing
 * held back. */
static inline bool sigctx_lock(struct mp_lock *l, bool try_only, uint8_t *was)
{
	*was = sigctx_hold();
	if (try_only ? mp_trylock(l) : (mp_lock(l), true))
		return true;
	sigctx_unhold(*was);
	return false;
}
static inline void sigctx_unlock(struct mp_lock *l, uint8_t was)
{
	mp_unlock(l);
	sigctx_unhold(was);
}

/* Pushes p (whose first word becomes the link) on a lock-free stack that
 * one consumer takes whole (an exchange with NULL): no ABA. */
static inline void mp_stack_push(void **head, void *p)
{
	void *old = __atomic_load_n(head, __ATOMIC_RELAXED);
	do
		*(void **)p = old;
	while (!__atomic_compare_exchange_n(head, &old, p, true, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED));
}

struct sig_stats {
	uint64_t handler_entries;   /* handler invocations through the trampoline */
	uint64_t stale_frames;      /* handler levels recovered after siglongjmp out of them */
	uint64_t forks_detected;    /* children of _Fork (no atfork handlers) recovered */
	uint64_t reentry_caught;    /* calls made while in_cache: second line of defence */
	uint64_t deferred_signals;  /* signals held back while their thread held the zone lock */
};
extern struct sig_stats sig_stats;

/* ------------------------------------------------------------------------
 * platform/options.c — MAGPAGE_CONF, one table drives everything
 * ---------------------------------------------------------------------- */
enum cache_kind { CACHE_MAGAZINE, CACHE_NONE, CACHE_PCP_RSEQ, CACHE_PCP_LOCK, CACHE_BONWICK };
enum mag_map { MAP_CPU, MAP_PAIR };
enum sig_policy { SIG_BYPASS, SIG_TRYLOCK };
enum stats_mode { STATS_OFF, STATS_TEXT, STATS_JSON };
enum live_mode { LIVE_OFF, LIVE_ON, LIVE_COUNTED };
enum on_invalid { INVALID_ABORT, INVALID_REPORT };
enum on_exhausted { EXHAUSTED_FALLBACK, EXHAUSTED_NULL };
enum zone_irqsave { IRQSAVE_DEFER, IRQSAVE_SIGMASK };
enum purge_advice { ADVICE_DONTNEED, ADVICE_FREE };
enum numa_conf { NUMA_AUTO = 0, NUMA_OFF = 1 };   /* 2..16: numa:fake=N */
/* purge_delay_ms's default, chosen by measurement (README, Memory). */
#define PURGE_DELAY_MS_DEFAULT 20
/* cache_decay_ms 0: the caches decay every this many purge delays (80 ms
 * by default), chosen by measurement too (purge_init;
 * docs/results/issue9/session18.md). */
#define CACHE_DECAY_DELAYS 4

/* waste_max's default, measured on the real programs (README "Which
 * requests it serves"). */
#define WASTE_MAX_DEFAULT 25

struct mp_options {
	uint32_t preset;          /* index into the preset names */
	uint32_t cache;           /* enum cache_kind */
	uint64_t region_size;     /* bytes; 0 = physical memory, capped at 64 GiB */
	uint64_t threshold;       /* requests of at least this many bytes use the zone */
	uint32_t waste_max;       /* percent: a request over a page wasting more of
				     its pages than this goes to a run or glibc (100: never) */
	uint32_t runs;            /* 1: sizes the waste policy turns away share runs */
	uint32_t magazines;       /* 0 = auto: next power of two >= CPUs, 2..64 */
	uint32_t mag_map;         /* enum mag_map */
	uint32_t mag_limit;       /* pages a magazine holds before it drains */
	uint32_t refill_max;      /* pages per refill */
	uint32_t refill_min;      /* pages before a refill may stop on contention */
	uint32_t drain_max;       /* pages per drain */
	uint32_t drain_min;       /* pages before a drain may stop on contention */
	uint32_t cache_order;     /* highest order the caches hold (0..4) */
	uint32_t cache_exact;     /* cache non-power-of-two sizes as such */
	uint32_t cache_borrow;    /* bonwick: an empty class takes a larger cached
				     block within waste_max */
	uint32_t pcp_high;        /* pcp-*: blocks a per-CPU list holds before draining */
	uint32_t pcp_batch;       /* pcp-*: blocks per refill and per drain */
	uint32_t depot_shards;    /* bonwick: 0 = one per BW_SHARD_CPUS CPUs */
	uint32_t depot_pages;     /* bonwick: pages the depot holds per size class;
				     0 = DEPOT_PAGES_PER_CPU per CPU */
	uint32_t signal;          /* enum sig_policy */
	uint32_t stats;           /* enum stats_mode */
	uint32_t live;            /* enum live_mode: publish live statistics */
	uint32_t strict;          /* abort on a bad MAGPAGE_CONF */
	uint32_t verbose;         /* print the effective configuration at start */
	uint32_t on_invalid;      /* enum on_invalid */
	uint32_t on_exhausted;    /* enum on_exhausted */
	uint32_t zone_irqsave;    /* enum zone_irqsave */
	uint32_t purge_delay_ms;  /* free memory unused this long is purged; 0 = never */
	uint32_t cache_decay_ms;  /* the caches' decay interval; 0 = CACHE_DECAY_DELAYS
				     x purge_delay_ms */
	uint32_t purge_advice;    /* enum purge_advice */
	uint32_t purge_thread;    /* 1: a background thread drives the purge */
	uint32_t numa;            /* NUMA_AUTO, NUMA_OFF, or N >= 2: fake=N */
	char stats_file[256];     /* "" = stderr; %p becomes the pid */
};
extern struct mp_options opt;
void options_defaults(struct mp_options *o);
/* Parses conf into o; reports each bad key or value on errfd in one line.
 * Returns the number of errors. */
int options_parse(struct mp_options *o, const char *conf, int errfd);
void options_print(const struct mp_options *o, int fd);
const char *options_enum_name(const char *key, uint32_t value);
/* Writes the options table as a Markdown table (for the README). */
void options_print_doc(int fd);
struct fmt_buf;
void options_print_json(struct fmt_buf *b, const struct mp_options *o);

/* MAGPAGE_CONF stats is on (set by malloc/startup.c): the caches count
 * their fast-path events too. */
extern bool mp_stats_on;

/* ------------------------------------------------------------------------
 * zone/numa.c — nodes: topology, memory policy, zonelists, node counters
 * ---------------------------------------------------------------------- */
#define NUMA_MAX_NODES 16      /* zones; a machine with more runs as one */
#define NUMA_MAX_CPUS  1024    /* CPUs beyond count as node 0's */

/* The machine (or numa:fake's made-up one): what the zonelists come from. */
struct numa_topo {
	unsigned nr;                                   /* nodes, 1..NUMA_MAX_NODES */
	int id[NUMA_MAX_NODES];                        /* the kernel's number of each */
	uint8_t dist[NUMA_MAX_NODES][NUMA_MAX_NODES];  /* node distances (10 = local) */
	uint8_t cpu_node[NUMA_MAX_CPUS];               /* CPU -> node index */
};
/* The zonelists: per local node, the nodes an allocation tries, in order;
 * under an interleave policy one rotating list instead. */
struct numa_lists {
	uint8_t zl[NUMA_MAX_NODES][NUMA_MAX_NODES];    /* per local node */
	uint8_t len[NUMA_MAX_NODES];                   /* entries of each, >= 1 */
	uint8_t il[2 * NUMA_MAX_NODES];                /* interleave set, twice over,
							  so il + k is it rotated by k */
	uint8_t il_len;                                /* 0: no interleave */
};
/* Builds the zonelists of topology t under a memory policy: mode is the
 * kernel's MPOL_* (flags masked off), mask its node set over node indices
 * (bit i = t->id[i]).  default/local: every node, nearest first (ties: the
 * lower index); bind: only the set, nearest first; preferred: the
 * preferred node, then the rest nearest to it; preferred_many: the set
 * nearest first, then the rest; interleave (also weighted): the set in
 * turn (il), nothing outside it.  An empty set, or one naming no node of
 * t, is the default. */
void numa_build_lists(const struct numa_topo *t, int mode, uint64_t mask, struct numa_lists *out);
/* Parses a sysfs list ("0-3,8,10-11") into bits of mask (bits >= nbits
 * ignored); false if malformed. */
bool numa_parse_list(const char *s, uint64_t *mask, unsigned nbits);

/* From MAGPAGE_CONF numa (opt.numa) and the machine; before zone_init. */
void numa_init(void);
/* Nodes zone_init should lay the region out for. */
unsigned numa_nodes(void);
/* Back to one zone, saying why in one line under verbose:1; returns 1. */
unsigned numa_collapse(const char *why);
/* numa:auto with several nodes: mbind each node's part of the region to
 * it (numa:fake binds nothing); 0, or -1 if the kernel refused (then no
 * part stays bound). */
int numa_bind_parts(uintptr_t base, uint64_t node_pages, uint64_t pages, unsigned nodes);
/* The kernel's number of node index i (numa:fake: i). */
int numa_node_id(unsigned i);

/* The calling thread's allocation route: the zones to try, in order. */
struct numa_route {
	const uint8_t *list;    /* node indices, list[0] the intended one */
	unsigned len;           /* >= 1 */
	unsigned local;         /* the node of the thread's CPU */
};
void numa_route_multi(struct numa_route *r);
/* Several zones: frees check the node (pagealloc), see pa_freehop. */
extern bool numa_multi;
static inline void numa_route(struct numa_route *r)
{
	static const uint8_t node0[1];
	if (likely(!numa_multi)) {
		r->list = node0;
		r->len = 1;
		r->local = 0;
		return;
	}
	numa_route_multi(r);
}
/* The node of the calling thread's CPU (0 with one node). */
unsigned numa_local_node(void);

/* Per node, the meanings of /sys/devices/system/node/nodeN/numastat, in
 * zone allocations (blocks: a cache refill of n blocks counts n), as one
 * list (X-macro) that generates the struct and both reports (stats_numa.c):
 *   numa_hit      allocated here, the node intended
 *   numa_miss     allocated here, another node intended
 *   numa_foreign  intended here, allocated on another node
 *   local_node    allocated here for a thread running here
 *   other_node    allocated here for a thread on another node
 *   remote_frees  freed on a CPU of another node: straight back to this
 *                 zone, past every cache (ours, not the kernel's)
 * The first, second, fourth and fifth are written under the node's zone
 * lock; numa_foreign and remote_frees by anyone, atomically. */
#define NUMA_STAT_COUNTERS(X) \
	X(numa_hit) X(numa_miss) X(numa_foreign) X(local_node) X(other_node)
struct numa_stats {
#define X(field) uint64_t field;
	NUMA_STAT_COUNTERS(X)
#undef X
	uint64_t remote_frees;
} cacheline_aligned;
extern struct numa_stats numa_stats[NUMA_MAX_NODES];

/* ------------------------------------------------------------------------
 * zone/zone.c — page descriptors, buddy free areas, a zone per node
 *               (zone_impl.h: what the zone files share)
 * zone/region.c — zone_region_bytes, zone_init, zone_give_back, zone_limited
 * zone/zone_fork.c — zone_fork_*, zone_carve_in_fork, zone_free_range_deferred
 * zone/zone_purge.c — zone_purge, zone_purge_aged, zone_dirty*
 * zone/validate.c — zone_validate
 * ---------------------------------------------------------------------- */
#include "zone/zone.h"

/* ------------------------------------------------------------------------
 * cache/magazine.c, cache/cache.c — page caches behind one interface
 * ---------------------------------------------------------------------- */
#include "cache/cache.h"

/* ------------------------------------------------------------------------
 * pagealloc/pagealloc.c — alloc_pages / free_pages
 * ---------------------------------------------------------------------- */
void pa_init(void);
/* Allocates npages (1..1024) aligned to 2^align_order pages; returns the
 * head descriptor with PG_ALLOC set and npages recorded, or NULL. */
struct page_desc *pa_alloc(size_t npages, unsigned align_order);
/* The same, for malloc's blocks: with cache_borrow, a cached block of up
 * to most pages (pa_fit_most) when the class of npages has none;
 * pd->npages says how many. */
struct page_desc *pa_alloc_fit(size_t npages, size_t most, unsigned align_order);
/* Frees a live allocation whose PG_ALLOC flag the caller has just cleared. */
void pa_free(struct page_desc *pd);
/* Gives back pages [keep, pd->npages) of a live allocation, to the zone. */
void pa_shrink(struct page_desc *pd, size_t keep);
void pa_free_bulk(struct page_desc **pds, size_t n);
void pa_free_chain(struct page_desc *chain);   /* linked through next */
size_t pa_drain_all(void);
/* Does a page cache keep blocks of npages pages (cache_order, cache_exact)? */
bool pa_cached_size(size_t npages);
/* Drains before carving (pagealloc.c, pa_zone_alloc): how many, the pages
 * they gave back, and how many let the request be served without a carve. */
struct pa_carve_stats {
	uint64_t drains, pages, spared;
};
extern struct pa_carve_stats pa_carve_stats;
/* npages (1..8) -> how the one-hop path serves it: bonwick's size class
 * (npages - 1), PA_ONEHOP_TABLE (another design, through its table),
 * PA_ONEHOP_PCPR (pcp-rseq: the same, after one try of its inline pop or
 * push), or PA_NO_ONEHOP (a size no cache keeps, or statistics on); index
 * 0 unused. */
#define PA_ONEHOP_PCPR 0xfc
#define PA_ONEHOP_TABLE 0xfe
#define PA_NO_ONEHOP 0xff
/* Does the design hop (pa_alloc_table_hop, pa_free_table_hop) take it? */
static inline bool pa_hop_table(uint8_t hop)
{
	return hop == PA_ONEHOP_TABLE || hop == PA_ONEHOP_PCPR;
}
extern uint8_t pa_onehop[MAX_BLOCK_PAGES + 1];   /* every live npages: free's
						     lookup needs no bound */
/* What free's hops use: pa_onehop's copy with one node.  With several
 * (numa_multi) every size a hop serves says PA_ONEHOP_NUMA instead, so
 * that the one-hop free misses and the table hop checks the block's node
 * first: a block of another node goes on to pa_free, which sends it
 * straight back to its zone.  The same one load as before on the fast
 * path: one node costs nothing there. */
#define PA_ONEHOP_NUMA 0xfd
extern uint8_t pa_freehop[MAX_BLOCK_PAGES + 1];
/* cache_borrow: the most pages a block handed out for n pages may have, n
 * where none other may be (pa_init): a block of m pages for n leaves
 * (m - n) / m of its pages unused, at most waste_max percent.  Pages, not
 * bytes: the bytes a request leaves unused in its own last page are held
 * whatever block it gets. */
extern uint8_t pa_fit_most[CACHE_CLASSES + 1];
/* The one-hop free's bound: blocks of 1..pa_freehop_span pages are bonwick's
 * classes 0..span-1 (pa_freehop[n] == n - 1), so that free needs no table
 * load on its chain of dependent loads; 0 whenever pa_freehop says
 * otherwise for 1 page (another design, statistics on, several nodes).
 * Sizes above it look at pa_freehop (a class past a gap) off the hot path. */
extern uint64_t pa_freehop_span;
/* The live bytes the one-hop free pushes (pa_free_live) are 1 to this:
 * every block's (LIVE_BLOCK_MAX) when pa_freehop_span is not 0, else none
 * (every set byte takes the slow way: several nodes, another design).
 * Defined beside pa_freehop_span, in its cache line. */
extern uint32_t pa_live_max;

/*
 * The one-hop page path (malloc and free call these first): size class from
 * a table, one read of the CPU id, one pop or push, one live byte written
 * (malloc: the block's array; free reads it back: zone.h).
 * Anything else (another design, alignment, an empty or full array, a
 * remote drain) returns NULL / false and the caller takes pa_alloc /
 * pa_free.  Handlers take it too: the pop and push restart.
 * pa_alloc_onehop takes the size class as its array's offset in a CPU's
 * cache (BW_KOFF of pa_onehop's value for the page count); anything above
 * the last class's fails at once.
 */
/* A live byte's unit: every class's offset is a multiple of it, and the
 * last one's / 256 + 1 fits a byte. */
#define LIVE_KOFF_UNIT 256
#define LIVE_BLOCK_MAX (BW_KOFF(CACHE_CLASSES - 1) / LIVE_KOFF_UNIT + 1)
/* The live bytes of run objects (malloc/runs.c) are LIVE_RUN + their class,
 * above every block's, for the classes below LIVE_RUN_CLASSES (the others'
 * objects carry PG_RUN_LIVE). */
#define LIVE_RUN (LIVE_BLOCK_MAX + 1)
#define LIVE_RUN_CLASSES ((int)(256 - LIVE_RUN))
_Static_assert(BW_KOFF(1) % LIVE_KOFF_UNIT == 0 && LIVE_BLOCK_MAX < 255,
	       "a class in a live byte");

/* A block the one-hop path popped from the array at koff: its live byte,
 * and no descriptor write (zone.h), and its tracepoint.  This and the two
 * below are always inlined: the tracepoint's asm reads as many statements
 * to GCC's inliner, and some LTO builds made mp_malloc call
 * pa_alloc_onehop, which called this (a frame, two calls, the block back
 * through the stack) while others did not. */
static ALWAYS_INLINE void pa_onehop_taken(uint64_t pfn, uint64_t koff, void **out, int cpu)
{
	void *p = (void *)(zg.base + (pfn << PAGE_SHIFT));
	*addr_to_live(p) = (uint8_t)(koff / LIVE_KOFF_UNIT + 1);
	*out = p;
	/* order: the descriptor's (pa_alloc and the zone keep it), read by
	 * the tracer, not here; forming its address costs four instructions,
	 * so only while a tracer is attached */
	if (MP_PROBE_ENABLED(mm_page_alloc))
		MP_PROBE4(mm_page_alloc, p, addr_to_desc(p)->order, PROBE_FROM_CACHE, cpu);
}

static ALWAYS_INLINE bool pa_alloc_onehop(uint64_t koff, void **out)
{
	uint64_t pfn;
	if (unlikely(koff > BW_KOFF(CACHE_CLASSES - 1)))
		return false;
	/* Two probe sites, one per front end, so that the per-thread one's
	 * constant CPU (-1) costs no instruction where the two paths join.
	 * Which front end runs is never tested: the rseq one's CPU-id bound
	 * fails when bw_nr_cpus is 0, and the per-thread one finds no cache
	 * (bw_mine NULL) when the rseq one runs. */
#if MP_HAVE_RSEQ
	int cpu;
	if (likely(bw_pop_once(koff, &pfn, &cpu))) {
		pa_onehop_taken(pfn, koff, out, cpu);
		return true;
	}
#endif
	if (unlikely(!bw_pop_thread(koff, &pfn, false)))
		return false;
	pa_onehop_taken(pfn, koff, out, -1);
	return true;
}

/* A block whose live byte (at lv) is v1 + 1, v1 below pa_live_max (the
 * caller's compare), back to the array it came from; the byte cleared
 * first, so that a second free finds it clear.  False: that array full
 * (or the push restarted), the byte cleared and the descriptor untouched
 * (still PG_CACHED). */
static ALWAYS_INLINE bool pa_free_live(uint8_t *lv, unsigned v1, uint64_t pfn)
{
	uint64_t koff = (uint64_t)v1 * LIVE_KOFF_UNIT;
	*lv = 0;
#if MP_HAVE_RSEQ
	if (likely(bw_push_koff(koff, (uint32_t)pfn)))
		return true;
#endif
	return bw_push_thread(koff, (uint32_t)pfn, false);
}

/* malloc/runs.c: is p the start of an object of class cls (whose live
 * byte is in p's page)?  From the run's alignment alone, as free's. */
bool run_live_start(const void *p, unsigned cls);

/* A slow path takes on what p, inside the region, may point at (realloc,
 * malloc_usable_size, free_bulk, a free that reached the checks of
 * page_free), pd being the descriptor of p's page: if p heads a block the
 * one-hop malloc handed out, its live byte becomes PG_ALLOC, as if
 * pa_alloc had handed it out (nothing for a p not page aligned); if p is
 * the start of a live run object (a byte of LIVE_RUN and up), the byte
 * becomes PG_RUN_LIVE, as if run_alloc's refill had handed the object out
 * (nothing for another pointer into its page: a bad pointer must not
 * change a valid object's mark, which its owner's free may be clearing).
 * Either way the flag is written before the byte goes: whoever then reads
 * the byte clear (another thread's malloc_usable_size, a handler on this
 * one) finds the flag. */
static inline void live_claim(void *p, struct page_desc *pd)
{
	uint8_t *lv = addr_to_live(p);
	unsigned v = __atomic_load_n(lv, __ATOMIC_ACQUIRE);
	if (likely(!v))
		return;
	if (v >= LIVE_RUN) {
		if (!run_live_start(p, v - LIVE_RUN))
			return;
		__atomic_store_n(&pd->flags, (uint8_t)(PG_RUN | PG_RUN_LIVE), __ATOMIC_RELAXED);
	} else if (!((uintptr_t)p & (PAGE_SIZE - 1)))
		__atomic_store_n(&pd->flags, (uint8_t)PG_ALLOC, __ATOMIC_RELAXED);
	else
		return;
	__atomic_store_n(lv, 0, __ATOMIC_RELEASE);
}

/* pd heads a live allocation whose PG_ALLOC the caller has checked (one
 * a slow path handed out: the one-hop path's are pa_free_live's). */
static ALWAYS_INLINE bool pa_free_onehop(struct page_desc *pd, uint64_t pfn)
{
	/* the class's page count: npages (1..MAX_BLOCK_PAGES) */
	uint64_t pages = pd->npages;
	if (unlikely(pages - 1 >= pa_freehop_span)) {
		/* a class past a gap (cache_exact:0 keeps powers of two only) */
		uint64_t k = pa_freehop[pages];
		if (k >= CACHE_CLASSES)
			return false;
		pages = k + 1;
	}
	pd->flags = PG_CACHED;
#if MP_HAVE_RSEQ
	if (likely(bw_push_once(pages, (uint32_t)pfn)))
		return true;
#endif
	return bw_push_thread(BW_KOFF(pages - 1), (uint32_t)pfn, false);
}

/*
 * The same hop for every other design, to its own alloc and free through
 * the cache table, so that comparisons measure the designs and not the
 * layers around them (malloc's and free's slow paths call these first,
 * which keeps malloc and free leaves).  In a handler only an irq_safe
 * design is asked.  False: the caller takes pa_alloc / pa_free.
 */
static inline bool pa_alloc_table_hop(size_t req_bytes, void **out)
{
	size_t idx = (req_bytes - 1) >> PAGE_SHIFT;
	if (idx >= CACHE_CLASSES || !pa_hop_table(pa_onehop[idx + 1]) ||
	    (mp_tls.word && !cache.irq_safe))
		return false;
	/* With cache_borrow (pa_fit_most: bonwick, whose sizes come here where
	 * glibc's rseq offset is not the built one), an empty class takes a
	 * larger cached block before the zone, as pa_alloc_fit does: the
	 * block keeps its size.  Process context: alloc_fit is not a
	 * handler's. */
	size_t n = idx + 1, most = pa_fit_most[n];
	struct page_desc *pd;
	if (most > n && !mp_tls.word) {
		pd = cache.alloc_fit(n, most);
		if (unlikely(!pd))
			return false;
	} else {
		pd = cache.alloc(n);
		if (unlikely(!pd))
			return false;
		pd->npages = (uint32_t)n;
	}
	pd->flags = PG_ALLOC;
	*out = desc_to_addr(pd);
	/* the design read a CPU id, but keeps it: bpftrace's cpu says it */
	MP_PROBE4(mm_page_alloc, *out, pd->order, PROBE_FROM_CACHE, -1);
	return true;
}

/* pd heads a live allocation whose PG_ALLOC the caller has cleared. */
static inline bool pa_free_table_hop(struct page_desc *pd)
{
	uint8_t hop = pa_freehop[pd->npages];
	if (!pa_hop_table(hop)) {
		/* several nodes: the design's own free, for a local block only */
		if (likely(hop != PA_ONEHOP_NUMA) ||
		    zone_node_of_pfn(desc_pfn(pd)) != numa_local_node())
			return false;
	}
	if (mp_tls.word && !cache.irq_safe)
		return false;
	return cache.free(pd);
}

/* ------------------------------------------------------------------------
 * pagealloc/reserve.c — blocks for handlers while a fork is prepared
 * ---------------------------------------------------------------------- */
struct reserve_stats {
	uint64_t filled;     /* blocks put in by process context */
	uint64_t served;     /* handler requests answered from it */
	uint64_t returned;   /* handler frees taken back into it */
	uint64_t carved;     /* 4 MiB blocks taken off the frontier when it ran dry */
	uint64_t empty;      /* handler requests it could not answer */
};
extern struct reserve_stats reserve_stats;
/* Tops every class up from the zone; process context, outside a fork. */
void reserve_fill(void);
/* A block of *npages (1..8) pages or of a larger class (then *npages says
 * so), or NULL; lock-free, for handlers. */
struct page_desc *reserve_take(size_t *npages);
/* Takes back a block whose pd->npages is 1..8; false if full. */
bool reserve_put(struct page_desc *pd);
/* Pages the reserve holds now (racy: statistics). */
uint64_t reserve_pages(void);

/* ------------------------------------------------------------------------
 * malloc/malloc.c — C allocation semantics: routing, malloc and free
 * malloc/family.c — calloc, realloc, the aligned calls, usable size,
 *                   free_bulk (malloc_impl.h: what the two share)
 * ---------------------------------------------------------------------- */
void *mp_malloc(size_t size);
void mp_free(void *p);
void mp_free_sized(void *p, size_t size);
/* family.c */
void *mp_calloc(size_t n, size_t m);
void *mp_realloc(void *p, size_t size);
void *mp_reallocarray(void *p, size_t n, size_t m);
int mp_posix_memalign(void **out, size_t align, size_t size);
void *mp_aligned_alloc(size_t align, size_t size);
void *mp_memalign(size_t align, size_t size);
void *mp_valloc(size_t size);
void *mp_pvalloc(size_t size);
size_t mp_usable_size(void *p);
void mp_free_bulk(void **ptrs, size_t n);
/* introspect.c */
int mp_trim(size_t pad);
struct mallinfo2 mp_mallinfo2(void);
void mp_malloc_stats(void);
int mp_malloc_info(int options, FILE *fp);
/* malloc.c */
/* Start-up (startup.c), after zone_init, cache_init and pa_init: opens the
 * size routes (zone_ok: there is a region) and sets the glibc bound. */
void malloc_init(bool zone_ok);
/* In a fork child: the event counters restart. */
void malloc_fork_child(void);
/* Memory a path reads: mp_onehop_reads' answer. */
struct mp_span {
	const void *p;
	size_t size;
	/* 0: every call reads the span, wherever in it; else a table by size
	 * class, whose class k the calls for class k alone read: bytes
	 * [k x per_class, (k + 1) x per_class) of it (route[]) */
	size_t per_class;
};
/* The globals malloc and free read on every one-hop call, into out (at
 * most max); how many.  bw_init keeps its arrays' header lines off their
 * page offsets (4K aliasing, see there). */
unsigned mp_onehop_reads(struct mp_span *out, unsigned max);
/* Whether a line at page offset po (a multiple of 64) is one that the
 * calls for class k (pages - 1) read in the n spans in hot, or a page's
 * first or last line: the L1 sets a program's page-aligned blocks load
 * most (their headers and their ends), which would evict a cache's header
 * line there again and again.  For placing header lines (bonwick.c,
 * runs.c). */
bool mp_span_hot(const struct mp_span *hot, unsigned n, size_t po, unsigned k);

/* malloc/runs.c: the page-plus-header sizes the waste policy turns away,
 * as objects of runs (N objects of k pages + 4096/N bytes in kN + 1 pages). */
#define RUN_CLASSES 128        /* 1 or 2 pages + 64..4096 bytes, in steps of 64 */
/* The classes of the default waste_max's sizes, 4097..6143 and 8193..9215
 * bytes (32 and 16 classes from 0 and 64), have live bytes. */
_Static_assert(LIVE_RUN_CLASSES >= RUN_CLASSES / 2 + 16, "a run class in a live byte");
struct runs_stats {
	uint64_t allocs, frees;      /* objects handed out and taken back */
	uint64_t made, released;     /* runs taken from and given back to the zone */
	uint64_t live, live_bytes;   /* objects live now, and their object bytes */
	uint64_t runs, pages;        /* runs held now, and their pages */
	uint64_t idle_pages;         /* pages of the runs with no live object: the
					spare runs kept, and runs whose taken
					objects all sit in CPU caches */
	uint64_t deferred;           /* handler frees deferred (a bin was locked) */
	uint64_t cached;             /* objects in the CPUs' caches now */
	uint64_t cache_drained;      /* objects the drains and the decay took from them */
	uint64_t depot_moves;        /* spills into and refills from the depots */
	uint64_t cache_cpus;         /* CPUs with caches of objects: 0 = none (no rseq) */
};
void runs_stats(struct runs_stats *out);
/* introspect.c: free pages cached beyond the CPUs' arrays (which
 * cache_sum and cache_views count): the depots, the fork reserve, and runs
 * with no live object (rs), cached memory as a page cache's block is.
 * magpage_get_stats and the live view both count them. */
uint64_t mp_cached_beyond_arrays(const struct runs_stats *rs);
/* The statistics report's line per class that served anything. */
void runs_text(struct fmt_buf *b);
/* Every class's spare run (the one wholly free run each keeps) back to the
 * zone: pages given back. */
size_t runs_drain(void);
/* The decay: the spare runs of classes idle since the last call. */
size_t runs_decay(void);
/* Every bin's lists against the descriptors: 0, or -1 with what is wrong
 * in why (the unit tests, beside zone_validate). */
int runs_validate(char *why, size_t cap);
void runs_fork_prepare(void);
void runs_fork_parent(void);
void runs_fork_child(void);
void runs_fork_recover(void);

/* Counters kept by the malloc layer (sharded by CPU, summed on read).
 * The waste policy's: fb_waste requests of fb_waste_bytes bytes sent to
 * glibc by waste_max; waste_kept zone allocations of more than a page that
 * are not whole pages, whose rounding wastes waste_kept_bytes bytes. */
#define MALLOC_COUNTERS(X) \
	X(malloc_calls)   X(calloc_calls)   X(realloc_calls)  X(memalign_calls) \
	X(free_calls)     X(zone_allocs)    X(zone_frees)     X(bytes_requested) \
	X(bytes_held)     X(fb_small)       X(fb_large)       X(fb_foreign) \
	X(fb_exhausted)   X(fb_align)       X(invalid_frees)  X(sig_malloc) \
	X(sig_free)       X(sig_small_zone) X(sig_deferred)   X(sig_deferred_drained) \
	X(calloc_memset_skipped) X(realloc_in_place) \
	X(fb_waste)       X(fb_waste_bytes) X(waste_kept)     X(waste_kept_bytes) \
	X(run_allocs)     X(run_frees)
struct malloc_stats {
#define X(n) uint64_t n;
	MALLOC_COUNTERS(X)
#undef X
	int64_t live_requested;   /* bytes requested by live zone allocations */
	int64_t live_held;        /* bytes held by live zone allocations */
};
void malloc_stats_read(struct malloc_stats *out);

/* The purge trap (purge.c arms it, malloc_slow fires it): armed, both
 * fast-path bounds are 0, so that the next malloc of any size misses the
 * fast path and tells the purge driver that the process is not idle. */
void malloc_trap_arm(void);

/* ------------------------------------------------------------------------
 * malloc/purge.c — the decay purge's driver: when free memory goes back
 * ---------------------------------------------------------------------- */
struct purge_stats {
	uint64_t ticks;          /* zone calls that ran the driver (rate limited) */
	uint64_t trips;          /* mallocs that fired the armed trap */
	uint64_t idle_purges;    /* idle found: caches drained, all dirty memory purged */
	uint64_t wakeups;        /* the thread's wake-ups */
	uint64_t thread_starts;  /* threads started (0 or 1 per process) */
};
extern struct purge_stats purge_stats;
/* After zone_init and cache_init: enables the driver per MAGPAGE_CONF. */
void purge_init(void);
/* malloc_trap_fire, after restoring the bounds: a malloc happened. */
void purge_trip(void);
/* zone_tick_pending was set: run the tick (process context, no lock held;
 * in a handler it stays pending). */
void purge_tick(void);
/* A free missed the fast path (process context, no lock held). */
void purge_free_slow(void);
/* The caches' decay interval in ms (cache_decay_ms or its default); 0
 * with the purge off. */
uint32_t purge_cache_decay_ms(void);
/* In the child of fork or _Fork: no thread, nothing in flight. */
void purge_fork_child(void);

/* ------------------------------------------------------------------------
 * malloc/startup.c — start-up, the report at exit, fork
 * ---------------------------------------------------------------------- */
void mp_init_slow(void);
extern volatile int mp_initialized;
static inline void mp_ensure_init(void)
{
	if (unlikely(!mp_initialized))
		mp_init_slow();
}
void mp_fork_prepare(void);
void mp_fork_parent(void);
void mp_fork_child(void);
void mp_fork_recover(void);

/* ------------------------------------------------------------------------
 * stats/live.c — live statistics in a shared memfd (layout: stats/live.h)
 * ---------------------------------------------------------------------- */
/* Start-up, with MAGPAGE_CONF live on: creates and fills the segment. */
void live_init(void);
/* Starts the publishing thread; from the library's constructor only (a
 * malloc made inside libc may hold the locks pthread_create takes). */
void live_start(void);
/* In the child of fork (last of the atfork handlers): its own segment, and
 * its own thread unless fork was called from a signal handler.  In the
 * child of _Fork: none. */
void live_fork_child(bool in_handler);
void live_fork_recover(void);

/* ------------------------------------------------------------------------
 * stats/stats.c — the report (text or JSON), written without malloc
 * ---------------------------------------------------------------------- */
void stats_init(void);      /* remembers the program name */
void stats_print(int fd, bool json);
void stats_report_at_exit(void);
/* tmpl with each %p replaced by pid, in dst; -1 if it needs cap bytes or
 * more (nothing is cut), else the length. */
int stats_path_expand(char *dst, size_t cap, const char *tmpl, int pid);
/* Opens stats_file (tmpl, %p expanded) for the report, refusing what a
 * planted file could turn against the process (see stats.c); on failure
 * says why in one line on fd 2 and returns -1. */
int stats_file_open(const char *tmpl);

/* ------------------------------------------------------------------------
 * stats/stats_numa.c — the report's per-node part
 * ---------------------------------------------------------------------- */
void stats_numa_text(struct fmt_buf *b);
void stats_numa_json(struct fmt_buf *b);   /* a "numa":{...}, member */


#endif /* MAGPAGE_INTERNAL_H */
