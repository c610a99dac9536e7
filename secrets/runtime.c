#include "secrets/runtime.h"
#include "core/err.h"
#include "core/log.h"
#include "secrets/key.h"
#include "secrets/redact.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACQUIRE_MS 10000

static _Atomic(sec_store *) g_store;
static pg_pool *g_pool;

static int load_one(const char *name, const char *value, size_t len, void *udata)
{
	sec_runtime_report *rep = udata;

	if (!value) {
		rep->damaged++;
		log_warn("secrets", "%s", err_last());
		return 0;
	}
	if (sec_redact_add(name, value, len) < 0)
		return err_last_code();
	rep->loaded++;
	return 0;
}

/* Wipes ORCH_MASTER_KEY from the environment (and /proc/PID/environ). */
static void scrub_key_env(void)
{
	char *v = getenv("ORCH_MASTER_KEY");

	if (v) {
		sodium_memzero(v, strlen(v));
		unsetenv("ORCH_MASTER_KEY");
	}
}

int sec_runtime_start(pg_pool *pool, const char *data_dir, sec_runtime_report *out)
{
	sec_runtime_report rep;
	sec_keysrc src;
	sec_store *s = NULL;
	pg_conn *c = NULL;
	PGresult *r = NULL;
	int rc;

	memset(&rep, 0, sizeof(rep));
	sec_redact_install();
	rc = sec_keysrc_from_env(&src, data_dir);
	if (rc < 0)
		goto done;
	sec_keysrc_describe(&src, rep.where, sizeof(rep.where));
	rc = pg_pool_acquire(pool, ACQUIRE_MS, &c);
	if (rc < 0)
		goto done;
	rc = pg_exec(c, &r, "SELECT count(*) FROM secret_keys", 0, NULL);
	if (rc < 0) {
		if (strcmp(pg_last_sqlstate(), "42P01") == 0)
			rc = err_set(ERR_DB, "the database has no secrets tables: run 'orchestrator "
					     "migrate' first");
		err_wrap("secrets");
		goto done;
	}
	if (pg_int(r, 0, 0) == 0) {
		log_info("secrets", "no secrets are set up ('orchestrator secrets init' does it); "
				    "resource handles cannot be resolved");
		goto done;
	}
	rep.configured = 1;
	rc = sec_store_open(&s, c, &src);
	if (rc < 0) {
		err_wrap("secrets");
		goto done;
	}
	sec_redact_batch_begin();
	rc = sec_store_foreach(s, c, load_one, &rep);
	if (sec_redact_batch_end() < 0 && rc == 0)
		rc = err_last_code();
	if (rc < 0) {
		err_wrap("loading secrets into the redaction filter");
		goto done;
	}
	scrub_key_env();
	g_pool = pool;
	atomic_store(&g_store, s);
	s = NULL;
	log_info("secrets", "%d secrets loaded into the redaction filter (key from %s)%s",
		 rep.loaded, rep.where, rep.damaged ? "; some failed their integrity check" : "");
done:
	PQclear(r);
	if (c)
		pg_pool_release(pool, c);
	sec_store_free(s);
	if (out)
		*out = rep;
	return rc;
}

void sec_runtime_stop(void)
{
	sec_store *s = atomic_exchange(&g_store, NULL);

	sec_store_free(s);
	g_pool = NULL;
}

sec_store *sec_runtime_store(void)
{
	return atomic_load(&g_store);
}

int sec_resolve_name(const char *name, char **out_value)
{
	sec_store *s = atomic_load(&g_store);
	pg_conn *c = NULL;
	int rc;

	if (!s || !g_pool)
		return err_set(ERR_NOTFOUND, "cannot resolve secret %s: secrets are not set up in "
					     "this process (run 'orchestrator secrets init', then "
					     "restart)",
			       name ? name : "");
	rc = pg_pool_acquire(g_pool, ACQUIRE_MS, &c);
	if (rc < 0)
		return rc;
	rc = sec_store_resolve_name(s, c, name, "llm", out_value);
	pg_pool_release(g_pool, c);
	return rc;
}
