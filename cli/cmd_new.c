/* orchestrator new — starts a project from the terminal. */
#include "bot/route.h"
#include "cli/cli.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
	"orchestrator new [--name NAME] [--detach] IDEA...\n"
	"  Starts a project with IDEA in the terminal chat NAME (default $USER), as\n"
	"  typing '/new IDEA' in 'orchestrator chat --name NAME' does, and prints its key\n"
	"  (term:NAME:N). Then, on a terminal, the conversation continues here (the same\n"
	"  as 'orchestrator chat'; /quit leaves it, the project goes on); --detach only\n"
	"  starts it: 'orchestrator status', 'show' and 'approve' follow it from anywhere.\n"
	"  A running 'orchestrator serve' (or engine) does the work.";

int cli_new_project(pg_conn *c, const char *graph, const char *name, const char *idea,
		    int64_t *thread, int *n)
{
	bot_input in;
	char chat[96];
	int rc;

	*thread = 0;
	*n = 0;
	memset(&in, 0, sizeof(in));
	in.channel = "term";
	in.dest = name;
	in.user_name = name;
	in.username = name;
	in.text = idea;
	bot_chat_key("term", name, chat, sizeof(chat));
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_command(c, graph, &in, "new", idea);
	if (rc == 0)
		rc = bot_active_project(c, chat, thread, n);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0)
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
	return rc;
}

int cmd_new(int argc, char **argv)
{
	const char *user = getenv("USER");
	char name[64], graph[64], chat[96], idea[8192] = "";
	int detach = 0, rc, n = 0;
	size_t used = 0;
	int64_t thread = 0;
	pg_pool *pool = NULL;
	pg_conn *c = NULL;

	snprintf(name, sizeof(name), "%s", user && *user ? user : "local");
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (cli_opt(argc, argv, &i, "--name", &v)) {
			snprintf(name, sizeof(name), "%s", v);
		} else if (cli_flag(argv, i, "--detach")) {
			detach = 1;
		} else if (cli_flag(argv, i, "--help")) {
			puts(USAGE);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cli_usage(USAGE);
		} else {
			int w = snprintf(idea + used, sizeof(idea) - used, "%s%s", used ? " " : "",
					 argv[i]);
			if (w < 0 || (size_t)w >= sizeof(idea) - used) {
				fprintf(stderr, "orchestrator: the idea is longer than %zu bytes\n",
					sizeof(idea) - 1);
				return 2;
			}
			used += (size_t)w;
		}
	}
	if (!idea[0])
		return cli_usage(USAGE);
	rc = cli_term_open(name, graph, sizeof(graph), &pool);
	if (rc)
		return rc;
	rc = pg_pool_acquire(pool, 10000, &c);
	bot_chat_key("term", name, chat, sizeof(chat));
	if (rc == 0)
		rc = cli_new_project(c, graph, name, idea, &thread, &n);
	if (c)
		pg_pool_release(pool, c);
	if (rc < 0) {
		pg_pool_free(pool);
		return cli_fail("new");
	}
	printf("project %s:%d started (thread %lld)\n", chat, n, (long long)thread);
	{
		PGresult *res = NULL;
		pg_conn *q = NULL;
		if (pg_pool_acquire(pool, 10000, &q) == 0 &&
		    pg_exec(q, &res, "SELECT count(*) FROM engines WHERE stopped_at IS NULL AND "
				     "heartbeat_at > now() - interval '60 seconds'", 0, NULL) == 0 &&
		    pg_int(res, 0, 0) == 0)
			fprintf(stderr, "orchestrator: no engine is running on this database: start "
					"'orchestrator serve' so the project makes progress\n");
		PQclear(res);
		if (q)
			pg_pool_release(pool, q);
	}
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
