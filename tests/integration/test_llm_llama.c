/* llm against a real llama-server (../shared/llama: llama.cpp's server with
 * tiny random-weight models): what the server says of itself (model ids,
 * context and slots, which win over the configuration; its slots beside
 * ours in status), its tokenizer for the prompt's size, the factory's
 * schemas as a grammar can take them and the fallback when it refuses one,
 * structured replies and tool calls cut at max_tokens, a tool_choice it
 * ignores, a server that freezes and one that restarts. Skipped, with one
 * line saying so, where llama-server is absent. */
#include "tests/support/llama.h"
#include "tests/support/support.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/http.h"
#include "core/util.h"
#include "llm/llm.h"
#include "nodes/spec.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static ts_llama g_text;  /* tiny.gguf, the '"' token favoured so JSON strings end */
static ts_llama g_tools; /* tiny-tools.gguf: answers tools with tool calls */
static pg_pool *g_pool;
static pg_conn *g_db;
static char g_models[1024];

enum { EP_LLAMA = 0, EP_TOOLS = 1, EP_FROZEN = 2 };

static void write_models(void)
{
	const char *d = getenv("ORCH_DATA_DIR");
	FILE *f;

	snprintf(g_models, sizeof(g_models), "%s/models.json", d && *d ? d : "/tmp");
	f = fopen(g_models, "w");
	if (!f)
		fail_msg("cannot write %s", g_models);
	fprintf(f,
		"{\"endpoints\": {"
		" \"llama\": {\"base_url\": \"%s\", \"slots\": 4, \"idle_timeout\": \"10s\","
		"   \"health_wait\": \"20s\", \"max_retries\": 2, \"retry_base\": \"10ms\","
		"   \"retry_max\": \"20ms\"},"
		" \"tools\": {\"base_url\": \"%s\", \"slots\": 3, \"idle_timeout\": \"10s\","
		"   \"health_wait\": \"30s\", \"max_retries\": 2, \"retry_base\": \"10ms\","
		"   \"retry_max\": \"20ms\"},"
		" \"frozen\": {\"base_url\": \"%s\", \"idle_timeout\": \"1s\", \"health_wait\": \"2s\","
		"   \"max_retries\": 3, \"retry_base\": \"10ms\"}},"
		" \"models\": {"
		" \"tiny\": {\"endpoint\": \"llama\", \"model\": \"tiny\", \"context\": 100000,"
		"   \"max_output\": 512},"
		" \"ghost\": {\"endpoint\": \"llama\", \"model\": \"not-served\", \"context\": 4096,"
		"   \"max_output\": 16},"
		" \"tools\": {\"endpoint\": \"tools\", \"model\": \"tiny\", \"context\": 4096,"
		"   \"max_output\": 200},"
		" \"frozen\": {\"endpoint\": \"frozen\", \"model\": \"tiny\", \"context\": 4096,"
		"   \"max_output\": 16}},"
		" \"roles\": {\"default\": [\"tiny\"]}}",
		g_text.base_url, g_tools.base_url, g_tools.base_url);
	fclose(f);
}

static int setup(void **state)
{
	const char *bias[] = {"-l", "34+4", "-l", "401+4", NULL};
	(void)state;
	ts_llama_start(&g_text, "tiny.gguf", 8192, 2, bias);
	ts_llama_start(&g_tools, "tiny-tools.gguf", 4096, 1, NULL);
	write_models();
	g_pool = ts_pool(4);
	g_db = ts_conn();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ts_llama_stop(&g_text);
	ts_llama_stop(&g_tools);
	pg_conn_close(g_db);
	pg_pool_free(g_pool);
	return 0;
}

static int before_each(void **state)
{
	(void)state;
	ts_sql(g_db, "TRUNCATE llm_calls, llm_budgets, llm_reservations, llm_sched_stats");
	return 0;
}

