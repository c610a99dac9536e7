/*
 * report — what other parts read of the bot's approvals table: a thread's
 * questions and how they were answered, the question a chat shows now.
 * Only reads, on the caller's connection. ERR_DB on a database error.
 */
#ifndef ORCH_BOT_REPORT_H
#define ORCH_BOT_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"

/* Every question asked in thread `thread_id`, oldest first, into *out (an
 * array the caller owns, empty when none): {"id", "key", "question",
 * "state", "decision", "by" (the decider's name), "asked"
 * ("YYYY-MM-DD HH:MM:SSZ")}. */
int bot_report_questions(pg_conn *c, int64_t thread_id, json_t **out);

/* The oldest pending question shown in terminal chat `chat`: *out_id its
 * approval id (0: none), its key into key[kcap], its options (owned) into
 * *out_options. */
int bot_report_shown(pg_conn *c, const char *chat, int64_t *out_id, char *key, size_t kcap,
		     json_t **out_options);

/* Question `id` into *out (owned; NULL when there is no such question):
 * {"id", "thread_id", "channel", "chat", "question", "options" (array),
 * "state", "message_id" (0: none), "outbox_id" (0: none), "expired"}. */
int bot_report_question(pg_conn *c, int64_t id, json_t **out);

/* The options (owned) of question `id` while it is pending, into *out;
 * NULL when it is not (or there is no such question). */
int bot_report_open_options(pg_conn *c, int64_t id, json_t **out);

/* The question made from outbox row `outbox_id` (a chat showed it): *out_id
 * its approval id, 0 when none was made yet. */
int bot_report_of_outbox(pg_conn *c, int64_t outbox_id, int64_t *out_id);

/* The pending questions of thread `thread_id`, not expired, whose key is
 * one of `keys` (an array of strings: what its run waits on), newest first,
 * into *out (owned): [{"id", "question"}]. */
int bot_report_open_keys(pg_conn *c, int64_t thread_id, const json_t *keys, json_t **out);

/* The open questions of threads[0..n) (pending, not expired), oldest
 * first, into *open (owned): [{"id", "thread_id", "question", "channel",
 * "options": ["label", ...]}]; and which of outbox_ids[0..nout) a question
 * was made of (in any state; the relay creates it before it marks the row
 * sent) into *linked (owned): [id, ...]. */
int bot_report_open(pg_conn *c, const int64_t *threads, size_t n, const int64_t *outbox_ids,
		    size_t nout, json_t **open, json_t **linked);

#endif
