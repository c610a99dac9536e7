/*
 * eval_front — the person's hands for `orchestrator eval run` (eval/runner.h):
 * the paths a person's actions take in the terminal chat. A project starts
 * as `orchestrator new` starts it; a typed line is routed as the terminal
 * chat routes it (bot/route.h); the chat's messages are taken from the
 * outbox and its questions made approvals as the terminal chat shows them;
 * a question is decided through the bot's decide-once path
 * (bot/approval.h), as the terminal chat and `orchestrator approve` decide
 * it; a project is cancelled as `orchestrator cancel` does.
 */
#include "bot/approval.h"
#include "bot/route.h"
#include "bot/text.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/util.h"
#include "engine/outbox.h"
#include "eval/runner.h"
#include "nodes/repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int start(void *udata, pg_conn *c, const char *chat, const char *idea, int64_t *thread,
		 char *key, size_t cap)
{
	char graph[64], ck[160];
	int n = 0, rc;

	(void)udata;
	rc = cfg_env_str("ORCH_GRAPH", BOT_DEFAULT_GRAPH, graph, sizeof(graph));
	if (rc == 0)
		rc = cli_new_project(c, graph, chat, idea, thread, &n);
	if (rc < 0)
		return rc;
	bot_chat_key("term", chat, ck, sizeof(ck));
	snprintf(key, cap, "%s:%d", ck, n);
	return 0;
}

/* A change task's project: the repository the runner made (a local bare
 * one), its branch `base`, as `orchestrator new --repo PATH --branch BASE`
 * starts it. */
static int start_repo(void *udata, pg_conn *c, const char *chat, const char *idea,
		      const char *repo, const char *base, int64_t *thread, char *key, size_t cap)
{
	char graph[64], ck[160], abs[1024];
	json_t *change = NULL;
	int n = 0, rc;

	(void)udata;
	rc = cfg_env_str("ORCH_GRAPH", BOT_DEFAULT_GRAPH, graph, sizeof(graph));
	if (rc == 0)
		rc = nd_repo_check_local(repo, abs, sizeof(abs));
	if (rc == 0) {
		change = json_pack("{s:s, s:s}", "repo", abs, "branch", base && *base ? base : "main");
		rc = change ? 0 : err_set(ERR_NOMEM, "out of memory");
	}
	if (rc == 0)
		rc = cli_new_change(c, graph, chat, idea, change, thread, &n);
	json_decref(change);
	if (rc < 0)
		return rc;
	bot_chat_key("term", chat, ck, sizeof(ck));
	snprintf(key, cap, "%s:%d", ck, n);
	return 0;
}

static int say(void *udata, pg_conn *c, const char *chat, const char *text)
{
	bot_input in;
	bot_batch b;
	char graph[64], idem[160];
	int rc;

	(void)udata;
	rc = cfg_env_str("ORCH_GRAPH", BOT_DEFAULT_GRAPH, graph, sizeof(graph));
	if (rc < 0)
		return rc;
	memset(&in, 0, sizeof(in));
	in.channel = "term";
	in.dest = chat;
	in.text = text;
	in.user_name = chat;
	in.username = chat;
	snprintf(idem, sizeof(idem), "term:%s:%lld:%llx", chat, (long long)util_wall_ms(),
		 (unsigned long long)util_rand_u64());
	bot_batch_init(&b);
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_batch_add(&b, &in, idem);
	if (rc == 0)
		rc = bot_batch_flush(&b, c, graph, NULL, NULL);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0)
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
	bot_batch_clear(&b);
	return rc;
}

/* One claimed row as the person sees it (appended to `out`). */
static int show(pg_conn *c, const eng_outbox_row *row, json_t *out)
{
	const char *kind = row->kind + 5; /* after "term." */
	const json_t *p = row->payload;
	json_t *m;

	if (strcmp(kind, "approval") == 0) {
		bot_approval a;
		int rc = bot_approval_create(c, row, "term", 86400, &a);
		if (rc < 0)
			return rc;
		if (strcmp(a.state, "pending") == 0)
			rc = bot_approval_set_message(c, a.id, row->id);
		m = json_pack("{s:s, s:s, s:{s:I, s:s, s:O}}", "kind", "approval", "text", a.question,
			      "approval", "id", (json_int_t)a.id, "key", jx_str(p, "key"), "options",
			      a.options);
		bot_approval_clear(&a);
		if (rc < 0) {
			json_decref(m);
			return rc;
		}
	} else if (strcmp(kind, "action") == 0) {
		return 0;
	} else {
		const char *h = json_string_value(json_object_get(p, "html"));
		char *plain = h ? tg_html_to_plain(h) : NULL;
		const char *text = plain ? plain : jx_str(p, "text");
		if (strcmp(kind, "document") == 0)
			text = jx_str(p, "caption");
		m = json_pack("{s:s, s:s}", "kind", kind, "text", text);
		free(plain);
	}
	if (!m)
		return err_set(ERR_NOMEM, "out of memory");
	return json_array_append_new(out, m) < 0 ? err_set(ERR_NOMEM, "out of memory") : 0;
}

static int take(void *udata, pg_conn *c, const char *chat, json_t **out)
{
	char relay[64];
	eng_outbox_row *rows = NULL;
	json_t *msgs = json_array();
	int rc, n = 0;

	(void)udata;
	*out = NULL;
	if (!msgs)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(relay, sizeof(relay), "eval-%d", (int)getpid());
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = eng_outbox_claim_dest(c, relay, chat, "term.", 50, 60000, &rows, &n);
	/* in the order they were written */
	for (int i = 0; rc == 0 && i < n; i++) {
		rc = rows[i].payload ? show(c, &rows[i], msgs)
				     : err_set(ERR_INVALID, "outbox row %lld: unreadable",
					       (long long)rows[i].id);
		if (rc == 0)
			rc = eng_outbox_done(c, rows[i].id, NULL);
	}
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0) {
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
		json_decref(msgs);
	} else {
		*out = msgs;
	}
	eng_outbox_rows_free(rows, n);
	return rc;
}

static int decide(void *udata, pg_conn *c, const char *chat, int64_t id, int option)
{
	bot_actor who;
	bot_decision d;
	int rc;

	(void)udata;
	memset(&who, 0, sizeof(who));
	snprintf(who.name, sizeof(who.name), "%s", chat);
	snprintf(who.username, sizeof(who.username), "%s", chat);
	who.channel = "term";
	who.trusted = 1;
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_approval_decide(c, id, option, &who, chat, NULL, 0, &d);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0) {
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
		return rc;
	}
	if (d.outcome != BOT_DEC_OK && d.outcome != BOT_DEC_DECIDED)
		return err_set(ERR_CONFLICT, "question %lld: %s", (long long)id, d.reason);
	return 0;
}

static int cancel(void *udata, pg_conn *c, int64_t thread, const char *why)
{
	char who[300];
	int rc;

	(void)udata;
	snprintf(who, sizeof(who), "eval (%.250s)", why);
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_cancel_project(c, thread, who, NULL, NULL);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0)
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
	return rc;
}

void cli_eval_front(ev_front *out)
{
	memset(out, 0, sizeof(*out));
	out->start = start;
	out->start_repo = start_repo;
	out->say = say;
	out->take = take;
	out->decide = decide;
	out->cancel = cancel;
}
