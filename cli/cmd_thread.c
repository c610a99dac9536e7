/* Thread and run commands: threads, history, state, fork, run, cancel, retry. */
#include "bot/route.h"
#include "cli/cli.h"
#include "core/err.h"
#include "engine/control.h"
#include "engine/report.h"
#include "engine/stream.h"
#include "nodes/factory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses "[--json] [--limit N]" style options common to listing commands;
 * returns the index of the first positional argument or -1 on a bad option. */
typedef struct list_opts {
	int json;
	int64_t limit;
	int64_t seq;
	const char *update;
	const char *set;  /* state --set FILE */
	const char *as;   /* state --as NODE */
	int cont;         /* state --continue */
	int64_t run;
	const char *pos[2];
	int npos;
} list_opts;

static int parse(int argc, char **argv, list_opts *o, const char *usage)
{
	memset(o, 0, sizeof(*o));
	o->limit = 50;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_flag(argv, i, "--help")) {
			puts(usage);
			return 1;
		}
		if (cli_flag(argv, i, "--json")) {
			o->json = 1;
		} else if (cli_opt(argc, argv, &i, "--limit", &v)) {
			o->limit = cli_int(v);
			if (o->limit < 1)
				return cli_usage(usage);
		} else if (cli_opt(argc, argv, &i, "--seq", &v)) {
			o->seq = cli_int(v);
			if (o->seq < 1)
				return cli_usage(usage);
		} else if (cli_opt(argc, argv, &i, "--run", &v)) {
			o->run = cli_int(v);
			if (o->run < 1)
				return cli_usage(usage);
		} else if (cli_opt(argc, argv, &i, "--update", &v)) {
			o->update = v;
		} else if (cli_opt(argc, argv, &i, "--set", &v)) {
			o->set = v;
		} else if (cli_opt(argc, argv, &i, "--as", &v)) {
			o->as = v;
		} else if (cli_flag(argv, i, "--continue")) {
			o->cont = 1;
		} else if (argv[i][0] == '-' || o->npos == 2) {
			return cli_usage(usage);
		} else {
			o->pos[o->npos++] = argv[i];
		}
	}
	return 0;
}

static const char USAGE_THREADS[] = "orchestrator threads [--limit N] [--json]\n"
				    "  Threads, most recently active first, with their latest run.";

int cmd_threads(int argc, char **argv)
{
	list_opts o;
	json_t *list = NULL, *t;
	size_t i;
	pg_conn *c;
	int rc = parse(argc, argv, &o, USAGE_THREADS);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (o.npos)
		return cli_usage(USAGE_THREADS);
	c = cli_db();
	if (!c)
		return 1;
	rc = eng_threads_list(c, (int)o.limit, &list);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("threads");
	if (o.json) {
		cli_print_json(list);
	} else {
		printf("%-6s %-32s %-12s %-10s %6s %s\n", "ID", "KEY", "GRAPH", "LAST RUN", "STEPS",
		       "CHECKPOINTS");
		json_array_foreach(list, i, t) {
			json_t *r = json_object_get(t, "last_run");
			printf("%-6lld %-32s %-12s %-10s %6lld %lld\n",
			       (long long)json_integer_value(json_object_get(t, "id")),
			       json_string_value(json_object_get(t, "key")),
			       json_string_value(json_object_get(t, "graph")),
			       r ? json_string_value(json_object_get(r, "status")) : "-",
			       r ? (long long)json_integer_value(json_object_get(r, "step")) : 0,
			       (long long)json_integer_value(json_object_get(t, "checkpoints")));
		}
	}
	json_decref(list);
	return 0;
}

static int find_thread(pg_conn *c, const char *arg, int64_t *id)
{
	return eng_thread_find(c, arg, id);
}

/* Appends ",item" (or "item" first) to out[cap], truncating quietly. */
static void join(char *out, size_t cap, const char *item)
{
	size_t used = strlen(out);

	if (used + 2 < cap)
		snprintf(out + used, cap - used, "%s%s", used ? "," : "", item ? item : "?");
}

static const char USAGE_HISTORY[] =
	"orchestrator history <thread> [--limit N] [--json]\n"
	"  A thread's checkpoints, newest first: one per super-step, with the nodes that\n"
	"  ran and the ones next. <thread> is a thread id or key.";

