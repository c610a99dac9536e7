-- What a running worker is doing, for `orchestrator status`, the chat's
-- /status and `orchestrator show`: the spawner writes it as the worker moves
-- on (its phase, the agent's step and last command, already passed through
-- the secrets filter) and leaves the last value when the worker finishes.
--   {"phase": "running the tests", "step": 7, "action": "$ pytest -q",
--    "at": 1795303088731}
ALTER TABLE workers ADD COLUMN progress jsonb;
