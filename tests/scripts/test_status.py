#!/usr/bin/env python3
"""`orchestrator status` against a database seeded by SQL: every project that
waits for an answer is listed however many others there are, the rest are
counted when not shown (--limit, --all); the oldest queued run's age counts
from when it was queued; the health each long-running process published is
shown, a process that stopped reporting as gone. Prints TAP."""
import json
import os
import subprocess
import sys
import time

BIN = os.environ.get("ORCH_BIN", "bin/orchestrator")
results = []


def check(ok, desc):
    results.append((bool(ok), desc))


def sql(query):
    r = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-tAq", os.environ["DATABASE_URL"],
                        "-c", query], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return r.stdout.strip()


def status(*args):
    r = subprocess.run([BIN, "status", *args], capture_output=True, text=True,
                       env=dict(os.environ, ORCH_GRAPH="factory", ORCH_LOG_LEVEL="error"))
    return r.returncode, r.stdout, r.stderr


def seed():
    # 25 projects: the three oldest wait for their person (a question shown,
    # a question still in the outbox, a run waiting for the person's reply)
    sql("INSERT INTO threads (key, graph, metadata, updated_at) SELECT 'term:seed:' || i, "
        "'factory', jsonb_build_object('title', 'project ' || i, 'channel', 'term', 'chat', "
        "'seed', 'n', i), now() - make_interval(hours => i) FROM generate_series(1, 25) i")
    sql("INSERT INTO approvals (thread_id, channel, chat, key, question, options, expires_at) "
        "SELECT id, 'term', 'seed', 'q', 'Approve the spec?', '[{\"id\": \"approve\", "
        "\"label\": \"Approve\"}]', now() + interval '1 day' FROM threads "
        "WHERE key = 'term:seed:25'")
    sql("INSERT INTO outbox (thread_id, kind, dest, payload) SELECT id, 'term.approval', 'seed', "
        "'{\"question\": \"Approve the plan?\", \"key\": \"q2\"}' FROM threads "
        "WHERE key = 'term:seed:24'")
    sql("INSERT INTO runs (thread_id, graph, status, waiting_on) SELECT id, 'factory', "
        "'waiting', '{input}' FROM threads WHERE key = 'term:seed:23'")
    # a project whose run waits for its workers only is not waiting for anyone
    sql("INSERT INTO runs (thread_id, graph, status, waiting_on) SELECT id, 'factory', "
        "'waiting', '{worker,input}' FROM threads WHERE key = 'term:seed:22'")
    # a run queued a few seconds ago, created two days ago
    sql("INSERT INTO threads (key, graph) VALUES ('queued-long-ago', 'other')")
    sql("INSERT INTO runs (thread_id, graph, status, created_at, ready_at) SELECT id, 'other', "
        "'queued', now() - interval '2 days', now() - interval '30 seconds' FROM threads "
        "WHERE key = 'queued-long-ago'")
    # the health two processes published: one alive with a part that is down,
    # one that stopped reporting ten minutes ago
    sql("INSERT INTO process_health (id, role, host, pid, worst, parts, updated_at) VALUES "
        "('bot-h-1-aa', 'bot', 'h', 1, 'down', '{\"bot.relay\": {\"state\": \"down\", "
        "\"reason\": \"cannot start: out of threads\", \"since_ms\": 1}, \"bot.poller\": "
        "{\"state\": \"ok\", \"reason\": \"polling\", \"since_ms\": 1}}', now()), "
        "('spawner-h-2-bb', 'spawner', 'h', 2, 'ok', '{}', now() - interval '10 minutes')")


