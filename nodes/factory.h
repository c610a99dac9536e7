/*
 * factory — the graph that turns an idea into merged, tested code.
 *
 * A project is one thread of the graph "factory" (the bot's ORCH_GRAPH);
 * the person talks to it in Telegram or a terminal (bot/bot.h has the
 * contract). Its stages, each a node or two (gates that wait hold no LLM
 * call, so a resumed gate never repeats one):
 *
 *   entry       every run starts here: takes a "cancel" event and the
 *               person's new text (state "input")
 *   brainstorm  one turn of conversation with the model (role
 *               "brainstorm"); asks questions until the reply carries a spec
 *               that validates against nodes/prompts/spec.schema.json, then
 *               shows it and asks approve / change / cancel
 *   listen      waits for the person's next message ("input")
 *   spec_gate   waits for the spec decision (or a message: a change request)
 *   architect   the plan (role "architect"): a DAG of tasks; the first time
 *               also the repository, a bare one under ORCH_REPOS_DIR with a
 *               scaffold (README, build, test command), published to the
 *               project's remote when it has one; shows the plan and asks
 *   plan_gate   waits for the plan decision
 *   developer   the scheduler: spawns a worker per ready task (at most
 *               ORCH_MAX_WORKERS at once), collects results, sends finished
 *               work to the reviewer, queues approved work for merging (one
 *               merge at a time, through the spawner), asks the person when
 *               a task is stuck, keeps one progress message up to date; it
 *               waits (holding no thread) for "worker", "input" and the keys
 *               of its open questions
 *   reviewer    one per finished task (a Send): the diff against main with
 *               the verified test evidence, a structured verdict (role
 *               "reviewer")
 *   budget_gate a budget was reached outside the developer: extend or stop
 *   finish      the final report: repository, what was built, tests, cost
 *
 * A change to an existing repository (the input's "change", `new --repo`)
 * goes through four more (nodes/change.c):
 *
 *   import      the repository's branch copied into the project's own bare
 *               repository (a local path by libgit2 here, a remote through
 *               the spawner, mode "import"); then brainstorm, whose model
 *               reads a selection of it (nodes/context.h) before it asks
 *   baseline    after the spec: the repository's tests on the base commit in
 *               a sandbox (the spawner, mode "test"), recorded; the architect
 *               plans against the code, the reviewer and every worker and
 *               merge judge against that baseline
 *   deliver     when every task is merged: nothing for a local repository;
 *               for a remote, the person says (push the branch, open a pull
 *               request, keep it here), or --pr said it; the push and the
 *               pull request go through the spawner (modes "publish", "pr")
 *   follow      the pull request is open: comments and CI failures on it
 *               (events "forge", from the spawner's poller) start a new round
 *               (a task), whose merge updates the pull request; its merge or
 *               closing ends the project
 *
 * The graph is declared in one table in factory.c: each node with the
 * router that picks what follows it from the state it left, and the
 * targets that router may pick (`orchestrator graph factory` draws it).
 * The state is typed in nodes/model.h: its keys, stages, task statuses and
 * their moves, questions, the repository.
 *
 * EVENTS it reads: "input" (the person's text), "worker" (spawner
 * results: work, merge and publish, matched by meta.task and the request
 * id the task waits for), "cancel" (the project was cancelled), "forge"
 * (a change's pull request: comments, CI failures, merged, closed), and one
 * key per question asked ("spec:<v>", "plan:<v>", "q:<n>:<kind>:<task>",
 * "budget:<n>", "deliver:<n>").
 *
 * OUTBOX kinds it writes: "<channel>.send", ".progress" (ref
 * "factory-<thread id>"), ".approval", ".document" (bot/bot.h) and "spawn"
 * (spawner/request.h; ids "f<thread>.<run>.<task>.r<round>a<attempt>",
 * "...m<n>" for merges, "...publish" for the first publication:
 * deterministic, so a step run twice never starts a second worker).
 *
 * SETTINGS (environment): ORCH_MAX_WORKERS (2) workers of one project at
 * once; ORCH_REVIEW_ROUNDS (2) rounds of requested changes before the
 * person is asked; ORCH_WORKER_FAILURES (2) failed attempts of a task
 * before the person is asked; ORCH_MERGE_APPROVAL (0) ask before each
 * merge; ORCH_BUDGET_EXTEND (5) USD an "extend" adds; ORCH_REPOS_DIR
 * ($ORCH_DATA_DIR/repos) where repositories are created; ORCH_REMOTE_URL
 * (unset) a remote for every project, "{name}" replaced by the project's
 * name, with ORCH_REMOTE_SECRET the stored secret (kind git) that pushes
 * to it; ORCH_FACTORY_ROLE_WORKER (developer) the workers' LLM role;
 * ORCH_CHANGE_CONTEXT (32000) bytes of an existing repository the
 * brainstorm's and the architect's models see.
 */
