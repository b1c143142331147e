"""The floor of a Python scrape on this machine: a server answering every request with the same
gzip body, read once, and nothing else running in the process (no sampler, no rendering, no
request parsing beyond finding the end of the headers).

Two ways of serving, the same bytes:

* ``--threads`` (the default): a thread per keep-alive connection, as ``http.server``'s
  ``ThreadingHTTPServer`` (and rooftop up to 1dd0a6d) serve;
* ``--one-thread``: one thread answering every connection from a ``selectors`` loop
  (non-blocking sockets, a write buffer per connection), as an event-loop server, and rooftop's
  ``exporter/http_loop.py``, serve.

``--body`` is a file whose bytes are the body served (``Content-Encoding: gzip``). Prints one
JSON line ``{"ready": true}`` once listening; stdin closing ends the process.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import threading
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--threads", dest="one_thread", action="store_false")
    mode.add_argument("--one-thread", dest="one_thread", action="store_true")
    args = parser.parse_args()
    body = args.body.read_bytes()
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    listener = socket.create_server(("127.0.0.1", args.port), backlog=socket.SOMAXCONN)
    serve = _one_thread if args.one_thread else _thread_per_connection
    threading.Thread(target=serve, args=(listener, response), daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.read()
    return 0


def _thread_per_connection(listener: socket.socket, response: bytes) -> None:
    def serve(connection: socket.socket) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with connection, connection.makefile("rb") as requests:
            while requests.readline():
                while requests.readline() not in (b"\r\n", b"\n", b""):
                    pass
                connection.sendall(response)

    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = b""
        self.pending = b""


def _one_thread(listener: socket.socket, response: bytes) -> None:
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)

    def close(connection: _Connection) -> None:
        selector.unregister(connection.sock)
        connection.sock.close()

    def flush(connection: _Connection) -> None:
        try:
            sent = connection.sock.send(connection.pending)
        except BlockingIOError:
            sent = 0
        connection.pending = connection.pending[sent:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.pending else 0)
        selector.modify(connection.sock, events, connection)

    while True:
        for key, events in selector.select():
            if key.data is None:  # the listener
                while True:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    selector.register(sock, selectors.EVENT_READ, _Connection(sock))
                continue
            connection: _Connection = key.data
            if events & selectors.EVENT_WRITE:
                flush(connection)
            if not events & selectors.EVENT_READ:
                continue
            try:
                data = connection.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                close(connection)
                continue
            connection.received += data
            answers = 0
            while (end := connection.received.find(b"\r\n\r\n")) >= 0:
                connection.received = connection.received[end + 4 :]
                answers += 1
            if answers:
                connection.pending += response * answers
                flush(connection)


if __name__ == "__main__":
    sys.exit(main())
