/* The spawner end to end: real PostgreSQL (engine, outbox, workers), real
 * Redis (the shared test server, and a private one that is restarted), real
 * git (libgit2 and bare repositories), the real sandbox; only the model is
 * the fake OpenAI-compatible server, scripted per case. */
#include "tests/support/spawn_support.h"
#include "tests/support/support.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/redis.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/ctx.h"
#include "engine/engine.h"
#include "engine/graph.h"
#include "engine/stream.h"
#include "secrets/runtime.h"
#include "spawner/spawner.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static fake_llm g_fake;
static pg_pool *g_pool;
static pg_conn *g_db;
static llm_service *g_llm;
static eng_engine *g_engine;
static eng_graph *g_dispatch, *g_waiter;
static spw_spawner *g_spawner;   /* on the shared test Redis, with the relay */
static eng_stream_hub *g_hub;    /* its workers' lines, as custom events */
static rds_conn *g_redis;        /* the shared test Redis */
static tss_redis g_private;      /* restarted by a case */
static char g_repo[1024];
static char g_handle_ok[64], g_handle_revoked[64];

/* --- graphs: "dispatch" emits the request in its input and collects the
 * result; "waiter" only waits for a worker event --- */

static int node_dispatch(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)input;
	*update = json_pack("{s:b}", "dispatched", 1);
	return eng_emit(ctx, "spawn", NULL, json_deep_copy(json_object_get(state, "request")));
}

static int node_collect(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	json_t *v = NULL;
	int rc;
	(void)state;
	(void)input;
	rc = eng_await(ctx, "worker", NULL, &v);
	if (rc < 0)
		return rc;
	*update = json_pack("{s:o}", "result", v);
	return 0;
}

static eng_graph *graph(const char *name, int with_dispatch)
{
	eng_graph *g = NULL;

	assert_int_equal(eng_graph_new(&g, name), 0);
	eng_graph_add_node(g, "collect", node_collect, NULL, NULL);
	if (with_dispatch) {
		eng_graph_add_node(g, "dispatch", node_dispatch, NULL, NULL);
		eng_graph_add_edge(g, ENG_START, "dispatch");
		eng_graph_add_edge(g, "dispatch", "collect");
	} else {
		eng_graph_add_edge(g, ENG_START, "collect");
	}
	eng_graph_add_edge(g, "collect", ENG_END);
	if (eng_graph_compile(g) < 0)
		fail_msg("graph %s: %s", name, err_last());
	return g;
}

/* --- helpers --- */

static int64_t sql_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t sql_int(const char *fmt, ...)
{
	char sql[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return ts_sql_int(g_db, sql);
}

static json_t *sql_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *sql_json(const char *fmt, ...)
{
	char sql[2048];
	va_list ap;
	PGresult *r = NULL;
	json_t *j = NULL;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (pg_exec(g_db, &r, sql, 0, NULL) < 0)
		fail_msg("%s: %s", sql, err_last());
	if (pg_rows(r) == 1 && !pg_isnull(r, 0, 0))
		j = json_loads(pg_val(r, 0, 0), 0, NULL);
	PQclear(r);
	return j;
}

/* Checks a result's status, showing its reason when it differs. */
static void expect_status(const json_t *res, const char *want)
{
	const char *got = json_string_value(json_object_get(res, "status"));

	if (!got || strcmp(got, want) != 0)
		fail_msg("status %s (wanted %s): %s", got ? got : "(none)", want,
			 json_string_value(json_object_get(res, "reason")));
}

static rds_conn *redis(const char *url)
{
	rds_conn *c = NULL;

	if (rds_connect(&c, url, 0) < 0)
		fail_msg("redis: %s", err_last());
	return c;
}

/* The results on the stream for `id` (newest last), as an array. Owned. */
static json_t *results_for(rds_conn *c, const char *id)
{
	rds_reply *r = NULL;
	json_t *out = json_array();

	if (rds_cmd(c, &r, "XRANGE", SPW_RESULTS, "-", "+", NULL) < 0)
		return out; /* a server restarting: nothing yet */
	for (size_t i = 0; i < r->n; i++) {
		const rds_reply *f = rds_at(rds_at(r, i), 1);
		if (strcmp(rds_str(rds_at(f, 1)), id) == 0)
			json_array_append_new(out, json_loads(rds_str(rds_at(f, 3)), 0, NULL));
	}
	rds_reply_free(r);
	return out;
}

/* Waits (a generous deadline: a worker runs tests in sandboxes) for the
 * result of `id` on the stream and returns it. Owned. */
static json_t *await_result(rds_conn *c, const char *id)
{
	for (int64_t until = util_mono_ms() + 180000; util_mono_ms() < until; util_sleep_ms(50)) {
		json_t *all = results_for(c, id);
		if (json_array_size(all) > 0) {
			json_t *r = json_incref(json_array_get(all, 0));
			json_decref(all);
			return r;
		}
		json_decref(all);
	}
	fail_msg("no result for %s", id);
	return NULL;
}

static long long pending(rds_conn *c)
{
	rds_reply *r = NULL;
	long long n;

	if (rds_cmd(c, &r, "XPENDING", SPW_STREAM, SPW_GROUP, NULL) < 0)
		return -1;
	n = rds_int(rds_at(r, 0), -1);
	rds_reply_free(r);
	return n;
}

static void await_no_pending(rds_conn *c)
{
	for (int64_t until = util_mono_ms() + 60000; util_mono_ms() < until; util_sleep_ms(50))
		if (pending(c) == 0)
			return;
	fail_msg("spawn entries are still pending: %lld", pending(c));
}

static void xadd(rds_conn *c, const char *id, json_t *req)
{
	char *text = json_dumps(req, JSON_COMPACT);

	assert_int_equal(rds_cmd(c, NULL, "XADD", SPW_STREAM, "*", "id", id, "req", text, NULL), 0);
	free(text);
	json_decref(req);
}

/* A request for the test project. */
static json_t *request(const char *id, const char *task, const char *test_cmd)
{
	json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "task", task, "project",
			      "proj-1", "repo", g_repo, "base", "main", "prompt",
			      "add() in calc.py subtracts; make the tests pass.");
	if (test_cmd)
		json_object_set_new(r, "test_command", json_string(test_cmd));
	return r;
}

