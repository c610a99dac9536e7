#include "secrets/redact.h"
#include "core/err.h"
#include "core/redact.h"
#include "core/utf8.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 128
#define MARK_PREFIX "[redacted:"
#define FIRST4_SHIFT 18 /* a 2^18-bit (32 KiB) prefilter: fits the L1/L2 cache */

/* A secret the filter was taught: its value in locked memory. */
typedef struct source {
	char name[NAME_MAX_LEN + 1];
	unsigned char *value; /* sodium_malloc */
	size_t len;
} source;

/* One form of one value to look for. */
typedef struct pattern {
	size_t off;   /* into the table's bytes */
	size_t len;
	int src;      /* index of its source (for the name) */
} pattern;

/* Patterns grouped by their first 8 bytes, longest first within a group. */
typedef struct slot {
	uint64_t prefix;
	uint32_t start, count; /* count 0: empty slot */
} slot;

/* An immutable lookup table, swapped whole when values are added. */
typedef struct table {
	unsigned char *bytes;  /* sodium_malloc: every form, back to back */
	size_t nbytes;
	pattern *pats;         /* sorted by prefix, then length descending */
	size_t npats;
	slot *slots;           /* sodium_malloc; power-of-two open addressing */
	size_t nslots;
	uint8_t *first4;       /* sodium_malloc; FIRST4_BITS-bit set of hashed first 4 bytes */
	char (*names)[NAME_MAX_LEN + 1]; /* copied from the sources */
} table;

static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;
static table *g_table;                 /* read under g_lock */
static pthread_mutex_t g_src_mu = PTHREAD_MUTEX_INITIALIZER; /* serialises writers */
static source *g_src;
static size_t g_nsrc;
static int g_hold;     /* > 0: adds wait for sec_redact_batch_end to rebuild */
static int g_dirty;    /* sources changed while held */

/* --- building a table --- */

static void table_free(table *t)
{
	if (!t)
		return;
	if (t->bytes)
		sodium_free(t->bytes);
	if (t->slots)
		sodium_free(t->slots);
	if (t->first4)
		sodium_free(t->first4);
	free(t->pats);
	free(t->names);
	free(t);
}

/* A growing list of forms while a table is built; `bytes` is locked. */
typedef struct forms {
	unsigned char *bytes;
	size_t nbytes, capbytes;
	pattern *pats;
	size_t npats, cappats;
} forms;

static int forms_grow(forms *f, size_t extra)
{
	if (f->nbytes + extra > f->capbytes) {
		size_t ncap = f->capbytes ? f->capbytes : 4096;
		unsigned char *nb;
		while (ncap < f->nbytes + extra)
			ncap *= 2;
		nb = sodium_malloc(ncap);
		if (!nb)
			return ERR_NOMEM;
		if (f->bytes) {
			memcpy(nb, f->bytes, f->nbytes);
			sodium_free(f->bytes);
		}
		f->bytes = nb;
		f->capbytes = ncap;
	}
	if (f->npats == f->cappats) {
		size_t ncap = f->cappats ? f->cappats * 2 : 64;
		pattern *np = realloc(f->pats, ncap * sizeof(*np));
		if (!np)
			return ERR_NOMEM;
		f->pats = np;
		f->cappats = ncap;
	}
	return 0;
}

/* Adds one form unless it is too short (duplicates go when sorted). */
static int forms_add(forms *f, const void *p, size_t n, int src)
{
	if (n < SEC_REDACT_MIN)
		return 0;
	if (forms_grow(f, n) < 0)
		return ERR_NOMEM;
	memcpy(f->bytes + f->nbytes, p, n);
	f->pats[f->npats].off = f->nbytes;
	f->pats[f->npats].len = n;
	f->pats[f->npats].src = src;
	f->npats++;
	f->nbytes += n;
	return 0;
}

/* Scratch memory for one derived form, locked. */
typedef struct scratch {
	char *p;
	size_t cap;
} scratch;

