/*
 * model — the factory's state, typed: the conventions' "parse outside JSON
 * at the edge" applied to the project's own state and to what the spawner
 * and the person send back.
 *
 * No node walks its state as JSON. When a node starts, the graph's wrapper
 * (factory.c) loads the state into an nd_project; the node reads and
 * changes the struct; when it returns, what changed is written into its
 * update (nd_project_store). Routers read the same struct.
 *
 * The vocabulary lives here only: one table of stages and one of task
 * statuses, each with its names, what a person reads and the moves allowed
 * (nd_stage_move, nd_task_move: a move the table does not allow is a bug in
 * a node and fails it with ERR_INTERNAL); one table of question kinds and
 * one of answer options.
 *
 * The state's keys (their reducers in factory.c): stage, rest, input,
 * chat, user, spec, spec_version, plan, plan_version, plan_feedback, repo,
 * pending, progress, merges, asks, main, final (replace); conversation, log
 * (append); tasks, questions (merge: one key per task or question).
 */
#ifndef ORCH_NODES_MODEL_H
#define ORCH_NODES_MODEL_H

#include <jansson.h>
#include <stdint.h>

#include "nodes/say.h"
#include "nodes/spec.h"

/* --- stages --- */

typedef enum nd_stage {
	ND_STAGE_NEW,         /* "": before the first message */
	ND_STAGE_BRAINSTORM,  /* talking about the idea */
	ND_STAGE_SPEC_REVIEW, /* the spec waits for the person */
	ND_STAGE_ARCHITECT,   /* the plan is being made */
	ND_STAGE_PLAN_REVIEW, /* the plan waits for the person */
	ND_STAGE_DEVELOP,     /* workers build, the reviewer checks, merges */
	ND_STAGE_DONE,
	ND_STAGE_STOPPED,
	ND_STAGE_CANCELLED,
	ND_STAGE_COUNT
} nd_stage;

const char *nd_stage_name(nd_stage s);      /* "brainstorm"; "" for NEW */
int nd_stage_closed(nd_stage s);            /* done, stopped or cancelled */

/* --- task statuses --- */

typedef enum nd_status {
	ND_TASK_QUEUED,        /* waits for its dependencies and a free worker */
	ND_TASK_WORKING,       /* a worker builds it */
	ND_TASK_REVIEW,        /* built; a reviewer is sent next */
	ND_TASK_REVIEWING,     /* a reviewer reads the diff */
	ND_TASK_CHANGES,       /* the reviewer asked for changes */
	ND_TASK_REVIEW_ERROR,  /* the review failed; the person is asked next */
	ND_TASK_REVIEW_BUDGET, /* the review hit a budget; the person is asked next */
	ND_TASK_APPROVED,      /* the reviewer approved */
	ND_TASK_MERGE_WAIT,    /* the person is asked before the merge */
	ND_TASK_MERGE_READY,   /* waits for its turn to merge */
	ND_TASK_MERGING,       /* the spawner merges and runs the tests on main */
	ND_TASK_MERGED,
	ND_TASK_BLOCKED,       /* a question about it waits for the person */
	ND_TASK_SKIPPED,
	ND_TASK_COUNT
} nd_status;

const char *nd_status_name(nd_status s);    /* as stored: "merge_ready" */
const char *nd_status_label(nd_status s);   /* as a person reads it: "waiting to merge" */
const char *nd_status_icon(nd_status s);    /* for the progress message */
/* ND_TASK_COUNT for a name that is none of them. */
nd_status nd_status_parse(const char *name);

/* --- questions to the person and their answers --- */

typedef enum nd_qkind {
	ND_Q_FAILED,  /* a task's workers or its merge failed */
	ND_Q_ROUNDS,  /* review rounds used up */
	ND_Q_REVIEW,  /* the review itself failed */
	ND_Q_BUDGET,  /* a budget stopped a worker or a review */
	ND_Q_MERGE,   /* ORCH_MERGE_APPROVAL: merge it? */
	ND_Q_COUNT
} nd_qkind;

const char *nd_qkind_name(nd_qkind k);
/* Why a blocked task waits, for the progress message ("failed — "). */
const char *nd_qkind_reason(nd_qkind k);

