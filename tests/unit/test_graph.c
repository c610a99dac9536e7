/* engine without a database: reducers, deltas, graph checks, edges, routers,
 * fan-out (parallel nodes and Send), retries and waits inside one step. */
#include "tests/support/support.h"

#include "core/err.h"
#include "core/util.h"
#include "engine/ctx.h"
#include "engine/graph_int.h"
#include "engine/state.h"
#include "engine/step.h"

#include <stdatomic.h>
#include <string.h>

/* --- reducers and deltas --- */

static void test_reducers(void **st)
{
	eng_schema *s;
	json_t *state = ts_json("{\"log\":[\"a\"],\"meta\":{\"k\":1,\"z\":2},\"topic\":\"x\"}");
	json_t *delta = json_object();
	json_t *u1 = ts_json("{\"log\":[\"b\",\"c\"],\"meta\":{\"k\":5,\"z\":null},\"topic\":\"y\"}");
	json_t *u2 = ts_json("{\"log\":\"d\",\"topic\":\"z\",\"new\":[1]}");
	json_t *expect = ts_json("{\"log\":[\"a\",\"b\",\"c\",\"d\"],\"meta\":{\"k\":5},"
				 "\"topic\":\"z\",\"new\":[1]}");
	(void)st;
	assert_int_equal(eng_schema_new(&s), 0);
	eng_schema_set(s, "log", ENG_APPEND);
	eng_schema_set(s, "meta", ENG_MERGE);
	assert_int_equal(eng_update_check(s, u1), 0);
	assert_int_equal(eng_state_apply(s, state, delta, u1), 0);
	assert_int_equal(eng_state_apply(s, state, delta, u2), 0);
	assert_true(json_equal(state, expect));
	/* the delta replays onto the old state to the same result */
	{
		json_t *old = ts_json("{\"log\":[\"a\"],\"meta\":{\"k\":1,\"z\":2},\"topic\":\"x\"}");
		assert_int_equal(eng_delta_apply(old, delta), 0);
		assert_true(json_equal(old, expect));
		json_decref(old);
	}
	/* the delta holds only what was appended, not the whole list */
	assert_int_equal(json_array_size(json_object_get(json_object_get(delta, "log"), "append")), 3);
	json_decref(state);
	json_decref(delta);
	json_decref(u1);
	json_decref(u2);
	json_decref(expect);
	eng_schema_free(s);
}

static void test_update_must_be_object(void **st)
{
	eng_schema *s;
	json_t *bad = ts_json("[1,2]");
	json_t *badmerge = ts_json("{\"meta\":3}");
	(void)st;
	eng_schema_new(&s);
	eng_schema_set(s, "meta", ENG_MERGE);
	assert_int_equal(eng_update_check(s, bad), ERR_INVALID);
	assert_non_null(strstr(err_last(), "array"));
	assert_int_equal(eng_update_check(s, badmerge), ERR_INVALID);
	assert_non_null(strstr(err_last(), "meta"));
	assert_int_equal(eng_update_check(s, NULL), 0);
	json_decref(bad);
	json_decref(badmerge);
	eng_schema_free(s);
}

static void test_delta_rejects_garbage(void **st)
{
	json_t *state = json_object();
	json_t *d1 = ts_json("[1]");
	json_t *d2 = ts_json("{\"k\":{\"append\":5}}");
	(void)st;
	assert_int_equal(eng_delta_apply(state, d1), ERR_PARSE);
	assert_int_equal(eng_delta_apply(state, d2), ERR_PARSE);
	json_decref(state);
	json_decref(d1);
	json_decref(d2);
}

/* --- graphs --- */

static int node_ok(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	*update = json_pack("{s:[s]}", "log", eng_ctx_node(ctx));
	return 0;
}

static int node_echo_input(eng_ctx *ctx, const json_t *state, const json_t *input,
			   json_t **update)
{
	(void)state;
	(void)ctx;
	*update = json_pack("{s:[O]}", "log", input);
	return 0;
}

