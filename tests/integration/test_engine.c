/* The engine against a real PostgreSQL: runs, checkpoints, waits and resume,
 * fork, double-texting, cancel, failures, pending writes, outbox delivery,
 * delta storage, retention, lost connections, lease takeover and per-node
 * timeouts (a late attempt retried or failing the run, a hung node's run
 * taken over). */
#include "tests/support/graphs.h"
#include "tests/support/support.h"

#include "core/err.h"
#include "core/health.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/ctx.h"
#include "engine/engine.h"
#include "engine/outbox.h"
#include "engine/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pg_pool *pool;
static pg_conn *db;
static eng_graph *linear, *gate;
static char exec_log[512];

static eng_engine *engine_new(int threads, int64_t lease_ms)
{
	eng_options opt = {.threads = threads, .lease_ms = lease_ms, .poll_ms = 50};
	eng_engine *e = NULL;

	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, linear), 0);
	assert_int_equal(eng_engine_add_graph(e, gate), 0);
	return e;
}

static int64_t q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t q(const char *fmt, ...)
{
	char sql[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return ts_sql_int(db, sql);
}

/* Waits (generously: the machine may be loaded) until `sql` returns `want`. */
static void await_sql(const char *sql, int64_t want)
{
	ts_await_sql(db, sql, want, 60000);
}

/* Lines of the exec log matching "run step node". */
static int exec_count(int64_t run, int step, const char *node)
{
	FILE *f = fopen(exec_log, "r");
	char line[256];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		long long r;
		int s;
		char nd[64];
		if (sscanf(line, "%lld %d %63s", &r, &s, nd) == 3 && r == run &&
		    (step < 0 || s == step) && strcmp(nd, node) == 0)
			n++;
	}
	fclose(f);
	return n;
}

static int setup(void **st)
{
	(void)st;
	pool = ts_pool(8);
	db = ts_conn();
	linear = tsg_linear4();
	gate = tsg_gate();
	snprintf(exec_log, sizeof(exec_log), "%s/exec.log", getenv("ORCH_DATA_DIR"));
	setenv("TSG_EXEC_LOG", exec_log, 1);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	eng_graph_free(linear);
	eng_graph_free(gate);
	pg_conn_close(db);
	pg_pool_free(pool);
	return 0;
}

/* --- a 4-node graph, inline --- */

static void test_linear_inline(void **st)
{
	eng_engine *e = engine_new(0, 30000);
	eng_result r;
	pg_stats before, after;
	json_t *expect = ts_json("[\"brainstorm:ok\",\"architect:ok\",\"developer:ok\",\"reviewer:ok\"]");
	(void)st;

	assert_int_equal(eng_invoke(e, "linear4", "lin-1", NULL, ENG_WANT_STATE, &r), 0);
	assert_string_equal(r.status, "done");
	assert_true(json_equal(json_object_get(r.state, "log"), expect));
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE thread_id = %lld",
			   (long long)r.thread_id),
			 4);
	assert_int_equal(q("SELECT count(*) FROM outbox WHERE run_id = %lld AND dest = 'lin-1'",
			   (long long)r.run_id),
			 4);
	assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'done' "
			   "AND step = 4 AND last_seq = 4",
			   (long long)r.run_id),
			 1);
	eng_result_clear(&r);

	/* one network round trip per super-step, plus one to create and claim */
	pg_stats_get(&before);
	assert_int_equal(eng_invoke(e, "linear4", "lin-2", NULL, 0, &r), 0);
	pg_stats_get(&after);
	assert_string_equal(r.status, "done");
	assert_int_equal(after.round_trips - before.round_trips, 5);
	assert_true(after.statements - before.statements <= 13);
	eng_result_clear(&r);
	json_decref(expect);
	eng_engine_free(e);
}

/* --- queued runs executed by worker threads --- */

static void test_queue_workers(void **st)
{
	eng_engine *e = engine_new(3, 30000);
	char key[64];
	(void)st;

	assert_int_equal(eng_engine_start(e), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "queue-%d", i);
		assert_int_equal(eng_start(db, key, "linear4", NULL, NULL, NULL, NULL), 0);
	}
	await_sql("SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id "
		  "WHERE t.key LIKE 'queue-%' AND r.status = 'done'",
		  20);
	assert_int_equal(q("SELECT count(*) FROM checkpoints c JOIN threads t ON t.id = c.thread_id "
			   "WHERE t.key LIKE 'queue-%%'"),
			 80);
	/* the engine shows up as alive in the status report */
	{
		json_t *s = NULL;
		assert_int_equal(eng_status(db, 30000, &s), 0);
		assert_true(json_array_size(json_object_get(s, "engines")) >= 1);
		json_decref(s);
	}
	eng_engine_free(e);
	assert_int_equal(q("SELECT count(*) FROM engines WHERE stopped_at IS NOT NULL"), 1);
}

/* --- waits: park, resume with the value --- */

static void test_wait_and_resume_inline(void **st)
{
	eng_engine *e = engine_new(0, 30000);
	eng_result r;
	json_t *yes = json_string("yes");
	json_t *expect = ts_json("[\"prepare:ok\",\"ask:yes\",\"finish:ok\"]");
	int64_t run, thread;
	(void)st;

	assert_int_equal(eng_invoke(e, "gate", "gate-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "waiting");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_array_get(r.wait, 0), "payload"), "question")),
			    "ship it?");
	run = r.run_id;
	thread = r.thread_id;
	eng_result_clear(&r);
	/* parked: no lease, no engine */
	assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'waiting' "
			   "AND lease_owner IS NULL AND 'approval' = ANY (waiting_on)",
			   (long long)run),
			 1);
	assert_int_equal(eng_resume(e, thread, "approval", yes, ENG_WANT_STATE, &r), 0);
	assert_string_equal(r.status, "done");
	assert_int_equal(r.run_id, run);
	assert_true(json_equal(json_object_get(r.state, "log"), expect));
	/* prepare ran once; ask ran twice (parked, then resumed); the event is consumed */
	assert_int_equal(exec_count(run, -1, "prepare"), 1);
	assert_int_equal(exec_count(run, -1, "ask"), 2);
	assert_int_equal(q("SELECT count(*) FROM events WHERE thread_id = %lld AND consumed_by = %lld",
			   (long long)thread, (long long)run),
			 1);
	/* a second resume finds nobody waiting: the event is only stored */
	eng_result_clear(&r);
	assert_int_equal(eng_resume(e, thread, "approval", yes, 0, &r), 0);
	assert_string_equal(r.status, "stored");
	eng_result_clear(&r);
	json_decref(yes);
	json_decref(expect);
	eng_engine_free(e);
}

/* A run's input is applied once: resuming the run after a checkpoint does
 * not apply it again (an appended item would appear twice). */
static void test_input_applied_once(void **st)
{
	eng_engine *e = engine_new(0, 30000);
	eng_result r;
	json_t *in = ts_json("{\"log\": [\"input\"]}"), *yes = json_string("yes");
	json_t *expect = ts_json("[\"input\",\"prepare:ok\",\"ask:yes\",\"finish:ok\"]");
	int64_t thread;
	(void)st;

	assert_int_equal(eng_invoke(e, "gate", "gate-input", in, 0, &r), 0);
	assert_string_equal(r.status, "waiting");
	thread = r.thread_id;
	eng_result_clear(&r);
	assert_int_equal(eng_resume(e, thread, "approval", yes, ENG_WANT_STATE, &r), 0);
	assert_string_equal(r.status, "done");
	assert_true(json_equal(json_object_get(r.state, "log"), expect));
	eng_result_clear(&r);
	json_decref(in);
	json_decref(yes);
	json_decref(expect);
	eng_engine_free(e);
}

