/*
 * cli — what the subcommands of bin/orchestrator share: the loaded
 * configuration, opening the database, option parsing and printing.
 * One file per subcommand (cmd_*.c) implements `int cmd_NAME(int argc,
 * char **argv)` returning the process exit status.
 */
#ifndef ORCH_CLI_CLI_H
#define ORCH_CLI_CLI_H

#include <jansson.h>
#include <signal.h>
#include <stdint.h>

#include "core/config.h"
#include "core/pg.h"

/* The configuration loaded by main() before a subcommand runs. */
extern orch_config cli_cfg;

/* Opens a connection to DATABASE_URL, printing the reason on failure.
 * Returns NULL on failure. */
pg_conn *cli_db(void);

/* Prints "orchestrator: <what>: <err_last()>" to stderr and returns 1. */
int cli_fail(const char *what);

/* Prints a usage error and returns 2. */
int cli_usage(const char *usage);

/* True when argv[i] is `name` and a value follows; advances *i past it. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **value);

/* True when argv[*i] is the flag `name`. */
int cli_flag(char **argv, int i, const char *name);

/* The arguments of a command on one thing, "<target> [--json]" and, when
 * `opt` is not NULL, "[<opt> VALUE]" (into *opt_value, left alone when
 * absent); --help prints `usage`. -1 when the command goes on with *target
 * set; otherwise the exit status to return: 0 after --help, 2 after a
 * usage error (no target, a second one, an unknown option). */
int cli_target_args(int argc, char **argv, const char *usage, const char *opt,
		    const char **opt_value, const char **target, int *as_json);

/* The arguments of an action on one thing, "NAME [<flag>]": *name, and
 * *flag_set 1 when the flag is given. -1 when the action goes on;
 * otherwise 2 after printing `usage` (no NAME, a second one, anything
 * else). */
int cli_name_args(int argc, char **argv, const char *usage, const char *flag, int *flag_set,
		  const char **name);

/* An action of a command with actions ("secrets set", "resources list"):
 * its name, another name for it (NULL: none), and the function that runs
 * it with argv[0] the action. */
typedef struct cli_action {
	const char *name;
	const char *alias;
	int (*run)(int argc, char **argv);
} cli_action;

/* Runs the action argv[1] from `actions` (ended by a NULL name) with the
 * arguments after the command. No action: usage (2); "--help" or "help":
 * prints `usage` (0); an unknown action says so, then usage (2). `cmd`
 * names the command in the message. */
int cli_actions(int argc, char **argv, const char *cmd, const char *usage,
		const cli_action *actions);

/* Parses a positive integer argument; -1 when it is not one. */
int64_t cli_int(const char *s);

/* Prints a JSON value, indented, with a newline. */
void cli_print_json(const json_t *j);

/* "3m12s", "0.4s", "2h05m" for a duration in seconds. */
void cli_fmt_age(double seconds, char *out, size_t cap);

/* "2026-11-21 20:01:02Z" for milliseconds since the epoch; "never" for 0. */
void cli_fmt_time(int64_t ms, char *out, size_t cap);

/* "2026-12-01 00:00 UTC" for an ISO 8601 UTC time ("2026-12-01T00:00:00Z",
 * as the database's JSON gives it); "never" for NULL. */
void cli_fmt_utc(const char *iso, char *out, size_t cap);

/* Who runs this command, for audit trails: "cli:NAME", NAME being the user
 * name of the process's real uid (getpwuid; never an environment variable,
 * which anyone sets), else "cli:uid N". */
void cli_actor(char *out, size_t cap);

/* The real uid's user name (or "uid N" when it has none). */
void cli_unix_user(char *out, size_t cap);

/* Installs the factory's hooks into the bot and the spawner
 * (nd_set_ops), in every program that runs or reports factory projects. */
void cli_wire_factory(void);

/* Installs the redaction filter, opens the secrets store (when `secrets
 * init` was run) and lets the LLM layer resolve endpoint keys from it.
 * Fails on a wrong or unreadable master key. Call before other threads. */
