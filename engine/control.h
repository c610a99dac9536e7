/*
 * control — the engine's tables seen from outside an engine: starting and
 * queueing runs, delivering events, cancelling, time travel (history, state
 * at a checkpoint, fork), retention and the status report. Used by the CLI,
 * the bot and tests; every function runs on a borrowed connection and is
 * one short transaction, so any process may call them while engines run.
 */
#ifndef ORCH_ENGINE_CONTROL_H
#define ORCH_ENGINE_CONTROL_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"
#include "engine/graph.h"

/* Queues a run of `graph` on thread `key` (created when new, with
 * `metadata`, may be NULL) with `input` (may be NULL). The run waits behind
 * the thread's active run, if any. ERR_CONFLICT when the thread exists with
 * another graph. out_thread/out_run may be NULL. */
int eng_start(pg_conn *c, const char *key, const char *graph, const json_t *input,
	      const json_t *metadata, int64_t *out_thread, int64_t *out_run);

/* Queues many runs of `graph` in one statement: `items` is an array of
 * {"key": thread key, "input": update or absent}; threads are created when
 * new. *out_runs (may be NULL; owned) gets the run ids in item order. Items
 * whose thread belongs to another graph get no run (ERR_CONFLICT for all). */
int eng_start_many(pg_conn *c, const char *graph, const json_t *items, json_t **out_runs);

/* Queues a run on an existing thread. ERR_NOTFOUND when there is none. */
int eng_enqueue(pg_conn *c, int64_t thread_id, const json_t *input, int64_t *out_run);

/* The graph a thread runs, into out[cap]. ERR_NOTFOUND when there is no
 * such thread. */
int eng_thread_graph(pg_conn *c, int64_t thread_id, char *out, size_t cap);

/* Resolves "42" (an id) or a thread key to the thread's id. */
int eng_thread_find(pg_conn *c, const char *id_or_key, int64_t *out_id);

/* Stores event `key` = `value` for a thread. When its run waits for `key`
 * the run is queued again and *out_run (may be NULL) gets its id, else 0.
 * A repeated non-NULL `idem` stores nothing (*out_dup set when non-NULL). */
int eng_deliver(pg_conn *c, int64_t thread_id, const char *key, const json_t *value,
		const char *idem, int64_t *out_run, int *out_dup);

/* Cancels a run: a queued or waiting run at once, a running one at its next
 * step boundary. *out_state (cap 16, may be NULL) gets the run's status
 * afterwards. ERR_NOTFOUND when the run is not active. */
int eng_cancel_run(pg_conn *c, int64_t run_id, char *out_state);

/* Cancels every active run of a thread; *out_n (may be NULL) gets how many. */
int eng_cancel_thread(pg_conn *c, int64_t thread_id, int *out_n);

/* Queues a failed or cancelled run again, to continue from its last
 * checkpoint (tasks that finished in its last step are not run again). */
int eng_retry_run(pg_conn *c, int64_t run_id);

/* Queues a new run on the thread that starts from checkpoint `seq`: the
 * state there, with `update` applied (may be NULL), continuing with the
 * tasks that were next at that checkpoint (or from START when it was the
 * end). Later checkpoints are kept: the fork is a new branch. A subgraph's
 * thread (engine/graph.h) runs no runs of its own: its fork is a new head
 * checkpoint (the state at `seq` with `update`'s keys replacing the
 * state's, and the tasks next there) that the parent run resumes into when
 * it runs the subgraph node again; *out_run then gets the parent's active
 * run (0 when none). */
int eng_fork(pg_conn *c, int64_t thread_id, int seq, const json_t *update, int64_t *out_run);

/* What eng_update_state did. */
typedef struct eng_update_result {
	int seq;            /* the new checkpoint */
	int64_t run_id;     /* the run it moved or queued; 0: none */
	char run_status[16]; /* that run's status now: waiting, queued or done */
} eng_update_result;

/* With no run to move: queue one that goes on from the new checkpoint. */
#define ENG_UPDATE_RUN 1

/* LangGraph's update_state: a new checkpoint of the thread whose state is
 * its latest one with `update` applied through `g`'s reducers, as if node
 * `as_node` had returned it, so the tasks that follow are that node's
 * (its edges, its router on the new state, the joins it completes); with
 * `as_node` NULL the same tasks as before follow, on the edited state.
 * Refused (ERR_BUSY) while a run of the thread is queued or running. A run
 * that waits is moved to the new checkpoint: with `as_node` it is queued
 * to go on from there (or done when nothing follows), without it it waits
 * again for what it waited for, on the edited state; either way the
 * results its step kept (pending writes) are dropped. With no active run
 * nothing runs unless `flags` has ENG_UPDATE_RUN. One transaction; the
 * thread must belong to `g` (ERR_CONFLICT). ERR_NOTFOUND for an unknown
 * thread or node, ERR_INVALID for an update the reducers refuse. */
int eng_update_state(pg_conn *c, const eng_graph *g, int64_t thread_id, const json_t *update,
		     const char *as_node, int flags, eng_update_result *out);

/* The thread's checkpoints, newest first, at most `limit`: an array of
 * {"seq","parent","run","step","nodes","next","snapshot","delta_bytes","at"}. */
int eng_history(pg_conn *c, int64_t thread_id, int limit, json_t **out);

/* The state at checkpoint `seq` (0: the latest) and the tasks that were
 * next there. out_next and out_seq may be NULL. ERR_NOTFOUND when the thread
 * has no such checkpoint. */
int eng_state_at(pg_conn *c, int64_t thread_id, int seq, json_t **out_state, json_t **out_next,
		 int *out_seq);

/* A run as JSON: id, thread, status, step, error, waiting_on, timestamps. */
int eng_run_get(pg_conn *c, int64_t run_id, json_t **out);

/* Threads, most recently updated first: id, key, graph, run status, steps. */
int eng_threads_list(pg_conn *c, int limit, json_t **out);

typedef struct eng_prune_stats {
	int threads;         /* threads pruned */
	int checkpoints;     /* checkpoints deleted */
	int snapshots;       /* snapshots written so kept checkpoints stay readable */
	int events;          /* consumed events deleted */
	int cache;           /* expired node cache rows deleted */
} eng_prune_stats;

/* Retention: for threads with no active run and no update for `days` days,
 * keeps the newest `keep` checkpoints (each still readable: a snapshot is
 * written where its history is cut) and deletes older ones, with consumed
 * events and leftover pending writes; and the expired rows of the node
 * cache. */
int eng_prune(pg_conn *c, int days, int keep, eng_prune_stats *out);

/* The status report: threads, runs by state, the oldest waiting and queued
 * runs, engines (alive when their heartbeat is younger than lease_ms),
 * recent failures, outbox backlog. */
int eng_status(pg_conn *c, int64_t lease_ms, json_t **out);

/* An SQL condition on the runs alias `r` (a string literal) leaving out a run
 * whose input was handed to its thread's waiting run (the chat's
 * double-texting hand-off, migration 004): such a run never ran, so a
 * report of a thread's latest run skips it. */
#define ENG_SQL_NOT_HANDED_OFF(r)                                                             \
	"NOT (" r ".status = 'cancelled' AND coalesce(" r ".error, '') LIKE "                \
	"'its input was handed%')"

#endif
