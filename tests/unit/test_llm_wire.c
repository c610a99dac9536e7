/* llm: the wire protocol (bodies, replies, streams, errors), JSON schema
 * checks and the model registry, without a server. */
#include "tests/support/support.h"

#include "core/err.h"
#include "llm/registry.h"
#include "llm/schema.h"
#include "llm/wire.h"

#include <stdlib.h>
#include <string.h>

static json_t *body_of(const llm_request *rq, const llm_wire_opts *o)
{
	buf b;
	json_t *j;

	buf_init(&b, 0);
	assert_int_equal(llm_wire_body(&b, rq, NULL, 0, o), 0);
	j = ts_json(buf_cstr(&b));
	buf_free(&b);
	return j;
}

static void test_body_full(void **state)
{
	llm_tool_call tc = {"call_1", "read_file", "{\"path\":\"a.c\"}"};
	llm_message msgs[] = {
		{.role = "system", .content = "be \"brief\"\n"},
		{.role = "user", .content = "hi \x01"},
		{.role = "assistant", .tool_calls = &tc, .n_tool_calls = 1},
		{.role = "tool", .content = "int main;", .tool_call_id = "call_1"},
	};
	json_t *params = ts_json("{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}}}");
	json_t *schema = ts_json("{\"type\":\"object\",\"required\":[\"ok\"]}");
	json_t *extra = ts_json("{\"top_k\": 40, \"model\": \"evil\"}");
	llm_tool tools[] = {{"read_file", "reads a file", params}};
	const char *stop[] = {"END", NULL};
	llm_request rq = {0};
	llm_wire_opts o = {.model = "qwen-7b", .max_tokens = 512, .max_tokens_field = "max_completion_tokens", .stream_usage = 1};
	json_t *j, *m;
	(void)state;

	rq.messages = msgs;
	rq.n_messages = 4;
	rq.tools = tools;
	rq.n_tools = 1;
	rq.tool_choice = "read_file";
	rq.json_schema = schema;
	rq.schema_name = "plan";
	rq.temperature = 0.2;
	rq.stop = stop;
	rq.stream = 1;
	rq.extra = extra;
	j = body_of(&rq, &o);
	assert_string_equal(json_string_value(json_object_get(j, "model")), "qwen-7b");
	assert_int_equal(json_integer_value(json_object_get(j, "max_completion_tokens")), 512);
	assert_null(json_object_get(j, "max_tokens"));
	assert_true(json_is_true(json_object_get(j, "stream")));
	assert_true(json_is_true(json_object_get(json_object_get(j, "stream_options"), "include_usage")));
	assert_int_equal(json_integer_value(json_object_get(j, "top_k")), 40);
	m = json_object_get(j, "messages");
	assert_int_equal(json_array_size(m), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "content")),
			    "be \"brief\"\n");
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "content")),
			    "hi \x01");
	assert_true(json_is_null(json_object_get(json_array_get(m, 2), "content")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(
				    json_object_get(json_array_get(m, 2), "tool_calls"), 0), "function"),
							      "arguments")),
			    "{\"path\":\"a.c\"}");
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 3), "tool_call_id")),
			    "call_1");
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(
				    j, "tool_choice"), "function"), "name")), "read_file");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(json_object_get(j, "response_format"),
								  "json_schema"), "name")), "plan");
	assert_true(json_equal(json_object_get(json_object_get(json_object_get(j, "response_format"),
							      "json_schema"), "schema"), schema));
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "stop"), 0)), "END");
	json_decref(j);
	json_decref(params);
	json_decref(schema);
	json_decref(extra);
}

