/*
 * bench/stream — stream delivery, measured the way ../shared/anchors/
 * langgraphjs measures its phase I (I_streaming_custom_and_updates):
 *
 *   a node emits N_TOK (200) custom events while the run streams updates
 *   and custom events; 20 sequential runs (after 5 warm-up ones) and
 *   N_STREAM (50) concurrent ones (queued at once and run by the engine's
 *   ENGINE_THREADS (8) worker threads); emit-to-consumer latency (the event's
 *   emission time to its arrival at the subscriber) and events per second
 *   (events / the runs' wall time, to the run's end at the subscriber).
 *
 * in-process   the engine's sink is the subscriber's hub (as LangGraph's
 *              stream is the invoking process's)
 * redis        the engine's hub publishes to Redis (bot/live.h); the
 *              subscriber's hub, another one with its own connection, takes
 *              them from there: the path between an engine and a chat
 * llm          a node's model call (llm/, against tests/fakes/fake_openai
 *              streaming N_LLM_TOK chunks) emits its tokens as messages
 *              events: the latency from the token at the LLM layer to the
 *              subscriber, in-process and through Redis
 * overhead     the 4-step graph of bench/engine, N_SEQ sequential
 *              invocations each with streaming off and on (a subscriber for
 *              the default modes, and everything published to Redis),
 *              alternated: the medians
 * transports   N_TRANSPORT wire events through Redis pub/sub (core/pubsub)
 *              and through PostgreSQL NOTIFY/LISTEN: events per second in a
 *              burst, and the latency of events sent one per millisecond
 *
 * DATABASE_URL (migrated), REDIS_URL, FAKE_LLM_URL (the fake's base, may be
 * unset: the llm phase is then skipped). Prints one JSON object. For
 * looking closer: ONLY_OVERHEAD=1 runs the overhead phase alone, and
 * OVERHEAD_MODE (full, sub: a subscriber only, tap: Redis only, idle: a
 * subscription nobody reads, none: a hub nobody listens to) says what "on"
 * is.
 */
#include "bot/live.h"
#include "core/err.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/pubsub.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/ctx.h"
#include "engine/engine.h"
#include "engine/stream.h"
#include "llm/llm.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int knob(const char *name, int def)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return def;
	n = strtol(v, &end, 10);
	return *end == '\0' && n > 0 ? (int)n : def;
}

static void die(const char *what)
{
	fprintf(stderr, "bench/stream: %s: %s\n", what, err_last());
	exit(1);
}

static double wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	int i;
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	i = (int)(p / 100.0 * n + 0.999999) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

static int n_tok;

/* --- the graphs --- */

static int talker(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	(void)state;
	(void)input;
	for (int k = 0; k < n_tok; k++)
		eng_stream_custom(ctx, json_pack("{s:i}", "tok", k));
	*update = json_pack("{s:s}", "text", "done");
	return 0;
}

static int step_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	char entry[64];
	(void)state;
	(void)input;
	snprintf(entry, sizeof(entry), "%s:ok", eng_ctx_node(ctx));
	*update = json_pack("{s:[s]}", "log", entry);
	return 0;
}

static llm_service *g_llm;

/* What nodes/common.c does with a model call's tokens. */
static void on_token(void *udata, int kind, const char *text, size_t len,
		     const llm_token_info *info)
{
	eng_ctx *ctx = udata;
	if (kind == LLM_TOKEN_TEXT && eng_ctx_streaming(ctx, ENG_STREAM_MESSAGES))
		eng_stream_message(ctx, json_pack("{s:s,s:s%}", "call", info->call_id, "text", text,
						  len));
}

static int llm_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	llm_message m = {.role = "user", .content = "write"};
	llm_request rq;
	llm_response resp;
	llm_call call = {.on_token = on_token, .token_udata = ctx};
	int rc;
	(void)state;
	(void)input;
	llm_request_init(&rq);
	rq.messages = &m;
	rq.n_messages = 1;
	rc = llm_chat(g_llm, &call, &rq, &resp);
	llm_response_free(&resp);
	if (rc < 0)
		return rc;
	*update = json_pack("{s:s}", "text", "written");
	return 0;
}

