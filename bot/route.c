#include "bot/route.h"
#include "bot/text.h"
#include "core/config.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/control.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt STMT_EMIT = {
	"bot_emit",
	"INSERT INTO outbox (thread_id, kind, dest, payload) VALUES ($1::bigint, $2, $3, $4::jsonb)",
	4,
};

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
	"bot_active",
	"SELECT c.active, coalesce(t.id, 0) FROM bot_chats c LEFT JOIN threads t "
	"ON t.key = c.chat || ':' || c.active WHERE c.chat = $1",
	1,
};

static const pg_stmt STMT_PROJECT = {
	"bot_project",
	"SELECT t.id, coalesce(t.metadata->>'title', ''), coalesce(r.status, 'idle'), "
	"coalesce(array_to_string(r.waiting_on, ', '), ''), coalesce(r.step, 0), "
	"coalesce(r.error, ''), (SELECT count(*) FROM runs q WHERE q.thread_id = t.id "
	"AND q.status = 'queued') FROM threads t LEFT JOIN LATERAL (SELECT x.status, x.waiting_on, "
	"x.step, x.error FROM runs x WHERE x.thread_id = t.id AND " ENG_SQL_NOT_HANDED_OFF("x") " "
	"ORDER BY (x.status IN ('running', 'waiting')) DESC, x.id DESC LIMIT 1) r ON true "
	"WHERE t.key = $1",
	1,
};

static const pg_stmt STMT_PROJECTS = {
	"bot_projects",
	"SELECT (t.metadata->>'n')::int AS n, coalesce(t.metadata->>'title', ''), "
	"coalesce((SELECT x.status FROM runs x WHERE x.thread_id = t.id AND "
	ENG_SQL_NOT_HANDED_OFF("x") " ORDER BY (x.status IN ('running', 'waiting')) DESC, x.id DESC "
	"LIMIT 1), 'idle') FROM threads t "
	"WHERE starts_with(t.key, $1 || ':') AND t.metadata ? 'n' ORDER BY n LIMIT 50",
	1,
};

static const pg_stmt STMT_CANCEL_APPROVALS = {
	"bot_cancel_approvals",
	"UPDATE approvals SET state = 'expired', decided_at = now() WHERE thread_id = $1 "
	"AND state = 'pending' RETURNING channel, chat, coalesce(message_id, 0), question",
	1,
};

static const pg_stmt STMT_SWITCH = {
	"bot_switch",
	"UPDATE bot_chats SET active = $2::int, updated_at = now() WHERE chat = $1",
	2,
};

static const pg_stmt STMT_FIND_TITLE = {
	"bot_find_title",
	"SELECT (metadata->>'n')::int FROM threads WHERE starts_with(key, $1 || ':') AND metadata ? "
	"'n' AND starts_with(lower(metadata->>'title'), lower($2)) ORDER BY updated_at DESC LIMIT 1",
	2,
};

int bot_emit(pg_conn *c, int64_t thread_id, const char *kind, const char *dest,
	     const json_t *payload)
{
	char tid[24], *p = json_dumps(payload, JSON_COMPACT);
	const char *params[4] = {thread_id > 0 ? tid : NULL, kind, dest, p};
	int rc;

	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, NULL, &STMT_EMIT, params);
	free(p);
	return rc;
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

	if (!b->items && !(b->items = json_array()))
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

	*out_thread = 0;
	*out_n = 0;
	if (rc == 0 && pg_rows(res) > 0 && !pg_isnull(res, 0, 0)) {
		*out_n = (int)pg_int(res, 0, 0);
		*out_thread = pg_int(res, 0, 1);
	}
	PQclear(res);
	return rc;
}

