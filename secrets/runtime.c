#include "secrets/runtime.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "secrets/key.h"
#include "secrets/redact.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ACQUIRE_MS 10000
#define REFRESH_ACQUIRE_MS 2000

static _Atomic(sec_store *) g_store;
static pg_pool *g_pool;

/* The refresher: a thread that teaches the filter secrets set after start
 * (and opens the store when `secrets init` ran after start). */
static pg_pool *g_refresh_pool;
static sec_keysrc g_src;
static char g_fingerprint[160];  /* of the secrets loaded so far; refresher only */
static char g_last_warning[300]; /* not repeated every round; refresher only */
static int64_t g_refresh_ms;
static pthread_t g_refresher;
static int g_refresher_on;
static pthread_mutex_t g_refresh_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_refresh_cv;
static int g_refresh_stop;

/* What changes whenever a secret is set, removed or re-encrypted. */
static const char FINGERPRINT_SQL[] =
	"SELECT coalesce((SELECT version FROM secret_keys), 0) || ':' || count(*) || ':' || "
	"coalesce(max(id), 0) || ':' || coalesce(max(updated_at)::text, '') FROM secrets";

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

/* Reads the fingerprint of the stored secrets into out[cap]. */
static int fingerprint(pg_conn *c, char *out, size_t cap)
{
	PGresult *r = NULL;
	int rc = pg_exec(c, &r, FINGERPRINT_SQL, 0, NULL);

	if (rc == 0)
		snprintf(out, cap, "%s", pg_val(r, 0, 0));
	PQclear(r);
	return rc;
}

/* Decrypts every secret of `s` into the filter (known values are no-ops),
 * counting into *rep. */
static int load_all(sec_store *s, pg_conn *c, sec_runtime_report *rep)
{
	int rc;

	sec_redact_batch_begin();
	rc = sec_store_foreach(s, c, load_one, rep);
	if (sec_redact_batch_end() < 0 && rc == 0)
		rc = err_last_code();
	return rc;
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

/* One round of the refresher: opens the store when the database got a key
 * after start, and loads the secrets when their fingerprint changed. */
static void refresh_once(void)
{
	sec_runtime_report rep;
	pg_conn *c = NULL;
	PGresult *r = NULL;
	sec_store *s = atomic_load(&g_store), *opened = NULL;
	char fp[sizeof(g_fingerprint)];
	size_t before = sec_redact_count();
	int rc;

	memset(&rep, 0, sizeof(rep));
	rc = pg_pool_acquire(g_refresh_pool, REFRESH_ACQUIRE_MS, &c);
	if (rc < 0)
		goto done; /* the database is away: the next round tries again */
	if (!s) {
		rc = pg_exec(c, &r, "SELECT count(*) FROM secret_keys", 0, NULL);
		if (rc < 0 || pg_int(r, 0, 0) == 0)
			goto done;
		rc = sec_store_open(&opened, c, &g_src);
		if (rc < 0) {
			err_wrap("secrets were set up after this process started, but its key "
				 "cannot open them (set ORCH_MASTER_KEY or the key file as for "
				 "'secrets init', then restart)");
			goto done;
		}
		s = opened;
	}
	rc = fingerprint(c, fp, sizeof(fp));
	if (rc < 0 || (!opened && strcmp(fp, g_fingerprint) == 0))
		goto done;
	rc = load_all(s, c, &rep);
	if (rc < 0)
		goto done;
	snprintf(g_fingerprint, sizeof(g_fingerprint), "%s", fp);
	if (opened) {
		scrub_key_env();
		g_pool = g_refresh_pool;
		atomic_store(&g_store, opened);
		opened = NULL;
		log_info("secrets", "secrets were set up after start: %d loaded into the "
				    "redaction filter (key from %s)",
			 rep.loaded, g_src.from_env ? "ORCH_MASTER_KEY" : g_src.path);
	} else if (sec_redact_count() > before) {
		log_info("secrets", "the redaction filter learned %zu new secret values",
			 sec_redact_count() - before);
	}
	if (rep.damaged)
		err_set(ERR_CRYPTO, "%d secrets cannot be decrypted with this process's key (the "
				    "key was rotated, or a row was altered): restart this process",
			rep.damaged);
	else
		g_last_warning[0] = '\0';
done:
	if (rc < 0 || rep.damaged) {
		const char *why = err_last();
		if (strcmp(why, g_last_warning) != 0) {
			log_warn("secrets", "refreshing the redaction filter: %s", why);
			snprintf(g_last_warning, sizeof(g_last_warning), "%s", why);
		}
	}
	PQclear(r);
	if (c)
		pg_pool_release(g_refresh_pool, c);
	sec_store_free(opened);
}

static void *refresher_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&g_refresh_mu);
	while (!g_refresh_stop) {
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += g_refresh_ms / 1000;
		until.tv_nsec += (long)(g_refresh_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!g_refresh_stop &&
		       pthread_cond_timedwait(&g_refresh_cv, &g_refresh_mu, &until) == 0)
			;
		if (g_refresh_stop)
			break;
		pthread_mutex_unlock(&g_refresh_mu);
		refresh_once();
		pthread_mutex_lock(&g_refresh_mu);
	}
	pthread_mutex_unlock(&g_refresh_mu);
	return NULL;
}

