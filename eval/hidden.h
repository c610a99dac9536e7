/*
 * hidden — a task's hidden acceptance tests on what the factory built
 * (eval/README.md, "How the hidden tests run"): the result's main is
 * checked out into a clean folder, the files of the task's hidden/ folder
 * are copied in at the same relative paths, and hidden.command runs there
 * with `sh -c` in a fresh sandbox with the workers' limits and toolchain
 * variables (spawner/toolenv.h), within hidden.timeout_s. Exit status 0
 * means solved.
 */
#ifndef ORCH_EVAL_HIDDEN_H
#define ORCH_EVAL_HIDDEN_H

#include <stdint.h>

#include "eval/task.h"

/* Where and how the sandbox is made (the spawner's settings). */
typedef struct ev_sandbox {
	const char *backend;     /* "ns" (default) or "docker" */
	const char *image;       /* docker */
	const char *runtime;     /* docker */
	int allow_degraded;
} ev_sandbox;

typedef struct ev_hidden {
	int ran;              /* the command ran (a checkout and a sandbox were made) */
	int solved;           /* it exited 0 */
	int exit_code;
	int timed_out;
	int passed, failed, total; /* the counts its output gives; -1 when unknown */
	double seconds;
	char reason[512];     /* why it did not run, or what ended it */
} ev_hidden;

/* Runs task `t`'s hidden tests on branch main of repository `repo` (a path
 * or URL git can clone), in `work` (a folder made afresh, removed after
 * unless `keep`). The command's whole output goes to `log` (may be NULL).
 * Returns 0 whenever the outcome is known (out says it; a repository that
 * cannot be checked out is out->ran 0 with the reason); <0 only for a
 * failure of this host (ERR_SANDBOX, ERR_IO). */
int ev_hidden_run(const ev_task *t, const char *repo, const char *work, const ev_sandbox *sb,
		  const char *log, int keep, ev_hidden *out);

/* Removes a folder and everything in it; 0 when it is gone. */
int ev_rmtree(const char *path);

#endif
