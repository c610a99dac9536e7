/*
 * relay — delivers the telegram.* outbox rows (the kinds and payloads are
 * in bot/bot.h) to the Bot API, within Telegram's limits.
 *
 * Built on engine/outbox.h's relay thread: rows of one chat go out in
 * order; a row whose chat must wait (1 s per chat, 20/min per group, 30/s
 * overall, or a 429's retry_after) is deferred without counting a failure.
 * Every message (each part of a text split into several, a document, an
 * approval's question) is recorded in bot_sent (approvals: their message
 * id) on a connection taken before it is sent, one round trip after
 * Telegram accepted it, so a retried row never sends a part twice and the
 * pacing never blocks the other chats. The Bot API has no idempotency key:
 * a process killed between Telegram's acceptance and that record sends the
 * message again when the row is retried (at least once). A 400 the message
 * will never get past makes the row dead; 5xx and network errors are
 * retried with backoff.
 */
#ifndef ORCH_BOT_RELAY_H
#define ORCH_BOT_RELAY_H

#include <stdint.h>

#include "bot/limit.h"
#include "core/pg.h"

#define BOT_TG_KINDS                                                                           \
	"{telegram.send,telegram.edit,telegram.progress,telegram.document,telegram.action,"     \
	"telegram.approval}"

/* Texts longer than this many characters go as a document. */
#define BOT_DOC_THRESHOLD 16384

typedef struct bot_relay bot_relay;

typedef struct bot_relay_options {
	const char *api_base;
	const char *token;
	bot_limiter *limiter;          /* shared with the poller (borrowed) */
	const unsigned char *key;      /* approval MAC key, 32 bytes (borrowed) */
	int64_t approval_ttl_s;
	int64_t poll_ms;               /* look for due rows this often */
} bot_relay_options;

/* Creates the relay on `pool` (borrowed). The caller owns *out. */
int bot_relay_new(bot_relay **out, pg_pool *pool, const bot_relay_options *opt);
int bot_relay_start(bot_relay *r);
void bot_relay_stop(bot_relay *r);
void bot_relay_free(bot_relay *r);

#endif
