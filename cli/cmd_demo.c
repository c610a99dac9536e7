/*
 * orchestrator demo — the first run: the whole factory on a sample project
 * whose model replies are a recording (built in from eval/recordings), in
 * this terminal's chat. The engine, checkpoints, sandboxes, git, tests,
 * reviews and merges all run for real; only the model is replayed, by the
 * eval's replay server (eval/replay.h). The person's answers are typed, or
 * with --auto (or without a terminal) typed by the eval's person
 * (eval/person.h) into the same chat. It ends with the repository and how
 * to try the program that was built.
 */
#include "bot/report.h"
#include "bot/route.h"
#include "bot/term.h"
#include "cli/cli.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/report.h"
#include "eval/person.h"
#include "eval/replay.h"
#include "llm/llm.h"
#include "nodes/report.h"
#include "secrets/runtime.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator demo [--auto] [--name NAME]\n"
	"  Builds a sample project (a word-frequency tool in Python) with the whole factory\n"
	"  in this terminal's chat: brainstorm, spec, plan, workers in sandboxes, reviews,\n"
	"  merges. Only the model's replies are a recording (eval/recordings, built in);\n"
	"  everything else runs for real. Answer its question and approve the spec and the\n"
	"  plan by typing, as in `orchestrator chat`; --auto answers for you (so does a run\n"
	"  without a terminal). NAME names the chat (default demo). It ends with the\n"
	"  repository and how to try the program. Needs root (sandboxes), PostgreSQL and\n"
	"  Redis (`make demo` starts them) and no other engine on that database.";

#define DEMO_LIMIT_MS (15 * 60 * 1000)



/* The person's side of the chat, in a thread of its own. */
typedef struct hands {
	pg_pool *pool;
	ev_proxy *px;
	const char *chat;
	const char *task;
	int64_t thread;
	int auto_mode;
	int to_chat;            /* the write end of the chat's input */
	atomic_int stop;        /* the chat ended */
	ev_person person;
	struct ev_task *answers; /* the task's idea and answers */
	size_t answered_conv;
	int64_t answered_approval;
	char end[600];          /* why the demo ended, when not by finishing */
	int finished;
} hands;

/* Writes a line into the chat, as if typed (echoed in auto mode). */
static void type_line(hands *h, const char *line)
{
	size_t n = strlen(line);

	if (h->auto_mode) {
		util_sleep_ms(700); /* time to read the question */
		if (write(1, line, n) < 0 || write(1, "\n", 1) < 0)
			return;
	}
	if (write(h->to_chat, line, n) < 0 || write(h->to_chat, "\n", 1) < 0)
		return; /* the chat has ended */
}

/* Auto mode: answers what the project waits for. */
static void play(hands *h, pg_conn *c)
{
	char status[32] = "", waiting[64] = "", key[256] = "";
	json_t *opts = NULL;
	int64_t run = 0, shown = 0;

	if (bot_report_shown(c, h->chat, &shown, key, sizeof(key), &opts) == 0 && shown > 0 &&
	    shown != h->answered_approval) {
		int pick = -1;
		char num[16];
		ev_person_choose(&h->person, key, opts, &pick);
		if (pick >= 0) {
			h->answered_approval = shown;
			snprintf(num, sizeof(num), "%d", pick + 1);
			type_line(h, num);
		}
	}
	json_decref(opts);
	if (eng_report_last_run(c, h->thread, &run, status, sizeof(status), waiting,
				sizeof(waiting), NULL, 0) == 0 && run > 0 &&
	    strcmp(status, "waiting") == 0 && strcmp(waiting, "input") == 0) {
		json_t *state = NULL;
		if (eng_state_at(c, h->thread, 0, &state, NULL, NULL) == 0) {
			size_t conv = json_array_size(json_object_get(state, "conversation"));
			buf text;
			buf_init(&text, 16384);
			if (conv > h->answered_conv && ev_person_reply(&h->person, h->answers, &text) == 0) {
				/* one line: the chat sends each line as a message */
				for (size_t i = 0; i < text.len; i++)
					if (text.data[i] == '\n')
						text.data[i] = ' ';
				h->answered_conv = conv;
				type_line(h, buf_cstr(&text));
			}
			buf_free(&text);
		}
		json_decref(state);
	}
	err_clear();
}