static void test_wait_and_deliver_queued(void **st)
{
	eng_engine *e = engine_new(2, 30000);
	json_t *v = json_string("later");
	int64_t thread, run, woken = 0;
	int dup = -1;
	(void)st;

	assert_int_equal(eng_engine_start(e), 0);
	assert_int_equal(eng_start(db, "gate-2", "gate", NULL, NULL, &thread, &run), 0);
	await_sql("SELECT count(*) FROM runs WHERE thread_id = (SELECT id FROM threads WHERE key = "
		  "'gate-2') AND status = 'waiting'",
		  1);
	assert_int_equal(eng_deliver(db, thread, "approval", v, "click-1", &woken, &dup), 0);
	assert_int_equal(woken, run);
	assert_int_equal(dup, 0);
	/* the same click delivered again changes nothing */
	assert_int_equal(eng_deliver(db, thread, "approval", v, "click-1", &woken, &dup), 0);
	assert_int_equal(dup, 1);
	await_sql("SELECT count(*) FROM runs WHERE thread_id = (SELECT id FROM threads WHERE key = "
		  "'gate-2') AND status = 'done'",
		  1);
	assert_int_equal(q("SELECT count(*) FROM events WHERE thread_id = %lld", (long long)thread), 1);
	json_decref(v);
	eng_engine_free(e);
}

/* An event delivered before the node asks is there when it asks. */
static void test_event_before_wait(void **st)
{
	eng_engine *e = engine_new(0, 30000);
	eng_result r;
	json_t *v = json_string("early");
	int64_t thread;
	(void)st;

	assert_int_equal(eng_start(db, "gate-3", "gate", NULL, NULL, &thread, NULL), 0);
	assert_int_equal(eng_cancel_thread(db, thread, NULL), 0);
	assert_int_equal(eng_deliver(db, thread, "approval", v, NULL, NULL, NULL), 0);
	assert_int_equal(eng_invoke(e, "gate", "gate-3", NULL, ENG_WANT_STATE, &r), 0);
	assert_string_equal(r.status, "done");
	assert_string_equal(json_string_value(json_array_get(json_object_get(r.state, "log"), 1)),
			    "ask:early");
	eng_result_clear(&r);
	json_decref(v);
	eng_engine_free(e);
}

/* --- time travel --- */

static void test_fork_from_checkpoint(void **st)
{
	eng_engine *e = engine_new(1, 30000);
	eng_result r;
	json_t *hist = NULL, *state = NULL, *next = NULL;
	json_t *upd = ts_json("{\"log\":[\"edited\"]}");
	int64_t thread, fork_run;
	int seq = 0;
	(void)st;

	assert_int_equal(eng_invoke(e, "linear4", "fork-1", NULL, 0, &r), 0);
	thread = r.thread_id;
	eng_result_clear(&r);
	assert_int_equal(eng_history(db, thread, 10, &hist), 0);
	assert_int_equal(json_array_size(hist), 4);
	/* newest first; checkpoint 2 was after architect, with developer next */
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(json_array_get(hist, 2), "next"), 0), "node")),
		"developer");
	json_decref(hist);
	assert_int_equal(eng_state_at(db, thread, 2, &state, &next, &seq), 0);
	assert_int_equal(json_array_size(json_object_get(state, "log")), 2);
	json_decref(state);
	json_decref(next);

	assert_int_equal(eng_fork(db, thread, 2, upd, &fork_run), 0);
	assert_int_equal(eng_engine_start(e), 0);
	await_sql("SELECT count(*) FROM runs WHERE status = 'done' AND start_seq = 2", 1);
	assert_int_equal(eng_state_at(db, thread, 0, &state, NULL, &seq), 0);
	assert_int_equal(seq, 6);
	{
		json_t *expect = ts_json("[\"brainstorm:ok\",\"architect:ok\",\"edited\","
					 "\"developer:ok\",\"reviewer:ok\"]");
		assert_true(json_equal(json_object_get(state, "log"), expect));
		json_decref(expect);
	}
	json_decref(state);
	/* the branch hangs off checkpoint 2; the old branch is still readable */
	assert_int_equal(q("SELECT parent_seq FROM checkpoints WHERE thread_id = %lld AND seq = 5",
			   (long long)thread),
			 2);
	assert_int_equal(eng_state_at(db, thread, 4, &state, NULL, NULL), 0);
	assert_int_equal(json_array_size(json_object_get(state, "log")), 4);
	json_decref(state);
	assert_int_equal(eng_fork(db, thread, 99, NULL, NULL), ERR_NOTFOUND);
	json_decref(upd);
	eng_engine_free(e);
}

/* --- double-texting and cancel --- */

static void test_input_queues_behind_active_run(void **st)
{
	eng_engine *e = engine_new(2, 30000);
	json_t *v = json_string("ok");
	int64_t thread, first, second;
	(void)st;

	assert_int_equal(eng_engine_start(e), 0);
	assert_int_equal(eng_start(db, "dbl-1", "gate", NULL, NULL, &thread, &first), 0);
	await_sql("SELECT count(*) FROM runs WHERE thread_id = (SELECT id FROM threads WHERE key = "
		  "'dbl-1') AND status = 'waiting'",
		  1);
	assert_int_equal(eng_start(db, "dbl-1", "gate", NULL, NULL, NULL, &second), 0);
	util_sleep_ms(300); /* give the workers every chance to misbehave */
	assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'queued'",
			   (long long)second),
			 1);
	/* the first finishes, then the second runs (and waits for its own approval) */
	assert_int_equal(eng_deliver(db, thread, "approval", v, NULL, NULL, NULL), 0);
	await_sql("SELECT count(*) FROM runs WHERE thread_id = (SELECT id FROM threads WHERE key = "
		  "'dbl-1') AND status IN ('done', 'waiting')",
		  2);
	assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'done'",
			   (long long)first),
			 1);
	assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'waiting'",
			   (long long)second),
			 1);
	/* cancel the waiting one: at once */
	{
		char s[16];
		assert_int_equal(eng_cancel_run(db, second, s), 0);
		assert_string_equal(s, "cancelled");
		assert_int_equal(eng_cancel_run(db, second, s), ERR_NOTFOUND);
	}
	json_decref(v);
	eng_engine_free(e);
}

static void test_cancel_running_at_step_boundary(void **st)
{
	eng_engine *e = engine_new(1, 30000);
	int64_t run;
	char s[16];
	(void)st;

	setenv("TSG_SLEEP_MS", "150", 1);
	assert_int_equal(eng_engine_start(e), 0);
	assert_int_equal(eng_start(db, "cancel-1", "linear4", NULL, NULL, NULL, &run), 0);
	await_sql("SELECT count(*) FROM runs WHERE thread_id = (SELECT id FROM threads WHERE key = "
		  "'cancel-1') AND step >= 1",
		  1);
	assert_int_equal(eng_cancel_run(db, run, s), 0);
	await_sql("SELECT count(*) FROM runs WHERE thread_id = (SELECT id FROM threads WHERE key = "
		  "'cancel-1') AND status = 'cancelled'",
		  1);
	unsetenv("TSG_SLEEP_MS");
	/* it stopped at a step boundary: every step it did is checkpointed */
	assert_true(q("SELECT step FROM runs WHERE id = %lld", (long long)run) < 4);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld", (long long)run),
			 q("SELECT step FROM runs WHERE id = %lld", (long long)run));
	eng_engine_free(e);
}

/* --- failures --- */

static atomic_int fail_calls;

static int node_maybe_fail(eng_ctx *ctx, const json_t *state, const json_t *input,
			   json_t **update)
{
	(void)ctx;
	(void)input;
	atomic_fetch_add(&fail_calls, 1);
	if (json_is_true(json_object_get(state, "fail")))
		return err_set(ERR_HTTP, "the model endpoint is down");
	*update = json_pack("{s:[s]}", "log", "ok");
	return 0;
}

static int node_array_update(eng_ctx *ctx, const json_t *state, const json_t *input,
			     json_t **update)
{
	(void)ctx;
	(void)state;
	(void)input;
	*update = json_pack("[i]", 1);
	return 0;
}

static int node_loop(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)ctx;
	(void)state;
	(void)input;
	*update = json_pack("{s:[i]}", "log", 1);
	return 0;
}

static int route_loop(const json_t *state, eng_next *next, void *udata)
{
	(void)state;
	(void)udata;
	return eng_next_add(next, "loop");
}

