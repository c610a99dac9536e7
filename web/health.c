/* web/health — /healthz, /metrics and the prober. See health.h. */
#include "web/health.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/redis.h"
#include "core/util.h"
#include "engine/report.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct web_health {
	char role[32];
	pg_pool *pool;
	char *redis_url;
	rds_conn *redis;
	int64_t interval_ms, db_ms, last_db_ms;
	pthread_t thread;
	int started;
	atomic_int stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	met_family *probe_s, *runs, *backlog, *age, *dead, *workers, *up;
	web_counts_fn worker_counts; /* NULL: no workers gauge */
};

static int healthz(web_request *rq, void *udata)
{
	web_health *h = udata;
	json_t *parts = health_snapshot(), *body, *down = json_array(), *v;
	const char *name;
	health_state worst = health_worst();
	int rc;

	if (!parts || !down) {
		json_decref(parts);
		json_decref(down);
		return err_set(ERR_NOMEM, "out of memory");
	}
	json_object_foreach(parts, name, v)
		if (strcmp(json_string_value(json_object_get(v, "state")), "down") == 0)
			json_array_append_new(down, json_string(name));
	body = json_pack("{s:s,s:s,s:o,s:o}", "status", worst == HEALTH_DOWN ? "down"
							: worst == HEALTH_DEGRADED ? "degraded" : "ok",
			 "role", h->role, "parts", parts, "down", down);
	if (!body)
		return err_set(ERR_NOMEM, "out of memory");
	rc = web_reply_json(rq, worst == HEALTH_DOWN ? 503 : 200, body);
	json_decref(body);
	return rc;
}

static int metrics(web_request *rq, void *udata)
{
	buf b;
	int rc;

	(void)udata;
	buf_init(&b, 64 << 20);
	rc = met_render(&b);
	if (rc == 0)
		rc = web_reply(rq, 200, "text/plain; version=0.0.4; charset=utf-8",
			       b.data ? b.data : "", b.len);
	buf_free(&b);
	return rc;
}

/* Figures {label: count} into gauge `f`; series absent from them are set
 * to 0 by `zero` first. `fig` NULL: the query failed (logged), nothing
 * changes but the zeros. */
static void gauge_counts(met_family *f, const json_t *fig, const char *const *zero)
{
	const char *label;
	json_t *v;

	for (int i = 0; zero && zero[i]; i++)
		met_set(met_with(f, zero[i]), 0);
	json_object_foreach((json_t *)fig, label, v)
		met_set(met_with(f, label), json_number_value(v));
}

/* The database-wide gauges: runs by status and the outbox's backlog through
 * engine/report.h, workers through the hook the program installed. */
static void gauge_db(web_health *h, pg_conn *c)
{
	static const char *const states[] = {"queued", "running", "waiting", "done",
					     "failed", "cancelled", NULL};
	static const char *const kinds[] = {"telegram.send", "spawn", NULL};
	json_t *fig = NULL, *v;
	const char *kind;

	if (eng_report_run_counts(c, &fig) < 0)
		log_warn("web", "metrics query failed: %s", err_last());
	gauge_counts(h->runs, fig, states);
	json_decref(fig);
	fig = NULL;
	for (int i = 0; kinds[i]; i++) {
		met_set(met_with(h->backlog, kinds[i]), 0);
		met_set(met_with(h->age, kinds[i]), 0);
		met_set(met_with(h->dead, kinds[i]), 0);
	}
	if (eng_report_outbox_backlog(c, &fig) < 0)
		log_warn("web", "metrics query failed: %s", err_last());
	json_object_foreach(fig, kind, v) {
		met_set(met_with(h->backlog, kind), json_number_value(json_object_get(v, "pending")));
		met_set(met_with(h->age, kind), json_number_value(json_object_get(v, "oldest_s")));
		met_set(met_with(h->dead, kind), json_number_value(json_object_get(v, "dead")));
	}
	json_decref(fig);
	fig = NULL;
	if (!h->worker_counts)
		return;
	if (h->worker_counts(c, &fig) < 0)
		log_warn("web", "metrics query failed: %s", err_last());
	gauge_counts(h->workers, fig, NULL);
	json_decref(fig);
}

