/*
 * fake_telegram — a fake Telegram Bot API server for tests (libevent evhttp,
 * loopback only). It speaks the real API at /bot<token>/<method> and
 * refuses what Telegram refuses; a control API under /control/ scripts it.
 *
 *   fake_telegram [--port N] [--token T] [--host ADDR]
 *                            prints "PORT <n>" once listening (on 127.0.0.1
 *                            unless ADDR is given)
 *
 * Bot API: getMe, deleteWebhook, getUpdates (offset confirms, long polls up
 * to `timeout`, a second poll ends the first with 409), sendMessage,
 * editMessageText, editMessageReplyMarkup, answerCallbackQuery,
 * sendChatAction, sendDocument (multipart), sendMessageDraft, setMyCommands,
 * getMyCommands. Refused like Telegram: a wrong token (401), text over 4096
 * characters after entity parsing, HTML it cannot parse ("can't parse
 * entities"), callback_data over 64 bytes, a second answer to one callback
 * query, an edit to identical content ("message is not modified"), an edit
 * of an unknown message; a command list that is not an array of at most
 * 100 {"command" (1-32 of a-z, 0-9, _), "description" (1-256 characters)}
 * (BOT_COMMAND_INVALID, ...), a command listed twice; a draft
 * (sendMessageDraft: a reply streamed while it is written, ephemeral, shown
 * about 30 s) anywhere but a private chat (TEXTDRAFT_PEER_INVALID, as
 * Telegram answers), with a draft_id of 0 or none, with an empty text or
 * one over 4096 characters. In this fake a chat id below 0 is a group (a
 * supergroup), above 0 a private chat. Drafts are not messages: GET
 * /control/drafts lists them.
 *
 * Control API (JSON):
 *   POST /control/updates    [update, ...] queued; update_id assigned when
 *                            missing; {"raw": "text"} is put in the result
 *                            array verbatim (malformed entries), and
 *                            {"raw_hex": "7b22..."} the bytes it spells (not
 *                            UTF-8, as the real server writes callback data
 *                            a client sent); "@ID@" in either becomes the
 *                            update's id
 *   POST /control/callback   {"chat_id", "message_id", "from", "data"}:
 *                            queues a callback_query; returns its ids
 *   POST /control/script     {"method", "status", "description",
 *                            "retry_after", "count", "delay_ms",
 *                            "malformed"}: the next `count` calls of
 *                            `method` fail so (or are slow, or malformed)
 *   POST /control/duplicate  {"count": n}: the next getUpdates delivers the
 *                            last n confirmed updates again
 *   GET  /control/requests   every request: seq, t_ms, method, status,
 *                            params (the parsed body)
 *   GET  /control/state      confirmed offset, queue length, ...
 *   GET  /control/messages   the messages as they are now (after edits)
 *   GET  /control/drafts     every draft accepted: chat, draft_id, text, t_ms
 *   POST /control/quit
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

typedef struct qupdate {
	int64_t id;
	char *json; /* the update's JSON text */
} qupdate;

typedef struct message {
	int64_t chat, id;
	char *text;    /* after entity parsing */
	char *markup;  /* reply_markup JSON or NULL */
} message;

typedef struct script {
	char method[64];
	int status, count, retry_after, malformed;
	int64_t delay_ms;
	char description[256];
} script;

static struct {
	struct event_base *base;
	char token[256];
	qupdate *q;
	int nq, capq;
	qupdate *hist; /* confirmed, kept for duplicate deliveries */
	int nhist, caphist;
	int64_t next_id, confirmed;
	int dup;
	message *msgs;
	int nmsgs, capmsgs;
	int64_t next_msg;
	char **cb_ids;
	int *cb_answered;
	int ncb, capcb;
	int64_t next_cb;
	script scripts[64];
	int nscripts;
	json_t *log;
	json_t *drafts;
	int64_t seq;
	struct evhttp_request *poll;
	int poll_limit;
	struct event *poll_timer;
	struct timespec t0;
	json_t *commands; /* the last list setMyCommands accepted */
} S;

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - S.t0.tv_sec) * 1000.0 + (double)(t.tv_nsec - S.t0.tv_nsec) / 1e6;
}

static void *grow(void *p, int *cap, int need, size_t el)
{
	if (need <= *cap)
		return p;
	*cap = *cap ? *cap * 2 : 64;
	if (*cap < need)
		*cap = need;
	p = realloc(p, (size_t)*cap * el);
	if (!p) {
		fprintf(stderr, "fake_telegram: out of memory\n");
		exit(1);
	}
	return p;
}

static void reply_raw(struct evhttp_request *rq, int status, const char *body,
		      int retry_after)
{
	struct evbuffer *b = evbuffer_new();
	char ra[16];

	evhttp_add_header(evhttp_request_get_output_headers(rq), "Content-Type", "application/json");
	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(rq), "Retry-After", ra);
	}
	evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(rq, status, status == 200 ? "OK" : "Error", b);
	evbuffer_free(b);
}

