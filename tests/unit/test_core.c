/* core: errors, buffers, configuration parsing, backoff. */
#include "tests/support/support.h"

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/health.h"
#include "core/jsonx.h"
#include "core/pg.h"
#include "core/redact.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

static void test_err_per_thread(void **state)
{
	(void)state;
	assert_int_equal(err_set(ERR_INVALID, "bad %d", 7), ERR_INVALID);
	assert_string_equal(err_last(), "bad 7");
	assert_int_equal(err_last_code(), ERR_INVALID);
	err_wrap("while parsing %s", "x");
	assert_string_equal(err_last(), "while parsing x: bad 7");
	assert_string_equal(err_name(ERR_LEASE), "lease");
	err_clear();
	assert_string_equal(err_last(), "");
	/* the current message as an argument of the next one: formatted aside,
	 * not into itself */
	err_set(ERR_INVALID, "\"plan.tasks[2].files\" must be an array of paths");
	assert_int_equal(err_set(ERR_PARSE, "task '%s': %s (attempt %d)", "t-3", err_last(), 2),
			 ERR_PARSE);
	assert_string_equal(err_last(), "task 't-3': \"plan.tasks[2].files\" must be an array of "
					"paths (attempt 2)");
	{
		char longer[1500];
		memset(longer, 'x', sizeof(longer) - 1);
		longer[sizeof(longer) - 1] = '\0';
		err_set(ERR_INVALID, "%s", longer);
		err_set(ERR_INVALID, "ab: %s", err_last());
		assert_int_equal(strncmp(err_last(), "ab: xxxx", 8), 0);
		assert_int_equal(strlen(err_last()), 1023);
	}
	err_clear();
}

static void test_buf_cap(void **state)
{
	buf b;
	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "12345678"), 0);
	assert_int_equal(buf_putc(&b, 'x'), ERR_TOOBIG);
	assert_int_equal(b.len, 8);
	assert_string_equal(buf_cstr(&b), "12345678");
	buf_reset(&b);
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "ab"), 0);
	assert_string_equal(buf_cstr(&b), "42-ab");
	buf_free(&b);
	assert_string_equal(buf_cstr(&b), "");
}

