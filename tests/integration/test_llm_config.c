/* The model configuration stored in the database (llm/config.h): a change
 * validated before it is stored (and refused with its reason), audited, and
 * put in force in a running service within seconds; the providers' quirks
 * (llm/quirks.h) against the fake server made to refuse what each provider
 * refuses. */
#include "tests/support/fake_llm.h"
#include "tests/support/support.h"

#include "core/embed.h"
#include "core/err.h"
#include "core/util.h"
#include "llm/config.h"
#include "llm/llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

static fake_llm g_fake;

static int setup(void **state)
{
	(void)state;
	ts_init();
	fake_llm_start(&g_fake);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_llm_stop(&g_fake);
	return 0;
}

static int secret_fn(const char *name, buf *out, void *udata)
{
	(void)udata;
	if (strcmp(name, "good-key") == 0)
		return buf_puts(out, "sk-test-good-key-123");
	return err_set(ERR_NOTFOUND, "no secret %s", name);
}

static json_t *J(const char *fmt, ...)
{
	char text[4096];
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	j = json_loads(text, JSON_DECODE_ANY, NULL);
	if (!j)
		fail_msg("bad test JSON: %s", text);
	return j;
}

/* Applies a change as "test"; returns the code, the message in err_last. */
static int change(pg_conn *c, const char *kind, const char *name, json_t *value,
		  const llm_registry *seed, llm_config_result *res)
{
	llm_config_change ch;
	llm_config_result tmp;
	int rc;

	memset(&ch, 0, sizeof(ch));
	ch.kind = kind;
	ch.name = name;
	ch.value = value;
	ch.actor = "test";
	ch.expect_version = -1;
	rc = llm_config_apply(c, &ch, seed, res ? res : &tmp);
	json_decref(value);
	return rc;
}

static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;
	struct sockaddr_in a = {0};
	socklen_t len = sizeof(a);

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Every refused change stores nothing; the first stored one copies the
 * process's configuration in; every stored one has its audit row. */
