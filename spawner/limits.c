/*
 * limits — a worker's limits, declared once (limits.h).
 */
#include "spawner/limits.h"
#include "core/config.h"
#include "core/err.h"
#include "spawner/sandbox.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L(f) offsetof(spw_limits, f)
#define S(f) ((ptrdiff_t)offsetof(sbx_opts, f))
#define DAY 86400.0

const spw_limit_def spw_limit_table[] = {
	/* key, variable, default, unit, type, min, max, field, sandbox field, meaning */
	{"steps", "ORCH_AGENT_MAX_STEPS", "50", SPW_LIMIT_COUNT, SPW_LIMIT_INT, 1, 10000, L(steps),
	 -1, "model replies per worker"},
	{"cost_usd", "ORCH_AGENT_MAX_COST", "2.0", SPW_LIMIT_NUMBER, SPW_LIMIT_DOUBLE, 0, 1e6,
	 L(cost_usd), -1, "USD per worker"},
	{"wall_s", "ORCH_AGENT_MAX_WALL", "30m", SPW_LIMIT_SECONDS, SPW_LIMIT_I64, 1, 7 * DAY,
	 L(wall_ms), -1, "the agent's wall time"},
	{"cmd_timeout_s", "ORCH_AGENT_CMD_TIMEOUT", "2m", SPW_LIMIT_SECONDS, SPW_LIMIT_I64, 1, DAY,
	 L(cmd_timeout_ms), -1, "one command"},
	{"mem", "ORCH_WORKER_MEM", "1G", SPW_LIMIT_SIZE, SPW_LIMIT_I64, 0, 0, L(mem_bytes),
	 S(mem_bytes), "the sandbox's memory"},
	{"pids", "ORCH_WORKER_PIDS", "256", SPW_LIMIT_COUNT, SPW_LIMIT_I64, 8, 1 << 20, L(pids),
	 S(pids), "the sandbox's processes"},
	{"cpus", "ORCH_WORKER_CPUS", "1", SPW_LIMIT_NUMBER, SPW_LIMIT_DOUBLE, 0, 1024, L(cpus),
	 S(cpus), "the sandbox's CPUs"},
	{"disk", "ORCH_WORKER_DISK", "2G", SPW_LIMIT_SIZE, SPW_LIMIT_I64, 0, 0, L(disk_bytes), -1,
	 "the workspace's quota"},
	{"format_errors", "ORCH_AGENT_FORMAT_ERRORS", "3", SPW_LIMIT_COUNT, SPW_LIMIT_INT, 1, 1000,
	 L(format_errors), -1, "replies in a row without one action"},
	{"repeats", "ORCH_AGENT_REPEATS", "3", SPW_LIMIT_COUNT, SPW_LIMIT_INT, 2, 1000, L(repeats),
	 -1, "the same action and output, work unchanged"},
	{"stall_steps", "ORCH_AGENT_STALL_STEPS", "20", SPW_LIMIT_COUNT, SPW_LIMIT_INT, 1, 10000,
	 L(stall_steps), -1, "commands in a row without a change to the diff"},
};
const size_t spw_limit_count = sizeof(spw_limit_table) / sizeof(spw_limit_table[0]);

#define MIN_SIZE ((int64_t)1 << 20)

/* --- a field, by its type --- */

static double field_get(const void *base, size_t off, spw_limit_type t)
{
	const char *p = (const char *)base + off;

	if (t == SPW_LIMIT_INT)
		return *(const int *)(const void *)p;
	if (t == SPW_LIMIT_I64)
		return (double)*(const int64_t *)(const void *)p;
	return *(const double *)(const void *)p;
}

static void field_set(void *base, size_t off, spw_limit_type t, double v)
{
	char *p = (char *)base + off;

	if (t == SPW_LIMIT_INT)
		*(int *)(void *)p = (int)v;
	else if (t == SPW_LIMIT_I64)
		*(int64_t *)(void *)p = (int64_t)v;
	else
		*(double *)(void *)p = v;
}

