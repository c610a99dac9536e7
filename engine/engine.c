#include "engine/engine.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/redact.h"
#include "core/util.h"
#include "engine/graph_int.h"
#include "engine/step.h"
#include "engine/store.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Snapshot policy: store the whole state when the deltas since the last
 * snapshot outweigh it (and at least SNAP_MIN_BYTES), or after SNAP_MAX_CHAIN
 * deltas. Storage stays linear in what was written, and reading a state
 * costs one snapshot plus at most about its size in deltas. */
#define SNAP_MIN_BYTES 8192
#define SNAP_MAX_CHAIN 256

/* --- thread state cache --- */

/* The state a thread had at checkpoint `seq`, owned by the cache. A run
 * takes the entry out (it owns the state while it runs) and puts it back
 * at the end, so no copy is made and no two runs share a state. */
typedef struct cache_entry {
	int64_t thread_id;
	int seq;
	json_t *state;
	json_t *next;
	store_chain chain;
	uint64_t used;
	int64_t bytes;
} cache_entry;

/* A step waiting to be committed with others (group commit). */
typedef struct commit_req {
	const store_step *s;
	int rc, done, lead;
	char status[16];
	char err[512];
	pg_error dberr; /* ERR_DB: its class and SQLSTATE */
	struct commit_req *next;
} commit_req;

typedef struct active_run {
	int64_t run_id;
	atomic_int cancel;
	atomic_llong token;   /* the lease token the run is held with */
	step_shared *sh;      /* the step being executed, or NULL; guarded by mu */
	struct active_run *next;
} active_run;

struct eng_engine {
	pg_pool *pool;
	eng_options opt;
	char id[160];
	char host[64];
	int pid;

	const eng_graph **graphs;
	int ngraphs;
	char *graphs_literal;

	pthread_t *workers;
	int nworkers;
	pthread_t listener, beat;
	int started;
	atomic_int stopping;
	atomic_int busy;
	atomic_llong last_expired_check;
	atomic_llong no_flush_commits;
	atomic_int commits_refused; /* "engine.commits" reported degraded */

	pthread_mutex_t mu; /* guards wake, cache, active */
	pthread_cond_t wake_cv;
	int64_t wakeups;
	pthread_cond_t stop_cv;

	cache_entry *cache;
	int ncache;
	uint64_t cache_clock;
	int64_t cache_bytes;

	active_run *active;

	/* runs claimed ahead by one worker for the idle ones (guarded by mu) */
	store_run *ready;
	int nready, ready_cap;
	int reserved; /* slots of `ready` promised to claims in flight */
	int idle;     /* workers waiting for work */
	int claim_full; /* the last claim got every run it asked for */

	/* group commit: a queue of steps and whether a thread is committing */
	pthread_mutex_t cmu;
	pthread_cond_t ccv;
	commit_req *chead, *ctail;
	int cleading;
};

static int cache_find(eng_engine *e, int64_t thread_id)
{
	for (int i = 0; i < e->ncache; i++)
		if (e->cache[i].thread_id == thread_id)
			return i;
	return -1;
}

static void cache_drop(eng_engine *e, int i)
{
	json_decref(e->cache[i].state);
	json_decref(e->cache[i].next);
	e->cache_bytes -= e->cache[i].bytes;
	e->cache[i] = e->cache[--e->ncache];
}

/* Takes the cached state of a thread when it is at checkpoint `seq`. */
static int cache_take(eng_engine *e, int64_t thread_id, int seq, json_t **state, json_t **next,
		      store_chain *chain)
{
	int i, hit = 0;

	if (e->opt.cache_entries < 0)
		return 0;
	pthread_mutex_lock(&e->mu);
	i = cache_find(e, thread_id);
	if (i >= 0 && e->cache[i].seq == seq) {
		*state = e->cache[i].state;
		*next = e->cache[i].next;
		*chain = e->cache[i].chain;
		e->cache[i].state = e->cache[i].next = NULL;
		hit = 1;
	}
	if (i >= 0)
		cache_drop(e, i);
	pthread_mutex_unlock(&e->mu);
	return hit;
}

/* Gives a thread's state (and next tasks) at checkpoint `seq` to the cache,
 * which takes both references. */
static void cache_put(eng_engine *e, int64_t thread_id, int seq, json_t *state, json_t *next,
		      const store_chain *chain)
{
	int64_t bytes = chain->snap_bytes + chain->bytes + 256;
	int i;

	if (e->opt.cache_entries < 0 || bytes > e->opt.cache_bytes / 4) {
		json_decref(state);
		json_decref(next);
		return;
	}
	pthread_mutex_lock(&e->mu);
	i = cache_find(e, thread_id);
	if (i >= 0)
		cache_drop(e, i);
	while (e->ncache > 0 &&
	       (e->ncache >= e->opt.cache_entries || e->cache_bytes + bytes > e->opt.cache_bytes)) {
		int lru = 0;
		for (int k = 1; k < e->ncache; k++)
			if (e->cache[k].used < e->cache[lru].used)
				lru = k;
		cache_drop(e, lru);
	}
	e->cache[e->ncache++] = (cache_entry){
		.thread_id = thread_id,
		.seq = seq,
		.state = state,
		.next = next,
		.chain = *chain,
		.used = ++e->cache_clock,
		.bytes = bytes,
	};
	e->cache_bytes += bytes;
	pthread_mutex_unlock(&e->mu);
}

/* --- active runs (for cancel flags and hung nodes, with the heartbeat) --- */

static active_run *active_add(eng_engine *e, int64_t run_id, int64_t token, int cancel)
{
	active_run *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->run_id = run_id;
	atomic_store(&a->cancel, cancel);
	atomic_store(&a->token, token);
	pthread_mutex_lock(&e->mu);
	a->next = e->active;
	e->active = a;
	pthread_mutex_unlock(&e->mu);
	atomic_fetch_add(&e->busy, 1);
	return a;
}

static void active_remove(eng_engine *e, active_run *a)
{
	pthread_mutex_lock(&e->mu);
	for (active_run **p = &e->active; *p; p = &(*p)->next)
		if (*p == a) {
			*p = a->next;
			break;
		}
	pthread_mutex_unlock(&e->mu);
	atomic_fetch_sub(&e->busy, 1);
	free(a);
}

/* Shows the heartbeat the step a run executes (NULL once it is over). */
static void active_set_step(eng_engine *e, active_run *a, step_shared *sh)
{
	pthread_mutex_lock(&e->mu);
	a->sh = sh;
	pthread_mutex_unlock(&e->mu);
}

/* The lease tokens of the runs this engine's workers are executing or have
 * claimed ahead (the ready queue), as a bigint[] literal (owned): the
 * leases the heartbeat renews. A run whose current step has a hung node
 * (past its deadline plus grace) is left out, so its lease expires and it
 * is taken over from its last checkpoint; so is a run a worker gave up on
 * while the database was away (no longer active). Logs each hung attempt
 * once. */
static char *active_live_tokens(eng_engine *e)
{
	int64_t now = util_mono_ms();
	buf b;
	int n = 0;

	buf_init(&b, 0);
	buf_putc(&b, '{');
	pthread_mutex_lock(&e->mu);
	for (active_run *a = e->active; a; a = a->next) {
		step_hung h;

		if (!a->sh || !step_shared_hung(a->sh, now, &h)) {
			buf_printf(&b, "%s%lld", n++ ? "," : "", (long long)atomic_load(&a->token));
			continue;
		}
		if (h.first)
			log_error("engine",
				  "run %lld: node '%s' is hung past its timeout of %lld ms (attempt "
				  "%d); its lease is no longer renewed, so the run will be taken over "
				  "from its last checkpoint; the stuck thread cannot be killed and "
				  "stays busy until the node returns (its result will be discarded)",
				  (long long)a->run_id, h.node, (long long)h.timeout_ms, h.attempt);
	}
	/* claimed ahead for busy workers, not started yet */
	for (int i = 0; i < e->nready; i++)
		buf_printf(&b, "%s%lld", n++ ? "," : "", (long long)e->ready[i].token);
	pthread_mutex_unlock(&e->mu);
	buf_putc(&b, '}');
	return buf_steal(&b);
}