static void test_validation(void **state)
{
	pg_conn *c = ts_conn();
	llm_registry *seed = NULL;
	llm_config_result res;
	char url[128];
	int64_t v0;
	(void)state;

	llm_set_secret_resolver(secret_fn, NULL);
	fake_llm_reset(&g_fake);
	fake_llm_post(&g_fake, "/__models", "{\"ids\": [\"fake-small\", \"fake-big\"]}");
	setenv("LLM_BASE_URL", g_fake.base_url, 1);
	setenv("LLM_MODEL", "fake-small", 1);
	unsetenv("ORCH_MODELS");
	unsetenv("LLM_API_KEY");
	assert_int_equal(llm_registry_load(&seed), 0);
	v0 = ts_sql_int(c, "SELECT version FROM llm_config");

	/* the whole configuration must load: a model on an endpoint that does not exist */
	assert_int_equal(change(c, "model", "big", J("{\"endpoint\": \"nowhere\", \"model\": "
						     "\"fake-big\"}"), seed, NULL), ERR_INVALID);
	assert_non_null(strstr(err_last(), "endpoint 'nowhere' is not defined"));
	/* a quirk the provider refuses: GPT-5 takes only its default temperature */
	assert_int_equal(change(c, "model", "big", J("{\"endpoint\": \"default\", \"model\": "
						     "\"fake-big\", \"provider\": \"openai-reasoning\", "
						     "\"temperature\": 0.2}"), seed, NULL), ERR_INVALID);
	assert_non_null(strstr(err_last(), "takes only the model's default temperature"));
	/* Gemini 3 Pro thinks low or high */
	assert_int_equal(change(c, "model", "big", J("{\"endpoint\": \"default\", \"model\": "
						     "\"fake-big\", \"provider\": \"gemini-3\", "
						     "\"reasoning_effort\": \"medium\"}"), seed, NULL),
			 ERR_INVALID);
	assert_non_null(strstr(err_last(), "low,high"));
	/* a model id the server does not list */
	assert_int_equal(change(c, "model", "big", J("{\"endpoint\": \"default\", \"model\": "
						     "\"fake-huge\"}"), seed, NULL), ERR_NOTFOUND);
	assert_non_null(strstr(err_last(), "does not serve model id 'fake-huge'"));
	/* an endpoint that does not answer */
	snprintf(url, sizeof(url), "{\"base_url\": \"http://127.0.0.1:%d/v1\"}", closed_port());
	assert_int_equal(change(c, "endpoint", "gone", J("%s", url), seed, NULL), ERR_HTTP);
	assert_non_null(strstr(err_last(), "does not answer"));
	/* keys from the secrets store only, and readable */
	snprintf(url, sizeof(url), "{\"base_url\": \"%s\", \"api_key_env\": \"OPENAI_KEY\"}",
		 g_fake.base_url);
	assert_int_equal(change(c, "endpoint", "cloud", J("%s", url), seed, NULL), ERR_INVALID);
	assert_non_null(strstr(err_last(), "orchestrator secrets set OPENAI_KEY"));
	snprintf(url, sizeof(url), "{\"base_url\": \"%s\", \"api_key_secret\": \"missing\"}",
		 g_fake.base_url);
	assert_int_equal(change(c, "endpoint", "cloud", J("%s", url), seed, NULL), ERR_AUTH);
	assert_non_null(strstr(err_last(), "orchestrator secrets set missing"));
	assert_int_equal(ts_sql_int(c, "SELECT version FROM llm_config"), v0);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM llm_config_audit"), 0);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM llm_config_endpoints"), 0);

	/* the first good change: the environment's configuration is copied in, then the change */
	assert_int_equal(change(c, "model", "big", J("{\"endpoint\": \"default\", \"model\": "
						     "\"fake-big\", \"price_in\": 2}"), seed, &res), 0);
	assert_true(res.seeded);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM llm_config_models"), 2);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM llm_config_audit WHERE action = 'seed'"),
			 1);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM llm_config_audit WHERE action = 'set' "
				       "AND kind = 'model' AND name = 'big' AND old IS NULL AND "
				       "new->>'model' = 'fake-big'"), 1);
	snprintf(url, sizeof(url), "{\"base_url\": \"%s\", \"api_key_secret\": \"good-key\"}",
		 g_fake.base_url);
	assert_int_equal(change(c, "endpoint", "cloud", J("%s", url), seed, &res), 0);
	assert_false(res.seeded);
	/* the key went in the probe's header, never into the stored rows or the audit */
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM llm_config_audit WHERE "
				       "new::text LIKE '%sk-test-good%' OR old::text LIKE '%sk-test%'"), 0);
	assert_int_equal(change(c, "role", "architect", J("[\"fake-small\", \"big\"]"), seed, NULL),
			 0);
	/* a model a role uses cannot go */
	assert_int_equal(change(c, "model", "big", NULL, seed, NULL), ERR_INVALID);
	assert_non_null(strstr(err_last(), "model 'big' is not defined"));
	/* old -> new */
	assert_int_equal(change(c, "role", "architect", J("[\"big\"]"), seed, NULL), 0);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM llm_config_audit WHERE kind = 'role' AND "
				       "old = '[\"fake-small\", \"big\"]'::jsonb AND new = '[\"big\"]'::jsonb"),
			 1);
	/* a form edited from an old version is refused */
	{
		llm_config_change ch = {"budgets", NULL, NULL, 1, "test", 0};
		json_t *b = J("{\"project\": 7}");
		ch.value = b;
		assert_int_equal(llm_config_apply(c, &ch, seed, &res), ERR_CONFLICT);
		ch.expect_version = ts_sql_int(c, "SELECT version FROM llm_config");
		assert_int_equal(llm_config_apply(c, &ch, seed, &res), 0);
		json_decref(b);
	}
	/* prompt templates: only a built-in prompt's placeholders */
	assert_int_equal(change(c, "prompt", "nodes/prompts/architect_system.md",
				J("\"Plan it, {{nonsense}}\""), seed, NULL), ERR_INVALID);
	assert_non_null(strstr(err_last(), "{{nonsense}}"));
	assert_int_equal(change(c, "prompt", "nodes/prompts/nothing.md", J("\"x\""), seed, NULL),
			 ERR_NOTFOUND);
	/* the stored document loads */
	{
		llm_registry *r = NULL;
		int64_t v = 0;
		const int *models;
		int n;
		assert_int_equal(llm_config_load(c, &r, &v), 0);
		assert_non_null(r);
		assert_int_equal(llm_registry_route(r, "architect", &models, &n), 0);
		assert_string_equal(llm_registry_model(r, models[0])->id, "fake-big");
		llm_registry_free(r);
	}
	llm_registry_free(seed);
	pg_conn_close(c);
}

