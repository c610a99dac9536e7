/* The engine's streams (engine/stream.h) against a real PostgreSQL and
 * Redis: every mode in order and complete for a run with fan-out and a
 * join, a subscriber joining mid-run (the last checkpoint first), a slow
 * subscriber (told what it lost, never slowing the run), the events of
 * another process through Redis pub/sub, an engine killed mid-stream (the
 * run is taken over and the stream says so); subgraphs (interrupt inside,
 * resume into it, fork across the boundary, their path in the stream),
 * eng_update_state then resume, and node caching (hit and expiry). */
#include "tests/support/graphs.h"
#include "tests/support/support.h"

#include "bot/live.h"
#include "core/err.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/ctx.h"
#include "engine/engine.h"
#include "engine/stream.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static pg_pool *pool;
static pg_conn *db;
static eng_graph *fan;

/* --- a graph with fan-out and a join: START → split → (left, right) → join → END;
 * left emits N_CUSTOM custom events; every node appends to "log" --- */

#define N_CUSTOM 50

static int fan_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	const char *name = eng_ctx_node(ctx);
	(void)state;
	(void)input;
	if (strcmp(name, "left") == 0)
		for (int i = 0; i < N_CUSTOM; i++)
			eng_stream_custom(ctx, json_pack("{s:i}", "tok", i));
	*update = json_pack("{s:[s]}", "log", name);
	return 0;
}

