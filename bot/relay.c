#include "bot/relay.h"
#include "bot/approval.h"
#include "bot/text.h"
#include "bot/tg.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/redact.h"
#include "core/util.h"
#include "engine/outbox.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

struct bot_relay {
	pg_pool *pool;
	tg_client *tg;
	bot_limiter *lim;
	unsigned char key[BOT_KEY_BYTES];
	int64_t approval_ttl_s;
	eng_relay *relay;
	int exit_after_send; /* ORCH_BOT_TEST_EXIT_AFTER_SEND (crash tests only) */
	int delivered;
	/* messages Telegram accepted whose record failed (the database went
	 * away): known here, so a retry records them instead of sending again
	 * (the relay's thread only) */
	struct unrecorded {
		int64_t outbox_id, mid;
		int part;
	} unrec[64];
	int nunrec;
};

static const pg_stmt STMT_SENT_PARTS = {
	"bot_sent_parts",
	"SELECT part, message_id FROM bot_sent WHERE outbox_id = $1 ORDER BY part",
	1,
};

static const pg_stmt STMT_SENT_ADD = {
	"bot_sent_add",
	"INSERT INTO bot_sent (outbox_id, part, message_id) VALUES ($1, $2, $3) "
	"ON CONFLICT DO NOTHING",
	3,
};

static const pg_stmt STMT_REF_GET = {
	"bot_ref_get",
	"SELECT message_id, coalesce(text_sha, '') FROM bot_refs WHERE chat = $1 AND ref = $2",
	2,
};

static const pg_stmt STMT_REF_PUT = {
	"bot_ref_put",
	"INSERT INTO bot_refs (chat, ref, message_id, text_sha) VALUES ($1, $2, $3, $4) "
	"ON CONFLICT (chat, ref) DO UPDATE SET message_id = EXCLUDED.message_id, "
	"text_sha = EXCLUDED.text_sha, updated_at = now()",
	4,
};

/* Runs `st` on a pooled connection. */
static int db(bot_relay *r, const pg_stmt *st, const char *const *params, PGresult **out)
{
	pg_conn *c = NULL;
	int rc = pg_pool_acquire(r->pool, 10000, &c);

	if (out)
		*out = NULL;
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, out, st, params);
	pg_pool_release(r->pool, c);
	return rc;
}

static int parse_chat(const char *dest, int64_t *out)
{
	char *end;
	long long v;

	if (!dest || !*dest)
		return err_set(ERR_INVALID, "a telegram row needs a dest (the chat id)");
	errno = 0;
	v = strtoll(dest, &end, 10);
	if (errno || *end || v == 0)
		return err_set(ERR_INVALID, "dest '%.40s' is not a Telegram chat id", dest);
	*out = v;
	return 0;
}

/* Records part `part` of outbox row `oid` as delivered (message `mid`) on
 * `held`, a connection taken before the message was sent: a send and its
 * record are one database round trip apart, the smallest window there can
 * be (the Bot API has no idempotency key). A retried row skips what is
 * recorded. */
static int record_part(bot_relay *r, pg_conn *held, int64_t outbox_id, int part, int64_t mid)
{
	char oid[24], part_s[16], mid_s[24];
	const char *params[3] = {oid, part_s, mid_s};
	int rc;

	snprintf(oid, sizeof(oid), "%lld", (long long)outbox_id);
	snprintf(part_s, sizeof(part_s), "%d", part);
	snprintf(mid_s, sizeof(mid_s), "%lld", (long long)mid);
	rc = held ? pg_exec_stmt(held, NULL, &STMT_SENT_ADD, params) : ERR_DB;
	if (rc < 0 && r->nunrec < (int)(sizeof(r->unrec) / sizeof(r->unrec[0]))) {
		/* sent, not recorded: remembered, so the retry does not send it again */
		r->unrec[r->nunrec].outbox_id = outbox_id;
		r->unrec[r->nunrec].part = part;
		r->unrec[r->nunrec].mid = mid;
		r->nunrec++;
		log_warn("telegram", "outbox row %lld part %d was sent but could not be recorded "
				     "(%s); it is recorded when the row is retried, not sent again",
			 (long long)outbox_id, part, err_last());
	}
	return rc;
}

/* The index of a part sent before whose record failed, with its message
 * id in *mid; -1 when there is none. */
