/*
 * bench/engine — the graph of ../shared/anchors/langgraphjs, on PostgreSQL
 * with default durability, measured the way its bench.mjs measures it:
 *
 *   START → brainstorm → architect → developer → reviewer → END, each node
 *   appending "<node>:ok" to a list (APPEND reducer), input
 *   {"topic": "bot", "log": []}, a fresh thread per invocation.
 *
 * A  sequential invocations (N_SEQ after N_WARM warm-up): median, p99; SQL
 *    statements and transactions per invocation (counted by the client: a
 *    pipeline is one transaction and one round trip)
 * C  50 concurrent invocations (N_CONC), CONC_ROUNDS rounds: queued in one
 *    statement and executed by the engine's worker threads (ENGINE_THREADS)
 * H  one thread, N_SEQ turns: median of the last 20 turns over the first 20
 *    (of a second thread, timed alternately with them)
 * F  the reviewer awaits an approval: invoke until it parks, then resume
 *    (eng_resume, timed), N_INTR rounds
 * S  what a /metrics scrape costs while the engine runs: the same 50
 *    concurrent invocations and sequential ones, in rounds that alternate
 *    between no scraper, a scraper every 100 ms and a scraper in a loop
 *    (GET /metrics on this process's listener, web/health.h, over loopback
 *    HTTP); the render's and the scrape's own time and size (SCRAPE_ROUNDS)
 * D  peak RSS of this process (the engine runs in it)
 *
 * DATABASE_URL names a migrated database. Prints one JSON object.
 */
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pg.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/ctx.h"
#include "engine/engine.h"
#include "web/health.h"
#include "web/web.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

static int node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	char entry[64];
	(void)state;
	(void)input;
	snprintf(entry, sizeof(entry), "%s:ok", eng_ctx_node(ctx));
	*update = json_pack("{s:[s]}", "log", entry);
	return 0;
}

static int reviewer_gate(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	json_t *v = NULL, *log = json_object_get(state, "log");
	char entry[64];
	int rc;
	(void)input;
	rc = eng_await(ctx, "approval",
		       json_pack("{s:s,s:O}", "question", "approve?", "draft",
				 json_array_get(log, json_array_size(log) - 1)),
		       &v);
	if (rc < 0)
		return rc;
	snprintf(entry, sizeof(entry), "reviewer:%s", json_string_value(v));
	json_decref(v);
	*update = json_pack("{s:[s]}", "log", entry);
	return 0;
}

static eng_graph *build(const char *name, int with_interrupt)
{
	static const char *names[] = {"brainstorm", "architect", "developer", "reviewer"};
	eng_graph *g = NULL;

	eng_graph_new(&g, name);
	for (int i = 0; i < 4; i++)
		eng_graph_add_node(g, names[i], i == 3 && with_interrupt ? reviewer_gate : node,
				   NULL, NULL);
	eng_graph_add_edge(g, ENG_START, names[0]);
	for (int i = 0; i < 3; i++)
		eng_graph_add_edge(g, names[i], names[i + 1]);
	eng_graph_add_edge(g, names[3], ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	if (eng_graph_compile(g) < 0) {
		fprintf(stderr, "bench: %s\n", err_last());
		exit(1);
	}
	return g;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	int i;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	i = (int)(p / 100.0 * n + 0.999999) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

static void die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, err_last());
	exit(1);
}

/* --- phase C: completion counting through the engine's hook --- */

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int done_count;

static void on_end(int64_t run, int64_t thread, const char *status, void *ud)
{
	(void)run;
	(void)thread;
	(void)ud;
	if (strcmp(status, "done") != 0)
		fprintf(stderr, "bench: a run ended %s\n", status);
	pthread_mutex_lock(&done_mu);
	done_count++;
	pthread_cond_signal(&done_cv);
	pthread_mutex_unlock(&done_mu);
}

/* --- phase S: a scraper of /metrics beside the engine --- */

enum { SCRAPE_OFF, SCRAPE_100MS, SCRAPE_LOOP, SCRAPE_MODES };

typedef struct scraper {
	char url[64];
	atomic_int mode, stop;
	pthread_mutex_t mu;
	double *ms;    /* each scrape's round trip, in loop mode */
	int n, cap;
	long count[SCRAPE_MODES];
	size_t bytes;
} scraper;