static char *git_show(const char *rev_path)
{
	buf b;
	int rc;

	buf_init(&b, 0);
	rc = tss_sh(&b, "git --git-dir='%s' show '%s' 2>/dev/null", g_repo, rev_path);
	if (rc != 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static int path_exists(const char *fmt, const char *id)
{
	char p[1024];
	struct stat st;

	snprintf(p, sizeof(p), fmt, getenv("ORCH_DATA_DIR"), id);
	return stat(p, &st) == 0;
}

static void fix_script(void)
{
	tss_script(&g_fake,
		   json_pack("[o, o, o]", tss_bash("cat calc.py && python3 -m unittest 2>&1 | tail -3"),
			     tss_text("The operator is wrong.\n```bash\nsed -i 's/a - b/a + b/' calc.py "
				      "&& python3 -m unittest 2>&1 | tail -1\n```"),
			     tss_tool("submit", "{\"summary\": \"add() adds\"}")));
}

/* --- cases --- */

static void test_outbox_to_result(void **state)
{
	rds_conn *sub = redis(getenv("REDIS_URL"));
	rds_reply *msg = NULL;
	int64_t run, thread, ob;
	json_t *req = request("unused", "e2e", TSS_TEST_CMD), *input, *res, *st;
	char id[32], *file;
	eng_stream_sub *steps = NULL;
	eng_stream_filter sf = {.modes = ENG_STREAM_CUSTOM};
	(void)state;

	fake_llm_reset(&g_fake);
	fix_script();
	/* two patterns: the first confirmation is the reply, the second is read */
	assert_int_equal(rds_cmd(sub, NULL, "PSUBSCRIBE", "worker:result:*", "worker:log:*", NULL),
			 0);
	assert_int_equal(rds_read(sub, 5000, &msg), 0);
	rds_reply_free(msg);
	json_object_del(req, "id"); /* the relay names it after the outbox row */
	input = json_pack("{s:o}", "request", req);
	assert_int_equal(eng_start(g_db, "spawn-e2e", "spawntest", input, NULL, &thread, &run), 0);
	json_decref(input);
	/* the project's thread streams its worker's steps (the worker starts
	 * once the run's step has sent its request through the relay) */
	sf.thread_id = thread;
	assert_int_equal(eng_stream_subscribe(g_hub, &sf, &steps), 0);
	{
		char sql[256];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM runs WHERE id = %lld AND status = "
					   "'done'", (long long)run);
		ts_await_sql(g_db, sql, 1, 180000);
	}
	ob = sql_int("SELECT id FROM outbox WHERE kind = 'spawn' AND thread_id = %lld",
		     (long long)thread);
	snprintf(id, sizeof(id), "ob-%lld", (long long)ob);
	assert_int_equal(sql_int("SELECT count(*) FROM outbox WHERE id = %lld AND state = 'sent'",
				 (long long)ob), 1);

	/* the result, as the collecting node received it */
	st = sql_json("SELECT value::text FROM events WHERE thread_id = %lld AND key = 'worker' "
		      "AND idem = 'spawn:%s'", (long long)thread, id);
	assert_non_null(st);
	expect_status(st, "done");
	assert_string_equal(json_string_value(json_object_get(st, "id")), id);
	assert_string_equal(json_string_value(json_object_get(st, "branch")), "task/e2e");
	assert_true(json_is_true(json_object_get(st, "pushed")));
	{
		json_t *t = json_object_get(st, "tests");
		json_t *d = json_object_get(st, "diff");
		json_t *a = json_object_get(st, "agent");

		assert_string_equal(json_string_value(json_object_get(t, "verdict")), "passed");
		assert_int_equal(json_integer_value(json_object_get(t, "passed")), 3);
		assert_int_equal(json_integer_value(json_object_get(t, "total")), 3);
		assert_string_equal(json_string_value(json_object_get(t, "format")), "unittest");
		assert_int_equal(json_integer_value(
					 json_object_get(json_object_get(t, "base"), "failed")), 2);
		assert_int_equal(json_integer_value(json_object_get(d, "files")), 1);
		assert_string_equal(json_string_value(json_array_get(json_object_get(d, "paths"), 0)),
				    "calc.py");
		assert_string_equal(json_string_value(json_object_get(a, "exit")), "submitted");
		assert_int_equal(json_integer_value(json_object_get(a, "steps")), 3);
		assert_string_equal(json_string_value(json_object_get(a, "summary")), "add() adds");
		assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "tokens"),
								    "in")), 300);
		assert_true(json_real_value(json_object_get(st, "cost_usd")) > 0);
		assert_int_equal(json_integer_value(json_object_get(st, "thread_id")), thread);
	}
	{
		/* each step of the agent came live, as a custom event of the thread */
		eng_stream_event *ev = NULL;
		int actions = 0, lines = 0;
		while (eng_stream_try_next(steps, &ev)) {
			json_t *d = eng_stream_event_data(ev);
			if (ev->mode == ENG_STREAM_CUSTOM) {
				assert_string_equal(ev->node, "worker");
				assert_int_equal(ev->thread_id, thread);
				assert_string_equal(json_string_value(json_object_get(d, "worker")), id);
				actions += strcmp(json_string_value(json_object_get(d, "kind")),
						  "action") == 0;
				lines++;
			}
			json_decref(d);
			eng_stream_event_release(ev);
		}
		/* its two commands (the third step submits), among its other lines */
		assert_int_equal(actions, 2);
		assert_true(lines > actions);
		eng_stream_unsubscribe(steps);
	}
	/* the branch is in the project repository, with the fix; main is untouched */
	file = git_show("task/e2e:calc.py");
	assert_non_null(file);
	assert_non_null(strstr(file, "return a + b"));
	free(file);
	file = git_show("main:calc.py");
	assert_non_null(strstr(file, "return a - b"));
	free(file);
	{
		/* one commit on top of the base */
		buf parent;
		buf_init(&parent, 0);
		assert_int_equal(tss_sh(&parent, "git --git-dir='%s' show -s --format=%%P %s", g_repo,
					json_string_value(json_object_get(st, "commit"))), 0);
		assert_non_null(strstr(buf_cstr(&parent),
				       json_string_value(json_object_get(st, "base_commit"))));
		buf_free(&parent);
	}
	/* the same result on the results stream, and announced */
	res = await_result(g_redis, id);
	assert_true(json_equal(res, st));
	{
		/* live lines while it ran, then the announcement */
		char channel[64], logch[64];
		int actions = 0, statuses = 0;

		snprintf(channel, sizeof(channel), "worker:result:%s", id);
		snprintf(logch, sizeof(logch), "worker:log:%s", id);
		for (;;) {
			json_t *line;

			assert_int_equal(rds_read(sub, 10000, &msg), 0);
			assert_string_equal(rds_str(rds_at(msg, 0)), "pmessage");
			if (strcmp(rds_str(rds_at(msg, 2)), channel) == 0)
				break;
			if (strcmp(rds_str(rds_at(msg, 2)), logch) != 0) {
				/* another test's worker: pub/sub channels span the server's
				 * databases */
				rds_reply_free(msg);
				continue;
			}
			line = ts_json(rds_str(rds_at(msg, 3)));
			if (strcmp(json_string_value(json_object_get(line, "kind")), "action") == 0 &&
			    strstr(json_string_value(json_object_get(line, "text")), "sed -i"))
				actions++;
			if (strcmp(json_string_value(json_object_get(line, "kind")), "status") == 0)
				statuses++;
			json_decref(line);
			rds_reply_free(msg);
		}
		assert_int_equal(actions, 1);
		assert_true(statuses >= 3);
		assert_non_null(strstr(rds_str(rds_at(msg, 3)), "\"status\":\"done\""));
		rds_reply_free(msg);
	}
	printf("# e2e worker: %lld ms from claim to result (clone, quota, base tests, 3 model "
	       "replies, 2 sandboxed commands, commit, tests, push)\n",
	       (long long)json_integer_value(json_object_get(st, "wall_ms")));
	/* the record, the transcript; the workspace is gone */
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE id = '%s' AND state = "
				 "'finished' AND status = 'done' AND attempt = 1", id), 1);
	assert_true(path_exists("%s/transcripts/%s.jsonl", id));
	assert_false(path_exists("%s/workers/%s", id));
	assert_int_equal(pending(g_redis), 0);
	json_decref(res);
	json_decref(st);
	rds_free(sub);
}

static void test_repeated_id_one_worker(void **state)
{
	rds_conn *sub = redis(getenv("REDIS_URL"));
	rds_reply *msg = NULL;
	json_t *res, *all;
	int calls;
	(void)state;

	fake_llm_reset(&g_fake);
	fix_script();
	/* the same id three times: twice at once, once after it finished */
	xadd(g_redis, "dup-1", request("dup-1", "dup", TSS_TEST_CMD));
	xadd(g_redis, "dup-1", request("dup-1", "dup", TSS_TEST_CMD));
	res = await_result(g_redis, "dup-1");
	expect_status(res, "done");
	await_no_pending(g_redis);
	calls = fake_llm_count(&g_fake);
	assert_int_equal(calls, 3); /* one agent run */
	assert_int_equal(rds_cmd(sub, NULL, "SUBSCRIBE", "worker:result:dup-1", NULL), 0);
	xadd(g_redis, "dup-1", request("dup-1", "dup", TSS_TEST_CMD));
	/* the stored result is announced again; nothing runs */
	assert_int_equal(rds_read(sub, 30000, &msg), 0);
	assert_string_equal(rds_str(rds_at(msg, 0)), "message");
	assert_non_null(strstr(rds_str(rds_at(msg, 2)), "\"id\":\"dup-1\""));
	rds_reply_free(msg);
	await_no_pending(g_redis);
	assert_int_equal(fake_llm_count(&g_fake), calls);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE id = 'dup-1' AND attempt = 1"),
			 1);
	all = results_for(g_redis, "dup-1");
	assert_int_equal(json_array_size(all), 1); /* one result per id */
	json_decref(all);
	json_decref(res);
	rds_free(sub);
}

static void test_malformed_requests(void **state)
{
	int64_t thread, run;
	json_t *res, *ev;
	rds_reply *r = NULL;
	char entry[64], rid[80], sql[256];
	(void)state;

	fake_llm_reset(&g_fake);
	/* a thread waiting for a worker */
	assert_int_equal(eng_start(g_db, "spawn-bad", "waiter", NULL, NULL, &thread, &run), 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM runs WHERE id = %lld AND status = 'waiting'",
		 (long long)run);
	ts_await_sql(g_db, sql, 1, 60000);

	/* not JSON at all */
	assert_int_equal(rds_cmd(g_redis, NULL, "XADD", SPW_STREAM, "*", "id", "bad-1", "req",
				 "{this is not json", NULL), 0);
	res = await_result(g_redis, "bad-1");
	expect_status(res, "invalid");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "not JSON"));
	json_decref(res);

	/* JSON that names its thread but lacks fields: the thread hears why */
	ev = json_pack("{s:s, s:I, s:s}", "id", "bad-2", "thread_id", (json_int_t)thread, "task",
		       "t");
	xadd(g_redis, "bad-2", ev);
	res = await_result(g_redis, "bad-2");
	expect_status(res, "invalid");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")),
			       "\"project\" is missing"));
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM runs WHERE id = %lld AND status = 'done'",
		 (long long)run);
	ts_await_sql(g_db, sql, 1, 60000);
	ev = sql_json("SELECT value::text FROM events WHERE thread_id = %lld AND key = 'worker'",
		      (long long)thread);
	assert_true(json_equal(ev, res));
	json_decref(ev);
	json_decref(res);

	/* no request and no id: the result is named after the stream entry */
	assert_int_equal(rds_cmd(g_redis, &r, "XADD", SPW_STREAM, "*", "colour", "blue", NULL), 0);
	snprintf(entry, sizeof(entry), "%s", rds_str(r));
	rds_reply_free(r);
	snprintf(rid, sizeof(rid), "entry:%s", entry);
	res = await_result(g_redis, rid);
	expect_status(res, "invalid");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "empty"));
	json_decref(res);

	/* a bad limit, an unknown field, a repository outside the allowed roots */
	ev = request("bad-3", "t", NULL);
	json_object_set_new(ev, "limits", json_pack("{s:i}", "steps", -1));
	xadd(g_redis, "bad-3", ev);
	res = await_result(g_redis, "bad-3");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "limits.steps"));
	json_decref(res);
	ev = request("bad-4", "t", NULL);
	json_object_set_new(ev, "repo", json_string("/etc"));
	xadd(g_redis, "bad-4", ev);
	res = await_result(g_redis, "bad-4");
	expect_status(res, "refused");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")),
			       "ORCH_SPAWN_REPO_ROOTS"));
	json_decref(res);

	await_no_pending(g_redis);
	assert_int_equal(fake_llm_count(&g_fake), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE status = 'invalid'"), 4);
}

/* Poison on the spawn stream: bytes that are not UTF-8 in a request, and a
 * request the database refuses for a reason of its own. Neither stays
 * pending forever nor blocks the entries behind it. */
