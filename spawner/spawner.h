/*
 * spawner — the role that turns spawn requests into sandboxed workers.
 *
 * One spawner process runs:
 *   - the outbox relay: outbox rows of kind "spawn" (eng_emit in a node)
 *     are XADDed to the spawn stream with the payload's own valid "id", or
 *     else "ob-<row id>", as idempotency id;
 *   - the consumer: reads the spawn stream in consumer group `spawners`,
 *     starts up to ORCH_MAX_WORKERS workers, reclaims (XAUTOCLAIM) entries
 *     whose spawner died, and finishes each entry once its result is stored;
 *   - heartbeats: every in-flight entry's idle time is reset (XCLAIM JUSTID)
 *     and its worker's lease in PostgreSQL renewed, a third of
 *     ORCH_SPAWN_CLAIM_IDLE apart, so only a dead spawner's work is taken;
 *   - the janitor: at start-up and every ORCH_SPAWN_CLEANUP, removes the
 *     workspaces of finished or dead workers and the cgroups of dead
 *     sandboxes, and trims acknowledged entries from the spawn stream.
 * Any number of spawners may share one Redis and one database.
 *
 * THE PROTOCOL (Redis; the contract for producers and consumers)
 *
 *   orch:spawn            stream of requests: XADD orch:spawn * id <id> req <json>
 *                         (spawner/request.h lists the request's fields)
 *   spawners              its consumer group
 *   orch:results          stream of results: fields id <id> result <json>
 *                         (trimmed to about 10000 entries)
 *   worker:result:<id>    PUBLISH of the result json when it is stored
 *   worker:log:<id>       PUBLISH of live lines {"t": ms, "kind": "model" |
 *                         "action" | "output" | "status", "text": ...} (lossy:
 *                         pub/sub; the transcript is the record)
 *
 * Exactly once: a request id has one row in the `workers` table (PostgreSQL
 * rather than a Redis key: the record must outlive a Redis that lost its
 * data, lives beside the runs and events it belongs to, and its lease runs
 * on the database's clock, one for every spawner). The first
 * spawner to insert it runs the worker; a repeated id (the relay delivering
 * twice, a producer retrying) never starts a second one: while the first
 * runs the duplicate entry stays pending, and once it has finished the
 * stored result is announced again (for a new requester) but the results
 * stream gets one entry per id. A spawner that dies leaves its entry
 * pending and its lease expiring; after ORCH_SPAWN_CLAIM_IDLE another
 * spawner reclaims the entry and starts the task again from scratch
 * (attempt 2, ...; after ORCH_SPAWN_MAX_ATTEMPTS the result is an error).
 * The result is stored (PostgreSQL) and delivered to the requesting thread
 * before the entry is acknowledged, so a crash at any point repeats the
 * finishing steps, which are idempotent, and loses nothing.
 *
 * THE RESULT (JSON; on orch:results, worker:result:<id>, in workers.result,
 * and as the thread event below)
 *
 *   {"id": request id, "task": ..., "status": S, "reason": one line,
 *    "project", "thread_id", "run_id", "attempt", "spawner", "meta" (copied),
 *    "branch": "task/<task>", "base_commit": sha, "commit": sha (the base when
 *    nothing changed), "changed": bool, "pushed": bool,
 *    "diff": {"files", "insertions", "deletions", "paths": [..]},
 *    "tests": {"command", "verdict": "passed" | "failed" | "shrank" | "none" |
 *              "error", "passed", "failed", "skipped", "total", "format",
 *              "exit_code", "base": {"passed", "failed", "total"}, "output": tail},
 *    "agent": {"exit": agent_exit_name(), "reason", "steps", "actions",
 *              "format_errors", "summary"},
 *    "tokens": {"in", "out"}, "cost_usd", "wall_ms",
 *    "transcript": path of the JSON-lines transcript on the spawner's host}
 *
 *   S is one of
 *     done        the agent submitted, the task's tests passed in a fresh
 *                 sandbox, their number did not shrink, and the branch is pushed
 *     unverified  the agent submitted and the branch is pushed, but the request
 *                 had no test_command: nothing checked it
 *     failed      the agent did not finish (a limit, a loop, the budget: see
 *                 agent.exit) or its tests failed or shrank; what it did is
 *                 committed and pushed all the same when anything changed,
 *                 unless a changed file holds a secret's value (then nothing
 *                 is pushed and reason names the file)
 *     refused     the worker did not start: a handle is unknown, revoked or
 *                 another project's, or the repository is not allowed
 *     invalid     the request is malformed (reason says which field)
 *     error       the spawner could not do its part (clone, sandbox, push), or
 *                 gave up after ORCH_SPAWN_MAX_ATTEMPTS spawners died on it
 *   Only "done" means done. Fields that do not apply are absent.
 *
 * MODES. A request's "mode" is "work" (above), "merge" or "publish" (no
 * agent, spawner/merge.c): a merge rebases task/<task> onto "target"
 * (default main) in memory, runs the test command on the result in a fresh
 * sandbox and, when it passes (and counts at least "min_tests"), moves
 * "target" forward to it (a fast-forward) and task/<task> to it; statuses
 * done (merged), unverified (merged, no test command), conflict ("conflicts"
 * lists the paths; nothing changed), failed (the tests fail on the rebased
 * result; nothing changed), error (e.g. the target moved meanwhile: ask
 * again), refused, invalid. A "mirror" then gets the target pushed as well
 * ("mirror": {"url", "pushed", "error"}). A publication pushes "target" to
 * "mirror": done or error.
 *
 * CANCELLING. spw_cancel_thread() (SQL spawn_cancel_thread, migration 006)
 * withdraws a thread's spawn requests: unsent ones are never sent, sent ones
 * that no spawner started get a finished "cancelled" row (so none ever
 * starts), and running workers are stopped at their next heartbeat and
 * finish as "cancelled" (not run again).
 *
 * THE ENGINE EVENT: a request with "thread_id" gets its result delivered to
 * that thread as event key "worker" (SPW_EVENT_KEY), value = the result
 * above, idempotency key "spawn:<id>" (eng_deliver), before the stream entry
 * is acknowledged. One key for all workers: a developer node fans tasks out
 * with eng_emit(ctx, "spawn", NULL, request) and collects finished ones with
 * eng_take(ctx, "worker", &results) (matching "task" or "meta"), waiting with
 * eng_wait(ctx, "worker", ...) while some are outstanding. A malformed
 * request that names its thread gets its "invalid" result there too.
 */
