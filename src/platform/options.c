/*
 * options.c — MAGPAGE_CONF="key:value,key:value".
 *
 * One table drives the options: name, type, bounds, accepted values and a
 * one-line doc.  Parsing, the error messages, the printed effective
 * configuration and the README's table (magpage-conf --doc) all come from
 * it.  Parsing never allocates: it runs inside the first malloc.
 *
 * A preset, wherever it appears in the string, is applied first; every other
 * key then overrides it, left to right.  A bad key or value is reported in
 * one line naming it, what is accepted and the value the key keeps, and the
 * item is skipped as if it were not there: the key keeps what the items
 * before it gave it (the last good value wins), else the preset's value or
 * the default.  Text echoed from the string is escaped (fmt_escape).
 */
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"

struct mp_options opt;

enum opt_type { T_PRESET, T_ENUM, T_UINT, T_SIZE, T_STR, T_NUMA };

struct opt_def {
	const char *name;
	enum opt_type type;
	size_t off;                    /* offset in struct mp_options */
	uint16_t width;                /* 4 or 8 bytes (numbers, enums) */
	bool pow2;                     /* T_UINT: must be a power of two */
	uint64_t min, max;             /* T_UINT/T_SIZE bounds (0 also allowed if zero_ok) */
	bool zero_ok;                  /* 0 means "automatic" */
	const char *const *names;      /* T_ENUM/T_PRESET: accepted values */
	const char *doc;
};

static const char *const presets[] = { "default", "rfc2013", "vanilla39", "linux6", NULL };
static const char *const caches[] = { "magazine", "none", "pcp-rseq", "pcp-lock", "bonwick", NULL };
static const char *const maps[] = { "cpu", "pair", NULL };
static const char *const sigpol[] = { "bypass", "trylock", NULL };
static const char *const statsm[] = { "0", "1", "json", NULL };
static const char *const livem[] = { "0", "1", "counted", NULL };
static const char *const bools[] = { "0", "1", NULL };
static const char *const invalid[] = { "abort", "report", NULL };
static const char *const exhausted[] = { "fallback", "null", NULL };
static const char *const irqsave[] = { "defer", "sigmask", NULL };
static const char *const advice[] = { "dontneed", "free", NULL };

#define F(field) offsetof(struct mp_options, field), sizeof(((struct mp_options *)0)->field)

