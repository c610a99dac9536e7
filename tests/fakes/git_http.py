#!/usr/bin/env python3
"""git_http — a git server over smart HTTP with Basic authentication, on
loopback, for the tests of workers whose repository is a URL (a stand-in for
GitHub or Gitea: no such service is reachable from the test machines).

    git_http.py --root DIR --user NAME --password PW [--log FILE]

Serves every bare repository under DIR through git's own `git http-backend`
(the real protocol: info/refs, git-upload-pack, git-receive-pack), after
checking the request's Basic credentials; a request without them, or with
others, gets 401 and a WWW-Authenticate challenge, as a hosted forge does.
Prints the port it listens on (127.0.0.1, chosen by the system) on its first
line of stdout, then serves until killed. Each request is appended to the
log file as one line: "<status> <method> <path> <user or ->".

As a module it lends the two pieces every smart-HTTP fake needs (forge.py
imports them): read_body() and http_backend().
"""
import argparse
import base64
import http.server
import os
import subprocess
import sys


def read_body(handler):
    """The request body of a BaseHTTPRequestHandler, chunked or not."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    n = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(n) if n else b""


def http_backend(handler, root, user, data, path=None):
    """Runs `git http-backend` for the handler's request over the bare
    repositories under root, as `user`, with the request body `data`;
    `path` replaces the request's path (without its query) when given.
    Returns (status, headers, body); status 500 with git's stderr as the
    body when the backend fails."""
    req_path, _, query = handler.path.partition("?")
    path = path or req_path
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": root,
        "GIT_HTTP_EXPORT_ALL": "1",
        "REQUEST_METHOD": handler.command,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(data)),
        "REMOTE_USER": user,
        "REMOTE_ADDR": handler.client_address[0],
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    enc = handler.headers.get("Content-Encoding")
    if enc:
        env["HTTP_CONTENT_ENCODING"] = enc
    proto = handler.headers.get("Git-Protocol")
    if proto:
        env["GIT_PROTOCOL"] = proto
    p = subprocess.run(["git", "http-backend"], input=data, env=env, capture_output=True)
    raw = p.stdout
    sep = raw.find(b"\r\n\r\n")
    skip = 4
    if sep < 0:
        sep, skip = raw.find(b"\n\n"), 2
    if p.returncode != 0 or sep < 0:
        return 500, [], p.stderr or b"git http-backend failed\n"
    status, headers = 200, []
    for line in raw[:sep].decode("latin-1").splitlines():
        k, _, v = line.partition(":")
        if k.lower() == "status":
            status = int(v.strip().split()[0])
        elif k.lower() != "content-length":
            headers.append((k, v.strip()))
    return status, headers, raw[sep + skip:]


def announce_port(srv):
    """Prints the server's port as the first line of stdout, in one write,
    and survives a reader that has gone."""
    try:
        sys.stdout.write("%d\n" % srv.server_address[1])
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--log")
    args = ap.parse_args()
    expected = "Basic " + base64.b64encode(
        f"{args.user}:{args.password}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: the log file says enough
            pass

        def note(self, status, user):
            if args.log:
                with open(args.log, "a") as f:
                    f.write(f"{status} {self.command} {self.path} {user or '-'}\n")

        def reply(self, status, headers, data):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def serve(self):
            data = read_body(self)
            if self.headers.get("Authorization") != expected:
                self.note(401, None)
                # no body: libgit2 (1.5) reuses the connection for its retry
                # without reading the body of a challenge
                self.reply(401, [("WWW-Authenticate", 'Basic realm="git"')], b"")
                return
            status, headers, body = http_backend(self, args.root, args.user, data)
            self.note(status, args.user)
            self.reply(status, headers, body)

        do_GET = serve
        do_POST = serve

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    announce_port(srv)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
