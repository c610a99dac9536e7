/*
 * bench/bot — updates per second ingested from the fake Bot API server into
 * stored updates and the runs or events they cause (ARCHITECTURE.md §9).
 *
 *   DATABASE_URL=... ORCH_BUILD=build build/bench/bot [N]   JSON on stdout
 *
 * The fake (tests/fakes/fake_telegram) is loaded with N private-chat text
 * messages from 1,000 users (the same shape as the grammY anchor's); the bot
 * (bot/bot.h, in this process) drains them in batches of 100, each batch
 * stored in one transaction before the next getUpdates confirms it. The
 * clock runs from the first getUpdates to the one that confirms the last
 * update, both taken from the fake's request log.
 */
#include "bot/bot.h"
#include "core/config.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/util.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "123456:BENCH-token"
#define USERS 1000

static char base[64];

static json_t *call(const char *path, const char *body)
{
	static const char *const hdrs[] = {"Content-Type: application/json", NULL};
	http_client *c = NULL;
	http_request rq;
	http_response res;
	char url[256];
	json_t *j = NULL;

	snprintf(url, sizeof(url), "%s%s", base, path);
	if (http_client_new(&c) < 0)
		return NULL;
	memset(&rq, 0, sizeof(rq));
	rq.url = url;
	rq.method = body ? "POST" : "GET";
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.headers = hdrs;
	rq.timeout_ms = 60000;
	rq.max_response = (size_t)256 << 20;
	if (http_do(c, &rq, &res) == 0)
		j = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
	http_response_free(&res);
	http_client_free(c);
	return j;
}

static int sql(pg_conn *c, const char *q)
{
	return pg_exec_script(c, q);
}

