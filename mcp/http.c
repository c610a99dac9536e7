/* mcp/http — the streamable HTTP transport's sessions and streams. See
 * http.h. Lock order: the MCP server's lock (its watcher sends under it),
 * then h->mu; a session's own lock is never held with h->mu. */
#include "mcp/http.h"
#include "mcp/mcp_int.h"

#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define IDLE_MS (3600 * 1000LL)  /* a session unused this long, with no stream, ends */
#define KEEPALIVE_MS 15000

typedef struct hsess {
	mcp_http *h;
	char id[40];
	int64_t token;
	mcp_session *ss;
	pthread_mutex_t mu;      /* serialises the session's requests */
	int64_t last_ms;         /* under h->mu */
	void *stream;            /* under h->mu */
	mcp_stream_write_fn write;
	mcp_stream_end_fn end;
	int refs, dead;          /* under h->mu */
} hsess;

struct mcp_http {
	mcp_server *s;
	char origins[1024];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	hsess *sess[MCP_HTTP_MAX_SESSIONS];
	int n, stop, stopped;  /* stopped: no stream is attached any more */
	pthread_t keeper;
};

/* Ends a session's stream. Under h->mu. */
static void end_stream(hsess *hs)
{
	if (hs->stream && hs->end)
		hs->end(hs->stream);
	hs->stream = NULL;
	hs->write = NULL;
	hs->end = NULL;
}

/* The session's notifications, as server-sent events on its stream (none
 * open: dropped; the client reads the state again when it reconnects). */
static int sess_send(const char *msg, size_t len, void *udata)
{
	hsess *hs = udata;
	mcp_http *h = hs->h;
	buf ev;
	int rc = 0;

	buf_init(&ev, len + 64);
	if (buf_puts(&ev, "event: message\ndata: ") < 0 || buf_append(&ev, msg, len) < 0 ||
	    buf_puts(&ev, "\n\n") < 0) {
		buf_free(&ev);
		return err_set(ERR_NOMEM, "out of memory");
	}
	pthread_mutex_lock(&h->mu);
	if (!hs->stream) {
		rc = err_set(ERR_IO, "no stream open");
	} else if (hs->write(ev.data, ev.len, hs->stream) < 0) {
		end_stream(hs);
		rc = err_set(ERR_IO, "the stream's peer went");
	}
	pthread_mutex_unlock(&h->mu);
	buf_free(&ev);
	return rc;
}

static void sess_free(hsess *hs)
{
	mcp_session_free(hs->ss);
	pthread_mutex_destroy(&hs->mu);
	free(hs);
}

/* Drops a reference taken by find(); frees a session ended meanwhile. */
static void put(mcp_http *h, hsess *hs)
{
	int gone;

	pthread_mutex_lock(&h->mu);
	gone = --hs->refs == 0 && hs->dead;
	pthread_mutex_unlock(&h->mu);
	if (gone)
		sess_free(hs);
}

/* Ends session `hs` (its stream too); it is freed when its last request
 * is done. Under h->mu; returns 1 when the caller frees it (no reference). */
static int kill_locked(mcp_http *h, hsess *hs)
{
	for (int i = 0; i < h->n; i++)
		if (h->sess[i] == hs) {
			h->sess[i] = h->sess[--h->n];
			break;
		}
	end_stream(hs);
	hs->dead = 1;
	return hs->refs == 0;
}

/* The live session `id` of `token`, with a reference (put() it). */
static hsess *find(mcp_http *h, const char *id, int64_t token)
{
	hsess *hs = NULL;

	pthread_mutex_lock(&h->mu);
	for (int i = 0; id && i < h->n; i++)
		if (strcmp(h->sess[i]->id, id) == 0 && h->sess[i]->token == token) {
			hs = h->sess[i];
			hs->refs++;
			hs->last_ms = util_mono_ms();
			break;
		}
	pthread_mutex_unlock(&h->mu);
	return hs;
}

static void *keeper_main(void *arg)
{
	mcp_http *h = arg;

	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		struct timespec ts;
		hsess *expired[MCP_HTTP_MAX_SESSIONS];
		int nexp = 0;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += KEEPALIVE_MS / 1000;
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		if (h->stop)
			break;
		for (int i = 0; i < h->n; i++) {
			hsess *hs = h->sess[i];
			if (hs->stream && hs->write(": keepalive\n\n", 13, hs->stream) < 0)
				end_stream(hs);
			if (!hs->stream && hs->refs == 0 && util_mono_ms() - hs->last_ms > IDLE_MS)
				expired[nexp++] = hs;
		}
		for (int i = 0; i < nexp; i++) {
			log_info("mcp", "session %.8s… of %s ended: unused for an hour", expired[i]->id,
				 expired[i]->ss->who.name);
			kill_locked(h, expired[i]);
		}
		pthread_mutex_unlock(&h->mu);
		for (int i = 0; i < nexp; i++)
			sess_free(expired[i]);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int mcp_http_new(mcp_http **out, mcp_server *s, const char *allowed_origins)
{
	mcp_http *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return err_set(ERR_NOMEM, "out of memory");
	h->s = s;
	snprintf(h->origins, sizeof(h->origins), "%s", allowed_origins ? allowed_origins : "");
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (pthread_create(&h->keeper, NULL, keeper_main, h) != 0) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return err_set(ERR_IO, "cannot start the MCP transport's thread");
	}
	*out = h;
	return 0;
}

