/* The redaction filter (secrets/redact.c) over arbitrary bytes: the text
 * of a log line, a model request, a worker's output.
 *
 * Input: a byte with the secret's length (8 to 39), the secret, then a
 * program that builds the text: each op byte appends some literal bytes
 * or the secret in one of the forms it travels in (raw, base64 in four
 * variants, hex, JSON-escaped, percent-encoded, base64 of a longer text
 * holding it at any offset).
 *
 * Properties: after sec_redact_buf no documented form of the secret is
 * left (the "[redacted:NAME]" markers aside); the text carried as a JSON
 * string in the encodings the product writes (jansson compact, and
 * ASCII-only as in transcripts), redacted, then decoded, holds no trace of
 * a secret that is UTF-8; redact_json leaves no string or key holding
 * any secret. */
#include "tests/fuzz/fuzz.h"

#include "core/buf.h"
#include "core/redact.h"
#include "secrets/redact.h"

#include <sodium.h>

#define NAME "s"
#define MARKER "[redacted:" NAME "]"

static const int variants[] = {sodium_base64_VARIANT_ORIGINAL,
			       sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
			       sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	if (sodium_init() < 0)
		abort();
	sec_redact_install();
	return 0;
}

/* The forms of v that must not survive: the list in secrets/redact.h. */
typedef struct forms {
	char *v[32];
	size_t len[32];
	int n;
} forms;

static void add(forms *f, const char *s, size_t n)
{
	if (n < SEC_REDACT_MIN || f->n == 32)
		return;
	f->v[f->n] = malloc(n);
	if (!f->v[f->n])
		abort();
	memcpy(f->v[f->n], s, n);
	f->len[f->n++] = n;
}

static void b64(buf *out, const unsigned char *v, size_t n, int variant)
{
	char tmp[256];

	sodium_bin2base64(tmp, sizeof(tmp), v, n, variant);
	buf_puts(out, tmp);
}

static void json_form(buf *out, const unsigned char *v, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		unsigned char c = v[k];
		if (c == '"' || c == '\\')
			buf_printf(out, "\\%c", c);
		else if (c == '\n')
			buf_puts(out, "\\n");
		else if (c == '\r')
			buf_puts(out, "\\r");
		else if (c == '\t')
			buf_puts(out, "\\t");
		else if (c < 0x20)
			buf_printf(out, "\\u%04x", c);
		else
			buf_putc(out, (char)c);
	}
}

static void pct_form(buf *out, const unsigned char *v, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		unsigned char c = v[k];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			buf_putc(out, (char)c);
		else
			buf_printf(out, "%%%02X", c);
	}
}

static void hex_form(buf *out, const unsigned char *v, size_t n, int upper)
{
	for (size_t k = 0; k < n; k++)
		buf_printf(out, upper ? "%02X" : "%02x", v[k]);
}

static void make_forms(forms *f, const unsigned char *v, size_t n)
{
	buf b;

	memset(f, 0, sizeof(*f));
	buf_init(&b, 0);
	add(f, (const char *)v, n);
	for (int i = 0; i < 4; i++) {
		buf_reset(&b);
		b64(&b, v, n, variants[i]);
		add(f, b.data, b.len);
	}
	/* inside a longer base64 text: what depends on v alone */
	for (size_t skip = 0; skip < 3 && skip < n; skip++) {
		size_t whole = (n - skip) / 3 * 3;
		for (int i = 1; i < 4 && whole; i += 2) {
			buf_reset(&b);
			b64(&b, v + skip, whole, variants[i]);
			add(f, b.data, b.len);
		}
	}
	for (int up = 0; up < 2; up++) {
		buf_reset(&b);
		hex_form(&b, v, n, up);
		add(f, b.data, b.len);
	}
	buf_reset(&b);
	json_form(&b, v, n);
	add(f, b.data, b.len);
	buf_reset(&b);
	pct_form(&b, v, n);
	add(f, b.data, b.len);
	buf_free(&b);
}

static void free_forms(forms *f)
{
	for (int i = 0; i < f->n; i++)
		free(f->v[i]);
}

static const char *found(const forms *f, const char *s, size_t n)
{
	for (int i = 0; i < f->n; i++)
		if (memmem(s, n, f->v[i], f->len[i]))
			return f->v[i];
	return NULL;
}

