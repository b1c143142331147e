"""The demo node: the real pipeline against a simulated GPU node serving one model.

By default an H100 SXM serving Llama-3.1-8B; ``gpu_id``/``model_id`` pick any NVIDIA GPU of the
catalog and any catalog model that fits it in BF16 (a fleet of demo nodes with different GPUs,
models and phases is how tests/live/test_fleet_simulation.py loads a real store).

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rooftop.classifiers.hardware import GpuSpec, lookup_gpu
from rooftop.classifiers.model_catalog import catalog_models, lookup_model, resolve_model_id
from rooftop.classifiers.models import ModelArchitecture, kv_bytes_per_token, stored_weight_bytes
from rooftop.exporter.demo.engine import DemoEngineServer, DemoEngineState
from rooftop.exporter.demo.nvml_fake import FakeGpu, FakeNvmlBackend
from rooftop.exporter.demo.scenario import DemoLoad, demo_load
from rooftop.exporter.telemetry import ProcessCpu

DEMO_GPU = "h100-sxm"
DEMO_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
DEMO_PID_BASE = 4200
DEMO_KV_BLOCKS = 27_000
"""An 80 GB H100 at 0.9 memory utilisation holds ~56 GB of KV for Llama-3.1-8B in BF16:
56e9 / (131072 B/token x 16 tokens/block) = ~27k blocks."""
GPU_MEMORY_UTILIZATION = 0.9
"""vLLM's default ``--gpu-memory-utilization``."""
KV_BLOCK_TOKENS = 16
HBM_BUS_WIDTH_BITS = 5120
GDDR_BUS_WIDTH_BITS = 384


class DemoConfigError(ValueError):
    """A demo GPU or model that cannot be simulated; the message says what to pick instead."""