void mcp_http_free(mcp_http *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->keeper, NULL);
	for (;;) {
		hsess *hs;
		int mine;
		pthread_mutex_lock(&h->mu);
		hs = h->n > 0 ? h->sess[0] : NULL;
		mine = hs ? kill_locked(h, hs) : 0;
		pthread_mutex_unlock(&h->mu);
		if (!hs)
			break;
		if (mine)
			sess_free(hs);
	}
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

void mcp_http_stop(mcp_http *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopped = 1;
	for (int i = 0; i < h->n; i++)
		end_stream(h->sess[i]);
	pthread_mutex_unlock(&h->mu);
}

int mcp_http_sessions(mcp_http *h)
{
	int n;

	pthread_mutex_lock(&h->mu);
	n = h->n;
	pthread_mutex_unlock(&h->mu);
	return n;
}

/* --- requests --- */

/* An answer whose body is a JSON-RPC error (or plain text when code 0). */
static int answer(mcp_http_resp *out, int status, int code, const char *msg)
{
	out->status = status;
	if (code) {
		out->body = mcp_error_message(NULL, code, msg);
		out->content_type = "application/json";
	} else {
		size_t n = strlen(msg);
		out->body = malloc(n + 2);
		if (out->body) {
			memcpy(out->body, msg, n);
			memcpy(out->body + n, "\n", 2);
		}
		out->content_type = "text/plain; charset=utf-8";
	}
	return out->body ? 0 : err_set(ERR_NOMEM, "out of memory");
}

/* 1 when a browser's Origin may call: absent, the server's own, or listed. */
static int origin_ok(const mcp_http *h, const char *origin, const char *host)
{
	char own[300];
	const char *p = h->origins;
	size_t n = origin ? strlen(origin) : 0;

	if (!origin)
		return 1;
	if (host) {
		snprintf(own, sizeof(own), "http://%s", host);
		if (strcasecmp(origin, own) == 0)
			return 1;
		snprintf(own, sizeof(own), "https://%s", host);
		if (strcasecmp(origin, own) == 0)
			return 1;
	}
	while (*p) {
		size_t k = strcspn(p, " ,");
		if (k == n && k > 0 && strncasecmp(p, origin, n) == 0)
			return 1;
		p += k;
		p += strspn(p, " ,");
	}
	return 0;
}

/* 1 when the body is an initialize request (a lone object). */
static int is_initialize(const char *body, size_t len)
{
	json_t *m = jx_loadb_lenient(body, len, 0, NULL, NULL);
	int yes = json_is_object(m) && strcmp(jx_str(m, "method"), "initialize") == 0;

	json_decref(m);
	return yes;
}

static int start_session(mcp_http *h, const mcp_http_req *rq, mcp_http_resp *out)
{
	hsess *hs = calloc(1, sizeof(*hs));
	char *reply = NULL;
	int rc;

	if (!hs)
		return err_set(ERR_NOMEM, "out of memory");
	hs->h = h;
	hs->token = rq->token;
	util_rand_hex(hs->id, 16);
	pthread_mutex_init(&hs->mu, NULL);
	rc = mcp_session_new(&hs->ss, h->s, rq->who, sess_send, hs);
	if (rc == 0)
		rc = mcp_session_handle(hs->ss, rq->body, rq->len, &reply);
	if (rc < 0 || !mcp_session_version(hs->ss)[0]) {
		/* refused (bad params): answered, no session kept */
		sess_free(hs);
		if (rc < 0)
			return rc;
		out->status = 200;
		out->body = reply;
		out->content_type = "application/json";
		return 0;
	}
	pthread_mutex_lock(&h->mu);
	if (h->n == MCP_HTTP_MAX_SESSIONS) {
		pthread_mutex_unlock(&h->mu);
		sess_free(hs);
		free(reply);
		return answer(out, 503, MCP_INTERNAL_ERROR, "too many MCP sessions at once: end one "
							   "(DELETE) or try again later");
	}
	hs->last_ms = util_mono_ms();
	h->sess[h->n++] = hs;
	pthread_mutex_unlock(&h->mu);
	out->status = 200;
	snprintf(out->session, sizeof(out->session), "%s", hs->id);
	out->body = reply;
	out->content_type = "application/json";
	return 0;
}

