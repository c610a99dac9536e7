#include "llm/schema.h"
#include "core/err.h"
#include "core/utf8.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
/* Steps (a schema applied to a value) one check may take: far more than a
 * reply within the size caps needs, far less than a schema whose anyOf
 * refers back to itself would take (2^64). */
#define MAX_STEPS 1000000

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

typedef struct ctx {
	const json_t *root; /* the whole schema, for "$ref": "#/..." */
	char *path;
	size_t pcap;
	char *err;
	size_t ecap;
	long *steps; /* shared by the sub-checks of anyOf and oneOf */
} ctx;

static int check(const ctx *cx, const json_t *sc, const json_t *v, size_t plen, int depth);

static int fail(char *err, size_t ecap, const char *path, const char *fmt, const char *a,
		const char *b)
{
	char msg[256];

	snprintf(msg, sizeof(msg), fmt, a, b);
	utf8_fit(msg); /* a message cut inside a character goes back to the model */
	snprintf(err, ecap, "%s: %s", path, msg);
	utf8_fit(err);
	return -1;
}

static int with_path(const ctx *cx, const json_t *sc, const json_t *v, size_t plen, int depth,
		     const char *key, size_t idx)
{
	int rc;

	if (key)
		snprintf(cx->path + plen, cx->pcap - plen, ".%s", key);
	else
		snprintf(cx->path + plen, cx->pcap - plen, "[%zu]", idx);
	utf8_fit(cx->path + plen);
	rc = check(cx, sc, v, strlen(cx->path), depth + 1);
	cx->path[plen] = '\0';
	return rc;
}

/* The schema a local "$ref" points at ("#", "#/$defs/name", any JSON
 * pointer into the root with ~0 and ~1 escapes), or NULL when it is not a
 * local reference or leads nowhere. */
static const json_t *resolve_ref(const json_t *root, const char *ref)
{
	const json_t *at = root;
	const char *p;

	if (ref[0] != '#')
		return NULL; /* another document: not fetched */
	p = ref + 1;
	while (at && *p == '/') {
		char tok[256];
		size_t n = 0;

		for (p++; *p && *p != '/' && n < sizeof(tok) - 1; p++) {
			if (p[0] == '~' && p[1] == '0')
				tok[n++] = '~', p++;
			else if (p[0] == '~' && p[1] == '1')
				tok[n++] = '/', p++;
			else
				tok[n++] = *p;
		}
		tok[n] = '\0';
		if (json_is_object(at)) {
			at = json_object_get(at, tok);
		} else if (json_is_array(at)) {
			char *end;
			long i = strtol(tok, &end, 10);
			at = *tok && !*end && i >= 0 ? json_array_get(at, (size_t)i) : NULL;
		} else {
			at = NULL;
		}
	}
	return *p ? NULL : at;
}

/* Whether `s` matches the ECMA-262 `pattern` as far as POSIX extended
 * regular expressions can tell (\d and \D are rewritten; \w, \s and their
 * negations are glibc's). 1 match, 0 no match, -1 when the pattern cannot be
 * compiled here (the caller then ignores it). */
/* Whether `pattern` puts a quantifier right after another ("a++", "a*{2}",
 * "a+??"): ECMA-262 refuses that, and glibc compiles it into a tree that
 * doubles with each one. A lazy "?" after a quantifier is allowed once. */
static int stacked_quantifiers(const char *pattern)
{
	int after = 0; /* 0: no quantifier just before, 1: one, 2: one and its lazy '?' */

	for (const char *p = pattern; *p; p++) {
		if (*p == '\\') {
			if (p[1])
				p++;
			after = 0;
		} else if (*p == '[') {
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (!*p)
				return 0;
			after = 0;
		} else if (*p == '*' || *p == '+' || (*p == '{' && p[1] >= '0' && p[1] <= '9')) {
			if (after)
				return 1;
			after = 1;
			if (*p == '{') {
				const char *e = strchr(p, '}');
				if (!e)
					return 0;
				p = e;
			}
		} else if (*p == '?') {
			if (after == 2)
				return 1;
			after = after ? 2 : 1;
		} else {
			after = 0;
		}
	}
	return 0;
}

