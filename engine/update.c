/*
 * update — eng_update_state (engine/control.h): a thread's state edited as
 * if a node had returned the edit (LangGraph's update_state).
 */
#include "core/err.h"
#include "engine/control.h"
#include "engine/graph_int.h"
#include "engine/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UPDATE_NODE "__update__"

static const pg_stmt STMT_THREAD_LOCK = {
	"upd_thread_lock",
	"SELECT graph, (SELECT max(seq) FROM checkpoints WHERE thread_id = $1), "
	"(SELECT max(id) FROM runs WHERE thread_id = $1) FROM threads WHERE id = $1 FOR UPDATE",
	1,
};

static const pg_stmt STMT_ACTIVE = {
	"upd_active",
	"SELECT id, status, step FROM runs WHERE thread_id = $1 AND status IN ('queued', "
	"'running', 'waiting') ORDER BY id LIMIT 1 FOR UPDATE",
	1,
};

static const pg_stmt STMT_CHECKPOINT = {
	"upd_checkpoint",
	"INSERT INTO checkpoints (thread_id, seq, parent_seq, run_id, step, nodes, delta, snapshot, "
	"next, chain_len, chain_bytes, snap_bytes) VALUES ($1, $2, $3, $4, 0, ARRAY[$5], $6::jsonb, "
	"$7::jsonb, $8::jsonb, 0, 0, $9)",
	9,
};

/* The waiting run, moved to the new checkpoint: it goes on from there
 * ($3 'queued'), ends ('done': nothing follows) or waits again on the
 * edited state ('waiting'); its pending writes were made on the old state. */
static const pg_stmt STMT_MOVE_RUN = {
	"upd_move_run",
	"WITH pw AS (DELETE FROM pending_writes WHERE run_id = $1 AND step = $4 + 1) "
	"UPDATE runs SET last_seq = $2, status = $3, updated_at = now(), "
	"waiting_on = CASE WHEN $3 = 'waiting' THEN waiting_on END, "
	"wait_payload = CASE WHEN $3 = 'waiting' THEN wait_payload END, "
	"ready_at = now(), finished_at = CASE WHEN $3 = 'done' THEN now() END WHERE id = $1",
	4,
};

static const pg_stmt STMT_CONTINUE = {
	"upd_continue",
	"INSERT INTO runs (thread_id, graph, start_seq) SELECT id, graph, $2 FROM threads "
	"WHERE id = $1 RETURNING id",
	2,
};

/* The new state and the tasks that follow it: the update through the
 * reducers, then `as_node`'s edges, router and joins (or the tasks that
 * were next). *state and *next are replaced; delta gets what changed. */
static int apply(const eng_graph *g, const json_t *update, const char *as_node, json_t *state,
		 json_t **next, json_t *delta)
{
	const eng_schema *schema = eng_graph_schema(g);
	const eng_node_def *nd = NULL;
	json_t *tasks = NULL, *jup = NULL, *ran = NULL;
	int rc;

	if (as_node) {
		nd = eng_graph_node(g, as_node);
		if (!nd || !nd->fn)
			return err_set(ERR_NOTFOUND, "graph '%s' has no node '%s' to update the state as",
				       eng_graph_name(g), as_node);
	}
	rc = eng_update_check(schema, update);
	if (rc < 0)
		return err_wrap("the update");
	rc = eng_state_apply(schema, state, delta, update);
	if (rc < 0 || !nd)
		return rc;
	tasks = json_array();
	ran = json_pack("[{s:s}]", "node", as_node);
	if (!tasks || !ran) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	rc = eng_graph_targets(g, nd, state, tasks);
	if (rc == 0)
		rc = eng_graph_joins(g, state, ran, tasks, &jup);
	if (rc == 0 && jup)
		rc = eng_state_apply(schema, state, delta, jup);
	if (rc == 0) {
		json_decref(*next);
		*next = tasks;
		tasks = NULL;
	}
done:
	json_decref(tasks);
	json_decref(jup);
	json_decref(ran);
	return rc;
}

