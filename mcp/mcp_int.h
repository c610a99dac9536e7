/*
 * mcp_int — what the files of mcp/ share: the tool table's types, the
 * server and session structures, and helpers for the tools. Not for use
 * outside mcp/.
 */
#ifndef ORCH_MCP_MCP_INT_H
#define ORCH_MCP_MCP_INT_H

#include <pthread.h>

#include "mcp/mcp.h"

#define MCP_MAX_WATCH 128   /* projects one session watches */
#define MCP_TEXT_CAP 4000   /* characters of one long text field shown by default */

/* What a tool's handler gets. */
typedef struct mcp_call {
	mcp_session *ss;
	pg_conn *c;
	const json_t *args;      /* checked against the tool's input schema */
	const mcp_identity *who;
	const mcp_backend *be;
	int page_size;
} mcp_call;

/* A tool's handler: *out its structured result, matching the tool's
 * output schema (owned by the caller). A negative return is a tool error
 * (isError) whose text is err_last(): it must say what to do. */
typedef int (*mcp_tool_fn)(mcp_call *call, json_t **out);

/* One row of the tools table. */
typedef struct mcp_tool {
	const char *name;
	const char *title;
	const char *description;
	const char *input;       /* JSON schema, as text */
	const char *output;      /* JSON schema, as text */
	int read_only, destructive, idempotent;
	mcp_tool_fn fn;
} mcp_tool;

/* The factory's tools (mcp/tools.c), *n of them. */
const mcp_tool *mcp_tools(size_t *n);

/* One project a session watches. */
typedef struct mcp_watch {
	int64_t thread;
	char key[128];
	char *digest;            /* what it looked like last (NULL: not looked at yet) */
	char stage[32];
	int sub_report, sub_spec; /* resources/subscribe'd */
} mcp_watch;

struct mcp_session {
	mcp_server *s;
	mcp_identity who;
	mcp_send_fn send;
	void *udata;
	char version[16];
	int answered_initialize, ready;
	int log_level;           /* least severity sent (index into the syslog levels) */
	int send_failed;         /* the last notification could not be sent */
	mcp_watch watch[MCP_MAX_WATCH]; /* under s->mu */
	int nwatch;
	mcp_session *next;       /* the server's list, under s->mu */
};

struct mcp_server {
	pg_pool *pool;
	mcp_backend be;
	int64_t poll_ms;
	int page_size;
	const mcp_tool *tools;
	size_t ntools;
	json_t **in_schema, **out_schema;
	json_t *tool_list;       /* what tools/list shows, in table order */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, started;
	pthread_t watcher;
	mcp_session *sessions;
};

/* The thread id of `project` (an id or a key), with a message that says
 * how to name one when there is none. */
int mcp_project_find(pg_conn *c, const char *project, int64_t *out);

/* Watches project `thread` (key `key`) for this session: stage changes and
 * questions are notified. `sub`: 1 report, 2 spec subscribed; 0 none. */
void mcp_watch_add(mcp_session *ss, int64_t thread, const char *key, int sub);
/* Drops a subscription (the project stays watched). */
void mcp_watch_unsub(mcp_session *ss, int64_t thread, int sub);

/* Sends notification `method` with `params` (taken; NULL: none) to the
 * session's client, when it can take notifications. */
void mcp_notify(mcp_session *ss, const char *method, json_t *params);

/* A cursor "o:N" for offset N into out[cap]; the offset of a cursor (0
 * for NULL), ERR_INVALID for one this server did not make. */
void mcp_cursor_make(int64_t offset, char *out, size_t cap);
int mcp_cursor_parse(const char *cursor, int64_t *out);

/* `s` cut to `max` characters (UTF-8 aware) with a note of the length when
 * cut; a new string. */
json_t *mcp_text_cut(const char *s, size_t max);

/* The resources (mcp/resources.c): resources/list, templates, read,
 * subscribe and unsubscribe. Each fills *result (owned), or fails with
 * ERR_NOTFOUND (an unknown resource or project), ERR_INVALID (bad params)
 * or another code, with err_last() the message for the client. */
int mcp_res_list(mcp_session *ss, const json_t *params, json_t **result);
int mcp_res_templates(mcp_session *ss, const json_t *params, json_t **result);
int mcp_res_read(mcp_session *ss, const json_t *params, json_t **result);
int mcp_res_subscribe(mcp_session *ss, const json_t *params, int on, json_t **result);

/* The report resource's URI of a project key into out[cap]. */
void mcp_uri(const char *key, const char *which, char *out, size_t cap);

/* JSON-RPC error codes */
#define MCP_PARSE_ERROR (-32700)
#define MCP_INVALID_REQUEST (-32600)
#define MCP_METHOD_NOT_FOUND (-32601)
#define MCP_INVALID_PARAMS (-32602)
#define MCP_INTERNAL_ERROR (-32603)
#define MCP_RESOURCE_NOT_FOUND (-32002)

#endif
