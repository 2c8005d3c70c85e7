/*
 * mp_test.h — what the integration tests share.
 *
 * The test programs do not link libmagpage: they run under
 * LD_PRELOAD=libmagpage.so, exactly as an unmodified application would, and
 * reach the library's own API (magpage_owns, magpage_get_stats, ...) with
 * dlsym(RTLD_DEFAULT), since the preloaded library exports it.  Finding
 * those symbols is itself the proof that the preload is in effect.
 *
 * Also here: a content pattern (fill / check) that makes every byte depend
 * on the block's seed and its offset, so a block that overlaps another, or
 * that was not copied, or was zeroed, is caught at the first wrong byte.
 */
#ifndef MP_TEST_H
#define MP_TEST_H

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "magpage.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define PAGE ((size_t)4096)
#define MAX_ZONE_BLOCK (4 * MiB)
#define TOO_BIG ((size_t)PTRDIFF_MAX + 1)

/* ---- the library's own API, found in the preloaded library ------------- */

struct mp_api {
	int (*owns)(const void *p);
	int (*get_stats)(struct magpage_stats *st);
	void (*free_bulk)(void **ptrs, size_t n);
	size_t (*drain)(void);
	void (*print_config)(int fd);
};

static struct mp_api mp;

static inline void *mp_sym(const char *name)
{
	void *f = dlsym(RTLD_DEFAULT, name);
	cr_assert_not_null(f, "%s not found: is LD_PRELOAD=libmagpage.so set?", name);
	return f;
}

/* Criterion .init fixture: every test starts with the API resolved. */
static inline void mp_api_load(void)
{
	mp.owns = (int (*)(const void *))mp_sym("magpage_owns");
	mp.get_stats = (int (*)(struct magpage_stats *))mp_sym("magpage_get_stats");
	mp.free_bulk = (void (*)(void **, size_t))mp_sym("magpage_free_bulk");
	mp.drain = (size_t (*)(void))mp_sym("magpage_drain");
	mp.print_config = (void (*)(int))mp_sym("magpage_print_config");
}

static inline struct magpage_stats mp_stats(void)
{
	struct magpage_stats st;
	cr_assert_eq(mp.get_stats(&st), 0);
	return st;
}

/* True if the effective configuration (magpage_print_config, one
 * "key:value" per line) has exactly this line, e.g. "cache:none". */
static inline bool mp_conf_has(const char *line)
{
	char buf[4096] = "\n";
	int fd = memfd_create("mp_conf", 0);
	cr_assert_geq(fd, 0);
	mp.print_config(fd);
	ssize_t n = pread(fd, buf + 1, sizeof(buf) - 2, 0);
	close(fd);
	cr_assert_gt(n, 0, "magpage_print_config wrote nothing");
	buf[n + 1] = '\0';
	char want[128];
	snprintf(want, sizeof(want), "\n%s\n", line);
	return strstr(buf, want) != NULL;
}

/* The JSON statistics report, written without malloc into a memfd, so
 * reading it is no allocator call; in a static buffer. */
static inline const char *mp_report_json(void)
{
	static char buf[1 << 20];   /* 64 cache rows of 16 sizes: about 200 KiB */
	void (*print_stats)(int, int) = (void (*)(int, int))mp_sym("magpage_print_stats");
	int fd = memfd_create("mp_stats", 0);

	cr_assert_geq(fd, 0);
	print_stats(fd, 1);
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	cr_assert_gt(n, 0);
	cr_assert_lt((size_t)n, sizeof(buf) - 1, "the report did not fit in %zu bytes", sizeof(buf));
	buf[n] = '\0';
	return buf;
}

/* The number after "key": at or after at (a place in the report). */
static inline unsigned long long mp_json_number(const char *at, const char *key)
{
	char k[64];

	snprintf(k, sizeof(k), "\"%s\":", key);
	at = strstr(at, k);
	cr_assert_not_null(at, "no %s in the report", k);
	return strtoull(at + strlen(k), NULL, 10);
}

/* A counter of the JSON statistics report: the number after "key": inside
 * the object that starts at "obj":{. */
static inline unsigned long long mp_report_counter(const char *obj, const char *key)
{
	char o[64];

	snprintf(o, sizeof(o), "\"%s\":{", obj);
	const char *at = strstr(mp_report_json(), o);
	cr_assert_not_null(at, "no %s in the report", o);
	return mp_json_number(at, key);
}

/* What may move a thread's cached blocks behind its back, the counters
 * summed: the decay, which drains a CPU whose arrays it finds unchanged
 * since its last pass (bonwick's caches.decayed_pages; the other designs
 * do not decay), and the idle purge, which drains every cache once no
 * malloc came for the purge delay.  A thread the machine keeps off its CPU
 * between two calls can show either the state they look for, so a test of
 * which block comes back takes a try in which this moved as disturbed and
 * makes it again.  Not with purge_thread:1: the thread's decay adds its
 * pages after its whole pass, which a try could end inside of. */
#define MP_TRIES 20   /* tries a test makes before it calls every one disturbed */

static inline unsigned long long mp_moved_behind(void)
{
	const char *json = mp_report_json();
	const char *caches = strstr(json, "\"caches\":{");
	const char *purge = strstr(json, "\"purge\":{");
	cr_assert(caches && purge, "no caches or purge object in the report");
	unsigned long long n = mp_json_number(purge, "idle_purges");
	if (strstr(caches, "\"decayed_pages\":"))
		n += mp_json_number(caches, "decayed_pages");
	return n;
}

static inline bool mp_has_cache(void)
{
	return !mp_conf_has("cache:none");
}

/* ---- content patterns ---------------------------------------------------- */

static inline uint8_t pat_byte(uint64_t seed, size_t i)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + i;
	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	return (uint8_t)(x >> 56);
}

static inline void fill(void *p, size_t n, uint64_t seed)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = pat_byte(seed, i);
}

/* Offset of the first wrong byte, or -1 if all n bytes are right. */
static inline long check(const void *p, size_t n, uint64_t seed)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != pat_byte(seed, i))
			return (long)i;
	return -1;
}

/* Offset of the first non-zero byte, or -1. */
static inline long first_nonzero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return (long)i;
	return -1;
}

#define cr_assert_pattern(p, n, seed) do { \
	long at_ = check((p), (n), (seed)); \
	cr_assert_eq(at_, -1, "%s: wrong byte at offset %ld of %zu", #p, at_, (size_t)(n)); \
} while (0)

#define cr_assert_aligned(p, a) \
	cr_assert_eq((uintptr_t)(p) % (a), 0, "%p is not %zu-aligned", (void *)(p), (size_t)(a))

#endif
