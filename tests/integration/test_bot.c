/* The Telegram bot against the fake Bot API server and the private
 * PostgreSQL: messages become runs and replies, bad input is skipped,
 * strangers are refused once, approvals resist forgery, delivery keeps
 * Telegram's limits, long and HTML-heavy text is split, errors back off,
 * one poller leads, and a bot killed between storing and confirming loses
 * and doubles nothing. */
#include "tests/support/support.h"
#include "tests/support/chat_graph.h"
#include "tests/support/fake_tg.h"

#include "bot/approval.h"
#include "bot/report.h"
#include "bot/bot.h"
#include "bot/command.h"
#include "bot/limit.h"
#include "bot/route.h"
#include "bot/text.h"
#include "core/err.h"
#include "core/util.h"
#include "engine/engine.h"
#include "nodes/report.h"
#include "spawner/report.h"
#include "spawner/spawner.h"

#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* the factory's hooks, as cli/wiring.c installs them */
static const nd_ops FACTORY_OPS = {bot_report_open, spw_report_workers, spw_cancel_thread};

#define WAIT_MS 20000
#define OWNER 111
#define HELPER 222
#define STRANGER 999

typedef struct env {
	ts_fake fake;
	pg_pool *pool;
	pg_conn *db;
	eng_graph *graph;
	eng_engine *engine;
	bot *bot;
	bot_config cfg;
} env;

static void cfg_for(bot_config *c, const ts_fake *f)
{
	const char *dd = getenv("ORCH_DATA_DIR");

	memset(c, 0, sizeof(*c));
	snprintf(c->token, sizeof(c->token), "%s", TS_TG_TOKEN);
	snprintf(c->api_base, sizeof(c->api_base), "%s", f->base);
	snprintf(c->graph, sizeof(c->graph), "%s", CHAT_GRAPH);
	snprintf(c->key_file, sizeof(c->key_file), "%s/bot.key", dd ? dd : ".");
	c->allowed[0] = OWNER;
	c->allowed[1] = HELPER;
	c->nallowed = 2;
	c->poll_timeout_s = 1;
	c->rate_scale = 50;
	c->approval_ttl_s = 3600;
	c->typing_ms = 150;
	c->backoff_ms = 40;
	c->max_backoff_ms = 400;
	c->standby_ms = 100;
}

/* The running test's environment, freed by td() even when the test fails. */
static env *g_env;
static ts_fake *g_fake;
static bot *g_bot2;

static env *setup_env(const char *approvers, int with_bot)
{
	env *e = calloc(1, sizeof(*e));
	eng_options opt;

	ts_fake_start(&e->fake);
	e->pool = ts_pool(8);
	e->db = ts_conn();
	ts_sql(e->db, "TRUNCATE bot_updates, bot_chats, bot_refused, bot_sent, bot_refs, outbox, "
		      "threads CASCADE");
	e->graph = ts_chat_graph(approvers);
	assert_non_null(e->graph);
	memset(&opt, 0, sizeof(opt));
	opt.threads = 2;
	opt.poll_ms = 50;
	assert_int_equal(eng_engine_new(&e->engine, e->pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e->engine, e->graph), 0);
	assert_int_equal(eng_engine_start(e->engine), 0);
	cfg_for(&e->cfg, &e->fake);
	g_env = e;
	if (with_bot) {
		assert_int_equal(bot_new(&e->bot, e->pool, &e->cfg), 0);
		assert_int_equal(bot_start(e->bot), 0);
	}
	return e;
}

static void teardown_env(env *e)
{
	g_env = NULL;
	bot_free(g_bot2);
	g_bot2 = NULL;
	bot_free(e->bot);
	eng_engine_free(e->engine);
	eng_graph_free(e->graph);
	pg_conn_close(e->db);
	pg_pool_free(e->pool);
	ts_fake_stop(&e->fake);
	free(e);
}

static int count_ok(json_t *reqs, const char *field, const char *needle)
{
	size_t i;
	json_t *r;
	int n = 0;

	json_array_foreach(reqs, i, r) {
		const char *v = json_string_value(json_object_get(json_object_get(r, "params"), field));
		if (json_integer_value(json_object_get(r, "status")) == 200 && v && strstr(v, needle))
			n++;
	}
	return n;
}

typedef struct sqlwait {
	pg_conn *c;
	const char *sql;
	int64_t want;
} sqlwait;

static int sql_reached(void *arg)
{
	sqlwait *w = arg;
	return ts_sql_int(w->c, w->sql) >= w->want;
}

static int64_t wait_sql(pg_conn *c, const char *sql, int64_t want)
{
	sqlwait w = {c, sql, want};
	ts_wait_for(sql_reached, &w, WAIT_MS);
	return ts_sql_int(c, sql);
}

/* --- a message becomes a run and a reply; commands --- */

/* A report as a project's graph might give it: long, and with text that
 * is HTML. */
static int big_report(json_t **out, pg_conn *c, int64_t thread)
{
	json_t *tasks = json_array(), *open = json_array();
	char title[256], question[2100];
	(void)c;
	(void)thread;

	memset(title, 'x', sizeof(title) - 1);
	title[sizeof(title) - 1] = '\0';
	memset(question, 'q', sizeof(question) - 1);
	question[sizeof(question) - 1] = '\0';
	for (int i = 0; i < 60; i++)
		json_array_append_new(tasks, json_pack("{s:s, s:s, s:s}", "title", title, "status",
						       i < 10 ? "merged" : i < 30 ? "working" : "review",
						       "label", "<working>"));
	for (int i = 0; i < 10; i++)
		json_array_append_new(open, json_pack("{s:i, s:s, s:s, s:[s, s]}", "id", 100 + i,
						      "question", question, "channel", "telegram",
						      "options", "Approve <now>", "Reject"));
	*out = json_pack("{s:s, s:s, s:{s:i, s:i}, s:o, s:i, s:o, s:i, s:i, s:f, s:s, s:s}",
			 "stage", "develop", "name", "<b>evil</b> & co", "tasks", "total", 60,
			 "merged", 10, "task_list", tasks, "workers", 2, "open", open, "tokens_in",
			 1000, "tokens_out", 234, "cost_usd", 0.5, "repo", "/srv/repos/x.git",
			 "branch", "main");
	json_object_set_new(*out, "worker_list",
			    json_pack("[{s:s, s:s, s:s, s:i, s:s, s:i, s:i}, "
				      "{s:s, s:s, s:s, s:i, s:s, s:i, s:i}]",
				      "id", "ob-7", "task", "t1", "phase", "agent", "step", 7, "action",
				      "$ pytest -q <all>", "progress_age_ms", 12000, "running_ms", 60000,
				      "id", "ob-8", "task", "t2", "phase", "cloning x", "step", 0,
				      "action", "", "progress_age_ms", -1, "running_ms", 1000));
	return 0;
}