static int route_ghost(const json_t *state, eng_next *next, void *udata)
{
	(void)state;
	(void)udata;
	return eng_next_add(next, "ghost");
}

static void test_failures_are_recorded(void **st)
{
	eng_retry fast = {.max_attempts = 2, .initial_ms = 1, .max_ms = 2, .factor = 2};
	eng_graph *g;
	eng_engine *e;
	eng_result r;
	json_t *in_fail = ts_json("{\"fail\":true}"), *in_ok = ts_json("{\"fail\":false}");
	(void)st;

	eng_graph_new(&g, "failing");
	eng_graph_add_node(g, "work", node_maybe_fail, NULL, &fast);
	eng_graph_add_node(g, "orphan", node_loop, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "work");
	eng_graph_add_edge(g, "work", ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	/* a node nothing leads to is a mistake the graph check catches */
	assert_int_equal(eng_graph_compile(g), ERR_INVALID);
	assert_non_null(strstr(err_last(), "orphan"));
	eng_graph_add_edge(g, "work", "orphan");
	assert_int_equal(eng_graph_compile(g), 0);
	assert_int_equal(eng_engine_new(&e, pool, NULL), 0);
	assert_int_equal(eng_engine_add_graph(e, g), 0);

	/* the node's retry policy, then a failed run with the error recorded */
	atomic_store(&fail_calls, 0);
	assert_int_equal(eng_invoke(e, "failing", "fail-1", in_fail, 0, &r), 0);
	assert_string_equal(r.status, "failed");
	assert_non_null(strstr(r.error, "endpoint is down"));
	assert_int_equal(atomic_load(&fail_calls), 2);
	assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'failed' "
			   "AND error_node = 'work' AND error LIKE '%%attempt 2 of 2%%'",
			   (long long)r.run_id),
			 1);
	eng_result_clear(&r);
	/* the thread stays usable */
	assert_int_equal(eng_invoke(e, "failing", "fail-1", in_ok, 0, &r), 0);
	assert_string_equal(r.status, "done");
	eng_result_clear(&r);
	/* and status shows the failure */
	{
		json_t *s = NULL;
		assert_int_equal(eng_status(db, 30000, &s), 0);
		assert_true(json_array_size(json_object_get(s, "recent_failures")) >= 1);
		json_decref(s);
	}
	eng_engine_free(e);
	eng_graph_free(g);
	json_decref(in_fail);
	json_decref(in_ok);
}

static eng_graph *entry_graph(const char *name, const char *entry, eng_node_fn fn,
			      eng_router_fn router, int limit)
{
	eng_graph *g;
	eng_graph_new(&g, name);
	eng_graph_add_node(g, entry, fn, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, entry);
	if (router)
		eng_graph_add_router(g, entry, router, NULL, ENG_TARGETS(entry));
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	if (limit)
		eng_graph_set_recursion_limit(g, limit);
	assert_int_equal(eng_graph_compile(g), 0);
	return g;
}

