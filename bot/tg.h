/*
 * tg — a Telegram Bot API client (libcurl + jansson) and the typed updates.
 *
 * A tg_client calls https://api.telegram.org/bot<token>/<method> (the base
 * URL is configurable: a local Bot API server, or the test fake) with JSON
 * bodies, and translates replies into err codes:
 *
 *   401 Unauthorized            ERR_AUTH      (the token is wrong: stop)
 *   403 Forbidden               ERR_DENIED    (blocked by the user, kicked)
 *   400 Bad Request             ERR_INVALID   (the message will never be accepted)
 *   409 Conflict                ERR_CONFLICT  (another getUpdates or a webhook)
 *   429 Too Many Requests       ERR_BUSY      (retry_after_ms says when)
 *   5xx, network                ERR_HTTP / ERR_TIMEOUT (worth retrying)
 *   a body that is not the API  ERR_PARSE
 *
 * with err_last() holding Telegram's description. Neither the token nor a
 * URL holding it is ever logged or put in an error message.
 *
 * External JSON is parsed here, at the edge, into tg_update structs; the
 * rest of the bot never walks raw Telegram JSON.
 *
 * A client is used by one thread at a time (it owns a curl handle).
 */
#ifndef ORCH_BOT_TG_H
#define ORCH_BOT_TG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define TG_DEFAULT_API_BASE "https://api.telegram.org"
#define TG_TEXT_MAX 4096          /* characters of a message after entity parsing */
#define TG_CAPTION_MAX 1024
#define TG_CALLBACK_DATA_MAX 64   /* bytes */

typedef struct tg_client tg_client;

/* What went wrong in the last failed call (also in err_last()). */
/* What a refusal means where its error_code alone does not say: read
 * once from Telegram's description (tg.c's table), so no caller matches
 * the text. */
typedef enum tg_why {
	TG_WHY_OTHER = 0,
	TG_WHY_NOT_MODIFIED,  /* an edit to the content the message has */
	TG_WHY_BAD_ENTITIES,  /* HTML it cannot parse ("can't parse entities") */
	TG_WHY_WEBHOOK,       /* getUpdates while a webhook is set */
} tg_why;

typedef struct tg_reply {
	long http_status;         /* 0 when no response arrived */
	int error_code;           /* Telegram's error_code, 0 when ok */
	char description[512];    /* Telegram's description */
	tg_why why;               /* the description's meaning, TG_WHY_OTHER when none */
	int64_t retry_after_ms;   /* 429: parameters.retry_after (1 s to a day); else -1 */
} tg_reply;

/* Creates a client for `api_base` (NULL: TG_DEFAULT_API_BASE) and `token`
 * (copied; wiped on free). ERR_INVALID for an empty token or a token with
 * characters a URL cannot carry. The caller owns *out. */
int tg_client_new(tg_client **out, const char *api_base, const char *token);
void tg_client_free(tg_client *c);

/* Calls `method` with `params` (a JSON object, borrowed; NULL for none).
 * On success *out_result (may be NULL) gets the "result" value (owned).
 * `timeout_ms` bounds the whole request (0: 30 s). *reply (may be NULL) gets
 * the error details on failure. Errors as in the table above. */
int tg_call(tg_client *c, const char *method, const json_t *params, int64_t timeout_ms,
	    json_t **out_result, tg_reply *reply);

/* The full URL of `method` into `out` (holds the token: never log it). */
int tg_method_url(const tg_client *c, const char *method, buf *out);

/* Interprets a Bot API response (status, body, Retry-After header in ms or
 * -1) the way tg_call does. Used by the poller, which performs getUpdates
 * on its own (non-blocking) handle. */
int tg_parse_reply(long http_status, const char *body, size_t len, int64_t retry_after_hdr,
		   json_t **out_result, tg_reply *reply);

/* --- typed wrappers --- */

typedef struct tg_bot_info {
	int64_t id;
	char username[128];
	char first_name[128];
} tg_bot_info;

int tg_get_me(tg_client *c, tg_bot_info *out);

/* deleteWebhook (drop_pending_updates=false): long polling needs none. */
int tg_delete_webhook(tg_client *c);

/* One inline keyboard button: a callback button (data) or a URL button. */
typedef struct tg_button {
	const char *text;
	const char *data;  /* callback_data, <= 64 bytes */
	const char *url;
} tg_button;

/* A message to send or an edit. `text` is sent as it is: with `html` set,
 * parse_mode=HTML (the caller escaped it). `buttons` are laid out `per_row`
 * to a row (0: all on one row). */
