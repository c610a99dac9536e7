#include "engine/control.h"
#include "core/err.h"
#include "engine/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt STMT_START = {
	"ctl_start",
	"WITH t AS (INSERT INTO threads (key, graph, metadata) "
	"VALUES ($1, $2, coalesce($4::jsonb, '{}')) "
	"ON CONFLICT (key) DO UPDATE SET updated_at = now() RETURNING id, graph) "
	"INSERT INTO runs (thread_id, graph, input) SELECT t.id, t.graph, $3::jsonb FROM t "
	"WHERE t.graph = $2 RETURNING id, thread_id",
	4,
};

static const pg_stmt STMT_START_MANY = {
	"ctl_start_many",
	"WITH k AS (SELECT x->>'key' AS key, x->'input' AS input, n FROM "
	"jsonb_array_elements($2::jsonb) WITH ORDINALITY AS a(x, n)), "
	"t AS (INSERT INTO threads (key, graph) SELECT DISTINCT key, $1 FROM k "
	"ON CONFLICT (key) DO UPDATE SET updated_at = now() RETURNING id, key, graph) "
	"INSERT INTO runs (thread_id, graph, input) SELECT t.id, t.graph, "
	"nullif(k.input, 'null'::jsonb) FROM k JOIN t ON t.key = k.key WHERE t.graph = $1 "
	"ORDER BY k.n RETURNING id",
	2,
};

static const pg_stmt STMT_ENQUEUE = {
	"ctl_enqueue",
	"INSERT INTO runs (thread_id, graph, input) SELECT id, graph, $2::jsonb FROM threads "
	"WHERE id = $1 RETURNING id",
	2,
};

static const pg_stmt STMT_THREAD_BY_KEY = {
	"ctl_thread_by_key",
	"SELECT id FROM threads WHERE key = $1",
	1,
};

static const pg_stmt STMT_THREAD_BY_ID = {
	"ctl_thread_by_id",
	"SELECT id FROM threads WHERE id = $1::bigint",
	1,
};

static const pg_stmt STMT_DELIVER = {
	"ctl_deliver",
	"SELECT event_id, duplicate, run_id FROM orch_deliver($1, $2, $3::jsonb, $4, NULL, 0)",
	4,
};

static const pg_stmt STMT_CANCEL_RUN = {
	"ctl_cancel_run",
	"UPDATE runs SET cancel_requested = true, "
	"status = CASE WHEN status IN ('queued', 'waiting') THEN 'cancelled' ELSE status END, "
	"finished_at = CASE WHEN status IN ('queued', 'waiting') THEN now() END, "
	"updated_at = now() WHERE id = $1 AND status IN ('queued', 'running', 'waiting') RETURNING status",
	1,
};

static const pg_stmt STMT_CANCEL_THREAD = {
	"ctl_cancel_thread",
	"UPDATE runs SET cancel_requested = true, "
	"status = CASE WHEN status IN ('queued', 'waiting') THEN 'cancelled' ELSE status END, "
	"finished_at = CASE WHEN status IN ('queued', 'waiting') THEN now() END, updated_at = now() "
	"WHERE thread_id = $1 AND status IN ('queued', 'running', 'waiting') RETURNING id",
	1,
};

static const pg_stmt STMT_NOTIFY_RUNS = {
	"ctl_notify_runs",
	"SELECT pg_notify('orch_runs', '')",
	0,
};

static const pg_stmt STMT_RETRY = {
	"ctl_retry",
	"UPDATE runs SET status = 'queued', error = NULL, error_node = NULL, "
	"cancel_requested = false, finished_at = NULL, takeovers = 0, ready_at = now(), "
	"updated_at = now() WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING id",
	1,
};

static const pg_stmt STMT_FORK = {
	"ctl_fork",
	"INSERT INTO runs (thread_id, graph, input, start_seq) SELECT t.id, t.graph, $3::jsonb, $2 "
	"FROM threads t WHERE t.id = $1 AND EXISTS (SELECT 1 FROM checkpoints c "
	"WHERE c.thread_id = $1 AND c.seq = $2) RETURNING id",
	3,
};

