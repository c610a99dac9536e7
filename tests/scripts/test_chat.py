#!/usr/bin/env python3
"""`orchestrator chat` driven through a pseudo-terminal, as a person would:
a message becomes a reply, an approval is answered by its number, a question
waits for the next line, commands work, /history shows the conversation and
/quit ends. An engine with the test graph runs beside it on the same
database (tests/progs/chat_engine). Prints TAP."""
import os
import pty
import re
import select
import subprocess
import sys
import time

BIN = os.environ.get("ORCH_BIN", "bin/orchestrator")
BUILD = os.environ.get("ORCH_BUILD", "build")
results = []


def check(ok, desc):
    results.append((bool(ok), desc))


class Term:
    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(argv[0], argv, env)
        self.out = ""

    def send(self, line):
        os.write(self.fd, (line + "\n").encode())

    def expect(self, pattern, timeout=20.0):
        """Waits until `pattern` (a regex) shows up after what was matched before."""
        until = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.out)
            if m:
                self.out = self.out[m.end():]
                return True
            left = until - time.monotonic()
            if left <= 0:
                sys.stdout.write("# timed out waiting for %r; screen tail:\n" % pattern)
                for l in self.out[-800:].splitlines():
                    sys.stdout.write("#   " + l + "\n")
                return False
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    time.sleep(0.05)
                    continue
                self.out += data.decode("utf-8", "replace")

    def wait(self, timeout=10.0):
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                os.read(self.fd, 65536)
            except OSError:
                pass
            time.sleep(0.05)
        os.kill(self.pid, 9)
        return None


def sql(query):
    r = subprocess.run(["psql", "-tAq", os.environ["DATABASE_URL"], "-c", query],
                       capture_output=True, text=True)
    return r.stdout.strip()


SECRET = "tok-9f8e7d6c5b4a3210"


def run(env, *args, stdin=None):
    r = subprocess.run([BIN, *args], env=env, input=stdin, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def secret_typed(env):
    """A secret the person typed is shown nowhere: not live, not in the
    history shown when the chat starts, not in /history, not by `show`."""
    code, out = run(env, "secrets", "init")
    check(code == 0, "secrets init" + ("" if code == 0 else ": " + " ".join(out.split())[:200]))
    code, out = run(env, "secrets", "set", "CHAT_TOKEN", stdin=SECRET)
    check(code == 0, "secrets set" + ("" if code == 0 else ": " + " ".join(out.split())[:200]))
    t = Term([BIN, "chat", "--name", "bob", "--no-color"], env)
    check(t.expect(r"you ›"), "a second chat starts")
    t.send("my token is " + SECRET)
    ok = t.expect(r"echo: my token is \[redacted")
    check(ok, "the live reply is filtered")
    t.send("/history 4")
    ok = t.expect(r"last \d+ message") and t.expect(r"you: my token is \[redacted")
    check(ok, "/history shows the message, filtered")
    t.send("/quit")
    screen = t.out
    t.wait()
    check(SECRET not in screen, "the secret never reached the screen")
    t = Term([BIN, "chat", "--name", "bob", "--no-color"], env)
    ok = t.expect(r"you: my token is \[redacted") and t.expect(r"you ›")
    check(ok, "the history shown when the chat starts is filtered")
    screen = t.out
    t.send("/quit")
    t.wait()
    check(SECRET not in screen, "the secret is not in the history shown at the start")
    for args in (["show", "term:bob:1"], ["show", "term:bob:1", "--json"]):
        code, out = run(env, *args)
        check(code == 0 and "my token is" in out and SECRET not in out,
              "%s prints the conversation filtered" % " ".join(args))


def main():
    env = dict(os.environ, ORCH_GRAPH="chattest", NO_COLOR="1", TERM="dumb",
               ORCH_LOG_LEVEL="error")
    engine = subprocess.Popen([os.path.join(BUILD, "tests", "progs", "chat_engine")], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        ready = engine.stdout.readline().strip() == "READY"
        check(ready, "an engine with the test graph runs beside the chat")
        t = Term([BIN, "chat", "--name", "alice", "--no-color"], env)
        check(t.expect(r"you are 'alice'"), "the chat greets and names the chat")
        check(t.expect(r"you ›"), "a prompt is shown")
        t.send("hello there")
        check(t.expect(r"◆ echo: hello there"), "a message becomes a run and a reply")
        t.send("approve it")
        ok = t.expect(r"Ship it\?") and t.expect(r"1\) ✅ Approve") and t.expect(r"2\) ❌ Reject")
        check(ok, "an approval is shown as numbered choices")
        t.send("7")
        check(t.expect(r"Choose one of the numbers shown"), "a number out of range is refused")
        t.send("1")
        check(t.expect(r"Decided: ✅ Approve"), "typing the number decides")
        check(t.expect(r"decision: approve by alice"), "the decision reaches the waiting run")
        check(sql("SELECT count(*) FROM approvals WHERE channel = 'term' AND state = 'decided' "
                  "AND decision = 'approve'") == "1", "the approval was decided once")
        t.send("question")
        check(t.expect(r"What is your name\?"), "a node asks a question")
        t.send("Bob")
        check(t.expect(r"hello Bob"), "the next line is delivered as the answer")
        t.send("/new second idea")
        ok = t.expect(r"Project #2 started") and t.expect(r"echo: second idea")
        check(ok, "/new starts a second project")
        t.send("/projects")
        ok = t.expect(r"Your projects:") and t.expect(r"#1 hello there") and \
            t.expect(r"▶ #2 second idea")
        check(ok, "/projects lists both, the active one marked")
        t.send("/switch 1")
        check(t.expect(r"Project #1 is now the active one"), "/switch changes the active project")
        t.send("/history 4")
        ok = t.expect(r"project #1, last 4 message") and t.expect(r"you: Bob") and \
            t.expect(r"orchestrator: hello Bob")
        check(ok, "/history shows the project's conversation")
        t.send("/status")
        check(t.expect(r"Project #1: hello there\s+State: done"), "/status shows the state")
        t.send("/quit")
        code = t.wait()
        check(code == 0, "/quit ends the chat with status 0")
        check(sql("SELECT count(*) FROM outbox WHERE kind LIKE 'term.%' AND state = 'pending'")
              == "0", "every message for the terminal was delivered")
        secret_typed(env)
        # a chat named '%' (or '_') is its own: it sees no other chat's projects
        t = Term([BIN, "chat", "--name", "%", "--no-color"], env)
        check(t.expect(r"you ›"), "a chat named % starts")
        t.send("/projects")
        check(t.expect(r"No projects yet"), "the chat named % lists none of the others' projects")
        t.send("/switch hello")
        check(t.expect(r"There is no such project"), "and finds no other chat's project by name")
        t.send("/quit")
        t.wait()
    finally:
        engine.terminate()
        try:
            engine.wait(10)
        except subprocess.TimeoutExpired:
            engine.kill()
    print("1..%d" % len(results))
    for i, (ok, desc) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
