#!/usr/bin/env python3
"""A user service that misbehaves on purpose, for t/042-broken-answers.t.

Usage: bad_user_service.py PORT TEST_PID. Listens on 127.0.0.1:PORT; exits once the
process TEST_PID is gone. The request path picks the behaviour:

  /complete/NAME   200 {"id":"NAME"}, whole, with Content-Length
  /short/NAME      Content-Length 100, sends {"id":"NAME"} only, then closes
  /chunked/NAME    chunked, one chunk {"id":"NAME"} and no last chunk, then closes
  /reset/NAME      Content-Length 100, sends {"id":"NAME"}, then resets (RST)
  /stall/NAME      Content-Length 100, sends {"id":"NAME"}, then waits for nginx to give up
"""
import os
import socket
import struct
import sys
import threading


def body_for(name):
    return ('{"id":"%s"}' % name).encode()


def serve(conn):
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        path = data.split(b" ", 2)[1].decode()
        parts = path.strip("/").split("/")
        mode = parts[0]
        name = parts[1] if len(parts) > 1 else "alice"
        body = body_for(name)
        if mode == "complete":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        elif mode in ("short", "reset", "stall"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\nConnection: close\r\n\r\n" + body)
            if mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif mode == "stall":
                conn.settimeout(60)
                while conn.recv(4096):
                    pass
        elif mode == "chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                         + b"%x\r\n" % len(body) + body + b"\r\n")
        else:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    finally:
        conn.close()


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main():
    port, test_pid = int(sys.argv[1]), int(sys.argv[2])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    srv.settimeout(1)
    while alive(test_pid):
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        conn.settimeout(None)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
