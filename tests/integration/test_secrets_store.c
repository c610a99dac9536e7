/* The encrypted store against PostgreSQL: init, sealing with fresh nonces,
 * wrong keys, tampered ciphertext, rotation (and its crash repair), removal,
 * listing and bad input. */
#include "tests/support/support.h"

#include "core/err.h"
#include "core/redact.h"
#include "secrets/key.h"
#include "secrets/redact.h"
#include "secrets/resource.h"
#include "secrets/store.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACTOR "test"

static pg_conn *g_c;
static int g_case;
static char g_path[1024]; /* this case's key file */

static int setup(void **st)
{
	const char *dir = getenv("ORCH_DATA_DIR");
	(void)st;
	if (!g_c)
		g_c = ts_conn();
	ts_sql(g_c, "TRUNCATE secret_keys, secrets, resources, secret_audit RESTART IDENTITY");
	snprintf(g_path, sizeof(g_path), "%s/case%d/master.key", dir ? dir : "/tmp", ++g_case);
	unsetenv("ORCH_MASTER_KEY");
	unsetenv("ORCH_MASTER_KEY_FILE");
	sec_redact_clear();
	sec_redact_install();
	return 0;
}

/* Sets up the database with a new key file and opens a store on it. */
static sec_store *fresh_store(void)
{
	sec_keysrc src;
	sec_init_report rep;
	sec_store *s = NULL;

	assert_int_equal(sec_keysrc_file(&src, g_path), 0);
	assert_int_equal(sec_store_init(g_c, &src, ACTOR, &rep), 0);
	assert_int_equal(sec_store_open(&s, g_c, &src), 0);
	return s;
}

static sec_store *open_path(const char *path, int expect)
{
	sec_keysrc src;
	sec_store *s = NULL;

	assert_int_equal(sec_keysrc_file(&src, path), 0);
	assert_int_equal(sec_store_open(&s, g_c, &src), expect);
	return s;
}

static void set_ok(sec_store *s, const char *name, const char *value)
{
	if (sec_store_set(s, g_c, name, NULL, value, strlen(value), ACTOR, NULL) < 0)
		fail_msg("set %s: %s", name, err_last());
}

static void check_value(sec_store *s, const char *name, const char *value)
{
	char *v = NULL;

	if (sec_store_get(s, g_c, name, &v) < 0)
		fail_msg("get %s: %s", name, err_last());
	assert_string_equal(v, value);
	sec_value_free(v);
}

static int64_t q(const char *sql)
{
	return ts_sql_int(g_c, sql);
}