static void test_bad_graph_behaviour_fails_the_run(void **st)
{
	eng_graph *gbad = entry_graph("g-bad", "bad", node_array_update, NULL, 0);
	eng_graph *gloop = entry_graph("g-loop", "loop", node_loop, route_loop, 12);
	eng_graph *glost = entry_graph("g-lost", "lost", node_loop, route_ghost, 0);
	eng_engine *e;
	eng_result r;
	json_t *bad_input = ts_json("{\"x\":1}");
	(void)st;

	assert_int_equal(eng_engine_new(&e, pool, NULL), 0);
	eng_engine_add_graph(e, gbad);
	eng_engine_add_graph(e, gloop);
	eng_engine_add_graph(e, glost);

	assert_int_equal(eng_invoke(e, "g-bad", "bad-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "failed");
	assert_non_null(strstr(r.error, "not an object"));
	eng_result_clear(&r);

	assert_int_equal(eng_invoke(e, "g-loop", "loop-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "failed");
	assert_non_null(strstr(r.error, "recursion limit of 12"));
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld", (long long)r.run_id),
			 12);
	eng_result_clear(&r);

	assert_int_equal(eng_invoke(e, "g-lost", "lost-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "failed");
	assert_non_null(strstr(r.error, "unknown node 'ghost'"));
	eng_result_clear(&r);

	/* a thread belongs to one graph */
	assert_int_equal(eng_invoke(e, "g-bad", "loop-1", bad_input, 0, &r), ERR_CONFLICT);
	eng_result_clear(&r);
	json_decref(bad_input);
	eng_engine_free(e);
	eng_graph_free(gbad);
	eng_graph_free(gloop);
	eng_graph_free(glost);
}

/* --- pending writes of parallel branches --- */

static atomic_int sibling_calls;

static int node_sibling(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	atomic_fetch_add(&sibling_calls, 1);
	eng_emit(ctx, "test.sibling", NULL, json_pack("{s:i}", "step", eng_ctx_step(ctx)));
	*update = json_pack("{s:[s]}", "log", "sibling");
	return 0;
}

static int node_waiter(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	json_t *v = NULL;
	int rc;
	(void)state;
	(void)input;
	rc = eng_await(ctx, "go", NULL, &v);
	if (rc < 0)
		return rc;
	*update = json_pack("{s:[o]}", "log", v);
	return 0;
}

static void test_pending_writes_survive_a_wait(void **st)
{
	eng_graph *g;
	eng_engine *e;
	eng_result r;
	json_t *go = json_string("went");
	json_t *expect = ts_json("[\"sibling\",\"went\"]");
	int64_t thread, run;
	(void)st;

	eng_graph_new(&g, "par");
	eng_graph_add_node(g, "sibling", node_sibling, NULL, NULL);
	eng_graph_add_node(g, "waiter", node_waiter, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "sibling");
	eng_graph_add_edge(g, ENG_START, "waiter");
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	assert_int_equal(eng_graph_compile(g), 0);
	assert_int_equal(eng_engine_new(&e, pool, NULL), 0);
	eng_engine_add_graph(e, g);

	atomic_store(&sibling_calls, 0);
	assert_int_equal(eng_invoke(e, "par", "par-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "waiting");
	thread = r.thread_id;
	run = r.run_id;
	eng_result_clear(&r);
	/* the finished sibling's write is kept, and its outbox row is out */
	assert_int_equal(q("SELECT count(*) FROM pending_writes WHERE run_id = %lld AND node = "
			   "'sibling'",
			   (long long)run),
			 1);
	assert_int_equal(q("SELECT count(*) FROM outbox WHERE run_id = %lld", (long long)run), 1);
	assert_int_equal(eng_resume(e, thread, "go", go, ENG_WANT_STATE, &r), 0);
	assert_string_equal(r.status, "done");
	assert_true(json_equal(json_object_get(r.state, "log"), expect));
	/* the sibling ran once; its write landed once; nothing was sent twice */
	assert_int_equal(atomic_load(&sibling_calls), 1);
	assert_int_equal(q("SELECT count(*) FROM outbox WHERE run_id = %lld", (long long)run), 1);
	assert_int_equal(q("SELECT count(*) FROM pending_writes WHERE run_id = %lld", (long long)run),
			 0);
	eng_result_clear(&r);
	json_decref(go);
	json_decref(expect);
	eng_engine_free(e);
	eng_graph_free(g);
}

/* --- outbox delivery --- */

typedef struct relay_log {
	pthread_mutex_t mu;
	json_t *seen; /* dest -> [node, ...] */
	int fail_first;
	int calls;
} relay_log;

static int relay_handler(const eng_outbox_row *row, json_t **result, int64_t *retry_after,
			 void *udata)
{
	relay_log *l = udata;
	const char *node = json_string_value(json_object_get(row->payload, "node"));
	int rc = 0;

	pthread_mutex_lock(&l->mu);
	l->calls++;
	if (l->fail_first && row->attempts == 0 && strcmp(node, "architect") == 0) {
		*retry_after = 10;
		rc = err_set(ERR_HTTP, "flaky receiver");
	} else if (strcmp(row->dest, "ob-dead") == 0 && strcmp(node, "developer") == 0) {
		rc = err_set(ERR_DENIED, "receiver refuses this one");
	} else {
		json_t *list = json_object_get(l->seen, row->dest);
		if (!list) {
			list = json_array();
			json_object_set_new(l->seen, row->dest, list);
		}
		json_array_append_new(list, json_string(node));
		*result = json_pack("{s:s}", "delivered", node);
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

static int relay_drained(void *p)
{
	(void)p;
	return ts_sql_int(db, "SELECT count(*) FROM outbox WHERE kind = 'test.note' AND dest LIKE "
			      "'ob-%' AND state = 'pending'") == 0;
}

static void test_outbox_relay(void **st)
{
	eng_engine *e = engine_new(0, 30000);
	eng_relay *relay;
	eng_relay_options ro = {.name = "test", .kinds = "{test.note}", .batch = 3,
				.backoff_ms = 10, .max_backoff_ms = 20, .poll_ms = 20};
	relay_log log = {.seen = json_object(), .fail_first = 1};
	eng_result r;
	json_t *order = ts_json("[\"brainstorm\",\"architect\",\"developer\",\"reviewer\"]");
	(void)st;

	pthread_mutex_init(&log.mu, NULL);
	ts_sql(db, "UPDATE outbox SET state = 'sent'"); /* earlier tests' rows */
	for (int i = 0; i < 3; i++) {
		char key[32];
		snprintf(key, sizeof(key), "ob-%d", i);
		assert_int_equal(eng_invoke(e, "linear4", key, NULL, 0, &r), 0);
		eng_result_clear(&r);
	}
	assert_int_equal(eng_invoke(e, "linear4", "ob-dead", NULL, 0, &r), 0);
	eng_result_clear(&r);
	assert_int_equal(eng_relay_new(&relay, pool, &ro, relay_handler, &log), 0);
	assert_int_equal(eng_relay_start(relay), 0);
	if (!ts_wait_for(relay_drained, NULL, 60000))
		fail_msg("the relay did not drain the outbox");
	eng_relay_free(relay);
	/* each dest got its rows once, in order, although one failed first */
	for (int i = 0; i < 3; i++) {
		char key[32];
		snprintf(key, sizeof(key), "ob-%d", i);
		assert_true(json_equal(json_object_get(log.seen, key), order));
	}
	assert_int_equal(q("SELECT count(*) FROM outbox WHERE dest LIKE 'ob-%%' AND state = 'sent' "
			   "AND result IS NOT NULL"),
			 15);
	assert_int_equal(q("SELECT count(*) FROM outbox WHERE dest = 'ob-dead' AND state = 'dead' "
			   "AND last_error LIKE '%%refuses%%'"),
			 1);
	assert_int_equal(q("SELECT max(attempts) FROM outbox WHERE dest LIKE 'ob-%%'"), 1);
	json_decref(order);
	json_decref(log.seen);
	pthread_mutex_destroy(&log.mu);
	eng_engine_free(e);
}

/* A relay stopped and started again delivers again (the bot stops its relay
 * when its lock connection breaks and starts it when it leads again), and
 * says in the health registry whether it works. */
static void test_relay_restarts(void **st)
{
	eng_engine *e = engine_new(0, 30000);
	eng_relay *relay;
	eng_relay_options ro = {.name = "again", .kinds = "{test.note}", .batch = 10,
				.backoff_ms = 10, .max_backoff_ms = 20, .poll_ms = 20};
	relay_log log = {.seen = json_object()};
	eng_result r;
	json_t *snap;
	(void)st;

	pthread_mutex_init(&log.mu, NULL);
	ts_sql(db, "UPDATE outbox SET state = 'sent'"); /* earlier tests' rows */
	health_reset();
	assert_int_equal(eng_relay_new(&relay, pool, &ro, relay_handler, &log), 0);
	for (int round = 0; round < 3; round++) {
		char key[32];

		assert_int_equal(eng_relay_start(relay), 0);
		assert_true(eng_relay_running(relay));
		snap = health_snapshot();
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(snap, "relay.again"), "state")),
				    "ok");
		json_decref(snap);
		snprintf(key, sizeof(key), "ob-again-%d", round);
		assert_int_equal(eng_invoke(e, "linear4", key, NULL, 0, &r), 0);
		eng_result_clear(&r);
		if (!ts_wait_for(relay_drained, NULL, 60000))
			fail_msg("the relay delivered nothing after start number %d", round + 1);
		eng_relay_stop(relay);
		assert_false(eng_relay_running(relay));
		/* stopped on purpose: not a fault, not in the registry */
		snap = health_snapshot();
		assert_null(json_object_get(snap, "relay.again"));
		json_decref(snap);
	}
	eng_relay_free(relay);
	assert_int_equal(q("SELECT count(*) FROM outbox WHERE dest LIKE 'ob-again-%%' AND state = "
			   "'sent'"),
			 12);
	json_decref(log.seen);
	pthread_mutex_destroy(&log.mu);
	eng_engine_free(e);
}

/* An engine stopped and started again claims runs again. */
static void test_engine_restarts(void **st)
{
	eng_engine *e = engine_new(2, 30000);
	(void)st;

	for (int round = 0; round < 2; round++) {
		char key[32];

		assert_int_equal(eng_engine_start(e), 0);
		snprintf(key, sizeof(key), "restart-%d", round);
		assert_int_equal(eng_start(db, key, "linear4", NULL, NULL, NULL, NULL), 0);
		await_sql("SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id WHERE "
			  "t.key LIKE 'restart-%' AND r.status = 'done'",
			  round + 1);
		eng_engine_stop(e);
	}
	eng_engine_free(e);
}

/* --- the database refuses a commit (not a lost connection) --- */

/* A commit refused with "disk full" (SQLSTATE 53100, raised by a trigger as
 * PostgreSQL raises it when its disk is full) is tried a bounded number of
 * times with backoff, without running the step's node again, and the run
 * fails with the reason; the engine says so loudly and in its health. */
static void test_refused_commit_fails_the_run(void **st)
{
	eng_options opt = {.threads = 2, .lease_ms = 30000, .poll_ms = 50,
			   .commit_attempts = 4, .commit_backoff_ms = 20};
	eng_engine *e = NULL;
	json_t *snap;
	int64_t runs[3], t0;
	(void)st;

	ts_sql(db, "CREATE SEQUENCE IF NOT EXISTS refused_attempts; "
		   "CREATE OR REPLACE FUNCTION t_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
		   "BEGIN IF (SELECT key FROM threads WHERE id = NEW.thread_id) LIKE 'refused-%' "
		   "THEN PERFORM nextval('refused_attempts'); RAISE EXCEPTION 'could not extend "
		   "file \"base/1/2\": No space left on device' USING ERRCODE = '53100'; END IF; "
		   "RETURN NEW; END $$; "
		   "DROP TRIGGER IF EXISTS t_refuse ON checkpoints; "
		   "CREATE TRIGGER t_refuse BEFORE INSERT ON checkpoints FOR EACH ROW "
		   "EXECUTE FUNCTION t_refuse()");
	health_reset();
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, linear), 0);
	assert_int_equal(eng_engine_start(e), 0);
	t0 = util_mono_ms();
	for (int i = 0; i < 3; i++) {
		char key[32];
		snprintf(key, sizeof(key), "refused-%d", i);
		assert_int_equal(eng_start(db, key, "linear4", NULL, NULL, NULL, &runs[i]), 0);
	}
	await_sql("SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id WHERE "
		  "t.key LIKE 'refused-%' AND r.status = 'failed'",
		  3);
	printf("# recovery: 3 runs whose commits the database refused (SQLSTATE 53100) failed with "
	       "the reason %lld ms after they were queued, each node run once (backoff from %lld "
	       "ms, %d attempts)\n",
	       (long long)(util_mono_ms() - t0), (long long)opt.commit_backoff_ms,
	       opt.commit_attempts);
	for (int i = 0; i < 3; i++) {
		/* the node ran once; its step's commit was tried 4 times */
		assert_int_equal(exec_count(runs[i], 1, "brainstorm"), 1);
		assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND error LIKE "
				   "'%%refused%%commit%%4 times (resources, SQLSTATE 53100)%%No space "
				   "left%%'",
				   (long long)runs[i]),
				 1);
	}
	/* 4 attempts of 3 steps; a batched attempt is tried once more on its
	 * own when its batch fails, so at most twice that */
	assert_true(q("SELECT last_value FROM refused_attempts") >= 12);
	assert_true(q("SELECT last_value FROM refused_attempts") <= 24);
	assert_int_equal(q("SELECT count(*) FROM checkpoints c JOIN threads t ON t.id = c.thread_id "
			   "WHERE t.key LIKE 'refused-%%'"),
			 0);
	snap = health_snapshot();
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(snap, "engine.commits"), "state")),
			    "degraded");
	json_decref(snap);
	/* the disk has room again: commits go through, the engine is healthy */
	ts_sql(db, "DROP TRIGGER t_refuse ON checkpoints");
	assert_int_equal(eng_start(db, "refused-later", "linear4", NULL, NULL, NULL, NULL), 0);
	await_sql("SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id WHERE "
		  "t.key = 'refused-later' AND r.status = 'done'",
		  1);
	snap = health_snapshot();
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(snap, "engine.commits"), "state")),
			    "ok");
	json_decref(snap);
	eng_engine_free(e);
}

