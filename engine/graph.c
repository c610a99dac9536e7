#include "engine/graph_int.h"
#include "core/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const eng_retry eng_retry_default = {
	.max_attempts = 3,
	.initial_ms = 200,
	.max_ms = 5000,
	.factor = 2.0,
	.jitter = 1,
	.retry_on = 0,
};

/* A join: `to` runs once every node of `from` has completed. */
typedef struct join_def {
	int to;
	int *from;
	int nfrom;
} join_def;

struct eng_graph {
	char *name;
	eng_node_def start;
	eng_node_def *nodes;
	int nnodes, cap;
	join_def *joins;
	int njoins;
	eng_schema *schema;
	int recursion_limit;
	int64_t default_timeout_ms;
	int compiled;
};

struct eng_next {
	const eng_graph *g;
	const eng_node_def *from; /* whose router picks */
	json_t *tasks;
	int rc; /* first error seen */
};

int eng_graph_new(eng_graph **out, const char *name)
{
	eng_graph *g;

	*out = NULL;
	if (!name || !*name)
		return err_set(ERR_INVALID, "a graph needs a name");
	g = calloc(1, sizeof(*g));
	if (!g)
		return err_set(ERR_NOMEM, "out of memory");
	g->name = strdup(name);
	g->start.name = strdup(ENG_START);
	if (!g->name || !g->start.name || eng_schema_new(&g->schema) < 0) {
		eng_graph_free(g);
		return err_set(ERR_NOMEM, "out of memory");
	}
	g->recursion_limit = ENG_DEFAULT_RECURSION_LIMIT;
	*out = g;
	return 0;
}

static void targets_clear(eng_targets *t)
{
	for (int i = 0; i < t->n; i++)
		free(t->names[i]);
	free(t->names);
	free(t->idx);
	memset(t, 0, sizeof(*t));
}

static void node_clear(eng_node_def *n)
{
	free(n->name);
	free(n->edges);
	targets_clear(&n->routes);
	targets_clear(&n->dests);
}

/* Copies the NULL-terminated `names` into *t (resolved by compile).
 * ERR_INVALID for an empty list, ERR_NOMEM. */
static int targets_set(eng_targets *t, const char *what, const char *const *names)
{
	int n = 0;

	while (names && names[n])
		n++;
	if (n == 0)
		return err_set(ERR_INVALID, "%s: declare at least one target", what);
	targets_clear(t);
	t->names = calloc((size_t)n, sizeof(char *));
	t->idx = calloc((size_t)n, sizeof(int));
	if (!t->names || !t->idx) {
		targets_clear(t);
		return err_set(ERR_NOMEM, "out of memory");
	}
	for (t->n = 0; t->n < n; t->n++) {
		t->names[t->n] = strdup(names[t->n]);
		if (!t->names[t->n]) {
			targets_clear(t);
			return err_set(ERR_NOMEM, "out of memory");
		}
	}
	return 0;
}

/* Whether `name` is among the targets t (ENG_END always is when `end_ok`). */
static int targets_have(const eng_targets *t, const char *name, int end_ok)
{
	if (end_ok && strcmp(name, ENG_END) == 0)
		return 1;
	for (int i = 0; i < t->n; i++)
		if (strcmp(t->names[i], name) == 0)
			return 1;
	return 0;
}

/* "a, b, __end__" for messages. */
static void targets_list(const eng_targets *t, char *out, size_t cap)
{
	size_t k = 0;

	out[0] = '\0';
	for (int i = 0; i < t->n && k < cap; i++) {
		int w = snprintf(out + k, cap - k, "%s%s", i ? ", " : "", t->names[i]);
		if (w < 0)
			break;
		k += (size_t)w;
	}
	if (t->n == 0)
		snprintf(out, cap, "none");
}

void eng_graph_free(eng_graph *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->nnodes; i++)
		node_clear(&g->nodes[i]);
	node_clear(&g->start);
	free(g->nodes);
	for (int i = 0; i < g->njoins; i++)
		free(g->joins[i].from);
	free(g->joins);
	eng_schema_free(g->schema);
	free(g->name);
	free(g);
}

static int find_index(const eng_graph *g, const char *name)
{
	for (int i = 0; i < g->nnodes; i++)
		if (strcmp(g->nodes[i].name, name) == 0)
			return i;
	return -2;
}

