/*
 * dashboard — the web dashboard's backend (web/app.h) and `orchestrator
 * web`: the facts that live above web/ come from the same code as the
 * terminal's (status, show), questions are decided through the same path
 * as the buttons and `orchestrator approve` (bot/approval.h: once, only by
 * someone allowed to decide), and login tokens are made, listed and revoked
 * here.
 */
#include "bot/approval.h"
#include "bot/bot.h"
#include "bot/report.h"
#include "bot/route.h"
#include "bot/text.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/gitx.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "engine/control.h"
#include "engine/outbox.h"
#include "llm/llm.h"
#include "llm/registry.h"
#include "secrets/runtime.h"
#include "spawner/report.h"
#include "web/app.h"
#include "web/auth.h"
#include "web/web.h"

#include <git2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator web [token|tokens|revoke] ...\n"
	"  orchestrator web                 runs the dashboard alone on ORCH_HTTP_ADDR (default\n"
	"                                   127.0.0.1:9464); serve runs it too when ORCH_HTTP_ADDR is set\n"
	"  web token --user NAME (--telegram ID | --operator UNIXUSER) [--admin] [--ttl 30d]\n"
	"                                   makes a login token (shown once, stored hashed) acting as\n"
	"                                   that Telegram approver, or as the Unix user ORCH_OPERATORS\n"
	"                                   maps to approvers; --admin may change models, budgets and\n"
	"                                   prompts\n"
	"  web tokens [--json]              the tokens (never their values)\n"
	"  web revoke ID | --user NAME      revokes a token (or every token of NAME) and its sessions";

/* --- the backend --- */

/* The answers of each open question in `qs` (its "options"), for buttons. */
static void add_options(pg_conn *c, json_t *qs)
{
	size_t i;
	json_t *q;

	json_array_foreach(qs, i, q) {
		json_t *opts = NULL;

		if (!json_is_integer(json_object_get(q, "id")))
			continue;
		if (bot_report_open_options(c, json_integer_value(json_object_get(q, "id")), &opts) ==
			    0 &&
		    opts)
			json_object_set_new(q, "options", opts);
	}
	err_clear();
}

static int be_status(pg_conn *c, json_t **out, void *udata)
{
	int rc = cli_status_json(c, 100, out);

	(void)udata;
	if (rc == 0)
		add_options(c, json_object_get(*out, "questions"));
	return rc;
}

static int be_project(pg_conn *c, const char *project, json_t **out, void *udata)
{
	int rc = cli_show_json(c, project, out);

	(void)udata;
	if (rc == 0)
		add_options(c, json_object_get(*out, "questions"));
	return rc;
}

static int be_worker(pg_conn *c, const char *id, json_t **out, void *udata)
{
	int rc = spw_report_worker_json(c, id, out);

	(void)udata;
	if (rc == 0 && !*out)
		rc = err_set(ERR_NOTFOUND, "no worker %s", id);
	return rc;
}

static llm_registry *be_seed(void *udata)
{
	llm_registry *r = NULL;

	(void)udata;
	if (llm_registry_load(&r) < 0) {
		log_warn("web", "this process's model configuration does not load: %s", err_last());
		err_clear();
	}
	return r;
}

/* The diff a merge put on main: the merge worker's commit against its
 * first parent. */
static int be_diff(pg_conn *c, const char *project, const char *task, buf *out, void *udata)
{
	char repo_path[4096], merged[64];
	int64_t thread = 0;
	git_repository *repo = NULL;
	git_commit *commit = NULL, *parent = NULL;
	git_tree *t1 = NULL, *t0 = NULL;
	git_diff *diff = NULL;
	git_buf patch = {0};
	git_oid oid;
	int rc;

	(void)udata;
	rc = eng_thread_find(c, project, &thread);
	if (rc == ERR_NOTFOUND) {
		err_clear();
		rc = 0;
	}
	repo_path[0] = merged[0] = '\0';
	if (rc == 0 && thread > 0)
		rc = spw_report_merge(c, thread, task, repo_path, sizeof(repo_path), merged,
				      sizeof(merged));
	if (rc == 0 && (!*repo_path || !*merged))
		rc = err_set(ERR_NOTFOUND, "task %s of %s has not been merged (yet)", task, project);
	if (rc == 0)
		rc = gitx_init();
	if (rc == 0 && (git_repository_open_bare(&repo, repo_path) < 0 &&
			git_repository_open(&repo, repo_path) < 0))
		rc = err_set(ERR_GIT, "the repository of %s cannot be opened here (is this the "
				      "spawner's host?)", project);
	if (rc == 0 && (git_oid_fromstr(&oid, merged) < 0 ||
			git_commit_lookup(&commit, repo, &oid) < 0))
		rc = err_set(ERR_GIT, "the merged commit of %s is not in the repository", task);
	if (rc == 0 && git_commit_parentcount(commit) > 0 && git_commit_parent(&parent, commit, 0) < 0)
		rc = err_set(ERR_GIT, "the merged commit's parent cannot be read");
	if (rc == 0 && (git_commit_tree(&t1, commit) < 0 ||
			(parent && git_commit_tree(&t0, parent) < 0) ||
			git_diff_tree_to_tree(&diff, repo, t0, t1, NULL) < 0 ||
			git_diff_to_buf(&patch, diff, GIT_DIFF_FORMAT_PATCH) < 0))
		rc = err_set(ERR_GIT, "the diff cannot be made: %s",
			     git_error_last() ? git_error_last()->message : "?");
	if (rc == 0)
		rc = buf_append(out, patch.ptr ? patch.ptr : "", patch.size);
	git_buf_dispose(&patch);
	git_diff_free(diff);
	git_tree_free(t0);
	git_tree_free(t1);
	git_commit_free(parent);
	git_commit_free(commit);
	git_repository_free(repo);
	return rc;
}