static int pattern_match(const char *pattern, const char *s)
{
	regex_t re;
	char ere[1024];
	size_t n = 0;
	int rc;

	if (stacked_quantifiers(pattern))
		return -1;
	for (const char *p = pattern; *p && n < sizeof(ere) - 8; p++) {
		if (p[0] == '\\' && (p[1] == 'd' || p[1] == 'D')) {
			const char *cls = p[1] == 'd' ? "[0-9]" : "[^0-9]";
			memcpy(ere + n, cls, strlen(cls));
			n += strlen(cls);
			p++;
		} else if (p[0] == '\\' && p[1]) {
			ere[n++] = *p++;
			ere[n++] = *p;
		} else {
			ere[n++] = *p;
		}
	}
	ere[n] = '\0';
	if (regcomp(&re, ere, REG_EXTENDED | REG_NOSUB) != 0)
		return -1;
	rc = regexec(&re, s, 0, NULL, 0) == 0;
	regfree(&re);
	return rc;
}

/* "type", "const" and "enum" of schema sc against v. */
static int check_kind(const ctx *cx, const json_t *sc, const json_t *v)
{
	json_t *t = json_object_get(sc, "type"), *k, *x;
	size_t i;
	int ok = 0;

	if (json_is_string(t) && !is_type(v, json_string_value(t)))
		return fail(cx->err, cx->ecap, cx->path, "expected %s, got %s",
			    json_string_value(t), type_of(v));
	if (json_is_array(t)) {
		json_array_foreach(t, i, x) {
			if (json_is_string(x) && is_type(v, json_string_value(x)))
				ok = 1;
		}
		if (!ok)
			return fail(cx->err, cx->ecap, cx->path,
				    "has type %s, which the schema does not allow%s", type_of(v), "");
	}
	k = json_object_get(sc, "const");
	if (k && !json_equal(k, (json_t *)v))
		return fail(cx->err, cx->ecap, cx->path, "does not equal the required constant%s%s",
			    "", "");
	k = json_object_get(sc, "enum");
	if (k && json_is_array(k)) {
		ok = 0;
		json_array_foreach(k, i, x) {
			if (json_equal(x, (json_t *)v))
				ok = 1;
		}
		if (!ok)
			return fail(cx->err, cx->ecap, cx->path, "is not one of the allowed values%s%s",
				    "", "");
	}
	return 0;
}

/* The bounds of a number: the key, the sign of (value - bound) that breaks
 * it (-1: below, +1: above) and whether equal breaks it too. */
static const struct {
	const char *key, *msg;
	int side, strict;
} NUM_BOUNDS[] = {
	{"minimum", "is less than the minimum %s%s", -1, 0},
	{"maximum", "is more than the maximum %s%s", 1, 0},
	{"exclusiveMinimum", "must be more than %s%s", -1, 1},
	{"exclusiveMaximum", "must be less than %s%s", 1, 1},
};

static int check_number(const ctx *cx, const json_t *sc, double d)
{
	char tmp[64];

	for (size_t i = 0; i < sizeof(NUM_BOUNDS) / sizeof(NUM_BOUNDS[0]); i++) {
		json_t *k = json_object_get(sc, NUM_BOUNDS[i].key);
		double b, diff;
		if (!k || !json_is_number(k))
			continue;
		b = json_number_value(k);
		diff = NUM_BOUNDS[i].side < 0 ? b - d : d - b;
		if (diff > 0 || (NUM_BOUNDS[i].strict && d == b)) {
			snprintf(tmp, sizeof(tmp), "%g", b);
			return fail(cx->err, cx->ecap, cx->path, NUM_BOUNDS[i].msg, tmp, "");
		}
	}
	return 0;
}

/* A count n against schema sc's integer key `min_key`/`max_key` (minLength,
 * minItems, ...): below gives msg_min, above msg_max. */
