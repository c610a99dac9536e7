/* spawner edges: test-output summaries, spawn requests, limits, Redis URLs
 * and prompt templates. No server needed. */
#include "tests/support/support.h"
#include "core/err.h"
#include "core/redis.h"
#include "spawner/agent.h"
#include "spawner/limits.h"
#include "spawner/spawner.h"
#include "spawner/request.h"
#include "spawner/testsum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static spw_testsum sum(const char *text, int exit_code)
{
	spw_testsum s;
	spw_testsum_parse(text, strlen(text), exit_code, &s);
	return s;
}

static void test_testsum_formats(void **state)
{
	spw_testsum s;
	(void)state;

	s = sum("running 3 tests\ntest a ... ok\ntest result: ok. 3 passed; 0 failed; 1 ignored; "
		"0 measured; 0 filtered out; finished in 0.00s\n\n"
		"test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n",
		101);
	assert_string_equal(s.format, "cargo");
	assert_int_equal(s.passed, 5);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.skipped, 1);
	assert_int_equal(s.total, 6);
	assert_false(s.ok);

	s = sum("test_a.py ..F\n=================== 1 failed, 2 passed, 1 skipped in 0.12s "
		"===================\n", 1);
	assert_string_equal(s.format, "pytest");
	assert_int_equal(s.passed, 2);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.skipped, 1);
	s = sum("....\n4 passed in 0.05s\n", 0);
	assert_string_equal(s.format, "pytest");
	assert_int_equal(s.passed, 4);
	assert_true(s.ok);
	s = sum("== 3 passed, 2 errors, 1 warning in 1.20s ==\n", 1);
	assert_int_equal(s.passed, 3);
	assert_int_equal(s.failed, 2);
	s = sum("============ no tests ran in 0.01s ============\n", 5);
	assert_string_equal(s.format, "pytest");
	assert_int_equal(s.total, 0);
	assert_false(s.ok);

	s = sum("test_a (t.T) ... ok\n\n------------------------------------------------------"
		"----------------\nRan 7 tests in 0.003s\n\nFAILED (failures=1, errors=2, skipped=1)\n",
		1);
	assert_string_equal(s.format, "unittest");
	assert_int_equal(s.passed, 3);
	assert_int_equal(s.failed, 3);
	assert_int_equal(s.skipped, 1);
	s = sum("Ran 1 test in 0.000s\n\nOK\n", 0);
	assert_int_equal(s.passed, 1);
	assert_true(s.ok);

	s = sum("=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    --- FAIL: TestB/x "
		"(0.00s)\n--- SKIP: TestC (0.00s)\nFAIL\nFAIL\tex\t0.01s\n", 1);
	assert_string_equal(s.format, "go");
	assert_int_equal(s.passed, 1);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.skipped, 1);

	s = sum("1..4\nok 1 - a\nnot ok 2 - b\nok 3 - c # SKIP no db\nnot ok 4 - d # TODO later\n",
		1);
	assert_string_equal(s.format, "tap");
	assert_int_equal(s.passed, 2);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.skipped, 1);
	/* a plan larger than what ran: the missing tests count as failures */
	s = sum("1..5\nok 1\nok 2\n", 0);
	assert_int_equal(s.passed, 2);
	assert_int_equal(s.failed, 3);
	assert_false(s.ok);

	s = sum("building\nsummary: 12 passed, 0 failed, 3 skipped\n", 0);
	assert_string_equal(s.format, "plain");
	assert_int_equal(s.passed, 12);
	assert_int_equal(s.skipped, 3);
	assert_true(s.ok);
	s = sum("7 passed, 2 failed\n", 1);
	assert_int_equal(s.failed, 2);
	assert_int_equal(s.total, 9);

	/* nothing recognisable: the exit status decides */
	s = sum("all good\n", 0);
	assert_string_equal(s.format, "exit");
	assert_int_equal(s.total, -1);
	assert_true(s.ok);
	s = sum("", 2);
	assert_false(s.ok);
	/* counts say all passed but the command failed: not ok */
	s = sum("3 passed, 0 failed\n", 1);
	assert_false(s.ok);
}

