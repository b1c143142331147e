"""Roofline speed of light for LLM decode and prefill steps, and MBU/MFU from observed rates.

Per GPU, one forward step moves ``bytes`` through HBM and does ``flops`` of maths. On a roof of
``peak_flops_per_second`` (FLOP/s) and ``peak_bandwidth_bytes_per_second`` (B/s)::

    compute_seconds = flops / peak_flops
    memory_seconds  = bytes / peak_bandwidth
    step_seconds    = max(compute_seconds, memory_seconds)      # speed of light
    arithmetic intensity = flops / bytes                        # FLOP/byte
    bound = "compute" when compute_seconds > memory_seconds, else "memory"
    ridge point = peak_flops / peak_bandwidth                   # FLOP/byte

A step is compute-bound exactly when its arithmetic intensity exceeds the ridge point. This is the
whole-step roofline; the scaling book's split form (attention always on the bandwidth roof) is
never faster, so this is the optimistic bound a monitor compares observed rates against.
Peaks are dense (no 2:4 sparsity) spec values; pass calibrated peaks for "achievable" SOL.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rooftop.classifiers.models import (
    KvDtype,
    ModelArchitecture,
    WeightFormat,
    activation_bytes_per_token,
    attended_token_layers,
    attention_flops_per_attended_token,
    effective_bits_per_weight,
    flops_per_token,
    kv_bytes_per_token,
    kv_bytes_per_token_per_layer,
    linear_parameters_per_token_per_gpu,
    weight_bytes_per_step,
)

Bound = Literal["memory", "compute"]
Phase = Literal["decode", "prefill"]

CROSSOVER_SEARCH_LIMIT = 65_536
"""Largest decode batch :func:`crossover_batch` tries; ``None`` means memory-bound up to it."""

COMPUTE_DTYPE: Mapping[WeightFormat, str] = {
    "bf16": "bf16",
    "fp16": "fp16",
    "fp8": "fp8",
    "int8": "int8",
    "int4-awq": "bf16",
    "int4-gptq": "bf16",
    "mxfp4": "bf16",
    "nvfp4": "fp4",
}
"""Tensor-core dtype whose peak bounds the maths for each weight format.

W8A8 formats (fp8, int8) multiply in 8 bits. Weight-only INT4 (AWQ/GPTQ, Marlin kernels) and
MXFP4 as served on Hopper (gpt-oss, W4A16) dequantize to 16-bit and use the BF16 peak. NVFP4
multiplies in FP4 on Blackwell; callers fall back to BF16 where a GPU has no FP4 peak (Hopper
runs NVFP4 checkpoints as W4A16).
"""


class RooflineInputError(ValueError):
    """A roofline input is out of range; the message names it."""


@dataclass(frozen=True)
class Roof:
    """A GPU's two ceilings: dense peak FLOP/s for the compute dtype, and memory bytes/s."""

    peak_flops_per_second: float
    peak_bandwidth_bytes_per_second: float

    def __post_init__(self) -> None:
        _require_finite_positive("peak_flops_per_second", self.peak_flops_per_second)
        _require_finite_positive(
            "peak_bandwidth_bytes_per_second", self.peak_bandwidth_bytes_per_second
        )

    @property
    def ridge_point_flops_per_byte(self) -> float:
        """``peak_flops / peak_bandwidth``: the intensity above which a step is compute-bound.
        H100 SXM BF16: 989.4e12 / 3.35e12 = 295 FLOP/byte."""
        return self.peak_flops_per_second / self.peak_bandwidth_bytes_per_second


@dataclass(frozen=True)
class DenseModel:
    """Napkin model: ``parameters`` weights all read every step, 2 FLOPs per weight per token,
    no KV cache, no activations."""

    parameters: float
    weights: WeightFormat = "bf16"
    name: str = ""

    def __post_init__(self) -> None:
        _require_finite_positive("parameters", self.parameters)
        effective_bits_per_weight(self.weights)  # rejects unknown formats

    @property
    def weight_bytes(self) -> float:
        """``parameters * effective_bits_per_weight(weights) / 8`` (bf16: 2 bytes each)."""
        return self.parameters * effective_bits_per_weight(self.weights) / 8


def dense_model(parameters: float, weights: WeightFormat = "bf16") -> DenseModel:
    """A :class:`DenseModel` of ``parameters`` weights, named after its size (``8B dense``)."""
    return DenseModel(parameters, weights, f"{parameters / 1e9:.4g}B dense")


Model = ModelArchitecture | DenseModel


