/*
 * mcp — the Model Context Protocol server: the factory as tools, resources
 * and notifications for the coding agents people already use (Claude Code,
 * Codex, VS Code, Cursor), over stdio (`orchestrator mcp`) and over the
 * streamable HTTP transport (mcp/http.h, at /mcp on ORCH_HTTP_ADDR).
 *
 * The protocol: JSON-RPC 2.0 messages; the revisions 2025-11-25 (the
 * official SDK's latest), 2025-06-18, 2025-03-26 and 2024-11-05, the
 * client's choice when it is one of them, else the latest (version
 * negotiation of the lifecycle); tools (tools/list, paginated, tools/call),
 * resources (a project's report and spec: resources/list, paginated,
 * templates, read, subscribe), logging (logging/setLevel), ping. A tool's
 * arguments are checked against its input schema and a mismatch is a tool
 * error (isError) naming the place and what to send; its output matches its
 * output schema (structuredContent, and the same JSON as text). Every
 * string that leaves passes the secrets filter (core/redact.h).
 *
 * Notifications: a session is told when a project it created, asked about
 * or subscribed to changes stage or waits for an answer
 * (notifications/resources/updated for a subscribed resource, and a
 * notifications/message at level "notice" saying what changed), by a
 * watcher thread of the server that looks at the watched projects every
 * `poll_ms`.
 *
 * What lives above mcp/ (the factory's reports, the bot's decision path of
 * questions, starting and cancelling projects) comes through a backend the
 * program fills (cli/cmd_mcp.c), as for the dashboard: mcp/ knows engine,
 * llm and core only.
 */
#ifndef ORCH_MCP_MCP_H
#define ORCH_MCP_MCP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/pg.h"

#define MCP_LATEST_VERSION "2025-11-25"
#define MCP_MAX_MESSAGE ((size_t)4 << 20) /* one message from a client */

/* Who is asking: a Unix user (stdio: the real uid's name) or the person a
 * login token was made for (HTTP). */
typedef struct mcp_identity {
	char name[65];        /* the person; also the name of their terminal chat */
	int64_t telegram_id;  /* acts as this Telegram approver; 0: none */
	char op[65];          /* or as this Unix user (ORCH_OPERATORS maps it); "": none */
	char via[8];          /* "stdio" | "http" */
} mcp_identity;

/* What the program provides. Each function runs on a borrowed connection,
 * gives its result in *out (owned by the caller), and fails with a
 * negative code and err_set() whose message tells the client what to do.
 * `project` arguments are a thread id or key as the client wrote it. */
typedef struct mcp_backend {
	/* starts a project from `idea` for `who`, a change to an existing
	 * repository when `change` is not NULL ({"repo", "branch"?, "pr"?,
	 * "handle"?}, as the client gave it): {"project" (its key), "thread",
	 * "title"} */
	int (*create)(pg_conn *c, const mcp_identity *who, const char *idea, const json_t *change,
		      json_t **out, void *udata);
	/* the projects, those waiting for an answer first, then by recent
	 * activity, at most `limit` (< 0: all): an array of reports
	 * (nodes/report.h); *out_total their number */
	int (*projects)(pg_conn *c, int limit, json_t **out, int64_t *out_total, void *udata);
	/* one project's report with its open questions and their answers
	 * ("open": [{"id", "question", "options": [{"id", "label"}]}]);
	 * ERR_NOTFOUND for a thread that is no project */
	int (*report)(pg_conn *c, int64_t thread, json_t **out, void *udata);
	/* a project's history (`orchestrator show --json`) */
	int (*show)(pg_conn *c, const char *project, json_t **out, void *udata);
	/* answers a question (an approval id, or the question project
	 * `target` waits for) with `answer` (an option's id, label or number,
	 * or "approve"/"reject") as `who`, through the decision path of the
	 * buttons: {"question", "outcome": "decided" | "refused", "answer",
	 * "label", "reason", "decided_by"} */
	int (*decide)(pg_conn *c, const mcp_identity *who, const char *target, const char *answer,
		      json_t **out, void *udata);
	/* `text` from `who` to project `thread`'s conversation, as a message
	 * typed in its chat: {"project", "how": "delivered" | "queued"} */
	int (*message)(pg_conn *c, const mcp_identity *who, int64_t thread, const char *text,
		       json_t **out, void *udata);
	/* cancels project `thread` for `who`: {"project", "runs", "workers"};
	 * ERR_DENIED when `who` may not act on that project's chat */
	int (*cancel)(pg_conn *c, const mcp_identity *who, int64_t thread, json_t **out,
		      void *udata);
	/* worker `id`: {"id", "task", "project", "state", "status", "reason",
	 * "attempt", "transcript" (the file's path)}; ERR_NOTFOUND */
	int (*worker)(pg_conn *c, const char *id, json_t **out, void *udata);
	/* tokens and cost from the ledger, of `project` (NULL: every one):
	 * {"calls", "tokens_in", "tokens_out", "cost_usd", "by_role": [...],
	 * "by_model": [...], "budgets": [...]} */
	int (*usage)(pg_conn *c, const char *project, json_t **out, void *udata);
	void *udata;
} mcp_backend;

