#include "nodes/report.h"
#include "core/err.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/report.h"
#include "llm/ledger.h"
#include "nodes/factory.h"
#include "nodes/model.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic(const nd_ops *) g_ops;

void nd_set_ops(const nd_ops *ops)
{
	atomic_store(&g_ops, ops);
}

const nd_ops *nd_ops_need(void)
{
	const nd_ops *ops = atomic_load(&g_ops);

	if (!ops || !ops->open_questions || !ops->workers || !ops->cancel_workers) {
		err_set(ERR_INTERNAL, "the factory's questions and workers are not wired in this "
				      "program (nd_set_ops was not called at start)");
		return NULL;
	}
	return ops;
}

/* The kind suffix of the outbox rows that ask a person (bot/relay.h). */
#define APPROVAL_KIND ".approval"

/* What the reports read once for the threads of a graph: the engine's
 * threads (eng_report_graph_threads) and the bot's open questions and the
 * pending question rows it has made a question of. */
typedef struct facts {
	const nd_ops *ops; /* NULL until there is a thread to report */
	json_t *threads, *open, *linked;
} facts;

static void facts_clear(facts *f)
{
	json_decref(f->threads);
	json_decref(f->open);
	json_decref(f->linked);
	memset(f, 0, sizeof(*f));
}

static int facts_load(facts *f, pg_conn *c, const char *graph, int64_t thread)
{
	int64_t *ids = NULL, *oids = NULL;
	size_t n = 0, no = 0, i, j;
	json_t *t, *row;
	int rc = eng_report_graph_threads(c, graph, thread, APPROVAL_KIND, &f->threads);

	if (rc < 0 || json_array_size(f->threads) == 0)
		return rc;
	f->ops = nd_ops_need();
	if (!f->ops)
		return ERR_INTERNAL;
	json_array_foreach(f->threads, i, t)
		no += json_array_size(json_object_get(t, "pending"));
	ids = calloc(json_array_size(f->threads) + 1, sizeof(*ids));
	oids = calloc(no + 1, sizeof(*oids));
	if (!ids || !oids)
		rc = err_set(ERR_NOMEM, "out of memory");
	no = 0;
	json_array_foreach(rc == 0 ? f->threads : NULL, i, t) {
		ids[n++] = json_integer_value(json_object_get(t, "id"));
		json_array_foreach(json_object_get(t, "pending"), j, row)
			oids[no++] = json_integer_value(json_object_get(row, "id"));
	}
	if (rc == 0)
		rc = f->ops->open_questions(c, ids, n, oids, no, &f->open, &f->linked);
	free(ids);
	free(oids);
	return rc;
}

/* True when pending row `id` has been made a question already. */
static int is_linked(const facts *f, json_int_t id)
{
	size_t i;
	json_t *v;

	json_array_foreach(f->linked, i, v)
		if (json_integer_value(v) == id)
			return 1;
	return 0;
}

/* True when the run waits for its person: keys has "input" and not
 * "worker". */
static int waits_input(const json_t *keys)
{
	int input = 0, worker = 0;
	size_t i;
	json_t *k;

	json_array_foreach(keys, i, k) {
		input |= strcmp(json_string_value(k) ? json_string_value(k) : "", "input") == 0;
		worker |= strcmp(json_string_value(k) ? json_string_value(k) : "", "worker") == 0;
	}
	return input && !worker;
}

/* Whether thread t waits for an answer from its person: an open question,
 * one still being sent, or its run waiting for the person's reply and no
 * worker. */
static int thread_waits(const facts *f, const json_t *t)
{
	json_int_t id = json_integer_value(json_object_get(t, "id"));
	size_t i;
	json_t *v;

	json_array_foreach(f->open, i, v)
		if (json_integer_value(json_object_get(v, "thread_id")) == id)
			return 1;
	json_array_foreach(json_object_get(t, "pending"), i, v)
		if (!is_linked(f, json_integer_value(json_object_get(v, "id"))))
			return 1;
	return waits_input(json_object_get(t, "waiting_on"));
}

/* Seconds since the epoch of "YYYY-MM-DD HH:MM:SSZ" (UTC); 0 when it is
 * not one. */
static int64_t utc_seconds(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!s || sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* A running worker as a report lists it, from the spawner's row w (owned;
 * NULL when out of memory). */
