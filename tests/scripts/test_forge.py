#!/usr/bin/env python3
"""The fake forge (tests/fakes/forge.py) driven as a client of GitHub would
drive GitHub: real `git` clones and pushes branches over smart HTTP, and the
REST API is called over plain HTTP (http.client, which sends no header it is
not given). Covers what the fake refuses as GitHub refuses it (credentials,
rights, request bodies, pull requests that cannot be opened or merged) and
the whole flow: open a pull request, find it by head, comment, review,
report CI, follow a push, merge. Prints TAP, then `N passed, N failed`."""
import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FORGE = os.path.join(ROOT, "tests", "fakes", "forge.py")
UA = "orchestrator-forge-test"
DEV, READER, REV = "tok-dev-5f1e", "tok-read-77aa", "tok-rev-90bc"


class Tap:
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
            for line in str(detail).splitlines()[:30]:
                print(f"# {line}", flush=True)
        return cond

    def done(self):
        print(f"1..{self.n}", flush=True)
        print(f"{self.n - self.failed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


class Resp:
    def __init__(self, status, headers, data):
        self.status = status
        self.headers = headers
        self.text = data.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text) if self.text else None
        except ValueError:
            self.json = None

    def h(self, name):
        return self.headers.get(name.lower())

    def msg(self):
        return (self.json or {}).get("message", "") if isinstance(self.json, dict) else ""

    def __str__(self):
        return f"{self.status} {self.headers}\n{self.text[:1500]}"