const eng_node_def *eng_graph_node(const eng_graph *g, const char *name)
{
	int i;

	if (strcmp(name, ENG_START) == 0)
		return &g->start;
	i = find_index(g, name);
	return i >= 0 ? &g->nodes[i] : NULL;
}

static int check_mutable(const eng_graph *g)
{
	if (g->compiled)
		return err_set(ERR_INVALID, "graph '%s' is compiled and can no longer change",
			       g->name);
	return 0;
}

int eng_graph_add_node(eng_graph *g, const char *name, eng_node_fn fn, void *udata,
		       const eng_retry *retry)
{
	eng_node_def *n;
	int rc = check_mutable(g);

	if (rc < 0)
		return rc;
	if (!name || !*name || !fn)
		return err_set(ERR_INVALID, "a node needs a name and a function");
	if (strcmp(name, ENG_START) == 0 || strcmp(name, ENG_END) == 0)
		return err_set(ERR_INVALID, "'%s' is a reserved node name", name);
	if (find_index(g, name) >= 0)
		return err_set(ERR_CONFLICT, "graph '%s' already has a node '%s'", g->name, name);
	if (retry && retry->max_attempts < 1)
		return err_set(ERR_INVALID, "node '%s': max_attempts must be at least 1", name);
	if (g->nnodes == g->cap) {
		int ncap = g->cap ? g->cap * 2 : 8;
		eng_node_def *p = realloc(g->nodes, (size_t)ncap * sizeof(*p));
		if (!p)
			return err_set(ERR_NOMEM, "out of memory");
		g->nodes = p;
		g->cap = ncap;
	}
	n = &g->nodes[g->nnodes];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	if (!n->name)
		return err_set(ERR_NOMEM, "out of memory");
	n->fn = fn;
	n->udata = udata;
	n->retry = retry ? *retry : eng_retry_default;
	if (n->retry.retry_on == 0)
		n->retry.retry_on = ENG_RETRY_TRANSIENT;
	if (n->retry.factor < 1.0)
		n->retry.factor = 1.0;
	g->nnodes++;
	return 0;
}

/* Edges name nodes that exist already: add nodes first, then edges. */
static eng_node_def *mutable_node(eng_graph *g, const char *name)
{
	int i;

	if (strcmp(name, ENG_START) == 0)
		return &g->start;
	i = find_index(g, name);
	return i >= 0 ? &g->nodes[i] : NULL;
}

int eng_graph_add_edge(eng_graph *g, const char *from, const char *to)
{
	eng_node_def *src;
	int target, *p, rc = check_mutable(g);

	if (rc < 0)
		return rc;
	src = mutable_node(g, from);
	if (!src)
		return err_set(ERR_INVALID, "edge from unknown node '%s' (add nodes before edges)",
			       from);
	if (strcmp(to, ENG_END) == 0) {
		target = -1;
	} else {
		target = find_index(g, to);
		if (target < 0)
			return err_set(ERR_INVALID, "edge from '%s' to unknown node '%s'", from, to);
	}
	for (int i = 0; i < src->nedges; i++)
		if (src->edges[i] == target)
			return 0;
	p = realloc(src->edges, (size_t)(src->nedges + 1) * sizeof(int));
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	src->edges = p;
	src->edges[src->nedges++] = target;
	return 0;
}

int eng_graph_add_join(eng_graph *g, const char *const *from, int n, const char *to)
{
	join_def *p, j = {0};
	int rc = check_mutable(g);

	if (rc < 0)
		return rc;
	if (!from || n < 2 || n > ENG_JOIN_MAX || !to)
		return err_set(ERR_INVALID, "a join needs 2 to %d nodes to wait for and a target",
			       ENG_JOIN_MAX);
	j.to = find_index(g, to);
	if (j.to < 0)
		return err_set(ERR_INVALID, "join to unknown node '%s' (add nodes before edges; "
					    "a join cannot lead to END)",
			       to);
	j.from = calloc((size_t)n, sizeof(int));
	if (!j.from)
		return err_set(ERR_NOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		int k = from[i] ? find_index(g, from[i]) : -2;
		if (k < 0) {
			free(j.from);
			return err_set(ERR_INVALID, "join to '%s' waits for unknown node '%s'", to,
				       from[i] ? from[i] : "(null)");
		}
		for (int m = 0; m < j.nfrom; m++)
			if (j.from[m] == k) {
				free(j.from);
				return err_set(ERR_INVALID, "join to '%s' names '%s' twice", to,
					       from[i]);
			}
		j.from[j.nfrom++] = k;
	}
	p = realloc(g->joins, (size_t)(g->njoins + 1) * sizeof(*p));
	if (!p) {
		free(j.from);
		return err_set(ERR_NOMEM, "out of memory");
	}
	g->joins = p;
	g->joins[g->njoins++] = j;
	return 0;
}

