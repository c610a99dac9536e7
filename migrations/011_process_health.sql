-- The health of each long-running process (serve, engine, bot, spawner):
-- its registry of parts (core/health.h: relays, listeners, heartbeats, the
-- bot's poller, the spawner's consumer) as it last published it, every few
-- seconds. `orchestrator status` shows the parts that are degraded or down
-- in processes that are alive, and a process whose rows stopped coming as
-- gone. A process that stops on purpose deletes its row.
CREATE TABLE process_health (
	id          text PRIMARY KEY,         -- "<role>-<host>-<pid>-<random>"
	role        text NOT NULL,            -- serve | engine | bot | spawner
	host        text NOT NULL,
	pid         int NOT NULL,
	worst       text NOT NULL,            -- ok | degraded | down
	parts       jsonb NOT NULL,           -- {"bot.relay": {"state", "reason", "since_ms"}}
	started_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now()
);
