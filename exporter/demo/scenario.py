"""The demo node's scripted load: what one H100 SXM serving Llama-3.1-8B does, second by second.

A cycle runs idle → batch-1 decode → speculative decode → large-batch decode → prefix-cached
decode → long-prompt prefill bursts → a host-bound phase, and repeats. Every figure a phase
produces (token rates, and the GPM readings the fake NVML backend reports) comes from the
roofline model of that GPU and model, times an efficiency that says how close to speed of
light the phase runs, plus a few percent of noise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rooftop.classifiers.hardware import GpuSpec, peak_flops
from rooftop.classifiers.models import (
    ModelArchitecture,
    flops_per_token,
    kv_bytes_read_per_sequence,
    weight_bytes_per_step,
)
from rooftop.classifiers.roofline import Roof, decode_step
from rooftop.classifiers.speculative import Speculation


@dataclass(frozen=True)
class Phase:
    name: str
    start_fraction: float
    """Where the phase starts in the cycle, 0-1."""
    batch: int
    context_tokens: int
    efficiency: float
    """Achieved / speed of light for the phase's binding roof."""
    prefill: bool = False
    kernel_busy_ratio: float | None = None
    sm_active_ratio: float | None = None
    host_thread_ratio: float = 0.35
    speculative_tokens: int = 0
    """Draft tokens per sequence per step (EAGLE); 0: no speculation."""
    acceptance: float = 0.0
    """Share of draft tokens accepted."""
    cached_prompt_share: float = 0.2
    """Share of prompt tokens served from the prefix cache."""
    prompt_tokens_per_second: float = 0.0
    """Computed prompt tokens/s riding along (0: the default trickle of new requests)."""


PHASES: tuple[Phase, ...] = (
    Phase("idle", 0.0, batch=0, context_tokens=0, efficiency=0.0, host_thread_ratio=0.02),
    # Batch-1 chat decode: memory-bound at ~70% of the HBM roof, near what well-tuned
    # engines reach (research: Databricks ~60%, gpt-fast ~69%).
    Phase("batch-1 decode", 0.125, batch=1, context_tokens=2048, efficiency=0.72),
    # EAGLE speculation, k = 3 at 80 % acceptance (3.4 tokens per step per sequence): still
    # memory-bound, at ~70 % of the speculative step's speed of light. Read as one token per
    # step this phase would show MBU ~2.4.
    Phase(
        "speculative decode",
        0.25,
        batch=2,
        context_tokens=2048,
        efficiency=0.7,
        speculative_tokens=3,
        acceptance=0.8,
    ),
    # Many short completions: at 512 x ~96 tokens of context the step's AI passes the ridge.
    Phase("large-batch decode", 0.375, batch=512, context_tokens=96, efficiency=0.78),
    # Agents on one long shared system prompt: 85 % of prompt tokens hit the prefix cache, so
    # 40k raw prompt tokens/s are only 6k computed. Decode stays memory-bound; read as raw
    # prompt tokens the prefill FLOPs would be 6.7x too high.
    Phase(
        "prefix-cached decode",
        0.5,
        batch=16,
        context_tokens=4096,
        efficiency=0.7,
        cached_prompt_share=0.85,
        prompt_tokens_per_second=6000.0,
    ),
    # Long prompts: prefill of 8k-token documents, compute-bound at ~55% MFU.
    Phase(
        "long-prompt prefill", 0.625, batch=2, context_tokens=8192, efficiency=0.55, prefill=True
    ),
    # The scheduler thread is saturated: kernels are tiny and far apart; decode runs at ~20%
    # of speed of light while the GPU looks "busy" to classic NVML.
    Phase(
        "host-bound decode",
        0.8,
        batch=8,
        context_tokens=1024,
        efficiency=0.2,
        kernel_busy_ratio=0.93,
        sm_active_ratio=0.22,
        host_thread_ratio=0.99,
    ),
)


@dataclass(frozen=True)
class DemoLoad:
    """The true state of one simulated GPU and engine at one instant."""

    phase: str
    batch: float
    context_tokens: float
    prefill_tokens_per_second: float
    decode_tokens_per_second: float
    requests_waiting: float
    kv_usage_ratio: float
    dram_active_ratio: float
    sm_active_ratio: float
    sm_occupancy_ratio: float
    tensor_active_ratio: float
    kernel_busy_ratio: float
    memory_controller_busy_ratio: float
    power_watts: float
    host_thread_ratio: float
    speculative_tokens: int = 0
    acceptance: float = 0.0
    cached_prompt_share: float = 0.2


def phase_at(seconds_into_cycle: float, cycle_seconds: float) -> Phase:
    fraction = (seconds_into_cycle % cycle_seconds) / cycle_seconds
    current = PHASES[0]
    for phase in PHASES:
        if fraction >= phase.start_fraction:
            current = phase
    return current


