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
#include "bot/route.h"
#include "bot/term.h"
#include "cli/cli.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/control.h"
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

static const pg_stmt STMT_SHOWN = {
	"demo_shown",
	"SELECT id, key, options::text FROM approvals WHERE channel = 'term' AND chat = $1 AND "
	"state = 'pending' AND message_id IS NOT NULL ORDER BY id LIMIT 1",
	1,
};

static const pg_stmt STMT_UNSENT = {
	"demo_unsent",
	"SELECT count(*) FROM outbox WHERE dest = $1 AND kind LIKE 'term.%' AND state = 'pending'",
	1,
};

static const pg_stmt STMT_RUN = {
	"demo_run",
	"SELECT status, coalesce(array_to_string(waiting_on, ','), '') FROM runs WHERE "
	"thread_id = $1 ORDER BY id DESC LIMIT 1",
	1,
};

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
	char tid[24];
	const char *params[1] = {h->chat};
	PGresult *res = NULL;

	if (pg_exec_stmt(c, &res, &STMT_SHOWN, params) == 0 && pg_rows(res) == 1 &&
	    pg_int(res, 0, 0) != h->answered_approval) {
		json_t *opts = json_loads(pg_val(res, 0, 2), 0, NULL);
		int pick = -1;
		char num[16];
		ev_person_choose(&h->person, pg_val(res, 0, 1), opts, &pick);
		json_decref(opts);
		if (pick >= 0) {
			h->answered_approval = pg_int(res, 0, 0);
			snprintf(num, sizeof(num), "%d", pick + 1);
			type_line(h, num);
		}
	}
	PQclear(res);
	res = NULL;
	snprintf(tid, sizeof(tid), "%lld", (long long)h->thread);
	params[0] = tid;
	if (pg_exec_stmt(c, &res, &STMT_RUN, params) == 0 && pg_rows(res) == 1 &&
	    strcmp(pg_val(res, 0, 0), "waiting") == 0 && strcmp(pg_val(res, 0, 1), "input") == 0) {
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
	PQclear(res);
	err_clear();
}