int eng_graph_add_router(eng_graph *g, const char *from, eng_router_fn fn, void *udata,
			 const char *const *targets)
{
	eng_node_def *src;
	char what[160];
	int rc = check_mutable(g);

	if (rc < 0)
		return rc;
	src = mutable_node(g, from);
	if (!src)
		return err_set(ERR_INVALID, "router after unknown node '%s'", from);
	if (src->router)
		return err_set(ERR_CONFLICT, "node '%s' already has a router", from);
	if (!fn)
		return err_set(ERR_INVALID, "router after '%s' needs a function", from);
	snprintf(what, sizeof(what), "router after '%s'", from);
	rc = targets_set(&src->routes, what, targets);
	if (rc < 0)
		return rc;
	src->router = fn;
	src->router_udata = udata;
	return 0;
}

int eng_graph_set_destinations(eng_graph *g, const char *node, const char *const *targets)
{
	char what[160];
	int i, rc = check_mutable(g);

	if (rc < 0)
		return rc;
	i = node ? find_index(g, node) : -2;
	if (i < 0)
		return err_set(ERR_NOTFOUND, "graph '%s' has no node '%s' to give destinations",
			       g->name, node ? node : "(null)");
	snprintf(what, sizeof(what), "destinations of '%s'", node);
	return targets_set(&g->nodes[i].dests, what, targets);
}

int eng_graph_set_reducer(eng_graph *g, const char *key, eng_reducer r)
{
	int rc = check_mutable(g);
	return rc < 0 ? rc : eng_schema_set(g->schema, key, r);
}

void eng_graph_set_recursion_limit(eng_graph *g, int limit)
{
	if (!g->compiled && limit > 0)
		g->recursion_limit = limit;
}

int eng_graph_set_timeout(eng_graph *g, const char *node, int64_t ms)
{
	int i, rc = check_mutable(g);

	if (rc < 0)
		return rc;
	if (ms < 0)
		return err_set(ERR_INVALID, "node '%s': a timeout cannot be negative", node);
	i = node ? find_index(g, node) : -2;
	if (i < 0)
		return err_set(ERR_NOTFOUND, "graph '%s' has no node '%s' to set a timeout on",
			       g->name, node ? node : "(null)");
	g->nodes[i].timeout_ms = ms;
	g->nodes[i].timeout_set = 1;
	return 0;
}

int eng_graph_set_default_timeout(eng_graph *g, int64_t ms)
{
	int rc = check_mutable(g);

	if (rc < 0)
		return rc;
	if (ms < 0)
		return err_set(ERR_INVALID, "graph '%s': a timeout cannot be negative", g->name);
	g->default_timeout_ms = ms;
	return 0;
}

/* Resolves the names of t to node indices (-1: END); ERR_INVALID naming
 * `what` and the unknown target. */
static int targets_resolve(const eng_graph *g, eng_targets *t, const char *what)
{
	for (int i = 0; i < t->n; i++) {
		t->idx[i] = strcmp(t->names[i], ENG_END) == 0 ? -1 : find_index(g, t->names[i]);
		if (t->idx[i] == -2)
			return err_set(ERR_INVALID, "graph '%s': %s names unknown node '%s'", g->name,
				       what, t->names[i]);
	}
	return 0;
}

/* Marks node k reached and stacks it. */
static void reach(char *seen, int *stack, int *sp, int k)
{
	if (k >= 0 && !seen[k]) {
		seen[k] = 1;
		stack[(*sp)++] = k;
	}
}

