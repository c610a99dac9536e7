/* llm: the chat service against the fake OpenAI-compatible server and the
 * real test database: replies, streaming, tools, structured output with
 * re-ask and escalation, retries, bad replies, timeouts, cancellation,
 * context overflow, budgets, keys, redaction, slots, the ledger. */
#include "tests/support/fake_llm.h"
#include "tests/support/support.h"

#include "core/err.h"
#include "core/redact.h"
#include "core/util.h"
#include "llm/llm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static fake_llm g_fake;
static pg_pool *g_pool;
static pg_conn *g_db;

static const char MODELS[] =
	"{\"endpoints\": {"
	"  \"fake\": {\"base_url\": \"%s\", \"slots\": 4, \"api_key_env\": \"TEST_FAKE_KEY\","
	"            \"retry_base\": \"10ms\", \"retry_max\": \"40ms\", \"max_retries\": 2,"
	"            \"timeout\": \"10s\", \"max_retry_wait\": \"3s\", \"stream_replies\": false},"
	"  \"slow\": {\"base_url\": \"%s\", \"slots\": 2, \"timeout\": \"700ms\", \"max_retries\": 0},"
	"  \"narrow\": {\"base_url\": \"%s\", \"slots\": 2, \"max_retries\": 0},"
	"  \"stall\": {\"base_url\": \"%s\", \"slots\": 2, \"timeout\": \"30s\","
	"             \"idle_timeout\": \"300ms\", \"max_retries\": 1, \"retry_base\": \"10ms\"},"
	"  \"whole\": {\"base_url\": \"%s\", \"slots\": 2, \"timeout\": \"30s\", \"stream_replies\": false,"
	"             \"idle_timeout\": \"300ms\", \"max_retries\": 1, \"retry_base\": \"10ms\"}},"
	" \"models\": {"
	"  \"cheap\": {\"endpoint\": \"fake\", \"model\": \"cheap-1\", \"context\": 4096,"
	"             \"max_output\": 256, \"price_in\": 1.0, \"price_out\": 2.0},"
	"  \"strong\": {\"endpoint\": \"fake\", \"model\": \"strong-1\", \"context\": 64000,"
	"              \"max_output\": 512, \"price_in\": 10, \"price_out\": 30},"
	"  \"tiny\": {\"endpoint\": \"fake\", \"model\": \"tiny-1\", \"context\": 300, \"max_output\": 64},"
	"  \"hang\": {\"endpoint\": \"slow\", \"model\": \"hang-1\", \"context\": 4096, \"max_output\": 64},"
	"  \"two\": {\"endpoint\": \"narrow\", \"model\": \"two-1\", \"context\": 4096, \"max_output\": 64},"
	"  \"stall\": {\"endpoint\": \"stall\", \"model\": \"stall-1\", \"context\": 4096,"
	"             \"max_output\": 64},"
	"  \"whole\": {\"endpoint\": \"whole\", \"model\": \"whole-1\", \"context\": 4096,"
	"             \"max_output\": 64}},"
	" \"roles\": {\"developer\": [\"cheap\", \"strong\"], \"default\": [\"cheap\"],"
	"            \"fit\": [\"tiny\", \"strong\"], \"tinyonly\": [\"tiny\"]}}";

static llm_service *service(int with_db)
{
	llm_registry *r = NULL;
	llm_service *s = NULL;
	llm_options o;

	memset(&o, 0, sizeof(o));
	o.pool = with_db ? g_pool : NULL;
	o.project_budget = -1;
	o.user_budget = -1;
	o.stats_interval_ms = -1;
	if (llm_registry_load_file(&r, fake_llm_models_file(&g_fake, "models.json", MODELS)) < 0)
		fail_msg("registry: %s", err_last());
	if (llm_service_new(&s, r, &o) < 0)
		fail_msg("service: %s", err_last());
	return s;
}

static int setup(void **state)
{
	(void)state;
	setenv("TEST_FAKE_KEY", "sk-test-key-123", 1);
	fake_llm_start(&g_fake);
	g_pool = ts_pool(4);
	g_db = ts_conn();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_llm_stop(&g_fake);
	pg_conn_close(g_db);
	pg_pool_free(g_pool);
	return 0;
}

static int before_each(void **state)
{
	(void)state;
	fake_llm_reset(&g_fake);
	ts_sql(g_db, "TRUNCATE llm_calls, llm_budgets, llm_reservations, llm_sched_stats");
	return 0;
}

static llm_message g_msgs[2] = {
	{.role = "system", .content = "You are terse."},
	{.role = "user", .content = "Say hello."},
};

static void request(llm_request *rq)
{
	llm_request_init(rq);
	rq->messages = g_msgs;
	rq->n_messages = 2;
}

static int64_t sql_int(const char *sql)
{
	return ts_sql_int(g_db, sql);
}

static json_t *last_body(void)
{
	json_t *r = fake_llm_requests(&g_fake);
	json_t *b = json_incref(json_object_get(json_array_get(r, json_array_size(r) - 1), "body"));
	json_decref(r);
	return b;
}

/* --- the happy paths --- */

static void test_completion_and_ledger(void **state)
{
	llm_service *s = service(1);
	llm_call c = {.role = "developer", .project = "p1", .user = "u1", .thread_id = 7,
		      .run_id = 9, .node = "architect"};
	llm_request rq;
	llm_response out;
	json_t *reqs, *h, *b;
	(void)state;

	request(&rq);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_string_equal(out.content, "Hello! How can I help you today?");
	assert_int_equal(out.finish, LLM_FINISH_STOP);
	assert_int_equal(out.tokens_in, 19);
	assert_int_equal(out.tokens_out, 9);
	assert_false(out.usage_estimated);
	assert_string_equal(out.model, "cheap");
	assert_string_equal(out.endpoint, "fake");
	assert_int_equal(out.attempts, 1);
	/* 19 * $1/M + 9 * $2/M */
	assert_true(out.cost_usd > 0.0000369 && out.cost_usd < 0.0000371);
	llm_response_free(&out);

	reqs = fake_llm_requests(&g_fake);
	assert_int_equal(json_array_size(reqs), 1);
	h = json_object_get(json_array_get(reqs, 0), "headers");
	b = json_object_get(json_array_get(reqs, 0), "body");
	assert_string_equal(json_string_value(json_object_get(h, "authorization")),
			    "Bearer sk-test-key-123");
	assert_string_equal(json_string_value(json_object_get(b, "model")), "cheap-1");
	assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 256);
	assert_int_equal(json_array_size(json_object_get(b, "messages")), 2);
	json_decref(reqs);

	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'ok' AND "
				 "project = 'p1' AND user_id = 'u1' AND thread_id = 7 AND run_id = 9 "
				 "AND node = 'architect' AND role = 'developer' AND model = 'cheap' "
				 "AND endpoint = 'fake' AND tokens_in = 19 AND tokens_out = 9 AND "
				 "cost_usd = 0.000037 AND http_status = 200 AND latency_ms > 0"),
			 1);
	llm_service_free(s);
}

typedef struct seen {
	char text[512];
	int n;
} seen;

static int collect(const char *t, size_t n, void *ud)
{
	seen *s = ud;
	size_t have = strlen(s->text);

	if (have + n < sizeof(s->text)) {
		memcpy(s->text + have, t, n);
		s->text[have + n] = '\0';
	}
	s->n++;
	return 0;
}