/* 1 when the project has ended and the chat has shown everything. */
static int ended(hands *h, pg_conn *c)
{
	json_t *rep = NULL;
	const char *stage;
	int64_t unsent = 0;
	int over = 0;
	ev_proxy_stats st;

	ev_proxy_task_stats(h->px, h->task, &st);
	if (st.mismatches > 0 && !h->end[0])
		snprintf(h->end, sizeof(h->end), "the recording has no reply for what happened (%s). "
						 "The demo follows one path: answer the question, "
						 "then approve the spec and the plan",
			 st.mismatch);
	if (nd_report_project(&rep, c, h->thread) < 0) {
		err_clear();
		return 0;
	}
	stage = jx_str(rep, "stage");
	if (strcmp(stage, "done") == 0)
		h->finished = over = 1;
	else if (strcmp(stage, "stopped") == 0 || strcmp(stage, "cancelled") == 0 || h->end[0])
		over = 1;
	if (!h->end[0] && !h->finished && over)
		snprintf(h->end, sizeof(h->end), "the project was %s", stage);
	json_decref(rep);
	if (over && eng_report_pending_outbox(c, h->chat, "term.", &unsent) == 0 && unsent > 0)
		over = 0; /* its last messages are still to be shown */
	err_clear();
	return over;
}

static void *hands_main(void *arg)
{
	hands *h = arg;
	int64_t until = util_mono_ms() + DEMO_LIMIT_MS;

	while (!atomic_load(&h->stop)) {
		pg_conn *c = NULL;
		int over = 0;

		if (!h->auto_mode) {
			/* what the person types goes to the chat */
			struct pollfd pfd = {0, POLLIN, 0};
			if (poll(&pfd, 1, 300) > 0) {
				char chunk[4096];
				ssize_t r = read(0, chunk, sizeof(chunk));
				if (r <= 0 || write(h->to_chat, chunk, (size_t)r) != r)
					break;
			}
		} else {
			util_sleep_ms(300);
		}
		if (pg_pool_acquire(h->pool, 5000, &c) < 0) {
			err_clear();
			continue;
		}
		if (h->auto_mode)
			play(h, c);
		over = ended(h, c);
		pg_pool_release(h->pool, c);
		if (!over && util_mono_ms() > until) {
			snprintf(h->end, sizeof(h->end), "it did not finish within %d minutes",
				 DEMO_LIMIT_MS / 60000);
			over = 1;
		}
		if (over) {
			util_sleep_ms(500);
			if (write(h->to_chat, "/quit\n", 6) < 0)
				break;
			break;
		}
	}
	return NULL;
}

/* The chat's input, for the signal handler: Ctrl-C ends the chat (and
 * with it the demo, which stops its roles) as /quit does. */
static volatile sig_atomic_t g_chat_fd = -1;

static void on_interrupt(int sig)
{
	(void)sig;
	if (g_chat_fd >= 0 && write(g_chat_fd, "\n/quit\n", 7) < 0)
		g_chat_fd = -1;
}

static const char *embedded_text(const char *path)
{
	const orch_embedded_file *f = embed_find(path);
	return f ? f->data : NULL;
}

/* What a demo holds from start to end. */
typedef struct demo {
	const char *name;
	char graph[64];
	json_t *demo, *task, *models, *state;
	const char *task_id, *rec;
	char rec_path[300];
	ev_proxy *px;
	pg_pool *pool;
	llm_service *llm;
	cli_factory *fac;
	ev_task t;
	hands h;
	int pipefd[2];
} demo;

/* The recording, built in: the demo's description, its task (idea and
 * answers into d->t) and models. -1 with a message when it is not there. */
