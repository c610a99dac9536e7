#!/usr/bin/env python3
"""The eval runner, replay, the demo and the live smoke (eval/README.md).

Everything runs for real (`orchestrator eval run` and `orchestrator demo`
start the engine, the spawner and the sandboxes in their own process on the
test's PostgreSQL and Redis); only the model is replayed, from
eval/recordings, or is the real llama-server of ../shared/llama with a tiny
random-weight model (skipped with a reason when it is absent).

The expected figures come from the recordings themselves (their calls,
token counts and the prices of their models.json) and the expected
outcomes from eval/baseline.json, so the checks follow the files.

TAP on stdout. Environment from tests/run.py: ORCH_BIN, DATABASE_URL,
REDIS_URL, ORCH_DATA_DIR.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ORCH_BIN") or os.path.join(ROOT, "bin", "orchestrator")
DATA = os.environ.get("ORCH_DATA_DIR") or tempfile.mkdtemp()
REC = os.path.join(ROOT, "eval", "recordings")
LLAMA = os.path.join(os.path.dirname(ROOT), "shared", "llama")
ROLE = {"brainstorm": "brainstorm", "architect": "architect", "worker": "developer",
        "reviewer": "reviewer"}

n = 0
failed = 0


def report(ok, name, why=""):
    global n, failed
    n += 1
    failed += 0 if ok else 1
    print(f"{'ok' if ok else 'not ok'} {n} - {name}", flush=True)
    for line in str(why).splitlines()[:60]:
        print(f"#   {line}", flush=True)


def skip(name, why):
    global n
    n += 1
    print(f"ok {n} - {name} # skip {why}", flush=True)
    print(f"skipped: {name}: {why}", flush=True)


def run(args, env=None, timeout=600, stdin=subprocess.DEVNULL):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([BIN] + args, cwd=ROOT, env=e, stdin=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def no_models(extra=None):
    """An environment without any configured model."""
    e = {k: "" for k in ("ORCH_MODELS", "LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY")}
    e.update(extra or {})
    return e


def recording(dirname, task):
    with open(os.path.join(dirname, task + ".jsonl"), encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def expected(task):
    """What the report must say about TASK, from its recording."""
    lines = recording(REC, task)
    with open(os.path.join(REC, "models.json"), encoding="utf-8") as f:
        price = next(iter(json.load(f)["models"].values()))
    calls = {}
    tin = tout = 0
    for l in lines:
        calls[ROLE[l["node"]]] = calls.get(ROLE[l["node"]], 0) + 1
        tin += l["response"]["usage"]["prompt_tokens"]
        tout += l["response"]["usage"]["completion_tokens"]
    submits = sum(1 for l in lines if l["node"] == "worker" and any(
        c["function"]["name"] == "submit"
        for c in l["response"]["choices"][0]["message"].get("tool_calls", [])))
    questions = sum(1 for l in lines if l["node"] == "brainstorm"
                    and json.loads(l["response"]["choices"][0]["message"]["content"])["spec"]
                    is None)
    return {"calls": calls, "tokens_in": tin, "tokens_out": tout,
            "cost_usd": (tin * price["price_in"] + tout * price["price_out"]) / 1e6,
            "review_rounds": calls.get("reviewer", 0), "worker_attempts": submits,
            "interventions": questions + 2, "recorded": len(lines)}


def eval_json(args, env=None, timeout=900):
    code, out, err = run(["eval", "run", "--json"] + args, env=env, timeout=timeout)
    try:
        rep = json.loads(out)
    except ValueError:
        rep = None
    return code, rep, err


def by_id(rep):
    return {t["id"]: t for t in (rep or {}).get("tasks", [])}


def check_recordings():
    p = subprocess.run([sys.executable, os.path.join(REC, "generate.py"), "--check"],
                       capture_output=True, text=True)
    report(p.returncode == 0, "eval/recordings are what eval/recordings/generate.py writes",
           p.stdout + p.stderr)


def check_format():
    d = tempfile.mkdtemp(dir=DATA)
    os.makedirs(os.path.join(d, "py-roman"))
    shutil.copytree(os.path.join(ROOT, "eval", "tasks", "py-roman", "hidden"),
                    os.path.join(d, "py-roman", "hidden"))
    with open(os.path.join(ROOT, "eval", "tasks", "py-roman", "task.json")) as f:
        t = json.load(f)
    t["expected"] = "solved"
    with open(os.path.join(d, "py-roman", "task.json"), "w") as f:
        json.dump(t, f)
    code, out, err = run(["eval", "run", "--tasks", d, "--replay", REC])
    report(code != 0 and "unknown key 'expected'" in err and "py-roman" in err,
           "a task.json that does not follow the format is refused, naming the task and key",
           f"exit {code}\n{err}")
    code, out, err = run(["eval", "run", "--task", "py-nope", "--replay", REC])
    report(code != 0 and "py-nope" in err, "an unknown --task is named", f"exit {code}\n{err}")


def check_replay():
    out_dir = os.path.join(DATA, "eval-replay")
    code, rep, err = eval_json(["--replay", REC, "--parallel", "3", "--out", out_dir,
                                "--gate", os.path.join(ROOT, "eval", "baseline.json")])
    tasks = by_id(rep)
    with open(os.path.join(ROOT, "eval", "baseline.json")) as f:
        base = json.load(f)["tasks"]
    problems = []
    if code != 0 or rep is None:
        problems.append(f"exit {code}")
    ran = [t for t in tasks.values() if t["outcome"] != "skipped"]
    if sorted(t["id"] for t in ran) != sorted(base):
        problems.append(f"ran {sorted(t['id'] for t in ran)}, the recordings are {sorted(base)}")
    for tid, b in base.items():
        t = tasks.get(tid)
        if not t:
            continue
        want = expected(tid)
        if t["solved"] != b["solved"]:
            problems.append(f"{tid}: solved {t['solved']}, the baseline says {b['solved']} "
                            f"({t['outcome']}: {t['reason']})")
        for k in ("tokens_in", "tokens_out", "review_rounds", "worker_attempts",
                  "interventions", "calls"):
            if t.get(k) != want[k]:
                problems.append(f"{tid}: {k} {t.get(k)}, the recording says {want[k]}")
        if abs(t.get("cost_usd", -1) - want["cost_usd"]) > 1e-7:
            problems.append(f"{tid}: cost {t.get('cost_usd')}, the recording says "
                            f"{want['cost_usd']}")
        r = t.get("replay", {})
        if r.get("mismatches") or r.get("unused") or r.get("calls") != want["recorded"]:
            problems.append(f"{tid}: replay {r}")
        if t.get("merge_conflicts") != 0 or not isinstance(t.get("merged_s"), (int, float)):
            problems.append(f"{tid}: conflicts {t.get('merge_conflicts')}, merged_s "
                            f"{t.get('merged_s')}")
        h = t.get("hidden", {})
        if not h.get("ran") or h.get("passed_all") != b["solved"]:
            problems.append(f"{tid}: hidden tests {h}")
    slug = tasks.get("js-slugify", {})
    if slug.get("outcome") != "not solved" or "hidden tests fail" not in slug.get("reason", ""):
        problems.append(f"js-slugify: {slug.get('outcome')}: {slug.get('reason')}")
    skipped = [t for t in tasks.values() if t["outcome"] == "skipped"]
    chg = [t for t in skipped if t["id"].startswith("chg-")]
    if not chg or any(t["reason"] != "no recording of it in the replayed folder" for t in chg):
        problems.append("the change tasks without a recording are not skipped for that")
    if "chg-py-tasklog-emptyconfig" not in [t["id"] for t in ran]:
        problems.append("the recorded change task did not run")
    tot = (rep or {}).get("totals", {})
    solved = sum(1 for b in base.values() if b["solved"])
    if tot.get("solved") != solved or tot.get("ran") != len(base) or \
            abs(tot.get("pass_rate", 0) - solved / len(base)) > 1e-9:
        problems.append(f"totals {tot}")
    cost = sum(expected(t)["cost_usd"] for t in base)
    if abs(tot.get("cost_usd", 0) - cost) > 1e-6 or \
            abs((tot.get("cost_per_solved_usd") or 0) - cost / solved) > 1e-6:
        problems.append(f"total cost {tot.get('cost_usd')} / per solved "
                        f"{tot.get('cost_per_solved_usd')}, the recordings say {cost}")
    if not (rep or {}).get("gate", {}).get("passed"):
        problems.append(f"gate {(rep or {}).get('gate')}")
    for f in ("report.json", "report.md", "js-slugify.hidden.log"):
        if not os.path.isfile(os.path.join(out_dir, f)):
            problems.append(f"{f} was not written")
    if "eval [" not in err:
        problems.append("no progress lines on stderr")
    report(not problems, "the recorded tasks (five new projects and a change to a repository) "
           "replay through the whole factory: outcomes, hidden tests, calls, tokens, costs and "
           "counts as recorded; the gate passes",
           "\n".join(problems) + ("\n" + err[-3000:] if problems else ""))
    return rep


def check_mismatch():
    d = tempfile.mkdtemp(dir=DATA)
    for f in os.listdir(REC):
        shutil.copy(os.path.join(REC, f), d)
    lines = recording(d, "go-wordwrap")
    for l in lines:
        if l["node"] == "architect":
            msg = l["response"]["choices"][0]["message"]
            plan = json.loads(msg["content"])
            del plan["tasks"]  # what an older plan schema would not have asked for
            msg["content"] = json.dumps(plan)
    with open(os.path.join(d, "go-wordwrap.jsonl"), "w") as f:
        f.write("".join(json.dumps(l) + "\n" for l in lines))
    lines = [l for l in recording(d, "py-wordfreq")
             if not (l["node"] == "reviewer" and l["subject"] == "cli")]
    with open(os.path.join(d, "py-wordfreq.jsonl"), "w") as f:
        f.write("".join(json.dumps(l) + "\n" for l in lines))
    code, rep, err = eval_json(["--replay", d, "--task", "go-wordwrap", "--task", "py-wordfreq",
                                "--parallel", "2", "--out", os.path.join(DATA, "eval-mm")])
    t = by_id(rep)
    go, py = t.get("go-wordwrap", {}), t.get("py-wordfreq", {})
    ok = (code == 0 and go.get("outcome") == "replay mismatch"
          and "('plan')" in go.get("reason", "")
          and py.get("outcome") == "replay mismatch"
          and "no recorded answer for node reviewer, subject cli turn 1" in py.get("reason", "")
          and not go.get("solved") and not py.get("solved")
          and go.get("replay", {}).get("mismatches", 0) >= 1
          and py.get("replay", {}).get("mismatches", 0) >= 1
          and (rep or {}).get("totals", {}).get("replay_mismatches", 0) >= 2
          and "Planning the project failed" not in go.get("reason", "")
          and go.get("stage") in ("cancelled", "stopped") and py.get("stage") in ("cancelled",
                                                                                  "stopped"))
    report(ok, "a recorded reply that no longer fits the schema, and a call with no recorded "
           "reply, are replay mismatches (not model failures) and end the project",
           f"exit {code}\ngo-wordwrap: {go.get('outcome')}: {go.get('reason')} "
           f"({go.get('stage')})\npy-wordfreq: {py.get('outcome')}: {py.get('reason')} "
           f"({py.get('stage')})\n{err[-2000:]}")


def check_gate():
    base = os.path.join(DATA, "baseline-better.json")
    with open(base, "w") as f:
        json.dump({"tolerance": {"pass_rate": 0.1, "cost_per_solved": 0.25},
                   "tasks": {"js-slugify": {"solved": True, "cost_usd": 0.001}}}, f)
    code, rep, err = eval_json(["--replay", REC, "--task", "js-slugify", "--gate", base,
                                "--out", os.path.join(DATA, "eval-gate")])
    g = (rep or {}).get("gate", {})
    ok = (code == 3 and g.get("passed") is False
          and g.get("changed") == [{"id": "js-slugify", "was": "solved", "now": "not solved"}]
          and any(c["what"] == "pass rate" and not c["passed"] for c in g.get("checks", [])))
    report(ok, "the gate fails (exit 3) when the pass rate drops beyond the baseline's "
           "tolerance, naming the task that changed outcome", f"exit {code}\n{g}\n{err[-1500:]}")
    code, out, err = run(["eval", "run", "--replay", REC, "--task", "js-slugify", "--gate", base,
                          "--out", os.path.join(DATA, "eval-gate")])
    report(code == 3 and "gate (" in out and "FAILED" in out and "changed: js-slugify was solved"
           in out and "pass rate 0/1" in out,
           "the table says the gate failed and which task changed", out + err[-1000:])


def check_demo():
    code, out, err = run(["demo", "--auto", "--name", "demo-test"], timeout=900)
    lines = out.splitlines()
    repo = ""
    for l in lines:
        if l.startswith("The factory built wordfreq: "):
            repo = l.split(": ", 1)[1].split(" (branch")[0]
    tried = None
    if repo:
        d = tempfile.mkdtemp(dir=DATA)
        subprocess.run(["git", "clone", "-q", repo, os.path.join(d, "w")], check=False)
        tried = subprocess.run([sys.executable, "-m", "unittest", "discover", "-v"],
                               cwd=os.path.join(d, "w"), capture_output=True, text=True)
        wf = subprocess.run([sys.executable, "wordfreq.py", "-n", "2", "README.md"],
                            cwd=os.path.join(d, "w"), capture_output=True, text=True)
    ok = (code == 0 and lines and "recording" in lines[0] and "everything else runs for real"
          in lines[0] and "Build wordfreq as specified" in out and "Decided: ✅ Approve" in out
          and "🎉 wordfreq is built." in out and repo and "Try it:" in out
          and "python3 wordfreq.py -n 5 README.md" in out and tried is not None
          and tried.returncode == 0 and "Ran 7 tests" in tried.stderr and wf.returncode == 0
          and len(wf.stdout.splitlines()) == 2)
    report(ok, "orchestrator demo --auto: a recorded session in the terminal chat builds, tests "
           "and merges the sample project; its first line says the replies are a recording; it "
           "ends with the repository and how to try it, and the clone's tests pass",
           f"exit {code}\n{out[-3000:]}\n{err[-2000:]}\n"
           + (tried.stderr[-1000:] if tried else ""))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def check_live():
    start = os.path.join(LLAMA, "start.sh")
    if not os.access(start, os.X_OK):
        skip("eval run --live against llama-server", f"{LLAMA} not found (the live smoke runs "
             "where ../shared/llama holds llama-server and its tiny model)")
        skip("the live run's recording replays to the same outcome", "no live run")
        return None, 0
    port = free_port()
    p = subprocess.run([start, str(port)], capture_output=True, text=True,
                       env=dict(os.environ, CTX="4096", NP="2",
                                LOG=os.path.join(DATA, "llama.log")))
    if p.returncode != 0:
        report(False, "llama-server starts", p.stderr)
        return None, 0
    pid = int(p.stdout.strip().splitlines()[-1])
    try:
        rec = os.path.join(DATA, "rec-live")
        env = {"LLM_BASE_URL": f"http://127.0.0.1:{port}/v1", "LLM_MODEL": "tiny",
               "LLM_CONTEXT": "2048", "LLM_MAX_TOKENS": "256", "ORCH_MODELS": ""}
        code, rep, err = eval_json(["--live", "--record", rec, "--task", "py-wordfreq",
                                    "--timeout", "150s", "--out", os.path.join(DATA, "eval-live")],
                                   env=env)
        t = by_id(rep).get("py-wordfreq", {})
        with open(os.path.join(ROOT, "eval", "tasks", "py-wordfreq", "task.json")) as f:
            budget = json.load(f)["budget"]
        calls = t.get("calls_total", -1)
        ok = (code == 0 and t and not t.get("solved") and t.get("outcome") != "solved"
              and t.get("reason") and 1 <= calls <= 400
              and t.get("tokens_in", 0) + t.get("tokens_out", 0) <= budget["tokens"]
              and os.path.isfile(os.path.join(DATA, "eval-live", "report.json"))
              and os.path.getsize(os.path.join(rec, "py-wordfreq.jsonl")) > 0)
        report(ok, "eval run --live against the real llama-server with a tiny random model: not "
               "solved, bounded calls and tokens, a clean report",
               f"exit {code}\n{json.dumps(t, indent=1)[:3000]}\n{err[-2500:]}")
        print(f"# live smoke: {t.get('outcome')}: {t.get('reason', '')[:300]}; "
              f"{calls} calls {t.get('calls')}, {t.get('tokens_in')} tokens in, "
              f"{t.get('tokens_out')} out, {t.get('wall_s', 0):.0f} s", flush=True)
        if t.get("outcome") == "timed out":
            skip("the live run's recording replays to the same outcome",
                 "the live run was cut by its time limit, where a replay need not be")
        else:
            code2, rep2, err2 = eval_json(["--replay", rec, "--task", "py-wordfreq",
                                           "--out", os.path.join(DATA, "eval-live-replay")])
            t2 = by_id(rep2).get("py-wordfreq", {})
            same = all(t2.get(k) == t.get(k) for k in ("outcome", "calls", "tokens_in",
                                                       "tokens_out", "interventions", "stage"))
            report(code2 == 0 and same and not t2.get("replay", {}).get("mismatches"),
                   "the live run's recording replays to the same outcome, calls and tokens",
                   f"live {t.get('outcome')} {t.get('calls')} {t.get('tokens_in')}\nreplay "
                   f"{t2.get('outcome')} {t2.get('calls')} {t2.get('tokens_in')} "
                   f"{t2.get('replay')}\n{err2[-2000:]}")
        return port, pid
    except BaseException:
        os.kill(pid, signal.SIGTERM)
        raise


def check_hint(port):
    env = no_models({"ORCH_SPAWNER": "0", "ORCH_PROBE_PORTS": str(port) if port else ""})
    e = dict(os.environ)
    e.update(env)
    proc = subprocess.Popen([BIN, "serve"], cwd=ROOT, env=e, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = b""
    until = time.monotonic() + 60
    os.set_blocking(proc.stderr.fileno(), False)
    while time.monotonic() < until and b"make demo" not in got and proc.poll() is None:
        time.sleep(0.1)
        try:
            got += proc.stderr.read() or b""
        except (BlockingIOError, TypeError):
            pass
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        out, rest = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, rest = proc.communicate()
    text = (got + (rest or b"")).decode("utf-8", "replace")
    ok = (text.count("no language model is configured") == 1 and "LLM_BASE_URL" in text
          and "LLM_MODEL" in text and "make demo" in text and "11434" in text)
    if port:
        ok = ok and f"127.0.0.1:{port} serves tiny" in text and \
            f"LLM_BASE_URL=http://127.0.0.1:{port}/v1 LLM_MODEL=tiny" in text
    report(ok, "serve without a model says once what to do: the two variables, the model servers "
           "found listening (llama-server" + (" on a probed port" if port else " absent") +
           "), make demo", text[-3000:])


def main():
    print("1..11", flush=True)
    check_recordings()
    check_format()
    check_replay()
    check_mismatch()
    check_gate()
    check_demo()
    port, pid = check_live()
    try:
        check_hint(port)
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
    print(f"# {n} checks", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