int main(int argc, char **argv)
{
	const char *url = getenv("DATABASE_URL"), *build = getenv("ORCH_BUILD");
	int64_t n = 20000, first_id = 0, last_id = 0;
	char prog[1024], line[64];
	pg_pool *pool = NULL;
	pg_conn *c = NULL;
	bot_config cfg;
	bot *b = NULL;
	struct rusage ru;
	double t_first = -1, t_last = -1;
	int port = 0, fds[2], batches = 0;
	pid_t fake;
	FILE *in;

	if (argc > 1 && cfg_parse_int(argv[1], &n) < 0)
		n = 20000;
	if (!url || util_init() < 0 || http_global_init() < 0) {
		fprintf(stderr, "bench/bot: DATABASE_URL is not set\n");
		return 2;
	}
	log_configure(getenv("ORCH_LOG_LEVEL") ? log_level_parse(getenv("ORCH_LOG_LEVEL")) : LOG_WARN, 1);
	signal(SIGPIPE, SIG_IGN);
	snprintf(prog, sizeof(prog), "%s/tests/progs/fake_telegram", build ? build : "build");
	if (pipe(fds) != 0)
		return 1;
	fake = fork();
	if (fake == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(prog, prog, "--token", TOKEN, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	if (!in || !fgets(line, sizeof(line), in) || sscanf(line, "PORT %d", &port) != 1) {
		fprintf(stderr, "bench/bot: the fake server did not start (%s)\n", prog);
		return 1;
	}
	fclose(in);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);

	/* the queue: N messages from 1,000 users, ~385 bytes each */
	for (int64_t i = 0; i < n;) {
		buf body;
		json_t *r;
		buf_init(&body, 0);
		buf_putc(&body, '[');
		for (int k = 0; k < 2000 && i < n; k++, i++) {
			int64_t uid = 100000 + i % USERS;
			buf_printf(&body,
				   "%s{\"message\":{\"message_id\":%lld,\"date\":1763740800,\"from\":{\"id\":%lld,"
				   "\"is_bot\":false,\"first_name\":\"User\",\"last_name\":\"%lld\",\"username\":"
				   "\"user%lld\",\"language_code\":\"en\"},\"chat\":{\"id\":%lld,\"first_name\":"
				   "\"User\",\"last_name\":\"%lld\",\"username\":\"user%lld\",\"type\":\"private\"},"
				   "\"text\":\"Idea #%lld: a small web app that tracks reading lists and reminds "
				   "me every Sunday.\"}}",
				   k ? "," : "", (long long)(i + 1), (long long)uid, (long long)uid,
				   (long long)uid, (long long)uid, (long long)uid, (long long)uid, (long long)i);
		}
		buf_putc(&body, ']');
		r = call("/control/updates", body.data);
		if (!r) {
			fprintf(stderr, "bench/bot: cannot load the fake's queue\n");
			return 1;
		}
		if (first_id == 0)
			first_id = json_integer_value(json_array_get(json_object_get(r, "ids"), 0));
		last_id = json_integer_value(json_array_get(json_object_get(r, "ids"),
							    json_array_size(json_object_get(r, "ids")) - 1));
		json_decref(r);
		buf_free(&body);
	}

	if (pg_pool_new(&pool, url, 6) < 0 || pg_conn_open(&c, url) < 0 ||
	    sql(c, "TRUNCATE bot_updates, bot_chats, outbox, threads CASCADE") < 0) {
		fprintf(stderr, "bench/bot: %s\n", err_last());
		return 1;
	}
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.token, sizeof(cfg.token), "%s", TOKEN);
	snprintf(cfg.api_base, sizeof(cfg.api_base), "%s", base);
	snprintf(cfg.graph, sizeof(cfg.graph), "factory");
	snprintf(cfg.key_file, sizeof(cfg.key_file), "%s/bench-bot.key", build ? build : "build");
	for (int u = 0; u < USERS; u++)
		cfg.allowed[cfg.nallowed++] = 100000 + u;
	cfg.poll_timeout_s = 1;
	cfg.rate_scale = 1.0;
	cfg.approval_ttl_s = 3600;
	cfg.typing_ms = 0;
	cfg.backoff_ms = 100;
	cfg.max_backoff_ms = 2000;
	cfg.standby_ms = 100;
	if (bot_new(&b, pool, &cfg) < 0 || bot_start(b) < 0) {
		fprintf(stderr, "bench/bot: %s\n", err_last());
		return 1;
	}
	for (int64_t until = util_mono_ms() + 600000; util_mono_ms() < until;) {
		json_t *s = call("/control/state", NULL);
		int64_t conf = json_integer_value(json_object_get(s, "confirmed"));
		json_decref(s);
		if (conf > last_id)
			break;
		util_sleep_ms(20);
	}
	/* the confirming poll is held (long polling) until its timeout: wait
	 * for its answer so it is in the log */
	for (int64_t until = util_mono_ms() + 10000; util_mono_ms() < until && t_last < 0;) {
		json_t *r = call("/control/requests", NULL), *q;
		size_t i;
		json_array_foreach(json_object_get(r, "requests"), i, q) {
			if (json_integer_value(json_object_get(json_object_get(q, "params"), "offset")) > last_id)
				t_last = 0;
		}
		json_decref(r);
		if (t_last < 0)
			util_sleep_ms(50);
	}
	t_last = -1;
	bot_stop(b);
	bot_join(b);
	{
		json_t *r = call("/control/requests", NULL), *q;
		size_t i;
		json_array_foreach(json_object_get(r, "requests"), i, q) {
			json_t *p = json_object_get(q, "params");
			double t = json_real_value(json_object_get(q, "t_ms"));
			if (strcmp(json_string_value(json_object_get(q, "method")), "getUpdates") != 0)
				continue;
			if (json_integer_value(json_object_get(q, "delivered")) > 0) {
				batches++;
				if (t_first < 0)
					t_first = t;
			}
			if (t_last < 0 && json_integer_value(json_object_get(p, "offset")) > last_id)
				t_last = t;
		}
		json_decref(r);
	}
	getrusage(RUSAGE_SELF, &ru);
	{
		PGresult *res = NULL;
		int64_t stored = 0, routed = 0;
		if (pg_exec(c, &res, "SELECT (SELECT count(*) FROM bot_updates), (SELECT count(*) FROM "
				     "runs) + (SELECT count(*) FROM events)", 0, NULL) == 0) {
			stored = pg_int(res, 0, 0);
			routed = pg_int(res, 0, 1);
		}
		PQclear(res);
		printf("{\"updates_per_s\": %.0f, \"n\": %lld, \"drain_ms\": %.1f, \"batches\": %d, "
		       "\"stored_updates\": %lld, \"runs_and_events\": %lld, \"peak_rss_mib\": %.1f}\n",
		       t_last > t_first ? (double)n / ((t_last - t_first) / 1000.0) : 0.0, (long long)n,
		       t_last - t_first, batches, (long long)stored, (long long)routed,
		       (double)ru.ru_maxrss / 1024.0);
		if (stored != n || routed != n) {
			fprintf(stderr, "bench/bot: %lld updates stored and %lld runs or events, expected %lld\n",
				(long long)stored, (long long)routed, (long long)n);
			return 1;
		}
	}
	bot_free(b);
	pg_conn_close(c);
	pg_pool_free(pool);
	kill(fake, SIGTERM);
	waitpid(fake, NULL, 0);
	return 0;
}