static int demo_load(demo *d)
{
	const char *demo_text = embedded_text("eval/recordings/demo.json");
	const char *models_text = embedded_text("eval/recordings/models.json");
	const char *task_text;
	const json_t *ans;
	char path[300];

	d->demo = demo_text ? json_loads(demo_text, 0, NULL) : NULL;
	d->task_id = jx_str(d->demo, "task");
	snprintf(d->rec_path, sizeof(d->rec_path), "eval/recordings/%s.jsonl", d->task_id);
	d->rec = embedded_text(d->rec_path);
	snprintf(path, sizeof(path), "eval/tasks/%s/task.json", d->task_id);
	task_text = embedded_text(path);
	d->task = task_text ? json_loads(task_text, 0, NULL) : NULL;
	d->models = models_text ? json_loads(models_text, 0, NULL) : NULL;
	if (!d->rec || !json_is_object(d->task) || !d->models || !*jx_str(d->task, "idea")) {
		fprintf(stderr, "orchestrator demo: the demo's recording is not built in (rebuild "
				"with make)\n");
		return -1;
	}
	snprintf(d->t.id, sizeof(d->t.id), "%s", d->task_id);
	d->t.idea = (char *)jx_str(d->task, "idea");
	ans = json_object_get(d->task, "answers");
	d->t.nanswers = json_array_size(ans);
	d->t.answers = calloc(d->t.nanswers + 1, sizeof(char *));
	for (size_t i = 0; d->t.answers && i < d->t.nanswers; i++)
		d->t.answers[i] = (char *)json_string_value(json_array_get(ans, i));
	if (!d->t.answers)
		d->t.nanswers = 0;
	return 0;
}

/* The replay server, the database, secrets, the model service and the
 * factory's roles, then the project; -1 with a message. */
static int demo_start(demo *d)
{
	pg_conn *c = NULL;
	int n = 0;

	if (ev_proxy_start(&d->px, EV_REPLAY, NULL) < 0 ||
	    ev_proxy_load(d->px, d->task_id, d->rec, d->rec_path) < 0 ||
	    ev_proxy_bind(d->px, "*", d->task_id) < 0 ||
	    ev_models_rebase(d->models, ev_proxy_url(d->px)) < 0)
		return cli_fail("demo");
	if (pg_pool_new(&d->pool, cli_cfg.database_url, cli_cfg.db_pool_size + 6) < 0)
		return cli_fail("database pool");
	if (cli_factory_alone(d->pool) < 0 || cli_start_secrets(d->pool) < 0 ||
	    cli_llm_from_json(d->models, "the demo's recording", d->pool, 1, &d->llm) < 0 ||
	    cli_factory_start(d->pool, d->llm, &d->fac) < 0)
		return cli_fail("demo");
	if (cfg_env_str("ORCH_GRAPH", "factory", d->graph, sizeof(d->graph)) < 0 ||
	    pg_pool_acquire(d->pool, 10000, &c) < 0 ||
	    cli_new_project(c, d->graph, d->name, d->t.idea, &d->h.thread, &n) < 0) {
		if (c)
			pg_pool_release(d->pool, c);
		return cli_fail("demo");
	}
	pg_pool_release(d->pool, c);
	return 0;
}

/* Ctrl-C, TERM and HUP end the chat as /quit does. */
static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* The chat on a pipe (the person's lines, typed or played by a thread of
 * its own) until it ends; -1 when it could not start. */
static int demo_chat(demo *d, int auto_mode)
{
	bot_term_options topt;
	pthread_t th;

	if (pipe(d->pipefd) < 0) {
		fprintf(stderr, "orchestrator demo: pipe: %s\n", strerror(errno));
		return -1;
	}
	g_chat_fd = d->pipefd[1];
	catch_signals();
	d->h.pool = d->pool;
	d->h.px = d->px;
	d->h.chat = d->name;
	d->h.task = d->task_id;
	d->h.auto_mode = auto_mode;
	d->h.to_chat = d->pipefd[1];
	d->h.answers = &d->t;
	if (pthread_create(&th, NULL, hands_main, &d->h) != 0) {
		fprintf(stderr, "orchestrator demo: cannot start a thread\n");
		return -1;
	}
	memset(&topt, 0, sizeof(topt));
	topt.name = d->name;
	topt.graph = d->graph;
	topt.in_fd = d->pipefd[0];
	topt.out_fd = 1;
	topt.data_dir = cli_cfg.data_dir;
	topt.color = isatty(1) && !getenv("NO_COLOR");
	topt.hub = cli_factory_hub(d->fac); /* replies shown as they are written */
	if (auto_mode)
		printf("(--auto: the person's answers are typed for you)\n");
	else
		printf("(answer in the chat below: type your answer, or the number of a choice)\n");
	fflush(stdout);
	if (bot_term_run(d->pool, &topt) < 0)
		cli_fail("chat");
	atomic_store(&d->h.stop, 1);
	pthread_join(th, NULL);
	return 0;
}

