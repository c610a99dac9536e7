-- The spawner's workers: one row per spawn request id (the idempotency key).
-- A request id that already has a row never starts a second worker: the
-- row is claimed with a lease by the spawner that runs it, taken over only
-- when that lease expired (its spawner died), and finished once, with the
-- result kept for anyone who asks again. See spawner/spawner.h.
CREATE TABLE workers (
	id          text PRIMARY KEY,              -- the request's idempotency id ("ob-42")
	task        text,                          -- the task id (branch task/<task>)
	project     text,                          -- the project (secrets scope, budgets)
	thread_id   bigint,                        -- the engine thread the result goes to
	run_id      bigint,                        -- the run that asked for it
	state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'finished')),
	status      text,                          -- the result's status once finished
	request     jsonb,                         -- the request as received (handles only, no secret)
	owner       text,                          -- the spawner running it
	attempt     int NOT NULL DEFAULT 1,        -- 1 + takeovers after a spawner died
	lease_until timestamptz,                   -- the owner renews it while the worker runs
	workspace   text,                          -- the worker's folder on the owner's host
	result      jsonb,                         -- the result (see spawner/result.h)
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz
);
CREATE INDEX workers_running ON workers (lease_until) WHERE state = 'running';
CREATE INDEX workers_thread ON workers (thread_id, created_at);
