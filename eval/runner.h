/*
 * runner — runs eval tasks through the factory and measures them.
 *
 * Each task is a project started the way a person starts one (the terminal
 * chat's `/new <idea>`, as `orchestrator new` does), in a terminal chat of
 * its own ("<prefix>-<task id>"), on an engine and a spawner running in the
 * same process (the caller starts them). The runner plays the person
 * (eval/person.h) through the terminal chat's paths: it takes the chat's
 * messages, answers the brainstorm's questions, decides the questions asked
 * with buttons, and nudges a project whose step failed once ("retry once,
 * then stop"). It stops a project at the task's budget: tokens (in and out)
 * and wall time by cancelling it, USD through the project's LLM budget (the
 * factory then asks, and the person stops). Up to `parallel` projects run
 * at once.
 *
 * When a project has ended, the task's hidden tests run on its main
 * (eval/hidden.h). The outcome of each task goes into the report (the
 * format is eval/report.h's), with what the ledger, the workers table and
 * the project's state say: tokens, cost, model calls by role, worker
 * attempts, review rounds, merge conflicts, the person's interventions,
 * wall time and the time to a merged main.
 *
 * The parts that know the chat (bot/) are the caller's, through ev_front:
 * the command line wires them, as it wires `orchestrator new`, `approve`
 * and `chat`.
 */
#ifndef ORCH_EVAL_RUNNER_H
#define ORCH_EVAL_RUNNER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "core/pg.h"
#include "eval/hidden.h"
#include "eval/replay.h"
#include "eval/task.h"

/* What the person's hands do, on the caller's connection. Each returns 0
 * or a negative code with err_set. */
typedef struct ev_front {
	void *udata;
	/* Starts a project with `idea` in terminal chat `chat`, as `orchestrator
	 * new` does: its thread id and key (key[cap]). */
	int (*start)(void *udata, pg_conn *c, const char *chat, const char *idea, int64_t *thread,
		     char *key, size_t cap);
	/* Starts a project that changes the existing repository `repo` (a path
	 * git can clone) on branch `base`, as `orchestrator new --repo` will;
	 * NULL while there is no such path: tasks of kind change are then
	 * skipped. */
	int (*start_repo)(void *udata, pg_conn *c, const char *chat, const char *idea,
			  const char *repo, const char *base, int64_t *thread, char *key,
			  size_t cap);
	/* Types the line `text` in terminal chat `chat`, as the terminal chat
	 * routes it. */
	int (*say)(void *udata, pg_conn *c, const char *chat, const char *text);
	/* The messages waiting for chat `chat`, taken as the terminal chat takes
	 * them: *out is an array (owned) of {"kind": "send" | "edit" | "progress" |
	 * "document" | "approval", "text", and for an approval "approval": {"id",
	 * "key", "options": [{"id", "label"}]}}. */
	int (*take)(void *udata, pg_conn *c, const char *chat, json_t **out);
	/* Decides option `option` (an index) of approval `id` as the person of
	 * chat `chat`, as the terminal chat does. */
	int (*decide)(void *udata, pg_conn *c, const char *chat, int64_t id, int option);
	/* Cancels the project: its runs, questions and workers. */
	int (*cancel)(void *udata, pg_conn *c, int64_t thread, const char *why);
} ev_front;

/* A task of kind change: its repo/ folder as a bare repository at `path`
 * (created afresh; one commit on main, the base of every change task), for front->start_repo. */
int ev_change_repo(const ev_task *t, const char *path);

/* One task of a run: run it, or list it as skipped with the reason. */
typedef struct ev_item {
	const ev_task *task;
	const char *skip;       /* NULL: run it */
} ev_item;

typedef struct ev_options {
	const char *mode;       /* "live", "replay" or "record" (for the report) */
	const char *models;     /* what answered, for the report ("models.json: 4 models") */
	const char *chat_prefix; /* the chats are "<prefix>-<task id>" */
	int parallel;           /* projects at once; < 1: 1 */
	int64_t timeout_ms;     /* a lower wall limit than the tasks' budgets; 0: none */
	int64_t poll_ms;        /* how often a project is looked at; 0: 250 ms */
	const char *work_dir;   /* checkouts for the hidden tests (<work_dir>/<task>) */
	const char *log_dir;    /* each task's hidden test output, <log_dir>/<task>.hidden.log */
	int keep;               /* keep the checkouts */
	ev_sandbox sandbox;
	FILE *progress;         /* progress lines as it runs; NULL: none */
	const atomic_int *interrupt; /* non-zero: stop (Ctrl-C); the running projects are
				      * cancelled ("interrupted"), the rest skipped; may be NULL */
} ev_options;

/* Runs the items and builds the report into *out (owned; eval/report.h
 * reads it): {"run": {"mode", "models", "started_at", "parallel",
 * "seconds"}, "tasks": [one object per item, in order]}. `px` is the
 * record/replay server the registry points at (NULL for a live run without
 * recording): each project is bound to its task there, and its replay
 * mismatches end the project. Returns 0 when every item got an outcome
 * (a task that failed is an outcome); <0 when the run itself broke
 * (the database). */
int ev_run(const ev_options *o, const ev_item *items, size_t n, pg_pool *pool, ev_proxy *px,
	   const ev_front *front, json_t **out);

#endif
