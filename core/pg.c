#include "core/pg.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PG_MAX_PREPARED 128

struct pg_conn {
	PGconn *conn;
	int slot; /* index in the owning pool, -1 for a standalone connection */
	int nprepared;
	const pg_stmt *prepared[PG_MAX_PREPARED];
};

struct pg_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *url;
	int size;
	pg_conn **conns; /* NULL until first opened */
	char *busy;
};

static _Thread_local char t_sqlstate[6];
static _Thread_local pg_errclass t_class;

static atomic_llong g_statements, g_round_trips, g_prepares, g_connects;

void pg_stats_get(pg_stats *out)
{
	out->statements = atomic_load_explicit(&g_statements, memory_order_relaxed);
	out->round_trips = atomic_load_explicit(&g_round_trips, memory_order_relaxed);
	out->prepares = atomic_load_explicit(&g_prepares, memory_order_relaxed);
	out->connects = atomic_load_explicit(&g_connects, memory_order_relaxed);
}

static void count(atomic_llong *c, long long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

const char *pg_last_sqlstate(void)
{
	return t_sqlstate;
}

int pg_last_sqlstate_is(const char *code)
{
	return code && strcmp(t_sqlstate, code) == 0;
}

pg_errclass pg_errclass_of(const char *sqlstate)
{
	if (!sqlstate || strlen(sqlstate) != 5)
		return PG_ERRC_OTHER;
	if (strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
	    strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0)
		return PG_ERRC_CONNECTION;
	if (strncmp(sqlstate, "53", 2) == 0 || strncmp(sqlstate, "58", 2) == 0)
		return PG_ERRC_RESOURCES;
	if (strncmp(sqlstate, "23", 2) == 0)
		return PG_ERRC_CONSTRAINT;
	if (strncmp(sqlstate, "40", 2) == 0 || strcmp(sqlstate, "55P03") == 0)
		return PG_ERRC_SERIALIZATION;
	return PG_ERRC_OTHER;
}

pg_errclass pg_last_errclass(void)
{
	return t_class;
}

const char *pg_errclass_name(pg_errclass cls)
{
	switch (cls) {
	case PG_ERRC_NONE:
		return "none";
	case PG_ERRC_CONNECTION:
		return "connection";
	case PG_ERRC_RESOURCES:
		return "resources";
	case PG_ERRC_CONSTRAINT:
		return "constraint";
	case PG_ERRC_SERIALIZATION:
		return "serialization";
	case PG_ERRC_OTHER:
		return "other";
	}
	return "other";
}

void pg_last_error(pg_error *out)
{
	out->cls = t_class;
	memcpy(out->sqlstate, t_sqlstate, sizeof(out->sqlstate));
}

/* Forgets the last error (a statement succeeded). */
static void clear_error(void)
{
	t_sqlstate[0] = '\0';
	t_class = PG_ERRC_NONE;
}

/* Copies a libpq message without its trailing newline. */
static void trim_msg(const char *in, char *out, size_t cap)
{
	size_t n;

	snprintf(out, cap, "%s", in ? in : "");
	n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
}

/* Translates a failed result (or a NULL one) into ERR_DB. */
static int result_error(pg_conn *c, const PGresult *r, const char *what)
{
	char msg[768];
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	trim_msg(r ? PQresultErrorMessage(r) : PQerrorMessage(c->conn), msg, sizeof(msg));
	if (!msg[0])
		trim_msg(PQerrorMessage(c->conn), msg, sizeof(msg));
	snprintf(t_sqlstate, sizeof(t_sqlstate), "%s", state ? state : "");
	t_class = pg_errclass_of(t_sqlstate);
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		t_class = PG_ERRC_CONNECTION;
		return err_set(ERR_DB, "%s: lost the database connection (%s); will reconnect",
			       what, msg);
	}
	return err_set(ERR_DB, "%s: %s", what, msg[0] ? msg : "unknown database error");
}

