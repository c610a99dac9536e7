#!/usr/bin/env python3
"""The canary: a secret set through the CLI must never show up where it
should not, in any of its forms, and must reach exactly the workers it was
granted to.

A random canary value is stored with `orchestrator secrets set`, a handle to
it is allocated for one project, and scripted runs (tests/progs/secrets_run:
a real engine run whose spawn request the spawner stand-in resolves into a
worker's environment, logging carelessly on purpose) use it:
  - granted: the worker's environment holds the canary, exactly;
  - not granted, granted to another project, revoked: the worker's
    environment lacks it (or the worker never starts, and the run fails
    with an error that says why).
Then the canary, plain, base64 (standard and URL-safe, with and without
padding) and hex (lower and upper case), must be absent from a pg_dump of
the whole database and from every line any process logged or printed; so
must the master key.

Checks still to add when their parts land (see ARTIFACTS below): every
request body the fake LLM server receives, every request the fake Telegram
server receives, and every stored transcript. Prints TAP."""
import base64
import os
import secrets

from secrets_common import (DATA, HANDLE, LOGS, Tap, env_with, main_guard, pg_dump, psql, run)


def forms(value):
    """The encodings of a value that must never be seen."""
    raw = value.encode()
    out = {
        "plain": value,
        "base64": base64.b64encode(raw).decode(),
        "base64 unpadded": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
        "base64url unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
    }
    return out


def absent_everywhere(t, what, text_lines, value_forms):
    """One check per form: no line of `text_lines` holds it."""
    for name, form in value_forms.items():
        bad = [ln for ln in text_lines if form in ln]
        t.check(not bad, f"the canary ({name}) is absent from {what}",
                "\n".join(bad[:5]))