static int route_fan(const json_t *state, eng_next *next, void *udata)
{
	(void)state;
	(void)udata;
	eng_next_add(next, "b");
	eng_next_add(next, "c");
	eng_next_add(next, "b"); /* duplicates of a plain target run once */
	eng_next_send(next, "w", json_integer(1));
	eng_next_send(next, "w", json_integer(2));
	return 0;
}

static int route_unknown(const json_t *state, eng_next *next, void *udata)
{
	(void)state;
	(void)udata;
	return eng_next_add(next, "nope");
}

static eng_graph *fan_graph(void)
{
	eng_graph *g;
	assert_int_equal(eng_graph_new(&g, "fan"), 0);
	eng_graph_add_node(g, "a", node_ok, NULL, NULL);
	eng_graph_add_node(g, "b", node_ok, NULL, NULL);
	eng_graph_add_node(g, "c", node_ok, NULL, NULL);
	eng_graph_add_node(g, "w", node_echo_input, NULL, NULL);
	eng_graph_add_node(g, "x", node_ok, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "a");
	assert_int_equal(eng_graph_add_router(g, "a", route_fan, NULL,
					      ENG_TARGETS("b", "c", "w", "x")), 0);
	assert_int_equal(eng_graph_add_router(g, "x", route_unknown, NULL, ENG_TARGETS("b")), 0);
	eng_graph_add_edge(g, "b", ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	assert_int_equal(eng_graph_compile(g), 0);
	return g;
}

static void test_graph_checks(void **st)
{
	eng_graph *g;
	(void)st;
	assert_int_equal(eng_graph_new(&g, "bad"), 0);
	assert_int_equal(eng_graph_compile(g), ERR_INVALID); /* no START edge */
	assert_int_equal(eng_graph_add_node(g, ENG_START, node_ok, NULL, NULL), ERR_INVALID);
	assert_int_equal(eng_graph_add_node(g, "a", node_ok, NULL, NULL), 0);
	assert_int_equal(eng_graph_add_node(g, "a", node_ok, NULL, NULL), ERR_CONFLICT);
	assert_int_equal(eng_graph_add_edge(g, "a", "ghost"), ERR_INVALID);
	assert_int_equal(eng_graph_add_edge(g, "ghost", "a"), ERR_INVALID);
	assert_int_equal(eng_graph_add_node(g, "island", node_ok, NULL, NULL), 0);
	assert_int_equal(eng_graph_add_edge(g, ENG_START, "a"), 0);
	assert_int_equal(eng_graph_compile(g), ERR_INVALID); /* island unreachable */
	assert_non_null(strstr(err_last(), "island"));
	assert_int_equal(eng_graph_add_edge(g, "a", "island"), 0);
	assert_int_equal(eng_graph_compile(g), 0);
	assert_int_equal(eng_graph_add_node(g, "late", node_ok, NULL, NULL), ERR_INVALID);
	eng_graph_free(g);
}

static void test_join_checks(void **st)
{
	eng_graph *g;
	const char *ab[] = {"a", "b"}, *aa[] = {"a", "a"}, *ag[] = {"a", "ghost"};
	json_t *state, *tasks, *next, *up = NULL;
	(void)st;
	assert_int_equal(eng_graph_new(&g, "joins"), 0);
	assert_int_equal(eng_graph_add_node(g, "a", node_ok, NULL, NULL), 0);
	assert_int_equal(eng_graph_add_node(g, "b", node_ok, NULL, NULL), 0);
	assert_int_equal(eng_graph_add_node(g, "c", node_ok, NULL, NULL), 0);
	assert_int_equal(eng_graph_add_join(g, ab, 1, "c"), ERR_INVALID);
	assert_int_equal(eng_graph_add_join(g, aa, 2, "c"), ERR_INVALID);
	assert_int_equal(eng_graph_add_join(g, ag, 2, "c"), ERR_INVALID);
	assert_non_null(strstr(err_last(), "ghost"));
	assert_int_equal(eng_graph_add_join(g, ab, 2, ENG_END), ERR_INVALID);
	assert_int_equal(eng_graph_add_join(g, ab, 2, "c"), 0);
	assert_int_equal(eng_graph_add_edge(g, ENG_START, "a"), 0);
	assert_int_equal(eng_graph_add_edge(g, ENG_START, "b"), 0);
	assert_int_equal(eng_graph_add_edge(g, "c", ENG_END), 0);
	assert_int_equal(eng_graph_compile(g), 0); /* c is reached through the join */

	/* b alone: recorded, nothing runs; then a: c runs and the progress goes */
	state = json_object();
	tasks = ts_json("[{\"node\":\"b\"}]");
	next = json_array();
	assert_int_equal(eng_graph_joins(g, state, tasks, next, &up), 0);
	assert_int_equal(json_array_size(next), 0);
	assert_non_null(up);
	json_object_update(state, up);
	json_decref(up);
	json_decref(tasks);
	tasks = ts_json("[{\"node\":\"b\"}]"); /* b again: no change */
	assert_int_equal(eng_graph_joins(g, state, tasks, next, &up), 0);
	assert_null(up);
	json_decref(tasks);
	tasks = ts_json("[{\"node\":\"a\"}]");
	assert_int_equal(eng_graph_joins(g, state, tasks, next, &up), 0);
	assert_int_equal(json_array_size(next), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(next, 0), "node")), "c");
	assert_int_equal(json_object_size(json_object_get(up, ENG_JOINS_KEY)), 0);
	json_decref(up);
	json_decref(tasks);
	json_decref(next);
	json_decref(state);
	eng_graph_free(g);
}

