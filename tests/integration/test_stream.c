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
#include "core/buf.h"
#include "core/err.h"
#include "core/metrics.h"
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

/* eng_resume with a string value (made and freed here). */
static int resume_with(eng_engine *e, int64_t thread, const char *key, const char *value,
		       eng_result *r)
{
	json_t *v = json_string(value);
	int rc = eng_resume(e, thread, key, v, ENG_WANT_STATE, r);
	json_decref(v);
	return rc;
}

/* True when v equals the JSON `text` (parsed here and freed). */
static int json_is(const json_t *v, const char *text)
{
	json_t *want = ts_json(text);
	int eq = json_equal(v, want);
	json_decref(want);
	return eq;
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


/* --- a slow subscriber --- */

static int noisy_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	for (int i = 0; i < 1000; i++)
		eng_stream_custom(ctx, json_pack("{s:i}", "tok", i));
	*update = json_pack("{s:[s]}", "log", "noisy");
	return 0;
}

static eng_graph *one_node_graph(const char *name, eng_node_fn fn)
{
	eng_graph *g = NULL;

	assert_int_equal(eng_graph_new(&g, name), 0);
	assert_int_equal(eng_graph_add_node(g, "only", fn, NULL, NULL), 0);
	eng_graph_add_edge(g, ENG_START, "only");
	eng_graph_add_edge(g, "only", ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	assert_int_equal(eng_graph_compile(g), 0);
	return g;
}

/* A subscriber that reads nothing while the run emits 1000 events into a
 * queue of 16: the run is not held up, the subscriber gets what fitted, one
 * "dropped" event counting the rest in their place, and the run's end; a
 * fast subscriber beside it gets everything. */
/* The value of the series `series` (name and labels as rendered) in this
 * process's /metrics, or -1 when it is not there. */
static double metric_value(const char *series)
{
	buf out;
	char line[160];
	const char *p;
	double v = -1;

	/* a sample's line, not its # HELP or # TYPE */
	snprintf(line, sizeof(line), "\n%s ", series);
	buf_init(&out, 0);
	assert_int_equal(met_render(&out), 0);
	p = out.data ? strstr(out.data, line) : NULL;
	if (p)
		v = strtod(p + strlen(line), NULL);
	buf_free(&out);
	return v;
}

static void test_slow_subscriber(void **st)
{
	eng_graph *g = one_node_graph("noisy", noisy_node);
	eng_stream_hub *hub = NULL;
	eng_stream_sub *slow = NULL, *fast = NULL;
	eng_stream_filter fs = {.modes = ENG_STREAM_CUSTOM, .queue = 16};
	eng_stream_filter ff = {.modes = ENG_STREAM_CUSTOM, .queue = 4096};
	eng_options opt = {.threads = 0};
	eng_engine *e = NULL;
	eng_result r;
	json_t *evs, *ev;
	size_t i;
	int custom = 0, dropped = 0, gaps = 0;
	double dropped0, delivered0;
	(void)st;

	assert_int_equal(eng_stream_hub_new(&hub, NULL), 0);
	opt.sink = eng_stream_hub_sink(hub);
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, g), 0);
	assert_int_equal(eng_stream_subscribe(hub, &fs, &slow), 0);
	assert_int_equal(eng_stream_subscribe(hub, &ff, &fast), 0);
	/* /metrics counts what the hubs publish, deliver and drop */
	dropped0 = metric_value("orch_stream_events_total{outcome=\"dropped\"}");
	delivered0 = metric_value("orch_stream_events_total{outcome=\"delivered\"}");
	assert_true(dropped0 >= 0 && delivered0 >= 0);
	assert_true(metric_value("orch_stream_subscriptions") >= 2);
	assert_int_equal(eng_invoke(e, "noisy", "noisy-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "done");
	evs = drain(slow, 0);
	json_array_foreach(evs, i, ev) {
		if (strcmp(ev_mode(ev), "custom") == 0)
			custom++;
		if (strcmp(ev_mode(ev), "dropped") == 0) {
			gaps++;
			dropped += (int)json_integer_value(
				json_object_get(json_object_get(ev, "data"), "count"));
		}
	}
	assert_true(custom <= 16);
	assert_int_equal(gaps, 1);
	assert_int_equal(custom + dropped, 1000);
	assert_int_equal(eng_stream_sub_dropped(slow), dropped);
	/* the gap stands where the events were lost: after what fitted, before the end */
	ev = json_array_get(evs, json_array_size(evs) - 1);
	assert_string_equal(ev_mode(ev), "run");
	assert_string_equal(ev_event(ev), "end");
	assert_string_equal(ev_mode(json_array_get(evs, json_array_size(evs) - 2)), "dropped");
	json_decref(evs);
	evs = drain(fast, 0);
	assert_int_equal(count_mode(evs, "custom"), 1000);
	assert_int_equal(count_mode(evs, "dropped"), 0);
	json_decref(evs);
	assert_true(metric_value("orch_stream_events_total{outcome=\"dropped\"}") - dropped0 ==
		    (double)dropped);
	assert_true(metric_value("orch_stream_events_total{outcome=\"delivered\"}") - delivered0 >=
		    1000.0 + custom);
	eng_result_clear(&r);
	eng_stream_unsubscribe(slow);
	eng_stream_unsubscribe(fast);
	eng_engine_free(e);
	eng_stream_hub_free(hub);
	/* a freed hub's subscriptions leave the gauge */
	assert_true(metric_value("orch_stream_subscriptions") == 0);
	eng_graph_free(g);
}

/* --- a subscriber joining mid-run --- */

static atomic_int release_second;

static int first_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)ctx;
	(void)state;
	(void)input;
	*update = json_pack("{s:[s]}", "log", "first");
	return 0;
}

