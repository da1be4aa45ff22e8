#!/usr/bin/env python3
"""Forward-auth services as they document their answers, for t/054-forward-auth.t.

Usage: forward_auth_service.py PORT TEST_PID. Listens on 127.0.0.1:PORT; exits once the
process TEST_PID is gone.

oauth2-proxy, GET /oauth2/auth (session cookie `_oauth2_proxy`), run with
--set-xauthrequest: a valid session is `202 Accepted` with an empty body and
X-Auth-Request-User, X-Auth-Request-Email, X-Auth-Request-Preferred-Username and
X-Auth-Request-Groups (comma-joined); anything else is `401 Unauthorized`, body
"Unauthorized\\n" (Go's http.Error).

Authelia, GET /api/authz/forward-auth (session cookie `authelia_session`; reads the
target from X-Forwarded-Method, -Proto, -Host, -Uri): a valid session is `200 OK`
with an empty body and Remote-User, Remote-Groups, Remote-Name, Remote-Email; without
one, a browser navigation (Accept: text/html, not XHR) is `302 Found` to the portal
with `rd` (the target URL) and `rm` (its method), anything else `401 Unauthorized`.
GET /api/verify (legacy) answers the same way, reading X-Original-URL, and redirects
only when the query has `rd` (the portal URL).

Sessions: "alice" and "bob" are valid; for the tests, "nomail" is valid without an
email header, "ctl" is valid with a control byte in the user header, and any session
starting with "counted" is carol's, with X-Call (the number of calls made with that
session value), to tell a cache hit from a call.
"""
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, urlsplit

USERS = {
    "alice": ("alice", "alice@example.com", "Alice Liddell", "admins,dev"),
    "bob": ("bob", "bob@example.com", "Bob", "dev"),
    "nomail": ("nomail", None, "No Mail", "dev"),
    "ctl": ("al\x01ice", "alice@example.com", "Alice", "dev"),
    "counted": ("carol", "carol@example.com", "Carol", "dev"),
}
CALLS = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def session(self, name):
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except Exception:
            return None
        morsel = cookie.get(name)
        if morsel is None:
            return None
        if morsel.value.startswith("counted"):
            with LOCK:
                CALLS[morsel.value] = CALLS.get(morsel.value, 0) + 1
                return USERS["counted"] + (CALLS[morsel.value],)
        user = USERS.get(morsel.value)
        return user + (0,) if user else None

    def answer(self, status, reason, headers, body=b""):
        # Raw, so a control byte in a value goes out as the test needs it.
        lines = ["HTTP/1.1 %d %s" % (status, reason), "Date: Sat, 28 Nov 2026 00:00:00 GMT"]
        lines += ["%s: %s" % h for h in headers]
        lines += ["Content-Length: %d" % len(body), "", ""]
        self.wfile.write("\r\n".join(lines).encode("latin-1") + body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/oauth2/auth":
            self.oauth2_proxy()
        elif url.path in ("/api/authz/forward-auth", "/api/verify"):
            self.authelia(url)
        else:
            self.answer(404, "Not Found", [("Content-Type", "text/plain")], b"404 page not found\n")

    def oauth2_proxy(self):
        user = self.session("_oauth2_proxy")
        if user is None:
            self.answer(401, "Unauthorized",
                        [("Content-Type", "text/plain; charset=utf-8"),
                         ("X-Content-Type-Options", "nosniff")],
                        b"Unauthorized\n")
            return
        name, email, _, groups, call = user
        headers = [("X-Auth-Request-User", name)]
        if email:
            headers.append(("X-Auth-Request-Email", email))
        headers += [("X-Auth-Request-Preferred-Username", name),
                    ("X-Auth-Request-Groups", groups)]
        if call:
            headers.append(("X-Call", str(call)))
        self.answer(202, "Accepted", headers)

    def authelia(self, url):
        if url.path == "/api/verify":
            target = self.headers.get("X-Original-URL")
            method = self.headers.get("X-Original-Method", "GET")
            portal = parse_qs(url.query).get("rd", [None])[0]
        else:
            fwd = [self.headers.get("X-Forwarded-" + h) for h in ("Method", "Proto", "Host", "Uri")]
            if not all(fwd):
                # Authelia cannot tell what is asked for: it refuses.
                self.answer(401, "Unauthorized", [("Content-Type", "text/plain; charset=utf-8")],
                            b"401 Unauthorized")
                return
            method = fwd[0]
            target = "%s://%s%s" % (fwd[1], fwd[2], fwd[3])
            portal = "https://auth.example.com/"
        user = self.session("authelia_session")
        if user is not None and target:
            name, email, display, groups, call = user
            headers = [("Remote-User", name), ("Remote-Groups", groups), ("Remote-Name", display)]
            if email:
                headers.append(("Remote-Email", email))
            if call:
                headers.append(("X-Call", str(call)))
            self.answer(200, "OK", headers)
            return
        browser = ("text/html" in self.headers.get("Accept", "")
                   and self.headers.get("X-Requested-With", "").lower() != "xmlhttprequest")
        if portal and browser and target:
            location = "%s?rd=%s&rm=%s" % (portal, quote(target, safe=""), method)
            status, reason = (302, "Found") if method in ("GET", "HEAD", "OPTIONS") else (303, "See Other")
            self.answer(status, reason, [("Content-Type", "text/html; charset=utf-8"),
                                         ("Location", location)],
                        ('<a href="%s">%d %s</a>' % (location, status, reason)).encode())
            return
        self.answer(401, "Unauthorized", [("Content-Type", "text/plain; charset=utf-8")],
                    b"401 Unauthorized")


def watch(pid, server):
    while True:
        try:
            os.kill(pid, 0)
        except OSError:
            server.shutdown()
            return
        time.sleep(0.5)


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=watch, args=(pid, server), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