static llm_service *service(int64_t stats_ms)
{
	llm_registry *r = NULL;
	llm_service *s = NULL;
	llm_options o;

	memset(&o, 0, sizeof(o));
	o.pool = g_pool;
	o.project_budget = o.user_budget = -1;
	o.stats_interval_ms = stats_ms;
	if (llm_registry_load_file(&r, g_models) < 0 || llm_service_new(&s, r, &o) < 0)
		fail_msg("service: %s", err_last());
	return s;
}

static int64_t sql_int(const char *sql)
{
	return ts_sql_int(g_db, sql);
}

static llm_message g_say[2] = {
	{.role = "system", .content = "You are terse."},
	{.role = "user", .content = "Say hello."},
};

static void request(llm_request *rq, int max_tokens)
{
	llm_request_init(rq);
	rq->messages = g_say;
	rq->n_messages = 2;
	rq->max_tokens = max_tokens;
}

/* Runs `orchestrator ARGS` with ORCH_MODELS; its output (2>&1) into out. */
static int cli(buf *out, const char *args)
{
	char cmd[2048], chunk[4096];
	FILE *p;
	size_t n;
	int st;

	buf_reset(out);
	snprintf(cmd, sizeof(cmd), "ORCH_MODELS=%s ORCH_LOG_LEVEL=warn %s %s 2>&1", g_models,
		 ts_bin(), args);
	p = popen(cmd, "r");
	if (!p)
		fail_msg("popen failed");
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		buf_append(out, chunk, n);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* POSTs a raw body to the server's chat completions: its status, the body in out. */
static long raw_post(const ts_llama *l, const char *body, buf *out)
{
	http_client *c = NULL;
	http_request rq;
	http_response resp;
	char url[128];
	const char *hdrs[] = {"Content-Type: application/json", NULL};
	long st;

	snprintf(url, sizeof(url), "%s/chat/completions", l->base_url);
	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.url = url;
	rq.headers = hdrs;
	rq.body = body;
	rq.body_len = strlen(body);
	rq.timeout_ms = 60000;
	if (http_client_new(&c) < 0 || http_do(c, &rq, &resp) < 0)
		fail_msg("POST to llama-server: %s", err_last());
	st = resp.status;
	buf_reset(out);
	buf_puts(out, buf_cstr(&resp.body));
	http_response_free(&resp);
	http_client_free(c);
	return st;
}

/* --- what the server says of itself --- */

static void test_facts(void **state)
{
	llm_service *s = service(-1);
	llm_endpoint_facts f;
	llm_request rq;
	llm_response out;
	llm_call c = {.role = "tiny"};
	buf big, o;
	(void)state;

	llm_service_probe(s);
	assert_int_equal(llm_service_endpoint_facts(s, EP_LLAMA, &f), 0);
	assert_true(f.probed);
	assert_true(f.server.llamacpp);
	assert_true(llm_server_lists(&f.server, "tiny"));
	assert_false(llm_server_lists(&f.server, "not-served"));
	/* 8192 shared by 2 slots: each has 4096; configured 100000 and 4 slots */
	assert_int_equal(f.server.n_ctx, 4096);
	assert_int_equal(f.server.total_slots, 2);
	assert_int_equal(f.slots, 2);

	/* the server's context wins: a prompt of ~6000 tokens is refused before it is
	 * sent, naming the real context */
	buf_init(&big, 0);
	for (int i = 0; i < 1600; i++)
		buf_puts(&big, "word, ");
	{
		llm_message m[1] = {{.role = "user", .content = buf_cstr(&big)}};
		llm_request_init(&rq);
		rq.messages = m;
		rq.n_messages = 1;
		rq.max_tokens = 8;
		assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_CONTEXT);
		assert_non_null(strstr(err_last(), "context 4096 tokens"));
		assert_int_equal(out.context_limit, 4096);
		llm_response_free(&out);
	}
	buf_free(&big);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'context'"), 1);
	llm_service_free(s);

	/* a model id the server does not serve: llama-server answers anyway, so it is said */
	buf_init(&o, 0);
	assert_int_equal(cli(&o, "llm test --role ghost Hi"), 0);
	if (!strstr(buf_cstr(&o), "does not list model id 'not-served'") ||
	    !strstr(buf_cstr(&o), "llama-server answers any id"))
		fail_msg("no warning about the model id:\n%s", buf_cstr(&o));
	buf_free(&o);
}