def main():
    t = Tap()
    # a value whose base64 has '+', '/' and padding in some form
    canary = "canary-" + secrets.token_hex(12) + "+/?=~"
    while len(canary) % 3 == 0:
        canary += "x"
    other = "unrelated-" + secrets.token_hex(10)
    scope = "tg:4242:p1"
    debug = env_with(ORCH_LOG_LEVEL="debug")

    r = run(["secrets", "init"], env=debug)
    t.check(r.code == 0, "secrets init", r)
    master_hex = open(os.path.join(DATA, "master.key")).read().strip()
    r = run(["secrets", "set", "CANARY_TOKEN"], stdin=(canary + "\n").encode(), env=debug)
    t.check(r.code == 0, "the canary is set through the CLI, from stdin", r)
    r = run(["secrets", "set", "OTHER_TOKEN"], stdin=other.encode(), env=debug)
    t.check(r.code == 0, "an unrelated secret is set too", r)
    r = run(["resources", "allocate", "--scope", scope, "--secret", "CANARY_TOKEN", "--kind",
             "generic"], env=debug)
    handle = r.out.strip()
    t.check(r.code == 0 and HANDLE.match(handle), "a handle is allocated for the project", r)
    r = run(["resources", "allocate", "--scope", scope, "--secret", "OTHER_TOKEN"], env=debug)
    other_handle = r.out.strip()
    t.check(r.code == 0 and HANDLE.match(other_handle), "a handle for the unrelated secret", r)

    def worker_env(path):
        if not os.path.exists(path):
            return None
        return dict(line.split("=", 1) for line in open(path).read().splitlines() if "=" in line)

    # granted
    out1 = os.path.join(DATA, "worker-granted.env")
    r = run(["--scope", scope, "--out", out1, "--grant", handle], prog="secrets_run", env=debug)
    t.check(r.code == 0 and "done" in r.out, "a run whose worker is granted the handle completes",
            r)
    env1 = worker_env(out1) or {}
    t.check(env1.get("CANARY_TOKEN") == canary,
            "the granted worker's environment holds the canary, exactly", env1.keys())
    run_id = psql("SELECT max(id) FROM runs")
    t.check(psql("SELECT count(*) FROM secret_audit WHERE action = 'resolve' AND handle = "
                 f"'{handle}' AND actor = 'worker:w-1' AND run_id = {run_id}") == "1",
            "the resolution is audited with the worker and the run")
    t.check("[redacted:CANARY_TOKEN]" in r.err,
            "the run tried to log the canary, and the filter replaced it", r.err[-2000:])

    # not granted (another handle only)
    out2 = os.path.join(DATA, "worker-not-granted.env")
    r = run(["--scope", scope, "--out", out2, "--grant", other_handle], prog="secrets_run",
            env=debug)
    env2 = worker_env(out2)
    t.check(r.code == 0 and env2 is not None and env2.get("OTHER_TOKEN") == other,
            "a worker granted another handle starts with that one", r)
    t.check(env2 is not None and "CANARY_TOKEN" not in env2
            and all(canary not in v for v in env2.values()),
            "... and its environment lacks the canary", env2)

    # granted to another project
    out3 = os.path.join(DATA, "worker-other-project.env")
    r = run(["--scope", "tg:9999:p7", "--out", out3, "--grant", handle], prog="secrets_run",
            env=debug)
    t.check(r.code == 3 and "not started" in r.out and "does not belong to project" in r.out,
            "a handle used by another project fails the run with a clear error", r)
    t.check(not os.path.exists(out3), "... and no worker started")

    # unknown handle
    out4 = os.path.join(DATA, "worker-unknown.env")
    r = run(["--scope", scope, "--out", out4, "--grant", "res_" + "q" * 26], prog="secrets_run",
            env=debug)
    t.check(r.code == 3 and "does not exist" in r.out, "an unknown handle fails the run", r)
    t.check(not os.path.exists(out4), "... and no worker started")
    t.check("does not exist" in psql("SELECT error FROM runs ORDER BY id DESC LIMIT 1"),
            "the run records why it failed")

    # a node's error that quotes the value (a failed push with a token URL)
    out6 = os.path.join(DATA, "worker-error.env")
    r = run(["--scope", scope, "--out", out6, "--grant", handle, "--fail-quoting", "yes"],
            prog="secrets_run", env=debug)
    t.check(r.code == 3 and "git push to https://x-access-token:[redacted:CANARY_TOKEN]@" in r.out,
            "a run failing with an error that quotes the canary stores it filtered", r)
    stored = psql("SELECT error FROM runs ORDER BY id DESC LIMIT 1")
    t.check("[redacted:CANARY_TOKEN]" in stored and canary not in stored,
            "the run's stored error holds the marker, not the value", stored)

    # revoked
    r = run(["resources", "revoke", handle, "--reason", "canary test"], env=debug)
    t.check(r.code == 0, "the handle is revoked", r)
    out5 = os.path.join(DATA, "worker-revoked.env")
    r = run(["--scope", scope, "--out", out5, "--grant", handle], prog="secrets_run", env=debug)
    t.check(r.code == 3 and "revoked" in r.out, "a revoked handle fails the run", r)
    t.check(not os.path.exists(out5), "... and no worker started")
    t.check(int(psql(f"SELECT count(*) FROM secret_audit WHERE action = 'deny' AND handle = "
                     f"'{handle}'")) == 2 and
            psql(f"SELECT count(*) FROM secret_audit WHERE action = 'resolve' AND handle = "
                 f"'{handle}' AND actor = 'node:collect'") == "1",
            "each refusal and resolution is audited")

    # where the canary must never be
    value_forms = forms(canary)
    dump = pg_dump()
    t.check("secret_audit" in dump and handle in dump and "CANARY_TOKEN" in dump,
            "the dump holds the runs, handles and secret names (it is a real dump)")
    absent_everywhere(t, "a pg_dump of the database", dump.splitlines(), value_forms)
    t.check(master_hex not in dump and master_hex.upper() not in dump,
            "the master key is absent from the dump")
    log_lines = [ln for text in LOGS for ln in text.splitlines()]
    t.check(len(log_lines) > 20, "the runs logged at debug level", len(log_lines))
    absent_everywhere(t, "every log line and every command's output", log_lines, value_forms)
    absent_everywhere(t, "the state, outbox and events in the database",
                      [psql("SELECT coalesce(string_agg(coalesce(snapshot::text, '') || "
                            "delta::text, ''), '') FROM checkpoints"),
                       psql("SELECT coalesce(string_agg(payload::text, ''), '') FROM outbox"),
                       psql("SELECT coalesce(string_agg(value::text, ''), '') FROM events")],
                      value_forms)

    # ARTIFACTS: add here, as they land, the other places the canary must be
    # absent from across the same scripted run:
    #   - every request body the fake LLM server (tests/fakes) received;
    #   - every request (URL and body) the fake Telegram server received;
    #   - every stored transcript.
    return t.done()


if __name__ == "__main__":
    main_guard(main)
