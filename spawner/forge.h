/*
 * forge — a client of a forge's REST API for the pull requests of the
 * factory's changes: GitHub's (api.github.com, or GitHub Enterprise Server's
 * HOST/api/v3) and the part of Gitea's and Forgejo's (HOST/api/v1) that is
 * compatible with it for these endpoints.
 *
 * What it does: find, open, edit and read a pull request; read what people
 * wrote on it (conversation comments, review comments, submitted reviews)
 * after a point; read the failures CI reported on a commit (commit statuses
 * and check runs). Every request carries the User-Agent GitHub requires, the
 * API version header, and the token as a Bearer credential; the token never
 * appears in an error message or a log line (nor does a URL).
 *
 * Errors are GitHub's answers translated here, each with what to do:
 *   401             ERR_AUTH      the token is refused (bad or expired)
 *   403, 429        ERR_BUSY      a rate limit (primary or secondary): try
 *                                 again after the time the message says
 *   403             ERR_DENIED    the token may not do it (its permissions)
 *   404             ERR_NOTFOUND  no such repository or pull request, or the
 *                                 token cannot see it
 *   422, 400        ERR_INVALID   the request was refused (GitHub's reasons)
 *   5xx, network    ERR_HTTP      try again
 *
 * A client is used by one thread at a time.
 */
#ifndef ORCH_SPAWNER_FORGE_H
#define ORCH_SPAWNER_FORGE_H

#include <stddef.h>
#include <stdint.h>

#define FORGE_USER_AGENT "orchestrator"

/* A repository on a forge: where its API is, and its owner and name. */
typedef struct forge_repo {
	char api[512];   /* the API's base URL, without a trailing slash */
	char owner[128];
	char name[128];
} forge_repo;

/* The repository that the git URL `remote` (http(s)://HOST/OWNER/NAME[.git])
 * names, with its API at `api` when given (ORCH_FORGE_API), else at
 * https://api.github.com for github.com and SCHEME://HOST/api/v3 (GitHub
 * Enterprise's layout) for any other host. ERR_INVALID saying what to set. */
int forge_repo_from_url(forge_repo *out, const char *remote, const char *api);

typedef struct forge forge;

/* A client for `repo` (copied) that authenticates with `secret`, the value
 * of a git handle: "user:token" (the token is used) or a bare token. The
 * caller owns *out (forge_free); it wipes its copy of the token. */
int forge_new(forge **out, const forge_repo *repo, const char *secret);
void forge_free(forge *f);

/* A pull request as the API shows it. */
typedef struct forge_pr {
	int64_t number;
	char html_url[512];
	char state[16];     /* "open" or "closed" */
	int merged;
	char head[256];     /* the head branch */
	char head_sha[41];
	char base[256];
} forge_pr;

/* The open pull request whose head is branch `head` of the repository
 * itself (not a fork). ERR_NOTFOUND when there is none. */
int forge_pr_find_open(forge *f, const char *head, forge_pr *out);

/* Opens a pull request from branch `head` into `base`. GitHub refuses
 * (ERR_INVALID, its reason in the message) a head or base that does not
 * exist, a head with no commits beyond its base, and a second open pull
 * request for the same head. */
int forge_pr_create(forge *f, const char *head, const char *base, const char *title,
		    const char *body, forge_pr *out);

/* Changes the title and body (either may be NULL: left as it is). */
int forge_pr_edit(forge *f, int64_t number, const char *title, const char *body, forge_pr *out);

int forge_pr_get(forge *f, int64_t number, forge_pr *out);

/* The login of the token's user into out[cap]. */
int forge_login(forge *f, char *out, size_t cap);

/* Something a person wrote on a pull request. */
typedef enum forge_note_kind {
	FORGE_ISSUE_COMMENT,  /* the conversation */
	FORGE_REVIEW_COMMENT, /* a comment on a line of the diff */
	FORGE_REVIEW,         /* a submitted review (its body and state) */
	FORGE_NOTE_KINDS
} forge_note_kind;

typedef struct forge_note {
	forge_note_kind kind;
	int64_t id;
	char user[128];
	char state[32];   /* reviews: APPROVED, CHANGES_REQUESTED, COMMENTED */
	char path[512];   /* review comments: the file, and its line (0: none) */
	int line;
	char url[512];
	char *body;       /* owned; "" when none */
} forge_note;

typedef struct forge_notes {
	forge_note *v;
	size_t n;
} forge_notes;

/* What was written on pull request `number` after the ids in
 * after[FORGE_NOTE_KINDS] (one per kind; 0: from the start), oldest first
 * within each kind; at most 1000 of each. *out is the caller's
 * (forge_notes_free, also on failure). */
int forge_notes_since(forge *f, int64_t number, const int64_t after[FORGE_NOTE_KINDS],
		      forge_notes *out);
void forge_notes_free(forge_notes *n);

/* A failure CI reported on a commit. */
typedef struct forge_check {
	char context[256];     /* the status's context, or the check run's name */
	char state[32];        /* failure, error; or a check run's conclusion */
	char description[512];
	char url[512];
} forge_check;

/* The failures reported on commit `sha`: the latest status of each context
 * when it is "failure" or "error", and completed check runs whose
 * conclusion is failure, timed_out, cancelled or action_required (a forge
 * without check runs, as Gitea, has statuses only). *out is the caller's
 * (free()), *n their number. */
int forge_failures(forge *f, const char *sha, forge_check **out, size_t *n);

#endif
