"""Known workloads for the GPU validation run, and their CPU stand-ins for ``--dry-run``.

Each phase's workload runs in a worker thread until told to stop. The real ones use PyTorch
on ``cuda:0`` and only compute: they never change clocks, power limits, MIG or persistence
mode, and never reset the GPU.

* ``copy``: device-to-device copies of a 4 GiB buffer (memory-bound: DRAM at its roof);
* ``matmul``: 8192 x 8192 bf16 matrix products (compute-bound: tensor pipes busy);
* ``tiny``: a loop of one-element kernels (latency-bound: kernels run, no roof is reached);
* ``idle``: nothing;
* ``decode-b1`` / ``decode-b64``: greedy decode of a Llama-3.1-8B-shaped model (the shape from
  rooftop's catalog, which cites the HF config; weights random, bf16) at batch 1 and 64, one
  step captured as a CUDA graph so the GPU, not Python, sets the pace. Each request starts
  from a random 64-token KV prefix (no prefill is run, so no prompt tokens are counted) and
  decodes to 512 tokens; the tokens really generated are counted into the vLLM-format
  endpoint after each synchronised group of steps.

Stand-ins (``--dry-run``) write the activity the phase should show into the scripted fake NVML
backend's file and advance the endpoint's counters at the rate that activity implies; they
check the orchestration, not the hardware.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rooftop.classifiers.model_catalog import lookup_model
from rooftop.classifiers.models import ModelArchitecture, kv_bytes_per_token, parameter_count
from rooftop.exporter.demo.engine import DemoEngineState

MODEL_ID = "meta-llama/Llama-3.1-8B-Instruct"
ROPE_THETA = 500_000.0
"""Llama-3.1's ``rope_theta`` (HF config.json)."""
PROMPT_TOKENS = 64
MAX_TOKENS = 512
BLOCK_TOKENS = 16
SYNC_STEPS = 16


class Counters:
    """The vLLM-format endpoint's state, updated by the workloads (thread-safe)."""

    def __init__(self, model: str = MODEL_ID) -> None:
        self.lock = threading.Lock()
        self.state = DemoEngineState(model, num_gpu_blocks=1)

    def serve_batch(self, batch: int, max_tokens: int) -> None:
        with self.lock:
            self.state.requests_running = float(batch)
            self.state.num_gpu_blocks = max(1, math.ceil(batch * max_tokens / BLOCK_TOKENS))
            self.state.kv_usage_ratio = 0.0

    def generated(self, tokens: float, context: int, seconds: float) -> None:
        """``tokens`` really generated (over ``seconds``), at ``context`` tokens per request."""
        with self.lock:
            state = self.state
            batch = max(1.0, state.requests_running)
            state.generation_tokens += tokens
            state.iteration_steps += tokens / batch
            state.iteration_tokens_sum += tokens
            state.inter_token_latency_sum += seconds * tokens / batch
            state.inter_token_latency_count += tokens
            capacity = state.num_gpu_blocks * BLOCK_TOKENS
            state.kv_usage_ratio = min(1.0, batch * context / capacity)

    def stop_serving(self) -> None:
        with self.lock:
            self.state.requests_running = 0.0
            self.state.kv_usage_ratio = 0.0


class Workload(Protocol):
    def run(self, stop: threading.Event) -> None: ...


@dataclass(frozen=True)
class Phase:
    name: str
    expected: str
    """The verdict rooftop should publish for this phase."""
    seconds: float
    description: str


def phases(phase_seconds: float, decode_seconds: float, idle_seconds: float) -> list[Phase]:
    return [
        Phase("copy", "memory", phase_seconds, "device-to-device copy, 4 GiB buffers"),
        Phase("matmul", "compute", phase_seconds, "bf16 8192x8192 matrix products"),
        Phase("tiny", "latency", phase_seconds, "loop of one-element kernels"),
        Phase("idle", "idle", idle_seconds, "nothing running"),
        Phase("decode-b1", "memory", decode_seconds, "Llama-3.1-8B-shaped decode, batch 1"),
        Phase("decode-b64", "memory", decode_seconds, "Llama-3.1-8B-shaped decode, batch 64"),
    ]


def model_arch() -> ModelArchitecture:
    return lookup_model(MODEL_ID)


# --- real workloads (PyTorch) ------------------------------------------------------------------


class TorchWorkloads:
    """Builds the real workload of each phase on ``cuda:0``."""

    def __init__(self, counters: Counters) -> None:
        import torch

        self.torch = torch
        self.counters = counters
        self.device = torch.device("cuda:0")

    def make(self, phase: Phase) -> Workload:
        if phase.name == "copy":
            return _Loop(self._copy())
        if phase.name == "matmul":
            return _Loop(self._matmul())
        if phase.name == "tiny":
            return _Loop(self._tiny(), sync_every=2000)
        if phase.name == "idle":
            return _Idle()
        batch = int(phase.name.split("-b", 1)[1])
        return _Decode(self.torch, model_arch(), batch, self.counters, self.device)

    def _copy(self) -> Any:
        torch = self.torch
        src = torch.empty(4 << 30, dtype=torch.uint8, device=self.device)
        dst = torch.empty_like(src)
        return lambda: dst.copy_(src)

    def _matmul(self) -> Any:
        torch = self.torch
        a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=self.device)
        b = torch.randn(8192, 8192, dtype=torch.bfloat16, device=self.device)
        out = torch.empty_like(a)
        return lambda: torch.matmul(a, b, out=out)

    def _tiny(self) -> Any:
        x = self.torch.zeros(1, device=self.device)
        return lambda: x.add_(1.0)

    def release(self) -> None:
        self.torch.cuda.synchronize()
        self.torch.cuda.empty_cache()


