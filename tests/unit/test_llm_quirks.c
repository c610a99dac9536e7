/* Providers' quirks (llm/quirks.h): the profiles, overrides and checks, the
 * request bodies they make (llm/wire.h), the models file's new keys and the
 * document a registry turns back into (llm/registry.h). No server. */
#include "tests/support/support.h"

#include "core/err.h"
#include "llm/llm.h"
#include "llm/quirks.h"
#include "llm/registry.h"
#include "llm/wire.h"

#include <stdlib.h>
#include <string.h>

static json_t *body_for(const char *provider, const char *quirks, const char *effort,
			double temperature, double top_p, int with_stop)
{
	static const char *const stop[] = {"END", NULL};
	llm_quirks q;
	llm_params p;
	llm_message m = {"user", "hi", NULL, NULL, NULL, 0};
	llm_request rq;
	llm_wire_opts o;
	json_t *j;
	buf b;

	assert_int_equal(llm_quirks_profile(provider, &q), 0);
	if (quirks) {
		json_t *qo = ts_json(quirks);
		assert_int_equal(llm_quirks_override(&q, qo, "t"), 0);
		json_decref(qo);
	}
	memset(&p, 0, sizeof(p));
	p.temperature = -1;
	if (effort)
		snprintf(p.reasoning_effort, sizeof(p.reasoning_effort), "%s", effort);
	llm_request_init(&rq);
	rq.messages = &m;
	rq.n_messages = 1;
	rq.temperature = temperature;
	rq.top_p = top_p;
	rq.stop = with_stop ? stop : NULL;
	memset(&o, 0, sizeof(o));
	o.model = "m";
	o.max_tokens = 100;
	o.quirks = &q;
	o.params = &p;
	buf_init(&b, 0);
	assert_int_equal(llm_wire_body(&b, &rq, NULL, 0, &o), 0);
	j = ts_json(buf_cstr(&b));
	buf_free(&b);
	return j;
}

static void test_bodies(void **state)
{
	json_t *b;
	(void)state;

	/* GPT-5: the limit under max_completion_tokens; no temperature, top_p, stop */
	b = body_for("openai-reasoning", NULL, "low", 0.3, 0.9, 1);
	assert_int_equal(json_integer_value(json_object_get(b, "max_completion_tokens")), 100);
	assert_null(json_object_get(b, "max_tokens"));
	assert_null(json_object_get(b, "temperature"));
	assert_null(json_object_get(b, "top_p"));
	assert_null(json_object_get(b, "stop"));
	assert_string_equal(json_string_value(json_object_get(b, "reasoning_effort")), "low");
	json_decref(b);
	/* Claude: a temperature above 1 lowered, never with top_p; thinking adds its budget */
	b = body_for("claude", NULL, NULL, 1.7, 0.9, 1);
	assert_true(json_number_value(json_object_get(b, "temperature")) == 1.0);
	assert_null(json_object_get(b, "top_p"));
	assert_non_null(json_object_get(b, "stop"));
	json_decref(b);
	b = body_for("claude", NULL, "medium", 0.5, -1, 0);
	assert_null(json_object_get(b, "temperature"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "thinking"),
							    "budget_tokens")), 4096);
	assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 4196);
	json_decref(b);
	/* OpenRouter's form of the effort */
	b = body_for("openrouter-claude", NULL, "high", -1, -1, 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(b, "reasoning"),
							      "effort")), "high");
	json_decref(b);
	/* an override: a model that refuses stop on an otherwise generic server */
	b = body_for("generic", "{\"stop\": \"omit\", \"max_tokens_field\": "
				"\"max_completion_tokens\"}", NULL, 0.2, -1, 1);
	assert_null(json_object_get(b, "stop"));
	assert_non_null(json_object_get(b, "max_completion_tokens"));
	assert_true(json_number_value(json_object_get(b, "temperature")) > 0.19);
	json_decref(b);
}

static void test_checks(void **state)
{
	llm_quirks q;
	llm_params p = {-1, 0, ""};
	json_t *o;
	(void)state;

	assert_int_equal(llm_quirks_profile("nope", &q), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "openai-reasoning"));
	assert_int_equal(llm_quirks_profile("gemini-3", &q), 0);
	snprintf(p.reasoning_effort, sizeof(p.reasoning_effort), "medium");
	assert_int_equal(llm_quirks_check(&q, &p, "m"), ERR_INVALID);
	snprintf(p.reasoning_effort, sizeof(p.reasoning_effort), "high");
	assert_int_equal(llm_quirks_check(&q, &p, "m"), 0);
	assert_int_equal(llm_quirks_profile("openai", &q), 0);
	assert_int_equal(llm_quirks_check(&q, &p, "m"), ERR_INVALID); /* no reasoning */
	p.reasoning_effort[0] = '\0';
	assert_int_equal(llm_quirks_profile("claude", &q), 0);
	p.temperature = 0.5;
	p.top_p = 0.9;
	assert_int_equal(llm_quirks_check(&q, &p, "m"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "temperature and top_p together"));
	o = ts_json("{\"topp\": \"omit\"}");
	assert_int_equal(llm_quirks_override(&q, o, "m"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "unknown quirk 'topp'"));
	json_decref(o);
	o = ts_json("{\"reasoning\": \"lots\"}");
	assert_int_equal(llm_quirks_override(&q, o, "m"), ERR_INVALID);
	json_decref(o);
}