static int second_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	while (!atomic_load(&release_second))
		util_sleep_ms(5);
	eng_stream_custom(ctx, json_pack("{s:s}", "said", "after the join"));
	*update = json_pack("{s:[s]}", "log", "second");
	return 0;
}

static eng_graph *two_step_graph(void)
{
	eng_graph *g = NULL;

	assert_int_equal(eng_graph_new(&g, "twostep"), 0);
	eng_graph_add_node(g, "first", first_node, NULL, NULL);
	eng_graph_add_node(g, "second", second_node, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "first");
	eng_graph_add_edge(g, "first", "second");
	eng_graph_add_edge(g, "second", ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	assert_int_equal(eng_graph_compile(g), 0);
	return g;
}

/* The run's first step is checkpointed; a subscriber joins while the
 * second runs: it gets the checkpoint (state included) first, then the
 * stream from there; a subscriber to a run that ended gets its last
 * checkpoint and its end at once. */
static void test_late_join(void **st)
{
	eng_graph *g = two_step_graph();
	eng_stream_hub *hub = NULL;
	eng_stream_sub *sub = NULL, *after = NULL;
	eng_stream_options so = {.pool = NULL};
	eng_options opt = {.threads = 1, .poll_ms = 50};
	eng_engine *e = NULL;
	int64_t thread = 0, run = 0;
	json_t *evs, *ev, *d;
	(void)st;

	so.pool = pool;
	atomic_store(&release_second, 0);
	assert_int_equal(eng_stream_hub_new(&hub, &so), 0);
	opt.sink = eng_stream_hub_sink(hub);
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, g), 0);
	assert_int_equal(eng_engine_start(e), 0);
	assert_int_equal(eng_start(db, "late-1", "twostep", NULL, NULL, &thread, &run), 0);
	ts_await_sql(db, "SELECT count(*) FROM checkpoints c JOIN threads t ON t.id = c.thread_id "
			 "WHERE t.key = 'late-1'", 1, 30000);
	{
		eng_stream_filter f = {.thread_id = thread, .late_join = 1};
		assert_int_equal(eng_stream_subscribe(hub, &f, &sub), 0);
	}
	atomic_store(&release_second, 1);
	ts_await_sql(db, "SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id "
			 "WHERE t.key = 'late-1' AND r.status = 'done'", 1, 30000);
	evs = drain(sub, 2000);
	/* first the checkpoint it joined at, with the state */
	ev = json_array_get(evs, 0);
	d = json_object_get(ev, "data");
	assert_string_equal(ev_mode(ev), "checkpoints");
	assert_true(json_is_true(json_object_get(d, "snapshot")));
	assert_int_equal(json_integer_value(json_object_get(d, "seq")), 1);
	assert_true(json_is(json_object_get(json_object_get(d, "state"), "log"), "[\"first\"]"));
	/* then the rest: the second step's custom event, its checkpoint, the end */
	assert_int_equal(count_mode(evs, "custom"), 1);
	assert_int_equal(count_mode(evs, "checkpoints"), 2);
	ev = json_array_get(evs, json_array_size(evs) - 1);
	assert_string_equal(ev_event(ev), "end");
	json_decref(evs);
	/* a run that ended: its last checkpoint and its end, at once */
	{
		eng_stream_filter f = {.run_id = run, .late_join = 1};
		assert_int_equal(eng_stream_subscribe(hub, &f, &after), 0);
	}
	evs = drain(after, 0);
	assert_int_equal(json_array_size(evs), 2);
	d = json_object_get(json_array_get(evs, 0), "data");
	assert_int_equal(json_integer_value(json_object_get(d, "seq")), 2);
	ev = json_array_get(evs, 1);
	assert_string_equal(ev_event(ev), "end");
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "status")),
			    "done");
	json_decref(evs);
	eng_stream_unsubscribe(sub);
	eng_stream_unsubscribe(after);
	eng_engine_free(e);
	eng_stream_hub_free(hub);
	eng_graph_free(g);
}