static int post(mcp_http *h, const mcp_http_req *rq, mcp_http_resp *out)
{
	hsess *hs;
	char *reply = NULL;
	int rc;

	if (rq->accept && *rq->accept && !strstr(rq->accept, "application/json") &&
	    !strstr(rq->accept, "*/*"))
		return answer(out, 406, MCP_INVALID_REQUEST, "Not Acceptable: the client must accept "
							     "application/json");
	if (is_initialize(rq->body, rq->len))
		return start_session(h, rq, out);
	if (!rq->session)
		return answer(out, 400, MCP_INVALID_REQUEST, "Bad Request: the Mcp-Session-Id header "
							     "is required (initialize first)");
	hs = find(h, rq->session, rq->token);
	if (!hs)
		return answer(out, 404, MCP_INVALID_REQUEST, "Session not found: initialize a new "
							     "session");
	if (rq->version && strcmp(rq->version, mcp_session_version(hs->ss)) != 0) {
		put(h, hs);
		return answer(out, 400, MCP_INVALID_REQUEST, "Bad Request: MCP-Protocol-Version "
							     "differs from the session's");
	}
	pthread_mutex_lock(&hs->mu);
	rc = mcp_session_handle(hs->ss, rq->body, rq->len, &reply);
	pthread_mutex_unlock(&hs->mu);
	put(h, hs);
	if (rc < 0)
		return rc;
	out->status = reply ? 200 : 202;
	out->body = reply;
	out->content_type = reply ? "application/json" : NULL;
	return 0;
}

int mcp_http_handle(mcp_http *h, const mcp_http_req *rq, mcp_http_resp *out)
{
	memset(out, 0, sizeof(*out));
	if (!origin_ok(h, rq->origin, rq->host))
		return answer(out, 403, 0, "Forbidden: this Origin may not call the MCP endpoint "
					   "(ORCH_MCP_ORIGINS lists the origins allowed)");
	if (rq->version && !mcp_version_supported(rq->version))
		return answer(out, 400, MCP_INVALID_REQUEST, "Bad Request: unsupported "
							     "MCP-Protocol-Version (this server speaks "
							     MCP_LATEST_VERSION ", 2025-06-18 and "
							     "2025-03-26)");
	if (strcmp(rq->method, "POST") == 0)
		return post(h, rq, out);
	if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "DELETE") == 0) {
		hsess *hs;
		if (!rq->session)
			return answer(out, 400, 0, "Bad Request: the Mcp-Session-Id header is "
						   "required");
		if (strcmp(rq->method, "GET") == 0 &&
		    (!rq->accept || !strstr(rq->accept, "text/event-stream")))
			return answer(out, 406, 0, "Not Acceptable: a GET opens an event stream "
						   "(Accept: text/event-stream)");
		hs = find(h, rq->session, rq->token);
		if (!hs)
			return answer(out, 404, 0, "Session not found");
		if (strcmp(rq->method, "GET") == 0) {
			put(h, hs);
			out->status = 200;
			out->open_stream = 1;
			return 0;
		}
		pthread_mutex_lock(&h->mu);
		hs->refs--;
		if (kill_locked(h, hs)) {
			pthread_mutex_unlock(&h->mu);
			sess_free(hs);
		} else {
			pthread_mutex_unlock(&h->mu);
		}
		log_info("mcp", "session %.8s… of %s ended by the client", rq->session,
			 rq->who->name);
		out->status = 200;
		return 0;
	}
	return answer(out, 405, 0, "Method Not Allowed: POST, GET or DELETE");
}

int mcp_http_attach(mcp_http *h, const char *session, int64_t token, mcp_stream_write_fn write,
		    mcp_stream_end_fn end, void *stream)
{
	hsess *hs = NULL;

	pthread_mutex_lock(&h->mu);
	for (int i = 0; i < h->n && !h->stopped; i++)
		if (strcmp(h->sess[i]->id, session) == 0 && h->sess[i]->token == token)
			hs = h->sess[i];
	if (hs) {
		end_stream(hs); /* one stream per session: the new one wins */
		hs->stream = stream;
		hs->write = write;
		hs->end = end;
		hs->last_ms = util_mono_ms();
	}
	pthread_mutex_unlock(&h->mu);
	if (!hs) {
		end(stream);
		return err_set(ERR_NOTFOUND, "the session ended");
	}
	return 0;
}