const char *bot_help_text(const char *channel)
{
	if (strcmp(channel, "term") == 0)
		return "Describe an idea and orchestrator takes it from there.\n"
		       "  /new <idea>        start a new project\n"
		       "  /new --repo <url or path> [--branch B] [--pr] <change>\n"
		       "                     change an existing repository\n"
		       "  /status            the active project: stage, tasks, workers, questions, cost\n"
		       "  /projects          your projects\n"
		       "  /switch <n|name>   make another project the active one\n"
		       "  /cancel            stop the active project's work\n"
		       "  /history [n]       the active project's last messages\n"
		       "  /approve <n>       answer the pending question with option n (or type n)\n"
		       "  /help, /quit\n"
		       "Any other text goes to the active project.";
	return "Describe an idea and orchestrator takes it from there.\n\n"
	       "/new <idea> — start a new project\n"
	       "/new --repo <url> [--branch B] [--pr] [--handle res_…] <change> — change an "
	       "existing repository\n"
	       "/status — the active project: stage, tasks, workers, your open questions, cost\n"
	       "/projects — your projects\n"
	       "/switch <number or name> — make another project the active one\n"
	       "/cancel — stop the active project's work\n"
	       "/help — this text\n\n"
	       "Any other message goes to the active project. Questions that need your "
	       "decision come with buttons.";
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

static const pg_stmt STMT_THREAD_KEY = {
	"bot_thread_key", "SELECT key FROM threads WHERE id = $1::bigint", 1,
};

static const pg_stmt STMT_SWITCH_TO = {
	"bot_switch_to",
	"INSERT INTO bot_chats (chat, active, next_n) VALUES ($1, $2::int, $2::int + 1) "
	"ON CONFLICT (chat) DO UPDATE SET active = $2::int, updated_at = now()",
	2,
};

int bot_route_project(pg_conn *c, const char *graph, int64_t thread, const bot_input *in,
		      const char *idem, char *how, size_t how_cap)
{
	char chat[96], tid[24], num[16];
	const char *params[2] = {tid, NULL};
	PGresult *res = NULL;
	const char *key, *n;
	int64_t v = 0, routed = 0;
	int rc;

	bot_chat_key(in->channel, in->dest, chat, sizeof(chat));
	snprintf(tid, sizeof(tid), "%lld", (long long)thread);
	rc = pg_exec_stmt(c, &res, &STMT_THREAD_KEY, params);
	if (rc < 0)
		return rc;
	key = pg_rows(res) == 1 ? pg_val(res, 0, 0) : "";
	n = strrchr(key, ':');
	if (!n || (size_t)(n - key) != strlen(chat) || strncmp(key, chat, strlen(chat)) != 0 ||
	    cfg_parse_int(n + 1, &v) < 0 || v < 1) {
		rc = err_set(ERR_INVALID, "thread %lld (%s) is no project of chat %s", (long long)thread,
			     key, chat);
		PQclear(res);
		return rc;
	}
	PQclear(res);
	snprintf(num, sizeof(num), "%lld", (long long)v);
	params[0] = chat;
	params[1] = num;
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

/* /new's options before the idea: --repo URL [--branch B] [--pr]
 * [--handle res_...] [--secret NAME], into *change (owned; NULL when no
 * --repo); *idea points after them. A problem goes to err[cap]. */
static int new_options(const char *args, json_t **change, const char **idea, char *err,
		       size_t cap)
{
	static const char *const with_value[] = {"--repo", "--branch", "--handle", "--secret"};
	const char *p = args;

	*change = NULL;
	err[0] = '\0';
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	while (strncmp(p, "--", 2) == 0) {
		size_t n = strcspn(p, " \t\n");
		const char *v = p + n, *key = NULL;

		while (*v == ' ' || *v == '\t' || *v == '\n')
			v++;
		if (!*change)
			*change = json_object();
		if (!*change)
			return err_set(ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
			if (strlen(with_value[i]) == n && strncmp(p, with_value[i], n) == 0)
				key = with_value[i] + 2;
		if (n == 4 && strncmp(p, "--pr", 4) == 0) {
			json_object_set_new(*change, "pr", json_true());
			p = v;
			continue;
		}
		if (!key) {
			snprintf(err, cap, "/new knows --repo URL, --branch NAME, --pr and --handle "
					   "res_...; not %.*s", (int)(n > 40 ? 40 : n), p);
			return 0;
		}
		n = strcspn(v, " \t\n");
		if (n == 0) {
			snprintf(err, cap, "--%s needs a value", key);
			return 0;
		}
		json_object_set_new(*change, key, json_stringn(v, n));
		p = v + n;
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
	}
	*idea = p;
	if (*change && !json_object_get(*change, "repo"))
		snprintf(err, cap, "--branch, --pr and --handle go with --repo URL: /new --repo "
				   "https://host/owner/name.git [--branch main] [--pr] what to change");
	return 0;
}

static int cmd_new(pg_conn *c, const char *graph, const bot_input *in, const char *args)
{
	json_t *change = NULL;
	const char *idea = args;
	char err[300];
	int rc = new_options(args, &change, &idea, err, sizeof(err));

	if (rc == 0 && err[0])
		rc = bot_say(c, in->channel, in->dest, 0, err);
	else if (rc == 0 && !*idea)
		rc = bot_say(c, in->channel, in->dest, 0,
			     change ? "Tell me what to change: /new --repo URL what to change"
				    : "Tell me the idea: /new <what you want built>");
	else if (rc == 0)
		rc = bot_new_project(c, graph, in, idea, change, NULL, NULL);
	json_decref(change);
	return rc;
}

static _Atomic(bot_report_fn) g_report;

void bot_set_report(bot_report_fn fn)
{
	atomic_store(&g_report, fn);
}

/* Appends `s` cut to max_chars characters, escaped for HTML. */
static void put_html(buf *out, const char *s, size_t max_chars)
{
	buf cut;

	buf_init(&cut, 0);
	tg_truncate(&cut, s ? s : "", max_chars);
	tg_html_escape(out, buf_cstr(&cut), cut.len);
	buf_free(&cut);
}

/* put_html of `s` on one line: runs of line breaks become one space. */
static void put_html_line(buf *out, const char *s, size_t max_chars)
{
	buf line;

	buf_init(&line, 0);
	for (const char *p = s ? s : ""; *p; p++) {
		if (*p != '\n' && *p != '\r')
			buf_putc(&line, *p);
		else if (line.len > 0 && buf_cstr(&line)[line.len - 1] != ' ')
			buf_putc(&line, ' ');
	}
	put_html(out, buf_cstr(&line), max_chars);
	buf_free(&line);
}

/* What a stage means, for a person. */
static const char *stage_label(const char *stage)
{
	static const struct {
		const char *stage, *label;
	} map[] = {
		{"", "new"},
		{"brainstorm", "brainstorm (talking the idea through)"},
		{"spec_review", "spec review (the spec waits for your decision)"},
		{"architect", "architect (repository and plan)"},
		{"plan_review", "plan review (the plan waits for your decision)"},
		{"develop", "develop (workers build the tasks, the reviewer checks them)"},
		{"import", "import (the repository is copied into the project's own)"},
		{"baseline", "baseline (the repository's tests run before any change)"},
		{"deliver", "delivery (the change is pushed, or its pull request opened)"},
		{"pull_request", "pull request (open: its comments and CI start new rounds)"},
		{"done", "done"},
		{"stopped", "stopped"},
		{"cancelled", "cancelled"},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].stage, stage) == 0)
			return map[i].label;
	return stage;
}

/* The group a task status counts in: 0 done, 1 in progress, 2 waiting for
 * review, 3 waiting for you, 4 failed, 5 queued, 6 skipped. */
static int task_group(const char *st)
{
	static const struct {
		const char *status;
		int group;
	} map[] = {
		{"merged", 0},       {"working", 1},       {"changes", 1},     {"approved", 1},
		{"merge_ready", 1},  {"merging", 1},       {"review", 2},      {"reviewing", 2},
		{"review_error", 2}, {"review_budget", 2}, {"blocked", 3},     {"merge_wait", 3},
		{"failed", 4},       {"queued", 5},        {"skipped", 6},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].status, st) == 0)
			return map[i].group;
	return 1;
}

