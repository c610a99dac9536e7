#include "bot/approval.h"
#include "bot/route.h"
#include "bot/text.h"
#include "core/err.h"
#include "core/log.h"
#include "engine/control.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAG_BYTES 16

/* --- the key file --- */

static int mkdir_parent(const char *path)
{
	char dir[1024];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return err_set(ERR_IO, "cannot create %s: %s", dir, strerror(errno));
		*p = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return err_set(ERR_IO, "cannot create %s: %s", dir, strerror(errno));
	return 0;
}

static int key_create(const char *path)
{
	unsigned char key[BOT_KEY_BYTES];
	char hex[BOT_KEY_BYTES * 2 + 2];
	int fd, rc = 0;
	size_t len;

	rc = mkdir_parent(path);
	if (rc < 0)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? 0 /* created by another process meanwhile */
				       : err_set(ERR_IO, "cannot create the key file %s: %s", path,
						 strerror(errno));
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
	len = strlen(hex);
	hex[len++] = '\n';
	if (write(fd, hex, len) != (ssize_t)len || fsync(fd) != 0)
		rc = err_set(ERR_IO, "cannot write the key file %s: %s", path, strerror(errno));
	close(fd);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(hex, sizeof(hex));
	if (rc < 0)
		unlink(path);
	else
		log_info("bot", "created the approval key file %s (0600)", path);
	return rc;
}

