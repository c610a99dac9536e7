#include "secrets/store.h"
#include "core/err.h"
#include "core/log.h"
#include "secrets/redact.h"
#include "secrets/store_int.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sec_store {
	pthread_mutex_t mu;   /* guards key, version, kcv */
	sec_key *key;
	int version;
	char kcv[SEC_KCV_HEX + 1];
	int has_src;          /* src is set: a rotated key file can be reloaded */
	sec_keysrc src;
	char where[1100];
};

/* --- values --- */

char *sec_value_alloc(size_t n)
{
	char *v = calloc(1, n + 1);

	if (v)
		(void)sodium_mlock(v, n + 1); /* best effort: RLIMIT_MEMLOCK may be small */
	return v;
}

char *sec_value_dup(const void *p, size_t n)
{
	char *v = sec_value_alloc(n);

	if (v && n)
		memcpy(v, p, n);
	return v;
}

void sec_value_free(char *v)
{
	if (!v)
		return;
	/* sodium_munlock wipes the whole allocation before unlocking it */
	if (sodium_munlock(v, malloc_usable_size(v)) != 0)
		sodium_memzero(v, malloc_usable_size(v));
	free(v);
}

/* --- checks --- */

int sec_name_check(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > SEC_NAME_MAX)
		return err_set(ERR_INVALID, "a secret name must have 1 to %d characters",
			       SEC_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			 (ch >= '0' && ch <= '9') || ch == '_' || (i > 0 && (ch == '.' || ch == '-'));
		if (!ok)
			return err_set(ERR_INVALID,
				       "secret name '%.*s' is not allowed: use letters, digits and _ "
				       "(and . or - after the first character), e.g. OPENAI_API_KEY",
				       (int)(n > 64 ? 64 : n), name);
	}
	return 0;
}

int sec_scope_check(const char *scope)
{
	size_t n = scope ? strlen(scope) : 0;

	if (n == 0 || n > SEC_SCOPE_MAX)
		return err_set(ERR_INVALID, "a project scope must have 1 to %d characters",
			       SEC_SCOPE_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)scope[i] <= ' ' || (unsigned char)scope[i] >= 0x7f)
			return err_set(ERR_INVALID,
				       "project scope '%.*s' holds a space or a non-printable "
				       "character: use a project key such as tg:42:p3",
				       (int)(n > 64 ? 64 : n), scope);
	return 0;
}

int sec_value_check(const void *value, size_t len)
{
	if (len < SEC_VALUE_MIN)
		return err_set(ERR_INVALID,
			       "the value is %zu bytes: secrets shorter than %d bytes cannot be "
			       "redacted from logs reliably, so they are refused",
			       len, SEC_VALUE_MIN);
	if (len > SEC_VALUE_MAX)
		return err_set(ERR_TOOBIG, "the value is %zu bytes: at most %d are accepted", len,
			       SEC_VALUE_MAX);
	if (memchr(value, '\0', len))
		return err_set(ERR_INVALID, "the value holds a NUL byte: it could not be passed "
					    "in an environment variable; refused");
	return 0;
}

int sec_actor_check(const char *actor)
{
	size_t n = actor ? strlen(actor) : 0;

	if (n == 0 || n > SEC_ACTOR_MAX)
		return err_set(ERR_INVALID, "an actor (who uses the secret, e.g. worker:w-3) must "
					    "have 1 to %d characters",
			       SEC_ACTOR_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)actor[i] < ' ' || (unsigned char)actor[i] == 0x7f)
			return err_set(ERR_INVALID, "the actor holds a control character");
	return 0;
}

/* --- transactions and audit --- */

int sec_tx_begin(pg_conn *c)
{
	return pg_exec(c, NULL, "BEGIN", 0, NULL);
}

int sec_tx_commit(pg_conn *c)
{
	return pg_exec(c, NULL, "COMMIT", 0, NULL);
}

void sec_tx_rollback(pg_conn *c)
{
	char keep[1024];
	int code = err_last_code();

	snprintf(keep, sizeof(keep), "%s", err_last());
	if (!pg_conn_broken(c))
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
	err_set(code, "%s", keep);
}

static const pg_stmt st_audit = {
	"sec_audit",
	"INSERT INTO secret_audit (action, handle, secret_name, scope, actor, run_id, detail) "
	"VALUES ($1, $2, $3, $4, $5, $6::bigint, coalesce($7, ''))",
	7};

int sec_audit(pg_conn *c, const char *action, const char *handle, const char *secret_name,
	      const char *scope, const char *actor, int64_t run_id, const char *detail)
{
	char run[32];
	const char *p[7] = {action, handle, secret_name, scope, actor, NULL, detail};

	if (run_id > 0) {
		snprintf(run, sizeof(run), "%lld", (long long)run_id);
		p[5] = run;
	}
	return pg_exec_stmt(c, NULL, &st_audit, p);
}

