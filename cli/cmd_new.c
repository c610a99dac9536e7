/* orchestrator new — starts a project from the terminal. */
#include "bot/route.h"
#include "cli/cli.h"
#include "core/err.h"
#include "engine/report.h"
#include "nodes/repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator new [--name NAME] [--detach] IDEA...\n"
	"orchestrator new --repo PATH|URL [--branch B] [--pr] [--secret NAME | --handle res_...]\n"
	"                 [--name NAME] [--detach] CHANGE...\n"
	"  Starts a project with IDEA in the terminal chat NAME (default $USER), as\n"
	"  typing '/new IDEA' in 'orchestrator chat --name NAME' does, and prints its key\n"
	"  (term:NAME:N). Then, on a terminal, the conversation continues here (the same\n"
	"  as 'orchestrator chat'; /quit leaves it, the project goes on); --detach only\n"
	"  starts it: 'orchestrator status', 'show' and 'approve' follow it from anywhere.\n"
	"  A running 'orchestrator serve' (or engine) does the work.\n"
	"  With --repo the project is a CHANGE to an existing repository: a local git\n"
	"  repository (its committed history) or a remote URL (https:// or ssh://), whose\n"
	"  branch B (default: a local repository's current branch; a remote's main, else\n"
	"  master) is copied into the project's own repository. The remote's credentials:\n"
	"  --secret NAME (a stored secret, see 'orchestrator secrets') or --handle res_...\n"
	"  (a git handle of the project or of this chat). It ends merged into B in the\n"
	"  project's repository and, when you say so, pushed to the remote's B; with --pr\n"
	"  (or when you choose it at the end) in a pull request on the remote's forge\n"
	"  instead.";

int cli_change_repo(const char *repo, char *out, size_t cap)
{
	if (strncmp(repo, "https://", 8) == 0 || strncmp(repo, "http://", 7) == 0 ||
	    strncmp(repo, "ssh://", 6) == 0) {
		snprintf(out, cap, "%s", repo);
		return 0;
	}
	if (strstr(repo, "://"))
		return err_set(ERR_INVALID, "--repo %s: only https://, http:// and ssh:// URLs, or a "
					    "local path", repo);
	return nd_repo_check_local(repo, out, cap);
}

/* Says so when no engine runs on the database: the project would wait. */
static void warn_no_engine(pg_pool *pool)
{
	int64_t live = -1;
	pg_conn *q = NULL;

	if (pg_pool_acquire(pool, 10000, &q) == 0 && eng_report_live_engines(q, 60, &live) == 0 &&
	    live == 0)
		fprintf(stderr, "orchestrator: no engine is running on this database: start "
				"'orchestrator serve' so the project makes progress\n");
	if (q)
		pg_pool_release(pool, q);
}

int cli_new_change(pg_conn *c, const char *graph, const char *name, const char *idea,
		   const json_t *change, int64_t *thread, int *n)
{
	bot_input in;
	int rc;

	*thread = 0;
	*n = 0;
	memset(&in, 0, sizeof(in));
	in.channel = "term";
	in.dest = name;
	in.user_name = name;
	in.username = name;
	in.text = idea;
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_new_project(c, graph, &in, idea, change, thread, n);
	return pg_tx_end(c, rc);
}

int cli_new_project(pg_conn *c, const char *graph, const char *name, const char *idea,
		    int64_t *thread, int *n)
{
	return cli_new_change(c, graph, name, idea, NULL, thread, n);
}

int cmd_new(int argc, char **argv)
{
	const char *user = getenv("USER");
	char name[64], graph[64], chat[96], idea[8192] = "", repo[1024] = "";
	int detach = 0, rc, n = 0;
	size_t used = 0;
	int64_t thread = 0;
	pg_pool *pool = NULL;
	pg_conn *c = NULL;
	json_t *change = NULL;

	snprintf(name, sizeof(name), "%s", user && *user ? user : "local");
	change = json_object();
	if (!change)
		return cli_fail("new");
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_opt(argc, argv, &i, "--name", &v)) {
			snprintf(name, sizeof(name), "%s", v);
		} else if (cli_opt(argc, argv, &i, "--repo", &v)) {
			snprintf(repo, sizeof(repo), "%s", v);
		} else if (cli_opt(argc, argv, &i, "--branch", &v)) {
			json_object_set_new(change, "branch", json_string(v));
		} else if (cli_opt(argc, argv, &i, "--secret", &v)) {
			json_object_set_new(change, "secret", json_string(v));
		} else if (cli_opt(argc, argv, &i, "--handle", &v)) {
			json_object_set_new(change, "handle", json_string(v));
		} else if (cli_flag(argv, i, "--pr")) {
			json_object_set_new(change, "pr", json_true());
		} else if (cli_flag(argv, i, "--detach")) {
			detach = 1;
		} else if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			json_decref(change);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			json_decref(change);
			return cli_usage(USAGE);
		} else {
			int w = snprintf(idea + used, sizeof(idea) - used, "%s%s", used ? " " : "",
					 argv[i]);
			if (w < 0 || (size_t)w >= sizeof(idea) - used) {
				fprintf(stderr, "orchestrator: the idea is longer than %zu bytes\n",
					sizeof(idea) - 1);
				json_decref(change);
				return 2;
			}
			used += (size_t)w;
		}
	}
	if (!idea[0] || (!repo[0] && json_object_size(change))) {
		if (!repo[0] && json_object_size(change))
			fprintf(stderr, "orchestrator: --branch, --pr, --secret and --handle go with "
					"--repo\n");
		json_decref(change);
		return cli_usage(USAGE);
	}
	if (repo[0]) {
		char abs[1024];
		if (cli_change_repo(repo, abs, sizeof(abs)) < 0) {
			json_decref(change);
			return cli_fail("new");
		}
		json_object_set_new(change, "repo", json_string(abs));
	} else {
		json_decref(change);
		change = NULL;
	}
	rc = cli_term_open(name, graph, sizeof(graph), &pool);
	if (rc) {
		json_decref(change);
		return rc;
	}
	rc = pg_pool_acquire(pool, 10000, &c);
	bot_chat_key("term", name, chat, sizeof(chat));
	if (rc == 0)
		rc = cli_new_change(c, graph, name, idea, change, &thread, &n);
	if (c)
		pg_pool_release(pool, c);
	json_decref(change);
	if (rc < 0) {
		pg_pool_free(pool);
		return cli_fail("new");
	}
	printf("project %s:%d started (thread %lld)\n", chat, n, (long long)thread);
	warn_no_engine(pool);
	fflush(stdout);
	if (!detach && isatty(0) && isatty(1)) {
		rc = cli_term_run(pool, name, graph, !getenv("NO_COLOR"));
		if (rc < 0) {
			pg_pool_free(pool);
			return cli_fail("chat");
		}
	} else if (!detach) {
		printf("follow it with: orchestrator chat --name %s   (or orchestrator show %s:%d)\n",
		       name, chat, n);
	}
	pg_pool_free(pool);
	return 0;
}