static void test_poison_requests(void **state)
{
	json_t *res;
	char raw[512];
	(void)state;

	fake_llm_reset(&g_fake);
	/* a producer that does not check its strings */
	snprintf(raw, sizeof(raw),
		 "{\"id\":\"poison-1\",\"task\":\"t\xff\xfe\",\"project\":\"proj-1\","
		 "\"repo\":\"%s\",\"prompt\":\"caf\xe9 \xed\xa0\x80\"}",
		 g_repo);
	assert_int_equal(rds_cmd(g_redis, NULL, "XADD", SPW_STREAM, "*", "id", "poison-1", "req",
				 raw, NULL),
			 0);
	res = await_result(g_redis, "poison-1");
	expect_status(res, "invalid");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "task"));
	json_decref(res);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE id = 'poison-1' AND status = "
				 "'invalid' AND request->>'raw' LIKE '%%\xef\xbf\xbd%%'"),
			 1);

	/* the database refuses one request: tried a bounded number of times,
	 * then set aside with the reason; the entry behind it is handled */
	ts_sql(g_db, "CREATE OR REPLACE FUNCTION t_poison_req() RETURNS trigger LANGUAGE plpgsql "
		     "AS $$ BEGIN IF NEW.id = 'poison-2' THEN RAISE EXCEPTION 'poison request "
		     "refused'; END IF; RETURN NEW; END $$; "
		     "DROP TRIGGER IF EXISTS t_poison_req ON workers; "
		     "CREATE TRIGGER t_poison_req BEFORE INSERT ON workers FOR EACH ROW "
		     "EXECUTE FUNCTION t_poison_req()");
	xadd(g_redis, "poison-2", request("poison-2", "p2", NULL));
	xadd(g_redis, "behind-1", json_pack("{s:s, s:s}", "id", "behind-1", "task", "b1"));
	res = await_result(g_redis, "behind-1");
	expect_status(res, "invalid");
	json_decref(res);
	ts_await_sql(g_db, "SELECT count(*) FROM dead_letters WHERE source = 'spawn.request' AND "
			   "reason LIKE '%handling it failed 3 times%poison request refused%' AND "
			   "body LIKE '%poison-2%'",
		     1, 60000);
	await_no_pending(g_redis);
	ts_sql(g_db, "DROP TRIGGER t_poison_req ON workers");
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE id = 'poison-2'"), 0);
	assert_int_equal(fake_llm_count(&g_fake), 0);
}

static void test_refused_handles(void **state)
{
	json_t *req, *res;
	char *branch;
	(void)state;

	fake_llm_reset(&g_fake);
	req = request("ref-1", "ref1", TSS_TEST_CMD);
	json_object_set_new(req, "handles", json_pack("[s, s]", g_handle_ok,
						      "res_qqqqqqqqqqqqqqqqqqqqqqqqqq"));
	xadd(g_redis, "ref-1", req);
	req = request("ref-2", "ref2", TSS_TEST_CMD);
	json_object_set_new(req, "handles", json_pack("[s]", g_handle_revoked));
	xadd(g_redis, "ref-2", req);

	res = await_result(g_redis, "ref-1");
	expect_status(res, "refused");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "does not exist"));
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")),
			       "res_qqqqqqqqqqqqqqqqqqqqqqqqqq"));
	assert_null(json_object_get(res, "agent"));
	json_decref(res);
	res = await_result(g_redis, "ref-2");
	expect_status(res, "refused");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "revoked"));
	json_decref(res);
	/* no worker started: no model call, no workspace, no branch */
	assert_int_equal(fake_llm_count(&g_fake), 0);
	assert_false(path_exists("%s/workers/%s", "ref-1"));
	branch = git_show("task/ref1:calc.py");
	assert_null(branch);
	assert_int_equal(sql_int("SELECT count(*) FROM secret_audit WHERE action = 'deny' AND actor "
				 "IN ('worker:ref-1', 'worker:ref-2')"), 2);
	await_no_pending(g_redis);
}

static void test_secret_in_the_work_not_pushed(void **state)
{
	json_t *req, *res;
	char *file;
	(void)state;

	fake_llm_reset(&g_fake);
	tss_script(&g_fake, json_pack("[o, o]",
				      tss_bash("echo \"api_token = $TOKEN_A\" > settings.ini && "
					       "echo \"$TOKEN_A\" | base64 > token.b64 && ls"),
				      tss_tool("submit", "{}")));
	req = request("leak-1", "leak1", TSS_TEST_CMD);
	json_object_set_new(req, "handles", json_pack("[s]", g_handle_ok));
	xadd(g_redis, "leak-1", req);
	res = await_result(g_redis, "leak-1");
	expect_status(res, "failed");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "not pushed"));
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "settings.ini"));
	assert_true(json_is_false(json_object_get(res, "pushed")));
	file = git_show("task/leak1:settings.ini");
	assert_null(file);
	{
		char *all = json_dumps(res, JSON_COMPACT);
		assert_null(strstr(all, "value-a-123"));
		free(all);
	}
	json_decref(res);
}

static void test_failing_or_shrinking_tests_not_done(void **state)
{
	json_t *res, *t;
	char *file;
	(void)state;

	/* submitted without fixing: the tests fail */
	fake_llm_reset(&g_fake);
	tss_script(&g_fake, json_pack("[o, o]", tss_bash("cat calc.py"),
				      tss_tool("submit", "{\"summary\": \"looks fine\"}")));
	xadd(g_redis, "fail-1", request("fail-1", "fail1", TSS_TEST_CMD));
	res = await_result(g_redis, "fail-1");
	expect_status(res, "failed");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")),
			       "2 of 3 failed"));
	t = json_object_get(res, "tests");
	assert_string_equal(json_string_value(json_object_get(t, "verdict")), "failed");
	assert_int_equal(json_integer_value(json_object_get(t, "failed")), 2);
	assert_non_null(strstr(json_string_value(json_object_get(t, "output")), "FAILED"));
	assert_true(json_is_false(json_object_get(res, "changed")));
	assert_true(json_is_false(json_object_get(res, "pushed")));
	json_decref(res);

	/* the failing tests deleted: they pass, but there are fewer */
	fake_llm_reset(&g_fake);
	tss_script(&g_fake,
		   json_pack("[o, o]",
			     tss_bash("python3 - <<'EOF'\nimport re\ns = open('test_calc.py').read()\n"
				      "s = re.sub(r'    def test_(small|negative)\\(self\\):\\n.*\\n\\n',"
				      " '', s)\nopen('test_calc.py', 'w').write(s)\nEOF\n"
				      "python3 -m unittest 2>&1 | tail -3"),
			     tss_tool("submit", "{}")));
	xadd(g_redis, "shrink-1", request("shrink-1", "shrink1", TSS_TEST_CMD));
	res = await_result(g_redis, "shrink-1");
	expect_status(res, "failed");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "fewer"));
	t = json_object_get(res, "tests");
	assert_string_equal(json_string_value(json_object_get(t, "verdict")), "shrank");
	assert_int_equal(json_integer_value(json_object_get(t, "total")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "base"), "total")), 3);
	/* the work is not lost: it is pushed for a reviewer to see */
	assert_true(json_is_true(json_object_get(res, "pushed")));
	file = git_show("task/shrink1:test_calc.py");
	assert_non_null(file);
	assert_null(strstr(file, "test_small"));
	free(file);
	json_decref(res);
}

/* The first request the fake model received, as compact JSON text. Owned. */
static char *first_request_text(void)
{
	json_t *reqs = fake_llm_requests(&g_fake);
	char *text = json_dumps(json_array_get(reqs, 0), JSON_COMPACT);

	json_decref(reqs);
	assert_non_null(text);
	return text;
}

static void test_agents_md(void **state)
{
	json_t *req, *res;
	char *text;
	(void)state;

	/* the repository's AGENTS.md is in the task prompt */
	fake_llm_reset(&g_fake);
	tss_script(&g_fake, json_pack("[o]", tss_tool("submit", "{}")));
	xadd(g_redis, "notes-1", request("notes-1", "notes1", NULL));
	res = await_result(g_redis, "notes-1");
	json_decref(res);
	text = first_request_text();
	assert_non_null(strstr(text, "<agents_md>\\n# Notes for agents\\n\\nKeep functions small "
				     "and typed.\\n</agents_md>"));
	free(text);

	/* a symbolic link in its place is not followed: no host file reaches the model */
	fake_llm_reset(&g_fake);
	tss_script(&g_fake, json_pack("[o]", tss_tool("submit", "{}")));
	req = request("notes-2", "notes2", NULL);
	json_object_set_new(req, "base", json_string("linked"));
	xadd(g_redis, "notes-2", req);
	res = await_result(g_redis, "notes-2");
	json_decref(res);
	text = first_request_text();
	assert_null(strstr(text, "<agents_md>"));
	assert_null(strstr(text, "root:"));
	free(text);
}

/* orch_spawner_workers{phase=...} as this process renders it now. */
static double phase_value(const char *phase)
{
	char key[96];
	const char *at;
	double v = 0;
	buf b;

	buf_init(&b, 64 << 20);
	assert_int_equal(met_render(&b), 0);
	snprintf(key, sizeof(key), "\norch_spawner_workers{phase=\"%s\"} ", phase);
	at = strstr(buf_cstr(&b), key);
	if (at)
		v = strtod(at + strlen(key), NULL);
	buf_free(&b);
	return v;
}

static double phases_total(void)
{
	static const char *const all[] = {"preparing", "cloning", "base_tests", "agent", "tests",
					  "rebasing", "pushing", "reporting"};
	double n = 0;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		n += phase_value(all[i]);
	return n;
}

/* /metrics: the spawner's workers by phase. A worker whose model takes a
 * while to answer is seen in the phase "agent"; once its result is out, no
 * worker is counted in any phase. */
