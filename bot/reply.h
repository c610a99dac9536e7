/*
 * reply — following the model's replies as they are written, from the
 * messages events of a run's stream (engine/stream.h), for the chats that
 * show them live: the terminal chat and the Telegram drafts.
 *
 * A reply is one model call. Only calls whose start names a field to show
 * ("display": the brainstorm's "message") are followed; their text is that
 * JSON member read as it arrives (core/jsonx.h jx_pick). A second start of
 * a call (a retry, the next model) starts its text again. A gap in the
 * stream (a dropped event) marks every reply followed as incomplete: what
 * is shown of it can no longer be trusted to be the whole text.
 */
#ifndef ORCH_BOT_REPLY_H
#define ORCH_BOT_REPLY_H

#include <stdint.h>

#include "core/buf.h"
#include "core/jsonx.h"
#include "engine/stream.h"

#define BOT_REPLY_MAX 64 /* replies followed at once */

typedef struct bot_reply {
	char call[40];
	int64_t thread_id, run_id;
	char thread_key[96];
	char node[64];
	jx_pick pick;
	buf text;          /* what the field holds so far */
	int attempt;       /* starts seen */
	int ended;         /* its end arrived */
	int ok;            /* ... and the reply was accepted */
	int incomplete;    /* events were lost while it was written */
	int64_t touched_ms; /* monotonic time of its last event */
	void *udata;       /* the consumer's (draft id, printed length) */
	int64_t shown;     /* the consumer's: bytes of text shown */
	int64_t draft_id;  /* the consumer's */
} bot_reply;

typedef struct bot_replies {
	bot_reply r[BOT_REPLY_MAX];
	int n;
} bot_replies;

void bot_replies_init(bot_replies *t);
void bot_replies_clear(bot_replies *t);

/* Takes one event. For a messages event of a followed call (or one that
 * starts being followed) returns its reply and sets *changed when its text
 * grew, started again or ended; else NULL. A dropped event marks every
 * reply incomplete (and returns NULL). The oldest reply is forgotten when
 * BOT_REPLY_MAX are followed. */
bot_reply *bot_replies_feed(bot_replies *t, const eng_stream_event *ev, int *changed);

/* The reply of `call`, or NULL. */
bot_reply *bot_replies_find(bot_replies *t, const char *call);

/* Forgets a reply. */
void bot_replies_forget(bot_replies *t, bot_reply *r);

#endif
