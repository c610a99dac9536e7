/*
 * web/app — the dashboard: its pages (static files built into the binary,
 * web/static/, drawn by plain JavaScript: SVG for the task graph and the
 * charts) and the JSON API under /api/ they read, on a role's listener
 * (web/web.h).
 *
 *   GET  /                        the page (the login form without a session)
 *   POST /login                   token (and the login form's CSRF field): a session cookie
 *   POST /logout
 *   GET  /api/session             who is logged in, the session's CSRF token
 *   GET  /api/status              what `orchestrator status --json` prints
 *   GET  /api/projects/KEY        what `orchestrator show KEY --json` prints, with
 *                                 "charts" (cost over time, by role, by model)
 *   GET  /api/projects/KEY/diff?task=ID   the diff of a merged task
 *   GET  /api/workers/ID/log      server-sent events: the worker's live lines
 *                                 (Redis worker:log:ID, as `logs -f`), then its result
 *   POST /api/questions/ID        {"option"}: a question answered, as its buttons do
 *   GET  /api/models              the model configuration (stored or the file's), the
 *                                 providers' quirks, the audit, the prompt templates
 *   POST /api/models              {"kind", "name", "value", "expect_version", "try"}
 *   GET  /api/budgets             the budgets; POST: {"kind", "scope", "limit"|"add"|"remove"}
 *   GET  /api/prompts?name=PATH   a prompt template; POST: {"name", "body"|null}
 *
 * Every /api/ route and the pages' data need a session or a bearer token
 * (web/auth.h); every POST of a session needs its CSRF token; changes to
 * models, budgets and prompts need a token made with --admin. Every body
 * sent passes the secrets filter (core/redact.h); no secret value is ever
 * in one (keys are secrets' names). Security headers (a strict
 * Content-Security-Policy, no framing, no referrer) go with every answer.
 *
 * The facts that live above web/ (the factory's reports, the decision
 * path of questions, a repository's diff) come through a backend the
 * program fills (cli/dashboard.c), so the same code serves `status`,
 * `show`, `approve` and these pages.
 */
#ifndef ORCH_WEB_APP_H
#define ORCH_WEB_APP_H

#include <jansson.h>

#include "core/buf.h"
#include "core/pg.h"
#include "llm/registry.h"
#include "web/auth.h"
#include "web/web.h"

typedef struct web_app_backend {
	/* `orchestrator status --json`'s object into *out (owned) */
	int (*status)(pg_conn *c, json_t **out, void *udata);
	/* `orchestrator show PROJECT --json`'s object into *out (owned);
	 * ERR_NOTFOUND for no such project */
	int (*project)(pg_conn *c, const char *project, json_t **out, void *udata);
	/* answers question `id` with option `option` (its id) as `who`, through
	 * the decision path of the buttons; *out {"outcome": "decided" |
	 * "refused", "reason", "label", "question"} (owned) */
	int (*decide)(pg_conn *c, const web_identity *who, int64_t id, const char *option,
		      json_t **out, void *udata);
	/* the diff of task `task` of `project` as merged, into out */
	int (*diff)(pg_conn *c, const char *project, const char *task, buf *out, void *udata);
	/* worker `id`: {"id", "task", "project", "state", "status", "progress",
	 * "finished"} into *out (owned); ERR_NOTFOUND */
	int (*worker)(pg_conn *c, const char *id, json_t **out, void *udata);
	/* this process's own file or environment model configuration (owned,
	 * may be NULL): what the first stored change starts from */
	llm_registry *(*seed)(void *udata);
	void *udata;
} web_app_backend;

typedef struct web_app_opts {
	pg_pool *pool;               /* borrowed; the app takes at most a few connections */
	const char *redis_url;       /* the live lines; NULL: none */
	int secure_cookies;          /* 1: always Secure; 0: only behind a proxy saying https */
	const web_app_backend *be;   /* copied */
} web_app_opts;

typedef struct web_app web_app;

/* Registers the dashboard's routes and the authentication hook on `s`
 * (before web_server_start). The caller owns *out: web_app_stop, then
 * web_server_free, then web_app_free. */
int web_app_attach(web_app **out, web_server *s, const web_app_opts *o);

/* Ends the live logs (their threads end their responses): before
 * web_server_free, while the listener still runs. */
void web_app_stop(web_app *a);

/* Frees, after web_server_free. NULL is a no-op. */
void web_app_free(web_app *a);

#endif
