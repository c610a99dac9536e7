-- Secrets, resource handles and their audit trail. Values are stored only
-- sealed with the master key (libsodium secretbox); see secrets/store.h and
-- secrets/resource.h, and ARCHITECTURE.md §6.

-- The one row that identifies the master key in use: a keyed BLAKE2b hash of
-- a constant (the key check value). It reveals nothing about the key, and
-- lets a process holding the wrong key stop before it decrypts or writes.
-- Writers of `secrets` take this row FOR SHARE, rotate-key takes it FOR
-- UPDATE, so nothing is sealed with a key that is being replaced.
CREATE TABLE secret_keys (
	id          int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
	version     int NOT NULL DEFAULT 1,          -- +1 at each rotate-key
	kcv         text NOT NULL CHECK (kcv ~ '^[0-9a-f]{64}$'),
	created_at  timestamptz NOT NULL DEFAULT now(),
	rotated_at  timestamptz
);

CREATE TABLE secrets (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'),
	scope        text,                           -- NULL: any project may be granted it
	nonce        bytea NOT NULL CHECK (octet_length(nonce) = 24),
	sealed       bytea NOT NULL,                 -- secretbox(name || 0x00 || value)
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),
	last_used_at timestamptz,
	uses         bigint NOT NULL DEFAULT 0
);

-- A handle stands for a secret inside one project (scope): prompts, state,
-- transcripts and messages hold the handle, the spawner resolves it into a
-- worker's environment variable `env`. Handles are never deleted, only
-- revoked, so the audit trail keeps its meaning.
CREATE TABLE resources (
	handle        text PRIMARY KEY CHECK (handle ~ '^res_[a-z2-7]{26}$'),
	scope         text NOT NULL,
	kind          text NOT NULL CHECK (kind IN ('llm', 'git', 'database', 'generic')),
	secret_id     bigint REFERENCES secrets (id) ON DELETE SET NULL,
	secret_name   text NOT NULL,                 -- kept after the secret is removed
	env           text NOT NULL,
	note          text NOT NULL DEFAULT '',
	created_by    text NOT NULL DEFAULT '',
	created_at    timestamptz NOT NULL DEFAULT now(),
	revoked_at    timestamptz,
	revoke_reason text,
	last_used_at  timestamptz,
	uses          bigint NOT NULL DEFAULT 0
);
CREATE INDEX resources_scope ON resources (scope, created_at);
CREATE INDEX resources_secret_live ON resources (secret_id) WHERE revoked_at IS NULL;

-- Who used or changed what, and when: each resolution of a handle (by which
-- run or worker), each refusal, allocations, revocations, secrets set or
-- removed, key rotations. Never holds a value.
CREATE TABLE secret_audit (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT now(),
	action      text NOT NULL
		CHECK (action IN ('resolve', 'deny', 'allocate', 'revoke', 'set', 'rm', 'rotate')),
	handle      text,
	secret_name text,
	scope       text,
	actor       text NOT NULL,                   -- "worker:w-3", "run:17", "llm", "cli:uid 1000"
	run_id      bigint,
	detail      text NOT NULL DEFAULT ''
);
CREATE INDEX secret_audit_handle ON secret_audit (handle, id) WHERE handle IS NOT NULL;
CREATE INDEX secret_audit_secret ON secret_audit (secret_name, id);