static int result_ok(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static void notice_to_log(void *arg, const char *message)
{
	char msg[512];
	(void)arg;
	trim_msg(message, msg, sizeof(msg));
	log_debug("pg", "%s", msg);
}

void pg_url_redact(const char *url, char *out, size_t cap)
{
	const char *scheme = strstr(url, "://");
	const char *at, *colon, *pw;

	snprintf(out, cap, "%s", url);
	if (scheme) {
		at = strchr(scheme + 3, '@');
		colon = strchr(scheme + 3, ':');
		if (at && colon && colon < at)
			snprintf(out, cap, "%.*s:***%s", (int)(colon - url), url, at);
		return;
	}
	pw = strstr(url, "password=");
	if (pw) {
		const char *end = strchr(pw, ' ');
		snprintf(out, cap, "%.*spassword=***%s", (int)(pw - url), url, end ? end : "");
	}
}

int pg_conn_open(pg_conn **out, const char *url)
{
	pg_conn *c;
	char msg[512], safe[512];

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(ERR_NOMEM, "out of memory");
	c->slot = -1;
	c->conn = PQconnectdb(url);
	count(&g_connects, 1);
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
		trim_msg(c->conn ? PQerrorMessage(c->conn) : "out of memory", msg, sizeof(msg));
		pg_url_redact(url, safe, sizeof(safe));
		PQfinish(c->conn);
		free(c);
		t_sqlstate[0] = '\0';
		t_class = PG_ERRC_CONNECTION;
		return err_set(ERR_DB,
			       "cannot connect to PostgreSQL at %s: %s (is the server running? "
			       "`make services` starts the local one; check DATABASE_URL)",
			       safe, msg);
	}
	PQsetNoticeProcessor(c->conn, notice_to_log, NULL);
	*out = c;
	return 0;
}

void pg_conn_close(pg_conn *c)
{
	if (!c)
		return;
	PQfinish(c->conn);
	free(c);
}

PGconn *pg_conn_raw(pg_conn *c)
{
	return c->conn;
}

int pg_conn_broken(pg_conn *c)
{
	return !c || !c->conn || PQstatus(c->conn) == CONNECTION_BAD;
}

static int is_prepared(const pg_conn *c, const pg_stmt *st)
{
	for (int i = 0; i < c->nprepared; i++)
		if (c->prepared[i] == st)
			return 1;
	return 0;
}

/* Prepares `st` on `c` unless already done. Returns 1 when the statement is
 * prepared, 0 when the connection's table is full (run it unnamed). */
static int ensure_prepared(pg_conn *c, const pg_stmt *st, int *rc)
{
	PGresult *r;

	*rc = 0;
	if (is_prepared(c, st))
		return 1;
	if (c->nprepared >= PG_MAX_PREPARED)
		return 0;
	r = PQprepare(c->conn, st->name, st->sql, st->nparams, NULL);
	count(&g_prepares, 1);
	count(&g_round_trips, 1);
	if (!r || !result_ok(r)) {
		*rc = result_error(c, r, st->name);
		PQclear(r);
		return 0;
	}
	PQclear(r);
	c->prepared[c->nprepared++] = st;
	return 1;
}

