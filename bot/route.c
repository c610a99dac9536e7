#include "bot/route.h"
#include "bot/text.h"
#include "core/config.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/outbox.h"
#include "engine/report.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt STMT_ROUTE_BATCH = {
	"bot_route_batch",
	"SELECT how, count(*) FROM bot_route_batch($1, $2::jsonb) GROUP BY how",
	2,
};

static const pg_stmt STMT_ROUTE_ONE = {
	"bot_route_one",
	"SELECT thread_id, run_id, how FROM bot_route_input($1, $2, $3::jsonb, $4, $5::jsonb)",
	5,
};

static const pg_stmt STMT_NEW_PROJECT = {
	"bot_new_project",
	"INSERT INTO bot_chats (chat, active, next_n) VALUES ($1, 1, 2) ON CONFLICT (chat) DO "
	"UPDATE SET active = bot_chats.next_n, next_n = bot_chats.next_n + 1, updated_at = now() "
	"RETURNING active",
	1,
};

static const pg_stmt STMT_ACTIVE = {
	"bot_active", "SELECT active FROM bot_chats WHERE chat = $1", 1,
};


static const pg_stmt STMT_CANCEL_APPROVALS = {
	"bot_cancel_approvals",
	"UPDATE approvals SET state = 'expired', decided_at = now() WHERE thread_id = $1 "
	"AND state = 'pending' RETURNING channel, chat, coalesce(message_id, 0), question",
	1,
};


int bot_emit(pg_conn *c, int64_t thread_id, const char *kind, const char *dest,
	     const json_t *payload)
{
	return eng_outbox_add(c, thread_id, kind, dest, payload);
}

int bot_say(pg_conn *c, const char *channel, const char *dest, int64_t thread_id,
	    const char *text)
{
	char kind[32];
	json_t *p = json_pack("{s:s}", "text", text);
	int rc;

	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(kind, sizeof(kind), "%s.send", channel);
	rc = bot_emit(c, thread_id, kind, dest, p);
	json_decref(p);
	return rc;
}

void bot_chat_key(const char *channel, const char *dest, char *out, size_t cap)
{
	snprintf(out, cap, "%s:%s", strcmp(channel, "telegram") == 0 ? "tg" : channel, dest);
}

json_t *bot_input_json(const bot_input *in)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:{s:I,s:s,s:s}}", "text", in->text ? in->text : "",
			      "channel", in->channel, "chat", in->dest, "user", "id",
			      (json_int_t)in->user_id, "name", in->user_name ? in->user_name : "",
			      "username", in->username ? in->username : "");

	if (j && in->message_id)
		json_object_set_new(j, "message_id", json_integer(in->message_id));
	if (j && in->update_id)
		json_object_set_new(j, "update_id", json_integer(in->update_id));
	if (j && json_is_object(in->change))
		json_object_set(j, "change", (json_t *)in->change);
	return j;
}

/* {"channel","chat","title"} for a new project's thread. */
static json_t *thread_meta(const bot_input *in)
{
	buf title;
	const char *t = in->text ? in->text : "";
	json_t *j;

	buf_init(&title, 0);
	/* the first line, shortened */
	{
		const char *nl = strchr(t, '\n');
		size_t n = nl ? (size_t)(nl - t) : strlen(t);
		char *line = strndup(t, n);
		if (line) {
			tg_truncate(&title, line, 60);
			free(line);
		}
	}
	j = json_pack("{s:s,s:s,s:s}", "channel", in->channel, "chat", in->dest, "title",
		      buf_cstr(&title));
	buf_free(&title);
	return j;
}

void bot_batch_init(bot_batch *b)
{
	b->items = NULL;
}

void bot_batch_clear(bot_batch *b)
{
	json_decref(b->items);
	b->items = NULL;
}

int bot_batch_add(bot_batch *b, const bot_input *in, const char *idem)
{
	char chat[96];
	json_t *item;

	if (!b->items)
		b->items = json_array();
	if (!b->items)
		return err_set(ERR_NOMEM, "out of memory");
	bot_chat_key(in->channel, in->dest, chat, sizeof(chat));
	item = json_pack("{s:s,s:o,s:s,s:o}", "chat", chat, "input", bot_input_json(in), "idem",
			 idem, "meta", thread_meta(in));
	if (!item || json_array_append_new(b->items, item) < 0)
		return err_set(ERR_NOMEM, "out of memory");
	return 0;
}

