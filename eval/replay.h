/*
 * replay — the eval's record/replay server: an OpenAI-compatible endpoint
 * on loopback (libevent's evhttp, in a thread of its own) that the model
 * registry of an eval run points at, so everything above the LLM layer's
 * edge runs for real.
 *
 * Every call of the factory arrives with its identity in headers (the LLM
 * client's identity_headers, llm/llm.h): X-Orch-Project (the project's
 * thread key, bound to an eval task with ev_proxy_bind), X-Orch-Node (the
 * factory node, or "worker" for a worker's agent) and X-Orch-Subject (the
 * plan task of an agent or a review; empty otherwise). A call's KEY is
 * (task, node, subject) and its TURN the n-th call of that key, counted
 * from 1 as the calls arrive.
 *
 *   record  each call is passed on to the real endpoint (the path
 *           /e/<endpoint>/chat/completions names it; ev_proxy_upstream says
 *           where it is), its answer returned unchanged, and the exchange
 *           appended to DIR/<task>.jsonl as one JSON line:
 *             {"node", "subject", "turn", "endpoint", "model", "schema",
 *              "status", "content_type", "fits": whether the answer fitted the
 *              call (its schema, its tools), "response": the answer's JSON
 *              (or "body": its text when it is not JSON), "prompt_tail": the
 *              end of the last message sent, for people reading the file}
 *           The Authorization header is passed on and never written.
 *   replay  each call gets the recorded answer of its key and turn, whatever
 *           the prompt says now (a prompt edit does not break a recording).
 *           A call with no recorded answer, or whose recorded answer fitted
 *           when it was recorded and no longer does (the request's JSON
 *           schema rejects it, its schema has another name, it calls a tool
 *           the request does not offer) is a REPLAY MISMATCH (an answer
 *           that did not fit then, "fits": false, was the model's failure
 *           and is replayed as it was): it is answered with HTTP 400 and an error whose
 *           message starts "replay mismatch:", and counted for the task
 *           (ev_proxy_task_stats), so the runner can report it as such and
 *           not as a model failure.
 *
 * Thread-safe. The server serves until ev_proxy_free.
 */
#ifndef ORCH_EVAL_REPLAY_H
#define ORCH_EVAL_REPLAY_H

#include <jansson.h>
#include <stdint.h>

#include "llm/registry.h"

typedef struct ev_proxy ev_proxy;

typedef enum ev_proxy_mode {
	EV_REPLAY = 0,
	EV_RECORD = 1,
} ev_proxy_mode;

/* Starts the server on 127.0.0.1 (a free port). Record: `dir` (created
 * when missing) receives the exchanges; replay: `dir` may be NULL (load the
 * recordings with ev_proxy_load). ERR_IO when it cannot listen. The caller
 * owns *out (ev_proxy_free). */
int ev_proxy_start(ev_proxy **out, ev_proxy_mode mode, const char *dir);

/* Waits for the calls being passed on, stops the server and frees. NULL is
 * a no-op. */
void ev_proxy_free(ev_proxy *p);

/* "http://127.0.0.1:PORT". Borrowed. */
const char *ev_proxy_url(const ev_proxy *p);

/* Replay: the recording of task `task`, JSON lines as above (`origin`
 * names the text in messages). ERR_PARSE naming the line: not JSON, no
 * node or turn, a turn given twice. */
int ev_proxy_load(ev_proxy *p, const char *task, const char *text, const char *origin);

/* Replay: 1 when task `task` has a recording. */
int ev_proxy_has(ev_proxy *p, const char *task);

/* Record: the calls to endpoint `name` go to `base_url` (up to and
 * including /v1), each given at most timeout_ms (0: 10 minutes). */
int ev_proxy_upstream(ev_proxy *p, const char *name, const char *base_url, int64_t timeout_ms);

/* The calls of project `project` (a thread key; "*": every project not
 * bound otherwise) belong to task `task` from now on. Record:
 * DIR/<task>.jsonl is started afresh. */
int ev_proxy_bind(ev_proxy *p, const char *project, const char *task);

/* What the server did for one task. */
typedef struct ev_proxy_stats {
	int calls;          /* calls answered (replayed or passed on) */
	int recorded;       /* replay: exchanges in the recording */
	int unused;         /* replay: recorded exchanges no call asked for */
	int mismatches;     /* replay mismatches */
	char mismatch[600]; /* the first one's message */
} ev_proxy_stats;

void ev_proxy_task_stats(ev_proxy *p, const char *task, ev_proxy_stats *out);

/* The models file (README, "LLM models and budgets") of registry `reg`
 * with every endpoint's base_url replaced by `base`/e/<endpoint name>, for
 * a registry that sends every call through the server; with keep_keys 0
 * the endpoints' key settings are left out (what a recording keeps: the
 * prices, never where a key is). The caller owns *out. */
int ev_models_json(llm_registry *reg, const char *base, int keep_keys, json_t **out);

/* Points every endpoint of the models file `models` (ev_models_json's
 * form, borrowed) at `base`/e/<endpoint name>. */
int ev_models_rebase(json_t *models, const char *base);

#endif