static const pg_stmt STMT_HISTORY = {
	"ctl_history",
	"SELECT coalesce(json_agg(json_build_object('seq', seq, 'parent', parent_seq, "
	"'run', run_id, 'step', step, 'nodes', nodes, 'next', next, "
	"'snapshot', snapshot IS NOT NULL, 'delta_bytes', octet_length(delta::text), "
	"'at', created_at) ORDER BY seq DESC), '[]')::text FROM (SELECT * FROM checkpoints "
	"WHERE thread_id = $1 ORDER BY seq DESC LIMIT $2) c",
	2,
};

static const pg_stmt STMT_LATEST_SEQ = {
	"ctl_latest_seq",
	"SELECT max(seq) FROM checkpoints WHERE thread_id = $1",
	1,
};

static const pg_stmt STMT_RUN_GET = {
	"ctl_run_get",
	"SELECT row_to_json(x)::text FROM (SELECT r.id, r.thread_id, t.key AS thread_key, "
	"r.graph, r.status, r.step, r.last_seq, r.start_seq, r.claims, r.takeovers, r.error, "
	"r.error_node, r.waiting_on, r.wait_payload, r.cancel_requested, r.lease_owner, "
	"r.created_at, r.started_at, r.updated_at, r.finished_at FROM runs r "
	"JOIN threads t ON t.id = r.thread_id WHERE r.id = $1) x",
	1,
};

static const pg_stmt STMT_THREADS_LIST = {
	"ctl_threads_list",
	"SELECT coalesce(json_agg(x ORDER BY x.updated_at DESC), '[]')::text FROM ("
	"SELECT t.id, t.key, t.graph, t.updated_at, "
	"(SELECT max(seq) FROM checkpoints c WHERE c.thread_id = t.id) AS checkpoints, "
	"(SELECT json_build_object('id', r.id, 'status', r.status, 'step', r.step, "
	"'error', r.error) FROM runs r WHERE r.thread_id = t.id ORDER BY r.id DESC LIMIT 1) "
	"AS last_run FROM threads t ORDER BY t.updated_at DESC LIMIT $1) x",
	1,
};

static const pg_stmt STMT_STATUS = {
	"ctl_status",
	"SELECT json_build_object("
	"'threads', (SELECT count(*) FROM threads), "
	"'runs', (SELECT json_build_object("
	"  'queued', count(*) FILTER (WHERE status = 'queued'), "
	"  'running', count(*) FILTER (WHERE status = 'running'), "
	"  'waiting', count(*) FILTER (WHERE status = 'waiting'), "
	"  'done', count(*) FILTER (WHERE status = 'done'), "
	"  'failed', count(*) FILTER (WHERE status = 'failed'), "
	"  'cancelled', count(*) FILTER (WHERE status = 'cancelled')) FROM runs), "
	"'oldest_waiting', (SELECT json_build_object('run', r.id, 'thread', t.key, "
	"  'waiting_on', r.waiting_on, 'since', r.updated_at, "
	"  'age_s', round(extract(epoch FROM now() - r.updated_at)::numeric, 1)) "
	"  FROM runs r JOIN threads t ON t.id = r.thread_id WHERE r.status = 'waiting' "
	"  ORDER BY r.updated_at LIMIT 1), "
	"'oldest_queued', (SELECT json_build_object('run', r.id, 'thread', t.key, "
	"  'since', r.ready_at, "
	"  'age_s', round(extract(epoch FROM now() - r.ready_at)::numeric, 1)) "
	"  FROM runs r JOIN threads t ON t.id = r.thread_id WHERE r.status = 'queued' "
	"  ORDER BY r.ready_at, r.id LIMIT 1), "
	"'engines', (SELECT coalesce(json_agg(json_build_object('id', e.id, 'host', e.host, "
	"  'pid', e.pid, 'threads', e.threads, 'graphs', e.graphs, 'started_at', e.started_at, "
	"  'heartbeat_age_s', round(extract(epoch FROM now() - e.heartbeat_at)::numeric, 1), "
	"  'alive', e.stopped_at IS NULL AND e.heartbeat_at > now() - make_interval(secs => "
	"  $1::int / 1000.0), "
	"  'runs_held', (SELECT count(*) FROM runs r WHERE r.lease_owner = e.id "
	"  AND r.status = 'running')) ORDER BY e.heartbeat_at DESC), '[]') FROM engines e "
	"  WHERE e.stopped_at IS NULL OR e.stopped_at > now() - interval '1 hour'), "
	"'expired_leases', (SELECT count(*) FROM runs WHERE status = 'running' "
	"  AND lease_until < now()), "
	"'recent_failures', (SELECT coalesce(json_agg(f), '[]') FROM (SELECT r.id AS run, "
	"  t.key AS thread, r.error_node AS node, r.error, r.finished_at AS at FROM runs r "
	"  JOIN threads t ON t.id = r.thread_id WHERE r.status = 'failed' "
	"  ORDER BY r.finished_at DESC NULLS LAST LIMIT 5) f), "
	"'outbox', (SELECT json_build_object("
	"  'pending', count(*) FILTER (WHERE state = 'pending'), "
	"  'dead', count(*) FILTER (WHERE state = 'dead')) FROM outbox)"
	")::text",
	1,
};