static void test_body_rejects(void **state)
{
	llm_message bad_role = {.role = "wizard", .content = "x"};
	llm_message tool_no_id = {.role = "tool", .content = "x"};
	llm_message empty = {.role = "user"};
	llm_request rq = {0};
	llm_wire_opts o = {.model = "m", .stream_usage = 1};
	buf b;
	(void)state;

	buf_init(&b, 0);
	rq.temperature = -1;
	assert_int_equal(llm_wire_body(&b, &rq, NULL, 0, &o), ERR_INVALID);
	rq.messages = &bad_role;
	rq.n_messages = 1;
	assert_int_equal(llm_wire_body(&b, &rq, NULL, 0, &o), ERR_INVALID);
	assert_non_null(strstr(err_last(), "wizard"));
	buf_reset(&b);
	rq.messages = &tool_no_id;
	assert_int_equal(llm_wire_body(&b, &rq, NULL, 0, &o), ERR_INVALID);
	assert_non_null(strstr(err_last(), "tool_call_id"));
	buf_reset(&b);
	rq.messages = &empty;
	assert_int_equal(llm_wire_body(&b, &rq, NULL, 0, &o), ERR_INVALID);
	buf_free(&b);
}

static void test_parse_reply(void **state)
{
	const char *ok = "{\"id\":\"c1\",\"model\":\"m-2024\",\"choices\":[{\"index\":0,\"message\":"
			 "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"t1\","
			 "\"type\":\"function\",\"function\":{\"name\":\"run\",\"arguments\":"
			 "\"{\\\"cmd\\\":\\\"ls\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}],"
			 "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7}}";
	llm_response r;
	json_t *args = NULL;
	(void)state;

	llm_response_init(&r);
	assert_int_equal(llm_wire_parse_reply(ok, strlen(ok), &r), 0);
	assert_string_equal(r.content, "");
	assert_int_equal(r.finish, LLM_FINISH_TOOL_CALLS);
	assert_int_equal(r.n_tool_calls, 1);
	assert_string_equal(r.tool_calls[0].name, "run");
	assert_int_equal(llm_tool_call_args(&r.tool_calls[0], &args), 0);
	assert_string_equal(json_string_value(json_object_get(args, "cmd")), "ls");
	json_decref(args);
	assert_int_equal(r.tokens_in, 11);
	assert_int_equal(r.tokens_out, 7);
	assert_string_equal(r.id, "c1");
	assert_string_equal(r.provider_model, "m-2024");
	llm_response_free(&r);
}

static int parse_fails(const char *body, const char *needle)
{
	llm_response r;
	int rc;

	llm_response_init(&r);
	rc = llm_wire_parse_reply(body, strlen(body), &r);
	llm_response_free(&r);
	if (rc < 0 && needle && !strstr(err_last(), needle))
		fail_msg("error '%s' does not mention '%s'", err_last(), needle);
	return rc;
}

static void test_parse_bad_replies(void **state)
{
	(void)state;
	assert_int_equal(parse_fails("{\"choices\":[{\"message\":{\"content\":\"hal", "not valid JSON"),
			 ERR_PARSE);
	assert_int_equal(parse_fails("<html><body>oops</body></html>", "not valid JSON"), ERR_PARSE);
	assert_int_equal(parse_fails("{\"object\":\"x\"}", "no choices"), ERR_PARSE);
	assert_int_equal(parse_fails("{\"choices\":[{}]}", "message is missing"), ERR_PARSE);
	assert_int_equal(parse_fails("{\"choices\":[{\"message\":{\"content\":5}}]}", "not a string"),
			 ERR_PARSE);
	assert_int_equal(parse_fails("{\"choices\":[{\"message\":{\"content\":\"x\"},"
				     "\"finish_reason\":\"cosmic_ray\"}]}", "cosmic_ray"),
			 ERR_PARSE);
	assert_int_equal(parse_fails("{\"error\":{\"message\":\"overloaded\"}}", "overloaded"),
			 ERR_HTTP);
	assert_int_equal(parse_fails("[1,2]", "not a JSON object"), ERR_PARSE);
	/* aliases of other providers are understood */
	assert_int_equal(parse_fails("{\"choices\":[{\"message\":{\"content\":\"x\"},"
				     "\"finish_reason\":\"end_turn\"}]}", NULL), 0);
}

typedef struct deltas {
	char text[256];
	int calls;
	int stop_after;
} deltas;

