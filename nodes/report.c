#include "nodes/report.h"
#include "core/err.h"
#include "engine/control.h"
#include "engine/report.h"
#include "llm/ledger.h"
#include "nodes/factory.h"
#include "nodes/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* $2 NULL: every project of the graph; else the one thread. Every project
 * that waits for an answer from its person (an open question, one still
 * being sent, or a run waiting for the person's reply and no worker) comes
 * first and is always listed; the others fill up to $3 rows (< 0: all),
 * most recently updated first. The last columns: waits, how many projects
 * there are in all. */
static const pg_stmt STMT_PROJECTS = {
	"nd_report_projects",
	"WITH p AS (SELECT t.id, t.key, t.metadata, t.updated_at, "
	"(EXISTS (SELECT 1 FROM approvals a WHERE a.thread_id = t.id AND a.state = 'pending' "
	"AND a.expires_at > now()) OR EXISTS (SELECT 1 FROM outbox o WHERE o.thread_id = t.id "
	"AND o.kind LIKE '%.approval' AND o.state = 'pending' AND NOT EXISTS (SELECT 1 FROM "
	"approvals a2 WHERE a2.outbox_id = o.id)) OR EXISTS (SELECT 1 FROM runs w WHERE "
	"w.thread_id = t.id AND w.status = 'waiting' AND 'input' = ANY (w.waiting_on) AND NOT "
	"'worker' = ANY (w.waiting_on))) AS waits "
	"FROM threads t WHERE t.graph = $1 AND ($2::bigint IS NULL OR t.id = $2::bigint)), "
	"q AS (SELECT p.*, row_number() OVER (PARTITION BY p.waits ORDER BY p.updated_at DESC, "
	"p.id DESC) AS rn, count(*) FILTER (WHERE p.waits) OVER () AS nwait, count(*) OVER () "
	"AS total FROM p) "
	"SELECT q.id, q.key, coalesce(q.metadata->>'title', ''), coalesce(r.status, 'none'), "
	"0, 0, 0, "
	"(SELECT count(*) FROM workers w WHERE w.thread_id = q.id AND w.state = 'running'), "
	"EXISTS (SELECT 1 FROM events e WHERE e.thread_id = q.id AND e.key = 'cancel' "
	"AND e.consumed_at IS NULL), to_char(q.updated_at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS\"Z\"'), q.waits, q.total FROM q "
	"LEFT JOIN LATERAL (SELECT x.status FROM runs x WHERE x.thread_id = q.id AND "
	ENG_SQL_NOT_HANDED_OFF("x") " ORDER BY x.id DESC LIMIT 1) r ON true "
	"WHERE q.waits OR $3::int < 0 OR q.rn <= $3::int - q.nwait "
	"ORDER BY q.waits DESC, q.updated_at DESC, q.id DESC",
	3,
};

static const pg_stmt STMT_QUESTIONS = {
	"nd_report_questions",
	"SELECT a.id, t.key, a.question, a.channel FROM approvals a JOIN threads t ON "
	"t.id = a.thread_id WHERE a.state = 'pending' AND a.expires_at > now() AND t.graph = $1 "
	"ORDER BY a.id",
	1,
};

static const pg_stmt STMT_UNSHOWN = {
	"nd_report_unshown",
	"SELECT t.key, o.payload->>'question' FROM outbox o JOIN threads t ON t.id = o.thread_id "
	"WHERE o.kind LIKE '%.approval' AND o.state = 'pending' AND t.graph = $1 AND NOT EXISTS "
	"(SELECT 1 FROM approvals a WHERE a.outbox_id = o.id) ORDER BY o.id",
	1,
};

/* One project's open questions: those shown (approval id) first, then those
 * still in the outbox; options as their labels. */
static const pg_stmt STMT_OPEN = {
	"nd_report_open",
	"SELECT id, question, channel, options FROM ("
	"SELECT a.id, a.question, a.channel, (SELECT coalesce(jsonb_agg(x->>'label'), '[]') "
	"FROM jsonb_array_elements(a.options) x)::text AS options, 0 AS shown, a.id AS ord "
	"FROM approvals a WHERE a.thread_id = $1::bigint AND a.state = 'pending' "
	"AND a.expires_at > now() "
	"UNION ALL SELECT NULL, coalesce(o.payload->>'question', ''), split_part(o.kind, '.', 1), "
	"(SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(x) = 'object' THEN x->>'label' "
	"ELSE x #>> '{}' END), '[]') FROM jsonb_array_elements(CASE WHEN "
	"jsonb_typeof(o.payload->'options') = 'array' THEN o.payload->'options' ELSE '[]' END) "
	"x)::text, 1, o.id FROM outbox o WHERE o.thread_id = $1::bigint AND o.kind LIKE "
	"'%.approval' AND o.state = 'pending' AND NOT EXISTS (SELECT 1 FROM approvals a "
	"WHERE a.outbox_id = o.id)) q ORDER BY shown, ord LIMIT 20",
	1,
};

static const pg_stmt STMT_WORKERS = {
	"nd_report_workers",
	"SELECT id, coalesce(task, ''), coalesce(progress->>'phase', ''), "
	"coalesce((progress->>'step')::int, 0), coalesce(progress->>'action', ''), "
	"coalesce((extract(epoch FROM now()) * 1000)::bigint - (progress->>'at')::bigint, -1), "
	"(extract(epoch FROM now() - created_at) * 1000)::bigint "
	"FROM workers WHERE thread_id = $1 AND state = 'running' ORDER BY created_at, id",
	1,
};

/* The report of row i of a STMT_PROJECTS result (owned; NULL on ENOMEM),
 * with what the project spent (the ledger's). */
static json_t *row_report(pg_conn *c, PGresult *res, int i, const llm_cost *cost)
{
	json_t *state = NULL, *sum;
	const char *stage;

	if (eng_state_at(c, pg_int(res, i, 0), 0, &state, NULL, NULL) < 0) {
		err_clear(); /* no checkpoint yet: an empty state */
		state = json_object();
	}
	sum = nd_project_summary(state);
	json_decref(state);
	if (!sum)
		return NULL;
	stage = json_string_value(json_object_get(sum, "stage"));
	/* cancelled while it waited: its next run would say so */
	if (strcmp(pg_val(res, i, 8), "t") == 0 &&
	    !nd_stage_closed((nd_stage)nd_word_find(ND_STAGES, ND_STAGE_COUNT, stage)))
		json_object_set_new(sum, "stage", json_string(ND_STAGES[ND_STAGE_CANCELLED].name));
	json_object_set_new(sum, "thread", json_integer(pg_int(res, i, 0)));
	json_object_set_new(sum, "key", json_string(pg_val(res, i, 1)));
	json_object_set_new(sum, "title", json_string(pg_val(res, i, 2)));
	json_object_set_new(sum, "run", json_string(pg_val(res, i, 3)));
	json_object_set_new(sum, "tokens_in", json_integer(cost->tokens_in));
	json_object_set_new(sum, "tokens_out", json_integer(cost->tokens_out));
	json_object_set_new(sum, "cost_usd", json_real(cost->cost_usd));
	json_object_set_new(sum, "workers", json_integer(pg_int(res, i, 7)));
	json_object_set_new(sum, "updated", json_string(pg_val(res, i, 9)));
	json_object_set_new(sum, "waiting_for_answer", json_boolean(strcmp(pg_val(res, i, 10), "t") == 0));
	return sum;
}

/* Adds "worker_list" to r: its running workers with what they are doing
 * (the spawner's progress: phase, the agent's step and last command, how
 * long ago; -1 when none was reported yet) and how long they have run. */
static int add_workers(json_t *r, pg_conn *c)
{
	char tid[24];
	const char *params[1] = {tid};
	PGresult *res = NULL;
	json_t *list = json_array();
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)json_integer_value(json_object_get(r, "thread")));
	rc = pg_exec_stmt(c, &res, &STMT_WORKERS, params);
	for (int i = 0; rc == 0 && i < pg_rows(res); i++) {
		json_t *w = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I}", "id", pg_val(res, i, 0),
				      "task", pg_val(res, i, 1), "phase", pg_val(res, i, 2), "step",
				      (json_int_t)pg_int(res, i, 3), "action", pg_val(res, i, 4),
				      "progress_age_ms", (json_int_t)pg_int(res, i, 5), "running_ms",
				      (json_int_t)pg_int(res, i, 6));
		if (!w || json_array_append_new(list, w) < 0)
			rc = err_set(ERR_NOMEM, "out of memory");
	}
	PQclear(res);
	json_object_set_new(r, "worker_list", list);
	return rc;
}