static const pg_stmt STMT_PRUNABLE = {
	"ctl_prunable",
	"SELECT t.id FROM threads t WHERE t.updated_at < now() - make_interval(days => $1) "
	"AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.id "
	"AND r.status IN ('queued', 'running', 'waiting')) "
	"AND (SELECT count(*) FROM checkpoints c WHERE c.thread_id = t.id) > $2 ORDER BY t.id",
	2,
};

static const pg_stmt STMT_KEPT = {
	"ctl_kept",
	"SELECT seq, parent_seq, snapshot IS NOT NULL FROM checkpoints WHERE thread_id = $1 "
	"ORDER BY seq DESC LIMIT $2",
	2,
};

static const pg_stmt STMT_SET_SNAPSHOT = {
	"ctl_set_snapshot",
	"UPDATE checkpoints SET snapshot = $3::text::jsonb, chain_len = 0, chain_bytes = 0, "
	"snap_bytes = octet_length($3::text) WHERE thread_id = $1 AND seq = $2",
	3,
};

static const pg_stmt STMT_PRUNE_CK = {
	"ctl_prune_ck",
	"DELETE FROM checkpoints WHERE thread_id = $1 AND seq <> ALL ($2::int[])",
	2,
};

static const pg_stmt STMT_PRUNE_EVENTS = {
	"ctl_prune_events",
	"DELETE FROM events WHERE consumed_at < now() - make_interval(days => $1)",
	1,
};

static const pg_stmt STMT_PRUNE_PENDING = {
	"ctl_prune_pending",
	"DELETE FROM pending_writes p USING runs r WHERE r.id = p.run_id "
	"AND r.status IN ('done', 'cancelled') AND r.finished_at < now() - make_interval(days => $1)",
	1,
};

static char *dump_or_null(const json_t *j)
{
	return j && !json_is_null(j) ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static int parse_id(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v <= 0)
		return -1;
	*out = v;
	return 0;
}

int eng_start(pg_conn *c, const char *key, const char *graph, const json_t *input,
	      const json_t *metadata, int64_t *out_thread, int64_t *out_run)
{
	char *in = dump_or_null(input), *meta = dump_or_null(metadata);
	const char *params[4] = {key, graph, in, meta};
	PGresult *res = NULL;
	int rc;

	rc = pg_exec_stmt(c, &res, &STMT_START, params);
	if (rc == 0 && pg_rows(res) == 0)
		rc = err_set(ERR_CONFLICT, "thread '%s' exists and belongs to another graph", key);
	if (rc == 0) {
		if (out_run)
			*out_run = pg_int(res, 0, 0);
		if (out_thread)
			*out_thread = pg_int(res, 0, 1);
	}
	PQclear(res);
	free(in);
	free(meta);
	return rc;
}

