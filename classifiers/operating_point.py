"""Where a live workload sits on the roofline: the model's costs at the live batch and context,
set against the rates the engine and the GPU counters report.

Pure: the sampler gathers the inputs, this module does the arithmetic. Per GPU throughout:
tensor parallelism divides bytes and FLOPs, while every GPU of the engine takes part in every
token, so the engine's token rates apply to each of its GPUs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from rooftop.classifiers.models import KvDtype, WeightFormat
from rooftop.classifiers.roofline import (
    Model,
    Roof,
    crossover_batch,
    decode_step,
    model_bandwidth_utilization,
    model_flops_utilization,
    prefill_chunk,
)

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
    ``context_tokens``: mean tokens each running sequence attends to.
    ``dram_bytes_per_second``: observed DRAM traffic from hardware counters (GPM/DCGM), or None.
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


def _flowing(rate: float | None) -> bool:
    return rate is not None and rate > MIN_TOKENS_PER_SECOND


def operating_point(live: LiveWorkload) -> OperatingPoint:
    """The live roofline figures.

    Decode, at batch ``B`` and context ``S`` (one step, per GPU)::

        bytes_per_token  = step_bytes / B          (weights touched + KV read + writes) / B
        flops_per_token  = step_flops / B
        SOL tokens/s     = B / max(step_bytes / BW, step_flops / FLOPS)
        SOL ratio        = decode tokens/s / SOL tokens/s
        observed bytes/token = DRAM bytes/s (counters) / decode tokens/s
        MBU = bytes_per_token x decode tokens/s / BW              (Databricks)
        MFU = (decode tokens/s x flops_per_token + prefill tokens/s x prefill flops/token) / FLOPS

    Prefill: a chunk of :data:`PREFILL_CHUNK_TOKENS` tokens after ``S`` cached ones gives the
    prefill intensity and FLOPs per prompt token; prefill SOL ratio is its FLOP/s over the roof.
    The workload intensity weighs both phases by their live rates (what the verdict compares
    with the ridge). The observed intensity is the model FLOP/s achieved (both phases) over the
    DRAM bytes/s the counters saw: left of the model's point means traffic the model does not
    account for.
    """
    batch = max(1, round(live.batch)) if live.batch is not None and live.batch >= 1 else 1
    context = max(0, live.context_tokens)
    roof = live.roof
    ridge = roof.peak_flops_per_second / roof.peak_bandwidth_bytes_per_second
    step = decode_step(
        live.model, roof, batch, context, live.weights, live.kv_dtype, live.tensor_parallel
    )
    chunk = prefill_chunk(
        live.model,
        roof,
        PREFILL_CHUNK_TOKENS,
        context,
        live.weights,
        live.kv_dtype,
        live.tensor_parallel,
    )
    bytes_per_token = step.bytes / batch
    flops_per_token = step.flops / batch
    prefill_flops_per_token = chunk.flops / PREFILL_CHUNK_TOKENS
    decode_rate = live.decode_tokens_per_second
    prefill_rate = live.prefill_tokens_per_second

    decode_flops = decode_rate * flops_per_token if decode_rate is not None else None
    prefill_flops = prefill_rate * prefill_flops_per_token if prefill_rate is not None else None
    sol_ratio = None
    observed_bytes = None
    mbu = None
    if _flowing(decode_rate):
        assert decode_rate is not None
        sol_ratio = decode_rate / step.speed_of_light_tokens_per_second
        mbu = model_bandwidth_utilization(
            bytes_per_token, decode_rate, roof.peak_bandwidth_bytes_per_second
        )
        if live.dram_bytes_per_second is not None:
            observed_bytes = live.dram_bytes_per_second / decode_rate
    elif decode_rate is not None:
        mbu = 0.0
    prefill_ratio = None
    if prefill_flops is not None:
        prefill_ratio = prefill_flops / roof.peak_flops_per_second
    mfu = None
    if decode_flops is not None or prefill_flops is not None:
        mfu = model_flops_utilization(
            1.0, (decode_flops or 0.0) + (prefill_flops or 0.0), roof.peak_flops_per_second
        )
    workload_ai = step.arithmetic_intensity_flops_per_byte
    achieved = (decode_flops or 0.0) + (prefill_flops or 0.0)
    moved = (decode_rate or 0.0) * bytes_per_token + (prefill_rate or 0.0) * (
        chunk.bytes / PREFILL_CHUNK_TOKENS
    )
    if achieved > 0 and moved > 0:
        workload_ai = achieved / moved
    observed_ai = None
    if live.dram_bytes_per_second and live.dram_bytes_per_second > 0 and achieved > 0:
        observed_ai = achieved / live.dram_bytes_per_second
    return OperatingPoint(
        batch=batch,
        ridge_point_flops_per_byte=ridge,
        decode_bytes_per_token=bytes_per_token,
        decode_flops_per_token=flops_per_token,
        decode_arithmetic_intensity=step.arithmetic_intensity_flops_per_byte,
        decode_speed_of_light_tokens_per_second=step.speed_of_light_tokens_per_second,
        decode_bound=step.bound,
        prefill_arithmetic_intensity=chunk.arithmetic_intensity_flops_per_byte,
        workload_arithmetic_intensity=workload_ai,
        crossover_batch=crossover_batch(
            live.model, roof, context, live.weights, live.kv_dtype, live.tensor_parallel
        ),
        decode_speed_of_light_ratio=sol_ratio,
        prefill_speed_of_light_ratio=prefill_ratio,
        decode_observed_bytes_per_token=observed_bytes,
        decode_observed_arithmetic_intensity=observed_ai,
        decode_achieved_flops_per_second=decode_flops,
        prefill_achieved_flops_per_second=prefill_flops,
        model_bandwidth_utilization_ratio=mbu,
        model_flops_utilization_ratio=mfu,
    )
