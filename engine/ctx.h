/*
 * ctx — what a node may do besides returning a state update.
 *
 * A node receives an eng_ctx for the duration of one call. Through it the
 * node waits for events (a person's approval, workers' results), takes
 * delivered events, writes side effects to the outbox, and routes (goto,
 * send). Everything done through the ctx takes effect only if the step
 * commits: events taken are marked consumed, outbox rows are written, in the
 * step's transaction. A failed or retried attempt leaves no trace.
 *
 * Waiting (LangGraph's interrupt): eng_await(ctx, "approval", question, &v)
 * returns the delivered value when there is one; otherwise it records the
 * wait and returns ERR_WAIT, and the node returns ERR_WAIT at once. The run
 * parks, holding no thread and no connection; delivering an event with that
 * key (eng_deliver) queues it again, and the node runs again from its start,
 * this time getting the value. Keep waits in small gate nodes so no expensive
 * call is repeated on resume.
 */
#ifndef ORCH_ENGINE_CTX_H
#define ORCH_ENGINE_CTX_H

#include <jansson.h>
#include <stdint.h>

#include "engine/graph.h"

/* --- identity (borrowed values, valid during the call) --- */
int64_t eng_ctx_run_id(const eng_ctx *ctx);
int64_t eng_ctx_thread_id(const eng_ctx *ctx);
const char *eng_ctx_thread_key(const eng_ctx *ctx);
const char *eng_ctx_node(const eng_ctx *ctx);
int eng_ctx_step(const eng_ctx *ctx);    /* super-step within the run, from 1 */
int eng_ctx_attempt(const eng_ctx *ctx); /* 1 on the first try */
void *eng_ctx_udata(const eng_ctx *ctx); /* the node's udata */
void *eng_ctx_app(const eng_ctx *ctx);   /* the engine's app pointer (eng_options.app) */

/* True once someone asked to cancel the run; long nodes may stop early. */
int eng_ctx_cancelled(const eng_ctx *ctx);

/* --- deadline (eng_graph_set_timeout) --- */

/* When this attempt must return, in util_mono_ms() time (monotonic ms);
 * 0 when the node has no timeout. A node that calls something with a
 * timeout of its own (an LLM request, a subprocess) can derive it from
 * eng_ctx_remaining_ms(). */
int64_t eng_ctx_deadline_ms(const eng_ctx *ctx);

/* Milliseconds left before the deadline: -1 when there is none, 0 once it
 * has passed. */
int64_t eng_ctx_remaining_ms(const eng_ctx *ctx);

/* True once the deadline has passed. Whatever the attempt returns after
 * that is discarded and it counts as failed with ERR_TIMEOUT. */
int eng_ctx_expired(const eng_ctx *ctx);

/* True when a long node should give up now: the run was asked to cancel or
 * the attempt's deadline passed. Returning at once (any code) is best. */
int eng_ctx_should_stop(const eng_ctx *ctx);

/* --- events --- */

/* Takes the oldest delivered, unconsumed event with `key` into *out (owned
 * by the caller) and returns 0. When there is none, records that the run
 * waits for `key` (with `payload`, e.g. the question to show) and returns
 * ERR_WAIT, which the node must return. Steals `payload` (may be NULL) in
 * both cases, so it can be built in the call. */
int eng_await(eng_ctx *ctx, const char *key, json_t *payload, json_t **out);

/* Takes every delivered, unconsumed event with `key`, oldest first, into
 * *out (a new array, possibly empty). Never waits. */
int eng_take(eng_ctx *ctx, const char *key, json_t **out);

/* Records a wait for `key` without taking anything, so a node can wait for
 * the first of several keys: call it once per key, then return ERR_WAIT.
 * Steals `payload` (may be NULL; the first one given is kept). Returns
 * ERR_WAIT. */
int eng_wait(eng_ctx *ctx, const char *key, json_t *payload);

/* --- side effects --- */

/* Writes an outbox row of `kind` ("telegram.send", "spawn", ...) for
 * `dest` (rows of one dest are delivered in order; NULL: no order), with
 * `payload` (stolen). */
int eng_emit(eng_ctx *ctx, const char *kind, const char *dest, json_t *payload);

/* --- streaming (engine/stream.h) --- */

/* True when someone wants one of `modes` (ENG_STREAM_CUSTOM, ...) now:
 * build a costly payload only then. One atomic load. */
int eng_ctx_streaming(const eng_ctx *ctx, unsigned modes);

/* Emits `payload` (stolen; NULL: {}) as a custom event of the node's run,
 * step and subgraph path. Ephemeral: never checkpointed, gone with a
 * retried attempt's other effects only in that nobody can take it back.
 * Never blocks; 0 also when nobody listens. */
int eng_stream_custom(eng_ctx *ctx, json_t *payload);

/* Emits `payload` (stolen) as a messages event: a model's tokens, as the
 * nodes' model calls do ({"call", "text"}, engine/stream.h). */
int eng_stream_message(eng_ctx *ctx, json_t *payload);

/* The node's subgraph path ("" at the top). Borrowed. */
const char *eng_ctx_ns(const eng_ctx *ctx);

/* --- routing (LangGraph's Command(goto) and Send) --- */

/* Runs `node` (or ENG_END) next, besides the node's edges. */
int eng_goto(eng_ctx *ctx, const char *node);
/* Runs `node` next with its own `input` (stolen). */
int eng_send(eng_ctx *ctx, const char *node, json_t *input);

#endif
