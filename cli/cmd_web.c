/* The HTTP listener of the long-running roles (ORCH_HTTP_ADDR) and
 * `orchestrator healthcheck`, which asks a role's /healthz (for container
 * health checks: no curl needed in the image). */
#include "cli/cli.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "spawner/report.h"
#include "web/app.h"
#include "web/health.h"
#include "web/web.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
	"orchestrator healthcheck [URL]\n"
	"  Asks a role's /healthz (default http://ORCH_HTTP_ADDR/healthz, 0.0.0.0 read as\n"
	"  127.0.0.1) and exits 0 when it answers 200, 1 otherwise, printing the answer.";

int cli_web_start(const char *role, pg_pool *pool, const char *redis_url, cli_web *out)
{
	const char *addr = getenv("ORCH_HTTP_ADDR");
	web_health_opts o;
	int64_t interval = 0, db_ms = 0;

	memset(out, 0, sizeof(*out));
	if (!addr || !*addr)
		return 0;
	if (cfg_env_duration_ms("ORCH_HEALTH_INTERVAL", 5000, 100, 3600000, &interval) < 0 ||
	    cfg_env_duration_ms("ORCH_METRICS_DB_INTERVAL", 15000, 0, 86400000, &db_ms) < 0)
		return -1;
	if (web_server_new(&out->server, addr) < 0)
		return err_wrap("ORCH_HTTP_ADDR");
	memset(&o, 0, sizeof(o));
	o.role = role;
	o.pool = pool;
	o.redis_url = redis_url;
	o.interval_ms = interval;
	o.db_metrics_ms = db_ms == 0 ? -1 : db_ms;
	o.worker_counts = spw_report_worker_states;
	if (web_health_start(&out->health, out->server, &o) < 0 ||
	    ((strcmp(role, "serve") == 0 || strcmp(role, "web") == 0) &&
	     (cli_dashboard_attach(out->server, pool, &out->dash) < 0 ||
	      cli_mcp_attach(out->server, pool, &out->mcp) < 0)) ||
	    web_server_start(out->server) < 0) {
		cli_web_stop(out);
		return -1;
	}
	return 1;
}

void cli_web_stop(cli_web *w)
{
	web_app_stop(w->dash); /* its live logs end while the listener runs */
	cli_mcp_stop(w->mcp);  /* and the MCP sessions' streams */
	web_server_free(w->server);
	web_app_free(w->dash);
	cli_mcp_free(w->mcp);
	web_health_free(w->health);
	memset(w, 0, sizeof(*w));
}

int cmd_healthcheck(int argc, char **argv)
{
	char url[512];
	const char *addr = getenv("ORCH_HTTP_ADDR");
	http_client *h = NULL;
	http_request rq;
	http_response r;
	int rc;

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--help") == 0)) {
		puts(USAGE);
		return argc == 2 ? 0 : 2;
	}
	if (argc == 2) {
		snprintf(url, sizeof(url), "%s", argv[1]);
	} else if (addr && *addr) {
		if (strncmp(addr, "0.0.0.0:", 8) == 0)
			snprintf(url, sizeof(url), "http://127.0.0.1:%s/healthz", addr + 8);
		else
			snprintf(url, sizeof(url), "http://%s/healthz", addr);
	} else {
		fprintf(stderr, "orchestrator healthcheck: ORCH_HTTP_ADDR is not set and no URL given\n");
		return 2;
	}
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = url;
	rq.connect_timeout_ms = 3000;
	rq.timeout_ms = 5000;
	if (http_client_new(&h) < 0)
		return cli_fail("healthcheck");
	rc = http_do(h, &rq, &r);
	if (rc < 0) {
		fprintf(stderr, "orchestrator healthcheck: %s: %s\n", url, err_last());
		rc = 1;
	} else {
		printf("%s\n", buf_cstr(&r.body));
		rc = r.status == 200 ? 0 : 1;
	}
	http_response_free(&r);
	http_client_free(h);
	return rc;
}
