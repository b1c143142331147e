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

Production effects, each charged where it happens:

- **Mixed compute dtypes.** FP8/INT8 GEMMs run at the 8-bit peak while attention
  (FlashAttention, FlashMLA) runs in BF16, so ``compute_seconds = linear_flops / peak +
  attention_flops / attention_peak`` (:attr:`Roof.attention_flops_per_second`).
- **Communication.** Under tensor parallelism the step's all-reduces
  (:mod:`~rooftop.classifiers.communication`) sit on the critical path:
  ``step_seconds = max(compute, memory) + communication_seconds``.
- **Speculative decoding.** The target verifies ``B x (1 + k)`` tokens with one weight read, the
  drafter adds its own steps (``draft_seconds``), and the step emits ``B x (1 + k alpha)``
  tokens (:mod:`~rooftop.classifiers.speculative`).
- **Fused chunked prefill.** :func:`mixed_step` reads the weights once for the decode tokens and
  the prefill chunk together.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from rooftop.classifiers.communication import step_communication_seconds
from rooftop.classifiers.hardware import Interconnect
from rooftop.classifiers.models import (
    KvDtype,
    ModelArchitecture,
    WeightFormat,
    activation_bytes_per_token,
    attended_token_layers,
    attention_flops_per_attended_token,
    attention_flops_per_token,
    effective_bits_per_weight,
    flops_per_token,
    kv_bytes_per_token,
    kv_bytes_per_token_per_layer,
    linear_parameters_per_token_per_gpu,
    lm_head_bytes_per_gpu,
    weight_bytes_per_step,
)
from rooftop.classifiers.speculative import FREE_METHODS, Speculation

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
    """A GPU's ceilings: dense peak FLOP/s for the GEMM dtype, memory bytes/s, and optionally
    the attention peak and the tensor-parallel link.

    ``attention_flops_per_second``: the peak attention kernels run at (BF16 for FlashAttention
    and FlashMLA even when the GEMMs are FP8); ``None`` means the GEMM peak.
    ``interconnect``: the GPU's link for TP collectives; ``None`` leaves communication out.
    """

    peak_flops_per_second: float
    peak_bandwidth_bytes_per_second: float
    attention_flops_per_second: float | None = None
    interconnect: Interconnect | None = None

    def __post_init__(self) -> None:
        _require_finite_positive("peak_flops_per_second", self.peak_flops_per_second)
        _require_finite_positive(
            "peak_bandwidth_bytes_per_second", self.peak_bandwidth_bytes_per_second
        )
        if self.attention_flops_per_second is not None:
            _require_finite_positive("attention_flops_per_second", self.attention_flops_per_second)

    @property
    def attention_peak_flops_per_second(self) -> float:
        """The attention peak, the GEMM peak when none is given."""
        return self.attention_flops_per_second or self.peak_flops_per_second

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
    attention_flops: float = 0.0
    """The part of ``flops`` in attention (charged at the attention peak)."""
    communication_seconds: float = 0.0
    """TP collective time on the step's critical path (0 at TP 1 or without a link figure)."""
    draft_bytes: float = 0.0
    """HBM bytes of the speculative drafter's steps (included in :attr:`bytes`)."""
    draft_flops: float = 0.0
    """FLOPs of the drafter's steps (included in :attr:`total_flops`)."""
    draft_seconds: float = 0.0
    """Roofline time of the drafter's steps (they run before verification, not beside it)."""
    verified_tokens: int = -1
    """Tokens the target model runs: ``batch x (1 + k)`` with speculation, else ``tokens``
    (the default -1 stands for ``tokens``)."""
    emitted_tokens: float = -1.0
    """Tokens the step yields to users: decode ``batch x (1 + k alpha)``, a fused step its
    decode batch, prefill the chunk (the default -1 stands for ``tokens``)."""

    def __post_init__(self) -> None:
        if self.verified_tokens < 0:
            object.__setattr__(self, "verified_tokens", self.tokens)
        if self.emitted_tokens < 0:
            object.__setattr__(self, "emitted_tokens", float(self.tokens))

    @property
    def bytes(self) -> float:
        """Total HBM bytes: weights + KV read + KV write + activations (+ the drafter's)."""
        return (
            self.weight_bytes
            + self.kv_read_bytes
            + self.kv_write_bytes
            + self.activation_bytes
            + self.draft_bytes
        )

    @property
    def total_flops(self) -> float:
        """Target FLOPs plus the drafter's."""
        return self.flops + self.draft_flops

    @property
    def arithmetic_intensity_flops_per_byte(self) -> float:
        return self.total_flops / self.bytes

    @property
    def roofline_seconds(self) -> float:
        """``max(compute_seconds, memory_seconds)`` of the target's step alone."""
        return max(self.compute_seconds, self.memory_seconds)

    @property
    def step_seconds(self) -> float:
        """Speed-of-light step time: ``max(compute, memory) + draft_seconds +
        communication_seconds``."""
        return self.roofline_seconds + self.draft_seconds + self.communication_seconds

    @property
    def communication_share(self) -> float:
        """Share of the step spent in collectives (0-1)."""
        return self.communication_seconds / self.step_seconds

    @property
    def tokens_per_step_per_sequence(self) -> float:
        """Tokens each decoding sequence emits per step (1 without speculation)."""
        return self.emitted_tokens / self.batch if self.phase == "decode" else 0.0

    @property
    def speed_of_light_tokens_per_second(self) -> float:
        """``emitted_tokens / step_seconds``: all sequences together."""
        return self.emitted_tokens / self.step_seconds

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
    attention_flops: float = 0.0,
    communication: float = 0.0,
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
        compute_seconds=_compute_seconds(roof, flops, attention_flops),
        memory_seconds=total / roof.peak_bandwidth_bytes_per_second,
        attention_flops=attention_flops,
        communication_seconds=communication,
    )


