#include "bot/term.h"
#include "bot/approval.h"
#include "bot/route.h"
#include "bot/text.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/util.h"
#include "engine/control.h"
#include "engine/outbox.h"

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
} term;

static const pg_stmt STMT_TERM_CLAIM = {
	"term_claim",
	"UPDATE outbox o SET claimed_by = $2, claim_until = now() + interval '60 seconds' "
	"WHERE o.id IN (SELECT c.id FROM outbox c WHERE c.dest = $1 AND c.kind LIKE 'term.%' "
	"AND c.state = 'pending' AND c.next_attempt_at <= now() AND (c.claim_until IS NULL OR "
	"c.claim_until < now()) ORDER BY c.id LIMIT 50 FOR UPDATE SKIP LOCKED) "
	"RETURNING o.id, o.thread_id, o.kind, o.payload::text",
	2,
};

static const pg_stmt STMT_TERM_HISTORY = {
	"term_history",
	"SELECT who, text FROM (SELECT r.created_at AS at, r.id AS ord, 'you' AS who, "
	"r.input->'input'->>'text' AS text FROM runs r WHERE r.thread_id = $1 AND r.input ? 'input' "
	"AND " ENG_SQL_NOT_HANDED_OFF("r") " "
	"UNION ALL SELECT e.created_at, e.id, 'you', e.value->>'text' FROM events e "
	"WHERE e.thread_id = $1 AND e.key = 'input' "
	"UNION ALL SELECT o.created_at, o.id, 'orchestrator', coalesce(o.payload->>'text', "
	"o.payload->>'html', o.payload->>'question') FROM outbox o WHERE o.thread_id = $1 "
	"AND o.kind IN ('term.send', 'term.approval', 'telegram.send', 'telegram.approval')) h "
	"WHERE text IS NOT NULL ORDER BY at DESC, ord DESC LIMIT $2",
	2,
};

static const pg_stmt STMT_TERM_PENDING = {
	"term_pending",
	"SELECT id, jsonb_array_length(options) FROM approvals WHERE channel = 'term' AND chat = $1 "
	"AND state = 'pending' AND message_id IS NOT NULL ORDER BY id DESC LIMIT 1",
	1,
};

static const pg_stmt STMT_ENGINES_ALIVE = {
	"term_engines_alive",
	"SELECT count(*) FROM engines WHERE stopped_at IS NULL AND heartbeat_at > now() - "
	"interval '60 seconds'",
	0,
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

/* Claims and prints this chat's outbox rows. Returns how many. */
static int deliver(term *t)
{
	pg_conn *c = NULL;
	PGresult *res = NULL;
	const char *params[2] = {t->opt->name, t->relay_id};
	int rc, n = 0;
	int *order = NULL;

	rc = pg_pool_acquire(t->pool, 5000, &c);
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &res, &STMT_TERM_CLAIM, params);
	if (rc < 0)
		goto done;
	n = pg_rows(res);
	order = calloc((size_t)(n > 0 ? n : 1), sizeof(*order));
	if (!order) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = 1; i < n; i++) /* by id: rows of one chat in order */
		for (int k = i; k > 0 && pg_int(res, order[k], 0) < pg_int(res, order[k - 1], 0); k--) {
			int tmp = order[k];
			order[k] = order[k - 1];
			order[k - 1] = tmp;
		}
	for (int k = 0; k < n; k++) {
		int i = order[k];
		eng_outbox_row row;
		const char *kind = pg_val(res, i, 2) + 5; /* after "term." */
		json_t *p = json_loads(pg_val(res, i, 3), 0, NULL);
		int drc = 0;

		memset(&row, 0, sizeof(row));
		row.id = pg_int(res, i, 0);
		row.thread_id = pg_int(res, i, 1);
		row.dest = (char *)t->opt->name;
		row.payload = p;
		snprintf(row.kind, sizeof(row.kind), "%s", pg_val(res, i, 2));
		if (!p) {
			drc = err_set(ERR_INVALID, "unreadable payload");
		} else if (strcmp(kind, "send") == 0 || strcmp(kind, "edit") == 0 ||
			   strcmp(kind, "progress") == 0) {
			char *text = payload_plain(p);
			say_block(t, strcmp(kind, "send") == 0 ? "\033[1;36m" : "\033[2;36m",
				  text ? text : "");
			free(text);
		} else if (strcmp(kind, "document") == 0) {
			char path[1400], msg[1600];
			drc = save_document(t, row.id, p, path, sizeof(path));
			if (drc == 0) {
				const char *cap = json_string_value(json_object_get(p, "caption"));
				snprintf(msg, sizeof(msg), "%s%s📎 saved to %s", cap ? cap : "",
					 cap ? "\n" : "", path);
				say_block(t, "\033[1;36m", msg);
			}
		} else if (strcmp(kind, "approval") == 0) {
			drc = show_approval(t, c, &row);
		} else if (strcmp(kind, "action") != 0) {
			drc = err_set(ERR_INVALID, "unknown kind %s", row.kind);
		}
		if (drc < 0 && pg_conn_broken(c)) {
			json_decref(p);
			rc = drc;
			goto done;
		}
		rc = drc < 0 ? eng_outbox_dead(c, row.id, err_last()) : eng_outbox_done(c, row.id, NULL);
		json_decref(p);
		if (rc < 0)
			goto done;
	}