static void test_streaming(void **state)
{
	llm_service *s = service(1);
	llm_request rq;
	llm_response out;
	seen d = {{0}, 0};
	json_t *b;
	(void)state;

	/* the built-in stream: 20 chunks, no usage */
	request(&rq);
	rq.stream = 1;
	rq.on_delta = collect;
	rq.udata = &d;
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_string_equal(out.content, "Hello! How can I help you today? I can draft a plan, review "
					 "code or");
	assert_string_equal(d.text, out.content);
	assert_int_equal(d.n, 18);
	assert_true(out.usage_estimated);
	assert_true(out.tokens_out > 0);
	llm_response_free(&out);
	b = last_body();
	assert_true(json_is_true(json_object_get(b, "stream")));
	assert_true(json_is_true(json_object_get(json_object_get(b, "stream_options"),
						 "include_usage")));
	json_decref(b);

	/* a scripted stream with tool-call deltas and a usage chunk */
	fake_llm_script(&g_fake,
		"[{\"stream\": ["
		"{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,"
		"\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"run\","
		"\"arguments\":\"\"}}]}}]},"
		"{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
		"\"{\\\"cmd\\\": \"}}]}}]},"
		"{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
		"\"\\\"make test\\\"}\"}}]}}]},"
		"{\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]},"
		"{\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":12}}],"
		"\"chunk_delay_ms\": 2}]");
	memset(&d, 0, sizeof(d));
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_int_equal(out.finish, LLM_FINISH_TOOL_CALLS);
	assert_int_equal(out.n_tool_calls, 1);
	assert_string_equal(out.tool_calls[0].arguments, "{\"cmd\": \"make test\"}");
	assert_int_equal(out.tokens_in, 40);
	assert_int_equal(out.tokens_out, 12);
	assert_false(out.usage_estimated);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'ok'"), 2);
	llm_service_free(s);
}

static void test_tools(void **state)
{
	llm_service *s = service(0);
	json_t *params = ts_json("{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},"
				 "\"required\":[\"path\"]}");
	llm_tool tools[1] = {{"read_file", "Reads a file of the repository", params}};
	llm_tool_call asked = {"call_1", "read_file", "{\"path\":\"main.c\"}"};
	llm_message conv[4] = {
		{.role = "user", .content = "What is in main.c?"},
		{.role = "assistant", .tool_calls = &asked, .n_tool_calls = 1},
		{.role = "tool", .tool_call_id = "call_1", .content = "int main(void) { return 0; }"},
	};
	llm_request rq;
	llm_response out;
	json_t *b, *args = NULL;
	(void)state;

	fake_llm_script(&g_fake,
		"[{\"json\": {\"id\":\"x\",\"choices\":[{\"message\":{\"role\":\"assistant\","
		"\"content\":null,\"tool_calls\":[{\"id\":\"call_2\",\"type\":\"function\","
		"\"function\":{\"name\":\"read_file\",\"arguments\":\"{\\\"path\\\":\\\"util.c\\\"}\"}}]},"
		"\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":50,"
		"\"completion_tokens\":10}}}]");
	llm_request_init(&rq);
	rq.messages = conv;
	rq.n_messages = 3;
	rq.tools = tools;
	rq.n_tools = 1;
	rq.tool_choice = "auto";
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_int_equal(out.n_tool_calls, 1);
	assert_string_equal(out.tool_calls[0].name, "read_file");
	assert_int_equal(llm_tool_call_args(&out.tool_calls[0], &args), 0);
	assert_string_equal(json_string_value(json_object_get(args, "path")), "util.c");
	json_decref(args);
	llm_response_free(&out);
	b = last_body();
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(
				    json_object_get(b, "tools"), 0), "function"), "name")), "read_file");
	assert_string_equal(json_string_value(json_object_get(b, "tool_choice")), "auto");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(b,
				    "messages"), 2), "tool_call_id")), "call_1");
	json_decref(b);
	json_decref(params);
	llm_service_free(s);
}

static const char SCHEMA[] = "{\"type\":\"object\",\"required\":[\"tasks\"],\"properties\":"
			     "{\"tasks\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}";

static char *reply_with(const char *model, const char *content)
{
	json_t *r = json_pack("{s:s,s:{s:[{s:{s:s,s:s},s:s}],s:{s:i,s:i}}}", "model", model, "json",
			      "choices", "message", "role", "assistant", "content", content,
			      "finish_reason", "stop", "usage", "prompt_tokens", 30,
			      "completion_tokens", 8);
	char *s = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	return s;
}

static void script_replies(const char *model1, const char *c1, const char *model2,
			   const char *c2, const char *model3, const char *c3)
{
	char *a = reply_with(model1, c1), *b = model2 ? reply_with(model2, c2) : NULL,
	     *c = model3 ? reply_with(model3, c3) : NULL;
	buf s;

	buf_init(&s, 0);
	buf_printf(&s, "[%s%s%s%s%s]", a, b ? "," : "", b ? b : "", c ? "," : "", c ? c : "");
	fake_llm_script(&g_fake, buf_cstr(&s));
	buf_free(&s);
	free(a);
	free(b);
	free(c);
}

static void test_structured_output(void **state)
{
	llm_service *s = service(1);
	json_t *schema = ts_json(SCHEMA), *reqs, *msgs;
	llm_call c = {.role = "developer", .project = "ps"};
	llm_request rq;
	llm_response out;
	(void)state;

	request(&rq);
	rq.json_schema = schema;
	rq.schema_name = "plan";

	/* right the first time, inside a Markdown fence */
	script_replies("cheap-1", "```json\n{\"tasks\": [\"a\", \"b\"]}\n```", NULL, NULL, NULL, NULL);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_int_equal(json_array_size(json_object_get(out.json, "tasks")), 2);
	llm_response_free(&out);

	/* wrong, then right after being told what was wrong */
	fake_llm_reset(&g_fake);
	script_replies("cheap-1", "{\"tasks\": [1]}", "cheap-1", "{\"tasks\": [\"fixed\"]}", NULL,
		       NULL);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(out.json, "tasks"), 0)),
			    "fixed");
	assert_int_equal(out.attempts, 2);
	assert_int_equal(out.escalations, 0);
	llm_response_free(&out);
	reqs = fake_llm_requests(&g_fake);
	msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
	assert_int_equal(json_array_size(msgs), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
			    "{\"tasks\": [1]}");
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(msgs, 3), "content")),
			       "$.tasks[0]: expected string, got integer"));
	json_decref(reqs);

	/* wrong twice: the stronger model of the role is asked */
	fake_llm_reset(&g_fake);
	script_replies("cheap-1", "not json at all", "cheap-1", "{\"tasks\": \"x\"}", "strong-1",
		       "{\"tasks\": [\"from strong\"]}");
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_string_equal(out.model, "strong");
	assert_int_equal(out.escalations, 1);
	assert_int_equal(out.attempts, 3);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'invalid_output' "
				 "AND model = 'cheap'"), 3);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'ok' AND "
				 "model = 'strong'"), 1);
	assert_true(sql_int("SELECT count(DISTINCT call_id) FROM llm_calls") == 3);
	json_decref(schema);
	llm_service_free(s);
}

/* A reply of the fake holding `content` with finish_reason `finish`. */
static json_t *finish_reply(const char *content, const char *finish)
{
	return json_pack("{s:{s:[{s:{s:s,s:s},s:s}],s:{s:i,s:i}}}", "json", "choices", "message",
			 "role", "assistant", "content", content, "finish_reason", finish, "usage",
			 "prompt_tokens", 30, "completion_tokens", 8);
}

static void script_json(json_t *replies)
{
	char *t = json_dumps(replies, JSON_COMPACT);
	fake_llm_script(&g_fake, t);
	free(t);
	json_decref(replies);
}

static const json_t *req_body(const json_t *reqs, size_t i)
{
	return json_object_get(json_array_get(reqs, i), "body");
}

/* A schema the server cannot turn into a grammar: sent simplified, then not at all (in the
 * prompt instead); remembered per endpoint; our own check stays whole at every level */
