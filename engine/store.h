/*
 * store — the engine's SQL: claiming runs, loading states, committing steps
 * (engine-internal; engine/control.h is the public side).
 *
 * Every statement is prepared once per connection. A step commits in one
 * pipeline (one round trip, one transaction): the checkpoint or pending
 * writes, the outbox rows, the events consumed, and orch_advance(), which
 * fences on the run's lease token, so a step of a run that another engine
 * took over can never land.
 */
#ifndef ORCH_ENGINE_STORE_H
#define ORCH_ENGINE_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"

/* SQLSTATE raised by orch_advance when the lease is gone, and by
 * orch_deliver for a thread that does not exist. */
#define STORE_LEASE_LOST "OR001"
#define STORE_NO_THREAD "OR002"

/* A run this engine now holds. */
typedef struct store_run {
	int64_t run_id, thread_id, token;
	char *graph;
	char *thread_key;
	json_t *input;    /* NULL when none */
	int start_seq;    /* -1: none */
	int last_seq;     /* -1: no checkpoint of this run yet */
	int step;         /* steps committed */
	int claims;
	int takeovers;    /* times taken over from a dead engine */
	int taken_over;   /* this claim took it from an engine whose lease expired */
	int head_seq;     /* the thread's latest checkpoint, 0 when none */
	int cancel;       /* cancel requested */
	json_t *events;   /* unconsumed events of the thread */
	json_t *pending;  /* pending writes of step `step + 1`, by task index */
} store_run;

void store_run_clear(store_run *r);

/* Claims the oldest claimable queued run of one of `graphs` (a PostgreSQL
 * array literal such as {a,b}). Returns 1 and fills *out, or 0 when there is
 * none. A race with another engine over the same thread is reported as 0. */
int store_claim_queued(pg_conn *c, const char *owner, int64_t lease_ms, const char *graphs,
		       store_run *out);

/* Claims up to `limit` claimable queued runs in one statement (oldest
 * first, at most one per thread) into out[0..n-1]; returns n (0 when none). */
int store_claim_many(pg_conn *c, const char *owner, int64_t lease_ms, const char *graphs,
		     int limit, store_run *out);

/* Claims a running run whose lease expired (its engine died). 1 or 0. */
int store_claim_expired(pg_conn *c, const char *owner, int64_t lease_ms, const char *graphs,
			store_run *out);

/* Renews the claim on run_id held with `token` under a new token, after a
 * lost connection; 1 with the run re-read from the database, 0 when the run
 * is no longer ours (finished, or taken over). */
int store_reclaim(pg_conn *c, int64_t run_id, int64_t token, int64_t lease_ms, store_run *out);

/* Inserts a run for thread `key` (created when new) already claimed by
 * `owner`, when the thread has no active run. 1 and *out filled; 0 when the
 * thread is busy (nothing inserted). ERR_CONFLICT when the thread exists
 * with another graph. */
int store_insert_claimed(pg_conn *c, const char *key, const char *graph, const char *input,
			 const char *owner, int64_t lease_ms, store_run *out);

/* Stores an event and, when the thread's run waits for `key`, claims it for
 * `owner`. 1 and *out filled when a run was claimed, else 0. */
int store_deliver_claim(pg_conn *c, int64_t thread_id, const char *key, const char *value,
			const char *owner, int64_t lease_ms, store_run *out);

/* The state at checkpoint `seq` of a thread: *state (owned) is rebuilt from
 * the nearest snapshot and the deltas after it; *next (owned, may be NULL)
 * is that checkpoint's task list. chain_* describe the delta chain, for the
 * snapshot policy. ERR_NOTFOUND when there is no such checkpoint. */
typedef struct store_chain {
	int len;         /* deltas since the snapshot */
	int64_t bytes;   /* their size */
	int64_t snap_bytes;
} store_chain;
int store_load_state(pg_conn *c, int64_t thread_id, int seq, json_t **state, json_t **next,
		     store_chain *chain);

/* Everything one step wrote. JSON fields are serialized text; NULL: none. */
typedef struct store_step {
	int64_t run_id, thread_id, token, lease_ms;
	int step;
	/* checkpoint (when seq > 0) */
	int seq, parent_seq; /* parent 0: none */
	const char *nodes;   /* text[] literal */
	const char *delta, *snapshot, *next;
	store_chain chain;
	int delete_pending; /* the step had pending writes to drop */
	/* pending writes of finished tasks (step waits or failed) */
	const char *pending; /* [{"task": i, "node": n, "result": {...}}] */
	const char *outbox;  /* [{"kind","dest","payload"}] */
	const char *consumed; /* bigint[] literal of event ids */
	/* the run's new status and its details */
	const char *status;  /* running | waiting | done | failed */
	const char *waiting; /* text[] literal */
	const char *wait_payload;
	const char *error, *error_node;
	/* durability async: commit without waiting for the WAL flush (only for
	 * a batchable step of a running run with no outbox rows and no events
	 * consumed; the run's next flushed commit makes it durable too) */
	int no_flush;
} store_step;

/* Commits one step in a single pipelined transaction. *status_out (cap 16)
 * gets the run's status afterwards ("cancelled" when cancel was asked, and
 * "queued" when it parked on an event that had already arrived). ERR_LEASE
 * when the run is no longer ours; ERR_DB otherwise. */
int store_commit(pg_conn *c, const store_step *s, char *status_out);

/* True when `s` is a completed step (a checkpoint of a running or done
 * run, no pending writes): such steps can be committed in batches. */
int store_step_batchable(const store_step *s);

/* Group commit: commits n (1..PG_PIPE_MAX) batchable steps of different runs
 * in one pipelined transaction, one round trip. Each step is fenced on its
 * own run's lease: a lost lease writes nothing for that step only
 * (rcs[i] = ERR_LEASE). When a statement fails, the steps are committed
 * again one transaction each. Per step: rcs[i], status[i] (the run's new
 * status) and errs[i] (the message when rcs[i] < 0). Returns 0, or ERR_DB
 * when the connection was lost (then no rcs[i] is set: the outcome is
 * unknown and each run must recover). */
/* The transaction waits for the WAL flush unless every step is no_flush.
 * dberr[i] gets the class and SQLSTATE of step i's failure (for ERR_DB). */
int store_commit_batch(pg_conn *c, const store_step *const *steps, int n, int *rcs,
		       char (*status)[16], char (*errs)[512], pg_error *dberr);

/* Gives a held run back to the queue (graceful stop). */
int store_release(pg_conn *c, int64_t run_id, int64_t token);

/* Renews the leases of the runs `owner` holds with a token in
 * `live_tokens` (a bigint[] literal: the runs its workers are executing and
 * whose nodes are not hung), and records the engine as alive. A run held
 * under any other token (a hung node, or a run a worker gave up on while
 * the database was away) keeps its lease_until, so it expires and the run
 * is taken over from its last checkpoint. *cancelled (owned) gets the ids
 * of held runs asked to cancel. */
int store_heartbeat(pg_conn *c, const char *owner, const char *host, int pid, int threads,
		    const char *graphs, int64_t lease_ms, const char *live_tokens,
		    json_t **cancelled);

int store_engine_stopped(pg_conn *c, const char *owner);

#endif
