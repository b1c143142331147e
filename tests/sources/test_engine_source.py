"""EngineSource and fetch_text against a real HTTP server on 127.0.0.1: every failure a scrape
can meet, the size and time limits, same-origin extra endpoints, and sticky auto-detection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rooftop.exporter.pipeline.engines import start_poll
from rooftop.exporter.settings import EngineConfig
from rooftop.exporter.sources.engine import (
    BODY_SLOTS,
    LANE_WAIT_SECONDS,
    EngineFetchError,
    EngineParseError,
    EngineSource,
    EngineSourceError,
    EngineUnrecognisedError,
    endpoint_url,
)
from rooftop.exporter.sources.engines import TgiAdapter, VllmAdapter
from rooftop.exporter.sources.engines.base import ExtraEndpoint
from rooftop.exporter.sources.http import FetchError, fetch_text

FIXTURES = Path(__file__).parents[1] / "fixtures" / "engines"
VLLM = (FIXTURES / "vllm-v1-dynamo-metrics-examples.prom").read_bytes()
TGI = (FIXTURES / "tgi-datadog-fixture.prom").read_bytes()
LLAMA = (FIXTURES / "llamacpp-b11434-cpu-tiny.prom").read_bytes()


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    declared_length: int | None = None
    """Content-Length to announce (more than sent = a truncated response)."""
    stream: Callable[[BaseHTTPRequestHandler], None] | None = None


class Engine:
    """A scriptable engine: ``routes[path]`` answers, ``hits`` counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                engine.hits[self.path] = engine.hits.get(self.path, 0) + 1
                route = engine.routes.get(self.path, Route(404, b"404 page not found"))
                if route.delay_seconds:
                    time.sleep(route.delay_seconds)
                self.send_response(route.status)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                if route.stream is not None:
                    self.end_headers()
                    route.stream(self)
                    return
                length = route.declared_length or len(route.body)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(route.body)
                if route.declared_length:
                    self.wfile.flush()
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients hanging up at the size cap are expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.origin = f"http://{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine() -> Iterator[Engine]:
    server = Engine()
    try:
        yield server
    finally:
        server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_reads_and_detects(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=VLLM)
    source = EngineSource("vllm-0", engine.origin + "/metrics")
    reading = source.poll()
    assert (reading.family, reading.model, reading.generation_tokens_total) == (
        "vllm",
        "Qwen/Qwen3-0.6B",
        600.0,
    )
    assert source.adapter is not None and source.adapter.family == "vllm"
    assert set(engine.hits) == {"/metrics"}


def test_refused() -> None:
    source = EngineSource("e", f"http://127.0.0.1:{closed_port()}/metrics")
    with pytest.raises(EngineFetchError, match="connection refused"):
        source.poll()


def test_http_500(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(500, b"boom")
    with pytest.raises(EngineFetchError, match="HTTP 500"):
        EngineSource("e", engine.origin + "/metrics").poll()


def test_404_names_the_status(engine: Engine) -> None:
    with pytest.raises(EngineFetchError, match="HTTP 404"):
        EngineSource("e", engine.origin + "/nothing").poll()


def test_timeout(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=VLLM, delay_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(EngineFetchError, match=r"within 0\.2 s|timed out"):
        EngineSource("e", engine.origin + "/metrics", timeout_seconds=0.2).poll()
    assert time.monotonic() - started < 0.9


def test_slow_drip_hits_the_total_deadline(engine: Engine) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:
        for _ in range(40):
            handler.wfile.write(b"# slow\n")
            handler.wfile.flush()
            time.sleep(0.05)

    engine.routes["/metrics"] = Route(stream=drip)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"within 0\.3 s"):
        fetch_text(engine.origin + "/metrics", 0.3, 1 << 20)
    assert time.monotonic() - started < 1.5


def test_truncated(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=VLLM[:500], declared_length=len(VLLM))
    with pytest.raises(EngineFetchError, match="truncated"):
        EngineSource("e", engine.origin + "/metrics").poll()


def test_huge_body(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=b"# padding\n" * 20_000)
    with pytest.raises(EngineFetchError, match="body over 100000 bytes"):
        EngineSource("e", engine.origin + "/metrics", max_body_bytes=100_000).poll()


def test_huge_streamed_body_without_length(engine: Engine) -> None:
    def endless(handler: BaseHTTPRequestHandler) -> None:
        try:
            for _ in range(10_000):
                handler.wfile.write(b"x 1\n" * 1024)
        except OSError:
            pass  # the client hung up at the cap, as it should

    engine.routes["/metrics"] = Route(stream=endless)
    with pytest.raises(FetchError, match="body over 65536 bytes"):
        fetch_text(engine.origin + "/metrics", 5.0, 65536)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html><body>Welcome</body></html>", "HTML"),
        (b'{"iteration_stats": []}', "JSON"),
        (b"hello world", "not a Prometheus"),
    ],
)
def test_garbage(engine: Engine, body: bytes, match: str) -> None:
    engine.routes["/metrics"] = Route(body=body)
    with pytest.raises(EngineParseError, match=match):
        EngineSource("e", engine.origin + "/metrics").poll()


