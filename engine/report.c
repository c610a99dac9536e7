#include "engine/report.h"
#include "core/err.h"
#include "engine/control.h"

#include <stdio.h>
#include <string.h>

static const pg_stmt STMT_THREAD = {
	"eng_report_thread",
	"SELECT key, graph, metadata::text, to_char(created_at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS\"Z\"'), coalesce((SELECT x.status FROM runs x WHERE "
	"x.thread_id = t.id AND " ENG_SQL_NOT_HANDED_OFF("x") " ORDER BY x.id DESC LIMIT 1), "
	"'none'), EXISTS (SELECT 1 FROM events e WHERE e.thread_id = "
	"t.id AND e.key = 'cancel' AND e.consumed_at IS NULL) FROM threads t WHERE id = $1",
	1,
};

int eng_report_thread(pg_conn *c, int64_t thread_id, json_t **out)
{
	char tid[24];
	const char *params[1] = {tid};
	PGresult *r = NULL;
	int rc;

	*out = NULL;
	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &r, &STMT_THREAD, params);
	if (rc == 0 && pg_rows(r) == 0)
		rc = err_set(ERR_NOTFOUND, "no thread %lld", (long long)thread_id);
	if (rc == 0) {
		*out = json_pack("{s:s, s:s, s:o, s:s, s:s, s:b}", "key", pg_val(r, 0, 0), "graph",
				 pg_val(r, 0, 1), "metadata", json_loads(pg_val(r, 0, 2), 0, NULL),
				 "created", pg_val(r, 0, 3), "run", pg_val(r, 0, 4), "cancel_pending",
				 strcmp(pg_val(r, 0, 5), "t") == 0);
		if (!*out)
			rc = err_set(ERR_NOMEM, "out of memory");
	}
	PQclear(r);
	return rc;
}

static const pg_stmt STMT_LAST_RUN = {
	"eng_report_last_run",
	"SELECT id, status, coalesce(array_to_string(waiting_on, ','), ''), coalesce(error, '') "
	"FROM runs WHERE thread_id = $1 ORDER BY id DESC LIMIT 1",
	1,
};

int eng_report_last_run(pg_conn *c, int64_t thread_id, int64_t *out_run, char *status,
			size_t scap, char *waiting, size_t wcap, char *error, size_t ecap)
{
	char tid[24];
	const char *params[1] = {tid};
	PGresult *r = NULL;
	int rc;

	*out_run = 0;
	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &r, &STMT_LAST_RUN, params);
	if (rc == 0 && pg_rows(r) == 1) {
		*out_run = pg_int(r, 0, 0);
		snprintf(status, scap, "%s", pg_val(r, 0, 1));
		snprintf(waiting, wcap, "%s", pg_val(r, 0, 2));
		if (error)
			snprintf(error, ecap, "%s", pg_val(r, 0, 3));
	}
	PQclear(r);
	return rc;
}

/* The count a one-row statement returns, into *out_n. */
static int count_of(pg_conn *c, const pg_stmt *st, const char *const *params, int64_t *out_n)
{
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, st, params);

	*out_n = rc == 0 ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	return rc;
}

static const pg_stmt STMT_THREAD_COUNT = {
	"eng_report_thread_count", "SELECT count(*) FROM threads WHERE graph = $1", 1};

int eng_report_thread_count(pg_conn *c, const char *graph, int64_t *out_n)
{
	const char *params[1] = {graph};

	return count_of(c, &STMT_THREAD_COUNT, params, out_n);
}

static const pg_stmt STMT_PENDING_OUTBOX = {
	"eng_report_pending_outbox",
	"SELECT count(*) FROM outbox WHERE dest = $1 AND starts_with(kind, $2) AND "
	"state = 'pending'",
	2,
};

int eng_report_pending_outbox(pg_conn *c, const char *dest, const char *kind_prefix,
			      int64_t *out_n)
{
	const char *params[2] = {dest, kind_prefix};

	return count_of(c, &STMT_PENDING_OUTBOX, params, out_n);
}

static const pg_stmt STMT_LIVE_ENGINES = {
	"eng_report_live_engines",
	"SELECT count(*) FROM engines WHERE stopped_at IS NULL AND "
	"heartbeat_at > now() - make_interval(secs => $1::int)",
	1,
};

int eng_report_live_engines(pg_conn *c, int within_s, int64_t *out_n)
{
	char s[16];
	const char *params[1] = {s};

	snprintf(s, sizeof(s), "%d", within_s);
	return count_of(c, &STMT_LIVE_ENGINES, params, out_n);
}