#ifndef ORCH_NODES_FACTORY_H
#define ORCH_NODES_FACTORY_H

#include <jansson.h>
#include <stdint.h>

#include "core/pg.h"
#include "engine/graph.h"
#include "llm/llm.h"

#define ND_GRAPH "factory"

typedef struct nd_config {
	int max_workers;          /* ORCH_MAX_WORKERS */
	int review_rounds;        /* ORCH_REVIEW_ROUNDS */
	int worker_failures;      /* ORCH_WORKER_FAILURES */
	int merge_approval;       /* ORCH_MERGE_APPROVAL */
	double budget_step;       /* ORCH_BUDGET_EXTEND (USD) */
	char repos_dir[1024];     /* ORCH_REPOS_DIR */
	char remote_url[1024];    /* ORCH_REMOTE_URL ("" for none) */
	char remote_secret[128];  /* ORCH_REMOTE_SECRET */
	char worker_role[64];     /* ORCH_FACTORY_ROLE_WORKER */
	int change_context;       /* ORCH_CHANGE_CONTEXT: bytes of a repository a model sees */
} nd_config;

/* Defaults, then the environment. ERR_INVALID naming the variable. */
int nd_config_from_env(nd_config *out, const char *data_dir);

/* What the nodes use, handed to them through eng_options.app. Borrowed by
 * the engine: it must outlive it. */
typedef struct nd_app {
	llm_service *llm;   /* the models */
	pg_pool *pool;      /* the ledger (costs), budgets, handles */
	nd_config cfg;
} nd_app;

/* Builds and compiles the factory graph. The caller owns *out
 * (eng_graph_free) and registers it with eng_engine_add_graph; the engine's
 * eng_options.app must point at an nd_app. */
int nd_factory_graph(eng_graph **out);

/* --- for the command line (status, show) --- */

/* A project's summary from its state (borrowed): {"stage", "name",
 * "tasks": {"total", "merged", "active", "blocked", "skipped"},
 * "workers": n in flight, "repo", "remote", "questions": n, and for a
 * change with a pull request "pull_request": its URL}. Its costs
 * come from the ledger (nd_costs_load). Owned; NULL when the state does
 * not read (err_set says why). */
json_t *nd_project_summary(const json_t *state);

/* How a task status reads to a person: queued, working, reviewing,
 * testing, done, skipped, waiting for you... (nodes/model.h's table; a
 * status it does not know reads as itself). Static or borrowed. */
const char *nd_task_state_label(const char *status);

/* What a project's model calls cost, from the ledger (llm_calls): the one
 * source of every cost figure the factory shows (progress message, final
 * report, status, show), so they add up whatever happened — a worker run
 * twice after a crash counts twice everywhere, as it was paid twice. */
typedef struct nd_task_cost {
	char task[40];
	int64_t tokens_in, tokens_out;
	double cost_usd;
} nd_task_cost;

typedef struct nd_costs {
	int64_t tokens_in, tokens_out;  /* every call of the project */
	double cost_usd, workers_usd;   /* all of it; its workers' part */
	nd_task_cost *tasks;            /* the workers' calls per task (owned) */
	size_t ntasks;
} nd_costs;

/* The costs of project `project` (its thread key) on `c`, into *out (free
 * with nd_costs_free in every case). ERR_DB, ERR_NOMEM. */
int nd_costs_load(nd_costs *out, pg_conn *c, const char *project);
void nd_costs_free(nd_costs *c);

/* A task's part (zeroes when its workers spent nothing). */
nd_task_cost nd_costs_task(const nd_costs *c, const char *task);

/* {"tokens_in", "tokens_out", "cost_usd", "workers_usd", "tasks": {id:
 * {"tokens_in", "tokens_out", "cost_usd"}}}. Owned. */
json_t *nd_costs_json(const nd_costs *c);

#endif