static void test_message_run_reply(void **st)
{
	env *e = setup_env(NULL, 1);
	json_t *m;
	(void)st;

	ts_fake_text(&e->fake, OWNER, OWNER, "hello world");
	m = ts_fake_wait_message(&e->fake, OWNER, "echo: hello world", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM threads WHERE key = 'tg:111:1'"), 1);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
					   "r.thread_id WHERE t.key = 'tg:111:1' AND r.status = 'done'"),
			 1);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM bot_updates WHERE kind = 'text'"), 1);

	/* a second message goes to the same project */
	ts_fake_text(&e->fake, OWNER, OWNER, "more");
	m = ts_fake_wait_message(&e->fake, OWNER, "echo: more", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM threads WHERE key LIKE 'tg:111:%'"), 1);

	/* commands */
	ts_fake_text(&e->fake, OWNER, OWNER, "/start");
	m = ts_fake_wait_message(&e->fake, OWNER, "/new <idea>", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	ts_fake_text(&e->fake, OWNER, OWNER, "/new a second idea");
	m = ts_fake_wait_message(&e->fake, OWNER, "Project #2 started", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	m = ts_fake_wait_message(&e->fake, OWNER, "echo: a second idea", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	ts_fake_text(&e->fake, OWNER, OWNER, "/projects");
	m = ts_fake_wait_message(&e->fake, OWNER, "Your projects:", WAIT_MS);
	assert_non_null(m);
	assert_non_null(strstr(json_string_value(json_object_get(m, "text")), "#2 a second idea"));
	json_decref(m);
	ts_fake_text(&e->fake, OWNER, OWNER, "/switch 1");
	m = ts_fake_wait_message(&e->fake, OWNER, "Project #1 is now the active one", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	/* a run whose input was handed to a waiting run (double texting) never
	 * ran: the state shown is that of the run that did */
	ts_sql(e->db, "INSERT INTO runs (thread_id, graph, input, status, error, finished_at) "
		      "SELECT id, graph, '{\"input\": {\"text\": \"x\", \"channel\": \"tg\"}}', "
		      "'cancelled', 'its input was handed to the waiting run 1', now() "
		      "FROM threads WHERE key = 'tg:111:1'");
	/* a plain chat thread gets its run state, also with the factory's report installed */
	nd_set_ops(&FACTORY_OPS);
	bot_set_report(nd_report_project);
	ts_fake_text(&e->fake, OWNER, OWNER, "/status");
	m = ts_fake_wait_message(&e->fake, OWNER, "State: done", WAIT_MS);
	assert_non_null(m);
	assert_null(strstr(json_string_value(json_object_get(m, "text")), "Stage"));
	json_decref(m);
	/* a project with a report: HTML-safe, in one message within Telegram's limit */
	bot_set_report(big_report);
	ts_fake_text(&e->fake, OWNER, OWNER, "/status");
	m = ts_fake_wait_message(&e->fake, OWNER, "Stage: develop", WAIT_MS);
	bot_set_report(NULL);
	assert_non_null(m);
	{
		const char *t = json_string_value(json_object_get(m, "text"));
		/* the fake parses the HTML as Telegram does: the text is what a person reads */
		const char *want[] = {"Project #1: <b>evil</b> & co\n",
				      "Tasks: 10 of 60 done, 20 in progress, 30 waiting for review",
				      "— <working>", "\n  …", "Workers running: 2",
				      "\n  • t1: step 7 — $ pytest -q <all> (12s ago)",
				      "\n  • t2 — cloning x\n",
				      "Answer with the buttons under that message: Approve <now> · "
				      "Reject (or 'orchestrator approve 100')",
				      "… and 7 more", "Cost: $0.5000 so far, 1234 tokens (1000 in, 234 out)",
				      "Repository: /srv/repos/x.git, branch main", NULL};
		for (const char *const *w = want; *w; w++)
			if (!strstr(t, *w))
				fail_msg("/status lacks '%s':\n%s", *w, t);
		assert_true(tg_utf16_len(t, strlen(t)) <= 4096);
		assert_null(strstr(t, "State:"));
	}
	json_decref(m);
	ts_fake_text(&e->fake, OWNER, OWNER, "/bogus");
	m = ts_fake_wait_message(&e->fake, OWNER, "I don't know /bogus", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	/* webhook removed at start, updates asked for explicitly */
	{
		json_t *r = ts_fake_requests(&e->fake, "deleteWebhook");
		json_t *g = ts_fake_requests(&e->fake, "getUpdates");
		json_t *au = json_object_get(json_object_get(json_array_get(g, 0), "params"),
					     "allowed_updates");
		assert_true(json_array_size(r) >= 1);
		assert_int_equal(json_array_size(au), 2);
		assert_int_equal(json_integer_value(json_object_get(
					 json_object_get(json_array_get(g, 0), "params"), "limit")),
				 100);
		json_decref(r);
		json_decref(g);
	}
	/* the command menu was set at start to what /help lists, and the fake
	 * (which refuses what Telegram refuses) took it */
	{
		json_t *r = ts_fake_requests(&e->fake, "setMyCommands");
		json_t *want = bot_commands_json();
		json_t *got = ts_fake_call(&e->fake, "/bot" TS_TG_TOKEN "/getMyCommands", NULL);

		assert_int_equal(json_array_size(r), 1);
		assert_true(json_array_size(want) >= 5);
		assert_true(json_is_true(json_object_get(got, "ok")));
		assert_true(json_equal(json_object_get(got, "result"), want));
		json_decref(got);
		json_decref(want);
		json_decref(r);
	}
	teardown_env(e);
}

/* --- answers to "input" and double texting --- */

static void test_input_event(void **st)
{
	env *e = setup_env(NULL, 1);
	json_t *m;
	(void)st;

	ts_fake_text(&e->fake, 4401, OWNER, "question please");
	m = ts_fake_wait_message(&e->fake, 4401, "What is your name?", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	assert_int_equal(wait_sql(e->db, "SELECT count(*) FROM runs WHERE status = 'waiting' AND "
					  "'input' = ANY (waiting_on)", 1),
			 1);
	ts_fake_text(&e->fake, 4401, OWNER, "Ada");
	m = ts_fake_wait_message(&e->fake, 4401, "hello Ada", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	/* the answer was delivered as the event, not a new run */
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM runs r JOIN threads t ON "
					   "t.id = r.thread_id WHERE t.key = 'tg:4401:1'"),
			 1);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM events e JOIN threads t ON "
					   "t.id = e.thread_id WHERE t.key = 'tg:4401:1' AND e.key = "
					   "'input' AND e.consumed_at IS NOT NULL"),
			 1);
	teardown_env(e);
}

/* The routing function and the hand-over trigger, at the SQL level. */
static void test_route_sql(void **st)
{
	pg_conn *c = ts_conn();
	(void)st;

	ts_sql(c, "SELECT * FROM bot_route_input('tg:5501', 'g', '{\"text\":\"a\",\"channel\":"
		  "\"telegram\",\"chat\":\"5501\"}', 'i1', '{\"title\":\"a\"}')");
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
				       "r.thread_id WHERE t.key = 'tg:5501:1' AND r.status = 'queued'"),
			 1);
	/* the run starts and is busy: the next text is queued behind it */
	ts_sql(c, "UPDATE runs SET status = 'running' FROM threads t WHERE t.id = runs.thread_id "
		  "AND t.key = 'tg:5501:1'");
	ts_sql(c, "SELECT * FROM bot_route_input('tg:5501', 'g', '{\"text\":\"b\",\"channel\":"
		  "\"telegram\",\"chat\":\"5501\"}', 'i2', NULL)");
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
				       "r.thread_id WHERE t.key = 'tg:5501:1' AND r.status = 'queued'"),
			 1);
	/* the busy run parks waiting for input: the queued text is handed to it */
	ts_sql(c, "UPDATE runs SET status = 'waiting', waiting_on = '{input}' FROM threads t "
		  "WHERE t.id = runs.thread_id AND t.key = 'tg:5501:1' AND runs.status = 'running'");
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
				       "r.thread_id WHERE t.key = 'tg:5501:1' AND r.status = 'cancelled'"),
			 1);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM events e JOIN threads t ON t.id = "
				       "e.thread_id WHERE t.key = 'tg:5501:1' AND e.key = 'input' AND "
				       "e.value->>'text' = 'b'"),
			 1);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
				       "r.thread_id WHERE t.key = 'tg:5501:1' AND r.status = 'queued'"),
			 1);
	/* a run that waits for input gets the next text as the event, idempotently */
	ts_sql(c, "UPDATE runs SET status = 'waiting', waiting_on = '{input}' FROM threads t "
		  "WHERE t.id = runs.thread_id AND t.key = 'tg:5501:1' AND runs.status = 'queued'");
	ts_sql(c, "SELECT * FROM bot_route_input('tg:5501', 'g', '{\"text\":\"c\"}', 'i3', NULL)");
	ts_sql(c, "UPDATE runs SET status = 'waiting' FROM threads t WHERE t.id = runs.thread_id "
		  "AND t.key = 'tg:5501:1' AND runs.status = 'queued'");
	ts_sql(c, "SELECT * FROM bot_route_input('tg:5501', 'g', '{\"text\":\"c\"}', 'i3', NULL)");
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM events WHERE idem = 'i3'"), 1);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
				       "r.thread_id WHERE t.key = 'tg:5501:1'"),
			 2);

	/* a batch: known chats go set-wise, in order; a new chat or a run
	 * waiting for input sends the batch item by item */
	ts_sql(c, "SELECT * FROM bot_route_input('tg:5502', 'g', '{\"text\":\"x\"}', 'j0', NULL)");
	ts_sql(c, "UPDATE runs SET status = 'cancelled' FROM threads t WHERE t.id = runs.thread_id "
		  "AND t.key LIKE 'tg:550%' AND runs.status <> 'cancelled'");
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM bot_route_batch('g', '["
				       "{\"chat\":\"tg:5502\",\"input\":{\"text\":\"p\"},\"idem\":\"j1\"},"
				       "{\"chat\":\"tg:5501\",\"input\":{\"text\":\"q\"},\"idem\":\"j2\"},"
				       "{\"chat\":\"tg:5502\",\"input\":{\"text\":\"r\"},\"idem\":\"j3\"}]') "
				       "WHERE how IN ('started', 'queued')"),
			 3);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
				       "r.thread_id WHERE t.key = 'tg:5502:1' AND r.status = 'queued'"),
			 2);
	/* in order: p before r */
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM runs a, runs b WHERE a.input->'input'->>'text' "
				       "= 'p' AND b.input->'input'->>'text' = 'r' AND a.id < b.id"),
			 1);
	ts_sql(c, "UPDATE runs SET status = 'waiting', waiting_on = '{input}' WHERE id = (SELECT min(r.id) "
		  "FROM runs r JOIN threads t ON t.id = r.thread_id WHERE t.key = 'tg:5501:1' AND "
		  "r.status = 'queued')");
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM bot_route_batch('g', '["
				       "{\"chat\":\"tg:5501\",\"input\":{\"text\":\"s\"},\"idem\":\"j4\"},"
				       "{\"chat\":\"tg:5503\",\"input\":{\"text\":\"t\"},\"idem\":\"j5\"}]') "
				       "WHERE how IN ('delivered', 'started')"),
			 2);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM events WHERE idem = 'j4'"), 1);
	pg_conn_close(c);
}

