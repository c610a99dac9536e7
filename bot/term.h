/*
 * term — `orchestrator chat`: the same conversations as the Telegram bot,
 * in a terminal, on the same engine and database.
 *
 * The terminal is the chat "term:<name>" (name: --name, else $USER). Lines
 * typed are routed exactly as Telegram messages are (bot/route.h): plain
 * text to the active project, /new, /status, /cancel, /projects, /switch
 * as commands, plus /history [n] (the active project's last messages) and
 * /quit. Nodes answer with the term.* outbox kinds (bot/bot.h), which this
 * front end claims for its own chat and prints; an approval is shown as
 * numbered choices and answered by typing the number (or /approve n).
 * New messages appear while waiting at the prompt (LISTEN on the outbox).
 *
 * With a stream hub (opt.hub, fed from the other processes by bot/live.h)
 * a model's reply that a node streams (engine/stream.h, messages events
 * naming a field to show) is printed word by word as it is written; the
 * message that follows it (a .send that says it was "streamed") then only
 * adds what was not shown. Only whole words are printed, each time the
 * whole text so far passing the secrets filter.
 *
 * It runs no engine: an `orchestrator serve` (or engine) sharing the
 * database runs the graphs; a warning says so when none is alive.
 */
#ifndef ORCH_BOT_TERM_H
#define ORCH_BOT_TERM_H

#include <stdint.h>

#include "core/pg.h"
#include "engine/stream.h"

#define BOT_TERM_KINDS "{term.send,term.edit,term.progress,term.document,term.action,term.approval}"

typedef struct bot_term_options {
	const char *name;       /* the chat's name (required) */
	const char *graph;      /* graph of new projects */
	int in_fd, out_fd;      /* the terminal (0 and 1) */
	int64_t poll_ms;        /* look for messages at least this often (default 500) */
	const char *data_dir;   /* documents are saved under <data_dir>/chat/ */
	int color;              /* ANSI colours */
	eng_stream_hub *hub;    /* live replies from its events; NULL: none */
} bot_term_options;

/* Runs the chat until end of input or /quit. Returns 0, or a negative code
 * when the database is unreachable. */
int bot_term_run(pg_pool *pool, const bot_term_options *opt);

#endif