static json_t *worker_item(const json_t *w, int64_t now_ms)
{
	const json_t *pr = json_object_get(w, "progress");
	const json_t *at = json_object_get(pr, "at");
	const char *task = json_string_value(json_object_get(w, "task"));
	const char *phase = json_string_value(json_object_get(pr, "phase"));
	const char *action = json_string_value(json_object_get(pr, "action"));
	int64_t at_ms = json_is_string(at) ? strtoll(json_string_value(at), NULL, 10)
					   : (int64_t)json_integer_value(at);
	int64_t started = utc_seconds(json_string_value(json_object_get(w, "started")));

	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I}", "id",
			 json_string_value(json_object_get(w, "id")) ? json_string_value(
									       json_object_get(w, "id"))
								     : "",
			 "task", task ? task : "", "phase", phase ? phase : "", "step",
			 (json_int_t)json_integer_value(json_object_get(pr, "step")), "action",
			 action ? action : "", "progress_age_ms",
			 (json_int_t)(at_ms ? now_ms - at_ms : -1), "running_ms",
			 (json_int_t)(started ? now_ms - started * 1000 : 0));
}

/* Sets "workers" on r (how many of its workers run) and, when some do,
 * "worker_list": what each does (the spawner's progress: phase, the
 * agent's step and last command, how long ago; -1 when none was reported
 * yet) and how long it has run. */
static int add_workers(json_t *r, pg_conn *c, const nd_ops *ops)
{
	json_t *all = NULL, *list = json_array(), *w;
	int64_t now = util_wall_ms();
	size_t i;
	int rc = ops->workers(c, json_integer_value(json_object_get(r, "thread")), &all);

	json_array_foreach(rc == 0 ? all : NULL, i, w) {
		const char *st = json_string_value(json_object_get(w, "state"));
		json_t *item;
		if (!st || strcmp(st, "running") != 0)
			continue;
		item = worker_item(w, now);
		if (!item || json_array_append_new(list, item) < 0)
			rc = err_set(ERR_NOMEM, "out of memory");
	}
	json_decref(all);
	json_object_set_new(r, "workers", json_integer((json_int_t)json_array_size(list)));
	if (rc == 0 && json_array_size(list) > 0)
		json_object_set_new(r, "worker_list", list);
	else
		json_decref(list);
	return rc;
}

/* The report of thread t, with what the project spent (the ledger's) and
 * whether it waits (owned; NULL on ENOMEM). */
static json_t *row_report(pg_conn *c, const json_t *t, const llm_cost *cost, int waits)
{
	json_int_t id = json_integer_value(json_object_get(t, "id"));
	json_t *state = NULL, *sum;
	const char *stage;

	if (eng_state_at(c, id, 0, &state, NULL, NULL) < 0) {
		err_clear(); /* no checkpoint yet: an empty state */
		state = json_object();
	}
	sum = nd_project_summary(state);
	json_decref(state);
	if (!sum)
		return NULL;
	stage = json_string_value(json_object_get(sum, "stage"));
	/* cancelled while it waited: its next run would say so */
	if (json_is_true(json_object_get(t, "cancel_pending")) &&
	    !nd_stage_closed((nd_stage)nd_word_find(ND_STAGES, ND_STAGE_COUNT, stage)))
		json_object_set_new(sum, "stage", json_string(ND_STAGES[ND_STAGE_CANCELLED].name));
	json_object_set_new(sum, "thread", json_integer(id));
	json_object_set(sum, "key", json_object_get(t, "key"));
	json_object_set(sum, "title", json_object_get(t, "title"));
	json_object_set(sum, "run", json_object_get(t, "run"));
	json_object_set_new(sum, "tokens_in", json_integer(cost->tokens_in));
	json_object_set_new(sum, "tokens_out", json_integer(cost->tokens_out));
	json_object_set_new(sum, "cost_usd", json_real(cost->cost_usd));
	json_object_set(sum, "updated", json_object_get(t, "updated"));
	json_object_set_new(sum, "waiting_for_answer", json_boolean(waits));
	return sum;
}

/* The threads of f in report order into *out (owned, borrowed items):
 * every one that waits for an answer first, then the others, most recently
 * updated first, up to `limit` in all (< 0: all); waits[i] for out[i]. */
static int pick(const facts *f, int limit, json_t **out, int **waits)
{
	size_t n = json_array_size(f->threads), i, k = 0;
	int *w = calloc(n + 1, sizeof(*w)), *wo = calloc(n + 1, sizeof(*wo));
	json_t *list = json_array(), *t;

	*out = NULL;
	*waits = NULL;
	if (!w || !wo || !list) {
		free(w);
		free(wo);
		json_decref(list);
		return err_set(ERR_NOMEM, "out of memory");
	}
	json_array_foreach(f->threads, i, t)
		w[i] = thread_waits(f, t);
	for (int pass = 1; pass >= 0; pass--)
		json_array_foreach(f->threads, i, t) {
			if (w[i] != pass)
				continue;
			if (!pass && limit >= 0 && k >= (size_t)limit)
				break;
			json_array_append(list, t);
			wo[k++] = pass;
		}
	free(w);
	*out = list;
	*waits = wo;
	return 0;
}

/* The reports of graph's projects (thread 0: all; at most `limit` rows
 * besides those waiting for an answer, < 0: all), into *out (owned);
 * *total (may be NULL) the number of projects. The facts read go into *f
 * (cleared by the caller). */
