/* web — the HTTP listener and its route table. See web.h. */
#include "web/web.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ROUTES 64
#define IMPLEMENTED_FLAGS (WEB_ROUTE_AUTH | WEB_ROUTE_BODY | WEB_ROUTE_STREAM | WEB_ROUTE_THREAD)
#define WORKERS 4
#define BODY_MAX (1 << 20)

typedef struct route {
	char method[8];
	char path[128];
	int prefix;
	int flags;
	web_handler h;
	void *udata;
} route;

struct web_server {
	char host[128];
	int port;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	struct event *stop_ev; /* activated by web_server_free: the loop ends */
	pthread_t thread;
	int running;
	route routes[MAX_ROUTES];
	int nroutes;
	web_auth_fn auth;
	void *auth_udata;
	/* the worker threads of WEB_ROUTE_THREAD routes and their queue */
	pthread_t workers[WORKERS];
	int nworkers;
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	web_request *qhead, *qtail;
	int stopping;
};

struct web_request {
	web_server *s;
	struct evhttp_request *req;
	int gone;                    /* the peer went before a threaded route's reply */
	const route *rt;
	char method[8];
	char path[1024];
	char peer[64];
	struct evkeyvalq query;
	struct evkeyvalq in;         /* the request's headers (a copy for threaded routes) */
	struct evkeyvalq out;        /* headers added to the reply */
	buf body;
	int replied;
	int threaded;
	/* a threaded route's reply, sent by the listener */
	int status;
	char ctype[96];
	buf reply;
	void *user;
	void (*user_free)(void *);
	web_request *next;           /* the worker queue */
};

struct web_stream {
	web_server *s;
	struct evhttp_request *req;
	pthread_mutex_t mu;
	int refs;                    /* the caller's and the listener's */
	int closed;                  /* the peer went (or the server stops) */
	int ending;                  /* the caller released it: end the response */
	int ended;                   /* the flush took the caller's reference */
	buf pending;                 /* written, not yet handed to libevent */
	struct event *flush;         /* moves `pending` to the peer on the listener's thread */
};

int web_server_new(web_server **out, const char *addr)
{
	web_server *s;
	const char *colon;
	char *end;
	long port;

	*out = NULL;
	if (!addr || !*addr)
		return err_set(ERR_INVALID, "no listen address (ORCH_HTTP_ADDR wants HOST:PORT, e.g. "
					    "127.0.0.1:9464)");
	colon = strrchr(addr, ':');
	if (!colon || colon == addr || colon[1] == 0)
		return err_set(ERR_INVALID, "listen address '%s' is not HOST:PORT (e.g. 127.0.0.1:9464 "
					    "or 0.0.0.0:9464)", addr);
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return err_set(ERR_INVALID, "listen address '%s': the port must be 0..65535", addr);
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(ERR_NOMEM, "out of memory");
	if (addr[0] == '[' && colon > addr + 1 && colon[-1] == ']')
		snprintf(s->host, sizeof(s->host), "%.*s", (int)(colon - addr - 2), addr + 1);
	else
		snprintf(s->host, sizeof(s->host), "%.*s", (int)(colon - addr), addr);
	s->port = (int)port;
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcv, NULL);
	*out = s;
	return 0;
}

int web_route(web_server *s, const char *method, const char *path, int flags, web_handler h,
	      void *udata)
{
	route *r;
	size_t n = path ? strlen(path) : 0;

	if (s->running)
		return err_set(ERR_INVALID, "routes are added before the listener starts");
	if (!method || strlen(method) >= sizeof(r->method) || n == 0 || path[0] != '/' ||
	    n >= sizeof(r->path) || !h)
		return err_set(ERR_INVALID, "bad route %s %s", method ? method : "", path ? path : "");
	if (flags & ~IMPLEMENTED_FLAGS)
		return err_set(ERR_INVALID, "route %s %s asks for what this listener does not do yet "
					    "(flags %d)", method, path, flags);
	if ((flags & WEB_ROUTE_STREAM) && (flags & WEB_ROUTE_THREAD))
		return err_set(ERR_INVALID, "route %s %s: a streamed response starts on the "
					    "listener's thread, not a worker's", method, path);
	for (int i = 0; i < s->nroutes; i++)
		if (strcmp(s->routes[i].method, method) == 0 && strcmp(s->routes[i].path, path) == 0)
			return err_set(ERR_CONFLICT, "route %s %s is registered twice", method, path);
	if (s->nroutes == MAX_ROUTES)
		return err_set(ERR_TOOBIG, "too many routes (%d)", MAX_ROUTES);
	r = &s->routes[s->nroutes++];
	snprintf(r->method, sizeof(r->method), "%s", method);
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->prefix = path[n - 1] == '*';
	if (r->prefix)
		r->path[n - 1] = 0;
	r->flags = flags;
	r->h = h;
	r->udata = udata;
	return 0;
}