int eng_start_many(pg_conn *c, const char *graph, const json_t *items, json_t **out_runs)
{
	char *text = json_dumps(items, JSON_COMPACT);
	const char *params[2] = {graph, text};
	PGresult *res = NULL;
	int rc;

	if (out_runs)
		*out_runs = NULL;
	if (!text)
		return err_set(ERR_NOMEM, "out of memory");
	rc = pg_exec_stmt(c, &res, &STMT_START_MANY, params);
	if (rc == 0 && (size_t)pg_rows(res) != json_array_size(items))
		rc = err_set(ERR_CONFLICT, "%zu of %zu threads belong to another graph than '%s'",
			     json_array_size(items) - (size_t)pg_rows(res), json_array_size(items),
			     graph);
	if (rc == 0 && out_runs) {
		json_t *ids = json_array();
		for (int i = 0; ids && i < pg_rows(res); i++)
			json_array_append_new(ids, json_integer(pg_int(res, i, 0)));
		*out_runs = ids;
	}
	PQclear(res);
	free(text);
	return rc;
}

int eng_enqueue(pg_conn *c, int64_t thread_id, const json_t *input, int64_t *out_run)
{
	char tid[24], *in = dump_or_null(input);
	const char *params[2] = {tid, in};
	PGresult *res = NULL;
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &res, &STMT_ENQUEUE, params);
	if (rc == 0 && pg_rows(res) == 0)
		rc = err_set(ERR_NOTFOUND, "no thread %lld", (long long)thread_id);
	if (rc == 0 && out_run)
		*out_run = pg_int(res, 0, 0);
	PQclear(res);
	free(in);
	return rc;
}

int eng_thread_find(pg_conn *c, const char *id_or_key, int64_t *out_id)
{
	const char *params[1] = {id_or_key};
	PGresult *res = NULL;
	int64_t id;
	int rc;

	rc = pg_exec_stmt(c, &res, &STMT_THREAD_BY_KEY, params);
	if (rc == 0 && pg_rows(res) == 0 && parse_id(id_or_key, &id) == 0) {
		PQclear(res);
		res = NULL;
		rc = pg_exec_stmt(c, &res, &STMT_THREAD_BY_ID, params);
	}
	if (rc == 0 && pg_rows(res) == 0)
		rc = err_set(ERR_NOTFOUND, "no thread with id or key '%s' ('orchestrator threads' lists them)",
			     id_or_key);
	if (rc == 0)
		*out_id = pg_int(res, 0, 0);
	PQclear(res);
	return rc;
}

int eng_deliver(pg_conn *c, int64_t thread_id, const char *key, const json_t *value,
		const char *idem, int64_t *out_run, int *out_dup)
{
	char tid[24], *val = json_dumps(value ? value : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
	const char *params[4] = {tid, key, val, idem};
	PGresult *res = NULL;
	int rc;

	if (!val)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &res, &STMT_DELIVER, params);
	if (rc < 0 && pg_last_sqlstate_is(STORE_NO_THREAD))
		rc = err_set(ERR_NOTFOUND, "no thread %lld", (long long)thread_id);
	if (rc == 0) {
		if (out_dup)
			*out_dup = strcmp(pg_val(res, 0, 1), "t") == 0;
		if (out_run)
			*out_run = pg_int(res, 0, 2);
	}
	PQclear(res);
	free(val);
	return rc;
}

/* Runs `st`, whose one parameter is the row id `id`, into *res (may be
 * NULL). */
static int exec_id(pg_conn *c, const pg_stmt *st, int64_t id, PGresult **res)
{
	char sid[24];
	const char *params[1] = {sid};

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	return pg_exec_stmt(c, res, st, params);
}

int eng_cancel_run(pg_conn *c, int64_t run_id, char *out_state)
{
	PGresult *res = NULL;
	int rc = exec_id(c, &STMT_CANCEL_RUN, run_id, &res);

	if (rc == 0 && pg_rows(res) == 0)
		rc = err_set(ERR_NOTFOUND, "run %lld is not queued, running or waiting",
			     (long long)run_id);
	if (rc == 0 && out_state)
		snprintf(out_state, 16, "%s", pg_val(res, 0, 0));
	if (rc == 0 && strcmp(pg_val(res, 0, 0), "cancelled") == 0)
		rc = pg_exec_stmt(c, NULL, &STMT_NOTIFY_RUNS, NULL);
	PQclear(res);
	return rc;
}

