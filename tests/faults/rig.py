"""A running rooftop in-process: real Sampler thread, NVML through FakeNvmlBackend, engines over
real loopback HTTP, and the real ExporterHTTPServer + ExpositionCache answering /metrics.

:meth:`Rig.scrape` is what Prometheus does; every scrape is checked to answer 200 within
``SCRAPE_BUDGET_SECONDS``. :meth:`Rig.wait_for` scrapes until a condition holds.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from rooftop.exporter.collector import ExpositionCache
from rooftop.exporter.demo.nvml_fake import FakeGpu, FakeNvmlBackend
from rooftop.exporter.sampler import GpuSource, Sampler
from rooftop.exporter.server import ExporterHTTPServer, make_handler, serve_in_thread
from rooftop.exporter.settings import EngineConfig, Settings
from rooftop.exporter.sources.engine import EngineSource
from rooftop.exporter.sources.nvml import NvmlSource

SCRAPE_BUDGET_SECONDS = 0.5
GPU_LIVE_METRICS = frozenset(
    {
        "rooftop_gpu_sm_active_ratio",
        "rooftop_gpu_dram_active_ratio",
        "rooftop_gpu_tensor_active_ratio",
        "rooftop_gpu_kernel_busy_ratio",
        "rooftop_gpu_memory_controller_busy_ratio",
        "rooftop_gpu_dram_bandwidth_bytes_per_second",
        "rooftop_gpu_sm_clock_hertz",
        "rooftop_gpu_power_watts",
        "rooftop_gpu_power_limit_watts",
        "rooftop_gpu_clock_event_active",
    }
)
"""Series that carry a GPU's live reading: absent while that GPU is down."""

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    status: int
    seconds: float
    text: str
    samples: dict[tuple[str, Labels], float]

    def series(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        wanted = set(labels.items())
        return [
            (dict(key), value)
            for (sample, key), value in self.samples.items()
            if sample == name and wanted <= key
        ]

    def value(self, name: str, **labels: str) -> float | None:
        found = self.series(name, **labels)
        if len(found) > 1:
            raise AssertionError(f"{name}{labels} matches {len(found)} series: {found}")
        return found[0][1] if found else None

    def live_engine_series(self, engine: str) -> list[str]:
        """Every rooftop_engine_* series of ``engine`` except the static info line."""
        return sorted(
            sample
            for (sample, key), _ in self.samples.items()
            if sample.startswith("rooftop_engine_")
            and sample != "rooftop_engine_info"
            and ("engine", engine) in key
        )

    def live_gpu_series(self, uuid: str) -> list[str]:
        return sorted(
            sample
            for (sample, key), _ in self.samples.items()
            if sample in GPU_LIVE_METRICS and ("uuid", uuid) in key
        )


def parse_scrape(status: int, seconds: float, text: str) -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(status, seconds, text, samples)


def scrape_url(url: str, timeout_seconds: float = 5.0) -> Scrape:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
        body = response.read().decode()
        status = response.status
    return parse_scrape(status, time.monotonic() - started, body)


def gpu_uuid(index: int) -> str:
    return f"GPU-faaaaaaa-0000-0000-0000-{index:012d}"


ENGINE_LABELS: dict[str, str] = {}
"""Engine URL -> its engine label (``engine-<i>``): the ``source`` label of its status."""


class Rig:
    """rooftop wired from real parts; engine ``i`` runs on GPU ``i`` (by config)."""

    def __init__(
        self,
        engine_urls: Sequence[str] = (),
        *,
        gpus: int = 2,
        fake_gpus: Sequence[FakeGpu] | None = None,
        nvml: bool = True,
        dcgm_source: GpuSource | None = None,
        interval_seconds: float = 0.15,
        engine_timeout_seconds: float = 0.5,
        nvml_deadline_seconds: float = 0.3,
        max_body_bytes: int = 16 * 1024 * 1024,
        rate_window_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        scrape_workers: int = 4,
    ) -> None:
        if fake_gpus is None:
            fake_gpus = [
                FakeGpu(uuid=gpu_uuid(i), pci_bus_id=f"00000000:{0x18 + i:02x}:00.0")
                for i in range(gpus)
            ]
        gpus = len(fake_gpus)
        self.backend = FakeNvmlBackend(fake_gpus)
        self.nvml: NvmlSource | None = None
        if nvml:
            self.nvml = NvmlSource(self.backend, nvml_deadline_seconds)
            self.nvml.start()
        configs = tuple(
            EngineConfig(url=url, name=f"engine-{i}", gpus=(str(i),) if i < gpus else None)
            for i, url in enumerate(engine_urls)
        )
        ENGINE_LABELS.update({config.url: config.label for config in configs})
        self.settings = Settings(
            interval_seconds=interval_seconds,
            rate_window_seconds=rate_window_seconds,
            engines=configs,
            discover_engines=False,
            engine_timeout_seconds=engine_timeout_seconds,
            engine_max_body_bytes=max_body_bytes,
            verdict_hold_samples=1,
        )
        self.sampler = Sampler(
            self.settings,
            self.nvml,
            engine_factory=lambda config: EngineSource(
                config.label,
                config.url,
                timeout_seconds=engine_timeout_seconds,
                max_body_bytes=max_body_bytes,
            ),
            dcgm_source=dcgm_source,
            monotonic=monotonic,
            wall_clock=wall_clock,
        )
        self.cache = ExpositionCache(lambda: self.sampler.latest, wall_clock, monotonic=monotonic)
        handler = make_handler(self.cache, lambda: self.sampler.latest, None)
        self.server = ExporterHTTPServer(("127.0.0.1", 0), handler, scrape_workers)
        serve_in_thread(self.server)
        self.sampler.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def scrape(self) -> Scrape:
        result = scrape_url(self.url)
        assert result.status == 200
        assert result.seconds < SCRAPE_BUDGET_SECONDS, f"scrape took {result.seconds:.3f} s"
        return result

    def wait_for(
        self, condition: Callable[[Scrape], bool], what: str, timeout_seconds: float = 8.0
    ) -> Scrape:
        """Scrape until ``condition`` holds; fail naming ``what`` with the last scrape."""
        end = time.monotonic() + timeout_seconds
        last = self.scrape()
        while not condition(last):
            if time.monotonic() > end:
                shown = "\n".join(
                    line
                    for line in last.text.splitlines()
                    if not line.startswith(("#", "process_", "python_"))
                )
                raise AssertionError(f"timed out waiting for: {what}\n{shown[:6000]}")
            time.sleep(0.05)
            last = self.scrape()
        return last

    def close(self) -> None:
        self.backend.release_hangs()
        self.sampler.stop()
        self.server.shutdown()
        self.server.server_close()
        if self.nvml is not None:
            self.nvml.close()