def test_binary(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=bytes(range(256)) * 4)
    with pytest.raises(EngineFetchError, match="not UTF-8"):
        EngineSource("e", engine.origin + "/metrics").poll()


def test_unrecognised_lists_prefixes(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=b"# TYPE go_goroutines gauge\ngo_goroutines 3\n")
    with pytest.raises(EngineUnrecognisedError, match="go_"):
        EngineSource("e", engine.origin + "/metrics").poll()


def test_redirect_is_not_followed(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(302, b"", {"Location": "http://example.com/metrics"})
    with pytest.raises(EngineFetchError, match="redirects"):
        EngineSource("e", engine.origin + "/metrics").poll()


def test_non_http_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        EngineConfig(url="file:///etc/passwd")  # validated once, where it is configured
    with pytest.raises(EngineFetchError, match="http"):
        EngineSource("e", "file:///etc/passwd").poll()  # and never read as a file


def test_all_errors_are_engine_source_errors(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(503, b"")
    with pytest.raises(EngineSourceError):
        EngineSource("e", engine.origin + "/metrics").poll()


def test_tgi_info_is_fetched_once_from_the_same_origin(engine: Engine) -> None:
    engine.routes["/prefix/metrics?x=1"] = Route(body=TGI)
    engine.routes["/info"] = Route(body=b'{"model_id": "HuggingFaceH4/zephyr-7b-beta"}')
    source = EngineSource("tgi", engine.origin + "/prefix/metrics?x=1")
    for _ in range(3):
        reading = source.poll()
        assert reading.model == "HuggingFaceH4/zephyr-7b-beta"
    assert engine.hits == {"/prefix/metrics?x=1": 3, "/info": 1}


def test_failed_extra_endpoint_leaves_quantities_missing(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=TGI)
    engine.routes["/info"] = Route(500, b"oops")
    reading = EngineSource("tgi", engine.origin + "/metrics", adapter=TgiAdapter()).poll()
    assert reading.model is None
    assert reading.prompt_tokens_total == 662.0
    assert engine.hits["/info"] == 1


def test_llamacpp_slots_every_poll_props_once(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=LLAMA)
    engine.routes["/props"] = Route(
        body=b'{"model_path": "/m/t.gguf", "total_slots": 2,'
        b' "default_generation_settings": {"n_ctx": 256}}'
    )
    engine.routes["/slots"] = Route(
        body=b'[{"id": 0, "n_ctx": 256, "is_processing": true, "n_past": 64},'
        b' {"id": 1, "n_ctx": 256, "is_processing": false, "n_past": 0}]'
    )
    source = EngineSource("llama", engine.origin + "/metrics")
    source.poll()
    reading = source.poll()
    assert (reading.model, reading.kv_capacity_tokens, reading.kv_usage_ratio) == (
        "/m/t.gguf",
        512.0,
        0.125,
    )
    assert engine.hits == {"/metrics": 2, "/props": 1, "/slots": 2}


def test_auto_detect_is_sticky_and_redetects_when_the_engine_changes(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=VLLM)
    source = EngineSource("e", engine.origin + "/metrics")
    assert source.poll().family == "vllm"
    first = source.adapter
    assert source.poll().family == "vllm"
    assert source.adapter is first
    engine.routes["/metrics"] = Route(body=LLAMA)
    assert source.poll().family == "llamacpp"


def test_configured_adapter_is_never_swapped(engine: Engine) -> None:
    engine.routes["/metrics"] = Route(body=LLAMA)
    source = EngineSource("e", engine.origin + "/metrics", adapter=VllmAdapter())
    with pytest.raises(EngineUnrecognisedError, match="vllm"):
        source.poll()


def test_injected_fetch_and_its_errors_are_wrapped() -> None:
    calls: list[tuple[str, float, int]] = []

    def fake(url: str, timeout: float, cap: int) -> str:
        calls.append((url, timeout, cap))
        return VLLM.decode()

    source = EngineSource("e", "http://10.0.0.1:8000/metrics", timeout_seconds=1.5, fetch=fake)
    assert source.poll().family == "vllm"
    assert calls == [("http://10.0.0.1:8000/metrics", 1.5, source.max_body_bytes)]

    def broken(url: str, timeout: float, cap: int) -> str:
        raise RuntimeError("socket exploded")

    with pytest.raises(EngineFetchError, match="socket exploded"):
        EngineSource("e", "http://10.0.0.1:8000/metrics", fetch=broken).poll()


def test_endpoint_url_stays_on_origin() -> None:
    url = "https://user@h.example:8443/v1/metrics?model=a"
    assert endpoint_url(url, ExtraEndpoint("p", "/props")) == "https://user@h.example:8443/props"
    for bad in ("props", "//evil.example/x", "/x?y=1"):
        with pytest.raises(ValueError):
            endpoint_url(url, ExtraEndpoint("p", bad))


@contextmanager
def lane_held_by_a_slow_body(
    monkeypatch: pytest.MonkeyPatch, seconds: float
) -> Iterator[EngineSource]:
    """An engine whose body takes ``seconds`` to parse holds the reading lane for the block;
    yields another engine (quick to read) that polls meanwhile."""
    text = VLLM.decode()
    slow = EngineSource("slow", "http://127.0.0.1:1/metrics", fetch=lambda *_: text)
    quick = EngineSource("quick", "http://127.0.0.1:2/metrics", fetch=lambda *_: text)
    reading = threading.Event()
    parse = EngineSource._parse

    def slow_parse(self: EngineSource, body: str) -> object:
        if self is slow:
            reading.set()
            time.sleep(seconds)
        return parse(self, body)

    monkeypatch.setattr(EngineSource, "_parse", slow_parse)
    behind = threading.Thread(target=slow.poll)
    behind.start()
    try:
        assert reading.wait(5)
        yield quick
    finally:
        behind.join()


def test_a_body_slow_to_read_holds_another_engine_back_only_briefly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bodies are read one at a time (the reading lane), but one that reads for seconds (a
    pathological exposition, an adapter bug) delays another engine's poll by at most the lane
    wait, never by its own reading time."""
    with lane_held_by_a_slow_body(monkeypatch, 3.0) as quick:
        started = time.monotonic()
        assert quick.poll().prompt_tokens_total is not None
        waited = time.monotonic() - started
        assert LANE_WAIT_SECONDS <= waited < LANE_WAIT_SECONDS + 1.5


def test_an_answer_held_back_by_the_reading_lane_is_timed_when_its_body_came_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine rendered its counters when it answered: the time a body then waits for the
    lane (or takes to parse) must not stretch the interval its rates are computed over."""
    with lane_held_by_a_slow_body(monkeypatch, 1.0) as quick:
        started = time.monotonic()
        timed = start_poll(quick.poll, "quick", time.monotonic).result(timeout=10)
        answered = time.monotonic()
        assert answered - started >= LANE_WAIT_SECONDS  # it did wait for the lane
        assert timed.at - started < LANE_WAIT_SECONDS / 2  # but is timed at its body


def test_bodies_waiting_to_be_read_are_bounded_by_the_body_slots(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls started together fetch together, but at most :data:`BODY_SLOTS` bodies are in
    memory (downloaded, waiting for the lane or being read) at once: the others wait at their
    headers."""
    engine.routes["/metrics"] = Route(body=VLLM)
    sources = [EngineSource(f"e{i}", engine.origin + "/metrics") for i in range(4)]
    for source in sources:  # recognised already: the polls below read with the adapter
        source.poll()
    lock = threading.Lock()
    held = [0, 0]  # now, most
    read = EngineSource._read

    def counted_fetch(url: str, timeout_seconds: float, max_bytes: int) -> str:
        text = fetch_text(url, timeout_seconds, max_bytes)
        with lock:
            held[0] += 1
            held[1] = max(held)
        return text

    def slow_read(self: EngineSource, *args: object) -> object:
        time.sleep(0.05)
        try:
            return read(self, *args)  # type: ignore[arg-type]
        finally:
            with lock:
                held[0] -= 1

    for source in sources:
        monkeypatch.setattr(source, "_fetch", counted_fetch)
    monkeypatch.setattr(EngineSource, "_read", slow_read)
    polls = [start_poll(s.poll, s.name, time.monotonic) for s in sources]
    for poll in polls:
        assert poll.result(timeout=10).reading.family == "vllm"
    assert held[1] == BODY_SLOTS


def test_an_engine_that_never_answers_holds_no_body_slot() -> None:
    """A slot is taken when an answer's headers are in: engines that accept the connection and
    never answer (as many as there are slots) do not hold a quick engine back."""
    quiet = [socket.create_server(("127.0.0.1", 0)) for _ in range(BODY_SLOTS)]
    quick_engine = Engine()
    quick_engine.routes["/metrics"] = Route(body=VLLM)
    try:
        hung = [
            EngineSource(
                f"hung{i}", f"http://127.0.0.1:{s.getsockname()[1]}/metrics", timeout_seconds=3.0
            )
            for i, s in enumerate(quiet)
        ]
        waiting = [start_poll(s.poll, s.name, time.monotonic) for s in hung]
        time.sleep(0.2)  # both connected, neither answered
        quick = EngineSource("quick", quick_engine.origin + "/metrics")
        started = time.monotonic()
        assert quick.poll().family == "vllm"
        assert time.monotonic() - started < LANE_WAIT_SECONDS
        for poll in waiting:
            with pytest.raises(EngineFetchError):
                poll.result(timeout=10)
    finally:
        quick_engine.close()
        for sock in quiet:
            sock.close()