/* The server's slots beside ours, in the figures `status` shows */
static int server_figures(void *p)
{
	(void)p;
	return sql_int("SELECT count(*) FROM llm_sched_stats WHERE endpoint = 'llama' AND "
		       "server_slots = 2 AND server_ctx = 4096 AND slots = 2") == 1;
}

static void test_status_slots(void **state)
{
	llm_service *s = service(50);
	llm_request rq;
	llm_response out;
	buf o;
	(void)state;

	request(&rq, 4);
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	llm_response_free(&out);
	assert_true(ts_wait_for(server_figures, NULL, 15000));
	buf_init(&o, 0);
	assert_int_equal(cli(&o, "status"), 0);
	if (!strstr(buf_cstr(&o), "server: 0 of 2 slots busy, 4096 tokens of context each") &&
	    !strstr(buf_cstr(&o), "server: 1 of 2 slots busy, 4096 tokens of context each"))
		fail_msg("status does not show the server's slots:\n%s", buf_cstr(&o));
	buf_free(&o);
	llm_service_free(s);
}

/* The prompt's size is the server's own count (/tokenize): bytes / 4 is far below */
static void test_token_count(void **state)
{
	llm_service *s = service(-1);
	const json_t *plan = nd_schema("plan");
	char *text = json_dumps(plan, JSON_INDENT(2));
	llm_message m[2] = {{.role = "system", .content = "Check this JSON schema and the code."},
			    {.role = "user", .content = text}};
	llm_request rq;
	llm_response out;
	int64_t real, ours, quarter;
	(void)state;

	llm_request_init(&rq);
	rq.messages = m;
	rq.n_messages = 2;
	rq.max_tokens = 4;
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_false(out.usage_estimated);
	real = out.tokens_in;
	ours = out.context_needed;
	quarter = (int64_t)(strlen(text) + strlen(m[0].content)) / 4;
	print_message("prompt tokens: server %lld, counted %lld, bytes/4 %lld, fallback %lld\n",
		      (long long)real, (long long)ours, (long long)quarter,
		      (long long)llm_wire_estimate_tokens(&rq));
	assert_true(ours >= real - real / 10 && ours <= real + real / 10 + 8);
	assert_true(quarter < real * 8 / 10);
	llm_response_free(&out);
	free(text);
	llm_service_free(s);
}

/* --- structured output --- */

/* Every schema of the factory is taken by the server's grammar converter as
 * sent; as written, the plan's is refused (its readme may be 20000 long) */
static void test_factory_schemas(void **state)
{
	static const char *const names[] = {"brainstorm", "spec", "plan", "review"};
	llm_service *s = service(-1);
	llm_call c = {.role = "default", .project = "schemas"};
	llm_message m[2] = {{.role = "system", .content = "Answer with JSON."},
			    {.role = "user", .content = "A word counter for text files."}};
	int ok = 0;
	buf raw, body;
	(void)state;

	for (size_t i = 0; i < 4; i++) {
		llm_request rq;
		llm_response out;
		int rc;
		llm_request_init(&rq);
		rq.messages = m;
		rq.n_messages = 2;
		rq.json_schema = nd_schema(names[i]);
		rq.schema_name = names[i];
		rq.max_tokens = 400;
		rc = llm_chat(s, &c, &rq, &out);
		print_message("%s: %s\n", names[i], rc == 0 ? "a reply that passes our check"
								: err_last());
		if (rc == 0) {
			ok++;
			assert_non_null(out.json);
		} else {
			/* whatever the random model writes, a clear error after a re-ask */
			assert_int_equal(rc, ERR_PARSE);
			assert_non_null(strstr(err_last(), "asked twice"));
		}
		llm_response_free(&out);
	}
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome NOT IN ('ok', "
				 "'truncated', 'invalid_output')"), 0);
	assert_true(ok >= 1);

	/* the fact behind it: the plan schema as written is refused */
	buf_init(&raw, 0);
	buf_init(&body, 0);
	{
		char *sc = json_dumps(nd_schema("plan"), JSON_COMPACT);
		buf_printf(&body, "{\"model\":\"tiny\",\"max_tokens\":4,\"messages\":[{\"role\":"
				  "\"user\",\"content\":\"go\"}],\"response_format\":{\"type\":"
				  "\"json_schema\",\"json_schema\":{\"name\":\"plan\",\"schema\":%s}}}",
			   sc);
		free(sc);
	}
	assert_int_equal(raw_post(&g_text, buf_cstr(&body), &raw), 400);
	assert_non_null(strstr(buf_cstr(&raw), "failed to parse grammar"));
	buf_free(&raw);
	buf_free(&body);
	llm_service_free(s);
}