int cmd_history(int argc, char **argv)
{
	list_opts o;
	json_t *h = NULL, *ck;
	int64_t tid;
	size_t i;
	pg_conn *c;
	int rc = parse(argc, argv, &o, USAGE_HISTORY);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (o.npos != 1)
		return cli_usage(USAGE_HISTORY);
	c = cli_db();
	if (!c)
		return 1;
	rc = find_thread(c, o.pos[0], &tid);
	if (rc == 0)
		rc = eng_history(c, tid, (int)o.limit, &h);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("history");
	if (o.json) {
		cli_print_json(h);
		json_decref(h);
		return 0;
	}
	printf("%5s %6s %6s %4s  %-30s %-30s %s\n", "SEQ", "PARENT", "RUN", "STEP", "RAN", "NEXT",
	       "AT");
	json_array_foreach(h, i, ck) {
		char ran[256] = "", next[256] = "";
		size_t k;
		json_t *v;

		json_array_foreach(json_object_get(ck, "nodes"), k, v) {
			join(ran, sizeof(ran), json_string_value(v));
		}
		json_array_foreach(json_object_get(ck, "next"), k, v) {
			join(next, sizeof(next), json_string_value(json_object_get(v, "node")));
		}
		char parent[24] = "-";
		if (!json_is_null(json_object_get(ck, "parent")))
			snprintf(parent, sizeof(parent), "%lld",
				 (long long)json_integer_value(json_object_get(ck, "parent")));
		printf("%5lld %6s %6lld %4lld  %-30s %-30s %s%s\n",
		       (long long)json_integer_value(json_object_get(ck, "seq")), parent,
		       (long long)json_integer_value(json_object_get(ck, "run")),
		       (long long)json_integer_value(json_object_get(ck, "step")), ran,
		       next[0] ? next : "(end)", json_string_value(json_object_get(ck, "at")),
		       json_is_true(json_object_get(ck, "snapshot")) ? "  [snapshot]" : "");
	}
	json_decref(h);
	return 0;
}

static const char USAGE_STATE[] =
	"orchestrator state <thread> [--seq N]\n"
	"orchestrator state <thread> --set FILE [--as NODE] [--continue]\n"
	"  Prints a thread's state (JSON) at its latest checkpoint or at checkpoint N,\n"
	"  with the tasks that were next there.\n"
	"  --set edits it: a new checkpoint whose state is the latest one with the JSON\n"
	"  object in FILE ('-': standard input) applied through the graph's reducers, as\n"
	"  if node NODE had returned it, so what follows NODE runs next (without --as the\n"
	"  same tasks as before follow). Refused while a run of the thread is queued or\n"
	"  running; a run that waits is moved to the new checkpoint (with --as it goes on\n"
	"  from there). --continue queues a run from it when none is active.";

/* `state --set`: the edit as if NODE returned it (eng_update_state). */
static int state_set(pg_conn *c, int64_t tid, const list_opts *o)
{
	eng_graph *g = NULL;
	json_t *update;
	json_error_t jerr;
	eng_update_result u;
	char graph[64];
	int rc;

	update = strcmp(o->set, "-") == 0 ? json_loadf(stdin, 0, &jerr)
					   : json_load_file(o->set, 0, &jerr);
	if (!json_is_object(update)) {
		fprintf(stderr, "orchestrator: state: %s must hold a JSON object (%s)\n", o->set,
			update ? "it holds another JSON value" : jerr.text);
		json_decref(update);
		return 2;
	}
	rc = eng_thread_graph(c, tid, graph, sizeof(graph));
	if (rc == 0 && strcmp(graph, "factory") != 0)
		rc = err_set(ERR_INVALID, "thread %lld runs graph '%s', which this program does not "
					  "have (only 'factory')", (long long)tid, graph);
	if (rc == 0)
		rc = nd_factory_graph(&g);
	if (rc == 0)
		rc = eng_update_state(c, g, tid, update, o->as, o->cont ? ENG_UPDATE_RUN : 0, &u);
	json_decref(update);
	eng_graph_free(g);
	if (rc < 0)
		return cli_fail("state");
	printf("checkpoint %d written%s%s", u.seq, o->as ? " as node " : "", o->as ? o->as : "");
	if (u.run_id)
		printf("; run %lld is %s", (long long)u.run_id, u.run_status);
	printf("\n");
	return 0;
}

