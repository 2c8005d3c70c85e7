/*
 * fmt.c — a private printf that never allocates.
 *
 * Diagnostics and statistics are written during preload start-up, inside
 * signal handlers and at exit, when stdio may not be usable and malloc
 * must not be called.  Supports %s %c %d %i %u %x %p %% with the l, ll and
 * z length modifiers, a field width (or *) and the '-' and '0' flags.
 *
 * Text that comes from outside (MAGPAGE_CONF, a path, argv[0]) is never
 * printed as it is: fmt_escape makes it safe for a message on a terminal,
 * fmt_json_string makes it a valid JSON string.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct sink {
	char *dst;
	size_t cap, len;          /* used for fmt_snprintf */
	struct fmt_buf *buf;      /* used for fmt_printf */
};

static void sink_put(struct sink *s, const char *p, size_t n)
{
	if (s->buf) {
		while (n) {
			size_t room = s->buf->cap - s->buf->len;
			if (room == 0) {
				fmt_flush(s->buf);
				room = s->buf->cap;
			}
			size_t k = n < room ? n : room;
			memcpy(s->buf->buf + s->buf->len, p, k);
			s->buf->len += k;
			p += k;
			n -= k;
		}
		return;
	}
	for (size_t i = 0; i < n; i++, s->len++)
		if (s->len + 1 < s->cap)
			s->dst[s->len] = p[i];
}

static void sink_pad(struct sink *s, char c, int n)
{
	while (n-- > 0)
		sink_put(s, &c, 1);
}

static void vformat(struct sink *s, const char *f, va_list ap)
{
	char num[32];

	for (; *f; f++) {
		if (*f != '%') {
			const char *run = f;
			while (f[1] && f[1] != '%')
				f++;
			sink_put(s, run, (size_t)(f - run + 1));
			continue;
		}
		f++;
		bool left = false, zero = false;
		for (;; f++) {
			if (*f == '-')
				left = true;
			else if (*f == '0')
				zero = true;
			else
				break;
		}
		int width = 0;
		if (*f == '*') {          /* the width as an int argument */
			width = va_arg(ap, int);
			f++;
		}
		while (*f >= '0' && *f <= '9')
			width = width * 10 + (*f++ - '0');
		int lng = 0;
		while (*f == 'l' || *f == 'z') {
			lng++;
			f++;
		}
		const char *str = num, *prefix = "";
		size_t len = 0;
		unsigned long long u = 0;
		bool neg = false;
		switch (*f) {
		case 's':
			str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			len = strlen(str);
			break;
		case 'c':
			num[0] = (char)va_arg(ap, int);
			len = 1;
			break;
		case 'd': case 'i': {
			long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);
			neg = v < 0;
			u = neg ? 0ull - (unsigned long long)v : (unsigned long long)v;
			goto decimal;
		}
		case 'u':
			u = lng ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
		decimal: {
			char *e = num + sizeof(num), *q = e;
			do
				*--q = (char)('0' + u % 10);
			while (u /= 10);
			if (neg)
				prefix = "-";
			str = q;
			len = (size_t)(e - q);
			break;
		}
		case 'p':
			prefix = "0x";
			u = (uintptr_t)va_arg(ap, void *);
			goto hex;
		case 'x':
			u = lng ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
		hex: {
			char *e = num + sizeof(num), *q = e;
			do
				*--q = "0123456789abcdef"[u & 15];
			while (u >>= 4);
			str = q;
			len = (size_t)(e - q);
			break;
		}
		case '%':
			str = "%";
			len = 1;
			break;
		default:
			return;   /* malformed format: stop rather than misread args */
		}
		/* The sign or 0x goes before zero padding, after space padding. */
		size_t plen = strlen(prefix);
		int pad = width > (int)(len + plen) ? width - (int)(len + plen) : 0;
		if (!left && !zero)
			sink_pad(s, ' ', pad);
		sink_put(s, prefix, plen);
		if (!left && zero)
			sink_pad(s, '0', pad);
		sink_put(s, str, len);
		if (left)
			sink_pad(s, ' ', pad);
	}
}

void fmt_init(struct fmt_buf *b, int fd, char *buf, size_t cap)
{
	b->fd = fd;
	b->len = 0;
	b->cap = cap;
	b->buf = buf;
}

void fmt_printf(struct fmt_buf *b, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	fmt_vprintf(b, f, ap);
	va_end(ap);
}

void fmt_vprintf(struct fmt_buf *b, const char *f, va_list ap)
{
	struct sink s = { .buf = b };
	vformat(&s, f, ap);
}

