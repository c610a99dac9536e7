/*
 * spec — what the models answer, parsed at the edge into typed structs:
 * the project spec (brainstorm), the plan (architect) and the verdict
 * (reviewer). Each reply is first checked against its JSON schema
 * (nodes/prompts/NAME.schema.json, built into the binary), then read field by
 * field; the rest of the factory works with these structs and stores the
 * normalised JSON they turn back into. A plan is also checked as a DAG:
 * task ids usable as branch names and unique, dependencies known, no
 * cycle; tasks that expect to touch the same file are ordered (a
 * dependency is added) so they never run in parallel.
 */
#ifndef ORCH_NODES_SPEC_H
#define ORCH_NODES_SPEC_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"

#define ND_MAX_TASKS 40
#define ND_MAX_FILES 60
#define ND_TASK_ID_MAX 32

typedef struct nd_strv {
	char **v;
	size_t n;
} nd_strv;

typedef struct nd_feature {
	char *name;
	char *description;   /* may be NULL */
	nd_strv acceptance;  /* at least one criterion */
} nd_feature;

/* The network of the project's workers and merges, and the command that
 * installs its dependencies (nodes/netspec.h). */
typedef struct nd_netspec {
	char *setup_command; /* NULL: none */
	char *policy;        /* NULL: the spawner's default (ORCH_NET_POLICY); else
				"none", "registries" or "hosts" */
	nd_strv hosts;       /* policy "hosts": the host patterns */
} nd_netspec;

typedef struct nd_spec {
	char *name, *summary, *language, *test_command;
	nd_strv users, stack, constraints;
	nd_feature *features;
	size_t nfeatures;
	char *remote_url;    /* NULL: none */
	char *remote_handle; /* NULL: none */
	nd_netspec net;
} nd_spec;

typedef struct nd_plan_task {
	char *id, *title, *goal;
	nd_strv files, checks, deps;
	nd_strv ordered_after; /* dependencies added because files are shared */
} nd_plan_task;

typedef struct nd_file {
	char *path, *content;
} nd_file;

typedef struct nd_plan {
	char *summary, *test_command, *readme;
	nd_plan_task *tasks;      /* in an order that respects the dependencies */
	size_t ntasks;
	nd_file *files;      /* the scaffold besides README.md */
	size_t nfiles;
} nd_plan;

typedef struct nd_comment {
	char *file;          /* may be NULL */
	int line;            /* 0: none */
	char *text;
} nd_comment;

typedef struct nd_review {
	int approve;         /* 1: approve; 0: changes requested */
	int round;           /* the review round (stored with the task); 0: none */
	char *summary;
	nd_comment *comments;
	size_t ncomments;
} nd_review;

/* The schema of a reply ("spec", "plan", "change_plan", "review" or
 * "brainstorm", the latter {"message", "spec": null | spec}). Borrowed, loaded once;
 * thread-safe. NULL (and err_set) when the built-in file is broken. */
const json_t *nd_schema(const char *name);

/* Reads a value that matched its schema into *out (initialised here; free
 * it in every case). ERR_INVALID naming the field and what is wrong. */
int nd_spec_from_json(const json_t *j, nd_spec *out);
int nd_plan_from_json(const json_t *j, nd_plan *out); /* + the DAG checks above */
/* A change's plan (schema "change_plan": the plan's without "readme" and
 * "files", the repository existing): the same checks, no scaffold. */
int nd_change_plan_from_json(const json_t *j, nd_plan *out);
int nd_review_from_json(const json_t *j, nd_review *out);

/* Reads a plan or a verdict the factory stored in its state (normalised
 * JSON it wrote itself): no schema or DAG checks. A plan that is not an
 * object reads as no plan. Free in every case; ERR_INVALID, ERR_NOMEM. */
int nd_plan_read(const json_t *j, nd_plan *out);
int nd_review_read(const json_t *j, nd_review *out);

void nd_spec_free(nd_spec *s);
void nd_plan_free(nd_plan *p);
void nd_review_free(nd_review *r);

/* Normalised JSON for the state (owned). The plan's JSON leaves out the
 * scaffold (files, readme). */
json_t *nd_spec_to_json(const nd_spec *s);
json_t *nd_plan_to_json(const nd_plan *p);
json_t *nd_review_to_json(const nd_review *r);

/* The spec and the plan as a person reads them (Telegram HTML). */
void nd_spec_html(const json_t *spec, buf *out);
void nd_plan_html(const json_t *plan, buf *out);

/* A safe relative path for the repository: no "..", no absolute path, no
 * .git, printable. 0 or ERR_INVALID. */
int nd_path_check(const char *path);

#endif