/* --- bad input: skipped, logged, polling goes on --- */

static void test_bad_input(void **st)
{
	env *e = setup_env(NULL, 1);
	json_t *m;
	(void)st;

	ts_fake_updates(&e->fake,
		"[{\"message\":{\"message_id\":1,\"date\":1,\"from\":{\"id\":111,\"is_bot\":false,"
		"\"first_name\":\"O\"},\"chat\":{\"id\":111,\"type\":\"private\"},\"sticker\":{\"file_id\":\"x\"}}},"
		"{\"edited_message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":111,\"type\":\"private\"},\"text\":\"x\"}},"
		"{\"channel_post\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":-100,\"type\":\"channel\"},\"text\":\"x\"}},"
		"{\"my_chat_member\":{\"chat\":{\"id\":111,\"type\":\"private\"}}},"
		"{\"message\":{\"message_id\":2,\"date\":1,\"text\":\"no chat\"}},"
		"{\"message\":{\"message_id\":3,\"date\":1,\"chat\":{\"id\":\"111\"},\"text\":\"bad chat\"}},"
		"{\"raw\":\"{\\\"no_update_id\\\":true}\"},"
		"{\"raw\":\"17\"},"
		"{\"some_future_update\":{\"x\":1}}]");
	/* a whole reply that is not JSON, then a 502 */
	json_decref(ts_fake_call(&e->fake, "/control/script",
				 "{\"method\":\"getUpdates\",\"malformed\":true,\"count\":1}"));
	ts_fake_text(&e->fake, OWNER, OWNER, "still here");
	m = ts_fake_wait_message(&e->fake, OWNER, "echo: still here", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM bot_updates WHERE kind = 'other'"), 5);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM bot_updates WHERE kind = 'invalid'"), 2);
	/* and set aside with their reason */
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM dead_letters WHERE source = "
					   "'telegram.update' AND reason LIKE '%lacks a field%'"),
			 2);
	/* nothing but the good message made a run */
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM runs"), 1);
	/* everything was confirmed, so nothing comes again */
	{
		json_t *s = ts_fake_call(&e->fake, "/control/state", NULL);
		assert_int_equal(json_integer_value(json_object_get(s, "queued")), 0);
		json_decref(s);
	}
	teardown_env(e);
}

/* --- poison: bytes that are not UTF-8, escapes jansson refuses, an update
 * the database refuses; none stalls polling --- */

static void hex_of(const char *s, char *out, size_t cap)
{
	size_t k = 0;

	for (; *s && k + 3 < cap; s++, k += 2)
		snprintf(out + k, cap - k, "%02x", (unsigned char)*s);
	out[k] = '\0';
}

static void test_poison_updates(void **st)
{
	env *e = setup_env(NULL, 1);
	char cb[512], cbhex[1100], txt[512], txthex[1100], body[4096];
	json_t *m;
	(void)st;

	/* the database refuses one update: its own fault, not the others' */
	ts_sql(e->db, "CREATE OR REPLACE FUNCTION t_poison() RETURNS trigger LANGUAGE plpgsql AS $$ "
		      "BEGIN IF NEW.body->'message'->>'text' = 'poison pill' THEN RAISE EXCEPTION "
		      "'poison pill refused'; END IF; RETURN NEW; END $$; "
		      "DROP TRIGGER IF EXISTS t_poison ON bot_updates; "
		      "CREATE TRIGGER t_poison BEFORE INSERT ON bot_updates FOR EACH ROW "
		      "EXECUTE FUNCTION t_poison()");
	/* a button a modified client sent with bytes that are not UTF-8: the real
	 * Bot API server passes them on as they are */
	snprintf(cb, sizeof(cb),
		 "{\"update_id\":@ID@,\"callback_query\":{\"id\":\"cbx1\",\"from\":{\"id\":%d,"
		 "\"is_bot\":false,\"first_name\":\"O\"},\"chat_instance\":\"c\",\"data\":"
		 "\"a:1:0:\xff\xfe\xc0\x80\xed\xa0\x80\"}}",
		 OWNER);
	hex_of(cb, cbhex, sizeof(cbhex));
	snprintf(txt, sizeof(txt),
		 "{\"update_id\":@ID@,\"message\":{\"message_id\":5,\"date\":1,\"from\":{\"id\":%d,"
		 "\"is_bot\":false,\"first_name\":\"O\"},\"chat\":{\"id\":4410,\"type\":"
		 "\"private\"},\"text\":\"bad \xc3\x28 byte\"}}",
		 OWNER);
	hex_of(txt, txthex, sizeof(txthex));
	snprintf(body, sizeof(body),
		 "[{\"raw_hex\":\"%s\"},{\"raw_hex\":\"%s\"},"
		 "{\"raw\":\"{\\\"update_id\\\":@ID@,\\\"message\\\":{\\\"message_id\\\":6,"
		 "\\\"date\\\":1,\\\"from\\\":{\\\"id\\\":%d,\\\"is_bot\\\":false,"
		 "\\\"first_name\\\":\\\"O\\\"},\\\"chat\\\":{\\\"id\\\":4411,\\\"type\\\":"
		 "\\\"private\\\"},\\\"text\\\":\\\"nul\\\\u0000 and \\\\udcff lone\\\"}}\"}]",
		 cbhex, txthex, OWNER);
	ts_fake_updates(&e->fake, body);
	ts_fake_text(&e->fake, 4412, OWNER, "poison pill");
	ts_fake_text(&e->fake, 4413, HELPER, "after the poison");

	/* everyone behind the bad bytes is answered */
	m = ts_fake_wait_message(&e->fake, 4413, "echo: after the poison", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	/* each ill-formed sequence cost one character, not the message */
	m = ts_fake_wait_message(&e->fake, 4410, "echo: bad \xef\xbf\xbd( byte", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	m = ts_fake_wait_message(&e->fake, 4411,
				 "echo: nul\xef\xbf\xbd and \xef\xbf\xbd lone", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	/* the forged button is refused politely */
	assert_true(ts_fake_wait_requests(&e->fake, "answerCallbackQuery", 1, WAIT_MS) >= 1);
	{
		/* (the fake knows no query "cbx1", so it answers 400: the attempt counts) */
		json_t *a = ts_fake_requests(&e->fake, "answerCallbackQuery"), *r;
		size_t i;
		int found = 0;
		json_array_foreach(a, i, r) {
			const json_t *p = json_object_get(r, "params");
			found += strcmp(json_string_value(json_object_get(p, "callback_query_id")),
					"cbx1") == 0 &&
				 strstr(json_string_value(json_object_get(p, "text")), "not valid");
		}
		assert_int_equal(found, 1);
		json_decref(a);
	}
	/* the update the database refused is a dead letter with its reason, and
	 * confirmed: nothing comes again */
	assert_int_equal(wait_sql(e->db, "SELECT count(*) FROM dead_letters WHERE source = "
					  "'telegram.update' AND reason LIKE '%poison pill refused%'", 1),
			 1);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM bot_updates WHERE kind = 'dead'"),
			 1);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM runs r JOIN threads t ON "
					   "t.id = r.thread_id WHERE t.key = 'tg:4412:1'"),
			 0);
	{
		json_t *sst = ts_fake_call(&e->fake, "/control/state", NULL);
		assert_int_equal(json_integer_value(json_object_get(sst, "queued")), 0);
		json_decref(sst);
	}
	/* status shows it */
	{
		char cmd[1024], out[65536];
		FILE *f;
		size_t n;

		snprintf(cmd, sizeof(cmd), "'%s' status 2>&1", ts_bin());
		f = popen(cmd, "r");
		assert_non_null(f);
		n = fread(out, 1, sizeof(out) - 1, f);
		out[n] = '\0';
		pclose(f);
		if (!strstr(out, "dead letters    ") || !strstr(out, "poison pill refused"))
			fail_msg("status does not show the dead letter:\n%s", out);
	}
	ts_sql(e->db, "DROP TRIGGER t_poison ON bot_updates");
	teardown_env(e);
}

