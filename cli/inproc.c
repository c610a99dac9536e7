/*
 * inproc — the factory's roles inside a command's own process, as `serve`
 * runs them: the engine with the factory's graph, and the spawner. `eval
 * run` and `demo` run their projects so, with models of their own (the
 * record/replay server), which is why no other engine may serve the same
 * database meanwhile.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "engine/engine.h"
#include "engine/report.h"
#include "engine/stream.h"
#include "llm/llm.h"
#include "nodes/factory.h"
#include "spawner/spawner.h"

#include <stdlib.h>
#include <string.h>

struct cli_factory {
	eng_engine *engine;
	eng_graph *graph;
	spw_spawner *spawner;
	eng_stream_hub *hub; /* this process's runs and workers, for its own chat */
	nd_app app;
};

int cli_factory_alone(pg_pool *pool)
{
	pg_conn *c = NULL;
	int64_t live = 0;
	int rc = pg_pool_acquire(pool, 10000, &c), n;

	if (rc == 0)
		rc = eng_report_live_engines(c, 60, &live);
	n = (int)live;
	if (c)
		pg_pool_release(pool, c);
	if (rc < 0)
		return rc;
	if (n > 0)
		return err_set(ERR_CONFLICT,
			       "%d other engine%s run%s on this database (an `orchestrator serve`, "
			       "`make run`?): it would take this run's projects and answer them with "
			       "its own models. Stop it first (Ctrl-C where it runs; one that "
			       "crashed counts for a minute after its last heartbeat), or point "
			       "DATABASE_URL and REDIS_URL at other servers",
			       n, n == 1 ? "" : "s", n == 1 ? "s" : "");
	return 0;
}

int cli_factory_start(pg_pool *pool, llm_service *llm, cli_factory **out)
{
	cli_factory *f = calloc(1, sizeof(*f));
	eng_options opt;
	eng_stream_options so;
	int rc;

	*out = NULL;
	if (!f)
		return err_set(ERR_NOMEM, "out of memory");
	f->app.llm = llm;
	f->app.pool = pool;
	rc = nd_config_from_env(&f->app.cfg, cli_cfg.data_dir);
	if (rc == 0)
		rc = nd_factory_graph(&f->graph);
	/* the stream stays in this process: nothing else runs on its database */
	memset(&so, 0, sizeof(so));
	so.pool = pool;
	if (rc == 0)
		rc = eng_stream_hub_new(&f->hub, &so);
	if (rc < 0)
		goto fail;
	memset(&opt, 0, sizeof(opt));
	opt.threads = (int)cli_cfg.engine_threads;
	opt.lease_ms = cli_cfg.lease_ms;
	opt.poll_ms = cli_cfg.poll_ms;
	opt.durability = cli_cfg.durability_async ? ENG_DURABILITY_ASYNC : ENG_DURABILITY_SYNC;
	opt.app = &f->app;
	opt.sink = eng_stream_hub_sink(f->hub);
	rc = eng_engine_new(&f->engine, pool, &opt);
	if (rc == 0)
		rc = eng_engine_add_graph(f->engine, f->graph);
	if (rc == 0)
		rc = eng_engine_start(f->engine);
	if (rc == 0)
		rc = cli_spawner_start(pool, llm, 0, f->hub, &f->spawner);
	if (rc < 0)
		goto fail;
	*out = f;
	return 0;
fail:
	cli_factory_stop(f);
	return rc;
}

void cli_factory_stop(cli_factory *f)
{
	if (!f)
		return;
	spw_free(f->spawner); /* workers call the models until they stop */
	eng_engine_free(f->engine);
	eng_graph_free(f->graph); /* after the engine that ran it */
	eng_stream_hub_free(f->hub); /* after everything that emits into it */
	free(f);
}

eng_stream_hub *cli_factory_hub(cli_factory *f)
{
	return f ? f->hub : NULL;
}

int cli_llm_from_json(const json_t *models, const char *origin, pg_pool *pool, int identity,
		      llm_service **out)
{
	llm_registry *reg = NULL;
	llm_options lo;
	char *text = json_dumps(models, JSON_COMPACT);
	int rc;

	*out = NULL;
	if (!text)
		return err_set(ERR_NOMEM, "out of memory");
	rc = llm_options_from_env(&lo);
	if (rc == 0)
		rc = llm_registry_load_text(&reg, text, origin);
	free(text);
	if (rc < 0)
		return rc;
	lo.pool = pool;
	lo.identity_headers = identity;
	return llm_service_new(out, reg, &lo);
}
