#include "llm/registry.h"
#include "core/config.h"
#include "core/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENDPOINTS 64
#define MAX_MODELS 256
#define MAX_ROLES 64
#define MAX_ROLE_MODELS 16

typedef struct role {
	char name[64];
	int models[MAX_ROLE_MODELS];
	int n;
} role;

struct llm_registry {
	char origin[256];
	int n_ep, n_model, n_role;
	llm_endpoint ep[MAX_ENDPOINTS];
	llm_model model[MAX_MODELS];
	role roles[MAX_ROLES];
	int lookahead, starvation;
	llm_budget_defaults budgets;
	int ident[MAX_MODELS];   /* ident[i] == i: one-model routes point here */
	pthread_mutex_t mu;      /* guards the cached secret keys */
	buf secret_key[MAX_ENDPOINTS];
};

typedef struct resolver {
	llm_secret_fn fn;
	void *udata;
} resolver;

static pthread_mutex_t g_res_mu = PTHREAD_MUTEX_INITIALIZER;
static resolver g_res;

void llm_set_secret_resolver(llm_secret_fn fn, void *udata)
{
	pthread_mutex_lock(&g_res_mu);
	g_res.fn = fn;
	g_res.udata = udata;
	pthread_mutex_unlock(&g_res_mu);
}

static int reg_alloc(llm_registry **out, const char *origin)
{
	llm_registry *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(r->origin, sizeof(r->origin), "%s", origin);
	r->lookahead = 64;
	r->starvation = 16;
	r->budgets.project = -1;
	r->budgets.user = -1;
	pthread_mutex_init(&r->mu, NULL);
	for (int i = 0; i < MAX_ENDPOINTS; i++)
		buf_init(&r->secret_key[i], 8192);
	for (int i = 0; i < MAX_MODELS; i++)
		r->ident[i] = i;
	*out = r;
	return 0;
}

void llm_registry_free(llm_registry *r)
{
	if (!r)
		return;
	for (int i = 0; i < MAX_ENDPOINTS; i++)
		buf_free_wipe(&r->secret_key[i]);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static void endpoint_defaults(llm_endpoint *e)
{
	e->slots = 4;
	e->timeout_ms = 600000;
	e->connect_timeout_ms = 10000;
	e->max_retries = 3;
	e->retry_base_ms = 500;
	e->retry_max_ms = 20000;
	e->max_retry_wait_ms = 120000;
	e->stream_usage = 1;
	e->stream_replies = 1;
	snprintf(e->max_tokens_field, sizeof(e->max_tokens_field), "max_tokens");
}

/* Checks and normalises a base URL in place: http(s)://..., no trailing
 * slash, no /chat/completions. */
static int fix_base_url(char *u, const char *where)
{
	size_t n;
	const char *suffix = "/chat/completions", *host;

	if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
		return err_set(ERR_INVALID,
			       "%s: base_url must start with http:// or https:// "
			       "(e.g. http://127.0.0.1:8080/v1)", where);
	n = strlen(u);
	if (n > strlen(suffix) && strcmp(u + n - strlen(suffix), suffix) == 0) {
		n -= strlen(suffix);
		u[n] = '\0';
	}
	while (n > 0 && u[n - 1] == '/')
		u[--n] = '\0';
	/* a host after the scheme ("http://" alone named none, and lost its "//") */
	host = strstr(u, "://");
	if (!host || !host[3] || host[3] == '/')
		return err_set(ERR_INVALID,
			       "%s: base_url names no host (e.g. http://127.0.0.1:8080/v1)", where);
	return 0;
}

/* --- parsing the file --- */

static int check_keys(json_t *obj, const char *where, const char *const *allowed)
{
	const char *k;
	json_t *v;
	char list[512];
	size_t used = 0;

	json_object_foreach(obj, k, v) {
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, k) == 0)
				ok = 1;
		if (ok)
			continue;
		list[0] = '\0';
		used = 0;
		for (const char *const *a = allowed; *a; a++) {
			int n = snprintf(list + used, sizeof(list) - used, "%s%s",
					 a == allowed ? "" : ", ", *a);
			if (n < 0 || (size_t)n >= sizeof(list) - used)
				break;
			used += (size_t)n;
		}
		return err_set(ERR_INVALID, "%s: unknown key '%s' (known keys: %s)", where, k, list);
	}
	return 0;
}

static int get_str(json_t *obj, const char *key, const char *where, char *out, size_t cap,
		   int required)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (required)
			return err_set(ERR_INVALID, "%s: '%s' is required", where, key);
		return 0;
	}
	if (!json_is_string(v))
		return err_set(ERR_INVALID, "%s: '%s' must be a string", where, key);
	if (json_string_length(v) >= cap)
		return err_set(ERR_INVALID, "%s: '%s' is longer than %zu characters", where, key,
			       cap - 1);
	snprintf(out, cap, "%s", json_string_value(v));
	return 0;
}