/* The file's new keys load, a refusal names its place, and the document a
 * registry turns into loads back into the same registry. */
static void test_registry_doc(void **state)
{
	static const char TEXT[] =
		"{\"endpoints\": {\"o\": {\"base_url\": \"https://api.openai.com/v1\", "
		"\"api_key_secret\": \"openai\"}},"
		" \"models\": {\"gpt5\": {\"endpoint\": \"o\", \"model\": \"gpt-5\", \"provider\": "
		"\"openai-reasoning\", \"reasoning_effort\": \"high\", \"context\": 400000, "
		"\"max_output\": 32000, \"quirks\": {\"stop\": \"send\"}}},"
		" \"roles\": {\"architect\": [\"gpt5\"]}, \"budgets\": {\"project\": 20, \"period\": "
		"\"month\"}}";
	llm_registry *r = NULL, *r2 = NULL;
	llm_budget_defaults bd;
	json_t *doc;
	char *t1, *t2;
	(void)state;

	assert_int_equal(llm_registry_load_text(&r, TEXT, "m.json"), 0);
	assert_string_equal(llm_registry_model(r, 0)->quirks.max_tokens_field, "max_completion_tokens");
	assert_int_equal(llm_registry_model(r, 0)->quirks.stop, LLM_Q_SEND);
	llm_registry_budgets(r, &bd);
	assert_true(bd.project == 20 && bd.user < 0);
	assert_string_equal(bd.period, "month");
	doc = llm_registry_to_json(r);
	assert_int_equal(llm_registry_load_json(&r2, doc, "doc"), 0);
	json_decref(doc);
	doc = llm_registry_to_json(r);
	t1 = json_dumps(doc, JSON_SORT_KEYS);
	json_decref(doc);
	doc = llm_registry_to_json(r2);
	t2 = json_dumps(doc, JSON_SORT_KEYS);
	json_decref(doc);
	assert_string_equal(t1, t2);
	assert_non_null(strstr(t1, "\"stop\": \"send\""));
	free(t1);
	free(t2);
	llm_registry_free(r);
	llm_registry_free(r2);
	assert_int_equal(llm_registry_load_text(&r, "{\"endpoints\": {\"o\": {\"base_url\": "
						   "\"http://x/v1\"}}, \"models\": {\"m\": {\"endpoint\": "
						   "\"o\", \"provider\": \"openai-reasoning\", "
						   "\"temperature\": 0.1}}}", "f.json"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "f.json: models.m: provider 'openai-reasoning' takes only"));
	/* a stored configuration may be empty; a file may not */
	doc = ts_json("{}");
	assert_int_equal(llm_registry_load_json(&r, doc, "db"), 0);
	assert_int_equal(llm_registry_n_models(r), 0);
	llm_registry_free(r);
	json_decref(doc);
	assert_int_equal(llm_registry_load_text(&r, "{}", "f.json"), ERR_INVALID);
}

/* Error bodies in each provider's form. */
static void test_error_bodies(void **state)
{
	char out[600];
	int ctx;
	static const char GEMINI[] = "[{\"error\": {\"code\": 400, \"message\": \"Thinking level "
				     "MEDIUM is not supported for this model.\", \"status\": "
				     "\"INVALID_ARGUMENT\"}}]";
	static const char ROUTER[] = "{\"error\": {\"message\": \"Provider returned error\", "
				     "\"code\": 400, \"metadata\": {\"raw\": \"{\\\"type\\\":\\\"error\\\","
				     "\\\"error\\\":{\\\"type\\\":\\\"invalid_request_error\\\",\\\"message"
				     "\\\":\\\"top_p and temperature\\\"}}\", \"provider_name\": "
				     "\"Anthropic\"}}}";
	(void)state;

	llm_wire_error_text(GEMINI, strlen(GEMINI), "application/json", out, sizeof(out), &ctx);
	assert_non_null(strstr(out, "Thinking level MEDIUM"));
	assert_non_null(strstr(out, "INVALID_ARGUMENT"));
	llm_wire_error_text(ROUTER, strlen(ROUTER), "application/json", out, sizeof(out), &ctx);
	assert_non_null(strstr(out, "Provider returned error: top_p and temperature"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_registry_doc),
		cmocka_unit_test(test_error_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