void fmt_flush(struct fmt_buf *b)
{
	size_t off = 0;
	int saved = errno;
	while (off < b->len) {
		ssize_t w = write(b->fd, b->buf + off, b->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	b->len = 0;
	errno = saved;
}

size_t fmt_snprintf(char *dst, size_t cap, const char *f, ...)
{
	struct sink s = { .dst = dst, .cap = cap };
	va_list ap;
	va_start(ap, f);
	vformat(&s, f, ap);
	va_end(ap);
	if (cap)
		dst[s.len < cap ? s.len : cap - 1] = '\0';
	return s.len;
}

/* ---- text from outside ------------------------------------------------- */

/* Length (2..4) of the well-formed UTF-8 sequence that starts s, with n
 * bytes available, and its code point in *cp; 0 if s does not start one
 * (ASCII, a stray continuation byte, an overlong form, a surrogate, a
 * sequence cut short or above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1fu, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, c = s[0] & 0x0fu, min = 0x800;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07u, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3fu);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* The escaped form of the character at s (n > 0 bytes left) in out[4];
 * returns its length and sets *used to the bytes of s it stands for. */
static size_t escape_one(const unsigned char *s, size_t n, char out[4], size_t *used)
{
	uint32_t cp = 0;
	size_t len = s[0] >= 0x80 ? utf8_seq(s, n, &cp) : 0;

	*used = 1;
	/* Non-ASCII as it is, but not the C1 controls (U+0080..U+009F): some
	 * terminals obey them; they go out byte by byte as \xNN. */
	if (len && cp >= 0xa0) {
		memcpy(out, s, len);
		*used = len;
		return len;
	}
	if (s[0] == '\\' || s[0] == '\'') {
		out[0] = '\\';
		out[1] = (char)s[0];
		return 2;
	}
	if (s[0] >= 0x20 && s[0] < 0x7f) {
		out[0] = (char)s[0];
		return 1;
	}
	out[0] = '\\';
	out[1] = 'x';
	out[2] = "0123456789abcdef"[s[0] >> 4];
	out[3] = "0123456789abcdef"[s[0] & 15];
	return 4;
}

size_t fmt_escape(char *dst, size_t cap, const char *src, size_t n)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t total = 0, len = 0, used;
	char one[4];

	if (cap == 0)
		return 0;
	for (size_t i = 0; i < n; i += used)
		total += escape_one(s + i, n - i, one, &used);
	/* Whole escapes only; if it all does not fit, end in "...". */
	size_t room = total < cap ? cap - 1 : (cap > 4 ? cap - 4 : 0);
	for (size_t i = 0; i < n; i += used) {
		size_t k = escape_one(s + i, n - i, one, &used);
		if (len + k > room)
			break;
		memcpy(dst + len, one, k);
		len += k;
	}
	if (total >= cap && cap > 4) {
		memcpy(dst + len, "...", 3);
		len += 3;
	}
	dst[len] = '\0';
	return len;
}

void fmt_json_string(struct fmt_buf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);
	struct sink k = { .buf = b };
	uint32_t cp = 0;

	sink_put(&k, "\"", 1);
	for (size_t i = 0; i < n;) {
		size_t run = i;                 /* bytes that need no escape */
		while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
			run++;
		sink_put(&k, (const char *)s + i, run - i);
		i = run;
		if (i == n)
			break;
		size_t len = s[i] >= 0x80 ? utf8_seq(s + i, n - i, &cp) : 0;
		if (len) {
			sink_put(&k, (const char *)s + i, len);
			i += len;
		} else if (s[i] >= 0x80) {      /* not UTF-8: JSON text must be */
			sink_put(&k, "\\ufffd", 6);
			i++;
		} else if (s[i] == '"' || s[i] == '\\') {
			char e[2] = { '\\', (char)s[i] };
			sink_put(&k, e, 2);
			i++;
		} else {
			char e[6] = { '\\', 'u', '0', '0', "0123456789abcdef"[s[i] >> 4],
				      "0123456789abcdef"[s[i] & 15] };
			sink_put(&k, e, 6);
			i++;
		}
	}
	sink_put(&k, "\"", 1);
}

/* ---- messages -------------------------------------------------------------- */

static void vlog(const char *f, va_list ap)
{
	FMT_ON_STACK(b, 2, 512);
	struct sink s = { .buf = &b };
	sink_put(&s, "libmagpage: ", 12);
	vformat(&s, f, ap);
	sink_put(&s, "\n", 1);
	fmt_flush(&b);
}

void mp_log(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vlog(f, ap);
	va_end(ap);
}

void mp_fatal(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vlog(f, ap);
	va_end(ap);
	abort();
}
