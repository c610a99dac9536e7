/*
 * spw_int — what spawner.c and worker.c share inside the spawner module.
 */
#ifndef ORCH_SPAWNER_SPW_INT_H
#define ORCH_SPAWNER_SPW_INT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/pg.h"
#include "llm/llm.h"
#include "spawner/request.h"
#include "spawner/spawner.h"

/* A live log line of a worker (see worker:log:<id>). */
typedef void (*spw_log_fn)(void *udata, const char *kind, const char *text);

/* One worker's run. Every pointer is borrowed for the duration. */
typedef struct spw_worker_ctx {
	const spw_config *cfg;
	pg_pool *pool;
	llm_service *llm;
	const char *spawner_id;
	const spw_request *req;
	int attempt;
	const atomic_int *cancel; /* the spawner is stopping or lost the lease */
	spw_log_fn log;           /* may be NULL */
	void *log_udata;
} spw_worker_ctx;

/* Runs the worker to its end: secrets, workspace, agent, tests, commit,
 * push, cleanup of its workspace. Returns the result (owned; the status
 * says how it went), NULL only when out of memory. */
json_t *spw_worker_run(const spw_worker_ctx *w);

/* A result with the fields every status has. Owned. */
json_t *spw_result_base(const spw_request *req, const char *id, const char *status,
			const char *reason);

/* The folders of worker `id` under cfg->data_dir: the worker's folder, its
 * workspace and its transcript. */
void spw_worker_dir(const spw_config *cfg, const char *id, char *out, size_t cap);
void spw_transcript_path(const spw_config *cfg, const char *id, char *out, size_t cap);

/* Removes a worker's folder: unmounts its workspace quota, deletes the tree
 * without following links or crossing into other file systems. A missing
 * folder is not an error. */
int spw_remove_worker_dir(const char *dir);

#endif