static void test_workers_by_phase(void **state)
{
	json_t *slow = tss_bash("true"), *res;
	int seen = 0;
	(void)state;

	fake_llm_reset(&g_fake);
	json_object_set_new(slow, "delay_ms", json_integer(1500));
	tss_script(&g_fake, json_pack("[o, o]", slow, tss_tool("submit", "{}")));
	assert_true(phases_total() == 0);
	xadd(g_redis, "phase-1", request("phase-1", "phase1", NULL));
	for (int64_t until = util_mono_ms() + 60000; !seen && util_mono_ms() < until;
	     util_sleep_ms(20))
		seen = phase_value("agent") == 1;
	assert_true(seen);
	assert_true(phases_total() == 1);
	res = await_result(g_redis, "phase-1");
	expect_status(res, "unverified");
	json_decref(res);
	for (int64_t until = util_mono_ms() + 10000; phases_total() != 0 && util_mono_ms() < until;
	     util_sleep_ms(20))
		;
	assert_true(phases_total() == 0);
}

/* `orchestrator logs`: a worker followed live until its result, then read
 * back from its transcript. */
static void test_logs_cli(void **state)
{
	buf out;
	json_t *res;
	char sql[128];
	(void)state;

	fake_llm_reset(&g_fake);
	tss_script(&g_fake, json_pack("[o, o, o]", tss_bash("cat calc.py"),
				      tss_delay(tss_bash("echo live-$((6 * 7))"), 3000),
				      tss_tool("submit", "{\"summary\": \"looked around\"}")));
	xadd(g_redis, "logs-1", request("logs-1", "logs1", NULL));
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM workers WHERE id = 'logs-1'");
	ts_await_sql(g_db, sql, 1, 60000);

	/* followed: what was done so far, the live lines, the result; then it exits */
	buf_init(&out, 0);
	assert_int_equal(tss_sh(&out, "'%s' logs logs-1 --follow 2>&1", ts_bin()), 0);
	assert_non_null(strstr(buf_cstr(&out), "worker logs-1: task logs1 of project proj-1"));
	assert_non_null(strstr(buf_cstr(&out), "echo live-$((6 * 7))"));
	assert_non_null(strstr(buf_cstr(&out), "action: "));  /* a live line */
	assert_non_null(strstr(buf_cstr(&out), "result: unverified"));
	res = await_result(g_redis, "logs-1");
	json_decref(res);

	/* the progress the spawner kept: the agent's commands, the last phase */
	{
		json_t *p = sql_json("SELECT progress::text FROM workers WHERE id = 'logs-1'");
		assert_int_equal(json_integer_value(json_object_get(p, "step")), 2);
		assert_string_equal(json_string_value(json_object_get(p, "action")),
				    "$ echo live-$((6 * 7))");
		assert_non_null(strstr(json_string_value(json_object_get(p, "phase")),
				       "worker logs-1 ended"));
		assert_true(json_integer_value(json_object_get(p, "at")) > 0);
		json_decref(p);
	}

	/* afterwards, from the transcript: commands, exit codes, output, the end */
	buf_reset(&out);
	assert_int_equal(tss_sh(&out, "'%s' logs logs-1 2>&1", ts_bin()), 0);
	assert_non_null(strstr(buf_cstr(&out), "agent started (at most"));
	assert_non_null(strstr(buf_cstr(&out), "[1] $ cat calc.py\n     exit 0\n"
					       "     | def add(a, b):\n"));
	assert_non_null(strstr(buf_cstr(&out), "     | live-42\n"));
	assert_non_null(strstr(buf_cstr(&out), "[3] submit"));
	assert_non_null(strstr(buf_cstr(&out), "agent ended: submitted"));
	assert_non_null(strstr(buf_cstr(&out), "    | looked around"));
	assert_non_null(strstr(buf_cstr(&out), "result: unverified"));

	/* --json: the transcript's lines as they are */
	buf_reset(&out);
	assert_int_equal(tss_sh(&out, "'%s' logs logs-1 --json | head -1", ts_bin()), 0);
	{
		json_t *first = ts_json(buf_cstr(&out));
		assert_string_equal(json_string_value(json_object_get(first, "type")), "start");
		json_decref(first);
	}

	/* unknown ids and bad arguments say so */
	buf_reset(&out);
	assert_int_equal(tss_sh(&out, "'%s' logs no-such-worker 2>&1", ts_bin()), 1);
	assert_non_null(strstr(buf_cstr(&out), "no worker 'no-such-worker'"));
	buf_reset(&out);
	assert_int_equal(tss_sh(&out, "'%s' logs ../etc 2>&1", ts_bin()), 2);
	buf_reset(&out);
	assert_int_equal(tss_sh(&out, "'%s' logs 2>&1", ts_bin()), 2);
	buf_free(&out);
}

/* --- a repository behind HTTP with credentials --- */

static void cli(const char *args, char *out, size_t cap);

/* Starts tests/fakes/git_http.py over `root` for user:password; its port
 * goes to *port. Returns its pid. */
static pid_t start_git_http(const char *root, const char *user, const char *password,
			    const char *log, int *port)
{
	int fds[2];
	pid_t pid;
	char line[32] = "";
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execlp("python3", "python3", "tests/fakes/git_http.py", "--root", root, "--user", user,
		       "--password", password, "--log", log, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	/* the first line is the port; it may come in more than one piece */
	for (size_t got = 0; got < sizeof(line) - 1 && !strchr(line, '\n'); got += (size_t)n) {
		n = read(fds[0], line + got, sizeof(line) - 1 - got);
		if (n <= 0)
			fail_msg("the git HTTP server did not start");
		line[got + (size_t)n] = '\0';
	}
	close(fds[0]);
	*port = atoi(line);
	assert_true(*port > 0);
	return pid;
}

/* Stores `value` as the secret `name` and allocates a git handle for the
 * test project into out. */
static void git_handle(const char *name, const char *value, char *out, size_t cap)
{
	char args[200];

	if (tss_sh(NULL, "printf '%s' | '%s' secrets set %s >/dev/null", value, ts_bin(), name))
		fail_msg("secrets set %s failed", name);
	snprintf(args, sizeof(args), "resources allocate --scope proj-1 --secret %s --kind git",
		 name);
	cli(args, out, cap);
}

static void test_http_remote_with_credentials(void **state)
{
	char root[1024], log[1100], url[200], good[64], wrong[64], path[1200];
	json_t *req, *res;
	buf b;
	int port, st;
	pid_t srv;
	char *text;
	(void)state;

	snprintf(root, sizeof(root), "%s/githttp", getenv("ORCH_DATA_DIR"));
	snprintf(log, sizeof(log), "%s/githttp.log", getenv("ORCH_DATA_DIR"));
	if (tss_sh(NULL, "rm -rf '%s' && mkdir -p '%s' && git clone -q --bare '%s' '%s/remote.git' "
			 "&& git -C '%s/remote.git' config http.receivepack true",
		   root, root, g_repo, root, root))
		fail_msg("cannot create the served repository");
	srv = start_git_http(root, "agent", "pw-http-7781", log, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/remote.git", port);
	git_handle("GIT_HTTP_OK", "agent:pw-http-7781", good, sizeof(good));
	git_handle("GIT_HTTP_WRONG", "agent:not-the-password", wrong, sizeof(wrong));

	/* granted: cloned, worked on, tested and pushed back over HTTP */
	fake_llm_reset(&g_fake);
	fix_script();
	req = request("http-1", "http1", TSS_TEST_CMD);
	json_object_set_new(req, "repo", json_string(url));
	json_object_set_new(req, "repo_secret", json_string(good));
	xadd(g_redis, "http-1", req);
	res = await_result(g_redis, "http-1");
	expect_status(res, "done");
	assert_true(json_is_true(json_object_get(res, "pushed")));
	text = json_dumps(res, JSON_COMPACT);
	assert_null(strstr(text, "pw-http-7781"));
	free(text);
	json_decref(res);
	buf_init(&b, 0);
	assert_int_equal(tss_sh(&b, "git --git-dir='%s/remote.git' show task/http1:calc.py", root),
			 0);
	assert_non_null(strstr(buf_cstr(&b), "return a + b"));
	/* the server challenged, then got the credentials: fetch and push */
	buf_reset(&b);
	assert_int_equal(tss_sh(&b, "cat '%s'", log), 0);
	assert_non_null(strstr(buf_cstr(&b), "401 GET /remote.git/info/refs?service=git-upload-pack"));
	assert_non_null(strstr(buf_cstr(&b), "200 POST /remote.git/git-upload-pack agent"));
	assert_non_null(strstr(buf_cstr(&b), "200 POST /remote.git/git-receive-pack agent"));
	/* the password is in no transcript line */
	snprintf(path, sizeof(path), "%s/transcripts/http-1.jsonl", getenv("ORCH_DATA_DIR"));
	buf_reset(&b);
	assert_int_equal(tss_sh(&b, "cat '%s'", path), 0);
	assert_true(b.len > 0);
	assert_null(strstr(buf_cstr(&b), "pw-http-7781"));

	/* the wrong password, or none: refused, saying why; nothing pushed */
	fake_llm_reset(&g_fake);
	req = request("http-2", "http2", TSS_TEST_CMD);
	json_object_set_new(req, "repo", json_string(url));
	json_object_set_new(req, "repo_secret", json_string(wrong));
	xadd(g_redis, "http-2", req);
	res = await_result(g_redis, "http-2");
	expect_status(res, "refused");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "auth"));
	text = json_dumps(res, JSON_COMPACT);
	assert_null(strstr(text, "not-the-password"));
	free(text);
	json_decref(res);
	req = request("http-3", "http3", TSS_TEST_CMD);
	json_object_set_new(req, "repo", json_string(url));
	xadd(g_redis, "http-3", req);
	res = await_result(g_redis, "http-3");
	expect_status(res, "refused");
	json_decref(res);
	assert_int_equal(fake_llm_count(&g_fake), 0); /* no agent ran */
	buf_reset(&b);
	assert_int_equal(tss_sh(&b, "git --git-dir='%s/remote.git' branch --list 'task/http[23]'",
				root), 0);
	assert_string_equal(buf_cstr(&b), "");
	buf_free(&b);

	kill(srv, SIGTERM);
	assert_int_equal(waitpid(srv, &st, 0), srv);
}