def _compute_seconds(roof: Roof, flops: float, attention_flops: float) -> float:
    """``(flops - attention) / GEMM peak + attention / attention peak``."""
    linear = flops - attention_flops
    return (
        linear / roof.peak_flops_per_second + attention_flops / roof.attention_peak_flops_per_second
    )


def decode_step(
    model: Model,
    roof: Roof,
    batch: int,
    context_tokens: int,
    weights: WeightFormat | None = None,
    kv_dtype: KvDtype = "bf16",
    tp: int = 1,
    *,
    speculation: Speculation | None = None,
    draft_model: Model | None = None,
) -> StepCost:
    """One decode step: ``batch`` sequences each emit one token attending ``context_tokens``.

    Per GPU (research §3.1), with ``T = batch x (1 + k)`` verified tokens (``k`` = 0 without
    speculation)::

        weight_bytes = weight_bytes_per_step(model, weights, T, tp)   # MoE: E[distinct] for T
        kv_read      = batch * Σ_layers min(ctx, window) * kv_bytes_per_token_per_layer
        kv_write     = T * kv_bytes_per_token
        activations  = T * activation_bytes_per_token
        flops        = T * (2 * linear_params_per_token_per_gpu + attention(ctx))
        communication = (2 L + 1) all-reduces of T x d x 2 bytes (TP > 1, link known)

    Each sequence's ``1 + k`` query positions share one read of its KV (FlashAttention decode
    with several queries per sequence). With speculation the drafter's cost is added
    (:func:`draft_cost`) and the step emits ``batch x (1 + k alpha)`` tokens.

    ``weights`` None means the model's own format (declared in its config, else BF16). A
    :class:`DenseModel` has weights and ``2 * P * T / tp`` FLOPs only.
    """
    _require_int("batch", batch, 1)
    _require_int("context_tokens", context_tokens, 0)
    _require_int("tp", tp, 1)
    verified = batch * (1 if speculation is None else speculation.verified_tokens_per_sequence)
    if isinstance(model, DenseModel):
        fmt = weights or model.weights
        w = model.parameters * effective_bits_per_weight(fmt) / 8 / tp
        flops = 2.0 * model.parameters * verified / tp
        step = _cost("decode", roof, batch, batch, context_tokens, w, 0.0, 0.0, 0.0, flops)
    else:
        fmt = weights or model.default_weight_format
        attention = verified * attention_flops_per_token(model, context_tokens, tp)
        step = _cost(
            "decode",
            roof,
            batch,
            batch,
            context_tokens,
            weight_bytes_per_step(model, fmt, verified, tp),
            batch
            * kv_bytes_per_token_per_layer(model, kv_dtype, tp)
            * attended_token_layers(model, context_tokens),
            verified * kv_bytes_per_token(model, kv_dtype, tp),
            verified * activation_bytes_per_token(model, tp),
            verified * flops_per_token(model, context_tokens, tp),
            attention,
            step_communication_seconds(model, verified, tp, roof.interconnect),
        )
    if speculation is None:
        return step
    draft = draft_cost(
        model, roof, batch, context_tokens, speculation, draft_model, fmt, kv_dtype, tp
    )
    return replace(
        step,
        draft_bytes=draft.bytes,
        draft_flops=draft.flops,
        draft_seconds=draft.seconds,
        verified_tokens=verified,
        emitted_tokens=batch * speculation.tokens_per_step_per_sequence,
    )


