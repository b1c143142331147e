"""Validate an engine's reading at the source boundary: drop, and name, every impossible value.

One engine exporting ``vllm:num_requests_running -8``, a generation counter wrapped to a large
negative int64, NaN, ±Inf or an absurd magnitude must cost only that value: the field becomes
``None`` (as if the engine did not export it this cycle), its name and the reason go into
:attr:`EngineReading.rejected`, and the engine's other values and every other source carry on.
Nothing downstream (rates, roofline, verdict) ever sees a value outside these bounds.

Bounds, and why:

- cumulative counters (tokens, FLOPs, bytes; histogram sums and counts): finite, ``>= 0`` and
  at most :data:`MAX_COUNTER` = 2**53, beyond which a float64 can no longer count by one (an
  int64 wrap shows up as about -9.2e18, a corrupted one as 1e300);
- request gauges: finite, ``>= 0``, at most :data:`MAX_REQUESTS` (no engine holds a million
  requests at once);
- speculative-decoding and prefix-cache counters: as counters; accept length as a gauge;
- KV usage and prefix-cache hit ratios: finite, in ``[0, 1]`` (a hair above 1 from float
  rounding is kept, clamped);
- KV capacity: finite, ``>= 0``, at most :data:`MAX_KV_TOKENS`; block size ``1 ..``
  :data:`MAX_BLOCK_TOKENS`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Final

from rooftop.exporter.sources.engines.base import EngineReading

MAX_COUNTER: Final = float(2**53)
MAX_REQUESTS: Final = 1_000_000.0
MAX_KV_TOKENS: Final = 1e10
MAX_BLOCK_TOKENS: Final = 1_000_000
RATIO_ROUNDING: Final = 1e-6

COUNTER_FIELDS: Final = (
    "prompt_tokens_total",
    "prefill_computed_tokens_total",
    "generation_tokens_total",
    "estimated_flops_total",
    "estimated_read_bytes_total",
    "estimated_write_bytes_total",
    "spec_drafts_total",
    "spec_draft_tokens_total",
    "spec_accepted_tokens_total",
    "prefix_cache_queries_total",
    "prefix_cache_hits_total",
)
PAIR_FIELDS: Final = (
    "inter_token_latency_sum_count",
    "time_to_first_token_sum_count",
    "iteration_tokens_sum_count",
)
REQUEST_FIELDS: Final = ("requests_running", "requests_waiting")
CUMULATIVE_FIELDS: Final = (*COUNTER_FIELDS, *PAIR_FIELDS, "spec_accepted_per_position_total")
"""Every reading field that is a cumulative counter (or a pair or tuple of them)."""


def _why_not(value: float, upper: float) -> str | None:
    """Why ``value`` is not a number in ``[0, upper]``, or ``None`` when it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"not a number ({type(value).__name__})"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return f"{value:+}"
    if value < 0:
        return f"negative ({value:g})"
    if value > upper:
        return f"{value:g} is over the bound of {upper:g}"
    return None


def check_reading(reading: EngineReading) -> EngineReading:
    """``reading`` with every impossible value set to ``None`` and named in ``rejected``."""
    rejected: list[str] = []
    fixes: dict[str, object] = {}

    def reject(name: str, why: str) -> None:
        rejected.append(f"{name}: {why}")
        fixes[name] = None

    for name in COUNTER_FIELDS:
        value = getattr(reading, name)
        if value is not None and (why := _why_not(value, MAX_COUNTER)) is not None:
            reject(name, why)
    for name in PAIR_FIELDS:
        pair = getattr(reading, name)
        if pair is None:
            continue
        for part, value in zip(("sum", "count"), pair, strict=False):
            if (why := _why_not(value, MAX_COUNTER)) is not None:
                reject(name, f"{part} {why}")
                break
    for name in REQUEST_FIELDS:
        value = getattr(reading, name)
        if value is not None and (why := _why_not(value, MAX_REQUESTS)) is not None:
            reject(name, why)
    positions = reading.spec_accepted_per_position_total
    if positions is not None:
        for value in positions:
            if (why := _why_not(value, MAX_COUNTER)) is not None:
                reject("spec_accepted_per_position_total", why)
                break
    accept_length = reading.spec_accept_length
    if accept_length is not None and (why := _why_not(accept_length, MAX_REQUESTS)) is not None:
        reject("spec_accept_length", why)
    for name in ("kv_usage_ratio", "prefix_cache_hit_ratio"):
        ratio = getattr(reading, name)
        if ratio is None:
            continue
        why = _why_not(ratio, 1.0 + RATIO_ROUNDING)
        if why is not None:
            reject(name, why)
        elif ratio > 1.0:
            fixes[name] = 1.0
    capacity = reading.kv_capacity_tokens
    if capacity is not None and (why := _why_not(capacity, MAX_KV_TOKENS)) is not None:
        reject("kv_capacity_tokens", why)
    block = reading.kv_block_size_tokens
    if block is not None:
        why = _why_not(block, MAX_BLOCK_TOKENS)
        if why is None and block < 1:
            why = "below 1"
        if why is not None:
            reject("kv_block_size_tokens", why)
    if not fixes:
        return reading
    return dataclasses.replace(reading, rejected=reading.rejected + tuple(rejected), **fixes)  # type: ignore[arg-type]