int eng_cancel_thread(pg_conn *c, int64_t thread_id, int *out_n)
{
	PGresult *res = NULL;
	int rc = exec_id(c, &STMT_CANCEL_THREAD, thread_id, &res);

	if (rc == 0 && out_n)
		*out_n = pg_rows(res);
	if (rc == 0 && pg_rows(res) > 0)
		rc = pg_exec_stmt(c, NULL, &STMT_NOTIFY_RUNS, NULL);
	PQclear(res);
	return rc;
}

int eng_retry_run(pg_conn *c, int64_t run_id)
{
	PGresult *res = NULL;
	int rc = exec_id(c, &STMT_RETRY, run_id, &res);

	if (rc == 0 && pg_rows(res) == 0)
		rc = err_set(ERR_NOTFOUND, "run %lld has not failed or been cancelled",
			     (long long)run_id);
	PQclear(res);
	return rc;
}

int eng_fork(pg_conn *c, int64_t thread_id, int seq, const json_t *update, int64_t *out_run)
{
	char tid[24], sq[16], *upd = dump_or_null(update);
	const char *params[3] = {tid, sq, upd};
	PGresult *res = NULL;
	int rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	snprintf(sq, sizeof(sq), "%d", seq);
	rc = pg_exec_stmt(c, &res, &STMT_FORK, params);
	if (rc == 0 && pg_rows(res) == 0)
		rc = err_set(ERR_NOTFOUND, "thread %lld has no checkpoint %d", (long long)thread_id,
			     seq);
	if (rc == 0 && out_run)
		*out_run = pg_int(res, 0, 0);
	PQclear(res);
	free(upd);
	return rc;
}

/* Runs a statement returning one JSON text and parses it into *out. */
static int json_query(pg_conn *c, const pg_stmt *st, const char *const *params, json_t **out)
{
	PGresult *res = NULL;
	json_error_t jerr;
	int rc = pg_exec_stmt(c, &res, st, params);

	*out = NULL;
	if (rc == 0) {
		if (pg_rows(res) == 0 || pg_isnull(res, 0, 0)) {
			rc = err_set(ERR_NOTFOUND, "not found");
		} else {
			*out = json_loads(pg_val(res, 0, 0), JSON_DECODE_ANY, &jerr);
			if (!*out)
				rc = err_set(ERR_PARSE, "unreadable JSON from the database: %s",
					     jerr.text);
		}
	}
	PQclear(res);
	return rc;
}

int eng_history(pg_conn *c, int64_t thread_id, int limit, json_t **out)
{
	char tid[24], lim[16];
	const char *params[2] = {tid, lim};

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 100);
	return json_query(c, &STMT_HISTORY, params, out);
}

int eng_state_at(pg_conn *c, int64_t thread_id, int seq, json_t **out_state, json_t **out_next,
		 int *out_seq)
{
	PGresult *res = NULL;
	int rc;

	*out_state = NULL;
	if (out_next)
		*out_next = NULL;
	if (seq <= 0) {
		rc = exec_id(c, &STMT_LATEST_SEQ, thread_id, &res);
		if (rc < 0)
			return rc;
		if (pg_isnull(res, 0, 0)) {
			PQclear(res);
			return err_set(ERR_NOTFOUND, "thread %lld has no checkpoint yet",
				       (long long)thread_id);
		}
		seq = (int)pg_int(res, 0, 0);
		PQclear(res);
	}
	rc = store_load_state(c, thread_id, seq, out_state, out_next, NULL);
	if (rc == 0 && out_seq)
		*out_seq = seq;
	return rc;
}

int eng_run_get(pg_conn *c, int64_t run_id, json_t **out)
{
	char id[24];
	const char *params[1] = {id};
	int rc;

	snprintf(id, sizeof(id), "%lld", (long long)run_id);
	rc = json_query(c, &STMT_RUN_GET, params, out);
	if (rc == ERR_NOTFOUND)
		rc = err_set(ERR_NOTFOUND, "no run %lld", (long long)run_id);
	return rc;
}

