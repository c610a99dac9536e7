/*
 * subgraph — a compiled graph running as one node of another
 * (eng_graph_add_subgraph, engine/graph.h).
 *
 * The subgraph node runs the child's super-steps in its own task thread,
 * with the engine's task runner (step.h), and commits each child step as a
 * checkpoint of the child's own thread (its namespace), together with the
 * outbox rows its nodes wrote and the events they took, in one statement
 * fenced by the parent run's lease: a parent that lost its run writes
 * nothing. So the child's progress survives the parent parking, crashing or
 * being retried: the node, run again for the same invocation (same run,
 * step and task), resumes the child from its head. A child task that waits
 * makes the node wait for the same keys; the child's other tasks of that
 * step are run again on resume (they are not kept as pending writes).
 */
#include "core/err.h"
#include "core/log.h"
#include "engine/graph_int.h"
#include "engine/step.h"
#include "engine/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INPUT_NODE "__input__"
#define SNAP_MIN_BYTES 8192
#define SNAP_MAX_CHAIN 64

static const pg_stmt STMT_CHILD = {
	"sub_child",
	"INSERT INTO threads AS t (key, graph, parent_id, ns) VALUES ($1, $2, $3, $4) "
	"ON CONFLICT (key) DO UPDATE SET updated_at = now() "
	"RETURNING t.id, t.graph, (SELECT max(seq) FROM checkpoints c WHERE c.thread_id = t.id)",
	4,
};

/* One child step: checkpoint, outbox rows, events taken; nothing when the
 * parent run no longer holds its lease (no row comes back). */
static const pg_stmt STMT_CHILD_STEP = {
	"sub_child_step",
	"WITH r AS (SELECT id FROM runs WHERE id = $1 AND lease_token = $2 AND status = 'running' "
	"FOR NO KEY UPDATE), "
	"ck AS (INSERT INTO checkpoints (thread_id, seq, parent_seq, run_id, step, nodes, delta, "
	"snapshot, next, chain_len, chain_bytes, snap_bytes) SELECT $3, $4, $5, $1, $6, $7::text[], "
	"$8::jsonb, $9::jsonb, $10::jsonb, $11, $12, $13 FROM r), "
	"ob AS (INSERT INTO outbox (thread_id, run_id, step, kind, dest, payload) "
	"SELECT $14, $1, $15, x->>'kind', x->>'dest', x->'payload' FROM r, "
	"jsonb_array_elements(coalesce($16::jsonb, '[]'::jsonb)) WITH ORDINALITY AS a(x, n) "
	"ORDER BY n), "
	"ev AS (UPDATE events SET consumed_at = now(), consumed_by = $1 "
	"WHERE id = ANY (coalesce($17::bigint[], '{}')) AND consumed_at IS NULL "
	"AND EXISTS (SELECT 1 FROM r)) "
	"SELECT count(*) FROM r",
	17,
};

/* What one invocation of a subgraph works with. */
typedef struct child {
	eng_ctx *pctx;            /* the parent task */
	const eng_graph *g;       /* the child graph */
	char key[512];            /* its thread */
	char ns[256];             /* its path */
	int64_t thread_id;
	int head;                 /* its latest checkpoint */
	int step;                 /* its steps so far */
	json_t *state, *tasks, *input_state;
	store_chain chain;
	step_stream stream;
} child;

static void child_free(child *c)
{
	json_decref(c->state);
	json_decref(c->tasks);
	json_decref(c->input_state);
}

/* Finds or makes the child's thread and reads where it stands. */
static int child_open(child *c, pg_conn *db)
{
	const eng_node_def *n = c->pctx->node;
	char parent[24];
	const char *params[4] = {c->key, eng_graph_name(c->g), parent, c->ns};
	PGresult *res = NULL;
	json_t *next = NULL;
	int rc;

	snprintf(parent, sizeof(parent), "%lld", (long long)c->pctx->thread_id);
	rc = pg_exec_stmt(db, &res, &STMT_CHILD, params);
	if (rc < 0)
		return rc;
	if (strcmp(pg_val(res, 0, 1), eng_graph_name(c->g)) != 0) {
		rc = err_set(ERR_CONFLICT, "subgraph '%s': thread '%s' belongs to graph '%s'", n->name,
			     c->key, pg_val(res, 0, 1));
		PQclear(res);
		return rc;
	}
	c->thread_id = pg_int(res, 0, 0);
	c->head = pg_isnull(res, 0, 2) ? 0 : (int)pg_int(res, 0, 2);
	PQclear(res);
	if (c->head == 0)
		return 0;
	rc = store_load_state(db, c->thread_id, c->head, &c->state, &next, &c->chain);
	if (rc == 0)
		rc = store_load_state(db, c->thread_id, 1, &c->input_state, NULL, NULL);
	if (rc < 0) {
		json_decref(next);
		return rc;
	}
	c->tasks = json_is_array(next) ? next : json_array();
	if (!json_is_array(next))
		json_decref(next);
	{
		/* the steps it made so far, in this history */
		char tid[24], sq[16];
		const char *p[2] = {tid, sq};
		static const pg_stmt st = {"sub_child_steps",
					   "SELECT step FROM checkpoints WHERE thread_id = $1 AND seq = $2", 2};
		snprintf(tid, sizeof(tid), "%lld", (long long)c->thread_id);
		snprintf(sq, sizeof(sq), "%d", c->head);
		if (pg_exec_stmt(db, &res, &st, p) == 0 && pg_rows(res) == 1)
			c->step = (int)pg_int(res, 0, 0);
		PQclear(res);
	}
	return 0;
}

