/*
 * fuzz_conf.c — libFuzzer target for the MAGPAGE_CONF parser
 * (src/platform/options.c).
 *
 * The input, cut at its first NUL and copied into a buffer of exactly its
 * length plus the terminator (so ASan sees any read past the end), is parsed
 * onto the defaults.  Whatever the input:
 *   - the parse does not crash, and every field stays within the bounds its
 *     row of the options table promises (the allocator trusts them);
 *   - each error is one line on errfd, "libmagpage: MAGPAGE_CONF: ...",
 *     valid UTF-8 without control characters (text echoed from the string
 *     is escaped: it may be a terminal's escape sequence);
 *   - the printers accept the result, and the JSON form is valid JSON;
 *   - printed by options_print and read back as "key:value,...", the
 *     result parses with no error into the same options.
 *
 * The numeric bounds below restate the table's on purpose: a fuzzer that
 * read them from the table would accept whatever the table says.  Enums are
 * checked against their names, so that a new value needs no change here.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static int devnull = -1;
static int errfd = -1;           /* a memfd: options_parse's messages */
static int printfd = -1;         /* a memfd: options_print's output */
static char msgs[1 << 20];       /* what it wrote, read back */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	errfd = memfd_create("fuzz_conf-errors", MFD_CLOEXEC);
	printfd = memfd_create("fuzz_conf-print", MFD_CLOEXEC);
	if (devnull < 0 || errfd < 0 || printfd < 0) {
		perror("fuzz_conf: setup");
		abort();
	}
	return 0;
}

/* s on stderr with bytes outside printable ASCII as \xNN: a failure
 * report must not send the terminal the escapes it is about. */
static void put_escaped(const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if ((*c >= 0x20 && *c < 0x7f) || *c == '\n')
			fputc(*c, stderr);
		else
			fprintf(stderr, "\\x%02x", *c);
}