/* Starts the refresher unless ORCH_SECRETS_REFRESH is 0. */
static int refresher_start(pg_pool *pool, const sec_keysrc *src)
{
	pthread_condattr_t ca;
	int rc;

	if (g_refresher_on)
		return 0;
	rc = cfg_env_duration_ms("ORCH_SECRETS_REFRESH", 5000, 0, 86400000, &g_refresh_ms);
	if (rc < 0 || g_refresh_ms == 0)
		return rc;
	g_refresh_pool = pool;
	g_src = *src;
	g_refresh_stop = 0;
	g_last_warning[0] = '\0';
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g_refresh_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&g_refresher, NULL, refresher_main, NULL) != 0) {
		pthread_cond_destroy(&g_refresh_cv);
		return err_set(ERR_INTERNAL, "cannot start the secrets refresher thread");
	}
	g_refresher_on = 1;
	return 0;
}

/* Stops and joins the refresher. */
static void refresher_stop(void)
{
	if (!g_refresher_on)
		return;
	pthread_mutex_lock(&g_refresh_mu);
	g_refresh_stop = 1;
	pthread_cond_signal(&g_refresh_cv);
	pthread_mutex_unlock(&g_refresh_mu);
	pthread_join(g_refresher, NULL);
	pthread_cond_destroy(&g_refresh_cv);
	g_refresher_on = 0;
	g_refresh_pool = NULL;
	g_fingerprint[0] = '\0';
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
		if (pg_last_sqlstate_is(PG_SQLSTATE_UNDEFINED_TABLE))
			rc = err_set(ERR_DB, "the database has no secrets tables: run 'orchestrator "
					     "migrate' first");
		err_wrap("secrets");
		goto done;
	}
	if (pg_int(r, 0, 0) == 0) {
		log_info("secrets", "no secrets are set up ('orchestrator secrets init' does it); "
				    "resource handles cannot be resolved until then");
		goto done;
	}
	rep.configured = 1;
	rc = sec_store_open(&s, c, &src);
	if (rc < 0) {
		err_wrap("secrets");
		goto done;
	}
	/* the fingerprint first: a secret set while loading changes it */
	rc = fingerprint(c, g_fingerprint, sizeof(g_fingerprint));
	if (rc == 0)
		rc = load_all(s, c, &rep);
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
	if (rc == 0)
		rc = refresher_start(pool, &src);
	if (out)
		*out = rep;
	return rc;
}

void sec_runtime_stop(void)
{
	sec_store *s;

	refresher_stop();
	s = atomic_exchange(&g_store, NULL);

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
