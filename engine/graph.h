/*
 * graph — defining a graph: nodes, edges, routers, reducers, retries.
 *
 * A graph is built once at start-up, compiled (checked), then shared
 * read-only by every engine thread. Execution follows LangGraph's Pregel
 * model: a run proceeds in super-steps; the tasks of one step all see the
 * same state, their updates are applied together (in task order) at the end
 * of the step, and the next step's tasks are the targets of the nodes that
 * ran: fixed edges, the node's router (a conditional edge, called with the
 * new state), and any eng_goto/eng_send the node itself asked for. Plain
 * targets named more than once run once; eng_send tasks each run with their
 * own input (LangGraph's Send), so one node can run many times in one step.
 * A step with no targets ends the run.
 *
 * Every transition is declared: a router names the targets it may pick, a
 * node that routes by itself names its destinations. eng_graph_compile
 * refuses a declared target that is no node and a node that nothing leads
 * to; a router or node that picks an undeclared target fails its run. So
 * the compiled graph knows its whole shape, and eng_graph_draw draws it.
 *
 *   eng_graph *g;
 *   eng_graph_new(&g, "factory");
 *   eng_graph_add_node(g, "brainstorm", brainstorm_fn, NULL, NULL);
 *   eng_graph_add_node(g, "review", review_fn, NULL, NULL);
 *   eng_graph_add_edge(g, ENG_START, "brainstorm");
 *   eng_graph_add_router(g, "brainstorm", after_brainstorm, NULL,
 *                        ENG_TARGETS("review", ENG_END));
 *   eng_graph_set_reducer(g, "messages", ENG_APPEND);
 *   eng_graph_compile(g);
 */
#ifndef ORCH_ENGINE_GRAPH_H
#define ORCH_ENGINE_GRAPH_H

#include <jansson.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "engine/state.h"

#define ENG_START "__start__"
#define ENG_END "__end__"
#define ENG_DEFAULT_RECURSION_LIMIT 1000

typedef struct eng_graph eng_graph;
typedef struct eng_ctx eng_ctx;   /* a node's view of its run; see engine/ctx.h */
typedef struct eng_next eng_next; /* targets a router chooses */

/* A node. Reads the state (borrowed, read-only: it is shared with the other
 * tasks of the step) and its input (the eng_send payload, or NULL), and sets
 * *update to a new JSON object (or leaves it NULL for no change); the engine
 * takes ownership of *update. Returns 0, ERR_WAIT after eng_await parked it,
 * or a negative err_code with err_set() explaining the failure, which the
 * node's retry policy may retry. Called from engine threads, several at once:
 * a node must be thread-safe. */
typedef int (*eng_node_fn)(eng_ctx *ctx, const json_t *state, const json_t *input,
			   json_t **update);

/* A router (conditional edge) after a node: adds the next targets with
 * eng_next_add/eng_next_send given the state after the step. Adding nothing,
 * or ENG_END, ends this branch. Returns 0 or a negative err_code. */
typedef int (*eng_router_fn)(const json_t *state, eng_next *next, void *udata);

/* Retry policy of a node. Delays grow from initial_ms by `factor` up to
 * max_ms; with jitter each delay is drawn from [d/2, d]. */
typedef struct eng_retry {
	int max_attempts;  /* total tries, >= 1 (1: no retry) */
	int64_t initial_ms;
	int64_t max_ms;
	double factor;
	int jitter;
	uint32_t retry_on; /* ENG_RETRY_ON(code) bits; 0 means ENG_RETRY_TRANSIENT */
} eng_retry;

#define ENG_RETRY_ON(code) (1u << (-(code)))
/* Failures worth another try: network, timeouts, rate limits, lost DB. */
#define ENG_RETRY_TRANSIENT                                                                    \
	(ENG_RETRY_ON(ERR_IO) | ENG_RETRY_ON(ERR_DB) | ENG_RETRY_ON(ERR_TIMEOUT) |              \
	 ENG_RETRY_ON(ERR_BUSY) | ENG_RETRY_ON(ERR_HTTP) | ENG_RETRY_ON(ERR_REDIS) |             \
	 ENG_RETRY_ON(ERR_RETRY))
#define ENG_RETRY_ALL 0xffffffffu

/* The policy used when a node is added without one: 3 tries, 200 ms to 5 s. */
extern const eng_retry eng_retry_default;

/* Creates an empty graph named `name` (runs refer to graphs by name). */
int eng_graph_new(eng_graph **out, const char *name);
void eng_graph_free(eng_graph *g);

/* Adds a node. `udata` is handed to the node through eng_ctx_udata().
 * `retry` is copied; NULL uses eng_retry_default. ERR_CONFLICT for a second
 * node of the same name, ERR_INVALID for a reserved name. */
int eng_graph_add_node(eng_graph *g, const char *name, eng_node_fn fn, void *udata,
		       const eng_retry *retry);

/* A fixed edge. `from` may be ENG_START, `to` may be ENG_END. Several edges
 * from one node fan out: all targets run in the next step. */
int eng_graph_add_edge(eng_graph *g, const char *from, const char *to);

