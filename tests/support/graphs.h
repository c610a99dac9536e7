/*
 * graphs — small graphs the engine tests run, in-process and in the
 * engine_worker program (tests/progs/engine_worker.c).
 *
 * "linear4": START → brainstorm → architect → developer → reviewer → END.
 * Each node appends "<node>:ok" to the list `log` (APPEND reducer) and
 * writes one outbox row (kind "test.note", dest the thread key, payload
 * {"node","step","run"}). Environment knobs read at each call:
 *   TSG_SLEEP_MS   sleep this long inside every node (widens crash windows)
 *   TSG_EXEC_LOG   append "run step node attempt pid" to this file for every
 *                  node execution, committed or not (detects double runs)
 *
 * "gate": START → prepare → ask → finish → END. `ask` awaits the event
 * "approval" (payload {"question": ...}) and appends "ask:<value>".
 */
#ifndef ORCH_TESTS_GRAPHS_H
#define ORCH_TESTS_GRAPHS_H

#include "engine/graph.h"

eng_graph *tsg_linear4(void);
eng_graph *tsg_gate(void);

/* Records a node execution in TSG_EXEC_LOG, if set. */
void tsg_exec_log(eng_ctx *ctx);

#endif
