/*
 * orchestrator mcp — the MCP server over stdio, and the backend of mcp/
 * (mcp/mcp.h): the facts that live above mcp/ come from the same code as
 * the terminal's (the factory's reports, `show`), questions are decided
 * through the path of the buttons and `orchestrator approve` (cli_decide:
 * once, only by someone allowed to decide), projects are started and
 * messages routed as in a chat (bot/route.h), cancelled as by /cancel;
 * and /mcp on a role's listener (the streamable HTTP transport, mcp/http.h)
 * with the dashboard's login tokens as bearer tokens (web/auth.h).
 */
#include "bot/approval.h"
#include "bot/bot.h"
#include "bot/report.h"
#include "bot/route.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/report.h"
#include "llm/ledger.h"
#include "mcp/http.h"
#include "mcp/mcp.h"
#include "nodes/report.h"
#include "spawner/report.h"
#include "secrets/runtime.h"
#include "web/auth.h"
#include "web/web.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator mcp\n"
	"  The factory as a Model Context Protocol server on standard input and output, for\n"
	"  IDE agents (Claude Code, Codex, VS Code, Cursor): tools to create projects, follow\n"
	"  them, answer their questions, read their history and workers' logs, cancel them\n"
	"  and see tokens and cost; a project's report and spec as resources. It acts as the\n"
	"  Unix user running it (its real uid): the terminal's projects and questions are its\n"
	"  own, a Telegram question only as the approver ORCH_OPERATORS maps that user to.\n"
	"  Its projects live in the terminal chat named after that user (orchestrator chat\n"
	"  --name USER shows the same conversation). Logs go to standard error.\n"
	"  A running 'orchestrator serve' (or engine and spawner) does the work.";

/* --- the backend --- */

static void graph_name(char *out, size_t cap)
{
	if (cfg_env_str("ORCH_GRAPH", BOT_DEFAULT_GRAPH, out, cap) < 0 || !*out)
		snprintf(out, cap, "%s", BOT_DEFAULT_GRAPH);
}

/* A client's change made what the project's input carries: its repo a URL
 * as it is, or (over stdio only: the server's disk is the client's) a local
 * repository's absolute path. (owned) or NULL with err_set(). */
static json_t *mcp_change(const mcp_identity *who, const json_t *change)
{
	const char *repo = json_string_value(json_object_get(change, "repo"));
	char abs[1024];
	json_t *out;

	if (strcmp(who->via, "stdio") != 0 && !strstr(repo, "://")) {
		err_set(ERR_INVALID, "repo '%s': over HTTP a repository is named by its URL (https:// "
				     "or ssh://); a local path works with 'orchestrator mcp' over stdio "
				     "on the machine that holds it", repo);
		return NULL;
	}
	if (cli_change_repo(repo, abs, sizeof(abs)) < 0)
		return NULL;
	out = json_deep_copy(change);
	if (!out || json_object_set_new(out, "repo", json_string(abs)) < 0) {
		json_decref(out);
		err_set(ERR_NOMEM, "out of memory");
		return NULL;
	}
	return out;
}