static int finish_result(pg_conn *c, PGresult *r, PGresult **out, const char *what)
{
	int rc = 0;

	if (!r || !result_ok(r)) {
		rc = result_error(c, r, what);
		PQclear(r);
		if (out)
			*out = NULL;
		return rc;
	}
	clear_error();
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

int pg_exec(pg_conn *c, PGresult **out, const char *sql, int nparams,
	    const char *const *params)
{
	PGresult *r = PQexecParams(c->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	count(&g_statements, 1);
	count(&g_round_trips, 1);
	return finish_result(c, r, out, "query");
}

int pg_exec_stmt(pg_conn *c, PGresult **out, const pg_stmt *st, const char *const *params)
{
	PGresult *r;
	int rc;

	if (ensure_prepared(c, st, &rc))
		r = PQexecPrepared(c->conn, st->name, st->nparams, params, NULL, NULL, 0);
	else if (rc < 0)
		return rc;
	else
		r = PQexecParams(c->conn, st->sql, st->nparams, NULL, params, NULL, NULL, 0);
	count(&g_statements, 1);
	count(&g_round_trips, 1);
	return finish_result(c, r, out, st->name);
}

int pg_tx_end(pg_conn *c, int rc)
{
	char msg[1024];

	if (rc == 0)
		return pg_exec(c, NULL, "COMMIT", 0, NULL);
	snprintf(msg, sizeof(msg), "%s", err_last());
	pg_exec(c, NULL, "ROLLBACK", 0, NULL);
	return err_set(rc, "%s", msg);
}

int pg_query_json(pg_conn *c, const pg_stmt *st, const char *const *params, pg_json_empty empty,
		  json_t **out)
{
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, st, params);

	*out = NULL;
	if (rc == 0 && pg_rows(r) == 1 && !pg_isnull(r, 0, 0)) {
		*out = json_loads(pg_val(r, 0, 0), 0, NULL);
		if (!*out)
			rc = err_set(ERR_PARSE, "%s: the database's answer is not JSON", st->name);
	} else if (rc == 0 && empty == PG_JSON_ARRAY) {
		*out = json_array();
		if (!*out)
			rc = err_set(ERR_NOMEM, "out of memory");
	}
	PQclear(r);
	return rc;
}

int pg_exec_script(pg_conn *c, const char *sql)
{
	PGresult *r = PQexec(c->conn, sql);
	count(&g_statements, 1);
	count(&g_round_trips, 1);
	return finish_result(c, r, NULL, "script");
}

/* --- pipelines --- */

void pg_pipe_init(pg_pipe *p)
{
	memset(p, 0, sizeof(*p));
}

int pg_pipe_add(pg_pipe *p, const pg_stmt *st, const char *const *params)
{
	if (p->n >= PG_PIPE_MAX)
		return err_set(ERR_TOOBIG, "pipeline holds at most %d statements", PG_PIPE_MAX);
	p->stmts[p->n] = st;
	p->params[p->n] = params;
	p->res[p->n] = NULL;
	p->n++;
	return 0;
}

void pg_pipe_clear(pg_pipe *p)
{
	for (int i = 0; i < p->n; i++) {
		PQclear(p->res[i]);
		p->res[i] = NULL;
	}
	p->n = 0;
}

int pg_pipe_run(pg_pipe *p, pg_conn *c)
{
	int rc = 0, named[PG_PIPE_MAX];
	PGresult *r;

	for (int i = 0; i < p->n; i++) {
		named[i] = ensure_prepared(c, p->stmts[i], &rc);
		if (rc < 0)
			return rc;
	}
	if (!PQenterPipelineMode(c->conn))
		return result_error(c, NULL, "entering pipeline mode");
	for (int i = 0; i < p->n; i++) {
		const pg_stmt *st = p->stmts[i];
		int ok = named[i] ? PQsendQueryPrepared(c->conn, st->name, st->nparams,
							p->params[i], NULL, NULL, 0)
				  : PQsendQueryParams(c->conn, st->sql, st->nparams, NULL,
						      p->params[i], NULL, NULL, 0);
		if (!ok) {
			rc = result_error(c, NULL, st->name);
			goto done;
		}
	}
	if (!PQpipelineSync(c->conn)) {
		rc = result_error(c, NULL, "pipeline sync");
		goto done;
	}
	count(&g_statements, p->n);
	count(&g_round_trips, 1);

	for (int i = 0; i < p->n; i++) {
		PGresult *extra;

		r = PQgetResult(c->conn);
		if (!r) {
			if (rc == 0)
				rc = result_error(c, NULL, p->stmts[i]->name);
			goto done;
		}
		if (result_ok(r)) {
			p->res[i] = r;
		} else {
			if (rc == 0 && PQresultStatus(r) != PGRES_PIPELINE_ABORTED)
				rc = result_error(c, r, p->stmts[i]->name);
			PQclear(r);
		}
		/* each query's results end with a NULL */
		for (extra = PQgetResult(c->conn); extra; extra = PQgetResult(c->conn)) {
			if (PQresultStatus(extra) == PGRES_PIPELINE_SYNC) {
				PQclear(extra);
				goto synced;
			}
			PQclear(extra);
		}
	}
	r = PQgetResult(c->conn);
	if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
		if (rc == 0)
			rc = result_error(c, r, "pipeline sync");
		PQclear(r);
		goto done;
	}
	PQclear(r);
synced:
	if (rc == 0)
		clear_error();
done:
	if (PQpipelineStatus(c->conn) != PQ_PIPELINE_OFF && !PQexitPipelineMode(c->conn) &&
	    rc == 0)
		rc = result_error(c, NULL, "leaving pipeline mode");
	if (rc < 0) {
		for (int i = 0; i < p->n; i++) {
			PQclear(p->res[i]);
			p->res[i] = NULL;
		}
	}
	return rc;
}

/* --- pool --- */

int pg_pool_new(pg_pool **out, const char *url, int size)
{
	pg_pool *p;

	*out = NULL;
	if (size < 1)
		return err_set(ERR_INVALID, "pool size must be at least 1");
	p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	p->url = strdup(url);
	p->conns = calloc((size_t)size, sizeof(*p->conns));
	p->busy = calloc((size_t)size, 1);
	if (!p->url || !p->conns || !p->busy) {
		free(p->url);
		free(p->conns);
		free(p->busy);
		free(p);
		return err_set(ERR_NOMEM, "out of memory");
	}
	p->size = size;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	*out = p;
	return 0;
}