#define STATUS_TASK_LINES 10
#define STATUS_QUESTIONS 3

static void status_tasks(buf *out, const json_t *r)
{
	static const char *const names[] = {"done", "in progress", "waiting for review",
					    "waiting for you", "failed", "queued", "skipped"};
	const json_t *list = json_object_get(r, "task_list"), *t;
	long long total = jx_int(json_object_get(r, "tasks"), "total");
	int count[7] = {0}, shown = 0;
	size_t i;

	if (total == 0) {
		buf_puts(out, "\n<b>Tasks:</b> none yet (the plan comes after the spec)");
		return;
	}
	json_array_foreach(list, i, t)
		count[task_group(jx_str(t, "status"))]++;
	buf_printf(out, "\n<b>Tasks:</b> %d of %lld done", count[0], total);
	for (int g = 1; g < 7; g++)
		if (count[g] > 0)
			buf_printf(out, ", %d %s", count[g], names[g]);
	/* the tasks that move or wait: what a person wants to know about */
	json_array_foreach(list, i, t) {
		int g = task_group(jx_str(t, "status"));
		if (g == 0 || g >= 5)
			continue;
		if (shown++ == STATUS_TASK_LINES) {
			buf_puts(out, "\n  …");
			break;
		}
		buf_puts(out, "\n  • ");
		put_html(out, jx_str(t, "title"), 80);
		buf_puts(out, " — ");
		put_html(out, jx_str(t, "label"), 40);
	}
}