/* Runs one step of `tasks` against `state`, returning results[] (caller clears). */
static task_result *run_step(eng_graph *g, json_t *state, json_t *tasks, json_t *events)
{
	size_t n = json_array_size(tasks);
	task_result *res = calloc(n ? n : 1, sizeof(*res));
	step_shared sh;
	atomic_int cancel = 0;
	json_t *ev = events ? events : json_array();
	step_input in = {.g = g, .run_id = 1, .thread_id = 1, .thread_key = "t", .step = 1,
			 .state = state, .tasks = tasks, .sh = &sh};

	assert_int_equal(step_shared_init(&sh, ev, &cancel), 0);
	assert_int_equal(step_execute(&in, res), 0);
	step_shared_destroy(&sh);
	if (!events)
		json_decref(ev);
	return res;
}

static void test_fan_out_and_send(void **st)
{
	eng_graph *g = fan_graph();
	json_t *state = json_object(), *tasks = json_array(), *next = NULL, *delta = json_object();
	task_result *res;
	(void)st;
	assert_int_equal(eng_graph_targets(g, eng_graph_node(g, ENG_START), state, tasks), 0);
	assert_int_equal(json_array_size(tasks), 1);
	res = run_step(g, state, tasks, NULL);
	assert_int_equal(res[0].rc, 0);
	eng_state_apply(eng_graph_schema(g), state, delta, res[0].update);
	assert_int_equal(step_next(g, state, tasks, res, &next), 0);
	/* b and c once each, then two Send tasks to w with their own inputs */
	assert_int_equal(json_array_size(next), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(next, 0), "node")), "b");
	assert_string_equal(json_string_value(json_object_get(json_array_get(next, 1), "node")), "c");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(next, 3), "input")), 2);
	task_result_clear(&res[0]);
	free(res);

	/* the four tasks run in one step (in parallel) and see the same state */
	res = run_step(g, state, next, NULL);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(res[i].rc, 0);
		eng_state_apply(eng_graph_schema(g), state, delta, res[i].update);
	}
	{
		json_t *expect = ts_json("[\"a\",\"b\",\"c\",1,2]");
		assert_true(json_equal(json_object_get(state, "log"), expect));
		json_decref(expect);
	}
	{
		json_t *after = NULL;
		assert_int_equal(step_next(g, state, next, res, &after), 0);
		assert_int_equal(json_array_size(after), 0); /* b goes to END, c and w have no edges */
		json_decref(after);
	}
	for (int i = 0; i < 4; i++)
		task_result_clear(&res[i]);
	free(res);
	json_decref(next);
	json_decref(tasks);
	json_decref(state);
	json_decref(delta);
	eng_graph_free(g);
}

