/* jsonx — the lenient decoder of outside JSON (core/jsonx.h). */
#include "core/jsonx.h"
#include "core/buf.h"
#include "core/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char REPLACEMENT[] = "\xef\xbf\xbd"; /* U+FFFD in UTF-8 */

/* Where a repaired copy is written; `out` NULL: only count. */
typedef struct fixer {
	char *out;
	size_t n;
	int repairs;
} fixer;

static void put(fixer *f, const char *s, size_t n)
{
	if (f->out)
		memcpy(f->out + f->n, s, n);
	f->n += n;
}

/* The code unit of "\\uXXXX" at p[0..5], or -1 when it is not one. */
static long escape_at(const char *p, size_t left)
{
	long v = 0;

	if (left < 6 || p[0] != '\\' || p[1] != 'u')
		return -1;
	for (int i = 2; i < 6; i++) {
		int h = util_hexval(p[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* The length of the well-formed UTF-8 sequence at s[0..left), or 0 when it
 * is ill-formed; *bad then gets the length of its maximal ill-formed
 * subpart (at least 1), which one U+FFFD replaces. */
static size_t utf8_seq(const unsigned char *s, size_t left, size_t *bad)
{
	unsigned char b = s[0], lo = 0x80, hi = 0xbf;
	size_t need;

	*bad = 1;
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		need = 1;
	else if (b >= 0xe0 && b <= 0xef) {
		need = 2;
		if (b == 0xe0)
			lo = 0xa0;
		else if (b == 0xed)
			hi = 0x9f; /* no UTF-16 surrogates encoded in UTF-8 */
	} else if (b >= 0xf0 && b <= 0xf4) {
		need = 3;
		if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else {
		return 0;
	}
	for (size_t k = 1; k <= need; k++) {
		unsigned char c = k < left ? s[k] : 0;
		if (k >= left || c < lo || c > hi) {
			*bad = k;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

/* One pass over the text: copies it (when f->out is set) with the repairs
 * of jx_loadb_lenient, and counts them. */
static void repair(fixer *f, const char *data, size_t len)
{
	const unsigned char *s = (const unsigned char *)data;
	int in_string = 0;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n, bad;

		if (c >= 0x80) {
			n = utf8_seq(s + i, len - i, &bad);
			if (n > 0) {
				put(f, data + i, n);
				i += n;
			} else {
				put(f, REPLACEMENT, 3);
				f->repairs++;
				i += bad;
			}
			continue;
		}
		if (!in_string) {
			if (c == '"')
				in_string = 1;
			if (c == 0) {
				/* a raw NUL outside a string: not JSON, and the parser
				 * would stop there; a space keeps the rest readable */
				put(f, " ", 1);
				f->repairs++;
			} else {
				put(f, data + i, 1);
			}
			i++;
			continue;
		}
		if (c == '"') {
			in_string = 0;
			put(f, data + i, 1);
			i++;
			continue;
		}
		if (c < 0x20) {
			char esc[7] = "\\u00";
			static const char hex[] = "0123456789abcdef";
			if (c == 0) {
				put(f, "\\ufffd", 6);
			} else {
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				put(f, esc, 6);
			}
			f->repairs++;
			i++;
			continue;
		}
		if (c != '\\') {
			put(f, data + i, 1);
			i++;
			continue;
		}
		{
			long u = escape_at(data + i, len - i);
			if (u < 0) {
				/* \\n, \\", ... (or a broken escape, left to the parser) */
				put(f, data + i, i + 1 < len ? 2 : 1);
				i += i + 1 < len ? 2 : 1;
				continue;
			}
			if (u >= 0xd800 && u <= 0xdbff) {
				long lo = escape_at(data + i + 6, len - i - 6);
				if (lo >= 0xdc00 && lo <= 0xdfff) {
					put(f, data + i, 12);
					i += 12;
					continue;
				}
			}
			if (u == 0 || (u >= 0xd800 && u <= 0xdfff)) {
				put(f, "\\ufffd", 6);
				f->repairs++;
			} else {
				put(f, data + i, 6);
			}
			i += 6;
		}
	}
}

json_t *jx_loadb_lenient(const char *data, size_t len, size_t flags, json_error_t *err,
			 int *out_repaired)
{
	fixer count = {NULL, 0, 0}, copy = {NULL, 0, 0};
	json_t *j;

	if (out_repaired)
		*out_repaired = 0;
	if (!data)
		data = "";
	repair(&count, data, len);
	if (count.repairs == 0)
		return json_loadb(data, len, flags, err);
	/* a repair is at most 6 bytes for 1 */
	copy.out = malloc(count.n + 1);
	if (!copy.out) {
		if (err) {
			memset(err, 0, sizeof(*err));
			snprintf(err->text, sizeof(err->text), "out of memory repairing a JSON text");
		}
		return NULL;
	}
	repair(&copy, data, len);
	j = json_loadb(copy.out, copy.n, flags, err);
	free(copy.out);
	if (out_repaired)
		*out_repaired = copy.repairs;
	return j;
}

int jx_utf8_lossy(buf *out, const char *data, size_t len)
{
	const unsigned char *s = (const unsigned char *)data;
	size_t i = 0;
	int rc = 0;

	while (rc == 0 && i < len) {
		size_t n, bad, run = 0;

		/* a run of plain bytes at once */
		while (i + run < len && s[i + run] > 0 && s[i + run] < 0x80)
			run++;
		if (run) {
			rc = buf_append(out, data + i, run);
			i += run;
			continue;
		}
		if (s[i] == 0) {
			rc = buf_append(out, REPLACEMENT, 3);
			i++;
			continue;
		}
		n = utf8_seq(s + i, len - i, &bad);
		if (n > 0) {
			rc = buf_append(out, data + i, n);
			i += n;
		} else {
			rc = buf_append(out, REPLACEMENT, 3);
			i += bad;
		}
	}
	return rc;
}

/* --- jx_pick --- */

void jx_pick_init(jx_pick *p, const char *field)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->field, sizeof(p->field), "%s", field ? field : "");
}

static void put_cp(buf *out, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(out, u, n);
}

/* One character of the captured value after a backslash (or of a \u). */
static void pick_escape(jx_pick *p, char c, buf *out)
{
	if (p->u_len > 0) {
		p->u[p->u_len++] = c;
		if (p->u_len < 5)
			return;
		{
			unsigned cp = 0;
			for (int i = 1; i < 5; i++) {
				int d = util_hexval(p->u[i]);
				cp = cp * 16 + (unsigned)(d < 0 ? 0 : d);
			}
			p->u_len = 0;
			p->esc = 0;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				p->hi = cp;
				return;
			}
			if (cp >= 0xdc00 && cp <= 0xdfff && p->hi) {
				cp = 0x10000 + ((p->hi - 0xd800) << 10) + (cp - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				cp = 0xfffd;
			}
			if (p->hi && cp < 0x10000)
				put_cp(out, 0xfffd);
			p->hi = 0;
			put_cp(out, cp);
		}
		return;
	}
	switch (c) {
	case 'u':
		p->u[0] = 'u';
		p->u_len = 1;
		return;
	case 'n': buf_putc(out, '\n'); break;
	case 't': buf_putc(out, '\t'); break;
	case 'r': buf_putc(out, '\r'); break;
	case 'b': buf_putc(out, '\b'); break;
	case 'f': buf_putc(out, '\f'); break;
	default: buf_putc(out, c); break;
	}
	p->esc = 0;
}

int jx_pick_feed(jx_pick *p, const char *data, size_t len, buf *out)
{
	size_t before = out->len;

	for (size_t i = 0; i < len && !p->done; i++) {
		char c = data[i];

		if (p->in_str) {
			if (p->capture && p->esc) {
				pick_escape(p, c, out);
				continue;
			}
			if (p->esc) {
				p->esc = 0;
				if (p->is_key && p->key_len + 1 < sizeof(p->key))
					p->key[p->key_len++] = c;
				continue;
			}
			if (c == '\\') {
				p->esc = 1;
				continue;
			}
			if (c == '"') {
				p->in_str = 0;
				if (p->capture) {
					p->capture = 0;
					p->done = 1;
				} else if (p->is_key) {
					p->key[p->key_len] = '\0';
					p->matched = strcmp(p->key, p->field) == 0;
					p->is_key = 0;
				}
				continue;
			}
			if (p->capture) {
				if (p->hi) {
					put_cp(out, 0xfffd);
					p->hi = 0;
				}
				buf_putc(out, c);
			} else if (p->is_key && p->key_len + 1 < sizeof(p->key)) {
				p->key[p->key_len++] = c;
			}
			continue;
		}
		switch (c) {
		case '{':
		case '[':
			p->depth++;
			if (p->depth == 1 && c == '{')
				p->want_key = 1;
			p->matched = 0;
			break;
		case '}':
		case ']':
			p->depth--;
			break;
		case ',':
			if (p->depth == 1) {
				p->want_key = 1;
				p->matched = 0;
			}
			break;
		case ':':
			break;
		case '"':
			p->in_str = 1;
			p->esc = 0;
			if (p->depth == 1 && p->want_key) {
				p->is_key = 1;
				p->want_key = 0;
				p->key_len = 0;
			} else if (p->depth == 1 && p->matched) {
				p->capture = 1;
			}
			break;
		default:
			if (p->depth == 1 && p->matched && c != ' ' && c != '\n' && c != '\t' &&
			    c != '\r')
				p->matched = 0; /* the field's value is no string */
			break;
		}
	}
	return (int)(out->len - before);
}
