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

/* --- existing repositories (a change to one, `new --repo`) --- */

/* Checks that `path` is the top folder of a git repository (a work tree or
 * a bare one) and writes its absolute path into out[cap]. ERR_NOTFOUND,
 * ERR_INVALID saying what to give instead. */
int nd_repo_check_local(const char *path, char *out, size_t cap);

/* Creates the bare repository `path` (kept when it exists) with HEAD on
 * `branch`: the project's own, for a remote's branch to be imported into. */
int nd_repo_init(const char *path, const char *branch);

/* Copies branch `branch` (NULL or "": the branch `src`'s HEAD is on) of the
 * local repository `src` — its committed history only — into the bare
 * repository `dst`, created with HEAD on that branch. out_branch[cap] gets
 * the branch, out_head[41] its tip. A repeated call changes nothing.
 * ERR_GIT, ERR_NOTFOUND (no such branch), ERR_INVALID (no branch to take). */
int nd_repo_import_local(const char *src, const char *dst, const char *branch, char *out_branch,
			 size_t cap, char out_head[41]);

/* Points HEAD of the bare repository `path` at `branch`, which must exist;
 * out_head[41] gets its tip. ERR_GIT. */
int nd_repo_set_branch(const char *path, const char *branch, char out_head[41]);

/* 1 when `file` exists in `rev` (a branch or commit) of `path`, else 0. */
int nd_repo_has(const char *path, const char *rev, const char *file);

#endif