@dataclass(frozen=True)
class DraftCost:
    """Bytes, FLOPs and roofline seconds of one step's drafting, per GPU."""

    bytes: float
    flops: float
    seconds: float


def draft_cost(
    model: Model,
    roof: Roof,
    batch: int,
    context_tokens: int,
    speculation: Speculation,
    draft_model: Model | None,
    weights: WeightFormat,
    kv_dtype: KvDtype,
    tp: int,
) -> DraftCost:
    """What proposing ``k`` draft tokens for ``batch`` sequences costs, per GPU.

    - ``ngram``/``suffix``: host-side lookup, nothing on the GPU.
    - ``draft_model``: ``k`` decode steps of ``draft_model`` at ``batch`` (it must be given).
    - ``eagle``/``eagle3``/``mtp``: ``k`` sequential passes of a head of one target decoder
      layer plus the target's LM head: per pass the weights of ``1/L`` of the target's decoder
      (at ``batch`` tokens) and the LM head, one layer's KV read per sequence, matching FLOPs.
      DeepSeek-V3's MTP module is one MoE layer and the shared head; EAGLE is one dense layer.
    - ``medusa``: one pass of ``k`` heads, each a ``d x d`` residual block and an LM head.

    Each pass runs at its own roofline time ``max(compute, memory)`` plus its collectives.
    """
    k = speculation.num_speculative_tokens
    if speculation.method in FREE_METHODS:
        return DraftCost(0.0, 0.0, 0.0)
    if speculation.method == "draft_model":
        if draft_model is None:
            raise RooflineInputError(
                "speculative method 'draft_model' needs the draft model (its id or config)"
            )
        one = decode_step(draft_model, roof, batch, context_tokens, None, kv_dtype, tp)
        return DraftCost(k * one.bytes, k * one.flops, k * one.step_seconds)
    if isinstance(model, DenseModel):
        raise RooflineInputError(
            f"speculative method {speculation.method!r} needs the model's architecture "
            "(--model), not a parameter count"
        )
    head = lm_head_bytes_per_gpu(model, tp)
    head_flops = 2.0 * model.hidden_size * model.vocab_size / tp * batch
    if speculation.method == "medusa":
        block = 2.0 * model.hidden_size * model.hidden_size / tp
        pass_bytes = k * (head + block)
        pass_flops = k * (head_flops + block * batch)
        seconds = max(
            pass_flops / roof.peak_flops_per_second,
            pass_bytes / roof.peak_bandwidth_bytes_per_second,
        )
        return DraftCost(pass_bytes, pass_flops, seconds)
    layers = model.num_layers
    body = weight_bytes_per_step(model, weights, batch, tp) - head
    layer_bytes = body / layers + head
    layer_kv = batch * kv_bytes_per_token_per_layer(model, kv_dtype, tp) * context_tokens
    layer_kv_write = batch * kv_bytes_per_token_per_layer(model, kv_dtype, tp)
    body_flops = 2.0 * linear_parameters_per_token_per_gpu(model, tp) * batch - head_flops
    attention = batch * attention_flops_per_attended_token(model, tp) * context_tokens
    pass_bytes = layer_bytes + layer_kv + layer_kv_write
    pass_flops = body_flops / layers + head_flops + attention
    communication = 3 * _one_layer_communication(model, batch, tp, roof)
    seconds = (
        max(
            _compute_seconds(roof, pass_flops, attention),
            pass_bytes / roof.peak_bandwidth_bytes_per_second,
        )
        + communication
    )
    return DraftCost(k * pass_bytes, k * pass_flops, k * seconds)