static void test_hostile_agent_contained(void **state)
{
	json_t *req, *res;
	(void)state;

	fake_llm_reset(&g_fake);
	tss_script(&g_fake,
		   json_pack("[o, o, o, o, o, o]",
			     tss_bash("bomb() { bomb | bomb & }; bomb; sleep 2; echo still-here"),
			     tss_bash("kill -9 -1; echo after-kill"),
			     tss_bash("cat /etc/shadow; echo key=$ORCH_MASTER_KEY; "
				      "echo url=$DATABASE_URL; ls /proc/1/root 2>&1 | head -3"),
			     tss_bash("head -c 100000000 /dev/zero > big.bin; ls -la big.bin; "
				      "rm -f big.bin"),
			     tss_tool("submit", "{}"),
			     tss_tool("submit", "{}")));
	req = request("evil-1", "evil", NULL);
	json_object_set_new(req, "limits", json_pack("{s:i, s:i, s:s}", "cmd_timeout_s", 10, "pids",
						     64, "disk", "32M"));
	xadd(g_redis, "evil-1", req);
	res = await_result(g_redis, "evil-1");
	/* contained, and the worker got through its task */
	expect_status(res, "unverified");
	json_decref(res);
	{
		json_t *reqs = fake_llm_requests(&g_fake);
		char *all = json_dumps(reqs, JSON_COMPACT);

		assert_null(strstr(all, "root:")); /* no /etc/shadow */
		assert_non_null(strstr(all, "key=\\n"));
		assert_non_null(strstr(all, "url=\\n"));
		free(all);
		json_decref(reqs);
	}
	/* the spawner still serves */
	fake_llm_reset(&g_fake);
	tss_script(&g_fake, json_pack("[o, o]", tss_bash("echo hello > hello.txt"),
				      tss_tool("submit", "{}")));
	xadd(g_redis, "after-evil", request("after-evil", "after", NULL));
	res = await_result(g_redis, "after-evil");
	expect_status(res, "unverified");
	assert_true(json_is_true(json_object_get(res, "pushed")));
	json_decref(res);
	assert_int_equal(kill(getpid(), 0), 0);
}

/* What a dead spawner (pid `owner`) may have left of worker `id`: cgroups
 * of its sandboxes, mounts and the worker's folder, processes working in
 * it. Fails the test naming what is left. */
static void nothing_left_of(pid_t owner, const char *id)
{
	char dir[1024], line[4096];
	buf out;
	FILE *f;

	buf_init(&out, 0);
	if (tss_sh(&out, "find /sys/fs/cgroup -maxdepth 8 -type d -name 'orch-sbx-%d-*' "
			 "2>/dev/null",
		   (int)owner) == 0 &&
	    out.len > 0)
		fail_msg("cgroups of the dead spawner's sandboxes are left:\n%s", buf_cstr(&out));
	buf_free(&out);
	snprintf(dir, sizeof(dir), "%s/workers/%s", getenv("ORCH_DATA_DIR"), id);
	f = fopen("/proc/self/mountinfo", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, dir))
			fail_msg("a mount of the dead spawner's worker is left: %s", line);
	fclose(f);
	if (access(dir, F_OK) == 0)
		fail_msg("the worker's folder %s is left", dir);
	/* every process of its sandboxes was in one of their groups */
	{
		char group[64];
		DIR *d = opendir("/proc");
		struct dirent *e;

		snprintf(group, sizeof(group), "/orch-sbx-%d-", (int)owner);
		assert_non_null(d);
		while ((e = readdir(d))) {
			char path[300], text[4096];
			size_t n;

			if (e->d_name[0] < '0' || e->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/cgroup", e->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			n = fread(text, 1, sizeof(text) - 1, f);
			fclose(f);
			text[n] = '\0';
			if (strstr(text, group))
				fail_msg("process %s of the dead spawner's sandboxes is left", e->d_name);
		}
		closedir(d);
	}
}

static void private_config(spw_config *cfg, const char *url)
{
	assert_int_equal(spw_config_from_env(cfg, url, getenv("ORCH_DATA_DIR")), 0);
	cfg->relay = 0;
	cfg->max_workers = 1;
}

static void test_redis_restart_loses_nothing(void **state)
{
	spw_config cfg;
	spw_spawner *sp = NULL;
	rds_conn *c = redis(g_private.url);
	json_t *a, *b, *all;
	int64_t down_at, up_at;
	(void)state;

	fake_llm_reset(&g_fake);
	tss_script(&g_fake, json_pack("[o, o, o]", tss_delay(tss_bash("echo one > one.txt"), 1500),
				      tss_tool("submit", "{}"), tss_tool("submit", "{}")));
	private_config(&cfg, g_private.url);
	assert_int_equal(spw_new(&sp, &cfg, g_pool, g_llm), 0);
	assert_int_equal(spw_start(sp), 0);
	/* one worker at a time: rr-2 waits in the stream while rr-1 runs */
	xadd(c, "rr-1", request("rr-1", "rr1", NULL));
	xadd(c, "rr-2", request("rr-2", "rr2", NULL));
	ts_await_sql(g_db, "SELECT count(*) FROM workers WHERE id = 'rr-1' AND state = 'running'", 1,
		     60000);
	for (int i = 0; i < 2000 && fake_llm_count(&g_fake) < 1; i++)
		util_sleep_ms(10);
	/* the server restarts while rr-1's model call is in flight */
	down_at = util_mono_ms();
	tss_redis_stop(&g_private);
	tss_redis_start(&g_private);
	up_at = util_mono_ms();
	a = await_result(c, "rr-1");
	b = await_result(c, "rr-2");
	printf("# recovery: Redis was down %lld ms; both results were delivered %lld ms after it "
	       "was back\n",
	       (long long)(up_at - down_at), (long long)(util_mono_ms() - up_at));
	expect_status(a, "unverified");
	expect_status(b, "unverified");
	await_no_pending(c);
	all = results_for(c, "rr-1");
	assert_int_equal(json_array_size(all), 1);
	json_decref(all);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE id IN ('rr-1', 'rr-2') AND "
				 "state = 'finished' AND attempt = 1"), 2);
	json_decref(a);
	json_decref(b);
	/* a spawner stopped and started again takes requests again */
	spw_stop(sp);
	assert_int_equal(spw_start(sp), 0);
	tss_script(&g_fake, json_pack("[o]", tss_tool("submit", "{}")));
	xadd(c, "rr-3", request("rr-3", "rr3", NULL));
	a = await_result(c, "rr-3");
	expect_status(a, "unverified");
	json_decref(a);
	spw_free(sp);
	rds_free(c);
}

static void test_killed_spawner_reclaimed(void **state)
{
	spw_config cfg;
	spw_spawner *sp = NULL;
	rds_conn *c = redis(g_private.url);
	int64_t thread, run, killed_at;
	pid_t pid;
	char sql[512], logf[1024];
	json_t *req, *res, *all;
	int st;
	(void)state;

	fake_llm_reset(&g_fake);
	/* the first spawner's model call never returns; the second one's do */
	tss_script(&g_fake, json_pack("[o]", tss_delay(tss_bash("echo first > first.txt"), 600000)));
	fix_script();
	assert_int_equal(eng_start(g_db, "spawn-kill", "waiter", NULL, NULL, &thread, &run), 0);
	snprintf(logf, sizeof(logf), "%s/spawner-a.log", getenv("ORCH_DATA_DIR"));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setenv("REDIS_URL", g_private.url, 1);
		setenv("ORCH_SPAWN_RELAY", "0", 1);
		setenv("ORCH_LOG_LEVEL", "info", 1);
		if (!freopen(logf, "w", stderr))
			_exit(126);
		execl(ts_bin(), ts_bin(), "spawner", "--workers", "1", (char *)NULL);
		_exit(127);
	}
	req = request("kill-1", "kill1", TSS_TEST_CMD);
	json_object_set_new(req, "thread_id", json_integer(thread));
	xadd(c, "kill-1", req);
	/* mid-task: its worker runs and waits for the model */
	ts_await_sql(g_db, "SELECT count(*) FROM workers WHERE id = 'kill-1' AND state = 'running'",
		     1, 60000);
	for (int i = 0; i < 6000 && fake_llm_count(&g_fake) < 1; i++)
		util_sleep_ms(10);
	assert_int_equal(fake_llm_count(&g_fake), 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM workers WHERE id = 'kill-1' AND owner LIKE "
				   "'%%-%d-%%'", (int)pid);
	assert_int_equal(ts_sql_int(g_db, sql), 1);
	kill(pid, SIGKILL);
	killed_at = util_mono_ms();
	waitpid(pid, &st, 0);

	/* another spawner reclaims the entry once it is idle and the lease expired */
	private_config(&cfg, g_private.url);
	assert_int_equal(spw_new(&sp, &cfg, g_pool, g_llm), 0);
	assert_int_equal(spw_start(sp), 0);
	res = await_result(c, "kill-1");
	printf("# recovery: the killed spawner's request was reclaimed and its result delivered "
	       "%lld ms after the kill (ORCH_SPAWN_CLAIM_IDLE %lld ms)\n",
	       (long long)(util_mono_ms() - killed_at), (long long)cfg.claim_idle_ms);
	expect_status(res, "done");
	assert_int_equal(json_integer_value(json_object_get(res, "attempt")), 2);
	await_no_pending(c);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM runs WHERE id = %lld AND status = 'done'",
		 (long long)run);
	ts_await_sql(g_db, sql, 1, 60000);
	/* exactly one result: on the stream, as an event, in the record */
	all = results_for(c, "kill-1");
	assert_int_equal(json_array_size(all), 1);
	json_decref(all);
	assert_int_equal(sql_int("SELECT count(*) FROM events WHERE idem = 'spawn:kill-1'"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE id = 'kill-1' AND attempt = 2 "
				 "AND status = 'done' AND owner = '%s'", spw_id(sp)), 1);
	assert_int_equal(fake_llm_count(&g_fake), 4); /* 1 lost with the first spawner + 3 */
	/* nothing is left of the dead spawner's worker: no cgroups, mounts,
	 * folder or processes */
	nothing_left_of(pid, "kill-1");
	json_decref(res);
	spw_free(sp);
	rds_free(c);
}

