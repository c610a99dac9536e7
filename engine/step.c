#include "engine/step.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int step_shared_init(step_shared *sh, json_t *events, const atomic_int *cancel)
{
	memset(sh, 0, sizeof(*sh));
	pthread_mutex_init(&sh->mu, NULL);
	sh->events = events;
	sh->nevents = json_array_size(events);
	sh->cancel = cancel;
	if (sh->nevents) {
		sh->taken_by = calloc(sh->nevents, sizeof(int));
		if (!sh->taken_by)
			return err_set(ERR_NOMEM, "out of memory");
	}
	return 0;
}

static int64_t hung_grace_ms(int64_t timeout_ms)
{
	return timeout_ms / 10 > STEP_HUNG_GRACE_MIN_MS ? timeout_ms / 10 : STEP_HUNG_GRACE_MIN_MS;
}

int step_shared_hung(step_shared *sh, int64_t now, step_hung *out)
{
	int found = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&sh->mu);
	for (size_t i = 0; i < sh->nwatch && !found; i++) {
		step_watch *w = &sh->watch[i];
		int64_t deadline = atomic_load(&w->deadline);

		if (deadline <= 0 || now < deadline + hung_grace_ms(w->node->timeout_ms))
			continue;
		out->node = w->node->name;
		out->timeout_ms = w->node->timeout_ms;
		out->attempt = atomic_load(&w->attempt);
		out->first = atomic_exchange(&w->reported, 1) == 0;
		found = 1;
	}
	pthread_mutex_unlock(&sh->mu);
	return found;
}

void step_shared_destroy(step_shared *sh)
{
	pthread_mutex_destroy(&sh->mu);
	free(sh->taken_by);
	sh->taken_by = NULL;
}

void task_result_clear(task_result *r)
{
	json_decref(r->update);
	json_decref(r->gotos);
	json_decref(r->outbox);
	json_decref(r->taken);
	json_decref(r->waits);
	json_decref(r->wait_payload);
	r->update = r->gotos = r->outbox = r->taken = r->waits = r->wait_payload = NULL;
}

/* Gives back the events a task took, for a retry or a sibling. */
static void release_taken(eng_ctx *ctx)
{
	step_shared *sh = ctx->sh;

	pthread_mutex_lock(&sh->mu);
	for (size_t i = 0; i < sh->nevents; i++)
		if (sh->taken_by[i] == ctx->task + 1)
			sh->taken_by[i] = 0;
	pthread_mutex_unlock(&sh->mu);
}

static json_t *ensure_array(json_t **slot)
{
	if (!*slot)
		*slot = json_array();
	return *slot;
}

/* --- the node's API (engine/ctx.h) --- */

int64_t eng_ctx_run_id(const eng_ctx *ctx) { return ctx->run_id; }
int64_t eng_ctx_thread_id(const eng_ctx *ctx) { return ctx->thread_id; }
const char *eng_ctx_thread_key(const eng_ctx *ctx) { return ctx->thread_key; }
const char *eng_ctx_node(const eng_ctx *ctx) { return ctx->node->name; }
int eng_ctx_step(const eng_ctx *ctx) { return ctx->step; }
int eng_ctx_attempt(const eng_ctx *ctx) { return ctx->attempt; }
void *eng_ctx_udata(const eng_ctx *ctx) { return ctx->node->udata; }
void *eng_ctx_app(const eng_ctx *ctx) { return ctx->app; }

int eng_ctx_cancelled(const eng_ctx *ctx)
{
	return ctx->sh->cancel && atomic_load(ctx->sh->cancel);
}

int64_t eng_ctx_deadline_ms(const eng_ctx *ctx)
{
	return ctx->deadline;
}

int64_t eng_ctx_remaining_ms(const eng_ctx *ctx)
{
	int64_t left;

	if (ctx->deadline <= 0)
		return -1;
	left = ctx->deadline - util_mono_ms();
	return left > 0 ? left : 0;
}

int eng_ctx_expired(const eng_ctx *ctx)
{
	return ctx->deadline > 0 && util_mono_ms() >= ctx->deadline;
}

int eng_ctx_should_stop(const eng_ctx *ctx)
{
	return eng_ctx_cancelled(ctx) || eng_ctx_expired(ctx);
}

