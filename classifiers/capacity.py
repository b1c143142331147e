"""Does a model fit: weights plus the KV cache of ``batch`` sequences against GPU memory. Pure.

Per GPU, at tensor-parallel degree ``tp``::

    usable         = memory_bytes x memory_utilization            (vLLM --gpu-memory-utilization)
    kv_per_seq     = Σ_layers min(ctx, window) x kv_bytes_per_token_per_layer(kv_dtype, tp)
    needed(batch)  = weight_bytes(tp) + batch x kv_per_seq
    fits           = needed(batch) <= usable
    max_batch      = floor((usable - weight_bytes) / kv_per_seq)  (0 when weights alone overflow)

Sliding-window layers keep only their window (vLLM's hybrid KV-cache manager frees blocks
that fall out of the window), so they count ``min(ctx, window)`` tokens. Activations, CUDA
graphs and the sampler's workspace also live in the usable share; engines profile them at
start-up, this model leaves them out, so ``max_batch`` is an upper bound. Llama-3.1-8B BF16 on
an 80 GB GPU at 128k context: 16.06 GB of weights, 17.2 GB of KV per sequence, 72 GB usable,
so 3 sequences fit and batch 64 (1.1 TB of KV) does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rooftop.classifiers.models import (
    KvDtype,
    ModelArchitecture,
    WeightFormat,
    kv_bytes_read_per_sequence,
    stored_weight_bytes,
)
from rooftop.classifiers.roofline import DenseModel, Model

DEFAULT_MEMORY_UTILIZATION = 0.90
"""Share of GPU memory an engine may use: vLLM's ``--gpu-memory-utilization`` default 0.9
(SGLang's ``--mem-fraction-static`` is set per GPU size, 0.8-0.9)."""


class CapacityInputError(ValueError):
    """A capacity input is out of range; the message names it."""


@dataclass(frozen=True)
class Capacity:
    """Memory budget of one GPU for one model at one context.

    ``kv_bytes_per_sequence`` is 0 for a :class:`DenseModel` (no KV modelled): then every batch
    fits once the weights do and ``max_batch`` is ``None`` (unbounded here).
    """

    memory_bytes: float
    usable_bytes: float
    weight_bytes: float
    kv_bytes_per_sequence: float
    context_tokens: int

    @property
    def weights_fit(self) -> bool:
        return self.weight_bytes <= self.usable_bytes

    @property
    def max_batch(self) -> int | None:
        """The largest batch whose KV fits beside the weights; ``None`` when KV is not
        modelled and the weights fit."""
        free = self.usable_bytes - self.weight_bytes
        if free < 0:
            return 0
        if self.kv_bytes_per_sequence <= 0:
            return None
        return math.floor(free / self.kv_bytes_per_sequence)

    def needed_bytes(self, batch: int) -> float:
        """Weights plus ``batch`` sequences of KV, bytes per GPU."""
        return self.weight_bytes + batch * self.kv_bytes_per_sequence

    def fits(self, batch: int) -> bool:
        """Whether ``batch`` sequences at this context fit in the usable memory."""
        return self.needed_bytes(batch) <= self.usable_bytes


def capacity(
    model: Model,
    memory_bytes: float,
    context_tokens: int,
    weights: WeightFormat | None = None,
    kv_dtype: KvDtype = "bf16",
    tp: int = 1,
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
) -> Capacity:
    """The :class:`Capacity` of one GPU (``memory_bytes``) for ``model`` split over ``tp``."""
    if not math.isfinite(memory_bytes) or memory_bytes <= 0:
        raise CapacityInputError(f"memory_bytes must be positive, got {memory_bytes!r}")
    if not 0 < memory_utilization <= 1:
        raise CapacityInputError(
            f"memory_utilization must be a share in (0, 1], got {memory_utilization!r}"
        )
    if isinstance(context_tokens, bool) or context_tokens < 0:
        raise CapacityInputError(f"context_tokens must be >= 0, got {context_tokens!r}")
    if isinstance(model, DenseModel):
        fmt = weights or model.weights
        weight_bytes = DenseModel(model.parameters, fmt).weight_bytes / tp
        kv = 0.0
    else:
        arch: ModelArchitecture = model
        weight_bytes = stored_weight_bytes(arch, weights or arch.default_weight_format, tp)
        kv = kv_bytes_read_per_sequence(arch, kv_dtype, context_tokens, tp)
    return Capacity(
        memory_bytes=memory_bytes,
        usable_bytes=memory_bytes * memory_utilization,
        weight_bytes=weight_bytes,
        kv_bytes_per_sequence=kv,
        context_tokens=context_tokens,
    )


def kv_headroom_ratio(engine_kv_capacity_tokens: float, needed_tokens: float) -> float | None:
    """Engine KV capacity over what the live workload needs (``batch x context`` tokens):
    above 1 the cache has room, below 1 the engine must preempt or queue; ``None`` when
    nothing is needed."""
    if needed_tokens <= 0:
        return None
    if engine_kv_capacity_tokens < 0:
        raise CapacityInputError("engine KV capacity must not be negative")
    return engine_kv_capacity_tokens / needed_tokens
