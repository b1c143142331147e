"""HTTP details (issue 14, item 6), on rooftop's own server and as a client: a GET with a body
is answered once and the connection closed; ``gzip;q=0`` gets no gzip; a gzip answer rooftop
did not ask for is decoded under the body cap; 429/503 with ``Retry-After`` backs that engine
off. docs/reliability.md lists these tests.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rooftop.exporter.server import ExporterHTTPServer, accepts_gzip
from rooftop.exporter.sources.engine import EngineFetchError, EngineSource
from rooftop.exporter.sources.http import retry_after_seconds
from tests.conftest import FIXTURES
from tests.serving.test_collector import golden_snapshot
from tests.serving.test_server import start_server

VLLM = (FIXTURES / "engines" / "vllm-v1-dynamo-metrics-examples.prom").read_bytes()


@pytest.fixture
def server() -> Iterator[ExporterHTTPServer]:
    running = start_server(golden_snapshot())
    yield running
    running.shutdown()
    running.server_close()


def exchange(server: ExporterHTTPServer, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_get_with_a_body_is_answered_once_and_closed(server: ExporterHTTPServer) -> None:
    smuggled = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(smuggled)).encode()
        + b"\r\n\r\n"
        + smuggled
    )
    answer = exchange(server, raw)  # returns only because the server closes the connection
    assert answer.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close" in answer
    assert b"404" not in answer


@pytest.mark.parametrize(
    ("header", "gzipped"),
    [
        ("gzip", True),
        ("gzip, deflate", True),
        ("GZIP;q=0.5", True),
        ("gzip;q=0, identity", False),
        ("gzip; q=0.000", False),
        ("identity", False),
        ("*", True),
        ("*;q=0", False),
        ("br, x-gzip", True),
        ("", False),
    ],
)
def test_accept_encoding_q_values(header: str, gzipped: bool) -> None:
    assert accepts_gzip(header) is gzipped


def test_gzip_q0_gets_plain_text_from_the_server(server: ExporterHTTPServer) -> None:
    answer = exchange(
        server,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0, identity\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert b"Content-Encoding" not in answer
    assert b"rooftop_build_info" in answer


class Engine:
    """A loopback engine answering with a scripted status, headers and body."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.body = VLLM
        self.requests = 0
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                engine.requests += 1
                self.send_response(engine.status)
                for key, value in engine.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(engine.body)))
                self.end_headers()
                self.wfile.write(engine.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine() -> Iterator[Engine]:
    running = Engine()
    yield running
    running.close()


def test_an_unasked_gzip_answer_is_decoded(engine: Engine) -> None:
    engine.body = gzip.compress(VLLM)
    engine.headers = {"Content-Encoding": "gzip"}
    reading = EngineSource("e", engine.url).poll()
    assert reading.family == "vllm"


def test_a_gzip_answer_is_capped_at_its_decoded_size(engine: Engine) -> None:
    engine.body = gzip.compress(b"# padding\n" * 1_000_000)  # 10 MB from about 10 KB
    engine.headers = {"Content-Encoding": "gzip"}
    with pytest.raises(EngineFetchError, match="gzip body decodes to over 1000000 bytes"):
        EngineSource("e", engine.url, max_body_bytes=1_000_000).poll()


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_backs_that_engine_off(engine: Engine, status: int) -> None:
    engine.status = status
    engine.headers = {"Retry-After": "30"}
    source = EngineSource("e", engine.url)
    with pytest.raises(EngineFetchError, match="backing off 30 s"):
        source.poll()
    engine.status, engine.headers = 200, {}
    for _ in range(3):
        with pytest.raises(EngineFetchError, match="backing off"):
            source.poll()
    assert engine.requests == 1, "no request is sent while backing off"


def test_retry_after_forms() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


# ------------------------------------------------- item 7: one thing reported differently


def test_triton_with_only_core_families_is_identified_and_says_what_is_missing() -> None:
    from rooftop.exporter.sources.engines import detect_engine
    from rooftop.exporter.sources.exposition import parse_exposition

    text = (FIXTURES / "engines" / "triton-core-trtllm-issue49.prom").read_text()
    families = parse_exposition(text)
    adapter, because = detect_engine(families)
    reading = adapter.extract(families, {})
    assert (adapter.family, reading.version_family) == ("trtllm", "triton-core")
    assert "nv_inference_request_success" in because
    hints = dict(entry.split(": ", 1) for entry in reading.missing if ": " in entry)
    assert "inflight-batcher" in hints["requests_running"]
