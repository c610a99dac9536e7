/*
 * config — settings from the environment, checked once at start-up.
 *
 * Every variable is documented in README.md ("Configuration"). The typed
 * readers below fail with a message naming the variable and what it accepts,
 * so a typo in a deployment is reported, not silently replaced by a default.
 * Parts with their own variables (bot, llm, spawner, secrets) read them with
 * the same cfg_env_* functions.
 */
#ifndef ORCH_CORE_CONFIG_H
#define ORCH_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CFG_DEFAULT_DATABASE_URL "postgresql://orchestrator@127.0.0.1:15432/orchestrator"
#define CFG_DEFAULT_REDIS_URL "redis://127.0.0.1:16379/0"

typedef struct orch_config {
	char database_url[1024];  /* DATABASE_URL */
	char redis_url[1024];     /* REDIS_URL */
	char data_dir[1024];      /* ORCH_DATA_DIR */
	int log_level;            /* ORCH_LOG_LEVEL */
	int log_text;             /* ORCH_LOG_FORMAT=text */
	int engine_threads;       /* ORCH_ENGINE_THREADS */
	int db_pool_size;         /* ORCH_DB_POOL */
	int64_t lease_ms;         /* ORCH_LEASE */
	int64_t poll_ms;          /* ORCH_POLL */
	int retention_days;       /* ORCH_RETENTION_DAYS */
	int retention_keep;       /* ORCH_RETENTION_KEEP */
	int durability_async;     /* ORCH_DURABILITY=async */
} orch_config;

/* Fills `out` from the environment, applying defaults. ERR_INVALID with the
 * variable's name when a value does not parse or is out of range. */
int cfg_load(orch_config *out);

/* Reads an integer variable in [min, max]; `def` when unset or empty. */
int cfg_env_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out);

/* Reads a duration ("250ms", "30s", "5m", "2h", or a bare number of
 * milliseconds) into milliseconds, in [min_ms, max_ms]. */
int cfg_env_duration_ms(const char *name, int64_t def, int64_t min_ms, int64_t max_ms,
			int64_t *out);

/* Copies a string variable (or `def`) into out[cap]. ERR_TOOBIG when it
 * does not fit. `def` may be NULL for "". */
int cfg_env_str(const char *name, const char *def, char *out, size_t cap);

/* Parses a duration string as cfg_env_duration_ms does. */
int cfg_parse_duration_ms(const char *s, int64_t *out);

/* Parses a size ("512M", "2G", "64k", bytes) into bytes. */
int cfg_parse_size(const char *s, int64_t *out);

/* Checked strtoll over the whole string. ERR_INVALID when not a number. */
int cfg_parse_int(const char *s, int64_t *out);

#endif