/* One line per running worker (at most STATUS_TASK_LINES): its task, the
 * agent's step and last command, and how long ago the worker reported. */
static void status_workers(buf *out, const json_t *list)
{
	size_t i;
	json_t *w;

	json_array_foreach(list, i, w) {
		long long age = jx_int(w, "progress_age_ms");

		if (i == STATUS_TASK_LINES) {
			buf_puts(out, "\n  …");
			break;
		}
		buf_puts(out, "\n  • ");
		put_html(out, jx_str(w, "task"), 40);
		if (jx_int(w, "step") > 0)
			buf_printf(out, ": step %lld", jx_int(w, "step"));
		buf_puts(out, " — <code>");
		put_html_line(out,
			      *jx_str(w, "action")  ? jx_str(w, "action")
			      : *jx_str(w, "phase") ? jx_str(w, "phase")
						    : "starting",
			      60);
		buf_puts(out, "</code>");
		if (age >= 0)
			buf_printf(out, " (%llds ago)", age / 1000);
	}
}

/* What the project waits for the person to decide, and how to answer; or,
 * without a question, that it waits for a message (`waits_input`). */
static void status_questions(buf *out, const json_t *r, const char *channel, int waits_input)
{
	const json_t *open = json_object_get(r, "open"), *q, *o;
	size_t i, j;

	if (json_array_size(open) == 0) {
		if (waits_input)
			buf_puts(out, "\n<b>Waiting for you:</b> your reply — write it in this chat.");
		return;
	}
	buf_puts(out, "\n<b>Waiting for you:</b>");
	json_array_foreach(open, i, q) {
		if (i == STATUS_QUESTIONS) {
			buf_printf(out, "\n  … and %zu more", json_array_size(open) - i);
			break;
		}
		buf_puts(out, "\n  • ");
		put_html_line(out, jx_str(q, "question"), 240);
		if (json_is_null(json_object_get(q, "id"))) {
			buf_puts(out, "\n    (the question is on its way to this chat)");
			continue;
		}
		if (strcmp(channel, "term") == 0)
			buf_puts(out, "\n    Type the number of your choice under it (or /approve n)");
		else
			buf_puts(out, "\n    Answer with the buttons under that message");
		json_array_foreach(json_object_get(q, "options"), j, o) {
			if (j >= 6)
				break;
			buf_puts(out, j == 0 ? ": " : " · ");
			put_html(out, json_string_value(o) ? json_string_value(o) : "", 30);
		}
		buf_printf(out, " (or 'orchestrator approve %lld').", jx_int(q, "id"));
	}
}