typedef struct tg_message {
	const char *chat_id;       /* numeric chat id as text */
	int64_t message_id;        /* edits only */
	const char *text;
	int html;
	int silent;                /* disable_notification */
	int64_t reply_to;          /* reply_to_message_id, 0 for none */
	const tg_button *buttons;
	int nbuttons;
	int per_row;
	int remove_keyboard;       /* edits: drop the inline keyboard */
} tg_message;

/* sendMessage; *out_message_id (may be NULL) gets the new message's id. */
int tg_send_message(tg_client *c, const tg_message *m, int64_t *out_message_id, tg_reply *reply);

/* editMessageText. "message is not modified" is success (*out_unchanged,
 * may be NULL, set to 1). */
int tg_edit_message_text(tg_client *c, const tg_message *m, int *out_unchanged,
			 tg_reply *reply);

/* editMessageReplyMarkup: replaces (or with no buttons removes) the
 * inline keyboard. "message is not modified" is success. */
int tg_edit_reply_markup(tg_client *c, const tg_message *m, tg_reply *reply);

/* answerCallbackQuery with an optional `text` shown to the user (alert
 * when `alert`). */
int tg_answer_callback(tg_client *c, const char *callback_id, const char *text, int alert,
		       tg_reply *reply);

/* sendMessageDraft: shows `text` (plain, 1 to 4096 characters) in a
 * private chat as a reply being written; drafts with one non-zero
 * `draft_id` replace each other (animated) and vanish after about 30 s:
 * the real message is sent with sendMessage. Telegram refuses other chats
 * (400 TEXTDRAFT_PEER_INVALID). */
int tg_send_message_draft(tg_client *c, const char *chat_id, int64_t draft_id, const char *text,
			  tg_reply *reply);

/* sendChatAction ("typing", "upload_document"). */
int tg_send_chat_action(tg_client *c, const char *chat_id, const char *action, tg_reply *reply);

/* sendDocument: uploads `len` bytes of `data` as `filename`, with an
 * optional caption (HTML when `html`). */
int tg_send_document(tg_client *c, const char *chat_id, const char *filename, const char *data,
		     size_t len, const char *caption, int html, int64_t *out_message_id,
		     tg_reply *reply);

/* --- updates, parsed at the edge --- */

typedef enum tg_update_kind {
	TG_UPD_TEXT = 1,   /* a message with text that is not a command */
	TG_UPD_COMMAND,    /* a message whose text starts with "/" */
	TG_UPD_CALLBACK,   /* callback_query (a button click) */
	TG_UPD_OTHER,      /* anything else: stickers, photos, edits, channel posts, ... */
	TG_UPD_INVALID,    /* an update with an id but missing or mistyped fields */
} tg_update_kind;

typedef struct tg_user {
	int64_t id;
	char name[160];      /* first and last name */
	char username[64];
	int is_bot;
} tg_user;

typedef struct tg_update {
	int64_t update_id;
	tg_update_kind kind;
	char what[32];       /* the update's field ("message", "sticker", ...) for logs */
	int64_t chat_id;     /* 0 when none */
	char chat_type[16];  /* private, group, supergroup, channel */
	tg_user from;        /* id 0 when none */
	int64_t message_id;
	int64_t date;
	char *text;          /* TEXT, COMMAND: the text (owned) */
	char command[33];    /* COMMAND: "new" for "/new@bot idea" */
	const char *args;    /* COMMAND: points into text after the command ("" when none) */
	char *callback_id;   /* CALLBACK (owned) */
	char *callback_data; /* CALLBACK (owned; NULL when absent) */
	int64_t cb_message_id; /* CALLBACK: the message the button is on */
	json_t *raw;         /* the update as received (owned) */
} tg_update;

/* Parses a getUpdates "result" array into *out (owned; free with
 * tg_updates_free) with *n entries. Entries that are not objects or have
 * no integer update_id cannot be stored or confirmed: they are logged and
 * skipped (*out_max_id, may be NULL, still covers any id seen). Entries
 * with an id but a missing or mistyped field become TG_UPD_INVALID.
 * `bot_username` (may be NULL) drops "/cmd@otherbot" addressed elsewhere. */
int tg_updates_parse(const json_t *result, const char *bot_username, tg_update **out, int *n,
		     int64_t *out_max_id);
void tg_updates_free(tg_update *u, int n);

#endif
