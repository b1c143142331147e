"""Where a live workload sits on the roofline: the model's costs at the live batch and context,
set against the rates the engine and the GPU counters report.

Pure: the sampler gathers the inputs, this module does the arithmetic. Per GPU throughout:
tensor parallelism splits bytes and FLOPs (replicated parts whole), while every GPU of the engine
takes part in every token, so the engine's token rates apply to each of its GPUs unchanged.

The step modelled is the one the engine runs: speculative verification of ``B x (1 + k)`` tokens
plus drafting when the engine speculates, the prefill tokens that ride in the same forward pass
fused in (chunked prefill), requests still prefilling left out of the decode batch, and the TP
all-reduces on the critical path.
"""

from __future__ import annotations

from dataclasses import dataclass

from rooftop.classifiers.capacity import kv_headroom_ratio
from rooftop.classifiers.cross_check import CrossCheck, cross_check
from rooftop.classifiers.models import KvDtype, WeightFormat
from rooftop.classifiers.prefix_cache import computed_prefill
from rooftop.classifiers.roofline import (
    Model,
    Roof,
    StepCost,
    crossover_batch,
    decode_step,
    mixed_step,
    model_bandwidth_utilization,
    model_flops_utilization,
    prefill_chunk,
)
from rooftop.classifiers.speculative import Speculation

PREFILL_CHUNK_TOKENS = 2048
"""Chunk size for prefill's model intensity: vLLM's default ``max_num_batched_tokens`` for
chunked prefill on large GPUs is 2048 (and 8192 on newer releases); the intensity of a chunk
this size is already far past the ridge, so the exact figure hardly moves the point."""

MIN_TOKENS_PER_SECOND = 1e-6
"""Below this an engine is not producing tokens: ratios per token are undefined."""


@dataclass(frozen=True)
class LiveWorkload:
    """What the sampler knows about one GPU's workload this cycle.

    ``batch``: running sequences (None: unknown, taken as 1 while tokens flow).
    ``context_tokens``: mean tokens each running sequence attends to (see
    :func:`~rooftop.classifiers.prefix_cache.per_sequence_context_tokens` for shared prefixes).
    ``dram_bytes_per_second``: observed DRAM traffic from hardware counters (GPM/DCGM), or None.
    ``speculation``: how the engine speculates (its counters or its setting), or None.
    ``draft_model``: the draft model for ``speculation.method == "draft_model"``.
    ``prefilling_requests``: of ``batch``, requests still in prefill (not decoding), or None.
    ``prefill_includes_cached``: the prefill rate is raw prompt tokens, cache hits included.
    ``prefix_cache_hit_ratio``: share of prompt tokens served from the prefix cache, or None.
    ``kv_capacity_tokens``: KV tokens the engine's cache holds (blocks x block size), or None.
    ``engine_flops_per_second`` / ``engine_bytes_per_second``: the engine's own estimates
    (vLLM ``estimated_flops_per_gpu_total``, read + write bytes), per GPU, or None.
    """

    model: Model
    roof: Roof
    weights: WeightFormat | None
    kv_dtype: KvDtype
    tensor_parallel: int
    batch: float | None
    context_tokens: int
    decode_tokens_per_second: float | None
    prefill_tokens_per_second: float | None
    dram_bytes_per_second: float | None
    speculation: Speculation | None = None
    draft_model: Model | None = None
    prefilling_requests: float | None = None
    prefill_includes_cached: bool = False
    prefix_cache_hit_ratio: float | None = None
    kv_capacity_tokens: float | None = None
    engine_flops_per_second: float | None = None
    engine_bytes_per_second: float | None = None


