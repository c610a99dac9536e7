#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cfg_parse_int(const char *s, int64_t *out)
{
	char *end = NULL;
	long long v;

	if (!s || !*s)
		return err_set(ERR_INVALID, "empty number");
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0')
		return err_set(ERR_INVALID, "'%s' is not an integer", s);
	*out = v;
	return 0;
}

/* Splits "123unit" into a number and its suffix. */
static int split_number(const char *s, int64_t *num, const char **suffix)
{
	char *end = NULL;
	long long v;

	if (!s || !*s)
		return err_set(ERR_INVALID, "empty value");
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0)
		return err_set(ERR_INVALID, "'%s' does not start with a non-negative number", s);
	*num = v;
	*suffix = end;
	return 0;
}

/* *out = n * mul for the value `s`, unless that overflows ("'s': <what>
 * too large"). */
static int scale(const char *s, int64_t n, int64_t mul, const char *what, int64_t *out)
{
	if (n > INT64_MAX / mul)
		return err_set(ERR_INVALID, "'%s': %s too large", s, what);
	*out = n * mul;
	return 0;
}

int cfg_parse_duration_ms(const char *s, int64_t *out)
{
	int64_t n, mul;
	const char *u;
	int rc = split_number(s, &n, &u);

	if (rc < 0)
		return rc;
	if (*u == '\0' || strcmp(u, "ms") == 0)
		mul = 1;
	else if (strcmp(u, "s") == 0)
		mul = 1000;
	else if (strcmp(u, "m") == 0 || strcmp(u, "min") == 0)
		mul = 60000;
	else if (strcmp(u, "h") == 0)
		mul = 3600000;
	else if (strcmp(u, "d") == 0)
		mul = 86400000;
	else
		return err_set(ERR_INVALID, "'%s': unknown duration unit (use ms, s, m, h or d)", s);
	return scale(s, n, mul, "duration", out);
}

int cfg_parse_size(const char *s, int64_t *out)
{
	int64_t n, mul;
	const char *u;
	int rc = split_number(s, &n, &u);

	if (rc < 0)
		return rc;
	switch (*u) {
	case '\0': mul = 1; break;
	case 'k': case 'K': mul = 1LL << 10; break;
	case 'm': case 'M': mul = 1LL << 20; break;
	case 'g': case 'G': mul = 1LL << 30; break;
	default:
		return err_set(ERR_INVALID, "'%s': unknown size unit (use k, M or G)", s);
	}
	if (*u && u[1] != '\0' && strcmp(u + 1, "i") != 0 && strcmp(u + 1, "B") != 0 &&
	    strcmp(u + 1, "iB") != 0)
		return err_set(ERR_INVALID, "'%s': unknown size unit (use k, M or G)", s);
	return scale(s, n, mul, "size", out);
}

/* The variable `name` read by `parse` and checked against [min, max]
 * (`unit` follows the bounds in the message); `def` when it is unset or
 * empty. `expected` says what a value that does not parse should be. */
static int env_number(const char *name, int64_t def, int64_t min, int64_t max,
		      int (*parse)(const char *, int64_t *), const char *expected,
		      const char *unit, int64_t *out)
{
	const char *v = getenv(name);
	int64_t n;

	if (!v || !*v) {
		*out = def;
		return 0;
	}
	if (parse(v, &n) < 0)
		return err_set(ERR_INVALID, "%s=%s: expected %s", name, v, expected);
	if (n < min || n > max)
		return err_set(ERR_INVALID, "%s=%s: must be between %lld%s and %lld%s", name, v,
			       (long long)min, unit, (long long)max, unit);
	*out = n;
	return 0;
}

int cfg_env_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out)
{
	char expected[96];

	snprintf(expected, sizeof(expected), "an integer between %lld and %lld", (long long)min,
		 (long long)max);
	return env_number(name, def, min, max, cfg_parse_int, expected, "", out);
}