/* A schema the converter refuses even as sent (a back-reference): sent
 * simplified instead, remembered; our check still holds the pattern */
static void test_schema_fallback(void **state)
{
	llm_service *s = service(-1);
	json_t *schema = ts_json("{\"type\":\"object\",\"required\":[\"code\"],\"additionalProperties\""
				 ":false,\"properties\":{\"code\":{\"type\":\"string\",\"pattern\":"
				 "\"^(ab)\\\\1$\"}}}");
	llm_request rq;
	llm_response out;
	int rc;
	(void)state;

	request(&rq, 64);
	rq.json_schema = schema;
	rc = llm_chat(s, NULL, &rq, &out);
	assert_true(rc == 0 || rc == ERR_PARSE);
	if (rc == 0)
		assert_string_equal(json_string_value(json_object_get(out.json, "code")), "abab");
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'schema_refused' "
				 "AND http_status = 400 AND error LIKE '%failed to parse grammar%'"),
			 1);
	assert_true(sql_int("SELECT count(*) FROM llm_calls WHERE outcome <> 'schema_refused'") >= 1);
	/* the next call goes simplified at once */
	ts_sql(g_db, "TRUNCATE llm_calls");
	rc = llm_chat(s, NULL, &rq, &out);
	assert_true(rc == 0 || rc == ERR_PARSE);
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'schema_refused'"),
			 0);
	json_decref(schema);
	llm_service_free(s);
}

/* A structured reply cut at max_tokens: said so, asked again with more room, never
 * "the prompt does not fit" */
static void test_truncated_structured(void **state)
{
	llm_service *s = service(-1);
	llm_request rq;
	llm_response out;
	(void)state;

	request(&rq, 12);
	rq.json_schema = nd_schema("spec");
	assert_int_equal(llm_chat(s, NULL, &rq, &out), ERR_PARSE);
	assert_non_null(strstr(err_last(), "cut off at the token limit (24 tokens)"));
	assert_non_null(strstr(err_last(), "raise the model's max_output"));
	assert_null(strstr(err_last(), "does not fit"));
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'truncated'"), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls"), 2);
	llm_service_free(s);
}

/* Streamed and whole replies: usage from the server; a whole reply is asked for
 * as a stream all the same */
typedef struct seen {
	size_t n, bytes;
} seen;

static int on_delta(const char *t, size_t len, void *u)
{
	seen *d = u;
	(void)t;
	d->n++;
	d->bytes += len;
	return 0;
}

static void test_stream(void **state)
{
	llm_service *s = service(-1);
	llm_request rq;
	llm_response out;
	seen d = {0, 0};
	(void)state;

	request(&rq, 16);
	rq.stream = 1;
	rq.on_delta = on_delta;
	rq.udata = &d;
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_true(d.n >= 1);
	assert_int_equal(d.bytes, out.content_len);
	assert_false(out.usage_estimated);
	assert_true(out.tokens_out >= 1 && out.tokens_out <= 16);
	llm_response_free(&out);
	request(&rq, 16);
	assert_int_equal(llm_chat(s, NULL, &rq, &out), 0);
	assert_false(out.usage_estimated);
	assert_true(out.finish == LLM_FINISH_LENGTH || out.finish == LLM_FINISH_STOP);
	llm_response_free(&out);
	llm_service_free(s);
}