/* Inside the transaction: everything but BEGIN and COMMIT. */
static int update_tx(pg_conn *c, const eng_graph *g, int64_t thread_id, const json_t *update,
		     const char *as_node, int flags, eng_update_result *out)
{
	char tid[24], sq[16], parent[16], run[24], sb[24], step[16];
	const char *p1[1] = {tid};
	PGresult *th = NULL, *act = NULL, *res = NULL;
	json_t *state = NULL, *next = NULL, *delta = json_object();
	char *delta_s = NULL, *snap_s = NULL, *next_s = NULL;
	int rc, head = 0;
	int64_t waiting = 0, last_run = 0;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &th, &STMT_THREAD_LOCK, p1);
	if (rc < 0)
		goto done;
	if (pg_rows(th) == 0) {
		rc = err_set(ERR_NOTFOUND, "no thread %lld", (long long)thread_id);
		goto done;
	}
	if (strcmp(pg_val(th, 0, 0), eng_graph_name(g)) != 0) {
		rc = err_set(ERR_CONFLICT, "thread %lld belongs to graph '%s', not '%s'",
			     (long long)thread_id, pg_val(th, 0, 0), eng_graph_name(g));
		goto done;
	}
	head = pg_isnull(th, 0, 1) ? 0 : (int)pg_int(th, 0, 1);
	last_run = pg_isnull(th, 0, 2) ? 0 : pg_int(th, 0, 2);
	rc = pg_exec_stmt(c, &act, &STMT_ACTIVE, p1);
	if (rc < 0)
		goto done;
	if (pg_rows(act) == 1 && strcmp(pg_val(act, 0, 1), "waiting") != 0) {
		rc = err_set(ERR_BUSY,
			     "thread %lld has a run that is %s (run %lld): its state cannot be "
			     "edited until it ends or waits (cancel it, or wait)",
			     (long long)thread_id, pg_val(act, 0, 1), (long long)pg_int(act, 0, 0));
		goto done;
	}
	if (pg_rows(act) == 1)
		waiting = pg_int(act, 0, 0);
	if (head > 0) {
		rc = store_load_state(c, thread_id, head, &state, &next, NULL);
		if (rc < 0)
			goto done;
	}
	if (!state)
		state = json_object();
	if (!next)
		next = json_array();
	rc = delta && state && next ? apply(g, update, as_node, state, &next, delta)
				    : err_set(ERR_NOMEM, "out of memory");
	if (rc < 0)
		goto done;
	delta_s = json_dumps(delta, JSON_COMPACT);
	snap_s = json_dumps(state, JSON_COMPACT);
	next_s = json_dumps(next, JSON_COMPACT);
	if (!delta_s || !snap_s || !next_s) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	snprintf(sq, sizeof(sq), "%d", head + 1);
	snprintf(parent, sizeof(parent), "%d", head);
	snprintf(run, sizeof(run), "%lld", (long long)(waiting ? waiting : last_run));
	snprintf(sb, sizeof(sb), "%zu", strlen(snap_s));
	{
		const char *p[9] = {tid, sq, head > 0 ? parent : NULL, run,
				    as_node ? as_node : UPDATE_NODE, delta_s, snap_s, next_s, sb};
		rc = pg_exec_stmt(c, NULL, &STMT_CHECKPOINT, p);
	}
	if (rc < 0)
		goto done;
	out->seq = head + 1;
	if (waiting) {
		/* with as_node the run goes on from the new tasks (or ends); without, it
		 * waits again for the same, on the edited state */
		const char *st = !as_node ? "waiting" : json_array_size(next) ? "queued" : "done";
		const char *p[4] = {run, sq, st, step};
		snprintf(step, sizeof(step), "%lld", (long long)pg_int(act, 0, 2));
		rc = pg_exec_stmt(c, NULL, &STMT_MOVE_RUN, p);
		out->run_id = waiting;
		snprintf(out->run_status, sizeof(out->run_status), "%s", st);
	} else if ((flags & ENG_UPDATE_RUN) && json_array_size(next)) {
		const char *p[2] = {tid, sq};
		rc = pg_exec_stmt(c, &res, &STMT_CONTINUE, p);
		if (rc == 0) {
			out->run_id = pg_int(res, 0, 0);
			snprintf(out->run_status, sizeof(out->run_status), "queued");
		}
	}
done:
	PQclear(th);
	PQclear(act);
	PQclear(res);
	json_decref(state);
	json_decref(next);
	json_decref(delta);
	free(delta_s);
	free(snap_s);
	free(next_s);
	return rc;
}

int eng_update_state(pg_conn *c, const eng_graph *g, int64_t thread_id, const json_t *update,
		     const char *as_node, int flags, eng_update_result *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (!eng_graph_compiled(g))
		return err_set(ERR_INVALID, "graph '%s' is not compiled", eng_graph_name(g));
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc < 0)
		return rc;
	rc = update_tx(c, g, thread_id, update, as_node, flags, out);
	rc = pg_tx_end(c, rc);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}
