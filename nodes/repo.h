/*
 * repo — the project repository as the factory's nodes see it, through
 * libgit2, on the local bare repository (ORCH_REPOS_DIR): creating it with
 * its scaffold, and the diff of a task's branch against main for the
 * reviewer. Everything here is short and bounded
 * (local objects only, output capped); long work — clones, tests, merges —
 * goes through the spawner. Thread-safe: each call opens its own
 * repository handle.
 */
#ifndef ORCH_NODES_REPO_H
#define ORCH_NODES_REPO_H

#include <stddef.h>

#include "core/buf.h"

typedef struct nd_repo_file {
	const char *path;     /* relative, checked by nd_path_check */
	const char *content;
} nd_repo_file;

/* Creates (or, after an interrupted attempt, reuses) the bare repository
 * at `path` with HEAD on main, and points main at one commit holding
 * `files` (author and committer "orchestrator"). The commit is the same for
 * the same files, so a repeated call changes nothing. out_head[41] gets
 * its id. ERR_GIT, ERR_CONFLICT when main exists with other history. */
int nd_repo_create(const char *path, const nd_repo_file *files, size_t n, const char *message,
		   char out_head[41]);

/* What `rev` (a branch or commit id) changes against `against` (a
 * branch), from their merge base: the patch (cut at `cap` bytes with a
 * note) into `patch` and the figures into the others (may be NULL). */
int nd_repo_diff(const char *path, const char *rev, const char *against, size_t cap, buf *patch,
		 int *files, int *insertions, int *deletions);

#endif
