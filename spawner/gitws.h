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
 * fsmonitor, and the global, XDG and system git configuration is not read
 * (core/gitx.h: gitx_init before anything else).
 */
#ifndef ORCH_SPAWNER_GITWS_H
#define ORCH_SPAWNER_GITWS_H

#include <stddef.h>

typedef struct spw_git spw_git;

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

/* --- merging and publishing (request modes "merge" and "publish") --- */

/* A bare clone of `url` (its branches and tags) in `host_dir`, which must
 * not exist, with no workspace: what a merge or a publication works on.
 * ERR_GIT, ERR_AUTH. The caller owns *out (spw_git_free). */
int spw_git_open(spw_git **out, const char *url, const spw_git_cred *cred, const char *host_dir);

/* What a rebase did. */
typedef struct spw_rebase {
	char onto[41];          /* the target's tip it was rebased onto */
	char tip[41];           /* the branch's tip before */
	char commit[41];        /* the result: the branch's new tip */
	int replayed;           /* commits replayed (0: a fast-forward, nothing rewritten) */
	int nothing;            /* the branch holds nothing the target lacks */
	int conflict;           /* the rebase stopped on conflicting changes */
	char conflicts[2048];   /* their paths, one per line, cut at the cap */
	spw_diffstat stat;      /* what the result changes on the target */
} spw_rebase;

/* Rebases branch `branch` onto branch `target` in memory (no work tree; the
 * original authors are kept, the committer is ORCH_GIT_AUTHOR), and points
 * the clone's refs/heads/<target> and refs/heads/<branch> at the result.
 * A branch that already descends from the target is a fast-forward (its
 * commits are kept as they are). Returns 0 with out->conflict set when a
 * commit does not apply (nothing is changed then); ERR_GIT. */
int spw_git_rebase(spw_git *g, const char *branch, const char *target, spw_rebase *out);

/* Writes commit `commit`'s files into `workspace` (an existing folder),
 * deleting whatever else is there, so tests run on exactly that commit. */
int spw_git_export(spw_git *g, const char *commit, const char *workspace);

/* Pushes the clone's refs/heads/<target> to `url` as a fast-forward (refused
 * when the remote's branch moved meanwhile: ERR_CONFLICT) and, when
 * `branch` is not NULL, refs/heads/<branch> forced. ERR_GIT, ERR_AUTH. */
int spw_git_push_merge(spw_git *g, const char *url, const spw_git_cred *cred,
		       const char *target, const char *branch);

/* The clone's refs/heads/<branch> as 40 hex digits in out[41]. ERR_GIT
 * (ERR_NOTFOUND when there is no such branch). */
int spw_git_branch_tip(spw_git *g, const char *branch, char out[41]);

/* --- changes to existing repositories (modes "import", "test", "pr") --- */

/* Pushes the clone's refs/heads/<from> to `url` as refs/heads/<to>, forced
 * (a branch that belongs to the factory, as a pull request's head). ERR_GIT,
 * ERR_AUTH. */
int spw_git_push_as(spw_git *g, const char *url, const spw_git_cred *cred, const char *from,
		    const char *to);

/* The branch a change starts from when none is named: main, else master,
 * else the repository's only branch, into out[cap]. ERR_NOTFOUND saying
 * which to name. */
int spw_git_default_branch(spw_git *g, char *out, size_t cap);

/* A branch, tag or commit id of the clone as a commit id (out[41]). ERR_GIT. */
int spw_git_resolve(spw_git *g, const char *rev, char out[41]);

#endif