static int get_int(json_t *obj, const char *key, const char *where, int64_t min, int64_t max,
		   int64_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return err_set(ERR_INVALID, "%s: '%s' must be an integer between %lld and %lld",
			       where, key, (long long)min, (long long)max);
	*out = json_integer_value(v);
	return 0;
}

static int get_num(json_t *obj, const char *key, const char *where, double *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e6)
		return err_set(ERR_INVALID, "%s: '%s' must be a non-negative number (USD per 1M "
					    "tokens)", where, key);
	*out = json_number_value(v);
	return 0;
}

/* A duration: "30s", "10m", "500ms", or a number of seconds. */
static int get_dur(json_t *obj, const char *key, const char *where, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	int64_t ms;

	if (!v || json_is_null(v))
		return 0;
	/* a number of seconds up to a year (more would not fit once in ms) */
	if (json_is_number(v) && json_number_value(v) >= 0 &&
	    json_number_value(v) <= 365.0 * 86400) {
		*out = (int64_t)(json_number_value(v) * 1000.0);
		return 0;
	}
	if (json_is_string(v) && cfg_parse_duration_ms(json_string_value(v), &ms) == 0) {
		*out = ms;
		return 0;
	}
	return err_set(ERR_INVALID, "%s: '%s' must be a duration such as \"30s\", \"10m\" or a "
				    "number of seconds (at most a year)", where, key);
}

static int get_bool(json_t *obj, const char *key, const char *where, int *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return err_set(ERR_INVALID, "%s: '%s' must be true or false", where, key);
	*out = json_is_true(v);
	return 0;
}

static int find_endpoint(const llm_registry *r, const char *name)
{
	for (int i = 0; i < r->n_ep; i++)
		if (strcmp(r->ep[i].name, name) == 0)
			return i;
	return -1;
}

static int find_model(const llm_registry *r, const char *name)
{
	for (int i = 0; i < r->n_model; i++)
		if (strcmp(r->model[i].name, name) == 0)
			return i;
	return -1;
}

/* An endpoint's keys read by get_str, get_dur and get_bool, into the
 * fields at these offsets. */
static const struct {
	const char *key;
	size_t off, cap;
	int required;
} EP_STRS[] = {
	{"base_url", offsetof(llm_endpoint, base_url), sizeof(((llm_endpoint *)0)->base_url), 1},
	{"api_key_env", offsetof(llm_endpoint, key_env), sizeof(((llm_endpoint *)0)->key_env), 0},
	{"api_key_secret", offsetof(llm_endpoint, key_secret),
	 sizeof(((llm_endpoint *)0)->key_secret), 0},
	{"max_tokens_field", offsetof(llm_endpoint, max_tokens_field),
	 sizeof(((llm_endpoint *)0)->max_tokens_field), 0},
};
static const struct {
	const char *key;
	size_t off;
} EP_DURS[] = {
	{"timeout", offsetof(llm_endpoint, timeout_ms)},
	{"connect_timeout", offsetof(llm_endpoint, connect_timeout_ms)},
	{"idle_timeout", offsetof(llm_endpoint, idle_timeout_ms)},
	{"retry_base", offsetof(llm_endpoint, retry_base_ms)},
	{"retry_max", offsetof(llm_endpoint, retry_max_ms)},
	{"max_retry_wait", offsetof(llm_endpoint, max_retry_wait_ms)},
	{"health_wait", offsetof(llm_endpoint, health_wait_ms)},
}, EP_BOOLS[] = {
	{"stream_usage", offsetof(llm_endpoint, stream_usage)},
	{"stream_replies", offsetof(llm_endpoint, stream_replies)},
	{"local", offsetof(llm_endpoint, local)},
};

/* Reads the string, duration and boolean keys of endpoint object o into e
 * (in that order, base_url checked right after it is read). */
static int endpoint_fields(llm_endpoint *e, json_t *o, const char *where)
{
	char *base = (char *)e;
	int rc = 0;

	for (size_t i = 0; rc >= 0 && i < sizeof(EP_STRS) / sizeof(EP_STRS[0]); i++) {
		rc = get_str(o, EP_STRS[i].key, where, base + EP_STRS[i].off, EP_STRS[i].cap,
			     EP_STRS[i].required);
		if (rc >= 0 && i == 0)
			rc = fix_base_url(e->base_url, where);
	}
	for (size_t i = 0; rc >= 0 && i < sizeof(EP_DURS) / sizeof(EP_DURS[0]); i++)
		rc = get_dur(o, EP_DURS[i].key, where, (int64_t *)(void *)(base + EP_DURS[i].off));
	for (size_t i = 0; rc >= 0 && i < sizeof(EP_BOOLS) / sizeof(EP_BOOLS[0]); i++)
		rc = get_bool(o, EP_BOOLS[i].key, where, (int *)(void *)(base + EP_BOOLS[i].off));
	return rc;
}

