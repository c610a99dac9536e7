#include "bot/term.h"
#include "bot/approval.h"
#include "bot/reply.h"
#include "bot/route.h"
#include "bot/text.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/outbox.h"
#include "engine/report.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct term {
	const bot_term_options *opt;
	pg_pool *pool;
	char chat[160];
	char relay_id[96];
	int64_t pending_approval;   /* the last question asked, 0 when none */
	int npending_options;
	int prompt_shown;
	int quit;
	/* live replies (opt->hub) */
	eng_stream_sub *sub;
	bot_replies replies;
	char live_call[40];   /* the reply being printed; "" when none */
	int live_attempt;     /* its attempt being printed */
	buf live_text;        /* its filtered text printed so far */
	int live_bol;         /* the next character starts a line */
	char done_call[40];   /* the last reply printed whole, for its message */
	buf done_text;
} term;

static const pg_stmt STMT_TERM_PENDING = {
	"term_pending",
	"SELECT id, jsonb_array_length(options) FROM approvals WHERE channel = 'term' AND chat = $1 "
	"AND state = 'pending' AND message_id IS NOT NULL ORDER BY id DESC LIMIT 1",
	1,
};

static void out(term *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out(term *t, const char *fmt, ...)
{
	va_list ap;
	buf b;
	size_t off = 0;

	buf_init(&b, 0);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	/* everything the terminal shows passes the secrets filter: live lines,
	 * the history, errors */
	redact_buf(&b);
	while (b.data && off < b.len) {
		ssize_t w = write(t->opt->out_fd, b.data + off, b.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	buf_free(&b);
}

static const char *c_on(term *t, const char *code)
{
	return t->opt->color ? code : "";
}

static void prompt(term *t)
{
	out(t, "%syou ›%s ", c_on(t, "\033[1;32m"), c_on(t, "\033[0m"));
	t->prompt_shown = 1;
}

/* Moves off a shown prompt before printing a message. */
static void clear_prompt(term *t)
{
	if (t->prompt_shown)
		out(t, "\r%s", t->opt->color ? "\033[K" : "\n");
	t->prompt_shown = 0;
}

static void say_block(term *t, const char *who_color, const char *text)
{
	const char *p = text;

	clear_prompt(t);
	out(t, "%s◆%s ", c_on(t, who_color), c_on(t, "\033[0m"));
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		out(t, "%.*s\n", (int)n, p);
		p += n;
		if (*p == '\n') {
			p++;
			if (*p)
				out(t, "  ");
		}
	}
	if (!*text)
		out(t, "\n");
}

/* The text of a payload as plain text, redacted. Caller frees. */
static char *payload_plain(const json_t *p)
{
	const char *h = json_string_value(json_object_get(p, "html"));
	const char *s = json_string_value(json_object_get(p, "text"));
	char *plain = h ? tg_html_to_plain(h) : strdup(s ? s : "");
	char *red;

	if (!plain)
		return NULL;
	red = redact_str(plain);
	free(plain);
	return red;
}

static int save_document(term *t, int64_t id, const json_t *p, char *path, size_t cap)
{
	const char *fn = json_string_value(json_object_get(p, "filename"));
	const char *content = json_string_value(json_object_get(p, "content"));
	char dir[1100], safe[128];
	size_t k = 0;
	int fd;
	char *red;

	if (!content)
		return err_set(ERR_INVALID, "a document without content");
	for (const char *s = fn ? fn : "document.txt"; *s && k + 1 < sizeof(safe); s++) {
		char ch = (*s == '/' || *s == '\\' || (*s == '.' && k == 0)) ? '_' : *s;
		safe[k++] = ch;
	}
	safe[k] = '\0';
	snprintf(dir, sizeof(dir), "%s/chat", t->opt->data_dir ? t->opt->data_dir : ".");
	mkdir(dir, 0700);
	snprintf(path, cap, "%s/%lld-%s", dir, (long long)id, safe);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(ERR_IO, "cannot write %s: %s", path, strerror(errno));
	red = redact_str(content);
	if (!red || write(fd, red, strlen(red)) != (ssize_t)strlen(red)) {
		close(fd);
		free(red);
		return err_set(ERR_IO, "cannot write %s", path);
	}
	free(red);
	close(fd);
	return 0;
}

static int show_approval(term *t, pg_conn *c, const eng_outbox_row *row)
{
	bot_approval a;
	size_t i;
	const json_t *o;
	buf b;
	int rc = bot_approval_create(c, row, "term", 86400, &a);

	if (rc < 0)
		return rc;
	buf_init(&b, 0);
	buf_printf(&b, "%s\n", a.question);
	json_array_foreach(a.options, i, o)
		buf_printf(&b, "  %zu) %s\n", i + 1, json_string_value(json_object_get(o, "label")));
	buf_printf(&b, "Type the number of your choice (question #%lld).", (long long)a.id);
	{
		char *red = redact_str(buf_cstr(&b));
		say_block(t, "\033[1;33m", red ? red : "");
		free(red);
	}
	buf_free(&b);
	if (strcmp(a.state, "pending") == 0) {
		rc = bot_approval_set_message(c, a.id, row->id);
		t->pending_approval = a.id;
		t->npending_options = (int)json_array_size(a.options);
	}
	bot_approval_clear(&a);
	return rc;
}

/* --- live replies --- */

/* Prints `n` bytes of a live reply, indenting its lines as say_block. */
static void live_put(term *t, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) + 1 : n;

		if (t->live_bol && !(k == 1 && *p == '\n'))
			out(t, "  ");
		out(t, "%.*s", (int)k, p);
		t->live_bol = nl != NULL;
		p += k;
		n -= k;
	}
}

