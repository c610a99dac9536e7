/*
 * fake_openai — an OpenAI-compatible chat completions server for tests and
 * benchmarks, on loopback, scriptable per test over HTTP.
 *
 *   fake_openai [--port N] [--host ADDR]   prints {"port": N} on stdout once
 *                               listening (on 127.0.0.1 unless ADDR is given:
 *                               0.0.0.0 in a container of `make compose-test`)
 *
 * POST {any}/chat/completions answers from the script queue (first reply
 * whose "model" matches the request's, or has none, and whose "match" text —
 * or every text of a "match" array — occurs in the request's body), else the
 * default
 * reply, else a built-in completion (or a 20-chunk stream when the request
 * asks for "stream": true), like the reference fake in
 * ../shared/anchors/openai-node. A request without model and messages gets
 * 400, as from OpenAI; a response_format schema that llama-server's grammar
 * converter refuses (a length bound of 2000 or more, maxItems of 1998 or
 * more, an unanchored pattern) gets its 400. Each request is recorded
 * (headers and body).
 *
 * Control API (not part of OpenAI's):
 *   POST /__script   [reply, ...] appended to the queue, or
 *                    {"replies": [...], "default": reply|null, "record": bool}
 *   GET  /__requests the recorded requests: [{"path","headers","body","t_ms"}]
 *   GET  /__stats    {"requests","inflight","max_inflight","completions","streams"}
 *   POST /__reset    empties the queue, the records and the counters
 *   POST /__provider {"name": "openai-reasoning" | "gemini-3" | "claude" |
 *                    "openrouter-claude" | null}: from now on every completion
 *                    request is refused as that provider refuses it (below)
 *   POST /__models   {"ids": [...]}: GET {base}/models lists these ids (as
 *                    OpenAI does); without it that path is unknown (404)
 *   POST /__health   {"loading_ms": N}: GET /health answers 503 "Loading model"
 *                    for N ms from now, as llama-server while it loads a model,
 *                    then 200 {"status": "ok"} (the default)
 *
 * What each provider refuses, with its own error body (as seen in their
 * users' reports; the real services are not reachable from the tests):
 *   openai-reasoning (GPT-5, o-series): "max_tokens" (use max_completion_tokens),
 *     a temperature or top_p other than 1, "stop", a reasoning_effort other
 *     than minimal|low|medium|high: 400 {"error": {"message", "type":
 *     "invalid_request_error", "param", "code": "unsupported_parameter" |
 *     "unsupported_value"}}
 *   gemini-3 (Gemini 3 Pro, OpenAI-compatible endpoint): a reasoning_effort
 *     other than low|high: 400 [{"error": {"code": 400, "message", "status":
 *     "INVALID_ARGUMENT"}}] (a list)
 *   claude (Claude Opus 4.x, Anthropic's OpenAI-compatible endpoint):
 *     temperature and top_p together, a temperature above 1, a temperature
 *     other than 1 while thinking, a thinking budget not below max_tokens:
 *     400 {"type": "error", "error": {"type": "invalid_request_error", "message"}}
 *   openrouter-claude: the same refusals, wrapped by OpenRouter: 400
 *     {"error": {"message": "Provider returned error", "code": 400,
 *     "metadata": {"raw": <Anthropic's body>, "provider_name": "Anthropic"}}};
 *     a top-level reasoning_effort is refused too (OpenRouter reads
 *     "reasoning": {"effort"})
 *
 * A reply: {"model": filter, "times": n (1), "delay_ms": before answering,
 *   "status": 200, "headers": {...}, "json": value | "body": raw text,
 *   "stream": [chunk object (sent as "data: {json}") | raw string, ...],
 *   "chunk_delay_ms": between chunks, "done": false (no "data: [DONE]"),
 *   "after": "end" | "hang" (never ends; ": keep-alive" comments every
 *            keepalive_ms, 0 for silence; a reply that is not a stream
 *            sends the first half of its body, then nothing) |
 *            "reset" (TCP reset) |
 *            "truncate" (announce a longer body, then close)}
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_RECORDS 20000

static struct event_base *g_base;
static json_t *g_queue;   /* array of replies */
static json_t *g_default; /* a reply or NULL */
static json_t *g_records;
static int g_record = 1;
static long g_epoch, g_requests, g_inflight, g_max_inflight, g_completions, g_streams;
static double g_loading_until; /* GET /health answers 503 until then (now_ms) */
static char g_provider[32];    /* refuse as this provider refuses; "": accept */
static json_t *g_model_ids;    /* GET /models lists these; NULL: unknown path */
static struct evbuffer *g_completion; /* the built-in reply */
static char *g_stream_events[21];