/* A full disk under ORCH_DATA_DIR (a size-limited tmpfs): a worker fails
 * with a clear reason, the project's repository is intact, and once there is
 * room again the next request works. */
static void test_full_disk(void **state)
{
	char root[1024], repos[1100], repo[1200], fill[1100], before[64], after[64];
	spw_config cfg;
	spw_spawner *sp = NULL;
	rds_conn *c = NULL;
	buf out;
	json_t *res;
	int64_t freed_at;
	(void)state;

	snprintf(root, sizeof(root), "%s/full-disk", getenv("ORCH_DATA_DIR"));
	mkdir(root, 0700);
	if (geteuid() != 0 || tss_sh(NULL, "mount -t tmpfs -o size=16m,mode=0700 tmpfs '%s' "
					   "2>/dev/null",
				     root) != 0) {
		printf("# skipped: a size-limited file system for ORCH_DATA_DIR cannot be mounted "
		       "here (needs root and tmpfs)\n");
		return;
	}
	snprintf(repos, sizeof(repos), "%s/repos", root);
	snprintf(repo, sizeof(repo), "%s/full.git", repos);
	snprintf(fill, sizeof(fill), "%s/filler", root);
	mkdir(repos, 0700);
	if (tss_sh(NULL, "git clone -q --bare '%s' '%s'", g_repo, repo) != 0)
		fail_msg("cannot copy the project repository");
	buf_init(&out, 0);
	tss_sh(&out, "git -C '%s' rev-parse main", repo);
	snprintf(before, sizeof(before), "%.40s", buf_cstr(&out));
	buf_free(&out);
	/* the disk is full */
	tss_sh(NULL, "dd if=/dev/zero of='%s' bs=64k 2>/dev/null; sync", fill);

	fake_llm_reset(&g_fake);
	assert_int_equal(spw_config_from_env(&cfg, g_private.url, root), 0);
	cfg.relay = 0;
	cfg.max_workers = 1;
	snprintf(cfg.repo_roots, sizeof(cfg.repo_roots), "%s", repos);
	assert_int_equal(spw_new(&sp, &cfg, g_pool, g_llm), 0);
	assert_int_equal(spw_start(sp), 0);
	c = redis(g_private.url);
	{
		json_t *rq = request("full-1", "full1", TSS_TEST_CMD);
		json_object_set_new(rq, "repo", json_string(repo));
		xadd(c, "full-1", rq);
	}
	res = await_result(c, "full-1");
	{
		const char *status = json_string_value(json_object_get(res, "status"));
		const char *reason = json_string_value(json_object_get(res, "reason"));
		printf("# on a full disk: %s: %s\n", status, reason);
		if (strcmp(status, "error") != 0 && strcmp(status, "failed") != 0)
			fail_msg("a worker on a full disk ended %s", status);
		if (!strstr(reason, "No space left on device") && !strstr(reason, "disk is full") &&
		    !strstr(reason, "disk full"))
			fail_msg("the reason does not say the disk is full: %s", reason);
	}
	json_decref(res);
	/* the repository is intact */
	buf_init(&out, 0);
	assert_int_equal(tss_sh(&out, "git -C '%s' fsck --strict 2>&1 && git -C '%s' rev-parse main",
				repo, repo),
			 0);
	assert_non_null(strstr(buf_cstr(&out), before));
	buf_free(&out);
	/* room again: the next request works */
	unlink(fill);
	freed_at = util_mono_ms();
	fix_script();
	{
		json_t *rq = request("full-2", "full2", TSS_TEST_CMD);
		json_object_set_new(rq, "repo", json_string(repo));
		xadd(c, "full-2", rq);
	}
	res = await_result(c, "full-2");
	printf("# recovery: with room on the disk again, the next worker finished %lld ms later\n",
	       (long long)(util_mono_ms() - freed_at));
	expect_status(res, "done");
	json_decref(res);
	buf_init(&out, 0);
	assert_int_equal(tss_sh(&out, "git -C '%s' fsck --strict 2>&1 && git -C '%s' rev-parse main",
				repo, repo),
			 0);
	snprintf(after, sizeof(after), "%.40s", buf_cstr(&out));
	buf_free(&out);
	assert_string_equal(after, before);
	/* a merge into the repository while the disk is full again: refused with
	 * the reason, main untouched, the repository intact */
	tss_sh(NULL, "dd if=/dev/zero of='%s' bs=64k 2>/dev/null; sync", fill);
	{
		json_t *rq = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", "full-merge",
				       "mode", "merge", "task", "full2", "project", "proj-1", "repo",
				       repo, "target", "main", "test_command", TSS_TEST_CMD);
		xadd(c, "full-merge", rq);
	}
	res = await_result(c, "full-merge");
	printf("# a merge on a full disk: %s: %s\n",
	       json_string_value(json_object_get(res, "status")),
	       json_string_value(json_object_get(res, "reason")));
	if (strcmp(json_string_value(json_object_get(res, "status")), "done") == 0)
		fail_msg("a merge on a full disk reports done");
	json_decref(res);
	buf_init(&out, 0);
	assert_int_equal(tss_sh(&out, "git -C '%s' fsck --strict 2>&1 && git -C '%s' rev-parse main",
				repo, repo),
			 0);
	assert_non_null(strstr(buf_cstr(&out), before));
	buf_free(&out);
	unlink(fill);
	await_no_pending(c);
	spw_free(sp);
	rds_free(c);
	tss_sh(NULL, "umount -l '%s'", root);
}

static void test_gives_up_after_dead_spawners(void **state)
{
	json_t *res;
	(void)state;

	fake_llm_reset(&g_fake);
	/* three spawners died running it: its lease expired on attempt 3 */
	ts_sql(g_db, "INSERT INTO workers (id, task, project, owner, attempt, lease_until) VALUES "
		     "('doomed-1', 'doomed', 'proj-1', 'gone-1-x', 3, now() - interval '1 minute')");
	xadd(g_redis, "doomed-1", request("doomed-1", "doomed", NULL));
	res = await_result(g_redis, "doomed-1");
	expect_status(res, "error");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")),
			       "gave up after 3 attempts"));
	assert_int_equal(fake_llm_count(&g_fake), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE id = 'doomed-1' AND state = "
				 "'finished' AND attempt = 4"), 1);
	await_no_pending(g_redis);
	json_decref(res);
}

static void test_cleanup_removes_dead_workspaces(void **state)
{
	char dir[1024];
	int removed = -1;
	(void)state;

	/* a workspace left by a worker that finished, and one nobody knows */
	snprintf(dir, sizeof(dir), "%s/workers/fail-1/ws/sub", getenv("ORCH_DATA_DIR"));
	assert_int_equal(tss_sh(NULL, "mkdir -p '%s' && touch '%s/f'", dir, dir), 0);
	snprintf(dir, sizeof(dir), "%s/workers/stray-9/ws", getenv("ORCH_DATA_DIR"));
	assert_int_equal(tss_sh(NULL, "mkdir -p '%s'", dir), 0);
	assert_int_equal(spw_cleanup(g_spawner, &removed), 0);
	assert_int_equal(removed, 2);
	assert_false(path_exists("%s/workers/%s", "fail-1"));
	assert_false(path_exists("%s/workers/%s", "stray-9"));
}

static void test_serve_runs_the_spawner(void **state)
{
	rds_conn *c = redis(g_private.url);
	json_t *res;
	buf out;
	pid_t pid;
	int st;
	(void)state;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setenv("REDIS_URL", g_private.url, 1);
		setenv("ORCH_SPAWN_RELAY", "0", 1);
		setenv("ORCH_ENGINE_THREADS", "1", 1);
		if (!freopen("/dev/null", "w", stderr))
			_exit(126);
		execl(ts_bin(), ts_bin(), "serve", (char *)NULL);
		_exit(127);
	}
	xadd(c, "serve-1", json_pack("{s:s}", "id", "serve-1"));
	res = await_result(c, "serve-1");
	expect_status(res, "invalid");
	json_decref(res);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	rds_free(c);

	/* a bad setting stops the spawner at start-up, naming the variable */
	buf_init(&out, 0);
	assert_int_equal(tss_sh(&out, "ORCH_MAX_WORKERS=0 '%s' spawner 2>&1", ts_bin()), 1);
	assert_non_null(strstr(buf_cstr(&out), "ORCH_MAX_WORKERS"));
	buf_reset(&out);
	assert_int_equal(tss_sh(&out, "ORCH_WORKER_DISK_KIND=floppy '%s' spawner 2>&1", ts_bin()), 1);
	assert_non_null(strstr(buf_cstr(&out), "ORCH_WORKER_DISK_KIND"));
	buf_free(&out);
}

/* --- setup --- */