int eng_threads_list(pg_conn *c, int limit, json_t **out)
{
	char lim[16];
	const char *params[1] = {lim};

	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 50);
	return json_query(c, &STMT_THREADS_LIST, params, out);
}

int eng_status(pg_conn *c, int64_t lease_ms, json_t **out)
{
	char lease[24];
	const char *params[1] = {lease};

	snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
	return json_query(c, &STMT_STATUS, params, out);
}

/* Prunes one thread inside the caller's transaction. */
static int prune_thread(pg_conn *c, int64_t thread_id, int keep, eng_prune_stats *st)
{
	char tid[24], lim[16];
	const char *params[2] = {tid, lim};
	PGresult *kept = NULL, *del = NULL;
	buf seqs;
	int rc, n;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	snprintf(lim, sizeof(lim), "%d", keep);
	buf_init(&seqs, 0);
	rc = pg_exec_stmt(c, &kept, &STMT_KEPT, params);
	if (rc < 0)
		goto done;
	n = pg_rows(kept);
	buf_putc(&seqs, '{');
	for (int i = 0; i < n; i++)
		buf_printf(&seqs, "%s%s", i ? "," : "", pg_val(kept, i, 0));
	buf_putc(&seqs, '}');
	/* a kept checkpoint whose parent goes away must carry the whole state */
	for (int i = 0; i < n; i++) {
		int parent_kept = 0;
		json_t *state = NULL;
		char *text;
		const char *sp[3] = {tid, pg_val(kept, i, 0), NULL};

		if (pg_isnull(kept, i, 1) || strcmp(pg_val(kept, i, 2), "t") == 0)
			continue;
		for (int k = 0; k < n; k++)
			if (strcmp(pg_val(kept, k, 0), pg_val(kept, i, 1)) == 0)
				parent_kept = 1;
		if (parent_kept)
			continue;
		rc = store_load_state(c, thread_id, (int)pg_int(kept, i, 0), &state, NULL, NULL);
		if (rc < 0)
			goto done;
		text = json_dumps(state, JSON_COMPACT);
		json_decref(state);
		if (!text) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto done;
		}
		sp[2] = text;
		rc = pg_exec_stmt(c, NULL, &STMT_SET_SNAPSHOT, sp);
		free(text);
		if (rc < 0)
			goto done;
		st->snapshots++;
	}
	{
		const char *dp[2] = {tid, buf_cstr(&seqs)};
		rc = pg_exec_stmt(c, &del, &STMT_PRUNE_CK, dp);
		if (rc == 0) {
			st->checkpoints += pg_affected(del);
			st->threads++;
		}
	}
done:
	PQclear(kept);
	PQclear(del);
	buf_free(&seqs);
	return rc;
}

int eng_prune(pg_conn *c, int days, int keep, eng_prune_stats *out)
{
	char d[16], k[16];
	const char *params[2] = {d, k};
	PGresult *threads = NULL, *res = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (keep < 1)
		keep = 1;
	snprintf(d, sizeof(d), "%d", days);
	snprintf(k, sizeof(k), "%d", keep);
	rc = pg_exec_stmt(c, &threads, &STMT_PRUNABLE, params);
	if (rc < 0)
		return rc;
	for (int i = 0; i < pg_rows(threads); i++) {
		rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
		if (rc == 0)
			rc = prune_thread(c, pg_int(threads, i, 0), keep, out);
		if (rc == 0)
			rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
		if (rc < 0) {
			pg_exec(c, NULL, "ROLLBACK", 0, NULL);
			goto done;
		}
	}
	rc = pg_exec_stmt(c, &res, &STMT_PRUNE_EVENTS, params);
	if (rc == 0)
		out->events = pg_affected(res);
	if (rc == 0)
		rc = pg_exec_stmt(c, NULL, &STMT_PRUNE_PENDING, params);
done:
	PQclear(threads);
	PQclear(res);
	return rc;
}