static eng_graph *graph(const char *name, eng_node_fn fn, int steps)
{
	static const char *names[] = {"brainstorm", "architect", "developer", "reviewer"};
	eng_graph *g = NULL;
	const char *prev = ENG_START;

	eng_graph_new(&g, name);
	for (int i = 0; i < steps; i++) {
		eng_graph_add_node(g, names[i], fn, NULL, NULL);
		eng_graph_add_edge(g, prev, names[i]);
		prev = names[i];
	}
	eng_graph_add_edge(g, prev, ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	if (eng_graph_compile(g) < 0)
		die("graph");
	return g;
}

/* --- the subscriber: one thread reading a subscription --- */

typedef struct collector {
	eng_stream_sub *sub;
	pthread_t thread;
	atomic_int stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	double *lat;
	int nlat, cap;
	int64_t events; /* custom and messages events */
	int ends;       /* run ends seen */
	unsigned measure; /* the modes whose latency counts */
} collector;

static void *collect_main(void *arg)
{
	collector *c = arg;

	while (!atomic_load(&c->stop)) {
		eng_stream_event *ev = NULL;
		if (eng_stream_next(c->sub, 50, &ev) < 0)
			continue;
		pthread_mutex_lock(&c->mu);
		if (ev->mode & c->measure) {
			if (c->nlat < c->cap)
				c->lat[c->nlat++] = wall_ms() - ev->t_ms;
			c->events++;
		} else if (ev->mode == ENG_STREAM_RUN && strstr(ev->data, "\"end\"")) {
			c->ends++;
			pthread_cond_broadcast(&c->cv);
		} else if (ev->mode == ENG_STREAM_DROPPED) {
			fprintf(stderr, "bench/stream: %lld events dropped\n", (long long)ev->dropped);
		}
		pthread_mutex_unlock(&c->mu);
		eng_stream_event_release(ev);
	}
	return NULL;
}

static void collector_start(collector *c, eng_stream_hub *hub, const char *prefix,
			    unsigned modes, unsigned measure, int cap)
{
	eng_stream_filter f = {.modes = modes, .key_prefix = prefix, .queue = 1 << 16};

	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->cap = cap;
	c->lat = calloc((size_t)cap, sizeof(double));
	c->measure = measure;
	if (eng_stream_subscribe(hub, &f, &c->sub) < 0 ||
	    pthread_create(&c->thread, NULL, collect_main, c) != 0)
		die("subscriber");
}

static void collector_reset(collector *c)
{
	pthread_mutex_lock(&c->mu);
	c->nlat = 0;
	c->events = 0;
	c->ends = 0;
	pthread_mutex_unlock(&c->mu);
}

/* Waits until `n` run ends were seen (60 s at most). */
static void collector_wait_ends(collector *c, int n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 60;
	pthread_mutex_lock(&c->mu);
	while (c->ends < n)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0) {
			pthread_mutex_unlock(&c->mu);
			err_set(ERR_TIMEOUT, "only %d of %d runs ended at the subscriber", c->ends, n);
			die("stream");
		}
	pthread_mutex_unlock(&c->mu);
}

static void collector_stop(collector *c)
{
	atomic_store(&c->stop, 1);
	pthread_join(c->thread, NULL);
	eng_stream_unsubscribe(c->sub);
	free(c->lat);
}

/* --- phase I --- */

typedef struct phase_i {
	double seq_wall_median, seq_lat_median, seq_lat_p99, seq_events_per_s;
	double conc_events_per_s, conc_wall_ms, conc_lat_median, conc_lat_p99;
} phase_i;

static pg_pool *g_pool;
static int g_threads;