static void *scrape_main(void *arg)
{
	scraper *sc = arg;
	http_client *h = NULL;
	http_request rq = {.method = "GET", .url = sc->url, .timeout_ms = 10000};

	if (http_client_new(&h) < 0)
		die("scraper");
	while (!atomic_load(&sc->stop)) {
		int mode = atomic_load(&sc->mode);
		http_response r;
		int64_t t0;

		if (mode == SCRAPE_OFF) {
			util_sleep_ms(2);
			continue;
		}
		t0 = util_mono_ns();
		if (http_do(h, &rq, &r) < 0 || r.status != 200)
			die("a scrape of /metrics");
		pthread_mutex_lock(&sc->mu);
		sc->count[mode]++;
		sc->bytes = r.body.len;
		if (mode == SCRAPE_LOOP && sc->n < sc->cap)
			sc->ms[sc->n++] = (double)(util_mono_ns() - t0) / 1e6;
		pthread_mutex_unlock(&sc->mu);
		http_response_free(&r);
		if (mode == SCRAPE_100MS)
			util_sleep_ms(100);
	}
	http_client_free(h);
	return NULL;
}

/* One round of `waves` x n_conc concurrent invocations on `ec`; its
 * invocations per second. */
static double conc_round(eng_engine *ec, pg_conn *c, json_t *input, const char *run_id,
			 const char *tag, int waves, int n_conc)
{
	char key[96];
	int64_t t0 = util_mono_ns();

	(void)ec;
	for (int w = 0; w < waves; w++) {
		json_t *items = json_array();
		for (int j = 0; j < n_conc; j++) {
			snprintf(key, sizeof(key), "bench-%s-%s-%d-%d", run_id, tag, w, j);
			json_array_append_new(items, json_pack("{s:s,s:O}", "key", key, "input", input));
		}
		pthread_mutex_lock(&done_mu);
		done_count = 0;
		pthread_mutex_unlock(&done_mu);
		if (eng_start_many(c, "bench4", items, NULL) < 0)
			die("queue");
		pthread_mutex_lock(&done_mu);
		while (done_count < n_conc)
			pthread_cond_wait(&done_cv, &done_mu);
		pthread_mutex_unlock(&done_mu);
		json_decref(items);
	}
	return waves * n_conc / ((double)(util_mono_ns() - t0) / 1e9);
}

