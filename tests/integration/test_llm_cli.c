/* llm from the command line: `orchestrator llm models|test|budget` and the
 * language-model part of `orchestrator status`, against the fake server. */
#include "tests/support/fake_llm.h"
#include "tests/support/support.h"

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static fake_llm g_fake;

static const char MODELS[] =
	"{\"endpoints\": {\"fake\": {\"base_url\": \"%s\", \"slots\": 2, "
	"\"api_key_env\": \"CLI_FAKE_KEY\", \"stream_replies\": false}},"
	" \"models\": {\"cheap\": {\"endpoint\": \"fake\", \"model\": \"cheap-1\", \"price_in\": 1,"
	" \"price_out\": 2}, \"strong\": {\"endpoint\": \"fake\", \"context\": 32000, \"price_in\": 5,"
	" \"price_out\": 15}},"
	" \"roles\": {\"developer\": [\"cheap\", \"strong\"], \"default\": \"cheap\"}}";

/* Runs `orchestrator ARGS` (2>&1) and returns its exit status; output in out. */
static int run(buf *out, const char *args)
{
	char cmd[2048], chunk[4096];
	FILE *p;
	size_t n;
	int st;

	buf_reset(out);
	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", ts_bin(), args);
	p = popen(cmd, "r");
	if (!p)
		fail_msg("popen failed");
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		buf_append(out, chunk, n);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect(const buf *out, const char *needle)
{
	if (!strstr(buf_cstr(out), needle))
		fail_msg("output does not contain '%s':\n%s", needle, buf_cstr(out));
}

static void test_cli(void **state)
{
	buf out;
	json_t *j, *projects, *e;
	size_t i;
	int found = 0;
	(void)state;

	fake_llm_start(&g_fake);
	setenv("ORCH_MODELS", fake_llm_models_file(&g_fake, "models.json", MODELS), 1);
	setenv("CLI_FAKE_KEY", "sk-cli-secret-777", 1);
	buf_init(&out, 0);

	assert_int_equal(run(&out, "llm models"), 0);
	expect(&out, "cheap (cheap-1 @ fake)");
	expect(&out, "key from $CLI_FAKE_KEY (present)");
	expect(&out, "developer    cheap -> strong");
	assert_null(strstr(buf_cstr(&out), "sk-cli-secret-777"));

	assert_int_equal(run(&out, "llm test --role developer --project clip --user cli-user "
				   "Say hi"), 0);
	expect(&out, "Hello! How can I help you today?");
	expect(&out, "model cheap at fake");
	expect(&out, "19 tokens in, 9 out");

	assert_int_equal(run(&out, "llm test --stream --project clip"), 0);
	expect(&out, "Hello! How can I help you today? I can draft a plan");

	assert_int_equal(run(&out, "llm budget set --project clip --limit 2.5"), 0);
	expect(&out, "may now spend up to $2.5000");
	assert_int_equal(run(&out, "llm budget extend --project clip --add 1"), 0);
	expect(&out, "is now $3.5000");
	assert_int_equal(run(&out, "llm budget extend --project nobody --add 1"), 1);
	expect(&out, "has no budget");
	assert_int_equal(run(&out, "llm budget show"), 0);
	expect(&out, "clip");
	assert_int_equal(run(&out, "llm budget set --project clip --limit lots"), 2);
	expect(&out, "not an amount of USD");

	/* periods: set, listed with when they reset; a bad one is refused before anything */
	assert_int_equal(run(&out, "llm budget set --project clip --limit 20 --per month"), 0);
	expect(&out, "may now spend up to $20.0000 per month (UTC)");
	assert_int_equal(run(&out, "llm budget set --user cli-user --limit 5 --per day"), 0);
	assert_int_equal(run(&out, "llm budget show"), 0);
	expect(&out, "resets");
	expect(&out, "month");
	expect(&out, "00:00 UTC");
	assert_int_equal(run(&out, "llm budget show --json"), 0);
	j = ts_json(buf_cstr(&out));
	json_array_foreach(j, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "scope")), "clip") == 0) {
			found++;
			assert_string_equal(json_string_value(json_object_get(e, "period")), "month");
			assert_non_null(strstr(json_string_value(json_object_get(e, "resets_at")),
					       "-01T00:00:00Z"));
		}
	}
	json_decref(j);
	assert_int_equal(found, 1);
	found = 0;
	assert_int_equal(run(&out, "llm budget set --project clip --limit 20 --per fortnight"), 2);
	expect(&out, "--per fortnight: a budget's period is total, day, week or month");
	assert_int_equal(run(&out, "llm budget extend --project clip --add 1 --per day"), 2);
	assert_int_equal(run(&out, "llm budget set --project clip --limit 21"), 0);
	expect(&out, "may now spend up to $21.0000\n");
	assert_int_equal(run(&out, "llm budget show"), 0);
	expect(&out, "month");  /* kept without --per */

	assert_int_equal(run(&out, "status"), 0);
	expect(&out, "language models");
	expect(&out, "by project");
	expect(&out, "cheap @ fake");
	expect(&out, "budgets");
	expect(&out, "of $21.0000 this month, resets ");
	expect(&out, "of $5.0000 today, resets ");

	assert_int_equal(run(&out, "status --json"), 0);
	j = ts_json(buf_cstr(&out));
	assert_non_null(json_object_get(j, "runs")); /* the engine's part is kept */
	projects = json_object_get(json_object_get(j, "llm"), "projects");
	json_array_foreach(projects, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "project")), "clip") == 0) {
			found = 1;
			assert_int_equal(json_integer_value(json_object_get(e, "calls")), 2);
			assert_true(json_integer_value(json_object_get(e, "tokens_in")) > 19); /* 19 + an estimate */
		}
	}
	assert_true(found);
	assert_non_null(json_object_get(json_object_get(j, "llm"), "models"));
	assert_non_null(json_object_get(json_object_get(j, "llm"), "schedulers"));
	json_decref(j);

	/* a broken models file is reported with the place of the mistake */
	setenv("ORCH_MODELS", fake_llm_models_file(&g_fake, "bad.json",
		"{\"endpoints\": {\"fake\": {\"base_url\": \"%s\", \"slot\": 2}}, \"models\": {}}"), 1);
	assert_int_equal(run(&out, "llm models"), 1);
	expect(&out, "endpoints.fake: unknown key 'slot'");

	/* a missing key stops the call before anything is sent */
	setenv("ORCH_MODELS", fake_llm_models_file(&g_fake, "models.json", MODELS), 1);
	unsetenv("CLI_FAKE_KEY");
	assert_int_equal(run(&out, "llm test"), 1);
	expect(&out, "CLI_FAKE_KEY, which is not set");

	buf_free(&out);
	fake_llm_stop(&g_fake);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
