/*
 * say — how the factory's nodes talk to the person: outbox rows of the
 * bot's kinds (bot/bot.h), addressed to the project's chat, so one node
 * serves Telegram and the terminal alike. Every function writes its row
 * through eng_emit (in the step's transaction: sent once, when the step
 * commits) and never calls the bot. Texts are plain or Telegram HTML.
 */
#ifndef ORCH_NODES_SAY_H
#define ORCH_NODES_SAY_H

#include <jansson.h>

#include "core/buf.h"
#include "engine/ctx.h"

/* Where a project talks: the channel ("telegram", "term") and the chat. */
typedef struct nd_chat {
	char channel[16];
	char chat[96];
} nd_chat;

/* The chat from the state's "chat" (or, before it is set, from `input`, a
 * person's input; may be NULL). ERR_INVALID when neither names one. */
int nd_chat_get(const json_t *state, const json_t *input, nd_chat *out);

/* {"channel","chat"} for the state. Owned. */
json_t *nd_chat_json(const nd_chat *c);

/* <channel>.send of plain text / of HTML. */
int nd_say(eng_ctx *ctx, const nd_chat *c, const char *text);
int nd_say_html(eng_ctx *ctx, const nd_chat *c, const char *html);

/* nd_say / nd_say_html of a text that was streamed as it was written (the
 * model call `call_id`'s messages events): the payload says so
 * ("streamed"), so a chat that showed it live ends it rather than printing
 * it twice. */
int nd_say_streamed(eng_ctx *ctx, const nd_chat *c, const char *text, const char *call_id);
int nd_say_html_streamed(eng_ctx *ctx, const nd_chat *c, const char *html,
			 const char *call_id);

/* <channel>.progress: the message named `ref` is sent once, then edited. */
int nd_progress(eng_ctx *ctx, const nd_chat *c, const char *ref, const char *html);

/* <channel>.document. */
int nd_document(eng_ctx *ctx, const nd_chat *c, const char *filename, const char *content,
		const char *caption);

/* An option of a question: its id (what the decision carries) and label. */
typedef struct nd_option {
	const char *id;
	const char *label;
} nd_option;

/* <channel>.approval: `question` with buttons; the decision arrives as
 * event `key`. */
int nd_ask(eng_ctx *ctx, const nd_chat *c, const char *key, const char *question,
	   const nd_option *opts, size_t n);

/* Appends `s` with & < > escaped (NULL appends nothing). */
void nd_html_escape(buf *b, const char *s);

/* Appends at most `max` characters of `s` (UTF-8 safe), "…" when cut. */
void nd_clip(buf *b, const char *s, size_t max);

#endif
