#include "engine/store.h"
#include "core/err.h"
#include "engine/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns every claim returns, in store_run order. */
#define RUN_COLS                                                                               \
	"r.id, r.thread_id, r.lease_token, r.graph, "                                           \
	"(SELECT key FROM threads WHERE id = r.thread_id), r.input::text, r.start_seq, "        \
	"r.last_seq, r.step, r.claims, "                                                        \
	"(SELECT max(seq) FROM checkpoints WHERE thread_id = r.thread_id), r.cancel_requested, " \
	"(SELECT coalesce(json_agg(json_build_object('id', e.id, 'key', e.key, 'value', "       \
	"e.value) ORDER BY e.id), '[]') FROM events e WHERE e.thread_id = r.thread_id AND "     \
	"e.consumed_at IS NULL)::text, "                                                       \
	"(SELECT coalesce(json_object_agg(p.task, p.result), '{}') FROM pending_writes p "      \
	"WHERE p.run_id = r.id AND p.step = r.step + 1)::text, r.takeovers"

/* Makes the transaction it runs in commit without waiting for the WAL flush
 * (the setting is local to the transaction). NO_FLUSH_CTE carries it as the
 * first CTE of a statement, and NO_FLUSH_FENCE, added to a condition,
 * reads it so that PostgreSQL evaluates it. */
#define NO_FLUSH_SET "set_config('synchronous_commit', 'off', true)"
#define NO_FLUSH_CTE "cfg AS (SELECT " NO_FLUSH_SET " AS v), "
#define NO_FLUSH_FENCE " AND (SELECT v FROM cfg) = 'off'"

#define LEASE_EXPR(p) "now() + make_interval(secs => " p "::int / 1000.0)"

/* A queued run is claimable when it is its thread's first active run:
 * nothing of the thread running or waiting, no older run queued. The test
 * is a correlated subquery on purpose: PostgreSQL runs it as one index
 * lookup per candidate, where a NOT EXISTS may become an anti-join that
 * scans every active run for each candidate. */
static const pg_stmt STMT_CLAIM_QUEUED = {
	"eng_claim_queued",
	"UPDATE runs r SET status = 'running', lease_owner = $1, "
	"lease_token = nextval('run_lease_tokens'), lease_until = " LEASE_EXPR("$2") ", "
	"claims = r.claims + 1, started_at = coalesce(r.started_at, now()), updated_at = now() "
	"WHERE r.id IN (SELECT c.id FROM runs c WHERE c.status = 'queued' AND c.ready_at <= now() "
	"AND c.graph = ANY ($3::text[]) AND (SELECT o.id FROM runs o "
	"WHERE o.thread_id = c.thread_id AND o.status IN ('queued', 'running', 'waiting') "
	"ORDER BY o.status = 'queued', o.id LIMIT 1) = c.id "
	"ORDER BY c.id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING " RUN_COLS,
	4,
};

static const pg_stmt STMT_CLAIM_EXPIRED = {
	"eng_claim_expired",
	"UPDATE runs r SET lease_owner = $1, lease_token = nextval('run_lease_tokens'), "
	"lease_until = " LEASE_EXPR("$2") ", claims = r.claims + 1, "
	"takeovers = r.takeovers + 1, updated_at = now() "
	"WHERE r.id = (SELECT c.id FROM runs c WHERE c.status = 'running' "
	"AND c.lease_until < now() AND c.graph = ANY ($3::text[]) "
	"ORDER BY c.lease_until LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING " RUN_COLS,
	3,
};

static const pg_stmt STMT_RECLAIM = {
	"eng_reclaim",
	"UPDATE runs r SET lease_token = nextval('run_lease_tokens'), "
	"lease_until = " LEASE_EXPR("$3") ", updated_at = now() "
	"WHERE r.id = $1 AND r.lease_token = $2 AND r.status = 'running' RETURNING " RUN_COLS,
	3,
};

/* An inline invocation's run, created already claimed. Its commit does not
 * wait for the disk (synchronous_commit off for this transaction only): the
 * run's first checkpoint commits with a flush, which makes this earlier
 * write durable too, and until then nobody has been told the run exists. */
