#include "llm/llm.h"
#include "core/config.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/utf8.h"
#include "core/util.h"
#include "llm/schema.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ERRBODY_MAX ((size_t)64 << 10)
#define REPLY_MAX ((size_t)16 << 20)
#define MAX_CLIENTS_IDLE 256

struct llm_service {
	llm_registry *reg;
	llm_sched *sched;
	llm_options opt;
	char instance[96];
	pthread_mutex_t mu;       /* guards the idle HTTP clients */
	http_client *idle[MAX_CLIENTS_IDLE];
	int n_idle;
	pthread_t stats_thread;
	int stats_running;
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv;
	int stopping;
	atomic_int saved; /* figures were written: remove them at the end */
};

void llm_request_init(llm_request *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->temperature = -1;
}

static int env_usd(const char *name, double *out)
{
	const char *v = getenv(name);
	char *end;
	double d;

	*out = -1;
	if (!v || !*v)
		return 0;
	errno = 0;
	d = strtod(v[0] == '$' ? v + 1 : v, &end);
	if (errno || *end || !isfinite(d) || d < 0)
		return err_set(ERR_INVALID, "%s=%s: expected an amount of USD such as 5 or 12.50", name,
			       v);
	*out = d;
	return 0;
}

int llm_options_from_env(llm_options *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = env_usd("ORCH_LLM_PROJECT_BUDGET", &out->project_budget)) < 0 ||
	    (rc = env_usd("ORCH_LLM_USER_BUDGET", &out->user_budget)) < 0 ||
	    (rc = cfg_env_duration_ms("ORCH_LLM_STATS_INTERVAL", 5000, 100, 3600000,
				      &out->stats_interval_ms)) < 0 ||
	    (rc = cfg_env_duration_ms("ORCH_LLM_QUEUE_TIMEOUT", 600000, 1, 86400000,
				      &out->queue_timeout_ms)) < 0 ||
	    (rc = cfg_env_duration_ms("ORCH_LLM_IDLE_TIMEOUT", 60000, 1, 86400000,
				      &out->idle_timeout_ms)) < 0 ||
	    (rc = cfg_env_str("ORCH_LLM_BUDGET_PERIOD", "total", out->budget_period,
			      sizeof(out->budget_period))) < 0)
		return rc;
	if (llm_budget_period_check(out->budget_period) < 0)
		return err_set(ERR_INVALID, "ORCH_LLM_BUDGET_PERIOD=%s: %s", out->budget_period,
			       err_last());
	return 0;
}

/* --- HTTP clients, reused across calls for their kept-alive connections --- */

