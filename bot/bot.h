/*
 * bot — the Telegram bot role: durable long polling, routing, approvals and
 * rate-limited delivery of the outbox. Knows no node and no graph.
 *
 * One process at a time is the leader (a PostgreSQL advisory lock per bot
 * id); the others stand by and take over when it dies. The leader runs:
 *
 *   - the poller, on libevent (curl multi): deleteWebhook at start, then
 *     getUpdates with timeout 50 s and allowed_updates [message,
 *     callback_query]. Each batch's updates (update_id unique) and the
 *     events and runs they cause are stored in ONE transaction before the
 *     next getUpdates confirms them (offset = last id + 1), so a crash
 *     loses nothing and a redelivered update changes nothing. 401 stops the
 *     bot with a clear message; 409 (another poller, a webhook) backs off
 *     and warns, never spins; 429 obeys retry_after; 5xx and network errors
 *     back off with jitter; a malformed reply or update is logged and
 *     skipped.
 *   - the relay (engine/outbox.h) for the telegram.* kinds below, within
 *     Telegram's limits (bot/limit.h);
 *   - a typing action every ~4 s in chats whose project has a running run;
 *   - with a stream hub (cfg.hub), the model's replies as drafts while they
 *     are written, in private chats (bot/draft.h);
 *   - expiry of pending approvals.
 *
 * Only users in ORCH_ALLOWED_USERS (numeric ids) are served; anyone else
 * gets one polite refusal (with their id, so the owner can add it) and
 * nothing else happens.
 *
 * ===================== The contract with nodes =====================
 *
 * INPUT. A project is a thread keyed "tg:<chat id>:<n>" (terminal:
 * "term:<name>:<n>") of the graph ORCH_GRAPH. A person's text reaches it
 * either as the state update {"input": I} of a new run, or — when the
 * thread's run waits for the key "input" (eng_await(ctx, "input", ...)) —
 * as that event's value I:
 *
 *   I = {"text": "...", "channel": "telegram" | "term", "chat": "<dest>",
 *        "user": {"id": 42, "name": "Ada L", "username": "ada"},
 *        "message_id": 7, "update_id": 1001}
 *
 * The thread's metadata holds {"channel", "chat", "title", "n"}.
 *
 * OUTPUT. A node replies through the outbox: eng_emit(ctx, KIND, chat,
 * payload) with KIND = "<channel>.<verb>" (channel and chat as in I, so
 * one node serves Telegram and the terminal alike) and dest = the chat.
 * Rows of one chat go out in order. Every text passes redact_buf().
 *
 *   <channel>.send      {"text": "plain"} or {"html": "<b>HTML</b>"};
 *                       optional "ref": "name" (remember the message for
 *                       .edit/.progress), "silent": true, "reply_to": id,
 *                       "buttons": [{"text", "url"}] (links only: decisions
 *                       go through .approval), "filename": "x.txt" (used
 *                       when the text is long enough to go as a document).
 *                       Text over 4096 characters is split at newlines;
 *                       over 16384 it goes as a document. HTML that
 *                       Telegram refuses is resent as plain text.
 *   <channel>.edit      {"ref": "name"} or {"message_id": id}, with
 *                       "text"/"html" (editMessageText) and/or
 *                       "keyboard": "remove" (alone: editMessageReplyMarkup).
 *                       An edit to the same content counts as done.
 *   <channel>.progress  {"ref": "name", "text"/"html"}: the first sends a
 *                       message, later ones edit it (progress without
 *                       flooding the chat).
 *   <channel>.document  {"filename": "diff.patch", "content": "...",
 *                       "caption": "..."}: long diffs and logs.
 *   <channel>.action    {"action": "typing"}.
 *   <channel>.approval  {"question": "Merge the plan?", "key": "approval",
 *                       "options": ["Approve", "Reject"] or
 *                       [{"id": "approve", "label": "✅ Approve"}, ...]
 *                       (default approve/reject), "approvers": [user ids]
 *                       (default: every allowed user), "expires_in": s
 *                       (default ORCH_APPROVAL_TTL, 24 h)}.
 *                       The node then eng_await(ctx, key, ...) and gets
 *                       the decision (bot/approval.h):
 *                       {"approval", "option", "label", "index", "by",
 *                        "expired": false}, or on expiry
 *                       {"approval", "option": null, "expired": true}.
 *                       Emit the approval in one node and await it in the
 *                       next (a small gate node): a node that parks
 *                       commits nothing but its wait, and the gate runs
 *                       again on resume without asking twice. Waiting
 *                       for "input" after a question works the same way.
 * ===================================================================
 */
#ifndef ORCH_BOT_BOT_H
#define ORCH_BOT_BOT_H

#include <stdint.h>

#include "core/pg.h"
#include "engine/stream.h"

#define BOT_MAX_ALLOWED 1024

typedef struct bot_config {
	char token[256];            /* TELEGRAM_BOT_TOKEN */
	char api_base[512];         /* TELEGRAM_API_BASE */
	char graph[64];             /* ORCH_GRAPH (default "factory") */
	int64_t allowed[BOT_MAX_ALLOWED]; /* ORCH_ALLOWED_USERS */
	int nallowed;
	char key_file[1024];        /* ORCH_BOT_KEY_FILE (default $ORCH_DATA_DIR/bot.key) */
	int64_t poll_timeout_s;     /* ORCH_TG_POLL_TIMEOUT (default 50 s) */
	double rate_scale;          /* ORCH_TG_RATE_SCALE (default 1: Telegram's limits) */
	int64_t approval_ttl_s;     /* ORCH_APPROVAL_TTL (default 24 h) */
	int64_t typing_ms;          /* ORCH_TG_TYPING (default 4 s; 0: off) */
	int64_t backoff_ms;         /* first delay after an error (default 1 s) */
	int64_t max_backoff_ms;     /* cap (default 60 s) */
	int64_t standby_ms;         /* a standby process retries the leader lock this often (5 s) */
	eng_stream_hub *hub;        /* set by the caller: replies shown as drafts while they are
				     * written (bot/draft.h); NULL: none. Borrowed */
} bot_config;

/* Fills `out` from the environment. ERR_INVALID naming the variable when
 * one does not parse (ORCH_ALLOWED_USERS must be numeric ids). A missing
 * token is not an error here (token[0] == '\0'): callers decide. */
int bot_config_load(bot_config *out, const char *data_dir);

/* Parses "12345, 67890" into ids. ERR_INVALID naming a bad item. */
int bot_parse_allowed(const char *s, int64_t *out, int cap, int *n);

typedef struct bot bot;

/* Creates the bot on `pool` (borrowed; needs >= 3 connections). Loads the
 * approval key (bot/approval.h). The caller owns *out. */
int bot_new(bot **out, pg_pool *pool, const bot_config *cfg);

/* Runs the bot in the calling thread until bot_stop or a fatal error:
 * returns 0 after bot_stop, ERR_AUTH when Telegram refuses the token. */
int bot_run(bot *b);

/* Runs bot_run in a thread of its own. */
int bot_start(bot *b);

/* Asks the bot to stop (any thread, async-signal-unsafe). */
void bot_stop(bot *b);

/* After bot_start: waits for the thread; returns what bot_run returned. */
int bot_join(bot *b);

/* Stops, joins and frees. NULL is a no-op. */
void bot_free(bot *b);

/* True once the thread started by bot_start has ended (bot_join returns
 * at once then). */
int bot_done(const bot *b);

/* True while the bot runs and holds the leader lock. */
int bot_is_leader(const bot *b);

#endif
