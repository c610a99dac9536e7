#include "secrets/resource.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/utf8.h"
#include "secrets/redact.h"
#include "secrets/store_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* --- checks --- */

int sec_handle_check(const char *handle)
{
	size_t n = handle ? strlen(handle) : 0;
	char q[48]; /* the quote: 40 bytes at most, whole characters, one line */

	if (n != SEC_HANDLE_LEN || strncmp(handle, "res_", 4) != 0)
		goto bad;
	for (size_t i = 4; i < n; i++)
		if (!memchr(b32, handle[i], sizeof(b32) - 1))
			goto bad;
	return 0;
bad:
	utf8_excerpt(q, sizeof(q), handle ? handle : "", n, 40);
	return err_set(ERR_INVALID,
		       "'%s' is not a resource handle (res_ followed by 26 characters a-z, 2-7)", q);
}

int sec_kind_check(const char *kind)
{
	static const char *const kinds[] = {"llm", "git", "database", "generic"};
	char q[48];

	for (size_t i = 0; kind && i < 4; i++)
		if (strcmp(kind, kinds[i]) == 0)
			return 0;
	utf8_excerpt(q, sizeof(q), kind ? kind : "", kind ? strlen(kind) : 0, 40);
	return err_set(ERR_INVALID, "kind '%s' is unknown: use llm, git, database or generic", q);
}

int sec_env_name_check(const char *name)
{
	static const char *const reserved[] = {"PATH", "HOME",  "USER",     "SHELL",
					       "PWD",  "IFS",   "ENV",      "BASH_ENV",
					       "TERM", "TMPDIR", "LOGNAME"};
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > SEC_ENV_MAX)
		return err_set(ERR_INVALID, "a variable name must have 1 to %d characters",
			       SEC_ENV_MAX);
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
			 (i > 0 && ch >= '0' && ch <= '9');
		if (!ok)
			return err_set(ERR_INVALID,
				       "'%.64s' is not a variable name: use letters, digits and _, "
				       "not starting with a digit (e.g. GITHUB_TOKEN)",
				       name);
	}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcmp(name, reserved[i]) == 0)
			return err_set(ERR_INVALID,
				       "variable %s is reserved (it changes how a worker runs): "
				       "choose another name with --env",
				       name);
	if (strncmp(name, "LD_", 3) == 0 || strncmp(name, "ORCH_", 5) == 0)
		return err_set(ERR_INVALID,
			       "variables starting with LD_ or ORCH_ are reserved (they change how a "
			       "worker or orchestrator runs): choose another name with --env");
	return 0;
}

static int note_check(const char *note, const char *what)
{
	size_t n = note ? strlen(note) : 0;

	if (n > SEC_NOTE_MAX)
		return err_set(ERR_INVALID, "the %s is longer than %d bytes", what, SEC_NOTE_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)note[i] < ' ' && note[i] != '\t')
			return err_set(ERR_INVALID, "the %s holds a control character", what);
	return 0;
}

/* --- allocating, listing, revoking --- */

static void new_handle(char out[SEC_HANDLE_LEN + 1])
{
	unsigned char rnd[26];

	randombytes_buf(rnd, sizeof(rnd));
	memcpy(out, "res_", 4);
	for (size_t i = 0; i < 26; i++)
		out[4 + i] = b32[rnd[i] & 31];
	out[SEC_HANDLE_LEN] = '\0';
}

/* The default variable for a secret: upper case, '.' and '-' made '_'. */
static void default_env(const char *secret, char out[SEC_ENV_MAX + 1])
{
	size_t i;

	for (i = 0; secret[i] && i < SEC_ENV_MAX; i++) {
		char ch = secret[i];
		if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		else if (ch == '.' || ch == '-')
			ch = '_';
		out[i] = ch;
	}
	out[i] = '\0';
}

