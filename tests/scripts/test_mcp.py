#!/usr/bin/env python3
"""The MCP server driven by the official MCP TypeScript SDK's client
(@modelcontextprotocol/sdk from npm, installed into BUILD/mcp-sdk when
missing; never globally), over stdio (`orchestrator mcp`) and over the
streamable HTTP transport (/mcp on a serve's ORCH_HTTP_ADDR).

For each transport, tests/scripts/mcp_client.mjs initialises, lists the
tools, is refused for malformed arguments, an unknown tool, project,
resource or cursor, and for a Telegram question (and project) its identity
may not decide; creates two projects that run on the fake model with a real
`orchestrator serve` (engine, spawner: workers in ns sandboxes), answers the
brainstorm's question with send_message, approves the spec and the plan with
answer_question, cancels the second project, follows the first to merged
code, reads its report and spec resources, its history and a worker's log,
its usage, pages through the projects; and checks the notifications it got.
Over HTTP also: a call without a token, with a token unknown, and with a
token of an identity not allowed to decide. The transcript of the tool calls
is printed as "# mcp>" / "# mcp<" lines. Prints TAP."""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

BIN = os.environ.get("ORCH_BIN", "bin/orchestrator")
BUILD = os.environ.get("ORCH_BUILD", "build")
DATA = os.environ.get("ORCH_DATA_DIR", "/tmp")
HERE = os.path.dirname(os.path.abspath(__file__))
SDK_VERSION = "1.32.2"  # the client the tests were written against
SDK = os.path.join(BUILD, "mcp-sdk")
IDEA_A = "a tiny Python toolkit for URL slugs and word counts"
IDEA_B = "a calendar that reminds me of birthdays (project B, to be cancelled)"
results = []
LOGS = []


def check(ok, desc, detail=""):
    results.append((bool(ok), desc))
    if not ok and detail:
        for line in str(detail)[-3000:].splitlines():
            print("# " + line)


def sql(query):
    r = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-tAq", os.environ["DATABASE_URL"],
                        "-c", query], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return r.stdout.strip()


def install_sdk():
    """The SDK in BUILD/mcp-sdk: None when it is there, else why not."""
    pkg = os.path.join(SDK, "node_modules", "@modelcontextprotocol", "sdk", "package.json")
    try:
        with open(pkg) as f:
            if json.load(f).get("version") == SDK_VERSION:
                return None
    except (OSError, ValueError):
        pass
    if not shutil.which("node") or not shutil.which("npm"):
        return "node and npm are not installed"
    os.makedirs(SDK, exist_ok=True)
    t0 = time.monotonic()
    r = subprocess.run(["npm", "install", "--prefix", SDK, "--no-audit", "--no-fund",
                        "--no-save", "--loglevel", "error",
                        "@modelcontextprotocol/sdk@" + SDK_VERSION],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return "npm could not install @modelcontextprotocol/sdk@%s: %s" % (
            SDK_VERSION, (r.stderr or r.stdout).strip().splitlines()[-1:])
    print("# installed @modelcontextprotocol/sdk@%s into %s in %.1f s" %
          (SDK_VERSION, SDK, time.monotonic() - t0))
    return None


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=10).read()


def script_fake(base):
    """The fake model's replies for project A (a question, then the spec, the
    plan, three tasks and their reviews) and B (a question, matched by its
    idea); the models file."""
    r = subprocess.run([os.path.join(BUILD, "tests", "progs", "factory_script"), base + "/v1",
                        "--ask"], capture_output=True, text=True, check=True)
    s = json.loads(r.stdout)
    b = json.loads(json.dumps(s["script"][0]))  # the brainstorm's question
    b["match"] = "project B, to be cancelled"
    post(base + "/__reset", {})
    post(base + "/__script", {"replies": [b] + s["script"]})
    return s["models"]


def seed_telegram():
    """A Telegram project with a question for its approvers (ORCH_ALLOWED_USERS
    111): the Unix user running the tests is mapped to nobody."""
    sql("INSERT INTO threads (key, graph, metadata) VALUES ('tg:7001:1', 'factory', "
        "'{\"channel\": \"telegram\", \"chat\": \"7001\", \"title\": \"a Telegram project\", "
        "\"n\": 1}') ON CONFLICT DO NOTHING")
    return sql("INSERT INTO approvals (thread_id, channel, chat, key, question, options, "
               "expires_at) SELECT id, 'telegram', '7001', 'q', 'Approve the spec?', "
               "'[{\"id\": \"approve\", \"label\": \"Approve\"}]', now() + interval '1 day' "
               "FROM threads WHERE key = 'tg:7001:1' RETURNING id")


