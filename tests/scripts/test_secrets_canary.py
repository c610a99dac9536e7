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

Then a real spawner runs a worker granted the canary (its agent scripted
through the fake LLM server): the worker's sandbox holds the value exactly,
and neither any request body the fake LLM server receives, nor the stored
transcript, the results stream, the workers table or the spawner's log
holds it. Last, messages and a document carrying the canary go out through
a real `orchestrator bot`: no request the fake Telegram server receives
holds it. Prints TAP."""
import base64
import hashlib
import json
import os
import secrets
import subprocess
import time
import urllib.request

from secrets_common import (BIN, BUILD, DATA, HANDLE, LOGS, Tap, env_with, main_guard, pg_dump,
                            psql, run)


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

    # ARTIFACTS: the other places the canary must be absent from
    spawner_run(t, scope, canary, value_forms, debug)
    telegram_run(t, canary, value_forms, debug)
    return t.done()


def telegram_run(t, canary, value_forms, env):
    """Messages that carry the canary (as a careless node or a model might
    write them) go out through a real `orchestrator bot` to the fake
    Telegram server: every request it receives must lack every form."""
    fake = subprocess.Popen([os.path.join(BUILD, "tests", "progs", "fake_telegram"),
                             "--token", "123456:CANARY-test"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    bot = None
    try:
        port = int(fake.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}"
        b64 = base64.b64encode(canary.encode()).decode()
        text = f"the key is {canary}, or {b64}, or {canary.encode().hex()}"
        for kind, payload in (
                ("telegram.send", {"text": text}),
                ("telegram.send", {"html": f"<b>{canary}</b> leaked"}),
                ("telegram.document", {"filename": "log.txt", "content": text,
                                       "caption": f"caption {canary}"})):
            psql("INSERT INTO outbox (kind, dest, payload) VALUES "
                 f"('{kind}', '4242', '{json.dumps(payload)}'::jsonb)")
        benv = dict(env, TELEGRAM_BOT_TOKEN="123456:CANARY-test", TELEGRAM_API_BASE=base,
                    ORCH_ALLOWED_USERS="42", ORCH_TG_RATE_SCALE="100")
        bot = subprocess.Popen([BIN, "bot"], env=benv, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
        sent = 0
        for _ in range(300):
            sent = int(psql("SELECT count(*) FROM outbox WHERE dest = '4242' AND state = 'sent'"))
            if sent == 3:
                break
            time.sleep(0.1)
        t.check(sent == 3, "the bot delivered the three messages carrying the canary", sent)
        with urllib.request.urlopen(base + "/control/requests") as r:
            requests = json.load(r)["requests"]
        methods = [q.get("method") for q in requests]
        t.check("sendMessage" in methods and "sendDocument" in methods,
                "the fake Telegram server received messages and a document", methods)
        absent_everywhere(t, "every request the fake Telegram server received",
                          [json.dumps(q) for q in requests], value_forms)
    finally:
        if bot:
            bot.terminate()
            out = bot.communicate(timeout=30)[0].decode("utf-8", "replace")
            LOGS.append(out)
        fake.terminate()
        fake.wait(timeout=10)


def spawner_run(t, scope, canary, value_forms, env):
    """A real worker of the real spawner (`orchestrator spawner`) granted the
    canary: its agent (scripted through the fake LLM server) checks the
    variable and then prints it. The model must never see it, nor the
    transcript hold it; the worker's environment must hold it exactly."""
    r = run(["resources", "allocate", "--scope", scope, "--secret", "CANARY_TOKEN"], env=env)
    handle = r.out.strip()
    t.check(r.code == 0 and HANDLE.match(handle), "a new handle to the canary for a worker", r)
    fake = subprocess.Popen([os.path.join(BUILD, "tests", "progs", "fake_openai")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    spawner = None
    try:
        port = json.loads(fake.stdout.readline())["port"]
        base = f"http://127.0.0.1:{port}"
        models = os.path.join(DATA, "canary-models.json")
        with open(models, "w") as f:
            json.dump({"endpoints": {"fake": {"base_url": base + "/v1", "max_retries": 0}},
                       "models": {"m": {"endpoint": "fake", "model": "fake-1",
                                        "context": 100000}},
                       "roles": {"default": ["m"]}}, f)

        def reply(name, args):
            return {"json": {"id": "c", "object": "chat.completion", "model": "fake-1",
                             "choices": [{"index": 0, "finish_reason": "tool_calls",
                                          "message": {"role": "assistant", "content": None,
                                                      "tool_calls": [{
                                                          "id": "call_" + name, "type": "function",
                                                          "function": {"name": name,
                                                                       "arguments": json.dumps(args)}}]}}],
                             "usage": {"prompt_tokens": 10, "completion_tokens": 5}}}
        script = [reply("bash", {"command": "printenv CANARY_TOKEN | tr -d '\\n' | sha256sum"}),
                  reply("bash", {"command": "echo \"the token is $CANARY_TOKEN\""}),
                  reply("submit", {"summary": "checked the token"})]
        urllib.request.urlopen(urllib.request.Request(
            base + "/__script", data=json.dumps(script).encode(),
            headers={"Content-Type": "application/json"}), timeout=10).read()
        repo = os.path.join(DATA, "repos", "canary.git")
        src = os.path.join(DATA, "repos", "canary-src")
        subprocess.run(f"set -e; mkdir -p '{src}'; cd '{src}'; git init -q -b main .; "
                       "echo hi > README; git add README; git -c user.name=t -c user.email=t@t "
                       f"commit -qm init; git clone -q --bare . '{repo}'", shell=True, check=True)
        senv = dict(env, ORCH_MODELS=models, ORCH_WORKER_DISK_KIND="tmpfs",
                    ORCH_SPAWN_CLAIM_IDLE="5s")
        spawner = subprocess.Popen([BIN, "spawner", "--workers", "1"], env=senv,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        req = {"id": "canary-1", "task": "canary", "project": scope, "repo": repo,
               "prompt": "check the token", "handles": [handle]}
        redis_cli("XADD", "orch:spawn", "*", "id", "canary-1", "req", json.dumps(req))
        result = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and result is None and spawner.poll() is None:
            out = redis_cli("XRANGE", "orch:results", "-", "+")
            lines = out.splitlines()
            for i, line in enumerate(lines):
                if line == "canary-1" and i + 2 < len(lines):
                    result = json.loads(lines[i + 2])
            time.sleep(0.1)
        t.check(result is not None and result.get("status") == "unverified",
                "the spawner's worker granted the canary ran to its end", result)
        stream = redis_cli("XRANGE", "orch:results", "-", "+")
    finally:
        if spawner is not None:
            spawner.terminate()
            out, err = spawner.communicate(timeout=60)
            LOGS.append(err.decode("utf-8", "replace"))
            LOGS.append(out.decode("utf-8", "replace"))
        try:
            bodies = urllib.request.urlopen(
                f"http://127.0.0.1:{port}/__requests", timeout=10).read().decode()
        except Exception:  # the checks below then fail
            bodies = ""
        fake.terminate()
        fake.wait()
    digest = hashlib.sha256(canary.encode()).hexdigest()
    t.check(digest in bodies, "the worker's sandbox held the canary, exactly (its sha256 "
            "came back)", bodies[-1500:])
    t.check("the token is [redacted:CANARY_TOKEN]" in bodies,
            "the agent printed the canary, and the model got the marker instead", bodies[-1500:])
    absent_everywhere(t, "every request body the fake LLM server received",
                      bodies.splitlines(), value_forms)
    transcript = os.path.join(DATA, "transcripts", "canary-1.jsonl")
    lines = open(transcript).read().splitlines() if os.path.exists(transcript) else []
    t.check(len(lines) >= 4 and any(digest in ln for ln in lines),
            "the worker's transcript was written", len(lines))
    absent_everywhere(t, "the worker's transcript", lines, value_forms)
    absent_everywhere(t, "the results stream and the spawner's log",
                      stream.splitlines() + LOGS[-2].splitlines(), value_forms)
    absent_everywhere(t, "the workers table", [psql(
        "SELECT coalesce(string_agg(result::text || request::text, ''), '') FROM workers")],
        value_forms)


def redis_cli(*args):
    p = subprocess.run(["redis-cli", "-u", os.environ["REDIS_URL"], *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True, timeout=30)
    return p.stdout.decode("utf-8", "replace")


if __name__ == "__main__":
    main_guard(main)
