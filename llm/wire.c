#include "llm/wire.h"
#include "core/err.h"
#include "core/utf8.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SSE_LINE_MAX ((size_t)4 << 20)
#define REPLY_MAX ((size_t)16 << 20)
#define MAX_TOOL_CALLS 128

/* At most 160 bytes of a body for a message, as one line of valid UTF-8. */
static void excerpt(const char *body, size_t len, char *out, size_t cap)
{
	utf8_excerpt(out, cap, body, len, 160);
}

/* jansson's reason, which quotes the input near the error, made printable. */
static const char *json_why(const json_error_t *e, char *out, size_t cap)
{
	utf8_excerpt(out, cap, e->text, strlen(e->text), cap);
	return out;
}

const char *llm_finish_name(int finish)
{
	switch (finish) {
	case LLM_FINISH_STOP: return "stop";
	case LLM_FINISH_LENGTH: return "length";
	case LLM_FINISH_TOOL_CALLS: return "tool_calls";
	case LLM_FINISH_CONTENT_FILTER: return "content_filter";
	default: return "none";
	}
}

/* Maps a finish_reason to llm_finish; -1 when unknown. */
static int finish_parse(const char *s)
{
	static const struct { const char *name; int v; } map[] = {
		{"stop", LLM_FINISH_STOP},           {"eos", LLM_FINISH_STOP},
		{"end_turn", LLM_FINISH_STOP},       {"stop_sequence", LLM_FINISH_STOP},
		{"length", LLM_FINISH_LENGTH},       {"max_tokens", LLM_FINISH_LENGTH},
		{"tool_calls", LLM_FINISH_TOOL_CALLS}, {"function_call", LLM_FINISH_TOOL_CALLS},
		{"tool_use", LLM_FINISH_TOOL_CALLS}, {"content_filter", LLM_FINISH_CONTENT_FILTER},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(s, map[i].name) == 0)
			return map[i].v;
	return -1;
}

int llm_tool_call_args(const llm_tool_call *tc, json_t **out)
{
	json_error_t e;
	json_t *j;
	char why[200];

	*out = NULL;
	j = json_loads(tc->arguments ? tc->arguments : "", 0, &e);
	if (!j)
		return err_set(ERR_PARSE, "tool call '%s': arguments are not valid JSON (%s)",
			       tc->name ? tc->name : "?", json_why(&e, why, sizeof(why)));
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(ERR_PARSE, "tool call '%s': arguments are not a JSON object",
			       tc->name ? tc->name : "?");
	}
	*out = j;
	return 0;
}

void llm_response_init(llm_response *r)
{
	memset(r, 0, sizeof(*r));
}

static void free_calls(llm_tool_call *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(calls[i].id);
		free(calls[i].name);
		free(calls[i].arguments);
	}
	free(calls);
}

void llm_response_reset_reply(llm_response *r)
{
	free(r->content);
	free(r->refusal);
	free_calls(r->tool_calls, r->n_tool_calls);
	json_decref(r->json);
	r->content = NULL;
	r->content_len = 0;
	r->refusal = NULL;
	r->tool_calls = NULL;
	r->n_tool_calls = 0;
	r->json = NULL;
	r->finish = LLM_FINISH_NONE;
	r->finish_raw[0] = '\0';
	r->tokens_in = r->tokens_out = 0;
	r->usage_estimated = 0;
	r->id[0] = '\0';
	r->provider_model[0] = '\0';
}

void llm_response_free(llm_response *r)
{
	if (!r)
		return;
	llm_response_reset_reply(r);
	memset(r, 0, sizeof(*r));
}

/* --- request body --- */

static int put_str_field(buf *b, const char *name, const char *v)
{
	int rc = buf_printf(b, ",\"%s\":\"", name);
	if (rc == 0)
		rc = buf_put_json_str(b, v);
	if (rc == 0)
		rc = buf_putc(b, '"');
	return rc;
}

static int put_json(buf *b, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	int rc;

	if (!s)
		return err_set(ERR_NOMEM, "out of memory encoding JSON");
	rc = buf_puts(b, s);
	free(s);
	return rc;
}

static int valid_role(const char *r)
{
	return r && (strcmp(r, "system") == 0 || strcmp(r, "user") == 0 ||
		     strcmp(r, "assistant") == 0 || strcmp(r, "tool") == 0 ||
		     strcmp(r, "developer") == 0);
}

