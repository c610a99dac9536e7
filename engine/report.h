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

#endif
