#include "engine/outbox.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "core/util.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const pg_stmt STMT_CLAIM = {
	"ob_claim",
	"UPDATE outbox o SET claimed_by = $1, "
	"claim_until = now() + make_interval(secs => $4::int / 1000.0) "
	"WHERE o.id IN (SELECT c.id FROM outbox c WHERE c.kind = ANY ($2::text[]) "
	"AND c.state = 'pending' AND c.next_attempt_at <= now() "
	"AND (c.claim_until IS NULL OR c.claim_until < now()) "
	"AND (c.dest IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p WHERE p.dest = c.dest "
	"AND p.kind = ANY ($2::text[]) AND p.state = 'pending' AND p.id < c.id)) "
	"ORDER BY c.id LIMIT $3 FOR UPDATE SKIP LOCKED) "
	"RETURNING o.id, o.thread_id, o.run_id, o.step, o.kind, o.dest, o.payload::text, o.attempts",
	4,
};

static const pg_stmt STMT_DONE = {
	"ob_done",
	"UPDATE outbox SET state = 'sent', sent_at = now(), result = $2::jsonb, "
	"claim_until = NULL WHERE id = $1",
	2,
};

static const pg_stmt STMT_RETRY = {
	"ob_retry",
	"UPDATE outbox SET attempts = attempts + 1, last_error = $2, claim_until = NULL, "
	"next_attempt_at = now() + make_interval(secs => $3::bigint / 1000.0), "
	"state = CASE WHEN attempts + 1 >= $4 THEN 'dead' ELSE 'pending' END "
	"WHERE id = $1 RETURNING state",
	4,
};

static const pg_stmt STMT_DEFER = {
	"ob_defer",
	"UPDATE outbox SET claim_until = NULL, "
	"next_attempt_at = now() + make_interval(secs => $2::bigint / 1000.0) WHERE id = $1",
	2,
};

static const pg_stmt STMT_DEAD = {
	"ob_dead",
	"UPDATE outbox SET state = 'dead', last_error = $2, claim_until = NULL WHERE id = $1",
	2,
};

void eng_outbox_rows_free(eng_outbox_row *rows, int n)
{
	if (!rows)
		return;
	for (int i = 0; i < n; i++) {
		free(rows[i].dest);
		json_decref(rows[i].payload);
	}
	free(rows);
}

static const pg_stmt STMT_CLAIM_DEST = {
	"ob_claim_dest",
	"UPDATE outbox o SET claimed_by = $2, "
	"claim_until = now() + make_interval(secs => $5::int / 1000.0) "
	"WHERE o.id IN (SELECT c.id FROM outbox c WHERE c.dest = $1 AND starts_with(c.kind, $3) "
	"AND c.state = 'pending' AND c.next_attempt_at <= now() AND (c.claim_until IS NULL OR "
	"c.claim_until < now()) ORDER BY c.id LIMIT $4 FOR UPDATE SKIP LOCKED) "
	"RETURNING o.id, o.thread_id, o.run_id, o.step, o.kind, o.dest, o.payload::text, o.attempts",
	5,
};

static const pg_stmt STMT_ADD = {
	"ob_add",
	"INSERT INTO outbox (thread_id, kind, dest, payload) VALUES ($1::bigint, $2, $3, $4::jsonb)",
	4,
};

/* The claimed rows of `res` (the claim statements' columns), oldest first,
 * into *out (owned) and *n; takes res. */
static int rows_of(PGresult *res, eng_outbox_row **out, int *n)
{
	eng_outbox_row *rows = NULL;
	int count = pg_rows(res);

	if (count > 0) {
		rows = calloc((size_t)count, sizeof(*rows));
		if (!rows) {
			PQclear(res);
			return err_set(ERR_NOMEM, "out of memory");
		}
	}
	for (int i = 0; i < count; i++) {
		json_error_t jerr;

		rows[i].id = pg_int(res, i, 0);
		rows[i].thread_id = pg_int(res, i, 1);
		rows[i].run_id = pg_int(res, i, 2);
		rows[i].step = (int)pg_int(res, i, 3);
		snprintf(rows[i].kind, sizeof(rows[i].kind), "%s", pg_val(res, i, 4));
		rows[i].dest = pg_isnull(res, i, 5) ? NULL : strdup(pg_val(res, i, 5));
		rows[i].payload = json_loads(pg_val(res, i, 6), JSON_DECODE_ANY, &jerr);
		rows[i].attempts = (int)pg_int(res, i, 7);
	}
	/* UPDATE ... RETURNING gives no order */
	for (int i = 1; i < count; i++)
		for (int j = i; j > 0 && rows[j - 1].id > rows[j].id; j--) {
			eng_outbox_row t = rows[j];
			rows[j] = rows[j - 1];
			rows[j - 1] = t;
		}
	PQclear(res);
	*out = rows;
	*n = count;
	return 0;
}