static void test_schema_fallback(void **state)
{
	static const char REFUSAL[] =
		"{\"status\": 400, \"json\": {\"error\": {\"code\": 400, \"message\": \"Failed to "
		"initialize samplers: failed to parse grammar\", \"type\": \"invalid_request_error\"}}}";
	llm_service *s = service(1);
	json_t *schema = ts_json("{\"type\":\"object\",\"required\":[\"tasks\"],\"properties\":"
				 "{\"tasks\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":"
				 "\"string\",\"maxLength\":5000,\"pattern\":\"^[a-z]+$\"}}}}");
	json_t *reqs, *sent;
	llm_call c = {.role = "default", .project = "fb"};
	llm_request rq;
	llm_response out;
	const char *last;
	(void)state;

	request(&rq);
	rq.json_schema = schema;
	rq.schema_name = "plan";
	/* refused as it is: asked again at once with the structure only */
	{
		char t[1024];
		snprintf(t, sizeof(t), "[%s]", REFUSAL);
		fake_llm_script(&g_fake, t);
	}
	script_json(json_pack("[o]", finish_reply("{\"tasks\": [\"abc\"]}", "stop")));
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(out.json, "tasks"), 0)),
			    "abc");
	llm_response_free(&out);
	reqs = fake_llm_requests(&g_fake);
	assert_int_equal(json_array_size(reqs), 2);
	/* the first went as a grammar can take it: no bound over 1000 */
	sent = json_object_get(json_object_get(json_object_get(req_body(reqs, 0), "response_format"),
					       "json_schema"), "schema");
	assert_null(json_object_get(json_object_get(json_object_get(json_object_get(sent,
			"properties"), "tasks"), "items"), "maxLength"));
	assert_non_null(json_object_get(json_object_get(json_object_get(json_object_get(sent,
			"properties"), "tasks"), "items"), "pattern"));
	/* the second simplified, not strict */
	sent = json_object_get(json_object_get(req_body(reqs, 1), "response_format"), "json_schema");
	assert_true(json_is_false(json_object_get(sent, "strict")));
	assert_null(json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
			sent, "schema"), "properties"), "tasks"), "items"), "pattern"));
	json_decref(reqs);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'schema_refused' "
				 "AND http_status = 400 AND error LIKE '%refused the JSON schema%'"), 1);

	/* the next call goes simplified at once; our check still holds the pattern */
	fake_llm_reset(&g_fake);
	script_json(json_pack("[o, o]", finish_reply("{\"tasks\": [\"ABC\"]}", "stop"),
			      finish_reply("{\"tasks\": [\"ok\"]}", "stop")));
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_int_equal(out.attempts, 2);
	llm_response_free(&out);
	reqs = fake_llm_requests(&g_fake);
	assert_true(json_is_false(json_object_get(json_object_get(json_object_get(req_body(reqs, 0),
			"response_format"), "json_schema"), "strict")));
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(json_object_get(
			req_body(reqs, 1), "messages"), 3), "content")), "does not match"));
	json_decref(reqs);

	/* refused simplified too: the schema goes into the prompt, no response_format */
	fake_llm_reset(&g_fake);
	{
		char t[1024];
		snprintf(t, sizeof(t), "[%s]", REFUSAL);
		fake_llm_script(&g_fake, t);
	}
	script_json(json_pack("[o]", finish_reply("```json\n{\"tasks\": [\"x\"]}\n```", "stop")));
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	llm_response_free(&out);
	reqs = fake_llm_requests(&g_fake);
	assert_int_equal(json_array_size(reqs), 2);
	assert_null(json_object_get(req_body(reqs, 1), "response_format"));
	assert_int_equal(json_array_size(json_object_get(req_body(reqs, 1), "messages")), 2);
	last = json_string_value(json_object_get(json_array_get(json_object_get(req_body(reqs, 1),
			"messages"), 1), "content"));
	assert_non_null(strstr(last, "Say hello."));
	assert_non_null(strstr(last, "matches this JSON schema"));
	assert_non_null(strstr(last, "\"maxLength\":5000")); /* the whole schema, for the model */
	json_decref(reqs);
	json_decref(schema);
	llm_service_free(s);
}

/* A structured reply cut at max_tokens: said so, never sent back, asked again with more room;
 * twice cut: an error that says what to do */
static void test_truncated_structured(void **state)
{
	llm_service *s = service(1);
	json_t *schema = ts_json(SCHEMA), *reqs, *msgs;
	llm_call c = {.role = "default"};
	llm_request rq;
	llm_response out;
	(void)state;

	request(&rq);
	rq.json_schema = schema;
	rq.max_tokens = 100;
	script_json(json_pack("[o, o]", finish_reply("{\"tasks\": [\"a very long tas", "length"),
			      finish_reply("{\"tasks\": [\"short\"]}", "stop")));
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_int_equal(out.attempts, 2);
	llm_response_free(&out);
	reqs = fake_llm_requests(&g_fake);
	msgs = json_object_get(req_body(reqs, 1), "messages");
	assert_int_equal(json_array_size(msgs), 3); /* no assistant message with the cut reply */
	assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 2), "role")),
			    "user");
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
			       "cut off at the token limit (100 tokens)"));
	assert_int_equal(json_integer_value(json_object_get(req_body(reqs, 1), "max_tokens")), 200);
	json_decref(reqs);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'truncated'"), 1);

	/* cut twice: no "does not fit", but what happened and what to do */
	fake_llm_reset(&g_fake);
	script_json(json_pack("[o, o]", finish_reply("{\"tasks\": [\"aaaa", "length"),
			      finish_reply("{\"tasks\": [\"bbbb", "length")));
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_PARSE);
	assert_non_null(strstr(err_last(), "cut off at the token limit"));
	assert_non_null(strstr(err_last(), "raise the model's max_output"));
	assert_null(strstr(err_last(), "does not fit"));
	assert_int_equal(fake_llm_count(&g_fake), 2);
	llm_response_free(&out);
	json_decref(schema);
	llm_service_free(s);
}

static json_t *tool_reply(const char *name, const char *args, const char *finish)
{
	return json_pack("{s:{s:[{s:{s:s,s:n,s:[{s:s,s:s,s:{s:s,s:s}}]},s:s}],s:{s:i,s:i}}}",
			 "json", "choices", "message", "role", "assistant", "content",
			 "tool_calls", "id", "call_x", "type", "function", "function", "name", name,
			 "arguments", args, "finish_reason", finish, "usage", "prompt_tokens", 30,
			 "completion_tokens", 8);
}

/* tool_choice naming a tool, answered with another (llama-server does that): asked again;
 * a call cut at max_tokens: never sent back, asked again */
static void test_tool_checks(void **state)
{
	llm_service *s = service(1);
	json_t *params = ts_json("{\"type\":\"object\",\"properties\":{\"command\":{\"type\":"
				 "\"string\"}},\"required\":[\"command\"]}");
	llm_tool tools[2] = {{"bash", "Runs a command", params}, {"submit", "Ends", NULL}};
	json_t *reqs, *msgs, *m;
	llm_request rq;
	llm_response out;
	size_t i;
	(void)state;

	request(&rq);
	rq.tools = tools;
	rq.n_tools = 2;
	rq.tool_choice = "submit";
	script_json(json_pack("[o, o]", tool_reply("bash", "{\"command\": \"ls\"}", "tool_calls"),
			      tool_reply("submit", "{}", "tool_calls")));
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_string_equal(out.tool_calls[0].name, "submit");
	llm_response_free(&out);
	reqs = fake_llm_requests(&g_fake);
	msgs = json_object_get(req_body(reqs, 1), "messages");
	assert_int_equal(json_array_size(msgs), 3);
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
			       "it called 'bash' where 'submit' was asked for"));
	json_decref(reqs);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'invalid_output'"),
			 1);

	/* "auto": a call cut inside its arguments is asked again and never sent back */
	fake_llm_reset(&g_fake);
	rq.tool_choice = "auto";
	rq.max_tokens = 12;
	script_json(json_pack("[o, o]", tool_reply("bash", "{\"command\": \"find . -na", "length"),
			      tool_reply("bash", "{\"command\": \"ls\"}", "tool_calls")));
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_string_equal(out.tool_calls[0].arguments, "{\"command\": \"ls\"}");
	llm_response_free(&out);
	reqs = fake_llm_requests(&g_fake);
	msgs = json_object_get(req_body(reqs, 1), "messages");
	json_array_foreach(msgs, i, m)
		assert_null(json_object_get(m, "tool_calls"));
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
			       "cut off at the token limit (12 tokens) inside your call to 'bash'"));
	json_decref(reqs);
	/* "auto" and a tool that was not offered: the caller decides (an agent answers it) */
	fake_llm_reset(&g_fake);
	script_json(json_pack("[o]", tool_reply("rm_rf", "{}", "tool_calls")));
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_string_equal(out.tool_calls[0].name, "rm_rf");
	llm_response_free(&out);
	json_decref(params);
	llm_service_free(s);
}

