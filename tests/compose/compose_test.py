#!/usr/bin/env python3
"""The body of `make compose-test`: compose/docker-compose.yml brought up for
real against the private Docker engine of the tests (tests/env/docker.sh),
with images built here, and taken down again.

  1. the engine and the images: a debootstrapped Debian base (cached in
     ORCH_DOCKER_CACHE), PostgreSQL and Redis images made from Debian's
     packages (tests/env/images/), the sandbox image of the workers;
  2. orchestrator's image built by docker-compose from compose/Dockerfile
     on that base (ORCH_BASE_IMAGE; POSTGRES_IMAGE and REDIS_IMAGE point at
     the local ones);
  3. `docker-compose --profile telegram up -d --scale engine=2`: the
     one-shot migrations, two engines, the spawner (docker backend on the
     same engine), the bot, and the fakes of tests/compose/: every role's
     health check (`orchestrator healthcheck`) turns healthy, /healthz and
     /metrics answer on each;
  4. a project started from the terminal (`orchestrator new` in an engine's
     container) runs to its end through the fake model: spec and plan
     approved with `orchestrator approve`, three workers in sandbox
     containers, reviews, merges; the repository's tests pass;
  5. `docker-compose down -v` leaves no container, network or volume.

Prints TAP-like lines, the time of each stage, and `N passed, N failed`.
Environment: BUILD, BIN (as make test), CC, ORCH_DOCKER_CACHE.
"""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.path.join(ROOT, os.environ.get("BUILD", "build")))
WORK = os.path.join(BUILD, "compose-test")
DOCKER_DIR = os.path.join(BUILD, "docker")
PROJECT = "orchct"
IMAGE = "orchestrator:compose-test"
NAME = "compose"           # the terminal chat's name: the project is term:compose:1
TG_TOKEN = "123456:COMPOSE-test"
results = []
timings = []


def check(ok, desc, detail=""):
    results.append(bool(ok))
    print("%s %d - %s" % ("ok" if ok else "not ok", len(results), desc), flush=True)
    if not ok and detail:
        for line in str(detail).rstrip().splitlines()[-40:]:
            print("#   " + line)
    return bool(ok)


def run(argv, timeout=900, env=None, check_rc=False):
    """(exit status, stdout); stderr is added to the output when it failed."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    out = p.stdout if p.returncode == 0 else p.stdout + p.stderr
    if check_rc and p.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(argv), p.returncode, out[-3000:]))
    return p.returncode, out


class Stage:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        timings.append((self.name, time.monotonic() - self.t0))
        return False


def start_engine():
    """The private engine with the images; returns its variables."""
    rc, out = run(["bash", os.path.join(ROOT, "tests/env/docker.sh"), "start", "--dir", DOCKER_DIR,
                   "--images", "bookworm postgres redis worker"], timeout=1800)
    if rc != 0:
        raise RuntimeError("the private Docker engine or its images could not be made:\n" + out)
    env = {}
    for line in out.splitlines():
        m = re.match(r"^export ([A-Z_]+)=(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2)
    return env


def build_fakes():
    """The fakes, built for orchestrator's image (they need libevent and jansson only)."""
    d = os.path.join(WORK, "fakes")
    os.makedirs(d, exist_ok=True)
    rc, flags = run(["pkg-config", "--cflags", "--libs", "libevent", "jansson"], check_rc=True)
    for name in ("fake_openai", "fake_telegram"):
        run([os.environ.get("CC", "cc"), "-std=c11", "-D_GNU_SOURCE", "-O2", "-o",
             os.path.join(d, name), os.path.join(ROOT, "tests/fakes", name + ".c")] + flags.split(),
            check_rc=True)
    return d