typedef struct pending {
	struct evhttp_request *req;
	json_t *reply;    /* owned reference; NULL: built-in */
	int stream;
	size_t next;      /* next stream item */
	int started;
	int closing;
	int hanging;      /* a non-streamed reply that stopped half-way */
	struct event *timer;
	int counted;
	long epoch;       /* counted in the figures of this reset epoch */
} pending;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void send_json(struct evhttp_request *req, int status, const char *text)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", b);
	evbuffer_free(b);
}

static void send_value(struct evhttp_request *req, int status, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	send_json(req, status, s ? s : "null");
	free(s);
}

static void build_builtin(void)
{
	static const char *const tokens[] = {"Hello", "!", " How", " can", " I", " help", " you",
					     " today", "?", " I", " can", " draft", " a", " plan",
					     ",", " review", " code", " or"};
	const char *completion =
		"{\"id\":\"chatcmpl-fake0000000000000000000000\",\"object\":\"chat.completion\","
		"\"created\":1795000000,\"model\":\"fake-model\",\"choices\":[{\"index\":0,"
		"\"message\":{\"role\":\"assistant\",\"content\":\"Hello! How can I help you "
		"today?\",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":"
		"\"stop\"}],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":9,\"total_tokens\":"
		"28,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
		"\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
		"\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}},"
		"\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fake\"}";
	const char *head = "data: {\"id\":\"chatcmpl-fake0000000000000000000000\",\"object\":"
			   "\"chat.completion.chunk\",\"created\":1795000000,\"model\":\"fake-model\","
			   "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fake\",\"choices\":"
			   "[{\"index\":0,\"delta\":";
	char tmp[1024];

	g_completion = evbuffer_new();
	evbuffer_add(g_completion, completion, strlen(completion));
	snprintf(tmp, sizeof(tmp), "%s{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
				   "\"logprobs\":null,\"finish_reason\":null}]}\n\n", head);
	g_stream_events[0] = strdup(tmp);
	for (int i = 0; i < 18; i++) {
		snprintf(tmp, sizeof(tmp), "%s{\"content\":\"%s\"},\"logprobs\":null,"
					   "\"finish_reason\":null}]}\n\n", head, tokens[i]);
		g_stream_events[i + 1] = strdup(tmp);
	}
	snprintf(tmp, sizeof(tmp), "%s{},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
				   "\"usage\":null}\n\n", head);
	g_stream_events[19] = strdup(tmp);
	g_stream_events[20] = NULL;
}

static json_t *body_json(struct evhttp_request *req, char **raw_out)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	char *raw = malloc(n + 1);
	json_t *j;

	evbuffer_remove(in, raw, n);
	raw[n] = '\0';
	j = json_loadb(raw, n, 0, NULL);
	*raw_out = raw;
	return j;
}

static void record(struct evhttp_request *req, json_t *body, const char *raw)
{
	json_t *r, *h;
	struct evkeyval *kv;

	if (!g_record || json_array_size(g_records) >= MAX_RECORDS)
		return;
	r = json_object();
	h = json_object();
	for (kv = evhttp_request_get_input_headers(req)->tqh_first; kv; kv = kv->next.tqe_next) {
		char key[128];
		size_t i;
		for (i = 0; kv->key[i] && i < sizeof(key) - 1; i++)
			key[i] = (char)((kv->key[i] >= 'A' && kv->key[i] <= 'Z') ? kv->key[i] + 32
										  : kv->key[i]);
		key[i] = '\0';
		json_object_set_new(h, key, json_string(kv->value));
	}
	json_object_set_new(r, "path", json_string(evhttp_request_get_uri(req)));
	json_object_set_new(r, "headers", h);
	json_object_set_new(r, "body", body ? json_incref(body) : json_string(raw));
	json_object_set_new(r, "t_ms", json_real(now_ms()));
	json_array_append_new(g_records, r);
}

static void finish(pending *p)
{
	if (p->counted && p->epoch == g_epoch)
		g_inflight--;
	if (p->timer)
		event_free(p->timer);
	json_decref(p->reply);
	free(p);
}