/* --- another process, through Redis --- */

static pid_t worker_start(const char *sleep_ms)
{
	char prog[512], line[256];
	int fds[2];
	pid_t pid;
	FILE *out;

	ts_prog("engine_worker", prog, sizeof(prog));
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		setenv("TSG_SLEEP_MS", sleep_ms, 1);
		execl(prog, prog, "--threads", "2", "--lease-ms", "1500", "--poll-ms", "100",
		      "--stream", "1", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	out = fdopen(fds[0], "r");
	if (!fgets(line, sizeof(line), out) || strncmp(line, "ready", 5) != 0)
		fail_msg("engine_worker did not start");
	fclose(out);
	return pid;
}

static void worker_stop(pid_t pid, int sig)
{
	int status;
	kill(pid, sig);
	waitpid(pid, &status, 0);
}

/* Reads events until the run `run` ends (a run end of that run), at most 60 s. */
static json_t *read_until_end(eng_stream_sub *sub, int64_t run)
{
	json_t *all = json_array();
	int64_t until = util_mono_ms() + 60000;

	while (util_mono_ms() < until) {
		eng_stream_event *ev = NULL;
		json_t *w;
		int end;

		if (eng_stream_next(sub, 500, &ev) < 0)
			continue;
		w = ts_json(ev->wire);
		end = ev->mode == ENG_STREAM_RUN && ev->run_id == run &&
		      strcmp(ev_event(w), "end") == 0 &&
		      strcmp(json_string_value(json_object_get(json_object_get(w, "data"), "status")),
			     "done") == 0;
		json_array_append_new(all, w);
		eng_stream_event_release(ev);
		if (end)
			break;
	}
	return all;
}

/* A run executed by another process: its events arrive here through Redis
 * pub/sub, complete and in order. */
static void test_other_process(void **st)
{
	eng_stream_hub *hub = NULL;
	eng_stream_sub *sub = NULL;
	bot_live *live = NULL;
	bot_live_options lo = {.redis_url = getenv("REDIS_URL"),
				.database_url = getenv("DATABASE_URL"), .subscribe = 1};
	eng_stream_filter f = {.modes = ENG_STREAM_ALL, .key_prefix = "remote-"};
	int64_t thread = 0, run = 0, last = 0;
	pid_t w;
	json_t *evs, *ev;
	size_t i;
	(void)st;

	assert_int_equal(eng_stream_hub_new(&hub, NULL), 0);
	assert_int_equal(eng_stream_subscribe(hub, &f, &sub), 0);
	assert_int_equal(bot_live_start(&live, hub, &lo), 0);
	assert_int_equal(bot_live_wait_ready(live, 10000), 0);
	w = worker_start("0");
	assert_int_equal(eng_start(db, "remote-1", "linear4", NULL, NULL, &thread, &run), 0);
	evs = read_until_end(sub, run);
	worker_stop(w, SIGTERM);
	json_array_foreach(evs, i, ev) {
		assert_int_equal(json_integer_value(json_object_get(ev, "seq")), last + 1);
		last++;
		assert_int_equal(json_integer_value(json_object_get(ev, "thread")), thread);
		assert_string_not_equal(json_string_value(json_object_get(ev, "origin")),
					eng_stream_hub_origin(hub));
	}
	assert_int_equal(count_mode(evs, "checkpoints"), 4);
	assert_int_equal(count_mode(evs, "updates"), 4);
	assert_int_equal(count_mode(evs, "values"), 4);
	assert_int_equal(count_mode(evs, "tasks"), 8);
	assert_string_equal(ev_event(json_array_get(evs, 0)), "start");
	json_decref(evs);
	bot_live_stop(live);
	eng_stream_unsubscribe(sub);
	eng_stream_hub_free(hub);
}

/* An engine killed mid-run: another takes the run over after its lease
 * expired, and the stream says so (a second start, "takeover", from the
 * last checkpoint) before it goes on to the end. */
static void test_crash_mid_stream(void **st)
{
	eng_stream_hub *hub = NULL;
	eng_stream_sub *sub = NULL;
	bot_live *live = NULL;
	bot_live_options lo = {.redis_url = getenv("REDIS_URL"),
				.database_url = getenv("DATABASE_URL"), .subscribe = 1};
	eng_stream_filter f = {.modes = ENG_STREAM_CHECKPOINTS, .key_prefix = "crash-"};
	int64_t thread = 0, run = 0, until;
	int checkpoints = 0, starts = 0, takeover = 0;
	pid_t a, b;
	json_t *evs, *ev;
	size_t i;
	(void)st;

	assert_int_equal(eng_stream_hub_new(&hub, NULL), 0);
	assert_int_equal(eng_stream_subscribe(hub, &f, &sub), 0);
	assert_int_equal(bot_live_start(&live, hub, &lo), 0);
	assert_int_equal(bot_live_wait_ready(live, 10000), 0);
	a = worker_start("400");
	assert_int_equal(eng_start(db, "crash-1", "linear4", NULL, NULL, &thread, &run), 0);
	/* the first checkpoint arrives: kill the engine in the middle of the next step */
	until = util_mono_ms() + 30000;
	while (checkpoints == 0 && util_mono_ms() < until) {
		eng_stream_event *e = NULL;
		if (eng_stream_next(sub, 500, &e) == 0) {
			checkpoints += e->mode == ENG_STREAM_CHECKPOINTS;
			eng_stream_event_release(e);
		}
	}
	assert_int_equal(checkpoints, 1);
	util_sleep_ms(100);
	worker_stop(a, SIGKILL);
	b = worker_start("0");
	evs = read_until_end(sub, run);
	worker_stop(b, SIGTERM);
	json_array_foreach(evs, i, ev) {
		if (strcmp(ev_mode(ev), "run") == 0 && strcmp(ev_event(ev), "start") == 0) {
			json_t *d = json_object_get(ev, "data");
			starts++;
			if (strcmp(json_string_value(json_object_get(d, "how")), "takeover") == 0) {
				takeover++;
				assert_true(json_is_true(json_object_get(d, "resumed")));
				assert_true(json_integer_value(json_object_get(d, "from_seq")) >= 1);
			}
		}
	}
	assert_int_equal(starts, 1);
	assert_int_equal(takeover, 1);
	ev = json_array_get(evs, json_array_size(evs) - 1);
	assert_string_equal(ev_event(ev), "end");
	printf("# recovery: the stream went on after the engine was killed (its lease of 1.5 s "
	       "expired)\n");
	json_decref(evs);
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM checkpoints c JOIN threads t ON "
					"t.id = c.thread_id WHERE t.key = 'crash-1'"),
			 4);
	bot_live_stop(live);
	eng_stream_unsubscribe(sub);
	eng_stream_hub_free(hub);
}

