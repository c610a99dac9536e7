/*
 * orchestrator eval run — the factory measured on the eval tasks (eval/):
 * live against the configured models (optionally recording every model
 * exchange), or replaying a recording. The roles run in this process
 * (cli/inproc.c); the person is played by eval/runner.h through the
 * terminal chat's paths (cli/eval_front.c).
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "eval/replay.h"
#include "eval/report.h"
#include "eval/runner.h"
#include "eval/task.h"
#include "llm/llm.h"
#include "secrets/runtime.h"
#include "spawner/spawner.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator eval run [--task ID]... [--lang L]... [--parallel N] [--live | --replay DIR]\n"
	"                      [--record DIR] [--gate FILE] [--save-baseline FILE] [--json]\n"
	"                      [--out DIR] [--tasks DIR] [--timeout DURATION] [--keep]\n"
	"  Runs eval tasks (eval/tasks) through the whole factory in this process (engine,\n"
	"  spawner, sandboxes, git, reviews, merges), playing the person: it answers the\n"
	"  brainstorm from the task's answers, approves the spec and the plan, and answers an\n"
	"  escalation with retry once, then stop. Then each project's main gets the task's\n"
	"  hidden tests. The report goes to the terminal, OUT/report.json and OUT/report.md.\n"
	"  --live              the configured models (LLM_BASE_URL and LLM_MODEL, or\n"
	"                      ORCH_MODELS); the default\n"
	"  --replay DIR        the model replies recorded in DIR (eval/recordings has six\n"
	"                      tasks); tasks without a recording there are skipped\n"
	"  --record DIR        with --live: every model exchange into DIR, for --replay\n"
	"  --task ID           only this task (repeatable)\n"
	"  --lang L            only this language: python, node, go, sql, c (repeatable)\n"
	"  --parallel N        projects at once (default 2)\n"
	"  --timeout D         stop a task after D (e.g. 10m) even when its budget allows more\n"
	"  --gate FILE         compare with a baseline (eval/baseline.json): exit status 3 when\n"
	"                      the pass rate dropped or the cost per solved task rose beyond\n"
	"                      its tolerance\n"
	"  --save-baseline F   write this run's outcomes as a baseline file\n"
	"  --out DIR           where the report goes (default build/eval)\n"
	"  --tasks DIR         the tasks (default eval/tasks)\n"
	"  --json              the report as JSON on stdout instead of the table\n"
	"  --keep              keep the checkouts the hidden tests ran in (OUT/work/<task>)\n"
	"  A task of kind change starts from its repo/ folder, as 'orchestrator new --repo'\n"
	"  does, and its hidden tests run on the repository's branch the change merged into.\n"
	"  Needs root (sandboxes), PostgreSQL and Redis (DATABASE_URL, REDIS_URL), and no\n"
	"  other engine on that database. Progress lines go to stderr.";

#define MAX_SEL 64

static atomic_int g_interrupt;

static void on_interrupt(int sig)
{
	(void)sig;
	atomic_store(&g_interrupt, 1);
}

typedef struct eval_args {
	const char *ids[MAX_SEL];
	int nids;
	char langs[MAX_SEL][16];
	int nlangs;
	int parallel;
	int live, json, keep;
	const char *replay, *record, *gate, *save, *out, *tasks;
	int64_t timeout_ms;
} eval_args;

static int parse(int argc, char **argv, eval_args *a)
{
	memset(a, 0, sizeof(*a));
	a->parallel = 2;
	a->out = "build/eval";
	a->tasks = "eval/tasks";
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_opt(argc, argv, &i, "--task", &v)) {
			if (a->nids >= MAX_SEL)
				return cli_usage(USAGE);
			a->ids[a->nids++] = v;
		} else if (cli_opt(argc, argv, &i, "--lang", &v)) {
			if (a->nlangs >= MAX_SEL || ev_lang_parse(v, a->langs[a->nlangs], 16) < 0) {
				fprintf(stderr, "orchestrator eval: %s\n", err_last());
				return 2;
			}
			a->nlangs++;
		} else if (cli_opt(argc, argv, &i, "--parallel", &v)) {
			int64_t n = cli_int(v);
			if (n < 1 || n > 32) {
				fprintf(stderr, "orchestrator eval: --parallel wants 1 to 32, not '%s'\n", v);
				return 2;
			}
			a->parallel = (int)n;
		} else if (cli_opt(argc, argv, &i, "--timeout", &v)) {
			if (cfg_parse_duration_ms(v, &a->timeout_ms) < 0 || a->timeout_ms <= 0) {
				fprintf(stderr, "orchestrator eval: --timeout wants a duration such as 10m, "
						"not '%s'\n", v);
				return 2;
			}
		} else if (cli_opt(argc, argv, &i, "--replay", &v)) {
			a->replay = v;
		} else if (cli_opt(argc, argv, &i, "--record", &v)) {
			a->record = v;
		} else if (cli_opt(argc, argv, &i, "--gate", &v)) {
			a->gate = v;
		} else if (cli_opt(argc, argv, &i, "--save-baseline", &v)) {
			a->save = v;
		} else if (cli_opt(argc, argv, &i, "--out", &v)) {
			a->out = v;
		} else if (cli_opt(argc, argv, &i, "--tasks", &v)) {
			a->tasks = v;
		} else if (cli_flag(argv, i, "--live")) {
			a->live = 1;
		} else if (cli_flag(argv, i, "--json")) {
			a->json = 1;
		} else if (cli_flag(argv, i, "--keep")) {
			a->keep = 1;
		} else if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 0;
		} else {
			fprintf(stderr, "orchestrator eval: unknown option '%s'\n", argv[i]);
			return cli_usage(USAGE);
		}
	}
	if (a->replay && (a->live || a->record)) {
		fprintf(stderr, "orchestrator eval: --replay replays a recording; --live and --record "
				"run the models\n");
		return 2;
	}
	return -1;
}

/* The tasks the arguments select, each with a reason when it is skipped.
 * ERR_NOTFOUND naming an unknown --task. */
