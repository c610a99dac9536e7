#include "llm/llm.h"
#include "core/config.h"
#include "core/err.h"
#include "core/health.h"
#include "core/http.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/redact.h"
#include "core/utf8.h"
#include "core/util.h"
#include "llm/schema.h"
#include "llm/server.h"

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
#define SCHEMA_CACHE 32        /* schemas an endpoint refused, remembered per endpoint */
#define PROBE_TIMEOUT_MS 3000  /* each request of a probe */
#define PROBE_AGAIN_MS 30000   /* a probe that got no answer is tried again after this */
#define HEALTH_TIMEOUT_MS 2000 /* one GET /health */
#define HEALTH_POLL_MS 1000    /* between two of them while an outage lasts */
#define FREE_RETRIES 3         /* attempts after an outage that cost no retry, per model */

#define MAX_RT 128             /* endpoints one process knows over its life (by name and URL) */

/* What the service knows of one endpoint's server, beyond the registry.
 * Entries are kept across configuration changes, by the endpoint's name
 * and base URL: an endpoint that stays keeps its probe, its outage state
 * and its slot in the scheduler. */
typedef struct ep_rt {
	char name[64];            /* set once; the entry is the endpoint of this name... */
	char base_url[512];       /* ...at this URL */
	pthread_mutex_t mu;       /* guards the fields below (not held during HTTP) */
	pthread_mutex_t probe_mu; /* one probe at a time */
	int probe_state;          /* 0: not yet, 1: done, 2: no answer (again after a while) */
	int64_t probed_at;        /* monotonic ms */
	llm_server_info info;     /* what the server said at the last probe */
	int64_t down_since;       /* monotonic ms an outage was first seen; 0: none */
	llm_server_slots slots;   /* the server's slots at the last look (figures thread) */
	struct {
		uint64_t hash;
		int level;
	} schemas[SCHEMA_CACHE];  /* the level a refused schema is sent at */
	int n_schemas;
} ep_rt;

/* One configuration of the service: a registry and, for each of its
 * endpoints, the runtime entry (and scheduler endpoint) it uses. A call
 * holds the configuration it started under until it ends, so a change
 * never pulls a model from under a call in progress. */
typedef struct llm_gen {
	llm_registry *reg;
	int rt[64];               /* registry endpoint i -> s->ep[] and scheduler index */
	int refs;                 /* guarded by s->gen_mu */
	int64_t version;          /* of the stored configuration; 0: file or environment */
} llm_gen;

struct llm_service {
	pthread_mutex_t gen_mu;   /* guards gen, the refs and n_rt */
	llm_gen *gen;             /* the current configuration */
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
	void (*on_free)(void *); /* the configuration watcher's stop */
	void *on_free_udata;
	ep_rt ep[MAX_RT];
	int n_rt;
};

/* The current configuration, held until gen_put. */
static llm_gen *gen_get(llm_service *s)
{
	llm_gen *g;

	pthread_mutex_lock(&s->gen_mu);
	g = s->gen;
	g->refs++;
	pthread_mutex_unlock(&s->gen_mu);
	return g;
}

static void gen_free(llm_gen *g)
{
	if (!g)
		return;
	llm_registry_free(g->reg);
	free(g);
}

static void gen_put(llm_service *s, llm_gen *g)
{
	int last;

	if (!g)
		return;
	pthread_mutex_lock(&s->gen_mu);
	last = --g->refs == 0 && g != s->gen;
	pthread_mutex_unlock(&s->gen_mu);
	if (last)
		gen_free(g);
}

/* The runtime entry of registry endpoint i of g. */
static ep_rt *rt_of(llm_service *s, const llm_gen *g, int i)
{
	return &s->ep[g->rt[i]];
}

/* Maps every endpoint of `reg` to a runtime entry (an existing one of the
 * same name and URL, else a new one, with a new scheduler endpoint) into
 * g->rt. Called with gen_mu held. ERR_TOOBIG past MAX_RT entries over the
 * process's life (a restart clears them). */
static int gen_map(llm_service *s, llm_gen *g)
{
	int n = llm_registry_n_endpoints(g->reg);

	for (int i = 0; i < n; i++) {
		const llm_endpoint *e = llm_registry_endpoint(g->reg, i);
		int k;

		for (k = 0; k < s->n_rt; k++)
			if (strcmp(s->ep[k].name, e->name) == 0 &&
			    strcmp(s->ep[k].base_url, e->base_url) == 0)
				break;
		if (k == s->n_rt) {
			int idx = -1;
			if (s->n_rt == MAX_RT)
				return err_set(ERR_TOOBIG, "this process has seen %d endpoints; restart it "
							   "to use more", MAX_RT);
			if (s->sched && llm_sched_add(s->sched, e->name, e->slots, &idx) < 0)
				return err_last_code();
			pthread_mutex_init(&s->ep[k].mu, NULL);
			pthread_mutex_init(&s->ep[k].probe_mu, NULL);
			snprintf(s->ep[k].name, sizeof(s->ep[k].name), "%s", e->name);
			snprintf(s->ep[k].base_url, sizeof(s->ep[k].base_url), "%s", e->base_url);
			s->n_rt++;
		} else if (s->sched) {
			/* the configured slots, unless the server said how many it has */
			int reported;
			pthread_mutex_lock(&s->ep[k].mu);
			reported = s->ep[k].info.total_slots;
			pthread_mutex_unlock(&s->ep[k].mu);
			if (reported <= 0)
				llm_sched_set_slots(s->sched, k, e->slots);
		}
		g->rt[i] = k;
	}
	return 0;
}

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
	rc = env_usd("ORCH_LLM_PROJECT_BUDGET", &out->project_budget);
	if (rc == 0)
		rc = env_usd("ORCH_LLM_USER_BUDGET", &out->user_budget);
	if (rc == 0)
		rc = cfg_env_duration_ms("ORCH_LLM_STATS_INTERVAL", 5000, 100, 3600000,
					 &out->stats_interval_ms);
	if (rc == 0)
		rc = cfg_env_duration_ms("ORCH_LLM_QUEUE_TIMEOUT", 600000, 1, 86400000,
					 &out->queue_timeout_ms);
	if (rc == 0)
		rc = cfg_env_duration_ms("ORCH_LLM_IDLE_TIMEOUT", 60000, 1, 86400000,
					 &out->idle_timeout_ms);
	if (rc == 0)
		rc = cfg_env_duration_ms("ORCH_LLM_HEALTH_WAIT", 180000, 1, 86400000,
					 &out->health_wait_ms);
	if (rc == 0)
		rc = cfg_env_str("ORCH_LLM_BUDGET_PERIOD", "total", out->budget_period,
				 sizeof(out->budget_period));
	if (rc < 0)
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
/* --- scheduler figures --- */

int llm_service_save_stats(llm_service *s)
{
	llm_sched_stats all[MAX_RT], st[64];
	llm_server_slots srv[64];
	pg_conn *c = NULL;
	llm_gen *g;
	int n, na, rc;

	if (!s->opt.pool)
		return 0;
	na = llm_sched_stats_get(s->sched, all, MAX_RT);
	g = gen_get(s);
	n = llm_registry_n_endpoints(g->reg);
	for (int i = 0; i < n; i++) { /* the endpoints of the configuration in force */
		ep_rt *r = rt_of(s, g, i);
		st[i] = g->rt[i] < na ? all[g->rt[i]] : all[0];
		pthread_mutex_lock(&r->mu);
		srv[i] = r->slots;
		pthread_mutex_unlock(&r->mu);
	}
	gen_put(s, g);
	if (n == 0)
		return 0;
	rc = pg_pool_acquire(s->opt.pool, 5000, &c);
	if (rc < 0)
		return rc;
	rc = llm_sched_stats_save(c, s->instance, st, srv, n);
	if (rc == 0) /* an endpoint the configuration dropped leaves the figures */
		rc = llm_sched_stats_keep(c, s->instance, st, n);
	if (rc == 0)
		atomic_store(&s->saved, 1);
	pg_pool_release(s->opt.pool, c);
	return rc;
}

/* The Authorization header of endpoint i of g into auth (wiped by the
 * caller) and the header list for the server's own paths into hdrs[3]. */
static void server_headers(const llm_gen *g, int i, buf *auth, const char *hdrs[3])
{
	buf key;

	buf_init(&key, 8192);
	hdrs[0] = "Accept: application/json";
	hdrs[1] = NULL;
	hdrs[2] = NULL;
	if (llm_registry_key(g->reg, i, &key) == 0 && key.len > 0 &&
	    buf_printf(auth, "Authorization: Bearer %s", key.data) == 0)
		hdrs[1] = auth->data;
	err_clear();
	buf_free_wipe(&key);
}

/* Reads the slots of every llama.cpp endpoint, for `status`. */
static void read_server_slots(llm_service *s)
{
	llm_gen *g = gen_get(s);
	int n = llm_registry_n_endpoints(g->reg);

	for (int i = 0; i < n; i++) {
		const llm_endpoint *e = llm_registry_endpoint(g->reg, i);
		ep_rt *r = rt_of(s, g, i);
		llm_server_slots sl;
		http_client *hc = NULL;
		const char *hdrs[3];
		buf auth;
		int llama;

		pthread_mutex_lock(&r->mu);
		llama = r->info.llamacpp;
		pthread_mutex_unlock(&r->mu);
		if (!llama || client_get(s, &hc) < 0)
			continue;
		buf_init(&auth, 8300);
		server_headers(g, i, &auth, hdrs);
		if (llm_server_slots_get(hc, e->base_url, hdrs, HEALTH_TIMEOUT_MS, &sl) < 0) {
			memset(&sl, 0, sizeof(sl));
			err_clear();
		}
		buf_free_wipe(&auth);
		client_put(s, hc);
		pthread_mutex_lock(&r->mu);
		r->slots = sl;
		pthread_mutex_unlock(&r->mu);
	}
	gen_put(s, g);
}

