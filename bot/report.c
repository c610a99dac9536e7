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
	PGresult *r = NULL;
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &r, &STMT_QUESTIONS, params);
	*out = rc == 0 && pg_rows(r) == 1 && !pg_isnull(r, 0, 0)
		       ? json_loads(pg_val(r, 0, 0), 0, NULL)
		       : NULL;
	PQclear(r);
	if (rc == 0 && !*out)
		*out = json_array();
	if (rc == 0 && !*out)
		rc = err_set(ERR_NOMEM, "out of memory");
	return rc;
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
	PGresult *r = NULL;
	int rc;

	*out = NULL;
	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	rc = pg_exec_stmt(c, &r, &STMT_QUESTION, params);
	if (rc == 0 && pg_rows(r) == 1) {
		*out = json_loads(pg_val(r, 0, 0), 0, NULL);
		if (!*out)
			rc = err_set(ERR_NOMEM, "out of memory");
	}
	PQclear(r);
	return rc;
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
	PGresult *r = NULL;
	int rc;

	*out = NULL;
	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	rc = pg_exec_stmt(c, &r, &STMT_OPEN_OPTIONS, params);
	if (rc == 0 && pg_rows(r) == 1)
		*out = json_loads(pg_val(r, 0, 0), 0, NULL);
	PQclear(r);
	return rc;
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