static int on_delta(const char *t, size_t n, void *ud)
{
	deltas *d = ud;

	strncat(d->text, t, n < sizeof(d->text) - strlen(d->text) - 1 ? n : 0);
	d->calls++;
	return d->stop_after && d->calls >= d->stop_after;
}

static const char STREAM[] =
	": keep-alive\r\n\r\n"
	"data: {\"id\":\"s1\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\r\n\r\n"
	"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{\"content\":\"lo \\u00e9\"}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c9\",\"function\":"
	"{\"name\":\"grep\",\"arguments\":\"{\\\"pat\"}}]}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
	"{\"arguments\":\"\\\":\\\"x\\\"}\"}}]}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n"
	"data: [DONE]\n\n";

static void test_sse_assembles(void **state)
{
	/* fed whole, then byte by byte: the same reply */
	for (int mode = 0; mode < 2; mode++) {
		llm_response r;
		llm_sse *s = NULL;
		deltas d = {{0}, 0, 0};
		(void)state;

		llm_response_init(&r);
		assert_int_equal(llm_sse_new(&s, &r, on_delta, &d), 0);
		if (mode == 0) {
			assert_int_equal(llm_sse_feed(s, STREAM, strlen(STREAM)), 0);
		} else {
			for (size_t i = 0; i < strlen(STREAM); i++)
				assert_int_equal(llm_sse_feed(s, STREAM + i, 1), 0);
		}
		assert_int_equal(llm_sse_finish(s), 0);
		assert_string_equal(r.content, "Hello \xc3\xa9");
		assert_string_equal(d.text, "Hello \xc3\xa9");
		assert_int_equal(r.n_tool_calls, 1);
		assert_string_equal(r.tool_calls[0].id, "c9");
		assert_string_equal(r.tool_calls[0].name, "grep");
		assert_string_equal(r.tool_calls[0].arguments, "{\"pat\":\"x\"}");
		assert_int_equal(r.finish, LLM_FINISH_TOOL_CALLS);
		assert_int_equal(r.tokens_in, 5);
		assert_int_equal(r.tokens_out, 3);
		assert_string_equal(r.id, "s1");
		llm_sse_free(s);
		llm_response_free(&r);
	}
}

static int sse_run(const char *text, deltas *d)
{
	llm_response r;
	llm_sse *s = NULL;
	int rc;

	llm_response_init(&r);
	assert_int_equal(llm_sse_new(&s, &r, d ? on_delta : NULL, d), 0);
	rc = llm_sse_feed(s, text, strlen(text));
	if (rc == 0)
		rc = llm_sse_finish(s);
	llm_sse_free(s);
	llm_response_free(&r);
	return rc;
}

static void test_sse_failures(void **state)
{
	deltas d = {{0}, 0, 1};
	(void)state;

	/* cut short: no finish_reason, no [DONE] */
	assert_int_equal(sse_run("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", NULL),
			 ERR_PARSE);
	assert_non_null(strstr(err_last(), "before the reply was complete"));
	/* a malformed chunk */
	assert_int_equal(sse_run("data: {\"choices\":[{\"delta\":\n\n", NULL), ERR_PARSE);
	/* an error in the stream */
	assert_int_equal(sse_run("data: {\"error\":{\"message\":\"model crashed\"}}\n\n", NULL),
			 ERR_HTTP);
	assert_non_null(strstr(err_last(), "model crashed"));
	assert_int_equal(sse_run("event: error\ndata: boom\n\n", NULL), ERR_HTTP);
	/* the caller stops the stream */
	assert_int_equal(sse_run(STREAM, &d), ERR_CANCELLED);
	/* nothing at all */
	assert_int_equal(sse_run("", NULL), ERR_PARSE);
	/* a server that ignored "stream" and sent one JSON reply */
	assert_int_equal(sse_run("{\"choices\":[{\"message\":{\"content\":\"x\"},\"finish_reason\":"
				 "\"stop\"}]}", NULL), 0);
	/* a last event without its blank line still counts */
	assert_int_equal(sse_run("data: {\"choices\":[{\"delta\":{\"content\":\"a\"},"
				 "\"finish_reason\":\"stop\"}]}", NULL), 0);
}