static int find_unrecorded(const bot_relay *r, int64_t outbox_id, int part, int64_t *mid)
{
	for (int i = 0; i < r->nunrec; i++)
		if (r->unrec[i].outbox_id == outbox_id && r->unrec[i].part == part) {
			*mid = r->unrec[i].mid;
			return i;
		}
	return -1;
}

/* A part sent before whose record failed: 1 with *mid, recording it now
 * (it stays remembered while that fails too). */
static int unrecorded_part(bot_relay *r, int64_t outbox_id, int part, int64_t *mid)
{
	int i = find_unrecorded(r, outbox_id, part, mid);
	pg_conn *c = NULL;
	char oid[24], part_s[16], mid_s[24];
	const char *params[3] = {oid, part_s, mid_s};

	if (i < 0)
		return 0;
	snprintf(oid, sizeof(oid), "%lld", (long long)outbox_id);
	snprintf(part_s, sizeof(part_s), "%d", part);
	snprintf(mid_s, sizeof(mid_s), "%lld", (long long)*mid);
	if (pg_pool_acquire(r->pool, 10000, &c) == 0) {
		if (pg_exec_stmt(c, NULL, &STMT_SENT_ADD, params) == 0)
			r->unrec[i] = r->unrec[--r->nunrec];
		pg_pool_release(r->pool, c);
	}
	return 1;
}

/* Waits for the limiter: ERR_BUSY with *retry_after when the chat must wait. */
static int pace(bot_relay *r, int64_t chat, int64_t *retry_after)
{
	int64_t w = bot_limit_wait(r->lim, chat, util_mono_ms());

	if (w > 0) {
		*retry_after = w;
		return err_set(ERR_BUSY, "rate limit: chat %lld must wait %lld ms", (long long)chat,
			       (long long)w);
	}
	return 0;
}

/* After a call: notes a send, or turns a 429 into a deferral. */
static int after_call(bot_relay *r, int64_t chat, int rc, const tg_reply *rep,
		      int64_t *retry_after)
{
	int64_t now = util_mono_ms();

	if (rc == ERR_BUSY) {
		int64_t ms = rep->retry_after_ms > 0 ? rep->retry_after_ms : 1000;
		met_add(met_with(met_counter("orch_telegram_rate_limited_total",
					     "Telegram calls answered 429 (retry_after obeyed)", NULL)), 1);
		bot_limit_block(r->lim, chat, now, ms);
		*retry_after = ms;
		log_warn("telegram", "429 for chat %lld: waiting %lld ms as told", (long long)chat,
			 (long long)ms);
		return rc;
	}
	if (rc == 0 || rc == ERR_INVALID)
		bot_limit_note(r->lim, chat, now);
	if (rc == 0)
		met_add(met_with(met_counter("orch_telegram_calls_total",
					     "Telegram calls that sent, edited or answered (messages sent)",
					     NULL)), 1);
	return rc;
}

static int cant_parse(int rc, const tg_reply *rep)
{
	return rc == ERR_INVALID && rep->why == TG_WHY_BAD_ENTITIES;
}

/* The text of a payload ("html" or "text"), redacted; *html tells which. */
static char *payload_text(const json_t *p, int *html)
{
	const char *h = json_string_value(json_object_get(p, "html"));
	const char *t = json_string_value(json_object_get(p, "text"));
	buf b;

	*html = h != NULL;
	buf_init(&b, 0);
	if (buf_puts(&b, h ? h : t ? t : "") < 0) {
		buf_free(&b);
		return NULL;
	}
	redact_buf(&b);
	if (!b.data)
		return strdup("");
	return buf_steal(&b);
}

/* Sends one part (HTML), falling back to plain text when Telegram cannot
 * parse it. */