static void cli(const char *args, char *out, size_t cap)
{
	buf b;

	buf_init(&b, 0);
	if (tss_sh(&b, "'%s' %s", ts_bin(), args) != 0)
		fail_msg("orchestrator %s failed: %s", args, buf_cstr(&b));
	if (out) {
		size_t n = strcspn(buf_cstr(&b), "\n");
		snprintf(out, cap, "%.*s", (int)n, buf_cstr(&b));
	}
	buf_free(&b);
}


/* --- merge and publish requests (no agent) --- */

/* Creates branch task/<name> of the repository `repo` from `from` with the
 * shell commands `edit` run in a work tree, committed. */
static void make_branch(const char *repo, const char *name, const char *from, const char *edit)
{
	char work[1024];

	snprintf(work, sizeof(work), "%s/branch-%s", getenv("ORCH_DATA_DIR"), name);
	if (tss_sh(NULL,
		   "set -e; rm -rf '%s'; git clone -q '%s' '%s'; cd '%s'; git checkout -q '%s'; "
		   "git checkout -q -b 'task/%s'\n%s\ngit add -A; "
		   "git -c user.name=t -c user.email=t@t commit -qm 'task %s'; "
		   "git push -q origin 'task/%s'",
		   work, repo, work, work, from, name, edit, name, name) != 0)
		fail_msg("could not make the branch task/%s", name);
}

static char *rev(const char *repo, const char *ref)
{
	buf b;

	buf_init(&b, 0);
	if (tss_sh(&b, "git --git-dir='%s' rev-parse '%s' 2>/dev/null", repo, ref) != 0) {
		buf_free(&b);
		return NULL;
	}
	while (b.len && b.data[b.len - 1] == '\n')
		b.data[--b.len] = '\0';
	return buf_steal(&b);
}

static char *show(const char *repo, const char *rev_path)
{
	buf b;

	buf_init(&b, 0);
	if (tss_sh(&b, "git --git-dir='%s' show '%s' 2>/dev/null", repo, rev_path) != 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static json_t *merge_request(const char *id, const char *repo, const char *task)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "mode", "merge", "task",
			 task, "project", "proj-1", "repo", repo, "target", "main", "test_command",
			 TSS_TEST_CMD);
}

/* A change's baseline: mode "test" runs the tests on the base and nothing
 * else; a worker given the baseline's failing tests (allowed_failures) is
 * done when no more fail and none that passed stopped passing, and failed
 * when one that passed fails. */
static void test_baseline_allowed_failures(void **state)
{
	json_t *req, *res, *tests;
	char *main0 = NULL;
	(void)state;

	fake_llm_reset(&g_fake);
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", "bl-1", "mode", "test", "task",
			"baseline", "project", "proj-1", "repo", g_repo, "base", "main",
			"test_command", TSS_TEST_CMD);
	xadd(g_redis, "bl-1", req);
	res = await_result(g_redis, "bl-1");
	expect_status(res, "done");
	tests = json_object_get(res, "tests");
	assert_int_equal(json_integer_value(json_object_get(tests, "passed")), 1);
	assert_int_equal(json_integer_value(json_object_get(tests, "failed")), 2);
	assert_string_equal(json_string_value(json_object_get(tests, "verdict")), "failed");
	main0 = git_show("main");
	assert_non_null(strstr(main0, json_string_value(json_object_get(res, "commit"))));
	assert_null(json_object_get(res, "agent")); /* no agent ran */
	tests = json_incref(tests);
	json_decref(res);

	/* a new passing test beside the two failing ones: done, as the baseline allows */
	tss_script(&g_fake, json_pack("[o, o]",
				      tss_bash("printf 'import unittest\n\n\nclass T(unittest.TestCase):"
					       "\n    def test_x(self):\n        self.assertTrue(True)"
					       "\n' > test_extra.py"),
				      tss_tool("submit", "{}")));
	req = request("bl-2", "bl2", TSS_TEST_CMD);
	json_object_set_new(req, "allowed_failures", json_integer(2));
	xadd(g_redis, "bl-2", req);
	res = await_result(g_redis, "bl-2");
	expect_status(res, "done");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "as on the base"));
	json_decref(res);
	/* the same without the baseline: failed, as ever */
	tss_script(&g_fake, json_pack("[o, o]", tss_bash("echo nothing"), tss_tool("submit", "{}")));
	xadd(g_redis, "bl-3", request("bl-3", "bl3", TSS_TEST_CMD));
	res = await_result(g_redis, "bl-3");
	expect_status(res, "failed");
	json_decref(res);
	/* the baseline named them: the two that fail on the base */
	{
		json_t *names = json_object_get(tests, "failing");
		assert_int_equal(json_array_size(names), 2);
		assert_non_null(strstr(json_string_value(json_array_get(names, 0)), "test_negative"));
		assert_non_null(strstr(json_string_value(json_array_get(names, 1)), "test_small"));
	}
	/* fixing both failing tests and breaking the one that passed: the counts accept it
	 * (1 failure of 2 allowed, 2 passing where 1 passed), the names do not */
	tss_script(&g_fake, json_pack("[o, o]",
				      tss_bash("sed -i 's/a - b/a + b + (1 if a == 0 else 0)/' calc.py"),
				      tss_tool("submit", "{}")));
	req = request("bl-5", "bl5", TSS_TEST_CMD);
	json_object_set_new(req, "allowed_failures", json_integer(2));
	xadd(g_redis, "bl-5", req);
	res = await_result(g_redis, "bl-5");
	expect_status(res, "done");
	json_decref(res);
	tss_script(&g_fake, json_pack("[o, o]",
				      tss_bash("sed -i 's/a - b/a + b + (1 if a == 0 else 0)/' calc.py"),
				      tss_tool("submit", "{}")));
	req = request("bl-6", "bl6", TSS_TEST_CMD);
	json_object_set_new(req, "allowed_failures", json_integer(2));
	json_object_set(req, "allowed_failing", json_object_get(tests, "failing"));
	xadd(g_redis, "bl-6", req);
	res = await_result(g_redis, "bl-6");
	expect_status(res, "failed");
	assert_non_null(strstr(json_string_value(json_array_get(json_object_get(
				       json_object_get(res, "tests"), "failing"), 0)), "test_zero"));
	json_decref(res);
	/* breaking the test that passed: failed, whatever the allowance */
	tss_script(&g_fake, json_pack("[o, o]", tss_bash("sed -i 's/a - b/1/' calc.py"),
				      tss_tool("submit", "{}")));
	req = request("bl-4", "bl4", TSS_TEST_CMD);
	json_object_set_new(req, "allowed_failures", json_integer(2));
	xadd(g_redis, "bl-4", req);
	res = await_result(g_redis, "bl-4");
	expect_status(res, "failed");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "3 of 3 failed"));
	json_decref(res);
	json_decref(tests);
	free(main0);
}

static void test_merge_requests(void **state)
{
	char repo[1024], mirror[1024], *main0, *tip, *head;
	json_t *res, *req;
	(void)state;

	fake_llm_reset(&g_fake);
	tss_project_repo("mrg", repo, sizeof(repo));
	main0 = rev(repo, "main");
	make_branch(repo, "fix", "main", "sed -i 's/a - b/a + b/' calc.py");
	make_branch(repo, "notes", "main", "echo 'a calculator' > NOTES.txt");
	make_branch(repo, "clash", "main", "sed -i 's/a - b/a * 1 + b/' calc.py");

	/* a branch on top of main: a fast-forward, re-tested */
	tip = rev(repo, "task/fix");
	xadd(g_redis, "m-fix", merge_request("m-fix", repo, "fix"));
	res = await_result(g_redis, "m-fix");
	expect_status(res, "done");
	assert_true(json_is_true(json_object_get(res, "merged")));
	assert_int_equal(json_integer_value(json_object_get(res, "replayed")), 0);
	assert_string_equal(json_string_value(json_object_get(res, "onto")), main0);
	assert_string_equal(json_string_value(json_object_get(res, "commit")), tip);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "tests"), "passed")),
			 3);
	head = rev(repo, "main");
	assert_string_equal(head, tip);
	free(head);
	json_decref(res);

	/* a branch from the old main: rebased onto the new one (its fix kept),
	 * main moved forward, the task's branch points at the result */
	xadd(g_redis, "m-notes", merge_request("m-notes", repo, "notes"));
	res = await_result(g_redis, "m-notes");
	expect_status(res, "done");
	assert_int_equal(json_integer_value(json_object_get(res, "replayed")), 1);
	assert_string_equal(json_string_value(json_object_get(res, "onto")), tip);
	head = rev(repo, "main");
	assert_string_equal(json_string_value(json_object_get(res, "commit")), head);
	{
		char *parent = rev(repo, "main~1"), *branch = rev(repo, "task/notes");
		char *notes = show(repo, "main:NOTES.txt"), *calc = show(repo, "main:calc.py");

		assert_string_equal(parent, tip);
		assert_string_equal(branch, head);
		assert_non_null(notes);
		assert_non_null(strstr(calc, "a + b"));
		free(parent);
		free(branch);
		free(notes);
		free(calc);
	}
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_object_get(res, "diff"), "paths"), 0)),
			    "NOTES.txt");
	json_decref(res);

	/* conflicting changes: nothing moves, the paths are named */
	xadd(g_redis, "m-clash", merge_request("m-clash", repo, "clash"));
	res = await_result(g_redis, "m-clash");
	expect_status(res, "conflict");
	assert_string_equal(json_string_value(json_array_get(json_object_get(res, "conflicts"), 0)),
			    "calc.py");
	assert_true(json_is_false(json_object_get(res, "merged")));
	{
		char *now = rev(repo, "main");
		assert_string_equal(now, head);
		free(now);
	}
	json_decref(res);

	/* the tests fail on the result, or there are fewer: nothing merged */
	make_branch(repo, "broken", "main", "sed -i 's/a + b/a + b + 1/' calc.py");
	xadd(g_redis, "m-broken", merge_request("m-broken", repo, "broken"));
	res = await_result(g_redis, "m-broken");
	expect_status(res, "failed");
	assert_string_equal(json_string_value(json_object_get(json_object_get(res, "tests"), "verdict")),
			    "failed");
	json_decref(res);
	make_branch(repo, "fewer", "main",
		    "python3 - <<'EOF'\nimport re\ns = open('test_calc.py').read()\n"
		    "s = re.sub(r'    def test_zero\\(self\\):\\n.*\\n\\n', '', s)\n"
		    "open('test_calc.py', 'w').write(s)\nEOF");
	req = merge_request("m-fewer", repo, "fewer");
	json_object_set_new(req, "min_tests", json_integer(3));
	xadd(g_redis, "m-fewer", req);
	res = await_result(g_redis, "m-fewer");
	expect_status(res, "failed");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "fewer"));
	{
		char *now = rev(repo, "main");
		assert_string_equal(now, head);
		free(now);
	}
	json_decref(res);

	/* publish: main pushed to a mirror; a malformed one is refused */
	snprintf(mirror, sizeof(mirror), "%s/repos/mrg-mirror.git", getenv("ORCH_DATA_DIR"));
	assert_int_equal(tss_sh(NULL, "git init -q --bare -b main '%s'", mirror), 0);
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", "p-1", "mode", "publish", "task",
			"main", "project", "proj-1", "repo", repo, "mirror", mirror);
	xadd(g_redis, "p-1", req);
	res = await_result(g_redis, "p-1");
	expect_status(res, "done");
	{
		char *m = rev(mirror, "main");
		assert_string_equal(m, head);
		free(m);
	}
	json_decref(res);
	req = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", "p-2", "mode", "publish", "task", "main",
			"project", "proj-1", "repo", repo);
	xadd(g_redis, "p-2", req);
	res = await_result(g_redis, "p-2");
	expect_status(res, "invalid");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "mirror"));
	json_decref(res);
	await_no_pending(g_redis);
	assert_int_equal(fake_llm_count(&g_fake), 0); /* no model involved */
	free(main0);
	free(tip);
	free(head);
}