int cli_start_secrets(pg_pool *pool);

/* Makes everything this command prints on stdout pass the secrets filter:
 * loads the secrets (as cli_start_secrets, on a pool of its own) and puts a
 * stream in place of stdout that redacts what is written, whole lines at a
 * time. 0, or 1 after printing why the secrets cannot be loaded: what a
 * command would print is then not printed at all. */
int cli_filter_output(void);

/* Flushes the filtered output and restores stdout. */
void cli_filter_output_end(void);

/* Blocks SIGINT and SIGTERM in this thread and in the threads it starts
 * after, for the caller to take them with sigwait (they go into *sigs),
 * and ignores SIGPIPE. */
void cli_block_signals(sigset_t *sigs);

/* What a long-running role opens first, in this order: a database pool of
 * `pool_size` connections, the secrets (cli_start_secrets) and the
 * language models (a broken models file stops start-up, not the first
 * call). 0, or 1 after printing why (cli_fail). *pool and *llm are the
 * caller's in every case (NULL where not reached): free them with
 * llm_service_free, sec_runtime_stop and pg_pool_free. */
struct llm_service;
int cli_role_start(int pool_size, pg_pool **pool, struct llm_service **llm);

/* Publishes the health registry of this long-running process (core/health.h)
 * as `role` every ORCH_HEALTH_INTERVAL (5 s), for `status`. NULL (after a
 * warning) when the publisher cannot start; health_pub_stop it at the end. */
struct health_pub;
struct health_pub *cli_health_start(pg_pool *pool, const char *role);

/* The live streams of this process (engine/stream.h): a hub in *hub,
 * connected to the other processes through Redis (bot/live.h): this
 * process's events published (`publish`, in the modes of
 * ORCH_STREAM_MODES), theirs taken in (`subscribe`: of thread `thread_id`,
 * or of every thread when 0). A Redis that is not up is waited for in the
 * background. 0, or 1 after printing why (a bad ORCH_STREAM_MODES). Stop
 * them with cli_streams_stop after everything that uses the hub. */
struct eng_stream_hub;
struct bot_live;
int cli_streams_start(pg_pool *pool, int publish, int subscribe, int64_t thread_id,
		      struct eng_stream_hub **hub, struct bot_live **live);
void cli_streams_stop(struct eng_stream_hub *hub, struct bot_live *live);

/* ORCH_HEALTH_INTERVAL in milliseconds (5 s when unset or unreadable). */
int64_t cli_health_interval_ms(void);