/* Ends the reply being printed (`mark` and a newline); what was shown is
 * kept for the message that follows it, unless `keep` is 0. */
static void live_end(term *t, const char *mark, int keep)
{
	if (!t->live_call[0])
		return;
	out(t, "%s\n", mark ? mark : "");
	snprintf(t->done_call, sizeof(t->done_call), "%s", keep ? t->live_call : "");
	buf_reset(&t->done_text);
	if (keep && t->live_text.len)
		buf_append(&t->done_text, t->live_text.data, t->live_text.len);
	buf_reset(&t->live_text);
	t->live_call[0] = '\0';
}

/* Shows what a followed reply added: whole words only (the text so far up
 * to its last blank), each time the whole text passing the secrets filter,
 * and all of it once the reply ended. */
static void live_show(term *t, bot_reply *r)
{
	size_t upto = r->text.len;
	char *prefix, *red;

	if (t->live_call[0] && strcmp(t->live_call, r->call) != 0)
		return; /* one reply at a time; the other comes whole with its message */
	if (!t->live_call[0] && strcmp(r->call, t->done_call) == 0 && r->attempt == t->live_attempt)
		return; /* printed whole already */
	if (t->live_call[0] && r->incomplete) {
		live_end(t, " …", 0); /* events were lost: its message comes whole */
		return;
	}
	if (r->incomplete)
		return;
	if (t->live_call[0] && r->attempt != t->live_attempt) {
		/* asked again: what was shown is not the reply */
		live_end(t, " … (asked again)", 0);
	}
	if (!(r->ended && r->ok))
		while (upto > 0 && r->text.data[upto - 1] != ' ' && r->text.data[upto - 1] != '\n')
			upto--;
	prefix = strndup(buf_cstr(&r->text), upto);
	red = prefix ? redact_str(prefix) : NULL;
	if (red && strlen(red) > t->live_text.len) {
		if (!t->live_call[0]) {
			clear_prompt(t);
			out(t, "%s◆%s ", c_on(t, "\033[1;36m"), c_on(t, "\033[0m"));
			snprintf(t->live_call, sizeof(t->live_call), "%s", r->call);
			t->live_attempt = r->attempt;
			t->live_bol = 0;
			buf_reset(&t->live_text);
		}
		live_put(t, red + t->live_text.len, strlen(red) - t->live_text.len);
		buf_reset(&t->live_text);
		buf_puts(&t->live_text, red);
	}
	if (r->ended && r->ok)
		live_end(t, NULL, 1);
	free(prefix);
	free(red);
}