/* --- retries --- */

static void test_retries(void **state)
{
	llm_service *s = service(1);
	llm_request rq;
	llm_response out;
	json_t *reqs;
	double gap;
	(void)state;

	request(&rq);
	/* 429 with Retry-After-Ms, then a 500, then success */
	fake_llm_script(&g_fake, "[{\"status\": 429, \"headers\": {\"Retry-After-Ms\": \"20\"},"
				 "\"json\": {\"error\": {\"message\": \"slow down\"}}},"
				 "{\"status\": 500, \"body\": \"boom\"}]");
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_int_equal(out.attempts, 3);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls"), 3);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'http_429'"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'http_500'"), 1);
	assert_int_equal(sql_int("SELECT count(DISTINCT call_id) FROM llm_calls"), 1);

	/* rate limited past the retries: a clear error, three attempts */
	fake_llm_reset(&g_fake);
	fake_llm_script(&g_fake, "[{\"status\": 429, \"times\": 3, \"headers\": {\"Retry-After-Ms\": "
				 "\"5\"}, \"json\": {\"error\": {\"message\": \"quota\"}}}]");
	assert_int_equal(llm_chat(s, NULL, &rq, &out), ERR_RETRY);
	assert_non_null(strstr(err_last(), "rate limited"));
	assert_non_null(strstr(err_last(), "gave up after 3 attempts"));
	assert_int_equal(fake_llm_count(&g_fake), 3);
	llm_response_free(&out);

	/* Retry-After longer than max_retry_wait: no point waiting */
	fake_llm_reset(&g_fake);
	fake_llm_script(&g_fake, "[{\"status\": 429, \"headers\": {\"Retry-After\": \"3600\"}}]");
	assert_int_equal(llm_chat(s, NULL, &rq, &out), ERR_RETRY);
	assert_non_null(strstr(err_last(), "asks to wait 3600 s"));
	assert_int_equal(fake_llm_count(&g_fake), 1);
	llm_response_free(&out);

	/* the retries of one call stop once the endpoint's timeout has passed since the
	 * first attempt: not five of them at 1.5 s each on a 2 s timeout */
	{
		llm_registry *r = NULL;
		llm_service *s2 = NULL;
		char models[512];
		snprintf(models, sizeof(models),
			 "{\"endpoints\": {\"e\": {\"base_url\": \"%s\", \"timeout\": \"2s\", "
			 "\"max_retries\": 5, \"retry_base\": \"1ms\", \"retry_max\": \"1ms\", "
			 "\"stream_replies\": false}}, \"models\": {\"m\": {\"endpoint\": \"e\"}}}",
			 g_fake.base_url);
		assert_int_equal(llm_registry_load_text(&r, models, "t"), 0);
		assert_int_equal(llm_service_new(&s2, r, NULL), 0);
		fake_llm_reset(&g_fake);
		fake_llm_script(&g_fake, "[{\"status\": 500, \"delay_ms\": 1500, \"times\": 6, "
					 "\"body\": \"busy\"}]");
		assert_int_equal(llm_chat(s2, NULL, &rq, &out), ERR_HTTP);
		assert_non_null(strstr(err_last(), "no more retries"));
		assert_int_equal(out.attempts, 2);
		llm_response_free(&out);
		llm_service_free(s2);
	}

	/* a server loading its model (503, and 503 on /health meanwhile): waited for on
	 * /health, and the attempt after it costs no retry, even with none left */
	{
		llm_registry *r = NULL;
		llm_service *s2 = NULL;
		char models[512];
		int64_t t0 = util_mono_ms();
		snprintf(models, sizeof(models),
			 "{\"endpoints\": {\"e\": {\"base_url\": \"%s\", \"max_retries\": 0, "
			 "\"health_wait\": \"30s\"}}, \"models\": {\"m\": {\"endpoint\": \"e\"}}}",
			 g_fake.base_url);
		assert_int_equal(llm_registry_load_text(&r, models, "t"), 0);
		assert_int_equal(llm_service_new(&s2, r, NULL), 0);
		fake_llm_reset(&g_fake);
		fake_llm_post(&g_fake, "/__health", "{\"loading_ms\": 1500}");
		fake_llm_script(&g_fake, "[{\"status\": 503, \"json\": {\"error\": {\"code\": 503, "
					 "\"message\": \"Loading model\", \"type\": "
					 "\"unavailable_error\"}}}]");
		assert_int_equal(llm_chat(s2, NULL, &rq, &out), 0);
		assert_int_equal(out.attempts, 2);
		assert_true(util_mono_ms() - t0 >= 1400);
		llm_response_free(&out);
		llm_service_free(s2);
	}

	/* Retry-After in seconds is honoured (a lower bound, so noise cannot fail it) */
	fake_llm_reset(&g_fake);
	fake_llm_script(&g_fake, "[{\"status\": 503, \"headers\": {\"Retry-After\": \"1\"}}]");
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	llm_response_free(&out);
	reqs = fake_llm_requests(&g_fake);
	assert_int_equal(json_array_size(reqs), 2);
	gap = json_real_value(json_object_get(json_array_get(reqs, 1), "t_ms")) -
	      json_real_value(json_object_get(json_array_get(reqs, 0), "t_ms"));
	assert_true(gap >= 950);
	json_decref(reqs);
	llm_service_free(s);
}

/* --- bad replies: a clear error, a ledger row, nothing lost --- */

static void expect_failure(llm_service *s, const char *script, int stream, int want_rc,
			   const char *needle, const char *outcome, int want_requests)
{
	llm_request rq;
	llm_response out;
	char sql[256];

	fake_llm_reset(&g_fake);
	ts_sql(g_db, "TRUNCATE llm_calls");
	fake_llm_script(&g_fake, script);
	request(&rq);
	rq.stream = stream;
	assert_int_equal(llm_chat(s, NULL, &rq, &out), want_rc);
	if (!strstr(err_last(), needle))
		fail_msg("error '%s' does not mention '%s'", err_last(), needle);
	assert_non_null(strstr(err_last(), "model 'cheap' at endpoint 'fake'"));
	llm_response_free(&out);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM llm_calls WHERE outcome = '%s' AND error "
				   "IS NOT NULL", outcome);
	assert_true(sql_int(sql) >= 1);
	assert_int_equal(fake_llm_count(&g_fake), want_requests);
}

