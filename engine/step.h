/*
 * step — running the tasks of one super-step (engine-internal).
 *
 * Tasks run with their node's retry policy, in parallel threads when there
 * are several. Each produces a task_result: its update, routing, outbox rows,
 * the events it took and the keys it waits for. Nothing touches the database
 * here: the engine turns the results into a checkpoint, pending writes or a
 * failure, and commits them.
 */
#ifndef ORCH_ENGINE_STEP_H
#define ORCH_ENGINE_STEP_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine/ctx.h"
#include "engine/graph_int.h"
#include "engine/stream.h"

/* Least grace after a node's deadline before its attempt counts as hung;
 * the grace is the larger of this and a tenth of the timeout. */
#define STEP_HUNG_GRACE_MIN_MS 1000

/* The attempt a task is running, for the heartbeat to see hung nodes. */
typedef struct step_watch {
	const eng_node_def *node;
	atomic_llong deadline; /* util_mono_ms() time; 0: no attempt with a timeout */
	atomic_int attempt;
	atomic_int reported;   /* this attempt was reported hung once */
} step_watch;

/* State the tasks of one step share: the thread's unconsumed events, and
 * which task took which (so two parallel tasks never take the same one). */
typedef struct step_shared {
	pthread_mutex_t mu;
	json_t *events;   /* [{"id": n, "key": k, "value": v}], borrowed */
	int *taken_by;    /* per event: task index + 1, or 0 */
	size_t nevents;
	const atomic_int *cancel; /* set when the run is asked to cancel */
	step_watch *watch;        /* per task while step_execute runs; guarded by mu */
	size_t nwatch;
} step_shared;

/* What step_shared_hung found. */
typedef struct step_hung {
	const char *node;   /* borrowed from the graph */
	int64_t timeout_ms;
	int attempt;
	int first;          /* first time this attempt is reported */
} step_hung;

typedef struct task_result {
	int rc;           /* 0 done, ERR_WAIT, or the failure's err_code */
	int from_pending; /* restored from pending writes; not run in this step */
	int cached;       /* taken from the node cache; not run */
	int attempts;
	json_t *update;   /* object or NULL */
	json_t *gotos;    /* [{"node": n[, "input": v]}] */
	json_t *outbox;   /* [{"kind": k, "dest": d, "payload": p}] */
	json_t *taken;    /* event ids */
	json_t *waits;    /* keys */
	json_t *wait_payload;
	char error[1024];
} task_result;

/* Where a run's events go (engine/stream.h), shared by its tasks. */
typedef struct step_stream {
	const eng_stream_sink *sink; /* NULL: nowhere */
	atomic_llong *seq;           /* the run's event counter */
	pthread_mutex_t *mu;         /* numbers and emits one event at a time, so a
				      * run's events are delivered in their order */
	const char *ns;              /* subgraph path; "" at the top */
} step_stream;

/* Emits an event of the run (data stolen; may be NULL) when its mode is
 * wanted. Never blocks. */
void step_emit(const step_stream *st, unsigned mode, int64_t run_id, int64_t thread_id,
	       const char *thread_key, int step, const char *node, json_t *data);

/* step_emit of an event that belongs to checkpoint `ck` (updates,
 * checkpoints, values), so a late join can leave out what it holds. */
void step_emit_ck(const step_stream *st, unsigned mode, int64_t run_id, int64_t thread_id,
		  const char *thread_key, int step, int ck, const char *node, json_t *data);

struct eng_ctx {
	const eng_graph *g;
	const eng_node_def *node;
	int64_t run_id, thread_id, token;
	const char *thread_key;
	int step, attempt, task;
	int64_t deadline; /* util_mono_ms() time the attempt must return by; 0: none */
	void *app;
	step_shared *sh;
	task_result *res;
	const step_stream *stream;
	pg_pool *pool;
};

typedef struct step_input {
	const eng_graph *g;
	int64_t run_id, thread_id, token; /* token: the run's lease, for subgraph commits */
	const char *thread_key;
	int step;
	void *app;
	const json_t *state;   /* read-only during the step */
	const json_t *tasks;   /* [{"node": n[, "input": v]}] */
	const json_t *pending; /* {"<task index>": {"update":..,"goto":..}} or NULL */
	step_shared *sh;
	const step_stream *stream; /* NULL: no events */
	pg_pool *pool;             /* for cached nodes (engine/cache.h); NULL: none */
} step_input;

int step_shared_init(step_shared *sh, json_t *events, const atomic_int *cancel);
void step_shared_destroy(step_shared *sh);

/* The events no task has taken yet (a new array sharing their values), for
 * a subgraph's own step_shared. NULL when out of memory. */
json_t *step_shared_untaken(step_shared *sh);

/* Marks the events whose ids are in `ids` as taken by task `task` (a
 * subgraph consumed them in a commit of its own). */
void step_shared_claim(step_shared *sh, int task, const json_t *ids);

/* True (1) when a task of the step is running an attempt that is past its
 * deadline plus grace at monotonic time `now` (see eng_graph_set_timeout);
 * *out then describes the first such task. Thread-safe: the heartbeat calls
 * it while the step runs. */
int step_shared_hung(step_shared *sh, int64_t now, step_hung *out);

/* Runs every task of the step that has no pending write; fills results[i]
 * for i < number of tasks (the array must be zeroed). Returns 0 once every
 * task has finished, waited or failed (see results[i].rc); a negative code
 * only when the step could not be run at all (out of memory, bad task). */
int step_execute(const step_input *in, task_result *results);

void task_result_clear(task_result *r);

/* The tasks of the next step given the state after this one: for each task
 * in order, its node's edges, its router and its gotos. Caller owns *out. */
int step_next(const eng_graph *g, const json_t *state, const json_t *tasks,
	      const task_result *results, json_t **out);

/* The pending-write form of a finished task: {"update": u, "goto": [...]}. */
json_t *task_result_pending(const task_result *r);

#endif