static void test_router_unknown_node(void **st)
{
	eng_graph *g = fan_graph();
	json_t *state = json_object(), *tasks = ts_json("[{\"node\":\"x\"}]"), *next = NULL;
	task_result res[1];
	(void)st;
	memset(res, 0, sizeof(res));
	assert_int_equal(step_next(g, state, tasks, res, &next), ERR_INVALID);
	assert_non_null(strstr(err_last(), "nope"));
	assert_null(next);
	json_decref(state);
	json_decref(tasks);
	eng_graph_free(g);
}

/* --- retries --- */

static atomic_int flaky_calls;

static int node_flaky(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	atomic_fetch_add(&flaky_calls, 1);
	if (eng_ctx_attempt(ctx) < 3) {
		eng_emit(ctx, "note", NULL, json_string("from a failed attempt"));
		return err_set(ERR_HTTP, "connection reset");
	}
	*update = json_pack("{s:i}", "attempts", eng_ctx_attempt(ctx));
	return 0;
}

static int node_fatal(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)ctx;
	(void)state;
	(void)input;
	(void)update;
	atomic_fetch_add(&flaky_calls, 1);
	return err_set(ERR_INVALID, "the spec is malformed");
}

static int node_bad_update(eng_ctx *ctx, const json_t *state, const json_t *input,
			   json_t **update)
{
	(void)ctx;
	(void)state;
	(void)input;
	*update = json_string("not an object");
	return 0;
}

static void test_retry_policy(void **st)
{
	eng_graph *g;
	eng_retry fast = {.max_attempts = 3, .initial_ms = 1, .max_ms = 5, .factor = 2, .jitter = 1};
	json_t *state = json_object();
	json_t *tasks = ts_json("[{\"node\":\"flaky\"},{\"node\":\"fatal\"},{\"node\":\"bad\"}]");
	task_result *res;
	(void)st;
	eng_graph_new(&g, "retry");
	eng_graph_add_node(g, "flaky", node_flaky, NULL, &fast);
	eng_graph_add_node(g, "fatal", node_fatal, NULL, &fast);
	eng_graph_add_node(g, "bad", node_bad_update, NULL, &fast);
	eng_graph_add_edge(g, ENG_START, "flaky");
	eng_graph_add_edge(g, ENG_START, "fatal");
	eng_graph_add_edge(g, ENG_START, "bad");
	assert_int_equal(eng_graph_compile(g), 0);
	atomic_store(&flaky_calls, 0);
	res = run_step(g, state, tasks, NULL);
	/* flaky: two transient failures, then success; the failed attempts'
	 * outbox rows are gone */
	assert_int_equal(res[0].rc, 0);
	assert_int_equal(res[0].attempts, 3);
	assert_int_equal(json_integer_value(json_object_get(res[0].update, "attempts")), 3);
	assert_int_equal(json_array_size(res[0].outbox), 0);
	/* fatal: ERR_INVALID is not retried */
	assert_int_equal(res[1].rc, ERR_INVALID);
	assert_int_equal(res[1].attempts, 1);
	assert_non_null(strstr(res[1].error, "malformed"));
	assert_int_equal(atomic_load(&flaky_calls), 4);
	/* a non-object update is a clear error, not a crash */
	assert_int_equal(res[2].rc, ERR_INVALID);
	assert_non_null(strstr(res[2].error, "not an object"));
	for (int i = 0; i < 3; i++)
		task_result_clear(&res[i]);
	free(res);
	json_decref(tasks);
	json_decref(state);
	eng_graph_free(g);
}

/* --- waits and events --- */

static int node_gate(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	json_t *v = NULL;
	int rc;
	(void)state;
	(void)input;
	rc = eng_await(ctx, "approval", json_pack("{s:s}", "q", "ok?"), &v);
	if (rc < 0)
		return rc;
	*update = json_pack("{s:o}", "decision", v);
	return 0;
}

static int node_collect(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	json_t *all = NULL;
	(void)state;
	(void)input;
	eng_take(ctx, "result", &all);
	*update = json_pack("{s:o}", "results", all);
	return 0;
}

