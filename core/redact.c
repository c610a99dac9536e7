#include "core/redact.h"
#include "core/utf8.h"

#include <stdatomic.h>
#include <string.h>

static _Atomic(redact_fn) g_filter;

void redact_set(redact_fn fn)
{
	atomic_store(&g_filter, fn);
}

void redact_buf(buf *b)
{
	redact_fn fn = atomic_load(&g_filter);

	if (fn && b->len > 0)
		fn(b);
}

char *redact_str(const char *s)
{
	buf b;

	buf_init(&b, 0);
	if (buf_puts(&b, s) < 0) {
		buf_free(&b);
		return NULL;
	}
	redact_buf(&b);
	return buf_steal(&b);
}

/* A JSON string for s[0..n): the text itself, or, when a replacement left
 * it ill-formed (a value that began inside a character), the text with
 * each byte that is not UTF-8 as U+FFFD. */
static json_t *string_of(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	buf b;

	if (j)
		return j;
	buf_init(&b, 0);
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(s + i, n - i);
		if (k == 0) {
			buf_puts(&b, "\xef\xbf\xbd");
			i++;
		} else {
			buf_append(&b, s + i, k);
			i += k;
		}
	}
	j = json_stringn(b.data ? b.data : "", b.len);
	buf_free(&b);
	return j;
}

/* The filtered form of s[0..n) as a JSON string (owned); NULL: no memory. */
static json_t *filtered_string(const char *s, size_t n)
{
	buf b;
	json_t *j;

	buf_init(&b, 0);
	if (buf_append(&b, s, n) < 0) {
		buf_free(&b);
		return NULL;
	}
	redact_buf(&b);
	j = string_of(b.data ? b.data : "", b.len);
	buf_free_wipe(&b);
	return j;
}

json_t *redact_json(const json_t *v)
{
	json_t *out = NULL, *x, *c;
	const char *key;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return filtered_string(json_string_value(v), json_string_length(v));
	case JSON_ARRAY:
		out = json_array();
		json_array_foreach(v, i, x) {
			c = out ? redact_json(x) : NULL;
			if (!c || json_array_append_new(out, c) < 0)
				goto fail;
		}
		return out;
	case JSON_OBJECT:
		out = json_object();
		json_object_foreach((json_t *)v, key, x) {
			json_t *k = out ? filtered_string(key, strlen(key)) : NULL;
			c = k ? redact_json(x) : NULL;
			if (!c || json_object_set_new(out, json_string_value(k), c) < 0) {
				json_decref(k);
				goto fail;
			}
			json_decref(k);
		}
		return out;
	default:
		return json_deep_copy(v);
	}
fail:
	json_decref(out);
	return NULL;
}