void web_server_set_auth(web_server *s, web_auth_fn fn, void *udata)
{
	s->auth = fn;
	s->auth_udata = udata;
}

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	default:
		return "OTHER";
	}
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
	case 503: return "Service Unavailable";
	default: return status >= 500 ? "Error" : "Status";
	}
}

static void plain(struct evhttp_request *req, int status, const char *text)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; charset=utf-8");
	if (b)
		evbuffer_add(b, text, strlen(text));
	evhttp_send_reply(req, status, reason(status), b);
	if (b)
		evbuffer_free(b);
}

static void copy_headers(struct evkeyvalq *dst, const struct evkeyvalq *src)
{
	for (struct evkeyval *kv = src->tqh_first; kv; kv = kv->next.tqe_next)
		evhttp_add_header(dst, kv->key, kv->value);
}

static void request_free(web_request *rq)
{
	if (!rq)
		return;
	if (rq->user_free)
		rq->user_free(rq->user);
	evhttp_clear_headers(&rq->query);
	evhttp_clear_headers(&rq->in);
	evhttp_clear_headers(&rq->out);
	buf_free(&rq->body);
	buf_free(&rq->reply);
	free(rq);
}

/* Sends a threaded request's reply on the listener's thread. */
static void send_buffered(web_request *rq)
{
	struct evbuffer *b;

	if (rq->gone) {
		/* libevent kept the request for us, without its connection: ours to free */
		evhttp_request_free(rq->req);
		return;
	}
	evhttp_connection_set_closecb(evhttp_request_get_connection(rq->req), NULL, NULL);
	if (!rq->replied) {
		plain(rq->req, 500, "the handler gave no answer\n");
		return;
	}
	copy_headers(evhttp_request_get_output_headers(rq->req), &rq->out);
	evhttp_add_header(evhttp_request_get_output_headers(rq->req), "Content-Type", rq->ctype);
	if (!evhttp_find_header(&rq->out, "Cache-Control"))
		evhttp_add_header(evhttp_request_get_output_headers(rq->req), "Cache-Control",
				  "no-store");
	b = evbuffer_new();
	if (b)
		evbuffer_add(b, rq->reply.data ? rq->reply.data : "", rq->reply.len);
	evhttp_send_reply(rq->req, rq->status, reason(rq->status), b);
	if (b)
		evbuffer_free(b);
}

static void deliver(evutil_socket_t fd, short what, void *arg)
{
	web_request *rq = arg;

	(void)fd;
	(void)what;
	send_buffered(rq);
	request_free(rq);
}

/* The peer of a threaded request went before its reply. */
static void on_gone(struct evhttp_connection *conn, void *arg)
{
	web_request *rq = arg;

	(void)conn;
	rq->gone = 1;
}

/* Runs the auth hook, then the handler. */
static void run_handler(web_request *rq)
{
	const route *r = rq->rt;

	if ((r->flags & WEB_ROUTE_AUTH) && rq->s->auth && rq->s->auth(rq, rq->s->auth_udata) < 0) {
		if (!rq->replied)
			web_reply(rq, 401, "text/plain; charset=utf-8", "log in first\n", 13);
		return;
	}
	if (r->h(rq, r->udata) < 0 && !rq->replied) {
		char msg[600];
		int n = snprintf(msg, sizeof(msg), "%s\n", err_last());
		web_reply(rq, 500, "text/plain; charset=utf-8", msg,
			  n > 0 && (size_t)n < sizeof(msg) ? (size_t)n : strlen(msg));
	}
}

