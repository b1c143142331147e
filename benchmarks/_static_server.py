"""The floor of a Python scrape on this machine: a thread per keep-alive connection answering
every request with the same gzip body, read once, and nothing else running in the process (no
sampler, no rendering, no request parsing beyond the header lines).

``--body`` is a file whose bytes are the body served (``Content-Encoding: gzip``). Prints one
JSON line ``{"ready": true}`` once listening; stdin closing ends the process.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    args = parser.parse_args()
    body = args.body.read_bytes()
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    listener = socket.create_server(("127.0.0.1", args.port), backlog=socket.SOMAXCONN)

    def serve(connection: socket.socket) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with connection, connection.makefile("rb") as requests:
            while requests.readline():
                while requests.readline() not in (b"\r\n", b"\n", b""):
                    pass
                connection.sendall(response)

    def accept() -> None:
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
