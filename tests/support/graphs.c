#include "tests/support/graphs.h"
#include "core/err.h"
#include "core/util.h"
#include "engine/ctx.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tsg_exec_log(eng_ctx *ctx)
{
	const char *path = getenv("TSG_EXEC_LOG");
	char line[256];
	int fd, n;

	if (!path || !*path)
		return;
	n = snprintf(line, sizeof(line), "%lld %d %s %d %d\n", (long long)eng_ctx_run_id(ctx),
		     eng_ctx_step(ctx), eng_ctx_node(ctx), eng_ctx_attempt(ctx), (int)getpid());
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd >= 0) {
		if (write(fd, line, (size_t)n) != n)
			n = -1;
		close(fd);
	}
}

static void maybe_sleep(void)
{
	const char *s = getenv("TSG_SLEEP_MS");
	char *end;
	long ms;

	if (!s || !*s)
		return;
	ms = strtol(s, &end, 10);
	if (*end == '\0' && ms > 0)
		util_sleep_ms(ms);
}

static int linear_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	char entry[64];
	(void)state;
	(void)input;
	tsg_exec_log(ctx);
	maybe_sleep();
	snprintf(entry, sizeof(entry), "%s:ok", eng_ctx_node(ctx));
	if (eng_emit(ctx, "test.note", eng_ctx_thread_key(ctx),
		     json_pack("{s:s,s:i,s:I}", "node", eng_ctx_node(ctx), "step", eng_ctx_step(ctx),
			       "run", (json_int_t)eng_ctx_run_id(ctx))) < 0)
		return err_last_code();
	*update = json_pack("{s:[s]}", "log", entry);
	return *update ? 0 : err_set(ERR_NOMEM, "out of memory");
}

eng_graph *tsg_linear4(void)
{
	static const char *names[] = {"brainstorm", "architect", "developer", "reviewer"};
	eng_graph *g = NULL;

	if (eng_graph_new(&g, "linear4") < 0)
		return NULL;
	for (int i = 0; i < 4; i++)
		eng_graph_add_node(g, names[i], linear_node, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, names[0]);
	for (int i = 0; i < 3; i++)
		eng_graph_add_edge(g, names[i], names[i + 1]);
	eng_graph_add_edge(g, names[3], ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	if (eng_graph_compile(g) < 0) {
		eng_graph_free(g);
		return NULL;
	}
	return g;
}

static int simple_node(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	char entry[64];
	(void)state;
	(void)input;
	tsg_exec_log(ctx);
	snprintf(entry, sizeof(entry), "%s:ok", eng_ctx_node(ctx));
	*update = json_pack("{s:[s]}", "log", entry);
	return 0;
}

static int gate_ask(eng_ctx *ctx, const json_t *state, const json_t *input, json_t **update)
{
	json_t *v = NULL;
	char entry[128];
	int rc;
	(void)state;
	(void)input;
	tsg_exec_log(ctx);
	rc = eng_await(ctx, "approval", json_pack("{s:s}", "question", "ship it?"), &v);
	if (rc < 0)
		return rc;
	snprintf(entry, sizeof(entry), "ask:%s", json_is_string(v) ? json_string_value(v) : "?");
	json_decref(v);
	*update = json_pack("{s:[s]}", "log", entry);
	return 0;
}

eng_graph *tsg_gate(void)
{
	eng_graph *g = NULL;

	if (eng_graph_new(&g, "gate") < 0)
		return NULL;
	eng_graph_add_node(g, "prepare", simple_node, NULL, NULL);
	eng_graph_add_node(g, "ask", gate_ask, NULL, NULL);
	eng_graph_add_node(g, "finish", simple_node, NULL, NULL);
	eng_graph_add_edge(g, ENG_START, "prepare");
	eng_graph_add_edge(g, "prepare", "ask");
	eng_graph_add_edge(g, "ask", "finish");
	eng_graph_add_edge(g, "finish", ENG_END);
	eng_graph_set_reducer(g, "log", ENG_APPEND);
	if (eng_graph_compile(g) < 0) {
		eng_graph_free(g);
		return NULL;
	}
	return g;
}
