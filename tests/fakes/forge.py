#!/usr/bin/env python3
"""forge — a fake forge on loopback that speaks GitHub's REST API and serves
git over smart HTTP, for the tests of code that opens and follows pull
requests (no GitHub is reachable from the test machines).

    forge.py --root DIR [--user LOGIN:TOKEN[:read|write]]... [--public OWNER/NAME]...
             [--rate-limit N] [--log FILE]

Prints the port it listens on (127.0.0.1, chosen by the system) as its first
line of stdout, then serves until killed. State (pull requests, comments,
reviews, statuses, check runs) is kept in memory; the repositories are real
bare repositories on disk, DIR/OWNER/NAME.git, read with git itself (a
bare repository put there by the test is served at once). --log FILE
appends each request, as the control API's log has it, as a JSON line.

Base URLs (HOST = 127.0.0.1:PORT):
    API  http://HOST/api/v3      (GitHub Enterprise Server's layout: a client
                                  configured with this base URL calls
                                  BASE/repos/OWNER/NAME/pulls, ...)
    git  http://HOST/OWNER/NAME.git   (".git" may be left out)

Users and tokens. Each --user is a fine-grained personal access token of a
user: "read" lets it read, "write" (the default) also lets it write. The API
takes `Authorization: Bearer TOKEN`, `token TOKEN` or Basic with the token as
the password; git takes Basic with the token as the password (any user name,
e.g. x-access-token) or as the user name with no password. Repositories are
private unless --public (or the control API) says otherwise.

    no credentials, private repository       404 Not Found (GitHub does not
                                             confirm that it exists); git: 401
                                             with a Basic challenge
    no credentials, write on a public one    401 "Requires authentication"
    a token nobody has                       401 "Bad credentials"
    a read token writing                     403 "Resource not accessible by
                                             personal access token", with
                                             X-Accepted-GitHub-Permissions;
                                             git push: 403
    a token limited to other repositories    404 (control API "repos")
    no User-Agent header                     403 (GitHub refuses such requests;
                                             libcurl sends none by default)
    X-GitHub-Api-Version other than          400
      2022-11-28 or 2026-03-10

Every API answer carries X-GitHub-Api-Version-Selected, X-GitHub-Media-Type,
X-GitHub-Request-Id and the rate-limit headers x-ratelimit-limit, -remaining,
-used, -reset and -resource (core; 5000 an hour per user unless
--rate-limit, 60 for anonymous callers). An exhausted quota answers 403 "API
rate limit exceeded for user ID N." with x-ratelimit-remaining 0. GETs that
answer 200 carry a weak ETag; If-None-Match with it answers 304 with no body,
which does not count against the quota (polling, as GitHub recommends).
Lists take per_page (default 30, at most 100) and page, and send a Link
header (rel="next", "last", "first", "prev") when there is more than a page.
Errors are GitHub's JSON bodies: {"message", "documentation_url", "status"},
plus "errors" for 422 "Validation Failed".

Endpoints (under /api/v3; OWNER/NAME abbreviated R):
    GET   /user                                  the token's user
    GET   /rate_limit                            (does not count)
    GET   /repos/R                               repository (default_branch from
                                                 the bare repository's HEAD)
    GET   /repos/R/branches[/BRANCH]             404 "Branch not found"
    GET   /repos/R/commits/REF                   one commit (sha, branch or tag)
    GET   /repos/R/pulls?state=&head=OWNER:BRANCH&base=&sort=&direction=
              (head without "OWNER:" is ignored, as GitHub ignores it; an unknown
              state lists the open ones, as GitHub does)
    POST  /repos/R/pulls                         {title, head, base, body, draft,
                                                 maintainer_can_modify, head_repo, issue}
    GET   /repos/R/pulls/N                       mergeable is null while "GitHub"
                                                 computes it: the first GET after
                                                 the head or base moved answers
                                                 null ("unknown"), the next one
                                                 true/false; mergeable_state is
                                                 clean, dirty, blocked, unstable
                                                 or draft
    PATCH /repos/R/pulls/N                       {title, body, state, base,
                                                 maintainer_can_modify}
    GET   /repos/R/pulls/N/commits
    GET   /repos/R/pulls/N/merge                 204 merged, 404 not
    PUT   /repos/R/pulls/N/merge                 {commit_title, commit_message, sha,
                                                 merge_method: merge|squash|rebase};
                                                 405 not mergeable (closed,
                                                 conflicts, draft, required
                                                 status checks not passed), 409
                                                 sha is not the head
    GET   /repos/R/pulls/N/comments              review comments (with diff_hunk,
                                                 path, line, side, commit_id)
    POST  /repos/R/pulls/N/comments/ID/replies   {body}
    GET   /repos/R/pulls/N/reviews[/ID]
    POST  /repos/R/pulls/N/reviews               {commit_id, body, event, comments};
                                                 without event: a PENDING review
    POST  /repos/R/pulls/N/reviews/ID/events     {body, event}: submits a pending one
    GET   /repos/R/issues/N/comments?since=      conversation comments of PR N
    POST  /repos/R/issues/N/comments             {body}
    GET   /repos/R/issues/comments/ID, PATCH it  {body}
    POST  /repos/R/statuses/SHA                  {state, target_url, description,
                                                 context}; 422 "No commit found for
                                                 SHA: ..." when it is no commit
    GET   /repos/R/commits/REF/statuses, /repos/R/statuses/REF
    GET   /repos/R/commits/REF/status            combined: failure if any latest
                                                 status is error or failure, pending
                                                 if none or any pending, else success
    GET   /repos/R/commits/REF/check-runs?check_name=&status=&filter=latest|all
    GET   /repos/R/check-runs/ID
    POST  /repos/R/check-runs                    403: only a GitHub App may (CI
                                                 reports through the control API)
Anything else answers 404 {"message": "Not Found"}, as GitHub does for an
unknown route or a method a route does not take.

Refusals of request bodies (GitHub validates them against a schema): a body
that is not JSON, 400 "Problems parsing JSON"; not an object, 400 "Body
should be a JSON object"; an unknown key, a wrong type, a value outside an
enum or a required key missing, 422 "Invalid request.\\n\\n" followed by one
line per problem ('"x" is not a permitted key.', "For 'properties/title', 5
is not a string.", '"head" wasn't supplied.'). Opening a pull request
refuses, with 422 "Validation Failed": a base or head branch that does not
exist in the bare repository (errors [{"resource": "PullRequest", "field":
"base"|"head", "code": "invalid"}]), no title, a head that equals its base or
has no commits beyond it ("No commits between BASE and HEAD"), and a second
open pull request for the same head and base ("A pull request already
exists for OWNER:BRANCH."). Reviews refuse approving or requesting changes on
one's own pull request, a REQUEST_CHANGES or COMMENT without a body, a second
pending review of the same user, and comments on lines that are not part of
the diff.

Pushes are seen when the API is next asked: an open pull request's head sha
follows its branch (updated_at moves); a pull request whose head the base
branch came to contain (a fast-forward pushed by someone) becomes merged; one
whose head branch was deleted becomes closed. Merging writes real commits to
the bare repository (a merge commit, a squashed commit or the rebased
commits) and moves the base branch.

Control API (for tests only; no authentication; JSON in and out; an error is
400 {"error": "..."}). "user" is any login (a reviewer needs no token); "repo"
is "OWNER/NAME":
    POST /_control/users           {login, token, right: read|write, repos: [R...]}
                                   adds or replaces a token (repos limits it)
    POST /_control/repos           {owner, name, private: true, default_branch:
                                   "main"} creates the bare repository if
                                   missing and sets its visibility
    POST /_control/issue_comment   {repo, number, user, body}
    POST /_control/review_comment  {repo, number, user, body, path, line,
                                   side: RIGHT|LEFT, in_reply_to}: a review
                                   comment on the current head (a COMMENTED
                                   review holds it), as a reviewer in the web UI
    POST /_control/review          {repo, number, user, state: APPROVED|
                                   CHANGES_REQUESTED|COMMENTED, body}
    POST /_control/status          {repo, sha or ref, state, context,
                                   description, target_url, user}: as CI would
    POST /_control/check_run       {repo, sha or ref, name, status: queued|
                                   in_progress|completed, conclusion, title,
                                   summary, text, details_url, app, id}: a new
                                   check run, or with id an update of one
    POST /_control/merge           {repo, number, user, merge_method,
                                   commit_title, commit_message}: the merge
                                   button (same rules as the API)
    POST /_control/close           {repo, number, user}: the close button
    POST /_control/protect         {repo, branch, contexts: [...]}: required
                                   status checks of a base branch
    POST /_control/fail            {count, status: 502, kind: error|rate_limit|
                                   secondary_rate_limit, method, path}: the next
                                   count API requests (of that method, whose
                                   path contains path) answer that failure: a
                                   5xx with {"message": "Server Error"}, a 403
                                   primary rate limit (x-ratelimit-remaining 0,
                                   x-ratelimit-reset), or a secondary one (403
                                   by default, or status 429, with retry-after)
    POST /_control/quota           {login, limit, remaining, reset_in}: sets a
                                   user's primary rate-limit window
    GET  /_control/log?since=N     {"next": M, "requests": [{seq, kind: api|git,
                                   method, path, status, user, body_keys}]}:
                                   every API and git request from seq N on
                                   (tokens are never recorded)

Messages known to be approximations of GitHub's (the status and the shape
are GitHub's): the review body refusal, the reopening of a merged pull
request, the required-status-check and draft merge refusals, the wording of
an enum refusal and of several keys not supplied at once. Not there: forks
(a head is a branch of the same repository), issues that are not pull
requests, labels, assignees, requested reviewers, webhooks, GraphQL, the
diff and patch media types, creating review comments other than by reply or
review, branch protection beyond required status checks.
"""
import argparse
import base64
import calendar
import hashlib
import http.server
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from git_http import announce_port, http_backend, read_body  # noqa: E402

API = "/api/v3"
VERSIONS = ("2022-11-28", "2026-03-10")
DEFAULT_VERSION = "2022-11-28"
DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 5000
ANON_RATE_LIMIT = 60
SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
# branch and tag names taken from requests: no option, no revision syntax
REF_NAME = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/+-]+$")


def now_iso(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t if t is not None else time.time()))


def parse_iso(s):
    try:
        return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))
    except (ValueError, TypeError):
        return None


class ApiError(Exception):
    """An answer other than success: status, JSON body, extra headers."""

    def __init__(self, status, body, headers=()):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = list(headers)


def fail(status, message, doc=DOCS, headers=(), **extra):
    body = {"message": message}
    body.update(extra)
    body["documentation_url"] = doc
    body["status"] = str(status)
    raise ApiError(status, body, headers)


def validation_failed(doc, *errors):
    fail(422, "Validation Failed", doc, errors=list(errors))


def unprocessable(doc, *messages):
    fail(422, "Unprocessable Entity", doc, errors=list(messages))


class ControlError(Exception):
    pass


