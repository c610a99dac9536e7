-- Default budgets with a period: a project or user without a budget row
-- gets one from ORCH_LLM_PROJECT_BUDGET / ORCH_LLM_USER_BUDGET at its first
-- call; ORCH_LLM_BUDGET_PERIOD (p_default_period: total, day, week, month)
-- now gives that budget its period, starting with the scope's spending in
-- the current period. Otherwise as in 007.

DROP FUNCTION llm_reserve(text, text, numeric, int, numeric, numeric);
CREATE FUNCTION llm_reserve(p_project text, p_user text, p_amount numeric, p_ttl_ms int,
	p_project_default numeric, p_user_default numeric, p_default_period text,
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
			v_now_start := llm_period_start(coalesce(p_default_period, 'total'), now());
			INSERT INTO llm_budgets (kind, scope, limit_usd, spent_usd, period, period_start)
			VALUES (k, s, d, coalesce((SELECT sum(c.cost_usd) FROM llm_calls c
				WHERE ((k = 'project' AND c.project = s) OR (k = 'user' AND c.user_id = s))
				AND (v_now_start IS NULL OR c.created_at >= v_now_start)), 0),
				coalesce(p_default_period, 'total'), v_now_start)
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
