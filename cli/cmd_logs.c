/* orchestrator logs — what a worker's agent did, step by step, from its
 * transcript; with --follow, what it does now, from the live lines the
 * spawner publishes on Redis, until its result arrives. */
#include "cli/cli.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/redis.h"
#include "core/util.h"
#include "spawner/report.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator logs <worker> [-f|--follow] [--full] [--json]\n"
	"  What a worker's agent did: each command it ran with its exit status and the\n"
	"  start of its output, format errors, the setup command, every network\n"
	"  connection the egress proxy allowed or denied, the agent's end, the verified\n"
	"  tests and the result, from $ORCH_DATA_DIR/transcripts/<worker>.jsonl. <worker> is the\n"
	"  id `orchestrator show <project>` lists (ob-42).\n"
	"  --follow   then print the worker's live lines (REDIS_URL) until its result\n"
	"             arrives or Ctrl-C; for a finished worker it changes nothing\n"
	"  --full     whole prompts, commands and outputs instead of their first lines\n"
	"  --json     the transcript's JSON lines as they are";

#define SHOWN_LINES 8 /* lines of a command's output shown without --full */


static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* Prints `text` indented by `indent`, at most `max` lines (0: all), then
 * how many lines were left out. */
static void print_lines(const char *text, const char *indent, int max)
{
	int n = 0, total = 0;
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		total++;
		if (max == 0 || n < max) {
			printf("%s%.*s\n", indent, (int)len, p);
			n++;
		}
		p += len + (nl ? 1 : 0);
	}
	if (total > n)
		printf("%s[%d more lines; --full shows them]\n", indent, total - n);
}

/* The text between <output> and </output> of an observation (the command's
 * output), or the whole observation when it has no such part. Owned. */
static char *observation_output(const char *obs)
{
	const char *a = strstr(obs, "<output>\n"), *b;

	if (!a)
		return strdup(obs);
	a += strlen("<output>\n");
	b = strstr(a, "</output>");
	if (!b)
		b = a + strlen(a);
	return strndup(a, (size_t)(b - a));
}

static void print_time(const json_t *line)
{
	char t[40];

	cli_fmt_time((int64_t)json_integer_value(json_object_get(line, "t")), t, sizeof(t));
	printf("%s  ", t);
}

/* Prints one transcript line for a person. */
static void print_entry(const json_t *line, int full)
{
	const char *type = jx_str(line, "type");
	int max = full ? 0 : SHOWN_LINES;

	print_time(line);
	if (strcmp(type, "start") == 0) {
		const json_t *l = json_object_get(line, "limits");

		printf("agent started (at most %lld steps, $%.2f)\n", jx_int(l, "steps"),
		       json_number_value(json_object_get(l, "cost_usd")));
		print_lines(jx_str(line, "task"), "    | ", full ? 0 : 3);
	} else if (strcmp(type, "attempt") == 0) {
		printf("attempt %lld, on spawner %s\n", jx_int(line, "attempt"),
		       jx_str(line, "spawner"));
	} else if (strcmp(type, "step") == 0) {
		const char *action = jx_str(line, "action");
		long long step = jx_int(line, "step");

		if (strcmp(action, "submit") == 0 && !json_object_get(line, "observation")) {
			printf("[%lld] submit\n", step);
			return;
		}
		printf("[%lld] $ ", step);
		print_lines(action, "", full ? 0 : 1);
		printf("     exit %lld\n", jx_int(line, "exit_code"));
		{
			char *out = observation_output(jx_str(line, "observation"));
			if (out && *out)
				print_lines(out, "     | ", max);
			free(out);
		}
	} else if (strcmp(type, "net") == 0) {
		const char *reason = jx_str(line, "reason");

		if (strcmp(jx_str(line, "decision"), "allowed") == 0)
			printf("network (%s): allowed %s %s:%lld (%s), %lld bytes up, %lld down, %lld "
			       "ms%s%s\n",
			       jx_str(line, "phase"), jx_str(line, "method"), jx_str(line, "host"),
			       jx_int(line, "port"), jx_str(line, "addr"), jx_int(line, "bytes_up"),
			       jx_int(line, "bytes_down"), jx_int(line, "ms"), *reason ? "; " : "", reason);
		else
			printf("network (%s): DENIED %s %s:%lld: %s\n", jx_str(line, "phase"),
			       *jx_str(line, "method") ? jx_str(line, "method") : "?",
			       *jx_str(line, "host") ? jx_str(line, "host") : "?", jx_int(line, "port"),
			       reason);
	} else if (strcmp(type, "setup") == 0) {
		printf("setup $ ");
		print_lines(jx_str(line, "command"), "", full ? 0 : 1);
		printf("     exit %lld (network: %s)\n", jx_int(line, "exit_code"),
		       jx_str(line, "network"));
		if (*jx_str(line, "output"))
			print_lines(jx_str(line, "output"), "     | ", max);
	} else if (strcmp(type, "format_error") == 0) {
		printf("[%lld] the reply held no single command: %s\n", jx_int(line, "step"),
		       jx_str(line, "reason"));
	} else if (strcmp(type, "end") == 0) {
		printf("agent ended: %s (%lld steps, $%.4f, %lld+%lld tokens)%s%s\n",
		       jx_str(line, "exit"), jx_int(line, "steps"),
		       json_number_value(json_object_get(line, "cost_usd")),
		       jx_int(line, "tokens_in"), jx_int(line, "tokens_out"),
		       *jx_str(line, "reason") ? " — " : "", jx_str(line, "reason"));
		if (*jx_str(line, "summary"))
			print_lines(jx_str(line, "summary"), "    | ", max);
	} else if (strcmp(type, "result") == 0) {
		const json_t *r = json_object_get(line, "result");
		const json_t *t = json_object_get(r, "tests");

		printf("result: %s", jx_str(r, "status"));
		if (*jx_str(r, "reason"))
			printf(" — %s", jx_str(r, "reason"));
		printf("\n");
		if (t)
			printf("     tests %s: %lld of %lld passed\n", jx_str(t, "verdict"),
			       jx_int(t, "passed"), jx_int(t, "total"));
		if (*jx_str(r, "branch"))
			printf("     branch %s%s\n", jx_str(r, "branch"),
			       json_is_true(json_object_get(r, "pushed")) ? " (pushed)" : "");
	} else {
		char *s = json_dumps(line, JSON_COMPACT);
		printf("%s\n", s ? s : "?");
		free(s);
	}
}