/* Takes the stream's events: prints the replies followed. */
static void live_pump(term *t)
{
	eng_stream_event *ev;

	if (!t->sub)
		return;
	while (eng_stream_try_next(t->sub, &ev)) {
		int changed = 0;
		bot_reply *r = bot_replies_feed(&t->replies, ev, &changed);

		if (ev->mode == ENG_STREAM_DROPPED && t->live_call[0]) {
			bot_reply *cur = bot_replies_find(&t->replies, t->live_call);
			if (cur)
				live_show(t, cur);
		}
		if (r && changed)
			live_show(t, r);
		if (r && r->ended)
			bot_replies_forget(&t->replies, r);
		eng_stream_event_release(ev);
	}
}

/* A message that says it was streamed: prints only what the live reply
 * did not show already. 1 when it was handled so, 0 to print it whole. */
static int live_message(term *t, const json_t *p, const char *text)
{
	const char *call = json_string_value(json_object_get(p, "streamed"));
	const char *shown;
	size_t n;

	if (!call)
		return 0;
	if (t->live_call[0] && strcmp(t->live_call, call) == 0)
		live_end(t, NULL, 1); /* the message overtook the reply's end */
	if (strcmp(t->done_call, call) != 0)
		return 0;
	shown = buf_cstr(&t->done_text);
	n = strlen(shown);
	t->done_call[0] = '\0';
	if (n == 0 || strncmp(text, shown, n) != 0)
		return 0;
	text += n;
	while (*text == '\n' || *text == ' ')
		text++;
	if (*text)
		say_block(t, "\033[1;36m", text);
	return 1;
}

/* Prints (or saves) one claimed row; `kind` is after "term.". */
static int deliver_row(term *t, pg_conn *c, eng_outbox_row *row)
{
	const char *kind = row->kind + 5;
	json_t *p = row->payload;
	int drc = 0;

	if (!p) {
		drc = err_set(ERR_INVALID, "unreadable payload");
	} else if (strcmp(kind, "send") == 0 || strcmp(kind, "edit") == 0 ||
		   strcmp(kind, "progress") == 0) {
		char *text = payload_plain(p);
		if (strcmp(kind, "send") != 0 || !live_message(t, p, text ? text : ""))
			say_block(t, strcmp(kind, "send") == 0 ? "\033[1;36m" : "\033[2;36m",
				  text ? text : "");
		free(text);
	} else if (strcmp(kind, "document") == 0) {
		char path[1400], msg[1600];
		drc = save_document(t, row->id, p, path, sizeof(path));
		if (drc == 0) {
			const char *cap = json_string_value(json_object_get(p, "caption"));
			snprintf(msg, sizeof(msg), "%s%s📎 saved to %s", cap ? cap : "",
				 cap ? "\n" : "", path);
			say_block(t, "\033[1;36m", msg);
		}
	} else if (strcmp(kind, "approval") == 0) {
		drc = show_approval(t, c, row);
	} else if (strcmp(kind, "action") != 0) {
		drc = err_set(ERR_INVALID, "unknown kind %s", row->kind);
	}
	return drc;
}

