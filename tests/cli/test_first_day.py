"""What a first-day user meets: a node without NVML reports nvml down from the first scrape, and
an engine that starts answering after rooftop is found by the periodic local discovery."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from rooftop.exporter.sources.exposition import parse_exposition
from rooftop.exporter.sources.local_engines import LocalEngineDiscovery
from rooftop.exporter.sources.nvml import NvmlUnavailableError
from rooftop.exporter.sources.nvml_start import RetryingNvmlSource
from rooftop.exporter.telemetry import GpuSourceResult
from tests.conftest import REPO_ROOT

VLLM = REPO_ROOT / "tests" / "fixtures" / "engines" / "vllm-v1-dynamo-metrics-examples.prom"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Nvml:
    """An NvmlSource stand-in whose start fails until ``library`` is True."""

    name = "nvml"

    def __init__(self) -> None:
        self.library = False
        self.starts = 0

    def start(self) -> tuple[()]:
        self.starts += 1
        if not self.library:
            raise NvmlUnavailableError("NVML library not found (libnvidia-ml.so.1)")
        return ()

    def poll(self) -> GpuSourceResult:
        return GpuSourceResult((), ())

    def close(self) -> None:
        pass


def test_nvml_that_cannot_start_is_down_with_its_reason_and_retried() -> None:
    now = [0.0]
    fake = _Nvml()
    source = RetryingNvmlSource(fake, retry_seconds=60.0, monotonic=lambda: now[0])  # type: ignore[arg-type]
    with pytest.raises(NvmlUnavailableError):
        source.start()
    with pytest.raises(NvmlUnavailableError, match="libnvidia-ml"):
        source.poll()  # not due yet: the last reason, no new attempt
    assert fake.starts == 1
    fake.library = True
    now[0] = 61.0
    assert source.poll() == GpuSourceResult((), ())
    assert source.started and fake.starts == 2


def test_local_discovery_finds_an_engine_that_answers_later_and_keeps_it() -> None:
    answering: set[int] = set()

    def probe(name: str, url: str, max_body: int) -> str | None:
        port = int(name.rsplit(":", 1)[1])
        return "vllm" if port in answering else None

    discovery = LocalEngineDiscovery((8000, 30000), 1 << 20, probe)
    assert discovery.poll() == ()
    answering.add(30000)
    (found,) = discovery.poll()
    assert (found.name, found.url) == ("127.0.0.1:30000", "http://127.0.0.1:30000/metrics")
    answering.clear()  # the engine stops answering: it stays an engine (reported down)
    assert [e.name for e in discovery.poll()] == ["127.0.0.1:30000"]


class _Engine(BaseHTTPRequestHandler):
    body = VLLM.read_bytes()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


def _source_up(text: str) -> dict[tuple[str, str], float]:
    family = parse_exposition(text).get("rooftop_source_up")
    if family is None:
        return {}
    return {(s.labels["source"], s.labels["kind"]): s.value for s in family.samples}


@pytest.fixture
def rooftop_without_nvml() -> Iterator[tuple[int, int]]:
    port, engine_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    env.update(
        ROOFTOP_DISCOVER_PORTS=str(engine_port),
        ROOFTOP_DISCOVERY_INTERVAL_SECONDS="1",
        ROOFTOP_INTERVAL_SECONDS="0.25",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rooftop.exporter",
            "serve",
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield port, engine_port
    finally:
        process.terminate()
        process.wait(15)


@pytest.mark.timeout(60)
def test_no_nvml_is_reported_down_and_a_late_engine_is_found(
    rooftop_without_nvml: tuple[int, int],
) -> None:
    import pynvml

    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("NVML works on this machine; the no-NVML case needs a node without it")
    except pynvml.NVMLError:
        pass
    port, engine_port = rooftop_without_nvml
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    up: dict[tuple[str, str], float] = {}
    while time.monotonic() < deadline:
        try:
            up = _source_up(_get(f"{base}/metrics"))
        except OSError:
            up = {}
        if up:
            break
        time.sleep(0.1)
    # From the first scrape that has a snapshot: nvml is there, and down.
    assert up.get(("nvml", "gpu")) == 0.0, up
    assert up.get(("localhost", "discovery")) == 1.0, up
    landing = _get(f"{base}/")
    assert "nvml (gpu) down" in landing and "waiting for the first sample" not in landing

    engine = HTTPServer(("127.0.0.1", engine_port), _Engine)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        name = f"127.0.0.1:{engine_port}"
        while time.monotonic() < deadline + 15 and up.get((name, "engine")) != 1.0:
            time.sleep(0.2)
            up = _source_up(_get(f"{base}/metrics"))
        assert up.get((name, "engine")) == 1.0, up
        info = parse_exposition(_get(f"{base}/metrics"))["rooftop_engine_info"]
        assert {s.labels["engine"] for s in info.samples} == {name}  # one label everywhere
    finally:
        engine.shutdown()
        engine.server_close()
