/*
 * factory_support — what the factory's end-to-end tests share: the fake
 * Telegram and OpenAI-compatible servers, the orchestrator processes
 * (serve, or bot + spawner + engines that a test kills), the scripted model
 * replies of a small but real project ("strkit": three Python modules with
 * their tests, built by agents whose commands really run in sandboxes), and
 * helpers to find messages and click their buttons.
 */
#ifndef ORCH_TESTS_FACTORY_SUPPORT_H
#define ORCH_TESTS_FACTORY_SUPPORT_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/pg.h"
#include "tests/support/fake_llm.h"
#include "tests/support/fake_tg.h"

#define TF_OWNER 111    /* the allowed user; also the private chat's id */
#define TF_WAIT_MS 180000 /* generous: workers run their tests in sandboxes */

typedef struct tf_env {
	ts_fake tg;
	fake_llm llm;
	pg_conn *db;
	char log[1024];     /* the processes' stderr */
	pid_t pids[32];     /* every process started, for tf_stop */
	int npids;
} tf_env;

/* Starts both fakes, writes the models file (one model per role:
 * m-brainstorm, m-architect, m-developer, m-reviewer) and sets the
 * environment every orchestrator process of the test inherits. */
void tf_start(tf_env *e);
/* Stops what tf_start and tf_spawn started, also after a failed case. */
void tf_stop(tf_env *e);

/* Starts `orchestrator <role>` ("serve", "bot", "spawner", "engine") with
 * extra "NAME=value" settings (NULL-terminated, may be NULL). */
pid_t tf_spawn(tf_env *e, const char *role, const char *const *env);

/* SIGTERM and wait. */
void tf_kill(pid_t pid);

/* Waits until the process exits (fails the test after TF_WAIT_MS);
 * returns its exit status. */
int tf_wait_exit(pid_t pid);

/* The latest message in the owner's chat containing `needle` (after
 * `after` messages, 0 for any), waiting for it. Owned. */
json_t *tf_wait_msg(tf_env *e, const char *needle);

/* Clicks the button whose label contains `label` on the latest message
 * with buttons that contains `needle`, as the owner. */
void tf_click(tf_env *e, const char *needle, const char *label);

/* How many messages in the owner's chat contain `needle` now. */
int tf_count_msgs(tf_env *e, const char *needle);

/* Sends a text message from the owner. */
void tf_say(tf_env *e, const char *text);

/* Fails the test when two messages the bot sent (sendMessage) carry the
 * same text: nothing is said twice. */
void tf_no_duplicate_messages(tf_env *e);

/* --- the scripted project --- */

/* A reply of the model `model` for requests whose body holds `match` (may
 * be NULL), with `content` as its text. Owned. */
json_t *tf_reply(const char *model, const char *match, const char *content);

/* Appends replies (stolen array) to the fake's queue. */
void tf_script(tf_env *e, json_t *replies);

/* The brainstorm's replies: a question, then the spec of strkit. */
json_t *tf_brainstorm_question(void);
json_t *tf_brainstorm_spec(void);
/* The spec with another name. */
json_t *tf_brainstorm_spec_named(const char *name);
/* The architect's plan: slug and wc in parallel, cli after both. */
json_t *tf_plan(void);
/* The agent's replies for a task ("slug", "wc", "cli", or "slug2": the
 * second round of slug, after the review). */
json_t *tf_agent(const char *task);
/* An agent that runs `cmd` once and submits, for requests holding `match`
 * ("a + b": holding both a and b). */
json_t *tf_agent_cmd(const char *match, const char *cmd);
/* The shell command of a worker that writes slug.py wrongly, with tests
 * that fail; and one that writes the whole correct slug with 4 tests. */
extern const char TF_SLUG_BROKEN[];
extern const char TF_SLUG_FULL[];
/* The reviewer's verdict on `task` in `round`. */
json_t *tf_review(const char *task, int round, int approve);

/* Every reply the whole strkit project needs, in order. */
void tf_script_project(tf_env *e);

/* Runs `orchestrator ARGS` (printf format), its output (stdout and stderr)
 * into `out` (may be NULL); returns its exit status. */
int tf_cli(buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The project's thread id (tg:111:<n>). */
int64_t tf_thread(tf_env *e, int n);

/* Checks the finished strkit repository: main holds the three modules and
 * their tests, which pass in a fresh clone. */
void tf_check_repository(tf_env *e, int64_t thread);

/* Every transition the runs took (checkpoints' nodes to next) is an arrow
 * of `orchestrator graph factory --mermaid`: what ran was declared. */
void tf_check_transitions(tf_env *e);

#endif
