/*
 * fmt.c — a private printf that never allocates.
 *
 * Diagnostics and statistics are written during preload start-up, inside
 * signal handlers and at exit, when stdio may not be usable and malloc
 * must not be called.  Supports %s %c %d %i %u %x %p %% with the l, ll and
 * z length modifiers, a field width and the '-' and '0' flags.
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
	struct sink s = { .buf = b };
	va_list ap;
	va_start(ap, f);
	vformat(&s, f, ap);
	va_end(ap);
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
