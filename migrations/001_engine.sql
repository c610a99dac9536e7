-- The durable graph engine: threads, runs, checkpoints, events, pending
-- writes, the outbox and live engines. See engine/store.h for how each
-- statement is used and ARCHITECTURE.md §3 for the semantics.

-- A thread is one conversation or project. Its state is the chain of its
-- checkpoints; at most one of its runs is running or waiting at a time.
CREATE TABLE threads (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	key         text NOT NULL UNIQUE,           -- the caller's name for it ("tg:42:p3", "bench-1")
	graph       text NOT NULL,                  -- the graph its runs execute
	metadata    jsonb NOT NULL DEFAULT '{}',
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Lease tokens fence writes: each claim of a run gets a new token, and a
-- step commits only while the run still holds the token it was claimed with.
CREATE SEQUENCE run_lease_tokens;

CREATE TABLE runs (
	id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	thread_id        bigint NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	graph            text NOT NULL,
	status           text NOT NULL DEFAULT 'queued'
		CHECK (status IN ('queued', 'running', 'waiting', 'done', 'failed', 'cancelled')),
	input            jsonb,                     -- update applied to the state before the first step
	start_seq        int,                       -- fork point; NULL: the thread's latest checkpoint
	last_seq         int,                       -- this run's latest checkpoint
	step             int NOT NULL DEFAULT 0,    -- super-steps committed
	waiting_on       text[],                    -- event keys a parked run waits for
	wait_payload     jsonb,                     -- what the waiting node asked (question, options)
	cancel_requested boolean NOT NULL DEFAULT false,
	lease_owner      text,                      -- engine id while running
	lease_token      bigint,
	lease_until      timestamptz,
	claims           int NOT NULL DEFAULT 0,    -- times claimed (more than 1: resumed or taken over)
	takeovers        int NOT NULL DEFAULT 0,    -- times taken from an engine whose lease expired
	error            text,
	error_node       text,
	ready_at         timestamptz NOT NULL DEFAULT now(),
	created_at       timestamptz NOT NULL DEFAULT now(),
	started_at       timestamptz,
	updated_at       timestamptz NOT NULL DEFAULT now(),
	finished_at      timestamptz
) WITH (fillfactor = 80); -- room for HOT updates: a run is updated at every step
CREATE INDEX runs_queued ON runs (id) WHERE status = 'queued';
CREATE INDEX runs_thread_active ON runs (thread_id, id) WHERE status IN ('queued', 'running', 'waiting');
CREATE INDEX runs_thread ON runs (thread_id, id);
-- one running-or-waiting run per thread, whatever the races between engines
CREATE UNIQUE INDEX runs_one_active ON runs (thread_id) WHERE status IN ('running', 'waiting');

-- One row per super-step. `delta` holds what the step wrote, per key
-- ({"k": {"set": v} | {"append": [..]} | {"merge": {..}}}); every so often
-- `snapshot` holds the whole state, so reading a state costs one snapshot and
-- a bounded number of deltas, and a step's cost does not grow with the thread.
CREATE TABLE checkpoints (
	thread_id   bigint NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	seq         int NOT NULL,                   -- 1, 2, ... within the thread
	parent_seq  int,                            -- previous checkpoint in this history
	run_id      bigint NOT NULL,
	step        int NOT NULL,                   -- super-step within the run (1-based)
	nodes       text[] NOT NULL,                -- the nodes that ran in this step
	delta       jsonb NOT NULL,
	snapshot    jsonb,                          -- the whole state after this step, or NULL
	next        jsonb NOT NULL,                 -- tasks of the next step: [{"node": n, "input": v?}]
	chain_len   int NOT NULL,                   -- deltas since the last snapshot (0 with a snapshot)
	chain_bytes bigint NOT NULL,                -- their size in bytes
	snap_bytes  bigint NOT NULL,                -- size of that snapshot
	created_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (thread_id, seq)
);

-- Values delivered to a thread: approvals, worker results, chat input. A
-- node takes them with eng_await/eng_take; the step that takes one marks it
-- consumed in its own transaction.
CREATE TABLE events (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	thread_id   bigint NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	key         text NOT NULL,
	value       jsonb NOT NULL DEFAULT 'null',
	idem        text UNIQUE,                    -- a repeated delivery with the same idem is a no-op
	created_at  timestamptz NOT NULL DEFAULT now(),
	consumed_at timestamptz,
	consumed_by bigint                          -- run id
);
CREATE INDEX events_open ON events (thread_id, id) WHERE consumed_at IS NULL;

-- Results of tasks that finished in a step whose other tasks failed or wait:
-- kept so a resumed or retried step does not run them again.
CREATE TABLE pending_writes (
	run_id     bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	step       int NOT NULL,
	task       int NOT NULL,
	node       text NOT NULL,
	result     jsonb NOT NULL,                  -- {"update": {...}, "goto": [...]}
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (run_id, step, task)
);

-- Side effects, written in the transaction of the step that produced them
-- and delivered by relays (Telegram, Redis) that claim, deliver and mark them.
CREATE TABLE outbox (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	thread_id       bigint,
	run_id          bigint,
	step            int,
	kind            text NOT NULL,              -- "telegram.send", "spawn", ...
	dest            text,                       -- ordering key: rows of one dest go out in id order
	payload         jsonb NOT NULL,
	state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
	attempts        int NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL DEFAULT now(),
	claimed_by      text,
	claim_until     timestamptz,
	last_error      text,
	result          jsonb,                      -- what the relay got back (message id, ...)
	created_at      timestamptz NOT NULL DEFAULT now(),
	sent_at         timestamptz
);
CREATE INDEX outbox_pending ON outbox (kind, id) WHERE state = 'pending';
CREATE INDEX outbox_dest ON outbox (dest, id) WHERE state = 'pending';

-- Engine processes, for status and for finding dead ones.
CREATE TABLE engines (
	id           text PRIMARY KEY,
	host         text NOT NULL,
	pid          int NOT NULL,
	threads      int NOT NULL,
	graphs       text[] NOT NULL,
	started_at   timestamptz NOT NULL DEFAULT now(),
	heartbeat_at timestamptz NOT NULL DEFAULT now(),
	stopped_at   timestamptz
);

-- Wakes engines when a run becomes claimable (notifications are sent at
-- commit, once per transaction).
CREATE FUNCTION orch_runs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('orch_runs', '');
	RETURN NULL;
END $$;
CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE OF status ON runs
	FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION orch_runs_notify();

-- Wakes relays when outbox rows are written.
CREATE FUNCTION orch_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('orch_outbox', '');
	RETURN NULL;
END $$;
-- per row, so a statement that inserts nothing notifies nobody; PostgreSQL
-- folds a transaction's identical notifications into one
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
	FOR EACH ROW EXECUTE FUNCTION orch_outbox_notify();

-- Ends a super-step's transaction: checks that the caller still holds the
-- run's lease (else raises SQLSTATE OR001 and the whole step rolls back),
-- records the run's progress and new status, and wakes engines when the
-- thread may have a next run. A run asked to cancel becomes 'cancelled'.
-- The common case (a step of a running run) is one UPDATE that touches no
-- indexed column, so PostgreSQL can keep it a HOT update; the lease itself
-- is renewed by the engine's heartbeat, not here. A run that parks on keys
-- for which an event is already stored is queued again at once, so a
-- wake-up is never lost: events are delivered under the same thread row
-- lock (orch_deliver).
CREATE FUNCTION orch_advance(p_run bigint, p_token bigint, p_lease_ms int, p_step int,
	p_seq int, p_status text, p_waiting text[], p_wait_payload jsonb,
	p_error text, p_error_node text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	v_thread bigint;
	v_cancel boolean;
	v_status text := p_status;
BEGIN
	IF p_status <> 'waiting' THEN
		UPDATE runs SET
			step = p_step,
			last_seq = coalesce(p_seq, last_seq),
			status = CASE WHEN cancel_requested AND p_status = 'running'
				THEN 'cancelled' ELSE p_status END,
			lease_owner = CASE WHEN p_status = 'running' AND NOT cancel_requested
				THEN lease_owner END,
			lease_until = CASE WHEN p_status = 'running' AND NOT cancel_requested
				THEN lease_until END,
			error = p_error,
			error_node = p_error_node,
			updated_at = now(),
			finished_at = CASE WHEN p_status <> 'running' OR cancel_requested
				THEN now() END
		WHERE id = p_run AND lease_token = p_token AND status = 'running'
		RETURNING thread_id, status INTO v_thread, v_status;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'run % no longer holds its lease (another engine took it over)',
				p_run USING ERRCODE = 'OR001';
		END IF;
		IF v_status <> 'running' THEN
			UPDATE threads SET updated_at = now() WHERE id = v_thread;
			PERFORM pg_notify('orch_runs', '');
		END IF;
		RETURN v_status;
	END IF;

	SELECT thread_id, cancel_requested INTO v_thread, v_cancel FROM runs
		WHERE id = p_run AND lease_token = p_token AND status = 'running' FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'run % no longer holds its lease (another engine took it over)', p_run
			USING ERRCODE = 'OR001';
	END IF;
	IF v_cancel THEN
		v_status := 'cancelled';
	ELSE
		PERFORM 1 FROM threads WHERE id = v_thread FOR UPDATE;
		IF EXISTS (SELECT 1 FROM events WHERE thread_id = v_thread AND consumed_at IS NULL
				AND key = ANY (p_waiting)) THEN
			v_status := 'queued';
		END IF;
	END IF;
	UPDATE runs SET
		step = p_step,
		status = v_status,
		waiting_on = CASE WHEN v_status <> 'cancelled' THEN p_waiting END,
		wait_payload = CASE WHEN v_status <> 'cancelled' THEN p_wait_payload END,
		lease_until = NULL,
		lease_owner = NULL,
		error = NULL,
		error_node = NULL,
		ready_at = now(),
		updated_at = now(),
		finished_at = CASE WHEN v_status = 'cancelled' THEN now() END
	WHERE id = p_run;
	UPDATE threads SET updated_at = now() WHERE id = v_thread;
	PERFORM pg_notify('orch_runs', '');
	RETURN v_status;
END $$;

-- Stores an event for a thread and queues its waiting run when it waits for
-- this key. With p_claim_owner set, the woken run is claimed at once for that
-- engine (an in-process resume); the claimed run's id and lease token are
-- returned. A repeated p_idem stores nothing and returns the first event.
CREATE FUNCTION orch_deliver(p_thread bigint, p_key text, p_value jsonb, p_idem text,
	p_claim_owner text, p_lease_ms int,
	OUT event_id bigint, OUT duplicate boolean, OUT run_id bigint, OUT lease_token bigint)
LANGUAGE plpgsql AS $$
BEGIN
	duplicate := false;
	PERFORM 1 FROM threads WHERE id = p_thread FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'thread % does not exist', p_thread USING ERRCODE = 'OR002';
	END IF;
	INSERT INTO events (thread_id, key, value, idem) VALUES (p_thread, p_key, p_value, p_idem)
		ON CONFLICT (idem) DO NOTHING RETURNING id INTO event_id;
	IF event_id IS NULL THEN
		SELECT id INTO event_id FROM events WHERE idem = p_idem;
		duplicate := true;
		RETURN;
	END IF;
	IF p_claim_owner IS NOT NULL THEN
		UPDATE runs SET status = 'running', lease_owner = p_claim_owner,
			lease_token = nextval('run_lease_tokens'),
			lease_until = now() + make_interval(secs => p_lease_ms / 1000.0),
			claims = claims + 1, waiting_on = NULL, updated_at = now()
		WHERE thread_id = p_thread AND status = 'waiting' AND p_key = ANY (waiting_on)
		RETURNING id, runs.lease_token INTO run_id, lease_token;
	ELSE
		UPDATE runs SET status = 'queued', ready_at = now(), updated_at = now()
		WHERE thread_id = p_thread AND status = 'waiting' AND p_key = ANY (waiting_on)
		RETURNING id INTO run_id;
	END IF;
END $$;