static int select_tasks(const eval_args *a, ev_task *all, size_t n, int can_change,
			ev_item **out, size_t *nout)
{
	ev_item *items = calloc(n + 1, sizeof(ev_item));
	size_t k = 0;

	*out = NULL;
	*nout = 0;
	if (!items)
		return err_set(ERR_NOMEM, "out of memory");
	for (int i = 0; i < a->nids; i++) {
		size_t j;
		for (j = 0; j < n && strcmp(all[j].id, a->ids[i]) != 0; j++)
			;
		if (j == n) {
			free(items);
			return err_set(ERR_NOTFOUND, "no task '%s' in %s (the tasks are its folders)",
				       a->ids[i], a->tasks);
		}
	}
	for (size_t j = 0; j < n; j++) {
		int want = a->nids == 0, lang = a->nlangs == 0;
		for (int i = 0; i < a->nids; i++)
			want |= strcmp(all[j].id, a->ids[i]) == 0;
		for (int i = 0; i < a->nlangs; i++)
			lang |= strcmp(all[j].lang, a->langs[i]) == 0;
		if (!want || !lang)
			continue;
		items[k].task = &all[j];
		if (strcmp(all[j].kind, "change") == 0 && !can_change)
			items[k].skip = "needs changes to existing repositories";
		k++;
	}
	if (k == 0) {
		free(items);
		return err_set(ERR_NOTFOUND, "no task matches the --task and --lang given");
	}
	*out = items;
	*nout = k;
	return 0;
}

/* Replay: the recordings of DIR into the server; the items without one are
 * skipped. The models file of the recording, pointed at the server, into
 * *models. */
static int load_replay(const char *dir, ev_proxy *px, ev_item *items, size_t n, json_t **models)
{
	char path[1200], *text = NULL;
	json_error_t je;
	int rc, have = 0;

	*models = NULL;
	for (size_t i = 0; i < n; i++) {
		if (items[i].skip)
			continue;
		snprintf(path, sizeof(path), "%s/%s.jsonl", dir, items[i].task->id);
		rc = ev_read_text(path, &text);
		if (rc == ERR_NOTFOUND) {
			items[i].skip = "no recording of it in the replayed folder";
			err_clear();
			continue;
		}
		if (rc == 0)
			rc = ev_proxy_load(px, items[i].task->id, text, path);
		free(text);
		text = NULL;
		if (rc < 0)
			return rc;
		have++;
	}
	if (have == 0)
		return err_set(ERR_NOTFOUND, "%s has no recording of the tasks selected (a recording "
					     "is <task id>.jsonl)", dir);
	snprintf(path, sizeof(path), "%s/models.json", dir);
	*models = json_load_file(path, 0, &je);
	if (!*models)
		return err_set(ERR_PARSE, "the recording's models file %s cannot be read: %s", path,
			       je.text);
	return ev_models_rebase(*models, ev_proxy_url(px));
}