/* Reads a whole small file into out[cap]; returns its length. */
static size_t slurp(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
	return n;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* --- init --- */

static void test_init_creates_key_and_is_idempotent(void **st)
{
	sec_keysrc src;
	sec_init_report rep;
	struct stat sb;
	char before[128], after[128];
	(void)st;
	assert_int_equal(sec_keysrc_file(&src, g_path), 0);
	assert_int_equal(sec_store_init(g_c, &src, ACTOR, &rep), 0);
	assert_true(rep.created_file);
	assert_true(rep.recorded);
	assert_int_equal(stat(g_path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(q("SELECT count(*) FROM secret_keys"), 1);
	assert_int_equal(q("SELECT version FROM secret_keys"), 1);
	slurp(g_path, before, sizeof(before));
	assert_int_equal(strlen(before), 65);
	/* again: nothing changes */
	assert_int_equal(sec_store_init(g_c, &src, ACTOR, &rep), 0);
	assert_false(rep.created_file);
	assert_false(rep.recorded);
	slurp(g_path, after, sizeof(after));
	assert_string_equal(before, after);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'rotate'"), 1);
}

static void test_init_never_makes_a_second_key(void **st)
{
	char other[1100];
	sec_keysrc src;
	sec_init_report rep;
	sec_key *k = NULL;
	(void)st;
	sec_store_free(fresh_store());
	/* a key file elsewhere that does not exist: refused, not created */
	snprintf(other, sizeof(other), "%s.elsewhere", g_path);
	assert_int_equal(sec_keysrc_file(&src, other), 0);
	assert_int_equal(sec_store_init(g_c, &src, ACTOR, &rep), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "restore"));
	assert_int_not_equal(access(other, F_OK), 0);
	/* opening with that missing file says the key must be restored */
	assert_null(open_path(other, ERR_NOTFOUND));
	assert_non_null(strstr(err_last(), "restore the file"));
	/* a different key that exists: refused as the wrong key */
	assert_int_equal(sec_key_generate(&k), 0);
	assert_int_equal(sec_key_write_file(k, other), 0);
	sec_key_free(k);
	assert_int_equal(sec_store_init(g_c, &src, ACTOR, &rep), ERR_CRYPTO);
	assert_int_equal(q("SELECT version FROM secret_keys"), 1);
}

static void test_init_with_env_key(void **st)
{
	sec_keysrc src;
	sec_init_report rep;
	sec_store *s = NULL;
	(void)st;
	setenv("ORCH_MASTER_KEY", "nG2Zc0t1Jv6Jv4a9WwS0b8z8m0a1Q2y3R4t5U6i7O8o=", 1);
	assert_int_equal(sec_keysrc_from_env(&src, getenv("ORCH_DATA_DIR")), 0);
	assert_true(src.from_env);
	assert_int_equal(sec_store_init(g_c, &src, ACTOR, &rep), 0);
	assert_false(rep.created_file);
	assert_true(rep.recorded);
	assert_int_equal(sec_store_open(&s, g_c, &src), 0);
	set_ok(s, "ENV_KEYED", "value-under-env-key");
	check_value(s, "ENV_KEYED", "value-under-env-key");
	sec_store_free(s);
	/* the same key written in hex opens it too */
	{
		sec_key *k = NULL;
		char hex[65];
		const char *b = "nG2Zc0t1Jv6Jv4a9WwS0b8z8m0a1Q2y3R4t5U6i7O8o=";
		assert_int_equal(sec_key_parse(&k, b, strlen(b), "t"), 0);
		sec_key_hex(k, hex);
		sec_key_free(k);
		setenv("ORCH_MASTER_KEY", hex, 1);
		assert_int_equal(sec_store_open(&s, g_c, &src), 0);
		check_value(s, "ENV_KEYED", "value-under-env-key");
		sec_store_free(s);
	}
	/* an empty ORCH_MASTER_KEY_FILE is ignored; a wrong env key is refused */
	setenv("ORCH_MASTER_KEY", "0000000000000000000000000000000000000000000000000000000000000000", 1);
	assert_int_equal(sec_store_open(&s, g_c, &src), ERR_CRYPTO);
	unsetenv("ORCH_MASTER_KEY");
}

static void test_not_initialised(void **st)
{
	sec_keysrc src;
	sec_store *s = NULL;
	(void)st;
	assert_int_equal(sec_keysrc_file(&src, g_path), 0);
	assert_int_equal(sec_store_open(&s, g_c, &src), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "secrets init"));
	assert_null(s);
}

/* --- sealing --- */

static void test_seal_roundtrip_fresh_nonces(void **st)
{
	sec_store *s = fresh_store();
	int created = -1;
	(void)st;
	assert_int_equal(sec_store_set(s, g_c, "A", NULL, "same-value-123", 14, ACTOR, &created), 0);
	assert_int_equal(created, 1);
	set_ok(s, "B", "same-value-123");
	/* same value, different nonces and ciphertexts; plaintext nowhere */
	assert_int_equal(q("SELECT count(DISTINCT nonce) FROM secrets"), 2);
	assert_int_equal(q("SELECT count(DISTINCT sealed) FROM secrets"), 2);
	assert_int_equal(q("SELECT count(*) FROM secrets WHERE position('same-value'::bytea IN "
			   "sealed) > 0 OR position('same-value'::bytea IN nonce) > 0"),
			 0);
	check_value(s, "A", "same-value-123");
	check_value(s, "B", "same-value-123");
	/* replacing a value: new nonce, new value, not counted as created */
	{
		ts_sql(g_c, "CREATE TEMP TABLE old_nonce AS SELECT nonce FROM secrets WHERE name = "
			    "'A'");
		assert_int_equal(sec_store_set(s, g_c, "A", NULL, "another-value-456", 17, ACTOR,
					       &created),
				 0);
		assert_int_equal(created, 0);
		assert_int_equal(q("SELECT count(*) FROM secrets s, old_nonce o WHERE s.name = 'A' "
				   "AND s.nonce = o.nonce"),
				 0);
		ts_sql(g_c, "DROP TABLE old_nonce");
	}
	check_value(s, "A", "another-value-456");
	/* uses are counted */
	assert_int_equal(q("SELECT uses FROM secrets WHERE name = 'A'"), 2);
	assert_int_equal(q("SELECT count(*) FROM secrets WHERE name = 'A' AND last_used_at IS "
			   "NOT NULL"),
			 1);
	/* set and get teach the redaction filter */
	{
		char *r = redact_str("x same-value-123 y");
		assert_string_equal(r, "x [redacted:A] y");
		free(r);
	}
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'set'"), 3);
	sec_store_free(s);
}

static void test_get_unknown(void **st)
{
	sec_store *s = fresh_store();
	char *v = NULL;
	(void)st;
	assert_int_equal(sec_store_get(s, g_c, "NOPE", &v), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "secrets set NOPE"));
	assert_int_equal(sec_store_get(s, g_c, "bad name", &v), ERR_INVALID);
	assert_null(v);
	sec_store_free(s);
}

