-- Node caching (eng_graph_set_cache, engine/graph.h): what a node returned
-- for an input, reused by later runs instead of running the node again (a
-- repository scan, a summary). The key is a hash of the node's input (the
-- state, or the part of it the policy names, and its own input); the result
-- is the node's update and routing. Rows past expires_at are never used and
-- are deleted by retention (eng_prune).
CREATE TABLE node_cache (
	graph      text NOT NULL,
	node       text NOT NULL,
	key        text NOT NULL,                  -- BLAKE2b-256 of the input, hex
	result     jsonb NOT NULL,                 -- {"update": {...}|null, "goto": [...]|null}
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz,                    -- NULL: never
	hits       bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (graph, node, key)
);
CREATE INDEX node_cache_expiry ON node_cache (expires_at) WHERE expires_at IS NOT NULL;
