#!/usr/bin/env python3
"""A user service that acts while nginx waits for it, for t/050-attacks.t.

Usage: attack_user_service.py PORT TEST_PID. Listens on 127.0.0.1:PORT; exits once the
process TEST_PID is gone. The request path's first segment picks the behaviour:

  /purge-race/NAME  before answering 200 {"id":"NAME"}, logs the session out: sends
                    DELETE /purge with the request's Cookie to the gateway (the port in
                    X-Gateway-Port) and waits for its answer
  /race/NAME        before answering 200 {"id":"NAME"}, has the session refused: sends
                    GET /refuse/NAME with the request's Cookie to the gateway and waits
                    for its answer
  /xaccel/NAME      200 {"id":"NAME"} with X-Accel-Redirect: /xaccel-target
  /refuse/NAME      401
  anything else     200 {"id":"NAME"}
"""
import os
import socket
import sys
import threading


def header(data, name):
    for line in data.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return b""


def to_gateway(port, line, cookie):
    with socket.create_connection(("127.0.0.1", int(port))) as s:
        s.sendall(line + b" HTTP/1.0\r\nHost: localhost\r\nCookie: " + cookie + b"\r\n\r\n")
        while s.recv(4096):
            pass


def serve(conn):
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        parts = data.split(b" ", 2)[1].decode().strip("/").split("/")
        mode, name = parts[0], (parts[1] if len(parts) > 1 else "alice")
        if mode == "purge-race":
            to_gateway(header(data, b"x-gateway-port"), b"DELETE /purge", header(data, b"cookie"))
        if mode == "race":
            to_gateway(header(data, b"x-gateway-port"), b"GET /refuse/" + name.encode(),
                       header(data, b"cookie"))
        if mode == "refuse":
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        body = ('{"id":"%s"}' % name).encode()
        extra = b"X-Accel-Redirect: /xaccel-target\r\n" if mode == "xaccel" else b""
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra +
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
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
