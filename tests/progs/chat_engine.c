/* An engine running the test graph "chattest" (tests/support/chat_graph.h)
 * on DATABASE_URL until SIGTERM or SIGINT, for the terminal chat test.
 * Prints "READY" once it claims runs. */
#include "tests/support/chat_graph.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	const char *url = getenv("DATABASE_URL");
	eng_options opt = {.threads = 2, .poll_ms = 100};
	eng_engine *e = NULL;
	eng_graph *g;
	pg_pool *pool = NULL;
	sigset_t sigs;
	int sig = 0;

	if (!url || util_init() < 0)
		return 2;
	log_configure(LOG_WARN, 1);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	g = ts_chat_graph(NULL);
	if (!g || pg_pool_new(&pool, url, 4) < 0 || eng_engine_new(&e, pool, &opt) < 0 ||
	    eng_engine_add_graph(e, g) < 0 || eng_engine_start(e) < 0) {
		fprintf(stderr, "chat_engine: %s\n", err_last());
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	sigwait(&sigs, &sig);
	eng_engine_free(e);
	eng_graph_free(g);
	pg_pool_free(pool);
	return 0;
}