/* The option's index in the question's options (by id or label). */
static int option_index(const json_t *options, const char *want)
{
	const json_t *v;
	size_t i;
	int found = -1;

	json_array_foreach(options, i, v) {
		const char *id = json_string_value(json_object_get(v, "id"));
		const char *label = json_string_value(json_object_get(v, "label"));
		if ((id && strcmp(id, want) == 0) || (label && strcmp(label, want) == 0)) {
			found = (int)i;
			break;
		}
	}
	return found;
}

/* Who decides question `id` from the web: a token acting as a Telegram
 * approver is that approver (the question's approvers, else
 * ORCH_ALLOWED_USERS, decide whether it may); a token acting as an
 * operator decides the terminal's questions as `approve` in a terminal
 * does, and a Telegram question only as an approver ORCH_OPERATORS maps
 * that Unix user to (bot/approval.h, the same mapping `approve` uses).
 * ERR_DENIED with what to configure. */
static int web_actor(pg_conn *c, int64_t id, const web_identity *who, const char *channel,
		     bot_actor *out, int64_t *allowed, int *nallowed)
{
	char spec[4096], ch[16], list[256] = "";
	int64_t approvers[BOT_MAX_ALLOWED], as = 0;
	bot_operator ops[64];
	const bot_operator *op;
	int napprovers = 0, nops = 0, rc;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s (web)", who->name);
	snprintf(out->username, sizeof(out->username), "web:%s", who->name);
	out->channel = "web";
	*nallowed = 0;
	rc = cfg_env_str("ORCH_ALLOWED_USERS", NULL, spec, sizeof(spec));
	if (rc == 0)
		rc = bot_parse_allowed(spec, allowed, BOT_MAX_ALLOWED, nallowed);
	if (rc < 0)
		return rc;
	if (who->telegram_id > 0) {
		out->id = who->telegram_id;
		return 0;
	}
	if (strcmp(channel, "telegram") != 0) {
		out->trusted = 1; /* an operator, as in a terminal */
		return 0;
	}
	/* a Telegram question: the approvers ORCH_OPERATORS maps this operator to (as
	 * `orchestrator approve` does for the same Unix user) */
	rc = cfg_env_str("ORCH_OPERATORS", NULL, spec, sizeof(spec));
	if (rc == 0)
		rc = bot_operators_parse(spec, ops, 64, &nops);
	if (rc == 0)
		rc = bot_approval_approvers(c, id, allowed, *nallowed, approvers, BOT_MAX_ALLOWED,
					    &napprovers, ch, sizeof(ch));
	if (rc < 0)
		return rc;
	op = bot_operator_find(ops, nops, who->op);
	if (bot_operator_acts_for(op, approvers, napprovers, &as)) {
		out->trusted = op->any;
		out->id = as;
		return 0;
	}
	for (int i = 0; i < napprovers && strlen(list) + 24 < sizeof(list); i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%lld", i ? ", " : "",
			 (long long)approvers[i]);
	return err_set(ERR_DENIED,
		       "question %lld is a Telegram question for its approvers (%s); %s's token acts "
		       "as operator '%s', whom ORCH_OPERATORS maps to none of them (for example "
		       "ORCH_OPERATORS=\"%s:%s\")", (long long)id,
		       list[0] ? list : "none: ORCH_ALLOWED_USERS is empty", who->name, who->op,
		       who->op, napprovers > 0 ? list : "TELEGRAM_USER_ID");
}

