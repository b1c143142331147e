"""The HTTP face: ``/metrics``, ``/healthz`` and the landing page (:mod:`rooftop.exporter.web`).

Handlers only read the latest snapshot (through the exposition cache); nothing here calls a
device or an engine, so a hung GPU or engine can never hang a scrape. The transport is
:mod:`rooftop.exporter.http_loop`: one loop thread answers ``/metrics`` and ``/healthz`` from
memory, a bounded pool of workers the rest, each request with a deadline.
"""

from __future__ import annotations

import email.utils
import io
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from rooftop.exporter.collector import ExpositionCache
from rooftop.exporter.http_loop import REQUEST_TIMEOUT_SECONDS, ExporterHTTPServer
from rooftop.exporter.snapshot import Snapshot
from rooftop.exporter.web.landing import landing_page
from rooftop.exporter.webconfig import WebConfig

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REQUEST_TIMEOUT_SECONDS",
    "ExporterHTTPServer",
    "make_handler",
    "serve_in_thread",
]

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"
ANSWERED_FROM_MEMORY = ("/metrics", "/healthz")
"""Paths the serving loop answers itself: their bodies are rendered already."""


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

        @staticmethod
        def answers_at_once(head: bytes) -> bool:
            """Whether the serving loop may answer this request head in its own thread: a
            path in :data:`ANSWERED_FROM_MEMORY`, with no password to check or one checked
            already. Anything else (the landing page's render, bcrypt) goes to a worker."""
            request_line, _, rest = head.partition(b"\n")
            words = request_line.split()
            if len(words) != 3 or words[1].split(b"?", 1)[0].decode("latin-1") not in (
                ANSWERED_FROM_MEMORY
            ):
                return False
            if auth is None:
                return True
            headers = read_request_headers(io.BytesIO(rest))
            return isinstance(headers, RequestHeaders) and auth.checked_already(
                headers.get("Authorization")
            )

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
                # At the connection limit: close this keep-alive connection after its response
                # so that a client waiting in the backlog gets its turn.
                self.close_connection = True
            head = response_head(
                status, content_type, len(body), extra or {}, close=self.close_connection
            )
            self.wfile.write(head if self.command == "HEAD" else head + body)

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