static void test_buf_json_escape(void **state)
{
	buf b;
	(void)state;
	buf_init(&b, 0);
	buf_put_json_str(&b, "a\"b\\c\n\x01");
	assert_string_equal(buf_cstr(&b), "a\\\"b\\\\c\\n\\u0001");
	buf_free(&b);

	/* well-formed UTF-8 passes; anything else becomes U+FFFD, byte by byte */
	buf_init(&b, 0);
	buf_put_json_str(&b, "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	assert_string_equal(buf_cstr(&b), "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	buf_free(&b);
	buf_init(&b, 0);
	buf_put_json_str(&b, "a\xff\x80" "b\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82");
	assert_string_equal(buf_cstr(&b), "a\\ufffd\\ufffdb\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"
					  "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd");
	buf_free(&b);
	{
		/* whatever the bytes, jansson reads the result back */
		char raw[256], *q;
		json_t *j;

		for (int i = 0; i < 255; i++)
			raw[i] = (char)(255 - i);
		raw[255] = 0;
		buf_init(&b, 0);
		buf_putc(&b, '"');
		buf_put_json_str(&b, raw);
		buf_putc(&b, '"');
		j = json_loads(buf_cstr(&b), JSON_DECODE_ANY, NULL);
		assert_non_null(j);
		q = strstr(json_string_value(j), "\xef\xbf\xbd");
		assert_non_null(q);
		json_decref(j);
		buf_free(&b);
	}
}

static void test_config_parsers(void **state)
{
	int64_t v;
	(void)state;
	assert_int_equal(cfg_parse_duration_ms("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(cfg_parse_duration_ms("30s", &v), 0);
	assert_int_equal(v, 30000);
	assert_int_equal(cfg_parse_duration_ms("5m", &v), 0);
	assert_int_equal(v, 300000);
	assert_int_equal(cfg_parse_duration_ms("1500", &v), 0);
	assert_int_equal(v, 1500);
	assert_int_equal(cfg_parse_duration_ms("5x", &v), ERR_INVALID);
	assert_int_equal(cfg_parse_size("512M", &v), 0);
	assert_int_equal(v, 512LL << 20);
	assert_int_equal(cfg_parse_size("2GiB", &v), 0);
	assert_int_equal(v, 2LL << 30);
	assert_int_equal(cfg_parse_size("12q", &v), ERR_INVALID);
	assert_int_equal(cfg_parse_int("12a", &v), ERR_INVALID);
}

static void test_config_env(void **state)
{
	orch_config cfg;
	(void)state;
	setenv("ORCH_ENGINE_THREADS", "7", 1);
	setenv("ORCH_LEASE", "2s", 1);
	assert_int_equal(cfg_load(&cfg), 0);
	assert_int_equal(cfg.engine_threads, 7);
	assert_int_equal(cfg.lease_ms, 2000);
	setenv("ORCH_ENGINE_THREADS", "many", 1);
	assert_int_equal(cfg_load(&cfg), ERR_INVALID);
	assert_non_null(strstr(err_last(), "ORCH_ENGINE_THREADS"));
	setenv("ORCH_ENGINE_THREADS", "0", 1);
	assert_int_equal(cfg_load(&cfg), ERR_INVALID);
	unsetenv("ORCH_ENGINE_THREADS");
	setenv("ORCH_LOG_LEVEL", "loud", 1);
	assert_int_equal(cfg_load(&cfg), ERR_INVALID);
	assert_non_null(strstr(err_last(), "ORCH_LOG_LEVEL"));
	unsetenv("ORCH_LOG_LEVEL");
	unsetenv("ORCH_LEASE");
	assert_int_equal(cfg_load(&cfg), 0);
	assert_int_equal(cfg.durability_async, 0);
	setenv("ORCH_DURABILITY", "async", 1);
	assert_int_equal(cfg_load(&cfg), 0);
	assert_int_equal(cfg.durability_async, 1);
	setenv("ORCH_DURABILITY", "fast", 1);
	assert_int_equal(cfg_load(&cfg), ERR_INVALID);
	assert_non_null(strstr(err_last(), "ORCH_DURABILITY=fast"));
	unsetenv("ORCH_DURABILITY");
}

static void test_backoff_bounds(void **state)
{
	(void)state;
	for (int attempt = 0; attempt < 12; attempt++) {
		for (int k = 0; k < 50; k++) {
			int64_t cap = 100LL << attempt;
			int64_t d = util_backoff_ms(attempt, 100, 5000);
			if (cap > 5000)
				cap = 5000;
			assert_true(d >= cap / 2 && d <= cap);
		}
	}
}

static void test_pg_url_redact(void **state)
{
	char out[256];
	(void)state;
	pg_url_redact("postgresql://bob:s3cret@db:5432/x", out, sizeof(out));
	assert_string_equal(out, "postgresql://bob:***@db:5432/x");
	pg_url_redact("host=db password=s3cret user=bob", out, sizeof(out));
	assert_null(strstr(out, "s3cret"));
	pg_url_redact("postgresql://bob@db/x", out, sizeof(out));
	assert_string_equal(out, "postgresql://bob@db/x");
}

static void test_pg_text_array(void **state)
{
	buf b;
	const char *items[] = {"a", "b\"c", "d\\e", "x,y"};
	(void)state;
	buf_init(&b, 0);
	assert_int_equal(pg_text_array(&b, items, 4), 0);
	assert_string_equal(buf_cstr(&b), "{\"a\",\"b\\\"c\",\"d\\\\e\",\"x,y\"}");
	buf_free(&b);
}

static void upper_filter(buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] == 's')
			b->data[i] = '*';
}

static void test_redact_hook(void **state)
{
	char *s;
	(void)state;
	s = redact_str("secrets");
	assert_string_equal(s, "secrets");
	free(s);
	redact_set(upper_filter);
	s = redact_str("secrets");
	assert_string_equal(s, "*ecret*");
	free(s);
	redact_set(NULL);
}

static void test_health_registry(void **state)
{
	(void)state;
	health_reset();
	assert_int_equal(health_worst(), HEALTH_OK);
	health_report("bot.relay", HEALTH_OK, NULL);
	health_report("engine.listener", HEALTH_DEGRADED, "reconnecting (%d)", 2);
	assert_int_equal(health_worst(), HEALTH_DEGRADED);
	health_report("bot.relay", HEALTH_DOWN, "stopped");
	assert_int_equal(health_worst(), HEALTH_DOWN);
	json_t *snap = health_snapshot();
	assert_non_null(snap);
	assert_string_equal(json_string_value(json_object_get(json_object_get(snap, "bot.relay"), "state")), "down");
	assert_string_equal(json_string_value(json_object_get(json_object_get(snap, "engine.listener"), "reason")),
			    "reconnecting (2)");
	json_decref(snap);
	health_forget("bot.relay");
	health_report("engine.listener", HEALTH_OK, NULL);
	assert_int_equal(health_worst(), HEALTH_OK);
	health_reset();
}

static void test_pg_error_classes(void **state)
{
	(void)state;
	assert_int_equal(pg_errclass_of("08006"), PG_ERRC_CONNECTION);
	assert_int_equal(pg_errclass_of("57P01"), PG_ERRC_CONNECTION);
	assert_int_equal(pg_errclass_of("57P03"), PG_ERRC_CONNECTION);
	assert_int_equal(pg_errclass_of("53100"), PG_ERRC_RESOURCES);
	assert_int_equal(pg_errclass_of("53300"), PG_ERRC_RESOURCES);
	assert_int_equal(pg_errclass_of("58030"), PG_ERRC_RESOURCES);
	assert_int_equal(pg_errclass_of("23505"), PG_ERRC_CONSTRAINT);
	assert_int_equal(pg_errclass_of("23503"), PG_ERRC_CONSTRAINT);
	assert_int_equal(pg_errclass_of("40001"), PG_ERRC_SERIALIZATION);
	assert_int_equal(pg_errclass_of("40P01"), PG_ERRC_SERIALIZATION);
	assert_int_equal(pg_errclass_of("55P03"), PG_ERRC_SERIALIZATION);
	assert_int_equal(pg_errclass_of("P0001"), PG_ERRC_OTHER);
	assert_int_equal(pg_errclass_of("57014"), PG_ERRC_OTHER);
	assert_int_equal(pg_errclass_of(""), PG_ERRC_OTHER);
	assert_int_equal(pg_errclass_of(NULL), PG_ERRC_OTHER);
	assert_string_equal(pg_errclass_name(PG_ERRC_RESOURCES), "resources");
	assert_string_equal(pg_errclass_name(PG_ERRC_CONNECTION), "connection");
}

/* One lenient parse: the value's "s" member, or NULL when it did not parse. */
static char *lenient_s(const char *text, size_t len, int *repaired)
{
	json_error_t jerr;
	json_t *j = jx_loadb_lenient(text, len, 0, &jerr, repaired);
	char *s = j && json_is_string(json_object_get(j, "s"))
			  ? strdup(json_string_value(json_object_get(j, "s")))
			  : NULL;
	json_decref(j);
	return s;
}

static void test_lenient_json(void **state)
{
	static const struct {
		const char *in, *want;
		int repairs;
	} cases[] = {
		{"{\"s\":\"plain \\u00e9 \xc3\xa9\"}", "plain \xc3\xa9 \xc3\xa9", 0},
		/* one byte that is not UTF-8 */
		{"{\"s\":\"a\xffz\"}", "a\xef\xbf\xbdz", 1},
		/* a truncated sequence, then ASCII: one replacement, the ASCII kept */
		{"{\"s\":\"a\xe2\x82z\"}", "a\xef\xbf\xbdz", 1},
		/* an overlong form and an encoded surrogate: one per maximal subpart */
		{"{\"s\":\"\xc0\x80\"}", "\xef\xbf\xbd\xef\xbf\xbd", 2},
		{"{\"s\":\"\xed\xa0\x80x\"}", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx", 3},
		/* above U+10FFFF */
		{"{\"s\":\"\xf4\x90\x80\x80\"}",
		 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 4},
		/* escapes jansson refuses: a lone surrogate, NUL */
		{"{\"s\":\"x\\udcffy\"}", "x\xef\xbf\xbdy", 1},
		{"{\"s\":\"x\\ud800\\u0041\"}", "x\xef\xbf\xbd" "A", 1},
		{"{\"s\":\"n\\u0000ul\"}", "n\xef\xbf\xbdul", 1},
		/* a valid pair stays */
		{"{\"s\":\"\\ud83d\\ude00\"}", "\xf0\x9f\x98\x80", 0},
		/* a raw control character inside a string */
		{"{\"s\":\"tab\there\"}", "tab\there", 1},
	};
	int repaired;
	char *s;
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = lenient_s(cases[i].in, strlen(cases[i].in), &repaired);
		if (!s || strcmp(s, cases[i].want) != 0 || repaired != cases[i].repairs)
			fail_msg("case %zu: got '%s' with %d repairs", i, s ? s : "(no parse)",
				 repaired);
		free(s);
	}
	/* a raw NUL inside a string (counted length) */
	s = lenient_s("{\"s\":\"a\0b\"}", 11, &repaired);
	assert_non_null(s);
	assert_string_equal(s, "a\xef\xbf\xbd" "b");
	free(s);
	/* what is not JSON stays an error */
	assert_null(lenient_s("{\"s\":", 5, &repaired));
	/* the lossy copy for storing and printing outside bytes */
	{
		buf b;
		buf_init(&b, 0);
		assert_int_equal(jx_utf8_lossy(&b, "ok\xff\0\xc3\xa9", 6), 0);
		assert_string_equal(buf_cstr(&b), "ok\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9");
		buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_per_thread), cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_buf_json_escape), cmocka_unit_test(test_config_parsers),
		cmocka_unit_test(test_config_env), cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_pg_url_redact), cmocka_unit_test(test_pg_text_array),
		cmocka_unit_test(test_redact_hook), cmocka_unit_test(test_health_registry),
		cmocka_unit_test(test_pg_error_classes), cmocka_unit_test(test_lenient_json),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