int eng_outbox_claim(pg_conn *c, const char *relay_id, const char *kinds, int limit,
		     int64_t claim_ms, eng_outbox_row **out, int *n)
{
	char lim[16], claim[24];
	const char *params[4] = {relay_id, kinds, lim, claim};
	PGresult *res = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 50);
	snprintf(claim, sizeof(claim), "%lld", (long long)claim_ms);
	rc = pg_exec_stmt(c, &res, &STMT_CLAIM, params);
	if (rc < 0)
		return rc;
	return rows_of(res, out, n);
}

int eng_outbox_claim_dest(pg_conn *c, const char *claimer, const char *dest,
			  const char *kind_prefix, int limit, int64_t claim_ms,
			  eng_outbox_row **out, int *n)
{
	char lim[16], claim[24];
	const char *params[5] = {dest, claimer, kind_prefix, lim, claim};
	PGresult *res = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 50);
	snprintf(claim, sizeof(claim), "%lld", (long long)claim_ms);
	rc = pg_exec_stmt(c, &res, &STMT_CLAIM_DEST, params);
	if (rc < 0)
		return rc;
	return rows_of(res, out, n);
}

int eng_outbox_add(pg_conn *c, int64_t thread_id, const char *kind, const char *dest,
		   const json_t *payload)
{
	char tid[24], *p = json_dumps(payload, JSON_COMPACT);
	const char *params[4] = {thread_id > 0 ? tid : NULL, kind, dest, p};
	int rc;

	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, NULL, &STMT_ADD, params);
	free(p);
	return rc;
}

int eng_outbox_done(pg_conn *c, int64_t id, const json_t *result)
{
	char sid[24];
	char *res_s = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	const char *params[2] = {sid, res_s};
	int rc;

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	rc = pg_exec_stmt(c, NULL, &STMT_DONE, params);
	free(res_s);
	return rc;
}

int eng_outbox_retry(pg_conn *c, int64_t id, const char *error, int64_t delay_ms,
		     int max_attempts, int *out_dead)
{
	char sid[24], delay[24], max[16];
	const char *params[4] = {sid, error, delay, max};
	PGresult *res = NULL;
	int rc;

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	snprintf(delay, sizeof(delay), "%lld", (long long)delay_ms);
	snprintf(max, sizeof(max), "%d", max_attempts);
	rc = pg_exec_stmt(c, &res, &STMT_RETRY, params);
	if (rc == 0 && out_dead)
		*out_dead = strcmp(pg_val(res, 0, 0), "dead") == 0;
	PQclear(res);
	return rc;
}

int eng_outbox_defer(pg_conn *c, int64_t id, int64_t delay_ms)
{
	char sid[24], delay[24];
	const char *params[2] = {sid, delay};

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	snprintf(delay, sizeof(delay), "%lld", (long long)delay_ms);
	return pg_exec_stmt(c, NULL, &STMT_DEFER, params);
}

int eng_outbox_dead(pg_conn *c, int64_t id, const char *error)
{
	char sid[24];
	const char *params[2] = {sid, error};

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	return pg_exec_stmt(c, NULL, &STMT_DEAD, params);
}

/* --- relay thread --- */

struct eng_relay {
	pg_pool *pool;
	eng_relay_options opt;
	char name[64];
	char part[80];          /* its name in the health registry: "relay.<name>" */
	char kinds[512];
	char id[160];
	eng_relay_fn fn;
	void *udata;
	pthread_t thread;
	int started;
	atomic_int stopping;
};

