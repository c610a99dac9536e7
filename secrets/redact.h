/*
 * redact — the filter that keeps secret values out of everything written.
 *
 * It knows every secret value this process has loaded and rewrites text so
 * that none of them survives: each occurrence becomes "[redacted:NAME]".
 * Installed with sec_redact_install(), it is the process-wide hook of
 * core/redact.h, so every log line, LLM request body, Telegram or terminal
 * message and transcript that passes redact_buf() is filtered.
 *
 * For a value V it removes:
 *   - V itself, its percent-encoded (URL) form and its JSON-escaped forms
 *     as encoders write them (\b and \f short or as \u0008, hex digits in
 *     either case, characters past ASCII as they are or as \uXXXX);
 *   - base64 of V, standard and URL-safe alphabet, with and without '='
 *     padding, and the parts of those encodings that stay the same when V
 *     sits inside a longer base64 text at any byte offset (HTTP Basic
 *     credentials "user:V"), at the price of up to 3 characters at either
 *     end;
 *   - hex of V, lowercase and uppercase.
 * Matching is longest-first at the leftmost position, so a secret that
 * contains another is replaced whole.
 *
 * The values and every form derived from them live in locked memory
 * (sodium_malloc: not swapped, not in core dumps, guard pages) and are
 * wiped when replaced or cleared. A buffer that held a value is wiped
 * before its memory is released.
 *
 * Thread-safety: any number of threads may filter at once (a read lock);
 * adding values takes the write lock for the instant a prepared table is
 * swapped in. Cost per byte of text without secrets: one bitmap test.
 */
#ifndef ORCH_SECRETS_REDACT_H
#define ORCH_SECRETS_REDACT_H

#include <stddef.h>

#include "core/buf.h"

#define SEC_REDACT_MIN 8 /* forms shorter than this are not matched */

/* Makes sec_redact_buf the process-wide filter (redact_set). Idempotent. */
void sec_redact_install(void);

/* Teaches the filter the value of secret `name` (len bytes). A value
 * shorter than SEC_REDACT_MIN bytes is refused with ERR_INVALID (it would
 * redact ordinary words); a value already known is a no-op. Values stay
 * known until sec_redact_clear(), also after the secret changes, since the
 * old value may still show up. ERR_NOMEM when locked memory runs out (the
 * filter then keeps the values it had). Thread-safe. */
int sec_redact_add(const char *name, const void *value, size_t len);

/* Adding many values (loading the store at start-up): between these two
 * calls sec_redact_add only records values, and batch_end builds the table
 * once. Values added inside a batch are filtered only after batch_end.
 * Batches nest. batch_end returns ERR_NOMEM when the table could not be
 * built (the previous one stays). */
void sec_redact_batch_begin(void);
int sec_redact_batch_end(void);

/* Forgets every value, wiping them. Thread-safe. */
void sec_redact_clear(void);

/* How many values the filter knows. */
size_t sec_redact_count(void);

/* Rewrites `b` in place, replacing every known form of every value by
 * "[redacted:NAME]". When the result would pass b->max, or memory runs
 * out, the text is cut rather than left unfiltered. Thread-safe. This is
 * the redact_fn that sec_redact_install() installs. */
void sec_redact_buf(buf *b);

#endif