static int client_get(llm_service *s, http_client **out)
{
	pthread_mutex_lock(&s->mu);
	if (s->n_idle > 0) {
		*out = s->idle[--s->n_idle];
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	pthread_mutex_unlock(&s->mu);
	return http_client_new(out);
}

static void client_put(llm_service *s, http_client *c)
{
	pthread_mutex_lock(&s->mu);
	if (s->n_idle < MAX_CLIENTS_IDLE) {
		s->idle[s->n_idle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	http_client_free(c);
}

/* --- scheduler figures --- */

int llm_service_save_stats(llm_service *s)
{
	llm_sched_stats st[64];
	pg_conn *c = NULL;
	int n, rc;

	if (!s->opt.pool)
		return 0;
	n = llm_sched_stats_get(s->sched, st, 64);
	if (n == 0)
		return 0;
	rc = pg_pool_acquire(s->opt.pool, 5000, &c);
	if (rc < 0)
		return rc;
	rc = llm_sched_stats_save(c, s->instance, st, n);
	if (rc == 0)
		atomic_store(&s->saved, 1);
	pg_pool_release(s->opt.pool, c);
	return rc;
}

static void *stats_main(void *arg)
{
	llm_service *s = arg;

	pthread_mutex_lock(&s->stop_mu);
	while (!s->stopping) {
		struct timespec ts;
		pthread_mutex_unlock(&s->stop_mu);
		if (llm_service_save_stats(s) < 0)
			log_warn("llm", "saving scheduler figures: %s", err_last());
		pthread_mutex_lock(&s->stop_mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += s->opt.stats_interval_ms / 1000;
		ts.tv_nsec += (s->opt.stats_interval_ms % 1000) * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (!s->stopping)
			pthread_cond_timedwait(&s->stop_cv, &s->stop_mu, &ts);
	}
	pthread_mutex_unlock(&s->stop_mu);
	return NULL;
}

int llm_service_new(llm_service **out, llm_registry *reg, const llm_options *opt)
{
	llm_service *s;
	const char *names[64];
	int slots[64], n, lookahead, starvation, rc;
	char host[64] = "host";

	*out = NULL;
	n = llm_registry_n_endpoints(reg);
	if (n > 64) {
		llm_registry_free(reg);
		return err_set(ERR_INVALID, "at most 64 endpoints");
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		llm_registry_free(reg);
		return err_set(ERR_NOMEM, "out of memory");
	}
	s->reg = reg;
	if (opt) {
		s->opt = *opt;
	} else {
		s->opt.project_budget = -1;
		s->opt.user_budget = -1;
	}
	if (s->opt.stats_interval_ms == 0)
		s->opt.stats_interval_ms = 5000;
	if (s->opt.queue_timeout_ms == 0)
		s->opt.queue_timeout_ms = 600000;
	if (s->opt.idle_timeout_ms == 0)
		s->opt.idle_timeout_ms = 60000;
	if (s->opt.reserve_ttl_ms <= 0)
		s->opt.reserve_ttl_ms = 7200000;
	for (int i = 0; i < n; i++) {
		names[i] = llm_registry_endpoint(reg, i)->name;
		slots[i] = llm_registry_endpoint(reg, i)->slots;
	}
	llm_registry_sched(reg, &lookahead, &starvation);
	rc = llm_sched_new(&s->sched, n, names, slots, lookahead, starvation);
	if (rc < 0) {
		llm_registry_free(reg);
		free(s);
		return rc;
	}
	gethostname(host, sizeof(host) - 1);
	{
		char rnd[9];
		util_rand_hex(rnd, 4);
		snprintf(s->instance, sizeof(s->instance), "%s-%d-%s", host, (int)getpid(), rnd);
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->stop_mu, NULL);
	pthread_cond_init(&s->stop_cv, NULL);
	if (s->opt.pool && s->opt.stats_interval_ms > 0 && n > 0) {
		if (pthread_create(&s->stats_thread, NULL, stats_main, s) != 0) {
			llm_service_free(s);
			return err_set(ERR_INTERNAL, "cannot start the scheduler figures thread");
		}
		s->stats_running = 1;
	}
	*out = s;
	return 0;
}

void llm_service_free(llm_service *s)
{
	if (!s)
		return;
	if (s->stats_running) {
		pthread_mutex_lock(&s->stop_mu);
		s->stopping = 1;
		pthread_cond_signal(&s->stop_cv);
		pthread_mutex_unlock(&s->stop_mu);
		pthread_join(s->stats_thread, NULL);
	}
	if (atomic_load(&s->saved)) {
		pg_conn *c = NULL;
		if (pg_pool_acquire(s->opt.pool, 2000, &c) == 0) {
			llm_sched_stats_clear(c, s->instance);
			pg_pool_release(s->opt.pool, c);
		}
	}
	for (int i = 0; i < s->n_idle; i++)
		http_client_free(s->idle[i]);
	llm_sched_free(s->sched);
	llm_registry_free(s->reg);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->stop_mu);
	pthread_cond_destroy(&s->stop_cv);
	free(s);
}

llm_registry *llm_service_registry(llm_service *s)
{
	return s->reg;
}

llm_sched *llm_service_sched(llm_service *s)
{
	return s->sched;
}

const char *llm_service_instance(const llm_service *s)
{
	return s->instance;
}

/* --- one call --- */

/* Everything about one logical call that the attempts share. */
typedef struct call_ctx {
	llm_service *s;
	const llm_call *call;
	const llm_request *rq;
	const char *role;
	char call_id[33];
	char owner[64];
	int64_t est_in;
	int attempt;         /* HTTP attempts so far, all models */
} call_ctx;

/* State of one HTTP transfer while it streams. */
typedef struct xfer_ctx {
	http_response *resp;
	llm_sse *sse;
	int sse_rc;
	char sse_msg[512]; /* the stream parser's message (http_do overwrites err_last) */
	buf errbody;
} xfer_ctx;

static int on_stream_data(const char *data, size_t len, void *udata)
{
	xfer_ctx *x = udata;

	if (x->resp->status != 0 && (x->resp->status < 200 || x->resp->status >= 300)) {
		size_t room = ERRBODY_MAX - x->errbody.len;
		buf_append(&x->errbody, data, len < room ? len : room);
		return 0;
	}
	x->sse_rc = llm_sse_feed(x->sse, data, len);
	if (x->sse_rc < 0)
		snprintf(x->sse_msg, sizeof(x->sse_msg), "%s", err_last());
	return x->sse_rc < 0 ? 1 : 0;
}

/* Sleeps ms, waking early (ERR_CANCELLED) when *cancel becomes non-zero. */
static int sleep_cancellable(int64_t ms, const atomic_int *cancel)
{
	int64_t until = util_mono_ms() + ms;

	for (;;) {
		int64_t left = until - util_mono_ms();
		if (cancel && atomic_load(cancel))
			return err_set(ERR_CANCELLED, "cancelled while waiting to retry");
		if (left <= 0)
			return 0;
		util_sleep_ms(left < 50 ? left : 50);
	}
}

static void write_row(call_ctx *cc, const llm_model *m, const llm_endpoint *e,
		      const llm_response *r, double latency_ms, double queue_ms, int status,
		      const char *outcome, const char *error, double cost, int64_t res, int settle)
{
	llm_ledger_row row;
	pg_conn *c = NULL;

	if (!cc->s->opt.pool)
		return;
	memset(&row, 0, sizeof(row));
	row.call_id = cc->call_id;
	row.attempt = cc->attempt;
	row.project = cc->call->project;
	row.user = cc->call->user;
	row.thread_id = cc->call->thread_id;
	row.run_id = cc->call->run_id;
	row.node = cc->call->node;
	row.worker = cc->call->worker;
	row.role = cc->role;
	row.model = m->name;
	row.endpoint = e->name;
	row.tokens_in = r ? r->tokens_in : 0;
	row.tokens_out = r ? r->tokens_out : 0;
	row.estimated = r ? r->usage_estimated : 0;
	row.cost_usd = cost;
	row.latency_ms = latency_ms;
	row.queue_ms = queue_ms;
	row.http_status = status;
	row.outcome = outcome;
	row.error = error;
	if (pg_pool_acquire(cc->s->opt.pool, 10000, &c) < 0 ||
	    llm_ledger_record(c, &row, settle, res) < 0)
		log_error("llm", "a model call (model %s, %s) could not be written to the ledger: %s",
			  m->name, outcome, err_last());
	pg_pool_release(cc->s->opt.pool, c);
}

/* The text of a reply as JSON: the content without a Markdown fence. */
static json_t *content_json(const char *content, char *err, size_t cap)
{
	const char *p = content, *end;
	json_error_t e;
	json_t *j;

	while (isspace((unsigned char)*p))
		p++;
	end = p + strlen(p);
	if (strncmp(p, "```", 3) == 0) {
		const char *nl = strchr(p, '\n');
		const char *close = end;
		while (close > p && isspace((unsigned char)close[-1]))
			close--;
		if (nl && close - p >= 6 && strncmp(close - 3, "```", 3) == 0) {
			p = nl + 1;
			end = close - 3;
		}
	}
	j = json_loadb(p, (size_t)(end - p), 0, &e);
	if (!j) {
		char why[200];
		utf8_excerpt(why, sizeof(why), e.text, strlen(e.text), sizeof(why));
		snprintf(err, cap, "the reply is not valid JSON: %s (line %d, column %d)", why,
			 e.line, e.column);
	}
	return j;
}

static void estimate_out(llm_response *r)
{
	size_t bytes = r->content_len;

	for (size_t i = 0; i < r->n_tool_calls; i++)
		bytes += strlen(r->tool_calls[i].arguments) + strlen(r->tool_calls[i].name);
	r->tokens_out = (int64_t)((bytes + 3) / 4);
}

typedef struct attempt_result {
	int rc;
	int retryable;
	int status;
	char outcome[24];
	int64_t retry_after_ms;
	int delivered;
} attempt_result;

static void classify_status(attempt_result *ar, const char *text, int is_context, const llm_model *m,
			    const llm_endpoint *e)
{
	int st = ar->status;

	if (st == 429) {
		snprintf(ar->outcome, sizeof(ar->outcome), "http_429");
		ar->retryable = 1;
		ar->rc = err_set(ERR_RETRY, "model '%s' at endpoint '%s': rate limited (HTTP 429): %s",
				 m->name, e->name, text);
	} else if (st == 408 || st == 409 || st >= 500) {
		snprintf(ar->outcome, sizeof(ar->outcome), "http_%d", st);
		ar->retryable = 1;
		ar->rc = err_set(ERR_HTTP, "model '%s' at endpoint '%s': HTTP %d: %s", m->name, e->name,
				 st, text);
	} else if (is_context) {
		snprintf(ar->outcome, sizeof(ar->outcome), "context");
		ar->rc = err_set(ERR_CONTEXT,
				 "model '%s' at endpoint '%s': the prompt does not fit the model's "
				 "context (HTTP %d: %s); trim or summarise the conversation",
				 m->name, e->name, st, text);
	} else if (st == 401 || st == 403) {
		snprintf(ar->outcome, sizeof(ar->outcome), "auth");
		ar->rc = err_set(ERR_AUTH,
				 "model '%s' at endpoint '%s': the API key was refused (HTTP %d: %s); "
				 "check %s%s", m->name, e->name, st, text,
				 e->key_env[0] ? "the variable " : e->key_secret[0] ? "the secret "
										 : "api_key_env in ",
				 e->key_env[0] ? e->key_env : e->key_secret[0] ? e->key_secret
									 : "the models file");
	} else if (st == 404) {
		snprintf(ar->outcome, sizeof(ar->outcome), "http_404");
		ar->rc = err_set(ERR_NOTFOUND,
				 "model '%s' at endpoint '%s': HTTP 404 (%s): check base_url (it "
				 "should end in /v1) and that the server serves model id '%s'",
				 m->name, e->name, text, m->id);
	} else {
		snprintf(ar->outcome, sizeof(ar->outcome), "http_%d", st);
		ar->rc = err_set(ERR_HTTP, "model '%s' at endpoint '%s': HTTP %d: %s", m->name, e->name,
				 st, text);
	}
}

/* The message of an attempt the idle timeout ended. */
static void idle_error(const llm_model *m, const llm_endpoint *e, const http_request *hr,
		       int started)
{
	char secs[32];
	int64_t ms = hr->idle_timeout_ms;

	if (ms % 1000 == 0)
		snprintf(secs, sizeof(secs), "%lld s", (long long)(ms / 1000));
	else
		snprintf(secs, sizeof(secs), "%.1f s", (double)ms / 1000.0);
	err_set(ERR_TIMEOUT, "model '%s' at endpoint '%s': the model %s for %s%s; raise %s or check "
			     "the server", m->name, e->name,
		started ? "stopped sending" : "sent nothing", secs,
		started ? " mid-reply" : " after the request",
		e->idle_timeout_ms > 0 ? "the endpoint's idle_timeout" : "ORCH_LLM_IDLE_TIMEOUT");
}

/* One HTTP attempt: sends `body`, fills `out` with the reply. */
static void do_attempt(call_ctx *cc, const llm_model *m, const llm_endpoint *e,
		       const char *const *headers, const buf *body, llm_response *out,
		       attempt_result *ar, double *latency_ms)
{
	http_client *hc = NULL;
	http_request hr;
	http_response resp;
	xfer_ctx x;
	char url[600], text[640];
	int64_t t0 = util_mono_us();
	int rc, is_ctx = 0;

	memset(ar, 0, sizeof(*ar));
	ar->retry_after_ms = -1;
	memset(&x, 0, sizeof(x));
	memset(&resp, 0, sizeof(resp));
	buf_init(&x.errbody, ERRBODY_MAX + 1);
	x.resp = &resp;
	snprintf(url, sizeof(url), "%s/chat/completions", e->base_url);
	memset(&hr, 0, sizeof(hr));
	hr.method = "POST";
	hr.url = url;
	hr.headers = headers;
	hr.body = body->data;
	hr.body_len = body->len;
	hr.connect_timeout_ms = e->connect_timeout_ms;
	hr.timeout_ms = e->timeout_ms;
	hr.idle_timeout_ms = e->idle_timeout_ms > 0 ? e->idle_timeout_ms : cc->s->opt.idle_timeout_ms;
	if (hr.idle_timeout_ms < 0)
		hr.idle_timeout_ms = 0;
	hr.idle_from_response = !cc->rq->stream;
	hr.max_response = REPLY_MAX;
	hr.cancel = cc->call->cancel;
	if (cc->rq->stream) {
		rc = llm_sse_new(&x.sse, out, cc->rq->on_delta, cc->rq->udata);
		if (rc < 0) {
			ar->rc = rc;
			snprintf(ar->outcome, sizeof(ar->outcome), "internal");
			goto done;
		}
		hr.on_data = on_stream_data;
		hr.udata = &x;
	}
	rc = client_get(cc->s, &hc);
	if (rc < 0) {
		ar->rc = rc;
		snprintf(ar->outcome, sizeof(ar->outcome), "internal");
		goto done;
	}
	rc = http_do(hc, &hr, &resp);
	ar->status = (int)resp.status;
	ar->retry_after_ms = resp.retry_after_ms;
	ar->delivered = x.sse ? llm_sse_delivered(x.sse) : 0;
	if (rc < 0 && x.sse_rc < 0) {
		/* the stream parser stopped the transfer: its reason counts */
		ar->rc = x.sse_rc;
		snprintf(ar->outcome, sizeof(ar->outcome), "%s",
			 x.sse_rc == ERR_CANCELLED ? "cancelled"
			 : x.sse_rc == ERR_HTTP	   ? "provider_error"
						   : "parse");
		ar->retryable = x.sse_rc == ERR_HTTP && !ar->delivered;
		err_set(x.sse_rc, "model '%s' at endpoint '%s': %s", m->name, e->name, x.sse_msg);
		goto done;
	}
	if (rc < 0) {
		ar->rc = rc;
		switch (rc) {
		case ERR_CANCELLED: snprintf(ar->outcome, sizeof(ar->outcome), "cancelled"); break;
		case ERR_TIMEOUT:
			snprintf(ar->outcome, sizeof(ar->outcome), "%s", resp.idle ? "stalled" : "timeout");
			break;
		case ERR_TOOBIG: snprintf(ar->outcome, sizeof(ar->outcome), "too_big"); break;
		default: snprintf(ar->outcome, sizeof(ar->outcome), "network"); break;
		}
		ar->retryable = (rc == ERR_TIMEOUT || rc == ERR_HTTP) && !ar->delivered;
		if (rc == ERR_HTTP && ar->delivered) {
			snprintf(text, sizeof(text), "%s", err_last());
			err_set(ERR_HTTP, "model '%s' at endpoint '%s': the stream broke after part of the "
					  "reply had arrived (%s); not retried, as the reply was "
					  "already being shown", m->name, e->name, text);
		}
		else if (resp.idle)
			idle_error(m, e, &hr, resp.received > 0);
		else
			err_wrap("model '%s' at endpoint '%s'", m->name, e->name);
		goto done;
	}
	if (resp.status < 200 || resp.status >= 300) {
		const buf *eb = x.sse ? &x.errbody : &resp.body;
		llm_wire_error_text(eb->data ? eb->data : "", eb->len, resp.content_type, text,
				    sizeof(text), &is_ctx);
		classify_status(ar, text, is_ctx, m, e);
		goto done;
	}
	if (x.sse) {
		rc = llm_sse_finish(x.sse);
	} else if (strstr(resp.content_type, "html")) {
		llm_wire_error_text(buf_cstr(&resp.body), resp.body.len, resp.content_type, text,
				    sizeof(text), &is_ctx);
		rc = err_set(ERR_PARSE, "the reply is %s", text);
	} else {
		rc = llm_wire_parse_reply(buf_cstr(&resp.body), resp.body.len, out);
	}
	if (rc < 0) {
		ar->rc = rc;
		snprintf(ar->outcome, sizeof(ar->outcome), rc == ERR_HTTP ? "provider_error" : "parse");
		/* a provider's error inside a 200 (overloaded, ...) is worth another try */
		ar->retryable = rc == ERR_HTTP && !ar->delivered;
		if (rc == ERR_HTTP)
			llm_wire_error_text(buf_cstr(&resp.body), resp.body.len, resp.content_type, text,
					    sizeof(text), &is_ctx);
		if (rc == ERR_HTTP && is_ctx) {
			ar->rc = ERR_CONTEXT;
			ar->retryable = 0;
			snprintf(ar->outcome, sizeof(ar->outcome), "context");
		}
		if (ar->rc == ERR_CONTEXT)
			err_set(ERR_CONTEXT, "model '%s' at endpoint '%s': the prompt does not fit the "
					     "model's context (%s); trim or summarise the conversation",
				m->name, e->name, text);
		else
			err_wrap("model '%s' at endpoint '%s'", m->name, e->name);
		goto done;
	}
	snprintf(ar->outcome, sizeof(ar->outcome), "ok");
done:
	*latency_ms = (double)(util_mono_us() - t0) / 1000.0;
	if (hc)
		client_put(cc->s, hc);
	llm_sse_free(x.sse);
	buf_free(&x.errbody);
	http_response_free(&resp);
}

/* Asks one model, with the retries of its endpoint: budget reservation,
 * slot, attempts, ledger rows. `schema_err` receives the validation error
 * when the reply does not match rq->json_schema (rc ERR_PARSE then). */
static int ask_model(call_ctx *cc, int mi, int max_tokens, const llm_message *extra,
		     size_t n_extra, llm_response *out, char *schema_err, size_t schema_cap)
{
	llm_service *s = cc->s;
	const llm_model *m = llm_registry_model(s->reg, mi);
	const llm_endpoint *e = llm_registry_endpoint(s->reg, m->endpoint);
	const char *headers[5] = {"Content-Type: application/json", NULL, NULL, NULL, NULL};
	llm_wire_opts wo = {m->id, max_tokens, e->max_tokens_field, e->stream_usage};
	double worst, latency = 0, queue_ms = 0;
	int64_t res = 0, est_in = cc->est_in;
	llm_ticket ticket;
	int have_slot = 0, rc = 0, nh = 1;
	buf body, key, auth;
	pg_conn *c = NULL;
	char errmsg[1024];

	schema_err[0] = '\0';
	buf_init(&body, 0);
	buf_init(&key, 8192);
	buf_init(&auth, 8300);
	snprintf(out->model, sizeof(out->model), "%s", m->name);
	snprintf(out->endpoint, sizeof(out->endpoint), "%s", e->name);
	for (size_t i = 0; i < n_extra; i++)
		est_in += 4 + (int64_t)(extra[i].content ? strlen(extra[i].content) / 4 : 0);

	/* reserve the worst case against the budgets */
	worst = ((double)est_in * m->price_in + (double)max_tokens * m->price_out) / 1e6;
	if (s->opt.pool && worst > 0 && (cc->call->project || cc->call->user)) {
		rc = pg_pool_acquire(s->opt.pool, 10000, &c);
		if (rc == 0)
			rc = llm_ledger_reserve(c, cc->call->project, cc->call->user, worst,
						s->opt.reserve_ttl_ms, s->opt.project_budget,
						s->opt.user_budget, s->opt.budget_period, &res,
						&out->budget);
		pg_pool_release(s->opt.pool, c);
		c = NULL;
		if (rc < 0) {
			snprintf(errmsg, sizeof(errmsg), "%s", err_last());
			if (rc == ERR_BUDGET) {
				cc->attempt++;
				write_row(cc, m, e, NULL, 0, 0, 0, "budget", errmsg, 0, 0, 0);
			}
			err_set(rc, "%s", errmsg);
			goto done;
		}
	}

	rc = llm_registry_key(s->reg, m->endpoint, &key);
	if (rc == 0 && key.len > 0) {
		rc = buf_printf(&auth, "Authorization: Bearer %s", key.data);
		headers[nh++] = auth.data;
	}
	if (rc == 0) {
		headers[nh++] = cc->rq->stream ? "Accept: text/event-stream" : "Accept: application/json";
		rc = llm_wire_body(&body, cc->rq, extra, n_extra, &wo);
	}
	if (rc < 0) {
		snprintf(errmsg, sizeof(errmsg), "%s", err_last());
		cc->attempt++;
		write_row(cc, m, e, NULL, 0, 0, 0, rc == ERR_AUTH ? "auth" : "invalid", errmsg, 0, res,
			  1);
		res = 0;
		err_set(rc, "%s", errmsg);
		goto done;
	}
	redact_buf(&body);

	rc = llm_sched_acquire(s->sched, m->endpoint, cc->call->priority, cc->owner,
			       cc->call->cancel, s->opt.queue_timeout_ms, &ticket);
	if (rc < 0) {
		snprintf(errmsg, sizeof(errmsg), "%s", err_last());
		cc->attempt++;
		write_row(cc, m, e, NULL, 0, 0, 0, rc == ERR_CANCELLED ? "cancelled" : "queue_timeout",
			  errmsg, 0, res, 1);
		res = 0;
		err_set(rc, "%s", errmsg);
		goto done;
	}
	have_slot = 1;
	queue_ms = ticket.wait_ms;
	out->queue_ms += queue_ms;

	for (int try = 0;; try++) {
		attempt_result ar;
		double cost;
		int last;

		llm_response_reset_reply(out);
		cc->attempt++;
		out->attempts++;
		do_attempt(cc, m, e, headers, &body, out, &ar, &latency);
		out->http_status = ar.status;
		if (ar.rc == 0 && cc->rq->json_schema) {
			char verr[700];
			json_t *j = content_json(out->content, verr, sizeof(verr));
			if (j && llm_schema_check(cc->rq->json_schema, j, verr, sizeof(verr)) < 0) {
				json_decref(j);
				j = NULL;
			}
			if (j) {
				out->json = j;
			} else {
				snprintf(schema_err, schema_cap, "%s", verr);
				snprintf(ar.outcome, sizeof(ar.outcome), "invalid_output");
				ar.rc = err_set(ERR_PARSE, "model '%s' at endpoint '%s': the reply does not "
							   "match the JSON schema: %s",
						m->name, e->name, verr);
			}
		}
		if (ar.rc < 0)
			snprintf(errmsg, sizeof(errmsg), "%s", err_last());
		/* tokens: the provider's usage, else an estimate (the provider charges anyway) */
		if (ar.status >= 200 && ar.status < 300 &&
		    (out->tokens_in == 0 && out->tokens_out == 0)) {
			out->usage_estimated = 1;
			out->tokens_in = est_in;
			estimate_out(out);
		}
		cost = ((double)out->tokens_in * m->price_in + (double)out->tokens_out * m->price_out) /
		       1e6;
		out->cost_usd += cost;
		if (ar.rc == 0)
			out->latency_ms = latency;
		last = ar.rc == 0 || !ar.retryable || try >= e->max_retries;
		if (!last && ar.retry_after_ms > e->max_retry_wait_ms) {
			last = 1;
			ar.rc = err_set(ar.rc, "%s; the endpoint asks to wait %lld s, longer than its "
					       "max_retry_wait", errmsg, (long long)(ar.retry_after_ms / 1000));
			snprintf(errmsg, sizeof(errmsg), "%s", err_last());
		}
		write_row(cc, m, e, out, latency, try == 0 ? queue_ms : 0, ar.status, ar.outcome,
			  ar.rc < 0 ? errmsg : NULL, cost, last ? res : 0, 1);
		if (last) {
			rc = ar.rc;
			if (rc < 0) {
				if (try > 0 && ar.retryable)
					err_set(rc, "%s (gave up after %d attempts)", errmsg, try + 1);
				else
					err_set(rc, "%s", errmsg);
			}
			res = 0;
			break;
		}
		{
			int64_t wait = ar.retry_after_ms >= 0
					       ? ar.retry_after_ms
					       : util_backoff_ms(try, e->retry_base_ms, e->retry_max_ms);
			log_warn("llm", "model %s at endpoint %s: %s; retry %d of %d in %lld ms", m->name,
				 e->name, ar.outcome, try + 1, e->max_retries, (long long)wait);
			rc = sleep_cancellable(wait, cc->call->cancel);
			if (rc < 0) {
				snprintf(errmsg, sizeof(errmsg), "%s", err_last());
				cc->attempt++;
				write_row(cc, m, e, NULL, 0, 0, 0, "cancelled", errmsg, 0, res, 1);
				res = 0;
				err_set(rc, "%s", errmsg);
				break;
			}
		}
	}
done:
	if (have_slot)
		llm_sched_release(s->sched, &ticket);
	if (res) /* a reservation not settled above (refused before sending) */
		write_row(cc, m, e, NULL, 0, 0, 0, "not_sent", NULL, 0, res, 1);
	buf_free(&body);
	buf_free_wipe(&key);
	buf_free_wipe(&auth);
	return rc;
}

int llm_chat(llm_service *s, const llm_call *call, const llm_request *rq, llm_response *out)
{
	static const llm_call none = {0};
	const int *models;
	int n, rc, last_rc = 0, tried = 0;
	char last_msg[1024] = "";
	call_ctx cc;
	int64_t biggest = 0;

	llm_response_init(out);
	if (!call)
		call = &none;
	memset(&cc, 0, sizeof(cc));
	cc.s = s;
	cc.call = call;
	cc.rq = rq;
	cc.role = call->role ? call->role : "default";
	util_rand_hex(cc.call_id, 16);
	if (call->owner)
		snprintf(cc.owner, sizeof(cc.owner), "%s", call->owner);
	else if (call->thread_id)
		snprintf(cc.owner, sizeof(cc.owner), "thread:%lld", (long long)call->thread_id);
	else if (call->project)
		snprintf(cc.owner, sizeof(cc.owner), "project:%s", call->project);
	else if (call->worker)
		snprintf(cc.owner, sizeof(cc.owner), "worker:%s", call->worker);
	if (!rq || rq->n_messages == 0)
		return err_set(ERR_INVALID, "llm_chat: the request has no messages");
	if (rq->stream == 0 && rq->on_delta)
		return err_set(ERR_INVALID, "llm_chat: on_delta is set but stream is not");
	rc = llm_registry_route(s->reg, cc.role, &models, &n);
	if (rc < 0)
		return rc;
	cc.est_in = llm_wire_estimate_tokens(rq);
	out->context_needed = cc.est_in;

	for (int k = 0; k < n; k++) {
		const llm_model *m = llm_registry_model(s->reg, models[k]);
		const llm_endpoint *e = llm_registry_endpoint(s->reg, m->endpoint);
		int max_tokens = rq->max_tokens > 0 ? rq->max_tokens : m->max_output;
		char schema_err[700];
		llm_message reask[2];
		char *bad_reply = NULL, *reask_text = NULL;

		if (m->context > biggest)
			biggest = m->context;
		if (cc.est_in + 16 > m->context) {
			snprintf(last_msg, sizeof(last_msg),
				 "the prompt (about %lld tokens) does not fit model '%s' (context %lld "
				 "tokens): trim or summarise the conversation",
				 (long long)cc.est_in, m->name, (long long)m->context);
			last_rc = ERR_CONTEXT;
			cc.attempt++;
			write_row(&cc, m, e, NULL, 0, 0, 0, "context", last_msg, 0, 0, 0);
			continue;
		}
		if (cc.est_in + max_tokens > m->context)
			max_tokens = (int)(m->context - cc.est_in);
		if (k > 0) {
			out->escalations++;
			log_warn("llm", "role %s: escalating from model %s to %s after: %s", cc.role,
				 llm_registry_model(s->reg, models[k - 1])->name, m->name, last_msg);
		}
		tried++;
		rc = ask_model(&cc, models[k], max_tokens, NULL, 0, out, schema_err,
			       sizeof(schema_err));
		if (rc == ERR_PARSE && schema_err[0]) {
			/* ask once more on the same model, with what was wrong */
			bad_reply = strdup(out->content ? out->content : "");
			if (bad_reply &&
			    asprintf(&reask_text,
				     "Your reply did not match the required JSON schema: %s. Reply "
				     "again with only the corrected JSON, nothing else.",
				     schema_err) >= 0) {
				memset(reask, 0, sizeof(reask));
				reask[0].role = "assistant";
				reask[0].content = bad_reply;
				reask[1].role = "user";
				reask[1].content = reask_text;
				rc = ask_model(&cc, models[k], max_tokens, reask, 2, out, schema_err,
					       sizeof(schema_err));
			} else {
				reask_text = NULL;
			}
			free(bad_reply);
			free(reask_text);
		}
		if (rc == 0)
			return 0;
		last_rc = rc;
		snprintf(last_msg, sizeof(last_msg), "%s", err_last());
		if (rc == ERR_BUDGET || rc == ERR_CANCELLED || rc == ERR_INVALID || rc == ERR_NOMEM)
			return err_set(rc, "%s", last_msg);
	}
	llm_response_reset_reply(out);
	if (last_rc == ERR_CONTEXT)
		out->context_limit = biggest;
	if (n > 1)
		return err_set(last_rc, "role '%s': all %d models failed (%d asked); the last: %s",
			       cc.role, n, tried, last_msg);
	return err_set(last_rc, "%s", last_msg);
}
