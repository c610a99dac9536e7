#include "bot/bot.h"
#include "bot/approval.h"
#include "bot/command.h"
#include "bot/limit.h"
#include "bot/draft.h"
#include "bot/relay.h"
#include "bot/route.h"
#include "bot/text.h"
#include "bot/tg.h"
#include "core/config.h"
#include "core/err.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "engine/deadletter.h"
#include "engine/report.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MOD "bot"
#define MAX_BODY ((size_t)32 << 20)
#define EXPIRE_EVERY_MS 30000
#define LOCK_CLASS 0x4f524348LL /* "ORCH" */
#define PART "bot.poller"
/* getUpdates bodies that do not parse, in a row, before the ids they name
 * are set aside as a dead letter and confirmed */
#define BAD_BODIES_MAX 3

/* --- configuration --- */

int bot_parse_allowed(const char *s, int64_t *out, int cap, int *n)
{
	const char *p = s;

	*n = 0;
	while (p && *p) {
		char item[32];
		size_t k = 0;
		int64_t v;

		while (*p == ',' || *p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (!*p)
			break;
		while (*p && *p != ',' && *p != ' ' && *p != '\t' && *p != ';') {
			if (k + 1 < sizeof(item))
				item[k] = *p;
			k++;
			p++;
		}
		/* a longer item is no id, not the id its first characters make */
		item[k < sizeof(item) ? k : sizeof(item) - 1] = '\0';
		if (k >= sizeof(item) || cfg_parse_int(item, &v) < 0 || v <= 0)
			return err_set(ERR_INVALID,
				       "ORCH_ALLOWED_USERS: '%s' is not a numeric Telegram user id "
				       "(usernames change; ids do not)",
				       item);
		if (*n >= cap)
			return err_set(ERR_TOOBIG, "ORCH_ALLOWED_USERS: more than %d users", cap);
		out[(*n)++] = v;
	}
	return 0;
}

static int env_double(const char *name, double def, double min, double max, double *out)
{
	const char *v = getenv(name);
	char *end;
	double d;

	*out = def;
	if (!v || !*v)
		return 0;
	errno = 0;
	d = strtod(v, &end);
	if (errno || *end || d < min || d > max)
		return err_set(ERR_INVALID, "%s: '%s' is not a number in [%g, %g]", name, v, min, max);
	*out = d;
	return 0;
}

int bot_config_load(bot_config *out, const char *data_dir)
{
	char allowed[4096], def_key[1100];
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(def_key, sizeof(def_key), "%s/bot.key", data_dir && *data_dir ? data_dir : ".");
	rc = cfg_env_str("TELEGRAM_BOT_TOKEN", NULL, out->token, sizeof(out->token));
	if (rc == 0)
		rc = cfg_env_str("TELEGRAM_API_BASE", TG_DEFAULT_API_BASE, out->api_base,
				 sizeof(out->api_base));
	if (rc == 0)
		rc = cfg_env_str("ORCH_GRAPH", BOT_DEFAULT_GRAPH, out->graph, sizeof(out->graph));
	if (rc == 0)
		rc = cfg_env_str("ORCH_BOT_KEY_FILE", def_key, out->key_file, sizeof(out->key_file));
	if (rc == 0)
		rc = cfg_env_str("ORCH_ALLOWED_USERS", NULL, allowed, sizeof(allowed));
	if (rc == 0)
		rc = bot_parse_allowed(allowed, out->allowed, BOT_MAX_ALLOWED, &out->nallowed);
	if (rc == 0) {
		int64_t ms;
		rc = cfg_env_duration_ms("ORCH_TG_POLL_TIMEOUT", 50000, 0, 50000, &ms);
		out->poll_timeout_s = ms / 1000;
	}
	if (rc == 0)
		rc = env_double("ORCH_TG_RATE_SCALE", 1.0, 0.01, 1000.0, &out->rate_scale);
	if (rc == 0) {
		int64_t ms;
		rc = cfg_env_duration_ms("ORCH_APPROVAL_TTL", 86400000, 1000, 365LL * 86400000, &ms);
		out->approval_ttl_s = ms / 1000;
	}
	if (rc == 0)
		rc = cfg_env_duration_ms("ORCH_TG_TYPING", 4000, 0, 60000, &out->typing_ms);
	if (rc == 0)
		rc = cfg_env_duration_ms("ORCH_TG_BACKOFF", 1000, 1, 600000, &out->backoff_ms);
	if (rc == 0)
		rc = cfg_env_duration_ms("ORCH_TG_MAX_BACKOFF", 60000, 1, 3600000, &out->max_backoff_ms);
	if (rc == 0)
		rc = cfg_env_duration_ms("ORCH_BOT_STANDBY", 5000, 10, 600000, &out->standby_ms);
	return rc;
}

/* --- the bot --- */

typedef struct sockev {
	struct event *ev;
	curl_socket_t fd;
	struct sockev *next;
} sockev;

typedef struct answer {
	char *id;
	char text[200];
} answer;

struct bot {
	bot_config cfg;
	pg_pool *pool;
	unsigned char key[BOT_KEY_BYTES];
	tg_client *tg;            /* blocking calls from the loop thread */
	tg_bot_info me;
	bot_limiter *lim;
	bot_relay *relay;
	int relay_running;
	bot_drafts *drafts;

	struct event_base *base;
	struct event *ev_next;    /* the next step: poll, retry, standby */
	struct event *ev_tick;    /* housekeeping every second */
	struct event *ev_stop;
	struct event *ev_curl;    /* curl's timer */
	sockev *socks;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hdrs;
	buf url;                  /* holds the token: never logged */
	buf body;
	char *req;
	int64_t retry_after_hdr;
	int polling;
	int64_t poll_started_us;

	int started;              /* getMe and deleteWebhook done */
	int leader;
	int standby_logged;
	pg_conn *lock_conn;
	int64_t offset;           /* next getUpdates offset (0: none yet) */
	int failures, conflicts;
	int bad_bodies;           /* getUpdates bodies in a row that did not parse */
	pg_error tx_err;          /* the last failed ingest transaction's class */
	int64_t last_typing, last_expire;
	int fatal;
	int batches;              /* committed batches (for the test exit hook) */
	int exit_after;           /* ORCH_BOT_TEST_EXIT_AFTER_COMMIT */

	int pipefd[2];
	atomic_int stopping;
	atomic_int is_leader;
	atomic_int done;
	pthread_t thread;
	int thread_started;
	int thread_rc;
};

static void schedule(bot *b, int64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)((ms % 1000) * 1000)};

	evtimer_add(b->ev_next, &tv);
}