/* Runs the op program into `t`. */
static void build(buf *t, const unsigned char *v, size_t n, const uint8_t *ops, size_t nops)
{
	size_t i = 0;

	while (i < nops) {
		uint8_t op = ops[i++];
		switch (op % 12) {
		case 0:
		case 1: { /* literal bytes */
			size_t k = op / 12 % 16 + 1;
			if (k > nops - i)
				k = nops - i;
			buf_append(t, ops + i, k);
			i += k;
			break;
		}
		case 2: buf_append(t, v, n); break;
		case 3: case 4: case 5: case 6: b64(t, v, n, variants[op % 12 - 3]); break;
		case 7: hex_form(t, v, n, op & 16); break;
		case 8: json_form(t, v, n); break;
		case 9: pct_form(t, v, n); break;
		case 10: { /* base64 of "user:" + v, as HTTP Basic credentials */
			unsigned char tmp[64];
			size_t pre = op / 12 % 4;
			memcpy(tmp, "user", 4);
			tmp[pre] = ':';
			memcpy(tmp + pre + 1, v, n);
			b64(t, tmp, pre + 1 + n, variants[op / 48 % 4]);
			break;
		}
		default: buf_putc(t, (char)op); break;
		}
	}
}

/* A JSON string of `t` as jansson writes it (flags), redacted, read back. */
static void through_json(const forms *f, const buf *t, size_t flags, const unsigned char *v,
			 size_t n)
{
	json_t *s = json_stringn(t->data ? t->data : "", t->len), *back;
	char *text;
	buf b;

	if (!s)
		return; /* not UTF-8: jansson does not carry it */
	text = json_dumps(s, flags | JSON_ENCODE_ANY);
	buf_init(&b, 0);
	buf_puts(&b, text);
	sec_redact_buf(&b);
	FZ_CHECK(!found(f, b.data, b.len), "a form is left in the JSON text");
	back = json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL);
	if (back)
		FZ_CHECK(!memmem(json_string_value(back), json_string_length(back), v, n),
			 "the secret is back once the %s JSON text is decoded",
			 flags & JSON_ENSURE_ASCII ? "ASCII-only" : "compact");
	json_decref(back);
	free(text);
	buf_free(&b);
	json_decref(s);
}

static void check_json_walk(const buf *t, const unsigned char *v, size_t n)
{
	json_t *s = json_stringn(t->data ? t->data : "", t->len), *doc, *clean;
	const char *key;
	json_t *x;

	if (!s)
		return;
	doc = json_pack("{s:o, s:[O, i]}", "k", s, "list", s, 1);
	json_object_set(doc, json_string_value(s), s);
	clean = redact_json(doc);
	FZ_CHECK(clean != NULL, "redact_json failed");
	json_object_foreach(clean, key, x) {
		FZ_CHECK(!memmem(key, strlen(key), v, n), "a key holds the secret");
		if (json_is_string(x))
			FZ_CHECK(!memmem(json_string_value(x), json_string_length(x), v, n),
				 "a string holds the secret");
	}
	x = json_array_get(json_object_get(clean, "list"), 0);
	FZ_CHECK(!memmem(json_string_value(x), json_string_length(x), v, n),
		 "an array's string holds the secret");
	json_decref(clean);
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n;
	const unsigned char *v;
	forms f;
	buf t;
	const char *left;

	if (size < 1)
		return 0;
	n = data[0] % 32 + SEC_REDACT_MIN;
	if (size < 1 + n)
		return 0;
	v = data + 1;
	/* a secret that a marker could spell is not one this test can judge */
	if (memchr(v, '[', n) || memchr(v, ']', n))
		return 0;
	make_forms(&f, v, n);
	if (found(&f, MARKER, strlen(MARKER))) {
		free_forms(&f);
		return 0;
	}
	sec_redact_clear();
	FZ_CHECK(sec_redact_add(NAME, v, n) == 0, "the secret is refused");

	buf_init(&t, 0);
	build(&t, v, n, data + 1 + n, size - 1 - n);
	{
		buf r;
		buf_init(&r, 0);
		buf_append(&r, t.data ? t.data : "", t.len);
		sec_redact_buf(&r);
		left = r.data ? found(&f, r.data, r.len) : NULL;
		FZ_CHECK(!left, "a form of the secret is left after redaction");
		buf_free(&r);
	}
	/* a value that is UTF-8 (a JSON string can hold it on its own; bytes
	 * that are not only turn into escapes together with their neighbours) */
	if (fz_utf8_valid((const char *)v, n)) {
		through_json(&f, &t, JSON_COMPACT, v, n);
		through_json(&f, &t, JSON_COMPACT | JSON_ENSURE_ASCII, v, n);
	}
	check_json_walk(&t, v, n);
	buf_free(&t);
	free_forms(&f);
	return 0;
}