static int put_message(buf *b, const llm_message *m, size_t idx)
{
	int rc;

	if (!valid_role(m->role))
		return err_set(ERR_INVALID,
			       "message %zu: role '%s' is not system, user, assistant or tool", idx,
			       m->role ? m->role : "(none)");
	if (!m->content && m->n_tool_calls == 0)
		return err_set(ERR_INVALID, "message %zu (%s) has no content", idx, m->role);
	if (strcmp(m->role, "tool") == 0 && !m->tool_call_id)
		return err_set(ERR_INVALID, "message %zu: a tool message needs tool_call_id", idx);
	rc = buf_puts(b, "{\"role\":\"");
	if (rc == 0)
		rc = buf_put_json_str(b, m->role);
	if (rc == 0)
		rc = buf_puts(b, "\",\"content\":");
	if (rc == 0 && m->content) {
		rc = buf_putc(b, '"');
		if (rc == 0)
			rc = buf_put_json_str(b, m->content);
		if (rc == 0)
			rc = buf_putc(b, '"');
	} else if (rc == 0) {
		rc = buf_puts(b, "null");
	}
	if (rc == 0 && m->name)
		rc = put_str_field(b, "name", m->name);
	if (rc == 0 && m->tool_call_id)
		rc = put_str_field(b, "tool_call_id", m->tool_call_id);
	if (rc == 0 && m->n_tool_calls > 0) {
		rc = buf_puts(b, ",\"tool_calls\":[");
		for (size_t i = 0; rc == 0 && i < m->n_tool_calls; i++) {
			const llm_tool_call *tc = &m->tool_calls[i];
			if (!tc->id || !tc->name)
				return err_set(ERR_INVALID, "message %zu: tool call %zu needs an id and a name",
					       idx, i);
			rc = buf_printf(b, "%s{\"id\":\"", i ? "," : "");
			if (rc == 0)
				rc = buf_put_json_str(b, tc->id);
			if (rc == 0)
				rc = buf_puts(b, "\",\"type\":\"function\",\"function\":{\"name\":\"");
			if (rc == 0)
				rc = buf_put_json_str(b, tc->name);
			if (rc == 0)
				rc = buf_puts(b, "\",\"arguments\":\"");
			if (rc == 0)
				rc = buf_put_json_str(b, tc->arguments ? tc->arguments : "{}");
			if (rc == 0)
				rc = buf_puts(b, "\"}}");
		}
		if (rc == 0)
			rc = buf_putc(b, ']');
	}
	if (rc == 0)
		rc = buf_putc(b, '}');
	return rc;
}

static int is_our_key(const char *k)
{
	static const char *const ours[] = {"model", "messages", "max_tokens", "max_completion_tokens",
					   "temperature", "top_p", "stream", "stream_options",
					   "tools", "tool_choice", "response_format", "stop",
					   "return_progress", "reasoning_effort", "reasoning",
					   "thinking", NULL};
	for (const char *const *p = ours; *p; p++)
		if (strcmp(*p, k) == 0)
			return 1;
	return 0;
}

/* The sampling fields a request sends after the model's quirks: the
 * request's temperature and top_p, else the model's own; a temperature the
 * model does not take left out (or lowered to its maximum), top_p left out
 * where refused or where it may not come with a temperature, the reasoning
 * effort (NULL: none) and whether stop sequences may be sent. */
static void sampling(const llm_request *rq, const llm_wire_opts *o, double *temperature,
		     double *top_p, const char **effort, int *send_stop)
{
	const llm_quirks *q = o->quirks;
	const llm_params *p = o->params;

	*temperature = rq->temperature >= 0 ? rq->temperature : p ? p->temperature : -1;
	*top_p = rq->top_p > 0 ? rq->top_p : p ? p->top_p : 0;
	*effort = p && p->reasoning_effort[0] ? p->reasoning_effort : NULL;
	*send_stop = 1;
	if (!q)
		return;
	if (q->reasoning == LLM_REASON_NONE)
		*effort = NULL;
	if (q->temperature == LLM_Q_OMIT || (*effort && q->no_temperature_reasoning))
		*temperature = -1;
	if (*temperature > q->temperature_max)
		*temperature = q->temperature_max;
	if (q->top_p == LLM_Q_OMIT || (q->top_p == LLM_Q_ALONE && *temperature >= 0) ||
	    (*effort && q->no_temperature_reasoning))
		*top_p = 0;
	*send_stop = q->stop != LLM_Q_OMIT;
}

/* The reasoning effort in the form the provider reads. */
static int put_effort(buf *b, int style, const char *effort)
{
	int rc;

	switch (style) {
	case LLM_REASON_OPENROUTER:
		rc = buf_puts(b, ",\"reasoning\":{\"effort\":\"");
		if (rc == 0)
			rc = buf_put_json_str(b, effort);
		return rc == 0 ? buf_puts(b, "\"}") : rc;
	case LLM_REASON_THINKING:
		return buf_printf(b, ",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":%d}",
				  llm_quirks_thinking_budget(effort));
	default:
		return put_str_field(b, "reasoning_effort", effort);
	}
}

/* ,"stop":[...] of the NULL-terminated list. */
static int put_stop(buf *b, const char *const *stop)
{
	int rc = buf_puts(b, ",\"stop\":[");

	for (size_t i = 0; rc == 0 && stop[i]; i++) {
		rc = buf_puts(b, i ? ",\"" : "\"");
		if (rc == 0)
			rc = buf_put_json_str(b, stop[i]);
		if (rc == 0)
			rc = buf_putc(b, '"');
	}
	if (rc == 0)
		rc = buf_putc(b, ']');
	return rc;
}