static void test_bad_input_writes_nothing(void **st)
{
	sec_store *s = fresh_store();
	char big[SEC_VALUE_MAX + 1];
	(void)st;
	assert_int_equal(sec_store_set(s, g_c, "bad name", NULL, "12345678", 8, ACTOR, NULL),
			 ERR_INVALID);
	assert_int_equal(sec_store_set(s, g_c, "", NULL, "12345678", 8, ACTOR, NULL), ERR_INVALID);
	assert_int_equal(sec_store_set(s, g_c, "OK", NULL, "short", 5, ACTOR, NULL), ERR_INVALID);
	assert_non_null(strstr(err_last(), "redacted"));
	assert_int_equal(sec_store_set(s, g_c, "OK", NULL, "with\0nul!", 9, ACTOR, NULL),
			 ERR_INVALID);
	memset(big, 'v', sizeof(big));
	assert_int_equal(sec_store_set(s, g_c, "OK", NULL, big, sizeof(big), ACTOR, NULL),
			 ERR_TOOBIG);
	assert_int_equal(sec_store_set(s, g_c, "OK", "two words", "12345678", 8, ACTOR, NULL),
			 ERR_INVALID);
	assert_int_equal(sec_store_set(s, g_c, "OK", NULL, "12345678", 8, "", NULL), ERR_INVALID);
	assert_int_equal(q("SELECT count(*) FROM secrets"), 0);
	/* the largest value is accepted */
	assert_int_equal(sec_store_set(s, g_c, "BIG", NULL, big, SEC_VALUE_MAX, ACTOR, NULL), 0);
	{
		char *v = NULL;
		assert_int_equal(sec_store_get(s, g_c, "BIG", &v), 0);
		assert_int_equal(strlen(v), SEC_VALUE_MAX);
		sec_value_free(v);
	}
	sec_store_free(s);
}

/* --- wrong keys --- */