static void test_error_text(void **state)
{
	char out[640];
	int ctx;
	const char *oa = "{\"error\":{\"message\":\"This model's maximum context length is 8192 "
			 "tokens\",\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}}";
	const char *lc = "{\"error\":{\"code\":400,\"message\":\"the request exceeds the available "
			 "context size, try increasing it\",\"type\":\"exceed_context_size_error\"}}";
	const char *html = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>";
	(void)state;

	llm_wire_error_text(oa, strlen(oa), "application/json", out, sizeof(out), &ctx);
	assert_true(ctx);
	assert_non_null(strstr(out, "maximum context length"));
	llm_wire_error_text(lc, strlen(lc), "application/json", out, sizeof(out), &ctx);
	assert_true(ctx);
	llm_wire_error_text(html, strlen(html), "text/html", out, sizeof(out), &ctx);
	assert_false(ctx);
	assert_non_null(strstr(out, "502 Bad Gateway"));
	assert_non_null(strstr(out, "check base_url"));
	llm_wire_error_text("{\"error\":\"quota\"}", 17, NULL, out, sizeof(out), &ctx);
	assert_string_equal(out, "quota");
	llm_wire_error_text("", 0, NULL, out, sizeof(out), &ctx);
	assert_string_equal(out, "(empty body)");
}

static void expect_schema(const char *schema, const char *value, const char *want_err)
{
	json_t *sc = ts_json(schema), *v = ts_json(value);
	char err[512] = "";
	int rc = llm_schema_check(sc, v, err, sizeof(err));

	if (!want_err) {
		if (rc != 0)
			fail_msg("%s should match %s: %s", value, schema, err);
	} else {
		assert_int_equal(rc, ERR_INVALID);
		if (!strstr(err, want_err))
			fail_msg("%s against %s: '%s' lacks '%s'", value, schema, err, want_err);
	}
	json_decref(sc);
	json_decref(v);
}

static void test_schema_refs_and_patterns(void **state)
{
	/* "$ref" into $defs, as pydantic writes it, and a recursive one */
	const char *tree = "{\"$defs\":{\"node\":{\"type\":\"object\",\"required\":[\"name\"],"
			   "\"properties\":{\"name\":{\"type\":\"string\"},\"kids\":{\"type\":"
			   "\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}}}},"
			   "\"$ref\":\"#/$defs/node\"}";
	const char *esc = "{\"definitions\":{\"a/b\":{\"type\":\"integer\"}},"
			  "\"properties\":{\"x\":{\"$ref\":\"#/definitions/a~1b\"}}}";
	(void)state;

	expect_schema(tree, "{\"name\":\"r\",\"kids\":[{\"name\":\"a\",\"kids\":[]}]}", NULL);
	expect_schema(tree, "{\"name\":\"r\",\"kids\":[{\"name\":\"a\",\"kids\":[{}]}]}",
		      "$.kids[0].kids[0]: is missing the required property 'name'");
	expect_schema(esc, "{\"x\":3}", NULL);
	expect_schema(esc, "{\"x\":\"3\"}", "$.x: expected integer, got string");
	/* a reference to another document, or to nowhere, is ignored */
	expect_schema("{\"$ref\":\"https://example.com/s.json\"}", "7", NULL);
	expect_schema("{\"$ref\":\"#/nowhere\"}", "7", NULL);
	/* a schema that refers to itself without descending stops, with a reason */
	expect_schema("{\"$ref\":\"#\"}", "1", "nested deeper than 64 levels");

	/* pattern: ECMA's \\d and anchors; what POSIX cannot compile is ignored */
	expect_schema("{\"pattern\":\"^T-\\\\d{3}$\"}", "\"T-042\"", NULL);
	expect_schema("{\"pattern\":\"^T-\\\\d{3}$\"}", "\"T-42\"",
		      "$: does not match the pattern ^T-\\d{3}$");
	expect_schema("{\"pattern\":\"^[a-z]+(-[a-z]+)*$\"}", "\"kebab-case\"", NULL);
	expect_schema("{\"pattern\":\"^[a-z]+(-[a-z]+)*$\"}", "\"Kebab\"", "does not match");
	expect_schema("{\"pattern\":\"(?=x)\"}", "\"anything\"", NULL);
	expect_schema("{\"pattern\":\"x\"}", "5", NULL); /* only strings */

	/* exclusive bounds, unique items */
	expect_schema("{\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}", "0.5", NULL);
	expect_schema("{\"exclusiveMinimum\":0}", "0", "$: must be more than 0");
	expect_schema("{\"exclusiveMaximum\":1}", "1", "$: must be less than 1");
	expect_schema("{\"uniqueItems\":true}", "[1,2,{\"a\":1}]", NULL);
	expect_schema("{\"uniqueItems\":true}", "[1,{\"a\":1},{\"a\":1}]",
		      "$: has equal items (1 and 2)");
}