/* --- tool calls --- */

static json_t *g_bash_params;
static llm_tool g_tools_def[2];

static void tools_request(llm_request *rq, const char *choice, int max_tokens, json_t *extra)
{
	static llm_message m[2] = {{.role = "system", .content = "You run shell commands."},
				   {.role = "user", .content = "List the files, then submit."}};
	if (!g_bash_params)
		g_bash_params = ts_json("{\"type\":\"object\",\"properties\":{\"command\":{\"type\":"
					"\"string\"}},\"required\":[\"command\"]}");
	g_tools_def[0] = (llm_tool){"bash", "Run one shell command", g_bash_params};
	g_tools_def[1] = (llm_tool){"submit", "Submit the work", NULL};
	llm_request_init(rq);
	rq->messages = m;
	rq->n_messages = 2;
	rq->tools = g_tools_def;
	rq->n_tools = 2;
	rq->tool_choice = choice;
	rq->max_tokens = max_tokens;
	rq->extra = extra;
}

/* Cut inside a call: told, asked again, the cut call never sent back (which the
 * server answers with a 500); a whole call is */
static void test_tool_call_truncated(void **state)
{
	llm_service *s = service(-1);
	llm_call c = {.role = "tools"};
	int cut = 0;
	buf raw;
	(void)state;

	for (int seed = 1; seed <= 8 && !cut; seed++) {
		llm_request rq;
		llm_response out;
		json_t *extra = json_pack("{s:i}", "seed", seed);
		int rc;
		tools_request(&rq, "required", 30, extra);
		rc = llm_chat(s, &c, &rq, &out);
		assert_true(rc == 0 || rc == ERR_PARSE);
		if (rc == 0) {
			json_t *args = NULL;
			assert_true(out.n_tool_calls >= 1);
			assert_int_equal(llm_tool_call_args(&out.tool_calls[0], &args), 0);
			json_decref(args);
		} else {
			assert_non_null(strstr(err_last(), "cut off at the token limit (30 tokens)"));
		}
		llm_response_free(&out);
		json_decref(extra);
		cut = sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'truncated'") > 0;
	}
	assert_true(cut);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE http_status >= 500"), 0);

	/* the fact behind it: a cut call sent back is a 500 */
	buf_init(&raw, 0);
	assert_int_equal(raw_post(&g_tools,
		"{\"model\":\"tiny\",\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":"
		"\"ls\"},{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"a1\","
		"\"type\":\"function\",\"function\":{\"name\":\"bash\",\"arguments\":\"{ \\\"comm"
		"\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"a1\",\"content\":\"not run\"}]}",
		&raw), 500);
	assert_non_null(strstr(buf_cstr(&raw), "Failed to parse tool call arguments"));
	buf_free(&raw);

	/* the next turn with a whole call sent back is answered */
	{
		llm_tool_call tc = {"c1", "bash", "{\"command\":\"ls\"}"};
		llm_message m[4] = {{.role = "system", .content = "You run shell commands."},
				    {.role = "user", .content = "List the files."},
				    {.role = "assistant", .tool_calls = &tc, .n_tool_calls = 1},
				    {.role = "tool", .tool_call_id = "c1", .content = "a.c b.c"}};
		llm_request rq;
		llm_response out;
		tools_request(&rq, "auto", 60, NULL);
		rq.messages = m;
		rq.n_messages = 4;
		assert_true(llm_chat(s, &c, &rq, &out) == 0 || err_last_code() == ERR_PARSE);
		llm_response_free(&out);
	}
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE http_status >= 500"), 0);
	llm_service_free(s);
}

