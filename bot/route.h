/*
 * route — what a chat's input does, the same for Telegram and the terminal.
 *
 * A chat ("tg:<chat id>" or "term:<name>") has projects; project n is the
 * thread "<chat>:<n>" of the graph named by ORCH_GRAPH, and one of them is
 * active. Plain text goes to the active project (a chat without one gets a
 * new project started with it):
 *
 *   - when the project's run waits for the event key "input"
 *     (BOT_INPUT_KEY), the text is delivered as that event;
 *   - otherwise a run is queued with the state update {"input": <input>},
 *     behind the project's active run when it is busy (double texting:
 *     enqueue). Should that busy run then park waiting for "input", the
 *     queued text is handed to it as the event instead (a trigger in
 *     migrations/004_bot.sql), so a question is never left unanswered
 *     while its answer waits in the queue.
 *
 * <input> is {"text", "channel", "chat", "user": {"id", "name",
 * "username"}, "message_id", "update_id"} (see bot/bot.h); the thread's
 * metadata holds {"channel", "chat", "title", "n"}.
 *
 * Commands (the table of bot/command.h: /start, /help, /new <idea>,
 * /status, /cancel, /projects, /switch <project>) are answered with outbox rows of kind
 * "<channel>.send" in the caller's transaction, so a reply is sent once
 * and in order with the nodes' messages. /status shows the project's
 * report (bot_set_report, HTML) when its graph gives one, else its run
 * state; both with the queued messages and the error of a failed run.
 *
 * Every function runs on the caller's connection, inside the caller's
 * transaction when there is one.
 */
#ifndef ORCH_BOT_ROUTE_H
#define ORCH_BOT_ROUTE_H

#include <jansson.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/pg.h"

#define BOT_INPUT_KEY "input"
#define BOT_DEFAULT_GRAPH "factory"

/* Writes an outbox row as a node's eng_emit would (thread_id 0: none). */
int bot_emit(pg_conn *c, int64_t thread_id, const char *kind, const char *dest,
	     const json_t *payload);

/* Writes a "<channel>.send" row with `text` (plain) to `dest`. */
int bot_say(pg_conn *c, const char *channel, const char *dest, int64_t thread_id,
	    const char *text);

/* One piece of input from a person. */
typedef struct bot_input {
	const char *channel;    /* "telegram" | "term" */
	const char *dest;       /* Telegram chat id as text, or the terminal name */
	const char *text;
	int64_t user_id;        /* 0 for the terminal */
	const char *user_name;
	const char *username;
	int64_t message_id;     /* 0 when none */
	int64_t update_id;      /* 0 when none */
	const json_t *change;   /* a change to an existing repository (/new --repo):
				 * {"repo", "branch", "pr", "handle", "secret"}; NULL: none */
} bot_input;

/* "tg:<dest>" or "term:<dest>" into out[cap]. */
void bot_chat_key(const char *channel, const char *dest, char *out, size_t cap);

/* The input as the JSON nodes receive (new reference; NULL on ENOMEM). */
json_t *bot_input_json(const bot_input *in);

/* A batch of plain-text inputs routed in one round trip. */
typedef struct bot_batch {
	json_t *items;          /* [{chat, input, idem, meta}] */
} bot_batch;

void bot_batch_init(bot_batch *b);
void bot_batch_clear(bot_batch *b);
/* Adds one input; `idem` names it for event delivery ("tg:u:<update_id>"). */
int bot_batch_add(bot_batch *b, const bot_input *in, const char *idem);
/* Routes the inputs added so far (in order) with graph `graph` for new
 * projects, and empties the batch. *out_delivered and *out_queued (may be
 * NULL) count events delivered and runs queued or started. */
int bot_batch_flush(bot_batch *b, pg_conn *c, const char *graph, int *out_delivered,
		    int *out_queued);

/* Starts project n+1 of the input's chat with `idea` (graph `graph`), as
 * /new does: the new project becomes the active one, its first run gets
 * the idea as input (with "change" when `change` is not NULL: a change to
 * an existing repository), and the chat is told. *out_thread and *out_n
 * (may be NULL) get the project's thread and number. */
int bot_new_project(pg_conn *c, const char *graph, const bot_input *in, const char *idea,
		    const json_t *change, int64_t *out_thread, int *out_n);

/* Handles command `cmd` ("new", without the slash) with `args` from `in`.
 * /new takes options before the idea: --repo URL [--branch NAME] [--pr]
 * [--handle res_...] (a change to an existing repository).
 * Unknown commands get a short help. `graph` is used for new projects. */
int bot_command(pg_conn *c, const char *graph, const bot_input *in, const char *cmd,
		const char *args);

/* Stops the workers of thread `thread` in the caller's transaction (unsent
 * requests dropped, running workers stopped) with `reason`; *out_n (may be
 * NULL) gets how many. The spawner's spw_cancel_thread (spawner/spawner.h)
 * is one, installed by the command line (the bot does not know the
 * spawner, ARCHITECTURE §2). */
typedef int (*bot_cancel_workers_fn)(pg_conn *c, int64_t thread, const char *reason, int *out_n);

/* Installs the process-wide worker cancel that bot_cancel_project calls
 * (NULL removes it). Thread-safe. */
void bot_set_cancel_workers(bot_cancel_workers_fn fn);

/* Cancels a project (thread `thread`): its active runs (engine/control.h),
 * its open approvals (their Telegram messages lose their buttons), its
 * workers (the bot_set_cancel_workers hook), and delivers the event
 * "cancel" ({"by", "at"}) so the project's next run knows. `who` names the
 * canceller. Runs in the caller's transaction. out_runs/out_workers (may be
 * NULL) get the counts. ERR_INTERNAL, before anything changes, when no
 * worker cancel was installed. */
int bot_cancel_project(pg_conn *c, int64_t thread, const char *who, int *out_runs,
		       int *out_workers);

/* Routes `in` (its channel and dest: the project's chat) to project
 * `thread` of that chat, which becomes the chat's active project, as if the
 * person had switched to it and typed the text (no message says so): an
 * event when its run waits for input, else a queued run. `how` (cap
 * how_cap) gets "delivered" or "queued". ERR_INVALID when the thread is no
 * project of that chat. Runs in the caller's transaction. */
int bot_route_project(pg_conn *c, const char *graph, int64_t thread, const bot_input *in,
		      const char *idem, char *how, size_t how_cap);

/* The chat's active project: thread id (0 when none) and number. */
int bot_active_project(pg_conn *c, const char *chat_key, int64_t *out_thread, int *out_n);

/* A project's report for /status, from the part that knows the project's
 * graph (the factory's is nodes/report.h, installed by the command line):
 * *out (owned by the caller) is an object, or NULL when the thread is not
 * such a project. The keys /status shows, each optional:
 *
 *   "stage", "name", "tasks": {"total", "merged", "skipped"},
 *   "task_list": [{"title", "status", "label"}], "workers" (running now),
 *   "open": [{"id", "question", "channel", "options": ["label", ...]}],
 *   "tokens_in", "tokens_out", "cost_usd", "budget": {"limit_usd",
 *   "spent_usd"}, "repo", "branch", "remote", "pull_request" (a URL).
 *
 * Runs on the caller's connection, inside its transaction. */
typedef int (*bot_report_fn)(json_t **out, pg_conn *c, int64_t thread);

/* Installs the process-wide report (NULL removes it: /status then shows the
 * run state only, as for any thread). Thread-safe. */
void bot_set_report(bot_report_fn fn);

/* The help text (plain) of `channel`, made from the table (bot/command.h);
 * static, never freed. */
const char *bot_help_text(const char *channel);

#endif
