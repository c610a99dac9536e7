/*
 * jsonx — reading JSON: a member of an object or a default, for the code
 * that reads reports, results and states to print them (borrowed values;
 * `o` may be NULL or not an object), and the lenient decoder every reader
 * of outside JSON uses, so that one bad byte costs one character, never
 * the whole document.
 */
#ifndef ORCH_CORE_JSONX_H
#define ORCH_CORE_JSONX_H

#include <jansson.h>
#include <stddef.h>

/* Parses `len` bytes of JSON from outside (a Bot API reply, a stream entry)
 * as json_loadb(data, len, flags, err) does, after repairing what a sender
 * that does not validate its strings may write: ill-formed UTF-8 (each
 * maximal ill-formed subpart becomes U+FFFD, as the Unicode standard
 * recommends), escaped lone surrogates (\udcff) and escaped or raw NUL
 * characters become U+FFFD, and other raw control characters inside
 * strings become their \u00XX escapes. Valid input is parsed as it is,
 * without a copy. *out_repaired (may be NULL) gets the number of repairs.
 * NULL with *err filled when the text is not JSON even so. The caller owns
 * the value. Thread-safe. */
json_t *jx_loadb_lenient(const char *data, size_t len, size_t flags, json_error_t *err,
			 int *out_repaired);

/* Appends `len` bytes of outside text to `out` as valid UTF-8 without NUL:
 * each maximal ill-formed subpart, and each NUL byte, becomes U+FFFD (for
 * storing or printing bytes that may be anything). ERR_TOOBIG or ERR_NOMEM
 * from the buffer. */
struct buf;
int jx_utf8_lossy(struct buf *out, const char *data, size_t len);

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