/* Claims and prints this chat's outbox rows, in id order. Returns how many. */
static int deliver(term *t)
{
	pg_conn *c = NULL;
	eng_outbox_row *rows = NULL;
	int rc, n = 0;

	rc = pg_pool_acquire(t->pool, 5000, &c);
	if (rc < 0)
		return rc;
	rc = eng_outbox_claim_dest(c, t->relay_id, t->opt->name, "term.", 50, 60000, &rows, &n);
	for (int i = 0; rc == 0 && i < n; i++) {
		int drc = deliver_row(t, c, &rows[i]);

		if (drc < 0 && pg_conn_broken(c)) {
			rc = drc;
			break;
		}
		rc = drc < 0 ? eng_outbox_dead(c, rows[i].id, err_last())
			     : eng_outbox_done(c, rows[i].id, NULL);
	}
	eng_outbox_rows_free(rows, n);
	pg_pool_release(t->pool, c);
	return rc < 0 ? rc : n;
}

static void show_history(term *t, pg_conn *c, int limit)
{
	int64_t thread;
	int n;
	json_t *h = NULL, *m;
	size_t i;

	if (bot_active_project(c, t->chat, &thread, &n) < 0 || thread == 0) {
		say_block(t, "\033[2m", "No project yet: describe an idea to start one.");
		return;
	}
	if (eng_report_history(c, thread, limit, &h) < 0) {
		say_block(t, "\033[31m", err_last());
		return;
	}
	clear_prompt(t);
	out(t, "%s— project #%d, last %d message(s) —%s\n", c_on(t, "\033[2m"), n,
	    (int)json_array_size(h), c_on(t, "\033[0m"));
	json_array_foreach(h, i, m) {
		const char *text = json_string_value(json_object_get(m, "text"));
		buf line;
		buf_init(&line, 0);
		tg_truncate(&line, text ? text : "", 400);
		out(t, "%s%s:%s %s\n", c_on(t, "\033[2m"),
		    json_string_value(json_object_get(m, "who")), c_on(t, "\033[0m"),
		    buf_cstr(&line));
		buf_free(&line);
	}
	json_decref(h);
}

static int decide(term *t, pg_conn *c, int64_t id, int option)
{
	bot_actor who;
	bot_decision d;
	char msg[400];
	int rc;

	memset(&who, 0, sizeof(who));
	snprintf(who.name, sizeof(who.name), "%s", t->opt->name);
	snprintf(who.username, sizeof(who.username), "%s", t->opt->name);
	who.channel = "term";
	who.trusted = 1;
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = bot_approval_decide(c, id, option, &who, t->opt->name, NULL, 0, &d);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0) {
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
		return rc;
	}
	if (d.outcome == BOT_DEC_OK) {
		snprintf(msg, sizeof(msg), "Decided: %s", d.label);
		t->pending_approval = 0;
	} else {
		snprintf(msg, sizeof(msg), "%s", d.reason);
		if (d.outcome == BOT_DEC_DECIDED || d.outcome == BOT_DEC_EXPIRED)
			t->pending_approval = 0;
	}
	say_block(t, "\033[1;33m", msg);
	return 0;
}

static void refresh_pending(term *t, pg_conn *c)
{
	const char *params[1] = {t->opt->name};
	PGresult *res = NULL;

	if (pg_exec_stmt(c, &res, &STMT_TERM_PENDING, params) == 0 && pg_rows(res) > 0) {
		t->pending_approval = pg_int(res, 0, 0);
		t->npending_options = (int)pg_int(res, 0, 1);
	}
	PQclear(res);
}