static int scratch_need(scratch *s, size_t n)
{
	char *np;

	if (n <= s->cap)
		return 0;
	np = sodium_malloc(n);
	if (!np)
		return ERR_NOMEM;
	if (s->p)
		sodium_free(s->p);
	s->p = np;
	s->cap = n;
	return 0;
}

/* Writes v[0..n) escaped for a JSON string into out (room for 12 bytes
 * per byte of v) in one of 8 styles: bit 0 writes \b and \f short, bit 1
 * upper-case hex, bit 2 every character past ASCII as \uXXXX (a surrogate
 * pair past U+FFFF). Returns the length. */
static size_t json_form(char *out, const unsigned char *v, size_t n, int style)
{
	const char *hex = style & 2 ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t o = 0;

	for (size_t k = 0; k < n;) {
		unsigned char ch = v[k];
		size_t len = ch >= 0x80 && (style & 4) ? utf8_seq((const char *)v + k, n - k) : 0;

		if (len > 1) {
			unsigned long cp = ch & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
			for (size_t i = 1; i < len; i++)
				cp = cp << 6 | (v[k + i] & 0x3f);
			if (cp >= 0x10000) {
				unsigned long hi = 0xd800 + ((cp - 0x10000) >> 10);
				unsigned long lo = 0xdc00 + ((cp - 0x10000) & 0x3ff);
				o += (size_t)snprintf(out + o, 13, style & 2 ? "\\u%04lX\\u%04lX"
									     : "\\u%04lx\\u%04lx", hi, lo);
			} else {
				o += (size_t)snprintf(out + o, 7, style & 2 ? "\\u%04lX" : "\\u%04lx",
						      cp);
			}
			k += len;
			continue;
		}
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch == '\n' || ch == '\r' || ch == '\t' ||
			   ((style & 1) && (ch == '\b' || ch == '\f'))) {
			out[o++] = '\\';
			out[o++] = ch == '\n' ? 'n' : ch == '\r' ? 'r' : ch == '\t' ? 't'
				 : ch == '\b' ? 'b' : 'f';
		} else if (ch < 0x20) {
			out[o++] = '\\';
			out[o++] = 'u';
			out[o++] = '0';
			out[o++] = '0';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		} else {
			out[o++] = (char)ch;
		}
		k++;
	}
	return o;
}

static const int b64_variants[] = {
	sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
	sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};

/* Adds every form of one value. */
static int add_forms(forms *f, scratch *s, const unsigned char *v, size_t n, int src)
{
	static const char hexl[] = "0123456789abcdef", hexu[] = "0123456789ABCDEF";
	size_t k;
	int rc = forms_add(f, v, n, src);

	/* base64, whole value, four variants */
	for (size_t i = 0; rc == 0 && i < 4; i++) {
		size_t cap = sodium_base64_ENCODED_LEN(n, b64_variants[i]);
		rc = scratch_need(s, cap);
		if (rc == 0) {
			sodium_bin2base64(s->p, cap, v, n, b64_variants[i]);
			rc = forms_add(f, s->p, strlen(s->p), src);
		}
	}
	/* base64 of the value inside a longer text: the characters that depend
	 * only on the value, for each of the three byte offsets */
	for (size_t skip = 0; rc == 0 && skip < 3 && skip < n; skip++) {
		size_t whole = (n - skip) / 3 * 3;
		if (whole == 0 || (skip == 0 && whole == n))
			continue; /* offset 0 with no tail is the whole value, added above */
		for (size_t i = 1; rc == 0 && i < 4; i += 2) { /* the unpadded variants */
			size_t cap = sodium_base64_ENCODED_LEN(whole, b64_variants[i]);
			rc = scratch_need(s, cap);
			if (rc == 0) {
				sodium_bin2base64(s->p, cap, v + skip, whole, b64_variants[i]);
				rc = forms_add(f, s->p, strlen(s->p), src);
			}
		}
	}
	/* hex, lower and upper */
	if (rc == 0)
		rc = scratch_need(s, 2 * n + 1);
	for (int upper = 0; rc == 0 && upper < 2; upper++) {
		const char *h = upper ? hexu : hexl;
		for (k = 0; k < n; k++) {
			s->p[2 * k] = h[v[k] >> 4];
			s->p[2 * k + 1] = h[v[k] & 15];
		}
		rc = forms_add(f, s->p, 2 * n, src);
	}
	/* JSON string escaping (as in a request body, a JSON log line or a
	 * transcript), in each way encoders write it: \b and \f short or as
	 * \u0008, hex digits lower or upper case (ours and Python's, jansson's),
	 * characters past ASCII as they are or as \uXXXX (JSON_ENSURE_ASCII) */
	if (rc == 0)
		rc = scratch_need(s, 12 * n + 1);
	for (int style = 0; rc == 0 && style < 8; style++)
		rc = forms_add(f, s->p, json_form(s->p, v, n, style), src);
	/* percent-encoding (in a URL or a form body) */
	if (rc == 0)
		rc = scratch_need(s, 3 * n + 1);
	if (rc == 0) {
		size_t o = 0;
		for (k = 0; k < n; k++) {
			unsigned char ch = v[k];
			if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
			    ch == '~') {
				s->p[o++] = (char)ch;
			} else {
				s->p[o++] = '%';
				s->p[o++] = hexu[ch >> 4];
				s->p[o++] = hexu[ch & 15];
			}
		}
		rc = forms_add(f, s->p, o, src);
	}
	return rc;
}

