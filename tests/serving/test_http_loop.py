"""The serving loop (``rooftop.exporter.http_loop``) over loopback: what one thread answering
every connection must still get right (pipelining, half-closed clients, slow pages and password
checks off the loop, the head and connection limits, a failing handler)."""

from __future__ import annotations

import base64
import errno
import http.client
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from rooftop.exporter.collector import ExpositionCache
from rooftop.exporter.http_loop import MAX_REQUEST_HEAD_BYTES, request_head_end
from rooftop.exporter.server import ExporterHTTPServer, make_handler, serve_in_thread
from rooftop.exporter.webconfig import BasicAuth, WebConfig, load_web_config
from tests.conftest import make_self_signed
from tests.serving.test_collector import golden_snapshot


def _start(**options: Any) -> ExporterHTTPServer:
    snapshot = golden_snapshot()
    cache = ExpositionCache(lambda: snapshot, lambda: 1_700_000_101.0)
    web_config = options.pop("web_config", None)
    handler = make_handler(cache, lambda: snapshot, web_config, options.pop("landing", None))
    ssl_context = web_config.ssl_context() if web_config is not None else None
    server = ExporterHTTPServer(
        ("127.0.0.1", 0), handler, options.pop("workers", 2), ssl_context, **options
    )
    serve_in_thread(server)
    return server


@pytest.fixture
def server() -> Iterator[ExporterHTTPServer]:
    running = _start()
    yield running
    running.shutdown()
    running.server_close()


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _get(server: ExporterHTTPServer, path: str, headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"", -1),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", -1),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", 27),
        (b"GET / HTTP/1.1\nHost: x\n\n", 24),
        (b"GET / HTTP/1.1\r\n\r\n", 18),
    ],
)
def test_request_head_end(data: bytes, end: int) -> None:
    assert request_head_end(data) == end


def test_pipelined_requests_are_answered_in_order(server: ExporterHTTPServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = _read_all(sock)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) == [b"200", b"404", b"200"]


def test_a_client_that_shuts_its_side_after_the_request_is_answered(
    server: ExporterHTTPServer,
) -> None:
    """What ``printf 'GET /metrics ...' | nc`` does: the request, then end of input."""
    with socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"rooftop_build_info" in answer


def test_a_slow_landing_page_does_not_hold_the_scrapes() -> None:
    """The landing page renders on a worker: /metrics is answered while it renders."""
    rendering, release = threading.Event(), threading.Event()

    def slow_page() -> str:
        rendering.set()
        release.wait(10)
        return "<html>page</html>"

    running = _start(landing=slow_page)
    try:
        page: list[int] = []
        fetch = threading.Thread(target=lambda: page.append(_get(running, "/")))
        fetch.start()
        assert rendering.wait(5)
        started = time.monotonic()
        assert _get(running, "/metrics") == 200
        assert _get(running, "/healthz") == 200
        assert time.monotonic() - started < 2.0
        assert not page, "the page came back before it was released"
        release.set()
        fetch.join(10)
        assert page == [200]
    finally:
        release.set()
        running.shutdown()
        running.server_close()