/* --- duplicate deliveries change nothing --- */

static void test_duplicates(void **st)
{
	env *e = setup_env(NULL, 1);
	json_t *m;
	(void)st;

	ts_fake_text(&e->fake, 4402, OWNER, "first");
	m = ts_fake_wait_message(&e->fake, 4402, "echo: first", WAIT_MS);
	json_decref(m);
	json_decref(ts_fake_call(&e->fake, "/control/duplicate", "{\"count\":1}"));
	ts_fake_text(&e->fake, 4402, OWNER, "second");
	m = ts_fake_wait_message(&e->fake, 4402, "echo: second", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM runs"), 2);
	{
		json_t *sends = ts_fake_requests(&e->fake, "sendMessage");
		assert_int_equal(count_ok(sends, "text", "echo: first"), 1);
		json_decref(sends);
	}
	teardown_env(e);
}

/* --- strangers get one polite refusal --- */

static void test_strangers(void **st)
{
	env *e = setup_env(NULL, 1);
	json_t *m, *sends;
	(void)st;

	ts_fake_text(&e->fake, STRANGER, STRANGER, "let me in");
	m = ts_fake_wait_message(&e->fake, STRANGER, "this bot is private", WAIT_MS);
	assert_non_null(m);
	assert_non_null(strstr(json_string_value(json_object_get(m, "text")), "999"));
	json_decref(m);
	ts_fake_text(&e->fake, STRANGER, STRANGER, "/new please");
	ts_fake_text(&e->fake, OWNER, OWNER, "marker");
	m = ts_fake_wait_message(&e->fake, OWNER, "echo: marker", WAIT_MS);
	json_decref(m);
	sends = ts_fake_requests(&e->fake, "sendMessage");
	{
		size_t i;
		json_t *r;
		int to_stranger = 0;
		json_array_foreach(sends, i, r) {
			if (json_integer_value(json_object_get(json_object_get(r, "params"), "chat_id")) ==
				    STRANGER ||
			    (json_is_string(json_object_get(json_object_get(r, "params"), "chat_id")) &&
			     strcmp(json_string_value(json_object_get(json_object_get(r, "params"),
								      "chat_id")),
				    "999") == 0))
				to_stranger++;
		}
		assert_int_equal(to_stranger, 1);
	}
	json_decref(sends);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM threads WHERE key LIKE 'tg:999:%'"), 0);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM bot_updates WHERE kind = 'refused'"), 2);
	teardown_env(e);
}

/* --- approvals and every forged-callback case --- */

static char *button_data(json_t *msg, int option)
{
	json_t *kb = json_object_get(json_object_get(msg, "reply_markup"), "inline_keyboard");
	json_t *row = json_array_get(kb, 0);
	json_t *b = json_array_get(row, (size_t)option);
	const char *d = json_string_value(json_object_get(b, "callback_data"));

	return d ? strdup(d) : NULL;
}

/* Clicks `data` as `user` in `chat` on message `mid`; returns the answer's text. */
static char *click(env *e, int64_t chat, int64_t user, int64_t mid, const char *data)
{
	char body[512];
	json_t *r, *answers, *a;
	const char *cb;
	size_t i;
	char *text = NULL;
	int64_t until = util_mono_ms() + WAIT_MS;

	if (data)
		snprintf(body, sizeof(body),
			 "{\"chat_id\":%lld,\"message_id\":%lld,\"from\":{\"id\":%lld,\"is_bot\":false,"
			 "\"first_name\":\"U%lld\"},\"data\":\"%s\"}",
			 (long long)chat, (long long)mid, (long long)user, (long long)user, data);
	else
		snprintf(body, sizeof(body),
			 "{\"chat_id\":%lld,\"message_id\":%lld,\"from\":{\"id\":%lld,\"is_bot\":false,"
			 "\"first_name\":\"U%lld\"}}",
			 (long long)chat, (long long)mid, (long long)user, (long long)user);
	r = ts_fake_call(&e->fake, "/control/callback", body);
	cb = json_string_value(json_object_get(r, "callback_id"));
	while (!text && util_mono_ms() < until) {
		answers = ts_fake_requests(&e->fake, "answerCallbackQuery");
		json_array_foreach(answers, i, a) {
			json_t *p = json_object_get(a, "params");
			const char *id = json_string_value(json_object_get(p, "callback_query_id"));
			if (id && strcmp(id, cb) == 0 && json_integer_value(json_object_get(a, "status")) == 200) {
				const char *t = json_string_value(json_object_get(p, "text"));
				text = strdup(t ? t : "");
			}
		}
		json_decref(answers);
		if (!text)
			util_sleep_ms(20);
	}
	json_decref(r);
	if (!text)
		fail_msg("callback %s was never answered", data ? data : "(none)");
	return text;
}

static void expect_refused(env *e, int64_t chat, int64_t user, int64_t mid, const char *data,
			   const char *reason)
{
	char *t = click(e, chat, user, mid, data);

	if (!strstr(t, reason))
		fail_msg("click '%s' by %lld: answered '%s', expected '%s'", data ? data : "(none)",
			 (long long)user, t, reason);
	free(t);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM approvals WHERE state = 'pending'"), 1);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM runs WHERE status = 'waiting'"), 1);
}