/* The reports of graph's projects (thread 0: all; at most `limit` rows
 * besides those waiting for an answer, < 0: all), into *out (owned);
 * *total (may be NULL) the number of projects. */
static int reports(json_t **out, pg_conn *c, const char *graph, int64_t thread, int limit,
		   int64_t *total)
{
	char tid[24], lim[16];
	const char *params[3] = {graph, thread > 0 ? tid : NULL, lim};
	PGresult *res = NULL;
	json_t *list = json_array();
	const char **keys = NULL;
	llm_cost *costs = NULL;
	int rc, n;

	*out = NULL;
	if (total)
		*total = 0;
	if (!list)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(tid, sizeof(tid), "%lld", (long long)thread);
	snprintf(lim, sizeof(lim), "%d", limit);
	rc = pg_exec_stmt(c, &res, &STMT_PROJECTS, params);
	n = rc == 0 ? pg_rows(res) : 0;
	if (rc == 0 && total)
		*total = n > 0 ? pg_int(res, 0, 11) : 0;
	keys = calloc((size_t)n + 1, sizeof(*keys));
	costs = calloc((size_t)n + 1, sizeof(*costs));
	if (rc == 0 && (!keys || !costs))
		rc = err_set(ERR_NOMEM, "out of memory");
	for (int i = 0; rc == 0 && i < n; i++)
		keys[i] = pg_val(res, i, 1);
	if (rc == 0)
		rc = llm_ledger_costs(c, keys, (size_t)n, costs);
	for (int i = 0; rc == 0 && i < n; i++) {
		json_t *sum = row_report(c, res, i, &costs[i]);
		if (!sum || json_array_append_new(list, sum) < 0)
			rc = err_set(ERR_NOMEM, "out of memory");
		else if (json_integer_value(json_object_get(sum, "workers")) > 0)
			rc = add_workers(sum, c);
	}
	PQclear(res);
	free(keys);
	free(costs);
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 0;
}

