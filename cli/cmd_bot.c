/*
 * orchestrator bot | chat — the Telegram bot role and the terminal chat.
 *
 * `bot` polls Telegram and relays the outbox (bot/bot.h); several bot
 * processes may run: one polls, the others stand by. `chat` is the same
 * conversation in a terminal (bot/term.h), the front end to use when no
 * Telegram token is configured. cli_bot_start lets `serve` run the bot in
 * its own process when TELEGRAM_BOT_TOKEN is set.
 */
#include "bot/bot.h"
#include "bot/route.h"
#include "bot/term.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "secrets/runtime.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char USAGE_BOT[] =
	"orchestrator bot\n"
	"  Runs the Telegram bot: long polling, approvals, delivery of messages.\n"
	"  Needs TELEGRAM_BOT_TOKEN (from @BotFather) and ORCH_ALLOWED_USERS (numeric\n"
	"  Telegram user ids). Runs until SIGINT or SIGTERM. See README.md, \"Telegram\".";

static const char USAGE_CHAT[] =
	"orchestrator chat [--name NAME] [--no-color]\n"
	"  Talk to orchestrator in this terminal: the same projects, commands and\n"
	"  approvals as in Telegram. NAME (default $USER) names your chat. An\n"
	"  `orchestrator serve` on the same database runs the work.";

int cli_bot_start(pg_pool *pool, bot **out)
{
	bot_config cfg;

	*out = NULL;
	if (bot_config_load(&cfg, cli_cfg.data_dir) < 0)
		return -1;
	if (!cfg.token[0])
		return 0;
	if (bot_new(out, pool, &cfg) < 0 || bot_start(*out) < 0) {
		bot_free(*out);
		*out = NULL;
		return -1;
	}
	return 1;
}

int cmd_bot(int argc, char **argv)
{
	bot_config cfg;
	pg_pool *pool = NULL;
	bot *b = NULL;
	health_pub *hp = NULL;
	sigset_t sigs;
	cli_web web = {0};
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (cli_flag(argv, i, "--help")) {
			puts(USAGE_BOT);
			return 0;
		}
		return cli_usage(USAGE_BOT);
	}
	if (bot_config_load(&cfg, cli_cfg.data_dir) < 0)
		return cli_fail("configuration");
	if (!cfg.token[0]) {
		fprintf(stderr, "orchestrator: TELEGRAM_BOT_TOKEN is not set (create a bot with "
				"@BotFather; see README.md). Without Telegram, use `orchestrator chat`.\n");
		return 2;
	}
	cli_block_signals(&sigs);
	if (pg_pool_new(&pool, cli_cfg.database_url, cli_cfg.db_pool_size > 4 ? cli_cfg.db_pool_size : 4) < 0)
		return cli_fail("database pool");
	/* every message the relay sends passes the secrets filter */
	if (cli_start_secrets(pool) < 0) {
		cli_fail("secrets");
		goto done;
	}
	if (bot_new(&b, pool, &cfg) < 0) {
		cli_fail("bot");
		goto done;
	}
	if (bot_start(b) < 0) {
		cli_fail("bot");
		goto done;
	}
	hp = cli_health_start(pool, "bot");
	if (cli_web_start("bot", pool, NULL, &web) < 0) {
		cli_fail("http listener");
		goto done;
	}
	log_info("bot", "bot role running (pid %d); SIGINT or SIGTERM stops it", (int)getpid());
	while (!bot_done(b)) {
		struct timespec tick = {.tv_sec = 1, .tv_nsec = 0};
		int sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM) {
			log_info("bot", "signal %d: stopping", sig);
			break;
		}
	}
	bot_stop(b);
	rc = bot_join(b) < 0 ? 1 : 0;
	if (rc)
		fprintf(stderr, "orchestrator: bot stopped: %s\n", err_last());
done:
	health_pub_stop(hp);
	cli_web_stop(&web);
	bot_free(b);
	sec_runtime_stop();
	pg_pool_free(pool);
	return rc;
}

int cli_term_open(const char *name, char *graph, size_t cap, pg_pool **pool)
{
	*pool = NULL;
	for (const char *p = name; *p; p++)
		if (*p == ':' || *p == ' ') {
			fprintf(stderr, "orchestrator: a chat name has no ':' or spaces\n");
			return 2;
		}
	if (cfg_env_str("ORCH_GRAPH", BOT_DEFAULT_GRAPH, graph, cap) < 0)
		return cli_fail("configuration");
	signal(SIGPIPE, SIG_IGN);
	if (pg_pool_new(pool, cli_cfg.database_url, 2) < 0)
		return cli_fail("database pool");
	return 0;
}

int cli_term_run(pg_pool *pool, const char *name, const char *graph, int color)
{
	bot_term_options opt;

	memset(&opt, 0, sizeof(opt));
	opt.name = name;
	opt.graph = graph;
	opt.in_fd = 0;
	opt.out_fd = 1;
	opt.data_dir = cli_cfg.data_dir;
	opt.color = color;
	return bot_term_run(pool, &opt);
}

int cmd_chat(int argc, char **argv)
{
	pg_pool *pool = NULL;
	char name[64], graph[64];
	const char *user = getenv("USER");
	int rc, color;

	snprintf(name, sizeof(name), "%s", user && *user ? user : "local");
	color = isatty(1) && !getenv("NO_COLOR");
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_opt(argc, argv, &i, "--name", &v)) {
			snprintf(name, sizeof(name), "%s", v);
			continue;
		}
		if (cli_flag(argv, i, "--no-color")) {
			color = 0;
			continue;
		}
		if (cli_flag(argv, i, "--help")) {
			puts(USAGE_CHAT);
			return 0;
		}
		return cli_usage(USAGE_CHAT);
	}
	rc = cli_term_open(name, graph, sizeof(graph), &pool);
	if (rc)
		return rc;
	/* what the terminal shows passes the secrets filter too */
	if (cli_start_secrets(pool) < 0) {
		sec_runtime_stop();
		pg_pool_free(pool);
		return cli_fail("secrets");
	}
	rc = cli_term_run(pool, name, graph, color);
	sec_runtime_stop();
	pg_pool_free(pool);
	if (rc < 0)
		return cli_fail("chat");
	return 0;
}
