#include "llm/schema.h"
#include "core/err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64

static const char *type_of(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	default: return "null";
	}
}

static int is_type(const json_t *v, const char *t)
{
	if (strcmp(t, "number") == 0)
		return json_is_number(v);
	if (strcmp(t, "integer") == 0)
		return json_is_integer(v) ||
		       (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v));
	return strcmp(type_of(v), t) == 0;
}

/* Counts UTF-8 code points. */
static size_t utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static int check(const json_t *sc, const json_t *v, char *path, size_t plen, size_t pcap,
		 int depth, char *err, size_t ecap);

static int fail(char *err, size_t ecap, const char *path, const char *fmt, const char *a,
		const char *b)
{
	char msg[256];

	snprintf(msg, sizeof(msg), fmt, a, b);
	snprintf(err, ecap, "%s: %s", path, msg);
	return -1;
}

static int with_path(const json_t *sc, const json_t *v, char *path, size_t plen, size_t pcap,
		     int depth, char *err, size_t ecap, const char *key, size_t idx)
{
	int rc;

	if (key)
		snprintf(path + plen, pcap - plen, ".%s", key);
	else
		snprintf(path + plen, pcap - plen, "[%zu]", idx);
	rc = check(sc, v, path, strlen(path), pcap, depth + 1, err, ecap);
	path[plen] = '\0';
	return rc;
}

static int check(const json_t *sc, const json_t *v, char *path, size_t plen, size_t pcap,
		 int depth, char *err, size_t ecap)
{
	json_t *t, *k;
	char tmp[64];

	if (depth > MAX_DEPTH)
		return fail(err, ecap, path, "nested deeper than %s levels%s", "64", "");
	if (json_is_false(sc))
		return fail(err, ecap, path, "no value is allowed here%s%s", "", "");
	if (!json_is_object(sc))
		return 0;
	t = json_object_get(sc, "type");
	if (json_is_string(t) && !is_type(v, json_string_value(t)))
		return fail(err, ecap, path, "expected %s, got %s", json_string_value(t), type_of(v));
	if (json_is_array(t)) {
		size_t i;
		json_t *x;
		int ok = 0;
		json_array_foreach(t, i, x) {
			if (json_is_string(x) && is_type(v, json_string_value(x)))
				ok = 1;
		}
		if (!ok)
			return fail(err, ecap, path, "has type %s, which the schema does not allow%s",
				    type_of(v), "");
	}
	if ((k = json_object_get(sc, "const")) != NULL && !json_equal(k, (json_t *)v))
		return fail(err, ecap, path, "does not equal the required constant%s%s", "", "");
	if ((k = json_object_get(sc, "enum")) != NULL && json_is_array(k)) {
		size_t i;
		json_t *x;
		int ok = 0;
		json_array_foreach(k, i, x) {
			if (json_equal(x, (json_t *)v))
				ok = 1;
		}
		if (!ok)
			return fail(err, ecap, path, "is not one of the allowed values%s%s", "", "");
	}
	if (json_is_number(v)) {
		double d = json_number_value(v);
		if ((k = json_object_get(sc, "minimum")) != NULL && json_is_number(k) &&
		    d < json_number_value(k)) {
			snprintf(tmp, sizeof(tmp), "%g", json_number_value(k));
			return fail(err, ecap, path, "is less than the minimum %s%s", tmp, "");
		}
		if ((k = json_object_get(sc, "maximum")) != NULL && json_is_number(k) &&
		    d > json_number_value(k)) {
			snprintf(tmp, sizeof(tmp), "%g", json_number_value(k));
			return fail(err, ecap, path, "is more than the maximum %s%s", tmp, "");
		}
	}
	if (json_is_string(v)) {
		size_t n = utf8_len(json_string_value(v));
		if ((k = json_object_get(sc, "minLength")) != NULL && json_is_integer(k) &&
		    (json_int_t)n < json_integer_value(k)) {
			snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(k));
			return fail(err, ecap, path, "is shorter than %s characters%s", tmp, "");
		}
		if ((k = json_object_get(sc, "maxLength")) != NULL && json_is_integer(k) &&
		    (json_int_t)n > json_integer_value(k)) {
			snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(k));
			return fail(err, ecap, path, "is longer than %s characters%s", tmp, "");
		}
	}
	if (json_is_array(v)) {
		size_t n = json_array_size(v), i;
		json_t *x, *items = json_object_get(sc, "items");
		if ((k = json_object_get(sc, "minItems")) != NULL && json_is_integer(k) &&
		    (json_int_t)n < json_integer_value(k)) {
			snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(k));
			return fail(err, ecap, path, "has fewer than %s items%s", tmp, "");
		}
		if ((k = json_object_get(sc, "maxItems")) != NULL && json_is_integer(k) &&
		    (json_int_t)n > json_integer_value(k)) {
			snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(k));
			return fail(err, ecap, path, "has more than %s items%s", tmp, "");
		}
		if (items) {
			json_array_foreach(v, i, x) {
				if (with_path(items, x, path, plen, pcap, depth, err, ecap, NULL, i) < 0)
					return -1;
			}
		}
	}
	if (json_is_object(v)) {
		json_t *props = json_object_get(sc, "properties");
		json_t *req = json_object_get(sc, "required");
		json_t *addl = json_object_get(sc, "additionalProperties");
		const char *key;
		json_t *x;
		size_t i;
		json_array_foreach(req, i, x) {
			if (json_is_string(x) && !json_object_get(v, json_string_value(x)))
				return fail(err, ecap, path, "is missing the required property '%s'%s",
					    json_string_value(x), "");
		}
		json_object_foreach((json_t *)v, key, x) {
			json_t *ps = json_object_get(props, key);
			if (ps) {
				if (with_path(ps, x, path, plen, pcap, depth, err, ecap, key, 0) < 0)
					return -1;
			} else if (json_is_false(addl)) {
				return fail(err, ecap, path, "has a property '%s' that the schema does "
							     "not allow%s", key, "");
			} else if (json_is_object(addl)) {
				if (with_path(addl, x, path, plen, pcap, depth, err, ecap, key, 0) < 0)
					return -1;
			}
		}
	}
	if ((k = json_object_get(sc, "allOf")) != NULL && json_is_array(k)) {
		size_t i;
		json_t *x;
		json_array_foreach(k, i, x) {
			if (check(x, v, path, plen, pcap, depth + 1, err, ecap) < 0)
				return -1;
		}
	}
	if (((k = json_object_get(sc, "anyOf")) != NULL || (k = json_object_get(sc, "oneOf")) != NULL) &&
	    json_is_array(k)) {
		size_t i, matches = 0;
		json_t *x;
		char first[512] = "";
		int one = json_object_get(sc, "oneOf") == k;
		json_array_foreach(k, i, x) {
			char e2[512];
			if (check(x, v, path, plen, pcap, depth + 1, e2, sizeof(e2)) == 0)
				matches++;
			else if (!first[0])
				snprintf(first, sizeof(first), "%s", e2);
		}
		if (matches == 0) {
			snprintf(err, ecap, "%s", first);
			return -1;
		}
		if (one && matches > 1)
			return fail(err, ecap, path, "matches more than one of the oneOf schemas%s%s",
				    "", "");
	}
	return 0;
}

int llm_schema_check(const json_t *schema, const json_t *v, char *out, size_t cap)
{
	char path[512] = "$";
	char err[768];

	if (check(schema, v, path, 1, sizeof(path), 0, err, sizeof(err)) < 0) {
		if (out && cap)
			snprintf(out, cap, "%s", err);
		return err_set(ERR_INVALID, "%s", err);
	}
	return 0;
}