/* The field as int64_t (exact for the integer types). */
static int64_t field_i64(const void *base, const spw_limit_def *d)
{
	const char *p = (const char *)base + d->off;

	if (d->type == SPW_LIMIT_INT)
		return *(const int *)(const void *)p;
	if (d->type == SPW_LIMIT_I64)
		return *(const int64_t *)(const void *)p;
	return (int64_t)*(const double *)(const void *)p;
}

static void field_set_i64(void *base, const spw_limit_def *d, int64_t v)
{
	char *p = (char *)base + d->off;

	if (d->type == SPW_LIMIT_INT)
		*(int *)(void *)p = (int)v;
	else if (d->type == SPW_LIMIT_I64)
		*(int64_t *)(void *)p = v;
	else
		*(double *)(void *)p = (double)v;
}

const spw_limit_def *spw_limit_find(const char *key)
{
	for (size_t i = 0; i < spw_limit_count; i++)
		if (strcmp(spw_limit_table[i].key, key) == 0)
			return &spw_limit_table[i];
	return NULL;
}

/* --- a request --- */

/* The keys, "a, b, c", for the message of an unknown one. */
static void key_list(char *out, size_t cap)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < spw_limit_count && n < cap; i++) {
		int w = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", spw_limit_table[i].key);
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

/* One row's value from a request's "limits" into *out. */
static int from_json(const spw_limit_def *d, const json_t *v, spw_limits *out)
{
	int64_t b = 0;
	double x;

	switch (d->unit) {
	case SPW_LIMIT_COUNT:
	case SPW_LIMIT_SECONDS:
		if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)d->min ||
		    json_integer_value(v) > (json_int_t)d->max)
			return err_set(ERR_INVALID, "limits.%s must be an integer from %lld to %lld",
				       d->key, (long long)d->min, (long long)d->max);
		b = (int64_t)json_integer_value(v);
		field_set_i64(out, d, d->unit == SPW_LIMIT_SECONDS ? b * 1000 : b);
		return 0;
	case SPW_LIMIT_NUMBER:
		x = json_is_number(v) ? json_number_value(v) : 0;
		if (!json_is_number(v) || !(x > 0) || x > d->max || !isfinite(x))
			return err_set(ERR_INVALID, "limits.%s must be a number above 0, at most %g",
				       d->key, d->max);
		field_set(out, d->off, d->type, x);
		return 0;
	case SPW_LIMIT_SIZE:
		if (json_is_integer(v))
			b = (int64_t)json_integer_value(v);
		else if (!json_is_string(v) || cfg_parse_size(json_string_value(v), &b) < 0)
			b = -1;
		if (b < MIN_SIZE)
			return err_set(ERR_INVALID, "limits.%s must be a size of at least 1M (bytes, "
						    "or \"512M\", \"2G\")", d->key);
		field_set_i64(out, d, b);
		return 0;
	}
	return err_set(ERR_INTERNAL, "limits.%s: unknown unit", d->key);
}

int spw_limits_from_json(const json_t *l, spw_limits *out)
{
	const char *key;
	const json_t *v;
	char keys[512];
	int rc;

	if (!l || json_is_null(l))
		return 0;
	if (!json_is_object(l))
		return err_set(ERR_INVALID, "\"limits\" must be an object");
	json_object_foreach((json_t *)l, key, v) {
		(void)v;
		if (!spw_limit_find(key)) {
			key_list(keys, sizeof(keys));
			return err_set(ERR_INVALID, "limits.%s is not a known limit (%s)", key, keys);
		}
	}
	for (size_t i = 0; i < spw_limit_count; i++) {
		const spw_limit_def *d = &spw_limit_table[i];

		v = json_object_get(l, d->key);
		if (!v)
			continue;
		rc = from_json(d, v, out);
		if (rc < 0)
			return rc;
	}
	return 0;
}