def demo_kv_blocks(gpu: GpuSpec, model: ModelArchitecture) -> int:
    """KV blocks an engine gets: ``(0.9 x memory - BF16 weights) / (KV bytes/token x 16)``.

    H100 SXM (80e9 B) with Llama-3.1-8B: (72e9 - 16.06e9) / (131072 x 16) = ~26.7k blocks, the
    figure behind :data:`DEMO_KV_BLOCKS`. Raises :class:`DemoConfigError` when the weights do
    not fit.
    """
    memory = gpu.memory_bytes or 80e9
    free = GPU_MEMORY_UTILIZATION * memory - stored_weight_bytes(model, "bf16")
    per_block = kv_bytes_per_token(model, "bf16") * KV_BLOCK_TOKENS
    if free < 1000 * per_block:
        raise DemoConfigError(
            f"{model.name} in BF16 does not fit on one {gpu.name} ({memory / 1e9:.0f} GB) with "
            "room for KV: pick a smaller model or a larger GPU"
        )
    return int(free // per_block)


def demo_fake_gpu(gpu: GpuSpec, uuid: str, index: int) -> FakeGpu:
    """A fake NVML device that identifies as ``gpu`` and whose bus width x max memory clock
    give the catalog's bandwidth (``clock = bandwidth x 8 / (2 x width)``), so the sampler's
    NVML-versus-catalog check agrees with itself."""
    if gpu.id == DEMO_GPU:  # the recorded H100 SXM5 figures the fake NVML defaults to
        return FakeGpu(uuid=uuid, pci_bus_id=f"00000000:{0x18 + index:02X}:00.0")
    width = (
        GDDR_BUS_WIDTH_BITS if (gpu.memory_type or "").startswith("GDDR") else HBM_BUS_WIDTH_BITS
    )
    clock_mhz = round(gpu.memory_bandwidth_bytes_per_second * 8 / (2 * width) / 1e6)
    memory = int(gpu.memory_bytes or 80e9)
    return FakeGpu(
        uuid=uuid,
        name=gpu.nvml_names[0],
        pci_device_id=gpu.pci_device_ids[0] if gpu.pci_device_ids else FakeGpu.pci_device_id,
        pci_bus_id=f"00000000:{0x18 + index:02X}:00.0",
        memory_total_bytes=memory,
        max_memory_clock_mhz=clock_mhz,
        memory_bus_width_bits=width,
    )


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
    gpu_id: str = DEMO_GPU
    """Catalog id of the simulated GPUs (an NVIDIA GPU with a BF16 peak)."""
    model_id: str = DEMO_MODEL
    """Catalog model the engines serve (a Hugging Face id or a catalog alias)."""
    offset_seconds: float = 0.0
    """Where in the load cycle the node starts (seconds), so nodes of a fleet differ in phase."""
    clock: Callable[[], float] = time.monotonic
    """The fake NVML's clock (GPM sample times); a test passes the sampler's fake clock."""
    kv_blocks: int = field(init=False)
    backend: FakeNvmlBackend = field(init=False)
    gpu_spec: GpuSpec = field(init=False)
    model: ModelArchitecture = field(init=False)
    _engines: list[_DemoEngine] = field(init=False, default_factory=list)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _started_at: float | None = field(init=False, default=None)
    _last_at: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        try:
            self.gpu_spec = lookup_gpu(self.gpu_id)
        except LookupError as error:
            raise DemoConfigError(f"demo GPU {self.gpu_id!r}: {error}") from None
        if self.gpu_spec.vendor != "nvidia" or not self.gpu_spec.nvml_names:
            raise DemoConfigError(
                f"demo GPU {self.gpu_id!r}: the demo simulates NVML, pick an NVIDIA GPU"
            )
        if "bf16" not in self.gpu_spec.peak_flops_per_second:
            raise DemoConfigError(f"demo GPU {self.gpu_id!r}: the catalog has no BF16 peak")
        try:
            catalog_id = resolve_model_id(self.model_id)
            self.model = lookup_model(catalog_id)
        except LookupError as error:
            raise DemoConfigError(f"demo model {self.model_id!r}: {error}") from None
        # Engines report the Hugging Face id, as vLLM's model_name label does.
        model_name = next(m.hf_id for m in catalog_models() if m.id == catalog_id)
        default = self.gpu_id == DEMO_GPU and catalog_id == resolve_model_id(DEMO_MODEL)
        self.kv_blocks = DEMO_KV_BLOCKS if default else demo_kv_blocks(self.gpu_spec, self.model)
        self.backend = FakeNvmlBackend(
            [
                demo_fake_gpu(self.gpu_spec, self.gpu_uuid(index), index)
                for index in range(self.gpus)
            ],
            clock=self.clock,
        )
        for index in range(self.engines):
            state = DemoEngineState(model_name, num_gpu_blocks=self.kv_blocks)
            self._engines.append(
                _DemoEngine(
                    state=state,
                    server=DemoEngineServer(state, self._lock),
                    offset_seconds=self.offset_seconds + self.cycle_seconds * index / self.engines,
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
                    self.kv_blocks * engine.state.block_size,
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
            fake = self.backend.gpu(gpu)
            # Each engine holds its weights and KV pool: ~70 GB of the 80 GB (0.9 utilisation).
            fake.process_memory_bytes = {
                self.engine_pid(i): int(70e9 / max(1, -(-self.engines // self.gpus)))
                for i in range(self.engines)
                if i % self.gpus == gpu
            }
            watts = current.power_watts if current is not None else fake.power_mw / 1000
            fake.energy_mj += round(watts * max(0.0, elapsed) * 1000)
            fake.temperature_c = round(34 + 40 * watts / 700)
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
                # 74 / 72 GB of an 80 GB H100 (busy / idle), scaled to the GPU's memory.
                memory_used_bytes=int(
                    (self.gpu_spec.memory_bytes or 80e9) / 80e9 * (74e9 if current.batch else 72e9)
                ),
                sm_clock_hz=1.98e9,
            )

    @staticmethod
    def engine_pid(index: int) -> int:
        """The simulated engine's process id (its GPU memory is attributed to it)."""
        return DEMO_PID_BASE + index

    def tree_pids(self, pid: int) -> tuple[int, ...]:
        """The demo's engines are single processes."""
        return (pid,)

    def stats(self, engine: str, pid: int | None) -> ProcessCpu | None:
        """The demo engines' process CPU figures (the ProcessStatsProvider interface)."""
        for index, demo in enumerate(self._engines):
            if self.engine_name(index) == engine and demo.load is not None:
                return ProcessCpu(
                    cpu_cores=1.0 + 2.0 * demo.load.host_thread_ratio,
                    busiest_thread_ratio=demo.load.host_thread_ratio,
                )
        return None