/* ,"tools":[...]; ERR_INVALID for a tool without a name. */
static int put_tools(buf *b, const llm_tool *tools, size_t n)
{
	int rc = buf_puts(b, ",\"tools\":[");

	for (size_t i = 0; rc == 0 && i < n; i++) {
		const llm_tool *t = &tools[i];
		if (!t->name || !*t->name)
			return err_set(ERR_INVALID, "tool %zu has no name", i);
		rc = buf_puts(b, i ? ",{" : "{");
		if (rc == 0)
			rc = buf_puts(b, "\"type\":\"function\",\"function\":{\"name\":\"");
		if (rc == 0)
			rc = buf_put_json_str(b, t->name);
		if (rc == 0)
			rc = buf_putc(b, '"');
		if (rc == 0 && t->description)
			rc = put_str_field(b, "description", t->description);
		if (rc == 0) {
			rc = buf_puts(b, ",\"parameters\":");
			if (rc == 0 && t->parameters)
				rc = put_json(b, t->parameters);
			else if (rc == 0)
				rc = buf_puts(b, "{\"type\":\"object\",\"properties\":{}}");
		}
		if (rc == 0)
			rc = buf_puts(b, "}}");
	}
	if (rc == 0)
		rc = buf_putc(b, ']');
	return rc;
}

/* ,"tool_choice": a mode (auto, none, required) or the named function. */
static int put_tool_choice(buf *b, const char *tc)
{
	int rc;

	if (strcmp(tc, "auto") == 0 || strcmp(tc, "none") == 0 || strcmp(tc, "required") == 0)
		return put_str_field(b, "tool_choice", tc);
	rc = buf_puts(b, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"");
	if (rc == 0)
		rc = buf_put_json_str(b, tc);
	if (rc == 0)
		rc = buf_puts(b, "\"}}");
	return rc;
}

/* ,"response_format" with the request's JSON schema (strict unless loose). */
static int put_schema(buf *b, const llm_request *rq, int loose)
{
	int rc = buf_puts(b, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"");

	if (rc == 0)
		rc = buf_put_json_str(b, rq->schema_name ? rq->schema_name : "reply");
	if (rc == 0)
		rc = buf_puts(b, loose ? "\",\"strict\":false,\"schema\":"
				       : "\",\"strict\":true,\"schema\":");
	if (rc == 0)
		rc = put_json(b, rq->json_schema);
	if (rc == 0)
		rc = buf_puts(b, "}}");
	return rc;
}

/* The caller's extra keys, but those the body sets itself. */
static int put_extra(buf *b, const json_t *extra)
{
	const char *k;
	json_t *v;
	int rc = 0;

	json_object_foreach((json_t *)extra, k, v) {
		if (is_our_key(k))
			continue;
		rc = buf_puts(b, ",\"");
		if (rc == 0)
			rc = buf_put_json_str(b, k);
		if (rc == 0)
			rc = buf_puts(b, "\":");
		if (rc == 0)
			rc = put_json(b, v);
		if (rc < 0)
			break;
	}
	return rc;
}

int llm_wire_body(buf *b, const llm_request *rq, const llm_message *extra, size_t n_extra,
		  const llm_wire_opts *o)
{
	double temperature, top_p;
	const char *effort;
	int rc, send_stop;

	if (rq->n_messages == 0 || !rq->messages)
		return err_set(ERR_INVALID, "the request has no messages");
	if (!o->model || !*o->model)
		return err_set(ERR_INVALID, "no model id to send");
	rc = buf_puts(b, "{\"model\":\"");
	if (rc == 0)
		rc = buf_put_json_str(b, o->model);
	if (rc == 0)
		rc = buf_puts(b, "\",\"messages\":[");
	for (size_t i = 0; rc == 0 && i < rq->n_messages + n_extra; i++) {
		const llm_message *m = i < rq->n_messages ? &rq->messages[i] : &extra[i - rq->n_messages];
		if (i)
			rc = buf_putc(b, ',');
		if (rc == 0)
			rc = put_message(b, m, i);
	}
	if (rc == 0)
		rc = buf_putc(b, ']');
	sampling(rq, o, &temperature, &top_p, &effort, &send_stop);
	if (rc == 0 && o->max_tokens > 0)
		/* thinking counts against max_tokens: the reply keeps its own room */
		rc = buf_printf(b, ",\"%s\":%d",
				o->quirks && o->quirks->max_tokens_field[0]
					? o->quirks->max_tokens_field
				: o->max_tokens_field && *o->max_tokens_field ? o->max_tokens_field
									      : "max_tokens",
				o->max_tokens + (effort && o->quirks &&
							 o->quirks->reasoning == LLM_REASON_THINKING
							 ? llm_quirks_thinking_budget(effort)
							 : 0));
	if (rc == 0 && temperature >= 0)
		rc = buf_printf(b, ",\"temperature\":%.4g", temperature);
	if (rc == 0 && top_p > 0)
		rc = buf_printf(b, ",\"top_p\":%.4g", top_p);
	if (rc == 0 && effort)
		rc = put_effort(b, o->quirks ? o->quirks->reasoning : LLM_REASON_EFFORT, effort);
	if (rc == 0 && rq->stream) {
		rc = buf_puts(b, ",\"stream\":true");
		if (rc == 0 && o->stream_usage)
			rc = buf_puts(b, ",\"stream_options\":{\"include_usage\":true}");
		if (rc == 0 && o->progress)
			rc = buf_puts(b, ",\"return_progress\":true");
	}
	if (rc == 0 && send_stop && rq->stop && rq->stop[0])
		rc = put_stop(b, rq->stop);
	if (rc == 0 && rq->n_tools > 0)
		rc = put_tools(b, rq->tools, rq->n_tools);
	if (rc == 0 && rq->tool_choice)
		rc = put_tool_choice(b, rq->tool_choice);
	if (rc == 0 && rq->json_schema)
		rc = put_schema(b, rq, o->loose_schema);
	if (rc == 0 && json_is_object(rq->extra))
		rc = put_extra(b, rq->extra);
	if (rc == 0)
		rc = buf_putc(b, '}');
	return rc;
}