def _one_layer_communication(model: ModelArchitecture, tokens: int, tp: int, roof: Roof) -> float:
    """One all-reduce of ``tokens`` activations (a draft head has ~3: embedding, attention,
    MLP)."""
    whole = step_communication_seconds(model, tokens, tp, roof.interconnect)
    return whole / (2 * model.num_layers + 1)


def mixed_step(
    model: Model,
    roof: Roof,
    decode_batch: int,
    context_tokens: int,
    prefill_tokens: int,
    prefill_context_tokens: int = 0,
    weights: WeightFormat | None = None,
    kv_dtype: KvDtype = "bf16",
    tp: int = 1,
) -> StepCost:
    """One fused chunked-prefill step: ``decode_batch`` sequences decode one token each at
    ``context_tokens`` while ``prefill_tokens`` prompt tokens of one prefilling sequence (with
    ``prefill_context_tokens`` already cached) ride in the same forward pass.

    The weights are read once for ``T = decode_batch + prefill_tokens`` tokens (MoE: distinct
    experts for ``T``); KV reads, writes, activations and FLOPs are the sum of the decode part
    and the prefill chunk's (causal attention over its own tokens); one set of all-reduces
    carries all ``T`` tokens. The step emits ``decode_batch`` tokens: requests still
    prefilling are not in the decode batch. ``decode_batch`` may be 0 (a prefill-only step).
    """
    _require_int("decode_batch", decode_batch, 0)
    _require_int("prefill_tokens", prefill_tokens, 0)
    _require_int("context_tokens", context_tokens, 0)
    _require_int("prefill_context_tokens", prefill_context_tokens, 0)
    _require_int("tp", tp, 1)
    tokens = decode_batch + prefill_tokens
    if tokens < 1:
        raise RooflineInputError("a mixed step needs decode_batch or prefill_tokens >= 1")
    if isinstance(model, DenseModel):
        fmt = weights or model.weights
        w = model.parameters * effective_bits_per_weight(fmt) / 8 / tp
        flops = 2.0 * model.parameters * tokens / tp
        return replace(
            _cost("decode", roof, max(1, decode_batch), tokens, context_tokens, w, 0, 0, 0, flops),
            emitted_tokens=float(decode_batch),
        )
    fmt = weights or model.default_weight_format
    per_layer_kv = kv_bytes_per_token_per_layer(model, kv_dtype, tp)
    decode_attention = decode_batch * attention_flops_per_token(model, context_tokens, tp)
    prefill_attention = 0.0
    prefill_kv_read = 0.0
    if prefill_tokens:
        prefill_attention = attention_flops_per_attended_token(
            model, tp, mla_absorbed=False
        ) * _causal_attended_token_layers(model, prefill_context_tokens, prefill_tokens)
        prefill_kv_read = per_layer_kv * attended_token_layers(model, prefill_context_tokens)
    linear = 2.0 * linear_parameters_per_token_per_gpu(model, tp) * tokens
    attention = decode_attention + prefill_attention
    step = _cost(
        "decode",
        roof,
        max(1, decode_batch),
        tokens,
        context_tokens,
        weight_bytes_per_step(model, fmt, tokens, tp),
        decode_batch * per_layer_kv * attended_token_layers(model, context_tokens)
        + prefill_kv_read,
        tokens * kv_bytes_per_token(model, kv_dtype, tp),
        tokens * activation_bytes_per_token(model, tp),
        linear + attention,
        attention,
        step_communication_seconds(model, tokens, tp, roof.interconnect),
    )
    return replace(step, verified_tokens=tokens, emitted_tokens=float(decode_batch))


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
        attention,
        step_communication_seconds(model, chunk_tokens, tp, roof.interconnect),
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