# --- request body schemas --------------------------------------------------

def ruby(v):
    """A value as GitHub's schema messages print it."""
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    return json.dumps(v)


TYPE_NAMES = {"string": "a string", "boolean": "a boolean", "integer": "an integer",
              "array": "an array", "object": "an object", "null": "null"}


def type_ok(v, t):
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    if t == "null":
        return v is None
    return False


def check_body(body, schema, required, doc):
    """Validates a parsed JSON body against {key: (types, enum or None)}; raises
    422 "Invalid request." naming every problem."""
    if not isinstance(body, dict):
        fail(400, "Body should be a JSON object", doc)
    problems = []
    for k in body:
        if k not in schema:
            problems.append(f'"{k}" is not a permitted key.')
    missing = [k for k in required if k not in body]
    if len(missing) == 1:
        problems.append(f'"{missing[0]}" wasn\'t supplied.')
    elif missing:
        problems.append(", ".join(f'"{k}"' for k in missing) + " weren't supplied.")
    for k, (types, enum) in schema.items():
        if k not in body:
            continue
        v = body[k]
        if not any(type_ok(v, t) for t in types):
            want = " or ".join(TYPE_NAMES[t] for t in types)
            problems.append(f"For 'properties/{k}', {ruby(v)} is not {want}.")
        elif enum is not None and v is not None and v not in enum:
            members = ", ".join(json.dumps(e) for e in enum)
            problems.append(f"For 'properties/{k}', {ruby(v)} is not a member of [{members}].")
    if problems:
        fail(422, "Invalid request.\n\n" + "\n".join(problems), doc)


S = ("string",)
SN = ("string", "null")
B = ("boolean",)
I = ("integer",)

DOC_PULLS = "https://docs.github.com/rest/pulls/pulls"
DOC_REVIEWS = "https://docs.github.com/rest/pulls/reviews"
DOC_RCOMMENTS = "https://docs.github.com/rest/pulls/comments"
DOC_ICOMMENTS = "https://docs.github.com/rest/issues/comments"
DOC_STATUSES = "https://docs.github.com/rest/commits/statuses"
DOC_CHECKS = "https://docs.github.com/rest/checks/runs"
DOC_REPOS = "https://docs.github.com/rest/repos/repos"
DOC_BRANCHES = "https://docs.github.com/rest/branches/branches"
DOC_COMMITS = "https://docs.github.com/rest/commits/commits"


# --- git -------------------------------------------------------------------

class Git:
    """git commands on one bare repository."""

    def __init__(self, path):
        self.path = path

    def run(self, *args, env=None):
        e = dict(os.environ, GIT_CONFIG_NOSYSTEM="1")
        if env:
            e.update(env)
        return subprocess.run(["git", "--git-dir", self.path] + list(args), capture_output=True, env=e)

    def out(self, *args, **kw):
        p = self.run(*args, **kw)
        return p.stdout.decode("utf-8", "replace").strip() if p.returncode == 0 else None

    def branch_sha(self, name):
        if not REF_NAME.match(name or ""):
            return None
        return self.out("rev-parse", "--verify", "--quiet", "refs/heads/" + name + "^{commit}")

    def resolve(self, ref):
        """A commit sha for a sha, branch or tag name; None if none."""
        if not REF_NAME.match(ref or ""):
            return None
        for cand in ("refs/heads/" + ref, "refs/tags/" + ref):
            sha = self.out("rev-parse", "--verify", "--quiet", cand + "^{commit}")
            if sha:
                return sha
        if SHA_RE.match(ref):
            return self.out("rev-parse", "--verify", "--quiet", ref + "^{commit}")
        return None

    def commit_sha(self, sha):
        """The full sha of a (possibly abbreviated) commit sha; None if none."""
        if not SHA_RE.match(sha or ""):
            return None
        return self.out("rev-parse", "--verify", "--quiet", sha + "^{commit}")

    def default_branch(self):
        return self.out("symbolic-ref", "--short", "HEAD") or "main"

    def branches(self):
        out = self.out("for-each-ref", "--sort=refname", "--format=%(refname:short) %(objectname)",
                       "refs/heads") or ""
        return [tuple(line.split(" ", 1)) for line in out.splitlines() if line]

    def is_ancestor(self, a, b):
        return self.run("merge-base", "--is-ancestor", a, b).returncode == 0

    def commits_between(self, base, head):
        out = self.out("rev-list", "--reverse", f"{base}..{head}") or ""
        return out.split()

    def has_merges(self, base, head):
        return bool(self.out("rev-list", "--merges", f"{base}..{head}"))

    def merge_tree(self, base, head):
        """(tree, clean): the merged tree and whether it merged without conflict."""
        p = self.run("merge-tree", "--write-tree", "--no-messages", base, head)
        first = p.stdout.decode().split("\n", 1)[0].strip()
        return first, p.returncode == 0

    def commit(self, sha):
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
        out = self.run("show", "-s", "--format=" + fmt, sha).stdout.decode("utf-8", "replace")
        f = out.split("\x00")
        if len(f) < 10:
            return None
        return {"sha": f[0], "tree": f[1], "parents": f[2].split(), "author": (f[3], f[4], f[5]),
                "committer": (f[6], f[7], f[8]), "message": f[9].rstrip("\n")}

    def numstat(self, base, head):
        out = self.out("diff", "--numstat", f"{base}...{head}") or ""
        adds = dels = files = 0
        for line in out.splitlines():
            a, d, _ = line.split("\t", 2)
            files += 1
            adds += int(a) if a.isdigit() else 0
            dels += int(d) if d.isdigit() else 0
        return adds, dels, files

    def file_diff(self, base, head, path):
        return self.out("diff", f"{base}...{head}", "--", path) or ""