int llm_wire_prompt_text(const llm_request *rq, int with_schema, buf *out)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < rq->n_messages; i++) {
		const llm_message *m = &rq->messages[i];
		if (m->content)
			rc = buf_puts(out, m->content);
		for (size_t k = 0; rc == 0 && k < m->n_tool_calls; k++) {
			rc = buf_puts(out, m->tool_calls[k].name ? m->tool_calls[k].name : "");
			if (rc == 0)
				rc = buf_puts(out, m->tool_calls[k].arguments ? m->tool_calls[k].arguments
									    : "");
		}
		if (rc == 0)
			rc = buf_putc(out, '\n');
	}
	for (size_t i = 0; rc == 0 && i < rq->n_tools; i++) {
		rc = buf_puts(out, rq->tools[i].name ? rq->tools[i].name : "");
		if (rc == 0 && rq->tools[i].description)
			rc = buf_puts(out, rq->tools[i].description);
		if (rc == 0 && rq->tools[i].parameters)
			rc = put_json(out, rq->tools[i].parameters);
		if (rc == 0)
			rc = buf_putc(out, '\n');
	}
	if (rc == 0 && with_schema && rq->json_schema)
		rc = put_json(out, rq->json_schema);
	return rc;
}

int64_t llm_wire_prompt_overhead(const llm_request *rq)
{
	return 3 + 4 * (int64_t)rq->n_messages + 8 * (int64_t)rq->n_tools;
}

int64_t llm_wire_estimate_tokens(const llm_request *rq)
{
	buf text;
	int64_t n;

	buf_init(&text, 0);
	llm_wire_prompt_text(rq, 1, &text);
	n = llm_wire_prompt_overhead(rq) + (int64_t)((text.len * 10 + 26) / 27);
	buf_free(&text);
	return n;
}

/* --- replies --- */

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

/* Reads usage into out when present. */
static void read_usage(const json_t *usage, llm_response *out)
{
	json_t *pt, *ct;

	if (!json_is_object(usage))
		return;
	pt = json_object_get(usage, "prompt_tokens");
	ct = json_object_get(usage, "completion_tokens");
	if (json_is_integer(pt) && json_integer_value(pt) >= 0)
		out->tokens_in = json_integer_value(pt);
	if (json_is_integer(ct) && json_integer_value(ct) >= 0)
		out->tokens_out = json_integer_value(ct);
	if (json_is_integer(pt) || json_is_integer(ct))
		out->usage_estimated = 0;
}

static int set_finish(const json_t *fr, llm_response *out)
{
	int f;

	if (!fr || json_is_null(fr))
		return 0;
	if (!json_is_string(fr))
		return err_set(ERR_PARSE, "finish_reason is not a string");
	snprintf(out->finish_raw, sizeof(out->finish_raw), "%s", json_string_value(fr));
	f = finish_parse(json_string_value(fr));
	if (f < 0)
		return err_set(ERR_PARSE,
			       "unknown finish_reason '%s' (expected stop, length, tool_calls or "
			       "content_filter): the reply may be incomplete",
			       out->finish_raw);
	out->finish = f;
	return 0;
}

static int provider_error(const json_t *err)
{
	const char *msg = NULL;

	if (json_is_string(err))
		msg = json_string_value(err);
	else if (json_is_object(err))
		msg = json_string_value(json_object_get(err, "message"));
	return err_set(ERR_HTTP, "the endpoint reported an error: %s",
		       msg && *msg ? msg : "(no message)");
}

