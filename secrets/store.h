/*
 * store — the encrypted secrets store in PostgreSQL.
 *
 * A secret is a name (OPENAI_API_KEY, github-token), an optional scope (the
 * one project that may be granted it; none: any project) and a value. The
 * value is sealed with libsodium's secretbox (XSalsa20-Poly1305) under a key
 * derived from the master key (secrets/key.h), with a fresh random nonce for
 * every write. The sealed text covers the name too, so a ciphertext copied
 * onto another row is refused like any tampered one. A copy of the database
 * without the master key reveals names and timestamps, never values.
 *
 * Every operation first checks the master key against the key check value
 * in secret_keys: a wrong key stops with ERR_CRYPTO before anything is
 * decrypted or written. When another process rotates the key, a store whose
 * key came from a key file reloads the file and goes on; with ORCH_MASTER_KEY
 * it stops with a message saying to restart with the new key.
 *
 * Values handed out (char *) are NUL-terminated, live in locked memory where
 * the RLIMIT_MEMLOCK allows, and are released with sec_value_free(), which
 * wipes them. A sec_store may be shared by threads; each call takes its own
 * pg_conn, which only one thread may use at a time.
 */
#ifndef ORCH_SECRETS_STORE_H
#define ORCH_SECRETS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/pg.h"
#include "secrets/key.h"

#define SEC_NAME_MAX 128     /* [A-Za-z0-9_][A-Za-z0-9_.-]* */
#define SEC_SCOPE_MAX 200    /* a project key: printable, no spaces */
#define SEC_VALUE_MIN 8      /* shorter values cannot be redacted reliably */
#define SEC_VALUE_MAX 65536
#define SEC_ACTOR_MAX 128

typedef struct sec_store sec_store;

/* --- values --- */

/* New zeroed memory for a value of up to n bytes (n + 1 allocated, for the
 * NUL), locked where possible. NULL when out of memory. Free with
 * sec_value_free. */
char *sec_value_alloc(size_t n);

/* Copies n bytes into new memory, locked where possible and NUL-terminated.
 * NULL when out of memory. Free with sec_value_free. */
char *sec_value_dup(const void *p, size_t n);

/* Wipes, unlocks and frees a value returned by any sec_* function. NULL is a
 * no-op. (A plain free() would not crash, but would leave the bytes.) */
void sec_value_free(char *v);

/* --- checks of names (ERR_INVALID with what is allowed) --- */

int sec_name_check(const char *name);
/* A scope is a project key as the engine's threads use them ("tg:42:p3"):
 * 1..200 printable ASCII characters without spaces. */
int sec_scope_check(const char *scope);
/* A value: SEC_VALUE_MIN..SEC_VALUE_MAX bytes, no NUL byte. */
int sec_value_check(const void *value, size_t len);

/* --- setting up --- */

typedef struct sec_init_report {
	int created_file;   /* a new key file was written */
	int recorded;       /* the key check value was stored now (else: already there) */
	char where[1100];   /* "key file PATH" or "ORCH_MASTER_KEY" */
} sec_init_report;

/* `orchestrator secrets init`: makes sure a master key exists and that the
 * database knows its check value.
 *  - database without a key, key file missing: generates a key, writes the
 *    file (0600), records the check value;
 *  - database without a key, key present (file or ORCH_MASTER_KEY): records
 *    the check value of that key;
 *  - database with a key: succeeds when the key present matches it
 *    (nothing changes); ERR_CRYPTO when it does not; ERR_NOTFOUND when no
 *    key is present (nothing is created: a new key could open nothing).
 * Never replaces a key file. Refuses a key file group/others may use.
 * `actor` is recorded in the audit trail. */
int sec_store_init(pg_conn *c, const sec_keysrc *src, const char *actor, sec_init_report *out);

/* Loads the master key from `src` and checks it against the database.
 * ERR_NOTFOUND "run orchestrator secrets init" when the database has no key
 * yet (or the key file is missing); ERR_CRYPTO when the key is not the one
 * the secrets were sealed with; the errors of sec_key_load. A key file
 * whose rotation was interrupted (PATH.new holds the key the database
 * expects) is completed here. The caller owns *out (sec_store_free). */
int sec_store_open(sec_store **out, pg_conn *c, const sec_keysrc *src);

