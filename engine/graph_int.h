/*
 * graph_int — what the engine reads of a compiled graph. Not for nodes or
 * graph authors (they use engine/graph.h).
 */
#ifndef ORCH_ENGINE_GRAPH_INT_H
#define ORCH_ENGINE_GRAPH_INT_H

#include "engine/graph.h"

/* Declared targets: names as given, resolved to node indices (-1 is END)
 * by eng_graph_compile. */
typedef struct eng_targets {
	char **names;
	int *idx;
	int n;
} eng_targets;

typedef struct eng_node_def {
	char *name;
	eng_node_fn fn;
	void *udata;
	eng_retry retry;
	int64_t timeout_ms; /* per attempt; 0: none (see eng_graph_set_timeout) */
	int timeout_set;    /* set for this node (not the graph's default) */
	int *edges;   /* node indices; -1 is END */
	int nedges;
	eng_router_fn router;
	void *router_udata;
	eng_targets routes; /* what the router may pick */
	eng_targets dests;  /* where the node may eng_goto/eng_send */
} eng_node_def;

/* The node called `name`, or NULL. ENG_START resolves to the start pseudo
 * node (which has edges and a router but no function). */
const eng_node_def *eng_graph_node(const eng_graph *g, const char *name);

/* After a completed step whose tasks were `tasks`: records in the joins'
 * progress which of their nodes ran, adds to `next` the targets of the
 * joins now complete, and sets *update to the state update that stores the
 * new progress ({ENG_JOINS_KEY: {...}}, owned), or NULL when nothing
 * changed. */
int eng_graph_joins(const eng_graph *g, const json_t *state, const json_t *tasks, json_t *next,
		    json_t **update);

const eng_schema *eng_graph_schema(const eng_graph *g);
int eng_graph_recursion_limit(const eng_graph *g);
int eng_graph_compiled(const eng_graph *g);

/* Appends to `tasks` (a JSON array of {"node": name[, "input": v]}) the
 * targets of `from` for the next step: its fixed edges and what its router
 * picks given `state`. Plain targets already in `tasks` are not added twice.
 * ERR_INVALID when the router names an unknown node; the router's own error
 * otherwise. */
int eng_graph_targets(const eng_graph *g, const eng_node_def *from, const json_t *state,
		      json_t *tasks);

/* 0 when node `from` may eng_goto/eng_send `to` (a declared destination, or
 * ENG_END); ERR_INVALID naming both otherwise. */
int eng_graph_may_goto(const eng_graph *g, const eng_node_def *from, const char *to);

/* Appends a task to `tasks` the way eng_graph_targets does: a plain target
 * (input NULL) once, a task with input always. ENG_END is ignored.
 * ERR_INVALID for an unknown node. */
int eng_tasks_add(const eng_graph *g, json_t *tasks, const char *node, json_t *input);

#endif