/* The factory project's /status (HTML). `run` is the STMT_PROJECT row. */
static void status_report(buf *out, const json_t *r, int n, const char *channel,
			  const PGresult *run)
{
	const json_t *budget = json_object_get(r, "budget");
	const char *name = *jx_str(r, "name") ? jx_str(r, "name") : jx_str(r, "title");
	long long tin = jx_int(r, "tokens_in"), tout = jx_int(r, "tokens_out");

	buf_printf(out, "<b>Project #%d: ", n);
	put_html(out, name, 80);
	buf_puts(out, "</b>\n<b>Stage:</b> ");
	put_html(out, stage_label(jx_str(r, "stage")), 80);
	status_tasks(out, r);
	buf_printf(out, "\n<b>Workers running:</b> %lld", jx_int(r, "workers"));
	status_workers(out, json_object_get(r, "worker_list"));
	status_questions(out, r, channel,
			 pg_rows(run) > 0 && strcmp(pg_val(run, 0, 2), "waiting") == 0 &&
				 strstr(pg_val(run, 0, 3), BOT_INPUT_KEY) != NULL);
	buf_printf(out, "\n<b>Cost:</b> $%.4f so far, %lld tokens (%lld in, %lld out)",
		   json_number_value(json_object_get(r, "cost_usd")), tin + tout, tin, tout);
	if (json_is_object(budget))
		buf_printf(out, "\n<b>Budget:</b> $%.2f ($%.4f spent)",
			   json_number_value(json_object_get(budget, "limit_usd")),
			   json_number_value(json_object_get(budget, "spent_usd")));
	if (*jx_str(r, "repo")) {
		buf_puts(out, "\n<b>Repository:</b> <code>");
		put_html(out, jx_str(r, "repo"), 200);
		buf_puts(out, "</code>");
		if (*jx_str(r, "branch")) {
			buf_puts(out, ", branch ");
			put_html(out, jx_str(r, "branch"), 60);
		}
	}
	if (*jx_str(r, "remote")) {
		buf_puts(out, "\n<b>Remote:</b> ");
		put_html(out, jx_str(r, "remote"), 200);
	}
	if (*jx_str(r, "pull_request")) {
		buf_puts(out, "\n<b>Pull request:</b> ");
		put_html(out, jx_str(r, "pull_request"), 300);
	}
}

/* A thread without a report: its run state. */
static void status_run(buf *out, int n, const PGresult *res)
{
	const char *st = pg_val(res, 0, 2);

	buf_printf(out, "Project #%d: %s\nState: %s", n, pg_val(res, 0, 1), st);
	if (strcmp(st, "waiting") == 0 && *pg_val(res, 0, 3))
		buf_printf(out, " (for: %s)", pg_val(res, 0, 3));
	buf_printf(out, ", step %lld", (long long)pg_int(res, 0, 4));
}

