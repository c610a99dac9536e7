#!/usr/bin/env python3
"""PostgreSQL restarted under load, on a private server of this test's own
(restarting the shared one would break the tests running beside it): a
fast restart (pg_ctl -m fast) and a kill -9 of the postmaster (crash
recovery) while engines execute a load of runs and the Telegram bot takes
messages and sends replies. Every run finishes, no step is committed twice,
every message is answered once, the bot's parts are healthy again, and the
recovery times are printed. Prints TAP (or a skip line when no PostgreSQL
server can be started here)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

BIN = os.path.abspath(os.environ.get("ORCH_BIN", "bin/orchestrator"))
BUILD = os.path.abspath(os.environ.get("ORCH_BUILD", "build"))
DATA = os.environ.get("ORCH_DATA_DIR", "/tmp")
TOKEN = "123456:TEST-token"
results = []
procs = []


def check(ok, desc):
    results.append((bool(ok), desc))
    return ok


def note(text):
    print("# " + text, flush=True)


def free_port(start):
    p = start
    while True:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            p += 1
        finally:
            s.close()


def pg_bin():
    base = "/usr/lib/postgresql"
    if not os.path.isdir(base):
        return None
    versions = sorted(os.listdir(base), key=lambda v: [int(x) for x in v.split(".") if x.isdigit()])
    return os.path.join(base, versions[-1], "bin") if versions else None


import ctypes

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _die_with_parent():
    """In a child before exec (after any change of user, which clears it):
    it gets SIGKILL when this test ends, however it ends (a time-out of the
    runner kills this process hard)."""
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Pg:
    """A private PostgreSQL: tests/env/services.sh creates and configures it
    (Redis beside it, stopped again), then the postmaster runs as this test's
    child, so that it can be stopped fast or killed, and dies with the test."""

    def __init__(self, root):
        self.dir = os.path.join(root, "services")
        self.port = free_port(27500 + os.getpid() % 800)
        self.redis_port = free_port(self.port + 1000)
        self.url = "postgresql://orchestrator@127.0.0.1:%d/orchestrator" % self.port
        self.bin = pg_bin()
        self.proc = None

    def create(self):
        r = subprocess.run(["bash", "tests/env/services.sh", "start", "--dir", self.dir,
                            "--pg-port", str(self.port), "--redis-port", str(self.redis_port)],
                           capture_output=True, text=True)
        self.data = os.path.realpath(os.path.join(self.dir, "pg"))
        subprocess.run(["bash", "tests/env/services.sh", "stop", "--dir", self.dir],
                       capture_output=True)
        return r.returncode == 0, r.stderr

    def start(self, timeout=60):
        """Starts the postmaster and waits until it accepts connections
        (after a kill -9 the old backends may hold the shared memory for a
        moment: it is started again until it stays up)."""
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            log = open(os.path.join(self.dir, "postmaster.log"), "a")
            who = {"user": "postgres", "group": "postgres", "extra_groups": []} \
                if os.getuid() == 0 else {}
            self.proc = subprocess.Popen([os.path.join(self.bin, "postgres"), "-D", self.data],
                                         stdout=log, stderr=log, preexec_fn=_die_with_parent,
                                         **who)
            while time.monotonic() < until and self.proc.poll() is None:
                r = subprocess.run(["psql", "-tAq", self.url, "-c", "SELECT 1"],
                                   capture_output=True, text=True)
                if r.returncode == 0:
                    return True
                time.sleep(0.1)
            time.sleep(0.3)
        return False

    def stop(self, sig=signal.SIGINT):
        """SIGINT: a fast shutdown (pg_ctl -m fast); SIGKILL: a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

def sql(url, query):
    r = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-tAq", url, "-c", query],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return r.stdout.strip()


def sql_int(url, query, default=-1):
    try:
        return int(sql(url, query) or 0)
    except (RuntimeError, ValueError):
        return default


def spawn(argv, env, name, ready=None):
    log = open(os.path.join(DATA, name + ".log"), "w")
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE if ready else log, stderr=log,
                         text=True, preexec_fn=_die_with_parent)
    procs.append(p)
    if ready:
        line = p.stdout.readline()
        if not line.startswith(ready):
            raise RuntimeError("%s did not start: %r" % (name, line))
    return p