static void test_approvals(void **st)
{
	env *e = setup_env("[111]", 1);
	json_t *msg;
	int64_t mid;
	char *good, *other, forged[80], *t;
	(void)st;

	ts_fake_text(&e->fake, OWNER, OWNER, "approve the plan");
	msg = ts_fake_wait_message(&e->fake, OWNER, "Ship it?", WAIT_MS);
	assert_non_null(msg);
	mid = json_integer_value(json_object_get(msg, "message_id"));
	good = button_data(msg, 0);
	other = button_data(msg, 1);
	assert_non_null(good);
	assert_non_null(other);
	assert_true(strlen(good) <= 64);
	assert_int_equal(wait_sql(e->db, "SELECT count(*) FROM runs WHERE status = 'waiting'", 1), 1);

	/* a wrong MAC */
	snprintf(forged, sizeof(forged), "%s", good);
	forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == 'A' ? 'B' : 'A';
	expect_refused(e, OWNER, OWNER, mid, forged, "not valid");
	/* another option with this option's MAC */
	{
		char *colon;
		snprintf(forged, sizeof(forged), "%s", good);
		colon = strchr(forged + 2, ':');
		colon[1] = '1';
		expect_refused(e, OWNER, OWNER, mid, forged, "not valid");
	}
	/* another approval id with this MAC */
	{
		const char *rest = strchr(good + 2, ':');
		snprintf(forged, sizeof(forged), "a:99%s", rest);
		expect_refused(e, OWNER, OWNER, mid, forged, "not valid");
	}
	/* a correctly signed button of an approval that does not exist */
	{
		unsigned char key[BOT_KEY_BYTES];
		assert_int_equal(bot_key_load(e->cfg.key_file, key), 0);
		assert_int_equal(bot_cb_sign(key, 987654, 0, forged, sizeof(forged)), 0);
		expect_refused(e, OWNER, OWNER, mid, forged, "not valid");
	}
	/* garbage, no data, oversize */
	expect_refused(e, OWNER, OWNER, mid, "a:1:0", "not valid");
	expect_refused(e, OWNER, OWNER, mid, "hello", "not valid");
	expect_refused(e, OWNER, OWNER, mid, NULL, "not valid");
	expect_refused(e, OWNER, OWNER, mid,
		       "a:1:0:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		       "not valid");
	/* a stranger, an allowed user who is not an approver, a foreign chat */
	expect_refused(e, OWNER, STRANGER, mid, good, "not allowed");
	expect_refused(e, OWNER, HELPER, mid, good, "may not decide");
	expect_refused(e, 5555, OWNER, mid, good, "does not belong");
	/* expired */
	ts_sql(e->db, "UPDATE approvals SET expires_at = now() - interval '1 second'");
	expect_refused(e, OWNER, OWNER, mid, good, "expired");
	ts_sql(e->db, "UPDATE approvals SET expires_at = now() + interval '1 hour'");

	/* the real click decides once */
	t = click(e, OWNER, OWNER, mid, other);
	assert_non_null(strstr(t, "Decided"));
	free(t);
	json_decref(msg);
	msg = ts_fake_wait_message(&e->fake, OWNER, "decision: reject by U111", WAIT_MS);
	assert_non_null(msg);
	json_decref(msg);
	msg = ts_fake_wait_message(&e->fake, OWNER, "— U111", WAIT_MS);
	assert_non_null(msg); /* the question now shows who decided */
	assert_null(json_object_get(msg, "reply_markup"));
	json_decref(msg);
	/* a replay changes nothing */
	t = click(e, OWNER, OWNER, mid, good);
	assert_non_null(strstr(t, "Already decided"));
	free(t);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM approvals WHERE state = 'decided' "
					   "AND decision = 'reject'"),
			 1);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM events WHERE key = 'approval'"), 1);
	/* every click was answered exactly once, none refused by the fake */
	{
		json_t *a = ts_fake_requests(&e->fake, "answerCallbackQuery");
		size_t i;
		json_t *r;
		json_array_foreach(a, i, r)
			assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
		assert_int_equal(json_array_size(a), 14);
		json_decref(a);
	}
	free(good);
	free(other);
	teardown_env(e);
}

/* Runs `orchestrator <args>` with `vars` (env(1) arguments) through the
 * shell; its output into out[cap]; returns the exit status. */
static int cli_with(const char *vars, char *out, size_t cap, const char *args)
{
	char cmd[2048];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "env %s '%s' %s 2>&1", vars, ts_bin(), args);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* From the terminal, a Telegram question is decided only by a Unix user the
 * configuration maps to one of its approvers, and the decision records the
 * real user (its uid), not what the environment says. */
static void test_terminal_operators(void **st)
{
	env *e = setup_env(NULL, 0);
	char out[8192], env_[512], args[64], me[64];
	int64_t limited, open_q;
	struct passwd *pw = getpwuid(getuid());
	(void)st;

	snprintf(me, sizeof(me), "%s", pw ? pw->pw_name : "root");
	ts_sql(e->db, "INSERT INTO threads (key, graph) VALUES ('tg:5501:1', 'chattest')");
	limited = ts_sql_int(e->db,
			     "INSERT INTO approvals (thread_id, channel, chat, key, question, options, "
			     "approvers, expires_at) SELECT id, 'telegram', '5501', 'approval', "
			     "'Ship it?', '[{\"id\": \"approve\", \"label\": \"Approve\"}, "
			     "{\"id\": \"reject\", \"label\": \"Reject\"}]', '{222}', "
			     "now() + interval '1 hour' FROM threads WHERE key = 'tg:5501:1' "
			     "RETURNING id");
	snprintf(args, sizeof(args), "approve %lld", (long long)limited);
	/* nobody named: refused, with what to configure; the environment's user
	 * names change nothing */
	assert_int_equal(cli_with("-u ORCH_OPERATORS SUDO_USER=alice USER=alice "
				  "ORCH_ALLOWED_USERS=111,222",
				  out, sizeof(out), args),
			 1);
	if (!strstr(out, "for its approvers (222)") || !strstr(out, "ORCH_OPERATORS"))
		fail_msg("unexpected refusal:\n%s", out);
	/* named, but for another approver */
	snprintf(env_, sizeof(env_), "ORCH_OPERATORS='%s:111' ORCH_ALLOWED_USERS=111,222 "
				     "SUDO_USER=alice USER=alice",
		 me);
	assert_int_equal(cli_with(env_, out, sizeof(out), args), 1);
	assert_non_null(strstr(out, "may act for none of them"));
	/* a setting that does not parse says how it should look */
	assert_int_equal(cli_with("ORCH_OPERATORS=alice", out, sizeof(out), args), 1);
	assert_non_null(strstr(out, "ORCH_OPERATORS: 'alice' is not 'unixuser:telegram-id"));
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM approvals WHERE state = 'pending'"),
			 1);
	/* named for this approver: decided, recording the real Unix user */
	snprintf(env_, sizeof(env_), "ORCH_OPERATORS='nobody:111 %s:333,222' SUDO_USER=alice "
				     "USER=alice",
		 me);
	assert_int_equal(cli_with(env_, out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "decided 'Approve'"));
	{
		char sql[256];
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM approvals WHERE id = %lld AND decided_by->>'name' = "
			 "'cli:%s' AND (decided_by->>'id')::bigint = 222 AND decided_by->>'channel' = "
			 "'cli'",
			 (long long)limited, me);
		assert_int_equal(ts_sql_int(e->db, sql), 1);
	}
	/* a question without its own list belongs to the allowed users */
	open_q = ts_sql_int(e->db,
			    "INSERT INTO approvals (thread_id, channel, chat, key, question, options, "
			    "expires_at) SELECT id, 'telegram', '5501', 'approval2', 'Merge?', "
			    "'[{\"id\": \"approve\", \"label\": \"Approve\"}]', now() + interval "
			    "'1 hour' FROM threads WHERE key = 'tg:5501:1' RETURNING id");
	snprintf(args, sizeof(args), "approve %lld", (long long)open_q);
	snprintf(env_, sizeof(env_), "ORCH_OPERATORS='%s:222' ORCH_ALLOWED_USERS=111", me);
	assert_int_equal(cli_with(env_, out, sizeof(out), args), 1);
	snprintf(env_, sizeof(env_), "ORCH_OPERATORS='%s:*' ORCH_ALLOWED_USERS=111", me);
	assert_int_equal(cli_with(env_, out, sizeof(out), args), 0);
	teardown_env(e);
}

