-- The LLM layer: the ledger of every model call, spending budgets per
-- project and per user with reservations, and the slot scheduler's live
-- figures for `orchestrator status`. See llm/ledger.h and llm/sched.h.

-- One row per HTTP attempt at a model (retries and escalations each get a
-- row; attempts of one llm_chat() share call_id). A refused call (budget,
-- context, cancelled before sending) gets a row too, with zero tokens.
CREATE TABLE llm_calls (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	call_id       text NOT NULL,                 -- groups the attempts of one logical call
	attempt       int NOT NULL DEFAULT 1,        -- 1, 2, ... within the call
	project       text,                          -- budget scope, as the caller named it
	user_id       text,                          -- budget scope, as the caller named it
	thread_id     bigint,
	run_id        bigint,
	node          text,                          -- graph node, when a node called
	worker        text,                          -- worker id, when a worker called
	role          text,                          -- the role asked for (brainstorm, ...)
	model         text NOT NULL,                 -- registry name of the model
	endpoint      text NOT NULL,                 -- registry name of the endpoint
	tokens_in     bigint NOT NULL DEFAULT 0,
	tokens_out    bigint NOT NULL DEFAULT 0,
	estimated     boolean NOT NULL DEFAULT false, -- tokens estimated (no usage in the reply)
	cost_usd      numeric(18, 9) NOT NULL DEFAULT 0,
	latency_ms    double precision NOT NULL DEFAULT 0,
	queue_ms      double precision NOT NULL DEFAULT 0, -- time spent waiting for a slot
	http_status   int,
	outcome       text NOT NULL,                 -- ok | http_429 | http_5xx | network | timeout | parse | ...
	error         text,
	created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_calls_project ON llm_calls (project, created_at);
CREATE INDEX llm_calls_user ON llm_calls (user_id, created_at);
CREATE INDEX llm_calls_created ON llm_calls (created_at);
CREATE INDEX llm_calls_call ON llm_calls (call_id);

-- A spending limit for one scope. `spent` grows as calls settle; what is
-- reserved by calls in flight is the sum of the live reservations.
CREATE TABLE llm_budgets (
	kind        text NOT NULL CHECK (kind IN ('project', 'user')),
	scope       text NOT NULL,
	limit_usd   numeric(18, 9) NOT NULL CHECK (limit_usd >= 0),
	spent_usd   numeric(18, 9) NOT NULL DEFAULT 0,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (kind, scope)
);

-- The worst-case cost of a call in flight, held against the budgets of its
-- project and user until the call settles. A reservation whose process died
-- stops counting when it expires.
CREATE TABLE llm_reservations (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	project     text,
	user_id     text,
	amount_usd  numeric(18, 9) NOT NULL,
	expires_at  timestamptz NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_reservations_project ON llm_reservations (project) WHERE project IS NOT NULL;
CREATE INDEX llm_reservations_user ON llm_reservations (user_id) WHERE user_id IS NOT NULL;

-- The slot scheduler of each serving process, per endpoint, written every
-- few seconds so `orchestrator status` (another process) can show it.
CREATE TABLE llm_sched_stats (
	instance      text NOT NULL,                 -- host-pid-random of the serving process
	endpoint      text NOT NULL,
	slots         int NOT NULL,
	in_flight     int NOT NULL,
	queued        int NOT NULL,
	granted       bigint NOT NULL,               -- slots handed out since start
	wait_total_ms double precision NOT NULL,     -- summed waits of granted requests
	wait_max_ms   double precision NOT NULL,     -- longest wait since start
	oldest_wait_ms double precision NOT NULL,    -- age of the oldest request now queued
	updated_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (instance, endpoint)
);

-- Reserves `p_amount` against the budgets of project `p_project` and user
-- `p_user` (either may be NULL). A scope without a budget row gets one with
-- the default limit when one is given (p_project_default, p_user_default),
-- its spending so far taken from the ledger; a scope with neither has no
-- limit. Returns the reservation id, or NULL with the refusing scope's
-- figures when spent + reserved + amount would pass the limit.
CREATE FUNCTION llm_reserve(p_project text, p_user text, p_amount numeric, p_ttl_ms int,
	p_project_default numeric, p_user_default numeric,
	OUT reservation bigint, OUT refused_kind text, OUT refused_scope text,
	OUT limit_usd numeric, OUT spent_usd numeric, OUT reserved_usd numeric)
LANGUAGE plpgsql AS $$
DECLARE
	k text;
	s text;
	d numeric;
	v_limit numeric;
	v_spent numeric;
	held numeric;
BEGIN
	FOR i IN 1..2 LOOP
		IF i = 1 THEN k := 'project'; s := p_project; d := p_project_default;
		ELSE k := 'user'; s := p_user; d := p_user_default; END IF;
		CONTINUE WHEN s IS NULL;
		SELECT b.limit_usd, b.spent_usd INTO v_limit, v_spent FROM llm_budgets b
			WHERE b.kind = k AND b.scope = s FOR UPDATE;
		IF NOT FOUND AND d IS NOT NULL THEN
			INSERT INTO llm_budgets (kind, scope, limit_usd, spent_usd)
			VALUES (k, s, d, coalesce((SELECT sum(c.cost_usd) FROM llm_calls c
				WHERE (k = 'project' AND c.project = s) OR (k = 'user' AND c.user_id = s)), 0))
			ON CONFLICT DO NOTHING;
			SELECT b.limit_usd, b.spent_usd INTO v_limit, v_spent FROM llm_budgets b
				WHERE b.kind = k AND b.scope = s FOR UPDATE;
		END IF;
		CONTINUE WHEN v_limit IS NULL;
		SELECT coalesce(sum(r.amount_usd), 0) INTO held FROM llm_reservations r
			WHERE r.expires_at > now()
			AND ((k = 'project' AND r.project = s) OR (k = 'user' AND r.user_id = s));
		IF v_spent + held + p_amount > v_limit THEN
			refused_kind := k; refused_scope := s;
			limit_usd := v_limit; spent_usd := v_spent; reserved_usd := held;
			RETURN;
		END IF;
		v_limit := NULL;
	END LOOP;
	INSERT INTO llm_reservations (project, user_id, amount_usd, expires_at)
	VALUES (p_project, p_user, p_amount, now() + make_interval(secs => p_ttl_ms / 1000.0))
	RETURNING id INTO reservation;
END $$;

-- Settles a call: drops its reservation (when it has one) and adds the
-- actual cost to the budgets of its project and user.
CREATE FUNCTION llm_settle(p_reservation bigint, p_project text, p_user text, p_cost numeric)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF p_reservation IS NOT NULL THEN
		DELETE FROM llm_reservations WHERE id = p_reservation;
	END IF;
	IF p_cost > 0 THEN
		UPDATE llm_budgets SET spent_usd = spent_usd + p_cost, updated_at = now()
		WHERE (kind = 'project' AND scope = p_project) OR (kind = 'user' AND scope = p_user);
	END IF;
END $$;