#ifndef ORCH_SPAWNER_SPAWNER_H
#define ORCH_SPAWNER_SPAWNER_H

#include <stdint.h>

#include "core/pg.h"
#include "llm/llm.h"
#include "spawner/request.h"

#define SPW_STREAM "orch:spawn"
#define SPW_GROUP "spawners"
#define SPW_RESULTS "orch:results"
#define SPW_EVENT_KEY "worker"
#define SPW_OUTBOX_KIND "spawn"

/* Settings; spw_config_from_env documents each variable. */
typedef struct spw_config {
	char redis_url[1024];
	char data_dir[1024];         /* workers/ and transcripts/ live here */
	int max_workers;             /* ORCH_MAX_WORKERS (2) */
	int64_t claim_idle_ms;       /* ORCH_SPAWN_CLAIM_IDLE (60s): lease and reclaim time */
	int max_attempts;            /* ORCH_SPAWN_MAX_ATTEMPTS (3) */
	int64_t cleanup_ms;          /* ORCH_SPAWN_CLEANUP (10m) */
	int relay;                   /* ORCH_SPAWN_RELAY (1): run the outbox relay */
	char repo_roots[4096];       /* ORCH_SPAWN_REPO_ROOTS (data_dir/repos): ':'-separated */
	spw_limits max;              /* ORCH_AGENT_MAX_* and ORCH_WORKER_*: maxima and defaults */
	char role[96];               /* ORCH_AGENT_ROLE (worker) */
	int use_tools;               /* ORCH_AGENT_TOOLS (1) */
	int64_t output_cap;          /* ORCH_AGENT_OUTPUT_CAP (10000 bytes) */
	int64_t test_timeout_ms;     /* ORCH_TEST_TIMEOUT (10m) */
	char sandbox[16];            /* ORCH_SANDBOX (ns) */
	char sandbox_image[256];     /* ORCH_SANDBOX_IMAGE (docker) */
	char sandbox_runtime[64];    /* ORCH_SANDBOX_RUNTIME (docker) */
	int allow_degraded;          /* ORCH_SANDBOX_DEGRADED (0) */
	char disk_kind[16];          /* ORCH_WORKER_DISK_KIND: loop | tmpfs | none (loop) */
	/* the network (spawner/egress.h; README: "Network") */
	char net_policy[2048];       /* ORCH_NET_POLICY (none): none, registries, or host patterns */
	unsigned net_phases;         /* ORCH_NET_PHASES (setup): SPW_NET_* */
	char net_registries[8192];   /* "language=patterns" lines: the built-in lists, each
					replaced or joined by ORCH_NET_REGISTRIES_<LANGUAGE> */
	int net_max_conns;           /* ORCH_NET_MAX_CONNS (32): at once, per worker */
	int64_t net_max_bytes;       /* ORCH_NET_MAX_BYTES (2G): per worker, both ways */
	/* pull requests (spawner/forge.h; README: "Changing an existing repository") */
	char forge_api[512];         /* ORCH_FORGE_API (""): the forge's API; "" derives it
					from the remote's URL */
	int64_t forge_poll_ms;       /* ORCH_FORGE_POLL (60s): how often open pull requests
					are read for comments and CI failures; 0: never */
	char net_socket_dir[80];     /* ORCH_NET_SOCKET_DIR: where the proxy's sockets go
					(a folder per spawner in it); "": /run/orch-egress */
	/* set by the caller: each worker's lines (its phases, the agent's steps and
	 * commands, as `logs -f` shows them) as custom events of its project's
	 * thread (engine/stream.h: node "worker", {"worker", "kind", "text", "t"},
	 * seq 0 as they are not the run's own); NULL: none. Borrowed */
	struct eng_stream_hub *hub;
} spw_config;

