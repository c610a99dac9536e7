/*
 * request — a spawn request, parsed and checked at the edge.
 *
 * A spawn request is the JSON object a node writes with
 * eng_emit(ctx, "spawn", NULL, payload) (the relay adds "id", "thread_id"
 * and "run_id") or that any producer XADDs to the spawn stream. Its fields
 * (spawner/spawner.h has the whole protocol):
 *
 *   id            required  idempotency id: [A-Za-z0-9][A-Za-z0-9._:-]{0,127}
 *                           (the relay keeps a payload's valid id, else uses
 *                           "ob-<outbox row id>")
 *   mode          optional  "work" (the default: a coding agent on the task), "merge"
 *                           (rebase task/<task> onto `target`, re-test, fast-forward
 *                           `target`), "publish" (push `target` to `mirror`),
 *                           "import" (the branch `target` of `repo`, a remote, into
 *                           `mirror`, the project's own repository; "" : main, else
 *                           master, else its only branch), "test" (the test command
 *                           run on `base`, nothing else: a baseline) or "pr" (push
 *                           `target` to `mirror` as branch pr.head and open or update
 *                           the pull request pr.head -> pr.base on its forge)
 *   task          required  task id [A-Za-z0-9][A-Za-z0-9._-]{0,63}: the branch is task/<task>
 *   project       required  the project (its thread key): secrets scope, budgets
 *   repo          required  the project repository: an absolute path of a local
 *                           repository (bare or not) under ORCH_SPAWN_REPO_ROOTS, or an
 *                           http(s):// or ssh:// URL
 *   prompt        work      what to do, for the agent (at most 64 KiB)
 *   target        optional  merge, publish: the branch merged into or pushed (default main)
 *   mirror        optional  merge, publish: a second repository (a URL, or a path under
 *                           ORCH_SPAWN_REPO_ROOTS) that gets `target` after it moved;
 *                           repo_secret authenticates it too
 *   min_tests     optional  merge: the re-tested result must count at least this many
 *                           tests (what the target had), else it is "failed"
 *   allowed_failures optional work, merge: failing tests accepted (the repository's
 *                           baseline: tests that failed on the base before any work);
 *                           with it the tests pass when their counts are known, no
 *                           more than this many fail and (work) no fewer pass than on
 *                           the base
 *   allowed_failing optional with allowed_failures: the names of those failing tests
 *                           (spawner/testsum.h); when the run names every failure,
 *                           each must be one of them (a test that passed on the base
 *                           and fails now is not accepted)
 *   pr            pr        {"head": branch on the remote, "base": the pull request's
 *                           base branch, "title", "body" (at most 64 KiB)}
 *   base          optional  branch, tag or commit to start from (default: the
 *                           repository's default branch)
 *   test_command  optional  shell command that runs the project's tests; without it
 *                           a worker can never be "done" (only "unverified")
 *   handles       optional  resource handles granted to the worker's sandbox
 *   repo_secret   optional  handle (kind git) whose secret authenticates clone and push
 *   thread_id     optional  engine thread that receives the result as an event
 *   run_id        optional  the run that asked (ledger, audit)
 *   user          optional  budget scope of the person
 *   role          optional  LLM role of the agent (default ORCH_AGENT_ROLE, "worker")
 *   limits        optional  {"steps", "cost_usd", "wall_s", "cmd_timeout_s", "mem",
 *                           "pids", "cpus", "disk", "format_errors", "repeats",
 *                           "stall_steps"}: each may only lower the spawner's maximum
 *   meta          optional  any JSON object (at most 4 KiB), copied into the result
 *   setup_command optional  shell command run from /workspace before the base's
 *                           tests and again before the verifying tests (install the
 *                           dependencies from the lock file); the phase "setup"
 *   network       optional  the worker's egress (spawner/egress.h), else the
 *                           spawner's ORCH_NET_POLICY: {"policy": "none" |
 *                           "registries" | "hosts", "language": L (registries: whose
 *                           registries, from the spawner's lists), "hosts": [host
 *                           patterns] (hosts), "phases": ["setup", "agent", "test"]
 *                           (which phases get the network; default ORCH_NET_PHASES)}
 *
 * Unknown fields are refused, so a typo is reported rather than ignored.
 */
#ifndef ORCH_SPAWNER_REQUEST_H
#define ORCH_SPAWNER_REQUEST_H

#include "spawner/limits.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SPW_ID_MAX 128
#define SPW_TASK_MAX 64
#define SPW_PROMPT_MAX (64 * 1024)
#define SPW_HANDLES_MAX 64


/* Phases of a worker that may get the network. */
#define SPW_NET_SETUP 1u
#define SPW_NET_AGENT 2u
#define SPW_NET_TEST 4u

/* The network a request asks for. */
typedef struct spw_network {
	int given;               /* the request has "network" (else the spawner's default) */
	char policy[16];         /* "none", "registries" or "hosts" */
	char language[64];       /* registries: lower case */
	char *hosts;             /* hosts: the patterns, one per line; owned */
	unsigned phases;         /* SPW_NET_*; 0: the spawner's default */
} spw_network;

/* Parses a list of phase names ("setup agent", "setup,test", or a JSON
 * array's strings joined) into SPW_NET_* bits. ERR_INVALID naming the
 * unknown one. "none" is 0. */
int spw_phases_parse(const char *list, unsigned *out);

typedef struct spw_request {
	char id[SPW_ID_MAX + 1];
	char mode[16];           /* "work" (default), "merge" or "publish" */
	char task[SPW_TASK_MAX + 1];
	char project[256];
	char user[128];
	char repo[1024];
	char base[256];          /* "" : the default branch */
	char repo_secret[64];    /* "" : none */
	char role[96];           /* "" : the default */
	int64_t thread_id;       /* 0: none */
	int64_t run_id;          /* 0: none */
	char target[256];        /* merge, publish: "" means "main" */
	char mirror[1024];       /* merge, publish: "" for none */
	int64_t min_tests;       /* merge: 0 for no floor */
	int allowed_failures;    /* work, merge: the baseline's failing tests */
	char *allowed_failing;   /* their names, one a line; owned; NULL: by counts */
	struct {
		char head[256], base[256], title[256];
		char *body;      /* owned; NULL: none */
	} pr;                    /* mode pr */
	char *prompt;            /* owned; NULL outside mode "work" */
	char *test_command;      /* owned; NULL: none */
	char *setup_command;     /* owned; NULL: none */
	spw_network net;
	char **handles;          /* owned */
	size_t nhandles;
	spw_limits limits;
	json_t *meta;            /* owned; NULL: none */
} spw_request;

/* Parses `text` into *out (initialised here; free with spw_request_free in
 * every case). ERR_INVALID with a message naming the field and what it must
 * be. When parsing fails the fields read so far stay set (id, thread_id),
 * so a refusal can still be addressed to the requester. */
int spw_request_parse(const char *text, size_t len, spw_request *out);

/* The same from a parsed JSON value (borrowed). */
int spw_request_from_json(const json_t *j, spw_request *out);

void spw_request_free(spw_request *r);

/* The request as JSON for the record (handles, never a secret). Owned. */
json_t *spw_request_json(const spw_request *r);

/* True for the modes that run no agent (all but "work"). */
int spw_request_is_git_only(const spw_request *r);

/* Checks an idempotency id's form. */
int spw_id_check(const char *id);


#endif
