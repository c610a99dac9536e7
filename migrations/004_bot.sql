-- The Telegram bot and the terminal chat (bot/): stored updates, chats and
-- their projects, approvals, delivery progress of outbox rows. See bot/bot.h
-- for the contract with nodes and ARCHITECTURE.md §7.

-- Every update taken from getUpdates, stored before its batch is confirmed.
-- The primary key makes a redelivered update a no-op.
CREATE TABLE bot_updates (
	update_id   bigint PRIMARY KEY,
	kind        text NOT NULL,            -- text, command, callback, other, invalid, refused
	chat_id     bigint,
	user_id     bigint,
	body        jsonb,                    -- the update as Telegram sent it
	received_at timestamptz NOT NULL DEFAULT now()
);

-- A chat ("tg:<chat id>" or "term:<name>") and its projects: project n is
-- the thread "<chat>:<n>"; `active` is the one plain text goes to.
CREATE TABLE bot_chats (
	chat        text PRIMARY KEY,
	active      int,
	next_n      int NOT NULL DEFAULT 1,
	updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Users who were told once that the bot is not theirs.
CREATE TABLE bot_refused (
	user_id     bigint PRIMARY KEY,
	refused_at  timestamptz NOT NULL DEFAULT now()
);

-- An approval asked by a node (outbox kind <channel>.approval). Its buttons
-- carry a:<id>:<option>:<mac>; a click decides it once.
CREATE TABLE approvals (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	outbox_id   bigint UNIQUE,            -- the row that asked (idempotent creation)
	thread_id   bigint NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	channel     text NOT NULL,            -- telegram | term
	chat        text NOT NULL,            -- Telegram chat id or terminal name
	key         text NOT NULL,            -- event key the decision is delivered under
	question    text NOT NULL,
	options     jsonb NOT NULL,           -- [{"id": "approve", "label": "Approve"}, ...]
	approvers   bigint[],                 -- who may decide; NULL: every allowed user
	state       text NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'decided', 'expired')),
	decision    text,                     -- the chosen option id
	decided_by  jsonb,                    -- {"id": 42, "name": "Ada"}
	message_id  bigint,                   -- the message holding the buttons
	expires_at  timestamptz NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	decided_at  timestamptz
);
CREATE INDEX approvals_pending ON approvals (expires_at) WHERE state = 'pending';

-- Parts of an outbox row already delivered (a long text goes out as several
-- messages, paced by the rate limits): a retried row skips them.
CREATE TABLE bot_sent (
	outbox_id   bigint NOT NULL,
	part        int NOT NULL,
	message_id  bigint,
	sent_at     timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (outbox_id, part)
);

-- Messages nodes refer to by name (payload "ref"), to edit them later:
-- progress shown by editing one message rather than flooding the chat.
CREATE TABLE bot_refs (
	chat        text NOT NULL,
	ref         text NOT NULL,
	message_id  bigint NOT NULL,
	text_sha    text,                     -- what it shows now (an edit to the same is skipped)
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (chat, ref)
);

-- Routes one piece of user input to a chat's active project, atomically:
-- a chat without one gets project 1 (or its next number) started with it;
-- a project whose run waits for "input" gets it as that event (idempotent
-- on p_idem); otherwise a run is queued with {"input": p_input}, behind
-- the thread's active run if there is one. Returns the thread, the run
-- queued or woken (may be NULL) and how: started | delivered | queued.
CREATE FUNCTION bot_route_input(p_chat text, p_graph text, p_input jsonb, p_idem text,
	p_meta jsonb, OUT thread_id bigint, OUT run_id bigint, OUT how text)
LANGUAGE plpgsql AS $$
DECLARE
	v_active int;
	v_key text;
	v_graph text;
	v_dup boolean;
	v_waits boolean;
BEGIN
	-- the common case in one statement: the chat's active project exists
	SELECT c.active, t.id, t.graph INTO v_active, thread_id, v_graph
		FROM bot_chats c JOIN threads t ON t.key = c.chat || ':' || c.active
		WHERE c.chat = p_chat FOR UPDATE OF c, t;
	IF thread_id IS NULL THEN
		INSERT INTO bot_chats (chat) VALUES (p_chat) ON CONFLICT (chat) DO NOTHING;
		SELECT active INTO v_active FROM bot_chats WHERE chat = p_chat FOR UPDATE;
		IF v_active IS NULL THEN
			UPDATE bot_chats SET active = next_n, next_n = next_n + 1, updated_at = now()
				WHERE chat = p_chat RETURNING active INTO v_active;
		END IF;
		v_key := p_chat || ':' || v_active;
		SELECT t.id, t.graph INTO thread_id, v_graph FROM threads t WHERE t.key = v_key
			FOR UPDATE;
		IF thread_id IS NULL THEN
			INSERT INTO threads (key, graph, metadata)
				VALUES (v_key, p_graph, coalesce(p_meta, '{}') || jsonb_build_object('n', v_active))
				RETURNING id, graph INTO thread_id, v_graph;
		END IF;
	END IF;
	-- the thread's active runs: one waiting for input takes the text
	SELECT r.id, r.status = 'waiting' AND 'input' = ANY (r.waiting_on) INTO run_id, v_waits
		FROM runs r WHERE r.thread_id = bot_route_input.thread_id
		AND r.status IN ('queued', 'running', 'waiting')
		ORDER BY (r.status = 'waiting' AND 'input' = ANY (r.waiting_on)) DESC LIMIT 1;
	IF v_waits THEN
		SELECT d.run_id, d.duplicate INTO run_id, v_dup
			FROM orch_deliver(thread_id, 'input', p_input, p_idem, NULL, 0) d;
		how := 'delivered';
		RETURN;
	END IF;
	how := CASE WHEN run_id IS NOT NULL THEN 'queued' ELSE 'started' END;
	INSERT INTO runs (thread_id, graph, input)
		VALUES (thread_id, v_graph, jsonb_build_object('input', p_input)) RETURNING id INTO run_id;
