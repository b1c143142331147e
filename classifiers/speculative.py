"""Speculative decoding: what one verification step processes and what it yields. Pure.

A speculative engine proposes ``k`` draft tokens per sequence (a draft model, an EAGLE/MTP head,
or n-gram lookup), then the target model verifies all ``1 + k`` positions of every sequence in
one forward step. The target's weights are read once for ``B x (1 + k)`` verified tokens; each
sequence emits its accepted drafts plus one token of its own. With ``alpha`` the share of draft
tokens accepted (vLLM: ``num_accepted_tokens / num_draft_tokens``)::

    verified tokens per sequence = 1 + k
    emitted tokens per sequence  = 1 + k x alpha    (vLLM's "mean acceptance length",
                                                     1 + accepted / drafts)

Counted per step, as the engines count them: vLLM ``vllm:spec_decode_num_drafts_total`` (one per
sequence per step that drafted), ``..._num_draft_tokens_total`` (``k`` per draft) and
``..._num_accepted_tokens_total`` (vllm/v1/spec_decode/metrics.py); SGLang reports the mean
accept length (``sglang:spec_accept_length``), which is ``1 + k x alpha`` directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

SpeculativeMethod = Literal["draft_model", "eagle", "eagle3", "mtp", "medusa", "ngram", "suffix"]
SPECULATIVE_METHODS: tuple[SpeculativeMethod, ...] = get_args(SpeculativeMethod)

HEAD_METHODS: tuple[SpeculativeMethod, ...] = ("eagle", "eagle3", "mtp")
"""Methods whose drafter is one decoder layer on the target's hidden states plus the target's
LM head (EAGLE, DeepSeek MTP), run once per draft token."""

FREE_METHODS: tuple[SpeculativeMethod, ...] = ("ngram", "suffix")
"""Methods that draft by looking tokens up on the host: no GPU cost."""


class SpeculationError(ValueError):
    """A speculative-decoding setting is out of range; the message names it."""


@dataclass(frozen=True)
class Speculation:
    """How an engine speculates.

    Attributes:
        method: how drafts are made (:data:`SPECULATIVE_METHODS`).
        num_speculative_tokens: ``k``, draft tokens proposed per sequence per step (>= 1).
        acceptance_rate: ``alpha`` in 0-1, accepted / proposed draft tokens.
        token_share: share (0-1) of the window's emitted tokens that speculative steps made;
            the rest came from plain one-token steps (a window straddling a phase change, an
            engine that stops drafting above a batch size or drafts for some requests only).
            1 for a configured setting: the engine speculates on every step.
    """

    method: SpeculativeMethod
    num_speculative_tokens: int
    acceptance_rate: float
    token_share: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in SPECULATIVE_METHODS:
            raise SpeculationError(
                f"speculative method must be one of {', '.join(SPECULATIVE_METHODS)}, "
                f"got {self.method!r}"
            )
        k = self.num_speculative_tokens
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SpeculationError(f"num_speculative_tokens must be an integer >= 1, got {k!r}")
        a = self.acceptance_rate
        if isinstance(a, bool) or not math.isfinite(a) or not 0 <= a <= 1:
            raise SpeculationError(f"acceptance_rate must be a ratio in 0-1, got {a!r}")
        share = self.token_share
        if isinstance(share, bool) or not math.isfinite(share) or not 0 <= share <= 1:
            raise SpeculationError(f"token_share must be a ratio in 0-1, got {share!r}")

    @property
    def verified_tokens_per_sequence(self) -> int:
        """``1 + k``: positions the target model runs per sequence per step."""
        return 1 + self.num_speculative_tokens

    @property
    def tokens_per_step_per_sequence(self) -> float:
        """``1 + k x alpha``: tokens each sequence emits per step (mean acceptance length)."""
        return 1.0 + self.num_speculative_tokens * self.acceptance_rate


def acceptance_from_counters(
    drafts: float, draft_tokens: float, accepted_tokens: float
) -> tuple[float, float] | None:
    """``(k, alpha)`` from counter increases over one window: ``k = draft_tokens / drafts``,
    ``alpha = accepted_tokens / draft_tokens``; ``None`` when nothing was drafted.

    Raises :class:`SpeculationError` when the counters contradict each other (more accepted
    than proposed, negative deltas)."""
    for name, value in (
        ("drafts", drafts),
        ("draft_tokens", draft_tokens),
        ("accepted_tokens", accepted_tokens),
    ):
        if not math.isfinite(value) or value < 0:
            raise SpeculationError(f"{name} must be a finite count >= 0, got {value!r}")
    if drafts <= 0 or draft_tokens <= 0:
        return None
    if accepted_tokens > draft_tokens * (1 + 1e-9):
        raise SpeculationError(
            f"accepted tokens ({accepted_tokens:g}) exceed draft tokens ({draft_tokens:g})"
        )
    return draft_tokens / drafts, min(1.0, accepted_tokens / draft_tokens)


def acceptance_from_accept_length(accept_length: float, k: int) -> float:
    """``alpha`` from a mean accept length ``1 + k x alpha`` (SGLang), clamped to 0-1."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SpeculationError(f"num_speculative_tokens must be an integer >= 1, got {k!r}")
    if not math.isfinite(accept_length) or accept_length < 0:
        raise SpeculationError(f"accept length must be a finite number >= 0, got {accept_length!r}")
    return min(1.0, max(0.0, (accept_length - 1.0) / k))


