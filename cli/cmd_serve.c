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
#include "bot/live.h"
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

/* What serve and engine start, stopped in reverse by serve_stop. */
typedef struct serve_ctx {
	int serve_all;       /* serve: every role; engine: the engine only */
	int64_t threads;
	int64_t with_spawner;
	eng_engine *e;
	bot *b;
	pg_pool *pool;
	llm_service *llm;
	spw_spawner *sp;
	health_pub *hp;
	eng_graph *factory;
	eng_stream_hub *hub;
	bot_live *live;
	nd_app app;
	cli_web web;
} serve_ctx;

/* The options into x: 0 to run, 1 when --help was printed, 2 for a usage
 * error (printed). */
static int serve_args(serve_ctx *x, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_opt(argc, argv, &i, "--threads", &v)) {
			x->threads = cli_int(v);
			if (x->threads >= 1)
				continue;
		}
		if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 1;
		}
		cli_usage(USAGE);
		return 2;
	}
	return 0;
}

/* Logs where the models come from, with a hint when there are none. */
static void serve_models_log(llm_service *llm)
{
	char origin[256];
	int nm, ne;

	llm_service_summary(llm, origin, sizeof(origin), &nm, &ne);
	log_info("serve", "language models from %s: %d models on %d endpoints", origin, nm, ne);
	if (nm == 0)
		cli_model_hint();
}

/* The engine with the factory's graph, started. -1 when it cannot start
 * (said). */
static int serve_engine(serve_ctx *x)
{
	eng_options opt;

	/* the factory: its settings are checked now, not at the first project */
	memset(&x->app, 0, sizeof(x->app));
	x->app.llm = x->llm;
	x->app.pool = x->pool;
	if (nd_config_from_env(&x->app.cfg, cli_cfg.data_dir) < 0 ||
	    nd_factory_graph(&x->factory) < 0) {
		cli_fail("the factory");
		return -1;
	}
	memset(&opt, 0, sizeof(opt));
	opt.threads = (int)x->threads;
	opt.lease_ms = cli_cfg.lease_ms;
	opt.poll_ms = cli_cfg.poll_ms;
	opt.durability = cli_cfg.durability_async ? ENG_DURABILITY_ASYNC : ENG_DURABILITY_SYNC;
	opt.app = &x->app;
	opt.sink = eng_stream_hub_sink(x->hub);
	if (eng_engine_new(&x->e, x->pool, &opt) < 0 || eng_engine_add_graph(x->e, x->factory) < 0 ||
	    eng_engine_start(x->e) < 0) {
		cli_fail("engine");
		return -1;
	}
	return 0;
}

/* serve's other roles: the spawner (unless ORCH_SPAWNER=0; one that cannot
 * start is logged and left out) and the Telegram bot when it has a token.
 * -1 when they cannot start (said). */
static int serve_roles(serve_ctx *x)
{
	int brc;

	if (!x->serve_all)
		return 0;
	if (cfg_env_int("ORCH_SPAWNER", 1, 0, 1, &x->with_spawner) < 0) {
		cli_fail("configuration");
		return -1;
	}
	if (x->with_spawner && cli_spawner_start(x->pool, x->llm, 0, x->hub, &x->sp) < 0)
		log_error("serve", "the spawner role is not running: %s (the other roles run; fix "
				   "it and restart, or set ORCH_SPAWNER=0)", err_last());
	brc = cli_bot_start(x->pool, x->hub, &x->b);
	if (brc < 0) {
		cli_fail("telegram bot");
		return -1;
	}
	if (brc == 0)
		log_info("serve", "TELEGRAM_BOT_TOKEN is not set: running without the Telegram "
				  "bot (`orchestrator chat` talks to this engine from a terminal)");
	return 0;
}

/* Runs until SIGINT or SIGTERM (0) or the bot stops (-1), expiring
 * questions and, for serve, pruning on the way. */
static int serve_loop(serve_ctx *x, sigset_t *sigs)
{
	int64_t last_prune = 0, last_expire = 0;

	for (;;) {
		struct timespec tick = {.tv_sec = 5, .tv_nsec = 0};
		int sig = sigtimedwait(sigs, NULL, &tick);

		if (sig == SIGINT || sig == SIGTERM) {
			log_info("serve", "signal %d: stopping gracefully", sig);
			return 0;
		}
		if (x->b && bot_done(x->b)) {
			log_error("serve", "the Telegram bot stopped; stopping");
			return -1;
		}
		if (util_mono_ms() - last_expire >= EXPIRE_EVERY_MS) {
			last_expire = util_mono_ms();
			expire_questions(x->pool);
		}
		if (x->serve_all && util_mono_ms() - last_prune >= 3600 * 1000) {
			last_prune = util_mono_ms();
			prune_now(x->pool);
		}
	}
}

/* Stops what serve started, in order. */
static void serve_stop(serve_ctx *x)
{
	health_pub_stop(x->hp);
	cli_web_stop(&x->web);
	spw_free(x->sp); /* workers call the models until they stop */
	bot_free(x->b);
	eng_engine_free(x->e);
	eng_graph_free(x->factory); /* after the engine that ran it */
	cli_streams_stop(x->hub, x->live); /* after everything that emits into it */
	sec_runtime_stop();
	llm_service_free(x->llm); /* after the engine: nodes may call it until then */
	pg_pool_free(x->pool);
}

int cmd_serve(int argc, char **argv)
{
	serve_ctx x;
	sigset_t sigs;
	int rc = 1, arc;

	memset(&x, 0, sizeof(x));
	x.serve_all = strcmp(argv[0], "serve") == 0;
	x.threads = cli_cfg.engine_threads;
	arc = serve_args(&x, argc, argv);
	if (arc)
		return arc == 1 ? 0 : 2;
	/* signals are taken by sigwait below, in this thread only */
	cli_block_signals(&sigs);
	/* the bot needs its own connections besides the engine's */
	if (cli_role_start(cli_cfg.db_pool_size + (x.serve_all ? 4 : 0), &x.pool, &x.llm))
		goto done;
	serve_models_log(x.llm);
	/* live streams: this process's runs and workers to the others (chat, web, another
	 * bot); the bot here shows the replies of every engine as drafts */
	if (cli_streams_start(x.pool, 1, x.serve_all, 0, &x.hub, &x.live))
		goto done;
	if (serve_engine(&x) < 0 || serve_roles(&x) < 0)
		goto done;
	x.hp = cli_health_start(x.pool, x.serve_all ? "serve" : "engine");
	/* /healthz and /metrics; serve's spawner uses Redis */
	if (cli_web_start(argv[0], x.pool, x.serve_all && x.with_spawner ? cli_cfg.redis_url : NULL,
			  &x.web) < 0) {
		cli_fail("http listener");
		goto done;
	}
	log_info("serve", "%s running as engine %s (pid %d); SIGINT or SIGTERM stops it",
		 x.serve_all ? "serve" : "engine", eng_engine_id(x.e), (int)getpid());
	if (serve_loop(&x, &sigs) == 0)
		rc = 0;
done:
	serve_stop(&x);
	return rc;
}