static long iget(json_t *o, const char *k, long def)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

static const char *sget(json_t *o, const char *k, const char *def)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : def;
}

static void reset_conn(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	struct linger lg = {1, 0};

	if (!c)
		return;
	if (bev)
		setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	evhttp_connection_free(c); /* frees req too */
}

static void tick(evutil_socket_t fd, short what, void *arg);

static void schedule(pending *p, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(p->timer, &tv);
}

static void add_headers(struct evhttp_request *req, json_t *reply, const char *ctype)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	json_t *hs = json_object_get(reply, "headers"), *v;
	const char *k;
	int has_ct = 0;

	json_object_foreach(hs, k, v) {
		if (json_is_string(v)) {
			evhttp_add_header(oh, k, json_string_value(v));
			if (strcasecmp(k, "content-type") == 0)
				has_ct = 1;
		}
	}
	if (!has_ct)
		evhttp_add_header(oh, "Content-Type", ctype);
}

/* Sends the next piece of a reply. */
static void tick(evutil_socket_t fd, short what, void *arg)
{
	pending *p = arg;
	struct evhttp_request *req = p->req;
	json_t *items = json_object_get(p->reply, "stream");
	const char *after = sget(p->reply, "after", "end");
	struct evbuffer *b;
	(void)fd;
	(void)what;

	if (p->started && !evhttp_request_get_connection(req)) {
		evhttp_send_reply_end(req); /* the client left: this frees req */
		finish(p);
		return;
	}
	if (p->hanging) { /* a non-streamed reply stopped half-way: wait for the client to go */
		schedule(p, 100);
		return;
	}
	if (p->closing) { /* the "reset" after the last chunk */
		reset_conn(req);
		finish(p);
		return;
	}
	if (!p->stream) {
		int status = (int)iget(p->reply, "status", 200);
		json_t *jv = json_object_get(p->reply, "json");
		const char *raw = sget(p->reply, "body", NULL);
		b = evbuffer_new();
		if (jv) {
			char *s = json_dumps(jv, JSON_COMPACT | JSON_ENCODE_ANY);
			evbuffer_add(b, s, strlen(s));
			free(s);
		} else if (raw) {
			evbuffer_add(b, raw, strlen(raw));
		} else {
			evbuffer_add_buffer_reference(b, g_completion);
		}
		if (p->reply)
			add_headers(req, p->reply, "application/json");
		else
			evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
					  "application/json");
		if (strcmp(after, "truncate") == 0) {
			char cl[32];
			snprintf(cl, sizeof(cl), "%zu", evbuffer_get_length(b) + 100);
			evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", cl);
			evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		}
		if (strcmp(after, "reset") == 0) {
			evbuffer_free(b);
			reset_conn(req);
			finish(p);
			return;
		}
		if (strcmp(after, "hang") == 0) { /* the first half, then nothing */
			struct evbuffer *half = evbuffer_new();
			evbuffer_remove_buffer(b, half, evbuffer_get_length(b) / 2);
			evhttp_send_reply_start(req, status, "Reply");
			evhttp_send_reply_chunk(req, half);
			evbuffer_free(half);
			evbuffer_free(b);
			p->started = 1;
			p->hanging = 1;
			schedule(p, 100);
			return;
		}
		evhttp_send_reply(req, status, "Reply", b);
		evbuffer_free(b);
		finish(p);
		return;
	}
	if (!p->started) {
		if (p->reply)
			add_headers(req, p->reply, "text/event-stream");
		else
			evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
					  "text/event-stream");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-cache");
		evhttp_send_reply_start(req, (int)iget(p->reply, "status", 200), "OK");
		p->started = 1;
	}
	b = evbuffer_new();
	if (!p->reply) { /* the built-in stream: one event per tick */
		if (g_stream_events[p->next]) {
			evbuffer_add(b, g_stream_events[p->next], strlen(g_stream_events[p->next]));
			p->next++;
		} else {
			evbuffer_add(b, "data: [DONE]\n\n", 14);
			evhttp_send_reply_chunk(req, b);
			evbuffer_free(b);
			evhttp_send_reply_end(req);
			finish(p);
			return;
		}
		evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
		schedule(p, 0);
		return;
	}
	if (p->next < json_array_size(items)) {
		json_t *it = json_array_get(items, p->next++);
		if (json_is_string(it)) {
			evbuffer_add(b, json_string_value(it), json_string_length(it));
		} else {
			char *s = json_dumps(it, JSON_COMPACT);
			evbuffer_add_printf(b, "data: %s\n\n", s);
			free(s);
		}
		evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
		schedule(p, iget(p->reply, "chunk_delay_ms", 0));
		return;
	}
	if (p->next == json_array_size(items)) {
		p->next++;
		if (!json_is_false(json_object_get(p->reply, "done")) && strcmp(after, "end") == 0)
			evbuffer_add(b, "data: [DONE]\n\n", 14);
	}
	if (strcmp(after, "hang") == 0) {
		long ka = iget(p->reply, "keepalive_ms", 100);
		if (ka > 0)
			evbuffer_add(b, ": keep-alive\n\n", 14);
		if (evbuffer_get_length(b))
			evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
		schedule(p, ka > 0 ? ka : 100);
		return;
	}
	if (strcmp(after, "reset") == 0) {
		if (evbuffer_get_length(b))
			evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
		p->closing = 1;
		schedule(p, 30); /* let the chunks leave before the reset */
		return;
	}
	if (evbuffer_get_length(b))
		evhttp_send_reply_chunk(req, b);
	evbuffer_free(b);
	evhttp_send_reply_end(req);
	finish(p);
}