static void test_bad_replies(void **state)
{
	llm_service *s = service(1);
	(void)state;

	expect_failure(s, "[{\"body\": \"{\\\"choices\\\": [{\\\"message\\\": {\\\"content\\\": \\\"hal\"}]",
		       0, ERR_PARSE, "not valid JSON", "parse", 1);
	expect_failure(s, "[{\"json\": {\"id\": \"x\"}}]", 0, ERR_PARSE, "no choices", "parse", 1);
	expect_failure(s, "[{\"json\": {\"choices\": [{\"message\": {\"content\": \"x\"}, "
			  "\"finish_reason\": \"solar_flare\"}]}}]",
		       0, ERR_PARSE, "unknown finish_reason 'solar_flare'", "parse", 1);
	expect_failure(s, "[{\"status\": 502, \"times\": 3, \"headers\": {\"Content-Type\": "
			  "\"text/html\"}, \"body\": \"<html><head><title>502 Bad Gateway</title>"
			  "</head><body>nginx</body></html>\"}]",
		       0, ERR_HTTP, "HTML page titled \"502 Bad Gateway\"", "http_502", 3);
	expect_failure(s, "[{\"headers\": {\"Content-Type\": \"text/html\"}, \"body\": \"<html>"
			  "<title>Login</title></html>\"}]",
		       0, ERR_PARSE, "Login", "parse", 1);
	expect_failure(s, "[{\"status\": 400, \"json\": {\"error\": {\"message\": \"bad "
			  "temperature\"}}}]", 0, ERR_HTTP, "bad temperature", "http_400", 1);
	expect_failure(s, "[{\"status\": 404, \"json\": {\"error\": {\"message\": \"model not "
			  "found\"}}}]", 0, ERR_NOTFOUND, "check base_url", "http_404", 1);
	/* a body cut short by the connection closing: retried, then reported */
	expect_failure(s, "[{\"after\": \"truncate\", \"times\": 3}]", 0, ERR_HTTP, "request failed",
		       "network", 3);
	/* a reset after part of a stream was shown: not retried */
	expect_failure(s, "[{\"stream\": [{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}], "
			  "\"after\": \"reset\"}]",
		       1, ERR_HTTP, "stream broke after part of the reply", "network", 1);
	/* a malformed chunk in a stream */
	expect_failure(s, "[{\"stream\": [\"data: {\\\"choices\\\": [\\n\\n\"]}]", 1, ERR_PARSE,
		       "streamed chunk", "parse", 1);
	/* a stream that stops without finishing */
	expect_failure(s, "[{\"stream\": [{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}], "
			  "\"done\": false}]",
		       1, ERR_PARSE, "before the reply was complete", "parse", 1);
	/* an error event in the middle of a stream */
	expect_failure(s, "[{\"stream\": [{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}, "
			  "{\"error\": {\"message\": \"CUDA out of memory\"}}]}]",
		       1, ERR_HTTP, "CUDA out of memory", "provider_error", 1);
	/* nothing listens there: waited for (its /health) up to health_wait, then a clear
	 * error; the wait costs no retry and no further attempt is made */
	{
		llm_request rq;
		llm_response out;
		llm_registry *r = NULL;
		llm_service *dead = NULL;
		int64_t t0;
		assert_int_equal(llm_registry_load_text(&r,
			"{\"endpoints\": {\"gone\": {\"base_url\": \"http://127.0.0.1:9/v1\", "
			"\"max_retries\": 1, \"retry_base\": \"1ms\", \"health_wait\": \"1500ms\"}}, "
			"\"models\": {\"m\": {\"endpoint\": \"gone\"}}}", "t"), 0);
		assert_int_equal(llm_service_new(&dead, r, NULL), 0);
		request(&rq);
		t0 = util_mono_ms();
		assert_int_equal(llm_chat(dead, NULL, &rq, &out), ERR_HTTP);
		assert_true(util_mono_ms() - t0 >= 1400);
		assert_non_null(strstr(err_last(), "model 'm' at endpoint 'gone'"));
		assert_non_null(strstr(err_last(), "the server has not been up for 1 s"));
		assert_non_null(strstr(err_last(), "raise the endpoint's health_wait"));
		assert_int_equal(out.attempts, 1);
		llm_response_free(&out);
		/* the next call knows the server is down: one look at /health, no attempt */
		t0 = util_mono_ms();
		assert_int_equal(llm_chat(dead, NULL, &rq, &out), ERR_HTTP);
		assert_non_null(strstr(err_last(), "has not been up"));
		assert_int_equal(out.attempts, 0);
		llm_response_free(&out);
		llm_service_free(dead);
	}
	llm_service_free(s);
}

static void test_timeout_and_cancel(void **state)
{
	llm_service *s = service(1);
	llm_call c = {.role = "hang"};
	llm_request rq;
	llm_response out;
	(void)state;

	/* a stream that never ends: the endpoint's timeout stops it */
	fake_llm_script(&g_fake, "[{\"stream\": [{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}], "
				 "\"after\": \"hang\", \"keepalive_ms\": 50}]");
	request(&rq);
	rq.stream = 1;
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_TIMEOUT);
	assert_non_null(strstr(err_last(), "timed out"));
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'timeout'"), 1);

	/* a reply that takes too long */
	fake_llm_script(&g_fake, "[{\"delay_ms\": 3000}]");
	rq.stream = 0;
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_TIMEOUT);
	llm_response_free(&out);
	llm_service_free(s);
}

static void test_idle_timeout(void **state)
{
	llm_service *s = service(1);
	llm_call c = {.role = "stall"};
	llm_request rq;
	llm_response out;
	seen d = {{0}, 0};
	int64_t t0;
	(void)state;

	/* two chunks reach the caller, then silence: ended by the idle timeout (300 ms), not
	 * the total (30 s), and not retried, as part of the reply was shown */
	fake_llm_script(&g_fake, "[{\"stream\": [{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}, "
				 "{\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}], "
				 "\"after\": \"hang\", \"keepalive_ms\": 0}]");
	request(&rq);
	rq.stream = 1;
	rq.on_delta = collect;
	rq.udata = &d;
	t0 = util_mono_ms();
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_TIMEOUT);
	assert_true(util_mono_ms() - t0 < 15000);
	assert_non_null(strstr(err_last(), "the model stopped sending for 0.3 s mid-reply; raise "
					   "the endpoint's idle_timeout or check the server"));
	assert_string_equal(d.text, "Hello");
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'stalled' AND "
				 "model = 'stall' AND error LIKE '%stopped sending%'"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls"), 1);

	/* headers and nothing else, twice: retried once (nothing was delivered), then given up */
	ts_sql(g_db, "TRUNCATE llm_calls");
	fake_llm_script(&g_fake, "[{\"stream\": [], \"after\": \"hang\", \"keepalive_ms\": 0, "
				 "\"times\": 2}]");
	rq.on_delta = NULL;
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_TIMEOUT);
	assert_non_null(strstr(err_last(), "gave up after 2 attempts"));
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'stalled'"), 2);

	/* a stall and then a good reply: the retry succeeds */
	ts_sql(g_db, "TRUNCATE llm_calls");
	fake_llm_script(&g_fake, "[{\"stream\": [], \"after\": \"hang\", \"keepalive_ms\": 0}]");
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_int_equal(out.attempts, 2);
	llm_response_free(&out);

	/* a caller that wants the whole reply: it is asked for as a stream all the same
	 * (stream_replies), so silence is watched from the request on. A server that sends
	 * nothing for longer than the idle timeout but answers /health is alive and busy
	 * (its own queue, a long prompt): waited on; the caller sees no delta */
	ts_sql(g_db, "TRUNCATE llm_calls");
	fake_llm_reset(&g_fake);
	fake_llm_script(&g_fake, "[{\"delay_ms\": 1000}]");
	rq.stream = 0;
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_int_equal(out.attempts, 1);
	assert_non_null(strstr(out.content, "Hello! How can I help you today?"));
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'stalled'"), 0);
	{
		json_t *b = last_body();
		assert_true(json_is_true(json_object_get(b, "stream")));
		json_decref(b);
	}
	/* one whose /health does not say it is up (loading its model): ended by the idle
	 * timeout, waited for, and the attempt after it costs no retry */
	fake_llm_reset(&g_fake);
	fake_llm_post(&g_fake, "/__health", "{\"loading_ms\": 1200}");
	fake_llm_script(&g_fake, "[{\"delay_ms\": 5000}]");
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_int_equal(out.attempts, 2);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'stalled' AND "
				 "error LIKE '%sent nothing for 0.3 s after the request%'"), 1);

	/* an endpoint with stream_replies false: a whole reply that stops half-way is
	 * ended; one that is slow to start is not (the model may still be writing it),
	 * only by the total timeout */
	c.role = "whole";
	ts_sql(g_db, "TRUNCATE llm_calls");
	fake_llm_script(&g_fake, "[{\"after\": \"hang\", \"times\": 2}, {\"delay_ms\": 800}]");
	t0 = util_mono_ms();
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_TIMEOUT);
	assert_true(util_mono_ms() - t0 < 15000);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'stalled'"), 2);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_string_equal(out.content, "Hello! How can I help you today?");
	llm_response_free(&out);
	llm_service_free(s);
}

