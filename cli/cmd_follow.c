/*
 * orchestrator run <run-id> --stream [MODES] — a run's stream, live
 * (engine/stream.h): the events of every process, through Redis
 * (bot/live.h), from the run's last checkpoint on, until the run ends or
 * waits. The model's replies are printed as they are written (the field
 * people read, when the node names one); --json prints each event's wire
 * form, one per line.
 */
#include "bot/live.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/redact.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/stream.h"
#include "secrets/runtime.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The call whose text is being printed, so its tokens run on one line. */
typedef struct follow {
	char call[40];
	jx_pick pick;
	int display;
	int json;
	buf text;     /* the call's text so far */
	size_t shown; /* bytes of its filtered text printed */
} follow;

/* Prints what the call's text added: whole words only, the whole text so
 * far passing the secrets filter each time (all of it when `all`). */
static void show_text(follow *f, int all)
{
	size_t upto = f->text.len;
	char *prefix, *red;

	if (!all)
		while (upto > 0 && f->text.data[upto - 1] != ' ' && f->text.data[upto - 1] != '\n')
			upto--;
	prefix = strndup(buf_cstr(&f->text), upto);
	red = prefix ? redact_str(prefix) : NULL;
	if (red && strlen(red) > f->shown) {
		fputs(red + f->shown, stdout);
		f->shown = strlen(red);
		fflush(stdout);
	}
	free(prefix);
	free(red);
}

static void end_line(follow *f)
{
	if (f->call[0]) {
		show_text(f, 1);
		fputc('\n', stdout);
		f->call[0] = '\0';
	}
	buf_reset(&f->text);
	f->shown = 0;
}

static void print_message(follow *f, const eng_stream_event *ev, const json_t *d)
{
	const char *call = jx_str(d, "call"), *phase = jx_str(d, "phase");
	const char *text = json_string_value(json_object_get(d, "text"));

	if (strcmp(phase, "start") == 0) {
		const char *display = json_string_value(json_object_get(d, "display"));
		end_line(f);
		printf("[messages] %s%s%s: %s (attempt %lld)\n", ev->node, ev->ns[0] ? " in " : "",
		       ev->ns, jx_str(d, "model"), (long long)jx_int(d, "attempt"));
		snprintf(f->call, sizeof(f->call), "%s", call);
		f->display = display != NULL;
		jx_pick_init(&f->pick, display ? display : "");
		return;
	}
	if (strcmp(phase, "end") == 0) {
		if (strcmp(f->call, call) == 0)
			end_line(f);
		return;
	}
	if (!text)
		return;
	if (strcmp(f->call, call) != 0) {
		/* joined in the middle of a reply: its text as the model writes it */
		end_line(f);
		printf("[messages] %s%s%s (joined mid-reply):\n", ev->node, ev->ns[0] ? " in " : "",
		       ev->ns);
		snprintf(f->call, sizeof(f->call), "%s", call);
		f->display = 0;
	}
	if (f->display)
		jx_pick_feed(&f->pick, text, strlen(text), &f->text);
	else
		buf_puts(&f->text, text);
	show_text(f, 0);
}