/* Commits a child checkpoint (seq head + 1) with the step's side effects. */
static int child_commit(child *c, pg_conn *db, const json_t *nodes, const json_t *delta,
			const json_t *next, const json_t *outbox, const json_t *taken)
{
	char run[24], tok[24], tid[24], sq[16], par[16], stp[16], clen[16], cb[24], sb[24];
	char ptid[24], pstep[16], *delta_s = NULL, *snap_s = NULL, *next_s = NULL;
	char *outbox_s = NULL, *taken_s = NULL;
	buf names, ids;
	PGresult *res = NULL;
	store_chain chain = c->chain;
	size_t i;
	json_t *v;
	int rc;

	buf_init(&names, 0);
	buf_init(&ids, 0);
	{
		const char *items[64];
		size_t n = json_array_size(nodes) < 64 ? json_array_size(nodes) : 64;
		for (i = 0; i < n; i++)
			items[i] = json_string_value(json_array_get(nodes, i));
		rc = pg_text_array(&names, items, n);
	}
	buf_putc(&ids, '{');
	json_array_foreach(taken, i, v) {
		buf_printf(&ids, "%s%lld", i ? "," : "", (long long)json_integer_value(v));
	}
	buf_putc(&ids, '}');
	delta_s = json_dumps(delta, JSON_COMPACT);
	next_s = json_dumps(next, JSON_COMPACT);
	if (rc < 0 || !delta_s || !next_s) {
		rc = rc < 0 ? rc : err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	chain.len++;
	chain.bytes += (int64_t)strlen(delta_s);
	if (c->head == 0 || chain.len >= SNAP_MAX_CHAIN ||
	    chain.bytes >= (chain.snap_bytes > SNAP_MIN_BYTES ? chain.snap_bytes : SNAP_MIN_BYTES)) {
		snap_s = json_dumps(c->state, JSON_COMPACT);
		if (!snap_s) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto done;
		}
		chain.len = 0;
		chain.bytes = 0;
		chain.snap_bytes = (int64_t)strlen(snap_s);
	}
	if (json_array_size(outbox))
		outbox_s = json_dumps(outbox, JSON_COMPACT);
	taken_s = json_array_size(taken) ? (char *)buf_cstr(&ids) : NULL;
	snprintf(run, sizeof(run), "%lld", (long long)c->pctx->run_id);
	snprintf(tok, sizeof(tok), "%lld", (long long)c->pctx->token);
	snprintf(tid, sizeof(tid), "%lld", (long long)c->thread_id);
	snprintf(sq, sizeof(sq), "%d", c->head + 1);
	snprintf(par, sizeof(par), "%d", c->head);
	snprintf(stp, sizeof(stp), "%d", c->step);
	snprintf(clen, sizeof(clen), "%d", chain.len);
	snprintf(cb, sizeof(cb), "%lld", (long long)chain.bytes);
	snprintf(sb, sizeof(sb), "%lld", (long long)chain.snap_bytes);
	snprintf(ptid, sizeof(ptid), "%lld", (long long)c->pctx->thread_id);
	snprintf(pstep, sizeof(pstep), "%d", c->pctx->step);
	{
		const char *p[17] = {run,	 tok,	 tid,	 sq,	 c->head > 0 ? par : NULL,
				     stp,	 buf_cstr(&names), delta_s, snap_s, next_s,
				     clen,	 cb,	 sb,	 ptid,	 pstep,
				     outbox_s, taken_s};
		rc = pg_exec_stmt(db, &res, &STMT_CHILD_STEP, p);
	}
	if (rc == 0 && pg_int(res, 0, 0) == 0)
		rc = err_set(ERR_LEASE, "run %lld no longer holds its lease; subgraph step not written",
			     (long long)c->pctx->run_id);
	if (rc == 0) {
		c->chain = chain;
		c->head++;
	}
done:
	PQclear(res);
	free(delta_s);
	free(snap_s);
	free(next_s);
	free(outbox_s);
	buf_free(&names);
	buf_free(&ids);
	return rc;
}

