#include "bot/report.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>

static const pg_stmt STMT_QUESTIONS = {
	"bot_report_questions",
	"SELECT json_agg(json_build_object('id', id, 'key', key, 'question', question, 'state', "
	"state, 'decision', decision, 'by', decided_by->>'name', 'asked', to_char(created_at AT "
	"TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"')) ORDER BY id)::text FROM approvals "
	"WHERE thread_id = $1",
	1,
};

int bot_report_questions(pg_conn *c, int64_t thread_id, json_t **out)
{
	char tid[24];
	const char *params[1] = {tid};

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	return pg_query_json(c, &STMT_QUESTIONS, params, PG_JSON_ARRAY, out);
}

static const pg_stmt STMT_SHOWN = {
	"bot_report_shown",
	"SELECT id, key, options::text FROM approvals WHERE channel = 'term' AND chat = $1 AND "
	"state = 'pending' AND message_id IS NOT NULL ORDER BY id LIMIT 1",
	1,
};

int bot_report_shown(pg_conn *c, const char *chat, int64_t *out_id, char *key, size_t kcap,
		     json_t **out_options)
{
	const char *params[1] = {chat};
	PGresult *r = NULL;
	int rc = pg_exec_stmt(c, &r, &STMT_SHOWN, params);

	*out_id = 0;
	*out_options = NULL;
	if (rc == 0 && pg_rows(r) == 1) {
		*out_id = pg_int(r, 0, 0);
		snprintf(key, kcap, "%s", pg_val(r, 0, 1));
		*out_options = json_loads(pg_val(r, 0, 2), 0, NULL);
	}
	PQclear(r);
	return rc;
}

static const pg_stmt STMT_QUESTION = {
	"bot_report_question",
	"SELECT json_build_object('id', id, 'thread_id', thread_id, 'channel', channel, 'chat', "
	"chat, 'question', question, 'options', options, 'state', state, 'message_id', "
	"coalesce(message_id, 0), 'outbox_id', coalesce(outbox_id, 0), 'expired', "
	"expires_at < now())::text FROM approvals WHERE id = $1::bigint",
	1,
};

int bot_report_question(pg_conn *c, int64_t id, json_t **out)
{
	char sid[24];
	const char *params[1] = {sid};

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	return pg_query_json(c, &STMT_QUESTION, params, PG_JSON_NULL, out);
}

static const pg_stmt STMT_OPEN_OPTIONS = {
	"bot_report_open_options",
	"SELECT options::text FROM approvals WHERE id = $1::bigint AND state = 'pending'",
	1,
};

int bot_report_open_options(pg_conn *c, int64_t id, json_t **out)
{
	char sid[24];
	const char *params[1] = {sid};

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	return pg_query_json(c, &STMT_OPEN_OPTIONS, params, PG_JSON_NULL, out);
}

static const pg_stmt STMT_OF_OUTBOX = {
	"bot_report_of_outbox",
	"SELECT id FROM approvals WHERE outbox_id = $1::bigint LIMIT 1",
	1,
};

int bot_report_of_outbox(pg_conn *c, int64_t outbox_id, int64_t *out_id)
{
	char sid[24];
	const char *params[1] = {sid};
	PGresult *r = NULL;
	int rc;

	snprintf(sid, sizeof(sid), "%lld", (long long)outbox_id);
	rc = pg_exec_stmt(c, &r, &STMT_OF_OUTBOX, params);
	*out_id = rc == 0 && pg_rows(r) == 1 ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	return rc;
}

static const pg_stmt STMT_OPEN_KEYS = {
	"bot_report_open_keys",
	"SELECT coalesce(json_agg(json_build_object('id', id, 'question', question) ORDER BY id "
	"DESC), '[]')::text FROM approvals WHERE thread_id = $1::bigint AND state = 'pending' AND "
	"expires_at > now() AND key IN (SELECT jsonb_array_elements_text($2::jsonb))",
	2,
};

int bot_report_open_keys(pg_conn *c, int64_t thread_id, const json_t *keys, json_t **out)
{
	char tid[24], *k = json_dumps(keys, JSON_COMPACT);
	const char *params[2] = {tid, k};
	PGresult *r = NULL;
	int rc;

	*out = NULL;
	if (!k)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &r, &STMT_OPEN_KEYS, params);
	free(k);
	if (rc == 0 && pg_rows(r) == 1)
		*out = json_loads(pg_val(r, 0, 0), 0, NULL);
	PQclear(r);
	if (rc == 0 && !*out)
		rc = err_set(ERR_NOMEM, "out of memory");
	return rc;
}

static const pg_stmt STMT_OPEN = {
	"bot_report_open",
	"SELECT (SELECT coalesce(json_agg(json_build_object('id', a.id, 'thread_id', a.thread_id, "
	"'question', a.question, 'channel', a.channel, 'options', (SELECT "
	"coalesce(jsonb_agg(x->>'label'), '[]') FROM jsonb_array_elements(a.options) x)) "
	"ORDER BY a.id), '[]') FROM approvals a WHERE a.thread_id = ANY ($1::bigint[]) "
	"AND a.state = 'pending' AND a.expires_at > now())::text, (SELECT "
	"coalesce(json_agg(a.outbox_id), '[]') FROM approvals a WHERE a.outbox_id = ANY "
	"($2::bigint[]))::text",
	2,
};

/* ids[0..n) as a bigint[] literal ("{1,2}"), new (NULL when out of memory). */
static char *id_array(const int64_t *ids, size_t n)
{
	size_t cap = 3 + n * 21, off = 1;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	s[0] = '{';
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(s + off, cap - off, "%s%lld", i ? "," : "", (long long)ids[i]);
	snprintf(s + off, cap - off, "}");
	return s;
}

int bot_report_open(pg_conn *c, const int64_t *threads, size_t n, const int64_t *outbox_ids,
		    size_t nout, json_t **open, json_t **linked)
{
	char *a = id_array(threads, n), *b = id_array(outbox_ids, nout);
	const char *params[2] = {a, b};
	PGresult *r = NULL;
	int rc = a && b ? pg_exec_stmt(c, &r, &STMT_OPEN, params)
			: err_set(ERR_NOMEM, "out of memory");

	*open = *linked = NULL;
	if (rc == 0 && pg_rows(r) == 1) {
		*open = json_loads(pg_val(r, 0, 0), 0, NULL);
		*linked = json_loads(pg_val(r, 0, 1), 0, NULL);
	}
	if (rc == 0 && (!*open || !*linked)) {
		json_decref(*open);
		json_decref(*linked);
		*open = *linked = NULL;
		rc = err_set(ERR_NOMEM, "out of memory");
	}
	PQclear(r);
	free(a);
	free(b);
	return rc;
}