def diff_lines(diff):
    """The lines of one file's unified diff from its first hunk header on:
    [(position, old line number or None, new line number or None, the
    diff_hunk GitHub shows up to that line)]. Positions count from 1 below the
    first "@@" and go on through later hunk headers, as GitHub's do."""
    lines = diff.splitlines()
    out = []
    pos, hunk_start, old, new = 0, None, 0, 0
    for i, text in enumerate(lines):
        if text.startswith("@@"):
            m = re.match(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@", text)
            if not m:
                continue
            old, new = int(m.group(1)), int(m.group(2))
            if hunk_start is not None:
                pos += 1
            hunk_start = i
            continue
        if hunk_start is None:
            continue
        pos += 1
        if text.startswith("+"):
            o, n = None, new
            new += 1
        elif text.startswith("-"):
            o, n = old, None
            old += 1
        elif text.startswith("\\"):
            continue
        else:
            o, n = old, new
            old += 1
            new += 1
        out.append((pos, o, n, "\n".join(lines[hunk_start:i + 1])))
    return out


def diff_find(diff, line=None, side="RIGHT", position=None):
    """(diff_hunk, position, line, side) of a line of the diff, given its line
    number on a side or its position; None when it is not part of the diff."""
    for pos, o, n, hunk in diff_lines(diff):
        if position is not None and pos == position:
            return hunk, pos, n if n is not None else o, "RIGHT" if n is not None else "LEFT"
        if position is None and ((side == "RIGHT" and n == line) or (side == "LEFT" and o == line)):
            return hunk, pos, line, side
    return None


# --- state -----------------------------------------------------------------

class Token:
    def __init__(self, login, token, right="write", repos=None):
        self.login = login
        self.token = token
        self.right = right
        self.repos = set(repos) if repos else None


class Repo:
    def __init__(self, forge, owner, name):
        self.owner = owner
        self.name = name
        self.full = f"{owner}/{name}"
        self.git = Git(os.path.join(forge.root, owner, name + ".git"))
        self.id = forge.next_id()
        self.private = self.full not in forge.public
        self.created_at = now_iso()
        self.pulls = {}
        self.next_number = 1
        self.issue_comments = []
        self.review_comments = []
        self.reviews = []
        self.statuses = []
        self.check_runs = []
        self.protections = {}


class Pull:
    def __init__(self, number, pid, user, title, body, head, base, head_sha, draft, mcm):
        self.number = number
        self.id = pid
        self.user = user
        self.title = title
        self.body = body
        self.head = head
        self.base = base
        self.head_sha = head_sha
        self.draft = draft
        self.maintainer_can_modify = mcm
        self.state = "open"
        self.created_at = self.updated_at = now_iso()
        self.closed_at = self.merged_at = None
        self.merged = False
        self.merged_by = None
        self.merge_commit_sha = None
        self.base_sha = None          # the base's sha when it closed
        self.last_base = None         # the base's sha when last seen open
        self.mergeable_key = None     # (head, base) the answer below is for
        self.mergeable = None


class Forge:
    def __init__(self, root, public, rate_limit, log_path):
        self.root = os.path.abspath(root)
        self.public = set(public)
        self.rate_limit = rate_limit
        self.log_path = log_path
        self.lock = threading.RLock()
        self.tokens = {}
        self.logins = {}
        self.repos = {}
        self.ids = 1000
        self.log = []
        self.faults = []
        self.quotas = {}

    def next_id(self):
        self.ids += 1
        return self.ids

    def user_id(self, login):
        if login not in self.logins:
            self.logins[login] = self.next_id()
        return self.logins[login]

    def add_token(self, login, token, right="write", repos=None):
        if right not in ("read", "write"):
            raise ControlError(f"right must be read or write, not {right!r}")
        if not login or not token:
            raise ControlError("a token needs a login and a token")
        self.tokens[token] = Token(login, token, right, repos)
        self.user_id(login)

    def repo(self, owner, name):
        """The Repo for OWNER/NAME if its bare repository exists (None if not)."""
        if not re.match(r"^[A-Za-z0-9_.-]+$", owner) or not re.match(r"^[A-Za-z0-9_.-]+$", name) \
                or owner.startswith(".") or name.startswith("."):
            return None
        key = (owner, name)
        path = os.path.join(self.root, owner, name + ".git")
        if not os.path.isdir(path):
            self.repos.pop(key, None)
            return None
        if key not in self.repos:
            self.repos[key] = Repo(self, owner, name)
        return self.repos[key]

    def record(self, entry):
        entry["seq"] = len(self.log) + 1
        self.log.append(entry)
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def quota(self, key, limit):
        q = self.quotas.get(key)
        t = time.time()
        if q is None or t >= q["reset"]:
            q = {"limit": limit, "used": 0, "reset": int(t) + 3600}
            self.quotas[key] = q
        return q

    # -- pull request bookkeeping --

    def refresh(self, repo, pr):
        """Brings an open pull request up to date with its branches."""
        if pr.state != "open":
            return
        head = repo.git.branch_sha(pr.head)
        base = repo.git.branch_sha(pr.base)
        if head is None or base is None:
            # the head or base branch was deleted: GitHub closes the pull request
            pr.state = "closed"
            pr.closed_at = pr.updated_at = now_iso()
            pr.base_sha = base
            if base:
                pr.last_base = base
            return
        if head != pr.head_sha:
            pr.head_sha = head
            pr.updated_at = now_iso()
        if base and repo.git.is_ancestor(head, base):
            # the base came to contain the head (pushed by someone): merged
            pr.state = "closed"
            pr.merged = True
            pr.merged_at = pr.closed_at = pr.updated_at = now_iso()
            pr.merge_commit_sha = head
            pr.base_sha = base
        elif base:
            pr.last_base = base

    def base_tip(self, repo, pr):
        return pr.base_sha if pr.state != "open" else repo.git.branch_sha(pr.base)

    def required_failures(self, repo, pr):
        """Messages for the base branch's required status checks that have
        not passed on the head."""
        out = []
        for ctx in repo.protections.get(pr.base, []):
            state = self.context_state(repo, pr.head_sha, ctx)
            if state is None:
                out.append(f'Required status check "{ctx}" is expected.')
            elif state != "success":
                out.append(f'Required status check "{ctx}" is {"failing" if state in ("failure", "error") else "pending"}.')
        return out

    def context_state(self, repo, sha, context):
        """The latest state of a status context or check run name on sha."""
        st = [s for s in repo.statuses if s["sha"] == sha and s["context"].lower() == context.lower()]
        if st:
            return st[-1]["state"]
        runs = [c for c in repo.check_runs if c["head_sha"] == sha and c["name"] == context]
        if runs:
            r = runs[-1]
            if r["status"] != "completed":
                return "pending"
            return "success" if r["conclusion"] in ("success", "neutral", "skipped") else "failure"
        return None

    def combined_state(self, repo, sha):
        latest = {}
        for s in repo.statuses:
            if s["sha"] == sha:
                latest[s["context"].lower()] = s
        states = [s["state"] for s in latest.values()]
        if any(s in ("error", "failure") for s in states):
            return "failure", latest
        if not states or "pending" in states:
            return "pending", latest
        return "success", latest

    def mergeable_state(self, repo, pr, clean):
        if pr.draft:
            return "draft"
        if not clean:
            return "dirty"
        if self.required_failures(repo, pr):
            return "blocked"
        state, _ = self.combined_state(repo, pr.head_sha)
        failing_runs = any(c["head_sha"] == pr.head_sha and c["status"] == "completed"
                           and c["conclusion"] not in ("success", "neutral", "skipped")
                           for c in repo.check_runs)
        if state == "failure" or failing_runs:
            return "unstable"
        return "clean"

    def merge(self, repo, pr, login, method, title, message, sha, doc):
        """Merges pr as login; raises ApiError as GitHub's merge button refuses."""
        self.refresh(repo, pr)
        if pr.state != "open":
            fail(405, "Pull Request is not mergeable", doc)
        if sha is not None and sha != pr.head_sha:
            fail(409, "Head branch was modified. Review and try the merge again.", doc)
        if pr.draft:
            fail(405, "Pull Request is still a draft", doc)
        base = repo.git.branch_sha(pr.base)
        head = pr.head_sha
        tree, clean = repo.git.merge_tree(base, head)
        if not clean:
            fail(405, "Pull Request is not mergeable", doc)
        req = self.required_failures(repo, pr)
        if req:
            fail(405, req[0] if len(req) == 1 else
                 f"{len(req)} of {len(repo.protections.get(pr.base, []))} required status checks have not succeeded.", doc)
        uid = self.user_id(login)
        ident = {"GIT_AUTHOR_NAME": login, "GIT_AUTHOR_EMAIL": f"{uid}+{login}@users.noreply.forge",
                 "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}
        if method == "merge":
            t = title if title is not None else f"Merge pull request #{pr.number} from {repo.owner}/{pr.head}"
            m = message if message is not None else pr.title
            new = repo.git.out("commit-tree", tree, "-p", base, "-p", head, "-m", t, "-m", m, env=ident) \
                if m else repo.git.out("commit-tree", tree, "-p", base, "-p", head, "-m", t, env=ident)
        elif method == "squash":
            t = title if title is not None else f"{pr.title} (#{pr.number})"
            if message is None:
                subjects = [repo.git.out("show", "-s", "--format=%s", c) for c in repo.git.commits_between(base, head)]
                message = "\n".join("* " + s for s in subjects)
            author = dict(ident)
            args = ["commit-tree", tree, "-p", base, "-m", t]
            if message:
                args += ["-m", message]
            new = repo.git.out(*args, env=author)
        else:
            if repo.git.has_merges(base, head):
                fail(405, "This branch can't be rebased", doc)
            new = self.rebase(repo, base, head, ident)
            if new is None:
                fail(405, "This branch can't be rebased", doc)
        if not new:
            fail(500, "Server Error", doc)
        if repo.git.run("update-ref", "refs/heads/" + pr.base, new, base).returncode != 0:
            fail(405, "Base branch was modified. Review and try the merge again.", doc)
        pr.last_base = base
        pr.state = "closed"
        pr.merged = True
        pr.merged_at = pr.closed_at = pr.updated_at = now_iso()
        pr.merged_by = login
        pr.merge_commit_sha = new
        pr.base_sha = new
        return {"sha": new, "merged": True, "message": "Pull Request successfully merged"}

    def rebase(self, repo, base, head, ident):
        """Replays base..head onto base in a scratch worktree; the new tip, or
        None on a conflict."""
        tmp = tempfile.mkdtemp(prefix="forge-rebase-")
        wt = os.path.join(tmp, "wt")
        try:
            if repo.git.run("worktree", "add", "--detach", wt, base).returncode != 0:
                return None
            env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1",
                       GIT_COMMITTER_NAME=ident["GIT_COMMITTER_NAME"],
                       GIT_COMMITTER_EMAIL=ident["GIT_COMMITTER_EMAIL"])
            for c in repo.git.commits_between(base, head):
                p = subprocess.run(["git", "-C", wt, "cherry-pick", "--allow-empty", "--keep-redundant-commits", c],
                                   capture_output=True, env=env)
                if p.returncode != 0:
                    return None
            return subprocess.run(["git", "-C", wt, "rev-parse", "HEAD"], capture_output=True,
                                  env=env).stdout.decode().strip()
        finally:
            repo.git.run("worktree", "remove", "--force", wt)
            repo.git.run("worktree", "prune")
            shutil.rmtree(tmp, ignore_errors=True)


# --- JSON views ------------------------------------------------------------

class View:
    """Builds GitHub's JSON objects for one request (its base URL)."""

    def __init__(self, forge, host, token):
        self.f = forge
        self.base = f"http://{host}"
        self.api = self.base + API
        self.token = token

    def user(self, login):
        if login is None:
            return None
        uid = self.f.user_id(login)
        return {"login": login, "id": uid, "node_id": node_id("U", uid),
                "avatar_url": f"{self.base}/avatars/{login}", "gravatar_id": "",
                "url": f"{self.api}/users/{login}", "html_url": f"{self.base}/{login}",
                "type": "User", "site_admin": False}

    def permissions(self, repo):
        t = self.token
        if t is None or (t.repos is not None and repo.full not in t.repos):
            return {"admin": False, "maintain": False, "push": False, "triage": False, "pull": not repo.private}
        w = t.right == "write"
        return {"admin": False, "maintain": w, "push": w, "triage": w, "pull": True}

    def repo(self, repo, full=False):
        u = f"{self.api}/repos/{repo.full}"
        out = {
            "id": repo.id, "node_id": node_id("R", repo.id), "name": repo.name, "full_name": repo.full,
            "private": repo.private, "owner": self.user(repo.owner),
            "html_url": f"{self.base}/{repo.full}", "description": None, "fork": False, "url": u,
            "pulls_url": u + "/pulls{/number}", "statuses_url": u + "/statuses/{sha}",
            "commits_url": u + "/commits{/sha}", "branches_url": u + "/branches{/branch}",
            "issue_comment_url": u + "/issues/comments{/number}", "comments_url": u + "/comments{/number}",
            "clone_url": f"{self.base}/{repo.full}.git",
            "visibility": "private" if repo.private else "public",
        }
        if full:
            out.update({
                "default_branch": repo.git.default_branch(), "created_at": repo.created_at,
                "updated_at": repo.created_at, "pushed_at": repo.created_at, "archived": False,
                "disabled": False, "allow_merge_commit": True, "allow_squash_merge": True,
                "allow_rebase_merge": True, "allow_auto_merge": False, "delete_branch_on_merge": False,
                "has_issues": True, "open_issues_count": sum(1 for p in repo.pulls.values() if p.state == "open"),
                "permissions": self.permissions(repo),
            })
        return out

    def commit(self, repo, c):
        u = f"{self.api}/repos/{repo.full}"
        return {
            "sha": c["sha"], "node_id": node_id("C", c["sha"]), "url": f"{u}/commits/{c['sha']}",
            "html_url": f"{self.base}/{repo.full}/commit/{c['sha']}",
            "commit": {"author": {"name": c["author"][0], "email": c["author"][1], "date": iso_utc(c["author"][2])},
                       "committer": {"name": c["committer"][0], "email": c["committer"][1],
                                     "date": iso_utc(c["committer"][2])},
                       "message": c["message"], "tree": {"sha": c["tree"], "url": f"{u}/git/trees/{c['tree']}"},
                       "url": f"{u}/git/commits/{c['sha']}", "comment_count": 0},
            "author": None, "committer": None,
            "parents": [{"sha": p, "url": f"{u}/commits/{p}"} for p in c["parents"]],
        }

    def branch(self, repo, name, sha):
        c = repo.git.commit(sha)
        u = f"{self.api}/repos/{repo.full}"
        return {"name": name, "commit": self.commit(repo, c),
                "_links": {"self": f"{u}/branches/{name}", "html": f"{self.base}/{repo.full}/tree/{name}"},
                "protected": name in repo.protections,
                "protection": {"enabled": name in repo.protections,
                               "required_status_checks": {"enforcement_level": "non_admins" if name in repo.protections else "off",
                                                          "contexts": list(repo.protections.get(name, []))}},
                "protection_url": f"{u}/branches/{name}/protection"}

    def pull(self, repo, pr, full=True):
        u = f"{self.api}/repos/{repo.full}"
        n = pr.number
        base_sha = self.f.base_tip(repo, pr)
        out = {
            "url": f"{u}/pulls/{n}", "id": pr.id, "node_id": node_id("PR", pr.id),
            "html_url": f"{self.base}/{repo.full}/pull/{n}",
            "diff_url": f"{self.base}/{repo.full}/pull/{n}.diff",
            "patch_url": f"{self.base}/{repo.full}/pull/{n}.patch",
            "issue_url": f"{u}/issues/{n}", "commits_url": f"{u}/pulls/{n}/commits",
            "review_comments_url": f"{u}/pulls/{n}/comments",
            "review_comment_url": f"{u}/pulls/comments{{/number}}",
            "comments_url": f"{u}/issues/{n}/comments", "statuses_url": f"{u}/statuses/{pr.head_sha}",
            "number": n, "state": pr.state, "locked": False, "title": pr.title, "user": self.user(pr.user),
            "body": pr.body, "labels": [], "milestone": None, "active_lock_reason": None,
            "created_at": pr.created_at, "updated_at": pr.updated_at, "closed_at": pr.closed_at,
            "merged_at": pr.merged_at, "merge_commit_sha": pr.merge_commit_sha, "assignee": None,
            "assignees": [], "requested_reviewers": [], "requested_teams": [],
            "head": {"label": f"{repo.owner}:{pr.head}", "ref": pr.head, "sha": pr.head_sha,
                     "user": self.user(repo.owner), "repo": self.repo(repo)},
            "base": {"label": f"{repo.owner}:{pr.base}", "ref": pr.base, "sha": base_sha,
                     "user": self.user(repo.owner), "repo": self.repo(repo)},
            "_links": {"self": {"href": f"{u}/pulls/{n}"}, "html": {"href": f"{self.base}/{repo.full}/pull/{n}"},
                       "issue": {"href": f"{u}/issues/{n}"}, "comments": {"href": f"{u}/issues/{n}/comments"},
                       "review_comments": {"href": f"{u}/pulls/{n}/comments"},
                       "review_comment": {"href": f"{u}/pulls/comments{{/number}}"},
                       "commits": {"href": f"{u}/pulls/{n}/commits"},
                       "statuses": {"href": f"{u}/statuses/{pr.head_sha}"}},
            "author_association": "OWNER" if pr.user == repo.owner else "COLLABORATOR",
            "auto_merge": None, "draft": pr.draft,
        }
        if not full:
            return out
        mergeable, state = None, "unknown"
        if pr.state == "open":
            key = (pr.head_sha, base_sha)
            if pr.mergeable_key == key:
                mergeable = pr.mergeable
                state = self.f.mergeable_state(repo, pr, mergeable)
            else:
                # GitHub answers null and computes in the background: the
                # answer is there for the next request
                _, clean = repo.git.merge_tree(base_sha, pr.head_sha)
                pr.mergeable_key, pr.mergeable = key, clean
        shas = pr_commits(repo, pr)
        if pr.state == "open":
            adds, dels, files = repo.git.numstat(base_sha, pr.head_sha)
        else:
            adds, dels, files = repo.git.numstat(pr.last_base, pr.head_sha)
        out.update({
            "merged": pr.merged, "mergeable": mergeable, "rebaseable": mergeable, "mergeable_state": state,
            "merged_by": self.user(pr.merged_by), "comments": sum(1 for c in repo.issue_comments if c["number"] == pr.number),
            "review_comments": sum(1 for c in repo.review_comments if c["number"] == pr.number),
            "maintainer_can_modify": pr.maintainer_can_modify, "commits": len(shas),
            "additions": adds, "deletions": dels, "changed_files": files,
        })
        return out

    def issue_comment(self, repo, c):
        u = f"{self.api}/repos/{repo.full}"
        return {"id": c["id"], "node_id": node_id("IC", c["id"]), "url": f"{u}/issues/comments/{c['id']}",
                "html_url": f"{self.base}/{repo.full}/pull/{c['number']}#issuecomment-{c['id']}",
                "issue_url": f"{u}/issues/{c['number']}", "body": c["body"], "user": self.user(c["user"]),
                "created_at": c["created_at"], "updated_at": c["updated_at"],
                "author_association": "OWNER" if c["user"] == repo.owner else "COLLABORATOR"}

    def review_comment(self, repo, c):
        u = f"{self.api}/repos/{repo.full}"
        out = {"id": c["id"], "node_id": node_id("PRRC", c["id"]), "url": f"{u}/pulls/comments/{c['id']}",
               "pull_request_review_id": c["review_id"], "diff_hunk": c["diff_hunk"], "path": c["path"],
               "position": c["position"], "original_position": c["position"], "commit_id": c["commit_id"],
               "original_commit_id": c["commit_id"], "user": self.user(c["user"]), "body": c["body"],
               "created_at": c["created_at"], "updated_at": c["updated_at"],
               "html_url": f"{self.base}/{repo.full}/pull/{c['number']}#discussion_r{c['id']}",
               "pull_request_url": f"{u}/pulls/{c['number']}",
               "author_association": "OWNER" if c["user"] == repo.owner else "COLLABORATOR",
               "_links": {"self": {"href": f"{u}/pulls/comments/{c['id']}"},
                          "html": {"href": f"{self.base}/{repo.full}/pull/{c['number']}#discussion_r{c['id']}"},
                          "pull_request": {"href": f"{u}/pulls/{c['number']}"}},
               "start_line": None, "original_start_line": None, "start_side": None,
               "line": c["line"], "original_line": c["line"], "side": c["side"], "subject_type": "line"}
        if c.get("in_reply_to_id"):
            out["in_reply_to_id"] = c["in_reply_to_id"]
        return out

    def review(self, repo, r):
        u = f"{self.api}/repos/{repo.full}"
        return {"id": r["id"], "node_id": node_id("PRR", r["id"]), "user": self.user(r["user"]),
                "body": r["body"], "state": r["state"],
                "html_url": f"{self.base}/{repo.full}/pull/{r['number']}#pullrequestreview-{r['id']}",
                "pull_request_url": f"{u}/pulls/{r['number']}",
                "author_association": "OWNER" if r["user"] == repo.owner else "COLLABORATOR",
                "_links": {"html": {"href": f"{self.base}/{repo.full}/pull/{r['number']}#pullrequestreview-{r['id']}"},
                           "pull_request": {"href": f"{u}/pulls/{r['number']}"}},
                **({"submitted_at": r["submitted_at"]} if r["state"] != "PENDING" else {}),
                "commit_id": r["commit_id"]}

    def status(self, repo, s, creator=True):
        u = f"{self.api}/repos/{repo.full}"
        out = {"url": f"{u}/statuses/{s['sha']}", "avatar_url": None, "id": s["id"],
               "node_id": node_id("SC", s["id"]), "state": s["state"], "description": s["description"],
               "target_url": s["target_url"], "context": s["context"], "created_at": s["created_at"],
               "updated_at": s["created_at"]}
        if creator:
            out["creator"] = self.user(s["user"])
        return out

    def check_run(self, repo, c):
        u = f"{self.api}/repos/{repo.full}"
        prs = [{"url": f"{u}/pulls/{p.number}", "id": p.id, "number": p.number,
                "head": {"ref": p.head, "sha": p.head_sha, "repo": {"id": repo.id, "url": u, "name": repo.name}},
                "base": {"ref": p.base, "sha": self.f.base_tip(repo, p), "repo": {"id": repo.id, "url": u, "name": repo.name}}}
               for p in repo.pulls.values() if p.state == "open" and p.head_sha == c["head_sha"]]
        app = c["app"]
        return {"id": c["id"], "head_sha": c["head_sha"], "node_id": node_id("CR", c["id"]),
                "external_id": c["external_id"], "url": f"{u}/check-runs/{c['id']}",
                "html_url": f"{self.base}/{repo.full}/runs/{c['id']}", "details_url": c["details_url"],
                "status": c["status"], "conclusion": c["conclusion"], "started_at": c["started_at"],
                "completed_at": c["completed_at"],
                "output": {"title": c["title"], "summary": c["summary"], "text": c["text"],
                           "annotations_count": 0, "annotations_url": f"{u}/check-runs/{c['id']}/annotations"},
                "name": c["name"], "check_suite": {"id": c["suite_id"]},
                "app": {"id": self.f.user_id("app:" + app), "slug": app, "name": app, "owner": self.user(repo.owner)},
                "pull_requests": prs}


def node_id(kind, n):
    return kind + "_" + base64.b64encode(str(n).encode()).decode().rstrip("=")


def iso_utc(s):
    """git's strict ISO date as GitHub prints it (UTC, Z)."""
    try:
        return now_iso(calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - tz_offset(s[19:]))
    except (ValueError, IndexError):
        return s


def tz_offset(z):
    if not z or z == "Z":
        return 0
    sign = 1 if z[0] == "+" else -1
    h, m = z[1:].split(":")
    return sign * (int(h) * 3600 + int(m) * 60)


# --- routes ----------------------------------------------------------------

R = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
# (method, pattern, handler name, access, fine-grained permission, docs)
ROUTES = [
    ("GET", r"/user", "get_user", "user", None, "https://docs.github.com/rest/users/users#get-the-authenticated-user"),
    ("GET", r"/rate_limit", "get_rate_limit", "any", None, "https://docs.github.com/rest/rate-limit/rate-limit"),
    ("GET", R, "get_repo", "read", "metadata=read", DOC_REPOS + "#get-a-repository"),
    ("GET", R + r"/branches", "list_branches", "read", "contents=read", DOC_BRANCHES + "#list-branches"),
    ("GET", R + r"/branches/(?P<branch>.+)", "get_branch", "read", "contents=read", DOC_BRANCHES + "#get-a-branch"),
    ("GET", R + r"/commits/(?P<ref>.+)/status", "combined_status", "read", "statuses=read",
     DOC_STATUSES + "#get-the-combined-status-for-a-specific-reference"),
    ("GET", R + r"/commits/(?P<ref>.+)/statuses", "list_statuses", "read", "statuses=read",
     DOC_STATUSES + "#list-commit-statuses-for-a-reference"),
    ("GET", R + r"/commits/(?P<ref>.+)/check-runs", "list_check_runs", "read", "checks=read",
     DOC_CHECKS + "#list-check-runs-for-a-git-reference"),
    ("GET", R + r"/commits/(?P<ref>.+)", "get_commit", "read", "contents=read", DOC_COMMITS + "#get-a-commit"),
    ("GET", R + r"/statuses/(?P<ref>.+)", "list_statuses", "read", "statuses=read",
     DOC_STATUSES + "#list-commit-statuses-for-a-reference"),
    ("POST", R + r"/statuses/(?P<sha>[^/]+)", "create_status", "write", "statuses=write",
     DOC_STATUSES + "#create-a-commit-status"),
    ("GET", R + r"/check-runs/(?P<id>\d+)", "get_check_run", "read", "checks=read", DOC_CHECKS + "#get-a-check-run"),
    ("POST", R + r"/check-runs", "create_check_run", "write", "checks=write", DOC_CHECKS + "#create-a-check-run"),
    ("GET", R + r"/pulls", "list_pulls", "read", "pull_requests=read", DOC_PULLS + "#list-pull-requests"),
    ("POST", R + r"/pulls", "create_pull", "write", "pull_requests=write", DOC_PULLS + "#create-a-pull-request"),
    ("GET", R + r"/pulls/(?P<number>\d+)", "get_pull", "read", "pull_requests=read", DOC_PULLS + "#get-a-pull-request"),
    ("PATCH", R + r"/pulls/(?P<number>\d+)", "update_pull", "write", "pull_requests=write",
     DOC_PULLS + "#update-a-pull-request"),
    ("GET", R + r"/pulls/(?P<number>\d+)/commits", "pull_commits", "read", "pull_requests=read",
     DOC_PULLS + "#list-commits-on-a-pull-request"),
    ("GET", R + r"/pulls/(?P<number>\d+)/merge", "pull_merged", "read", "pull_requests=read",
     DOC_PULLS + "#check-if-a-pull-request-has-been-merged"),
    ("PUT", R + r"/pulls/(?P<number>\d+)/merge", "merge_pull", "write", "contents=write",
     DOC_PULLS + "#merge-a-pull-request"),
    ("GET", R + r"/pulls/(?P<number>\d+)/comments", "list_review_comments", "read", "pull_requests=read",
     DOC_RCOMMENTS + "#list-review-comments-on-a-pull-request"),
    ("POST", R + r"/pulls/(?P<number>\d+)/comments/(?P<cid>\d+)/replies", "reply_review_comment", "write",
     "pull_requests=write", DOC_RCOMMENTS + "#create-a-reply-for-a-review-comment"),
    ("GET", R + r"/pulls/(?P<number>\d+)/reviews", "list_reviews", "read", "pull_requests=read",
     DOC_REVIEWS + "#list-reviews-for-a-pull-request"),
    ("POST", R + r"/pulls/(?P<number>\d+)/reviews", "create_review", "write", "pull_requests=write",
     DOC_REVIEWS + "#create-a-review-for-a-pull-request"),
    ("GET", R + r"/pulls/(?P<number>\d+)/reviews/(?P<rid>\d+)", "get_review", "read", "pull_requests=read",
     DOC_REVIEWS + "#get-a-review-for-a-pull-request"),
    ("POST", R + r"/pulls/(?P<number>\d+)/reviews/(?P<rid>\d+)/events", "submit_review", "write",
     "pull_requests=write", DOC_REVIEWS + "#submit-a-review-for-a-pull-request"),
    ("GET", R + r"/issues/(?P<number>\d+)/comments", "list_issue_comments", "read", "issues=read",
     DOC_ICOMMENTS + "#list-issue-comments"),
    ("POST", R + r"/issues/(?P<number>\d+)/comments", "create_issue_comment", "write", "issues=write",
     DOC_ICOMMENTS + "#create-an-issue-comment"),
    ("GET", R + r"/issues/comments/(?P<cid>\d+)", "get_issue_comment", "read", "issues=read",
     DOC_ICOMMENTS + "#get-an-issue-comment"),
    ("PATCH", R + r"/issues/comments/(?P<cid>\d+)", "update_issue_comment", "write", "issues=write",
     DOC_ICOMMENTS + "#update-an-issue-comment"),
]
ROUTES = [(m, re.compile("^" + p + "$"), h, a, perm, d) for m, p, h, a, perm, d in ROUTES]


class Ctx:
    """One API request as the handlers see it."""

    def __init__(self, forge, view, token, params, query, body, path, doc):
        self.f = forge
        self.v = view
        self.token = token
        self.login = token.login if token else None
        self.params = params
        self.query = query
        self.body = body
        self.path = path
        self.doc = doc
        self.repo = None
        self.headers = []


def int_param(query, name, default, lo, hi):
    try:
        v = int(query.get(name, ""))
    except ValueError:
        return default
    if v < lo:
        return default
    return min(v, hi) if hi else v


def paginate(ctx, items):
    per_page = int_param(ctx.query, "per_page", 30, 1, 100)
    page = int_param(ctx.query, "page", 1, 1, None)
    last = max(1, math.ceil(len(items) / per_page))

    def url(p):
        q = dict(ctx.query)
        q["page"] = str(p)
        return f"<{ctx.v.api}{ctx.path}?{urllib.parse.urlencode(q)}>"

    links = []
    if page > 1:
        links.append(url(min(page - 1, last)) + '; rel="prev"')
    if page < last:
        links.append(url(page + 1) + '; rel="next"')
        links.append(url(last) + '; rel="last"')
    if page > 1:
        links.append(url(1) + '; rel="first"')
    if links:
        ctx.headers.append(("Link", ", ".join(links)))
    return items[(page - 1) * per_page:page * per_page]


def need_pull(ctx):
    pr = ctx.repo.pulls.get(int(ctx.params["number"]))
    if pr is None:
        fail(404, "Not Found", ctx.doc)
    ctx.f.refresh(ctx.repo, pr)
    return pr


def since_filter(ctx, items):
    since = ctx.query.get("since")
    if since is None:
        return items
    t = parse_iso(since)
    if t is None:
        fail(422, f"Invalid request.\n\nFor 'since', {json.dumps(since)} is not a valid date-time.", ctx.doc)
    return [c for c in items if parse_iso(c["updated_at"]) >= t]


class Api:
    """The handlers; each returns (status, JSON-able body)."""

    # -- users, repositories, branches, commits --

    def get_user(self, ctx):
        return 200, ctx.v.user(ctx.login)

    def get_rate_limit(self, ctx):
        key = ctx.login or "anon:" + ctx.remote
        q = ctx.f.quota(key, ctx.f.rate_limit if ctx.login else ANON_RATE_LIMIT)
        core = {"limit": q["limit"], "remaining": max(0, q["limit"] - q["used"]), "reset": q["reset"],
                "used": q["used"], "resource": "core"}
        return 200, {"resources": {"core": core}, "rate": core}

    def get_repo(self, ctx):
        return 200, ctx.v.repo(ctx.repo, full=True)

    def list_branches(self, ctx):
        items = [{"name": n, "commit": {"sha": s, "url": f"{ctx.v.api}/repos/{ctx.repo.full}/commits/{s}"},
                  "protected": n in ctx.repo.protections} for n, s in ctx.repo.git.branches()]
        return 200, paginate(ctx, items)

    def get_branch(self, ctx):
        name = ctx.params["branch"]
        sha = ctx.repo.git.branch_sha(name)
        if sha is None:
            fail(404, "Branch not found", ctx.doc)
        return 200, ctx.v.branch(ctx.repo, name, sha)

    def resolve(self, ctx, ref):
        sha = ctx.repo.git.resolve(ref)
        if sha is None:
            fail(422, f"No commit found for SHA: {ref}", ctx.doc)
        return sha

    def get_commit(self, ctx):
        sha = self.resolve(ctx, ctx.params["ref"])
        return 200, ctx.v.commit(ctx.repo, ctx.repo.git.commit(sha))

    # -- statuses and check runs --

    def create_status(self, ctx):
        check_body(ctx.body, {"state": (S, ["error", "failure", "pending", "success"]),
                              "target_url": (SN, None), "description": (SN, None), "context": (S, None)},
                   ["state"], ctx.doc)
        sha = ctx.repo.git.commit_sha(ctx.params["sha"])
        if sha is None:
            fail(422, f"No commit found for SHA: {ctx.params['sha']}", ctx.doc)
        s = add_status(ctx.f, ctx.repo, sha, ctx.body["state"], ctx.body.get("context") or "default",
                       ctx.body.get("description"), ctx.body.get("target_url"), ctx.login)
        ctx.headers.append(("Location", f"{ctx.v.api}/repos/{ctx.repo.full}/statuses/{sha}"))
        return 201, ctx.v.status(ctx.repo, s)

    def list_statuses(self, ctx):
        sha = self.resolve(ctx, ctx.params["ref"])
        items = [ctx.v.status(ctx.repo, s) for s in reversed(ctx.repo.statuses) if s["sha"] == sha]
        return 200, paginate(ctx, items)

    def combined_status(self, ctx):
        sha = self.resolve(ctx, ctx.params["ref"])
        state, latest = ctx.f.combined_state(ctx.repo, sha)
        statuses = [ctx.v.status(ctx.repo, s, creator=False) for _, s in sorted(latest.items())]
        u = f"{ctx.v.api}/repos/{ctx.repo.full}"
        return 200, {"state": state, "statuses": paginate(ctx, statuses), "sha": sha,
                     "total_count": len(statuses), "repository": ctx.v.repo(ctx.repo),
                     "commit_url": f"{u}/commits/{sha}", "url": f"{u}/commits/{sha}/status"}

    def list_check_runs(self, ctx):
        sha = self.resolve(ctx, ctx.params["ref"])
        runs = [c for c in ctx.repo.check_runs if c["head_sha"] == sha]
        name = ctx.query.get("check_name")
        if name is not None:
            runs = [c for c in runs if c["name"] == name]
        status = ctx.query.get("status")
        if status is not None:
            runs = [c for c in runs if c["status"] == status]
        if ctx.query.get("filter", "latest") == "latest":
            latest = {}
            for c in runs:
                latest[(c["app"], c["name"])] = c
            runs = list(latest.values())
        runs.sort(key=lambda c: -c["id"])
        return 200, {"total_count": len(runs),
                     "check_runs": [ctx.v.check_run(ctx.repo, c) for c in paginate(ctx, runs)]}

    def get_check_run(self, ctx):
        c = next((c for c in ctx.repo.check_runs if c["id"] == int(ctx.params["id"])), None)
        if c is None:
            fail(404, "Not Found", ctx.doc)
        return 200, ctx.v.check_run(ctx.repo, c)

    def create_check_run(self, ctx):
        fail(403, "You must authenticate via a GitHub App.", ctx.doc)

    # -- pull requests --

    def list_pulls(self, ctx):
        prs = list(ctx.repo.pulls.values())
        for pr in prs:
            ctx.f.refresh(ctx.repo, pr)
        state = ctx.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            state = "open"
        if state != "all":
            prs = [p for p in prs if p.state == state]
        head = ctx.query.get("head")
        if head is not None and ":" in head:
            owner, _, branch = head.partition(":")
            prs = [p for p in prs if owner == ctx.repo.owner and p.head == branch]
        base = ctx.query.get("base")
        if base is not None:
            prs = [p for p in prs if p.base == base]
        sort = ctx.query.get("sort", "created")
        direction = ctx.query.get("direction", "desc" if sort == "created" else "asc")
        key = {"updated": lambda p: (p.updated_at, p.number)}.get(sort, lambda p: p.number)
        prs.sort(key=key, reverse=direction != "asc")
        return 200, [ctx.v.pull(ctx.repo, p, full=False) for p in paginate(ctx, prs)]

    def create_pull(self, ctx):
        b = ctx.body
        check_body(b, {"title": (S, None), "head": (S, None), "head_repo": (S, None), "base": (S, None),
                       "body": (SN, None), "maintainer_can_modify": (B, None), "draft": (B, None),
                       "issue": (I, None)}, ["head", "base"], ctx.doc)
        repo = ctx.repo
        head_arg, base_arg = b["head"], b["base"]
        owner, sep, head = head_arg.rpartition(":")
        errors = []
        if "title" not in b and "issue" not in b:
            errors.append({"resource": "PullRequest", "code": "missing_field", "field": "title"})
        if "issue" in b:
            errors.append({"resource": "PullRequest", "field": "issue", "code": "invalid"})
        base_sha = repo.git.branch_sha(base_arg)
        if base_sha is None:
            errors.append({"resource": "PullRequest", "field": "base", "code": "invalid"})
        head_sha = None
        if (not sep or owner == repo.owner) and b.get("head_repo") in (None, repo.name, repo.full):
            head_sha = repo.git.branch_sha(head)
        if head_sha is None:
            errors.append({"resource": "PullRequest", "field": "head", "code": "invalid"})
        if errors:
            validation_failed(ctx.doc, *errors)
        for p in repo.pulls.values():
            ctx.f.refresh(repo, p)
            if p.state == "open" and p.head == head and p.base == base_arg:
                validation_failed(ctx.doc, {"resource": "PullRequest", "code": "custom",
                                            "message": f"A pull request already exists for {repo.owner}:{head}."})
        if head == base_arg or repo.git.is_ancestor(head_sha, base_sha):
            validation_failed(ctx.doc, {"resource": "PullRequest", "code": "custom",
                                        "message": f"No commits between {base_arg} and {head_arg}"})
        n = repo.next_number
        repo.next_number += 1
        pr = Pull(n, ctx.f.next_id(), ctx.login, b["title"], b.get("body"), head, base_arg, head_sha,
                  b.get("draft", False), b.get("maintainer_can_modify", True))
        pr.last_base = base_sha
        repo.pulls[n] = pr
        ctx.headers.append(("Location", f"{ctx.v.api}/repos/{repo.full}/pulls/{n}"))
        return 201, ctx.v.pull(repo, pr)

    def get_pull(self, ctx):
        return 200, ctx.v.pull(ctx.repo, need_pull(ctx))

    def update_pull(self, ctx):
        pr = need_pull(ctx)
        b = ctx.body
        check_body(b, {"title": (S, None), "body": (SN, None), "state": (S, ["open", "closed"]),
                       "base": (S, None), "maintainer_can_modify": (B, None)}, [], ctx.doc)
        repo = ctx.repo
        if "base" in b and b["base"] != pr.base:
            if pr.state != "open" or repo.git.branch_sha(b["base"]) is None:
                validation_failed(ctx.doc, {"resource": "PullRequest", "field": "base", "code": "invalid"})
        if b.get("state") == "open" and pr.state == "closed":
            if pr.merged:
                validation_failed(ctx.doc, {"resource": "PullRequest", "field": "state", "code": "custom",
                                            "message": "state cannot be changed. The pull request has been merged."})
            head = repo.git.branch_sha(pr.head)
            if head is None:
                validation_failed(ctx.doc, {"resource": "PullRequest", "field": "state", "code": "custom",
                                            "message": "state cannot be changed. The head branch was deleted."})
            for p in repo.pulls.values():
                if p is not pr and p.state == "open" and p.head == pr.head and p.base == pr.base:
                    validation_failed(ctx.doc, {"resource": "PullRequest", "code": "custom",
                                                "message": f"A pull request already exists for {repo.owner}:{pr.head}."})
            pr.state = "open"
            pr.closed_at = None
            pr.base_sha = None
            pr.head_sha = head
        elif b.get("state") == "closed" and pr.state == "open":
            close(ctx.f, repo, pr)
        for k in ("title", "body", "maintainer_can_modify"):
            if k in b:
                setattr(pr, k, b[k])
        if "base" in b and pr.state == "open":
            pr.base = b["base"]
        pr.updated_at = now_iso()
        ctx.f.refresh(repo, pr)
        return 200, ctx.v.pull(repo, pr)

    def pull_commits(self, ctx):
        pr = need_pull(ctx)
        shas = pr_commits(ctx.repo, pr)
        return 200, [ctx.v.commit(ctx.repo, ctx.repo.git.commit(s)) for s in paginate(ctx, shas)]

    def pull_merged(self, ctx):
        pr = need_pull(ctx)
        if pr.merged:
            return 204, None
        fail(404, "Not Found", ctx.doc)

    def merge_pull(self, ctx):
        pr = need_pull(ctx)
        b = ctx.body
        check_body(b, {"commit_title": (S, None), "commit_message": (S, None), "sha": (S, None),
                       "merge_method": (S, ["merge", "squash", "rebase"])}, [], ctx.doc)
        return 200, ctx.f.merge(ctx.repo, pr, ctx.login, b.get("merge_method", "merge"), b.get("commit_title"),
                                b.get("commit_message"), b.get("sha"), ctx.doc)

    # -- comments and reviews --

    def list_review_comments(self, ctx):
        pr = need_pull(ctx)
        items = [c for c in ctx.repo.review_comments if c["number"] == pr.number]
        items = since_filter(ctx, items)
        sort = ctx.query.get("sort")
        if sort in ("created", "updated"):
            key = "created_at" if sort == "created" else "updated_at"
            items.sort(key=lambda c: (c[key], c["id"]), reverse=ctx.query.get("direction", "desc") == "desc")
        return 200, [ctx.v.review_comment(ctx.repo, c) for c in paginate(ctx, items)]

    def reply_review_comment(self, ctx):
        pr = need_pull(ctx)
        check_body(ctx.body, {"body": (S, None)}, ["body"], ctx.doc)
        top = next((c for c in ctx.repo.review_comments
                    if c["id"] == int(ctx.params["cid"]) and c["number"] == pr.number), None)
        if top is None:
            fail(404, "Not Found", ctx.doc)
        c = add_review_comment(ctx.f, ctx.repo, pr, ctx.login, ctx.body["body"], top["path"], top["line"],
                               top["side"], top["diff_hunk"], top["position"], top["commit_id"],
                               top.get("in_reply_to_id") or top["id"])
        ctx.headers.append(("Location", f"{ctx.v.api}/repos/{ctx.repo.full}/pulls/comments/{c['id']}"))
        return 201, ctx.v.review_comment(ctx.repo, c)

    def list_reviews(self, ctx):
        pr = need_pull(ctx)
        items = [r for r in ctx.repo.reviews if r["number"] == pr.number
                 and (r["state"] != "PENDING" or r["user"] == ctx.login)]
        return 200, [ctx.v.review(ctx.repo, r) for r in paginate(ctx, items)]

    def get_review(self, ctx):
        pr = need_pull(ctx)
        r = find_review(ctx, pr)
        return 200, ctx.v.review(ctx.repo, r)

    def create_review(self, ctx):
        pr = need_pull(ctx)
        b = ctx.body
        check_body(b, {"commit_id": (S, None), "body": (S, None),
                       "event": (S, ["APPROVE", "REQUEST_CHANGES", "COMMENT"]), "comments": (("array",), None)},
                   [], ctx.doc)
        repo = ctx.repo
        commit = pr.head_sha
        if "commit_id" in b:
            commit = repo.git.commit_sha(b["commit_id"])
            if commit is None:
                validation_failed(ctx.doc, {"resource": "PullRequestReview", "field": "commit_id", "code": "invalid"})
        event = b.get("event")
        check_review_event(ctx, pr, event, b.get("body"), b.get("comments"))
        if event is None and any(r["number"] == pr.number and r["state"] == "PENDING" and r["user"] == ctx.login
                                 for r in repo.reviews):
            unprocessable(ctx.doc, "User can only have one pending review per pull request")
        comments = []
        for i, c in enumerate(b.get("comments") or []):
            comments.append(review_comment_spec(ctx, repo, pr, c, i))
        state = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED",
                 None: "PENDING"}[event]
        r = add_review(ctx.f, repo, pr, ctx.login, state, b.get("body", ""), commit)
        for path, line, side, hunk, pos, body in comments:
            add_review_comment(ctx.f, repo, pr, ctx.login, body, path, line, side, hunk, pos, commit, None,
                               review_id=r["id"])
        return 200, ctx.v.review(repo, r)

    def submit_review(self, ctx):
        pr = need_pull(ctx)
        r = find_review(ctx, pr)
        check_body(ctx.body, {"body": (S, None), "event": (S, ["APPROVE", "REQUEST_CHANGES", "COMMENT"])},
                   ["event"], ctx.doc)
        if r["state"] != "PENDING":
            unprocessable(ctx.doc, "Can not submit a review that is not pending")
        body = ctx.body.get("body", r["body"])
        check_review_event(ctx, pr, ctx.body["event"], body,
                           [c for c in ctx.repo.review_comments if c["review_id"] == r["id"]])
        r["state"] = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED",
                      "COMMENT": "COMMENTED"}[ctx.body["event"]]
        r["body"] = body
        r["submitted_at"] = now_iso()
        return 200, ctx.v.review(ctx.repo, r)

    def list_issue_comments(self, ctx):
        pr = need_pull(ctx)
        items = since_filter(ctx, [c for c in ctx.repo.issue_comments if c["number"] == pr.number])
        return 200, [ctx.v.issue_comment(ctx.repo, c) for c in paginate(ctx, items)]

    def create_issue_comment(self, ctx):
        pr = need_pull(ctx)
        check_body(ctx.body, {"body": (S, None)}, ["body"], ctx.doc)
        c = add_issue_comment(ctx.f, ctx.repo, pr, ctx.login, ctx.body["body"])
        ctx.headers.append(("Location", f"{ctx.v.api}/repos/{ctx.repo.full}/issues/comments/{c['id']}"))
        return 201, ctx.v.issue_comment(ctx.repo, c)

    def get_issue_comment(self, ctx):
        return 200, ctx.v.issue_comment(ctx.repo, find_issue_comment(ctx))

    def update_issue_comment(self, ctx):
        c = find_issue_comment(ctx)
        check_body(ctx.body, {"body": (S, None)}, ["body"], ctx.doc)
        c["body"] = ctx.body["body"]
        c["updated_at"] = now_iso()
        return 200, ctx.v.issue_comment(ctx.repo, c)