/* 1 when the project has ended and the chat has shown everything. */
static int ended(hands *h, pg_conn *c)
{
	json_t *rep = NULL;
	const char *params[1] = {h->chat};
	PGresult *res = NULL;
	const char *stage;
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
	if (over && pg_exec_stmt(c, &res, &STMT_UNSENT, params) == 0 && pg_int(res, 0, 0) > 0)
		over = 0; /* its last messages are still to be shown */
	PQclear(res);
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

int cmd_demo(int argc, char **argv)
{
	const char *name = "demo", *demo_text, *task_id, *rec, *task_text, *models_text;
	char path[300], rec_path[300], graph[64];
	json_t *demo = NULL, *task = NULL, *models = NULL, *state = NULL;
	ev_proxy *px = NULL;
	pg_pool *pool = NULL;
	llm_service *llm = NULL;
	cli_factory *fac = NULL;
	pg_conn *c = NULL;
	ev_task t;
	hands h;
	pthread_t th;
	int pipefd[2] = {-1, -1}, auto_mode = 0, started = 0, n = 0, status = 1;
	bot_term_options topt;

	memset(&h, 0, sizeof(h));
	memset(&t, 0, sizeof(t));
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_flag(argv, i, "--auto"))
			auto_mode = 1;
		else if (cli_opt(argc, argv, &i, "--name", &v))
			name = v;
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

	/* the recording, built in */
	demo_text = embedded_text("eval/recordings/demo.json");
	models_text = embedded_text("eval/recordings/models.json");
	demo = demo_text ? json_loads(demo_text, 0, NULL) : NULL;
	task_id = jx_str(demo, "task");
	snprintf(rec_path, sizeof(rec_path), "eval/recordings/%s.jsonl", task_id);
	rec = embedded_text(rec_path);
	snprintf(path, sizeof(path), "eval/tasks/%s/task.json", task_id);
	task_text = embedded_text(path);
	task = task_text ? json_loads(task_text, 0, NULL) : NULL;
	models = models_text ? json_loads(models_text, 0, NULL) : NULL;
	if (!rec || !json_is_object(task) || !models || !*jx_str(task, "idea")) {
		fprintf(stderr, "orchestrator demo: the demo's recording is not built in (rebuild "
				"with make)\n");
		goto done;
	}
	printf("orchestrator demo — the model's replies in this demo are a recording (%s); "
	       "everything else runs for real: the engine and its checkpoints, the workers' "
	       "sandboxes, git, the tests, the reviews and the merges.\n\n", rec_path);
	fflush(stdout);
	snprintf(t.id, sizeof(t.id), "%s", task_id);
	t.idea = (char *)jx_str(task, "idea");
	{
		const json_t *ans = json_object_get(task, "answers");
		t.nanswers = json_array_size(ans);
		t.answers = calloc(t.nanswers + 1, sizeof(char *));
		for (size_t i = 0; t.answers && i < t.nanswers; i++)
			t.answers[i] = (char *)json_string_value(json_array_get(ans, i));
		if (!t.answers)
			t.nanswers = 0;
	}

	if (ev_proxy_start(&px, EV_REPLAY, NULL) < 0 ||
	    ev_proxy_load(px, task_id, rec, rec_path) < 0 || ev_proxy_bind(px, "*", task_id) < 0 ||
	    ev_models_rebase(models, ev_proxy_url(px)) < 0) {
		cli_fail("demo");
		goto done;
	}
	if (pg_pool_new(&pool, cli_cfg.database_url, cli_cfg.db_pool_size + 6) < 0) {
		cli_fail("database pool");
		goto done;
	}
	if (cli_factory_alone(pool) < 0) {
		cli_fail("demo");
		goto done;
	}
	if (cli_start_secrets(pool) < 0 ||
	    cli_llm_from_json(models, "the demo's recording", pool, 1, &llm) < 0 ||
	    cli_factory_start(pool, llm, &fac) < 0) {
		cli_fail("demo");
		goto done;
	}
	if (cfg_env_str("ORCH_GRAPH", "factory", graph, sizeof(graph)) < 0 ||
	    pg_pool_acquire(pool, 10000, &c) < 0 ||
	    cli_new_project(c, graph, name, t.idea, &h.thread, &n) < 0) {
		cli_fail("demo");
		goto done;
	}
	pg_pool_release(pool, c);
	c = NULL;

	/* the chat, on a pipe: the person's lines, typed or played */
	if (pipe(pipefd) < 0) {
		fprintf(stderr, "orchestrator demo: pipe: %s\n", strerror(errno));
		goto done;
	}
	g_chat_fd = pipefd[1];
	{
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_interrupt;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	h.pool = pool;
	h.px = px;
	h.chat = name;
	h.task = task_id;
	h.auto_mode = auto_mode;
	h.to_chat = pipefd[1];
	h.answers = &t;
	if (pthread_create(&th, NULL, hands_main, &h) != 0) {
		fprintf(stderr, "orchestrator demo: cannot start a thread\n");
		goto done;
	}
	started = 1;
	memset(&topt, 0, sizeof(topt));
	topt.name = name;
	topt.graph = graph;
	topt.in_fd = pipefd[0];
	topt.out_fd = 1;
	topt.data_dir = cli_cfg.data_dir;
	topt.color = isatty(1) && !getenv("NO_COLOR");
	if (auto_mode)
		printf("(--auto: the person's answers are typed for you)\n");
	else
		printf("(answer in the chat below: type your answer, or the number of a choice)\n");
	fflush(stdout);
	if (bot_term_run(pool, &topt) < 0)
		cli_fail("chat");
	atomic_store(&h.stop, 1);
	pthread_join(th, NULL);
	started = 0;

	/* the end: where it is and how to try it */
	if (pg_pool_acquire(pool, 10000, &c) == 0 &&
	    eng_state_at(c, h.thread, 0, &state, NULL, NULL) == 0 && h.finished) {
		const char *repo = jx_str(json_object_get(state, "repo"), "path");
		const char *dir = jx_str(json_object_get(state, "repo"), "name");
		const json_t *tries = json_object_get(demo, "try");
		size_t i;
		const json_t *cmd;

		printf("\nThe factory built %s: %s (branch main).\nTry it:\n  git clone %s %s && "
		       "cd %s\n",
		       jx_str(json_object_get(state, "spec"), "name"), repo, repo, dir, dir);
		json_array_foreach(tries, i, cmd)
			printf("  %s\n", json_string_value(cmd));
		printf("The model's replies were a recording. With your own model: README.md, "
		       "\"With your model\"; measure it: orchestrator eval run --live\n");
		status = 0;
	} else {
		/* what is left of the project stops with the demo */
		if (c && pg_exec(c, NULL, "BEGIN", 0, NULL) == 0) {
			if (bot_cancel_project(c, h.thread, "demo", NULL, NULL) == 0)
				pg_exec(c, NULL, "COMMIT", 0, NULL);
			else
				pg_exec(c, NULL, "ROLLBACK", 0, NULL);
		}
		printf("\nThe demo ended early: %s.\n", h.end[0] ? h.end : "the chat was left");
	}
	err_clear();
done:
	if (started) {
		atomic_store(&h.stop, 1);
		pthread_join(th, NULL);
	}
	if (c)
		pg_pool_release(pool, c);
	g_chat_fd = -1;
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	cli_factory_stop(fac);
	sec_runtime_stop();
	llm_service_free(llm);
	ev_proxy_free(px);
	pg_pool_free(pool);
	json_decref(state);
	json_decref(demo);
	json_decref(task);
	json_decref(models);
	free(t.answers);
	return status;
}
