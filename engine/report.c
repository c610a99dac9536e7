#include "engine/report.h"
#include "core/err.h"
#include "engine/control.h"

#include <stdio.h>
#include <string.h>

/* The one-row, one-column JSON text statement `st` returns, parsed into
 * *out (owned). */
static int fig_json(pg_conn *c, const pg_stmt *st, const char *const *params, json_t **out)
{
	int rc = pg_query_json(c, st, params, PG_JSON_NULL, out);

	if (rc == 0 && !*out)
		rc = err_set(ERR_NOMEM, "out of memory");
	return rc;
}

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

static const pg_stmt STMT_KEY_RUN = {
	"eng_report_key_run",
	"SELECT t.id, coalesce(t.metadata->>'title', ''), coalesce(r.status, 'idle'), "
	"coalesce(array_to_string(r.waiting_on, ', '), ''), coalesce(r.step, 0), "
	"coalesce(r.error, ''), (SELECT count(*) FROM runs q WHERE q.thread_id = t.id "
	"AND q.status = 'queued') FROM threads t LEFT JOIN LATERAL (SELECT x.status, x.waiting_on, "
	"x.step, x.error FROM runs x WHERE x.thread_id = t.id AND " ENG_SQL_NOT_HANDED_OFF("x") " "
	"ORDER BY (x.status IN ('running', 'waiting')) DESC, x.id DESC LIMIT 1) r ON true "
	"WHERE t.key = $1",
	1,
};

int eng_report_key_run(pg_conn *c, const char *key, eng_report_run *out)
{
	const char *params[1] = {key};
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, &STMT_KEY_RUN, params);

	memset(out, 0, sizeof(*out));
	if (rc == 0 && pg_rows(r) > 0) {
		out->thread_id = pg_int(r, 0, 0);
		snprintf(out->title, sizeof(out->title), "%s", pg_val(r, 0, 1));
		snprintf(out->status, sizeof(out->status), "%s", pg_val(r, 0, 2));
		snprintf(out->waiting, sizeof(out->waiting), "%s", pg_val(r, 0, 3));
		out->step = pg_int(r, 0, 4);
		snprintf(out->error, sizeof(out->error), "%s", pg_val(r, 0, 5));
		out->queued = pg_int(r, 0, 6);
	}
	PQclear(r);
	return rc;
}

static const pg_stmt STMT_NUMBERED = {
	"eng_report_numbered",
	"SELECT coalesce(json_agg(json_build_object('n', n, 'title', title, 'status', status) "
	"ORDER BY n), '[]')::text FROM (SELECT (t.metadata->>'n')::int AS n, "
	"coalesce(t.metadata->>'title', '') AS title, coalesce((SELECT x.status FROM runs x WHERE "
	"x.thread_id = t.id AND " ENG_SQL_NOT_HANDED_OFF("x") " ORDER BY (x.status IN ('running', "
	"'waiting')) DESC, x.id DESC LIMIT 1), 'idle') AS status FROM threads t "
	"WHERE starts_with(t.key, $1 || ':') AND t.metadata ? 'n' ORDER BY n LIMIT 50) p",
	1,
};

int eng_report_numbered(pg_conn *c, const char *prefix, json_t **out)
{
	const char *params[1] = {prefix};
	return fig_json(c, &STMT_NUMBERED, params, out);
}

static const pg_stmt STMT_FIND_TITLE = {
	"eng_report_find_title",
	"SELECT (metadata->>'n')::int FROM threads WHERE starts_with(key, $1 || ':') AND metadata ? "
	"'n' AND starts_with(lower(metadata->>'title'), lower($2)) ORDER BY updated_at DESC LIMIT 1",
	2,
};

int eng_report_find_title(pg_conn *c, const char *prefix, const char *title, int64_t *out_n)
{
	const char *params[2] = {prefix, title};
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, &STMT_FIND_TITLE, params);

	*out_n = rc == 0 && pg_rows(r) > 0 ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	return rc;
}

static const pg_stmt STMT_THREAD_KEY = {
	"eng_report_thread_key", "SELECT key FROM threads WHERE id = $1::bigint", 1,
};

int eng_report_thread_key(pg_conn *c, int64_t thread_id, char *key, size_t cap)
{
	char tid[24];
	const char *params[1] = {tid};
	PGresult *r = NULL;
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &r, &STMT_THREAD_KEY, params);
	snprintf(key, cap, "%s", rc == 0 && pg_rows(r) == 1 ? pg_val(r, 0, 0) : "");
	PQclear(r);
	return rc;
}

/* --- database-wide figures (the /metrics gauges, web/health.h) --- */

static const pg_stmt STMT_RUN_COUNTS = {
	"eng_report_run_counts",
	"SELECT coalesce(json_object_agg(status, n), '{}')::text FROM (SELECT status, count(*) AS n "
	"FROM runs GROUP BY status) s",
	0,
};

int eng_report_run_counts(pg_conn *c, json_t **out)
{
	return fig_json(c, &STMT_RUN_COUNTS, NULL, out);
}

