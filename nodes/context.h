/*
 * context — what a model sees of an existing repository: never the whole
 * of it, a selection that fits a budget of bytes, read from the project's
 * bare repository through libgit2 (local objects only, bounded):
 *
 *   1. a header: the repository, its branch and commit, how many files and
 *      lines it holds;
 *   2. the tree, summarised: every folder with its number of files and the
 *      first names in it (deep or crowded folders folded);
 *   3. README and AGENTS.md (the instructions and the test command), as
 *      far as their share of the budget goes;
 *   4. the build files at the top (Makefile, pyproject.toml, package.json,
 *      go.mod, Cargo.toml, ...);
 *   5. the files the query names (a path or a file name in it), then those
 *      a search finds: the query's words, weighted by how rare they are in
 *      the repository (a word in every file counts for nothing), found in a
 *      file's contents and, counting more, in its path; a file whole when it
 *      fits, else its start and the lines around the words found.
 *
 * Text files only (a NUL in the first 8 KiB, or more than 512 KiB, leaves a
 * file out of the search). Thread-safe: each call opens its own handle.
 */
#ifndef ORCH_NODES_CONTEXT_H
#define ORCH_NODES_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* What a selection held, and what the repository holds. */
typedef struct nd_context_stats {
	int files;         /* files in the tree */
	int text_files;    /* of which searched (text, not too large) */
	int64_t lines;     /* lines of the text files */
	int64_t bytes;     /* bytes of the text files */
	int shown;         /* files shown whole or in part (README, AGENTS.md, ...) */
	size_t size;       /* bytes written into the selection */
} nd_context_stats;

/* The selection from `rev` (a branch or commit) of the bare repository
 * `repo` for `query` (what the person asked, or the spec), at most `cap`
 * bytes, appended to `out`; *st (may be NULL) gets the figures. ERR_GIT,
 * ERR_NOTFOUND (no such branch), ERR_NOMEM. */
int nd_context_build(const char *repo, const char *rev, const char *query, size_t cap, buf *out,
		     nd_context_stats *st);

#endif