/* The host patterns of the registries of `language` (any case; python3,
 * js, typescript, golang... name their family) into out[cap], separated by
 * spaces. ERR_NOTFOUND when the configuration lists none. */
int spw_net_registries(const spw_config *cfg, const char *language, char *out, size_t cap);

/* Defaults, then the environment (README: "Spawner and workers"). `redis_url`
 * and `data_dir` come from the caller (REDIS_URL, ORCH_DATA_DIR).
 * ERR_INVALID naming the variable. */
int spw_config_from_env(spw_config *out, const char *redis_url, const char *data_dir);

/* Checks that this host can run workers as configured (the sandbox
 * backend, the disk quota tools, the data folder). ERR_SANDBOX or ERR_IO
 * with what to do. */
int spw_preflight(const spw_config *cfg);

typedef struct spw_spawner spw_spawner;

/* Creates a spawner on `pool` and `llm` (borrowed; they must outlive it).
 * The secrets runtime (secrets/runtime.h), when started, resolves handles;
 * without it a request with handles is refused. The caller owns *out. */
int spw_new(spw_spawner **out, const spw_config *cfg, pg_pool *pool, llm_service *llm);

/* Sweeps leftovers of dead workers, then starts the threads. A Redis that
 * cannot be reached is not an error: the threads retry with backoff. */
int spw_start(spw_spawner *s);

/* Stops taking requests, stops running workers (their entries stay pending
 * and their leases are released, so another spawner, or this one
 * restarted, runs them again) and joins every thread. Safe to call twice. */
void spw_stop(spw_spawner *s);

/* Stops (if needed) and frees. NULL is a no-op. */
void spw_free(spw_spawner *s);

/* This spawner's consumer name: "<host>-<pid>-<random>". Borrowed. */
const char *spw_id(const spw_spawner *s);

/* Workers running now. */
int spw_busy(spw_spawner *s);

/* Cancels the workers of engine thread `thread_id` (see CANCELLING), on the
 * caller's connection. *out_n (may be NULL) gets how many requests were
 * withdrawn or stopped. */
int spw_cancel_thread(pg_conn *c, int64_t thread_id, const char *reason, int *out_n);

/* Runs the janitor once: workspaces of finished or dead workers removed,
 * dead sandboxes' cgroups swept. *out_removed (may be NULL) gets the number
 * of workspaces removed. */
int spw_cleanup(spw_spawner *s, int *out_removed);

#endif
