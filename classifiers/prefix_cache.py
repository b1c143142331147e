"""Prefix caching: how many prompt tokens a server really computes, and how much KV each
decoding sequence really reads. Pure.

**Computed prefill.** With automatic prefix caching a prompt's cached blocks are not run again:
``computed = prompt x (1 - hit_ratio)``. vLLM exports ``vllm:prefix_cache_queries_total`` and
``vllm:prefix_cache_hits_total`` (tokens), SGLang ``sglang:cache_hit_rate``. An engine that
exports only raw prompt tokens (TGI, Triton TRT-LLM, older SGLang and LMDeploy) gives an
**upper bound** on prefill FLOPs: at an 80 % hit rate the raw count is 5x the work done.

**Per-sequence context.** Engines report resident KV (blocks or tokens in use); a shared prefix
is stored once however many sequences use it, but every sequence's attention reads it (paged
attention reads each sequence's block table; cascade attention is the exception). With ``B``
sequences sharing a prefix of ``P`` tokens and each holding ``U`` tokens of its own, resident
``R = P + B U`` while each sequence reads ``c = P + U``. With ``h = P / c`` the shared share of a
sequence's context (the prefix-cache hit ratio is its estimate)::

    R = h c + B (1 - h) c   =>   c = R / (h + B (1 - h))

``h`` 0 gives ``R / B`` (nothing shared); ``h`` 1 gives ``R`` (every sequence reads all of it).
Example: 64 sequences on a 3,000-token system prompt with 1,000 tokens each: R = 67,000,
``R / B`` = 1,047 tokens read per sequence, but each reads 4,000 (h = 0.75:
67,000 / (0.75 + 64 x 0.25) = 4,000).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class PrefixCacheInputError(ValueError):
    """A prefix-cache input is out of range; the message names it."""


@dataclass(frozen=True)
class ComputedPrefill:
    """Prefill tokens per second the GPUs compute, and whether that figure is an upper bound."""

    tokens_per_second: float
    upper_bound: bool
    hit_ratio: float | None


def computed_prefill(
    prompt_tokens_per_second: float,
    *,
    includes_cached: bool,
    hit_ratio: float | None,
) -> ComputedPrefill:
    """Prompt tokens actually computed.

    ``includes_cached``: the engine's prompt counter counts cache hits too (raw prompt tokens).
    Then a known ``hit_ratio`` removes them; an unknown one leaves the raw rate, marked as an
    upper bound. An engine that already counts computed tokens passes ``includes_cached=False``.
    """
    _finite_non_negative("prompt_tokens_per_second", prompt_tokens_per_second)
    if hit_ratio is not None and not (math.isfinite(hit_ratio) and 0 <= hit_ratio <= 1):
        raise PrefixCacheInputError(f"hit_ratio must be in 0-1, got {hit_ratio!r}")
    if not includes_cached:
        return ComputedPrefill(prompt_tokens_per_second, False, hit_ratio)
    if hit_ratio is None:
        return ComputedPrefill(prompt_tokens_per_second, True, None)
    return ComputedPrefill(prompt_tokens_per_second * (1.0 - hit_ratio), False, hit_ratio)


def per_sequence_context_tokens(
    resident_tokens: float, batch: float, shared_ratio: float | None
) -> float:
    """Mean tokens each of ``batch`` sequences attends to, from the resident KV tokens and the
    shared share of each sequence's context: ``R / (h + B (1 - h))`` (module docstring).
    ``shared_ratio`` None means unknown: ``R / B`` (nothing shared), a lower bound."""
    _finite_non_negative("resident_tokens", resident_tokens)
    if not math.isfinite(batch) or batch <= 0:
        raise PrefixCacheInputError(f"batch must be positive, got {batch!r}")
    h = 0.0 if shared_ratio is None else shared_ratio
    if not (math.isfinite(h) and 0 <= h <= 1):
        raise PrefixCacheInputError(f"shared_ratio must be in 0-1, got {shared_ratio!r}")
    return resident_tokens / (h + batch * (1.0 - h))


def _finite_non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise PrefixCacheInputError(f"{name} must be a finite number >= 0, got {value!r}")


def hit_ratio_from_counters(queries: float | None, hits: float | None) -> float | None:
    """``hits / queries`` over one window of token counters (vLLM
    ``prefix_cache_{queries,hits}_total``), clamped to 0-1; ``None`` with no queries."""
    if queries is None or hits is None or queries <= 0:
        return None
    if not (math.isfinite(queries) and math.isfinite(hits)) or hits < 0:
        raise PrefixCacheInputError(f"prefix-cache counters must be finite and >= 0: {hits!r}")
    return min(1.0, hits / queries)