static int parse_endpoint(llm_registry *r, const char *name, json_t *o, const char *origin)
{
	static const char *const keys[] = {"base_url", "api_key_env", "api_key_secret", "slots",
					   "timeout", "connect_timeout", "idle_timeout", "max_retries",
					   "retry_base", "retry_max", "max_retry_wait",
					   "stream_usage", "max_tokens_field", "local", "health_wait",
					   "stream_replies", NULL};
	char where[256];
	llm_endpoint *e;
	int64_t v;
	int rc;

	snprintf(where, sizeof(where), "%s: endpoints.%s", origin, name);
	if (r->n_ep >= MAX_ENDPOINTS)
		return err_set(ERR_INVALID, "%s: more than %d endpoints", origin, MAX_ENDPOINTS);
	if (strlen(name) >= sizeof(e->name) || !*name)
		return err_set(ERR_INVALID, "%s: endpoint names are 1 to 63 characters", where);
	if (!json_is_object(o))
		return err_set(ERR_INVALID, "%s must be an object", where);
	rc = check_keys(o, where, keys);
	if (rc < 0)
		return rc;
	e = &r->ep[r->n_ep];
	memset(e, 0, sizeof(*e));
	endpoint_defaults(e);
	snprintf(e->name, sizeof(e->name), "%s", name);
	rc = endpoint_fields(e, o, where);
	if (rc < 0)
		return rc;
	if (e->key_env[0] && e->key_secret[0])
		return err_set(ERR_INVALID, "%s: give api_key_env or api_key_secret, not both", where);
	if (strcmp(e->max_tokens_field, "max_tokens") != 0 &&
	    strcmp(e->max_tokens_field, "max_completion_tokens") != 0)
		return err_set(ERR_INVALID,
			       "%s: max_tokens_field must be \"max_tokens\" or \"max_completion_tokens\"",
			       where);
	v = e->slots;
	rc = get_int(o, "slots", where, 1, 4096, &v);
	if (rc < 0)
		return rc;
	e->slots = (int)v;
	v = e->max_retries;
	rc = get_int(o, "max_retries", where, 0, 20, &v);
	if (rc < 0)
		return rc;
	e->max_retries = (int)v;
	if (e->timeout_ms <= 0 || e->connect_timeout_ms <= 0 ||
	    (json_object_get(o, "idle_timeout") && e->idle_timeout_ms <= 0))
		return err_set(ERR_INVALID, "%s: timeouts must be positive", where);
	if (!json_object_get(o, "local"))
		e->local = strstr(e->base_url, "://127.") || strstr(e->base_url, "://localhost") ||
			   strstr(e->base_url, "://[::1]");
	r->n_ep++;
	return 0;
}

static int parse_model(llm_registry *r, const char *name, json_t *o, const char *origin)
{
	static const char *const keys[] = {"endpoint", "model", "context", "max_output",
					   "price_in", "price_out", "provider", "quirks",
					   "temperature", "top_p", "reasoning_effort", NULL};
	char where[256], ep[64] = "", provider[32] = "generic";
	double num;
	llm_model *m;
	int64_t v;
	int rc;

	snprintf(where, sizeof(where), "%s: models.%s", origin, name);
	if (r->n_model >= MAX_MODELS)
		return err_set(ERR_INVALID, "%s: more than %d models", origin, MAX_MODELS);
	if (strlen(name) >= sizeof(m->name) || !*name)
		return err_set(ERR_INVALID, "%s: model names are 1 to 95 characters", where);
	if (!json_is_object(o))
		return err_set(ERR_INVALID, "%s must be an object", where);
	rc = check_keys(o, where, keys);
	if (rc < 0)
		return rc;
	m = &r->model[r->n_model];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->id, sizeof(m->id), "%s", name);
	m->context = 8192;
	m->max_output = 2048;
	rc = get_str(o, "endpoint", where, ep, sizeof(ep), 1);
	if (rc >= 0)
		rc = get_str(o, "model", where, m->id, sizeof(m->id), 0);
	if (rc >= 0)
		rc = get_num(o, "price_in", where, &m->price_in);
	if (rc >= 0)
		rc = get_num(o, "price_out", where, &m->price_out);
	if (rc < 0)
		return rc;
	if (!m->id[0]) /* an empty model id is sent as is and refused by every server */
		return err_set(ERR_INVALID, "%s: 'model' is empty (leave it out to send \"%s\")",
			       where, m->name);
	m->endpoint = find_endpoint(r, ep);
	if (m->endpoint < 0)
		return err_set(ERR_INVALID, "%s: endpoint '%s' is not defined under \"endpoints\"",
			       where, ep);
	rc = get_int(o, "context", where, 256, 100000000, &m->context);
	if (rc < 0)
		return rc;
	v = m->max_output;
	rc = get_int(o, "max_output", where, 1, 10000000, &v);
	if (rc < 0)
		return rc;
	m->max_output = (int)v;
	if (m->max_output >= m->context)
		return err_set(ERR_INVALID, "%s: max_output (%d) must be smaller than context (%lld)",
			       where, m->max_output, (long long)m->context);
	/* the provider's quirks and the model's own sampling parameters */
	m->params.temperature = -1;
	rc = get_str(o, "provider", where, provider, sizeof(provider), 0);
	if (rc >= 0)
		rc = get_str(o, "reasoning_effort", where, m->params.reasoning_effort,
			     sizeof(m->params.reasoning_effort), 0);
	if (rc < 0)
		return rc;
	if (llm_quirks_profile(provider, &m->quirks) < 0)
		return err_set(ERR_INVALID, "%s: %s", where, err_last());
	rc = llm_quirks_override(&m->quirks, json_object_get(o, "quirks"), where);
	if (rc < 0)
		return rc;
	num = -1;
	if (json_object_get(o, "temperature") && !json_is_null(json_object_get(o, "temperature"))) {
		rc = get_num(o, "temperature", where, &num);
		if (rc < 0 || num > 2)
			return err_set(ERR_INVALID, "%s: 'temperature' must be a number from 0 to 2",
				       where);
		m->params.temperature = num;
	}
	num = 0;
	rc = get_num(o, "top_p", where, &num);
	if (rc < 0 || num > 1)
		return err_set(ERR_INVALID, "%s: 'top_p' must be a number above 0, at most 1", where);
	m->params.top_p = num;
	rc = llm_quirks_check(&m->quirks, &m->params, where);
	if (rc < 0)
		return rc;
	r->n_model++;
	return 0;
}

