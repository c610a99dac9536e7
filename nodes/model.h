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
 * The vocabulary lives here only, one table each (ND_STAGES, ND_STATUS,
 * ND_QKINDS, ND_OPTS): the names as stored, what a person reads, and for
 * stages and task statuses the moves allowed (nd_stage_move, nd_task_move:
 * a move the table does not allow is a bug in a node and fails it with
 * ERR_INTERNAL).
 *
 * The state's keys (their reducers in factory.c): stage, rest, input,
 * chat, user, spec, spec_version, plan, plan_version, plan_feedback, repo,
 * change, pending, progress, merges, asks, main, final (replace);
 * conversation, log (append); tasks, questions (merge: one key per task or
 * question).
 */
#ifndef ORCH_NODES_MODEL_H
#define ORCH_NODES_MODEL_H

#include <jansson.h>
#include <stdint.h>

#include "nodes/say.h"
#include "nodes/spec.h"

/* One word of the vocabulary: as stored, as a person reads it, its icon in
 * the progress message, and (stages, statuses) the bit set of the entries
 * it may move to. */
typedef struct nd_word {
	const char *name, *label, *icon;
	unsigned next;
} nd_word;

/* The index of `name` in v[0..n), or n. */
int nd_word_find(const nd_word *v, int n, const char *name);

typedef enum nd_stage {
	ND_STAGE_NEW,         /* "": before the first message */
	ND_STAGE_BRAINSTORM,  /* talking about the idea */
	ND_STAGE_SPEC_REVIEW, /* the spec waits for the person */
	ND_STAGE_ARCHITECT,   /* the plan is being made */
	ND_STAGE_PLAN_REVIEW, /* the plan waits for the person */
	ND_STAGE_DEVELOP,     /* workers build, the reviewer checks, merges */
	ND_STAGE_IMPORT,      /* a change: the repository is copied into the project's */
	ND_STAGE_BASELINE,    /* a change: its tests run on the base before any work */
	ND_STAGE_DELIVER,     /* a change: pushed to its remote, or a pull request opened */
	ND_STAGE_FOLLOW,      /* a change: its pull request is open; comments and CI start rounds */
	ND_STAGE_DONE,
	ND_STAGE_STOPPED,
	ND_STAGE_CANCELLED,
	ND_STAGE_COUNT
} nd_stage;
extern const nd_word ND_STAGES[ND_STAGE_COUNT];
int nd_stage_closed(nd_stage s); /* done, stopped or cancelled */

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
extern const nd_word ND_STATUS[ND_TASK_COUNT];

/* Questions about a task; their label says why the task waits. The entry
 * at ND_Q_COUNT reads a kind this version does not know. */
typedef enum nd_qkind {
	ND_Q_FAILED, /* its workers or its merge failed */
	ND_Q_ROUNDS, /* review rounds used up */
	ND_Q_REVIEW, /* the review itself failed */
	ND_Q_BUDGET, /* a budget stopped a worker or a review */
	ND_Q_MERGE,  /* ORCH_MERGE_APPROVAL: merge it? */
	ND_Q_COUNT
} nd_qkind;
extern const nd_word ND_QKINDS[ND_Q_COUNT + 1];

/* What to do with a task when the person says retry (or extend). */
typedef enum nd_resume {
	ND_RESUME_WORK,   /* a new attempt of the same round */
	ND_RESUME_REWORK, /* a new round on the current main */
	ND_RESUME_MERGE,  /* merge again */
	ND_RESUME_ROUNDS, /* one more round of changes */
	ND_RESUME_REVIEW, /* review again */
	ND_RESUME_COUNT
} nd_resume;

/* The answers the factory's buttons carry; the labels are those of a
 * task's questions (the proposals and the budget gate have their own,
 * nodes/nd_int.h). */
typedef enum nd_opt {
	ND_OPT_APPROVE, ND_OPT_CHANGE, ND_OPT_CANCEL, ND_OPT_RETRY, ND_OPT_SKIP, ND_OPT_STOP,
	ND_OPT_ACCEPT, ND_OPT_EXTEND, ND_OPT_MERGE,
	ND_OPT_NONE,    /* the question expired or was cancelled */
	ND_OPT_UNKNOWN, /* an option the factory never offers */
} nd_opt;
extern const nd_word ND_OPTS[ND_OPT_NONE];