/* Takes the first queued reply for `model` (and whose "match" text is in the
 * request's body), or the default. New reference. */
static json_t *take_reply(const char *model, const char *raw)
{
	size_t i;
	json_t *r;

	json_array_foreach(g_queue, i, r) {
		const char *m = sget(r, "model", NULL);
		const json_t *match = json_object_get(r, "match");
		long times;
		int ok = 1;
		if (m && (!model || strcmp(m, model) != 0))
			continue;
		if (json_is_string(match)) {
			ok = raw && strstr(raw, json_string_value(match));
		} else if (json_is_array(match)) { /* every one of them */
			size_t k;
			const json_t *x;
			json_array_foreach(match, k, x)
				if (!raw || !json_is_string(x) || !strstr(raw, json_string_value(x)))
					ok = 0;
		}
		if (!ok)
			continue;
		json_incref(r);
		times = iget(r, "times", 1);
		if (times > 1)
			json_object_set_new(r, "times", json_integer(times - 1));
		else
			json_array_remove(g_queue, i);
		return r;
	}
	if (g_default)
		json_incref(g_default);
	return g_default;
}

/* What llama-server's grammar converter refuses in a response_format schema
 * (llama.cpp at the commit of ../shared/llama): a length bound of 2000 or
 * more, maxItems of 1998 or more, a pattern not anchored with ^...$. Returns
 * the error message, or NULL when the schema is taken. */
static const char *grammar_refuses(const json_t *sc, int depth)
{
	const char *k, *why;
	json_t *v;
	size_t i;

	if (depth > 64)
		return NULL;
	if (json_is_array(sc)) {
		json_array_foreach(sc, i, v) {
			why = grammar_refuses(v, depth + 1);
			if (why)
				return why;
		}
		return NULL;
	}
	if (!json_is_object(sc))
		return NULL;
	json_object_foreach((json_t *)sc, k, v) {
		if (json_is_integer(v) &&
		    (((strcmp(k, "maxLength") == 0 || strcmp(k, "minLength") == 0) &&
		      json_integer_value(v) >= 2000) ||
		     (strcmp(k, "maxItems") == 0 && json_integer_value(v) >= 1998)))
			return "Failed to initialize samplers: failed to parse grammar";
		if (strcmp(k, "pattern") == 0 && json_is_string(v)) {
			const char *p = json_string_value(v);
			size_t n = strlen(p);
			if (n < 2 || p[0] != '^' || p[n - 1] != '$')
				return "Unable to generate parser for this template. Automatic parser "
				       "generation failed: JSON schema conversion failed:\nPattern must "
				       "start with '^' and end with '$'";
		}
		why = grammar_refuses(v, depth + 1);
		if (why)
			return why;
	}
	return NULL;
}

static int in_list(const char *v, const char *const *list)
{
	for (; v && *list; list++)
		if (strcmp(v, *list) == 0)
			return 1;
	return 0;
}

