/*
 * resource — handles that stand for secrets, and resolving them.
 *
 * Nodes, prompts, state, transcripts and Telegram messages never hold a
 * secret value, only a handle: "res_" and 26 random base32 characters
 * (128 bits). A handle belongs to one project (its scope: the key of the
 * project's thread, e.g. "tg:42:p3") and has a kind (llm, git, database,
 * generic), the secret it stands for, and the environment variable a
 * worker gets it in. Handles are allocated, listed, shown and revoked;
 * never deleted, so the audit trail keeps its meaning.
 *
 * Two ways to turn handles into values, both recorded in secret_audit
 * (which run or worker, when) and both feeding the redaction filter:
 *   - sec_env_resolve: the spawner, when a worker starts, turns the handles
 *     granted to it into environment variables. All or nothing: one
 *     unknown, revoked or foreign handle fails the whole grant with a
 *     message naming it, so the worker does not start and the run gets the
 *     error. LLM credentials (kind llm) never enter a sandbox and are
 *     refused here;
 *   - sec_res_resolve: one handle's value for code that stays outside the
 *     sandbox (the LLM gateway that adds a worker's credentials).
 * The LLM layer resolves endpoint keys by secret name instead
 * (sec_store_resolve_name, or sec_resolve_name in secrets/runtime.h).
 */
#ifndef ORCH_SECRETS_RESOURCE_H
#define ORCH_SECRETS_RESOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "core/pg.h"
#include "secrets/store.h"

#define SEC_HANDLE_LEN 30 /* "res_" + 26 */
#define SEC_ENV_MAX 128
#define SEC_NOTE_MAX 200
#define SEC_GRANT_MAX 64  /* handles one worker may be granted */

/* Checks a handle's form ("res_" + 26 of a-z2-7). ERR_INVALID. */
int sec_handle_check(const char *handle);

/* Checks a kind: llm, git, database or generic. ERR_INVALID. */
int sec_kind_check(const char *kind);

/* Checks a variable name a worker may get: [A-Za-z_][A-Za-z0-9_]*, at most
 * SEC_ENV_MAX, and none of PATH, HOME, USER, SHELL, PWD, IFS, ENV,
 * BASH_ENV, LD_* or ORCH_* (they would change how the worker or orchestrator
 * runs). ERR_INVALID saying why. */
int sec_env_name_check(const char *name);

/* What to allocate. */
typedef struct sec_res_spec {
	const char *scope;  /* the project (required) */
	const char *kind;   /* llm | git | database | generic; NULL: generic */
	const char *secret; /* the secret's name (required) */
	const char *env;    /* the variable a worker gets; NULL: the secret's name in
			       upper case with '.' and '-' made '_' */
	const char *note;   /* for people, at most SEC_NOTE_MAX bytes; may be NULL */
	const char *actor;  /* who allocates ("cli:uid 1000", "node:architect") */
} sec_res_spec;

/* Allocates a handle for `spec` and writes it into out[SEC_HANDLE_LEN + 1].
 * ERR_NOTFOUND when the secret does not exist, ERR_DENIED when the secret
 * is scoped to another project, ERR_INVALID for a bad scope, kind, variable
 * or note. Needs no master key. */
int sec_res_allocate(pg_conn *c, const sec_res_spec *spec, char out[SEC_HANDLE_LEN + 1]);

/* A handle's metadata. Never a value. */
typedef struct sec_res_info {
	char handle[SEC_HANDLE_LEN + 1];
	char scope[SEC_SCOPE_MAX + 1];
	char kind[16];
	char secret[SEC_NAME_MAX + 1];
	char env[SEC_ENV_MAX + 1];
	char note[SEC_NOTE_MAX + 1];
	char created_by[SEC_ACTOR_MAX + 1];
	char revoke_reason[SEC_NOTE_MAX + 1];
	int64_t created_ms;
	int64_t revoked_ms;   /* 0: live */
	int64_t last_used_ms; /* 0: never resolved */
	int64_t uses;
	int secret_gone;      /* the secret was removed since */
} sec_res_info;