/* --- storage: deltas, snapshots, retention --- */

static void test_long_thread_storage_and_prune(void **st)
{
	eng_engine *e = engine_new(0, 30000);
	eng_result r;
	json_t *state = NULL;
	eng_prune_stats ps;
	int64_t thread = 0;
	const int turns = 150;
	(void)st;

	for (int i = 0; i < turns; i++) {
		json_t *in = json_pack("{s:[s]}", "log", "user");
		assert_int_equal(eng_invoke(e, "linear4", "long-1", in, 0, &r), 0);
		assert_string_equal(r.status, "done");
		thread = r.thread_id;
		eng_result_clear(&r);
		json_decref(in);
	}
	/* a step stores only what it added: deltas stay small while the log grows */
	assert_true(q("SELECT max(octet_length(delta::text)) FROM checkpoints WHERE thread_id = %lld",
		      (long long)thread) < 200);
	assert_true(q("SELECT count(*) FROM checkpoints WHERE thread_id = %lld AND snapshot IS NOT "
		      "NULL",
		      (long long)thread) >= 1);
	assert_true(q("SELECT count(*) FROM checkpoints WHERE thread_id = %lld AND snapshot IS NOT "
		      "NULL",
		      (long long)thread) <= 10);
	/* storage stays linear: all snapshots together are a few times the final state */
	assert_true(q("SELECT sum(coalesce(octet_length(snapshot::text), 0)) FROM checkpoints "
		      "WHERE thread_id = %lld",
		      (long long)thread) < 6 * q("SELECT snap_bytes + chain_bytes + 4096 FROM "
						 "checkpoints WHERE thread_id = %lld AND seq = %d",
						 (long long)thread, turns * 4));
	/* every checkpoint reads back as the right prefix */
	for (int seq = 1; seq <= turns * 4; seq += 37) {
		assert_int_equal(eng_state_at(db, thread, seq, &state, NULL, NULL), 0);
		/* after seq steps: turns begun * 1 user entry + seq node entries */
		assert_int_equal(json_array_size(json_object_get(state, "log")),
				 (size_t)(seq + (seq + 3) / 4));
		json_decref(state);
	}

	/* retention keeps the newest 5 checkpoints, each still readable */
	ts_sql(db, "UPDATE threads SET updated_at = now() - interval '40 days' WHERE key = 'long-1'");
	assert_int_equal(eng_prune(db, 30, 5, &ps), 0);
	assert_true(ps.threads >= 1);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE thread_id = %lld", (long long)thread),
			 5);
	for (int seq = turns * 4 - 4; seq <= turns * 4; seq++) {
		assert_int_equal(eng_state_at(db, thread, seq, &state, NULL, NULL), 0);
		assert_int_equal(json_array_size(json_object_get(state, "log")),
				 (size_t)(seq + (seq + 3) / 4));
		json_decref(state);
	}
	assert_int_equal(eng_state_at(db, thread, 10, &state, NULL, NULL), ERR_NOTFOUND);
	/* and the thread goes on from there */
	assert_int_equal(eng_invoke(e, "linear4", "long-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "done");
	eng_result_clear(&r);
	eng_engine_free(e);
}

/* --- faults: lost connections, dead engines --- */

static void test_db_connections_killed(void **st)
{
	eng_engine *e = engine_new(2, 3000);
	(void)st;

	setenv("TSG_SLEEP_MS", "20", 1);
	assert_int_equal(eng_engine_start(e), 0);
	for (int i = 0; i < 12; i++) {
		char key[32];
		snprintf(key, sizeof(key), "kill-%d", i);
		assert_int_equal(eng_start(db, key, "linear4", NULL, NULL, NULL, NULL), 0);
	}
	for (int round = 0; round < 6; round++) {
		util_sleep_ms(120);
		ts_sql_int(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
			       "datname = current_database() AND pid <> pg_backend_pid()");
	}
	unsetenv("TSG_SLEEP_MS");
	await_sql("SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id "
		  "WHERE t.key LIKE 'kill-%' AND r.status = 'done'",
		  12);
	/* every run has exactly its four checkpoints and four outbox rows */
	assert_int_equal(q("SELECT count(*) FROM (SELECT r.id FROM runs r JOIN threads t ON t.id = "
			   "r.thread_id JOIN checkpoints c ON c.run_id = r.id WHERE t.key LIKE "
			   "'kill-%%' GROUP BY r.id HAVING count(*) = 4) x"),
			 12);
	assert_int_equal(q("SELECT count(*) FROM (SELECT run_id, step FROM outbox WHERE dest LIKE "
			   "'kill-%%' GROUP BY run_id, step HAVING count(*) = 1) x"),
			 48);
	eng_engine_free(e);
}

static void test_lease_takeover(void **st)
{
	eng_engine *e;
	store_run dead;
	pg_conn *c = ts_conn();
	int64_t run;
	(void)st;

	/* a run claimed by an engine that then dies without a word */
	assert_int_equal(eng_start(db, "takeover-1", "linear4", NULL, NULL, NULL, &run), 0);
	memset(&dead, 0, sizeof(dead));
	assert_int_equal(store_claim_queued(c, "dead-engine", 300, "{linear4}", &dead), 1);
	assert_int_equal(dead.run_id, run);
	store_run_clear(&dead);
	pg_conn_close(c);

	e = engine_new(1, 2000);
	assert_int_equal(eng_engine_start(e), 0);
	await_sql("SELECT count(*) FROM runs WHERE thread_id = (SELECT id FROM threads WHERE key = "
		  "'takeover-1') AND status = 'done'",
		  1);
	assert_int_equal(q("SELECT takeovers FROM runs WHERE id = %lld", (long long)run), 1);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld", (long long)run), 4);
	eng_engine_free(e);
}

/* --- per-node timeouts --- */

static eng_engine *engine_for(const eng_graph *g, int threads, int64_t lease_ms)
{
	eng_options opt = {.threads = threads, .lease_ms = lease_ms, .poll_ms = 50};
	eng_engine *e = NULL;

	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, g), 0);
	return e;
}

static atomic_int slow_calls;
static atomic_llong mid_left;

/* Too slow on its first attempt only; each attempt leaves an outbox row. */
static int node_slow_once(eng_ctx *ctx, const json_t *state, const json_t *input,
			  json_t **update)
{
	int attempt = eng_ctx_attempt(ctx);
	(void)state;
	(void)input;
	atomic_fetch_add(&slow_calls, 1);
	eng_emit(ctx, "test.note", NULL, json_pack("{s:i}", "attempt", attempt));
	if (attempt == 1)
		util_sleep_ms(eng_ctx_remaining_ms(ctx) + 150);
	*update = json_pack("{s:i,s:[s]}", "attempt", attempt, "log", attempt == 1 ? "slow" : "fast");
	return 0;
}

static int node_mid(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	atomic_store(&mid_left, eng_ctx_deadline_ms(ctx) > 0 ? eng_ctx_remaining_ms(ctx) : -1);
	*update = json_pack("{s:[s]}", "log", "mid");
	return 0;
}