static void test_schema(void **state)
{
	json_t *sc = ts_json(
		"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"title\",\"tasks\"],"
		"\"properties\":{\"title\":{\"type\":\"string\",\"minLength\":1},"
		"\"tasks\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"object\","
		"\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"},"
		"\"size\":{\"enum\":[\"s\",\"m\",\"l\"]},\"n\":{\"type\":\"integer\",\"minimum\":0}}}},"
		"\"note\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}}}");
	char err[512];
	json_t *v;
	(void)state;

	v = ts_json("{\"title\":\"x\",\"tasks\":[{\"name\":\"a\",\"size\":\"m\",\"n\":2}],\"note\":null}");
	assert_int_equal(llm_schema_check(sc, v, err, sizeof(err)), 0);
	json_decref(v);
	v = ts_json("{\"title\":\"x\",\"tasks\":[{\"name\":\"a\"},{\"name\":7}]}");
	assert_int_equal(llm_schema_check(sc, v, err, sizeof(err)), ERR_INVALID);
	assert_string_equal(err, "$.tasks[1].name: expected string, got integer");
	json_decref(v);
	v = ts_json("{\"title\":\"x\"}");
	assert_int_equal(llm_schema_check(sc, v, err, sizeof(err)), ERR_INVALID);
	assert_non_null(strstr(err, "required property 'tasks'"));
	json_decref(v);
	v = ts_json("{\"title\":\"x\",\"tasks\":[{\"name\":\"a\",\"size\":\"xl\"}]}");
	assert_int_equal(llm_schema_check(sc, v, err, sizeof(err)), ERR_INVALID);
	assert_non_null(strstr(err, "$.tasks[0].size"));
	json_decref(v);
	v = ts_json("{\"title\":\"x\",\"tasks\":[{\"name\":\"a\"}],\"extra\":1}");
	assert_int_equal(llm_schema_check(sc, v, err, sizeof(err)), ERR_INVALID);
	assert_non_null(strstr(err, "'extra'"));
	json_decref(v);
	v = ts_json("{\"title\":\"x\",\"tasks\":[],\"note\":3}");
	assert_int_equal(llm_schema_check(sc, v, err, sizeof(err)), ERR_INVALID);
	json_decref(v);
	json_decref(sc);
}

static const char MODELS[] =
	"{\"endpoints\": {"
	"  \"local\": {\"base_url\": \"http://127.0.0.1:8080/v1/\", \"slots\": 2},"
	"  \"cloud\": {\"base_url\": \"https://api.example.com/v1/chat/completions\","
	"              \"api_key_env\": \"TEST_LLM_KEY_UNSET_42\", \"timeout\": \"90s\"},"
	"  \"vault\": {\"base_url\": \"https://v.example.com/v1\", \"api_key_secret\": \"vault_key\"}},"
	" \"models\": {"
	"  \"small\": {\"endpoint\": \"local\", \"model\": \"qwen2.5-7b\", \"context\": 4096},"
	"  \"big\": {\"endpoint\": \"cloud\", \"context\": 128000, \"price_in\": 2.5, \"price_out\": 10},"
	"  \"sec\": {\"endpoint\": \"vault\"}},"
	" \"roles\": {\"developer\": [\"small\", \"big\"], \"default\": \"small\"},"
	" \"scheduler\": {\"lookahead\": 8, \"starvation\": 3}}";