int nd_report_projects(json_t **out, pg_conn *c, const char *graph, int limit,
		       int64_t *out_total)
{
	int rc = reports(out, c, graph, 0, limit, out_total);

	if (rc == 0 && out_total && *out_total == 0 && json_array_size(*out) == 0) {
		/* none listed: count them anyway (a limit of 0 lists only those
		 * that wait) */
		rc = eng_report_thread_count(c, graph, out_total);
	}
	return rc;
}

/* {"id", "title", "status", "label"} of every task, in plan order. */
static json_t *task_list(const json_t *state)
{
	json_t *list = json_array(), *t;
	const char *k;

	json_object_foreach((json_t *)json_object_get(state, "tasks"), k, t) {
		const char *s = json_string_value(json_object_get(t, "status"));
		const char *title = json_string_value(json_object_get(t, "title"));
		if (!json_is_object(t))
			continue;
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "id", k, "title",
						      title ? title : k, "status", s ? s : "",
						      "label", nd_task_state_label(s)));
	}
	return list;
}

/* Adds "open" (the project's open questions) to r. */
static int add_open(json_t *r, pg_conn *c, int64_t thread)
{
	char tid[24];
	const char *params[1] = {tid};
	PGresult *res = NULL;
	json_t *open = json_array();
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread);
	rc = pg_exec_stmt(c, &res, &STMT_OPEN, params);
	for (int i = 0; rc == 0 && i < pg_rows(res); i++) {
		json_t *opts = json_loads(pg_val(res, i, 3), 0, NULL);
		json_t *q = json_pack("{s:o, s:s, s:s, s:o}", "id",
				      pg_isnull(res, i, 0) ? json_null() : json_integer(pg_int(res, i, 0)),
				      "question", pg_val(res, i, 1), "channel", pg_val(res, i, 2),
				      "options", opts ? opts : json_array());
		if (!q || json_array_append_new(open, q) < 0)
			rc = err_set(ERR_NOMEM, "out of memory");
	}
	PQclear(res);
	json_object_set_new(r, "open", open);
	return rc;
}