static void active_mark_cancel(eng_engine *e, json_t *ids)
{
	size_t i;
	json_t *v;

	pthread_mutex_lock(&e->mu);
	json_array_foreach(ids, i, v) {
		for (active_run *a = e->active; a; a = a->next)
			if (a->run_id == json_integer_value(v))
				atomic_store(&a->cancel, 1);
	}
	pthread_mutex_unlock(&e->mu);
}

/* --- executing a run --- */

typedef struct run_exec {
	eng_engine *e;
	const eng_graph *g;
	store_run r;
	active_run *act;
	json_t *state;
	json_t *tasks;
	store_chain chain;
	int parent_seq; /* checkpoint the state corresponds to (0: empty) */
	int prev_seq;   /* the one before it (for the checkpoints stream) */
	int next_seq;   /* seq of the next checkpoint */
	int step;       /* the step being executed */
	int dirty;      /* state holds uncommitted changes */
	pg_error dberr; /* the last ERR_DB's class and SQLSTATE */
	int commit_gave_up; /* attempts at the commit the database kept refusing */
	char status[16];
	char error[1024];
	atomic_llong seq;   /* the run's stream events so far (engine/stream.h) */
	pthread_mutex_t stream_mu;
	step_stream stream;
} run_exec;

static const eng_graph *find_graph(const eng_engine *e, const char *name)
{
	for (int i = 0; i < e->ngraphs; i++)
		if (strcmp(eng_graph_name(e->graphs[i]), name) == 0)
			return e->graphs[i];
	return NULL;
}

/* Emits an event of the run (data stolen) when someone wants its mode. */
static void run_emit(run_exec *x, unsigned mode, const char *node, json_t *data)
{
	step_emit(&x->stream, mode, x->r.run_id, x->r.thread_id, x->r.thread_key, x->step, node,
		  data);
}

/* An event of checkpoint `ck` of the run (data stolen). */
static void run_emit_ck(run_exec *x, unsigned mode, int ck, const char *node, json_t *data)
{
	step_emit_ck(&x->stream, mode, x->r.run_id, x->r.thread_id, x->r.thread_key, x->step, ck,
		     node, data);
}

/* After a completed step committed: each task's update, the checkpoint,
 * and (when wanted) the state. */
static void run_emit_step(run_exec *x, const task_result *res, size_t n, const json_t *next)
{
	const eng_stream_sink *sink = x->stream.sink;

	if (!sink)
		return;
	eng_stream_batch_begin(); /* their readers wake once for the lot */
	if (eng_stream_sink_wants(sink, ENG_STREAM_UPDATES))
		for (size_t i = 0; i < n; i++) {
			const char *node =
				json_string_value(json_object_get(json_array_get(x->tasks, i), "node"));
			run_emit_ck(x, ENG_STREAM_UPDATES, x->parent_seq, node,
				    json_pack("{s:s,s:i,s:O?,s:b,s:b}", "node", node, "task", (int)i,
					      "update", res[i].update, "restored", res[i].from_pending,
					      "cached", res[i].cached));
		}
	if (eng_stream_sink_wants(sink, ENG_STREAM_CHECKPOINTS)) {
		json_t *nodes = json_array();
		size_t i;
		json_t *t;
		json_array_foreach(x->tasks, i, t) {
			json_array_append(nodes, json_object_get(t, "node"));
		}
		run_emit_ck(x, ENG_STREAM_CHECKPOINTS, x->parent_seq, NULL,
			    json_pack("{s:i,s:i,s:i,s:o,s:O,s:s}", "seq", x->parent_seq, "parent",
				      x->prev_seq, "step", x->step, "nodes", nodes, "next", next, "status",
				      x->status));
	}
	if (eng_stream_sink_wants(sink, ENG_STREAM_VALUES))
		run_emit_ck(x, ENG_STREAM_VALUES, x->parent_seq, NULL,
			    json_pack("{s:i,s:O}", "seq", x->parent_seq, "state", x->state));
	eng_stream_batch_end();
}

static int acquire(eng_engine *e, pg_conn **c)
{
	return pg_pool_acquire(e->pool, 30000, c);
}

/* Loads the state a run starts from and the tasks of its next step. */
static int run_prepare(run_exec *x)
{
	store_run *r = &x->r;
	json_t *next = NULL;
	pg_conn *c = NULL;
	int base, resume = r->last_seq >= 0, fork = !resume && r->start_seq >= 0, rc = 0;

	base = resume ? r->last_seq : fork ? r->start_seq : r->head_seq;
	x->parent_seq = base;
	x->next_seq = r->head_seq + 1;
	x->step = r->step + 1;
	memset(&x->chain, 0, sizeof(x->chain));
	if (base > 0 && !cache_take(x->e, r->thread_id, base, &x->state, &next, &x->chain)) {
		rc = acquire(x->e, &c);
		if (rc < 0)
			return rc;
		rc = store_load_state(c, r->thread_id, base, &x->state, &next, &x->chain);
		pg_pool_release(x->e->pool, c);
		if (rc < 0)
			return rc;
	}
	if (!x->state)
		x->state = json_object();
	if (!x->state)
		return err_set(ERR_NOMEM, "out of memory");
	if (resume) {
		x->tasks = next ? next : json_array();
		next = NULL;
	} else if (fork && json_array_size(next) > 0) {
		x->tasks = next;
		next = NULL;
	}
	json_decref(next);
	return 0;
}

/* Applies the run's input (first step of a new run) and, for a fresh start,
 * computes the START tasks from the state with the input. A run resumed or
 * taken over after one of its steps was checkpointed has its input in that
 * state already: it is not applied a second time. */
