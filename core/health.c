/* health — the registry of long-running parts and their state. */
#include "core/health.h"

#include "core/err.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/redact.h"
#include "core/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_MAX 64

typedef struct part {
	char name[64];
	health_state state;
	char reason[256];
	int64_t since_ms;
} part;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static part g_parts[HEALTH_MAX];
static int g_n;

static part *find(const char *name)
{
	for (int i = 0; i < g_n; i++) {
		if (strcmp(g_parts[i].name, name) == 0)
			return &g_parts[i];
	}
	return NULL;
}

const char *health_state_name(health_state st)
{
	switch (st) {
	case HEALTH_OK:
		return "ok";
	case HEALTH_DEGRADED:
		return "degraded";
	case HEALTH_DOWN:
		return "down";
	}
	return "unknown";
}

void health_report(const char *name, health_state st, const char *fmt, ...)
{
	char reason[256] = "";
	int changed = 0;
	int was_new = 0;
	health_state before = HEALTH_OK;

	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(reason, sizeof(reason), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_lock(&g_lock);
	part *p = find(name);
	if (!p && g_n < HEALTH_MAX) {
		p = &g_parts[g_n++];
		snprintf(p->name, sizeof(p->name), "%s", name);
		p->state = st;
		p->since_ms = util_wall_ms();
		was_new = 1;
	}
	if (p) {
		before = p->state;
		if (!was_new && p->state != st) {
			p->state = st;
			p->since_ms = util_wall_ms();
			changed = 1;
		}
		snprintf(p->reason, sizeof(p->reason), "%s", reason);
	}
	pthread_mutex_unlock(&g_lock);

	if (!p)
		return;
	if (was_new && st != HEALTH_OK)
		changed = 1;
	if (!changed)
		return;
	if (st == HEALTH_DOWN)
		log_error("health", "%s is down: %s", name, reason[0] ? reason : "no reason given");
	else if (st == HEALTH_DEGRADED)
		log_warn("health", "%s is degraded: %s", name, reason[0] ? reason : "no reason given");
	else if (before != HEALTH_OK)
		log_info("health", "%s is working again", name);
}

void health_forget(const char *name)
{
	pthread_mutex_lock(&g_lock);
	part *p = find(name);
	if (p) {
		*p = g_parts[g_n - 1];
		g_n--;
	}
	pthread_mutex_unlock(&g_lock);
}

health_state health_worst(void)
{
	health_state w = HEALTH_OK;

	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < g_n; i++) {
		if (g_parts[i].state > w)
			w = g_parts[i].state;
	}
	pthread_mutex_unlock(&g_lock);
	return w;
}

json_t *health_snapshot(void)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < g_n; i++) {
		json_t *e = json_pack("{s:s, s:s, s:I}", "state", health_state_name(g_parts[i].state),
				      "reason", g_parts[i].reason, "since_ms",
				      (json_int_t)g_parts[i].since_ms);
		if (!e || json_object_set_new(o, g_parts[i].name, e) < 0) {
			pthread_mutex_unlock(&g_lock);
			json_decref(o);
			return NULL;
		}
	}
	pthread_mutex_unlock(&g_lock);
	return o;
}

void health_reset(void)
{
	pthread_mutex_lock(&g_lock);
	g_n = 0;
	pthread_mutex_unlock(&g_lock);
}

/* --- publishing --- */

struct health_pub {
	pg_pool *pool;
	char id[160];
	char role[32];
	char host[64];
	int64_t period_ms;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stopping;
};

static const pg_stmt STMT_PUBLISH = {
	"health_publish",
	"INSERT INTO process_health (id, role, host, pid, worst, parts) "
	"VALUES ($1, $2, $3, $4::int, $5, $6::jsonb) ON CONFLICT (id) DO UPDATE SET "
	"worst = EXCLUDED.worst, parts = EXCLUDED.parts, updated_at = now()",
	6,
};

/* rows of processes that died without deleting theirs, after a day */
static const pg_stmt STMT_FORGET_OLD = {
	"health_forget_old",
	"DELETE FROM process_health WHERE updated_at < now() - interval '1 day'",
	0,
};

