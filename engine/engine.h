/*
 * engine — executes graph runs durably from the PostgreSQL run queue.
 *
 * An engine holds compiled graphs and a connection pool. Its worker threads
 * claim queued runs of those graphs (FOR UPDATE SKIP LOCKED, with a lease),
 * execute them super-step by super-step, and commit one checkpoint per step
 * in one pipelined transaction together with the step's outbox rows and
 * consumed events. A run that waits for an event parks and frees its
 * thread. A heartbeat renews the leases of the runs it holds; when an engine
 * dies its leases expire and any other engine takes the runs over from their
 * last checkpoint. Any number of engine processes may share one database.
 * A step whose commit fails because the connection was lost waits for the
 * database and resumes the run from its last checkpoint; a commit the
 * database refuses for another reason (disk full, a constraint, a trigger)
 * is tried again with backoff without running the step's nodes again, and
 * after opt.commit_attempts refusals the run fails with the reason.
 * A run whose node hangs past its timeout (eng_graph_set_timeout) plus a
 * grace period is no longer renewed either: it is taken over the same way,
 * while the stuck thread, which cannot be killed, stays busy here (a worker
 * with a stuck node claims nothing else) and its late result is fenced off.
 *
 * eng_invoke and eng_resume run one invocation in the calling thread (no
 * queue hop), for callers that want the answer at once: the CLI, tests,
 * benchmarks. They use the same claim, lease and commit path, with one
 * difference: the transaction that creates the run (or stores the event
 * that resumes it) does not wait for the disk, because the run's first
 * step commits with a flush that makes it durable too, and the caller is
 * told nothing before that. Queued runs (eng_start, eng_deliver) are
 * durable when the call returns.
 */
#ifndef ORCH_ENGINE_ENGINE_H
#define ORCH_ENGINE_ENGINE_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"
#include "engine/graph.h"

typedef struct eng_engine eng_engine;

/* Called after a run stops executing in this engine: done, failed,
 * cancelled, waiting, or released. From an engine thread. */
typedef void (*eng_run_hook)(int64_t run_id, int64_t thread_id, const char *status,
			     void *udata);

/* Durability of step commits.
 * SYNC: every step's transaction waits for the WAL flush, so a committed
 *   checkpoint survives the engine, PostgreSQL and the machine crashing.
 * ASYNC: a step that sends nothing to the outside world (no outbox rows:
 *   messages, workers) and took no events, of a run that goes on, commits
 *   without waiting for the flush; every other commit still waits, and it
 *   makes the earlier ones durable too (the WAL is written in order). An
 *   engine crash loses nothing either way; a PostgreSQL or machine crash may
 *   lose such steps from the last fraction of a second, which then run
 *   again from the last flushed checkpoint (a model call in them is paid
 *   twice). No message is sent twice and none is lost. */
#define ENG_DURABILITY_SYNC 0
#define ENG_DURABILITY_ASYNC 1

typedef struct eng_options {
	const char *id;        /* unique engine id; NULL: "<host>-<pid>-<random>" */
	int threads;           /* workers claiming queued runs; 0: inline calls only */
	int64_t lease_ms;      /* lease on a held run; 0: 30 s */
	int64_t poll_ms;       /* idle workers look for work this often; 0: 1 s */
	int cache_entries;     /* thread states kept in memory; 0: 256, -1: none */
	int64_t cache_bytes;   /* their approximate size cap; 0: 4 MiB */
	int max_takeovers;     /* a run whose engine died this often fails; 0: 10 */
	int durability;        /* ENG_DURABILITY_SYNC (0, the default) or _ASYNC */
	int commit_attempts;   /* a step's commit refused by the database (not a lost
				* connection) is tried this often before the run
				* fails with the reason; 0: 5 */
	int64_t commit_backoff_ms; /* the first wait between those attempts, doubling
				    * (up to 16 times it); 0: 500 ms */
	void *app;             /* handed to nodes through eng_ctx_app() */
	eng_run_hook on_run_end;
	void *hook_udata;
} eng_options;

/* Creates an engine on `pool` (borrowed; must outlive the engine).
 * `opt` may be NULL for the defaults. The caller owns *out. */
int eng_engine_new(eng_engine **out, pg_pool *pool, const eng_options *opt);

/* Registers a compiled graph (borrowed; must outlive the engine). Only runs
 * of registered graphs are claimed. Call before eng_engine_start. */
int eng_engine_add_graph(eng_engine *e, const eng_graph *g);

/* Starts the worker, listener and heartbeat threads; an engine stopped
 * before starts again. The listener, the heartbeat and step commits report
 * in the health registry (core/health.h) as "engine.listener",
 * "engine.heartbeat" and "engine.commits". */
int eng_engine_start(eng_engine *e);

/* Stops claiming. Runs in progress finish their current step and go back to
 * the queue, where another engine (or this one, restarted) picks them up.
 * Returns when every engine thread has ended, so it waits for a hung node
 * to return. Safe to call twice. */
void eng_engine_stop(eng_engine *e);

/* Stops (if needed) and frees. NULL is a no-op. */
void eng_engine_free(eng_engine *e);

const char *eng_engine_id(const eng_engine *e);

/* Runs in progress in this engine right now. */
int eng_engine_busy(const eng_engine *e);

/* Step commits this engine made without waiting for the disk (durability
 * async) since it was created. */
int64_t eng_engine_no_flush_commits(const eng_engine *e);

/* The outcome of an inline invocation. */
typedef struct eng_result {
	int64_t run_id, thread_id;
	char status[16];   /* done | waiting | failed | cancelled | queued | stored */
	json_t *state;     /* with ENG_WANT_STATE: the state at the end (owned) */
	json_t *wait;      /* waiting: what the parked nodes asked (owned) */
	char error[1024];  /* failed: why */
} eng_result;

#define ENG_WANT_STATE 1

/* Starts a run of `graph` on thread `thread_key` (created when new) with
 * `input` (an update, borrowed; NULL for none) and executes it in the
 * calling thread until it is done, waits, fails or is cancelled. When the
 * thread already has an active run, the new run is queued behind it and
 * status is "queued". Returns 0 when the outcome is in *out (a failed run
 * is an outcome: status "failed" and error), a negative code when the
 * database could not be reached. Clear *out with eng_result_clear. */
int eng_invoke(eng_engine *e, const char *graph, const char *thread_key, const json_t *input,
	       int flags, eng_result *out);

/* Delivers event `key` = `value` to a thread and, when its run waits for
 * that key, resumes it in the calling thread as eng_invoke does. Status
 * "stored" when no run waited for the key (the event stays for a later
 * eng_await). */
int eng_resume(eng_engine *e, int64_t thread_id, const char *key, const json_t *value,
	       int flags, eng_result *out);

void eng_result_clear(eng_result *r);

#endif
