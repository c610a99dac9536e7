#include "spawner/report.h"
#include "core/err.h"

#include <stdio.h>

static const pg_stmt STMT_WORKER = {
	"spw_report_worker",
	"SELECT coalesce(task, ''), coalesce(project, ''), state, coalesce(status, ''), "
	"coalesce(owner, ''), attempt, coalesce(result->>'reason', '') FROM workers WHERE id = $1",
	1,
};

int spw_report_worker(pg_conn *c, const char *id, int *found, spw_worker_info *out)
{
	const char *params[1] = {id};
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, &STMT_WORKER, params);

	*found = rc == 0 && pg_rows(r) > 0;
	if (*found) {
		snprintf(out->task, sizeof(out->task), "%s", pg_val(r, 0, 0));
		snprintf(out->project, sizeof(out->project), "%s", pg_val(r, 0, 1));
		snprintf(out->state, sizeof(out->state), "%s", pg_val(r, 0, 2));
		snprintf(out->status, sizeof(out->status), "%s", pg_val(r, 0, 3));
		snprintf(out->owner, sizeof(out->owner), "%s", pg_val(r, 0, 4));
		out->attempt = pg_int(r, 0, 5);
		snprintf(out->reason, sizeof(out->reason), "%s", pg_val(r, 0, 6));
	}
	PQclear(r);
	return rc;
}

static const pg_stmt STMT_WORKERS = {
	"spw_report_workers",
	"SELECT json_agg(json_build_object('id', id, 'task', task, 'mode', coalesce(request->>'mode', "
	"'work'), 'state', state, 'status', status, 'attempt', attempt, 'reason', "
	"result->>'reason', 'tests', result->'tests'->>'verdict', 'tokens_in', "
	"(result->'tokens'->>'in')::bigint, 'tokens_out', (result->'tokens'->>'out')::bigint, "
	"'cost_usd', (result->>'cost_usd')::float8, 'branch', result->>'branch', 'commit', "
	"result->>'commit', 'progress', progress, 'started', to_char(created_at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS\"Z\"')) ORDER BY created_at, id)::text FROM workers "
	"WHERE thread_id = $1",
	1,
};

int spw_report_workers(pg_conn *c, int64_t thread_id, json_t **out)
{
	char tid[24];
	const char *params[1] = {tid};

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	return pg_query_json(c, &STMT_WORKERS, params, PG_JSON_ARRAY, out);
}

static const pg_stmt STMT_WORKER_JSON = {
	"spw_report_worker_json",
	"SELECT json_build_object('id', id, 'task', task, 'project', project, 'state', state, "
	"'status', status, 'progress', progress, 'reason', result->>'reason', 'finished', "
	"state = 'finished')::text FROM workers WHERE id = $1",
	1,
};

int spw_report_worker_json(pg_conn *c, const char *id, json_t **out)
{
	const char *params[1] = {id};
	return pg_query_json(c, &STMT_WORKER_JSON, params, PG_JSON_NULL, out);
}

static const pg_stmt STMT_MERGE = {
	"spw_report_merge",
	"SELECT coalesce(request->>'repo', ''), coalesce(result->>'commit', '') FROM workers "
	"WHERE thread_id = $1::bigint AND task = $2 AND request->>'mode' = 'merge' AND "
	"status = 'done' ORDER BY finished_at DESC LIMIT 1",
	2,
};

int spw_report_merge(pg_conn *c, int64_t thread_id, const char *task, char *repo, size_t rcap,
		     char *commit, size_t ccap)
{
	char tid[24];
	const char *params[2] = {tid, task};
	PGresult *r = NULL;
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &r, &STMT_MERGE, params);
	snprintf(repo, rcap, "%s", rc == 0 && pg_rows(r) == 1 ? pg_val(r, 0, 0) : "");
	snprintf(commit, ccap, "%s", rc == 0 && pg_rows(r) == 1 ? pg_val(r, 0, 1) : "");
	PQclear(r);
	return rc;
}

static const pg_stmt STMT_WORKER_STATES = {
	"spw_report_worker_states",
	"SELECT coalesce(json_object_agg(state, n), '{}')::text FROM (SELECT state, count(*) AS n "
	"FROM workers WHERE state <> 'finished' GROUP BY state) s",
	0,
};

int spw_report_worker_states(pg_conn *c, json_t **out)
{
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, &STMT_WORKER_STATES, NULL);

	*out = rc == 0 && pg_rows(r) == 1 ? json_loads(pg_val(r, 0, 0), 0, NULL) : NULL;
	PQclear(r);
	if (rc == 0 && !*out)
		rc = err_set(ERR_NOMEM, "out of memory");
	return rc;
}

static const pg_stmt STMT_WORKER_DETAIL = {
	"spw_report_worker_detail",
	"SELECT json_build_object('id', id, 'task', task, 'project', project, 'mode', "
	"coalesce(request->>'mode', 'work'), 'state', state, 'status', status, 'attempt', "
	"attempt, 'reason', result->>'reason', 'tests', result->'tests'->>'verdict', 'branch', "
	"result->>'branch', 'progress', progress)::text FROM workers WHERE id = $1",
	1,
};

int spw_report_worker_detail(pg_conn *c, const char *id, json_t **out)
{
	const char *params[1] = {id};
	return pg_query_json(c, &STMT_WORKER_DETAIL, params, PG_JSON_NULL, out);
}