int cmd_state(int argc, char **argv)
{
	list_opts o;
	json_t *state = NULL, *next = NULL, *out;
	int64_t tid;
	int seq = 0;
	pg_conn *c;
	int rc = parse(argc, argv, &o, USAGE_STATE);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (o.npos != 1 || ((o.as || o.cont) && !o.set) || (o.set && o.seq))
		return cli_usage(USAGE_STATE);
	c = cli_db();
	if (!c)
		return 1;
	rc = find_thread(c, o.pos[0], &tid);
	if (rc == 0 && o.set) {
		rc = state_set(c, tid, &o);
		pg_conn_close(c);
		return rc;
	}
	if (rc == 0)
		rc = eng_state_at(c, tid, (int)o.seq, &state, &next, &seq);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("state");
	out = json_pack("{s:I,s:i,s:o,s:o}", "thread", (json_int_t)tid, "seq", seq, "state", state,
			"next", next ? next : json_array());
	cli_print_json(out);
	json_decref(out);
	return 0;
}

static const char USAGE_FORK[] =
	"orchestrator fork <thread> <seq> [--update JSON]\n"
	"  Queues a new run that starts from checkpoint <seq> of the thread (time travel):\n"
	"  the state there, with the JSON update applied, continuing with the tasks that\n"
	"  were next. A running engine executes it.";

int cmd_fork(int argc, char **argv)
{
	list_opts o;
	json_t *update = NULL;
	json_error_t jerr;
	int64_t tid, seq, run = 0;
	pg_conn *c;
	int rc = parse(argc, argv, &o, USAGE_FORK);

	if (rc)
		return rc == 1 ? 0 : rc;
	seq = o.npos == 2 ? cli_int(o.pos[1]) : 0;
	if (o.npos != 2 || seq < 1)
		return cli_usage(USAGE_FORK);
	if (o.update) {
		update = json_loads(o.update, 0, &jerr);
		if (!json_is_object(update)) {
			fprintf(stderr, "orchestrator: fork: --update must be a JSON object (%s)\n",
				update ? "got another JSON value" : jerr.text);
			json_decref(update);
			return 2;
		}
	}
	c = cli_db();
	if (!c) {
		json_decref(update);
		return 1;
	}
	rc = find_thread(c, o.pos[0], &tid);
	if (rc == 0)
		rc = eng_fork(c, tid, (int)seq, update, &run);
	pg_conn_close(c);
	json_decref(update);
	if (rc < 0)
		return cli_fail("fork");
	printf("run %lld queued from checkpoint %lld of thread %lld\n", (long long)run,
	       (long long)seq, (long long)tid);
	return 0;
}

static const char USAGE_RUN[] =
	"orchestrator run <run-id> [--stream [MODES]] [--json]\n"
	"  Prints one run as JSON. With --stream, follows it live instead: its last\n"
	"  checkpoint, then what it emits as it runs, in MODES (comma-separated: values,\n"
	"  updates, custom, messages, checkpoints, tasks, debug; all; default: updates,\n"
	"  custom, messages, checkpoints), until it ends or waits for something. Another\n"
	"  process's runs publish the modes of its ORCH_STREAM_MODES. The model's replies\n"
	"  are printed as they are written. --json prints each event as one JSON line.";

