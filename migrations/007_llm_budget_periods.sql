-- Budget periods: a budget limits what its scope spends in total (as
-- before), or per calendar day, week (from Monday) or month, in UTC.
-- See llm/ledger.h.
--
-- A periodic budget keeps the start of its current period; spent_usd is what
-- settled since then. Reserving and settling roll a budget whose period has
-- passed (spent back to 0, period_start to the current period) in the same
-- function call, so each stays one round trip. A reservation counts against
-- the period it was made in: one from before period_start no longer holds
-- anything in the new period, and its cost, when it settles, is spending of
-- the period it settles in.

ALTER TABLE llm_budgets
	ADD COLUMN period text NOT NULL DEFAULT 'total'
		CHECK (period IN ('total', 'day', 'week', 'month')),
	ADD COLUMN period_start timestamptz,          -- NULL for 'total'
	ADD CONSTRAINT llm_budgets_period_start CHECK ((period = 'total') = (period_start IS NULL));

-- The start of the period of kind `p_period` that holds `p_at` (midnight
-- UTC; weeks start on Monday); NULL for 'total'.
CREATE FUNCTION llm_period_start(p_period text, p_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN p_period IN ('day', 'week', 'month')
		THEN date_trunc(p_period, p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' END
$$;

-- The end of the period of kind `p_period` starting at `p_start` (when the
-- budget resets); NULL for 'total'.
CREATE FUNCTION llm_period_end(p_period text, p_start timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN p_period IN ('day', 'week', 'month')
		THEN ((p_start AT TIME ZONE 'UTC') + ('1 ' || p_period)::interval) AT TIME ZONE 'UTC' END
$$;

-- As in 002, and: a periodic budget whose period has passed is rolled first,
-- only reservations made in the current period are held against it, and a
-- refusal also returns the period and when it ends.
DROP FUNCTION llm_reserve(text, text, numeric, int, numeric, numeric);
CREATE FUNCTION llm_reserve(p_project text, p_user text, p_amount numeric, p_ttl_ms int,
	p_project_default numeric, p_user_default numeric,
	OUT reservation bigint, OUT refused_kind text, OUT refused_scope text,
	OUT limit_usd numeric, OUT spent_usd numeric, OUT reserved_usd numeric,
	OUT period text, OUT resets_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
	k text;
	s text;
	d numeric;
	v_limit numeric;
	v_spent numeric;
	v_period text;
	v_start timestamptz;
	v_now_start timestamptz;
	held numeric;
BEGIN
	FOR i IN 1..2 LOOP
		IF i = 1 THEN k := 'project'; s := p_project; d := p_project_default;
		ELSE k := 'user'; s := p_user; d := p_user_default; END IF;
		CONTINUE WHEN s IS NULL;
		SELECT b.limit_usd, b.spent_usd, b.period, b.period_start
			INTO v_limit, v_spent, v_period, v_start FROM llm_budgets b
			WHERE b.kind = k AND b.scope = s FOR UPDATE;
		IF NOT FOUND AND d IS NOT NULL THEN
			INSERT INTO llm_budgets (kind, scope, limit_usd, spent_usd)
			VALUES (k, s, d, coalesce((SELECT sum(c.cost_usd) FROM llm_calls c
				WHERE (k = 'project' AND c.project = s) OR (k = 'user' AND c.user_id = s)), 0))
			ON CONFLICT DO NOTHING;
			SELECT b.limit_usd, b.spent_usd, b.period, b.period_start
				INTO v_limit, v_spent, v_period, v_start FROM llm_budgets b
				WHERE b.kind = k AND b.scope = s FOR UPDATE;
		END IF;
		CONTINUE WHEN v_limit IS NULL;
		v_now_start := llm_period_start(v_period, now());
		IF v_start < v_now_start THEN
			v_start := v_now_start;
			v_spent := 0;
			UPDATE llm_budgets b SET spent_usd = 0, period_start = v_start, updated_at = now()
			WHERE b.kind = k AND b.scope = s;
		END IF;
		SELECT coalesce(sum(r.amount_usd), 0) INTO held FROM llm_reservations r
			WHERE r.expires_at > now() AND (v_start IS NULL OR r.created_at >= v_start)
			AND ((k = 'project' AND r.project = s) OR (k = 'user' AND r.user_id = s));
		IF v_spent + held + p_amount > v_limit THEN
			refused_kind := k; refused_scope := s;
			limit_usd := v_limit; spent_usd := v_spent; reserved_usd := held;
			period := v_period; resets_at := llm_period_end(v_period, v_start);
			RETURN;
		END IF;
		v_limit := NULL;
	END LOOP;
	INSERT INTO llm_reservations (project, user_id, amount_usd, expires_at)
	VALUES (p_project, p_user, p_amount, now() + make_interval(secs => p_ttl_ms / 1000.0))
	RETURNING id INTO reservation;
END $$;

-- As in 002, and: the cost of a call is spending of the period it settles
-- in; a budget whose period has passed starts the new one with it.
CREATE OR REPLACE FUNCTION llm_settle(p_reservation bigint, p_project text, p_user text,
	p_cost numeric)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF p_reservation IS NOT NULL THEN
		DELETE FROM llm_reservations WHERE id = p_reservation;
	END IF;
	IF p_cost > 0 THEN
		UPDATE llm_budgets b SET
			spent_usd = CASE WHEN b.period_start < llm_period_start(b.period, now())
				THEN p_cost ELSE b.spent_usd + p_cost END,
			period_start = CASE WHEN b.period_start < llm_period_start(b.period, now())
				THEN llm_period_start(b.period, now()) ELSE b.period_start END,
			updated_at = now()
		WHERE (b.kind = 'project' AND b.scope = p_project)
			OR (b.kind = 'user' AND b.scope = p_user);
	END IF;
END $$;

-- Sets the limit of a budget, creating it with the scope's spending in the
-- current period so far (from the ledger). `p_period` NULL keeps the
-- period of an existing budget ('total' for a new one); a new period starts
-- now, its spending counted from the ledger.
CREATE FUNCTION llm_budget_set(p_kind text, p_scope text, p_limit numeric, p_period text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	v_period text;
	v_start timestamptz;
	v_spent numeric;
BEGIN
	SELECT b.period INTO v_period FROM llm_budgets b
		WHERE b.kind = p_kind AND b.scope = p_scope FOR UPDATE;
	IF FOUND AND (p_period IS NULL OR p_period = v_period) THEN
		UPDATE llm_budgets b SET limit_usd = p_limit, updated_at = now()
		WHERE b.kind = p_kind AND b.scope = p_scope;
		RETURN;
	END IF;
	v_period := coalesce(p_period, 'total');
	v_start := llm_period_start(v_period, now());
	SELECT coalesce(sum(c.cost_usd), 0) INTO v_spent FROM llm_calls c
		WHERE ((p_kind = 'project' AND c.project = p_scope)
			OR (p_kind = 'user' AND c.user_id = p_scope))
		AND (v_start IS NULL OR c.created_at >= v_start);
	INSERT INTO llm_budgets (kind, scope, limit_usd, spent_usd, period, period_start)
	VALUES (p_kind, p_scope, p_limit, v_spent, v_period, v_start)
	ON CONFLICT (kind, scope) DO UPDATE SET limit_usd = EXCLUDED.limit_usd,
		spent_usd = EXCLUDED.spent_usd, period = EXCLUDED.period,
		period_start = EXCLUDED.period_start, updated_at = now();
END $$;