static const struct opt_def defs[] = {
	{ "preset", T_PRESET, F(preset), false, 0, 0, false, presets,
	  "a whole configuration: default = bonwick per-CPU magazines on rseq with a depot, orders 0..3 and 3/5/6/7-page classes; rfc2013 = the RFC exactly (2 magazines, map pair, limit 1024, refill 16..384, drain 16..64, order 0 only); vanilla39 = Linux 3.9 per-CPU lists (pcp-rseq, batch 31, high 186, order 0); linux6 = Linux 6.x per-CPU lists (pcp-lock, batch 63, high 1024, orders 0..3, signal trylock)" },
	{ "cache", T_ENUM, F(cache), false, 0, 0, false, caches,
	  "page cache design in front of the zone: bonwick (default: per-CPU magazines on restartable sequences with a depot), magazine (the RFC), pcp-rseq (Linux 3.9 per-CPU lists on restartable sequences), pcp-lock (Linux 6.x per-CPU lists with a trylock), none (every request takes the zone lock)" },
	{ "region_size", T_SIZE, F(region_size), false, 4u << 20, 1ull << 40, true, NULL,
	  "bytes of address space reserved for the zone (suffix k, m, g); 0 = physical memory, at most 64g, and under a finite ulimit -v or -d at most 1/8 of the limit (none below 4m), also for a limit the program sets itself later (setrlimit, prlimit: the rest is given back then); a size given here is used as given" },
	{ "threshold", T_SIZE, F(threshold), false, 1, 4u << 20, false, NULL,
	  "requests of at least this many bytes (up to 4 MiB) are served from the zone as whole pages" },
	{ "waste_max", T_UINT, F(waste_max), false, 0, 100, false, NULL,
	  "a request of more than a page whose rounding up to whole pages would waste more than this percent of the pages it holds gets an object of a run instead (runs), or glibc's where no run class fits (4101 bytes: 49.9% of 2 pages; 8224: 33.1% of 3); 100 = never, every size from threshold to 4 MiB gets pages; signal handlers always get pages" },
	{ "runs", T_ENUM, F(runs), false, 0, 0, false, bools,
	  "1 = the sizes of one or two pages plus a header that waste_max turns away (with 25: 4097..6143 and 8193..9215 bytes) get objects of runs: N objects of k pages plus the header rounded up to 64 bytes in kN + 1 pages, each starting in a page of its own (4101 bytes: 4160, 64 in 65 pages); 0 = they go to glibc" },
	{ "magazines", T_UINT, F(magazines), true, 1, MAX_CACHES, true, NULL,
	  "number of magazines, a power of two; 0 = the CPU count rounded up to a power of two (at least 2)" },
	{ "mag_map", T_ENUM, F(mag_map), false, 0, 0, false, maps,
	  "CPU to preferred magazine: cpu = cpu & (n-1); pair = (cpu >> 1) & (n-1), the RFC's SMT pairing" },
	{ "mag_limit", T_UINT, F(mag_limit), false, 1, 1u << 20, false, NULL,
	  "pages a magazine holds before a free drains a batch to the zone" },
	{ "refill_max", T_UINT, F(refill_max), false, 1, 1u << 16, false, NULL,
	  "pages moved from the zone per refill" },
	{ "refill_min", T_UINT, F(refill_min), false, 1, 1u << 16, false, NULL,
	  "pages a refill takes before it may stop because the zone lock is contended" },
	{ "drain_max", T_UINT, F(drain_max), false, 1, 1u << 16, false, NULL,
	  "pages moved to the zone per drain" },
	{ "drain_min", T_UINT, F(drain_min), false, 1, 1u << 16, false, NULL,
	  "pages a drain moves before it may stop because the magazine lock is contended" },
	{ "cache_order", T_UINT, F(cache_order), false, 0, CACHE_ORDERS - 1, false, NULL,
	  "highest order the caches hold (0..4: up to 16 pages; the lock designs stop at 3); higher orders go to the zone" },
	{ "cache_exact", T_ENUM, F(cache_exact), false, 0, 0, false, bools,
	  "1 = the caches also keep 3-, 5-, 6-, 7-, 9- to 15-page blocks as such; 0 = powers of two only, other sizes go to the zone" },
	{ "cache_borrow", T_ENUM, F(cache_borrow), false, 0, 0, false, bools,
	  "bonwick: 1 = a request whose size class has no block on this CPU or in the depot takes a cached block of a larger class that leaves at most waste_max percent of its pages unused (with 25: 3 pages take 4, 9 take up to 12; calloc never) before it goes to the zone; the block keeps its size (malloc_usable_size) and goes back to its own class when freed; a realloc that shrinks a cached block to a size that could borrow it keeps it whole (else it moves); 0 = exact classes only" },
	{ "pcp_high", T_UINT, F(pcp_high), false, 1, 1u << 16, false, NULL,
	  "pcp-rseq, pcp-lock: blocks a per-CPU list holds before a free drains a batch" },
	{ "pcp_batch", T_UINT, F(pcp_batch), false, 1, 1u << 16, false, NULL,
	  "pcp-rseq, pcp-lock: blocks moved per refill and per drain" },
	{ "depot_pages", T_UINT, F(depot_pages), false, 64, 1u << 22, true, NULL,
	  "bonwick: pages the depot behind the per-CPU magazines keeps per size class before batches go back to the zone (a run of spills no allocation has claimed stops sooner: at the largest array, or twice the longest claimed run); 0 = 16384 per CPU (64 MiB of 1-page blocks per CPU), at most 4194304" },
	{ "depot_shards", T_UINT, F(depot_shards), false, 1, 16, true, NULL,
	  "bonwick: shards of the depot, each with its own lock per size class and its share of depot_pages; a CPU spills into its own shard and refills from it first; 0 = one per 4 CPUs" },
	{ "signal", T_ENUM, F(signal), false, 0, 0, false, sigpol,
	  "handler-context calls: bypass = always the zone (the RFC); trylock = one trylock of the preferred cache, else the zone (Linux 6.2)" },
	{ "stats", T_ENUM, F(stats), false, 0, 0, false, statsm,
	  "report at exit: 1 = text, json = one JSON object per process" },
	{ "stats_file", T_STR, F(stats_file), false, 0, 0, false, NULL,
	  "append the report to this file instead of stderr; %p becomes the pid; a new file is created 0600, a symbolic link or another user's file is refused" },
	{ "live", T_ENUM, F(live), false, 0, 0, false, livem,
	  "1 = publish live statistics for magpage-top in a memfd only this user (and root) can read, refreshed every 250 ms by a thread, gone when the process ends; counted = the same, and the malloc layer counts every call (cache hits, rounding waste, handler allocations), at the fast-path cost of stats:1, without its report at exit" },
	{ "strict", T_ENUM, F(strict), false, 0, 0, false, bools,
	  "1 = abort the process on a bad MAGPAGE_CONF instead of using the defaults" },
	{ "verbose", T_ENUM, F(verbose), false, 0, 0, false, bools,
	  "1 = print the effective configuration at start-up" },
	{ "on_invalid", T_ENUM, F(on_invalid), false, 0, 0, false, invalid,
	  "invalid or double free: abort after the report, or report and ignore the call" },
	{ "on_exhausted", T_ENUM, F(on_exhausted), false, 0, 0, false, exhausted,
	  "zone out of pages: fallback = serve from glibc's allocator, null = fail with ENOMEM" },
	{ "zone_irqsave", T_ENUM, F(zone_irqsave), false, 0, 0, false, irqsave,
	  "how the zone lock keeps handlers out: defer = hold back signals that arrive (no system call); sigmask = block all signals while held" },
	{ "purge_delay_ms", T_UINT, F(purge_delay_ms), false, 1, 10000, true, NULL,
	  "free memory unused this long goes back to the OS (decay purge, oldest first), checked on allocator calls that miss the fast path, or by the thread; 0 = never (only malloc_trim)" },
	{ "cache_decay_ms", T_UINT, F(cache_decay_ms), false, 1, 60000, true, NULL,
	  "how often a busy process's page caches give the zone what they did not use in the interval (a depot size class's untouched blocks, the arrays of a CPU without traffic, the runs' idle caches), where it ages for purge_delay_ms; 0 = 4 x purge_delay_ms (80 ms by default); no more often than the purge runs (a sixteenth of the delay on allocator calls, the delay with purge_thread:1), and nothing with purge_delay_ms:0" },
	{ "purge_advice", T_ENUM, F(purge_advice), false, 0, 0, false, advice,
	  "how the decay purge gives pages back: dontneed = MADV_DONTNEED (RSS drops at once; a reused page faults in zeroed); free = MADV_FREE (cheaper, but RSS drops only when the kernel needs the memory)" },
	{ "purge_thread", T_ENUM, F(purge_thread), false, 0, 0, false, bools,
	  "1 = a background thread, started on first need, purges an idle process too; 0 = purging happens only on allocator calls" },
	{ "numa", T_NUMA, F(numa), false, 2, NUMA_MAX_NODES, false, NULL,
	  "zones per NUMA node (docs/numa.md): auto = one per node of the machine (sysfs), each part of the region mbind-ed to its node, allocation local first then by distance, the memory policy honoured; one node behaves as off; off = one zone; fake=N = N zones without binding, CPU c on node c*N/ncpus, to test on one node" },
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

void options_defaults(struct mp_options *o)
{
	memset(o, 0, sizeof(*o));
	o->preset = 0;
	o->cache = CACHE_BONWICK;
	o->threshold = PAGE_SIZE;
	o->waste_max = WASTE_MAX_DEFAULT;
	o->runs = 1;
	o->depot_pages = 0;
	o->depot_shards = 0;
	o->magazines = 0;
	o->mag_map = MAP_CPU;
	o->mag_limit = 1024;
	o->refill_max = 384;
	o->refill_min = 16;
	o->drain_max = 64;
	o->drain_min = 16;
	o->cache_order = 4;
	o->cache_exact = 1;
	o->cache_borrow = 1;
	o->pcp_high = 186;
	o->pcp_batch = 31;
	o->signal = SIG_BYPASS;
	o->stats = STATS_OFF;
	o->on_invalid = INVALID_ABORT;
	o->on_exhausted = EXHAUSTED_FALLBACK;
	o->purge_delay_ms = PURGE_DELAY_MS_DEFAULT;
}

static void apply_preset(struct mp_options *o, uint32_t preset)
{
	options_defaults(o);
	o->preset = preset;
	if (preset == 1) {       /* rfc2013: the numbers of the RFC's patches 18-19 */
		o->cache = CACHE_MAGAZINE;
		o->magazines = 2;
		o->mag_map = MAP_PAIR;
		o->mag_limit = 1024;
		o->refill_max = 384;
		o->refill_min = 16;
		o->drain_max = 64;
		o->drain_min = 16;
		o->cache_order = 0;
		o->cache_exact = 0;
		o->cache_borrow = 0;
		o->signal = SIG_BYPASS;
	} else if (preset == 2) {   /* vanilla39: zone_batchsize() for a zone >= 512 MiB */
		o->cache = CACHE_PCP_RSEQ;
		o->pcp_batch = 31;
		o->pcp_high = 6 * 31;
		o->cache_order = 0;
		o->cache_exact = 0;
		o->cache_borrow = 0;
	} else if (preset == 3) {   /* linux6: batch for a large zone; high ~ a magazine */
		o->cache = CACHE_PCP_LOCK;
		o->pcp_batch = 63;
		o->pcp_high = 1024;
		o->cache_order = 3;
		o->cache_exact = 0;
		o->cache_borrow = 0;
		o->signal = SIG_TRYLOCK;
	}
}

/* ---- values ------------------------------------------------------------ */

static bool token_eq(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(s, word, n) == 0;
}

static bool parse_number(const char *s, size_t n, bool size_suffix, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (n == 0)
		return false;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return false;
	if (i < n) {
		unsigned shift;
		if (!size_suffix || i + 1 != n)
			return false;
		switch (s[i]) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		default: return false;
		}
		if (v > (UINT64_MAX >> shift))
			return false;
		v <<= shift;
	}
	*out = v;
	return true;
}