/* 5 + n_seq sequential runs of `graph` on `e` (inline, as one invocation
 * streams), then n_conc concurrent ones queued at once and executed by an
 * engine with g_threads worker threads on the same sink; read by `c`. */
static void run_phase_i(eng_engine *e, const eng_graph *graph_def, const eng_stream_sink *sink,
			collector *c, const char *tag, int n_seq, int n_conc, phase_i *out)
{
	const char *graph = eng_graph_name(graph_def);
	double *walls = calloc((size_t)n_seq, sizeof(double)), total = 0;
	char key[96], run_id[16];
	eng_options wopt = {.threads = g_threads, .poll_ms = 50, .sink = sink};
	eng_engine *w = NULL;
	json_t *items = json_array();
	pg_conn *db = NULL;
	double t0;
	eng_result r;

	util_rand_hex(run_id, 4);
	collector_reset(c);
	for (int i = 0; i < 5 + n_seq; i++) {
		double w0;
		if (i == 5)
			collector_reset(c); /* every warm-up run's events have arrived */
		snprintf(key, sizeof(key), "bstr-%s-%s-%d", tag, run_id, i);
		w0 = wall_ms();
		if (eng_invoke(e, graph, key, NULL, 0, &r) < 0 || strcmp(r.status, "done") != 0)
			die("sequential invocation");
		eng_result_clear(&r);
		collector_wait_ends(c, i < 5 ? i + 1 : i - 5 + 1);
		if (i >= 5) {
			walls[i - 5] = wall_ms() - w0;
			total += walls[i - 5];
		}
	}
	pthread_mutex_lock(&c->mu);
	out->seq_events_per_s = (double)c->events / (total / 1000.0);
	out->seq_lat_median = pct(c->lat, c->nlat, 50);
	out->seq_lat_p99 = pct(c->lat, c->nlat, 99);
	pthread_mutex_unlock(&c->mu);
	out->seq_wall_median = pct(walls, n_seq, 50);
	if (eng_engine_new(&w, g_pool, &wopt) < 0 || eng_engine_add_graph(w, graph_def) < 0 ||
	    eng_engine_start(w) < 0 || pg_pool_acquire(g_pool, 10000, &db) < 0)
		die("engine with worker threads");
	for (int i = 0; i < n_conc; i++) {
		snprintf(key, sizeof(key), "bstr-%s-%s-c%d", tag, run_id, i);
		json_array_append_new(items, json_pack("{s:s}", "key", key));
	}
	collector_reset(c);
	t0 = wall_ms();
	if (eng_start_many(db, graph, items, NULL) < 0)
		die("queue");
	collector_wait_ends(c, n_conc);
	out->conc_wall_ms = wall_ms() - t0;
	pg_pool_release(g_pool, db);
	eng_engine_free(w);
	json_decref(items);
	pthread_mutex_lock(&c->mu);
	out->conc_events_per_s = (double)c->events / (out->conc_wall_ms / 1000.0);
	out->conc_lat_median = pct(c->lat, c->nlat, 50);
	out->conc_lat_p99 = pct(c->lat, c->nlat, 99);
	if (c->events != (int64_t)n_conc * n_tok)
		fprintf(stderr, "bench/stream: %s: %lld of %d events arrived\n", tag,
			(long long)c->events, n_conc * n_tok);
	pthread_mutex_unlock(&c->mu);
	free(walls);
}

/* --- transports: Redis pub/sub and PostgreSQL NOTIFY --- */

typedef struct tp_recv {
	atomic_llong got;
	double *lat;
	int cap;
} tp_recv;

/* The send time is the line's first field ("<ms> ..."). */
static void tp_note(tp_recv *r, const char *line)
{
	long long n = atomic_fetch_add(&r->got, 1);
	double sent = strtod(line, NULL);

	if (n < r->cap)
		r->lat[n] = wall_ms() - sent;
}

static void tp_redis_line(void *udata, const char *channel, const char *line, size_t len)
{
	(void)channel;
	(void)len;
	tp_note(udata, line);
}

