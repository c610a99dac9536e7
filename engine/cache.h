/*
 * cache — node results reused by later runs (eng_graph_set_cache): the key
 * of a node's input and the rows of node_cache (migration 030).
 * Engine-internal. A cache that cannot be read or written never fails a
 * run: the node runs as if uncached, and a warning says why.
 */
#ifndef ORCH_ENGINE_CACHE_H
#define ORCH_ENGINE_CACHE_H

#include <jansson.h>

#include "core/pg.h"
#include "engine/graph_int.h"

#define CACHE_KEY_HEX 65 /* BLAKE2b-256 in hex, and its NUL */

/* The key of `n`'s input: a hash of the canonical JSON of the state and the
 * node's input, or of what the policy's key function writes. 0, or a
 * negative code when this input is not to be cached. */
int cache_key(const eng_node_def *n, const json_t *state, const json_t *input,
	      char key[CACHE_KEY_HEX]);

/* The stored result of `graph`/`node` for `key` when it has not expired:
 * 1 with *out ({"update", "goto"}, owned), 0 when there is none (also when
 * the database cannot be asked). */
int cache_get(pg_pool *pool, const char *graph, const char *node, const char *key,
	      json_t **out);

/* Stores a result (update and gotos may be NULL) for ttl_ms (0: until
 * pruned). Failures are logged and ignored. */
void cache_put(pg_pool *pool, const char *graph, const char *node, const char *key,
	       int64_t ttl_ms, const json_t *update, const json_t *gotos);

#endif