static void test_wrong_key_refused_before_anything(void **st)
{
	sec_store *s = fresh_store(), *w = NULL;
	char other[1100];
	sec_key *k = NULL;
	(void)st;
	set_ok(s, "KEEP", "keep-this-value");
	ts_sql(g_c, "CREATE TEMP TABLE snap AS SELECT name, nonce, sealed FROM secrets");
	snprintf(other, sizeof(other), "%s.wrong", g_path);
	assert_int_equal(sec_key_generate(&k), 0);
	assert_int_equal(sec_key_write_file(k, other), 0);
	w = open_path(other, ERR_CRYPTO);
	assert_null(w);
	assert_non_null(strstr(err_last(), "not the key"));
	assert_non_null(strstr(err_last(), "nothing was read or changed"));
	/* a store handed the wrong key in memory is refused too */
	assert_int_equal(sec_store_open_key(&w, g_c, k), ERR_CRYPTO);
	assert_int_equal(q("SELECT count(*) FROM secrets s JOIN snap o USING (name) WHERE "
			   "s.nonce = o.nonce AND s.sealed = o.sealed"),
			 1);
	ts_sql(g_c, "DROP TABLE snap");
	sec_store_free(s);
}

/* A process holding the key in memory (no file to reload) after another
 * process rotated it: refuses to write with the stale key. */
static void test_stale_memory_key_refused(void **st)
{
	sec_store *s = fresh_store(), *mem = NULL, *rot;
	sec_key *k = NULL;
	(void)st;
	{
		sec_keysrc src;
		sec_keysrc_file(&src, g_path);
		assert_int_equal(sec_key_load(&k, &src), 0);
	}
	assert_int_equal(sec_store_open_key(&mem, g_c, k), 0);
	set_ok(mem, "BEFORE", "written-before-rotation");
	rot = open_path(g_path, 0);
	{
		sec_rotate_report rep;
		assert_int_equal(sec_store_rotate(rot, g_c, NULL, ACTOR, &rep), 0);
	}
	assert_int_equal(sec_store_set(mem, g_c, "AFTER", NULL, "written-after-rotation", 22,
				       ACTOR, NULL),
			 ERR_CRYPTO);
	assert_non_null(strstr(err_last(), "restart"));
	assert_int_equal(q("SELECT count(*) FROM secrets WHERE name = 'AFTER'"), 0);
	check_value(rot, "BEFORE", "written-before-rotation");
	sec_store_free(mem);
	sec_store_free(rot);
	sec_store_free(s);
}

/* --- tampering --- */

static void test_tampered_ciphertext_refused(void **st)
{
	sec_store *s = fresh_store();
	char *v = NULL;
	(void)st;
	set_ok(s, "FLIPPED", "value-to-flip-1");
	set_ok(s, "NONCED", "value-to-renonce");
	set_ok(s, "SWAPPED", "value-of-swapped");
	set_ok(s, "SOURCE", "value-of-source!");
	set_ok(s, "CUT", "value-to-cut-xyz");
	ts_sql(g_c, "UPDATE secrets SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1) "
		    "WHERE name = 'FLIPPED'");
	ts_sql(g_c, "UPDATE secrets SET nonce = set_byte(nonce, 0, get_byte(nonce, 0) # 128) "
		    "WHERE name = 'NONCED'");
	ts_sql(g_c, "UPDATE secrets SET (nonce, sealed) = (SELECT nonce, sealed FROM secrets "
		    "WHERE name = 'SOURCE') WHERE name = 'SWAPPED'");
	ts_sql(g_c, "UPDATE secrets SET sealed = substring(sealed FROM 1 FOR 10) WHERE name = "
		    "'CUT'");
	assert_int_equal(sec_store_get(s, g_c, "FLIPPED", &v), ERR_CRYPTO);
	assert_non_null(strstr(err_last(), "integrity"));
	assert_int_equal(sec_store_get(s, g_c, "NONCED", &v), ERR_CRYPTO);
	/* a valid ciphertext of another secret, copied over: refused too */
	assert_int_equal(sec_store_get(s, g_c, "SWAPPED", &v), ERR_CRYPTO);
	assert_non_null(strstr(err_last(), "SWAPPED"));
	assert_int_equal(sec_store_get(s, g_c, "CUT", &v), ERR_CRYPTO);
	assert_null(v);
	check_value(s, "SOURCE", "value-of-source!");
	/* a tampered key check value reads as the wrong key */
	ts_sql(g_c, "UPDATE secret_keys SET kcv = repeat('0', 64)");
	{
		sec_store *t = open_path(g_path, ERR_CRYPTO);
		assert_null(t);
	}
	sec_store_free(s);
}

