/* orchestrator show — a project's history: the conversation, the decisions,
 * the tasks, the workers and what the models cost. */
#include "cli/cli.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "engine/control.h"
#include "bot/report.h"
#include "engine/report.h"
#include "llm/ledger.h"
#include "nodes/factory.h"
#include "spawner/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
	"orchestrator show <project> [--json]\n"
	"  A project's (a thread's) history: the conversation, its decisions and events,\n"
	"  the questions asked and how they were answered, the tasks, every worker and\n"
	"  merge with its result, and tokens and cost per task and per model role, all\n"
	"  from the ledger of model calls. <project> is a thread's key (tg:42:1,\n"
	"  term:ada:2) or id.";

/* The project's spending per model role, its questions and its workers
 * (an empty array on an error, as before). */
static json_t *by_role(pg_conn *c, const char *project)
{
	json_t *j = NULL;

	if (llm_ledger_by_role(c, project, &j) < 0)
		err_clear();
	return j ? j : json_array();
}

static json_t *questions(pg_conn *c, int64_t thread)
{
	json_t *j = NULL;

	if (bot_report_questions(c, thread, &j) < 0)
		err_clear();
	return j ? j : json_array();
}

static json_t *workers(pg_conn *c, int64_t thread)
{
	json_t *j = NULL;

	if (spw_report_workers(c, thread, &j) < 0)
		err_clear();
	return j ? j : json_array();
}

/* Prints `text` indented, at most `max` characters of it. */
static void indented(const char *text, size_t max)
{
	size_t n = 0;

	for (const char *p = text; *p && n < max; p++, n++) {
		putchar(*p);
		if (*p == '\n')
			fputs("      ", stdout);
	}
	if (strlen(text) > max)
		fputs("…", stdout);
	putchar('\n');
}

static void print_human(const json_t *j)
{
	const json_t *st = json_object_get(j, "state"), *sum = json_object_get(j, "summary");
	const json_t *meta = json_object_get(j, "metadata"), *e;
	size_t i;
	const char *k;
	double total = 0;

	printf("project %s — %s\n", jx_str(j, "key"),
	       *jx_str(sum, "name") ? jx_str(sum, "name") : jx_str(meta, "title"));
	printf("  stage %s, latest run %s, started %s, chat %s:%s\n",
	       *jx_str(sum, "stage") ? jx_str(sum, "stage") : "-", jx_str(j, "run"),
	       jx_str(j, "created"), jx_str(meta, "channel"), jx_str(meta, "chat"));
	if (*jx_str(sum, "repo"))
		printf("  repository %s (main at %.12s)%s%s\n", jx_str(sum, "repo"),
		       jx_str(json_object_get(st, "repo"), "head"),
		       *jx_str(sum, "remote") ? ", remote " : "", jx_str(sum, "remote"));

	printf("\nconversation\n");
	json_array_foreach(json_object_get(st, "conversation"), i, e) {
		printf("  %s: ", strcmp(jx_str(e, "role"), "user") == 0 ? "you" : "orchestrator");
		indented(jx_str(e, "text"), 600);
	}
	if (json_array_size(json_object_get(st, "conversation")) == 0)
		printf("  (none)\n");

	printf("\nevents and decisions\n");
	json_array_foreach(json_object_get(st, "log"), i, e) {
		char when[32];
		cli_fmt_time(json_integer_value(json_object_get(e, "at")), when, sizeof(when));
		printf("  %s  %-18s %s%s", when, jx_str(e, "kind"), jx_str(e, "task"),
		       *jx_str(e, "task") ? ": " : "");
		indented(jx_str(e, "text"), 300);
	}

	printf("\nquestions\n");
	json_array_foreach(json_object_get(j, "questions"), i, e) {
		printf("  #%-5lld %-8s %s", jx_int(e, "id"), jx_str(e, "state"),
		       jx_str(e, "asked"));
		if (strcmp(jx_str(e, "state"), "decided") == 0)
			printf("  → %s by %s", jx_str(e, "decision"), jx_str(e, "by"));
		printf("\n         ");
		indented(jx_str(e, "question"), 300);
	}
	if (json_array_size(json_object_get(j, "questions")) == 0)
		printf("  (none)\n");

	printf("\ntasks\n");
	json_object_foreach((json_t *)json_object_get(st, "tasks"), k, e) {
		const json_t *t = json_object_get(e, "tests");
		const json_t *cost = json_object_get(json_object_get(json_object_get(j, "costs"),
								    "tasks"), k);
		printf("  %-14s %-28s round %lld", k, nd_task_state_label(jx_str(e, "status")),
		       jx_int(e, "round"));
		if (json_integer_value(json_object_get(t, "total")) > 0)
			printf("  %lld/%lld tests", jx_int(t, "passed"), jx_int(t, "total"));
		printf("  %lld tokens  $%.4f\n", jx_int(cost, "tokens_in") + jx_int(cost, "tokens_out"),
		       json_number_value(json_object_get(cost, "cost_usd")));
	}
	if (json_object_size(json_object_get(st, "tasks")) == 0)
		printf("  (no plan approved yet)\n");

	printf("\nworkers\n");
	json_array_foreach(json_object_get(j, "workers"), i, e) {
		const json_t *pr = json_object_get(e, "progress");

		printf("  %-36s %-7s %-10s ", jx_str(e, "id"), jx_str(e, "mode"),
		       *jx_str(e, "status") ? jx_str(e, "status") : jx_str(e, "state"));
		if (strcmp(jx_str(e, "state"), "running") == 0 && json_is_object(pr)) {
			/* what it does now: the agent's step and last command */
			char line[300];
			snprintf(line, sizeof(line), "step %lld: %s", jx_int(pr, "step"),
				 *jx_str(pr, "action") ? jx_str(pr, "action")
						       : jx_str(pr, "phase"));
			indented(line, 200);
		} else {
			indented(jx_str(e, "reason"), 200);
		}
	}
	if (json_array_size(json_object_get(j, "workers")) == 0)
		printf("  (none)\n");
	else
		printf("  (`orchestrator logs <worker>` shows what a worker's agent did)\n");

	printf("\nmodels\n");
	json_array_foreach(json_object_get(j, "llm"), i, e) {
		printf("  %-12s %4lld calls  %8lld tokens in  %8lld out  $%.4f\n",
		       jx_str(e, "role"), jx_int(e, "calls"), jx_int(e, "tokens_in"),
		       jx_int(e, "tokens_out"), json_number_value(json_object_get(e, "cost_usd")));
		total += json_number_value(json_object_get(e, "cost_usd"));
	}
	printf("  total $%.4f\n", total);
}