/* The child's first checkpoint: the parent's state as its input. */
static int child_start(child *c, pg_conn *db, const json_t *pstate)
{
	const eng_schema *schema = eng_graph_schema(c->g);
	json_t *delta = json_object(), *nodes = json_pack("[s]", INPUT_NODE);
	int rc;

	c->state = json_object();
	c->tasks = json_array();
	if (!delta || !nodes || !c->state || !c->tasks) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	rc = eng_update_check(schema, pstate);
	if (rc == 0)
		rc = eng_state_apply(schema, c->state, delta, pstate);
	if (rc == 0)
		rc = eng_graph_targets(c->g, eng_graph_node(c->g, ENG_START), c->state, c->tasks);
	if (rc == 0)
		rc = child_commit(c, db, nodes, delta, c->tasks, NULL, NULL);
	if (rc == 0)
		c->input_state = json_deep_copy(c->state);
done:
	json_decref(delta);
	json_decref(nodes);
	return rc;
}

/* What the child wrote, as the parent node's update: per key of its state,
 * the value it set, the items it appended, the fields it merged. */
static json_t *child_output(const child *c)
{
	const eng_schema *schema = eng_graph_schema(c->g);
	json_t *out = json_object(), *v;
	const char *k;

	json_object_foreach(c->state, k, v) {
		json_t *before = json_object_get(c->input_state, k);

		if (strcmp(k, ENG_JOINS_KEY) == 0 || (before && json_equal(before, v)))
			continue;
		if (eng_schema_get(schema, k) == ENG_APPEND && json_is_array(v) &&
		    json_is_array(before) && json_array_size(v) >= json_array_size(before)) {
			json_t *items = json_array();
			for (size_t i = json_array_size(before); i < json_array_size(v); i++)
				json_array_append(items, json_array_get(v, i));
			json_object_set_new(out, k, items);
		} else if (eng_schema_get(schema, k) == ENG_MERGE && json_is_object(v) &&
			   json_is_object(before)) {
			json_t *m = json_object(), *fv;
			const char *f;
			json_object_foreach(v, f, fv) {
				if (!json_equal(json_object_get(before, f), fv))
					json_object_set(m, f, fv);
			}
			json_object_foreach(before, f, fv) {
				if (!json_object_get(v, f))
					json_object_set_new(m, f, json_null());
			}
			json_object_set_new(out, k, m);
		} else {
			json_object_set(out, k, v);
		}
	}
	return out;
}

/* Emits the child step's updates and checkpoint in the parent's stream. */
static void child_emit(child *c, const json_t *tasks, const task_result *res, size_t n,
		       const json_t *next)
{
	eng_ctx *p = c->pctx;

	for (size_t i = 0; i < n; i++) {
		const char *node = json_string_value(json_object_get(json_array_get(tasks, i), "node"));
		step_emit(&c->stream, ENG_STREAM_UPDATES, p->run_id, p->thread_id, p->thread_key,
			  p->step, node,
			  json_pack("{s:s,s:i,s:O?}", "node", node, "task", (int)i, "update",
				    res[i].update));
	}
	step_emit(&c->stream, ENG_STREAM_CHECKPOINTS, p->run_id, p->thread_id, p->thread_key,
		  p->step, NULL,
		  json_pack("{s:s,s:I,s:i,s:i,s:O,s:s}", "thread_key", c->key, "thread",
			    (json_int_t)c->thread_id, "seq", c->head, "step", c->step, "next", next,
			    "status", json_array_size(next) ? "running" : "done"));
}

/* Parks the parent on what the child's waiting tasks wait for. */
static int child_wait(child *c, const task_result *res, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k;
		json_t *key;
		if (res[i].rc != ERR_WAIT)
			continue;
		json_array_foreach(res[i].waits, k, key) {
			eng_wait(c->pctx, json_string_value(key),
				 json_incref(res[i].wait_payload));
		}
	}
	return ERR_WAIT;
}

/* Runs one child step: its tasks, then (all done) its checkpoint. 1 to go
 * on, 0 when the child finished, ERR_WAIT, or the failure. */
