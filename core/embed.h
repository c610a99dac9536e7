/*
 * embed — text files compiled into the binary (the migrations and the
 * prompts), generated at build time by tests/env/embed.sh.
 */
#ifndef ORCH_CORE_EMBED_H
#define ORCH_CORE_EMBED_H

#include <stddef.h>

typedef struct orch_embedded_file {
	const char *path; /* repository path, e.g. "migrations/001_engine.sql" */
	const char *data; /* NUL-terminated contents */
	size_t size;      /* bytes, without the terminator */
} orch_embedded_file;

/* Ends with an entry whose path is NULL. */
extern const orch_embedded_file orch_embedded[];

/* The embedded file at `path`, or NULL. */
const orch_embedded_file *embed_find(const char *path);

#endif
