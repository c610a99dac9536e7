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

/* Reading one string member of a JSON object as the object is being
 * written (a model's reply streamed token by token): feed the text as it
 * arrives, get the member's characters as soon as they are there. Only a
 * member of the outermost object counts; escapes split across feeds are
 * handled. Not thread-safe (one per reader). */
typedef struct jx_pick {
	char field[64];
	int depth;        /* nesting of objects and arrays */
	int in_str;       /* inside a string */
	int esc;          /* after a backslash */
	int is_key;       /* the string being read is a key (depth 1) */
	int want_key;     /* the next string at depth 1 is a key */
	int matched;      /* the key just read is the field */
	int capture;      /* inside the field's string value */
	int done;         /* the field's value ended */
	char key[64];
	size_t key_len;
	char u[6];        /* a \u escape being read */
	int u_len;
	unsigned hi;      /* a high surrogate waiting for its pair */
} jx_pick;

void jx_pick_init(jx_pick *p, const char *field);

/* Feeds `len` more bytes of the JSON text; appends to out what they add to
 * the field's value (decoded: escapes become the characters). Returns the
 * number of bytes appended, or a negative code from the buffer. */
int jx_pick_feed(jx_pick *p, const char *data, size_t len, struct buf *out);

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