/* --- node caching --- */

static atomic_int scans;

static int scan_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	char r[64];
	(void)ctx;
	(void)input;
	snprintf(r, sizeof(r), "%s:scan-%d", json_string_value(json_object_get(state, "repo")),
		 atomic_fetch_add(&scans, 1) + 1);
	*update = json_pack("{s:s}", "scan", r);
	return 0;
}

static int noting_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	atomic_fetch_add(&scans, 1);
	*update = json_pack("{s:s}", "noted", "yes");
	return eng_emit(ctx, "test.note", NULL, json_pack("{s:s}", "said", "something"));
}

/* The scan's result is taken from the cache for the same input, in another
 * thread (the node does not run: the tasks stream says "cached"); another
 * input runs it; after the ttl it runs again; a node with side effects is
 * never cached; retention deletes what expired. */
static void test_node_cache(void **st)
{
	eng_graph *g = NULL;
	eng_cache_policy pol = {.ttl_ms = 1500};
	eng_stream_hub *hub = NULL;
	eng_stream_sub *sub = NULL;
	eng_stream_filter f = {.modes = ENG_STREAM_TASKS};
	eng_options opt = {.threads = 0};
	eng_engine *e = NULL;
	eng_result r;
	json_t *a = ts_json("{\"repo\": \"a\"}"), *b = ts_json("{\"repo\": \"b\"}"), *evs;
	eng_prune_stats ps;
	int cached = 0;
	size_t i;
	json_t *ev;
	(void)st;

	atomic_store(&scans, 0);
	assert_int_equal(eng_graph_new(&g, "cachetest"), 0);
	eng_graph_add_node(g, "scan", scan_node, NULL, NULL);
	eng_graph_add_node(g, "note", noting_node, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "scan");
	eng_graph_add_edge(g, "scan", "note");
	eng_graph_add_edge(g, "note", ENG_END);
	assert_int_equal(eng_graph_set_cache(g, "scan", &pol), 0);
	assert_int_equal(eng_graph_set_cache(g, "note", &pol), 0);
	assert_int_equal(eng_graph_set_cache(g, "nosuch", &pol), ERR_NOTFOUND);
	assert_int_equal(eng_graph_compile(g), 0);
	assert_int_equal(eng_stream_hub_new(&hub, NULL), 0);
	opt.sink = eng_stream_hub_sink(hub);
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, g), 0);

	assert_int_equal(eng_invoke(e, "cachetest", "cache-1", a, ENG_WANT_STATE, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r.state, "scan")), "a:scan-1");
	eng_result_clear(&r);
	assert_int_equal(atomic_load(&scans), 2); /* scan and note */
	/* the same input in another thread: the scan is not run again, note is */
	assert_int_equal(eng_stream_subscribe(hub, &f, &sub), 0);
	assert_int_equal(eng_invoke(e, "cachetest", "cache-2", a, ENG_WANT_STATE, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r.state, "scan")), "a:scan-1");
	assert_string_equal(r.status, "done");
	eng_result_clear(&r);
	assert_int_equal(atomic_load(&scans), 3);
	evs = drain(sub, 0);
	json_array_foreach(evs, i, ev) {
		json_t *d = json_object_get(ev, "data");
		if (strcmp(json_string_value(json_object_get(d, "outcome")) ?
			   json_string_value(json_object_get(d, "outcome")) : "", "cached") == 0) {
			cached++;
			assert_string_equal(json_string_value(json_object_get(ev, "node")), "scan");
		}
	}
	assert_int_equal(cached, 1);
	json_decref(evs);
	assert_int_equal(ts_sql_int(db, "SELECT hits FROM node_cache WHERE node = 'scan'"), 1);
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM node_cache WHERE node = 'note'"), 0);
	/* another input runs it */
	assert_int_equal(eng_invoke(e, "cachetest", "cache-3", b, ENG_WANT_STATE, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r.state, "scan")), "b:scan-4");
	eng_result_clear(&r);
	/* past the ttl it runs again */
	util_sleep_ms(1700);
	assert_int_equal(eng_invoke(e, "cachetest", "cache-4", a, ENG_WANT_STATE, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r.state, "scan")), "a:scan-6");
	eng_result_clear(&r);
	/* retention deletes the rows that expired (b's, by now) */
	util_sleep_ms(100);
	ts_sql(db, "UPDATE node_cache SET expires_at = now() - interval '1 second' "
		   "WHERE result->'update'->>'scan' = 'b:scan-4'");
	assert_int_equal(eng_prune(db, 30, 1, &ps), 0);
	assert_int_equal(ps.cache, 1);
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM node_cache"), 1);
	json_decref(a);
	json_decref(b);
	eng_stream_unsubscribe(sub);
	eng_engine_free(e);
	eng_stream_hub_free(hub);
	eng_graph_free(g);
}