static const pg_stmt STMT_UNPUBLISH = {
	"health_unpublish",
	"DELETE FROM process_health WHERE id = $1",
	1,
};

static const pg_stmt STMT_HEALTH_STATUS = {
	"health_status",
	"SELECT coalesce(json_agg(json_build_object('process', id, 'role', role, 'host', host, "
	"'pid', pid, 'worst', worst, 'parts', parts, 'age_s', round(extract(epoch FROM now() - "
	"updated_at)::numeric, 1), 'alive', updated_at > now() - make_interval(secs => "
	"$1::bigint / 1000.0)) ORDER BY updated_at DESC), '[]')::text FROM process_health",
	1,
};

static void publish(health_pub *p, int first)
{
	json_t *snap = health_snapshot();
	char *raw = snap ? json_dumps(snap, JSON_COMPACT) : NULL;
	/* a reason may quote an error that holds a secret: filtered like a log line */
	char *parts = raw ? redact_str(raw) : NULL;
	char pid[16];
	const char *params[6] = {p->id, p->role, p->host, pid, health_state_name(health_worst()),
				 parts};
	pg_conn *c = NULL;

	json_decref(snap);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (parts && pg_pool_acquire(p->pool, 2000, &c) == 0) {
		if (pg_exec_stmt(c, NULL, &STMT_PUBLISH, params) < 0)
			log_debug("health", "publishing this process's health failed: %s", err_last());
		else if (first)
			pg_exec_stmt(c, NULL, &STMT_FORGET_OLD, NULL);
		pg_pool_release(p->pool, c);
	}
	err_clear();
	free(raw);
	free(parts);
}

static void *pub_main(void *arg)
{
	health_pub *p = arg;
	int first = 1;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		struct timespec ts;

		pthread_mutex_unlock(&p->mu);
		publish(p, first);
		first = 0;
		pthread_mutex_lock(&p->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += p->period_ms / 1000;
		ts.tv_nsec += (p->period_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!p->stopping)
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int health_pub_start(health_pub **out, pg_pool *pool, const char *role, int64_t period_ms)
{
	health_pub *p;
	char rnd[9];

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	p->pool = pool;
	p->period_ms = period_ms > 0 ? period_ms : 5000;
	snprintf(p->role, sizeof(p->role), "%s", role ? role : "process");
	if (gethostname(p->host, sizeof(p->host)) != 0)
		snprintf(p->host, sizeof(p->host), "localhost");
	p->host[sizeof(p->host) - 1] = '\0';
	util_rand_hex(rnd, 4);
	snprintf(p->id, sizeof(p->id), "%s-%s-%d-%s", p->role, p->host, (int)getpid(), rnd);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, pub_main, p) != 0) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		free(p);
		return err_set(ERR_IO, "cannot start the health publisher thread");
	}
	*out = p;
	return 0;
}

void health_pub_stop(health_pub *p)
{
	pg_conn *c = NULL;
	const char *params[1];

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	params[0] = p->id;
	if (pg_pool_acquire(p->pool, 2000, &c) == 0) {
		pg_exec_stmt(c, NULL, &STMT_UNPUBLISH, params);
		pg_pool_release(p->pool, c);
	}
	err_clear();
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

int health_status(pg_conn *c, int64_t stale_ms, json_t **out)
{
	char stale[24];
	const char *params[1] = {stale};
	PGresult *res = NULL;
	json_error_t jerr;
	int rc;

	*out = NULL;
	snprintf(stale, sizeof(stale), "%lld", (long long)(stale_ms > 0 ? stale_ms : 15000));
	rc = pg_exec_stmt(c, &res, &STMT_HEALTH_STATUS, params);
	if (rc == 0) {
		*out = json_loads(pg_val(res, 0, 0), 0, &jerr);
		if (!*out)
			rc = err_set(ERR_PARSE, "process health: %s", jerr.text);
	}
	PQclear(res);
	return rc;
}