static int check_count(const ctx *cx, const json_t *sc, json_int_t n, const char *min_key,
		       const char *msg_min, const char *max_key, const char *msg_max)
{
	json_t *lo = json_object_get(sc, min_key), *hi = json_object_get(sc, max_key);
	char tmp[64];

	if (lo && json_is_integer(lo) && n < json_integer_value(lo)) {
		snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(lo));
		return fail(cx->err, cx->ecap, cx->path, msg_min, tmp, "");
	}
	if (hi && json_is_integer(hi) && n > json_integer_value(hi)) {
		snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(hi));
		return fail(cx->err, cx->ecap, cx->path, msg_max, tmp, "");
	}
	return 0;
}

static int check_string(const ctx *cx, const json_t *sc, const json_t *v)
{
	json_t *k;

	if (check_count(cx, sc, (json_int_t)utf8_len(json_string_value(v)), "minLength",
			"is shorter than %s characters%s", "maxLength",
			"is longer than %s characters%s") < 0)
		return -1;
	k = json_object_get(sc, "pattern");
	if (json_is_string(k) && pattern_match(json_string_value(k), json_string_value(v)) == 0)
		return fail(cx->err, cx->ecap, cx->path, "does not match the pattern %.200s%s",
			    json_string_value(k), "");
	return 0;
}

static int check_array(const ctx *cx, const json_t *sc, const json_t *v, size_t plen, int depth)
{
	size_t n = json_array_size(v), i;
	json_t *x, *items = json_object_get(sc, "items");
	char tmp[64];

	if (check_count(cx, sc, (json_int_t)n, "minItems", "has fewer than %s items%s",
			"maxItems", "has more than %s items%s") < 0)
		return -1;
	if (json_is_true(json_object_get(sc, "uniqueItems"))) {
		for (i = 0; i < n; i++)
			for (size_t j = i + 1; j < n; j++)
				if (json_equal(json_array_get(v, i), json_array_get(v, j))) {
					snprintf(tmp, sizeof(tmp), "%zu and %zu", i, j);
					return fail(cx->err, cx->ecap, cx->path,
						    "has equal items (%s) where they must be "
						    "unique%s", tmp, "");
				}
	}
	if (items) {
		json_array_foreach(v, i, x) {
			if (with_path(cx, items, x, plen, depth, NULL, i) < 0)
				return -1;
		}
	}
	return 0;
}

static int check_object(const ctx *cx, const json_t *sc, const json_t *v, size_t plen, int depth)
{
	json_t *props = json_object_get(sc, "properties");
	json_t *req = json_object_get(sc, "required");
	json_t *addl = json_object_get(sc, "additionalProperties");
	const char *key;
	json_t *x;
	size_t i;

	json_array_foreach(req, i, x) {
		if (json_is_string(x) && !json_object_get(v, json_string_value(x)))
			return fail(cx->err, cx->ecap, cx->path,
				    "is missing the required property '%s'%s", json_string_value(x),
				    "");
	}
	json_object_foreach((json_t *)v, key, x) {
		json_t *ps = json_object_get(props, key);
		if (ps) {
			if (with_path(cx, ps, x, plen, depth, key, 0) < 0)
				return -1;
		} else if (json_is_false(addl)) {
			return fail(cx->err, cx->ecap, cx->path, "has a property '%s' that the schema "
								 "does not allow%s", key, "");
		} else if (json_is_object(addl)) {
			if (with_path(cx, addl, x, plen, depth, key, 0) < 0)
				return -1;
		}
	}
	return 0;
}

/* "allOf", then "anyOf" (or, without it, "oneOf"). */
static int check_combined(const ctx *cx, const json_t *sc, const json_t *v, size_t plen,
			  int depth)
{
	json_t *k = json_object_get(sc, "allOf"), *x;
	size_t i, matches = 0;
	char first[512] = "";
	int one;

	if (k && json_is_array(k)) {
		json_array_foreach(k, i, x) {
			if (check(cx, x, v, plen, depth + 1) < 0)
				return -1;
		}
	}
	k = json_object_get(sc, "anyOf");
	if (!k)
		k = json_object_get(sc, "oneOf");
	if (!k || !json_is_array(k))
		return 0;
	one = json_object_get(sc, "oneOf") == k;
	json_array_foreach(k, i, x) {
		char e2[512];
		ctx sub = *cx;
		sub.err = e2;
		sub.ecap = sizeof(e2);
		if (check(&sub, x, v, plen, depth + 1) == 0)
			matches++;
		else if (!first[0])
			snprintf(first, sizeof(first), "%s", e2);
	}
	if (matches == 0) {
		if (!first[0]) /* an empty list: nothing matches */
			return fail(cx->err, cx->ecap, cx->path, "matches none of the %s schemas%s",
				    one ? "oneOf" : "anyOf", "");
		snprintf(cx->err, cx->ecap, "%s", first);
		return -1;
	}
	if (one && matches > 1)
		return fail(cx->err, cx->ecap, cx->path,
			    "matches more than one of the oneOf schemas%s%s", "", "");
	return 0;
}

