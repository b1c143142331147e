"""Three-way cross-check: rooftop's model figure, the engine's own estimate and the hardware
counter, side by side. Pure.

vLLM (``vllm:estimated_flops_per_gpu_total``, ``vllm:estimated_read_bytes_per_gpu_total``,
``vllm:estimated_write_bytes_per_gpu_total``, behind ``--enable-mfu-metrics``) and SGLang
(``sglang:estimated_*_per_gpu_total``) estimate FLOPs and bytes per GPU themselves; GPM/DCGM
measure DRAM traffic (``DRAM_BW_UTIL`` x peak bandwidth). Each source is set against the
model (``engine / model``, ``hardware / model``; ``hardware / engine`` only when the model has no
figure), so the source that strays is the one named; the largest disagreement is the ratio
furthest from 1 on a log scale (0.5x and 2x are equally far), reported when it lies outside
``1 / tolerance .. tolerance``.

Hints name the usual cause when the workload says which:

- MoE and the engine's bytes below the model's: the model counts the distinct experts a step
  reads (``E (1 - (1 - k/E)^T)``); an estimate that reads only each token's share of experts,
  or one step's worth of experts for the whole batch, "ignores MoE expert reuse".
- MoE and the engine's bytes above: it counts ``T x k`` expert reads, as if no two tokens of
  a step shared an expert.
- prefill FLOPs an upper bound and the engine's FLOPs below the model's: the engine skips the
  prefix-cache hits the model had to count.
- hardware bytes above the model's: traffic the model does not count (activation spills,
  other processes); below: L2 reuse the roofline ignores, or KV the model over-counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Quantity = Literal["flops", "bytes"]
Pair = Literal["engine/model", "hardware/model", "hardware/engine"]

DEFAULT_TOLERANCE = 1.25
"""Ratios within 0.8x-1.25x count as agreement: the model's own approximations (uniform
routing, no L2 reuse, scales) and one scrape interval's skew between sources stay within this.
rooftop's choice."""


@dataclass(frozen=True)
class Disagreement:
    """The pair of sources furthest apart."""

    quantity: Quantity
    pair: Pair
    ratio: float
    phrase: str
    """A human line, e.g. ``engine estimate 0.6x model bytes: it ignores MoE expert reuse``."""


@dataclass(frozen=True)
class CrossCheck:
    """Model, engine and hardware figures (per GPU, per second) and their ratios."""

    model_flops_per_second: float | None
    engine_flops_per_second: float | None
    model_bytes_per_second: float | None
    engine_bytes_per_second: float | None
    hardware_bytes_per_second: float | None
    largest: Disagreement | None

    def ratio(self, quantity: Quantity, pair: Pair) -> float | None:
        """``other / model`` (or hardware / engine) for one quantity, ``None`` when either is
        missing or the denominator is 0."""
        if quantity == "flops":
            model, engine, hardware = (
                self.model_flops_per_second,
                self.engine_flops_per_second,
                None,
            )
        else:
            model, engine, hardware = (
                self.model_bytes_per_second,
                self.engine_bytes_per_second,
                self.hardware_bytes_per_second,
            )
        num, den = {
            "engine/model": (engine, model),
            "hardware/model": (hardware, model),
            "hardware/engine": (hardware, engine),
        }[pair]
        if num is None or den is None or den <= 0:
            return None
        return num / den


_NAMES: dict[Pair, tuple[str, str]] = {
    "engine/model": ("engine estimate", "model"),
    "hardware/model": ("hardware counters", "model"),
    "hardware/engine": ("hardware counters", "engine estimate"),
}


def _hint(
    quantity: Quantity, pair: Pair, ratio: float, *, moe: bool, prefill_upper_bound: bool
) -> str:
    if pair == "engine/model" and quantity == "bytes" and moe:
        if ratio < 1:
            return "it ignores MoE expert reuse (the model counts distinct experts per step)"
        return "it counts top-k expert reads per token, as if tokens shared no expert"
    if pair == "engine/model" and quantity == "flops" and prefill_upper_bound and ratio < 1:
        return "the engine skips prefix-cache hits the model had to count"
    if pair.startswith("hardware") and quantity == "bytes":
        if ratio > 1:
            return "traffic the model does not count (spills, other processes)"
        return "L2 reuse the roofline ignores, or KV the model over-counts"
    return ""


def cross_check(
    *,
    model_flops_per_second: float | None,
    engine_flops_per_second: float | None,
    model_bytes_per_second: float | None,
    engine_bytes_per_second: float | None,
    hardware_bytes_per_second: float | None,
    moe: bool = False,
    prefill_upper_bound: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
) -> CrossCheck:
    """Compare the figures that are present and name the largest disagreement."""
    if not math.isfinite(tolerance) or tolerance <= 1:
        raise ValueError(f"tolerance must be a ratio > 1, got {tolerance!r}")
    for name, value in (
        ("model_flops_per_second", model_flops_per_second),
        ("engine_flops_per_second", engine_flops_per_second),
        ("model_bytes_per_second", model_bytes_per_second),
        ("engine_bytes_per_second", engine_bytes_per_second),
        ("hardware_bytes_per_second", hardware_bytes_per_second),
    ):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ValueError(f"{name} must be a finite rate >= 0, got {value!r}")
    check = CrossCheck(
        model_flops_per_second,
        engine_flops_per_second,
        model_bytes_per_second,
        engine_bytes_per_second,
        hardware_bytes_per_second,
        None,
    )
    worst: tuple[float, Quantity, Pair, float] | None = None
    for quantity in ("flops", "bytes"):
        for pair in ("engine/model", "hardware/model", "hardware/engine"):
            if pair == "hardware/engine" and _model_figure(check, quantity) is not None:
                continue
            r = check.ratio(quantity, pair)
            if r is None or r <= 0:
                continue
            distance = abs(math.log(r))
            if worst is None or distance > worst[0]:
                worst = (distance, quantity, pair, r)
    if worst is None or worst[0] <= math.log(tolerance):
        return check
    _, quantity, pair, r = worst
    who, whom = _NAMES[pair]
    unit = "FLOP/s" if quantity == "flops" else "bytes/s"
    phrase = f"{who} {r:.2g}x {whom} {unit}"
    hint = _hint(quantity, pair, r, moe=moe, prefill_upper_bound=prefill_upper_bound)
    if hint:
        phrase += f": {hint}"
    return CrossCheck(
        model_flops_per_second,
        engine_flops_per_second,
        model_bytes_per_second,
        engine_bytes_per_second,
        hardware_bytes_per_second,
        Disagreement(quantity, pair, r, phrase),
    )


def _model_figure(check: CrossCheck, quantity: Quantity) -> float | None:
    if quantity == "flops":
        return check.model_flops_per_second
    return check.model_bytes_per_second