static int be_create(pg_conn *c, const mcp_identity *who, const char *idea, const json_t *change,
		     json_t **out, void *udata)
{
	char graph[64], chat[96], key[128];
	int64_t thread = 0;
	int n = 0, rc = 0;
	json_t *input_change = NULL;

	(void)udata;
	*out = NULL;
	if (!who->name[0] || strpbrk(who->name, ": \t\r\n/") || strlen(who->name) > 40)
		return err_set(ERR_INVALID, "'%s' cannot name a terminal chat (no ':', '/' or space, "
					    "at most 40 characters): use a token made for another name",
			       who->name);
	if (change) {
		input_change = mcp_change(who, change);
		if (!input_change)
			return err_last_code();
	}
	graph_name(graph, sizeof(graph));
	bot_chat_key("term", who->name, chat, sizeof(chat));
	rc = cli_new_change(c, graph, who->name, idea, input_change, &thread, &n);
	json_decref(input_change);
	if (rc == 0 && thread <= 0)
		rc = err_set(ERR_INTERNAL, "the project was not created");
	if (rc < 0)
		return rc;
	snprintf(key, sizeof(key), "%s:%d", chat, n);
	log_info("mcp", "%s (%s) started project %s", who->name, who->via, key);
	{
		/* the title: the first line, at most 60 bytes, whole characters */
		size_t len = strcspn(idea, "\n");
		if (len > 60) {
			len = 60;
			while (len > 0 && ((unsigned char)idea[len] & 0xC0) == 0x80)
				len--;
		}
		*out = json_pack("{s:s, s:I, s:s%}", "project", key, "thread", (json_int_t)thread,
				 "title", idea, len);
	}
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

static int be_projects(pg_conn *c, int limit, json_t **out, int64_t *total, void *udata)
{
	char graph[64];

	(void)udata;
	graph_name(graph, sizeof(graph));
	return nd_report_projects(out, c, graph, limit, total);
}

/* The answers of each open question of `rep` ({"id", "label"}), in place
 * of their labels. */
static void add_options(pg_conn *c, json_t *rep)
{
	size_t i;
	json_t *q;

	json_array_foreach(json_object_get(rep, "open"), i, q) {
		json_t *opts = NULL;

		if (!json_is_integer(json_object_get(q, "id")))
			continue;
		if (bot_report_open_options(c, jx_int(q, "id"), &opts) == 0 && opts)
			json_object_set_new(q, "options", opts);
	}
	err_clear();
}

static int be_report(pg_conn *c, int64_t thread, json_t **out, void *udata)
{
	int rc, unshown = 0;

	(void)udata;
	*out = NULL;
	/* a terminal question not shown in a chat yet gets its id now, as
	 * `orchestrator approve` gives it one */
	rc = cli_unshown_count(c, thread, "term.approval", &unshown);
	if (rc == 0 && unshown > 0) {
		rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
		if (rc == 0)
			rc = cli_materialize(c, thread);
		rc = pg_tx_end(c, rc);
	}
	if (rc == 0)
		rc = nd_report_project(out, c, thread);
	if (rc == 0 && !*out)
		rc = err_set(ERR_NOTFOUND, "thread %lld is not a project of the factory (a plain chat "
					   "thread): list_projects names the projects",
			     (long long)thread);
	if (rc < 0)
		return rc;
	add_options(c, *out);
	return 0;
}

static int be_show(pg_conn *c, const char *project, json_t **out, void *udata)
{
	int rc = cli_show_json(c, project, out);

	(void)udata;
	if (rc == ERR_NOTFOUND)
		return err_set(ERR_NOTFOUND, "there is no project '%.100s': name one by its key "
					     "(term:ada:2) or thread id, as list_projects shows them",
			       project);
	return rc;
}

/* The decider of an MCP identity. */
static void decider_of(const mcp_identity *who, cli_decider *d, char *name, char *shown,
		       char *as, size_t cap)
{
	memset(d, 0, sizeof(*d));
	snprintf(name, cap, "mcp:%s", who->name);
	snprintf(shown, cap, "%s (MCP)", who->name);
	if (who->telegram_id > 0)
		snprintf(as, cap, "%s's token (Telegram user %lld)", who->name,
			 (long long)who->telegram_id);
	else if (strcmp(who->via, "stdio") == 0)
		snprintf(as, cap, "the Unix user '%s' (orchestrator mcp runs as it)", who->op);
	else
		snprintf(as, cap, "%s's token, acting as the Unix user '%s',", who->name, who->op);
	d->name = name;
	d->user = who->name;
	d->telegram_id = who->telegram_id;
	d->op = who->op[0] ? who->op : NULL;
	d->channel = "mcp";
	d->shown = shown;
	d->denied_as = as;
}

static int be_decide(pg_conn *c, const mcp_identity *who, const char *target, const char *answer,
		     json_t **out, void *udata)
{
	char name[160], shown[160], as[200];
	cli_decider d;
	int rc;

	(void)udata;
	decider_of(who, &d, name, shown, as, sizeof(name));
	rc = cli_decide(c, target, answer, 0, &d, out);
	if (rc == 0 && json_is_true(json_object_get(*out, "not_approver"))) {
		char reason[600];
		snprintf(reason, sizeof(reason), "%s %s may not decide it: it is not among the "
						 "question's approvers (nor in ORCH_ALLOWED_USERS when "
						 "it names none). Ask an approver to answer it, or use a "
						 "token made for one (orchestrator web token --user NAME "
						 "--telegram ID).", jx_str(*out, "reason"), as);
		json_object_set_new(*out, "reason", json_string(reason));
	}
	if (rc == 0)
		log_info("mcp", "%s (%s) answered question %lld: %s", who->name, who->via,
			 jx_int(*out, "question"), jx_str(*out, "outcome"));
	return rc;
}

/* Whether `who` may act on project `thread` as its chat's person would
 * (send to it, cancel it): the terminal's projects for a Unix user (a
 * terminal's operator) or an allowed Telegram user; a Telegram chat's for
 * an allowed Telegram user, or a Unix user ORCH_OPERATORS maps to one.
 * Fills key, channel and chat (cap 128 each). ERR_DENIED saying what to
 * configure. */
static int may_act(pg_conn *c, const mcp_identity *who, int64_t thread, char *key, char *channel,
		   char *chat)
{
	char tid[24], spec[4096];
	json_t *t = NULL;
	int64_t allowed[BOT_MAX_ALLOWED], as = 0;
	bot_operator ops[64];
	int nallowed = 0, nops = 0, ok = 0, rc;

	snprintf(tid, sizeof(tid), "%lld", (long long)thread);
	rc = eng_report_thread(c, thread, &t);
	if (rc == ERR_NOTFOUND)
		rc = err_set(ERR_NOTFOUND, "there is no project %s", tid);
	if (rc == 0) {
		const json_t *meta = json_object_get(t, "metadata");

		snprintf(key, 128, "%s", jx_str(t, "key"));
		snprintf(channel, 128, "%s", jx_str(meta, "channel"));
		snprintf(chat, 128, "%s", jx_str(meta, "chat"));
	}
	json_decref(t);
	if (rc == 0)
		rc = cfg_env_str("ORCH_ALLOWED_USERS", NULL, spec, sizeof(spec));
	if (rc == 0)
		rc = bot_parse_allowed(spec, allowed, BOT_MAX_ALLOWED, &nallowed);
	if (rc == 0)
		rc = cfg_env_str("ORCH_OPERATORS", NULL, spec, sizeof(spec));
	if (rc == 0)
		rc = bot_operators_parse(spec, ops, 64, &nops);
	if (rc < 0)
		return rc;
	for (int i = 0; i < nallowed; i++)
		ok |= who->telegram_id > 0 && allowed[i] == who->telegram_id;
	if (strcmp(channel, "telegram") != 0)
		ok |= who->op[0] != 0;
	else if (who->op[0])
		ok |= bot_operator_acts_for(bot_operator_find(ops, nops, who->op), allowed, nallowed,
					    &as);
	if (ok)
		return 0;
	if (strcmp(channel, "telegram") == 0)
		return err_set(ERR_DENIED, "project %s belongs to a Telegram chat: only its allowed "
					   "users (ORCH_ALLOWED_USERS) act on it, and %s is none of "
					   "them. Use its chat, or map the Unix user to an allowed "
					   "user in ORCH_OPERATORS (\"%s:TELEGRAM_USER_ID\")",
			       key, who->name, who->op[0] ? who->op : "USER");
	return err_set(ERR_DENIED, "project %s belongs to the terminal chat %s: a Unix user (a "
				   "token made with --operator) acts on it, or a Telegram user in "
				   "ORCH_ALLOWED_USERS; %s's token (Telegram user %lld) is neither",
		       key, chat, who->name, (long long)who->telegram_id);
}

static int be_message(pg_conn *c, const mcp_identity *who, int64_t thread, const char *text,
		      json_t **out, void *udata)
{
	char key[128], channel[128], chat[128], graph[64], how[16] = "", idem[64], hex[17];
	bot_input in;
	int rc;

	(void)udata;
	*out = NULL;
	rc = may_act(c, who, thread, key, channel, chat);
	if (rc < 0)
		return rc;
	if (!*channel || !*chat)
		return err_set(ERR_INVALID, "project %s has no chat to talk in", key);
	graph_name(graph, sizeof(graph));
	util_rand_hex(hex, 8);
	snprintf(idem, sizeof(idem), "mcp:%s", hex);
	memset(&in, 0, sizeof(in));
	in.channel = channel;
	in.dest = chat;
	in.text = text;
	in.user_id = who->telegram_id;
	in.user_name = who->name;
	in.username = who->name;
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_route_project(c, graph, thread, &in, idem, how, sizeof(how));
	rc = pg_tx_end(c, rc);
	if (rc < 0)
		return rc;
	*out = json_pack("{s:s, s:s}", "project", key, "how", how);
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

static int be_cancel(pg_conn *c, const mcp_identity *who, int64_t thread, json_t **out,
		     void *udata)
{
	char key[128], channel[128], chat[128], actor[96], msg[300];
	int runs = 0, workers = 0, rc;

	(void)udata;
	*out = NULL;
	rc = may_act(c, who, thread, key, channel, chat);
	if (rc < 0)
		return rc;
	snprintf(actor, sizeof(actor), "mcp:%s", who->name);
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_cancel_project(c, thread, actor, &runs, &workers);
	if (rc == 0 && *channel && *chat) {
		snprintf(msg, sizeof(msg), "🛑 This project was cancelled over MCP (%s). Send /new "
					   "<idea> to start another.", who->name);
		rc = bot_say(c, channel, chat, thread, msg);
	}
	rc = pg_tx_end(c, rc);
	if (rc < 0)
		return rc;
	log_info("mcp", "%s (%s) cancelled project %s", who->name, who->via, key);
	*out = json_pack("{s:s, s:i, s:i}", "project", key, "runs", runs, "workers", workers);
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

static int be_worker(pg_conn *c, const char *id, json_t **out, void *udata)
{
	char path[2048];
	int rc = spw_report_worker_detail(c, id, out);

	(void)udata;
	if (rc == 0 && !*out)
		rc = err_set(ERR_NOTFOUND, "there is no worker '%.100s': show_project lists a "
					   "project's workers by id", id);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/transcripts/%s.jsonl", cli_cfg.data_dir, id);
	json_object_set_new(*out, "transcript", json_string(path));
	return 0;
}

static int be_usage(pg_conn *c, const char *project, json_t **out, void *udata)
{
	char key[160] = "";
	json_t *budgets = NULL, *mine, *by_role = NULL, *by_model = NULL;
	int64_t thread = 0, calls = 0;
	llm_cost total;
	int rc = 0;

	(void)udata;
	*out = NULL;
	if (project) {
		json_t *t = NULL;

		rc = eng_thread_find(c, project, &thread);
		if (rc == 0)
			rc = eng_report_thread(c, thread, &t);
		if (rc == 0)
			snprintf(key, sizeof(key), "%s", jx_str(t, "key"));
		json_decref(t);
	}
	if (rc == 0)
		rc = llm_ledger_usage(c, project ? key : NULL, &calls, &total, &by_role, &by_model);
	if (rc == 0)
		rc = llm_budget_list(c, &budgets);
	if (rc < 0) {
		json_decref(by_role);
		json_decref(by_model);
		return rc;
	}
	mine = json_array();
	{
		size_t i;
		json_t *b;
		json_array_foreach(budgets, i, b)
			if (!project || strcmp(jx_str(b, "scope"), key) == 0)
				json_array_append(mine, b);
	}
	*out = json_pack("{s:I, s:I, s:I, s:f, s:o, s:o, s:o}", "calls", (json_int_t)calls,
			 "tokens_in", (json_int_t)total.tokens_in, "tokens_out",
			 (json_int_t)total.tokens_out, "cost_usd", total.cost_usd, "by_role", by_role,
			 "by_model", by_model, "budgets", mine);
	if (*out && project)
		json_object_set_new(*out, "project", json_string(key));
	json_decref(budgets);
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

const mcp_backend cli_mcp_backend = {be_create, be_projects, be_report, be_show, be_decide,
				     be_message, be_cancel, be_worker, be_usage, NULL};

/* --- orchestrator mcp --- */

static volatile int g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

int cmd_mcp(int argc, char **argv)
{
	mcp_identity who;
	mcp_server *s = NULL;
	pg_pool *pool = NULL;
	mcp_opts o;
	struct sigaction sa;
	int64_t poll_ms = 1000, page = 50;
	int rc = 1;

	if (argc > 1) {
		if (strcmp(argv[1], "--help") == 0) {
			puts(USAGE);
			return 0;
		}
		return cli_usage(USAGE);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	memset(&who, 0, sizeof(who));
	cli_unix_user(who.name, sizeof(who.name));
	snprintf(who.op, sizeof(who.op), "%s", who.name);
	snprintf(who.via, sizeof(who.via), "stdio");
	if (cfg_env_duration_ms("ORCH_MCP_POLL", 1000, 100, 60000, &poll_ms) < 0 ||
	    cfg_env_int("ORCH_MCP_PAGE", 50, 1, 500, &page) < 0) {
		cli_fail("configuration");
		return 2;
	}
	if (pg_pool_new(&pool, cli_cfg.database_url, 3) < 0) {
		cli_fail("database pool");
		goto done;
	}
	if (cli_start_secrets(pool) < 0) { /* the secrets filter of every answer */
		cli_fail("mcp");
		goto done;
	}
	memset(&o, 0, sizeof(o));
	o.pool = pool;
	o.be = &cli_mcp_backend;
	o.poll_ms = poll_ms;
	o.page_size = (int)page;
	if (mcp_server_new(&s, &o) < 0) {
		cli_fail("mcp");
		goto done;
	}
	log_info("mcp", "serving MCP on standard input and output as %s (pid %d)", who.name,
		 (int)getpid());
	rc = mcp_stdio_run(s, &who, 0, 1, &g_stop) < 0 ? 1 : 0;
	if (rc)
		log_warn("mcp", "%s", err_last());
done:
	mcp_server_free(s);
	sec_runtime_stop();
	pg_pool_free(pool);
	return rc;
}

/* --- /mcp on a role's listener (web/) --- */

struct cli_mcp_web {
	mcp_server *server;
	mcp_http *http;
};

static const char NO_TOKEN[] =
	"the MCP endpoint wants a bearer token: send Authorization: Bearer <token>, made with "
	"orchestrator web token --user NAME --operator UNIXUSER (or --telegram ID)";

/* Who the request is: the listener's authentication hook (web_server_set_auth,
 * the dashboard's: web_auth_request on the Authorization header) ran before
 * the handler, as for every route flagged WEB_ROUTE_AUTH, and answered 401
 * itself to a token that is missing or not valid. Only a bearer token
 * counts here: a dashboard session's cookie carries no CSRF token on
 * JSON-RPC, so it is refused like no token; so is a request the hook did
 * not see (no hook installed: refused, never served). 0, or a negative
 * code after answering 401. */
static int mcp_auth(web_request *rq, mcp_identity *who, int64_t *token)
{
	const web_identity *w = web_user(rq);

	memset(who, 0, sizeof(*who));
	if (!w || w->session_id != 0) {
		char *body = mcp_error_message(NULL, -32001, NO_TOKEN);

		log_info("mcp", "%s /mcp from %s refused: %s", web_method(rq), web_peer(rq),
			 w ? "a session cookie, no bearer token" : "no identity");
		web_reply_header(rq, "WWW-Authenticate", "Bearer realm=\"orchestrator\"");
		web_reply(rq, 401, "application/json", body ? body : "{}", body ? strlen(body) : 2);
		free(body);
		return ERR_AUTH;
	}
	snprintf(who->name, sizeof(who->name), "%s", w->name);
	who->telegram_id = w->telegram_id;
	snprintf(who->op, sizeof(who->op), "%s", w->op);
	snprintf(who->via, sizeof(who->via), "http");
	*token = w->token_id;
	return 0;
}

static void mcp_request(web_request *rq, mcp_http_req *in, const mcp_identity *who, int64_t token)
{
	memset(in, 0, sizeof(*in));
	in->method = web_method(rq);
	in->session = web_header(rq, "Mcp-Session-Id");
	in->version = web_header(rq, "MCP-Protocol-Version");
	in->origin = web_header(rq, "Origin");
	in->host = web_header(rq, "Host");
	in->accept = web_header(rq, "Accept");
	in->body = web_body(rq, &in->len);
	in->who = who;
	in->token = token;
}

static int mcp_answer(web_request *rq, mcp_http_resp *out)
{
	int rc;

	if (out->session[0])
		web_reply_header(rq, "Mcp-Session-Id", out->session);
	rc = web_reply(rq, out->status, out->content_type ? out->content_type : "text/plain",
		       out->body ? out->body : "", out->body ? strlen(out->body) : 0);
	free(out->body);
	return rc;
}

/* POST and DELETE /mcp (on a worker thread: they reach the database). */
static int h_mcp(web_request *rq, void *udata)
{
	struct cli_mcp_web *m = udata;
	mcp_identity who;
	mcp_http_req in;
	mcp_http_resp out;
	int64_t token = 0;

	if (mcp_auth(rq, &who, &token) < 0)
		return 0;
	mcp_request(rq, &in, &who, token);
	if (mcp_http_handle(m->http, &in, &out) < 0)
		return -1;
	return mcp_answer(rq, &out);
}

static int stream_write(const char *data, size_t len, void *st)
{
	return web_stream_write(st, data, len);
}

static void stream_end(void *st)
{
	web_stream_release(st);
}

/* GET /mcp: the session's event stream (on the listener's thread). */
static int h_mcp_stream(web_request *rq, void *udata)
{
	struct cli_mcp_web *m = udata;
	mcp_identity who;
	mcp_http_req in;
	mcp_http_resp out;
	web_stream *st = NULL;
	int64_t token = 0;

	if (mcp_auth(rq, &who, &token) < 0)
		return 0;
	mcp_request(rq, &in, &who, token);
	if (mcp_http_handle(m->http, &in, &out) < 0)
		return -1;
	if (!out.open_stream)
		return mcp_answer(rq, &out);
	if (web_stream_open(rq, "text/event-stream", &st) < 0)
		return -1;
	{
		static const char hello[] = ": the session's notifications\n\n";
		web_stream_write(st, hello, sizeof(hello) - 1);
	}
	return mcp_http_attach(m->http, in.session, token, stream_write, stream_end, st) < 0 &&
			       err_last_code() != ERR_NOTFOUND ? -1 : 0;
}

int cli_mcp_attach(web_server *s, pg_pool *pool, struct cli_mcp_web **out)
{
	struct cli_mcp_web *m = calloc(1, sizeof(*m));
	char origins[1024];
	int64_t poll_ms = 1000, page = 50;
	mcp_opts o;
	int rc;

	*out = NULL;
	if (!m)
		return err_set(ERR_NOMEM, "out of memory");
	rc = cfg_env_duration_ms("ORCH_MCP_POLL", 1000, 100, 60000, &poll_ms);
	if (rc == 0)
		rc = cfg_env_int("ORCH_MCP_PAGE", 50, 1, 500, &page);
	if (rc == 0)
		rc = cfg_env_str("ORCH_MCP_ORIGINS", "", origins, sizeof(origins));
	memset(&o, 0, sizeof(o));
	o.pool = pool;
	o.be = &cli_mcp_backend;
	o.poll_ms = poll_ms;
	o.page_size = (int)page;
	if (rc == 0)
		rc = mcp_server_new(&m->server, &o);
	if (rc == 0)
		rc = mcp_http_new(&m->http, m->server, origins);
	if (rc == 0)
		rc = web_route(s, "POST", "/mcp", WEB_ROUTE_AUTH | WEB_ROUTE_BODY | WEB_ROUTE_THREAD, h_mcp, m);
	if (rc == 0)
		rc = web_route(s, "DELETE", "/mcp", WEB_ROUTE_AUTH | WEB_ROUTE_THREAD, h_mcp, m);
	if (rc == 0)
		rc = web_route(s, "GET", "/mcp", WEB_ROUTE_AUTH | WEB_ROUTE_STREAM, h_mcp_stream, m);
	if (rc < 0) {
		cli_mcp_stop(m);
		cli_mcp_free(m);
		return rc;
	}
	log_info("mcp", "the MCP server's streamable HTTP transport is at /mcp (bearer tokens of "
			"orchestrator web token)");
	*out = m;
	return 0;
}

void cli_mcp_stop(struct cli_mcp_web *m)
{
	if (m)
		mcp_http_stop(m->http);
}

void cli_mcp_free(struct cli_mcp_web *m)
{
	if (!m)
		return;
	mcp_http_free(m->http);
	mcp_server_free(m->server);
	free(m);
}
