/*
 * spawn_support — what the spawner, agent and Redis tests share: a tiny
 * project with a failing test in a real bare repository, scripted replies
 * for the fake LLM server, a private Redis server that a test may restart,
 * and a shell helper.
 */
#ifndef ORCH_TESTS_SPAWN_SUPPORT_H
#define ORCH_TESTS_SPAWN_SUPPORT_H

#include <jansson.h>
#include <sys/types.h>

#include "core/buf.h"
#include "tests/support/fake_llm.h"

/* Runs `sh -c CMD` (printf format); returns its exit status. Its stdout
 * goes to `out` when non-NULL. */
int tss_sh(buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Creates ORCH_DATA_DIR/repos/<name>.git, a bare repository whose branch
 * main holds a Python project: calc.py (add() subtracts: the bug),
 * test_calc.py (3 unittest tests, 2 of them failing) and a .gitignore.
 * Writes the path into out[cap]. */
void tss_project_repo(const char *name, char *out, size_t cap);

/* The test command of that project. */
#define TSS_TEST_CMD "python3 -m unittest -v"

/* Replies for the fake LLM (tests/fakes/fake_openai), each a chat
 * completion with `tokens_in`/`tokens_out` usage. Owned. */
json_t *tss_text(const char *content);
json_t *tss_bash(const char *command);             /* a `bash` tool call */
json_t *tss_tool(const char *name, const char *arguments_json);
json_t *tss_usage(json_t *reply, int tokens_in, int tokens_out); /* returns reply */
json_t *tss_delay(json_t *reply, int delay_ms);    /* returns reply */

/* Appends the replies (an array, stolen) to the fake's queue. */
void tss_script(fake_llm *f, json_t *replies);

/* Writes a models file for the fake (one model "fake-1" at $1/$2 per 1M
 * tokens, for every role) and sets ORCH_MODELS to it. Returns its path. */
const char *tss_models(fake_llm *f);

/* A private redis-server with appendonly on, data under ORCH_DATA_DIR. */
typedef struct tss_redis {
	pid_t pid;
	int port;
	char dir[512];
	char url[160];
	char password[64]; /* "" for none; set before tss_redis_start */
} tss_redis;

/* Starts it (on a free port the first time, the same port after a stop)
 * and waits until it answers. */
void tss_redis_start(tss_redis *r);

/* Stops it gracefully (SIGTERM: the server flushes its append-only file). */
void tss_redis_stop(tss_redis *r);

#endif
