/*
 * nd_int — what the factory's node files share inside nodes/: the step a
 * node works on, the nodes the graph is built from (factory.c) and the
 * helpers for questions, model calls and costs.
 *
 * A node reads its state as an nd_project and changes it; the graph's
 * wrapper writes what changed into the update (nodes/model.h). What is
 * appended (log, conversation) or comes from a parser (spec, plan, final)
 * goes into the update directly. A node never routes: the routers of the
 * graph declaration (factory.c) read the state it leaves.
 */
#ifndef ORCH_NODES_ND_INT_H
#define ORCH_NODES_ND_INT_H

#include <jansson.h>
#include <stdint.h>

#include "engine/ctx.h"
#include "llm/llm.h"
#include "nodes/factory.h"
#include "nodes/model.h"
#include "nodes/say.h"

/* Tries a node that calls a model gets (transient failures only). */
#define ND_LLM_ATTEMPTS 3

/* What a node's model calls stream (messages mode, engine/stream.h). */
typedef struct nd_stream_tap {
	eng_ctx *ctx;
	const char *display; /* the reply's JSON string field people read; NULL: none */
} nd_stream_tap;

/* One execution of a node. */
typedef struct nd_step {
	eng_ctx *ctx;
	nd_app *app;
	const json_t *state; /* borrowed: the spec and plan as stored */
	const json_t *in;    /* the node's own input (eng_send), may be NULL */
	nd_project p;        /* the state, typed; what changes is written back */
	json_t *up;          /* the update: appends and parsed documents */
	nd_stream_tap tap;   /* the model calls' tokens, to the run's stream */
} nd_step;

typedef int (*nd_node_fn)(nd_step *s);

/* --- the nodes --- */
int nd_entry(nd_step *s);
int nd_brainstorm(nd_step *s);
int nd_listen(nd_step *s);
int nd_spec_gate(nd_step *s);
int nd_architect(nd_step *s);
int nd_plan_gate(nd_step *s);
int nd_budget_gate(nd_step *s);
int nd_developer(nd_step *s);
int nd_reviewer(nd_step *s);
int nd_finish(nd_step *s);
/* a change to an existing repository (nodes/change.c) */
int nd_import(nd_step *s);
int nd_baseline(nd_step *s);
int nd_deliver(nd_step *s);
int nd_follow(nd_step *s);

/* --- a change to an existing repository (nodes/change.c) --- */

/* The selection of the project's repository a model sees for `query`
 * (ORCH_CHANGE_CONTEXT bytes), into `out`; the size is recorded in the
 * change. A repository that cannot be read gives a line that says so. */
void nd_change_context(nd_step *s, const char *query, buf *out);

/* The baseline as one line a prompt or a person reads ("95 passed, 0
 * failed of 95 on main at 1a2b3c4d5e6f (python3 -m unittest ...)"), into
 * out[cap]. */
void nd_baseline_line(const nd_project *p, char *out, size_t cap);

/* The failing tests a worker or a merge may leave failing: the baseline's
 * (0 when all passed or it did not run). */
int nd_allowed_failures(const nd_project *p);

/* Puts them into a worker's or a merge's request `req`: "allowed_failures"
 * and, when the baseline named them all, "allowed_failing". */
void nd_allow_failures(const nd_project *p, json_t *req);

/* --- talking (nodes/say.h, to the project's chat) --- */

/* ERR_INVALID when the state names no chat. */
int nd_need_chat(const nd_step *s);
int nd_tell(nd_step *s, const char *text);
int nd_tell_html(nd_step *s, const char *html);

/* The buttons of a proposal (spec, plan): approve, change, cancel. */
extern const nd_option ND_PROPOSAL_OPTS[3];

/* Appends {"at", "kind", "text", ...extra} to update.log. `extra` (may be
 * NULL) is stolen. */
void nd_log(json_t *update, const char *kind, const char *text, json_t *extra);

/* Appends a turn {"role", "text"[, "reply"]} to the conversation. */
void nd_converse(nd_step *s, const char *role, const char *text, const char *reply);

/* The next question number (state.asks + 1), recorded in the state. */
int nd_next_ask(nd_step *s);

/* --- gates --- */

/* Takes the first delivered event among keys[0..n) into *out (owned) and
 * its index into *which; when none is there, waits for all of them and
 * returns ERR_WAIT. */
int nd_gate(eng_ctx *ctx, const char *const *keys, int n, json_t **out, int *which);

/* The gate of a proposal the person was asked about, `what` "spec" or
 * "plan" at `version`: its question's key "<what>:<version>" into
 * key[cap], the project's chat checked, then nd_gate on {key, "input"}:
 * *which 0 for the decision, 1 for the person's text instead. */
int nd_proposal_gate(nd_step *s, const char *what, int version, char *key, size_t cap,
		     json_t **out, int *which);

/* The decision `v` taken at the question `key` read into *d (borrowing
 * from v), and logged in update.log as a "decision" with the key and who
 * decided ("expired" when it expired). */
void nd_decide(nd_step *s, const char *key, const json_t *v, nd_decision *d);

/* --- models --- */

/* Fills an llm_call for the node: role, the project (the thread key) as
 * budget scope, the person as user scope (user_buf, cap 32, holds it),
 * thread, run, node; and the reply's tokens streamed as the run's messages
 * events (s->tap; set s->tap.display to the JSON field people read, so the
 * chat and the bot show it as it is written). */
void nd_llm_call(llm_call *call, nd_step *s, const char *role, char *user_buf);

/* One model call of a node whose reply must match `schema` (named
 * `schema_name` in the request): *resp is freed and filled anew (the caller
 * frees it in every case). llm_chat's errors. */
int nd_llm_json(nd_step *s, const llm_call *call, const llm_message *msgs, size_t n,
		const json_t *schema, const char *schema_name, llm_response *resp);

/* After a model call failed with `rc`: a transient failure while tries
 * remain is returned for the engine to retry; otherwise the person is told
 * (`what` failed: the reason), the project rests (the run ends; the next
 * message resumes the stage) and 0 is returned: nothing is lost. */
int nd_llm_failed(nd_step *s, int rc, const char *what);

/* A budget was reached: asks the person to extend it or stop and records
 * the question in the state's pending (resume: the node that asked). */
int nd_ask_budget(nd_step *s, const llm_budget_info *b, const char *resume);

/* Extends the budget `kind`/`scope` by the configured step, once per
 * `key` of this thread, as an effect of the node's step: an outbox row
 * (LLM_BUDGET_EXTEND_KIND) that the database applies in the transaction
 * of the step's checkpoint, so an attempt that does not commit extends
 * nothing and a step run again extends once. *out_limit gets the limit it
 * will have (0 when the scope has no budget: nothing limits it). */
int nd_budget_extend(eng_ctx *ctx, const char *key, const char *kind, const char *scope,
		     double *out_limit);

/* The project's costs from the ledger (nodes/factory.h), on the app's
 * pool, into *out (free it with nd_costs_free; zeroes on error). ERR_DB. */
int nd_costs_get(eng_ctx *ctx, nd_costs *out);

/* The id of a worker request: "f<thread>.<run>.<task>.<suffix>" (suffix
 * "r<round>a<attempt>" or "m<n>"), deterministic so a step run twice never
 * starts a second worker, and the form nd_costs_load reads the task back
 * from; "f<thread>.<run>.<suffix>" when `task` is NULL (the publication). */
void nd_worker_id(const eng_ctx *ctx, const char *task, const char *suffix, char *out,
		  size_t cap);

/* "12.3k" for a token count. */
void nd_fmt_tokens(int64_t n, char *out, size_t cap);

#endif