def pr_commits(repo, pr):
    """The commits of a pull request: beyond its base while open, beyond the
    base it last had once closed or merged."""
    if pr.state == "open":
        return repo.git.commits_between(repo.git.branch_sha(pr.base), pr.head_sha)
    return repo.git.commits_between(pr.last_base, pr.head_sha)


def check_review_event(ctx, pr, event, body, comments):
    if event in ("APPROVE", "REQUEST_CHANGES") and pr.user == ctx.login:
        what = "approve" if event == "APPROVE" else "request changes on"
        unprocessable(ctx.doc, f"Can not {what} your own pull request")
    if event == "REQUEST_CHANGES" and not body:
        unprocessable(ctx.doc, "Body is required when requesting changes")
    if event == "COMMENT" and not body and not comments:
        unprocessable(ctx.doc, "Body is required when commenting without review comments")


def find_review(ctx, pr):
    r = next((r for r in ctx.repo.reviews if r["id"] == int(ctx.params["rid"]) and r["number"] == pr.number
              and (r["state"] != "PENDING" or r["user"] == ctx.login)), None)
    if r is None:
        fail(404, "Not Found", ctx.doc)
    return r


def find_issue_comment(ctx):
    c = next((c for c in ctx.repo.issue_comments if c["id"] == int(ctx.params["cid"])), None)
    if c is None:
        fail(404, "Not Found", ctx.doc)
    return c


