/*
 * agent — the coding agent a worker runs, in the manner of mini-swe-agent.
 *
 * The loop runs in the worker, outside any sandbox; the model's credentials
 * stay in the LLM layer. Each step:
 *   1. checks the limits (steps, cost, wall time, cancellation);
 *   2. asks the model (llm_chat: slots, ledger, budgets) for the next reply;
 *   3. takes exactly one action from it: a `bash` tool call, or one fenced
 *      ```bash block (```sh and ```shell are accepted too); a reply with none
 *      or several is a format error, answered with the format-error prompt;
 *      too many in a row end the run;
 *   4. an action whose first line is `submit` (or a `submit` tool call, or
 *      mini-swe-agent's `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`) ends
 *      the run as submitted; any other runs with `bash -c` in a FRESH
 *      sandbox over the persistent /workspace (sbx_run), stdout and stderr
 *      merged, with the granted environment only;
 *   5. the observation (exit status, what ended the command, the head and
 *      tail of long output) goes back to the model;
 *   6. loops are caught: the same action with the same output `repeats`
 *      times while the diff did not change, or `stall_steps` actions in a
 *      row without a change to the diff, end the run;
 *   7. the step is appended to the transcript (JSON lines, each line passed
 *      through redact_buf() and written with one write, then fdatasync).
 *
 * Transcript lines: {"type":"start",...}, {"type":"step","step":n,
 * "assistant":..., "action":..., "exit_code":..., "observation":...,
 * "cost_usd":..., "tokens_in":..., "tokens_out":...},
 * {"type":"format_error","step":n,"reason":...}, {"type":"end","exit":...,
 * "reason":...}; the worker adds {"type":"tests",...} and {"type":"result"}.
 */
#ifndef ORCH_SPAWNER_AGENT_H
#define ORCH_SPAWNER_AGENT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "llm/llm.h"
#include "spawner/sandbox.h"

/* Why the agent stopped. */
typedef enum agent_exit {
	AGENT_SUBMITTED = 0,
	AGENT_STEP_LIMIT,
	AGENT_COST_LIMIT,
	AGENT_TIME_LIMIT,
	AGENT_FORMAT_ERRORS,
	AGENT_LOOP,
	AGENT_NO_PROGRESS,
	AGENT_BUDGET,       /* a project or user budget refused the call */
	AGENT_CONTEXT,      /* the conversation outgrew every model's context */
	AGENT_LLM_ERROR,    /* the model could not be reached or answered garbage */
	AGENT_SANDBOX,      /* a sandbox could not be set up */
	AGENT_CANCELLED,
} agent_exit;

/* "submitted", "step_limit", "cost_limit", "time_limit", "format_errors",
 * "loop", "no_progress", "budget", "context", "llm_error", "sandbox",
 * "cancelled". */
const char *agent_exit_name(int exit);

/* Fingerprint of the work (the diff): equal means unchanged. */
typedef int (*agent_fingerprint_fn)(void *udata, unsigned char out[32]);
/* A live log line ("action", "output", "model", "status"); redacted already. */
typedef void (*agent_log_fn)(void *udata, const char *kind, const char *text);

/* What to run. Every pointer is borrowed for the duration of agent_run. */
typedef struct agent_config {
	llm_service *llm;
	llm_call call;               /* role, project, user, thread, run, worker */
	sbx *box;                    /* the worker's sandbox (workspace at /workspace) */
	const char *const *env;      /* variables granted to commands; may be NULL */
	const char *system_prompt;   /* rendered */
	const char *task_prompt;     /* rendered */
	const char *format_error_prompt; /* holds {{reason}} */
	const char *transcript;      /* path of the JSON-lines transcript (appended) */
	int use_tools;               /* offer the bash and submit tools */
	int max_steps;               /* model replies */
	double max_cost_usd;
	int64_t wall_ms;
	int64_t cmd_timeout_ms;
	int max_format_errors;       /* in a row */
	int max_repeats;             /* same action and output, diff unchanged */
	int stall_steps;             /* actions without a change to the diff */
	size_t output_cap;           /* bytes of output kept per observation (head+tail) */
	agent_fingerprint_fn fingerprint; /* may be NULL: no stall detection */
	void *fp_udata;
	agent_log_fn log;            /* may be NULL */
	void *log_udata;
	const atomic_int *cancel;    /* non-zero stops the run */
} agent_config;

typedef struct agent_result {
	int exit;                /* agent_exit */
	char reason[512];        /* one line for people */
	char *summary;           /* the agent's summary when submitted; owned, may be NULL */
	int steps;               /* model replies */
	int actions;             /* commands run */
	int format_errors;       /* in total */
	double cost_usd;
	int64_t tokens_in, tokens_out;
	int64_t wall_ms;
} agent_result;

/* Runs the agent until it submits or a limit ends it; *out (initialised
 * here; agent_result_free) says how it ended. Returns 0 whenever the loop
 * ran, whatever its outcome; ERR_IO when the transcript cannot be written,
 * ERR_INVALID for a bad configuration. Thread-safe for distinct configs. */
int agent_run(const agent_config *cfg, agent_result *out);

void agent_result_free(agent_result *r);

/* Appends one JSON line (`line`, borrowed) to the transcript at `path`:
 * serialised, passed through redact_buf(), written with one write(2) and
 * flushed to disk. ERR_IO. */
int agent_transcript_append(const char *path, const json_t *line);

/* What one reply of the model asks the agent to do. */
enum { AGENT_ACT_NONE = 0, AGENT_ACT_BASH, AGENT_ACT_SUBMIT };

typedef struct agent_action {
	int kind;          /* AGENT_ACT_*; NONE: the reply holds no usable action */
	char *cmd;         /* BASH: the command (owned) */
	char *summary;     /* SUBMIT: the agent's summary (owned, may be NULL) */
	char reason[200];  /* NONE: what was wrong, for the format-error message */
} agent_action;

/* Reads a model's reply into *out (initialised here; agent_action_free):
 * one tool call (bash with a "command", or submit), else exactly one
 * ```bash block in the text; a command whose first line is `submit` (or
 * mini-swe-agent's sentinel) submits. Anything else is NONE with the
 * reason. Never fails. */
void agent_parse_reply(const llm_response *r, agent_action *out);
void agent_action_free(agent_action *a);

/* Renders `tmpl`, replacing each {{name}} by the value of the pair
 * vars[2i] = name, vars[2i+1] = value (NULL-terminated list); unknown names
 * are left as they are. Appends to `out`. */
int agent_render(buf *out, const char *tmpl, const char *const *vars);

#endif