class Fake:
    def __init__(self, env):
        self.p = subprocess.Popen([os.path.join(BUILD, "tests", "progs", "fake_telegram"),
                                   "--token", TOKEN], stdout=subprocess.PIPE, text=True, env=env,
                                  preexec_fn=_die_with_parent)
        procs.append(self.p)
        self.port = int(self.p.stdout.readline().split()[1])
        self.base = "http://127.0.0.1:%d" % self.port

    def call(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        rq = urllib.request.Request(self.base + path, data=data,
                                    headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(rq, timeout=10) as r:
            return json.loads(r.read().decode())

    def say(self, texts, chat0):
        ups = [{"message": {"message_id": i + 1, "date": 1,
                            "from": {"id": 111, "is_bot": False, "first_name": "O"},
                            "chat": {"id": chat0 + i, "type": "private"}, "text": t}}
               for i, t in enumerate(texts)]
        self.call("/control/updates", ups)

    def sent_texts(self):
        return [r["params"].get("text", "") for r in self.call("/control/requests")["requests"]
                if r.get("method") == "sendMessage" and r.get("status") == 200]


# the whole test ends well within the runner's time-out, whatever happens
DEADLINE = time.monotonic() + 300


def wait(cond, timeout, step=0.05):
    until = min(time.monotonic() + timeout, DEADLINE)
    while time.monotonic() < until:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def main():
    root = os.path.join(DATA, "faults")
    os.makedirs(root, exist_ok=True)
    pg = Pg(root)
    if not pg.bin:
        print("1..0 # skipped: PostgreSQL server binaries not found")
        return 0
    ok, err = pg.create()
    if not ok or not pg.start():
        print("1..0 # skipped: a private PostgreSQL server cannot be started here: " +
              " ".join(err.split())[:200])
        pg.stop(signal.SIGKILL)
        return 0
    url = pg.url
    env = dict(os.environ, DATABASE_URL=url, ORCH_DATA_DIR=root, ORCH_LOG_LEVEL="warn",
               ORCH_LOG_FORMAT="text", TSG_EXEC_LOG=os.path.join(root, "exec.log"),
               TSG_SLEEP_MS="5", ORCH_HEALTH_INTERVAL="300ms")
    redis_url = env.pop("REDIS_URL", None)
    try:
        r = subprocess.run([BIN, "migrate"], env=env, capture_output=True, text=True)
        check(r.returncode == 0, "the private database is migrated")
        fake = Fake(env)
        tg = dict(env, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=fake.base,
                  ORCH_ALLOWED_USERS="111", ORCH_GRAPH="chattest", ORCH_TG_POLL_TIMEOUT="1s",
                  ORCH_TG_RATE_SCALE="100", ORCH_TG_BACKOFF="50ms", ORCH_TG_MAX_BACKOFF="500ms",
                  ORCH_BOT_STANDBY="200ms", ORCH_TG_TYPING="0", ORCH_LOG_LEVEL="info")
        if redis_url:
            # the bot's live replies come through Redis (bot/live.h): without one its
            # stream part would rightly report itself degraded
            tg["REDIS_URL"] = redis_url
        for i in range(2):
            spawn([os.path.join(BUILD, "tests", "progs", "engine_worker"), "--threads", "2",
                   "--lease-ms", "3000", "--poll-ms", "100"], env, "engine-%d" % i, "ready")
        spawn([os.path.join(BUILD, "tests", "progs", "chat_engine")], env, "chat-engine", "READY")
        spawn([BIN, "bot"], tg, "bot")
        bot_log = os.path.join(DATA, "bot.log")

        def queue_runs(prefix, n):
            sql(url, "INSERT INTO threads (key, graph) SELECT '%s-' || i, 'linear4' FROM "
                     "generate_series(1, %d) i" % (prefix, n))
            sql(url, "INSERT INTO runs (thread_id, graph) SELECT id, 'linear4' FROM threads "
                     "WHERE key LIKE '%s-%%'" % prefix)

        def done(prefix):
            return sql_int(url, "SELECT count(*) FROM runs r JOIN threads t ON t.id = "
                                "r.thread_id WHERE t.key LIKE '%s-%%' AND r.status = 'done'"
                           % prefix, -1)

        def echoed(texts):
            sent = fake.sent_texts()
            return all(("echo: " + t) in sent for t in texts)

        total_msgs = []
        for phase, how in (("fast", "a fast restart (the shutdown of pg_ctl -m fast)"),
                           ("kill", "kill -9 of the postmaster")):
            prefix = "load-" + phase
            queue_runs(prefix, 120)
            before = ["%s before %d" % (phase, i) for i in range(8)]
            fake.say(before, 31000 if phase == "fast" else 32000)
            total_msgs += before
            wait(lambda: done(prefix) >= 20, 60)
            at = done(prefix)
            t0 = time.monotonic()
            pg.stop(signal.SIGINT if phase == "fast" else signal.SIGKILL)
            if phase == "kill":
                # down for longer than a lease (3 s): the workers give up the
                # runs they were executing, which must then be taken over
                time.sleep(4.5)
            up = pg.start()
            t_up = time.monotonic()
            if not check(up, "PostgreSQL is back after %s" % how):
                break
            after = ["%s after %d" % (phase, i) for i in range(8)]
            fake.say(after, 31100 if phase == "fast" else 32100)
            total_msgs += after
            base = max(at, done(prefix))
            moved = wait(lambda: done(prefix) > base, 60, 0.02)
            t_runs = time.monotonic()
            answered = wait(lambda: echoed(after), 60, 0.05)
            t_msgs = time.monotonic()
            finished = wait(lambda: done(prefix) == 120, 120)
            check(moved, "runs make progress again after %s" % how)
            check(answered, "messages that arrive after %s are answered" % how)
            if not finished:
                # what the runs that did not finish are doing, for the log
                note("not finished after %s: %s" % (how, sql(
                    url, "SELECT string_agg(r.id || ' ' || r.status || ' step ' || r.step || "
                         "' claims ' || r.claims || ' takeovers ' || r.takeovers || ' lease ' || coalesce(r.lease_owner, '-') "
                         "|| ' error ' || coalesce(r.error, '-'), '; ') FROM runs r JOIN threads t "
                         "ON t.id = r.thread_id WHERE t.key LIKE '%s-%%' AND r.status <> 'done'"
                         % prefix)))
            check(finished, "every run of the load finishes after %s (%d of 120)"
                  % (how, done(prefix)))
            note("recovery after %s: PostgreSQL down for %.0f ms; runs moved again %.0f ms "
                 "and new messages were answered %.0f ms after it was back" %
                 (how, (t_up - t0) * 1000, (t_runs - t_up) * 1000, (t_msgs - t_up) * 1000))
        # no step committed twice: four checkpoints per run, one outbox row per step
        check(sql_int(url, "SELECT count(*) FROM (SELECT r.id FROM runs r JOIN threads t ON "
                           "t.id = r.thread_id JOIN checkpoints c ON c.run_id = r.id WHERE "
                           "t.key LIKE 'load-%' GROUP BY r.id HAVING count(*) = 4 AND "
                           "count(DISTINCT c.step) = 4) x") == 240,
              "every run has exactly one checkpoint per step")
        check(sql_int(url, "SELECT count(*) FROM (SELECT run_id, step FROM outbox WHERE dest "
                           "LIKE 'load-%' GROUP BY run_id, step HAVING count(*) = 1) x") == 960
              and sql_int(url, "SELECT count(*) FROM outbox WHERE dest LIKE 'load-%'") == 960,
              "every step's outbox row was written once")
        ok = wait(lambda: echoed(total_msgs), 60)
        sent = fake.sent_texts()
        dup = [t for t in total_msgs if sent.count("echo: " + t) != 1]
        check(ok and not dup, "every message was answered exactly once%s" %
              ("" if not dup else " (not: %s)" % ", ".join(dup[:5])))
        check(sql_int(url, "SELECT count(*) FROM bot_updates") == len(total_msgs),
              "every update was stored once")
        # the bot says it is healthy again, through the database, in status
        def bot_ok():
            h = sql(url, "SELECT worst FROM process_health WHERE role = 'bot' AND "
                         "updated_at > now() - interval '3 seconds'")
            return h == "ok"
        check(wait(bot_ok, 30), "the bot's parts report healthy again after both restarts")
        r = subprocess.run([BIN, "status"], env=env, capture_output=True, text=True)
        check(r.returncode == 0 and "1 reporting, 0 with a problem" in r.stdout,
              "status shows the bot reporting with no problem")
        with open(bot_log) as f:
            log = f.read()
        lost = log.find("no longer the polling bot")
        check(lost >= 0 and log.find("started", lost) > lost and
              log.find("polls Telegram and relays the outbox", lost) > lost,
              "the bot said in its log that it lost its lock and started its relay again")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        pg.stop(signal.SIGINT)
    print("1..%d" % len(results))
    for i, (ok, desc) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