static const pg_stmt STMT_INSERT_CLAIMED = {
	"eng_insert_claimed",
	"WITH t AS (INSERT INTO threads (key, graph) VALUES ($1, $2) "
	"ON CONFLICT (key) DO UPDATE SET updated_at = now() RETURNING id, graph), "
	"cfg AS (SELECT " NO_FLUSH_SET ") "
	"INSERT INTO runs AS r (thread_id, graph, input, status, lease_owner, lease_token, "
	"lease_until, claims, started_at) "
	"SELECT t.id, t.graph, $3::jsonb, 'running', $4, nextval('run_lease_tokens'), "
	LEASE_EXPR("$5") ", 1, now() FROM t, cfg WHERE t.graph = $2 AND NOT EXISTS "
	"(SELECT 1 FROM runs o WHERE o.thread_id = t.id "
	"AND o.status IN ('queued', 'running', 'waiting')) RETURNING " RUN_COLS,
	5,
};

static const pg_stmt STMT_THREAD_GRAPH = {
	"eng_thread_graph",
	"SELECT graph FROM threads WHERE key = $1",
	1,
};

/* Makes the current (pipelined) transaction commit without waiting for the
 * disk; see STMT_INSERT_CLAIMED for why that is safe where it is used. */
static const pg_stmt STMT_NO_FLUSH = {
	"eng_no_flush",
	"SELECT " NO_FLUSH_SET,
	0,
};

static const pg_stmt STMT_TOUCH_THREAD = {
	"eng_touch_thread",
	"UPDATE threads SET updated_at = now() WHERE id = $1 AND $2::text IS NOT NULL",
	2,
};

static const pg_stmt STMT_DELIVER_CLAIM = {
	"eng_deliver_claim",
	"SELECT run_id FROM orch_deliver($1, $2, $3::jsonb, NULL, $4, $5)",
	5,
};

static const pg_stmt STMT_RUN_HELD = {
	"eng_run_held",
	"SELECT " RUN_COLS " FROM runs r WHERE r.thread_id = $1 AND r.status = 'running' "
	"AND r.lease_owner = $2",
	2,
};

static const pg_stmt STMT_LOAD_CHAIN = {
	"eng_load_chain",
	"WITH RECURSIVE chain AS ("
	" SELECT seq, parent_seq, snapshot, delta, next, chain_len, chain_bytes, snap_bytes, "
	" 0 AS depth FROM checkpoints WHERE thread_id = $1 AND seq = $2"
	" UNION ALL"
	" SELECT c.seq, c.parent_seq, c.snapshot, c.delta, NULL::jsonb, 0, 0::bigint, 0::bigint, "
	" chain.depth + 1 FROM checkpoints c JOIN chain ON c.thread_id = $1 "
	" AND c.seq = chain.parent_seq WHERE chain.snapshot IS NULL) "
	"SELECT seq, snapshot::text, delta::text, next::text, chain_len, chain_bytes, snap_bytes "
	"FROM chain ORDER BY depth DESC",
	2,
};

/* A super-step that completed, in one statement: the fenced UPDATE of the
 * run comes first and every other change reads from its RETURNING, so when
 * the lease is gone (another engine holds the run) nothing at all is
 * written and no row comes back. A run that ends wakes the engines only
 * when its thread has another run queued: NOTIFY serialises the commits of
 * the transactions that send it, so it is not sent for nothing. $13 is the
 * new status (running or done), $14 the lease token, $15 the outbox rows,
 * $16 the events consumed, $17 whether the step's pending writes are to be
 * dropped. The statement comes in three forms built from these parts;
 * `cfg` is an extra leading CTE ("" or NO_FLUSH_CTE) and `fence` an
 * extra condition on the run's row. */
#define STEP_RUN(fence)                                                                       \
	"r AS (UPDATE runs SET step = $5, last_seq = $2, updated_at = now(), "                 \
	" status = CASE WHEN cancel_requested AND $13 = 'running' THEN 'cancelled' ELSE $13 END, " \
	" lease_owner = CASE WHEN $13 = 'running' AND NOT cancel_requested THEN lease_owner END, " \
	" lease_until = CASE WHEN $13 = 'running' AND NOT cancel_requested THEN lease_until END, " \
	" error = NULL, error_node = NULL, "                                                    \
	" finished_at = CASE WHEN $13 <> 'running' OR cancel_requested THEN now() END "        \
	" WHERE id = $4 AND lease_token = $14 AND status = 'running'" fence " RETURNING status), "
#define STEP_CHECKPOINT                                                                       \
	"ck AS (INSERT INTO checkpoints (thread_id, seq, parent_seq, run_id, step, nodes, delta, " \
	" snapshot, next, chain_len, chain_bytes, snap_bytes) SELECT $1, $2, $3, $4, $5, "    \
	" $6::text[], $7::jsonb, $8::jsonb, $9::jsonb, $10, $11, $12 FROM r)"
