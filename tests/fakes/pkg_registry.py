#!/usr/bin/env python3
"""A package registry stand-in for the egress tests, on loopback.

Serves, over plain HTTP (Python's http.server):
  /hello                      a short text
  /big?n=N                    N bytes
  /count                      how many requests (but /count) it answered
  /tiny-sum                   the npm packument of the package tiny-sum 1.0.0
  /tiny-sum/-/tiny-sum-1.0.0.tgz  its tarball (npm checks the integrity)
  /py/tiny_sum.py             the same as a Python module, for a setup that
                              downloads it (images without npm or pip)
and, on a second port, a TCP echo server (for CONNECT tunnels).

Prints "ports HTTP ECHO" on its first line, then serves until killed.
Usage: pkg_registry.py [ADDRESS]
"""
import base64
import hashlib
import http.server
import io
import json
import socket
import socketserver
import sys
import tarfile
import threading

COUNT = 0
LOCK = threading.Lock()


def tarball():
    files = {
        "package/package.json": json.dumps({"name": "tiny-sum", "version": "1.0.0",
                                            "main": "index.js", "license": "MIT"}).encode(),
        "package/index.js": b"module.exports = function sum(a, b) { return a + b; };\n",
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            t.addfile(info, io.BytesIO(data))
    return raw.getvalue()


TGZ = tarball()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        global COUNT
        path = self.path.split("?")[0]
        with LOCK:
            before = COUNT
            if path != "/count":
                COUNT += 1
        host = self.headers.get("Host", "")
        if path == "/hello":
            self.reply(200, b"hello from the registry\n")
        elif path == "/count":
            self.reply(200, str(before).encode())
        elif path == "/big":
            n = int(self.path.split("n=")[1]) if "n=" in self.path else 1 << 20
            self.reply(200, b"x" * n, "application/octet-stream")
        elif path == "/tiny-sum":
            integrity = "sha512-" + base64.b64encode(hashlib.sha512(TGZ).digest()).decode()
            doc = {"name": "tiny-sum", "dist-tags": {"latest": "1.0.0"},
                   "versions": {"1.0.0": {
                       "name": "tiny-sum", "version": "1.0.0", "main": "index.js",
                       "dist": {"tarball": f"http://{host}/tiny-sum/-/tiny-sum-1.0.0.tgz",
                                "shasum": hashlib.sha1(TGZ).hexdigest(),
                                "integrity": integrity}}}}
            self.reply(200, json.dumps(doc).encode(), "application/json")
        elif path == "/tiny-sum/-/tiny-sum-1.0.0.tgz":
            self.reply(200, TGZ, "application/octet-stream")
        elif path == "/py/tiny_sum.py":
            self.reply(200, b"def tiny_sum(a, b):\n    return a + b\n", "text/x-python")
        else:
            self.reply(404, b"not found\n")

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("registry: " + (fmt % args) + "\n")


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class Threaded(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class ThreadedTCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    # the address to listen on (default 127.0.0.1); 127.0.0.2 is loopback
    # too but not in the sandboxes' NO_PROXY, so a URL naming it goes
    # through the egress proxy
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    web = Threaded((addr, 0), Handler)
    echo = ThreadedTCP((addr, 0), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    sys.stdout.write(f"ports {web.server_address[1]} {echo.server_address[1]}\n")
    sys.stdout.flush()
    web.serve_forever()


if __name__ == "__main__":
    main()