static int be_decide(pg_conn *c, const web_identity *who, int64_t id, const char *option,
		     json_t **out, void *udata)
{
	int64_t allowed[BOT_MAX_ALLOWED];
	int nallowed = 0, idx, rc;
	json_t *q = NULL;
	bot_actor actor;
	bot_decision d;

	(void)udata;
	*out = NULL;
	memset(&d, 0, sizeof(d));
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_report_question(c, id, &q);
	if (rc == 0 && !q)
		rc = err_set(ERR_NOTFOUND, "no question %lld", (long long)id);
	idx = rc == 0 ? option_index(json_object_get(q, "options"), option) : -1;
	if (rc == 0 && idx < 0)
		rc = err_set(ERR_INVALID, "question %lld has no answer '%s'", (long long)id, option);
	if (rc == 0)
		rc = web_actor(c, id, who, jx_str(q, "channel"), &actor, allowed, &nallowed);
	if (rc == 0)
		rc = bot_approval_decide(c, id, idx, &actor, jx_str(q, "chat"), allowed, nallowed, &d);
	if (rc == 0 && d.outcome == BOT_DEC_OK && strcmp(jx_str(q, "channel"), "telegram") == 0 &&
	    d.message_id > 0) {
		/* the message loses its buttons and says who decided, as after a click */
		buf html;
		json_t *edit;
		buf_init(&html, 0);
		tg_html_escape(&html, d.question, strlen(d.question));
		buf_puts(&html, "\n\n<b>");
		tg_html_escape(&html, d.label, strlen(d.label));
		buf_puts(&html, "</b> — ");
		tg_html_escape(&html, actor.name, strlen(actor.name));
		edit = json_pack("{s:I, s:s, s:s}", "message_id", (json_int_t)d.message_id, "html",
				 buf_cstr(&html), "keyboard", "remove");
		rc = edit ? bot_emit(c, d.thread_id, "telegram.edit", d.chat, edit)
			  : err_set(ERR_NOMEM, "out of memory");
		json_decref(edit);
		buf_free(&html);
	} else if (rc == 0 && d.outcome == BOT_DEC_OK && jx_int(q, "outbox_id") > 0 &&
		   strcmp(jx_str(q, "channel"), "term") == 0) {
		json_t *from = json_pack("{s:s}", "decided_from", "web");

		rc = from ? eng_outbox_done_pending(c, jx_int(q, "outbox_id"), "term.approval", from)
			  : err_set(ERR_NOMEM, "out of memory");
		json_decref(from);
	}
	rc = pg_tx_end(c, rc);
	json_decref(q);
	if (rc < 0)
		return rc;
	*out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "outcome",
			 d.outcome == BOT_DEC_OK ? "decided" : "refused", "reason", d.reason, "label",
			 d.label, "question", d.question, "decided_by", d.decided_by);
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

static const web_app_backend BACKEND = {be_status, be_project, be_decide, be_diff, be_worker,
					be_seed, NULL};

int cli_dashboard_attach(web_server *s, pg_pool *pool, web_app **out)
{
	web_app_opts o;
	char secure[8];

	memset(&o, 0, sizeof(o));
	if (cfg_env_str("ORCH_WEB_SECURE", "0", secure, sizeof(secure)) < 0)
		return -1;
	o.pool = pool;
	o.redis_url = cli_cfg.redis_url;
	o.secure_cookies = strcmp(secure, "1") == 0;
	o.be = &BACKEND;
	return web_app_attach(out, s, &o);
}

/* --- orchestrator web --- */

static int do_token(int argc, char **argv)
{
	web_token_spec spec;
	char token[WEB_SECRET_LEN + 1], actor[96];
	int64_t id = 0, ttl = 0;
	pg_conn *c;
	int rc;

	memset(&spec, 0, sizeof(spec));
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_opt(argc, argv, &i, "--user", &v)) {
			spec.name = v;
		} else if (cli_opt(argc, argv, &i, "--telegram", &v)) {
			spec.telegram_id = cli_int(v);
			if (spec.telegram_id <= 0)
				return cli_usage(USAGE);
		} else if (cli_opt(argc, argv, &i, "--operator", &v)) {
			spec.op = v;
		} else if (cli_opt(argc, argv, &i, "--ttl", &v)) {
			if (cfg_parse_duration_ms(v, &ttl) < 0 || ttl <= 0) {
				fprintf(stderr, "orchestrator: --ttl %s: a duration such as 30d or 12h\n", v);
				return 2;
			}
		} else if (cli_flag(argv, i, "--admin")) {
			spec.admin = 1;
		} else {
			return cli_usage(USAGE);
		}
	}
	if (!spec.name)
		return cli_usage(USAGE);
	spec.ttl_ms = ttl;
	cli_audit_actor(actor, sizeof(actor));
	spec.created_by = actor;
	c = cli_db();
	if (!c)
		return 1;
	rc = web_token_create(c, &spec, token, sizeof(token), &id);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("web token");
	fprintf(stderr, "token #%lld for %s (%s %s%s), valid %s; it is shown once, give it to "
			"%s only:\n", (long long)id, spec.name,
		spec.telegram_id ? "Telegram approver" : "operator",
		spec.telegram_id ? "" : spec.op, spec.admin ? ", admin" : "",
		ttl ? "as long as asked" : "30 days", spec.name);
	if (spec.telegram_id)
		fprintf(stderr, "(acting as Telegram user %lld)\n", (long long)spec.telegram_id);
	printf("%s\n", token);
	return 0;
}