int llm_wire_parse_reply(const char *body, size_t len, llm_response *out)
{
	json_error_t e;
	json_t *root = NULL, *choice, *msg, *content, *calls, *v;
	char ex[200], why[200];
	int rc = 0;

	root = json_loadb(body, len, 0, &e);
	if (!root) {
		excerpt(body, len, ex, sizeof(ex));
		rc = err_set(ERR_PARSE, "the reply is not valid JSON (%s at byte %d): \"%s\"",
			     json_why(&e, why, sizeof(why)),
			     e.position, ex);
		goto done;
	}
	if (!json_is_object(root)) {
		rc = err_set(ERR_PARSE, "the reply is not a JSON object");
		goto done;
	}
	v = json_object_get(root, "error");
	if (v && !json_is_null(v)) {
		rc = provider_error(v);
		goto done;
	}
	v = json_object_get(root, "choices");
	if (!json_is_array(v) || json_array_size(v) == 0) {
		rc = err_set(ERR_PARSE, "the reply has no choices");
		goto done;
	}
	choice = json_array_get(v, 0);
	msg = json_object_get(choice, "message");
	if (!json_is_object(msg)) {
		rc = err_set(ERR_PARSE, "choices[0].message is missing");
		goto done;
	}
	content = json_object_get(msg, "content");
	if (content && !json_is_null(content) && !json_is_string(content)) {
		rc = err_set(ERR_PARSE, "choices[0].message.content is not a string");
		goto done;
	}
	out->content = dup_or_empty(json_string_value(content));
	if (!out->content) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	out->content_len = json_string_value(content) ? json_string_length(content) : 0;
	v = json_object_get(msg, "refusal");
	if (json_is_string(v) && json_string_length(v) > 0)
		out->refusal = strdup(json_string_value(v));
	calls = json_object_get(msg, "tool_calls");
	if (calls && !json_is_null(calls)) {
		size_t i, n;
		json_t *c;
		if (!json_is_array(calls)) {
			rc = err_set(ERR_PARSE, "choices[0].message.tool_calls is not an array");
			goto done;
		}
		n = json_array_size(calls);
		if (n > MAX_TOOL_CALLS) {
			rc = err_set(ERR_PARSE, "the reply holds %zu tool calls (at most %d)", n,
				     MAX_TOOL_CALLS);
			goto done;
		}
		out->tool_calls = calloc(n ? n : 1, sizeof(*out->tool_calls));
		if (!out->tool_calls) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto done;
		}
		json_array_foreach(calls, i, c) {
			json_t *fn = json_object_get(c, "function");
			json_t *name = json_object_get(fn, "name");
			json_t *args = json_object_get(fn, "arguments");
			llm_tool_call *tc = &out->tool_calls[i];
			if (!json_is_object(fn) || !json_is_string(name)) {
				rc = err_set(ERR_PARSE, "tool_calls[%zu] has no function name", i);
				goto done;
			}
			tc->id = dup_or_empty(json_string_value(json_object_get(c, "id")));
			tc->name = strdup(json_string_value(name));
			/* some servers send the arguments as an object, not a string */
			tc->arguments = json_is_string(args) ? strdup(json_string_value(args))
				      : args ? json_dumps(args, JSON_COMPACT)
					     : strdup("{}");
			out->n_tool_calls = i + 1;
			if (!tc->id || !tc->name || !tc->arguments) {
				rc = err_set(ERR_NOMEM, "out of memory");
				goto done;
			}
		}
	}
	rc = set_finish(json_object_get(choice, "finish_reason"), out);
	if (rc < 0)
		goto done;
	read_usage(json_object_get(root, "usage"), out);
	snprintf(out->id, sizeof(out->id), "%s",
		 json_string_value(json_object_get(root, "id")) ?: "");
	snprintf(out->provider_model, sizeof(out->provider_model), "%s",
		 json_string_value(json_object_get(root, "model")) ?: "");
done:
	json_decref(root);
	return rc;
}

static int contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return 1;
	return 0;
}

static int says_context(const char *s)
{
	static const char *const keys[] = {
		"context_length_exceeded", "context length", "maximum context", "context window",
		"exceed_context_size", "available context", "context size", "too many tokens",
		"prompt is too long", "input is too long", NULL};
	for (const char *const *k = keys; *k; k++)
		if (contains_ci(s, *k))
			return 1;
	return 0;
}

