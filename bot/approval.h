/*
 * approval — approvals a node asks for and a person decides once.
 *
 * A node writes an outbox row of kind "<channel>.approval" (see bot/bot.h
 * for the payload); the relay creates an `approvals` row from it (once per
 * outbox row) and shows the question with one button per option. A
 * Telegram button carries callback_data "a:<id>:<option>:<mac>" where the
 * MAC is libsodium's crypto_auth (HMAC-SHA-512-256) over "a:<id>:<option>"
 * truncated to 16 bytes, base64url: at most 47 bytes. callback_data is
 * written by the client, so a click proves nothing by itself: it is
 * checked here (MAC, the approval exists and belongs to this chat, the
 * clicking user may decide, it is still pending and not expired) and
 * decided once with UPDATE … WHERE state = 'pending'. The decision is
 * delivered to the waiting run as an event under the approval's key with
 * the value
 *
 *   {"approval": 12, "option": "approve", "label": "Approve", "index": 0,
 *    "by": {"id": 42, "name": "Ada", "username": "ada", "channel": "telegram"},
 *    "expired": false}
 *
 * An approval left pending past its expiry is expired by the bot and
 * delivered as {"approval": 12, "option": null, "expired": true}.
 *
 * The MAC key is 32 random bytes in a key file (default
 * $ORCH_DATA_DIR/bot.key), created 0600 on first use; a key file that
 * others may read is refused.
 */
#ifndef ORCH_BOT_APPROVAL_H
#define ORCH_BOT_APPROVAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/pg.h"
#include "engine/outbox.h"

#define BOT_KEY_BYTES 32
#define BOT_MAX_OPTIONS 8

/* Loads the MAC key from `path`, creating it (0600, random) when missing.
 * ERR_DENIED when the file is not a regular file owned by this user or is
 * readable or writable by group or others; ERR_INVALID when its content is
 * not 64 hex digits; ERR_IO otherwise. The key is wiped by the caller
 * (sodium_memzero) when done. */
int bot_key_load(const char *path, unsigned char key[BOT_KEY_BYTES]);

/* Writes the callback_data for option `option` of approval `id` into
 * out[cap] (cap >= 65). */
int bot_cb_sign(const unsigned char key[BOT_KEY_BYTES], int64_t id, int option, char *out,
		size_t cap);

/* Checks callback_data: ERR_INVALID when it is not of the a:<id>:<opt>:<mac>
 * form, ERR_CRYPTO when the MAC does not match. Sets *out_id, *out_option. */
int bot_cb_verify(const unsigned char key[BOT_KEY_BYTES], const char *data, int64_t *out_id,
		  int *out_option);

/* The person deciding. */
typedef struct bot_actor {
	int64_t id;             /* Telegram user id; 0 for the terminal */
	char name[160];
	char username[64];
	const char *channel;    /* "telegram" | "term" */
	int trusted;            /* terminal: may decide any approval of its chat */
} bot_actor;

typedef enum bot_dec_outcome {
	BOT_DEC_OK = 0,
	BOT_DEC_UNKNOWN,       /* no such approval */
	BOT_DEC_FOREIGN,       /* it belongs to another chat */
	BOT_DEC_NOT_APPROVER,  /* this user may not decide it */
	BOT_DEC_DECIDED,       /* decided already (a replayed click) */
	BOT_DEC_EXPIRED,
	BOT_DEC_BAD_OPTION,
} bot_dec_outcome;

typedef struct bot_decision {
	bot_dec_outcome outcome;
	char reason[160];       /* for the person when refused */
	int64_t approval_id, thread_id, message_id;
	char chat[64];
	char question[1024];    /* truncated for display */
	char option_id[64], label[128];
	char decided_by[160];   /* DECIDED: who did */
} bot_decision;

/* Decides option `option` of approval `id` for `who` acting in `chat`
 * (Telegram chat id or terminal name), inside the caller's transaction:
 * checks, marks it decided once and delivers the event to its thread.
 * `allowed`/`nallowed` are the allowed users, who may decide approvals
 * without their own approvers list. Returns 0 with out->outcome telling
 * whether it was decided; a negative code for a database failure. */
int bot_approval_decide(pg_conn *c, int64_t id, int option, const bot_actor *who,
			const char *chat, const int64_t *allowed, int nallowed,
			bot_decision *out);

/* --- operators: who may decide a Telegram question from a terminal --- */

#define BOT_OPERATOR_IDS 32

/* A Unix user and the approvers (Telegram user ids) it may act for. */
typedef struct bot_operator {
	char user[64];
	int any;                         /* "*": every approver */
	int64_t ids[BOT_OPERATOR_IDS];
	int nids;
} bot_operator;

/* Parses ORCH_OPERATORS, e.g. "ada:111111111 bob:222222222,333333333
 * root:*": entries separated by spaces or ';', each a Unix user name, ':'
 * and the comma-separated Telegram user ids of the approvers that user may
 * act for from the terminal, or '*' for any. An empty spec names nobody.
 * ERR_INVALID naming the bad entry and the expected form; ERR_TOOBIG past
 * `cap` entries. */
int bot_operators_parse(const char *spec, bot_operator *out, int cap, int *n);

/* The operator entry of Unix user `user`, or NULL. Borrowed. */
const bot_operator *bot_operator_find(const bot_operator *ops, int n, const char *user);

/* Whom `op` may act for on a question whose approvers are `approvers`
 * (n of them): 1 with *out_id set to the first approver `op` is mapped to
 * (0 when `op` may act for anyone), else 0. */
int bot_operator_acts_for(const bot_operator *op, const int64_t *approvers, int n,
			  int64_t *out_id);

/* The approvers of approval `id` (its own list, else `allowed`) into
 * out[cap], *n of them, and its channel into channel[ccap]. ERR_NOTFOUND,
 * ERR_DB. */
int bot_approval_approvers(pg_conn *c, int64_t id, const int64_t *allowed, int nallowed,
			   int64_t *out, int cap, int *n, char *channel, size_t ccap);

/* An approval as the relay creates it from an outbox row. */
typedef struct bot_approval {
	int64_t id;
	int64_t message_id;     /* 0 until its message was sent */
	char state[16];
	json_t *options;        /* [{"id","label"}] (owned) */
	char *question;         /* owned */
} bot_approval;

/* Creates the approval for outbox row `row` of `channel` (or returns the
 * one created before for it). Payload: see bot/bot.h. ERR_INVALID for a
 * payload without a question or with bad options. Clear *out with
 * bot_approval_clear. */
int bot_approval_create(pg_conn *c, const eng_outbox_row *row, const char *channel,
			int64_t default_ttl_s, bot_approval *out);
void bot_approval_clear(bot_approval *a);

/* Records the message that shows approval `id`. */
int bot_approval_set_message(pg_conn *c, int64_t id, int64_t message_id);

/* Expires pending approvals of `channel` past their expiry, delivering
 * {"approval": id, "option": null, "expired": true} to their threads and,
 * for Telegram, writing an edit of their message. *out_n (may be NULL)
 * gets how many. One transaction. */
int bot_approvals_expire(pg_conn *c, const char *channel, int *out_n);

#endif
