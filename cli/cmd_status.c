/* orchestrator status — what the factory is doing, from a terminal. */
#include "cli/cli.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "engine/control.h"
#include "llm/ledger.h"
#include "nodes/factory.h"
#include "nodes/report.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char USAGE[] =
	"orchestrator status [--json]\n"
	"  The factory's projects (stage, tasks, workers, open questions, tokens, cost) and\n"
	"  the questions waiting for an answer ('orchestrator approve <id>'); threads, runs\n"
	"  by state, the oldest waiting and queued runs, live engines, recent failures and\n"
	"  the outbox backlog; language models: slots, queues and waits per endpoint (and\n"
	"  the slots a llama.cpp server reports beside them),\n"
	"  tokens and cost per project and per model, budgets.\n"
	"  --json prints the same for scripts (\"projects\", \"questions\", \"llm\").";

/* The factory's projects and their open questions (nodes/report.h), into st. */
static int projects(pg_conn *c, json_t *st)
{
	char graph[64];
	json_t *list = NULL, *qs = NULL;
	int rc;

	if (cfg_env_str("ORCH_GRAPH", ND_GRAPH, graph, sizeof(graph)) < 0)
		snprintf(graph, sizeof(graph), "%s", ND_GRAPH);
	rc = nd_report_projects(&list, c, graph);
	if (rc == 0)
		rc = nd_report_questions(&qs, c, graph);
	json_object_set_new(st, "projects", list ? list : json_array());
	json_object_set_new(st, "questions", qs ? qs : json_array());
	return rc;
}

/* One line per running worker: task, the agent's step, its last command
 * (or the phase before the agent runs) and how fresh that is. */
static void print_workers(const json_t *list)
{
	size_t i;
	json_t *w;

	json_array_foreach(list, i, w) {
		const char *action = json_string_value(json_object_get(w, "action"));
		const char *phase = json_string_value(json_object_get(w, "phase"));
		json_int_t age = json_integer_value(json_object_get(w, "progress_age_ms"));
		char ran[32], seen[32] = "";

		cli_fmt_age((double)json_integer_value(json_object_get(w, "running_ms")) / 1000.0, ran,
			    sizeof(ran));
		if (age >= 0) {
			char a[24];
			cli_fmt_age((double)age / 1000.0, a, sizeof(a));
			snprintf(seen, sizeof(seen), ", %s ago", a);
		}
		printf("    worker %-14s task %-12s running %s, step %lld%s: %.70s\n",
		       json_string_value(json_object_get(w, "id")),
		       json_string_value(json_object_get(w, "task")), ran, jx_int(w, "step"), seen,
		       action && *action ? action
		       : phase && *phase ? phase
					 : "starting");
	}
}

static void print_projects(const json_t *st)
{
	const json_t *list = json_object_get(st, "projects"), *p;
	const json_t *qs = json_object_get(st, "questions");
	size_t i;

	printf("\nprojects\n");
	if (json_array_size(list) == 0) {
		printf("  none yet: describe an idea in Telegram, in 'orchestrator chat', or with "
		       "'orchestrator new \"...\"'\n");
		return;
	}
	printf("  %-22s %-18s %-12s %-16s %7s %9s %10s %10s\n", "PROJECT", "NAME", "STAGE",
	       "TASKS", "WORKERS", "QUESTIONS", "TOKENS", "COST");
	json_array_foreach(list, i, p) {
		const json_t *t = json_object_get(p, "tasks");
		const char *name = json_string_value(json_object_get(p, "name"));
		char tasks[48];

		if (json_integer_value(json_object_get(t, "total")) > 0)
			snprintf(tasks, sizeof(tasks), "%lld/%lld merged", jx_int(t, "merged"),
				 jx_int(t, "total"));
		else
			snprintf(tasks, sizeof(tasks), "-");
		printf("  %-22.22s %-18.18s %-12s %-16s %7lld %9lld %10lld %10.4f\n",
		       json_string_value(json_object_get(p, "key")),
		       name ? name : json_string_value(json_object_get(p, "title")),
		       *json_string_value(json_object_get(p, "stage"))
			   ? json_string_value(json_object_get(p, "stage"))
			   : "new",
		       tasks, jx_int(p, "workers"), jx_int(p, "questions"),
		       (long long)(json_integer_value(json_object_get(p, "tokens_in")) +
				   json_integer_value(json_object_get(p, "tokens_out"))),
		       json_number_value(json_object_get(p, "cost_usd")));
		print_workers(json_object_get(p, "worker_list"));
	}
	if (json_array_size(qs) == 0)
		return;
	printf("open questions ('orchestrator approve|reject <id or project>')\n");
	json_array_foreach(qs, i, p) {
		if (json_is_integer(json_object_get(p, "id")))
			printf("  #%-6lld %-22s %.100s\n", jx_int(p, "id"),
			       json_string_value(json_object_get(p, "project")),
			       json_string_value(json_object_get(p, "question")));
		else
			printf("  %-7s %-22s %.100s\n", "(new)",
			       json_string_value(json_object_get(p, "project")),
			       json_string_value(json_object_get(p, "question")));
	}
}