void llm_wire_error_text(const char *body, size_t len, const char *ctype, char *out, size_t cap,
			 int *is_context)
{
	json_error_t e;
	json_t *root = NULL, *err;
	char ex[200];

	*is_context = 0;
	out[0] = '\0';
	if (len == 0) {
		snprintf(out, cap, "(empty body)");
		return;
	}
	root = json_loadb(body, len, 0, &e);
	/* Google's OpenAI-compatible endpoint wraps its error in a list */
	if (json_is_array(root) && json_is_object(json_array_get(root, 0))) {
		json_t *first = json_incref(json_array_get(root, 0));
		json_decref(root);
		root = first;
	}
	if (json_is_object(root)) {
		const char *msg = NULL, *type = NULL, *code = NULL, *raw;
		char codebuf[32], innerbuf[600];
		json_t *inner;
		err = json_object_get(root, "error");
		if (json_is_string(err)) {
			msg = json_string_value(err);
		} else if (json_is_object(err)) {
			json_t *c = json_object_get(err, "code");
			msg = json_string_value(json_object_get(err, "message"));
			type = json_string_value(json_object_get(err, "type"));
			if (json_is_string(c)) {
				code = json_string_value(c);
			} else if (json_is_integer(c)) {
				snprintf(codebuf, sizeof(codebuf), "%lld",
					 (long long)json_integer_value(c));
				code = codebuf;
			}
		}
		if (msg && !*msg) /* an empty message says nothing: the next one may */
			msg = NULL;
		if (!msg)
			msg = json_string_value(json_object_get(root, "message"));
		if (msg && !*msg)
			msg = NULL;
		if (!msg)
			msg = json_string_value(json_object_get(root, "detail"));
		if (msg && !*msg)
			msg = NULL;
		if (!type && json_is_object(err))
			type = json_string_value(json_object_get(err, "status"));
		/* OpenRouter: the provider's own refusal is in error.metadata.raw */
		raw = json_string_value(json_object_get(json_object_get(err, "metadata"), "raw"));
		inner = raw ? json_loads(raw, 0, NULL) : NULL;
		if (inner) {
			json_t *ie = json_object_get(inner, "error");
			const char *im = json_string_value(json_object_get(ie, "message"));
			if (!im)
				im = json_string_value(json_object_get(inner, "message"));
			if (im) {
				snprintf(innerbuf, sizeof(innerbuf), "%s: %s", msg ? msg : "error", im);
				msg = innerbuf;
			}
		}
		if (!type)
			type = json_string_value(json_object_get(root, "type"));
		snprintf(out, cap, "%s%s%s%s%s%s", msg ? msg : "(no message)", type ? " [" : "",
			 type ? type : "", type ? "]" : "", code ? " code " : "", code ? code : "");
		utf8_fit(out);
		*is_context = says_context(out) || (code && says_context(code));
		json_decref(inner);
		json_decref(root);
		return;
	}
	json_decref(root);
	if ((ctype && contains_ci(ctype, "html")) || (len > 0 && body[0] == '<')) {
		const char *t = NULL, *end;
		char tmp[200];
		for (size_t i = 0; i + 7 <= len; i++)
			if (strncasecmp(body + i, "<title>", 7) == 0) {
				t = body + i + 7;
				break;
			}
		end = t ? memchr(t, '<', len - (size_t)(t - body)) : NULL;
		if (t && end) {
			excerpt(t, (size_t)(end - t), tmp, sizeof(tmp));
			snprintf(out, cap, "an HTML page titled \"%s\" (a proxy or web server answered, "
					   "not the model server: check base_url)", tmp);
			utf8_fit(out);
		} else {
			snprintf(out, cap, "an HTML page (a proxy or web server answered, not the model "
					   "server: check base_url)");
		}
		return;
	}
	excerpt(body, len, ex, sizeof(ex));
	snprintf(out, cap, "\"%s\"", ex);
	utf8_fit(out);
	*is_context = says_context(ex);
}

/* --- server-sent events --- */

typedef struct sse_call {
	buf id, name, args;
} sse_call;

struct llm_sse {
	llm_response *out;
	llm_delta_fn fn;
	void *udata;
	buf line;      /* the partial line */
	buf data;      /* the current event's data lines */
	buf content;   /* assembled content */
	buf raw;       /* the body, when it is one JSON object */
	int mode;      /* 0 unknown, 1 events, 2 one JSON object */
	int done;      /* [DONE] seen */
	int failed;
	int delivered;
	int saw_finish;
	int error_event;
	sse_call *calls;
	size_t ncalls;
};

int llm_sse_new(llm_sse **out, llm_response *resp, llm_delta_fn fn, void *udata)
{
	llm_sse *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	s->out = resp;
	s->fn = fn;
	s->udata = udata;
	buf_init(&s->line, SSE_LINE_MAX);
	buf_init(&s->data, SSE_LINE_MAX);
	buf_init(&s->content, REPLY_MAX);
	buf_init(&s->raw, REPLY_MAX);
	*out = s;
	return 0;
}

void llm_sse_free(llm_sse *s)
{
	if (!s)
		return;
	buf_free(&s->line);
	buf_free(&s->data);
	buf_free(&s->content);
	buf_free(&s->raw);
	for (size_t i = 0; i < s->ncalls; i++) {
		buf_free(&s->calls[i].id);
		buf_free(&s->calls[i].name);
		buf_free(&s->calls[i].args);
	}
	free(s->calls);
	free(s);
}

int llm_sse_delivered(const llm_sse *s)
{
	return s->delivered;
}

