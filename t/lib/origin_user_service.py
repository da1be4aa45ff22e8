#!/usr/bin/env python3
"""A mock of the origin gateway's user service (the one proxy_jwt.lua asked), for the tests
that run nginx-conf/gateway.conf. It checks its inputs the way the real one would and
answers what proxy_jwt.lua expected: 200 with a plain JWT as the body, or a refusal.

Usage:
  origin_user_service.py PORT [TEST_PID]   serve on 127.0.0.1:PORT; with TEST_PID, exit
                                           once that process is gone
  origin_user_service.py --issue NAME      print a JWT this service accepts in
                                           X-EXAMPLE-AUTHORIZATION (a client's own token)

The one endpoint, GET /api/user/token?request_uri=<the client's request URI>:
  - anything else: 404 (another path), 405 (another method), 400 when the request has a
    body, is a WebSocket upgrade, or when the query is not exactly one non-empty
    `request_uri` argument starting with "/" (read with form decoding, as web frameworks
    do: a `+` the gateway failed to escape would come back as a space) or when
    X-Forwarded-For is not a list of IP addresses. The 400 body says which.
  - credentials, each checked when present, in this order; any invalid one refuses:
      X-EXAMPLE-AUTHORIZATION: <a JWT this service issued>   (the client's own token)
      Authorization: Bearer <NAME>-token                       NAME alice or bob
      Cookie: ...; session=<NAME>-session; ...                 NAME alice or bob
      Cookie: session=expired-session                          302 to /login?next=<uri>
      Cookie: session=carol-session    200 for carol, the JWT followed by "\n" (a token
                                       written with print(), which proxy_jwt.lua set as is)
    none of them: 401 {"detail":"not authenticated"}; an unknown one: 401 naming it.
  - 200: a JWT (HS256, this file's test secret) whose claims are
      {"sub": NAME, "via": "jwt"|"authorization"|"cookie", "request_uri": <as decoded>,
       "xff": <X-Forwarded-For as received, or "">, "exp": 4102444800}
    so a test reads back, through the business service's echo, what this service got.
"""
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

SECRET = b"ngx-identity test secret, never a real one"
USERS = ("alice", "bob")
EXP = 4102444800
JWT_HEADER = "X-EXAMPLE-AUTHORIZATION"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(claims):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    sig = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def verify(token):
    """The claims of a JWT this service issued and that has not expired, or None."""
    try:
        head, body, sig = token.split(".")
        want = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(unb64url(sig), want):
            return None
        claims = json.loads(unb64url(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(claims, dict) or claims.get("sub") not in USERS:
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
        return None
    return claims


def session_cookie(header):
    for pair in header.split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name == "session":
            return value
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keepalive, as the gateway's upstream block wants

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain" if status == 200 else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, status, detail, headers=()):
        self.answer(status, json.dumps({"detail": detail}), headers)

    def do_POST(self):
        self.refuse(405, "method not allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path != "/api/user/token":
            return self.refuse(404, "not found")
        if self.headers.get("Content-Length", "0") != "0" or self.headers.get("Transfer-Encoding"):
            return self.refuse(400, "a token request has no body")
        if self.headers.get("Upgrade"):
            return self.refuse(400, "a token request is not a WebSocket upgrade")
        try:
            args = parse_qsl(url.query, keep_blank_values=True, strict_parsing=True,
                             encoding="utf-8", errors="strict")
        except (ValueError, UnicodeDecodeError):
            return self.refuse(400, "bad query string")
        if len(args) != 1 or args[0][0] != "request_uri":
            names = [name for name, _ in args]
            return self.refuse(400, f"want exactly one request_uri argument, got {names}")
        request_uri = args[0][1]
        if not request_uri.startswith("/"):
            return self.refuse(400, f"request_uri is not a request URI: {request_uri!r}")
        xff = self.headers.get("X-Forwarded-For", "")
        if xff:
            try:
                for hop in xff.split(","):
                    ipaddress.ip_address(hop.strip())
            except ValueError:
                return self.refuse(400, "X-Forwarded-For is not a list of addresses")

        user, via = None, None
        token = self.headers.get(JWT_HEADER)
        if token is not None:
            claims = verify(token)
            if claims is None:
                return self.refuse(401, f"invalid {JWT_HEADER}")
            user, via = claims["sub"], "jwt"
        auth = self.headers.get("Authorization")
        if auth is not None:
            name = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
            if not (name.endswith("-token") and name[: -len("-token")] in USERS):
                return self.refuse(401, "invalid Authorization", [("WWW-Authenticate", "Bearer")])
            user, via = user or name[: -len("-token")], via or "authorization"
        cookie = self.headers.get("Cookie")
        session = session_cookie(cookie) if cookie is not None else None
        if session == "expired-session":
            location = "/login?next=" + quote(request_uri, safe="")
            return self.refuse(302, "session expired", [("Location", location)])
        if session == "carol-session":
            return self.answer(200, issue({"sub": "carol", "via": "cookie",
                                           "request_uri": request_uri, "xff": xff,
                                           "exp": EXP}) + "\n")
        if session is not None:
            if not (session.endswith("-session") and session[: -len("-session")] in USERS):
                return self.refuse(401, "invalid session")
            user, via = user or session[: -len("-session")], via or "cookie"
        if user is None:
            return self.refuse(401, "not authenticated")
        self.answer(200, issue({"sub": user, "via": via, "request_uri": request_uri,
                                "xff": xff, "exp": EXP}))


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--issue":
        print(issue({"sub": sys.argv[2], "via": "issued", "exp": EXP}))
        return
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    test_pid = int(sys.argv[2]) if len(sys.argv) == 3 else None
    while test_pid is None or alive(test_pid):
        time.sleep(0.2)


if __name__ == "__main__":
    main()