int eng_relay_new(eng_relay **out, pg_pool *pool, const eng_relay_options *opt,
		  eng_relay_fn fn, void *udata)
{
	eng_relay *r;
	char host[64], rnd[9];

	*out = NULL;
	if (!opt || !opt->kinds || !fn)
		return err_set(ERR_INVALID, "a relay needs kinds and a handler");
	r = calloc(1, sizeof(*r));
	if (!r)
		return err_set(ERR_NOMEM, "out of memory");
	r->pool = pool;
	r->opt = *opt;
	r->fn = fn;
	r->udata = udata;
	snprintf(r->name, sizeof(r->name), "%s", opt->name ? opt->name : "relay");
	snprintf(r->part, sizeof(r->part), "relay.%s", r->name);
	snprintf(r->kinds, sizeof(r->kinds), "%s", opt->kinds);
	r->opt.name = r->name;
	r->opt.kinds = r->kinds;
	if (r->opt.batch <= 0)
		r->opt.batch = 50;
	if (r->opt.claim_ms <= 0)
		r->opt.claim_ms = 60000;
	if (r->opt.max_attempts <= 0)
		r->opt.max_attempts = 10;
	if (r->opt.backoff_ms <= 0)
		r->opt.backoff_ms = 1000;
	if (r->opt.max_backoff_ms <= 0)
		r->opt.max_backoff_ms = 300000;
	if (r->opt.poll_ms <= 0)
		r->opt.poll_ms = 1000;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	util_rand_hex(rnd, 4);
	snprintf(r->id, sizeof(r->id), "%s-%s-%d-%s", r->name, host, (int)getpid(), rnd);
	*out = r;
	return 0;
}

static int is_permanent(int rc)
{
	return rc == ERR_DENIED || rc == ERR_INVALID || rc == ERR_AUTH || rc == ERR_TOOBIG;
}

int eng_relay_run_once(eng_relay *r, int *out_n)
{
	eng_outbox_row *rows = NULL;
	pg_conn *c = NULL;
	int n = 0, rc;

	if (out_n)
		*out_n = 0;
	rc = pg_pool_acquire(r->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = eng_outbox_claim(c, r->id, r->kinds, r->opt.batch, r->opt.claim_ms, &rows, &n);
	pg_pool_release(r->pool, c);
	if (rc < 0)
		return rc;
	for (int i = 0; i < n && !atomic_load(&r->stopping); i++) {
		json_t *result = NULL;
		int64_t retry_after = 0;
		int drc;

		err_clear();
		drc = r->fn(&rows[i], &result, &retry_after, r->udata);
		rc = pg_pool_acquire(r->pool, 10000, &c);
		if (rc < 0) {
			json_decref(result);
			break; /* the claim expires and the rows go out again */
		}
		if (drc == 0) {
			rc = eng_outbox_done(c, rows[i].id, result);
		} else if (drc == ERR_BUSY) {
			rc = eng_outbox_defer(c, rows[i].id, retry_after > 0 ? retry_after : 100);
		} else if (is_permanent(drc)) {
			log_warn(r->name, "outbox row %lld (%s) refused for good: %s",
				 (long long)rows[i].id, rows[i].kind, err_last());
			rc = eng_outbox_dead(c, rows[i].id, err_last());
		} else {
			int dead = 0;
			int64_t delay = retry_after > 0 ? retry_after
							: util_backoff_ms(rows[i].attempts,
									  r->opt.backoff_ms,
									  r->opt.max_backoff_ms);
			rc = eng_outbox_retry(c, rows[i].id, err_last(), delay, r->opt.max_attempts,
					      &dead);
			log_warn(r->name, "outbox row %lld (%s) failed (attempt %d): %s%s",
				 (long long)rows[i].id, rows[i].kind, rows[i].attempts + 1, err_last(),
				 dead ? "; giving up" : "");
		}
		pg_pool_release(r->pool, c);
		json_decref(result);
		if (rc < 0)
			break;
	}
	eng_outbox_rows_free(rows, n);
	if (out_n)
		*out_n = n;
	return rc;
}

static void *relay_main(void *arg)
{
	eng_relay *r = arg;
	pg_conn *listen = NULL;
	int failures = 0;

	log_info(r->name, "relay %s started", r->id);
	while (!atomic_load(&r->stopping)) {
		struct pollfd pfd;
		int n = 0, rc;

		if (!listen || pg_conn_broken(listen)) {
			pg_conn_close(listen);
			listen = NULL;
			if (pg_conn_open(&listen, pg_pool_url(r->pool)) < 0 ||
			    pg_exec(listen, NULL, "LISTEN orch_outbox", 0, NULL) < 0) {
				pg_conn_close(listen);
				listen = NULL;
			}
		}
		rc = eng_relay_run_once(r, &n);
		if (rc < 0) {
			int64_t d = util_backoff_ms(failures++, 100, 5000);
			health_report(r->part, HEALTH_DEGRADED,
				      "cannot claim or record outbox rows (%d failures in a row, retrying "
				      "in %lld ms): %s",
				      failures, (long long)d, err_last());
			util_sleep_ms(d);
			continue;
		}
		if (failures > 0 || !listen)
			health_report(r->part, listen ? HEALTH_OK : HEALTH_DEGRADED,
				      listen ? "delivering" : "delivering, but cannot LISTEN for new "
							      "rows: polling every %lld ms",
				      (long long)r->opt.poll_ms);
		failures = 0;
		if (n >= r->opt.batch)
			continue;
		if (!listen) {
			util_sleep_ms(r->opt.poll_ms);
			continue;
		}
		/* sleep until a notification, the next poll, or stop */
		for (int64_t until = util_mono_ms() + r->opt.poll_ms;
		     !atomic_load(&r->stopping) && util_mono_ms() < until;) {
			PGnotify *note;
			int got = 0;

			pfd.fd = PQsocket(pg_conn_raw(listen));
			pfd.events = POLLIN;
			pfd.revents = 0;
			if (poll(&pfd, 1, 250) <= 0)
				continue;
			if (!PQconsumeInput(pg_conn_raw(listen)))
				break;
			for (note = PQnotifies(pg_conn_raw(listen)); note;
			     note = PQnotifies(pg_conn_raw(listen))) {
				PQfreemem(note);
				got = 1;
			}
			if (got)
				break;
		}
	}
	pg_conn_close(listen);
	log_info(r->name, "relay %s stopped", r->id);
	return NULL;
}

int eng_relay_start(eng_relay *r)
{
	if (r->started)
		return 0;
	/* a relay stopped before starts again: the stop request is spent */
	atomic_store(&r->stopping, 0);
	health_report(r->part, HEALTH_OK, "delivering");
	if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
		health_report(r->part, HEALTH_DOWN, "cannot start its thread");
		return err_set(ERR_IO, "cannot start the %s relay thread", r->name);
	}
	r->started = 1;
	return 0;
}