/* --- what others send, read (pointers borrow from the JSON; "" when absent) --- */

/* A decision event (bot/bot.h: {"option", "by", ...}). */
typedef struct nd_decision {
	nd_opt opt;
	const char *option;  /* NULL when expired */
	const json_t *by;    /* who decided; may be NULL */
	const char *by_name;
} nd_decision;
void nd_decision_read(const json_t *v, nd_decision *out);

/* A worker's result (spawner/spawner.h). */
typedef enum nd_wstatus {
	ND_W_DONE, ND_W_UNVERIFIED, ND_W_FAILED, ND_W_REFUSED, ND_W_INVALID, ND_W_CONFLICT,
	ND_W_OTHER
} nd_wstatus;
typedef enum nd_wkind { ND_WORK, ND_MERGE, ND_PUBLISH } nd_wkind;
typedef struct nd_result {
	const char *id, *reason, *commit, *task;  /* task: meta.task */
	nd_wstatus status;
	nd_wkind kind;                            /* meta.kind */
	int factory;                              /* meta.factory: a request of the factory */
	int budget;                               /* the agent stopped at the budget */
	const json_t *tests, *diff;               /* may be NULL */
	int mirrored, pushed;                     /* a "mirror" was reported; it was pushed */
	const char *mirror_url, *mirror_error;    /* NULL when absent */
} nd_result;
void nd_result_read(const json_t *r, nd_result *out);

/* The verified tests of a result or a task ("tests" in spawner/spawner.h). */
typedef struct nd_tests {
	int present, passed, failed, total, base_total;
	const char *verdict, *output, *command;
} nd_tests;
void nd_tests_read(const json_t *tests, nd_tests *out);

/* --- the parts of the state --- */

#define ND_KEY_MAX 128

typedef struct nd_user {
	int64_t id; /* 0: unknown */
	char *name, *username;
} nd_user;

/* A person's message (bot/bot.h's input): the run's or an event's. */
typedef struct nd_input {
	int present, has_chat, has_change;
	char *text; /* never NULL when present */
	nd_chat chat;
	nd_user user;
} nd_input;
void nd_input_read(const json_t *j, nd_input *out); /* free with nd_input_free */
void nd_input_free(nd_input *in);
void nd_user_copy(nd_user *dst, const nd_user *src);

typedef struct nd_task {
	char id[ND_TASK_ID_MAX + 1];
	char *title;
	nd_status status;
	int round, attempt, failures, merge_failures;
	char *branch;
	char *base;          /* what the next worker starts from; NULL or "": main */
	char *spawn;         /* the request whose result it waits for */
	char *commit, *merged_commit;
	char *question;      /* the key of the question it is blocked on */
	char *reason, *feedback;
	json_t *tests;       /* the verified tests of its last worker (owned) */
	json_t *diff;        /* its diff figures (owned) */
	json_t *reviews;     /* the verdicts, oldest first (nd_review_to_json; owned) */
	int has_budget;      /* the budget its review hit: */
	char budget_kind[16], budget_scope[160];
	double budget_limit, budget_spent;
} nd_task;

typedef struct nd_question {
	char key[ND_KEY_MAX]; /* "q:<n>:<kind>:<task>": the decision's event key */
	nd_qkind kind;
	char task[ND_TASK_ID_MAX + 1];
	char *text;
	nd_opt opts[6];
	int nopts;
	int64_t asked_at;     /* wall ms of the first time it was asked */
	nd_resume resume;
	char budget_kind[16], scope[160]; /* what "extend" raises */
	int expired;          /* asked again on the person's next message */
} nd_question;

/* The budget question outside the developer (budget_gate). */
typedef struct nd_pending {
	int present;
	char key[48];
	char kind[16];        /* "budget" */
	char resume[32];      /* the node that asked */
	char budget_kind[16], scope[160];
} nd_pending;

typedef struct nd_repo {
	int present;
	char *path, *branch, *head, *name;
	int has_remote;
	char *remote_url, *remote_handle, *remote_error;
	int published, pushed; /* a publication was reported; it pushed */
	char *published_url, *publish_error;
} nd_repo;

/* A change to an existing repository (`new --repo`): where it comes from,
 * the base's tests, how it ends. */
