"""The HTTP face: ``/metrics``, ``/healthz`` and the landing page (:mod:`rooftop.exporter.web`).

Handlers only read the latest snapshot (through the exposition cache); nothing here calls a
device or an engine, so a hung GPU or engine can never hang a scrape. Requests are served by a
fixed pool of worker threads with a per-connection timeout, so slow or numerous clients cannot
exhaust threads; connections beyond the pool wait in the listen backlog.
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from rooftop.exporter.collector import ExpositionCache
from rooftop.exporter.snapshot import Snapshot
from rooftop.exporter.web.landing import landing_page
from rooftop.exporter.webconfig import WebConfig

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_SECONDS = 10.0
"""Total time a connection may take from accept to close (TLS handshake, request, response)."""


class ExporterHTTPServer(HTTPServer):
    """An HTTPServer whose requests run on a bounded worker pool."""

    daemon_threads = True
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
    ) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, handler)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="scrape")
        self._ssl_context = ssl_context
        self._request_timeout = request_timeout_seconds
        self._max_workers = max_workers
        self._open_connections = 0
        # A socket timeout bounds each recv, not a request: a client that trickles a byte at a
        # time (slowloris) would hold a worker forever. One reaper thread shuts down every
        # connection, queued or in progress, once its deadline has passed. The deadline runs
        # from accept and is renewed after each response, so it bounds each request on a
        # keep-alive connection rather than the connection's whole life.
        self._deadlines: dict[int, tuple[float, socket.socket]] = {}
        self._deadlines_lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._reap, name="scrape-deadline", daemon=True).start()

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._deadlines_lock:
            self._deadlines[id(request)] = (time.monotonic() + self._request_timeout, request)
            self._open_connections += 1
        self._pool.submit(self._process, request, client_address)

    def _process(self, request: socket.socket, client_address: Any) -> None:
        key = id(request)
        try:
            request.settimeout(self._request_timeout)
            # Headers and body leave in two writes; with Nagle on, a keep-alive client's delayed
            # ACK holds a small (gzipped) body back ~40 ms. Measured: benchmarks/overhead.py.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                request = self._ssl_context.wrap_socket(request, server_side=True)
                with self._deadlines_lock:
                    if key in self._deadlines:
                        self._deadlines[key] = (self._deadlines[key][0], request)
            self.finish_request(request, client_address)
        except Exception:
            pass
        finally:
            with self._deadlines_lock:
                self._deadlines.pop(key, None)
                self._open_connections -= 1
            self.shutdown_request(request)

    def renew_deadline(self, connection: socket.socket) -> None:
        """A response went out on ``connection``: its next request gets a full deadline."""
        renewed = time.monotonic() + self._request_timeout
        with self._deadlines_lock:
            for key, (_, sock) in self._deadlines.items():
                if sock is connection:
                    self._deadlines[key] = (renewed, sock)
                    return

    def connections_waiting(self) -> bool:
        """More connections are open than workers: some wait in the queue for a worker."""
        return self._open_connections > self._max_workers

    def _reap(self) -> None:
        tick = min(0.5, self._request_timeout / 4)
        while not self._closed.wait(tick):
            now = time.monotonic()
            with self._deadlines_lock:
                expired = [k for k, (deadline, _) in self._deadlines.items() if deadline <= now]
                sockets = [self._deadlines.pop(k)[1] for k in expired]
            for sock in sockets:
                # socket.socket's own shutdown: on an SSLSocket this cuts the fd under a
                # blocked read without tearing down the SSL object another thread uses.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close_connections(self) -> None:
        """Cut every open connection, idle keep-alive ones included, so the workers end now
        (shutdown must not wait for a client's next scrape or a 10 s request timeout)."""
        with self._deadlines_lock:
            sockets = [sock for _, sock in self._deadlines.values()]
            self._deadlines.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def server_close(self) -> None:
        super().server_close()
        if not hasattr(self, "_pool"):
            return  # the bind failed inside HTTPServer.__init__, before the pool and reaper
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


MAX_HEADER_LINE_BYTES = 65536
MAX_HEADERS = 100


class RequestHeaders(dict[str, str]):
    """Request headers by lower-cased name (a repeated header keeps its last value)."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


def read_request_headers(rfile: Any) -> RequestHeaders | str:
    """Header lines up to the blank line, or the reason they are unacceptable.

    What a scrape needs, without the e-mail parser ``http.server`` uses: that parser costs
    about half of a keep-alive scrape's CPU (benchmarks/overhead.py), and the exporter reads
    only a handful of plain headers.
    """
    headers = RequestHeaders()
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_HEADER_LINE_BYTES + 1)
        if len(line) > MAX_HEADER_LINE_BYTES:
            return "header line too long"
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, sep, value = line.decode("iso-8859-1").partition(":")
        if not sep or not name or name != name.strip():
            return "malformed header line"
        headers[name.lower()] = value.strip()
    return f"more than {MAX_HEADERS} headers"


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value (RFC 9110 §12.5.3) accepts gzip: listed as
    ``gzip`` or ``x-gzip`` (or ``*``) with a q-value above 0. ``gzip;q=0`` refuses it."""
    accepted: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if not coding:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        accepted[coding.lower()] = quality
    for coding in ("gzip", "x-gzip"):
        if coding in accepted:
            return accepted[coding] > 0
    return accepted.get("*", 0.0) > 0


def response_head(
    status: int, content_type: str, length: int, extra: dict[str, str], *, close: bool
) -> bytes:
    """An HTTP/1.1 response's status line and headers, as ``http.server`` writes them
    (``Server``, ``Date``, then the given ones), ending in the blank line."""
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Server: rooftop",
        f"Date: {_http_date()}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "strict")


_DATE: list[tuple[int, str]] = [(0, "")]


def _http_date() -> str:
    """The ``Date`` header's value for this second (formatted once a second, not per scrape)."""
    now = int(time.time())
    second, text = _DATE[0]
    if second != now:
        text = email.utils.formatdate(now, usegmt=True)
        _DATE[0] = (now, text)
    return text


def make_handler(
    cache: ExpositionCache,
    latest: Callable[[], Snapshot | None],
    web_config: WebConfig | None,
    landing: Callable[[], str] | None = None,
    health: Callable[[], str | None] | None = None,
) -> type[BaseHTTPRequestHandler]:
    """``landing`` renders the page at ``/`` (default: the latest snapshot, with no history);
    ``health`` says why ``/healthz`` must answer 503 (e.g. a stale snapshot), or ``None``."""
    auth = web_config.basic_auth if web_config is not None else None
    page_text = landing or (lambda: landing_page(latest()))

    class Handler(BaseHTTPRequestHandler):
        server_version = "rooftop"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def parse_request(self) -> bool:
            """The request line as ``http.server`` checks it, the headers read by
            :func:`read_request_headers`; only GET and HEAD are served."""
            self.command = ""
            # Errors before the version is known still get a status line (no HTTP/0.9 replies).
            self.request_version = version = "HTTP/1.0"
            self.close_connection = True
            raw: bytes = self.raw_requestline  # type: ignore[attr-defined]  # set by http.server
            self.requestline = str(raw, "iso-8859-1").rstrip("\r\n")
            words = self.requestline.split()
            if len(words) != 3 or not words[2].startswith("HTTP/1."):
                self.send_error(HTTPStatus.BAD_REQUEST, "Bad request line")
                return False
            self.command, self.path, version = words
            self.request_version = version
            if version not in ("HTTP/1.0", "HTTP/1.1"):
                self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "Use HTTP/1.1")
                return False
            if self.path.startswith("//"):
                self.path = "/" + self.path.lstrip("/")  # never an absolute-URI look-alike
            headers = read_request_headers(self.rfile)
            if isinstance(headers, str):
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, headers)
                return False
            self.headers = headers  # type: ignore[assignment]
            connection = headers.get("Connection", "").lower()
            self.close_connection = connection == "close" or (
                version == "HTTP/1.0" and connection != "keep-alive"
            )
            if headers.get("Transfer-Encoding") or headers.get("Content-Length", "0") != "0":
                # GET and HEAD take no body; one sent anyway would be read as the next
                # request. Answer this request once, then close the connection.
                self.close_connection = True
            return True

        def do_GET(self) -> None:
            if auth is not None and not auth.check(self.headers.get("Authorization")):
                self._send(
                    401,
                    b"Unauthorized\n",
                    "text/plain; charset=utf-8",
                    {"WWW-Authenticate": 'Basic realm="rooftop"'},
                )
                return
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                headers: dict[str, str] = {}
                gzipped = accepts_gzip(self.headers.get("Accept-Encoding", ""))
                body = cache.body(gzipped=gzipped)
                if gzipped:
                    headers["Content-Encoding"] = "gzip"
                self._send(200, body, CONTENT_TYPE_LATEST, headers)
            elif path == "/healthz":
                problem = health() if health is not None else None
                if problem is None:
                    self._send(200, b"ok\n", "text/plain; charset=utf-8")
                else:
                    body = f"unhealthy: {problem}\n".encode()
                    self._send(503, body, "text/plain; charset=utf-8")
            elif path == "/":
                page = page_text().encode()
                self._send(200, page, "text/html; charset=utf-8", {"Cache-Control": "no-store"})
            else:
                self._send(404, b"Not found. Try /metrics\n", "text/plain; charset=utf-8")

        def do_HEAD(self) -> None:
            self.do_GET()

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str,
            extra: dict[str, str] | None = None,
        ) -> None:
            """The status line, headers and body in one write: each socket call lets the GIL
            go and waits for it again behind the sampler and the other scrapes, so a burst of
            scrapes queues on every call (see :func:`response_head`)."""
            if not self.close_connection and (
                isinstance(self.server, ExporterHTTPServer) and self.server.connections_waiting()
            ):
                # A keep-alive connection holds its worker between requests; close it so a
                # queued client gets the worker (50 scrapers on 16 workers starved 34 of them).
                self.close_connection = True
            head = response_head(
                status, content_type, len(body), extra or {}, close=self.close_connection
            )
            self.wfile.write(head if self.command == "HEAD" else head + body)
            if isinstance(self.server, ExporterHTTPServer):
                self.server.renew_deadline(self.connection)

        def log_message(self, format: str, *args: Any) -> None:
            return  # access logs would be one line per scrape; the exporter stays quiet

    return Handler


def serve_in_thread(server: ExporterHTTPServer) -> threading.Thread:
    # A short poll interval: shutdown() returns within 0.1 s, not serve_forever's default 0.5 s.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
    )
    thread.start()
    return thread
