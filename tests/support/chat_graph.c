#include "tests/support/chat_graph.h"
#include "core/err.h"
#include "core/util.h"
#include "engine/ctx.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static atomic_int released;
static char approvers[256];

void ts_chat_graph_release(void)
{
	atomic_store(&released, 1);
}

static const char *in_str(const json_t *input, const char *k)
{
	const char *v = json_string_value(json_object_get(input, k));
	return v ? v : "";
}

static int say(eng_ctx *ctx, const json_t *input, const char *text)
{
	char kind[48];

	snprintf(kind, sizeof(kind), "%s.send", in_str(input, "channel"));
	return eng_emit(ctx, kind, in_str(input, "chat"), json_pack("{s:s}", "text", text));
}

static int reply(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	const json_t *input = json_object_get(state, "input");
	char text[4200];

	(void)in;
	(void)update;
	snprintf(text, sizeof(text), "echo: %s", in_str(input, "text"));
	return say(ctx, input, text);
}

static int slow(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	for (int i = 0; i < 3000 && !atomic_load(&released); i++)
		util_sleep_ms(10);
	return reply(ctx, state, in, update);
}

static int ask(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	const json_t *input = json_object_get(state, "input");
	char kind[48];
	json_t *p = json_pack("{s:s,s:s}", "question", "Ship it?", "key", "approval");

	(void)in;
	(void)update;
	if (approvers[0])
		json_object_set_new(p, "approvers", json_loads(approvers, 0, NULL));
	snprintf(kind, sizeof(kind), "%s.approval", in_str(input, "channel"));
	return eng_emit(ctx, kind, in_str(input, "chat"), p);
}

static int gate(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	json_t *v = NULL;
	char text[300];
	int rc = eng_await(ctx, "approval", NULL, &v);

	(void)in;
	(void)update;
	if (rc < 0)
		return rc;
	if (json_is_true(json_object_get(v, "expired")))
		snprintf(text, sizeof(text), "decision: expired");
	else
		snprintf(text, sizeof(text), "decision: %s by %s",
			 json_string_value(json_object_get(v, "option")),
			 json_string_value(json_object_get(json_object_get(v, "by"), "name")));
	json_decref(v);
	return say(ctx, json_object_get(state, "input"), text);
}

static int askq(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	(void)in;
	(void)update;
	return say(ctx, json_object_get(state, "input"), "What is your name?");
}

static int waitq(eng_ctx *ctx, const json_t *state, const json_t *in, json_t **update)
{
	json_t *v = NULL;
	char text[300];
	int rc = eng_await(ctx, "input", NULL, &v);

	(void)in;
	(void)update;
	if (rc < 0)
		return rc;
	snprintf(text, sizeof(text), "hello %s", in_str(v, "text"));
	json_decref(v);
	return say(ctx, json_object_get(state, "input"), text);
}

static int route(const json_t *state, eng_next *next, void *udata)
{
	const char *t = in_str(json_object_get(state, "input"), "text");

	(void)udata;
	if (strncmp(t, "approve", 7) == 0)
		return eng_next_add(next, "ask");
	if (strncmp(t, "question", 8) == 0)
		return eng_next_add(next, "askq");
	if (strncmp(t, "slow", 4) == 0)
		return eng_next_add(next, "slow");
	return eng_next_add(next, "reply");
}

eng_graph *ts_chat_graph(const char *approvers_json)
{
	eng_graph *g = NULL;
	eng_retry once = {.max_attempts = 1};

	snprintf(approvers, sizeof(approvers), "%s", approvers_json ? approvers_json : "");
	if (eng_graph_new(&g, CHAT_GRAPH) < 0)
		return NULL;
	eng_graph_add_node(g, "reply", reply, NULL, &once);
	eng_graph_add_node(g, "slow", slow, NULL, &once);
	eng_graph_add_node(g, "ask", ask, NULL, &once);
	eng_graph_add_node(g, "gate", gate, NULL, &once);
	eng_graph_add_node(g, "askq", askq, NULL, &once);
	eng_graph_add_node(g, "waitq", waitq, NULL, &once);
	eng_graph_add_router(g, ENG_START, route, NULL,
			     ENG_TARGETS("ask", "askq", "slow", "reply"));
	eng_graph_add_edge(g, "ask", "gate");
	eng_graph_add_edge(g, "askq", "waitq");
	if (eng_graph_compile(g) < 0) {
		eng_graph_free(g);
		return NULL;
	}
	return g;
}