static json_t *openai_error(const char *msg, const char *param, const char *code)
{
	return json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "message", msg, "type",
			 "invalid_request_error", "param", param, "code", code);
}

/* Anthropic's refusal of the sampling fields, or NULL when it takes them. */
static const char *anthropic_refuses(const json_t *body)
{
	const json_t *t = json_object_get(body, "temperature"), *tp = json_object_get(body, "top_p");
	const json_t *think = json_object_get(body, "thinking");
	json_int_t max = json_integer_value(json_object_get(body, "max_tokens"));

	if (t && tp)
		return "`temperature` and `top_p` cannot both be specified for this model. Please use "
		       "only one.";
	if (t && json_number_value(t) > 1)
		return "temperature: range: 0..1";
	if (think && t && json_number_value(t) != 1)
		return "`temperature` may only be set to 1 when thinking is enabled or in adaptive "
		       "mode. Please consult our documentation at "
		       "https://docs.claude.com/en/docs/build-with-claude/extended-thinking";
	if (think && json_integer_value(json_object_get(think, "budget_tokens")) >= max)
		return "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult "
		       "our documentation at "
		       "https://docs.claude.com/en/docs/build-with-claude/extended-thinking";
	return NULL;
}

/* The refusal of the provider set with /__provider (owned), or NULL. */
static json_t *provider_refuses(const json_t *body)
{
	static const char *const gpt5_efforts[] = {"minimal", "low", "medium", "high", NULL};
	static const char *const gemini_valid[] = {"high", "low", "medium", "none", NULL};
	const json_t *t = json_object_get(body, "temperature"), *tp = json_object_get(body, "top_p");
	const char *effort = json_string_value(json_object_get(body, "reasoning_effort"));
	char msg[300];

	if (strcmp(g_provider, "openai-reasoning") == 0) {
		if (json_object_get(body, "max_tokens"))
			return openai_error("Unsupported parameter: 'max_tokens' is not supported with "
					    "this model. Use 'max_completion_tokens' instead.",
					    "max_tokens", "unsupported_parameter");
		if (t && json_number_value(t) != 1) {
			snprintf(msg, sizeof(msg), "Unsupported value: 'temperature' does not support "
						   "%g with this model. Only the default (1) value is "
						   "supported.", json_number_value(t));
			return openai_error(msg, "temperature", "unsupported_value");
		}
		if (tp && json_number_value(tp) != 1)
			return openai_error("Unsupported value: 'top_p' does not support this value "
					    "with this model. Only the default (1) value is supported.",
					    "top_p", "unsupported_value");
		if (json_object_get(body, "stop"))
			return openai_error("Unsupported parameter: 'stop' is not supported with this "
					    "model.", "stop", "unsupported_parameter");
		if (effort && !in_list(effort, gpt5_efforts)) {
			snprintf(msg, sizeof(msg), "Unsupported value: 'reasoning_effort' does not "
						   "support '%s' with this model. Supported values are: "
						   "'minimal', 'low', 'medium', and 'high'.", effort);
			return openai_error(msg, "reasoning_effort", "unsupported_value");
		}
		return NULL;
	}
	if (strcmp(g_provider, "gemini-3") == 0) {
		if (effort && !in_list(effort, gemini_valid))
			snprintf(msg, sizeof(msg), "Invalid reasoning_effort: %s. Valid values are: "
						   "high, low, medium, none", effort);
		else if (effort && (strcmp(effort, "medium") == 0 || strcmp(effort, "none") == 0))
			snprintf(msg, sizeof(msg), "Thinking level %s is not supported for this model. "
						   "Please retry with other thinking level",
				 strcmp(effort, "medium") == 0 ? "MEDIUM" : "NONE");
		else
			return NULL;
		return json_pack("[{s:{s:i, s:s, s:s}}]", "error", "code", 400, "message", msg,
				 "status", "INVALID_ARGUMENT");
	}
	if (strcmp(g_provider, "claude") == 0 || strcmp(g_provider, "openrouter-claude") == 0) {
		const char *why = anthropic_refuses(body);
		json_t *a;
		char *raw;
		int router = strcmp(g_provider, "openrouter-claude") == 0;
		if (!why && router && effort)
			return json_pack("{s:{s:s, s:i}}", "error", "message",
					 "reasoning_effort is not a parameter OpenRouter takes: send "
					 "reasoning.effort", "code", 400);
		if (!why)
			return NULL;
		a = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
			      "invalid_request_error", "message", why);
		if (!router)
			return a;
		raw = json_dumps(a, JSON_COMPACT);
		json_decref(a);
		a = json_pack("{s:{s:s, s:i, s:{s:s, s:s}}}", "error", "message",
			      "Provider returned error", "code", 400, "metadata", "raw", raw ? raw : "",
			      "provider_name", "Anthropic");
		free(raw);
		return a;
	}
	return NULL;
}

