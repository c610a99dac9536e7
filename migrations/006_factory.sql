-- The factory (nodes/): what its projects need beyond the engine's tables.
-- A project's facts (spec, plan, tasks, reviews) live in its thread's state;
-- these tables serve the cross-cutting parts: cancelling a project's
-- workers, extending a budget once per decision, and quick queries for
-- `orchestrator status`. See nodes/factory.h and spawner/spawner.h.

-- A person (or `orchestrator cancel`) may stop a project's workers: the
-- spawner running a worker whose row asks for it stops the worker at its
-- next heartbeat and records the result as "cancelled" (not run again).
ALTER TABLE workers ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;

-- Cancels the workers of thread p_thread: spawn requests still in the
-- outbox are never sent; requests already sent get a finished "cancelled"
-- row (a spawner that reads them later finds the id finished and starts
-- nothing); running workers are asked to stop. Returns how many requests
-- were stopped or withdrawn. The request id is the payload's "id" or, for
-- requests without one, "ob-<outbox row id>" (what the spawn relay uses).
CREATE FUNCTION spawn_cancel_thread(p_thread bigint, p_reason text) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	v_dead int;
	v_rows int;
	v_running int;
BEGIN
	UPDATE outbox SET state = 'dead', last_error = p_reason, claimed_by = NULL,
		claim_until = NULL
		WHERE thread_id = p_thread AND kind = 'spawn' AND state = 'pending';
	GET DIAGNOSTICS v_dead = ROW_COUNT;
	UPDATE workers SET cancel_requested = true, updated_at = now()
		WHERE thread_id = p_thread AND state = 'running' AND NOT cancel_requested;
	GET DIAGNOSTICS v_running = ROW_COUNT;
	INSERT INTO workers (id, task, project, thread_id, run_id, state, status, request, result,
			finished_at, cancel_requested)
		SELECT coalesce(o.payload->>'id', 'ob-' || o.id), o.payload->>'task',
			o.payload->>'project', o.thread_id, o.run_id, 'finished', 'cancelled',
			o.payload, jsonb_build_object('id', coalesce(o.payload->>'id', 'ob-' || o.id),
				'task', o.payload->>'task', 'status', 'cancelled', 'reason', p_reason,
				'thread_id', o.thread_id, 'meta', o.payload->'meta'),
			now(), true
		FROM outbox o WHERE o.thread_id = p_thread AND o.kind = 'spawn' AND o.state = 'sent'
		ON CONFLICT (id) DO NOTHING;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	RETURN v_dead + v_rows + v_running;
END $$;

-- "Extend the budget" decided once: a node re-executed after a crash finds
-- the grant recorded and does not extend twice.
CREATE TABLE factory_budget_grants (
	grant_key   text PRIMARY KEY,            -- "<thread id>:<question key>"
	thread_id   bigint NOT NULL,
	kind        text NOT NULL,               -- project | user
	scope       text NOT NULL,
	add_usd     numeric(18, 9) NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- `orchestrator show` reads a project's model calls by thread
CREATE INDEX llm_calls_thread ON llm_calls (thread_id) WHERE thread_id IS NOT NULL;