void eng_relay_stop(eng_relay *r)
{
	if (!r || !r->started)
		return;
	atomic_store(&r->stopping, 1);
	pthread_join(r->thread, NULL);
	r->started = 0;
	health_forget(r->part); /* stopped on purpose: not a fault */
}

int eng_relay_running(const eng_relay *r)
{
	return r && r->started && !atomic_load(&((eng_relay *)r)->stopping);
}

void eng_relay_free(eng_relay *r)
{
	if (!r)
		return;
	eng_relay_stop(r);
	free(r);
}

static const pg_stmt STMT_DONE_PENDING = {
	"ob_done_pending",
	"UPDATE outbox SET state = 'sent', sent_at = now(), result = $2::jsonb, claimed_by = NULL "
	"WHERE id = $1 AND state = 'pending' AND kind = $3",
	3,
};

int eng_outbox_done_pending(pg_conn *c, int64_t id, const char *kind, const json_t *result)
{
	char sid[24];
	char *res_s = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	const char *params[3] = {sid, res_s, kind};
	int rc;

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	rc = pg_exec_stmt(c, NULL, &STMT_DONE_PENDING, params);
	free(res_s);
	return rc;
}

static const pg_stmt STMT_PENDING_OF = {
	"ob_pending_of",
	"SELECT o.id, o.thread_id, o.run_id, o.step, o.kind, o.dest, o.payload::text, o.attempts "
	"FROM outbox o WHERE o.thread_id = $1::bigint AND right(o.kind, char_length($2)) = $2 AND "
	"o.state = 'pending' ORDER BY o.id",
	2,
};

int eng_outbox_pending_of(pg_conn *c, int64_t thread_id, const char *kind_suffix,
			  eng_outbox_row **out, int *n)
{
	char tid[24];
	const char *params[2] = {tid, kind_suffix};
	PGresult *res = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	snprintf(tid, sizeof(tid), "%lld", (long long)thread_id);
	rc = pg_exec_stmt(c, &res, &STMT_PENDING_OF, params);
	if (rc < 0)
		return rc;
	return rows_of(res, out, n);
}