def review_comment_spec(ctx, repo, pr, c, i):
    """Validates one item of a review's comments: (path, line, side, hunk, position, body)."""
    doc = ctx.doc
    if not isinstance(c, dict) or not isinstance(c.get("path"), str) or not isinstance(c.get("body"), str):
        fail(422, f"Invalid request.\n\nFor 'items', {ruby(c)} is not a valid review comment.", doc)
    for k in c:
        if k not in ("path", "position", "body", "line", "side", "start_line", "start_side"):
            fail(422, f'Invalid request.\n\n"{k}" is not a permitted key.', doc)
    base = ctx.f.base_tip(repo, pr)
    diff = repo.git.file_diff(base, pr.head_sha, c["path"])
    found = None
    if isinstance(c.get("line"), int) and not isinstance(c.get("line"), bool):
        found = diff_find(diff, line=c["line"], side=c.get("side", "RIGHT"))
    elif isinstance(c.get("position"), int) and not isinstance(c.get("position"), bool):
        found = diff_find(diff, position=c["position"])
    if not found:
        unprocessable(doc, "Pull request review thread line must be part of the diff")
    hunk, pos, line, side = found
    return c["path"], line, side, hunk, pos, c["body"]


def add_issue_comment(forge, repo, pr, login, body):
    t = now_iso()
    c = {"id": forge.next_id(), "number": pr.number, "user": login, "body": body, "created_at": t, "updated_at": t}
    repo.issue_comments.append(c)
    return c


