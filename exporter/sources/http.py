"""One HTTP GET for every source that reads a URL: engines, dcgm-exporter, the Kubernetes API.

The exchange is bounded as a whole: ``timeout_seconds`` covers connect, headers and body (the
deadline is checked between reads of at most 64 KiB), and the body is capped at ``max_bytes``.
Redirects are never followed (a redirect is an error naming the target to configure), proxy
environment variables are ignored, and ``user:password@`` in a URL is sent as basic auth, never
as part of the host. URLs are validated once, where they are configured
(:func:`check_http_url`, called by the settings model); here a bad URL is a fetch error.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Final, Literal

CHUNK_BYTES: Final = 64 * 1024
TEXT_ACCEPT: Final = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"
"""The Prometheus text format first (what engines and dcgm-exporter serve)."""
ERROR_BODY_BYTES: Final = 64 * 1024
"""How much of an HTTP error's body is kept for the message (Kubernetes ``Status``)."""


FetchProblem = Literal["connect", "status", "oversized", "deadline", "other"]


class FetchError(Exception):
    """The GET failed: refused, DNS, TLS, timeout, HTTP status, truncated, oversized, not text.

    ``problem`` says which, for callers that word it their own way; ``status`` is the HTTP
    status of an error answer (its first :data:`ERROR_BODY_BYTES` in ``error_body``);
    ``reason`` the underlying exception, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        problem: FetchProblem = "other",
        status: int | None = None,
        error_body: bytes = b"",
        reason: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.problem: FetchProblem = problem
        self.status = status
        self.error_body = error_body
        self.reason = reason
        self.retry_after_seconds: float | None = None
        """An error answer's ``Retry-After`` in seconds (429, 503), when it gave one."""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)


Fetch = Callable[[str, float, int], str]
"""``(url, timeout_seconds, max_bytes) -> text``: :func:`fetch_text` or a test fake."""


def check_http_url(url: str) -> str:
    """``url`` if it is an ``http://`` or ``https://`` URL with a host; else ValueError."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL such as http://127.0.0.1:8000/metrics")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{url!r}: the port must be a number from 1 to 65535")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> urllib.request.Request | None:
        raise FetchError(
            f"{req.full_url} redirects (HTTP {code}) to {newurl}; configure that URL instead"
        )


class _Deadline:
    """One exchange's deadline over its socket: at ``deadline`` (monotonic) the socket is shut
    down, which ends any blocked connect, header or body read at once. A socket timeout bounds
    each recv only: headers trickled one line per 0.5 s kept a 2 s poll stuck for ever.
    Every deadline is kept by the one :data:`_WATCHDOG` thread (a timer thread per exchange
    cost about 0.35 ms of CPU per poll)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.disarmed = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._armed = False

    def arm(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            armed, self._armed = self._armed, True
        if not armed:
            _WATCHDOG.watch(self)

    def expire(self) -> None:
        with self._lock:
            if self.disarmed:
                return
            self.expired = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def disarm(self) -> None:
        with self._lock:
            self.disarmed = True


class _Watchdog:
    """The thread that expires exchanges' deadlines, soonest first. A disarmed deadline stays
    queued until its time (at most a timeout's worth of exchanges) and is then dropped."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: _Deadline) -> None:
        with self._changed:
            heapq.heappush(self._queue, (deadline.deadline, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="http-deadlines", daemon=True
                )
                self._thread.start()
            elif self._queue[0][2] is deadline:
                self._changed.notify()  # sooner than the one it sleeps for

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    while self._queue and self._queue[0][2].disarmed:
                        heapq.heappop(self._queue)
                    if not self._queue:
                        self._changed.wait()
                        continue
                    due = self._queue[0][0] - time.monotonic()
                    if due <= 0:
                        break
                    self._changed.wait(due)
                _, _, expiring = heapq.heappop(self._queue)
            expiring.expire()


_WATCHDOG: Final = _Watchdog()


_CURRENT = threading.local()
"""Per thread: the deadline of the exchange it is running (read by the connection classes),
and the :func:`on_headers` callback."""


@contextmanager
def on_headers(callback: Callable[[], None]) -> Iterator[None]:
    """Within the block, each exchange this thread makes calls ``callback`` once its status
    line and headers are in (a 2xx answer), before its body is read: an engine poll times its
    answer there (the engine rendered its counters before answering) and waits there for a
    body slot. A fetch that is not HTTP (a test's fake, a replayed recording) never calls it."""
    previous = getattr(_CURRENT, "on_headers", None)
    _CURRENT.on_headers = callback
    try:
        yield
    finally:
        _CURRENT.on_headers = previous


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        deadline: _Deadline | None = getattr(_CURRENT, "deadline", None)
        if deadline is not None and self.sock is not None:
            deadline.arm(self.sock)


class _DeadlineHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        # Arm on the plain socket before the TLS handshake, so the handshake is covered too.
        http.client.HTTPConnection.connect(self)
        deadline: _Deadline | None = getattr(_CURRENT, "deadline", None)
        if deadline is not None and self.sock is not None:
            deadline.arm(self.sock)
        server_hostname = self.host if ssl.HAS_SNI else None
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=server_hostname
        )


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_DeadlineHTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__(context=context)
        self._ssl_context = context or ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_DeadlineHTTPSConnection, req, context=self._ssl_context)