static void probe_db(web_health *h)
{
	pg_conn *c = NULL;
	int64_t t0 = util_mono_ms();
	int rc = pg_pool_acquire(h->pool, 2000, &c);

	if (rc == 0)
		rc = pg_exec(c, NULL, "SELECT 1", 0, NULL);
	met_set(met_with(h->probe_s, "postgres"), (double)(util_mono_ms() - t0) / 1000.0);
	met_set(met_with(h->up, "postgres"), rc == 0);
	if (rc < 0) {
		health_report("postgres", HEALTH_DOWN, "%s", err_last());
	} else {
		health_report("postgres", HEALTH_OK, NULL);
		if (h->db_ms > 0 && util_mono_ms() - h->last_db_ms >= h->db_ms) {
			h->last_db_ms = util_mono_ms();
			gauge_db(h, c);
		}
	}
	if (c)
		pg_pool_release(h->pool, c);
}

static void probe_redis(web_health *h)
{
	int64_t t0 = util_mono_ms();
	int rc = 0;

	if (!h->redis)
		rc = rds_connect(&h->redis, h->redis_url, 1);
	if (rc == 0) {
		rds_set_timeout(h->redis, 2000);
		rc = rds_cmd(h->redis, NULL, "PING", NULL);
	}
	met_set(met_with(h->probe_s, "redis"), (double)(util_mono_ms() - t0) / 1000.0);
	met_set(met_with(h->up, "redis"), rc == 0);
	if (rc < 0)
		health_report("redis", HEALTH_DOWN, "%s", err_last());
	else
		health_report("redis", HEALTH_OK, NULL);
}

static void probe(web_health *h)
{
	if (h->pool)
		probe_db(h);
	if (h->redis_url)
		probe_redis(h);
}

static void *prober(void *arg)
{
	web_health *h = arg;

	pthread_mutex_lock(&h->lock);
	while (!atomic_load(&h->stop)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += h->interval_ms / 1000;
		ts.tv_nsec += (h->interval_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&h->cond, &h->lock, &ts);
		if (atomic_load(&h->stop))
			break;
		pthread_mutex_unlock(&h->lock);
		probe(h);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int web_health_start(web_health **out, web_server *s, const web_health_opts *o)
{
	web_health *h = calloc(1, sizeof(*h));
	int rc;

	*out = NULL;
	if (!h)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(h->role, sizeof(h->role), "%s", o->role ? o->role : "orchestrator");
	h->pool = o->pool;
	h->worker_counts = o->worker_counts;
	h->interval_ms = o->interval_ms > 0 ? o->interval_ms : 5000;
	h->db_ms = o->db_metrics_ms == 0 ? 15000 : o->db_metrics_ms;
	h->redis_url = o->redis_url ? strdup(o->redis_url) : NULL;
	if (o->redis_url && !h->redis_url) {
		free(h);
		return err_set(ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->probe_s = met_gauge("orch_probe_duration_seconds",
			       "how long the last health probe of a dependency took", "dependency");
	h->up = met_gauge("orch_dependency_up", "1 when the last probe of a dependency succeeded",
			  "dependency");
	h->runs = met_gauge("orch_runs", "runs by state (database-wide)", "state");
	h->backlog = met_gauge("orch_outbox_backlog", "outbox rows waiting to be delivered, by kind",
			       "kind");
	h->age = met_gauge("orch_outbox_oldest_age_seconds",
			   "age of the oldest outbox row waiting to be delivered, by kind", "kind");
	h->dead = met_gauge("orch_outbox_dead_letters",
			    "outbox rows given up after their retries (dead letters), by kind", "kind");
	h->workers = met_gauge("orch_workers", "workers not finished, by state (database-wide)", "state");
	rc = web_route(s, "GET", "/healthz", 0, healthz, h);
	if (rc == 0)
		rc = web_route(s, "GET", "/metrics", 0, metrics, h);
	if (rc < 0) {
		web_health_free(h);
		return rc;
	}
	probe(h);
	if (pthread_create(&h->thread, NULL, prober, h) != 0) {
		web_health_free(h);
		return err_set(ERR_IO, "cannot start the health prober's thread");
	}
	h->started = 1;
	*out = h;
	return 0;
}

void web_health_free(web_health *h)
{
	if (!h)
		return;
	if (h->started) {
		pthread_mutex_lock(&h->lock);
		atomic_store(&h->stop, 1);
		pthread_cond_signal(&h->cond);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->thread, NULL);
	}
	if (h->pool)
		health_forget("postgres");
	if (h->redis_url)
		health_forget("redis");
	rds_free(h->redis);
	free(h->redis_url);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h);
}