typedef struct mcp_opts {
	pg_pool *pool;          /* borrowed; a tool call holds one connection */
	const mcp_backend *be;  /* copied */
	int64_t poll_ms;        /* how often watched projects are looked at; 0: 1000 */
	int page_size;          /* items of a list page (tools, resources, projects,
				 * log entries); 0: 50 */
} mcp_opts;

typedef struct mcp_server mcp_server;
typedef struct mcp_session mcp_session;

/* Sends one message (a notification) to a session's client; called from
 * the server's watcher thread. 0, or negative when the client has gone. */
typedef int (*mcp_send_fn)(const char *msg, size_t len, void *udata);

/* Prepares the server (the tools' schemas are parsed and checked) and
 * starts its watcher thread. The caller owns *out (mcp_server_free, after
 * every session was freed). */
int mcp_server_new(mcp_server **out, const mcp_opts *o);
void mcp_server_free(mcp_server *s);

/* A client's session as `who` (copied). `send` (may be NULL: no
 * notifications) delivers server-to-client messages; it must be safe to
 * call from another thread than the one handling messages. The caller owns
 * *out (mcp_session_free, which waits for a notification in progress). */
int mcp_session_new(mcp_session **out, mcp_server *s, const mcp_identity *who,
		    mcp_send_fn send, void *udata);
void mcp_session_free(mcp_session *ss);

/* Handles one message from the client: a request, a notification, a
 * response, or (2025-03-26) a batch of them. *out gets the answer to send
 * (owned; NULL when none is due: notifications, responses). Bad input is
 * answered with a JSON-RPC error, never a failure; a negative return means
 * the process is out of memory. Calls of one session are serialised by the
 * caller. */
int mcp_session_handle(mcp_session *ss, const char *msg, size_t len, char **out);

/* The protocol revision the session agreed on ("" before initialize), and
 * whether the client said it is initialized. */
const char *mcp_session_version(const mcp_session *ss);
int mcp_session_ready(const mcp_session *ss);

/* The stdio transport: serves one session as `who` on `in_fd` (messages
 * one per line, UTF-8 JSON without embedded newlines) and `out_fd`
 * (answers and notifications, one per line; nothing else is written
 * there), until end of input or until *stop becomes non-zero (checked
 * between reads, at least every second). A line longer than
 * MCP_MAX_MESSAGE is answered with a parse error and skipped. 0 at end of
 * input; ERR_IO when the output cannot be written (the client went). */
int mcp_stdio_run(mcp_server *s, const mcp_identity *who, int in_fd, int out_fd,
		  volatile int *stop);

/* 1 when `v` is a revision this server speaks. */
int mcp_version_supported(const char *v);

/* A JSON-RPC error message for `id` (NULL: null) as text (owned). */
char *mcp_error_message(const json_t *id, int code, const char *message);

#endif