def test_a_first_password_check_runs_off_the_loop() -> None:
    """bcrypt runs on a worker the first time, and only then: a scrape with another user's
    checked password is answered meanwhile."""
    slow_hash = bcrypt.hashpw(b"slow", bcrypt.gensalt(rounds=14))  # about a second of bcrypt
    fast_hash = bcrypt.hashpw(b"fast", bcrypt.gensalt(rounds=4))
    auth = BasicAuth({"slow": slow_hash, "fast": fast_hash})
    running = _start(web_config=WebConfig(tls=None, basic_auth=auth))

    def header(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    try:
        assert _get(running, "/metrics", header("fast", "fast")) == 200  # checked once
        assert auth.checked_already(header("fast", "fast")["Authorization"])
        assert not auth.checked_already(header("slow", "slow")["Authorization"])
        slow: list[float] = []

        def slow_scrape() -> None:
            started = time.monotonic()
            assert _get(running, "/metrics", header("slow", "slow")) == 200
            slow.append(time.monotonic() - started)

        thread = threading.Thread(target=slow_scrape)
        thread.start()
        time.sleep(0.05)
        started = time.monotonic()
        for _ in range(5):
            assert _get(running, "/metrics", header("fast", "fast")) == 200
        fast_seconds = time.monotonic() - started
        thread.join(30)
        assert slow and fast_seconds < slow[0], (fast_seconds, slow)
    finally:
        running.shutdown()
        running.server_close()


def test_an_unfinished_head_over_the_limit_gets_431(server: ExporterHTTPServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Many: header\r\n" * 9000)
        assert MAX_REQUEST_HEAD_BYTES < 16 * 9000
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head


def test_connections_over_the_limit_wait_and_then_get_their_turn() -> None:
    """At the limit new clients wait in the backlog; the idle connections' deadline frees
    their places, and a keep-alive connection is closed after its response meanwhile."""
    running = _start(max_connections=3, request_timeout_seconds=0.8)
    port = running.server_address[1]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        started = time.monotonic()
        assert _get(running, "/healthz") == 200
        waited = time.monotonic() - started
        assert 0.4 < waited < 3.0, f"the fourth connection waited {waited:.2f} s"
        for sock in idle:
            assert _read_all(sock) == b""  # cut at its deadline
    finally:
        for sock in idle:
            sock.close()
        running.shutdown()
        running.server_close()


def test_keep_alive_is_closed_after_the_response_at_the_limit() -> None:
    running = _start(max_connections=2)
    port = running.server_address[1]
    try:
        with socket.create_connection(("127.0.0.1", port)) as other:
            time.sleep(0.1)
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = _read_all(sock)  # ends: the server closed after the response
            assert b"Connection: close" in answer and answer.startswith(b"HTTP/1.1 200 ")
            other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_all(other).startswith(b"HTTP/1.1 200 ")
    finally:
        running.shutdown()
        running.server_close()


def test_a_handler_that_raises_closes_that_connection_only() -> None:
    def failing_page() -> str:
        raise RuntimeError("landing page bug")

    running = _start(landing=failing_page)
    try:
        with socket.create_connection(("127.0.0.1", running.server_address[1])) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_all(sock) == b""
        assert _get(running, "/metrics") == 200
    finally:
        running.shutdown()
        running.server_close()


def test_close_connections_ends_idle_keep_alive_connections(server: ExporterHTTPServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    connection.request("GET", "/healthz")
    connection.getresponse().read()
    server.close_connections()
    assert _read_all(connection.sock) == b""
    connection.close()
    assert _get(server, "/healthz") == 200  # the server itself still serves


def test_a_large_tls_response_to_a_slow_reader_arrives_whole(tmp_path: Path) -> None:
    """A 12 MB page over TLS (more than the kernel's buffers) to a slow reader: the loop
    writes it in parts, TLS asking to write again, while it answers other scrapes."""
    cert, key = make_self_signed(tmp_path)
    config = tmp_path / "web.yml"
    config.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n")
    page = "<html>" + "x" * 12_000_000 + "</html>"
    running = _start(web_config=load_web_config(config), landing=lambda: page)
    trusting = ssl.create_default_context(cafile=str(cert))
    port = running.server_address[1]
    try:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # a small window: parts
        raw.settimeout(10)
        raw.connect(("127.0.0.1", port))
        with trusting.wrap_socket(raw, server_hostname="127.0.0.1") as slow:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            first = slow.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            keep_alive = http.client.HTTPSConnection("127.0.0.1", port, context=trusting)
            for _ in range(3):  # while the page waits for its reader
                keep_alive.request("GET", "/metrics")
                response = keep_alive.getresponse()
                assert response.status == 200 and b"rooftop_build_info" in response.read()
            keep_alive.close()
            chunks = [first]
            while chunk := slow.recv(65536):
                chunks.append(chunk)
                time.sleep(0.001)
        answer = b"".join(chunks)
        assert answer.endswith(page.encode()) and len(answer) > len(page)
    finally:
        running.shutdown()
        running.server_close()


def test_thousands_of_pipelined_requests_in_one_send(server: ExporterHTTPServer) -> None:
    """Answered one after another in the loop (no recursion per request), in order."""
    count = 3000
    with socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\n\r\n" * count
            + b"GET /nowhere HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        answer = _read_all(sock)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200"] * count + [b"404"]
    assert _get(server, "/healthz") == 200


def test_accept_out_of_descriptors_rests_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    """accept failing with EMFILE: the listening socket rests 0.1 s at a time, one warning is
    logged, and the connection is served once descriptors are back."""

    class _Exhausted:
        def __init__(self, sock: socket.socket, failures: int) -> None:
            self._sock, self.failures = sock, failures

        def accept(self) -> tuple[socket.socket, Any]:
            if self.failures:
                self.failures -= 1
                raise OSError(errno.EMFILE, "Too many open files")
            return self._sock.accept()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._sock, name)

    snapshot = golden_snapshot()
    cache = ExpositionCache(lambda: snapshot, lambda: 1_700_000_101.0)
    running = ExporterHTTPServer(("127.0.0.1", 0), make_handler(cache, lambda: snapshot, None), 2)
    exhausted = _Exhausted(running.socket, failures=3)
    running.socket = exhausted  # type: ignore[assignment]
    serve_in_thread(running)
    try:
        with caplog.at_level(logging.WARNING, logger="rooftop.exporter.http_loop"):
            started = time.monotonic()
            assert _get(running, "/healthz") == 200
            waited = time.monotonic() - started
        assert exhausted.failures == 0 and 0.25 < waited < 3.0, waited
        warnings = [r for r in caplog.records if "cannot accept" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        running.shutdown()
        running.socket = exhausted._sock
        running.server_close()
