/* secrets without a database: the redaction filter (every form of a value,
 * longest match, caps, threads, the log hook), master key parsing and key
 * files, and the checks of names, scopes, values, handles and variables. */
#include "tests/support/support.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"
#include "secrets/key.h"
#include "secrets/redact.h"
#include "secrets/resource.h"
#include "secrets/store.h"

#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CANARY "cAn4ry-9f8e7d6c5b4a-SECRET"

static int setup(void **st)
{
	(void)st;
	sec_redact_clear();
	sec_redact_install();
	return 0;
}

/* Filters `in` and returns the result (caller frees). */
static char *filtered(const char *in)
{
	buf b;

	buf_init(&b, 0);
	assert_int_equal(buf_puts(&b, in), 0);
	sec_redact_buf(&b);
	return buf_steal(&b);
}

static void b64(const void *bin, size_t n, int variant, char *out, size_t cap)
{
	assert_true(sodium_base64_ENCODED_LEN(n, variant) <= cap);
	sodium_bin2base64(out, cap, bin, n, variant);
}

static void test_plain_and_marker(void **st)
{
	char *out;
	(void)st;
	assert_int_equal(sec_redact_add("CANARY_TOKEN", CANARY, strlen(CANARY)), 0);
	out = filtered("token=" CANARY "; again:" CANARY "!");
	assert_string_equal(out, "token=[redacted:CANARY_TOKEN]; again:[redacted:CANARY_TOKEN]!");
	free(out);
	/* at the very start and the very end, and alone */
	out = filtered(CANARY);
	assert_string_equal(out, "[redacted:CANARY_TOKEN]");
	free(out);
	/* a near miss stays */
	out = filtered("cAn4ry-9f8e7d6c5b4a-SECRE");
	assert_string_equal(out, "cAn4ry-9f8e7d6c5b4a-SECRE");
	free(out);
}