#define STEP_EFFECTS                                                                          \
	"ob AS (INSERT INTO outbox (thread_id, run_id, step, kind, dest, payload) "             \
	" SELECT $1, $4, $5, x->>'kind', x->>'dest', x->'payload' FROM r, "                     \
	" jsonb_array_elements(coalesce($15::jsonb, '[]'::jsonb)) WITH ORDINALITY AS a(x, n) "  \
	" ORDER BY n), "                                                                       \
	"ev AS (UPDATE events SET consumed_at = now(), consumed_by = $4 "                       \
	" WHERE id = ANY ($16::bigint[]) AND consumed_at IS NULL AND EXISTS (SELECT 1 FROM r)), " \
	"pw AS (DELETE FROM pending_writes WHERE run_id = $4 AND step = $5 AND $17::boolean "   \
	" AND EXISTS (SELECT 1 FROM r)), "
#define STEP_END                                                                              \
	"th AS (UPDATE threads SET updated_at = now() WHERE id = $1 "                           \
	" AND EXISTS (SELECT 1 FROM r WHERE status <> 'running')) "                             \
	"SELECT status, CASE WHEN status <> 'running' AND EXISTS (SELECT 1 FROM runs q "        \
	" WHERE q.thread_id = $1 AND q.status = 'queued') THEN pg_notify('orch_runs', '') END " \
	"FROM r"

/* The full form: any step that completed. */
#define STEP_SQL(cfg, fence) "WITH " cfg STEP_RUN(fence) STEP_CHECKPOINT ", " STEP_EFFECTS STEP_END

/* A step with no outbox rows, no events taken and no pending writes to
 * drop: without those parts, and $15-$17 unused. */
#define STEP_SQL_LEAN(cfg, fence) "WITH " cfg STEP_RUN(fence) STEP_CHECKPOINT ", " STEP_END

/* The step of a run that goes on, in its common form (no outbox rows, no
 * events, no pending writes): the status and lease columns are left alone,
 * so the run's status triggers do not fire, and a run asked to cancel is
 * not matched: its step is written with the full form instead, which ends
 * it. */
#define STEP_SQL_GO(cfg, fence)                                                               \
	"WITH " cfg "r AS (UPDATE runs SET step = $5, last_seq = $2, updated_at = now(), "    \
	" error = NULL, error_node = NULL WHERE id = $4 AND lease_token = $14 "                \
	" AND status = 'running' AND NOT cancel_requested AND $13::text = 'running'" fence    \
	" RETURNING status), " STEP_CHECKPOINT " SELECT status, NULL FROM r"

static const pg_stmt STMT_STEP = {
	"eng_step",
	STEP_SQL("", ""),
	17,
};

static const pg_stmt STMT_STEP_GO = {
	"eng_step_go",
	STEP_SQL_GO("", ""),
	14,
};

static const pg_stmt STMT_STEP_LEAN = {
	"eng_step_lean",
	STEP_SQL_LEAN("", ""),
	14,
};

/* The same forms, committed without waiting for the WAL flush (durability
 * async). */
static const pg_stmt STMT_STEP_NO_FLUSH = {
	"eng_step_no_flush",
	STEP_SQL(NO_FLUSH_CTE, NO_FLUSH_FENCE),
	17,
};

static const pg_stmt STMT_STEP_GO_NO_FLUSH = {
	"eng_step_go_no_flush",
	STEP_SQL_GO(NO_FLUSH_CTE, NO_FLUSH_FENCE),
	14,
};

static const pg_stmt STMT_STEP_LEAN_NO_FLUSH = {
	"eng_step_lean_no_flush",
	STEP_SQL_LEAN(NO_FLUSH_CTE, NO_FLUSH_FENCE),
	14,
};

/* The form of the step statement for `s`: without the outbox, events and
 * pending-writes parts when it has none of them (the common step: less
 * for PostgreSQL to set up), and not waiting for the flush when `no_flush`
 * (which must hold for every step of the transaction). */
static const pg_stmt *step_stmt(const store_step *s, int no_flush, int may_go)
{
	int lean = !s->outbox && !s->consumed && !s->delete_pending;
	int go = lean && may_go && strcmp(s->status, "running") == 0;

	if (no_flush)
		return go ? &STMT_STEP_GO_NO_FLUSH : lean ? &STMT_STEP_LEAN_NO_FLUSH : &STMT_STEP_NO_FLUSH;
	return go ? &STMT_STEP_GO : lean ? &STMT_STEP_LEAN : &STMT_STEP;
}

static int is_go(const pg_stmt *st)
{
	return st == &STMT_STEP_GO || st == &STMT_STEP_GO_NO_FLUSH;
}