/* --- update_state --- */

/* A run waits for an approval; the state is edited (without a node): the
 * run waits still and, resumed, sees the edit. Then, waiting again on
 * another thread, an edit as node "ask" (as if ask had returned it) sends
 * the run on at once to what follows ask. Refused while a run is running;
 * on an idle thread an edit as the last node, with ENG_UPDATE_RUN, runs
 * what follows it. */
static void test_update_state(void **st)
{
	eng_graph *gate = tsg_gate();
	eng_options opt = {.threads = 1, .poll_ms = 50};
	eng_engine *e = NULL, *inl = NULL;
	eng_result r;
	eng_update_result u;
	json_t *state = NULL, *edit = ts_json("{\"log\": [\"edited\"]}");
	json_t *as_ask = ts_json("{\"log\": [\"ask:forced\"]}");
	int64_t t1, t2;
	(void)st;

	assert_int_equal(eng_engine_new(&inl, pool, NULL), 0);
	assert_int_equal(eng_engine_add_graph(inl, gate), 0);
	assert_int_equal(eng_invoke(inl, "gate", "upd-1", NULL, 0, &r), 0);
	assert_string_equal(r.status, "waiting");
	t1 = r.thread_id;
	eng_result_clear(&r);
	/* edited while it waits: it waits still, on the edited state */
	assert_int_equal(eng_update_state(db, gate, t1, edit, NULL, 0, &u), 0);
	assert_int_equal(u.seq, 2);
	assert_string_equal(u.run_status, "waiting");
	assert_int_equal(eng_state_at(db, t1, 0, &state, NULL, NULL), 0);
	assert_true(json_is(json_object_get(state, "log"), "[\"prepare:ok\",\"edited\"]"));
	json_decref(state);
	assert_int_equal(resume_with(inl, t1, "approval", "yes", &r), 0);
	assert_string_equal(r.status, "done");
	assert_true(json_is(json_object_get(r.state, "log"),
			    "[\"prepare:ok\",\"edited\",\"ask:yes\",\"finish:ok\"]"));
	eng_result_clear(&r);
	/* as node ask: the run goes on to finish without an approval */
	assert_int_equal(eng_invoke(inl, "gate", "upd-2", NULL, 0, &r), 0);
	t2 = r.thread_id;
	eng_result_clear(&r);
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, gate), 0);
	assert_int_equal(eng_engine_start(e), 0);
	assert_int_equal(eng_update_state(db, gate, t2, as_ask, "ask", 0, &u), 0);
	assert_string_equal(u.run_status, "queued");
	ts_await_sql(db, "SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id "
			 "WHERE t.key = 'upd-2' AND r.status = 'done'", 1, 30000);
	assert_int_equal(eng_state_at(db, t2, 0, &state, NULL, NULL), 0);
	assert_true(json_is(json_object_get(state, "log"),
			    "[\"prepare:ok\",\"ask:forced\",\"finish:ok\"]"));
	json_decref(state);
	/* the history shows the edit as a checkpoint of its own */
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM checkpoints c JOIN threads t ON "
					"t.id = c.thread_id WHERE t.key = 'upd-2' AND "
					"c.nodes = ARRAY['ask'] AND c.step = 0"),
			 1);
	/* refused while a run is queued or running */
	eng_engine_stop(e);
	{
		int64_t tid = 0, run = 0;
		assert_int_equal(eng_start(db, "upd-3", "gate", NULL, NULL, &tid, &run), 0);
		assert_int_equal(eng_update_state(db, gate, tid, edit, NULL, 0, &u), ERR_BUSY);
		assert_non_null(strstr(err_last(), "queued"));
		ts_sql(db, "DELETE FROM runs WHERE thread_id IN (SELECT id FROM threads WHERE key = "
			   "'upd-3')");
	}
	/* an idle thread: as "prepare", with a run that goes on to ask */
	assert_int_equal(eng_update_state(db, gate, t1, as_ask, "prepare", ENG_UPDATE_RUN, &u), 0);
	assert_string_equal(u.run_status, "queued");
	assert_true(u.run_id > 0);
	assert_int_equal(eng_engine_start(e), 0);
	ts_await_sql(db, "SELECT count(*) FROM runs r JOIN threads t ON t.id = r.thread_id "
			 "WHERE t.key = 'upd-1' AND r.status = 'waiting'", 1, 30000);
	/* the update itself is checked: a node that does not exist, a bad update */
	assert_int_equal(eng_update_state(db, gate, t2, edit, "nosuch", 0, &u), ERR_NOTFOUND);
	json_decref(edit);
	json_decref(as_ask);
	eng_engine_free(e);
	eng_engine_free(inl);
	eng_graph_free(gate);
}