/* Prints the transcript at `path`; 1 when there is none. */
static int print_transcript(const char *path, int full, int as_json)
{
	FILE *f = fopen(path, "r");
	char *lp = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return 1;
	for (n = getline(&lp, &cap, f); n > 0; n = getline(&lp, &cap, f)) {
		json_t *line;

		if (as_json) {
			fputs(lp, stdout);
			continue;
		}
		line = json_loads(lp, 0, NULL);
		if (!line) {
			/* a line cut by a crash while it was written */
			printf("[an unreadable transcript line of %zd bytes]\n", n);
			continue;
		}
		print_entry(line, full);
		json_decref(line);
	}
	free(lp);
	fclose(f);
	return 0;
}

/* Prints a live line published on worker:log:<id>. */
static void print_live(const char *text, int full, int as_json)
{
	json_t *j;

	if (as_json) {
		printf("%s\n", text);
		return;
	}
	j = json_loads(text, 0, NULL);
	if (!j) {
		printf("%s\n", text);
		return;
	}
	print_time(j);
	printf("%s: ", jx_str(j, "kind"));
	if (strcmp(jx_str(j, "kind"), "output") == 0) {
		printf("\n");
		print_lines(jx_str(j, "text"), "     | ", full ? 0 : SHOWN_LINES);
	} else {
		print_lines(jx_str(j, "text"), "", full ? 0 : SHOWN_LINES);
	}
	json_decref(j);
}

/* Whether the worker `id` has finished, by the database (1 yes, 0 no). */
static int finished(pg_conn *c, const char *id)
{
	spw_worker_info w;
	int found = 0, done = 0;

	if (spw_report_worker(c, id, &found, &w) == 0 && found)
		done = strcmp(w.state, "finished") == 0;
	err_clear();
	return done;
}

/* Subscribes to the worker's live lines and result; prints what comes
 * until the result, a stop signal, or the database says it finished.
 * `sub` is already subscribed. Returns the exit status. */