class _Loop:
    def __init__(self, step: Any, sync_every: int = 8) -> None:
        self._step = step
        self._sync_every = sync_every

    def run(self, stop: threading.Event) -> None:
        import torch

        while not stop.is_set():
            for _ in range(self._sync_every):
                self._step()
            torch.cuda.synchronize()  # bounds the launch queue, so stop is prompt


class _Idle:
    def run(self, stop: threading.Event) -> None:
        stop.wait()


class _Decode:
    """Greedy decode of a random-weight Llama-shaped model, one step as a CUDA graph."""

    def __init__(
        self, torch: Any, arch: ModelArchitecture, batch: int, counters: Counters, device: Any
    ) -> None:
        self.torch, self.arch, self.batch, self.counters = torch, arch, batch, counters
        torch.manual_seed(0)
        bf16 = torch.bfloat16
        d, hd = arch.hidden_size, arch.head_dim
        h, kvh, ff, vocab = (
            arch.num_attention_heads,
            arch.num_kv_heads,
            arch.intermediate_size,
            arch.vocab_size,
        )

        def weight(*shape: int) -> Any:
            return torch.randn(*shape, dtype=bf16, device=device) * 0.02

        self.embed = weight(vocab, d)
        self.layers = [
            {
                "ln1": torch.ones(d, dtype=bf16, device=device),
                "wqkv": weight((h + 2 * kvh) * hd, d),
                "wo": weight(d, h * hd),
                "ln2": torch.ones(d, dtype=bf16, device=device),
                "wgu": weight(2 * ff, d),
                "wd": weight(d, ff),
            }
            for _ in range(arch.num_layers)
        ]
        self.norm = torch.ones(d, dtype=bf16, device=device)
        self.lm_head = self.embed if arch.tie_word_embeddings else weight(vocab, d)
        shape = (arch.num_layers, batch, kvh, MAX_TOKENS, hd)
        self.k = torch.randn(shape, dtype=bf16, device=device) * 0.02
        self.v = torch.randn(shape, dtype=bf16, device=device) * 0.02
        self.tokens = torch.zeros(batch, dtype=torch.long, device=device)
        self.pos = torch.tensor([PROMPT_TOKENS], dtype=torch.long, device=device)
        inv = 1.0 / (ROPE_THETA ** (torch.arange(0, hd, 2, device=device).float() / hd))
        freqs = torch.outer(torch.arange(MAX_TOKENS, device=device).float(), inv)
        self.cos, self.sin = freqs.cos(), freqs.sin()
        self.positions = torch.arange(MAX_TOKENS, device=device)
        self.scale = 1.0 / math.sqrt(hd)
        self.graph = self._capture()

    def _rms(self, x: Any, weight: Any) -> Any:
        xf = x.float()
        return (xf * self.torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype) * weight

    def _rope(self, x: Any, cos: Any, sin: Any) -> Any:
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half].float(), x[..., half:].float()
        return self.torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1).to(x.dtype)

    def _step(self) -> None:
        torch, arch, b = self.torch, self.arch, self.batch
        h, kvh, hd = arch.num_attention_heads, arch.num_kv_heads, arch.head_dim
        x = self.embed.index_select(0, self.tokens)
        cos = self.cos.index_select(0, self.pos).view(1, 1, -1)
        sin = self.sin.index_select(0, self.pos).view(1, 1, -1)
        visible = (self.positions <= self.pos).view(1, 1, 1, -1)
        for i, layer in enumerate(self.layers):
            qkv = self._rms(x, layer["ln1"]) @ layer["wqkv"].T
            q, k, v = qkv.split((h * hd, kvh * hd, kvh * hd), -1)
            q = self._rope(q.view(b, h, hd), cos, sin)
            k = self._rope(k.view(b, kvh, hd), cos, sin)
            self.k[i].index_copy_(2, self.pos, k.unsqueeze(2))
            self.v[i].index_copy_(2, self.pos, v.view(b, kvh, 1, hd))
            grouped = q.view(b, kvh, h // kvh, hd)
            scores = torch.einsum("bgqd,bgtd->bgqt", grouped, self.k[i]).float() * self.scale
            probs = scores.masked_fill(~visible, float("-inf")).softmax(-1).to(x.dtype)
            attended = torch.einsum("bgqt,bgtd->bgqd", probs, self.v[i]).reshape(b, h * hd)
            x = x + attended @ layer["wo"].T
            gate, up = (self._rms(x, layer["ln2"]) @ layer["wgu"].T).chunk(2, -1)
            x = x + (torch.nn.functional.silu(gate) * up) @ layer["wd"].T
        logits = self._rms(x, self.norm) @ self.lm_head.T
        self.tokens.copy_(logits.argmax(-1))
        self.pos.add_(1)

    def _capture(self) -> Any:
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        self.pos.fill_(PROMPT_TOKENS)
        torch.cuda.synchronize()
        return graph

    def run(self, stop: threading.Event) -> None:
        torch = self.torch
        self.counters.serve_batch(self.batch, MAX_TOKENS)
        position = PROMPT_TOKENS
        try:
            while not stop.is_set():
                started = time.monotonic()
                steps = min(SYNC_STEPS, MAX_TOKENS - 1 - position)
                for _ in range(steps):
                    self.graph.replay()
                torch.cuda.synchronize()
                position += steps
                self.counters.generated(steps * self.batch, position, time.monotonic() - started)
                if position >= MAX_TOKENS - 1:  # the batch's requests finish; new ones start
                    self.pos.fill_(PROMPT_TOKENS)
                    position = PROMPT_TOKENS
        finally:
            self.counters.stop_serving()


# --- stand-ins (dry run) ---------------------------------------------------------------------

STAND_IN_ACTIVITY: dict[str, dict[str, float]] = {
    "copy": {"dram_active": 0.86, "sm_active": 0.35, "tensor_active": 0.0, "kernel_busy": 1.0},
    "matmul": {"dram_active": 0.22, "sm_active": 0.98, "tensor_active": 0.78, "kernel_busy": 1.0},
    "tiny": {"dram_active": 0.01, "sm_active": 0.02, "tensor_active": 0.0, "kernel_busy": 0.6},
    "idle": {"dram_active": 0.0, "sm_active": 0.0, "tensor_active": 0.0, "kernel_busy": 0.0},
    "decode-b1": {"dram_active": 0.78, "sm_active": 0.4, "tensor_active": 0.04, "kernel_busy": 1.0},
    "decode-b64": {"dram_active": 0.8, "sm_active": 0.7, "tensor_active": 0.3, "kernel_busy": 1.0},
}
"""What each phase should look like on the GPU; the dry run plays these into the fake NVML."""

DRY_RUN_GPU: dict[str, Any] = {
    "uuid": "GPU-00000000-0000-0000-0000-dryrun000000",
    "name": "NVIDIA H200",
    "pci_device_id": "0x2335",
    "memory_total_bytes": 143771 * 1024 * 1024,
    "max_sm_clock_mhz": 1980,
    "max_memory_clock_mhz": 3201,
    "memory_bus_width_bits": 6144,
    "power_limit_mw": 700000,
}
"""The fake GPU of the dry run: an H200 SXM's NVML identity (PCI id 0x2335; 3201 MHz x 6144-bit
HBM3e). Marked ``dryrun`` in its UUID."""


class StandIns:
    """Stand-in workloads: fake NVML activity through ``state_file``, modelled token rates."""

    def __init__(self, counters: Counters, state_file: Path, bandwidth_bytes_per_second: float):
        self.counters = counters
        self.state_file = state_file
        self.bandwidth = bandwidth_bytes_per_second
        self.write({})

    def write(self, activity: dict[str, float]) -> None:
        data = {"source": "validate_gpu.py --dry-run (not a GPU)", "gpus": [DRY_RUN_GPU]}
        data["activity"] = [{"index": 0, **activity}] if activity else []
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(self.state_file)  # atomic: the backend never reads half a file

    def make(self, phase: Phase) -> Workload:
        activity = STAND_IN_ACTIVITY[phase.name]
        batch = int(phase.name.split("-b", 1)[1]) if phase.name.startswith("decode") else 0
        return _StandIn(self, activity, batch)

    def release(self) -> None:
        return None


class _StandIn:
    def __init__(self, owner: StandIns, activity: dict[str, float], batch: int) -> None:
        self.owner, self.activity, self.batch = owner, activity, batch

    def run(self, stop: threading.Event) -> None:
        owner = self.owner
        owner.write(self.activity)
        if not self.batch:
            stop.wait()
            owner.write(STAND_IN_ACTIVITY["idle"])
            return
        arch = model_arch()
        # bf16 weights read per step: all but the embedding table, of which a decode step reads
        # one row per token (an untied lm_head is read whole).
        embedding = 0 if arch.tie_word_embeddings else arch.vocab_size * arch.hidden_size
        weights = 2.0 * (parameter_count(arch) - embedding)
        context = (PROMPT_TOKENS + MAX_TOKENS) // 2
        step_bytes = weights + self.batch * context * kv_bytes_per_token(arch, "bf16")
        tokens_per_second = self.batch * self.activity["dram_active"] * owner.bandwidth / step_bytes
        owner.counters.serve_batch(self.batch, MAX_TOKENS)
        last = time.monotonic()
        try:
            while not stop.wait(0.05):
                now = time.monotonic()
                owner.counters.generated(tokens_per_second * (now - last), context, now - last)
                last = now
        finally:
            owner.counters.stop_serving()
            owner.write(STAND_IN_ACTIVITY["idle"])