int cfg_env_duration_ms(const char *name, int64_t def, int64_t min_ms, int64_t max_ms,
			int64_t *out)
{
	return env_number(name, def, min_ms, max_ms, cfg_parse_duration_ms,
			  "a duration such as 500ms, 30s or 5m", "ms", out);
}

int cfg_env_str(const char *name, const char *def, char *out, size_t cap)
{
	const char *v = getenv(name);
	int n;

	if (!v || !*v)
		v = def ? def : "";
	n = snprintf(out, cap, "%s", v);
	if (n < 0 || (size_t)n >= cap)
		return err_set(ERR_TOOBIG, "%s is longer than %zu bytes", name, cap - 1);
	return 0;
}

static int default_data_dir(char *out, size_t cap)
{
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	int n;

	if (xdg && *xdg)
		n = snprintf(out, cap, "%s/orchestrator", xdg);
	else if (home && *home)
		n = snprintf(out, cap, "%s/.local/share/orchestrator", home);
	else
		n = snprintf(out, cap, "/var/lib/orchestrator");
	if (n < 0 || (size_t)n >= cap)
		return err_set(ERR_TOOBIG, "default data directory path is too long");
	return 0;
}

int cfg_load(orch_config *out)
{
	char dd[1024], tmp[64];
	int64_t v;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = cfg_env_str("DATABASE_URL", CFG_DEFAULT_DATABASE_URL, out->database_url,
			 sizeof(out->database_url));
	if (rc < 0)
		return rc;
	rc = cfg_env_str("REDIS_URL", CFG_DEFAULT_REDIS_URL, out->redis_url,
			 sizeof(out->redis_url));
	if (rc < 0)
		return rc;
	rc = default_data_dir(dd, sizeof(dd));
	if (rc < 0)
		return rc;
	rc = cfg_env_str("ORCH_DATA_DIR", dd, out->data_dir, sizeof(out->data_dir));
	if (rc < 0)
		return rc;

	rc = cfg_env_str("ORCH_LOG_LEVEL", "info", tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	out->log_level = log_level_parse(tmp);
	if (out->log_level < 0)
		return err_set(ERR_INVALID, "ORCH_LOG_LEVEL=%s: use debug, info, warn, error or off",
			       tmp);
	rc = cfg_env_str("ORCH_LOG_FORMAT", "json", tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	if (strcmp(tmp, "json") == 0)
		out->log_text = 0;
	else if (strcmp(tmp, "text") == 0)
		out->log_text = 1;
	else
		return err_set(ERR_INVALID, "ORCH_LOG_FORMAT=%s: use json or text", tmp);

	rc = cfg_env_int("ORCH_ENGINE_THREADS", 4, 1, 256, &v);
	if (rc < 0)
		return rc;
	out->engine_threads = (int)v;
	rc = cfg_env_int("ORCH_DB_POOL", out->engine_threads + 4, 1, 1024, &v);
	if (rc < 0)
		return rc;
	out->db_pool_size = (int)v;
	rc = cfg_env_duration_ms("ORCH_LEASE", 30000, 500, 86400000, &out->lease_ms);
	if (rc < 0)
		return rc;
	rc = cfg_env_duration_ms("ORCH_POLL", 1000, 10, 600000, &out->poll_ms);
	if (rc < 0)
		return rc;
	rc = cfg_env_str("ORCH_DURABILITY", "sync", tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	if (strcmp(tmp, "sync") == 0)
		out->durability_async = 0;
	else if (strcmp(tmp, "async") == 0)
		out->durability_async = 1;
	else
		return err_set(ERR_INVALID, "ORCH_DURABILITY=%s: use sync (every step waits for "
					    "the disk) or async (see README)",
			       tmp);
	rc = cfg_env_int("ORCH_RETENTION_DAYS", 30, 0, 36500, &v);
	if (rc < 0)
		return rc;
	out->retention_days = (int)v;
	rc = cfg_env_int("ORCH_RETENTION_KEEP", 1, 1, 1000000, &v);
	if (rc < 0)
		return rc;
	out->retention_keep = (int)v;
	return 0;
}