static void *worker_main(void *arg)
{
	web_server *s = arg;

	for (;;) {
		web_request *rq;

		pthread_mutex_lock(&s->qmu);
		while (!s->qhead && !s->stopping)
			pthread_cond_wait(&s->qcv, &s->qmu);
		if (!s->qhead) {
			pthread_mutex_unlock(&s->qmu);
			return NULL;
		}
		rq = s->qhead;
		s->qhead = rq->next;
		if (!s->qhead)
			s->qtail = NULL;
		pthread_mutex_unlock(&s->qmu);
		run_handler(rq);
		err_clear();
		if (event_base_once(s->base, -1, EV_TIMEOUT, deliver, rq, NULL) < 0)
			request_free(rq); /* the loop is gone: nobody to answer */
	}
}

static const route *find_route(web_server *s, const char *path, const char *method,
			       int *path_known)
{
	*path_known = 0;
	for (int i = 0; i < s->nroutes; i++) {
		const route *r = &s->routes[i];
		int match = r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0
				      : strcmp(path, r->path) == 0;
		if (!match)
			continue;
		*path_known = 1;
		if (strcmp(r->method, method) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0))
			return r;
	}
	return NULL;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
	web_server *s = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	const char *method = method_name(evhttp_request_get_command(req));
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	const route *hit;
	int path_known;
	web_request *rq;

	if (!path || !*path)
		path = "/";
	hit = find_route(s, path, method, &path_known);
	if (!hit) {
		plain(req, path_known ? 405 : 404, path_known ? "method not allowed\n" : "not found\n");
		return;
	}
	rq = calloc(1, sizeof(*rq));
	if (!rq) {
		plain(req, 503, "out of memory\n");
		return;
	}
	rq->s = s;
	rq->req = req;
	rq->rt = hit;
	rq->status = 200;
	snprintf(rq->method, sizeof(rq->method), "%s", method);
	{ /* the path as the handler reads it: percent-decoded ("tg%3A1%3A2" is tg:1:2) */
		char *dec = evhttp_uridecode(path, 0, NULL);
		snprintf(rq->path, sizeof(rq->path), "%s", dec ? dec : path);
		free(dec);
	}
	TAILQ_INIT(&rq->query);
	TAILQ_INIT(&rq->in);
	TAILQ_INIT(&rq->out);
	buf_init(&rq->body, BODY_MAX);
	buf_init(&rq->reply, 0);
	if (query)
		evhttp_parse_query_str(query, &rq->query);
	if (conn) {
		char *host = NULL;
		ev_uint16_t port = 0;
		evhttp_connection_get_peer(conn, &host, &port);
		snprintf(rq->peer, sizeof(rq->peer), "%s", host ? host : "");
	}
	if (hit->flags & WEB_ROUTE_BODY) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(in);
		if (n > 0 && buf_append(&rq->body, (const char *)evbuffer_pullup(in, -1), n) < 0) {
			plain(req, 413, "the request body is too large\n");
			request_free(rq);
			return;
		}
	}
	if (!(hit->flags & WEB_ROUTE_THREAD)) {
		run_handler(rq);
		if (!rq->replied)
			plain(req, 500, "the handler gave no answer\n");
		request_free(rq);
		return;
	}
	/* a worker runs it; the listener sends its reply */
	rq->threaded = 1;
	copy_headers(&rq->in, evhttp_request_get_input_headers(req));
	if (conn)
		evhttp_connection_set_closecb(conn, on_gone, rq);
	pthread_mutex_lock(&s->qmu);
	if (s->qtail)
		s->qtail->next = rq;
	else
		s->qhead = rq;
	s->qtail = rq;
	pthread_cond_signal(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	web_server *s = arg;

	(void)fd;
	(void)what;
	/* after the callbacks already active (replies, stream ends) have run */
	event_base_loopexit(s->base, NULL);
}

static void *loop(void *arg)
{
	web_server *s = arg;

	event_base_dispatch(s->base);
	return NULL;
}

