/*
 * nd_int — what the factory's node files share inside nodes/: the node
 * functions the graph is built from, and helpers for state, questions,
 * model calls and costs. Every node follows the engine's contract
 * (engine/graph.h): it reads the state, writes an update, emits outbox rows
 * through its ctx, and routes with eng_goto/eng_send.
 */
#ifndef ORCH_NODES_ND_INT_H
#define ORCH_NODES_ND_INT_H

#include <jansson.h>
#include <stdint.h>

#include "engine/ctx.h"
#include "llm/llm.h"
#include "nodes/factory.h"
#include "nodes/say.h"

/* Tries a node that calls a model gets (transient failures only). */
#define ND_LLM_ATTEMPTS 3

/* --- the nodes --- */
int nd_entry(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);
int nd_brainstorm(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);
int nd_listen(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);
int nd_spec_gate(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);
int nd_architect(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);
int nd_plan_gate(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);
int nd_budget_gate(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);
int nd_developer(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);
int nd_reviewer(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);
int nd_finish(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update);

/* --- helpers (factory.c) --- */

/* The nd_app of the engine running the node (never NULL: the graph checks
 * it at the first node). */
nd_app *nd_app_of(eng_ctx *ctx);

/* The stage in the state ("" before the first). Borrowed. */
const char *nd_stage(const json_t *state);

/* Fills an llm_call for a node: role, the project (the thread key) as budget
 * scope, the person as user scope (user_buf, cap 32, holds it), thread,
 * run, node. */
void nd_llm_call(llm_call *call, eng_ctx *ctx, const json_t *state, const char *role,
		 char *user_buf);

/* Appends {"at", "kind", "text", ...extra} to update.log. `extra` (may be
 * NULL) is stolen. */
void nd_log(json_t *update, const char *kind, const char *text, json_t *extra);

/* The next question number (state.asks + 1), recorded in the update. */
int nd_next_ask(const json_t *state, json_t *update);

/* Gates: takes the first delivered event among keys[0..n) into *out (owned)
 * and its index into *which; when none is there, waits for all of them and
 * returns ERR_WAIT. */
int nd_gate(eng_ctx *ctx, const char *const *keys, int n, json_t **out, int *which);

/* What a gate node does first: the project's chat into *chat (NULL: none
 * wanted; ERR_INVALID when the state names none), then nd_gate on
 * keys[0..n) and, once an event is taken, a new object for the node's
 * update in *update. ERR_WAIT while none is delivered (*update untouched). */
int nd_gate_start(eng_ctx *ctx, const json_t *state, const char *const *keys, int n,
		  nd_chat *chat, json_t **out, int *which, json_t **update);

/* The gate of a proposal the person was asked about, `what` "spec" or
 * "plan": its question's key "<what>:<state.<what>_version>" into key[cap],
 * then nd_gate_start on {key, "input"}: *which 0 for the decision, 1 for
 * the person's text instead. */
int nd_proposal_gate(eng_ctx *ctx, const json_t *state, const char *what, char *key,
		     size_t cap, nd_chat *chat, json_t **out, int *which, json_t **update);

/* The option of the decision `v` taken at the question `key` (borrowed from
 * v; NULL when the question expired or was cancelled), logged in
 * update.log as a "decision" with the key and who decided. */
const char *nd_decision(json_t *update, const char *key, const json_t *v);

/* One model call of a node whose reply must match `schema` (named
 * `schema_name` in the request): *resp is freed and filled anew (the caller
 * frees it in every case). llm_chat's errors. */
int nd_llm_json(eng_ctx *ctx, const llm_call *call, const llm_message *msgs, size_t n,
		const json_t *schema, const char *schema_name, llm_response *resp);

/* After a model call failed with `rc`: a transient failure while tries
 * remain is returned for the engine to retry; otherwise the person is told
 * (`what` failed: the reason) and the node ends the run without losing
 * anything (0, nothing updated but the log: the next message resumes the
 * stage). */
int nd_llm_failed(eng_ctx *ctx, const nd_chat *chat, json_t *update, int rc, const char *what);

/* A budget was reached: asks the person to extend it or stop, records the
 * question in update.pending (resume: the node to run again) and routes to
 * budget_gate. */
int nd_ask_budget(eng_ctx *ctx, const json_t *state, const nd_chat *chat, json_t *update,
		  const llm_budget_info *b, const char *resume);

/* Extends the budget `kind`/`scope` by the configured step, once per
 * `key` of this thread (a repeated call changes nothing). *out_limit gets
 * the new limit. */
int nd_budget_extend(eng_ctx *ctx, const char *key, const char *kind, const char *scope,
		     double *out_limit);

/* Tokens and cost of the project so far, from the ledger: every model
 * call of its nodes and its workers. */
typedef struct nd_costs {
	int64_t tokens_in, tokens_out;
	double cost_usd, workers_usd;
} nd_costs;
int nd_costs_get(eng_ctx *ctx, nd_costs *out);

/* "12.3k" for a token count. */
void nd_fmt_tokens(int64_t n, char *out, size_t cap);

#endif