static void reply_json(struct evhttp_request *rq, int status, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	reply_raw(rq, status, s ? s : "{}", 0);
	free(s);
	json_decref(j);
}

/* When the request being answered arrived (t_ms in the log: the moment the
 * client sent it, not when a long poll was answered). */
static double arrived_ms;

static void log_req(const char *method, json_t *params, int status, const char *error)
{
	json_t *e = json_pack("{s:I,s:f,s:f,s:s,s:i,s:O}", "seq", (json_int_t)++S.seq, "t_ms",
			      arrived_ms, "t_reply_ms", now_ms(),
			      "method", method, "status", status, "params",
			      params ? params : json_null());
	if (error)
		json_object_set_new(e, "error", json_string(error));
	json_array_append_new(S.log, e);
}

/* Answers an API call, logging it. Takes `result` (NULL for an error). */
static void api_ok(struct evhttp_request *rq, const char *method, json_t *params, json_t *result)
{
	log_req(method, params, 200, NULL);
	reply_json(rq, 200, json_pack("{s:b,s:o}", "ok", 1, "result", result));
}

static void api_err(struct evhttp_request *rq, const char *method, json_t *params, int code,
		    const char *desc, int retry_after)
{
	json_t *j = json_pack("{s:b,s:i,s:s}", "ok", 0, "error_code", code, "description", desc);
	char *s;

	if (retry_after > 0)
		json_object_set_new(j, "parameters", json_pack("{s:i}", "retry_after", retry_after));
	log_req(method, params, code, desc);
	s = json_dumps(j, JSON_COMPACT);
	reply_raw(rq, code, s, retry_after);
	free(s);
	json_decref(j);
}

/* --- text as Telegram parses it --- */

static size_t utf16_units(const unsigned char *s, size_t n)
{
	size_t u = 0;
	for (size_t i = 0; i < n; i++) {
		if ((s[i] & 0xc0) == 0x80)
			continue;
		u += s[i] >= 0xf0 ? 2 : 1;
	}
	return u;
}

static const char *const TAGS[] = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del",
				   "span", "tg-spoiler", "a", "code", "pre", "blockquote",
				   "tg-emoji", NULL};

/* Parses Telegram HTML into plain text (*out, malloc'd). Returns NULL on
 * success or the error description. */
static const char *parse_html(const char *h, char **out)
{
	static char err[256];
	char stack[32][24];
	int depth = 0;
	size_t n = strlen(h), i = 0, k = 0;
	char *o = malloc(n + 1);

	while (i < n) {
		if (h[i] == '<') {
			const char *e = strchr(h + i, '>');
			char name[24];
			size_t j = i + 1, m = 0;
			int closing = 0, known = 0;
			if (!e) {
				snprintf(err, sizeof(err), "can't parse entities: unclosed start tag at byte offset %zu", i);
				free(o);
				return err;
			}
			if (h[j] == '/') {
				closing = 1;
				j++;
			}
			while (h + j < e && h[j] != ' ' && m + 1 < sizeof(name))
				name[m++] = h[j++];
			name[m] = '\0';
			for (int t = 0; TAGS[t]; t++)
				if (strcmp(TAGS[t], name) == 0)
					known = 1;
			if (!known) {
				snprintf(err, sizeof(err), "can't parse entities: Unsupported start tag \"%s\" at byte offset %zu", name, i);
				free(o);
				return err;
			}
			if (!closing) {
				if (depth >= 32) {
					free(o);
					return "can't parse entities: too deep";
				}
				snprintf(stack[depth++], sizeof(stack[0]), "%s", name);
			} else {
				if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
					snprintf(err, sizeof(err), "can't parse entities: Unmatched end tag at byte offset %zu, expected \"</%s>\", found \"</%s>\"", i, depth ? stack[depth - 1] : "", name);
					free(o);
					return err;
				}
				depth--;
			}
			i = (size_t)(e - h) + 1;
			continue;
		}
		if (h[i] == '&') {
			const char *semi = strchr(h + i, ';');
			if (semi && semi - (h + i) < 12) {
				size_t len = (size_t)(semi - (h + i)) + 1;
				if (strncmp(h + i, "&lt;", len) == 0 && len == 4) o[k++] = '<';
				else if (strncmp(h + i, "&gt;", len) == 0 && len == 4) o[k++] = '>';
				else if (strncmp(h + i, "&amp;", len) == 0 && len == 5) o[k++] = '&';
				else if (strncmp(h + i, "&quot;", len) == 0 && len == 6) o[k++] = '"';
				else if (h[i + 1] == '#') o[k++] = '?';
				else {
					snprintf(err, sizeof(err), "can't parse entities: Unsupported HTML entity at byte offset %zu", i);
					free(o);
					return err;
				}
				i += len;
				continue;
			}
		}
		o[k++] = h[i++];
	}
	o[k] = '\0';
	if (depth > 0) {
		snprintf(err, sizeof(err), "can't parse entities: Can't find end tag corresponding to start tag \"%s\"", stack[depth - 1]);
		free(o);
		return err;
	}
	*out = o;
	return NULL;
}