static void on_completions(struct evhttp_request *req)
{
	char *raw = NULL;
	json_t *body = body_json(req, &raw);
	const char *model = json_string_value(json_object_get(body, "model"));
	pending *p;

	g_requests++;
	record(req, body, raw);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		send_json(req, 404, "{\"error\":{\"message\":\"Unknown request URL\",\"type\":"
				    "\"invalid_request_error\",\"code\":\"unknown_url\"}}");
		goto done;
	}
	if (!json_is_object(body) || !model || !json_is_array(json_object_get(body, "messages"))) {
		send_json(req, 400, "{\"error\":{\"message\":\"model and messages are required\","
				    "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
		goto done;
	}
	if (g_provider[0]) {
		json_t *refusal = provider_refuses(body);
		if (refusal) {
			send_value(req, 400, refusal);
			json_decref(refusal);
			goto done;
		}
	}
	{
		const json_t *sc = json_object_get(
			json_object_get(json_object_get(body, "response_format"), "json_schema"), "schema");
		const char *why = sc ? grammar_refuses(sc, 0) : NULL;
		if (why) {
			json_t *e = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", 400, "message", why,
					      "type", "invalid_request_error");
			send_value(req, 400, e);
			json_decref(e);
			goto done;
		}
	}
	p = calloc(1, sizeof(*p));
	p->req = req;
	p->reply = take_reply(model, raw);
	if (p->reply)
		p->stream = json_object_get(p->reply, "stream") != NULL;
	else
		p->stream = json_is_true(json_object_get(body, "stream"));
	if (p->stream)
		g_streams++;
	else
		g_completions++;
	p->counted = 1;
	p->epoch = g_epoch;
	if (++g_inflight > g_max_inflight)
		g_max_inflight = g_inflight;
	p->timer = evtimer_new(g_base, tick, p);
	if (!p->reply) { /* the fast path of benchmarks */
		tick(-1, 0, p);
		goto done;
	}
	schedule(p, iget(p->reply, "delay_ms", 0));