/* Record: the configured models, each endpoint passed on by the server;
 * DIR/models.json gets the registry without its keys. */
static int setup_record(const char *dir, ev_proxy *px, llm_registry *reg, json_t **models)
{
	json_t *kept = NULL;
	char path[1200];
	int rc;

	*models = NULL;
	for (int i = 0; i < llm_registry_n_endpoints(reg); i++) {
		const llm_endpoint *e = llm_registry_endpoint(reg, i);
		rc = ev_proxy_upstream(px, e->name, e->base_url, e->timeout_ms);
		if (rc < 0)
			return rc;
	}
	rc = ev_models_json(reg, "http://recorded.invalid", 0, &kept);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/models.json", dir);
	if (json_dump_file(kept, path, JSON_INDENT(2)) < 0)
		rc = err_set(ERR_IO, "cannot write %s", path);
	json_decref(kept);
	if (rc == 0)
		rc = ev_models_json(reg, ev_proxy_url(px), 1, models);
	return rc;
}

static void models_words(const json_t *models, const char *origin, char *out, size_t cap)
{
	const char *k;
	const json_t *v;
	size_t used;

	snprintf(out, cap, "%s:", origin);
	used = strlen(out);
	json_object_foreach((json_t *)json_object_get(models, "models"), k, v) {
		const char *id = json_string_value(json_object_get(v, "model"));
		int w = snprintf(out + used, cap - used, " %s", id ? id : k);
		if (w < 0 || (size_t)w >= cap - used)
			break;
		used += (size_t)w;
	}
}

/* The models of a run: recorded (--replay), or the configured ones, through
 * the recorder with --record. *px, *reg and *models (owned) as far as they
 * were made; origin[ocap] names where they came from. 0, or the exit
 * status after a message on stderr. */
static int eval_models(const eval_args *a, ev_item *items, size_t nitems, ev_proxy **px,
		       llm_registry **reg, json_t **models, char *origin, size_t ocap)
{
	if (a->replay) {
		if (ev_proxy_start(px, EV_REPLAY, NULL) < 0 ||
		    load_replay(a->replay, *px, items, nitems, models) < 0) {
			fprintf(stderr, "orchestrator eval: --replay %s: %s\n", a->replay, err_last());
			return 1;
		}
		snprintf(origin, ocap, "%s/models.json", a->replay);
		return 0;
	}
	if (llm_registry_load(reg) < 0)
		return cli_fail("language models");
	if (llm_registry_n_models(*reg) == 0) {
		fprintf(stderr, "orchestrator eval: no language model is configured.\n");
		cli_model_hint();
		fprintf(stderr, "  Or replay the recorded tasks: orchestrator eval run --replay "
				"eval/recordings\n");
		return 2;
	}
	snprintf(origin, ocap, "%s", llm_registry_origin(*reg));
	if (a->record && (ev_proxy_start(px, EV_RECORD, a->record) < 0 ||
			  setup_record(a->record, *px, *reg, models) < 0)) {
		fprintf(stderr, "orchestrator eval: --record %s: %s\n", a->record, err_last());
		return 1;
	}
	if (!*models && ev_models_json(*reg, "", 1, models) < 0)
		return cli_fail("language models");
	return 0;
}

/* The run's options from the arguments and the sandbox configuration; the
 * strings stay the caller's. Ctrl-C then cancels the projects and the
 * report is written. */