/* Counts the recorded requests whose body names model id `id`. */
static int requests_for(const char *id)
{
	json_t *reqs = fake_llm_requests(&g_fake), *r;
	size_t i;
	int n = 0;

	json_array_foreach(reqs, i, r) {
		const char *m = json_string_value(json_object_get(json_object_get(r, "body"), "model"));
		if (m && strcmp(m, id) == 0)
			n++;
	}
	json_decref(reqs);
	return n;
}

static int ask(llm_service *s, const char *role)
{
	llm_message m = {"user", "hello", NULL, NULL, NULL, 0};
	llm_request rq;
	llm_response out;
	llm_call call = {0};
	int rc;

	llm_request_init(&rq);
	rq.messages = &m;
	rq.n_messages = 1;
	call.role = role;
	rc = llm_chat(s, &call, &rq, &out);
	llm_response_free(&out);
	return rc;
}

typedef struct reload_wait {
	llm_service *s;
	int64_t version;
} reload_wait;

static int version_is(void *udata)
{
	reload_wait *w = udata;
	return llm_service_version(w->s) == w->version;
}

/* A running service follows the stored configuration: a change is in force
 * within seconds (NOTIFY), the next call uses it; clearing goes back to the
 * environment; prompt templates follow too. */
static void test_reload(void **state)
{
	pg_conn *c = ts_conn();
	llm_registry *reg = NULL;
	llm_service *s = NULL;
	llm_config_result res;
	reload_wait w;
	int64_t t0;
	buf text;
	(void)state;

	llm_set_secret_resolver(secret_fn, NULL);
	fake_llm_reset(&g_fake);
	setenv("LLM_BASE_URL", g_fake.base_url, 1);
	setenv("LLM_MODEL", "fake-small", 1);
	unsetenv("ORCH_MODELS");
	ts_sql(c, "UPDATE llm_config SET stored = false");
	ts_sql(c, "DELETE FROM llm_config_roles; DELETE FROM llm_config_models; "
		  "DELETE FROM llm_config_endpoints; DELETE FROM prompt_templates");
	assert_int_equal(llm_registry_load(&reg), 0);
	assert_int_equal(llm_service_new(&s, reg, NULL), 0);
	/* a long poll: the notice, not the poll, must bring the change */
	assert_int_equal(llm_config_watch_start(s, ts_db_url(), 60000), 0);
	assert_int_equal(llm_service_version(s), 0);
	assert_int_equal(ask(s, "architect"), 0);
	assert_int_equal(requests_for("fake-small"), 1);

	assert_int_equal(llm_registry_load(&reg), 0);
	assert_int_equal(change(c, "model", "big", J("{\"endpoint\": \"default\", \"model\": "
						     "\"fake-big\"}"), reg, NULL), 0);
	assert_int_equal(change(c, "role", "architect", J("[\"big\"]"), reg, &res), 0);
	llm_registry_free(reg);
	t0 = util_mono_ms();
	w.s = s;
	w.version = res.version;
	assert_true(ts_wait_for(version_is, &w, 10000));
	printf("# a change was in force %lld ms after it was stored\n",
	       (long long)(util_mono_ms() - t0));
	assert_int_equal(ask(s, "architect"), 0);
	assert_int_equal(requests_for("fake-big"), 1);
	assert_int_equal(ask(s, "reviewer"), 0); /* other roles: the default */
	assert_int_equal(requests_for("fake-small"), 2);

	/* a prompt template stored is what the nodes read */
	assert_int_equal(change(c, "prompt", "nodes/prompts/reviewer_system.md",
				J("\"Review it kindly.\""), NULL, &res), 0);
	w.version = res.version;
	assert_true(ts_wait_for(version_is, &w, 10000));
	buf_init(&text, 0);
	assert_int_equal(embed_text("nodes/prompts/reviewer_system.md", &text), 0);
	assert_string_equal(buf_cstr(&text), "Review it kindly.");
	buf_free(&text);

	/* cleared: back to the environment */
	{
		int64_t v = 0;
		assert_int_equal(llm_config_clear(c, "test", &v), 0);
		w.version = 0;
		assert_true(ts_wait_for(version_is, &w, 10000));
		assert_int_equal(ask(s, "architect"), 0);
		assert_int_equal(requests_for("fake-small"), 3);
	}
	llm_service_free(s); /* stops the watcher first */
	pg_conn_close(c);
}

