/*
 * orchestrator approve | reject — decides a question from the terminal,
 * through the bot's decide-once logic (bot/approval.h), as a button would.
 */
#include "bot/approval.h"
#include "bot/bot.h"
#include "bot/report.h"
#include "bot/route.h"
#include "bot/text.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "engine/control.h"
#include "engine/outbox.h"
#include "engine/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
	"orchestrator approve|reject <approval-id | project> [--option ID] [--json]\n"
	"  Answers a question a project asked (the ids are in 'orchestrator status' and\n"
	"  'orchestrator show'; a project — its key or thread id — means the question it\n"
	"  waits for). approve picks the affirmative answer (approve, merge, retry,\n"
	"  extend), reject the negative one (reject, cancel, stop, skip); --option picks\n"
	"  any answer by its id, its label or its number (1, 2, ...). The decision is\n"
	"  taken once: a question decided already (by a click, say) is not changed.\n"
	"  A Telegram question belongs to its approvers: from the terminal, only a Unix\n"
	"  user that ORCH_OPERATORS maps to one of them may decide it (\"ada:111111111\",\n"
	"  \"root:*\"); the decision records that user, by its uid.";

/* The questions of thread `thread` asked through the outbox (kinds ending
 * with `kind_suffix`) but not shown yet (no approvals row): the first *kept
 * of *out, oldest first. *out (owned) holds *n rows in all: free them with
 * eng_outbox_rows_free(*out, *n). */
static int unshown(pg_conn *c, int64_t thread, const char *kind_suffix, eng_outbox_row **out,
		   int *n, int *kept)
{
	int rc = eng_outbox_pending_of(c, thread, kind_suffix, out, n);

	*kept = 0;
	for (int i = 0; rc == 0 && i < *n; i++) {
		int64_t shown = 0;

		rc = bot_report_of_outbox(c, (*out)[i].id, &shown);
		if (rc == 0 && shown == 0) {
			eng_outbox_row keep = (*out)[*kept];
			(*out)[*kept] = (*out)[i];
			(*out)[i] = keep;
			(*kept)++;
		}
	}
	return rc;
}

int cli_unshown_count(pg_conn *c, int64_t thread, const char *kind_suffix, int *out_n)
{
	eng_outbox_row *rows = NULL;
	int n = 0;
	int rc = unshown(c, thread, kind_suffix, &rows, &n, out_n);

	eng_outbox_rows_free(rows, n);
	return rc;
}

int cli_materialize(pg_conn *c, int64_t thread)
{
	eng_outbox_row *rows = NULL;
	int64_t ttl_ms = 86400000;
	int n = 0, kept = 0, rc;

	if (cfg_env_duration_ms("ORCH_APPROVAL_TTL", 86400000, 1000, 365LL * 86400000, &ttl_ms) < 0)
		return ERR_INVALID;
	/* questions of the thread its run waits for, asked but not shown yet:
	 * they get their approvals rows now */
	rc = unshown(c, thread, ".approval", &rows, &n, &kept);
	for (int i = 0; rc == 0 && i < kept; i++) {
		bot_approval a;
		char channel[16];
		size_t len = strcspn(rows[i].kind, ".");

		snprintf(channel, sizeof(channel), "%.*s", (int)(len < sizeof(channel) ? len : 15),
			 rows[i].kind);
		rc = rows[i].payload ? bot_approval_create(c, &rows[i], channel, ttl_ms / 1000, &a)
				     : err_set(ERR_INVALID, "outbox row %lld: unreadable",
					       (long long)rows[i].id);
		if (rc == 0)
			bot_approval_clear(&a);
	}
	eng_outbox_rows_free(rows, n);
	return rc;
}

/* The open questions of `thread` that its run waits for, into *out
 * (owned): [{"id", "question"}], newest first. */
static int open_questions(pg_conn *c, int64_t thread, json_t **out)
{
	json_t *keys = NULL;
	int rc = eng_report_waiting_on(c, thread, &keys);

	*out = NULL;
	if (rc == 0)
		rc = bot_report_open_keys(c, thread, keys, out);
	json_decref(keys);
	return rc;
}