int sec_res_allocate(pg_conn *c, const sec_res_spec *spec, char out[SEC_HANDLE_LEN + 1])
{
	char env[SEC_ENV_MAX + 1], handle[SEC_HANDLE_LEN + 1];
	const char *kind = spec->kind ? spec->kind : "generic";
	PGresult *r = NULL;
	int rc, in_tx = 0;

	rc = sec_scope_check(spec->scope);
	if (rc == 0)
		rc = sec_kind_check(kind);
	if (rc == 0)
		rc = sec_name_check(spec->secret);
	if (rc == 0)
		rc = note_check(spec->note, "note");
	if (rc == 0)
		rc = sec_actor_check(spec->actor);
	if (rc < 0)
		return rc;
	if (spec->env)
		snprintf(env, sizeof(env), "%s", spec->env);
	else
		default_env(spec->secret, env);
	rc = sec_env_name_check(env);
	if (rc < 0) {
		if (!spec->env)
			err_wrap("secret %s gives no usable variable name; choose one with --env",
				 spec->secret);
		return rc;
	}

	rc = sec_tx_begin(c);
	if (rc < 0)
		goto done;
	in_tx = 1;
	{
		const char *p[1] = {spec->secret};
		rc = pg_exec(c, &r, "SELECT id, scope FROM secrets WHERE name = $1 FOR SHARE", 1, p);
	}
	if (rc < 0)
		goto done;
	if (pg_rows(r) != 1) {
		rc = err_set(ERR_NOTFOUND,
			     "no secret named %s: store it first with 'orchestrator secrets set %s'",
			     spec->secret, spec->secret);
		goto done;
	}
	if (!pg_isnull(r, 0, 1) && strcmp(pg_val(r, 0, 1), spec->scope) != 0) {
		rc = err_set(ERR_DENIED,
			     "secret %s is reserved for project %s: it cannot be granted to %s",
			     spec->secret, pg_val(r, 0, 1), spec->scope);
		goto done;
	}
	new_handle(handle);
	{
		const char *p[8] = {handle, spec->scope, kind,      pg_val(r, 0, 0),
				    spec->secret, env,     spec->note ? spec->note : "", spec->actor};
		rc = pg_exec(c, NULL,
			     "INSERT INTO resources (handle, scope, kind, secret_id, secret_name, env, "
			     " note, created_by) VALUES ($1, $2, $3, $4::bigint, $5, $6, $7, $8)",
			     8, p);
	}
	if (rc == 0) {
		char detail[SEC_ENV_MAX + 40];
		snprintf(detail, sizeof(detail), "kind %s, variable %s", kind, env);
		rc = sec_audit(c, "allocate", handle, spec->secret, spec->scope, spec->actor, 0,
			       detail);
	}
	if (rc == 0)
		rc = sec_tx_commit(c);
	in_tx = 0;
	if (rc == 0)
		memcpy(out, handle, sizeof(handle));
done:
	if (in_tx && rc < 0)
		sec_tx_rollback(c);
	PQclear(r);
	return rc;
}

#define INFO_COLS                                                                              \
	"r.handle, r.scope, r.kind, r.secret_name, r.env, r.note, r.created_by, "              \
	"coalesce(r.revoke_reason, ''), (extract(epoch FROM r.created_at) * 1000)::bigint, "   \
	"(extract(epoch FROM r.revoked_at) * 1000)::bigint, "                                  \
	"(extract(epoch FROM r.last_used_at) * 1000)::bigint, r.uses, r.secret_id IS NULL"

static void info_of(const PGresult *r, int i, void *item)
{
	sec_res_info *o = item;

	memset(o, 0, sizeof(*o));
	snprintf(o->handle, sizeof(o->handle), "%s", pg_val(r, i, 0));
	snprintf(o->scope, sizeof(o->scope), "%s", pg_val(r, i, 1));
	snprintf(o->kind, sizeof(o->kind), "%s", pg_val(r, i, 2));
	snprintf(o->secret, sizeof(o->secret), "%s", pg_val(r, i, 3));
	snprintf(o->env, sizeof(o->env), "%s", pg_val(r, i, 4));
	snprintf(o->note, sizeof(o->note), "%s", pg_val(r, i, 5));
	snprintf(o->created_by, sizeof(o->created_by), "%s", pg_val(r, i, 6));
	snprintf(o->revoke_reason, sizeof(o->revoke_reason), "%s", pg_val(r, i, 7));
	o->created_ms = sec_ms_of(r, i, 8);
	o->revoked_ms = sec_ms_of(r, i, 9);
	o->last_used_ms = sec_ms_of(r, i, 10);
	o->uses = pg_int(r, i, 11);
	o->secret_gone = strcmp(pg_val(r, i, 12), "t") == 0;
}

