"""The HTTP face over loopback: /metrics, /healthz, landing page, auth and TLS with real clients."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import http.client
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from rooftop.classifiers.verdict import Verdict
from rooftop.exporter.collector import ExpositionCache
from rooftop.exporter.server import (
    CONTENT_TYPE_LATEST,
    ExporterHTTPServer,
    make_handler,
    serve_in_thread,
)
from rooftop.exporter.snapshot import Snapshot
from rooftop.exporter.web.landing import landing_page
from rooftop.exporter.webconfig import WebConfig, load_web_config
from tests.conftest import make_self_signed
from tests.serving.test_collector import golden_snapshot

PASSWORD = "correct horse battery staple"


def start_server(
    snapshot: Snapshot | None, web_config: WebConfig | None = None
) -> ExporterHTTPServer:
    cache = ExpositionCache(lambda: snapshot, lambda: 1_700_000_101.0)
    handler = make_handler(cache, lambda: snapshot, web_config)
    ssl_context = web_config.ssl_context() if web_config is not None else None
    server = ExporterHTTPServer(("127.0.0.1", 0), handler, 4, ssl_context)
    serve_in_thread(server)
    return server


@pytest.fixture
def server() -> Iterator[ExporterHTTPServer]:
    running = start_server(golden_snapshot())
    yield running
    running.shutdown()
    running.server_close()


def url(server: ExporterHTTPServer, path: str, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}{path}"


def request(
    server: ExporterHTTPServer,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_metrics(server: ExporterHTTPServer) -> None:
    status, headers, body = request(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert int(headers["Content-Length"]) == len(body)
    text = body.decode()
    assert 'rooftop_gpu_bound{engine="vllm-0",gpu="0"' in text
    assert "rooftop_snapshot_age_seconds 1.0\n" in text
    assert "Content-Encoding" not in headers


def test_metrics_gzip(server: ExporterHTTPServer) -> None:
    status, headers, body = request(server, "/metrics", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert b"rooftop_build_info" in gzip.decompress(body)


def test_gzip_body_decodes_to_the_plain_body(server: ExporterHTTPServer) -> None:
    """The cached gzip member plus the live age member decode to exactly the plain body."""
    _, _, plain = request(server, "/metrics")
    _, _, packed = request(server, "/metrics", headers={"Accept-Encoding": "gzip"})
    unpacked = gzip.decompress(packed)
    assert unpacked.endswith(b"rooftop_snapshot_age_seconds 1.0\n")
    # Only the process metrics (read at render time, the same render for both) could differ.
    assert unpacked == plain


def test_each_response_leaves_in_one_write(
    server: ExporterHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status line, headers and body handed to the socket as one buffer: each write lets the
    GIL go and waits for it again, behind the sampler and every other scrape of a burst."""
    writes: list[bytes] = []
    respond = ExporterHTTPServer._respond

    def counted(self: ExporterHTTPServer, connection: Any, response: bytes, close: bool) -> None:
        writes.append(bytes(response))
        respond(self, connection, response, close)

    monkeypatch.setattr(ExporterHTTPServer, "_respond", counted)
    for path, headers, method in (
        ("/metrics", {}, "GET"),
        ("/metrics", {"Accept-Encoding": "gzip"}, "GET"),
        ("/healthz", {}, "GET"),
        ("/nowhere", {}, "GET"),
        ("/metrics", {}, "HEAD"),
    ):
        writes.clear()
        status, got, body = request(server, path, method, headers)
        assert len(writes) == 1, f"{method} {path}: {len(writes)} writes"
        head, _, sent = writes[0].partition(b"\r\n\r\n")
        assert sent == body
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith(f"HTTP/1.1 {status} ")
        assert lines[1:3] == ["Server: rooftop", f"Date: {got['Date']}"]
        if method == "GET":
            assert int(got["Content-Length"]) == len(body) > 0


