/*
 * engine_worker — an engine process running the test graphs (linear4, gate)
 * until SIGTERM or SIGINT, for the multi-process and crash tests.
 *
 *   engine_worker [--threads N] [--lease-ms N] [--poll-ms N] [--stream 1]
 *
 * DATABASE_URL names the database. With --stream 1 the runs' events go to
 * Redis (REDIS_URL) as `orchestrator engine` sends them (bot/live.h).
 * Prints "ready <engine id>" on stdout once the engine runs.
 */
#include "bot/live.h"
#include "core/err.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/util.h"
#include "engine/engine.h"
#include "tests/support/graphs.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	eng_options opt = {.threads = 2, .lease_ms = 2000, .poll_ms = 200};
	const char *url = getenv("DATABASE_URL");
	const char *lvl = getenv("ORCH_LOG_LEVEL");
	eng_graph *linear = tsg_linear4(), *gate = tsg_gate();
	eng_engine *e = NULL;
	pg_pool *pool = NULL;
	eng_stream_hub *hub = NULL;
	bot_live *live = NULL;
	int stream = 0;
	sigset_t sigs;
	int sig = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		long v = strtol(argv[i + 1], NULL, 10);
		if (strcmp(argv[i], "--threads") == 0)
			opt.threads = (int)v;
		else if (strcmp(argv[i], "--lease-ms") == 0)
			opt.lease_ms = v;
		else if (strcmp(argv[i], "--poll-ms") == 0)
			opt.poll_ms = v;
		else if (strcmp(argv[i], "--stream") == 0)
			stream = (int)v;
	}
	if (util_init() < 0 || !url || !linear || !gate) {
		fprintf(stderr, "engine_worker: set DATABASE_URL\n");
		return 2;
	}
	log_configure(lvl ? log_level_parse(lvl) : LOG_WARN, 1);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (stream) {
		bot_live_options lo = {.redis_url = getenv("REDIS_URL"),
				       .database_url = getenv("DATABASE_URL"), .publish = 1,
				       .modes = ENG_STREAM_ALL};
		if (!lo.redis_url || eng_stream_hub_new(&hub, NULL) < 0 ||
		    bot_live_start(&live, hub, &lo) < 0) {
			fprintf(stderr, "engine_worker: streams: %s\n", err_last());
			return 1;
		}
		opt.sink = eng_stream_hub_sink(hub);
	}
	if (pg_pool_new(&pool, url, opt.threads + 4) < 0 || eng_engine_new(&e, pool, &opt) < 0 ||
	    eng_engine_add_graph(e, linear) < 0 || eng_engine_add_graph(e, gate) < 0 ||
	    eng_engine_start(e) < 0) {
		fprintf(stderr, "engine_worker: %s\n", err_last());
		return 1;
	}
	printf("ready %s\n", eng_engine_id(e));
	fflush(stdout);
	sigwait(&sigs, &sig);
	eng_engine_free(e);
	bot_live_stop(live);
	eng_stream_hub_free(hub);
	pg_pool_free(pool);
	eng_graph_free(linear);
	eng_graph_free(gate);
	return 0;
}
