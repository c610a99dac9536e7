/*
 * report — what a factory project is doing, the same facts wherever a person
 * asks: `orchestrator status` (every project) and the chat's /status (the
 * chat's active project, through bot/route.h's report hook).
 *
 * A project's report is nd_project_summary() of its latest state (stage,
 * name, task counts, repository, open questions), corrected and completed
 * from the database:
 *
 *   {"stage", "name", "tasks": {"total", "merged", "active", "blocked",
 *    "skipped"}, "workers", "repo", "remote", "questions",
 *    "thread", "key", "title", "run" (the latest run's status, "none"),
 *    "tokens_in", "tokens_out", "cost_usd" (the project's whole ledger),
 *    "workers" (workers running now), "updated" ("YYYY-MM-DD HH:MM:SSZ"),
 *    "waiting_for_answer" (a question or a reply of its person is awaited),
 *    "worker_list" (when workers run): [{"id", "task", "phase", "step",
 *    "action", "progress_age_ms" (-1: nothing reported yet), "running_ms"}],
 *    what each running worker does as its spawner last wrote it}
 *
 * "stage" reads "cancelled" when the project was cancelled while it waited
 * (its next run would say so). A report of one project (nd_report_project)
 * adds what a person in a chat wants to see:
 *
 *   "task_list": [{"id", "title", "status", "label"}] (label as
 *                 nd_task_state_label),
 *   "open": [{"id" (approval id, null while the question is being sent),
 *             "question", "channel", "options": ["label", ...]}],
 *   "branch": the repository's main branch (when there is a repository),
 *   "budget": {"limit_usd", "spent_usd"} (when the project has a budget).
 *
 * Everything runs on the caller's connection and only reads.
 */
#ifndef ORCH_NODES_REPORT_H
#define ORCH_NODES_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"

/* What the factory reads and does through parts it may not include
 * (ARCHITECTURE §2): the bot's questions and the spawner's workers. The
 * program that links them installs it at start (cli/wiring.c,
 * cli_wire_factory); a report or a stop without it fails with ERR_INTERNAL
 * saying so. */
typedef struct nd_ops {
	/* bot_report_open (bot/report.h) */
	int (*open_questions)(pg_conn *c, const int64_t *threads, size_t n,
			      const int64_t *outbox_ids, size_t nout, json_t **open,
			      json_t **linked);
	/* spw_report_workers (spawner/report.h): every worker of a thread */
	int (*workers)(pg_conn *c, int64_t thread_id, json_t **out);
	/* spw_cancel_thread (spawner/spawner.h) */
	int (*cancel_workers)(pg_conn *c, int64_t thread_id, const char *reason, int *out_n);
} nd_ops;

/* Installs the hooks (`ops` must outlive their use; NULL removes them).
 * Thread-safe. */
void nd_set_ops(const nd_ops *ops);

/* The installed hooks, or NULL with ERR_INTERNAL set when none are. */
const nd_ops *nd_ops_need(void);

/* The reports of the projects of graph `graph` (the factory's: ND_GRAPH,
 * or ORCH_GRAPH) into *out (an array the caller owns): every project that
 * waits for an answer from its person ("waiting_for_answer": an open
 * question, one being sent, or its run waiting for the person's reply)
 * first and always, then the most recently updated others, so that there
 * are `limit` in all when there are that many (< 0: every project).
 * *out_total (may be NULL) gets how many projects the graph has.
 * ERR_DB, ERR_NOMEM. */
int nd_report_projects(json_t **out, pg_conn *c, const char *graph, int limit,
		       int64_t *out_total);

/* The report of one project (thread id `thread`) with the details above,
 * into *out (owned by the caller). *out is NULL, and the result 0, when the
 * thread is not a project of the factory graph (ND_GRAPH) — a plain chat
 * thread. ERR_DB, ERR_NOMEM. Matches bot_report_fn (bot/route.h). */
int nd_report_project(json_t **out, pg_conn *c, int64_t thread);

/* Every open question of graph `graph`'s projects, oldest first, into *out
 * (an array the caller owns): {"id", "project", "question", "channel"} for
 * those shown, {"id": null, "project", "question"} for those still being
 * sent. ERR_DB, ERR_NOMEM. */
int nd_report_questions(json_t **out, pg_conn *c, const char *graph);

#endif
