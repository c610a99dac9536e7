/*
 * wire — the OpenAI-compatible chat completions protocol, as typed structs.
 *
 * This module is the edge: it turns an llm_request into the JSON body of
 * `POST {base}/chat/completions` and turns what an endpoint sends back (a
 * JSON reply, a stream of server-sent events, or an error body) into an
 * llm_response. Nothing outside wire.c walks a provider's JSON. It does no
 * I/O; llm/llm.h sends the bytes.
 *
 * Every parse error names what was wrong ("choices[0].message is missing")
 * and never quotes more than a short excerpt of the body.
 */
#ifndef ORCH_LLM_WIRE_H
#define ORCH_LLM_WIRE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "llm/quirks.h"

/* Why the model stopped. Providers' aliases are mapped ("end_turn" and
 * "eos" to STOP, "max_tokens" to LENGTH, "tool_use" to TOOL_CALLS); any
 * other value is a parse error (ERR_PARSE), never silently accepted. */
typedef enum llm_finish {
	LLM_FINISH_NONE = 0,       /* not reported (stream cut short) */
	LLM_FINISH_STOP,           /* a natural end or a stop sequence */
	LLM_FINISH_LENGTH,         /* max_tokens or the context was reached: truncated */
	LLM_FINISH_TOOL_CALLS,     /* the reply asks for tool calls */
	LLM_FINISH_CONTENT_FILTER, /* the provider withheld content */
} llm_finish;

const char *llm_finish_name(int finish);

/* A tool call, in a reply (owned strings) or in a request's assistant
 * message (borrowed strings). `arguments` is the JSON text the model wrote;
 * it may not be valid JSON (llm_tool_call_args parses it). */
typedef struct llm_tool_call {
	char *id;
	char *name;
	char *arguments;
} llm_tool_call;

/* Parses a call's arguments into *out (owned). ERR_PARSE, with the JSON
 * error, when the model wrote something that is not a JSON object. */
int llm_tool_call_args(const llm_tool_call *tc, json_t **out);

/* One message of a conversation. Every pointer is borrowed. */
typedef struct llm_message {
	const char *role;         /* "system", "user", "assistant" or "tool" */
	const char *content;      /* may be NULL for an assistant message with tool calls */
	const char *name;         /* optional */
	const char *tool_call_id; /* role "tool": the call this message answers */
	const llm_tool_call *tool_calls; /* role "assistant": the calls it made */
	size_t n_tool_calls;
} llm_message;

/* A function the model may call. `parameters` is a JSON schema (borrowed). */
typedef struct llm_tool {
	const char *name;
	const char *description;
	const json_t *parameters;
} llm_tool;

typedef int (*llm_delta_fn)(const char *text, size_t len, void *udata);

/* What to ask. Every pointer is borrowed for the duration of the call. */
typedef struct llm_request {
	const llm_message *messages;
	size_t n_messages;
	const llm_tool *tools; /* may be NULL */
	size_t n_tools;
	const char *tool_choice;  /* "auto", "none", "required" or a tool's name; NULL: unset */
	const json_t *json_schema; /* ask for JSON matching this schema; NULL: free text */
	const char *schema_name;   /* its name in response_format; NULL: "reply" */
	int max_tokens;            /* 0: the model's max_output from the registry */
	double temperature;        /* < 0: unset (the server's default) */
	double top_p;              /* <= 0: unset */
	const char *const *stop;   /* NULL-terminated, may be NULL */
	int stream;                /* stream the reply (server-sent events) */
	llm_delta_fn on_delta;     /* streaming: content as it arrives; non-zero cancels */
	void *udata;
	const json_t *extra;       /* more body fields for a provider ("top_k", ...); ours win */
} llm_request;

/* Budget figures, filled when a call is refused with ERR_BUDGET. */
typedef struct llm_budget_info {
	char kind[16];       /* "project" or "user" */
	char scope[128];
	double limit_usd;
	double spent_usd;
	double reserved_usd; /* held by calls in flight */
	double needed_usd;   /* the worst-case cost of the refused call */
	char period[8];      /* "total", "day", "week" or "month" */
	int64_t resets_at;   /* when the period ends (Unix seconds, UTC); 0 for "total" */
} llm_budget_info;

/* A reply. The caller owns it and frees it with llm_response_free, also
 * after a failed call (which fills what is known: model, attempts, the
 * budget or context figures). */