typedef struct canceller {
	atomic_int flag;
	fake_llm *f;
} canceller;

static int has_request(void *p)
{
	return fake_llm_count(((canceller *)p)->f) > 0;
}

static void *cancel_soon(void *p)
{
	canceller *c = p;

	ts_wait_for(has_request, c, 10000);
	atomic_store(&c->flag, 1);
	return NULL;
}

static void test_cancel(void **state)
{
	llm_service *s = service(1);
	canceller cn;
	llm_call c = {.role = "default"};
	llm_request rq;
	llm_response out;
	pthread_t th;
	(void)state;

	atomic_store(&cn.flag, 0);
	cn.f = &g_fake;
	c.cancel = &cn.flag;
	fake_llm_script(&g_fake, "[{\"stream\": [], \"after\": \"hang\", \"keepalive_ms\": 0}]");
	request(&rq);
	rq.stream = 1;
	pthread_create(&th, NULL, cancel_soon, &cn);
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_CANCELLED);
	pthread_join(th, NULL);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'cancelled'"), 1);
	llm_service_free(s);
}

/* --- context --- */

static void test_context_overflow(void **state)
{
	llm_service *s = service(1);
	llm_call c = {.role = "fit"};
	static char big[4000];
	llm_message m = {.role = "user", .content = big};
	llm_request rq;
	llm_response out;
	json_t *b;
	(void)state;

	memset(big, 'x', sizeof(big) - 1);
	llm_request_init(&rq);
	rq.messages = &m;
	rq.n_messages = 1;
	/* ~1000 tokens do not fit "tiny" (300): "strong" is asked, nothing sent to tiny */
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_string_equal(out.model, "strong");
	llm_response_free(&out);
	b = last_body();
	assert_string_equal(json_string_value(json_object_get(b, "model")), "strong-1");
	json_decref(b);
	assert_int_equal(fake_llm_count(&g_fake), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'context' AND "
				 "model = 'tiny'"), 1);

	/* no model is big enough: reported before sending anything */
	c.role = "tinyonly";
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_CONTEXT);
	assert_non_null(strstr(err_last(), "does not fit model 'tiny'"));
	assert_int_equal(out.context_limit, 300);
	assert_true(out.context_needed > 900);
	llm_response_free(&out);
	assert_int_equal(fake_llm_count(&g_fake), 1);

	/* the provider says so */
	fake_llm_script(&g_fake, "[{\"status\": 400, \"json\": {\"error\": {\"message\": \"This "
				 "model's maximum context length is 4096 tokens\", \"code\": "
				 "\"context_length_exceeded\"}}}]");
	request(&rq);
	c.role = "cheap";
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_CONTEXT);
	assert_non_null(strstr(err_last(), "trim or summarise"));
	llm_response_free(&out);
	llm_service_free(s);
}

/* --- budgets --- */

static void test_budgets(void **state)
{
	llm_service *s = service(1);
	llm_call c = {.role = "strong", .project = "acme", .user = "ann"};
	llm_request rq;
	llm_response out;
	double lim = 0;
	pg_conn *db = g_db;
	(void)state;

	/* strong: 512 out tokens at $30/M alone = $0.01536 worst case */
	assert_int_equal(llm_budget_set(db, "project", "acme", 0.01, NULL), 0);
	request(&rq);
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_BUDGET);
	assert_non_null(strstr(err_last(), "project budget of 'acme'"));
	assert_non_null(strstr(err_last(), "spent $0.0000 of $0.0100 in total"));
	assert_non_null(strstr(err_last(), "orchestrator llm budget extend"));
	assert_null(strstr(err_last(), "resets"));
	assert_string_equal(out.budget.period, "total");
	assert_int_equal(out.budget.resets_at, 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budgets WHERE scope = 'acme' AND "
				 "period = 'total' AND period_start IS NULL"), 1);
	assert_string_equal(out.budget.kind, "project");
	assert_string_equal(out.budget.scope, "acme");
	assert_true(out.budget.limit_usd > 0.0099 && out.budget.limit_usd < 0.0101);
	assert_true(out.budget.needed_usd > 0.015);
	llm_response_free(&out);
	assert_int_equal(fake_llm_count(&g_fake), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'budget'"), 1);

	/* the person extends it: the call goes through and is settled */
	assert_int_equal(llm_budget_extend(db, "project", "acme", 1.0, &lim), 0);
	assert_true(lim > 1.0099 && lim < 1.0101);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	llm_response_free(&out);
	/* 19 * 10/M + 9 * 30/M = 0.00046 */
	assert_int_equal(sql_int("SELECT (spent_usd * 1e6)::int FROM llm_budgets WHERE scope = 'acme'"),
			 460);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_reservations"), 0);

	/* a user budget applies too, and a free local model is never refused */
	assert_int_equal(llm_budget_set(db, "user", "ann", 0.001, NULL), 0);
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_BUDGET);
	assert_string_equal(out.budget.kind, "user");
	llm_response_free(&out);
	c.role = "tiny";
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	llm_response_free(&out);

	/* a default budget for projects that have none */
	llm_service_free(s);
	{
		llm_registry *r = NULL;
		llm_options o;
		memset(&o, 0, sizeof(o));
		o.pool = g_pool;
		o.project_budget = 0.005;
		o.user_budget = -1;
		o.stats_interval_ms = -1;
		assert_int_equal(llm_registry_load_file(&r, fake_llm_models_file(&g_fake, "m2.json",
										 MODELS)), 0);
		assert_int_equal(llm_service_new(&s, r, &o), 0);
	}
	c.role = "strong";
	c.project = "newco";
	c.user = NULL;
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_BUDGET);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budgets WHERE scope = 'newco' AND "
				 "limit_usd = 0.005 AND period = 'total'"), 1);
	llm_service_free(s);

	/* ORCH_LLM_BUDGET_PERIOD: the default budget is per month, and starts
	 * with this month's spending only */
	setenv("ORCH_LLM_BUDGET_PERIOD", "fortnight", 1);
	{
		llm_options o;
		assert_int_equal(llm_options_from_env(&o), ERR_INVALID);
		assert_non_null(strstr(err_last(), "ORCH_LLM_BUDGET_PERIOD=fortnight"));
	}
	setenv("ORCH_LLM_BUDGET_PERIOD", "month", 1);
	{
		llm_registry *r = NULL;
		llm_options o;
		assert_int_equal(llm_options_from_env(&o), 0);
		assert_string_equal(o.budget_period, "month");
		o.pool = g_pool;
		o.project_budget = 1.0;
		o.user_budget = -1;
		o.stats_interval_ms = -1;
		assert_int_equal(llm_registry_load_file(&r, fake_llm_models_file(&g_fake, "m3.json",
										 MODELS)), 0);
		assert_int_equal(llm_service_new(&s, r, &o), 0);
	}
	unsetenv("ORCH_LLM_BUDGET_PERIOD");
	ts_sql(g_db, "INSERT INTO llm_calls (call_id, project, model, endpoint, cost_usd, outcome, "
		     "created_at) VALUES ('old', 'monthly-co', 'strong', 'e', 0.7, 'ok', "
		     "date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 day'), "
		     "('new', 'monthly-co', 'strong', 'e', 0.1, 'ok', now())");
	c.project = "monthly-co";
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budgets WHERE scope = 'monthly-co' AND "
				 "period = 'month' AND limit_usd = 1 AND period_start = "
				 "date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' "
				 "AND spent_usd > 0.1 AND spent_usd < 0.2"), 1);
	llm_service_free(s);
}