/* A transaction around one routed line. */
static int route_line(term *t, pg_conn *c, const char *line)
{
	bot_input in;
	int rc;

	memset(&in, 0, sizeof(in));
	in.channel = "term";
	in.dest = t->opt->name;
	in.text = line;
	in.user_name = t->opt->name;
	in.username = t->opt->name;
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc < 0)
		return rc;
	if (line[0] == '/' && line[1] && line[1] != ' ') {
		char cmd[33];
		size_t k = 0;
		const char *p = line + 1;
		while (*p && *p != ' ' && k + 1 < sizeof(cmd))
			cmd[k++] = *p++;
		cmd[k] = '\0';
		while (*p == ' ')
			p++;
		rc = bot_command(c, t->opt->graph, &in, cmd, p);
	} else {
		bot_batch b;
		char idem[96];
		snprintf(idem, sizeof(idem), "term:%s:%lld:%llx", t->opt->name,
			 (long long)util_wall_ms(), (unsigned long long)util_rand_u64());
		bot_batch_init(&b);
		rc = bot_batch_add(&b, &in, idem);
		if (rc == 0)
			rc = bot_batch_flush(&b, c, t->opt->graph, NULL, NULL);
		bot_batch_clear(&b);
	}
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0)
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
	return rc;
}

static int handle_line(term *t, char *line)
{
	pg_conn *c = NULL;
	char *e;
	int64_t v;
	int rc;

	while (*line == ' ' || *line == '\t')
		line++;
	e = line + strlen(line);
	while (e > line && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	t->prompt_shown = 0;
	if (!*line)
		return 0;
	if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0) {
		t->quit = 1;
		return 0;
	}
	rc = pg_pool_acquire(t->pool, 5000, &c);
	if (rc < 0)
		return rc;
	if (strncmp(line, "/history", 8) == 0 && (line[8] == '\0' || line[8] == ' ')) {
		int64_t n = 20;
		if (line[8] && (cfg_parse_int(line + 9, &n) < 0 || n < 1 || n > 500))
			n = 20;
		show_history(t, c, (int)n);
	} else if (strcmp(line, "/help") == 0) {
		say_block(t, "\033[2m", bot_help_text("term"));
	} else if ((strncmp(line, "/approve ", 9) == 0 && cfg_parse_int(line + 9, &v) == 0) ||
		   (t->pending_approval > 0 && cfg_parse_int(line, &v) == 0)) {
		if (t->pending_approval <= 0)
			refresh_pending(t, c);
		if (t->pending_approval <= 0)
			say_block(t, "\033[1;33m", "No question is waiting for an answer.");
		else if (v < 1 || v > t->npending_options)
			say_block(t, "\033[1;33m", "Choose one of the numbers shown.");
		else
			rc = decide(t, c, t->pending_approval, (int)v - 1);
	} else {
		rc = route_line(t, c, line);
	}
	if (rc < 0)
		say_block(t, "\033[31m", err_last());
	pg_pool_release(t->pool, c);
	return 0;
}

/* Follows the replies of this chat's projects (threads "term:<name>:<n>")
 * as they are written, when there is a hub. */
static void live_subscribe(term *t)
{
	char prefix[120];
	eng_stream_filter f = {.modes = ENG_STREAM_MESSAGES};

	if (!t->opt->hub)
		return;
	snprintf(prefix, sizeof(prefix), "term:%s:", t->opt->name);
	f.key_prefix = prefix;
	if (eng_stream_subscribe(t->opt->hub, &f, &t->sub) < 0)
		log_warn("chat", "replies will not be shown as they are written: %s", err_last());
}

/* What the loop waits for: the terminal, the outbox's notifications (when
 * listening) and the live replies (when following them). The count. */
static int poll_set(term *t, pg_conn *listen, struct pollfd pfd[3])
{
	int nfd = 2;

	pfd[0].fd = t->opt->in_fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = listen ? PQsocket(pg_conn_raw(listen)) : -1; /* poll ignores -1 */
	pfd[1].events = POLLIN;
	if (t->sub) {
		pfd[2].fd = eng_stream_sub_fd(t->sub);
		pfd[2].events = POLLIN;
		nfd = 3;
	}
	for (int i = 0; i < nfd; i++)
		pfd[i].revents = 0;
	return nfd;
}