def speculative_token_share(
    drafts: float, accepted_tokens: float, generated_tokens: float | None
) -> float:
    """Share (0-1) of a window's generated tokens that speculative steps emitted.

    A speculative step emits, per sequence that drafted, its accepted drafts plus one token of
    its own, so over a window those steps emitted ``drafts + accepted_tokens`` (vLLM counts one
    draft per sequence per speculative step); plain steps emitted the rest,
    ``max(0, generated - (drafts + accepted))``::

        share = (drafts + accepted) / ((drafts + accepted) + plain)

    Counter increases or rates over the same window, any unit. With no generated-token count
    (``None``) or none generated, the speculative steps are taken to be all there was (1).
    """
    for name, value in (("drafts", drafts), ("accepted_tokens", accepted_tokens)):
        if not math.isfinite(value) or value < 0:
            raise SpeculationError(f"{name} must be a finite count >= 0, got {value!r}")
    if generated_tokens is None or not math.isfinite(generated_tokens) or generated_tokens <= 0:
        return 1.0
    speculative = drafts + accepted_tokens
    if speculative <= 0:
        return 0.0
    plain = max(0.0, generated_tokens - speculative)
    return speculative / (speculative + plain)


def live_speculation(
    configured: Speculation | None,
    *,
    drafts_per_second: float | None = None,
    draft_tokens_per_second: float | None = None,
    accepted_tokens_per_second: float | None = None,
    accept_length: float | None = None,
    decode_tokens_per_second: float | None = None,
) -> Speculation | None:
    """The speculation to model this cycle: the engine's counters first, its accept length
    next, the configured setting last.

    With ``decode_tokens_per_second`` given, the result carries the share of the window's
    tokens that speculative steps emitted (:func:`speculative_token_share`): a window that
    straddles the end of speculation, or an engine that drafts for a few requests only, is
    modelled as that blend of speculative and plain steps, not as speculating throughout.

    Counter rates give ``k`` and ``alpha`` directly (the method is the configured one, else
    ``eagle``, the common head-based drafter). An accept length needs ``k`` from the setting.
    With counters present but nothing drafted in the window (idle), the setting (if any)
    stands. Contradictory counters (more accepted than drafted) fall back the same way.
    """
    method: SpeculativeMethod = configured.method if configured is not None else "eagle"
    if (
        drafts_per_second is not None
        and draft_tokens_per_second is not None
        and accepted_tokens_per_second is not None
    ):
        try:
            found = acceptance_from_counters(
                drafts_per_second, draft_tokens_per_second, accepted_tokens_per_second
            )
        except SpeculationError:
            found = None
        if found is not None:
            k = max(1, round(found[0]))
            share = speculative_token_share(
                drafts_per_second, accepted_tokens_per_second, decode_tokens_per_second
            )
            return Speculation(method, k, found[1], share)
    if accept_length is not None and configured is not None:
        k = configured.num_speculative_tokens
        return Speculation(method, k, acceptance_from_accept_length(accept_length, k))
    return configured