static int run_start_step(run_exec *x, json_t *delta)
{
	const eng_schema *schema = eng_graph_schema(x->g);
	int rc;

	if (x->r.input && !json_is_null(x->r.input) && x->r.last_seq < 0) {
		rc = eng_update_check(schema, x->r.input);
		if (rc < 0)
			return err_wrap("run input");
		rc = eng_state_apply(schema, x->state, delta, x->r.input);
		if (rc < 0)
			return rc;
		x->dirty = 1;
	}
	json_decref(x->r.input);
	x->r.input = NULL;
	if (!x->tasks) {
		x->tasks = json_array();
		if (!x->tasks)
			return err_set(ERR_NOMEM, "out of memory");
		rc = eng_graph_targets(x->g, eng_graph_node(x->g, ENG_START), x->state, x->tasks);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int text_array_json(buf *b, const json_t *arr)
{
	const char *items[64];
	size_t n = json_array_size(arr), i;
	int rc;

	if (n > 64)
		return err_set(ERR_TOOBIG, "more than 64 items in a text array");
	for (i = 0; i < n; i++)
		items[i] = json_string_value(json_array_get(arr, i));
	rc = pg_text_array(b, items, n);
	return rc;
}

/* The parts of a step's commit built from task results. */
typedef struct commit_parts {
	json_t *outbox, *consumed, *pending, *waits, *wait_payload;
} commit_parts;

static void parts_free(commit_parts *p)
{
	json_decref(p->outbox);
	json_decref(p->consumed);
	json_decref(p->pending);
	json_decref(p->waits);
	json_decref(p->wait_payload);
}

/* Collects outbox rows and consumed events of tasks that ran and finished in
 * this step; with `as_pending`, their results become pending writes too. */
static int collect(run_exec *x, const task_result *res, size_t n, int as_pending,
		   commit_parts *p)
{
	memset(p, 0, sizeof(*p));
	p->outbox = json_array();
	p->consumed = json_array();
	p->pending = json_array();
	p->waits = json_array();
	p->wait_payload = json_array();
	if (!p->outbox || !p->consumed || !p->pending || !p->waits || !p->wait_payload)
		return err_set(ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *node =
			json_string_value(json_object_get(json_array_get(x->tasks, i), "node"));

		if (res[i].rc == ERR_WAIT) {
			size_t k;
			json_t *key;
			json_array_foreach(res[i].waits, k, key) {
				json_array_append(p->waits, key);
			}
			json_array_append_new(
				p->wait_payload,
				json_pack("{s:s,s:i,s:O,s:O?}", "node", node, "task", (int)i, "keys",
					  res[i].waits, "payload", res[i].wait_payload));
			continue;
		}
		if (res[i].rc != 0 || res[i].from_pending)
			continue;
		if (res[i].outbox)
			json_array_extend(p->outbox, res[i].outbox);
		if (res[i].taken)
			json_array_extend(p->consumed, res[i].taken);
		if (as_pending)
			json_array_append_new(p->pending,
					      json_pack("{s:i,s:s,s:o}", "task", (int)i, "node",
							node, "result", task_result_pending(&res[i])));
	}
	return 0;
}

static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

static char *ids_literal(const json_t *ids)
{
	buf b;
	size_t i;
	json_t *v;

	buf_init(&b, 0);
	buf_putc(&b, '{');
	json_array_foreach(ids, i, v) {
		buf_printf(&b, "%s%lld", i ? "," : "", (long long)json_integer_value(v));
	}
	buf_putc(&b, '}');
	return buf_steal(&b);
}

/* The engine's metrics (core/metrics), made once. */
static met_series *m_step_s, *m_steps[3], *m_commit_s, *m_batch;
static pthread_once_t m_once = PTHREAD_ONCE_INIT;

static void metrics_init(void)
{
	static const double sizes[] = {1, 2, 4, 8, 16, 32, 64};
	met_family *steps = met_counter("orch_engine_steps_total",
					"super-steps executed, by outcome (continued, finished, error)",
					"outcome");

	m_step_s = met_with(met_histogram("orch_engine_step_duration_seconds",
					  "one super-step: nodes and commit", NULL, NULL, 0));
	m_steps[0] = met_with(steps, "continued");
	m_steps[1] = met_with(steps, "finished");
	m_steps[2] = met_with(steps, "error");
	m_commit_s = met_with(met_histogram("orch_checkpoint_commit_duration_seconds",
					    "one group commit of checkpoints (a batch of steps)", NULL,
					    NULL, 0));
	m_batch = met_with(met_histogram("orch_checkpoint_batch_size",
					 "steps committed together by one group commit", NULL, sizes,
					 sizeof(sizes) / sizeof(sizes[0])));
}

/* Group commit (leader/follower). A thread with a completed step queues it;
 * when nobody is committing, it commits itself, at once, together with
 * every step queued meanwhile (up to PG_PIPE_MAX) in one transaction, and
 * hands the lead to the oldest waiting step. A lone run pays nothing for
 * this; under load many runs share each transaction and its WAL flush,
 * which is what bounds throughput with durable commits. *out_err gets the
 * class and SQLSTATE of this step's ERR_DB. */
static int group_commit(eng_engine *e, const store_step *s, char *status_out, pg_error *out_err)
{
	commit_req me = {.s = s};

	pthread_mutex_lock(&e->cmu);
	if (e->ctail)
		e->ctail->next = &me;
	else
		e->chead = &me;
	e->ctail = &me;
	if (!e->cleading) {
		e->cleading = 1;
		me.lead = 1;
	}
	while (!me.done && !me.lead)
		pthread_cond_wait(&e->ccv, &e->cmu);
	while (!me.done) {
		commit_req *batch[PG_PIPE_MAX];
		const store_step *steps[PG_PIPE_MAX];
		int rcs[PG_PIPE_MAX], n = 0, rc;
		char st[PG_PIPE_MAX][16], errs[PG_PIPE_MAX][512];
		pg_error dberr[PG_PIPE_MAX], lead_err;
		pg_conn *c = NULL;

		while (e->chead && n < PG_PIPE_MAX) {
			batch[n] = e->chead;
			steps[n++] = e->chead->s;
			e->chead = e->chead->next;
		}
		if (!e->chead)
			e->ctail = NULL;
		pthread_mutex_unlock(&e->cmu);
		rc = acquire(e, &c);
		if (rc == 0) {
			double t0 = met_now();
			rc = store_commit_batch(c, steps, n, rcs, st, errs, dberr);
			pg_pool_release(e->pool, c);
			met_observe(m_commit_s, met_now() - t0);
			met_observe(m_batch, n);
		}
		pg_last_error(&lead_err);
		for (int i = 0; i < n; i++) {
			batch[i]->rc = rc < 0 ? rc : rcs[i];
			batch[i]->dberr = rc < 0 ? lead_err : dberr[i];
			snprintf(batch[i]->err, sizeof(batch[i]->err), "%s",
				 rc < 0 ? err_last() : errs[i]);
			if (rc == 0)
				snprintf(batch[i]->status, sizeof(batch[i]->status), "%s", st[i]);
		}
		pthread_mutex_lock(&e->cmu);
		for (int i = 0; i < n; i++)
			batch[i]->done = 1;
	}
	if (me.lead) {
		if (e->chead)
			e->chead->lead = 1;
		else
			e->cleading = 0;
	}
	pthread_cond_broadcast(&e->ccv);
	pthread_mutex_unlock(&e->cmu);
	*out_err = me.dberr;
	if (me.rc < 0)
		return err_set(me.rc, "%s", me.err);
	snprintf(status_out, 16, "%s", me.status);
	return 0;
}

/* One attempt at committing a step (run_commit). x->dberr gets the class
 * of an ERR_DB. */
static int commit_once(run_exec *x, int ck, const json_t *delta, const json_t *next,
		       const commit_parts *p, const char *status, const char *error,
		       const char *error_node)
{
	store_step s;
	buf nodes, waiting;
	char *delta_s = NULL, *snap_s = NULL, *next_s = NULL, *outbox_s = NULL;
	char *consumed_s = NULL, *pending_s = NULL, *payload_s = NULL;
	store_chain chain = x->chain;
	pg_conn *c = NULL;
	int rc = 0;

	memset(&s, 0, sizeof(s));
	buf_init(&nodes, 0);
	buf_init(&waiting, 0);
	s.run_id = x->r.run_id;
	s.thread_id = x->r.thread_id;
	s.token = x->r.token;
	s.lease_ms = x->e->opt.lease_ms;
	s.step = x->step;
	s.status = status;
	s.error = error;
	s.error_node = error_node;
	s.delete_pending = x->r.pending != NULL;
	if (ck) {
		json_t *names = json_array();
		size_t i;
		json_t *t;

		json_array_foreach(x->tasks, i, t) {
			json_array_append(names, json_object_get(t, "node"));
		}
		rc = text_array_json(&nodes, names);
		json_decref(names);
		if (rc < 0)
			goto done;
		delta_s = dump(delta);
		next_s = dump(next);
		if (!delta_s || !next_s) {
			rc = err_set(ERR_NOMEM, "out of memory serializing a checkpoint");
			goto done;
		}
		chain.len++;
		chain.bytes += (int64_t)strlen(delta_s);
		if (chain.len >= SNAP_MAX_CHAIN ||
		    chain.bytes >= (chain.snap_bytes > SNAP_MIN_BYTES ? chain.snap_bytes
								       : SNAP_MIN_BYTES)) {
			snap_s = dump(x->state);
			if (!snap_s) {
				rc = err_set(ERR_NOMEM, "out of memory serializing a snapshot");
				goto done;
			}
			chain.len = 0;
			chain.bytes = 0;
			chain.snap_bytes = (int64_t)strlen(snap_s);
		}
		s.seq = x->next_seq;
		s.parent_seq = x->parent_seq;
		s.nodes = buf_cstr(&nodes);
		s.delta = delta_s;
		s.snapshot = snap_s;
		s.next = next_s;
		s.chain = chain;
	}
	if (p && json_array_size(p->outbox))
		s.outbox = outbox_s = dump(p->outbox);
	if (p && json_array_size(p->consumed))
		s.consumed = consumed_s = ids_literal(p->consumed);
	if (p && json_array_size(p->pending))
		s.pending = pending_s = dump(p->pending);
	if (p && json_array_size(p->waits)) {
		rc = text_array_json(&waiting, p->waits);
		if (rc < 0)
			goto done;
		s.waiting = buf_cstr(&waiting);
		s.wait_payload = payload_s = dump(p->wait_payload);
	}
	/* durability async: a step with nothing for the outside world (no
	 * outbox rows, no events taken) of a run that goes on need not wait for
	 * the disk; the run's next flushed commit (its end, a wait, a message)
	 * makes it durable too */
	s.no_flush = x->e->opt.durability == ENG_DURABILITY_ASYNC && ck && !s.outbox &&
		     !s.consumed && strcmp(status, "running") == 0;
	if (s.no_flush)
		atomic_fetch_add_explicit(&x->e->no_flush_commits, 1, memory_order_relaxed);
	if (store_step_batchable(&s)) {
		rc = group_commit(x->e, &s, x->status, &x->dberr);
	} else {
		rc = acquire(x->e, &c);
		if (rc < 0) {
			pg_last_error(&x->dberr);
			goto done;
		}
		rc = store_commit(c, &s, x->status);
		pg_last_error(&x->dberr);
		pg_pool_release(x->e->pool, c);
	}
	if (rc == 0 && ck) {
		x->chain = chain;
		x->parent_seq = x->next_seq++;
		x->dirty = 0;
	}
done:
	free(delta_s);
	free(snap_s);
	free(next_s);
	free(outbox_s);
	free(consumed_s);
	free(pending_s);
	free(payload_s);
	buf_free(&nodes);
	buf_free(&waiting);
	return rc;
}

/* Sleeps `ms` unless the engine stops meanwhile. */
static void nap(eng_engine *e, int64_t ms)
{
	int64_t until = util_mono_ms() + ms;

	while (!atomic_load(&e->stopping) && util_mono_ms() < until)
		util_sleep_ms(until - util_mono_ms() < 50 ? until - util_mono_ms() : 50);
}

/* Commits a step (commit_once). A commit the database refuses for any
 * reason but a lost connection (disk full, a constraint, a trigger's
 * exception, a serialization failure) is tried again with backoff, the
 * step's work kept (no node runs again), up to opt.commit_attempts times;
 * each refusal is a warning and "engine.commits" is degraded meanwhile.
 * When the last attempt is refused x->commit_gave_up is set and ERR_DB
 * returned: the caller fails the run with the reason. A lost connection
 * returns at once (run_recover takes over). */
static int run_commit(run_exec *x, int ck, const json_t *delta, const json_t *next,
		      const commit_parts *p, const char *status, const char *error,
		      const char *error_node)
{
	eng_engine *e = x->e;
	int rc;

	for (int attempt = 1;; attempt++) {
		int64_t delay;

		rc = commit_once(x, ck, delta, next, p, status, error, error_node);
		if (rc != ERR_DB || x->dberr.cls == PG_ERRC_CONNECTION)
			break;
		if (attempt >= e->opt.commit_attempts || atomic_load(&e->stopping)) {
			x->commit_gave_up = attempt;
			break;
		}
		delay = util_backoff_ms(attempt - 1, e->opt.commit_backoff_ms,
					e->opt.commit_backoff_ms * 16);
		log_warn("engine",
			 "run %lld: the database refused the commit of step %d (%s, SQLSTATE %s; "
			 "attempt %d of %d), trying again in %lld ms without running its nodes "
			 "again: %s",
			 (long long)x->r.run_id, x->step, pg_errclass_name(x->dberr.cls),
			 x->dberr.sqlstate[0] ? x->dberr.sqlstate : "none", attempt,
			 e->opt.commit_attempts, (long long)delay, err_last());
		atomic_store(&e->commits_refused, 1);
		health_report("engine.commits", HEALTH_DEGRADED,
			      "run %lld: step %d's commit refused (%s, SQLSTATE %s; attempt %d of %d): "
			      "%s",
			      (long long)x->r.run_id, x->step, pg_errclass_name(x->dberr.cls),
			      x->dberr.sqlstate[0] ? x->dberr.sqlstate : "none", attempt,
			      e->opt.commit_attempts, err_last());
		nap(e, delay);
	}
	/* healthy again once a step's checkpoint lands (recording a failure
	 * proves nothing about checkpoints) */
	if (rc == 0 && ck && atomic_exchange(&e->commits_refused, 0))
		health_report("engine.commits", HEALTH_OK, "committing");
	return rc;
}

/* Records a run failure that happened outside a node (bad input, a router
 * naming an unknown node, the recursion limit). */
static int run_fail(run_exec *x, const char *why, const char *node, const commit_parts *p)
{
	/* a node's error may quote a secret (a URL with a token): the stored
	 * error passes the redaction filter like a log line */
	char *safe = redact_str(why);
	int rc;

	if (!safe)
		return err_set(ERR_NOMEM, "out of memory filtering a run's error");
	snprintf(x->error, sizeof(x->error), "%s", safe);
	log_warn("engine", "run %lld failed at step %d: %s", (long long)x->r.run_id, x->step, safe);
	rc = run_commit(x, 0, NULL, NULL, p, "failed", safe, node);
	if (rc == 0)
		snprintf(x->status, sizeof(x->status), "failed");
	free(safe);
	return rc;
}

/* Runs the tasks of the run's current step (step_execute) into res. */
static int run_tasks(run_exec *x, step_shared *sh, task_result *res)
{
	step_input in = {
		.g = x->g,
		.run_id = x->r.run_id,
		.thread_id = x->r.thread_id,
		.token = x->r.token,
		.thread_key = x->r.thread_key,
		.step = x->step,
		.app = x->e->opt.app,
		.state = x->state,
		.tasks = x->tasks,
		.pending = x->r.pending,
		.sh = sh,
		.stream = &x->stream,
		.pool = x->e->pool,
	};

	return step_execute(&in, res);
}

/* After a completed step: the events its tasks took are consumed (by its
 * commit, or a subgraph's): they leave the run's list. */
static void drop_taken(run_exec *x, const step_shared *sh)
{
	for (size_t i = json_array_size(x->r.events); i-- > 0;)
		if (sh->taken_by[i])
			json_array_remove(x->r.events, i);
}

/* Executes one step. Returns 1 to go on, 0 when the run stopped (done,
 * waiting, failed, cancelled), or a negative code when the commit failed. */
static int run_step(run_exec *x)
{
	json_t *delta = json_object(), *next = NULL;
	size_t n = 0;
	task_result *res = NULL;
	step_shared sh;
	commit_parts parts;
	int rc, failed = -1, waiting = 0;

	memset(&parts, 0, sizeof(parts));
	if (step_shared_init(&sh, x->r.events, &x->act->cancel) < 0 || !delta) {
		json_decref(delta);
		return err_set(ERR_NOMEM, "out of memory");
	}
	active_set_step(x->e, x->act, &sh);
	if (x->step > eng_graph_recursion_limit(x->g)) {
		char why[256];
		snprintf(why, sizeof(why),
			 "recursion limit of %d super-steps reached in graph '%s' (a loop that "
			 "never ends?)",
			 eng_graph_recursion_limit(x->g), eng_graph_name(x->g));
		rc = run_fail(x, why, NULL, NULL);
		goto done;
	}
	rc = run_start_step(x, delta);
	if (rc < 0) {
		rc = run_fail(x, err_last(), NULL, NULL);
		goto done;
	}
	n = json_array_size(x->tasks);
	res = calloc(n ? n : 1, sizeof(*res));
	if (!res) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	rc = run_tasks(x, &sh, res);
	if (rc < 0) {
		rc = run_fail(x, err_last(), NULL, NULL);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		if (res[i].rc == ERR_WAIT)
			waiting = 1;
		else if (res[i].rc < 0 && failed < 0)
			failed = (int)i;
	}
	if (failed >= 0 || waiting) {
		rc = collect(x, res, n, 1, &parts);
		if (rc < 0)
			goto done;
		if (failed >= 0) {
			const char *node = json_string_value(
				json_object_get(json_array_get(x->tasks, (size_t)failed), "node"));
			rc = run_fail(x, res[failed].error, node, &parts);
		} else {
			rc = run_commit(x, 0, NULL, NULL, &parts, "waiting", NULL, NULL);
		}
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		rc = eng_state_apply(eng_graph_schema(x->g), x->state, delta, res[i].update);
		x->dirty = 1;
		if (rc < 0)
			goto done;
	}
	rc = collect(x, res, n, 1, &parts);
	if (rc < 0)
		goto done;
	rc = step_next(x->g, x->state, x->tasks, res, &next);
	if (rc == 0) {
		/* joins: which of the nodes they wait for ran; the complete ones run next */
		json_t *jup = NULL;
		rc = eng_graph_joins(x->g, x->state, x->tasks, next, &jup);
		if (rc == 0 && jup)
			rc = eng_state_apply(eng_graph_schema(x->g), x->state, delta, jup);
		json_decref(jup);
	}
	if (rc < 0) {
		const char *node = json_string_value(json_object_get(json_array_get(x->tasks, 0), "node"));
		rc = run_fail(x, err_last(), node, &parts);
		goto done;
	}
	json_decref(parts.pending);
	parts.pending = NULL;
	x->prev_seq = x->parent_seq;
	rc = run_commit(x, 1, delta, next, &parts, json_array_size(next) ? "running" : "done",
			NULL, NULL);
	if (rc < 0)
		goto done;
	run_emit_step(x, res, n, next);
	json_decref(x->tasks);
	x->tasks = next;
	next = NULL;
	json_decref(x->r.pending);
	x->r.pending = NULL;
	drop_taken(x, &sh);
	x->step++;
	rc = strcmp(x->status, "running") == 0 ? 1 : 0;
done:
	for (size_t i = 0; res && i < n; i++)
		task_result_clear(&res[i]);
	free(res);
	parts_free(&parts);
	active_set_step(x->e, x->act, NULL);
	step_shared_destroy(&sh);
	json_decref(delta);
	json_decref(next);
	return rc;
}

static void run_exec_clear(run_exec *x)
{
	json_decref(x->state);
	json_decref(x->tasks);
	x->state = x->tasks = NULL;
	store_run_clear(&x->r);
}

/* After a commit failed because the database went away: waits for it to
 * come back and takes the run up again under a new token, from what the
 * database holds. 1: go on with x->r renewed; 0: the run is not ours. */
static int run_recover(run_exec *x)
{
	int64_t deadline = util_mono_ms() + x->e->opt.lease_ms;

	for (int attempt = 0; util_mono_ms() < deadline; attempt++) {
		store_run fresh;
		pg_conn *c = NULL;
		int rc;

		if (atomic_load(&x->e->stopping))
			return 0;
		util_sleep_ms(util_backoff_ms(attempt, 50, 2000));
		if (acquire(x->e, &c) < 0)
			continue;
		rc = store_reclaim(c, x->r.run_id, x->r.token, x->e->opt.lease_ms, &fresh);
		pg_pool_release(x->e->pool, c);
		if (rc < 0)
			continue;
		if (rc == 0)
			return 0;
		log_info("engine", "run %lld: database back; resuming from its last checkpoint",
			 (long long)x->r.run_id);
		json_decref(x->state);
		json_decref(x->tasks);
		x->state = x->tasks = NULL;
		store_run_clear(&x->r);
		x->r = fresh;
		atomic_store(&x->act->token, x->r.token);
		return 1;
	}
	return 0;
}

/* The database kept refusing this run's work for a reason that is not a
 * lost connection: the run fails with that reason, said loudly, rather than
 * running its nodes again and again. When even the failure cannot be
 * recorded, the run is left to its lease (it expires; the next engine to
 * take the run counts a takeover, and max_takeovers bounds that). */
static int run_fail_db(run_exec *x, int prepare_attempts)
{
	char why[1024], db[512];
	int attempts = x->commit_gave_up ? x->commit_gave_up : prepare_attempts;
	int rc;

	snprintf(db, sizeof(db), "%s", err_last());
	snprintf(why, sizeof(why),
		 "the database refused this run's %s at step %d %d times (%s, SQLSTATE %s): %s%s%s",
		 x->commit_gave_up ? "commit" : "state", x->step, attempts,
		 pg_errclass_name(x->dberr.cls),
		 x->dberr.sqlstate[0] ? x->dberr.sqlstate : "none", db,
		 x->error[0] ? "; the step had failed: " : "", x->error);
	log_error("engine", "run %lld fails: %s", (long long)x->r.run_id, why);
	x->commit_gave_up = 0;
	x->error[0] = '\0';
	rc = run_fail(x, why, NULL, NULL);
	if (rc < 0)
		log_error("engine",
			  "run %lld: its failure could not be recorded either (%s); it stays "
			  "running until its lease expires",
			  (long long)x->r.run_id, err_last());
	return rc;
}

/* The run's first event here: a fresh start, a resume (after a wait, a
 * retry) or a takeover (its engine died, or a node hung: the stream says
 * so, and that the steps after checkpoint from_seq run again). */
static void run_emit_start(run_exec *x)
{
	const char *how = x->r.taken_over			   ? "takeover"
			  : x->r.last_seq >= 0 || x->r.pending     ? "resume"
			  : x->r.start_seq >= 0			   ? "fork"
								   : "start";

	if (!x->stream.sink)
		return;
	run_emit(x, ENG_STREAM_RUN, NULL,
		 json_pack("{s:s,s:s,s:s,s:b,s:i,s:i,s:i,s:i}", "event", "start", "how", how,
			   "graph", x->r.graph, "resumed", strcmp(how, "start") != 0 &&
			   strcmp(how, "fork") != 0, "takeovers", x->r.takeovers, "claims",
			   x->r.claims, "from_seq", x->parent_seq, "step", x->step));
}

/* Executes a claimed run until it stops here. Takes ownership of *r.
 * Fills status (and error for a failure). */
static void run_execute(eng_engine *e, store_run *r, char *status, char *error)
{
	run_exec x;
	int rc = 0;

	memset(&x, 0, sizeof(x));
	x.e = e;
	x.r = *r;
	memset(r, 0, sizeof(*r));
	atomic_init(&x.seq, 0);
	pthread_mutex_init(&x.stream_mu, NULL);
	x.stream.sink = e->opt.sink;
	x.stream.seq = &x.seq;
	x.stream.mu = &x.stream_mu;
	x.stream.ns = "";
	snprintf(status, 16, "lost");
	error[0] = '\0';
	x.g = find_graph(e, x.r.graph);
	x.act = active_add(e, x.r.run_id, x.r.token, x.r.cancel);
	if (!x.g || !x.act) {
		log_error("engine", "run %lld: graph '%s' is not registered here", (long long)x.r.run_id,
			  x.r.graph);
		goto out;
	}
	if (x.r.takeovers > e->opt.max_takeovers) {
		char why[256];
		snprintf(why, sizeof(why),
			 "the engine running this run died (or one of its nodes hung past its "
			 "timeout) %d times; stopped to avoid a crash loop (retry it once the cause "
			 "is fixed)",
			 x.r.takeovers);
		x.step = x.r.step + 1;
		run_fail(&x, why, NULL, NULL);
		goto out;
	}
	for (int prepare_attempts = 1;; prepare_attempts++) {
		rc = run_prepare(&x);
		if (rc == ERR_DB)
			pg_last_error(&x.dberr);
		if (rc == 0 && atomic_load(&x.seq) == 0)
			run_emit_start(&x);
		if (rc == 0) {
			do {
				if (atomic_load(&e->stopping)) {
					pg_conn *c = NULL;
					if (acquire(e, &c) == 0) {
						store_release(c, x.r.run_id, x.r.token);
						pg_pool_release(e->pool, c);
					}
					snprintf(x.status, sizeof(x.status), "released");
					rc = 0;
					break;
				}
				double t0 = met_now();
				rc = run_step(&x);
				met_observe(m_step_s, met_now() - t0);
				met_add(m_steps[rc == 1 ? 0 : rc == 0 ? 1 : 2], 1);
			} while (rc == 1);
		}
		if (rc == ERR_DB && x.dberr.cls == PG_ERRC_CONNECTION) {
			if (run_recover(&x) == 1)
				continue;
			break;
		}
		if (rc == ERR_DB && atomic_load(&e->stopping)) {
			/* stopping while the database refuses: the run goes back to
			 * the queue, as at any graceful stop */
			pg_conn *c = NULL;
			if (acquire(e, &c) == 0) {
				store_release(c, x.r.run_id, x.r.token);
				pg_pool_release(e->pool, c);
			}
			snprintf(x.status, sizeof(x.status), "released");
			rc = 0;
			break;
		}
		if (rc == ERR_DB && !x.commit_gave_up && !x.state &&
		    prepare_attempts < e->opt.commit_attempts && !atomic_load(&e->stopping)) {
			/* loading the run's state was refused: the same backoff */
			log_warn("engine", "run %lld: loading its state failed (%s, attempt %d of %d): %s",
				 (long long)x.r.run_id, pg_errclass_name(x.dberr.cls), prepare_attempts,
				 e->opt.commit_attempts, err_last());
			nap(e, util_backoff_ms(prepare_attempts - 1, e->opt.commit_backoff_ms,
					       e->opt.commit_backoff_ms * 16));
			continue;
		}
		if (rc == ERR_DB)
			rc = run_fail_db(&x, prepare_attempts);
		break;
	}
	if (rc == ERR_LEASE) {
		log_warn("engine", "%s", err_last());
		snprintf(x.status, sizeof(x.status), "lost");
	} else if (rc < 0) {
		log_error("engine", "run %lld stopped: %s", (long long)x.r.run_id, err_last());
		snprintf(x.status, sizeof(x.status), "lost");
	}
	/* a state that matches its last checkpoint is kept for the next run */
	if (x.state && !x.dirty && rc >= 0 && x.parent_seq > 0 && strcmp(x.status, "lost") != 0) {
		json_t *next = strcmp(x.status, "done") == 0 ? json_array() : json_incref(x.tasks);
		cache_put(e, x.r.thread_id, x.parent_seq, x.state, next, &x.chain);
		x.state = NULL;
	}
out:
	snprintf(status, 16, "%s", x.status[0] ? x.status : "lost");
	snprintf(error, 1024, "%s", x.error);
	if (x.stream.sink)
		run_emit(&x, ENG_STREAM_RUN, NULL,
			 json_pack("{s:s,s:s,s:s?,s:i}", "event", "end", "status", status, "error",
				   error[0] ? error : NULL, "steps", x.step > 0 ? x.step - 1 : 0));
	if (e->opt.on_run_end)
		e->opt.on_run_end(x.r.run_id, x.r.thread_id, status, e->opt.hook_udata);
	if (x.act)
		active_remove(e, x.act);
	run_exec_clear(&x);
	pthread_mutex_destroy(&x.stream_mu);
}

/* --- worker, listener and heartbeat threads --- */

static void wake_one(eng_engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->wakeups++;
	pthread_cond_signal(&e->wake_cv);
	pthread_mutex_unlock(&e->mu);
}

static void wake_all(eng_engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->wakeups++;
	pthread_cond_broadcast(&e->wake_cv);
	pthread_mutex_unlock(&e->mu);
}

/* Most runs one claim takes: one for the claiming worker, the others for
 * workers that are idle, handed over through e->ready. */
#define CLAIM_BATCH 16

/* Takes a run claimed ahead by another worker. 1 with *out filled, or 0. */
static int ready_pop(eng_engine *e, store_run *out)
{
	int got = 0;

	pthread_mutex_lock(&e->mu);
	if (e->nready > 0) {
		*out = e->ready[--e->nready];
		got = 1;
	}
	pthread_mutex_unlock(&e->mu);
	return got;
}

/* Claims work: runs claimed ahead first, then queued runs (for this worker
 * and the idle ones, in one statement), then (every quarter lease) a run
 * whose engine died. 1 with *out filled, 0 when there is nothing, < 0 on
 * database errors. */
static int claim_one(eng_engine *e, store_run *out)
{
	store_run got[CLAIM_BATCH];
	pg_conn *c = NULL;
	int64_t now = util_mono_ms();
	int rc, want;

	if (ready_pop(e, out))
		return 1;
	pthread_mutex_lock(&e->mu);
	/* idle workers get a run each; while the last claim came back full the
	 * queue is deep, and this worker takes some ahead for its busy peers */
	want = 1 + e->idle + (e->claim_full ? 3 : 0);
	if (want > CLAIM_BATCH)
		want = CLAIM_BATCH;
	if (want - 1 > e->ready_cap - e->nready - e->reserved)
		want = 1 + (e->ready_cap - e->nready - e->reserved > 0
				    ? e->ready_cap - e->nready - e->reserved
				    : 0);
	e->reserved += want - 1;
	pthread_mutex_unlock(&e->mu);
	rc = acquire(e, &c);
	if (rc == 0)
		rc = store_claim_many(c, e->id, e->opt.lease_ms, e->graphs_literal, want, got);
	pthread_mutex_lock(&e->mu);
	e->reserved -= want - 1;
	e->claim_full = rc >= want && want > 0;
	if (rc > 0) {
		*out = got[0];
		for (int i = 1; i < rc; i++)
			e->ready[e->nready++] = got[i];
		if (rc > 1) {
			e->wakeups++;
			pthread_cond_broadcast(&e->wake_cv);
		}
	}
	pthread_mutex_unlock(&e->mu);
	if (!c)
		return rc;
	if (rc > 0) {
		rc = 1;
	} else if (rc == 0 && now - atomic_load(&e->last_expired_check) >= e->opt.lease_ms / 4) {
		atomic_store(&e->last_expired_check, now);
		rc = store_claim_expired(c, e->id, e->opt.lease_ms, e->graphs_literal, out);
		if (rc == 1)
			log_warn("engine",
				 "took over run %lld (step %d) whose lease expired (its engine died "
				 "or a node hung)",
				 (long long)out->run_id, out->step);
	}
	pg_pool_release(e->pool, c);
	return rc;
}

static void *worker_main(void *arg)
{
	eng_engine *e = arg;
	int failures = 0;

	while (!atomic_load(&e->stopping)) {
		store_run r;
		int64_t seen;
		int rc;

		pthread_mutex_lock(&e->mu);
		seen = e->wakeups;
		pthread_mutex_unlock(&e->mu);
		memset(&r, 0, sizeof(r));
		rc = claim_one(e, &r);
		if (rc == 1) {
			char status[16], error[1024];
			failures = 0;
			wake_one(e); /* there may be more: let an idle worker look */
			run_execute(e, &r, status, error);
			continue;
		}
		if (rc < 0) {
			int64_t d = util_backoff_ms(failures++, 100, 5000);
			log_warn("engine", "claiming runs failed: %s; retrying in %lld ms", err_last(),
				 (long long)d);
			util_sleep_ms(d);
			continue;
		}
		pthread_mutex_lock(&e->mu);
		if (e->wakeups == seen && !atomic_load(&e->stopping) && e->nready == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += e->opt.poll_ms / 1000;
			ts.tv_nsec += (e->opt.poll_ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			e->idle++;
			pthread_cond_timedwait(&e->wake_cv, &e->mu, &ts);
			e->idle--;
		}
		pthread_mutex_unlock(&e->mu);
	}
	return NULL;
}

/* Listens for orch_runs notifications on a connection of its own and wakes
 * a worker for each burst. Reconnects with backoff. */
static void *listener_main(void *arg)
{
	eng_engine *e = arg;
	pg_conn *c = NULL;
	int failures = 0;

	while (!atomic_load(&e->stopping)) {
		struct pollfd pfd;
		PGnotify *n;
		int got = 0;

		if (!c || pg_conn_broken(c)) {
			pg_conn_close(c);
			c = NULL;
			if (pg_conn_open(&c, pg_pool_url(e->pool)) < 0 ||
			    pg_exec(c, NULL, "LISTEN orch_runs", 0, NULL) < 0) {
				pg_conn_close(c);
				c = NULL;
				health_report("engine.listener", HEALTH_DEGRADED,
					      "cannot LISTEN for queued runs (%d attempts; workers poll "
					      "every %lld ms meanwhile): %s",
					      failures + 1, (long long)e->opt.poll_ms, err_last());
				util_sleep_ms(util_backoff_ms(failures++, 100, 5000));
				continue;
			}
			failures = 0;
			health_report("engine.listener", HEALTH_OK, "listening");
			wake_all(e); /* notifications may have been missed meanwhile */
		}
		pfd.fd = PQsocket(pg_conn_raw(c));
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 250) <= 0)
			continue;
		if (!PQconsumeInput(pg_conn_raw(c)))
			continue;
		for (n = PQnotifies(pg_conn_raw(c)); n; n = PQnotifies(pg_conn_raw(c))) {
			PQfreemem(n);
			got++;
		}
		if (got > 1)
			wake_all(e);
		else if (got)
			wake_one(e);
	}
	pg_conn_close(c);
	return NULL;
}

static void *beat_main(void *arg)
{
	eng_engine *e = arg;
	int64_t period = e->opt.lease_ms / 3;
	int failures = 0, first = 1;

	while (!atomic_load(&e->stopping)) {
		int rc;
		pg_conn *c = NULL;
		json_t *cancelled = NULL;
		char *live = active_live_tokens(e);

		rc = pg_pool_acquire(e->pool, 5000, &c);
		if (rc == 0) {
			rc = store_heartbeat(c, e->id, e->host, e->pid, e->nworkers, e->graphs_literal,
					     e->opt.lease_ms, live, &cancelled);
			pg_pool_release(e->pool, c);
		}
		if (rc < 0) {
			failures++;
			log_warn("engine", "heartbeat failed: %s", err_last());
			health_report("engine.heartbeat", HEALTH_DEGRADED,
				      "cannot renew the leases of its runs (%d beats failed in a row; "
				      "they expire after %lld ms without one): %s",
				      failures, (long long)e->opt.lease_ms, err_last());
		} else if (failures > 0 || first) {
			failures = 0;
			health_report("engine.heartbeat", HEALTH_OK, "renewing leases");
		}
		first = 0;
		free(live);
		if (cancelled) {
			active_mark_cancel(e, cancelled);
			json_decref(cancelled);
		}
		pthread_mutex_lock(&e->mu);
		if (!atomic_load(&e->stopping)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += period / 1000;
			ts.tv_nsec += (period % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&e->stop_cv, &e->mu, &ts);
		}
		pthread_mutex_unlock(&e->mu);
		wake_one(e); /* lets an idle worker look for expired leases */
	}
	return NULL;
}

/* --- public API --- */

int eng_engine_new(eng_engine **out, pg_pool *pool, const eng_options *opt)
{
	eng_engine *e;
	char rnd[9];

	*out = NULL;
	pthread_once(&m_once, metrics_init);
	if (opt && opt->durability != ENG_DURABILITY_SYNC && opt->durability != ENG_DURABILITY_ASYNC)
		return err_set(ERR_INVALID, "durability %d: use ENG_DURABILITY_SYNC or _ASYNC",
			       opt->durability);
	e = calloc(1, sizeof(*e));
	if (!e)
		return err_set(ERR_NOMEM, "out of memory");
	if (opt)
		e->opt = *opt;
	if (e->opt.lease_ms <= 0)
		e->opt.lease_ms = 30000;
	if (e->opt.poll_ms <= 0)
		e->opt.poll_ms = 1000;
	if (e->opt.cache_entries == 0)
		e->opt.cache_entries = 256;
	if (e->opt.cache_bytes <= 0)
		e->opt.cache_bytes = 4 << 20;
	if (e->opt.max_takeovers <= 0)
		e->opt.max_takeovers = 10;
	if (e->opt.commit_attempts <= 0)
		e->opt.commit_attempts = 5;
	if (e->opt.commit_backoff_ms <= 0)
		e->opt.commit_backoff_ms = 500;
	if (e->opt.threads < 0)
		e->opt.threads = 0;
	e->pool = pool;
	e->pid = (int)getpid();
	if (gethostname(e->host, sizeof(e->host)) != 0)
		snprintf(e->host, sizeof(e->host), "localhost");
	e->host[sizeof(e->host) - 1] = '\0';
	util_rand_hex(rnd, 4);
	if (e->opt.id && *e->opt.id)
		snprintf(e->id, sizeof(e->id), "%s", e->opt.id);
	else
		snprintf(e->id, sizeof(e->id), "%s-%d-%s", e->host, e->pid, rnd);
	e->opt.id = NULL;
	if (e->opt.cache_entries > 0) {
		e->cache = calloc((size_t)e->opt.cache_entries, sizeof(*e->cache));
		if (!e->cache) {
			free(e);
			return err_set(ERR_NOMEM, "out of memory");
		}
	}
	e->graphs_literal = strdup("{}");
	e->ready_cap = (e->opt.threads > 0 ? e->opt.threads : 1) * CLAIM_BATCH;
	e->ready = calloc((size_t)e->ready_cap, sizeof(*e->ready));
	if (!e->ready || !e->graphs_literal) {
		free(e->ready);
		free(e->graphs_literal);
		free(e->cache);
		free(e);
		return err_set(ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->wake_cv, NULL);
	pthread_cond_init(&e->stop_cv, NULL);
	pthread_mutex_init(&e->cmu, NULL);
	pthread_cond_init(&e->ccv, NULL);
	*out = e;
	return 0;
}

int eng_engine_add_graph(eng_engine *e, const eng_graph *g)
{
	const eng_graph **p;
	const char *names[64];
	buf b;

	if (!eng_graph_compiled(g))
		return err_set(ERR_INVALID, "graph '%s' must be compiled before it is registered",
			       eng_graph_name(g));
	if (find_graph(e, eng_graph_name(g)))
		return err_set(ERR_CONFLICT, "graph '%s' is registered already", eng_graph_name(g));
	if (e->ngraphs >= 64)
		return err_set(ERR_TOOBIG, "an engine runs at most 64 graphs");
	p = realloc(e->graphs, (size_t)(e->ngraphs + 1) * sizeof(*p));
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	e->graphs = p;
	e->graphs[e->ngraphs++] = g;
	for (int i = 0; i < e->ngraphs; i++)
		names[i] = eng_graph_name(e->graphs[i]);
	buf_init(&b, 0);
	if (pg_text_array(&b, names, (size_t)e->ngraphs) < 0) {
		buf_free(&b);
		return err_last_code();
	}
	free(e->graphs_literal);
	e->graphs_literal = buf_steal(&b);
	return 0;
}

int eng_engine_start(eng_engine *e)
{
	if (e->started)
		return 0;
	/* an engine stopped before starts again: the stop request is spent */
	atomic_store(&e->stopping, 0);
	free(e->workers);
	e->workers = calloc((size_t)(e->opt.threads ? e->opt.threads : 1), sizeof(pthread_t));
	if (!e->workers)
		return err_set(ERR_NOMEM, "out of memory");
	for (int i = 0; i < e->opt.threads; i++) {
		if (pthread_create(&e->workers[i], NULL, worker_main, e) != 0) {
			eng_engine_stop(e);
			return err_set(ERR_IO, "cannot start engine worker threads");
		}
		e->nworkers++;
	}
	if (pthread_create(&e->beat, NULL, beat_main, e) != 0)
		return err_set(ERR_IO, "cannot start the heartbeat thread");
	if (e->opt.threads > 0 && pthread_create(&e->listener, NULL, listener_main, e) != 0) {
		atomic_store(&e->stopping, 1);
		pthread_join(e->beat, NULL);
		return err_set(ERR_IO, "cannot start the listener thread");
	}
	e->started = 1;
	log_info("engine", "engine %s started: %d worker threads, graphs %s, durability %s", e->id,
		 e->opt.threads, e->graphs_literal,
		 e->opt.durability == ENG_DURABILITY_ASYNC ? "async" : "sync");
	return 0;
}

void eng_engine_stop(eng_engine *e)
{
	pg_conn *c = NULL;

	if (!e || atomic_exchange(&e->stopping, 1))
		return;
	pthread_mutex_lock(&e->mu);
	e->wakeups++;
	pthread_cond_broadcast(&e->wake_cv);
	pthread_cond_broadcast(&e->stop_cv);
	pthread_mutex_unlock(&e->mu);
	for (int i = 0; i < e->nworkers; i++)
		pthread_join(e->workers[i], NULL);
	e->nworkers = 0;
	/* runs claimed ahead that nobody started go back to the queue */
	while (e->nready > 0) {
		store_run *r = &e->ready[--e->nready];
		if (pg_pool_acquire(e->pool, 2000, &c) == 0) {
			store_release(c, r->run_id, r->token);
			pg_pool_release(e->pool, c);
			c = NULL;
		}
		store_run_clear(r);
	}
	if (e->started) {
		pthread_join(e->beat, NULL);
		if (e->opt.threads > 0)
			pthread_join(e->listener, NULL);
		if (pg_pool_acquire(e->pool, 2000, &c) == 0) {
			store_engine_stopped(c, e->id);
			pg_pool_release(e->pool, c);
		}
		health_forget("engine.listener");
		health_forget("engine.heartbeat");
		health_forget("engine.commits");
		log_info("engine", "engine %s stopped", e->id);
	}
	e->started = 0;
}

void eng_engine_free(eng_engine *e)
{
	if (!e)
		return;
	eng_engine_stop(e);
	while (e->ncache > 0)
		cache_drop(e, e->ncache - 1);
	free(e->cache);
	free(e->ready);
	free(e->workers);
	free(e->graphs);
	free(e->graphs_literal);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->wake_cv);
	pthread_cond_destroy(&e->stop_cv);
	pthread_mutex_destroy(&e->cmu);
	pthread_cond_destroy(&e->ccv);
	free(e);
}

const char *eng_engine_id(const eng_engine *e)
{
	return e->id;
}

int eng_engine_busy(const eng_engine *e)
{
	return atomic_load(&((eng_engine *)e)->busy);
}

int64_t eng_engine_no_flush_commits(const eng_engine *e)
{
	return atomic_load(&((eng_engine *)e)->no_flush_commits);
}

void eng_result_clear(eng_result *r)
{
	json_decref(r->state);
	json_decref(r->wait);
	memset(r, 0, sizeof(*r));
}

/* Fills the outcome of an inline run from what the database recorded. */
static int result_fill(eng_engine *e, eng_result *out, int flags)
{
	static const pg_stmt st = {
		"eng_result",
		"SELECT r.status, r.error, r.wait_payload::text, r.last_seq FROM runs r WHERE r.id = $1",
		1,
	};
	char id[24];
	const char *params[1] = {id};
	PGresult *res = NULL;
	pg_conn *c = NULL;
	int rc;

	if (!(flags & ENG_WANT_STATE) && strcmp(out->status, "waiting") != 0 &&
	    strcmp(out->status, "lost") != 0)
		return 0;
	snprintf(id, sizeof(id), "%lld", (long long)out->run_id);
	rc = acquire(e, &c);
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &res, &st, params);
	if (rc == 0 && pg_rows(res) == 1) {
		json_error_t jerr;
		snprintf(out->status, sizeof(out->status), "%s", pg_val(res, 0, 0));
		if (!pg_isnull(res, 0, 1))
			snprintf(out->error, sizeof(out->error), "%s", pg_val(res, 0, 1));
		if (!pg_isnull(res, 0, 2))
			out->wait = json_loads(pg_val(res, 0, 2), 0, &jerr);
		if ((flags & ENG_WANT_STATE) && !pg_isnull(res, 0, 3)) {
			json_t *cached = NULL, *next = NULL;
			store_chain chain;
			int seq = (int)pg_int(res, 0, 3);
			if (cache_take(e, out->thread_id, seq, &cached, &next, &chain)) {
				out->state = json_deep_copy(cached);
				cache_put(e, out->thread_id, seq, cached, next, &chain);
			} else {
				rc = store_load_state(c, out->thread_id, seq, &out->state, NULL, NULL);
			}
		}
	}
	PQclear(res);
	pg_pool_release(e->pool, c);
	return rc;
}