typedef struct nd_change {
	int present;
	char *source;         /* the repository asked for: a URL, or a local path */
	int local;            /* source is a local path (asked from the terminal) */
	char *branch;         /* the base branch; NULL: the repository's own, found at import */
	int pr;               /* end with a pull request (--pr) */
	char *handle;         /* the git handle given for the remote's credentials */
	char *secret;         /* a stored secret named from the terminal (--secret) */
	char *channel;        /* the channel it was asked from */
	char *spawn;          /* the spawner request the stage waits for */
	int sends;            /* requests sent for the change (their ids' numbers) */
	char *ask;            /* the key of the question about the ending */
	char *base_commit;    /* the base branch's tip when imported */
	char *error;          /* why the last step of the change could not be done */
	int64_t context;      /* bytes of the repository the brainstorm's model saw last */
	/* the baseline: the repository's tests on the base before any work */
	int has_baseline;
	int base_ran, base_passed, base_failed, base_total, base_exit;
	char *base_verdict, *base_output, *base_reason;
	json_t *base_failing; /* the failing tests' names when the output named them all */
	/* the ending */
	char *delivery;       /* "push", "pr" or "keep" once decided */
	int delivered;        /* the ending is done (pushed, opened or kept) */
	char *pushed;         /* the commit pushed to the remote's branch */
	int has_pr;
	int64_t pr_number;
	char *pr_url, *pr_head, *pr_state;
	int rounds;           /* rounds started from the pull request */
} nd_change;

/* The tests on main after the last merge. */
typedef struct nd_main {
	int present, passed, total;
	char *command;
} nd_main;

typedef struct nd_project {
	nd_stage stage;
	int rest;             /* the run ends here; the next message starts the next */
	nd_chat chat;
	int has_chat;
	nd_user user;
	nd_input input;
	const json_t *spec;   /* normalised (nodes/spec.h), borrowed from the state; NULL: none */
	int spec_version, plan_version, asks, merges;
	nd_plan plan;         /* ntasks 0: none yet */
	char *plan_feedback;  /* what the person wants changed in the plan; NULL: none */
	char *progress;       /* the progress message last sent, without its totals */
	nd_pending pending;
	nd_repo repo;
	nd_change change;
	nd_main main;
	nd_task *tasks;       /* in the order the state holds them (the plan's) */
	size_t ntasks;
	nd_question *qs;
	size_t nqs;
	size_t conv_len;      /* turns of the conversation */
	int conv_last_user;   /* the person spoke last: the model owes an answer */
} nd_project;

/* Reads the state (borrowed; p->spec points into it) into *out, which the
 * caller frees with nd_project_free in every case. ERR_INVALID naming what
 * does not read (an unknown stage or task status), ERR_NOMEM. */
int nd_project_load(nd_project *out, const json_t *state);
void nd_project_free(nd_project *p);

/* Writes into `update` every key of `p` that differs from `was` (the same
 * state as loaded): changed tasks and questions one by one, a removed
 * question as null. */
void nd_project_store(const nd_project *p, const nd_project *was, json_t *update);

/* Moves the stage or a task's status as the tables allow; staying is
 * always allowed. ERR_INTERNAL naming both ends otherwise. */
int nd_stage_move(nd_project *p, nd_stage to);
int nd_task_move(nd_task *t, nd_status to);

/* Lookups (NULL when absent) and additions (a zeroed entry; NULL and
 * ERR_NOMEM when out of memory). Pointers stay valid until the next
 * addition or removal. */
nd_task *nd_task_find(const nd_project *p, const char *id);
nd_task *nd_task_add(nd_project *p, const char *id);
const nd_plan_task *nd_plan_find(const nd_project *p, const char *id);
nd_question *nd_question_find(const nd_project *p, const char *key);
nd_question *nd_question_add(nd_project *p, const char *key);
void nd_question_remove(nd_project *p, const char *key);

/* Replaces *dst by a copy of `v` (NULL clears it). */
void nd_str_set(char **dst, const char *v);

/* Every task merged or skipped, and there is at least one. */
int nd_project_all_done(const nd_project *p);

/* The branch the project's work merges into: the change's base branch, or
 * main. Borrowed. */
const char *nd_project_branch(const nd_project *p);

/* Reads a person's input's "change" ({"repo", "branch", "pr", "handle",
 * "secret"}, bot/route.h) into the project's change; 0 when the input has
 * none. ERR_INVALID naming what is wrong. */
int nd_change_from_input(nd_change *out, const json_t *input);

#endif
