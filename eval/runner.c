#include "eval/runner.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/report.h"
#include "eval/person.h"
#include "llm/ledger.h"
#include "nodes/repo.h"
#include "nodes/report.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define END_WAIT_MS 60000 /* for a cancelled project's runs to stop */


static const pg_stmt STMT_WORKERS = {
	"ev_workers",
	"SELECT count(*) FILTER (WHERE coalesce(request->>'mode', 'work') = 'work'), "
	"count(*) FILTER (WHERE status = 'conflict'), "
	"count(*) FILTER (WHERE request->>'mode' = 'merge' AND status IN ('done', 'unverified')) "
	"FROM workers WHERE thread_id = $1",
	1,
};

typedef struct shared {
	const ev_options *o;
	const ev_item *items;
	size_t n;
	pg_pool *pool;
	ev_proxy *px;
	const ev_front *front;
	pthread_mutex_t mu;     /* next, results, rc and the progress lines */
	size_t next;
	json_t **results;
	int rc;
	int64_t t0;
} shared;

/* One project as it runs. */
typedef struct proj {
	shared *sh;
	const ev_task *t;
	char chat[96];
	char key[256];
	int64_t thread;
	int64_t t0;             /* monotonic ms at its start */
	int64_t merged_ms;      /* time to the merged main; -1: never */
	int64_t limit_ms;
	ev_person person;
	char shown[400];        /* the last progress line */
	size_t answered_conv;   /* conversation length when the person last answered */
	int64_t nudged_run;     /* the ended run the person last nudged */
	int nudges;
	int ended;              /* the loop is over */
	char outcome[32];       /* "" until decided: "stopped", "over budget", ... */
	char reason[700];
	char stage[32];
	char last_msg[400];     /* the project's last message, for a reason */
	json_t *report;         /* the latest nd_report_project */
} proj;

static void progress(proj *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void progress(proj *p, const char *fmt, ...)
{
	FILE *f = p->sh->o->progress;
	va_list ap;
	char line[600];

	if (!f)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&p->sh->mu);
	fprintf(f, "eval [%4llds] %-24s %s\n", (long long)((util_mono_ms() - p->sh->t0) / 1000),
		p->t->id, line);
	fflush(f);
	pthread_mutex_unlock(&p->sh->mu);
}