/* Everything `n` (node index `at`, -1 for START) may lead to, stacked. */
static void reach_from(const eng_graph *g, const eng_node_def *n, int at, char *seen, int *stack,
		       int *sp)
{
	for (int i = 0; i < n->nedges; i++)
		reach(seen, stack, sp, n->edges[i]);
	for (int i = 0; i < n->routes.n; i++)
		reach(seen, stack, sp, n->routes.idx[i]);
	for (int i = 0; i < n->dests.n; i++)
		reach(seen, stack, sp, n->dests.idx[i]);
	/* a join's target is reached when all it waits for are; checked
	 * loosely here: one of them */
	for (int i = 0; at >= 0 && i < g->njoins; i++)
		for (int k = 0; k < g->joins[i].nfrom; k++)
			if (g->joins[i].from[k] == at)
				reach(seen, stack, sp, g->joins[i].to);
}

int eng_graph_compile(eng_graph *g)
{
	char *seen, what[160];
	int *stack, sp = 0, rc;

	if (g->compiled)
		return 0;
	if (g->start.nedges == 0 && !g->start.router)
		return err_set(ERR_INVALID, "graph '%s' has no edge from START", g->name);
	if (g->nnodes == 0)
		return err_set(ERR_INVALID, "graph '%s' has no nodes", g->name);
	rc = targets_resolve(g, &g->start.routes, "the router after START");
	for (int i = 0; rc == 0 && i < g->nnodes; i++) {
		snprintf(what, sizeof(what), "the router after '%s'", g->nodes[i].name);
		rc = targets_resolve(g, &g->nodes[i].routes, what);
		snprintf(what, sizeof(what), "the destinations of '%s'", g->nodes[i].name);
		if (rc == 0)
			rc = targets_resolve(g, &g->nodes[i].dests, what);
	}
	if (rc < 0)
		return rc;
	/* every node reachable from START through the declared transitions */
	seen = calloc((size_t)g->nnodes, 1);
	stack = calloc((size_t)g->nnodes + 1, sizeof(int));
	if (!seen || !stack) {
		free(seen);
		free(stack);
		return err_set(ERR_NOMEM, "out of memory");
	}
	reach_from(g, &g->start, -1, seen, stack, &sp);
	while (sp > 0) {
		int at = stack[--sp];
		reach_from(g, &g->nodes[at], at, seen, stack, &sp);
	}
	for (int i = 0; i < g->nnodes; i++)
		if (!seen[i]) {
			rc = err_set(ERR_INVALID,
				     "node '%s' of graph '%s' cannot be reached from START (no edge, "
				     "router target or destination leads to it)",
				     g->nodes[i].name, g->name);
			break;
		}
	free(seen);
	free(stack);
	if (rc == 0) {
		for (int i = 0; i < g->nnodes; i++)
			if (!g->nodes[i].timeout_set)
				g->nodes[i].timeout_ms = g->default_timeout_ms;
		g->compiled = 1;
	}
	return rc;
}

const char *eng_graph_name(const eng_graph *g)
{
	return g->name;
}

const eng_schema *eng_graph_schema(const eng_graph *g)
{
	return g->schema;
}

int eng_graph_recursion_limit(const eng_graph *g)
{
	return g->recursion_limit;
}

int eng_graph_compiled(const eng_graph *g)
{
	return g->compiled;
}

int eng_tasks_add(const eng_graph *g, json_t *tasks, const char *node, json_t *input)
{
	json_t *t;
	size_t i;
	json_t *it;

	if (strcmp(node, ENG_END) == 0) {
		json_decref(input);
		return 0;
	}
	if (find_index(g, node) < 0) {
		json_decref(input);
		return err_set(ERR_INVALID, "unknown node '%s' in graph '%s'", node, g->name);
	}
	if (!input) {
		json_array_foreach(tasks, i, it) {
			if (!json_object_get(it, "input") &&
			    strcmp(json_string_value(json_object_get(it, "node")), node) == 0)
				return 0;
		}
		t = json_pack("{s:s}", "node", node);
	} else {
		t = json_pack("{s:s,s:o}", "node", node, "input", input);
	}
	if (!t || json_array_append_new(tasks, t) < 0)
		return err_set(ERR_NOMEM, "out of memory");
	return 0;
}

/* 0 when the router running for `n` declared `node`; ERR_INVALID naming
 * it otherwise (an unknown node is named as such). */
