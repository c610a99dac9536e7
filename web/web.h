/*
 * web — the HTTP listener of a long-running role (libevent's evhttp on a
 * thread of its own), started when ORCH_HTTP_ADDR is set.
 *
 * Parts register handlers in a route table: a method and a path, exact
 * ("/healthz") or a prefix ending in a star ("/api/" then a star). A handler runs on the
 * listener's thread and must not block for long (it reads state kept in
 * memory; slow work belongs to a thread of its own that updates that state).
 * Each route carries flags for what it needs: authentication (the
 * server's hook, shared by every part: the dashboard, its API, /mcp), a
 * request body, a streamed response, or a handler that may block and so
 * runs on a worker thread whose reply the listener sends.
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

/* What a route needs beyond a plain GET. */
enum {
	WEB_ROUTE_AUTH = 1,   /* the caller must be known: the server's auth hook runs first
			       * (web_server_set_auth) and a refusal answers 401 */
	WEB_ROUTE_BODY = 2,   /* the handler reads a request body (web_body) */
	WEB_ROUTE_STREAM = 4, /* the handler may stream its response (web_stream_open); it
			       * runs on the listener's thread */
	WEB_ROUTE_THREAD = 8, /* the handler may block (database, HTTP): it runs on one of the
			       * listener's worker threads, its reply is sent by the listener */
};

/* A handler: answers `rq` with one web_reply* call and returns 0; a
 * negative return without a reply answers 500 with err_last(). */
typedef int (*web_handler)(web_request *rq, void *udata);

/* The authentication hook of routes flagged WEB_ROUTE_AUTH: 0 when the
 * request's caller is known (it may attach who with web_set_user), a
 * negative code to refuse (401, or the reply the hook gave). It runs where
 * the handler runs (a worker thread for WEB_ROUTE_THREAD routes). */
typedef int (*web_auth_fn)(web_request *rq, void *udata);

/* Parses "HOST:PORT" (IPv4, or "[IPv6]:PORT"; port 0 picks a free one) and
 * prepares a server with no routes. ERR_INVALID naming the address.
 * The caller owns *out (web_server_free). */
int web_server_new(web_server **out, const char *addr);

/* Adds a route. `method` "GET", "POST", ...; `path` exact or "PREFIX*".
 * Before web_server_start only. ERR_INVALID for a bad path or a flag not
 * implemented; ERR_CONFLICT when the method and path are taken. */
int web_route(web_server *s, const char *method, const char *path, int flags, web_handler h,
	      void *udata);

/* Installs the authentication hook (before web_server_start). */
void web_server_set_auth(web_server *s, web_auth_fn fn, void *udata);

/* Binds and starts the listener's thread. ERR_IO when the address cannot
 * be bound (in use, not local), with the address in the message. */
int web_server_start(web_server *s);

/* The bound port (after start), e.g. when port 0 was asked for. */
int web_server_port(const web_server *s);

/* Stops the thread and frees. NULL is a no-op. */
void web_server_free(web_server *s);

/* The request: method, path (without the query; percent-decoded), a query
 * parameter (NULL
 * when absent), a header (NULL when absent). Borrowed, valid in the
 * handler. */
const char *web_method(const web_request *rq);
const char *web_path(const web_request *rq);
const char *web_query(const web_request *rq, const char *name);
const char *web_header(const web_request *rq, const char *name);

/* The request's body (BODY routes; "" and 0 otherwise). Borrowed. */
const char *web_body(const web_request *rq, size_t *len);

/* The peer's address ("127.0.0.1"). */
const char *web_peer(const web_request *rq);

/* Who the auth hook found (NULL when none). The free function, when not
 * NULL, is called with it when the request is done. */
void web_set_user(web_request *rq, void *user, void (*free_fn)(void *));
void *web_user(const web_request *rq);

/* Adds a header to the reply (before web_reply). Copied. */
int web_reply_header(web_request *rq, const char *name, const char *value);

/* Answers with `status`, a content type and a body (copied). */
int web_reply(web_request *rq, int status, const char *content_type, const char *body,
	      size_t len);
/* Answers with `status` and `j` as JSON (borrowed). */
int web_reply_json(web_request *rq, int status, const json_t *j);

/* --- streamed responses (WEB_ROUTE_STREAM routes) --- */

typedef struct web_stream web_stream;

/* Starts a 200 response of `content_type` whose body is written later, from
 * any thread, with web_stream_write (server-sent events, say). On the
 * listener's thread, inside the handler, which returns after it. The
 * caller owns one reference: web_stream_release ends the response (when
 * the peer has not gone) and drops it. */
int web_stream_open(web_request *rq, const char *content_type, web_stream **out);

/* Queues bytes for the peer. Thread-safe. ERR_IO once the peer has gone. */
int web_stream_write(web_stream *st, const char *data, size_t len);

/* 1 once the peer has closed the connection (or the server stops). */
int web_stream_closed(web_stream *st);

/* Ends the response and drops the caller's reference. Thread-safe. */
void web_stream_release(web_stream *st);

#endif