/* The approval the argument names: an approval id, else the question the
 * project's run waits for. *out 0 with a message when there is none or
 * several. */
static int resolve(pg_conn *c, const char *arg, int64_t *out)
{
	int64_t v = cli_int(arg), thread = 0;
	json_t *open = NULL, *q = NULL;
	int rc;

	*out = 0;
	if (v > 0) {
		rc = bot_report_question(c, v, &q);
		if (rc < 0)
			return rc;
		if (q) {
			json_decref(q);
			*out = v;
			return 0;
		}
	}
	rc = eng_thread_find(c, arg, &thread);
	if (rc < 0)
		return err_set(ERR_NOTFOUND, "%s is neither an approval id nor a project", arg);
	rc = cli_materialize(c, thread);
	if (rc < 0)
		return rc;
	rc = open_questions(c, thread, &open);
	if (rc < 0)
		return rc;
	if (json_array_size(open) == 0) {
		rc = err_set(ERR_NOTFOUND, "project %s waits for no answer now", arg);
	} else if (json_array_size(open) > 1) {
		char list[600] = "";
		for (size_t i = 0; i < json_array_size(open) && strlen(list) + 140 < sizeof(list);
		     i++) {
			json_t *o = json_array_get(open, i);
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%lld (%.100s)",
				 i ? "; " : "", (long long)jx_int(o, "id"), jx_str(o, "question"));
		}
		rc = err_set(ERR_CONFLICT, "project %s has %d open questions; name one by its id: %s",
			     arg, (int)json_array_size(open), list);
	} else {
		*out = jx_int(json_array_get(open, 0), "id");
	}
	json_decref(open);
	return rc;
}

/* "approve (Approve), change (Change)" for messages; a static buffer per
 * thread. */
static const char *answers_of(const json_t *options)
{
	static _Thread_local char list[400];
	size_t i;
	const json_t *o;

	list[0] = 0;
	json_array_foreach(options, i, o)
		if (strlen(list) + 80 < sizeof(list))
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s (%s)",
				 i ? ", " : "", json_string_value(json_object_get(o, "id")),
				 json_string_value(json_object_get(o, "label")));
	return list;
}

static int pick(const json_t *options, const char *want, int reject, int *out)
{
	static const char *const yes[] = {"approve", "merge", "retry", "extend", NULL};
	static const char *const no[] = {"reject", "cancel", "stop", "skip", NULL};
	const char *const *pref = reject ? no : yes;
	size_t i;
	const json_t *o;

	*out = -1;
	if (want) {
		int64_t n = cli_int(want);
		json_array_foreach(options, i, o) {
			const char *id = json_string_value(json_object_get(o, "id"));
			const char *label = json_string_value(json_object_get(o, "label"));
			if ((id && strcmp(id, want) == 0) || (label && strcmp(label, want) == 0) ||
			    (n >= 1 && (size_t)n == i + 1)) {
				*out = (int)i;
				return 0;
			}
		}
		if (strcmp(want, "approve") == 0 || strcmp(want, "yes") == 0)
			return pick(options, NULL, 0, out);
		if (strcmp(want, "reject") == 0 || strcmp(want, "no") == 0)
			return pick(options, NULL, 1, out);
		return err_set(ERR_NOTFOUND, "the question has no answer '%s' (its answers: %s)", want,
			       answers_of(options));
	}
	for (size_t p = 0; pref[p]; p++)
		json_array_foreach(options, i, o)
			if (strcmp(json_string_value(json_object_get(o, "id")), pref[p]) == 0) {
				*out = (int)i;
				return 0;
			}
	if (!reject) {
		*out = 0;
		return 0;
	}
	return err_set(ERR_NOTFOUND, "the question has no negative answer: choose one with --option");
}

/* Who decides approval `id`, into *who, for decider `d`. A Telegram
 * question belongs to its approvers (its own list, else ORCH_ALLOWED_USERS):
 * a decider acting as a Telegram user is that user (bot_approval_decide
 * checks it); one acting as a Unix user may decide it only when
 * ORCH_OPERATORS maps that user to one of them (or to '*'), acting for that
 * approver. A terminal question may be decided by a Unix user, as by
 * whoever can answer it in the terminal chat. ERR_DENIED with what to
 * configure, ERR_INVALID for a setting that does not parse. */