static int next_check(const eng_next *n, const char *node)
{
	char list[512];

	if (!node)
		return err_set(ERR_INVALID, "router after '%s' picked no node", n->from->name);
	if (targets_have(&n->from->routes, node, 0))
		return 0;
	if (strcmp(node, ENG_END) != 0 && find_index(n->g, node) < 0)
		return err_set(ERR_INVALID, "unknown node '%s' in graph '%s'", node, n->g->name);
	targets_list(&n->from->routes, list, sizeof(list));
	return err_set(ERR_INVALID, "router after '%s' picked '%s', which is not one of its "
				    "declared targets (%s)",
		       n->from->name, node, list);
}

int eng_next_add(eng_next *n, const char *node)
{
	int rc = next_check(n, node);

	if (rc == 0)
		rc = eng_tasks_add(n->g, n->tasks, node, NULL);
	if (rc < 0 && n->rc == 0)
		n->rc = rc;
	return rc;
}

int eng_next_send(eng_next *n, const char *node, json_t *input)
{
	int rc = next_check(n, node);

	if (rc == 0)
		rc = eng_tasks_add(n->g, n->tasks, node, input ? input : json_null());
	else
		json_decref(input);
	if (rc < 0 && n->rc == 0)
		n->rc = rc;
	return rc;
}

int eng_graph_may_goto(const eng_graph *g, const eng_node_def *from, const char *to)
{
	char list[512];

	if (targets_have(&from->dests, to, 1))
		return 0;
	if (find_index(g, to) < 0)
		return err_set(ERR_INVALID, "node '%s' routed to unknown node '%s'", from->name, to);
	targets_list(&from->dests, list, sizeof(list));
	return err_set(ERR_INVALID, "node '%s' routed to '%s', which is not one of its declared "
				    "destinations (%s; eng_graph_set_destinations declares them)",
		       from->name, to, list);
}

/* Whether the node at index k ran in `tasks` (a step's tasks, all
 * completed). */
static int ran(const eng_graph *g, const json_t *tasks, int k)
{
	size_t i;
	json_t *t;

	json_array_foreach(tasks, i, t) {
		if (strcmp(json_string_value(json_object_get(t, "node")), g->nodes[k].name) == 0)
			return 1;
	}
	return 0;
}

int eng_graph_joins(const eng_graph *g, const json_t *state, const json_t *tasks, json_t *next,
		    json_t **update)
{
	json_t *cur, *prog;
	int changed = 0, rc = 0;

	*update = NULL;
	if (g->njoins == 0)
		return 0;
	cur = json_object_get(state, ENG_JOINS_KEY);
	prog = json_is_object(cur) ? json_deep_copy(cur) : json_object();
	if (!prog)
		return err_set(ERR_NOMEM, "out of memory");
	for (int j = 0; j < g->njoins && rc == 0; j++) {
		const join_def *jd = &g->joins[j];
		char key[16];
		json_t *seen;
		int all = 1;

		snprintf(key, sizeof(key), "%d", j);
		seen = json_object_get(prog, key);
		if (!json_is_array(seen)) {
			seen = json_array();
			if (!seen || json_object_set_new(prog, key, seen) < 0) {
				rc = err_set(ERR_NOMEM, "out of memory");
				break;
			}
		}
		for (int k = 0; k < jd->nfrom; k++) {
			const char *name = g->nodes[jd->from[k]].name;
			int have = 0;
			size_t i;
			json_t *x;

			json_array_foreach(seen, i, x) {
				if (json_is_string(x) && strcmp(json_string_value(x), name) == 0)
					have = 1;
			}
			if (!have && ran(g, tasks, jd->from[k])) {
				json_array_append_new(seen, json_string(name));
				have = changed = 1;
			}
			if (!have)
				all = 0;
		}
		if (all) {
			rc = eng_tasks_add(g, next, g->nodes[jd->to].name, NULL);
			json_object_del(prog, key);
			changed = 1;
		} else if (json_array_size(seen) == 0) {
			json_object_del(prog, key);
		}
	}
	if (rc == 0 && changed)
		*update = json_pack("{s:o}", ENG_JOINS_KEY, prog);
	else
		json_decref(prog);
	if (rc == 0 && changed && !*update)
		rc = err_set(ERR_NOMEM, "out of memory");
	return rc;
}

