/* orchestrator status — what the factory is doing, from a terminal. */
#include "cli/cli.h"
#include "core/err.h"
#include "engine/control.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char USAGE[] =
	"orchestrator status [--json]\n"
	"  Threads, runs by state, the oldest waiting and queued runs, live engines,\n"
	"  recent failures and the outbox backlog. --json prints the same for scripts.";

static long long num(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
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
	printf("threads         %lld\n", num(st, "threads"));
	printf("runs            queued %lld   running %lld   waiting %lld   done %lld   failed %lld"
	       "   cancelled %lld\n",
	       num(runs, "queued"), num(runs, "running"), num(runs, "waiting"), num(runs, "done"),
	       num(runs, "failed"), num(runs, "cancelled"));
	if (json_is_object(w)) {
		cli_fmt_age(real(w, "age_s"), age, sizeof(age));
		join_strings(json_object_get(w, "waiting_on"), list, sizeof(list));
		printf("oldest waiting  run %lld on %s for %s, waiting on %s\n", num(w, "run"),
		       str(w, "thread"), age, list[0] ? list : "?");
	} else {
		printf("oldest waiting  none\n");
	}
	if (json_is_object(q)) {
		cli_fmt_age(real(q, "age_s"), age, sizeof(age));
		printf("oldest queued   run %lld on %s for %s\n", num(q, "run"), str(q, "thread"), age);
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
		       str(e, "id"), json_is_true(json_object_get(e, "alive")) ? "alive" : "gone",
		       num(e, "threads"), num(e, "runs_held"), age, list[0] ? list : "none");
	}
	if (num(st, "expired_leases") > 0)
		printf("expired leases  %lld (their engines died; a live engine takes them over)\n",
		       num(st, "expired_leases"));
	printf("outbox          pending %lld   dead %lld\n", num(ob, "pending"), num(ob, "dead"));
	if (json_array_size(fails) > 0) {
		printf("recent failures\n");
		json_array_foreach(fails, i, e) {
			printf("  run %lld on %s%s%s: %s\n", num(e, "run"), str(e, "thread"),
			       *str(e, "node") ? " at node " : "", str(e, "node"), str(e, "error"));
		}
	}
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
	rc = eng_status(c, cli_cfg.lease_ms, &st);
	pg_conn_close(c);
	if (rc < 0) {
		if (strstr(err_last(), "does not exist"))
			fprintf(stderr, "orchestrator: the database has no schema yet: run "
					"'orchestrator migrate' first\n");
		return cli_fail("status");
	}
	if (as_json)
		cli_print_json(st);
	else
		print_human(st);
	json_decref(st);
	return 0;
}