int sec_res_list(pg_conn *c, const char *scope, int include_revoked, sec_res_info **out,
		 size_t *n)
{
	const char *p[2] = {scope, include_revoked ? "t" : "f"};
	PGresult *r = NULL;
	int rc;

	if (scope) {
		rc = sec_scope_check(scope);
		if (rc < 0)
			return rc;
	}
	rc = pg_exec(c, &r,
		     "SELECT " INFO_COLS " FROM resources r "
		     "WHERE ($1::text IS NULL OR r.scope = $1) "
		     "AND ($2::boolean OR r.revoked_at IS NULL) "
		     "ORDER BY r.created_at, r.handle",
		     2, p);
	if (rc == 0) {
		*out = sec_rows_read(r, sizeof(**out), info_of, n);
		if (!*out)
			rc = ERR_NOMEM;
	}
	PQclear(r);
	return rc;
}

int sec_res_show(pg_conn *c, const char *handle, sec_res_info *out)
{
	const char *p[1] = {handle};
	PGresult *r = NULL;
	int rc = sec_handle_check(handle);

	if (rc < 0)
		return rc;
	rc = pg_exec(c, &r, "SELECT " INFO_COLS " FROM resources r WHERE r.handle = $1", 1, p);
	if (rc < 0)
		goto done;
	if (pg_rows(r) != 1) {
		rc = err_set(ERR_NOTFOUND, "no handle %s ('orchestrator resources list' shows them)",
			     handle);
		goto done;
	}
	info_of(r, 0, out);
done:
	PQclear(r);
	return rc;
}

int sec_res_revoke(pg_conn *c, const char *handle, const char *reason, const char *actor,
		   int *out_already)
{
	PGresult *r = NULL;
	int rc = sec_handle_check(handle);

	if (out_already)
		*out_already = 0;
	if (rc == 0)
		rc = note_check(reason, "reason");
	if (rc == 0)
		rc = sec_actor_check(actor);
	if (rc < 0)
		return rc;
	{
		const char *p[3] = {handle, reason && *reason ? reason : "revoked", actor};
		rc = pg_exec(c, &r,
			     "WITH rev AS (UPDATE resources SET revoked_at = now(), revoke_reason = $2 "
			     "  WHERE handle = $1 AND revoked_at IS NULL "
			     "  RETURNING handle, secret_name, scope), "
			     " aud AS (INSERT INTO secret_audit (action, handle, secret_name, scope, "
			     "  actor, detail) SELECT 'revoke', handle, secret_name, scope, $3, $2 "
			     "  FROM rev) "
			     "SELECT (SELECT count(*) FROM rev), "
			     " (SELECT count(*) FROM resources WHERE handle = $1)",
			     3, p);
	}
	if (rc < 0)
		goto done;
	if (pg_int(r, 0, 0) == 0) {
		if (pg_int(r, 0, 1) == 0) {
			rc = err_set(ERR_NOTFOUND, "no handle %s", handle);
			goto done;
		}
		if (out_already)
			*out_already = 1;
	}
done:
	PQclear(r);
	return rc;
}

static void audit_of(const PGresult *r, int i, void *item)
{
	sec_audit_entry *o = item;

	o->id = pg_int(r, i, 0);
	o->at_ms = pg_int(r, i, 1);
	o->run_id = pg_int(r, i, 2);
	snprintf(o->action, sizeof(o->action), "%s", pg_val(r, i, 3));
	snprintf(o->handle, sizeof(o->handle), "%s", pg_val(r, i, 4));
	snprintf(o->secret, sizeof(o->secret), "%s", pg_val(r, i, 5));
	snprintf(o->scope, sizeof(o->scope), "%s", pg_val(r, i, 6));
	snprintf(o->actor, sizeof(o->actor), "%s", pg_val(r, i, 7));
	snprintf(o->detail, sizeof(o->detail), "%s", pg_val(r, i, 8));
}

int sec_res_audit(pg_conn *c, const char *handle, const char *secret, int limit,
		  sec_audit_entry **out, size_t *n)
{
	char lim[16];
	const char *p[3] = {handle, secret, lim};
	PGresult *r = NULL;
	int rc;

	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 50);
	rc = pg_exec(c, &r,
		     "SELECT * FROM (SELECT id, (extract(epoch FROM at) * 1000)::bigint, "
		     " coalesce(run_id, 0), action, coalesce(handle, ''), coalesce(secret_name, ''), "
		     " coalesce(scope, ''), actor, detail FROM secret_audit "
		     " WHERE ($1::text IS NULL OR handle = $1) "
		     " AND ($2::text IS NULL OR secret_name = $2) "
		     " ORDER BY id DESC LIMIT $3::int) t ORDER BY id",
		     3, p);
	if (rc == 0) {
		*out = sec_rows_read(r, sizeof(**out), audit_of, n);
		if (!*out)
			rc = ERR_NOMEM;
	}
	PQclear(r);
	return rc;
}