static const pg_stmt STMT_CK_INSERT = {
	"eng_ck_insert",
	"INSERT INTO checkpoints (thread_id, seq, parent_seq, run_id, step, nodes, delta, "
	"snapshot, next, chain_len, chain_bytes, snap_bytes) VALUES ($1, $2, $3, $4, $5, "
	"$6::text[], $7::jsonb, $8::jsonb, $9::jsonb, $10, $11, $12)",
	12,
};

static const pg_stmt STMT_PENDING_INSERT = {
	"eng_pending_insert",
	"INSERT INTO pending_writes (run_id, step, task, node, result) "
	"SELECT $1, $2, (x->>'task')::int, x->>'node', x->'result' "
	"FROM jsonb_array_elements($3::jsonb) x ON CONFLICT DO NOTHING",
	3,
};

static const pg_stmt STMT_PENDING_DELETE = {
	"eng_pending_delete",
	"DELETE FROM pending_writes WHERE run_id = $1 AND step = $2",
	2,
};

static const pg_stmt STMT_OUTBOX_INSERT = {
	"eng_outbox_insert",
	"INSERT INTO outbox (thread_id, run_id, step, kind, dest, payload) "
	"SELECT $1, $2, $3, x->>'kind', x->>'dest', x->'payload' "
	"FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS a(x, n) ORDER BY n",
	4,
};

static const pg_stmt STMT_EVENTS_CONSUME = {
	"eng_events_consume",
	"UPDATE events SET consumed_at = now(), consumed_by = $2 "
	"WHERE id = ANY ($1::bigint[]) AND consumed_at IS NULL",
	2,
};

static const pg_stmt STMT_ADVANCE = {
	"eng_advance",
	"SELECT orch_advance($1, $2, $3, $4, $5, $6, $7::text[], $8::jsonb, $9, $10)",
	10,
};

static const pg_stmt STMT_RELEASE = {
	"eng_release",
	"UPDATE runs SET status = 'queued', lease_owner = NULL, lease_token = NULL, "
	"lease_until = NULL, ready_at = now(), updated_at = now() "
	"WHERE id = $1 AND lease_token = $2 AND status = 'running'",
	2,
};

static const pg_stmt STMT_ENGINE_BEAT = {
	"eng_engine_beat",
	"INSERT INTO engines (id, host, pid, threads, graphs) VALUES ($1, $2, $3, $4, $5::text[]) "
	"ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL",
	5,
};

static const pg_stmt STMT_LEASES_RENEW = {
	"eng_leases_renew",
	"UPDATE runs SET lease_until = CASE WHEN lease_token = ANY ($3::bigint[]) "
	"THEN " LEASE_EXPR("$2") " ELSE lease_until END "
	"WHERE lease_owner = $1 AND status = 'running' RETURNING id, cancel_requested",
	3,
};

static const pg_stmt STMT_ENGINE_STOPPED = {
	"eng_engine_stopped",
	"UPDATE engines SET stopped_at = now() WHERE id = $1",
	1,
};

void store_run_clear(store_run *r)
{
	free(r->graph);
	free(r->thread_key);
	json_decref(r->input);
	json_decref(r->events);
	json_decref(r->pending);
	memset(r, 0, sizeof(*r));
}

static json_t *parse_or_null(const char *text)
{
	json_error_t jerr;
	return text && *text ? json_loads(text, JSON_DECODE_ANY, &jerr) : NULL;
}

static int int_or(const PGresult *res, int row, int col, int def)
{
	return pg_isnull(res, row, col) ? def : (int)pg_int(res, row, col);
}

/* Fills a store_run from a row of RUN_COLS starting at column 0. */
static int read_run(const PGresult *res, int row, store_run *out)
{
	memset(out, 0, sizeof(*out));
	out->run_id = pg_int(res, row, 0);
	out->thread_id = pg_int(res, row, 1);
	out->token = pg_int(res, row, 2);
	out->graph = strdup(pg_val(res, row, 3));
	out->thread_key = strdup(pg_val(res, row, 4));
	out->input = pg_isnull(res, row, 5) ? NULL : parse_or_null(pg_val(res, row, 5));
	out->start_seq = int_or(res, row, 6, -1);
	out->last_seq = int_or(res, row, 7, -1);
	out->step = int_or(res, row, 8, 0);
	out->claims = int_or(res, row, 9, 0);
	out->head_seq = int_or(res, row, 10, 0);
	out->cancel = strcmp(pg_val(res, row, 11), "t") == 0;
	out->events = parse_or_null(pg_val(res, row, 12));
	out->pending = parse_or_null(pg_val(res, row, 13));
	out->takeovers = int_or(res, row, 14, 0);
	if (!out->graph || !out->thread_key || !json_is_array(out->events) ||
	    !json_is_object(out->pending)) {
		store_run_clear(out);
		return err_set(ERR_NOMEM, "out of memory reading a claimed run");
	}
	if (json_object_size(out->pending) == 0) {
		json_decref(out->pending);
		out->pending = NULL;
	}
	return 0;
}

