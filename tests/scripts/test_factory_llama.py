#!/usr/bin/env python3
"""The whole factory on a real llama-server with a tiny random-weight model
(../shared/llama, or ORCH_TEST_LLAMA_DIR): `orchestrator serve` on it, a
project started with `orchestrator new`, its questions answered in
`orchestrator chat` and with `orchestrator approve`, as a person would. The
model writes nonsense, but every structured call must be taken by the server
(never "failed to parse grammar") and pass our checks or be asked again;
whatever it says, the project must end in a clear question or a clear error
within a bounded number of calls and tokens, never a loop, and make no call
while it waits. Prints TAP; without llama-server one line says it is skipped."""
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time

BIN = os.environ.get("ORCH_BIN", "bin/orchestrator")
DATA = os.environ.get("ORCH_DATA_DIR", "/tmp")
MAX_CALLS = 60          # model calls a project may make before it must have stopped
MAX_TOKENS_OUT = 60000  # and the tokens they may write
results = []


def check(ok, desc):
    results.append((bool(ok), desc))
    return bool(ok)


def finish():
    print("1..%d" % len(results))
    for i, (ok, desc) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
    return 0 if all(ok for ok, _ in results) else 1


def llama_dir():
    d = os.environ.get("ORCH_TEST_LLAMA_DIR") or "../shared/llama"
    d = os.path.realpath(d)
    if not os.path.isdir(d):
        return None, "%s not found; put ../shared beside the checkout or set ORCH_TEST_LLAMA_DIR" % d
    if not os.access(os.path.join(d, "llama-server"), os.X_OK) or \
            not os.path.exists(os.path.join(d, "start.sh")):
        return None, "%s has no executable llama-server and start.sh" % d
    return d, None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Llama:
    """A llama-server started with start.sh; a watchdog kills it if this test dies."""

    def __init__(self, d):
        self.log = os.path.join(DATA, "llama-server.log")
        env = dict(os.environ, CTX="8192", NP="2", MODEL="tiny.gguf", THREADS="1", LOG=self.log)
        # the '"' token favoured, so the random model's JSON strings end
        args = ["-l", "34+4", "-l", "401+4", "-s", "1"]
        for _ in range(5):
            self.port = free_port()
            r = subprocess.run(["bash", os.path.join(d, "start.sh"), str(self.port)] + args,
                               env=env, capture_output=True, text=True)
            if r.returncode == 0:
                self.pid = int(r.stdout.strip().splitlines()[-1])
                break
            if "busy" not in r.stderr:
                raise RuntimeError("llama-server did not start: " + r.stderr)
        else:
            raise RuntimeError("no free port for llama-server")
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c",
             "import os, signal, sys\nsys.stdin.read()\n"
             "try:\n os.kill(%d, signal.SIGKILL)\nexcept OSError:\n pass\n" % self.pid],
            stdin=subprocess.PIPE)

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except OSError:
            pass
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except OSError:
                break
            time.sleep(0.05)
        self.watchdog.stdin.close()
        self.watchdog.wait(10)


class Term:
    """`orchestrator chat` in a pseudo-terminal."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(argv[0], argv, env)
        self.out = ""

    def send(self, line):
        os.write(self.fd, (line + "\n").encode())

    def pump(self, seconds=0.1):
        until = time.monotonic() + seconds
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    return
                self.out += data.decode("utf-8", "replace")

    def close(self):
        try:
            self.send("/quit")
        except OSError:
            pass
        for _ in range(100):
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return
            self.pump(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def sql(query, *args):
    r = subprocess.run(["psql", "-tAq", os.environ["DATABASE_URL"], "-c", query % args],
                       capture_output=True, text=True)
    return r.stdout.strip()


def sql_int(query, *args):
    v = sql(query, *args)
    return int(v) if v else 0


def run_state(thread):
    """(status, [waiting keys]) of the thread's latest run."""
    row = sql("SELECT status, coalesce(array_to_string(waiting_on, ','), '') FROM runs "
              "WHERE thread_id = %d ORDER BY id DESC LIMIT 1", thread)
    if not row:
        return "", []
    status, waiting = row.split("|", 1)
    return status, [w for w in waiting.split(",") if w]


def settle(thread, term, timeout=180):
    """Waits until the thread's run has stopped (waiting, done or failed) for a second."""
    until = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < until:
        term.pump(0.2)
        busy = sql_int("SELECT count(*) FROM runs WHERE thread_id = %d AND status IN "
                       "('queued', 'running')", thread)
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.0:
            return True
    return False


def last_message(thread):
    return sql("SELECT payload->>'text' FROM outbox WHERE thread_id = %d AND kind LIKE 'term.%%' "
               "AND payload ? 'text' ORDER BY id DESC LIMIT 1", thread)