/* One call through a model of `provider` with the given parameters,
 * against the fake refusing what that provider refuses. */
static int quirk_call(const char *provider, const char *fake_as, const char *params,
		      const char *const *stop, double temperature, char *err, size_t cap)
{
	char models[2048];
	llm_registry *r = NULL;
	llm_service *s = NULL;
	llm_message m = {"user", "hello", NULL, NULL, NULL, 0};
	llm_request rq;
	llm_response out;
	llm_call call = {0};
	char body[128];
	int rc;

	snprintf(body, sizeof(body), "{\"name\": \"%s\"}", fake_as);
	fake_llm_reset(&g_fake);
	fake_llm_post(&g_fake, "/__provider", body);
	snprintf(models, sizeof(models),
		 "{\"endpoints\": {\"p\": {\"base_url\": \"%s\", \"max_retries\": 0, "
		 "\"stream_replies\": false}}, \"models\": {\"m\": {\"endpoint\": \"p\", "
		 "\"model\": \"big-model\", \"context\": 200000, \"max_output\": 1000, "
		 "\"provider\": \"%s\"%s%s}}}", g_fake.base_url, provider, params[0] ? ", " : "", params);
	if (llm_registry_load_text(&r, models, "quirks") < 0)
		fail_msg("models: %s", err_last());
	assert_int_equal(llm_service_new(&s, r, NULL), 0);
	llm_request_init(&rq);
	rq.messages = &m;
	rq.n_messages = 1;
	rq.stop = stop;
	rq.temperature = temperature;
	call.role = "m";
	rc = llm_chat(s, &call, &rq, &out);
	snprintf(err, cap, "%s", rc < 0 ? err_last() : "");
	llm_response_free(&out);
	llm_service_free(s);
	return rc;
}

static json_t *last_body(void)
{
	json_t *reqs = fake_llm_requests(&g_fake);
	json_t *b = json_incref(json_object_get(json_array_get(reqs, json_array_size(reqs) - 1),
						"body"));
	json_decref(reqs);
	return b;
}

/* Each provider's quirks against the fake made to refuse what that
 * provider refuses: without the profile the call fails with the provider's
 * own reason; with it, the body is what the provider takes. */