static void store(struct mp_options *o, const struct opt_def *d, uint64_t v)
{
	char *p = (char *)o + d->off;
	if (d->width == 8)
		memcpy(p, &v, 8);
	else {
		uint32_t w = (uint32_t)v;
		memcpy(p, &w, 4);
	}
}

static uint64_t load(const struct mp_options *o, const struct opt_def *d)
{
	const char *p = (const char *)o + d->off;
	if (d->width == 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		return v;
	}
	uint32_t w;
	memcpy(&w, p, 4);
	return w;
}

/* What a key accepts, in words, for the error message and the docs. */
static void describe(const struct opt_def *d, char *buf, size_t cap)
{
	size_t len = 0;
	switch (d->type) {
	case T_PRESET:
	case T_ENUM:
		for (unsigned i = 0; d->names[i]; i++)
			len += fmt_snprintf(buf + len, cap > len ? cap - len : 0, "%s%s",
					    i ? ", " : "one of ", d->names[i]);
		break;
	case T_UINT:
		fmt_snprintf(buf, cap, "%s%s from %lu to %lu", d->zero_ok ? "0 or " : "",
			     d->pow2 ? "a power of two" : "an integer",
			     (unsigned long)d->min, (unsigned long)d->max);
		break;
	case T_SIZE:
		fmt_snprintf(buf, cap, "%sbytes from %lu to %lu, suffix k/m/g/t allowed",
			     d->zero_ok ? "0 or " : "", (unsigned long)d->min, (unsigned long)d->max);
		break;
	case T_STR:
		fmt_snprintf(buf, cap, "a path of at most 255 bytes, no comma");
		break;
	case T_NUMA:
		fmt_snprintf(buf, cap, "auto, off, or fake=N with N from %lu to %lu",
			     (unsigned long)d->min, (unsigned long)d->max);
		break;
	}
}