static int claim_with(pg_conn *c, const pg_stmt *st, const char *const *params, store_run *out)
{
	PGresult *res = NULL;
	int rc = pg_exec_stmt(c, &res, st, params);

	if (rc < 0) {
		/* two engines claimed two runs of one thread at once: not an error */
		if (pg_last_sqlstate_is(PG_SQLSTATE_UNIQUE_VIOLATION))
			return 0;
		return rc;
	}
	if (pg_rows(res) == 0) {
		PQclear(res);
		return 0;
	}
	rc = read_run(res, 0, out);
	PQclear(res);
	return rc < 0 ? rc : 1;
}

int store_claim_many(pg_conn *c, const char *owner, int64_t lease_ms, const char *graphs,
		     int limit, store_run *out)
{
	char lease[24], lim[16];
	const char *params[4] = {owner, lease, graphs, lim};
	PGresult *res = NULL;
	int rc, n;

	snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 1);
	rc = pg_exec_stmt(c, &res, &STMT_CLAIM_QUEUED, params);
	if (rc < 0)
		/* two engines claimed two runs of one thread at once: not an error */
		return pg_last_sqlstate_is(PG_SQLSTATE_UNIQUE_VIOLATION) ? 0 : rc;
	n = pg_rows(res);
	for (int i = 0; i < n; i++) {
		rc = read_run(res, i, &out[i]);
		if (rc < 0) {
			/* the runs are claimed: their leases expire and they go on elsewhere */
			for (int k = 0; k < i; k++)
				store_run_clear(&out[k]);
			PQclear(res);
			return rc;
		}
	}
	PQclear(res);
	return n;
}

int store_claim_queued(pg_conn *c, const char *owner, int64_t lease_ms, const char *graphs,
		       store_run *out)
{
	return store_claim_many(c, owner, lease_ms, graphs, 1, out);
}

int store_claim_expired(pg_conn *c, const char *owner, int64_t lease_ms, const char *graphs,
			store_run *out)
{
	char lease[24];
	const char *params[3] = {owner, lease, graphs};

	int rc;

	snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
	rc = claim_with(c, &STMT_CLAIM_EXPIRED, params, out);
	if (rc == 1)
		out->taken_over = 1;
	return rc;
}

int store_reclaim(pg_conn *c, int64_t run_id, int64_t token, int64_t lease_ms, store_run *out)
{
	char id[24], tok[24], lease[24];
	const char *params[3] = {id, tok, lease};

	snprintf(id, sizeof(id), "%lld", (long long)run_id);
	snprintf(tok, sizeof(tok), "%lld", (long long)token);
	snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
	return claim_with(c, &STMT_RECLAIM, params, out);
}

int store_insert_claimed(pg_conn *c, const char *key, const char *graph, const char *input,
			 const char *owner, int64_t lease_ms, store_run *out)
{
	char lease[24];
	const char *params[5] = {key, graph, input, owner, lease};
	PGresult *res = NULL;
	int rc;

	snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
	rc = claim_with(c, &STMT_INSERT_CLAIMED, params, out);
	if (rc == 1) {
		/* a thread created by this statement is not visible to its subqueries */
		free(out->thread_key);
		out->thread_key = strdup(key);
		return out->thread_key ? 1 : err_set(ERR_NOMEM, "out of memory");
	}
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &res, &STMT_THREAD_GRAPH, params);
	if (rc < 0)
		return rc;
	if (pg_rows(res) == 1 && strcmp(pg_val(res, 0, 0), graph) != 0) {
		rc = err_set(ERR_CONFLICT, "thread '%s' belongs to graph '%s', not '%s'", key,
			     pg_val(res, 0, 0), graph);
		PQclear(res);
		return rc;
	}
	PQclear(res);
	return 0;
}