int bot_key_load(const char *path, unsigned char key[BOT_KEY_BYTES])
{
	char text[256];
	struct stat st;
	ssize_t n;
	size_t bin_len = 0;
	int fd, rc = 0;

	if (access(path, F_OK) != 0) {
		rc = key_create(path);
		if (rc < 0)
			return rc;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return err_set(ERR_IO, "cannot open the key file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = err_set(ERR_IO, "cannot stat the key file %s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		rc = err_set(ERR_DENIED, "the key file %s is not a regular file owned by this user",
			     path);
		goto done;
	}
	if (st.st_mode & 077) {
		rc = err_set(ERR_DENIED,
			     "the key file %s may be read or written by others (mode %03o): "
			     "run chmod 600 %s",
			     path, (unsigned)(st.st_mode & 0777), path);
		goto done;
	}
	n = read(fd, text, sizeof(text) - 1);
	if (n < 0) {
		rc = err_set(ERR_IO, "cannot read the key file %s: %s", path, strerror(errno));
		goto done;
	}
	text[n] = '\0';
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		text[--n] = '\0';
	if (n != BOT_KEY_BYTES * 2 ||
	    sodium_hex2bin(key, BOT_KEY_BYTES, text, (size_t)n, NULL, &bin_len, NULL) != 0 ||
	    bin_len != BOT_KEY_BYTES)
		rc = err_set(ERR_INVALID, "the key file %s does not hold 64 hex digits", path);
done:
	sodium_memzero(text, sizeof(text));
	close(fd);
	return rc;
}

/* --- callback data --- */

static void mac16(const unsigned char key[BOT_KEY_BYTES], const char *msg, size_t len,
		  unsigned char out[TAG_BYTES])
{
	unsigned char full[crypto_auth_BYTES];

	crypto_auth(full, (const unsigned char *)msg, len, key);
	memcpy(out, full, TAG_BYTES);
	sodium_memzero(full, sizeof(full));
}

int bot_cb_sign(const unsigned char key[BOT_KEY_BYTES], int64_t id, int option, char *out,
		size_t cap)
{
	unsigned char tag[TAG_BYTES];
	char b64[sodium_base64_ENCODED_LEN(TAG_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char msg[48];
	int n;

	if (id <= 0 || option < 0 || option >= BOT_MAX_OPTIONS || cap < 65)
		return err_set(ERR_INVALID, "bad approval button");
	n = snprintf(msg, sizeof(msg), "a:%lld:%d", (long long)id, option);
	mac16(key, msg, (size_t)n, tag);
	sodium_bin2base64(b64, sizeof(b64), tag, sizeof(tag), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(out, cap, "%s:%s", msg, b64);
	return 0;
}

#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

/* Reads a positive decimal without sign or leading zeros from s[0..len). */
static int parse_dec(const char *s, size_t len, int64_t max, int64_t *out)
{
	int64_t v = 0;

	if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (INT64_MAX - (s[i] - '0')) / 10) /* INT64_MAX itself is an id */
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int bot_cb_verify(const unsigned char key[BOT_KEY_BYTES], const char *data, int64_t *out_id,
		  int *out_option)
{
	const char *p1, *p2, *p3;
	unsigned char tag[TAG_BYTES], want[TAG_BYTES];
	size_t tag_len = 0;
	const char *end = NULL;
	int64_t id, opt;

	*out_id = 0;
	*out_option = -1;
	if (!data || strlen(data) > 64 || strncmp(data, "a:", 2) != 0)
		return err_set(ERR_INVALID, "not an approval button");
	p1 = data + 2;
	p2 = strchr(p1, ':');
	p3 = p2 ? strchr(p2 + 1, ':') : NULL;
	if (!p2 || !p3 || strchr(p3 + 1, ':'))
		return err_set(ERR_INVALID, "malformed approval button");
	if (parse_dec(p1, (size_t)(p2 - p1), INT64_MAX, &id) < 0 || id == 0 ||
	    parse_dec(p2 + 1, (size_t)(p3 - p2 - 1), BOT_MAX_OPTIONS - 1, &opt) < 0)
		return err_set(ERR_INVALID, "malformed approval button");
	/* only the URL-safe alphabet: libsodium 1.0.18 reads any byte above 0x7f
	 * as a base64 digit, which would give one tag a second spelling */
	if (strlen(p3 + 1) != 22 || strspn(p3 + 1, B64URL) != 22 ||
	    sodium_base642bin(tag, sizeof(tag), p3 + 1, strlen(p3 + 1), NULL, &tag_len, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    tag_len != TAG_BYTES || (end && *end))
		return err_set(ERR_INVALID, "malformed approval button");
	mac16(key, data, (size_t)(p3 - data), want);
	if (crypto_verify_16(tag, want) != 0)
		return err_set(ERR_CRYPTO, "the approval button's signature does not match");
	*out_id = id;
	*out_option = (int)opt;
	return 0;
}

/* --- decisions --- */

static const pg_stmt STMT_APPROVAL_LOCK = {
	"bot_approval_lock",
	"SELECT thread_id, chat, key, question, options::text, approvers::text, state, "
	"expires_at < now(), coalesce(message_id, 0), decision, "
	"coalesce(decided_by->>'name', '') FROM approvals WHERE id = $1 FOR UPDATE",
	1,
};

static const pg_stmt STMT_APPROVAL_DECIDE = {
	"bot_approval_decide",
	"UPDATE approvals SET state = 'decided', decision = $2, decided_by = $3::jsonb, "
	"decided_at = now() WHERE id = $1 AND state = 'pending' RETURNING id",
	3,
};

static int is_allowed(int64_t id, const int64_t *allowed, int n)
{
	for (int i = 0; i < n; i++)
		if (allowed[i] == id)
			return 1;
	return 0;
}

/* approvers is a PostgreSQL array literal "{1,2}" or "" for NULL. */
static int in_pg_array(const char *arr, int64_t id)
{
	const char *p = arr;

	while (p && *p) {
		char *end;
		long long v;
		if (*p == '{' || *p == ',' || *p == '}' || *p == ' ') {
			p++;
			continue;
		}
		errno = 0;
		v = strtoll(p, &end, 10);
		if (end == p || errno)
			return 0;
		if (v == id)
			return 1;
		p = end;
	}
	return 0;
}

static void refuse(bot_decision *d, bot_dec_outcome o, const char *reason)
{
	d->outcome = o;
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
}

int bot_approval_decide(pg_conn *c, int64_t id, int option, const bot_actor *who,
			const char *chat, const int64_t *allowed, int nallowed,
			bot_decision *out)
{
	char sid[24];
	const char *params[1] = {sid};
	PGresult *res = NULL, *upd = NULL;
	json_t *options = NULL, *opt, *by = NULL, *value = NULL;
	char *by_s = NULL;
	buf q;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_init(&q, 0);
	out->approval_id = id;
	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	rc = pg_exec_stmt(c, &res, &STMT_APPROVAL_LOCK, params);
	if (rc < 0)
		goto done;
	if (pg_rows(res) == 0) {
		refuse(out, BOT_DEC_UNKNOWN, "This button is not valid.");
		goto done;
	}
	out->thread_id = pg_int(res, 0, 0);
	out->message_id = pg_int(res, 0, 8);
	snprintf(out->chat, sizeof(out->chat), "%s", pg_val(res, 0, 1));
	tg_truncate(&q, pg_val(res, 0, 3), 900);
	snprintf(out->question, sizeof(out->question), "%s", buf_cstr(&q));
	if (strcmp(pg_val(res, 0, 1), chat) != 0) {
		refuse(out, BOT_DEC_FOREIGN, "This button does not belong to this chat.");
		goto done;
	}
	if (!who->trusted) {
		const char *approvers = pg_val(res, 0, 5);
		int ok = pg_isnull(res, 0, 5) ? is_allowed(who->id, allowed, nallowed)
					      : in_pg_array(approvers, who->id);
		if (!ok) {
			refuse(out, BOT_DEC_NOT_APPROVER, "You may not decide this approval.");
			goto done;
		}
	}
	if (strcmp(pg_val(res, 0, 6), "decided") == 0) {
		snprintf(out->decided_by, sizeof(out->decided_by), "%s", pg_val(res, 0, 10));
		snprintf(out->reason, sizeof(out->reason), "Already decided (%s)%s%s.",
			 pg_val(res, 0, 9), out->decided_by[0] ? " by " : "", out->decided_by);
		out->outcome = BOT_DEC_DECIDED;
		goto done;
	}
	if (strcmp(pg_val(res, 0, 6), "expired") == 0 || strcmp(pg_val(res, 0, 7), "t") == 0) {
		refuse(out, BOT_DEC_EXPIRED, "This approval has expired.");
		goto done;
	}
	options = json_loads(pg_val(res, 0, 4), 0, NULL);
	opt = json_array_get(options, (size_t)option);
	if (option < 0 || !json_is_object(opt)) {
		refuse(out, BOT_DEC_BAD_OPTION, "This button is not valid.");
		goto done;
	}
	snprintf(out->option_id, sizeof(out->option_id), "%s",
		 json_string_value(json_object_get(opt, "id")));
	snprintf(out->label, sizeof(out->label), "%s",
		 json_string_value(json_object_get(opt, "label")));
	by = json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)who->id, "name", who->name,
		       "username", who->username, "channel", who->channel);
	by_s = by ? json_dumps(by, JSON_COMPACT) : NULL;
	if (!by_s) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	{
		const char *up[3] = {sid, out->option_id, by_s};
		rc = pg_exec_stmt(c, &upd, &STMT_APPROVAL_DECIDE, up);
	}
	if (rc < 0)
		goto done;
	if (pg_rows(upd) == 0) { /* lost a race: someone decided first */
		refuse(out, BOT_DEC_DECIDED, "Already decided.");
		goto done;
	}
	value = json_pack("{s:I,s:s,s:s,s:i,s:O,s:b}", "approval", (json_int_t)id, "option",
			  out->option_id, "label", out->label, "index", option, "by", by, "expired",
			  0);
	if (!value) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	{
		char idem[48];
		snprintf(idem, sizeof(idem), "approval:%lld", (long long)id);
		rc = eng_deliver(c, out->thread_id, pg_val(res, 0, 2), value, idem, NULL, NULL);
	}
	if (rc == 0)
		out->outcome = BOT_DEC_OK;
done:
	PQclear(res);
	PQclear(upd);
	json_decref(options);
	json_decref(by);
	json_decref(value);
	free(by_s);
	buf_free(&q);
	return rc;
}

/* --- creation and expiry --- */

static const pg_stmt STMT_APPROVAL_CREATE = {
	"bot_approval_create",
	"INSERT INTO approvals (outbox_id, thread_id, channel, chat, key, question, options, "
	"approvers, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::bigint[], "
	"now() + make_interval(secs => $9::bigint)) "
	"ON CONFLICT (outbox_id) DO UPDATE SET outbox_id = EXCLUDED.outbox_id "
	"RETURNING id, coalesce(message_id, 0), state, question, options::text",
	9,
};

static const pg_stmt STMT_APPROVAL_SET_MSG = {
	"bot_approval_set_msg",
	"UPDATE approvals SET message_id = $2 WHERE id = $1",
	2,
};

static const pg_stmt STMT_APPROVAL_EXPIRE = {
	"bot_approval_expire",
	"UPDATE approvals SET state = 'expired', decided_at = now() WHERE state = 'pending' "
	"AND channel = $1 AND expires_at < now() RETURNING id, thread_id, key, chat, "
	"coalesce(message_id, 0), question",
	1,
};

void bot_approval_clear(bot_approval *a)
{
	if (!a)
		return;
	json_decref(a->options);
	free(a->question);
	memset(a, 0, sizeof(*a));
}

/* The payload's options normalised to [{"id","label"}]. */
static json_t *norm_options(const json_t *in)
{
	json_t *out = json_array();
	size_t i;
	const json_t *o;

	if (!out)
		return NULL;
	if (!in) {
		json_array_append_new(out, json_pack("{s:s,s:s}", "id", "approve", "label",
						     "✅ Approve"));
		json_array_append_new(out, json_pack("{s:s,s:s}", "id", "reject", "label",
						     "❌ Reject"));
		return out;
	}
	if (!json_is_array(in) || json_array_size(in) == 0 ||
	    json_array_size(in) > BOT_MAX_OPTIONS)
		goto bad;
	json_array_foreach(in, i, o) {
		const char *id = NULL, *label = NULL;
		if (json_is_string(o)) {
			id = label = json_string_value(o);
		} else if (json_is_object(o)) {
			id = json_string_value(json_object_get(o, "id"));
			label = json_string_value(json_object_get(o, "label"));
			if (!label)
				label = id;
			if (!id)
				id = label;
		}
		if (!id || !*id || strlen(id) > 60 || strlen(label) > 120)
			goto bad;
		json_array_append_new(out, json_pack("{s:s,s:s}", "id", id, "label", label));
	}
	return out;
bad:
	json_decref(out);
	return NULL;
}

int bot_approval_create(pg_conn *c, const eng_outbox_row *row, const char *channel,
			int64_t default_ttl_s, bot_approval *out)
{
	const json_t *p = row->payload;
	const char *question = json_string_value(json_object_get(p, "question"));
	const char *key = json_string_value(json_object_get(p, "key"));
	const json_t *approvers = json_object_get(p, "approvers");
	json_t *opts = NULL;
	char *opts_s = NULL;
	char oid[24], tid[24], ttl[24];
	buf appr;
	PGresult *res = NULL;
	int64_t ttl_s = default_ttl_s;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	buf_init(&appr, 0);
	if (!question || !*question)
		return err_set(ERR_INVALID, "an approval needs a \"question\"");
	if (row->thread_id <= 0 || !row->dest)
		return err_set(ERR_INVALID, "an approval needs a thread and a dest (the chat)");
	opts = norm_options(json_object_get(p, "options"));
	if (!opts)
		return err_set(ERR_INVALID, "an approval's \"options\" must be 1 to %d strings or "
					    "{\"id\",\"label\"} objects",
			       BOT_MAX_OPTIONS);
	if (json_is_integer(json_object_get(p, "expires_in")) &&
	    json_integer_value(json_object_get(p, "expires_in")) > 0)
		ttl_s = json_integer_value(json_object_get(p, "expires_in"));
	if (json_is_array(approvers)) {
		size_t i;
		const json_t *a;
		buf_putc(&appr, '{');
		json_array_foreach(approvers, i, a) {
			if (!json_is_integer(a)) {
				rc = err_set(ERR_INVALID, "\"approvers\" must be Telegram user ids");
				goto done;
			}
			buf_printf(&appr, "%s%lld", i ? "," : "", (long long)json_integer_value(a));
		}
		buf_putc(&appr, '}');
	}
	opts_s = json_dumps(opts, JSON_COMPACT);
	if (!opts_s) {
		rc = err_set(ERR_NOMEM, "out of memory");
		goto done;
	}
	snprintf(oid, sizeof(oid), "%lld", (long long)row->id);
	snprintf(tid, sizeof(tid), "%lld", (long long)row->thread_id);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_s);
	{
		const char *params[9] = {oid, tid, channel, row->dest, key && *key ? key : "approval",
					 question, opts_s, appr.len ? appr.data : NULL, ttl};
		rc = pg_exec_stmt(c, &res, &STMT_APPROVAL_CREATE, params);
	}
	if (rc < 0)
		goto done;
	out->id = pg_int(res, 0, 0);
	out->message_id = pg_int(res, 0, 1);
	snprintf(out->state, sizeof(out->state), "%s", pg_val(res, 0, 2));
	out->question = strdup(pg_val(res, 0, 3));
	out->options = json_loads(pg_val(res, 0, 4), 0, NULL);
	if (!out->question || !out->options) {
		bot_approval_clear(out);
		rc = err_set(ERR_NOMEM, "out of memory");
	}
done:
	PQclear(res);
	json_decref(opts);
	free(opts_s);
	buf_free(&appr);
	return rc;
}

int bot_approval_set_message(pg_conn *c, int64_t id, int64_t message_id)
{
	char sid[24], mid[24];
	const char *params[2] = {sid, mid};

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	snprintf(mid, sizeof(mid), "%lld", (long long)message_id);
	return pg_exec_stmt(c, NULL, &STMT_APPROVAL_SET_MSG, params);
}

int bot_approvals_expire(pg_conn *c, const char *channel, int *out_n)
{
	const char *params[1] = {channel};
	PGresult *res = NULL;
	int rc, n = 0;

	if (out_n)
		*out_n = 0;
	rc = pg_exec(c, NULL, "BEGIN", 0, NULL);
	if (rc < 0)
		return rc;
	rc = pg_exec_stmt(c, &res, &STMT_APPROVAL_EXPIRE, params);
	for (int i = 0; rc == 0 && i < pg_rows(res); i++) {
		json_t *v = json_pack("{s:I,s:n,s:b}", "approval", (json_int_t)pg_int(res, i, 0),
				      "option", "expired", 1);
		char idem[48];

		snprintf(idem, sizeof(idem), "approval:%lld", (long long)pg_int(res, i, 0));
		rc = v ? eng_deliver(c, pg_int(res, i, 1), pg_val(res, i, 2), v, idem, NULL, NULL)
		       : err_set(ERR_NOMEM, "out of memory");
		json_decref(v);
		if (rc == 0 && strcmp(channel, "telegram") == 0 && pg_int(res, i, 4) > 0) {
			buf html;
			json_t *edit;
			buf_init(&html, 0);
			tg_html_escape(&html, pg_val(res, i, 5), strlen(pg_val(res, i, 5)));
			buf_puts(&html, "\n\n<i>⌛ Expired without a decision.</i>");
			edit = json_pack("{s:I,s:s,s:s}", "message_id", (json_int_t)pg_int(res, i, 4),
					 "html", buf_cstr(&html), "keyboard", "remove");
			rc = edit ? bot_emit(c, pg_int(res, i, 1), "telegram.edit", pg_val(res, i, 3),
					     edit)
				  : err_set(ERR_NOMEM, "out of memory");
			json_decref(edit);
			buf_free(&html);
		}
		n++;
	}
	PQclear(res);
	if (rc == 0)
		rc = pg_exec(c, NULL, "COMMIT", 0, NULL);
	if (rc < 0) {
		pg_exec(c, NULL, "ROLLBACK", 0, NULL);
		return rc;
	}
	if (out_n)
		*out_n = n;
	if (n > 0)
		log_info("bot", "%d %s approval(s) expired", n, channel);
	return 0;
}

/* --- operators --- */

static int user_name_ok(const char *u)
{
	if (!*u || strlen(u) > 32)
		return 0;
	for (const char *p = u; *p; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			 (p > u && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
				    (*p == '$' && !p[1])));
		if (!ok)
			return 0;
	}
	return 1;
}

int bot_operators_parse(const char *spec, bot_operator *out, int cap, int *n)
{
	const char *p = spec ? spec : "";

	*n = 0;
	while (*p) {
		char entry[512], *colon, *ids;
		size_t k = 0;
		bot_operator *op;

		while (*p == ' ' || *p == '\t' || *p == ';' || *p == '\n')
			p++;
		if (!*p)
			break;
		while (*p && *p != ' ' && *p != '\t' && *p != ';' && *p != '\n') {
			if (k + 1 < sizeof(entry))
				entry[k++] = *p;
			p++;
		}
		entry[k] = '\0';
		colon = strchr(entry, ':');
		if (!colon)
			return err_set(ERR_INVALID,
				       "ORCH_OPERATORS: '%s' is not 'unixuser:telegram-id[,id...]' "
				       "(or 'unixuser:*')",
				       entry);
		*colon = '\0';
		ids = colon + 1;
		if (!user_name_ok(entry))
			return err_set(ERR_INVALID, "ORCH_OPERATORS: '%s' is not a Unix user name",
				       entry);
		if (*n >= cap)
			return err_set(ERR_TOOBIG, "ORCH_OPERATORS: more than %d entries", cap);
		op = &out[*n];
		memset(op, 0, sizeof(*op));
		snprintf(op->user, sizeof(op->user), "%s", entry);
		if (strcmp(ids, "*") == 0) {
			op->any = 1;
		} else {
			char *save = ids;
			while (*save) {
				char *end;
				long long v;

				errno = 0;
				v = strtoll(save, &end, 10);
				if (end == save || errno || v <= 0 || (*end && *end != ','))
					return err_set(ERR_INVALID,
						       "ORCH_OPERATORS: '%s' for %s is not a list of "
						       "numeric Telegram user ids (or '*')",
						       ids, op->user);
				if (op->nids >= BOT_OPERATOR_IDS)
					return err_set(ERR_TOOBIG,
						       "ORCH_OPERATORS: more than %d ids for %s",
						       BOT_OPERATOR_IDS, op->user);
				op->ids[op->nids++] = v;
				save = *end ? end + 1 : end;
			}
			if (op->nids == 0)
				return err_set(ERR_INVALID, "ORCH_OPERATORS: no ids for %s", op->user);
		}
		(*n)++;
	}
	return 0;
}

const bot_operator *bot_operator_find(const bot_operator *ops, int n, const char *user)
{
	for (int i = 0; i < n; i++)
		if (strcmp(ops[i].user, user) == 0)
			return &ops[i];
	return NULL;
}

int bot_operator_acts_for(const bot_operator *op, const int64_t *approvers, int n,
			  int64_t *out_id)
{
	*out_id = 0;
	if (!op)
		return 0;
	if (op->any)
		return 1;
	for (int i = 0; i < op->nids; i++)
		for (int k = 0; k < n; k++)
			if (op->ids[i] == approvers[k]) {
				*out_id = approvers[k];
				return 1;
			}
	return 0;
}

static const pg_stmt STMT_APPROVAL_APPROVERS = {
	"bot_approval_approvers",
	"SELECT channel, approvers IS NULL, coalesce(array_to_string(approvers, ','), '') "
	"FROM approvals WHERE id = $1",
	1,
};

int bot_approval_approvers(pg_conn *c, int64_t id, const int64_t *allowed, int nallowed,
			   int64_t *out, int cap, int *n, char *channel, size_t ccap)
{
	char sid[24];
	const char *params[1] = {sid};
	PGresult *res = NULL;
	int rc;

	*n = 0;
	channel[0] = '\0';
	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	rc = pg_exec_stmt(c, &res, &STMT_APPROVAL_APPROVERS, params);
	if (rc < 0)
		return rc;
	if (pg_rows(res) == 0) {
		PQclear(res);
		return err_set(ERR_NOTFOUND, "no approval %lld", (long long)id);
	}
	snprintf(channel, ccap, "%s", pg_val(res, 0, 0));
	if (strcmp(pg_val(res, 0, 1), "t") == 0) {
		for (int i = 0; i < nallowed && *n < cap; i++)
			out[(*n)++] = allowed[i];
	} else {
		const char *p = pg_val(res, 0, 2);
		while (*p && *n < cap) {
			char *end;
			long long v = strtoll(p, &end, 10);
			if (end == p)
				break;
			out[(*n)++] = v;
			p = *end == ',' ? end + 1 : end;
		}
	}
	PQclear(res);
	return 0;
}