static void test_approval_expiry(void **st)
{
	env *e = setup_env(NULL, 1);
	json_t *msg;
	(void)st;

	ts_fake_text(&e->fake, 4403, OWNER, "approve soon");
	msg = ts_fake_wait_message(&e->fake, 4403, "Ship it?", WAIT_MS);
	assert_non_null(msg);
	json_decref(msg);
	assert_int_equal(wait_sql(e->db, "SELECT count(*) FROM approvals WHERE message_id IS NOT NULL", 1), 1);
	ts_sql(e->db, "UPDATE approvals SET expires_at = now() - interval '1 second'");
	{
		pg_conn *c = ts_conn();
		int n = 0;
		assert_int_equal(bot_approvals_expire(c, "telegram", &n), 0);
		assert_int_equal(n, 1);
		pg_conn_close(c);
	}
	msg = ts_fake_wait_message(&e->fake, 4403, "decision: expired", WAIT_MS);
	assert_non_null(msg);
	json_decref(msg);
	msg = ts_fake_wait_message(&e->fake, 4403, "Expired without a decision", WAIT_MS);
	assert_non_null(msg);
	json_decref(msg);
	/* /cancel ends a project's open question too */
	ts_fake_text(&e->fake, 4403, OWNER, "approve again");
	msg = ts_fake_wait_message(&e->fake, 4403, "Ship it?", WAIT_MS);
	json_decref(msg);
	assert_int_equal(wait_sql(e->db, "SELECT count(*) FROM approvals WHERE state = 'pending' "
					  "AND message_id IS NOT NULL", 1),
			 1);
	ts_fake_text(&e->fake, 4403, OWNER, "/cancel");
	msg = ts_fake_wait_message(&e->fake, 4403, "cancelled 1 run", WAIT_MS);
	assert_non_null(msg);
	json_decref(msg);
	msg = ts_fake_wait_message(&e->fake, 4403, "Cancelled with the project", WAIT_MS);
	assert_non_null(msg);
	assert_null(json_object_get(msg, "reply_markup"));
	json_decref(msg);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM approvals WHERE state = 'pending'"), 0);
	teardown_env(e);
}

/* --- delivery: rate limits from the fake's request log --- */

static void test_rate_limits(void **st)
{
	env *e = setup_env(NULL, 0);
	json_t *sends;
	bot_limits lim;
	int chats[20];
	size_t i;
	json_t *r;
	(void)st;

	e->cfg.rate_scale = 20;
	bot_limits_default(&lim, e->cfg.rate_scale);
	for (int c = 0; c < 20; c++)
		chats[c] = c < 16 ? 7000 + c : -(8000 + c); /* 16 private chats, 4 groups */
	ts_sql(e->db, "BEGIN");
	for (int k = 0; k < 25; k++)
		for (int c = 0; c < 20; c++) {
			char sql[256];
			snprintf(sql, sizeof(sql),
				 "INSERT INTO outbox (kind, dest, payload) VALUES ('telegram.send', '%d', "
				 "'{\"text\": \"m %d %d\"}')",
				 chats[c], chats[c], k);
			ts_sql(e->db, sql);
		}
	ts_sql(e->db, "COMMIT");
	/* the first message of one chat meets a 429 */
	json_decref(ts_fake_call(&e->fake, "/control/script",
				 "{\"method\":\"sendMessage\",\"status\":429,\"retry_after\":1,"
				 "\"description\":\"Too Many Requests: retry after 1\"}"));
	assert_int_equal(bot_new(&e->bot, e->pool, &e->cfg), 0);
	assert_int_equal(bot_start(e->bot), 0);
	assert_int_equal(wait_sql(e->db, "SELECT count(*) FROM outbox WHERE state = 'sent'", 500), 500);
	sends = ts_fake_requests(&e->fake, "sendMessage");
	{
		json_t *ok = json_array();
		int64_t throttled_chat = 0;
		double throttled_at = 0;
		json_array_foreach(sends, i, r) {
			json_t *p = json_object_get(r, "params");
			if (json_integer_value(json_object_get(r, "status")) == 429) {
				throttled_chat = strtoll(json_string_value(json_object_get(p, "chat_id")), NULL, 10);
				throttled_at = json_real_value(json_object_get(r, "t_ms"));
				continue;
			}
			json_array_append(ok, r);
		}
		assert_int_equal(json_array_size(ok), 500);
		assert_true(throttled_chat != 0);
		/* per chat: in order, exactly once, spaced */
		for (int c = 0; c < 20; c++) {
			double last = -1e9, times[25];
			int n = 0;
			json_array_foreach(ok, i, r) {
				json_t *p = json_object_get(r, "params");
				char want[32];
				if (strtoll(json_string_value(json_object_get(p, "chat_id")), NULL, 10) != chats[c])
					continue;
				snprintf(want, sizeof(want), "m %d %d", chats[c], n);
				assert_string_equal(json_string_value(json_object_get(p, "text")), want);
				times[n] = json_real_value(json_object_get(r, "t_ms"));
				if (n > 0)
					assert_true(times[n] - last >= 0.9 * (double)lim.chat_gap_ms);
				if (chats[c] == throttled_chat && n == 0)
					assert_true(times[0] - throttled_at >= 950.0); /* retry_after obeyed */
				last = times[n];
				n++;
			}
			assert_int_equal(n, 25);
			/* groups: at most 20 in any window */
			if (chats[c] < 0)
				for (int a = 20; a < n; a++)
					assert_true(times[a] - times[a - 20] >= 0.9 * (double)lim.group_window_ms);
		}
		/* overall: at most 30 in any window */
		for (size_t a = 30; a < json_array_size(ok); a++) {
			double t1 = json_real_value(json_object_get(json_array_get(ok, a), "t_ms"));
			double t0 = json_real_value(json_object_get(json_array_get(ok, a - 30), "t_ms"));
			assert_true(t1 - t0 >= 0.9 * (double)lim.global_window_ms);
		}
		json_decref(ok);
	}
	json_decref(sends);
	teardown_env(e);
}

/* --- long and HTML-heavy text --- */

static void put_row(pg_conn *c, const char *kind, const char *dest, json_t *payload)
{
	char *p = json_dumps(payload, JSON_COMPACT);
	const char *params[3] = {kind, dest, p};

	if (pg_exec(c, NULL, "INSERT INTO outbox (kind, dest, payload) VALUES ($1, $2, $3::jsonb)", 3,
		    params) < 0)
		fail_msg("insert: %s", err_last());
	free(p);
	json_decref(payload);
}

