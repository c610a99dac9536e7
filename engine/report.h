/*
 * report — what other parts read of the engine's tables (threads, runs,
 * events, outbox, engines) to report on a thread: its row and latest run,
 * how many threads a graph has, messages still to deliver, live engines.
 *
 * Every function only reads, on the caller's connection; figures and
 * strings go into caller-owned memory. ERR_DB on a database error.
 */
#ifndef ORCH_ENGINE_REPORT_H
#define ORCH_ENGINE_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"

/* A thread's row: {"key", "graph", "metadata" (object), "created"
 * ("YYYY-MM-DD HH:MM:SSZ"), "run" (the latest run's status, but a run whose
 * input was handed off; "none"), "cancel_pending" (a cancel event not yet
 * consumed)} into *out (owned). ERR_NOTFOUND for no such thread. */
int eng_report_thread(pg_conn *c, int64_t thread_id, json_t **out);

/* The latest run of a thread (handed-off runs included): *out_run its id
 * (0: the thread has no run), status and waiting_on joined by commas into
 * status[scap] and waiting[wcap], its error into error[ecap] (error may be
 * NULL). */
int eng_report_last_run(pg_conn *c, int64_t thread_id, int64_t *out_run, char *status,
			size_t scap, char *waiting, size_t wcap, char *error, size_t ecap);

/* How many threads graph `graph` has. */
int eng_report_thread_count(pg_conn *c, const char *graph, int64_t *out_n);

/* How many outbox rows to destination `dest` whose kind starts with
 * `kind_prefix` ("term." ...) are still pending. */
int eng_report_pending_outbox(pg_conn *c, const char *dest, const char *kind_prefix,
			      int64_t *out_n);

/* How many engines are alive: not stopped, a heartbeat within the last
 * `within_s` seconds. */
int eng_report_live_engines(pg_conn *c, int within_s, int64_t *out_n);

/* --- the threads of a chat (keys "<prefix>:<n>", metadata "n" and
 * "title"; bot/route.h) --- */

/* A thread's current run, as a chat's /status shows it. */
typedef struct eng_report_run {
	int64_t thread_id;  /* 0: no thread has the key */
	char title[256];    /* the metadata's "title" ("" when none) */
	char status[32];    /* the running or waiting run's, else the latest run's; "idle" */
	char waiting[512];  /* its waiting_on, joined by ", " */
	int64_t step;
	int64_t queued;     /* runs queued behind it */
	char error[2048];   /* its error ("" when none) */
} eng_report_run;

/* The thread with key `key` and its current run (a run whose input was
 * handed off does not count) into *out. */
int eng_report_key_run(pg_conn *c, const char *key, eng_report_run *out);

/* The threads whose key starts with `prefix` ":" and whose metadata has
 * "n", by n (at most 50), into *out (owned): [{"n", "title", "status" (of
 * the current run, "idle")}]. */
int eng_report_numbered(pg_conn *c, const char *prefix, json_t **out);

/* The n of the most recently updated of those threads whose title starts
 * with `title` (any case): *out_n, 0 when none. */
int eng_report_find_title(pg_conn *c, const char *prefix, const char *title, int64_t *out_n);

/* Thread `thread_id`'s key into key[cap] ("" when there is no such
 * thread). */
int eng_report_thread_key(pg_conn *c, int64_t thread_id, char *key, size_t cap);

/* --- database-wide figures (the /metrics gauges, web/health.h) --- */

/* How many runs each status has: *out (owned) {status: count}, only the
 * statuses that have runs. */
int eng_report_run_counts(pg_conn *c, json_t **out);

/* The outbox rows not yet sent, per kind: *out (owned) {kind: {"pending"
 * (rows), "oldest_s" (age of the oldest pending row, 0 when none), "dead"
 * (rows)}}, only the kinds that have such rows. */
int eng_report_outbox_backlog(pg_conn *c, json_t **out);

/* --- a chat's conversation (bot/) --- */

/* The last `limit` messages of thread `thread_id`, oldest first, into *out
 * (owned): [{"who" ("you": a run's or an event's input text;
 * "orchestrator": a message or question sent to a chat), "text"}]. */
int eng_report_history(pg_conn *c, int64_t thread_id, int limit, json_t **out);

/* The chats (metadata "chat") of the threads of channel `channel` (metadata
 * "channel") that have a running run, at most `limit`, into *out (owned):
 * an array of strings. */
int eng_report_running_chats(pg_conn *c, const char *channel, int limit, json_t **out);

/* What the latest active run (waiting, queued or running) of thread
 * `thread_id` waits on: *out (owned) an array of event keys, empty when it
 * waits on nothing or the thread has no active run. */
int eng_report_waiting_on(pg_conn *c, int64_t thread_id, json_t **out);

/* The threads of graph `graph` (thread_id > 0: only that one), most
 * recently updated first, into *out (owned): [{"id", "key", "title" (the
 * metadata's, "" when none), "run" (the latest run's status, but a run
 * whose input was handed off; "none"), "cancel_pending" (a cancel event
 * not yet consumed), "waiting_on" (the keys its waiting run waits for; []
 * when none waits), "updated" ("YYYY-MM-DD HH:MM:SSZ"), "pending" (its
 * outbox rows still to deliver whose kind ends with `kind_suffix`, oldest
 * first: [{"id", "kind", "payload"}])}]. */
int eng_report_graph_threads(pg_conn *c, const char *graph, int64_t thread_id,
			     const char *kind_suffix, json_t **out);

#endif