/* A line "<send time> <seq> <pad>": unique, as NOTIFY folds identical
 * payloads of one transaction into one. */
static void tp_line(char *out, size_t cap, const char *pad)
{
	static atomic_llong seq;
	snprintf(out, cap, "%.3f %lld %s", wall_ms(), (long long)atomic_fetch_add(&seq, 1), pad);
}

static void wait_got(tp_recv *r, long long n)
{
	int64_t until = util_mono_ms() + 60000;
	while (atomic_load(&r->got) < n && util_mono_ms() < until)
		util_sleep_ms(1);
}

typedef struct tp_result {
	double burst_per_s, paced_median, paced_p99;
} tp_result;

static void transport_redis(const char *url, int n, int paced, const char *pad, tp_result *out)
{
	ps_pub *p = NULL;
	ps_sub *s = NULL;
	tp_recv r = {.cap = n};
	ps_sub_options so = {.pattern = "orchbench:tp:*", .on_message = tp_redis_line, .udata = &r};
	ps_pub_options po = {.linger_us = -1}; /* the transport itself, without our batching */
	char line[512];
	double t0;

	r.lat = calloc((size_t)n, sizeof(double));
	if (ps_pub_new(&p, url, &po) < 0 || ps_sub_start(&s, url, &so) < 0 ||
	    ps_sub_wait_ready(s, 10000) < 0)
		die("redis transport");
	t0 = wall_ms();
	for (int i = 0; i < n; i++) {
		tp_line(line, sizeof(line), pad);
		ps_pub_send(p, "orchbench:tp:1", line, strlen(line));
	}
	wait_got(&r, n);
	out->burst_per_s = (double)atomic_load(&r.got) / ((wall_ms() - t0) / 1000.0);
	atomic_store(&r.got, 0);
	for (int i = 0; i < paced; i++) {
		tp_line(line, sizeof(line), pad);
		ps_pub_send(p, "orchbench:tp:1", line, strlen(line));
		util_sleep_ms(1);
	}
	wait_got(&r, paced);
	out->paced_median = pct(r.lat, paced, 50);
	out->paced_p99 = pct(r.lat, paced, 99);
	ps_sub_stop(s);
	ps_pub_free(p);
	free(r.lat);
}

typedef struct pg_listener {
	const char *url;
	tp_recv *r;
	atomic_int stop, ready;
} pg_listener;

static void *pg_listen_main(void *arg)
{
	pg_listener *l = arg;
	pg_conn *c = NULL;

	if (pg_conn_open(&c, l->url) < 0 || pg_exec(c, NULL, "LISTEN orchbench_tp", 0, NULL) < 0)
		die("LISTEN");
	atomic_store(&l->ready, 1);
	while (!atomic_load(&l->stop)) {
		struct pollfd pfd = {.fd = PQsocket(pg_conn_raw(c)), .events = POLLIN};
		PGnotify *nt;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		PQconsumeInput(pg_conn_raw(c));
		while ((nt = PQnotifies(pg_conn_raw(c))) != NULL) {
			tp_note(l->r, nt->extra);
			PQfreemem(nt);
		}
	}
	pg_conn_close(c);
	return NULL;
}