static int child_step(child *c, pg_conn *db, step_shared *sh)
{
	size_t n = json_array_size(c->tasks);
	task_result *res = calloc(n ? n : 1, sizeof(*res));
	json_t *delta = json_object(), *next = NULL, *outbox = json_array(), *taken = json_array();
	json_t *nodes = json_array();
	int rc = 0;

	if (!res || !delta || !outbox || !taken || !nodes) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	c->step++;
	{
		step_input in = {.g = c->g, .run_id = c->pctx->run_id,
				 .thread_id = c->pctx->thread_id, .token = c->pctx->token,
				 .thread_key = c->pctx->thread_key, .step = c->pctx->step,
				 .app = c->pctx->app, .state = c->state, .tasks = c->tasks,
				 .sh = sh, .stream = &c->stream, .pool = c->pctx->pool};
		rc = step_execute(&in, res);
	}
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (res[i].rc < 0 && res[i].rc != ERR_WAIT)
			rc = err_set(res[i].rc, "subgraph '%s': %s", c->pctx->node->name, res[i].error);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (res[i].rc == ERR_WAIT)
			rc = child_wait(c, res, n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_array_append(nodes, json_object_get(json_array_get(c->tasks, i), "node"));
		rc = eng_state_apply(eng_graph_schema(c->g), c->state, delta, res[i].update);
		if (res[i].outbox)
			json_array_extend(outbox, res[i].outbox);
		if (res[i].taken)
			json_array_extend(taken, res[i].taken);
	}
	if (rc == 0)
		rc = step_next(c->g, c->state, c->tasks, res, &next);
	if (rc == 0) {
		json_t *jup = NULL;
		rc = eng_graph_joins(c->g, c->state, c->tasks, next, &jup);
		if (rc == 0 && jup)
			rc = eng_state_apply(eng_graph_schema(c->g), c->state, delta, jup);
		json_decref(jup);
	}
	if (rc == 0)
		rc = child_commit(c, db, nodes, delta, next, outbox, taken);
	if (rc == 0) {
		/* consumed with the child's checkpoint: the parent's siblings leave them */
		step_shared_claim(c->pctx->sh, c->pctx->task, taken);
		child_emit(c, c->tasks, res, n, next);
		json_decref(c->tasks);
		c->tasks = next;
		next = NULL;
		rc = json_array_size(c->tasks) ? 1 : 0;
	}
done:
	for (size_t i = 0; res && i < n; i++)
		task_result_clear(&res[i]);
	free(res);
	json_decref(delta);
	json_decref(next);
	json_decref(outbox);
	json_decref(taken);
	json_decref(nodes);
	return rc;
}

int subgraph_run(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	child c;
	pg_conn *db = NULL;
	step_shared sh;
	json_t *events = NULL;
	const char *pns = eng_ctx_ns(ctx);
	int rc, steps = 0, sh_ready = 0;

	(void)input;
	memset(&c, 0, sizeof(c));
	c.pctx = ctx;
	c.g = ctx->node->sub;
	snprintf(c.key, sizeof(c.key), "%s/%s:%lld.%d.%d", ctx->thread_key, ctx->node->name,
		 (long long)ctx->run_id, ctx->step, ctx->task);
	snprintf(c.ns, sizeof(c.ns), "%s%s%s:%d", pns, *pns ? "/" : "", ctx->node->name, ctx->task);
	if (ctx->stream) {
		c.stream = *ctx->stream;
		c.stream.ns = c.ns;
	}
	if (!ctx->pool)
		return err_set(ERR_INVALID, "subgraph '%s' needs the engine's database",
			       ctx->node->name);
	rc = pg_pool_acquire(ctx->pool, 30000, &db);
	if (rc < 0)
		return rc;
	rc = child_open(&c, db);
	if (rc == 0 && c.head == 0)
		rc = child_start(&c, db, state);
	/* the child's tasks see the parent thread's events nobody took yet */
	events = rc == 0 ? step_shared_untaken(ctx->sh) : NULL;
	if (rc == 0 && !events)
		rc = err_set(ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = step_shared_init(&sh, events, ctx->sh->cancel);
	sh_ready = rc == 0;
	while (rc == 0 && json_array_size(c.tasks) > 0) {
		if (steps++ >= eng_graph_recursion_limit(c.g)) {
			rc = err_set(ERR_LIMIT, "subgraph '%s': recursion limit of %d steps reached",
				     ctx->node->name, eng_graph_recursion_limit(c.g));
			break;
		}
		if (eng_ctx_should_stop(ctx)) {
			rc = err_set(ERR_CANCELLED, "subgraph '%s' stopped: the run was cancelled or its "
							"node timed out", ctx->node->name);
			break;
		}
		rc = child_step(&c, db, &sh);
		if (rc == 1)
			rc = 0;
		else if (rc == 0)
			break;
	}
	if (rc == 0)
		*update = child_output(&c);
	if (sh_ready)
		step_shared_destroy(&sh);
	json_decref(events);
	pg_pool_release(ctx->pool, db);
	child_free(&c);
	return rc;
}