/* foreach reports a damaged secret and goes on */
typedef struct seen {
	int ok, bad;
} seen;

static int count_each(const char *name, const char *value, size_t len, void *udata)
{
	seen *sn = udata;
	(void)name;
	if (value) {
		assert_int_equal(strlen(value), len);
		sn->ok++;
	} else {
		assert_non_null(strstr(err_last(), "integrity"));
		sn->bad++;
	}
	return 0;
}

static void test_foreach_reports_damage(void **st)
{
	sec_store *s = fresh_store();
	seen sn = {0, 0};
	(void)st;
	set_ok(s, "ONE", "first-value-1");
	set_ok(s, "TWO", "second-value-2");
	set_ok(s, "THREE", "third-value-3");
	ts_sql(g_c, "UPDATE secrets SET sealed = set_byte(sealed, 3, get_byte(sealed, 3) # 4) "
		    "WHERE name = 'TWO'");
	assert_int_equal(sec_store_foreach(s, g_c, count_each, &sn), 0);
	assert_int_equal(sn.ok, 2);
	assert_int_equal(sn.bad, 1);
	sec_store_free(s);
}

/* --- rotation --- */

static void test_rotate_reencrypts_everything(void **st)
{
	sec_store *s = fresh_store(), *other, *old_store;
	sec_rotate_report rep;
	char before[128], after[128], oldcopy[1100], newpath[1100];
	struct stat sb;
	(void)st;
	set_ok(s, "R1", "rotate-value-one");
	set_ok(s, "R2", "rotate-value-two");
	set_ok(s, "R3", "rotate-value-three");
	slurp(g_path, before, sizeof(before));
	snprintf(oldcopy, sizeof(oldcopy), "%s.oldcopy", g_path);
	write_file(oldcopy, before, 0600);
	other = open_path(g_path, 0); /* another process with the key file */
	ts_sql(g_c, "CREATE TEMP TABLE pre AS SELECT name, nonce, sealed FROM secrets");

	assert_int_equal(sec_store_rotate(s, g_c, NULL, ACTOR, &rep), 0);
	assert_int_equal(rep.secrets, 3);
	assert_int_equal(rep.version, 2);
	assert_int_equal(q("SELECT version FROM secret_keys"), 2);
	assert_int_equal(q("SELECT count(*) FROM secret_keys WHERE rotated_at IS NOT NULL"), 1);
	/* every row has a new nonce and ciphertext */
	assert_int_equal(q("SELECT count(*) FROM secrets s JOIN pre p USING (name) WHERE "
			   "s.nonce = p.nonce OR s.sealed = p.sealed"),
			 0);
	ts_sql(g_c, "DROP TABLE pre");
	/* the key file holds the new key, still 0600; no .new is left */
	slurp(g_path, after, sizeof(after));
	assert_string_not_equal(before, after);
	assert_int_equal(stat(g_path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(newpath, sizeof(newpath), "%s.new", g_path);
	assert_int_not_equal(access(newpath, F_OK), 0);
	/* the rotating store goes on; the other one reloads the file */
	check_value(s, "R1", "rotate-value-one");
	check_value(other, "R2", "rotate-value-two");
	set_ok(other, "R4", "rotate-value-four");
	check_value(s, "R4", "rotate-value-four");
	/* the old key opens nothing */
	old_store = open_path(oldcopy, ERR_CRYPTO);
	assert_null(old_store);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action = 'rotate'"), 2);
	sec_store_free(other);
	sec_store_free(s);
}

static void test_rotate_refuses_tampered_and_changes_nothing(void **st)
{
	sec_store *s = fresh_store();
	sec_rotate_report rep;
	char before[128], after[128], newpath[1100];
	(void)st;
	set_ok(s, "GOOD", "good-value-here");
	set_ok(s, "BAD", "bad-value-here!");
	ts_sql(g_c, "UPDATE secrets SET sealed = set_byte(sealed, 5, get_byte(sealed, 5) # 1) "
		    "WHERE name = 'BAD'");
	ts_sql(g_c, "CREATE TEMP TABLE pre AS SELECT name, nonce, sealed FROM secrets");
	slurp(g_path, before, sizeof(before));
	assert_int_equal(sec_store_rotate(s, g_c, NULL, ACTOR, &rep), ERR_CRYPTO);
	assert_non_null(strstr(err_last(), "BAD"));
	assert_non_null(strstr(err_last(), "nothing was changed"));
	assert_int_equal(q("SELECT version FROM secret_keys"), 1);
	assert_int_equal(q("SELECT count(*) FROM secrets s JOIN pre p USING (name) WHERE "
			   "s.nonce = p.nonce AND s.sealed = p.sealed"),
			 2);
	ts_sql(g_c, "DROP TABLE pre");
	slurp(g_path, after, sizeof(after));
	assert_string_equal(before, after);
	snprintf(newpath, sizeof(newpath), "%s.new", g_path);
	assert_int_not_equal(access(newpath, F_OK), 0);
	check_value(s, "GOOD", "good-value-here");
	sec_store_free(s);
}

/* A crash after the rotation committed but before PATH.new replaced PATH:
 * the next open finishes the job. */
static void test_rotate_crash_is_repaired(void **st)
{
	sec_store *s = fresh_store(), *again;
	sec_rotate_report rep;
	char oldkey[128], newkey[128], newpath[1100], now[128];
	(void)st;
	set_ok(s, "X", "survives-a-crash");
	slurp(g_path, oldkey, sizeof(oldkey));
	assert_int_equal(sec_store_rotate(s, g_c, NULL, ACTOR, &rep), 0);
	sec_store_free(s);
	slurp(g_path, newkey, sizeof(newkey));
	/* put the files back as they were at the moment of the crash */
	snprintf(newpath, sizeof(newpath), "%s.new", g_path);
	assert_int_equal(rename(g_path, newpath), 0);
	write_file(g_path, oldkey, 0600);

	again = open_path(g_path, 0);
	check_value(again, "X", "survives-a-crash");
	slurp(g_path, now, sizeof(now));
	assert_string_equal(now, newkey);
	assert_int_not_equal(access(newpath, F_OK), 0);
	sec_store_free(again);

	/* the same when PATH itself is gone */
	assert_int_equal(rename(g_path, newpath), 0);
	again = open_path(g_path, 0);
	check_value(again, "X", "survives-a-crash");
	sec_store_free(again);
}

/* A PATH.new from a rotation that never committed is ignored, then removed
 * by the next rotation. */
static void test_rotate_stale_new_file(void **st)
{
	sec_store *s = fresh_store();
	sec_rotate_report rep;
	sec_key *junk = NULL;
	char newpath[1100];
	(void)st;
	set_ok(s, "Y", "value-of-y-here");
	snprintf(newpath, sizeof(newpath), "%s.new", g_path);
	assert_int_equal(sec_key_generate(&junk), 0);
	assert_int_equal(sec_key_write_file(junk, newpath), 0);
	sec_key_free(junk);
	sec_store_free(s);
	s = open_path(g_path, 0);
	check_value(s, "Y", "value-of-y-here");
	assert_int_equal(sec_store_rotate(s, g_c, NULL, ACTOR, &rep), 0);
	assert_int_not_equal(access(newpath, F_OK), 0);
	sec_store_free(s);
	s = open_path(g_path, 0);
	check_value(s, "Y", "value-of-y-here");
	sec_store_free(s);
}

static void test_rotate_with_env_key(void **st)
{
	const char *k1 = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *k2 = "2222222222222222222222222222222222222222222222222222222222222222";
	sec_keysrc src;
	sec_init_report irep;
	sec_rotate_report rep;
	sec_store *s = NULL;
	sec_key *nk = NULL;
	(void)st;
	setenv("ORCH_MASTER_KEY", k1, 1);
	assert_int_equal(sec_keysrc_from_env(&src, "/nonexistent"), 0);
	assert_int_equal(sec_store_init(g_c, &src, ACTOR, &irep), 0);
	assert_int_equal(sec_store_open(&s, g_c, &src), 0);
	set_ok(s, "E", "env-keyed-value");
	/* no new key given: refused, nothing changes */
	assert_int_equal(sec_store_rotate(s, g_c, NULL, ACTOR, &rep), ERR_INVALID);
	assert_int_equal(q("SELECT version FROM secret_keys"), 1);
	/* the same key again: refused */
	assert_int_equal(sec_key_parse(&nk, k1, 64, "t"), 0);
	assert_int_equal(sec_store_rotate(s, g_c, nk, ACTOR, &rep), ERR_INVALID);
	assert_int_equal(sec_key_parse(&nk, k2, 64, "t"), 0);
	assert_int_equal(sec_store_rotate(s, g_c, nk, ACTOR, &rep), 0);
	assert_int_equal(rep.version, 2);
	check_value(s, "E", "env-keyed-value");
	sec_store_free(s);
	assert_int_equal(sec_store_open(&s, g_c, &src), ERR_CRYPTO);
	setenv("ORCH_MASTER_KEY", k2, 1);
	assert_int_equal(sec_store_open(&s, g_c, &src), 0);
	check_value(s, "E", "env-keyed-value");
	sec_store_free(s);
	unsetenv("ORCH_MASTER_KEY");
}

/* --- listing, scopes, removal --- */

static void test_list_and_scopes(void **st)
{
	sec_store *s = fresh_store();
	sec_secret_info *v = NULL;
	size_t n = 0;
	char h[SEC_HANDLE_LEN + 1], *val = NULL;
	sec_res_spec spec = {"proj-a", "git", "zeta", NULL, NULL, ACTOR};
	(void)st;
	set_ok(s, "zeta", "zeta-value-123");
	assert_int_equal(sec_store_set(s, g_c, "alpha", "proj-a", "alpha-value-1", 13, ACTOR, NULL),
			 0);
	assert_int_equal(sec_res_allocate(g_c, &spec, h), 0);
	assert_int_equal(sec_store_get(s, g_c, "zeta", &val), 0);
	sec_value_free(val);
	assert_int_equal(sec_store_list(g_c, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "alpha");
	assert_string_equal(v[0].scope, "proj-a");
	assert_int_equal(v[0].last_used_ms, 0);
	assert_int_equal(v[0].handles, 0);
	assert_string_equal(v[1].name, "zeta");
	assert_string_equal(v[1].scope, "");
	assert_true(v[1].last_used_ms > 0);
	assert_true(v[1].created_ms > 0);
	assert_int_equal(v[1].uses, 1);
	assert_int_equal(v[1].handles, 1);
	free(v);
	/* a set without a scope keeps the scope; a scope that would strand a
	 * live handle of another project is refused */
	set_ok(s, "alpha", "alpha-value-2");
	assert_int_equal(q("SELECT count(*) FROM secrets WHERE name = 'alpha' AND scope = "
			   "'proj-a'"),
			 1);
	assert_int_equal(sec_store_set(s, g_c, "zeta", "proj-b", "zeta-value-456", 14, ACTOR,
				       NULL),
			 ERR_CONFLICT);
	assert_non_null(strstr(err_last(), h));
	check_value(s, "zeta", "zeta-value-123");
	assert_int_equal(sec_store_set(s, g_c, "zeta", "proj-a", "zeta-value-456", 14, ACTOR,
				       NULL),
			 0);
	assert_int_equal(sec_store_set(s, g_c, "alpha", "", "alpha-value-3", 13, ACTOR, NULL), 0);
	assert_int_equal(q("SELECT count(*) FROM secrets WHERE name = 'alpha' AND scope IS NULL"),
			 1);
	sec_store_free(s);
}

static void test_rm(void **st)
{
	sec_store *s = fresh_store();
	char h[SEC_HANDLE_LEN + 1];
	sec_res_spec spec = {"proj", "database", "DB_URL", NULL, NULL, ACTOR};
	int revoked = -1;
	(void)st;
	set_ok(s, "DB_URL", "postgresql://u:pw@db/x");
	set_ok(s, "LONELY", "nobody-uses-this");
	assert_int_equal(sec_res_allocate(g_c, &spec, h), 0);
	assert_int_equal(sec_store_rm(g_c, "DB_URL", 0, ACTOR, NULL), ERR_CONFLICT);
	assert_non_null(strstr(err_last(), h));
	assert_non_null(strstr(err_last(), "--revoke-handles"));
	assert_int_equal(q("SELECT count(*) FROM secrets"), 2);
	assert_int_equal(sec_store_rm(g_c, "DB_URL", 1, ACTOR, &revoked), 0);
	assert_int_equal(revoked, 1);
	assert_int_equal(q("SELECT count(*) FROM secrets WHERE name = 'DB_URL'"), 0);
	assert_int_equal(q("SELECT count(*) FROM resources WHERE revoked_at IS NOT NULL AND "
			   "revoke_reason = 'secret removed' AND secret_id IS NULL"),
			 1);
	assert_int_equal(q("SELECT count(*) FROM secret_audit WHERE action IN ('rm', 'revoke')"),
			 2);
	assert_int_equal(sec_store_rm(g_c, "LONELY", 0, ACTOR, &revoked), 0);
	assert_int_equal(revoked, 0);
	assert_int_equal(sec_store_rm(g_c, "LONELY", 0, ACTOR, NULL), ERR_NOTFOUND);
	assert_int_equal(sec_store_rm(g_c, "bad name", 0, ACTOR, NULL), ERR_INVALID);
	sec_store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_init_creates_key_and_is_idempotent, setup),
		cmocka_unit_test_setup(test_init_never_makes_a_second_key, setup),
		cmocka_unit_test_setup(test_init_with_env_key, setup),
		cmocka_unit_test_setup(test_not_initialised, setup),
		cmocka_unit_test_setup(test_seal_roundtrip_fresh_nonces, setup),
		cmocka_unit_test_setup(test_get_unknown, setup),
		cmocka_unit_test_setup(test_bad_input_writes_nothing, setup),
		cmocka_unit_test_setup(test_wrong_key_refused_before_anything, setup),
		cmocka_unit_test_setup(test_stale_memory_key_refused, setup),
		cmocka_unit_test_setup(test_tampered_ciphertext_refused, setup),
		cmocka_unit_test_setup(test_foreach_reports_damage, setup),
		cmocka_unit_test_setup(test_rotate_reencrypts_everything, setup),
		cmocka_unit_test_setup(test_rotate_refuses_tampered_and_changes_nothing, setup),
		cmocka_unit_test_setup(test_rotate_crash_is_repaired, setup),
		cmocka_unit_test_setup(test_rotate_stale_new_file, setup),
		cmocka_unit_test_setup(test_rotate_with_env_key, setup),
		cmocka_unit_test_setup(test_list_and_scopes, setup),
		cmocka_unit_test_setup(test_rm, setup),
	};
	int rc;
	ts_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	pg_conn_close(g_c);
	sec_redact_clear();
	return rc;
}