static double real(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static void join_strings(const json_t *arr, char *out, size_t cap)
{
	size_t i, used = 0;
	json_t *v;

	out[0] = '\0';
	json_array_foreach(arr, i, v) {
		int n = snprintf(out + used, cap - used, "%s%s", i ? ", " : "",
				 json_string_value(v) ? json_string_value(v) : "");
		if (n < 0 || (size_t)n >= cap - used)
			break;
		used += (size_t)n;
	}
}

static void print_human(const json_t *st)
{
	const json_t *runs = json_object_get(st, "runs");
	const json_t *w = json_object_get(st, "oldest_waiting");
	const json_t *q = json_object_get(st, "oldest_queued");
	const json_t *engines = json_object_get(st, "engines");
	const json_t *fails = json_object_get(st, "recent_failures");
	const json_t *ob = json_object_get(st, "outbox");
	char age[32], list[256], when[64];
	time_t now = time(NULL);
	struct tm tm;
	size_t i, alive = 0;
	json_t *e;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	printf("orchestrator status — %s\n\n", when);
	printf("threads         %lld\n", jx_int(st, "threads"));
	printf("runs            queued %lld   running %lld   waiting %lld   done %lld   failed %lld"
	       "   cancelled %lld\n",
	       jx_int(runs, "queued"), jx_int(runs, "running"), jx_int(runs, "waiting"),
	       jx_int(runs, "done"), jx_int(runs, "failed"), jx_int(runs, "cancelled"));
	if (json_is_object(w)) {
		cli_fmt_age(real(w, "age_s"), age, sizeof(age));
		join_strings(json_object_get(w, "waiting_on"), list, sizeof(list));
		printf("oldest waiting  run %lld on %s for %s, waiting on %s\n", jx_int(w, "run"),
		       jx_str(w, "thread"), age, list[0] ? list : "?");
	} else {
		printf("oldest waiting  none\n");
	}
	if (json_is_object(q)) {
		cli_fmt_age(real(q, "age_s"), age, sizeof(age));
		printf("oldest queued   run %lld on %s for %s\n", jx_int(q, "run"),
		       jx_str(q, "thread"), age);
	} else {
		printf("oldest queued   none\n");
	}
	json_array_foreach(engines, i, e) {
		if (json_is_true(json_object_get(e, "alive")))
			alive++;
	}
	printf("engines         %zu alive\n", alive);
	json_array_foreach(engines, i, e) {
		cli_fmt_age(real(e, "heartbeat_age_s"), age, sizeof(age));
		join_strings(json_object_get(e, "graphs"), list, sizeof(list));
		printf("  %-32s %-5s %lld threads, %lld runs held, heartbeat %s ago, graphs %s\n",
		       jx_str(e, "id"),
		       json_is_true(json_object_get(e, "alive")) ? "alive" : "gone",
		       jx_int(e, "threads"), jx_int(e, "runs_held"), age, list[0] ? list : "none");
	}
	if (jx_int(st, "expired_leases") > 0)
		printf("expired leases  %lld (their engines died; a live engine takes them over)\n",
		       jx_int(st, "expired_leases"));
	printf("outbox          pending %lld   dead %lld\n", jx_int(ob, "pending"),
	       jx_int(ob, "dead"));
	if (json_array_size(fails) > 0) {
		printf("recent failures\n");
		json_array_foreach(fails, i, e) {
			printf("  run %lld on %s%s%s: %s\n", jx_int(e, "run"), jx_str(e, "thread"),
			       *jx_str(e, "node") ? " at node " : "", jx_str(e, "node"),
			       jx_str(e, "error"));
		}
	}
}

static void print_llm(const json_t *llm)
{
	const json_t *sch = json_object_get(llm, "schedulers");
	const json_t *day = json_object_get(llm, "last_24h");
	const json_t *budgets = json_object_get(llm, "budgets");
	char wait[32], maxw[32], old[32];
	size_t i;
	json_t *e;

	printf("\nlanguage models\n");
	if (json_array_size(sch) == 0) {
		printf("slots           no serving process reports (none running, or none has made a "
		       "call yet)\n");
	} else {
		printf("slots           %-26s %-14s %9s %7s %9s %9s %9s %9s\n", "process", "endpoint",
		       "in flight", "queued", "granted", "avg wait", "max wait", "oldest");
		json_array_foreach(sch, i, e) {
			cli_fmt_age(real(e, "wait_avg_ms") / 1000.0, wait, sizeof(wait));
			cli_fmt_age(real(e, "wait_max_ms") / 1000.0, maxw, sizeof(maxw));
			cli_fmt_age(real(e, "oldest_wait_ms") / 1000.0, old, sizeof(old));
			printf("                %-26.26s %-14s %5lld/%-3lld %7lld %9lld %9s %9s "
			       "%9s%s\n",
			       jx_str(e, "instance"), jx_str(e, "endpoint"), jx_int(e, "in_flight"),
			       jx_int(e, "slots"), jx_int(e, "queued"), jx_int(e, "granted"), wait,
			       maxw, jx_int(e, "queued") > 0 ? old : "-",
			       json_is_true(json_object_get(e, "stale"))
				   ? "  (stale: process gone?)"
				   : "");
			if (jx_int(e, "server_slots") > 0) /* what the server itself reports */
				printf("                %-26s %-14s server: %lld of %lld slots busy, "
				       "%lld tokens of context each\n", "", "", jx_int(e, "server_busy"),
				       jx_int(e, "server_slots"), jx_int(e, "server_ctx"));
		}
	}
	printf("last 24 hours   %lld calls, %lld tokens in, %lld out, $%.4f, %lld failed\n",
	       jx_int(day, "calls"), jx_int(day, "tokens_in"), jx_int(day, "tokens_out"),
	       real(day, "cost_usd"), jx_int(day, "failures"));
	if (json_array_size(json_object_get(llm, "projects")) > 0) {
		printf("by project      %-24s %8s %12s %12s %12s %8s\n", "project", "calls", "tokens in",
		       "tokens out", "cost $", "failed");
		json_array_foreach(json_object_get(llm, "projects"), i, e)
			printf("                %-24s %8lld %12lld %12lld %12.4f %8lld\n",
			       jx_str(e, "project"), jx_int(e, "calls"), jx_int(e, "tokens_in"),
			       jx_int(e, "tokens_out"), real(e, "cost_usd"), jx_int(e, "failures"));
	}
	if (json_array_size(json_object_get(llm, "models")) > 0) {
		printf("by model        %-24s %8s %12s %12s %12s %8s %9s\n", "model @ endpoint", "calls",
		       "tokens in", "tokens out", "cost $", "failed", "avg ms");
		json_array_foreach(json_object_get(llm, "models"), i, e) {
			char name[160];
			snprintf(name, sizeof(name), "%s @ %s", jx_str(e, "model"),
				 jx_str(e, "endpoint"));
			printf("                %-24s %8lld %12lld %12lld %12.4f %8lld %9.0f\n",
			       name, jx_int(e, "calls"), jx_int(e, "tokens_in"),
			       jx_int(e, "tokens_out"), real(e, "cost_usd"), jx_int(e, "failures"),
			       real(e, "latency_avg_ms"));
		}
	}
	json_array_foreach(budgets, i, e) {
		char resets[64] = "";
		if (strcmp(jx_str(e, "period"), "total") != 0 && *jx_str(e, "period")) {
			char at[32];
			cli_fmt_utc(json_string_value(json_object_get(e, "resets_at")), at, sizeof(at));
			snprintf(resets, sizeof(resets), ", resets %s", at);
		}
		printf("%s%-7s %-24s $%.4f spent, $%.4f reserved of $%.4f %s%s%s\n",
		       i == 0 ? "budgets         " : "                ", jx_str(e, "kind"),
		       jx_str(e, "scope"), real(e, "spent_usd"), real(e, "reserved_usd"),
		       real(e, "limit_usd"), llm_budget_period_words(jx_str(e, "period")), resets,
		       real(e, "spent_usd") + real(e, "reserved_usd") >= real(e, "limit_usd")
			   ? "  (exhausted)"
			   : "");
	}
}

int cli_status_json(pg_conn *c, json_t **out)
{
	json_t *st = NULL;
	int rc;

	*out = NULL;
	rc = eng_status(c, cli_cfg.lease_ms, &st);
	if (rc == 0 && projects(c, st) < 0) {
		json_object_set_new(st, "projects_error", json_string(err_last()));
		err_clear();
	}
	if (rc == 0) {
		json_t *llm = NULL;
		int64_t stale_ms;
		/* figures older than three save intervals belong to a process that is gone */
		if (cfg_env_duration_ms("ORCH_LLM_STATS_INTERVAL", 5000, 100, 3600000, &stale_ms) < 0)
			stale_ms = 5000;
		if (llm_status(c, stale_ms * 3, &llm) == 0)
			json_object_set_new(st, "llm", llm);
		else
			json_object_set_new(st, "llm", json_pack("{ss}", "error", err_last()));
	}
	*out = st;
	return rc;
}

int cmd_status(int argc, char **argv)
{
	int as_json = 0;
	json_t *st = NULL;
	pg_conn *c;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (cli_flag(argv, i, "--json")) {
			as_json = 1;
			continue;
		}
		if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 0;
		}
		return cli_usage(USAGE);
	}
	c = cli_db();
	if (!c)
		return 1;
	rc = cli_status_json(c, &st);
	pg_conn_close(c);
	if (rc < 0) {
		if (strstr(err_last(), "does not exist"))
			fprintf(stderr, "orchestrator: the database has no schema yet: run "
					"'orchestrator migrate' first\n");
		return cli_fail("status");
	}
	if (as_json)
		cli_print_json(st);
	else {
		print_human(st);
		print_projects(st);
		if (json_object_get(json_object_get(st, "llm"), "error"))
			printf("\nlanguage models: %s (run 'orchestrator migrate')\n",
			       jx_str(json_object_get(st, "llm"), "error"));
		else
			print_llm(json_object_get(st, "llm"));
	}
	json_decref(st);
	return 0;
}
