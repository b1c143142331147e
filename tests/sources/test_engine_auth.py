"""An engine URL with ``user:password@`` is scraped with basic auth, never with the userinfo in
the host, and the password never reaches a label."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rooftop.exporter.settings import EngineConfig
from rooftop.exporter.sources.http import FetchError, fetch_text

EXPOSITION = "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 2.0\n"


@pytest.fixture
def protected() -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            header = self.headers.get("Authorization")
            seen.append(header)
            expected = "Basic " + base64.b64encode(b"scraper:s3cr:t").decode()
            if header != expected:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = EXPOSITION.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_userinfo_is_sent_as_basic_auth(protected: tuple[str, list[str | None]]) -> None:
    address, seen = protected
    text = fetch_text(f"http://scraper:s3cr%3At@{address}/metrics", 2.0, 1 << 20)
    assert text == EXPOSITION
    assert seen[-1] is not None and seen[-1].startswith("Basic ")


def test_wrong_password_is_an_http_error(protected: tuple[str, list[str | None]]) -> None:
    address, _ = protected
    with pytest.raises(FetchError, match="HTTP 401"):
        fetch_text(f"http://scraper:wrong@{address}/metrics", 2.0, 1 << 20)


def test_no_userinfo_sends_no_authorization(protected: tuple[str, list[str | None]]) -> None:
    address, seen = protected
    with pytest.raises(FetchError, match="HTTP 401"):
        fetch_text(f"http://{address}/metrics", 2.0, 1 << 20)
    assert seen[-1] is None


def test_the_engine_label_never_carries_the_password() -> None:
    config = EngineConfig(url="http://scraper:s3cr%3At@10.0.0.5:8000/metrics")
    assert config.label == "10.0.0.5:8000"