static void *stats_main(void *arg)
{
	llm_service *s = arg;

	pthread_mutex_lock(&s->stop_mu);
	while (!s->stopping) {
		struct timespec ts;
		pthread_mutex_unlock(&s->stop_mu);
		read_server_slots(s);
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

/* metrics: below, with the ledger rows */
static pthread_once_t m_once = PTHREAD_ONCE_INIT;
static void metrics_init(void);
static void sched_collect(void *udata);

int llm_service_new(llm_service **out, llm_registry *reg, const llm_options *opt)
{
	llm_service *s;
	llm_gen *g;
	int n, lookahead, starvation, rc;
	char host[64] = "host";

	*out = NULL;
	pthread_once(&m_once, metrics_init);
	n = llm_registry_n_endpoints(reg);
	if (n > 64) {
		llm_registry_free(reg);
		return err_set(ERR_INVALID, "at most 64 endpoints");
	}
	s = calloc(1, sizeof(*s));
	g = calloc(1, sizeof(*g));
	if (!s || !g) {
		free(s);
		free(g);
		llm_registry_free(reg);
		return err_set(ERR_NOMEM, "out of memory");
	}
	g->reg = reg;
	g->refs = 0;
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
	if (s->opt.health_wait_ms == 0)
		s->opt.health_wait_ms = 180000;
	if (s->opt.reserve_ttl_ms <= 0)
		s->opt.reserve_ttl_ms = 7200000;
	llm_registry_sched(reg, &lookahead, &starvation);
	pthread_mutex_init(&s->gen_mu, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->stop_mu, NULL);
	pthread_cond_init(&s->stop_cv, NULL);
	s->gen = g;
	rc = llm_sched_new(&s->sched, 0, NULL, NULL, lookahead, starvation);
	if (rc == 0)
		rc = gen_map(s, g); /* the first configuration's endpoints are 0, 1, ... */
	if (rc < 0) {
		llm_service_free(s);
		return rc;
	}
	gethostname(host, sizeof(host) - 1);
	{
		char rnd[9];
		util_rand_hex(rnd, 4);
		snprintf(s->instance, sizeof(s->instance), "%s-%d-%s", host, (int)getpid(), rnd);
	}
	if (s->opt.pool && s->opt.stats_interval_ms > 0) {
		if (pthread_create(&s->stats_thread, NULL, stats_main, s) != 0) {
			llm_service_free(s);
			return err_set(ERR_INTERNAL, "cannot start the scheduler figures thread");
		}
		s->stats_running = 1;
	}
	met_collector(sched_collect, s);
	*out = s;
	return 0;
}

void llm_service_on_free(llm_service *s, void (*fn)(void *), void *udata)
{
	s->on_free = fn;
	s->on_free_udata = udata;
}

void llm_service_free(llm_service *s)
{
	if (!s)
		return;
	if (s->on_free)
		s->on_free(s->on_free_udata);
	met_collector_remove(sched_collect, s);
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
	for (int i = 0; i < s->n_rt; i++) {
		pthread_mutex_destroy(&s->ep[i].mu);
		pthread_mutex_destroy(&s->ep[i].probe_mu);
	}
	llm_sched_free(s->sched);
	gen_free(s->gen);
	pthread_mutex_destroy(&s->gen_mu);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->stop_mu);
	pthread_cond_destroy(&s->stop_cv);
	free(s);
}

int llm_service_set_registry(llm_service *s, llm_registry *reg, int64_t version)
{
	llm_gen *g, *old;
	int rc, n = llm_registry_n_endpoints(reg);

	if (n > 64) {
		llm_registry_free(reg);
		return err_set(ERR_INVALID, "at most 64 endpoints");
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		llm_registry_free(reg);
		return err_set(ERR_NOMEM, "out of memory");
	}
	g->reg = reg;
	g->version = version;
	pthread_mutex_lock(&s->gen_mu);
	rc = gen_map(s, g);
	old = s->gen;
	if (rc == 0)
		s->gen = g;
	pthread_mutex_unlock(&s->gen_mu);
	if (rc < 0) {
		gen_free(g);
		return rc;
	}
	/* the old configuration goes when its last call ends */
	pthread_mutex_lock(&s->gen_mu);
	rc = old->refs == 0;
	pthread_mutex_unlock(&s->gen_mu);
	if (rc)
		gen_free(old);
	return 0;
}

int64_t llm_service_version(llm_service *s)
{
	int64_t v;

	pthread_mutex_lock(&s->gen_mu);
	v = s->gen->version;
	pthread_mutex_unlock(&s->gen_mu);
	return v;
}

int llm_service_describe(llm_service *s, json_t **out)
{
	llm_gen *g = gen_get(s);
	int rc = llm_registry_describe(g->reg, out);

	if (rc == 0)
		json_object_set_new(*out, "version", json_integer(g->version));
	gen_put(s, g);
	return rc;
}

void llm_service_summary(llm_service *s, char *origin, size_t cap, int *models, int *endpoints)
{
	llm_gen *g = gen_get(s);

	snprintf(origin, cap, "%s", llm_registry_origin(g->reg));
	*models = llm_registry_n_models(g->reg);
	*endpoints = llm_registry_n_endpoints(g->reg);
	gen_put(s, g);
}

llm_registry *llm_service_registry(llm_service *s)
{
	return s->gen->reg;
}

llm_sched *llm_service_sched(llm_service *s)
{
	return s->sched;
}

const char *llm_service_instance(const llm_service *s)
{
	return s->instance;
}

/* --- the endpoints' own facts --- */

/* The context of model m of g: the server's context per slot when it told
 * it (it wins over the configuration), else the registry's. */
static int64_t model_context(llm_service *s, const llm_gen *g, const llm_model *m)
{
	ep_rt *r = rt_of(s, g, m->endpoint);
	int64_t ctx;

	pthread_mutex_lock(&r->mu);
	ctx = r->info.n_ctx;
	pthread_mutex_unlock(&r->mu);
	return ctx > 0 ? ctx : m->context;
}

/* Lists the ids of a probe for a message. */
static void list_ids(const llm_server_info *info, char *out, size_t cap)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; i < info->n_models; i++) {
		int w = snprintf(out + used, cap - used, "%s%s", i ? ", " : "", info->models[i]);
		if (w < 0 || (size_t)w >= cap - used)
			break;
		used += (size_t)w;
	}
}

/* Asks endpoint i's server (of configuration g) about itself and applies
 * what it says: a model id it does not list is reported, its context per
 * slot and its slot count win over the configuration (the difference is
 * logged). `quiet_fail`: a server that does not answer is logged at debug
 * level only. */
static void probe_endpoint(llm_service *s, const llm_gen *g, int i, int quiet_fail)
{
	const llm_endpoint *e = llm_registry_endpoint(g->reg, i);
	ep_rt *r = rt_of(s, g, i);
	llm_server_info info;
	http_client *hc = NULL;
	const char *hdrs[3];
	char part[96], ids[600];
	buf auth;
	int rc;

	snprintf(part, sizeof(part), "llm.%s", e->name);
	rc = client_get(s, &hc);
	if (rc < 0)
		return;
	buf_init(&auth, 8300);
	server_headers(g, i, &auth, hdrs);
	rc = llm_server_probe(hc, e->base_url, hdrs, PROBE_TIMEOUT_MS, &info);
	buf_free_wipe(&auth);
	client_put(s, hc);
	pthread_mutex_lock(&r->mu);
	r->probed_at = util_mono_ms();
	r->probe_state = rc == 0 || rc == ERR_NOTFOUND || rc == ERR_PARSE ? 1 : 2;
	if (rc == 0)
		r->info = info;
	pthread_mutex_unlock(&r->mu);
	if (rc < 0) {
		if (rc == ERR_HTTP && !quiet_fail)
			log_warn("llm", "endpoint %s (%s) does not answer: %s; calls will wait for it "
					"(up to its health_wait)", e->name, e->base_url, err_last());
		else
			log_debug("llm", "endpoint %s: %s", e->name, err_last());
		err_clear();
		return;
	}
	health_report(part, HEALTH_OK, "the server answers%s",
		      info.llamacpp ? " (llama.cpp)" : "");
	list_ids(&info, ids, sizeof(ids));
	for (int k = 0; k < llm_registry_n_models(g->reg); k++) {
		const llm_model *m = llm_registry_model(g->reg, k);
		if (m->endpoint != i)
			continue;
		if (info.n_models > 0 && !llm_server_lists(&info, m->id))
			log_warn("llm", "endpoint %s does not list model id '%s' (model %s); it lists: "
					"%s. %s", e->name, m->id, m->name, ids,
				 info.llamacpp ? "llama-server answers any id with the model it has "
						 "loaded: set the model's \"model\" (or LLM_MODEL) to "
						 "the id it lists"
					       : "calls for it will fail: check the model's \"model\" "
						 "(or LLM_MODEL)");
		if (info.n_ctx > 0 && info.n_ctx != m->context)
			log_info("llm", "endpoint %s: the server's context is %lld tokens per slot; "
					"model %s is configured with %lld: using %lld",
				 e->name, (long long)info.n_ctx, m->name, (long long)m->context,
				 (long long)info.n_ctx);
	}
	if (info.total_slots > 0) {
		llm_sched_stats st[MAX_RT];
		int n = llm_sched_stats_get(s->sched, st, MAX_RT);
		if (g->rt[i] < n && st[g->rt[i]].slots != info.total_slots)
			log_info("llm", "endpoint %s: the server has %d slots; configured %d: using %d",
				 e->name, info.total_slots, st[g->rt[i]].slots, info.total_slots);
		llm_sched_set_slots(s->sched, g->rt[i], info.total_slots);
	}
}