static void set_outcome(proj *p, const char *outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_outcome(proj *p, const char *outcome, const char *fmt, ...)
{
	va_list ap;

	if (p->outcome[0])
		return; /* the first reason stands */
	snprintf(p->outcome, sizeof(p->outcome), "%s", outcome);
	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
	va_end(ap);
}

/* --- the person's turns --- */

static const char *question_words(const char *key)
{
	if (strncmp(key, "spec:", 5) == 0)
		return "the spec";
	if (strncmp(key, "plan:", 5) == 0)
		return "the plan";
	if (strncmp(key, "budget:", 7) == 0 || strstr(key, ":budget:"))
		return "a budget question";
	if (strstr(key, ":failed:"))
		return "a failed task";
	if (strstr(key, ":rounds:"))
		return "more review rounds";
	if (strstr(key, ":review:"))
		return "a failed review";
	if (strstr(key, ":merge:"))
		return "a merge";
	return key;
}

static int on_messages(proj *p, pg_conn *c)
{
	const ev_front *f = p->sh->front;
	json_t *msgs = NULL;
	size_t i;
	const json_t *m;
	int rc = f->take(f->udata, c, p->chat, &msgs);

	if (rc < 0)
		return rc;
	json_array_foreach(msgs, i, m) {
		const json_t *a = json_object_get(m, "approval");
		const json_t *opts = json_object_get(a, "options");
		const char *key = jx_str(a, "key");
		int pick = -1;

		if (!json_is_object(a)) {
			/* the first line of what it said last, for a reason */
			const char *text = jx_str(m, "text");
			if (strcmp(jx_str(m, "kind"), "send") == 0)
				snprintf(p->last_msg, sizeof(p->last_msg), "%.*s",
					 (int)strcspn(text, "\n"), text);
			continue;
		}
		ev_person_choose(&p->person, key, opts, &pick);
		if (pick < 0)
			continue;
		rc = f->decide(f->udata, c, p->chat, (int64_t)jx_int(a, "id"), pick);
		if (rc < 0)
			break;
		progress(p, "person: %s on %s", jx_str(json_array_get(opts, (size_t)pick), "id"),
			 question_words(key));
		if (p->person.stopped)
			set_outcome(p, "stopped", "the person stopped the project at %s: %.300s",
				    question_words(key), jx_str(m, "text"));
	}
	json_decref(msgs);
	return rc;
}

/* The brainstorm waits for the person's answer: give it, once per question. */
static int answer_question(proj *p, pg_conn *c)
{
	json_t *state = NULL;
	size_t conv;
	buf text;
	int rc = eng_state_at(c, p->thread, 0, &state, NULL, NULL);

	if (rc < 0)
		return rc;
	conv = json_array_size(json_object_get(state, "conversation"));
	json_decref(state);
	if (conv <= p->answered_conv)
		return 0; /* answered already; the engine has not taken it yet */
	buf_init(&text, 64 * 1024);
	if (ev_person_reply(&p->person, p->t, &text) == 1) {
		set_outcome(p, "stopped", "the brainstorm asked more than %d questions",
			    EV_PERSON_MAX_ANSWERS);
		buf_free(&text);
		return 0;
	}
	rc = p->sh->front->say(p->sh->front->udata, c, p->chat, buf_cstr(&text));
	buf_free(&text);
	if (rc < 0)
		return rc;
	p->answered_conv = conv;
	progress(p, "person: answered question %d", p->person.answers);
	return 0;
}

/* The project's last run ended while the project is not finished (a step
 * failed, or a node said "send any message to try again"): the person
 * tries once more, then stops. */
static int nudge(proj *p, pg_conn *c, int64_t run, const char *status, const char *error)
{
	int rc;

	if (run == p->nudged_run)
		return 0; /* the nudge's run is not there yet */
	if (p->nudges >= 1) {
		set_outcome(p, "stopped", "the project's run %s again: %.400s",
			    strcmp(status, "failed") == 0 ? "failed" : "ended",
			    *error ? error : p->last_msg);
		return 0;
	}
	p->nudges++;
	p->nudged_run = run;
	p->person.interventions++;
	rc = p->sh->front->say(p->sh->front->udata, c, p->chat, "Please try again.");
	if (rc == 0)
		progress(p, "person: asked to try again after %s", *error ? error : p->last_msg);
	return rc;
}

/* --- one look at the project --- */

static int limits(proj *p)
{
	int64_t tokens = jx_int(p->report, "tokens_in") + jx_int(p->report, "tokens_out");
	double usd = json_number_value(json_object_get(p->report, "cost_usd"));
	int64_t ms = util_mono_ms() - p->t0;

	if (tokens > p->t->budget_tokens)
		set_outcome(p, "over budget", "%lld tokens used, over the task's budget of %lld",
			    (long long)tokens, (long long)p->t->budget_tokens);
	else if (usd > p->t->budget_usd * 1.0001)
		set_outcome(p, "over budget", "$%.4f spent, over the task's budget of $%.4f", usd,
			    p->t->budget_usd);
	else if (ms > p->limit_ms)
		set_outcome(p, "timed out", "still running after %lld s (the limit is %lld s)",
			    (long long)(ms / 1000), (long long)(p->limit_ms / 1000));
	return p->outcome[0] != '\0';
}

static int look(proj *p, pg_conn *c)
{
	char status[16] = "", waiting[200] = "", error[600] = "";
	json_t *rep = NULL;
	int64_t run = 0;
	int rc;

	/* the run first: the stage read after it is at least as new, so a run
	 * that ended with the project finished is seen finished */
	rc = eng_report_last_run(c, p->thread, &run, status, sizeof(status), waiting,
				 sizeof(waiting), error, sizeof(error));
	if (rc < 0)
		return rc;
	rc = on_messages(p, c);
	if (rc < 0)
		return rc;
	rc = nd_report_project(&rep, c, p->thread);
	if (rc < 0)
		return rc;
	json_decref(p->report);
	p->report = rep;
	snprintf(p->stage, sizeof(p->stage), "%s", jx_str(rep, "stage"));
	{
		/* a progress line when the picture changed */
		const json_t *tk = json_object_get(rep, "tasks");
		char line[400];
		if (jx_int(tk, "total") > 0)
			snprintf(line, sizeof(line), "%s: %lld of %lld tasks merged, %lld worker%s busy",
				 p->stage, jx_int(tk, "merged"), jx_int(tk, "total"),
				 jx_int(rep, "workers"), jx_int(rep, "workers") == 1 ? "" : "s");
		else
			snprintf(line, sizeof(line), "%s", *p->stage ? p->stage : "starting");
		if (strcmp(line, p->shown) != 0) {
			snprintf(p->shown, sizeof(p->shown), "%s", line);
			progress(p, "%s", line);
		}
	}
	if (p->sh->px) {
		ev_proxy_stats st;
		ev_proxy_task_stats(p->sh->px, p->t->id, &st);
		if (st.mismatches > 0)
			set_outcome(p, "replay mismatch", "%s", st.mismatch);
	}
	if (strcmp(p->stage, "done") == 0) {
		if (p->merged_ms < 0)
			p->merged_ms = util_mono_ms() - p->t0;
		p->ended = 1;
		return 0;
	}
	if (strcmp(p->stage, "stopped") == 0 || strcmp(p->stage, "cancelled") == 0) {
		set_outcome(p, "stopped", "the project was %s: %.400s", p->stage, p->last_msg);
		p->ended = 1;
		return 0;
	}
	if (p->sh->o->interrupt && atomic_load(p->sh->o->interrupt))
		set_outcome(p, "interrupted", "the run was interrupted (Ctrl-C)");
	if (p->outcome[0] || limits(p))
		return 0;
	if (strcmp(status, "waiting") == 0 && strcmp(waiting, "input") == 0)
		return answer_question(p, c);
	if (strcmp(status, "done") == 0 || strcmp(status, "failed") == 0 ||
	    strcmp(status, "cancelled") == 0)
		return nudge(p, c, run, status, error);
	return 0;
}

/* Waits for the runs of a cancelled project to stop (bounded). */
static void wait_quiet(proj *p)
{
	char tid[24];
	const char *params[1] = {tid};

	snprintf(tid, sizeof(tid), "%lld", (long long)p->thread);
	for (int64_t until = util_mono_ms() + END_WAIT_MS; util_mono_ms() < until;
	     util_sleep_ms(200)) {
		PGresult *res = NULL;
		pg_conn *c = NULL;
		int busy = 1;
		if (pg_pool_acquire(p->sh->pool, 10000, &c) < 0)
			return;
		if (pg_exec(c, &res, "SELECT count(*) FROM runs WHERE thread_id = $1 AND status IN "
				     "('queued', 'running')", 1, params) == 0)
			busy = pg_int(res, 0, 0) > 0;
		PQclear(res);
		res = NULL;
		if (busy == 0 && pg_exec(c, &res, "SELECT count(*) FROM workers WHERE thread_id = $1 "
						  "AND state = 'running'", 1, params) == 0)
			busy = pg_int(res, 0, 0) > 0;
		PQclear(res);
		pg_pool_release(p->sh->pool, c);
		if (!busy)
			return;
	}
}

/* --- the measurements --- */

static json_t *measure(proj *p, pg_conn *c, const json_t *state)
{
	char tid[24];
	const char *params[1] = {tid};
	PGresult *res = NULL;
	json_t *m = json_object(), *calls = json_object(), *roles = NULL, *x;
	int64_t tin = 0, tout = 0, ncalls = 0;
	size_t i;
	double usd = 0;
	int rounds = 0;
	const char *k;
	const json_t *t;

	if (!m || !calls) {
		json_decref(m);
		json_decref(calls);
		return NULL;
	}
	if (llm_ledger_calls(c, p->key, &roles) == 0)
		json_array_foreach(roles, i, x) {
			json_object_set_new(calls, jx_str(x, "role"), json_integer(jx_int(x, "calls")));
			ncalls += jx_int(x, "calls");
			tin += jx_int(x, "tokens_in");
			tout += jx_int(x, "tokens_out");
			usd += json_number_value(json_object_get(x, "cost_usd"));
		}
	json_decref(roles);
	snprintf(tid, sizeof(tid), "%lld", (long long)p->thread);
	params[0] = tid;
	if (pg_exec_stmt(c, &res, &STMT_WORKERS, params) == 0 && pg_rows(res) == 1) {
		json_object_set_new(m, "worker_attempts", json_integer(pg_int(res, 0, 0)));
		json_object_set_new(m, "merge_conflicts", json_integer(pg_int(res, 0, 1)));
		json_object_set_new(m, "merges", json_integer(pg_int(res, 0, 2)));
	}
	PQclear(res);
	err_clear();
	json_object_foreach((json_t *)json_object_get(state, "tasks"), k, t)
		rounds += (int)json_array_size(json_object_get(t, "reviews"));
	json_object_set_new(m, "tokens_in", json_integer(tin));
	json_object_set_new(m, "tokens_out", json_integer(tout));
	json_object_set_new(m, "cost_usd", json_real(usd));
	json_object_set_new(m, "calls", calls);
	json_object_set_new(m, "calls_total", json_integer(ncalls));
	json_object_set_new(m, "review_rounds", json_integer(rounds));
	json_object_set_new(m, "plan_tasks", json_integer(json_object_size(json_object_get(state,
											      "tasks"))));
	return m;
}

/* --- starting a project --- */

/* Every file under `dir` (relative paths under `rel`) into *files. */
static int collect(const char *dir, const char *rel, json_t *files)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return err_set(ERR_IO, "cannot read %s: %s", dir, strerror(errno));
	for (e = readdir(d); e && rc == 0; e = readdir(d)) {
		char path[PATH_MAX], name[PATH_MAX], *text = NULL;
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		snprintf(name, sizeof(name), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		if (lstat(path, &st) < 0)
			rc = err_set(ERR_IO, "%s: %s", path, strerror(errno));
		else if (S_ISDIR(st.st_mode))
			rc = collect(path, name, files);
		else if (S_ISREG(st.st_mode))
			rc = ev_read_text(path, &text);
		if (rc == 0 && text &&
		    json_object_set_new(files, name, json_string(text)) < 0)
			rc = err_set(ERR_INVALID, "%s is not UTF-8 text", path);
		free(text);
	}
	closedir(d);
	return rc;
}

int ev_change_repo(const ev_task *t, const char *path)
{
	char dir[1200], msg[300];
	json_t *files = json_object();
	nd_repo_file *list = NULL;
	const char *k;
	json_t *v;
	size_t n = 0;
	char head[41];
	int rc;

	if (!files)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(dir, sizeof(dir), "%s/repo", t->dir);
	rc = collect(dir, "", files);
	if (rc == 0) {
		list = calloc(json_object_size(files) + 1, sizeof(nd_repo_file));
		rc = list ? 0 : err_set(ERR_NOMEM, "out of memory");
	}
	json_object_foreach(files, k, v)
		if (list) {
			list[n].path = k;
			list[n].content = json_string_value(v);
			n++;
		}
	snprintf(msg, sizeof(msg), "%s: the repository before the change\n", t->id);
	if (rc == 0)
		rc = ev_rmtree(path);
	if (rc == 0)
		rc = nd_repo_create(path, list, n, msg, head);
	free(list);
	json_decref(files);
	return rc;
}

/* Starts the task's project: a new one from the idea, or (kind change) one
 * on the task's repository. */
static int start_project(proj *p, pg_conn *c)
{
	const ev_front *f = p->sh->front;
	char repo[1200];
	int rc;

	if (strcmp(p->t->kind, "change") != 0)
		return f->start(f->udata, c, p->chat, p->t->idea, &p->thread, p->key, sizeof(p->key));
	if (!f->start_repo)
		return err_set(ERR_INVALID, "needs changes to existing repositories");
	snprintf(repo, sizeof(repo), "%s/%s-origin.git", p->sh->o->work_dir, p->t->id);
	rc = ev_change_repo(p->t, repo);
	if (rc == 0)
		rc = f->start_repo(f->udata, c, p->chat, p->t->idea, repo, p->t->base_branch,
				   &p->thread, p->key, sizeof(p->key));
	return rc;
}

/* --- one task from start to report --- */

static json_t *task_result(const ev_task *t, const char *outcome, const char *reason)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "id", t->id, "title", t->title,
			 "lang", t->lang, "size", t->size, "kind", t->kind, "outcome", outcome,
			 "solved", 0, "reason", reason ? reason : "");
}