static int parse_role(llm_registry *r, const char *name, json_t *v, const char *origin)
{
	char where[256];
	role *ro;
	size_t i;
	json_t *m;

	snprintf(where, sizeof(where), "%s: roles.%s", origin, name);
	if (r->n_role >= MAX_ROLES)
		return err_set(ERR_INVALID, "%s: more than %d roles", origin, MAX_ROLES);
	if (strlen(name) >= sizeof(ro->name) || !*name)
		return err_set(ERR_INVALID, "%s: role names are 1 to 63 characters", where);
	ro = &r->roles[r->n_role];
	memset(ro, 0, sizeof(*ro));
	snprintf(ro->name, sizeof(ro->name), "%s", name);
	if (json_is_string(v)) {
		ro->models[0] = find_model(r, json_string_value(v));
		if (ro->models[0] < 0)
			return err_set(ERR_INVALID, "%s: model '%s' is not defined under \"models\"",
				       where, json_string_value(v));
		ro->n = 1;
		r->n_role++;
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0)
		return err_set(ERR_INVALID, "%s must be a model name or a non-empty list of model "
					    "names (cheapest first)", where);
	if (json_array_size(v) > MAX_ROLE_MODELS)
		return err_set(ERR_INVALID, "%s: at most %d models", where, MAX_ROLE_MODELS);
	json_array_foreach(v, i, m) {
		int k = json_is_string(m) ? find_model(r, json_string_value(m)) : -1;
		if (k < 0)
			return err_set(ERR_INVALID, "%s[%zu]: model '%s' is not defined under \"models\"",
				       where, i, json_is_string(m) ? json_string_value(m) : "?");
		ro->models[ro->n++] = k;
	}
	r->n_role++;
	return 0;
}

static int parse_root(llm_registry *r, json_t *root, const char *origin, int strict)
{
	static const char *const keys[] = {"endpoints", "models", "roles", "scheduler", "budgets",
					   NULL};
	static const char *const skeys[] = {"lookahead", "starvation", NULL};
	static const char *const bkeys[] = {"project", "user", "period", NULL};
	json_t *eps, *models, *roles, *sched, *budgets, *v;
	const char *k;
	char where[300];
	int rc;

	if (!json_is_object(root))
		return err_set(ERR_INVALID, "%s: the top level must be an object", origin);
	rc = check_keys(root, origin, keys);
	if (rc < 0)
		return rc;
	eps = json_object_get(root, "endpoints");
	models = json_object_get(root, "models");
	roles = json_object_get(root, "roles");
	if ((strict || eps) && (!json_is_object(eps) || (strict && json_object_size(eps) == 0)))
		return err_set(ERR_INVALID, "%s: \"endpoints\" must be an object with at least one "
					    "endpoint", origin);
	json_object_foreach(eps, k, v) {
		rc = parse_endpoint(r, k, v, origin);
		if (rc < 0)
			return rc;
	}
	if ((strict || models) && (!json_is_object(models) ||
				   (strict && json_object_size(models) == 0)))
		return err_set(ERR_INVALID, "%s: \"models\" must be an object with at least one model",
			       origin);
	json_object_foreach(models, k, v) {
		rc = parse_model(r, k, v, origin);
		if (rc < 0)
			return rc;
	}
	if (roles && !json_is_object(roles))
		return err_set(ERR_INVALID, "%s: \"roles\" must be an object", origin);
	json_object_foreach(roles, k, v) {
		rc = parse_role(r, k, v, origin);
		if (rc < 0)
			return rc;
	}
	sched = json_object_get(root, "scheduler");
	if (sched) {
		int64_t n;
		snprintf(where, sizeof(where), "%s: scheduler", origin);
		if (!json_is_object(sched))
			return err_set(ERR_INVALID, "%s must be an object", where);
		rc = check_keys(sched, where, skeys);
		if (rc < 0)
			return rc;
		n = r->lookahead;
		rc = get_int(sched, "lookahead", where, 1, 100000, &n);
		if (rc < 0)
			return rc;
		r->lookahead = (int)n;
		n = r->starvation;
		rc = get_int(sched, "starvation", where, 1, 100000, &n);
		if (rc < 0)
			return rc;
		r->starvation = (int)n;
	}
	budgets = json_object_get(root, "budgets");
	if (budgets) {
		const char *per;
		snprintf(where, sizeof(where), "%s: budgets", origin);
		if (!json_is_object(budgets))
			return err_set(ERR_INVALID, "%s must be an object", where);
		rc = check_keys(budgets, where, bkeys);
		if (rc >= 0)
			rc = get_num(budgets, "project", where, &r->budgets.project);
		if (rc >= 0)
			rc = get_num(budgets, "user", where, &r->budgets.user);
		if (rc >= 0)
			rc = get_str(budgets, "period", where, r->budgets.period,
				     sizeof(r->budgets.period), 0);
		if (rc < 0)
			return rc;
		per = r->budgets.period;
		if (*per && strcmp(per, "total") != 0 && strcmp(per, "day") != 0 &&
		    strcmp(per, "week") != 0 && strcmp(per, "month") != 0)
			return err_set(ERR_INVALID, "%s: 'period' must be total, day, week or month",
				       where);
	}
	return 0;
}