@dataclass(frozen=True)
class StepCost:
    """Bytes, FLOPs and roofline time of one forward step on one GPU."""

    phase: Phase
    batch: int
    """Sequences in the step."""
    tokens: int
    """New tokens the step processes (decode: ``batch``; prefill: the chunk)."""
    context_tokens: int
    """Decode: tokens each sequence attends to. Prefill: tokens already cached before the chunk."""
    weight_bytes: float
    kv_read_bytes: float
    kv_write_bytes: float
    activation_bytes: float
    flops: float
    compute_seconds: float
    memory_seconds: float

    @property
    def bytes(self) -> float:
        """Total HBM bytes: weights + KV read + KV write + activations."""
        return self.weight_bytes + self.kv_read_bytes + self.kv_write_bytes + self.activation_bytes

    @property
    def arithmetic_intensity_flops_per_byte(self) -> float:
        return self.flops / self.bytes

    @property
    def step_seconds(self) -> float:
        """``max(compute_seconds, memory_seconds)``: the speed-of-light step time."""
        return max(self.compute_seconds, self.memory_seconds)

    @property
    def speed_of_light_tokens_per_second(self) -> float:
        """``tokens / step_seconds``: all sequences together (decode per-stream is ``1/step``)."""
        return self.tokens / self.step_seconds

    @property
    def bound(self) -> Bound:
        return "compute" if self.compute_seconds > self.memory_seconds else "memory"


def _cost(
    phase: Phase,
    roof: Roof,
    batch: int,
    tokens: int,
    context_tokens: int,
    weight_bytes: float,
    kv_read: float,
    kv_write: float,
    activations: float,
    flops: float,
) -> StepCost:
    total = weight_bytes + kv_read + kv_write + activations
    return StepCost(
        phase=phase,
        batch=batch,
        tokens=tokens,
        context_tokens=context_tokens,
        weight_bytes=weight_bytes,
        kv_read_bytes=kv_read,
        kv_write_bytes=kv_write,
        activation_bytes=activations,
        flops=flops,
        compute_seconds=flops / roof.peak_flops_per_second,
        memory_seconds=total / roof.peak_bandwidth_bytes_per_second,
    )


def decode_step(
    model: Model,
    roof: Roof,
    batch: int,
    context_tokens: int,
    weights: WeightFormat | None = None,
    kv_dtype: KvDtype = "bf16",
    tp: int = 1,
) -> StepCost:
    """One decode step: ``batch`` sequences each emit one token attending ``context_tokens``.

    Per GPU (research §3.1)::

        weight_bytes = weight_bytes_per_step(model, weights, T=batch, tp)   # MoE: E[distinct]
        kv_read      = batch * Σ_layers min(ctx, window) * kv_bytes_per_token_per_layer
        kv_write     = batch * kv_bytes_per_token
        activations  = batch * activation_bytes_per_token
        flops        = batch * (2 * linear_params_per_token + attention(ctx)) / tp

    ``weights`` None means the model's own format (declared in its config, else BF16). A
    :class:`DenseModel` has weights and ``2 * P * batch / tp`` FLOPs only.
    """
    _require_int("batch", batch, 1)
    _require_int("context_tokens", context_tokens, 0)
    _require_int("tp", tp, 1)
    if isinstance(model, DenseModel):
        fmt = weights or model.weights
        w = model.parameters * effective_bits_per_weight(fmt) / 8 / tp
        flops = 2.0 * model.parameters * batch / tp
        return _cost("decode", roof, batch, batch, context_tokens, w, 0.0, 0.0, 0.0, flops)
    fmt = weights or model.default_weight_format
    return _cost(
        "decode",
        roof,
        batch,
        batch,
        context_tokens,
        weight_bytes_per_step(model, fmt, batch, tp),
        batch
        * kv_bytes_per_token_per_layer(model, kv_dtype, tp)
        * attended_token_layers(model, context_tokens),
        batch * kv_bytes_per_token(model, kv_dtype, tp),
        batch * activation_bytes_per_token(model, tp),
        batch * flops_per_token(model, context_tokens, tp),
    )