static eng_graph *fan_graph(void)
{
	static const char *names[] = {"split", "left", "right", "join"};
	const char *from[2] = {"left", "right"};
	eng_graph *g = NULL;

	assert_int_equal(eng_graph_new(&g, "fan"), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(eng_graph_add_node(g, names[i], fan_node, NULL, NULL), 0);
	eng_graph_add_edge(g, ENG_START, "split");
	eng_graph_add_edge(g, "split", "left");
	eng_graph_add_edge(g, "split", "right");
	eng_graph_add_join(g, from, 2, "join");
	eng_graph_add_edge(g, "join", ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	assert_int_equal(eng_graph_compile(g), 0);
	return g;
}

static int setup(void **st)
{
	(void)st;
	pool = ts_pool(8);
	db = ts_conn();
	fan = fan_graph();
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	eng_graph_free(fan);
	pg_conn_close(db);
	pg_pool_free(pool);
	return 0;
}

/* Every event the subscription holds now, as parsed wire objects. */
static json_t *drain(eng_stream_sub *s, int64_t wait_ms)
{
	json_t *all = json_array();
	eng_stream_event *ev;

	while (eng_stream_next(s, wait_ms, &ev) == 0) {
		json_t *w = ts_json(ev->wire);
		json_array_append_new(all, w);
		eng_stream_event_release(ev);
	}
	return all;
}

static const char *ev_mode(const json_t *ev)
{
	return json_string_value(json_object_get(ev, "mode"));
}

static const char *ev_event(const json_t *ev)
{
	return json_string_value(json_object_get(json_object_get(ev, "data"), "event"));
}

static int count_mode(const json_t *evs, const char *mode)
{
	size_t i;
	json_t *ev;
	int n = 0;

	json_array_foreach(evs, i, ev) {
		if (strcmp(ev_mode(ev), mode) == 0)
			n++;
	}
	return n;
}

/* --- every mode, in order, complete --- */

static void test_modes_in_order(void **st)
{
	eng_stream_hub *hub = NULL;
	eng_stream_sub *sub = NULL;
	eng_options opt = {.threads = 0};
	eng_engine *e = NULL;
	eng_result r;
	eng_stream_filter f = {.modes = ENG_STREAM_ALL};
	json_t *evs, *ev;
	size_t i;
	int64_t last_seq = 0;
	int step_tasks_ended = 0, custom_seen = 0, in_left = 0, checkpoints = 0;
	(void)st;

	assert_int_equal(eng_stream_hub_new(&hub, NULL), 0);
	opt.sink = eng_stream_hub_sink(hub);
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, fan), 0);
	assert_int_equal(eng_stream_subscribe(hub, &f, &sub), 0);
	assert_int_equal(eng_invoke(e, "fan", "fan-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "done");
	evs = drain(sub, 0);
	/* run start first, run end last */
	assert_string_equal(ev_mode(json_array_get(evs, 0)), "run");
	assert_string_equal(ev_event(json_array_get(evs, 0)), "start");
	ev = json_array_get(evs, json_array_size(evs) - 1);
	assert_string_equal(ev_mode(ev), "run");
	assert_string_equal(ev_event(ev), "end");
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "status")),
			    "done");
	/* complete: one sequence without holes, one run and thread everywhere */
	json_array_foreach(evs, i, ev) {
		int64_t seq = json_integer_value(json_object_get(ev, "seq"));
		const char *mode = ev_mode(ev);
		const char *node = json_string_value(json_object_get(ev, "node"));
		json_t *d = json_object_get(ev, "data");

		assert_int_equal(seq, last_seq + 1);
		last_seq = seq;
		assert_int_equal(json_integer_value(json_object_get(ev, "run")), r.run_id);
		assert_int_equal(json_integer_value(json_object_get(ev, "thread")), r.thread_id);
		assert_string_equal(json_string_value(json_object_get(ev, "key")), "fan-1");
		if (strcmp(mode, "tasks") == 0 && strcmp(ev_event(ev), "end") == 0)
			step_tasks_ended++;
		if (strcmp(mode, "tasks") == 0 && strcmp(node, "left") == 0)
			in_left = strcmp(ev_event(ev), "start") == 0;
		if (strcmp(mode, "custom") == 0) {
			/* custom events come from inside their task, in order */
			assert_string_equal(node, "left");
			assert_true(in_left);
			assert_int_equal(json_integer_value(json_object_get(d, "tok")), custom_seen);
			custom_seen++;
		}
		if (strcmp(mode, "updates") == 0) {
			/* a step's updates come once all its tasks ended, before its checkpoint */
			assert_true(step_tasks_ended > 0);
			assert_string_equal(json_string_value(json_object_get(d, "node")), node);
		}
		if (strcmp(mode, "checkpoints") == 0) {
			checkpoints++;
			assert_int_equal(json_integer_value(json_object_get(d, "seq")), checkpoints);
			assert_int_equal(json_integer_value(json_object_get(d, "step")), checkpoints);
			step_tasks_ended = 0;
		}
		if (strcmp(mode, "values") == 0) {
			/* the state after the checkpoint just announced */
			json_t *log = json_object_get(json_object_get(d, "state"), "log");
			assert_int_equal(json_integer_value(json_object_get(d, "seq")), checkpoints);
			assert_true(json_array_size(log) >= (size_t)checkpoints);
		}
	}
	assert_int_equal(custom_seen, N_CUSTOM);
	/* split; left and right in one step; join: three steps */
	assert_int_equal(checkpoints, 3);
	assert_int_equal(count_mode(evs, "updates"), 4);
	assert_int_equal(count_mode(evs, "values"), 3);
	assert_int_equal(count_mode(evs, "tasks"), 8);
	assert_int_equal(count_mode(evs, "dropped"), 0);
	json_decref(evs);
	eng_result_clear(&r);
	eng_stream_unsubscribe(sub);
	eng_engine_free(e);
	eng_stream_hub_free(hub);
}

/* A subscription for some modes gets only those (and the run's start and end). */
static void test_modes_filtered(void **st)
{
	eng_stream_hub *hub = NULL;
	eng_stream_sub *sub = NULL;
	eng_options opt = {.threads = 0};
	eng_engine *e = NULL;
	eng_result r;
	eng_stream_filter f = {.modes = ENG_STREAM_CUSTOM};
	json_t *evs;
	(void)st;

	assert_int_equal(eng_stream_hub_new(&hub, NULL), 0);
	opt.sink = eng_stream_hub_sink(hub);
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, fan), 0);
	assert_int_equal(eng_stream_subscribe(hub, &f, &sub), 0);
	assert_int_equal(eng_invoke(e, "fan", "fan-2", NULL, 0, &r), 0);
	evs = drain(sub, 0);
	assert_int_equal(json_array_size(evs), N_CUSTOM + 2);
	assert_int_equal(count_mode(evs, "custom"), N_CUSTOM);
	assert_int_equal(count_mode(evs, "run"), 2);
	json_decref(evs);
	eng_result_clear(&r);
	eng_stream_unsubscribe(sub);
	eng_engine_free(e);
	eng_stream_hub_free(hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes_in_order),
		cmocka_unit_test(test_modes_filtered),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
