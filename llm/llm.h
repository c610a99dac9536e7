/*
 * llm — what nodes and workers call to talk to a language model.
 *
 * An llm_service ties the parts together: the registry (which model serves
 * a role, where, at what price), the slot scheduler (how many requests each
 * endpoint serves at once, in which order), the OpenAI-compatible client
 * (llm/wire.h over core/http.h: streaming or not, tools, JSON schema,
 * total and idle timeouts, retries with Retry-After and backoff,
 * cancellation) and the ledger with budgets (llm/ledger.h).
 *
 * Every reply is asked for as a stream (unless the endpoint says
 * stream_replies false), also when the caller wants it whole, so the idle
 * timeout ends a reply that stops sending from the request on (before the
 * first byte only when the server's /health does not answer either: a busy
 * server is waited on); a whole reply on such an endpoint is watched from
 * its first byte. Like other timeouts it
 * is retried while nothing was delivered to the caller. An attempt that gets
 * no answer (refused, reset, stalled, 502/503/504) waits for the server's
 * /health (llm/server.h) up to the endpoint's health_wait; the attempt after
 * the server came back costs no retry. Retries stop once the endpoint's
 * timeout has passed since the first attempt.
 *
 * What each server says of itself (model ids, and on llama.cpp its context
 * per slot, slots and tokenizer) is read once per endpoint and wins over the
 * configuration; the prompt is counted with the server's tokenizer when it
 * has one. A JSON schema is sent as a grammar can take it (llm/schema.h),
 * simpler when the server refuses it, and the reply is always checked
 * against the whole schema.
 *
 * llm_chat() asks a role's models in order, cheapest first: a model that
 * fails (after its retries), whose reply does not parse, or whose reply is
 * still wrong after one re-ask saying what was wrong (structured output
 * that does not match the schema or was cut at max_tokens; a tool call cut
 * or malformed, or not the one tool_choice asked for), is given up for the
 * next one. A cut reply or call is never sent back to the model. It stops
 * at once, without escalating, on
 * ERR_BUDGET (the caller should ask the person to extend the budget; the
 * figures are in out->budget), ERR_CANCELLED and ERR_INVALID (a request
 * that cannot be sent). ERR_CONTEXT means the prompt fits none of the
 * role's models (out->context_needed / context_limit): trim or summarise.
 *
 * Every HTTP attempt, and every refused call, is a ledger row. Secrets:
 * each request body passes redact_buf() before it is sent; API keys go only
 * into the Authorization header and never into a log line or a message.
 */
#ifndef ORCH_LLM_LLM_H
#define ORCH_LLM_LLM_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/pg.h"
#include "llm/ledger.h"
#include "llm/registry.h"
#include "llm/sched.h"
#include "llm/server.h"
#include "llm/wire.h"

typedef struct llm_service llm_service;

typedef struct llm_options {
	pg_pool *pool;               /* ledger and budgets (borrowed); NULL: neither */
	int64_t stats_interval_ms;   /* persist scheduler figures this often; 0: 5 s; < 0: never */
	double project_budget;       /* USD limit of a project without a budget; < 0: none */
	double user_budget;          /* USD limit of a user without a budget; < 0: none */
	char budget_period[16];      /* the period of those budgets: total (""), day, week, month */
	int64_t queue_timeout_ms;    /* longest wait for a slot; 0: 10 min; < 0: no limit */
	int64_t reserve_ttl_ms;      /* reservations of a dead process expire; 0: 2 h */
	int64_t idle_timeout_ms;     /* a reply that sends nothing for this long ends with
				      * ERR_TIMEOUT (ledger outcome "stalled") unless its
				      * endpoint has idle_timeout; 0: 60 s; < 0: none */
	int64_t health_wait_ms;      /* an outage is waited out this long unless the
				      * endpoint has health_wait; 0: 3 min; < 0: not at all */
	int identity_headers;        /* send each call's identity as the headers
				      * X-Orch-Project, X-Orch-Node and X-Orch-Subject (the
				      * eval's record/replay server matches replies by
				      * them); 0: none are sent */
} llm_options;

/* Defaults, then the environment: ORCH_LLM_PROJECT_BUDGET and
 * ORCH_LLM_USER_BUDGET (USD), ORCH_LLM_STATS_INTERVAL,
 * ORCH_LLM_QUEUE_TIMEOUT, ORCH_LLM_IDLE_TIMEOUT and ORCH_LLM_HEALTH_WAIT
 * (durations). ERR_INVALID naming the variable. */
int llm_options_from_env(llm_options *out);

