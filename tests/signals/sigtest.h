/*
 * sigtest.h — what the signal tests share: a block pattern that a handler
 * can write and check without calling anything, and the library's counters
 * read from its JSON report.
 *
 * Nothing here links libmagpage.  The programs run under
 * LD_PRELOAD=libmagpage.so, or under another allocator (scripts/sigpeers.sh),
 * and find the library's API with dlsym(RTLD_DEFAULT); when it is absent the
 * counter checks are skipped, never faked.
 *
 * Everything called from a handler (blk_fill, blk_check, blk_zero_check,
 * sig_say) is async-signal-safe: plain loads and stores, write(2).
 */
#ifndef SIGTEST_H
#define SIGTEST_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- block pattern --------------------------------------------------------
 * A block of size bytes (>= 16) starts with a header { seed, size }; the
 * rest holds seed ^ (word index * golden ratio), the tail bytes the low byte
 * of the next word.  Two live blocks never share a seed, so a block that
 * overlaps another, or was not copied, or was zeroed, fails at the first
 * wrong word.  Word stores keep a 20 KiB block at about a microsecond.
 */
struct blk_hdr {
	uint64_t seed;   /* unique per fill */
	uint64_t size;   /* bytes the filler wrote, header included */
};

#define BLK_MIN sizeof(struct blk_hdr)

static inline uint64_t blk_word(uint64_t seed, size_t i)
{
	return seed ^ ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull);
}

static inline void blk_fill(void *p, size_t size, uint64_t seed)
{
	struct blk_hdr *h = p;
	uint64_t *w = (uint64_t *)(h + 1);
	size_t n = (size - BLK_MIN) / 8, i;

	h->seed = seed;
	h->size = size;
	for (i = 0; i < n; i++)
		w[i] = blk_word(seed, i);
	unsigned char *t = (unsigned char *)(w + n);
	for (size_t k = 0; k < (size - BLK_MIN) % 8; k++)
		t[k] = (unsigned char)(blk_word(seed, n) >> (8 * k));
}

/* Checks the first upto bytes (upto 0: the size in the header).  Returns 0
 * when right, else 1 + the offset of the first wrong byte. */
static inline size_t blk_check_prefix(const void *p, size_t upto)
{
	const struct blk_hdr *h = p;
	uint64_t seed = h->seed;
	size_t size = h->size;

	if (size < BLK_MIN || size > ((size_t)64 << 20))
		return 1 + offsetof(struct blk_hdr, size);
	if (upto == 0 || upto > size)
		upto = size;
	const uint64_t *w = (const uint64_t *)(h + 1);
	size_t n = (upto - BLK_MIN) / 8, i;
	for (i = 0; i < n; i++)
		if (w[i] != blk_word(seed, i))
			return 1 + BLK_MIN + i * 8;
	const unsigned char *t = (const unsigned char *)(w + n);
	for (size_t k = 0; k < (upto - BLK_MIN) % 8; k++)
		if (t[k] != (unsigned char)(blk_word(seed, n) >> (8 * k)))
			return 1 + BLK_MIN + n * 8 + k;
	return 0;
}

static inline size_t blk_check(const void *p, size_t expect_size)
{
	if (expect_size && ((const struct blk_hdr *)p)->size != expect_size)
		return 1 + offsetof(struct blk_hdr, size);
	return blk_check_prefix(p, 0);
}

/* 0 if n bytes are zero, else 1 + the offset of the first that is not. */
static inline size_t blk_zero_check(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		if (*(const uint64_t *)(b + i))
			break;
	for (; i < n; i++)
		if (b[i])
			return 1 + i;
	return 0;
}

/* ---- async-signal-safe messages -------------------------------------------- */

struct say_buf {
	char b[512];
	size_t n;
};

static inline void say_str(struct say_buf *s, const char *str)
{
	while (*str && s->n < sizeof(s->b) - 1)
		s->b[s->n++] = *str++;
}

static inline void say_u64(struct say_buf *s, uint64_t v)
{
	char d[24];
	int k = 0;
	do
		d[k++] = (char)('0' + v % 10);
	while ((v /= 10) && k < 24);
	while (k && s->n < sizeof(s->b) - 1)
		s->b[s->n++] = d[--k];
}

static inline void say_hex(struct say_buf *s, uint64_t v)
{
	say_str(s, "0x");
	for (int sh = 60; sh >= 0; sh -= 4)
		if (s->n < sizeof(s->b) - 1)
			s->b[s->n++] = "0123456789abcdef"[(v >> sh) & 15];
}

static inline void say_flush(struct say_buf *s, int fd)
{
	size_t off = 0;
	while (off < s->n) {
		ssize_t w = write(fd, s->b + off, s->n - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	s->n = 0;
}

/* ---- the library's counters ------------------------------------------------- */

typedef void (*print_stats_fn)(int fd, int json);

/* The preloaded library's report writer, or NULL under another allocator. */
static inline print_stats_fn sig_print_stats_fn(void)
{
	return (print_stats_fn)dlsym(RTLD_DEFAULT, "magpage_print_stats");
}

/* The JSON report, in a static buffer; NULL without libmagpage.  Nothing on
 * this path allocates: the report is written into a memfd and read back. */
static inline const char *sig_stats_json(print_stats_fn ps, char *buf, size_t cap)
{
	if (!ps)
		return NULL;
	int fd = memfd_create("sigtest-stats", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	ps(fd, 1);
	ssize_t n = pread(fd, buf, cap - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? buf : NULL;
}

/* The number after "key": at its first occurrence following section (a
 * literal such as "\"signal\":{", or NULL for the whole report). */
static inline bool json_u64(const char *js, const char *section, const char *key, uint64_t *out)
{
	const char *s = section ? strstr(js, section) : js;
	char k[96];
	size_t kl = strlen(key);

	if (!s || kl + 4 > sizeof(k))
		return false;
	k[0] = '"';
	memcpy(k + 1, key, kl);
	memcpy(k + 1 + kl, "\":", 3);
	const char *p = strstr(s, k);
	if (!p)
		return false;
	p += kl + 3;
	if (*p < '0' || *p > '9')
		return false;
	*out = strtoull(p, NULL, 10);
	return true;
}

/* The string value after "key":" following section, copied into out. */
static inline bool json_str(const char *js, const char *section, const char *key, char *out,
			    size_t cap)
{
	const char *s = section ? strstr(js, section) : js;
	char k[96];
	size_t kl = strlen(key), n = 0;

	if (!s || kl + 5 > sizeof(k) || cap == 0)
		return false;
	k[0] = '"';
	memcpy(k + 1, key, kl);
	memcpy(k + 1 + kl, "\":\"", 4);
	const char *p = strstr(s, k);
	if (!p)
		return false;
	p += kl + 4;
	while (p[n] && p[n] != '"' && n + 1 < cap) {
		out[n] = p[n];
		n++;
	}
	out[n] = '\0';
	return true;
}

#define SIG_SECTION "\"signal\":{"
#define CACHES_SECTION "\"caches\":{"
#define MALLOC_SECTION "\"malloc\":{"

#endif /* SIGTEST_H */