/* --- subgraphs --- */

static int sg_append(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	char entry[128];
	const char *name = eng_ctx_node(ctx);
	(void)input;
	if (strcmp(name, "draft") == 0)
		snprintf(entry, sizeof(entry), "draft:%s",
			 json_string_value(json_object_get(state, "topic")));
	else
		snprintf(entry, sizeof(entry), "%s", name);
	eng_stream_custom(ctx, json_pack("{s:s,s:s}", "from", name, "ns", eng_ctx_ns(ctx)));
	*update = json_pack("{s:[s]}", "log", entry);
	return 0;
}

static int sg_approve(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	json_t *v = NULL;
	char entry[128];
	int rc;
	(void)state;
	(void)input;
	rc = eng_await(ctx, "inner_ok", json_pack("{s:s}", "question", "polish it?"), &v);
	if (rc < 0)
		return rc;
	snprintf(entry, sizeof(entry), "approve:%s", json_string_value(v));
	json_decref(v);
	*update = json_pack("{s:[s]}", "log", entry);
	return 0;
}

static eng_graph *chain_graph(const char *name, const char *const *nodes, int n,
			      const eng_graph *sub, const char *sub_name)
{
	eng_graph *g = NULL;
	const char *prev = ENG_START;

	assert_int_equal(eng_graph_new(&g, name), 0);
	for (int i = 0; i < n; i++) {
		if (sub && strcmp(nodes[i], sub_name) == 0)
			assert_int_equal(eng_graph_add_subgraph(g, nodes[i], sub, NULL), 0);
		else
			assert_int_equal(eng_graph_add_node(g, nodes[i],
							    strcmp(nodes[i], "approve") == 0 ? sg_approve
											   : sg_append,
							    NULL, NULL),
					 0);
		eng_graph_add_edge(g, prev, nodes[i]);
		prev = nodes[i];
	}
	eng_graph_add_edge(g, prev, ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	assert_int_equal(eng_graph_compile(g), 0);
	return g;
}

static json_t *log_of(int64_t thread)
{
	json_t *state = NULL, *log;
	assert_int_equal(eng_state_at(db, thread, 0, &state, NULL, NULL), 0);
	log = json_incref(json_object_get(state, "log"));
	json_decref(state);
	return log;
}

/* A subgraph with an interrupt inside: the parent parks on the child's
 * wait; the child's checkpoints are in a thread of their own; a fork of
 * the child's history moves where the parent resumes into; resumed, the
 * child goes on from there and the parent gets what it wrote; the stream
 * carries the child's path; a fork of the parent before the subgraph runs
 * the child afresh in a namespace of its own. */
static void test_subgraphs(void **st)
{
	static const char *inner_nodes[] = {"draft", "approve", "polish"};
	static const char *outer_nodes[] = {"intro", "sub", "outro"};
	eng_graph *inner = chain_graph("inner", inner_nodes, 3, NULL, NULL);
	eng_graph *outer = chain_graph("outer", outer_nodes, 3, inner, "sub");
	eng_stream_hub *hub = NULL;
	eng_stream_sub *sub = NULL;
	eng_stream_filter f = {.modes = ENG_STREAM_ALL, .key_prefix = "sg-"};
	eng_options opt = {.threads = 0};
	eng_engine *e = NULL;
	eng_result r;
	json_t *input = ts_json("{\"topic\": \"words\"}"), *evs, *ev, *hist = NULL, *log;
	int64_t parent, child, fork_run = 0, run2 = 0;
	size_t i;
	int from_child = 0;
	char key[256];
	(void)st;

	assert_int_equal(eng_stream_hub_new(&hub, NULL), 0);
	opt.sink = eng_stream_hub_sink(hub);
	assert_int_equal(eng_engine_new(&e, pool, &opt), 0);
	assert_int_equal(eng_engine_add_graph(e, outer), 0);
	assert_int_equal(eng_stream_subscribe(hub, &f, &sub), 0);
	assert_int_equal(eng_graph_add_subgraph(outer, "again", inner, NULL), ERR_INVALID);
	{
		/* drawn as a subroutine */
		buf b;
		buf_init(&b, 0);
		assert_int_equal(eng_graph_draw(outer, "mermaid", &b), 0);
		assert_non_null(strstr(buf_cstr(&b), "[[\"sub\"]]"));
		assert_non_null(strstr(buf_cstr(&b), "(\"intro\")"));
		buf_free(&b);
	}

	/* the interrupt inside parks the parent, on the child's key */
	assert_int_equal(eng_invoke(e, "outer", "sg-1", input, 0, &r), 0);
	assert_string_equal(r.status, "waiting");
	{
		char *w = json_dumps(r.wait, JSON_COMPACT);
		assert_non_null(strstr(w, "polish it?"));
		free(w);
	}
	parent = r.thread_id;
	snprintf(key, sizeof(key), "sg-1/sub:%lld.2.0", (long long)r.run_id);
	eng_result_clear(&r);
	assert_int_equal(eng_thread_find(db, key, &child), 0);
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM threads WHERE parent_id IS NOT NULL"),
			 1);
	/* the child's own history: its input, then draft */
	assert_int_equal(eng_history(db, child, 10, &hist), 0);
	assert_int_equal(json_array_size(hist), 2);
	json_decref(hist);
	log = log_of(child);
	assert_true(json_is(log, "[\"intro\",\"draft:words\"]"));
	json_decref(log);
	/* the stream says where each event comes from */
	evs = drain(sub, 0);
	json_array_foreach(evs, i, ev) {
		const char *ns = json_string_value(json_object_get(ev, "ns"));
		const char *node = json_string_value(json_object_get(ev, "node"));
		if (strcmp(node, "draft") == 0 || strcmp(node, "approve") == 0) {
			assert_string_equal(ns, "sub:0");
			from_child++;
		} else if (*node) {
			assert_string_equal(ns, ""); /* the parent's own nodes */
		}
		if (strcmp(ev_mode(ev), "custom") == 0 && strcmp(node, "draft") == 0)
			assert_string_equal(json_string_value(json_object_get(
						    json_object_get(ev, "data"), "ns")), "sub:0");
	}
	assert_true(from_child >= 4);
	json_decref(evs);

	/* time travel across the boundary: fork the child before its draft */
	{
		json_t *upd = ts_json("{\"topic\": \"forked\"}");
		assert_int_equal(eng_fork(db, child, 1, upd, &fork_run), 0);
		json_decref(upd);
	}
	assert_true(fork_run > 0);
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM runs WHERE status = 'queued'"), 0);
	/* resumed: the parent goes into the child where its head now stands */
	assert_int_equal(resume_with(e, parent, "inner_ok", "yes", &r),
			 0);
	assert_string_equal(r.status, "done");
	assert_true(json_is(json_object_get(r.state, "log"),
			    "[\"intro\",\"draft:forked\",\"approve:yes\",\"polish\","
				       "\"outro\"]"));
	assert_int_equal(r.run_id, fork_run);
	eng_result_clear(&r);
	log = log_of(child);
	assert_true(json_is(log, "[\"intro\",\"draft:forked\",\"approve:yes\","
					    "\"polish\"]"));
	json_decref(log);

	/* a fork of the parent before the subgraph: a new namespace, run afresh */
	assert_int_equal(eng_fork(db, parent, 1, NULL, &run2), 0);
	assert_true(run2 > 0);
	{
		eng_options o2 = {.threads = 1, .poll_ms = 50};
		eng_engine *w = NULL;
		assert_int_equal(eng_engine_new(&w, pool, &o2), 0);
		assert_int_equal(eng_engine_add_graph(w, outer), 0);
		assert_int_equal(eng_engine_start(w), 0);
		char q[160];
		snprintf(q, sizeof(q), "SELECT count(*) FROM runs WHERE id = %lld AND status = "
				       "'waiting'", (long long)run2);
		ts_await_sql(db, q, 1, 30000);
		eng_engine_free(w);
	}
	assert_int_equal(ts_sql_int(db, "SELECT count(*) FROM threads WHERE parent_id IS NOT NULL"),
			 2);
	assert_int_equal(resume_with(e, parent, "inner_ok", "again", &r),
			 0);
	assert_string_equal(r.status, "done");
	assert_true(json_is(json_object_get(r.state, "log"),
			    "[\"intro\",\"draft:words\",\"approve:again\",\"polish\","
				       "\"outro\"]"));
	eng_result_clear(&r);
	json_decref(input);
	eng_stream_unsubscribe(sub);
	eng_engine_free(e);
	eng_stream_hub_free(hub);
	eng_graph_free(outer);
	eng_graph_free(inner);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes_in_order),
		cmocka_unit_test(test_modes_filtered),
		cmocka_unit_test(test_slow_subscriber),
		cmocka_unit_test(test_late_join),
		cmocka_unit_test(test_other_process),
		cmocka_unit_test(test_crash_mid_stream),
		cmocka_unit_test(test_node_cache),
		cmocka_unit_test(test_update_state),
		cmocka_unit_test(test_subgraphs),
	};
	ts_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