static void test_timeout_then_retry_succeeds(void **st)
{
	eng_retry fast = {.max_attempts = 3, .initial_ms = 1, .max_ms = 2, .factor = 2};
	eng_graph *g;
	eng_engine *e;
	eng_result r;
	json_t *expect = ts_json("[\"fast\",\"mid\"]");
	(void)st;

	eng_graph_new(&g, "timed-once");
	eng_graph_add_node(g, "slow", node_slow_once, NULL, &fast);
	eng_graph_add_node(g, "mid", node_mid, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "slow");
	eng_graph_add_edge(g, "slow", "mid");
	eng_graph_add_edge(g, "mid", ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	assert_int_equal(eng_graph_set_timeout(g, "slow", 100), 0);
	assert_int_equal(eng_graph_set_default_timeout(g, 60000), 0);
	assert_int_equal(eng_graph_compile(g), 0);
	e = engine_for(g, 0, 30000);

	atomic_store(&slow_calls, 0);
	atomic_store(&mid_left, 0);
	assert_int_equal(eng_invoke(e, "timed-once", "timed-1", NULL, ENG_WANT_STATE, &r), 0);
	assert_string_equal(r.status, "done");
	assert_int_equal(atomic_load(&slow_calls), 2);
	/* the late attempt's update and outbox row were dropped */
	assert_int_equal(json_integer_value(json_object_get(r.state, "attempt")), 2);
	assert_true(json_equal(json_object_get(r.state, "log"), expect));
	assert_int_equal(q("SELECT count(*) FROM outbox WHERE run_id = %lld AND kind = 'test.note'",
			   (long long)r.run_id),
			 1);
	assert_int_equal(q("SELECT count(*) FROM outbox WHERE run_id = %lld AND kind = 'test.note' "
			   "AND payload->>'attempt' = '2'",
			   (long long)r.run_id),
			 1);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld AND step = 1",
			   (long long)r.run_id),
			 1);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld", (long long)r.run_id),
			 2);
	/* the graph's default timeout reached the node given none */
	assert_true(atomic_load(&mid_left) > 0);
	assert_true(atomic_load(&mid_left) <= 60000);
	eng_result_clear(&r);
	json_decref(expect);
	eng_engine_free(e);
	eng_graph_free(g);
}

static atomic_int crawl_calls, crawl_saw_expiry;

/* Works in small slices until told to stop, then returns a result anyway. */
static int node_crawl(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	atomic_fetch_add(&crawl_calls, 1);
	while (!eng_ctx_should_stop(ctx))
		util_sleep_ms(5);
	if (eng_ctx_expired(ctx) && eng_ctx_remaining_ms(ctx) == 0)
		atomic_fetch_add(&crawl_saw_expiry, 1);
	util_sleep_ms(5);
	*update = json_pack("{s:[s]}", "log", "crawled");
	return 0;
}

static void test_timeout_fails_the_run(void **st)
{
	eng_retry two = {.max_attempts = 2, .initial_ms = 1, .max_ms = 2, .factor = 2};
	eng_graph *g;
	eng_engine *e;
	eng_result r;
	json_t *s = NULL, *f;
	size_t i;
	int listed = 0;
	(void)st;

	eng_graph_new(&g, "timed-out");
	eng_graph_add_node(g, "crawl", node_crawl, NULL, &two);
	eng_graph_add_edge(g, ENG_START, "crawl");
	eng_graph_add_edge(g, "crawl", ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	assert_int_equal(eng_graph_set_timeout(g, "crawl", 100), 0);
	assert_int_equal(eng_graph_compile(g), 0);
	e = engine_for(g, 0, 30000);

	atomic_store(&crawl_calls, 0);
	atomic_store(&crawl_saw_expiry, 0);
	assert_int_equal(eng_invoke(e, "timed-out", "timed-2", NULL, 0, &r), 0);
	assert_string_equal(r.status, "failed");
	assert_non_null(strstr(r.error, "node 'crawl' exceeded its timeout of 100 ms "
					"(attempt 2 of 2)"));
	assert_int_equal(atomic_load(&crawl_calls), 2);
	assert_int_equal(atomic_load(&crawl_saw_expiry), 2);
	assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'failed' "
			   "AND error_node = 'crawl' AND error LIKE '%%exceeded its timeout%%'",
			   (long long)r.run_id),
			 1);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld", (long long)r.run_id),
			 0);
	/* status lists it with the other failures */
	assert_int_equal(eng_status(db, 30000, &s), 0);
	json_array_foreach(json_object_get(s, "recent_failures"), i, f) {
		if (json_integer_value(json_object_get(f, "run")) == r.run_id &&
		    strstr(json_string_value(json_object_get(f, "error")), "exceeded its timeout"))
			listed = 1;
	}
	assert_true(listed);
	json_decref(s);
	eng_result_clear(&r);
	eng_engine_free(e);
	eng_graph_free(g);
}

static atomic_int hang_calls, hang_release;

/* The first call never returns until the test releases it; later calls
 * (the retry, the engine that takes over) are quick. */
static int node_hang(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)ctx;
	(void)state;
	(void)input;
	if (atomic_fetch_add(&hang_calls, 1) == 0)
		while (!atomic_load(&hang_release))
			util_sleep_ms(5);
	*update = json_pack("{s:[s]}", "log", "hang");
	return 0;
}

static int hang_started(void *p)
{
	(void)p;
	return atomic_load(&hang_calls) >= 1;
}

static int engine_idle(void *p)
{
	return eng_engine_busy(p) == 0;
}

static void test_hung_node_is_taken_over(void **st)
{
	eng_graph *g;
	eng_engine *e1, *e2;
	int64_t run;
	(void)st;

	eng_graph_new(&g, "hanging");
	eng_graph_add_node(g, "first", node_loop, NULL, NULL);
	eng_graph_add_node(g, "hang", node_hang, NULL, NULL);
	eng_graph_add_node(g, "last", node_loop, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "first");
	eng_graph_add_edge(g, "first", "hang");
	eng_graph_add_edge(g, "hang", "last");
	eng_graph_add_edge(g, "last", ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	assert_int_equal(eng_graph_set_timeout(g, "hang", 200), 0);
	assert_int_equal(eng_graph_compile(g), 0);
	atomic_store(&hang_calls, 0);
	atomic_store(&hang_release, 0);

	/* one engine gets stuck in the node; its heartbeat goes on, but stops
	 * renewing that run's lease, so a second engine takes the run over */
	e1 = engine_for(g, 1, 1500);
	assert_int_equal(eng_engine_start(e1), 0);
	assert_int_equal(eng_start(db, "hang-1", "hanging", NULL, NULL, NULL, &run), 0);
	assert_true(ts_wait_for(hang_started, NULL, 60000));
	e2 = engine_for(g, 1, 1500);
	assert_int_equal(eng_engine_start(e2), 0);
	await_sql("SELECT count(*) FROM runs WHERE thread_id = (SELECT id FROM threads WHERE key = "
		  "'hang-1') AND status = 'done' AND error IS NULL",
		  1);
	assert_int_equal(q("SELECT takeovers FROM runs WHERE id = %lld", (long long)run), 1);
	/* the stuck worker is still busy with it */
	assert_int_equal(eng_engine_busy(e1), 1);

	/* released, the stale attempt times out, its retry finishes, and its
	 * commit is fenced off: one checkpoint per step, nothing more */
	atomic_store(&hang_release, 1);
	assert_true(ts_wait_for(engine_idle, e1, 60000));
	assert_true(atomic_load(&hang_calls) >= 2);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld", (long long)run), 3);
	assert_int_equal(q("SELECT count(DISTINCT step) FROM checkpoints WHERE run_id = %lld",
			   (long long)run),
			 3);
	assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'done' "
			   "AND step = 3 AND error IS NULL",
			   (long long)run),
			 1);
	eng_engine_free(e2);
	eng_engine_free(e1);
	eng_graph_free(g);
}

/* --- group commit --- */