/* --- resolving --- */

struct sec_env {
	size_t n;
	char **names;    /* malloc'd; variable names are not secret */
	char **handles;
	char **strings;  /* n + 1 pointers into `block`; NULL-terminated */
	char *block;     /* sodium_malloc: "NAME=value\0" back to back */
	size_t *name_len;
};

size_t sec_env_count(const sec_env *e)
{
	return e ? e->n : 0;
}

const char *sec_env_name(const sec_env *e, size_t i)
{
	return i < e->n ? e->names[i] : NULL;
}

const char *sec_env_value(const sec_env *e, size_t i)
{
	return i < e->n ? e->strings[i] + e->name_len[i] + 1 : NULL;
}

const char *sec_env_handle(const sec_env *e, size_t i)
{
	return i < e->n ? e->handles[i] : NULL;
}

char *const *sec_env_strings(const sec_env *e)
{
	return e->strings;
}

void sec_env_free(sec_env *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++) {
		if (e->names)
			free(e->names[i]);
		if (e->handles)
			free(e->handles[i]);
	}
	free(e->names);
	free(e->handles);
	free(e->strings);
	free(e->name_len);
	if (e->block)
		sodium_free(e->block); /* wipes */
	free(e);
}

static const pg_stmt st_lookup = {
	"sec_res_lookup",
	"SELECT r.handle, r.scope, r.kind, r.env, r.revoked_at IS NOT NULL, "
	" coalesce(r.revoke_reason, ''), r.secret_name, s.name IS NULL, "
	" encode(s.nonce, 'hex'), encode(s.sealed, 'hex'), k.version, k.kcv "
	"FROM resources r LEFT JOIN secrets s ON s.id = r.secret_id "
	"CROSS JOIN secret_keys k WHERE k.id = 1 AND r.handle = ANY ($1::text[])",
	1};

static const pg_stmt st_resolved = {
	"sec_res_resolved",
	"WITH used AS (UPDATE resources SET last_used_at = now(), uses = uses + 1 "
	"  WHERE handle = ANY ($1::text[]) RETURNING handle, scope, secret_id, secret_name, env), "
	" sec AS (UPDATE secrets SET last_used_at = now(), uses = uses + 1 "
	"  WHERE id IN (SELECT secret_id FROM used)) "
	"INSERT INTO secret_audit (action, handle, secret_name, scope, actor, run_id, detail) "
	"SELECT 'resolve', handle, secret_name, scope, $2, $3::bigint, $4 || env FROM used",
	4};

/* Records a refused resolution and returns the error already set. */
static int deny(pg_conn *c, const sec_grant *g, const char *handle)
{
	char keep[1024], h[SEC_HANDLE_LEN + 1];
	int code = err_last_code();

	snprintf(keep, sizeof(keep), "%s", err_last());
	/* a malformed handle is kept short in the record */
	snprintf(h, sizeof(h), "%s", handle ? handle : "");
	if (!pg_conn_broken(c))
		sec_audit(c, "deny", h[0] ? h : NULL, NULL, g->scope, g->actor, g->run_id, keep);
	return err_set(code ? code : ERR_DENIED, "%s", keep);
}

/* Index of `handle` in the result, or -1. */
static int row_of(const PGresult *r, const char *handle)
{
	for (int i = 0; i < pg_rows(r); i++)
		if (strcmp(pg_val(r, i, 0), handle) == 0)
			return i;
	return -1;
}

/* The checks of one handle against its row. */
static int check_row(const PGresult *r, int i, const char *handle, const sec_grant *g,
		     int allow_llm)
{
	if (i < 0)
		return err_set(ERR_NOTFOUND,
			       "handle %s does not exist: allocate one with 'orchestrator "
			       "resources allocate' and grant that",
			       handle);
	if (strcmp(pg_val(r, i, 1), g->scope) != 0)
		return err_set(ERR_DENIED,
			       "handle %s does not belong to project %s",
			       handle, g->scope);
	if (strcmp(pg_val(r, i, 4), "t") == 0)
		return err_set(ERR_DENIED,
			       "handle %s was revoked (%s): allocate a new handle if it still "
			       "needs secret %s",
			       handle, pg_val(r, i, 5), pg_val(r, i, 6));
	if (strcmp(pg_val(r, i, 7), "t") == 0)
		return err_set(ERR_NOTFOUND,
			       "handle %s stands for secret %s, which was removed",
			       handle, pg_val(r, i, 6));
	if (!allow_llm && strcmp(pg_val(r, i, 2), "llm") == 0)
		return err_set(ERR_DENIED,
			       "handle %s is an LLM credential: those never enter a sandbox (the "
			       "LLM gateway adds them to a worker's requests); grant it to the "
			       "gateway, not to the worker's environment",
			       handle);
	return 0;
}