static const char GOOD[] =
	"{\"id\": \"ob-12\", \"task\": \"t-1\", \"project\": \"tg:1:p1\", \"repo\": \"/srv/r.git\","
	" \"prompt\": \"fix it\", \"base\": \"main\", \"test_command\": \"make test\","
	" \"handles\": [\"res_aaaaaaaaaaaaaaaaaaaaaaaaaa\"], \"thread_id\": 7, \"run_id\": 9,"
	" \"limits\": {\"steps\": 5, \"cost_usd\": 0.5, \"wall_s\": 60, \"mem\": \"256M\"},"
	" \"meta\": {\"n\": 1}}";

static void expect_invalid(const char *text, const char *needle)
{
	spw_request r;
	int rc = spw_request_parse(text, strlen(text), &r);

	if (rc != ERR_INVALID || !strstr(err_last(), needle))
		fail_msg("%s: got %d '%s', wanted '%s'", text, rc, err_last(), needle);
	spw_request_free(&r);
}

/* The failing tests named, as a change's baseline compares them. */
static void test_testsum_failing_names(void **state)
{
	spw_testsum s;
	(void)state;

	s = sum("test_a (t.T.test_a) ... FAIL\ntest_b (t.T.test_b) ... ok\n"
		"======================================================================\n"
		"FAIL: test_a (t.T.test_a)\n------\nAssertionError\n"
		"ERROR: test_c (t.T.test_c)\n------\nNameError\n\n"
		"Ran 3 tests in 0.001s\n\nFAILED (failures=1, errors=1)\n", 1);
	assert_int_equal(s.failed, 2);
	assert_true(s.failing_known);
	assert_string_equal(s.failing, "test_a (t.T.test_a)\ntest_c (t.T.test_c)\n");
	assert_true(spw_testsum_named(s.failing, "test_c (t.T.test_c)"));
	assert_false(spw_testsum_named(s.failing, "test_a"));

	s = sum("=== short test summary info ===\nFAILED tests/test_x.py::test_one - assert 1 == 2\n"
		"ERROR tests/test_x.py::test_two - fixture\n=== 2 failed, 3 passed in 0.2s ===\n", 1);
	assert_true(s.failing_known);
	assert_string_equal(s.failing, "tests/test_x.py::test_one\ntests/test_x.py::test_two\n");
	/* pytest without its summary lines (-q -rN): counted, not named */
	s = sum("..F\n1 failed, 2 passed in 0.1s\n", 1);
	assert_int_equal(s.failed, 1);
	assert_false(s.failing_known);

	s = sum("--- PASS: TestA (0.00s)\n--- FAIL: TestB (0.00s)\n    --- FAIL: TestB/x (0.00s)\n"
		"FAIL\n", 1);
	assert_true(s.failing_known);
	assert_string_equal(s.failing, "TestB\nTestB/x\n");
	s = sum("test a::b ... ok\ntest a::c ... FAILED\ntest result: FAILED. 1 passed; 1 failed; "
		"0 ignored\n", 101);
	assert_true(s.failing_known);
	assert_string_equal(s.failing, "a::c\n");
	s = sum("1..3\nok 1 - first\nnot ok 2 - second\nnot ok 3 - third # TODO later\n", 1);
	assert_true(s.failing_known);
	assert_string_equal(s.failing, "second\n");
	s = sum("3 passed, 1 failed\n", 1);
	assert_false(s.failing_known);
}