int eng_graph_targets(const eng_graph *g, const eng_node_def *from, const json_t *state,
		      json_t *tasks)
{
	int rc;

	for (int i = 0; i < from->nedges; i++) {
		if (from->edges[i] < 0)
			continue;
		rc = eng_tasks_add(g, tasks, g->nodes[from->edges[i]].name, NULL);
		if (rc < 0)
			return rc;
	}
	if (from->router) {
		eng_next next = {.g = g, .from = from, .tasks = tasks, .rc = 0};
		rc = from->router(state, &next, from->router_udata);
		if (rc == 0)
			rc = next.rc;
		if (rc < 0)
			return err_wrap("router after '%s'", from->name);
	}
	return 0;
}

/* --- the graph's shape: edges and drawings --- */

static const char *node_name(const eng_graph *g, int k)
{
	return k < 0 ? ENG_END : g->nodes[k].name;
}

/* Appends {"from", "to", "kind"} unless the same pair is there already. */
static int edge_add(json_t *edges, const char *from, const char *to, const char *kind)
{
	size_t i;
	json_t *e;

	json_array_foreach(edges, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "from")), from) == 0 &&
		    strcmp(json_string_value(json_object_get(e, "to")), to) == 0)
			return 0;
	}
	e = json_pack("{s:s, s:s, s:s}", "from", from, "to", to, "kind", kind);
	if (!e || json_array_append_new(edges, e) < 0)
		return err_set(ERR_NOMEM, "out of memory");
	return 0;
}

/* The transitions out of `n` (node index `at`, -1 for START). */
static int edges_of(const eng_graph *g, const eng_node_def *n, int at, json_t *edges)
{
	int rc = 0, any = n->nedges + n->routes.n + n->dests.n;

	for (int i = 0; rc == 0 && i < n->nedges; i++)
		rc = edge_add(edges, n->name, node_name(g, n->edges[i]), "edge");
	for (int i = 0; rc == 0 && i < n->routes.n; i++)
		rc = edge_add(edges, n->name, node_name(g, n->routes.idx[i]), "router");
	for (int i = 0; rc == 0 && i < n->dests.n; i++)
		rc = edge_add(edges, n->name, node_name(g, n->dests.idx[i]), "goto");
	for (int i = 0; rc == 0 && at >= 0 && i < g->njoins; i++)
		for (int k = 0; rc == 0 && k < g->joins[i].nfrom; k++)
			if (g->joins[i].from[k] == at) {
				rc = edge_add(edges, n->name, node_name(g, g->joins[i].to), "join");
				any++;
			}
	if (rc == 0 && at >= 0 && any == 0)
		rc = edge_add(edges, n->name, ENG_END, "end");
	return rc;
}

int eng_graph_edges(const eng_graph *g, json_t **out)
{
	json_t *edges;
	int rc;

	*out = NULL;
	if (!g->compiled)
		return err_set(ERR_INVALID, "graph '%s' is not compiled", g->name);
	edges = json_array();
	if (!edges)
		return err_set(ERR_NOMEM, "out of memory");
	rc = edges_of(g, &g->start, -1, edges);
	for (int i = 0; rc == 0 && i < g->nnodes; i++)
		rc = edges_of(g, &g->nodes[i], i, edges);
	if (rc < 0) {
		json_decref(edges);
		return rc;
	}
	*out = edges;
	return 0;
}

/* A Mermaid node id for `name`: letters, digits and '_' kept, the rest
 * made '_'. */
static void mermaid_id(buf *out, const char *name)
{
	for (const char *p = name; *p; p++)
		buf_putc(out, isalnum((unsigned char)*p) || *p == '_' ? *p : '_');
}

/* `name` with what Mermaid and DOT labels cannot hold escaped. */
static void label_escape(buf *out, const char *name)
{
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			buf_puts(out, "#quot;");
		else if (*p == '<')
			buf_puts(out, "&lt;");
		else if (*p == '>')
			buf_puts(out, "&gt;");
		else
			buf_putc(out, *p);
	}
}

