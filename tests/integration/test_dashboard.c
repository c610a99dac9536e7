/* The dashboard (web/app.h) on a running `orchestrator serve`: its API and
 * its security with plain HTTP, then a whole project run by the fake model
 * and driven from the pages in Debian's chromium (tests/web/dashboard.mjs,
 * playwright-core from npm): the questions answered through the buttons'
 * decision path, a role's model changed and used by the next call, a budget
 * set, a worker's live log, screenshots under build/web-shots. */
#include "tests/support/factory_support.h"
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"

#include "core/err.h"
#include "core/http.h"
#include "core/util.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static tf_env E;
static char g_url[64], g_token[80], g_token_ro[80];
static pid_t g_serve;

static int free_port(void)
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

/* One HTTP request to the dashboard: the status and body (owned by resp). */
static int req(const char *method, const char *path, const char *const *headers,
	       const char *body, http_response *resp)
{
	http_client *c = NULL;
	http_request rq;
	char url[512];
	int rc;

	snprintf(url, sizeof(url), "%s%s", g_url, path);
	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.url = url;
	rq.headers = headers;
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.timeout_ms = 30000;
	rq.connect_timeout_ms = 3000;
	assert_int_equal(http_client_new(&c), 0);
	rc = http_do(c, &rq, resp);
	http_client_free(c);
	return rc < 0 ? rc : (int)resp->status;
}

/* The token `orchestrator web token ARGS` printed. */
static void make_token(const char *args, char *out, size_t cap)
{
	buf o;
	const char *t;

	buf_init(&o, 0);
	assert_int_equal(tf_cli(&o, "web token %s", args), 0);
	t = strstr(buf_cstr(&o), "orch_");
	if (!t)
		fail_msg("no token in:\n%s", buf_cstr(&o));
	snprintf(out, cap, "%.48s", t);
	buf_free(&o);
}

static int setup(void **state)
{
	char addr[64], *env[2];
	int port = free_port();
	(void)state;

	ts_init();
	tf_start(&E);
	snprintf(g_url, sizeof(g_url), "http://127.0.0.1:%d", port);
	snprintf(addr, sizeof(addr), "ORCH_HTTP_ADDR=127.0.0.1:%d", port);
	env[0] = addr;
	env[1] = NULL;
	/* the project: a question, the spec, the plan (from the model the page will
	 * give the architect), three workers, three approving reviews */
	{
		json_t *all = json_array(), *plan = tf_plan();
		json_object_set_new(plan, "model", json_string("m-alt"));
		json_array_append_new(all, tf_brainstorm_question());
		json_array_append_new(all, tf_brainstorm_spec());
		json_array_append_new(all, plan);
		json_t *agents[3] = {tf_agent_cmd("Task slug, on branch task/slug", TF_SLUG_FULL),
				     tf_agent("wc"), tf_agent("cli")};
		for (int i = 0; i < 3; i++) {
			json_array_extend(all, agents[i]);
			json_decref(agents[i]);
		}
		json_array_append_new(all, tf_review("slug", 1, 1));
		json_array_append_new(all, tf_review("wc", 1, 1));
		json_array_append_new(all, tf_review("cli", 1, 1));
		tf_script(&E, all);
	}
	g_serve = tf_spawn(&E, "serve", (const char *const *)env);
	for (int i = 0; i < 200; i++) {
		http_response r;
		int st = req("GET", "/", NULL, NULL, &r);
		http_response_free(&r);
		if (st == 200)
			break;
		err_clear();
		util_sleep_ms(100);
	}
	make_token("--user ada --telegram 111 --admin", g_token, sizeof(g_token));
	make_token("--user bob --operator nobody --ttl 1h", g_token_ro, sizeof(g_token_ro));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tf_stop(&E);
	return 0;
}

/* The API: refused without credentials, with a revoked or expired token;
 * what status --json says, with a bearer token; tokens are stored hashed. */