/* --- per-node timeouts --- */

static int node_late(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	util_sleep_ms(eng_ctx_remaining_ms(ctx) + 20);
	eng_emit(ctx, "note", NULL, NULL);
	eng_goto(ctx, ENG_END);
	*update = json_pack("{s:b}", "late", 1);
	return 0;
}

static void test_timeout_settings(void **st)
{
	eng_retry once = {.max_attempts = 1, .initial_ms = 1, .max_ms = 1, .factor = 1};
	eng_graph *g;
	json_t *state = json_object(), *tasks = ts_json("[{\"node\":\"late\"}]");
	task_result *res;
	(void)st;

	eng_graph_new(&g, "timeouts");
	eng_graph_add_node(g, "late", node_late, NULL, &once);
	eng_graph_add_node(g, "plain", node_ok, NULL, NULL);
	eng_graph_add_node(g, "off", node_ok, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "late");
	eng_graph_add_edge(g, "late", "plain");
	eng_graph_add_edge(g, "plain", "off");
	assert_int_equal(eng_graph_set_timeout(g, "ghost", 10), ERR_NOTFOUND);
	assert_int_equal(eng_graph_set_timeout(g, "late", -1), ERR_INVALID);
	assert_int_equal(eng_graph_set_default_timeout(g, -5), ERR_INVALID);
	assert_int_equal(eng_graph_set_timeout(g, "late", 30), 0);
	assert_int_equal(eng_graph_set_timeout(g, "off", 0), 0);
	assert_int_equal(eng_graph_set_default_timeout(g, 60000), 0);
	assert_int_equal(eng_graph_compile(g), 0);
	assert_int_equal(eng_graph_set_timeout(g, "late", 10), ERR_INVALID);
	/* the default goes to nodes given none; an explicit 0 stays 0 */
	assert_int_equal(eng_graph_node(g, "late")->timeout_ms, 30);
	assert_int_equal(eng_graph_node(g, "plain")->timeout_ms, 60000);
	assert_int_equal(eng_graph_node(g, "off")->timeout_ms, 0);

	/* an attempt that returns late fails and leaves nothing behind */
	res = run_step(g, state, tasks, NULL);
	assert_int_equal(res[0].rc, ERR_TIMEOUT);
	assert_int_equal(res[0].attempts, 1);
	assert_null(res[0].update);
	assert_null(res[0].outbox);
	assert_null(res[0].gotos);
	assert_non_null(strstr(res[0].error, "node 'late' exceeded its timeout of 30 ms "
					     "(attempt 1 of 1)"));
	task_result_clear(&res[0]);
	free(res);
	json_decref(state);
	json_decref(tasks);
	eng_graph_free(g);
}

static void test_await_and_take(void **st)
{
	eng_graph *g;
	json_t *state = json_object(), *tasks = ts_json("[{\"node\":\"gate\"},{\"node\":\"collect\"}]");
	json_t *none = json_array();
	json_t *events = ts_json("[{\"id\":1,\"key\":\"result\",\"value\":\"r1\"},"
				 "{\"id\":2,\"key\":\"approval\",\"value\":\"yes\"},"
				 "{\"id\":3,\"key\":\"result\",\"value\":\"r2\"}]");
	task_result *res;
	(void)st;
	eng_graph_new(&g, "gate");
	eng_graph_add_node(g, "gate", node_gate, NULL, NULL);
	eng_graph_add_node(g, "collect", node_collect, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "gate");
	eng_graph_add_edge(g, ENG_START, "collect");
	eng_graph_compile(g);

	/* no events: the gate waits, collect takes nothing */
	res = run_step(g, state, tasks, none);
	assert_int_equal(res[0].rc, ERR_WAIT);
	assert_string_equal(json_string_value(json_array_get(res[0].waits, 0)), "approval");
	assert_string_equal(json_string_value(json_object_get(res[0].wait_payload, "q")), "ok?");
	assert_int_equal(res[1].rc, 0);
	assert_int_equal(json_array_size(json_object_get(res[1].update, "results")), 0);
	task_result_clear(&res[0]);
	task_result_clear(&res[1]);
	free(res);

	/* with events: the gate gets its value, collect takes both results */
	res = run_step(g, state, tasks, events);
	assert_int_equal(res[0].rc, 0);
	assert_string_equal(json_string_value(json_object_get(res[0].update, "decision")), "yes");
	assert_int_equal(json_integer_value(json_array_get(res[0].taken, 0)), 2);
	assert_int_equal(json_array_size(json_object_get(res[1].update, "results")), 2);
	assert_int_equal(json_array_size(res[1].taken), 2);
	task_result_clear(&res[0]);
	task_result_clear(&res[1]);
	free(res);
	json_decref(none);
	json_decref(events);
	json_decref(tasks);
	json_decref(state);
	eng_graph_free(g);
}