/* A change's modes: import, test, pr; allowed_failures; the pr object. */
static void test_change_requests(void **state)
{
	spw_request r;
	json_t *j;
	const char *pr = "{\"id\":\"a\",\"mode\":\"pr\",\"task\":\"deliver\",\"project\":\"p\","
			 "\"repo\":\"/r\",\"target\":\"main\",\"mirror\":\"https://h/o/n.git\","
			 "\"pr\":{\"head\":\"orchestrator/n-1\",\"base\":\"main\",\"title\":\"t\","
			 "\"body\":\"b\"}}";
	const char *test = "{\"id\":\"b\",\"mode\":\"test\",\"task\":\"baseline\",\"project\":"
			   "\"p\",\"repo\":\"/r\",\"base\":\"main\",\"test_command\":\"make test\"}";
	const char *work = "{\"id\":\"c\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
			   "\"prompt\":\"x\",\"allowed_failures\":2}";
	(void)state;

	assert_int_equal(spw_request_parse(pr, strlen(pr), &r), 0);
	assert_string_equal(r.mode, "pr");
	assert_true(spw_request_is_git_only(&r));
	assert_string_equal(r.pr.head, "orchestrator/n-1");
	assert_string_equal(r.pr.body, "b");
	j = spw_request_json(&r);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "pr"), "base")),
			    "main");
	json_decref(j);
	spw_request_free(&r);
	assert_int_equal(spw_request_parse(test, strlen(test), &r), 0);
	assert_null(r.prompt);
	spw_request_free(&r);
	assert_int_equal(spw_request_parse(work, strlen(work), &r), 0);
	assert_int_equal(r.allowed_failures, 2);
	assert_null(r.allowed_failing);
	spw_request_free(&r);
	{
		const char *named = "{\"id\":\"c\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
				    "\"prompt\":\"x\",\"allowed_failures\":2,\"allowed_failing\":"
				    "[\"test_a (t.T.test_a)\",\"TestB/x\"]}";
		assert_int_equal(spw_request_parse(named, strlen(named), &r), 0);
		assert_string_equal(r.allowed_failing, "test_a (t.T.test_a)\nTestB/x\n");
		spw_request_free(&r);
	}
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\",\"allowed_failing\":[\"a\\nb\"]}", "must be a test's name");

	expect_invalid("{\"id\":\"a\",\"mode\":\"pr\",\"task\":\"d\",\"project\":\"p\","
		       "\"repo\":\"/r\",\"mirror\":\"https://h/o/n.git\"}", "\"pr\" is missing");
	expect_invalid("{\"id\":\"a\",\"mode\":\"pr\",\"task\":\"d\",\"project\":\"p\","
		       "\"repo\":\"/r\",\"mirror\":\"https://h/o/n.git\",\"pr\":{\"head\":\"x\","
		       "\"base\":\"main\",\"title\":\"t\",\"draft\":true}}", "\"pr.draft\" is not");
	expect_invalid("{\"id\":\"a\",\"mode\":\"pr\",\"task\":\"d\",\"project\":\"p\","
		       "\"repo\":\"/r\",\"mirror\":\"https://h/o/n.git\",\"pr\":{\"head\":\"a..b\","
		       "\"base\":\"main\",\"title\":\"t\"}}", "must be branch names");
	expect_invalid("{\"id\":\"a\",\"mode\":\"pr\",\"task\":\"d\",\"project\":\"p\","
		       "\"repo\":\"/r\",\"pr\":{\"head\":\"x\",\"base\":\"main\",\"title\":\"t\"}}",
		       "\"mirror\" is missing");
	expect_invalid("{\"id\":\"a\",\"task\":\"d\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\",\"pr\":{}}", "goes with mode");
	expect_invalid("{\"id\":\"a\",\"mode\":\"test\",\"task\":\"b\",\"project\":\"p\","
		       "\"repo\":\"/r\"}", "\"test_command\" is missing");
	expect_invalid("{\"id\":\"a\",\"mode\":\"import\",\"task\":\"i\",\"project\":\"p\","
		       "\"repo\":\"https://h/o/n.git\"}", "\"mirror\" is missing");
	expect_invalid("{\"id\":\"a\",\"mode\":\"clone\",\"task\":\"i\",\"project\":\"p\","
		       "\"repo\":\"/r\"}", "\"mode\" must be");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\",\"allowed_failures\":-1}", "\"allowed_failures\" must be");
}

