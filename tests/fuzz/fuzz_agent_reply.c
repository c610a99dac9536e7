/* A model's reply read as the coding agent's next action
 * (spawner/agent.c, agent_parse_reply): the text with its ```bash block,
 * or a tool call.
 *
 * Input: a mode byte, then the reply. Mode bit 2 clear: the rest is the
 * reply's text (bits 0-1 the finish reason). Set: the rest is a tool
 * call's name, a 0 byte, its arguments (bit 3: the call is made twice).
 *
 * Properties: a reply is one action or none with a reason in valid UTF-8
 * (the model is told it); a command from the text is the body of a
 * ```bash block of that text, never holds the closing fence, and is the
 * same when the reply has a line of prose before it; two calls or two
 * blocks are never run as one. */
#include "tests/fuzz/fuzz.h"

#include "llm/wire.h"
#include "spawner/agent.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

static void check_action(const agent_action *a)
{
	FZ_CHECK(a->kind == AGENT_ACT_NONE || a->kind == AGENT_ACT_BASH || a->kind == AGENT_ACT_SUBMIT,
		 "kind %d", a->kind);
	if (a->kind == AGENT_ACT_NONE) {
		FZ_CHECK(a->cmd == NULL, "no action, yet a command");
		FZ_CHECK(a->reason[0] != '\0', "no action and no reason");
		FZ_CHECK(fz_utf8_valid(a->reason, strlen(a->reason)), "the reason is not UTF-8: %s",
			 a->reason);
	}
	if (a->kind == AGENT_ACT_BASH)
		FZ_CHECK(a->cmd && a->cmd[0], "an empty command");
}

static void from_text(const char *text, int finish)
{
	llm_response r;
	agent_action a, b;
	buf pre;

	llm_response_init(&r);
	r.content = (char *)text;
	r.content_len = strlen(text);
	r.finish = finish;
	agent_parse_reply(&r, &a);
	check_action(&a);
	if (a.cmd) {
		const char *at = strstr(text, a.cmd);
		FZ_CHECK(at != NULL, "the command is not in the reply");
		FZ_CHECK(strncmp(a.cmd, "```", 3) != 0 && !strstr(a.cmd, "\n```"),
			 "the command holds a fence: %s", a.cmd);
	}
	/* a line of prose before the reply changes nothing */
	buf_init(&pre, 0);
	buf_puts(&pre, "Let me look at the files first.\n");
	buf_puts(&pre, text);
	r.content = pre.data;
	r.content_len = pre.len;
	agent_parse_reply(&r, &b);
	FZ_CHECK(a.kind == b.kind, "kind %d, %d with prose before", a.kind, b.kind);
	FZ_CHECK((!a.cmd && !b.cmd) || (a.cmd && b.cmd && strcmp(a.cmd, b.cmd) == 0),
		 "another command with prose before");
	agent_action_free(&a);
	agent_action_free(&b);
	buf_free(&pre);
}

static void from_call(const char *name, const char *args, int twice)
{
	llm_response r;
	llm_tool_call tc[2];
	agent_action a;

	llm_response_init(&r);
	tc[0].id = (char *)"call_1";
	tc[0].name = (char *)name;
	tc[0].arguments = (char *)args;
	tc[1] = tc[0];
	r.tool_calls = tc;
	r.n_tool_calls = twice ? 2 : 1;
	r.finish = LLM_FINISH_TOOL_CALLS;
	agent_parse_reply(&r, &a);
	check_action(&a);
	if (twice)
		FZ_CHECK(a.kind == AGENT_ACT_NONE, "two calls taken as one action");
	if (a.kind != AGENT_ACT_NONE)
		FZ_CHECK(strcmp(name, "bash") == 0 || strcmp(name, "submit") == 0,
			 "tool '%s' taken as an action", name);
	agent_action_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int finishes[] = {LLM_FINISH_NONE, LLM_FINISH_STOP, LLM_FINISH_LENGTH,
				       LLM_FINISH_TOOL_CALLS};
	char *s;

	if (size < 1)
		return 0;
	s = fz_str(data + 1, size - 1);
	if (data[0] & 4) {
		size_t nl = strlen(s);
		from_call(s, nl < size - 1 ? s + nl + 1 : "", (data[0] & 8) != 0);
	} else {
		from_text(s, finishes[data[0] & 3]);
	}
	free(s);
	return 0;
}