/* The distinct handles of g into uniq (*nu of them), each checked; on an
 * error *failed names the handle. */
static int unique_handles(const sec_grant *g, const char **uniq, size_t *nu, const char **failed)
{
	for (size_t i = 0; i < g->nhandles; i++) {
		int seen = 0;
		int rc = sec_handle_check(g->handles[i]);
		if (rc < 0) {
			*failed = g->handles[i];
			return rc;
		}
		for (size_t k = 0; k < *nu; k++)
			if (strcmp(uniq[k], g->handles[i]) == 0)
				seen = 1;
		if (!seen)
			uniq[(*nu)++] = g->handles[i];
	}
	return 0;
}

/* Finds the row of each of uniq[0..nu) in r (rows[i]) and checks it, and
 * that no two handles set the same variable; on an error *failed names the
 * handle. */
static int check_rows(PGresult *r, const char **uniq, size_t nu, int *rows, const sec_grant *g,
		      int allow_llm, const char **failed)
{
	for (size_t i = 0; i < nu; i++) {
		int rc;
		rows[i] = row_of(r, uniq[i]);
		rc = check_row(r, rows[i], uniq[i], g, allow_llm);
		if (rc < 0) {
			*failed = uniq[i];
			return rc;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(pg_val(r, rows[k], 3), pg_val(r, rows[i], 3)) == 0) {
				*failed = uniq[i];
				return err_set(ERR_CONFLICT,
					       "handles %s and %s both set variable %s: grant only "
					       "one of them",
					       uniq[k], uniq[i], pg_val(r, rows[i], 3));
			}
	}
	return 0;
}

/* Fills e (allocated, empty) with the nu variables NAME=value: names from
 * rows[i] of r, values plain[i] (plen[i] bytes), all strings in one locked
 * block of `total` bytes. */
static int build_env(sec_env *e, PGresult *r, const int *rows, const char **uniq,
		     char *const *plain, const size_t *plen, size_t nu, size_t total)
{
	char *w;

	e->names = calloc(nu + 1, sizeof(char *));
	e->handles = calloc(nu + 1, sizeof(char *));
	e->strings = calloc(nu + 1, sizeof(char *));
	e->name_len = calloc(nu + 1, sizeof(size_t));
	e->block = sodium_malloc(total ? total : 1);
	if (!e->names || !e->handles || !e->strings || !e->name_len || !e->block)
		return err_set(ERR_NOMEM, "out of memory for a worker's environment");
	w = e->block;
	for (size_t i = 0; i < nu; i++) {
		const char *name = pg_val(r, rows[i], 3);
		size_t nl = strlen(name);
		e->names[i] = strdup(name);
		e->handles[i] = strdup(uniq[i]);
		e->n = i + 1;
		if (!e->names[i] || !e->handles[i])
			return err_set(ERR_NOMEM, "out of memory");
		e->name_len[i] = nl;
		e->strings[i] = w;
		memcpy(w, name, nl);
		w[nl] = '=';
		memcpy(w + nl + 1, plain[i], plen[i]);
		w[nl + 1 + plen[i]] = '\0';
		w += nl + 1 + plen[i] + 1;
	}
	return 0;
}

