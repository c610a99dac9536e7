-- The dashboard's people (web/auth.h): login tokens made by `orchestrator
-- web token --user NAME`, kept only as a hash, expiring and revocable, each
-- acting as an identity that may decide questions (a Telegram approver, or
-- an operator of ORCH_OPERATORS); and the sessions a login opens (a cookie,
-- also kept only as a hash, with the CSRF token of its forms).

CREATE TABLE web_tokens (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
	hash         bytea NOT NULL UNIQUE,          -- BLAKE2b-256 of the token
	telegram_id  bigint,                         -- acts as this Telegram approver
	operator     text,                           -- or as this Unix user of ORCH_OPERATORS
	admin        boolean NOT NULL DEFAULT false, -- may change models, budgets, prompts
	created_by   text NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	expires_at   timestamptz NOT NULL,
	revoked_at   timestamptz,
	last_used_at timestamptz
);
CREATE INDEX web_tokens_name ON web_tokens (name);

CREATE TABLE web_sessions (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	hash         bytea NOT NULL UNIQUE,          -- BLAKE2b-256 of the cookie's value
	token_id     bigint NOT NULL REFERENCES web_tokens (id) ON DELETE CASCADE,
	csrf         text NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	expires_at   timestamptz NOT NULL,
	last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX web_sessions_token ON web_sessions (token_id);
