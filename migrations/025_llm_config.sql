-- The model configuration stored in the database (llm/config.h): endpoints,
-- models, roles and their escalation chains, the scheduler and the default
-- budgets, in the same terms as a models file (ORCH_MODELS), plus prompt
-- templates that override the built-in ones. Every change bumps `version`,
-- is written with its audit row in one transaction and announced with
-- NOTIFY orch_llm_config, so every running process puts it in force within
-- seconds. Until something is stored (`stored` false) every process uses its
-- own file or environment, as before.

CREATE TABLE llm_config (
	id          int PRIMARY KEY CHECK (id = 1),
	version     bigint NOT NULL DEFAULT 0,
	stored      boolean NOT NULL DEFAULT false,
	scheduler   jsonb,                 -- {"lookahead", "starvation"}
	budgets     jsonb,                 -- {"project", "user", "period"}
	updated_at  timestamptz NOT NULL DEFAULT now(),
	updated_by  text
);
INSERT INTO llm_config (id) VALUES (1);

-- One row per endpoint; `spec` as under "endpoints" in a models file (keys
-- only as a secret's name: api_key_secret).
CREATE TABLE llm_config_endpoints (
	name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
	spec        jsonb NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	updated_by  text
);

-- One row per model; `spec` as under "models" (its "endpoint" included).
CREATE TABLE llm_config_models (
	name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 95),
	spec        jsonb NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	updated_by  text
);

-- A role's models, cheapest first: the next is asked when one fails.
CREATE TABLE llm_config_roles (
	name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
	models      text[] NOT NULL CHECK (cardinality(models) BETWEEN 1 AND 16),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	updated_by  text
);

-- A prompt template that overrides the built-in one of the same path
-- (nodes/prompts/architect_system.md, spawner/prompts/agent_system.md, ...).
CREATE TABLE prompt_templates (
	name        text PRIMARY KEY,
	body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 262144),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	updated_by  text
);

-- Who changed what, when, from what to what: model configuration, budgets,
-- prompt templates. `old`/`new` hold the object's configuration (never a
-- key's value: keys are named secrets).
CREATE TABLE llm_config_audit (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT now(),
	actor       text NOT NULL,
	action      text NOT NULL,         -- set, remove, seed, clear, extend
	kind        text NOT NULL,         -- endpoint, model, role, scheduler, budgets, budget, prompt, config
	name        text NOT NULL,
	old         jsonb,
	new         jsonb,
	version     bigint
);
CREATE INDEX llm_config_audit_at ON llm_config_audit (at);