@pytest.mark.parametrize("size", [0, 1, 117, 65_535])
def test_the_age_member_is_a_gzip_member_any_reader_decodes(size: int) -> None:
    """The age line's gzip member (a stored deflate block, made without zlib's compressor)
    decodes alone and after a compressed member, with gzip and with zlib's streaming reader."""
    import random
    import zlib

    from rooftop.exporter.collector import stored_gzip_member

    data = random.Random(size).randbytes(size)
    member = stored_gzip_member(data)
    assert gzip.decompress(member) == data
    assert gzip.decompress(gzip.compress(b"body\n", compresslevel=1) + member) == b"body\n" + data
    reader = zlib.decompressobj(wbits=31)
    assert reader.decompress(member) == data and reader.eof and not reader.unused_data
    with pytest.raises(ValueError):
        stored_gzip_member(bytes(65_536))


def test_keep_alive_outlives_the_request_deadline() -> None:
    """The deadline bounds each request, not a keep-alive connection's whole life."""
    snapshot = golden_snapshot()
    cache = ExpositionCache(lambda: snapshot, lambda: 1_700_000_101.0)
    server = ExporterHTTPServer(
        ("127.0.0.1", 0),
        make_handler(cache, lambda: snapshot, None),
        2,
        request_timeout_seconds=0.6,
    )
    serve_in_thread(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    try:
        for _ in range(8):  # 8 x 0.2 s: well past one 0.6 s deadline
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            assert response.status == 200 and b"rooftop_build_info" in response.read()
            time.sleep(0.2)
    finally:
        connection.close()
        server.shutdown()
        server.server_close()


def test_metrics_with_query_string(server: ExporterHTTPServer) -> None:
    status, _, body = request(server, "/metrics?name[]=rooftop_gpu_up")
    assert status == 200 and b"rooftop_gpu_up" in body


def test_healthz(server: ExporterHTTPServer) -> None:
    assert request(server, "/healthz")[::2] == (200, b"ok\n")


def test_not_found(server: ExporterHTTPServer) -> None:
    status, _, body = request(server, "/metric")
    assert status == 404 and b"/metrics" in body


def test_head_has_headers_and_no_body(server: ExporterHTTPServer) -> None:
    status, headers, body = request(server, "/metrics", method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) > 1000


def test_landing_page_lists_targets(server: ExporterHTTPServer) -> None:
    status, headers, body = request(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store"
    page = body.decode()
    assert 'data-engine="vllm-0"' in page and 'data-state="memory"' in page
    assert '<div class="stat" title="decode tokens/s over' in page and "<b>68%</b>" in page
    assert page.count('<svg class="roofline"') == 1
    assert page.count('class="card target"') == 2 and "GPU down" in page  # the lost GPU too
    assert "<script src" not in page and "<link" not in page and "@import" not in page


def test_landing_hook_renders_the_page() -> None:
    snapshot = golden_snapshot()
    cache = ExpositionCache(lambda: snapshot, lambda: 1_700_000_101.0)
    handler = make_handler(cache, lambda: snapshot, None, landing=lambda: "<p>hooked</p>")
    running = ExporterHTTPServer(("127.0.0.1", 0), handler, 2)
    serve_in_thread(running)
    try:
        assert request(running, "/")[2] == b"<p>hooked</p>"
    finally:
        running.shutdown()
        running.server_close()


def test_landing_page_escapes_html() -> None:
    snapshot = golden_snapshot()
    hostile = dataclasses.replace(
        snapshot.targets[0],
        engine="<script>alert(1)</script>",
        model='"><img src=x onerror=alert(2)>',
        verdict=Verdict(state="latency", evidence="gpm", reason="latency: a < b & c > d"),
    )
    page = landing_page(dataclasses.replace(snapshot, targets=(hostile,), demo=True))
    assert page.count("<script>") == 1 and "<script>alert" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "latency: a &lt; b &amp; c &gt; d" in page
    assert "demo node" in page


def test_landing_page_before_first_sample() -> None:
    running = start_server(None)
    try:
        assert b"waiting for the first sample" in request(running, "/")[2]
        status, _, body = request(running, "/metrics")
        assert status == 200 and b"rooftop_gpu_up" not in body
    finally:
        running.shutdown()
        running.server_close()


def test_keep_alive_serves_several_requests_on_one_connection(server: ExporterHTTPServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        for _ in range(3):
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert response.status == 200 and response.read() == b"ok\n"
    finally:
        connection.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[ExporterHTTPServer]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    running = start_server(golden_snapshot(), load_web_config(config))
    yield running
    running.shutdown()
    running.server_close()


@pytest.mark.parametrize("path", ["/metrics", "/", "/healthz", "/nothing"])
def test_basic_auth_required_everywhere(auth_server: ExporterHTTPServer, path: str) -> None:
    status, headers, _ = request(auth_server, path)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="rooftop"'


@pytest.mark.parametrize(
    "authorization",
    [
        _basic("prometheus", "wrong"),
        _basic("someone", PASSWORD),
        "Bearer abc",
        "Basic not-base64!",
    ],
)
def test_basic_auth_rejects(auth_server: ExporterHTTPServer, authorization: str) -> None:
    assert request(auth_server, "/metrics", headers={"Authorization": authorization})[0] == 401


def test_basic_auth_accepts_with_a_real_client(auth_server: ExporterHTTPServer) -> None:
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, url(auth_server, "/"), "prometheus", PASSWORD)
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(manager))
    with opener.open(url(auth_server, "/metrics"), timeout=10) as response:
        assert response.status == 200
        assert b"rooftop_build_info" in response.read()
    # And twice more, the second from the verified-password cache.
    for _ in range(2):
        status, _, _ = request(
            auth_server, "/metrics", headers={"Authorization": _basic("prometheus", PASSWORD)}
        )
        assert status == 200


def test_tls_with_basic_auth_scraped_by_a_verifying_client(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    running = start_server(golden_snapshot(), load_web_config(config))
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        metrics = urllib.request.Request(
            url(running, "/metrics", "https"),
            headers={"Authorization": _basic("prometheus", PASSWORD)},
        )
        with urllib.request.urlopen(metrics, context=trusting, timeout=10) as response:
            assert response.status == 200
            assert b"rooftop_gpu_bound_info" in response.read()
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url(running, "/metrics", "https"), context=trusting, timeout=10)
        assert denied.value.code == 401
        # A client that does not trust the certificate refuses the connection.
        with pytest.raises(urllib.error.URLError) as refused:
            urllib.request.urlopen(
                url(running, "/healthz", "https"), context=ssl.create_default_context(), timeout=10
            )
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
        # Plain HTTP to the TLS port gets no answer, and the server keeps serving.
        with pytest.raises((http.client.HTTPException, OSError)):
            request(running, "/healthz")
        with urllib.request.urlopen(metrics, context=trusting, timeout=10) as response:
            assert response.status == 200
    finally:
        running.shutdown()
        running.server_close()


def raw_exchange(server: ExporterHTTPServer, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes or 2 s pass."""
    import socket

    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=2) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"200"),
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /healthz\r\n\r\n", b"400"),  # HTTP/0.9 is not served
        (b"GET /healthz HTTP/2.0\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/1.7\r\n\r\n", b"505"),
        (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", b"431"),
        (b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", b"431"),
        (b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
    ],
)
def test_request_parsing(server: ExporterHTTPServer, request_bytes: bytes, status: bytes) -> None:
    response = raw_exchange(server, request_bytes)
    assert response.split(b" ", 2)[1] == status, response[:200]


def test_http_1_0_closes_unless_keep_alive(server: ExporterHTTPServer) -> None:
    closed = raw_exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert closed.startswith(b"HTTP/1.1 200") and closed.endswith(b"ok\n")
    # Keep-alive asked for: the connection stays open after the response (recv times out).
    kept = raw_exchange(server, b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert kept.startswith(b"HTTP/1.1 200")


def test_header_names_are_case_insensitive(server: ExporterHTTPServer) -> None:
    response = raw_exchange(
        server,
        b"GET /metrics HTTP/1.1\r\naccept-ENCODING: gzip\r\nconnection: CLOSE\r\n\r\n",
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head
    assert b"rooftop_build_info" in gzip.decompress(body)