/* --- curl multi on libevent --- */

static void check_done(bot *b);

static void on_sock_event(evutil_socket_t fd, short kind, void *arg)
{
	bot *b = arg;
	int running = 0;
	int action = ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	curl_multi_socket_action(b->multi, fd, action, &running);
	check_done(b);
}

static void on_curl_timer(evutil_socket_t fd, short kind, void *arg)
{
	bot *b = arg;
	int running = 0;

	(void)fd;
	(void)kind;
	curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(b);
}

static void sock_forget(bot *b, curl_socket_t fd)
{
	for (sockev **p = &b->socks; *p; p = &(*p)->next)
		if ((*p)->fd == fd) {
			sockev *s = *p;
			*p = s->next;
			event_free(s->ev);
			free(s);
			return;
		}
}

static int curl_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	bot *b = userp;
	short kind;
	sockev *se;

	(void)e;
	(void)socketp;
	sock_forget(b, s);
	if (what == CURL_POLL_REMOVE)
		return 0;
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) |
		       EV_PERSIST);
	se = calloc(1, sizeof(*se));
	if (!se)
		return -1;
	se->fd = s;
	se->ev = event_new(b->base, s, kind, on_sock_event, b);
	if (!se->ev) {
		free(se);
		return -1;
	}
	event_add(se->ev, NULL);
	se->next = b->socks;
	b->socks = se;
	return 0;
}

static int curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	bot *b = userp;
	struct timeval tv;

	(void)m;
	if (timeout_ms < 0) {
		evtimer_del(b->ev_curl);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(b->ev_curl, &tv);
	return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	bot *b = arg;
	size_t len = size * n;

	if (buf_append(&b->body, data, len) < 0)
		return 0;
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	bot *b = arg;
	size_t len = size * n;

	if (len > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
		char v[32];
		size_t k = len - 12 < sizeof(v) - 1 ? len - 12 : sizeof(v) - 1;
		int64_t secs;
		memcpy(v, data + 12, k);
		v[k] = '\0';
		for (char *p = v; *p; p++)
			if (*p == '\r' || *p == '\n')
				*p = '\0';
		{
			char *s = v;
			while (*s == ' ')
				s++;
			if (cfg_parse_int(s, &secs) == 0 && secs >= 0)
				b->retry_after_hdr = secs * 1000;
		}
	}
	return len;
}