static void transport_pg(const char *url, int n, int paced, const char *pad, tp_result *out)
{
	static const pg_stmt notify = {"bench_notify", "SELECT pg_notify('orchbench_tp', $1)", 1};
	pg_conn *c = NULL;
	pg_listener l = {.url = url};
	tp_recv r = {.cap = n};
	pthread_t th;
	char lines[PG_PIPE_MAX][512];
	double t0;

	r.lat = calloc((size_t)n, sizeof(double));
	l.r = &r;
	if (pg_conn_open(&c, url) < 0 || pthread_create(&th, NULL, pg_listen_main, &l) != 0)
		die("postgres transport");
	while (!atomic_load(&l.ready))
		util_sleep_ms(1);
	t0 = wall_ms();
	for (int i = 0; i < n;) {
		/* as many as a pipeline takes, in one transaction (NOTIFY is sent at
		 * commit): what batching can do for it */
		pg_pipe pipe;
		const char *params[PG_PIPE_MAX][1];
		int k = 0;
		pg_pipe_init(&pipe);
		for (; k < PG_PIPE_MAX - 1 && i < n; k++, i++) {
			tp_line(lines[k], sizeof(lines[k]), pad);
			params[k][0] = lines[k];
			pg_pipe_add(&pipe, &notify, params[k]);
		}
		if (pg_pipe_run(&pipe, c) < 0)
			die("NOTIFY");
		pg_pipe_clear(&pipe);
	}
	wait_got(&r, n);
	out->burst_per_s = (double)atomic_load(&r.got) / ((wall_ms() - t0) / 1000.0);
	atomic_store(&r.got, 0);
	for (int i = 0; i < paced; i++) {
		const char *params[1] = {lines[0]};
		tp_line(lines[0], sizeof(lines[0]), pad);
		if (pg_exec_stmt(c, NULL, &notify, params) < 0)
			die("NOTIFY");
		util_sleep_ms(1);
	}
	wait_got(&r, paced);
	out->paced_median = pct(r.lat, paced, 50);
	out->paced_p99 = pct(r.lat, paced, 99);
	atomic_store(&l.stop, 1);
	pthread_join(th, NULL);
	pg_conn_close(c);
	free(r.lat);
}

/* --- overhead: streaming off and on --- */

static void overhead(pg_pool *pool, int n_seq, double *off_median, double *on_median)
{
	eng_graph *g = graph("bstr4", step_node, 4);
	eng_stream_hub *hub = NULL;
	bot_live *live = NULL;
	collector c;
	eng_options on = {.threads = 0};
	eng_engine *e_off = NULL, *e_on = NULL;
	double *off = calloc((size_t)n_seq, sizeof(double)), *onv = calloc((size_t)n_seq, sizeof(double));
	json_t *input = json_pack("{s:s,s:[]}", "topic", "bot", "log");
	bot_live_options lo = {.redis_url = getenv("REDIS_URL"),
			       .database_url = getenv("DATABASE_URL"), .publish = 1};
	char key[96], run_id[16];
	eng_result r;

	const char *how = getenv("OVERHEAD_MODE"); /* full (default), sub, tap, idle, none */
	eng_stream_sub *idle = NULL;

	util_rand_hex(run_id, 4);
	if (!how)
		how = "full";
	if (eng_stream_hub_new(&hub, NULL) < 0 ||
	    ((!strcmp(how, "full") || !strcmp(how, "tap")) && bot_live_start(&live, hub, &lo) < 0))
		die("hub");
	memset(&c, 0, sizeof(c));
	if (!strcmp(how, "full") || !strcmp(how, "sub")) {
		collector_start(&c, hub, "bover-", ENG_STREAM_DEFAULT, ENG_STREAM_CUSTOM, 16);
	} else if (!strcmp(how, "idle")) {
		/* subscribed, never read: what emitting costs without a reader's wake-ups */
		eng_stream_filter f = {.queue = 1 << 20};
		if (eng_stream_subscribe(hub, &f, &idle) < 0)
			die("subscribe");
	}
	on.sink = eng_stream_hub_sink(hub);
	if (eng_engine_new(&e_off, pool, NULL) < 0 || eng_engine_add_graph(e_off, g) < 0 ||
	    eng_engine_new(&e_on, pool, &on) < 0 || eng_engine_add_graph(e_on, g) < 0)
		die("engines");
	for (int i = -20; i < n_seq; i++) {
		for (int s = 0; s < 2; s++) {
			int64_t t0;
			snprintf(key, sizeof(key), "bover-%s-%d-%d", run_id, i + 20, s);
			t0 = util_mono_ns();
			if (eng_invoke(s ? e_on : e_off, "bstr4", key, input, 0, &r) < 0 ||
			    strcmp(r.status, "done") != 0)
				die("invocation");
			eng_result_clear(&r);
			if (i >= 0)
				(s ? onv : off)[i] = (double)(util_mono_ns() - t0) / 1e6;
		}
	}
	*off_median = pct(off, n_seq, 50);
	*on_median = pct(onv, n_seq, 50);
	eng_engine_free(e_off);
	eng_engine_free(e_on);
	if (c.sub)
		collector_stop(&c);
	eng_stream_unsubscribe(idle);
	bot_live_stop(live);
	eng_stream_hub_free(hub);
	eng_graph_free(g);
	json_decref(input);
	free(off);
	free(onv);
}

