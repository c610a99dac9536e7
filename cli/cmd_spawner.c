/*
 * orchestrator spawner — the spawner role: the spawn outbox relay, the
 * consumer of the spawn stream and the workers (spawner/spawner.h).
 * SIGINT or SIGTERM stop it: running workers are stopped and their
 * requests stay pending for another spawner (or this one, restarted).
 */
#include "bot/live.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "core/redis.h"
#include "llm/llm.h"
#include "secrets/runtime.h"
#include "spawner/spawner.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator spawner [--workers N]\n"
	"  Runs the spawner role until SIGINT or SIGTERM: relays spawn requests from the\n"
	"  outbox to Redis, runs up to N sandboxed workers at once (ORCH_MAX_WORKERS),\n"
	"  and reclaims the requests of spawners that died. Needs root for the ns\n"
	"  sandbox. README.md, \"Spawner and workers\", lists its settings.";

int cli_spawner_start(pg_pool *pool, llm_service *llm, int workers, eng_stream_hub *hub,
		      spw_spawner **out)
{
	spw_config cfg;
	char where[1100];
	int rc;

	*out = NULL;
	rc = spw_config_from_env(&cfg, cli_cfg.redis_url, cli_cfg.data_dir);
	if (rc < 0)
		return rc;
	if (workers > 0)
		cfg.max_workers = workers;
	cfg.hub = hub;
	rc = spw_preflight(&cfg);
	if (rc < 0)
		return rc;
	rc = spw_new(out, &cfg, pool, llm);
	if (rc == 0)
		rc = spw_start(*out);
	if (rc < 0) {
		spw_free(*out);
		*out = NULL;
		return rc;
	}
	rds_url_redact(cfg.redis_url, where, sizeof(where));
	log_info("spawner", "spawner %s on %s: %d workers, sandbox %s, workspaces under %s/workers",
		 spw_id(*out), where, cfg.max_workers, cfg.sandbox, cfg.data_dir);
	return 0;
}

int cmd_spawner(int argc, char **argv)
{
	int64_t workers = 0;
	pg_pool *pool = NULL;
	llm_service *llm = NULL;
	spw_spawner *sp = NULL;
	health_pub *hp = NULL;
	eng_stream_hub *hub = NULL;
	bot_live *live = NULL;
	sigset_t sigs;
	cli_web web = {0};
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_opt(argc, argv, &i, "--workers", &v)) {
			workers = cli_int(v);
			if (workers >= 1)
				continue;
		}
		if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 0;
		}
		return cli_usage(USAGE);
	}
	cli_block_signals(&sigs);
	if (cli_role_start(cli_cfg.db_pool_size, &pool, &llm))
		goto done;
	/* the workers' steps, live, for whoever follows their projects */
	if (cli_streams_start(pool, 1, 0, 0, &hub, &live))
		goto done;
	if (cli_spawner_start(pool, llm, (int)workers, hub, &sp) < 0) {
		cli_fail("spawner");
		goto done;
	}
	hp = cli_health_start(pool, "spawner");
	if (cli_web_start("spawner", pool, cli_cfg.redis_url, &web) < 0) {
		cli_fail("http listener");
		goto done;
	}
	log_info("spawner", "running (pid %d); SIGINT or SIGTERM stops it", (int)getpid());
	for (;;) {
		int sig = sigwaitinfo(&sigs, NULL);

		if (sig == SIGINT || sig == SIGTERM) {
			log_info("spawner", "signal %d: stopping; running workers go back to the queue",
				 sig);
			break;
		}
	}
	rc = 0;
done:
	health_pub_stop(hp);
	cli_web_stop(&web);
	spw_free(sp); /* before the models: workers call them until they stop */
	cli_streams_stop(hub, live);
	sec_runtime_stop();
	llm_service_free(llm);
	pg_pool_free(pool);
	return rc;
}
