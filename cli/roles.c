/*
 * roles — what the long-running roles (serve, engine, spawner, bot) do
 * first: take over SIGINT and SIGTERM, then open the database pool, the
 * secrets and the language models.
 */
#include "cli/cli.h"
#include "llm/config.h"
#include "llm/llm.h"

#include <stdio.h>
#include <string.h>

#include <pthread.h>
#include <signal.h>

void cli_block_signals(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int cli_role_start(int pool_size, pg_pool **pool, llm_service **llm)
{
	llm_registry *reg = NULL;
	llm_options lo;

	*pool = NULL;
	*llm = NULL;
	if (pg_pool_new(pool, cli_cfg.database_url, pool_size) < 0)
		return cli_fail("database pool");
	/* the redaction filter and the secrets store, before any thread starts */
	if (cli_start_secrets(*pool) < 0)
		return cli_fail("start");
	/* language models: a broken models file stops start-up, not the first call */
	if (llm_options_from_env(&lo) < 0 || llm_registry_load(&reg) < 0)
		return cli_fail("language models");
	lo.pool = *pool;
	if (llm_service_new(llm, reg, &lo) < 0)
		return cli_fail("language models");
	/* the configuration stored in the database, when there is one, and its changes */
	{
		char from[16];
		int64_t poll_ms;
		if (cfg_env_str("ORCH_MODEL_CONFIG", "database", from, sizeof(from)) < 0 ||
		    cfg_env_duration_ms("ORCH_LLM_CONFIG_POLL", 5000, 100, 3600000, &poll_ms) < 0)
			return cli_fail("configuration");
		if (strcmp(from, "database") != 0 && strcmp(from, "file") != 0) {
			fprintf(stderr, "orchestrator: ORCH_MODEL_CONFIG=%s: expected 'database' (the "
					"stored configuration when there is one, else the file or "
					"environment) or 'file' (never the stored one)\n", from);
			return 1;
		}
		if (strcmp(from, "database") == 0 &&
		    llm_config_watch_start(*llm, cli_cfg.database_url, poll_ms) < 0)
			return cli_fail("language models");
	}
	/* what the servers say of themselves: model ids not served, real context and slots */
	llm_service_probe(*llm);
	return 0;
}