/* The text as shown, or an error description for the API. */
static const char *message_text(json_t *p, char **out)
{
	const char *text = json_string_value(json_object_get(p, "text"));
	const char *mode = json_string_value(json_object_get(p, "parse_mode"));
	const char *e;

	*out = NULL;
	if (!text || !*text)
		return "Bad Request: message text is empty";
	if (mode && strcasecmp(mode, "HTML") == 0) {
		static char err[300];
		e = parse_html(text, out);
		if (e) {
			snprintf(err, sizeof(err), "Bad Request: %s", e);
			return err;
		}
	} else {
		*out = strdup(text);
	}
	if (utf16_units((const unsigned char *)*out, strlen(*out)) > 4096) {
		free(*out);
		*out = NULL;
		return "Bad Request: message is too long";
	}
	if (!**out) {
		free(*out);
		*out = NULL;
		return "Bad Request: message text is empty";
	}
	return NULL;
}

static const char *check_markup(json_t *p, char **markup)
{
	json_t *m = json_object_get(p, "reply_markup"), *rows, *row, *b;
	size_t i, j;

	*markup = NULL;
	if (!m)
		return NULL;
	if (json_is_string(m))
		m = json_loads(json_string_value(m), 0, NULL);
	else
		json_incref(m);
	rows = json_object_get(m, "inline_keyboard");
	json_array_foreach(rows, i, row) {
		json_array_foreach(row, j, b) {
			const char *d = json_string_value(json_object_get(b, "callback_data"));
			if (d && (strlen(d) > 64 || strlen(d) == 0)) {
				json_decref(m);
				return "Bad Request: BUTTON_DATA_INVALID";
			}
			if (!json_string_value(json_object_get(b, "text"))) {
				json_decref(m);
				return "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard";
			}
		}
	}
	if (json_array_size(rows) > 0)
		*markup = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(m);
	return NULL;
}

static int64_t chat_of(json_t *p)
{
	json_t *c = json_object_get(p, "chat_id");
	if (json_is_integer(c))
		return json_integer_value(c);
	if (json_is_string(c))
		return strtoll(json_string_value(c), NULL, 10);
	return 0;
}

static message *find_msg(int64_t chat, int64_t id)
{
	for (int i = 0; i < S.nmsgs; i++)
		if (S.msgs[i].chat == chat && S.msgs[i].id == id)
			return &S.msgs[i];
	return NULL;
}

static json_t *message_json(const message *m)
{
	json_t *j = json_pack("{s:I,s:I,s:{s:I,s:s},s:s}", "message_id", (json_int_t)m->id, "date",
			      (json_int_t)time(NULL), "chat", "id", (json_int_t)m->chat, "type",
			      m->chat < 0 ? "supergroup" : "private", "text", m->text ? m->text : "");
	return j;
}

/* --- getUpdates --- */

static void confirm(int64_t offset)
{
	int k = 0;

	if (offset <= S.confirmed)
		return;
	S.confirmed = offset;
	for (int i = 0; i < S.nq; i++) {
		if (S.q[i].id < offset) {
			S.hist = grow(S.hist, &S.caphist, S.nhist + 1, sizeof(*S.hist));
			S.hist[S.nhist++] = S.q[i];
		} else {
			S.q[k++] = S.q[i];
		}
	}
	S.nq = k;
}

static void send_updates(struct evhttp_request *rq, json_t *params, int limit)
{
	struct evbuffer *b = evbuffer_new();
	int n = 0;

	evbuffer_add_printf(b, "{\"ok\":true,\"result\":[");
	if (S.dup > 0) {
		int from = S.nhist - S.dup < 0 ? 0 : S.nhist - S.dup;
		for (int i = from; i < S.nhist; i++)
			evbuffer_add_printf(b, "%s%s", n++ ? "," : "", S.hist[i].json);
		S.dup = 0;
	}
	for (int i = 0; i < S.nq && i < limit; i++)
		evbuffer_add_printf(b, "%s%s", n++ ? "," : "", S.q[i].json);
	evbuffer_add_printf(b, "]}");
	log_req("getUpdates", params, 200, NULL);
	json_object_set_new(json_array_get(S.log, json_array_size(S.log) - 1), "delivered",
			    json_integer(n));
	evhttp_add_header(evhttp_request_get_output_headers(rq), "Content-Type", "application/json");
	evhttp_send_reply(rq, 200, "OK", b);
	evbuffer_free(b);
}

static json_t *poll_params;
static double poll_arrived;