static int cmd_status(pg_conn *c, const bot_input *in, const char *chat)
{
	bot_report_fn report = atomic_load(&g_report);
	int64_t thread;
	int n, rc;
	char key[128], kind[32];
	PGresult *res = NULL;
	json_t *r = NULL, *payload = NULL;
	buf out;

	rc = bot_active_project(c, chat, &thread, &n);
	if (rc < 0)
		return rc;
	if (thread == 0)
		return bot_say(c, in->channel, in->dest, 0,
			       "No project yet. Describe an idea, or use /new <idea>.");
	snprintf(key, sizeof(key), "%s:%d", chat, n);
	{
		const char *params[1] = {key};
		rc = pg_exec_stmt(c, &res, &STMT_PROJECT, params);
	}
	if (rc == 0 && report)
		rc = report(&r, c, thread);
	if (rc < 0)
		goto done;
	buf_init(&out, 0);
	if (pg_rows(res) > 0) {
		const char *st = pg_val(res, 0, 2);
		/* HTML with a report, plain text without */
		if (r)
			status_report(&out, r, n, in->channel, res);
		else
			status_run(&out, n, res);
		if (pg_int(res, 0, 6) > 0)
			buf_printf(&out, "\nQueued messages: %lld", (long long)pg_int(res, 0, 6));
		if (strcmp(st, "failed") == 0 && *pg_val(res, 0, 5)) {
			buf_puts(&out, "\nError: ");
			if (r)
				put_html(&out, pg_val(res, 0, 5), 300);
			else
				tg_truncate(&out, pg_val(res, 0, 5), 300);
		}
	}
	if (!r) {
		rc = bot_say(c, in->channel, in->dest, thread, buf_cstr(&out));
	} else {
		snprintf(kind, sizeof(kind), "%s.send", in->channel);
		payload = json_pack("{s:s}", "html", buf_cstr(&out));
		rc = payload ? bot_emit(c, thread, kind, in->dest, payload)
			     : err_set(ERR_NOMEM, "out of memory");
	}
	buf_free(&out);
done:
	PQclear(res);
	json_decref(r);
	json_decref(payload);
	return rc;
}

static const pg_stmt STMT_CANCEL_WORKERS = {
	"bot_cancel_workers",
	"SELECT spawn_cancel_thread($1::bigint, $2)",
	2,
};

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
	char tid[24], reason[200], idem[64];
	const char *params[2] = {tid, reason};
	PGresult *res = NULL;
	json_t *ev;
	int rc, runs = 0;

	if (out_runs)
		*out_runs = 0;
	if (out_workers)
		*out_workers = 0;
	rc = eng_cancel_thread(c, thread, &runs);
	if (rc == 0)
		rc = cancel_approvals(c, thread);
	if (rc < 0)
		return rc;
	snprintf(tid, sizeof(tid), "%lld", (long long)thread);
	snprintf(reason, sizeof(reason), "the project was cancelled by %s", who ? who : "its owner");
	rc = pg_exec_stmt(c, &res, &STMT_CANCEL_WORKERS, params);
	if (rc == 0 && out_workers)
		*out_workers = (int)pg_int(res, 0, 0);
	PQclear(res);
	if (rc < 0)
		return rc;
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

static int cmd_cancel(pg_conn *c, const bot_input *in, const char *chat)
{
	int64_t thread;
	int n, rc, cancelled = 0;
	char msg[160];

	rc = bot_active_project(c, chat, &thread, &n);
	if (rc < 0)
		return rc;
	if (thread == 0)
		return bot_say(c, in->channel, in->dest, 0, "There is no project to cancel.");
	rc = bot_cancel_project(c, thread, in->user_name && *in->user_name ? in->user_name : "/cancel",
				&cancelled, NULL);
	if (rc < 0)
		return rc;
	if (cancelled > 0)
		snprintf(msg, sizeof(msg), "Project #%d: cancelled %d run%s.", n, cancelled,
			 cancelled == 1 ? "" : "s");
	else
		snprintf(msg, sizeof(msg), "Project #%d has nothing running.", n);
	return bot_say(c, in->channel, in->dest, thread, msg);
}

