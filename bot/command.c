#include "bot/command.h"
#include "bot/text.h"
#include "core/config.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/utf8.h"
#include "engine/control.h"
#include "engine/report.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt STMT_SWITCH = {
	"bot_switch",
	"UPDATE bot_chats SET active = $2::int, updated_at = now() WHERE chat = $1",
	2,
};

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

static int cmd_new(const bot_cmd_ctx *x)
{
	pg_conn *c = x->c;
	const bot_input *in = x->in;
	const char *args = x->args;
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
		rc = bot_new_project(c, x->graph, in, idea, change, NULL, NULL);
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

/* The factory project's /status (HTML) with its current run. */
static void status_report(buf *out, const json_t *r, int n, const char *channel,
			  const eng_report_run *run)
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
			 strcmp(run->status, "waiting") == 0 &&
				 strstr(run->waiting, BOT_INPUT_KEY) != NULL);
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
static void status_run(buf *out, int n, const eng_report_run *run)
{
	buf_printf(out, "Project #%d: %s\nState: %s", n, run->title, run->status);
	if (strcmp(run->status, "waiting") == 0 && *run->waiting)
		buf_printf(out, " (for: %s)", run->waiting);
	buf_printf(out, ", step %lld", (long long)run->step);
}

static int cmd_status(const bot_cmd_ctx *x)
{
	pg_conn *c = x->c;
	const bot_input *in = x->in;
	const char *chat = x->chat;
	bot_report_fn report = atomic_load(&g_report);
	int64_t thread;
	int n, rc;
	char key[128], kind[32];
	eng_report_run run;
	json_t *r = NULL, *payload = NULL;
	buf out;

	rc = bot_active_project(c, chat, &thread, &n);
	if (rc < 0)
		return rc;
	if (thread == 0)
		return bot_say(c, in->channel, in->dest, 0,
			       "No project yet. Describe an idea, or use /new <idea>.");
	snprintf(key, sizeof(key), "%s:%d", chat, n);
	rc = eng_report_key_run(c, key, &run);
	if (rc == 0 && report)
		rc = report(&r, c, thread);
	if (rc < 0)
		goto done;
	buf_init(&out, 0);
	if (run.thread_id != 0) {
		/* HTML with a report, plain text without */
		if (r)
			status_report(&out, r, n, in->channel, &run);
		else
			status_run(&out, n, &run);
		if (run.queued > 0)
			buf_printf(&out, "\nQueued messages: %lld", (long long)run.queued);
		if (strcmp(run.status, "failed") == 0 && *run.error) {
			buf_puts(&out, "\nError: ");
			if (r)
				put_html(&out, run.error, 300);
			else
				tg_truncate(&out, run.error, 300);
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
	json_decref(r);
	json_decref(payload);
	return rc;
}

static int cmd_cancel(const bot_cmd_ctx *x)
{
	pg_conn *c = x->c;
	const bot_input *in = x->in;
	const char *chat = x->chat;
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

static int cmd_projects(const bot_cmd_ctx *x)
{
	pg_conn *c = x->c;
	const bot_input *in = x->in;
	const char *chat = x->chat;
	json_t *list = NULL, *p;
	int64_t thread;
	int n, rc;
	size_t i;
	buf out;

	rc = bot_active_project(c, chat, &thread, &n);
	if (rc == 0)
		rc = eng_report_numbered(c, chat, &list);
	if (rc < 0)
		return rc;
	buf_init(&out, 0);
	if (json_array_size(list) == 0)
		buf_puts(&out, "No projects yet. Describe an idea, or use /new <idea>.");
	else
		buf_puts(&out, "Your projects:");
	json_array_foreach(list, i, p)
		buf_printf(&out, "\n%s #%lld %s — %s", jx_int(p, "n") == n ? "▶" : " ",
			   jx_int(p, "n"), jx_str(p, "title"), jx_str(p, "status"));
	if (json_array_size(list) > 1)
		buf_puts(&out, "\n/switch <number> changes the active one.");
	rc = bot_say(c, in->channel, in->dest, 0, buf_cstr(&out));
	json_decref(list);
	buf_free(&out);
	return rc;
}

static int cmd_switch(const bot_cmd_ctx *x)
{
	pg_conn *c = x->c;
	const bot_input *in = x->in;
	const char *chat = x->chat, *arg = x->args;
	char key[128], num[16], msg[256];
	const char *a = arg[0] == '#' ? arg + 1 : arg;
	int64_t v = 0, thread = 0;
	int rc, n;

	if (!*a)
		return bot_say(c, in->channel, in->dest, 0,
			       "Which one? /switch <number or name> (see /projects)");
	if (cfg_parse_int(a, &v) < 0 || v < 1 || v > 1000000) {
		rc = eng_report_find_title(c, chat, a, &v);
		if (rc < 0)
			return rc;
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

static int cmd_start(const bot_cmd_ctx *x);
static int cmd_help(const bot_cmd_ctx *x);

/* The commands, in the order the help texts list them. */
static const bot_cmd COMMANDS[] = {
	{"start", "", "greet and show the help", NULL, cmd_start, BOT_ON_ALL | BOT_HIDDEN},
	{"new", "<idea>", "start a new project",
	 "Starts a new project with the idea and makes it the active one.\n"
	 "/new --repo <url> [--branch B] [--pr] [--handle res_…] <change> changes an existing "
	 "repository instead: the change is made on a branch, and --pr opens a pull request.",
	 cmd_new, BOT_ON_ALL},
	{"status", "", "the active project: stage, tasks, workers, your open questions, cost", NULL,
	 cmd_status, BOT_ON_ALL},
	{"projects", "", "your projects", NULL, cmd_projects, BOT_ON_ALL},
	{"switch", "<number or name>", "make another project the active one", NULL, cmd_switch,
	 BOT_ON_ALL},
	{"cancel", "", "stop the active project's work",
	 "Cancels the active project's runs and workers; its open questions end.", cmd_cancel,
	 BOT_ON_ALL},
	{"history", "[n]", "the active project's last messages", NULL, NULL, BOT_ON_TERM},
	{"approve", "<n>", "answer the pending question with option n (or type n)", NULL, NULL,
	 BOT_ON_TERM},
	{"help", "[command]", "this text, or a command's", NULL, cmd_help, BOT_ON_ALL},
	{"quit", "", "leave the chat", NULL, NULL, BOT_ON_TERM},
};

#define NCOMMANDS (sizeof(COMMANDS) / sizeof(COMMANDS[0]))

const bot_cmd *bot_cmd_table(size_t *n)
{
	*n = NCOMMANDS;
	return COMMANDS;
}

static unsigned channel_bit(const char *channel)
{
	return strcmp(channel, "term") == 0 ? BOT_ON_TERM : BOT_ON_TG;
}

const bot_cmd *bot_cmd_find(const char *name, const char *channel)
{
	unsigned bit = channel_bit(channel);

	for (size_t i = 0; i < NCOMMANDS; i++)
		if ((COMMANDS[i].where & bit) && strcmp(COMMANDS[i].name, name) == 0)
			return &COMMANDS[i];
	return NULL;
}

/* "/name args" into out. */
static void put_usage(buf *out, const bot_cmd *k)
{
	buf_printf(out, "/%s%s%s", k->name, *k->args ? " " : "", k->args);
}

/* The help of `channel` (plain), generated from the table. */
static void help_text(buf *out, const char *channel)
{
	unsigned bit = channel_bit(channel);
	int term = bit == BOT_ON_TERM;

	buf_puts(out, "Describe an idea and orchestrator takes it from there.\n");
	if (!term)
		buf_puts(out, "\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const bot_cmd *k = &COMMANDS[i];
		size_t start = out->len;

		if (!(k->where & bit) || (k->where & BOT_HIDDEN))
			continue;
		if (term) {
			buf_puts(out, "  ");
			put_usage(out, k);
			while (out->len - start < 21)
				buf_putc(out, ' ');
			buf_printf(out, "%s\n", k->help);
		} else {
			put_usage(out, k);
			buf_printf(out, " — %s\n", k->help);
		}
	}
	buf_puts(out, term ? "Any other text goes to the active project." :
			     "\nAny other message goes to the active project. Questions that need "
			     "your decision come with buttons.");
}

const char *bot_help_text(const char *channel)
{
	static char text[2][4096];
	static atomic_int made[2];
	int i = channel_bit(channel) == BOT_ON_TERM;

	/* the table is constant: the text is made once per channel (a race makes
	 * it twice, the same bytes) */
	if (!atomic_load(&made[i])) {
		buf out;

		buf_init(&out, 0);
		help_text(&out, i ? "term" : "telegram");
		snprintf(text[i], sizeof(text[i]), "%s", buf_cstr(&out));
		buf_free(&out);
		atomic_store(&made[i], 1);
	}
	return text[i];
}

static int cmd_help(const bot_cmd_ctx *x)
{
	const char *name = x->args[0] == '/' ? x->args + 1 : x->args;
	const bot_cmd *k = *name ? bot_cmd_find(name, x->in->channel) : NULL;
	buf out;
	int rc;

	if (!k)
		return bot_say(x->c, x->in->channel, x->in->dest, 0, bot_help_text(x->in->channel));
	buf_init(&out, 0);
	put_usage(&out, k);
	buf_printf(&out, " — %s", k->help);
	if (k->more)
		buf_printf(&out, "\n\n%s", k->more);
	rc = bot_say(x->c, x->in->channel, x->in->dest, 0, buf_cstr(&out));
	buf_free(&out);
	return rc;
}

static int cmd_start(const bot_cmd_ctx *x)
{
	const bot_input *in = x->in;
	buf out;
	int rc;

	buf_init(&out, 0);
	buf_printf(&out, "Hello%s%s! I am orchestrator, a software factory.\n\n%s",
		   in->user_name && *in->user_name ? ", " : "", in->user_name ? in->user_name : "",
		   bot_help_text(in->channel));
	rc = bot_say(x->c, in->channel, in->dest, 0, buf_cstr(&out));
	buf_free(&out);
	return rc;
}

int bot_command(pg_conn *c, const char *graph, const bot_input *in, const char *cmd,
		const char *args)
{
	char chat[96], msg[400];
	const bot_cmd *k = bot_cmd_find(cmd, in->channel);
	bot_cmd_ctx x = {c, graph, in, chat, args ? args : ""};
	buf usage;

	bot_chat_key(in->channel, in->dest, chat, sizeof(chat));
	if (k && k->fn)
		return k->fn(&x);
	if (!k) {
		snprintf(msg, sizeof(msg), "I don't know /%.40s. /help lists what I understand.", cmd);
		return bot_say(c, in->channel, in->dest, 0, msg);
	}
	/* a command the channel's loop answers, reaching here with arguments it
	 * did not take (/approve x): how to use it */
	buf_init(&usage, 0);
	put_usage(&usage, k);
	snprintf(msg, sizeof(msg), "Usage: %s — %s", buf_cstr(&usage), k->help);
	buf_free(&usage);
	return bot_say(c, in->channel, in->dest, 0, msg);
}

json_t *bot_commands_json(void)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < NCOMMANDS; i++) {
		const bot_cmd *k = &COMMANDS[i];

		if (!(k->where & BOT_ON_TG) || (k->where & BOT_HIDDEN))
			continue;
		if (json_array_append_new(list, json_pack("{s:s,s:s}", "command", k->name,
							  "description", k->help)) < 0) {
			json_decref(list);
			list = NULL;
		}
	}
	return list;
}

int bot_commands_publish(tg_client *tg)
{
	json_t *list = bot_commands_json();
	json_t *params = list ? json_pack("{s:o}", "commands", list) : NULL;
	int rc;

	if (!params)
		return err_set(ERR_NOMEM, "out of memory");
	rc = tg_call(tg, "setMyCommands", params, 0, NULL, NULL);
	json_decref(params);
	return rc;
}