/* --- declared transitions and drawing --- */

static int node_goto_c(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	(void)update;
	return eng_goto(ctx, "c");
}

static int route_to_c(const json_t *state, eng_next *next, void *udata)
{
	(void)state;
	(void)udata;
	return eng_next_add(next, "c");
}

static void test_declared_targets(void **st)
{
	eng_graph *g;
	json_t *state = json_object(), *tasks = ts_json("[{\"node\":\"a\"}]"), *next = NULL;
	task_result *res;
	(void)st;

	/* a router must declare its targets, and each must be a node */
	assert_int_equal(eng_graph_new(&g, "declared"), 0);
	eng_graph_add_node(g, "a", node_goto_c, NULL, NULL);
	eng_graph_add_node(g, "b", node_ok, NULL, NULL);
	eng_graph_add_node(g, "c", node_ok, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "a");
	assert_int_equal(eng_graph_add_router(g, "a", route_to_c, NULL, ENG_TARGETS(NULL)),
			 ERR_INVALID);
	assert_int_equal(eng_graph_add_router(g, "a", route_to_c, NULL, ENG_TARGETS("b", "ghost")),
			 0);
	assert_int_equal(eng_graph_compile(g), ERR_INVALID);
	assert_non_null(strstr(err_last(), "unknown node 'ghost'"));
	eng_graph_free(g);

	/* c is reached by nothing declared: a goto alone does not count */
	assert_int_equal(eng_graph_new(&g, "declared"), 0);
	eng_graph_add_node(g, "a", node_goto_c, NULL, NULL);
	eng_graph_add_node(g, "b", node_ok, NULL, NULL);
	eng_graph_add_node(g, "c", node_ok, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "a");
	eng_graph_add_router(g, "a", route_to_c, NULL, ENG_TARGETS("b", ENG_END));
	assert_int_equal(eng_graph_compile(g), ERR_INVALID);
	assert_non_null(strstr(err_last(), "node 'c'"));
	assert_int_equal(eng_graph_set_destinations(g, "ghost", ENG_TARGETS("c")), ERR_NOTFOUND);
	assert_int_equal(eng_graph_set_destinations(g, "b", ENG_TARGETS("c")), 0);
	assert_int_equal(eng_graph_compile(g), 0);

	/* at run time: the router picks c, which it did not declare; a's goto
	 * to c is not one of a's destinations either */
	res = run_step(g, state, tasks, NULL);
	assert_int_equal(res[0].rc, ERR_INVALID);
	assert_non_null(strstr(res[0].error, "routed to 'c', which is not one of its declared "
					     "destinations (none"));
	task_result_clear(&res[0]);
	memset(&res[0], 0, sizeof(res[0]));
	assert_int_equal(step_next(g, state, tasks, res, &next), ERR_INVALID);
	assert_non_null(strstr(err_last(), "picked 'c', which is not one of its declared targets "
					   "(b, __end__)"));
	assert_null(next);
	free(res);
	json_decref(state);
	json_decref(tasks);
	eng_graph_free(g);
}

