/*
 * wiring — connects parts that must not know each other (ARCHITECTURE §2):
 * the LLM layer reads endpoint keys through a resolver hook, which the
 * secrets module fills here, in the program that links both.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "llm/registry.h"
#include "secrets/runtime.h"
#include "secrets/store.h"

static int llm_key_from_secrets(const char *name, buf *out, void *udata)
{
	char *value = NULL;
	int rc;

	(void)udata;
	rc = sec_resolve_name(name, &value);
	if (rc < 0)
		return rc;
	rc = buf_puts(out, value);
	sec_value_free(value);
	return rc;
}

int cli_start_secrets(pg_pool *pool)
{
	int rc = sec_runtime_start(pool, cli_cfg.data_dir, NULL);

	if (rc < 0)
		return rc;
	llm_set_secret_resolver(llm_key_from_secrets, NULL);
	return 0;
}

int64_t cli_health_interval_ms(void)
{
	int64_t ms;

	if (cfg_env_duration_ms("ORCH_HEALTH_INTERVAL", 5000, 100, 3600000, &ms) < 0)
		ms = 5000;
	return ms;
}

health_pub *cli_health_start(pg_pool *pool, const char *role)
{
	health_pub *p = NULL;

	if (health_pub_start(&p, pool, role, cli_health_interval_ms()) < 0) {
		/* the process still does its work; status just cannot see it */
		log_warn(role, "%s", err_last());
		return NULL;
	}
	return p;
}
