-- A budget extension is an effect of the step that decides it: the node
-- writes an outbox row of kind 'llm.budget_extend' with the step's other
-- effects, and this trigger applies it in the same transaction as the
-- step's checkpoint. A step that does not commit extends nothing; a step run
-- again after a crash commits its row once. The grant key ("<thread>:<question
-- key>") is recorded here, so one decision extends a budget once even if it
-- is emitted again. The row is written as sent: there is nothing left to
-- deliver, and its result keeps the new limit.
CREATE TABLE llm_budget_grants (
	grant_key   text PRIMARY KEY,
	kind        text NOT NULL,                 -- project | user
	scope       text NOT NULL,
	add_usd     numeric(18, 9) NOT NULL,
	applied     boolean NOT NULL,              -- false: the scope had no budget
	thread_id   bigint,
	run_id      bigint,
	step        int,
	created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION llm_budget_extend_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	v_key   text := NEW.payload->>'grant_key';
	v_kind  text := NEW.payload->>'kind';
	v_scope text := NEW.payload->>'scope';
	v_add   numeric := (NEW.payload->>'add_usd')::numeric;
	v_limit numeric;
	v_rows  int;
BEGIN
	IF v_key IS NULL OR v_kind IS NULL OR v_scope IS NULL OR v_add IS NULL OR v_add <= 0 THEN
		RAISE EXCEPTION 'a budget extension needs grant_key, kind, scope and a positive add_usd'
			USING ERRCODE = '22023';
	END IF;
	INSERT INTO llm_budget_grants (grant_key, kind, scope, add_usd, applied, thread_id,
				       run_id, step)
	VALUES (v_key, v_kind, v_scope, v_add, false, NEW.thread_id, NEW.run_id, NEW.step)
	ON CONFLICT (grant_key) DO NOTHING;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	IF v_rows = 1 THEN
		UPDATE llm_budgets SET limit_usd = limit_usd + v_add, updated_at = now()
		WHERE kind = v_kind AND scope = v_scope RETURNING limit_usd INTO v_limit;
		IF FOUND THEN
			UPDATE llm_budget_grants SET applied = true WHERE grant_key = v_key;
		END IF;
	END IF;
	NEW.state := 'sent';
	NEW.sent_at := now();
	NEW.result := jsonb_build_object('granted', v_rows = 1, 'limit_usd', v_limit);
	RETURN NEW;
END $$;

CREATE TRIGGER llm_budget_extend BEFORE INSERT ON outbox FOR EACH ROW
	WHEN (NEW.kind = 'llm.budget_extend') EXECUTE FUNCTION llm_budget_extend_row();

-- the side-transaction record it replaces
DROP TABLE factory_budget_grants;