/* Creates a service that owns `reg` (also on failure). opt may be NULL for
 * the defaults without a database. With a pool and stats_interval_ms >= 0
 * a thread persists the scheduler's figures for `orchestrator status`.
 * The caller owns *out. */
int llm_service_new(llm_service **out, llm_registry *reg, const llm_options *opt);

/* Stops the figures thread (removing this process's figures) and frees.
 * No call may be in progress. NULL is a no-op. */
void llm_service_free(llm_service *s);

/* Puts `reg` (owned, also on failure) in force: calls that start from now
 * on use it, calls in progress finish under the configuration they started
 * with (freed when the last of them ends). An endpoint of the same name
 * and base URL keeps its probe, outage state and scheduler slot; its
 * configured slot count applies unless its server reported its own.
 * `version` is the stored configuration's (0: from a file or the
 * environment). Thread-safe. */
int llm_service_set_registry(llm_service *s, llm_registry *reg, int64_t version);

/* Calls fn(udata) first thing in llm_service_free (what follows the
 * service, such as the configuration watcher, stops before it goes). */
void llm_service_on_free(llm_service *s, void (*fn)(void *), void *udata);

/* The version of the configuration in force (0: file or environment). */
int64_t llm_service_version(llm_service *s);

/* llm_registry_describe of the configuration in force, with its
 * "version". The caller owns *out. */
int llm_service_describe(llm_service *s, json_t **out);

/* Where the configuration in force came from, its models and endpoints. */
void llm_service_summary(llm_service *s, char *origin, size_t cap, int *models, int *endpoints);

/* The registry in force. Borrowed: valid only until the next
 * llm_service_set_registry (use it where nothing changes the
 * configuration, as in tests and at start-up). */
llm_registry *llm_service_registry(llm_service *s);
llm_sched *llm_service_sched(llm_service *s);
const char *llm_service_instance(const llm_service *s);

/* Writes the scheduler's figures now (the thread does it periodically). */
int llm_service_save_stats(llm_service *s);

/* Asks every endpoint's server about itself now (what a role does at
 * start-up; a call does it for its endpoint the first time otherwise):
 * the model ids it lists ({base}/models; a configured id it does not list
 * is logged as a warning), and on llama.cpp its context per slot and its
 * slot count (/props), which then win over the configuration (the
 * difference is logged). A server that does not answer is logged and
 * asked again later. Blocks up to a few seconds per endpoint. */
void llm_service_probe(llm_service *s);

/* What the service knows of endpoint i (by its index in the registry). */
typedef struct llm_endpoint_facts {
	int probed;                 /* the server was asked (and answered, or had no list) */
	llm_server_info server;     /* what it said */
	llm_server_slots server_slots; /* its slots at the last look (the figures thread) */
	int slots;                  /* the slots the scheduler hands out for it */
	int down;                   /* an outage is going on */
} llm_endpoint_facts;

int llm_service_endpoint_facts(llm_service *s, int i, llm_endpoint_facts *out);

/* Who is calling, for routing, fairness, budgets and the ledger. Every
 * pointer is borrowed for the duration of the call; all may be NULL/0. */
typedef struct llm_call {
	const char *role;          /* a role or a model name; NULL: "default" */
	const char *project;       /* budget scope */
	const char *user;          /* budget scope */
	int64_t thread_id, run_id;
	const char *node;          /* the graph node calling */
	const char *worker;        /* the worker calling */
	const char *subject;       /* what the call is about (the plan task of an agent or
				    * a review); NULL: the node's own work */
	const char *owner;         /* fairness key; NULL: the thread, else the project */
	int priority;              /* enum llm_priority; LLM_PRIO_NORMAL when zeroed */
	const atomic_int *cancel;  /* non-zero stops the call (queue, request, backoff) */
} llm_call;

/* Asks the models of call->role for a reply to `rq`, as described above.
 * `out` is initialised here; the caller frees it with llm_response_free in
 * every case. Returns 0, or a negative code with a message naming the
 * model and endpoint: ERR_BUDGET, ERR_CONTEXT, ERR_CANCELLED, ERR_TIMEOUT,
 * ERR_AUTH, ERR_HTTP, ERR_RETRY (rate limited past the retries), ERR_PARSE
 * (a reply that does not parse or does not match the schema), ERR_NOTFOUND
 * (no such role or model), ERR_INVALID. Thread-safe. */
int llm_chat(llm_service *s, const llm_call *call, const llm_request *rq, llm_response *out);

/* An llm_request with every field unset (temperature -1). */
void llm_request_init(llm_request *rq);

#endif