int llm_registry_load_text(llm_registry **out, const char *text, const char *origin)
{
	json_error_t e;
	json_t *root;
	llm_registry *r = NULL;
	int rc;

	*out = NULL;
	root = json_loads(text, 0, &e);
	if (!root)
		return err_set(ERR_PARSE, "%s: not valid JSON: %s (line %d, column %d)", origin,
			       e.text, e.line, e.column);
	rc = reg_alloc(&r, origin);
	if (rc == 0)
		rc = parse_root(r, root, origin, 1);
	json_decref(root);
	if (rc < 0) {
		llm_registry_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int llm_registry_load_json(llm_registry **out, const json_t *doc, const char *origin)
{
	llm_registry *r = NULL;
	int rc;

	*out = NULL;
	rc = reg_alloc(&r, origin);
	if (rc == 0)
		rc = parse_root(r, (json_t *)doc, origin, 0);
	if (rc < 0) {
		llm_registry_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int llm_registry_load_file(llm_registry **out, const char *path)
{
	FILE *f;
	buf b;
	char chunk[8192];
	size_t n;
	int rc = 0;

	*out = NULL;
	f = fopen(path, "r");
	if (!f)
		return err_set(ERR_IO, "cannot read the model registry %s (ORCH_MODELS): %m", path);
	buf_init(&b, (size_t)4 << 20);
	for (n = fread(chunk, 1, sizeof(chunk), f); n > 0 && rc == 0;
	     n = fread(chunk, 1, sizeof(chunk), f))
		rc = buf_append(&b, chunk, n);
	if (ferror(f) && rc == 0)
		rc = err_set(ERR_IO, "error reading %s", path);
	fclose(f);
	if (rc == 0)
		rc = llm_registry_load_text(out, buf_cstr(&b), path);
	buf_free(&b);
	return rc;
}

int llm_registry_load(llm_registry **out)
{
	char path[1024], base[512], model[128];
	int64_t slots, context, maxout;
	llm_registry *r = NULL;
	int rc;

	*out = NULL;
	rc = cfg_env_str("ORCH_MODELS", NULL, path, sizeof(path));
	if (rc < 0)
		return rc;
	if (path[0])
		return llm_registry_load_file(out, path);
	rc = cfg_env_str("LLM_BASE_URL", NULL, base, sizeof(base));
	if (rc >= 0)
		rc = cfg_env_str("LLM_MODEL", NULL, model, sizeof(model));
	if (rc >= 0)
		rc = cfg_env_int("LLM_SLOTS", 4, 1, 4096, &slots);
	if (rc >= 0)
		rc = cfg_env_int("LLM_CONTEXT", 8192, 256, 100000000, &context);
	if (rc >= 0)
		rc = cfg_env_int("LLM_MAX_TOKENS", 2048, 1, 10000000, &maxout);
	if (rc < 0)
		return rc;
	if (!base[0]) {
		if (model[0])
			return err_set(ERR_INVALID, "LLM_MODEL is set but LLM_BASE_URL is not: set "
						    "LLM_BASE_URL too (e.g. http://127.0.0.1:8080/v1)");
		return reg_alloc(out, "none");
	}
	if (!model[0])
		return err_set(ERR_INVALID, "LLM_BASE_URL is set but LLM_MODEL is not: set "
					    "LLM_MODEL to the model's id on that server");
	if (maxout >= context)
		return err_set(ERR_INVALID, "LLM_MAX_TOKENS (%lld) must be smaller than LLM_CONTEXT "
					    "(%lld)", (long long)maxout, (long long)context);
	rc = reg_alloc(&r, "LLM_BASE_URL");
	if (rc < 0)
		return rc;
	endpoint_defaults(&r->ep[0]);
	snprintf(r->ep[0].name, sizeof(r->ep[0].name), "default");
	snprintf(r->ep[0].base_url, sizeof(r->ep[0].base_url), "%s", base);
	rc = fix_base_url(r->ep[0].base_url, "LLM_BASE_URL");
	if (rc < 0) {
		llm_registry_free(r);
		return rc;
	}
	if (getenv("LLM_API_KEY"))
		snprintf(r->ep[0].key_env, sizeof(r->ep[0].key_env), "LLM_API_KEY");
	r->ep[0].slots = (int)slots;
	r->ep[0].local = strstr(base, "://127.") || strstr(base, "://localhost");
	r->n_ep = 1;
	snprintf(r->model[0].name, sizeof(r->model[0].name), "%s", model);
	snprintf(r->model[0].id, sizeof(r->model[0].id), "%s", model);
	r->model[0].endpoint = 0;
	r->model[0].context = context;
	r->model[0].max_output = (int)maxout;
	llm_quirks_profile("generic", &r->model[0].quirks);
	r->model[0].params.temperature = -1;
	r->n_model = 1;
	snprintf(r->roles[0].name, sizeof(r->roles[0].name), "default");
	r->roles[0].models[0] = 0;
	r->roles[0].n = 1;
	r->n_role = 1;
	*out = r;
	return 0;
}

const char *llm_registry_origin(const llm_registry *r)
{
	return r->origin;
}

int llm_registry_n_endpoints(const llm_registry *r)
{
	return r->n_ep;
}

int llm_registry_n_models(const llm_registry *r)
{
	return r->n_model;
}

const llm_endpoint *llm_registry_endpoint(const llm_registry *r, int i)
{
	return i >= 0 && i < r->n_ep ? &r->ep[i] : NULL;
}

const llm_model *llm_registry_model(const llm_registry *r, int i)
{
	return i >= 0 && i < r->n_model ? &r->model[i] : NULL;
}

void llm_registry_budgets(const llm_registry *r, llm_budget_defaults *out)
{
	*out = r->budgets;
}

/* The quirks of m that differ from its profile's, as a "quirks" object
 * (NULL when none differ). */
static json_t *quirk_overrides(const llm_model *m)
{
	llm_quirks base;
	json_t *all, *mine, *o = json_object();

	if (llm_quirks_profile(m->quirks.profile, &base) < 0) {
		err_clear();
		json_decref(o);
		return NULL;
	}
	all = llm_quirks_json(&base);
	mine = llm_quirks_json(&m->quirks);
	{
		const char *k;
		json_t *v;
		json_object_foreach(mine, k, v) {
			if (strcmp(k, "profile") == 0 || json_equal(v, json_object_get(all, k)))
				continue;
			if (strcmp(k, "reasoning") == 0 || strcmp(k, "temperature") == 0 ||
			    strcmp(k, "top_p") == 0 || strcmp(k, "stop") == 0 ||
			    strcmp(k, "efforts") == 0 || strcmp(k, "temperature_max") == 0 ||
			    strcmp(k, "max_tokens_field") == 0 ||
			    strcmp(k, "no_temperature_reasoning") == 0)
				json_object_set(o, k, v);
		}
	}
	json_decref(all);
	json_decref(mine);
	if (json_object_size(o) == 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A duration as the file writes it: whole seconds when it is, else ms. */
static json_t *dur(int64_t ms)
{
	char t[32];

	if (ms % 1000 == 0)
		snprintf(t, sizeof(t), "%llds", (long long)(ms / 1000));
	else
		snprintf(t, sizeof(t), "%lldms", (long long)ms);
	return json_string(t);
}

json_t *llm_registry_to_json(const llm_registry *r)
{
	json_t *root = json_object(), *eps = json_object(), *models = json_object(),
	       *roles = json_object();

	for (int i = 0; i < r->n_ep; i++) {
		const llm_endpoint *e = &r->ep[i];
		json_t *o = json_pack("{s:s, s:i, s:o, s:o, s:i, s:o, s:o, s:o, s:b, s:b, s:s, s:b}",
				      "base_url", e->base_url, "slots", e->slots, "timeout",
				      dur(e->timeout_ms), "connect_timeout",
				      dur(e->connect_timeout_ms), "max_retries", e->max_retries,
				      "retry_base", dur(e->retry_base_ms), "retry_max",
				      dur(e->retry_max_ms), "max_retry_wait", dur(e->max_retry_wait_ms),
				      "stream_usage", e->stream_usage, "stream_replies",
				      e->stream_replies, "max_tokens_field", e->max_tokens_field,
				      "local", e->local);
		if (e->key_env[0])
			json_object_set_new(o, "api_key_env", json_string(e->key_env));
		if (e->key_secret[0])
			json_object_set_new(o, "api_key_secret", json_string(e->key_secret));
		if (e->idle_timeout_ms > 0)
			json_object_set_new(o, "idle_timeout", dur(e->idle_timeout_ms));
		if (e->health_wait_ms > 0)
			json_object_set_new(o, "health_wait", dur(e->health_wait_ms));
		json_object_set_new(eps, e->name, o);
	}
	for (int i = 0; i < r->n_model; i++) {
		const llm_model *m = &r->model[i];
		json_t *q = quirk_overrides(m);
		json_t *o = json_pack("{s:s, s:s, s:I, s:i, s:f, s:f, s:s}", "endpoint",
				      r->ep[m->endpoint].name, "model", m->id, "context",
				      (json_int_t)m->context, "max_output", m->max_output, "price_in",
				      m->price_in, "price_out", m->price_out, "provider",
				      m->quirks.profile);
		if (q)
			json_object_set_new(o, "quirks", q);
		if (m->params.temperature >= 0)
			json_object_set_new(o, "temperature", json_real(m->params.temperature));
		if (m->params.top_p > 0)
			json_object_set_new(o, "top_p", json_real(m->params.top_p));
		if (m->params.reasoning_effort[0])
			json_object_set_new(o, "reasoning_effort",
					    json_string(m->params.reasoning_effort));
		json_object_set_new(models, m->name, o);
	}
	for (int i = 0; i < r->n_role; i++) {
		json_t *a = json_array();
		for (int k = 0; k < r->roles[i].n; k++)
			json_array_append_new(a, json_string(r->model[r->roles[i].models[k]].name));
		json_object_set_new(roles, r->roles[i].name, a);
	}
	json_object_set_new(root, "endpoints", eps);
	json_object_set_new(root, "models", models);
	json_object_set_new(root, "roles", roles);
	json_object_set_new(root, "scheduler", json_pack("{s:i, s:i}", "lookahead", r->lookahead,
							  "starvation", r->starvation));
	if (r->budgets.project >= 0 || r->budgets.user >= 0 || r->budgets.period[0]) {
		json_t *b = json_object();
		if (r->budgets.project >= 0)
			json_object_set_new(b, "project", json_real(r->budgets.project));
		if (r->budgets.user >= 0)
			json_object_set_new(b, "user", json_real(r->budgets.user));
		if (r->budgets.period[0])
			json_object_set_new(b, "period", json_string(r->budgets.period));
		json_object_set_new(root, "budgets", b);
	}
	return root;
}

void llm_registry_sched(const llm_registry *r, int *lookahead, int *starvation)
{
	*lookahead = r->lookahead;
	*starvation = r->starvation;
}

int llm_registry_n_roles(const llm_registry *r)
{
	return r->n_role;
}

const char *llm_registry_role_name(const llm_registry *r, int i)
{
	return i >= 0 && i < r->n_role ? r->roles[i].name : NULL;
}

int llm_registry_route(const llm_registry *r, const char *name, const int **out, int *n)
{
	char list[512];
	size_t used = 0;
	int k;

	*out = NULL;
	*n = 0;
	if (r->n_model == 0)
		return err_set(ERR_NOTFOUND,
			       "no language models are configured: set ORCH_MODELS to a models file, "
			       "or LLM_BASE_URL and LLM_MODEL (README.md, \"LLM models and budgets\")");
	for (int i = 0; name && i < r->n_role; i++)
		if (strcmp(r->roles[i].name, name) == 0) {
			*out = r->roles[i].models;
			*n = r->roles[i].n;
			return 0;
		}
	k = name ? find_model(r, name) : -1;
	if (k >= 0) {
		*out = &r->ident[k];
		*n = 1;
		return 0;
	}
	for (int i = 0; i < r->n_role; i++)
		if (strcmp(r->roles[i].name, "default") == 0) {
			*out = r->roles[i].models;
			*n = r->roles[i].n;
			return 0;
		}
	if (r->n_role == 0) { /* no roles at all: every role uses the first model */
		*out = &r->ident[0];
		*n = 1;
		return 0;
	}
	list[0] = '\0';
	for (int i = 0; i < r->n_role; i++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
				 r->roles[i].name);
		if (w < 0 || (size_t)w >= sizeof(list) - used)
			break;
		used += (size_t)w;
	}
	return err_set(ERR_NOTFOUND,
		       "%s: no role or model named '%s' and no \"default\" role (roles: %s)",
		       r->origin, name ? name : "", list[0] ? list : "none");
}

int llm_registry_key(llm_registry *r, int i, buf *out)
{
	const llm_endpoint *e = llm_registry_endpoint(r, i);
	llm_secret_fn fn;
	void *ud;
	int rc = 0;

	if (!e)
		return err_set(ERR_INVALID, "no endpoint %d", i);
	if (e->key_env[0]) {
		const char *v = getenv(e->key_env);
		if (!v || !*v)
			return err_set(ERR_AUTH,
				       "endpoint '%s' takes its API key from the environment variable "
				       "%s, which is not set", e->name, e->key_env);
		return buf_puts(out, v);
	}
	if (!e->key_secret[0])
		return 0;
	pthread_mutex_lock(&r->mu);
	if (r->secret_key[i].len == 0) {
		pthread_mutex_lock(&g_res_mu);
		fn = g_res.fn;
		ud = g_res.udata;
		pthread_mutex_unlock(&g_res_mu);
		if (!fn) {
			rc = err_set(ERR_AUTH,
				     "endpoint '%s' takes its API key from secret '%s', but no secrets "
				     "store is available in this process", e->name, e->key_secret);
		} else {
			rc = fn(e->key_secret, &r->secret_key[i], ud);
			if (rc < 0 || r->secret_key[i].len == 0) {
				buf_free_wipe(&r->secret_key[i]);
				buf_init(&r->secret_key[i], 8192);
				rc = err_set(ERR_AUTH,
					     "endpoint '%s' takes its API key from secret '%s', which "
					     "could not be read (store it with 'orchestrator secrets "
					     "set %s')", e->name, e->key_secret, e->key_secret);
			}
		}
	}
	if (rc == 0)
		rc = buf_append(out, r->secret_key[i].data, r->secret_key[i].len);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int llm_registry_describe(llm_registry *r, json_t **out)
{
	json_t *root = json_object(), *eps = json_array(), *models = json_array(),
	       *roles = json_object();

	*out = NULL;
	if (!root || !eps || !models || !roles) {
		json_decref(root);
		json_decref(eps);
		json_decref(models);
		json_decref(roles);
		return err_set(ERR_NOMEM, "out of memory");
	}
	json_object_set_new(root, "origin", json_string(r->origin));
	for (int i = 0; i < r->n_ep; i++) {
		const llm_endpoint *e = &r->ep[i];
		json_t *o = json_object();
		buf k;
		const char *src = e->key_env[0] ? "env" : e->key_secret[0] ? "secret" : "none";
		int present;

		buf_init(&k, 8192);
		present = e->key_env[0] || e->key_secret[0] ? llm_registry_key(r, i, &k) == 0 : 1;
		buf_free_wipe(&k);
		json_object_set_new(o, "name", json_string(e->name));
		json_object_set_new(o, "base_url", json_string(e->base_url));
		json_object_set_new(o, "slots", json_integer(e->slots));
		json_object_set_new(o, "key_source", json_string(src));
		json_object_set_new(o, "key_name", json_string(e->key_env[0]      ? e->key_env
							       : e->key_secret[0] ? e->key_secret
										  : ""));
		json_object_set_new(o, "key_present", json_boolean(present));
		json_object_set_new(o, "timeout_ms", json_integer(e->timeout_ms));
		if (e->idle_timeout_ms > 0)
			json_object_set_new(o, "idle_timeout_ms", json_integer(e->idle_timeout_ms));
		json_object_set_new(o, "max_retries", json_integer(e->max_retries));
		json_object_set_new(o, "local", json_boolean(e->local));
		json_array_append_new(eps, o);
	}
	for (int i = 0; i < r->n_model; i++) {
		const llm_model *m = &r->model[i];
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(m->name));
		json_object_set_new(o, "id", json_string(m->id));
		json_object_set_new(o, "endpoint", json_string(r->ep[m->endpoint].name));
		json_object_set_new(o, "context", json_integer(m->context));
		json_object_set_new(o, "max_output", json_integer(m->max_output));
		json_object_set_new(o, "price_in", json_real(m->price_in));
		json_object_set_new(o, "price_out", json_real(m->price_out));
		json_object_set_new(o, "provider", json_string(m->quirks.profile));
		json_object_set_new(o, "quirks", llm_quirks_json(&m->quirks));
		if (m->params.temperature >= 0)
			json_object_set_new(o, "temperature", json_real(m->params.temperature));
		if (m->params.top_p > 0)
			json_object_set_new(o, "top_p", json_real(m->params.top_p));
		if (m->params.reasoning_effort[0])
			json_object_set_new(o, "reasoning_effort",
					    json_string(m->params.reasoning_effort));
		json_array_append_new(models, o);
	}
	for (int i = 0; i < r->n_role; i++) {
		json_t *a = json_array();
		for (int k = 0; k < r->roles[i].n; k++)
			json_array_append_new(a, json_string(r->model[r->roles[i].models[k]].name));
		json_object_set_new(roles, r->roles[i].name, a);
	}
	json_object_set_new(root, "endpoints", eps);
	json_object_set_new(root, "models", models);
	json_object_set_new(root, "roles", roles);
	*out = root;
	return 0;
}