int main(void)
{
	const int n_seq = knob("N_SEQ", 200), n_warm = knob("N_WARM", 20);
	const int n_conc = knob("N_CONC", 50), rounds = knob("CONC_ROUNDS", 4);
	const int n_intr = knob("N_INTR", 100), threads = knob("ENGINE_THREADS", 8);
	const char *url = getenv("DATABASE_URL");
	char run_id[16], key[96];
	eng_graph *g = build("bench4", 0), *gi = build("bench4i", 1);
	eng_engine *e = NULL, *ec = NULL;
	eng_options copt = {.threads = threads, .cache_entries = -1};
	pg_pool *pool = NULL;
	pg_conn *c = NULL;
	pg_stats s0, s1, c0;
	double conc_rt_per_run;
	eng_result r;
	json_t *input = json_pack("{s:s,s:[]}", "topic", "bot", "log");
	double *lat = calloc((size_t)(n_seq + n_warm + n_intr + 64), sizeof(double));
	double inv_median, inv_p99, sql_per, tx_per, conc_rate, turn_ratio, resume_median;
	double inv_median_async;
	double first20[20], last20[20], resume_p99, turn_first, turn_last, conc_total_ms = 0;
	const int s_rounds = knob("SCRAPE_ROUNDS", 6), s_seq = 40;
	double s_conc[SCRAPE_MODES][64], s_lat[SCRAPE_MODES][64 * 40], s_conc_med[SCRAPE_MODES];
	double s_seq_med[SCRAPE_MODES], render_us = 0, scrape_med = 0, scrape_p99 = 0;
	double s_ratio[SCRAPE_MODES] = {1, 0, 0}, s_r[64], s_cpu[SCRAPE_MODES] = {0};
	double scrape_cpu_us = 0;
	size_t scrape_bytes = 0;
	long scrape_count[SCRAPE_MODES] = {0};
	struct rusage ru;

	log_configure(LOG_WARN, 1);
	if (!url || util_init() < 0)
		die("set DATABASE_URL");
	util_rand_hex(run_id, 4);
	if (pg_pool_new(&pool, url, threads + 8) < 0 || pg_conn_open(&c, url) < 0)
		die("database");
	if (eng_engine_new(&e, pool, NULL) < 0 || eng_engine_add_graph(e, g) < 0 ||
	    eng_engine_add_graph(e, gi) < 0 || eng_engine_start(e) < 0)
		die("engine");

	/* A: sequential invocations on fresh threads */
	for (int i = 0; i < n_warm + n_seq; i++) {
		int64_t t0;
		if (i == n_warm)
			pg_stats_get(&s0);
		snprintf(key, sizeof(key), "bench-%s-seq-%d", run_id, i);
		t0 = util_mono_ns();
		if (eng_invoke(e, "bench4", key, input, 0, &r) < 0 || strcmp(r.status, "done") != 0)
			die("sequential invocation");
		if (i >= n_warm)
			lat[i - n_warm] = (double)(util_mono_ns() - t0) / 1e6;
		eng_result_clear(&r);
	}
	pg_stats_get(&s1);
	sql_per = (double)(s1.statements - s0.statements) / n_seq;
	tx_per = (double)(s1.round_trips - s1.prepares - s0.round_trips + s0.prepares) / n_seq;
	inv_p99 = pct(lat, n_seq, 99);
	inv_median = pct(lat, n_seq, 50);

	/* A with durability async (ORCH_DURABILITY=async), beside the reference's
	 * durability "async": steps with nothing for the outside world do not
	 * wait for the disk; the run's last step does */
	{
		eng_options aopt = {.durability = ENG_DURABILITY_ASYNC};
		eng_engine *ea = NULL;

		if (eng_engine_new(&ea, pool, &aopt) < 0 || eng_engine_add_graph(ea, g) < 0)
			die("engine (async)");
		for (int i = 0; i < n_warm + n_seq; i++) {
			int64_t t0;
			snprintf(key, sizeof(key), "bench-%s-async-%d", run_id, i);
			t0 = util_mono_ns();
			if (eng_invoke(ea, "bench4", key, input, 0, &r) < 0 ||
			    strcmp(r.status, "done") != 0)
				die("sequential invocation (async)");
			if (i >= n_warm)
				lat[i - n_warm] = (double)(util_mono_ns() - t0) / 1e6;
			eng_result_clear(&r);
		}
		inv_median_async = pct(lat, n_seq, 50);
		eng_engine_free(ea);
	}

	/* H: one thread, many turns (the chat case). Thread "long" first grows to
	 * n_seq - 20 turns untimed; then its last 20 turns alternate with the first
	 * 20 turns of thread "short", so both sets are timed in the same moments
	 * of this shared machine and the ratio shows the growth, not the noise. */
	if (n_seq < 20)
		die("N_SEQ must be at least 20");
	for (int i = 0; i < n_seq - 20 + 40; i++) {
		int grow = i < n_seq - 20, on_long = grow || (i - (n_seq - 20)) % 2 == 1;
		json_t *in = json_pack("{s:s,s:[s]}", "topic", "turn", "log", "user");
		int64_t t0;
		double ms;
		snprintf(key, sizeof(key), "bench-%s-%s", run_id, on_long ? "long" : "short");
		t0 = util_mono_ns();
		if (eng_invoke(e, "bench4", key, in, 0, &r) < 0 || strcmp(r.status, "done") != 0)
			die("long thread");
		ms = (double)(util_mono_ns() - t0) / 1e6;
		if (!grow) {
			int k = (i - (n_seq - 20)) / 2;
			if (on_long)
				last20[k] = ms;
			else
				first20[k] = ms;
		}
		eng_result_clear(&r);
		json_decref(in);
	}
	turn_first = pct(first20, 20, 50);
	turn_last = pct(last20, 20, 50);
	turn_ratio = turn_last / turn_first;

	/* F: park on an approval, then resume */
	for (int i = 0; i < n_warm + n_intr; i++) {
		json_t *yes = json_string("approved");
		int64_t t0;
		snprintf(key, sizeof(key), "bench-%s-intr-%d", run_id, i);
		if (eng_invoke(e, "bench4i", key, input, 0, &r) < 0 || strcmp(r.status, "waiting") != 0)
			die("invoke until the wait");
		{
			int64_t tid = r.thread_id;
			eng_result_clear(&r);
			t0 = util_mono_ns();
			if (eng_resume(e, tid, "approval", yes, 0, &r) < 0 ||
			    strcmp(r.status, "done") != 0)
				die("resume");
		}
		if (i >= n_warm)
			lat[i - n_warm] = (double)(util_mono_ns() - t0) / 1e6;
		eng_result_clear(&r);
		json_decref(yes);
	}
	resume_p99 = pct(lat, n_intr, 99);
	resume_median = pct(lat, n_intr, 50);
	eng_engine_free(e);

	/* C: concurrent invocations through the queue and the worker threads */
	copt.on_run_end = on_end;
	if (eng_engine_new(&ec, pool, &copt) < 0 || eng_engine_add_graph(ec, g) < 0 ||
	    eng_engine_start(ec) < 0)
		die("engine");
	pg_stats_get(&c0);
	for (int rnd = -1; rnd < rounds; rnd++) {
		json_t *items = json_array();
		int64_t t0;
		for (int j = 0; j < n_conc; j++) {
			snprintf(key, sizeof(key), "bench-%s-c%d-%d", run_id, rnd, j);
			json_array_append_new(items, json_pack("{s:s,s:O}", "key", key, "input", input));
		}
		pthread_mutex_lock(&done_mu);
		done_count = 0;
		pthread_mutex_unlock(&done_mu);
		t0 = util_mono_ns();
		if (eng_start_many(c, "bench4", items, NULL) < 0)
			die("queue");
		pthread_mutex_lock(&done_mu);
		while (done_count < n_conc)
			pthread_cond_wait(&done_cv, &done_mu);
		pthread_mutex_unlock(&done_mu);
		if (rnd >= 0)
			conc_total_ms += (double)(util_mono_ns() - t0) / 1e6;
		json_decref(items);
	}
	conc_rate = n_conc * rounds / (conc_total_ms / 1000.0);
	pg_stats_get(&s1);
	conc_rt_per_run = (double)(s1.round_trips - s1.prepares - c0.round_trips + c0.prepares) /
			  (n_conc * (rounds + 1));

	getrusage(RUSAGE_SELF, &ru); /* D, before S adds its listener and scraper */

	/* S: the same engine with and without a scraper of /metrics, rounds
	 * alternating between the modes so that each sees the same moments of
	 * this shared machine */
	{
		web_server *ws = NULL;
		web_health *wh = NULL;
		web_health_opts ho = {.role = "bench", .db_metrics_ms = -1};
		scraper sc;
		pthread_t th;
		int rounds_s = s_rounds > 64 ? 64 : s_rounds;
		buf b;

		memset(&sc, 0, sizeof(sc));
		pthread_mutex_init(&sc.mu, NULL);
		sc.cap = 100000;
		sc.ms = calloc((size_t)sc.cap, sizeof(double));
		if (!sc.ms || web_server_new(&ws, "127.0.0.1:0") < 0 ||
		    web_health_start(&wh, ws, &ho) < 0 || web_server_start(ws) < 0)
			die("the metrics listener");
		snprintf(sc.url, sizeof(sc.url), "http://127.0.0.1:%d/metrics", web_server_port(ws));
		if (pthread_create(&th, NULL, scrape_main, &sc) != 0)
			die("the scraper thread");
		for (int rnd = 0; rnd < rounds_s; rnd++)
			for (int k = 0; k < SCRAPE_MODES; k++) {
				int mode = (rnd + k) % SCRAPE_MODES;
				char tag[32];

				struct timespec cpu0, cpu1;

				atomic_store(&sc.mode, mode);
				clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
				snprintf(tag, sizeof(tag), "s%d-%d", mode, rnd);
				s_conc[mode][rnd] = conc_round(ec, c, input, run_id, tag, 4, n_conc);
				for (int i = 0; i < s_seq; i++) {
					int64_t t0;
					snprintf(key, sizeof(key), "bench-%s-s%d-%d-seq-%d", run_id, mode,
						 rnd, i);
					t0 = util_mono_ns();
					if (eng_invoke(ec, "bench4", key, input, 0, &r) < 0 ||
					    strcmp(r.status, "done") != 0)
						die("sequential invocation (scrape)");
					s_lat[mode][rnd * s_seq + i] = (double)(util_mono_ns() - t0) / 1e6;
					eng_result_clear(&r);
				}
				clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
				s_cpu[mode] += (double)(cpu1.tv_sec - cpu0.tv_sec) * 1e6 +
					       (double)(cpu1.tv_nsec - cpu0.tv_nsec) / 1e3;
			}
		atomic_store(&sc.mode, SCRAPE_OFF);
		atomic_store(&sc.stop, 1);
		pthread_join(th, NULL);
		/* each round's throughput over the same round's without a scraper:
		 * pairs measured moments apart, so the machine's drift cancels */
		for (int m = 1; m < SCRAPE_MODES; m++) {
			for (int rnd = 0; rnd < rounds_s; rnd++)
				s_r[rnd] = s_conc[m][rnd] / s_conc[SCRAPE_OFF][rnd];
			s_ratio[m] = pct(s_r, rounds_s, 50);
		}
		for (int m = 0; m < SCRAPE_MODES; m++) {
			s_conc_med[m] = pct(s_conc[m], rounds_s, 50);
			s_seq_med[m] = pct(s_lat[m], rounds_s * s_seq, 50);
			scrape_count[m] = sc.count[m];
		}
		if (sc.n > 0) {
			scrape_med = pct(sc.ms, sc.n, 50);
			scrape_p99 = pct(sc.ms, sc.n, 99);
		}
		scrape_bytes = sc.bytes;
		/* the same engine work with and without scrapes in a loop: the
		 * process's extra CPU per scrape (listener and client both) */
		if (sc.count[SCRAPE_LOOP] > 0)
			scrape_cpu_us = (s_cpu[SCRAPE_LOOP] - s_cpu[SCRAPE_OFF]) / sc.count[SCRAPE_LOOP];
		/* the render alone: what a scrape costs the process, past HTTP */
		buf_init(&b, 64 << 20);
		for (int i = 0; i < 200 && i < sc.cap; i++) {
			int64_t t0 = util_mono_ns();
			buf_reset(&b);
			if (met_render(&b) < 0)
				die("met_render");
			sc.ms[i] = (double)(util_mono_ns() - t0) / 1e3;
		}
		render_us = pct(sc.ms, 200, 50);
		buf_free(&b);
		web_server_free(ws);
		web_health_free(wh);
		free(sc.ms);
		pthread_mutex_destroy(&sc.mu);
	}
	eng_engine_free(ec);

	printf("{\"invocation_median_ms\": %.3f, \"invocation_p99_ms\": %.3f, "
	       "\"invocation_median_ms_async\": %.3f, "
	       "\"sql_per_invocation\": %.2f, \"tx_per_invocation\": %.2f, "
	       "\"concurrent50_per_s\": %.1f, \"concurrent_round_trips_per_run\": %.2f, "
	       "\"engine_threads\": %d, "
	       "\"turn200_over_turn1\": %.3f, \"turn_first20_median_ms\": %.3f, "
	       "\"turn_last20_median_ms\": %.3f, \"resume_median_ms\": %.3f, "
	       "\"resume_p99_ms\": %.3f, \"peak_rss_mib\": %.1f, "
	       "\"scrape_render_us\": %.1f, \"scrape_http_median_ms\": %.3f, "
	       "\"scrape_http_p99_ms\": %.3f, \"scrape_bytes\": %zu, \"scrape_cpu_us\": %.1f, "
	       "\"scrapes_loop\": %ld, \"scrapes_100ms\": %ld, "
	       "\"concurrent50_per_s_no_scraper\": %.1f, \"concurrent50_per_s_scrape_100ms\": %.1f, "
	       "\"concurrent50_per_s_scrape_loop\": %.1f, \"concurrent50_ratio_scrape_100ms\": %.3f, "
	       "\"concurrent50_ratio_scrape_loop\": %.3f, \"invocation_median_ms_no_scraper\": %.3f, "
	       "\"invocation_median_ms_scrape_100ms\": %.3f, "
	       "\"invocation_median_ms_scrape_loop\": %.3f}\n",
	       inv_median, inv_p99, inv_median_async, sql_per, tx_per, conc_rate, conc_rt_per_run, threads, turn_ratio, turn_first,
	       turn_last, resume_median, resume_p99, ru.ru_maxrss / 1024.0, render_us, scrape_med,
	       scrape_p99, scrape_bytes, scrape_cpu_us, scrape_count[SCRAPE_LOOP], scrape_count[SCRAPE_100MS],
	       s_conc_med[SCRAPE_OFF], s_conc_med[SCRAPE_100MS], s_conc_med[SCRAPE_LOOP],
	       s_ratio[SCRAPE_100MS], s_ratio[SCRAPE_LOOP], s_seq_med[SCRAPE_OFF], s_seq_med[SCRAPE_100MS], s_seq_med[SCRAPE_LOOP]);
	json_decref(input);
	free(lat);
	pg_conn_close(c);
	pg_pool_free(pool);
	eng_graph_free(g);
	eng_graph_free(gi);
	return 0;
}