static void test_api(void **state)
{
	char auth[128], auth_ro[128];
	const char *h[3] = {auth, "Content-Type: application/json", NULL};
	const char *h_ro[3] = {auth_ro, "Content-Type: application/json", NULL};
	http_response r;
	json_t *j;
	buf o;
	(void)state;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", g_token);
	snprintf(auth_ro, sizeof(auth_ro), "Authorization: Bearer %s", g_token_ro);
	assert_int_equal(req("GET", "/api/status", NULL, NULL, &r), 401);
	http_response_free(&r);
	assert_int_equal(req("GET", "/api/status", h, NULL, &r), 200);
	j = json_loads(buf_cstr(&r.body), 0, NULL);
	assert_non_null(json_object_get(j, "runs"));
	assert_non_null(json_object_get(j, "engines"));
	assert_non_null(json_object_get(j, "projects"));
	json_decref(j);
	http_response_free(&r);
	assert_int_equal(req("GET", "/api/session", h_ro, NULL, &r), 200);
	assert_non_null(strstr(buf_cstr(&r.body), "\"admin\":false"));
	http_response_free(&r);
	/* a bearer request needs no CSRF token, but a token without --admin changes nothing */
	assert_int_equal(req("POST", "/api/budgets", h_ro, "{\"kind\": \"user\", \"scope\": \"x\", "
							  "\"limit\": 1}", &r), 403);
	http_response_free(&r);
	assert_int_equal(req("GET", "/api/models", h, NULL, &r), 200);
	assert_non_null(strstr(buf_cstr(&r.body), "openai-reasoning"));
	http_response_free(&r);
	/* the page's pre-login form value comes with its cookie; a login without it fails */
	assert_int_equal(req("POST", "/login", (const char *[]){"Content-Type: application/json", NULL},
			     "{\"token\": \"x\", \"pre\": \"y\"}", &r), 403);
	http_response_free(&r);
	/* the database holds hashes only */
	assert_int_equal(ts_sql_int(E.db, "SELECT count(*) FROM web_tokens WHERE length(hash) = 32 AND "
				       "expires_at > now()"), 2);
	{
		char sql[300];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM web_tokens WHERE hash::text LIKE "
					   "'%%%s%%' OR name LIKE 'orch_%%'", g_token + 5);
		assert_int_equal(ts_sql_int(E.db, sql), 0);
	}
	/* revoked: refused at once */
	buf_init(&o, 0);
	assert_int_equal(tf_cli(&o, "web revoke --user bob"), 0);
	assert_int_equal(req("GET", "/api/session", h_ro, NULL, &r), 401);
	http_response_free(&r);
	assert_int_equal(tf_cli(&o, "web tokens"), 0);
	assert_non_null(strstr(buf_cstr(&o), "revoked"));
	assert_null(strstr(buf_cstr(&o), g_token));
	/* expired: refused */
	make_token("--user bob --operator nobody --ttl 1h", g_token_ro, sizeof(g_token_ro));
	snprintf(auth_ro, sizeof(auth_ro), "Authorization: Bearer %s", g_token_ro);
	assert_int_equal(req("GET", "/api/session", h_ro, NULL, &r), 200);
	http_response_free(&r);
	ts_sql(E.db, "UPDATE web_tokens SET expires_at = now() - interval '1 s' WHERE name = 'bob'");
	assert_int_equal(req("GET", "/api/session", h_ro, NULL, &r), 401);
	http_response_free(&r);
	buf_free(&o);
}

