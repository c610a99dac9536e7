/* web/ and core/metrics: the listener's routes, /healthz on real PostgreSQL
 * and Redis (and a Redis that is not there), /metrics parsed line by line
 * as the Prometheus text format 0.0.4 says, counters that move when the
 * engine runs steps, and a real role (`orchestrator spawner`) answering on
 * ORCH_HTTP_ADDR with `orchestrator healthcheck` as a compose health check
 * uses it. */
#include "tests/support/graphs.h"
#include "tests/support/support.h"

#include "core/err.h"
#include "core/health.h"
#include "core/http.h"
#include "core/metrics.h"
#include "core/util.h"
#include "engine/engine.h"
#include "web/health.h"
#include "web/web.h"

#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* GET url: the status, the body into out (caller frees with buf_free). */
static long get(const char *url, buf *out, char *ctype, size_t ccap)
{
	http_client *h = NULL;
	http_request rq = {.method = "GET", .url = url, .timeout_ms = 10000};
	http_response r;
	long st;

	assert_int_equal(http_client_new(&h), 0);
	if (http_do(h, &rq, &r) < 0) {
		http_client_free(h);
		return -1;
	}
	st = r.status;
	buf_init(out, 0);
	buf_append(out, r.body.data ? r.body.data : "", r.body.len);
	if (ctype)
		snprintf(ctype, ccap, "%s", r.content_type);
	http_response_free(&r);
	http_client_free(h);
	return st;
}

/* Checks `text` against the exposition format 0.0.4: every family has HELP
 * and TYPE before its samples, sample names belong to the family (with the
 * histogram suffixes), labels are name="escaped value", values parse,
 * histogram buckets are cumulative and end with le="+Inf" equal to _count.
 * Returns the number of samples. */
static int check_exposition(const char *text)
{
	regex_t sample, help, type;
	char family[128] = "", kind[16] = "";
	double last_bucket = -1, inf = -1;
	int samples = 0;
	char *copy = strdup(text), *save = NULL;

	assert_int_equal(regcomp(&sample,
				 "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
				 "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*)?\\})? "
				 "(-?[0-9.e+-]+|\\+Inf|-Inf|NaN)$",
				 REG_EXTENDED),
			 0);
	assert_int_equal(regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$",
				 REG_EXTENDED),
			 0);
	assert_true(text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[9];
		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(regexec(&help, line, 0, NULL, 0), 0);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			if (regexec(&type, line, 9, m, 0) != 0)
				fail_msg("bad TYPE line: %s", line);
			snprintf(family, sizeof(family), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			snprintf(kind, sizeof(kind), "%.*s", (int)(m[2].rm_eo - m[2].rm_so), line + m[2].rm_so);
			last_bucket = -1;
			continue;
		}
		if (regexec(&sample, line, 9, m, 0) != 0)
			fail_msg("not a sample line of format 0.0.4: %s", line);
		{
			char name[160];
			size_t fl = strlen(family);
			double v = strtod(line + m[8].rm_so, NULL);
			snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line);
			if (strncmp(name, family, fl) != 0)
				fail_msg("sample %s outside its family %s", name, family);
			if (strcmp(kind, "histogram") == 0) {
				const char *sfx = name + fl;
				assert_true(strcmp(sfx, "_bucket") == 0 || strcmp(sfx, "_sum") == 0 ||
					    strcmp(sfx, "_count") == 0);
				if (strcmp(sfx, "_bucket") == 0) {
					assert_non_null(strstr(line, "le=\""));
					assert_true(v >= last_bucket); /* cumulative */
					last_bucket = v;
					if (strstr(line, "le=\"+Inf\""))
						inf = v;
				} else if (strcmp(sfx, "_count") == 0) {
					assert_true(v == inf);
					last_bucket = -1;
				}
			} else {
				assert_string_equal(name, family);
				if (strcmp(kind, "counter") == 0)
					assert_true(v >= 0);
			}
		}
		samples++;
	}
	regfree(&sample);
	regfree(&help);
	regfree(&type);
	free(copy);
	return samples;
}

/* The value of the sample line starting with `prefix` (name and labels),
 * -1 when absent. */