static int send_part(bot_relay *r, int64_t chat, const char *dest, const char *html_part,
		     const json_t *p, int with_buttons, int64_t *out_mid, int64_t *retry_after)
{
	tg_button btns[16];
	tg_message m;
	tg_reply rep;
	const json_t *bl = json_object_get(p, "buttons");
	int rc;

	memset(&m, 0, sizeof(m));
	m.chat_id = dest;
	m.text = html_part;
	m.html = 1;
	m.silent = json_is_true(json_object_get(p, "silent"));
	m.reply_to = json_integer_value(json_object_get(p, "reply_to"));
	if (with_buttons && json_is_array(bl)) {
		size_t i;
		const json_t *b;
		json_array_foreach(bl, i, b) {
			if (m.nbuttons >= 16)
				break;
			btns[m.nbuttons].text = json_string_value(json_object_get(b, "text"));
			btns[m.nbuttons].url = json_string_value(json_object_get(b, "url"));
			btns[m.nbuttons].data = NULL;
			if (btns[m.nbuttons].text && btns[m.nbuttons].url)
				m.nbuttons++;
		}
		m.buttons = btns;
		m.per_row = 1;
	}
	rc = tg_send_message(r->tg, &m, out_mid, &rep);
	if (cant_parse(rc, &rep)) {
		char *plain = tg_html_to_plain(html_part);
		log_warn("telegram", "chat %s refused the HTML (%s); sending plain text", dest,
			 rep.description);
		if (!plain)
			return err_set(ERR_NOMEM, "out of memory");
		bot_limit_note(r->lim, chat, util_mono_ms());
		m.text = plain;
		m.html = 0;
		rc = tg_send_message(r->tg, &m, out_mid, &rep);
		free(plain);
	}
	return after_call(r, chat, rc, &rep, retry_after);
}

static int send_document(bot_relay *r, int64_t chat, const char *dest, const char *filename,
			 const char *content, size_t len, const char *caption, int64_t *out_mid,
			 int64_t *retry_after)
{
	tg_reply rep;
	buf cap;
	int rc;

	buf_init(&cap, 0);
	if (caption && *caption) {
		buf tmp;
		buf_init(&tmp, 0);
		tg_truncate(&tmp, caption, TG_CAPTION_MAX - 8);
		redact_buf(&tmp);
		tg_html_escape(&cap, buf_cstr(&tmp), tmp.len);
		buf_free(&tmp);
	}
	rc = tg_send_document(r->tg, dest, filename, content, len, cap.len ? cap.data : NULL, 1,
			      out_mid, &rep);
	buf_free(&cap);
	return after_call(r, chat, rc, &rep, retry_after);
}

static int do_send(bot_relay *r, const eng_outbox_row *row, int64_t chat, json_t **result,
		   int64_t *retry_after)
{
	const json_t *p = row->payload;
	const char *ref = json_string_value(json_object_get(p, "ref"));
	char oid[24], mid_s[24];
	PGresult *res = NULL;
	pg_conn *held = NULL;
	json_t *ids = json_array();
	tg_parts parts = {0};
	int html, rc = 0;
	int64_t first_mid = 0;
	char *text = payload_text(p, &html);

	if (!text || !ids) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	if (!*text) {
		rc = err_set(ERR_INVALID, "a telegram.send row needs \"text\" or \"html\"");
		goto done;
	}
	snprintf(oid, sizeof(oid), "%lld", (long long)row->id);
	{
		const char *params[1] = {oid};
		rc = db(r, &STMT_SENT_PARTS, params, &res);
		if (rc < 0)
			goto done;
	}
	if ((html ? tg_html_visible_len(text) : tg_utf16_len(text, strlen(text))) > BOT_DOC_THRESHOLD) {
		const char *fn = json_string_value(json_object_get(p, "filename"));
		char *plain = NULL;
		int64_t mid = pg_rows(res) > 0 ? pg_int(res, 0, 1) : 0;
		buf cap;

		if (pg_rows(res) == 0 && !unrecorded_part(r, row->id, 0, &mid)) {
			plain = html ? tg_html_to_plain(text) : NULL;
			rc = pace(r, chat, retry_after);
			if (rc == 0)
				rc = pg_pool_acquire(r->pool, 10000, &held);
			if (rc == 0) {
				const char *body = plain ? plain : text;
				buf_init(&cap, 0);
				tg_truncate(&cap, body, 200);
				rc = send_document(r, chat, row->dest, fn ? fn : "message.txt", body,
						   strlen(body), buf_cstr(&cap), &mid, retry_after);
				buf_free(&cap);
				if (rc == 0)
					rc = record_part(r, held, row->id, 0, mid);
				pg_pool_release(r->pool, held);
				held = NULL;
			}
			free(plain);
		}
		if (rc == 0) {
			json_array_append_new(ids, json_integer(mid));
			first_mid = mid;
		}
		goto finish;
	}
	rc = tg_split(text, html, TG_TEXT_MAX, &parts);
	if (rc < 0)
		goto done;
	for (int i = 0; i < parts.n; i++) {
		int64_t mid = 0;
		int sent = 0;

		for (int k = 0; k < pg_rows(res); k++)
			if (pg_int(res, k, 0) == i) {
				sent = 1;
				mid = pg_int(res, k, 1);
			}
		if (!sent)
			sent = unrecorded_part(r, row->id, i, &mid);
		if (!sent) {
			rc = pace(r, chat, retry_after);
			if (rc == 0)
				rc = pg_pool_acquire(r->pool, 10000, &held);
			if (rc == 0) {
				rc = send_part(r, chat, row->dest, parts.v[i], p, i == parts.n - 1,
					       &mid, retry_after);
				if (rc == 0)
					rc = record_part(r, held, row->id, i, mid);
				pg_pool_release(r->pool, held);
				held = NULL;
			}
			if (rc < 0)
				goto done;
		}
		if (i == 0)
			first_mid = mid;
		json_array_append_new(ids, json_integer(mid));
	}
finish:
	if (rc == 0 && ref && *ref && first_mid > 0) {
		char sha[crypto_generichash_BYTES * 2 + 1];
		unsigned char h[crypto_generichash_BYTES];
		const char *params[4] = {row->dest, ref, mid_s, sha};
		crypto_generichash(h, sizeof(h), (const unsigned char *)text, strlen(text), NULL, 0);
		sodium_bin2hex(sha, sizeof(sha), h, sizeof(h));
		snprintf(mid_s, sizeof(mid_s), "%lld", (long long)first_mid);
		rc = db(r, &STMT_REF_PUT, params, NULL);
	}
	if (rc == 0)
		*result = json_pack("{s:O}", "message_ids", ids);
done:
	PQclear(res);
	json_decref(ids);
	tg_parts_free(&parts);
	free(text);
	return rc;
}