/* Writes a budget extension as a step does (an outbox row), in a
 * transaction that commits or not. */
static int extension_row(const char *key, const char *scope, double add, int commit)
{
	json_t *p = llm_budget_extension(key, "project", scope, add);
	char *text = json_dumps(p, 0);
	const char *params[1] = {text};
	int rc = pg_exec(g_db, NULL, "BEGIN", 0, NULL);

	if (rc == 0)
		rc = pg_exec(g_db, NULL, "INSERT INTO outbox (thread_id, run_id, step, kind, payload) "
					 "VALUES (7, 8, 3, '" LLM_BUDGET_EXTEND_KIND "', $1::jsonb)",
			     1, params);
	pg_exec(g_db, NULL, rc == 0 && commit ? "COMMIT" : "ROLLBACK", 0, NULL);
	free(text);
	json_decref(p);
	return rc;
}

/* A budget extension is an effect of a step: it lands with the step's
 * transaction or not at all, and a step written again (run again after a
 * crash, or a decision taken twice) extends once. */
static void test_budget_extension_in_step(void **state)
{
	(void)state;
	ts_sql(g_db, "TRUNCATE llm_budget_grants");
	assert_int_equal(llm_budget_set(g_db, "project", "acme", 0.01, NULL), 0);

	/* a step that does not commit extends nothing */
	assert_int_equal(extension_row("7:budget:1", "acme", 1.0, 0), 0);
	assert_int_equal(sql_int("SELECT (limit_usd * 1000)::int FROM llm_budgets WHERE scope = "
				 "'acme'"), 10);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budget_grants"), 0);

	/* it commits: the limit rises; written again, it does not rise twice */
	assert_int_equal(extension_row("7:budget:1", "acme", 1.0, 1), 0);
	assert_int_equal(extension_row("7:budget:1", "acme", 1.0, 1), 0);
	assert_int_equal(sql_int("SELECT (limit_usd * 1000)::int FROM llm_budgets WHERE scope = "
				 "'acme'"), 1010);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budget_grants WHERE applied AND "
				 "run_id = 8 AND step = 3"), 1);
	/* nothing is left for a relay to deliver */
	assert_int_equal(sql_int("SELECT count(*) FROM outbox WHERE kind = 'llm.budget_extend' AND "
				 "state = 'sent' AND (result->>'granted')::boolean"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM outbox WHERE kind = 'llm.budget_extend' AND "
				 "state <> 'sent'"), 0);

	/* another decision extends again; a scope without a budget stays unlimited */
	assert_int_equal(extension_row("7:budget:2", "acme", 0.5, 1), 0);
	assert_int_equal(sql_int("SELECT (limit_usd * 1000)::int FROM llm_budgets WHERE scope = "
				 "'acme'"), 1510);
	assert_int_equal(extension_row("7:budget:3", "nobody", 0.5, 1), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budgets WHERE scope = 'nobody'"), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budget_grants WHERE scope = 'nobody' "
				 "AND NOT applied"), 1);

	/* an extension by nothing is refused, and so the step's commit with it */
	assert_true(extension_row("7:budget:4", "acme", 0, 1) < 0);
	err_clear();
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budget_grants"), 3);
	ts_sql(g_db, "DELETE FROM outbox WHERE kind = 'llm.budget_extend'");
}

static void test_budget_periods(void **state)
{
	llm_service *s = service(1);
	llm_call c = {.role = "strong", .project = "daily"};
	llm_request rq;
	llm_response out;
	json_t *list, *b;
	char tomorrow[40];
	time_t t = time(NULL) / 86400 * 86400 + 86400;
	struct tm tm;
	(void)state;

	gmtime_r(&t, &tm);
	strftime(tomorrow, sizeof(tomorrow), "resets %Y-%m-%d 00:00 UTC", &tm);
	request(&rq);

	/* a day budget starts at midnight UTC with what the ledger has today */
	assert_int_equal(llm_budget_set(g_db, "project", "daily", 0.02, "day"), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budgets WHERE scope = 'daily' AND period "
				 "= 'day' AND period_start = date_trunc('day', now() AT TIME ZONE "
				 "'UTC') AT TIME ZONE 'UTC' AND spent_usd = 0"), 1);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT (spent_usd * 1e6)::int FROM llm_budgets WHERE scope = "
				 "'daily'"), 460);

	/* the rest of the day's money is gone: refused, saying when it comes back */
	ts_sql(g_db, "UPDATE llm_budgets SET spent_usd = 0.0199 WHERE scope = 'daily'");
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_BUDGET);
	assert_non_null(strstr(err_last(), "project daily spent $0.0199 of $0.0200 today"));
	assert_non_null(strstr(err_last(), tomorrow));
	assert_non_null(strstr(err_last(), "orchestrator llm budget set --project daily --limit "
					   "USD --per day"));
	assert_string_equal(out.budget.period, "day");
	assert_int_equal(out.budget.resets_at, (int64_t)t);
	llm_response_free(&out);
	assert_int_equal(fake_llm_count(&g_fake), 1);

	/* a new day: the call goes through and the day's spending restarts with it; a
	 * reservation of yesterday holds nothing today */
	ts_sql(g_db, "UPDATE llm_budgets SET period_start = period_start - interval '1 day' "
		     "WHERE scope = 'daily'");
	ts_sql(g_db, "INSERT INTO llm_reservations (project, amount_usd, expires_at, created_at) "
		     "VALUES ('daily', 5, now() + interval '1 hour', now() - interval '1 day')");
	assert_int_equal(llm_budget_list(g_db, &list), 0);
	b = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(b, "period")), "day");
	assert_true(json_number_value(json_object_get(b, "spent_usd")) == 0);  /* not rolled yet */
	assert_true(json_number_value(json_object_get(b, "reserved_usd")) == 0);
	assert_non_null(json_string_value(json_object_get(b, "resets_at")));
	json_decref(list);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT (spent_usd * 1e6)::int FROM llm_budgets WHERE scope = "
				 "'daily' AND period_start = date_trunc('day', now() AT TIME ZONE "
				 "'UTC') AT TIME ZONE 'UTC'"), 460);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_reservations"), 1); /* yesterday's */

	/* settling after the period has passed starts the new one with the call's cost */
	ts_sql(g_db, "UPDATE llm_budgets SET period_start = period_start - interval '1 day', "
		     "spent_usd = 0.0199 WHERE scope = 'daily'");
	assert_int_equal(sql_int("SELECT count(*) FROM (SELECT llm_settle(NULL, 'daily', NULL, "
				 "0.001)) x"), 1);
	assert_int_equal(sql_int("SELECT (spent_usd * 1e6)::int FROM llm_budgets WHERE scope = "
				 "'daily' AND period_start = date_trunc('day', now() AT TIME ZONE "
				 "'UTC') AT TIME ZONE 'UTC'"), 1000);

	/* weeks start on Monday, months on the 1st; a new period counts the ledger since its
	 * start; without a period an existing budget keeps its own */
	assert_int_equal(llm_budget_set(g_db, "user", "wendy", 5, "week"), 0);
	assert_int_equal(sql_int("SELECT extract(isodow FROM period_start AT TIME ZONE 'UTC') FROM "
				 "llm_budgets WHERE scope = 'wendy'"), 1);
	assert_int_equal(llm_budget_set(g_db, "project", "daily", 1, "month"), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budgets WHERE scope = 'daily' AND "
				 "period = 'month' AND extract(day FROM period_start AT TIME ZONE "
				 "'UTC') = 1 AND extract(hour FROM period_start AT TIME ZONE 'UTC') "
				 "= 0 AND (spent_usd * 1e6)::int = 920"), 1);
	assert_int_equal(llm_budget_set(g_db, "project", "daily", 2, NULL), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budgets WHERE scope = 'daily' AND "
				 "period = 'month' AND limit_usd = 2"), 1);
	assert_int_equal(llm_budget_set(g_db, "project", "daily", 2, "total"), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_budgets WHERE scope = 'daily' AND "
				 "period = 'total' AND period_start IS NULL"), 1);
	assert_int_equal(llm_budget_set(g_db, "project", "daily", 2, "fortnight"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "total, day, week or month"));
	llm_service_free(s);
}