/* A project's workers are cancelled: the running one stops and finishes as
 * cancelled (not run again), a sent but unstarted one never starts. */
static void test_cancelled_workers(void **state)
{
	int64_t thread, run;
	json_t *res, *req;
	char sql[256];
	int n = 0;
	(void)state;

	fake_llm_reset(&g_fake);
	assert_int_equal(eng_start(g_db, "spawn-cancel", "waiter", NULL, NULL, &thread, &run), 0);
	/* the model is slow: the worker is busy when the cancel comes */
	tss_script(&g_fake, json_pack("[o, o]", tss_delay(tss_bash("sleep 1; ls"), 3000),
				      tss_tool("submit", "{}")));
	req = request("c-run", "crun", TSS_TEST_CMD);
	json_object_set_new(req, "thread_id", json_integer(thread));
	xadd(g_redis, "c-run", req);
	ts_await_sql(g_db, "SELECT count(*) FROM workers WHERE id = 'c-run' AND state = 'running'",
		     1, 60000);
	/* a request the spawner has not read yet, as an outbox row already sent */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO outbox (thread_id, kind, payload, state) VALUES (%lld, 'spawn', "
		 "'{\"id\": \"c-later\", \"task\": \"clater\"}', 'sent')",
		 (long long)thread);
	ts_sql(g_db, sql);
	assert_int_equal(spw_cancel_thread(g_db, thread, "cancelled by the test", &n), 0);
	assert_int_equal(n, 2);
	res = await_result(g_redis, "c-run");
	expect_status(res, "cancelled");
	assert_non_null(strstr(json_string_value(json_object_get(res, "reason")), "requester"));
	json_decref(res);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE id = 'c-run' AND state = "
				 "'finished' AND status = 'cancelled' AND attempt = 1"), 1);
	/* the later one, once read, starts nothing */
	xadd(g_redis, "c-later", request("c-later", "clater", TSS_TEST_CMD));
	await_no_pending(g_redis);
	res = await_result(g_redis, "c-later");
	expect_status(res, "cancelled");
	json_decref(res);
	assert_int_equal(sql_int("SELECT count(*) FROM workers WHERE id = 'c-later' AND owner IS "
				 "NULL"), 1);
	assert_int_equal(fake_llm_count(&g_fake) <= 2, 1);
	eng_cancel_thread(g_db, thread, NULL);
}

static int setup(void **state)
{
	spw_config cfg;
	llm_registry *reg = NULL;
	llm_options lo;
	eng_options eo;
	(void)state;

	/* settings the in-process spawners and the spawner program share */
	setenv("ORCH_SPAWN_CLAIM_IDLE", "2s", 1);
	setenv("ORCH_WORKER_DISK", "128M", 1);
	setenv("ORCH_WORKER_MEM", "512M", 1);
	setenv("ORCH_WORKER_PIDS", "128", 1);
	setenv("ORCH_AGENT_CMD_TIMEOUT", "60s", 1);
	setenv("ORCH_TEST_TIMEOUT", "60s", 1);
	setenv("ORCH_WORKER_DISK_KIND", "tmpfs", 1);
	fake_llm_start(&g_fake);
	tss_models(&g_fake);
	g_pool = ts_pool(8);
	g_db = ts_conn();
	tss_project_repo("proj", g_repo, sizeof(g_repo));

	/* secrets: one live handle, one revoked */
	cli("secrets init >/dev/null", NULL, 0);
	if (tss_sh(NULL, "printf 'value-a-123' | '%s' secrets set TOKEN_A >/dev/null", ts_bin()))
		fail_msg("secrets set failed");
	cli("resources allocate --scope proj-1 --secret TOKEN_A", g_handle_ok, sizeof(g_handle_ok));
	cli("resources allocate --scope proj-1 --secret TOKEN_A", g_handle_revoked,
	    sizeof(g_handle_revoked));
	{
		char args[200];
		snprintf(args, sizeof(args), "resources revoke %s >/dev/null", g_handle_revoked);
		cli(args, NULL, 0);
	}
	if (sec_runtime_start(g_pool, getenv("ORCH_DATA_DIR"), NULL) < 0)
		fail_msg("secrets: %s", err_last());

	memset(&lo, 0, sizeof(lo));
	lo.pool = g_pool;
	lo.project_budget = -1;
	lo.user_budget = -1;
	lo.stats_interval_ms = -1;
	if (llm_registry_load(&reg) < 0 || llm_service_new(&g_llm, reg, &lo) < 0)
		fail_msg("llm: %s", err_last());

	g_dispatch = graph("spawntest", 1);
	g_waiter = graph("waiter", 0);
	memset(&eo, 0, sizeof(eo));
	eo.threads = 2;
	eo.poll_ms = 100;
	assert_int_equal(eng_engine_new(&g_engine, g_pool, &eo), 0);
	eng_engine_add_graph(g_engine, g_dispatch);
	eng_engine_add_graph(g_engine, g_waiter);
	assert_int_equal(eng_engine_start(g_engine), 0);

	/* the main spawner uses the loop-device disk quota, the others tmpfs */
	setenv("ORCH_WORKER_DISK_KIND", "loop", 1);
	assert_int_equal(spw_config_from_env(&cfg, getenv("REDIS_URL"), getenv("ORCH_DATA_DIR")), 0);
	setenv("ORCH_WORKER_DISK_KIND", "tmpfs", 1);
	if (spw_preflight(&cfg) < 0)
		fail_msg("preflight: %s", err_last());
	assert_int_equal(eng_stream_hub_new(&g_hub, NULL), 0);
	cfg.hub = g_hub;
	assert_int_equal(spw_new(&g_spawner, &cfg, g_pool, g_llm), 0);
	assert_int_equal(spw_start(g_spawner), 0);
	g_redis = redis(getenv("REDIS_URL"));
	memset(&g_private, 0, sizeof(g_private));
	tss_redis_start(&g_private);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	spw_free(g_spawner);
	eng_stream_hub_free(g_hub);
	eng_engine_free(g_engine);
	eng_graph_free(g_dispatch);
	eng_graph_free(g_waiter);
	llm_service_free(g_llm);
	sec_runtime_stop();
	rds_free(g_redis);
	tss_redis_stop(&g_private);
	fake_llm_stop(&g_fake);
	pg_conn_close(g_db);
	pg_pool_free(g_pool);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outbox_to_result),
		cmocka_unit_test(test_repeated_id_one_worker),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_poison_requests),
		cmocka_unit_test(test_refused_handles),
		cmocka_unit_test(test_secret_in_the_work_not_pushed),
		cmocka_unit_test(test_failing_or_shrinking_tests_not_done),
		cmocka_unit_test(test_agents_md),
		cmocka_unit_test(test_workers_by_phase),
		cmocka_unit_test(test_logs_cli),
		cmocka_unit_test(test_http_remote_with_credentials),
		cmocka_unit_test(test_hostile_agent_contained),
		cmocka_unit_test(test_redis_restart_loses_nothing),
		cmocka_unit_test(test_killed_spawner_reclaimed),
		cmocka_unit_test(test_full_disk),
		cmocka_unit_test(test_gives_up_after_dead_spawners),
		cmocka_unit_test(test_cleanup_removes_dead_workspaces),
		cmocka_unit_test(test_serve_runs_the_spawner),
		cmocka_unit_test(test_merge_requests),
		cmocka_unit_test(test_baseline_allowed_failures),
		cmocka_unit_test(test_cancelled_workers),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
