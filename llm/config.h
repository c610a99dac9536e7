/*
 * config — the model configuration stored in PostgreSQL, changed at run
 * time (migrations/025_llm_config.sql).
 *
 * The same document a models file holds (endpoints, models with their
 * provider quirks and parameters, roles with their escalation chains, the
 * scheduler, default budgets) is kept one object per row. A change — one
 * object set or removed — is validated before it is stored: the whole
 * configuration with the change must load (llm/registry.h), keys come only
 * from the secrets store (api_key_secret, which must be readable), an
 * endpoint set or a model moved to it is probed (its server must answer,
 * and list the model id where it lists ids; llm/server.h), and optionally a
 * short call is made to each model the change touches through the provider's
 * quirks. A refused change stores nothing and says why. A stored change
 * bumps the version, writes its audit row (who, when, old -> new) and
 * NOTIFYs orch_llm_config in the same transaction.
 *
 * Until the first change the database holds nothing and every process uses
 * its own file (ORCH_MODELS) or environment (LLM_*): the first change copies
 * the changing process's configuration in first ("seed", audited), then
 * applies itself. `clear` drops the stored configuration again.
 *
 * The watcher (one thread per process, llm_config_watch_start) LISTENs and
 * also polls the version, and puts a new version in force in the
 * llm_service (llm_service_set_registry) and the prompt templates in
 * core/embed, within seconds of the change.
 *
 * Functions take a borrowed connection; thread-safe as far as the
 * connection is not shared.
 */
#ifndef ORCH_LLM_CONFIG_H
#define ORCH_LLM_CONFIG_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"
#include "llm/llm.h"
#include "llm/registry.h"

/* One change. Every pointer is borrowed. */
typedef struct llm_config_change {
	const char *kind;        /* "endpoint", "model", "role", "scheduler", "budgets", "prompt" */
	const char *name;        /* the object (scheduler, budgets: NULL); a prompt's path */
	const json_t *value;     /* its new configuration, as in a models file (a prompt: a
				  * string); NULL removes it */
	int64_t expect_version;  /* >= 0: refused (ERR_CONFLICT) unless the stored version is
				  * this one (a form edited from it) */
	const char *actor;       /* who: "cli:ada", "web:ada" */
	int try_call;            /* also one short call to each model the change touches */
} llm_config_change;

typedef struct llm_config_result {
	int64_t version;         /* the version stored */
	int seeded;              /* the process's file or environment was copied in first */
	char notes[2048];        /* what the probes showed, one line each */
} llm_config_result;

/* Validates and stores `ch` as described above. `seed` (borrowed, may be
 * NULL) is this process's file or environment configuration, copied in
 * when the database holds none yet. ERR_INVALID (the configuration does
 * not load, a key from the environment, an unknown kind), ERR_AUTH (the
 * key's secret cannot be read), ERR_HTTP (an endpoint does not answer, or
 * the try call failed: the provider's reason), ERR_NOTFOUND (the server
 * does not list the model id, or nothing to remove), ERR_CONFLICT (stale
 * expect_version), ERR_DB; each with what to do. Nothing is stored on any
 * error. */
int llm_config_apply(pg_conn *c, const llm_config_change *ch, const llm_registry *seed,
		     llm_config_result *out);

/* The stored document (owned), its version and whether anything is stored
 * (an empty document when not). */
int llm_config_read(pg_conn *c, json_t **out_doc, int64_t *out_version, int *out_stored);

/* The stored configuration as a registry (owned; NULL when nothing is
 * stored) and its version. */
int llm_config_load(pg_conn *c, llm_registry **out, int64_t *out_version);

/* Drops the stored configuration (audited, announced): processes go back
 * to their file or environment. */
int llm_config_clear(pg_conn *c, const char *actor, int64_t *out_version);

/* Writes an audit row (budgets, which live in llm_budgets, audit through
 * this). old/new_value may be NULL. */
int llm_config_audit(pg_conn *c, const char *actor, const char *action, const char *kind,
		     const char *name, const json_t *old, const json_t *new_value);

/* The newest `limit` audit rows, newest first: [{id, at, actor, action,
 * kind, name, old, new, version}]. */
int llm_config_audit_list(pg_conn *c, int limit, json_t **out);

/* The prompt templates: every built-in one ({name, overridden, updated_at,
 * updated_by, placeholders}) and the override's body when `with_body`. */
int llm_config_prompts(pg_conn *c, int with_body, json_t **out);

/* Puts the stored prompt templates in force in this process (core/embed). */
int llm_config_prompts_install(pg_conn *c);

/* A budget of a project or user (llm/ledger.h) set (limit >= 0, period
 * as llm_budget_set), extended (add > 0) or removed, with its audit row,
 * in one transaction. Exactly one of the three: set when limit >= 0,
 * extend when add > 0, else remove. *out_limit (may be NULL) gets the
 * limit after an extension. */
int llm_config_budget(pg_conn *c, const char *actor, const char *kind, const char *scope,
		      double limit, const char *period, double add, double *out_limit);

/* --- the watcher --- */

typedef struct llm_config_watch llm_config_watch;

/* Puts the stored configuration in force in `s` now (when one is stored),
 * then starts the thread that follows its changes (NOTIFY and a poll every
 * poll_ms, 0: 5 s) until the service is freed (it stops the watcher
 * first). `db_url` is the database's (a connection of its own). */
int llm_config_watch_start(llm_service *s, const char *db_url, int64_t poll_ms);

#endif