/* A join (LangGraph's add_edge([a, b], c)): `to` runs once every one of the
 * `n` nodes in `from` (2 to ENG_JOIN_MAX) has completed since `to` last ran
 * through this join, whether they ran in the same super-step or in
 * different ones (branches of different lengths). A plain edge from each
 * would run `to` once per branch that reaches it in a different step. The
 * progress is kept in the state under ENG_JOINS_KEY (replace reducer), so
 * it is checkpointed with every step and survives crashes, takeovers and
 * forks; nodes should leave that key alone. ERR_INVALID for unknown or
 * repeated nodes, or END as the target. */
#define ENG_JOIN_MAX 32
#define ENG_JOINS_KEY "__joins__"
int eng_graph_add_join(eng_graph *g, const char *const *from, int n, const char *to);

/* A NULL-terminated list of targets (node names or ENG_END), for
 * eng_graph_add_router and eng_graph_set_destinations. */
#define ENG_TARGETS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A conditional edge: after `from` runs, `fn` picks the next targets among
 * `targets` (NULL-terminated, at least one; copied), the only ones it may
 * pick: eng_graph_compile refuses a target that is no node, and a router
 * that picks another fails its run (ERR_INVALID naming it). At most one
 * router per node (ENG_START may have one too). */
int eng_graph_add_router(eng_graph *g, const char *from, eng_router_fn fn, void *udata,
			 const char *const *targets);

/* Where `node` may route by itself with eng_goto/eng_send (LangGraph's
 * destinations), NULL-terminated and copied; ENG_END is always allowed. A
 * node without destinations may only eng_goto(ctx, ENG_END); a goto or send
 * to a target not declared fails the node (ERR_INVALID). Call before
 * eng_graph_compile, which checks that every destination is a node. */
int eng_graph_set_destinations(eng_graph *g, const char *node, const char *const *targets);

int eng_graph_set_reducer(eng_graph *g, const char *key, eng_reducer r);

/* Maximum super-steps per run (default ENG_DEFAULT_RECURSION_LIMIT). */
void eng_graph_set_recursion_limit(eng_graph *g, int limit);

/* Per-node timeout (Temporal's activity timeout): each attempt of `node`
 * must return within `ms` milliseconds of its start; 0 means no timeout
 * (the default). The node sees its deadline through eng_ctx_deadline_ms()
 * and eng_ctx_should_stop() and should return early by itself.
 *
 * An attempt that returns after its deadline fails with ERR_TIMEOUT,
 * whatever it returned: its update, routing, outbox rows and taken events
 * are discarded, and the node's retry policy decides whether to try again
 * (ENG_RETRY_TRANSIENT includes ERR_TIMEOUT). After the last attempt the run
 * fails with that error, as for any other node failure.
 *
 * An attempt that does not return at all (a hung call): once it is past its
 * deadline plus a grace period (the larger of 1 s and a tenth of the
 * timeout), the engine's heartbeat stops renewing the run's lease and logs
 * an error, so the lease expires and this or another engine takes the run
 * over from its last checkpoint. The stuck OS thread cannot be killed safely
 * in C: it stays busy (its worker claims nothing else) until the node
 * returns, and whatever it produces then is fenced off by the lost lease and
 * writes nothing. eng_engine_stop waits for it.
 *
 * Call before eng_graph_compile. ERR_NOTFOUND for an unknown node,
 * ERR_INVALID for a negative `ms` or a compiled graph. */
int eng_graph_set_timeout(eng_graph *g, const char *node, int64_t ms);

/* The timeout of every node that was given none with eng_graph_set_timeout
 * (default 0: none). Applied by eng_graph_compile; ERR_INVALID for a
 * negative `ms` or a compiled graph. */
int eng_graph_set_default_timeout(eng_graph *g, int64_t ms);

/* Checks the graph: every edge, router target and destination names a
 * node, START leads somewhere, every node is reachable from START through
 * the declared transitions. ERR_INVALID naming the problem. After this the
 * graph is read-only and may be shared between threads. */
int eng_graph_compile(eng_graph *g);

const char *eng_graph_name(const eng_graph *g);

/* Every declared transition of a compiled graph, as an array (owned by the
 * caller) of {"from", "to", "kind"}: kind "edge" (fixed), "router" (a
 * router's declared target), "goto" (a node's destination), "join" (from
 * each node a join waits for) or "end" (a node that declares nothing ends
 * its branch: the engine's implicit edge to ENG_END). In declaration order:
 * START's first, then each node's. ERR_INVALID when not compiled. */
int eng_graph_edges(const eng_graph *g, json_t **out);

/* Draws a compiled graph into `out`: `format` "mermaid" (the flowchart
 * LangGraph's draw_mermaid prints: solid arrows for fixed edges and joins,
 * dotted ones for routers and destinations), "dot" (Graphviz) or "text"
 * (one line per node and what may follow it). ERR_INVALID for another
 * format or a graph not compiled. */
int eng_graph_draw(const eng_graph *g, const char *format, buf *out);

/* --- used by routers --- */

/* Adds a target node (or ENG_END). */
int eng_next_add(eng_next *n, const char *node);

/* Adds a task that runs `node` with its own `input` (steals the reference;
 * NULL means no input). */
int eng_next_send(eng_next *n, const char *node, json_t *input);

#endif