static void poll_finish(void)
{
	struct evhttp_request *rq = S.poll;
	json_t *p = poll_params;
	double saved = arrived_ms;

	if (!rq)
		return;
	arrived_ms = poll_arrived;
	S.poll = NULL;
	poll_params = NULL;
	evtimer_del(S.poll_timer);
	send_updates(rq, p, S.poll_limit);
	json_decref(p);
	arrived_ms = saved;
}

static void on_poll_timeout(evutil_socket_t fd, short k, void *arg)
{
	(void)fd;
	(void)k;
	(void)arg;
	poll_finish();
}

static void on_poll_closed(struct evhttp_connection *c, void *arg)
{
	(void)c;
	if (S.poll == arg) {
		double saved = arrived_ms;
		/* the client went away while its poll was held: logged, status 499 */
		S.poll = NULL;
		evtimer_del(S.poll_timer);
		arrived_ms = poll_arrived;
		log_req("getUpdates", poll_params, 499, "closed by the client");
		arrived_ms = saved;
		json_decref(poll_params);
		poll_params = NULL;
	}
}

typedef struct delayed {
	struct evhttp_request *rq;
	double arrived;
	json_t *params;
	int limit;
	int64_t timeout;
} delayed;

static void get_updates(struct evhttp_request *rq, json_t *params, int64_t delay_ms);

static void on_delayed(evutil_socket_t fd, short k, void *arg)
{
	delayed *d = arg;
	(void)fd;
	(void)k;
	arrived_ms = d->arrived;
	get_updates(d->rq, d->params, 0);
	json_decref(d->params);
	free(d);
}

static void get_updates(struct evhttp_request *rq, json_t *params, int64_t delay_ms)
{
	json_t *off = json_object_get(params, "offset");
	int64_t timeout = json_integer_value(json_object_get(params, "timeout"));
	int limit = (int)json_integer_value(json_object_get(params, "limit"));

	if (delay_ms > 0) {
		delayed *d = calloc(1, sizeof(*d));
		struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};
		d->rq = rq;
		d->arrived = arrived_ms;
		d->params = json_incref(params);
		event_base_once(S.base, -1, EV_TIMEOUT, on_delayed, d, &tv);
		return;
	}
	if (limit <= 0 || limit > 100)
		limit = 100;
	if (json_is_integer(off) && json_integer_value(off) > 0)
		confirm(json_integer_value(off));
	if (S.poll) {
		/* Telegram ends the older request when a new one arrives */
		struct evhttp_request *old = S.poll;
		json_t *op = poll_params;
		double now_arrived = arrived_ms;
		arrived_ms = poll_arrived;
		S.poll = NULL;
		poll_params = NULL;
		evtimer_del(S.poll_timer);
		evhttp_connection_set_closecb(evhttp_request_get_connection(old), NULL, NULL);
		api_err(old, "getUpdates", op, 409,
			"Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
			0);
		json_decref(op);
		arrived_ms = now_arrived;
	}
	if (S.nq > 0 || S.dup > 0 || timeout <= 0) {
		send_updates(rq, params, limit);
		return;
	}
	S.poll = rq;
	poll_arrived = arrived_ms;
	S.poll_limit = limit;
	poll_params = json_incref(params);
	evhttp_connection_set_closecb(evhttp_request_get_connection(rq), on_poll_closed, rq);
	{
		struct timeval tv = {.tv_sec = timeout, .tv_usec = 0};
		evtimer_add(S.poll_timer, &tv);
	}
}

static void queue_update(json_t *u)
{
	char *s;

	if (!json_object_get(u, "update_id"))
		json_object_set_new(u, "update_id", json_integer(S.next_id));
	if (json_integer_value(json_object_get(u, "update_id")) >= S.next_id)
		S.next_id = json_integer_value(json_object_get(u, "update_id")) + 1;
	s = json_dumps(u, JSON_COMPACT);
	S.q = grow(S.q, &S.capq, S.nq + 1, sizeof(*S.q));
	S.q[S.nq].id = json_integer_value(json_object_get(u, "update_id"));
	S.q[S.nq].json = s;
	S.nq++;
}

/* --- requests --- */

