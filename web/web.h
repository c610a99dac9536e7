/*
 * web — the HTTP listener of a long-running role (libevent's evhttp on a
 * thread of its own), started when ORCH_HTTP_ADDR is set.
 *
 * Parts register handlers in a route table: a method and a path, exact
 * ("/healthz") or a prefix ending in a star ("/api/" then a star). A handler runs on the
 * listener's thread and must not block for long (it reads state kept in
 * memory; slow work belongs to a thread of its own that updates that state).
 * Each route carries flags for what later parts will need (authentication,
 * a request body, a streaming response); routes marked with a flag this
 * listener does not implement yet are refused at registration.
 *
 * Dependencies: web knows core only; the parts above it (cli) register the
 * handlers. web_health.h adds /healthz and /metrics.
 */
#ifndef ORCH_WEB_WEB_H
#define ORCH_WEB_WEB_H

#include <jansson.h>
#include <stddef.h>

typedef struct web_server web_server;
typedef struct web_request web_request;

/* What a route needs beyond a plain GET; for the routes to come. */
enum {
	WEB_ROUTE_AUTH = 1,   /* the caller must present a token (not yet implemented) */
	WEB_ROUTE_BODY = 2,   /* the handler reads a request body (not yet implemented) */
	WEB_ROUTE_STREAM = 4, /* the handler streams its response (not yet implemented) */
};

/* A handler: answers `rq` with one web_reply* call and returns 0; a
 * negative return without a reply answers 500 with err_last(). */
typedef int (*web_handler)(web_request *rq, void *udata);

/* Parses "HOST:PORT" (IPv4, or "[IPv6]:PORT"; port 0 picks a free one) and
 * prepares a server with no routes. ERR_INVALID naming the address.
 * The caller owns *out (web_server_free). */
int web_server_new(web_server **out, const char *addr);

/* Adds a route. `method` "GET", "POST", ...; `path` exact or "PREFIX*".
 * Before web_server_start only. ERR_INVALID for a bad path or a flag not
 * implemented; ERR_CONFLICT when the method and path are taken. */
int web_route(web_server *s, const char *method, const char *path, int flags, web_handler h,
	      void *udata);

/* Binds and starts the listener's thread. ERR_IO when the address cannot
 * be bound (in use, not local), with the address in the message. */
int web_server_start(web_server *s);

/* The bound port (after start), e.g. when port 0 was asked for. */
int web_server_port(const web_server *s);

/* Stops the thread and frees. NULL is a no-op. */
void web_server_free(web_server *s);

/* The request: method, path (without the query), a query parameter (NULL
 * when absent), a header (NULL when absent). Borrowed, valid in the
 * handler. */
const char *web_method(const web_request *rq);
const char *web_path(const web_request *rq);
const char *web_query(const web_request *rq, const char *name);
const char *web_header(const web_request *rq, const char *name);

/* Answers with `status`, a content type and a body (copied). */
int web_reply(web_request *rq, int status, const char *content_type, const char *body,
	      size_t len);
/* Answers with `status` and `j` as JSON (borrowed). */
int web_reply_json(web_request *rq, int status, const json_t *j);

#endif