static void test_long_and_html(void **st)
{
	env *e = setup_env(NULL, 1);
	buf plain, html;
	json_t *sends, *r;
	size_t i;
	int parts = 0;
	(void)st;

	buf_init(&plain, 0);
	buf_init(&html, 0);
	for (int k = 0; buf_cstr(&plain)[0] == '\0' || plain.len < 11000; k++)
		buf_printf(&plain, "line %d: ünïcødé 🚀 <not a tag> & more text here\n", k);
	for (int k = 0; html.len < 30000; k++)
		buf_printf(&html, "<b>bold %d</b> &amp; <i>it&lt;al&gt;ic</i> <a href=\"https://x.org/%d\">"
				  "link</a> <code>a&lt;b</code>\n", k, k);
	put_row(e->db, "telegram.send", "6601", json_pack("{s:s}", "text", buf_cstr(&plain)));
	put_row(e->db, "telegram.send", "6602", json_pack("{s:s}", "html", buf_cstr(&html)));
	/* one long line with no newline, inside a tag */
	{
		buf one;
		buf_init(&one, 0);
		buf_puts(&one, "<pre>");
		for (int k = 0; k < 6000; k++)
			buf_puts(&one, "é");
		buf_puts(&one, "</pre>");
		put_row(e->db, "telegram.send", "6603", json_pack("{s:s}", "html", buf_cstr(&one)));
		buf_free(&one);
	}
	/* HTML Telegram cannot parse goes again as plain text */
	put_row(e->db, "telegram.send", "6604", json_pack("{s:s}", "html", "<b>unclosed & <blink>x"));
	/* very long goes as a document */
	{
		buf big;
		buf_init(&big, 0);
		while (big.len < 40000)
			buf_puts(&big, "diff --git a/x b/x\n+added line\n");
		put_row(e->db, "telegram.send", "6605", json_pack("{s:s,s:s}", "text", buf_cstr(&big),
								  "filename", "change.diff"));
		put_row(e->db, "telegram.document", "6605",
			json_pack("{s:s,s:s,s:s}", "filename", "log.txt", "content", "a log\n",
				  "caption", "the <log>"));
		buf_free(&big);
	}
	/* progress: one message, edited; the same text again is not sent */
	put_row(e->db, "telegram.progress", "6606", json_pack("{s:s,s:s}", "ref", "build", "text", "step 1/3"));
	put_row(e->db, "telegram.progress", "6606", json_pack("{s:s,s:s}", "ref", "build", "text", "step 2/3"));
	put_row(e->db, "telegram.progress", "6606", json_pack("{s:s,s:s}", "ref", "build", "text", "step 2/3"));
	put_row(e->db, "telegram.edit", "6606", json_pack("{s:s,s:s}", "ref", "build", "text", "step 2/3"));
	put_row(e->db, "telegram.edit", "6606", json_pack("{s:s,s:s}", "ref", "build", "keyboard", "remove"));
	put_row(e->db, "telegram.action", "6606", json_pack("{s:s}", "action", "typing"));
	assert_int_equal(wait_sql(e->db, "SELECT count(*) FROM outbox WHERE state <> 'pending'", 12), 12);
	assert_int_equal(ts_sql_int(e->db, "SELECT count(*) FROM outbox WHERE state = 'dead'"), 0);

	sends = ts_fake_requests(&e->fake, "sendMessage");
	{
		buf joined;
		buf_init(&joined, 0);
		json_array_foreach(sends, i, r) {
			json_t *p = json_object_get(r, "params");
			const char *chat = json_string_value(json_object_get(p, "chat_id"));
			if (strcmp(chat, "6601") != 0)
				continue;
			assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
			parts++;
		}
		assert_true(parts >= 3);
		/* the parts put together give the text back (split at newlines) */
		{
			json_t *msgs = ts_fake_messages(&e->fake), *m;
			json_array_foreach(msgs, i, m) {
				if (json_integer_value(json_object_get(json_object_get(m, "chat"), "id")) != 6601)
					continue;
				buf_puts(&joined, json_string_value(json_object_get(m, "text")));
				buf_putc(&joined, '\n');
			}
			json_decref(msgs);
		}
		while (joined.len > 0 && joined.data[joined.len - 1] == '\n')
			joined.data[--joined.len] = '\0';
		while (plain.len > 0 && plain.data[plain.len - 1] == '\n')
			plain.data[--plain.len] = '\0';
		assert_int_equal(joined.len, plain.len);
		assert_true(strcmp(buf_cstr(&joined), buf_cstr(&plain)) == 0);
		buf_free(&joined);
	}
	parts = 0;
	json_array_foreach(sends, i, r) {
		json_t *p = json_object_get(r, "params");
		const char *chat = json_string_value(json_object_get(p, "chat_id"));
		if (strcmp(chat, "6602") == 0 || strcmp(chat, "6603") == 0) {
			assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
			parts++;
		}
	}
	if (parts < 4)
		fail_msg("only %d parts for 6602 and 6603 (%zu sends)", parts, json_array_size(sends));
	/* 6604: refused as HTML, then accepted as plain text */
	{
		int refused = 0, plain_ok = 0;
		json_array_foreach(sends, i, r) {
			json_t *p = json_object_get(r, "params");
			if (strcmp(json_string_value(json_object_get(p, "chat_id")), "6604") != 0)
				continue;
			if (json_integer_value(json_object_get(r, "status")) == 400)
				refused++;
			else if (!json_object_get(p, "parse_mode"))
				plain_ok++;
		}
		assert_int_equal(refused, 1);
		assert_int_equal(plain_ok, 1);
	}
	json_decref(sends);
	{
		json_t *docs = ts_fake_requests(&e->fake, "sendDocument");
		assert_int_equal(json_array_size(docs), 2);
		assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(docs, 0),
										     "params"),
							      "chat_id")),
				    "6605");
		json_decref(docs);
	}
	{
		json_t *edits = ts_fake_requests(&e->fake, "editMessageText");
		json_t *sends6 = ts_fake_requests(&e->fake, "sendMessage");
		assert_int_equal(count_ok(sends6, "text", "step 1/3"), 1);
		json_t *markup = ts_fake_requests(&e->fake, "editMessageReplyMarkup");
		assert_int_equal(count_ok(edits, "text", "step 2/3"), 1);
		/* no keyboard to remove: "message is not modified" counts as done */
		assert_int_equal(json_array_size(markup), 1);
		assert_int_equal(json_integer_value(json_object_get(json_array_get(markup, 0), "status")), 400);
		json_decref(markup);
		json_decref(edits);
		json_decref(sends6);
	}
	buf_free(&plain);
	buf_free(&html);
	teardown_env(e);
}

/* --- errors: 409, 5xx and 401 --- */