/* Starts p's project as a person does, with the task's USD budget (set for
 * the key expected, and again for the key it got when the chat had
 * projects already); binds the replay proxy to it. */
static int begin_project(proj *p)
{
	shared *sh = p->sh;
	const ev_task *t = p->t;
	pg_conn *c = NULL;
	char expect[256];
	int rc = pg_pool_acquire(sh->pool, 30000, &c);

	if (rc < 0)
		return rc;
	snprintf(expect, sizeof(expect), "term:%s:1", p->chat);
	rc = llm_budget_set(c, "project", expect, t->budget_usd, NULL);
	if (rc == 0 && sh->px)
		rc = ev_proxy_bind(sh->px, expect, t->id);
	if (rc == 0)
		rc = start_project(p, c);
	if (rc == 0 && strcmp(expect, p->key) != 0) {
		/* the chat had projects already (a name used before) */
		rc = llm_budget_set(c, "project", p->key, t->budget_usd, NULL);
		if (rc == 0 && sh->px)
			rc = ev_proxy_bind(sh->px, p->key, t->id);
	}
	pg_pool_release(sh->pool, c);
	return rc;
}

/* The person, until the project ends or a limit ends it; then what is left
 * is cancelled (stopped by the person, a limit or a mismatch). */
static void play_person(proj *p, int64_t poll)
{
	shared *sh = p->sh;
	const ev_front *f = sh->front;
	pg_conn *c = NULL;
	int rc;

	while (!p->ended && !p->outcome[0]) {
		rc = pg_pool_acquire(sh->pool, 30000, &c);
		if (rc == 0)
			rc = look(p, c);
		if (c)
			pg_pool_release(sh->pool, c);
		c = NULL;
		if (rc < 0) {
			set_outcome(p, "error", "%s", err_last());
			break;
		}
		if (!p->ended && !p->outcome[0])
			util_sleep_ms(poll);
	}
	if (p->ended)
		return;
	rc = pg_pool_acquire(sh->pool, 30000, &c);
	if (rc == 0)
		rc = f->cancel(f->udata, c, p->thread, p->reason);
	if (c)
		pg_pool_release(sh->pool, c);
	if (rc < 0)
		log_warn("eval", "task %s: cancelling %s: %s", p->t->id, p->key, err_last());
	progress(p, "%s: %s", p->outcome, p->reason);
	wait_quiet(p);
}