static void test_quirks(void **state)
{
	static const char *const stop[] = {"END", NULL};
	char err[1024];
	json_t *b;
	(void)state;

	/* GPT-5: max_tokens, temperature and stop refused, reasoning_effort taken */
	assert_int_equal(quirk_call("openai", "openai-reasoning", "", stop, 0.3, err, sizeof(err)),
			 ERR_HTTP);
	assert_non_null(strstr(err, "Unsupported parameter: 'max_tokens' is not supported"));
	assert_int_equal(quirk_call("openai-reasoning", "openai-reasoning",
				    "\"reasoning_effort\": \"high\"", stop, 0.3, err, sizeof(err)), 0);
	b = last_body();
	assert_true(json_integer_value(json_object_get(b, "max_completion_tokens")) == 1000);
	assert_null(json_object_get(b, "max_tokens"));
	assert_null(json_object_get(b, "temperature"));
	assert_null(json_object_get(b, "stop"));
	assert_string_equal(json_string_value(json_object_get(b, "reasoning_effort")), "high");
	json_decref(b);

	/* Gemini 3 Pro: an effort it does not take is refused in its own form (a list) */
	assert_int_equal(quirk_call("generic", "gemini-3", "\"reasoning_effort\": \"medium\"", NULL,
				    -1, err, sizeof(err)), ERR_HTTP);
	assert_non_null(strstr(err, "Thinking level MEDIUM is not supported for this model"));
	assert_non_null(strstr(err, "INVALID_ARGUMENT"));
	assert_int_equal(quirk_call("gemini-3", "gemini-3", "\"reasoning_effort\": \"high\"", NULL,
				    -1, err, sizeof(err)), 0);
	b = last_body();
	assert_string_equal(json_string_value(json_object_get(b, "reasoning_effort")), "high");
	json_decref(b);

	/* Claude Opus 4.x: temperature and top_p never together, at most 1; thinking */
	assert_int_equal(quirk_call("generic", "claude", "\"top_p\": 0.9", NULL, 0.5, err,
				    sizeof(err)), ERR_HTTP);
	assert_non_null(strstr(err, "`temperature` and `top_p` cannot both be specified"));
	assert_int_equal(quirk_call("claude", "claude", "\"top_p\": 0.9", NULL, 1.5, err,
				    sizeof(err)), 0);
	b = last_body();
	assert_true(json_number_value(json_object_get(b, "temperature")) == 1.0);
	assert_null(json_object_get(b, "top_p"));
	json_decref(b);
	assert_int_equal(quirk_call("claude", "claude", "\"reasoning_effort\": \"low\"", NULL, 0.5,
				    err, sizeof(err)), 0);
	b = last_body();
	assert_null(json_object_get(b, "temperature")); /* not while thinking */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "thinking"),
							    "budget_tokens")), 1024);
	assert_true(json_integer_value(json_object_get(b, "max_tokens")) > 1024);
	json_decref(b);

	/* through OpenRouter: its own wrapping of Anthropic's refusal, its form of effort */
	assert_int_equal(quirk_call("generic", "openrouter-claude", "\"top_p\": 0.9", NULL, 0.5,
				    err, sizeof(err)), ERR_HTTP);
	assert_non_null(strstr(err, "Provider returned error: `temperature` and `top_p`"));
	assert_int_equal(quirk_call("generic", "openrouter-claude", "\"reasoning_effort\": \"high\"",
				    NULL, -1, err, sizeof(err)), ERR_HTTP);
	assert_int_equal(quirk_call("openrouter-claude", "openrouter-claude",
				    "\"reasoning_effort\": \"high\", \"top_p\": 0.9", NULL, 0.5, err,
				    sizeof(err)), 0);
	b = last_body();
	assert_string_equal(json_string_value(json_object_get(json_object_get(b, "reasoning"),
							      "effort")), "high");
	assert_null(json_object_get(b, "reasoning_effort"));
	json_decref(b);
}

/* A change with --try makes a test call through the quirks: a model whose
 * provider profile is wrong is refused with the provider's own reason. */
static void test_try_call(void **state)
{
	pg_conn *c = ts_conn();
	char ep[256];
	int rc;
	(void)state;

	fake_llm_reset(&g_fake);
	fake_llm_post(&g_fake, "/__provider", "{\"name\": \"openai-reasoning\"}");
	ts_sql(c, "UPDATE llm_config SET stored = false");
	ts_sql(c, "DELETE FROM llm_config_roles; DELETE FROM llm_config_models; "
		  "DELETE FROM llm_config_endpoints");
	snprintf(ep, sizeof(ep), "{\"base_url\": \"%s\", \"max_retries\": 0}", g_fake.base_url);
	assert_int_equal(change(c, "endpoint", "openai", J("%s", ep), NULL, NULL), 0);
	{
		llm_config_change ch = {"model", "gpt5", NULL, -1, "test", 1};
		llm_config_result res;
		json_t *v = J("{\"endpoint\": \"openai\", \"model\": \"gpt-5\"}");
		ch.value = v;
		rc = llm_config_apply(c, &ch, NULL, &res);
		assert_int_equal(rc, ERR_HTTP);
		assert_non_null(strstr(err_last(), "Use 'max_completion_tokens' instead"));
		json_decref(v);
		v = J("{\"endpoint\": \"openai\", \"model\": \"gpt-5\", \"provider\": "
		      "\"openai-reasoning\", \"reasoning_effort\": \"minimal\"}");
		ch.value = v;
		assert_int_equal(llm_config_apply(c, &ch, NULL, &res), 0);
		assert_non_null(strstr(res.notes, "model gpt5 answered a test call"));
		json_decref(v);
	}
	pg_conn_close(c);
}