static __attribute__((noreturn, format(printf, 2, 3)))
void fail(const char *conf, const char *fmt, ...)
{
	static char why[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fprintf(stderr, "fuzz_conf: ");
	put_escaped(why);
	fprintf(stderr, "\n  input: \"");
	put_escaped(conf);
	fprintf(stderr, "\"\n");
	abort();
}

#define IN(field, lo, hi)                                                         \
	do {                                                                      \
		if ((uint64_t)o->field < (uint64_t)(lo) || (uint64_t)o->field > (uint64_t)(hi)) \
			fail(conf, #field " = %lu, outside %lu..%lu",               \
			     (unsigned long)o->field, (unsigned long)(lo), (unsigned long)(hi)); \
	} while (0)

/* An enum must be one of its names.  options_enum_name walks the table's
 * list, so a new value (a new cache design) needs no change here. */
#define NAMED(field)                                                              \
	do {                                                                      \
		if (strcmp(options_enum_name(#field, o->field), "?") == 0)        \
			fail(conf, #field " = %u, a value without a name", (unsigned)o->field); \
	} while (0)

/* Every field within the bounds of its row in options.c's table. */
static void check_bounds(const struct mp_options *o, const char *conf)
{
	NAMED(preset);
	NAMED(cache);
	if (o->region_size != 0)
		IN(region_size, 4u << 20, 1ull << 40);
	IN(threshold, 1, 4u << 20);
	IN(magazines, 0, MAX_CACHES);
	if (o->magazines && !is_pow2(o->magazines))
		fail(conf, "magazines = %u, not a power of two", o->magazines);
	NAMED(mag_map);
	IN(mag_limit, 1, 1u << 20);
	IN(refill_max, 1, 1u << 16);
	IN(refill_min, 1, o->refill_max);
	IN(drain_max, 1, 1u << 16);
	IN(drain_min, 1, o->drain_max);
	IN(cache_order, 0, CACHE_ORDERS - 1);
	NAMED(cache_exact);
	NAMED(cache_borrow);
	IN(pcp_high, 1, 1u << 16);
	IN(pcp_batch, 1, 1u << 16);
	NAMED(signal);
	NAMED(stats);
	NAMED(strict);
	NAMED(verbose);
	NAMED(on_invalid);
	NAMED(on_exhausted);
	NAMED(zone_irqsave);
	size_t len = strnlen(o->stats_file, sizeof(o->stats_file));
	if (len == sizeof(o->stats_file))
		fail(conf, "stats_file is not NUL-terminated");
	if (memchr(o->stats_file, ',', len))
		fail(conf, "stats_file \"%s\" holds a comma", o->stats_file);
}

/* The options as options_print writes them (the form of magpage-conf
 * --print and verbose:1), one "key:value" per line, turned into a
 * MAGPAGE_CONF string.  Going through the library's own printer keeps the
 * round trip complete when a key is added to the table.  stats_file goes
 * last and by hand: its value may hold a newline, and an empty one cannot
 * be written at all (the default is empty). */
static void write_conf(const struct mp_options *o, char *buf, size_t cap, const char *conf)
{
	static char printed[8192];
	struct mp_options copy = *o;
	size_t len = 0;

	copy.stats_file[0] = '\0';
	if (ftruncate(printfd, 0) != 0 || lseek(printfd, 0, SEEK_SET) != 0)
		abort();
	options_print(&copy, printfd);
	ssize_t got = pread(printfd, printed, sizeof(printed) - 1, 0);
	if (got <= 0 || (size_t)got >= sizeof(printed) - 1)
		fail(conf, "options_print wrote %zd bytes", got);
	printed[got] = '\0';
	for (char *line = printed, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		*nl = '\0';
		if (nl == line || nl[-1] == ':')   /* stats_file, empty */
			continue;
		len += (size_t)snprintf(buf + len, cap > len ? cap - len : 0, "%s,", line);
	}
	if (o->stats_file[0])
		len += (size_t)snprintf(buf + len, cap > len ? cap - len : 0, "stats_file:%s",
					o->stats_file);
	if (len >= cap)
		fail(conf, "the options written back take more than %zu bytes", cap);
}

/* Both sets equal, bytes after stats_file's terminator aside (a longer
 * value given before a shorter one leaves them behind). */
static void check_same(struct mp_options *a, struct mp_options *b, const char *conf,
		       const char *text)
{
	size_t la = strlen(a->stats_file), lb = strlen(b->stats_file);
	memset(a->stats_file + la, 0, sizeof(a->stats_file) - la);
	memset(b->stats_file + lb, 0, sizeof(b->stats_file) - lb);
	const unsigned char *x = (const void *)a, *y = (const void *)b;
	for (size_t i = 0; i < sizeof(*a); i++)
		if (x[i] != y[i])
			fail(conf, "the options written back as \"%s\" parse differently "
			     "(struct mp_options byte %zu: %u, then %u)", text, i, x[i], y[i]);
}

/* Length of the UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), 0 if there is none; its code point
 * in *cp. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 :
		     s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
	uint32_t c = len == 1 ? s[0] : s[0] & (0x7f >> len);

	if (!len || len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	*cp = c;
	return len;
}

/* Checks the messages options_parse wrote: one line per error, each with
 * the prefix, valid UTF-8, no C0, DEL or C1 control character. */
static void check_messages(const char *conf, int errors)
{
	ssize_t got = pread(errfd, msgs, sizeof(msgs) - 1, 0);
	size_t n = got > 0 ? (size_t)got : 0;
	int lines = 0;

	msgs[n] = '\0';
	for (size_t i = 0; i < n;) {
		const char *line = msgs + i;
		if (strncmp(line, "libmagpage: MAGPAGE_CONF: ", 26) != 0)
			fail(conf, "message line without the prefix: \"%.200s\"", line);
		for (;;) {
			uint32_t cp = 0;
			size_t len = i < n ? utf8_len((const unsigned char *)msgs + i, n - i, &cp) : 0;
			if (!len)
				fail(conf, "message not UTF-8 or cut at byte %zu: \"%.200s\"",
				     (size_t)(msgs + i - line), line);
			i += len;
			if (cp == '\n')
				break;
			if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
				fail(conf, "message holds control character U+%04X: \"%.200s\"",
				     (unsigned)cp, line);
		}
		lines++;
	}
	if (lines != errors)
		fail(conf, "%d errors but %d message lines:\n%.2000s", errors, lines, msgs);
}

/* A JSON string at *p (RFC 8259), advancing past it. */
static bool json_string(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *s = *p;
	uint32_t cp;

	if (s == end || *s++ != '"')
		return false;
	while (s < end && *s != '"') {
		if (*s == '\\') {
			if (++s == end)
				return false;
			if (*s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (s + i >= end || !strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
						return false;
				s += 5;
			} else if (*s && strchr("\"\\/bfnrt", *s)) {
				s++;
			} else {
				return false;
			}
			continue;
		}
		size_t len = utf8_len(s, (size_t)(end - s), &cp);
		if (!len || cp < 0x20)
			return false;
		s += len;
	}
	if (s == end)
		return false;
	*p = s + 1;
	return true;
}

/* options_print_json writes the members of an object, "key":value with
 * string or unsigned number values: checks that text is exactly that. */
static void check_json(const char *conf, const struct mp_options *o)
{
	static char store[8192];
	struct fmt_buf b;

	fmt_init(&b, devnull, store, sizeof(store));
	options_print_json(&b, o);
	if (b.len >= sizeof(store) - 1)
		fail(conf, "options JSON longer than %zu bytes", sizeof(store));
	const unsigned char *p = (const unsigned char *)store, *end = p + b.len;
	while (p < end) {
		if (p != (const unsigned char *)store && *p++ != ',')
			break;
		if (!json_string(&p, end) || p == end || *p++ != ':')
			break;
		if (p < end && *p == '"') {
			if (!json_string(&p, end))
				break;
		} else {
			const unsigned char *digits = p;
			while (p < end && *p >= '0' && *p <= '9')
				p++;
			if (p == digits || (*digits == '0' && p - digits > 1))
				break;
		}
	}
	if (p != end)
		fail(conf, "options JSON invalid at byte %zu: {%.*s}",
		     (size_t)(p - (const unsigned char *)store), (int)b.len, store);
	b.len = 0;     /* checked, not written */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The environment cannot hold a NUL: the string ends at the first. */
	const uint8_t *nul = memchr(data, 0, size);
	size_t n = nul ? (size_t)(nul - data) : size;
	char *conf = malloc(n + 1);
	if (!conf)
		return 0;
	memcpy(conf, data, n);
	conf[n] = '\0';

	struct mp_options o;
	options_defaults(&o);
	if (ftruncate(errfd, 0) != 0 || lseek(errfd, 0, SEEK_SET) != 0)
		abort();
	int errors = options_parse(&o, conf, errfd);
	if (errors < 0)
		fail(conf, "options_parse returned %d errors", errors);
	check_bounds(&o, conf);
	check_messages(conf, errors);

	/* The printers index their name tables with the values: they would
	 * read out of bounds (ASan) if the bounds above did not hold. */
	check_json(conf, &o);

	char text[2048];
	struct mp_options again;
	write_conf(&o, text, sizeof(text), conf);
	options_defaults(&again);
	errors = options_parse(&again, text, devnull);
	if (errors != 0)
		fail(conf, "the parsed options written back as \"%s\" give %d errors", text, errors);
	check_same(&o, &again, conf, text);

	free(conf);
	return 0;
}