/* Takes events with `key`: the oldest one (all == 0) or every one. */
static int take(eng_ctx *ctx, const char *key, int all, json_t *into)
{
	step_shared *sh = ctx->sh;
	int found = 0;

	pthread_mutex_lock(&sh->mu);
	for (size_t i = 0; i < sh->nevents; i++) {
		json_t *ev = json_array_get(sh->events, i);
		const char *k = json_string_value(json_object_get(ev, "key"));

		if (sh->taken_by[i] || !k || strcmp(k, key) != 0)
			continue;
		if (json_array_append(into, json_object_get(ev, "value")) < 0 ||
		    json_array_append(ensure_array(&ctx->res->taken), json_object_get(ev, "id")) < 0) {
			pthread_mutex_unlock(&sh->mu);
			return err_set(ERR_NOMEM, "out of memory");
		}
		sh->taken_by[i] = ctx->task + 1;
		found++;
		if (!all)
			break;
	}
	pthread_mutex_unlock(&sh->mu);
	return found;
}

int eng_wait(eng_ctx *ctx, const char *key, json_t *payload)
{
	json_t *w = ensure_array(&ctx->res->waits);

	if (!w || json_array_append_new(w, json_string(key)) < 0) {
		json_decref(payload);
		return err_set(ERR_NOMEM, "out of memory");
	}
	if (payload && !ctx->res->wait_payload)
		ctx->res->wait_payload = payload;
	else
		json_decref(payload);
	return ERR_WAIT;
}

int eng_await(eng_ctx *ctx, const char *key, json_t *payload, json_t **out)
{
	json_t *got = json_array();
	int n;

	*out = NULL;
	if (!got) {
		json_decref(payload);
		return err_set(ERR_NOMEM, "out of memory");
	}
	n = take(ctx, key, 0, got);
	if (n < 0) {
		json_decref(got);
		json_decref(payload);
		return n;
	}
	if (n == 0) {
		json_decref(got);
		return eng_wait(ctx, key, payload);
	}
	*out = json_incref(json_array_get(got, 0));
	json_decref(got);
	json_decref(payload);
	return 0;
}

int eng_take(eng_ctx *ctx, const char *key, json_t **out)
{
	json_t *got = json_array();
	int n;

	*out = NULL;
	if (!got)
		return err_set(ERR_NOMEM, "out of memory");
	n = take(ctx, key, 1, got);
	if (n < 0) {
		json_decref(got);
		return n;
	}
	*out = got;
	return 0;
}

int eng_emit(eng_ctx *ctx, const char *kind, const char *dest, json_t *payload)
{
	json_t *row;

	if (!kind || !*kind) {
		json_decref(payload);
		return err_set(ERR_INVALID, "an outbox row needs a kind");
	}
	row = json_pack("{s:s,s:s?,s:o}", "kind", kind, "dest", dest, "payload",
			payload ? payload : json_object());
	if (!row || json_array_append_new(ensure_array(&ctx->res->outbox), row) < 0)
		return err_set(ERR_NOMEM, "out of memory");
	return 0;
}

static int add_goto(eng_ctx *ctx, const char *node, json_t *input)
{
	json_t *t;
	int rc = eng_graph_may_goto(ctx->g, ctx->node, node);

	if (rc < 0) {
		json_decref(input);
		return rc;
	}
	t = input ? json_pack("{s:s,s:o}", "node", node, "input", input)
		  : json_pack("{s:s}", "node", node);
	if (!t || json_array_append_new(ensure_array(&ctx->res->gotos), t) < 0)
		return err_set(ERR_NOMEM, "out of memory");
	return 0;
}

int eng_goto(eng_ctx *ctx, const char *node)
{
	return add_goto(ctx, node, NULL);
}

int eng_send(eng_ctx *ctx, const char *node, json_t *input)
{
	return add_goto(ctx, node, input ? input : json_null());
}

/* --- running tasks --- */

static int64_t retry_delay(const eng_retry *p, int attempt)
{
	double d = (double)p->initial_ms * pow(p->factor, attempt - 1);
	int64_t ms = d > (double)p->max_ms ? p->max_ms : (int64_t)d;

	if (p->jitter && ms > 1)
		ms = ms / 2 + (int64_t)util_rand_below((uint64_t)(ms - ms / 2 + 1));
	return ms;
}

