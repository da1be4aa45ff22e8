#!/usr/bin/env python3
"""A real WebSocket client for the gateway tests. Needs `websockets` (PyPI).

Usage: ws_client.py URL [-H 'Name: value']... [-p SUBPROTOCOL]... [MESSAGE]...

Opens URL (ws://127.0.0.1:PORT/...) with the extra headers and offered subprotocols,
then prints, one item a line:
  status 101
  first <the server's first message, the JSON report of the handshake it received>
  <each reply to MESSAGE, in order>
or, when the handshake is refused:
  status <code>
  <the response body, as it came>
Exits 0 in both cases (the output says what happened), 1 on anything else.
"""
import argparse
import sys

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect


def main():
    parser = argparse.ArgumentParser(description="WebSocket client for the gateway tests")
    parser.add_argument("url")
    parser.add_argument("-H", dest="headers", action="append", default=[],
                        metavar="'Name: value'", help="a request header")
    parser.add_argument("-p", dest="subprotocols", action="append", default=None,
                        metavar="SUBPROTOCOL", help="a subprotocol to offer")
    parser.add_argument("messages", nargs="*", metavar="MESSAGE")
    args = parser.parse_intermixed_args()
    headers = []
    for h in args.headers:
        name, sep, value = h.partition(":")
        if not sep:
            parser.error(f"-H wants 'Name: value', got {h!r}")
        headers.append((name.strip(), value.strip()))
    try:
        with connect(args.url, additional_headers=headers, subprotocols=args.subprotocols,
                     compression=None, open_timeout=10, close_timeout=2) as ws:
            print("status 101")
            print("first " + ws.recv(timeout=10))
            for message in args.messages:
                ws.send(message)
                print(ws.recv(timeout=10))
    except InvalidStatus as e:
        print(f"status {e.response.status_code}")
        body = e.response.body.decode("utf-8", "replace")
        print(body, end="" if body.endswith("\n") or not body else "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
