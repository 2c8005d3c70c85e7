/*
 * fmt.c — unit tests for src/platform/fmt.c, the formatter that never
 * allocates.  Where the C library's snprintf defines the result, the two
 * must agree byte for byte.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

TestSuite(fmt, .timeout = 60);

#define SAME(fmtstr, ...)                                                          \
	do {                                                                       \
		char a_[256], b_[256];                                             \
		size_t n_ = fmt_snprintf(a_, sizeof(a_), fmtstr, __VA_ARGS__);    \
		int m_ = snprintf(b_, sizeof(b_), fmtstr, __VA_ARGS__);            \
		cr_assert_str_eq(a_, b_, "format \"%s\": fmt_snprintf gave \"%s\", libc \"%s\"", \
				 fmtstr, a_, b_);                                  \
		cr_assert_eq(n_, (size_t)m_, "format \"%s\": length %zu, libc %d", fmtstr, \
			     n_, m_);                                              \
	} while (0)

Test(fmt, strings)
{
	SAME("%s", "hello");
	SAME("[%s]", "");
	SAME("a%sb%sc", "x", "yz");
	SAME("%10s|", "right");
	SAME("%-10s|", "left");
	SAME("%3s|", "longer than width");
	SAME("%c%c%c", 'a', 'b', 'c');
	SAME("%5c|%-5c|", 'x', 'y');
	char buf[32];
	const char *volatile nul = NULL;     /* hidden from -Wformat-overflow */
	fmt_snprintf(buf, sizeof(buf), "%s", nul);
	cr_assert_str_eq(buf, "(null)");
}

Test(fmt, literal_text_and_percent)
{
	SAME("%s", "no conversions at all");
	SAME("100%% sure%s", "");
	SAME("%%%d%%", 5);
	char buf[64];
	cr_assert_eq(fmt_snprintf(buf, sizeof(buf), "plain"), 5);
	cr_assert_str_eq(buf, "plain");
	cr_assert_eq(fmt_snprintf(buf, sizeof(buf), "%%"), 1);
	cr_assert_str_eq(buf, "%");
}

Test(fmt, signed_decimal)
{
	SAME("%d", 0);
	SAME("%d", 42);
	SAME("%d", -42);
	SAME("%i", 7);
	SAME("%d", INT_MAX);
	SAME("%d", INT_MIN);
	SAME("%ld", LONG_MAX);
	SAME("%ld", LONG_MIN);
	SAME("%lld", LLONG_MIN);
	SAME("%zd", (ssize_t)-5);
	SAME("%6d|", 42);
	SAME("%-6d|", 42);
	SAME("%06d|", 42);
	SAME("%6d|", -42);
	SAME("%-6d|", -42);
	SAME("%1d|", 12345);
}

/* '0' with a negative number: the sign comes before the zeros. */
Test(fmt, zero_pad_negative)
{
	SAME("%06d|", -42);
	SAME("%05ld|", -1L);
}

Test(fmt, unsigned_decimal)
{
	SAME("%u", 0u);
	SAME("%u", 4294967295u);
	SAME("%lu", 0ul);
	SAME("%lu", 18446744073709551615ul);
	SAME("%llu", 12345678901234ull);
	SAME("%zu", (size_t)4096);
	SAME("%8lu|", 4096ul);
	SAME("%-8lu|", 4096ul);
	SAME("%08lu|", 4096ul);
	SAME("%020lu|", 18446744073709551615ul);
	/* %u takes an unsigned int: only the low 32 bits of the argument. */
	SAME("%u %u", 1u, 2u);
}

Test(fmt, hex)
{
	SAME("%x", 0u);
	SAME("%x", 0xdeadbeefu);
	SAME("%lx", 0xfedcba9876543210ul);
	SAME("%8x|", 0xabcu);
	SAME("%08x|", 0xabcu);
	SAME("%-8x|", 0xabcu);
	SAME("%016lx", 0x1234ul);
	SAME("%zx", (size_t)0x1000);
}