/* An edit of one message: the text is cut to one message. */
static int edit_message(bot_relay *r, int64_t chat, const char *dest, int64_t mid,
			const char *text, int html, int remove_kb, int *unchanged,
			int64_t *retry_after)
{
	tg_parts parts = {0};
	tg_message m;
	tg_reply rep;
	int rc;

	rc = tg_split(text, html, TG_TEXT_MAX, &parts);
	if (rc < 0)
		return rc;
	if (parts.n == 0) {
		tg_parts_free(&parts);
		return err_set(ERR_INVALID, "an edit needs \"text\" or \"html\"");
	}
	memset(&m, 0, sizeof(m));
	m.chat_id = dest;
	m.message_id = mid;
	m.text = parts.v[0];
	m.html = 1;
	m.remove_keyboard = remove_kb;
	rc = tg_edit_message_text(r->tg, &m, unchanged, &rep);
	if (cant_parse(rc, &rep)) {
		char *plain = tg_html_to_plain(parts.v[0]);
		if (!plain) {
			tg_parts_free(&parts);
			return err_set(ERR_NOMEM, "out of memory");
		}
		m.text = plain;
		m.html = 0;
		rc = tg_edit_message_text(r->tg, &m, unchanged, &rep);
		free(plain);
	}
	tg_parts_free(&parts);
	return after_call(r, chat, rc, &rep, retry_after);
}

static int ref_lookup(bot_relay *r, const char *dest, const char *ref, int64_t *mid, char *sha,
		      size_t cap)
{
	const char *params[2] = {dest, ref};
	PGresult *res = NULL;
	int rc = db(r, &STMT_REF_GET, params, &res);

	*mid = 0;
	sha[0] = '\0';
	if (rc == 0 && pg_rows(res) > 0) {
		*mid = pg_int(res, 0, 0);
		snprintf(sha, cap, "%s", pg_val(res, 0, 1));
	}
	PQclear(res);
	return rc;
}

/* An edit of the inline keyboard alone: removed (the only change a node
 * may ask for; decisions go through approvals). */
