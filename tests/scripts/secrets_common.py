"""Shared helpers of the secrets script tests (TAP output, running the CLI,
psql and pg_dump against the test database that tests/run.py provides).
Not a test itself: tests/run.py only runs files named test_*."""
import os
import re
import subprocess
import sys


class Tap:
    """Prints TAP: one `ok`/`not ok` line per check, the plan at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, cond, desc, detail=""):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {desc}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {desc}", flush=True)
            for line in str(detail).splitlines()[:40]:
                print(f"# {line}", flush=True)
        return cond

    def done(self):
        print(f"1..{self.n}", flush=True)
        return 1 if self.failed else 0


BIN = os.environ.get("ORCH_BIN", "bin/orchestrator")
BUILD = os.environ.get("ORCH_BUILD", "build")
DB = os.environ.get("DATABASE_URL", "")
DATA = os.environ.get("ORCH_DATA_DIR", "/tmp")


def env_with(**kw):
    """The test environment with some variables set (None removes one)."""
    env = dict(os.environ)
    env.pop("ORCH_MASTER_KEY", None)
    env.pop("ORCH_MASTER_KEY_FILE", None)
    for k, v in kw.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout.decode("utf-8", "replace")
        self.err = proc.stderr.decode("utf-8", "replace")

    def __str__(self):
        return f"exit {self.code}\nstdout: {self.out}\nstderr: {self.err}"


LOGS = []  # every stderr (and stdout) seen, for the redaction checks


def run(args, stdin=b"", env=None, prog=None):
    """Runs the orchestrator binary (or a helper program) and records its output."""
    argv = ([os.path.join(BUILD, "tests", "progs", prog)] if prog else [BIN]) + list(args)
    p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env if env is not None else env_with(), timeout=120)
    r = Result(p)
    LOGS.append(r.err)
    LOGS.append(r.out)
    return r


def psql(sql):
    p = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", DB, "-c", sql],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return p.stdout.decode().strip()


def pg_dump():
    """A plain-text dump of the whole test database, with the server's pg_dump."""
    bins = sorted((d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int)
    tool = f"/usr/lib/postgresql/{bins[-1]}/bin/pg_dump" if bins else "pg_dump"
    p = subprocess.run([tool, "--no-owner", DB], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       check=True)
    return p.stdout.decode("utf-8", "replace")


HANDLE = re.compile(r"^res_[a-z2-7]{26}$")


def main_guard(fn):
    try:
        sys.exit(fn())
    except Exception as e:  # a crash of the script is a failing case, not a silent pass
        print(f"not ok 999 - the test script raised {type(e).__name__}: {e}")
        raise