/* Resolves a grant; with `allow_llm` for code outside the sandbox. */
static int resolve(sec_store *s, pg_conn *c, const sec_grant *g, int allow_llm, sec_env **out)
{
	sec_env *e = NULL;
	PGresult *r = NULL;
	buf arr;
	char run[32];
	const char **uniq = NULL;
	char **plain = NULL;
	size_t *plen = NULL, nu = 0, total = 0;
	int rc = 0, *rows = NULL;
	const char *failed = NULL;

	buf_init(&arr, 0);
	rc = sec_scope_check(g->scope);
	if (rc == 0)
		rc = sec_actor_check(g->actor);
	if (rc == 0 && g->nhandles > SEC_GRANT_MAX)
		rc = err_set(ERR_INVALID, "a worker may be granted at most %d handles, not %zu",
			     SEC_GRANT_MAX, g->nhandles);
	if (rc < 0)
		return rc;
	uniq = calloc(g->nhandles + 1, sizeof(*uniq));
	rows = calloc(g->nhandles + 1, sizeof(*rows));
	plain = calloc(g->nhandles + 1, sizeof(*plain));
	plen = calloc(g->nhandles + 1, sizeof(*plen));
	e = calloc(1, sizeof(*e));
	if (!uniq || !rows || !plain || !plen || !e) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	rc = unique_handles(g, uniq, &nu, &failed);
	if (rc == 0)
		rc = pg_text_array(&arr, (const char *const *)uniq, nu);
	if (rc < 0)
		goto done;
	if (nu > 0) {
		const char *p[1] = {buf_cstr(&arr)};
		rc = pg_exec_stmt(c, &r, &st_lookup, p);
		if (rc < 0)
			goto done;
		if (pg_rows(r) == 0) {
			/* either no handle exists, or secrets were never set up */
			PGresult *k = NULL;
			if (pg_exec(c, &k, "SELECT 1 FROM secret_keys WHERE id = 1", 0, NULL) == 0 &&
			    pg_rows(k) == 0) {
				PQclear(k);
				rc = err_set(ERR_NOTFOUND, "secrets are not set up in this database: "
							   "run 'orchestrator secrets init'");
				failed = uniq[0];
				goto done;
			}
			PQclear(k);
		}
	}
	rc = check_rows(r, uniq, nu, rows, g, allow_llm, &failed);
	if (rc < 0)
		goto done;
	if (nu > 0) {
		rc = sec_store_sync(s, (int)pg_int(r, 0, 10), pg_val(r, 0, 11));
		if (rc < 0) {
			failed = uniq[0];
			goto done;
		}
	}
	for (size_t i = 0; i < nu; i++) {
		int row = rows[i];
		rc = sec_store_unseal(s, pg_val(r, row, 6), pg_val(r, row, 8), pg_val(r, row, 9),
				      &plain[i], &plen[i]);
		if (rc < 0) {
			failed = uniq[i];
			goto done;
		}
		total += strlen(pg_val(r, row, 3)) + 1 + plen[i] + 1;
	}

	/* build the environment in one locked block */
	rc = build_env(e, r, rows, uniq, plain, plen, nu, total);
	if (rc < 0)
		goto done;
	if (nu > 0) {
		const char *p[4] = {buf_cstr(&arr), g->actor, NULL,
				    allow_llm ? "outside the sandbox, as " : "into variable "};
		if (g->run_id > 0) {
			snprintf(run, sizeof(run), "%lld", (long long)g->run_id);
			p[2] = run;
		}
		rc = pg_exec_stmt(c, NULL, &st_resolved, p);
		if (rc < 0)
			goto done;
	}
	for (size_t i = 0; i < nu; i++)
		sec_redact_add(pg_val(r, rows[i], 6), plain[i], plen[i]);
	*out = e;
	e = NULL;
done:
	if (rc < 0 && failed) {
		if (!allow_llm)
			err_wrap("the worker was not started");
		rc = deny(c, g, failed);
	}
	for (size_t i = 0; plain && i < g->nhandles; i++)
		sec_value_free(plain[i]);
	free(plain);
	free(plen);
	free(rows);
	free(uniq);
	sec_env_free(e);
	buf_free(&arr);
	PQclear(r);
	return rc;
}

int sec_env_resolve(sec_store *s, pg_conn *c, const sec_grant *g, sec_env **out)
{
	return resolve(s, c, g, 0, out);
}

int sec_res_resolve(sec_store *s, pg_conn *c, const char *scope, const char *handle,
		    const char *actor, int64_t run_id, char **out_value)
{
	const char *hs[1] = {handle};
	sec_grant g = {scope, hs, 1, actor, run_id};
	sec_env *e = NULL;
	const char *v;
	int rc = resolve(s, c, &g, 1, &e);

	if (rc < 0)
		return rc;
	v = sec_env_value(e, 0);
	*out_value = sec_value_dup(v, strlen(v));
	sec_env_free(e);
	if (!*out_value)
		return err_set(ERR_NOMEM, "out of memory");
	return 0;
}
