/*
 * bin/orchestrator — one binary, one subcommand per role or action.
 */
#include "bot/route.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/util.h"
#include "nodes/report.h"
#include "spawner/spawner.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ORCH_VERSION "0.1.0"

orch_config cli_cfg;

typedef struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} command;

static const command commands[] = {
	{"serve", cmd_serve, "run every role in one process (the single-machine default)"},
	{"engine", cmd_serve, "run the graph engine only (scale out: several may share a database)"},
	{"bot", cmd_bot, "run the Telegram bot only (long polling, approvals, delivery)"},
	{"chat", cmd_chat, "talk to orchestrator in this terminal (no Telegram needed)"},
	{"new", cmd_new, "start a project from the terminal: orchestrator new \"idea\""},
	{"approve", cmd_approve, "answer a project's question affirmatively (approve, merge, retry)"},
	{"reject", cmd_approve, "answer a project's question negatively (reject, cancel, stop)"},
	{"show", cmd_show, "a project's history: conversation, decisions, tasks, workers, cost"},
	{"logs", cmd_logs, "what a worker's agent did, step by step; -f follows it live"},
	{"demo", cmd_demo, "see the factory build a sample project (recorded model replies)"},
	{"eval", cmd_eval, "measure the factory on the eval tasks: eval run [--live | --replay DIR]"},
	{"migrate", cmd_migrate, "create or update the database schema"},
	{"status", cmd_status, "projects, open questions, runs, engines, models (--json)"},
	{"threads", cmd_threads, "list threads with their latest run"},
	{"history", cmd_history, "a thread's checkpoints, newest first"},
	{"state", cmd_state, "a thread's state at its latest or a given checkpoint"},
	{"fork", cmd_fork, "start a new run from an old checkpoint of a thread"},
	{"run", cmd_run, "show one run"},
	{"cancel", cmd_cancel, "cancel a project: its runs, questions and workers (or --run)"},
	{"retry", cmd_retry, "queue a failed or cancelled run again from its last checkpoint"},
	{"prune", cmd_prune, "delete old checkpoints of finished threads (retention)"},
	{"graph", cmd_graph, "a graph's nodes and transitions, drawn (--mermaid, --dot)"},
	{"secrets", cmd_secrets, "the encrypted secrets store: init, set, list, rm, rotate-key"},
	{"resources", cmd_resources, "handles that grant secrets to a project's workers"},
	{"llm", cmd_llm, "language models: the registry, a test call, budgets"},
	{"models", cmd_modelcfg, "the model configuration in the database, changed while running"},
	{"web", cmd_web, "the dashboard alone; login tokens for it (web token --user NAME)"},
	{"spawner", cmd_spawner, "run the spawner role: spawn requests from Redis to sandboxed workers"},
	{"sandbox", cmd_sandbox, "run one command in a sandbox (sandbox run -- CMD), sweep leftovers"},
	{"mcp", cmd_mcp, "the factory as an MCP server on stdin/stdout, for IDE agents"},
	{"healthcheck", cmd_healthcheck, "ask a role's /healthz (exit 0 when healthy): for health checks"},
	{NULL, NULL, NULL},
};

/* Commands that print stored text: their stdout passes the secrets filter. */
static const char *const filtered[] = {"new",     "approve", "reject", "show", "logs",
				       "status",  "threads", "history", "state", "fork",
				       "run",     "cancel",  "retry",   NULL};

static int is_filtered(const char *name)
{
	for (const char *const *f = filtered; *f; f++)
		if (strcmp(*f, name) == 0)
			return 1;
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out, "orchestrator %s — a self-hosted software factory\n\n"
		     "usage: orchestrator <command> [options]\n\ncommands:\n",
		ORCH_VERSION);
	for (const command *c = commands; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fprintf(out, "\n'orchestrator <command> --help' describes a command. Configuration comes "
		     "from the environment\n(DATABASE_URL, REDIS_URL, ORCH_DATA_DIR, ...); see "
		     "README.md.\n");
}

pg_conn *cli_db(void)
{
	pg_conn *c = NULL;

	if (pg_conn_open(&c, cli_cfg.database_url) < 0) {
		fprintf(stderr, "orchestrator: %s\n", err_last());
		return NULL;
	}
	return c;
}

int cli_fail(const char *what)
{
	fprintf(stderr, "orchestrator: %s: %s\n", what, err_last());
	if (err_last_code() == ERR_DB && pg_last_sqlstate_is(PG_SQLSTATE_UNDEFINED_TABLE) &&
	    !strstr(err_last(), "orchestrator migrate"))
		fprintf(stderr, "orchestrator: the database lacks part of its schema: run "
				"'orchestrator migrate' first\n");
	return 1;
}

int cli_usage(const char *text)
{
	fprintf(stderr, "usage: %s\n", text);
	return 2;
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **value)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') {
		*value = argv[*i] + n + 1;
		return 1;
	}
	if (strcmp(argv[*i], name) != 0 || *i + 1 >= argc)
		return 0;
	*value = argv[++*i];
	return 1;
}