/* The pages in chromium while the project runs. */
static void test_browser(void **state)
{
	char cmd[4096], chromium[512] = "", pwdir[1024] = "", shots[1024], line[2048];
	buf o;
	FILE *p;
	int st, rc;
	(void)state;

	/* the spec question comes after the brainstorm's question is answered */
	tf_say(&E, "/new a tiny Python toolkit for URL slugs and word counts");
	json_decref(tf_wait_msg(&E, "Two questions"));
	tf_say(&E, "Both, standard library only.");

	buf_init(&o, 0);
	rc = tss_sh(&o, "tests/env/browser.sh '%s' 2>&1", getenv("ORCH_BUILD"));
	if (rc == 3) {
		printf("%s", buf_cstr(&o)); /* the skipped: line */
		buf_free(&o);
		return;
	}
	if (rc != 0)
		fail_msg("browser.sh failed:\n%s", buf_cstr(&o));
	sscanf(buf_cstr(&o), "%511[^\n]\n%1023[^\n]", chromium, pwdir);
	buf_free(&o);
	snprintf(shots, sizeof(shots), "%s/web-shots", getenv("ORCH_BUILD"));
	/* bob's token was revoked by test_api: the browser's refusal case takes a new one */
	make_token("--user bob --operator nobody", g_token_ro, sizeof(g_token_ro));
	/* an operator whom ORCH_OPERATORS maps to no approver may not answer a Telegram question */
	ts_await_sql(E.db, "SELECT count(*) FROM approvals WHERE state = 'pending'", 1, TF_WAIT_MS);
	{
		char auth[128], path[64];
		const char *h[3] = {auth, "Content-Type: application/json", NULL};
		http_response r;
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", g_token_ro);
		snprintf(path, sizeof(path), "/api/questions/%lld",
			 (long long)ts_sql_int(E.db, "SELECT id FROM approvals WHERE state = 'pending'"));
		assert_int_equal(req("POST", path, h, "{\"option\": \"approve\"}", &r), 403);
		if (!strstr(buf_cstr(&r.body), "ORCH_OPERATORS maps to none of them"))
			fail_msg("the refusal does not say what to configure: %s", buf_cstr(&r.body));
		http_response_free(&r);
		assert_int_equal(ts_sql_int(E.db, "SELECT count(*) FROM approvals WHERE state = "
						  "'pending'"), 1);
	}
	snprintf(cmd, sizeof(cmd),
		 "rm -rf '%s' && mkdir -p '%s' && URL='%s' TOKEN='%s' TOKEN_RO='%s' PROJECT='tg:%d:1' "
		 "SHOTS='%s' CHROMIUM='%s' PW_DIR='%s' ALT_ENDPOINT=fake node tests/web/dashboard.mjs 2>&1",
		 shots, shots, g_url, g_token, g_token_ro, TF_OWNER, shots, chromium, pwdir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		if (strncmp(line, "# ", 2) != 0)
			printf("# %s", line);
		else
			printf("%s", line);
		fflush(stdout);
	}
	st = pclose(p);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the browser session failed (see the lines above; processes: %s)", E.log);

	/* what the pages did, seen from the other side */
	{
		json_t *reqs = fake_llm_requests(&E.llm), *r;
		size_t i;
		int alt = 0, arch = 0;
		json_array_foreach(reqs, i, r) {
			const char *m = json_string_value(json_object_get(json_object_get(r, "body"), "model"));
			alt += m && strcmp(m, "m-alt") == 0;
			arch += m && strcmp(m, "m-architect") == 0;
		}
		json_decref(reqs);
		if (alt < 1 || arch != 0)
			fail_msg("the architect's calls went to m-alt %d times and to m-architect %d times",
				 alt, arch);
	}
	assert_int_equal(ts_sql_int(E.db, "SELECT count(*) FROM llm_config_audit WHERE actor = "
					  "'web:ada' AND kind = 'role' AND name = 'architect' AND "
					  "new->>0 = 'alt' AND old->>0 = 'arch'"), 1);
	assert_int_equal(ts_sql_int(E.db, "SELECT count(*) FROM llm_config_audit WHERE actor = "
					  "'web:ada' AND kind = 'budget' AND new->>'period' = 'month'"), 1);
	/* the budget set on the page is what the running serve reserved against and settled into */
	assert_int_equal(ts_sql_int(E.db, "SELECT count(*) FROM llm_budgets WHERE kind = 'project' "
					  "AND scope = 'tg:111:1' AND limit_usd = 40 AND period = 'month' "
					  "AND spent_usd > 0"), 1);
	assert_true(ts_sql_int(E.db, "SELECT count(*) FROM approvals WHERE decided_by->>'channel' = "
				     "'web' AND decided_by->>'name' = 'ada (web)'") >= 2);
	/* the Telegram message of a question answered on the page says who decided */
	json_decref(tf_wait_msg(&E, "ada (web)"));
	tf_no_duplicate_messages(&E);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api),
		cmocka_unit_test(test_browser),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
