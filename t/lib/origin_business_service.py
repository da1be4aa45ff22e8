#!/usr/bin/env python3
"""A mock business service behind nginx-conf/gateway.conf: it reports what reached it,
over plain HTTP and over WebSocket. Needs `websockets` (PyPI; scripts/deps.sh installs it).

Usage: origin_business_service.py PORT [TEST_PID]   serve on 127.0.0.1:PORT; with
TEST_PID, exit once that process is gone.

  - A plain GET: 200, text/plain, one line per received header, `Name: value`, names
    lowercased, in the order received, after a first line `GET <path>`. When the request
    has X-EXAMPLE-AUTHORIZATION, a last line `jwt: <its claims as compact JSON>` (the
    payload, not verified: the gateway's user service issued it).
  - A WebSocket handshake: accepted without selecting a subprotocol (the token
    subprotocol the gateway adds is read, not negotiated). The first message is a JSON
    object {"path", "headers": {lowercased name: value}, "jwt": claims from
    X-EXAMPLE-AUTHORIZATION or null, "subprotocol_jwt": claims from the
    `X-EXAMPLE-AUTHORIZATION.<jwt>` entry of Sec-WebSocket-Protocol or null}; then every
    message is sent back as it came ("echo: " prefixed to text).
Plain HTTP is GET only (the websockets library serves both on one port).
"""
import asyncio
import base64
import json
import os
import sys
from http import HTTPStatus

from websockets.asyncio.server import serve

JWT_HEADER = "X-EXAMPLE-AUTHORIZATION"
TOKEN_PROTOCOL = "v1.token.websocket.example.com"


def claims(token):
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {"unreadable": token}


def protocol_jwt(value):
    """The JWT of a `v1.token.websocket.example.com,X-EXAMPLE-AUTHORIZATION.<jwt>` value."""
    entries = [e.strip() for e in value.split(",")]
    if TOKEN_PROTOCOL not in entries:
        return None
    for entry in entries:
        if entry.lower().startswith(JWT_HEADER.lower() + "."):
            return claims(entry[len(JWT_HEADER) + 1:])
    return None


def is_upgrade(request):
    return "websocket" in request.headers.get("Upgrade", "").lower()


def text(value):
    """A request line or header value as the client's bytes meant it: websockets reads
    them as ASCII with surrogate escapes, and a UTF-8 URI is written back as UTF-8."""
    return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")


def report(request):
    lines = [f"GET {text(request.path)}"]
    lines += [f"{name.lower()}: {text(value)}" for name, value in request.headers.raw_items()]
    if JWT_HEADER in request.headers:
        lines.append("jwt: " + json.dumps(claims(request.headers[JWT_HEADER]),
                                          separators=(",", ":"), ensure_ascii=False))
    return "\n".join(lines) + "\n"


def process_request(connection, request):
    if not is_upgrade(request):
        response = connection.respond(HTTPStatus.OK, report(request))
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
        return response
    return None


async def handler(ws):
    request = ws.request
    first = {
        "path": request.path,
        "headers": {name.lower(): value for name, value in request.headers.raw_items()},
        "jwt": claims(request.headers[JWT_HEADER]) if JWT_HEADER in request.headers else None,
        "subprotocol_jwt": protocol_jwt(request.headers.get("Sec-WebSocket-Protocol", "")),
    }
    await ws.send(json.dumps(first, separators=(",", ":"), ensure_ascii=False))
    async for message in ws:
        await ws.send("echo: " + message if isinstance(message, str) else message)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


async def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    port = int(sys.argv[1])
    test_pid = int(sys.argv[2]) if len(sys.argv) == 3 else None
    async with serve(handler, "127.0.0.1", port, process_request=process_request,
                     compression=None):
        while test_pid is None or alive(test_pid):
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main())