class Forge:
    def __init__(self, root):
        self.proc = subprocess.Popen(
            [sys.executable, FORGE, "--root", root, "--user", f"dev:{DEV}:write",
             "--user", f"reader:{READER}:read", "--user", f"rev:{REV}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = self.proc.stdout.readline().decode().strip()
        if not line.isdigit():
            raise RuntimeError("the forge did not start: " + line + self.proc.stdout.read(2000).decode())
        self.port = int(line)
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def http(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        out = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        c.close()
        return out

    def api(self, method, path, body=None, token=DEV, headers=None, scheme="Bearer"):
        h = {"User-Agent": UA, "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            h["Authorization"] = f"{scheme} {token}"
        if body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        if path.startswith("http"):
            path = path[len(self.base):]
        return self.http(method, path if path.startswith("/api/v3") else "/api/v3" + path, body, h)

    def control(self, what, body):
        r = self.http("POST", "/_control/" + what, body)
        if r.status != 200:
            raise RuntimeError(f"control {what}: {r}")
        return r.json

    def log(self, since=1):
        return self.http("GET", f"/_control/log?since={since}").json


class Git:
    def __init__(self, work):
        self.env = dict(os.environ, HOME=work, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false",
                        GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.com",
                        GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.com")
        self.env.pop("GIT_DIR", None)

    def __call__(self, *args, cwd=None):
        p = subprocess.run(["git"] + list(args), cwd=cwd, env=self.env, capture_output=True)
        p.out = p.stdout.decode(errors="replace").strip()
        p.err = p.stderr.decode(errors="replace")
        return p


def commit(git, wt, path, text, msg):
    with open(os.path.join(wt, path), "w") as f:
        f.write(text)
    git("add", path, cwd=wt)
    git("commit", "-qm", msg, cwd=wt)
    return git("rev-parse", "HEAD", cwd=wt).out


def main():
    t = Tap()
    work = tempfile.mkdtemp(prefix="forge-test-", dir=os.environ.get("ORCH_DATA_DIR"))
    root = os.path.join(work, "root")
    try:
        forge = Forge(root)
    except (RuntimeError, OSError) as e:
        t.check(False, "the forge starts and prints its port", e)
        return t.done()
    try:
        run(t, forge, Git(work), work)
    except Exception:  # a step that broke ends the run as a failure, with its trace
        t.check(False, "the test runs to its end", traceback.format_exc())
    finally:
        forge.stop()
        shutil.rmtree(work, ignore_errors=True)
    return t.done()


def run(t, forge, git, work):
    f = forge
    repo = f.control("repos", {"owner": "acme", "name": "app"})
    t.check(repo["private"] and repo["default_branch"] == "main" and repo["clone_url"] == f.base + "/acme/app.git",
            "the control API creates a private bare repository", repo)
    f.control("repos", {"owner": "acme", "name": "pub", "private": False})
    url = f.base + "/acme/app.git"
    cred = f"http://x-access-token:{DEV}@127.0.0.1:{f.port}/acme/app.git"
    wt = os.path.join(work, "wt")

    # --- git over smart HTTP, with the same tokens ---
    p = git("clone", "-q", url, os.path.join(work, "anon"))
    t.check(p.returncode != 0, "an anonymous clone of a private repository is refused", p.err)
    seen = f.log()["requests"]
    t.check(any(e["kind"] == "git" and e["status"] == 401 and "info/refs" in e["path"] for e in seen),
            "the refusal is a 401 challenge", seen)
    git("init", "-q", "-b", "main", wt)
    calc = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(12))
    main1 = commit(git, wt, "calc.py", calc, "calc: twelve functions")
    commit(git, wt, "README.md", "app\n", "readme")
    main1 = git("rev-parse", "HEAD", cwd=wt).out
    p = git("push", "-q", cred, "main", cwd=wt)
    t.check(p.returncode == 0, "a write token pushes main (Basic, the token as the password)", p.err)
    p = git("push", "-q", f"http://reader:{READER}@127.0.0.1:{f.port}/acme/app.git", "main:refs/heads/ro", cwd=wt)
    t.check(p.returncode != 0 and "403" in p.err, "a read token cannot push (403)", p.err)
    p = git("push", "-q", f"http://x:not-a-token@127.0.0.1:{f.port}/acme/app.git", "main:refs/heads/x", cwd=wt)
    t.check(p.returncode != 0 and "Authentication failed" in p.err, "a wrong token cannot push (401)", p.err)
    p = git("clone", "-q", f"http://x:{READER}@127.0.0.1:{f.port}/acme/app", os.path.join(work, "ro"))
    t.check(p.returncode == 0 and os.path.exists(os.path.join(work, "ro", "calc.py")),
            "a read token clones (the URL without .git works too)", p.err)
    p = git("clone", "-q", f"http://{DEV}@127.0.0.1:{f.port}/acme/app.git", os.path.join(work, "tokuser"))
    t.check(p.returncode == 0, "the token as the user name with no password also works", p.err)
    p = git("push", "-q", f"http://x:{DEV}@127.0.0.1:{f.port}/acme/pub.git", "main", cwd=wt)
    p2 = git("clone", "-q", f.base + "/acme/pub.git", os.path.join(work, "pub"))
    t.check(p.returncode == 0 and p2.returncode == 0, "a public repository clones without credentials",
            p.err + p2.err)
    p = git("push", "-q", f.base + "/acme/pub.git", "main:refs/heads/anon", cwd=wt)
    t.check(p.returncode != 0, "but takes no anonymous push", p.err)

    # branches for the pull requests below
    git("checkout", "-qb", "feature", cwd=wt)
    feat1 = commit(git, wt, "calc.py", calc.replace("return x + 3\n", "return x * 3\n"), "calc: f3 multiplies")
    commit(git, wt, "notes.txt", "one\ntwo\n", "notes")
    feat1 = git("rev-parse", "HEAD", cwd=wt).out
    git("branch", "same", "main", cwd=wt)
    p = git("push", "-q", cred, "feature", "same", cwd=wt)
    t.check(p.returncode == 0, "branches pushed", p.err)

    # --- who may call the API ---
    r = f.api("GET", "/repos/acme/app", headers={"User-Agent": None})
    t.check(r.status == 403 and "User-Agent" in r.text, "a request without User-Agent is refused (403)", r)
    r = f.api("GET", "/repos/acme/app", headers={"X-GitHub-Api-Version": "2020-01-01"})
    t.check(r.status == 400 and '"2020-01-01", is not a supported version' in r.msg(),
            "an unknown API version is refused (400)", r)
    r = f.api("GET", "/repos/acme/app")
    t.check(r.status == 200 and r.h("x-github-api-version-selected") == "2022-11-28"
            and r.json["default_branch"] == "main" and r.json["permissions"]["push"] is True,
            "GET the repository: default branch, push permission, the selected API version", r)
    r = f.api("GET", "/repos/acme/app", token=None)
    t.check(r.status == 404 and r.msg() == "Not Found" and "documentation_url" in r.json,
            "no token: a private repository is 404, as GitHub hides it", r)
    r = f.api("GET", "/repos/acme/app", token="tok-nobody")
    t.check(r.status == 401 and r.msg() == "Bad credentials", "an unknown token is 401 Bad credentials", r)
    r = f.api("GET", "/repos/acme/pub", token=None)
    t.check(r.status == 200 and r.json["permissions"]["push"] is False, "a public repository reads without a token", r)
    r = f.api("POST", "/repos/acme/pub/issues/1/comments", {"body": "x"}, token=None)
    t.check(r.status == 401 and r.msg() == "Requires authentication",
            "writing without a token is 401 Requires authentication", r)
    r = f.api("GET", "/repos/acme/nothing")
    t.check(r.status == 404, "an unknown repository is 404", r)
    r = f.api("GET", "/repos/acme/app/no-such-route")
    t.check(r.status == 404 and r.msg() == "Not Found", "an unknown route is 404", r)
    r = f.api("DELETE", "/repos/acme/app/pulls/1")
    t.check(r.status == 404, "a method a route does not take is 404, as GitHub answers", r)
    r = f.api("GET", "/user", scheme="token")
    t.check(r.status == 200 and r.json["login"] == "dev", "GET /user with `token T`", r)
    r = f.api("GET", "/user", token=base64.b64encode(f"dev:{DEV}".encode()).decode(), scheme="Basic")
    t.check(r.status == 200 and r.json["login"] == "dev", "GET /user with Basic, the token as the password", r)
    r = f.api("GET", "/user", token=None)
    t.check(r.status == 401, "GET /user without a token is 401", r)
    r = f.api("POST", "/repos/acme/app/pulls", {"title": "t", "head": "feature", "base": "main"}, token=READER)
    t.check(r.status == 403 and r.msg() == "Resource not accessible by personal access token"
            and r.h("x-accepted-github-permissions") == "pull_requests=write",
            "a read token cannot open a pull request (403, the permission it lacks named)", r)
    f.control("users", {"login": "scoped", "token": "tok-scoped-1", "repos": ["acme/pub"]})
    r = f.api("GET", "/repos/acme/app", token="tok-scoped-1")
    t.check(r.status == 404, "a token limited to other repositories sees 404", r)
    r = f.api("GET", "/repos/acme/app/branches/feature")
    t.check(r.status == 200 and r.json["commit"]["sha"] == feat1 and r.json["name"] == "feature",
            "GET a branch: its head is the bare repository's", r)
    r = f.api("GET", "/repos/acme/app/branches/nope")
    t.check(r.status == 404 and r.msg() == "Branch not found", "an unknown branch is 404 Branch not found", r)
    r = f.api("GET", "/repos/acme/app/commits/feature")
    t.check(r.status == 200 and r.json["sha"] == feat1 and r.json["commit"]["message"] == "notes",
            "GET a commit by branch name", r)

    # --- request bodies GitHub refuses ---
    pulls = "/repos/acme/app/pulls"
    r = f.api("POST", pulls, b"{not json")
    t.check(r.status == 400 and r.msg() == "Problems parsing JSON", "a body that is not JSON is 400", r)
    r = f.api("POST", pulls, ["feature"])
    t.check(r.status == 400 and r.msg() == "Body should be a JSON object", "a body that is no object is 400", r)
    r = f.api("POST", pulls, {"title": "t", "head": "feature", "base": "main", "labels": ["x"]})
    t.check(r.status == 422 and r.msg().startswith("Invalid request.") and '"labels" is not a permitted key.' in r.msg(),
            "an unknown field is 422 Invalid request", r)
    r = f.api("POST", pulls, {"title": 5, "head": "feature", "base": "main", "draft": "yes"})
    t.check(r.status == 422 and "For 'properties/title', 5 is not a string." in r.msg()
            and "For 'properties/draft', \"yes\" is not a boolean." in r.msg(), "wrongly typed fields are 422", r)
    r = f.api("POST", pulls, {"title": "t"})
    t.check(r.status == 422 and '"head", "base" weren\'t supplied.' in r.msg(), "missing head and base are 422", r)
    r = f.api("POST", pulls, {"title": "t", "head": "no-such-branch", "base": "main"})
    t.check(r.status == 422 and r.msg() == "Validation Failed"
            and r.json["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
            "a head branch that does not exist is 422 (field head invalid)", r)
    r = f.api("POST", pulls, {"title": "t", "head": "feature", "base": "no-such-base"})
    t.check(r.status == 422 and r.json["errors"] == [{"resource": "PullRequest", "field": "base", "code": "invalid"}],
            "a base branch that does not exist is 422 (field base invalid)", r)
    r = f.api("POST", pulls, {"title": "t", "head": "evil:feature", "base": "main"})
    t.check(r.status == 422 and r.json["errors"][0]["field"] == "head", "a head of another owner is refused", r)
    r = f.api("POST", pulls, {"title": "t", "head": "main", "base": "main"})
    t.check(r.status == 422 and r.json["errors"][0]["message"] == "No commits between main and main",
            "a head equal to its base is refused", r)
    r = f.api("POST", pulls, {"title": "t", "head": "same", "base": "main"})
    t.check(r.status == 422 and r.json["errors"][0] == {"resource": "PullRequest", "code": "custom",
                                                        "message": "No commits between main and same"},
            "a head with no commits beyond the base is refused", r)
    r = f.api("POST", pulls, {"head": "feature", "base": "main"})
    t.check(r.status == 422 and r.json["errors"][0]["code"] == "missing_field", "no title is refused", r)

    # --- open a pull request, find it, read it ---
    r = f.api("POST", pulls, {"title": "Make f3 multiply", "head": "acme:feature", "base": "main",
                              "body": "Spec and plan here."})
    ok = r.status == 201 and r.json["number"] == 1 and r.json["state"] == "open" \
        and r.h("location") == r.json["url"] and r.json["head"]["sha"] == feat1 \
        and r.json["base"]["sha"] == main1 and r.json["user"]["login"] == "dev" \
        and r.json["head"]["ref"] == "feature" and r.json["mergeable"] is None
    t.check(ok, "a pull request opens: 201, Location, head and base shas, mergeable null at first", r)
    pr = r.json
    r = f.api("POST", pulls, {"title": "again", "head": "feature", "base": "main"})
    t.check(r.status == 422 and r.json["errors"][0]["message"] == "A pull request already exists for acme:feature.",
            "a second open pull request for the same head and base is refused", r)
    r = f.api("GET", pulls + "?head=acme:feature&state=open")
    t.check(r.status == 200 and [p["number"] for p in r.json] == [1], "listed by head OWNER:BRANCH", r)
    r = f.api("GET", pulls + "?head=acme:other")
    t.check(r.status == 200 and r.json == [], "another head lists nothing", r)
    r = f.api("GET", pulls + "?head=other")
    t.check(r.status == 200 and len(r.json) == 1, "a head without OWNER: is ignored, as GitHub ignores it", r)
    r = f.api("GET", pulls + "?state=closed")
    t.check(r.status == 200 and r.json == [], "no closed pull requests yet", r)
    r = f.api("GET", pulls + "/1")
    t.check(r.status == 200 and r.json["mergeable"] is True and r.json["mergeable_state"] == "clean"
            and r.json["commits"] == 2 and r.json["changed_files"] == 2 and r.json["additions"] == 3,
            "GET it: mergeable once computed, commits and changed files from git", r)
    used = int(r.h("x-ratelimit-used"))
    etag = r.h("etag")
    r = f.api("GET", pulls + "/1", headers={"If-None-Match": etag})
    t.check(r.status == 304 and r.text == "" and etag.startswith('W/"'), "If-None-Match with its ETag: 304", r)
    t.check(int(r.h("x-ratelimit-used")) == used and r.h("x-ratelimit-limit") == "5000"
            and int(r.h("x-ratelimit-remaining")) == 5000 - used,
            "a 304 does not count against the rate limit", r)
    r = f.api("GET", pulls + "/1", headers={"If-None-Match": etag})
    t.check(r.status == 304, "and stays 304 while nothing changed", r)
    r = f.api("GET", pulls + "/9")
    t.check(r.status == 404, "an unknown pull request is 404", r)

    # --- conversation comments, paged ---
    icomments = "/repos/acme/app/issues/1/comments"
    r = f.api("POST", icomments, {"body": "Opened by the factory."})
    t.check(r.status == 201 and r.json["user"]["login"] == "dev" and r.h("location") == r.json["url"],
            "a comment on the pull request: 201", r)
    cid = r.json["id"]
    r = f.api("POST", icomments, {"body": "x"}, token=READER)
    t.check(r.status == 403, "a read token cannot comment", r)
    r = f.api("POST", icomments, {"body": 7})
    t.check(r.status == 422 and "is not a string" in r.msg(), "a comment body that is no string is refused", r)
    for i in range(3):
        f.control("issue_comment", {"repo": "acme/app", "number": 1, "user": "alice", "body": f"please {i}"})
    r = f.api("GET", icomments + "?per_page=2")
    link = r.h("link") or ""
    t.check(r.status == 200 and len(r.json) == 2 and 'rel="next"' in link and 'rel="last"' in link
            and "per_page=2" in link and "page=2" in link, "comments page with per_page and a Link header", r)
    nxt = [p.split(";")[0].strip("<> ") for p in link.split(",") if 'rel="next"' in p][0]
    r2 = f.api("GET", nxt)
    link2 = r2.h("link") or ""
    t.check(r2.status == 200 and len(r2.json) == 2 and 'rel="prev"' in link2 and 'rel="first"' in link2
            and 'rel="next"' not in link2 and r2.json[1]["user"]["login"] == "alice"
            and r2.json[1]["body"] == "please 2", "the next link gives the last page", r2)
    r = f.api("GET", icomments + "?since=2999-01-01T00:00:00Z")
    t.check(r.status == 200 and r.json == [], "since filters comments", r)
    r = f.api("PATCH", f"/repos/acme/app/issues/comments/{cid}", {"body": "Edited."})
    t.check(r.status == 200 and r.json["body"] == "Edited.", "a comment is edited", r)

    # --- review comments and reviews ---
    rc = f.control("review_comment", {"repo": "acme/app", "number": 1, "user": "alice", "path": "calc.py",
                                      "line": 11, "body": "Why multiply?"})
    r = f.api("GET", "/repos/acme/app/pulls/1/comments")
    c = r.json[0] if r.status == 200 and r.json else {}
    t.check(r.status == 200 and len(r.json) == 1 and c.get("path") == "calc.py" and c.get("line") == 11
            and c.get("side") == "RIGHT" and c.get("commit_id") == feat1 and c.get("user", {}).get("login") == "alice"
            and c.get("diff_hunk", "").startswith("@@") and c["diff_hunk"].endswith("+    return x * 3")
            and isinstance(c.get("position"), int) and c.get("pull_request_review_id"),
            "a reviewer's line comment is listed with path, line, side, commit and diff hunk", r)
    bad = f.http("POST", "/_control/review_comment", {"repo": "acme/app", "number": 1, "user": "alice",
                                                      "path": "calc.py", "line": 30, "body": "x"})
    t.check(bad.status == 400 and "not part of the diff" in bad.text, "a line outside the diff cannot be commented", bad)
    r = f.api("POST", f"/repos/acme/app/pulls/1/comments/{rc['id']}/replies", {"body": "It must."})
    t.check(r.status == 201 and r.json["in_reply_to_id"] == rc["id"] and r.json["path"] == "calc.py",
            "a reply to a review comment", r)
    f.control("review", {"repo": "acme/app", "number": 1, "user": "alice", "state": "CHANGES_REQUESTED",
                         "body": "Add a test."})
    r = f.api("POST", "/repos/acme/app/pulls/1/reviews", {"event": "APPROVE"})
    t.check(r.status == 422 and r.json["errors"] == ["Can not approve your own pull request"],
            "the author cannot approve their own pull request", r)
    r = f.api("POST", "/repos/acme/app/pulls/1/reviews", {"event": "REQUEST_CHANGES"}, token=REV)
    t.check(r.status == 422, "requesting changes needs a body", r)
    r = f.api("POST", "/repos/acme/app/pulls/1/reviews", {"event": "LGTM"}, token=REV)
    t.check(r.status == 422 and "is not a member of" in r.msg(), "an unknown review event is refused", r)
    r = f.api("POST", "/repos/acme/app/pulls/1/reviews",
              {"event": "COMMENT", "body": "see", "comments": [{"path": "notes.txt", "line": 2, "body": "two?"}]},
              token=REV)
    t.check(r.status == 200 and r.json["state"] == "COMMENTED", "a review with a line comment", r)
    r = f.api("POST", "/repos/acme/app/pulls/1/reviews",
              {"event": "COMMENT", "body": "x", "comments": [{"path": "notes.txt", "line": 9, "body": "?"}]},
              token=REV)
    t.check(r.status == 422, "a review comment outside the diff is refused", r)
    r = f.api("POST", "/repos/acme/app/pulls/1/reviews", {"body": "draft"}, token=REV)
    pending = r.json.get("id") if r.status == 200 else None
    t.check(r.status == 200 and r.json["state"] == "PENDING", "a review without event is pending", r)
    r = f.api("POST", "/repos/acme/app/pulls/1/reviews", {"body": "again"}, token=REV)
    t.check(r.status == 422 and r.json["errors"] == ["User can only have one pending review per pull request"],
            "one pending review per user", r)
    r = f.api("GET", "/repos/acme/app/pulls/1/reviews")
    t.check(r.status == 200 and [x["state"] for x in r.json].count("PENDING") == 0
            and "CHANGES_REQUESTED" in [x["state"] for x in r.json],
            "reviews list; another user's pending review is not shown", r)
    r = f.api("POST", f"/repos/acme/app/pulls/1/reviews/{pending}/events", {"event": "APPROVE"}, token=REV)
    t.check(r.status == 200 and r.json["state"] == "APPROVED" and r.json.get("submitted_at"),
            "the pending review is submitted as an approval", r)
    r = f.api("GET", "/repos/acme/app/pulls/1/comments")
    t.check(r.status == 200 and len(r.json) == 3, "the review's line comment joined the review comments", r)

    # --- CI: statuses and check runs ---
    r = f.api("POST", "/repos/acme/app/statuses/" + "0" * 40, {"state": "success", "context": "ci/test"})
    t.check(r.status == 422 and r.msg() == "No commit found for SHA: " + "0" * 40, "a status on no commit is 422", r)
    r = f.api("POST", f"/repos/acme/app/statuses/{feat1}", {"state": "green"})
    t.check(r.status == 422 and "is not a member of" in r.msg(), "an unknown status state is 422", r)
    r = f.api("POST", f"/repos/acme/app/statuses/{feat1}", {"state": "pending", "context": "ci/test",
                                                            "description": "running"})
    t.check(r.status == 201 and r.json["state"] == "pending" and r.json["creator"]["login"] == "dev",
            "a status is created", r)
    r = f.api("POST", f"/repos/acme/app/statuses/{feat1}", {"state": "success"}, token=READER)
    t.check(r.status == 403 and r.h("x-accepted-github-permissions") == "statuses=write",
            "a read token cannot set a status", r)
    r = f.api("GET", f"/repos/acme/app/commits/{feat1}/status")
    t.check(r.status == 200 and r.json["state"] == "pending" and r.json["total_count"] == 1,
            "combined status: pending", r)
    f.control("status", {"repo": "acme/app", "sha": feat1, "state": "success", "context": "ci/test"})
    r = f.api("GET", "/repos/acme/app/commits/feature/status")
    t.check(r.status == 200 and r.json["state"] == "success" and r.json["sha"] == feat1
            and r.json["statuses"][0]["state"] == "success", "combined status by branch name: success", r)
    f.control("status", {"repo": "acme/app", "sha": feat1, "state": "failure", "context": "lint"})
    r = f.api("GET", f"/repos/acme/app/commits/{feat1}/status")
    t.check(r.json["state"] == "failure" and r.json["total_count"] == 2, "a failing context fails the combined", r)
    r = f.api("GET", f"/repos/acme/app/commits/{feat1}/statuses")
    t.check(r.status == 200 and [s["state"] for s in r.json] == ["failure", "success", "pending"],
            "statuses list newest first", r)
    r = f.api("GET", "/repos/acme/app/commits/nope/status")
    t.check(r.status == 422, "the combined status of no ref is 422", r)
    r = f.api("GET", "/repos/acme/app/pulls/1")
    t.check(r.json["mergeable_state"] == "unstable", "a failing check leaves the pull request unstable", r)
    run1 = f.control("check_run", {"repo": "acme/app", "ref": "feature", "name": "build", "status": "in_progress"})
    f.control("check_run", {"repo": "acme/app", "id": run1["id"], "status": "completed", "conclusion": "success",
                            "title": "Build", "summary": "ok"})
    f.control("check_run", {"repo": "acme/app", "sha": feat1, "name": "build", "status": "completed",
                            "conclusion": "failure", "summary": "rerun failed"})
    r = f.api("GET", f"/repos/acme/app/commits/{feat1}/check-runs")
    t.check(r.status == 200 and r.json["total_count"] == 1 and r.json["check_runs"][0]["conclusion"] == "failure"
            and r.json["check_runs"][0]["pull_requests"][0]["number"] == 1,
            "check runs: the latest per name, with its pull request", r)
    r = f.api("GET", f"/repos/acme/app/commits/{feat1}/check-runs?filter=all")
    t.check(r.status == 200 and r.json["total_count"] == 2, "check runs: all of them", r)
    r = f.api("GET", f"/repos/acme/app/check-runs/{run1['id']}")
    t.check(r.status == 200 and r.json["conclusion"] == "success" and r.json["output"]["title"] == "Build",
            "a check run by id", r)
    r = f.api("POST", "/repos/acme/app/check-runs", {"name": "x", "head_sha": feat1})
    t.check(r.status == 403 and "GitHub App" in r.msg(), "a personal token cannot create check runs", r)

    # --- a push updates the pull request; required checks block the merge ---
    f.control("protect", {"repo": "acme/app", "branch": "main", "contexts": ["ci/test"]})
    feat2 = commit(git, wt, "notes.txt", "one\ntwo\nthree\n", "notes: three")
    p = git("push", "-q", cred, "feature", cwd=wt)
    r = f.api("GET", pulls + "/1")
    t.check(p.returncode == 0 and r.json["head"]["sha"] == feat2 and r.json["mergeable"] is None
            and r.json["commits"] == 3, "after a push the head follows the branch; mergeable is recomputed", r)
    r = f.api("GET", pulls + "/1")
    t.check(r.json["mergeable"] is True and r.json["mergeable_state"] == "blocked",
            "a required check missing on the new head blocks it", r)
    r = f.api("PUT", pulls + "/1/merge", {"merge_method": "merge"})
    t.check(r.status == 405 and r.msg() == 'Required status check "ci/test" is expected.',
            "the merge is refused while the required check is missing", r)
    f.control("status", {"repo": "acme/app", "sha": feat2, "state": "success", "context": "ci/test"})
    r = f.api("PUT", pulls + "/1/merge", {"sha": feat1})
    t.check(r.status == 409 and r.msg() == "Head branch was modified. Review and try the merge again.",
            "a merge for an old head sha is 409", r)
    r = f.api("PUT", pulls + "/1/merge", {"merge_method": "octopus"})
    t.check(r.status == 422, "an unknown merge method is refused", r)
    r = f.api("PUT", pulls + "/1/merge", {"sha": feat2}, token=READER)
    t.check(r.status == 403, "a read token cannot merge", r)
    r = f.api("GET", pulls + "/1/merge")
    t.check(r.status == 404, "not merged yet: 404", r)
    r = f.api("PUT", pulls + "/1/merge", {"sha": feat2, "merge_method": "merge"})
    merged = r.json.get("sha") if r.status == 200 else ""
    t.check(r.status == 200 and r.json["merged"] is True and r.json["message"] == "Pull Request successfully merged",
            "the merge succeeds", r)
    parents = git("--git-dir", os.path.join(work, "root", "acme", "app.git"), "rev-list", "--parents", "-n1",
                  "main").out.split()
    t.check(parents == [merged, main1, feat2], "main is a real merge commit of the old main and the head", parents)
    r = f.api("GET", pulls + "/1")
    t.check(r.json["state"] == "closed" and r.json["merged"] is True and r.json["merged_by"]["login"] == "dev"
            and r.json["merge_commit_sha"] == merged and r.json["commits"] == 3, "the pull request reads merged", r)
    r = f.api("GET", pulls + "/1/merge")
    t.check(r.status == 204, "merged: 204", r)
    r = f.api("PUT", pulls + "/1/merge", {})
    t.check(r.status == 405 and r.msg() == "Pull Request is not mergeable", "a merged pull request cannot merge again", r)
    r = f.api("PATCH", pulls + "/1", {"state": "open"})
    t.check(r.status == 422, "a merged pull request cannot be reopened", r)
    r = f.api("GET", pulls + "?state=closed")
    t.check([p["number"] for p in r.json] == [1], "it lists as closed", r)
    f.control("protect", {"repo": "acme/app", "branch": "main", "contexts": []})

    # --- squash and rebase merges, conflicts, update and close ---
    git("fetch", "-q", cred, "main", cwd=wt)
    git("checkout", "-qB", "sq", "FETCH_HEAD", cwd=wt)
    commit(git, wt, "a.txt", "a\n", "a")
    commit(git, wt, "b.txt", "b\n", "b")
    git("checkout", "-qB", "rb", "FETCH_HEAD", cwd=wt)
    commit(git, wt, "c.txt", "c\n", "c")
    rb = commit(git, wt, "d.txt", "d\n", "d")
    git("checkout", "-qB", "clash", "FETCH_HEAD", cwd=wt)
    commit(git, wt, "README.md", "clash\n", "readme: clash")
    git("checkout", "-qB", "release", "FETCH_HEAD", cwd=wt)
    commit(git, wt, "README.md", "release\n", "readme: release")
    git("push", "-q", cred, "sq", "rb", "clash", "release", cwd=wt)
    n_sq = f.api("POST", pulls, {"title": "Squash me", "head": "sq", "base": "main"}).json["number"]
    n_rb = f.api("POST", pulls, {"title": "Rebase me", "head": "rb", "base": "main"}).json["number"]
    n_cl = f.api("POST", pulls, {"title": "Clash", "head": "clash", "base": "release"}).json["number"]
    before = git("--git-dir", os.path.join(work, "root", "acme", "app.git"), "rev-parse", "main").out
    r = f.api("PUT", f"{pulls}/{n_sq}/merge", {"merge_method": "squash"})
    log = git("--git-dir", os.path.join(work, "root", "acme", "app.git"), "log", "--format=%s|%P", "-n1", "main").out
    t.check(r.status == 200 and log == f"Squash me (#{n_sq})|{before}", "a squash merge makes one commit", (r, log))
    r = f.api("PUT", f"{pulls}/{n_rb}/merge", {"merge_method": "rebase"})
    subjects = git("--git-dir", os.path.join(work, "root", "acme", "app.git"), "log", "--format=%s %cn", "-n3",
                   "main").out.splitlines()
    t.check(r.status == 200 and subjects == ["d GitHub", "c GitHub", f"Squash me (#{n_sq}) GitHub"],
            "a rebase merge replays the commits onto main", (r, subjects))
    r = f.api("GET", f"{pulls}/{n_rb}")
    t.check(r.json["merged"] and r.json["head"]["sha"] == rb and r.json["commits"] == 2,
            "the rebased pull request reads merged with its two commits", r)
    f.api("GET", f"{pulls}/{n_cl}")
    r = f.api("GET", f"{pulls}/{n_cl}")
    t.check(r.json["mergeable"] is False and r.json["mergeable_state"] == "dirty", "a conflicting one is dirty", r)
    r = f.api("PUT", f"{pulls}/{n_cl}/merge", {})
    t.check(r.status == 405 and r.msg() == "Pull Request is not mergeable", "and cannot merge", r)
    r = f.api("PATCH", f"{pulls}/{n_cl}", {"title": "Clash (retitled)", "draft": True})
    t.check(r.status == 422 and '"draft" is not a permitted key.' in r.msg(), "PATCH refuses unknown fields", r)
    r = f.api("PATCH", f"{pulls}/{n_cl}", {"base": "nope"})
    t.check(r.status == 422 and r.json["errors"][0]["field"] == "base", "PATCH refuses a base that does not exist", r)
    r = f.api("PATCH", f"{pulls}/{n_cl}", {"title": "Clash (retitled)", "body": None})
    t.check(r.status == 200 and r.json["title"] == "Clash (retitled)" and r.json["body"] is None,
            "PATCH updates the title and body", r)
    r = f.api("PATCH", f"{pulls}/{n_cl}", {"state": "closed"})
    t.check(r.status == 200 and r.json["state"] == "closed" and r.json["merged"] is False, "PATCH closes", r)
    r = f.api("PATCH", f"{pulls}/{n_cl}", {"state": "open"})
    t.check(r.status == 200 and r.json["state"] == "open", "PATCH reopens", r)
    r = f.control("close", {"repo": "acme/app", "number": n_cl, "user": "alice"})
    t.check(r["state"] == "closed", "closed from the web UI", r)
    r = f.api("POST", pulls, {"title": "Clash again", "head": "clash", "base": "release"})
    t.check(r.status == 201, "a closed one does not stop a new pull request for the same head", r)

    # pushes outside the API: a fast-forward merges, a deleted head closes
    git("fetch", "-q", cred, "main", cwd=wt)
    git("checkout", "-qB", "ff", "FETCH_HEAD", cwd=wt)
    ff = commit(git, wt, "e.txt", "e\n", "e")
    git("checkout", "-qB", "gone", "FETCH_HEAD", cwd=wt)
    commit(git, wt, "g.txt", "g\n", "g")
    git("push", "-q", cred, "ff", "gone", cwd=wt)
    n_ff = f.api("POST", pulls, {"title": "FF", "head": "ff", "base": "main"}).json["number"]
    n_gone = f.api("POST", pulls, {"title": "Gone", "head": "gone", "base": "main"}).json["number"]
    git("push", "-q", cred, "ff:main", ":gone", cwd=wt)
    r = f.api("GET", f"{pulls}/{n_ff}")
    t.check(r.json["merged"] is True and r.json["merge_commit_sha"] == ff,
            "a base fast-forwarded to the head by a push makes the pull request merged", r)
    r = f.api("GET", f"{pulls}/{n_gone}")
    t.check(r.json["state"] == "closed" and r.json["merged"] is False, "a deleted head branch closes it", r)

    # --- failures on demand ---
    f.control("fail", {"count": 2, "status": 502})
    a = f.api("GET", "/repos/acme/app")
    b = f.api("GET", "/repos/acme/app")
    c = f.api("GET", "/repos/acme/app")
    t.check(a.status == 502 and b.status == 502 and a.msg() == "Server Error" and c.status == 200,
            "the next two requests answer 502, the third 200", (a, b, c))
    f.control("fail", {"count": 1, "status": 503, "method": "POST", "path": "/pulls"})
    a = f.api("GET", pulls)
    b = f.api("POST", pulls, {"title": "x", "head": "nope", "base": "main"})
    t.check(a.status == 200 and b.status == 503, "a failure can target a method and path", (a, b))
    f.control("fail", {"kind": "rate_limit"})
    a = f.api("GET", pulls)
    t.check(a.status == 403 and a.h("x-ratelimit-remaining") == "0" and int(a.h("x-ratelimit-reset")) > 0
            and "rate limit exceeded" in a.msg(), "an injected primary rate limit: 403, remaining 0, reset", a)
    f.control("fail", {"kind": "secondary_rate_limit", "status": 429, "retry_after": 7})
    a = f.api("GET", pulls)
    t.check(a.status == 429 and a.h("retry-after") == "7" and "secondary rate limit" in a.msg(),
            "an injected secondary rate limit: 429 with retry-after", a)
    f.control("quota", {"login": "reader", "remaining": 1, "reset_in": 120})
    a = f.api("GET", pulls, token=READER)
    b = f.api("GET", pulls, token=READER)
    t.check(a.status == 200 and a.h("x-ratelimit-remaining") == "0" and b.status == 403
            and b.msg().startswith("API rate limit exceeded for user ID") and b.h("x-ratelimit-remaining") == "0",
            "a user's exhausted quota answers 403 until its reset", (a, b))

    # --- the request log ---
    entries = f.log()["requests"]
    opened = [e for e in entries if e["kind"] == "api" and e["method"] == "POST" and e["status"] == 201
              and e["path"] == "/api/v3/repos/acme/app/pulls"]
    t.check(opened and opened[0]["body_keys"] == ["base", "body", "head", "title"] and opened[0]["user"] == "dev",
            "the log has each request: method, path, status, user and body keys", opened[:1])
    t.check(any(e["kind"] == "git" and e["status"] == 403 and e["user"] == "reader" for e in entries),
            "the log has the git requests too", [e for e in entries if e["kind"] == "git"][:5])
    later = f.log(since=len(entries) + 1)
    t.check(later["requests"] == [] and later["next"] == len(entries) + 1, "the log reads from a sequence number",
            later)
    text = json.dumps(entries)
    t.check(all(tok not in text for tok in (DEV, READER, REV, "tok-scoped-1")), "no token is in the log")
    bad = f.http("POST", "/_control/nothing", {})
    bad2 = f.http("POST", "/_control/status", {"repo": "acme/app", "sha": "main", "state": "green"})
    t.check(bad.status == 400 and bad2.status == 400 and "state" in bad2.json["error"],
            "the control API says what is wrong with a request", (bad, bad2))


if __name__ == "__main__":
    sys.exit(main())