/* Probes endpoint i of g unless that was done (or tried a short while ago). */
static void ensure_probed(llm_service *s, const llm_gen *g, int i)
{
	ep_rt *r = rt_of(s, g, i);
	int state;
	int64_t at;

	pthread_mutex_lock(&r->mu);
	state = r->probe_state;
	at = r->probed_at;
	pthread_mutex_unlock(&r->mu);
	if (state == 1 || (state == 2 && util_mono_ms() - at < PROBE_AGAIN_MS))
		return;
	pthread_mutex_lock(&r->probe_mu);
	pthread_mutex_lock(&r->mu);
	state = r->probe_state;
	at = r->probed_at;
	pthread_mutex_unlock(&r->mu);
	if (!(state == 1 || (state == 2 && util_mono_ms() - at < PROBE_AGAIN_MS)))
		probe_endpoint(s, g, i, 1);
	pthread_mutex_unlock(&r->probe_mu);
}

void llm_service_probe(llm_service *s)
{
	llm_gen *g = gen_get(s);

	for (int i = 0; i < llm_registry_n_endpoints(g->reg); i++) {
		ep_rt *r = rt_of(s, g, i);
		pthread_mutex_lock(&r->probe_mu);
		probe_endpoint(s, g, i, 0);
		pthread_mutex_unlock(&r->probe_mu);
	}
	gen_put(s, g);
}

int llm_service_endpoint_facts(llm_service *s, int i, llm_endpoint_facts *out)
{
	llm_sched_stats st[MAX_RT];
	llm_gen *g = gen_get(s);
	ep_rt *r;
	int n, rc = 0;

	memset(out, 0, sizeof(*out));
	if (i < 0 || i >= llm_registry_n_endpoints(g->reg)) {
		rc = err_set(ERR_NOTFOUND, "no endpoint %d", i);
		goto done;
	}
	r = rt_of(s, g, i);
	pthread_mutex_lock(&r->mu);
	out->probed = r->probe_state == 1;
	out->server = r->info;
	out->server_slots = r->slots;
	out->down = r->down_since != 0;
	pthread_mutex_unlock(&r->mu);
	n = llm_sched_stats_get(s->sched, st, MAX_RT);
	out->slots = g->rt[i] < n ? st[g->rt[i]].slots : 0;
done:
	gen_put(s, g);
	return rc;
}

/* The level at which endpoint i takes `schema` (FULL unless it refused). */
static uint64_t schema_hash(const json_t *schema)
{
	char *t = json_dumps(schema, JSON_COMPACT | JSON_SORT_KEYS);
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = t; p && *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	free(t);
	return h;
}

static int schema_level_get(llm_service *s, int i, uint64_t h)
{
	int level = LLM_SCHEMA_FULL;

	pthread_mutex_lock(&s->ep[i].mu);
	for (int k = 0; k < s->ep[i].n_schemas; k++)
		if (s->ep[i].schemas[k].hash == h)
			level = s->ep[i].schemas[k].level;
	pthread_mutex_unlock(&s->ep[i].mu);
	return level;
}

static void schema_level_set(llm_service *s, int i, uint64_t h, int level)
{
	ep_rt *r = &s->ep[i];
	int k;

	pthread_mutex_lock(&r->mu);
	for (k = 0; k < r->n_schemas; k++)
		if (r->schemas[k].hash == h)
			break;
	if (k == r->n_schemas) {
		if (r->n_schemas < SCHEMA_CACHE)
			r->n_schemas++;
		else
			k = (int)(h % SCHEMA_CACHE);
	}
	r->schemas[k].hash = h;
	r->schemas[k].level = level;
	pthread_mutex_unlock(&r->mu);
}

/* --- one call --- */

/* What was wrong with a reply that arrived, when something was. */
enum problem {
	PB_NONE = 0,
	PB_INVALID,        /* not JSON, or JSON that does not match the schema */
	PB_TRUNCATED,      /* structured output cut at the token limit */
	PB_CALL_TRUNCATED, /* a tool call cut at the token limit */
	PB_TOOL_UNKNOWN,   /* a call to a tool that was not offered */
	PB_TOOL_WRONG,     /* tool_choice named a tool and another was called */
	PB_NO_CALL,        /* a call was required and none came */
	PB_BAD_ARGS,       /* a call's arguments are not a JSON object */
	PB_SCHEMA_REFUSED, /* the server refused the schema it was sent */
};

typedef struct ask_out {
	int problem;
	char detail[700];  /* what was wrong, for the model and the message */
	char tool[128];    /* the tool concerned */
} ask_out;

/* Everything about one logical call that the attempts share. */
typedef struct call_ctx {
	llm_service *s;
	llm_gen *g;          /* the configuration the call started under */
	const llm_call *call;
	const llm_request *rq;
	const char *role;
	char call_id[33];
	char owner[64];
	int64_t est_in;      /* prompt tokens, for the model being asked */
	int64_t est_fallback; /* the estimate without a tokenizer */
	int attempt;         /* HTTP attempts so far, all models */
	int schema_level;    /* enum llm_schema_level for the model being asked */
} call_ctx;

/* State of one HTTP transfer while it streams. */
typedef struct xfer_ctx {
	http_response *resp;
	llm_sse *sse;
	call_ctx *cc;
	llm_token_info tok;
	int sse_rc;
	char sse_msg[512]; /* the stream parser's message (http_do overwrites err_last) */
	buf errbody;
} xfer_ctx;

/* A content delta of the reply: to the caller's on_delta when it asked for
 * a stream, and to the call's observer. */
static int on_reply_delta(const char *text, size_t len, void *udata)
{
	xfer_ctx *x = udata;
	const llm_request *rq = x->cc->rq;

	if (x->cc->call->on_token)
		x->cc->call->on_token(x->cc->call->token_udata, LLM_TOKEN_TEXT, text, len, &x->tok);
	return rq->stream && rq->on_delta ? rq->on_delta(text, len, rq->udata) : 0;
}

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

/* The model calls' metrics (core/metrics), made once. */
static met_family *m_calls, *m_tokens, *m_cost, *m_dur, *m_refused, *m_slots, *m_busy, *m_queue;

static void metrics_init(void)
{
	m_calls = met_counter("orch_llm_calls_total", "model call attempts, by model, role and outcome",
			      "model,role,outcome");
	m_tokens = met_counter("orch_llm_tokens_total", "tokens, by model, role and direction (in, out)",
			       "model,role,direction");
	m_cost = met_counter("orch_llm_cost_usd_total", "cost in US dollars, by model and role",
			     "model,role");
	m_dur = met_histogram("orch_llm_call_duration_seconds",
			      "one model call attempt, by model and outcome", "model,outcome", NULL, 0);
	m_refused = met_counter("orch_llm_budget_refusals_total",
				"model calls refused because a budget would be exceeded, by role", "role");
	m_slots = met_gauge("orch_llm_slots", "requests an endpoint serves at once", "endpoint");
	m_busy = met_gauge("orch_llm_slots_busy", "requests in flight on an endpoint", "endpoint");
	m_queue = met_gauge("orch_llm_queue", "requests waiting for a slot on an endpoint", "endpoint");
}

/* The scheduler's figures as gauges, at each scrape. */
static void sched_collect(void *udata)
{
	llm_service *s = udata;
	llm_sched_stats st[MAX_RT];
	int n = llm_sched_stats_get(s->sched, st, MAX_RT);

	for (int i = 0; i < n; i++) {
		met_set(met_with(m_slots, st[i].name), st[i].slots);
		met_set(met_with(m_busy, st[i].name), st[i].in_flight);
		met_set(met_with(m_queue, st[i].name), st[i].queued);
	}
}

static void count_call(const call_ctx *cc, const llm_model *m, const llm_response *r,
		       double latency_ms, const char *outcome, double cost)
{
	if (strcmp(outcome, "budget") == 0) {
		met_add(met_with(m_refused, cc->role), 1);
		return;
	}
	met_add(met_with(m_calls, m->name, cc->role, outcome), 1);
	met_observe(met_with(m_dur, m->name, outcome), latency_ms / 1000.0);
	if (r) {
		met_add(met_with(m_tokens, m->name, cc->role, "in"), (double)r->tokens_in);
		met_add(met_with(m_tokens, m->name, cc->role, "out"), (double)r->tokens_out);
	}
	if (cost > 0)
		met_add(met_with(m_cost, m->name, cc->role), cost);
}