int web_server_start(web_server *s)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct sockaddr_storage ss;
	ev_socklen_t len = sizeof(ss);

	pthread_once(&once, (void (*)(void))evthread_use_pthreads);
	s->base = event_base_new();
	s->http = s->base ? evhttp_new(s->base) : NULL;
	s->stop_ev = s->base ? event_new(s->base, -1, 0, on_stop, s) : NULL;
	if (!s->http || !s->stop_ev)
		return err_set(ERR_NOMEM, "cannot create the HTTP listener");
	evhttp_set_gencb(s->http, dispatch, s);
	evhttp_set_timeout(s->http, 30);
	evhttp_set_max_headers_size(s->http, 16384);
	evhttp_set_max_body_size(s->http, BODY_MAX);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	s->sock = evhttp_bind_socket_with_handle(s->http, s->host, (ev_uint16_t)s->port);
	if (!s->sock)
		return err_set(ERR_IO, "cannot listen on %s:%d (in use, or not an address of this "
				       "machine): set ORCH_HTTP_ADDR to a free HOST:PORT", s->host, s->port);
	if (getsockname(evhttp_bound_socket_get_fd(s->sock), (struct sockaddr *)&ss, &len) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	for (int i = 0; i < WORKERS; i++) {
		if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0)
			break;
		s->nworkers++;
	}
	if (s->nworkers == 0 || pthread_create(&s->thread, NULL, loop, s) != 0)
		return err_set(ERR_IO, "cannot start the HTTP listener's threads");
	s->running = 1;
	log_info("web", "listening on http://%s:%d", s->host, s->port);
	return 0;
}

int web_server_port(const web_server *s)
{
	return s->port;
}

