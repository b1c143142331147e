"""A local HTTP "engine" on 127.0.0.1 that speaks vLLM V1's ``/metrics`` and misbehaves on cue.

Its counters advance with real time at the configured rates, so rooftop's derived rates can be
checked against the truth. ``mode`` picks how ``/metrics`` answers:

``ok``            a valid vLLM V1 exposition (``exporter.demo.engine.DemoEngineState``)
``http_500``      HTTP 500 with a short text body
``stall``         holds the request until released or ``stall_seconds`` pass, then answers
``truncated``     announces more bytes than it sends, then closes the connection
``huge``          a 100 MB body (announced and streamed until the client hangs up)
``garbage``       random binary bytes labelled ``text/plain``
``many_series``   a valid exposition of 100 000 series (label explosion)
``redirect``      HTTP 302 with ``Location: redirect_to``

``refuse()`` closes the listening socket (connection refused); ``accept()`` opens it again on the
same port. ``restart_counters()`` models an engine restart (every counter back to zero);
``model_name`` can be changed at any time (the engine now serves another model). ``routes``
answers other paths with fixed (status, headers, body) triples.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from rooftop.exporter.demo.engine import DemoEngineState

Mode = Literal["ok", "http_500", "stall", "truncated", "huge", "garbage", "many_series", "redirect"]
HUGE_BODY_BYTES = 100 * 1024 * 1024
MANY_SERIES = 100_000
_CHUNK = b"# filler line of a runaway exposition, rooftop must stop reading this\n" * 16384
Route = tuple[int, Mapping[str, str], bytes]


def many_series_exposition(series: int = MANY_SERIES) -> str:
    """A valid vLLM-looking exposition with ``series`` samples in one family."""
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
    ]
    lines.extend(
        f'vllm:num_requests_running{{engine="{i}",model_name="m",request_id="{i:x}"}} 1.0'
        for i in range(series)
    )
    return "\n".join(lines) + "\n"


class MisbehavingEngine:
    """A scriptable engine; see the module docstring for the modes."""

    def __init__(
        self,
        model_name: str = "meta-llama/Llama-3.1-8B-Instruct",
        *,
        decode_tokens_per_second: float = 400.0,
        prefill_tokens_per_second: float = 2000.0,
        requests_running: float = 8.0,
        seed: int = 7,
    ) -> None:
        self.model_name = model_name
        self.decode_tokens_per_second = decode_tokens_per_second
        self.prefill_tokens_per_second = prefill_tokens_per_second
        self.requests_running = requests_running
        self.mode: Mode = "ok"
        self.stall_seconds = 30.0
        self.redirect_to = ""
        self.routes: dict[str, Route] = {}
        self.content: Callable[[], bytes] | None = None
        """Replaces the vLLM exposition in the modes that answer normally (e.g. a DCGM body)."""
        self.hits: dict[str, int] = {}
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._state = self._fresh_state()
        self._last_advance = time.monotonic()
        self._many_series: bytes | None = None
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.accept()

    # -- control ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def set_mode(self, mode: Mode) -> None:
        if mode == "stall":
            self._release.clear()
        else:
            self._release.set()
        self.mode = mode

    def release(self) -> None:
        """Let every stalled request finish now."""
        self._release.set()

    def restart_counters(self) -> None:
        """The engine restarted: every counter starts again from zero."""
        with self._lock:
            self._state = self._fresh_state()
            self._last_advance = time.monotonic()

    def generation_tokens_total(self) -> float:
        with self._lock:
            return self._state.generation_tokens

    def refuse(self) -> None:
        """Close the listening socket: connections are refused until :meth:`accept`."""
        server = self._server
        if server is not None:
            server.shutdown()
            server.server_close()
            self._server = None

    def accept(self) -> None:
        """Listen (again, on the same port once one was taken)."""
        if self._server is not None:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.release()
        self.refuse()

    # -- content ----------------------------------------------------------------------------

    def _fresh_state(self) -> DemoEngineState:
        return DemoEngineState(model_name=self.model_name, num_gpu_blocks=27_000)

    def exposition(self) -> bytes:
        """The current valid exposition; counters advance by the time since the last one."""
        if self.content is not None:
            return self.content()
        with self._lock:
            now = time.monotonic()
            state = self._state
            state.model_name = self.model_name
            state.requests_running = self.requests_running
            state.kv_usage_ratio = 0.25
            state.advance(
                now - self._last_advance,
                self.prefill_tokens_per_second,
                self.decode_tokens_per_second,
            )
            self._last_advance = now
            return state.exposition().encode()

    def _garbage(self) -> bytes:
        return bytes(self._random.getrandbits(8) for _ in range(8192))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                engine.hits[path] = engine.hits.get(path, 0) + 1
                try:
                    if path in engine.routes:
                        status, headers, body = engine.routes[path]
                        self._answer(status, body, headers)
                    elif path == "/metrics":
                        self._metrics()
                    else:
                        self._answer(404, b"404 page not found\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up on purpose (cap, timeout)

            def _metrics(self) -> None:
                mode = engine.mode
                if mode == "stall":
                    engine._release.wait(engine.stall_seconds)
                    self._answer(200, engine.exposition())
                elif mode == "http_500":
                    self._answer(500, b"internal server error\n")
                elif mode == "truncated":
                    body = engine.exposition()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif mode == "huge":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(HUGE_BODY_BYTES))
                    self.end_headers()
                    sent = 0
                    while sent < HUGE_BODY_BYTES:
                        self.wfile.write(_CHUNK)
                        sent += len(_CHUNK)
                    self.close_connection = True
                elif mode == "garbage":
                    self._answer(200, engine._garbage())
                elif mode == "many_series":
                    if engine._many_series is None:
                        engine._many_series = many_series_exposition().encode()
                    self._answer(200, engine._many_series)
                elif mode == "redirect":
                    self._answer(302, b"moved\n", {"Location": engine.redirect_to})
                else:
                    self._answer(200, engine.exposition())

            def _answer(
                self, status: int, body: bytes, headers: Mapping[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


class CanaryServer:
    """Counts every connection and request it receives; rooftop must never reach it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canary.requests.append(self.path)
                body = b"# canary\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_HEAD = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.connections = 0
        original = self._server.get_request

        def counted() -> tuple[object, object]:
            pair = original()
            self.connections += 1
            return pair

        self._server.get_request = counted  # type: ignore[method-assign,assignment]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
