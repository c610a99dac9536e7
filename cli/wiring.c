/*
 * wiring — connects parts that must not know each other (ARCHITECTURE §2):
 * the LLM layer reads endpoint keys through a resolver hook, which the
 * secrets module fills here, in the program that links both.
 */
#include "bot/live.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "core/redact.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "bot/report.h"
#include "llm/registry.h"
#include "nodes/report.h"
#include "secrets/runtime.h"
#include "secrets/store.h"
#include "spawner/report.h"
#include "spawner/spawner.h"

static const nd_ops FACTORY_OPS = {bot_report_open, spw_report_workers, spw_cancel_thread};

void cli_wire_factory(void)
{
	nd_set_ops(&FACTORY_OPS);
}

static int llm_key_from_secrets(const char *name, buf *out, void *udata)
{
	char *value = NULL;
	int rc;

	(void)udata;
	rc = sec_resolve_name(name, &value);
	if (rc < 0)
		return rc;
	rc = buf_puts(out, value);
	sec_value_free(value);
	return rc;
}

int cli_start_secrets(pg_pool *pool)
{
	int rc = sec_runtime_start(pool, cli_cfg.data_dir, NULL);

	if (rc < 0)
		return rc;
	llm_set_secret_resolver(llm_key_from_secrets, NULL);
	return 0;
}

int64_t cli_health_interval_ms(void)
{
	int64_t ms;

	if (cfg_env_duration_ms("ORCH_HEALTH_INTERVAL", 5000, 100, 3600000, &ms) < 0)
		ms = 5000;
	return ms;
}

health_pub *cli_health_start(pg_pool *pool, const char *role)
{
	health_pub *p = NULL;

	if (health_pub_start(&p, pool, role, cli_health_interval_ms()) < 0) {
		/* the process still does its work; status just cannot see it */
		log_warn(role, "%s", err_last());
		return NULL;
	}
	return p;
}

/* --- the command's output, through the secrets filter --- */

static pg_pool *g_filter_pool;
static buf g_pending; /* written, not yet a whole line */
static FILE *g_real_stdout;

/* Writes b (redacted) to file descriptor 1. */
static void emit(buf *b)
{
	size_t off = 0;

	redact_buf(b);
	while (b->data && off < b->len) {
		ssize_t w = write(1, b->data + off, b->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

/* Passes on whole lines, redacted; keeps a partial last line for later (a
 * value is never split at a write boundary inside a line). */
static ssize_t filter_write(void *cookie, const char *data, size_t n)
{
	size_t last = 0;
	buf out;

	(void)cookie;
	if (buf_append(&g_pending, data, n) < 0)
		return -1;
	for (size_t i = g_pending.len; i > 0; i--)
		if (g_pending.data[i - 1] == '\n') {
			last = i;
			break;
		}
	if (last == 0)
		return (ssize_t)n;
	buf_init(&out, 0);
	if (buf_append(&out, g_pending.data, last) == 0)
		emit(&out);
	buf_free(&out);
	memmove(g_pending.data, g_pending.data + last, g_pending.len - last);
	g_pending.len -= last;
	g_pending.data[g_pending.len] = '\0';
	return (ssize_t)n;
}

static int filter_close(void *cookie)
{
	(void)cookie;
	if (g_pending.len)
		emit(&g_pending);
	buf_free(&g_pending);
	return 0;
}

int cli_filter_output(void)
{
	cookie_io_functions_t io = {.write = filter_write, .close = filter_close};
	FILE *f;

	int level = log_level_get(), rc;

	if (g_real_stdout)
		return 0;
	/* a command's own output is what matters: loading the filter says
	 * nothing unless something is wrong */
	if (level < LOG_WARN)
		log_configure(LOG_WARN, cli_cfg.log_text);
	rc = pg_pool_new(&g_filter_pool, cli_cfg.database_url, 2);
	if (rc == 0)
		rc = cli_start_secrets(g_filter_pool);
	log_configure(level, cli_cfg.log_text);
	if (rc < 0) {
		if (rc == ERR_DB)
			fprintf(stderr, "orchestrator: %s\n", err_last());
		else
			fprintf(stderr, "orchestrator: cannot load the secrets that what this command "
					"prints must not show: %s (run it where the master key can be "
					"read: ORCH_MASTER_KEY_FILE or ORCH_MASTER_KEY)\n",
				err_last());
		sec_runtime_stop();
		pg_pool_free(g_filter_pool);
		g_filter_pool = NULL;
		return 1;
	}
	buf_init(&g_pending, 0);
	f = fopencookie(NULL, "w", io);
	if (!f) {
		fprintf(stderr, "orchestrator: cannot set up its output: %s\n", strerror(errno));
		return 1;
	}
	/* one large buffer: a value written across lines reaches the filter whole */
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	fflush(stdout);
	g_real_stdout = stdout;
	stdout = f;
	return 0;
}

void cli_filter_output_end(void)
{
	if (!g_real_stdout)
		return;
	fclose(stdout);
	stdout = g_real_stdout;
	g_real_stdout = NULL;
	sec_runtime_stop();
	pg_pool_free(g_filter_pool);
	g_filter_pool = NULL;
}

int cli_streams_start(pg_pool *pool, int publish, int subscribe, int64_t thread_id,
		      eng_stream_hub **hub, bot_live **live)
{
	eng_stream_options so = {.pool = pool};
	bot_live_options lo = {.redis_url = cli_cfg.redis_url,
			       .database_url = cli_cfg.database_url, .publish = publish,
			       .subscribe = subscribe, .thread_id = thread_id};

	*hub = NULL;
	*live = NULL;
	if (bot_live_modes_from_env(&lo.modes) < 0)
		return cli_fail("configuration");
	if (eng_stream_hub_new(hub, &so) < 0)
		return cli_fail("streams");
	if (bot_live_start(live, *hub, &lo) < 0) {
		/* the process works without live events; say why */
		log_warn("stream", "live events between processes are off: %s", err_last());
		*live = NULL;
	}
	return 0;
}

void cli_streams_stop(eng_stream_hub *hub, bot_live *live)
{
	bot_live_stop(live);
	eng_stream_hub_free(hub);
}
