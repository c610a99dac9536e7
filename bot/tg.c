#include "bot/tg.h"
#include "core/err.h"
#include "core/http.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/utf8.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tg_client {
	http_client *http;
	char base[512];
	char *token;
};

int tg_client_new(tg_client **out, const char *api_base, const char *token)
{
	tg_client *c;
	size_t n;
	int rc;

	*out = NULL;
	if (!token || !*token)
		return err_set(ERR_INVALID, "no Telegram bot token (TELEGRAM_BOT_TOKEN)");
	for (const char *p = token; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z') || *p == ':' || *p == '_' || *p == '-'))
			return err_set(ERR_INVALID, "the Telegram bot token has a character a token "
						    "never has (expected digits, ':' and letters)");
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(ERR_NOMEM, "out of memory");
	snprintf(c->base, sizeof(c->base), "%s", api_base && *api_base ? api_base : TG_DEFAULT_API_BASE);
	n = strlen(c->base);
	while (n > 0 && c->base[n - 1] == '/')
		c->base[--n] = '\0';
	c->token = strdup(token);
	rc = c->token ? http_client_new(&c->http) : err_set(ERR_NOMEM, "out of memory");
	if (rc < 0) {
		tg_client_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void tg_client_free(tg_client *c)
{
	if (!c)
		return;
	if (c->token) {
		sodium_memzero(c->token, strlen(c->token));
		free(c->token);
	}
	http_client_free(c->http);
	free(c);
}

int tg_method_url(const tg_client *c, const char *method, buf *out)
{
	return buf_printf(out, "%s/bot%s/%s", c->base, c->token, method);
}

/* The longest wait a 429 is obeyed for: a day (a value beyond it is a
 * broken reply, not a plan). */
#define TG_RETRY_MAX_MS (86400LL * 1000)

static void reply_init(tg_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->retry_after_ms = -1;
}

/* Telegram's descriptions that mean more than their error_code: the one
 * place that reads the text (case-insensitive substrings). */
static const struct {
	int code;
	const char *text;
	tg_why why;
} WHY[] = {
	{400, "message is not modified", TG_WHY_NOT_MODIFIED},
	{400, "can't parse entities", TG_WHY_BAD_ENTITIES},
	{409, "webhook", TG_WHY_WEBHOOK},
};

static tg_why why_of(int code, const char *description)
{
	for (size_t i = 0; i < sizeof(WHY) / sizeof(WHY[0]); i++)
		if (WHY[i].code == code && strcasestr(description, WHY[i].text))
			return WHY[i].why;
	return TG_WHY_OTHER;
}

int tg_parse_reply(long http_status, const char *body, size_t len, int64_t retry_after_hdr,
		   json_t **out_result, tg_reply *reply)
{
	tg_reply local;
	json_error_t jerr;
	json_t *j = NULL, *ok, *params;
	const char *desc;
	char why[200];
	int code, rc, repaired = 0;

	if (!reply)
		reply = &local;
	reply_init(reply);
	reply->http_status = http_status;
	if (out_result)
		*out_result = NULL;
	/* the Bot API writes what a client sent (callback data, text) without
	 * checking it: one ill-formed byte must cost that character, not the
	 * batch */
	j = jx_loadb_lenient(body, body ? len : 0, 0, &jerr, &repaired);
	if (repaired > 0)
		log_warn("bot", "a Bot API reply held %d ill-formed character(s) (not UTF-8, or a "
				"lone surrogate or NUL): each was replaced by U+FFFD", repaired);
	ok = j ? json_object_get(j, "ok") : NULL;
	if (!json_is_boolean(ok)) {
		json_decref(j);
		utf8_excerpt(why, sizeof(why), jerr.text, strlen(jerr.text), sizeof(why));
		if (http_status >= 500 || http_status == 0)
			return err_set(ERR_HTTP, "Telegram answered HTTP %ld without an API reply",
				       http_status);
		if (http_status == 401)
			return err_set(ERR_AUTH, "Telegram refused the bot token (401 Unauthorized)");
		if (http_status == 429) {
			reply->retry_after_ms = retry_after_hdr <= 0 ? 1000
						: retry_after_hdr < TG_RETRY_MAX_MS ? retry_after_hdr
										    : TG_RETRY_MAX_MS;
			return err_set(ERR_BUSY, "Telegram: too many requests (429)");
		}
		return err_set(ERR_PARSE, "Telegram answered HTTP %ld with a body that is not a Bot "
					  "API reply (%s)",
			       http_status, j ? "no \"ok\" field" : why);
	}
	if (json_is_true(ok)) {
		if (out_result) {
			*out_result = json_incref(json_object_get(j, "result"));
			if (!*out_result)
				*out_result = json_true();
		}
		json_decref(j);
		return 0;
	}
	code = (int)json_integer_value(json_object_get(j, "error_code"));
	if (code == 0)
		code = (int)http_status;
	desc = json_string_value(json_object_get(j, "description"));
	reply->error_code = code;
	snprintf(reply->description, sizeof(reply->description), "%s", desc ? desc : "");
	reply->why = why_of(code, reply->description);
	params = json_object_get(j, "parameters");
	if (json_is_integer(json_object_get(params, "retry_after")) &&
	    json_integer_value(json_object_get(params, "retry_after")) > 0)
		reply->retry_after_ms =
		    json_integer_value(json_object_get(params, "retry_after")) < TG_RETRY_MAX_MS / 1000
			? json_integer_value(json_object_get(params, "retry_after")) * 1000
			: TG_RETRY_MAX_MS;
	else if (retry_after_hdr >= 0)
		reply->retry_after_ms = retry_after_hdr < TG_RETRY_MAX_MS ? retry_after_hdr
									  : TG_RETRY_MAX_MS;
	if (code == 401)
		rc = ERR_AUTH;
	else if (code == 403)
		rc = ERR_DENIED;
	else if (code == 409)
		rc = ERR_CONFLICT;
	else if (code == 429) {
		rc = ERR_BUSY;
		if (reply->retry_after_ms <= 0) /* never a tight loop */
			reply->retry_after_ms = 1000;
	} else if (code >= 500)
		rc = ERR_HTTP;
	else if (code == 404)
		rc = ERR_NOTFOUND;
	else
		rc = ERR_INVALID;
	json_decref(j);
	return err_set(rc, "Telegram: %d %s", code, reply->description);
}

int tg_call(tg_client *c, const char *method, const json_t *params, int64_t timeout_ms,
	    json_t **out_result, tg_reply *reply)
{
	static const char *const headers[] = {"Content-Type: application/json", NULL};
	http_request rq;
	http_response res;
	buf url;
	char *body = NULL;
	int rc;

	if (out_result)
		*out_result = NULL;
	if (reply)
		reply_init(reply);
	buf_init(&url, 4096);
	memset(&res, 0, sizeof(res));
	rc = tg_method_url(c, method, &url);
	if (rc < 0)
		goto done;
	body = params ? json_dumps(params, JSON_COMPACT) : strdup("{}");
	if (!body) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.url = url.data;
	rq.headers = headers;
	rq.body = body;
	rq.body_len = strlen(body);
	rq.timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	rq.max_response = (size_t)8 << 20;
	rc = http_do(c->http, &rq, &res);
	if (rc < 0) {
		err_wrap("Telegram %s", method);
		goto done;
	}
	rc = tg_parse_reply(res.status, res.body.data, res.body.len, res.retry_after_ms, out_result,
			    reply);
	if (rc < 0)
		err_wrap("%s", method);
done:
	http_response_free(&res);
	buf_free_wipe(&url);
	free(body);
	return rc;
}

/* A JSON object, with the failure of any allocation folded into `*bad`. */
static void set(json_t *o, const char *k, json_t *v, int *bad)
{
	if (!v || json_object_set_new(o, k, v) < 0)
		*bad = 1;
}

static json_t *keyboard(const tg_message *m)
{
	json_t *rows = json_array(), *row = NULL, *kb;
	int per = m->per_row > 0 ? m->per_row : m->nbuttons;

	for (int i = 0; i < m->nbuttons; i++) {
		json_t *b = json_object();
		if (!row || (per > 0 && (int)json_array_size(row) >= per)) {
			row = json_array();
			json_array_append_new(rows, row);
		}
		json_object_set_new(b, "text", json_string(m->buttons[i].text));
		if (m->buttons[i].url)
			json_object_set_new(b, "url", json_string(m->buttons[i].url));
		else
			json_object_set_new(b, "callback_data", json_string(m->buttons[i].data));
		json_array_append_new(row, b);
	}
	kb = json_object();
	json_object_set_new(kb, "inline_keyboard", rows);
	return kb;
}

static json_t *message_params(const tg_message *m, int edit)
{
	json_t *p = json_object();
	int bad = !p;

	if (bad)
		return NULL;
	set(p, "chat_id", json_string(m->chat_id), &bad);
	if (edit)
		set(p, "message_id", json_integer(m->message_id), &bad);
	if (m->text)
		set(p, "text", json_string(m->text), &bad);
	if (m->html)
		set(p, "parse_mode", json_string("HTML"), &bad);
	if (m->text) {
		json_t *lp = json_object();
		set(lp, "is_disabled", json_true(), &bad);
		set(p, "link_preview_options", lp, &bad);
	}
	if (!edit && m->silent)
		set(p, "disable_notification", json_true(), &bad);
	if (!edit && m->reply_to > 0) {
		json_t *rp = json_object();
		set(rp, "message_id", json_integer(m->reply_to), &bad);
		set(rp, "allow_sending_without_reply", json_true(), &bad);
		set(p, "reply_parameters", rp, &bad);
	}
	if (m->nbuttons > 0)
		set(p, "reply_markup", keyboard(m), &bad);
	else if (edit && m->remove_keyboard) {
		json_t *kb = json_object();
		set(kb, "inline_keyboard", json_array(), &bad);
		set(p, "reply_markup", kb, &bad);
	}
	if (bad) {
		json_decref(p);
		return NULL;
	}
	return p;
}

static int64_t result_message_id(const json_t *res)
{
	return json_integer_value(json_object_get(res, "message_id"));
}

int tg_send_message(tg_client *c, const tg_message *m, int64_t *out_message_id, tg_reply *reply)
{
	json_t *p = message_params(m, 0), *res = NULL;
	int rc;

	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	rc = tg_call(c, "sendMessage", p, 0, &res, reply);
	if (rc == 0 && out_message_id)
		*out_message_id = result_message_id(res);
	json_decref(p);
	json_decref(res);
	return rc;
}

static int not_modified(int rc, const tg_reply *r)
{
	return rc == ERR_INVALID && r->why == TG_WHY_NOT_MODIFIED;
}

int tg_edit_message_text(tg_client *c, const tg_message *m, int *out_unchanged, tg_reply *reply)
{
	tg_reply local;
	json_t *p = message_params(m, 1);
	int rc;

	if (!reply)
		reply = &local;
	if (out_unchanged)
		*out_unchanged = 0;
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	rc = tg_call(c, "editMessageText", p, 0, NULL, reply);
	if (not_modified(rc, reply)) {
		rc = 0;
		err_clear();
		if (out_unchanged)
			*out_unchanged = 1;
	}
	json_decref(p);
	return rc;
}

int tg_edit_reply_markup(tg_client *c, const tg_message *m, tg_reply *reply)
{
	tg_reply local;
	tg_message mm = *m;
	json_t *p;
	int rc;

	if (!reply)
		reply = &local;
	mm.text = NULL;
	mm.html = 0;
	mm.remove_keyboard = m->nbuttons == 0;
	p = message_params(&mm, 1);
	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	rc = tg_call(c, "editMessageReplyMarkup", p, 0, NULL, reply);
	if (not_modified(rc, reply)) {
		rc = 0;
		err_clear();
	}
	json_decref(p);
	return rc;
}

int tg_answer_callback(tg_client *c, const char *callback_id, const char *text, int alert,
		       tg_reply *reply)
{
	json_t *p = json_object();
	int bad = !p, rc;

	if (bad)
		return err_set(ERR_NOMEM, "out of memory");
	set(p, "callback_query_id", json_string(callback_id), &bad);
	if (text && *text)
		set(p, "text", json_string(text), &bad);
	if (alert)
		set(p, "show_alert", json_true(), &bad);
	rc = bad ? err_set(ERR_NOMEM, "out of memory")
		 : tg_call(c, "answerCallbackQuery", p, 0, NULL, reply);
	json_decref(p);
	return rc;
}

int tg_send_message_draft(tg_client *c, const char *chat_id, int64_t draft_id, const char *text,
			  tg_reply *reply)
{
	json_t *p = json_object();
	int bad = !p, rc;

	if (bad)
		return err_set(ERR_NOMEM, "out of memory");
	set(p, "chat_id", json_string(chat_id), &bad);
	set(p, "draft_id", json_integer((json_int_t)draft_id), &bad);
	set(p, "text", json_string(text), &bad);
	rc = bad ? err_set(ERR_NOMEM, "out of memory")
		 : tg_call(c, "sendMessageDraft", p, 0, NULL, reply);
	json_decref(p);
	return rc;
}

int tg_send_chat_action(tg_client *c, const char *chat_id, const char *action, tg_reply *reply)
{
	json_t *p = json_object();
	int bad = !p, rc;

	if (bad)
		return err_set(ERR_NOMEM, "out of memory");
	set(p, "chat_id", json_string(chat_id), &bad);
	set(p, "action", json_string(action), &bad);
	rc = bad ? err_set(ERR_NOMEM, "out of memory")
		 : tg_call(c, "sendChatAction", p, 0, NULL, reply);
	json_decref(p);
	return rc;
}

int tg_send_document(tg_client *c, const char *chat_id, const char *filename, const char *data,
		     size_t len, const char *caption, int html, int64_t *out_message_id,
		     tg_reply *reply)
{
	const char *fields[7] = {"chat_id", chat_id, NULL, NULL, NULL, NULL, NULL};
	http_request rq;
	http_response res;
	json_t *result = NULL;
	buf url;
	int k = 2, rc;

	if (reply)
		reply_init(reply);
	if (caption && *caption) {
		fields[k++] = "caption";
		fields[k++] = caption;
		if (html) {
			fields[k++] = "parse_mode";
			fields[k++] = "HTML";
		}
	}
	buf_init(&url, 4096);
	memset(&res, 0, sizeof(res));
	rc = tg_method_url(c, "sendDocument", &url);
	if (rc < 0)
		goto done;
	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.url = url.data;
	rq.form_fields = fields;
	rq.file_field = "document";
	rq.file_name = filename && *filename ? filename : "document.txt";
	rq.file_data = data;
	rq.file_len = len;
	rq.timeout_ms = 120000;
	rc = http_do(c->http, &rq, &res);
	if (rc < 0) {
		err_wrap("Telegram sendDocument");
		goto done;
	}
	rc = tg_parse_reply(res.status, res.body.data, res.body.len, res.retry_after_ms, &result,
			    reply);
	if (rc < 0)
		err_wrap("sendDocument");
	else if (out_message_id)
		*out_message_id = result_message_id(result);
done:
	json_decref(result);
	http_response_free(&res);
	buf_free_wipe(&url);
	return rc;
}

int tg_get_me(tg_client *c, tg_bot_info *out)
{
	json_t *res = NULL;
	int rc = tg_call(c, "getMe", NULL, 0, &res, NULL);

	memset(out, 0, sizeof(*out));
	if (rc == 0) {
		if (!json_is_integer(json_object_get(res, "id")))
			rc = err_set(ERR_PARSE, "getMe: no bot id in the reply");
		out->id = json_integer_value(json_object_get(res, "id"));
		snprintf(out->username, sizeof(out->username), "%s",
			 json_string_value(json_object_get(res, "username"))
				 ? json_string_value(json_object_get(res, "username"))
				 : "");
		snprintf(out->first_name, sizeof(out->first_name), "%s",
			 json_string_value(json_object_get(res, "first_name"))
				 ? json_string_value(json_object_get(res, "first_name"))
				 : "");
	}
	json_decref(res);
	return rc;
}

int tg_delete_webhook(tg_client *c)
{
	json_t *p = json_pack("{s:b}", "drop_pending_updates", 0);
	int rc;

	if (!p)
		return err_set(ERR_NOMEM, "out of memory");
	rc = tg_call(c, "deleteWebhook", p, 0, NULL, NULL);
	json_decref(p);
	return rc;
}

/* --- updates --- */

void tg_updates_free(tg_update *u, int n)
{
	if (!u)
		return;
	for (int i = 0; i < n; i++) {
		free(u[i].text);
		free(u[i].callback_id);
		free(u[i].callback_data);
		json_decref(u[i].raw);
	}
	free(u);
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int parse_user(const json_t *j, tg_user *u)
{
	const char *first = str(j, "first_name"), *last = str(j, "last_name");
	const char *uname = str(j, "username");

	memset(u, 0, sizeof(*u));
	if (!json_is_object(j) || !json_is_integer(json_object_get(j, "id")))
		return -1;
	u->id = json_integer_value(json_object_get(j, "id"));
	u->is_bot = json_is_true(json_object_get(j, "is_bot"));
	snprintf(u->name, sizeof(u->name), "%s%s%s", first ? first : "", last ? " " : "",
		 last ? last : "");
	snprintf(u->username, sizeof(u->username), "%s", uname ? uname : "");
	return 0;
}

static int parse_chat(const json_t *chat, tg_update *u)
{
	const char *type = str(chat, "type");

	if (!json_is_object(chat) || !json_is_integer(json_object_get(chat, "id")))
		return -1;
	u->chat_id = json_integer_value(json_object_get(chat, "id"));
	snprintf(u->chat_type, sizeof(u->chat_type), "%s", type ? type : "");
	return 0;
}

/* "/new@my_bot some idea" -> command "new", args "some idea". Returns -1
 * when the command is addressed to another bot. */
static int split_command(tg_update *u, const char *bot_username)
{
	const char *p = u->text + 1, *end = p, *at = NULL;
	size_t n;

	while (*end && *end != ' ' && *end != '\n' && *end != '\t') {
		if (*end == '@' && !at)
			at = end;
		end++;
	}
	n = (size_t)((at ? at : end) - p);
	if (at && bot_username && *bot_username &&
	    (strlen(bot_username) != (size_t)(end - at - 1) ||
	     strncasecmp(at + 1, bot_username, (size_t)(end - at - 1)) != 0))
		return -1;
	if (n >= sizeof(u->command))
		n = sizeof(u->command) - 1;
	for (size_t i = 0; i < n; i++)
		u->command[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] - 'A' + 'a' : p[i]);
	u->command[n] = '\0';
	while (*end == ' ' || *end == '\n' || *end == '\t')
		end++;
	u->args = end;
	return 0;
}

static void parse_one(const json_t *j, const char *bot_username, tg_update *u)
{
	static const char *const others[] = {
		"edited_message", "channel_post", "edited_channel_post", "business_connection",
		"business_message", "edited_business_message", "deleted_business_messages",
		"message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
		"shipping_query", "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer",
		"my_chat_member", "chat_member", "chat_join_request", "chat_boost",
		"removed_chat_boost", NULL};
	const json_t *m, *cb;

	u->kind = TG_UPD_INVALID;
	snprintf(u->what, sizeof(u->what), "unknown");
	m = json_object_get(j, "message");
	cb = json_object_get(j, "callback_query");
	if (m) {
		const json_t *text = json_object_get(m, "text");
		snprintf(u->what, sizeof(u->what), "message");
		if (!json_is_object(m) || parse_chat(json_object_get(m, "chat"), u) < 0 ||
		    !json_is_integer(json_object_get(m, "message_id")))
			return;
		u->message_id = json_integer_value(json_object_get(m, "message_id"));
		u->date = json_integer_value(json_object_get(m, "date"));
		if (json_object_get(m, "from") && parse_user(json_object_get(m, "from"), &u->from) < 0)
			return;
		if (!text) {
			static const char *const kinds[] = {"sticker", "photo", "document", "voice",
							    "video", "audio", "animation", "location",
							    "contact", "poll", "new_chat_members", NULL};
			snprintf(u->what, sizeof(u->what), "message");
			for (int i = 0; kinds[i]; i++)
				if (json_object_get(m, kinds[i]))
					snprintf(u->what, sizeof(u->what), "%s", kinds[i]);
			u->kind = TG_UPD_OTHER;
			return;
		}
		if (!json_is_string(text) || u->from.id == 0)
			return;
		u->text = strdup(json_string_value(text));
		if (!u->text)
			return;
		u->kind = TG_UPD_TEXT;
		if (u->text[0] == '/' && u->text[1] && u->text[1] != ' ') {
			if (split_command(u, bot_username) == 0)
				u->kind = TG_UPD_COMMAND;
			else
				u->kind = TG_UPD_OTHER; /* a command for another bot in a group */
		}
		return;
	}
	if (cb) {
		const json_t *msg = json_object_get(cb, "message");
		snprintf(u->what, sizeof(u->what), "callback_query");
		if (!json_is_object(cb) || !json_is_string(json_object_get(cb, "id")) ||
		    parse_user(json_object_get(cb, "from"), &u->from) < 0)
			return;
		u->callback_id = strdup(str(cb, "id"));
		if (json_is_string(json_object_get(cb, "data")))
			u->callback_data = strdup(str(cb, "data"));
		if (json_is_object(msg)) {
			parse_chat(json_object_get(msg, "chat"), u);
			u->cb_message_id = json_integer_value(json_object_get(msg, "message_id"));
		}
		if (!u->callback_id)
			return;
		u->kind = TG_UPD_CALLBACK;
		return;
	}
	for (int i = 0; others[i]; i++)
		if (json_object_get(j, others[i])) {
			const json_t *o = json_object_get(j, others[i]);
			snprintf(u->what, sizeof(u->what), "%s", others[i]);
			if (json_is_object(o))
				parse_chat(json_object_get(o, "chat"), u);
			u->kind = TG_UPD_OTHER;
			return;
		}
	u->kind = TG_UPD_OTHER; /* a type newer than this code */
}

int tg_updates_parse(const json_t *result, const char *bot_username, tg_update **out, int *n,
		     int64_t *out_max_id)
{
	tg_update *u = NULL;
	size_t i, count;
	int k = 0;
	int64_t max_id = out_max_id ? *out_max_id : 0;

	*out = NULL;
	*n = 0;
	if (!json_is_array(result))
		return err_set(ERR_PARSE, "getUpdates: the result is not an array");
	count = json_array_size(result);
	if (count > 0) {
		u = calloc(count, sizeof(*u));
		if (!u)
			return err_set(ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < count; i++) {
		const json_t *j = json_array_get(result, i);
		const json_t *id = json_object_get(j, "update_id");

		if (!json_is_object(j) || !json_is_integer(id) || json_integer_value(id) < 0) {
			log_warn("bot", "getUpdates: skipped an entry without an update_id");
			continue;
		}
		u[k].update_id = json_integer_value(id);
		if (u[k].update_id > max_id)
			max_id = u[k].update_id;
		u[k].raw = json_incref((json_t *)j);
		parse_one(j, bot_username, &u[k]);
		if (u[k].kind == TG_UPD_INVALID)
			log_warn("bot", "update %lld (%s) lacks a field it needs; stored and skipped",
				 (long long)u[k].update_id, u[k].what);
		k++;
	}
	*out = u;
	*n = k;
	if (out_max_id)
		*out_max_id = max_id;
	return 0;
}