/* tool_choice naming a tool is ignored by llama-server: the name is checked here */
static void test_tool_choice_named(void **state)
{
	llm_service *s = service(-1);
	llm_call c = {.role = "tools"};
	int wrong = 0;
	(void)state;

	for (int seed = 1; seed <= 8 && !wrong; seed++) {
		llm_request rq;
		llm_response out;
		json_t *extra = json_pack("{s:i}", "seed", seed);
		int rc;
		tools_request(&rq, "submit", 200, extra);
		rc = llm_chat(s, &c, &rq, &out);
		assert_true(rc == 0 || rc == ERR_PARSE);
		for (size_t i = 0; rc == 0 && i < out.n_tool_calls; i++)
			assert_string_equal(out.tool_calls[i].name, "submit");
		assert_true(rc == 0 ? out.n_tool_calls >= 1 : 1);
		llm_response_free(&out);
		json_decref(extra);
		wrong = sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'invalid_output' AND "
				"error LIKE '%where ''submit'' was asked for%'") > 0;
	}
	assert_true(wrong);
	llm_service_free(s);
}

/* --- a server that freezes, one that restarts --- */

/* Frozen (SIGSTOP: it keeps its port and answers nothing): a whole reply asked for
 * ends after the idle timeout, the server is waited for up to its health_wait, then a
 * clear error, in seconds rather than the 10-minute total timeout; thawed, it works */
static void test_frozen_server(void **state)
{
	llm_service *s = service(-1);
	llm_call c = {.role = "frozen"};
	llm_request rq;
	llm_response out;
	int64_t t0;
	(void)state;

	request(&rq, 8);
	llm_service_probe(s);
	ts_llama_freeze(&g_tools, 1);
	t0 = util_mono_ms();
	assert_int_equal(llm_chat(s, &c, &rq, &out), ERR_HTTP);
	assert_true(util_mono_ms() - t0 < 60000);
	assert_non_null(strstr(err_last(), "the server has not been up for "));
	assert_non_null(strstr(err_last(), "raise the endpoint's health_wait"));
	assert_non_null(strstr(err_last(), "sent nothing for 1 s after the request"));
	llm_response_free(&out);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'stalled'"), 1);
	ts_llama_freeze(&g_tools, 0);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	llm_response_free(&out);
	llm_service_free(s);
}

static void *restart_later(void *p)
{
	return (void *)(intptr_t)ts_llama_restart(p, 3000);
}

/* Restarted (down for ~3 s): the retries are not spent at once; the call waits for
 * /health and the next attempt, which costs no retry, is answered */
static void test_restart(void **state)
{
	llm_service *s = service(-1);
	llm_call c = {.role = "tools"};
	llm_request rq;
	llm_response out;
	llm_endpoint_facts f;
	pthread_t th;
	void *res;
	(void)state;

	request(&rq, 8);
	llm_service_probe(s);
	ts_llama_kill(&g_tools);
	pthread_create(&th, NULL, restart_later, &g_tools);
	assert_int_equal(llm_chat(s, &c, &rq, &out), 0);
	assert_int_equal(out.attempts, 2);
	llm_response_free(&out);
	pthread_join(th, &res);
	assert_int_equal((intptr_t)res, 0);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'network'"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM llm_calls WHERE outcome = 'ok'"), 1);
	assert_int_equal(llm_service_endpoint_facts(s, EP_TOOLS, &f), 0);
	assert_false(f.down);
	llm_service_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_facts, before_each),
		cmocka_unit_test_setup(test_status_slots, before_each),
		cmocka_unit_test_setup(test_token_count, before_each),
		cmocka_unit_test_setup(test_factory_schemas, before_each),
		cmocka_unit_test_setup(test_schema_fallback, before_each),
		cmocka_unit_test_setup(test_truncated_structured, before_each),
		cmocka_unit_test_setup(test_stream, before_each),
		cmocka_unit_test_setup(test_tool_call_truncated, before_each),
		cmocka_unit_test_setup(test_tool_choice_named, before_each),
		cmocka_unit_test_setup(test_frozen_server, before_each),
		cmocka_unit_test_setup(test_restart, before_each),
	};
	char why[512];
	int rc;

	ts_init();
	if (!ts_llama_dir(why, sizeof(why)))
		return ts_llama_skip("test_llm_llama", why);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	json_decref(g_bash_params);
	return rc;
}