static void test_requests(void **state)
{
	spw_request r;
	spw_limits max = {.steps = 50, .cost_usd = 2, .wall_ms = 1800000, .cmd_timeout_ms = 120000,
			  .mem_bytes = 1 << 30, .pids = 256, .cpus = 1, .disk_bytes = 1 << 30,
			  .format_errors = 3, .repeats = 3, .stall_steps = 20};
	json_t *j;
	(void)state;

	assert_int_equal(spw_request_parse(GOOD, strlen(GOOD), &r), 0);
	assert_string_equal(r.id, "ob-12");
	assert_string_equal(r.task, "t-1");
	assert_string_equal(r.test_command, "make test");
	assert_int_equal(r.nhandles, 1);
	assert_int_equal(r.thread_id, 7);
	assert_int_equal(r.limits.steps, 5);
	assert_int_equal(r.limits.mem_bytes, 256 << 20);
	spw_limits_apply(&r.limits, &max);
	assert_int_equal(r.limits.steps, 5);           /* lowered by the request */
	assert_int_equal(r.limits.pids, 256);          /* the spawner's default */
	assert_int_equal(r.limits.cmd_timeout_ms, 120000);
	j = spw_request_json(&r);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "meta"), "n")), 1);
	json_decref(j);
	spw_request_free(&r);
	/* a request cannot raise a limit above the spawner's */
	{
		const char *t = "{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
				"\"prompt\":\"x\",\"limits\":{\"steps\":5000}}";
		assert_int_equal(spw_request_parse(t, strlen(t), &r), 0);
	}
	spw_limits_apply(&r.limits, &max);
	assert_int_equal(r.limits.steps, 50);
	spw_request_free(&r);

	expect_invalid("not json", "not JSON");
	expect_invalid("[1]", "JSON object");
	expect_invalid("{\"task\":\"t\"}", "\"id\" is missing");
	expect_invalid("{\"id\":\"../x\"}", "\"id\" must start");
	expect_invalid("{\"id\":\"a b\"}", "\"id\" may hold");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\",\"colour\":1}", "\"colour\" is not a field");
	expect_invalid("{\"id\":\"a\",\"project\":\"p\",\"repo\":\"/r\",\"prompt\":\"x\"}",
		       "\"task\" is missing");
	expect_invalid("{\"id\":\"a\",\"task\":\"x..y\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\"}", "branch name");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"relative\","
		       "\"prompt\":\"x\"}", "absolute path");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":"
		       "\"https://user:tok@h/x.git\",\"prompt\":\"x\"}", "repo_secret");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/a/../b\","
		       "\"prompt\":\"x\"}", "no . or ..");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"\"}", "\"prompt\" is empty");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\",\"handles\":[\"nope\"]}", "handles[0]");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\",\"limits\":{\"steps\":0}}", "limits.steps");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\",\"limits\":{\"speed\":1}}", "limits.speed");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\",\"base\":\"--upload-pack=x\"}", "\"base\"");
	expect_invalid("{\"id\":\"a\",\"task\":\"t\",\"project\":\"p\",\"repo\":\"/r\","
		       "\"prompt\":\"x\",\"thread_id\":-3}", "thread_id");
	/* the fields that address a refusal are kept when a later one is bad */
	{
		const char *t = "{\"id\":\"z-1\",\"thread_id\":4,\"task\":7}";
		assert_int_equal(spw_request_parse(t, strlen(t), &r), ERR_INVALID);
	}
	assert_string_equal(r.id, "z-1");
	assert_int_equal(r.thread_id, 4);
	spw_request_free(&r);
}

static void test_redis_urls(void **state)
{
	rds_url u;
	char red[256];
	(void)state;

	assert_int_equal(rds_url_parse("redis://127.0.0.1:6380/3", &u), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 6380);
	assert_int_equal(u.db, 3);
	assert_string_equal(u.password, "");
	assert_int_equal(rds_url_parse("redis://:p%40ss@db.example:7000", &u), 0);
	assert_string_equal(u.password, "p@ss");
	assert_string_equal(u.user, "");
	assert_int_equal(u.db, 0);
	assert_int_equal(rds_url_parse("redis://alice:s3cret@[::1]:6379/2", &u), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.user, "alice");
	assert_int_equal(u.db, 2);
	assert_int_equal(rds_url_parse("redis://localhost", &u), 0);
	assert_int_equal(u.port, 6379);
	assert_int_equal(rds_url_parse("unix:///run/redis.sock?db=4", &u), 0);
	assert_string_equal(u.path, "/run/redis.sock");
	assert_int_equal(u.db, 4);
	assert_int_equal(rds_url_parse("rediss://h:1/0", &u), ERR_INVALID);
	assert_non_null(strstr(err_last(), "TLS"));
	assert_int_equal(rds_url_parse("http://h", &u), ERR_INVALID);
	assert_int_equal(rds_url_parse("redis://h:99999/0", &u), ERR_INVALID);
	assert_int_equal(rds_url_parse("redis://h:1/x", &u), ERR_INVALID);
	assert_int_equal(rds_url_parse("redis://:bad%zz@h/0", &u), ERR_INVALID);
	assert_null(strstr(err_last(), "bad%zz"));
	rds_url_redact("redis://alice:s3cret@h:1/0", red, sizeof(red));
	assert_string_equal(red, "redis://alice:***@h:1/0");
	rds_url_redact("redis://h:1/0", red, sizeof(red));
	assert_string_equal(red, "redis://h:1/0");
}