/* The hidden tests on the main branch of repository `repo` ("" when none
 * was made) into *h. */
static void run_hidden(proj *p, const char *repo, ev_hidden *h)
{
	const ev_options *o = p->sh->o;
	const ev_task *t = p->t;
	char work[1200], log_path[1200];

	if (*repo && strcmp(p->outcome, "interrupted") == 0) {
		snprintf(h->reason, sizeof(h->reason), "not run: the run was interrupted");
		h->passed = h->failed = h->total = -1;
		return;
	}
	if (!*repo) {
		snprintf(h->reason, sizeof(h->reason), "no repository was made");
		h->passed = h->failed = h->total = -1;
		return;
	}
	snprintf(work, sizeof(work), "%s/%s", o->work_dir, t->id);
	snprintf(log_path, sizeof(log_path), "%s/%s.hidden.log", o->log_dir, t->id);
	progress(p, "hidden tests: %s", t->hidden_command);
	if (ev_hidden_run(t, repo, work, &o->sandbox, log_path, o->keep, h) < 0)
		log_warn("eval", "task %s: %s", t->id, err_last());
}

/* The task's result (owned; NULL on ENOMEM): outcome, hidden tests, the
 * project's figures m (may be NULL) and the replay's. */
static json_t *task_report(proj *p, const ev_hidden *h, int solved, const char *repo,
			   json_t *m)
{
	shared *sh = p->sh;
	json_t *r = task_result(p->t, p->outcome, p->reason);
	json_t *hj;

	if (!r)
		return NULL;
	hj = json_pack("{s:b, s:b, s:i, s:i, s:i, s:i, s:f, s:s}", "ran", h->ran, "passed_all",
		       h->solved, "exit_code", h->exit_code, "passed", h->passed, "failed",
		       h->failed, "total", h->total, "seconds", h->seconds, "reason", h->reason);
	json_object_set_new(r, "solved", json_boolean(solved));
	json_object_set_new(r, "hidden", hj);
	json_object_set_new(r, "project", json_string(p->key));
	json_object_set_new(r, "stage", json_string(p->stage));
	json_object_set_new(r, "repo", *repo ? json_string(repo) : json_null());
	json_object_set_new(r, "interventions", json_integer(p->person.interventions));
	json_object_set_new(r, "wall_s", json_real((double)(util_mono_ms() - p->t0) / 1000.0));
	json_object_set_new(r, "merged_s", p->merged_ms >= 0
						   ? json_real((double)p->merged_ms / 1000.0)
						   : json_null());
	if (m)
		json_object_update(r, m);
	if (sh->px) {
		ev_proxy_stats st;
		ev_proxy_task_stats(sh->px, p->t->id, &st);
		json_object_set_new(r, "replay",
				    json_pack("{s:i, s:i, s:i, s:i, s:s}", "calls", st.calls,
					      "recorded", st.recorded, "unused", st.unused,
					      "mismatches", st.mismatches, "mismatch", st.mismatch));
	}
	return r;
}

