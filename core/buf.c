#include "core/buf.h"
#include "core/err.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : BUF_DEFAULT_MAX;
}

void buf_free(buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_free_wipe(buf *b)
{
	if (b->data)
		sodium_memzero(b->data, b->cap);
	buf_free(b);
}

void buf_reset(buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int buf_reserve(buf *b, size_t extra)
{
	size_t need, ncap;
	char *p;

	if (b->max == 0)
		b->max = BUF_DEFAULT_MAX;
	if (extra > b->max || b->len > b->max - extra)
		return err_set(ERR_TOOBIG, "buffer cap of %zu bytes reached", b->max);
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap *= 2;
	p = realloc(b->data, ncap);
	if (!p)
		return err_set(ERR_NOMEM, "out of memory growing a buffer to %zu bytes", ncap);
	b->data = p;
	b->cap = ncap;
	return 0;
}

int buf_append(buf *b, const void *data, size_t n)
{
	int rc = buf_reserve(b, n);
	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_puts(buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_putc(buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int buf_vprintf(buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n, rc;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return err_set(ERR_INVALID, "bad format string");
	rc = buf_reserve(b, (size_t)n);
	if (rc < 0)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_printf(buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

/* Length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when the bytes
 * there are not one (a stray continuation byte, an overlong form, a
 * surrogate, a code point above U+10FFFF, a sequence cut by the NUL). Reads
 * no byte past a NUL. */
static size_t utf8_seq_len(const unsigned char *p)
{
	unsigned c = p[0];

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;
	if ((p[1] & 0xc0) != 0x80)
		return 0;
	if (c < 0xe0)
		return 2;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0) || (p[2] & 0xc0) != 0x80)
		return 0;
	if (c < 0xf0)
		return 3;
	if (c > 0xf4 || (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90) ||
	    (p[3] & 0xc0) != 0x80)
		return 0;
	return 4;
}

int buf_put_json_str(buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *run = p;
	int rc = 0;

	for (; *p; p++) {
		char esc[7];
		size_t elen = 0;

		switch (*p) {
		case '"': esc[0] = '\\'; esc[1] = '"'; elen = 2; break;
		case '\\': esc[0] = '\\'; esc[1] = '\\'; elen = 2; break;
		case '\n': esc[0] = '\\'; esc[1] = 'n'; elen = 2; break;
		case '\r': esc[0] = '\\'; esc[1] = 'r'; elen = 2; break;
		case '\t': esc[0] = '\\'; esc[1] = 't'; elen = 2; break;
		default:
			if (*p < 0x20) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 15];
				elen = 6;
			} else if (*p >= 0x80) {
				size_t n = utf8_seq_len(p);

				if (n > 0) {
					p += n - 1;
					continue;
				}
				memcpy(esc, "\\ufffd", 6);
				elen = 6;
			}
		}
		if (!elen)
			continue;
		rc = buf_append(b, run, (size_t)(p - run));
		if (rc == 0)
			rc = buf_append(b, esc, elen);
		if (rc < 0)
			return rc;
		run = p + 1;
	}
	return buf_append(b, run, (size_t)(p - run));
}

const char *buf_cstr(const buf *b)
{
	return b->data ? b->data : "";
}

char *buf_steal(buf *b)
{
	char *p = b->data;

	if (!p)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