/* One event, for a person. Returns 1 when it ends the run's stream. */
static int print_event(follow *f, const eng_stream_event *ev, int64_t run)
{
	json_t *d = eng_stream_event_data(ev);
	const char *mode = eng_stream_mode_name(ev->mode);
	int end = 0;

	if (f->json) {
		char *red = redact_str(ev->wire);
		printf("%s\n", red ? red : "");
		free(red);
		fflush(stdout);
		end = ev->mode == ENG_STREAM_RUN && ev->run_id == run &&
		      strcmp(jx_str(d, "event"), "end") == 0;
		json_decref(d);
		return end;
	}
	if (ev->mode == ENG_STREAM_MESSAGES) {
		print_message(f, ev, d);
		json_decref(d);
		return 0;
	}
	end_line(f);
	if (ev->mode == ENG_STREAM_RUN) {
		const char *what = jx_str(d, "event");
		end = ev->run_id == run && strcmp(what, "end") == 0;
		if (strcmp(what, "start") == 0)
			printf("[run] %s run %lld (%s, from checkpoint %lld)%s\n",
			       strcmp(jx_str(d, "how"), "takeover") == 0 ? "taken over:" : "started",
			       (long long)ev->run_id, jx_str(d, "how"), jx_int(d, "from_seq"),
			       strcmp(jx_str(d, "how"), "takeover") == 0
				       ? " — its engine died; the step in progress runs again"
				       : "");
		else
			printf("[run] run %lld %s%s%s\n", (long long)ev->run_id, jx_str(d, "status"),
			       *jx_str(d, "error") ? ": " : "", jx_str(d, "error"));
	} else if (ev->mode == ENG_STREAM_DROPPED) {
		printf("[dropped] %lld events were lost here (this reader fell behind, or the "
		       "connection to Redis broke)\n", (long long)ev->dropped);
	} else {
		char *text = json_dumps(d, JSON_COMPACT);
		char *red = text ? redact_str(text) : NULL;
		printf("[%s]%s%s%s%s %s\n", mode, ev->node[0] ? " " : "", ev->node,
		       ev->ns[0] ? " in " : "", ev->ns, red ? red : "");
		free(text);
		free(red);
	}
	fflush(stdout);
	json_decref(d);
	return end;
}

int cli_follow_run(int64_t run, unsigned modes, int json)
{
	pg_pool *pool = NULL;
	pg_conn *c = NULL;
	json_t *r = NULL;
	eng_stream_hub *hub = NULL;
	bot_live *live = NULL;
	eng_stream_sub *sub = NULL;
	follow f;
	sigset_t sigs;
	int64_t thread = 0, last_check = util_mono_ms();
	int rc = 1, done = 0;

	memset(&f, 0, sizeof(f));
	f.json = json;
	buf_init(&f.text, 1 << 20);
	cli_block_signals(&sigs);
	if (pg_pool_new(&pool, cli_cfg.database_url, 2) < 0)
		return cli_fail("database pool");
	/* what is printed passes the secrets filter */
	if (cli_start_secrets(pool) < 0) {
		cli_fail("secrets");
		goto done;
	}
	if (pg_pool_acquire(pool, 10000, &c) < 0 || eng_run_get(c, run, &r) < 0) {
		cli_fail("run");
		goto done;
	}
	pg_pool_release(pool, c);
	c = NULL;
	thread = json_integer_value(json_object_get(r, "thread_id"));
	if (cli_streams_start(pool, 0, 1, thread, &hub, &live))
		goto done;
	if (live)
		bot_live_wait_ready(live, 5000);
	{
		eng_stream_filter flt = {.modes = modes, .run_id = run, .late_join = 1};
		if (eng_stream_subscribe(hub, &flt, &sub) < 0) {
			cli_fail("stream");
			goto done;
		}
	}
	while (!done) {
		eng_stream_event *ev = NULL;
		struct timespec zero = {0, 0};
		int sig = sigtimedwait(&sigs, NULL, &zero);

		if (sig == SIGINT || sig == SIGTERM)
			break;
		if (eng_stream_next(sub, 500, &ev) == 0) {
			done = print_event(&f, ev, run);
			eng_stream_event_release(ev);
			continue;
		}
		/* without Redis nothing comes: the run's status tells when it ended */
		if (util_mono_ms() - last_check >= 2000) {
			json_t *now = NULL;
			last_check = util_mono_ms();
			if (pg_pool_acquire(pool, 5000, &c) == 0) {
				if (eng_run_get(c, run, &now) == 0) {
					const char *st = jx_str(now, "status");
					if (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0 ||
					    strcmp(st, "cancelled") == 0 || strcmp(st, "waiting") == 0) {
						end_line(&f);
						if (!json)
							printf("[run] run %lld %s\n", (long long)run, st);
						done = 1;
					}
				}
				json_decref(now);
				pg_pool_release(pool, c);
				c = NULL;
			}
		}
	}
	end_line(&f);
	rc = 0;
done:
	if (c)
		pg_pool_release(pool, c);
	json_decref(r);
	eng_stream_unsubscribe(sub);
	cli_streams_stop(hub, live);
	sec_runtime_stop();
	pg_pool_free(pool);
	buf_free(&f.text);
	return rc;
}