/* numa's value as written: auto, off, fake=N. */
static size_t numa_text(char *buf, size_t cap, uint32_t v)
{
	return v == NUMA_AUTO  ? fmt_snprintf(buf, cap, "auto")
	       : v == NUMA_OFF ? fmt_snprintf(buf, cap, "off")
			       : fmt_snprintf(buf, cap, "fake=%u", v);
}

/* A token of the configuration string, escaped to be echoed in a message
 * (control characters would otherwise reach the terminal), and NUL-terminated;
 * a long one is cut and ends in "...". */
struct token {
	char s[160];
};

static const char *tok(struct token *t, const char *p, size_t n)
{
	fmt_escape(t->s, sizeof(t->s), p, n);
	return t->s;
}

/* One line on errfd: "libmagpage: MAGPAGE_CONF: ..." */
__attribute__((format(printf, 2, 3)))
static void report(int errfd, const char *fmtstr, ...)
{
	va_list ap;

	if (errfd < 0)
		return;
	FMT_ON_STACK(out, errfd, 1024);
	fmt_printf(&out, "libmagpage: MAGPAGE_CONF: ");
	va_start(ap, fmtstr);
	fmt_vprintf(&out, fmtstr, ap);
	va_end(ap);
	fmt_printf(&out, "\n");
	fmt_flush(&out);
}