static void test_errors_back_off(void **st)
{
	env *e = setup_env(NULL, 0);
	json_t *m, *polls;
	(void)st;

	json_decref(ts_fake_call(&e->fake, "/control/script",
				 "{\"method\":\"getUpdates\",\"status\":409,\"count\":3,\"description\":"
				 "\"Conflict: terminated by other getUpdates request\"}"));
	json_decref(ts_fake_call(&e->fake, "/control/script",
				 "{\"method\":\"getUpdates\",\"status\":502,\"count\":2,\"description\":"
				 "\"Bad Gateway\"}"));
	json_decref(ts_fake_call(&e->fake, "/control/script",
				 "{\"method\":\"getUpdates\",\"status\":429,\"count\":1,\"retry_after\":1,"
				 "\"description\":\"Too Many Requests: retry after 1\"}"));
	json_decref(ts_fake_call(&e->fake, "/control/script",
				 "{\"method\":\"getUpdates\",\"delay_ms\":300,\"count\":1}"));
	assert_int_equal(bot_new(&e->bot, e->pool, &e->cfg), 0);
	assert_int_equal(bot_start(e->bot), 0);
	ts_fake_text(&e->fake, OWNER, OWNER, "after the storm");
	m = ts_fake_wait_message(&e->fake, OWNER, "echo: after the storm", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	polls = ts_fake_requests(&e->fake, "getUpdates");
	assert_true(json_array_size(polls) >= 7);
	/* after each 409 the next poll waited (backoff x5 with jitter: >= half);
	 * after each 502 at least half the base backoff; after the 429 its
	 * retry_after; the slow poll was simply waited for */
	for (size_t k = 1; k < 7; k++) {
		json_t *prev = json_array_get(polls, k - 1), *cur = json_array_get(polls, k);
		double gap = json_real_value(json_object_get(cur, "t_ms")) -
			     json_real_value(json_object_get(prev, "t_ms"));
		int64_t st_prev = json_integer_value(json_object_get(prev, "status"));
		if (st_prev == 409)
			assert_true(gap >= 0.9 * (double)(e->cfg.backoff_ms * 5) / 2);
		else if (st_prev == 502)
			assert_true(gap >= 0.9 * (double)e->cfg.backoff_ms / 2);
		else if (st_prev == 429)
			assert_true(gap >= 950.0);
	}
	json_decref(polls);
	bot_free(e->bot);
	e->bot = NULL;

	/* a wrong token stops the bot */
	{
		bot *b = NULL;
		bot_config cfg = e->cfg;
		snprintf(cfg.token, sizeof(cfg.token), "123:WRONG");
		assert_int_equal(bot_new(&b, e->pool, &cfg), 0);
		assert_int_equal(bot_run(b), ERR_AUTH);
		bot_free(b);
	}
	teardown_env(e);
}

/* --- one poller leads; a standby takes over --- */

static void test_leader(void **st)
{
	env *e = setup_env(NULL, 1);
	bot *second = NULL;
	json_t *m;
	int64_t until;
	(void)st;

	ts_fake_text(&e->fake, OWNER, OWNER, "one");
	m = ts_fake_wait_message(&e->fake, OWNER, "echo: one", WAIT_MS);
	json_decref(m);
	assert_true(bot_is_leader(e->bot));
	assert_int_equal(bot_new(&second, e->pool, &e->cfg), 0);
	g_bot2 = second;
	assert_int_equal(bot_start(second), 0);
	ts_fake_text(&e->fake, OWNER, OWNER, "two");
	m = ts_fake_wait_message(&e->fake, OWNER, "echo: two", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	assert_false(bot_is_leader(second));
	{
		json_t *polls = ts_fake_requests(&e->fake, "getUpdates");
		size_t i;
		json_t *r;
		json_array_foreach(polls, i, r)
			assert_int_not_equal(json_integer_value(json_object_get(r, "status")), 409);
		json_decref(polls);
	}
	bot_free(e->bot);
	e->bot = NULL;
	until = util_mono_ms() + WAIT_MS;
	while (!bot_is_leader(second) && util_mono_ms() < until)
		util_sleep_ms(20);
	assert_true(bot_is_leader(second));
	ts_fake_text(&e->fake, OWNER, OWNER, "three");
	m = ts_fake_wait_message(&e->fake, OWNER, "echo: three", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	teardown_env(e);
}

/* --- typing while a run works --- */

static void test_typing(void **st)
{
	env *e = setup_env(NULL, 1);
	json_t *m;
	(void)st;

	ts_fake_text(&e->fake, 4404, OWNER, "slow work");
	assert_true(ts_fake_wait_requests(&e->fake, "sendChatAction", 2, WAIT_MS) >= 2);
	ts_chat_graph_release();
	m = ts_fake_wait_message(&e->fake, 4404, "echo: slow work", WAIT_MS);
	assert_non_null(m);
	json_decref(m);
	{
		json_t *a = ts_fake_requests(&e->fake, "sendChatAction");
		json_t *p = json_object_get(json_array_get(a, 0), "params");
		assert_string_equal(json_string_value(json_object_get(p, "chat_id")), "4404");
		assert_string_equal(json_string_value(json_object_get(p, "action")), "typing");
		json_decref(a);
	}
	teardown_env(e);
}

/* --- killed between storing and confirming --- */

static pid_t spawn_bot(const ts_fake *f, const char *exit_after)
{
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setenv("TELEGRAM_BOT_TOKEN", TS_TG_TOKEN, 1);
		setenv("TELEGRAM_API_BASE", f->base, 1);
		setenv("ORCH_ALLOWED_USERS", "111,222", 1);
		setenv("ORCH_GRAPH", CHAT_GRAPH, 1);
		setenv("ORCH_TG_POLL_TIMEOUT", "1s", 1);
		setenv("ORCH_TG_RATE_SCALE", "50", 1);
		if (exit_after)
			setenv("ORCH_BOT_TEST_EXIT_AFTER_COMMIT", exit_after, 1);
		execl(ts_bin(), ts_bin(), "bot", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Killed after Telegram accepted a message and before its row is marked
 * sent: the message was recorded the moment it was accepted, so the next
 * bot does not send it again. */
static void test_crash_between_send_and_mark(void **st)
{
	ts_fake fake;
	pg_conn *c = ts_conn();
	json_t *sends;
	int status = 0;
	pid_t pid;
	(void)st;

	ts_sql(c, "TRUNCATE bot_updates, bot_chats, bot_refused, bot_sent, bot_refs, outbox, "
		  "threads CASCADE");
	ts_fake_start(&fake);
	g_fake = &fake;
	ts_sql(c, "INSERT INTO outbox (kind, dest, payload) VALUES "
		  "('telegram.send', '9300', '{\"text\": \"first words\"}'), "
		  "('telegram.send', '9300', '{\"text\": \"second words\"}'), "
		  "('telegram.send', '9300', '{\"text\": \"third words\"}')");
	setenv("ORCH_BOT_TEST_EXIT_AFTER_SEND", "2", 1);
	pid = spawn_bot(&fake, NULL);
	unsetenv("ORCH_BOT_TEST_EXIT_AFTER_SEND");
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 75);
	/* Telegram has the second message, the outbox does not know yet */
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM outbox WHERE state = 'pending' AND "
				       "payload->>'text' = 'second words'"),
			 1);
	/* its claim expires (the dead process would have held it 2 minutes) */
	ts_sql(c, "UPDATE outbox SET claim_until = now() - interval '1 second' WHERE state = "
		  "'pending'");
	pid = spawn_bot(&fake, NULL);
	ts_await_sql(c, "SELECT count(*) FROM outbox WHERE state = 'sent'", 3, WAIT_MS);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	sends = ts_fake_requests(&fake, "sendMessage");
	assert_int_equal(count_ok(sends, "text", "first words"), 1);
	assert_int_equal(count_ok(sends, "text", "second words"), 1);
	assert_int_equal(count_ok(sends, "text", "third words"), 1);
	json_decref(sends);
	ts_fake_stop(&fake);
	g_fake = NULL;
	pg_conn_close(c);
}

static void test_crash_between_store_and_confirm(void **st)
{
	ts_fake fake;
	pg_conn *c = ts_conn();
	json_t *ids, *s;
	int status = 0;
	int64_t last;
	pid_t pid;
	buf ups;
	(void)st;

	ts_sql(c, "TRUNCATE bot_updates, bot_chats, bot_refused, bot_sent, bot_refs, outbox, "
		  "threads CASCADE");
	ts_fake_start(&fake);
	g_fake = &fake;
	buf_init(&ups, 0);
	buf_putc(&ups, '[');
	for (int k = 0; k < 30; k++)
		buf_printf(&ups, "%s{\"message\":{\"message_id\":%d,\"date\":1,\"from\":{\"id\":111,"
				 "\"is_bot\":false,\"first_name\":\"O\"},\"chat\":{\"id\":%d,\"type\":"
				 "\"private\"},\"text\":\"crash %d\"}}",
			   k ? "," : "", k + 1, 9100 + k, k);
	buf_putc(&ups, ']');
	ids = ts_fake_call(&fake, "/control/updates", buf_cstr(&ups));
	last = json_integer_value(json_array_get(json_object_get(ids, "ids"), 29));
	json_decref(ids);

	/* stores the batch, then dies before the next getUpdates confirms it */
	pid = spawn_bot(&fake, "1");
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 75);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM bot_updates"), 30);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
				       "r.thread_id WHERE t.key LIKE 'tg:91%'"),
			 30);
	s = ts_fake_call(&fake, "/control/state", NULL);
	assert_true(json_integer_value(json_object_get(s, "confirmed")) <= last);
	assert_int_equal(json_integer_value(json_object_get(s, "queued")), 30);
	json_decref(s);

	/* a new bot gets the same batch again: nothing doubles, all confirmed */
	pid = spawn_bot(&fake, NULL);
	{
		int64_t until = util_mono_ms() + WAIT_MS;
		int64_t conf = 0;
		while (util_mono_ms() < until) {
			s = ts_fake_call(&fake, "/control/state", NULL);
			conf = json_integer_value(json_object_get(s, "confirmed"));
			json_decref(s);
			if (conf > last)
				break;
			util_sleep_ms(20);
		}
		assert_true(conf > last);
	}
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM bot_updates"), 30);
	assert_int_equal(ts_sql_int(c, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
				       "r.thread_id WHERE t.key LIKE 'tg:91%'"),
			 30);
	assert_int_equal(ts_sql_int(c, "SELECT count(DISTINCT (input->'input'->>'update_id')) FROM "
				       "runs r JOIN threads t ON t.id = r.thread_id WHERE t.key LIKE 'tg:91%'"),
			 30);
	buf_free(&ups);
	ts_fake_stop(&fake);
	g_fake = NULL;
	pg_conn_close(c);
}

static int td(void **st)
{
	(void)st;
	if (g_env)
		teardown_env(g_env);
	if (g_fake)
		ts_fake_stop(g_fake);
	g_fake = NULL;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_message_run_reply, td),
		cmocka_unit_test_teardown(test_input_event, td),
		cmocka_unit_test_teardown(test_route_sql, td),
		cmocka_unit_test_teardown(test_bad_input, td),
		cmocka_unit_test_teardown(test_poison_updates, td),
		cmocka_unit_test_teardown(test_duplicates, td),
		cmocka_unit_test_teardown(test_strangers, td),
		cmocka_unit_test_teardown(test_approvals, td),
		cmocka_unit_test_teardown(test_approval_expiry, td),
		cmocka_unit_test_teardown(test_terminal_operators, td),
		cmocka_unit_test_teardown(test_rate_limits, td),
		cmocka_unit_test_teardown(test_long_and_html, td),
		cmocka_unit_test_teardown(test_errors_back_off, td),
		cmocka_unit_test_teardown(test_leader, td),
		cmocka_unit_test_teardown(test_typing, td),
		cmocka_unit_test_teardown(test_crash_between_store_and_confirm, td),
		cmocka_unit_test_teardown(test_crash_between_send_and_mark, td),
	};
	ts_init();
	bot_set_cancel_workers(spw_cancel_thread); /* as the command line does */
	signal(SIGPIPE, SIG_IGN);
	if (getenv("CMOCKA_TEST_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
