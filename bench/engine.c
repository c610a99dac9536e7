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
 * D  peak RSS of this process (the engine runs in it)
 *
 * DATABASE_URL names a migrated database. Prints one JSON object.
 */
#include "core/err.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/ctx.h"
#include "engine/engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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
	eng_engine_free(ec);

	getrusage(RUSAGE_SELF, &ru);
	printf("{\"invocation_median_ms\": %.3f, \"invocation_p99_ms\": %.3f, "
	       "\"invocation_median_ms_async\": %.3f, "
	       "\"sql_per_invocation\": %.2f, \"tx_per_invocation\": %.2f, "
	       "\"concurrent50_per_s\": %.1f, \"concurrent_round_trips_per_run\": %.2f, "
	       "\"engine_threads\": %d, "
	       "\"turn200_over_turn1\": %.3f, \"turn_first20_median_ms\": %.3f, "
	       "\"turn_last20_median_ms\": %.3f, \"resume_median_ms\": %.3f, "
	       "\"resume_p99_ms\": %.3f, \"peak_rss_mib\": %.1f}\n",
	       inv_median, inv_p99, inv_median_async, sql_per, tx_per, conc_rate, conc_rt_per_run, threads, turn_ratio, turn_first,
	       turn_last, resume_median, resume_p99, ru.ru_maxrss / 1024.0);
	json_decref(input);
	free(lat);
	pg_conn_close(c);
	pg_pool_free(pool);
	eng_graph_free(g);
	eng_graph_free(gi);
	return 0;
}