/* Starts one getUpdates on the multi handle. */
static int poll_start(bot *b)
{
	json_t *p = json_pack("{s:I,s:I,s:i,s:[ss]}", "offset", (json_int_t)b->offset, "timeout",
			      (json_int_t)b->cfg.poll_timeout_s, "limit", 100, "allowed_updates",
			      "message", "callback_query");

	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	free(b->req);
	b->req = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	if (!b->req)
		return err_set(ERR_NOMEM, "out of memory");
	buf_reset(&b->body);
	b->retry_after_hdr = -1;
	curl_easy_reset(b->easy);
	curl_easy_setopt(b->easy, CURLOPT_URL, b->url.data);
	curl_easy_setopt(b->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(b->easy, CURLOPT_HTTPHEADER, b->hdrs);
	curl_easy_setopt(b->easy, CURLOPT_POSTFIELDS, b->req);
	curl_easy_setopt(b->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(b->req));
	curl_easy_setopt(b->easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(b->easy, CURLOPT_TIMEOUT_MS, (long)((b->cfg.poll_timeout_s + 15) * 1000));
	curl_easy_setopt(b->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(b->easy, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(b->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(b->easy, CURLOPT_HEADERDATA, b);
	curl_easy_setopt(b->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(b->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(b->easy, CURLOPT_ACCEPT_ENCODING, "");
	if (curl_multi_add_handle(b->multi, b->easy) != CURLM_OK)
		return err_set(ERR_HTTP, "cannot start getUpdates");
	b->polling = 1;
	b->poll_started_us = util_mono_us();
	return 0;
}

static void poll_abort(bot *b)
{
	if (b->polling) {
		curl_multi_remove_handle(b->multi, b->easy);
		b->polling = 0;
	}
}

/* --- leadership --- */

static int lock_take(bot *b)
{
	char key[32];
	const char *params[1] = {key};
	PGresult *res = NULL;
	int rc, got;

	if (!b->lock_conn || pg_conn_broken(b->lock_conn)) {
		pg_conn_close(b->lock_conn);
		b->lock_conn = NULL;
		rc = pg_conn_open(&b->lock_conn, pg_pool_url(b->pool));
		if (rc < 0)
			return rc;
	}
	snprintf(key, sizeof(key), "%lld", (long long)((LOCK_CLASS << 32) ^ b->me.id));
	rc = pg_exec(b->lock_conn, &res, "SELECT pg_try_advisory_lock($1::bigint)", 1, params);
	got = rc == 0 && strcmp(pg_val(res, 0, 0), "t") == 0;
	PQclear(res);
	if (rc < 0)
		return rc;
	return got;
}

static void become_follower(bot *b, const char *why)
{
	if (b->leader && !atomic_load(&b->stopping))
		log_warn(MOD, "no longer the polling bot: %s", why);
	poll_abort(b);
	if (b->relay_running) {
		bot_relay_stop(b->relay);
		b->relay_running = 0;
	}
	b->leader = 0;
	atomic_store(&b->is_leader, 0);
	pg_conn_close(b->lock_conn);
	b->lock_conn = NULL;
}

/* --- ingestion --- */

static const pg_stmt STMT_STORE = {
	"bot_store_updates",
	"INSERT INTO bot_updates (update_id, kind, chat_id, user_id, body) "
	"SELECT x.u, x.k, nullif(x.c, 0), nullif(x.f, 0), x.b FROM jsonb_to_recordset($1::jsonb) "
	"AS x(u bigint, k text, c bigint, f bigint, b jsonb) "
	"ON CONFLICT (update_id) DO NOTHING RETURNING update_id",
	1,
};

static const pg_stmt STMT_REFUSE = {
	"bot_refuse",
	"INSERT INTO bot_refused (user_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING user_id",
	1,
};

static int allowed(const bot *b, int64_t user)
{
	for (int i = 0; i < b->cfg.nallowed; i++)
		if (b->cfg.allowed[i] == user)
			return 1;
	return 0;
}

static const char *kind_name(const bot *b, const tg_update *u)
{
	if ((u->kind == TG_UPD_TEXT || u->kind == TG_UPD_COMMAND || u->kind == TG_UPD_CALLBACK) &&
	    !allowed(b, u->from.id))
		return "refused";
	switch (u->kind) {
	case TG_UPD_TEXT: return "text";
	case TG_UPD_COMMAND: return "command";
	case TG_UPD_CALLBACK: return "callback";
	case TG_UPD_INVALID: return "invalid";
	default: return "other";
	}
}

typedef struct answers {
	answer *v;
	int n;
} answers;

static void answers_add(answers *a, const char *id, const char *text)
{
	answer *v = realloc(a->v, sizeof(*v) * (size_t)(a->n + 1));

	if (!v)
		return;
	a->v = v;
	a->v[a->n].id = strdup(id);
	snprintf(a->v[a->n].text, sizeof(a->v[a->n].text), "%s", text);
	if (a->v[a->n].id)
		a->n++;
}

static void answers_free(answers *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i].id);
	free(a->v);
	a->v = NULL;
	a->n = 0;
}

static void input_of(const tg_update *u, char *dest, size_t cap, bot_input *in)
{
	snprintf(dest, cap, "%lld", (long long)u->chat_id);
	memset(in, 0, sizeof(*in));
	in->channel = "telegram";
	in->dest = dest;
	in->text = u->text;
	in->user_id = u->from.id;
	in->user_name = u->from.name;
	in->username = u->from.username;
	in->message_id = u->message_id;
	in->update_id = u->update_id;
}

static int handle_callback(bot *b, pg_conn *c, const tg_update *u, answers *ans)
{
	bot_decision d;
	bot_actor who;
	char chat[32];
	int64_t id;
	int opt, rc;

	if (bot_cb_verify(b->key, u->callback_data, &id, &opt) < 0) {
		log_warn(MOD, "update %lld: refused a button from user %lld: %s",
			 (long long)u->update_id, (long long)u->from.id, err_last());
		err_clear();
		answers_add(ans, u->callback_id, "This button is not valid.");
		return 0;
	}
	memset(&who, 0, sizeof(who));
	who.id = u->from.id;
	snprintf(who.name, sizeof(who.name), "%s", u->from.name);
	snprintf(who.username, sizeof(who.username), "%s", u->from.username);
	who.channel = "telegram";
	snprintf(chat, sizeof(chat), "%lld", (long long)u->chat_id);
	rc = bot_approval_decide(c, id, opt, &who, chat, b->cfg.allowed, b->cfg.nallowed, &d);
	if (rc < 0)
		return rc;
	if (d.outcome != BOT_DEC_OK) {
		log_info(MOD, "update %lld: approval %lld not decided by user %lld: %s",
			 (long long)u->update_id, (long long)id, (long long)u->from.id, d.reason);
		answers_add(ans, u->callback_id, d.reason);
		return 0;
	}
	{
		buf html;
		json_t *edit;
		int64_t mid = d.message_id > 0 ? d.message_id : u->cb_message_id;
		char msg[200];

		buf_init(&html, 0);
		tg_html_escape(&html, d.question, strlen(d.question));
		buf_puts(&html, "\n\n<b>");
		tg_html_escape(&html, d.label, strlen(d.label));
		buf_puts(&html, "</b> — ");
		tg_html_escape(&html, who.name, strlen(who.name));
		edit = json_pack("{s:I,s:s,s:s}", "message_id", (json_int_t)mid, "html",
				 buf_cstr(&html), "keyboard", "remove");
		rc = edit ? bot_emit(c, d.thread_id, "telegram.edit", d.chat, edit)
			  : err_set(ERR_NOMEM, "out of memory");
		json_decref(edit);
		buf_free(&html);
		snprintf(msg, sizeof(msg), "Decided: %s", d.label);
		answers_add(ans, u->callback_id, msg);
		log_info(MOD, "approval %lld decided '%s' by user %lld", (long long)id, d.option_id,
			 (long long)u->from.id);
	}
	return rc;
}

static int refuse_user(pg_conn *c, const tg_update *u)
{
	char uid[24], dest[32], msg[400];
	const char *params[1] = {uid};
	PGresult *res = NULL;
	int rc;

	snprintf(uid, sizeof(uid), "%lld", (long long)u->from.id);
	rc = pg_exec_stmt(c, &res, &STMT_REFUSE, params);
	if (rc == 0 && pg_rows(res) > 0) {
		log_warn(MOD, "user %lld is not in ORCH_ALLOWED_USERS: refused once, ignored from now on",
			 (long long)u->from.id);
		snprintf(dest, sizeof(dest), "%lld", (long long)u->chat_id);
		snprintf(msg, sizeof(msg),
			 "Sorry, this bot is private and answers only its owners. (Your Telegram "
			 "user id is %lld; an owner can add it to ORCH_ALLOWED_USERS.)",
			 (long long)u->from.id);
		rc = bot_say(c, "telegram", dest, 0, msg);
	}
	PQclear(res);
	return rc;
}

/* Handles the fresh updates among u[0..n) inside the open transaction. */
static int handle_fresh(bot *b, pg_conn *c, tg_update *u, int n, const char *fresh,
			answers *ans)
{
	bot_batch batch;
	char dest[32], idem[48];
	int rc = 0;

	bot_batch_init(&batch);
	for (int i = 0; i < n && rc == 0; i++) {
		bot_input in;

		if (!fresh[i])
			continue;
		if (u[i].kind == TG_UPD_INVALID) {
			char ref[24], why[160];
			char *body = u[i].raw ? json_dumps(u[i].raw, JSON_COMPACT) : NULL;

			snprintf(ref, sizeof(ref), "%lld", (long long)u[i].update_id);
			snprintf(why, sizeof(why),
				 "a %s update that lacks a field it needs, or has one of the wrong "
				 "type",
				 u[i].what);
			rc = eng_dead_letter(c, ENG_DL_TELEGRAM, ref, why, body, body ? strlen(body) : 0,
					     NULL);
			free(body);
			continue;
		}
		if (u[i].kind == TG_UPD_OTHER) {
			log_debug(MOD, "update %lld (%s) stored and ignored", (long long)u[i].update_id,
				  u[i].what);
			continue;
		}
		if (!allowed(b, u[i].from.id)) {
			if (u[i].kind == TG_UPD_CALLBACK)
				answers_add(ans, u[i].callback_id, "You are not allowed to use this bot.");
			else
				rc = refuse_user(c, &u[i]);
			continue;
		}
		input_of(&u[i], dest, sizeof(dest), &in);
		if (u[i].kind == TG_UPD_TEXT) {
			snprintf(idem, sizeof(idem), "tg:u:%lld", (long long)u[i].update_id);
			rc = bot_batch_add(&batch, &in, idem);
			continue;
		}
		rc = bot_batch_flush(&batch, c, b->cfg.graph, NULL, NULL);
		if (rc < 0)
			break;
		if (u[i].kind == TG_UPD_COMMAND)
			rc = bot_command(c, b->cfg.graph, &in, u[i].command, u[i].args);
		else if (u[i].kind == TG_UPD_CALLBACK)
			rc = handle_callback(b, c, &u[i], ans);
	}
	if (rc == 0)
		rc = bot_batch_flush(&batch, c, b->cfg.graph, NULL, NULL);
	bot_batch_clear(&batch);
	return rc;
}

/* One transaction: store u[0..n), handle the fresh ones. */
static int ingest_tx(bot *b, pg_conn *c, tg_update *u, int n, answers *ans)
{
	json_t *rows = json_array();
	char *rows_s = NULL, *fresh = calloc((size_t)(n > 0 ? n : 1), 1);
	PGresult *res = NULL;
	int rc;

	if (!rows || !fresh) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < n; i++) {
		json_t *r = json_pack("{s:I,s:s,s:I,s:I,s:O}", "u", (json_int_t)u[i].update_id, "k",
				      kind_name(b, &u[i]), "c", (json_int_t)u[i].chat_id, "f",
				      (json_int_t)u[i].from.id, "b", u[i].raw ? u[i].raw : json_null());
		if (!r || json_array_append_new(rows, r) < 0) {
			rc = err_set(ERR_NOMEM, "out of memory");
			goto done;
		}
	}
	rows_s = json_dumps(rows, JSON_COMPACT);
	if (!rows_s) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc < 0)
		goto done;
	{
		const char *params[1] = {rows_s};
		rc = pg_exec_stmt(c, &res, &STMT_STORE, params);
	}
	for (int k = 0; rc == 0 && k < pg_rows(res); k++) {
		int64_t id = pg_int(res, k, 0);
		for (int i = 0; i < n; i++)
			if (u[i].update_id == id)
				fresh[i] = 1;
	}
	if (rc == 0)
		rc = handle_fresh(b, c, u, n, fresh, ans);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0) {
		char why[1024];
		/* the failure's class, before ROLLBACK clears it */
		pg_last_error(&b->tx_err);
		snprintf(why, sizeof(why), "%s", err_last());
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
		rc = err_set(rc, "%s", why);
	}
done:
	PQclear(res);
	json_decref(rows);
	free(rows_s);
	free(fresh);
	return rc;
}

static void send_answers(bot *b, answers *ans)
{
	for (int i = 0; i < ans->n; i++) {
		tg_reply rep;
		bot_limit_note(b->lim, 0, util_mono_ms());
		if (tg_answer_callback(b->tg, ans->v[i].id, ans->v[i].text, 0, &rep) < 0)
			log_warn(MOD, "answerCallbackQuery failed: %s", err_last());
	}
}

/* True when a failure to store or handle updates is the updates' own fault
 * (bad data, a bug handling them), not the database's: a lost connection,
 * a full disk or a serialization failure must not cost anyone's message,
 * so those batches stay unconfirmed and are tried again. */
static int item_fault(const bot *b, pg_conn *c, int rc)
{
	if (pg_conn_broken(c))
		return 0;
	if (rc != ERR_DB)
		return 1;
	switch (b->tx_err.cls) {
	case PG_ERRC_CONNECTION:
	case PG_ERRC_RESOURCES:
	case PG_ERRC_SERIALIZATION:
		return 0;
	default:
		return 1;
	}
}

static const pg_stmt STMT_STORE_DEAD = {
	"bot_store_dead",
	"INSERT INTO bot_updates (update_id, kind, chat_id, user_id) VALUES ($1, 'dead', "
	"nullif($2::bigint, 0), nullif($3::bigint, 0)) ON CONFLICT (update_id) DO NOTHING",
	3,
};

/* An update that could not be handled: stored as a dead letter with the
 * reason (its update_id taken, so a redelivery changes nothing), in one
 * transaction. 0 when done, or when even that failed for a reason of the
 * update's own (logged: it is skipped so it blocks nothing behind it). */
static int set_aside(bot *b, pg_conn *c, const tg_update *u, const char *reason)
{
	char why[1024], ref[24], uid[24], chat[24], from[24];
	const char *params[3] = {uid, chat, from};
	char *body = u->raw ? json_dumps(u->raw, JSON_COMPACT) : NULL;
	int rc;

	snprintf(why, sizeof(why), "%s", reason);
	snprintf(ref, sizeof(ref), "%lld", (long long)u->update_id);
	snprintf(uid, sizeof(uid), "%lld", (long long)u->update_id);
	snprintf(chat, sizeof(chat), "%lld", (long long)u->chat_id);
	snprintf(from, sizeof(from), "%lld", (long long)u->from.id);
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc == 0)
		rc = pg_exec_stmt(c, NULL, &STMT_STORE_DEAD, params);
	if (rc == 0)
		rc = eng_dead_letter(c, ENG_DL_TELEGRAM, ref, why, body, body ? strlen(body) : 0,
				     NULL);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0) {
		char again[1024];
		int own;

		pg_last_error(&b->tx_err);
		own = item_fault(b, c, rc);
		snprintf(again, sizeof(again), "%s", err_last());
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
		if (own) {
			log_error(MOD, "update %lld could not be handled (%s) nor set aside (%s); "
				       "skipped so that it blocks nothing",
				  (long long)u->update_id, why, again);
			rc = 0;
		} else {
			rc = err_set(rc, "%s", again);
		}
	}
	free(body);
	return rc;
}