Test(fmt, pointers)
{
	int x;
	SAME("%p", (void *)&x);
	SAME("%p", (void *)0x1000);
	SAME("[%p]", (void *)0xdeadbeef);
	char buf[64];
	fmt_snprintf(buf, sizeof(buf), "%p", (void *)0x7f0012345000);
	cr_assert_str_eq(buf, "0x7f0012345000");
}

/* A field width applies to the whole "0x..." string, as in printf. */
Test(fmt, pointer_width)
{
	SAME("%18p|", (void *)0x7f0012345000);
	SAME("%-18p|", (void *)0x7f0012345000);
}

Test(fmt, mixed)
{
	SAME("order %u: pfn %lu misaligned (%s) %x%%", 3u, 12345ul, "why", 0xffu);
	SAME("%-12s %8lu %-4u|%s", "magazine", 1024ul, 2u, "end");
}

Test(fmt, truncation)
{
	char buf[8];
	memset(buf, 'X', sizeof(buf));
	size_t n = fmt_snprintf(buf, sizeof(buf), "%s", "0123456789");
	cr_assert_eq(n, 10, "returns the length it would have written");
	cr_assert_str_eq(buf, "0123456", "cap - 1 bytes and a NUL");

	memset(buf, 'X', sizeof(buf));
	n = fmt_snprintf(buf, sizeof(buf), "%d-%d", 1234, 5678);
	cr_assert_eq(n, 9);
	cr_assert_str_eq(buf, "1234-56");

	/* Exactly fits. */
	n = fmt_snprintf(buf, sizeof(buf), "%7s", "abc");
	cr_assert_eq(n, 7);
	cr_assert_str_eq(buf, "    abc");

	/* cap 1: just the NUL; cap 0: nothing written at all. */
	char one[1] = { 'X' };
	n = fmt_snprintf(one, 1, "%s", "abc");
	cr_assert_eq(n, 3);
	cr_assert_eq(one[0], '\0');
	char guard[4] = { 'G', 'G', 'G', 'G' };
	n = fmt_snprintf(guard, 0, "%s", "abc");
	cr_assert_eq(n, 3);
	cr_assert_eq(guard[0], 'G');

	/* Width padding is truncated too, never overruns. */
	char small[6];
	char canary[8];
	memset(canary, 'C', sizeof(canary));
	n = fmt_snprintf(small, sizeof(small), "%-20s|", "ab");
	cr_assert_eq(n, 21);
	cr_assert_str_eq(small, "ab   ");
	for (size_t i = 0; i < sizeof(canary); i++)
		cr_assert_eq(canary[i], 'C');
}

/* fmt_printf through a small buffer: flushed to the fd as it fills. */
Test(fmt, buffered_printf_flushes)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	char store[16];
	struct fmt_buf b;
	fmt_init(&b, fds[1], store, sizeof(store));
	for (int i = 0; i < 10; i++)
		fmt_printf(&b, "line %d of %s\n", i, "ten");
	fmt_flush(&b);
	close(fds[1]);
	char out[512];
	size_t len = 0;
	ssize_t n;
	while ((n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
	char want[512] = "";
	for (int i = 0; i < 10; i++) {
		char l[32];
		snprintf(l, sizeof(l), "line %d of %s\n", i, "ten");
		strcat(want, l);
	}
	cr_assert_str_eq(out, want);
}

Test(fmt, on_stack_macro)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	FMT_ON_STACK(b, fds[1], 64);
	fmt_printf(&b, "%s=%lu", "pages", 16384ul);
	cr_assert_eq(b.len, 11);
	fmt_flush(&b);
	cr_assert_eq(b.len, 0);
	close(fds[1]);
	char out[64] = "";
	cr_assert_eq(read(fds[0], out, sizeof(out) - 1), 11);
	cr_assert_str_eq(out, "pages=16384");
	close(fds[0]);
}