static void step_for(store_step *s, const store_run *r, int seq)
{
	memset(s, 0, sizeof(*s));
	s->run_id = r->run_id;
	s->thread_id = r->thread_id;
	s->token = r->token;
	s->lease_ms = 30000;
	s->step = 1;
	s->seq = seq;
	s->nodes = "{brainstorm}";
	s->delta = "{\"log\":{\"append\":[\"brainstorm:ok\"]}}";
	s->next = "[]";
	s->chain.len = 1;
	s->status = "done";
}

static int join_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	*update = json_pack("{s:[s]}", "log", eng_ctx_node(ctx));
	return 0;
}

/* A join after branches of different lengths: START -> a -> a2, START -> b,
 * join [a2, b] -> c. With plain edges c would run twice (after b, then
 * after a2); the join runs it once, when both are done. Its progress is in
 * the checkpoints, so a fork from between the branches finishes the same
 * way. */
static void test_join_waits_for_all(void **st)
{
	const char *from[] = {"a2", "b"};
	eng_graph *g = NULL;
	eng_engine *e = NULL;
	eng_options opt = {.threads = 0, .lease_ms = 30000, .poll_ms = 50};
	eng_result r;
	json_t *want, *at1 = NULL;
	(void)st;

	assert_int_equal(eng_graph_new(&g, "join3"), 0);
	assert_int_equal(eng_graph_add_node(g, "a", join_node, NULL, NULL), 0);
	assert_int_equal(eng_graph_add_node(g, "a2", join_node, NULL, NULL), 0);
	assert_int_equal(eng_graph_add_node(g, "b", join_node, NULL, NULL), 0);
	assert_int_equal(eng_graph_add_node(g, "c", join_node, NULL, NULL), 0);
	assert_int_equal(eng_graph_add_edge(g, ENG_START, "a"), 0);
	assert_int_equal(eng_graph_add_edge(g, ENG_START, "b"), 0);
	assert_int_equal(eng_graph_add_edge(g, "a", "a2"), 0);
	assert_int_equal(eng_graph_add_join(g, from, 2, "c"), 0);
	assert_int_equal(eng_graph_add_edge(g, "c", ENG_END), 0);
	assert_int_equal(eng_graph_set_reducer(g, "log", ENG_APPEND), 0);
	assert_int_equal(eng_graph_compile(g), 0);
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, g), 0);

	assert_int_equal(eng_invoke(e, "join3", "join-1", NULL, ENG_WANT_STATE, &r), 0);
	assert_string_equal(r.status, "done");
	want = json_pack("[s, s, s, s]", "a", "b", "a2", "c");
	assert_true(json_equal(json_object_get(r.state, "log"), want));
	json_decref(want);
	assert_int_equal(json_object_size(json_object_get(r.state, ENG_JOINS_KEY)), 0);
	/* three steps: {a, b}, {a2}, {c}; after the first, b is recorded */
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE thread_id = %lld",
			   (long long)r.thread_id),
			 3);
	assert_int_equal(eng_state_at(db, r.thread_id, 1, &at1, NULL, NULL), 0);
	want = ts_json("{\"0\": [\"b\"]}");
	assert_true(json_equal(json_object_get(at1, ENG_JOINS_KEY), want));
	json_decref(want);
	json_decref(at1);
	/* a fork from checkpoint 1 (b recorded, a2 next) finishes the same way */
	{
		eng_options wopt = {.threads = 1, .lease_ms = 30000, .poll_ms = 50};
		eng_engine *w = NULL;
		int64_t fork_run = 0;
		int seq = 0;
		json_t *state = NULL;
		char sql[160];

		assert_int_equal(eng_fork(db, r.thread_id, 1, NULL, &fork_run), 0);
		assert_int_equal(eng_engine_new(&w, pool, &wopt), 0);
		assert_int_equal(eng_engine_add_graph(w, g), 0);
		assert_int_equal(eng_engine_start(w), 0);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM runs WHERE id = %lld AND status = "
					   "'done'", (long long)fork_run);
		await_sql(sql, 1);
		eng_engine_free(w);
		assert_int_equal(eng_state_at(db, r.thread_id, 0, &state, NULL, &seq), 0);
		assert_int_equal(seq, 5); /* checkpoints 4 and 5 hang off 1 */
		want = json_pack("[s, s, s, s]", "a", "b", "a2", "c");
		assert_true(json_equal(json_object_get(state, "log"), want));
		json_decref(want);
		json_decref(state);
	}
	eng_result_clear(&r);
	eng_engine_free(e);
	eng_graph_free(g);
}

/* Durability async: only steps with nothing for the outside world, of a run
 * that goes on, skip the flush; messages, waits, answers and endings wait
 * for the disk. */
static void test_durability_async(void **st)
{
	eng_options opt = {.threads = 0, .lease_ms = 30000, .poll_ms = 50,
			   .durability = ENG_DURABILITY_ASYNC};
	eng_engine *e = NULL, *bad = NULL;
	eng_result r;
	json_t *yes = json_string("yes");
	int64_t thread;
	(void)st;

	opt.durability = 7;
	assert_int_equal(eng_engine_new(&bad, pool, &opt), ERR_INVALID);
	assert_null(bad);
	opt.durability = ENG_DURABILITY_ASYNC;
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, linear), 0);
	assert_int_equal(eng_engine_add_graph(e, gate), 0);

	/* prepare (nothing outside: no flush), ask (waits: flushed) */
	assert_int_equal(eng_invoke(e, "gate", "async-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "waiting");
	thread = r.thread_id;
	eng_result_clear(&r);
	assert_int_equal(eng_engine_no_flush_commits(e), 1);
	/* ask takes the answer (flushed), finish ends the run (flushed) */
	assert_int_equal(eng_resume(e, thread, "approval", yes, ENG_WANT_STATE, &r), 0);
	assert_string_equal(r.status, "done");
	{
		json_t *want = json_pack("[s, s, s]", "prepare:ok", "ask:yes", "finish:ok");
		assert_true(json_equal(json_object_get(r.state, "log"), want));
		json_decref(want);
	}
	eng_result_clear(&r);
	assert_int_equal(eng_engine_no_flush_commits(e), 1);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE thread_id = %lld",
			   (long long)thread),
			 3);
	/* every step of linear4 emits a message: all of them are flushed */
	assert_int_equal(eng_invoke(e, "linear4", "async-2", NULL, 0, &r), 0);
	assert_string_equal(r.status, "done");
	eng_result_clear(&r);
	assert_int_equal(eng_engine_no_flush_commits(e), 1);
	eng_engine_free(e);

	/* the default waits for the disk at every step */
	e = engine_new(0, 30000);
	assert_int_equal(eng_invoke(e, "gate", "async-3", NULL, 0, &r), 0);
	assert_string_equal(r.status, "waiting");
	eng_result_clear(&r);
	assert_int_equal(eng_engine_no_flush_commits(e), 0);
	eng_engine_free(e);
	json_decref(yes);
}