int cmd_run(int argc, char **argv)
{
	list_opts o;
	json_t *r = NULL;
	int64_t id;
	pg_conn *c;
	int rc;

	for (int i = 1; i < argc; i++) {
		/* --stream [MODES]: followed live (cmd_follow.c) */
		unsigned modes = ENG_STREAM_DEFAULT;
		int json = 0, k;
		const char *target = NULL;

		if (strcmp(argv[i], "--stream") != 0)
			continue;
		for (k = 1; k < argc; k++) {
			if (k == i)
				continue;
			if (k == i + 1 && argv[k][0] != '-' && cli_int(argv[k]) < 1) {
				if (eng_stream_modes_parse(argv[k], &modes) < 0) {
					fprintf(stderr, "orchestrator: run: %s\n", err_last());
					return 2;
				}
			} else if (strcmp(argv[k], "--json") == 0) {
				json = 1;
			} else if (!target && cli_int(argv[k]) >= 1) {
				target = argv[k];
			} else {
				return cli_usage(USAGE_RUN);
			}
		}
		if (!target)
			return cli_usage(USAGE_RUN);
		return cli_follow_run(cli_int(target), modes, json);
	}
	rc = parse(argc, argv, &o, USAGE_RUN);

	if (rc)
		return rc == 1 ? 0 : rc;
	id = o.npos == 1 ? cli_int(o.pos[0]) : 0;
	if (o.npos != 1 || id < 1)
		return cli_usage(USAGE_RUN);
	c = cli_db();
	if (!c)
		return 1;
	rc = eng_run_get(c, id, &r);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("run");
	cli_print_json(r);
	json_decref(r);
	return 0;
}

static const char USAGE_CANCEL[] =
	"orchestrator cancel <project> | --run <run-id>\n"
	"  Cancels a project (a thread): its active runs (queued and waiting ones at once,\n"
	"  a running one at its next step boundary), its open questions (their buttons go)\n"
	"  and its workers (requests not started are withdrawn, running workers stop);\n"
	"  its chat is told. --run cancels one run only.";

/* Cancels the project of thread `tid` in one transaction and tells its chat. */
static int cancel_project(pg_conn *c, int64_t tid, int *runs, int *workers)
{
	char actor[96], msg[300];
	json_t *th = NULL, *meta;
	const char *channel, *chat;
	int rc;

	cli_actor(actor, sizeof(actor));
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_cancel_project(c, tid, actor, runs, workers);
	if (rc == 0)
		rc = eng_report_thread(c, tid, &th);
	meta = json_object_get(th, "metadata");
	channel = json_string_value(json_object_get(meta, "channel"));
	chat = json_string_value(json_object_get(meta, "chat"));
	if (rc == 0 && channel && *channel && chat && *chat) {
		snprintf(msg, sizeof(msg), "🛑 This project was cancelled from the terminal (%s). "
					   "Send /new <idea> to start another.", actor);
		rc = bot_say(c, channel, chat, tid, msg);
	}
	json_decref(th);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0)
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
	return rc;
}

int cmd_cancel(int argc, char **argv)
{
	list_opts o;
	int64_t tid;
	char state[16] = "";
	int n = 0, workers = 0;
	pg_conn *c;
	int rc = parse(argc, argv, &o, USAGE_CANCEL);

	if (rc)
		return rc == 1 ? 0 : rc;
	if ((o.npos == 1) == (o.run > 0))
		return cli_usage(USAGE_CANCEL);
	c = cli_db();
	if (!c)
		return 1;
	if (o.run > 0) {
		rc = eng_cancel_run(c, o.run, state);
	} else {
		rc = find_thread(c, o.pos[0], &tid);
		if (rc == 0)
			rc = cancel_project(c, tid, &n, &workers);
	}
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("cancel");
	if (o.run > 0)
		printf("run %lld: %s\n", (long long)o.run,
		       strcmp(state, "cancelled") == 0 ? "cancelled"
						       : "cancel requested (stops at its next step)");
	else
		printf("%d active run%s asked to cancel, %d worker request%s withdrawn or stopped\n",
		       n, n == 1 ? "" : "s", workers, workers == 1 ? "" : "s");
	return 0;
}

static const char USAGE_RETRY[] =
	"orchestrator retry <run-id>\n"
	"  Queues a failed or cancelled run again; it continues from its last checkpoint.";

int cmd_retry(int argc, char **argv)
{
	list_opts o;
	int64_t id;
	pg_conn *c;
	int rc = parse(argc, argv, &o, USAGE_RETRY);

	if (rc)
		return rc == 1 ? 0 : rc;
	id = o.npos == 1 ? cli_int(o.pos[0]) : 0;
	if (o.npos != 1 || id < 1)
		return cli_usage(USAGE_RETRY);
	c = cli_db();
	if (!c)
		return 1;
	rc = eng_retry_run(c, id);
	pg_conn_close(c);
	if (rc < 0)
		return cli_fail("retry");
	printf("run %lld queued again\n", (long long)id);
	return 0;
}