static int sse_call_at(llm_sse *s, size_t idx, sse_call **out)
{
	if (idx >= MAX_TOOL_CALLS)
		return err_set(ERR_PARSE, "a streamed tool call has index %zu (at most %d calls)", idx,
			       MAX_TOOL_CALLS);
	if (idx >= s->ncalls) {
		sse_call *n = realloc(s->calls, (idx + 1) * sizeof(*n));
		if (!n)
			return err_set(ERR_NOMEM, "out of memory");
		for (size_t i = s->ncalls; i <= idx; i++) {
			buf_init(&n[i].id, 4096);
			buf_init(&n[i].name, 4096);
			buf_init(&n[i].args, REPLY_MAX);
		}
		s->calls = n;
		s->ncalls = idx + 1;
	}
	*out = &s->calls[idx];
	return 0;
}

static int sse_chunk(llm_sse *s, const char *data, size_t len)
{
	json_error_t e;
	json_t *root, *choices, *choice, *delta, *v;
	char ex[200], why[200];
	int rc = 0;

	root = json_loadb(data, len, 0, &e);
	if (!root || !json_is_object(root)) {
		excerpt(data, len, ex, sizeof(ex));
		json_decref(root);
		return err_set(ERR_PARSE, "a streamed chunk is not a JSON object (%s): \"%s\"",
			       root ? "wrong type" : json_why(&e, why, sizeof(why)), ex);
	}
	v = json_object_get(root, "error");
	if (v && !json_is_null(v)) {
		rc = provider_error(v);
		goto done;
	}
	read_usage(json_object_get(root, "usage"), s->out);
	if (!s->out->id[0] && json_is_string(json_object_get(root, "id")))
		snprintf(s->out->id, sizeof(s->out->id), "%s",
			 json_string_value(json_object_get(root, "id")));
	if (!s->out->provider_model[0] && json_is_string(json_object_get(root, "model")))
		snprintf(s->out->provider_model, sizeof(s->out->provider_model), "%s",
			 json_string_value(json_object_get(root, "model")));
	choices = json_object_get(root, "choices");
	if (!choices || json_is_null(choices))
		goto done;
	if (!json_is_array(choices)) {
		rc = err_set(ERR_PARSE, "a streamed chunk's choices is not an array");
		goto done;
	}
	if (json_array_size(choices) == 0)
		goto done; /* the usage chunk */
	choice = json_array_get(choices, 0);
	delta = json_object_get(choice, "delta");
	if (!delta)
		delta = json_object_get(choice, "message");
	if (delta && !json_is_object(delta) && !json_is_null(delta)) {
		rc = err_set(ERR_PARSE, "choices[0].delta is not an object");
		goto done;
	}
	v = json_object_get(delta, "content");
	if (v && !json_is_null(v) && !json_is_string(v)) {
		rc = err_set(ERR_PARSE, "choices[0].delta.content is not a string");
		goto done;
	}
	if (json_is_string(v) && json_string_length(v) > 0) {
		rc = buf_append(&s->content, json_string_value(v), json_string_length(v));
		if (rc < 0)
			goto done;
		s->delivered = 1;
		if (s->fn && s->fn(json_string_value(v), json_string_length(v), s->udata) != 0) {
			rc = err_set(ERR_CANCELLED, "the caller stopped the stream");
			goto done;
		}
	}
	v = json_object_get(delta, "refusal");
	if (json_is_string(v) && json_string_length(v) > 0 && !s->out->refusal)
		s->out->refusal = strdup(json_string_value(v));
	v = json_object_get(delta, "tool_calls");
	if (json_is_array(v)) {
		size_t i;
		json_t *tc;
		json_array_foreach(v, i, tc) {
			json_t *ix = json_object_get(tc, "index");
			json_t *fn = json_object_get(tc, "function");
			json_t *id = json_object_get(tc, "id");
			json_t *name = json_object_get(fn, "name");
			json_t *args = json_object_get(fn, "arguments");
			size_t idx = json_is_integer(ix) && json_integer_value(ix) >= 0
					     ? (size_t)json_integer_value(ix)
					     : (s->ncalls ? s->ncalls - 1 : 0);
			sse_call *c = NULL;
			rc = sse_call_at(s, idx, &c);
			if (rc < 0)
				goto done;
			if (json_is_string(id) && c->id.len == 0)
				rc = buf_puts(&c->id, json_string_value(id));
			if (rc == 0 && json_is_string(name))
				rc = buf_puts(&c->name, json_string_value(name));
			if (rc == 0 && json_is_string(args))
				rc = buf_puts(&c->args, json_string_value(args));
			if (rc < 0)
				goto done;
			s->delivered = 1;
		}
	}
	v = json_object_get(choice, "finish_reason");
	if (v && !json_is_null(v)) {
		rc = set_finish(v, s->out);
		if (rc == 0)
			s->saw_finish = 1;
	}
done:
	json_decref(root);
	return rc;
}

