/*
 * registry — which models exist, where they are served, what they cost, and
 * which models each role escalates through.
 *
 * Loaded from a JSON file (ORCH_MODELS) or, without one, from LLM_BASE_URL,
 * LLM_API_KEY and LLM_MODEL (one endpoint, one model, every role). The file
 * format is documented in README.md ("LLM models and budgets"):
 *
 *   {"endpoints": {"local": {"base_url": "http://127.0.0.1:8080/v1", "slots": 2}},
 *    "models":    {"qwen": {"endpoint": "local", "context": 32768}},
 *    "roles":     {"default": ["qwen"]}}
 *
 * Every mistake (an unknown key, a model on a missing endpoint, a negative
 * price) is reported with its place in the file, so a typo fails at start-up
 * rather than at the first call. A loaded registry is read-only and may be
 * shared by any number of threads; only API keys are resolved lazily (and
 * cached) behind a lock.
 *
 * Keys come from an environment variable (api_key_env) or from a stored
 * secret (api_key_secret), resolved through the function the secrets
 * module installs with llm_set_secret_resolver(). Key values are never
 * logged, printed or put in an error message.
 */
#ifndef ORCH_LLM_REGISTRY_H
#define ORCH_LLM_REGISTRY_H

#include <jansson.h>
#include <stdint.h>

#include "core/buf.h"
#include "llm/quirks.h"

typedef struct llm_registry llm_registry;

/* Looks up secret `name` and appends its value to `out`. Returns 0, or
 * ERR_NOTFOUND when there is no such secret (or another negative code with
 * err_set). Must be thread-safe. */
typedef int (*llm_secret_fn)(const char *name, buf *out, void *udata);

/* Installs the process-wide secret resolver (NULL removes it). */
void llm_set_secret_resolver(llm_secret_fn fn, void *udata);

typedef struct llm_endpoint {
	char name[64];
	char base_url[512];       /* up to and including /v1 */
	char key_env[128];        /* api_key_env, "" when none */
	char key_secret[128];     /* api_key_secret, "" when none */
	int slots;                /* requests served at once */
	int64_t timeout_ms;       /* whole request */
	int64_t connect_timeout_ms;
	int64_t idle_timeout_ms;  /* no byte for this long ends a reply; 0: the service's
				   * (ORCH_LLM_IDLE_TIMEOUT) */
	int max_retries;          /* after the first attempt, on 429, 5xx and network errors */
	int64_t retry_base_ms;    /* backoff: base, doubled each retry, with jitter */
	int64_t retry_max_ms;     /* backoff cap */
	int64_t max_retry_wait_ms; /* a Retry-After longer than this fails at once */
	int64_t health_wait_ms;   /* how long an outage is waited out (the server's /health);
				   * 0: the service's (ORCH_LLM_HEALTH_WAIT) */
	int stream_replies;       /* ask for every reply as a stream, also when the caller
				   * wants it whole, so the idle timeout watches it */
	int stream_usage;         /* send stream_options.include_usage */
	char max_tokens_field[32];
	int local;                /* on this machine or network (informational) */
} llm_endpoint;

typedef struct llm_model {
	char name[96];            /* registry name */
	char id[128];             /* what is sent as "model" */
	int endpoint;             /* index into the endpoints */
	int64_t context;          /* context window in tokens */
	int max_output;           /* default max_tokens */
	double price_in;          /* USD per 1M prompt tokens */
	double price_out;         /* USD per 1M completion tokens */
	llm_quirks quirks;        /* its provider's quirks ("provider", "quirks") */
	llm_params params;        /* its own temperature, top_p, reasoning_effort */
} llm_model;

/* Budgets given to a project or user that has none yet ("budgets" in the
 * file: {"project": USD, "user": USD, "period": "month"}); < 0: none set
 * there (the environment's ORCH_LLM_*_BUDGET apply). */
typedef struct llm_budget_defaults {
	double project;
	double user;
	char period[16];          /* "" when not set */
} llm_budget_defaults;

/* Loads the registry: from the file named by ORCH_MODELS when set, else
 * from LLM_BASE_URL / LLM_MODEL / LLM_API_KEY (and LLM_SLOTS, LLM_CONTEXT),
 * else an empty registry (every call then fails, saying how to configure).
 * ERR_INVALID or ERR_PARSE with the file's name and the place of the
 * mistake. The caller owns *out. */
int llm_registry_load(llm_registry **out);

/* Loads from a file / from JSON text (`origin` names it in messages). */
int llm_registry_load_file(llm_registry **out, const char *path);
int llm_registry_load_text(llm_registry **out, const char *text, const char *origin);

/* Loads from a parsed document, as the stored configuration does: as
 * _load_text, except that it may have no endpoints or models (every call
 * then fails, saying none is configured). The caller owns *out. */
int llm_registry_load_json(llm_registry **out, const json_t *doc, const char *origin);

void llm_registry_free(llm_registry *r);

/* Where the registry came from ("models.json", "LLM_BASE_URL", "none"). */
const char *llm_registry_origin(const llm_registry *r);

int llm_registry_n_endpoints(const llm_registry *r);
int llm_registry_n_models(const llm_registry *r);
const llm_endpoint *llm_registry_endpoint(const llm_registry *r, int i);
const llm_model *llm_registry_model(const llm_registry *r, int i);

/* The default budgets of the file ("budgets"), into *out. */
void llm_registry_budgets(const llm_registry *r, llm_budget_defaults *out);

/* The registry as a document llm_registry_load_text takes back: every
 * endpoint, model (with its provider, quirks that differ from the
 * profile's, and parameters), role, the scheduler and the budgets, each
 * field spelled as in the file. Owned. */
json_t *llm_registry_to_json(const llm_registry *r);

/* Scheduler tuning from the file ("scheduler": {"lookahead", "starvation"}). */
void llm_registry_sched(const llm_registry *r, int *lookahead, int *starvation);

/* The models a role escalates through, in order, as model indices into
 * *out (borrowed) with their count in *n. A name that is not a role but a
 * model gives that one model; an unknown role falls back to the "default"
 * role, and without any roles every role gets the first model of the file.
 * ERR_NOTFOUND, naming the configured roles, when none applies. */
int llm_registry_route(const llm_registry *r, const char *role, const int **out, int *n);

/* The role names, in file order: r->roles[i] for i < n. Borrowed. */
int llm_registry_n_roles(const llm_registry *r);
const char *llm_registry_role_name(const llm_registry *r, int i);

/* The API key of endpoint i into `out` (appended; wipe it after use).
 * Empty when the endpoint needs none. ERR_AUTH, naming the variable or
 * secret (never a value), when it is configured but missing. */
int llm_registry_key(llm_registry *r, int i, buf *out);

/* A description of the registry for `orchestrator llm models`: endpoints
 * (with where their key comes from and whether it is present, never the
 * value), models and roles. The caller owns *out. */
int llm_registry_describe(llm_registry *r, json_t **out);

#endif