/* What to do with a task when the person says retry (or extend). */
typedef enum nd_resume {
	ND_RESUME_WORK,    /* a new attempt of the same round */
	ND_RESUME_REWORK,  /* a new round on the current main */
	ND_RESUME_MERGE,   /* merge again */
	ND_RESUME_ROUNDS,  /* one more round of changes */
	ND_RESUME_REVIEW,  /* review again */
	ND_RESUME_COUNT
} nd_resume;

/* The answers the factory's buttons carry. */
typedef enum nd_opt {
	ND_OPT_APPROVE,
	ND_OPT_CHANGE,
	ND_OPT_CANCEL,
	ND_OPT_RETRY,
	ND_OPT_SKIP,
	ND_OPT_STOP,
	ND_OPT_ACCEPT,
	ND_OPT_EXTEND,
	ND_OPT_MERGE,
	ND_OPT_NONE,       /* the question expired or was cancelled */
	ND_OPT_UNKNOWN,    /* an option the factory never offers */
} nd_opt;

const char *nd_opt_id(nd_opt o);
/* The button of a task's question ("🔁 Retry"); the proposals' and the
 * budget gate's buttons are their own (nd_int.h). */
const char *nd_opt_label(nd_opt o);

/* A decision event (bot/bot.h: {"option", "by", ...}), read. Borrows
 * from the event. */
typedef struct nd_decision {
	nd_opt opt;
	const char *option;  /* as sent; NULL when expired */
	const json_t *by;    /* who decided ({"name", ...}); may be NULL */
	const char *by_name; /* "" when unknown */
} nd_decision;
void nd_decision_read(const json_t *v, nd_decision *out);

/* --- what the spawner sends back (spawner/spawner.h), read --- */

typedef enum nd_wstatus {
	ND_W_DONE, ND_W_UNVERIFIED, ND_W_FAILED, ND_W_REFUSED, ND_W_INVALID, ND_W_CONFLICT,
	ND_W_OTHER
} nd_wstatus;

typedef enum nd_wkind { ND_WORK, ND_MERGE, ND_PUBLISH } nd_wkind;

/* One result; every pointer borrows from the result JSON. */
typedef struct nd_result {
	const char *id, *reason, *commit; /* "" when absent */
	nd_wstatus status;
	int factory;                      /* meta.factory: a request of the factory */
	nd_wkind kind;                    /* meta.kind */
	const char *task;                 /* meta.task, "" when absent */
	int budget;                       /* the agent stopped at the budget */
	const json_t *tests, *diff;       /* may be NULL */
	int mirrored, pushed;             /* a "mirror" was reported; it was pushed */
	const char *mirror_url, *mirror_error; /* NULL when absent */
} nd_result;
void nd_result_read(const json_t *r, nd_result *out);

/* The verified tests of a result or a task (spawner/spawner.h's "tests").
 * Strings borrow from the JSON ("" when absent). */
typedef struct nd_tests {
	int present, passed, failed, total, base_total;
	const char *verdict, *output, *command;
} nd_tests;
void nd_tests_read(const json_t *tests, nd_tests *out);

/* --- the parts of the state --- */

#define ND_KEY_MAX 128

typedef struct nd_user {
	int64_t id;             /* 0: unknown */
	char *name, *username;
} nd_user;

/* The person's message that started this run (bot/bot.h's input). */
typedef struct nd_input {
	int present;
	char *text;             /* never NULL when present */
	nd_chat chat;
	int has_chat;
	nd_user user;
} nd_input;

/* Reads a person's input (an event's value or the state's "input"); free
 * it with nd_input_free. */
void nd_input_read(const json_t *j, nd_input *out);
void nd_input_free(nd_input *in);
void nd_user_copy(nd_user *dst, const nd_user *src);

/* A budget the review of a task hit. */
typedef struct nd_budget {
	char kind[16];          /* "" : none */
	char scope[160];
	double limit_usd, spent_usd;
} nd_budget;