typedef struct llm_response {
	char *content;             /* the assistant's text ("" when none); owned */
	size_t content_len;
	char *refusal;             /* a refusal message, when the provider sent one; owned */
	llm_tool_call *tool_calls; /* owned */
	size_t n_tool_calls;
	json_t *json;              /* structured output: the validated value; owned */
	int finish;                /* llm_finish */
	char finish_raw[32];       /* as the provider wrote it */
	int64_t tokens_in, tokens_out;
	int usage_estimated;       /* the provider sent no usage: tokens estimated */
	double cost_usd;           /* of all attempts of this call */
	double latency_ms;         /* of the successful attempt */
	double queue_ms;           /* waiting for a slot, all attempts */
	int http_status;
	int attempts;              /* HTTP attempts, retries and escalations included */
	int escalations;           /* models given up on before the answer */
	char id[96];               /* the provider's completion id */
	char model[96];            /* registry name of the model that answered */
	char endpoint[64];         /* registry name of its endpoint */
	char provider_model[128];  /* the model the provider says it used */
	llm_budget_info budget;    /* ERR_BUDGET: why */
	int64_t context_needed;    /* ERR_CONTEXT: estimated prompt tokens */
	int64_t context_limit;     /* ERR_CONTEXT: the largest context tried */
} llm_response;

void llm_response_init(llm_response *r);
void llm_response_free(llm_response *r);
/* Frees the reply fields (content, tool calls, json, usage) but keeps the
 * call's bookkeeping (attempts, cost, queue time). */
void llm_response_reset_reply(llm_response *r);

/* Options of the body that depend on the endpoint, not the request. */
typedef struct llm_wire_opts {
	const char *model;          /* the provider's model id */
	int max_tokens;             /* > 0: sent */
	const char *max_tokens_field; /* "max_tokens" (default) or "max_completion_tokens" */
	int stream_usage;           /* streaming: ask for usage in the last chunk */
	int progress;               /* streaming on llama.cpp: "return_progress", so a long
				     * prompt's processing sends events too */
	int loose_schema;           /* response_format with "strict": false */
	const llm_quirks *quirks;   /* the model's provider quirks; NULL: none */
	const llm_params *params;   /* the model's own sampling parameters; NULL: none */
} llm_wire_opts;

/* Appends the JSON body for `rq` to `out`. `extra_messages` (may be NULL)
 * are appended after rq->messages (a re-ask). ERR_INVALID with the reason
 * for a request that cannot be sent (no messages, a role that is not one of
 * the four, a tool without a name). */
int llm_wire_body(buf *out, const llm_request *rq, const llm_message *extra_messages,
		  size_t n_extra, const llm_wire_opts *o);

/* Parses a complete (non-streamed) reply body into `out` (the reply fields;
 * out must have been initialised). ERR_PARSE with what was wrong. */
int llm_wire_parse_reply(const char *body, size_t len, llm_response *out);

/* An error body (`{"error": {...}}`, an HTML page, plain text) as one line
 * for a message: the provider's message, type and code when it is JSON, the
 * page title when it is HTML. Sets *is_context when the error says the
 * prompt does not fit the model's context. */
void llm_wire_error_text(const char *body, size_t len, const char *content_type,
			 char *out, size_t cap, int *is_context);

/* Estimates the prompt tokens of `rq` without the server's tokenizer: the
 * bytes of its text (llm_wire_prompt_text, with the schema) at 2.7 bytes a
 * token (what code and JSON come to; prose takes fewer tokens), plus
 * llm_wire_prompt_overhead: what is used before sending to reserve cost and
 * detect context overflow when the endpoint cannot count. */
int64_t llm_wire_estimate_tokens(const llm_request *rq);

/* The text of `rq` a tokenizer counts: every message's content, the tool
 * calls' names and arguments, the tools' definitions and, with
 * `with_schema`, the JSON schema (a server that turns it into a grammar
 * does not put it in the prompt). Appended to `out`. */
int llm_wire_prompt_text(const llm_request *rq, int with_schema, buf *out);

/* The tokens a chat template adds around the messages and tools of `rq`. */
int64_t llm_wire_prompt_overhead(const llm_request *rq);

/* --- server-sent events --- */

/* Assembles a streamed reply. Feed bytes as they arrive; the parser splits
 * events, parses each chunk, appends content and tool-call deltas, and
 * keeps finish_reason and usage. A body that turns out to be one JSON
 * object (a server that ignored "stream") is parsed as a reply at the end. */
typedef struct llm_sse llm_sse;

/* out (borrowed) receives the reply; on_delta may be NULL. */
int llm_sse_new(llm_sse **out_sse, llm_response *out, llm_delta_fn on_delta, void *udata);
void llm_sse_free(llm_sse *s);

/* Feeds bytes. ERR_PARSE for a malformed chunk, ERR_HTTP for an error event
 * from the provider, ERR_CANCELLED when on_delta asked to stop, ERR_TOOBIG
 * past the caps. After an error the parser refuses further input. */
int llm_sse_feed(llm_sse *s, const char *data, size_t len);

/* Ends the stream. ERR_PARSE when it ended before the reply was complete
 * (no [DONE] and no finish_reason). */
int llm_sse_finish(llm_sse *s);

/* True once content or tool-call text was delivered to the caller (a retry
 * would then repeat it). */
int llm_sse_delivered(const llm_sse *s);

#endif