static int check(const ctx *cx, const json_t *sc, const json_t *v, size_t plen, int depth)
{
	json_t *k;

	if (depth > MAX_DEPTH)
		return fail(cx->err, cx->ecap, cx->path, "nested deeper than %s levels%s", "64", "");
	if (++*cx->steps > MAX_STEPS)
		return fail(cx->err, cx->ecap, cx->path,
			    "takes more than %s steps to check (the schema refers "
			    "back to itself in a loop?)%s", "1000000", "");
	if (json_is_false(sc))
		return fail(cx->err, cx->ecap, cx->path, "no value is allowed here%s%s", "", "");
	if (!json_is_object(sc))
		return 0;
	k = json_object_get(sc, "$ref");
	if (json_is_string(k)) {
		const json_t *target = resolve_ref(cx->root, json_string_value(k));
		if (target && check(cx, target, v, plen, depth + 1) < 0)
			return -1;
	}
	if (check_kind(cx, sc, v) < 0)
		return -1;
	if (json_is_number(v) && check_number(cx, sc, json_number_value(v)) < 0)
		return -1;
	if (json_is_string(v) && check_string(cx, sc, v) < 0)
		return -1;
	if (json_is_array(v) && check_array(cx, sc, v, plen, depth) < 0)
		return -1;
	if (json_is_object(v) && check_object(cx, sc, v, plen, depth) < 0)
		return -1;
	return check_combined(cx, sc, v, plen, depth);
}

int llm_schema_check(const json_t *schema, const json_t *v, char *out, size_t cap)
{
	char path[512] = "$";
	char err[768];
	long steps = 0;
	ctx cx = {.root = schema, .path = path, .pcap = sizeof(path), .err = err,
		  .ecap = sizeof(err), .steps = &steps};

	if (check(&cx, schema, v, 1, 0) < 0) {
		if (out && cap)
			snprintf(out, cap, "%s", err);
		return err_set(ERR_INVALID, "%s", err);
	}
	return 0;
}

/* --- what is sent --- */

const char *llm_schema_level_name(int level)
{
	switch (level) {
	case LLM_SCHEMA_FULL: return "full";
	case LLM_SCHEMA_SIMPLE: return "simplified";
	default: return "none";
	}
}

/* True when a pattern holds a repetition count ({n}, {m,} or {m,n}) above
 * the bound. */
static int pattern_too_big(const char *p)
{
	for (; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p != '{')
			continue;
		const char *q = p + 1;
		while (*q && *q != '}') {
			if (*q >= '0' && *q <= '9') {
				char *end;
				long n = strtol(q, &end, 10);
				if (n > LLM_SCHEMA_MAX_BOUND)
					return 1;
				q = end;
			} else {
				q++;
			}
		}
	}
	return 0;
}

static int is_bound_key(const char *k)
{
	return strcmp(k, "minLength") == 0 || strcmp(k, "maxLength") == 0 ||
	       strcmp(k, "minItems") == 0 || strcmp(k, "maxItems") == 0;
}

/* Keywords a simplified schema leaves out. */
static int is_limit_key(const char *k)
{
	static const char *const keys[] = {
		"minLength", "maxLength", "minItems", "maxItems", "pattern", "format", "minimum",
		"maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "uniqueItems",
		"minProperties", "maxProperties", "minContains", "maxContains", NULL};
	for (const char *const *p = keys; *p; p++)
		if (strcmp(*p, k) == 0)
			return 1;
	return 0;
}