int cli_show_json(pg_conn *c, const char *target, json_t **result)
{
	int64_t tid = 0;
	json_t *state = NULL, *out = NULL, *th = NULL;
	nd_costs costs = {0};
	int rc;

	*result = NULL;
	rc = eng_thread_find(c, target, &tid);
	if (rc == 0)
		rc = eng_report_thread(c, tid, &th);
	if (rc == 0 && eng_state_at(c, tid, 0, &state, NULL, NULL) < 0) {
		err_clear(); /* no checkpoint yet: an empty state */
		state = json_object();
	}
	if (rc == 0)
		rc = nd_costs_load(&costs, c, jx_str(th, "key"));
	if (rc == 0) {
		out = json_pack("{s:I, s:s, s:s, s:O, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "thread",
				(json_int_t)tid, "key", jx_str(th, "key"), "graph", jx_str(th, "graph"),
				"metadata", json_object_get(th, "metadata"), "created",
				jx_str(th, "created"), "run", jx_str(th, "run"), "summary",
				nd_project_summary(state), "state", json_incref(state), "questions",
				questions(c, tid), "workers", workers(c, tid), "llm",
				by_role(c, jx_str(th, "key")),
				"costs", nd_costs_json(&costs));
		if (!out)
			rc = err_set(ERR_NOMEM, "out of memory");
	}
	if (rc == 0) {
		/* the project's figures, as status shows them: the ledger's */
		json_t *sum = json_object_get(out, "summary");
		json_object_set_new(sum, "tokens_in", json_integer(costs.tokens_in));
		json_object_set_new(sum, "tokens_out", json_integer(costs.tokens_out));
		json_object_set_new(sum, "cost_usd", json_real(costs.cost_usd));
		json_object_set_new(sum, "workers_usd", json_real(costs.workers_usd));
	}
	if (rc == 0 && json_is_true(json_object_get(th, "cancel_pending"))) {
		/* cancelled while it waited: its next run would say so */
		json_t *sum = json_object_get(out, "summary");
		const char *stage = json_string_value(json_object_get(sum, "stage"));
		if (!stage || (strcmp(stage, "done") != 0 && strcmp(stage, "stopped") != 0))
			json_object_set_new(sum, "stage", json_string("cancelled"));
	}
	json_decref(th);
	json_decref(state);
	nd_costs_free(&costs);
	if (rc < 0) {
		json_decref(out);
		return rc;
	}
	*result = out;
	return 0;
}

int cmd_show(int argc, char **argv)
{
	const char *target = NULL;
	int as_json = 0, rc;
	json_t *out = NULL;
	pg_conn *c;

	rc = cli_target_args(argc, argv, USAGE, NULL, NULL, &target, &as_json);
	if (rc >= 0)
		return rc;
	c = cli_db();
	if (!c)
		return 1;
	rc = cli_show_json(c, target, &out);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("show");
	if (as_json) {
		/* the summary and the parts people read; the whole state is in `state` */
		cli_print_json(out);
	} else {
		print_human(out);
	}
	json_decref(out);
	return 0;
}
