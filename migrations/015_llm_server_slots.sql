-- The server's own slots beside the scheduler's: what a llama.cpp endpoint
-- reports on GET /slots (how many it has, how many are busy, the context
-- of each), written with the scheduler's figures so `orchestrator status`
-- shows both. NULL when the server does not report them.
ALTER TABLE llm_sched_stats
	ADD COLUMN server_slots int,
	ADD COLUMN server_busy int,
	ADD COLUMN server_ctx bigint;