static void write_row(call_ctx *cc, const llm_model *m, const llm_endpoint *e,
		      const llm_response *r, double latency_ms, double queue_ms, int status,
		      const char *outcome, const char *error, double cost, int64_t res, int settle)
{
	llm_ledger_row row;
	pg_conn *c = NULL;

	count_call(cc, m, r, latency_ms, outcome, cost);
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
	r->tokens_out = (int64_t)((bytes * 10 + 26) / 27);
}

typedef struct attempt_result {
	int rc;
	int retryable;
	int outage;          /* no answer, a stall or a 502/503/504: the server may be down */
	int schema_refused;  /* the server refused the response_format's schema */
	int status;
	char outcome[24];
	int64_t retry_after_ms;
	int delivered;
} attempt_result;

static int contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return 1;
	return 0;
}

/* True when an error text says the request's JSON schema was refused. */
static int says_schema(const char *text)
{
	return contains_ci(text, "grammar") || contains_ci(text, "schema") ||
	       contains_ci(text, "response_format") || contains_ci(text, "guided");
}

static void classify_status(call_ctx *cc, attempt_result *ar, const char *text, int is_context,
			    const llm_model *m, const llm_endpoint *e)
{
	int st = ar->status;

	if (st == 429) {
		snprintf(ar->outcome, sizeof(ar->outcome), "http_429");
		ar->retryable = 1;
		ar->rc = err_set(ERR_RETRY, "model '%s' at endpoint '%s': rate limited (HTTP 429): %s",
				 m->name, e->name, text);
	} else if (cc->schema_level < LLM_SCHEMA_NONE && cc->rq->json_schema && st >= 400 &&
		   st < 500 && st != 404 && !is_context && says_schema(text)) {
		snprintf(ar->outcome, sizeof(ar->outcome), "schema_refused");
		ar->schema_refused = 1;
		ar->rc = err_set(ERR_HTTP, "model '%s' at endpoint '%s': the server refused the JSON "
					   "schema (HTTP %d: %s)", m->name, e->name, st, text);
	} else if (st == 408 || st == 409 || st >= 500) {
		snprintf(ar->outcome, sizeof(ar->outcome), "http_%d", st);
		ar->retryable = 1;
		ar->outage = st == 502 || st == 503 || st == 504;
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

/* What the idle check of an attempt needs to look at the server. */
typedef struct alive_ctx {
	llm_service *s;
	const llm_endpoint *e;
	const char *const *headers;
} alive_ctx;

/* Nothing arrived for the idle timeout since the request was sent: a
 * server that answers /health is alive and busy (its own queue, a long
 * prompt), so the attempt keeps waiting (0); one that does not (frozen,
 * gone) ends it (1). */
static int server_alive(void *udata)
{
	alive_ctx *a = udata;
	http_client *hc = NULL;
	int h;

	if (client_get(a->s, &hc) < 0)
		return 1;
	h = llm_server_health(hc, a->e->base_url, a->headers, HEALTH_TIMEOUT_MS, NULL, 0);
	client_put(a->s, hc);
	if (h == LLM_HEALTH_UP)
		log_info("llm", "endpoint %s: no reply yet, the server is up: waiting on", a->e->name);
	return h == LLM_HEALTH_UP ? 0 : 1;
}

/* The request of an attempt at endpoint e into *hr (borrowing url,
 * headers, body and alive). */
static void request_init(http_request *hr, const call_ctx *cc, const llm_endpoint *e,
			 const char *url, const char *const *headers, const buf *body,
			 int wire_stream, alive_ctx *alive)
{
	memset(hr, 0, sizeof(*hr));
	hr->method = "POST";
	hr->url = url;
	hr->headers = headers;
	hr->body = body->data;
	hr->body_len = body->len;
	hr->connect_timeout_ms = e->connect_timeout_ms;
	hr->timeout_ms = e->timeout_ms;
	hr->idle_timeout_ms = e->idle_timeout_ms > 0 ? e->idle_timeout_ms
						     : cc->s->opt.idle_timeout_ms;
	if (hr->idle_timeout_ms < 0)
		hr->idle_timeout_ms = 0;
	hr->idle_from_response = !wire_stream;
	/* before the first byte, silence is a frozen server only when /health says so */
	hr->on_idle = server_alive;
	hr->idle_udata = alive;
	hr->max_response = REPLY_MAX;
	hr->cancel = cc->call->cancel;
}

/* An attempt whose transfer failed (rc): why, into ar, and the message.
 * x is the stream's context when its parser stopped the transfer (its
 * reason counts), else NULL. */
static void transfer_failed(const xfer_ctx *x, const llm_model *m, const llm_endpoint *e,
			    const http_request *hr, const http_response *resp, int rc,
			    attempt_result *ar)
{
	char text[640];

	if (x) {
		ar->rc = x->sse_rc;
		snprintf(ar->outcome, sizeof(ar->outcome), "%s",
			 x->sse_rc == ERR_CANCELLED ? "cancelled"
			 : x->sse_rc == ERR_HTTP    ? "provider_error"
						    : "parse");
		ar->retryable = x->sse_rc == ERR_HTTP && !ar->delivered;
		err_set(x->sse_rc, "model '%s' at endpoint '%s': %s", m->name, e->name, x->sse_msg);
		return;
	}
	ar->rc = rc;
	switch (rc) {
	case ERR_CANCELLED: snprintf(ar->outcome, sizeof(ar->outcome), "cancelled"); break;
	case ERR_TIMEOUT:
		snprintf(ar->outcome, sizeof(ar->outcome), "%s", resp->idle ? "stalled" : "timeout");
		break;
	case ERR_TOOBIG: snprintf(ar->outcome, sizeof(ar->outcome), "too_big"); break;
	default: snprintf(ar->outcome, sizeof(ar->outcome), "network"); break;
	}
	ar->retryable = (rc == ERR_TIMEOUT || rc == ERR_HTTP) && !ar->delivered;
	/* nothing came back, or the reply stopped: is the server there? */
	ar->outage = ar->retryable && (rc == ERR_TIMEOUT || resp->status == 0);
	if (rc == ERR_HTTP && ar->delivered) {
		snprintf(text, sizeof(text), "%s", err_last());
		err_set(ERR_HTTP, "model '%s' at endpoint '%s': the stream broke after part of the "
				  "reply had arrived (%s); not retried, as the reply was "
				  "already being shown", m->name, e->name, text);
	} else if (resp->idle) {
		idle_error(m, e, hr, resp->received > 0);
	} else {
		err_wrap("model '%s' at endpoint '%s'", m->name, e->name);
	}
}

/* Reads a 2xx reply into out (the stream's, or the body); on failure sets
 * ar and the message and returns its code. */
static int read_reply(xfer_ctx *x, const llm_model *m, const llm_endpoint *e,
		      http_response *resp, llm_response *out, attempt_result *ar)
{
	char text[640];
	int rc, is_ctx = 0;

	if (x->sse) {
		rc = llm_sse_finish(x->sse);
	} else if (strstr(resp->content_type, "html")) {
		llm_wire_error_text(buf_cstr(&resp->body), resp->body.len, resp->content_type, text,
				    sizeof(text), &is_ctx);
		rc = err_set(ERR_PARSE, "the reply is %s", text);
	} else {
		rc = llm_wire_parse_reply(buf_cstr(&resp->body), resp->body.len, out);
	}
	if (rc == 0)
		return 0;
	ar->rc = rc;
	snprintf(ar->outcome, sizeof(ar->outcome), rc == ERR_HTTP ? "provider_error" : "parse");
	/* a provider's error inside a 200 (overloaded, ...) is worth another try */
	ar->retryable = rc == ERR_HTTP && !ar->delivered;
	if (rc == ERR_HTTP)
		llm_wire_error_text(buf_cstr(&resp->body), resp->body.len, resp->content_type, text,
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
	return ar->rc;
}

/* One HTTP attempt: sends `body`, fills `out` with the reply. `wire_stream`:
 * the body asks for a stream (the caller's, or the endpoint's
 * stream_replies); deltas reach the caller only when it asked for them. */
static void do_attempt(call_ctx *cc, const llm_model *m, const llm_endpoint *e,
		       const char *const *headers, const buf *body, int wire_stream,
		       llm_response *out, attempt_result *ar, double *latency_ms)
{
	http_client *hc = NULL;
	http_request hr;
	http_response resp;
	xfer_ctx x;
	alive_ctx alive = {cc->s, e, headers};
	char url[600], text[640];
	int64_t t0 = util_mono_us();
	int rc, is_ctx = 0;

	memset(ar, 0, sizeof(*ar));
	ar->retry_after_ms = -1;
	memset(&x, 0, sizeof(x));
	memset(&resp, 0, sizeof(resp));
	buf_init(&x.errbody, ERRBODY_MAX + 1);
	x.resp = &resp;
	x.cc = cc;
	x.tok.call_id = cc->call_id;
	x.tok.model = m->name;
	x.tok.attempt = cc->attempt;
	x.tok.finish = "";
	if (cc->call->on_token)
		cc->call->on_token(cc->call->token_udata, LLM_TOKEN_START, "", 0, &x.tok);
	snprintf(url, sizeof(url), "%s/chat/completions", e->base_url);
	request_init(&hr, cc, e, url, headers, body, wire_stream, &alive);
	if (wire_stream) {
		int tap = cc->call->on_token || (cc->rq->stream && cc->rq->on_delta);
		rc = llm_sse_new(&x.sse, out, tap ? on_reply_delta : NULL, &x);
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
	/* only a caller that asked for a stream has seen part of the reply */
	ar->delivered = x.sse && cc->rq->stream ? llm_sse_delivered(x.sse) : 0;
	if (rc < 0) {
		transfer_failed(x.sse_rc < 0 ? &x : NULL, m, e, &hr, &resp, rc, ar);
		goto done;
	}
	if (resp.status < 200 || resp.status >= 300) {
		const buf *eb = x.sse ? &x.errbody : &resp.body;
		llm_wire_error_text(eb->data ? eb->data : "", eb->len, resp.content_type, text,
				    sizeof(text), &is_ctx);
		classify_status(cc, ar, text, is_ctx, m, e);
		goto done;
	}
	if (read_reply(&x, m, e, &resp, out, ar) < 0)
		goto done;
	snprintf(ar->outcome, sizeof(ar->outcome), "ok");
	if (!x.sse && cc->call->on_token && out->content && out->content_len)
		/* not streamed on the wire: the observer hears it whole */
		cc->call->on_token(cc->call->token_udata, LLM_TOKEN_TEXT, out->content,
				   out->content_len, &x.tok);
done:
	*latency_ms = (double)(util_mono_us() - t0) / 1000.0;
	if (cc->call->on_token) {
		x.tok.ok = ar->rc == 0;
		x.tok.finish = ar->rc == 0 ? llm_finish_name(out->finish) : "";
		cc->call->on_token(cc->call->token_udata, LLM_TOKEN_END, "", 0, &x.tok);
	}
	if (hc)
		client_put(cc->s, hc);
	llm_sse_free(x.sse);
	buf_free(&x.errbody);
	http_response_free(&resp);
}

/* Checks a reply that arrived against what was asked: structured output
 * against the schema (whole, at every level); tool calls' arguments (a
 * call whose arguments are not a JSON object is never handed back: sent
 * again in the conversation, it makes llama-server answer 500) and, when
 * tool_choice names a tool or is "required", the name called (llama-server
 * treats a named tool_choice as "auto", and "required" lets text come
 * first). On success out->json holds the structured value. Else the
 * problem in *ao and ERR_PARSE with the message. */
static int check_reply(call_ctx *cc, const llm_model *m, const llm_endpoint *e, int max_tokens,
		       llm_response *out, ask_out *ao)
{
	const llm_request *rq = cc->rq;
	const char *named = NULL;
	int required;

	ao->problem = PB_NONE;
	ao->detail[0] = ao->tool[0] = '\0';
	if (rq->json_schema) {
		char verr[600];
		json_t *j = content_json(out->content ? out->content : "", verr, sizeof(verr));
		if (j && llm_schema_check(rq->json_schema, j, verr, sizeof(verr)) < 0) {
			json_decref(j);
			j = NULL;
		}
		if (!j && out->finish == LLM_FINISH_LENGTH) {
			/* cut short: what is wrong with it says nothing */
			ao->problem = PB_TRUNCATED;
			snprintf(ao->detail, sizeof(ao->detail),
				 "the reply was cut off at the token limit (%d tokens) before its JSON "
				 "was complete", max_tokens);
			return err_set(ERR_PARSE, "model '%s' at endpoint '%s': %s", m->name, e->name,
				       ao->detail);
		}
		if (!j) {
			ao->problem = PB_INVALID;
			snprintf(ao->detail, sizeof(ao->detail), "%s", verr);
			return err_set(ERR_PARSE, "model '%s' at endpoint '%s': the reply does not match "
						  "the JSON schema: %s", m->name, e->name, verr);
		}
		out->json = j;
	}
	if (rq->n_tools == 0)
		return 0;
	if (rq->tool_choice && strcmp(rq->tool_choice, "auto") != 0 &&
	    strcmp(rq->tool_choice, "none") != 0 && strcmp(rq->tool_choice, "required") != 0)
		named = rq->tool_choice;
	required = rq->tool_choice && strcmp(rq->tool_choice, "required") == 0;
	for (size_t i = 0; i < out->n_tool_calls; i++) {
		const llm_tool_call *tc = &out->tool_calls[i];
		json_t *args = NULL;
		size_t k;

		snprintf(ao->tool, sizeof(ao->tool), "%s", tc->name ? tc->name : "");
		for (k = 0; k < rq->n_tools; k++)
			if (tc->name && strcmp(tc->name, rq->tools[k].name) == 0)
				break;
		if (k == rq->n_tools && (named || required)) {
			ao->problem = PB_TOOL_UNKNOWN;
			snprintf(ao->detail, sizeof(ao->detail), "it called '%.100s', which is not one of "
				 "the tools offered", ao->tool);
		} else if (named && strcmp(tc->name, named) != 0) {
			ao->problem = PB_TOOL_WRONG;
			snprintf(ao->detail, sizeof(ao->detail), "it called '%.100s' where '%.100s' was "
				 "asked for", ao->tool, named);
		} else if (llm_tool_call_args(tc, &args) < 0) {
			ao->problem = out->finish == LLM_FINISH_LENGTH ? PB_CALL_TRUNCATED : PB_BAD_ARGS;
			if (ao->problem == PB_CALL_TRUNCATED)
				snprintf(ao->detail, sizeof(ao->detail), "the reply was cut off at the token "
					 "limit (%d tokens) inside its call to '%.100s'", max_tokens,
					 ao->tool);
			else
				snprintf(ao->detail, sizeof(ao->detail), "the arguments of its call to "
					 "'%.100s' are not a JSON object", ao->tool);
			err_clear();
		}
		json_decref(args);
		if (ao->problem != PB_NONE)
			break;
	}
	if (ao->problem == PB_NONE && out->n_tool_calls == 0 && (named || required)) {
		snprintf(ao->tool, sizeof(ao->tool), "%s", named ? named : "");
		if (out->finish == LLM_FINISH_LENGTH) {
			ao->problem = PB_CALL_TRUNCATED;
			snprintf(ao->detail, sizeof(ao->detail), "the reply was cut off at the token limit "
				 "(%d tokens) before its tool call was complete", max_tokens);
		} else {
			ao->problem = PB_NO_CALL;
			snprintf(ao->detail, sizeof(ao->detail), "it holds no tool call where %s%s%s was "
				 "asked for", named ? "a call to '" : "a tool call",
				 named ? named : "", named ? "'" : "");
		}
	}
	if (ao->problem == PB_NONE)
		return 0;
	return err_set(ERR_PARSE, "model '%s' at endpoint '%s': %s", m->name, e->name, ao->detail);
}

/* Waits until endpoint e's server is up again after an attempt that got
 * no answer (or a stall, or a 5xx from a proxy): polls its /health every
 * HEALTH_POLL_MS until it answers, for at most its health_wait counted
 * from when the outage was first seen. Returns 1 when it was down and came
 * back (the next attempt costs no retry), 0 when it is up at once, or
 * ERR_HTTP (it stayed down) / ERR_CANCELLED with the message. */
static int wait_healthy(call_ctx *cc, const llm_model *m, const llm_endpoint *e,
			const char *const *hdrs)
{
	llm_service *s = cc->s;
	ep_rt *r = rt_of(s, cc->g, m->endpoint);
	int64_t wait_ms = e->health_wait_ms > 0 ? e->health_wait_ms : s->opt.health_wait_ms;
	int64_t since, now, seen = util_mono_ms();
	http_client *hc = NULL;
	char why[256], part[96];
	int h, rc = 0, was_down = 0;

	snprintf(part, sizeof(part), "llm.%s", e->name);
	rc = client_get(s, &hc);
	if (rc < 0)
		return rc;
	for (;;) {
		h = llm_server_health(hc, e->base_url, hdrs, HEALTH_TIMEOUT_MS, why, sizeof(why));
		now = util_mono_ms();
		pthread_mutex_lock(&r->mu);
		if (h == LLM_HEALTH_UP) {
			since = r->down_since;
			r->down_since = 0;
			if (since)
				r->probe_state = 0; /* a restarted server may have changed: ask again */
		} else {
			if (r->down_since == 0)
				r->down_since = seen; /* the outage began before the first look */
			since = r->down_since;
		}
		pthread_mutex_unlock(&r->mu);
		if (h == LLM_HEALTH_UP) {
			if (since || was_down) {
				log_info("llm", "endpoint %s is up again after %.1f s", e->name,
					 (double)(now - (since ? since : now)) / 1000.0);
				health_report(part, HEALTH_OK, "the server answers again");
			}
			rc = was_down || since ? 1 : 0;
			break;
		}
		was_down = 1;
		if (wait_ms <= 0 || now - since >= wait_ms) {
			health_report(part, HEALTH_DOWN, "the server has not been up for %lld s: %s",
				      (long long)((now - since) / 1000), why);
			rc = err_set(ERR_HTTP, "model '%s' at endpoint '%s': the server has not been up for "
					       "%lld s (its /health: %s); check that it runs, or raise "
					       "the endpoint's health_wait (ORCH_LLM_HEALTH_WAIT, now "
					       "%lld s)", m->name, e->name,
				     (long long)((now - since) / 1000), why,
				     (long long)(wait_ms / 1000));
			break;
		}
		health_report(part, HEALTH_DEGRADED, "waiting for the server (%s)", why);
		rc = sleep_cancellable(since + wait_ms - now < HEALTH_POLL_MS ? since + wait_ms - now
									      : HEALTH_POLL_MS,
				       cc->call->cancel);
		if (rc < 0)
			break;
	}
	client_put(s, hc);
	return rc;
}

/* The copy of rq->messages sent when the schema goes into the prompt: the
 * last user message with the instruction appended (or a user message with
 * it). *out_msgs and *out_text are owned by the caller. */
static int schema_in_prompt(const llm_request *rq, llm_message **out_msgs, size_t *out_n,
			    char **out_text)
{
	char *schema = json_dumps(rq->json_schema, JSON_COMPACT);
	llm_message *msgs = calloc(rq->n_messages + 1, sizeof(*msgs));
	size_t n = rq->n_messages;
	buf t;
	int rc;

	*out_msgs = NULL;
	*out_text = NULL;
	buf_init(&t, 0);
	if (!schema || !msgs) {
		free(schema);
		free(msgs);
		return err_set(ERR_NOMEM, "out of memory");
	}
	memcpy(msgs, rq->messages, rq->n_messages * sizeof(*msgs));
	if (n > 0 && strcmp(msgs[n - 1].role, "user") == 0 && msgs[n - 1].content)
		rc = buf_printf(&t, "%s\n\n", msgs[n - 1].content);
	else
		rc = 0;
	if (rc == 0)
		rc = buf_printf(&t, "Reply with only one JSON value, nothing before or after it, "
				    "that matches this JSON schema:\n%s", schema);
	free(schema);
	if (rc < 0) {
		free(msgs);
		buf_free(&t);
		return rc;
	}
	if (!(n > 0 && strcmp(msgs[n - 1].role, "user") == 0 && msgs[n - 1].content))
		n++;
	*out_text = buf_steal(&t);
	msgs[n - 1].role = "user";
	msgs[n - 1].content = *out_text;
	msgs[n - 1].tool_calls = NULL;
	msgs[n - 1].n_tool_calls = 0;
	msgs[n - 1].tool_call_id = NULL;
	*out_msgs = msgs;
	*out_n = n;
	return 0;
}

/* One ask of one model (ask_model), its steps' shared state. */
typedef struct ask_ctx {
	call_ctx *cc;
	const llm_model *m;
	const llm_endpoint *e;
	ep_rt *rt;
	int max_tokens;
	const char *headers[8]; /* of the request */
	const char *hhdrs[3];   /* of /health */
	char idh[3][200];
	llm_request wrq;        /* the request as sent */
	llm_message *pmsgs;     /* the messages with the schema in the prompt (owned) */
	char *ptext;
	json_t *sent_schema;    /* the schema as the server takes it (owned) */
	int64_t res, est_in;    /* the budget reservation (0: none left to settle) */
	int wire_stream;
	buf body, key, auth;
	char errmsg[1024];
} ask_ctx;

/* An ask that ends before (another) attempt with rc: a ledger row with
 * `outcome` settles the reservation; the message stays. Returns rc. */
static int ask_stop(ask_ctx *a, int rc, const char *outcome)
{
	snprintf(a->errmsg, sizeof(a->errmsg), "%s", err_last());
	a->cc->attempt++;
	write_row(a->cc, a->m, a->e, NULL, 0, 0, 0, outcome, a->errmsg, 0, a->res, 1);
	a->res = 0;
	return err_set(rc, "%s", a->errmsg);
}

/* Reserves the worst case against the budgets (the configuration's
 * default budgets win over the environment's); ERR_BUDGET, with a ledger
 * row, when a budget refuses. */
static int ask_reserve(ask_ctx *a, llm_response *out)
{
	call_ctx *cc = a->cc;
	llm_service *s = cc->s;
	double worst = ((double)a->est_in * a->m->price_in +
			(double)a->max_tokens * a->m->price_out) / 1e6;
	llm_budget_defaults bd;
	pg_conn *c = NULL;
	int rc;

	llm_registry_budgets(cc->g->reg, &bd);
	if (!s->opt.pool || worst <= 0 || (!cc->call->project && !cc->call->user))
		return 0;
	rc = pg_pool_acquire(s->opt.pool, 10000, &c);
	if (rc == 0)
		rc = llm_ledger_reserve(c, cc->call->project, cc->call->user, worst,
					s->opt.reserve_ttl_ms,
					bd.project >= 0 ? bd.project : s->opt.project_budget,
					bd.user >= 0 ? bd.user : s->opt.user_budget,
					bd.period[0] ? bd.period : s->opt.budget_period, &a->res,
					&out->budget);
	pg_pool_release(s->opt.pool, c);
	if (rc < 0) {
		snprintf(a->errmsg, sizeof(a->errmsg), "%s", err_last());
		if (rc == ERR_BUDGET) {
			cc->attempt++;
			write_row(cc, a->m, a->e, NULL, 0, 0, 0, "budget", a->errmsg, 0, 0, 0);
		}
		err_set(rc, "%s", a->errmsg);
	}
	return rc;
}

/* The headers and the body: streamed when the caller or the endpoint wants
 * it; the schema as the server can take it. */
static int ask_request(ask_ctx *a, const llm_message *extra, size_t n_extra)
{
	call_ctx *cc = a->cc;
	llm_wire_opts wo = {a->m->id, a->max_tokens, a->e->max_tokens_field, a->e->stream_usage,
			    0, 0, &a->m->quirks, &a->m->params};
	int rc = 0, nh = 1;

	a->wire_stream = cc->rq->stream || a->e->stream_replies;
	a->wrq.stream = a->wire_stream;
	pthread_mutex_lock(&a->rt->mu);
	wo.progress = a->wire_stream && a->rt->info.llamacpp;
	pthread_mutex_unlock(&a->rt->mu);
	if (cc->rq->json_schema && cc->schema_level == LLM_SCHEMA_NONE) {
		a->wrq.json_schema = NULL;
		rc = schema_in_prompt(cc->rq, &a->pmsgs, &a->wrq.n_messages, &a->ptext);
		a->wrq.messages = a->pmsgs;
	} else if (cc->rq->json_schema) {
		rc = llm_schema_for_server(cc->rq->json_schema, cc->schema_level, &a->sent_schema);
		a->wrq.json_schema = a->sent_schema;
		wo.loose_schema = cc->schema_level == LLM_SCHEMA_SIMPLE;
	}
	if (rc == 0)
		rc = llm_registry_key(cc->g->reg, a->m->endpoint, &a->key);
	if (rc == 0 && a->key.len > 0) {
		rc = buf_printf(&a->auth, "Authorization: Bearer %s", a->key.data);
		a->headers[nh++] = a->auth.data;
		a->hhdrs[1] = a->auth.data;
	}
	if (rc == 0 && cc->s->opt.identity_headers) {
		/* who asks, for the eval's record/replay server (no CR or LF gets in) */
		const char *const v[3] = {cc->call->project, cc->call->node, cc->call->subject};
		const char *const name[3] = {"Project", "Node", "Subject"};
		for (int i = 0; i < 3; i++) {
			snprintf(a->idh[i], sizeof(a->idh[i]), "X-Orch-%s: %.160s", name[i],
				 v[i] ? v[i] : "");
			a->idh[i][strcspn(a->idh[i], "\r\n")] = '\0';
			a->headers[nh++] = a->idh[i];
		}
	}
	if (rc == 0) {
		a->headers[nh++] = a->wire_stream ? "Accept: text/event-stream"
						  : "Accept: application/json";
		rc = llm_wire_body(&a->body, &a->wrq, extra, n_extra, &wo);
	}
	if (rc < 0)
		return ask_stop(a, rc, rc == ERR_AUTH ? "auth" : "invalid");
	redact_buf(&a->body);
	return 0;
}

/* Whether attempt `try` (ar) is the last, after the endpoint's retry
 * rules: its retries, its longest wait, an outage waited out (which costs
 * no retry: *waited, one of *free_left), and the whole ask's timeout since
 * t_first. Updates ar and the message when it gives up. */
static int attempt_last(ask_ctx *a, attempt_result *ar, int try, int64_t t_first, int *waited,
			int *free_left)
{
	const llm_endpoint *e = a->e;
	int last = ar->rc == 0 || !ar->retryable || try >= e->max_retries;

	*waited = 0;
	if (!last && ar->retry_after_ms > e->max_retry_wait_ms) {
		last = 1;
		ar->rc = err_set(ar->rc, "%s; the endpoint asks to wait %lld s, longer than its "
					 "max_retry_wait", a->errmsg,
				 (long long)(ar->retry_after_ms / 1000));
		snprintf(a->errmsg, sizeof(a->errmsg), "%s", err_last());
	}
	/* no answer: wait for the server (a restart, a model loading) rather than spend
	 * the retries at once; an outage costs no retry */
	if (ar->outage && ar->retryable && (*free_left > 0 || !last)) {
		int hw = wait_healthy(a->cc, a->m, e, a->hhdrs);
		if (hw == 1 && *free_left > 0) {
			(*free_left)--;
			*waited = 1;
			last = 0;
		} else if (hw < 0) {
			char why[700];
			snprintf(why, sizeof(why), "%s", err_last());
			last = 1;
			ar->rc = err_set(hw, "%s (the last attempt: %s)", why, a->errmsg);
			snprintf(a->errmsg, sizeof(a->errmsg), "%s", err_last());
		}
	}
	/* the whole ask is bounded: no new attempt once the endpoint's timeout has
	 * passed since the first */
	if (!last && !*waited && util_mono_ms() - t_first >= e->timeout_ms) {
		last = 1;
		ar->rc = err_set(ar->rc, "%s; no more retries: %lld s have passed since the first "
					 "attempt (the endpoint's timeout)", a->errmsg,
				 (long long)((util_mono_ms() - t_first) / 1000));
		snprintf(a->errmsg, sizeof(a->errmsg), "%s", err_last());
	}
	return last;
}

/* One attempt and its reply checked (check_reply); what it cost, into
 * *cost (the provider's usage, else an estimate: the provider charges
 * anyway). */
static void attempt_one(ask_ctx *a, llm_response *out, ask_out *ao, attempt_result *ar,
			double *latency, double *cost)
{
	const llm_model *m = a->m;

	llm_response_reset_reply(out);
	a->cc->attempt++;
	out->attempts++;
	do_attempt(a->cc, m, a->e, a->headers, &a->body, a->wire_stream, out, ar, latency);
	out->http_status = ar->status;
	if (ar->rc == 0) {
		ar->rc = check_reply(a->cc, m, a->e, a->max_tokens, out, ao);
		if (ar->rc < 0)
			snprintf(ar->outcome, sizeof(ar->outcome), "%s",
				 ao->problem == PB_TRUNCATED || ao->problem == PB_CALL_TRUNCATED
					 ? "truncated"
					 : "invalid_output");
	}
	if (ar->schema_refused)
		ao->problem = PB_SCHEMA_REFUSED;
	if (ar->rc < 0)
		snprintf(a->errmsg, sizeof(a->errmsg), "%s", err_last());
	if (ar->status >= 200 && ar->status < 300 && (out->tokens_in == 0 && out->tokens_out == 0)) {
		out->usage_estimated = 1;
		out->tokens_in = a->est_in;
		estimate_out(out);
	}
	*cost = ((double)out->tokens_in * m->price_in + (double)out->tokens_out * m->price_out) / 1e6;
	out->cost_usd += *cost;
	if (ar->rc == 0)
		out->latency_ms = *latency;
}

/* The attempts, with the retries of the endpoint; a ledger row each. */
static int ask_attempts(ask_ctx *a, llm_response *out, ask_out *ao, double queue_ms)
{
	const llm_model *m = a->m;
	const llm_endpoint *e = a->e;
	int64_t t_first = util_mono_ms();
	int free_left = FREE_RETRIES, rc = 0;

	for (int try = 0;; try++) {
		attempt_result ar;
		double cost, latency = 0;
		int last, waited;
		int64_t wait;

		attempt_one(a, out, ao, &ar, &latency, &cost);
		last = attempt_last(a, &ar, try, t_first, &waited, &free_left);
		write_row(a->cc, m, e, out, latency, try == 0 ? queue_ms : 0, ar.status, ar.outcome,
			  ar.rc < 0 ? a->errmsg : NULL, cost, last ? a->res : 0, 1);
		if (last) {
			rc = ar.rc;
			if (rc < 0 && try > 0 && ar.retryable)
				err_set(rc, "%s (gave up after %d attempts)", a->errmsg, try + 1);
			else if (rc < 0)
				err_set(rc, "%s", a->errmsg);
			a->res = 0;
			return rc;
		}
		if (waited) {
			log_warn("llm", "model %s at endpoint %s: %s; the server is back, trying again",
				 m->name, e->name, ar.outcome);
			try--;
			continue;
		}
		wait = ar.retry_after_ms >= 0 ? ar.retry_after_ms
					      : util_backoff_ms(try, e->retry_base_ms, e->retry_max_ms);
		log_warn("llm", "model %s at endpoint %s: %s; retry %d of %d in %lld ms", m->name,
			 e->name, ar.outcome, try + 1, e->max_retries, (long long)wait);
		rc = sleep_cancellable(wait, a->cc->call->cancel);
		if (rc < 0)
			return ask_stop(a, rc, "cancelled");
	}
}

/* Asks one model, with the retries of its endpoint: budget reservation,
 * slot, attempts (each reply checked by check_reply), waits for the server
 * during an outage, ledger rows. The request goes at cc->schema_level.
 * *ao says what was wrong with the last reply that arrived (rc ERR_PARSE),
 * or PB_SCHEMA_REFUSED when the server refused the schema. */
static int ask_model(call_ctx *cc, int mi, int max_tokens, const llm_message *extra,
		     size_t n_extra, llm_response *out, ask_out *ao)
{
	llm_service *s = cc->s;
	ask_ctx a;
	llm_ticket ticket;
	int have_slot = 0, rc, down;

	memset(&a, 0, sizeof(a));
	memset(ao, 0, sizeof(*ao));
	a.cc = cc;
	a.m = llm_registry_model(cc->g->reg, mi);
	a.e = llm_registry_endpoint(cc->g->reg, a.m->endpoint);
	a.rt = rt_of(s, cc->g, a.m->endpoint);
	a.max_tokens = max_tokens;
	a.headers[0] = "Content-Type: application/json";
	a.hhdrs[0] = "Accept: application/json";
	a.wrq = *cc->rq;
	a.est_in = cc->est_in;
	buf_init(&a.body, 0);
	buf_init(&a.key, 8192);
	buf_init(&a.auth, 8300);
	snprintf(out->model, sizeof(out->model), "%s", a.m->name);
	snprintf(out->endpoint, sizeof(out->endpoint), "%s", a.e->name);
	for (size_t i = 0; i < n_extra; i++)
		a.est_in += 4 + (int64_t)(extra[i].content ? strlen(extra[i].content) * 10 / 27 : 0);

	rc = ask_reserve(&a, out);
	if (rc == 0)
		rc = ask_request(&a, extra, n_extra);
	if (rc < 0)
		goto done;
	rc = llm_sched_acquire(s->sched, cc->g->rt[a.m->endpoint], cc->call->priority, cc->owner,
			       cc->call->cancel, s->opt.queue_timeout_ms, &ticket);
	if (rc < 0) {
		ask_stop(&a, rc, rc == ERR_CANCELLED ? "cancelled" : "queue_timeout");
		goto done;
	}
	have_slot = 1;
	out->queue_ms += ticket.wait_ms;

	/* a server known to be down: wait for it before sending (or give up at once when
	 * it has been down longer than its health_wait) */
	pthread_mutex_lock(&a.rt->mu);
	down = a.rt->down_since != 0;
	pthread_mutex_unlock(&a.rt->mu);
	if (down)
		rc = wait_healthy(cc, a.m, a.e, a.hhdrs);
	if (rc < 0) {
		ask_stop(&a, rc, rc == ERR_CANCELLED ? "cancelled" : "down");
		goto done;
	}
	rc = ask_attempts(&a, out, ao, ticket.wait_ms);
done:
	if (have_slot)
		llm_sched_release(s->sched, &ticket);
	if (a.res) /* a reservation not settled above (refused before sending) */
		write_row(cc, a.m, a.e, NULL, 0, 0, 0, "not_sent", NULL, 0, a.res, 1);
	json_decref(a.sent_schema);
	free(a.pmsgs);
	free(a.ptext);
	buf_free(&a.body);
	buf_free_wipe(&a.key);
	buf_free_wipe(&a.auth);
	return rc;
}

/* The prompt tokens of the request for model m: the server's own count
 * when it has a tokenizer (llama.cpp's /tokenize), else the estimate. */
static int64_t count_prompt(call_ctx *cc, const llm_model *m)
{
	llm_service *s = cc->s;
	const llm_endpoint *e = llm_registry_endpoint(cc->g->reg, m->endpoint);
	ep_rt *rt = rt_of(s, cc->g, m->endpoint);
	http_client *hc = NULL;
	const char *hdrs[3];
	int64_t n = 0;
	buf text, auth;
	int llama, rc;

	pthread_mutex_lock(&rt->mu);
	llama = rt->info.llamacpp && rt->down_since == 0;
	pthread_mutex_unlock(&rt->mu);
	if (!llama)
		return cc->est_fallback;
	buf_init(&text, 0);
	buf_init(&auth, 8300);
	rc = llm_wire_prompt_text(cc->rq, 0, &text);
	if (rc == 0)
		rc = client_get(s, &hc);
	if (rc == 0) {
		server_headers(cc->g, m->endpoint, &auth, hdrs);
		rc = llm_server_tokenize(hc, e->base_url, hdrs, buf_cstr(&text), text.len,
					 PROBE_TIMEOUT_MS, &n);
		client_put(s, hc);
	}
	buf_free(&text);
	buf_free_wipe(&auth);
	if (rc < 0) {
		log_debug("llm", "endpoint %s: counting the prompt's tokens: %s; estimating", e->name,
			  err_last());
		err_clear();
		return cc->est_fallback;
	}
	return n + llm_wire_prompt_overhead(cc->rq);
}

/* The messages that ask model m again after `ao`, into reask[2] (borrowed
 * from `bad` and `note`, which the caller frees); their count. A reply cut
 * at the token limit, or holding a tool call that is not valid, is never
 * sent back: only what was wrong. A reply that did not match the schema is
 * sent back when it fits the context with the reply to come. *max_tokens
 * may grow (a truncated reply) within the context. */
static size_t build_reask(call_ctx *cc, const llm_response *out, const ask_out *ao,
			  int64_t context, int *max_tokens, llm_message *reask, char **bad,
			  char **note)
{
	buf t;
	size_t n = 0;
	int64_t reply_tokens = out->content ? (int64_t)(strlen(out->content) * 10 / 27) + 8 : 8;

	*bad = NULL;
	*note = NULL;
	buf_init(&t, 0);
	memset(reask, 0, 2 * sizeof(*reask));
	switch (ao->problem) {
	case PB_INVALID:
		if (cc->est_in + reply_tokens + 64 + *max_tokens <= context) {
			*bad = strdup(out->content ? out->content : "");
			if (*bad) {
				reask[n].role = "assistant";
				reask[n++].content = *bad;
			}
			buf_printf(&t, "Your reply did not match the required JSON schema: %s. Reply "
				       "again with only the corrected JSON, nothing else.", ao->detail);
		} else {
			buf_printf(&t, "Your previous reply (too long to repeat here) did not match the "
				       "required JSON schema: %s. Reply again with only the corrected "
				       "JSON, nothing else, and keep it short.", ao->detail);
		}
		break;
	case PB_TRUNCATED: {
		int64_t room = context - cc->est_in - 80;
		buf_printf(&t, "Your previous reply was cut off at the token limit (%d tokens) before "
			       "the JSON was complete, so it was not used. Reply again with the whole "
			       "JSON, shorter: brief strings and fewer items.", *max_tokens);
		if (room > *max_tokens)
			*max_tokens = (int)(room < 2 * (int64_t)*max_tokens ? room : 2 * *max_tokens);
		break;
	}
	case PB_CALL_TRUNCATED:
		buf_printf(&t, "Your previous reply was cut off at the token limit (%d tokens) %s%s%s, "
			       "so no call was made. Make the call again, with shorter arguments.",
			   *max_tokens, ao->tool[0] ? "inside your call to '" : "before the tool call was complete",
			   ao->tool, ao->tool[0] ? "'" : "");
		break;
	case PB_TOOL_UNKNOWN:
	case PB_TOOL_WRONG:
	case PB_NO_CALL:
	case PB_BAD_ARGS: {
		buf_printf(&t, "Your previous reply was not used: %s. ", ao->detail);
		if (cc->rq->tool_choice && strcmp(cc->rq->tool_choice, "auto") != 0 &&
		    strcmp(cc->rq->tool_choice, "required") != 0 &&
		    strcmp(cc->rq->tool_choice, "none") != 0)
			buf_printf(&t, "Call the tool '%s' now, with a JSON object as its arguments.",
				   cc->rq->tool_choice);
		else {
			buf_puts(&t, "Call one of the tools (");
			for (size_t i = 0; i < cc->rq->n_tools; i++)
				buf_printf(&t, "%s'%s'", i ? ", " : "", cc->rq->tools[i].name);
			buf_puts(&t, ") with a JSON object as its arguments.");
		}
		break;
	}
	default:
		break;
	}
	*note = buf_steal(&t);
	if (*note && **note) {
		reask[n].role = "user";
		reask[n++].content = *note;
	}
	return n;
}

/* A call's context: its id, role and owner (who waits in the scheduler's
 * queue: the caller's owner, else its thread, project or worker). */
static void call_init(call_ctx *cc, llm_service *s, llm_gen *g, const llm_call *call,
		      const llm_request *rq)
{
	memset(cc, 0, sizeof(*cc));
	cc->s = s;
	cc->g = g;
	cc->call = call;
	cc->rq = rq;
	cc->role = call->role ? call->role : "default";
	util_rand_hex(cc->call_id, 16);
	if (call->owner)
		snprintf(cc->owner, sizeof(cc->owner), "%s", call->owner);
	else if (call->thread_id)
		snprintf(cc->owner, sizeof(cc->owner), "thread:%lld", (long long)call->thread_id);
	else if (call->project)
		snprintf(cc->owner, sizeof(cc->owner), "project:%s", call->project);
	else if (call->worker)
		snprintf(cc->owner, sizeof(cc->owner), "worker:%s", call->worker);
}

/* llm_chat under configuration g. */
static int chat_gen(llm_service *s, llm_gen *g, const llm_call *call, const llm_request *rq,
		    llm_response *out)
{
	static const llm_call none = {0};
	const int *models;
	int n, rc, last_rc = 0, tried = 0;
	char last_msg[1024] = "";
	call_ctx cc;
	int64_t biggest = 0;
	uint64_t shash = 0;

	llm_response_init(out);
	call_init(&cc, s, g, call ? call : &none, rq);
	call = cc.call;
	snprintf(out->call_id, sizeof(out->call_id), "%s", cc.call_id);
	if (!rq || rq->n_messages == 0)
		return err_set(ERR_INVALID, "llm_chat: the request has no messages");
	if (rq->stream == 0 && rq->on_delta)
		return err_set(ERR_INVALID, "llm_chat: on_delta is set but stream is not");
	rc = llm_registry_route(g->reg, cc.role, &models, &n);
	if (rc < 0)
		return rc;
	cc.est_fallback = llm_wire_estimate_tokens(rq);
	out->context_needed = cc.est_fallback;
	if (rq->json_schema)
		shash = schema_hash(rq->json_schema);

	for (int k = 0; k < n; k++) {
		const llm_model *m = llm_registry_model(g->reg, models[k]);
		const llm_endpoint *e = llm_registry_endpoint(g->reg, m->endpoint);
		int max_tokens = rq->max_tokens > 0 ? rq->max_tokens : m->max_output;
		int64_t context;
		int reasks = 0;
		ask_out ao;
		llm_message reask[2];
		size_t n_reask = 0;
		char *bad = NULL, *note = NULL;

		ensure_probed(s, g, m->endpoint);
		context = model_context(s, g, m);
		cc.est_in = count_prompt(&cc, m);
		out->context_needed = cc.est_in;
		if (context > biggest)
			biggest = context;
		if (cc.est_in + 16 > context) {
			snprintf(last_msg, sizeof(last_msg),
				 "the prompt (about %lld tokens) does not fit model '%s' (context %lld "
				 "tokens): trim or summarise the conversation",
				 (long long)cc.est_in, m->name, (long long)context);
			last_rc = ERR_CONTEXT;
			cc.attempt++;
			write_row(&cc, m, e, NULL, 0, 0, 0, "context", last_msg, 0, 0, 0);
			continue;
		}
		if (cc.est_in + max_tokens > context)
			max_tokens = (int)(context - cc.est_in);
		if (k > 0) {
			out->escalations++;
			log_warn("llm", "role %s: escalating from model %s to %s after: %s", cc.role,
				 llm_registry_model(g->reg, models[k - 1])->name, m->name, last_msg);
		}
		tried++;
		cc.schema_level = rq->json_schema ? schema_level_get(s, g->rt[m->endpoint], shash)
						  : LLM_SCHEMA_FULL;
		for (;;) {
			rc = ask_model(&cc, models[k], max_tokens, reask, n_reask, out, &ao);
			if (rc == 0 || rc == ERR_BUDGET || rc == ERR_CANCELLED || rc == ERR_INVALID ||
			    rc == ERR_NOMEM)
				break;
			if (ao.problem == PB_SCHEMA_REFUSED && cc.schema_level < LLM_SCHEMA_NONE) {
				/* the server cannot take the schema: a simpler one, then none */
				log_warn("llm", "endpoint %s refused the JSON schema '%s' (%s); sending it "
						"%s from now on", e->name,
					 rq->schema_name ? rq->schema_name : "reply", err_last(),
					 cc.schema_level + 1 == LLM_SCHEMA_SIMPLE
						 ? "simplified (our own check stays whole)"
						 : "in the prompt instead (our own check stays whole)");
				cc.schema_level++;
				schema_level_set(s, g->rt[m->endpoint], shash, cc.schema_level);
				continue;
			}
			if (rc != ERR_PARSE || ao.problem == PB_NONE ||
			    ao.problem == PB_SCHEMA_REFUSED || reasks >= 1)
				break;
			/* once more on the same model, told what was wrong */
			reasks++;
			free(bad);
			free(note);
			n_reask = build_reask(&cc, out, &ao, context, &max_tokens, reask, &bad, &note);
			log_info("llm", "model %s at endpoint %s: asking again: %s", m->name, e->name,
				 ao.detail);
		}
		free(bad);
		free(note);
		if (rc == 0)
			return 0;
		last_rc = rc;
		if (rc == ERR_PARSE && reasks > 0 &&
		    (ao.problem == PB_TRUNCATED || ao.problem == PB_CALL_TRUNCATED))
			snprintf(last_msg, sizeof(last_msg),
				 "%s (asked twice; raise the model's max_output, LLM_MAX_TOKENS without a "
				 "models file, or ask for less)", err_last());
		else if (rc == ERR_PARSE && reasks > 0)
			snprintf(last_msg, sizeof(last_msg), "%s (asked twice; a stronger model may "
							     "do: add one to the role)", err_last());
		else
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

int llm_chat(llm_service *s, const llm_call *call, const llm_request *rq, llm_response *out)
{
	llm_gen *g = gen_get(s);
	int rc = chat_gen(s, g, call, rq, out);

	gen_put(s, g);
	return rc;
}