/* An unsupported conversion stops the output instead of misreading the
 * arguments that follow. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
Test(fmt, malformed_stops)
{
	char buf[64];
	size_t n = fmt_snprintf(buf, sizeof(buf), "ok %q %s", "never read");
	cr_assert_str_eq(buf, "ok ");
	cr_assert_eq(n, 3);
}
#pragma GCC diagnostic pop

/* ---- text from outside: fmt_escape, fmt_json_string ------------------------ */

static const char *esc(char *dst, size_t cap, const char *s)
{
	fmt_escape(dst, cap, s, strlen(s));
	return dst;
}

/* What a message may echo: nothing a terminal would obey. */
Test(fmt, escape_controls)
{
	char b[128];

	cr_assert_str_eq(esc(b, sizeof(b), "plain /tmp/x.%p"), "plain /tmp/x.%p");
	cr_assert_str_eq(esc(b, sizeof(b), "\x1b[31mred"), "\\x1b[31mred");
	cr_assert_str_eq(esc(b, sizeof(b), "a\x01" "b\nc\td\x7f"), "a\\x01b\\x0ac\\x09d\\x7f");
	cr_assert_str_eq(esc(b, sizeof(b), "back\\slash 'q'"), "back\\\\slash \\'q\\'",
			 "the escape character and the quote are escaped too: unambiguous");
	/* UTF-8 passes, C1 controls (CSI is U+009B) and stray bytes do not. */
	cr_assert_str_eq(esc(b, sizeof(b), "caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");
	cr_assert_str_eq(esc(b, sizeof(b), "\xc2\x9b" "2J"), "\\xc2\\x9b2J");
	cr_assert_str_eq(esc(b, sizeof(b), "\xff\xc3(\xed\xa0\x80\xc0\xaf"),
			 "\\xff\\xc3(\\xed\\xa0\\x80\\xc0\\xaf", "invalid, surrogate, overlong");
	/* A NUL inside the given length is a byte like any other. */
	cr_assert_eq(fmt_escape(b, sizeof(b), "a\0b", 3), 6);
	cr_assert_str_eq(b, "a\\x00b");
}

Test(fmt, escape_cuts_whole_escapes)
{
	char b[8];

	cr_assert_eq(fmt_escape(b, sizeof(b), "1234567", 7), 7, "exactly fits: no dots");
	cr_assert_str_eq(b, "1234567");
	cr_assert_eq(fmt_escape(b, sizeof(b), "12345678", 8), 7);
	cr_assert_str_eq(b, "1234...");
	cr_assert_eq(fmt_escape(b, sizeof(b), "12\x1b" "45678", 8), 5);
	cr_assert_str_eq(b, "12...", "\\x1b would not fit whole before the dots");
	cr_assert_eq(fmt_escape(b, 1, "abc", 3), 0);
	cr_assert_str_eq(b, "");
}

static void json_of(const char *s, char *out, size_t cap)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	FMT_ON_STACK(b, fds[1], 16);         /* small: the escapes cross flushes */
	fmt_json_string(&b, s);
	fmt_flush(&b);
	close(fds[1]);
	size_t len = 0;
	ssize_t n;
	while ((n = read(fds[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
}

Test(fmt, json_string)
{
	char out[256];

	json_of("", out, sizeof(out));
	cr_assert_str_eq(out, "\"\"");
	json_of("/tmp/s.%p.json", out, sizeof(out));
	cr_assert_str_eq(out, "\"/tmp/s.%p.json\"");
	json_of("/tmp/q\"uote\\back", out, sizeof(out));
	cr_assert_str_eq(out, "\"/tmp/q\\\"uote\\\\back\"");
	json_of("a\x01\n\x1f\x7f", out, sizeof(out));
	cr_assert_str_eq(out, "\"a\\u0001\\u000a\\u001f\x7f\"");
	json_of("caf\xc3\xa9 \xf0\x9f\x98\x80", out, sizeof(out));
	cr_assert_str_eq(out, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "UTF-8 as it is");
	json_of("x\xff" "y\xc3", out, sizeof(out));
	cr_assert_str_eq(out, "\"x\\ufffdy\\ufffd\"", "JSON text must be UTF-8");
}
