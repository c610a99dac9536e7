/*
 * store_int — what the resource allocator shares with the store; not for
 * use outside secrets/.
 */
#ifndef ORCH_SECRETS_STORE_INT_H
#define ORCH_SECRETS_STORE_INT_H

#include <stdint.h>

#include "core/pg.h"
#include "secrets/store.h"

/* Checks that the store's key is the one the database holds now (`version`
 * and `kcv` as just read from secret_keys), reloading a rotated key file
 * when needed. ERR_CRYPTO when the store cannot get the right key. */
int sec_store_sync(sec_store *s, int version, const char *kcv);

/* Decrypts the sealed value of secret `name` (nonce and ciphertext in hex,
 * as encode(x, 'hex') returns them) into *out (sec_value_free) of *out_len
 * bytes. ERR_CRYPTO naming the secret when the MAC or the name check fails. */
int sec_store_unseal(sec_store *s, const char *name, const char *nonce_hex,
		     const char *sealed_hex, char **out, size_t *out_len);

/* Appends an audit row. Any of the text arguments but action and actor may
 * be NULL; run_id 0 means none. */
int sec_audit(pg_conn *c, const char *action, const char *handle, const char *secret_name,
	      const char *scope, const char *actor, int64_t run_id, const char *detail);

/* BEGIN / COMMIT / ROLLBACK (the last never fails, keeps err_last()). */
int sec_tx_begin(pg_conn *c);
int sec_tx_commit(pg_conn *c);
void sec_tx_rollback(pg_conn *c);

/* Checks an actor string: 1..SEC_ACTOR_MAX printable characters. */
int sec_actor_check(const char *actor);

/* Milliseconds since the epoch in column `col` of row `row` (a bigint);
 * 0 for NULL. */
int64_t sec_ms_of(const PGresult *r, int row, int col);

/* Fills `item` (zeroed) from row `row` of a result. */
typedef void (*sec_row_fn)(const PGresult *r, int row, void *item);

/* The rows of `r` as an array of `size`-byte items, each filled by `fill`,
 * and their number in *n. Owned (free); at least one item long, so never
 * NULL but when out of memory (ERR_NOMEM set, *n untouched). */
void *sec_rows_read(const PGresult *r, size_t size, sec_row_fn fill, size_t *n);

#endif