/* Stores a batch durably; 0 when every update is stored (or skipped for
 * good), so the offset may move past them. */
static int ingest(bot *b, tg_update *u, int n)
{
	answers ans = {0};
	pg_conn *c = NULL;
	int rc, rc_first;

	if (n == 0)
		return 0;
	rc = pg_pool_acquire(b->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = rc_first = ingest_tx(b, c, u, n, &ans);
	if (rc < 0 && item_fault(b, c, rc)) {
		/* one bad update must not stop the others: one by one, and one that
		 * still fails is set aside with its reason and confirmed */
		if (n > 1)
			log_warn(MOD, "storing a batch of %d updates failed (%s); storing them one "
				      "by one",
				 n, err_last());
		answers_free(&ans);
		rc = 0;
		for (int i = 0; i < n && rc == 0; i++) {
			rc = n > 1 ? ingest_tx(b, c, &u[i], 1, &ans) : rc_first;
			if (rc < 0 && item_fault(b, c, rc))
				rc = set_aside(b, c, &u[i], err_last());
			rc_first = 0;
		}
	}
	pg_pool_release(b->pool, c);
	if (rc == 0) {
		met_add(met_with(met_counter("orch_telegram_updates_total",
					     "Telegram updates stored (ingested)", NULL)), n);
		b->batches++;
		if (b->exit_after > 0 && b->batches >= b->exit_after) {
			log_warn(MOD, "ORCH_BOT_TEST_EXIT_AFTER_COMMIT: exiting after %d stored batch(es) "
				      "without confirming them",
				 b->batches);
			_exit(75);
		}
		send_answers(b, &ans);
	}
	answers_free(&ans);
	return rc;
}

/* --- the loop --- */

static int64_t backoff(bot *b, int attempt, int64_t base)
{
	return util_backoff_ms(attempt, base, b->cfg.max_backoff_ms);
}

/* The lowest and highest "update_id": N in a body that does not parse as
 * JSON. 0 when there is none. */
static int scan_update_ids(const char *body, size_t len, int64_t *lo, int64_t *hi)
{
	static const char key[] = "\"update_id\"";
	const char *p = body, *end = body + len;
	int found = 0;

	*lo = *hi = 0;
	while (p && p < end) {
		const char *k = memmem(p, (size_t)(end - p), key, sizeof(key) - 1);
		int64_t v = 0;
		int digits = 0;

		if (!k)
			break;
		p = k + sizeof(key) - 1;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
			p++;
		if (p >= end || *p != ':')
			continue;
		p++;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
			p++;
		while (p < end && *p >= '0' && *p <= '9' && digits < 18) {
			v = v * 10 + (*p - '0');
			p++;
			digits++;
		}
		if (!digits)
			continue;
		if (!found || v < *lo)
			*lo = v;
		if (!found || v > *hi)
			*hi = v;
		found = 1;
	}
	return found;
}

/* A getUpdates body that kept failing to parse: the updates it names are
 * set aside as one dead letter and confirmed, so polling goes on. 1 when
 * the offset moved, 0 when the body names no update (nothing to confirm:
 * polling backs off), < 0 when the dead letter could not be stored. */
static int salvage_body(bot *b, const char *why)
{
	int64_t lo, hi;
	char ref[64], reason[1024];
	pg_conn *c = NULL;
	int rc;

	if (!scan_update_ids(b->body.data ? b->body.data : "", b->body.len, &lo, &hi) ||
	    hi + 1 <= b->offset)
		return 0;
	snprintf(ref, sizeof(ref), "getUpdates:%lld-%lld", (long long)lo, (long long)hi);
	snprintf(reason, sizeof(reason),
		 "the getUpdates reply did not parse %d times in a row (%s); updates %lld to %lld "
		 "were confirmed unread",
		 b->bad_bodies, why, (long long)lo, (long long)hi);
	rc = pg_pool_acquire(b->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = eng_dead_letter(c, ENG_DL_TELEGRAM, ref, reason, b->body.data, b->body.len, NULL);
	pg_pool_release(b->pool, c);
	if (rc < 0)
		return rc;
	b->offset = hi + 1;
	return 1;
}

static void on_poll_done(bot *b, CURLcode cc, long status)
{
	json_t *result = NULL;
	tg_update *u = NULL;
	tg_reply rep;
	int n = 0, rc;
	int64_t max_id = b->offset > 0 ? b->offset - 1 : 0, t0;

	if (cc != CURLE_OK) {
		rc = err_set(cc == CURLE_OPERATION_TIMEDOUT ? ERR_TIMEOUT : ERR_HTTP,
			     "getUpdates: %s", curl_easy_strerror(cc));
		memset(&rep, 0, sizeof(rep));
	} else {
		rc = tg_parse_reply(status, b->body.data, b->body.len, b->retry_after_hdr, &result, &rep);
	}
	if (rc == 0)
		rc = tg_updates_parse(result, b->me.username, &u, &n, &max_id);
	json_decref(result);
	if (rc == ERR_AUTH) {
		log_error(MOD, "Telegram refused the bot token (401 Unauthorized): check "
			       "TELEGRAM_BOT_TOKEN (a token from @BotFather looks like 123456:ABC-...); "
			       "the bot stops");
		health_report(PART, HEALTH_DOWN, "Telegram refused the bot token (401): check "
						 "TELEGRAM_BOT_TOKEN");
		b->fatal = ERR_AUTH;
		event_base_loopbreak(b->base);
		return;
	}
	if (rc == ERR_PARSE && status == 200) {
		char why[512];
		snprintf(why, sizeof(why), "%s", err_last());
		if (++b->bad_bodies >= BAD_BODIES_MAX) {
			int moved = salvage_body(b, why);
			if (moved > 0) {
				b->bad_bodies = 0;
				b->failures = 0;
				schedule(b, 0);
				return;
			}
			if (moved < 0)
				log_warn(MOD, "setting an unreadable getUpdates reply aside failed: %s",
					 err_last());
			err_set(ERR_PARSE, "%s", why);
		}
	} else {
		b->bad_bodies = 0;
	}
	if (rc == ERR_CONFLICT) {
		int64_t d = backoff(b, b->conflicts++, b->cfg.backoff_ms * 5);
		log_warn(MOD, "getUpdates conflict (%s): another process polls with this token, or a "
			      "webhook is set; backing off %lld ms",
			 rep.description, (long long)d);
		health_report(PART, HEALTH_DEGRADED,
			      "getUpdates conflict: another process polls with this token, or a "
			      "webhook is set (%s)",
			      rep.description);
		if (rep.why == TG_WHY_WEBHOOK && tg_delete_webhook(b->tg) < 0)
			log_warn(MOD, "deleteWebhook failed: %s", err_last());
		schedule(b, d);
		return;
	}
	if (rc == ERR_BUSY) {
		int64_t d = rep.retry_after_ms > 0 ? rep.retry_after_ms : 1000;
		log_warn(MOD, "getUpdates: too many requests; retrying in %lld ms as told", (long long)d);
		schedule(b, d);
		return;
	}
	if (rc < 0) {
		int64_t d = backoff(b, b->failures++, b->cfg.backoff_ms);
		log_warn(MOD, "getUpdates failed (%s); retrying in %lld ms", err_last(), (long long)d);
		health_report(PART, HEALTH_DEGRADED, "getUpdates failed %d time(s) in a row: %s",
			      b->failures, err_last());
		schedule(b, d);
		return;
	}
	b->conflicts = 0;
	t0 = util_mono_us();
	rc = ingest(b, u, n);
	if (n > 0)
		log_debug(MOD, "%d update(s) stored in %.1f ms (getUpdates took %.1f ms)", n,
			  (double)(util_mono_us() - t0) / 1000.0,
			  (double)(t0 - b->poll_started_us) / 1000.0);
	if (rc < 0) {
		int64_t d = backoff(b, b->failures++, b->cfg.backoff_ms);
		log_error(MOD, "could not store %d update(s) (%s); they stay unconfirmed, retrying in "
			       "%lld ms",
			  n, err_last(), (long long)d);
		health_report(PART, HEALTH_DEGRADED,
			      "cannot store updates (%d attempts in a row; they stay unconfirmed): %s",
			      b->failures, err_last());
		tg_updates_free(u, n);
		schedule(b, d);
		return;
	}
	tg_updates_free(u, n);
	b->failures = 0;
	health_report(PART, HEALTH_OK, "polling");
	if (max_id + 1 > b->offset)
		b->offset = max_id + 1;
	schedule(b, 0);
}

static void check_done(bot *b)
{
	CURLMsg *msg;
	int left;

	for (msg = curl_multi_info_read(b->multi, &left); msg;
	     msg = curl_multi_info_read(b->multi, &left)) {
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == b->easy) {
			CURLcode cc = msg->data.result;
			long status = 0;
			curl_easy_getinfo(b->easy, CURLINFO_RESPONSE_CODE, &status);
			curl_multi_remove_handle(b->multi, b->easy);
			b->polling = 0;
			on_poll_done(b, cc, status);
			return; /* msg is gone once the handle was removed */
		}
	}
}

/* The next step of the state machine: start, lead, poll. */
static void on_next(evutil_socket_t fd, short kind, void *arg)
{
	bot *b = arg;
	int rc;

	(void)fd;
	(void)kind;
	if (atomic_load(&b->stopping) || b->polling)
		return;
	if (!b->started) {
		rc = tg_get_me(b->tg, &b->me);
		if (rc == ERR_AUTH) {
			log_error(MOD, "Telegram refused the bot token (401 Unauthorized): check "
				       "TELEGRAM_BOT_TOKEN; the bot stops");
			b->fatal = ERR_AUTH;
			event_base_loopbreak(b->base);
			return;
		}
		if (rc == 0)
			rc = tg_delete_webhook(b->tg);
		if (rc < 0) {
			int64_t d = backoff(b, b->failures++, b->cfg.backoff_ms);
			log_warn(MOD, "cannot reach Telegram (%s); retrying in %lld ms", err_last(),
				 (long long)d);
			schedule(b, d);
			return;
		}
		b->failures = 0;
		b->started = 1;
		/* Telegram's command menu lists what /help lists; a refusal
		 * leaves the menu as it was and is not retried */
		if (bot_commands_publish(b->tg) < 0)
			log_warn(MOD, "setMyCommands: %s (the command menu stays as it was)",
				 err_last());
		log_info(MOD, "Telegram bot @%s (id %lld) ready; %d allowed user(s); graph '%s'",
			 b->me.username, (long long)b->me.id, b->cfg.nallowed, b->cfg.graph);
		if (b->cfg.nallowed == 0)
			log_warn(MOD, "ORCH_ALLOWED_USERS is empty: every user is refused (the refusal "
				      "tells each person their id)");
	}
	if (b->leader && !b->relay_running) {
		/* a relay that could not start: try again with each poll */
		if (bot_relay_start(b->relay) == 0) {
			b->relay_running = 1;
			health_forget("bot.relay");
		}
	}
	if (!b->leader) {
		rc = lock_take(b);
		if (rc <= 0) {
			if (rc < 0)
				health_report(PART, HEALTH_DEGRADED, "cannot take the bot lock: %s",
					      err_last());
			else
				health_report(PART, HEALTH_OK, "standing by: another bot process polls");
			if (!b->standby_logged)
				log_info(MOD, rc < 0 ? "cannot take the bot lock (%s); retrying"
						     : "another bot process is polling; standing by%s",
					 rc < 0 ? err_last() : "");
			b->standby_logged = 1;
			schedule(b, b->cfg.standby_ms);
			return;
		}
		b->leader = 1;
		b->standby_logged = 0;
		atomic_store(&b->is_leader, 1);
		log_info(MOD, "this process polls Telegram and relays the outbox");
		health_report(PART, HEALTH_OK, "polling");
		if (bot_relay_start(b->relay) < 0) {
			log_error(MOD, "cannot start the relay: %s", err_last());
			health_report("bot.relay", HEALTH_DOWN, "cannot start: %s", err_last());
		} else {
			b->relay_running = 1;
			health_forget("bot.relay");
		}
	}
	rc = poll_start(b);
	if (rc < 0) {
		log_error(MOD, "%s", err_last());
		schedule(b, backoff(b, b->failures++, b->cfg.backoff_ms));
	}
}

static void typing(bot *b)
{
	pg_conn *c = NULL;
	json_t *chats = NULL, *chat;
	size_t i;

	if (pg_pool_acquire(b->pool, 1000, &c) < 0)
		return;
	if (eng_report_running_chats(c, "telegram", 100, &chats) < 0)
		log_warn(MOD, "typing: %s", err_last());
	pg_pool_release(b->pool, c);
	json_array_foreach(chats, i, chat) {
		tg_reply rep;
		if (bot_limit_wait(b->lim, 0, util_mono_ms()) > 0)
			break;
		bot_limit_note(b->lim, 0, util_mono_ms());
		if (tg_send_chat_action(b->tg, json_string_value(chat), "typing", &rep) < 0)
			log_debug(MOD, "sendChatAction: %s", err_last());
	}
	json_decref(chats);
}

static void on_tick(evutil_socket_t fd, short kind, void *arg)
{
	bot *b = arg;
	int64_t now = util_mono_ms();

	(void)fd;
	(void)kind;
	if (!b->leader)
		return;
	if (!b->lock_conn || pg_conn_broken(b->lock_conn) ||
	    pg_exec(b->lock_conn, NULL, "SELECT 1", 0, NULL) < 0) {
		become_follower(b, "the connection holding the bot lock broke");
		schedule(b, b->cfg.standby_ms);
		return;
	}
	if (b->cfg.typing_ms > 0 && now - b->last_typing >= b->cfg.typing_ms) {
		b->last_typing = now;
		typing(b);
	}
	if (now - b->last_expire >= EXPIRE_EVERY_MS) {
		pg_conn *c = NULL;
		b->last_expire = now;
		if (pg_pool_acquire(b->pool, 1000, &c) == 0) {
			if (bot_approvals_expire(c, "telegram", NULL) < 0)
				log_warn(MOD, "expiring approvals: %s", err_last());
			pg_pool_release(b->pool, c);
		}
	}
}

static void on_stop(evutil_socket_t fd, short kind, void *arg)
{
	bot *b = arg;
	char tmp[16];

	(void)kind;
	while (read(fd, tmp, sizeof(tmp)) > 0)
		;
	event_base_loopbreak(b->base);
}

int bot_new(bot **out, pg_pool *pool, const bot_config *cfg)
{
	bot_limits lim;
	bot_relay_options ro;
	bot *b = calloc(1, sizeof(*b));
	int rc;

	*out = NULL;
	if (!b)
		return err_set(ERR_NOMEM, "out of memory");
	b->cfg = *cfg;
	b->pool = pool;
	b->pipefd[0] = b->pipefd[1] = -1;
	buf_init(&b->url, 4096);
	buf_init(&b->body, MAX_BODY);
	if (!b->cfg.poll_timeout_s && !getenv("ORCH_TG_POLL_TIMEOUT"))
		b->cfg.poll_timeout_s = 50;
	if (b->cfg.backoff_ms <= 0)
		b->cfg.backoff_ms = 1000;
	if (b->cfg.max_backoff_ms <= 0)
		b->cfg.max_backoff_ms = 60000;
	if (b->cfg.standby_ms <= 0)
		b->cfg.standby_ms = 5000;
	if (!b->cfg.graph[0])
		snprintf(b->cfg.graph, sizeof(b->cfg.graph), "%s", BOT_DEFAULT_GRAPH);
	{
		const char *x = getenv("ORCH_BOT_TEST_EXIT_AFTER_COMMIT");
		int64_t v;
		if (x && *x && cfg_parse_int(x, &v) == 0 && v > 0)
			b->exit_after = (int)v;
	}
	rc = bot_key_load(cfg->key_file, b->key);
	if (rc < 0)
		goto fail;
	rc = tg_client_new(&b->tg, cfg->api_base, cfg->token);
	if (rc < 0)
		goto fail;
	rc = tg_method_url(b->tg, "getUpdates", &b->url);
	if (rc < 0)
		goto fail;
	bot_limits_default(&lim, cfg->rate_scale > 0 ? cfg->rate_scale : 1.0);
	rc = bot_limiter_new(&b->lim, &lim);
	if (rc < 0)
		goto fail;
	memset(&ro, 0, sizeof(ro));
	ro.api_base = cfg->api_base;
	ro.token = cfg->token;
	ro.limiter = b->lim;
	ro.key = b->key;
	ro.approval_ttl_s = cfg->approval_ttl_s;
	ro.poll_ms = lim.chat_gap_ms / 4 > 10 ? lim.chat_gap_ms / 4 : 10;
	rc = bot_relay_new(&b->relay, pool, &ro);
	if (rc < 0)
		goto fail;
	if (cfg->hub) {
		bot_drafts_options dopt = {
			.api_base = cfg->api_base,
			.token = cfg->token,
			.limiter = b->lim,
			.hub = cfg->hub,
			.leader = &b->is_leader,
		};
		rc = bot_drafts_start(&b->drafts, &dopt);
		if (rc < 0)
			goto fail;
	}
	b->multi = curl_multi_init();
	b->easy = curl_easy_init();
	b->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (b->hdrs)
		b->hdrs = curl_slist_append(b->hdrs, "Expect:");
	b->base = event_base_new();
	if (!b->multi || !b->easy || !b->hdrs || !b->base || pipe2(b->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
		rc = err_set(ERR_NOMEM, "cannot set up the bot's event loop");
		goto fail;
	}
	b->ev_next = evtimer_new(b->base, on_next, b);
	b->ev_curl = evtimer_new(b->base, on_curl_timer, b);
	b->ev_tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
	b->ev_stop = event_new(b->base, b->pipefd[0], EV_READ | EV_PERSIST, on_stop, b);
	if (!b->ev_next || !b->ev_curl || !b->ev_tick || !b->ev_stop) {
		rc = err_set(ERR_NOMEM, "cannot set up the bot's event loop");
		goto fail;
	}
	curl_multi_setopt(b->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
	curl_multi_setopt(b->multi, CURLMOPT_SOCKETDATA, b);
	curl_multi_setopt(b->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(b->multi, CURLMOPT_TIMERDATA, b);
	*out = b;
	return 0;
fail:
	bot_free(b);
	return rc;
}

int bot_run(bot *b)
{
	struct timeval second = {.tv_sec = 1, .tv_usec = 0};

	b->fatal = 0;
	event_add(b->ev_stop, NULL);
	event_add(b->ev_tick, &second);
	schedule(b, 0);
	if (!atomic_load(&b->stopping))
		event_base_dispatch(b->base);
	become_follower(b, "stopping");
	event_del(b->ev_tick);
	event_del(b->ev_next);
	event_del(b->ev_stop);
	if (!b->fatal)
		health_forget(PART); /* stopped on purpose */
	health_forget("bot.relay");
	return b->fatal;
}

static void *bot_thread(void *arg)
{
	bot *b = arg;

	b->thread_rc = bot_run(b);
	atomic_store(&b->done, 1);
	return NULL;
}

int bot_start(bot *b)
{
	if (b->thread_started)
		return 0;
	/* a bot stopped and joined before runs again: its stop request is spent */
	{
		char tmp[16];
		while (read(b->pipefd[0], tmp, sizeof(tmp)) > 0)
			;
	}
	atomic_store(&b->stopping, 0);
	atomic_store(&b->done, 0);
	if (pthread_create(&b->thread, NULL, bot_thread, b) != 0)
		return err_set(ERR_IO, "cannot start the bot thread");
	b->thread_started = 1;
	return 0;
}

void bot_stop(bot *b)
{
	if (!b)
		return;
	atomic_store(&b->stopping, 1);
	if (b->pipefd[1] >= 0) {
		ssize_t w = write(b->pipefd[1], "x", 1);
		(void)w;
	}
}

int bot_join(bot *b)
{
	if (!b || !b->thread_started)
		return 0;
	pthread_join(b->thread, NULL);
	b->thread_started = 0;
	return b->thread_rc;
}

int bot_done(const bot *b)
{
	return b && atomic_load(&((bot *)b)->done);
}

int bot_is_leader(const bot *b)
{
	return b && atomic_load(&((bot *)b)->is_leader);
}

void bot_free(bot *b)
{
	if (!b)
		return;
	if (b->thread_started) {
		bot_stop(b);
		bot_join(b);
	}
	poll_abort(b);
	bot_drafts_stop(b->drafts);
	bot_relay_free(b->relay);
	if (b->multi)
		curl_multi_cleanup(b->multi);
	while (b->socks)
		sock_forget(b, b->socks->fd);
	if (b->easy)
		curl_easy_cleanup(b->easy);
	curl_slist_free_all(b->hdrs);
	if (b->ev_next)
		event_free(b->ev_next);
	if (b->ev_curl)
		event_free(b->ev_curl);
	if (b->ev_tick)
		event_free(b->ev_tick);
	if (b->ev_stop)
		event_free(b->ev_stop);
	if (b->base)
		event_base_free(b->base);
	if (b->pipefd[0] >= 0)
		close(b->pipefd[0]);
	if (b->pipefd[1] >= 0)
		close(b->pipefd[1]);
	pg_conn_close(b->lock_conn);
	tg_client_free(b->tg);
	bot_limiter_free(b->lim);
	buf_free_wipe(&b->url);
	buf_free(&b->body);
	free(b->req);
	sodium_memzero(b->key, sizeof(b->key));
	sodium_memzero(b->cfg.token, sizeof(b->cfg.token));
	free(b);
}