typedef struct task_job {
	const step_input *in;
	const eng_node_def *node;
	const json_t *input;
	int index;
	task_result *res;
	step_watch *watch;
} task_job;

/* After a failed attempt: 0 when the task stops here, or 1 after logging
 * and sleeping the policy's delay when it is to be tried again. */
static int task_retry(const eng_ctx *ctx, const eng_retry *policy, int rc, int attempt)
{
	if (attempt >= policy->max_attempts || rc == ERR_CANCELLED ||
	    !(policy->retry_on & ENG_RETRY_ON(rc)) || eng_ctx_cancelled(ctx))
		return 0;
	log_info("engine", "run %lld: %s; retrying", (long long)ctx->run_id, ctx->res->error);
	util_sleep_ms(retry_delay(policy, attempt));
	return 1;
}

static void run_task(task_job *job)
{
	const step_input *in = job->in;
	const eng_retry *policy = &job->node->retry;
	task_result *res = job->res;
	eng_ctx ctx = {
		.g = in->g,
		.node = job->node,
		.run_id = in->run_id,
		.thread_id = in->thread_id,
		.thread_key = in->thread_key,
		.step = in->step,
		.task = job->index,
		.app = in->app,
		.sh = in->sh,
		.res = res,
	};
	int64_t timeout = job->node->timeout_ms;

	for (int attempt = 1;; attempt++) {
		json_t *update = NULL;
		int rc;

		task_result_clear(res);
		res->error[0] = '\0';
		ctx.attempt = attempt;
		res->attempts = attempt;
		err_clear();
		ctx.deadline = timeout > 0 ? util_mono_ms() + timeout : 0;
		if (job->watch) {
			atomic_store(&job->watch->attempt, attempt);
			atomic_store(&job->watch->reported, 0);
			atomic_store(&job->watch->deadline, ctx.deadline);
		}
		rc = job->node->fn(&ctx, in->state, job->input, &update);
		if (job->watch)
			atomic_store(&job->watch->deadline, 0);
		if (eng_ctx_expired(&ctx)) {
			/* too late: whatever the attempt produced is dropped */
			json_decref(update);
			release_taken(&ctx);
			task_result_clear(res);
			snprintf(res->error, sizeof(res->error),
				 "node '%s' exceeded its timeout of %lld ms (attempt %d of %d); raise "
				 "the timeout with eng_graph_set_timeout or make the node return "
				 "earlier (eng_ctx_should_stop)",
				 job->node->name, (long long)timeout, attempt, policy->max_attempts);
			res->rc = ERR_TIMEOUT;
			if (!task_retry(&ctx, policy, ERR_TIMEOUT, attempt))
				return;
			continue;
		}
		if (json_array_size(res->waits) > 0 && rc >= 0)
			rc = ERR_WAIT;
		if (rc == 0) {
			rc = eng_update_check(eng_graph_schema(in->g), update);
			if (rc == 0) {
				res->update = update;
				res->rc = 0;
				return;
			}
			json_decref(update);
			snprintf(res->error, sizeof(res->error), "node '%s': %s", job->node->name,
				 err_last());
			res->rc = rc;
			release_taken(&ctx);
			return;
		}
		json_decref(update);
		release_taken(&ctx);
		json_decref(res->taken);
		res->taken = NULL;
		if (rc == ERR_WAIT) {
			if (json_array_size(res->waits) == 0) {
				snprintf(res->error, sizeof(res->error),
					 "node '%s' returned ERR_WAIT without calling eng_await or eng_wait",
					 job->node->name);
				res->rc = ERR_INTERNAL;
			} else {
				res->rc = ERR_WAIT;
			}
			return;
		}
		snprintf(res->error, sizeof(res->error), "node '%s' failed (attempt %d of %d): %s",
			 job->node->name, attempt, policy->max_attempts,
			 err_last()[0] ? err_last() : err_name(rc));
		res->rc = rc;
		if (!task_retry(&ctx, policy, rc, attempt))
			return;
	}
}