/* --- the key and the database --- */

static const pg_stmt st_key_row = {"sec_key_row",
				   "SELECT version, kcv FROM secret_keys WHERE id = 1", 0};

/* Reads the key row: 0 and the values, or ERR_NOTFOUND when there is none. */
static int read_key_row(pg_conn *c, const char *lock, int *version, char kcv[SEC_KCV_HEX + 1])
{
	PGresult *r = NULL;
	int rc;

	if (lock) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT version, kcv FROM secret_keys WHERE id = 1 %s",
			 lock);
		rc = pg_exec(c, &r, sql, 0, NULL);
	} else {
		rc = pg_exec_stmt(c, &r, &st_key_row, NULL);
	}
	if (rc < 0) {
		if (pg_last_sqlstate_is(PG_SQLSTATE_UNDEFINED_TABLE))
			rc = err_set(ERR_DB, "the database has no secrets tables: run 'orchestrator "
					     "migrate' first");
		goto done;
	}
	if (pg_rows(r) != 1) {
		rc = err_set(ERR_NOTFOUND, "secrets are not set up in this database: run "
					   "'orchestrator secrets init' first");
		goto done;
	}
	*version = (int)pg_int(r, 0, 0);
	snprintf(kcv, SEC_KCV_HEX + 1, "%s", pg_val(r, 0, 1));
done:
	PQclear(r);
	return rc;
}

static int key_matches(const sec_key *k, const char *kcv)
{
	char mine[SEC_KCV_HEX + 1];
	int eq;

	sec_key_check_value(k, mine);
	eq = sodium_memcmp(mine, kcv, SEC_KCV_HEX) == 0 && strlen(kcv) == SEC_KCV_HEX;
	return eq;
}

static int wrong_key(const char *where, int version)
{
	return err_set(ERR_CRYPTO,
		       "the master key from %s is not the key this database's secrets are sealed "
		       "with (key version %d): use the right key (restore the key file, or set "
		       "ORCH_MASTER_KEY); nothing was read or changed",
		       where, version);
}

/* Tries PATH.new: when it holds the key the database expects, a rotation
 * committed but did not get to replace PATH; completes it. 1 when done. */
static int recover_rotation(sec_key **out, const sec_keysrc *src, int version, const char *kcv)
{
	char newpath[1100];
	sec_keysrc nsrc;
	sec_key *nk = NULL;

	snprintf(newpath, sizeof(newpath), "%s.new", src->path);
	if (access(newpath, F_OK) != 0 || sec_keysrc_file(&nsrc, newpath) < 0)
		return 0;
	if (sec_key_load(&nk, &nsrc) < 0 || !key_matches(nk, kcv)) {
		sec_key_free(nk);
		return 0;
	}
	if (sec_key_file_replace(newpath, src->path) < 0) {
		sec_key_free(nk);
		err_wrap("a key rotation was interrupted: the database uses the key in %s; move it "
			 "to %s by hand", newpath, src->path);
		return -1;
	}
	log_warn("secrets", "completed an interrupted key rotation: %s now holds the key in use "
			    "(version %d)", src->path, version);
	*out = nk;
	return 1;
}

/* Loads the key of `src` that matches `kcv`, completing an interrupted
 * rotation on the way. */
static int load_matching(sec_key **out, const sec_keysrc *src, int version, const char *kcv)
{
	char where[1100], keep[1024];
	sec_key *k = NULL;
	int rc, code, rec;

	sec_keysrc_describe(src, where, sizeof(where));
	rc = sec_key_load(&k, src);
	if (rc == 0 && key_matches(k, kcv)) {
		*out = k;
		return 0;
	}
	sec_key_free(k);
	if (rc == 0)
		rc = wrong_key(where, version);
	if (src->from_env || (rc != ERR_NOTFOUND && rc != ERR_CRYPTO))
		return rc;
	code = rc;
	snprintf(keep, sizeof(keep), "%s", err_last());
	rec = recover_rotation(out, src, version, kcv);
	if (rec > 0)
		return 0;
	if (rec < 0)
		return err_last_code();
	if (code == ERR_NOTFOUND)
		return err_set(ERR_NOTFOUND,
			       "master key file %s does not exist, but this database's secrets are "
			       "sealed with a master key (version %d): restore the file from your "
			       "backup, or point ORCH_MASTER_KEY_FILE or ORCH_MASTER_KEY at the key",
			       src->path, version);
	return err_set(code, "%s", keep);
}

