#!/usr/bin/env python3
"""Replies written live, end to end: `orchestrator serve` (the factory, its
brainstorm node) on a fake model that sends its reply token by token with
delays, and a fake Telegram Bot API server.

  - `orchestrator chat` (through a pseudo-terminal) shows the reply word by
    word while it is written, then once: the message that follows adds
    nothing twice;
  - in a private Telegram chat the same reply arrives as drafts
    (sendMessageDraft, one draft_id, growing text) and then as one message;
  - in a group there are no drafts: the typing action instead;
  - a chat whose draft Telegram refuses gets the typing action and no more
    drafts, and its message all the same.

Everything runs on the test's PostgreSQL and Redis. Prints TAP."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request

BIN = os.environ.get("ORCH_BIN", "bin/orchestrator")
BUILD = os.environ.get("ORCH_BUILD", "build")
DATA = os.environ.get("ORCH_DATA_DIR", "/tmp")
TOKEN = "123456:STREAM-test"
results = []
procs = []

WORDS = ["Hello!", "Which", "language", "should", "the", "tool", "be", "written", "in,",
         "and", "should", "it", "count", "lines", "too?"]
MESSAGE = " ".join(WORDS)


def check(ok, desc, detail=None):
    results.append((bool(ok), desc))
    if not ok and detail is not None:
        for line in str(detail).splitlines()[:20]:
            print("#   " + line)
    return ok


def finish():
    print("1..%d" % len(results))
    for i, (ok, desc) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
    return 0 if all(ok for ok, _ in results) else 1


def _die_with_parent():
    import ctypes
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)


def http(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    rq = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(rq, timeout=10) as r:
        return json.loads(r.read().decode() or "null")


def sql(query):
    r = subprocess.run(["psql", "-tAq", os.environ["DATABASE_URL"], "-c", query],
                       capture_output=True, text=True)
    return r.stdout.strip()


def wait(cond, timeout=30.0, step=0.05):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def streamed_reply(delay_ms):
    """The brainstorm's reply as a stream: the JSON object written a word at a time."""
    text = json.dumps({"message": MESSAGE, "spec": None})
    # cut it after each word of the message (and the JSON around it in two pieces)
    start = text.index(WORDS[0])
    pieces = [text[:start]]
    pos = start
    for w in WORDS:
        end = text.index(w, pos) + len(w)
        pieces.append(text[pos:end])
        pos = end
    pieces.append(text[pos:])
    chunks = [{"id": "c1", "object": "chat.completion.chunk", "model": "fake",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": p},
                            "finish_reason": None}]} for p in pieces]
    chunks.append({"id": "c1", "object": "chat.completion.chunk", "model": "fake",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 50, "completion_tokens": len(pieces)}})
    return {"stream": chunks, "chunk_delay_ms": delay_ms}


class Term:
    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(argv[0], argv, env)
        self.out = ""
        self.reads = []  # (monotonic time, text so far)

    def send(self, line):
        os.write(self.fd, (line + "\n").encode())

    def pump(self, seconds):
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                if data:
                    self.out += data.decode("utf-8", "replace")
                    self.reads.append((time.monotonic(), self.out))

    def until(self, pattern, timeout=30.0):
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if re.search(pattern, self.out):
                return True
            self.pump(0.1)
        return False

    def close(self):
        try:
            self.send("/quit")
            time.sleep(0.3)
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:
            pass


