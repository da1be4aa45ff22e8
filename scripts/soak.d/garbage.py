"""A user service that answers garbage: bytes that are not HTTP, then closes."""
import socket
import sys

port = int(sys.argv[1])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(512)
while True:
    conn, _ = srv.accept()
    try:
        conn.recv(65536)
        conn.sendall(b"\x00\xffNOT-HTTP garbage {\"id\":\r\n\r\n")
    except OSError:
        pass
    finally:
        conn.close()