static int cmd_projects(pg_conn *c, const bot_input *in, const char *chat)
{
	const char *params[1] = {chat};
	PGresult *res = NULL;
	int64_t thread;
	int n, rc;
	buf out;

	rc = bot_active_project(c, chat, &thread, &n);
	if (rc == 0)
		rc = pg_exec_stmt(c, &res, &STMT_PROJECTS, params);
	if (rc < 0)
		return rc;
	buf_init(&out, 0);
	if (pg_rows(res) == 0)
		buf_puts(&out, "No projects yet. Describe an idea, or use /new <idea>.");
	else
		buf_puts(&out, "Your projects:");
	for (int i = 0; i < pg_rows(res); i++)
		buf_printf(&out, "\n%s #%lld %s — %s", pg_int(res, i, 0) == n ? "▶" : " ",
			   (long long)pg_int(res, i, 0), pg_val(res, i, 1), pg_val(res, i, 2));
	if (pg_rows(res) > 1)
		buf_puts(&out, "\n/switch <number> changes the active one.");
	rc = bot_say(c, in->channel, in->dest, 0, buf_cstr(&out));
	PQclear(res);
	buf_free(&out);
	return rc;
}

static int cmd_switch(pg_conn *c, const bot_input *in, const char *chat, const char *arg)
{
	char key[128], num[16], msg[256];
	const char *a = arg[0] == '#' ? arg + 1 : arg;
	int64_t v = 0, thread = 0;
	PGresult *res = NULL;
	int rc, n;

	if (!*a)
		return bot_say(c, in->channel, in->dest, 0,
			       "Which one? /switch <number or name> (see /projects)");
	if (cfg_parse_int(a, &v) < 0 || v < 1 || v > 1000000) {
		const char *params[2] = {chat, a};
		rc = pg_exec_stmt(c, &res, &STMT_FIND_TITLE, params);
		if (rc < 0)
			return rc;
		v = pg_rows(res) > 0 ? pg_int(res, 0, 0) : 0;
		PQclear(res);
		res = NULL;
	}
	snprintf(key, sizeof(key), "%s:%lld", chat, (long long)v);
	if (v > 0 && eng_thread_find(c, key, &thread) < 0) {
		err_clear();
		thread = 0;
	}
	if (thread == 0)
		return bot_say(c, in->channel, in->dest, 0,
			       "There is no such project (see /projects).");
	snprintf(num, sizeof(num), "%lld", (long long)v);
	{
		const char *params[2] = {chat, num};
		rc = pg_exec_stmt(c, NULL, &STMT_SWITCH, params);
	}
	if (rc < 0)
		return rc;
	rc = bot_active_project(c, chat, &thread, &n);
	if (rc < 0)
		return rc;
	snprintf(msg, sizeof(msg), "Project #%d is now the active one.", n);
	return bot_say(c, in->channel, in->dest, thread, msg);
}

int bot_command(pg_conn *c, const char *graph, const bot_input *in, const char *cmd,
		const char *args)
{
	char chat[96];

	bot_chat_key(in->channel, in->dest, chat, sizeof(chat));
	if (strcmp(cmd, "start") == 0) {
		buf out;
		int rc;
		buf_init(&out, 0);
		buf_printf(&out, "Hello%s%s! I am orchestrator, a software factory.\n\n%s",
			   in->user_name && *in->user_name ? ", " : "",
			   in->user_name ? in->user_name : "", bot_help_text(in->channel));
		rc = bot_say(c, in->channel, in->dest, 0, buf_cstr(&out));
		buf_free(&out);
		return rc;
	}
	if (strcmp(cmd, "help") == 0)
		return bot_say(c, in->channel, in->dest, 0, bot_help_text(in->channel));
	if (strcmp(cmd, "new") == 0)
		return cmd_new(c, graph, in, args);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(c, in, chat);
	if (strcmp(cmd, "cancel") == 0)
		return cmd_cancel(c, in, chat);
	if (strcmp(cmd, "projects") == 0)
		return cmd_projects(c, in, chat);
	if (strcmp(cmd, "switch") == 0)
		return cmd_switch(c, in, chat, args);
	{
		char msg[160];
		snprintf(msg, sizeof(msg), "I don't know /%.40s. /help lists what I understand.", cmd);
		return bot_say(c, in->channel, in->dest, 0, msg);
	}
}