def prefill_chunk(
    model: Model,
    roof: Roof,
    chunk_tokens: int,
    context_tokens: int = 0,
    weights: WeightFormat | None = None,
    kv_dtype: KvDtype = "bf16",
    tp: int = 1,
) -> StepCost:
    """One prefill step: ``chunk_tokens`` prompt tokens of one sequence, after
    ``context_tokens`` already cached (chunked prefill), per GPU.

    Causal attention: the i-th chunk token (1-based) attends ``context_tokens + i`` tokens, so
    ``attention = a * Σ_layers Σ_i min(context_tokens + i, window)`` with ``a`` the
    non-absorbed per-token-per-layer FLOPs (MLA prefill decompresses K and V). KV is read once
    per step (cached part and the chunk's own, as FlashAttention keeps tiles on chip) and the
    chunk's KV is written once. Weights: as decode with ``T = chunk_tokens``.
    """
    _require_int("chunk_tokens", chunk_tokens, 1)
    _require_int("context_tokens", context_tokens, 0)
    _require_int("tp", tp, 1)
    if isinstance(model, DenseModel):
        fmt = weights or model.weights
        w = model.parameters * effective_bits_per_weight(fmt) / 8 / tp
        flops = 2.0 * model.parameters * chunk_tokens / tp
        return _cost("prefill", roof, 1, chunk_tokens, context_tokens, w, 0.0, 0.0, 0.0, flops)
    fmt = weights or model.default_weight_format
    per_layer_kv = kv_bytes_per_token_per_layer(model, kv_dtype, tp)
    attention = attention_flops_per_attended_token(model, tp, mla_absorbed=False) * (
        _causal_attended_token_layers(model, context_tokens, chunk_tokens)
    )
    linear = 2.0 * linear_parameters_per_token_per_gpu(model, tp) * chunk_tokens
    return _cost(
        "prefill",
        roof,
        1,
        chunk_tokens,
        context_tokens,
        weight_bytes_per_step(model, fmt, chunk_tokens, tp),
        per_layer_kv * attended_token_layers(model, context_tokens),
        chunk_tokens * kv_bytes_per_token(model, kv_dtype, tp),
        chunk_tokens * activation_bytes_per_token(model, tp),
        linear + attention,
    )


def _causal_attended_token_layers(arch: ModelArchitecture, start: int, count: int) -> int:
    """``Σ_layers Σ_{c=start+1}^{start+count} min(c, window)``, in closed form per window."""

    def sum_min(window: int | None) -> int:
        lo, hi = start + 1, start + count
        top = hi if window is None else min(hi, window)
        below = (lo + top) * (top - lo + 1) // 2 if top >= lo else 0
        above = 0 if window is None else max(0, hi - max(lo - 1, window)) * window
        return below + above

    return sum(n * sum_min(w) for w, n in Counter(arch.layer_windows).items())


def crossover_batch(
    model: Model,
    roof: Roof,
    context_tokens: int,
    weights: WeightFormat | None = None,
    kv_dtype: KvDtype = "bf16",
    tp: int = 1,
    max_batch: int = CROSSOVER_SEARCH_LIMIT,
) -> int | None:
    """Smallest decode batch whose step is compute-bound at ``context_tokens``, or ``None``
    when even ``max_batch`` sequences stay memory-bound.

    Decode intensity rises with batch (weights are shared, KV and activations are per
    sequence), so a binary search finds the first compute-bound batch. It tends to
    ``flops_per_sequence / bytes_per_sequence``; at long context that limit sits below the
    ridge (per-sequence KV reads grow with context) and decode never turns compute-bound.
    Dense BF16 weights at short context cross near the ridge point (H100 SXM: ~295).
    """
    _require_int("max_batch", max_batch, 1)

    def compute_bound(batch: int) -> bool:
        step = decode_step(model, roof, batch, context_tokens, weights, kv_dtype, tp)
        return step.bound == "compute"

    if not compute_bound(max_batch):
        return None
    lo, hi = 1, max_batch
    while lo < hi:
        mid = (lo + hi) // 2
        if compute_bound(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


# --- observed utilisation ------------------------------------------------------------------


def model_bandwidth_utilization(
    bytes_per_token: float, tokens_per_second: float, peak_bandwidth_bytes_per_second: float
) -> float:
    """MBU (Databricks): achieved bandwidth / peak bandwidth, a ratio (0-1 under the roof).

    ``achieved = bytes_per_token * tokens_per_second``, where ``bytes_per_token`` is the step's
    bytes (weights touched + KV read) divided by the tokens it produced. At batch 1 that is
    "(model parameter bytes + KV bytes) / TPOT": 14 GB at 14 ms = 1 TB/s, on a 2 TB/s GPU an MBU
    of 0.5.
    """
    _require_non_negative("bytes_per_token", bytes_per_token)
    _require_non_negative("tokens_per_second", tokens_per_second)
    _require_finite_positive("peak_bandwidth_bytes_per_second", peak_bandwidth_bytes_per_second)
    return bytes_per_token * tokens_per_second / peak_bandwidth_bytes_per_second


def model_flops_utilization(
    flops_per_token: float, tokens_per_second: float, peak_flops_per_second: float
) -> float:
    """MFU (PaLM App. B): achieved model FLOP/s / peak FLOP/s, a ratio.

    ``achieved = flops_per_token * tokens_per_second`` with forward-only model FLOPs
    (``2 * active linear params + attention``), no rematerialisation.
    """
    _require_non_negative("flops_per_token", flops_per_token)
    _require_non_negative("tokens_per_second", tokens_per_second)
    _require_finite_positive("peak_flops_per_second", peak_flops_per_second)
    return flops_per_token * tokens_per_second / peak_flops_per_second


def _require_finite_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise RooflineInputError(f"{name} must be a positive finite number, got {value!r}")


def _require_non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise RooflineInputError(f"{name} must be a non-negative finite number, got {value!r}")


def _require_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RooflineInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