int store_deliver_claim(pg_conn *c, int64_t thread_id, const char *key, const char *value,
			const char *owner, int64_t lease_ms, store_run *out)
{
	char tid[24], lease[24];
	const char *p1[5] = {tid, key, value, owner, lease};
	const char *p2[2] = {tid, owner};
	pg_pipe pipe;
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
	pg_pipe_init(&pipe);
	pg_pipe_add(&pipe, &STMT_NO_FLUSH, NULL);
	pg_pipe_add(&pipe, &STMT_DELIVER_CLAIM, p1);
	pg_pipe_add(&pipe, &STMT_RUN_HELD, p2);
	rc = pg_pipe_run(&pipe, c);
	if (rc == 0 && !pg_isnull(pipe.res[1], 0, 0) && pg_rows(pipe.res[2]) == 1)
		rc = read_run(pipe.res[2], 0, out) < 0 ? err_last_code() : 1;
	else if (rc == 0)
		/* nobody waited: the event alone is stored and the caller told so,
		 * so it must be durable now; a small write committed with a flush
		 * flushes everything before it */
		rc = pg_exec_stmt(c, NULL, &STMT_TOUCH_THREAD, p2);
	pg_pipe_clear(&pipe);
	return rc;
}

int store_load_state(pg_conn *c, int64_t thread_id, int seq, json_t **state, json_t **next,
		     store_chain *chain)
{
	char tid[24], sq[16];
	const char *params[2] = {tid, sq};
	PGresult *res = NULL;
	json_t *st = NULL;
	int rc, n;

	*state = NULL;
	if (next)
		*next = NULL;
	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	snprintf(sq, sizeof(sq), "%d", seq);
	rc = pg_exec_stmt(c, &res, &STMT_LOAD_CHAIN, params);
	if (rc < 0)
		return rc;
	n = pg_rows(res);
	if (n == 0) {
		rc = err_set(ERR_NOTFOUND, "thread %lld has no checkpoint %d", (long long)thread_id,
			     seq);
		goto done;
	}
	for (int i = 0; i < n; i++) {
		json_error_t jerr;
		json_t *d;

		if (i == 0 && !pg_isnull(res, i, 1)) {
			st = json_loads(pg_val(res, i, 1), 0, &jerr);
			if (!json_is_object(st)) {
				rc = err_set(ERR_PARSE, "snapshot at checkpoint %d is unreadable: %s",
					     (int)pg_int(res, i, 0), jerr.text);
				goto done;
			}
			continue;
		}
		if (i == 0)
			st = json_object();
		d = json_loads(pg_val(res, i, 2), 0, &jerr);
		if (!d) {
			rc = err_set(ERR_PARSE, "delta at checkpoint %d is unreadable: %s",
				     (int)pg_int(res, i, 0), jerr.text);
			goto done;
		}
		rc = eng_delta_apply(st, d);
		json_decref(d);
		if (rc < 0)
			goto done;
	}
	if (next) {
		json_error_t jerr;
		*next = json_loads(pg_val(res, n - 1, 3), 0, &jerr);
	}
	if (chain) {
		chain->len = (int)pg_int(res, n - 1, 4);
		chain->bytes = pg_int(res, n - 1, 5);
		chain->snap_bytes = pg_int(res, n - 1, 6);
	}
	*state = st;
	st = NULL;
done:
	json_decref(st);
	PQclear(res);
	return rc;
}

/* The text parameters of STMT_STEP for one step. */
typedef struct step_params {
	char run[24], thread[24], tok[24], step[16], seq[16], parent[16];
	char clen[16], cbytes[24], sbytes[24];
	const char *v[17];
} step_params;

static void step_params_fill(step_params *p, const store_step *s)
{
	snprintf(p->run, sizeof(p->run), "%lld", (long long)s->run_id);
	snprintf(p->thread, sizeof(p->thread), "%lld", (long long)s->thread_id);
	snprintf(p->tok, sizeof(p->tok), "%lld", (long long)s->token);
	snprintf(p->step, sizeof(p->step), "%d", s->step);
	snprintf(p->seq, sizeof(p->seq), "%d", s->seq);
	snprintf(p->parent, sizeof(p->parent), "%d", s->parent_seq);
	snprintf(p->clen, sizeof(p->clen), "%d", s->chain.len);
	snprintf(p->cbytes, sizeof(p->cbytes), "%lld", (long long)s->chain.bytes);
	snprintf(p->sbytes, sizeof(p->sbytes), "%lld", (long long)s->chain.snap_bytes);
	p->v[0] = p->thread;
	p->v[1] = p->seq;
	p->v[2] = s->parent_seq > 0 ? p->parent : NULL;
	p->v[3] = p->run;
	p->v[4] = p->step;
	p->v[5] = s->nodes;
	p->v[6] = s->delta;
	p->v[7] = s->snapshot;
	p->v[8] = s->next;
	p->v[9] = p->clen;
	p->v[10] = p->cbytes;
	p->v[11] = p->sbytes;
	p->v[12] = s->status;
	p->v[13] = p->tok;
	p->v[14] = s->outbox;
	p->v[15] = s->consumed;
	p->v[16] = s->delete_pending ? "true" : "false";
}