static double sample(const char *text, const char *prefix)
{
	const char *p = text;
	size_t n = strlen(prefix);

	while ((p = strstr(p, prefix))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return -1;
}

static void test_metrics_format(void **state)
{
	met_family *c = met_counter("orch_test_events_total", "events, by kind", "kind");
	met_family *g = met_gauge("orch_test_level", "a level with \\ and a\nnewline in its help", NULL);
	met_family *h = met_histogram("orch_test_wait_seconds", "waits", "who", NULL, 0);
	buf b;
	(void)state;
	/* the same name again: the same family; another kind: refused */
	assert_ptr_equal(met_counter("orch_test_events_total", "x", "kind"), c);
	assert_null(met_gauge("orch_test_events_total", "x", "kind"));
	assert_null(met_counter("bad name", "x", NULL));
	met_add(met_with(c, "plain"), 1);
	met_add(met_with(c, "plain"), 2);
	met_add(met_with(c, "quote\"back\\slash\nnewline"), 1);
	met_add(met_with(c, "plain"), -5); /* a counter never goes down */
	met_set(met_with(g), 2.5);
	met_observe(met_with(h, "a"), 0.003);
	met_observe(met_with(h, "a"), 0.2);
	met_observe(met_with(h, "a"), 1000);
	met_add(NULL, 1); /* NULL is a no-op */
	buf_init(&b, 0);
	assert_int_equal(met_render(&b), 0);
	assert_true(check_exposition(buf_cstr(&b)) >= 10);
	assert_int_equal(sample(buf_cstr(&b), "orch_test_events_total{kind=\"plain\"}"), 3);
	assert_non_null(strstr(buf_cstr(&b), "{kind=\"quote\\\"back\\\\slash\\nnewline\"} 1\n"));
	assert_non_null(strstr(buf_cstr(&b), "# HELP orch_test_level a level with \\\\ and a\\nnewline"));
	assert_int_equal(sample(buf_cstr(&b), "orch_test_level"), 2.5);
	assert_int_equal(sample(buf_cstr(&b), "orch_test_wait_seconds_bucket{who=\"a\",le=\"0.005\"}"), 1);
	assert_int_equal(sample(buf_cstr(&b), "orch_test_wait_seconds_bucket{who=\"a\",le=\"0.25\"}"), 2);
	assert_int_equal(sample(buf_cstr(&b), "orch_test_wait_seconds_bucket{who=\"a\",le=\"60\"}"), 2);
	assert_int_equal(sample(buf_cstr(&b), "orch_test_wait_seconds_bucket{who=\"a\",le=\"+Inf\"}"), 3);
	assert_int_equal(sample(buf_cstr(&b), "orch_test_wait_seconds_count{who=\"a\"}"), 3);
	buf_free(&b);
	/* too many series: dropped and counted, never unbounded */
	for (int i = 0; i < MET_MAX_SERIES + 10; i++) {
		char v[16];
		snprintf(v, sizeof(v), "v%d", i);
		met_add(met_with(c, v), 1);
	}
	buf_init(&b, 0);
	assert_int_equal(met_render(&b), 0);
	assert_true(sample(buf_cstr(&b), "orch_metrics_dropped_total") >= 10);
	buf_free(&b);
}

static int ok_handler(web_request *rq, void *u)
{
	char body[256];
	(void)u;
	snprintf(body, sizeof(body), "%s %s q=%s", web_method(rq), web_path(rq),
		 web_query(rq, "q") ? web_query(rq, "q") : "-");
	return web_reply(rq, 200, "text/plain", body, strlen(body));
}

static int fail_handler(web_request *rq, void *u)
{
	(void)rq;
	(void)u;
	return err_set(ERR_INVALID, "the handler failed on purpose");
}

static void test_routes(void **state)
{
	web_server *s = NULL;
	char url[128];
	buf b;
	(void)state;
	assert_int_equal(web_server_new(&s, "nonsense"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "HOST:PORT"));
	assert_int_equal(web_server_new(&s, "127.0.0.1:0"), 0);
	assert_int_equal(web_route(s, "GET", "/api/*", 0, ok_handler, NULL), 0);
	assert_int_equal(web_route(s, "GET", "/boom", 0, fail_handler, NULL), 0);
	assert_int_equal(web_route(s, "GET", "/boom", 0, fail_handler, NULL), ERR_CONFLICT);
	/* what the listener does not do is refused, not ignored: a flag it does not know, a
	 * streamed answer from a worker thread */
	assert_int_equal(web_route(s, "POST", "/mcp", 64, ok_handler, NULL), ERR_INVALID);
	assert_int_equal(web_route(s, "GET", "/events", WEB_ROUTE_STREAM | WEB_ROUTE_THREAD,
				   ok_handler, NULL), ERR_INVALID);
	assert_int_equal(web_server_start(s), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/things?q=x%%20y", web_server_port(s));
	assert_int_equal(get(url, &b, NULL, 0), 200);
	assert_string_equal(buf_cstr(&b), "GET /api/things q=x y");
	buf_free(&b);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/nothing", web_server_port(s));
	assert_int_equal(get(url, &b, NULL, 0), 404);
	buf_free(&b);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/boom", web_server_port(s));
	assert_int_equal(get(url, &b, NULL, 0), 500);
	assert_non_null(strstr(buf_cstr(&b), "failed on purpose"));
	buf_free(&b);
	{
		/* a second listener on the same port is refused with the address */
		web_server *t = NULL;
		char addr[64];
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", web_server_port(s));
		assert_int_equal(web_server_new(&t, addr), 0);
		assert_int_equal(web_server_start(t), ERR_IO);
		assert_non_null(strstr(err_last(), addr));
		web_server_free(t);
	}
	web_server_free(s);
}

static void test_healthz_and_metrics(void **state)
{
	pg_pool *pool = ts_pool(4);
	web_server *s = NULL;
	web_health *h = NULL;
	web_health_opts o = {.role = "engine", .redis_url = getenv("REDIS_URL"), .interval_ms = 200,
			     .db_metrics_ms = 100};
	eng_engine *e = NULL;
	eng_graph *g = tsg_linear4();
	eng_options eo = {.threads = 1};
	char url[128], ctype[128];
	double before, after;
	buf b;
	json_t *j;
	(void)state;
	health_reset();
	o.pool = pool;
	assert_int_equal(web_server_new(&s, "127.0.0.1:0"), 0);
	assert_int_equal(web_health_start(&h, s, &o), 0);
	assert_int_equal(web_server_start(s), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", web_server_port(s));
	assert_int_equal(get(url, &b, NULL, 0), 200);
	j = ts_json(buf_cstr(&b));
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
	assert_string_equal(json_string_value(json_object_get(j, "role")), "engine");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_object_get(j, "parts"), "postgres"), "state")),
			    "ok");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_object_get(j, "parts"), "redis"), "state")),
			    "ok");
	json_decref(j);
	buf_free(&b);
	/* a part that is down: 503, named */
	health_report("engine.relay", HEALTH_DOWN, "stopped: %s", "on purpose");
	assert_int_equal(get(url, &b, NULL, 0), 503);
	assert_non_null(strstr(buf_cstr(&b), "\"down\":[\"engine.relay\"]"));
	assert_non_null(strstr(buf_cstr(&b), "stopped: on purpose"));
	buf_free(&b);
	health_forget("engine.relay");

	/* the engine's counters move with its steps */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", web_server_port(s));
	assert_int_equal(get(url, &b, ctype, sizeof(ctype)), 200);
	assert_string_equal(ctype, "text/plain; version=0.0.4; charset=utf-8");
	check_exposition(buf_cstr(&b));
	before = sample(buf_cstr(&b), "orch_engine_steps_total{outcome=\"finished\"}");
	buf_free(&b);
	assert_int_equal(eng_engine_new(&e, pool, &eo), 0);
	assert_int_equal(eng_engine_add_graph(e, g), 0);
	for (int i = 0; i < 3; i++) {
		eng_result res;
		char key[32];
		snprintf(key, sizeof(key), "web-%d", i);
		assert_int_equal(eng_invoke(e, "linear4", key, NULL, 0, &res), 0);
		eng_result_clear(&res);
	}
	util_sleep_ms(500); /* a refresh of the database gauges */
	assert_int_equal(get(url, &b, NULL, 0), 200);
	check_exposition(buf_cstr(&b));
	after = sample(buf_cstr(&b), "orch_engine_steps_total{outcome=\"finished\"}");
	assert_true(after - (before < 0 ? 0 : before) == 3);
	assert_true(sample(buf_cstr(&b), "orch_engine_steps_total{outcome=\"continued\"}") >= 9);
	assert_true(sample(buf_cstr(&b), "orch_engine_step_duration_seconds_count") >= 12);
	assert_true(sample(buf_cstr(&b), "orch_checkpoint_commit_duration_seconds_count") >= 1);
	assert_true(sample(buf_cstr(&b), "orch_checkpoint_batch_size_count") >= 1);
	assert_int_equal(sample(buf_cstr(&b), "orch_dependency_up{dependency=\"postgres\"}"), 1);
	/* the database gauges: the runs just made */
	assert_true(sample(buf_cstr(&b), "orch_runs{state=\"done\"}") >= 3);
	assert_true(sample(buf_cstr(&b), "orch_outbox_backlog{kind=\"spawn\"}") >= 0);
	buf_free(&b);
	{
		/* what a scrape costs (measured, never asserted) */
		int64_t t0 = util_mono_ms();
		size_t bytes = 0;
		for (int i = 0; i < 200; i++) {
			buf r;
			buf_init(&r, 0);
			met_render(&r);
			bytes = r.len;
			buf_free(&r);
		}
		printf("# rendering /metrics (%zu bytes): %.1f us per scrape\n", bytes,
		       (double)(util_mono_ms() - t0) * 1000.0 / 200);
	}
	eng_engine_free(e);
	eng_graph_free(g);
	web_health_free(h);
	web_server_free(s);

	/* a Redis that is not there: 503 naming it */
	health_reset();
	o.redis_url = "redis://127.0.0.1:1/0";
	assert_int_equal(web_server_new(&s, "127.0.0.1:0"), 0);
	assert_int_equal(web_health_start(&h, s, &o), 0);
	assert_int_equal(web_server_start(s), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", web_server_port(s));
	assert_int_equal(get(url, &b, NULL, 0), 503);
	j = ts_json(buf_cstr(&b));
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "down"), 0)), "redis");
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_object_get(json_object_get(j, "parts"), "redis"), "reason")),
			       "127.0.0.1"));
	json_decref(j);
	buf_free(&b);
	web_health_free(h);
	web_server_free(s);
	pg_pool_free(pool);
	health_reset();
}