def copy_sources(dest):
    """The checkout without build output, for docker-compose's build context
    and compose/.env (a copy: a user's own compose/.env stays untouched)."""
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    skip = {".git", "build", "bin"}

    def keep(ti):
        first = ti.name.split("/")[1] if "/" in ti.name else ""
        if first in skip or first.startswith("build-") or "__pycache__" in ti.name:
            return None
        return ti

    tmp = os.path.join(WORK, "src.tar")
    with tarfile.open(tmp, "w") as t:
        t.add(ROOT, arcname=".", filter=keep)
    with tarfile.open(tmp) as t:
        t.extractall(dest)
    os.unlink(tmp)


def parse_metrics(text):
    """The exposition text as {(name, frozenset of labels): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m:
            raise ValueError("not the text format: %r" % line)
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric_sum(metrics, name, **labels):
    want = set(labels.items())
    return sum(v for (n, l), v in metrics.items() if n == name and want <= set(l))


def http_get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def http_post(url, body, timeout=10):
    rq = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(rq, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


class Stack:
    def __init__(self, env, src):
        self.env = env
        self.files = ["-f", os.path.join(src, "compose/docker-compose.yml"),
                      "-f", os.path.join(ROOT, "tests/compose/docker-compose.test.yml")]

    def compose(self, *args, timeout=900):
        return run(["docker-compose", "--ansi", "never", "-p", PROJECT] + self.files +
                   ["--profile", "telegram"] + list(args), timeout=timeout, env=self.env)

    def docker(self, *args, timeout=120):
        return run(["docker"] + list(args), timeout=timeout, env=self.env)

    def containers(self):
        """{name: inspect} of the project's containers."""
        rc, out = self.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=" + PROJECT)
        ids = out.split()
        if rc != 0 or not ids:
            return {}
        rc, out = self.docker("inspect", *ids)
        if rc != 0:
            return {}
        return {c["Name"].lstrip("/"): c for c in json.loads(out)}

    def ip(self, c):
        nets = c["NetworkSettings"]["Networks"]
        return next(iter(nets.values()))["IPAddress"] if nets else ""

    def exec(self, service, *args, index=1, timeout=120):
        return self.compose("exec", "-T", "--index", str(index), service, *args, timeout=timeout)

    def logs(self):
        rc, out = self.compose("logs", "--no-color", "--tail", "40", timeout=120)
        return out


def service_of(c):
    return c["Config"]["Labels"].get("com.docker.compose.service", "")


def wait_healthy(stack, want_roles, timeout=300):
    """Waits until the migrations exited 0 and every role and dependency is
    healthy; returns the containers then (or what there was at the timeout)."""
    until = time.monotonic() + timeout
    cs = {}
    while time.monotonic() < until:
        cs = stack.containers()
        state = {}
        for name, c in cs.items():
            s = c["State"]
            state[name] = s.get("Health", {}).get("Status") or s["Status"]
        roles = [service_of(c) for c in cs.values()]
        migrate = [c for c in cs.values() if service_of(c) == "migrate"]
        if migrate and migrate[0]["State"]["Status"] == "exited" and \
                migrate[0]["State"]["ExitCode"] != 0:
            return cs
        ready = all(r in roles for r in want_roles) and migrate and \
            migrate[0]["State"]["Status"] == "exited" and all(
                st == "healthy" or (st == "running" and service_of(cs[n]) in ("model", "telegram"))
                for n, st in state.items() if service_of(cs[n]) != "migrate")
        if ready:
            return cs
        time.sleep(2)
    return cs


