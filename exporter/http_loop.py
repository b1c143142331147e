"""The scrape transport: every connection answered from one ``selectors`` loop.

One thread accepts, reads, and writes for every connection, with non-blocking sockets (TLS
included). A request whose answer is already in memory (``/metrics``, ``/healthz``) is answered
in that thread, at once, without waking any other; the rest (the landing page, a first bcrypt
check) run on a bounded pool of worker threads and come back to the loop to be written.

Why one thread: a scrape then queues for the GIL once, not once per thread handoff and socket
call (accept thread, worker, each recv and send). On the shared 2-core benchmark machine a
server that only writes fixed bytes had 0.6-0.9x the closed-loop p99 and 0.76-0.79x the burst
p99 this way, against a thread per connection (``benchmarks/scrape_floor.py``); rooftop's own
burst p99 at 8 GPUs + 8 large engines went from 7.8 to 6.0 ms (``docs/performance.md``).

Bounds: each request has ``request_timeout_seconds`` from accept (renewed after each response
on a keep-alive connection), a request head of at most ``MAX_REQUEST_HEAD_BYTES``, and at most
``max_connections`` open at once; beyond that the listening socket is not read (connections
wait in the kernel's backlog) and keep-alive connections are closed after their response, so
a waiting client gets its turn.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import selectors
import socket
import socketserver
import ssl
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import Any

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
"""Total time a request may take from accept (or the previous response) to its response."""
MAX_REQUEST_HEAD_BYTES = 128 * 1024
"""A request line and headers longer than this, unfinished, get 431 and a close."""
MAX_CONNECTIONS = 512
"""Open connections served at once (each costs a descriptor and a small buffer)."""
_RECV_BYTES = 65536
_ACCEPT_PAUSE_SECONDS = 0.1
"""How long the listening socket rests after accept failed for want of descriptors."""
_HEAD_TOO_LARGE_BODY = b"request line and headers too long\n"
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: rooftop\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
    % (len(_HEAD_TOO_LARGE_BODY), _HEAD_TOO_LARGE_BODY)
)


class _Connection:
    """One client connection's state, owned by the loop thread."""

    __slots__ = (
        "address",
        "close_after",
        "closed",
        "deadline",
        "ended",
        "handshaking",
        "pending",
        "received",
        "sock",
        "working",
    )

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.received = bytearray()
        self.pending: memoryview | None = None
        """The part of the response still to write."""
        self.close_after = False
        self.handshaking = False
        self.working = False
        """A worker thread is answering this connection's request."""
        self.ended = False
        """The client has shut down its side: answer what it sent, then close."""
        self.closed = False


def request_head_end(buffer: bytes | bytearray) -> int:
    """The offset just past the blank line that ends a request head, or -1 if there is none
    yet (lines may end in CRLF or a bare LF, as ``http.server`` accepts)."""
    ends = [
        found + length
        for found, length in ((buffer.find(b"\n\r\n"), 3), (buffer.find(b"\n\n"), 2))
        if found >= 0
    ]
    return min(ends) if ends else -1