/* A free loopback port (bound, then released). */
static int free_port(void)
{
	web_server *s = NULL;
	int p;
	assert_int_equal(web_server_new(&s, "127.0.0.1:0"), 0);
	assert_int_equal(web_server_start(s), 0);
	p = web_server_port(s);
	web_server_free(s);
	return p;
}

static int run(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_role_listens(void **state)
{
	char env[64], cmd[1024], url[128];
	int port = free_port();
	pid_t pid;
	int ok = 0;
	buf b;
	(void)state;
	snprintf(env, sizeof(env), "ORCH_HTTP_ADDR=127.0.0.1:%d", port);
	pid = fork();
	if (pid == 0) {
		putenv(env);
		setenv("ORCH_WORKER_DISK_KIND", "none", 1);
		execl(ts_bin(), ts_bin(), "spawner", (char *)NULL);
		_exit(127);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	for (int i = 0; i < 200 && !ok; i++) {
		long st = get(url, &b, NULL, 0);
		if (st == 200)
			ok = 1;
		if (st > 0)
			buf_free(&b);
		if (!ok)
			util_sleep_ms(100);
	}
	assert_true(ok);
	/* the compose health check's command */
	snprintf(cmd, sizeof(cmd), "%s %s healthcheck >/dev/null", env, ts_bin());
	assert_int_equal(run(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s healthcheck http://127.0.0.1:1/healthz 2>/dev/null", ts_bin());
	assert_int_equal(run(cmd), 1);
	/* the spawner's preflight ran a sandbox */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	assert_int_equal(get(url, &b, NULL, 0), 200);
	check_exposition(buf_cstr(&b));
	assert_true(sample(buf_cstr(&b), "orch_sandbox_starts_total{backend=\"ns\"}") >= 1);
	assert_true(sample(buf_cstr(&b), "orch_sandbox_duration_seconds_count{backend=\"ns\"}") >= 1);
	buf_free(&b);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &ok, 0), pid);
	assert_true(WIFEXITED(ok) && WEXITSTATUS(ok) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_format),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_healthz_and_metrics),
		cmocka_unit_test(test_role_listens),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