static int edit_markup(bot_relay *r, const eng_outbox_row *row, int64_t chat, const char *ref,
		       int64_t mid, json_t **result, int64_t *retry_after)
{
	const char *kb = json_string_value(json_object_get(row->payload, "keyboard"));
	char sha[128];
	tg_message m;
	tg_reply rep;
	int rc;

	if (!kb || strcmp(kb, "remove") != 0)
		return err_set(ERR_INVALID, "an edit needs \"text\", \"html\" or \"keyboard\": \"remove\"");
	if (ref && *ref) {
		rc = ref_lookup(r, row->dest, ref, &mid, sha, sizeof(sha));
		if (rc < 0)
			return rc;
	}
	if (mid <= 0)
		return err_set(ERR_INVALID, "nothing to edit: no message for ref '%s'", ref ? ref : "");
	rc = pace(r, chat, retry_after);
	if (rc < 0)
		return rc;
	memset(&m, 0, sizeof(m));
	m.chat_id = row->dest;
	m.message_id = mid;
	rc = tg_edit_reply_markup(r->tg, &m, &rep);
	rc = after_call(r, chat, rc, &rep, retry_after);
	if (rc == 0)
		*result = json_pack("{s:I}", "message_id", (json_int_t)mid);
	return rc;
}

static int do_edit(bot_relay *r, const eng_outbox_row *row, int64_t chat, int progress,
		   json_t **result, int64_t *retry_after)
{
	const json_t *p = row->payload;
	const char *ref = json_string_value(json_object_get(p, "ref"));
	int64_t mid = json_integer_value(json_object_get(p, "message_id"));
	char sha_now[crypto_generichash_BYTES * 2 + 1], sha_old[128], mid_s[24];
	unsigned char h[crypto_generichash_BYTES];
	int html, unchanged = 0, rc;
	char *text = payload_text(p, &html);

	if (!text)
		return err_set(ERR_NOMEM, "out of memory");
	if (!*text && !progress) {
		/* no text: only the keyboard changes (editMessageReplyMarkup) */
		free(text);
		return edit_markup(r, row, chat, ref, mid, result, retry_after);
	}
	crypto_generichash(h, sizeof(h), (const unsigned char *)text, strlen(text), NULL, 0);
	sodium_bin2hex(sha_now, sizeof(sha_now), h, sizeof(h));
	sha_old[0] = '\0';
	if (progress && (!ref || !*ref)) {
		rc = err_set(ERR_INVALID, "a progress row needs a \"ref\"");
		goto done;
	}
	if (ref && *ref) {
		rc = ref_lookup(r, row->dest, ref, &mid, sha_old, sizeof(sha_old));
		if (rc < 0)
			goto done;
	}
	if (mid <= 0) {
		if (!progress) {
			rc = err_set(ERR_INVALID, "nothing to edit: no message for ref '%s'",
				     ref ? ref : "");
			goto done;
		}
		free(text);
		return do_send(r, row, chat, result, retry_after);
	}
	if (progress && strcmp(sha_old, sha_now) == 0) {
		*result = json_pack("{s:I,s:b}", "message_id", (json_int_t)mid, "unchanged", 1);
		rc = 0;
		goto done;
	}
	rc = pace(r, chat, retry_after);
	if (rc == 0)
		rc = edit_message(r, chat, row->dest, mid, text, html,
				  json_is_string(json_object_get(p, "keyboard")) &&
					  strcmp(json_string_value(json_object_get(p, "keyboard")),
						 "remove") == 0,
				  &unchanged, retry_after);
	if (rc == ERR_INVALID && progress && strstr(err_last(), "message to edit not found")) {
		/* the person deleted it: show progress in a new message */
		free(text);
		return do_send(r, row, chat, result, retry_after);
	}
	if (rc == 0 && ref && *ref) {
		const char *params[4] = {row->dest, ref, mid_s, sha_now};
		snprintf(mid_s, sizeof(mid_s), "%lld", (long long)mid);
		rc = db(r, &STMT_REF_PUT, params, NULL);
	}
	if (rc == 0)
		*result = json_pack("{s:I,s:b}", "message_id", (json_int_t)mid, "unchanged",
				    unchanged);
done:
	free(text);
	return rc;
}

