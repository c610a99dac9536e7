#include "bot/text.h"
#include "core/err.h"
#include "core/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 4096

int tg_html_escape(buf *out, const char *s, size_t n)
{
	size_t i, from = 0;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		const char *rep = NULL;
		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		default: break;
		}
		if (!rep)
			continue;
		rc = buf_append(out, s + from, i - from);
		if (rc == 0)
			rc = buf_puts(out, rep);
		from = i + 1;
	}
	if (rc == 0)
		rc = buf_append(out, s + from, n - from);
	if (out->data == NULL && rc == 0)
		rc = buf_puts(out, "");
	return rc;
}

/* Length in bytes of the UTF-8 sequence starting at s[0] (1 for a bad
 * byte), never past `left`; *units gets its UTF-16 length. */
static size_t cp_len(const unsigned char *s, size_t left, size_t *units)
{
	size_t len = 1;

	*units = 1;
	if (s[0] >= 0xf0 && s[0] < 0xf8)
		len = 4;
	else if (s[0] >= 0xe0)
		len = 3;
	else if (s[0] >= 0xc0)
		len = 2;
	if (len > left)
		return 1;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 1;
	if (len == 4)
		*units = 2;
	return len;
}

size_t tg_utf16_len(const char *s, size_t n)
{
	size_t units = 0, i = 0, u;

	while (i < n) {
		i += cp_len((const unsigned char *)s + i, n - i, &u);
		units += u;
	}
	return units;
}

/* At s[0] == '&': the entity's length in bytes when it is one ("&amp;",
 * "&#128640;", "&#x41;" with at least one digit), else 0. */
static size_t entity_len(const char *s)
{
	size_t i = 1, from;

	if (s[i] == '#') {
		i++;
		if (s[i] == 'x' || s[i] == 'X')
			i++;
	}
	from = i;
	while (i < 12 && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
			  (s[i] >= '0' && s[i] <= '9')))
		i++;
	return s[i] == ';' && i > from ? i + 1 : 0;
}

/* The code point a numeric entity (s[0] == '&', s[1] == '#') stands for;
 * U+FFFD for one no text may hold (NUL, a surrogate, past U+10FFFF). */
static unsigned long entity_cp(const char *s)
{
	int hex = s[2] == 'x' || s[2] == 'X';
	unsigned long cp = strtoul(s + 2 + hex, NULL, hex ? 16 : 10);

	if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0xfffd;
	return cp;
}

/* What an entity of k bytes at s counts as, in UTF-16 units: a numeric
 * one as its character, a known named one as one, any other as its own
 * text (tg_html_to_plain keeps it as it is). */
static size_t entity_units(const char *s, size_t k)
{
	if (s[1] == '#')
		return entity_cp(s) >= 0x10000 ? 2 : 1;
	if (strncmp(s, "&amp;", 5) == 0 || strncmp(s, "&lt;", 4) == 0 ||
	    strncmp(s, "&gt;", 4) == 0 || strncmp(s, "&quot;", 6) == 0)
		return 1;
	return tg_utf16_len(s, k);
}

/* At s[0] == '<': the tag's length in bytes up to and with '>', else 0
 * (also when another '<' comes first). Looks no further than that '<', so
 * a text of many '<' is read once, not once per '<'. */
static size_t tag_len(const char *s)
{
	const char *e = strpbrk(s + 1, "<>");

	if (!e || *e != '>')
		return 0;
	return (size_t)(e - s) + 1;
}

/* The length of the tag at s ('<' ... '>'), 0 when none starts there. */
static size_t tag_at(const char *s)
{
	return *s == '<' ? tag_len(s) : 0;
}

/* The length of the entity at s ('&' ... ';'), 0 when none starts there. */
static size_t entity_at(const char *s)
{
	return *s == '&' ? entity_len(s) : 0;
}

size_t tg_html_visible_len(const char *html)
{
	size_t n = strlen(html), i = 0, units = 0, k, e, u;

	while (i < n) {
		k = tag_at(html + i);
		e = k > 0 ? 0 : entity_at(html + i);
		if (k > 0) {
			i += k;
		} else if (e > 0) {
			units += entity_units(html + i, e);
			i += e;
		} else {
			i += cp_len((const unsigned char *)html + i, n - i, &u);
			units += u;
		}
	}
	return units;
}