static int actor_for(pg_conn *c, int64_t id, const cli_decider *d, bot_actor *who,
		     int64_t *allowed, int *nallowed)
{
	char channel[16], list[256] = "", spec[4096];
	int64_t approvers[BOT_MAX_ALLOWED], as = 0;
	bot_operator ops[64];
	const bot_operator *op;
	int napprovers = 0, nops = 0, rc;

	memset(who, 0, sizeof(*who));
	snprintf(who->name, sizeof(who->name), "%s", d->name);
	snprintf(who->username, sizeof(who->username), "%s", d->user);
	who->channel = d->channel;
	*nallowed = 0;
	rc = cfg_env_str("ORCH_ALLOWED_USERS", NULL, spec, sizeof(spec));
	if (rc == 0)
		rc = bot_parse_allowed(spec, allowed, BOT_MAX_ALLOWED, nallowed);
	if (rc == 0)
		rc = bot_approval_approvers(c, id, allowed, *nallowed, approvers, BOT_MAX_ALLOWED,
					    &napprovers, channel, sizeof(channel));
	if (rc < 0)
		return rc;
	if (d->telegram_id > 0) {
		who->id = d->telegram_id;
		return 0;
	}
	if (strcmp(channel, "telegram") != 0) {
		who->trusted = 1;
		return 0;
	}
	rc = cfg_env_str("ORCH_OPERATORS", NULL, spec, sizeof(spec));
	if (rc == 0)
		rc = bot_operators_parse(spec, ops, 64, &nops);
	if (rc < 0)
		return rc;
	op = bot_operator_find(ops, nops, d->op ? d->op : "");
	if (d->op && bot_operator_acts_for(op, approvers, napprovers, &as)) {
		who->trusted = op->any;
		who->id = as;
		return 0;
	}
	for (int i = 0; i < napprovers && strlen(list) + 24 < sizeof(list); i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%lld", i ? ", " : "",
			 (long long)approvers[i]);
	return err_set(ERR_DENIED,
		       "approval %lld is a Telegram question for its approvers (%s); %s may act for "
		       "none of them. Answer it with its buttons in Telegram, or name the Unix user "
		       "in ORCH_OPERATORS (for example ORCH_OPERATORS=\"%s:%s\")",
		       (long long)id, list[0] ? list : "none: ORCH_ALLOWED_USERS is empty",
		       d->denied_as, d->op ? d->op : "USER", napprovers > 0 ? list : "TELEGRAM_USER_ID");
}

/* After a decision: a Telegram question's message loses its buttons and
 * says who decided, as after a click; a terminal question not shown in a
 * chat yet is marked answered. */
static int after_decision(pg_conn *c, const json_t *q, const bot_decision *d,
			  const cli_decider *dec)
{
	const char *actor = dec->shown;
	const char *channel = jx_str(q, "channel");

	if (strcmp(channel, "telegram") == 0 && d->message_id > 0) {
		buf html;
		json_t *edit;
		int rc;
		buf_init(&html, 0);
		tg_html_escape(&html, d->question, strlen(d->question));
		buf_puts(&html, "\n\n<b>");
		tg_html_escape(&html, d->label, strlen(d->label));
		buf_puts(&html, "</b> — ");
		tg_html_escape(&html, actor, strlen(actor));
		edit = json_pack("{s:I, s:s, s:s}", "message_id", (json_int_t)d->message_id, "html",
				 buf_cstr(&html), "keyboard", "remove");
		rc = edit ? bot_emit(c, d->thread_id, "telegram.edit", d->chat, edit)
			  : err_set(ERR_NOMEM, "out of memory");
		json_decref(edit);
		buf_free(&html);
		return rc;
	}
	if (strcmp(channel, "term") == 0 && jx_int(q, "outbox_id") > 0) {
		json_t *result = json_pack("{s:s}", "decided_from", dec->channel);
		int rc = result ? eng_outbox_done_pending(c, jx_int(q, "outbox_id"), "term.approval",
							  result)
				: err_set(ERR_NOMEM, "out of memory");
		json_decref(result);
		return rc;
	}
	return 0;
}