/* Handles one complete line (without its end of line). */
static int sse_line(llm_sse *s, const char *p, size_t n)
{
	int rc = 0;

	if (n == 0) { /* end of event */
		if (s->data.len == 0)
			return 0;
		if (s->data.len == 6 && memcmp(s->data.data, "[DONE]", 6) == 0)
			s->done = 1;
		else if (s->done)
			rc = 0; /* nothing counts after [DONE] */
		else if (s->error_event) {
			char ex[304];
			utf8_excerpt(ex, sizeof(ex), s->data.data, s->data.len, 300);
			rc = err_set(ERR_HTTP, "the endpoint sent an error event: %s", ex);
		}
		else
			rc = sse_chunk(s, s->data.data, s->data.len);
		buf_reset(&s->data);
		s->error_event = 0;
		return rc;
	}
	if (p[0] == ':')
		return 0; /* a comment (keep-alive) */
	if (n >= 5 && memcmp(p, "data:", 5) == 0) {
		p += 5;
		n -= 5;
		if (n && *p == ' ') {
			p++;
			n--;
		}
		if (s->data.len)
			rc = buf_putc(&s->data, '\n');
		if (rc == 0)
			rc = buf_append(&s->data, p, n);
		return rc;
	}
	if (n >= 6 && memcmp(p, "event:", 6) == 0) {
		const char *v = p + 6;
		size_t vn = n - 6;
		while (vn && *v == ' ') {
			v++;
			vn--;
		}
		s->error_event = vn == 5 && memcmp(v, "error", 5) == 0;
	}
	return 0; /* id:, retry:, unknown fields */
}

/* Splits bytes into lines (the partial last one is kept for the next
 * call) and handles each complete one. */
static int sse_bytes(llm_sse *s, const char *data, size_t len)
{
	int rc = 0;

	for (size_t i = 0; i < len && rc == 0; i++) {
		char c = data[i];
		if (c == '\n') {
			size_t n = s->line.len;
			if (n && s->line.data[n - 1] == '\r')
				n--;
			rc = sse_line(s, s->line.data ? s->line.data : "", n);
			buf_reset(&s->line);
		} else {
			/* append the run up to the next newline at once */
			const char *nl = memchr(data + i, '\n', len - i);
			size_t run = nl ? (size_t)(nl - (data + i)) : len - i;
			rc = buf_append(&s->line, data + i, run);
			i += run - 1;
		}
	}
	return rc;
}

int llm_sse_feed(llm_sse *s, const char *data, size_t len)
{
	int rc = 0;

	if (s->failed)
		return err_set(ERR_INTERNAL, "the stream parser already failed");
	if (s->mode == 0) {
		size_t i = 0;
		while (i < len && isspace((unsigned char)data[i]))
			i++;
		if (i == len) {
			/* only white space so far: kept until the first other byte says
			 * what the body is (the same however the bytes arrive) */
			rc = buf_append(&s->raw, data, len);
			goto done;
		}
		s->mode = data[i] == '{' ? 2 : 1;
		if (s->mode == 1 && s->raw.len > 0) {
			rc = sse_bytes(s, s->raw.data, s->raw.len);
			buf_reset(&s->raw);
			if (rc < 0)
				goto done;
		}
	}
	if (s->mode == 2)
		rc = buf_append(&s->raw, data, len);
	else
		rc = sse_bytes(s, data, len);
done:
	if (rc < 0)
		s->failed = 1;
	return rc;
}

int llm_sse_finish(llm_sse *s)
{
	int rc = 0;

	if (s->failed)
		return err_set(ERR_INTERNAL, "the stream parser already failed");
	if (s->mode == 2)
		return llm_wire_parse_reply(s->raw.data ? s->raw.data : "", s->raw.len, s->out);
	if (s->line.len > 0) { /* a last line without its newline */
		rc = sse_line(s, s->line.data, s->line.len);
		if (rc == 0)
			rc = sse_line(s, "", 0);
		buf_reset(&s->line);
		if (rc < 0)
			return rc;
	} else if (s->data.len > 0) {
		rc = sse_line(s, "", 0);
		if (rc < 0)
			return rc;
	}
	if (s->mode == 0)
		return err_set(ERR_PARSE, "the stream ended without any event");
	if (!s->done && !s->saw_finish)
		return err_set(ERR_PARSE, "the stream ended before the reply was complete "
					  "(no finish_reason and no [DONE])");
	free(s->out->content);
	s->out->content_len = s->content.len;
	s->out->content = buf_steal(&s->content);
	if (!s->out->content)
		return err_set(ERR_NOMEM, "out of memory");
	if (s->ncalls > 0) {
		s->out->tool_calls = calloc(s->ncalls, sizeof(llm_tool_call));
		if (!s->out->tool_calls)
			return err_set(ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < s->ncalls; i++) {
			llm_tool_call *tc = &s->out->tool_calls[i];
			s->out->n_tool_calls = i + 1;
			tc->id = buf_steal(&s->calls[i].id);
			tc->name = buf_steal(&s->calls[i].name);
			tc->arguments = buf_steal(&s->calls[i].args);
			if (!tc->id || !tc->name || !tc->arguments)
				return err_set(ERR_NOMEM, "out of memory");
			if (!tc->name[0])
				return err_set(ERR_PARSE, "streamed tool call %zu has no name", i);
		}
	}
	return 0;
}