static json_t *run_task(shared *sh, const ev_task *t)
{
	proj p;
	pg_conn *c = NULL;
	json_t *state = NULL, *r = NULL, *m = NULL;
	ev_hidden h;
	const char *repo;
	int64_t poll = sh->o->poll_ms > 0 ? sh->o->poll_ms : 250;
	int rc, solved;

	memset(&p, 0, sizeof(p));
	memset(&h, 0, sizeof(h));
	p.sh = sh;
	p.t = t;
	p.merged_ms = -1;
	p.limit_ms = t->budget_wall_s * 1000;
	if (sh->o->timeout_ms > 0 && sh->o->timeout_ms < p.limit_ms)
		p.limit_ms = sh->o->timeout_ms;
	snprintf(p.chat, sizeof(p.chat), "%s-%s", sh->o->chat_prefix, t->id);

	rc = begin_project(&p);
	if (rc < 0) {
		char msg[700];
		snprintf(msg, sizeof(msg), "the project could not be started: %s", err_last());
		progress(&p, "%s", msg);
		return task_result(t, "error", msg);
	}
	p.t0 = util_mono_ms();
	progress(&p, "started %s (thread %lld)", p.key, (long long)p.thread);

	play_person(&p, poll);

	/* what it cost and did, then the hidden tests on its main */
	rc = pg_pool_acquire(sh->pool, 30000, &c);
	if (rc == 0 && nd_report_project(&m, c, p.thread) == 0 && m)
		snprintf(p.stage, sizeof(p.stage), "%s", jx_str(m, "stage"));
	json_decref(m);
	m = NULL;

	if (rc == 0 && eng_state_at(c, p.thread, 0, &state, NULL, NULL) < 0)
		state = NULL;
	if (rc == 0)
		m = measure(&p, c, state);
	if (c)
		pg_pool_release(sh->pool, c);
	err_clear();
	repo = jx_str(json_object_get(state, "repo"), "path");
	run_hidden(&p, repo, &h);
	/* solved: the project ended as it should and every hidden test passes */
	solved = h.solved && !p.outcome[0];
	if (solved)
		snprintf(p.outcome, sizeof(p.outcome), "solved");
	else if (!p.outcome[0])
		set_outcome(&p, "not solved", "%s", h.reason);
	r = task_report(&p, &h, solved, repo, m);
	if (h.ran && h.total >= 0)
		progress(&p, "%s: %d of %d hidden tests pass (%.0fs)", p.outcome, h.passed, h.total,
			 (double)(util_mono_ms() - p.t0) / 1000.0);
	else if (h.ran)
		progress(&p, "%s: the hidden tests %s (%.0fs)", p.outcome, h.solved ? "pass" : "fail",
			 (double)(util_mono_ms() - p.t0) / 1000.0);
	else
		progress(&p, "%s: no hidden tests (%s) (%.0fs)", p.outcome, h.reason,
			 (double)(util_mono_ms() - p.t0) / 1000.0);
	json_decref(p.report);
	json_decref(state);
	json_decref(m);
	return r;
}

