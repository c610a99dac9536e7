-- Dead letters: items from outside that could not be handled — a Telegram
-- update, a spawn request on the Redis stream, a worker result that could
-- not be delivered to its thread. Each is set aside here once, with the
-- reason, and confirmed to its source (the getUpdates offset moves past it,
-- the stream entry is acknowledged), so it never blocks what comes behind
-- it and is never retried. `orchestrator status` counts them and shows the
-- newest reasons.
CREATE TABLE dead_letters (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source      text NOT NULL,            -- telegram.update | spawn.request | worker.result
	ref         text NOT NULL,            -- its id at the source: update_id, stream entry, worker id
	reason      text NOT NULL,
	body        text,                     -- the item as received: redacted, valid UTF-8, at most 64 KiB
	created_at  timestamptz NOT NULL DEFAULT now(),
	UNIQUE (source, ref)
);
CREATE INDEX dead_letters_created ON dead_letters (created_at);