static json_t *parse_multipart(const char *body, size_t len, const char *ctype)
{
	const char *bd = strstr(ctype, "boundary=");
	char delim[256];
	json_t *out = json_object();
	const char *p = body, *end = body + len;

	if (!bd)
		return out;
	snprintf(delim, sizeof(delim), "--%s", bd + 9);
	while ((p = memmem(p, (size_t)(end - p), delim, strlen(delim))) != NULL) {
		const char *hdr = p + strlen(delim), *name, *data, *next;
		char key[64];
		size_t k = 0;
		if (hdr + 2 <= end && hdr[0] == '-' && hdr[1] == '-')
			break;
		name = memmem(hdr, (size_t)(end - hdr), "name=\"", 6);
		data = memmem(hdr, (size_t)(end - hdr), "\r\n\r\n", 4);
		if (!name || !data)
			break;
		name += 6;
		while (name < end && *name != '"' && k + 1 < sizeof(key))
			key[k++] = *name++;
		key[k] = '\0';
		data += 4;
		next = memmem(data, (size_t)(end - data), delim, strlen(delim));
		if (!next)
			break;
		if (strcmp(key, "document") == 0)
			json_object_set_new(out, "document_bytes",
					    json_integer((json_int_t)(next - 2 - data)));
		else
			json_object_set_new(out, key, json_stringn(data, (size_t)(next - 2 - data)));
		p = next;
	}
	return out;
}

static json_t *request_params(struct evhttp_request *rq)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(rq);
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	const char *ctype = evhttp_find_header(evhttp_request_get_input_headers(rq), "Content-Type");
	json_t *p = NULL;

	evbuffer_copyout(in, body, len);
	body[len] = '\0';
	if (ctype && strstr(ctype, "multipart/form-data")) {
		p = parse_multipart(body, len, ctype);
	} else if (len > 0 && (body[0] == '{' || body[0] == '[')) {
		p = json_loads(body, 0, NULL);
	} else {
		struct evkeyvalq q;
		struct evkeyval *kv;
		const char *query = len > 0 ? body : evhttp_uri_get_query(evhttp_request_get_evhttp_uri(rq));
		p = json_object();
		if (query && evhttp_parse_query_str(query, &q) == 0) {
			for (kv = q.tqh_first; kv; kv = kv->next.tqe_next) {
				char *end;
				long long v = strtoll(kv->value, &end, 10);
				json_object_set_new(p, kv->key, *kv->value && !*end ? json_integer(v)
										: json_string(kv->value));
			}
			evhttp_clear_headers(&q);
		}
	}
	free(body);
	return p ? p : json_object();
}

/* NULL when `list` (setMyCommands' "commands", an array or its JSON
 * text) is what Telegram accepts, else the error's description. */