int cli_decide(pg_conn *c, const char *target, const char *want, int reject,
	       const cli_decider *dec, json_t **out)
{
	int option = -1, nallowed = 0, rc;
	int64_t id = 0, allowed[BOT_MAX_ALLOWED];
	json_t *q = NULL;
	bot_actor who;
	bot_decision d;

	*out = NULL;
	memset(&d, 0, sizeof(d));
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = resolve(c, target, &id);
	if (rc == 0)
		rc = bot_report_question(c, id, &q);
	if (rc == 0 && !q)
		rc = err_set(ERR_NOTFOUND, "no approval %lld", (long long)id);
	if (rc == 0)
		rc = pick(json_object_get(q, "options"), want, reject, &option);
	if (rc == 0)
		rc = actor_for(c, id, dec, &who, allowed, &nallowed);
	if (rc == 0)
		rc = bot_approval_decide(c, id, option, &who, jx_str(q, "chat"), allowed, nallowed,
					 &d);
	if (rc == 0 && d.outcome == BOT_DEC_OK)
		rc = after_decision(c, q, &d, dec);
	rc = pg_tx_end(c, rc);
	json_decref(q);
	if (rc < 0)
		return rc;
	*out = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "question", (json_int_t)id,
			 "outcome", d.outcome == BOT_DEC_OK ? "decided" : "refused", "answer",
			 d.option_id, "label", d.label, "reason", d.reason, "decided_by",
			 d.outcome == BOT_DEC_OK ? who.name : d.decided_by, "question_text",
			 d.question);
	if (*out && d.outcome == BOT_DEC_NOT_APPROVER)
		json_object_set_new(*out, "not_approver", json_true());
	return *out ? 0 : err_set(ERR_NOMEM, "out of memory");
}

int cmd_approve(int argc, char **argv)
{
	int reject = strcmp(argv[0], "reject") == 0, as_json = 0, rc;
	const char *target = NULL, *want = NULL;
	char user[64], actor[96];
	json_t *r = NULL;
	cli_decider dec;
	pg_conn *c;

	rc = cli_target_args(argc, argv, USAGE, "--option", &want, &target, &as_json);
	if (rc >= 0)
		return rc;
	c = cli_db();
	if (!c)
		return 1;
	cli_unix_user(user, sizeof(user));
	snprintf(actor, sizeof(actor), "cli:%s", user);
	memset(&dec, 0, sizeof(dec));
	dec.name = actor;
	dec.user = user;
	dec.op = user;
	dec.channel = "cli";
	{
		char shown[120], as[96];
		snprintf(shown, sizeof(shown), "%s (terminal)", actor);
		dec.shown = shown;
		snprintf(as, sizeof(as), "the Unix user '%s'", user);
		dec.denied_as = as;
		rc = cli_decide(c, target, want, reject, &dec, &r);
	}
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail(reject ? "reject" : "approve");
	rc = strcmp(jx_str(r, "outcome"), "decided") == 0 ? 0 : 1;
	if (as_json) {
		json_t *j = json_pack("{s:O, s:O, s:O, s:O, s:O}", "approval",
				      json_object_get(r, "question"), "outcome",
				      json_object_get(r, "outcome"), "option",
				      json_object_get(r, "answer"), "label", json_object_get(r, "label"),
				      "reason", json_object_get(r, "reason"));
		cli_print_json(j);
		json_decref(j);
	} else if (rc == 0) {
		printf("approval %lld: decided '%s' (%s)\n", jx_int(r, "question"), jx_str(r, "label"),
		       jx_str(r, "answer"));
	} else {
		fprintf(stderr, "orchestrator: approval %lld: %s\n", jx_int(r, "question"),
			jx_str(r, "reason"));
	}
	json_decref(r);
	return rc;
}