static void test_base64_forms(void **st)
{
	static const int variants[] = {
		sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
	/* bytes whose base64 holds '+' and '/' in the standard alphabet */
	const char *v = "\xfb\xff\xbf-key-with->?~-bytes";
	char enc[128], line[256];
	(void)st;
	assert_int_equal(sec_redact_add("BIN", v, strlen(v)), 0);
	for (size_t i = 0; i < 4; i++) {
		char *out;
		b64(v, strlen(v), variants[i], enc, sizeof(enc));
		snprintf(line, sizeof(line), "Authorization: Bearer %s.", enc);
		out = filtered(line);
		assert_string_equal(out, "Authorization: Bearer [redacted:BIN].");
		free(out);
	}
}

static void test_hex_forms(void **st)
{
	char hex[2 * sizeof(CANARY) + 1], line[256], *out;
	(void)st;
	assert_int_equal(sec_redact_add("CANARY_TOKEN", CANARY, strlen(CANARY)), 0);
	sodium_bin2hex(hex, sizeof(hex), (const unsigned char *)CANARY, strlen(CANARY));
	snprintf(line, sizeof(line), "dump %s end", hex);
	out = filtered(line);
	assert_string_equal(out, "dump [redacted:CANARY_TOKEN] end");
	free(out);
	for (char *p = hex; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	snprintf(line, sizeof(line), "DUMP=%s", hex);
	out = filtered(line);
	assert_string_equal(out, "DUMP=[redacted:CANARY_TOKEN]");
	free(out);
}

static void test_json_and_url_forms(void **st)
{
	const char *v = "p@ss\"w/rd\\with spaces&more";
	char *out;
	(void)st;
	assert_int_equal(sec_redact_add("DB_PASSWORD", v, strlen(v)), 0);
	out = filtered("{\"password\":\"p@ss\\\"w/rd\\\\with spaces&more\"}");
	assert_string_equal(out, "{\"password\":\"[redacted:DB_PASSWORD]\"}");
	free(out);
	out = filtered("postgresql://u:p%40ss%22w%2Frd%5Cwith%20spaces%26more@db/x");
	assert_string_equal(out, "postgresql://u:[redacted:DB_PASSWORD]@db/x");
	free(out);
}

/* base64 of a text that holds the value at any byte offset (HTTP Basic
 * credentials) keeps at most a few characters of the value's encoding. */
static void test_base64_inside_longer_text(void **st)
{
	static const char *const prefixes[] = {"", "u", "us", "user:", "admin:x"};
	static const char *const suffixes[] = {"", "!", "!!", "!!!"};
	char plain[128], enc[256], *out;
	(void)st;
	assert_int_equal(sec_redact_add("CANARY_TOKEN", CANARY, strlen(CANARY)), 0);
	for (size_t p = 0; p < 5; p++) {
		for (size_t s = 0; s < 4; s++) {
			size_t n, keep;
			int variant = (p + s) % 2 ? sodium_base64_VARIANT_URLSAFE
						  : sodium_base64_VARIANT_ORIGINAL;
			n = (size_t)snprintf(plain, sizeof(plain), "%s%s%s", prefixes[p], CANARY,
					     suffixes[s]);
			b64(plain, n, variant, enc, sizeof(enc));
			out = filtered(enc);
			assert_non_null(strstr(out, "[redacted:CANARY_TOKEN]"));
			/* what is left: the prefix's and suffix's characters plus at most 3
			 * characters of the value's at each end */
			keep = strlen(out) - strlen("[redacted:CANARY_TOKEN]");
			assert_true(keep <= (strlen(prefixes[p]) + 2) / 3 * 4 +
						     (strlen(suffixes[s]) + 2) / 3 * 4 + 8);
			free(out);
		}
	}
}

static void test_longest_match_and_overlap(void **st)
{
	char *out;
	(void)st;
	assert_int_equal(sec_redact_add("SHORT", "abcdefgh", 8), 0);
	assert_int_equal(sec_redact_add("LONG", "abcdefgh-and-more", 17), 0);
	out = filtered("x abcdefgh-and-more y abcdefgh z");
	assert_string_equal(out, "x [redacted:LONG] y [redacted:SHORT] z");
	free(out);
	/* adjacent occurrences */
	out = filtered("abcdefghabcdefgh");
	assert_string_equal(out, "[redacted:SHORT][redacted:SHORT]");
	free(out);
	assert_int_equal(sec_redact_count(), 2);
	/* the same value again is a no-op */
	assert_int_equal(sec_redact_add("OTHER", "abcdefgh", 8), 0);
	assert_int_equal(sec_redact_count(), 2);
}

static void test_short_value_refused(void **st)
{
	(void)st;
	assert_int_equal(sec_redact_add("X", "1234567", 7), ERR_INVALID);
	assert_int_equal(sec_redact_count(), 0);
}

static void test_unchanged_text_untouched(void **st)
{
	buf b;
	char *before;
	(void)st;
	assert_int_equal(sec_redact_add("CANARY_TOKEN", CANARY, strlen(CANARY)), 0);
	buf_init(&b, 0);
	buf_puts(&b, "nothing secret in this line at all, just words and numbers 12345678");
	before = b.data;
	sec_redact_buf(&b);
	assert_ptr_equal(b.data, before);
	assert_string_equal(buf_cstr(&b),
			    "nothing secret in this line at all, just words and numbers 12345678");
	buf_free(&b);
}

static void test_cap_cuts_not_leaks(void **st)
{
	buf b;
	(void)st;
	assert_int_equal(sec_redact_add("A_RATHER_LONG_SECRET_NAME", "12345678", 8), 0);
	buf_init(&b, 24);
	assert_int_equal(buf_puts(&b, "ab12345678cd12345678"), 0);
	sec_redact_buf(&b);
	assert_true(b.len <= 24);
	assert_null(strstr(buf_cstr(&b), "12345678"));
	assert_int_equal(strncmp(buf_cstr(&b), "ab[redacted:", 12), 0);
	buf_free(&b);
}

static void test_installed_hook_and_log(void **st)
{
	char path[1024], text[4096];
	const char *dir = getenv("ORCH_DATA_DIR");
	int fd, saved;
	ssize_t n;
	char *s;
	(void)st;
	assert_int_equal(sec_redact_add("CANARY_TOKEN", CANARY, strlen(CANARY)), 0);
	s = redact_str("core hook: " CANARY);
	assert_string_equal(s, "core hook: [redacted:CANARY_TOKEN]");
	free(s);

	snprintf(path, sizeof(path), "%s/log.txt", dir ? dir : "/tmp");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	saved = dup(2);
	dup2(fd, 2);
	log_error("test", "worker said: %s and %s", CANARY, "bye");
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	text[n] = '\0';
	assert_null(strstr(text, CANARY));
	assert_non_null(strstr(text, "worker said: [redacted:CANARY_TOKEN] and bye"));
}

/* Several threads filter while values are added: every result is clean. */
typedef struct hammer {
	int bad;
	int rounds;
} hammer;

static void *hammer_fn(void *arg)
{
	hammer *h = arg;
	for (int i = 0; i < h->rounds; i++) {
		buf b;
		buf_init(&b, 0);
		buf_printf(&b, "line %d carries %s in the middle", i, CANARY);
		redact_buf(&b);
		if (strstr(buf_cstr(&b), CANARY) || !strstr(buf_cstr(&b), "[redacted:"))
			h->bad++;
		buf_free(&b);
	}
	return NULL;
}

static void test_threads(void **st)
{
	pthread_t t[4];
	hammer h[4];
	(void)st;
	assert_int_equal(sec_redact_add("CANARY_TOKEN", CANARY, strlen(CANARY)), 0);
	for (int i = 0; i < 4; i++) {
		h[i].bad = 0;
		h[i].rounds = 3000;
		assert_int_equal(pthread_create(&t[i], NULL, hammer_fn, &h[i]), 0);
	}
	for (int i = 0; i < 40; i++) {
		char name[32], value[64];
		snprintf(name, sizeof(name), "EXTRA_%d", i);
		snprintf(value, sizeof(value), "extra-secret-value-%03d-xyz", i);
		assert_int_equal(sec_redact_add(name, value, strlen(value)), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(h[i].bad, 0);
	}
	assert_int_equal(sec_redact_count(), 41);
}

static void test_batch(void **st)
{
	char *out;
	(void)st;
	sec_redact_batch_begin();
	assert_int_equal(sec_redact_add("ONE", "first-value-1", 13), 0);
	assert_int_equal(sec_redact_add("TWO", "second-value-2", 14), 0);
	assert_int_equal(sec_redact_batch_end(), 0);
	out = filtered("first-value-1 second-value-2");
	assert_string_equal(out, "[redacted:ONE] [redacted:TWO]");
	free(out);
	sec_redact_clear();
	out = filtered("first-value-1");
	assert_string_equal(out, "first-value-1");
	free(out);
}

/* --- master keys --- */

static void test_key_parse_forms(void **st)
{
	unsigned char raw[32];
	char hex[65], text[128];
	sec_key *k = NULL, *k2 = NULL;
	static const int variants[] = {
		sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
	(void)st;
	for (int i = 0; i < 32; i++)
		raw[i] = (unsigned char)(0xf0 + i * 7); /* '+' and '/' in standard base64 */
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	assert_int_equal(sec_key_parse(&k, hex, strlen(hex), "test"), 0);
	snprintf(text, sizeof(text), "  %s\n", hex);
	for (char *p = text; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(sec_key_parse(&k2, text, strlen(text), "test"), 0);
	assert_true(sec_key_equal(k, k2));
	sec_key_free(k2);
	for (size_t v = 0; v < 4; v++) {
		b64(raw, sizeof(raw), variants[v], text, sizeof(text));
		assert_int_equal(sec_key_parse(&k2, text, strlen(text), "test"), 0);
		assert_true(sec_key_equal(k, k2));
		sec_key_free(k2);
	}
	{
		char back[65];
		sec_key_hex(k, back);
		assert_string_equal(back, hex);
	}
	sec_key_free(k);
}

static void test_key_parse_bad(void **st)
{
	sec_key *k = NULL;
	char text[128];
	unsigned char raw[31] = {1};
	(void)st;
	assert_int_equal(sec_key_parse(&k, "", 0, "ORCH_MASTER_KEY"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "ORCH_MASTER_KEY"));
	assert_int_equal(sec_key_parse(&k, "abc", 3, "ORCH_MASTER_KEY"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "64 hex digits"));
	/* 63 and 65 hex digits, a non-hex digit */
	memset(text, 'a', 65);
	assert_int_equal(sec_key_parse(&k, text, 63, "k"), ERR_INVALID);
	assert_int_equal(sec_key_parse(&k, text, 65, "k"), ERR_INVALID);
	text[10] = 'g';
	assert_int_equal(sec_key_parse(&k, text, 64, "k"), ERR_INVALID);
	/* base64 of 31 bytes */
	b64(raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL, text, sizeof(text));
	assert_int_equal(sec_key_parse(&k, text, strlen(text), "k"), ERR_INVALID);
	assert_null(k);
}

static void test_key_check_value(void **st)
{
	sec_key *a = NULL, *b = NULL;
	char ka[SEC_KCV_HEX + 1], kb[SEC_KCV_HEX + 1], kh[65];
	(void)st;
	assert_int_equal(sec_key_generate(&a), 0);
	assert_int_equal(sec_key_generate(&b), 0);
	sec_key_check_value(a, ka);
	sec_key_check_value(b, kb);
	assert_int_equal(strlen(ka), SEC_KCV_HEX);
	assert_string_not_equal(ka, kb);
	/* the check value is not the key, nor its secretbox key */
	sec_key_hex(a, kh);
	assert_string_not_equal(ka, kh);
	{
		unsigned char raw[32];
		size_t got = 0;
		assert_int_equal(sodium_hex2bin(raw, sizeof(raw), kh, 64, NULL, &got, NULL), 0);
		assert_memory_not_equal(sec_key_box_key(a), raw, 32);
	}
	sec_key_free(a);
	sec_key_free(b);
	sec_key_free(NULL);
}

static void data_path(char *out, size_t cap, const char *name)
{
	const char *dir = getenv("ORCH_DATA_DIR");
	snprintf(out, cap, "%s/%s", dir && *dir ? dir : "/tmp", name);
}

static void test_key_files(void **st)
{
	char path[1024];
	sec_keysrc src;
	sec_key *k = NULL, *back = NULL;
	struct stat sb;
	mode_t old_mask;
	(void)st;
	data_path(path, sizeof(path), "keys/deeper/master.key");
	unlink(path);
	assert_int_equal(sec_keysrc_file(&src, path), 0);
	/* missing: says what to do */
	assert_int_equal(sec_key_load(&back, &src), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "secrets init"));
	/* created 0600 whatever the umask, in a new 0700 folder */
	assert_int_equal(sec_key_generate(&k), 0);
	old_mask = umask(0);
	assert_int_equal(sec_key_write_file(k, path), 0);
	umask(old_mask);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	{
		char dir[1024];
		data_path(dir, sizeof(dir), "keys/deeper");
		assert_int_equal(stat(dir, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0700);
	}
	assert_int_equal(sec_key_load(&back, &src), 0);
	assert_true(sec_key_equal(k, back));
	sec_key_free(back);
	/* never replaced */
	{
		sec_key *other = NULL;
		assert_int_equal(sec_key_generate(&other), 0);
		assert_int_equal(sec_key_write_file(other, path), ERR_CONFLICT);
		assert_int_equal(sec_key_load(&back, &src), 0);
		assert_true(sec_key_equal(k, back));
		sec_key_free(back);
		sec_key_free(other);
	}
	/* readable by group or others: refused, with the fix */
	chmod(path, 0640);
	assert_int_equal(sec_key_load(&back, &src), ERR_DENIED);
	assert_non_null(strstr(err_last(), "chmod 600"));
	chmod(path, 0604);
	assert_int_equal(sec_key_load(&back, &src), ERR_DENIED);
	chmod(path, 0400);
	assert_int_equal(sec_key_load(&back, &src), 0);
	sec_key_free(back);
	/* a folder is not a key file */
	{
		char dir[1024];
		sec_keysrc dsrc;
		data_path(dir, sizeof(dir), "keys");
		chmod(dir, 0700);
		sec_keysrc_file(&dsrc, dir);
		assert_int_equal(sec_key_load(&back, &dsrc), ERR_DENIED);
	}
	/* garbage in the file */
	{
		char gpath[1024];
		sec_keysrc gsrc;
		FILE *f;
		data_path(gpath, sizeof(gpath), "garbage.key");
		f = fopen(gpath, "w");
		fputs("not a key\n", f);
		fclose(f);
		chmod(gpath, 0600);
		sec_keysrc_file(&gsrc, gpath);
		assert_int_equal(sec_key_load(&back, &gsrc), ERR_INVALID);
		assert_non_null(strstr(err_last(), gpath));
	}
	sec_key_free(k);
}

static void test_keysrc_env(void **st)
{
	sec_keysrc src;
	sec_key *k = NULL;
	(void)st;
	unsetenv("ORCH_MASTER_KEY");
	unsetenv("ORCH_MASTER_KEY_FILE");
	assert_int_equal(sec_keysrc_from_env(&src, "/data"), 0);
	assert_false(src.from_env);
	assert_string_equal(src.path, "/data/master.key");
	setenv("ORCH_MASTER_KEY_FILE", "/etc/orch/key", 1);
	assert_int_equal(sec_keysrc_from_env(&src, "/data"), 0);
	assert_string_equal(src.path, "/etc/orch/key");
	setenv("ORCH_MASTER_KEY", "00", 1);
	assert_int_equal(sec_keysrc_from_env(&src, "/data"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "both"));
	unsetenv("ORCH_MASTER_KEY_FILE");
	assert_int_equal(sec_keysrc_from_env(&src, "/data"), 0);
	assert_true(src.from_env);
	assert_int_equal(sec_key_load(&k, &src), ERR_INVALID);
	setenv("ORCH_MASTER_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	       1);
	assert_int_equal(sec_key_load(&k, &src), 0);
	sec_key_free(k);
	unsetenv("ORCH_MASTER_KEY");
}

/* --- checks --- */

static void test_checks(void **st)
{
	char big[SEC_VALUE_MAX + 2];
	char handle[SEC_HANDLE_LEN + 1];
	(void)st;
	assert_int_equal(sec_name_check("OPENAI_API_KEY"), 0);
	assert_int_equal(sec_name_check("github-token.prod"), 0);
	assert_int_equal(sec_name_check(""), ERR_INVALID);
	assert_int_equal(sec_name_check("-x"), ERR_INVALID);
	assert_int_equal(sec_name_check("a b"), ERR_INVALID);
	assert_int_equal(sec_name_check("a'; DROP TABLE secrets; --"), ERR_INVALID);
	assert_int_equal(sec_scope_check("tg:42:p3"), 0);
	assert_int_equal(sec_scope_check("has space"), ERR_INVALID);
	assert_int_equal(sec_scope_check(""), ERR_INVALID);
	assert_int_equal(sec_value_check("12345678", 8), 0);
	assert_int_equal(sec_value_check("1234567", 7), ERR_INVALID);
	assert_int_equal(sec_value_check("1234\0" "5678", 9), ERR_INVALID);
	memset(big, 'x', sizeof(big));
	assert_int_equal(sec_value_check(big, SEC_VALUE_MAX), 0);
	assert_int_equal(sec_value_check(big, SEC_VALUE_MAX + 1), ERR_TOOBIG);
	memcpy(handle, "res_abcdefghijklmnopqrstuvwxyz", sizeof(handle));
	assert_int_equal(sec_handle_check(handle), 0);
	handle[10] = '1'; /* not base32 */
	assert_int_equal(sec_handle_check(handle), ERR_INVALID);
	assert_int_equal(sec_handle_check("res_short"), ERR_INVALID);
	assert_int_equal(sec_handle_check(NULL), ERR_INVALID);
	assert_int_equal(sec_kind_check("git"), 0);
	assert_int_equal(sec_kind_check("llm"), 0);
	assert_int_equal(sec_kind_check("ssh"), ERR_INVALID);
	assert_int_equal(sec_env_name_check("GITHUB_TOKEN"), 0);
	assert_int_equal(sec_env_name_check("_x1"), 0);
	assert_int_equal(sec_env_name_check("1X"), ERR_INVALID);
	assert_int_equal(sec_env_name_check("A-B"), ERR_INVALID);
	assert_int_equal(sec_env_name_check("PATH"), ERR_INVALID);
	assert_int_equal(sec_env_name_check("LD_PRELOAD"), ERR_INVALID);
	assert_int_equal(sec_env_name_check("ORCH_MASTER_KEY"), ERR_INVALID);
}

static void test_values_locked_and_wiped(void **st)
{
	char *v = sec_value_dup("a-secret-value", 14);
	(void)st;
	assert_non_null(v);
	assert_string_equal(v, "a-secret-value");
	sec_value_free(v);
	sec_value_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_plain_and_marker, setup),
		cmocka_unit_test_setup(test_base64_forms, setup),
		cmocka_unit_test_setup(test_hex_forms, setup),
		cmocka_unit_test_setup(test_json_and_url_forms, setup),
		cmocka_unit_test_setup(test_base64_inside_longer_text, setup),
		cmocka_unit_test_setup(test_longest_match_and_overlap, setup),
		cmocka_unit_test_setup(test_short_value_refused, setup),
		cmocka_unit_test_setup(test_unchanged_text_untouched, setup),
		cmocka_unit_test_setup(test_cap_cuts_not_leaks, setup),
		cmocka_unit_test_setup(test_installed_hook_and_log, setup),
		cmocka_unit_test_setup(test_threads, setup),
		cmocka_unit_test_setup(test_batch, setup),
		cmocka_unit_test(test_key_parse_forms),
		cmocka_unit_test(test_key_parse_bad),
		cmocka_unit_test(test_key_check_value),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_keysrc_env),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_values_locked_and_wiped),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