done:
	free(order);
	PQclear(res);
	pg_pool_release(t->pool, c);
	return rc < 0 ? rc : n;
}

static void show_history(term *t, pg_conn *c, int limit)
{
	int64_t thread;
	int n;
	char tid[24], lim[16];
	const char *params[2] = {tid, lim};
	PGresult *res = NULL;

	if (bot_active_project(c, t->chat, &thread, &n) < 0 || thread == 0) {
		say_block(t, "\033[2m", "No project yet: describe an idea to start one.");
		return;
	}
	snprintf(tid, sizeof(tid), "%lld", (long long)thread);
	snprintf(lim, sizeof(lim), "%d", limit);
	if (pg_exec_stmt(c, &res, &STMT_TERM_HISTORY, params) < 0) {
		say_block(t, "\033[31m", err_last());
		return;
	}
	clear_prompt(t);
	out(t, "%s— project #%d, last %d message(s) —%s\n", c_on(t, "\033[2m"), n, pg_rows(res),
	    c_on(t, "\033[0m"));
	for (int i = pg_rows(res) - 1; i >= 0; i--) {
		buf line;
		buf_init(&line, 0);
		tg_truncate(&line, pg_val(res, i, 1), 400);
		out(t, "%s%s:%s %s\n", c_on(t, "\033[2m"), pg_val(res, i, 0), c_on(t, "\033[0m"),
		    buf_cstr(&line));
		buf_free(&line);
	}
	PQclear(res);
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
	bot_chat_key("term", opt->name, t.chat, sizeof(t.chat));
	snprintf(t.relay_id, sizeof(t.relay_id), "term-%d", (int)getpid());
	buf_init(&line, 1 << 20);
	rc = pg_pool_acquire(pool, 10000, &c);
	if (rc < 0)
		return rc;
	{
		int64_t thread;
		int n;
		PGresult *res = NULL;
		if (pg_exec_stmt(c, &res, &STMT_ENGINES_ALIVE, NULL) == 0 && pg_int(res, 0, 0) == 0)
			out(&t, "%s(no engine is running on this database: start `orchestrator serve` "
				"so your projects make progress)%s\n",
			    c_on(&t, "\033[33m"), c_on(&t, "\033[0m"));
		PQclear(res);
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
		struct pollfd pfd[2];
		int nfd = 1, drc;

		if (util_mono_ms() - last_expire >= 30000) {
			/* nobody else expires the terminal's questions */
			last_expire = util_mono_ms();
			if (pg_pool_acquire(pool, 1000, &c) == 0) {
				if (bot_approvals_expire(c, "term", NULL) < 0)
					log_warn("chat", "expiring questions: %s", err_last());
				pg_pool_release(pool, c);
			}
		}

		drc = deliver(&t);
		if (drc < 0) {
			out(&t, "database: %s\n", err_last());
			rc = drc;
			break;
		}
		if (eof)
			break;
		if (!t.prompt_shown)
			prompt(&t);
		pfd[0].fd = opt->in_fd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		if (listen) {
			pfd[1].fd = PQsocket(pg_conn_raw(listen));
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfd = 2;
		}
		if (poll(pfd, (nfds_t)nfd, (int)poll_ms) < 0 && errno != EINTR)
			break;
		if (nfd == 2 && (pfd[1].revents & POLLIN)) {
			PGnotify *note;
			if (!PQconsumeInput(pg_conn_raw(listen))) {
				pg_conn_close(listen);
				listen = NULL;
			} else {
				while ((note = PQnotifies(pg_conn_raw(listen))) != NULL)
					PQfreemem(note);
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
	return rc;
}