/* --- keys and redaction --- */

static void redact_test(buf *b)
{
	const char *needle = "TOPSECRET-42";
	char *p;

	while ((p = strstr(b->data, needle)) != NULL)
		memcpy(p, "[REDACTED]--", 12);
}

static void test_keys_and_redaction(void **state)
{
	llm_service *s = service(1);
	llm_message m = {.role = "user", .content = "the password is TOPSECRET-42, keep it"};
	llm_request rq;
	llm_response out;
	json_t *b;
	(void)state;

	redact_set(redact_test);
	llm_request_init(&rq);
	rq.messages = &m;
	rq.n_messages = 1;
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	llm_response_free(&out);
	redact_set(NULL);
	b = last_body();
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(b,
				    "messages"), 0), "content")), "the password is [REDACTED]--, keep it");
	json_decref(b);

	/* the key's variable is unset: nothing is sent, the message names the variable */
	unsetenv("TEST_FAKE_KEY");
	fake_llm_reset(&g_fake);
	assert_int_equal(llm_chat(s, NULL, &rq, &out), ERR_AUTH);
	assert_non_null(strstr(err_last(), "TEST_FAKE_KEY"));
	assert_int_equal(fake_llm_count(&g_fake), 0);
	llm_response_free(&out);
	setenv("TEST_FAKE_KEY", "sk-test-key-123", 1);

	/* the provider refuses the key: the message says where it came from, not what it is */
	fake_llm_script(&g_fake, "[{\"status\": 401, \"json\": {\"error\": {\"message\": "
				 "\"Incorrect API key provided\"}}}]");
	assert_int_equal(llm_chat(s, NULL, &rq, &out), ERR_AUTH);
	assert_non_null(strstr(err_last(), "the variable TEST_FAKE_KEY"));
	assert_null(strstr(err_last(), "sk-test-key-123"));
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE error LIKE '%sk-test%'"), 0);
	llm_service_free(s);
}

/* --- slots end to end: 200 requests from 8 threads, 2 slots --- */

typedef struct worker_arg {
	llm_service *s;
	int idx;
	int ok;
} worker_arg;

static void *worker_main(void *p)
{
	worker_arg *w = p;
	char owner[16];
	llm_call c = {.role = "two", .owner = owner};
	llm_request rq;

	snprintf(owner, sizeof(owner), "t%d", w->idx);
	c.priority = w->idx % 3;
	request(&rq);
	for (int i = 0; i < 25; i++) {
		llm_response out;
		if (llm_chat(w->s, &c, &rq, &out) == 0)
			w->ok++;
		llm_response_free(&out);
	}
	return NULL;
}

static void test_slots_end_to_end(void **state)
{
	llm_service *s = service(1);
	worker_arg w[8];
	pthread_t th[8];
	json_t *st, *status = NULL;
	llm_sched_stats ss[3];
	(void)state;

	fake_llm_post(&g_fake, "/__script", "{\"default\": {\"delay_ms\": 2}, \"record\": false}");
	for (int i = 0; i < 8; i++) {
		w[i].s = s;
		w[i].idx = i;
		w[i].ok = 0;
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].ok, 25);
	}
	st = fake_llm_get(&g_fake, "/__stats");
	assert_int_equal(json_integer_value(json_object_get(st, "requests")), 200);
	assert_true(json_integer_value(json_object_get(st, "max_inflight")) <= 2);
	assert_true(json_integer_value(json_object_get(st, "max_inflight")) >= 1);
	json_decref(st);
	llm_sched_stats_get(llm_service_sched(s), ss, 3);
	assert_int_equal(ss[2].granted, 200);
	assert_true(ss[2].max_in_flight <= 2);

	/* the figures reach the database for `orchestrator status` */
	assert_int_equal(llm_service_save_stats(s), 0);
	assert_int_equal(llm_status(g_db, 60000, &status), 0);
	{
		json_t *sch = json_object_get(status, "schedulers"), *models;
		size_t i;
		json_t *e;
		int found = 0;
		json_array_foreach(sch, i, e) {
			if (strcmp(json_string_value(json_object_get(e, "endpoint")), "narrow") == 0) {
				found = 1;
				assert_int_equal(json_integer_value(json_object_get(e, "granted")), 200);
				assert_int_equal(json_integer_value(json_object_get(e, "slots")), 2);
			}
		}
		assert_true(found);
		models = json_object_get(status, "models");
		assert_int_equal(json_integer_value(json_object_get(json_array_get(models, 0),
								    "calls")), 200);
		assert_int_equal(json_integer_value(json_object_get(json_array_get(models, 0),
								    "tokens_in")), 200 * 19);
	}
	json_decref(status);
	llm_service_free(s);
	/* a stopping service removes its figures */
	assert_int_equal(sql_int("SELECT count(*) FROM llm_sched_stats"), 0);
}

static int stats_rows(void *p)
{
	(void)p;
	return sql_int("SELECT count(*) FROM llm_sched_stats") == 5; /* one per endpoint */
}

static void test_stats_thread(void **state)
{
	llm_registry *r = NULL;
	llm_service *s = NULL;
	llm_options o;
	llm_call c = {.role = "cheap", .project = "figures"};
	llm_request rq;
	llm_response out;
	(void)state;

	memset(&o, 0, sizeof(o));
	o.pool = g_pool;
	o.project_budget = o.user_budget = -1;
	o.stats_interval_ms = 50;
	assert_int_equal(llm_registry_load_file(&r, fake_llm_models_file(&g_fake, "m3.json",
									 MODELS)), 0);
	assert_int_equal(llm_service_new(&s, r, &o), 0);
	request(&rq);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	llm_response_free(&out);
	/* the serving process's thread writes its figures for `status` on its own */
	assert_true(ts_wait_for(stats_rows, NULL, 10000));
	llm_service_free(s);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_sched_stats"), 0);
	/* a reservation never outlives its call */
	assert_int_equal(sql_int("SELECT count(*) FROM llm_reservations"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_completion_and_ledger, before_each),
		cmocka_unit_test_setup(test_streaming, before_each),
		cmocka_unit_test_setup(test_tools, before_each),
		cmocka_unit_test_setup(test_structured_output, before_each),
		cmocka_unit_test_setup(test_schema_fallback, before_each),
		cmocka_unit_test_setup(test_truncated_structured, before_each),
		cmocka_unit_test_setup(test_tool_checks, before_each),
		cmocka_unit_test_setup(test_retries, before_each),
		cmocka_unit_test_setup(test_bad_replies, before_each),
		cmocka_unit_test_setup(test_timeout_and_cancel, before_each),
		cmocka_unit_test_setup(test_idle_timeout, before_each),
		cmocka_unit_test_setup(test_cancel, before_each),
		cmocka_unit_test_setup(test_context_overflow, before_each),
		cmocka_unit_test_setup(test_budgets, before_each),
		cmocka_unit_test_setup(test_budget_periods, before_each),
		cmocka_unit_test_setup(test_budget_extension_in_step, before_each),
		cmocka_unit_test_setup(test_keys_and_redaction, before_each),
		cmocka_unit_test_setup(test_slots_end_to_end, before_each),
		cmocka_unit_test_setup(test_stats_thread, before_each),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