static int do_tokens(int argc, char **argv)
{
	json_t *list = NULL, *v;
	int as_json = argc > 1 && cli_flag(argv, 1, "--json");
	pg_conn *c;
	size_t i;

	c = cli_db();
	if (!c)
		return 1;
	if (web_token_list(c, &list) < 0) {
		pg_conn_close(c);
		return cli_fail("web tokens");
	}
	pg_conn_close(c);
	if (as_json) {
		cli_print_json(list);
	} else {
		printf("%-5s %-16s %-24s %-6s %-8s %-21s %s\n", "id", "name", "acts as", "admin",
		       "state", "expires", "sessions");
		json_array_foreach(list, i, v) {
			char as[64];
			if (jx_int(v, "telegram_id"))
				snprintf(as, sizeof(as), "telegram %lld", jx_int(v, "telegram_id"));
			else
				snprintf(as, sizeof(as), "operator %s", jx_str(v, "operator"));
			printf("%-5lld %-16s %-24s %-6s %-8s %-21s %lld\n", jx_int(v, "id"),
			       jx_str(v, "name"), as,
			       json_is_true(json_object_get(v, "admin")) ? "yes" : "no",
			       jx_str(v, "state"), jx_str(v, "expires_at"), jx_int(v, "sessions"));
		}
	}
	json_decref(list);
	return 0;
}

static int do_revoke(int argc, char **argv)
{
	const char *name = NULL;
	int64_t id = 0;
	int n = 0, rc;
	pg_conn *c;

	if (argc == 3 && strcmp(argv[1], "--user") == 0)
		name = argv[2];
	else if (argc == 2)
		id = cli_int(argv[1]);
	if (!name && id <= 0)
		return cli_usage(USAGE);
	c = cli_db();
	if (!c)
		return 1;
	rc = web_token_revoke(c, id, name, &n);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("web revoke");
	printf("%d token%s revoked; %s sessions ended\n", n, n == 1 ? "" : "s", n == 1 ? "its" : "their");
	return 0;
}

/* The dashboard alone: the listener on ORCH_HTTP_ADDR (default loopback),
 * with /healthz and /metrics as every role's. */
static int run_web(void)
{
	pg_pool *pool = NULL;
	cli_web w = {0};
	sigset_t sigs;
	int rc = 1;

	setenv("ORCH_HTTP_ADDR", "127.0.0.1:9464", 0);
	cli_block_signals(&sigs);
	if (pg_pool_new(&pool, cli_cfg.database_url, 8) < 0) {
		cli_fail("database pool");
		goto done;
	}
	if (cli_start_secrets(pool) < 0) { /* the secrets filter of every page */
		cli_fail("start");
		goto done;
	}
	if (cli_web_start("web", pool, cli_cfg.redis_url, &w) < 0) {
		cli_fail("ORCH_HTTP_ADDR");
		goto done;
	}
	log_info("web", "the dashboard runs (pid %d); SIGINT or SIGTERM stops it", (int)getpid());
	for (;;) {
		int sig = sigwaitinfo(&sigs, NULL);
		if (sig == SIGINT || sig == SIGTERM)
			break;
	}
	rc = 0;
done:
	cli_web_stop(&w);
	sec_runtime_stop();
	pg_pool_free(pool);
	return rc;
}

int cmd_web(int argc, char **argv)
{
	static const cli_action actions[] = {
		{"token", NULL, do_token},
		{"tokens", NULL, do_tokens},
		{"revoke", NULL, do_revoke},
		{NULL, NULL, NULL},
	};

	if (argc == 1)
		return run_web();
	return cli_actions(argc, argv, "web", USAGE, actions);
}
