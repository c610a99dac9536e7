/* orchestrator status — what the factory is doing, from a terminal. */
#include "cli/cli.h"
#include "core/err.h"
#include "core/health.h"
#include "core/jsonx.h"
#include "engine/control.h"
#include "engine/deadletter.h"
#include "llm/ledger.h"
#include "nodes/factory.h"
#include "nodes/report.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char USAGE[] =
	"orchestrator status [--json] [--all | --limit N]\n"
	"  The factory's projects (stage, tasks, workers, open questions, tokens, cost) and\n"
	"  the questions waiting for an answer ('orchestrator approve <id>'); threads, runs\n"
	"  by state, the oldest waiting and queued runs, live engines, the health of each\n"
	"  long-running process, recent failures, dead letters and the outbox backlog;\n"
	"  language models: slots, queues and waits per endpoint (and the slots a\n"
	"  llama.cpp server reports beside them), tokens and cost per project and per\n"
	"  model, budgets.\n"
	"  Every project waiting for an answer is listed; the others fill up to 20 rows\n"
	"  (--limit N: N, --all: every project), with a count of those not shown.\n"
	"  --json prints the same for scripts (\"projects\", \"projects_total\",\n"
	"  \"projects_not_shown\", \"questions\", \"health\", \"dead_letters\", \"llm\").";

/* The factory's projects (those waiting for an answer always, the others
 * up to `limit` in all; < 0: all) and every open question (nodes/report.h),
 * into st with how many projects there are and how many are not shown. */
