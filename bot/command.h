/*
 * command — the chat commands as one table (as Redis's command table):
 * each row names a command, its arguments, a one-line help, a long help,
 * its handler and the channels where it exists. The table routes
 * bot_command (bot/route.h), writes both help texts (Telegram's and the
 * terminal's: bot_help_text) and the list Telegram shows in its command
 * menu (setMyCommands: bot_commands_json, bot_commands_publish).
 *
 * Adding a command = one row in the table (bot/command.c) and its handler.
 *
 * Names are 1-32 characters of a-z, 0-9 and _ (the Bot API's rule for
 * setMyCommands); a one-line help is 1-256 characters.
 */
#ifndef ORCH_BOT_COMMAND_H
#define ORCH_BOT_COMMAND_H

#include <jansson.h>

#include "bot/route.h"
#include "bot/tg.h"
#include "core/pg.h"

#define BOT_CMD_NAME_MAX 32
#define BOT_CMD_HELP_MAX 256

/* Where a command exists (who may use it): the channels. */
#define BOT_ON_TG 1u      /* Telegram: in /help and in its command menu */
#define BOT_ON_TERM 2u    /* the terminal chat (orchestrator chat) */
#define BOT_ON_ALL (BOT_ON_TG | BOT_ON_TERM)
#define BOT_HIDDEN 4u     /* answered, but in no help text and no menu (/start) */

/* What a handler gets: the caller's connection and transaction, the
 * graph of new projects, the input, the chat's key ("tg:<id>",
 * "term:<name>") and the text after the command ("" when none). */
typedef struct bot_cmd_ctx {
	pg_conn *c;
	const char *graph;
	const bot_input *in;
	const char *chat;
	const char *args;
} bot_cmd_ctx;

/* Answers the command with outbox rows (bot_say, bot_emit) in the caller's
 * transaction; < 0 with err_set on a database error. */
typedef int (*bot_cmd_fn)(const bot_cmd_ctx *x);

typedef struct bot_cmd {
	const char *name;  /* without the slash */
	const char *args;  /* "" or what follows, for the help: "<idea>" */
	const char *help;  /* one line: help texts, Telegram's menu */
	const char *more;  /* the long help (/help <name>); NULL: the line only */
	bot_cmd_fn fn;     /* NULL: the channel's own loop answers it (bot/term.c) */
	unsigned where;    /* BOT_ON_* and BOT_HIDDEN */
} bot_cmd;

/* The table: *n gets its length. Static, read-only. */
const bot_cmd *bot_cmd_table(size_t *n);

/* The row of command `name` (without the slash) on `channel` ("telegram",
 * "term"); NULL when the channel has no such command. */
const bot_cmd *bot_cmd_find(const char *name, const char *channel);

/* The list for Bot API setMyCommands: [{"command", "description"}] of the
 * Telegram commands not hidden, in the table's order (new reference; NULL
 * on ENOMEM). */
json_t *bot_commands_json(void);

/* Calls setMyCommands with bot_commands_json(), so Telegram's menu lists
 * what /help lists. Errors as tg_call's. */
int bot_commands_publish(tg_client *tg);

#endif