void tg_parts_free(tg_parts *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

static int parts_add(tg_parts *p, buf *b)
{
	char **v = realloc(p->v, sizeof(*v) * (size_t)(p->n + 1));
	char *s;

	if (!v)
		return err_set(ERR_NOMEM, "out of memory");
	p->v = v;
	s = buf_steal(b);
	if (!s)
		s = strdup("");
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	p->v[p->n++] = s;
	return 0;
}

/* Plain text: cut at the last newline in reach, else the last space, else
 * at a character boundary; each part escaped. */
static int split_plain(const char *text, size_t limit, tg_parts *out)
{
	size_t n = strlen(text), start = 0;
	int rc = 0;

	while (start < n && rc == 0) {
		size_t i = start, units = 0, last_nl = 0, last_sp = 0, cut, next, u, k;
		buf b;

		while (i < n) {
			k = cp_len((const unsigned char *)text + i, n - i, &u);
			if (units + u > limit && units > 0) /* a part holds at least one character */
				break;
			if (text[i] == '\n')
				last_nl = i;
			else if (text[i] == ' ')
				last_sp = i;
			units += u;
			i += k;
		}
		if (i >= n) {
			cut = n;
			next = n;
		} else if (last_nl > start) {
			cut = last_nl;
			next = last_nl + 1;
		} else if (last_sp > start) {
			cut = last_sp;
			next = last_sp + 1;
		} else {
			cut = i;
			next = i;
		}
		buf_init(&b, 0);
		rc = tg_html_escape(&b, text + start, cut - start);
		if (rc == 0)
			rc = parts_add(out, &b);
		buf_free(&b);
		start = next;
	}
	return rc;
}

/* --- HTML --- */

typedef struct open_tag {
	const char *at; /* the opening tag in the source */
	size_t len;
	char name[24];
} open_tag;

typedef struct tag_stack {
	open_tag v[32];
	int n;
} tag_stack;

static void tag_name(const char *tag, size_t len, char *out, size_t cap, int *closing)
{
	size_t i = 1, k = 0;

	*closing = tag[1] == '/';
	if (*closing)
		i++;
	while (i < len && k + 1 < cap && tag[i] != ' ' && tag[i] != '>' && tag[i] != '/' &&
	       tag[i] != '\n' && tag[i] != '\t') {
		char c = tag[i++];
		out[k++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[k] = '\0';
	utf8_fit(out); /* a long name is cut, never inside a character */
}

static void stack_apply(tag_stack *st, const char *tag, size_t len)
{
	char name[24];
	int closing;

	tag_name(tag, len, name, sizeof(name), &closing);
	if (!closing) {
		if (st->n < (int)(sizeof(st->v) / sizeof(st->v[0]))) {
			st->v[st->n].at = tag;
			st->v[st->n].len = len;
			memcpy(st->v[st->n].name, name, sizeof(name));
			st->n++;
		}
		return;
	}
	for (int i = st->n - 1; i >= 0; i--)
		if (strcmp(st->v[i].name, name) == 0) {
			st->n = i;
			return;
		}
}

static int split_html(const char *html, size_t limit, tg_parts *out)
{
	size_t n = strlen(html), start = 0;
	tag_stack st = {.n = 0};
	int rc = 0;

	while (start < n && rc == 0) {
		tag_stack at_start = st, at_cut;
		size_t i = start, units = 0, cut = 0, next = 0, k, u, last_nl = 0, last_sp = 0;
		tag_stack st_nl = st, st_sp = st;
		int have_nl = 0, have_sp = 0;
		buf b;

		while (i < n) {
			k = tag_at(html + i);
			if (k > 0) {
				stack_apply(&st, html + i, k);
				i += k;
				continue;
			}
			k = entity_at(html + i);
			if (k > 0)
				u = entity_units(html + i, k);
			else
				k = cp_len((const unsigned char *)html + i, n - i, &u);
			if (units + u > limit && units > 0) /* a part holds at least one character */
				break;
			if (html[i] == '\n') {
				last_nl = i;
				st_nl = st;
				have_nl = 1;
			} else if (html[i] == ' ') {
				last_sp = i;
				st_sp = st;
				have_sp = 1;
			}
			units += u;
			i += k;
		}
		if (i >= n) {
			cut = next = n;
			at_cut = st;
		} else if (have_nl && last_nl > start) {
			cut = last_nl;
			next = last_nl + 1;
			at_cut = st_nl;
		} else if (have_sp && last_sp > start) {
			cut = last_sp;
			next = last_sp + 1;
			at_cut = st_sp;
		} else {
			cut = next = i;
			at_cut = st;
		}
		buf_init(&b, 0);
		for (int t = 0; t < at_start.n && rc == 0; t++)
			rc = buf_append(&b, at_start.v[t].at, at_start.v[t].len);
		if (rc == 0)
			rc = buf_append(&b, html + start, cut - start);
		for (int t = at_cut.n - 1; t >= 0 && rc == 0 && next < n; t--)
			rc = buf_printf(&b, "</%s>", at_cut.v[t].name);
		if (rc == 0)
			rc = parts_add(out, &b);
		buf_free(&b);
		st = at_cut;
		start = next;
	}
	return rc;
}

int tg_split(const char *text, int html, size_t limit, tg_parts *out)
{
	int rc;

	out->v = NULL;
	out->n = 0;
	if (!text || !*text)
		return 0;
	if (limit == 0)
		limit = DEFAULT_LIMIT;
	rc = html ? split_html(text, limit, out) : split_plain(text, limit, out);
	if (rc < 0)
		tg_parts_free(out);
	return rc;
}

static int put_cp(buf *b, unsigned long cp)
{
	char s[4];
	size_t n;

	if (cp < 0x80) {
		s[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		s[0] = (char)(0xc0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		s[0] = (char)(0xe0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else if (cp < 0x110000) {
		s[0] = (char)(0xf0 | (cp >> 18));
		s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	} else {
		return buf_putc(b, '?');
	}
	return buf_append(b, s, n);
}

char *tg_html_to_plain(const char *html)
{
	size_t n = strlen(html), i = 0, k, ent;
	buf b;
	int rc = 0;

	buf_init(&b, 0);
	while (i < n && rc == 0) {
		k = tag_at(html + i);
		ent = k > 0 ? 0 : entity_at(html + i);
		if (k > 0) {
			i += k;
		} else if (ent > 0) {
			const char *e = html + i + 1;

			k = ent;
			if (strncmp(e, "amp;", 4) == 0)
				rc = buf_putc(&b, '&');
			else if (strncmp(e, "lt;", 3) == 0)
				rc = buf_putc(&b, '<');
			else if (strncmp(e, "gt;", 3) == 0)
				rc = buf_putc(&b, '>');
			else if (strncmp(e, "quot;", 5) == 0)
				rc = buf_putc(&b, '"');
			else if (e[0] == '#')
				rc = put_cp(&b, entity_cp(html + i));
			else
				rc = buf_append(&b, html + i, k);
			i += k;
		} else {
			rc = buf_putc(&b, html[i]);
			i++;
		}
	}
	if (rc < 0) {
		buf_free(&b);
		return NULL;
	}
	if (!b.data)
		return strdup("");
	return buf_steal(&b);
}

int tg_truncate(buf *out, const char *s, size_t max_chars)
{
	size_t n = strlen(s), i = 0, units = 0, u, k, fit = 0;

	/* fit: the end of the longest prefix that leaves a unit for the "…" */
	while (i < n) {
		k = cp_len((const unsigned char *)s + i, n - i, &u);
		if (units + u > max_chars)
			break;
		units += u;
		i += k;
		if (units < max_chars)
			fit = i;
	}
	if (i >= n)
		return buf_append(out, s, n);
	if (buf_append(out, s, fit) < 0)
		return ERR_TOOBIG;
	return buf_puts(out, "…");
}