void web_server_free(web_server *s)
{
	if (!s)
		return;
	/* the workers finish what they run and hand their replies to the loop, which
	 * sends them before it ends */
	pthread_mutex_lock(&s->qmu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
	for (int i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	if (s->running) {
		/* an activation is not lost when the loop has not started yet, as
		 * a loopbreak would be */
		event_active(s->stop_ev, EV_READ, 0);
		pthread_join(s->thread, NULL);
	}
	while (s->qhead) {
		web_request *rq = s->qhead;
		s->qhead = rq->next;
		request_free(rq);
	}
	if (s->stop_ev)
		event_free(s->stop_ev);
	if (s->http)
		evhttp_free(s->http);
	if (s->base)
		event_base_free(s->base);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	free(s);
}

const char *web_method(const web_request *rq)
{
	return rq->method;
}

const char *web_path(const web_request *rq)
{
	return rq->path;
}

const char *web_query(const web_request *rq, const char *name)
{
	return evhttp_find_header(&rq->query, name);
}

const char *web_header(const web_request *rq, const char *name)
{
	if (rq->threaded)
		return evhttp_find_header(&rq->in, name);
	return evhttp_find_header(evhttp_request_get_input_headers(rq->req), name);
}

const char *web_body(const web_request *rq, size_t *len)
{
	if (len)
		*len = rq->body.len;
	return rq->body.data ? rq->body.data : "";
}

const char *web_peer(const web_request *rq)
{
	return rq->peer;
}

void web_set_user(web_request *rq, void *user, void (*free_fn)(void *))
{
	if (rq->user_free)
		rq->user_free(rq->user);
	rq->user = user;
	rq->user_free = free_fn;
}

void *web_user(const web_request *rq)
{
	return rq->user;
}

int web_reply_header(web_request *rq, const char *name, const char *value)
{
	return evhttp_add_header(&rq->out, name, value) == 0 ? 0
							     : err_set(ERR_INVALID, "bad header %s", name);
}

int web_reply(web_request *rq, int status, const char *content_type, const char *body, size_t len)
{
	struct evbuffer *b;

	if (rq->replied)
		return err_set(ERR_INTERNAL, "a request answered twice");
	rq->replied = 1;
	if (rq->threaded) { /* the listener sends it */
		rq->status = status;
		snprintf(rq->ctype, sizeof(rq->ctype), "%s", content_type);
		buf_reset(&rq->reply);
		return buf_append(&rq->reply, body, len);
	}
	b = evbuffer_new();
	if (!b)
		return err_set(ERR_NOMEM, "out of memory");
	if (evbuffer_add(b, body, len) < 0) {
		evbuffer_free(b);
		return err_set(ERR_NOMEM, "out of memory");
	}
	copy_headers(evhttp_request_get_output_headers(rq->req), &rq->out);
	evhttp_add_header(evhttp_request_get_output_headers(rq->req), "Content-Type", content_type);
	if (!evhttp_find_header(&rq->out, "Cache-Control"))
		evhttp_add_header(evhttp_request_get_output_headers(rq->req), "Cache-Control",
				  "no-store");
	evhttp_send_reply(rq->req, status, reason(status), b);
	evbuffer_free(b);
	return 0;
}

int web_reply_json(web_request *rq, int status, const json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);
	int rc;

	if (!text)
		return err_set(ERR_NOMEM, "out of memory");
	rc = web_reply(rq, status, "application/json", text, strlen(text));
	free(text);
	return rc;
}

/* --- streams --- */

/* Drops one reference; the last frees. */
static void stream_unref(web_stream *st)
{
	int last;

	pthread_mutex_lock(&st->mu);
	last = --st->refs == 0;
	pthread_mutex_unlock(&st->mu);
	if (!last)
		return;
	if (st->flush)
		event_free(st->flush);
	buf_free(&st->pending);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

/* The peer went (on the listener's thread). libevent keeps the request,
 * without its connection, until it is ended: the flush after the release
 * frees it. */
static void stream_gone(struct evhttp_connection *conn, void *arg)
{
	web_stream *st = arg;

	(void)conn;
	pthread_mutex_lock(&st->mu);
	st->closed = 1;
	pthread_mutex_unlock(&st->mu);
}

/* On the listener's thread: sends what was written; once the caller
 * released the stream, ends the response (or frees the request of a peer
 * that went) and drops both references. */
static void stream_flush(evutil_socket_t fd, short what, void *arg)
{
	web_stream *st = arg;
	struct evbuffer *b = NULL;
	struct evhttp_request *req;
	int end, closed;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&st->mu);
	if (!st->closed && st->pending.len > 0) {
		b = evbuffer_new();
		if (b)
			evbuffer_add(b, st->pending.data, st->pending.len);
		buf_reset(&st->pending);
	}
	end = st->ending && !st->ended;
	if (end)
		st->ended = 1;
	closed = st->closed;
	req = st->req;
	if (end) {
		st->closed = 1;
		st->req = NULL;
	}
	pthread_mutex_unlock(&st->mu);
	if (b && req && !closed)
		evhttp_send_reply_chunk(req, b);
	if (b)
		evbuffer_free(b);
	if (!end)
		return;
	if (closed) {
		evhttp_request_free(req);
	} else {
		evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
		evhttp_send_reply_end(req);
	}
	stream_unref(st); /* the listener's */
	stream_unref(st); /* the caller's, which web_stream_release left to this flush */
}

int web_stream_open(web_request *rq, const char *content_type, web_stream **out)
{
	web_stream *st;
	struct evkeyvalq *h;

	*out = NULL;
	if (rq->threaded || !(rq->rt->flags & WEB_ROUTE_STREAM))
		return err_set(ERR_INVALID, "a streamed response needs a WEB_ROUTE_STREAM route");
	st = calloc(1, sizeof(*st));
	if (!st)
		return err_set(ERR_NOMEM, "out of memory");
	st->s = rq->s;
	st->req = rq->req;
	st->refs = 2;
	pthread_mutex_init(&st->mu, NULL);
	buf_init(&st->pending, (size_t)4 << 20);
	st->flush = event_new(rq->s->base, -1, 0, stream_flush, st);
	if (!st->flush) {
		pthread_mutex_destroy(&st->mu);
		free(st);
		return err_set(ERR_NOMEM, "out of memory");
	}
	h = evhttp_request_get_output_headers(rq->req);
	copy_headers(h, &rq->out);
	evhttp_add_header(h, "Content-Type", content_type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Accel-Buffering", "no"); /* a reverse proxy passes it at once */
	evhttp_connection_set_closecb(evhttp_request_get_connection(rq->req), stream_gone, st);
	evhttp_send_reply_start(rq->req, 200, "OK");
	rq->replied = 1;
	*out = st;
	return 0;
}

int web_stream_write(web_stream *st, const char *data, size_t len)
{
	int rc;

	pthread_mutex_lock(&st->mu);
	rc = st->closed ? err_set(ERR_IO, "the peer has gone") : buf_append(&st->pending, data, len);
	pthread_mutex_unlock(&st->mu);
	if (rc == 0)
		event_active(st->flush, EV_TIMEOUT, 0);
	return rc;
}

int web_stream_closed(web_stream *st)
{
	int closed;

	pthread_mutex_lock(&st->mu);
	closed = st->closed;
	pthread_mutex_unlock(&st->mu);
	return closed;
}

void web_stream_release(web_stream *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->mu);
	st->ending = 1;
	pthread_mutex_unlock(&st->mu);
	/* the flush on the listener's thread ends the response and drops this reference */
	event_active(st->flush, EV_TIMEOUT, 0);
}