@dataclass(frozen=True)
class OperatingPoint:
    """The roofline figures of one GPU for one cycle; ``None`` where undefined."""

    batch: int
    ridge_point_flops_per_byte: float
    decode_bytes_per_token: float
    decode_flops_per_token: float
    decode_arithmetic_intensity: float
    decode_speed_of_light_tokens_per_second: float
    decode_bound: str
    prefill_arithmetic_intensity: float
    workload_arithmetic_intensity: float
    """Intensity of the live mix: model FLOP/s of both phases over model bytes/s of both
    phases; the decode step's intensity while no tokens flow."""
    crossover_batch: int | None
    decode_speed_of_light_ratio: float | None
    prefill_speed_of_light_ratio: float | None
    decode_observed_bytes_per_token: float | None
    decode_observed_arithmetic_intensity: float | None
    decode_achieved_flops_per_second: float | None
    prefill_achieved_flops_per_second: float | None
    model_bandwidth_utilization_ratio: float | None
    model_flops_utilization_ratio: float | None
    tokens_per_step_per_sequence: float = 1.0
    """Tokens each decoding sequence emits per step: ``1 + k alpha`` with speculation."""
    speculative_acceptance_ratio: float | None = None
    speculative_method: str | None = None
    speculative_token_share: float | None = None
    """Share (0-1) of the decode tokens that speculative steps emitted; the rest were plain."""
    communication_seconds: float = 0.0
    """Collective time per step (TP all-reduces), inside the step's speed-of-light time."""
    communication_share: float = 0.0
    """Share of the modelled step spent in collectives (0-1)."""
    prefill_flops_upper_bound: bool = False
    """The prefill FLOPs count raw prompt tokens, prefix-cache hits unknown: an upper bound."""
    prefill_computed_tokens_per_second: float | None = None
    decode_model_flops_utilization_ratio: float | None = None
    """MFU of the decode tokens alone: the lower bound when prefill is an upper bound."""
    prefill_tokens_per_step: float = 0.0
    """Prefill tokens fused into each decode step (chunked prefill)."""
    kv_needed_tokens: float | None = None
    """KV tokens the running batch holds: ``decode batch x context``."""
    kv_headroom_ratio: float | None = None
    """Engine KV capacity over :attr:`kv_needed_tokens` (below 1: preemption ahead)."""
    model_flops_per_second: float | None = None
    """Model FLOP/s of both phases (the figure the engine's estimate is checked against)."""
    model_bytes_per_second: float | None = None
    """Model HBM bytes/s of the live mix."""
    engine_flops_per_second: float | None = None
    engine_bytes_per_second: float | None = None
    hardware_bytes_per_second: float | None = None
    """DRAM bytes/s the counters saw (GPM/DCGM), for the cross-check."""
    cross_check: CrossCheck | None = None
    """Model vs engine estimate vs hardware counters, when at least two are present."""


def _flowing(rate: float | None) -> bool:
    return rate is not None and rate > MIN_TOKENS_PER_SECOND


