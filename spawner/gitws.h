/*
 * gitws — a worker's git side, through libgit2: clone, branch, watch the
 * diff, commit, push.
 *
 * Two repositories per worker, so model-written code can never steer what
 * the host commits or pushes:
 *   - the HOST repository, a bare clone of the project outside the
 *     workspace (no sandbox ever sees it), whose work tree is set to the
 *     workspace only when the host reads it. The commit, the diff figures and
 *     the push are made here, with the remote URL from the request (never
 *     from any config file the agent could have written);
 *   - the AGENT's repository in the workspace (/workspace/.git), a clone of
 *     the host one on branch task/<task>, which the agent may use (git diff,
 *     git status, even commits) and may damage without consequence: the host
 *     commits the work tree's files, not the agent's history.
 * Clones copy objects (no hard links), so nothing in the workspace shares an
 * inode with the project repository. libgit2 runs no hooks, filters or
 * fsmonitor, and the global, XDG and system git configuration is not read.
 */
#ifndef ORCH_SPAWNER_GITWS_H
#define ORCH_SPAWNER_GITWS_H

#include <stddef.h>

typedef struct spw_git spw_git;

/* Initialises libgit2 once per process (thread-safe). ERR_GIT. */
int spw_git_global_init(void);

/* Credentials for a remote URL: the value of a granted secret. "user:token"
 * gives both; a bare token is sent as password with user "x-access-token";
 * a PEM private key ("-----BEGIN") is used for ssh://. Borrowed. */
typedef struct spw_git_cred {
	const char *secret; /* NULL: none */
} spw_git_cred;

/* Prepares a worker's repositories:
 *   1. clones `url` bare into `host_dir` (which must not exist);
 *   2. resolves `base` (a branch, tag or commit id; "" or NULL: the default
 *      branch) and creates branch `branch` there;
 *   3. clones the host repository into `workspace` (existing and empty) on
 *      `branch`, with a committer identity for the agent and no remote.
 * ERR_GIT with libgit2's reason (clone refused, no such base), ERR_AUTH when
 * credentials were refused. `cred` may be NULL. The caller owns *out. */
int spw_git_prepare(spw_git **out, const char *url, const spw_git_cred *cred, const char *base,
		    const char *branch, const char *host_dir, const char *workspace);

void spw_git_free(spw_git *g);

/* The base commit's id (40 hex digits). Borrowed. */
const char *spw_git_base(const spw_git *g);

/* A fingerprint of the work tree's difference from the base (tracked
 * changes and untracked, not ignored files, with their contents): equal
 * fingerprints mean the diff did not change. out[32]. */
int spw_git_fingerprint(spw_git *g, unsigned char out[32]);

/* The difference between the base and a commit. */
typedef struct spw_diffstat {
	int files, insertions, deletions;
	char names[2048]; /* changed paths, one per line, cut at the cap */
} spw_diffstat;

/* Commits the work tree's files (what is not ignored) onto the base, as one
 * commit on `branch` with `message` (author and committer from
 * ORCH_GIT_AUTHOR, "orchestrator worker <worker@orchestrator.invalid>").
 * With no change from the base nothing is committed and *out_changed is 0;
 * out_commit[41] then holds the base. `stat` (may be NULL) gets the diff. */
int spw_git_commit(spw_git *g, const char *message, char out_commit[41], int *out_changed,
		   spw_diffstat *stat);

/* Looks for secret values in what `commit` changed from the base: every
 * added or modified file passes the redaction filter (core/redact.h), which
 * knows every secret this process loaded. Returns 1 and names the first
 * such file in out_path[cap] when one holds a value (in any form the filter
 * knows), 0 when none does, or ERR_GIT. */
int spw_git_find_secrets(spw_git *g, const char *commit, char *out_path, size_t cap);

/* Makes the work tree exactly the commit `commit` (40 hex digits, as
 * spw_git_commit returned it): untracked and ignored files (build output,
 * caches, the agent's own .git) are deleted, so the tests that verify the
 * work run on what is committed and pushed. ERR_GIT. */
int spw_git_clean(spw_git *g, const char *commit);

/* Pushes `branch` (forced: it belongs to the task) to `url`. ERR_GIT with
 * the reason, also when the remote rejects the update; ERR_AUTH when
 * credentials were refused. */
int spw_git_push(spw_git *g, const char *url, const spw_git_cred *cred, const char *branch);

#endif