def add_review(forge, repo, pr, login, state, body, commit):
    r = {"id": forge.next_id(), "number": pr.number, "user": login, "state": state, "body": body or "",
         "commit_id": commit, "submitted_at": now_iso()}
    repo.reviews.append(r)
    return r


def add_review_comment(forge, repo, pr, login, body, path, line, side, hunk, pos, commit, reply_to, review_id=None):
    if review_id is None:
        review_id = add_review(forge, repo, pr, login, "COMMENTED", "", commit)["id"]
    t = now_iso()
    c = {"id": forge.next_id(), "number": pr.number, "review_id": review_id, "user": login, "body": body,
         "path": path, "line": line, "side": side, "diff_hunk": hunk, "position": pos, "commit_id": commit,
         "created_at": t, "updated_at": t}
    if reply_to:
        c["in_reply_to_id"] = reply_to
    repo.review_comments.append(c)
    return c


def add_status(forge, repo, sha, state, context, description, target_url, login):
    s = {"id": forge.next_id(), "sha": sha, "state": state, "context": context, "description": description,
         "target_url": target_url, "user": login, "created_at": now_iso()}
    repo.statuses.append(s)
    return s


def close(forge, repo, pr):
    forge.refresh(repo, pr)
    if pr.state != "open":
        return
    pr.state = "closed"
    pr.closed_at = pr.updated_at = now_iso()
    pr.base_sha = repo.git.branch_sha(pr.base)
    pr.last_base = pr.base_sha


