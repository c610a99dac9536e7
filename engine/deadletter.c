/* deadletter — items from outside set aside with their reason. */
#include "engine/deadletter.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt STMT_DL_INSERT = {
	"eng_dl_insert",
	"INSERT INTO dead_letters (source, ref, reason, body) VALUES ($1, $2, $3, $4) "
	"ON CONFLICT (source, ref) DO NOTHING RETURNING id",
	4,
};

static const pg_stmt STMT_DL_STATUS = {
	"eng_dl_status",
	"SELECT json_build_object('count', (SELECT count(*) FROM dead_letters), "
	"'last_24h', (SELECT count(*) FROM dead_letters WHERE created_at > now() - "
	"interval '24 hours'), 'newest', (SELECT coalesce(json_agg(x ORDER BY x.id DESC), '[]') "
	"FROM (SELECT id, source, ref, reason, to_char(created_at AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD HH24:MI:SS\"Z\"') AS at FROM dead_letters ORDER BY id DESC LIMIT $1) x))::text",
	1,
};

/* `s` (len bytes of anything) as valid UTF-8, cut to cap bytes, redacted. */
static char *clean_text(const char *s, size_t len, size_t cap)
{
	buf b;
	char *red;

	buf_init(&b, 0);
	if (jx_utf8_lossy(&b, s ? s : "", s ? (len > cap ? cap : len) : 0) < 0) {
		buf_free(&b);
		return NULL;
	}
	red = redact_str(buf_cstr(&b));
	buf_free(&b);
	return red;
}

int eng_dead_letter(pg_conn *c, const char *source, const char *ref, const char *reason,
		    const char *body, size_t len, int *out_new)
{
	char *sref = clean_text(ref, ref ? strlen(ref) : 0, 512);
	char *sreason = clean_text(reason, reason ? strlen(reason) : 0, 2048);
	char *sbody = body ? clean_text(body, len, ENG_DL_BODY_MAX) : NULL;
	const char *params[4] = {source, sref, sreason, sbody};
	PGresult *res = NULL;
	int rc;

	if (out_new)
		*out_new = 0;
	if (!sref || !sreason || (body && !sbody)) {
		rc = err_set(ERR_NOMEM, "out of memory storing a dead letter");
		goto done;
	}
	rc = pg_exec_stmt(c, &res, &STMT_DL_INSERT, params);
	if (rc < 0) {
		err_wrap("storing %s %s as a dead letter", source, sref);
		goto done;
	}
	if (pg_rows(res) == 1) {
		if (out_new)
			*out_new = 1;
		log_error("deadletter", "%s %s set aside (dead letter %lld, never retried): %s",
			  source, sref, (long long)pg_int(res, 0, 0), sreason);
	}
done:
	PQclear(res);
	free(sref);
	free(sreason);
	free(sbody);
	return rc;
}

int eng_dead_letters_status(pg_conn *c, int newest, json_t **out)
{
	char n[16];
	const char *params[1] = {n};
	PGresult *res = NULL;
	json_error_t jerr;
	int rc;

	*out = NULL;
	snprintf(n, sizeof(n), "%d", newest > 0 ? newest : 5);
	rc = pg_exec_stmt(c, &res, &STMT_DL_STATUS, params);
	if (rc == 0) {
		*out = json_loads(pg_val(res, 0, 0), 0, &jerr);
		if (!*out)
			rc = err_set(ERR_PARSE, "dead letters: %s", jerr.text);
	}
	PQclear(res);
	return rc;
}