static void *task_thread(void *arg)
{
	run_task(arg);
	return NULL;
}

int step_execute(const step_input *in, task_result *results)
{
	size_t n = json_array_size(in->tasks);
	task_job *jobs;
	pthread_t *threads;
	char *started;
	step_watch *watch;
	int rc = 0, first = -1, watching = 0;

	jobs = calloc(n ? n : 1, sizeof(*jobs));
	threads = calloc(n ? n : 1, sizeof(*threads));
	started = calloc(n ? n : 1, 1);
	watch = calloc(n ? n : 1, sizeof(*watch));
	if (!jobs || !threads || !started || !watch) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_array_get(in->tasks, i);
		const char *name = json_string_value(json_object_get(t, "node"));
		char idx[24];
		json_t *pw;

		snprintf(idx, sizeof(idx), "%zu", i);
		pw = in->pending ? json_object_get(in->pending, idx) : NULL;
		if (pw) {
			json_t *u = json_object_get(pw, "update");
			json_t *g = json_object_get(pw, "goto");
			results[i].from_pending = 1;
			results[i].rc = 0;
			results[i].update = u && !json_is_null(u) ? json_incref(u) : NULL;
			results[i].gotos = json_is_array(g) ? json_incref(g) : NULL;
			continue;
		}
		jobs[i].in = in;
		jobs[i].node = name ? eng_graph_node(in->g, name) : NULL;
		jobs[i].input = json_object_get(t, "input");
		jobs[i].index = (int)i;
		jobs[i].res = &results[i];
		if (!jobs[i].node || !jobs[i].node->fn) {
			rc = err_set(ERR_INVALID, "step %d names unknown node '%s'", in->step,
				     name ? name : "(none)");
			goto done;
		}
		watch[i].node = jobs[i].node;
		jobs[i].watch = &watch[i];
	}
	/* the heartbeat reads the attempts' deadlines while the tasks run */
	pthread_mutex_lock(&in->sh->mu);
	in->sh->watch = watch;
	in->sh->nwatch = n;
	pthread_mutex_unlock(&in->sh->mu);
	watching = 1;
	/* the first task to run goes in this thread, the others in their own */
	for (size_t i = 0; i < n; i++) {
		if (!jobs[i].node)
			continue;
		if (first < 0) {
			first = (int)i;
			continue;
		}
		if (pthread_create(&threads[i], NULL, task_thread, &jobs[i]) == 0)
			started[i] = 1;
		else
			run_task(&jobs[i]);
	}
	if (first >= 0)
		run_task(&jobs[first]);
	for (size_t i = 0; i < n; i++)
		if (started[i])
			pthread_join(threads[i], NULL);
done:
	if (watching) {
		pthread_mutex_lock(&in->sh->mu);
		in->sh->watch = NULL;
		in->sh->nwatch = 0;
		pthread_mutex_unlock(&in->sh->mu);
	}
	free(watch);
	free(jobs);
	free(threads);
	free(started);
	return rc;
}

int step_next(const eng_graph *g, const json_t *state, const json_t *tasks,
	      const task_result *results, json_t **out)
{
	json_t *next = json_array();
	size_t i;
	json_t *t;
	int rc = 0;

	*out = NULL;
	if (!next)
		return err_set(ERR_NOMEM, "out of memory");
	json_array_foreach(tasks, i, t) {
		const char *name = json_string_value(json_object_get(t, "node"));
		const eng_node_def *node = eng_graph_node(g, name);
		size_t j;
		json_t *gt;

		rc = eng_graph_targets(g, node, state, next);
		if (rc < 0)
			goto done;
		json_array_foreach(results[i].gotos, j, gt) {
			json_t *input = json_object_get(gt, "input");
			rc = eng_tasks_add(g, next, json_string_value(json_object_get(gt, "node")),
					   input ? json_incref(input) : NULL);
			if (rc < 0)
				goto done;
		}
	}
done:
	if (rc < 0) {
		json_decref(next);
		return rc;
	}
	*out = next;
	return 0;
}

json_t *task_result_pending(const task_result *r)
{
	return json_pack("{s:O?,s:O?}", "update", r->update, "goto", r->gotos);
}