/* The value key d has now in o, as the end of an error message says it. */
static void value_text(const struct mp_options *o, const struct opt_def *d, char *buf, size_t cap)
{
	const char *str = (const char *)o + d->off;

	buf[0] = '\0';
	switch (d->type) {
	case T_PRESET:
		fmt_snprintf(buf, cap, "%s", presets[o->preset]);
		break;
	case T_ENUM:
		fmt_snprintf(buf, cap, "%s", d->names[load(o, d)]);
		break;
	case T_UINT:
	case T_SIZE:
		fmt_snprintf(buf, cap, "%lu", (unsigned long)load(o, d));
		break;
	case T_NUMA:
		numa_text(buf, cap, (uint32_t)load(o, d));
		break;
	case T_STR:
		if (!str[0]) {
			fmt_snprintf(buf, cap, "empty");
		} else if (cap > 2) {
			buf[0] = '\'';
			size_t n = fmt_escape(buf + 1, cap - 2, str, strlen(str));
			buf[n + 1] = '\'';
			buf[n + 2] = '\0';
		}
		break;
	}
}

/* The message for a bad value, or a missing one (v NULL); apart so that its
 * buffers take stack only when there is something to report. */
static coldpath void report_bad_value(const struct mp_options *o, const struct opt_def *d,
				      const char *v, size_t vn, int errfd)
{
	struct token tv;
	char accepted[256], kept[200];

	if (errfd < 0)
		return;
	describe(d, accepted, sizeof(accepted));
	value_text(o, d, kept, sizeof(kept));
	if (!v)
		report(errfd, "key '%s' has no value (write %s:VALUE); accepted: %s; %s stays %s",
		       d->name, d->name, accepted, d->name, kept);
	else
		report(errfd, "bad value '%s' for key '%s'; accepted: %s; %s stays %s",
		       tok(&tv, v, vn), d->name, accepted, d->name, kept);
}

static int set_value(struct mp_options *o, const struct opt_def *d, const char *v, size_t vn,
		     int errfd)
{
	uint64_t num;

	switch (d->type) {
	case T_PRESET:
	case T_ENUM:
		for (unsigned i = 0; d->names[i]; i++) {
			if (token_eq(v, vn, d->names[i])) {
				if (d->type == T_ENUM)
					store(o, d, i);
				return 0;
			}
		}
		break;
	case T_UINT:
	case T_SIZE:
		if (!parse_number(v, vn, d->type == T_SIZE, &num))
			break;
		if (num == 0 && d->zero_ok) {
			store(o, d, 0);
			return 0;
		}
		if (num < d->min || num > d->max || (d->pow2 && !is_pow2(num)))
			break;
		store(o, d, num);
		return 0;
	case T_NUMA:
		if (token_eq(v, vn, "auto") || token_eq(v, vn, "off")) {
			store(o, d, token_eq(v, vn, "auto") ? NUMA_AUTO : NUMA_OFF);
			return 0;
		}
		if (vn > 5 && memcmp(v, "fake=", 5) == 0 && parse_number(v + 5, vn - 5, false, &num) &&
		    num >= d->min && num <= d->max) {
			store(o, d, num);
			return 0;
		}
		break;
	case T_STR:
		if (vn == 0 || vn >= sizeof(o->stats_file))
			break;
		memcpy((char *)o + d->off, v, vn);
		((char *)o + d->off)[vn] = '\0';
		return 0;
	}
	report_bad_value(o, d, v, vn, errfd);
	return 1;
}

static const struct opt_def *find_def(const char *k, size_t kn)
{
	for (size_t i = 0; i < NDEFS; i++)
		if (token_eq(k, kn, defs[i].name))
			return &defs[i];
	return NULL;
}