static json_t *send_schema(const json_t *sc, int level, int depth);

/* A map of names to schemas ("properties", "$defs"). */
static json_t *send_map(const json_t *m, int level, int depth)
{
	json_t *out = json_object(), *v;
	const char *k;

	if (!out)
		return NULL;
	json_object_foreach((json_t *)m, k, v) {
		json_t *c = send_schema(v, level, depth + 1);
		if (!c || json_object_set_new(out, k, c) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static json_t *send_list(const json_t *a, int level, int depth)
{
	json_t *out = json_array(), *v;
	size_t i;

	if (!out)
		return NULL;
	json_array_foreach(a, i, v) {
		json_t *c = send_schema(v, level, depth + 1);
		if (!c || json_array_append_new(out, c) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* True when the pattern is anchored at both ends (llama.cpp refuses others:
 * "Pattern must start with '^' and end with '$'"). */
static int anchored(const char *p)
{
	size_t n = strlen(p);

	return n >= 2 && p[0] == '^' && p[n - 1] == '$' && (n < 3 || p[n - 2] != '\\');
}

/* True when sc holds both `min` and `max` with min > max: a schema nothing
 * matches, whose grammar llama.cpp builds until memory runs out. */
static int bounds_cross(const json_t *sc, const char *min, const char *max)
{
	const json_t *a = json_object_get(sc, min), *b = json_object_get(sc, max);

	return json_is_number(a) && json_is_number(b) && json_number_value(a) > json_number_value(b);
}

static json_t *send_schema(const json_t *sc, int level, int depth)
{
	json_t *out, *v;
	const char *k;
	int cross_len, cross_items;

	if (!json_is_object(sc) || depth > MAX_DEPTH)
		return json_deep_copy(sc);
	out = json_object();
	if (!out)
		return NULL;
	cross_len = bounds_cross(sc, "minLength", "maxLength");
	cross_items = bounds_cross(sc, "minItems", "maxItems");
	json_object_foreach((json_t *)sc, k, v) {
		json_t *c;
		if (level == LLM_SCHEMA_SIMPLE && is_limit_key(k))
			continue;
		if (is_bound_key(k) && json_is_number(v) && json_number_value(v) > LLM_SCHEMA_MAX_BOUND)
			continue;
		if ((cross_len && strstr(k, "Length")) || (cross_items && strstr(k, "Items")))
			continue;
		if (strcmp(k, "pattern") == 0 && json_is_string(v) &&
		    (pattern_too_big(json_string_value(v)) || !anchored(json_string_value(v))))
			continue;
		if (strcmp(k, "enum") == 0 && json_is_array(v) && json_array_size(v) == 0)
			continue;
		if ((strcmp(k, "properties") == 0 || strcmp(k, "$defs") == 0 ||
		     strcmp(k, "definitions") == 0 || strcmp(k, "patternProperties") == 0) &&
		    json_is_object(v))
			c = send_map(v, level, depth);
		else if ((strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0 ||
			  strcmp(k, "allOf") == 0 || strcmp(k, "prefixItems") == 0) &&
			 json_is_array(v))
			c = send_list(v, level, depth);
		else if (strcmp(k, "items") == 0 || strcmp(k, "additionalProperties") == 0 ||
			 strcmp(k, "not") == 0 || strcmp(k, "contains") == 0 ||
			 strcmp(k, "propertyNames") == 0 || strcmp(k, "additionalItems") == 0)
			c = send_schema(v, level, depth + 1);
		else
			c = json_deep_copy(v);
		if (!c || json_object_set_new(out, k, c) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

int llm_schema_for_server(const json_t *schema, int level, json_t **out)
{
	*out = NULL;
	if (level != LLM_SCHEMA_FULL && level != LLM_SCHEMA_SIMPLE)
		return err_set(ERR_INVALID, "schema level %d sends no schema", level);
	*out = send_schema(schema, level, 0);
	if (!*out)
		return err_set(ERR_NOMEM, "out of memory copying a schema");
	return 0;
}
