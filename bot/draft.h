/*
 * draft — replies written live in Telegram: while a node's model writes a
 * reply that is meant to be read (engine/stream.h messages events naming a
 * field to show, bot/reply.h), the person sees it grow in their private
 * chat as a draft (sendMessageDraft: one draft_id per reply, so Telegram
 * animates the changes; ephemeral, about 30 s). The reply itself is then
 * sent through the outbox as always (sendMessage), with its guarantees: a
 * draft is only a preview and is never relied upon.
 *
 * Drafts are paced by the chat's limits (bot/limit.h: at most one message
 * per second per chat, counted with the others), so they never delay a
 * real message by more than one interval; what accumulated meanwhile goes
 * in the next draft. Each draft holds the whole text so far (the secrets
 * filter sees all of it), cut to Telegram's 4096 characters. In a group,
 * and in a chat that refused a draft (any 4xx), the person gets the typing
 * action instead. Only the polling (leader) bot sends.
 */
#ifndef ORCH_BOT_DRAFT_H
#define ORCH_BOT_DRAFT_H

#include <stdatomic.h>
#include <stdint.h>

#include "bot/limit.h"
#include "engine/stream.h"

typedef struct bot_drafts bot_drafts;

typedef struct bot_drafts_options {
	const char *api_base;
	const char *token;
	bot_limiter *limiter;      /* shared with the relay (borrowed) */
	eng_stream_hub *hub;       /* the replies come from here (borrowed) */
	const atomic_int *leader;  /* send only while non-zero (borrowed); NULL: always */
} bot_drafts_options;

typedef struct bot_drafts_stats {
	int64_t drafts;     /* drafts Telegram accepted */
	int64_t refused;    /* drafts refused (the chat then gets typing) */
	int64_t typing;     /* typing actions sent instead */
} bot_drafts_stats;

/* Starts the thread that sends drafts. The caller owns *out. */
int bot_drafts_start(bot_drafts **out, const bot_drafts_options *opt);

void bot_drafts_stats_get(bot_drafts *d, bot_drafts_stats *out);

/* Stops the thread and frees. NULL is a no-op. */
void bot_drafts_stop(bot_drafts *d);

#endif