static void test_draw(void **st)
{
	eng_graph *g;
	json_t *edges = NULL;
	buf out;
	const char *join[] = {"b", "c"};
	(void)st;

	assert_int_equal(eng_graph_new(&g, "drawn"), 0);
	eng_graph_add_node(g, "a", node_ok, NULL, NULL);
	eng_graph_add_node(g, "b", node_ok, NULL, NULL);
	eng_graph_add_node(g, "c", node_ok, NULL, NULL);
	eng_graph_add_node(g, "d-1", node_ok, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "a");
	eng_graph_add_router(g, "a", route_to_c, NULL, ENG_TARGETS("b", "c"));
	eng_graph_add_join(g, join, 2, "d-1");
	eng_graph_set_destinations(g, "d-1", ENG_TARGETS("a"));
	buf_init(&out, 0);
	assert_int_equal(eng_graph_draw(g, "mermaid", &out), ERR_INVALID); /* not compiled */
	assert_int_equal(eng_graph_compile(g), 0);
	assert_int_equal(eng_graph_edges(g, &edges), 0);
	{
		json_t *want = ts_json(
		    "[{\"from\":\"__start__\",\"to\":\"a\",\"kind\":\"edge\"},"
		    "{\"from\":\"a\",\"to\":\"b\",\"kind\":\"router\"},"
		    "{\"from\":\"a\",\"to\":\"c\",\"kind\":\"router\"},"
		    "{\"from\":\"b\",\"to\":\"d-1\",\"kind\":\"join\"},"
		    "{\"from\":\"c\",\"to\":\"d-1\",\"kind\":\"join\"},"
		    "{\"from\":\"d-1\",\"to\":\"a\",\"kind\":\"goto\"}]");
		assert_true(json_equal(edges, want));
		json_decref(want);
	}
	assert_int_equal(eng_graph_draw(g, "mermaid", &out), 0);
	assert_string_equal(buf_cstr(&out),
			    "%%{init: {'flowchart': {'curve': 'linear'}}}%%\n"
			    "graph TD;\n"
			    "\t__start__([<p>__start__</p>]):::first\n"
			    "\ta(\"a\")\n\tb(\"b\")\n\tc(\"c\")\n\td_1(\"d-1\")\n"
			    "\t__end__([<p>__end__</p>]):::last\n"
			    "\t__start__ --> a;\n"
			    "\ta -.-> b;\n"
			    "\ta -.-> c;\n"
			    "\tb --> d_1;\n"
			    "\tc --> d_1;\n"
			    "\td_1 -.-> a;\n"
			    "\tclassDef default fill:#f2f0ff,line-height:1.2\n"
			    "\tclassDef first fill-opacity:0\n"
			    "\tclassDef last fill:#bfb6fc\n");
	buf_reset(&out);
	assert_int_equal(eng_graph_draw(g, "dot", &out), 0);
	assert_non_null(strstr(buf_cstr(&out), "\t\"a\" -> \"b\" [style=dashed];\n"));
	assert_non_null(strstr(buf_cstr(&out), "\t\"b\" -> \"d-1\" [style=bold];\n"));
	buf_reset(&out);
	assert_int_equal(eng_graph_draw(g, "text", &out), 0);
	assert_string_equal(buf_cstr(&out), "graph drawn: 4 nodes\n"
					    "  __start__ -> a\n"
					    "  a -> router: b, c\n"
					    "  b -> join: d-1\n"
					    "  c -> join: d-1\n"
					    "  d-1 -> goto: a\n");
	assert_int_equal(eng_graph_draw(g, "png", &out), ERR_INVALID);
	buf_free(&out);
	json_decref(edges);
	eng_graph_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reducers),
		cmocka_unit_test(test_update_must_be_object),
		cmocka_unit_test(test_delta_rejects_garbage),
		cmocka_unit_test(test_graph_checks),
		cmocka_unit_test(test_join_checks),
		cmocka_unit_test(test_fan_out_and_send),
		cmocka_unit_test(test_router_unknown_node),
		cmocka_unit_test(test_retry_policy),
		cmocka_unit_test(test_await_and_take),
		cmocka_unit_test(test_timeout_settings),
		cmocka_unit_test(test_declared_targets),
		cmocka_unit_test(test_draw),
	};
	ts_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