def operating_point(live: LiveWorkload) -> OperatingPoint:
    """The live roofline figures.

    Decode, at decode batch ``B`` (running minus prefilling), context ``S``, ``n = 1 + k alpha``
    tokens per sequence per step (1 without speculation), ``P`` prefill tokens fused per step::

        steps/s          = decode tokens/s / (B n)
        P                = computed prefill tokens/s / steps/s
        step             = mixed_step(B, S, P) (weights once for B (1 + k) + P tokens) + drafts
        bytes_per_token  = step_bytes / (B n)
        SOL tokens/s     = B n / step_seconds   (compute, memory, drafting and collectives)
        SOL ratio        = decode tokens/s / SOL tokens/s
        MBU = step_bytes x steps/s / BW                              (Databricks)
        MFU = step_flops x steps/s / FLOPS
        observed bytes/token = DRAM bytes/s (counters) / decode tokens/s

    A window that mixed speculative and plain steps (``speculation.token_share`` ``s`` of its
    tokens from speculative steps, the rest from plain ones) is the token-weighted blend of the
    two step models, each its own :func:`~rooftop.classifiers.roofline.decode_step`::

        1 / SOL tokens/s = s / SOL_spec + (1 - s) / SOL_plain        (seconds per token add)
        bytes_per_token  = s bytes_spec/token + (1 - s) bytes_plain/token  (FLOPs likewise)
        steps/s          = decode tokens/s x (s / (B n) + (1 - s) / B)
        tokens per step per sequence = 1 / (s / n + (1 - s))
        SOL ratio        = decode tokens/s / SOL tokens/s

    so the ratio is the share of the window spent at speed of light, never above 1 for an
    engine that runs each kind of step no faster than its own speed of light. Fused prefill is
    spread over all steps of both kinds.

    With no decode flowing, prefill runs alone in :data:`PREFILL_CHUNK_TOKENS`-token chunks.
    Prefill tokens are the computed ones: raw prompt tokens less prefix-cache hits when the
    engine reports its hit ratio; without it the raw count is used and
    ``prefill_flops_upper_bound`` is set. The workload intensity weighs both phases by their
    live rates; the observed intensity is the model FLOP/s achieved over the DRAM bytes/s the
    counters saw (left of the model's point: traffic the model does not account for).
    """
    running = max(1, round(live.batch)) if live.batch is not None and live.batch >= 1 else 1
    prefilling = live.prefilling_requests or 0.0
    batch = max(1, round(running - prefilling)) if prefilling > 0 else running
    context = max(0, live.context_tokens)
    roof = live.roof
    tp = live.tensor_parallel
    spec = live.speculation
    ridge = roof.peak_flops_per_second / roof.peak_bandwidth_bytes_per_second
    modes = _decode_modes(live, batch, context)
    chunk = prefill_chunk(
        live.model, roof, PREFILL_CHUNK_TOKENS, context, live.weights, live.kv_dtype, tp
    )
    decode_rate = live.decode_tokens_per_second
    prefill = None
    if live.prefill_tokens_per_second is not None:
        prefill = computed_prefill(
            live.prefill_tokens_per_second,
            includes_cached=live.prefill_includes_cached,
            hit_ratio=live.prefix_cache_hit_ratio,
        )
    prefill_rate = None if prefill is None else prefill.tokens_per_second

    steps = [m.step for m in modes]
    per_step_prefill = 0.0
    if _flowing(decode_rate) and _flowing(prefill_rate):
        assert decode_rate is not None and prefill_rate is not None
        steps_per_second = sum(m.steps_per_second(decode_rate) for m in modes)
        per_step_prefill = prefill_rate / steps_per_second
        steps = [_fused(live, m.step, batch, context, round(per_step_prefill)) for m in modes]

    # Per emitted token, each mode weighted by the share of tokens it emitted.
    bytes_per_token = sum(m.share * (m.step.bytes / m.step.emitted_tokens) for m in modes)
    flops_per_token = sum(m.share * (m.step.total_flops / m.step.emitted_tokens) for m in modes)
    prefill_flops_per_token = chunk.flops / PREFILL_CHUNK_TOKENS
    prefill_bytes_per_token = chunk.bytes / PREFILL_CHUNK_TOKENS

    decode_flops = decode_rate * flops_per_token if decode_rate is not None else None
    prefill_flops = prefill_rate * prefill_flops_per_token if prefill_rate is not None else None
    sol_ratio = None
    observed_bytes = None
    mbu = None
    moved = 0.0
    achieved = (decode_flops or 0.0) + (prefill_flops or 0.0)
    if _flowing(decode_rate):
        assert decode_rate is not None
        # Seconds at speed of light per second of the window, summed over the modes.
        sol_ratio = sum(
            decode_rate * m.share / (m.step.emitted_tokens / fused.step_seconds)
            for m, fused in zip(modes, steps, strict=True)
        )
        moved = sum(
            fused.bytes * m.steps_per_second(decode_rate)
            for m, fused in zip(modes, steps, strict=True)
        )
        if any(fused is not m.step for m, fused in zip(modes, steps, strict=True)):
            achieved = sum(
                fused.total_flops * m.steps_per_second(decode_rate)
                for m, fused in zip(modes, steps, strict=True)
            )
            decode_flops = sum(m.step.total_flops * m.steps_per_second(decode_rate) for m in modes)
            prefill_flops = achieved - decode_flops
        mbu = model_bandwidth_utilization(moved, 1.0, roof.peak_bandwidth_bytes_per_second)
        if live.dram_bytes_per_second is not None:
            observed_bytes = live.dram_bytes_per_second / decode_rate
    elif decode_rate is not None:
        mbu = 0.0
    if not _flowing(decode_rate) and prefill_rate:
        moved = prefill_rate * prefill_bytes_per_token
    prefill_ratio = None
    if prefill_flops is not None:
        prefill_ratio = prefill_flops / roof.peak_flops_per_second
    mfu = None
    decode_mfu = None
    if decode_flops is not None or prefill_flops is not None:
        mfu = model_flops_utilization(1.0, achieved, roof.peak_flops_per_second)
        decode_mfu = model_flops_utilization(1.0, decode_flops or 0.0, roof.peak_flops_per_second)
    if len(modes) == 1:
        decode_ai = modes[0].step.arithmetic_intensity_flops_per_byte
        sol_tokens = modes[0].step.speed_of_light_tokens_per_second
        bound = modes[0].step.bound
        tokens_per_step = modes[0].step.tokens_per_step_per_sequence
        communication_seconds = steps[0].communication_seconds
        communication_share = steps[0].communication_share
    else:
        decode_ai = flops_per_token / bytes_per_token
        # Harmonic blend: seconds at speed of light per token add, weighted by token share.
        sol_seconds = [m.share / m.step.speed_of_light_tokens_per_second for m in modes]
        sol_tokens = 1.0 / sum(sol_seconds)
        bound = modes[sol_seconds.index(max(sol_seconds))].step.bound
        tokens_per_step = 1.0 / sum(m.share / m.step.tokens_per_step_per_sequence for m in modes)
        per_token = [m.share / m.step.emitted_tokens for m in modes]  # steps per emitted token
        talking = sum(w * f.communication_seconds for w, f in zip(per_token, steps, strict=True))
        stepping = sum(w * f.step_seconds for w, f in zip(per_token, steps, strict=True))
        communication_seconds = talking / sum(per_token)
        communication_share = talking / stepping if stepping > 0 else 0.0
    workload_ai = decode_ai
    if achieved > 0 and moved > 0:
        workload_ai = achieved / moved
    observed_ai = None
    if live.dram_bytes_per_second and live.dram_bytes_per_second > 0 and achieved > 0:
        observed_ai = achieved / live.dram_bytes_per_second
    model_flops = achieved if (decode_rate or prefill_rate) else None
    model_bytes = moved if (decode_rate or prefill_rate) else None
    check = None
    if (
        live.engine_flops_per_second is not None
        or live.engine_bytes_per_second is not None
        or (live.dram_bytes_per_second is not None)
    ):
        check = cross_check(
            model_flops_per_second=model_flops,
            engine_flops_per_second=live.engine_flops_per_second,
            model_bytes_per_second=model_bytes,
            engine_bytes_per_second=live.engine_bytes_per_second,
            hardware_bytes_per_second=live.dram_bytes_per_second,
            moe=getattr(live.model, "moe", None) is not None,
            prefill_upper_bound=prefill is not None and prefill.upper_bound,
        )
    needed = float(batch * context) if context > 0 else None
    headroom = None
    if live.kv_capacity_tokens is not None and needed is not None:
        headroom = kv_headroom_ratio(live.kv_capacity_tokens, needed)
    return OperatingPoint(
        batch=batch,
        ridge_point_flops_per_byte=ridge,
        decode_bytes_per_token=bytes_per_token,
        decode_flops_per_token=flops_per_token,
        decode_arithmetic_intensity=decode_ai,
        decode_speed_of_light_tokens_per_second=sol_tokens,
        decode_bound=bound,
        prefill_arithmetic_intensity=chunk.arithmetic_intensity_flops_per_byte,
        workload_arithmetic_intensity=workload_ai,
        crossover_batch=crossover_batch(live.model, roof, context, live.weights, live.kv_dtype, tp),
        decode_speed_of_light_ratio=sol_ratio,
        prefill_speed_of_light_ratio=prefill_ratio,
        decode_observed_bytes_per_token=observed_bytes,
        decode_observed_arithmetic_intensity=observed_ai,
        decode_achieved_flops_per_second=decode_flops,
        prefill_achieved_flops_per_second=prefill_flops,
        model_bandwidth_utilization_ratio=mbu,
        model_flops_utilization_ratio=mfu,
        tokens_per_step_per_sequence=tokens_per_step,
        speculative_acceptance_ratio=None if spec is None else spec.acceptance_rate,
        speculative_method=None if spec is None else spec.method,
        speculative_token_share=None if spec is None else spec.token_share,
        communication_seconds=communication_seconds,
        communication_share=communication_share,
        prefill_flops_upper_bound=prefill is not None and prefill.upper_bound,
        prefill_computed_tokens_per_second=prefill_rate,
        decode_model_flops_utilization_ratio=decode_mfu,
        prefill_tokens_per_step=per_step_prefill,
        kv_needed_tokens=needed,
        kv_headroom_ratio=headroom,
        model_flops_per_second=model_flops,
        model_bytes_per_second=model_bytes,
        engine_flops_per_second=live.engine_flops_per_second,
        engine_bytes_per_second=live.engine_bytes_per_second,
        hardware_bytes_per_second=live.dram_bytes_per_second,
        cross_check=check,
    )


