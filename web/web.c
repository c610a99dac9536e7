/* web — the HTTP listener and its route table. See web.h. */
#include "web/web.h"

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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ROUTES 64
#define IMPLEMENTED_FLAGS 0

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
};

struct web_request {
	struct evhttp_request *req;
	char path[1024];
	struct evkeyvalq query;
	int replied;
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

static void plain(struct evhttp_request *req, int status, const char *text)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; charset=utf-8");
	if (b)
		evbuffer_add(b, text, strlen(text));
	evhttp_send_reply(req, status, status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed"
										   : "Error",
			  b);
	if (b)
		evbuffer_free(b);
}

static void dispatch(struct evhttp_request *req, void *arg)
{
	web_server *s = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	const char *method = method_name(evhttp_request_get_command(req));
	const route *hit = NULL;
	int path_known = 0;
	web_request rq;

	if (!path || !*path)
		path = "/";
	for (int i = 0; i < s->nroutes; i++) {
		const route *r = &s->routes[i];
		int match = r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0
				      : strcmp(path, r->path) == 0;
		if (!match)
			continue;
		path_known = 1;
		if (strcmp(r->method, method) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
			hit = r;
			break;
		}
	}
	if (!hit) {
		plain(req, path_known ? 405 : 404, path_known ? "method not allowed\n" : "not found\n");
		return;
	}
	memset(&rq, 0, sizeof(rq));
	rq.req = req;
	snprintf(rq.path, sizeof(rq.path), "%s", path);
	TAILQ_INIT(&rq.query);
	if (query)
		evhttp_parse_query_str(query, &rq.query);
	if (hit->h(&rq, hit->udata) < 0 && !rq.replied) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s\n", err_last());
		plain(req, 500, msg);
	} else if (!rq.replied) {
		plain(req, 500, "the handler gave no answer\n");
	}
	evhttp_clear_headers(&rq.query);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	web_server *s = arg;

	(void)fd;
	(void)what;
	event_base_loopbreak(s->base);
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
	evhttp_set_max_body_size(s->http, 65536);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	s->sock = evhttp_bind_socket_with_handle(s->http, s->host, (ev_uint16_t)s->port);
	if (!s->sock)
		return err_set(ERR_IO, "cannot listen on %s:%d (in use, or not an address of this "
				       "machine): set ORCH_HTTP_ADDR to a free HOST:PORT", s->host, s->port);
	if (getsockname(evhttp_bound_socket_get_fd(s->sock), (struct sockaddr *)&ss, &len) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	if (pthread_create(&s->thread, NULL, loop, s) != 0)
		return err_set(ERR_IO, "cannot start the HTTP listener's thread");
	s->running = 1;
	log_info("web", "listening on http://%s:%d (/healthz, /metrics)", s->host, s->port);
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
	if (s->running) {
		/* an activation is not lost when the loop has not started yet, as
		 * a loopbreak would be */
		event_active(s->stop_ev, EV_READ, 0);
		pthread_join(s->thread, NULL);
	}
	if (s->stop_ev)
		event_free(s->stop_ev);
	if (s->http)
		evhttp_free(s->http);
	if (s->base)
		event_base_free(s->base);
	free(s);
}

const char *web_method(const web_request *rq)
{
	return method_name(evhttp_request_get_command(rq->req));
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
	return evhttp_find_header(evhttp_request_get_input_headers(rq->req), name);
}

int web_reply(web_request *rq, int status, const char *content_type, const char *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	if (!b)
		return err_set(ERR_NOMEM, "out of memory");
	if (evbuffer_add(b, body, len) < 0) {
		evbuffer_free(b);
		return err_set(ERR_NOMEM, "out of memory");
	}
	evhttp_add_header(evhttp_request_get_output_headers(rq->req), "Content-Type", content_type);
	evhttp_add_header(evhttp_request_get_output_headers(rq->req), "Cache-Control", "no-store");
	evhttp_send_reply(rq->req, status, status == 200 ? "OK" : status == 503 ? "Service Unavailable"
									     : "Status",
			  b);
	evbuffer_free(b);
	rq->replied = 1;
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