int sec_store_sync(sec_store *s, int version, const char *kcv)
{
	sec_key *k = NULL;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (version == s->version && strcmp(kcv, s->kcv) == 0)
		goto done;
	if (key_matches(s->key, kcv)) {
		s->version = version;
		goto done;
	}
	if (!s->has_src || s->src.from_env) {
		rc = err_set(ERR_CRYPTO,
			     "the master key was rotated (now version %d) after this process "
			     "loaded it from %s: restart it with the new key",
			     version, s->where);
		goto done;
	}
	rc = load_matching(&k, &s->src, version, kcv);
	if (rc < 0) {
		err_wrap("the master key was rotated (now version %d)", version);
		goto done;
	}
	sec_key_free(s->key);
	s->key = k;
	s->version = version;
	snprintf(s->kcv, sizeof(s->kcv), "%s", kcv);
	log_info("secrets", "reloaded the rotated master key (version %d) from %s", version,
		 s->where);
done:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int store_new(sec_store **out, sec_key *key, int version, const char *kcv,
		     const sec_keysrc *src)
{
	sec_store *s = calloc(1, sizeof(*s));

	if (!s) {
		sec_key_free(key);
		return err_set(ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&s->mu, NULL);
	s->key = key;
	s->version = version;
	snprintf(s->kcv, sizeof(s->kcv), "%s", kcv);
	if (src) {
		s->has_src = 1;
		s->src = *src;
		sec_keysrc_describe(src, s->where, sizeof(s->where));
	} else {
		snprintf(s->where, sizeof(s->where), "a key given in memory");
	}
	*out = s;
	return 0;
}

/* Opens a transaction (*in_tx becomes 1 once it is open: the caller rolls
 * it back), reads the key row locked with `lock` and brings the store's key
 * up to it (sec_store_sync). */
static int begin_synced(sec_store *s, pg_conn *c, const char *lock, int *in_tx)
{
	char kcv[SEC_KCV_HEX + 1];
	int version = 0;
	int rc = sec_tx_begin(c);

	if (rc < 0)
		return rc;
	*in_tx = 1;
	rc = read_key_row(c, lock, &version, kcv);
	if (rc == 0)
		rc = sec_store_sync(s, version, kcv);
	return rc;
}

int sec_store_open(sec_store **out, pg_conn *c, const sec_keysrc *src)
{
	char kcv[SEC_KCV_HEX + 1];
	sec_key *k = NULL;
	int version = 0;
	int rc = read_key_row(c, NULL, &version, kcv);

	if (rc < 0)
		return rc;
	rc = load_matching(&k, src, version, kcv);
	if (rc < 0)
		return rc;
	return store_new(out, k, version, kcv, src);
}

int sec_store_open_key(sec_store **out, pg_conn *c, sec_key *key)
{
	char kcv[SEC_KCV_HEX + 1];
	int version = 0;
	int rc = read_key_row(c, NULL, &version, kcv);

	if (rc < 0) {
		sec_key_free(key);
		return rc;
	}
	if (!key_matches(key, kcv)) {
		sec_key_free(key);
		return wrong_key("the key given", version);
	}
	return store_new(out, key, version, kcv, NULL);
}

void sec_store_free(sec_store *s)
{
	if (!s)
		return;
	sec_key_free(s->key);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

const char *sec_store_key_where(const sec_store *s)
{
	return s->where;
}

int sec_store_init(pg_conn *c, const sec_keysrc *src, const char *actor, sec_init_report *out)
{
	char kcv[SEC_KCV_HEX + 1], mine[SEC_KCV_HEX + 1];
	const char *p[1];
	sec_key *k = NULL;
	PGresult *r = NULL;
	int version = 0, rc;

	memset(out, 0, sizeof(*out));
	sec_keysrc_describe(src, out->where, sizeof(out->where));
	rc = sec_actor_check(actor);
	if (rc < 0)
		return rc;
	rc = read_key_row(c, NULL, &version, kcv);
	if (rc == 0) {
		/* already set up: only check that the key present is the right one */
		rc = load_matching(&k, src, version, kcv);
		if (rc == ERR_NOTFOUND)
			rc = err_set(ERR_NOTFOUND,
				     "this database's secrets are sealed with a master key (version "
				     "%d) that is not present: restore %s from your backup (a new key "
				     "could open nothing, so none is created)",
				     version, out->where);
		goto done;
	}
	if (rc != ERR_NOTFOUND)
		goto done;
	rc = sec_key_load(&k, src);
	if (rc == ERR_NOTFOUND && !src->from_env) {
		rc = sec_key_generate(&k);
		if (rc < 0)
			goto done;
		rc = sec_key_write_file(k, src->path);
		if (rc < 0)
			goto done;
		out->created_file = 1;
	}
	if (rc < 0)
		goto done;
	sec_key_check_value(k, mine);
	p[0] = mine;
	rc = pg_exec(c, &r,
		     "INSERT INTO secret_keys (id, version, kcv) VALUES (1, 1, $1) "
		     "ON CONFLICT (id) DO NOTHING RETURNING version",
		     1, p);
	if (rc < 0)
		goto done;
	if (pg_rows(r) == 0) {
		/* another init won the race: ours must match it or go */
		PQclear(r);
		r = NULL;
		rc = read_key_row(c, NULL, &version, kcv);
		if (rc == 0 && strcmp(kcv, mine) != 0)
			rc = err_set(ERR_CONFLICT, "another 'secrets init' set up a different master "
						   "key at the same time; run init again");
		goto done;
	}
	out->recorded = 1;
	rc = sec_audit(c, "rotate", NULL, NULL, NULL, actor, 0,
		       "secrets init: master key version 1 recorded");
done:
	if (rc < 0 && out->created_file) {
		unlink(src->path);
		out->created_file = 0;
	}
	PQclear(r);
	sec_key_free(k);
	return rc;
}

/* --- sealing --- */

/* Seals name NUL value under the store's key with a fresh nonce; writes
 * both in hex into new strings the caller frees. */
static int seal(sec_store *s, const char *name, const void *value, size_t len,
		char **nonce_hex, char **sealed_hex)
{
	unsigned char nonce[crypto_secretbox_NONCEBYTES];
	size_t nlen = strlen(name), plen = nlen + 1 + len, clen = plen + crypto_secretbox_MACBYTES;
	unsigned char *plain = sodium_malloc(plen);
	unsigned char *ct = malloc(clen);
	char *nh = malloc(2 * sizeof(nonce) + 1), *ch = malloc(2 * clen + 1);
	int rc = 0;

	if (!plain || !ct || !nh || !ch) {
		rc = err_set(ERR_NOMEM, "out of memory sealing a secret");
		goto done;
	}
	memcpy(plain, name, nlen + 1);
	memcpy(plain + nlen + 1, value, len);
	randombytes_buf(nonce, sizeof(nonce));
	pthread_mutex_lock(&s->mu);
	crypto_secretbox_easy(ct, plain, plen, nonce, sec_key_box_key(s->key));
	pthread_mutex_unlock(&s->mu);
	sodium_bin2hex(nh, 2 * sizeof(nonce) + 1, nonce, sizeof(nonce));
	sodium_bin2hex(ch, 2 * clen + 1, ct, clen);
	*nonce_hex = nh;
	*sealed_hex = ch;
	nh = ch = NULL;
done:
	if (plain)
		sodium_free(plain);
	free(ct);
	free(nh);
	free(ch);
	return rc;
}

int sec_store_unseal(sec_store *s, const char *name, const char *nonce_hex,
		     const char *sealed_hex, char **out, size_t *out_len)
{
	unsigned char nonce[crypto_secretbox_NONCEBYTES];
	size_t nlen = strlen(name), hlen = strlen(sealed_hex), clen = 0, got = 0, plen;
	unsigned char *ct = NULL;
	char *plain = NULL;
	int rc = 0, bad;

	if (sodium_hex2bin(nonce, sizeof(nonce), nonce_hex, strlen(nonce_hex), NULL, &got,
			   NULL) != 0 ||
	    got != sizeof(nonce)) {
		rc = err_set(ERR_CRYPTO, "secret %s: its stored nonce is damaged", name);
		goto done;
	}
	ct = malloc(hlen / 2 + 1);
	if (!ct) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	if (sodium_hex2bin(ct, hlen / 2 + 1, sealed_hex, hlen, NULL, &clen, NULL) != 0 ||
	    clen < crypto_secretbox_MACBYTES + nlen + 1) {
		rc = err_set(ERR_CRYPTO, "secret %s: its stored ciphertext is damaged", name);
		goto done;
	}
	plen = clen - crypto_secretbox_MACBYTES;
	plain = sec_value_alloc(plen);
	if (!plain) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	pthread_mutex_lock(&s->mu);
	bad = crypto_secretbox_open_easy((unsigned char *)plain, ct, clen, nonce,
					 sec_key_box_key(s->key));
	pthread_mutex_unlock(&s->mu);
	if (bad || memcmp(plain, name, nlen) != 0 || plain[nlen] != '\0') {
		rc = err_set(ERR_CRYPTO,
			     "secret %s failed its integrity check: the stored ciphertext was "
			     "altered or copied from another secret; refusing it (set it again with "
			     "'orchestrator secrets set %s')",
			     name, name);
		goto done;
	}
	memmove(plain, plain + nlen + 1, plen - nlen - 1);
	sodium_memzero(plain + plen - nlen - 1, nlen + 2);
	*out_len = plen - nlen - 1;
	*out = plain;
	plain = NULL;
done:
	sec_value_free(plain);
	free(ct);
	return rc;
}

/* --- secrets --- */

int sec_store_set(sec_store *s, pg_conn *c, const char *name, const char *scope,
		  const void *value, size_t len, const char *actor, int *out_created)
{
	char *nonce_hex = NULL, *sealed_hex = NULL;
	PGresult *r = NULL;
	int rc, in_tx = 0, created;

	rc = sec_name_check(name);
	if (rc == 0 && scope && *scope)
		rc = sec_scope_check(scope);
	if (rc == 0)
		rc = sec_value_check(value, len);
	if (rc == 0)
		rc = sec_actor_check(actor);
	if (rc < 0)
		return rc;

	rc = begin_synced(s, c, "FOR SHARE", &in_tx);
	if (rc < 0)
		goto done;
	if (scope && *scope) {
		const char *p[2] = {name, scope};
		rc = pg_exec(c, &r,
			     "SELECT string_agg(r.handle || ' (' || r.scope || ')', ', ') "
			     "FROM secrets s JOIN resources r ON r.secret_id = s.id "
			     "WHERE s.name = $1 AND r.revoked_at IS NULL AND r.scope <> $2",
			     2, p);
		if (rc < 0)
			goto done;
		if (!pg_isnull(r, 0, 0)) {
			rc = err_set(ERR_CONFLICT,
				     "secret %s has live handles in other projects: %s; revoke them "
				     "first ('orchestrator resources revoke HANDLE') or keep the scope",
				     name, pg_val(r, 0, 0));
			goto done;
		}
		PQclear(r);
		r = NULL;
	}
	rc = seal(s, name, value, len, &nonce_hex, &sealed_hex);
	if (rc < 0)
		goto done;
	{
		const char *p[5] = {name, scope && *scope ? scope : NULL, nonce_hex, sealed_hex,
				    scope ? "set" : "keep"};
		rc = pg_exec(c, &r,
			     "INSERT INTO secrets (name, scope, nonce, sealed) "
			     "VALUES ($1, $2, decode($3, 'hex'), decode($4, 'hex')) "
			     "ON CONFLICT (name) DO UPDATE SET nonce = EXCLUDED.nonce, "
			     " sealed = EXCLUDED.sealed, updated_at = now(), "
			     " scope = CASE WHEN $5 = 'keep' THEN secrets.scope ELSE EXCLUDED.scope END "
			     "RETURNING (xmax = 0)",
			     5, p);
	}
	if (rc < 0)
		goto done;
	created = strcmp(pg_val(r, 0, 0), "t") == 0;
	rc = sec_audit(c, "set", NULL, name, scope && *scope ? scope : NULL, actor, 0,
		       created ? "created" : "value replaced");
	if (rc < 0)
		goto done;
	rc = sec_tx_commit(c);
	in_tx = 0;
	if (rc < 0)
		goto done;
	if (out_created)
		*out_created = created;
	/* this process now knows the value: keep it out of its logs */
	sec_redact_add(name, value, len);
done:
	if (in_tx && rc < 0)
		sec_tx_rollback(c);
	PQclear(r);
	free(nonce_hex);
	free(sealed_hex);
	return rc;
}

static const pg_stmt st_get = {
	"sec_get",
	"SELECT s.id, encode(s.nonce, 'hex'), encode(s.sealed, 'hex'), k.version, k.kcv "
	"FROM secrets s CROSS JOIN secret_keys k WHERE s.name = $1 AND k.id = 1",
	1};

static const pg_stmt st_used = {
	"sec_used", "UPDATE secrets SET last_used_at = now(), uses = uses + 1 WHERE id = $1", 1};

/* Reads and decrypts secret `name`; *id (may be NULL) gets its row id. */
static int get_value(sec_store *s, pg_conn *c, const char *name, char **out, size_t *out_len,
		     char id[32])
{
	PGresult *r = NULL;
	const char *p[1] = {name};
	int rc = sec_name_check(name);

	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &r, &st_get, p);
	if (rc < 0)
		goto done;
	if (pg_rows(r) != 1) {
		rc = err_set(ERR_NOTFOUND,
			     "no secret named %s: store it with 'orchestrator secrets set %s'", name,
			     name);
		goto done;
	}
	rc = sec_store_sync(s, (int)pg_int(r, 0, 3), pg_val(r, 0, 4));
	if (rc < 0)
		goto done;
	rc = sec_store_unseal(s, name, pg_val(r, 0, 1), pg_val(r, 0, 2), out, out_len);
	if (rc == 0)
		snprintf(id, 32, "%s", pg_val(r, 0, 0));
done:
	PQclear(r);
	return rc;
}

int sec_store_get(sec_store *s, pg_conn *c, const char *name, char **out_value)
{
	char id[32];
	const char *p[1] = {id};
	char *v = NULL;
	size_t len = 0;
	int rc = get_value(s, c, name, &v, &len, id);

	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, NULL, &st_used, p);
	if (rc < 0) {
		sec_value_free(v);
		return rc;
	}
	sec_redact_add(name, v, len);
	*out_value = v;
	return 0;
}

int sec_store_resolve_name(sec_store *s, pg_conn *c, const char *name, const char *actor,
			   char **out_value)
{
	char *v = NULL;
	int rc = sec_actor_check(actor);

	if (rc < 0)
		return rc;
	rc = sec_store_get(s, c, name, &v);
	if (rc < 0) {
		char keep[1024];
		int code = rc;
		snprintf(keep, sizeof(keep), "%s", err_last());
		sec_audit(c, "deny", NULL, name, NULL, actor, 0, keep);
		return err_set(code, "%s", keep);
	}
	rc = sec_audit(c, "resolve", NULL, name, NULL, actor, 0, "by name");
	if (rc < 0) {
		sec_value_free(v);
		return rc;
	}
	*out_value = v;
	return 0;
}

int64_t sec_ms_of(const PGresult *r, int row, int col)
{
	return pg_isnull(r, row, col) ? 0 : pg_int(r, row, col);
}

void *sec_rows_read(const PGresult *r, size_t size, sec_row_fn fill, size_t *n)
{
	int rows = pg_rows(r);
	char *v = calloc(rows ? (size_t)rows : 1, size);

	if (!v) {
		err_set(ERR_NOMEM, "out of memory");
		return NULL;
	}
	for (int i = 0; i < rows; i++)
		fill(r, i, v + (size_t)i * size);
	*n = (size_t)rows;
	return v;
}

static void secret_info_of(const PGresult *r, int i, void *item)
{
	sec_secret_info *o = item;

	snprintf(o->name, sizeof(o->name), "%s", pg_val(r, i, 0));
	snprintf(o->scope, sizeof(o->scope), "%s", pg_val(r, i, 1));
	o->created_ms = sec_ms_of(r, i, 2);
	o->updated_ms = sec_ms_of(r, i, 3);
	o->last_used_ms = sec_ms_of(r, i, 4);
	o->uses = pg_int(r, i, 5);
	o->handles = (int)pg_int(r, i, 6);
}

int sec_store_list(pg_conn *c, sec_secret_info **out, size_t *n)
{
	PGresult *r = NULL;
	int rc;

	rc = pg_exec(c, &r,
		     "SELECT s.name, coalesce(s.scope, ''), "
		     " (extract(epoch FROM s.created_at) * 1000)::bigint, "
		     " (extract(epoch FROM s.updated_at) * 1000)::bigint, "
		     " (extract(epoch FROM s.last_used_at) * 1000)::bigint, s.uses, "
		     " (SELECT count(*) FROM resources r WHERE r.secret_id = s.id "
		     "  AND r.revoked_at IS NULL) "
		     "FROM secrets s ORDER BY s.name",
		     0, NULL);
	if (rc == 0) {
		*out = sec_rows_read(r, sizeof(**out), secret_info_of, n);
		if (!*out)
			rc = ERR_NOMEM;
	}
	PQclear(r);
	return rc;
}

int sec_store_rm(pg_conn *c, const char *name, int revoke_handles, const char *actor,
		 int *out_revoked)
{
	PGresult *r = NULL;
	char id[32];
	int rc, in_tx = 0, live;

	rc = sec_name_check(name);
	if (rc == 0)
		rc = sec_actor_check(actor);
	if (rc < 0)
		return rc;
	rc = sec_tx_begin(c);
	if (rc < 0)
		goto done;
	in_tx = 1;
	{
		const char *p[1] = {name};
		rc = pg_exec(c, &r,
			     "SELECT s.id, (SELECT count(*) FROM resources r WHERE r.secret_id = s.id "
			     " AND r.revoked_at IS NULL), "
			     " (SELECT string_agg(r.handle, ', ' ORDER BY r.handle) FROM resources r "
			     "  WHERE r.secret_id = s.id AND r.revoked_at IS NULL) "
			     "FROM secrets s WHERE s.name = $1 FOR UPDATE OF s",
			     1, p);
	}
	if (rc < 0)
		goto done;
	if (pg_rows(r) != 1) {
		rc = err_set(ERR_NOTFOUND, "no secret named %s ('orchestrator secrets list' shows "
					   "them)",
			     name);
		goto done;
	}
	snprintf(id, sizeof(id), "%s", pg_val(r, 0, 0));
	live = (int)pg_int(r, 0, 1);
	if (live > 0 && !revoke_handles) {
		rc = err_set(ERR_CONFLICT,
			     "secret %s is used by %d live handle%s (%s): revoke them with "
			     "'orchestrator resources revoke HANDLE', or pass --revoke-handles; "
			     "nothing was removed",
			     name, live, live == 1 ? "" : "s", pg_val(r, 0, 2));
		goto done;
	}
	PQclear(r);
	r = NULL;
	{
		const char *p[3] = {id, actor, name};
		rc = pg_exec(c, NULL,
			     "WITH rev AS (UPDATE resources SET revoked_at = now(), "
			     "  revoke_reason = 'secret removed' "
			     "  WHERE secret_id = $1 AND revoked_at IS NULL RETURNING handle, scope) "
			     "INSERT INTO secret_audit (action, handle, secret_name, scope, actor, detail) "
			     "SELECT 'revoke', handle, $3, scope, $2, 'secret removed' FROM rev",
			     3, p);
		if (rc == 0)
			rc = pg_exec(c, NULL, "DELETE FROM secrets WHERE id = $1", 1, p);
	}
	if (rc == 0)
		rc = sec_audit(c, "rm", NULL, name, NULL, actor, 0,
			       live ? "removed; its live handles were revoked" : "removed");
	if (rc == 0)
		rc = sec_tx_commit(c);
	in_tx = 0;
	if (rc == 0 && out_revoked)
		*out_revoked = live;
done:
	if (in_tx && rc < 0)
		sec_tx_rollback(c);
	PQclear(r);
	return rc;
}

int sec_store_foreach(sec_store *s, pg_conn *c, sec_each_fn fn, void *udata)
{
	PGresult *r = NULL;
	int rc = pg_exec(c, &r,
			 "SELECT s.name, encode(s.nonce, 'hex'), encode(s.sealed, 'hex'), "
			 " k.version, k.kcv FROM secrets s CROSS JOIN secret_keys k "
			 "WHERE k.id = 1 ORDER BY s.name",
			 0, NULL);

	if (rc < 0)
		goto done;
	if (pg_rows(r) > 0) {
		rc = sec_store_sync(s, (int)pg_int(r, 0, 3), pg_val(r, 0, 4));
		if (rc < 0)
			goto done;
	}
	for (int i = 0; i < pg_rows(r); i++) {
		char *v = NULL;
		size_t len = 0;
		int urc = sec_store_unseal(s, pg_val(r, i, 0), pg_val(r, i, 1), pg_val(r, i, 2), &v,
					   &len);
		rc = fn(pg_val(r, i, 0), urc == 0 ? v : NULL, urc == 0 ? len : 0, udata);
		sec_value_free(v);
		if (rc < 0)
			goto done;
	}
	rc = 0;
done:
	PQclear(r);
	return rc;
}

/* --- rotation --- */

/* Writes `k` to PATH.new, removing a stale one the database never adopted. */
static int write_new_file(const sec_keysrc *src, const sec_key *k, char *newpath, size_t cap)
{
	snprintf(newpath, cap, "%s.new", src->path);
	if (access(newpath, F_OK) == 0) {
		/* the store has just been checked against the database, so the key
		 * in use is the one in PATH: PATH.new is left over from a rotation
		 * that never committed */
		log_warn("secrets", "removing %s, left over from a key rotation that did not "
				    "complete",
			 newpath);
		if (unlink(newpath) < 0)
			return err_set(ERR_IO, "cannot remove the stale %s: %s", newpath,
				       strerror(errno));
	}
	return sec_key_write_file(k, newpath);
}

/* Inside the rotation's transaction: every secret unsealed with s's key
 * and sealed again with tmp's, in place; *n counts them. */
static int reseal_all(sec_store *s, sec_store *tmp, pg_conn *c, int *n)
{
	PGresult *r = NULL;
	int rc;

	rc = pg_exec(c, &r,
		     "SELECT id, name, encode(nonce, 'hex'), encode(sealed, 'hex') FROM secrets "
		     "ORDER BY id FOR UPDATE",
		     0, NULL);
	for (int i = 0; rc == 0 && i < pg_rows(r); i++) {
		const char *name = pg_val(r, i, 1);
		char *v = NULL, *nh = NULL, *ch = NULL;
		size_t len = 0;

		rc = sec_store_unseal(s, name, pg_val(r, i, 2), pg_val(r, i, 3), &v, &len);
		if (rc < 0) {
			err_wrap("refusing to rotate the master key, nothing was changed: remove the "
				 "secret ('orchestrator secrets rm %s') or set it again first",
				 name);
			break;
		}
		rc = seal(tmp, name, v, len, &nh, &ch);
		sec_value_free(v);
		if (rc == 0) {
			const char *p[3] = {pg_val(r, i, 0), nh, ch};
			rc = pg_exec(c, NULL,
				     "UPDATE secrets SET nonce = decode($2, 'hex'), "
				     "sealed = decode($3, 'hex') WHERE id = $1",
				     3, p);
		}
		free(nh);
		free(ch);
		if (rc == 0)
			(*n)++;
	}
	PQclear(r);
	return rc;
}

int sec_store_rotate(sec_store *s, pg_conn *c, sec_key *new_key, const char *actor,
		     sec_rotate_report *out)
{
	char kcv[SEC_KCV_HEX + 1], newkcv[SEC_KCV_HEX + 1], newpath[1100] = "";
	PGresult *r = NULL;
	sec_store *tmp = NULL; /* seals under the new key */
	int version = 0, rc, in_tx = 0, file_written = 0, n = 0;
	int file_mode = s->has_src && !s->src.from_env;

	memset(out, 0, sizeof(*out));
	rc = sec_actor_check(actor);
	if (rc < 0)
		goto done;
	if (!new_key && !file_mode) {
		rc = err_set(ERR_INVALID, "the master key comes from %s: give the new key (for "
					  "example on standard input) so you can set it there after "
					  "the rotation",
			     s->where);
		goto done;
	}
	if (!new_key) {
		rc = sec_key_generate(&new_key);
		if (rc < 0)
			goto done;
	}
	rc = store_new(&tmp, new_key, 0, "", NULL);
	new_key = NULL;
	if (rc < 0)
		goto done;
	/* make sure we hold the key in use before writing anything */
	rc = read_key_row(c, NULL, &version, kcv);
	if (rc == 0)
		rc = sec_store_sync(s, version, kcv);
	if (rc < 0)
		goto done;
	if (key_matches(tmp->key, kcv)) {
		rc = err_set(ERR_INVALID, "the new master key is the key in use; nothing to do");
		goto done;
	}
	if (file_mode) {
		rc = write_new_file(&s->src, tmp->key, newpath, sizeof(newpath));
		if (rc < 0)
			goto done;
		file_written = 1;
	}

	rc = begin_synced(s, c, "FOR UPDATE", &in_tx);
	if (rc < 0)
		goto done;
	rc = reseal_all(s, tmp, c, &n);
	if (rc < 0)
		goto done;
	sec_key_check_value(tmp->key, newkcv);
	{
		const char *p[1] = {newkcv};
		rc = pg_exec(c, &r,
			     "UPDATE secret_keys SET kcv = $1, version = version + 1, "
			     "rotated_at = now() WHERE id = 1 RETURNING version",
			     1, p);
	}
	if (rc < 0)
		goto done;
	out->version = (int)pg_int(r, 0, 0);
	{
		char detail[96];
		snprintf(detail, sizeof(detail), "master key version %d; %d secrets re-encrypted",
			 out->version, n);
		rc = sec_audit(c, "rotate", NULL, NULL, NULL, actor, 0, detail);
	}
	if (rc < 0)
		goto done;
	rc = sec_tx_commit(c);
	in_tx = 0;
	if (rc < 0)
		goto done;
	file_written = 0; /* from here on PATH.new is the key in use */
	out->secrets = n;

	/* the store goes on with the new key */
	pthread_mutex_lock(&s->mu);
	sec_key_free(s->key);
	s->key = tmp->key;
	tmp->key = NULL;
	s->version = out->version;
	snprintf(s->kcv, sizeof(s->kcv), "%s", newkcv);
	pthread_mutex_unlock(&s->mu);

	if (file_mode) {
		rc = sec_key_file_replace(newpath, s->src.path);
		if (rc < 0) {
			err_wrap("the secrets are now sealed with the key in %s, which could not "
				 "replace %s: move it there by hand (the next start does it too)",
				 newpath, s->src.path);
			goto done;
		}
		snprintf(out->where, sizeof(out->where), "key file %s", s->src.path);
	} else {
		snprintf(out->where, sizeof(out->where), "the key given (set ORCH_MASTER_KEY to it "
							 "before the next start)");
	}
done:
	if (in_tx)
		sec_tx_rollback(c);
	if (file_written && rc < 0)
		unlink(newpath);
	PQclear(r);
	sec_key_free(new_key);
	sec_store_free(tmp);
	return rc;
}
