/*
 * orchestrator serve | engine — the long-running roles.
 *
 * `engine` runs the graph engine: worker threads claim queued runs of the
 * graphs built into this binary. `serve` runs every role this binary has in
 * one process: the engine, and the Telegram bot when TELEGRAM_BOT_TOKEN is
 * set (without it, `orchestrator chat` is the front end). The engine runs
 * the factory's graph (nodes/factory.h) with the models and the database as
 * its app context. SIGINT or SIGTERM stop gracefully: no new claims, runs in
 * progress finish their current step and return to the queue.
 */
#include "bot/approval.h"
#include "bot/bot.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/engine.h"
#include "secrets/runtime.h"
#include "llm/llm.h"
#include "nodes/factory.h"
#include "spawner/spawner.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPIRE_EVERY_MS 5000

static const char USAGE[] =
	"orchestrator serve|engine [--threads N]\n"
	"  Runs until SIGINT or SIGTERM. --threads overrides ORCH_ENGINE_THREADS.\n"
	"  serve also prunes old checkpoints hourly (ORCH_RETENTION_DAYS) and runs the\n"
	"  spawner role (ORCH_SPAWNER=0 leaves it out; see 'orchestrator spawner').";

/* Expires the questions of every channel that passed their expiry, so a
 * project waits for no answer that can no longer come (the bot does it for
 * Telegram while it runs; this is for when it does not, and for the
 * terminal's questions while no chat is open). */
static void expire_questions(pg_pool *pool)
{
	static const char *const channels[] = {"telegram", "term"};
	pg_conn *c = NULL;

	if (pg_pool_acquire(pool, 5000, &c) < 0)
		return;
	for (size_t i = 0; i < sizeof(channels) / sizeof(channels[0]); i++)
		if (bot_approvals_expire(c, channels[i], NULL) < 0)
			log_warn("serve", "expiring %s questions failed: %s", channels[i], err_last());
	pg_pool_release(pool, c);
}

static void prune_now(pg_pool *pool)
{
	pg_conn *c = NULL;
	eng_prune_stats st;

	if (pg_pool_acquire(pool, 5000, &c) < 0)
		return;
	if (eng_prune(c, cli_cfg.retention_days, cli_cfg.retention_keep, &st) < 0)
		log_warn("serve", "retention pass failed: %s", err_last());
	else if (st.checkpoints > 0 || st.events > 0)
		log_info("serve", "retention: %d threads pruned, %d checkpoints and %d events deleted",
			 st.threads, st.checkpoints, st.events);
	pg_pool_release(pool, c);
}

int cmd_serve(int argc, char **argv)
{
	int serve_all = strcmp(argv[0], "serve") == 0;
	int64_t threads = cli_cfg.engine_threads;
	eng_options opt;
	eng_engine *e = NULL;
	bot *b = NULL;
	pg_pool *pool = NULL;
	llm_service *llm = NULL;
	spw_spawner *sp = NULL;
	health_pub *hp = NULL;
	eng_graph *factory = NULL;
	nd_app app;
	int64_t with_spawner = 0;
	sigset_t sigs;
	int64_t last_prune = 0, last_expire = 0;
	cli_web web = {0};
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_opt(argc, argv, &i, "--threads", &v) && (threads = cli_int(v)) >= 1)
			continue;
		if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 0;
		}
		return cli_usage(USAGE);
	}
	/* signals are taken by sigwait below, in this thread only */
	cli_block_signals(&sigs);
	/* the bot needs its own connections besides the engine's */
	if (cli_role_start(cli_cfg.db_pool_size + (serve_all ? 4 : 0), &pool, &llm))
		goto done;
	{
		char origin[256];
		int nm, ne;
		llm_service_summary(llm, origin, sizeof(origin), &nm, &ne);
		log_info("serve", "language models from %s: %d models on %d endpoints", origin, nm,
			 ne);
		if (nm == 0)
			cli_model_hint();
	}
	/* the factory: its settings are checked now, not at the first project */
	memset(&app, 0, sizeof(app));
	app.llm = llm;
	app.pool = pool;
	if (nd_config_from_env(&app.cfg, cli_cfg.data_dir) < 0 || nd_factory_graph(&factory) < 0) {
		cli_fail("the factory");
		goto done;
	}
	memset(&opt, 0, sizeof(opt));
	opt.threads = (int)threads;
	opt.lease_ms = cli_cfg.lease_ms;
	opt.poll_ms = cli_cfg.poll_ms;
	opt.durability = cli_cfg.durability_async ? ENG_DURABILITY_ASYNC : ENG_DURABILITY_SYNC;
	opt.app = &app;
	if (eng_engine_new(&e, pool, &opt) < 0) {
		cli_fail("engine");
		goto done;
	}
	if (eng_engine_add_graph(e, factory) < 0 || eng_engine_start(e) < 0) {
		cli_fail("engine");
		goto done;
	}
	if (serve_all && cfg_env_int("ORCH_SPAWNER", 1, 0, 1, &with_spawner) < 0) {
		cli_fail("configuration");
		goto done;
	}
	if (with_spawner && cli_spawner_start(pool, llm, 0, &sp) < 0)
		log_error("serve", "the spawner role is not running: %s (the other roles run; fix "
				   "it and restart, or set ORCH_SPAWNER=0)", err_last());
	if (serve_all) {
		int brc = cli_bot_start(pool, &b);
		if (brc < 0) {
			cli_fail("telegram bot");
			goto done;
		}
		if (brc == 0)
			log_info("serve", "TELEGRAM_BOT_TOKEN is not set: running without the Telegram "
					  "bot (`orchestrator chat` talks to this engine from a terminal)");
	}
	hp = cli_health_start(pool, serve_all ? "serve" : "engine");
	/* /healthz and /metrics; serve's spawner uses Redis */
	if (cli_web_start(argv[0], pool, serve_all && with_spawner ? cli_cfg.redis_url : NULL, &web) < 0) {
		cli_fail("http listener");
		goto done;
	}
	log_info("serve", "%s running as engine %s (pid %d); SIGINT or SIGTERM stops it",
		 serve_all ? "serve" : "engine", eng_engine_id(e), (int)getpid());
	for (;;) {
		struct timespec tick = {.tv_sec = 5, .tv_nsec = 0};
		int sig = sigtimedwait(&sigs, NULL, &tick);

		if (sig == SIGINT || sig == SIGTERM) {
			log_info("serve", "signal %d: stopping gracefully", sig);
			break;
		}
		if (b && bot_done(b)) {
			log_error("serve", "the Telegram bot stopped; stopping");
			goto done;
		}
		if (util_mono_ms() - last_expire >= EXPIRE_EVERY_MS) {
			last_expire = util_mono_ms();
			expire_questions(pool);
		}
		if (serve_all && util_mono_ms() - last_prune >= 3600 * 1000) {
			last_prune = util_mono_ms();
			prune_now(pool);
		}
	}
	rc = 0;
done:
	health_pub_stop(hp);
	cli_web_stop(&web);
	spw_free(sp); /* workers call the models until they stop */
	bot_free(b);
	eng_engine_free(e);
	eng_graph_free(factory); /* after the engine that ran it */
	sec_runtime_stop();
	llm_service_free(llm); /* after the engine: nodes may call it until then */
	pg_pool_free(pool);
	return rc;
}