json_t *spw_limits_json(const spw_limits *l)
{
	json_t *j = json_object();

	for (size_t i = 0; j && i < spw_limit_count; i++) {
		const spw_limit_def *d = &spw_limit_table[i];
		json_t *v;

		if (!(field_get(l, d->off, d->type) > 0))
			continue;
		if (d->type == SPW_LIMIT_DOUBLE)
			v = json_real(field_get(l, d->off, d->type));
		else if (d->unit == SPW_LIMIT_SECONDS)
			v = json_integer(field_i64(l, d) / 1000);
		else
			v = json_integer(field_i64(l, d));
		json_object_set_new(j, d->key, v);
	}
	return j;
}

/* --- the environment --- */

/* One row's variable (or its default) into *max. */
static int from_env(const spw_limit_def *d, spw_limits *max)
{
	const char *v = getenv(d->env);
	int64_t def = 0, n = 0;
	double x;
	char *end;
	int rc;

	switch (d->unit) {
	case SPW_LIMIT_COUNT:
		rc = cfg_parse_int(d->def, &def);
		if (rc == 0)
			rc = cfg_env_int(d->env, def, (int64_t)d->min, (int64_t)d->max, &n);
		break;
	case SPW_LIMIT_SECONDS:
		rc = cfg_parse_duration_ms(d->def, &def);
		if (rc == 0)
			rc = cfg_env_duration_ms(d->env, def, (int64_t)d->min * 1000,
						 (int64_t)d->max * 1000, &n);
		break;
	case SPW_LIMIT_SIZE:
		if (!v || !*v)
			v = d->def;
		rc = cfg_parse_size(v, &n);
		if (rc < 0 || n < MIN_SIZE)
			rc = err_set(ERR_INVALID, "%s must be a size of at least 1M (\"512M\", "
						  "\"2G\"), got '%s'", d->env, v);
		break;
	case SPW_LIMIT_NUMBER:
		if (!v || !*v)
			v = d->def;
		x = strtod(v, &end);
		if (*end || !isfinite(x) || x <= 0 || x > d->max)
			return err_set(ERR_INVALID, "%s must be a number above 0, at most %g (got "
						    "'%s')", d->env, d->max, v);
		field_set(max, d->off, d->type, x);
		return 0;
	default:
		rc = err_set(ERR_INTERNAL, "%s: unknown unit", d->env);
	}
	if (rc == 0)
		field_set_i64(max, d, n);
	return rc;
}

int spw_limits_from_env(spw_limits *max)
{
	int rc = 0;

	memset(max, 0, sizeof(*max));
	for (size_t i = 0; rc == 0 && i < spw_limit_count; i++)
		rc = from_env(&spw_limit_table[i], max);
	return rc;
}

/* --- in force --- */

void spw_limits_apply(spw_limits *l, const spw_limits *max)
{
	for (size_t i = 0; i < spw_limit_count; i++) {
		const spw_limit_def *d = &spw_limit_table[i];

		if (d->type == SPW_LIMIT_DOUBLE) {
			double v = field_get(l, d->off, d->type), m = field_get(max, d->off, d->type);

			if (v <= 0 || (m > 0 && v > m))
				field_set(l, d->off, d->type, m);
		} else {
			int64_t v = field_i64(l, d), m = field_i64(max, d);

			if (v <= 0 || (m > 0 && v > m))
				field_set_i64(l, d, m);
		}
	}
}

void spw_limits_to_sbx(const spw_limits *l, struct sbx_opts *o)
{
	for (size_t i = 0; i < spw_limit_count; i++) {
		const spw_limit_def *d = &spw_limit_table[i];

		if (d->sbx_off < 0)
			continue;
		if (d->type == SPW_LIMIT_DOUBLE)
			field_set(o, (size_t)d->sbx_off, d->type, field_get(l, d->off, d->type));
		else /* the same type in both structs */
			memcpy((char *)o + d->sbx_off, (const char *)l + d->off,
			       d->type == SPW_LIMIT_INT ? sizeof(int) : sizeof(int64_t));
	}
}