static int resolver(const char *name, buf *out, void *udata)
{
	(void)udata;
	if (strcmp(name, "vault_key") != 0)
		return err_set(ERR_NOTFOUND, "no secret %s", name);
	return buf_puts(out, "sk-from-the-vault");
}

static void test_registry(void **state)
{
	llm_registry *r = NULL;
	const int *models;
	int n, la, st;
	buf k;
	(void)state;

	assert_int_equal(llm_registry_load_text(&r, MODELS, "models.json"), 0);
	assert_int_equal(llm_registry_n_endpoints(r), 3);
	assert_string_equal(llm_registry_endpoint(r, 0)->base_url, "http://127.0.0.1:8080/v1");
	assert_true(llm_registry_endpoint(r, 0)->local);
	assert_string_equal(llm_registry_endpoint(r, 1)->base_url, "https://api.example.com/v1");
	assert_int_equal(llm_registry_endpoint(r, 1)->timeout_ms, 90000);
	assert_string_equal(llm_registry_model(r, 0)->id, "qwen2.5-7b");
	assert_string_equal(llm_registry_model(r, 1)->id, "big");
	llm_registry_sched(r, &la, &st);
	assert_int_equal(la, 8);
	assert_int_equal(st, 3);
	assert_int_equal(llm_registry_route(r, "developer", &models, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(models[1], 1);
	assert_int_equal(llm_registry_route(r, "big", &models, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(models[0], 1);
	assert_int_equal(llm_registry_route(r, "reviewer", &models, &n), 0); /* default */
	assert_int_equal(models[0], 0);
	buf_init(&k, 0);
	assert_int_equal(llm_registry_key(r, 0, &k), 0);
	assert_int_equal(k.len, 0);
	assert_int_equal(llm_registry_key(r, 1, &k), ERR_AUTH);
	assert_non_null(strstr(err_last(), "TEST_LLM_KEY_UNSET_42"));
	setenv("TEST_LLM_KEY_UNSET_42", "sk-env", 1);
	assert_int_equal(llm_registry_key(r, 1, &k), 0);
	assert_string_equal(buf_cstr(&k), "sk-env");
	unsetenv("TEST_LLM_KEY_UNSET_42");
	buf_reset(&k);
	assert_int_equal(llm_registry_key(r, 2, &k), ERR_AUTH); /* no resolver yet */
	llm_set_secret_resolver(resolver, NULL);
	assert_int_equal(llm_registry_key(r, 2, &k), 0);
	assert_string_equal(buf_cstr(&k), "sk-from-the-vault");
	llm_set_secret_resolver(NULL, NULL);
	buf_free_wipe(&k);
	llm_registry_free(r);
}

static void expect_bad(const char *text, const char *needle)
{
	llm_registry *r = NULL;
	int rc = llm_registry_load_text(&r, text, "m.json");

	if (rc >= 0)
		fail_msg("accepted: %s", text);
	if (!strstr(err_last(), needle))
		fail_msg("error '%s' does not mention '%s'", err_last(), needle);
	assert_null(r);
}

static void test_registry_mistakes(void **state)
{
	(void)state;
	expect_bad("{\"endpoints\": {\"a\": {\"base_url\": \"http://x/v1\", \"slot\": 2}}, "
		   "\"models\": {\"m\": {\"endpoint\": \"a\"}}}", "endpoints.a: unknown key 'slot'");
	expect_bad("{\"endpoints\": {\"a\": {\"base_url\": \"http://x/v1\"}}, "
		   "\"models\": {\"m\": {\"endpoint\": \"b\"}}}", "endpoint 'b' is not defined");
	expect_bad("{\"endpoints\": {\"a\": {\"base_url\": \"x/v1\"}}, "
		   "\"models\": {\"m\": {\"endpoint\": \"a\"}}}", "http://");
	expect_bad("{\"endpoints\": {\"a\": {\"base_url\": \"http://x/v1\"}}, "
		   "\"models\": {\"m\": {\"endpoint\": \"a\", \"price_in\": -1}}}", "price_in");
	expect_bad("{\"endpoints\": {\"a\": {\"base_url\": \"http://x/v1\", \"slots\": 0}}, "
		   "\"models\": {\"m\": {\"endpoint\": \"a\"}}}", "slots");
	expect_bad("{\"endpoints\": {\"a\": {\"base_url\": \"http://x/v1\"}}, "
		   "\"models\": {\"m\": {\"endpoint\": \"a\"}}, \"roles\": {\"dev\": [\"n\"]}}",
		   "roles.dev[0]: model 'n'");
	expect_bad("{\"endpoints\": {\"a\": {\"base_url\": \"http://x/v1\", \"timeout\": \"soon\"}}, "
		   "\"models\": {\"m\": {\"endpoint\": \"a\"}}}", "timeout");
	expect_bad("{\"endpoints\": {}", "not valid JSON");
	expect_bad("{\"endpoints\": {\"a\": {\"base_url\": \"http://x/v1\"}}}", "\"models\"");
}

static void test_registry_env(void **state)
{
	llm_registry *r = NULL;
	const int *models;
	int n;
	(void)state;

	unsetenv("ORCH_MODELS");
	unsetenv("LLM_BASE_URL");
	unsetenv("LLM_MODEL");
	assert_int_equal(llm_registry_load(&r), 0);
	assert_int_equal(llm_registry_n_models(r), 0);
	assert_int_equal(llm_registry_route(r, "developer", &models, &n), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "LLM_BASE_URL"));
	llm_registry_free(r);

	setenv("LLM_BASE_URL", "http://127.0.0.1:11434/v1", 1);
	assert_int_equal(llm_registry_load(&r), ERR_INVALID); /* no LLM_MODEL */
	assert_non_null(strstr(err_last(), "LLM_MODEL"));
	setenv("LLM_MODEL", "llama3.2", 1);
	setenv("LLM_API_KEY", "sk-x", 1);
	setenv("LLM_SLOTS", "3", 1);
	assert_int_equal(llm_registry_load(&r), 0);
	assert_string_equal(llm_registry_origin(r), "LLM_BASE_URL");
	assert_int_equal(llm_registry_endpoint(r, 0)->slots, 3);
	assert_string_equal(llm_registry_endpoint(r, 0)->key_env, "LLM_API_KEY");
	assert_int_equal(llm_registry_route(r, "architect", &models, &n), 0);
	assert_string_equal(llm_registry_model(r, models[0])->id, "llama3.2");
	llm_registry_free(r);
	unsetenv("LLM_BASE_URL");
	unsetenv("LLM_MODEL");
	unsetenv("LLM_API_KEY");
	unsetenv("LLM_SLOTS");
}

/* What a server is sent: as a grammar can take it (FULL), the structure only
 * (SIMPLE); a property named like a keyword is a property, not a keyword. */
static void expect_sent(const char *schema, int level, const char *want)
{
	json_t *sc = ts_json(schema), *w = ts_json(want), *out = NULL;

	assert_int_equal(llm_schema_for_server(sc, level, &out), 0);
	if (!json_equal(out, w)) {
		char *got = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
		fail_msg("%s at level %d: got %s, want %s", schema, level, got, want);
	}
	json_decref(out);
	json_decref(w);
	json_decref(sc);
}

static void test_schema_sent(void **state)
{
	(void)state;
	/* bounds over 1000 go (llama.cpp refuses 2000 and more), the rest stays */
	expect_sent("{\"type\":\"object\",\"properties\":{\"readme\":{\"type\":\"string\","
		    "\"minLength\":1,\"maxLength\":20000},\"pattern\":{\"type\":\"string\","
		    "\"maxLength\":60}},\"required\":[\"readme\"]}",
		    LLM_SCHEMA_FULL,
		    "{\"type\":\"object\",\"properties\":{\"readme\":{\"type\":\"string\","
		    "\"minLength\":1},\"pattern\":{\"type\":\"string\",\"maxLength\":60}},"
		    "\"required\":[\"readme\"]}");
	/* patterns: anchored ones stay, unanchored ones and huge repetitions go */
	expect_sent("{\"type\":\"array\",\"maxItems\":5000,\"items\":{\"anyOf\":[{\"type\":"
		    "\"string\",\"pattern\":\"^[a-z]{1,9}$\"},{\"type\":\"string\",\"pattern\":"
		    "\"ab+\"},{\"type\":\"string\",\"pattern\":\"^x{0,5000}$\"}]}}",
		    LLM_SCHEMA_FULL,
		    "{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"string\",\"pattern\":"
		    "\"^[a-z]{1,9}$\"},{\"type\":\"string\"},{\"type\":\"string\"}]}}");
	/* a minimum above its maximum (whose grammar eats the server's memory), an empty
	 * enum */
	expect_sent("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\","
		    "\"minItems\":5,\"maxItems\":2},\"b\":{\"type\":\"string\",\"minLength\":"
		    "3,\"maxLength\":1},\"c\":{\"enum\":[]}}}",
		    LLM_SCHEMA_FULL,
		    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\"},\"b\":"
		    "{\"type\":\"string\"},\"c\":{}}}");
	/* simplified: types, properties, required, items, enum, $ref, anyOf only */
	expect_sent("{\"$defs\":{\"t\":{\"type\":\"string\",\"pattern\":\"^a$\",\"format\":"
		    "\"date\"}},\"type\":\"object\",\"additionalProperties\":false,"
		    "\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9},"
		    "\"v\":{\"enum\":[\"x\",\"y\"]},\"t\":{\"$ref\":\"#/$defs/t\"},\"l\":{\"type\":"
		    "\"array\",\"minItems\":1,\"uniqueItems\":true,\"items\":{\"type\":\"string\","
		    "\"minLength\":1}}},\"required\":[\"n\"]}",
		    LLM_SCHEMA_SIMPLE,
		    "{\"$defs\":{\"t\":{\"type\":\"string\"}},\"type\":\"object\","
		    "\"additionalProperties\":false,\"properties\":{\"n\":{\"type\":\"integer\"},"
		    "\"v\":{\"enum\":[\"x\",\"y\"]},\"t\":{\"$ref\":\"#/$defs/t\"},\"l\":{\"type\":"
		    "\"array\",\"items\":{\"type\":\"string\"}}},\"required\":[\"n\"]}");
	{
		json_t *sc = ts_json("{\"type\":\"string\"}"), *out = NULL;
		assert_int_equal(llm_schema_for_server(sc, LLM_SCHEMA_NONE, &out), ERR_INVALID);
		assert_null(out);
		json_decref(sc);
	}
}

static void test_estimate(void **state)
{
	char big[4001];
	llm_message m = {.role = "user", .content = big};
	llm_request rq = {0};
	(void)state;

	memset(big, 'a', 4000);
	big[4000] = '\0';
	rq.messages = &m;
	rq.n_messages = 1;
	/* 2.7 bytes a token (code and JSON), plus the template's few */
	assert_in_range(llm_wire_estimate_tokens(&rq), 1480, 1500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_full),
		cmocka_unit_test(test_body_rejects),
		cmocka_unit_test(test_parse_reply),
		cmocka_unit_test(test_parse_bad_replies),
		cmocka_unit_test(test_sse_assembles),
		cmocka_unit_test(test_sse_failures),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_schema),
		cmocka_unit_test(test_schema_refs_and_patterns),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_registry_mistakes),
		cmocka_unit_test(test_registry_env),
		cmocka_unit_test(test_schema_sent),
		cmocka_unit_test(test_estimate),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