static uint64_t load8(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t first4_of(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return (v * 2654435761u) >> (32 - FIRST4_SHIFT);
}

static size_t slot_of(uint64_t prefix, size_t nslots)
{
	return (size_t)((prefix * 0x9E3779B97F4A7C15ULL) >> 17) & (nslots - 1);
}

/* For qsort_r: by first 8 bytes, then longest first, then by content, so
 * that equal forms end up side by side. */
static int cmp_pattern(const void *a, const void *b, void *bytes)
{
	const unsigned char *base = bytes;
	const pattern *x = a, *y = b;
	int c = memcmp(base + x->off, base + y->off, 8);

	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? 1 : -1;
	c = memcmp(base + x->off, base + y->off, x->len);
	if (c)
		return c;
	return x->src - y->src;
}

/* Builds a table from the sources. Called with g_src_mu held. */
static int table_build(table **out)
{
	forms f = {0};
	scratch s = {0};
	table *t = calloc(1, sizeof(*t));
	int rc = t ? 0 : ERR_NOMEM;
	size_t groups = 0;

	for (size_t i = 0; rc == 0 && i < g_nsrc; i++)
		rc = add_forms(&f, &s, g_src[i].value, g_src[i].len, (int)i);
	if (rc < 0)
		goto done;
	t->names = calloc(g_nsrc ? g_nsrc : 1, sizeof(*t->names));
	if (!t->names) {
		rc = ERR_NOMEM;
		goto done;
	}
	for (size_t i = 0; i < g_nsrc; i++)
		memcpy(t->names[i], g_src[i].name, sizeof(t->names[i]));
	if (f.npats)
		qsort_r(f.pats, f.npats, sizeof(*f.pats), cmp_pattern, f.bytes);
	/* drop repeated forms (the bytes stay; only the index shrinks) */
	{
		size_t k = 0;
		for (size_t i = 0; i < f.npats; i++) {
			if (k > 0 && f.pats[k - 1].len == f.pats[i].len &&
			    memcmp(f.bytes + f.pats[k - 1].off, f.bytes + f.pats[i].off,
				   f.pats[i].len) == 0)
				continue;
			f.pats[k++] = f.pats[i];
		}
		f.npats = k;
	}
	for (size_t i = 0; i < f.npats; i++)
		if (i == 0 || memcmp(f.bytes + f.pats[i].off, f.bytes + f.pats[i - 1].off, 8) != 0)
			groups++;
	t->nslots = 16;
	while (t->nslots < groups * 2)
		t->nslots *= 2;
	t->slots = sodium_malloc(t->nslots * sizeof(slot));
	t->first4 = sodium_malloc((1u << FIRST4_SHIFT) / 8);
	if (!t->slots || !t->first4) {
		rc = ERR_NOMEM;
		goto done;
	}
	memset(t->slots, 0, t->nslots * sizeof(slot));
	memset(t->first4, 0, (1u << FIRST4_SHIFT) / 8);
	for (size_t i = 0; i < f.npats;) {
		const unsigned char *p = f.bytes + f.pats[i].off;
		uint64_t pre = load8(p);
		size_t j = i + 1, h;
		uint32_t first = first4_of(p);

		while (j < f.npats && memcmp(f.bytes + f.pats[j].off, p, 8) == 0)
			j++;
		h = slot_of(pre, t->nslots);
		while (t->slots[h].count)
			h = (h + 1) & (t->nslots - 1);
		t->slots[h].prefix = pre;
		t->slots[h].start = (uint32_t)i;
		t->slots[h].count = (uint32_t)(j - i);
		t->first4[first >> 3] |= (uint8_t)(1u << (first & 7));
		i = j;
	}
	t->bytes = f.bytes;
	t->nbytes = f.nbytes;
	t->pats = f.pats;
	t->npats = f.npats;
	f.bytes = NULL;
	f.pats = NULL;
	*out = t;
	t = NULL;
done:
	if (f.bytes)
		sodium_free(f.bytes);
	free(f.pats);
	if (s.p)
		sodium_free(s.p);
	table_free(t);
	return rc;
}

/* --- the public side --- */

static void redact_hook(buf *b)
{
	sec_redact_buf(b);
}

void sec_redact_install(void)
{
	redact_set(redact_hook);
}

/* Publishes a new table. Called with g_src_mu held. */
static void swap_in(table *t)
{
	table *old;

	pthread_rwlock_wrlock(&g_lock);
	old = g_table;
	g_table = t;
	pthread_rwlock_unlock(&g_lock);
	table_free(old);
}

void sec_redact_batch_begin(void)
{
	pthread_mutex_lock(&g_src_mu);
	g_hold++;
	pthread_mutex_unlock(&g_src_mu);
}

int sec_redact_batch_end(void)
{
	table *t = NULL;
	int rc = 0;

	pthread_mutex_lock(&g_src_mu);
	if (g_hold > 0)
		g_hold--;
	if (g_hold == 0 && g_dirty) {
		rc = table_build(&t);
		if (rc < 0) {
			rc = err_set(ERR_NOMEM, "out of locked memory for the redaction filter");
		} else {
			g_dirty = 0;
			swap_in(t);
		}
	}
	pthread_mutex_unlock(&g_src_mu);
	return rc;
}

int sec_redact_add(const char *name, const void *value, size_t len)
{
	source *ns;
	table *t = NULL;
	int rc = 0;

	if (len < SEC_REDACT_MIN)
		return err_set(ERR_INVALID, "a value shorter than %d bytes cannot be redacted",
			       SEC_REDACT_MIN);
	pthread_mutex_lock(&g_src_mu);
	for (size_t i = 0; i < g_nsrc; i++)
		if (g_src[i].len == len && sodium_memcmp(g_src[i].value, value, len) == 0)
			goto done; /* known already */
	ns = realloc(g_src, (g_nsrc + 1) * sizeof(*ns));
	if (!ns) {
		rc = err_set(ERR_NOMEM, "out of memory teaching the redaction filter");
		goto done;
	}
	g_src = ns;
	ns = &g_src[g_nsrc];
	ns->value = sodium_malloc(len);
	if (!ns->value) {
		rc = err_set(ERR_NOMEM, "out of locked memory for the redaction filter");
		goto done;
	}
	memcpy(ns->value, value, len);
	ns->len = len;
	snprintf(ns->name, sizeof(ns->name), "%s", name && *name ? name : "secret");
	g_nsrc++;
	if (g_hold > 0) {
		g_dirty = 1;
		goto done;
	}
	rc = table_build(&t);
	if (rc < 0) {
		g_nsrc--;
		sodium_free(g_src[g_nsrc].value);
		rc = err_set(ERR_NOMEM, "out of locked memory for the redaction filter");
		goto done;
	}
	swap_in(t);
done:
	pthread_mutex_unlock(&g_src_mu);
	return rc;
}

void sec_redact_clear(void)
{
	pthread_mutex_lock(&g_src_mu);
	swap_in(NULL);
	g_dirty = 0;
	for (size_t i = 0; i < g_nsrc; i++)
		sodium_free(g_src[i].value);
	free(g_src);
	g_src = NULL;
	g_nsrc = 0;
	pthread_mutex_unlock(&g_src_mu);
}

size_t sec_redact_count(void)
{
	size_t n;

	pthread_mutex_lock(&g_src_mu);
	n = g_nsrc;
	pthread_mutex_unlock(&g_src_mu);
	return n;
}

/* The longest pattern that starts at p (avail bytes left), or NULL. */
static const pattern *match_at(const table *t, const unsigned char *p, size_t avail)
{
	uint64_t pre = load8(p);
	size_t h = slot_of(pre, t->nslots);

	for (;;) {
		const slot *sl = &t->slots[h];
		if (sl->count == 0)
			return NULL;
		if (sl->prefix == pre) {
			for (uint32_t i = 0; i < sl->count; i++) {
				const pattern *pt = &t->pats[sl->start + i];
				if (pt->len <= avail && memcmp(t->bytes + pt->off, p, pt->len) == 0)
					return pt;
			}
			return NULL;
		}
		h = (h + 1) & (t->nslots - 1);
	}
}

/* Appends the marker for `name`, or as much of it as fits. */
static int put_marker(buf *out, const char *name)
{
	int rc = buf_puts(out, MARK_PREFIX);

	if (rc == 0)
		rc = buf_puts(out, name);
	if (rc == 0)
		rc = buf_putc(out, ']');
	return rc;
}

void sec_redact_buf(buf *b)
{
	const unsigned char *p;
	size_t n, i, run = 0, first = (size_t)-1;
	buf out;
	int failed = 0;
	const table *t;

	if (!b || !b->data || b->len < SEC_REDACT_MIN)
		return;
	pthread_rwlock_rdlock(&g_lock);
	t = g_table;
	if (!t || t->npats == 0)
		goto unlock;
	p = (const unsigned char *)b->data;
	n = b->len;
	buf_init(&out, b->max);
	for (i = 0; i + SEC_REDACT_MIN <= n;) {
		uint32_t f4 = first4_of(p + i);
		const pattern *m;

		if (!(t->first4[f4 >> 3] & (1u << (f4 & 7)))) {
			i++;
			continue;
		}
		m = match_at(t, p + i, n - i);
		if (!m) {
			i++;
			continue;
		}
		if (first == (size_t)-1)
			first = i;
		if (!failed && (buf_append(&out, p + run, i - run) < 0 ||
				put_marker(&out, t->names[m->src]) < 0))
			failed = 1;
		i += m->len;
		run = i;
	}
	if (first == (size_t)-1) {
		buf_free(&out);
		goto unlock;
	}
	if (!failed && buf_append(&out, p + run, n - run) < 0)
		failed = 1;
	if (out.len == 0 && failed) {
		/* nothing could be built: keep only the text before the first value */
		sodium_memzero(b->data + first, b->len - first);
		b->len = first;
		buf_free(&out);
		goto unlock;
	}
	/* `out` holds only filtered text (cut short when `failed`) */
	{
		size_t max = b->max;
		buf_free_wipe(b);
		*b = out;
		b->max = max;
		if (!b->data)
			buf_reset(b);
	}
unlock:
	pthread_rwlock_unlock(&g_lock);
}