int bot_batch_flush(bot_batch *b, pg_conn *c, const char *graph, int *out_delivered,
		    int *out_queued)
{
	PGresult *res = NULL;
	char *items;
	int rc;

	if (out_delivered)
		*out_delivered = 0;
	if (out_queued)
		*out_queued = 0;
	if (!b->items || json_array_size(b->items) == 0)
		return 0;
	items = json_dumps(b->items, JSON_COMPACT);
	bot_batch_clear(b);
	if (!items)
		return err_set(ERR_NOMEM, "out of memory");
	{
		const char *params[2] = {graph, items};
		rc = pg_exec_stmt(c, &res, &STMT_ROUTE_BATCH, params);
	}
	for (int i = 0; rc == 0 && i < pg_rows(res); i++) {
		if (strcmp(pg_val(res, i, 0), "delivered") == 0) {
			if (out_delivered)
				*out_delivered += (int)pg_int(res, i, 1);
		} else if (out_queued) {
			*out_queued += (int)pg_int(res, i, 1);
		}
	}
	PQclear(res);
	free(items);
	return rc;
}

int bot_active_project(pg_conn *c, const char *chat_key, int64_t *out_thread, int *out_n)
{
	const char *params[1] = {chat_key};
	PGresult *res = NULL;
	int rc = pg_exec_stmt(c, &res, &STMT_ACTIVE, params);

	char key[128];

	*out_thread = 0;
	*out_n = 0;
	if (rc == 0 && pg_rows(res) > 0 && !pg_isnull(res, 0, 0))
		*out_n = (int)pg_int(res, 0, 0);
	PQclear(res);
	if (rc < 0 || *out_n == 0)
		return rc;
	/* its thread, when the project has started */
	snprintf(key, sizeof(key), "%s:%d", chat_key, *out_n);
	rc = eng_thread_find(c, key, out_thread);
	if (rc == ERR_NOTFOUND) {
		err_clear();
		*out_thread = 0;
		rc = 0;
	}
	return rc;
}


static int route_one(pg_conn *c, const char *graph, const bot_input *in, const char *idem,
		     int64_t *out_thread, char *how, size_t how_cap)
{
	char chat[96], *input_s = NULL, *meta_s = NULL;
	json_t *input = bot_input_json(in), *meta = thread_meta(in);
	PGresult *res = NULL;
	int rc;

	bot_chat_key(in->channel, in->dest, chat, sizeof(chat));
	input_s = input ? json_dumps(input, JSON_COMPACT) : NULL;
	meta_s = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
	if (!input_s || !meta_s) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	{
		const char *params[5] = {chat, graph, input_s, idem, meta_s};
		rc = pg_exec_stmt(c, &res, &STMT_ROUTE_ONE, params);
	}
	if (rc == 0) {
		*out_thread = pg_int(res, 0, 0);
		snprintf(how, how_cap, "%s", pg_val(res, 0, 2));
	}
done:
	PQclear(res);
	json_decref(input);
	json_decref(meta);
	free(input_s);
	free(meta_s);
	return rc;
}

static const pg_stmt STMT_SWITCH_TO = {
	"bot_switch_to",
	"INSERT INTO bot_chats (chat, active, next_n) VALUES ($1, $2::int, $2::int + 1) "
	"ON CONFLICT (chat) DO UPDATE SET active = $2::int, updated_at = now()",
	2,
};

int bot_route_project(pg_conn *c, const char *graph, int64_t thread, const bot_input *in,
		      const char *idem, char *how, size_t how_cap)
{
	char chat[96], key[256], num[16];
	const char *params[2] = {chat, num};
	const char *n;
	int64_t v = 0, routed = 0;
	int rc;

	bot_chat_key(in->channel, in->dest, chat, sizeof(chat));
	rc = eng_report_thread_key(c, thread, key, sizeof(key));
	if (rc < 0)
		return rc;
	n = strrchr(key, ':');
	if (!n || (size_t)(n - key) != strlen(chat) || strncmp(key, chat, strlen(chat)) != 0 ||
	    cfg_parse_int(n + 1, &v) < 0 || v < 1)
		return err_set(ERR_INVALID, "thread %lld (%s) is no project of chat %s",
			       (long long)thread, key, chat);
	snprintf(num, sizeof(num), "%lld", (long long)v);
	rc = pg_exec_stmt(c, NULL, &STMT_SWITCH_TO, params);
	if (rc == 0)
		rc = route_one(c, graph, in, idem, &routed, how, how_cap);
	if (rc == 0 && routed != thread)
		rc = err_set(ERR_INTERNAL, "the text went to thread %lld, not %lld",
			     (long long)routed, (long long)thread);
	return rc;
}