/* --- llm tokens --- */

static int llm_setup(const char *fake, int n_llm)
{
	llm_registry *reg = NULL;
	char models[1024];
	llm_options lopt;
	json_t *chunks = json_array(), *script;
	char *body;
	int rc;

	/* the fake streams n_llm chunks, 1 ms apart */
	for (int i = 0; i < n_llm; i++)
		json_array_append_new(chunks, json_pack("{s:s,s:[{s:i,s:{s:s},s:n}]}", "object",
							"chat.completion.chunk", "choices", "index", 0,
							"delta", "content", "tok ", "finish_reason"));
	json_array_append_new(chunks, json_pack("{s:s,s:[{s:i,s:{},s:s}]}", "object",
						"chat.completion.chunk", "choices", "index", 0, "delta",
						"finish_reason", "stop"));
	script = json_pack("{s:[],s:{s:o,s:i}}", "replies", "default", "stream", chunks,
			   "chunk_delay_ms", 1);
	body = json_dumps(script, JSON_COMPACT);
	json_decref(script);
	{
		char cmd[4096];
		FILE *f;
		snprintf(cmd, sizeof(cmd),
			 "curl -s -o /dev/null -X POST -H 'Content-Type: application/json' "
			 "--data-binary @- %s/__script", fake);
		f = popen(cmd, "w");
		if (!f)
			return err_set(ERR_IO, "cannot script the fake model");
		fputs(body, f);
		pclose(f);
	}
	free(body);
	snprintf(models, sizeof(models),
		 "{\"endpoints\": {\"fake\": {\"base_url\": \"%s/v1\", \"slots\": 64}}, "
		 "\"models\": {\"fake\": {\"endpoint\": \"fake\", \"max_output\": 4096}}}",
		 fake);
	rc = llm_registry_load_text(&reg, models, "bench");
	if (rc < 0)
		return rc;
	memset(&lopt, 0, sizeof(lopt));
	lopt.stats_interval_ms = -1;
	lopt.project_budget = lopt.user_budget = -1;
	return llm_service_new(&g_llm, reg, &lopt);
}

