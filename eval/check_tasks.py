#!/usr/bin/env python3
"""Checks the eval tasks under eval/tasks (the format is in eval/README.md).

For each task: task.json against the format; then, each step inside the
project's own sandbox (`orchestrator sandbox run`, the environment a worker
gets):
  1. the "before" state (an empty repository for `new`, repo/ for `change`):
     the hidden command FAILS, and for `change` the repository's own tests pass;
  2. the reference solution (reference/ for `new`, repo/ with reference/ laid
     over it for `change`): the hidden command PASSES, and for `change` the
     repository's own tests still pass.
Each state is a git repository with one commit (as a checkout of main is) and
the hidden files copied in afterwards, at the same relative paths.

Prints TAP: the plan, one `ok`/`not ok` line per task, the reasons of a failure
as `#` lines, and ends with `N passed, N failed`. Exit status 0 when every task
passed.

  eval/check_tasks.sh [--jobs N] [--keep] [--format-only] [--sandbox-only ID,...] [ID...]

--sandbox-only checks every selected task's format but runs the sandbox steps
for the listed tasks only (make test does that for a sample).

Environment: ORCH_BIN (default bin/orchestrator), BUILD (default build; the
states are made under BUILD/eval-check), EVAL_JOBS (default 2).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TASKS = os.path.join(HERE, "tasks")

LANG_PREFIX = {"python": "py", "node": "js", "go": "go", "sql": "sql", "c": "c"}
SIZES = ("small", "medium", "large")
KINDS = ("new", "change")
TOOLCHAINS = ("python3", "node", "npm", "go", "sqlite3", "gcc", "make", "sh", "git")
KEYS_ALL = {"id", "title", "lang", "size", "kind", "idea", "answers", "toolchain",
            "budget", "hidden"}
KEYS_CHANGE = {"base_branch", "repo_tests"}
ID_RE = re.compile(r"^(chg-)?(py|js|go|sql|c)-[a-z0-9]+(-[a-z0-9]+)*$")
HIDDEN_PREFIX = "eval_hidden"

# What every sandboxed command of a task gets besides PATH, HOME=/tmp and
# LANG=C.UTF-8 (the sandbox's own): `--toolchain-env` grants the variables
# workers get (one table, spawner/toolenv.c; eval/README.md explains each).
SANDBOX_LIMITS = ["--mem", "1G", "--pids", "256", "--cpus", "1"]

GIT = ["git", "-c", "user.name=eval", "-c", "user.email=eval@localhost",
       "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]


class TaskError(Exception):
    """A check of a task that did not hold; the message says which and why."""

    def __init__(self, msg, detail=""):
        super().__init__(msg)
        self.detail = detail


def load_task(tdir):
    """Reads and validates TDIR/task.json and the task's folders. Returns the
    parsed task; raises TaskError listing every problem found."""
    tid = os.path.basename(tdir)
    problems = []
    path = os.path.join(tdir, "task.json")
    try:
        with open(path, encoding="utf-8") as f:
            t = json.load(f)
    except (OSError, ValueError) as e:
        raise TaskError(f"task.json cannot be read: {e}")
    if not isinstance(t, dict):
        raise TaskError("task.json is not a JSON object")

    def need(key, typ, what):
        v = t.get(key)
        if not isinstance(v, typ) or isinstance(v, bool) and typ is not bool:
            problems.append(f"{key}: {what}")
            return None
        return v

    kind = need("kind", str, f"one of {', '.join(KINDS)}")
    if kind not in KINDS:
        problems.append(f"kind: one of {', '.join(KINDS)}, not {kind!r}")
        kind = None
    allowed = KEYS_ALL | (KEYS_CHANGE if kind == "change" else set())
    for k in sorted(set(t) - allowed):
        problems.append(f"unknown key {k!r}" + (" (only for kind change)" if k in KEYS_CHANGE else ""))
    tid_json = need("id", str, "a string")
    if tid_json is not None and tid_json != tid:
        problems.append(f"id {tid_json!r} is not the folder's name {tid!r}")
    if not ID_RE.match(tid):
        problems.append(f"id {tid!r} is not <lang>-<slug> or chg-<lang>-<slug> (lowercase, digits, dashes)")
    title = need("title", str, "a non-empty string")
    if title is not None and not (0 < len(title.strip()) <= 100):
        problems.append("title: 1 to 100 characters")
    lang = need("lang", str, f"one of {', '.join(LANG_PREFIX)}")
    if lang is not None and lang not in LANG_PREFIX:
        problems.append(f"lang: one of {', '.join(LANG_PREFIX)}, not {lang!r}")
    elif lang is not None:
        m = ID_RE.match(tid)
        if m:
            pre = m.group(2)
            want = (LANG_PREFIX[lang],)
            if pre not in want:
                problems.append(f"id prefix {pre!r} does not match lang {lang!r} (expected {'/'.join(want)})")
            if (m.group(1) is not None) != (kind == "change"):
                problems.append("id starts with chg- exactly when kind is change")
    size = need("size", str, f"one of {', '.join(SIZES)}")
    if size is not None and size not in SIZES:
        problems.append(f"size: one of {', '.join(SIZES)}, not {size!r}")
    idea = need("idea", str, "the request as a person types it")
    if idea is not None and len(idea.strip()) < 40:
        problems.append("idea: too short to name the interfaces the hidden tests use")
    answers = need("answers", list, "a list of strings")
    if answers is not None and not all(isinstance(a, str) and a.strip() for a in answers):
        problems.append("answers: every item a non-empty string")
    tc = need("toolchain", list, "a non-empty list of tool names")
    if tc is not None:
        if not tc:
            problems.append("toolchain: at least one tool")
        for x in tc:
            if x not in TOOLCHAINS:
                problems.append(f"toolchain: unknown tool {x!r} (known: {', '.join(TOOLCHAINS)})")
    budget = need("budget", dict, "an object with tokens, usd, wall_s")
    if budget is not None:
        for k, typ in (("tokens", int), ("usd", (int, float)), ("wall_s", int)):
            v = budget.get(k)
            if not isinstance(v, typ) or isinstance(v, bool) or v <= 0:
                problems.append(f"budget.{k}: a positive number")
        for k in sorted(set(budget) - {"tokens", "usd", "wall_s"}):
            problems.append(f"budget: unknown key {k!r}")

    def command_block(key):
        v = need(key, dict, "an object with command and timeout_s")
        if v is None:
            return
        if not isinstance(v.get("command"), str) or not v["command"].strip():
            problems.append(f"{key}.command: a non-empty shell command")
        to = v.get("timeout_s")
        if not isinstance(to, int) or isinstance(to, bool) or not 1 <= to <= 3600:
            problems.append(f"{key}.timeout_s: whole seconds from 1 to 3600")
        for k in sorted(set(v) - {"command", "timeout_s"}):
            problems.append(f"{key}: unknown key {k!r}")

    command_block("hidden")
    if kind == "change":
        need("base_branch", str, "the branch the change starts from")
        command_block("repo_tests")

    # the folders
    hidden = os.path.join(tdir, "hidden")
    reference = os.path.join(tdir, "reference")
    repo = os.path.join(tdir, "repo")
    hfiles = list_files(hidden, problems)
    rfiles = list_files(reference, problems)
    if not hfiles:
        problems.append("hidden/: no files")
    for p in hfiles:
        if not os.path.basename(p).startswith(HIDDEN_PREFIX):
            problems.append(f"hidden/{p}: a hidden file's name starts with {HIDDEN_PREFIX}")
    if not rfiles:
        problems.append("reference/: no files")
    if kind == "change":
        pfiles = list_files(repo, problems)
        if not pfiles:
            problems.append("repo/: no files (a change task ships its repository)")
        clash = sorted(set(hfiles) & set(pfiles))
        for p in clash:
            problems.append(f"hidden/{p} would overwrite repo/{p}")
        if pfiles and rfiles and all(same_file(os.path.join(repo, p), os.path.join(reference, p))
                                     for p in rfiles if p in pfiles) \
                and not set(rfiles) - set(pfiles):
            problems.append("reference/ changes nothing in repo/")
    elif kind == "new" and os.path.exists(repo):
        problems.append("repo/: only for kind change")
    for p in sorted(set(hfiles) & set(rfiles)):
        problems.append(f"hidden/{p} would overwrite reference/{p}")
    for p in rfiles:
        if os.path.basename(p).startswith(HIDDEN_PREFIX):
            problems.append(f"reference/{p}: names starting with {HIDDEN_PREFIX} belong to hidden/")
    if problems:
        raise TaskError("task.json or folders do not follow eval/README.md", "\n".join(problems))
    return t


def list_files(top, problems):
    """Relative paths of the regular files under TOP ([] when TOP is absent);
    a symbolic link or other special file is a problem (the copies made for
    the sandbox and by the runner must be plain files)."""
    out = []
    if not os.path.isdir(top):
        return out
    base = os.path.basename(top)
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            full = os.path.join(d, name)
            rel = os.path.relpath(full, top)
            if os.path.islink(full):
                problems.append(f"{base}/{rel}: a symbolic link (only plain files and folders)")
            elif name in files and not os.path.isfile(full):
                problems.append(f"{base}/{rel}: not a regular file")
            elif name in files:
                out.append(rel)
    return sorted(out)


def same_file(a, b):
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    except OSError:
        return False


def overlay(src, dst):
    """Copies the files under SRC into DST, keeping relative paths and modes."""
    for d, _dirs, files in os.walk(src):
        rel = os.path.relpath(d, src)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for name in files:
            shutil.copy2(os.path.join(d, name), os.path.join(dst, rel, name))


def make_state(ws, layers):
    """Makes WS a git repository on main whose one commit holds LAYERS copied
    in order (each a folder laid over the previous ones); none: an empty
    repository with an empty commit."""
    shutil.rmtree(ws, ignore_errors=True)
    os.makedirs(ws)
    for layer in layers:
        overlay(layer, ws)
    try:
        for args in (["init", "-q"], ["add", "-A"],
                     ["commit", "-q", "--allow-empty", "-m", "the state to check"]):
            subprocess.run(GIT + args, cwd=ws, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    except subprocess.CalledProcessError as e:
        raise TaskError(f"git could not make the state in {ws}", e.stderr.decode("utf-8", "replace"))


class Sandbox:
    def __init__(self, orch):
        self.orch = orch

    def run(self, ws, command, timeout_s):
        """Runs COMMAND with `sh -c` in /workspace = WS inside a fresh sandbox.
        Returns (exit status, output, seconds)."""
        argv = [self.orch, "sandbox", "run", "--workspace", ws, "--timeout", f"{timeout_s}s"]
        argv += SANDBOX_LIMITS + ["--toolchain-env"]
        argv += ["--", "sh", "-c", command]
        t0 = time.monotonic()
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=timeout_s + 60)
        return p.returncode, p.stdout.decode("utf-8", "replace"), time.monotonic() - t0


# lines of a test run's output that say why it failed (unittest, node --test,
# go test, the C tasks' scripts)
WHY = re.compile(r"(not ok|FAIL|ERROR|Error|error:|panic|Traceback|expected|actual:)")


def tail(text, n=20):
    """What to show of a failed command's output: the lines that say why
    (at most 20), then its last N lines."""
    lines = text.rstrip("\n").splitlines()
    why = [l for l in lines[:-n] if WHY.search(l)][:20]
    return "\n".join(why + (["..."] if why else []) + lines[-n:])


def expect(sb, ws, block, want_pass, what):
    """Runs a command block of a task in WS; raises TaskError unless it passed
    (WANT_PASS) or failed on its own (not WANT_PASS: a timeout or a sandbox
    that could not be made is not a failure of the tests). Returns seconds."""
    code, out, secs = sb.run(ws, block["command"], block["timeout_s"])
    if code == 125:
        raise TaskError(f"{what}: the sandbox could not be made", tail(out))
    if code == 124:
        raise TaskError(f"{what}: timed out after {block['timeout_s']}s", tail(out))
    if want_pass and code != 0:
        raise TaskError(f"{what}: fails (exit {code}) and should pass", tail(out))
    if not want_pass and code == 0:
        raise TaskError(f"{what}: passes and should fail (the tests cannot fail)", tail(out))
    return secs, code


def check_task(tdir, sb, work, keep, format_only):
    """Every check of one task; returns a one-line summary or raises TaskError."""
    t = load_task(tdir)
    if format_only:
        return "format ok (sandbox steps not run)"
    tid = t["id"]
    shutil.rmtree(os.path.join(work, tid), ignore_errors=True)
    hidden = os.path.join(tdir, "hidden")
    reference = os.path.join(tdir, "reference")
    repo = os.path.join(tdir, "repo")
    before = os.path.join(work, tid, "before")
    after = os.path.join(work, tid, "after")
    notes = []
    total = 0.0

    if t["kind"] == "change":
        make_state(before, [repo])
        secs, _ = expect(sb, before, t["repo_tests"], True, "repo/: its own tests")
        total += secs
    else:
        make_state(before, [])
    overlay(hidden, before)
    secs, code = expect(sb, before, t["hidden"], False,
                        "hidden tests on " + ("repo/" if t["kind"] == "change" else "the empty repository"))
    total += secs
    notes.append(f"before: hidden fail (exit {code})")

    if t["kind"] == "change":
        make_state(after, [repo, reference])
        secs, _ = expect(sb, after, t["repo_tests"], True, "reference: the repository's own tests")
        total += secs
    else:
        make_state(after, [reference])
    overlay(hidden, after)
    secs, _ = expect(sb, after, t["hidden"], True, "hidden tests on the reference")
    total += secs
    notes.append("reference: hidden pass" + (", own tests pass" if t["kind"] == "change" else ""))
    if not keep:
        shutil.rmtree(os.path.join(work, tid), ignore_errors=True)
    return f"{'; '.join(notes)} ({total:.1f}s)"


def probe_sandbox(orch):
    """None when `orchestrator sandbox run` works here, else why not."""
    if not os.access(orch, os.X_OK):
        return f"{orch} is not built (run make first, or set ORCH_BIN)"
    try:
        p = subprocess.run([orch, "sandbox", "run", "--timeout", "20s", "--", "/bin/true"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"the sandbox does not start: {e}"
    if p.returncode != 0:
        why = p.stdout.decode("utf-8", "replace").strip().splitlines()
        return f"the sandbox does not run here ({why[-1] if why else 'exit %d' % p.returncode})"
    return None


def main():
    ap = argparse.ArgumentParser(description="Checks the eval tasks (see eval/README.md).")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("EVAL_JOBS", "2")))
    ap.add_argument("--keep", action="store_true", help="keep the states under BUILD/eval-check")
    ap.add_argument("--format-only", action="store_true", help="check task.json and folders only")
    ap.add_argument("--sandbox-only", metavar="ID,...",
                    help="run the sandbox steps for these tasks only (the others: format)")
    ap.add_argument("ids", nargs="*", help="task ids (default: every task)")
    args = ap.parse_args()

    all_ids = sorted(d for d in os.listdir(TASKS) if os.path.isdir(os.path.join(TASKS, d))) \
        if os.path.isdir(TASKS) else []
    ids = args.ids or all_ids
    in_sandbox = set(args.sandbox_only.split(",")) if args.sandbox_only else set(ids)
    unknown = sorted({i for i in ids} | in_sandbox - set(all_ids))
    unknown = [i for i in unknown if i not in all_ids]
    if unknown:
        print(f"no such task: {', '.join(unknown)} (the tasks are the folders of {TASKS})")
        print("0 passed, 1 failed")
        return 1

    orch = os.environ.get("ORCH_BIN") or os.path.join(ROOT, "bin", "orchestrator")
    orch = os.path.abspath(orch)
    build = os.path.abspath(os.environ.get("BUILD") or os.path.join(ROOT, "build"))
    work = os.path.join(build, "eval-check")
    format_only = args.format_only
    if not format_only:
        why = probe_sandbox(orch)
        if why:
            print(f"skipped: {why}; only task.json and the folders are checked")
            format_only = True
    os.makedirs(work, exist_ok=True)
    sb = Sandbox(orch)

    print(f"1..{len(ids)}", flush=True)
    lock = threading.Lock()
    queue = list(enumerate(ids, 1))
    results = {}

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                n, tid = queue.pop(0)
            try:
                line, detail, good = check_task(os.path.join(TASKS, tid), sb, work, args.keep,
                                                format_only or tid not in in_sandbox), "", True
            except TaskError as e:
                line, detail, good = str(e), e.detail, False
            except (OSError, subprocess.SubprocessError) as e:
                line, detail, good = f"the check could not run: {e}", "", False
            with lock:
                results[tid] = good
                print(f"{'ok' if good else 'not ok'} {n} - {tid}: {line}", flush=True)
                for l in detail.splitlines():
                    print(f"#   {l}", flush=True)
                if not good and os.path.isdir(os.path.join(work, tid)):
                    print(f"#   (the states are kept under {os.path.join(work, tid)})", flush=True)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    passed = sum(1 for v in results.values() if v)
    failed = len(results) - passed
    sandboxed = 0 if format_only else len(in_sandbox & set(ids))
    print(f"# {len(ids)} tasks checked ({sandboxed} in the sandbox) in {time.monotonic() - t0:.0f}s, "
          f"{max(1, args.jobs)} at a time")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