@dataclass(frozen=True)
class _DecodeMode:
    """One kind of decode step the window ran and the share (0-1] of its tokens it emitted."""

    step: StepCost
    share: float

    def steps_per_second(self, decode_tokens_per_second: float) -> float:
        """Steps of this kind per second: its tokens/s over the tokens one step emits."""
        return decode_tokens_per_second * self.share / self.step.emitted_tokens


def _decode_modes(live: LiveWorkload, batch: int, context: int) -> list[_DecodeMode]:
    """The window's decode steps: speculative for ``token_share`` of the tokens, plain for the
    rest; one mode when the engine does not speculate or speculated throughout."""
    spec = live.speculation
    share = 0.0 if spec is None else spec.token_share

    def step(speculation: Speculation | None) -> StepCost:
        return decode_step(
            live.model,
            live.roof,
            batch,
            context,
            live.weights,
            live.kv_dtype,
            live.tensor_parallel,
            speculation=speculation,
            draft_model=live.draft_model if speculation is not None else None,
        )

    modes = []
    if spec is not None and share > 0:
        modes.append(_DecodeMode(step(spec), share))
    if share < 1:
        modes.append(_DecodeMode(step(None), 1.0 - share))
    return modes


def _fused(
    live: LiveWorkload, decode: StepCost, batch: int, context: int, prefill_tokens: int
) -> StepCost:
    """The decode step with ``prefill_tokens`` fused in: one weight read for all tokens."""
    if prefill_tokens < 1:
        return decode
    fused = mixed_step(
        live.model,
        live.roof,
        decode.verified_tokens,
        context,
        prefill_tokens,
        context,
        live.weights,
        live.kv_dtype,
        live.tensor_parallel,
    )
    if decode.verified_tokens != batch:
        # Speculative verification: the B (1 + k) positions read each sequence's KV once.
        extra_kv = (decode.verified_tokens - batch) * (decode.kv_read_bytes / batch)
        kv_read = fused.kv_read_bytes - extra_kv
        fused = _with_kv_read(live.roof, fused, kv_read)
    return StepCost(
        phase="decode",
        batch=batch,
        tokens=fused.tokens,
        context_tokens=context,
        weight_bytes=fused.weight_bytes,
        kv_read_bytes=fused.kv_read_bytes,
        kv_write_bytes=fused.kv_write_bytes,
        activation_bytes=fused.activation_bytes,
        flops=fused.flops,
        compute_seconds=fused.compute_seconds,
        memory_seconds=fused.memory_seconds,
        attention_flops=fused.attention_flops,
        communication_seconds=fused.communication_seconds,
        draft_bytes=decode.draft_bytes,
        draft_flops=decode.draft_flops,
        draft_seconds=decode.draft_seconds,
        verified_tokens=fused.verified_tokens,
        emitted_tokens=decode.emitted_tokens,
    )


def _with_kv_read(roof: Roof, step: StepCost, kv_read: float) -> StepCost:
    total = step.bytes - step.kv_read_bytes + kv_read
    return StepCost(
        phase=step.phase,
        batch=step.batch,
        tokens=step.tokens,
        context_tokens=step.context_tokens,
        weight_bytes=step.weight_bytes,
        kv_read_bytes=kv_read,
        kv_write_bytes=step.kv_write_bytes,
        activation_bytes=step.activation_bytes,
        flops=step.flops,
        compute_seconds=step.compute_seconds,
        memory_seconds=total / roof.peak_bandwidth_bytes_per_second,
        attention_flops=step.attention_flops,
        communication_seconds=step.communication_seconds,
        verified_tokens=step.verified_tokens,
        emitted_tokens=step.emitted_tokens,
    )