def main():
    d, why = llama_dir()
    if not d:
        print("1..1\nok 1 - the factory on llama-server # skipped: no llama-server (%s)" % why)
        print("skipped: no llama-server (%s)" % why)
        return 0
    llama = Llama(d)
    env = dict(os.environ, LLM_BASE_URL="http://127.0.0.1:%d/v1" % llama.port, LLM_MODEL="tiny",
               LLM_SLOTS="4", LLM_CONTEXT="8192", LLM_MAX_TOKENS="512", ORCH_LEASE="2s",
               ORCH_POLL="100ms", ORCH_ENGINE_THREADS="2", ORCH_LLM_STATS_INTERVAL="1s",
               ORCH_LLM_IDLE_TIMEOUT="30s", ORCH_LOG_FORMAT="text", ORCH_LOG_LEVEL="info",
               NO_COLOR="1", TERM="dumb")
    for k in ("TELEGRAM_BOT_TOKEN", "ORCH_MODELS"):
        env.pop(k, None)
    serve_log = open(os.path.join(DATA, "serve.log"), "w")
    serve = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=serve_log)
    term = None
    try:
        time.sleep(0.5)
        r = subprocess.run([BIN, "new", "--detach", "--name", "llama",
                            "a command-line tool that counts the words in files"],
                           env=env, capture_output=True, text=True)
        m = re.search(r"project (term:llama:\d+) started \(thread (\d+)\)", r.stdout)
        if not check(r.returncode == 0 and m, "orchestrator new starts the project"):
            print("# " + r.stdout + r.stderr)
            return finish()
        key, thread = m.group(1), int(m.group(2))
        term = Term([BIN, "chat", "--name", "llama", "--no-color"], env)

        steps, outcome, answers, approved = [], None, 0, 0
        for _ in range(10):
            if not settle(thread, term):
                outcome = "busy"
                break
            status, waiting = run_state(thread)
            st = subprocess.run([BIN, "state", str(thread)], env=env, capture_output=True,
                                text=True)
            try:
                stage = json.loads(st.stdout).get("stage", "")
            except ValueError:
                stage = "?"
            steps.append("%s/%s/%s" % (status, ",".join(waiting), stage))
            if status == "waiting" and any(w.startswith("plan:") for w in waiting):
                outcome = "the plan question"
                break
            if status == "waiting" and any(w.startswith("spec:") for w in waiting):
                # the spec is proposed: approve it, the architect plans
                a = subprocess.run([BIN, "approve", key], env=env, capture_output=True, text=True)
                check(a.returncode == 0, "the spec is approved from the terminal")
                approved += 1
                if approved > 2:
                    outcome = "the spec question"
                    break
                continue
            if status == "waiting" and waiting == ["input"]:
                if answers >= 3:
                    outcome = "a question in the conversation"
                    break
                answers += 1
                term.send("Python 3, the standard library only, one command. Write the spec "
                          "now, please.")
                time.sleep(0.3)
                continue
            text = last_message(thread) or ""
            if status in ("done", "failed") and ("failed" in text or "⚠️" in text):
                outcome = "an error: " + text.splitlines()[0][:200]
                break
            outcome = "%s (waiting for %s): %s" % (status, ",".join(waiting), text[:200])
            break
        print("# steps: " + "; ".join(steps))
        print("# it ended in " + str(outcome))
        check(outcome is not None and outcome != "busy" and not outcome.startswith("done (") and
              not outcome.startswith("waiting ("),
              "the project ends in a clear question or error (%s)" % outcome)

        # what the model did
        calls = sql_int("SELECT count(*) FROM llm_calls WHERE project = '%s'", key)
        tokens = sql_int("SELECT coalesce(sum(tokens_out), 0) FROM llm_calls WHERE project = '%s'",
                         key)
        print("# %d model calls, %d tokens written; outcomes: %s" % (
            calls, tokens, sql("SELECT string_agg(outcome || ' ' || n, ', ') FROM (SELECT outcome, "
                               "count(*) n FROM llm_calls WHERE project = '%s' GROUP BY outcome) x",
                               key)))
        check(0 < calls <= MAX_CALLS, "a bounded number of model calls (%d)" % calls)
        check(tokens <= MAX_TOKENS_OUT, "a bounded number of tokens (%d)" % tokens)
        check(sql_int("SELECT count(*) FROM llm_calls WHERE project = '%s' AND (outcome = "
                      "'schema_refused' OR error LIKE '%%failed to parse grammar%%')", key) == 0,
              "every schema sent is taken by the server's grammar converter")
        check(sql_int("SELECT count(*) FROM llm_calls WHERE project = '%s' AND outcome NOT IN "
                      "('ok', 'truncated', 'invalid_output')", key) == 0,
              "every call is answered: its reply passes our checks or is asked again")
        first = sql("SELECT outcome FROM llm_calls WHERE project = '%s' AND node = 'brainstorm' "
                    "ORDER BY id LIMIT 1", key)
        check(first in ("ok", "truncated", "invalid_output"),
              "brainstorm's structured call is answered (%s)" % first)
        check(sql_int("SELECT count(*) FROM outbox WHERE thread_id = %d AND kind LIKE 'term.%%' "
                      "AND (payload->>'text' NOT LIKE '%%failed%%' OR kind = 'term.approval')",
                      thread) >= 2,
              "brainstorm gets past its structured call: a question or a spec comes back")

        # no call while it waits
        before = sql_int("SELECT count(*) FROM llm_calls WHERE project = '%s'", key)
        term.pump(3.0)
        check(sql_int("SELECT count(*) FROM llm_calls WHERE project = '%s'", key) == before and
              sql_int("SELECT count(*) FROM runs WHERE thread_id = %d AND status IN "
                      "('queued', 'running')", thread) == 0,
              "no model call while the project waits")
        # the person saw it in the chat
        check("orchestrator" in term.out or "◆" in term.out or len(term.out) > 0,
              "the conversation is shown in the terminal chat")
    finally:
        if term:
            term.close()
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
        serve_log.close()
        llama.stop()
    if not all(ok for ok, _ in results):
        with open(os.path.join(DATA, "serve.log")) as f:
            for line in f.read().splitlines()[-40:]:
                print("# " + line)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
