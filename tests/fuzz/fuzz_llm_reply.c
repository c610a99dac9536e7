/* An OpenAI-compatible endpoint's reply (llm/wire.c): the JSON body of a
 * chat completion, the text of an error body, and a tool call's arguments.
 *
 * Properties: a reply is parsed or refused with a known error; a parsed
 * reply is whole (content with its length, every tool call with a name and
 * arguments, a known finish reason, no negative token count); an error
 * body becomes one bounded line that is valid UTF-8 (it is shown to
 * people and sent to Telegram), as is every parse error message; a tool
 * call's arguments are a JSON object or refused. */
#include "tests/fuzz/fuzz.h"

#include "core/err.h"
#include "llm/wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ctypes[] = {NULL, "application/json", "text/html; charset=utf-8",
					     "text/plain"};
	llm_response r;
	const char *body = (const char *)data;
	char line[300];
	int rc, is_ctx = -1;

	llm_response_init(&r);
	err_clear();
	rc = llm_wire_parse_reply(body, size, &r);
	FZ_CHECK(rc == 0 || rc == ERR_PARSE || rc == ERR_HTTP, "rc %d", rc);
	if (rc < 0) {
		FZ_CHECK(err_last()[0] != '\0', "a refusal without a message");
		FZ_CHECK(fz_utf8_valid(err_last(), strlen(err_last())),
			 "the message is not UTF-8: %s", err_last());
	} else {
		FZ_CHECK(r.content != NULL && strlen(r.content) == r.content_len,
			 "content of %zu bytes, content_len %zu", r.content ? strlen(r.content) : 0,
			 r.content_len);
		FZ_CHECK(r.finish >= LLM_FINISH_NONE && r.finish <= LLM_FINISH_CONTENT_FILTER,
			 "finish %d", r.finish);
		FZ_CHECK(r.tokens_in >= 0 && r.tokens_out >= 0, "tokens %lld/%lld",
			 (long long)r.tokens_in, (long long)r.tokens_out);
		for (size_t i = 0; i < r.n_tool_calls; i++) {
			const llm_tool_call *tc = &r.tool_calls[i];
			json_t *args = NULL;
			int arc;

			FZ_CHECK(tc->id && tc->name && tc->arguments, "tool call %zu is not whole", i);
			arc = llm_tool_call_args(tc, &args);
			FZ_CHECK((arc == 0 && json_is_object(args)) || (arc == ERR_PARSE && !args),
				 "tool call %zu: rc %d", i, arc);
			json_decref(args);
		}
	}
	llm_response_free(&r);

	for (size_t k = 0; k < sizeof(ctypes) / sizeof(ctypes[0]); k++) {
		memset(line, 'x', sizeof(line));
		llm_wire_error_text(body, size, ctypes[k], line, 200, &is_ctx);
		FZ_CHECK(memchr(line, '\0', 200) != NULL, "the line is not ended within its buffer");
		FZ_CHECK(line[0] != '\0', "an empty line");
		FZ_CHECK(is_ctx == 0 || is_ctx == 1, "is_context %d", is_ctx);
		FZ_CHECK(fz_utf8_valid(line, strlen(line)), "the error line is not UTF-8: %s", line);
	}
	return 0;
}