/* Calls fn on each "key:value" item; returns the number of errors. */
static int each_item(struct mp_options *o, const char *conf, int errfd, bool presets_only)
{
	int errors = 0;
	const char *p = conf;

	while (*p) {
		const char *item = p, *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		p = *end ? end + 1 : end;
		if (end == item)
			continue;           /* tolerate ",," and a trailing comma */
		const char *colon = memchr(item, ':', (size_t)(end - item));
		size_t kn = colon ? (size_t)(colon - item) : (size_t)(end - item);
		const struct opt_def *d = find_def(item, kn);
		if (presets_only != (d && d->type == T_PRESET))
			continue;
		if (!d) {
			char keys[512];
			size_t len = 0;
			for (size_t i = 0; i < NDEFS; i++)
				len += fmt_snprintf(keys + len, sizeof(keys) - len, "%s%s",
						    i ? ", " : "", defs[i].name);
			struct token tk;
			report(errfd, "unknown key '%s'; accepted keys: %s", tok(&tk, item, kn), keys);
			errors++;
			continue;
		}
		if (!colon) {
			report_bad_value(o, d, NULL, 0, errfd);
			errors++;
			continue;
		}
		const char *v = colon + 1;
		size_t vn = (size_t)(end - v);
		if (d->type == T_PRESET) {
			if (set_value(o, d, v, vn, errfd) == 0) {
				for (uint32_t i = 0; d->names[i]; i++)
					if (token_eq(v, vn, d->names[i]))
						apply_preset(o, i);
			} else {
				errors++;
			}
			continue;
		}
		errors += set_value(o, d, v, vn, errfd);
	}
	return errors;
}

int options_parse(struct mp_options *o, const char *conf, int errfd)
{
	if (!conf)
		return 0;
	int errors = each_item(o, conf, errfd, true);
	errors += each_item(o, conf, errfd, false);
	if (o->refill_min > o->refill_max) {
		report(errfd, "refill_min is above refill_max; using refill_min = refill_max");
		o->refill_min = o->refill_max;
		errors++;
	}
	if (o->drain_min > o->drain_max) {
		report(errfd, "drain_min is above drain_max; using drain_min = drain_max");
		o->drain_min = o->drain_max;
		errors++;
	}
	return errors;
}

const char *options_enum_name(const char *key, uint32_t value)
{
	const struct opt_def *d = find_def(key, strlen(key));
	if (!d || !d->names)
		return "?";
	for (uint32_t i = 0; d->names[i]; i++)
		if (i == value)
			return d->names[i];
	return "?";
}

static void print_value(struct fmt_buf *b, const struct mp_options *o, const struct opt_def *d)
{
	switch (d->type) {
	case T_PRESET:
		fmt_printf(b, "%s", presets[o->preset]);
		break;
	case T_ENUM:
		fmt_printf(b, "%s", d->names[load(o, d)]);
		break;
	case T_UINT:
	case T_SIZE:
		fmt_printf(b, "%lu", (unsigned long)load(o, d));
		break;
	case T_STR:
		fmt_printf(b, "%s", (const char *)o + d->off);
		break;
	case T_NUMA: {
		char t[32];
		numa_text(t, sizeof(t), (uint32_t)load(o, d));
		fmt_printf(b, "%s", t);
		break;
	}
	}
}

void options_print(const struct mp_options *o, int fd)
{
	FMT_ON_STACK(b, fd, 1024);
	for (size_t i = 0; i < NDEFS; i++) {
		fmt_printf(&b, "%s:", defs[i].name);
		print_value(&b, o, &defs[i]);
		fmt_printf(&b, "\n");
	}
	fmt_flush(&b);
}

/* The same options as a JSON object's members, for the stats report. */
void options_print_json(struct fmt_buf *b, const struct mp_options *o)
{
	for (size_t i = 0; i < NDEFS; i++) {
		bool quoted = defs[i].type == T_ENUM || defs[i].type == T_PRESET ||
			      defs[i].type == T_NUMA;
		fmt_printf(b, "%s\"%s\":%s", i ? "," : "", defs[i].name, quoted ? "\"" : "");
		if (defs[i].type == T_STR)
			fmt_json_string(b, (const char *)o + defs[i].off);   /* from outside */
		else
			print_value(b, o, &defs[i]);
		fmt_printf(b, "%s", quoted ? "\"" : "");
	}
}

void options_print_doc(int fd)
{
	struct mp_options d;
	char accepted[256];

	options_defaults(&d);
	FMT_ON_STACK(b, fd, 2048);
	fmt_printf(&b, "| key | default | accepted | meaning |\n|---|---|---|---|\n");
	for (size_t i = 0; i < NDEFS; i++) {
		describe(&defs[i], accepted, sizeof(accepted));
		fmt_printf(&b, "| `%s` | `", defs[i].name);
		print_value(&b, &d, &defs[i]);
		fmt_printf(&b, "` | %s | %s |\n", accepted, defs[i].doc);
	}
	fmt_flush(&b);
}