static void *worker_main(void *arg)
{
	shared *sh = arg;

	for (;;) {
		size_t i;
		json_t *r;

		pthread_mutex_lock(&sh->mu);
		i = sh->next++;
		pthread_mutex_unlock(&sh->mu);
		if (i >= sh->n)
			return NULL;
		if (sh->items[i].skip)
			r = task_result(sh->items[i].task, "skipped", sh->items[i].skip);
		else if (sh->o->interrupt && atomic_load(sh->o->interrupt))
			r = task_result(sh->items[i].task, "skipped", "the run was interrupted");
		else
			r = run_task(sh, sh->items[i].task);
		pthread_mutex_lock(&sh->mu);
		sh->results[i] = r;
		if (!r)
			sh->rc = err_set(ERR_NOMEM, "out of memory");
		pthread_mutex_unlock(&sh->mu);
	}
}

int ev_run(const ev_options *o, const ev_item *items, size_t n, pg_pool *pool, ev_proxy *px,
	   const ev_front *front, json_t **out)
{
	shared sh;
	int par = o->parallel > 0 ? o->parallel : 1, started = 0, rc = 0;
	pthread_t th[64];
	json_t *tasks = NULL, *run = NULL;
	char at[40];
	time_t now = time(NULL);
	struct tm tm;

	*out = NULL;
	memset(&sh, 0, sizeof(sh));
	sh.o = o;
	sh.items = items;
	sh.n = n;
	sh.pool = pool;
	sh.px = px;
	sh.front = front;
	sh.t0 = util_mono_ms();
	sh.results = calloc(n + 1, sizeof(json_t *));
	if (!sh.results)
		return err_set(ERR_NOMEM, "out of memory");
	pthread_mutex_init(&sh.mu, NULL);
	if (par > 64)
		par = 64;
	for (int i = 0; i < par; i++) {
		if (pthread_create(&th[i], NULL, worker_main, &sh) != 0)
			break;
		started++;
	}
	if (started == 0)
		worker_main(&sh);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	gmtime_r(&now, &tm);
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	tasks = json_array();
	for (size_t i = 0; i < n; i++)
		if (tasks)
			json_array_append_new(tasks, sh.results[i]);
		else
			json_decref(sh.results[i]);
	run = json_pack("{s:s, s:s, s:s, s:i, s:f}", "mode", o->mode ? o->mode : "live", "models",
			o->models ? o->models : "", "finished_at", at, "parallel", par, "seconds",
			(double)(util_mono_ms() - sh.t0) / 1000.0);
	if (!tasks || !run || sh.rc < 0) {
		rc = sh.rc < 0 ? sh.rc : err_set(ERR_NOMEM, "out of memory");
		json_decref(tasks);
		json_decref(run);
	} else {
		*out = json_pack("{s:o, s:o}", "run", run, "tasks", tasks);
		rc = *out ? 0 : err_set(ERR_NOMEM, "out of memory");
	}
	pthread_mutex_destroy(&sh.mu);
	free(sh.results);
	return rc;
}
