/*
 * redact — the one place every outgoing text passes to lose secret values.
 *
 * core knows no secrets; the secrets module installs a filter at start-up
 * (secrets/redact.h) that knows every stored secret value and its base64 and
 * hex forms. Logging, the LLM request builder, the Telegram and terminal
 * renderers and the transcript writer call redact_buf() on what they are
 * about to write. Without a filter installed the calls change nothing.
 */
#ifndef ORCH_CORE_REDACT_H
#define ORCH_CORE_REDACT_H

#include <jansson.h>

#include "core/buf.h"

/* Rewrites `b` in place, replacing secret values. Must be thread-safe. */
typedef void (*redact_fn)(buf *b);

/* Installs the process-wide filter (NULL removes it). */
void redact_set(redact_fn fn);

/* Applies the filter, if any, to `b`. Thread-safe. */
void redact_buf(buf *b);

/* Applies the filter to a NUL-terminated string; returns a new string the
 * caller frees (a copy when nothing changed), or NULL when out of memory. */
char *redact_str(const char *s);

/* A copy of `v` (borrowed) with the filter applied to every string and
 * every object key, at any depth, as decoded text: whatever escaping the
 * JSON is later written with, no secret value is left in it. A string a
 * replacement left ill-formed gets U+FFFD for the stray bytes. The caller
 * owns the copy; NULL when out of memory. Thread-safe. */
json_t *redact_json(const json_t *v);

#endif