int cmd_migrate(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_threads(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_state(int argc, char **argv);
int cmd_fork(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* `run <id> --stream`: prints run `run`'s stream (modes: a mask of
 * engine/stream.h; json: each event's wire form) until it ends or waits,
 * or SIGINT. The exit status. */
int cli_follow_run(int64_t run, unsigned modes, int json);
int cmd_cancel(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_secrets(int argc, char **argv);
int cmd_resources(int argc, char **argv);
int cmd_llm(int argc, char **argv);
int cmd_modelcfg(int argc, char **argv); /* orchestrator models */
int cmd_web(int argc, char **argv);

/* Registers the dashboard (web/app.h) with this program's backend on `s`
 * (before it starts): the caller owns *out (web_app_stop before
 * web_server_free, web_app_free after). -1 with err_last() on error. */
struct web_server;
struct web_app;
int cli_dashboard_attach(struct web_server *s, pg_pool *pool, struct web_app **out);

/* "cli:NAME" of the real uid (never $USER), for audit rows. */
void cli_audit_actor(char *out, size_t cap);
int cmd_spawner(int argc, char **argv);

/* Starts the spawner role on `pool` and `llm` (borrowed; they must outlive
 * it) with the settings of the environment (workers > 0 overrides
 * ORCH_MAX_WORKERS), after checking that this host can run workers. The
 * caller owns *out (spw_free). */
struct spw_spawner;
struct llm_service;
struct eng_stream_hub;
int cli_spawner_start(pg_pool *pool, struct llm_service *llm, int workers,
		      struct eng_stream_hub *hub, struct spw_spawner **out);
int cmd_sandbox(int argc, char **argv);
int cmd_bot(int argc, char **argv);
int cmd_healthcheck(int argc, char **argv);

/* The HTTP listener of a long-running role (web/): /healthz and /metrics on
 * ORCH_HTTP_ADDR, probing `pool` and `redis_url` (either may be NULL), and
 * for the roles "serve" and "web" the dashboard (web/app.h).
 * 0 when ORCH_HTTP_ADDR is unset (nothing started), 1 when listening, -1
 * on error (err_last()). Stop it with cli_web_stop before freeing the pool. */
struct web_server;
struct web_health;
struct web_app;
typedef struct cli_web {
	struct web_server *server;
	struct web_health *health;
	struct web_app *dash;   /* the dashboard, on the roles "serve" and "web" */
	struct cli_mcp_web *mcp; /* /mcp, on the same roles */
} cli_web;

/* /mcp (the MCP server's streamable HTTP transport) on listener `s`, before
 * it starts, for the bearer tokens of web/auth.h: the caller owns *out
 * (cli_mcp_stop before web_server_free, cli_mcp_free after). */
struct cli_mcp_web;
int cli_mcp_attach(struct web_server *s, pg_pool *pool, struct cli_mcp_web **out);
void cli_mcp_stop(struct cli_mcp_web *m);
void cli_mcp_free(struct cli_mcp_web *m);
int cli_web_start(const char *role, pg_pool *pool, const char *redis_url, cli_web *out);
void cli_web_stop(cli_web *w);
int cmd_chat(int argc, char **argv);
int cmd_new(int argc, char **argv);
int cmd_approve(int argc, char **argv); /* approve and reject */
int cmd_show(int argc, char **argv);

/* What `status --json` (with its --limit: projects not waiting for an
 * answer beyond `limit` are counted, not listed; < 0: all) and `show
 * PROJECT --json` print, for the dashboard too: *out owned by the caller
 * (status: also on a partial failure). */
int cli_status_json(pg_conn *c, int limit, json_t **out);
int cli_show_json(pg_conn *c, const char *project, json_t **out);

/* Who decides a question (cli_decide): the terminal's Unix user, or the
 * person of an MCP session. */
typedef struct cli_decider {
	const char *name;        /* recorded as who decided: "cli:ada", "mcp:ada" */
	const char *user;        /* the user name recorded beside it */
	int64_t telegram_id;     /* acts as this Telegram approver; 0: none */
	const char *op;          /* or as this Unix user (ORCH_OPERATORS maps it to
				  * approvers); NULL: none */
	const char *channel;     /* "cli" | "mcp": recorded as the decision's channel */
	const char *shown;       /* who decided, on the Telegram message */
	const char *denied_as;   /* this decider in a refusal: "the Unix user 'ada'" */
} cli_decider;

/* Decides question `target` — an approval id, or the question project
 * `target` waits for — with answer `want` (an option's id, label or number;
 * "approve"/"reject" or NULL pick the affirmative or, with `reject`, the
 * negative answer) as `who`, once and only when `who` may decide it, in one
 * transaction on `c`, exactly as a button does (a Telegram question's
 * message then loses its buttons). *out (owned): {"question", "outcome":
 * "decided" | "refused", "answer", "label", "reason", "decided_by",
 * "question_text"} (and "not_approver": true when refused for that).
 * ERR_DENIED (what to configure), ERR_NOTFOUND, ERR_CONFLICT (several open
 * questions: the message lists them), ERR_DB. */
int cli_decide(pg_conn *c, const char *target, const char *want, int reject,
	       const cli_decider *who, json_t **out);

/* Gives the terminal questions of thread `thread` that were asked but not
 * shown in a chat yet their approvals rows (ids), as showing them would.
 * In the caller's transaction. */
int cli_materialize(pg_conn *c, int64_t thread);

/* How many questions of thread `thread` (outbox kinds ending with
 * `kind_suffix`: "term.approval", ".approval") were asked but not shown in
 * a chat yet, into *out_n. */
int cli_unshown_count(pg_conn *c, int64_t thread, const char *kind_suffix, int *out_n);

int cmd_mcp(int argc, char **argv);
/* The MCP server's backend (mcp/mcp.h) of this program: stdio and /mcp. */
struct mcp_backend;
extern const struct mcp_backend cli_mcp_backend;
int cmd_logs(int argc, char **argv);

/* What the terminal front ends (chat, new) check and open first: the chat
 * `name` (no ':' or space: it is part of the chat's key), ORCH_GRAPH into
 * graph[cap], SIGPIPE ignored, a pool of two connections in *pool (the
 * caller's: pg_pool_free). 0, or the exit status after printing why: 2 for
 * a bad name, 1 otherwise. */
int cli_term_open(const char *name, char *graph, size_t cap, pg_pool **pool);

/* The conversation in this terminal (stdin, stdout) as chat `name` on
 * graph `graph` until the person leaves (bot/term.h). bot_term_run's
 * result. */
int cli_term_run(pg_pool *pool, const char *name, const char *graph, int color);

/* Starts a project with `idea` in the terminal chat `name` on graph
 * `graph`, as '/new IDEA' typed in that chat does (one transaction on `c`):
 * its thread id and number in the chat. */
int cli_new_project(pg_conn *c, const char *graph, const char *name, const char *idea,
		    int64_t *thread, int *n);

/* The same for a change to an existing repository: `change` is the input's
 * {"repo", "branch", "pr", "secret", "handle"} (bot/route.h; NULL: a new
 * project), as `orchestrator new --repo` sends it. */
int cli_new_change(pg_conn *c, const char *graph, const char *name, const char *idea,
		   const json_t *change, int64_t *thread, int *n);

/* A repository named for a change, as the input's "repo" carries it into
 * `out` (cap): an https://, http:// or ssh:// URL as it is, a local path made
 * absolute and checked to be a git repository. -1 with err_set() saying
 * what is wrong. */
int cli_change_repo(const char *repo, char *out, size_t cap);

/* Starts the Telegram bot in this process when TELEGRAM_BOT_TOKEN is set,
 * showing the replies of `hub` (may be NULL) as drafts: 1 with *out
 * running, 0 when no token is set, -1 on error (err_last()). */
struct bot;
int cli_bot_start(pg_pool *pool, struct eng_stream_hub *hub, struct bot **out);

/* --- the factory inside this process (eval run, demo: cli/inproc.c) --- */

typedef struct cli_factory cli_factory;

/* ERR_CONFLICT, saying what to do, when another engine runs on the
 * database: it would take this process's projects and answer them with its
 * own models. */
int cli_factory_alone(pg_pool *pool);

/* Starts the engine with the factory's graph and the spawner on `pool` and
 * `llm` (borrowed; they must outlive it), as `serve` does. The caller owns
 * *out (cli_factory_stop). */
int cli_factory_start(pg_pool *pool, struct llm_service *llm, cli_factory **out);

/* Stops the spawner, then the engine, and frees. NULL is a no-op. */
void cli_factory_stop(cli_factory *f);

/* The stream hub of `f`'s runs and workers (borrowed, lives as long as f;
 * NULL for NULL): what a chat in the same process subscribes to. */
struct eng_stream_hub *cli_factory_hub(cli_factory *f);

/* A language-model service on the models file `models` (borrowed; `origin`
 * names it in messages) with the settings of the environment; `identity`
 * sends each call's identity headers (the eval's record/replay server).
 * The caller owns *out (llm_service_free). */
int cli_llm_from_json(const json_t *models, const char *origin, pg_pool *pool, int identity,
		      struct llm_service **out);

/* The terminal chat's paths for the eval's person (eval/runner.h). */
struct ev_front;
void cli_eval_front(struct ev_front *out);

/* What to do when no model is configured, once, on stderr: the variables,
 * the model servers listening on their usual local ports (probed), the
 * demo. */
void cli_model_hint(void);

int cmd_eval(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif
