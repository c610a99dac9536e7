/*
 * outbox — delivering the side effects that steps wrote.
 *
 * A node's eng_emit() writes an outbox row in its step's transaction; a
 * relay claims pending rows of the kinds it handles, delivers each (a
 * Telegram message, a Redis XADD), and marks it sent. A claim is a lease:
 * a relay that dies leaves its rows to be claimed again when the lease
 * expires, so delivery is at least once, and the row id is the idempotency
 * key a receiver uses to drop the duplicate. Rows that share a `dest` are
 * delivered in id order across all the kinds one relay handles (a message
 * and the approval that follows it stay in order): a dest's next row is
 * claimable only once the rows before it are sent (or dead).
 *
 * Two levels: the row functions (claim, done, retry, defer, dead) for
 * relays with their own loop, and eng_relay, a thread that listens for new
 * rows and calls a handler for each.
 */
#ifndef ORCH_ENGINE_OUTBOX_H
#define ORCH_ENGINE_OUTBOX_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"

typedef struct eng_outbox_row {
	int64_t id;        /* unique and stable: use it as the idempotency key */
	int64_t thread_id, run_id;
	int step;
	int attempts;      /* failed deliveries so far */
	char kind[64];
	char *dest;        /* NULL when the row has none */
	json_t *payload;
} eng_outbox_row;

/* Claims up to `limit` deliverable rows of the kinds in `kinds` (a text[]
 * literal such as {telegram.send}) for `claim_ms`. *out (owned; free with
 * eng_outbox_rows_free) gets *n rows, oldest first. */
int eng_outbox_claim(pg_conn *c, const char *relay_id, const char *kinds, int limit,
		     int64_t claim_ms, eng_outbox_row **out, int *n);
void eng_outbox_rows_free(eng_outbox_row *rows, int n);

/* Claims, as `claimer`, up to `limit` pending rows to `dest` whose kind
 * starts with `kind_prefix` ("term.") for `claim_ms`, oldest first: a
 * chat that shows its own messages (the eval's person, a terminal). *out
 * as eng_outbox_claim's. */
int eng_outbox_claim_dest(pg_conn *c, const char *claimer, const char *dest,
			  const char *kind_prefix, int limit, int64_t claim_ms,
			  eng_outbox_row **out, int *n);

/* The pending rows of thread `thread_id` whose kind ends with `kind_suffix`
 * (".approval": the questions of every channel), oldest first, without
 * claiming them: what a chat has not shown yet. *out as eng_outbox_claim's. */
int eng_outbox_pending_of(pg_conn *c, int64_t thread_id, const char *kind_suffix,
			  eng_outbox_row **out, int *n);

/* Writes a pending row outside a step (thread_id 0: none), in the caller's
 * transaction, as a node's eng_emit would: a chat's answer to a command. */
int eng_outbox_add(pg_conn *c, int64_t thread_id, const char *kind, const char *dest,
		   const json_t *payload);

/* Marks a row delivered, keeping `result` (may be NULL) for the record. */
int eng_outbox_done(pg_conn *c, int64_t id, const json_t *result);

/* Marks row `id` delivered when it is still pending and of kind `kind`
 * (a question answered elsewhere than where it was shown); otherwise
 * nothing changes. */
int eng_outbox_done_pending(pg_conn *c, int64_t id, const char *kind, const json_t *result);

/* Records a failed delivery: the row is tried again after `delay_ms`, or
 * becomes dead once it has failed `max_attempts` times. *out_dead (may be
 * NULL) is set when it became dead. */
int eng_outbox_retry(pg_conn *c, int64_t id, const char *error, int64_t delay_ms,
		     int max_attempts, int *out_dead);

/* Puts a row back without counting a failure (a rate limit said "later"). */
int eng_outbox_defer(pg_conn *c, int64_t id, int64_t delay_ms);

/* Gives up on a row for good (the receiver refused it). */
int eng_outbox_dead(pg_conn *c, int64_t id, const char *error);

/* --- the relay thread --- */

typedef struct eng_relay eng_relay;

/* Delivers one row. Returns 0 when delivered (*result, owned by the relay,
 * may be set); ERR_BUSY to defer without counting a failure; ERR_DENIED,
 * ERR_INVALID or ERR_AUTH when the receiver will never accept it (dead);
 * any other negative code for a failure worth retrying. *retry_after_ms,
 * when set above 0, overrides the backoff (Telegram's retry_after). */
typedef int (*eng_relay_fn)(const eng_outbox_row *row, json_t **result,
			    int64_t *retry_after_ms, void *udata);

typedef struct eng_relay_options {
	const char *name;       /* for logs and claims, e.g. "telegram" */
	const char *kinds;      /* text[] literal of the kinds handled */
	int batch;              /* rows per claim (default 50) */
	int64_t claim_ms;       /* lease on claimed rows (default 60 s) */
	int max_attempts;       /* failures before a row is dead (default 10) */
	int64_t backoff_ms;     /* first retry delay (default 1 s), doubling */
	int64_t max_backoff_ms; /* cap (default 5 min) */
	int64_t poll_ms;        /* look for due retries this often (default 1 s) */
} eng_relay_options;

int eng_relay_new(eng_relay **out, pg_pool *pool, const eng_relay_options *opt,
		  eng_relay_fn fn, void *udata);

/* Starts the relay's thread; a relay stopped before starts again (every
 * stop/start pair is restartable). It reports itself in the health
 * registry (core/health.h) as "relay.<name>": ok while it delivers,
 * degraded while claiming or recording fails (with the reason) or while it
 * cannot LISTEN and polls instead. ERR_IO when the thread cannot start. */
int eng_relay_start(eng_relay *r);

/* Stops the thread and waits for it; the relay leaves the health registry
 * (stopped on purpose). A no-op when not started. */
void eng_relay_stop(eng_relay *r);

/* True while the relay's thread runs and was not asked to stop. */
int eng_relay_running(const eng_relay *r);

void eng_relay_free(eng_relay *r);

/* One pass without the thread: claims a batch and delivers it. *out_n (may
 * be NULL) gets the number of rows handled. */
int eng_relay_run_once(eng_relay *r, int *out_n);

#endif