def _build_opener(ssl_context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """http and https only: no proxy handler (proxy variables are ignored), no file, ftp or
    data handler (a ``file://`` URL cannot be read even if one got here), no redirects."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        _HTTPHandler(),
        _HTTPSHandler(ssl_context),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        _NoRedirect(),
    ):
        opener.add_handler(handler)
    return opener


_OPENER: Final = _build_opener(None)


def _opener(ssl_context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    return _OPENER if ssl_context is None else _build_opener(ssl_context)


def _without_userinfo(url: str, headers: dict[str, str]) -> str:
    """Move ``user:password@`` from the URL into an ``Authorization: Basic`` header."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url
    credentials = f"{urllib.parse.unquote(parts.username)}:"
    credentials += urllib.parse.unquote(parts.password or "")
    headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def fetch_bytes(
    url: str,
    timeout_seconds: float,
    max_bytes: int,
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """GET ``url`` and return at most ``max_bytes`` of body, within ``timeout_seconds`` in all.

    Raises :class:`FetchError` naming the cause.
    """
    deadline = time.monotonic() + timeout_seconds
    sent = {"Accept": TEXT_ACCEPT, "User-Agent": "rooftop", **(headers or {})}
    url = _without_userinfo(url, sent)
    request = urllib.request.Request(url, headers=sent)
    watchdog = _Deadline(deadline)
    _CURRENT.deadline = watchdog
    try:
        body = _exchange(url, request, timeout_seconds, max_bytes, deadline, ssl_context)
        if watchdog.expired:  # the cut may read as a clean end of a body with no length
            raise FetchError(
                f"{url}: no complete answer within {timeout_seconds} s", problem="deadline"
            )
        return body
    except FetchError as err:
        if watchdog.expired and err.problem != "deadline":
            raise FetchError(
                f"{url}: no complete answer within {timeout_seconds} s (headers included)",
                problem="deadline",
                reason=err.reason,
            ) from None
        raise
    finally:
        _CURRENT.deadline = None
        watchdog.disarm()


def _exchange(
    url: str,
    request: urllib.request.Request,
    timeout_seconds: float,
    max_bytes: int,
    deadline: float,
    ssl_context: ssl.SSLContext | None,
) -> bytes:
    try:
        with _opener(ssl_context).open(request, timeout=timeout_seconds) as response:
            headers_in: Callable[[], None] | None = getattr(_CURRENT, "on_headers", None)
            if headers_in is not None:
                headers_in()
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    raise FetchError(
                        f"{url}: body not complete within {timeout_seconds} s",
                        problem="deadline",
                    )
                # read1: at most one recv, so the deadline is checked between chunks.
                chunk = response.read1(min(CHUNK_BYTES, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url}: body over {max_bytes} bytes", problem="oversized")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and size < int(declared):
                raise FetchError(f"{url}: response truncated after {size} of {declared} bytes")
            return b"".join(chunks)
    except FetchError:
        raise
    except urllib.error.HTTPError as err:
        try:
            body = err.read(ERROR_BODY_BYTES)
        except (OSError, http.client.HTTPException):
            body = b""
        failure = FetchError(
            f"{url}: HTTP {err.code} {err.reason}",
            problem="status",
            status=err.code,
            error_body=body,
        )
        failure.retry_after_seconds = retry_after_seconds(err.headers.get("Retry-After"))
        raise failure from None
    except urllib.error.URLError as err:
        if str(err.reason).startswith("unknown url type"):
            raise FetchError(f"{url}: not an http:// or https:// URL") from None
        raise FetchError(
            f"{url}: {describe(err.reason)}",
            problem="connect",
            reason=_as_exception(err.reason),
        ) from None
    except http.client.IncompleteRead as err:
        raise FetchError(f"{url}: response truncated after {len(err.partial)} bytes") from None
    except TimeoutError as err:
        raise FetchError(
            f"{url}: no answer within {timeout_seconds} s", problem="deadline", reason=err
        ) from None
    except (http.client.HTTPException, OSError, ValueError) as err:
        raise FetchError(f"{url}: {describe(err)}", reason=err) from None


def _as_exception(reason: object) -> BaseException | None:
    return reason if isinstance(reason, BaseException) else None


def describe(reason: object) -> str:
    """A short, actionable description of a network failure."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the engine running, and on this port?)"
    if isinstance(reason, socket.gaierror):
        return f"host name does not resolve ({reason.strerror or reason})"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, http.client.IncompleteRead):
        return f"response truncated after {len(reason.partial)} bytes"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(reason, ConnectionResetError):
        return "connection reset by the server"
    text = str(reason) or type(reason).__name__
    return text if len(text) <= 160 else text[:157] + "..."


GZIP_MAGIC: Final = b"\x1f\x8b"


def gunzip_capped(url: str, body: bytes, max_bytes: int) -> bytes:
    """Decode a gzip body (one rooftop did not ask for: it sends no ``Accept-Encoding``),
    with the body cap applied to the *decoded* size (a small gzip bomb stays bounded)."""
    decoder = zlib.decompressobj(wbits=31)
    try:
        out = decoder.decompress(body, max_bytes + 1)
    except zlib.error as err:
        raise FetchError(f"{url}: body is gzip-compressed but does not decode ({err})") from None
    if len(out) > max_bytes:
        raise FetchError(f"{url}: gzip body decodes to over {max_bytes} bytes", problem="oversized")
    return out


def fetch_text(url: str, timeout_seconds: float, max_bytes: int) -> str:
    """GET ``url`` and return its body as UTF-8 text (see :func:`fetch_bytes` for the limits).

    A gzip body (a proxy or engine that compresses unasked) is decoded under the same cap."""
    body = fetch_bytes(url, timeout_seconds, max_bytes)
    if body[:2] == GZIP_MAGIC:
        body = gunzip_capped(url, body, max_bytes)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError(f"{url}: body is not UTF-8 text (binary data?)") from None
