/*
 * task — an eval task: eval/tasks/<id>/task.json and its folders (the format
 * is eval/README.md's), read into a typed struct at the edge. A task.json
 * that does not follow the format is refused with a message naming the task
 * and every problem found, as eval/check_tasks.py names them.
 */
#ifndef ORCH_EVAL_TASK_H
#define ORCH_EVAL_TASK_H

#include <stddef.h>
#include <stdint.h>

#define EV_ID_MAX 64

typedef struct ev_task {
	char id[EV_ID_MAX];
	char title[128];
	char lang[16];            /* python, node, go, sql, c */
	char size[16];            /* small, medium, large */
	char kind[16];            /* new, change */
	char *idea;               /* owned */
	char **answers;           /* owned, nanswers strings */
	size_t nanswers;
	char toolchain[256];      /* the tools, separated by spaces */
	int64_t budget_tokens;    /* in and out together */
	double budget_usd;
	int64_t budget_wall_s;
	char *hidden_command;     /* owned: run with sh -c in the checkout */
	int64_t hidden_timeout_s;
	char base_branch[128];    /* change only */
	char *repo_tests_command; /* change only; owned */
	int64_t repo_tests_timeout_s;
	char dir[1024];           /* the task's folder */
} ev_task;

/* Reads `dir`/task.json into *out (initialised here; ev_task_free in every
 * case). ERR_INVALID listing the problems (unknown keys, wrong types, an id
 * that is not the folder's name, no hidden/ folder), ERR_IO or ERR_PARSE
 * when the file cannot be read. */
int ev_task_load(const char *dir, ev_task *out);

void ev_task_free(ev_task *t);

/* Every task under `tasks_dir` (one folder each), sorted by id, into *out
 * (*n of them; free with ev_tasks_free). The first task that does not load
 * fails the whole list, its message naming it. ERR_NOTFOUND when the folder
 * does not exist or holds no task. */
int ev_tasks_load(const char *tasks_dir, ev_task **out, size_t *n);

void ev_tasks_free(ev_task *tasks, size_t n);

/* The whole text of the file at `path` into *out (owned, NUL-terminated).
 * ERR_NOTFOUND when it does not exist, ERR_IO, ERR_TOOBIG past 64 MiB. */
int ev_read_text(const char *path, char **out);

/* "python" for "python", "py" or "python3"; likewise node (js, javascript),
 * go (golang), sql (sqlite), c. ERR_INVALID naming the languages. */
int ev_lang_parse(const char *s, char *out, size_t cap);

#endif