typedef struct nd_task {
	char id[ND_TASK_ID_MAX + 1];
	char *title;
	nd_status status;
	int round, attempt, failures, merge_failures;
	char *branch;
	char *base;             /* what the next worker starts from; NULL: main */
	char *spawn;            /* the request whose result it waits for */
	char *commit, *merged_commit;
	char *question;         /* the key of the question it is blocked on */
	char *reason, *feedback;
	json_t *tests;          /* the verified tests of its last worker (owned) */
	json_t *diff;           /* its diff figures (owned) */
	json_t *reviews;        /* the verdicts, oldest first: nd_review_to_json + "round" (owned) */
	nd_budget budget;
} nd_task;

typedef struct nd_question {
	char key[ND_KEY_MAX];   /* "q:<n>:<kind>:<task>": the decision's event key */
	nd_qkind kind;
	char task[ND_TASK_ID_MAX + 1];
	char *text;
	nd_opt opts[6];
	int nopts;
	int64_t asked_at;       /* wall ms of the first time it was asked */
	nd_resume resume;
	char budget_kind[16], scope[160]; /* what "extend" raises */
	int expired;            /* asked again on the person's next message */
} nd_question;

/* The budget question outside the developer (budget_gate). */
typedef struct nd_pending {
	int present;
	char key[48];
	char resume[32];        /* the node that asked */
	char budget_kind[16], scope[160];
} nd_pending;

typedef struct nd_repo {
	int present;
	char *path, *branch, *head, *name;
	int has_remote;
	char *remote_url, *remote_handle, *remote_error;
	int published, pushed;  /* a publication was reported; it pushed */
	char *published_url, *publish_error;
} nd_repo;

/* The tests on main after the last merge. */
typedef struct nd_main {
	int present, passed, total;
	char *command;
} nd_main;

typedef struct nd_project {
	nd_stage stage;
	int rest;               /* the run ends here; the next message starts the next */
	nd_chat chat;
	int has_chat;
	nd_user user;
	nd_input input;
	const json_t *spec;     /* normalised (nodes/spec.h); borrowed from the state; NULL: none */
	int spec_version, plan_version, asks, merges;
	nd_plan plan;           /* ntasks 0: none yet */
	char *plan_feedback;    /* what the person wants changed in the plan; NULL: none */
	char *progress;         /* the progress message last sent, without its totals */
	nd_pending pending;
	nd_repo repo;
	nd_main main;
	nd_task *tasks;         /* in the order the state holds them (the plan's) */
	size_t ntasks;
	nd_question *qs;
	size_t nqs;
	size_t conv_len;        /* turns of the conversation */
	int conv_last_user;     /* the person spoke last: the model owes an answer */
} nd_project;

/* Reads the state (borrowed; p->spec points into it) into *out, which the
 * caller frees with nd_project_free in every case. ERR_INVALID naming what
 * does not read (an unknown stage or status), ERR_NOMEM. */
int nd_project_load(nd_project *out, const json_t *state);
void nd_project_free(nd_project *p);

/* Writes into `update` every key of `p` that differs from `was` (the same
 * state as loaded): changed tasks and questions one by one (a removed
 * question as null). ERR_NOMEM. */
int nd_project_store(const nd_project *p, const nd_project *was, json_t *update);

/* Moves the stage or a task's status as the tables allow; staying is
 * always allowed. ERR_INTERNAL naming both ends otherwise. */
int nd_stage_move(nd_project *p, nd_stage to);
int nd_task_move(nd_task *t, nd_status to);

/* Lookups (NULL when absent) and additions (a zeroed entry; NULL and
 * ERR_NOMEM when out of memory). Pointers stay valid until the next
 * addition. */
nd_task *nd_task_find(const nd_project *p, const char *id);
nd_task *nd_task_add(nd_project *p, const char *id);
const nd_plan_task *nd_plan_find(const nd_project *p, const char *id);
nd_question *nd_question_find(const nd_project *p, const char *key);
nd_question *nd_question_add(nd_project *p, const char *key);
void nd_question_remove(nd_project *p, const char *key);

/* Replaces *dst by a copy of `v` (NULL clears it). */
void nd_str_set(char **dst, const char *v);

/* Tasks merged or skipped: all of them, and there is at least one. */
int nd_project_all_done(const nd_project *p);

#endif