static int follow(rds_conn *sub, pg_conn *c, const char *id, int full, int as_json)
{
	char result_ch[160];
	int64_t next_check = util_mono_ms() + 2000;

	snprintf(result_ch, sizeof(result_ch), "worker:result:%s", id);
	while (!g_stop) {
		rds_reply *m = NULL;
		int rc = rds_read(sub, 500, &m);

		if (rc == ERR_TIMEOUT) {
			err_clear();
			if (util_mono_ms() >= next_check) {
				if (finished(c, id)) {
					if (!as_json)
						printf("(the worker finished: `orchestrator logs %s` "
						       "shows its result)\n",
						       id);
					return 0;
				}
				next_check = util_mono_ms() + 2000;
			}
			continue;
		}
		if (rc < 0) {
			if (g_stop)
				break;
			return cli_fail("logs: the live lines (REDIS_URL)");
		}
		if (m->n >= 3 && strcmp(rds_str(rds_at(m, 0)), "message") == 0) {
			const char *ch = rds_str(rds_at(m, 1));
			const char *text = rds_str(rds_at(m, 2));

			if (strcmp(ch, result_ch) == 0) {
				json_t *r = json_loads(text, 0, NULL);

				if (as_json) {
					printf("%s\n", text);
				} else if (r) {
					json_t *line = json_pack("{s:s, s:I, s:O}", "type", "result",
								 "t", (json_int_t)util_wall_ms(),
								 "result", r);
					if (line)
						print_entry(line, full);
					json_decref(line);
				}
				json_decref(r);
				rds_reply_free(m);
				fflush(stdout);
				return 0;
			}
			print_live(text, full, as_json);
			fflush(stdout);
		}
		rds_reply_free(m);
	}
	return 130; /* stopped by the person */
}

int cmd_logs(int argc, char **argv)
{
	const char *id = NULL;
	int follow_on = 0, full = 0, as_json = 0, rc = 0;
	spw_worker_info w;
	pg_conn *c = NULL;
	rds_conn *sub = NULL;
	char path[2048];
	int running, found = 0;

	for (int i = 1; i < argc; i++) {
		if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
			printf("%s\n", USAGE);
			return 0;
		} else if (cli_flag(argv, i, "-f") || cli_flag(argv, i, "--follow")) {
			follow_on = 1;
		} else if (cli_flag(argv, i, "--full")) {
			full = 1;
		} else if (cli_flag(argv, i, "--json")) {
			as_json = 1;
		} else if (argv[i][0] == '-' || id) {
			return cli_usage(USAGE);
		} else {
			id = argv[i];
		}
	}
	if (!id)
		return cli_usage(USAGE);
	if (strchr(id, '/')) {
		fprintf(stderr, "orchestrator: logs: '%s' is not a worker id (ob-42)\n", id);
		return 2;
	}
	c = cli_db();
	if (!c)
		return 1;
	if (spw_report_worker(c, id, &found, &w) < 0) {
		rc = cli_fail("logs");
		goto done;
	}
	if (!found) {
		fprintf(stderr, "orchestrator: logs: no worker '%s'; `orchestrator show <project>` "
				"lists a project's workers\n",
			id);
		rc = 1;
		goto done;
	}
	running = strcmp(w.state, "running") == 0;
	if (!as_json)
		printf("worker %s: task %s of project %s, attempt %lld, %s%s\n\n", id, w.task,
		       w.project, (long long)w.attempt, running ? "running on " : w.status,
		       running ? w.owner : "");
	if (follow_on && running) {
		/* subscribed before the transcript is read, so no line falls between */
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		snprintf(path, sizeof(path), "worker:log:%s", id);
		{
			char result_ch[160];

			snprintf(result_ch, sizeof(result_ch), "worker:result:%s", id);
			if (rds_connect(&sub, cli_cfg.redis_url, 0) < 0 ||
			    rds_cmd(sub, NULL, "SUBSCRIBE", path, result_ch, NULL) < 0) {
				rc = cli_fail("logs: the live lines (REDIS_URL)");
				goto done;
			}
		}
	}
	snprintf(path, sizeof(path), "%s/transcripts/%s.jsonl", cli_cfg.data_dir, id);
	if (print_transcript(path, full, as_json) != 0 && !as_json) {
		if (errno == ENOENT)
			printf("(no transcript at %s yet: it is written on the host of the spawner "
			       "that ran the worker%s%s)\n",
			       path, w.owner[0] ? ", " : "", w.owner);
		else
			printf("(the transcript %s cannot be read: %s)\n", path, strerror(errno));
	}
	if (!as_json && !running && !follow_on && w.reason[0] && access(path, R_OK) != 0)
		printf("result: %s — %s\n", w.status, w.reason);
	fflush(stdout);
	if (sub)
		rc = follow(sub, c, id, full, as_json);
done:
	rds_free(sub);
	pg_conn_close(c);
	return rc;
}