# --- control API -----------------------------------------------------------

def need(body, key, kind=str):
    v = body.get(key)
    if not isinstance(v, kind) or isinstance(v, bool) and kind is int:
        raise ControlError(f'"{key}" is required ({kind.__name__})')
    return v


class Control:
    def __init__(self, forge):
        self.f = forge

    def repo(self, body):
        full = need(body, "repo")
        owner, _, name = full.partition("/")
        r = self.f.repo(owner, name)
        if r is None:
            raise ControlError(f"no repository {full} under {self.f.root}")
        return r

    def pull(self, body):
        r = self.repo(body)
        pr = r.pulls.get(need(body, "number", int))
        if pr is None:
            raise ControlError(f"no pull request #{body['number']} in {r.full}")
        self.f.refresh(r, pr)
        return r, pr

    def sha(self, r, body):
        ref = body.get("sha") or body.get("ref")
        sha = r.git.resolve(ref) if isinstance(ref, str) else None
        if sha is None:
            raise ControlError(f"no commit {ref!r} in {r.full}")
        return sha

    def users(self, v, b):
        self.f.add_token(need(b, "login"), need(b, "token"), b.get("right", "write"), b.get("repos"))
        return {"login": b["login"], "right": b.get("right", "write")}

    def repos(self, v, b):
        owner, name = need(b, "owner"), need(b, "name")
        if not re.match(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$", owner + name):
            raise ControlError("owner and name may hold letters, digits, '-', '_' and '.'")
        path = os.path.join(self.f.root, owner, name + ".git")
        if not os.path.isdir(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            p = subprocess.run(["git", "init", "-q", "--bare", "-b", b.get("default_branch", "main"), path],
                               capture_output=True)
            if p.returncode != 0:
                raise ControlError("git init failed: " + p.stderr.decode(errors="replace"))
        r = self.f.repo(owner, name)
        if "private" in b:
            r.private = bool(b["private"])
        return v.repo(r, full=True)

    def issue_comment(self, v, b):
        r, pr = self.pull(b)
        return v.issue_comment(r, add_issue_comment(self.f, r, pr, need(b, "user"), need(b, "body")))

    def review_comment(self, v, b):
        r, pr = self.pull(b)
        if b.get("in_reply_to"):
            top = next((c for c in r.review_comments if c["id"] == b["in_reply_to"]), None)
            if top is None:
                raise ControlError(f"no review comment {b['in_reply_to']}")
            c = add_review_comment(self.f, r, pr, need(b, "user"), need(b, "body"), top["path"], top["line"],
                                   top["side"], top["diff_hunk"], top["position"], top["commit_id"],
                                   top.get("in_reply_to_id") or top["id"])
            return v.review_comment(r, c)
        side = b.get("side", "RIGHT")
        diff = r.git.file_diff(self.f.base_tip(r, pr), pr.head_sha, need(b, "path"))
        hit = diff_find(diff, line=need(b, "line", int), side=side)
        if hit is None:
            raise ControlError(f"line {b['line']} ({side}) of {b['path']} is not part of the diff")
        c = add_review_comment(self.f, r, pr, need(b, "user"), need(b, "body"), b["path"], b["line"], side,
                               hit[0], hit[1], pr.head_sha, None)
        return v.review_comment(r, c)

    def review(self, v, b):
        r, pr = self.pull(b)
        state = b.get("state", "COMMENTED")
        if state not in ("APPROVED", "CHANGES_REQUESTED", "COMMENTED"):
            raise ControlError("state is APPROVED, CHANGES_REQUESTED or COMMENTED")
        return v.review(r, add_review(self.f, r, pr, need(b, "user"), state, b.get("body", ""), pr.head_sha))

    def status(self, v, b):
        r = self.repo(b)
        state = need(b, "state")
        if state not in ("error", "failure", "pending", "success"):
            raise ControlError("state is error, failure, pending or success")
        s = add_status(self.f, r, self.sha(r, b), state, b.get("context", "default"), b.get("description"),
                       b.get("target_url"), b.get("user", "ci"))
        return v.status(r, s)

    def check_run(self, v, b):
        r = self.repo(b)
        status = b.get("status", "completed")
        if status not in ("queued", "in_progress", "completed"):
            raise ControlError("status is queued, in_progress or completed")
        conclusion = b.get("conclusion")
        if status == "completed" and conclusion not in ("success", "failure", "neutral", "cancelled", "skipped",
                                                         "timed_out", "action_required"):
            raise ControlError("a completed check run needs a conclusion")
        t = now_iso()
        if b.get("id"):
            c = next((c for c in r.check_runs if c["id"] == b["id"]), None)
            if c is None:
                raise ControlError(f"no check run {b['id']}")
            r.check_runs.remove(c)
        else:
            c = {"id": self.f.next_id(), "head_sha": self.sha(r, b), "name": need(b, "name"),
                 "app": b.get("app", "ci"), "started_at": t, "suite_id": self.f.next_id(), "external_id": "",
                 "title": None, "summary": None, "text": None, "details_url": None}
        c.update({"status": status, "conclusion": conclusion if status == "completed" else None,
                  "completed_at": t if status == "completed" else None})
        for k in ("title", "summary", "text", "details_url"):
            if k in b:
                c[k] = b[k]
        r.check_runs.append(c)
        return v.check_run(r, c)

    def merge(self, v, b):
        r, pr = self.pull(b)
        try:
            return self.f.merge(r, pr, need(b, "user"), b.get("merge_method", "merge"), b.get("commit_title"),
                                b.get("commit_message"), None, DOC_PULLS)
        except ApiError as e:
            raise ControlError(e.body["message"])

    def close(self, v, b):
        r, pr = self.pull(b)
        close(self.f, r, pr)
        return v.pull(r, pr)

    def protect(self, v, b):
        r = self.repo(b)
        contexts = b.get("contexts", [])
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise ControlError("contexts is a list of strings")
        r.protections[need(b, "branch")] = contexts
        return {"branch": b["branch"], "contexts": contexts}

    def fail(self, v, b):
        kind = b.get("kind", "error")
        if kind not in ("error", "rate_limit", "secondary_rate_limit"):
            raise ControlError("kind is error, rate_limit or secondary_rate_limit")
        status = b.get("status", {"error": 502, "rate_limit": 403, "secondary_rate_limit": 403}[kind])
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ControlError("status is an HTTP error status")
        count = b.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise ControlError("count is a number of requests, at least 1")
        self.f.faults.append({"count": count, "status": status, "kind": kind,
                              "method": b.get("method"), "path": b.get("path"),
                              "retry_after": b.get("retry_after", 60)})
        return {"pending": sum(f["count"] for f in self.f.faults)}

    def quota(self, v, b):
        login = need(b, "login")
        q = self.f.quota(login, self.f.rate_limit)
        q["limit"] = b.get("limit", q["limit"])
        if "remaining" in b:
            q["used"] = q["limit"] - b["remaining"]
        if "reset_in" in b:
            q["reset"] = int(time.time()) + b["reset_in"]
        return {"limit": q["limit"], "remaining": q["limit"] - q["used"], "reset": q["reset"]}


# --- HTTP ------------------------------------------------------------------

CONTROL_ENDPOINTS = ("users", "repos", "issue_comment", "review_comment", "review", "status", "check_run",
                     "merge", "close", "protect", "fail", "quota")
GIT_PATH = re.compile(r"^/(?P<owner>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+?)(?:\.git)?"
                      r"(?P<rest>/(?:info/refs|git-upload-pack|git-receive-pack|HEAD|objects/.+))$")


def make_handler(forge):
    api = Api()
    control = Control(forge)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def send(self, status, headers, data):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            if status not in (204, 304):
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if status not in (204, 304):
                self.wfile.write(data)

        def host(self):
            return self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_address[1]

        def dispatch(self):
            data = read_body(self)
            path = self.path.partition("?")[0]
            if path == API or path.startswith(API + "/"):
                self.api(data)
            elif path.startswith("/_control/"):
                self.control(data)
            else:
                self.git(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = dispatch

        # -- the control API --

        def control(self, data):
            path, _, query = self.path.partition("?")
            what = path[len("/_control/"):]
            q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
            try:
                with forge.lock:
                    if what == "log" and self.command == "GET":
                        since = int(q.get("since", "1") or 1)
                        out = {"next": len(forge.log) + 1, "requests": forge.log[since - 1:]}
                    else:
                        fn = getattr(control, what) if what in CONTROL_ENDPOINTS else None
                        if fn is None or self.command != "POST":
                            raise ControlError(f"no control endpoint {self.command} {path}")
                        try:
                            body = json.loads(data or b"{}")
                        except ValueError:
                            raise ControlError("the body is not JSON")
                        if not isinstance(body, dict):
                            raise ControlError("the body is not a JSON object")
                        out = fn(View(forge, self.host(), None), body)
                status = 200
            except ControlError as e:
                status, out = 400, {"error": str(e)}
            except (ValueError, TypeError, KeyError) as e:
                status, out = 400, {"error": f"a field has the wrong type or is missing: {e}"}
            self.send(status, [("Content-Type", "application/json")], json.dumps(out).encode())

        # -- git over smart HTTP --

        def git(self, data):
            path, _, query = self.path.partition("?")
            m = GIT_PATH.match(path)
            user = None
            status = 404
            try:
                with forge.lock:
                    repo = forge.repo(m.group("owner"), m.group("name")) if m else None
                    token, bad = self.credentials(basic_only=True)
                    push = "git-receive-pack" in path or "service=git-receive-pack" in query
                if repo is None:
                    self.send(404, [("Content-Type", "text/plain")], b"Repository not found.\n")
                    return
                if bad or (token is None and (repo.private or push)):
                    status = 401
                    self.send(401, [("WWW-Authenticate", 'Basic realm="GitHub"')], b"")
                    return
                user = token.login if token else ""
                if token is not None and token.repos is not None and repo.full not in token.repos:
                    self.send(404, [("Content-Type", "text/plain")], b"Repository not found.\n")
                    return
                if push and token.right != "write":  # token is set: an anonymous push got 401
                    status = 403
                    self.send(403, [("Content-Type", "text/plain")],
                              f"Permission to {repo.full}.git denied to {user}.\n".encode())
                    return
                status, headers, body = http_backend(
                    self, forge.root, user, data,
                    path=f"/{repo.owner}/{repo.name}.git{m.group('rest')}")
                self.send(status, headers, body)
            finally:
                with forge.lock:
                    forge.record({"kind": "git", "method": self.command, "path": self.path, "status": status,
                                  "user": user, "body_keys": []})

        def credentials(self, basic_only=False):
            """(token, bad): the Token of the request's credentials, None when
            it has none; bad is True when it has credentials nobody has."""
            auth = self.headers.get("Authorization")
            if not auth:
                return None, False
            scheme, _, value = auth.strip().partition(" ")
            value = value.strip()
            secret = None
            if scheme.lower() == "basic":
                try:
                    u, _, p = base64.b64decode(value).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return None, True
                secret = p if p and p != "x-oauth-basic" else u
            elif scheme.lower() in ("bearer", "token") and not basic_only:
                secret = value
            t = forge.tokens.get(secret) if secret else None
            return t, t is None

        # -- the REST API --

        def api(self, data):
            path, _, query = self.path.partition("?")
            sub = path[len(API):] or "/"
            qs = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
            rid = hashlib.sha1(os.urandom(8)).hexdigest()[:20].upper()
            headers = [("X-GitHub-Request-Id", rid), ("X-GitHub-Media-Type", "github.v3; format=json")]
            status, body, user, counted, qkey = 500, None, None, False, None
            keys = []
            try:
                parsed = None
                if data:
                    try:
                        parsed = json.loads(data)
                        if isinstance(parsed, dict):
                            keys = sorted(parsed)
                    except ValueError:
                        parsed = ValueError
                with forge.lock:
                    self.faults(sub)
                    if not self.headers.get("User-Agent"):
                        raise ApiError(403, None)
                    version = self.headers.get("X-GitHub-Api-Version")
                    if version is not None and version not in VERSIONS:
                        listed = ", ".join(f'"{v}"' for v in reversed(VERSIONS))
                        fail(400, f'The version you specified in the "X-GitHub-API-Version" request header, '
                             f'"{version}", is not a supported version. The following versions are currently '
                             f'supported: {listed} (most recent).', "https://docs.github.com/rest")
                    headers.append(("X-GitHub-Api-Version-Selected", version or DEFAULT_VERSION))
                    token, bad = self.credentials()
                    if bad:
                        fail(401, "Bad credentials")
                    user = token.login if token else None
                    qkey = user or "anon:" + self.client_address[0]
                    q = forge.quota(qkey, forge.rate_limit if token else ANON_RATE_LIMIT)
                    if sub != "/rate_limit":
                        if q["used"] >= q["limit"]:
                            headers += self.rate_headers(q)
                            fail(403, f"API rate limit exceeded for user ID {forge.user_id(user)}." if user else
                                 f"API rate limit exceeded for {self.client_address[0]}. (But here's the good news: "
                                 "Authenticated requests get a higher rate limit.)",
                                 "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
                        q["used"] += 1
                        counted = True
                    status, body = self.route(sub, qs, parsed, token, headers)
            except ApiError as e:
                status, body = e.status, e.body
                headers += e.headers
            with forge.lock:
                if qkey is not None:
                    q = forge.quota(qkey, forge.rate_limit if user else ANON_RATE_LIMIT)
                    if status == 304 and counted:
                        q["used"] -= 1
                    if not any(k.lower() == "x-ratelimit-remaining" for k, _ in headers):
                        headers += self.rate_headers(q)
                forge.record({"kind": "api", "method": self.command, "path": self.path, "status": status,
                              "user": user, "body_keys": keys})
            if status == 403 and body is None:
                self.send(403, [("Content-Type", "text/plain; charset=utf-8")],
                          b"Request forbidden by administrative rules. Please make sure your request has a "
                          b"User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api"
                          b"#user-agent-required). Check https://developer.github.com for other possible causes.\n")
                return
            out = b"" if body is None else json.dumps(body).encode()
            if body is not None:
                headers.append(("Content-Type", "application/json; charset=utf-8"))
            self.send(status, headers, out)

        def rate_headers(self, q):
            return [("x-ratelimit-limit", str(q["limit"])),
                    ("x-ratelimit-remaining", str(max(0, q["limit"] - q["used"]))),
                    ("x-ratelimit-reset", str(q["reset"])), ("x-ratelimit-used", str(q["used"])),
                    ("x-ratelimit-resource", "core")]

        def faults(self, sub):
            for f in forge.faults:
                if f["method"] and f["method"] != self.command:
                    continue
                if f["path"] and f["path"] not in sub:
                    continue
                f["count"] -= 1
                if f["count"] <= 0:
                    forge.faults.remove(f)
                reset = str(int(time.time()) + f["retry_after"])
                if f["kind"] == "rate_limit":
                    fail(f["status"], "API rate limit exceeded for user ID 1. If you reach out to GitHub Support "
                         "for help, please include the request ID.",
                         "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                         headers=[("x-ratelimit-limit", "5000"), ("x-ratelimit-remaining", "0"),
                                  ("x-ratelimit-reset", reset), ("x-ratelimit-used", "5000"),
                                  ("x-ratelimit-resource", "core")])
                if f["kind"] == "secondary_rate_limit":
                    fail(f["status"], "You have exceeded a secondary rate limit. Please wait a few minutes "
                         "before you try again. If you reach out to GitHub Support for help, please include the "
                         "request ID.",
                         "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api"
                         "#about-secondary-rate-limits", headers=[("retry-after", str(f["retry_after"]))])
                raise ApiError(f["status"], {"message": "Server Error"})

        def route(self, sub, qs, parsed, token, headers):
            matched = None
            for method, rx, name, access, perm, doc in ROUTES:
                m = rx.match(sub)
                if m and method == self.command:
                    matched = (m, name, access, perm, doc)
                    break
            if matched is None:
                fail(404, "Not Found")
            m, name, access, perm, doc = matched
            params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
            ctx = Ctx(forge, View(forge, self.host(), token), token, params, qs, None, sub, doc)
            ctx.remote = self.client_address[0]
            ctx.headers = headers
            if access == "user" and token is None:
                fail(401, "Requires authentication", doc)
            if "owner" in params:
                repo = forge.repo(params["owner"], params["name"])
                visible = repo is not None and (
                    (token is None and not repo.private) or
                    (token is not None and (token.repos is None or repo.full in token.repos)) or
                    (token is not None and not repo.private))
                if not visible:
                    fail(404, "Not Found", doc)
                ctx.repo = repo
                if access == "write":
                    if token is None:
                        fail(401, "Requires authentication", doc)
                    if token.right != "write" or (token.repos is not None and repo.full not in token.repos):
                        fail(403, "Resource not accessible by personal access token", doc,
                             headers=[("X-Accepted-GitHub-Permissions", perm)])
            if self.command in ("POST", "PATCH", "PUT"):
                if parsed is ValueError:
                    fail(400, "Problems parsing JSON", doc)
                ctx.body = {} if parsed is None else parsed
                if not isinstance(ctx.body, dict):
                    fail(400, "Body should be a JSON object", doc)
            status, body = getattr(api, name)(ctx)
            if status == 200 and self.command == "GET":
                raw = json.dumps(body, sort_keys=True).encode() + (token.login.encode() if token else b"")
                etag = 'W/"%s"' % hashlib.sha256(raw).hexdigest()[:32]
                headers.append(("ETag", etag))
                headers.append(("Cache-Control", "private, max-age=60, s-maxage=60"))
                headers.append(("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP"))
                inm = self.headers.get("If-None-Match")
                if inm and etag in [t.strip() for t in inm.split(",")] + (["*"] if inm.strip() == "*" else []):
                    return 304, None
            return status, body

    return Handler


def main():
    ap = argparse.ArgumentParser(description="A fake forge: GitHub's REST API and git over HTTP.")
    ap.add_argument("--root", required=True, help="bare repositories as ROOT/OWNER/NAME.git")
    ap.add_argument("--user", action="append", default=[], help="LOGIN:TOKEN[:read|write]")
    ap.add_argument("--public", action="append", default=[], help="OWNER/NAME readable without a token")
    ap.add_argument("--rate-limit", type=int, default=RATE_LIMIT, help="requests an hour per user")
    ap.add_argument("--log", help="appends each request as a JSON line")
    args = ap.parse_args()
    os.makedirs(args.root, exist_ok=True)
    forge = Forge(args.root, args.public, args.rate_limit, args.log)
    for spec in args.user:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            ap.error(f"--user {spec!r}: write LOGIN:TOKEN or LOGIN:TOKEN:read|write")
        try:
            forge.add_token(*parts)
        except ControlError as e:
            ap.error(f"--user {spec!r}: {e}")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(forge))
    srv.daemon_threads = True
    announce_port(srv)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
