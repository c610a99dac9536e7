#include "tests/support/support.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ts_init(void)
{
	const char *lvl = getenv("ORCH_LOG_LEVEL");
	int level = lvl ? log_level_parse(lvl) : LOG_WARN;

	if (util_init() < 0 || http_global_init() < 0) {
		fprintf(stderr, "test init failed: %s\n", err_last());
		exit(1);
	}
	log_configure(level < 0 ? LOG_WARN : level, 1);
}

const char *ts_db_url(void)
{
	const char *u = getenv("DATABASE_URL");

	if (!u || !*u)
		fail_msg("DATABASE_URL is not set: run the tests through `make test`");
	return u;
}

pg_conn *ts_conn(void)
{
	pg_conn *c = NULL;

	if (pg_conn_open(&c, ts_db_url()) < 0)
		fail_msg("cannot connect to the test database: %s", err_last());
	return c;
}

pg_pool *ts_pool(int size)
{
	pg_pool *p = NULL;

	if (pg_pool_new(&p, ts_db_url(), size) < 0)
		fail_msg("cannot create a pool: %s", err_last());
	return p;
}

int64_t ts_sql_int(pg_conn *c, const char *sql)
{
	PGresult *r = NULL;
	int64_t v;

	if (pg_exec(c, &r, sql, 0, NULL) < 0)
		fail_msg("SQL failed: %s: %s", sql, err_last());
	v = pg_int(r, 0, 0);
	PQclear(r);
	return v;
}

void ts_sql(pg_conn *c, const char *sql)
{
	if (pg_exec_script(c, sql) < 0)
		fail_msg("SQL failed: %s: %s", sql, err_last());
}

const char *ts_bin(void)
{
	const char *b = getenv("ORCH_BIN");
	return b && *b ? b : "bin/orchestrator";
}

void ts_prog(const char *name, char *out, size_t cap)
{
	const char *b = getenv("ORCH_BUILD");
	snprintf(out, cap, "%s/tests/progs/%s", b && *b ? b : "build", name);
}

json_t *ts_json(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

	if (!j)
		fail_msg("bad JSON in test: %s (%s)", e.text, text);
	return j;
}

int ts_wait_for(int (*cond)(void *), void *udata, int64_t timeout_ms)
{
	int64_t until = util_mono_ms() + timeout_ms;
	int v;

	while (!(v = cond(udata)) && util_mono_ms() < until)
		util_sleep_ms(10);
	return v;
}

typedef struct await_arg {
	pg_conn *c;
	const char *sql;
	int64_t want;
} await_arg;

static int sql_reaches(void *p)
{
	await_arg *a = p;
	return ts_sql_int(a->c, a->sql) == a->want;
}

void ts_await_sql(pg_conn *c, const char *sql, int64_t want, int64_t timeout_ms)
{
	await_arg a = {c, sql, want};

	if (!ts_wait_for(sql_reaches, &a, timeout_ms))
		fail_msg("timed out waiting for %s = %lld (got %lld)", sql, (long long)want,
			 (long long)ts_sql_int(c, sql));
}
