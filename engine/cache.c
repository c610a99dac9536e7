#include "engine/cache.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pg_stmt STMT_GET = {
	"eng_cache_get",
	"UPDATE node_cache SET hits = hits + 1 WHERE graph = $1 AND node = $2 AND key = $3 "
	"AND (expires_at IS NULL OR expires_at > now()) RETURNING result::text",
	3,
};

static const pg_stmt STMT_PUT = {
	"eng_cache_put",
	"INSERT INTO node_cache (graph, node, key, result, expires_at) VALUES ($1, $2, $3, "
	"$4::jsonb, CASE WHEN $5::bigint > 0 THEN now() + make_interval(secs => $5::bigint / "
	"1000.0) END) ON CONFLICT (graph, node, key) DO UPDATE SET result = EXCLUDED.result, "
	"created_at = now(), expires_at = EXCLUDED.expires_at, hits = 0",
	5,
};

int cache_key(const eng_node_def *n, const json_t *state, const json_t *input,
	      char key[CACHE_KEY_HEX])
{
	unsigned char h[32];
	buf b;
	int rc = 0;

	buf_init(&b, 0);
	if (n->cache.key) {
		rc = n->cache.key(state, input, &b, n->cache.udata);
	} else {
		json_t *both = json_pack("{s:O?,s:O?}", "state", state, "input", input);
		char *text = both ? json_dumps(both, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

		rc = text ? buf_puts(&b, text) : err_set(ERR_NOMEM, "out of memory");
		free(text);
		json_decref(both);
	}
	if (rc == 0) {
		crypto_generichash(h, sizeof(h), (const unsigned char *)buf_cstr(&b), b.len, NULL, 0);
		sodium_bin2hex(key, CACHE_KEY_HEX, h, sizeof(h));
	}
	buf_free(&b);
	return rc;
}

int cache_get(pg_pool *pool, const char *graph, const char *node, const char *key,
	      json_t **out)
{
	const char *params[3] = {graph, node, key};
	PGresult *res = NULL;
	pg_conn *c = NULL;
	int rc, hit = 0;

	*out = NULL;
	rc = pg_pool_acquire(pool, 5000, &c);
	if (rc == 0)
		rc = pg_exec_stmt(c, &res, &STMT_GET, params);
	if (rc < 0) {
		log_warn("engine", "node '%s': its cache cannot be read (running it): %s", node,
			 err_last());
	} else if (pg_rows(res) == 1) {
		json_error_t jerr;
		*out = json_loads(pg_val(res, 0, 0), 0, &jerr);
		hit = *out != NULL;
	}
	PQclear(res);
	if (c)
		pg_pool_release(pool, c);
	return hit;
}

void cache_put(pg_pool *pool, const char *graph, const char *node, const char *key,
	       int64_t ttl_ms, const json_t *update, const json_t *gotos)
{
	json_t *r = json_pack("{s:O?,s:O?}", "update", update, "goto", gotos);
	char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
	char ttl[24];
	const char *params[5] = {graph, node, key, text, ttl};
	pg_conn *c = NULL;
	int rc;

	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
	rc = text ? pg_pool_acquire(pool, 5000, &c) : err_set(ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = pg_exec_stmt(c, NULL, &STMT_PUT, params);
	if (rc < 0)
		log_warn("engine", "node '%s': its result cannot be cached: %s", node, err_last());
	if (c)
		pg_pool_release(pool, c);
	free(text);
	json_decref(r);
}