def main():
    t_all = time.monotonic()
    os.makedirs(WORK, exist_ok=True)
    if os.geteuid() != 0:
        print("skipped: make compose-test needs root (it starts a private Docker engine)")
        print("0 passed, 0 failed")
        return 0
    stack = None
    try:
        with Stage("engine and base images"):
            denv = start_engine()
        env = dict(os.environ)
        env.update(denv)
        env["PATH"] = "/usr/bin:" + env.get("PATH", "")  # Debian's docker CLI, as docker.sh
        print("# private Docker engine %s with local images: bookworm %s, postgres %s, redis %s"
              % (denv.get("DOCKER_HOST"), denv.get("ORCH_TEST_IMAGE_BOOKWORM"),
                 denv.get("ORCH_TEST_IMAGE_POSTGRES"), denv.get("ORCH_TEST_IMAGE_REDIS")),
              flush=True)

        # a stack a previous run left (interrupted) goes first
        src = os.path.join(WORK, "src")
        data = os.path.join(WORK, "data")
        if os.path.exists(os.path.join(src, "compose/.env")):
            Stack(env, src).compose("down", "-v", "--remove-orphans", timeout=300)
        fakes = build_fakes()
        copy_sources(src)
        shutil.rmtree(data, ignore_errors=True)
        os.makedirs(data)
        os.chown(data, 10001, 10001)  # the image's user "orchestrator"
        rc, script = run([os.path.join(BUILD, "tests/progs/factory_script"),
                          "http://model:8080/v1"], check_rc=True)
        script = json.loads(script)
        models = os.path.join(data, "models.json")
        with open(models, "w") as f:
            json.dump(script["models"], f)
        os.chown(models, 10001, 10001)
        dotenv = {
            "POSTGRES_PASSWORD": secrets.token_hex(12),
            "POSTGRES_IMAGE": denv["ORCH_TEST_IMAGE_POSTGRES"],
            "REDIS_IMAGE": denv["ORCH_TEST_IMAGE_REDIS"],
            "ORCH_BASE_IMAGE": denv["ORCH_TEST_IMAGE_BOOKWORM"],
            "ORCH_IMAGE": IMAGE,
            "ORCH_BUILD_NETWORK": "host",
            "ORCH_DATA": data,
            "ORCH_DATA_PATH": data,
            "ORCH_MODELS": models,
            "ORCH_SANDBOX": "docker",
            "ORCH_SANDBOX_IMAGE": denv["ORCH_TEST_IMAGE_WORKER"],
            "DOCKER_SOCKET": denv["DOCKER_HOST"][len("unix://"):],
            "ORCH_WORKER_DISK_KIND": "none",
            "ORCH_MAX_WORKERS": "2",
            "TELEGRAM_BOT_TOKEN": TG_TOKEN,
            "TELEGRAM_API_BASE": "http://telegram:8081",
            "ORCH_ALLOWED_USERS": "111",
            "ORCH_TG_POLL_TIMEOUT": "2s",
            "ORCH_HEALTH_INTERVAL": "1s",
            "ORCH_METRICS_DB_INTERVAL": "1s",
            "ORCH_LOG_LEVEL": "info",
            "ORCH_TEST_FAKES": fakes,
        }
        with open(os.path.join(src, "compose/.env"), "w") as f:
            for k, v in dotenv.items():
                f.write("%s=%s\n" % (k, v))
        stack = Stack(env, src)

        with Stage("orchestrator image (docker-compose build)"):
            rc, out = stack.compose("build", "migrate", timeout=1800)
        if not check(rc == 0, "docker-compose build: orchestrator's image on the local Debian base",
                     out):
            return 1

        with Stage("up until every role is healthy"):
            rc, out = stack.compose("up", "-d", "--no-build", "--scale", "engine=2", timeout=600)
            check(rc == 0, "docker-compose --profile telegram up -d --scale engine=2", out)
            cs = wait_healthy(stack, ["postgres", "redis", "engine", "spawner", "bot"])
        by_service = {}
        for c in cs.values():
            by_service.setdefault(service_of(c), []).append(c)
        mig = by_service.get("migrate", [None])[0]
        rc, mlog = stack.docker("logs", mig["Id"]) if mig else (1, "no migrate container")
        check(mig and mig["State"]["Status"] == "exited" and mig["State"]["ExitCode"] == 0,
              "the one-shot migrate service ran and exited 0", mlog)
        for svc, n in (("postgres", 1), ("redis", 1), ("engine", 2), ("spawner", 1), ("bot", 1)):
            got = by_service.get(svc, [])
            health = [c["State"].get("Health", {}).get("Status") for c in got]
            check(len(got) == n and all(h == "healthy" for h in health),
                  "%s: %d container(s) healthy (%s)" % (svc, n, ", ".join(map(str, health))),
                  "" if len(got) == n and all(h == "healthy" for h in health) else stack.logs())

        # /healthz and /metrics on every role, from here
        roles = [c for s in ("engine", "spawner", "bot") for c in by_service.get(s, [])]
        for c in roles:
            ip = stack.ip(c)
            st, body = http_get("http://%s:9464/healthz" % ip)
            ok = st == 200
            try:
                j = json.loads(body)
                ok = ok and j.get("status") == "ok" and j.get("role") == service_of(c) and \
                    j["parts"]["postgres"]["state"] == "ok"
            except (ValueError, KeyError):
                ok = False
            check(ok, "%s /healthz: 200, role %s, postgres ok" % (c["Name"].lstrip("/"),
                                                                  service_of(c)), body)
            st, body = http_get("http://%s:9464/metrics" % ip)
            try:
                m = parse_metrics(body)
                ok = st == 200 and metric_sum(m, "orch_dependency_up", dependency="postgres") == 1
            except ValueError as e:
                ok, body = False, str(e)
            check(ok, "%s /metrics: the text format (%.1f KiB), orch_dependency_up{postgres} 1"
                  % (c["Name"].lstrip("/"), len(body) / 1024), body[:2000])
        rc, out = stack.exec("postgres", "psql", "-U", "orchestrator", "-tAc",
                             "SELECT count(*) FROM engines WHERE stopped_at IS NULL AND "
                             "heartbeat_at > now() - interval '30 seconds'")
        check(rc == 0 and out.strip() == "2", "two engines share the database (engines alive: %s)"
              % out.strip(), out)

        # a project from the terminal, through the fake model, to merged code
        with Stage("a terminal project to merged code"):
            model_ip = stack.ip(by_service["model"][0])
            http_post("http://%s:8080/__script" % model_ip, {"replies": script["script"]})
            rc, out = stack.exec("engine", "orchestrator", "new", "--name", NAME, "--detach",
                                 "a tiny Python toolkit for URL slugs and word counts")
            check(rc == 0 and "project term:%s:1 started" % NAME in out,
                  "orchestrator new --detach in an engine's container", out)
            key = "term:%s:1" % NAME
            stage, approved, last = "", 0, ""
            until = time.monotonic() + 600
            while time.monotonic() < until:
                rc, out = stack.exec("engine", "orchestrator", "status", "--json", index=2)
                try:
                    st = json.loads(out[out.index("{"):])
                    p = next(p for p in st["projects"] if p["key"] == key)
                except (ValueError, StopIteration, KeyError):
                    time.sleep(2)
                    continue
                stage, last = p.get("stage", ""), out
                if stage in ("done", "failed", "cancelled"):
                    break
                qs = [q.get("question", "") for q in st.get("questions", [])
                      if q.get("project") == key]
                if qs and not re.search(r"as specified|Start building", qs[0]):
                    stage = "asked: " + qs[0]  # a task failed, a merge failed...: not expected
                    break
                if qs:
                    rc, out = stack.exec("engine", "orchestrator", "approve", key)
                    if rc == 0:
                        approved += 1
                time.sleep(2)
            check(stage == "done" and approved >= 2,
                  "the project reached its end (stage %s) with the spec and the plan approved "
                  "from the terminal (%d approvals)" % (stage, approved), last + "\n" + stack.logs())
        repos = [d for d in os.listdir(os.path.join(data, "repos"))] if \
            os.path.isdir(os.path.join(data, "repos")) else []
        repo = next((os.path.join(data, "repos", d) for d in repos if d.startswith("strkit-")), None)
        out = "no repository strkit-*.git under %s/repos" % data
        ok = False
        if repo:
            co = os.path.join(WORK, "checkout")
            shutil.rmtree(co, ignore_errors=True)
            gitcfg = os.path.join(WORK, "gitconfig")  # the repository is uid 10001's
            with open(gitcfg, "w") as f:
                f.write("[safe]\n\tdirectory = *\n")
            rc, out = run(["bash", "-c", "git clone -q '%s' '%s' && cd '%s' && ls && "
                           "python3 -m unittest discover 2>&1 | tail -3" % (repo, co, co)],
                          env=dict(os.environ, GIT_CONFIG_GLOBAL=gitcfg))
            ok = rc == 0 and all(f in out for f in ("slug.py", "wc.py", "cli.py")) and \
                "Ran 9 tests" in out and "\nOK" in out
        check(ok, "main of the project's repository holds the three modules, its 9 tests pass",
              out)
        sp = by_service["spawner"][0]
        st, body = http_get("http://%s:9464/metrics" % stack.ip(sp))
        m = parse_metrics(body) if st == 200 else {}
        n_sbx = metric_sum(m, "orch_sandbox_starts_total", backend="docker")
        check(n_sbx > 0, "the workers' commands ran in sandbox containers "
              "(orch_sandbox_starts_total{backend=\"docker\"} %d)" % n_sbx, body[:1500])
        phases = [l for (n, l) in m if n == "orch_spawner_workers"]
        check(len(phases) >= 6 and metric_sum(m, "orch_spawner_workers") == 0,
              "the spawner's workers by phase: %d phases, none busy after the project"
              % len(phases), body[:1500])
        calls = 0
        for c in by_service["engine"]:
            st, body = http_get("http://%s:9464/metrics" % stack.ip(c))
            if st == 200:
                calls += metric_sum(parse_metrics(body), "orch_llm_calls_total", outcome="ok")
        check(calls > 0, "the engines called the model (orch_llm_calls_total{outcome=\"ok\"} %d)"
              % calls)

        # the bot does its work: it long-polls the (fake) Bot API
        tg_ip = stack.ip(by_service["telegram"][0])
        st, body = http_get("http://%s:8081/control/requests" % tg_ip)
        polls = body.count('"getUpdates"') if st == 200 else 0
        check(polls > 0, "the bot polls Telegram (%d getUpdates calls to the fake)" % polls,
              body[:1500])

        # a dependency down: /healthz says 503 and names it, then recovers
        with Stage("redis stopped and started"):
            sp_url = "http://%s:9464/healthz" % stack.ip(sp)
            stack.compose("stop", "redis", timeout=120)
            down, until = (0, ""), time.monotonic() + 60
            while time.monotonic() < until:
                down = http_get(sp_url)
                if down[0] == 503:
                    break
                time.sleep(0.5)
            stack.compose("start", "redis", timeout=120)
            up, until = (0, ""), time.monotonic() + 90
            while time.monotonic() < until:
                up = http_get(sp_url)
                if up[0] == 200:
                    break
                time.sleep(0.5)
        try:
            named = "redis" in json.loads(down[1]).get("down", [])
        except ValueError:
            named = False
        check(down[0] == 503 and named and up[0] == 200,
              "redis stopped: the spawner's /healthz answers 503 naming redis (%d), and 200 once "
              "it is back (%d)" % (down[0], up[0]), down[1] + "\n" + up[1])

        # the other sandbox choice: the ns backend inside the spawner's
        # container as the file sets it up (no privileged mode)
        with Stage("the spawner on the ns backend"):
            rc, out = stack.compose("run", "--rm", "--no-deps", "-T", "-e", "ORCH_SANDBOX=ns", "spawner",
                                    "orchestrator", "sandbox", "run", "-v", "--", "sh", "-c",
                                    "id -u; cat /proc/self/uid_map; ls /workspace && echo fine",
                                    timeout=300)
            ok = rc == 0 and re.search(r"^1000$", out, re.M) and "fine" in out and \
                not re.search(r"^\s*0\s+0\s", out, re.M)
            check(ok, "the ns backend runs a command in the spawner's container: uid 1000 in its "
                  "own user namespace, without privileged mode", out)
            rc, out = stack.compose("run", "-d", "--no-deps", "-e", "ORCH_SANDBOX=ns", "-e",
                                    "ORCH_WORKER_DISK_KIND=tmpfs", "spawner", timeout=300)
            name = out.strip().splitlines()[-1] if rc == 0 and out.strip() else ""
            st, body, until = 0, "", time.monotonic() + 120
            while name and time.monotonic() < until:
                rc2, ip = stack.docker("inspect", "-f",
                                       "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                       name)
                if rc2 == 0 and ip.strip():
                    try:
                        st, body = http_get("http://%s:9464/metrics" % ip.strip(), timeout=3)
                    except OSError:
                        st = 0
                    if st == 200 and metric_sum(parse_metrics(body), "orch_sandbox_starts_total",
                                                backend="ns") >= 1:
                        st, body = http_get("http://%s:9464/healthz" % ip.strip(), timeout=3)
                        if st == 200:
                            break
                st = 0
                time.sleep(1)
            check(st == 200, "a spawner with ORCH_SANDBOX=ns: its start-up check ran an ns sandbox "
                  "and /healthz answers 200", out + body)
            if name:
                stack.docker("rm", "-f", name)

        # the restart policy: an engine whose process dies (SIGKILL from the
        # host: `docker kill` would count as stopping it by hand) comes back
        with Stage("an engine killed and restarted"):
            victim = by_service["engine"][-1]["Name"].lstrip("/")
            rc, pid = stack.docker("inspect", "-f", "{{.State.Pid}}", victim)
            os.kill(int(pid.strip()), 9)
            until, back = time.monotonic() + 120, ""
            while time.monotonic() < until:
                rc, back = stack.docker("inspect", "-f", "{{.RestartCount}} {{.State.Health.Status}}",
                                        victim)
                if rc == 0 and back.split()[0] != "0" and back.split()[-1] == "healthy":
                    break
                time.sleep(2)
        check(back.split()[-1:] == ["healthy"] and back.split()[0] != "0",
              "%s's process killed: restarted by its policy and healthy again (restarts, "
              "health: %s)" % (victim, back.strip()), stack.logs())

        with Stage("down -v"):
            rc, out = stack.compose("down", "-v", "--remove-orphans", timeout=300)
        check(rc == 0, "docker-compose down -v", out)
        left = stack.containers()
        rc, nets = stack.docker("network", "ls", "-q", "--filter",
                                "label=com.docker.compose.project=" + PROJECT)
        rc2, vols = stack.docker("volume", "ls", "-q", "--filter",
                                 "label=com.docker.compose.project=" + PROJECT)
        rc3, sbx = stack.docker("ps", "-aq", "--filter", "label=orchestrator.sandbox")
        check(not left and rc == 0 and not nets.strip() and rc2 == 0 and not vols.strip() and
              rc3 == 0 and not sbx.strip(),
              "nothing left behind: no container, network, volume or sandbox container",
              "containers %s\nnetworks %s\nvolumes %s\nsandboxes %s" % (list(left), nets, vols, sbx))
        stack = None
    except Exception as e:  # a step that could not even run counts as a failure
        check(False, "compose-test could not go on: %s" % e)
    finally:
        if stack is not None:
            print("# the services' logs end with:")
            for line in stack.logs().splitlines()[-120:]:
                print("#   " + line)
            stack.compose("down", "-v", "--remove-orphans", timeout=300)
        run(["bash", os.path.join(ROOT, "tests/env/docker.sh"), "stop", "--dir", DOCKER_DIR],
            timeout=120)
    total = time.monotonic() - t_all
    print("compose-test took %.0fs: %s" % (total, ", ".join("%s %.0fs" % t for t in timings)))
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