static void test_render(void **state)
{
	buf b;
	const char *vars[] = {"task", "t-1", "n", "5", NULL, NULL};
	(void)state;

	buf_init(&b, 0);
	assert_int_equal(agent_render(&b, "do {{task}} in {{n}} steps; {{other}} {{", vars), 0);
	assert_string_equal(buf_cstr(&b), "do t-1 in 5 steps; {{other}} {{");
	buf_free(&b);
}

/* The limits table: the configuration it reads is the spawner's (unset,
 * set, wrong), a request's keys round-trip, and the README lists each row
 * (its request key, its variable and its default). */
static void test_limits_table(void **state)
{
	static const char *const vars[][2] = {
		{"ORCH_WORKER_MEM", "512M"}, {"ORCH_AGENT_MAX_WALL", "10m"},
		{"ORCH_AGENT_MAX_COST", "0.25"}, {"ORCH_WORKER_PIDS", "64"}};
	spw_config cfg;
	spw_limits env, req, back;
	json_t *j;
	FILE *f;
	char *readme = NULL;
	size_t n = 0;
	(void)state;

	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
			if (round)
				setenv(vars[i][0], vars[i][1], 1);
			else
				unsetenv(vars[i][0]);
		}
		assert_int_equal(spw_config_from_env(&cfg, "redis://127.0.0.1:1", "/tmp"), 0);
		assert_int_equal(spw_limits_from_env(&env), 0);
		assert_memory_equal(&env, &cfg.max, sizeof(env));
	}
	assert_int_equal(env.mem_bytes, 512 << 20);
	assert_int_equal(env.wall_ms, 600000);
	setenv("ORCH_WORKER_CPUS", "0", 1);
	assert_true(spw_limits_from_env(&env) < 0);
	assert_non_null(strstr(err_last(), "ORCH_WORKER_CPUS"));
	unsetenv("ORCH_WORKER_CPUS");
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i][0]);

	/* a request's limits, written back and read again */
	j = json_pack("{s:i, s:f, s:i, s:s, s:i}", "steps", 7, "cpus", 0.5, "wall_s", 90, "disk",
		      "3G", "repeats", 4);
	memset(&req, 0, sizeof(req));
	assert_int_equal(spw_limits_from_json(j, &req), 0);
	json_decref(j);
	assert_int_equal(req.wall_ms, 90000);
	assert_int_equal(req.disk_bytes, (int64_t)3 << 30);
	j = spw_limits_json(&req);
	memset(&back, 0, sizeof(back));
	assert_int_equal(spw_limits_from_json(j, &back), 0);
	json_decref(j);
	assert_memory_equal(&req, &back, sizeof(req));

	/* the README's tables hold every row */
	f = fopen("README.md", "r");
	assert_non_null(f);
	assert_true(getdelim(&readme, &n, '\0', f) > 0);
	fclose(f);
	for (size_t i = 0; i < spw_limit_count; i++) {
		const spw_limit_def *d = &spw_limit_table[i];
		char want[128];
		const char *row = strstr(readme, "| `limits` |");

		assert_non_null(row);
		snprintf(want, sizeof(want), "`%s`", d->key);
		assert_true(strstr(row, want) && strstr(row, want) < strchr(row, '\n'));
		snprintf(want, sizeof(want), "| `%s` | `%s` |", d->env, d->def);
		if (!strstr(readme, want))
			fail_msg("README.md has no row %s", want);
	}
	free(readme);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_testsum_formats),
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_limits_table),
		cmocka_unit_test(test_change_requests),
		cmocka_unit_test(test_testsum_failing_names),
		cmocka_unit_test(test_redis_urls),
		cmocka_unit_test(test_render),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