/* The same with a key already in memory (taken over by the store, also on
 * failure). Such a store cannot reload a rotated key. */
int sec_store_open_key(sec_store **out, pg_conn *c, sec_key *key);

void sec_store_free(sec_store *s);

/* Where the store's key came from, for messages. Borrowed. */
const char *sec_store_key_where(const sec_store *s);

/* --- secrets --- */

/* Stores `value` (len bytes) under `name`, sealed with a fresh nonce,
 * replacing the value of an existing secret (its handles then resolve to
 * the new value). `scope`: NULL keeps the existing scope (a new secret is
 * global); "" makes it global; else only that project may be granted it
 * (ERR_CONFLICT when live handles of other projects use it). *out_created
 * (may be NULL) tells whether the name is new. An audit row records who
 * (`actor`). ERR_INVALID for a bad name, scope or value. */
int sec_store_set(sec_store *s, pg_conn *c, const char *name, const char *scope,
		  const void *value, size_t len, const char *actor, int *out_created);

/* Decrypts the secret `name` into *out_value (caller frees with
 * sec_value_free) and counts a use. ERR_NOTFOUND, ERR_CRYPTO when its
 * ciphertext was altered. No audit row: callers that hand values out use
 * sec_store_resolve_name or the resource allocator. */
int sec_store_get(sec_store *s, pg_conn *c, const char *name, char **out_value);

/* Resolves `name` for a consumer inside orchestrator (the LLM layer reading
 * an endpoint key): as sec_store_get, plus an audit row "resolve" with
 * `actor` and the value added to the redaction filter. */
int sec_store_resolve_name(sec_store *s, pg_conn *c, const char *name, const char *actor,
			   char **out_value);

/* A secret's metadata; never its value. */
typedef struct sec_secret_info {
	char name[SEC_NAME_MAX + 1];
	char scope[SEC_SCOPE_MAX + 1]; /* "" when any project may be granted it */
	int64_t created_ms, updated_ms;
	int64_t last_used_ms;           /* 0: never used */
	int64_t uses;
	int handles;                    /* live (not revoked) handles */
} sec_secret_info;

/* Lists every secret, by name. *out (caller frees with free()) holds *n
 * entries. Needs no key. */
int sec_store_list(pg_conn *c, sec_secret_info **out, size_t *n);

/* Removes the secret `name`. ERR_NOTFOUND; ERR_CONFLICT when live handles
 * use it, unless `revoke_handles`, which revokes them in the same
 * transaction (*out_revoked, may be NULL, counts them). Its handles stay in
 * the record, unusable. Needs no key. */
int sec_store_rm(pg_conn *c, const char *name, int revoke_handles, const char *actor,
		 int *out_revoked);

/* Calls fn for every secret with its decrypted value (wiped right after
 * the call). A secret that fails to decrypt is reported with value NULL
 * and the reason in err_last(); fn decides whether to go on (return 0) or
 * stop (return a negative code, which is returned). */
typedef int (*sec_each_fn)(const char *name, const char *value, size_t len, void *udata);
int sec_store_foreach(sec_store *s, pg_conn *c, sec_each_fn fn, void *udata);

/* --- the master key --- */

typedef struct sec_rotate_report {
	int secrets;       /* re-encrypted */
	int version;       /* the key version now */
	char where[1100];  /* where the new key is */
} sec_rotate_report;

/* Replaces the master key: `new_key` (taken over, also on failure) or, when
 * NULL, a new random one. Every secret is decrypted and sealed again under
 * the new key with a fresh nonce, and the check value replaced, in one
 * transaction: either all of it happens or nothing does. When a secret
 * does not decrypt (tampered), nothing changes and ERR_CRYPTO names it.
 * With a key file the new key is first written to PATH.new (0600, synced),
 * then the transaction commits, then PATH.new replaces PATH; a crash in
 * between is repaired by the next sec_store_open. With ORCH_MASTER_KEY the
 * caller must pass the new key (ERR_INVALID otherwise) and the operator
 * sets ORCH_MASTER_KEY to it afterwards. The store uses the new key after
 * success. */
int sec_store_rotate(sec_store *s, pg_conn *c, sec_key *new_key, const char *actor,
		     sec_rotate_report *out);

#endif