def run_client(env, transport):
    """Runs mcp_client.mjs; its TAP lines become this test's."""
    t0 = time.monotonic()
    p = subprocess.run(["node", os.path.join(HERE, "mcp_client.mjs")], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=480)
    seen = 0
    for line in p.stdout.splitlines():
        if line.startswith("ok ") or line.startswith("not ok "):
            ok = line.startswith("ok ")
            results.append((ok, line.split(" - ", 1)[-1]))
            seen += 1
        elif line.startswith("1.."):
            continue
        else:
            print(line if line.startswith("#") else "# " + line)
    check(p.returncode == 0 and seen > 20,
          "the SDK client over %s ran to its end (%d checks, %.1f s)" %
          (transport, seen, time.monotonic() - t0))


def free_port():
    import socket
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def token(env, *args):
    r = subprocess.run([BIN, "web", "token", *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("orchestrator web token %s: %s" % (" ".join(args), r.stderr))
    return r.stdout.strip()


def raw(url, method="POST", body=None, headers=None):
    """(status, headers, body text) of one request to /mcp."""
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}}}


def http_checks(url, ada, eve):
    """The transport's rules, request by request (what the SDK never sends)."""
    bear = {"Authorization": "Bearer " + ada}
    st, hd, body = raw(url, body=INIT)
    check(st == 401 and "Bearer" in (hd.get("WWW-Authenticate") or "") and "web token" in body,
          "http: no token: 401 with WWW-Authenticate, saying how to make one", (st, body))
    st, hd, body = raw(url, body=INIT, headers={"Authorization": "Bearer orch_nope"})
    check(st == 401 and "Bearer" in (hd.get("WWW-Authenticate") or "") and "not valid" in body,
          "http: an unknown token: 401, saying it is not valid", (st, body))
    # a dashboard session (its cookie) is not a bearer token: JSON-RPC carries no CSRF token
    base = url[:-len("/mcp")]
    st, hd, body = raw(base + "/login", body={"token": ada, "pre": "p1"},
                       headers={"Cookie": "orch_pre=p1"})
    cookie = (hd.get("Set-Cookie") or "").split(";")[0]
    check(st == 200 and cookie.startswith("orch_session="), "http: a dashboard login for ada",
          (st, body))
    st, hd, body = raw(url, body=INIT, headers={"Cookie": cookie})
    check(st == 401 and "bearer token" in body and "Bearer" in (hd.get("WWW-Authenticate") or ""),
          "http: a dashboard session's cookie alone is refused on /mcp (401)", (st, body))
    st, _, body = raw(url, body=INIT, headers=dict(bear, Origin="http://evil.example"))
    check(st == 403 and "Origin" in body, "http: a foreign Origin is refused (403)", (st, body))
    st, _, body = raw(url, body=INIT, headers=dict(bear, **{"MCP-Protocol-Version": "1999-01-01"}))
    check(st == 400 and "MCP-Protocol-Version" in body, "http: an unknown protocol version: 400",
          (st, body))
    st, _, body = raw(url, body={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=bear)
    check(st == 400 and "Mcp-Session-Id" in body, "http: a request without a session: 400",
          (st, body))
    st, _, body = raw(url, body={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                      headers=dict(bear, **{"Mcp-Session-Id": "nope"}))
    check(st == 404, "http: an unknown session: 404", (st, body))
    st, hd, body = raw(url, body=INIT, headers=dict(bear, Origin="http://" + url.split("/")[2]))
    sid = hd.get("Mcp-Session-Id") if st == 200 else None
    check(st == 200 and sid and json.loads(body)["result"]["protocolVersion"] == "2025-11-25",
          "http: initialize (from the server's own origin) opens a session", (st, body))
    sh = dict(bear, **{"Mcp-Session-Id": sid or "", "MCP-Protocol-Version": "2025-11-25"})
    st, _, body = raw(url, body={"jsonrpc": "2.0", "method": "notifications/initialized"},
                      headers=sh)
    check(st == 202 and body == "", "http: a notification is accepted with 202", (st, body))
    st, _, body = raw(url, body={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=sh)
    check(st == 200 and len(json.loads(body)["result"]["tools"]) >= 4,
          "http: tools/list on the session", (st, body[:300]))
    st, _, body = raw(url, body={"jsonrpc": "2.0", "id": 4, "method": "tools/list"},
                      headers=dict(sh, Authorization="Bearer " + eve))
    check(st == 404, "http: a session belongs to its token: another token gets 404", (st, body))
    st, _, body = raw(url, method="GET", headers=dict(sh, Accept="application/json"))
    check(st == 406, "http: a GET that does not accept an event stream: 406", (st, body))
    req = urllib.request.Request(url, headers=dict(sh, Accept="text/event-stream"))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            first = r.read1(200).decode() if hasattr(r, "read1") else r.read(32).decode()
            ctype = r.headers.get("Content-Type")
    except Exception as e:  # the check below fails
        first, ctype = repr(e), ""
    check(ctype == "text/event-stream" and first.startswith(":"),
          "http: GET opens the session's event stream", (ctype, first))
    st, _, body = raw(url, method="DELETE", headers=sh)
    check(st == 200, "http: DELETE ends the session", (st, body))
    st, _, body = raw(url, body={"jsonrpc": "2.0", "id": 5, "method": "ping"}, headers=sh)
    check(st == 404, "http: the ended session is gone (404)", (st, body))


def start(argv, env, name):
    log = open(os.path.join(DATA, name + ".log"), "w")
    LOGS.append(log.name)
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(p):
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    why = install_sdk()
    if why:
        print("skipped: " + why)
        print("1..1\nok 1 - skipped: the MCP SDK client cannot be installed here")
        return 0
    if os.geteuid() != 0:
        print("skipped: the workers' sandbox needs root")
        print("1..1\nok 1 - skipped: not root")
        return 0
    fake = subprocess.Popen([os.path.join(BUILD, "tests", "progs", "fake_openai")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    serve = None
    try:
        port = json.loads(fake.stdout.readline())["port"]
        base = "http://127.0.0.1:%d" % port
        models = os.path.join(DATA, "models.json")
        with open(models, "w") as f:
            json.dump(script_fake(base), f)
        tg_question = seed_telegram()
        # a stored secret whose value the second project's idea holds
        canary = "mcp-canary-" + os.urandom(12).hex()
        senv = dict(os.environ, ORCH_LOG_LEVEL="error")
        subprocess.run([BIN, "secrets", "init"], env=senv, check=True, capture_output=True)
        subprocess.run([BIN, "secrets", "set", "MCP_CANARY"], env=senv, check=True,
                       input=canary, capture_output=True, text=True)
        env = dict(os.environ, ORCH_MODELS=models, ORCH_POLL="100ms", ORCH_ENGINE_THREADS="2",
                   ORCH_WORKER_DISK_KIND="tmpfs", ORCH_WORKER_DISK="128M",
                   ORCH_WORKER_MEM="512M", ORCH_WORKER_PIDS="128",
                   ORCH_AGENT_CMD_TIMEOUT="60s", ORCH_TEST_TIMEOUT="60s",
                   ORCH_MAX_WORKERS="2", ORCH_SPAWN_CLAIM_IDLE="3s",
                   ORCH_ALLOWED_USERS="111", ORCH_MCP_POLL="200ms", ORCH_MCP_PAGE="4",
                   ORCH_LOG_LEVEL=os.environ.get("ORCH_LOG_LEVEL", "warn"))
        env.pop("ORCH_OPERATORS", None)
        env.pop("TELEGRAM_BOT_TOKEN", None)
        addr = "127.0.0.1:%d" % free_port()
        env["ORCH_HTTP_ADDR"] = addr
        serve = start([BIN, "serve"], env, "serve")
        # a local repository for create_project's change
        change_repo = os.path.join(DATA, "change-repo")
        genv = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                    GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
        subprocess.run(["git", "init", "-q", "-b", "main", change_repo], check=True, env=genv)
        with open(os.path.join(change_repo, "tool.py"), "w") as f:
            f.write("print('tool')\n")
        subprocess.run(["git", "-C", change_repo, "add", "."], check=True, env=genv)
        subprocess.run(["git", "-C", change_repo, "commit", "-qm", "first"], check=True, env=genv)
        env["CHANGE_REPO"] = change_repo
        cenv = dict(env, MCP_SDK=os.path.abspath(SDK), MCP_TRANSPORT="stdio",
                    ORCH_BIN=os.path.abspath(BIN), IDEA_A=IDEA_A,
                    IDEA_B="(its key: %s) " % canary + IDEA_B, CANARY=canary,
                    TG_QUESTION=tg_question, TG_PROJECT="tg:7001:1")
        run_client(cenv, "stdio")
        # the same over HTTP, with tokens of the dashboard's kind: one acting
        # as the Unix user running the tests, one as a Telegram user that is
        # not allowed to decide
        ada = token(env, "--user", "ada", "--operator", "root")
        eve = token(env, "--user", "eve", "--telegram", "999")
        url = "http://%s/mcp" % addr
        http_checks(url, ada, eve)
        script_fake(base)
        henv = dict(cenv, MCP_TRANSPORT="http", MCP_URL=url, MCP_TOKEN=ada,
                    MCP_TOKEN_OUTSIDER=eve, IDEA_A=IDEA_A + " (over HTTP)",
                    IDEA_B="(its key: %s) " % canary + IDEA_B + " over HTTP")
        run_client(henv, "http")
    finally:
        stop(serve)
        fake.terminate()
        fake.wait(10)
    return finish()


def finish():
    if not all(ok for ok, _ in results):
        for name in LOGS:
            print("# --- the end of %s:" % name)
            with open(name, errors="replace") as f:
                for line in f.read()[-4000:].splitlines():
                    print("# " + line)
    print("1..%d" % len(results))
    for i, (ok, desc) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