static const char *commands_invalid(const json_t *list)
{
	json_t *parsed = json_is_string(list) ? json_loads(json_string_value(list), 0, NULL) : NULL;
	const json_t *l = parsed ? parsed : list, *c;
	const char *bad = NULL;
	size_t i, j;

	if (!json_is_array(l))
		bad = "Bad Request: parameter \"commands\" is required";
	else if (json_array_size(l) > 100)
		bad = "Bad Request: BOT_COMMANDS_TOO_MUCH";
	json_array_foreach(l, i, c) {
		const char *name = json_string_value(json_object_get(c, "command"));
		const char *desc = json_string_value(json_object_get(c, "description"));
		size_t chars = 0;

		if (bad)
			break;
		if (!name || !*name || strlen(name) > 32 ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
			bad = "Bad Request: BOT_COMMAND_INVALID";
		for (const char *d = desc ? desc : ""; *d; d++)
			chars += ((unsigned char)*d & 0xC0) != 0x80;
		if (!bad && (chars < 1 || chars > 256))
			bad = "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID";
		for (j = 0; !bad && j < i; j++)
			if (strcmp(name, json_string_value(json_object_get(json_array_get(l, j),
									      "command"))) == 0)
				bad = "Bad Request: BOT_COMMAND_DUPLICATE";
	}
	json_decref(parsed);
	return bad;
}

static script *take_script(const char *method)
{
	for (int i = 0; i < S.nscripts; i++)
		if (strcmp(S.scripts[i].method, method) == 0 && S.scripts[i].count > 0) {
			S.scripts[i].count--;
			return &S.scripts[i];
		}
	return NULL;
}

static void bot_api(struct evhttp_request *rq, const char *method)
{
	json_t *p = request_params(rq);
	script *sc = take_script(method);
	int64_t chat = chat_of(p);

	if (sc && sc->malformed) {
		log_req(method, p, 200, "malformed");
		reply_raw(rq, 200, "{\"ok\":true,\"result\":[{\"update_id\":", 0);
		goto done;
	}
	if (sc && sc->status) {
		api_err(rq, method, p, sc->status, sc->description[0] ? sc->description : "Error",
			sc->retry_after);
		goto done;
	}
	if (strcmp(method, "getUpdates") == 0) {
		get_updates(rq, p, sc ? sc->delay_ms : 0);
		goto done;
	}
	if (strcmp(method, "getMe") == 0) {
		api_ok(rq, method, p, json_pack("{s:I,s:b,s:s,s:s}", "id", (json_int_t)777000111,
						 "is_bot", 1, "first_name", "Orchestrator Test",
						 "username", "orch_test_bot"));
	} else if (strcmp(method, "deleteWebhook") == 0) {
		api_ok(rq, method, p, json_true());
	} else if (strcmp(method, "sendMessage") == 0) {
		char *text = NULL, *markup = NULL;
		const char *e = chat ? NULL : "Bad Request: chat not found";
		if (!e)
			e = message_text(p, &text);
		if (!e)
			e = check_markup(p, &markup);
		if (e) {
			free(text);
			api_err(rq, method, p, 400, e, 0);
			goto done;
		}
		S.msgs = grow(S.msgs, &S.capmsgs, S.nmsgs + 1, sizeof(*S.msgs));
		S.msgs[S.nmsgs].chat = chat;
		S.msgs[S.nmsgs].id = ++S.next_msg;
		S.msgs[S.nmsgs].text = text;
		S.msgs[S.nmsgs].markup = markup;
		S.nmsgs++;
		api_ok(rq, method, p, message_json(&S.msgs[S.nmsgs - 1]));
	} else if (strcmp(method, "editMessageText") == 0 ||
		   strcmp(method, "editMessageReplyMarkup") == 0) {
		message *m = find_msg(chat, json_integer_value(json_object_get(p, "message_id")));
		int is_text = strcmp(method, "editMessageText") == 0;
		char *text = NULL, *markup = NULL;
		const char *e = m ? NULL : "Bad Request: message to edit not found";
		if (!e && is_text)
			e = message_text(p, &text);
		if (!e)
			e = check_markup(p, &markup);
		if (!e && (!is_text || strcmp(text, m->text) == 0) &&
		    ((!markup && !m->markup) || (markup && m->markup && strcmp(markup, m->markup) == 0)))
			e = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
		if (e) {
			free(text);
			free(markup);
			api_err(rq, method, p, 400, e, 0);
			goto done;
		}
		if (is_text) {
			free(m->text);
			m->text = text;
		}
		free(m->markup);
		m->markup = markup;
		api_ok(rq, method, p, message_json(m));
	} else if (strcmp(method, "answerCallbackQuery") == 0) {
		const char *id = json_string_value(json_object_get(p, "callback_query_id"));
		int found = -1;
		for (int i = 0; id && i < S.ncb; i++)
			if (strcmp(S.cb_ids[i], id) == 0)
				found = i;
		if (found < 0 || S.cb_answered[found]) {
			api_err(rq, method, p, 400,
				"Bad Request: query is too old and response timeout expired or query ID is invalid",
				0);
			goto done;
		}
		S.cb_answered[found] = 1;
		api_ok(rq, method, p, json_true());
	} else if (strcmp(method, "sendMessageDraft") == 0) {
		json_t *did = json_object_get(p, "draft_id");
		char *text = NULL;
		const char *e = !chat ? "Bad Request: chat not found"
			      : chat < 0 ? "Bad Request: TEXTDRAFT_PEER_INVALID"
			      : !json_is_integer(did) || json_integer_value(did) == 0
				      ? "Bad Request: draft_id must be non-zero"
				      : NULL;
		if (!e)
			e = message_text(p, &text);
		if (e) {
			api_err(rq, method, p, 400, e, 0);
			goto done;
		}
		json_array_append_new(S.drafts,
				      json_pack("{s:I,s:O,s:s,s:f}", "chat", (json_int_t)chat,
						"draft_id", did, "text", text, "t_ms", now_ms()));
		free(text);
		api_ok(rq, method, p, json_true());
	} else if (strcmp(method, "setMyCommands") == 0) {
		const json_t *list = json_object_get(p, "commands");
		const char *bad = commands_invalid(list);

		if (bad) {
			api_err(rq, method, p, 400, bad, 0);
			goto done;
		}
		json_decref(S.commands);
		S.commands = json_is_string(list) ? json_loads(json_string_value(list), 0, NULL)
						  : json_deep_copy(list);
		api_ok(rq, method, p, json_true());
	} else if (strcmp(method, "getMyCommands") == 0) {
		api_ok(rq, method, p, S.commands ? json_incref(S.commands) : json_array());
	} else if (strcmp(method, "sendChatAction") == 0) {
		if (!chat)
			api_err(rq, method, p, 400, "Bad Request: chat not found", 0);
		else
			api_ok(rq, method, p, json_true());
	} else if (strcmp(method, "sendDocument") == 0) {
		if (!chat || !json_object_get(p, "document_bytes")) {
			api_err(rq, method, p, 400, "Bad Request: there is no document in the request", 0);
			goto done;
		}
		S.msgs = grow(S.msgs, &S.capmsgs, S.nmsgs + 1, sizeof(*S.msgs));
		S.msgs[S.nmsgs].chat = chat;
		S.msgs[S.nmsgs].id = ++S.next_msg;
		S.msgs[S.nmsgs].text = strdup("");
		S.msgs[S.nmsgs].markup = NULL;
		S.nmsgs++;
		api_ok(rq, method, p, message_json(&S.msgs[S.nmsgs - 1]));
	} else {
		api_err(rq, method, p, 404, "Not Found", 0);
	}
done:
	json_decref(p);
}

/* The text of a verbatim entry: `raw` as it is, or the bytes `hex` spells
 * (anything, also bytes that are not UTF-8, as the real server writes
 * client-sent strings), with each "@ID@" replaced by the update id. */
static char *raw_entry(const char *raw, const char *hex, int64_t id)
{
	size_t n = raw ? strlen(raw) : strlen(hex) / 2, k = 0;
	char *bytes = malloc(n + 1), *out;
	char idtext[24];
	size_t idlen, cap;

	if (!bytes)
		exit(1);
	if (raw) {
		memcpy(bytes, raw, n);
	} else {
		for (size_t i = 0; i < n; i++) {
			unsigned int v = 0;
			sscanf(hex + 2 * i, "%2x", &v);
			bytes[i] = (char)v;
		}
	}
	bytes[n] = '\0';
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	idlen = strlen(idtext);
	cap = n * 2 + 32;
	out = malloc(cap);
	if (!out)
		exit(1);
	for (size_t i = 0; i < n;) {
		if (i + 4 <= n && memcmp(bytes + i, "@ID@", 4) == 0) {
			memcpy(out + k, idtext, idlen);
			k += idlen;
			i += 4;
		} else {
			out[k++] = bytes[i++];
		}
	}
	out[k] = '\0';
	free(bytes);
	return out;
}

static void control(struct evhttp_request *rq, const char *what)
{
	json_t *p = request_params(rq);
	json_t *body = NULL;

	if (strcmp(what, "updates") == 0) {
		json_t *ids = json_array(), *u;
		size_t i;
		json_array_foreach(p, i, u) {
			const char *raw = json_string_value(json_object_get(u, "raw"));
			const char *hex = json_string_value(json_object_get(u, "raw_hex"));
			if (raw || hex) {
				S.q = grow(S.q, &S.capq, S.nq + 1, sizeof(*S.q));
				S.q[S.nq].id = S.next_id++;
				S.q[S.nq].json = raw_entry(raw, hex, S.q[S.nq].id);
				json_array_append_new(ids, json_integer(S.q[S.nq].id));
				S.nq++;
				continue;
			}
			queue_update(u);
			json_array_append_new(ids, json_integer(S.q[S.nq - 1].id));
		}
		body = json_pack("{s:o}", "ids", ids);
		poll_finish();
	} else if (strcmp(what, "callback") == 0) {
		char id[32];
		json_t *u;
		snprintf(id, sizeof(id), "cb%lld", (long long)++S.next_cb);
		S.cb_ids = grow(S.cb_ids, &S.capcb, S.ncb + 1, sizeof(*S.cb_ids));
		S.cb_answered = realloc(S.cb_answered, sizeof(int) * (size_t)S.capcb);
		S.cb_ids[S.ncb] = strdup(id);
		S.cb_answered[S.ncb] = 0;
		S.ncb++;
		u = json_pack("{s:{s:s,s:O,s:s,s:{s:I,s:I,s:{s:I,s:s}}}}", "callback_query", "id", id,
			      "from", json_object_get(p, "from"), "chat_instance", "ci",
			      "message", "message_id",
			      (json_int_t)json_integer_value(json_object_get(p, "message_id")), "date",
			      (json_int_t)time(NULL), "chat", "id",
			      (json_int_t)json_integer_value(json_object_get(p, "chat_id")), "type",
			      "private");
		if (json_object_get(p, "data"))
			json_object_set(json_object_get(u, "callback_query"), "data",
					json_object_get(p, "data"));
		queue_update(u);
		body = json_pack("{s:I,s:s}", "update_id", (json_int_t)S.q[S.nq - 1].id,
				 "callback_id", id);
		json_decref(u);
		poll_finish();
	} else if (strcmp(what, "script") == 0) {
		script *s = &S.scripts[S.nscripts < 64 ? S.nscripts++ : 63];
		memset(s, 0, sizeof(*s));
		snprintf(s->method, sizeof(s->method), "%s",
			 json_string_value(json_object_get(p, "method")) ? json_string_value(json_object_get(p, "method")) : "");
		s->status = (int)json_integer_value(json_object_get(p, "status"));
		s->count = json_object_get(p, "count") ? (int)json_integer_value(json_object_get(p, "count")) : 1;
		s->retry_after = (int)json_integer_value(json_object_get(p, "retry_after"));
		s->delay_ms = json_integer_value(json_object_get(p, "delay_ms"));
		s->malformed = json_is_true(json_object_get(p, "malformed"));
		snprintf(s->description, sizeof(s->description), "%s",
			 json_string_value(json_object_get(p, "description")) ? json_string_value(json_object_get(p, "description")) : "");
		body = json_pack("{s:b}", "ok", 1);
	} else if (strcmp(what, "duplicate") == 0) {
		S.dup = (int)json_integer_value(json_object_get(p, "count"));
		body = json_pack("{s:b}", "ok", 1);
	} else if (strcmp(what, "requests") == 0) {
		body = json_pack("{s:O}", "requests", S.log);
	} else if (strcmp(what, "state") == 0) {
		body = json_pack("{s:I,s:i,s:b,s:i,s:I}", "confirmed", (json_int_t)S.confirmed, "queued",
				 S.nq, "polling", S.poll != NULL, "messages", S.nmsgs, "requests",
				 (json_int_t)S.seq);
	} else if (strcmp(what, "messages") == 0) {
		json_t *a = json_array();
		for (int i = 0; i < S.nmsgs; i++) {
			json_t *m = message_json(&S.msgs[i]);
			if (S.msgs[i].markup)
				json_object_set_new(m, "reply_markup", json_loads(S.msgs[i].markup, 0, NULL));
			json_array_append_new(a, m);
		}
		body = json_pack("{s:o}", "messages", a);
	} else if (strcmp(what, "drafts") == 0) {
		body = json_pack("{s:O}", "drafts", S.drafts);
	} else if (strcmp(what, "quit") == 0) {
		body = json_pack("{s:b}", "ok", 1);
		event_base_loopexit(S.base, NULL);
	} else {
		reply_raw(rq, 404, "{\"error\":\"no such control\"}", 0);
		json_decref(p);
		return;
	}
	reply_json(rq, 200, body);
	json_decref(p);
}

static void on_request(struct evhttp_request *rq, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(rq));
	char tok[300];

	(void)arg;
	arrived_ms = now_ms();
	{
		/* answer at once, as a real API server does: no Nagle delay */
		int one = 1;
		struct bufferevent *bev =
			evhttp_connection_get_bufferevent(evhttp_request_get_connection(rq));
		if (bev)
			setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (!path) {
		reply_raw(rq, 400, "{}", 0);
		return;
	}
	if (strncmp(path, "/control/", 9) == 0) {
		control(rq, path + 9);
		return;
	}
	if (strncmp(path, "/bot", 4) == 0) {
		const char *slash = strchr(path + 4, '/');
		size_t n = slash ? (size_t)(slash - path - 4) : 0;
		if (!slash || n >= sizeof(tok)) {
			reply_raw(rq, 404, "{\"ok\":false,\"error_code\":404,\"description\":\"Not Found\"}", 0);
			return;
		}
		memcpy(tok, path + 4, n);
		tok[n] = '\0';
		if (strcmp(tok, S.token) != 0) {
			json_t *p = request_params(rq);
			api_err(rq, slash + 1, p, 401, "Unauthorized", 0);
			json_decref(p);
			return;
		}
		bot_api(rq, slash + 1);
		return;
	}
	reply_raw(rq, 404, "{\"ok\":false,\"error_code\":404,\"description\":\"Not Found\"}", 0);
}

int main(int argc, char **argv)
{
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	int port = 0;
	const char *host = "127.0.0.1";

	snprintf(S.token, sizeof(S.token), "123456:TEST-token");
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--port") == 0)
			port = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--token") == 0)
			snprintf(S.token, sizeof(S.token), "%s", argv[++i]);
		else if (strcmp(argv[i], "--host") == 0)
			host = argv[++i];
	}
	signal(SIGPIPE, SIG_IGN);
	clock_gettime(CLOCK_MONOTONIC, &S.t0);
	S.next_id = 1000;
	S.log = json_array();
	S.drafts = json_array();
	S.base = event_base_new();
	S.poll_timer = evtimer_new(S.base, on_poll_timeout, NULL);
	http = evhttp_new(S.base);
	evhttp_set_max_body_size(http, 64 << 20);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(http, on_request, NULL);
	sock = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
	if (!sock) {
		fprintf(stderr, "fake_telegram: cannot listen on %s:%d\n", host, port);
		return 1;
	}
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len);
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	printf("PORT %d\n", port);
	fflush(stdout);
	event_base_dispatch(S.base);
	if (S.poll) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(S.poll), NULL, NULL);
		S.poll = NULL;
	}
	json_decref(poll_params);
	evtimer_del(S.poll_timer);
	event_free(S.poll_timer);
	evhttp_free(http);
	event_base_free(S.base);
	for (int i = 0; i < S.nq; i++)
		free(S.q[i].json);
	for (int i = 0; i < S.nhist; i++)
		free(S.hist[i].json);
	for (int i = 0; i < S.nmsgs; i++) {
		free(S.msgs[i].text);
		free(S.msgs[i].markup);
	}
	for (int i = 0; i < S.ncb; i++)
		free(S.cb_ids[i]);
	free(S.q);
	free(S.hist);
	free(S.msgs);
	free(S.cb_ids);
	free(S.cb_answered);
	json_decref(S.log);
	return 0;
}
