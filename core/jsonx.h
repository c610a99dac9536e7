/*
 * jsonx — a member of a JSON object, or a default, for the code that reads
 * reports, results and states to print them. Borrowed values; `o` may be
 * NULL or not an object.
 */
#ifndef ORCH_CORE_JSONX_H
#define ORCH_CORE_JSONX_H

#include <jansson.h>

/* The string member `k` of `o`, or "" when there is none. */
static inline const char *jx_str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* The integer member `k` of `o`, or 0. */
static inline long long jx_int(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

#endif