/* Adds "budget" to r when the project has one. */
static int add_budget(json_t *r, pg_conn *c)
{
	double limit = 0, spent = 0;
	int found = 0;
	int rc = llm_budget_get(c, "project", json_string_value(json_object_get(r, "key")), &found,
				&limit, &spent);

	if (rc == 0 && found)
		json_object_set_new(r, "budget",
				    json_pack("{s:f, s:f}", "limit_usd", limit, "spent_usd", spent));
	return rc;
}

int nd_report_project(json_t **out, pg_conn *c, int64_t thread)
{
	json_t *list = NULL, *r = NULL, *state = NULL;
	const char *branch;
	int rc;

	*out = NULL;
	rc = reports(&list, c, ND_GRAPH, thread, -1, NULL);
	if (rc < 0 || json_array_size(list) == 0)
		goto done; /* not a factory project: no report */
	r = json_incref(json_array_get(list, 0));
	if (eng_state_at(c, thread, 0, &state, NULL, NULL) < 0) {
		err_clear();
		state = json_object();
	}
	json_object_set_new(r, "task_list", task_list(state));
	branch = json_string_value(json_object_get(json_object_get(state, "repo"), "branch"));
	if (branch)
		json_object_set_new(r, "branch", json_string(branch));
	rc = add_open(r, c, thread);
	if (rc == 0)
		rc = add_budget(r, c);
	if (rc == 0) {
		*out = r;
		r = NULL;
	}
done:
	json_decref(r);
	json_decref(state);
	json_decref(list);
	return rc;
}

int nd_report_questions(json_t **out, pg_conn *c, const char *graph)
{
	const char *params[1] = {graph};
	PGresult *res = NULL;
	json_t *qs = json_array();
	int rc;

	*out = NULL;
	if (!qs)
		return err_set(ERR_NOMEM, "out of memory");
	rc = pg_exec_stmt(c, &res, &STMT_QUESTIONS, params);
	for (int i = 0; rc == 0 && i < pg_rows(res); i++)
		json_array_append_new(qs, json_pack("{s:I, s:s, s:s, s:s}", "id",
						    (json_int_t)pg_int(res, i, 0), "project",
						    pg_val(res, i, 1), "question", pg_val(res, i, 2),
						    "channel", pg_val(res, i, 3)));
	PQclear(res);
	res = NULL;
	if (rc == 0)
		rc = pg_exec_stmt(c, &res, &STMT_UNSHOWN, params);
	for (int i = 0; rc == 0 && i < pg_rows(res); i++)
		json_array_append_new(qs, json_pack("{s:n, s:s, s:s}", "id", "project",
						    pg_val(res, i, 0), "question", pg_val(res, i, 1)));
	PQclear(res);
	if (rc < 0) {
		json_decref(qs);
		return rc;
	}
	*out = qs;
	return 0;
}