END $$;

-- Routes a batch: p_items is [{"chat", "input", "idem", "meta"}, ...], in
-- order. One call per batch keeps ingestion at one round trip. The common
-- case — every chat has its active project and none of them waits for
-- input — is routed set-wise (chats and threads locked in chat order, one
-- INSERT of all runs, in item order); anything else item by item.
CREATE FUNCTION bot_route_batch(p_graph text, p_items jsonb)
RETURNS TABLE (idx int, thread_id bigint, run_id bigint, how text) LANGUAGE plpgsql AS $$
DECLARE
	v_item jsonb;
	v_i int := 0;
	v_chats text[];
	v_locked text[];
	v_threads bigint[];
	v_graphs text[];
	v_busy bigint[];
BEGIN
	SELECT array_agg(DISTINCT e->>'chat') INTO v_chats FROM jsonb_array_elements(p_items) e;
	SELECT array_agg(l.chat ORDER BY l.chat), array_agg(l.id ORDER BY l.chat),
		array_agg(l.graph ORDER BY l.chat) INTO v_locked, v_threads, v_graphs
		FROM (SELECT c.chat, t.id, t.graph FROM bot_chats c
			JOIN threads t ON t.key = c.chat || ':' || c.active
			WHERE c.chat = ANY (v_chats) ORDER BY c.chat FOR UPDATE OF c, t) l;
	IF v_chats IS NOT NULL AND cardinality(v_locked) = cardinality(v_chats)
			AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = ANY (v_threads)
				AND r.status IN ('queued', 'running', 'waiting') AND r.status = 'waiting'
				AND 'input' = ANY (r.waiting_on)) THEN
		SELECT array_agg(DISTINCT r.thread_id) INTO v_busy FROM runs r
			WHERE r.thread_id = ANY (v_threads) AND r.status IN ('queued', 'running', 'waiting');
		RETURN QUERY
			WITH m AS (SELECT unnest(v_locked) AS chat, unnest(v_threads) AS thread,
					unnest(v_graphs) AS graph),
			ins AS (INSERT INTO runs (thread_id, graph, input)
				SELECT m.thread, m.graph, jsonb_build_object('input', e.value->'input')
				FROM jsonb_array_elements(p_items) WITH ORDINALITY e
				JOIN m ON m.chat = e.value->>'chat' ORDER BY e.ordinality
				RETURNING runs.id, runs.thread_id)
			SELECT (row_number() OVER (ORDER BY ins.id))::int - 1, ins.thread_id, ins.id,
				CASE WHEN ins.thread_id = ANY (coalesce(v_busy, '{}'))
					OR ins.id <> min(ins.id) OVER (PARTITION BY ins.thread_id)
					THEN 'queued' ELSE 'started' END
			FROM ins;
		RETURN;
	END IF;
	FOR v_item IN SELECT value FROM jsonb_array_elements(p_items) LOOP
		SELECT r.thread_id, r.run_id, r.how INTO thread_id, run_id, how
			FROM bot_route_input(v_item->>'chat', p_graph, v_item->'input', v_item->>'idem',
				v_item->'meta') r;
		idx := v_i;
		v_i := v_i + 1;
		RETURN NEXT;
	END LOOP;
END $$;

-- Double texting meets a question: when a run parks waiting for "input"
-- while chat input is queued behind it as a new run, that input is the
-- answer. The oldest such queued run is cancelled and its input delivered
-- to the waiting run as the "input" event, which queues it again.
CREATE FUNCTION bot_input_handoff() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	v_run bigint;
	v_input jsonb;
BEGIN
	SELECT r.id, r.input->'input' INTO v_run, v_input FROM runs r
		WHERE r.thread_id = NEW.thread_id AND r.status = 'queued'
		AND r.input ? 'input' AND r.input->'input' ? 'channel'
		ORDER BY r.id LIMIT 1 FOR UPDATE SKIP LOCKED;
	IF v_run IS NULL THEN
		RETURN NULL;
	END IF;
	UPDATE runs SET status = 'cancelled', error = 'its input was handed to the waiting run '
		|| NEW.id, finished_at = now(), updated_at = now() WHERE id = v_run;
	INSERT INTO events (thread_id, key, value, idem)
		VALUES (NEW.thread_id, 'input', v_input, 'handoff:' || v_run)
		ON CONFLICT (idem) DO NOTHING;
	UPDATE runs SET status = 'queued', ready_at = now(), updated_at = now()
		WHERE id = NEW.id AND status = 'waiting';
	RETURN NULL;
END $$;
CREATE TRIGGER runs_bot_input_handoff AFTER UPDATE OF status ON runs
	FOR EACH ROW WHEN (NEW.status = 'waiting' AND OLD.status IS DISTINCT FROM 'waiting'
		AND 'input' = ANY (NEW.waiting_on))
	EXECUTE FUNCTION bot_input_handoff();