class ExporterHTTPServer(socketserver.TCPServer):
    """An HTTP/1.1 server for ``handler`` (a :class:`BaseHTTPRequestHandler`), answering from
    one loop thread; ``max_workers`` threads run the requests the handler does not answer at
    once (see ``answers_at_once`` on the handlers of :func:`rooftop.exporter.server.make_handler`).
    """

    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs when many scrapers connect at once; the
    # client then retries after 1 s, 3 s, 7 s. Go servers such as node_exporter use SOMAXCONN.
    request_queue_size = socket.SOMAXCONN

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        max_workers: int,
        ssl_context: ssl.SSLContext | None = None,
        request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)
        self._handler_class = handler
        self.socket.setblocking(False)
        self._ssl_context = ssl_context
        self._request_timeout = request_timeout_seconds
        self._max_connections = max_connections
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="scrape")
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._listening = False
        self._listen_again_at = 0.0
        self._accept_failing = False
        self._connections: dict[int, _Connection] = {}
        self._connections_lock = threading.Lock()
        self._answered: deque[tuple[_Connection, Future[tuple[bytes, bool]]]] = deque()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._next_reap = 0.0

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    # ---------------------------------------------------------------------- the loop

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until :meth:`shutdown`; ``poll_interval`` bounds how late a shutdown is seen."""
        self._stopped.clear()
        reap_every = min(0.5, self._request_timeout / 4)
        try:
            self._listen(True)
            while not self._stop.is_set():
                now = time.monotonic()
                if (
                    not self._listening
                    and now >= self._listen_again_at
                    and len(self._connections) < self._max_connections
                ):
                    self._listen(True)
                timeout = max(0.0, min(poll_interval, self._next_reap - now))
                for key, events in self._selector.select(timeout):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._serve(key.data, events)
                if self._answered:
                    self._write_answers()
                now = time.monotonic()
                if now >= self._next_reap:
                    self._reap(now)
                    self._next_reap = now + reap_every
        finally:
            self._listen(False)
            self._stop.clear()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait for it (from another thread)."""
        self._stop.set()
        self._wake()
        self._stopped.wait()

    def close_connections(self) -> None:
        """Cut every open connection, idle keep-alive ones included (safe from any thread)."""
        with self._connections_lock:
            sockets = [connection.sock for connection in self._connections.values()]
        for sock in sockets:
            # socket.socket's own shutdown: on an SSLSocket this cuts the descriptor without
            # touching the SSL object the loop thread uses; the loop then reads the end.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def server_close(self) -> None:
        super().server_close()
        if not hasattr(self, "_pool"):
            return  # the bind failed inside TCPServer.__init__, before the pool and selector
        self._pool.shutdown(wait=False, cancel_futures=True)
        for connection in list(self._connections.values()):
            self._close(connection)
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def connections_waiting(self) -> bool:
        """The server is at its connection limit: new clients wait in the backlog."""
        return len(self._connections) >= self._max_connections

    # ---------------------------------------------------------------------- accepting

    def _listen(self, on: bool) -> None:
        if on == self._listening:
            return
        if on:
            self._selector.register(self.socket, selectors.EVENT_READ, None)
        else:
            self._selector.unregister(self.socket)
        self._listening = on

    def _accept(self) -> None:
        while len(self._connections) < self._max_connections:
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    if not self._accept_failing:  # once until an accept succeeds again
                        log.warning(
                            "cannot accept scrape connections (%s); retrying every %g s",
                            error.strerror,
                            _ACCEPT_PAUSE_SECONDS,
                        )
                    self._accept_failing = True
                    self._listen(False)
                    self._listen_again_at = time.monotonic() + _ACCEPT_PAUSE_SECONDS
                return
            try:
                sock.setblocking(False)
                # A small response must not wait for the client's delayed ACK (Nagle).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                handshaking = self._ssl_context is not None
                if self._ssl_context is not None:
                    sock = self._ssl_context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
            except OSError:
                sock.close()
                continue
            self._accept_failing = False
            connection = _Connection(sock, address, time.monotonic() + self._request_timeout)
            connection.handshaking = handshaking
            with self._connections_lock:
                self._connections[id(connection)] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)
        self._listen(False)  # at the limit: the next clients wait in the backlog

    # ---------------------------------------------------------------------- reading

    def _serve(self, connection: _Connection, events: int) -> None:
        """One readiness event; a failure here ends this connection, never the loop."""
        try:
            self._on_ready(connection, events)
        except Exception:
            log.exception("serving %s failed", connection.address)
            self._close(connection)

    def _on_ready(self, connection: _Connection, events: int) -> None:
        if connection.closed:
            return
        if connection.handshaking:
            self._handshake(connection)
        elif connection.pending is not None:
            self._write(connection)  # writable, or readable where TLS asked to read first
            self._answer_next(connection)
        elif events & selectors.EVENT_READ:
            self._read(connection)

    def _handshake(self, connection: _Connection) -> None:
        sock = connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(connection, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(connection, selectors.EVENT_WRITE)
            return
        except (OSError, ValueError):  # ssl.SSLError is an OSError: a refused handshake
            self._close(connection)
            return
        connection.handshaking = False
        self._want(connection, selectors.EVENT_READ)
        self._read(connection)  # the request may already sit in the TLS buffer

    def _read(self, connection: _Connection) -> None:
        sock = connection.sock
        while True:
            try:
                data = sock.recv(_RECV_BYTES)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                break
            except ssl.SSLWantWriteError:
                self._want(connection, selectors.EVENT_WRITE)
                return
            except (OSError, ValueError):
                self._close(connection)
                return
            if not data:
                if request_head_end(connection.received) < 0:
                    self._close(connection)
                    return
                connection.ended = True  # e.g. `nc` after its request: answer, then close
                break
            connection.received += data
            if len(connection.received) > MAX_REQUEST_HEAD_BYTES:
                break
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()) and len(data) < _RECV_BYTES:
                break
        self._answer_next(connection)

    def _answer_next(self, connection: _Connection) -> None:
        """Answer the complete requests in ``received`` in order (pipelined ones too), while
        each response goes out at once; a request for a worker ends the turn."""
        received = connection.received
        answers_at_once = getattr(self._handler_class, "answers_at_once", None)
        while not (connection.closed or connection.working or connection.pending is not None):
            end = request_head_end(received)
            if end < 0:
                if len(received) > MAX_REQUEST_HEAD_BYTES:
                    self._respond(connection, _HEAD_TOO_LARGE, close=True)
                return
            head = bytes(received[:end])
            del received[:end]
            try:
                at_once = answers_at_once is not None and answers_at_once(head)
                if at_once:
                    response, close = self._run_handler(connection, head)
            except Exception:
                log.exception("a request from %s failed", connection.address)
                self._close(connection)
                return
            if not at_once:
                self._offload(connection, head)
                return
            self._respond(connection, response, close)

    def _offload(self, connection: _Connection, head: bytes) -> None:
        connection.working = True
        self._selector.unregister(connection.sock)
        future = self._pool.submit(self._run_handler, connection, head)
        future.add_done_callback(lambda done: self._on_answered(connection, done))

    def _run_handler(self, connection: _Connection, head: bytes) -> tuple[bytes, bool]:
        """The handler's response to one request head, and whether to close after it."""
        handler = self._handler_class.__new__(self._handler_class)
        handler.request = handler.connection = connection.sock
        handler.client_address = connection.address
        handler.server = self
        handler.rfile = io.BytesIO(head)
        handler.wfile = io.BytesIO()
        handler.close_connection = True
        handler.handle_one_request()
        return handler.wfile.getvalue(), handler.close_connection

    def _on_answered(self, connection: _Connection, done: Future[tuple[bytes, bool]]) -> None:
        """In a worker thread: hand the response to the loop."""
        self._answered.append((connection, done))
        self._wake()

    def _write_answers(self) -> None:
        while self._answered:
            connection, done = self._answered.popleft()
            connection.working = False
            if connection.closed or done.cancelled():
                self._close(connection)
                continue
            try:
                self._selector.register(connection.sock, selectors.EVENT_READ, connection)
                response, close = done.result()
                self._respond(connection, response, close)
                self._answer_next(connection)
            except Exception:
                log.exception("a request from %s failed", connection.address)
                self._close(connection)

    # ---------------------------------------------------------------------- writing

    def _respond(self, connection: _Connection, response: bytes, close: bool) -> None:
        if not response:
            self._close(connection)
            return
        connection.pending = memoryview(response)
        connection.close_after = close or connection.ended
        self._write(connection)

    def _write(self, connection: _Connection) -> None:
        pending = connection.pending
        assert pending is not None
        try:
            sent = connection.sock.send(pending)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
            sent = 0
        except ssl.SSLWantReadError:
            self._want(connection, selectors.EVENT_READ)
            return
        except (OSError, ValueError):
            self._close(connection)
            return
        if sent < len(pending):
            connection.pending = pending[sent:]
            self._want(connection, selectors.EVENT_WRITE)
            return
        connection.pending = None
        if connection.close_after:
            self._close(connection)
            return
        connection.deadline = time.monotonic() + self._request_timeout
        self._want(connection, selectors.EVENT_READ)

    # ---------------------------------------------------------------------- bookkeeping

    def _want(self, connection: _Connection, events: int) -> None:
        if not connection.closed and self._selector.get_key(connection.sock).events != events:
            self._selector.modify(connection.sock, events, connection)

    def _reap(self, now: float) -> None:
        """Close every connection whose request has outlived its deadline (slow or silent
        clients, idle keep-alive ones included)."""
        for connection in list(self._connections.values()):
            if connection.deadline <= now:
                self._close(connection)

    def _close(self, connection: _Connection) -> None:
        if connection.closed:
            return
        connection.closed = True
        with self._connections_lock:
            self._connections.pop(id(connection), None)
        if not connection.working:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(connection.sock)
        with contextlib.suppress(OSError):
            connection.sock.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_read.recv(4096):
                pass