int bot_new_project(pg_conn *c, const char *graph, const bot_input *in, const char *idea,
		    const json_t *change, int64_t *out_thread, int *out_n)
{
	char chat[96], idem[64], how[16], msg[256];
	const char *params[1] = {chat};
	PGresult *res = NULL;
	bot_input idea_in = *in;
	int64_t thread = 0;
	int rc, n;

	if (out_thread)
		*out_thread = 0;
	if (out_n)
		*out_n = 0;
	bot_chat_key(in->channel, in->dest, chat, sizeof(chat));
	rc = pg_exec_stmt(c, &res, &STMT_NEW_PROJECT, params);
	if (rc < 0)
		return rc;
	n = (int)pg_int(res, 0, 0);
	PQclear(res);
	idea_in.text = idea;
	idea_in.change = change;
	snprintf(idem, sizeof(idem), "%s:new:%lld:%lld", chat, (long long)in->update_id,
		 (long long)in->message_id);
	rc = route_one(c, graph, &idea_in, idem, &thread, how, sizeof(how));
	if (rc < 0)
		return rc;
	if (out_thread)
		*out_thread = thread;
	if (out_n)
		*out_n = n;
	snprintf(msg, sizeof(msg), "Project #%d started%s. Plain messages now go to it; "
				   "/projects lists all of them.",
		 n, change ? " (a change to an existing repository)" : "");
	return bot_say(c, in->channel, in->dest, thread, msg);
}

static _Atomic(bot_cancel_workers_fn) g_cancel_workers;

void bot_set_cancel_workers(bot_cancel_workers_fn fn)
{
	atomic_store(&g_cancel_workers, fn);
}

/* Questions of a cancelled project can no longer be answered: they end,
 * and their Telegram messages lose their buttons. */
static int cancel_approvals(pg_conn *c, int64_t thread)
{
	char tid[24];
	const char *params[1] = {tid};
	PGresult *res = NULL;
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread);
	rc = pg_exec_stmt(c, &res, &STMT_CANCEL_APPROVALS, params);
	for (int i = 0; rc == 0 && i < pg_rows(res); i++) {
		buf html;
		json_t *edit;

		if (strcmp(pg_val(res, i, 0), "telegram") != 0 || pg_int(res, i, 2) <= 0)
			continue;
		buf_init(&html, 0);
		tg_html_escape(&html, pg_val(res, i, 3), strlen(pg_val(res, i, 3)));
		buf_puts(&html, "\n\n<i>Cancelled with the project.</i>");
		edit = json_pack("{s:I,s:s,s:s}", "message_id", (json_int_t)pg_int(res, i, 2), "html",
				 buf_cstr(&html), "keyboard", "remove");
		rc = edit ? bot_emit(c, thread, "telegram.edit", pg_val(res, i, 1), edit)
			  : err_set(ERR_NOMEM, "out of memory");
		json_decref(edit);
		buf_free(&html);
	}
	PQclear(res);
	return rc;
}

int bot_cancel_project(pg_conn *c, int64_t thread, const char *who, int *out_runs,
		       int *out_workers)
{
	char reason[200], idem[64];
	bot_cancel_workers_fn cancel_workers = atomic_load(&g_cancel_workers);
	json_t *ev;
	int rc, runs = 0, workers = 0;

	if (out_runs)
		*out_runs = 0;
	if (out_workers)
		*out_workers = 0;
	if (!cancel_workers)
		return err_set(ERR_INTERNAL, "cannot cancel project %lld: no one stops its workers "
			       "(bot_set_cancel_workers was not called)", (long long)thread);
	rc = eng_cancel_thread(c, thread, &runs);
	if (rc == 0)
		rc = cancel_approvals(c, thread);
	if (rc < 0)
		return rc;
	snprintf(reason, sizeof(reason), "the project was cancelled by %s", who ? who : "its owner");
	rc = cancel_workers(c, thread, reason, &workers);
	if (rc < 0)
		return rc;
	if (out_workers)
		*out_workers = workers;
	/* the next run of the project learns it was cancelled */
	ev = json_pack("{s:s, s:I}", "by", who ? who : "", "at", (json_int_t)util_wall_ms());
	snprintf(idem, sizeof(idem), "cancel:%lld:%llx", (long long)thread,
		 (unsigned long long)util_rand_u64());
	rc = ev ? eng_deliver(c, thread, "cancel", ev, idem, NULL, NULL)
		: err_set(ERR_NOMEM, "out of memory");
	json_decref(ev);
	if (rc == 0 && out_runs)
		*out_runs = runs;
	return rc;
}

