/*
 * key — the master key that seals every stored secret.
 *
 * The master key is 32 random bytes. It comes from one of two places:
 *   - ORCH_MASTER_KEY: the key itself, as 64 hex digits or as base64
 *     (standard or URL-safe alphabet, with or without '=' padding);
 *   - a key file: ORCH_MASTER_KEY_FILE, by default $ORCH_DATA_DIR/master.key,
 *     holding the key in the same text forms (`orchestrator secrets init`
 *     writes 64 lowercase hex digits and a newline, mode 0600). A key file
 *     that group or others may read or write is refused.
 * Setting both variables is refused rather than guessed at.
 *
 * The key never leaves locked memory (sodium_malloc): it is not swapped out,
 * not in core dumps, and wiped when freed. Two values are derived from it:
 * the secretbox key (crypto_kdf, context "orchsecr") and the key check
 * value, a keyed BLAKE2b hash of a constant stored in the database, so a
 * wrong key is recognised before anything is decrypted or written. The check
 * value reveals nothing about the key.
 */
#ifndef ORCH_SECRETS_KEY_H
#define ORCH_SECRETS_KEY_H

#include <stddef.h>

#define SEC_KEY_BYTES 32
#define SEC_KCV_HEX 64 /* hex digits of a key check value */

typedef struct sec_key sec_key;

/* Where the master key comes from. */
typedef struct sec_keysrc {
	int from_env;         /* 1: ORCH_MASTER_KEY holds the key */
	int path_explicit;    /* 1: the path came from ORCH_MASTER_KEY_FILE */
	char path[1024];      /* the key file, when !from_env */
} sec_keysrc;

/* Fills *out from ORCH_MASTER_KEY and ORCH_MASTER_KEY_FILE; `data_dir` gives
 * the default key file ($data_dir/master.key). Reads no file. ERR_INVALID
 * when both variables are set, ERR_TOOBIG for an over-long path. */
int sec_keysrc_from_env(sec_keysrc *out, const char *data_dir);

/* A key file source at `path` (tests, tools). */
int sec_keysrc_file(sec_keysrc *out, const char *path);

/* Writes "ORCH_MASTER_KEY" or "key file PATH" into out[cap], for messages. */
void sec_keysrc_describe(const sec_keysrc *src, char *out, size_t cap);

/* Generates a new random key. The caller owns *out (sec_key_free). */
int sec_key_generate(sec_key **out);

/* Parses a key written as 64 hex digits or base64 of 32 bytes (standard or
 * URL-safe, padded or not); surrounding whitespace is ignored. `what` names
 * the source in the error ("ORCH_MASTER_KEY"). ERR_INVALID with the
 * accepted forms when `text` is none of them. The caller owns *out. */
int sec_key_parse(sec_key **out, const char *text, size_t len, const char *what);

/* Loads the key from `src`. For a key file: ERR_NOTFOUND when it does not
 * exist (with the advice to run `orchestrator secrets init` or restore it),
 * ERR_DENIED when it is not a regular file or group/others have any access
 * (with the chmod to run), ERR_IO when unreadable, ERR_INVALID when its text
 * is not a key. ERR_NOTFOUND also when from_env and the variable is empty.
 * The caller owns *out. */
int sec_key_load(sec_key **out, const sec_keysrc *src);

/* Creates the key file `path` holding `k` as hex, mode 0600, creating its
 * folder (0700) when missing. Never replaces a file: ERR_CONFLICT when
 * `path` exists. The file is fsynced; on any failure nothing is left. */
int sec_key_write_file(const sec_key *k, const char *path);

/* Moves the key file `from` over `to` (rename, then fsync of the folder):
 * either the old or the new file is there after a crash, never neither.
 * ERR_IO with the reason. */
int sec_key_file_replace(const char *from, const char *to);

/* The key check value of `k` as 64 lowercase hex digits and a NUL. */
void sec_key_check_value(const sec_key *k, char out[SEC_KCV_HEX + 1]);

/* True when both keys are the same (constant time). */
int sec_key_equal(const sec_key *a, const sec_key *b);

/* The 32-byte secretbox key derived from `k`. Borrowed; valid while `k`
 * lives. */
const unsigned char *sec_key_box_key(const sec_key *k);

/* Writes the key as 64 lowercase hex digits and a NUL into out[65]. The
 * caller wipes `out` (sodium_memzero) when done. */
void sec_key_hex(const sec_key *k, char out[2 * SEC_KEY_BYTES + 1]);

/* Wipes and frees. NULL is a no-op. */
void sec_key_free(sec_key *k);

#endif
