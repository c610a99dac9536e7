/*
 * report — what an eval run found, for people and for scripts: the totals,
 * a table for the terminal, report.json and report.md, and the regression
 * gate against a baseline.
 *
 * The report (eval/runner.h builds it) is {"run": {...}, "tasks": [...]};
 * ev_report_totals adds "totals": {"tasks", "ran", "skipped", "solved",
 * "pass_rate" (solved of ran), "tokens_in", "tokens_out", "cost_usd",
 * "cost_per_solved_usd" (null with none solved), "median_merged_s" (the
 * median time to a merged main of the projects that got there; null with
 * none), "calls", "interventions", "replay_mismatches"}.
 *
 * A BASELINE (eval/baseline.json) is {"about", "mode", "tolerance":
 * {"pass_rate": absolute drop allowed (0.1 = ten points), "cost_per_solved":
 * relative rise allowed (0.25 = a quarter)}, "tasks": {id: {"solved",
 * "cost_usd"}}}. The gate compares the tasks that the run and the baseline
 * both have: it FAILS when the pass rate over them is lower than the
 * baseline's by more than its tolerance, or when the cost per solved task
 * is higher by more than its tolerance; either way it lists the tasks whose
 * outcome changed.
 */
#ifndef ORCH_EVAL_REPORT_H
#define ORCH_EVAL_REPORT_H

#include <jansson.h>
#include <stdio.h>

/* Adds "totals" to `report` (borrowed, changed in place). */
int ev_report_totals(json_t *report);

/* The table: one line per task, then the totals (and the gate's verdict
 * when the report has one). */
void ev_report_table(const json_t *report, FILE *out);

/* Writes `dir`/report.json and `dir`/report.md (the folder is created).
 * ERR_IO naming the file. */
int ev_report_write(const json_t *report, const char *dir);

/* Checks the report against the baseline file `path`; adds "gate": {
 * "baseline", "passed", "checks": [{"what", "baseline", "now", "limit",
 * "passed"}], "changed": [{"id", "was", "now"}], "compared"} to `report`
 * and sets *passed. ERR_IO or ERR_PARSE for a baseline that cannot be
 * read. */
int ev_report_gate(json_t *report, const char *path, int *passed);

/* Writes the report as a baseline file at `path`, with `tolerance` (an
 * object like the baseline's, borrowed; NULL: 0.1 and 0.25). */
int ev_report_save_baseline(const json_t *report, const char *path, const json_t *tolerance);

#endif