static void eval_options(ev_options *o, const eval_args *a, const spw_config *scfg,
			 const char *words, const char *prefix, const char *work)
{
	struct sigaction sa;

	memset(o, 0, sizeof(*o));
	o->mode = a->replay ? "replay" : a->record ? "record" : "live";
	o->models = words;
	o->chat_prefix = prefix;
	o->parallel = a->parallel;
	o->timeout_ms = a->timeout_ms;
	o->work_dir = work;
	o->log_dir = a->out;
	o->keep = a->keep;
	o->sandbox.backend = scfg->sandbox;
	o->sandbox.image = scfg->sandbox_image;
	o->sandbox.runtime = scfg->sandbox_runtime;
	o->sandbox.allow_degraded = scfg->allow_degraded;
	o->progress = stderr;
	o->interrupt = &g_interrupt;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cmd_eval(int argc, char **argv)
{
	eval_args a;
	ev_task *all = NULL;
	ev_item *items = NULL;
	size_t nall = 0, nitems = 0;
	ev_proxy *px = NULL;
	json_t *models = NULL, *report = NULL;
	llm_registry *reg = NULL;
	pg_pool *pool = NULL;
	llm_service *llm = NULL;
	cli_factory *fac = NULL;
	ev_front front;
	ev_options o;
	spw_config scfg;
	char prefix[32], hex[7], work[1100], words[600], origin[1100];
	int rc, status = 1, gate_ok = 1;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		puts(USAGE);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "run") != 0) {
		fprintf(stderr, "orchestrator eval: unknown action '%s'\n", argv[1]);
		return cli_usage(USAGE);
	}
	rc = parse(argc - 1, argv + 1, &a);
	if (rc >= 0)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	cli_eval_front(&front);
	if (ev_tasks_load(a.tasks, &all, &nall) < 0 ||
	    select_tasks(&a, all, nall, front.start_repo != NULL, &items, &nitems) < 0) {
		fprintf(stderr, "orchestrator eval: %s\n", err_last());
		goto done;
	}

	status = eval_models(&a, items, nitems, &px, &reg, &models, origin, sizeof(origin));
	if (status != 0)
		goto done;
	status = 1;
	models_words(models, origin, words, sizeof(words));

	/* the database, the secrets, the models and the roles, in this process */
	if (pg_pool_new(&pool, cli_cfg.database_url,
			cli_cfg.db_pool_size + 2 * a.parallel + 6) < 0) {
		cli_fail("database pool");
		goto done;
	}
	if (cli_factory_alone(pool) < 0) {
		cli_fail("eval");
		goto done;
	}
	if (cli_start_secrets(pool) < 0) {
		cli_fail("secrets");
		goto done;
	}
	if (px) {
		rc = cli_llm_from_json(models, origin, pool, 1, &llm);
	} else {
		/* live without recording: the configured registry as it is */
		llm_options lo;
		rc = llm_options_from_env(&lo);
		if (rc == 0) {
			lo.pool = pool;
			rc = llm_service_new(&llm, reg, &lo);
			reg = NULL; /* the service owns it, also on failure */
		}
	}
	if (rc < 0) {
		cli_fail("language models");
		goto done;
	}
	if (spw_config_from_env(&scfg, cli_cfg.redis_url, cli_cfg.data_dir) < 0 ||
	    cli_factory_start(pool, llm, &fac) < 0) {
		cli_fail("the factory");
		goto done;
	}

	util_rand_hex(hex, 3);
	snprintf(prefix, sizeof(prefix), "eval-%s", hex);
	snprintf(work, sizeof(work), "%s/work", a.out);
	if ((mkdir(a.out, 0755) < 0 && errno != EEXIST) || (mkdir(work, 0755) < 0 && errno != EEXIST)) {
		fprintf(stderr, "orchestrator eval: cannot create %s: %s\n", work, strerror(errno));
		goto done;
	}
	eval_options(&o, &a, &scfg, words, prefix, work);
	fprintf(stderr, "eval: %zu task%s (%s), %s, %d at a time; chats %s-<task>\n", nitems,
		nitems == 1 ? "" : "s", o.mode, words, a.parallel, prefix);
	if (ev_run(&o, items, nitems, pool, px, &front, &report) < 0) {
		cli_fail("eval");
		goto done;
	}
	if (ev_report_totals(report) < 0 ||
	    (a.gate && ev_report_gate(report, a.gate, &gate_ok) < 0) ||
	    ev_report_write(report, a.out) < 0 ||
	    (a.save && ev_report_save_baseline(report, a.save, NULL) < 0)) {
		cli_fail("the report");
		goto done;
	}
	if (a.json) {
		cli_print_json(report);
	} else {
		ev_report_table(report, stdout);
		printf("report: %s/report.json, %s/report.md\n", a.out, a.out);
	}
	status = gate_ok ? 0 : 3;
done:
	cli_factory_stop(fac);
	sec_runtime_stop();
	llm_service_free(llm);
	llm_registry_free(reg);
	ev_proxy_free(px);
	pg_pool_free(pool);
	json_decref(report);
	json_decref(models);
	free(items);
	ev_tasks_free(all, nall);
	return status;
}