static const pg_stmt STMT_OUTBOX_BACKLOG = {
	"eng_report_outbox_backlog",
	"SELECT coalesce(json_object_agg(kind, json_build_object('pending', pending, 'oldest_s', "
	"oldest_s, 'dead', dead)), '{}')::text FROM (SELECT kind, count(*) FILTER (WHERE state = "
	"'pending') AS pending, coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE "
	"state = 'pending')), 0) AS oldest_s, count(*) FILTER (WHERE state = 'dead') AS dead "
	"FROM outbox WHERE state <> 'sent' GROUP BY kind) k",
	0,
};

int eng_report_outbox_backlog(pg_conn *c, json_t **out)
{
	return fig_json(c, &STMT_OUTBOX_BACKLOG, NULL, out);
}

/* --- a chat's conversation (bot/term.c) --- */

static const pg_stmt STMT_HISTORY = {
	"eng_report_history",
	"SELECT coalesce(json_agg(json_build_object('who', who, 'text', text) ORDER BY at, ord), "
	"'[]')::text FROM (SELECT who, text, at, ord FROM (SELECT r.created_at AS at, r.id AS ord, "
	"'you' AS who, r.input->'input'->>'text' AS text FROM runs r WHERE r.thread_id = $1 AND "
	"r.input ? 'input' AND " ENG_SQL_NOT_HANDED_OFF("r") " "
	"UNION ALL SELECT e.created_at, e.id, 'you', e.value->>'text' FROM events e "
	"WHERE e.thread_id = $1 AND e.key = 'input' "
	"UNION ALL SELECT o.created_at, o.id, 'orchestrator', coalesce(o.payload->>'text', "
	"o.payload->>'html', o.payload->>'question') FROM outbox o WHERE o.thread_id = $1 "
	"AND o.kind IN ('term.send', 'term.approval', 'telegram.send', 'telegram.approval')) h "
	"WHERE text IS NOT NULL ORDER BY at DESC, ord DESC LIMIT $2) l",
	2,
};

int eng_report_history(pg_conn *c, int64_t thread_id, int limit, json_t **out)
{
	char tid[24], lim[16];
	const char *params[2] = {tid, lim};

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	snprintf(lim, sizeof(lim), "%d", limit);
	return fig_json(c, &STMT_HISTORY, params, out);
}

static const pg_stmt STMT_RUNNING_CHATS = {
	"eng_report_running_chats",
	"SELECT coalesce(json_agg(chat), '[]')::text FROM (SELECT DISTINCT t.metadata->>'chat' AS "
	"chat FROM runs r JOIN threads t ON t.id = r.thread_id WHERE r.status = 'running' AND "
	"t.metadata->>'channel' = $1 AND t.metadata ? 'chat' LIMIT $2) c",
	2,
};

int eng_report_running_chats(pg_conn *c, const char *channel, int limit, json_t **out)
{
	char lim[16];
	const char *params[2] = {channel, lim};

	snprintf(lim, sizeof(lim), "%d", limit);
	return fig_json(c, &STMT_RUNNING_CHATS, params, out);
}

static const pg_stmt STMT_WAITING_ON = {
	"eng_report_waiting_on",
	"SELECT coalesce(to_json((SELECT r.waiting_on FROM runs r WHERE r.thread_id = $1::bigint "
	"AND r.status IN ('waiting', 'queued', 'running') ORDER BY r.id DESC LIMIT 1)), "
	"'[]')::text",
	1,
};

int eng_report_waiting_on(pg_conn *c, int64_t thread_id, json_t **out)
{
	char tid[24];
	const char *params[1] = {tid};

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	return fig_json(c, &STMT_WAITING_ON, params, out);
}

static const pg_stmt STMT_GRAPH_THREADS = {
	"eng_report_graph_threads",
	"SELECT coalesce(json_agg(json_build_object('id', t.id, 'key', t.key, 'title', "
	"coalesce(t.metadata->>'title', ''), 'run', coalesce((SELECT x.status FROM runs x WHERE "
	"x.thread_id = t.id AND " ENG_SQL_NOT_HANDED_OFF("x") " ORDER BY x.id DESC LIMIT 1), "
	"'none'), 'cancel_pending', EXISTS (SELECT 1 FROM events e WHERE e.thread_id = t.id AND "
	"e.key = 'cancel' AND e.consumed_at IS NULL), 'waiting_on', coalesce((SELECT "
	"to_json(w.waiting_on) FROM runs w WHERE w.thread_id = t.id AND w.status = 'waiting' "
	"ORDER BY w.id DESC LIMIT 1), '[]'), 'updated', to_char(t.updated_at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS\"Z\"'), 'pending', (SELECT coalesce(json_agg(json_build_object("
	"'id', o.id, 'kind', o.kind, 'payload', o.payload) ORDER BY o.id), '[]') FROM outbox o "
	"WHERE o.thread_id = t.id AND o.state = 'pending' AND right(o.kind, length($3)) = $3)) "
	"ORDER BY t.updated_at DESC, t.id DESC), '[]')::text FROM threads t WHERE t.graph = $1 "
	"AND ($2::bigint IS NULL OR t.id = $2::bigint)",
	3,
};

int eng_report_graph_threads(pg_conn *c, const char *graph, int64_t thread_id,
			     const char *kind_suffix, json_t **out)
{
	char tid[24];
	const char *params[3] = {graph, thread_id > 0 ? tid : NULL, kind_suffix};

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	return fig_json(c, &STMT_GRAPH_THREADS, params, out);
}