static void draw_mermaid(const eng_graph *g, const json_t *edges, buf *out)
{
	size_t i;
	const json_t *e;

	buf_puts(out, "%%{init: {'flowchart': {'curve': 'linear'}}}%%\ngraph TD;\n");
	buf_puts(out, "\t__start__([<p>__start__</p>]):::first\n");
	for (int k = 0; k < g->nnodes; k++) {
		buf_putc(out, '\t');
		mermaid_id(out, g->nodes[k].name);
		buf_puts(out, "(\"");
		label_escape(out, g->nodes[k].name);
		buf_puts(out, "\")\n");
	}
	buf_puts(out, "\t__end__([<p>__end__</p>]):::last\n");
	json_array_foreach(edges, i, e) {
		const char *kind = json_string_value(json_object_get(e, "kind"));
		int dotted = strcmp(kind, "router") == 0 || strcmp(kind, "goto") == 0;

		buf_putc(out, '\t');
		mermaid_id(out, json_string_value(json_object_get(e, "from")));
		buf_puts(out, dotted ? " -.-> " : " --> ");
		mermaid_id(out, json_string_value(json_object_get(e, "to")));
		buf_puts(out, ";\n");
	}
	buf_puts(out, "\tclassDef default fill:#f2f0ff,line-height:1.2\n"
		      "\tclassDef first fill-opacity:0\n"
		      "\tclassDef last fill:#bfb6fc\n");
}

static void draw_dot(const eng_graph *g, const json_t *edges, buf *out)
{
	size_t i;
	const json_t *e;

	buf_puts(out, "digraph \"");
	label_escape(out, g->name);
	buf_puts(out, "\" {\n\trankdir=TB;\n\t\"__start__\" [shape=oval];\n");
	for (int k = 0; k < g->nnodes; k++) {
		buf_puts(out, "\t\"");
		label_escape(out, g->nodes[k].name);
		buf_puts(out, "\" [shape=box];\n");
	}
	buf_puts(out, "\t\"__end__\" [shape=oval];\n");
	json_array_foreach(edges, i, e) {
		const char *kind = json_string_value(json_object_get(e, "kind"));

		buf_puts(out, "\t\"");
		label_escape(out, json_string_value(json_object_get(e, "from")));
		buf_puts(out, "\" -> \"");
		label_escape(out, json_string_value(json_object_get(e, "to")));
		buf_puts(out, "\"");
		if (strcmp(kind, "router") == 0 || strcmp(kind, "goto") == 0)
			buf_puts(out, " [style=dashed]");
		else if (strcmp(kind, "join") == 0)
			buf_puts(out, " [style=bold]");
		buf_puts(out, ";\n");
	}
	buf_puts(out, "}\n");
}

/* One line per node: "from -> a, b (router: c, d)". */
static void draw_text(const eng_graph *g, const json_t *edges, buf *out)
{
	buf_printf(out, "graph %s: %d node%s\n", g->name, g->nnodes, g->nnodes == 1 ? "" : "s");
	for (int k = -1; k < g->nnodes; k++) {
		static const char *const kinds[] = {"edge", "join", "end", "router", "goto"};
		static const char *const titles[] = {"", "join: ", "", "router: ", "goto: "};
		const char *from = k < 0 ? ENG_START : g->nodes[k].name;
		int group = 0;

		buf_printf(out, "  %s ->", from);
		for (size_t t = 0; t < sizeof(kinds) / sizeof(kinds[0]); t++) {
			size_t i;
			const json_t *e;
			int first = 1;

			json_array_foreach(edges, i, e) {
				if (strcmp(json_string_value(json_object_get(e, "from")), from) != 0 ||
				    strcmp(json_string_value(json_object_get(e, "kind")), kinds[t]) != 0)
					continue;
				if (first && group++ > 0)
					buf_puts(out, ";");
				buf_printf(out, "%s%s%s", first ? " " : ", ", first ? titles[t] : "",
					   json_string_value(json_object_get(e, "to")));
				first = 0;
			}
		}
		buf_putc(out, '\n');
	}
}

int eng_graph_draw(const eng_graph *g, const char *format, buf *out)
{
	json_t *edges = NULL;
	int rc;

	if (!format || (strcmp(format, "mermaid") != 0 && strcmp(format, "dot") != 0 &&
			strcmp(format, "text") != 0))
		return err_set(ERR_INVALID, "unknown drawing format '%s' (mermaid, dot or text)",
			       format ? format : "(null)");
	rc = eng_graph_edges(g, &edges);
	if (rc < 0)
		return rc;
	if (strcmp(format, "mermaid") == 0)
		draw_mermaid(g, edges, out);
	else if (strcmp(format, "dot") == 0)
		draw_dot(g, edges, out);
	else
		draw_text(g, edges, out);
	json_decref(edges);
	return 0;
}