static int reports(json_t **out, pg_conn *c, const char *graph, int64_t thread, int limit,
		   int64_t *total, facts *f)
{
	json_t *list = json_array(), *picked = NULL;
	const char **keys = NULL;
	llm_cost *costs = NULL;
	int *waits = NULL;
	size_t n = 0;
	int rc = list ? 0 : err_set(ERR_NOMEM, "out of memory");

	*out = NULL;
	if (total)
		*total = 0;
	if (rc == 0)
		rc = facts_load(f, c, graph, thread);
	if (rc == 0)
		rc = pick(f, limit, &picked, &waits);
	n = json_array_size(picked);
	if (rc == 0 && total)
		*total = (int64_t)json_array_size(f->threads);
	keys = calloc(n + 1, sizeof(*keys));
	costs = calloc(n + 1, sizeof(*costs));
	if (rc == 0 && (!keys || !costs))
		rc = err_set(ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++)
		keys[i] = json_string_value(json_object_get(json_array_get(picked, i), "key"));
	if (rc == 0)
		rc = llm_ledger_costs(c, keys, n, costs);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_t *sum = row_report(c, json_array_get(picked, i), &costs[i], waits[i]);
		if (!sum || json_array_append_new(list, sum) < 0)
			rc = err_set(ERR_NOMEM, "out of memory");
		else
			rc = add_workers(sum, c, f->ops);
	}
	json_decref(picked);
	free(waits);
	free(keys);
	free(costs);
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 0;
}

int nd_report_projects(json_t **out, pg_conn *c, const char *graph, int limit,
		       int64_t *out_total)
{
	facts f = {0};
	int rc = reports(out, c, graph, 0, limit, out_total, &f);

	facts_clear(&f);
	return rc;
}

/* {"id", "title", "status", "label"} of every task, in plan order. */
static json_t *task_list(const json_t *state)
{
	json_t *list = json_array(), *t;
	const char *k;

	json_object_foreach((json_t *)json_object_get(state, "tasks"), k, t) {
		const char *s = json_string_value(json_object_get(t, "status"));
		const char *title = json_string_value(json_object_get(t, "title"));
		if (!json_is_object(t))
			continue;
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "id", k, "title",
						      title ? title : k, "status", s ? s : "",
						      "label", nd_task_state_label(s)));
	}
	return list;
}

/* The labels of a question row's options (objects with a "label", or
 * scalars as their text), new. */
static json_t *option_labels(const json_t *options)
{
	json_t *out = json_array(), *o;
	size_t i;

	json_array_foreach(options, i, o) {
		json_t *l = json_is_object(o) ? json_object_get(o, "label") : o;
		char *text = NULL;
		if (json_is_string(l) || !l || json_is_null(l)) {
			json_array_append_new(out, json_is_string(l) ? json_incref(l) : json_null());
			continue;
		}
		text = json_dumps(l, JSON_ENCODE_ANY);
		json_array_append_new(out, text ? json_string(text) : json_null());
		free(text);
	}
	return out;
}

/* Thread t's questions still being sent (pending rows the bot made no
 * question of), appended to `to` in the form make() gives; NULL on
 * ENOMEM. */
static int add_unshown(json_t *to, const facts *f, const json_t *t,
		       json_t *(*make)(const json_t *t, const json_t *row))
{
	size_t i;
	json_t *row;

	json_array_foreach(json_object_get(t, "pending"), i, row) {
		json_t *q;
		if (is_linked(f, json_integer_value(json_object_get(row, "id"))))
			continue;
		q = make(t, row);
		if (!q || json_array_append_new(to, q) < 0)
			return err_set(ERR_NOMEM, "out of memory");
	}
	return 0;
}

static json_t *open_unshown(const json_t *t, const json_t *row)
{
	const json_t *p = json_object_get(row, "payload");
	const char *q = json_string_value(json_object_get(p, "question"));
	const char *kind = json_string_value(json_object_get(row, "kind"));
	char channel[64];

	(void)t;
	snprintf(channel, sizeof(channel), "%s", kind ? kind : "");
	channel[strcspn(channel, ".")] = 0;
	return json_pack("{s:n, s:s, s:s, s:o}", "id", "question", q ? q : "", "channel", channel,
			 "options", option_labels(json_object_get(p, "options")));
}

/* Adds "open" to r: the project's open questions, those shown (approval
 * id) first, then those still being sent; options as their labels; at
 * most 20. */