int main(void)
{
	const int n_seq = knob("N_STREAM_SEQ", 20), n_conc = knob("N_STREAM", 50);
	const int n_over = knob("N_SEQ", 200), n_tp = knob("N_TRANSPORT", 20000);
	const int n_llm = knob("N_LLM_TOK", 200);
	const char *url = getenv("DATABASE_URL"), *rurl = getenv("REDIS_URL");
	const char *fake = getenv("FAKE_LLM_URL");
	pg_pool *pool = NULL;
	eng_graph *gt;
	phase_i in = {0}, rd = {0}, li = {0}, lr = {0};
	tp_result tr = {0}, tpg = {0};
	double off_med = 0, on_med = 0;
	char pad[400];

	n_tok = knob("N_TOK", 200);
	log_configure(LOG_WARN, 1);
	if (!url || !rurl || util_init() < 0)
		die("set DATABASE_URL and REDIS_URL");
	g_threads = knob("ENGINE_THREADS", 8);
	if (pg_pool_new(&pool, url, g_threads + 8) < 0)
		die("database");
	g_pool = pool;
	gt = graph("btalker", talker, 1);
	if (getenv("ONLY_OVERHEAD")) {
		overhead(pool, n_over, &off_med, &on_med);
		printf("{\"off\": %.3f, \"on\": %.3f}\n", off_med, on_med);
		return 0;
	}

	/* I in-process */
	{
		eng_stream_hub *hub = NULL;
		collector c;
		eng_options o = {.threads = 0};
		eng_engine *e = NULL;
		if (eng_stream_hub_new(&hub, NULL) < 0)
			die("hub");
		collector_start(&c, hub, "bstr-", ENG_STREAM_UPDATES | ENG_STREAM_CUSTOM,
				ENG_STREAM_CUSTOM, (n_seq + n_conc + 5) * n_tok);
		o.sink = eng_stream_hub_sink(hub);
		if (eng_engine_new(&e, pool, &o) < 0 || eng_engine_add_graph(e, gt) < 0)
			die("engine");
		run_phase_i(e, gt, o.sink, &c, "in", n_seq, n_conc, &in);
		eng_engine_free(e);
		collector_stop(&c);
		eng_stream_hub_free(hub);
	}
	/* I through Redis: the engine's hub publishes, another hub subscribes */
	{
		eng_stream_hub *ha = NULL, *hb = NULL;
		bot_live *pa = NULL, *sb = NULL;
		bot_live_options po = {.redis_url = rurl, .database_url = url, .publish = 1,
				       .modes = ENG_STREAM_UPDATES | ENG_STREAM_CUSTOM};
		bot_live_options so = {.redis_url = rurl, .database_url = url, .subscribe = 1};
		collector c;
		eng_options o = {.threads = 0};
		eng_engine *e = NULL;
		if (eng_stream_hub_new(&ha, NULL) < 0 || eng_stream_hub_new(&hb, NULL) < 0 ||
		    bot_live_start(&pa, ha, &po) < 0 || bot_live_start(&sb, hb, &so) < 0 ||
		    bot_live_wait_ready(sb, 10000) < 0)
			die("redis");
		collector_start(&c, hb, "bstr-", ENG_STREAM_UPDATES | ENG_STREAM_CUSTOM,
				ENG_STREAM_CUSTOM, (n_seq + n_conc + 5) * n_tok);
		o.sink = eng_stream_hub_sink(ha);
		if (eng_engine_new(&e, pool, &o) < 0 || eng_engine_add_graph(e, gt) < 0)
			die("engine");
		run_phase_i(e, gt, o.sink, &c, "rd", n_seq, n_conc, &rd);
		eng_engine_free(e);
		collector_stop(&c);
		bot_live_stop(pa);
		bot_live_stop(sb);
		eng_stream_hub_free(ha);
		eng_stream_hub_free(hb);
	}
	/* the LLM layer's tokens */
	if (fake && *fake) {
		eng_graph *gl;
		if (llm_setup(fake, n_llm) < 0)
			die("llm");
		gl = graph("bllm", llm_node, 1);
		n_tok = n_llm;
		for (int via = 0; via < 2; via++) {
			eng_stream_hub *ha = NULL, *hb = NULL;
			bot_live *pa = NULL, *sb = NULL;
			bot_live_options po = {.redis_url = rurl, .database_url = url, .publish = 1,
					       .modes = ENG_STREAM_MESSAGES};
			bot_live_options so = {.redis_url = rurl, .database_url = url, .subscribe = 1};
			collector c;
			eng_options o = {.threads = 0};
			eng_engine *e = NULL;
			if (eng_stream_hub_new(&ha, NULL) < 0)
				die("hub");
			hb = ha;
			if (via && (eng_stream_hub_new(&hb, NULL) < 0 ||
				    bot_live_start(&pa, ha, &po) < 0 ||
				    bot_live_start(&sb, hb, &so) < 0 || bot_live_wait_ready(sb, 10000) < 0))
				die("redis");
			collector_start(&c, hb, "bstr-", ENG_STREAM_MESSAGES, ENG_STREAM_MESSAGES,
					(5 + 5 + 10) * n_llm);
			o.sink = eng_stream_hub_sink(ha);
			if (eng_engine_new(&e, pool, &o) < 0 || eng_engine_add_graph(e, gl) < 0)
				die("engine");
			run_phase_i(e, gl, o.sink, &c, via ? "lr" : "li", 5, 10, via ? &lr : &li);
			eng_engine_free(e);
			collector_stop(&c);
			bot_live_stop(pa);
			bot_live_stop(sb);
			if (hb != ha)
				eng_stream_hub_free(hb);
			eng_stream_hub_free(ha);
		}
		eng_graph_free(gl);
		llm_service_free(g_llm);
		n_tok = knob("N_TOK", 200);
	}
	/* the cost of streaming to the invocation */
	overhead(pool, n_over, &off_med, &on_med);
	/* transports, with a payload the size of a custom event's wire form */
	memset(pad, 'x', 240);
	pad[240] = '\0';
	transport_redis(rurl, n_tp, 2000, pad, &tr);
	transport_pg(url, n_tp, 2000, pad, &tpg);

	printf("{\"tokens_per_run\": %d, \"sequential_runs\": %d, \"concurrent_streams\": %d,\n"
	       " \"inproc\": {\"sequential_events_per_s\": %.0f, \"emit_to_consumer_median_ms\": %.4f, "
	       "\"emit_to_consumer_p99_ms\": %.4f, \"run_wall_median_ms\": %.3f, "
	       "\"concurrent_events_per_s\": %.0f, \"concurrent_wall_ms\": %.1f, "
	       "\"concurrent_median_ms\": %.4f, \"concurrent_p99_ms\": %.4f},\n"
	       " \"redis\": {\"sequential_events_per_s\": %.0f, \"emit_to_consumer_median_ms\": %.4f, "
	       "\"emit_to_consumer_p99_ms\": %.4f, \"run_wall_median_ms\": %.3f, "
	       "\"concurrent_events_per_s\": %.0f, \"concurrent_wall_ms\": %.1f, "
	       "\"concurrent_median_ms\": %.4f, \"concurrent_p99_ms\": %.4f},\n"
	       " \"llm_tokens\": {\"inproc_median_ms\": %.4f, \"inproc_p99_ms\": %.4f, "
	       "\"redis_median_ms\": %.4f, \"redis_p99_ms\": %.4f, \"tokens_per_call\": %d},\n"
	       " \"overhead\": {\"invocation_off_median_ms\": %.3f, \"invocation_on_median_ms\": %.3f},\n"
	       " \"transport\": {\"redis_burst_per_s\": %.0f, \"redis_paced_median_ms\": %.4f, "
	       "\"redis_paced_p99_ms\": %.4f, \"pg_notify_burst_per_s\": %.0f, "
	       "\"pg_notify_paced_median_ms\": %.4f, \"pg_notify_paced_p99_ms\": %.4f, "
	       "\"events\": %d}}\n",
	       n_tok, n_seq, n_conc, in.seq_events_per_s, in.seq_lat_median, in.seq_lat_p99,
	       in.seq_wall_median, in.conc_events_per_s, in.conc_wall_ms, in.conc_lat_median,
	       in.conc_lat_p99, rd.seq_events_per_s, rd.seq_lat_median, rd.seq_lat_p99,
	       rd.seq_wall_median, rd.conc_events_per_s, rd.conc_wall_ms, rd.conc_lat_median,
	       rd.conc_lat_p99, li.seq_lat_median, li.seq_lat_p99, lr.seq_lat_median,
	       lr.seq_lat_p99, n_llm, off_med, on_med, tr.burst_per_s, tr.paced_median,
	       tr.paced_p99, tpg.burst_per_s, tpg.paced_median, tpg.paced_p99, n_tp);
	eng_graph_free(gt);
	pg_pool_free(pool);
	return 0;
}
