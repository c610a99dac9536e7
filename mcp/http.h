/*
 * mcp/http — the streamable HTTP transport of the MCP server (revisions
 * 2025-03-26 and later), independent of the HTTP server that carries it:
 * the program (cli/) registers /mcp on a role's listener and hands each
 * request here with the identity its bearer token has (web/auth.h).
 *
 *   POST   one JSON-RPC message (or a batch): an initialize starts a
 *          session, answered with its Mcp-Session-Id; the session's
 *          requests are answered as application/json, notifications and
 *          responses with 202 and no body
 *   GET    (Accept: text/event-stream) the session's stream of
 *          server-sent events: the notifications of its projects; one
 *          stream per session (a new one ends the old), a comment every
 *          15 s keeps it open
 *   DELETE ends the session
 *
 * A request of a session must carry its Mcp-Session-Id (400 without it;
 * 404 for one unknown, ended, expired or made with another token) and,
 * from 2025-06-18 on, MCP-Protocol-Version (its absence means 2025-03-26;
 * a revision this server does not speak is 400). A browser's Origin must be
 * the server's own (http or https and the Host header) or one of
 * `allowed_origins` (403 otherwise: DNS rebinding). A session not used for
 * an hour, with no stream open, ends. Thread-safe: requests of several
 * sessions at once; one session's are serialised here.
 */
#ifndef ORCH_MCP_HTTP_H
#define ORCH_MCP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "mcp/mcp.h"

#define MCP_HTTP_MAX_SESSIONS 256

typedef struct mcp_http mcp_http;

typedef struct mcp_http_req {
	const char *method;      /* "POST", "GET", "DELETE" */
	const char *session;     /* Mcp-Session-Id, NULL when absent */
	const char *version;     /* MCP-Protocol-Version, NULL when absent */
	const char *origin;      /* Origin, NULL when absent */
	const char *host;        /* Host */
	const char *accept;      /* Accept */
	const char *body;        /* POST */
	size_t len;
	const mcp_identity *who; /* who the bearer token is */
	int64_t token;           /* that token's id: a session belongs to it */
} mcp_http_req;

typedef struct mcp_http_resp {
	int status;
	char session[40];        /* Mcp-Session-Id to send with the answer; "" none */
	const char *content_type; /* of body; NULL: no body */
	char *body;              /* owned: free() */
	int open_stream;         /* GET: open an event stream and mcp_http_attach it */
} mcp_http_resp;

/* Writes to an open event stream: 0, or negative once the peer has gone. */
typedef int (*mcp_stream_write_fn)(const char *data, size_t len, void *stream);
/* Ends an event stream and drops the transport's reference to it. */
typedef void (*mcp_stream_end_fn)(void *stream);

/* The transport on server `s` (borrowed). `allowed_origins`: space- or
 * comma-separated origins browsers may call from besides the server's own
 * (NULL: none). The caller owns *out (mcp_http_free, before the server). */
int mcp_http_new(mcp_http **out, mcp_server *s, const char *allowed_origins);

/* Ends every event stream and refuses new ones (mcp_http_attach): while
 * the listener still runs, before it is freed. NULL is a no-op. */
void mcp_http_stop(mcp_http *h);

/* Ends every session and stream, and frees: after the listener stopped
 * (no request in progress). NULL is a no-op. */
void mcp_http_free(mcp_http *h);

/* Answers one request into *out (its body owned by the caller). Never
 * fails for bad input (that is a 4xx answer); negative when out of memory. */
int mcp_http_handle(mcp_http *h, const mcp_http_req *rq, mcp_http_resp *out);

/* Gives session `session` (of token `token`) its event stream, after a GET
 * answered with open_stream: notifications are written to it with `write`
 * until `end` is called (the session ends, another stream replaces it, the
 * transport is freed, or a write fails). ERR_NOTFOUND when the session
 * ended meanwhile (`end` is then called at once). */
int mcp_http_attach(mcp_http *h, const char *session, int64_t token, mcp_stream_write_fn write,
		    mcp_stream_end_fn end, void *stream);

/* The number of sessions now (for tests and /metrics). */
int mcp_http_sessions(mcp_http *h);

#endif