static int add_open(json_t *r, const facts *f)
{
	json_t *open = json_array(), *t = json_array_get(f->threads, 0), *q;
	size_t i;
	int rc = open ? 0 : err_set(ERR_NOMEM, "out of memory");

	json_array_foreach(rc == 0 ? f->open : NULL, i, q)
		json_array_append_new(open, json_pack("{s:O, s:O, s:O, s:O}", "id",
						      json_object_get(q, "id"), "question",
						      json_object_get(q, "question"), "channel",
						      json_object_get(q, "channel"), "options",
						      json_object_get(q, "options")));
	if (rc == 0)
		rc = add_unshown(open, f, t, open_unshown);
	while (rc == 0 && json_array_size(open) > 20)
		json_array_remove(open, 20);
	json_object_set_new(r, "open", open);
	return rc;
}

/* Adds "budget" to r when the project has one. */
static int add_budget(json_t *r, pg_conn *c)
{
	double limit = 0, spent = 0;
	int found = 0;
	int rc = llm_budget_get(c, "project", json_string_value(json_object_get(r, "key")), &found,
				&limit, &spent);

	if (rc == 0 && found)
		json_object_set_new(r, "budget",
				    json_pack("{s:f, s:f}", "limit_usd", limit, "spent_usd", spent));
	return rc;
}

int nd_report_project(json_t **out, pg_conn *c, int64_t thread)
{
	json_t *list = NULL, *r = NULL, *state = NULL;
	facts f = {0};
	const char *branch;
	int rc;

	*out = NULL;
	if (thread <= 0)
		return 0;
	rc = reports(&list, c, ND_GRAPH, thread, -1, NULL, &f);
	if (rc < 0 || json_array_size(list) == 0)
		goto done; /* not a factory project: no report */
	r = json_incref(json_array_get(list, 0));
	if (eng_state_at(c, thread, 0, &state, NULL, NULL) < 0) {
		err_clear();
		state = json_object();
	}
	json_object_set_new(r, "task_list", task_list(state));
	branch = json_string_value(json_object_get(json_object_get(state, "repo"), "branch"));
	if (branch)
		json_object_set_new(r, "branch", json_string(branch));
	rc = add_open(r, &f);
	if (rc == 0)
		rc = add_budget(r, c);
	if (rc == 0) {
		*out = r;
		r = NULL;
	}
done:
	json_decref(r);
	json_decref(state);
	json_decref(list);
	facts_clear(&f);
	return rc;
}

static json_t *question_unshown(const json_t *t, const json_t *row)
{
	const char *q = json_string_value(json_object_get(json_object_get(row, "payload"),
							  "question"));

	return json_pack("{s:n, s:O, s:s, s:O}", "id", "project", json_object_get(t, "key"),
			 "question", q ? q : "", "row", json_object_get(row, "id"));
}

static int by_row(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "row"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "row"));

	return x < y ? -1 : x > y;
}

/* Sorts the items of list by their "row" (the outbox row's id) and drops
 * the key. */
static int sort_by_row(json_t *list)
{
	size_t n = json_array_size(list);
	json_t **v = calloc(n + 1, sizeof(*v));

	if (!v)
		return err_set(ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(list, i));
	qsort(v, n, sizeof(*v), by_row);
	json_array_clear(list);
	for (size_t i = 0; i < n; i++) {
		json_object_del(v[i], "row");
		json_array_append_new(list, v[i]);
	}
	free(v);
	return 0;
}

/* The key of thread `id` among f's; "" when it is not one. */
static const char *thread_key(const facts *f, json_int_t id)
{
	size_t i;
	json_t *t;

	json_array_foreach(f->threads, i, t)
		if (json_integer_value(json_object_get(t, "id")) == id)
			return json_string_value(json_object_get(t, "key"));
	return "";
}

int nd_report_questions(json_t **out, pg_conn *c, const char *graph)
{
	json_t *qs = json_array(), *q, *t, *unshown = json_array();
	facts f = {0};
	size_t i;
	int rc = qs && unshown ? 0 : err_set(ERR_NOMEM, "out of memory");

	*out = NULL;
	if (rc == 0)
		rc = facts_load(&f, c, graph, 0);
	json_array_foreach(rc == 0 ? f.open : NULL, i, q)
		json_array_append_new(qs, json_pack("{s:O, s:s, s:O, s:O}", "id",
						    json_object_get(q, "id"), "project",
						    thread_key(&f, json_integer_value(json_object_get(
								       q, "thread_id"))),
						    "question", json_object_get(q, "question"),
						    "channel", json_object_get(q, "channel")));
	json_array_foreach(rc == 0 ? f.threads : NULL, i, t)
		if (rc == 0)
			rc = add_unshown(unshown, &f, t, question_unshown);
	/* oldest first, as they were written (threads come by update) */
	if (rc == 0)
		rc = sort_by_row(unshown);
	if (rc == 0)
		json_array_extend(qs, unshown);
	json_decref(unshown);
	facts_clear(&f);
	if (rc < 0) {
		json_decref(qs);
		return rc;
	}
	*out = qs;
	return 0;
}
