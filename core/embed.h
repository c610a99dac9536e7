/*
 * embed — text files compiled into the binary (the migrations and the
 * prompts), generated at build time by tests/env/embed.sh.
 */
#ifndef ORCH_CORE_EMBED_H
#define ORCH_CORE_EMBED_H

#include <stddef.h>

#include "core/buf.h"

typedef struct orch_embedded_file {
	const char *path; /* repository path, e.g. "migrations/001_engine.sql" */
	const char *data; /* NUL-terminated contents */
	size_t size;      /* bytes, without the terminator */
} orch_embedded_file;

/* Ends with an entry whose path is NULL. */
extern const orch_embedded_file orch_embedded[];

/* The embedded file at `path`, or NULL. */
const orch_embedded_file *embed_find(const char *path);

/* Overrides: a text that stands for an embedded file from now on (the
 * prompt templates stored in the database). */

/* Appends the text of `path` to `out`: its override when one is set, else
 * the embedded file. ERR_NOTFOUND when neither exists. Thread-safe. */
int embed_text(const char *path, buf *out);

/* Replaces every override by the `n` pairs paths[i] -> texts[i] (copied;
 * n may be 0). Thread-safe. */
int embed_overrides_set(const char *const *paths, const char *const *texts, int n);

/* 1 when `path` has an override now. */
int embed_overridden(const char *path);

#endif