int cli_flag(char **argv, int i, const char *name)
{
	return strcmp(argv[i], name) == 0;
}

int cli_target_args(int argc, char **argv, const char *usage, const char *opt,
		    const char **opt_value, const char **target, int *as_json)
{
	*target = NULL;
	*as_json = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (opt && cli_opt(argc, argv, &i, opt, &v))
			*opt_value = v;
		else if (cli_flag(argv, i, "--json"))
			*as_json = 1;
		else if (cli_flag(argv, i, "--help")) {
			puts(usage);
			return 0;
		} else if (argv[i][0] == '-' || *target)
			return cli_usage(usage);
		else
			*target = argv[i];
	}
	if (!*target)
		return cli_usage(usage);
	return -1;
}

int cli_name_args(int argc, char **argv, const char *usage, const char *flag, int *flag_set,
		  const char **name)
{
	*name = NULL;
	*flag_set = 0;
	for (int i = 1; i < argc; i++) {
		if (cli_flag(argv, i, flag)) {
			*flag_set = 1;
			continue;
		}
		if (argv[i][0] != '-' && !*name) {
			*name = argv[i];
			continue;
		}
		return cli_usage(usage);
	}
	if (!*name)
		return cli_usage(usage);
	return -1;
}

int cli_actions(int argc, char **argv, const char *cmd, const char *usage,
		const cli_action *actions)
{
	const char *action = argc > 1 ? argv[1] : NULL;

	if (!action)
		return cli_usage(usage);
	if (strcmp(action, "--help") == 0 || strcmp(action, "help") == 0) {
		puts(usage);
		return 0;
	}
	for (const cli_action *a = actions; a->name; a++)
		if (strcmp(action, a->name) == 0 || (a->alias && strcmp(action, a->alias) == 0))
			return a->run(argc - 1, argv + 1);
	fprintf(stderr, "orchestrator: %s: unknown action '%s'\n", cmd, action);
	return cli_usage(usage);
}

int64_t cli_int(const char *s)
{
	int64_t v;

	if (cfg_parse_int(s, &v) < 0 || v < 0)
		return -1;
	return v;
}

void cli_print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);

	if (s) {
		puts(s);
		free(s);
	}
}

void cli_fmt_age(double s, char *out, size_t cap)
{
	long t = (long)s;

	if (s < 60)
		snprintf(out, cap, "%.1fs", s);
	else if (s < 3600)
		snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
	else if (s < 86400)
		snprintf(out, cap, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
	else
		snprintf(out, cap, "%ldd%02ldh", t / 86400, (t % 86400) / 3600);
}

void cli_fmt_time(int64_t ms, char *out, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0) {
		snprintf(out, cap, "never");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%d %H:%M:%SZ", &tm);
}

void cli_fmt_utc(const char *iso, char *out, size_t cap)
{
	if (!iso || strlen(iso) < 16 || iso[10] != 'T')
		snprintf(out, cap, "%s", iso ? iso : "never");
	else
		snprintf(out, cap, "%.10s %.5s UTC", iso, iso + 11);
}

void cli_unix_user(char *out, size_t cap)
{
	/* the real uid's name: not $USER or $SUDO_USER, which anyone sets */
	struct passwd pw, *found = NULL;
	char tmp[4096];

	if (getpwuid_r(getuid(), &pw, tmp, sizeof(tmp), &found) == 0 && found && found->pw_name)
		snprintf(out, cap, "%s", found->pw_name);
	else
		snprintf(out, cap, "uid %d", (int)getuid());
}

void cli_actor(char *out, size_t cap)
{
	char user[64];

	cli_unix_user(user, sizeof(user));
	snprintf(out, cap, "cli:%s", user);
}

int main(int argc, char **argv)
{
	const char *name;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("orchestrator %s\n", ORCH_VERSION);
		return 0;
	}
	if (util_init() < 0 || http_global_init() < 0) {
		fprintf(stderr, "orchestrator: %s\n", err_last());
		return 1;
	}
	if (cfg_load(&cli_cfg) < 0) {
		fprintf(stderr, "orchestrator: configuration: %s\n", err_last());
		return 2;
	}
	log_configure(cli_cfg.log_level, cli_cfg.log_text);
	/* the chat's /status reports factory projects as `orchestrator status` does */
	bot_set_report(nd_report_project);
	/* a cancelled project's workers stop (bot/ does not know the spawner) */
	bot_set_cancel_workers(spw_cancel_thread);
	cli_wire_factory();
	name = argv[1];
	for (const command *c = commands; c->name; c++) {
		int rc;

		if (strcmp(c->name, name) != 0)
			continue;
		/* what a command prints from the database passes the secrets filter */
		if (is_filtered(name) && !(argc > 2 && strcmp(argv[2], "--help") == 0) &&
		    cli_filter_output())
			return 1;
		rc = c->fn(argc - 1, argv + 1);
		cli_filter_output_end();
		return rc;
	}
	fprintf(stderr, "orchestrator: unknown command '%s'\n\n", name);
	usage(stderr);
	return 2;
}