/* Lists handles, oldest first: of one project (`scope`) or all (NULL),
 * live only unless `include_revoked`. *out (caller frees with free())
 * holds *n entries. */
int sec_res_list(pg_conn *c, const char *scope, int include_revoked, sec_res_info **out,
		 size_t *n);

/* One handle's metadata into *out. ERR_NOTFOUND. */
int sec_res_show(pg_conn *c, const char *handle, sec_res_info *out);

/* Revokes a handle, with an optional `reason`: it never resolves again.
 * ERR_NOTFOUND; revoking a revoked handle changes nothing and sets
 * *out_already (may be NULL). */
int sec_res_revoke(pg_conn *c, const char *handle, const char *reason, const char *actor,
		   int *out_already);

/* One row of the audit trail. */
typedef struct sec_audit_entry {
	int64_t id, at_ms, run_id; /* run_id 0: none */
	char action[16];           /* resolve deny allocate revoke set rm rotate */
	char handle[SEC_HANDLE_LEN + 1];
	char secret[SEC_NAME_MAX + 1];
	char scope[SEC_SCOPE_MAX + 1];
	char actor[SEC_ACTOR_MAX + 1];
	char detail[512];
} sec_audit_entry;

/* The newest `limit` audit rows (oldest first) of one handle, of one secret
 * (`secret`, when handle is NULL), or of everything (both NULL). *out
 * (free()) holds *n. */
int sec_res_audit(pg_conn *c, const char *handle, const char *secret, int limit,
		  sec_audit_entry **out, size_t *n);

/* --- resolving --- */

/* The handles granted to one worker. */
typedef struct sec_grant {
	const char *scope;            /* the worker's project */
	const char *const *handles;   /* as written in the spawn request */
	size_t nhandles;              /* at most SEC_GRANT_MAX; 0 gives an empty env */
	const char *actor;            /* "worker:<id>" */
	int64_t run_id;               /* the run that asked for the worker; 0: none */
} sec_grant;

/* A worker's secret environment, in locked memory. */
typedef struct sec_env sec_env;

/* Resolves every handle of `g` into *out, in the order given (a handle
 * named twice counts once). Each handle must exist, be live, belong to
 * g->scope, not be of kind llm, and map to a variable no other handle of
 * the grant uses; otherwise nothing is returned and the error names the
 * handle and what to do: ERR_NOTFOUND (unknown), ERR_DENIED (revoked,
 * another project's, an llm credential), ERR_CONFLICT (two handles, one
 * variable), ERR_CRYPTO (tampered ciphertext or wrong master key),
 * ERR_INVALID (malformed grant); a "deny" audit row records the refusal.
 * On success one "resolve" audit row per handle records actor, run and
 * time, the uses are counted, and the values join the redaction filter.
 * The caller owns *out (sec_env_free wipes it). */
int sec_env_resolve(sec_store *s, pg_conn *c, const sec_grant *g, sec_env **out);

size_t sec_env_count(const sec_env *e);
/* Borrowed; valid while `e` lives. */
const char *sec_env_name(const sec_env *e, size_t i);
const char *sec_env_value(const sec_env *e, size_t i);
const char *sec_env_handle(const sec_env *e, size_t i);
/* The variables as "NAME=value" strings, NULL-terminated, ready to append
 * to an execve() environment. Borrowed; valid while `e` lives. */
char *const *sec_env_strings(const sec_env *e);

/* Wipes and frees. NULL is a no-op. */
void sec_env_free(sec_env *e);

/* Resolves one handle of project `scope` for code that runs outside any
 * sandbox (the LLM gateway adding a worker's credentials): the same
 * checks as sec_env_resolve, kind llm allowed. *out_value: sec_value_free. */
int sec_res_resolve(sec_store *s, pg_conn *c, const char *scope, const char *handle,
		    const char *actor, int64_t run_id, char **out_value);

#endif