def expired_questions():
    """A question past its expiry is expired by a running engine, with no bot
    and no chat running, and its waiting run is told."""
    sql("INSERT INTO threads (key, graph) VALUES ('tg:7001:1', 'factory'), "
        "('term:exp:1', 'factory')")
    sql("INSERT INTO runs (thread_id, graph, status, waiting_on) SELECT id, 'factory', "
        "'waiting', '{qexp}' FROM threads WHERE key IN ('tg:7001:1', 'term:exp:1')")
    sql("INSERT INTO approvals (thread_id, channel, chat, key, question, options, message_id, "
        "expires_at) SELECT id, CASE WHEN key LIKE 'tg:%' THEN 'telegram' ELSE 'term' END, "
        "split_part(key, ':', 2), 'qexp', 'Old question?', '[{\"id\": \"approve\", "
        "\"label\": \"Approve\"}]', 55, now() - interval '1 minute' FROM threads "
        "WHERE key IN ('tg:7001:1', 'term:exp:1')")
    env = dict(os.environ, ORCH_LOG_LEVEL="error", ORCH_ENGINE_THREADS="1", ORCH_SPAWNER="0")
    env.pop("TELEGRAM_BOT_TOKEN", None)
    p = subprocess.Popen([BIN, "engine"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        until = time.monotonic() + 30
        while time.monotonic() < until:
            if sql("SELECT count(*) FROM approvals WHERE key = 'qexp' AND state = 'expired'") \
                    == "2":
                break
            time.sleep(0.2)
    finally:
        p.terminate()
        p.wait(20)
    check(sql("SELECT count(*) FROM approvals WHERE key = 'qexp' AND state = 'expired'") == "2",
          "questions past their expiry are expired by the engine, without a bot or a chat")
    check(sql("SELECT count(*) FROM events WHERE key = 'qexp' AND (value->>'expired')::boolean")
          == "2", "the waiting runs are told")
    check(sql("SELECT count(*) FROM outbox o JOIN threads t ON t.id = o.thread_id WHERE "
              "t.key = 'tg:7001:1' AND o.kind = 'telegram.edit'") == "1",
          "the Telegram question's message is edited to say it expired")


def main():
    seed()
    waiting = {"term:seed:25", "term:seed:24", "term:seed:23"}
    code, out, err = status("--json")
    check(code == 0, "status --json runs" + ("" if code == 0 else ": " + err.strip()[:200]))
    st = json.loads(out) if code == 0 else {}
    keys = [p["key"] for p in st.get("projects", [])]
    check(len(keys) == 20, "20 projects are listed by default (got %d)" % len(keys))
    check(waiting <= set(keys), "every project waiting for an answer is listed")
    check(set(keys[:3]) == waiting, "those waiting for an answer come first")
    check("term:seed:22" not in keys[:3], "a project waiting only for its workers is not one")
    check(st.get("projects_total") == 25 and st.get("projects_not_shown") == 5,
          "the total and what is not shown are counted (%s, %s)" %
          (st.get("projects_total"), st.get("projects_not_shown")))
    check(all(p.get("waiting_for_answer") == (p["key"] in waiting) for p in st.get("projects", [])),
          "each project says whether it waits for an answer")
    q = st.get("oldest_queued") or {}
    check(q.get("thread") == "queued-long-ago" and 20 <= q.get("age_s", -1) < 600,
          "the oldest queued run's age counts from when it was queued (%s s)" % q.get("age_s"))
    code, out, err = status("--json", "--limit", "5")
    st = json.loads(out) if code == 0 else {}
    keys = [p["key"] for p in st.get("projects", [])]
    check(len(keys) == 5 and waiting <= set(keys) and st.get("projects_not_shown") == 20,
          "--limit 5: the three waiting and the two most recent others")
    code, out, err = status("--json", "--limit", "1")
    st = json.loads(out) if code == 0 else {}
    check(waiting <= {p["key"] for p in st.get("projects", [])},
          "a limit below their number still lists every project waiting for an answer")
    code, out, err = status("--json", "--all")
    st = json.loads(out) if code == 0 else {}
    check(len(st.get("projects", [])) == 25 and st.get("projects_not_shown") == 0,
          "--all lists every project")
    code, out, err = status()
    check(code == 0 and "… and 5 more project(s)" in out and "--all" in out,
          "the plain status says how many projects are not shown")
    check("project 25" in out and "project 1 " in out, "the plain status lists old and new")
    check("bot-h-1-aa" in out and "down" in out and "bot.relay" in out
          and "cannot start: out of threads" in out,
          "a part that is down in a live process is shown with its reason")
    check("spawner-h-2-bb" in out and "gone" in out, "a process that stopped reporting is gone")
    check("bot.poller" not in out, "parts that work are not listed one by one")
    code, out, err = status("--limit", "x")
    check(code == 2, "a bad --limit is a usage error")
    expired_questions()
    print("1..%d" % len(results))
    for i, (ok, desc) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
