/*
 * limits — a worker's limits, declared once.
 *
 * Each limit is one row of spw_limit_table: its key in a spawn request's
 * "limits", the environment variable of the spawner's maximum (which is also
 * the default), that default as the variable would be written, its bounds,
 * its unit (how a request and the environment write it), the field of
 * spw_limits that holds it and the field of sbx_opts it sets, if any. The
 * request parser, the JSON a request is written back as, the configuration,
 * the rule "a request may only lower a limit" and the sandbox's options all
 * read the table; so does a test that checks the README lists every row.
 * Adding a limit is a field in spw_limits and one row in the table.
 */
#ifndef ORCH_SPAWNER_LIMITS_H
#define ORCH_SPAWNER_LIMITS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sbx_opts;

/* Limits of one worker. In a request 0 means "not given"; after
 * spw_limits_apply every field holds the value in force. */
typedef struct spw_limits {
	int steps;              /* model replies */
	double cost_usd;        /* model spending */
	int64_t wall_ms;        /* the agent's whole run */
	int64_t cmd_timeout_ms; /* one shell action */
	int64_t mem_bytes;      /* sandbox memory */
	int64_t pids;           /* sandbox processes */
	double cpus;            /* sandbox CPU */
	int64_t disk_bytes;     /* workspace quota */
	int format_errors;      /* replies in a row without one action */
	int repeats;            /* the same action with the same output, diff unchanged */
	int stall_steps;        /* steps in a row without a change to the diff */
} spw_limits;

/* How a limit is written, and what its field holds. */
typedef enum spw_limit_unit {
	SPW_LIMIT_COUNT,   /* an integer in [min, max] */
	SPW_LIMIT_NUMBER,  /* a number above 0, at most max */
	SPW_LIMIT_SECONDS, /* whole seconds in [min, max] in a request, a duration ("30m") in the
			      environment; the field holds milliseconds */
	SPW_LIMIT_SIZE,    /* bytes, or "512M", "2G"; at least 1M */
} spw_limit_unit;

/* The C type of a limit's field in spw_limits (and in sbx_opts). */
typedef enum spw_limit_type { SPW_LIMIT_INT, SPW_LIMIT_I64, SPW_LIMIT_DOUBLE } spw_limit_type;

typedef struct spw_limit_def {
	const char *key;     /* in a request's "limits" */
	const char *env;     /* the spawner's maximum and default */
	const char *def;     /* the default, written as the variable would be */
	spw_limit_unit unit;
	spw_limit_type type;
	double min, max;     /* bounds, in the request's unit (SIZE: none but 1M) */
	size_t off;          /* offsetof(spw_limits, its field) */
	ptrdiff_t sbx_off;   /* offsetof(sbx_opts, the field it sets), or -1: none */
	const char *meaning; /* what it limits (the README's words) */
} spw_limit_def;

/* The table, spw_limit_count rows, static. */
extern const spw_limit_def spw_limit_table[];
extern const size_t spw_limit_count;

/* The row of a request key, or NULL. */
const spw_limit_def *spw_limit_find(const char *key);

/* A request's "limits" object (NULL or null: none) into *out (fields not
 * given stay 0). ERR_INVALID, with a message naming the key, on an unknown
 * key or a value out of bounds. */
int spw_limits_from_json(const json_t *l, spw_limits *out);

/* The limits given (non-zero fields) as a request's "limits" object; owned,
 * NULL when out of memory. */
json_t *spw_limits_json(const spw_limits *l);

/* The spawner's maxima and defaults from the environment (each row's
 * variable, or its default). ERR_INVALID naming the variable on a bad
 * value. */
int spw_limits_from_env(spw_limits *max);

/* Fills every unset (0) field of `l` from `max`, and lowers every field
 * above its maximum to it. */
void spw_limits_apply(spw_limits *l, const spw_limits *max);

/* Sets the fields of `o` that a limit sets (memory, processes, CPU). */
void spw_limits_to_sbx(const spw_limits *l, struct sbx_opts *o);

#endif
