/*
 * person — the person an eval run plays, by a fixed policy, so that runs
 * are comparable:
 *
 *   - the brainstorm's first question is answered with every fact the task
 *     lists under "answers" (one message); a later question with "nothing
 *     to add: choose sensible defaults"; after EV_PERSON_MAX_ANSWERS
 *     questions the person gives up and the project is stopped;
 *   - the spec and the plan are approved as proposed; a merge asked for
 *     (ORCH_MERGE_APPROVAL) is allowed;
 *   - an escalation about a task (it failed, its reviews go on, its review
 *     failed) is answered "retry" the first time for that task and "stop"
 *     the second time; a budget question is answered "stop" (the task's
 *     budget is where the run stops it);
 *   - a question it does not know is answered with its stop or cancel
 *     option.
 *
 * Every answer counts as an intervention. Not thread-safe: one per project.
 */
#ifndef ORCH_EVAL_PERSON_H
#define ORCH_EVAL_PERSON_H

#include <jansson.h>

#include "core/buf.h"
#include "eval/task.h"

#define EV_PERSON_MAX_ANSWERS 5

typedef struct ev_person {
	int answers;          /* questions of the brainstorm answered */
	int interventions;    /* every answer, decision and nudge */
	int stopped;          /* the person chose to stop the project */
	char retried[16][64]; /* tasks retried once already */
	int nretried;
} ev_person;

/* The reply to the brainstorm's next question into `out` (appended), or 1
 * (nothing appended) when the person gives up. */
int ev_person_reply(ev_person *p, const ev_task *t, buf *out);

/* The option to take for the question under event key `key` (spec:<v>,
 * plan:<v>, q:<n>:<kind>:<task>, budget:<n>) among `options` ([{"id",
 * "label"}], borrowed): its index into *out. -1 when there are none. */
int ev_person_choose(ev_person *p, const char *key, const json_t *options, int *out);

#endif