def demo_load(
    seconds_into_cycle: float,
    cycle_seconds: float,
    gpu: GpuSpec,
    model: ModelArchitecture,
    kv_capacity_tokens: float,
    rng: random.Random,
    noise: float = 0.03,
) -> DemoLoad:
    """The load at an instant, from the roofline of ``gpu`` and ``model`` (bf16 weights and KV)."""
    phase = phase_at(seconds_into_cycle, cycle_seconds)

    def jitter(value: float) -> float:
        return max(0.0, value * (1.0 + rng.gauss(0.0, noise)))

    bandwidth = gpu.memory_bandwidth_bytes_per_second
    flops_peak = peak_flops(gpu, "bf16")
    idle_power = 90.0
    if phase.batch == 0:
        return DemoLoad(
            phase.name,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            jitter(idle_power),
            phase.host_thread_ratio,
        )
    batch = phase.batch
    context = phase.context_tokens
    # A prefix-cached share of each context is one shared prefix, stored once (vLLM's block
    # sharing): resident tokens = c (h + B (1 - h)), h the phase's cached prompt share.
    shared = phase.cached_prompt_share
    kv_usage = min(1.0, context * (shared + batch * (1.0 - shared)) / kv_capacity_tokens)
    if phase.prefill:
        # Prefill of a long prompt: every token costs its FLOPs at the mean context so far.
        per_token = flops_per_token(model, context // 2)
        prefill_rate = jitter(phase.efficiency * flops_peak / per_token)
        achieved_flops = prefill_rate * per_token
        bytes_per_second = 0.12 * bandwidth
        tensor = achieved_flops / flops_peak
        decode_rate = jitter(40.0)
        dram = bytes_per_second / bandwidth
        sm_active = min(1.0, tensor + 0.1)
    elif phase.speculative_tokens:
        spec = Speculation("eagle", phase.speculative_tokens, phase.acceptance)
        step = decode_step(
            model, Roof(flops_peak, bandwidth), batch, context, "bf16", speculation=spec
        )
        step_seconds = step.step_seconds / jitter(phase.efficiency)
        decode_rate = step.emitted_tokens / step_seconds
        prefill_rate = 0.0
        dram = step.bytes / step_seconds / bandwidth
        tensor = step.total_flops / step_seconds / flops_peak
        sm_active = min(1.0, max(dram, tensor) + 0.12)
    else:
        step_bytes = weight_bytes_per_step(model, "bf16", batch) + batch * (
            kv_bytes_read_per_sequence(model, "bf16", context)
        )
        step_flops = batch * flops_per_token(model, context)
        sol_step_seconds = max(step_bytes / bandwidth, step_flops / flops_peak)
        step_seconds = sol_step_seconds / jitter(phase.efficiency)
        decode_rate = batch / step_seconds
        prefill_rate = jitter(decode_rate / 200.0 * context / 8) if batch > 1 else 0.0
        if phase.prompt_tokens_per_second:
            prefill_rate = jitter(phase.prompt_tokens_per_second)
        dram = step_bytes / step_seconds / bandwidth
        tensor = (step_flops / step_seconds + prefill_rate * flops_per_token(model, context)) / (
            flops_peak
        )
        sm_active = min(1.0, max(dram, tensor) + 0.12)
    if phase.sm_active_ratio is not None:
        sm_active = jitter(phase.sm_active_ratio)
    kernel_busy = phase.kernel_busy_ratio or min(1.0, sm_active + 0.2)
    power = idle_power + (700.0 - idle_power) * min(1.0, 0.6 * sm_active + 0.4 * tensor)
    return DemoLoad(
        phase=phase.name,
        batch=float(batch),
        context_tokens=float(context),
        prefill_tokens_per_second=prefill_rate,
        decode_tokens_per_second=decode_rate,
        requests_waiting=float(batch // 16),
        kv_usage_ratio=kv_usage,
        dram_active_ratio=min(1.0, jitter(dram)),
        sm_active_ratio=min(1.0, sm_active),
        sm_occupancy_ratio=min(1.0, jitter(0.6 * sm_active)),
        tensor_active_ratio=min(1.0, jitter(tensor)),
        kernel_busy_ratio=min(1.0, jitter(kernel_busy)),
        memory_controller_busy_ratio=min(1.0, jitter(dram * 0.9)),
        power_watts=jitter(power),
        host_thread_ratio=min(1.0, jitter(phase.host_thread_ratio)),
        speculative_tokens=phase.speculative_tokens,
        acceptance=phase.acceptance,
        cached_prompt_share=phase.cached_prompt_share,
    )