static int projects(pg_conn *c, json_t *st, int limit)
{
	char graph[64];
	json_t *list = NULL, *qs = NULL;
	int64_t total = 0;
	int rc;

	if (cfg_env_str("ORCH_GRAPH", ND_GRAPH, graph, sizeof(graph)) < 0)
		snprintf(graph, sizeof(graph), "%s", ND_GRAPH);
	rc = nd_report_projects(&list, c, graph, limit, &total);
	if (rc == 0)
		rc = nd_report_questions(&qs, c, graph);
	json_object_set_new(st, "projects_total", json_integer(total));
	json_object_set_new(st, "projects_not_shown",
			    json_integer(total - (int64_t)json_array_size(list)));
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
	if (jx_int(st, "projects_not_shown") > 0)
		printf("  … and %lld more project(s), none waiting for an answer ('orchestrator status "
		       "--all' lists every one, --limit N the N most recent)\n",
		       jx_int(st, "projects_not_shown"));
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

static void one_line(const char *text, char *out, size_t cap);

/* The long-running processes as they last reported (core/health.h): each
 * part that is degraded or down in a live process, and processes that
 * stopped reporting without saying goodbye. */
static void print_health(const json_t *h)
{
	size_t i, alive = 0, bad = 0, gone = 0;
	json_t *p;

	if (!json_is_array(h)) {
		printf("processes       unknown: %s\n", jx_str(h, "error"));
		return;
	}
	json_array_foreach(h, i, p) {
		int live = json_is_true(json_object_get(p, "alive"));
		alive += live;
		gone += !live && json_number_value(json_object_get(p, "age_s")) < 3600;
		bad += live && strcmp(jx_str(p, "worst"), "ok") != 0;
	}
	printf("processes       %zu reporting, %zu with a problem%s", alive, bad,
	       alive ? "" : " (none of serve, engine, bot, spawner runs, or none reports)");
	if (gone)
		printf(", %zu gone silent in the last hour", gone);
	printf("\n");
	json_array_foreach(h, i, p) {
		char age[32], reason[300];
		const char *name;
		json_t *part;

		cli_fmt_age(json_number_value(json_object_get(p, "age_s")), age, sizeof(age));
		if (!json_is_true(json_object_get(p, "alive"))) {
			if (json_number_value(json_object_get(p, "age_s")) < 3600)
				printf("  %-32s gone: no report for %s (it died, or cannot reach the "
				       "database)\n",
				       jx_str(p, "process"), age);
			continue;
		}
		json_object_foreach(json_object_get(p, "parts"), name, part) {
			char since[32] = "";
			int64_t at = json_integer_value(json_object_get(part, "since_ms"));

			if (strcmp(jx_str(part, "state"), "ok") == 0)
				continue;
			if (at > 0) {
				struct timespec now;
				clock_gettime(CLOCK_REALTIME, &now);
				cli_fmt_age(((double)now.tv_sec * 1000.0 + (double)now.tv_nsec / 1e6 -
					     (double)at) / 1000.0,
					    since, sizeof(since));
			}
			one_line(jx_str(part, "reason"), reason, sizeof(reason));
			printf("  %-32s %-8s %s for %s: %s\n", jx_str(p, "process"),
			       jx_str(part, "state"), name, since[0] ? since : "?", reason);
		}
	}
}

/* `text` on one line (newlines and tabs as spaces, runs of them as one),
 * cut to cap - 1 bytes without splitting a UTF-8 sequence. */
static void one_line(const char *text, char *out, size_t cap)
{
	size_t k = 0;
	int space = 0;

	for (const char *p = text; *p && k + 1 < cap; p++) {
		int ws = *p == '\n' || *p == '\r' || *p == '\t' || *p == ' ';
		if (ws && space)
			continue;
		space = ws;
		out[k++] = ws ? ' ' : *p;
	}
	while (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0x80)
		k--;
	if (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0xc0)
		k--;
	out[k] = '\0';
}

/* Items from outside that were set aside (engine/deadletter.h). */
static void print_dead_letters(const json_t *dl)
{
	size_t i;
	json_t *e;

	if (!json_is_object(dl) || jx_int(dl, "count") == 0)
		return;
	printf("dead letters    %lld set aside (%lld in the last 24 h), never retried; newest:\n",
	       jx_int(dl, "count"), jx_int(dl, "last_24h"));
	json_array_foreach(json_object_get(dl, "newest"), i, e) {
		char reason[160];

		one_line(jx_str(e, "reason"), reason, sizeof(reason));
		printf("  #%-5lld %s %-16.16s %s %s\n", jx_int(e, "id"), jx_str(e, "at"),
		       jx_str(e, "source"), jx_str(e, "ref"), reason);
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
	print_health(json_object_get(st, "health"));
	printf("outbox          pending %lld   dead %lld\n", jx_int(ob, "pending"),
	       jx_int(ob, "dead"));
	print_dead_letters(json_object_get(st, "dead_letters"));
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

int cli_status_json(pg_conn *c, int limit, json_t **out)
{
	json_t *st = NULL;
	int rc;

	*out = NULL;
	rc = eng_status(c, cli_cfg.lease_ms, &st);
	if (rc == 0 && projects(c, st, limit) < 0) {
		json_object_set_new(st, "projects_error", json_string(err_last()));
		err_clear();
	}
	if (rc == 0) {
		json_t *h = NULL, *dl = NULL;
		/* a process is gone after three publication intervals without a word */
		if (health_status(c, cli_health_interval_ms() * 3, &h) == 0)
			json_object_set_new(st, "health", h);
		else
			json_object_set_new(st, "health", json_pack("{ss}", "error", err_last()));
		if (eng_dead_letters_status(c, 5, &dl) == 0)
			json_object_set_new(st, "dead_letters", dl);
		else
			json_object_set_new(st, "dead_letters", json_pack("{ss}", "error", err_last()));
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
	int as_json = 0, limit = 20;
	json_t *st = NULL;
	pg_conn *c;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_flag(argv, i, "--json")) {
			as_json = 1;
			continue;
		}
		if (cli_flag(argv, i, "--all")) {
			limit = -1;
			continue;
		}
		if (cli_opt(argc, argv, &i, "--limit", &v)) {
			int64_t n = strcmp(v, "0") == 0 ? 0 : cli_int(v);
			if (n < 0 || n > 1000000)
				return cli_usage(USAGE);
			limit = (int)n;
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
	rc = cli_status_json(c, limit, &st);
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