void pg_pool_free(pg_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->size; i++)
		pg_conn_close(p->conns[i]);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->conns);
	free(p->busy);
	free(p->url);
	free(p);
}

const char *pg_pool_url(const pg_pool *p)
{
	return p->url;
}

int pg_pool_acquire(pg_pool *p, int64_t timeout_ms, pg_conn **out)
{
	struct timespec deadline;
	int slot = -1, rc;
	pg_conn *c;

	*out = NULL;
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&p->mu);
	for (;;) {
		/* prefer a free slot that already holds a connection */
		for (int i = 0; i < p->size; i++)
			if (!p->busy[i] && p->conns[i]) {
				slot = i;
				break;
			}
		if (slot < 0)
			for (int i = 0; i < p->size; i++)
				if (!p->busy[i]) {
					slot = i;
					break;
				}
		if (slot >= 0)
			break;
		if (timeout_ms < 0) {
			pthread_cond_wait(&p->cv, &p->mu);
		} else if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
			pthread_mutex_unlock(&p->mu);
			return err_set(ERR_TIMEOUT, "no database connection free after %lld ms "
				       "(raise ORCH_DB_POOL)", (long long)timeout_ms);
		}
	}
	p->busy[slot] = 1;
	c = p->conns[slot];
	pthread_mutex_unlock(&p->mu);

	if (c && pg_conn_broken(c)) {
		pg_conn_close(c);
		c = NULL;
	}
	if (!c) {
		rc = pg_conn_open(&c, p->url);
		if (rc < 0) {
			pthread_mutex_lock(&p->mu);
			p->conns[slot] = NULL;
			p->busy[slot] = 0;
			pthread_cond_signal(&p->cv);
			pthread_mutex_unlock(&p->mu);
			return rc;
		}
		c->slot = slot;
	}
	pthread_mutex_lock(&p->mu);
	p->conns[slot] = c;
	pthread_mutex_unlock(&p->mu);
	*out = c;
	return 0;
}

void pg_pool_release(pg_pool *p, pg_conn *c)
{
	int slot;

	if (!c)
		return;
	slot = c->slot;
	if (pg_conn_broken(c) || PQtransactionStatus(c->conn) != PQTRANS_IDLE ||
	    PQpipelineStatus(c->conn) != PQ_PIPELINE_OFF) {
		pg_conn_close(c);
		c = NULL;
	}
	pthread_mutex_lock(&p->mu);
	if (slot >= 0 && slot < p->size) {
		p->conns[slot] = c;
		p->busy[slot] = 0;
	}
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* --- result helpers --- */

int pg_text_array(buf *out, const char *const *items, size_t n)
{
	int rc = buf_putc(out, '{');

	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *p = items[i];
		if (i)
			rc = buf_putc(out, ',');
		if (rc == 0)
			rc = buf_putc(out, '"');
		for (; rc == 0 && *p; p++) {
			if (*p == '"' || *p == '\\')
				rc = buf_putc(out, '\\');
			if (rc == 0)
				rc = buf_putc(out, *p);
		}
		if (rc == 0)
			rc = buf_putc(out, '"');
	}
	return rc == 0 ? buf_putc(out, '}') : rc;
}

const char *pg_val(const PGresult *r, int row, int col)
{
	if (!r || row < 0 || col < 0 || row >= PQntuples(r) || col >= PQnfields(r))
		return "";
	return PQgetvalue(r, row, col);
}

int pg_isnull(const PGresult *r, int row, int col)
{
	if (!r || row < 0 || col < 0 || row >= PQntuples(r) || col >= PQnfields(r))
		return 1;
	return PQgetisnull(r, row, col);
}

int64_t pg_int(const PGresult *r, int row, int col)
{
	const char *v = pg_val(r, row, col);
	char *end;
	long long n;

	if (!*v)
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end)
		return 0;
	return n;
}

int pg_rows(const PGresult *r)
{
	return r ? PQntuples(r) : 0;
}

int pg_affected(const PGresult *r)
{
	const char *s = r ? PQcmdTuples((PGresult *)r) : "";
	char *end;
	long n;

	if (!*s)
		return 0;
	n = strtol(s, &end, 10);
	return *end ? 0 : (int)n;
}