done:
	json_decref(body);
	free(raw);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	char path[512];
	size_t n;
	(void)arg;

	snprintf(path, sizeof(path), "%s", uri);
	if (strchr(path, '?'))
		*strchr(path, '?') = '\0';
	n = strlen(path);
	if (n >= 17 && strcmp(path + n - 17, "/chat/completions") == 0) {
		on_completions(req);
		return;
	}
	if (strcmp(path, "/__script") == 0) {
		char *raw = NULL;
		json_t *b = body_json(req, &raw);
		json_t *replies = json_is_array(b) ? b : json_object_get(b, "replies");
		if (!b) {
			send_json(req, 400, "{\"error\":\"the script is not JSON\"}");
		} else {
			json_array_extend(g_queue, replies ? replies : json_array());
			if (json_is_object(b) && json_object_get(b, "default")) {
				json_decref(g_default);
				g_default = json_is_null(json_object_get(b, "default"))
						    ? NULL
						    : json_incref(json_object_get(b, "default"));
			}
			if (json_is_object(b) && json_is_boolean(json_object_get(b, "record")))
				g_record = json_is_true(json_object_get(b, "record"));
			send_json(req, 200, "{\"ok\":true}");
		}
		json_decref(b);
		free(raw);
		return;
	}
	if (strcmp(path, "/__requests") == 0) {
		send_value(req, 200, g_records);
		return;
	}
	if (strcmp(path, "/__stats") == 0) {
		json_t *s = json_pack("{sisisisisisi}", "requests", (int)g_requests, "inflight",
				      (int)g_inflight, "max_inflight", (int)g_max_inflight,
				      "completions", (int)g_completions, "streams", (int)g_streams,
				      "queued", (int)json_array_size(g_queue));
		send_value(req, 200, s);
		json_decref(s);
		return;
	}
	if (strcmp(path, "/health") == 0) {
		if (now_ms() < g_loading_until)
			send_json(req, 503, "{\"error\":{\"code\":503,\"message\":\"Loading model\","
					    "\"type\":\"unavailable_error\"}}");
		else
			send_json(req, 200, "{\"status\":\"ok\"}");
		return;
	}
	if (strcmp(path, "/__provider") == 0) {
		char *raw = NULL;
		json_t *b = body_json(req, &raw);
		const char *name = json_string_value(json_object_get(b, "name"));
		snprintf(g_provider, sizeof(g_provider), "%s", name ? name : "");
		send_json(req, 200, "{\"ok\":true}");
		json_decref(b);
		free(raw);
		return;
	}
	if (strcmp(path, "/__models") == 0) {
		char *raw = NULL;
		json_t *b = body_json(req, &raw);
		json_decref(g_model_ids);
		g_model_ids = json_is_array(json_object_get(b, "ids"))
				      ? json_incref(json_object_get(b, "ids"))
				      : NULL;
		send_json(req, 200, "{\"ok\":true}");
		json_decref(b);
		free(raw);
		return;
	}
	if (g_model_ids && n >= 7 && strcmp(path + n - 7, "/models") == 0) {
		json_t *list = json_pack("{s:s, s:[]}", "object", "list", "data");
		size_t i;
		json_t *id;
		json_array_foreach(g_model_ids, i, id)
			json_array_append_new(json_object_get(list, "data"),
					      json_pack("{s:O, s:s, s:i, s:s}", "id", id, "object",
							"model", "created", 1750000000, "owned_by",
							"system"));
		send_value(req, 200, list);
		json_decref(list);
		return;
	}
	if (strcmp(path, "/__health") == 0) {
		char *raw = NULL;
		json_t *b = body_json(req, &raw);
		g_loading_until = now_ms() + (double)iget(b, "loading_ms", 0);
		send_json(req, 200, "{\"ok\":true}");
		json_decref(b);
		free(raw);
		return;
	}
	if (strcmp(path, "/__reset") == 0) {
		json_array_clear(g_queue);
		json_array_clear(g_records);
		json_decref(g_default);
		g_default = NULL;
		g_record = 1;
		g_loading_until = 0;
		g_provider[0] = '\0';
		json_decref(g_model_ids);
		g_model_ids = NULL;
		/* replies still pending from before stop counting */
		g_epoch++;
		g_requests = g_inflight = g_max_inflight = g_completions = g_streams = 0;
		send_json(req, 200, "{\"ok\":true}");
		return;
	}
	send_json(req, 404, "{\"error\":{\"message\":\"Unknown request URL\",\"type\":"
			    "\"invalid_request_error\",\"code\":\"unknown_url\"}}");
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(g_base);
}

int main(int argc, char **argv)
{
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	struct event *sigterm, *sigint;
	int port = 0;
	const char *host = "127.0.0.1";

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
			host = argv[++i];
		} else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end || v < 0 || v > 65535) {
				fprintf(stderr, "fake_openai: --port takes a port number\n");
				return 2;
			}
			port = (int)v;
		} else {
			fprintf(stderr, "usage: fake_openai [--port N] [--host ADDR]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	g_base = event_base_new();
	http = evhttp_new(g_base);
	g_queue = json_array();
	g_records = json_array();
	build_builtin();
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						 EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(http, 64 << 20);
	evhttp_set_gencb(http, on_request, NULL);
	sock = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
	if (!sock) {
		fprintf(stderr, "fake_openai: cannot listen on %s:%d\n", host, port);
		return 1;
	}
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len);
		printf("{\"port\": %d}\n", ntohs(sin->sin_port));
		fflush(stdout);
	}
	sigterm = evsignal_new(g_base, SIGTERM, on_signal, NULL);
	sigint = evsignal_new(g_base, SIGINT, on_signal, NULL);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	event_base_dispatch(g_base);
	event_free(sigterm);
	event_free(sigint);
	evhttp_free(http);
	event_base_free(g_base);
	json_decref(g_queue);
	json_decref(g_records);
	json_decref(g_default);
	evbuffer_free(g_completion);
	for (int i = 0; g_stream_events[i]; i++)
		free(g_stream_events[i]);
	return 0;
}