static int run_inline(eng_engine *e, store_run *r, int flags, eng_result *out)
{
	out->run_id = r->run_id;
	out->thread_id = r->thread_id;
	run_execute(e, r, out->status, out->error);
	return result_fill(e, out, flags);
}

int eng_invoke(eng_engine *e, const char *graph, const char *thread_key, const json_t *input,
	       int flags, eng_result *out)
{
	static const pg_stmt enqueue = {
		"eng_invoke_enqueue",
		"INSERT INTO runs (thread_id, graph, input) SELECT id, graph, $2::jsonb "
		"FROM threads WHERE key = $1 RETURNING id, thread_id",
		2,
	};
	store_run r;
	pg_conn *c = NULL;
	char *input_s = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	if (!find_graph(e, graph))
		return err_set(ERR_NOTFOUND, "graph '%s' is not registered with this engine", graph);
	if (input && !json_is_null(input)) {
		input_s = dump(input);
		if (!input_s)
			return err_set(ERR_NOMEM, "out of memory");
	}
	rc = acquire(e, &c);
	if (rc < 0)
		goto done;
	rc = store_insert_claimed(c, thread_key, graph, input_s, e->id, e->opt.lease_ms, &r);
	if (rc == 0) {
		/* the thread is busy: queue behind its active run */
		PGresult *res = NULL;
		const char *params[2] = {thread_key, input_s};
		rc = pg_exec_stmt(c, &res, &enqueue, params);
		if (rc == 0) {
			out->run_id = pg_int(res, 0, 0);
			out->thread_id = pg_int(res, 0, 1);
			snprintf(out->status, sizeof(out->status), "queued");
		}
		PQclear(res);
		pg_pool_release(e->pool, c);
		goto done;
	}
	pg_pool_release(e->pool, c);
	if (rc < 0)
		goto done;
	rc = run_inline(e, &r, flags, out);
done:
	free(input_s);
	store_run_clear(&r);
	return rc;
}

int eng_resume(eng_engine *e, int64_t thread_id, const char *key, const json_t *value,
	       int flags, eng_result *out)
{
	store_run r;
	pg_conn *c = NULL;
	char *value_s;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	value_s = dump(value ? value : json_null());
	if (!value_s)
		return err_set(ERR_NOMEM, "out of memory");
	rc = acquire(e, &c);
	if (rc == 0) {
		rc = store_deliver_claim(c, thread_id, key, value_s, e->id, e->opt.lease_ms, &r);
		pg_pool_release(e->pool, c);
	}
	free(value_s);
	if (rc < 0)
		return rc;
	out->thread_id = thread_id;
	if (rc == 0) {
		snprintf(out->status, sizeof(out->status), "stored");
		return 0;
	}
	if (!find_graph(e, r.graph)) {
		/* not ours to run: give it to an engine that has the graph */
		if (acquire(e, &c) == 0) {
			store_release(c, r.run_id, r.token);
			pg_pool_release(e->pool, c);
		}
		out->run_id = r.run_id;
		snprintf(out->status, sizeof(out->status), "queued");
		store_run_clear(&r);
		return 0;
	}
	rc = run_inline(e, &r, flags, out);
	store_run_clear(&r);
	return rc;
}