static int do_document(bot_relay *r, const eng_outbox_row *row, int64_t chat, json_t **result,
		       int64_t *retry_after)
{
	const json_t *p = row->payload;
	const char *content = json_string_value(json_object_get(p, "content"));
	const char *fn = json_string_value(json_object_get(p, "filename"));
	const char *caption = json_string_value(json_object_get(p, "caption"));
	int64_t mid = 0;
	buf body;
	int rc;

	if (!content)
		return err_set(ERR_INVALID, "a telegram.document row needs \"content\"");
	rc = pace(r, chat, retry_after);
	if (rc < 0)
		return rc;
	buf_init(&body, 0);
	if (buf_puts(&body, content) < 0) {
		buf_free(&body);
		return err_set(ERR_TOOBIG, "document too large");
	}
	redact_buf(&body);
	rc = send_document(r, chat, row->dest, fn ? fn : "document.txt", buf_cstr(&body), body.len,
			   caption, &mid, retry_after);
	buf_free(&body);
	if (rc == 0)
		*result = json_pack("{s:I}", "message_id", (json_int_t)mid);
	return rc;
}

static int do_action(bot_relay *r, const eng_outbox_row *row, int64_t chat, int64_t *retry_after)
{
	const char *action = json_string_value(json_object_get(row->payload, "action"));
	tg_reply rep;
	int64_t w = bot_limit_wait(r->lim, 0, util_mono_ms());
	int rc;

	(void)chat;
	if (w > 0) {
		*retry_after = w;
		return err_set(ERR_BUSY, "rate limit");
	}
	rc = tg_send_chat_action(r->tg, row->dest, action ? action : "typing", &rep);
	return after_call(r, 0, rc, &rep, retry_after);
}

static int do_approval(bot_relay *r, const eng_outbox_row *row, int64_t chat, json_t **result,
		       int64_t *retry_after)
{
	bot_approval a;
	tg_button btns[BOT_MAX_OPTIONS];
	char data[BOT_MAX_OPTIONS][72];
	tg_message m;
	tg_reply rep;
	pg_conn *c = NULL;
	buf html;
	size_t i;
	const json_t *o;
	int64_t mid = 0;
	int rc;

	buf_init(&html, 0);
	rc = pg_pool_acquire(r->pool, 10000, &c);
	if (rc < 0)
		return rc;
	rc = bot_approval_create(c, row, "telegram", r->approval_ttl_s, &a);
	pg_pool_release(r->pool, c);
	if (rc < 0)
		return rc;
	if (a.message_id == 0 && strcmp(a.state, "pending") == 0) {
		/* sent before the database went away, not recorded: recorded now */
		int k = find_unrecorded(r, row->id, 0, &mid);
		if (k >= 0 && pg_pool_acquire(r->pool, 10000, &c) == 0) {
			if (bot_approval_set_message(c, a.id, mid) == 0) {
				r->unrec[k] = r->unrec[--r->nunrec];
				a.message_id = mid;
			}
			pg_pool_release(r->pool, c);
		}
		if (k >= 0 && a.message_id == 0) {
			rc = err_set(ERR_DB, "approval %lld: its message is not recorded yet",
				     (long long)a.id);
			goto done;
		}
	}
	if (a.message_id > 0 || strcmp(a.state, "pending") != 0) {
		/* sent before a crash, or decided already: nothing more to send */
		*result = json_pack("{s:I,s:I}", "approval", (json_int_t)a.id, "message_id",
				    (json_int_t)a.message_id);
		goto done;
	}
	rc = pace(r, chat, retry_after);
	if (rc < 0)
		goto done;
	{
		buf q;
		buf_init(&q, 0);
		tg_truncate(&q, a.question, 3800);
		redact_buf(&q);
		tg_html_escape(&html, buf_cstr(&q), q.len);
		buf_free(&q);
	}
	memset(&m, 0, sizeof(m));
	json_array_foreach(a.options, i, o) {
		if (i >= BOT_MAX_OPTIONS)
			break;
		rc = bot_cb_sign(r->key, a.id, (int)i, data[i], sizeof(data[i]));
		if (rc < 0)
			goto done;
		btns[i].text = json_string_value(json_object_get(o, "label"));
		btns[i].data = data[i];
		btns[i].url = NULL;
		m.nbuttons++;
	}
	m.chat_id = row->dest;
	m.text = buf_cstr(&html);
	m.html = 1;
	m.buttons = btns;
	m.per_row = m.nbuttons <= 3 ? m.nbuttons : 1;
	/* the connection is taken first: the message is recorded one round trip
	 * after Telegram accepted it (see record_part) */
	rc = pg_pool_acquire(r->pool, 10000, &c);
	if (rc < 0)
		goto done;
	rc = tg_send_message(r->tg, &m, &mid, &rep);
	rc = after_call(r, chat, rc, &rep, retry_after);
	if (rc == 0) {
		rc = bot_approval_set_message(c, a.id, mid);
		if (rc < 0)
			record_part(r, NULL, row->id, 0, mid); /* remembered for the retry */
	}
	pg_pool_release(r->pool, c);
	if (rc < 0)
		goto done;
	if (rc == 0)
		*result = json_pack("{s:I,s:I}", "approval", (json_int_t)a.id, "message_id",
				    (json_int_t)mid);
done:
	bot_approval_clear(&a);
	buf_free(&html);
	return rc;
}