/* Reads STMT_STEP's result: the run's status, or ERR_LEASE with no row. */
static int step_outcome(const store_step *s, const PGresult *res, char *status_out)
{
	if (pg_rows(res) == 0)
		return err_set(ERR_LEASE,
			       "run %lld no longer holds its lease (another engine took it over); "
			       "step %d was not written",
			       (long long)s->run_id, s->step);
	snprintf(status_out, 16, "%s", pg_val(res, 0, 0));
	return 0;
}

/* A completed step (checkpoint, status running or done): one statement. */
static int commit_step(pg_conn *c, const store_step *s, char *status_out)
{
	step_params p;
	PGresult *res = NULL;
	const pg_stmt *st;
	int rc;

	step_params_fill(&p, s);
	st = step_stmt(s, s->no_flush, 1);
	rc = pg_exec_stmt(c, &res, st, p.v);
	if (rc == 0 && is_go(st) && pg_rows(res) == 0) {
		/* asked to cancel, or no longer ours: the full form tells which */
		PQclear(res);
		res = NULL;
		rc = pg_exec_stmt(c, &res, step_stmt(s, s->no_flush, 0), p.v);
	}
	if (rc < 0) {
		if (pg_last_sqlstate_is(PG_SQLSTATE_UNIQUE_VIOLATION))
			rc = err_set(ERR_LEASE, "run %lld: checkpoint %d exists already: %s",
				     (long long)s->run_id, s->seq, err_last());
		return rc;
	}
	rc = step_outcome(s, res, status_out);
	PQclear(res);
	return rc;
}

int store_step_batchable(const store_step *s)
{
	return s->seq > 0 && !s->pending &&
	       (strcmp(s->status, "running") == 0 || strcmp(s->status, "done") == 0);
}

int store_commit_batch(pg_conn *c, const store_step *const *steps, int n, int *rcs,
		       char (*status)[16], char (*errs)[512], pg_error *dberr)
{
	step_params *p;
	pg_pipe pipe;
	int rc, no_flush = 1;

	if (n < 1 || n > PG_PIPE_MAX)
		return err_set(ERR_INVALID, "a commit batch holds 1 to %d steps", PG_PIPE_MAX);
	p = calloc((size_t)n, sizeof(*p));
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	pg_pipe_init(&pipe);
	/* the batch waits for the disk unless every step in it may skip that
	 * (the setting holds for the whole transaction) */
	for (int i = 0; i < n && no_flush; i++)
		no_flush = steps[i]->no_flush;
	for (int i = 0; i < n; i++) {
		step_params_fill(&p[i], steps[i]);
		pg_pipe_add(&pipe, step_stmt(steps[i], no_flush, 1), p[i].v);
	}
	rc = pg_pipe_run(&pipe, c);
	if (rc == 0) {
		for (int i = 0; i < n; i++) {
			if (is_go(pipe.stmts[i]) && pg_rows(pipe.res[i]) == 0)
				/* asked to cancel, or no longer ours: the full form, in a
				 * transaction of its own, tells which */
				rcs[i] = commit_step(c, steps[i], status[i]);
			else
				rcs[i] = step_outcome(steps[i], pipe.res[i], status[i]);
			snprintf(errs[i], 512, "%s", rcs[i] < 0 ? err_last() : "");
			pg_last_error(&dberr[i]);
		}
	} else if (!pg_conn_broken(c)) {
		/* one statement failed and took the batch's transaction with it:
		 * each step again in a transaction of its own */
		for (int i = 0; i < n; i++) {
			rcs[i] = commit_step(c, steps[i], status[i]);
			snprintf(errs[i], 512, "%s", rcs[i] < 0 ? err_last() : "");
			pg_last_error(&dberr[i]);
		}
		rc = 0;
	}
	pg_pipe_clear(&pipe);
	free(p);
	return rc;
}

