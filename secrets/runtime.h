/*
 * runtime — the secrets of a running orchestrator process.
 *
 * A long-running process (`orchestrator serve`, `engine`, later `bot` and
 * `spawner`) calls sec_runtime_start() once at start-up, after the
 * database pool exists and before it starts threads. It
 *   - installs the redaction filter (secrets/redact.h) as the process-wide
 *     hook of core/redact.h;
 *   - opens the secrets store with the master key (ORCH_MASTER_KEY or the
 *     key file) and checks the key against the database;
 *   - decrypts every secret once into the filter (locked memory), so no
 *     stored value can reach a log line, a model, a chat or a transcript;
 *   - wipes ORCH_MASTER_KEY from the process environment, so no child
 *     process (a worker, a git hook) inherits it.
 *   - starts a thread that, every ORCH_SECRETS_REFRESH (default 5 s; 0:
 *     never), checks a fingerprint of the secrets table (key version,
 *     count, newest id and change) and decrypts into the filter what was set
 *     since; when the database had no key at start-up and `secrets init`
 *     ran since, it opens the store then (the key source is the one read
 *     at start-up). A value set by another process is thus filtered here
 *     within one period.
 * Then the other parts use the store through it:
 *   - the spawner: sec_env_resolve(sec_runtime_store(), conn, &grant, &env);
 *   - the LLM layer: sec_resolve_name(name, &value), a plain function to
 *     hand to its resolver hook (llm_set_secret_resolver).
 */
#ifndef ORCH_SECRETS_RUNTIME_H
#define ORCH_SECRETS_RUNTIME_H

#include "core/pg.h"
#include "secrets/store.h"

typedef struct sec_runtime_report {
	int configured;   /* the database has a master key (secrets init was run) */
	int loaded;       /* secrets decrypted into the redaction filter */
	int damaged;      /* secrets that failed their integrity check (logged) */
	char where[1100]; /* where the key came from */
} sec_runtime_report;

/* Starts the process's secrets on `pool` (borrowed; must outlive
 * sec_runtime_stop). `data_dir` gives the default key file. When the
 * database has no master key yet (secrets init never ran) the filter is
 * installed, no store is opened, and 0 is returned with configured = 0:
 * a process can run without secrets. When it has one, the key must be
 * present and right: ERR_NOTFOUND (key file missing), ERR_DENIED (key file
 * open to group/others), ERR_CRYPTO (wrong key), so a misconfigured process
 * stops at start-up rather than at a worker's start. A damaged secret is
 * logged and counted, not fatal. `out` may be NULL. Not thread-safe: call
 * once, before other threads use secrets. */
int sec_runtime_start(pg_pool *pool, const char *data_dir, sec_runtime_report *out);

/* Stops the refresher thread and closes the store (the filter stays
 * installed: lines written while the process ends are still filtered).
 * Safe to call twice. */
void sec_runtime_stop(void);

/* The process's store, or NULL when secrets are not set up. Borrowed. */
sec_store *sec_runtime_store(void);

/* Resolves secret `name` to its value for code inside orchestrator (the
 * LLM layer's endpoint keys), on the runtime's pool: *out_value is owned by
 * the caller and released with sec_value_free(). Records an audit row
 * (actor "llm") and counts a use, so keep the value for the endpoint's
 * life rather than resolving per request. ERR_NOTFOUND (no such secret, or
 * no secrets set up), ERR_CRYPTO (tampered, or the key was rotated and
 * cannot be reloaded), ERR_TIMEOUT/ERR_DB (database). Thread-safe. */
int sec_resolve_name(const char *name, char **out_value);

#endif