/* Runs `orchestrator ARGS` (2>&1, stdin from `input` when not NULL); its status. */
static int cli(buf *out, const char *input, const char *args)
{
	char cmd[4096], chunk[4096];
	FILE *p;
	size_t n;
	int st;

	buf_reset(out);
	snprintf(cmd, sizeof(cmd), "%s%s%s '%s' %s 2>&1", input ? "printf %s '" : "",
		 input ? input : "", input ? "' | " : "", ts_bin(), args);
	p = popen(cmd, "r");
	if (!p)
		fail_msg("popen failed");
	for (n = fread(chunk, 1, sizeof(chunk), p); n > 0; n = fread(chunk, 1, sizeof(chunk), p))
		buf_append(out, chunk, n);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_out(const buf *out, const char *needle)
{
	if (!strstr(buf_cstr(out), needle))
		fail_msg("output does not contain '%s':\n%s", needle, buf_cstr(out));
}

/* orchestrator models: set, refused with the reason, audit, export, prompts, clear. */
static void test_cli(void **state)
{
	pg_conn *c = ts_conn();
	char args[1024];
	buf out;
	(void)state;

	fake_llm_reset(&g_fake);
	ts_sql(c, "UPDATE llm_config SET stored = false");
	ts_sql(c, "DELETE FROM llm_config_roles; DELETE FROM llm_config_models; "
		  "DELETE FROM llm_config_endpoints; DELETE FROM prompt_templates");
	setenv("LLM_BASE_URL", g_fake.base_url, 1);
	setenv("LLM_MODEL", "fake-small", 1);
	unsetenv("ORCH_MODELS");
	buf_init(&out, 0);
	assert_int_equal(cli(&out, NULL, "models"), 0);
	expect_out(&out, "nothing stored");
	expect_out(&out, "fake-small");
	assert_int_equal(cli(&out, NULL, "models set model gpt5 '{\"endpoint\": \"default\", "
				       "\"model\": \"gpt-5\", \"provider\": \"openai-reasoning\", "
				       "\"temperature\": 0.5}'"), 1);
	expect_out(&out, "the change was not stored");
	expect_out(&out, "takes only the model's default temperature");
	assert_int_equal(cli(&out, NULL, "models set model gpt5 '{\"endpoint\": \"default\", "
				       "\"model\": \"gpt-5\", \"provider\": \"openai-reasoning\", "
				       "\"reasoning_effort\": \"high\"}'"), 0);
	expect_out(&out, "stored as version");
	expect_out(&out, "started as a copy of LLM_BASE_URL");
	assert_int_equal(cli(&out, NULL, "models set role architect gpt5 fake-small"), 0);
	assert_int_equal(cli(&out, NULL, "models"), 0);
	expect_out(&out, "architect        gpt5 -> fake-small");
	expect_out(&out, "reasoning high");
	assert_int_equal(cli(&out, NULL, "models rm model gpt5"), 1);
	expect_out(&out, "model 'gpt5' is not defined");
	assert_int_equal(cli(&out, NULL, "models audit"), 0);
	expect_out(&out, "set     role      architect");
	expect_out(&out, "seed    config    LLM_BASE_URL");
	assert_int_equal(cli(&out, NULL, "models export"), 0);
	expect_out(&out, "\"openai-reasoning\"");
	assert_int_equal(cli(&out, NULL, "models providers"), 0);
	expect_out(&out, "max_completion_tokens");
	assert_int_equal(cli(&out, "Review {{task}} kindly.",
			     "models prompt set nodes/prompts/reviewer_task.md"), 0);
	assert_int_equal(cli(&out, NULL, "models prompts"), 0);
	expect_out(&out, "nodes/prompts/reviewer_task.md");
	expect_out(&out, "stored");
	assert_int_equal(cli(&out, NULL, "models prompt show nodes/prompts/reviewer_task.md"), 0);
	expect_out(&out, "Review {{task}} kindly.");
	assert_int_equal(cli(&out, NULL, "llm budget set --project p1 --limit 3 --per day"), 0);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM llm_config_audit WHERE kind = 'budget' "
				       "AND actor LIKE 'cli:%' AND new->>'period' = 'day'"), 1);
	snprintf(args, sizeof(args), "models clear");
	assert_int_equal(cli(&out, NULL, args), 0);
	expect_out(&out, "go back to their files or environment");
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM llm_config WHERE stored"), 0);
	buf_free(&out);
	pg_conn_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_quirks),
		cmocka_unit_test(test_try_call),
		cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