static int deliver(const eng_outbox_row *row, json_t **result, int64_t *retry_after,
		   void *udata)
{
	bot_relay *r = udata;
	const char *verb = strchr(row->kind, '.') ? strchr(row->kind, '.') + 1 : "";
	int64_t chat = 0;
	int rc;

	if (!row->payload || !json_is_object(row->payload))
		return err_set(ERR_INVALID, "outbox row %lld: the payload is not a JSON object",
			       (long long)row->id);
	rc = parse_chat(row->dest, &chat);
	if (rc < 0)
		return rc;
	if (strcmp(verb, "send") == 0)
		rc = do_send(r, row, chat, result, retry_after);
	else if (strcmp(verb, "edit") == 0)
		rc = do_edit(r, row, chat, 0, result, retry_after);
	else if (strcmp(verb, "progress") == 0)
		rc = do_edit(r, row, chat, 1, result, retry_after);
	else if (strcmp(verb, "document") == 0)
		rc = do_document(r, row, chat, result, retry_after);
	else if (strcmp(verb, "action") == 0)
		rc = do_action(r, row, chat, retry_after);
	else if (strcmp(verb, "approval") == 0)
		rc = do_approval(r, row, chat, result, retry_after);
	else
		rc = err_set(ERR_INVALID, "unknown outbox kind %s", row->kind);
	if (rc == ERR_DENIED)
		log_warn("telegram", "chat %lld refuses the bot's messages (blocked or removed): %s",
			 (long long)chat, err_last());
	if (rc == 0 && r->exit_after_send > 0 && ++r->delivered >= r->exit_after_send) {
		log_warn("telegram", "ORCH_BOT_TEST_EXIT_AFTER_SEND: exiting after %d delivered "
				     "row(s), before the last is marked sent",
			 r->delivered);
		_exit(75);
	}
	return rc;
}

int bot_relay_new(bot_relay **out, pg_pool *pool, const bot_relay_options *opt)
{
	eng_relay_options ro;
	bot_relay *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r)
		return err_set(ERR_NOMEM, "out of memory");
	r->pool = pool;
	r->lim = opt->limiter;
	memcpy(r->key, opt->key, BOT_KEY_BYTES);
	r->approval_ttl_s = opt->approval_ttl_s > 0 ? opt->approval_ttl_s : 86400;
	{
		const char *x = getenv("ORCH_BOT_TEST_EXIT_AFTER_SEND");
		int64_t v;
		if (x && *x && cfg_parse_int(x, &v) == 0 && v > 0)
			r->exit_after_send = (int)v;
	}
	rc = tg_client_new(&r->tg, opt->api_base, opt->token);
	if (rc < 0)
		goto fail;
	memset(&ro, 0, sizeof(ro));
	ro.name = "telegram";
	ro.kinds = BOT_TG_KINDS;
	ro.batch = 50;
	ro.claim_ms = 120000;
	ro.max_attempts = 12;
	ro.backoff_ms = 1000;
	ro.max_backoff_ms = 300000;
	ro.poll_ms = opt->poll_ms > 0 ? opt->poll_ms : 250;
	rc = eng_relay_new(&r->relay, pool, &ro, deliver, r);
	if (rc < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	bot_relay_free(r);
	return rc;
}

int bot_relay_start(bot_relay *r)
{
	return eng_relay_start(r->relay);
}

void bot_relay_stop(bot_relay *r)
{
	if (r)
		eng_relay_stop(r->relay);
}

void bot_relay_free(bot_relay *r)
{
	if (!r)
		return;
	eng_relay_free(r->relay);
	tg_client_free(r->tg);
	sodium_memzero(r->key, sizeof(r->key));
	free(r);
}