int store_commit(pg_conn *c, const store_step *s, char *status_out)
{
	char run[24], thread[24], tok[24], lease[24], step[16], done_step[16], seq[16], parent[16];
	char clen[16], cbytes[24], sbytes[24];
	const char *ck[12] = {thread, seq, s->parent_seq > 0 ? parent : NULL, run, step, s->nodes,
			      s->delta, s->snapshot, s->next, clen, cbytes, sbytes};
	const char *pend[3] = {run, step, s->pending};
	const char *outbox[4] = {thread, run, step, s->outbox};
	const char *consume[2] = {s->consumed, run};
	const char *pdel[2] = {run, step};
	const char *adv[10] = {run, tok, lease, s->seq > 0 ? step : done_step,
			       s->seq > 0 ? seq : NULL, s->status, s->waiting, s->wait_payload,
			       s->error, s->error_node};
	pg_pipe pipe;
	int rc;

	if (store_step_batchable(s))
		return commit_step(c, s, status_out);

	snprintf(run, sizeof(run), "%lld", (long long)s->run_id);
	snprintf(thread, sizeof(thread), "%lld", (long long)s->thread_id);
	snprintf(tok, sizeof(tok), "%lld", (long long)s->token);
	snprintf(lease, sizeof(lease), "%lld", (long long)s->lease_ms);
	snprintf(step, sizeof(step), "%d", s->step);
	snprintf(done_step, sizeof(done_step), "%d", s->step - 1);
	snprintf(seq, sizeof(seq), "%d", s->seq);
	snprintf(parent, sizeof(parent), "%d", s->parent_seq);
	snprintf(clen, sizeof(clen), "%d", s->chain.len);
	snprintf(cbytes, sizeof(cbytes), "%lld", (long long)s->chain.bytes);
	snprintf(sbytes, sizeof(sbytes), "%lld", (long long)s->chain.snap_bytes);

	/* the other endings (waiting, failed) carry pending writes and need
	 * orch_advance's checks: several statements, one pipelined transaction */
	pg_pipe_init(&pipe);
	if (s->seq > 0)
		pg_pipe_add(&pipe, &STMT_CK_INSERT, ck);
	if (s->pending)
		pg_pipe_add(&pipe, &STMT_PENDING_INSERT, pend);
	if (s->outbox)
		pg_pipe_add(&pipe, &STMT_OUTBOX_INSERT, outbox);
	if (s->consumed)
		pg_pipe_add(&pipe, &STMT_EVENTS_CONSUME, consume);
	if (s->delete_pending && s->seq > 0)
		pg_pipe_add(&pipe, &STMT_PENDING_DELETE, pdel);
	pg_pipe_add(&pipe, &STMT_ADVANCE, adv);
	rc = pg_pipe_run(&pipe, c);
	if (rc < 0) {
		if (pg_last_sqlstate_is(STORE_LEASE_LOST) ||
		    pg_last_sqlstate_is(PG_SQLSTATE_UNIQUE_VIOLATION))
			rc = err_set(ERR_LEASE, "run %lld: %s", (long long)s->run_id, err_last());
		goto done;
	}
	snprintf(status_out, 16, "%s", pg_val(pipe.res[pipe.n - 1], 0, 0));
done:
	pg_pipe_clear(&pipe);
	return rc;
}

int store_release(pg_conn *c, int64_t run_id, int64_t token)
{
	char id[24], tok[24];
	const char *params[2] = {id, tok};

	snprintf(id, sizeof(id), "%lld", (long long)run_id);
	snprintf(tok, sizeof(tok), "%lld", (long long)token);
	return pg_exec_stmt(c, NULL, &STMT_RELEASE, params);
}

int store_heartbeat(pg_conn *c, const char *owner, const char *host, int pid, int threads,
		    const char *graphs, int64_t lease_ms, const char *live_tokens,
		    json_t **cancelled)
{
	char spid[16], sthreads[16], lease[24];
	const char *p1[5] = {owner, host, spid, sthreads, graphs};
	const char *p2[3] = {owner, lease, live_tokens};
	pg_pipe pipe;
	int rc;

	*cancelled = NULL;
	snprintf(spid, sizeof(spid), "%d", pid);
	snprintf(sthreads, sizeof(sthreads), "%d", threads);
	snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
	pg_pipe_init(&pipe);
	pg_pipe_add(&pipe, &STMT_ENGINE_BEAT, p1);
	pg_pipe_add(&pipe, &STMT_LEASES_RENEW, p2);
	rc = pg_pipe_run(&pipe, c);
	if (rc == 0) {
		json_t *ids = json_array();
		for (int i = 0; ids && i < pg_rows(pipe.res[1]); i++)
			if (strcmp(pg_val(pipe.res[1], i, 1), "t") == 0)
				json_array_append_new(ids, json_integer(pg_int(pipe.res[1], i, 0)));
		*cancelled = ids;
	}
	pg_pipe_clear(&pipe);
	return rc;
}

int store_engine_stopped(pg_conn *c, const char *owner)
{
	const char *params[1] = {owner};
	return pg_exec_stmt(c, NULL, &STMT_ENGINE_STOPPED, params);
}