static void test_group_commit_batch(void **st)
{
	store_run r[3];
	store_step s[3];
	const store_step *steps[3] = {&s[0], &s[1], &s[2]};
	int rcs[3];
	char status[3][16], errs[3][512];
	pg_error dberr[3];
	pg_conn *c = ts_conn();
	(void)st;

	for (int i = 0; i < 3; i++) {
		char key[32];
		snprintf(key, sizeof(key), "batch-%d", i);
		assert_int_equal(eng_start(db, key, "linear4", NULL, NULL, NULL, NULL), 0);
		memset(&r[i], 0, sizeof(r[i]));
		assert_int_equal(store_claim_queued(c, "batcher", 30000, "{linear4}", &r[i]), 1);
		step_for(&s[i], &r[i], 1);
	}
	/* run 1 lost its lease: its step lands nowhere, the others commit */
	s[1].token = r[1].token + 1000;
	assert_int_equal(store_commit_batch(c, steps, 3, rcs, status, errs, dberr), 0);
	assert_int_equal(rcs[0], 0);
	assert_string_equal(status[0], "done");
	assert_int_equal(rcs[1], ERR_LEASE);
	assert_non_null(strstr(errs[1], "lease"));
	assert_int_equal(rcs[2], 0);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id IN (%lld, %lld)",
			   (long long)r[0].run_id, (long long)r[2].run_id),
			 2);
	assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld",
			   (long long)r[1].run_id),
			 0);
	assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'running'",
			   (long long)r[1].run_id),
			 1);

	/* a statement that fails aborts the batch's whole transaction; each
	 * step is then committed on its own, so the good one still lands */
	{
		store_run x, y;
		store_step sx, sy;
		const store_step *two[2] = {&sy, &sx};

		assert_int_equal(eng_start(db, "batch-x", "linear4", NULL, NULL, NULL, NULL), 0);
		assert_int_equal(eng_start(db, "batch-y", "linear4", NULL, NULL, NULL, NULL), 0);
		memset(&x, 0, sizeof(x));
		memset(&y, 0, sizeof(y));
		assert_int_equal(store_claim_queued(c, "batcher", 30000, "{linear4}", &x), 1);
		assert_int_equal(store_claim_queued(c, "batcher", 30000, "{linear4}", &y), 1);
		step_for(&sx, &x, 1);
		sx.status = "running";
		assert_int_equal(store_commit_batch(c, two + 1, 1, rcs, status, errs, dberr), 0);
		assert_int_equal(rcs[0], 0);
		assert_string_equal(status[0], "running");
		/* x again at checkpoint 1, which exists: a unique violation */
		step_for(&sy, &y, 1);
		assert_int_equal(store_commit_batch(c, two, 2, rcs, status, errs, dberr), 0);
		assert_int_equal(rcs[0], 0);
		assert_string_equal(status[0], "done");
		assert_int_equal(rcs[1], ERR_LEASE);
		assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld",
				   (long long)y.run_id),
				 1);
		assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld",
				   (long long)x.run_id),
				 1);
		store_run_clear(&x);
		store_run_clear(&y);
	}
	/* the common step of a run that goes on (no outbox rows, events or pending
	 * writes) has its own short form; a run asked to cancel, or whose lease
	 * is gone, is handled by the full form: cancelled with its step written,
	 * or nothing written */
	{
		store_run x, y, z;
		store_step sx, sy, sz;
		const store_step *three[3] = {&sx, &sy, &sz};

		memset(&x, 0, sizeof(x));
		memset(&y, 0, sizeof(y));
		memset(&z, 0, sizeof(z));
		assert_int_equal(eng_start(db, "go-x", "linear4", NULL, NULL, NULL, NULL), 0);
		assert_int_equal(eng_start(db, "go-y", "linear4", NULL, NULL, NULL, NULL), 0);
		assert_int_equal(eng_start(db, "go-z", "linear4", NULL, NULL, NULL, NULL), 0);
		assert_int_equal(store_claim_queued(c, "batcher", 30000, "{linear4}", &x), 1);
		assert_int_equal(store_claim_queued(c, "batcher", 30000, "{linear4}", &y), 1);
		assert_int_equal(store_claim_queued(c, "batcher", 30000, "{linear4}", &z), 1);
		step_for(&sx, &x, 1);
		step_for(&sy, &y, 1);
		step_for(&sz, &z, 1);
		sx.status = sy.status = sz.status = "running";
		ts_sql(c, "UPDATE runs SET cancel_requested = true WHERE thread_id = (SELECT id FROM "
			  "threads WHERE key = 'go-y')");
		sz.token = z.token + 1000;
		assert_int_equal(store_commit_batch(c, three, 3, rcs, status, errs, dberr), 0);
		assert_int_equal(rcs[0], 0);
		assert_string_equal(status[0], "running");
		assert_int_equal(rcs[1], 0);
		assert_string_equal(status[1], "cancelled");
		assert_int_equal(rcs[2], ERR_LEASE);
		assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = 'running' "
				   "AND step = 1 AND last_seq = 1 AND lease_token = %lld",
				   (long long)x.run_id, (long long)x.token),
				 1);
		assert_int_equal(q("SELECT count(*) FROM runs WHERE id = %lld AND status = "
				   "'cancelled' AND finished_at IS NOT NULL AND last_seq = 1",
				   (long long)y.run_id),
				 1);
		assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id IN (%lld, %lld)",
				   (long long)x.run_id, (long long)y.run_id),
				 2);
		assert_int_equal(q("SELECT count(*) FROM checkpoints WHERE run_id = %lld",
				   (long long)z.run_id),
				 0);
		/* one step on its own: the same */
		sx.seq = 2;
		sx.step = 2;
		ts_sql(c, "UPDATE runs SET cancel_requested = true WHERE thread_id = (SELECT id FROM "
			  "threads WHERE key = 'go-x')");
		assert_int_equal(store_commit(c, &sx, status[0]), 0);
		assert_string_equal(status[0], "cancelled");
		store_run_clear(&x);
		store_run_clear(&y);
		store_run_clear(&z);
	}

	/* durability async: a batch of no_flush steps turns the flush off for its
	 * transaction (seen inside an open one); a batch with one step that must
	 * be durable keeps it */
	for (int mode = 0; mode < 2; mode++) {
		store_run x, y;
		store_step sx, sy;
		const store_step *two[2] = {&sx, &sy};
		char key[32];

		memset(&x, 0, sizeof(x));
		memset(&y, 0, sizeof(y));
		snprintf(key, sizeof(key), "nf-x-%d", mode);
		assert_int_equal(eng_start(db, key, "linear4", NULL, NULL, NULL, NULL), 0);
		snprintf(key, sizeof(key), "nf-y-%d", mode);
		assert_int_equal(eng_start(db, key, "linear4", NULL, NULL, NULL, NULL), 0);
		assert_int_equal(store_claim_queued(c, "batcher", 30000, "{linear4}", &x), 1);
		assert_int_equal(store_claim_queued(c, "batcher", 30000, "{linear4}", &y), 1);
		step_for(&sx, &x, 1);
		step_for(&sy, &y, 1);
		sx.status = sy.status = "running";
		sx.no_flush = 1;
		sy.no_flush = mode == 0;
		ts_sql(c, "BEGIN");
		assert_int_equal(store_commit_batch(c, two, 2, rcs, status, errs, dberr), 0);
		assert_int_equal(rcs[0], 0);
		assert_int_equal(rcs[1], 0);
		assert_int_equal(ts_sql_int(c, "SELECT (current_setting('synchronous_commit') = "
					       "'off')::int"),
				 mode == 0);
		ts_sql(c, "ROLLBACK");
		store_run_clear(&x);
		store_run_clear(&y);
	}
	for (int i = 0; i < 3; i++)
		store_run_clear(&r[i]);
	pg_conn_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linear_inline),
		cmocka_unit_test(test_queue_workers),
		cmocka_unit_test(test_wait_and_resume_inline),
		cmocka_unit_test(test_input_applied_once),
		cmocka_unit_test(test_wait_and_deliver_queued),
		cmocka_unit_test(test_event_before_wait),
		cmocka_unit_test(test_fork_from_checkpoint),
		cmocka_unit_test(test_input_queues_behind_active_run),
		cmocka_unit_test(test_cancel_running_at_step_boundary),
		cmocka_unit_test(test_failures_are_recorded),
		cmocka_unit_test(test_bad_graph_behaviour_fails_the_run),
		cmocka_unit_test(test_pending_writes_survive_a_wait),
		cmocka_unit_test(test_outbox_relay),
		cmocka_unit_test(test_relay_restarts),
		cmocka_unit_test(test_engine_restarts),
		cmocka_unit_test(test_refused_commit_fails_the_run),
		cmocka_unit_test(test_long_thread_storage_and_prune),
		cmocka_unit_test(test_db_connections_killed),
		cmocka_unit_test(test_lease_takeover),
		cmocka_unit_test(test_timeout_then_retry_succeeds),
		cmocka_unit_test(test_timeout_fails_the_run),
		cmocka_unit_test(test_hung_node_is_taken_over),
		cmocka_unit_test(test_join_waits_for_all),
		cmocka_unit_test(test_durability_async),
		cmocka_unit_test(test_group_commit_batch),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