/* The end: where the program is and how to try it (0), or why it ended
 * early, with what is left of the project cancelled (1). */
static int demo_end(demo *d)
{
	pg_conn *c = NULL;
	int status = 1;

	if (pg_pool_acquire(d->pool, 10000, &c) == 0 &&
	    eng_state_at(c, d->h.thread, 0, &d->state, NULL, NULL) == 0 && d->h.finished) {
		const char *repo = jx_str(json_object_get(d->state, "repo"), "path");
		const char *dir = jx_str(json_object_get(d->state, "repo"), "name");
		const json_t *tries = json_object_get(d->demo, "try");
		size_t i;
		const json_t *cmd;

		printf("\nThe factory built %s: %s (branch main).\nTry it:\n  git clone %s %s && "
		       "cd %s\n",
		       jx_str(json_object_get(d->state, "spec"), "name"), repo, repo, dir, dir);
		json_array_foreach(tries, i, cmd)
			printf("  %s\n", json_string_value(cmd));
		printf("The model's replies were a recording. With your own model: README.md, "
		       "\"With your model\"; measure it: orchestrator eval run --live\n");
		status = 0;
	} else {
		/* what is left of the project stops with the demo */
		if (c && pg_exec(c, NULL, "BEGIN", 0, NULL) == 0) {
			if (bot_cancel_project(c, d->h.thread, "demo", NULL, NULL) == 0)
				pg_exec(c, NULL, "COMMIT", 0, NULL);
			else
				pg_exec(c, NULL, "ROLLBACK", 0, NULL);
		}
		printf("\nThe demo ended early: %s.\n", d->h.end[0] ? d->h.end : "the chat was left");
	}
	if (c)
		pg_pool_release(d->pool, c);
	err_clear();
	return status;
}

int cmd_demo(int argc, char **argv)
{
	demo d;
	int auto_mode = 0, status = 1;

	memset(&d, 0, sizeof(d));
	d.name = "demo";
	d.pipefd[0] = d.pipefd[1] = -1;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_flag(argv, i, "--auto"))
			auto_mode = 1;
		else if (cli_opt(argc, argv, &i, "--name", &v))
			d.name = v;
		else if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 0;
		} else
			return cli_usage(USAGE);
	}
	if (!isatty(0))
		auto_mode = 1;
	signal(SIGPIPE, SIG_IGN);
	/* the chat is the show: only warnings and errors between its lines,
	 * unless asked for more */
	if (!getenv("ORCH_LOG_LEVEL") || !*getenv("ORCH_LOG_LEVEL"))
		log_configure(LOG_WARN, cli_cfg.log_text);
	if (demo_load(&d) < 0)
		goto done;
	printf("orchestrator demo — the model's replies in this demo are a recording (%s); "
	       "everything else runs for real: the engine and its checkpoints, the workers' "
	       "sandboxes, git, the tests, the reviews and the merges.\n\n", d.rec_path);
	fflush(stdout);
	if (demo_start(&d) != 0 || demo_chat(&d, auto_mode) < 0)
		goto done;
	status = demo_end(&d);
done:
	g_chat_fd = -1;
	if (d.pipefd[0] >= 0)
		close(d.pipefd[0]);
	if (d.pipefd[1] >= 0)
		close(d.pipefd[1]);
	cli_factory_stop(d.fac);
	sec_runtime_stop();
	llm_service_free(d.llm);
	ev_proxy_free(d.px);
	pg_pool_free(d.pool);
	json_decref(d.state);
	json_decref(d.demo);
	json_decref(d.task);
	json_decref(d.models);
	free(d.t.answers);
	return status;
}
