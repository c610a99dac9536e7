#!/usr/bin/env python3
"""Runs every test of orchestrator and prints `N passed, N failed`.

Tests are the cmocka programs built into BUILD/tests/test_* and the scripts
tests/scripts/test_*.sh|.py. Each speaks TAP on stdout (cmocka via
CMOCKA_MESSAGE_OUTPUT=TAP). Each test program gets a database of its own,
copied from a template that `orchestrator migrate` prepared, a Redis
database number of its own, and a fresh ORCH_DATA_DIR, so programs can run
side by side. A program that crashes, times out or exits non-zero without
reporting a failing case counts as one failure.

Environment from tests/run.sh: TEST_PG_BASE (postgresql://user@host:port),
TEST_REDIS_PORT. Options: --jobs N (TEST_JOBS, default 2), name filters.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time

TAP_OK = re.compile(r"^ok \d+\b(?: - )?(.*)$")
TAP_NOT_OK = re.compile(r"^not ok \d+\b(?: - )?(.*)$")
TAP_PLAN = re.compile(r"^1\.\.(\d+)")


def psql(base, db, sql):
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{base}/{db}", "-c", sql],
                   check=True, stdout=subprocess.DEVNULL, env=env)


def discover(build, filters):
    tests = []
    tdir = os.path.join(build, "tests")
    if os.path.isdir(tdir):
        for name in sorted(os.listdir(tdir)):
            path = os.path.join(tdir, name)
            if name.startswith("test_") and os.path.isfile(path) and os.access(path, os.X_OK):
                tests.append((name, [path]))
    sdir = os.path.join("tests", "scripts")
    if os.path.isdir(sdir):
        for name in sorted(os.listdir(sdir)):
            path = os.path.join(sdir, name)
            if name.startswith("test_") and name.endswith(".sh"):
                tests.append((name, ["bash", path]))
            elif name.startswith("test_") and name.endswith(".py"):
                tests.append((name, [sys.executable, path]))
    if filters:
        tests = [t for t in tests if any(f in t[0] for f in filters)]
    return tests


# lines that say why a case failed: cmocka's messages and the tests' own
FAILURE_LINE = re.compile(r"^(not ok|# .*(error|Failure|ERROR|fail)|ERROR:|.*error: )")


class Result:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.failures = []
        self.output = ""
        self.seconds = 0.0
        self.note = ""
        self.log = ""


def run_one(name, argv, args, index, base):
    res = Result(name)
    db = "t_" + re.sub(r"[^a-z0-9_]", "_", name.lower())[:50]
    data_dir = os.path.abspath(os.path.join(args.build, "test-data", name))
    shutil.rmtree(data_dir, ignore_errors=True)
    os.makedirs(data_dir, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": f"{base}/{db}",
        "TEST_DATABASE_URL": f"{base}/{db}",
        "TEST_PG_ADMIN_URL": f"{base}/postgres",
        "REDIS_URL": f"redis://127.0.0.1:{os.environ.get('TEST_REDIS_PORT', '6379')}/{index % 16}",
        "ORCH_DATA_DIR": data_dir,
        "ORCH_BIN": os.path.abspath(args.bin),
        "ORCH_BUILD": os.path.abspath(args.build),
        "CMOCKA_MESSAGE_OUTPUT": "TAP",
        "ORCH_LOG_LEVEL": os.environ.get("ORCH_LOG_LEVEL", "warn"),
    })
    t0 = time.monotonic()
    try:
        psql(base, "postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        psql(base, "postgres", f'CREATE DATABASE "{db}" TEMPLATE orch_template')
        subprocess.run(["redis-cli", "-p", os.environ.get("TEST_REDIS_PORT", "6379"),
                        "-n", str(index % 16), "FLUSHDB"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.CalledProcessError as e:
        res.failed = 1
        res.note = f"could not prepare the test database: {e}"
        return res
    try:
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=args.timeout, stdin=subprocess.DEVNULL)
        out = proc.stdout.decode("utf-8", "replace")
        code = proc.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        code = None
    res.seconds = time.monotonic() - t0
    res.output = out
    # the whole output, for when the tail printed on failure is not enough
    res.log = os.path.join(args.build, "test-logs", name + ".log")
    os.makedirs(os.path.dirname(res.log), exist_ok=True)
    with open(res.log, "w") as f:
        f.write(out)
    plan = None
    for line in out.splitlines():
        m = TAP_PLAN.match(line)
        if m:
            plan = int(m.group(1))
            continue
        m = TAP_NOT_OK.match(line)
        if m:
            res.failed += 1
            res.failures.append(m.group(1))
            continue
        m = TAP_OK.match(line)
        if m:
            res.passed += 1
    if code is None:
        res.failed += 1
        res.note = f"timed out after {args.timeout}s"
    elif code != 0 and res.failed == 0:
        res.failed += 1
        res.note = f"exited with status {code} without reporting a failing case"
    elif plan is not None and res.passed + res.failed < plan:
        missing = plan - res.passed - res.failed
        res.failed += missing
        res.note = f"{missing} planned cases never reported"
    elif res.passed + res.failed == 0:
        res.failed = 1
        res.note = "reported no test cases"
    # a program whose counterpart is absent says so in one line; show it
    skipped = [l for l in out.splitlines() if l.startswith("skipped: ")]
    if skipped and not res.note:
        res.note = skipped[0]
    if res.failed == 0:
        try:
            psql(base, "postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        except subprocess.CalledProcessError:
            pass
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--bin", default="bin/orchestrator")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("TEST_JOBS", "2")))
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("TEST_TIMEOUT", "600")))
    ap.add_argument("--list", action="store_true", help="print the selected tests' names")
    ap.add_argument("filters", nargs="*")
    args = ap.parse_args()
    if args.list:
        for name, _ in discover(args.build, args.filters):
            print(name)
        return 0

    base = os.environ.get("TEST_PG_BASE")
    if not base:
        print("TEST_PG_BASE is not set (run through `make test`)")
        print("0 passed, 1 failed")
        return 1
    try:
        psql(base, "postgres", "DROP DATABASE IF EXISTS orch_template")
        psql(base, "postgres", "CREATE DATABASE orch_template")
        env = dict(os.environ, DATABASE_URL=f"{base}/orch_template", ORCH_LOG_LEVEL="warn")
        subprocess.run([args.bin, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        print(f"could not prepare the template database: {e}")
        print("0 passed, 1 failed")
        return 1

    tests = discover(args.build, args.filters)
    results = []
    lock = threading.Lock()
    queue = list(enumerate(tests))

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                index, (name, argv) = queue.pop(0)
            res = run_one(name, argv, args, index, base)
            with lock:
                results.append(res)
                status = "ok  " if res.failed == 0 else "FAIL"
                print(f"{status} {res.name:<40} {res.passed:4d} passed {res.failed:3d} failed"
                      f" {res.seconds:7.1f}s {res.note}", flush=True)
                # what fault tests measured ("# recovery: ...") and tests skipped
                for l in res.output.splitlines():
                    if l.startswith("# recovery") or "skipped:" in l[:60]:
                        print("    " + l, flush=True)
                if res.failed:
                    # the failing cases' own lines first (a sanitizer's report
                    # at exit can fill the tail), then the tail
                    lines = res.output.splitlines()
                    why = [l for l in lines if FAILURE_LINE.search(l)][:40]
                    tail = lines[-60:]
                    if why:
                        print("    | " + "\n    | ".join(why), flush=True)
                        print("    | ...", flush=True)
                    print("    | " + "\n    | ".join(tail), flush=True)
                    if res.log:
                        print(f"    (whole output: {res.log})", flush=True)

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    passed = sum(r.passed for r in results)
    failed = sum(r.failed for r in results)
    failing = [f"{r.name}: {c}" for r in results for c in r.failures]
    if failing:
        print("failing cases:")
        for f in failing:
            print(f"  {f}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
