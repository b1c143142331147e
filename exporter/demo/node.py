"""The demo node: the real pipeline against a simulated H100 SXM node serving Llama-3.1-8B.

What is simulated: the GPUs (a fake NVML backend behind the same interface as the real one,
its GPM readings generated from the roofline model each cycle), the engines' load (a local
HTTP endpoint per engine serving vLLM V1 counters that advance with the scripted cycle) and the
engine process's CPU figures. What is real: the HTTP scrape of those endpoints, the vLLM
adapter, the rates, the roofline core, the verdicts with hysteresis, and the exposition.
Everything it exports is marked as demo (``rooftop_build_info{demo="true"}``, GPU names and
UUIDs say ``demo``).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from rooftop.classifiers.hardware import GpuSpec, lookup_gpu
from rooftop.classifiers.model_catalog import lookup_model
from rooftop.classifiers.models import ModelArchitecture
from rooftop.exporter.demo.engine import DemoEngineServer, DemoEngineState
from rooftop.exporter.demo.nvml_fake import FakeGpu, FakeNvmlBackend
from rooftop.exporter.demo.scenario import DemoLoad, demo_load
from rooftop.exporter.telemetry import ProcessCpu

DEMO_GPU = "h100-sxm"
DEMO_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
DEMO_KV_BLOCKS = 27_000
"""An 80 GB H100 at 0.9 memory utilisation holds ~56 GB of KV for Llama-3.1-8B in BF16:
56e9 / (131072 B/token x 16 tokens/block) = ~27k blocks."""


@dataclass
class _DemoEngine:
    state: DemoEngineState
    server: DemoEngineServer
    offset_seconds: float
    rng: random.Random
    load: DemoLoad | None = None


@dataclass
class DemoNode:
    """``gpus`` fake GPUs and ``engines`` demo engines; engine ``i`` runs on GPU ``i % gpus``.

    Engine ``i`` runs the cycle shifted by ``i / engines`` of a cycle, so a multi-engine demo
    shows different verdicts side by side.
    """

    gpus: int = 1
    engines: int = 1
    cycle_seconds: float = 120.0
    seed: int = 1
    backend: FakeNvmlBackend = field(init=False)
    gpu_spec: GpuSpec = field(init=False)
    model: ModelArchitecture = field(init=False)
    _engines: list[_DemoEngine] = field(init=False, default_factory=list)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _started_at: float | None = field(init=False, default=None)
    _last_at: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.gpu_spec = lookup_gpu(DEMO_GPU)
        self.model = lookup_model(DEMO_MODEL)
        self.backend = FakeNvmlBackend(
            [
                FakeGpu(
                    uuid=self.gpu_uuid(index),
                    name="NVIDIA H100 80GB HBM3",
                    pci_bus_id=f"00000000:{0x18 + index:02X}:00.0",
                )
                for index in range(self.gpus)
            ]
        )
        for index in range(self.engines):
            state = DemoEngineState(DEMO_MODEL, num_gpu_blocks=DEMO_KV_BLOCKS)
            self._engines.append(
                _DemoEngine(
                    state=state,
                    server=DemoEngineServer(state, self._lock),
                    offset_seconds=self.cycle_seconds * index / self.engines,
                    rng=random.Random(self.seed * 1000 + index),
                )
            )

    @staticmethod
    def gpu_uuid(index: int) -> str:
        return f"GPU-00000000-0000-0000-0000-demo{index:08d}"

    def engine_name(self, index: int) -> str:
        return f"demo-vllm-{index}"

    def engine_urls(self) -> list[str]:
        return [engine.server.url for engine in self._engines]

    def engine_gpu(self, index: int) -> str:
        return self.gpu_uuid(index % self.gpus)

    def start(self) -> None:
        for engine in self._engines:
            engine.server.start()

    def stop(self) -> None:
        for engine in self._engines:
            engine.server.stop()

    def advance(self, now: float) -> None:
        """Move the simulation to monotonic time ``now`` (called before each sampler cycle)."""
        if self._started_at is None:
            self._started_at = now
        elapsed = now - (self._last_at if self._last_at is not None else now)
        self._last_at = now
        busy: dict[int, DemoLoad] = {}
        with self._lock:
            for index, engine in enumerate(self._engines):
                t = now - self._started_at + engine.offset_seconds
                load = demo_load(
                    t,
                    self.cycle_seconds,
                    self.gpu_spec,
                    self.model,
                    DEMO_KV_BLOCKS * engine.state.block_size,
                    engine.rng,
                )
                engine.load = load
                state = engine.state
                state.requests_running = load.batch
                state.requests_waiting = load.requests_waiting
                state.kv_usage_ratio = load.kv_usage_ratio
                if elapsed > 0:
                    state.advance(
                        elapsed,
                        load.prefill_tokens_per_second,
                        load.decode_tokens_per_second,
                        cached_prompt_share=load.cached_prompt_share,
                        acceptance=load.acceptance if load.speculative_tokens else None,
                    )
                gpu = index % self.gpus
                if gpu not in busy or load.sm_active_ratio > busy[gpu].sm_active_ratio:
                    busy[gpu] = load
        for gpu in range(self.gpus):
            current = busy.get(gpu)
            if current is None:
                self.backend.set_activity(
                    gpu, sm_active=0, tensor_active=0, dram_active=0, kernel_busy=0
                )
                continue
            self.backend.set_activity(
                gpu,
                sm_active=current.sm_active_ratio,
                sm_occupancy=current.sm_occupancy_ratio,
                tensor_active=current.tensor_active_ratio,
                hmma_active=current.tensor_active_ratio,
                dram_active=current.dram_active_ratio,
                fp16_active=min(1.0, current.tensor_active_ratio * 0.1),
                fp32_active=min(1.0, current.sm_active_ratio * 0.05),
                kernel_busy=current.kernel_busy_ratio,
                memory_controller_busy=current.memory_controller_busy_ratio,
                power_watts=current.power_watts,
                memory_used_bytes=int(74e9) if current.batch else int(72e9),
                sm_clock_hz=1.98e9,
            )

    def stats(self, engine: str, pid: int | None) -> ProcessCpu | None:
        """The demo engines' process CPU figures (the ProcessStatsProvider interface)."""
        for index, demo in enumerate(self._engines):
            if self.engine_name(index) == engine and demo.load is not None:
                return ProcessCpu(
                    cpu_cores=1.0 + 2.0 * demo.load.host_thread_ratio,
                    busiest_thread_ratio=demo.load.host_thread_ratio,
                )
        return None
