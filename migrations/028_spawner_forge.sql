-- The pull requests the factory opened on a forge and follows: one row per
-- pull request, written by the spawner that opened it (request mode "pr")
-- and read by the spawners' pollers, which deliver what people write on it
-- and what CI reports on its head to the project's thread as events
-- ("forge"). See spawner/spawner.h and README: Changing an existing
-- repository.
CREATE TABLE forge_prs (
	id          bigserial PRIMARY KEY,
	thread_id   bigint NOT NULL,               -- the project's thread (events go there)
	project     text NOT NULL,                 -- its key: the scope of the handle
	remote      text NOT NULL,                 -- the git URL the head branch was pushed to
	api         text NOT NULL,                 -- the forge's API base URL
	owner       text NOT NULL,
	name        text NOT NULL,
	number      bigint NOT NULL,
	head        text NOT NULL,                 -- the head branch
	base        text NOT NULL,
	handle      text,                          -- the git handle whose secret is the token
	state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'merged', 'closed', 'stopped')),
	login       text,                          -- the token's user: its own comments are no events
	seen        jsonb NOT NULL DEFAULT '{}',   -- what was delivered: {"issue", "review_comment",
	                                           -- "review": last ids, "checks": ["sha:context", ...]}
	poll_at     timestamptz NOT NULL DEFAULT now(),
	polled_at   timestamptz,
	last_error  text,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	UNIQUE (api, owner, name, number)
);
CREATE INDEX forge_prs_due ON forge_prs (poll_at) WHERE state = 'open';

-- Claims the open pull requests due to be read (at most p_limit), moving
-- their next look p_every_ms ahead, so spawners that poll at once share
-- them; "active" says whether the project still has a run (queued,
-- running or waiting) to receive what is found.
CREATE FUNCTION spawn_forge_due(p_every_ms bigint, p_limit int)
RETURNS TABLE (id bigint, thread_id bigint, project text, api text, owner text, name text,
	       number bigint, handle text, login text, seen jsonb, active boolean)
LANGUAGE sql AS $$
	UPDATE forge_prs p SET poll_at = now() + p_every_ms * interval '1 millisecond',
	       polled_at = now()
	 WHERE p.id IN (SELECT f.id FROM forge_prs f WHERE f.state = 'open' AND f.poll_at <= now()
			 ORDER BY f.poll_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
	RETURNING p.id, p.thread_id, p.project, p.api, p.owner, p.name, p.number,
		  coalesce(p.handle, ''), coalesce(p.login, ''), p.seen,
		  EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = p.thread_id
			  AND r.status IN ('queued', 'running', 'waiting'))
$$;
