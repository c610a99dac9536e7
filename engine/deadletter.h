/*
 * deadletter — items from outside that could not be handled, set aside.
 *
 * Every consumer of outside input (the bot's Telegram updates, the
 * spawner's requests on the Redis stream, worker results on their way to a
 * thread) follows one rule: an item it cannot parse or process after a
 * bounded number of attempts is stored here with the reason, then confirmed
 * to its source, so it never stalls the items behind it and is never
 * retried forever (migration 010). `orchestrator status` shows how many
 * there are and the newest reasons (eng_dead_letters_status).
 */
#ifndef ORCH_ENGINE_DEADLETTER_H
#define ORCH_ENGINE_DEADLETTER_H

#include <jansson.h>
#include <stddef.h>

#include "core/pg.h"

/* Sources, as stored. */
#define ENG_DL_TELEGRAM "telegram.update"
#define ENG_DL_SPAWN "spawn.request"
#define ENG_DL_RESULT "worker.result"

/* Longest body kept, in bytes. */
#define ENG_DL_BODY_MAX (64 * 1024)

/* Stores item `ref` of `source` with `reason` and its body (`len` bytes of
 * anything, may be NULL): the body passes the secrets filter, is made valid
 * UTF-8 and cut to ENG_DL_BODY_MAX. Idempotent: an item stored before
 * (same source and ref) keeps its first record; *out_new (may be NULL) says
 * whether this call stored it. Logs it at error level the first time. Runs
 * on the caller's connection (inside its transaction, if one is open).
 * ERR_DB, ERR_NOMEM. */
int eng_dead_letter(pg_conn *c, const char *source, const char *ref, const char *reason,
		    const char *body, size_t len, int *out_new);

/* For `status`: {"count": N, "last_24h": N, "newest": [{"id", "source",
 * "ref", "reason", "at"}...up to `newest`]}, owned by the caller. */
int eng_dead_letters_status(pg_conn *c, int newest, json_t **out);

#endif