def main():
    fake_llm = subprocess.Popen([os.path.join(BUILD, "tests", "progs", "fake_openai")],
                                stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
    procs.append(fake_llm)
    llm_port = json.loads(fake_llm.stdout.readline())["port"]
    llm = "http://127.0.0.1:%d" % llm_port
    fake_tg = subprocess.Popen([os.path.join(BUILD, "tests", "progs", "fake_telegram"),
                                "--token", TOKEN], stdout=subprocess.PIPE, text=True,
                               preexec_fn=_die_with_parent)
    procs.append(fake_tg)
    tg = "http://127.0.0.1:%d" % int(fake_tg.stdout.readline().split()[1])
    # every brainstorm call gets the streamed reply, a word every 250 ms
    http(llm + "/__script", {"replies": [], "default": streamed_reply(250)})

    env = dict(os.environ, LLM_BASE_URL=llm + "/v1", LLM_MODEL="fake", LLM_CONTEXT="8192",
               LLM_MAX_TOKENS="512", ORCH_LEASE="5s", ORCH_POLL="100ms", ORCH_SPAWNER="0",
               ORCH_ENGINE_THREADS="2", ORCH_LOG_FORMAT="text", ORCH_LOG_LEVEL="info",
               TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=tg, ORCH_ALLOWED_USERS="111,222",
               ORCH_TG_POLL_TIMEOUT="1s", ORCH_TG_RATE_SCALE="4", ORCH_TG_TYPING="0",
               NO_COLOR="1", TERM="dumb")
    env.pop("ORCH_MODELS", None)
    serve_log = open(os.path.join(DATA, "serve.log"), "w")
    serve = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL,
                             stderr=serve_log, preexec_fn=_die_with_parent)
    procs.append(serve)
    term = None
    try:
        wait(lambda: sql("SELECT count(*) FROM engines WHERE stopped_at IS NULL") == "1", 30)

        # --- the terminal chat ---
        term = Term([BIN, "chat", "--name", "ada", "--no-color"], env)
        check(term.until(r"you ›", 20), "the chat starts")
        term.send("a command-line tool that counts the words in files")
        shown = term.until(re.escape(WORDS[-1]), 60)
        check(shown, "the brainstorm's reply appears in the chat", term.out[-1500:])
        # word by word: the screen held the first words of the reply while its last
        # word was not written yet
        partial = [t for _, t in term.reads
                   if WORDS[1] in t and WORDS[-1] not in t]
        check(partial, "the reply appears while it is written, not all at once",
              "\n".join(t[-300:] for _, t in term.reads[-5:]))
        steps = set()
        for _, t in term.reads:
            for i in range(len(WORDS), 0, -1):
                if " ".join(WORDS[:i]) in t:
                    steps.add(i)
                    break
        check(len(steps) >= 4, "it grows a few words at a time (%d different lengths seen)"
              % len(steps))
        # the message that follows adds nothing twice
        term.pump(2.0)
        check(term.out.count(WORDS[-1]) == 1 and term.out.count(MESSAGE) == 1,
              "the reply is shown once, its message adding nothing twice", term.out[-1500:])
        check(sql("SELECT count(*) FROM outbox WHERE kind = 'term.send' AND "
                  "payload->>'text' = '%s' AND payload ? 'streamed' AND state = 'sent'"
                  % MESSAGE.replace("'", "''")) == "1",
              "the reply's message went through the outbox, marked as streamed")

        for line in term.out.splitlines()[-6:]:
            print("# screen: " + line.rstrip())

        # --- Telegram: a private chat ---
        def say(chat, user, text, mid):
            http(tg + "/control/updates", [{"message": {
                "message_id": mid, "date": 1, "text": text,
                "from": {"id": user, "is_bot": False, "first_name": "Ada"},
                "chat": {"id": chat, "type": "private" if chat > 0 else "supergroup"}}}])

        def requests(method, chat):
            return [r for r in http(tg + "/control/requests")["requests"]
                    if r.get("method") == method and
                    str(r.get("params", {}).get("chat_id")) == str(chat)]

        def final_message(chat):
            return [r for r in requests("sendMessage", chat)
                    if r.get("status") == 200 and r["params"].get("text") == MESSAGE]

        say(111, 111, "/new a command-line tool that counts the words in files", 1)
        check(wait(lambda: final_message(111), 60), "the reply is sent to the private chat")
        drafts = [d for d in http(tg + "/control/drafts")["drafts"] if d["chat"] == 111]
        check(len(drafts) >= 2, "the reply arrived as drafts first (%d)" % len(drafts),
              json.dumps(drafts)[:1000])
        check(len({d["draft_id"] for d in drafts}) == 1 and drafts and drafts[0]["draft_id"] != 0,
              "one non-zero draft_id for the whole reply")
        check(all(MESSAGE.startswith(d["text"]) for d in drafts) and
              all(len(a["text"]) < len(b["text"]) for a, b in zip(drafts, drafts[1:])),
              "each draft holds the reply so far, growing", json.dumps(drafts)[:1000])
        sent = final_message(111)[0]
        check(all(d["t_ms"] <= sent["t_ms"] for d in drafts),
              "the drafts came before the one message")
        check(len(final_message(111)) == 1, "the reply is sent once")

        # --- a group: typing instead ---
        say(-100555, 111, "/new a command-line tool that counts the words in files", 2)
        check(wait(lambda: final_message(-100555), 60), "the reply is sent to the group")
        check(not [d for d in http(tg + "/control/drafts")["drafts"] if d["chat"] == -100555],
              "no drafts in a group")
        check(requests("sendMessageDraft", -100555) == [],
              "no draft is even tried in a group")
        check(requests("sendChatAction", -100555),
              "the typing action in the group while the reply is written")

        # --- a chat that refuses drafts ---
        http(tg + "/control/script", {"method": "sendMessageDraft", "status": 400,
                                      "description": "Bad Request: TEXTDRAFT_PEER_INVALID",
                                      "count": 1})
        say(222, 222, "/new a command-line tool that counts the words in files", 3)
        check(wait(lambda: final_message(222), 60), "the reply is sent to the refusing chat")
        tried = requests("sendMessageDraft", 222)
        check(len(tried) == 1 and tried[0].get("status") == 400,
              "a refused draft is not tried again in that chat (%d tries)" % len(tried))
        check(requests("sendChatAction", 222), "the refusing chat gets the typing action")
    finally:
        if term:
            term.close()
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
        serve_log.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
    if not all(ok for ok, _ in results):
        with open(os.path.join(DATA, "serve.log")) as f:
            for line in f.read().splitlines()[-40:]:
                print("# serve: " + line)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