int bot_term_run(pg_pool *pool, const bot_term_options *opt)
{
	term t;
	pg_conn *listen = NULL, *c = NULL;
	buf line;
	int64_t poll_ms = opt->poll_ms > 0 ? opt->poll_ms : 500, last_expire = 0;
	int rc = 0, eof = 0;

	memset(&t, 0, sizeof(t));
	t.opt = opt;
	t.pool = pool;
	bot_replies_init(&t.replies);
	buf_init(&t.done_text, 1 << 20);
	buf_init(&t.live_text, 1 << 20);
	bot_chat_key("term", opt->name, t.chat, sizeof(t.chat));
	live_subscribe(&t);
	snprintf(t.relay_id, sizeof(t.relay_id), "term-%d", (int)getpid());
	buf_init(&line, 1 << 20);
	rc = pg_pool_acquire(pool, 10000, &c);
	if (rc < 0)
		return rc;
	{
		int64_t thread;
		int n;
		int64_t engines = -1;
		if (eng_report_live_engines(c, 60, &engines) == 0 && engines == 0)
			out(&t, "%s(no engine is running on this database: start `orchestrator serve` "
				"so your projects make progress)%s\n",
			    c_on(&t, "\033[33m"), c_on(&t, "\033[0m"));
		out(&t, "orchestrator chat — you are '%s'. /help lists the commands, /quit ends.\n",
		    opt->name);
		if (bot_active_project(c, t.chat, &thread, &n) == 0 && thread > 0)
			show_history(&t, c, 5);
		refresh_pending(&t, c);
	}
	pg_pool_release(pool, c);
	if (pg_conn_open(&listen, pg_pool_url(pool)) < 0 ||
	    pg_exec(listen, NULL, "LISTEN orch_outbox", 0, NULL) < 0) {
		pg_conn_close(listen);
		listen = NULL;
	}
	while (!t.quit) {
		struct pollfd pfd[3];
		int nfd, drc;

		if (util_mono_ms() - last_expire >= 30000) {
			/* nobody else expires the terminal's questions */
			last_expire = util_mono_ms();
			if (pg_pool_acquire(pool, 1000, &c) == 0) {
				if (bot_approvals_expire(c, "term", NULL) < 0)
					log_warn("chat", "expiring questions: %s", err_last());
				pg_pool_release(pool, c);
			}
		}

		live_pump(&t);
		drc = deliver(&t);
		if (drc < 0) {
			out(&t, "database: %s\n", err_last());
			rc = drc;
			break;
		}
		if (eof)
			break;
		if (!t.prompt_shown && !t.live_call[0])
			prompt(&t);
		nfd = poll_set(&t, listen, pfd);
		if (poll(pfd, (nfds_t)nfd, (int)poll_ms) < 0 && errno != EINTR)
			break;
		if (listen && (pfd[1].revents & POLLIN)) {
			PGnotify *note;
			if (!PQconsumeInput(pg_conn_raw(listen))) {
				pg_conn_close(listen);
				listen = NULL;
			} else {
				note = PQnotifies(pg_conn_raw(listen));
				while (note) {
					PQfreemem(note);
					note = PQnotifies(pg_conn_raw(listen));
				}
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP)) {
			char chunk[4096];
			ssize_t r = read(opt->in_fd, chunk, sizeof(chunk));
			if (r <= 0) {
				eof = 1;
				if (line.len > 0)
					handle_line(&t, line.data);
				buf_reset(&line);
				continue;
			}
			for (ssize_t i = 0; i < r && !t.quit; i++) {
				if (chunk[i] != '\n') {
					buf_putc(&line, chunk[i]);
					continue;
				}
				handle_line(&t, line.len ? line.data : (char *)"");
				buf_reset(&line);
				deliver(&t);
			}
		}
	}
	clear_prompt(&t);
	pg_conn_close(listen);
	buf_free(&line);
	eng_stream_unsubscribe(t.sub);
	bot_replies_clear(&t.replies);
	buf_free(&t.done_text);
	buf_free(&t.live_text);
	return rc;
}
